/*
 * server.c - the daffid process: start, run, graceful shutdown (see server.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "blocking.h"
#include "blocks.h"
#include "budget.h"
#include "call.h"
#include "dispatch.h"
#include "fanout.h"
#include "heartbeat.h"
#include "isolate.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "monitor.h"
#include "plugin.h"
#include "reload.h"
#include "membership.h"
#include "nats-bus.h"
#include "nats-gateway.h"
#include "nats-io.h"
#include "nats-member.h"
#include "router-grace.h"
#include "router.h"
#include "sdnotify.h"
#include "server.h"
#include "table.h"
#include "watch.h"
#include "watchdog.h"
#include "worker.h"

#define DRAIN_POLL_MS 20

uint64_t dfd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int dfd_server_load_plugin(dfd_server *srv, const dfd_plugin_conf *pc, unsigned generation,
                           dfd_plugin **out, dfd_errors *errs)
{
    if (pc->isolation == DFD_ISOLATION_PROCESS)
        return dfd_isolate_load(srv, pc, generation, out, errs);
    return dfd_plugin_load(pc, srv->private_dir, generation, out, errs);
}

int dfd_server_load_plugins(dfd_server *srv, dfd_errors *errs)
{
    const dfd_config *cfg = srv->cfg;
    srv->plugins = calloc(cfg->nplugins ? cfg->nplugins : 1, sizeof(dfd_plugin *));
    if (srv->plugins == NULL)
        return -1;
    int failed = 0;
    for (size_t i = 0; i < cfg->nplugins; i++) {
        const dfd_plugin_conf *pc = &cfg->plugins[i];
        if (!pc->enabled)
            continue;
        dfd_plugin *p = NULL;
        if (dfd_server_load_plugin(srv, pc, 1, &p, errs) == -1) {
            failed = 1;
            continue;
        }
        srv->plugins[srv->nplugins++] = p;
        dfd_info("plugin.loaded", "plugin=%s version=%s file=%s callbacks=%zu generation=%u",
                 p->name, p->desc->version, p->file, p->ncallbacks, p->generation);
    }
    if (failed)
        return -1;
    srv->table = dfd_table_build(srv->plugins, srv->nplugins, errs);
    return srv->table ? 0 : -1;
}

/* Signal handlers run on the main base, as ordinary callbacks. */
static void server_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    dfd_server *srv = arg;
    if (sig == SIGHUP) {
        /* reload what changed; dfd_reload_run logs every outcome */
        dfd_errors errs = {0};
        dfd_info("server.sighup", "msg=\"reloading what changed\"");
        dfd_sdnotify_reloading();
        int rc = dfd_reload_run(srv, NULL, &errs);
        dfd_sdnotify_ready(srv, rc == 0 ? "reloaded (SIGHUP)" : "reload failed (SIGHUP)");
        dfd_errors_free(&errs);
        return;
    }
    dfd_info("server.signal", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    dfd_server_shutdown(srv);
}

/* Router: the member registry, each loop's first snapshot, the router's own member,
 * the startup grace; worker: a link to the router on every loop; both: heartbeats. Runs before the
 * loop threads start, so it may touch their bases. */
static int server_init_role(dfd_server *srv, dfd_errors *errs)
{
    const dfd_config *cfg = srv->cfg;
    if (cfg->role == DFD_ROLE_ROUTER) {
        for (unsigned i = 0; i < srv->nloops; i++) {
            dfd_snapshot_retain(srv->registry.current);
            srv->loops[i].snapshot = srv->registry.current;
        }
        if (dfd_membership_join_self(srv) == -1) {
            dfd_errors_add(errs, "cannot register the router's own callbacks");
            return -1;
        }
        if (dfd_grace_start(srv) == -1) {
            dfd_errors_add(errs, "cannot start the startup grace");
            return -1;
        }
        if (cfg->nats != NULL && dfd_nats_gateway_start(srv) == NULL) {
            dfd_errors_add(errs, "cannot start the NATS gateway to %s", cfg->nats);
            return -1;
        }
    } else if (cfg->role == DFD_ROLE_WORKER && dfd_cfg_is_nats_url(cfg->router)) {
        if (dfd_nats_member_start(srv) == NULL) {
            dfd_errors_add(errs, "cannot join NATS at %s", cfg->router);
            return -1;
        }
        return 0; /* heartbeats are the NATS member's own (nats-member.c) */
    } else if (cfg->role == DFD_ROLE_WORKER) {
        srv->worker = dfd_worker_start(srv);
        if (srv->worker == NULL) {
            dfd_errors_add(errs, "cannot start the connection to router %s", cfg->router);
            return -1;
        }
    }
    if (cfg->role != DFD_ROLE_SERVICE && cfg->heartbeat_ms > 0)
        dfd_heartbeat_start(srv);
    return 0;
}

