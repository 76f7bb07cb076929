/*
 * reload.c - the hot reload engine: one reload from trigger to table switch (see
 * reload.h; the per-plugin records are reload-records.c's).
 *
 * A reload is planned per plugin record, then committed at once:
 *   1. read the configuration again (same directory, same -o overrides);
 *   2. per plugin: decide keep / load / remove (reload-compare.c says what changed);
 *   3. load the new generations;
 *   4. accept each new generation whose callbacks clash with nobody, building the
 *      table with it; refuse (and release) the others;
 *   5. post the final table to every loop, swap srv->table and srv->plugins, and hand
 *      the generations that left the table to reload-retire.c.
 * Steps 1-4 touch nothing the loops can see, so a failure anywhere before 5 leaves the
 * server exactly as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "admin.h"
#include "isolate.h"
#include "log.h"
#include "plugin.h"
#include "reload-int.h"
#include "logfmt.h"
#include "server.h"
#include "table.h"
#include "watch.h"

/* ---- helpers -------------------------------------------------------------------- */

/* Returns the messages of e joined by "; " (malloc'd, the caller frees), or NULL when
 * e is empty or memory runs out. */
static char *errors_join(const dfd_errors *e)
{
    size_t len = 1;
    char *out;

    if (e->count == 0)
        return NULL;
    for (size_t i = 0; i < e->count; i++)
        len += strlen(e->msgs[i]) + 2;
    out = malloc(len);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < e->count; i++) {
        if (i > 0)
            strcat(out, "; ");
        strcat(out, e->msgs[i]);
    }
    return out;
}

/* ---- one reload ------------------------------------------------------------------- */

/* The plan for one record during a reload. */
typedef struct plan {
    dfd_plugin *keep;             /* in the table unless fresh is accepted (may be NULL) */
    dfd_plugin *fresh;            /* a new generation, one reference (may be NULL) */
    const dfd_plugin_conf *pc;    /* its declaration in the new configuration, or NULL */
    struct stat st;               /* the .so as stat'ed before the load */
    int st_ok;
    int accepted;                 /* fresh goes into the table */
    const char *why;              /* what changed: new, path, settings, config, file,
                                     forced; NULL = unchanged */
} plan;

/* Everything one dfd_reload_run() holds; released by run_free(). */
typedef struct reload_run {
    dfd_server *srv;
    dfd_reload *r;
    const char *only;             /* NULL: every plugin */
    dfd_errors *errs;             /* the caller's */
    dfd_config *nc;               /* the configuration just read; owned */
    plan *pl;                     /* one per record; owned */
    size_t *order;                /* record indices in table order; owned */
    size_t norder;
    dfd_plugin **gens;            /* scratch for table builds; owned */
    unsigned loaded, unchanged, removed, failed, restart;
    char q[1024];                 /* scratch for quoted log fields */
} reload_run;

/* Collects the generations of the plan into x->gens in table order, using fresh for
 * accepted records and for record trial (-1: none). Returns the count. */
static size_t run_gens(reload_run *x, long trial)
{
    size_t n = 0;

    for (size_t k = 0; k < x->norder; k++) {
        size_t i = x->order[k];
        const plan *p = &x->pl[i];
        dfd_plugin *g = (p->accepted || (long)i == trial) ? p->fresh : p->keep;
        if (g != NULL)
            x->gens[n++] = g;
    }
    return n;
}

/* Logs and records a failed attempt for record i: why (may be NULL: out of memory). */
static void run_failed(reload_run *x, size_t i, const char *why)
{
    dfd_reload_plugin *rec = &x->r->plugins[i];
    const plan *p = &x->pl[i];
    const char *reason = why ? why : "out of memory";

    x->failed++;
    dfd_reload_record_outcome(rec, DFD_RELOAD_FAILED, reason);
    char file[PATH_MAX + 8];
    dfd_error("plugin.load_failed", "plugin=%s file=%s change=%s serving=%s error=%s",
              rec->name, dfd_logfmt_value(file, sizeof(file), p->pc->path), p->why,
              p->keep ? "previous" : "nothing", dfd_logfmt_value(x->q, sizeof(x->q), reason));
}

/* Step 1: reads the configuration into x->nc. Returns 0, or -1 (nothing changed; the
 * errors are logged, in x->errs and in r->last_error). */
