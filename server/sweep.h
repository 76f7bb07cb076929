/*
 * sweep.h - each loop's sweep: one periodic timer per loop, never a timer per
 * connection or per read, that
 *   - closes a connection that sent no complete message for [limits] idle_timeout
 *     (conn.idle_timeout), unless something keeps it: a call in flight or an owner
 *     that is busy with it (dfd_conn_idle), heartbeats that watch it (track_rx: a
 *     router's member, a worker's link), a link to an isolated plugin's child
 *     (internal), a subscription to membership events, a stream, or daffid waiting
 *     for memory to read it;
 *   - closes a connection whose message began arriving more than [limits]
 *     read_timeout ago and is still not whole (conn.read_timeout), unless daffid
 *     itself stopped reading it (its output is over max_output, or the budget has no
 *     room) or it is internal;
 *   - when the memory budget is nearly spent, closes the connections that do not read
 *     their output (budget.h, dfd_budget_shed), and reads again the ones that waited
 *     for room once there is (dfd_budget_resume);
 *   - marks that the loop came back to its event loop, for the watchdog (watchdog.h).
 * Connections note the loop's sweep count (`tick`) when a message completes or begins,
 * which costs a load and a store, no clock. A timeout fires between its value and its
 * value plus two periods; the period is a quarter of a second, or less for short
 * timeouts (dfd_sweep_period_ms).
 */
#ifndef DFD_SWEEP_H
#define DFD_SWEEP_H

#include "config.h"
#include "loop.h"

/* The sweep's period for cfg: 250 ms, an eighth of idle_timeout or read_timeout, or a
 * quarter of stall_warning, whichever is least, but at least 10 ms. */
unsigned dfd_sweep_period_ms(const dfd_config *cfg);

/* Starts the loop's sweep (on the loop's thread, before its event loop runs). */
void dfd_sweep_start(dfd_loop *loop);
/* Stops it (after the loop's thread left). */
void dfd_sweep_stop(dfd_loop *loop);
/* [auth] require or timeout was reloaded (auth.h): each loop takes them at its next
 * pass (a mail), its period shortened when the new timeout needs it. */
void dfd_sweep_auth_changed(struct dfd_server *srv);

#endif /* DFD_SWEEP_H */
