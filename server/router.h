/*
 * router.h - routing in the router role: a call for a callback goes to a member
 * exposing it (round-robin, or the one named by `to`), over one of the member's links
 * (one on the caller's loop when it has one, else round-robin), with a fresh msgid on
 * that link's connection, and the member's response is relayed back. Members that are
 * frozen (members-snap.c) are passed over while others can serve. Membership (hello,
 * events) is membership.h's, fan-out (cast, wait) fanout.h's, heartbeats heartbeat.h's.
 *
 * Threads: a call belongs to the caller's loop; its forwarded request is written on the
 * link's loop (by mail when the two differ) and the member's response is mailed back.
 * A call whose link closed, or whose member withdrew, before it was written goes out
 * once more (another link of the member, else another member unless `to` named it);
 * a call written to a link is never resent (it may have started).
 * Deadlines travel: a member that announced it gets the call's remaining time with the
 * request (daffi.call's timeout_ms), and at the deadline the router answers TIMEOUT
 * and the member's loop forgets the call. A member that disconnects fails every call
 * it holds with UNAVAILABLE at once.
 */
#ifndef DFD_ROUTER_H
#define DFD_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "call-t.h"
#include "conn.h"
#include "members.h"

struct dfd_server;

/* Routes a request or notification for call's method (router role). The call is
 * loaded; c may be NULL for a cast's child. to/to_len name a member or are NULL. */
void dfd_router_route(dfd_conn *c, dfd_call *call, const char *to, size_t to_len);
/* srv->route of the router role: dfd_router_route without `to`. */
void dfd_router_route_call(dfd_conn *c, dfd_call *call);

/* Sends call over link l (taking over the reference on l), as a forwarded call. */
void dfd_router_forward_to(dfd_conn *c, dfd_call *call, dfd_link *l);
/* Routes an un-unwrapped daffi.stream open for callback cb to a remote member. */
void dfd_router_route_stream(dfd_conn *c, dfd_call *call, const char *cb, size_t cb_len,
                             const char *to, size_t to_len);
/* 1 when a daffi.stream open (params[0] = callback) is served by the router itself. */
int dfd_router_is_local(dfd_loop *loop, const dfd_call *call, const char *to, size_t to_len);

/* A response arrived on link l's connection c (l's loop). */
void dfd_router_on_response(dfd_conn *c, dfd_link *l, const char *bytes, size_t size,
                            uint32_t msgid);
/* Link l's connection is gone (l's loop): every call it holds fails UNAVAILABLE. */
void dfd_router_link_gone(dfd_link *l);
/* A request is being written to link l (l's loop): from now it owes an answer, unless
 * it owed one already (members-snap.c, frozen links). */
void dfd_router_link_owes(dfd_link *l);

/* Counts a forwarded call (once) in the "_forwarded" slot of the snapshot entry ss of
 * its callback (NULL: not counted, e.g. a stream's end, counted with its open). */
void dfd_router_count(dfd_call *call, dfd_snap_slot *ss);

/* Answers a request that cannot be routed with error code and msg (a cast's child, or
 * a call without a connection, reports it instead); frees nothing the caller keeps:
 * the call is finished or freed. */
void dfd_router_refuse(dfd_conn *c, dfd_call *call, int code, const char *msg);

/* Packs the three params of daffi.call for call: its method, its params as they came,
 * and {"timeout_ms": what is left of its deadline} (at least 1), into pk writing to sb
 * (the caller packed the array header). Shared by members' links and NATS. */
void dfd_router_pack_call_params(const dfd_call *call, msgpack_packer *pk, msgpack_sbuffer *sb);

#endif /* DFD_ROUTER_H */
