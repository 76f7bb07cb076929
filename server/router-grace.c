/*
 * router-grace.c - the startup grace of a router (see router-grace.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "call.h"
#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "log.h"
#include "members-file.h"
#include "router-grace.h"
#include "router.h"
#include "server.h"

static void grace_deadline(dfd_call *call);

/* A held call's life: its own deadline ends it with TIMEOUT. */
static const dfd_call_hooks grace_hooks = {
    .deadline = grace_deadline,
};

/* How many expected names are not registry members; the first max go to out. Caller
 * holds the registry lock. */
static size_t grace_missing_locked(dfd_server *srv, const char **out, size_t max)
{
    const dfd_registry *r = &srv->registry;
    const dfd_grace *g = r->grace;
    size_t missing = 0;
    for (size_t i = 0; g != NULL && i < g->nexpected; i++) {
        size_t k = 0;
        while (k < r->n && strcmp(r->members[k]->name, g->expected[i]) != 0)
            k++;
        if (k < r->n)
            continue;
        if (missing < max)
            out[missing] = g->expected[i];
        missing++;
    }
    return missing;
}

size_t dfd_grace_missing(dfd_server *srv, const char **out, size_t max)
{
    pthread_mutex_lock(&srv->registry.lock);
    size_t n = grace_missing_locked(srv, out, max);
    pthread_mutex_unlock(&srv->registry.lock);
    return n;
}

static void grace_over_run(dfd_loop *loop, void *arg);

/* Ends the grace (any thread): every loop answers what it holds. reason: static. */
static void grace_end(dfd_server *srv, const char *reason)
{
    dfd_grace *g = srv->registry.grace;
    if (g == NULL || !atomic_exchange(&g->active, 0))
        return;
    dfd_info("router.grace_over", "reason=%s after_ms=%llu held=%lu msg=\"calls for "
             "callbacks nobody exposes get NO_CALLBACK again\"", reason,
             (unsigned long long)((dfd_now_ns() - g->started_ns) / 1000000u),
             atomic_load(&g->held));
    for (unsigned i = 0; i < srv->nloops; i++)
        if (dfd_loop_post(&srv->loops[i], grace_over_run, NULL, NULL) == -1)
            dfd_error("router.grace_over", "loop=%u msg=\"out of memory: its held calls wait "
                      "for their deadline\"", i);
}

void dfd_grace_registry_changed(dfd_server *srv)
{
    dfd_grace *g = srv->registry.grace;
    if (g == NULL || !g->file_known || !atomic_load(&g->active))
        return;
    if (grace_missing_locked(srv, NULL, 0) == 0)
        grace_end(srv, "members_back");
}

static void grace_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    grace_end(arg, "timeout");
}

int dfd_grace_start(dfd_server *srv)
{
    const dfd_config *cfg = srv->cfg;
    if (dfd_members_file_init(srv) == -1)
        return -1;
    dfd_grace *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -1;
    srv->registry.grace = g;
    atomic_init(&g->active, 0);
    g->ms = cfg->startup_grace_ms;
    g->started_ns = dfd_now_ns();
    const char *file = srv->registry.state_file;
    if (file != NULL && dfd_members_file_read(file, &g->expected, &g->nexpected) == 0)
        g->file_known = 1;
    if (g->ms == 0)
        return 0;
    if (g->file_known && g->nexpected == 0) {
        dfd_info("router.grace", "file=%s msg=\"no member known from a previous run: no "
                 "startup grace\"", file);
        return 0;
    }
    g->timer = evtimer_new(srv->base, grace_on_timer, srv);
    struct timeval tv = {(time_t)(g->ms / 1000), (suseconds_t)((g->ms % 1000) * 1000)};
    if (g->timer == NULL || evtimer_add(g->timer, &tv) == -1)
        return -1;
    atomic_store(&g->active, 1);
    char names[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < g->nexpected && used + 2 < sizeof(names); i++)
        used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? "," : "",
                                 g->expected[i]);
    if (g->file_known)
        dfd_info("router.grace", "ms=%llu waiting_for=%zu members=\"%s\" file=%s msg=\"calls "
                 "for callbacks nobody exposes wait until these members are back\"",
                 (unsigned long long)g->ms, g->nexpected, names, file);
    else
        dfd_info("router.grace", "ms=%llu msg=\"calls for callbacks nobody exposes wait "
                 "(no member file: the whole time)\"", (unsigned long long)g->ms);
    return 0;
}

