/*
 * monitor-t.h - the live feed of finished calls behind the admin `monitor` command
 * (types only; see monitor.h).
 */
#ifndef DFD_MONITOR_T_H
#define DFD_MONITOR_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

/* What a loop records of one finished call (text fields NUL-terminated, cut to fit;
 * the sink escapes them: method and params are whatever the caller sent). */
typedef struct dfd_monitor_rec {
    uint64_t wall_ns;           /* CLOCK_REALTIME when it finished */
    uint64_t duration_us;
    unsigned loop;
    unsigned outcome;           /* stats.h outcome index (dfd_outcome_name) */
    int notify;
    char peer[64];
    char callback[201];
    char plugin[64];            /* "" when no local plugin ran it (forwarded, refused) */
    char params[260];           /* as msgpack-c prints them, "..." when cut */
} dfd_monitor_rec;

/* Main thread: delivers a batch of n records (borrowed for the call) and how many were
 * dropped since the last batch because the feed was full. */
typedef void (*dfd_monitor_sink_fn)(void *arg, const dfd_monitor_rec *recs, unsigned n,
                                    uint64_t dropped);

typedef struct dfd_monitor {
    /* admin clients in monitor mode: the loops format a record only while it is > 0 */
    atomic_int watchers;
    /* the records the loops wrote since the main thread last took them */
    pthread_mutex_t lock;
    dfd_monitor_rec *pending;   /* owned; DFD_MONITOR_MAX_PENDING of them */
    unsigned n;
    uint64_t dropped;           /* records not taken since the last batch: feed full */
    uint64_t dropped_total;     /* all of them, since start */
    /* lines a watcher did not get because its unread output was full (the sink adds
     * to it; read by the metrics) */
    _Atomic uint64_t skipped_total;
    /* main thread */
    dfd_monitor_rec *spare;     /* owned; swapped with pending to take a batch */
    int wake_fd;                /* eventfd: a loop wrote into an empty feed */
    struct event wake_ev;
    int started;
    dfd_monitor_sink_fn sink;   /* NULL: nobody to deliver to (records are discarded) */
    void *sink_arg;
} dfd_monitor;

#endif /* DFD_MONITOR_T_H */
