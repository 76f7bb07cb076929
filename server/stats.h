/*
 * stats.h - every counter daffid keeps, declared once (name, type, help text); the same
 * table feeds every view (admin `stats`, Prometheus `metrics`).
 *
 * Two kinds of entries share the table:
 *   DFD_COUNTER  monotonic; lives per loop thread (dfd_stats in each dfd_loop) and is
 *                written only by that thread with relaxed atomics (plain loads and
 *                stores on x86, no lock prefix); readers sum the loops. A few are
 *                counted by the main thread instead (connections_rejected, reloads,
 *                reload_failures, loop_stalls, admin_denied): dfd_stats_snapshot() reads those from
 *                the server.
 *   DFD_GAUGE    a level (connections open, calls in flight, queue depth...), read
 *                from the server when a snapshot is taken; nothing is stored per loop.
 *   The process_* entries (DFD_STAT_F_PROCESS) are read from /proc when a snapshot is
 *   taken (procstat.h), the config_last_reload_* ones from the reload engine, the
 *   isolated_* ones from the supervisor of isolated plugins (isolate.h).
 *
 * Calls by callback. Each (plugin, callback) pair gets a slot in the server's
 * registry the first time it is called or shown; the slot index is cached in the
 * dfd_callback (stat_slot), so the hot path costs one relaxed load to find it. Each
 * loop has a dfd_callstat per slot: calls started, outcomes (ok and each error code)
 * and a latency histogram. Readers sum the loops. Slots are never reused, so a
 * callback keeps its counters across reloads; past DFD_CALLSTAT_SLOTS pairs the rest
 * share the last slot (shown as plugin "_other", callback "_other").
 *
 * A router counts the calls it forwards to members the same way, under the plugin
 * name "_forwarded" and the callback's name (the slot cached in the snapshot's entry
 * for that callback). Members name their callbacks, so at most
 * DFD_CALLSTAT_FORWARDED_MAX such pairs get a slot of their own and the rest share
 * ("_forwarded", "_other"): a member announcing thousands of names cannot take the
 * slots of the router's own plugins.
 */
#ifndef DFD_STATS_H
#define DFD_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct dfd_server;
struct dfd_loop;
struct dfd_call;
struct dfd_callback;

typedef enum dfd_stat_kind { DFD_COUNTER = 0, DFD_GAUGE = 1 } dfd_stat_kind;

/* Entry flags. */
#define DFD_STAT_F_PROCESS 0x1u /* a process_* entry, read from /proc (procstat.h) and
                                   shown under the name the Prometheus client
                                   libraries give it: no daffid_ prefix */
#define DFD_STAT_F_MICRO 0x2u   /* the value counts millionths of the unit its name
                                   says (seconds): views show value / 1e6 */
/* A value that could not be read (/proc unreadable): views leave it out (null). */
#define DFD_STAT_UNKNOWN UINT64_MAX

/* name, kind, flags, help. Names follow the Prometheus naming rules (the unit last and
 * plural, _total added to counters by the metrics view); the admin `stats` view shows
 * the same names without _total. */
