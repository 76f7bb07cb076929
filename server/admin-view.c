/*
 * admin-view.c - the admin commands that only look: status, plugins, callbacks,
 * members, stats, metrics (README.md describes each reply).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "admin-int.h"
#include "blocking.h"
#include "budget.h"
#include "isolate.h"
#include "listener.h"
#include "log.h"
#include "members.h"
#include "nats-bus.h"
#include "metrics.h"
#include "plugin-t.h"
#include "reload.h"
#include "router-grace.h"
#include "server.h"
#include "stats.h"
#include "table.h"
#include "watchdog.h"

/* The wall-clock time a generation was loaded: its private copy is written by the
 * load, so the copy's mtime is that moment. 0 when it cannot be told. */
static time_t admin_loaded_at(const dfd_plugin *p)
{
    struct stat st;
    return p->private_path && stat(p->private_path, &st) == 0 ? st.st_mtime : 0;
}

/* Each loop's share of the work, one array per figure indexed by loop: requests read
 * and handler calls started on it (a worker's links spread its calls over its loops),
 * calls forwarded from it (router). New reference. */
static json_t *admin_per_loop(const dfd_server *srv)
{
    json_t *requests = json_array(), *started = json_array(), *forwarded = json_array();
    for (unsigned l = 0; l < srv->nloops; l++) {
        const dfd_stats *st = &srv->loops[l].stats;
        uint64_t n = 0;
        for (unsigned k = 0; k < DFD_CALLSTAT_SLOTS; k++)
            n += atomic_load_explicit(&st->calls[k].started, memory_order_relaxed);
        json_array_append_new(requests, admin_uint(dfd_stat_get(st, DFD_STAT_requests)));
        json_array_append_new(started, admin_uint(n));
        json_array_append_new(forwarded, admin_uint(dfd_stat_get(st, DFD_STAT_forwarded)));
    }
    return json_pack("{s:o,s:o,s:o}", "requests", requests, "calls_started", started,
                     "forwarded", forwarded);
}

/* status's "nats": null, or {"as": "member"|"gateway", "servers", "namespace",
 * "connected", "url"} (docs/NATS.md). */
static json_t *admin_nats(const dfd_server *srv)
{
    natsConnection *nc = dfd_nats_conn_of(srv);
    char url[256];
    if (nc == NULL)
        return json_null();
    int up = dfd_nats_conn_state(nc, url, sizeof(url));
    return json_pack("{s:s,s:s,s:s,s:b,s:o}", "as", srv->nats_member != NULL ? "member" : "gateway",
                     "servers", srv->nats_member != NULL ? srv->cfg->router : srv->cfg->nats,
                     "namespace", dfd_nats_namespace(srv), "connected", up,
                     "url", up ? json_string(url) : json_null());
}

/* A router's startup grace: null when there is none (not a router, or off). */
static json_t *admin_grace(dfd_server *srv)
{
    const dfd_grace *g = srv->registry.grace;
    if (srv->cfg->role != DFD_ROLE_ROUTER || g == NULL || g->ms == 0)
        return json_null();
    const char *missing[64];
    size_t n = dfd_grace_missing(srv, missing, 64);
    json_t *names = json_array();
    for (size_t i = 0; i < n && i < 64; i++)
        json_array_append_new(names, admin_str(missing[i]));
    return json_pack("{s:b,s:I,s:o,s:o,s:I,s:I,s:I,s:I}", "active", atomic_load(&g->active),
                     "ms", (json_int_t)g->ms, "state_file", admin_str(srv->registry.state_file),
                     "waiting_for", names, "held", (json_int_t)atomic_load(&g->held),
                     "routed", (json_int_t)atomic_load(&g->routed),
                     "failed", (json_int_t)atomic_load(&g->failed),
                     "timed_out", (json_int_t)atomic_load(&g->timed_out));
}

