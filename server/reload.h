/*
 * reload.h - hot reload: new plugin generations, the callback table switch, drain.
 *
 * Contract
 *   dfd_reload_run() re-reads the configuration directory with the same -o overrides
 *   and compares every plugin with the generation that serves it: its [plugin]
 *   settings, its [config] values and the content of its .so (stat first; when the
 *   stat differs, the bytes are compared with the generation's private copy, so a
 *   touch alone reloads nothing). A new or changed plugin gets a new generation
 *   (plugin.h: private copy, dlopen, ABI check, init); then one new callback table is
 *   built and posted to every loop, which switches to it between two events. Calls in
 *   flight keep the generation they started on.
 *
 *   A load that fails changes nothing for that plugin: its old generation keeps
 *   serving (a new plugin is simply not added) and the reason is logged and kept per
 *   plugin (dfd_reload_plugin.last_error) for the admin socket. A new generation whose
 *   callbacks clash with another plugin's is refused the same way. A configuration
 *   that does not parse changes nothing at all. A plugin whose ini is removed (or
 *   disabled) leaves the table; its callbacks answer NO_CALLBACK.
 *
 *   Replaced and removed generations retire: the engine keeps one reference on each
 *   and finalises it (fini, dlclose, unlink of the copy) on the main thread once no
 *   table and no call holds it and every loop has passed an event boundary since (so
 *   no loop thread is still returning into its code). A generation that has not
 *   drained by its deadline (its call timeout, else [server] default_timeout, else
 *   30 s; plus DFD_RELOAD_DRAIN_GRACE_MS) is reported in the log once and stays
 *   mapped until its last call completes.
 *
 *   Server settings that cannot change at runtime (listen, workers, role, limits...)
 *   are compared with the running ones and every difference is logged as
 *   reload.restart_required; [log] level and target are applied; the certificates,
 *   the tokens, the [auth] rules and the [admin] allow lists are taken (tls.h,
 *   auth.h, admin.h).
 *
 * Threads: everything here runs on the main thread (signals, inotify, admin socket).
 * Memory: the dfd_reload and everything it points to is owned by the engine; the
 * records returned by the accessors are valid until the next reload.
 */
#ifndef DFD_RELOAD_H
#define DFD_RELOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "config-t.h"
#include "plugin-t.h"

struct dfd_server;
struct dfd_table;
struct event;

/* Added to a retiring generation's call deadline before it is reported. */
#define DFD_RELOAD_DRAIN_GRACE_MS 1000u
/* The call deadline assumed when neither the plugin nor the server sets one. */
#define DFD_RELOAD_DRAIN_DEFAULT_MS 30000u

typedef enum dfd_reload_outcome {
    DFD_RELOAD_NONE = 0,      /* loaded at start; no reload touched it yet */
    DFD_RELOAD_LOADED,        /* the last reload loaded a new generation */
    DFD_RELOAD_UNCHANGED,     /* the last reload found nothing to do */
    DFD_RELOAD_FAILED,        /* the last attempt failed: last_error says why */
    DFD_RELOAD_REMOVED        /* its ini is gone or disabled: unloaded */
} dfd_reload_outcome;

/* What the engine knows about one plugin name (kept after removal so that generation
 * numbers keep counting up if it comes back). */
typedef struct dfd_reload_plugin {
    char *name;                   /* owned */
    char *path;                   /* .so path of the latest configuration read; owned
                                     (watch.c watches it) */
    int configured;               /* the latest configuration declares it, enabled */
    dfd_plugin *current;          /* the serving generation, or NULL (srv->plugins
                                     holds the reference) */
    unsigned last_generation;     /* highest generation number loaded so far */

    /* what `current` was loaded from */
    dfd_plugin_conf applied;      /* deep copy: name, path, settings, [config] */
    struct stat applied_st;       /* the .so as stat'ed before that load */
    int applied_st_known;         /* 0: compare contents on the next check */

    /* the last attempt */
    dfd_reload_outcome outcome;
    char *last_error;             /* owned; NULL unless outcome is FAILED */
    time_t last_time;             /* wall clock of the last attempt, 0 = never */
} dfd_reload_plugin;

/* A generation that left the table and waits for its calls to drain. */
typedef struct dfd_reload_retiring {
    dfd_plugin *gen;              /* one reference, the engine's */
    uint64_t since_ns;            /* monotonic time it left the table */
    uint64_t deadline_ns;         /* reported as overdue past this */
    int overdue;                  /* 1 once reported */
    int fenced;                   /* 1: drained, waiting for the loop barrier */
} dfd_reload_retiring;

typedef struct dfd_reload {
    struct dfd_server *srv;
    dfd_reload_plugin *plugins;   /* owned array, in order of first appearance */
    size_t nplugins;
    size_t cap;

    dfd_reload_retiring *retiring; /* owned array */
    size_t nretiring;
    size_t retiring_cap;
    struct event *retire_timer;   /* on the main base, armed while any retire */
    struct dfd_table *fence;      /* barrier: a table the loops were switched away
                                     from (one reference), or NULL */

    int log_level;                /* [log] of the last configuration read */
    dfd_log_target log_target;
    dfd_log_format log_format;
    int access_log;               /* [log] access_log of the last configuration read */

    unsigned runs;                /* reloads attempted */
    unsigned failures;            /* reloads with at least one failure */
    int last_ok;                  /* 1 when the last reload failed nothing */
    char *last_error;             /* owned: the last configuration error, or NULL */
    time_t last_time;
    time_t last_ok_time;          /* of the last reload that failed nothing (at start:
                                     the start, whose configuration loaded) */
    uint64_t last_duration_us;    /* of the last reload: trigger to tables posted */
} dfd_reload;

/* Creates the engine for a started server (plugins loaded, loops running): one record
 * per current generation. Returns it (owned by the caller: srv->reload), or NULL when
 * memory runs out (logged). */
dfd_reload *dfd_reload_new(struct dfd_server *srv);

/* Releases the engine and the generations it keeps retiring (their last reference may
 * finalise them). Call after the loops are destroyed. NULL is accepted. */
void dfd_reload_free(dfd_reload *r);

/* Reloads what changed (only_plugin NULL) or loads a fresh generation of only_plugin
 * even when unchanged (other plugins are left as they are). Logs every step. Returns
 * 0 when nothing failed, -1 with every failure appended to errs ("plugin NAME: FILE:
 * reason", or the configuration's "file:line: ..." errors). Main thread only. */
int dfd_reload_run(struct dfd_server *srv, const char *only_plugin, dfd_errors *errs);

/* Returns the record of plugin name, or NULL. */
const dfd_reload_plugin *dfd_reload_find(const dfd_reload *r, const char *name);

/* Returns "none", "loaded", "unchanged", "failed", "removed". */
const char *dfd_reload_outcome_name(dfd_reload_outcome o);

#endif /* DFD_RELOAD_H */
