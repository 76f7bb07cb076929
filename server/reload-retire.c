/*
 * reload-retire.c - generations leaving the table: the table switch, the drain, the
 * loop fence, the drain-deadline report and the final release, and the records of names
 * that left without ever loading (see reload-int.h).
 *
 * "No reachable pointer to an unreachable location": a generation leaves srv->plugins
 * and srv->table first; loops drop it when they switch tables, calls when they
 * complete. When only the engine's reference is left nothing can reach it any more,
 * but the loop thread that dropped the previous reference may still be returning
 * through the plugin's code (a timer callback of the plugin that called
 * daffi_call_done). So the engine fences: it switches the loops to a fresh copy of the
 * current table and waits until the table they left is released by all of them; each
 * loop has then been back in its event loop, out of any plugin code, and the
 * generation is finalised here, on the main thread.
 */
#include <stdlib.h>

#include <event2/event.h>

#include "log.h"
#include "loop.h"
#include "plugin.h"
#include "reload-int.h"
#include "membership.h"
#include "server.h"
#include "table.h"

#define RETIRE_POLL_MS 20

/* See reload-int.h. A loop whose mail cannot be allocated keeps its previous table
 * (logged); whatever that holds then stays mapped, never the other way round. */
void dfd_reload_switch_table(dfd_server *srv, dfd_table *t)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        dfd_table_retain(t);
        if (dfd_loop_post(&srv->loops[i], dfd_loop_switch_table, dfd_loop_drop_table, t) == -1) {
            dfd_table_release(t);
            dfd_error("reload.post_failed", "loop=%u msg=\"out of memory: this loop keeps "
                      "its previous callback table\"", i);
        }
    }
    dfd_table *old = srv->table;
    srv->table = t;
    if (srv->cfg->role == DFD_ROLE_ROUTER && !dfd_table_same_callbacks(old, t))
        dfd_membership_update_self(srv);
    dfd_table_release(old);
}

/* Starts a loop barrier: the loops switch to a fresh copy of the current table, and the
 * engine keeps a reference on the table they leave. Returns 0, or -1 when the copy
 * cannot be built (out of memory; retried on the next tick). */
static int fence_start(dfd_reload *r)
{
    dfd_server *srv = r->srv;
    dfd_errors e = {0};
    dfd_table *t = dfd_table_build(srv->plugins, srv->nplugins, &e);

    dfd_errors_free(&e);
    if (t == NULL)
        return -1;
    dfd_table_retain(srv->table);
    r->fence = srv->table;
    dfd_reload_switch_table(srv, t);
    return 0;
}

/* Returns the deadline (ms) after which a retiring generation is reported. */
static uint64_t drain_deadline_ms(const dfd_server *srv, const dfd_plugin *p)
{
    uint64_t ms = p->timeout_ms ? p->timeout_ms : srv->cfg->default_timeout_ms;

    if (ms == 0)
        ms = DFD_RELOAD_DRAIN_DEFAULT_MS;
    return ms + DFD_RELOAD_DRAIN_GRACE_MS;
}

/* Arms the retire timer unless it is pending. */
static void retire_arm(dfd_reload *r)
{
    struct timeval tv = {0, RETIRE_POLL_MS * 1000};

    if (r->retire_timer != NULL && !evtimer_pending(r->retire_timer, NULL))
        evtimer_add(r->retire_timer, &tv);
}

/* See reload-int.h. When the list cannot grow, the generation is kept mapped for good
 * (logged): never freed early. */
void dfd_reload_retire(dfd_reload *r, dfd_plugin *gen)
{
    uint64_t now = dfd_now_ns();

    if (r->nretiring == r->retiring_cap) {
        size_t cap = r->retiring_cap ? r->retiring_cap * 2 : 8;
        dfd_reload_retiring *grown = realloc(r->retiring, cap * sizeof(*grown));
        if (grown == NULL) {
            dfd_error("reload.oom", "plugin=%s generation=%u msg=\"cannot track a retiring "
                      "generation; it stays loaded until exit\"", gen->name, gen->generation);
            return;
        }
        r->retiring = grown;
        r->retiring_cap = cap;
    }
    dfd_reload_retiring *e = &r->retiring[r->nretiring++];
    e->gen = gen;
    e->since_ns = now;
    e->deadline_ns = now + drain_deadline_ms(r->srv, gen) * 1000000u;
    e->overdue = 0;
    e->fenced = 0;
    retire_arm(r);
}

