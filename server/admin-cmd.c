/*
 * admin-cmd.c - the admin socket's commands: parse a line, run it, build the reply
 * with jansson (see admin.h for the protocol, README.md for each reply).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "admin-int.h"
#include "listener.h"
#include "log.h"
#include "members.h"
#include "metrics.h"
#include "plugin-t.h"
#include "reload.h"
#include "sdnotify.h"
#include "server.h"
#include "stats.h"
#include "table.h"

#define ADMIN_MAX_ARGS 8
#define ADMIN_DRAIN_POLL_MS 20

typedef struct admin_cmd {
    const char *name;
    int min_args;
    int max_args;
    const char *usage;
    const char *summary;
    void (*run)(admin_client *c, const struct admin_cmd *cmd, int argc, char **argv);
} admin_cmd;

static const admin_cmd *admin_find(const char *name);

json_t *admin_ok(const char *command)
{
    json_t *r = json_object();
    if (r == NULL)
        return NULL;
    json_object_set_new(r, "status", json_string("ok"));
    json_object_set_new(r, "command", json_string(command));
    return r;
}

/* A wall-clock time as "2024-05-01T12:00:00Z", or null for 0. New reference. */
static json_t *admin_time(time_t t)
{
    struct tm tm;
    char buf[32];

    if (t == 0 || gmtime_r(&t, &tm) == NULL)
        return json_null();
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

/* A string that may come from outside (file names, plugin versions): null when it is
 * not valid UTF-8 rather than a failed reply. */
static json_t *admin_str(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

static json_t *admin_uint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* The wall-clock time a generation was loaded: its private copy is written by the
 * load, so the copy's mtime is that moment. 0 when it cannot be told. */
static time_t admin_loaded_at(const dfd_plugin *p)
{
    struct stat st;
    return p->private_path && stat(p->private_path, &st) == 0 ? st.st_mtime : 0;
}

/* "running", "draining", "drained" or "stopping". */
static const char *admin_state(const dfd_admin *adm)
{
    if (atomic_load(&adm->srv->draining))
        return "stopping";
    if (adm->drain == ADMIN_DRAIN_RUNNING)
        return "draining";
    if (adm->drain == ADMIN_DRAIN_DONE)
        return "drained";
    return "running";
}

/* ---- help, status ------------------------------------------------------------------ */

static void cmd_help(admin_client *c, const admin_cmd *cmd, int argc, char **argv);

static void cmd_status(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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
    json_object_set_new(r, "workers", json_integer(srv->nloops));
    json_object_set_new(r, "blocking_threads", json_integer(cfg->blocking_threads));
    json_object_set_new(r, "connections", admin_uint(snap[DFD_STAT_connections_open]));
    json_object_set_new(r, "calls_in_flight", admin_uint(snap[DFD_STAT_calls_in_flight]));
    json_object_set_new(r, "queued", admin_uint(snap[DFD_STAT_queue_depth]));
    json_object_set_new(r, "plugins", admin_uint(snap[DFD_STAT_plugins]));
    json_object_set_new(r, "callbacks", admin_uint(snap[DFD_STAT_callbacks]));
    json_object_set_new(r, "members", admin_uint(snap[DFD_STAT_members]));
    json_object_set_new(r, "accepting", json_boolean(srv->nlisteners > 0 &&
                                                     !atomic_load(&srv->draining)));
    json_t *ls = json_array();
    for (size_t i = 0; i < cfg->nlisten; i++) {
        char a[400];
        const daffi_addr *l = &cfg->listen[i];
        if (l->kind == DAFFI_ADDR_UNIX)
            snprintf(a, sizeof(a), "unix://%s", l->path);
        else
            snprintf(a, sizeof(a), "tcp://%s:%d", l->host, l->port);
        json_array_append_new(ls, admin_str(a));
    }
    json_object_set_new(r, "listen", ls);
    json_object_set_new(r, "log_level", json_string(dfd_log_level_name(dfd_log_level())));
    json_object_set_new(r, "access_log", json_boolean(cfg->access_log));
    json_object_set_new(r, "admin_clients", json_integer(adm->nclients));
    if (cfg->metrics_enabled) {
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

static void cmd_plugins(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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
        json_object_set_new(o, "loaded_at", admin_time(admin_loaded_at(p)));
        json_object_set_new(o, "last_reload", admin_last_reload(srv, p->name));
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

static void cmd_callbacks(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        const dfd_snap_member *sm = &s->members[i];
        json_t *cbs = json_array();
        for (size_t k = 0; k < sm->ncallbacks; k++)
            json_array_append_new(cbs, admin_str(sm->callbacks[k]));
        json_array_append_new(list, json_pack("{s:o,s:b,s:b,s:b,s:I,s:o}", "name",
            admin_str(sm->m->name), "self", sm->m->local, "local", sm->m->local, "alive",
            atomic_load(&sm->m->alive), "in_flight",
            (json_int_t)atomic_load(&sm->m->inflight), "callbacks", cbs));
    }
    if (s != NULL)
        dfd_snapshot_release(s);
    return list;
}

static void cmd_members(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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

static void cmd_stats(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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

static void cmd_metrics(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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

/* ---- reload, loglevel -------------------------------------------------------------- */

/* [{"name","generation","result","error"}...] of every plugin the engine knows. */
static json_t *admin_reload_results(const dfd_server *srv)
{
    json_t *list = json_array();
    const dfd_reload *rl = srv->reload;
    for (size_t i = 0; rl != NULL && i < rl->nplugins; i++) {
        const dfd_reload_plugin *rp = &rl->plugins[i];
        json_array_append_new(list, json_pack("{s:o,s:o,s:s,s:o}", "name", admin_str(rp->name),
            "generation", rp->current ? json_integer(rp->current->generation) : json_null(),
            "result", dfd_reload_outcome_name(rp->outcome), "error",
            admin_str(rp->last_error)));
    }
    return list;
}

json_t *admin_errors(const dfd_errors *errs)
{
    json_t *a = json_array();
    for (size_t i = 0; i < errs->count; i++)
        json_array_append_new(a, admin_str(errs->msgs[i]));
    return a;
}

static void cmd_reload(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    dfd_server *srv = c->adm->srv;
    const char *only = argc > 0 ? argv[0] : NULL;
    dfd_errors errs = {0};

    if (srv->reload == NULL) {
        admin_send_error(c, cmd->name, "internal", NULL, 0,
                         "hot reload is not available in this process");
        return;
    }
    dfd_info("admin.reload", "uid=%ld plugin=%s", c->uid, only ? only : "-");
    dfd_sdnotify_reloading();
    int rc = dfd_reload_run(srv, only, &errs);
    if (rc == 0) {
        dfd_sdnotify_ready(srv, "reloaded");
        json_t *r = admin_ok(cmd->name);
        json_object_set_new(r, "plugin", only ? admin_str(only) : json_null());
        json_object_set_new(r, "duration_us", admin_uint(srv->reload->last_duration_us));
        json_object_set_new(r, "plugins", admin_reload_results(srv));
        admin_send(c, r);
    } else {
        char why[300];
        snprintf(why, sizeof(why), "reload failed: %s",
                 errs.count ? errs.msgs[0] : "see the log");
        dfd_sdnotify_ready(srv, why);
        json_t *extra = json_pack("{s:o,s:o}", "errors", admin_errors(&errs), "plugins",
                                  admin_reload_results(srv));
        admin_send_error(c, cmd->name, only && errs.count == 1 &&
                         strncmp(errs.msgs[0], "no plugin named", 15) == 0
                             ? "no_such_plugin" : "reload_failed",
                         extra, 0, "%s%s", errs.count ? errs.msgs[0] : "reload failed",
                         errs.count > 1 ? " (and more: see errors)" : "");
    }
    dfd_errors_free(&errs);
}

static void cmd_loglevel(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    int old = dfd_log_level();
    if (argc > 0) {
        int level = dfd_log_level_parse(argv[0]);
        if (level == -1) {
            admin_send_error(c, cmd->name, "bad_arguments", NULL, 0,
                             "unknown level '%.64s' (debug, info, warn, error)", argv[0]);
            return;
        }
        dfd_log_set_level(level);
        dfd_log(old < level ? old : level, "admin.loglevel", "uid=%ld level=%s previous=%s",
                c->uid, dfd_log_level_name(level), dfd_log_level_name(old));
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "log_level", json_string(dfd_log_level_name(dfd_log_level())));
    json_object_set_new(r, "previous", json_string(dfd_log_level_name(old)));
    admin_send(c, r);
}

/* ---- drain, shutdown --------------------------------------------------------------- */

/* The drain's report: {"state", "complete", "waited_ms", "connections", "calls_in_flight"}. */
static json_t *admin_drain_reply(dfd_admin *adm)
{
    uint64_t snap[DFD_STAT_COUNT];
    uint64_t end = adm->drain == ADMIN_DRAIN_DONE ? adm->drain_deadline_ns : dfd_now_ns();
    dfd_stats_snapshot(adm->srv, snap);
    json_t *r = admin_ok("drain");
    json_object_set_new(r, "state", json_string(admin_state(adm)));
    json_object_set_new(r, "complete", json_boolean(adm->drain_complete));
    json_object_set_new(r, "waited_ms", admin_uint((end - adm->drain_start_ns) / 1000000u));
    json_object_set_new(r, "connections", admin_uint(snap[DFD_STAT_connections_open]));
    json_object_set_new(r, "calls_in_flight", admin_uint(snap[DFD_STAT_calls_in_flight]));
    return r;
}

void admin_drain_answer(dfd_admin *adm)
{
    for (admin_client *c = adm->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->waiting)
            continue;
        admin_send(c, admin_drain_reply(adm));
        admin_resume(c);
    }
}

/* Polls the loops until every one drained or shutdown_timeout passed. */
static void admin_on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_admin *adm = arg;
    dfd_server *srv = adm->srv;
    unsigned busy = 0;
    for (unsigned i = 0; i < srv->nloops; i++)
        if (!atomic_load(&srv->loops[i].drained))
            busy++;
    uint64_t now = dfd_now_ns();
    if (busy == 0 || now >= adm->drain_deadline_ns) {
        adm->drain = ADMIN_DRAIN_DONE;
        adm->drain_complete = busy == 0;
        adm->drain_deadline_ns = now; /* from now on: when it ended */
        dfd_info("admin.drained", "complete=%s loops_busy=%u waited_ms=%llu",
                 busy ? "no" : "yes", busy,
                 (unsigned long long)((now - adm->drain_start_ns) / 1000000u));
        dfd_sdnotifyf("STATUS=drained: not accepting connections%s",
                      busy ? "; calls still running" : "; every call answered");
        admin_drain_answer(adm);
        return;
    }
    struct timeval tv = {0, ADMIN_DRAIN_POLL_MS * 1000};
    evtimer_add(adm->drain_timer, &tv);
}

static void cmd_drain(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    dfd_admin *adm = c->adm;
    dfd_server *srv = adm->srv;

    if (atomic_load(&srv->draining)) {
        admin_send_error(c, cmd->name, "shutting_down", NULL, 0,
                         "daffid is shutting down already");
        return;
    }
    if (adm->drain == ADMIN_DRAIN_DONE) {
        admin_send(c, admin_drain_reply(adm));
        return;
    }
    if (adm->drain == ADMIN_DRAIN_NONE) {
        adm->drain_timer = evtimer_new(srv->base, admin_on_drain_tick, adm);
        if (adm->drain_timer == NULL) {
            admin_send_error(c, cmd->name, "internal", NULL, 0, "out of memory");
            return;
        }
        dfd_info("admin.drain", "uid=%ld connections=%u msg=\"no longer accepting; "
                 "finishing the calls in flight\"", c->uid, atomic_load(&srv->conns));
        dfd_server_drain(srv);
        adm->drain = ADMIN_DRAIN_RUNNING;
        adm->drain_complete = 0;
        adm->drain_start_ns = dfd_now_ns();
        adm->drain_deadline_ns = adm->drain_start_ns + srv->cfg->shutdown_timeout_ms * 1000000u;
        dfd_sdnotify("STATUS=draining: not accepting connections, finishing calls");
        struct timeval tv = {0, 0};
        evtimer_add(adm->drain_timer, &tv);
    }
    admin_pause(c);
}

static void cmd_shutdown(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    dfd_server *srv = c->adm->srv;
    uint64_t snap[DFD_STAT_COUNT];

    if (atomic_load(&srv->draining)) {
        admin_send_error(c, cmd->name, "shutting_down", NULL, 0,
                         "daffid is shutting down already");
        return;
    }
    dfd_stats_snapshot(srv, snap);
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "state", json_string("stopping"));
    json_object_set_new(r, "connections", admin_uint(snap[DFD_STAT_connections_open]));
    json_object_set_new(r, "calls_in_flight", admin_uint(snap[DFD_STAT_calls_in_flight]));
    json_object_set_new(r, "shutdown_timeout_ms", admin_uint(srv->cfg->shutdown_timeout_ms));
    admin_send(c, r);
    dfd_info("admin.shutdown", "uid=%ld", c->uid);
    dfd_server_shutdown(srv);
}

/* ---- the table, parsing ------------------------------------------------------------ */

static void cmd_load(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)cmd;
    (void)argc;
    admin_cmd_load(c, argv[0]);
}

static void cmd_unload(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)cmd;
    (void)argc;
    admin_cmd_unload(c, argv[0]);
}

static const admin_cmd admin_cmds[] = {
    {"help", 0, 1, "help [COMMAND]", "list the commands, or show one", cmd_help},
    {"status", 0, 0, "status", "version, role, state, uptime, connections, calls in flight",
     cmd_status},
    {"plugins", 0, 0, "plugins", "each plugin: generation, file, calls, errors, last reload",
     cmd_plugins},
    {"callbacks", 0, 1, "callbacks [PLUGIN]", "each callback: calls by outcome, latency",
     cmd_callbacks},
    {"members", 0, 0, "members", "the members this daffid knows and their callbacks",
     cmd_members},
    {"stats", 0, 0, "stats", "every counter and gauge", cmd_stats},
    {"metrics", 0, 0, "metrics", "the Prometheus text exposition", cmd_metrics},
    {"reload", 0, 1, "reload [PLUGIN]", "reload what changed, or reload one plugin",
     cmd_reload},
    {"load", 1, 1, "load FILE", "load the plugin an ini file (absolute path) declares",
     cmd_load},
    {"unload", 1, 1, "unload NAME", "unload a plugin (its callbacks answer NO_CALLBACK)",
     cmd_unload},
    {"loglevel", 0, 1, "loglevel [debug|info|warn|error]", "show or set the log level",
     cmd_loglevel},
    {"drain", 0, 0, "drain", "stop accepting, finish calls in flight, then report",
     cmd_drain},
    {"shutdown", 0, 0, "shutdown", "graceful shutdown (as SIGTERM)", cmd_shutdown},
};
#define ADMIN_NCMDS (sizeof(admin_cmds) / sizeof(admin_cmds[0]))

static const admin_cmd *admin_find(const char *name)
{
    for (size_t i = 0; i < ADMIN_NCMDS; i++)
        if (strcmp(admin_cmds[i].name, name) == 0)
            return &admin_cmds[i];
    return NULL;
}

static void cmd_help(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    if (argc > 0 && admin_find(argv[0]) == NULL) {
        admin_send_error(c, cmd->name, "unknown_command", NULL, 0,
                         "no command '%.64s' (help lists them)", argv[0]);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < ADMIN_NCMDS; i++) {
        if (argc > 0 && strcmp(admin_cmds[i].name, argv[0]) != 0)
            continue;
        json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "name", admin_cmds[i].name,
                                              "usage", admin_cmds[i].usage, "summary",
                                              admin_cmds[i].summary));
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "commands", list);
    admin_send(c, r);
}

