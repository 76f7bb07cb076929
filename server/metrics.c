/*
 * metrics.c - the Prometheus text exposition of the counter table (see metrics.h;
 * metrics-http.c serves it over HTTP).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "metrics.h"
#include "plugin-t.h"
#include "server.h"
#include "stats.h"
#include "table.h"

#define METRICS_PREFIX "daffid_"

/* Appends v as a label value: backslash, double quote and newline escaped. Returns 0
 * or -1. */
static int metrics_label(struct evbuffer *out, const char *v)
{
    int rc = 0;
    for (const char *p = v; *p != '\0' && rc == 0; p++) {
        if (*p == '\\')
            rc = evbuffer_add(out, "\\\\", 2);
        else if (*p == '"')
            rc = evbuffer_add(out, "\\\"", 2);
        else if (*p == '\n')
            rc = evbuffer_add(out, "\\n", 2);
        else
            rc = evbuffer_add(out, p, 1);
    }
    return rc;
}

/* Appends `{plugin="P",callback="C"` (no closing brace: the caller may add labels).
 * Returns 0 or -1. */
static int metrics_cb_labels(struct evbuffer *out, const char *plugin, const char *callback)
{
    if (evbuffer_add_printf(out, "{plugin=\"") == -1 || metrics_label(out, plugin) == -1 ||
        evbuffer_add_printf(out, "\",callback=\"") == -1 ||
        metrics_label(out, callback) == -1 || evbuffer_add(out, "\"", 1) == -1)
        return -1;
    return 0;
}

/* Writes v millionths (of a second, a byte...) in plain decimal without trailing
 * zeros ("0.00005", "2.5", "10"). */
static void metrics_micro(char *buf, size_t size, uint64_t v)
{
    snprintf(buf, size, "%llu.%06llu", (unsigned long long)(v / 1000000u),
             (unsigned long long)(v % 1000000u));
    char *end = buf + strlen(buf);
    while (end[-1] == '0')
        *--end = '\0';
    if (end[-1] == '.')
        end[-1] = '\0';
}

/* Appends the HELP and TYPE lines of the family prefix + name. Returns 0 or -1. */
static int metrics_family(struct evbuffer *out, const char *prefix, const char *name,
                          const char *type, const char *help)
{
    return evbuffer_add_printf(out, "# HELP %s%s %s\n# TYPE %s%s %s\n", prefix, name, help,
                               prefix, name, type) == -1 ? -1 : 0;
}

/* The counter table: counters as NAME_total, gauges as NAME, each prefixed daffid_
 * but the process_* entries (named as the Prometheus client libraries name them). A
 * value that could not be read leaves its family without a sample. Returns 0 or -1. */
static int metrics_table(dfd_server *srv, struct evbuffer *out)
{
    uint64_t snap[DFD_STAT_COUNT];
    char name[96], value[32];

    dfd_stats_snapshot(srv, snap);
    for (unsigned c = 0; c < DFD_STAT_COUNT; c++) {
        int counter = dfd_stat_kind_of((enum dfd_counter)c) == DFD_COUNTER;
        unsigned flags = dfd_stat_flags((enum dfd_counter)c);
        const char *prefix = flags & DFD_STAT_F_PROCESS ? "" : METRICS_PREFIX;
        snprintf(name, sizeof(name), "%s%s", dfd_stat_name((enum dfd_counter)c),
                 counter ? "_total" : "");
        if (metrics_family(out, prefix, name, counter ? "counter" : "gauge",
                           dfd_stat_help((enum dfd_counter)c)) == -1)
            return -1;
        if (snap[c] == DFD_STAT_UNKNOWN)
            continue;
        if (flags & DFD_STAT_F_MICRO)
            metrics_micro(value, sizeof(value), snap[c]);
        else
            snprintf(value, sizeof(value), "%llu", (unsigned long long)snap[c]);
        if (evbuffer_add_printf(out, "%s%s %s\n", prefix, name, value) == -1)
            return -1;
    }
    return 0;
}

/* build_info and plugin_generation. Returns 0 or -1. */
static int metrics_info(dfd_server *srv, struct evbuffer *out)
{
    if (metrics_family(out, METRICS_PREFIX, "build_info", "gauge",
                       "Always 1; the labels say which daffid this is") == -1 ||
        evbuffer_add_printf(out, METRICS_PREFIX "build_info{version=\"") == -1 ||
        metrics_label(out, DAFFID_VERSION) == -1 ||
        evbuffer_add_printf(out, "\",role=\"%s\",name=\"", dfd_role_name(srv->cfg->role)) == -1 ||
        metrics_label(out, srv->cfg->name) == -1 || evbuffer_add_printf(out, "\"} 1\n") == -1)
        return -1;
    if (metrics_family(out, METRICS_PREFIX, "plugin_generation", "gauge",
                       "Generation number of the plugin's serving code") == -1)
        return -1;
    for (size_t i = 0; i < srv->nplugins; i++) {
        const dfd_plugin *p = srv->plugins[i];
        if (evbuffer_add_printf(out, METRICS_PREFIX "plugin_generation{plugin=\"") == -1 ||
            metrics_label(out, p->name) == -1 ||
            evbuffer_add_printf(out, "\"} %u\n", p->generation) == -1)
            return -1;
    }
    return 0;
}