#define DFD_COUNTERS(X)                                                                  \
    X(connections_accepted, DFD_COUNTER, 0, "Connections accepted")                      \
    X(connections_closed, DFD_COUNTER, 0, "Connections closed")                          \
    X(connections_rejected, DFD_COUNTER, 0, "Connections refused at max_connections")    \
    X(requests, DFD_COUNTER, 0, "Requests received")                                     \
    X(notifications, DFD_COUNTER, 0, "Notifications received")                           \
    X(responses_ok, DFD_COUNTER, 0, "Responses sent with a result")                      \
    X(responses_error, DFD_COUNTER, 0, "Responses sent with an error")                   \
    X(unknown_notifications, DFD_COUNTER, 0, "Notifications naming no callback, ignored")\
    X(unexpected_responses, DFD_COUNTER, 0,                                              \
      "Responses matching no outstanding call, ignored")                                 \
    X(no_callback, DFD_COUNTER, 0, "Calls naming no callback")                           \
    X(overloaded, DFD_COUNTER, 0, "Calls refused with OVERLOADED")                       \
    X(timeouts, DFD_COUNTER, 0, "Calls answered with TIMEOUT")                           \
    X(protocol_errors, DFD_COUNTER, 0, "Connections closed for malformed input")         \
    X(too_large, DFD_COUNTER, 0, "Messages refused for exceeding max_message")           \
    X(late_completions, DFD_COUNTER, 0,                                                  \
      "Handler completions after the caller left or timed out")                          \
    X(forwarded, DFD_COUNTER, 0, "Calls forwarded to a member (router)")                 \
    X(forgotten, DFD_COUNTER, 0,                                                         \
      "Forwarded calls dropped by the router at their deadline")                         \
    X(memory_refused, DFD_COUNTER, 0,                                                    \
      "Calls refused with OVERLOADED past max_memory or max_connection_memory")          \
    X(memory_waits, DFD_COUNTER, 0,                                                      \
      "Times a message arriving waited for room in the memory budget")                   \
    X(memory_shed, DFD_COUNTER, 0,                                                       \
      "Connections closed for not reading their output past max_memory")                 \
    X(idle_timeouts, DFD_COUNTER, 0,                                                     \
      "Connections closed after idle_timeout without a complete message")                \
    X(read_timeouts, DFD_COUNTER, 0,                                                     \
      "Connections closed when a message did not arrive whole within read_timeout")      \
    X(loop_stalls, DFD_COUNTER, 0,                                                       \
      "Times a loop stayed away from its event loop past stall_warning")                 \
    X(rerouted, DFD_COUNTER, 0,                                                          \
      "Forwarded calls sent again over another link: theirs closed before they left")    \
    X(members_frozen, DFD_COUNTER, 0,                                                    \
      "Times a member link was found frozen and passed over (router)")                   \
    X(startup_held, DFD_COUNTER, 0,                                                      \
      "Calls held by a restarted router's startup grace")                                \
    X(monitor_dropped, DFD_COUNTER, 0,                                                   \
      "Finished calls a monitor watcher did not see (feed or its output full)")          \
    X(tls_handshakes, DFD_COUNTER, 0, "TLS handshakes completed")                        \
    X(tls_handshake_failures, DFD_COUNTER, 0,                                            \
      "TLS handshakes that failed (bad or untrusted certificate, not TLS, ...)")         \
    X(tls_handshake_timeouts, DFD_COUNTER, 0,                                            \
      "TLS handshakes not finished within handshake_timeout")                            \
    X(tls_plaintext_refused, DFD_COUNTER, 0,                                             \
      "Connections closed for speaking plaintext on a TLS listener")                    \
    X(tls_on_plaintext_refused, DFD_COUNTER, 0,                                          \
      "Connections closed for starting TLS on a plaintext listener")                    \
    X(tls_ktls_send, DFD_COUNTER, 0,                                                     \
      "TLS connections whose records the kernel sends ([tls] ktls)")                    \
    X(tls_ktls_recv, DFD_COUNTER, 0,                                                     \
      "TLS connections whose records the kernel receives ([tls] ktls)")                 \
    X(tls_ktls_unavailable, DFD_COUNTER, 0,                                              \
      "TLS connections [tls] ktls asked the kernel for that stayed in OpenSSL")         \
    X(auth_ok, DFD_COUNTER, 0, "Connections authenticated (token or certificate)")      \
    X(auth_failures, DFD_COUNTER, 0, "daffi.auth calls refused (unknown token)")        \
    X(auth_denied, DFD_COUNTER, 0, "Calls and announcements refused with DENIED")       \
    X(auth_timeouts, DFD_COUNTER, 0,                                                     \
      "Connections closed unauthenticated at the [auth] timeout or max_failures")       \
    X(nats_requests, DFD_COUNTER, 0, "Calls a gateway router sent over NATS")          \
    X(nats_no_responders, DFD_COUNTER, 0,                                                \
      "Gateway calls NATS answered with no responders (NO_CALLBACK, UNAVAILABLE)")       \
    X(nats_served, DFD_COUNTER, 0, "Calls a NATS member received and ran")              \
    X(nats_publish_errors, DFD_COUNTER, 0, "NATS publishes libnats refused")             \
    X(nats_members_lost, DFD_COUNTER, 0,                                                 \
      "NATS members dropped after heartbeat x heartbeat_misses without a heartbeat")     \
    X(admin_denied, DFD_COUNTER, 0,                                                      \
      "Admin socket peers refused by [admin] allow_uids / allow_gids")                  \
    X(received_bytes, DFD_COUNTER, 0, "Bytes read from connections")                     \
    X(sent_bytes, DFD_COUNTER, 0, "Bytes written to connections")                        \
    X(reloads, DFD_COUNTER, 0, "Reloads attempted")                                      \
    X(reload_failures, DFD_COUNTER, 0, "Reloads with at least one failure")              \
    X(isolated_crashes, DFD_COUNTER, 0,                                                  \
      "Child processes of isolated plugins that died unasked (signal or exit)")         \
    X(isolated_restarts, DFD_COUNTER, 0,                                                 \
      "Child processes of isolated plugins started again after a death or harakiri")   \
    X(isolated_harakiri, DFD_COUNTER, 0,                                                 \
      "Child processes killed for a call that ran past harakiri")                       \
    X(connections_open, DFD_GAUGE, 0, "Connections open")                                \
    X(calls_in_flight, DFD_GAUGE, 0, "Calls started and not yet finished")               \
    X(queue_depth, DFD_GAUGE, 0, "Calls waiting for a concurrency slot, all plugins")    \
    X(memory_used_bytes, DFD_GAUGE, 0,                                                   \
      "Request and reply bytes held by connections and their calls (max_memory's use)")  \
    X(memory_limit_bytes, DFD_GAUGE, 0, "The memory budget, max_memory")                 \
    X(loops_stalled, DFD_GAUGE, 0, "Loops away from their event loop past stall_warning")\
    X(waits_parked, DFD_GAUGE, 0, "daffi.wait calls waiting for members (router)")        \
    X(members, DFD_GAUGE, 0, "Members known, this daffid included")                      \
    X(plugins, DFD_GAUGE, 0, "Plugins serving (current generations)")                    \
    X(callbacks, DFD_GAUGE, 0, "Callbacks in the callback table")                        \
    X(isolated_children, DFD_GAUGE, 0, "Child processes of isolated plugins running")    \
    X(monitor_watchers, DFD_GAUGE, 0, "Admin clients in monitor mode")                   \
    X(uptime_seconds, DFD_GAUGE, 0, "Seconds since daffid started")                      \
    X(config_last_reload_successful, DFD_GAUGE, 0,                                       \
      "1 when the last reload failed nothing (also before any reload)")                  \
    X(config_last_reload_success_timestamp_seconds, DFD_GAUGE, 0,                        \
      "Unix time of the last reload that failed nothing (the start before any)")         \
    X(process_cpu_seconds, DFD_COUNTER, DFD_STAT_F_PROCESS | DFD_STAT_F_MICRO,           \
      "Total user and system CPU time spent in seconds")                                 \
    X(process_resident_memory_bytes, DFD_GAUGE, DFD_STAT_F_PROCESS,                      \
      "Resident memory size in bytes")                                                   \
    X(process_virtual_memory_bytes, DFD_GAUGE, DFD_STAT_F_PROCESS,                       \
      "Virtual memory size in bytes")                                                    \
    X(process_open_fds, DFD_GAUGE, DFD_STAT_F_PROCESS, "Number of open file descriptors")\
    X(process_max_fds, DFD_GAUGE, DFD_STAT_F_PROCESS,                                    \
      "Maximum number of open file descriptors")                                         \
    X(process_start_time_seconds, DFD_GAUGE, DFD_STAT_F_PROCESS,                         \
      "Start time of the process since unix epoch in seconds")

