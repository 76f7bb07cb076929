/*
 * router.h - the router role: members say hello and expose callbacks; calls for a
 * callback go to a member exposing it (round-robin, or the one named by daffi.call's
 * `to`), with a fresh msgid on the member's connection; responses are relayed back.
 * Also daffi.cast (fan-out with partial results), daffi.wait (event-driven),
 * daffi.subscribe (joined/left events) and heartbeats.
 *
 * Threads: a call belongs to the caller's loop; its forwarded request is written on the
 * member's loop (by mail when the two differ) and the member's response is mailed back.
 * A member that disconnects fails every call it holds with UNAVAILABLE at once.
 */
#ifndef DFD_ROUTER_H
#define DFD_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "call-t.h"
#include "conn.h"
#include "members.h"

struct dfd_server;

/* A membership event mailed to every loop: owned by the mail. */
typedef struct dfd_event {
    const char *type;          /* "joined" or "left" (static) */
    uint64_t version;          /* the registry version of the change */
    char *name;                /* owned */
    dfd_member *member;        /* a reference; its own connection is not told */
} dfd_event;

void dfd_event_free(dfd_event *ev);

/* Sets up the member registry. */
int dfd_router_init(struct dfd_server *srv);
/* Registers the router's own plugins as a member under its name (when it has any). */
int dfd_router_join_self(struct dfd_server *srv);
/* After a reload changed the router's callback table: re-announce (or join, or leave)
 * the router's own member. Main thread. */
void dfd_router_update_self(struct dfd_server *srv);
void dfd_router_destroy(struct dfd_server *srv);

/* Routes a request or notification for call's method (router role). The call is
 * loaded; c may be NULL for a cast's child. to/to_len name a member or are NULL. */
void dfd_router_route(dfd_conn *c, dfd_call *call, const char *to, size_t to_len);

/* Sends call to member m (taking over the reference on m), as a forwarded call. */
void dfd_router_forward_to(dfd_conn *c, dfd_call *call, dfd_member *m);
/* Routes an un-unwrapped daffi.stream open for callback cb to a remote member. */
void dfd_router_route_stream(dfd_conn *c, dfd_call *call, const char *cb, size_t cb_len,
                             const char *to, size_t to_len);
/* 1 when a daffi.stream open (params[0] = callback) is served by the router itself. */
int dfd_router_is_local(dfd_loop *loop, const dfd_call *call, const char *to, size_t to_len);

/* The daffi.* control methods in the router role. Does not free the call when it
 * returns 0 (answered at once); returns 1 when the call was taken over (pending). */
int dfd_router_control(dfd_conn *c, dfd_call *call);

/* Mail handlers on a loop. */
void dfd_router_send(dfd_call *call);                   /* DFD_MAIL_FORWARD */
void dfd_router_apply_snapshot(dfd_loop *loop, dfd_snapshot *s); /* DFD_MAIL_SNAPSHOT */
void dfd_router_on_event(dfd_loop *loop, dfd_event *ev); /* DFD_MAIL_EVENT */
void dfd_router_close_member(dfd_member *m);             /* DFD_MAIL_CLOSE_MEMBER */

/* A response arrived on a member's connection. */
void dfd_router_on_response(dfd_conn *c, const char *bytes, size_t size, uint32_t msgid);
/* A member's connection is closing: fail its calls, leave the registry. */
void dfd_router_conn_closed(dfd_conn *c);

/* A cast child finished (owner loop): record its outcome in the cast. */
void dfd_router_cast_child_done(dfd_call *call);
/* A cast's child hit its own deadline: record TIMEOUT in its slot. */
void dfd_router_cast_child_timeout(dfd_call *call, const char *msg);
/* Deadline of a CAST or WAIT call (owner loop): answer with what is known. */
void dfd_router_on_deadline(dfd_call *call);

/* Heartbeat tick of a loop: ping members (router) and drop the silent ones. */
void dfd_router_heartbeat(dfd_loop *loop);

/* Splits a response envelope into its error and result elements (encoded). Returns 0,
 * or -1 when the bytes are not a response. */
int dfd_response_split(const char *bytes, size_t size, const char **err, size_t *err_len,
                       const char **result, size_t *result_len);

#endif /* DFD_ROUTER_H */
