/*
 * server.h - the daffid process: configuration, plugin generations, the callback
 * table, the loop pool, the blocking pool, listeners, signals and shutdown.
 *
 * The main thread owns the dfd_server. It accepts connections and hands them to the
 * loops round-robin, handles signals, and drives shutdown. Everything a loop needs
 * from it at run time is read-only after start (cfg, limits) or atomic.
 */
#ifndef DFD_SERVER_H
#define DFD_SERVER_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>

#include <event2/event.h>
#include <daffi/rpc.h>

#include "auth.h"
#include "budget-t.h"
#include "config.h"
#include "loop.h"
#include "members.h"
#include "monitor-t.h"
#include "plugin-t.h"
#include "table.h"
#include "tls.h"

struct dfd_blocking;
struct dfd_listener;
struct dfd_reload;
struct dfd_admin;
struct dfd_metrics_http;
struct dfd_watch;
struct dfd_worker;
struct dfd_nats_member;
struct dfd_nats_gateway;
struct dfd_watchdog;
struct dfd_supervisor;

struct dfd_conn;
struct dfd_call;

typedef struct dfd_server {
    dfd_config *cfg;                 /* owned */
    /* where a request that is not a daffi.* method goes: the callback table
     * (service, worker) or the members (router); set once at init */
    void (*route)(struct dfd_conn *c, struct dfd_call *call);
    daffi_limits limits;             /* from cfg, for the codec */
    char private_dir[PATH_MAX];      /* private copies of plugin files ("": none) */
    int private_dir_fd;              /* private_dir, locked (valid when it is set) */

    dfd_plugin **plugins;            /* current generations (one reference each) */
    size_t nplugins;
    dfd_table *table;                /* current table (one reference) */

    dfd_loop *loops;
    unsigned nloops;
    unsigned next_loop;              /* round-robin cursor (main thread only) */
    struct dfd_blocking *blocking;
    struct dfd_listener *listeners;
    size_t nlisteners;

    struct event_base *base;         /* main thread: accept, signals, drain timer */
    struct event *sig_events[4];
    struct event *drain_timer;
    uint64_t drain_deadline_ns;
    atomic_int draining;             /* shutting down (SIGTERM/SIGINT, admin shutdown) */
    atomic_int access_log;           /* [log] access_log, switched at run time by a
                                        reload or the admin `accesslog` */
    int drain_started;               /* dfd_server_drain ran (main thread) */
    atomic_uint conns;               /* open connections, all loops */
    atomic_uint rejected;            /* refused at max_connections */
    unsigned rejected_unlogged;      /* of them not in the log yet (listener.c) */
    struct event *rejected_log_ev;   /* the once-a-second line of refusals */
    dfd_budget budget;               /* [limits] max_memory (budget.h) */
    struct dfd_watchdog *watchdog;   /* owned; the loop watchdog (watchdog.h) */
    int exit_code;
    unsigned abandoned;              /* calls left unfinished at shutdown_timeout */
    uint64_t started_ns;
    dfd_registry registry;           /* router: the members */
    struct dfd_worker *worker;       /* worker role: the connection to the router */
    struct dfd_nats_member *nats_member; /* worker role with router = nats://: the NATS
                                        member (nats-member.h); NULL otherwise */
    struct dfd_nats_gateway *nats_gateway; /* router with [server] nats: the gateway
                                        (nats-gateway.h); NULL otherwise */
    struct dfd_supervisor *supervisor; /* isolation = process: the children (isolate.h);
                                        main thread; NULL until needed */

    /* hot reload (reload.h, watch.h): main thread only */
    const char *const *overrides;    /* the -o overrides every reload applies again;
                                        not owned (main's argv), set after init */
    size_t noverrides;
    struct dfd_reload *reload;       /* owned: generations, per-plugin results */
    struct dfd_watch *watch;         /* owned; NULL when inotify is unavailable */

    /* operations (stats.h, admin.h, metrics.h, sdnotify.h) */
    dfd_callstat_names callnames;    /* (plugin, callback) -> stats slot; any thread */
    struct dfd_admin *admin;         /* owned; NULL without [admin] socket */
    dfd_monitor monitor;             /* the live feed of calls (admin `monitor`); set up
                                        before the loops, freed after them */
    struct dfd_metrics_http *metrics_http; /* owned; NULL without metrics_listen */

    /* security (tls.h, auth.h): the TLS contexts, the tokens and the [auth] rules,
     * swapped at reload */
    dfd_tls tls;
    dfd_auth auth;
    int security_init;               /* their mutexes exist (dfd_server_init) */
} dfd_server;

/* Loads the plugins named by cfg into private generations and builds the table.
 * Returns 0, or -1 with every failure in errs. Used by daffid -t too. */
int dfd_server_load_plugins(dfd_server *srv, dfd_errors *errs);
/* Loads one generation of pc: dfd_plugin_load, or with isolation = process
 * dfd_isolate_load (its children started). Same contract. Main thread. */
int dfd_server_load_plugin(dfd_server *srv, const dfd_plugin_conf *pc, unsigned generation,
                           dfd_plugin **out, dfd_errors *errs);
/* Creates the private dir for plugin copies (privdir.c: under $RUNTIME_DIRECTORY,
 * /run/daffid or $TMPDIR/daffid-UID), locked for this process's life, after removing
 * the ones crashed daffids left there. Returns 0 or -1 (logged). */
int dfd_server_private_dir(dfd_server *srv);
/* Removes the (empty) private dir and drops its lock; nothing when there is none. */
void dfd_server_private_dir_remove(dfd_server *srv);

/* Initialises a server from a loaded configuration (taking ownership of cfg): plugins,
 * listeners, loops, blocking pool. Returns 0, or -1 with the reasons in errs. */
int dfd_server_init(dfd_server *srv, dfd_config *cfg, dfd_errors *errs);
/* Runs until shutdown completes; returns the process exit code. */
int dfd_server_run(dfd_server *srv);
/* Releases everything the server owns. */
void dfd_server_destroy(dfd_server *srv);

/* The one drain (SIGTERM and the admin `drain`): stop accepting and tell every loop to
 * drain (new calls get SHUTTING_DOWN; connections close as their calls are answered).
 * Main thread. Returns 1 when it started now, 0 when it already had. */
int dfd_server_drain(dfd_server *srv);
/* Undoes dfd_server_drain (the admin `resume`): listen again, loops take calls again.
 * Main thread. Returns 1 when it resumed, 0 when nothing was drained, -1 with the
 * reasons in errs (a listener cannot bind again, or daffid is shutting down). */
int dfd_server_resume(dfd_server *srv, dfd_errors *errs);
/* Loops that still hold connections or handler calls (0: drained). */
unsigned dfd_server_busy_loops(const dfd_server *srv);
/* Handler calls not finished yet, all loops (an estimate while they run). */
unsigned dfd_server_calls_left(const dfd_server *srv);

/* Starts a graceful shutdown (main thread): drain, then exit when drained or at
 * shutdown_timeout. */
void dfd_server_shutdown(dfd_server *srv);

/* Monotonic clock in nanoseconds. */
uint64_t dfd_now_ns(void);

#endif /* DFD_SERVER_H */