void admin_cmd_status(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    dfd_admin *adm = c->adm;
    dfd_server *srv = adm->srv;
    const dfd_config *cfg = srv->cfg;
    uint64_t snap[DFD_STAT_COUNT];
    uint64_t up_ns = dfd_now_ns() - srv->started_ns;

    dfd_stats_snapshot(srv, snap);
    json_t *r = admin_ok(cmd->name);
    if (r == NULL) {
        admin_send(c, NULL);
        return;
    }
    json_object_set_new(r, "version", json_string(DAFFID_VERSION));
    json_object_set_new(r, "role", json_string(dfd_role_name(cfg->role)));
    json_object_set_new(r, "name", admin_str(cfg->name));
    json_object_set_new(r, "pid", json_integer(getpid()));
    json_object_set_new(r, "state", json_string(admin_state(adm)));
    json_object_set_new(r, "started_at", admin_time(time(NULL) - (time_t)(up_ns / 1000000000u)));
    json_object_set_new(r, "uptime_ms", admin_uint(up_ns / 1000000u));
    json_object_set_new(r, "loops", json_integer(srv->nloops));
    json_object_set_new(r, "workers", json_integer(srv->nloops)); /* its old name */
    json_object_set_new(r, "blocking_threads", json_integer(cfg->blocking_threads));
    json_object_set_new(r, "connections", admin_uint(snap[DFD_STAT_connections_open]));
    json_object_set_new(r, "calls_in_flight", admin_uint(snap[DFD_STAT_calls_in_flight]));
    json_object_set_new(r, "queued", admin_uint(snap[DFD_STAT_queue_depth]));
    json_object_set_new(r, "plugins", admin_uint(snap[DFD_STAT_plugins]));
    json_object_set_new(r, "callbacks", admin_uint(snap[DFD_STAT_callbacks]));
    json_object_set_new(r, "members", admin_uint(snap[DFD_STAT_members]));
    json_object_set_new(r, "memory", json_pack("{s:o,s:o,s:o,s:b}",
        "used", admin_uint(snap[DFD_STAT_memory_used_bytes]),
        "limit", admin_uint(srv->budget.limit),
        "connection_limit", admin_uint(srv->budget.conn_limit),
        "refusing", srv->budget.refusing));
    /* loops by number: daffictl shows watchdog.loops.N.stalled ... */
    json_t *loops = json_object();
    for (unsigned i = 0; i < srv->nloops; i++) {
        char n[16];
        snprintf(n, sizeof(n), "%u", i);
        json_object_set_new(loops, n, dfd_watchdog_loop_json(srv, i));
    }
    json_object_set_new(r, "watchdog", json_pack("{s:o,s:o,s:o,s:o}",
        "stall_warning_ms", admin_uint(cfg->stall_warning_ms),
        "stalled", admin_uint(dfd_watchdog_stalled(srv)),
        "stalls", admin_uint(dfd_watchdog_stalls(srv)), "loops", loops));
    json_object_set_new(r, "per_loop", admin_per_loop(srv));
    json_object_set_new(r, "startup_grace", admin_grace(srv));
    json_object_set_new(r, "nats", admin_nats(srv));
    json_object_set_new(r, "accepting", json_boolean(srv->nlisteners > 0 &&
                                                     !atomic_load(&srv->draining)));
    json_t *ls = json_array(), *req = json_array();
    for (size_t i = 0; i < cfg->nlisten; i++) {
        char a[400];
        dfd_addr_format(&cfg->listen[i], a, sizeof(a));
        json_array_append_new(ls, admin_str(a));
        /* [auth] require covers it (as last reloaded: the listener's own flag) */
        if (i < srv->nlisteners ? srv->listeners[i].require_auth
                                : cfg->listen_auth != NULL && cfg->listen_auth[i])
            json_array_append_new(req, admin_str(a));
    }
    json_object_set_new(r, "listen", ls);
    json_object_set_new(r, "auth_required", req);
    json_object_set_new(r, "log_level", json_string(dfd_log_level_name(dfd_log_level())));
    json_object_set_new(r, "access_log", json_boolean(atomic_load(&c->adm->srv->access_log)));
    json_object_set_new(r, "admin_clients", json_integer(adm->nclients));
    if (cfg->metrics_enabled && cfg->metrics_listen.kind == DAFFI_ADDR_UNIX) {
        char m[200];
        snprintf(m, sizeof(m), "unix://%s", cfg->metrics_listen.path);
        json_object_set_new(r, "metrics", admin_str(m));
    } else if (cfg->metrics_enabled) {
        char m[300];
        snprintf(m, sizeof(m), "http://%s%s%s:%d/metrics",
                 strchr(cfg->metrics_listen.host, ':') ? "[" : "", cfg->metrics_listen.host,
                 strchr(cfg->metrics_listen.host, ':') ? "]" : "", cfg->metrics_listen.port);
        json_object_set_new(r, "metrics", admin_str(m));
    } else {
        json_object_set_new(r, "metrics", json_null());
    }
    const dfd_reload *rl = srv->reload;
    if (rl != NULL) {
        json_object_set_new(r, "reload", json_pack("{s:I,s:I,s:b,s:o,s:o,s:I}",
            "runs", (json_int_t)rl->runs, "failures", (json_int_t)rl->failures,
            "last_ok", rl->runs == 0 || rl->last_ok, "last_error", admin_str(rl->last_error),
            "last_at", admin_time(rl->last_time),
            "last_duration_us", (json_int_t)rl->last_duration_us));
    } else {
        json_object_set_new(r, "reload", json_null());
    }
    admin_send(c, r);
}