int dfd_server_init(dfd_server *srv, dfd_config *cfg, dfd_errors *errs)
{
    memset(srv, 0, sizeof(*srv));
    srv->cfg = cfg;
    srv->limits.max_message = cfg->max_message;
    srv->limits.max_depth = cfg->max_depth;
    dfd_budget_init(&srv->budget, cfg);
    srv->started_ns = dfd_now_ns();
    atomic_init(&srv->draining, 0);
    atomic_init(&srv->access_log, cfg->access_log);
    atomic_init(&srv->conns, 0);
    atomic_init(&srv->rejected, 0);
    if (dfd_callstat_names_init(&srv->callnames) == -1) {
        dfd_errors_add(errs, "cannot set up the call statistics");
        return -1;
    }
    /* certificates and tokens before anything is started: a file that does not load
     * stops daffid here, with the reason */
    srv->security_init = 1;
    if (dfd_tls_init(srv, errs) == -1 || dfd_auth_init(srv, errs) == -1)
        return -1;

    srv->route = cfg->role == DFD_ROLE_ROUTER ? dfd_router_route_call : dfd_dispatch_route_local;
    if (dfd_membership_init(srv) == -1) {
        dfd_errors_add(errs, "cannot set up the member registry");
        return -1;
    }
    if (dfd_server_private_dir(srv) == -1) {
        dfd_errors_add(errs, "cannot create a private directory for plugin copies");
        return -1;
    }
    if (dfd_server_load_plugins(srv, errs) == -1)
        return -1;
    srv->base = event_base_new();
    if (srv->base == NULL) {
        dfd_errors_add(errs, "cannot create the main event loop");
        return -1;
    }
    /* before any other thread exists: the admin socket is bound under a narrow umask;
     * and before the listeners, so that a daffid that accepts calls has its admin
     * socket and metrics in place too */
    if (dfd_monitor_init(&srv->monitor, srv->base) == -1) {
        dfd_errors_add(errs, "cannot set up the call monitor");
        return -1;
    }
    if (dfd_admin_start(srv, errs) == -1 || dfd_metrics_http_start(srv, errs) == -1)
        return -1;
    if (dfd_listeners_open(srv, errs) == -1)
        return -1;
    srv->blocking = dfd_blocking_start(cfg->blocking_threads);
    if (srv->blocking == NULL) {
        dfd_errors_add(errs, "cannot start %u blocking threads", cfg->blocking_threads);
        return -1;
    }
    if (dfd_cfg_uses_nats(cfg))
        dfd_nats_io_enable_locking(); /* before loop 0's base is made */
    srv->loops = calloc(cfg->workers, sizeof(dfd_loop));
    if (srv->loops == NULL)
        return -1;
    for (unsigned i = 0; i < cfg->workers; i++) {
        if (dfd_loop_init(&srv->loops[i], srv, i, srv->table) == -1) {
            dfd_errors_add(errs, "cannot create event loop %u", i);
            return -1;
        }
        srv->nloops = i + 1;
    }
    /* the isolated plugins' children, started with the plugins, join the loops before
     * anything can call them (a worker announces as soon as it is connected) */
    if (dfd_supervisor_attach(srv, errs) == -1)
        return -1;
    if (server_init_role(srv, errs) == -1)
        return -1;
    for (unsigned i = 0; i < srv->nloops; i++) {
        if (dfd_loop_start(&srv->loops[i]) == -1) {
            dfd_errors_add(errs, "cannot start loop thread %u", i);
            return -1;
        }
    }

    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        srv->sig_events[i] = evsignal_new(srv->base, sigs[i], server_on_signal, srv);
        if (srv->sig_events[i] == NULL || event_add(srv->sig_events[i], NULL) == -1) {
            dfd_errors_add(errs, "cannot install the signal handlers");
            return -1;
        }
    }
    srv->reload = dfd_reload_new(srv);
    if (srv->reload == NULL) {
        dfd_errors_add(errs, "cannot set up hot reload");
        return -1;
    }
    srv->watch = dfd_watch_start(srv); /* NULL: no inotify, SIGHUP still reloads */
    if (dfd_watchdog_start(srv) == -1) {
        dfd_errors_add(errs, "cannot start the loop watchdog");
        return -1;
    }
    if (dfd_listeners_start(srv) == -1) {
        dfd_errors_add(errs, "cannot start accepting");
        return -1;
    }
    return 0;
}

