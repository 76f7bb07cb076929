/*
 * nats-members.h - the members a gateway router knows over NATS (docs/NATS.md): each
 * member's heartbeat on <ns>.hb (its name, callbacks and interval) and its joined/left
 * events on <ns>.events join, update and leave it in the member registry (members.h),
 * which mails snapshots and events to every loop as for native members. A member
 * silent for its interval x heartbeat_misses is dropped (nats.member_lost). A starting
 * gateway publishes <ns>.sync so that members heartbeat at once.
 *
 * Threads: one subscription (<ns>.*: a member's heartbeats and events stay in the order
 * it sent them) mails each message to loop 0, which alone keeps the table of NATS
 * members and runs the expiry timer.
 */
#ifndef DFD_NATS_MEMBERS_H
#define DFD_NATS_MEMBERS_H

#include <nats/nats.h>

struct dfd_server;
typedef struct dfd_nats_presence dfd_nats_presence;

/* Subscribes presence on nc for srv (before the loops start) and asks members for a
 * heartbeat. Returns it, or NULL (logged). */
dfd_nats_presence *dfd_nats_presence_start(struct dfd_server *srv, natsConnection *nc);
/* Asks the members for a heartbeat now (after a reconnection). Any thread. */
void dfd_nats_presence_sync(dfd_nats_presence *p);
/* Destroys the subscription (before the connection goes). After the loops are joined.
 * NULL: no-op. */
void dfd_nats_presence_stop(dfd_nats_presence *p);
/* Frees the table once libnats' threads are gone (dfd_nats_shutdown); the registry's
 * members stay until the registry goes. NULL: no-op. */
void dfd_nats_presence_free(dfd_nats_presence *p);

#endif /* DFD_NATS_MEMBERS_H */