/* ---- plugins, callbacks ------------------------------------------------------------ */

/* Sums of the callbacks of generation p. */
static void admin_plugin_sums(dfd_server *srv, const dfd_plugin *p, dfd_callstat_sum *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t k = 0; k < p->ncallbacks; k++) {
        dfd_callstat_sum s;
        dfd_callstat_read(srv, dfd_callstat_slot(srv, &p->callbacks[k]), &s);
        out->finished += s.finished;
        out->errors += s.errors;
        out->in_flight += s.in_flight;
    }
}

/* The last reload's word on plugin name: {"result", "error", "at"}. New reference. */
static json_t *admin_last_reload(const dfd_server *srv, const char *name)
{
    const dfd_reload_plugin *rp = srv->reload ? dfd_reload_find(srv->reload, name) : NULL;
    if (rp == NULL)
        return json_pack("{s:s,s:n,s:n}", "result", "none", "error", "at");
    return json_pack("{s:s,s:o,s:o}", "result", dfd_reload_outcome_name(rp->outcome),
                     "error", admin_str(rp->last_error), "at", admin_time(rp->last_time));
}

/* An isolated plugin's children and supervision (docs/ISOLATION.md) into o: its
 * settings as each child applies them, state, counts and one entry per child process
 * alive or on its way out. */
