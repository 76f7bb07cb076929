/*
 * config.c - daffid's configuration model: the defaults, the errors, the plugins, the
 * -o overrides, plugin path resolution and the checks that need every file (see
 * config.h for the rules an operator sees; config-keys.c reads each key's value).
 *
 * A load runs in four steps:
 *   1. config-ini.c reads every ini file of the directory in strcmp order and hands
 *      each key to config-keys.c: server keys are applied as they come (so a later
 *      file overrides), a [plugin] file's plugin is added when the file ends;
 *   2. the -o overrides are applied;
 *   3. plugin_dir and the plugin paths are resolved (plugin_dir may come from any file
 *      or override, so only now), and with check_files each .so is looked at;
 *   4. the checks that need everything: listen for a service or router, router for a
 *      worker, the default member name.
 * Every problem is appended to the caller's dfd_errors and the load goes on, so that
 * one run reports them all.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include <daffi/plugin.h>

#include "config-int.h"
#include "paths.h"

static const char *const cfg_sect_names[] = {
    [DFD_SECT_NONE] = NULL, [DFD_SECT_SERVER] = "server", [DFD_SECT_LIMITS] = "limits",
    [DFD_SECT_LOG] = "log", [DFD_SECT_ADMIN] = "admin",
    [DFD_SECT_TLS] = "tls", [DFD_SECT_AUTH] = "auth", [DFD_SECT_PLUGIN] = "plugin", [DFD_SECT_CONFIG] = "config",
    [DFD_SECT_SKIP] = NULL,
};

/* See config-int.h. */
const char *dfd_cfg_sect_name(dfd_cfg_sect sect)
{
    return (unsigned)sect <= DFD_SECT_SKIP ? cfg_sect_names[sect] : NULL;
}

/* See config-int.h. */
dfd_cfg_sect dfd_cfg_sect_find(const char *name)
{
    for (dfd_cfg_sect s = DFD_SECT_SERVER; s <= DFD_SECT_CONFIG; s++)
        if (strcmp(name, cfg_sect_names[s]) == 0)
            return s;
    return DFD_SECT_SKIP;
}

/* ---- errors ------------------------------------------------------------------ */

/* Appends one message built from fmt to errs. The message is owned by errs. When memory
 * runs out the message is lost, but the caller's count of problems (loader) is not. */
void dfd_errors_add(dfd_errors *errs, const char *fmt, ...)
{
    va_list ap;
    char *msg, **msgs;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) == -1) {
        va_end(ap);
        return;
    }
    va_end(ap);
    msgs = realloc(errs->msgs, (errs->count + 1) * sizeof(*msgs));
    if (msgs == NULL) {
        free(msg);
        return;
    }
    msgs[errs->count++] = msg;
    errs->msgs = msgs;
}

/* Frees every message and leaves errs empty and reusable. */
void dfd_errors_free(dfd_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->count = 0;
}

/* 1 when a key or section name read from a file may be repeated in a message: 1 to 32
 * of [a-z0-9_.-], as every name daffid knows and their typos are. Anything else may be
 * a line of a file that is no ini at all (a password file, a key). */
static int cfg_name_shown(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-");
    return n > 0 && n <= 32 && s[n] == '\0';
}

/* Records "FILE:LINE: [sect] key: what", plus " (got 'value')" for an override. line 0,
 * sect, key and value NULL leave their part out. A file's contents are never repeated:
 * its values are not shown, and its key and section names only when they are plain
 * names (cfg_name_shown); an override comes from the command line and is shown whole.
 * Nothing passed is kept. */
