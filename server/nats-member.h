/*
 * nats-member.h - the worker role over NATS (docs/NATS.md): a worker whose router is
 * nats://... serves its callbacks as queue-group subscriptions <ns>.call.<callback>,
 * its own name as <ns>.member.<name>, heartbeats on <ns>.hb, and says joined/left on
 * <ns>.events. A call from NATS is mailed to a loop (round-robin) and run there through
 * the dispatch path every local call takes (dfd_dispatch_detached); its response is
 * published to the request's reply subject from that loop.
 *
 * Threads: the member's subscriptions and connection are libnats'; its callbacks only
 * mail the message to a loop. What a loop keeps (the reply subjects of its calls in
 * flight) is that loop's. The subscription set is changed under a lock (start and drain
 * on the main thread, a reload on the last loop to switch tables).
 */
#ifndef DFD_NATS_MEMBER_H
#define DFD_NATS_MEMBER_H

#include <nats/nats.h>

struct dfd_server;
typedef struct dfd_nats_member dfd_nats_member;

/* Connects to the NATS servers of srv->cfg->router and subscribes the callbacks of
 * srv->table. Before the loops start. Returns the member, or NULL (logged). */
dfd_nats_member *dfd_nats_member_start(struct dfd_server *srv);
/* Draining: unsubscribe (nothing new arrives), say left, stop heartbeats; calls in
 * flight are still answered. Main thread. */
void dfd_nats_member_withdraw(dfd_nats_member *m);
/* shutdown_timeout passed: the process exits with calls or streams unfinished. Says
 * "gone" (an event with its session) and flushes, so that gateways fail at once what
 * it holds (its calls UNAVAILABLE, its streams aborted at their callers). Main thread;
 * NULL: no-op. */
void dfd_nats_member_abandon(dfd_nats_member *m);
/* A drain undone: subscribe again and say joined. Main thread. */
void dfd_nats_member_resume(dfd_nats_member *m);
/* The member's NATS connection (for the admin status). */
natsConnection *dfd_nats_member_conn(const dfd_nats_member *m);
/* After the loops are joined: unsubscribes and closes the connection (NULL: no-op).
 * libnats may still call back into m until dfd_nats_shutdown() returned; only then
 * dfd_nats_member_free() releases it. */
void dfd_nats_member_stop(dfd_nats_member *m);
void dfd_nats_member_free(dfd_nats_member *m);

#endif /* DFD_NATS_MEMBER_H */