static void admin_isolation(json_t *o, dfd_isolate *iso)
{
    json_t *kids = json_array();
    json_object_set_new(o, "isolation", json_string("process"));
    json_object_set_new(o, "serving", json_boolean(!iso->failed));
    json_object_set_new(o, "state", json_string(dfd_isolate_state(iso)));
    json_object_set_new(o, "processes", json_integer(iso->processes));
    json_object_set_new(o, "concurrency", json_integer(iso->concurrency));
    json_object_set_new(o, "queue", json_integer(iso->queue));
    json_object_set_new(o, "harakiri_ms", admin_uint(iso->harakiri_ms));
    json_object_set_new(o, "crashes", admin_uint(iso->crashes));
    json_object_set_new(o, "restarts", admin_uint(iso->restarts));
    json_object_set_new(o, "harakiri", admin_uint(iso->harakiri));
    json_object_set_new(o, "last_death", iso->last_death[0] ? admin_str(iso->last_death)
                                                            : json_null());
    uint64_t now = dfd_now_ns();
    for (const dfd_child *ch = iso->children; ch != NULL; ch = ch->next) {
        if (ch->reaped)
            continue;
        pthread_mutex_lock(&iso->lock);
        int serving = iso->slots[ch->slot].current == ch;
        pthread_mutex_unlock(&iso->lock);
        json_t *k = json_object();
        json_object_set_new(k, "slot", json_integer(ch->slot));
        json_object_set_new(k, "pid", json_integer(ch->pid));
        json_object_set_new(k, "state", json_string(dfd_child_state_name(ch->state)));
        json_object_set_new(k, "serving", json_boolean(serving));
        json_object_set_new(k, "restarts", json_integer(iso->slots[ch->slot].restarts));
        json_object_set_new(k, "started_at", admin_time(time(NULL) -
                            (time_t)((now - ch->spawned_ns) / 1000000000u)));
        json_object_set_new(k, "in_flight", admin_uint(ch->m != NULL ?
                            atomic_load(&ch->m->inflight) : 0));
        json_array_append_new(kids, k);
    }
    json_object_set_new(o, "children", kids);
}

void admin_cmd_plugins(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    dfd_server *srv = c->adm->srv;
    json_t *r = admin_ok(cmd->name);
    json_t *list = json_array();

    for (size_t i = 0; i < srv->nplugins; i++) {
        dfd_plugin *p = srv->plugins[i];
        dfd_callstat_sum s;
        unsigned running, queued;
        admin_plugin_sums(srv, p, &s);
        pthread_mutex_lock(&p->lock);
        running = p->running;
        queued = p->queued;
        pthread_mutex_unlock(&p->lock);
        json_t *o = json_object();
        json_object_set_new(o, "name", admin_str(p->name));
        json_object_set_new(o, "serving", json_true());
        json_object_set_new(o, "version", admin_str(p->desc ? p->desc->version : NULL));
        json_object_set_new(o, "generation", json_integer(p->generation));
        json_object_set_new(o, "file", admin_str(p->file));
        json_object_set_new(o, "ini", admin_str(p->ini));
        json_object_set_new(o, "callbacks", json_integer((json_int_t)p->ncallbacks));
        json_object_set_new(o, "calls", admin_uint(s.finished));
        json_object_set_new(o, "errors", admin_uint(s.errors));
        json_object_set_new(o, "in_flight", admin_uint(s.in_flight));
        json_object_set_new(o, "running", json_integer(running));
        json_object_set_new(o, "queued", json_integer(queued));
        json_object_set_new(o, "concurrency", json_integer(p->concurrency));
        json_object_set_new(o, "queue", json_integer(p->queue));
        json_object_set_new(o, "blocking_max", json_integer(p->blocking_max));
        json_object_set_new(o, "blocking_running",
                            json_integer(dfd_blocking_running_of(srv->blocking, p)));
        json_object_set_new(o, "loaded_at", admin_time(admin_loaded_at(p)));
        json_object_set_new(o, "last_reload", admin_last_reload(srv, p->name));
        if (p->iso != NULL)
            admin_isolation(o, p->iso);
        else
            json_object_set_new(o, "isolation", json_string("inline"));
        json_array_append_new(list, o);
    }
    /* plugins the configuration names that do not serve: a first load that failed,
     * or removed ones */
    const dfd_reload *rl = srv->reload;
    for (size_t i = 0; rl != NULL && i < rl->nplugins; i++) {
        const dfd_reload_plugin *rp = &rl->plugins[i];
        if (rp->current != NULL)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", admin_str(rp->name));
        json_object_set_new(o, "serving", json_false());
        json_object_set_new(o, "generation", json_null());
        json_object_set_new(o, "file", admin_str(rp->path));
        json_object_set_new(o, "last_generation", json_integer(rp->last_generation));
        json_object_set_new(o, "last_reload", admin_last_reload(srv, rp->name));
        json_array_append_new(list, o);
    }
    json_object_set_new(r, "plugins", list);
    admin_send(c, r);
}