enum dfd_counter {
#define DFD_X_ENUM(name, kind, flags, help) DFD_STAT_##name,
    DFD_COUNTERS(DFD_X_ENUM)
#undef DFD_X_ENUM
    DFD_STAT_COUNT
};

/* ---- calls by callback ------------------------------------------------------------ */

#define DFD_CALLSTAT_SLOTS 256
#define DFD_CALLSTAT_FORWARDED_MAX 64
#define DFD_FORWARDED_PLUGIN "_forwarded"
/* Outcome index: 0 ok, 1..10 the error codes of DESIGN.md, 11 any other code. */
#define DFD_OUTCOME_OTHER 11
#define DFD_OUTCOMES 12
/* Latency histogram: upper bounds in microseconds; one more bucket holds +Inf. */
#define DFD_LATENCY_BOUNDS_US                                                            \
    { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,  \
      1000000, 2500000, 5000000, 10000000 }
#define DFD_LATENCY_NBOUNDS 17

/* One (plugin, callback) pair on one loop. Written by the loop thread only. */
typedef struct dfd_callstat {
    _Atomic uint64_t started;
    _Atomic uint64_t outcome[DFD_OUTCOMES];
    _Atomic uint64_t bucket[DFD_LATENCY_NBOUNDS + 1]; /* not cumulative; last: +Inf */
    _Atomic uint64_t sum_ns;
} dfd_callstat;

/* A slot's counters summed over the loops (the read side). */
typedef struct dfd_callstat_sum {
    uint64_t started;
    uint64_t finished;            /* sum of outcome[] */
    uint64_t errors;              /* finished - ok */
    uint64_t in_flight;           /* started - finished */
    uint64_t outcome[DFD_OUTCOMES];
    uint64_t bucket[DFD_LATENCY_NBOUNDS + 1]; /* cumulative, as Prometheus wants */
    uint64_t sum_ns;
} dfd_callstat_sum;

typedef struct dfd_stats {
    _Atomic uint64_t v[DFD_STAT_COUNT];
    dfd_callstat calls[DFD_CALLSTAT_SLOTS];
} dfd_stats;

