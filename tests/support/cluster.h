/*
 * cluster.h - a router and its workers as real daffid processes, for the router tests
 * and the router benchmark.
 *
 * Contract
 *   Built on tdaemon (daemon.h): each daffid keeps its own temp dir, log and PID, and
 *   is stopped and cleaned up with tdaemon_stop()/tdaemon_cleanup().
 *     tcluster_router_init()   tdaemon_init(), then 00-server.ini says role = router
 *                              under a member name, on the TCP port and Unix socket
 *                              tdaemon_init() chose; start it with tdaemon_start().
 *     tcluster_worker_init()   tdaemon_init(), then 00-server.ini says role = worker,
 *                              router = ADDRESS, name = NAME and no listener; declare
 *                              its plugins with tdaemon_add_plugin().
 *     tcluster_worker_start()  spawns the worker and waits (bounded) until the router
 *                              lists it as a member: "started" means "registered".
 *   `extra` text is appended verbatim after the [server] keys, so it may add [server]
 *   keys ("heartbeat = 1s\n") and then further sections ("[limits]\nmax_message =
 *   32M\n"). Every wait polls with a bound and reports what it waited for on stderr.
 *
 * Ownership: the caller owns the tdaemon structs. No global state.
 */
#ifndef DAFFI_TEST_CLUSTER_H
#define DAFFI_TEST_CLUSTER_H

#include <stddef.h>

#include "daemon.h"
#include "rawmember.h"

/* Prepares d as a router named name (workers = 2) with extra (may be NULL). Returns 0
 * or -1 (reason printed; tdaemon_cleanup() is still safe). */
int tcluster_router_init(tdaemon *d, const char *name, const char *extra);

/* Prepares d as a worker named name of the router at router_addr (workers = 2) with
 * extra (may be NULL). Returns 0 or -1 (reason printed). */
int tcluster_worker_init(tdaemon *d, const char *router_addr, const char *name,
                         const char *extra);

/* Spawns the worker d (tdaemon_spawn) and waits at most timeout_ms until the router at
 * router_addr lists the member name. Returns 0, or -1 (the worker's log printed). */
int tcluster_worker_start(tdaemon *d, const char *router_addr, const char *name,
                          int timeout_ms);

/* tcluster_router_init() then tdaemon_start(); when admin is not NULL, the router
 * first gets an admin socket in its own dir (a drop-in file, 05-admin.ini), whose path
 * is written to admin (adminsz bytes). Returns 0 or -1 (printed). */
int tcluster_router_start(tdaemon *d, const char *name, const char *extra, char *admin,
                          size_t adminsz);

/* tcluster_worker_init(), tdaemon_add_plugin() for each of the NULL-terminated plugins
 * (may be NULL), then tcluster_worker_start(): "up" means "registered". Returns 0 or -1
 * (printed). */
int tcluster_worker_up(tdaemon *d, const char *router_addr, const char *name,
                       const char *extra, const char *const *plugins, int timeout_ms);

/* cmocka group setup of a router test: allocates a zeroed fixture of size bytes into
 * *state. Returns it, or NULL (the setup then returns -1). */
void *tcluster_fixture_new(void **state, size_t size);

/* The daemons of a router test that starts its own: a router (with its admin socket
 * path) and up to TCLUSTER_WORKERS workers. A zeroed set holds nothing. */
#define TCLUSTER_WORKERS 2
typedef struct tcluster_set {
    tdaemon router;
    tdaemon workers[TCLUSTER_WORKERS];
    char admin[200];
} tcluster_set;

/* cmocka group setup for a fixture that is a tcluster_set. Returns 0 or -1. */
int tcluster_set_setup(void **state);

/* A test's teardown of the set in *state: stopped daemons (SIGSTOP) are continued,
 * then each is discarded (tcluster_discard()); the set is zeroed for the next test.
 * Returns 0, or -1 when one did not stop cleanly. */
int tcluster_set_teardown(void **state);

/* cmocka group teardown of a router test whose tests start and stop their own
 * daemons: frees the fixture tcluster_fixture_new() made. Returns 0. */
int tcluster_group_free(void **state);

/* cmocka group teardown of a router test: stops worker (may be NULL), then router, with
 * tcluster_stop() (each must stop cleanly; both are stopped even when the first did
 * not), then frees the fixture f. Returns 0 or -1. */
int tcluster_fixture_free(void *f, tdaemon *worker, tdaemon *router);

/* Asks the router at router_addr (daffi.wait) for the NULL-terminated names, waiting
 * at most timeout_ms. Returns 0 once all are members, -1 otherwise (printed). */
int tcluster_wait_members(const char *router_addr, const char *const *names,
                          int timeout_ms);

/* Returns 1 when the router at router_addr lists name (daffi.members), 0 when it does
 * not, -1 when it cannot be asked. */
int tcluster_has_member(const char *router_addr, const char *name);

/* Polls daffi.members every 10 ms until name is gone, at most timeout_ms. Returns 0
 * once it is gone, -1 otherwise (printed). */
int tcluster_wait_gone(const char *router_addr, const char *name, int timeout_ms);

/* Sends SIGSTOP to d and waits at most timeout_ms until every one of its threads is
 * stopped (/proc/PID/task/ * /stat state T): a stop signal takes effect thread by thread,
 * and a loop thread can still answer a call in between. Returns 0 or -1 (printed). */
int tcluster_freeze(tdaemon *d, int timeout_ms);

/* Sends one command line (no newline) to the admin socket at admin_path and returns its
 * parsed JSON reply (the caller json_decref()s it; the type is jansson's, opaque here),
 * or NULL (printed). */
struct json_t *tcluster_admin(const char *admin_path, const char *command);

/* Reads counter `name` from the admin socket at admin_path ("stats" command).
 * Returns its value, or -1 (printed) when it cannot be read. */
long long tcluster_admin_counter(const char *admin_path, const char *name);

/* Stops pool p (rmpool_stop) and waits at most timeout_ms until the router at
 * router_addr no longer lists any of its members, so that the next test starts from
 * a clean member set. NULL p is a no-op. Returns 0 or -1 (printed). */
int tcluster_pool_stop(rmpool *p, const char *router_addr, int timeout_ms);

/* A test's teardown: tcluster_pool_stop(*p, router_addr, timeout_ms), then *p = NULL
 * whatever it returned. Returns 0 or -1 (printed). */
int tcluster_pool_discard(rmpool **p, const char *router_addr, int timeout_ms);

/* A fixture's daemon at the end of its group: when d was prepared (its dir is set) it
 * must stop cleanly (tdaemon_stop: SIGTERM, exit 0, including one that already exited
 * on its own), then its dir is removed (tdaemon_cleanup). Returns 0, or -1 when it did
 * not stop cleanly (printed). An unprepared d is a no-op returning 0. */
int tcluster_stop(tdaemon *d);

/* A daemon a test started itself, at its teardown: when d was prepared, stops it if it
 * still runs (it must stop cleanly), removes its dir and zeroes d for the next test.
 * Returns 0, or -1 when a running d did not stop cleanly (printed). */
int tcluster_discard(tdaemon *d);

/* Polls d's log every 10 ms until it contains needle, at most timeout_ms. Returns 1
 * once it does, 0 when it still does not by then (or the log cannot be read or the
 * buffer cannot be had). */
int tcluster_log_contains(const tdaemon *d, const char *needle, int timeout_ms);

/* How many times needle occurs in d's log now (its first 4 MiB), or -1. */
int tcluster_log_count(const tdaemon *d, const char *needle);

#endif /* DAFFI_TEST_CLUSTER_H */
