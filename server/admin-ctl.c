/*
 * admin-ctl.c - the admin commands that steer: reload, loglevel, drain, shutdown
 * (load and unload are admin-load.c's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "admin-int.h"
#include "listener.h"
#include "log.h"
#include "reload.h"
#include "sdnotify.h"
#include "server.h"
#include "stats.h"

#define ADMIN_DRAIN_POLL_MS 20

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

void admin_cmd_reload(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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

void admin_cmd_loglevel(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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
        dfd_log(old < level ? old : level, "admin.loglevel", "uid=%ld log_level=%s previous=%s",
                c->uid, dfd_log_level_name(level), dfd_log_level_name(old));
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "log_level", json_string(dfd_log_level_name(dfd_log_level())));
    json_object_set_new(r, "previous", json_string(dfd_log_level_name(old)));
    admin_send(c, r);
}

/* accesslog [on|off]: the access log, switched at run time (until the next reload
 * that changes [log] access_log, or another accesslog). */
void admin_cmd_accesslog(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    dfd_server *srv = c->adm->srv;
    int old = atomic_load(&srv->access_log);
    if (argc > 0) {
        int on;
        if (strcmp(argv[0], "on") == 0)
            on = 1;
        else if (strcmp(argv[0], "off") == 0)
            on = 0;
        else {
            admin_send_error(c, cmd->name, "bad_arguments", NULL, 0,
                             "accesslog takes on or off, not '%.64s'", argv[0]);
            return;
        }
        atomic_store(&srv->access_log, on);
        dfd_info("admin.accesslog", "uid=%ld access_log=%s previous=%s", c->uid,
                 on ? "on" : "off", old ? "on" : "off");
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "access_log", json_boolean(atomic_load(&srv->access_log)));
    json_object_set_new(r, "previous", json_boolean(old));
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
    unsigned busy = dfd_server_busy_loops(srv);
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

/* resume: undoes drain. Clients still waiting for the drain's report get it now
 * (state running, complete false). */
void admin_cmd_resume(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    dfd_admin *adm = c->adm;
    dfd_server *srv = adm->srv;
    dfd_errors errs = {0};
    int rc = dfd_server_resume(srv, &errs);
    if (rc == -1) {
        admin_send_error(c, cmd->name, atomic_load(&srv->draining) ? "shutting_down"
                                                                   : "resume_failed",
                         json_pack("{s:o}", "errors", admin_errors(&errs)), 0, "%s",
                         errs.count ? errs.msgs[0] : "cannot resume");
        dfd_errors_free(&errs);
        return;
    }
    int was = adm->drain != ADMIN_DRAIN_NONE;
    if (adm->drain_timer != NULL) {
        event_free(adm->drain_timer);
        adm->drain_timer = NULL;
    }
    adm->drain = ADMIN_DRAIN_NONE;
    adm->drain_complete = 0;
    admin_drain_answer(adm);
    if (rc == 1) {
        dfd_info("admin.resume", "uid=%ld msg=\"accepting and taking calls again\"", c->uid);
        dfd_sdnotify("STATUS=running");
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "state", json_string(admin_state(adm)));
    json_object_set_new(r, "resumed", json_boolean(rc == 1 || was));
    json_object_set_new(r, "listeners", admin_uint(srv->nlisteners));
    admin_send(c, r);
}

void admin_cmd_drain(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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

void admin_cmd_shutdown(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
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

