/*
 * nats-io.h - a role's libnats connection driven by loop 0's event base instead of
 * libnats' reader and flusher threads (docs/NATS.md, "Threads").
 *
 * libnats' external event loop mode: loop 0 watches the socket, reads and parses on its
 * own thread (natsConnection_ProcessReadEvent) and writes what publishing buffered at
 * the end of the pass it was published in (sendAsap: no flusher thread, no 1 ms wait).
 * Subscriptions "watched" here are libnats synchronous subscriptions: after each read
 * loop 0 takes their messages and runs their callbacks itself, so a message costs no
 * thread hop. Other subscriptions keep libnats' delivery threads.
 *
 * Threads: libnats calls the hooks on loop 0 (reads, writes), on the thread that
 * publishes (a kick: any loop, the heartbeat timer's, the main thread), on its
 * reconnect thread (attach) and on the thread that closes the connection (detach).
 * Loop 0's base is the one base created with a lock (dfd_nats_io_base_locked) so that
 * those threads may add and activate its events. Events are never freed while the
 * connection lives: a reconnection's old ones are kept until dfd_nats_io_free.
 */
#ifndef DFD_NATS_IO_H
#define DFD_NATS_IO_H

#include <nats/nats.h>

#include "loop.h"

typedef struct dfd_nats_io dfd_nats_io;

/* A watched subscription's callback: libnats' own signature, run on loop 0 (msg is the
 * callback's: it destroys it). */
typedef natsMsgHandler dfd_nats_sync_fn;

/* Call once before the loops' bases are made when the configuration has a NATS role:
 * turns on libevent's locking (loop 0's base alone uses it; dfd_loop_init). */
void dfd_nats_io_enable_locking(void);

/* An io on loop (loop 0 of the process). NULL: out of memory. */
dfd_nats_io *dfd_nats_io_new(dfd_loop *loop);

/* Puts io into opts: the event loop hooks and sendAsap. Returns libnats' status. */
natsStatus dfd_nats_io_options(dfd_nats_io *io, natsOptions *opts);

/* Subscribes subject (queue: its queue group, or NULL) on nc, io's connection, as a
 * watched subscription: fn(nc, sub, msg, closure) runs on loop 0 for each message.
 * No pending limit (loop 0 drains it after every read). Any thread. Returns libnats'
 * status; *sub is NULL unless NATS_OK. */
natsStatus dfd_nats_io_subscribe(dfd_nats_io *io, natsSubscription **sub, natsConnection *nc,
                                 const char *subject, const char *queue, dfd_nats_sync_fn fn,
                                 void *closure);

/* Unwatches, unsubscribes and destroys *sub (NULL: no-op) and sets it NULL; once
 * unwatched loop 0 no longer touches it. Any thread. */
void dfd_nats_io_unsubscribe(dfd_nats_io *io, natsSubscription **sub);

/* Writes what connection nc (io's) buffered from the calling thread, waiting up to
 * timeout_ms for the socket: for when loop 0 does not run (before the loops start, after
 * they are joined; never beside a running loop 0: a TLS connection must not be used by
 * two threads at once). It also reads what NATS sent meanwhile (a socket closed with
 * bytes unread is reset, and NATS may drop what came last). Returns 0 when nothing is
 * left buffered (io or nc NULL: nothing to do). */
int dfd_nats_io_pump(dfd_nats_io *io, natsConnection *nc, int timeout_ms);

/* After the connection is destroyed and libnats' threads are gone (io may be NULL). */
void dfd_nats_io_free(dfd_nats_io *io);

#endif /* DFD_NATS_IO_H */
