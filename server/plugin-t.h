/*
 * plugin-t.h - a loaded plugin generation (types only).
 *
 * One dfd_plugin is one generation of one plugin: the private copy of its .so, the
 * dlopen handle, the descriptor, the state init() returned, and its callbacks. It is
 * reference counted: the callback table holds one reference and every call in flight
 * holds one. The last reference finalises it (fini, dlclose, unlink of the copy), so
 * code is never unmapped under a running call.
 */
#ifndef DFD_PLUGIN_T_H
#define DFD_PLUGIN_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <daffi/plugin.h>

#include "config-t.h"

struct dfd_plugin;
struct dfd_call;
struct dfd_isolate;

/* One callback of a generation. name points into the mapped descriptor (or, for a
 * generation served by child processes, into its isolate's copy). */
typedef struct dfd_callback {
    const char *name;
    daffi_handler_fn fn;
    unsigned flags;               /* DAFFI_CB_* */
    struct dfd_plugin *plugin;    /* the generation it belongs to (not a reference) */
    _Atomic unsigned stat_slot;   /* stats.h: 1 + its slot in the server's callstat
                                     registry, 0 until first used (zero from calloc) */
} dfd_callback;

/* The SDK's opaque daffi_host: what a plugin instance sees of the host. */
struct daffi_host {
    struct dfd_plugin *plugin;
    char error[512];              /* set by daffi_host_error() during init */
};

typedef struct dfd_plugin {
    char *name;                   /* the [plugin] name; owned */
    char *file;                   /* the configured .so path; owned */
    char *private_path;           /* the private copy that was dlopened; owned, unlinked
                                     when the generation is freed */
    char *ini;                    /* the ini file that declared it; owned */
    void *dl;                     /* dlopen handle */
    const daffi_plugin_descriptor *desc; /* inside the mapping */
    void *state;                  /* what init() returned */
    int initialised;              /* 1 once init() returned 0: fini() is due */
    unsigned generation;          /* 1, 2, ... per plugin name */
    struct daffi_host host;

    dfd_callback *callbacks;      /* owned array */
    size_t ncallbacks;
    dfd_kv *config;               /* owned copy of [config] */
    size_t nconfig;

    /* settings copied from the dfd_plugin_conf */
    unsigned concurrency;         /* 0 = unlimited */
    unsigned queue;
    unsigned blocking_max;        /* its calls on the blocking pool at once; 0 = no cap */
    uint64_t timeout_ms;          /* 0 = server default */

    /* isolation = process (isolate.h): the generation is served by child processes
     * and holds no mapping here. NULL for a generation loaded in this process. */
    struct dfd_isolate *iso;           /* the children serving it (isolate.c's) */
    void (*forward)(struct dfd_call *call); /* dispatch hands it a call instead of
                                           running the handler (on the call's loop) */
    void (*fini_hook)(struct dfd_plugin *p); /* the last release runs it first */

    /* runtime, owned by dispatch: lock guards running/queued and the queue list */
    atomic_long refs;             /* table + calls in flight */
    pthread_mutex_t lock;
    unsigned running;
    unsigned queued;
    struct dfd_call *queue_head;
    struct dfd_call *queue_tail;
    unsigned blocking_running;    /* its calls running on the pool; the pool's lock */
} dfd_plugin;

#endif /* DFD_PLUGIN_T_H */