/* {"ok": N, "BAD_ARGS": M, ...}: ok always, errors that happened. New reference. */
static json_t *admin_outcomes(const dfd_callstat_sum *s)
{
    json_t *o = json_object();
    for (unsigned k = 0; k < DFD_OUTCOMES; k++)
        if (k == 0 || s->outcome[k] != 0)
            json_object_set_new(o, dfd_outcome_name(k), admin_uint(s->outcome[k]));
    return o;
}

/* One row of `callbacks`: a callback's identity and its counters. generation is
 * null for a forwarded callback (a member's, not a plugin's). New reference. */
static json_t *admin_callback_row(dfd_server *srv, unsigned slot, const char *name,
                                  const char *plugin, json_t *generation, int blocking)
{
    dfd_callstat_sum s;
    dfd_callstat_read(srv, slot, &s);
    json_t *o = json_object();
    json_object_set_new(o, "name", admin_str(name));
    json_object_set_new(o, "plugin", admin_str(plugin));
    json_object_set_new(o, "generation", generation);
    json_object_set_new(o, "blocking", json_boolean(blocking));
    json_object_set_new(o, "calls", admin_uint(s.finished));
    json_object_set_new(o, "errors", admin_uint(s.errors));
    json_object_set_new(o, "in_flight", admin_uint(s.in_flight));
    json_object_set_new(o, "outcomes", admin_outcomes(&s));
    json_object_set_new(o, "mean_us", s.finished
                        ? json_real((double)s.sum_ns / (double)s.finished / 1000.0)
                        : json_null());
    return o;
}

void admin_cmd_callbacks(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    dfd_server *srv = c->adm->srv;
    const dfd_table *t = srv->table;
    const char *only = argc > 0 ? argv[0] : NULL;
    int found = only == NULL;
    json_t *list = json_array();

    for (size_t i = 0; t != NULL && i < t->nplugins; i++) {
        const dfd_plugin *p = t->plugins[i];
        if (only != NULL && strcmp(p->name, only) != 0)
            continue;
        found = 1;
        for (size_t k = 0; k < p->ncallbacks; k++) {
            const dfd_callback *cb = &p->callbacks[k];
            json_array_append_new(list, admin_callback_row(srv, dfd_callstat_slot(srv, cb),
                                  cb->name, p->name, json_integer(p->generation),
                                  (cb->flags & DAFFI_CB_BLOCKING) != 0));
        }
    }
    /* a router: the members' callbacks it has forwarded calls to */
    if (srv->cfg->role == DFD_ROLE_ROUTER &&
        (only == NULL || strcmp(only, DFD_FORWARDED_PLUGIN) == 0)) {
        const dfd_callstat_names *names = &srv->callnames;
        unsigned n = atomic_load_explicit(&names->n, memory_order_acquire);
        found = 1;
        for (unsigned s = 0; s < n; s++)
            if (strcmp(names->plugin[s], DFD_FORWARDED_PLUGIN) == 0)
                json_array_append_new(list, admin_callback_row(srv, s, names->callback[s],
                                      names->plugin[s], json_null(), 0));
    }
    if (!found) {
        json_decref(list);
        admin_send_error(c, cmd->name, "no_such_plugin", NULL, 0,
                         "no plugin named '%s' is serving (see plugins)", only);
        return;
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "callbacks", list);
    admin_send(c, r);
}

/* ---- members, stats, metrics ------------------------------------------------------- */