/* Polls the drain: done when every loop has no connection left (their calls answered),
 * or when shutdown_timeout passed. */
static void server_on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_server *srv = arg;
    unsigned busy = dfd_server_busy_loops(srv);
    if (busy == 0) {
        dfd_info("server.drained", "msg=\"every call answered\"");
        event_base_loopbreak(srv->base);
        return;
    }
    if (dfd_now_ns() >= srv->drain_deadline_ns) {
        srv->abandoned = dfd_server_calls_left(srv);
        dfd_warn("server.drain_timeout", "loops_busy=%u connections=%u abandoned=%u "
                 "timeout_ms=%llu msg=\"shutdown_timeout passed with calls unfinished\"",
                 busy, atomic_load(&srv->conns), srv->abandoned,
                 (unsigned long long)srv->cfg->shutdown_timeout_ms);
        dfd_nats_member_abandon(srv->nats_member); /* gateways fail what it holds */
        srv->exit_code = -1; /* leave without waiting for handlers still running */
        event_base_loopbreak(srv->base);
        return;
    }
    struct timeval tv = {0, DRAIN_POLL_MS * 1000};
    evtimer_add(srv->drain_timer, &tv);
}

int dfd_server_drain(dfd_server *srv)
{
    if (srv->drain_started)
        return 0;
    srv->drain_started = 1;
    dfd_listeners_close(srv);
    dfd_nats_member_withdraw(srv->nats_member);
    for (unsigned i = 0; i < srv->nloops; i++)
        if (dfd_loop_post(&srv->loops[i], dfd_loop_drain, NULL, NULL) == -1)
            dfd_error("server.drain", "loop=%u msg=\"out of memory: cannot tell the loop to "
                      "drain\"", i);
    return 1;
}

int dfd_server_resume(dfd_server *srv, dfd_errors *errs)
{
    if (!srv->drain_started)
        return 0;
    if (atomic_load(&srv->draining)) {
        dfd_errors_add(errs, "daffid is shutting down: nothing to resume");
        return -1;
    }
    /* the listeners were closed (a load balancer saw connections refused): bind again */
    if (dfd_listeners_open(srv, errs) == -1 || dfd_listeners_start(srv) == -1) {
        dfd_listeners_close(srv);
        if (errs->count == 0)
            dfd_errors_add(errs, "cannot start accepting again");
        return -1;
    }
    dfd_nats_member_resume(srv->nats_member);
    for (unsigned i = 0; i < srv->nloops; i++)
        if (dfd_loop_post(&srv->loops[i], dfd_loop_resume, NULL, NULL) == -1)
            dfd_error("server.resume", "loop=%u msg=\"out of memory: the loop keeps "
                      "draining\"", i);
    srv->drain_started = 0;
    return 1;
}

unsigned dfd_server_busy_loops(const dfd_server *srv)
{
    unsigned busy = 0;
    for (unsigned i = 0; i < srv->nloops; i++)
        if (!atomic_load(&srv->loops[i].drained))
            busy++;
    return busy;
}

unsigned dfd_server_calls_left(const dfd_server *srv)
{
    unsigned n = 0;
    for (unsigned i = 0; i < srv->nloops; i++)
        n += atomic_load(&srv->loops[i].handler_calls);
    return n;
}

void dfd_server_shutdown(dfd_server *srv)
{
    if (atomic_exchange(&srv->draining, 1))
        return;
    dfd_sdnotify_stopping("stopping: finishing the calls in flight");
    dfd_server_drain(srv);
    srv->drain_deadline_ns = dfd_now_ns() + srv->cfg->shutdown_timeout_ms * 1000000u;
    srv->drain_timer = evtimer_new(srv->base, server_on_drain_tick, srv);
    struct timeval tv = {0, 0};
    evtimer_add(srv->drain_timer, &tv);
}

