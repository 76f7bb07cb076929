/*
 * nats-bridge.h - streams over NATS, the member's side (docs/NATS.md, "Streams"): the
 * stream handlers run as for any connection, on a bridge per loop. A bridge is a
 * socketpair: one end a caller connection of the loop (dispatch, local streams: the
 * code every stream takes), the other end the bridge's, which writes what NATS brought
 * (the open, chunks, end, abort, each with a msgid of the bridge) and publishes what
 * comes back (the answers to the open and end's reply subjects, credit and abort to the
 * gateway's stream subject). A stream's steps come on <ns>.stream.<session>.<loop>,
 * the subject the open's answer names as its reply, so they reach the loop whose bridge
 * holds the stream, in order.
 *
 * Threads: a bridge and its tables belong to its loop; libnats' threads only mail.
 */
#ifndef DFD_NATS_BRIDGE_H
#define DFD_NATS_BRIDGE_H

#include <nats/nats.h>

#include "loop.h"
#include "nats-bus.h"

struct dfd_server;
typedef struct dfd_nats_bridge dfd_nats_bridge;

/* A bridge set for srv's loops publishing on nc, its steps' subjects under prefix
 * (<ns>.stream.<session>), subscribed here. Before the loops start. NULL: failed
 * (logged). */
dfd_nats_bridge *dfd_nats_bridge_new(struct dfd_server *srv, natsConnection *nc,
                                     const char *prefix);
/* 1 when note's payload starts as a gateway's daffi.stream request does
 * ([0, 0, "daffi.stream", ...] in its shortest encoding); dfd_nats_bridge_open checks
 * the rest. */
int dfd_nats_bridge_is_open(const dfd_nats_note *note);
/* On loop: a daffi.stream open from NATS (note taken). */
void dfd_nats_bridge_open(dfd_nats_bridge *b, dfd_loop *loop, dfd_nats_note *note);
/* After the loops are joined, before the connection goes: aborts the streams still open
 * at their gateways (logged nats.bridge) and unsubscribes. NULL: no-op. */
void dfd_nats_bridge_stop(dfd_nats_bridge *b);
/* After libnats' threads are gone and the loops joined: frees the tables. */
void dfd_nats_bridge_free(dfd_nats_bridge *b);

#endif /* DFD_NATS_BRIDGE_H */