/* A router's members, from the registry's current snapshot. New reference. */
static json_t *admin_router_members(dfd_server *srv)
{
    json_t *list = json_array();
    pthread_mutex_lock(&srv->registry.lock);
    dfd_snapshot *s = srv->registry.current;
    if (s != NULL)
        dfd_snapshot_retain(s);
    pthread_mutex_unlock(&srv->registry.lock);
    uint64_t now = dfd_now_ns(), frozen_ns = srv->cfg->heartbeat_ms * 1500000u;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        const dfd_snap_member *sm = &s->members[i];
        json_t *cbs = json_array();
        for (size_t k = 0; k < sm->ncallbacks; k++)
            json_array_append_new(cbs, admin_str(sm->callbacks[k]));
        /* its connections: a member with a session may have several (members.h) */
        json_t *links = json_array();
        for (size_t k = 0; k < sm->nlinks; k++) {
            const dfd_link *l = sm->links[k];
            json_array_append_new(links, json_pack("{s:i,s:i,s:b,s:b,s:I}", "link",
                (int)l->index, "loop", (int)l->loop->index, "alive", atomic_load(&l->alive),
                "frozen", dfd_link_frozen(l, now, frozen_ns),
                "in_flight", (json_int_t)atomic_load(&l->inflight)));
        }
        json_array_append_new(list, json_pack("{s:o,s:b,s:b,s:b,s:I,s:o,s:o}", "name",
            admin_str(sm->m->name), "self", sm->m->local, "local", sm->m->local, "alive",
            atomic_load(&sm->m->alive), "in_flight",
            (json_int_t)atomic_load(&sm->m->inflight), "links", links, "callbacks", cbs));
    }
    if (s != NULL)
        dfd_snapshot_release(s);
    return list;
}

void admin_cmd_members(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    dfd_server *srv = c->adm->srv;
    if (srv->cfg->role == DFD_ROLE_ROUTER) {
        json_t *r = admin_ok(cmd->name);
        json_object_set_new(r, "role", json_string(dfd_role_name(srv->cfg->role)));
        json_object_set_new(r, "members", admin_router_members(srv));
        admin_send(c, r);
        return;
    }
    const dfd_table *t = srv->table;
    json_t *cbs = json_array();
    for (size_t i = 0; t != NULL && i < t->nplugins; i++)
        for (size_t k = 0; k < t->plugins[i]->ncallbacks; k++)
            json_array_append_new(cbs, admin_str(t->plugins[i]->callbacks[k].name));
    /* this daffid is a member of its own view, as daffi.members answers */
    json_t *self = json_pack("{s:o,s:b,s:b,s:o}", "name", admin_str(srv->cfg->name),
                             "self", 1, "local", 1, "callbacks", cbs);
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "role", json_string(dfd_role_name(srv->cfg->role)));
    json_object_set_new(r, "members", json_pack("[o]", self));
    admin_send(c, r);
}

void admin_cmd_stats(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uint64_t snap[DFD_STAT_COUNT];
    json_t *counters = json_object(), *gauges = json_object();

    dfd_stats_snapshot(c->adm->srv, snap);
    for (unsigned k = 0; k < DFD_STAT_COUNT; k++)
        json_object_set_new(dfd_stat_kind_of((enum dfd_counter)k) == DFD_COUNTER ? counters
                                                                                 : gauges,
                            dfd_stat_name((enum dfd_counter)k), dfd_stat_json(k, snap[k]));
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "counters", counters);
    json_object_set_new(r, "gauges", gauges);
    admin_send(c, r);
}

void admin_cmd_metrics(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL || dfd_metrics_render(c->adm->srv, buf) == -1) {
        if (buf)
            evbuffer_free(buf);
        admin_send_error(c, cmd->name, "internal", NULL, 0, "out of memory");
        return;
    }
    size_t n = evbuffer_get_length(buf);
    const char *text = (const char *)evbuffer_pullup(buf, -1);
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "content_type", json_string(DFD_METRICS_CONTENT_TYPE));
    json_object_set_new(r, "text", json_stringn(text ? text : "", text ? n : 0));
    evbuffer_free(buf);
    admin_send(c, r);
}