static int run_read_config(reload_run *x)
{
    dfd_errors cerrs = {0};

    x->nc = calloc(1, sizeof(*x->nc));
    if (x->nc == NULL) {
        dfd_errors_add(x->errs, "out of memory");
        return -1;
    }
    /* check_files = 0: a missing .so is one plugin's failure, not the whole reload's */
    if (dfd_config_load(x->nc, x->srv->cfg->dir, x->srv->overrides, x->srv->noverrides, 0,
                        &cerrs) == 0) {
        free(x->r->last_error);
        x->r->last_error = NULL;
        return 0;
    }
    free(x->nc);
    x->nc = NULL;
    for (size_t i = 0; i < cerrs.count; i++) {
        dfd_error("reload.config_error", "error=%s",
                  dfd_logfmt_value(x->q, sizeof(x->q), cerrs.msgs[i]));
        dfd_errors_add(x->errs, "%s", cerrs.msgs[i]);
    }
    free(x->r->last_error);
    x->r->last_error = errors_join(&cerrs);
    dfd_error("reload.failed", "dir=%s errors=%zu msg=\"the configuration does not load; "
              "nothing changed\"", x->srv->cfg->dir, cerrs.count);
    dfd_errors_free(&cerrs);
    return -1;
}

/* Step 2a: a record and a plan slot per plugin, the table order, the removals.
 * Returns 0, or -1 (out of memory, or only names no plugin). */
static int run_plan(reload_run *x)
{
    dfd_reload *r = x->r;
    const dfd_config *nc = x->nc;

    /* every record first: record_add may move the array */
    for (size_t i = 0; i < nc->nplugins; i++) {
        if (nc->plugins[i].enabled && dfd_reload_record_add(r, nc->plugins[i].name) == -1) {
            dfd_errors_add(x->errs, "out of memory");
            return -1;
        }
    }
    x->pl = calloc(r->nplugins ? r->nplugins : 1, sizeof(*x->pl));
    x->order = calloc(r->nplugins ? r->nplugins : 1, sizeof(*x->order));
    x->gens = calloc(r->nplugins ? r->nplugins : 1, sizeof(*x->gens));
    if (x->pl == NULL || x->order == NULL || x->gens == NULL) {
        dfd_errors_add(x->errs, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < r->nplugins; i++) {
        x->pl[i].keep = r->plugins[i].current;
        r->plugins[i].configured = 0;
    }
    /* the table's order: the configuration's, then plugins an only-reload keeps */
    for (size_t i = 0; i < nc->nplugins; i++) {
        const dfd_plugin_conf *pc = &nc->plugins[i];
        if (!pc->enabled)
            continue;
        size_t at = (size_t)dfd_reload_record_index(r, pc->name);
        r->plugins[at].configured = 1;
        dfd_reload_record_set_path(&r->plugins[at], pc->path);
        x->pl[at].pc = pc;
        x->order[x->norder++] = at;
    }
    for (size_t i = 0; i < r->nplugins; i++) {
        plan *p = &x->pl[i];
        if (p->pc != NULL)
            continue;
        if (x->only != NULL && strcmp(r->plugins[i].name, x->only) != 0) {
            if (p->keep != NULL)
                x->order[x->norder++] = i;
            continue;
        }
        if (p->keep != NULL) {
            p->keep = NULL; /* removed: leaves the table */
            x->removed++;
        }
    }
    if (x->only != NULL) {
        long at = dfd_reload_record_index(r, x->only);
        if (at == -1 || (x->pl[at].pc == NULL && r->plugins[at].current == NULL)) {
            dfd_errors_add(x->errs, "no plugin named '%s' in %s", x->only, x->srv->cfg->dir);
            dfd_warn("reload.failed", "plugin=%s msg=\"no such plugin in the configuration\"",
                     x->only);
            return -1;
        }
    }
    return 0;
}

/* Decides whether rec must load a new generation for p->pc: sets p->why (NULL when
 * unchanged) and p->st. force: reload even when unchanged. */
static void plan_decide(dfd_reload_plugin *rec, plan *p, int force)
{
    p->st_ok = stat(p->pc->path, &p->st) == 0;
    if (rec->current == NULL) {
        p->why = "new";
        return;
    }
    p->why = dfd_reload_conf_difference(&rec->applied, p->pc);
    if (p->why != NULL)
        return;
    if (!p->st_ok) {
        p->why = "file"; /* gone: the load says why it fails */
        return;
    }
    if (!rec->applied_st_known || !dfd_reload_stat_same(&rec->applied_st, &p->st)) {
        if (!dfd_reload_files_same(p->pc->path, rec->current->private_path)) {
            p->why = "file";
            return;
        }
        /* same bytes under a new stat (touch, cp -p, a rebuild of the same code) */
        rec->applied_st = p->st;
        rec->applied_st_known = 1;
    }
    if (force)
        p->why = "forced";
    else if (dfd_isolate_failed(rec->current))
        p->why = "failed"; /* a crash loop stopped its children: a reload starts them */
}

/* Step 2b-3: decides and loads, per record in table order. A failed load is logged and
 * recorded; the record keeps its generation. */
static void run_load(reload_run *x)
{
    dfd_reload *r = x->r;

    for (size_t k = 0; k < x->norder; k++) {
        size_t i = x->order[k];
        dfd_reload_plugin *rec = &r->plugins[i];
        plan *p = &x->pl[i];
        if (p->pc == NULL)
            continue;
        if (x->only != NULL && strcmp(rec->name, x->only) != 0) {
            if (p->keep == NULL)
                p->pc = NULL; /* a new plugin, but this reload is for another one */
            continue;
        }
        plan_decide(rec, p, x->only != NULL);
        if (p->why == NULL) {
            x->unchanged++;
            dfd_reload_record_outcome(rec, DFD_RELOAD_UNCHANGED, NULL);
            continue;
        }
        dfd_errors perrs = {0};
        if (dfd_server_load_plugin(x->srv, p->pc, rec->last_generation + 1, &p->fresh,
                                   &perrs) == -1) {
            char *why = errors_join(&perrs);
            p->fresh = NULL;
            run_failed(x, i, why);
            for (size_t e = 0; e < perrs.count; e++)
                dfd_errors_add(x->errs, "plugin %s: %s", rec->name, perrs.msgs[e]);
            free(why);
        }
        dfd_errors_free(&perrs);
    }
}

/* Step 4: accepts new generations one by one, so that a callback clash refuses only
 * its own plugin; repeats while something was accepted (a clash may have been with a
 * generation that another accepted one replaces). The refused are released. */
static void run_accept(reload_run *x)
{
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t k = 0; k < x->norder; k++) {
            size_t i = x->order[k];
            if (x->pl[i].fresh == NULL || x->pl[i].accepted)
                continue;
            dfd_errors terrs = {0};
            dfd_table *t = dfd_table_build(x->gens, run_gens(x, (long)i), &terrs);
            if (t != NULL) {
                dfd_table_release(t);
                x->pl[i].accepted = 1;
                progress = 1;
            }
            dfd_errors_free(&terrs);
        }
    }
    for (size_t k = 0; k < x->norder; k++) {
        size_t i = x->order[k];
        plan *p = &x->pl[i];
        if (p->fresh == NULL || p->accepted)
            continue;
        /* once more, for the message naming the callback and the other plugin */
        dfd_errors terrs = {0};
        dfd_table_release(dfd_table_build(x->gens, run_gens(x, (long)i), &terrs));
        char *why = errors_join(&terrs);
        run_failed(x, i, why ? why : "out of memory building the callback table");
        dfd_errors_add(x->errs, "plugin %s: %s", x->r->plugins[i].name,
                       why ? why : "out of memory building the callback table");
        free(why);
        dfd_errors_free(&terrs);
        /* init ran: the generation's own release runs fini and unloads it */
        dfd_plugin_release(p->fresh);
        p->fresh = NULL;
    }
}

