/*
 * worker.h - the worker role: link each loop to the router (one connection per loop,
 * announced as one member with a session), serve what the router sends on each link
 * on that link's loop, re-announce after a reload, withdraw when draining, reconnect
 * each link with backoff (worker.c).
 */
#ifndef DFD_WORKER_H
#define DFD_WORKER_H

struct dfd_server;

typedef struct dfd_worker dfd_worker;

/* Starts connecting every loop of srv to cfg->router (before the loops' threads run).
 * Returns the worker or NULL (logged). */
dfd_worker *dfd_worker_start(struct dfd_server *srv);
/* Stops reconnecting and frees the worker (after the loops' threads were joined). */
void dfd_worker_stop(dfd_worker *w);

#endif /* DFD_WORKER_H */