/* The server's (plugin, callback) -> slot registry. Slots are appended under lock and
 * never removed; names are owned copies. */
typedef struct dfd_callstat_names {
    pthread_mutex_t lock;
    _Atomic unsigned n;               /* slots in use (the last one is the overflow) */
    unsigned nforwarded;              /* of them "_forwarded" pairs (under lock) */
    char *plugin[DFD_CALLSTAT_SLOTS];
    char *callback[DFD_CALLSTAT_SLOTS];
} dfd_callstat_names;

/* Adds n to a counter that only the calling thread writes: a relaxed load and store,
 * no read-modify-write (readers on other threads see whole values). */
static inline void dfd_relaxed_add(_Atomic uint64_t *v, uint64_t n)
{
    uint64_t cur = atomic_load_explicit(v, memory_order_relaxed);
    atomic_store_explicit(v, cur + n, memory_order_relaxed);
}

/* Adds n to counter c of a loop's stats; only the owning thread calls it. */
static inline void dfd_stat_add(dfd_stats *s, enum dfd_counter c, uint64_t n)
{
    dfd_relaxed_add(&s->v[c], n);
}

static inline uint64_t dfd_stat_get(const dfd_stats *s, enum dfd_counter c)
{
    return atomic_load_explicit(&s->v[c], memory_order_relaxed);
}

/* The entry's name, kind, flags (DFD_STAT_F_*) and help text (static strings). */
const char *dfd_stat_name(enum dfd_counter c);
dfd_stat_kind dfd_stat_kind_of(enum dfd_counter c);
unsigned dfd_stat_flags(enum dfd_counter c);
const char *dfd_stat_help(enum dfd_counter c);

/* Entry c's value v as JSON, for the admin view: an integer, a real for a
 * DFD_STAT_F_MICRO entry (v / 1e6), null for DFD_STAT_UNKNOWN. New reference. */
struct json_t *dfd_stat_json(enum dfd_counter c, uint64_t v);

/* Returns the name of an outcome index, one case for every view (admin, metrics,
 * access log): "ok", the error's name in lower case ("timeout", "bad_args"...), or
 * "other". Static. */
const char *dfd_outcome_name(unsigned outcome);
/* Upper bound of latency bucket i (i < DFD_LATENCY_NBOUNDS) in microseconds. */
uint64_t dfd_latency_bound_us(unsigned i);

/* Registry life (server init / destroy). Returns 0 or -1. */
int dfd_callstat_names_init(dfd_callstat_names *r);
void dfd_callstat_names_destroy(dfd_callstat_names *r);

/* Returns the slot of cb, assigning one on first use (any thread; the assignment
 * takes the registry lock once per callback generation). */
unsigned dfd_callstat_slot(struct dfd_server *srv, const struct dfd_callback *cb);
/* Returns the "_forwarded" slot of a callback a router forwards, assigning one on first
 * use (past DFD_CALLSTAT_FORWARDED_MAX the overflow); *cache (slot + 1, 0 = not yet)
 * makes later calls one relaxed load. Any thread. */
unsigned dfd_callstat_forwarded_slot(struct dfd_server *srv, const char *callback,
                                     _Atomic unsigned *cache);
/* Returns the slot registered for (plugin, callback), or -1 when it was never used. */
int dfd_callstat_find(struct dfd_server *srv, const char *plugin, const char *callback);

/* Hot path, on the call's loop thread: a call of cb starts / its outcome is final
 * (a local call by its callback's slot, a forwarded one by its fwd_slot). */
void dfd_stats_call_start(struct dfd_loop *loop, const struct dfd_callback *cb);
void dfd_stats_slot_start(struct dfd_loop *loop, unsigned slot);
void dfd_stats_call_end(struct dfd_loop *loop, const struct dfd_call *call);
/* The outcome index of a finished call as its caller saw it (a TIMEOUT already sent,
 * a result answered TOO_LARGE...). */
unsigned dfd_stats_call_outcome(const struct dfd_call *call);
/* The same, or for a call refused before it ran (refused: its error code; -1: it ran)
 * that code's index. For the access log and the monitor. */
unsigned dfd_stats_outcome_of(const struct dfd_call *call, int refused);

/* Read side (main thread): sums slot over every loop into *out. */
void dfd_callstat_read(const struct dfd_server *srv, unsigned slot, dfd_callstat_sum *out);

/* Read side (main thread): every entry of the table, counters summed over the loops
 * and the main thread, gauges read from the server, process_* from /proc
 * (DFD_STAT_UNKNOWN when it cannot be read). */
void dfd_stats_snapshot(struct dfd_server *srv, uint64_t out[DFD_STAT_COUNT]);

#endif /* DFD_STATS_H */
