/*
 * worker.h - the worker role: connect to the router, announce, serve, reconnect.
 */
#ifndef DFD_WORKER_H
#define DFD_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct dfd_server;
struct dfd_loop;
struct dfd_conn;

typedef struct dfd_worker dfd_worker;

/* Starts connecting to cfg->router from loop (before the loop's thread runs). Returns
 * the worker or NULL (logged). */
dfd_worker *dfd_worker_start(struct dfd_server *srv, struct dfd_loop *loop);
/* Stops reconnecting and frees the worker (after its loop's thread was joined). */
void dfd_worker_stop(dfd_worker *w);

/* Re-sends the hello with the loop's current callbacks (after a reload). */
void dfd_worker_announce(dfd_worker *w);
/* Draining: announce no callbacks, so the router sends nothing new; the connection
 * closes once the router acknowledged it and the calls in flight are answered. */
void dfd_worker_withdraw(dfd_worker *w);

/* A fresh msgid for a request the worker sends (hello, heartbeat). */
uint32_t dfd_worker_next_msgid(dfd_worker *w);

#endif /* DFD_WORKER_H */
