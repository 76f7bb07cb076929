/*
 * membership.h - the router role's members: daffi.hello makes a caller's connection a
 * link of a member (its owner becomes membership: responses go to routing, heartbeats
 * are kept), a member with a session may have several links, re-announces change its
 * callbacks, a newcomer may replace a member of the same name (duplicate = replace),
 * daffi.subscribe delivers joined/left events, and the router's own plugins make it a
 * member under its own name. The registry itself is members.h's; the hello is
 * membership-hello.c's.
 */
#ifndef DFD_MEMBERSHIP_H
#define DFD_MEMBERSHIP_H

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

/* Sets up the member registry / releases it. */
int dfd_membership_init(struct dfd_server *srv);
void dfd_membership_destroy(struct dfd_server *srv);
/* Registers the router's own plugins as a member under its name (when it has any). */
int dfd_membership_join_self(struct dfd_server *srv);
/* After a reload changed the router's callback table: re-announce (or join, or leave)
 * the router's own member. Main thread. */
void dfd_membership_update_self(struct dfd_server *srv);

/* Control methods (control.h's convention): daffi.hello and daffi.subscribe. */
int dfd_membership_hello(dfd_conn *c, dfd_call *call);
int dfd_membership_subscribe(dfd_conn *c, dfd_call *call);

/* The member whose link connection c is, or NULL. */
dfd_member *dfd_membership_of(const dfd_conn *c);
/* The link connection c is, or NULL. */
dfd_link *dfd_membership_link_of(const dfd_conn *c);

/* For the hello (membership-hello.c). Makes the caller's connection c link l's (c
 * keeps l's creation reference). */
void dfd_membership_adopt(dfd_conn *c, dfd_link *l);
/* Tells every link of the replaced member m why, and closes it (on each link's loop;
 * loop is the caller's). */
void dfd_membership_close_replaced(struct dfd_server *srv, dfd_loop *loop, dfd_member *m);
/* Closes the stale link l (its peer connected it again), taking the reference. */
void dfd_membership_close_stale(dfd_loop *loop, dfd_link *l);

/* Mails from the registry (members.c) to every loop: the new snapshot (one
 * reference) and an event (owned). */
void dfd_membership_on_snapshot(dfd_loop *loop, void *snapshot);
void dfd_membership_drop_snapshot(void *snapshot);
void dfd_membership_on_event(dfd_loop *loop, void *event);
void dfd_membership_drop_event(void *event);

#endif /* DFD_MEMBERSHIP_H */