void dfd_cfg_err(dfd_cfg_loader *ld, const char *file, unsigned line, const char *sect,
                 const char *key, const char *value, const char *fmt, ...)
{
    char what[1024], where[32] = "";
    int override = strcmp(file, DFD_CFG_OVERRIDE) == 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(where, sizeof(where), ":%u", line);
    if (!override) {
        value = NULL;
        if (sect != NULL && !cfg_name_shown(sect))
            sect = "(a section name not repeated here)";
        if (key != NULL && !cfg_name_shown(key))
            key = "(a key not repeated here)";
    }
    ld->nerr++;
    if (ld->errs == NULL)
        return;
    dfd_errors_add(ld->errs, "%s%s: %s%s%s%s%s%s%s%s%s", file, where,
                   sect ? "[" : "", sect ? sect : "", sect ? "] " : "",
                   key ? key : "", key ? ": " : "", what,
                   value ? " (got '" : "", value ? value : "", value ? "')" : "");
}

/* Records "out of memory" at file:line (see dfd_cfg_err). */
void dfd_cfg_oom(dfd_cfg_loader *ld, const char *file, unsigned line)
{
    dfd_cfg_err(ld, file, line, NULL, NULL, NULL, "out of memory");
}

/* ---- plugins ------------------------------------------------------------------ */

/* Frees what a dfd_plugin_conf owns (not the struct) and zeroes it. */
void dfd_cfg_plugin_free(dfd_plugin_conf *p)
{
    free(p->name);
    free(p->path);
    free(p->origin.file);
    free(p->confine_dir);
    for (size_t i = 0; i < p->nconfig; i++) {
        free(p->config[i].key);
        free(p->config[i].value);
    }
    free(p->config);
    memset(p, 0, sizeof(*p));
}

/* Zeroes p and sets the [plugin] defaults (queue 1024, enabled, inline, 1 process,
 * harakiri at twice the timeout). p owns nothing yet. */
void dfd_cfg_plugin_init(dfd_plugin_conf *p)
{
    memset(p, 0, sizeof(*p));
    p->queue = 1024;
    p->enabled = 1;
    p->isolation = DFD_ISOLATION_INLINE;
    p->processes = 1;
    p->harakiri_ms = DFD_HARAKIRI_DEFAULT;
}