/* See reload-int.h. The retire timer (main base): finalises fenced generations once
 * the fence passed, fences drained ones, reports overdue ones. Re-arms itself while
 * any retire. */
void dfd_reload_retire_tick(evutil_socket_t fd, short what, void *arg)
{
    dfd_reload *r = arg;
    uint64_t now = dfd_now_ns();
    size_t drained = 0;

    (void)fd;
    (void)what;
    if (r->fence != NULL && atomic_load_explicit(&r->fence->refs, memory_order_acquire) == 1) {
        dfd_table_release(r->fence);
        r->fence = NULL;
        for (size_t i = 0; i < r->nretiring;) {
            dfd_reload_retiring *e = &r->retiring[i];
            if (!e->fenced) {
                i++;
                continue;
            }
            dfd_plugin *gen = e->gen;
            dfd_info("plugin.finalised", "plugin=%s generation=%u drained_ms=%llu",
                     gen->name, gen->generation,
                     (unsigned long long)((now - e->since_ns) / 1000000u));
            r->retiring[i] = r->retiring[--r->nretiring];
            /* the last reference: fini, dlclose, unlink, here on the main thread */
            dfd_plugin_release(gen);
        }
    }
    for (size_t i = 0; i < r->nretiring; i++) {
        dfd_reload_retiring *e = &r->retiring[i];
        if (e->fenced)
            continue;
        long refs = atomic_load_explicit(&e->gen->refs, memory_order_acquire);
        if (refs == 1) {
            drained++;
        } else if (!e->overdue && now >= e->deadline_ns) {
            e->overdue = 1;
            dfd_warn("plugin.drain_timeout", "plugin=%s generation=%u references=%ld "
                     "waited_ms=%llu msg=\"calls of a replaced generation are still "
                     "running; it stays loaded until they complete\"", e->gen->name,
                     e->gen->generation, refs - 1,
                     (unsigned long long)((now - e->since_ns) / 1000000u));
        }
    }
    if (drained > 0 && r->fence == NULL && fence_start(r) == 0) {
        for (size_t i = 0; i < r->nretiring; i++) {
            dfd_reload_retiring *e = &r->retiring[i];
            /* refs == 1 is final: no table names it, so no call can take it again */
            if (atomic_load_explicit(&e->gen->refs, memory_order_acquire) == 1)
                e->fenced = 1;
        }
    }
    if (r->nretiring > 0)
        retire_arm(r);
}

/* See reload-int.h. */
void dfd_reload_retire_free(dfd_reload *r)
{
    dfd_table_release(r->fence);
    r->fence = NULL;
    for (size_t i = 0; i < r->nretiring; i++)
        dfd_plugin_release(r->retiring[i].gen);
    free(r->retiring);
    r->retiring = NULL;
    r->nretiring = r->retiring_cap = 0;
}

/* See reload-int.h. */
void dfd_reload_forget(dfd_reload *r)
{
    size_t kept = 0;

    for (size_t i = 0; i < r->nplugins; i++) {
        dfd_reload_plugin *rec = &r->plugins[i];
        if (!rec->configured && rec->current == NULL && rec->last_generation == 0) {
            dfd_debug("reload.forget", "plugin=%s msg=\"nothing declares it and it never "
                      "loaded\"", rec->name);
            free(rec->name);
            free(rec->path);
            free(rec->last_error);
            dfd_reload_conf_free(&rec->applied);
            continue;
        }
        r->plugins[kept++] = *rec;
    }
    r->nplugins = kept;
}
