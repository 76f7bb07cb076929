/*
 * monitor.h - the live feed of finished calls (admin `monitor`, `daffictl monitor`),
 * as Redis's MONITOR: while at least one admin client watches, every call a loop
 * finishes (answered, refused, timed out, forwarded) becomes one JSON line.
 *
 * The loops pay nothing while nobody watches (one relaxed atomic load per call). While
 * someone does, a loop fills in a record of the call (dfd_monitor_rec) in one bounded
 * array under a mutex; the first record into an empty array wakes the main thread (an
 * eventfd), which takes them all and hands them to the sink (admin-monitor.c, which
 * writes a JSON line per record to each watching client). A full array
 * (DFD_MONITOR_MAX_PENDING records) drops the record and counts it: a watcher slower
 * than the calls is told how many it missed, the loops are never held up by it.
 */
#ifndef DFD_MONITOR_H
#define DFD_MONITOR_H

#include <stdatomic.h>

#include "monitor-t.h"

struct event_base;
struct dfd_call;

/* At most this many records wait for the main thread (about 2.5 MB). */
#define DFD_MONITOR_MAX_PENDING 4096

/* Main thread, before the loops start: sets up the feed, woken on base. Returns 0, or
 * -1 when no eventfd or memory could be had. */
int dfd_monitor_init(dfd_monitor *m, struct event_base *base);
/* Main thread, after the loops stopped: frees what the feed holds. Safe on a feed that
 * was never initialised (zeroed). */
void dfd_monitor_destroy(dfd_monitor *m);
/* Main thread: where batches go (NULL: discarded). */
void dfd_monitor_set_sink(dfd_monitor *m, dfd_monitor_sink_fn sink, void *arg);
/* Main thread: one more (delta 1) or one fewer (-1) watcher. */
void dfd_monitor_watchers_add(dfd_monitor *m, int delta);

/* Any thread: is anybody watching? */
static inline int dfd_monitor_on(const dfd_monitor *m)
{
    return atomic_load_explicit(&m->watchers, memory_order_relaxed) > 0;
}

/* Owner loop of call: one record of the finished call, which came from peer; refused is
 * the error code it was refused with before running, or -1. Call only when
 * dfd_monitor_on(). */
void dfd_monitor_call(dfd_monitor *m, const struct dfd_call *call, const char *peer,
                      int refused);

/* Calls some watcher did not see, since start: records dropped because the feed was
 * full, plus lines skipped for a watcher whose output was full. Any thread. */
uint64_t dfd_monitor_dropped(dfd_monitor *m);
/* The sink skipped n lines for one slow watcher (main thread). */
void dfd_monitor_skipped(dfd_monitor *m, uint64_t n);
/* Watchers now. Any thread. */
static inline unsigned dfd_monitor_watchers(const dfd_monitor *m)
{
    int n = atomic_load_explicit(&m->watchers, memory_order_relaxed);
    return n > 0 ? (unsigned)n : 0;
}

#endif /* DFD_MONITOR_H */
