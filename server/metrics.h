/*
 * metrics.h - the Prometheus view of the counter table (stats.h): text exposition
 * format 0.0.4, served by the admin socket's `metrics` command and, with
 * [server] metrics_listen = HOST:PORT or unix:///path, over HTTP at /metrics
 * (metrics-http.c: libevent's evhttp on the main event base). GET and HEAD /metrics
 * answer the exposition, other paths 404, other methods 405 with "Allow: GET, HEAD".
 * The listener has no authentication: one reachable from other hosts (not loopback, not
 * a Unix socket) is logged as metrics.unauthenticated at start; a Unix socket gets
 * [server] unix_mode.
 *
 * Series (all prefixed daffid_ but process_*):
 *   every entry of DFD_COUNTERS: counters as NAME_total, gauges as NAME; the
 *   process_* entries unprefixed, as the Prometheus client libraries name them
 *   build_info{version,role,name} 1
 *   calls_total{plugin,callback,outcome}   outcome "ok" always, each error name (lower
 *                                          case: "bad_args") once it happened
 *   call_duration_seconds{plugin,callback} histogram (_bucket{le}, _sum, _count)
 *   calls_in_flight_by_callback{plugin,callback}
 *   plugin_generation{plugin}              the serving generation's number
 * A callback appears once it is in the table or was ever called; its series stay
 * after an unload, so rates never see a counter vanish.
 *
 * Main thread only (it reads the table, the plugins and the reload records).
 */
#ifndef DFD_METRICS_H
#define DFD_METRICS_H

#include "config.h"

struct dfd_server;
struct evbuffer;
struct sockaddr;

/* The Content-Type of the exposition. */
#define DFD_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the whole exposition to out. Returns 0, or -1 when memory ran out. */
int dfd_metrics_render(struct dfd_server *srv, struct evbuffer *out);

/* Starts the HTTP listener of cfg->metrics_listen, if set. Returns 0 (also when not
 * configured), or -1 with the reason in errs. */
int dfd_metrics_http_start(struct dfd_server *srv, dfd_errors *errs);
/* Stops it, removes a Unix socket file it created and frees what it owns; safe when it
 * never started. */
void dfd_metrics_http_stop(struct dfd_server *srv);

/* 1 when sa serves this host only: 127.0.0.0/8, ::1, ::ffff:127.x.y.z, a Unix socket;
 * 0 for anything else (0.0.0.0 and :: included). */
int dfd_metrics_loopback(const struct sockaddr *sa);

#endif /* DFD_METRICS_H */
