/*
 * nats-gateway.h - a router with [server] nats = nats://... is a stateless gateway
 * (docs/NATS.md): its callers' calls go to NATS as requests (<ns>.call.<callback> for
 * the queue group, <ns>.member.<name> for `to` and each leg of a cast) carrying the
 * caller's remaining deadline, and the members' answers come back on the gateway's
 * inbox. Nobody subscribed answers NO_CALLBACK at once (NATS no-responders). Who the
 * members are it learns from their heartbeats and events (nats-members.c), so
 * daffi.members, daffi.wait and daffi.subscribe answer as for native members.
 *
 * Threads: a call stays on its caller's loop; its id in that loop's table and the
 * loop's index travel in the reply subject (<inbox>.<loop>.<id>), and the inbox's
 * libnats thread mails each answer to that loop.
 */
#ifndef DFD_NATS_GATEWAY_H
#define DFD_NATS_GATEWAY_H

#include <stddef.h>

#include <nats/nats.h>

#include "call-t.h"
#include "conn.h"

struct dfd_server;
typedef struct dfd_nats_gateway dfd_nats_gateway;

/* Connects to srv->cfg->nats, subscribes the inbox and the members' presence. Before
 * the loops start. Returns the gateway, or NULL (logged). */
dfd_nats_gateway *dfd_nats_gateway_start(struct dfd_server *srv);
/* After the loops are joined: unsubscribes and closes the connection (NULL: no-op).
 * libnats may still call back into g until dfd_nats_shutdown() returned; only then
 * dfd_nats_gateway_free() releases it (calls still waiting are their loops'). */
void dfd_nats_gateway_stop(dfd_nats_gateway *g);
void dfd_nats_gateway_free(dfd_nats_gateway *g);

/* The gateway's NATS connection (for the admin status). */
natsConnection *dfd_nats_gateway_conn(const dfd_nats_gateway *g);

/* The gateway's route (dfd_router_route calls it): sends call over NATS, to the member
 * named by to (to_len bytes) or to the callback's queue group. c may be NULL (a cast's
 * child). The router's own plugins answer calls for its own name, and callbacks no
 * member could serve better: its table first when to is NULL. Caller's loop. */
void dfd_nats_route(dfd_conn *c, dfd_call *call, const char *to, size_t to_len);

/* daffi.stream on a gateway (stream-relay.c hands it over): the open goes over NATS to
 * the callback's queue group (or the member to names); once a member accepted it, the
 * caller's chunks, end and abort go to that member's stream subject and its credit and
 * abort come back on the open's reply subject + ".s" (docs/NATS.md, "Streams"). Caller's
 * loop; the control convention (1: the call is taken over). */
int dfd_nats_stream_open(dfd_conn *c, dfd_call *call, unsigned window, const char *to,
                         size_t to_len);

/* Member name stopped heartbeating and was dropped, or said it exits with calls
 * unfinished (why, static: the reason the calls' UNAVAILABLE gives; nats-members.c,
 * loop 0): every
 * loop fails the calls it sent to it by name (`to`, a cast's legs) with UNAVAILABLE,
 * and aborts the streams it relays to it (their subjects name its session; "": none).
 * A call sent to a queue group is known to be its once the member said it took the
 * call (its "taken" on the reply subject + ".t"), and fails so too; one that member
 * answered at once never needed it.
 * Any thread; name and session are copied. */
void dfd_nats_gateway_member_lost(struct dfd_server *srv, const char *name,
                                  const char *session, const char *why);

#endif /* DFD_NATS_GATEWAY_H */