/* Step 5: switches every loop to the new table and srv->plugins to the new set; the
 * generations that left go to the retiring list. Returns 0, or -1 when memory ran out
 * (nothing changed, the new generations are released). */
static int run_commit(reload_run *x)
{
    dfd_server *srv = x->srv;
    size_t n = run_gens(x, -1);
    dfd_errors terrs = {0};
    dfd_table *t = dfd_table_build(x->gens, n, &terrs);
    dfd_plugin **array = calloc(n ? n : 1, sizeof(*array));

    dfd_errors_free(&terrs);
    if (t == NULL || array == NULL) {
        /* only memory can fail here: every accepted set was built already */
        dfd_table_release(t);
        free(array);
        for (size_t i = 0; i < x->r->nplugins; i++) {
            if (x->pl[i].accepted)
                dfd_plugin_release(x->pl[i].fresh);
            x->pl[i].accepted = 0;
            x->pl[i].fresh = NULL;
        }
        x->failed++;
        dfd_errors_add(x->errs, "out of memory building the callback table");
        dfd_error("reload.failed", "msg=\"out of memory building the callback table; "
                  "nothing changed\"");
        return -1;
    }
    dfd_reload_switch_table(srv, t);
    /* srv->plugins: the references move, none is taken or dropped here */
    memcpy(array, x->gens, n * sizeof(*array));
    for (size_t j = 0; j < srv->nplugins; j++) {
        dfd_plugin *old = srv->plugins[j];
        int stays = 0;
        for (size_t m = 0; m < n && !stays; m++)
            stays = array[m] == old;
        if (!stays)
            dfd_reload_retire(x->r, old);
    }
    free(srv->plugins);
    srv->plugins = array;
    srv->nplugins = n;
    return 0;
}