void dfd_grace_free(dfd_server *srv)
{
    dfd_grace *g = srv->registry.grace;
    if (g == NULL)
        return;
    if (g->timer != NULL)
        event_free(g->timer);
    dfd_members_file_free(g->expected, g->nexpected);
    free(g);
    srv->registry.grace = NULL;
}

/* Takes call out of its loop's held list. */
static void grace_unlink(dfd_call *call)
{
    for (dfd_call **pp = &call->loop->parked; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            call->next = NULL;
            return;
        }
    }
}

/* Finishes a held call whose outcome is set (or whose caller left). */
static void grace_finish(dfd_call *call)
{
    atomic_store(&call->state, DFD_CALL_COMPLETING);
    dfd_dispatch_finish(call);
}

int dfd_grace_hold(dfd_conn *c, dfd_call *call)
{
    dfd_loop *loop = call->loop;
    dfd_grace *g = loop->srv->registry.grace;
    if (g == NULL || !atomic_load(&g->active) || c == NULL || call->hooks != NULL ||
        call->cast != NULL)
        return 0;
    if (call->timeout_ms == 0)
        call->timeout_ms = loop->srv->cfg->default_timeout_ms;
    call->hooks = &grace_hooks;
    dfd_conn_link(c, call);
    atomic_store(&call->state, DFD_CALL_RUNNING);
    dfd_dispatch_arm_deadline(call);
    call->next = loop->parked;
    loop->parked = call;
    atomic_fetch_add(&g->held, 1);
    dfd_stat_add(&loop->stats, DFD_STAT_startup_held, 1);
    dfd_debug("router.grace_hold", "peer=%s method=\"%.64s\"", c->peer, call->base.method);
    return 1;
}

/* The deadline of a held call: TIMEOUT, as for any call. */
static void grace_deadline(dfd_call *call)
{
    dfd_loop *loop = call->loop;
    dfd_grace *g = loop->srv->registry.grace;
    grace_unlink(call);
    char msg[360];
    snprintf(msg, sizeof(msg), "no member exposed '%.200s' within %llu ms (the router is "
             "starting: startup_grace)", call->base.method, (unsigned long long)call->timeout_ms);
    dfd_stat_add(&loop->stats, DFD_STAT_timeouts, 1);
    atomic_fetch_add(&g->timed_out, 1);
    daffi_call_set_error(&call->base, DAFFI_E_TIMEOUT, msg);
    grace_finish(call);
}

/* 1 when the loop's snapshot has an alive member exposing the call's method. */
static int grace_servable(const dfd_loop *loop, const dfd_call *call)
{
    const dfd_snap_slot *ss = loop->snapshot != NULL
                                  ? dfd_snapshot_slot(loop->snapshot, call->base.method,
                                                      call->base.msg.method_len)
                                  : NULL;
    for (size_t i = 0; ss != NULL && i < ss->n; i++)
        if (atomic_load(&ss->members[i]->m->alive))
            return 1;
    return 0;
}

void dfd_grace_members_changed(dfd_loop *loop)
{
    dfd_grace *g = loop->srv->registry.grace;
    dfd_call *call = loop->parked;
    while (call != NULL) {
        dfd_call *next = call->next;
        if (atomic_load(&call->cancelled)) {
            grace_unlink(call); /* its caller left */
            grace_finish(call);
        } else if (grace_servable(loop, call)) {
            grace_unlink(call);
            call->hooks = NULL;
            atomic_fetch_add(&g->routed, 1);
            /* already linked to its connection: routed as a call without one */
            dfd_router_route(NULL, call, NULL, 0);
        }
        call = next;
    }
}

/* Mail: the grace is over: what this loop still holds gets NO_CALLBACK. */
static void grace_over_run(dfd_loop *loop, void *arg)
{
    (void)arg;
    dfd_grace *g = loop->srv->registry.grace;
    while (loop->parked != NULL) {
        dfd_call *call = loop->parked;
        loop->parked = call->next;
        call->next = NULL;
        if (!atomic_load(&call->cancelled) && call->conn != NULL) {
            atomic_fetch_add(&g->failed, 1);
            if (call->notify) {
                dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
            } else {
                dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
                dfd_control_no_callback(call->conn, call);
                call->answered = 1;
            }
        }
        grace_finish(call);
    }
}

void dfd_grace_loop_destroy(dfd_loop *loop)
{
    while (loop->parked != NULL) {
        dfd_call *call = loop->parked;
        loop->parked = call->next;
        dfd_call_free(call);
    }
}
