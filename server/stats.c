/*
 * stats.c - the counter table (see stats.h): names, kinds, help texts, the per-callback
 * slots, the hot-path recorders and the read side that sums the loops.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"
#include "budget.h"
#include "call-t.h"
#include "isolate.h"
#include "loop.h"
#include "monitor.h"
#include "plugin-t.h"
#include "procstat.h"
#include "reload.h"
#include "server.h"
#include "stats.h"
#include "table.h"
#include "watchdog.h"

static const struct {
    const char *name;
    dfd_stat_kind kind;
    unsigned flags;
    const char *help;
} counters[DFD_STAT_COUNT] = {
#define DFD_X_DEF(name, kind, flags, help) {#name, kind, flags, help},
    DFD_COUNTERS(DFD_X_DEF)
#undef DFD_X_DEF
};

static const uint64_t latency_bounds_us[DFD_LATENCY_NBOUNDS] = DFD_LATENCY_BOUNDS_US;

const char *dfd_stat_name(enum dfd_counter c)
{
    return counters[c].name;
}

dfd_stat_kind dfd_stat_kind_of(enum dfd_counter c)
{
    return counters[c].kind;
}

unsigned dfd_stat_flags(enum dfd_counter c)
{
    return counters[c].flags;
}

const char *dfd_stat_help(enum dfd_counter c)
{
    return counters[c].help;
}

json_t *dfd_stat_json(enum dfd_counter c, uint64_t v)
{
    if (v == DFD_STAT_UNKNOWN)
        return json_null();
    if (counters[c].flags & DFD_STAT_F_MICRO)
        return json_real((double)v / 1e6);
    return json_integer((json_int_t)v);
}

/* The outcome names: the wire error names (daffi_error_name), lower-cased once. */
static char outcome_names[DFD_OUTCOMES][24];
static pthread_once_t outcome_names_once = PTHREAD_ONCE_INIT;

static void outcome_names_init(void)
{
    snprintf(outcome_names[0], sizeof(outcome_names[0]), "ok");
    snprintf(outcome_names[DFD_OUTCOME_OTHER], sizeof(outcome_names[0]), "other");
    for (unsigned o = 1; o < DFD_OUTCOME_OTHER; o++) {
        const char *n = daffi_error_name((int)o);
        size_t i = 0;
        for (; n[i] != '\0' && i + 1 < sizeof(outcome_names[o]); i++)
            outcome_names[o][i] = (char)tolower((unsigned char)n[i]);
        outcome_names[o][i] = '\0';
    }
}

/* Accepts an outcome index (0..DFD_OUTCOMES-1). Returns a static name. */
const char *dfd_outcome_name(unsigned outcome)
{
    pthread_once(&outcome_names_once, outcome_names_init);
    return outcome_names[outcome < DFD_OUTCOMES ? outcome : DFD_OUTCOME_OTHER];
}

uint64_t dfd_latency_bound_us(unsigned i)
{
    return i < DFD_LATENCY_NBOUNDS ? latency_bounds_us[i] : UINT64_MAX;
}

/* ---- the slot registry ------------------------------------------------------------ */

int dfd_callstat_names_init(dfd_callstat_names *r)
{
    memset(r, 0, sizeof(*r));
    atomic_init(&r->n, 0);
    return pthread_mutex_init(&r->lock, NULL) == 0 ? 0 : -1;
}

/* Frees the names (the registry must be initialised, or zeroed). */
void dfd_callstat_names_destroy(dfd_callstat_names *r)
{
    unsigned n = atomic_load(&r->n);
    for (unsigned i = 0; i < n; i++) {
        free(r->plugin[i]);
        free(r->callback[i]);
    }
    atomic_store(&r->n, 0);
    pthread_mutex_destroy(&r->lock);
}

/* Returns the slot of (plugin, callback) among the first n, or -1. Under the lock or
 * from a reader that loaded n with acquire. */
static int callstat_lookup(const dfd_callstat_names *r, unsigned n, const char *plugin,
                           const char *callback)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(r->plugin[i], plugin) == 0 && strcmp(r->callback[i], callback) == 0)
            return (int)i;
    return -1;
}

