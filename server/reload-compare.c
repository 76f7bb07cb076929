/*
 * reload-compare.c - what changed between what a generation was loaded from and the
 * configuration just read: a plugin's declaration, its .so's bytes, and the server
 * settings that a reload cannot apply (see reload-int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "logfmt.h"
#include "server.h"
#include "reload-int.h"

/* Returns 1 when a and b are equal strings (both NULL counts as equal). */
static int str_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* See reload-int.h. */
const char *dfd_reload_quote(const char *s, char *buf, size_t n)
{
    size_t i = 0;

    for (; s != NULL && *s != '\0' && i + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        buf[i++] = c == '"' ? '\'' : c < 0x20 ? ' ' : (char)c;
    }
    buf[i] = '\0';
    return buf;
}

/* See reload-int.h. */
void dfd_reload_conf_free(dfd_plugin_conf *c)
{
    free(c->name);
    free(c->path);
    free(c->origin.file);
    free(c->confine_dir);
    for (size_t i = 0; i < c->nconfig; i++) {
        free(c->config[i].key);
        free(c->config[i].value);
    }
    free(c->config);
    memset(c, 0, sizeof(*c));
}

/* See reload-int.h. */
int dfd_reload_conf_copy(dfd_plugin_conf *dst, const dfd_plugin_conf *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->path = NULL;
    dst->origin.file = NULL;
    dst->confine_dir = NULL;
    dst->config = NULL;
    dst->nconfig = 0;
    if ((src->name && (dst->name = strdup(src->name)) == NULL) ||
        (src->path && (dst->path = strdup(src->path)) == NULL) ||
        (src->origin.file && (dst->origin.file = strdup(src->origin.file)) == NULL) ||
        (src->confine_dir && (dst->confine_dir = strdup(src->confine_dir)) == NULL))
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

/* See reload-int.h. The ini file name is not compared: renaming 10-x.ini to
 * 20-x.ini changes nothing loaded. */
const char *dfd_reload_conf_difference(const dfd_plugin_conf *a, const dfd_plugin_conf *b)
{
    if (!str_same(a->path, b->path))
        return "path";
    if (a->concurrency != b->concurrency || a->queue != b->queue ||
        a->blocking_max != b->blocking_max ||
        a->timeout_ms != b->timeout_ms || a->isolation != b->isolation ||
        a->processes != b->processes || a->harakiri_ms != b->harakiri_ms ||
        a->rlimit_as != b->rlimit_as || a->rlimit_cpu_ms != b->rlimit_cpu_ms)
        return "settings";
    if (a->nconfig != b->nconfig)
        return "config";
    for (size_t i = 0; i < a->nconfig; i++)
        if (!str_same(a->config[i].key, b->config[i].key) ||
            !str_same(a->config[i].value, b->config[i].value))
            return "config";
    return NULL;
}

/* See reload-int.h. ctime is compared too: it moves on every write and rename even
 * when a tool restores mtime. */
int dfd_reload_stat_same(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* See reload-int.h. Unreadable counts as different: the reload then tries a load,
 * which reports the reason. */
int dfd_reload_files_same(const char *a, const char *b)
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

/* Logs one setting that differs from the running value. */
static void restart_required(const char *setting, const char *running, const char *wanted)
{
    char a[256], b[256];

    dfd_warn("reload.restart_required", "setting=%s running=%s configured=%s "
             "msg=\"cannot change at runtime; restart daffid to apply it\"", setting,
             dfd_logfmt_value(a, sizeof(a), running), dfd_logfmt_value(b, sizeof(b), wanted));
}

/* Formats the listen list into buf. Returns buf. */
static const char *format_listen(const dfd_config *c, char *buf, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < c->nlisten && used < n; i++) {
        char a[400];
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
                         dfd_addr_format(&c->listen[i], a, sizeof(a)));
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* See reload-int.h. */
/* 1 when both configurations have the same [admin] load_paths. */
static int load_paths_same(const dfd_config *a, const dfd_config *b)
{
    if (a->nadmin_load_paths != b->nadmin_load_paths)
        return 0;
    for (size_t i = 0; i < a->nadmin_load_paths; i++)
        if (strcmp(a->admin_load_paths[i], b->admin_load_paths[i]) != 0)
            return 0;
    return 1;
}

/* 1 when both configurations serve metrics at the same place (or neither does). */
static int metrics_same(const dfd_config *a, const dfd_config *b)
{
    const daffi_addr *x = &a->metrics_listen, *y = &b->metrics_listen;

    if (a->metrics_enabled != b->metrics_enabled)
        return 0;
    if (!a->metrics_enabled)
        return 1;
    if (x->kind != y->kind)
        return 0;
    return x->kind == DAFFI_ADDR_UNIX ? strcmp(x->path, y->path) == 0
                                      : x->port == y->port && strcmp(x->host, y->host) == 0;
}

/* c's metrics_listen as text into buf ("" when off). Returns buf. */
static const char *format_metrics(const dfd_config *c, char *buf, size_t n)
{
    const daffi_addr *m = &c->metrics_listen;

    if (!c->metrics_enabled)
        snprintf(buf, n, "%s", "");
    else if (m->kind == DAFFI_ADDR_UNIX)
        snprintf(buf, n, "unix://%s", m->path);
    else
        snprintf(buf, n, "%s:%d", m->host, m->port);
    return buf;
}

unsigned dfd_reload_server_settings(dfd_reload *r, const dfd_config *run, const dfd_config *nc)
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
    if (!dfd_listen_same(run, nc)) {
        restart_required("server.listen", format_listen(run, a, sizeof(a)),
                         format_listen(nc, b, sizeof(b)));
        n++;
    }
    U_SETTING("server.loops", workers);
    U_SETTING("server.blocking_threads", blocking_threads);
    U_SETTING("server.shutdown_timeout", shutdown_timeout_ms);
    U_SETTING("server.default_timeout", default_timeout_ms);
    S_SETTING("server.pidfile", pidfile);
    U_SETTING("server.backlog", backlog);
    U_SETTING("server.unix_mode", unix_mode);
    S_SETTING("server.router", router);
    U_SETTING("server.duplicate", duplicate);
    U_SETTING("server.heartbeat", heartbeat_ms);
    U_SETTING("server.heartbeat_misses", heartbeat_misses);
    U_SETTING("server.member_inflight", member_inflight);
    U_SETTING("server.reconnect_max", reconnect_max_ms);
    U_SETTING("server.startup_grace", startup_grace_ms);
    S_SETTING("server.state_file", state_file);
    U_SETTING("server.watch_max_wait", watch_max_wait_ms);
    U_SETTING("server.stall_warning", stall_warning_ms);
    if (!metrics_same(run, nc)) {
        restart_required("server.metrics_listen", format_metrics(run, a, sizeof(a)),
                         format_metrics(nc, b, sizeof(b)));
        n++;
    }
    S_SETTING("admin.socket", admin_socket);
    U_SETTING("admin.mode", admin_mode);
    U_SETTING("admin.owner", admin_uid);
    U_SETTING("admin.group", admin_gid);
    U_SETTING("admin.idle_timeout", admin_idle_ms);
    /* [auth] timeout and max_failures reload (dfd_auth_reload_settings), require too
     * unless listen changed, whose items it names */
    if (!dfd_listen_same(run, nc))
        S_SETTING("auth.require", auth_require);
    S_SETTING("auth.token_file", auth_token_file);
    U_SETTING("tls.handshake_timeout", tls_handshake_timeout_ms);
    if (!load_paths_same(run, nc)) {
        restart_required("admin.load_paths", run->nadmin_load_paths ? "(set)" : "",
                         nc->nadmin_load_paths ? "(set)" : "");
        n++;
    }
    U_SETTING("limits.max_message", max_message);
    U_SETTING("limits.max_depth", max_depth);
    U_SETTING("limits.max_pending", max_pending);
    U_SETTING("limits.max_connections", max_connections);
    U_SETTING("limits.max_output", max_output);
    U_SETTING("limits.max_memory", max_memory);
    U_SETTING("limits.max_connection_memory", max_connection_memory);
    U_SETTING("limits.idle_timeout", idle_timeout_ms);
    U_SETTING("limits.read_timeout", read_timeout_ms);
#undef U_SETTING
#undef S_SETTING

    /* the access log is a switch (the admin `accesslog` flips it too): the file's value
     * applies now when the file changed it */
    if (nc->access_log != r->access_log) {
        atomic_store(&r->srv->access_log, nc->access_log);
        dfd_info("reload.access_log", "access_log=%s", nc->access_log ? "yes" : "no");
        r->access_log = nc->access_log;
    }

    /* the logger is atomic: [log] level and target apply now, when the file changed
     * them (a level set by the admin socket since then is not undone otherwise) */
    if (nc->log_level != r->log_level || nc->log_target != r->log_target ||
        nc->log_format != r->log_format) {
        dfd_log_setup(nc->log_level, nc->log_target, nc->log_format, "daffid");
        dfd_info("reload.log", "level=%s target=%s format=%s", dfd_log_level_name(nc->log_level),
                 nc->log_target == DFD_LOG_SYSLOG ? "syslog" : "stderr",
                 nc->log_format == DFD_LOG_JSON ? "json" : "text");
        r->log_level = nc->log_level;
        r->log_target = nc->log_target;
        r->log_format = nc->log_format;
    }
    return n;
}