void admin_run_line(admin_client *c, char *line)
{
    char *argv[ADMIN_MAX_ARGS + 1];
    int argc = 0;
    char *save = NULL;

    for (char *tok = strtok_r(line, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save)) {
        if (argc == ADMIN_MAX_ARGS + 1) {
            admin_send_error(c, argv[0], "bad_arguments", NULL, 0,
                             "too many arguments (at most %d)", ADMIN_MAX_ARGS);
            return;
        }
        argv[argc++] = tok;
    }
    if (argc == 0)
        return; /* a blank line is not a command */
    const admin_cmd *cmd = admin_find(argv[0]);
    if (cmd == NULL) {
        /* the name is echoed in the detail only: it may be anything */
        admin_send_error(c, NULL, "unknown_command", NULL, 0,
                         "no command '%.64s' (help lists them)", argv[0]);
        return;
    }
    int nargs = argc - 1;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        admin_send_error(c, cmd->name, "bad_arguments", NULL, 0,
                         "%s takes %s%d argument%s; usage: %s", cmd->name,
                         cmd->min_args == cmd->max_args ? "" : "at most ", cmd->max_args,
                         cmd->max_args == 1 ? "" : "s", cmd->usage);
        return;
    }
    dfd_debug("admin.command", "uid=%ld command=%s args=%d", c->uid, cmd->name, nargs);
    cmd->run(c, cmd, nargs, argv + 1);
}
