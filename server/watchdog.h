/*
 * watchdog.h - the loop watchdog ([server] stall_warning): tells when a loop has not
 * come back to its event loop for that long, while it is stuck.
 *
 * The loops only mark what they do, cheaply: around an inline handler run, a relaxed
 * store of when it started and a release store of its callback's stats slot (names
 * that live as long as the server, so that the watchdog never follows a pointer into a
 * plugin generation unloaded meanwhile); each sweep (sweep.h) stores when it ran. The
 * main thread, which a stuck loop cannot hold up, checks every loop ten times per
 * stall_warning: a handler running for stall_warning, or a sweep overdue by as long
 * (a stall outside any handler: a plugin's own timer or I/O callback, or daffid
 * itself), is a stall. Each stall is logged once when it is seen (loop.stall: loop,
 * plugin, callback, stalled_ms) and once when it ends (loop.stall_end), counted
 * (loop_stalls), and shown by admin `status` while it lasts (loops_stalled, and per
 * loop: stalled, plugin, callback, stalled_ms).
 */
#ifndef DFD_WATCHDOG_H
#define DFD_WATCHDOG_H

#include <stdint.h>

#include "loop.h"

struct dfd_server;
struct json_t;

/* Loop thread: a handler starts inline, since since_ns; slot1 is 1 + its callback's
 * stats slot (dfd_callback.stat_slot once it was counted). */
static inline void dfd_watchdog_enter(dfd_loop *loop, unsigned slot1, uint64_t since_ns)
{
    atomic_store_explicit(&loop->wd_since_ns, since_ns, memory_order_relaxed);
    atomic_store_explicit(&loop->wd_slot, slot1, memory_order_release);
}

/* Loop thread: the handler returned. */
static inline void dfd_watchdog_leave(dfd_loop *loop)
{
    atomic_store_explicit(&loop->wd_slot, 0, memory_order_relaxed);
}

/* Main thread: starts checking the loops (nothing when stall_warning is 0), and the
 * memory budget's state for the log (budget.h). Returns 0 or -1. */
int dfd_watchdog_start(struct dfd_server *srv);
/* Main thread: stops (before the loops stop). */
void dfd_watchdog_stop(struct dfd_server *srv);

/* Stalls seen so far, and loops stalled now (main thread). */
uint64_t dfd_watchdog_stalls(const struct dfd_server *srv);
unsigned dfd_watchdog_stalled(const struct dfd_server *srv);

/* Main thread: the admin `status` view of loop i: {"stalled", "plugin", "callback",
 * "stalled_ms"} (plugin and callback null when not stalled, or stalled outside any
 * handler). New reference. */
struct json_t *dfd_watchdog_loop_json(struct dfd_server *srv, unsigned i);

#endif /* DFD_WATCHDOG_H */