/* Finds or appends (plugin, callback). The last slot is the shared overflow; when
 * memory runs out the pair is counted there too. Past DFD_CALLSTAT_FORWARDED_MAX
 * forwarded pairs, the next ones share the pair (plugin, "_other"): an ordinary slot,
 * so that the slots in use stay the first n (readers walk them). */
static unsigned callstat_register(dfd_callstat_names *r, const char *plugin,
                                  const char *callback, int forwarded)
{
    pthread_mutex_lock(&r->lock);
    unsigned n = atomic_load_explicit(&r->n, memory_order_relaxed);
    int found = callstat_lookup(r, n, plugin, callback);
    if (found == -1 && forwarded && r->nforwarded >= DFD_CALLSTAT_FORWARDED_MAX) {
        callback = "_other";
        found = callstat_lookup(r, n, plugin, callback);
    }
    if (found != -1) {
        pthread_mutex_unlock(&r->lock);
        return (unsigned)found;
    }
    unsigned slot = DFD_CALLSTAT_SLOTS - 1;
    if (n < DFD_CALLSTAT_SLOTS - 1) {
        char *p = strdup(plugin), *c = strdup(callback);
        if (p != NULL && c != NULL) {
            r->plugin[n] = p;
            r->callback[n] = c;
            slot = n;
            r->nforwarded += forwarded != 0;
            /* release: a reader that sees n sees the names */
            atomic_store_explicit(&r->n, n + 1, memory_order_release);
        } else {
            free(p);
            free(c);
        }
    }
    /* The overflow is named (and n reaches DFD_CALLSTAT_SLOTS) only once every slot
     * before it is in use: readers walk the first n and need each one named. When
     * memory ran out earlier, the pair is counted in the overflow all the same. */
    if (n == DFD_CALLSTAT_SLOTS - 1) {
        char *p = strdup("_other"), *c = strdup("_other");
        if (p != NULL && c != NULL) {
            r->plugin[n] = p;
            r->callback[n] = c;
            atomic_store_explicit(&r->n, DFD_CALLSTAT_SLOTS, memory_order_release);
        } else {
            free(p);
            free(c);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return slot;
}

unsigned dfd_callstat_slot(dfd_server *srv, const dfd_callback *cb)
{
    /* the callback lives in a calloc'd array: the cache may be written through it */
    _Atomic unsigned *cache = (_Atomic unsigned *)&cb->stat_slot;
    unsigned s = atomic_load_explicit(cache, memory_order_relaxed);
    if (s != 0)
        return s - 1;
    unsigned slot = callstat_register(&srv->callnames, cb->plugin->name, cb->name, 0);
    atomic_store_explicit(cache, slot + 1, memory_order_relaxed);
    return slot;
}

unsigned dfd_callstat_forwarded_slot(dfd_server *srv, const char *callback,
                                     _Atomic unsigned *cache)
{
    unsigned s = atomic_load_explicit(cache, memory_order_relaxed);
    if (s != 0)
        return s - 1;
    unsigned slot = callstat_register(&srv->callnames, DFD_FORWARDED_PLUGIN, callback, 1);
    atomic_store_explicit(cache, slot + 1, memory_order_relaxed);
    return slot;
}

int dfd_callstat_find(dfd_server *srv, const char *plugin, const char *callback)
{
    unsigned n = atomic_load_explicit(&srv->callnames.n, memory_order_acquire);
    return callstat_lookup(&srv->callnames, n, plugin, callback);
}

/* ---- hot path --------------------------------------------------------------------- */

void dfd_stats_call_start(dfd_loop *loop, const dfd_callback *cb)
{
    dfd_stats_slot_start(loop, dfd_callstat_slot(loop->srv, cb));
}

void dfd_stats_slot_start(dfd_loop *loop, unsigned slot)
{
    dfd_relaxed_add(&loop->stats.calls[slot].started, 1);
}

/* Bytes of a msgpack uint holding v. */
static size_t pack_uint_size(uint32_t v)
{
    return v < 128 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : 5;
}

/* Returns the outcome index the caller saw (or would have seen): a TIMEOUT already sent wins; a
 * result over max_message was answered TOO_LARGE (conn.c, the same size rule as
 * daffi_call_write_response: [1, msgid, nil, result] around the packed result). */
unsigned dfd_stats_call_outcome(const dfd_call *call)
{
    size_t max_message = call->loop->srv->limits.max_message;
    if (call->answered)
        return DAFFI_E_TIMEOUT;
    if (call->base.outcome == DAFFI_OUTCOME_ERROR ||
        call->base.outcome == DAFFI_OUTCOME_RAW_ERROR) { /* a member's error, relayed */
        int code = call->base.error_code;
        return code >= 1 && code < DFD_OUTCOME_OTHER ? (unsigned)code : DFD_OUTCOME_OTHER;
    }
    if (call->base.outcome == DAFFI_OUTCOME_RESULT && !call->notify &&
        call->base.result.size + 3 + pack_uint_size(call->msgid) > max_message)
        return DAFFI_E_TOO_LARGE;
    return 0;
}

unsigned dfd_stats_outcome_of(const dfd_call *call, int refused)
{
    if (refused < 0)
        return dfd_stats_call_outcome(call);
    return refused < DFD_OUTCOME_OTHER ? (unsigned)refused : DFD_OUTCOME_OTHER;
}

void dfd_stats_call_end(dfd_loop *loop, const dfd_call *call)
{
    unsigned slot;
    if (call->cb != NULL)
        slot = dfd_callstat_slot(loop->srv, call->cb);
    else if (call->fwd_slot != 0)
        slot = call->fwd_slot - 1;
    else
        return;
    dfd_callstat *cs = &loop->stats.calls[slot];
    uint64_t ns = dfd_now_ns() - call->start_ns;
    uint64_t us = ns / 1000u;
    unsigned b = 0;
    while (b < DFD_LATENCY_NBOUNDS && us > latency_bounds_us[b])
        b++;
    dfd_relaxed_add(&cs->outcome[dfd_stats_call_outcome(call)], 1);
    dfd_relaxed_add(&cs->bucket[b], 1);
    dfd_relaxed_add(&cs->sum_ns, ns);
}

/* ---- read side -------------------------------------------------------------------- */

void dfd_callstat_read(const dfd_server *srv, unsigned slot, dfd_callstat_sum *out)
{
    memset(out, 0, sizeof(*out));
    if (slot >= DFD_CALLSTAT_SLOTS)
        return;
    for (unsigned l = 0; l < srv->nloops; l++) {
        const dfd_callstat *cs = &srv->loops[l].stats.calls[slot];
        uint64_t finished = 0;
        /* outcomes before started: a call finishes on the loop that started it, so
         * started read later is never below what finished */
        for (unsigned o = 0; o < DFD_OUTCOMES; o++) {
            uint64_t v = atomic_load_explicit(&cs->outcome[o], memory_order_relaxed);
            out->outcome[o] += v;
            finished += v;
        }
        for (unsigned b = 0; b <= DFD_LATENCY_NBOUNDS; b++)
            out->bucket[b] += atomic_load_explicit(&cs->bucket[b], memory_order_relaxed);
        out->sum_ns += atomic_load_explicit(&cs->sum_ns, memory_order_relaxed);
        uint64_t started = atomic_load_explicit(&cs->started, memory_order_relaxed);
        out->started += started;
        out->finished += finished;
        out->in_flight += started > finished ? started - finished : 0;
    }
    out->errors = out->finished - out->outcome[0];
    for (unsigned b = 1; b <= DFD_LATENCY_NBOUNDS; b++)
        out->bucket[b] += out->bucket[b - 1];
}

/* Calls waiting for a concurrency slot in the current generations (under each
 * plugin's lock). */
static uint64_t stats_queue_depth(const dfd_server *srv)
{
    uint64_t n = 0;
    for (size_t i = 0; i < srv->nplugins; i++) {
        dfd_plugin *p = srv->plugins[i];
        pthread_mutex_lock(&p->lock);
        n += p->queued;
        pthread_mutex_unlock(&p->lock);
    }
    return n;
}

/* The process_* entries, all DFD_STAT_UNKNOWN when /proc cannot tell. */
static void stats_process(uint64_t out[DFD_STAT_COUNT])
{
    dfd_procstat ps;
    int ok = dfd_procstat_read(&ps) == 0;
    out[DFD_STAT_process_cpu_seconds] = ok ? ps.cpu_us : DFD_STAT_UNKNOWN;
    out[DFD_STAT_process_resident_memory_bytes] = ok ? ps.rss_bytes : DFD_STAT_UNKNOWN;
    out[DFD_STAT_process_virtual_memory_bytes] = ok ? ps.vsize_bytes : DFD_STAT_UNKNOWN;
    out[DFD_STAT_process_open_fds] = ok ? ps.open_fds : DFD_STAT_UNKNOWN;
    out[DFD_STAT_process_max_fds] = ok ? ps.max_fds : DFD_STAT_UNKNOWN;
    /* whole seconds, as the other timestamps of the table */
    out[DFD_STAT_process_start_time_seconds] = ok ? ps.start_time_us / 1000000u
                                                  : DFD_STAT_UNKNOWN;
}

void dfd_stats_snapshot(dfd_server *srv, uint64_t out[DFD_STAT_COUNT])
{
    memset(out, 0, DFD_STAT_COUNT * sizeof(out[0]));
    for (unsigned l = 0; l < srv->nloops; l++)
        for (unsigned c = 0; c < DFD_STAT_COUNT; c++)
            if (counters[c].kind == DFD_COUNTER)
                out[c] += dfd_stat_get(&srv->loops[l].stats, (enum dfd_counter)c);
    out[DFD_STAT_connections_rejected] += atomic_load(&srv->rejected);
    out[DFD_STAT_loop_stalls] += dfd_watchdog_stalls(srv);
    out[DFD_STAT_admin_denied] += dfd_admin_denied(srv);
    out[DFD_STAT_memory_used_bytes] = dfd_budget_used(srv);
    out[DFD_STAT_memory_limit_bytes] = srv->budget.limit;
    out[DFD_STAT_loops_stalled] = dfd_watchdog_stalled(srv);
    if (srv->reload != NULL) {
        out[DFD_STAT_reloads] += srv->reload->runs;
        out[DFD_STAT_reload_failures] += srv->reload->failures;
    }
    dfd_supervisor_counts(srv, &out[DFD_STAT_isolated_crashes],
                          &out[DFD_STAT_isolated_restarts], &out[DFD_STAT_isolated_harakiri],
                          &out[DFD_STAT_isolated_children]);
    out[DFD_STAT_connections_open] = atomic_load(&srv->conns);
    unsigned n = atomic_load_explicit(&srv->callnames.n, memory_order_acquire);
    for (unsigned s = 0; s < n; s++) {
        dfd_callstat_sum sum;
        dfd_callstat_read(srv, s, &sum);
        out[DFD_STAT_calls_in_flight] += sum.in_flight;
    }
    out[DFD_STAT_queue_depth] = stats_queue_depth(srv);
    for (unsigned l = 0; l < srv->nloops; l++)
        out[DFD_STAT_waits_parked] += atomic_load(&srv->loops[l].nwaiters);
    /* a service or worker is its own only member; a router counts its registry (its
     * own plugins are a member there too) */
    out[DFD_STAT_members] = 1;
    if (srv->cfg->role == DFD_ROLE_ROUTER) {
        pthread_mutex_lock(&srv->registry.lock);
        out[DFD_STAT_members] = srv->registry.n;
        pthread_mutex_unlock(&srv->registry.lock);
    }
    out[DFD_STAT_plugins] = srv->nplugins;
    out[DFD_STAT_callbacks] = srv->table ? srv->table->ncallbacks : 0;
    out[DFD_STAT_monitor_dropped] += dfd_monitor_dropped(&srv->monitor);
    out[DFD_STAT_monitor_watchers] = dfd_monitor_watchers(&srv->monitor);
    out[DFD_STAT_uptime_seconds] = (dfd_now_ns() - srv->started_ns) / 1000000000u;
    out[DFD_STAT_config_last_reload_successful] = srv->reload ? srv->reload->last_ok != 0 : 1;
    out[DFD_STAT_config_last_reload_success_timestamp_seconds] =
        srv->reload ? (uint64_t)srv->reload->last_ok_time : DFD_STAT_UNKNOWN;
    stats_process(out);
}