/* After a commit: updates the records of the loaded and removed plugins and logs. */
static void run_record(reload_run *x)
{
    dfd_reload *r = x->r;

    for (size_t i = 0; i < r->nplugins; i++) {
        dfd_reload_plugin *rec = &r->plugins[i];
        plan *p = &x->pl[i];
        if (p->accepted) {
            dfd_plugin *g = p->fresh;
            unsigned replaces = rec->current ? rec->current->generation : 0u;
            x->loaded++;
            rec->current = g;
            rec->last_generation = g->generation;
            dfd_reload_conf_free(&rec->applied);
            if (dfd_reload_conf_copy(&rec->applied, p->pc) == -1)
                dfd_error("reload.oom", "plugin=%s msg=\"cannot keep a copy of its "
                          "settings; the next reload loads it again\"", rec->name);
            rec->applied_st = p->st;
            rec->applied_st_known = p->st_ok;
            dfd_reload_record_outcome(rec, DFD_RELOAD_LOADED, NULL);
            dfd_info("plugin.loaded", "plugin=%s version=%s file=%s callbacks=%zu "
                     "generation=%u change=%s replaces=%u", g->name, g->desc->version,
                     g->file, g->ncallbacks, g->generation, p->why, replaces);
        } else if (rec->current != NULL && p->keep == NULL) {
            dfd_info("plugin.removed", "plugin=%s generation=%u msg=\"its ini is gone or "
                     "disabled; its callbacks leave the table, calls in flight complete\"",
                     rec->name, rec->current->generation);
            rec->current = NULL;
            dfd_reload_conf_free(&rec->applied);
            rec->applied_st_known = 0;
            dfd_reload_record_outcome(rec, DFD_RELOAD_REMOVED, NULL);
        }
    }
}

/* Releases what a run holds. */
static void run_free(reload_run *x)
{
    free(x->pl);
    free(x->order);
    free(x->gens);
    if (x->nc != NULL) {
        dfd_config_free(x->nc);
        free(x->nc);
    }
}

/* See reload.h. */
int dfd_reload_run(dfd_server *srv, const char *only, dfd_errors *errs)
{
    dfd_errors sink = {0};
    reload_run x;
    uint64_t t0 = dfd_now_ns();
    int rc = -1;

    memset(&x, 0, sizeof(x));
    x.srv = srv;
    x.r = srv->reload;
    x.only = only;
    x.errs = errs ? errs : &sink;
    if (x.r == NULL) {
        dfd_errors_add(x.errs, "hot reload is not available in this process");
        dfd_errors_free(&sink);
        return -1;
    }
    x.r->runs++;
    x.r->last_time = time(NULL);
    if (atomic_load(&srv->draining)) {
        dfd_errors_add(x.errs, "daffid is shutting down: nothing is reloaded");
        dfd_warn("reload.refused", "msg=\"daffid is shutting down\"");
        goto out;
    }
    if (run_read_config(&x) == -1)
        goto out;
    if (only == NULL) {
        /* certificates and tokens: new connections and new daffi.auth calls use them,
         * open connections keep what they have (tls.h, auth.h) */
        if (dfd_tls_reload(srv, x.nc) == -1)
            dfd_errors_add(x.errs, "[tls]: the certificates do not load; the running ones "
                           "stay (see the log)");
        if (dfd_auth_reload(srv, x.nc) == -1)
            dfd_errors_add(x.errs, "[auth] tokens: the file does not load; the running "
                           "tokens stay (see the log)");
        dfd_auth_reload_settings(srv, x.nc);
        if (dfd_admin_reload(srv, x.nc) == -1)
            dfd_errors_add(x.errs, "[admin] allow_uids, allow_gids: out of memory; the "
                           "running lists stay");
    }
    if (only == NULL)
        x.restart = dfd_reload_server_settings(x.r, srv->cfg, x.nc);
    if (run_plan(&x) == -1)
        goto out;
    run_load(&x);
    run_accept(&x);
    int changed = x.removed > 0;
    for (size_t k = 0; k < x.norder; k++)
        changed |= x.pl[x.order[k]].accepted;
    if (changed && run_commit(&x) == -1)
        goto out;
    if (changed)
        run_record(&x);
    rc = x.failed ? -1 : 0;
out:
    x.r->last_duration_us = (dfd_now_ns() - t0) / 1000u;
    x.r->last_ok = rc == 0;
    if (rc == 0)
        x.r->last_ok_time = x.r->last_time;
    if (rc == -1)
        x.r->failures++;
    if (x.nc != NULL && x.pl != NULL)
        dfd_reload_forget(x.r); /* after the plan: x.pl is indexed by record */
    if (x.nc != NULL)
        dfd_info("reload.done", "loaded=%u unchanged=%u removed=%u failed=%u "
                 "restart_required=%u retiring=%zu duration_us=%llu", x.loaded, x.unchanged,
                 x.removed, x.failed, x.restart, x.r->nretiring,
                 (unsigned long long)x.r->last_duration_us);
    run_free(&x);
    dfd_errors_free(&sink);
    /* the files to watch follow the configuration just read */
    if (srv->watch != NULL)
        dfd_watch_sync(srv->watch);
    return rc;
}
