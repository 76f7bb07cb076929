/*
 * blocking.h - the blocking thread pool: runs callbacks flagged DAFFI_CB_BLOCKING off
 * the event loops, and posts each completion back to the call's owning loop.
 */
#ifndef DFD_BLOCKING_H
#define DFD_BLOCKING_H

struct dfd_call;

typedef struct dfd_blocking dfd_blocking;

/* Starts nthreads threads. Returns the pool or NULL. */
dfd_blocking *dfd_blocking_start(unsigned nthreads);
/* Queues a call (any thread). The pool runs its handler and delivers the outcome.
 * Returns 0, or -1 when the pool is stopping. */
int dfd_blocking_submit(dfd_blocking *pool, struct dfd_call *call);
/* Number of calls queued or running. */
unsigned dfd_blocking_load(dfd_blocking *pool);
/* Calls of plugin generation p running on the pool now (its blocking_max share). */
struct dfd_plugin;
unsigned dfd_blocking_running_of(dfd_blocking *pool, const struct dfd_plugin *p);
/* Stops taking calls, waits for the running ones, joins the threads, frees the pool.
 * Calls still queued are delivered unrun with SHUTTING_DOWN. */
void dfd_blocking_stop(dfd_blocking *pool);

#endif /* DFD_BLOCKING_H */