/* Index of the plugin called name in cfg->plugins, or -1. */
static long cfg_find_plugin(const dfd_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nplugins; i++)
        if (strcmp(cfg->plugins[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* See config-int.h. On refusal p and m still own their memory (the caller frees). */
void dfd_cfg_add_plugin(dfd_cfg_loader *ld, const char *file, unsigned line,
                        dfd_plugin_conf *p, dfd_cfg_plugin_meta *m)
{
    dfd_config *cfg = ld->cfg;
    long dup = cfg_find_plugin(cfg, p->name);

    if (dup != -1) {
        /* a plugin name is checked to be a plain name: it may be shown */
        dfd_cfg_err(ld, file, m->name_at.line, "plugin", "name", NULL,
                    "duplicate plugin name '%s', already declared in %s:%u", p->name,
                    ld->meta[dup].name_at.file, ld->meta[dup].name_at.line);
        return;
    }
    if (cfg->nplugins == ld->plugins_cap) {
        size_t cap = ld->plugins_cap ? ld->plugins_cap * 2 : 8;
        dfd_plugin_conf *grown = realloc(cfg->plugins, cap * sizeof(*grown));
        dfd_cfg_plugin_meta *gmeta;

        if (grown != NULL)
            cfg->plugins = grown;
        if (grown == NULL || (gmeta = realloc(ld->meta, cap * sizeof(*gmeta))) == NULL) {
            dfd_cfg_oom(ld, file, line);
            return;
        }
        ld->meta = gmeta;
        ld->plugins_cap = cap;
    }
    if ((p->origin.file = strdup(file)) == NULL) {
        dfd_cfg_oom(ld, file, line);
        return;
    }
    p->origin.line = line;
    cfg->plugins[cfg->nplugins] = *p;
    ld->meta[cfg->nplugins] = *m;
    cfg->nplugins++;
    memset(p, 0, sizeof(*p));
    memset(m, 0, sizeof(*m));
}

/* Returns "base/rel" (malloc'd, caller frees) without doubling a trailing '/', or
 * NULL when memory runs out. */
char *dfd_cfg_join(const char *base, const char *rel)
{
    size_t n = strlen(base);
    char *out;

    while (n > 1 && base[n - 1] == '/')
        n--;
    if (asprintf(&out, "%.*s%s%s", (int)n, base,
                 n == 0 || base[n - 1] == '/' ? "" : "/", rel) == -1)
        return NULL;
    return out;
}

/* ---- overrides ------------------------------------------------------------------- */

/* Copies [b, e) trimmed of blanks into a new string. NULL when memory runs out. */
static char *cfg_trimmed(const char *b, const char *e)
{
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    return strndup(b, (size_t)(e - b));
}

/* Applies override number index (1-based): "section.key=value",
 * "NAME:plugin.key=value" or "NAME:config.key=value". */
static void cfg_override(dfd_cfg_loader *ld, const char *text, unsigned index)
{
    dfd_cfg_where at = { DFD_CFG_OVERRIDE, index };
    const char *eq = strchr(text, '='), *why = NULL;
    char *left = NULL, *value = NULL, *name = NULL, *dot, *colon, *sect, *key;
    dfd_cfg_sect s;
    dfd_plugin_conf *p;
    long pi;

    /* "@FILE": one more ini file, read after the directory (admin `load` uses it) */
    if (text[0] == '@') {
        if (text[1] == '\0')
            dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, NULL, NULL, text,
                        "no file after '@' (expected @/path/to/file.ini)");
        else
            dfd_cfg_read_extra(ld, text + 1);
        return;
    }
    if (eq == NULL) {
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, NULL, NULL, text,
                    "no '=' (expected section.key=value or NAME:plugin.key=value)");
        return;
    }
    if ((left = cfg_trimmed(text, eq)) == NULL ||
        (value = cfg_trimmed(eq + 1, eq + 1 + strlen(eq + 1))) == NULL) {
        dfd_cfg_oom(ld, DFD_CFG_OVERRIDE, index);
        goto out;
    }
    sect = left;
    if ((colon = strchr(left, ':')) != NULL) {
        *colon = '\0';
        name = left;
        sect = colon + 1;
    }
    if ((dot = strchr(sect, '.')) == NULL) {
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, NULL, NULL, text,
                    "no section (expected section.key=value or NAME:plugin.key=value)");
        goto out;
    }
    *dot = '\0';
    key = dot + 1;
    if ((s = dfd_cfg_sect_find(sect)) == DFD_SECT_SKIP) {
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, sect, NULL, text,
                    "unknown section (sections: server, limits, log, admin; NAME:plugin, "
                    "NAME:config)");
        goto out;
    }
    if (name == NULL && (s == DFD_SECT_PLUGIN || s == DFD_SECT_CONFIG)) {
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, sect, key, text,
                    "no plugin name (expected NAME:%s.key=value)", sect);
        goto out;
    }
    if (name != NULL && s != DFD_SECT_PLUGIN && s != DFD_SECT_CONFIG) {
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, sect, key, text,
                    "a plugin name goes with plugin or config only (expected "
                    "%s.key=value)", sect);
        goto out;
    }
    if (*key == '\0') {
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, sect, NULL, text, "empty key");
        goto out;
    }
    if (name == NULL) {
        dfd_cfg_server_key(ld, s, key, value, at);
        goto out;
    }
    if ((pi = cfg_find_plugin(ld->cfg, name)) == -1) {
        int on = 1;
        /* disabling a plugin that nothing declares asks for what is already so (the
         * admin's unload keeps such an override after its file is gone) */
        if (s == DFD_SECT_PLUGIN && strcmp(key, "enabled") == 0 &&
            dfd_parse_bool(value, &on) == 0 && !on)
            goto out;
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, sect, key, text, "no plugin named '%s'", name);
        goto out;
    }
    p = &ld->cfg->plugins[pi];
    if (s == DFD_SECT_CONFIG)
        why = dfd_cfg_config_key(p, &ld->meta[pi], key, value);
    else if (strcmp(key, "name") == 0)
        why = "cannot be changed by an override";
    else
        why = dfd_cfg_plugin_key(ld, p, &ld->meta[pi], key, value, at);
    if (why != NULL)
        dfd_cfg_err(ld, DFD_CFG_OVERRIDE, index, sect, key, value, "%s", why);
