/*
 * reload.c - the hot reload engine (see reload.h).
 *
 * A reload is planned per plugin record, then committed at once:
 *   1. read the configuration again (same directory, same -o overrides);
 *   2. per plugin: decide keep / load / remove; load the new generations;
 *   3. accept each new generation whose callbacks clash with nobody, building the
 *      table with it; refuse (and release) the others;
 *   4. post the final table to every loop, swap srv->table and srv->plugins, and move
 *      the generations that left the table to the retiring list.
 * Steps 1-3 touch nothing the loops can see, so a failure anywhere before 4 leaves the
 * server exactly as it was.
 *
 * Retiring ("no reachable pointer to an unreachable location"): a generation leaves
 * srv->plugins and srv->table first; loops drop it when they switch tables, calls when
 * they complete. When only the engine's reference is left nothing can reach it any
 * more, but the loop thread that dropped the previous reference may still be
 * returning through the plugin's code (a timer callback that called daffi_call_done).
 * So the engine fences: it switches the loops to a fresh copy of the current table and
 * waits until the table they left is released by all of them; each loop has then been
 * back in its event loop, out of any plugin code, and the generation is finalised here,
 * on the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "loop.h"
#include "plugin.h"
#include "reload.h"
#include "server.h"
#include "table.h"
#include "watch.h"

#define RETIRE_POLL_MS 20

/* ---- small helpers ------------------------------------------------------------ */

/* Copies s into buf (size n > 0) for a quoted log field: '"' becomes '\'', control
 * characters become spaces. Returns buf. */
static const char *log_quote(const char *s, char *buf, size_t n)
{
    size_t i = 0;

    for (; s != NULL && *s != '\0' && i + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        buf[i++] = c == '"' ? '\'' : c < 0x20 ? ' ' : (char)c;
    }
    buf[i] = '\0';
    return buf;
}

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

/* Returns 1 when a and b are equal strings (both NULL counts as equal). */
static int str_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Frees what conf_copy() put into c and zeroes it. */
static void conf_free(dfd_plugin_conf *c)
{
    free(c->name);
    free(c->path);
    free(c->origin.file);
    for (size_t i = 0; i < c->nconfig; i++) {
        free(c->config[i].key);
        free(c->config[i].value);
    }
    free(c->config);
    memset(c, 0, sizeof(*c));
}

/* Deep-copies src into dst (zeroed by the caller or by conf_free). Returns 0, or -1
 * when memory runs out (dst then holds what was copied; conf_free releases it). */
static int conf_copy(dfd_plugin_conf *dst, const dfd_plugin_conf *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->path = NULL;
    dst->origin.file = NULL;
    dst->config = NULL;
    dst->nconfig = 0;
    if ((src->name && (dst->name = strdup(src->name)) == NULL) ||
        (src->path && (dst->path = strdup(src->path)) == NULL) ||
        (src->origin.file && (dst->origin.file = strdup(src->origin.file)) == NULL))
        return -1;
    if (src->nconfig == 0)
        return 0;
    dst->config = calloc(src->nconfig, sizeof(*dst->config));
    if (dst->config == NULL)
        return -1;
    for (size_t i = 0; i < src->nconfig; i++) {
        dst->nconfig = i + 1;
        dst->config[i].key = strdup(src->config[i].key ? src->config[i].key : "");
        dst->config[i].value = strdup(src->config[i].value ? src->config[i].value : "");
        if (dst->config[i].key == NULL || dst->config[i].value == NULL)
            return -1;
    }
    return 0;
}

/* Compares what a generation was loaded from (a) with a configuration (b). Returns
 * NULL when they load the same, else which part differs (static text). The ini file
 * name is not compared: renaming 10-x.ini to 20-x.ini changes nothing loaded. */
static const char *conf_difference(const dfd_plugin_conf *a, const dfd_plugin_conf *b)
{
    if (!str_same(a->path, b->path))
        return "path";
    if (a->concurrency != b->concurrency || a->queue != b->queue ||
        a->timeout_ms != b->timeout_ms)
        return "settings";
    if (a->nconfig != b->nconfig)
        return "config";
    for (size_t i = 0; i < a->nconfig; i++)
        if (!str_same(a->config[i].key, b->config[i].key) ||
            !str_same(a->config[i].value, b->config[i].value))
            return "config";
    return NULL;
}