/* Calls by callback: outcomes, latency histogram, in flight. Returns 0 or -1. */
static int metrics_callbacks(dfd_server *srv, struct evbuffer *out)
{
    /* every callback of the table is shown, called or not */
    const dfd_table *t = srv->table;
    for (size_t i = 0; t != NULL && i < t->nplugins; i++)
        for (size_t k = 0; k < t->plugins[i]->ncallbacks; k++)
            dfd_callstat_slot(srv, &t->plugins[i]->callbacks[k]);

    const dfd_callstat_names *names = &srv->callnames;
    unsigned n = atomic_load_explicit(&names->n, memory_order_acquire);
    dfd_callstat_sum *sums = calloc(n ? n : 1, sizeof(*sums));
    if (sums == NULL)
        return -1;
    for (unsigned s = 0; s < n; s++)
        dfd_callstat_read(srv, s, &sums[s]);
    int rc = metrics_family(out, METRICS_PREFIX, "calls_total", "counter",
                            "Calls finished, by plugin, callback and outcome");
    for (unsigned s = 0; s < n && rc == 0; s++) {
        for (unsigned o = 0; o < DFD_OUTCOMES && rc == 0; o++) {
            if (o != 0 && sums[s].outcome[o] == 0)
                continue;
            if (evbuffer_add_printf(out, METRICS_PREFIX "calls_total") == -1 ||
                metrics_cb_labels(out, names->plugin[s], names->callback[s]) == -1 ||
                evbuffer_add_printf(out, ",outcome=\"%s\"} %llu\n", dfd_outcome_name(o),
                                    (unsigned long long)sums[s].outcome[o]) == -1)
                rc = -1;
        }
    }
    if (rc == 0)
        rc = metrics_family(out, METRICS_PREFIX, "call_duration_seconds", "histogram",
                            "Time from a call's arrival to its outcome");
    for (unsigned s = 0; s < n && rc == 0; s++) {
        char le[32];
        for (unsigned b = 0; b <= DFD_LATENCY_NBOUNDS && rc == 0; b++) {
            if (b < DFD_LATENCY_NBOUNDS)
                metrics_micro(le, sizeof(le), dfd_latency_bound_us(b));
            else
                snprintf(le, sizeof(le), "+Inf");
            if (evbuffer_add_printf(out, METRICS_PREFIX "call_duration_seconds_bucket") == -1 ||
                metrics_cb_labels(out, names->plugin[s], names->callback[s]) == -1 ||
                evbuffer_add_printf(out, ",le=\"%s\"} %llu\n", le,
                                    (unsigned long long)sums[s].bucket[b]) == -1)
                rc = -1;
        }
        if (rc == 0 &&
            (evbuffer_add_printf(out, METRICS_PREFIX "call_duration_seconds_sum") == -1 ||
             metrics_cb_labels(out, names->plugin[s], names->callback[s]) == -1 ||
             evbuffer_add_printf(out, "} %llu.%09llu\n",
                                 (unsigned long long)(sums[s].sum_ns / 1000000000u),
                                 (unsigned long long)(sums[s].sum_ns % 1000000000u)) == -1 ||
             evbuffer_add_printf(out, METRICS_PREFIX "call_duration_seconds_count") == -1 ||
             metrics_cb_labels(out, names->plugin[s], names->callback[s]) == -1 ||
             evbuffer_add_printf(out, "} %llu\n",
                                 (unsigned long long)sums[s].finished) == -1))
            rc = -1;
    }
    if (rc == 0)
        rc = metrics_family(out, METRICS_PREFIX, "calls_in_flight_by_callback", "gauge",
                            "Calls started and not yet finished, by plugin and callback");
    for (unsigned s = 0; s < n && rc == 0; s++) {
        if (evbuffer_add_printf(out, METRICS_PREFIX "calls_in_flight_by_callback") == -1 ||
            metrics_cb_labels(out, names->plugin[s], names->callback[s]) == -1 ||
            evbuffer_add_printf(out, "} %llu\n", (unsigned long long)sums[s].in_flight) == -1)
            rc = -1;
    }
    free(sums);
    return rc;
}

int dfd_metrics_render(dfd_server *srv, struct evbuffer *out)
{
    if (metrics_table(srv, out) == -1 || metrics_info(srv, out) == -1 ||
        metrics_callbacks(srv, out) == -1)
        return -1;
    return 0;
}
