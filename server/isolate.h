/*
 * isolate.h - isolation = process, the parent's side (docs/ISOLATION.md): a plugin
 * generation served by supervised child processes (child.h) that are members of
 * their parent over private socketpairs.
 *
 * Contract
 *   dfd_isolate_load() is dfd_plugin_load() for an isolated plugin: the generation it
 *   returns holds the private copy of the .so but maps nothing; its callbacks are what
 *   its children announced, and dispatch hands each of its calls to the generation's
 *   `forward` hook, which sends it to a child picked round-robin (the router's
 *   forwarding: deadlines, outstanding calls, relayed answers). Its children started
 *   and said hello before it returns; the last release of the generation stops them.
 *   The supervisor (the main thread) reaps children that die, answers the calls they
 *   held UNAVAILABLE, restarts them with backoff, stops a crash loop, and kills a
 *   child whose call runs past harakiri.
 *
 * Threads: everything here runs on the main thread, except the forward hook (the
 * call's loop) and the link's handlers (the link's loop): isolate-t.h.
 */
#ifndef DFD_ISOLATE_H
#define DFD_ISOLATE_H

#include <stdint.h>

#include "config.h"
#include "isolate-t.h"
#include "plugin-t.h"

struct dfd_server;

/* Loads generation `generation` of the isolated plugin pc (pc->isolation = process):
 * its private copy in srv->private_dir, then pc->processes children started, their
 * hellos answered and, once the loops run, their links adopted. Returns 0 and *out
 * (one reference, the caller's), or -1 with "FILE: reason" appended to errs (the
 * loader's own words from the child, or how the child died) and nothing left. Main
 * thread; creates srv->supervisor on first use. */
int dfd_isolate_load(struct dfd_server *srv, const dfd_plugin_conf *pc, unsigned generation,
                     dfd_plugin **out, dfd_errors *errs);

/* The loops exist and their threads do not run yet (server start): the children
 * loaded before are handed to them and supervision starts (SIGCHLD, the tick); later
 * loads hand theirs over by mail. Returns 0, or -1 with the reason in errs. Main
 * thread. */
int dfd_supervisor_attach(struct dfd_server *srv, dfd_errors *errs);

/* At exit, after the loops are gone and every generation was released: the children
 * left get until DFD_ISOLATE_EXIT_WAIT_MS to exit, then SIGKILL; all are reaped and
 * the supervisor freed. Nothing without one. Main thread. */
void dfd_supervisor_free(struct dfd_server *srv);

/* The isolate serving generation p, or NULL for an inline one. Main thread readers
 * (admin) take iso->lock for the fields it guards. */
const dfd_isolate *dfd_isolate_of(const dfd_plugin *p);

/* 1 when p is isolated and a crash loop stopped its restarts (a reload loads it again). */
int dfd_isolate_failed(const dfd_plugin *p);

/* The plugin's state for admin `plugins`: "serving", "degraded" (fewer children
 * ready than processes), "starting" or "failed". Static. Main thread. */
const char *dfd_isolate_state(dfd_isolate *iso);
/* A child's state for admin: "starting", "ready", "stopping", "exited". Static. */
const char *dfd_child_state_name(dfd_child_state s);

/* For the counter table: deaths, restarts, harakiri kills, child processes alive. */
void dfd_supervisor_counts(const struct dfd_server *srv, uint64_t *crashes,
                           uint64_t *restarts, uint64_t *harakiri, uint64_t *children);

#endif /* DFD_ISOLATE_H */