out:
    free(left);
    free(value);
}

/* ---- after everything -------------------------------------------------------------- */

/* Returns NULL when path is a readable regular file, else why not (in ld->why). */
static const char *cfg_so_problem(dfd_cfg_loader *ld, const char *path)
{
    struct stat st;

    if (stat(path, &st) == -1)
        snprintf(ld->why, sizeof(ld->why), "cannot use '%s': %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(ld->why, sizeof(ld->why), "'%s' is not a regular file", path);
    else if (access(path, R_OK) == -1)
        snprintf(ld->why, sizeof(ld->why), "cannot read '%s': %s", path, strerror(errno));
    else
        return NULL;
    return ld->why;
}

/* plugin_paths = strict: checks that p's file, symlinks resolved, is under real (the
 * resolved plugin_dir) and hands the plugin loader the same rule (p->confine_dir), so
 * that the file it opens is checked again. A file that does not exist yet is judged by
 * its directory; its load fails anyway. */
static void cfg_confine(dfd_cfg_loader *ld, dfd_plugin_conf *p, const dfd_cfg_plugin_meta *m,
                        const char *real)
{
    char file[PATH_MAX];
    const char *judged = file;

    if (realpath(p->path, file) == NULL) {
        char *slash, dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", p->path);
        slash = strrchr(dir, '/');
        if (slash != NULL)
            *slash = '\0';
        if (slash == NULL || realpath(dir[0] ? dir : "/", file) == NULL ||
            strcmp(slash + 1, "..") == 0)
            judged = NULL;
    }
    if (judged == NULL || !dfd_path_within(judged, real))
        dfd_cfg_err(ld, m->path_at.file, m->path_at.line, "plugin", "path", NULL,
                    "'%s' is not under plugin_dir %s ([server] plugin_paths = strict; "
                    "symlinks are resolved)", p->path, real);
    if ((p->confine_dir = strdup(real)) == NULL)
        dfd_cfg_oom(ld, m->path_at.file, m->path_at.line);
}

/* Resolves plugin_dir and every plugin path; with check_files, requires each enabled
 * plugin's .so to be a readable regular file; with plugin_paths = strict, each enabled
 * plugin's file to be under plugin_dir. */
static void cfg_resolve_plugins(dfd_cfg_loader *ld, int check_files)
{
    dfd_config *cfg = ld->cfg;
    const char *pd = ld->plugin_dir;
    char real[PATH_MAX];
    int strict = cfg->plugin_paths == DFD_PLUGIN_PATHS_STRICT;

    if (pd == NULL)
        cfg->plugin_dir = strdup(cfg->dir);
    else if (pd[0] == '/')
        cfg->plugin_dir = strdup(pd);
    else
        cfg->plugin_dir = dfd_cfg_join(cfg->dir, pd);
    if (cfg->plugin_dir == NULL) {
        dfd_cfg_oom(ld, cfg->dir, 0);
        return;
    }
    if (strict && realpath(cfg->plugin_dir, real) == NULL) {
        dfd_cfg_err(ld, cfg->dir, 0, "server", "plugin_dir", NULL, "cannot resolve %s: %s "
                    "(plugin_paths = strict needs it)", cfg->plugin_dir, strerror(errno));
        return;
    }
    for (size_t i = 0; i < cfg->nplugins; i++) {
        dfd_plugin_conf *p = &cfg->plugins[i];
        dfd_cfg_plugin_meta *m = &ld->meta[i];
        const char *why;

        if (m->raw_path == NULL) {
            /* unset by an override after its file declared it */
            dfd_cfg_err(ld, m->path_at.file, m->path_at.line, "plugin", "path", NULL,
                        "missing (every [plugin] needs name and path)");
            continue;
        }
        p->path = m->raw_path[0] == '/' ? strdup(m->raw_path)
                                         : dfd_cfg_join(cfg->plugin_dir, m->raw_path);
        if (p->path == NULL) {
            dfd_cfg_oom(ld, m->path_at.file, m->path_at.line);
            continue;
        }
        /* A disabled plugin is not loaded: its .so may well be absent. */
        if (check_files && p->enabled && (why = cfg_so_problem(ld, p->path)) != NULL)
            dfd_cfg_err(ld, m->path_at.file, m->path_at.line, "plugin", "path",
                        m->raw_path, "%s", why);
        if (strict && p->enabled)
            cfg_confine(ld, p, m, real);
        /* a setting that would do nothing is a mistake worth naming */
        if (m->process_key != NULL && p->isolation != DFD_ISOLATION_PROCESS)
            dfd_cfg_err(ld, m->process_key_at.file, m->process_key_at.line, "plugin",
                        m->process_key, NULL, "only applies with isolation = process");
        if (p->blocking_max != 0 && p->isolation == DFD_ISOLATION_PROCESS)
            dfd_cfg_err(ld, p->origin.file, p->origin.line, "plugin", "blocking_max", NULL,
                        "only applies with isolation = inline (each child of an isolated "
                        "plugin has a blocking pool of its own: blocking_threads)");
    }
}

/* Checks that need every file and override: listeners, router, member name. */
static void cfg_check_role(dfd_cfg_loader *ld)
{
    dfd_config *cfg = ld->cfg;
    const char *file = ld->role_at.line ? ld->role_at.file : cfg->dir;
    char host[256];

    /* After a refused listen or router value, "no listen address" would only repeat
     * the problem already reported. */
    if (!ld->addr_refused && cfg->role != DFD_ROLE_WORKER && cfg->nlisten == 0)
        dfd_cfg_err(ld, file, ld->role_at.line, "server", "listen", NULL,
                    "no listen address (role %s needs at least one, e.g. "
                    "listen = tcp://127.0.0.1:7700)", dfd_role_name(cfg->role));
    if (!ld->addr_refused && cfg->role == DFD_ROLE_WORKER && cfg->router == NULL)
        dfd_cfg_err(ld, file, ld->role_at.line, "server", "router", NULL,
                    "missing (role worker needs router = tcp://host:port, or "
                    "router = nats://host:port to join a NATS cluster)");
    if (cfg->nats != NULL && cfg->role != DFD_ROLE_ROUTER)
        dfd_cfg_err(ld, file, ld->role_at.line, "server", "nats", cfg->nats,
                    "only a router is a NATS gateway (a worker joins NATS with "
                    "router = nats://host:port)");
    if (cfg->name != NULL)
        return;
    /* gethostname() may truncate without a NUL: terminate it ourselves. */
    if (gethostname(host, sizeof(host) - 1) == -1)
        snprintf(host, sizeof(host), "daffid");
    host[sizeof(host) - 1] = '\0';
    if ((cfg->name = strdup(host)) == NULL)
        dfd_cfg_oom(ld, cfg->dir, 0);
}

/* Frees everything cfg owns and zeroes it. */
void dfd_config_free(dfd_config *cfg)
{
    free(cfg->dir);
    free(cfg->name);
    free(cfg->listen);
    free(cfg->plugin_dir);
    free(cfg->pidfile);
    free(cfg->state_file);
    free(cfg->router);
    free(cfg->nats);
    free(cfg->nats_namespace);
    free(cfg->nats_creds);
    free(cfg->nats_tls_ca);
    free(cfg->admin_socket);
    for (size_t i = 0; i < cfg->nadmin_load_paths; i++)
        free(cfg->admin_load_paths[i]);
    free(cfg->admin_load_paths);
    dfd_cfg_security_free(cfg);
    for (size_t i = 0; i < cfg->nplugins; i++)
        dfd_cfg_plugin_free(&cfg->plugins[i]);
    free(cfg->plugins);
    memset(cfg, 0, sizeof(*cfg));
}

/* See config-int.h. */
void dfd_cfg_defaults(dfd_config *cfg)
{
    unsigned threads = dfd_cfg_ncpu();

    cfg->role = DFD_ROLE_SERVICE;
    cfg->workers = dfd_cfg_auto_workers();
    cfg->blocking_threads = threads;
    cfg->shutdown_timeout_ms = 10000;
    cfg->default_timeout_ms = 30000;
    cfg->backlog = 1024;
    cfg->duplicate = DFD_DUP_REJECT;
    cfg->heartbeat_ms = 1000;
    cfg->heartbeat_misses = 3;
    cfg->member_inflight = 16384;
    cfg->reconnect_max_ms = 5000;
    cfg->startup_grace_ms = 2000;
    cfg->unix_mode = 0660;
    cfg->max_message = (size_t)16 << 20;
    cfg->max_depth = 32;
    cfg->max_pending = 16384;
    cfg->max_connections = 10000;
    cfg->max_output = (size_t)4 << 20;
    cfg->max_memory = dfd_cfg_default_max_memory();
    cfg->max_connection_memory = 0;
    cfg->idle_timeout_ms = 300000;
    cfg->read_timeout_ms = 30000;
    cfg->stall_warning_ms = 1000;
    cfg->log_level = DAFFI_LOG_INFO;
    cfg->log_target = DFD_LOG_STDERR;
    cfg->access_log = 0;
    cfg->admin_mode = 0660;
    cfg->admin_uid = -1;
    cfg->admin_gid = -1;
    cfg->admin_idle_ms = 60000;
    cfg->plugin_paths = DFD_PLUGIN_PATHS_ANY;
    cfg->watch_max_wait_ms = 1000;
    cfg->tls_verify_clients = DFD_TLS_VERIFY_NO;
    cfg->tls_min_version = DFD_TLS_V12;
    cfg->tls_handshake_timeout_ms = 10000;
    cfg->auth_timeout_ms = 10000;
    cfg->auth_max_failures = 3;
}

/* See config.h. The loader's own memory (file names, raw paths) is released here;
 * everything kept is owned by cfg. */
int dfd_config_load(dfd_config *cfg, const char *dir, const char *const *overrides,
                    size_t noverrides, int check_files, dfd_errors *errs)
{
    dfd_cfg_loader ld;

    memset(cfg, 0, sizeof(*cfg));
    memset(&ld, 0, sizeof(ld));
    ld.cfg = cfg;
    ld.errs = errs;
    dfd_cfg_defaults(cfg);
    if ((cfg->dir = strdup(dir)) == NULL) {
        dfd_cfg_oom(&ld, dir, 0);
        return -1;
    }
    if (dfd_cfg_read_dir(&ld, dir) == 0) {
        for (size_t i = 0; i < noverrides; i++)
            cfg_override(&ld, overrides[i], (unsigned)i + 1);
        cfg_resolve_plugins(&ld, check_files);
        cfg_check_role(&ld);
        dfd_cfg_security_check(&ld);
    }
    for (size_t i = 0; i < ld.nfiles; i++)
        free(ld.files[i]);
    free(ld.files);
    for (size_t i = 0; i < cfg->nplugins; i++)
        free(ld.meta[i].raw_path);
    free(ld.meta);
    free(ld.plugin_dir);
    if (ld.nerr == 0)
        return 0;
    dfd_config_free(cfg);
    return -1;
}
