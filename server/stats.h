/*
 * stats.h - every counter daffid keeps, declared once (name, help text); the same
 * table feeds every view (admin stats, Prometheus metrics).
 *
 * Counters live per loop thread (dfd_stats in each dfd_loop) and are written only by
 * that thread with relaxed atomics (plain loads and stores on x86, no lock prefix);
 * readers sum the loops.
 */
#ifndef DFD_STATS_H
#define DFD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define DFD_COUNTERS(X)                                                                 \
    X(connections_accepted, "Connections accepted")                                    \
    X(connections_closed, "Connections closed")                                        \
    X(requests, "Requests received")                                                   \
    X(notifications, "Notifications received")                                         \
    X(responses_ok, "Responses sent with a result")                                    \
    X(responses_error, "Responses sent with an error")                                 \
    X(unknown_notifications, "Notifications naming no callback, ignored")              \
    X(unexpected_responses, "Responses matching no outstanding call, ignored")         \
    X(no_callback, "Calls naming no callback")                                         \
    X(overloaded, "Calls refused with OVERLOADED")                                     \
    X(timeouts, "Calls answered with TIMEOUT")                                         \
    X(protocol_errors, "Connections closed for malformed input")                       \
    X(too_large, "Messages refused for exceeding max_message")                         \
    X(late_completions, "Handler completions after the caller left or timed out")     \
    X(bytes_in, "Bytes read from connections")                                         \
    X(bytes_out, "Bytes written to connections")

enum dfd_counter {
#define DFD_X_ENUM(name, help) DFD_STAT_##name,
    DFD_COUNTERS(DFD_X_ENUM)
#undef DFD_X_ENUM
    DFD_STAT_COUNT
};

typedef struct dfd_stats {
    _Atomic uint64_t v[DFD_STAT_COUNT];
} dfd_stats;

/* Adds n to counter c of a loop's stats; only the owning thread calls it. */
static inline void dfd_stat_add(dfd_stats *s, enum dfd_counter c, uint64_t n)
{
    uint64_t cur = atomic_load_explicit(&s->v[c], memory_order_relaxed);
    atomic_store_explicit(&s->v[c], cur + n, memory_order_relaxed);
}

static inline uint64_t dfd_stat_get(const dfd_stats *s, enum dfd_counter c)
{
    return atomic_load_explicit(&s->v[c], memory_order_relaxed);
}

/* The counter's name and help text (static strings). */
const char *dfd_stat_name(enum dfd_counter c);
const char *dfd_stat_help(enum dfd_counter c);

#endif /* DFD_STATS_H */