int dfd_server_run(dfd_server *srv)
{
    dfd_info("server.ready", "role=%s name=%s loops=%u blocking_threads=%u plugins=%zu "
             "callbacks=%zu pid=%d", dfd_role_name(srv->cfg->role), srv->cfg->name,
             srv->nloops, srv->cfg->blocking_threads, srv->nplugins, srv->table->ncallbacks,
             (int)getpid());
    for (size_t i = 0; i < srv->nlisteners; i++) {
        char a[400];
        dfd_info("server.listen", "address=%s auth=%s",
                 dfd_addr_format(&srv->listeners[i].addr, a, sizeof(a)),
                 srv->listeners[i].require_auth ? "required" : "optional");
    }
    dfd_sdnotify_ready(srv, "started");
    event_base_dispatch(srv->base);
    if (srv->exit_code == -1)
        return -1;
    return srv->exit_code;
}

void dfd_server_destroy(dfd_server *srv)
{
    dfd_watchdog_stop(srv); /* first: the loops stop below */
    dfd_admin_stop(srv);
    dfd_metrics_http_stop(srv);
    dfd_watch_stop(srv->watch);
    srv->watch = NULL;
    for (size_t i = 0; i < sizeof(srv->sig_events) / sizeof(srv->sig_events[0]); i++)
        if (srv->sig_events[i])
            event_free(srv->sig_events[i]);
    if (srv->drain_timer)
        event_free(srv->drain_timer);
    dfd_listeners_close(srv);
    /* the blocking pool first: its completions are mailed to the loops */
    dfd_blocking_stop(srv->blocking);
    srv->blocking = NULL;
    for (unsigned i = 0; i < srv->nloops; i++)
        dfd_loop_stop(&srv->loops[i]);
    for (unsigned i = 0; i < srv->nloops; i++)
        dfd_loop_join(&srv->loops[i]);
    dfd_worker_stop(srv->worker);
    srv->worker = NULL;
    if (srv->nats_member != NULL || srv->nats_gateway != NULL) {
        /* no libnats thread mails a loop after this; unrun mails are dropped below */
        dfd_nats_member_stop(srv->nats_member);
        dfd_nats_gateway_stop(srv->nats_gateway);
        dfd_nats_shutdown(); /* until here libnats may call back into them */
        dfd_nats_member_free(srv->nats_member);
        srv->nats_member = NULL;
        dfd_nats_gateway_free(srv->nats_gateway);
        srv->nats_gateway = NULL;
    }
    for (unsigned i = 0; i < srv->nloops; i++) {
        dfd_loop *loop = &srv->loops[i];
        /* what the roles keep on a loop, then the loop, then its recycled calls (its
         * connections and mails free calls into that list) */
        dfd_fanout_loop_destroy(loop);
        dfd_grace_loop_destroy(loop);
        dfd_loop_destroy(loop);
        dfd_snapshot_release(loop->snapshot);
        loop->snapshot = NULL;
        dfd_call_free_list(loop);
        dfd_blocks_free(&loop->blocks);
    }
    free(srv->loops);
    srv->loops = NULL;
    if (srv->registry.current != NULL)
        dfd_membership_destroy(srv);
    dfd_table_release(srv->table);
    srv->table = NULL;
    /* after the loops: retiring generations are finalised here, on this thread */
    dfd_reload_free(srv->reload);
    srv->reload = NULL;
    for (size_t i = 0; i < srv->nplugins; i++)
        dfd_plugin_release(srv->plugins[i]);
    free(srv->plugins);
    srv->plugins = NULL;
    /* every generation is released: the children left are reaped */
    dfd_supervisor_free(srv);
    dfd_server_private_dir_remove(srv);
    dfd_callstat_names_destroy(&srv->callnames);
    dfd_monitor_destroy(&srv->monitor); /* after the loops: they write into it */
    if (srv->security_init) {
        dfd_tls_destroy(srv);
        dfd_auth_destroy(srv);
        srv->security_init = 0;
    }
    if (srv->base)
        event_base_free(srv->base);
    srv->base = NULL;
    if (srv->cfg) {
        dfd_config_free(srv->cfg);
        free(srv->cfg);
    }
    srv->cfg = NULL;
}