/* Returns 1 when both stat results name the same unchanged file. ctime is compared
 * too: it moves on every write and rename even when a tool restores mtime. */
static int stat_same(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Compares the contents of two files. Returns 1 when equal, 0 when they differ or
 * either cannot be read (a reload then tries a load, which reports the reason). */
static int files_same(const char *a, const char *b)
{
    char ba[65536], bb[65536];
    struct stat sa, sb;
    int fa, fb, same = 0;

    fa = open(a, O_RDONLY | O_CLOEXEC);
    if (fa == -1)
        return 0;
    fb = open(b, O_RDONLY | O_CLOEXEC);
    if (fb == -1) {
        close(fa);
        return 0;
    }
    if (fstat(fa, &sa) == -1 || fstat(fb, &sb) == -1 || sa.st_size != sb.st_size)
        goto out;
    for (off_t off = 0;;) {
        ssize_t na = pread(fa, ba, sizeof(ba), off);
        if (na == -1 && errno == EINTR)
            continue;
        if (na == -1)
            goto out;
        if (na == 0) {
            same = 1;
            goto out;
        }
        ssize_t nb;
        do {
            nb = pread(fb, bb, (size_t)na, off);
        } while (nb == -1 && errno == EINTR);
        if (nb != na || memcmp(ba, bb, (size_t)na) != 0)
            goto out;
        off += na;
    }
out:
    close(fa);
    close(fb);
    return same;
}

/* ---- records -------------------------------------------------------------------- */

/* Returns the index of the record for name, or -1. */
static long record_index(const dfd_reload *r, const char *name)
{
    for (size_t i = 0; i < r->nplugins; i++)
        if (strcmp(r->plugins[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Returns the index of the record for name, appending an empty one when there is none
 * (pointers into r->plugins are invalid afterwards). Returns -1 when out of memory. */
static long record_add(dfd_reload *r, const char *name)
{
    long at = record_index(r, name);

    if (at != -1)
        return at;
    if (r->nplugins == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        dfd_reload_plugin *grown = realloc(r->plugins, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        r->plugins = grown;
        r->cap = cap;
    }
    dfd_reload_plugin *rec = &r->plugins[r->nplugins];
    memset(rec, 0, sizeof(*rec));
    rec->name = strdup(name);
    if (rec->name == NULL)
        return -1;
    return (long)r->nplugins++;
}

/* Sets rec->path to path (copied). Keeps the old one when memory runs out. */
static void record_set_path(dfd_reload_plugin *rec, const char *path)
{
    char *copy;

    if (path == NULL || str_same(rec->path, path))
        return;
    copy = strdup(path);
    if (copy == NULL)
        return;
    free(rec->path);
    rec->path = copy;
}

/* Records the outcome of an attempt; error (may be NULL) is copied. */
static void record_outcome(dfd_reload_plugin *rec, dfd_reload_outcome o, const char *error)
{
    free(rec->last_error);
    rec->last_error = error ? strdup(error) : NULL;
    rec->outcome = o;
    rec->last_time = time(NULL);
}

/* ---- retiring generations --------------------------------------------------------- */

/* Posts t to every loop (one reference each) and makes it srv->table, releasing the
 * server's reference on the previous table. Takes over the caller's reference on t. A
 * loop whose mail cannot be allocated keeps its previous table (logged); whatever it
 * holds then stays mapped, never the other way round. */
static void switch_table(dfd_server *srv, dfd_table *t)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        dfd_table_retain(t);
        if (dfd_loop_post(&srv->loops[i], DFD_MAIL_TABLE, -1, 0, t) == -1) {
            dfd_table_release(t);
            dfd_error("reload.post_failed", "loop=%u msg=\"out of memory: this loop keeps "
                      "its previous callback table\"", i);
        }
    }
    dfd_table *old = srv->table;
    srv->table = t;
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
    switch_table(srv, t);
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

/* Moves one reference on gen (the caller's) to the retiring list. When the list
 * cannot grow, the generation is kept mapped for good (logged): never freed early. */
static void retire_add(dfd_reload *r, dfd_plugin *gen)
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

/* The retire timer (main base): finalises fenced generations once the fence passed,
 * fences drained ones, reports overdue ones. Re-arms itself while any retire. */
static void retire_tick(evutil_socket_t fd, short what, void *arg)
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

/* ---- server settings ---------------------------------------------------------------- */

/* Logs one setting that differs from the running value. */
static void restart_required(const char *setting, const char *running, const char *wanted)
{
    char a[256], b[256];

    dfd_warn("reload.restart_required", "setting=%s running=\"%s\" configured=\"%s\" "
             "msg=\"cannot change at runtime; restart daffid to apply it\"", setting,
             log_quote(running, a, sizeof(a)), log_quote(wanted, b, sizeof(b)));
}

/* Formats the listen list into buf. Returns buf. */
static const char *format_listen(const dfd_config *c, char *buf, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < c->nlisten && used < n; i++) {
        const daffi_addr *a = &c->listen[i];
        int w = a->kind == DAFFI_ADDR_UNIX
                    ? snprintf(buf + used, n - used, "%sunix://%s", i ? ", " : "", a->path)
                    : snprintf(buf + used, n - used, "%stcp://%s:%d", i ? ", " : "", a->host,
                               a->port);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* Returns 1 when both configurations listen on the same addresses, in order. */
static int listen_same(const dfd_config *a, const dfd_config *b)
{
    if (a->nlisten != b->nlisten)
        return 0;
    for (size_t i = 0; i < a->nlisten; i++) {
        const daffi_addr *x = &a->listen[i], *y = &b->listen[i];
        if (x->kind != y->kind || x->port != y->port || strcmp(x->host, y->host) != 0 ||
            strcmp(x->path, y->path) != 0)
            return 0;
    }
    return 1;
}

/* Compares the server sections of the running configuration (run) with a new one
 * (nc): logs every setting that would need a restart, applies [log]. Returns how many
 * settings need a restart. */
static unsigned server_settings(dfd_reload *r, const dfd_config *run, const dfd_config *nc)
{
    char a[512], b[512];
    unsigned n = 0;

#define U_SETTING(key, field)                                                           \
    do {                                                                                \
        if ((unsigned long long)run->field != (unsigned long long)nc->field) {          \
            snprintf(a, sizeof(a), "%llu", (unsigned long long)run->field);             \
            snprintf(b, sizeof(b), "%llu", (unsigned long long)nc->field);              \
            restart_required(key, a, b);                                                \
            n++;                                                                        \
        }                                                                               \
    } while (0)
#define S_SETTING(key, field)                                                           \
    do {                                                                                \
        if (!str_same(run->field, nc->field)) {                                         \
            restart_required(key, run->field ? run->field : "",                         \
                             nc->field ? nc->field : "");                               \
            n++;                                                                        \
        }                                                                               \
    } while (0)

    if (run->role != nc->role) {
        restart_required("server.role", dfd_role_name(run->role), dfd_role_name(nc->role));
        n++;
    }
    S_SETTING("server.name", name);
    if (!listen_same(run, nc)) {
        restart_required("server.listen", format_listen(run, a, sizeof(a)),
                         format_listen(nc, b, sizeof(b)));
        n++;
    }
    U_SETTING("server.workers", workers);
    U_SETTING("server.blocking_threads", blocking_threads);
    U_SETTING("server.shutdown_timeout", shutdown_timeout_ms);
    U_SETTING("server.default_timeout", default_timeout_ms);
    S_SETTING("server.pidfile", pidfile);
    U_SETTING("server.backlog", backlog);
    U_SETTING("server.unix_mode", unix_mode);
    S_SETTING("server.router", router);
    U_SETTING("limits.max_message", max_message);
    U_SETTING("limits.max_depth", max_depth);
    U_SETTING("limits.max_pending", max_pending);
    U_SETTING("limits.max_connections", max_connections);
    U_SETTING("limits.max_output", max_output);
    U_SETTING("log.access_log", access_log);
#undef U_SETTING
#undef S_SETTING

    /* the logger is atomic: [log] level and target apply now, when the file changed
     * them (a level set by the admin socket since then is not undone otherwise) */
    if (nc->log_level != r->log_level || nc->log_target != r->log_target) {
        dfd_log_setup(nc->log_level, nc->log_target, "daffid");
        dfd_info("reload.log", "level=%s target=%s", dfd_log_level_name(nc->log_level),
                 nc->log_target == DFD_LOG_SYSLOG ? "syslog" : "stderr");
        r->log_level = nc->log_level;
        r->log_target = nc->log_target;
    }
    return n;
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
    int refused;                  /* fresh clashed: released */
    const char *why;              /* what changed: new, path, settings, config, file,
                                     forced */
} plan;

/* Collects the generations of the plan into out (room for r->nplugins), in order,
 * using fresh for accepted records and for trial (when not -1). Returns the count. */
static size_t plan_gens(const dfd_reload *r, const plan *pl, const size_t *order,
                        size_t norder, long trial, dfd_plugin **out)
{
    size_t n = 0;

    (void)r;
    for (size_t k = 0; k < norder; k++) {
        size_t i = order[k];
        dfd_plugin *g = (pl[i].accepted || (long)i == trial) ? pl[i].fresh : pl[i].keep;
        if (g != NULL)
            out[n++] = g;
    }
    return n;
}

/* Decides whether rec must load a new generation for pc: fills p->why (NULL when
 * unchanged) and p->st. force: reload even when unchanged. */
static void plan_decide(dfd_reload_plugin *rec, const dfd_plugin_conf *pc, int force,
                        plan *p)
{
    p->st_ok = stat(pc->path, &p->st) == 0;
    if (rec->current == NULL) {
        p->why = "new";
        return;
    }
    p->why = conf_difference(&rec->applied, pc);
    if (p->why != NULL)
        return;
    if (!p->st_ok) {
        p->why = "file"; /* gone: the load says why it fails */
        return;
    }
    if (!rec->applied_st_known || !stat_same(&rec->applied_st, &p->st)) {
        if (!files_same(pc->path, rec->current->private_path)) {
            p->why = "file";
            return;
        }
        /* same bytes under a new stat (touch, cp -p, a rebuild of the same code) */
        rec->applied_st = p->st;
        rec->applied_st_known = 1;
    }
    if (force)
        p->why = "forced";
}

/* See reload.h. */
int dfd_reload_run(dfd_server *srv, const char *only, dfd_errors *errs_in)
{
    dfd_reload *r = srv->reload;
    dfd_errors sink = {0};
    dfd_errors *errs = errs_in ? errs_in : &sink;
    dfd_errors cerrs = {0};
    dfd_config *nc = NULL;
    plan *pl = NULL;
    size_t *order = NULL;
    dfd_plugin **gens = NULL;
    size_t norder = 0;
    unsigned loaded = 0, unchanged = 0, removed = 0, failed = 0, restart = 0;
    uint64_t t0 = dfd_now_ns();
    int rc = -1;
    char q[1024];

    if (r == NULL) {
        dfd_errors_add(errs, "hot reload is not available in this process");
        goto out;
    }
    r->runs++;
    r->last_time = time(NULL);
    if (atomic_load(&srv->draining)) {
        dfd_errors_add(errs, "daffid is shutting down: nothing is reloaded");
        dfd_warn("reload.refused", "msg=\"daffid is shutting down\"");
        goto out;
    }

    /* 1. the configuration, whole; nothing has changed yet if it does not parse */
    nc = calloc(1, sizeof(*nc));
    if (nc == NULL) {
        dfd_errors_add(errs, "out of memory");
        goto out;
    }
    if (dfd_config_load(nc, srv->cfg->dir, srv->overrides, srv->noverrides, 0, &cerrs) == -1) {
        free(nc);
        nc = NULL;
        for (size_t i = 0; i < cerrs.count; i++) {
            dfd_error("reload.config_error", "error=\"%s\"",
                      log_quote(cerrs.msgs[i], q, sizeof(q)));
            dfd_errors_add(errs, "%s", cerrs.msgs[i]);
        }
        free(r->last_error);
        r->last_error = errors_join(&cerrs);
        dfd_error("reload.failed", "dir=%s errors=%zu msg=\"the configuration does not "
                  "load; nothing changed\"", srv->cfg->dir, cerrs.count);
        goto out;
    }
    free(r->last_error);
    r->last_error = NULL;
    if (only == NULL)
        restart = server_settings(r, srv->cfg, nc);

    /* 2. a record for every declared plugin (before taking pointers into the array) */
    for (size_t i = 0; i < nc->nplugins; i++) {
        if (nc->plugins[i].enabled && record_add(r, nc->plugins[i].name) == -1) {
            dfd_errors_add(errs, "out of memory");
            goto out;
        }
    }
    if (only != NULL && record_index(r, only) == -1) {
        dfd_errors_add(errs, "no plugin named '%s' in %s", only, srv->cfg->dir);
        dfd_warn("reload.failed", "plugin=%s msg=\"no such plugin in the configuration\"",
                 only);
        goto out;
    }
    pl = calloc(r->nplugins, sizeof(*pl));
    order = calloc(r->nplugins, sizeof(*order));
    gens = calloc(r->nplugins, sizeof(*gens));
    if (pl == NULL || order == NULL || gens == NULL) {
        dfd_errors_add(errs, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r->nplugins; i++) {
        pl[i].keep = r->plugins[i].current;
        r->plugins[i].configured = 0;
    }
    /* the table's order: the configuration's, then plugins an only-reload keeps */
    for (size_t i = 0; i < nc->nplugins; i++) {
        const dfd_plugin_conf *pc = &nc->plugins[i];
        if (!pc->enabled)
            continue;
        size_t at = (size_t)record_index(r, pc->name);
        dfd_reload_plugin *rec = &r->plugins[at];
        rec->configured = 1;
        record_set_path(rec, pc->path);
        pl[at].pc = pc;
        order[norder++] = at;
    }
    for (size_t i = 0; i < r->nplugins; i++) {
        if (pl[i].pc != NULL)
            continue;
        if (only != NULL && strcmp(r->plugins[i].name, only) != 0) {
            if (pl[i].keep != NULL)
                order[norder++] = i;
            continue;
        }
        if (pl[i].keep != NULL) {
            pl[i].keep = NULL; /* removed: leaves the table */
            removed++;
        }
    }
    if (only != NULL) {
        size_t at = (size_t)record_index(r, only);
        if (pl[at].pc == NULL && r->plugins[at].current == NULL) {
            dfd_errors_add(errs, "no plugin named '%s' in %s", only, srv->cfg->dir);
            dfd_warn("reload.failed", "plugin=%s msg=\"no such plugin in the configuration\"",
                     only);
            goto out;
        }
    }

    /* load what changed */
    for (size_t k = 0; k < norder; k++) {
        size_t i = order[k];
        dfd_reload_plugin *rec = &r->plugins[i];
        plan *p = &pl[i];
        if (p->pc == NULL)
            continue;
        if (only != NULL && strcmp(rec->name, only) != 0) {
            if (p->keep == NULL) {
                p->pc = NULL; /* a new plugin, but this reload is for another one */
            }
            continue;
        }
        plan_decide(rec, p->pc, only != NULL, p);
        if (p->why == NULL) {
            unchanged++;
            record_outcome(rec, DFD_RELOAD_UNCHANGED, NULL);
            continue;
        }
        dfd_errors perrs = {0};
        if (dfd_plugin_load(p->pc, srv->private_dir, rec->last_generation + 1, &p->fresh,
                            &perrs) == -1) {
            char *why = errors_join(&perrs);
            failed++;
            record_outcome(rec, DFD_RELOAD_FAILED, why ? why : "out of memory");
            dfd_error("plugin.load_failed", "plugin=%s file=%s change=%s serving=%s "
                      "error=\"%s\"", rec->name, p->pc->path, p->why,
                      p->keep ? "previous generation" : "nothing",
                      log_quote(why ? why : "out of memory", q, sizeof(q)));
            for (size_t e = 0; e < perrs.count; e++)
                dfd_errors_add(errs, "plugin %s: %s", rec->name, perrs.msgs[e]);
            free(why);
            dfd_errors_free(&perrs);
            p->fresh = NULL;
        }
    }

    /* 3. accept new generations one by one, so a clash refuses only its own plugin;
     * repeat while something was accepted (a clash may have been with a generation
     * that another accepted one replaces) */
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t k = 0; k < norder; k++) {
            size_t i = order[k];
            if (pl[i].fresh == NULL || pl[i].accepted || pl[i].refused)
                continue;
            dfd_errors terrs = {0};
            size_t n = plan_gens(r, pl, order, norder, (long)i, gens);
            dfd_table *t = dfd_table_build(gens, n, &terrs);
            if (t != NULL) {
                dfd_table_release(t);
                pl[i].accepted = 1;
                progress = 1;
            }
            dfd_errors_free(&terrs);
        }
    }
    for (size_t k = 0; k < norder; k++) {
        size_t i = order[k];
        dfd_reload_plugin *rec = &r->plugins[i];
        if (pl[i].fresh == NULL || pl[i].accepted)
            continue;
        /* once more, for the message naming the callback and the other plugin */
        dfd_errors terrs = {0};
        size_t n = plan_gens(r, pl, order, norder, (long)i, gens);
        dfd_table *t = dfd_table_build(gens, n, &terrs);
        dfd_table_release(t);
        char *why = errors_join(&terrs);
        const char *reason = why ? why : "out of memory building the callback table";
        failed++;
        record_outcome(rec, DFD_RELOAD_FAILED, reason);
        dfd_error("plugin.load_failed", "plugin=%s file=%s change=%s serving=%s error=\"%s\"",
                  rec->name, pl[i].pc->path, pl[i].why,
                  pl[i].keep ? "previous generation" : "nothing",
                  log_quote(reason, q, sizeof(q)));
        dfd_errors_add(errs, "plugin %s: %s", rec->name, reason);
        free(why);
        dfd_errors_free(&terrs);
        pl[i].refused = 1;
        /* init ran: the generation's own release runs fini and unloads it */
        dfd_plugin_release(pl[i].fresh);
        pl[i].fresh = NULL;
    }

    /* 4. commit */
    size_t n = plan_gens(r, pl, order, norder, -1, gens);
    int changed = removed > 0;
    for (size_t k = 0; k < norder; k++)
        changed |= pl[order[k]].accepted;
    if (changed) {
        dfd_errors terrs = {0};
        dfd_table *t = dfd_table_build(gens, n, &terrs);
        dfd_plugin **array = calloc(n ? n : 1, sizeof(*array));
        if (t == NULL || array == NULL) {
            /* only memory can fail here: every accepted set was built already */
            dfd_table_release(t);
            free(array);
            dfd_errors_free(&terrs);
            for (size_t i = 0; i < r->nplugins; i++)
                if (pl[i].accepted)
                    dfd_plugin_release(pl[i].fresh);
            dfd_errors_add(errs, "out of memory building the callback table");
            dfd_error("reload.failed", "msg=\"out of memory building the callback table; "
                      "nothing changed\"");
            failed++;
            goto out;
        }
        dfd_errors_free(&terrs);
        switch_table(srv, t);

        /* srv->plugins: references move, none is taken or dropped here; those of the
         * generations that left go to the retiring list */
        for (size_t j = 0; j < n; j++)
            array[j] = gens[j];
        for (size_t j = 0; j < srv->nplugins; j++) {
            dfd_plugin *old = srv->plugins[j];
            int stays = 0;
            for (size_t m = 0; m < n && !stays; m++)
                stays = array[m] == old;
            if (!stays)
                retire_add(r, old);
        }
        free(srv->plugins);
        srv->plugins = array;
        srv->nplugins = n;
    }

    for (size_t i = 0; i < r->nplugins; i++) {
        dfd_reload_plugin *rec = &r->plugins[i];
        if (pl[i].accepted) {
            dfd_plugin *g = pl[i].fresh;
            const dfd_plugin *old = rec->current;
            loaded++;
            rec->current = g;
            rec->last_generation = g->generation;
            conf_free(&rec->applied);
            if (conf_copy(&rec->applied, pl[i].pc) == -1)
                dfd_error("reload.oom", "plugin=%s msg=\"cannot keep a copy of its settings; "
                          "the next reload loads it again\"", rec->name);
            rec->applied_st = pl[i].st;
            rec->applied_st_known = pl[i].st_ok;
            record_outcome(rec, DFD_RELOAD_LOADED, NULL);
            dfd_info("plugin.loaded", "plugin=%s version=%s file=%s callbacks=%zu "
                     "generation=%u change=%s replaces=%u", g->name, g->desc->version,
                     g->file, g->ncallbacks, g->generation, pl[i].why,
                     old ? old->generation : 0u);
        } else if (rec->current != NULL && pl[i].keep == NULL) {
            dfd_info("plugin.removed", "plugin=%s generation=%u msg=\"its ini is gone or "
                     "disabled; callbacks leave the table, calls in flight complete\"",
                     rec->name, rec->current->generation);
            rec->current = NULL;
            conf_free(&rec->applied);
            rec->applied_st_known = 0;
            record_outcome(rec, DFD_RELOAD_REMOVED, NULL);
        }
    }
    rc = failed ? -1 : 0;

out:
    if (r != NULL) {
        r->last_duration_us = (dfd_now_ns() - t0) / 1000u;
        r->last_ok = rc == 0;
        if (rc == -1)
            r->failures++;
        if (nc != NULL)
            dfd_info("reload.done", "loaded=%u unchanged=%u removed=%u failed=%u "
                     "restart_required=%u retiring=%zu duration_us=%llu", loaded, unchanged,
                     removed, failed, restart, r->nretiring,
                     (unsigned long long)r->last_duration_us);
    }
    free(pl);
    free(order);
    free(gens);
    if (nc != NULL) {
        dfd_config_free(nc);
        free(nc);
    }
    dfd_errors_free(&cerrs);
    dfd_errors_free(&sink);
    /* the set of files to watch follows the configuration just read */
    if (r != NULL && srv->watch != NULL)
        dfd_watch_sync(srv->watch);
    return rc;
}

/* ---- lifetime and accessors ----------------------------------------------------------- */

/* See reload.h. */
dfd_reload *dfd_reload_new(dfd_server *srv)
{
    dfd_reload *r = calloc(1, sizeof(*r));

    if (r == NULL)
        goto oom;
    r->srv = srv;
    r->log_level = srv->cfg->log_level;
    r->log_target = srv->cfg->log_target;
    r->last_ok = 1;
    r->retire_timer = evtimer_new(srv->base, retire_tick, r);
    if (r->retire_timer == NULL)
        goto oom;
    for (size_t i = 0; i < srv->nplugins; i++) {
        dfd_plugin *p = srv->plugins[i];
        const dfd_plugin_conf *pc = NULL;
        for (size_t k = 0; k < srv->cfg->nplugins && pc == NULL; k++)
            if (strcmp(srv->cfg->plugins[k].name, p->name) == 0)
                pc = &srv->cfg->plugins[k];
        long at = record_add(r, p->name);
        if (at == -1)
            goto oom;
        dfd_reload_plugin *rec = &r->plugins[at];
        rec->configured = 1;
        rec->current = p;
        rec->last_generation = p->generation;
        record_set_path(rec, p->file);
        /* the file may have changed between the load and now: the first check compares
         * the bytes with the private copy instead of trusting a stat taken now */
        rec->applied_st_known = 0;
        if (pc != NULL && conf_copy(&rec->applied, pc) == -1)
            goto oom;
    }
    return r;
oom:
    dfd_error("reload.oom", "msg=\"cannot set up hot reload\"");
    dfd_reload_free(r);
    return NULL;
}

/* See reload.h. */
void dfd_reload_free(dfd_reload *r)
{
    if (r == NULL)
        return;
    if (r->retire_timer != NULL)
        event_free(r->retire_timer);
    dfd_table_release(r->fence);
    for (size_t i = 0; i < r->nretiring; i++)
        dfd_plugin_release(r->retiring[i].gen);
    free(r->retiring);
    for (size_t i = 0; i < r->nplugins; i++) {
        dfd_reload_plugin *rec = &r->plugins[i];
        free(rec->name);
        free(rec->path);
        free(rec->last_error);
        conf_free(&rec->applied);
    }
    free(r->plugins);
    free(r->last_error);
    free(r);
}

/* See reload.h. */
const dfd_reload_plugin *dfd_reload_find(const dfd_reload *r, const char *name)
{
    long at = r ? record_index(r, name) : -1;

    return at == -1 ? NULL : &r->plugins[at];
}

/* See reload.h. */
const char *dfd_reload_outcome_name(dfd_reload_outcome o)
{
    switch (o) {
    case DFD_RELOAD_NONE:
        return "none";
    case DFD_RELOAD_LOADED:
        return "loaded";
    case DFD_RELOAD_UNCHANGED:
        return "unchanged";
    case DFD_RELOAD_FAILED:
        return "failed";
    case DFD_RELOAD_REMOVED:
        return "removed";
    }
    return "unknown";
}
