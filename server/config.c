/*
 * config.c - daffid's configuration model: the keys and their values, the defaults,
 * the -o overrides, plugin path resolution and the checks that need every file
 * (see config.h for the rules an operator sees).
 *
 * A load runs in four steps:
 *   1. config-ini.c reads every ini file of the directory in strcmp order and hands each
 *      key here: server keys are applied as they come (so a later file overrides), a
 *      [plugin] file's plugin is added when the file ends;
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
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <daffi/plugin.h>

#include "config-int.h"

static const char *const cfg_sect_names[] = {
    [DFD_SECT_NONE] = NULL, [DFD_SECT_SERVER] = "server", [DFD_SECT_LIMITS] = "limits",
    [DFD_SECT_LOG] = "log", [DFD_SECT_ADMIN] = "admin", [DFD_SECT_PLUGIN] = "plugin", [DFD_SECT_CONFIG] = "config",
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

/* Records "FILE:LINE: [sect] key: what (got 'value')". line 0, sect, key and value
 * NULL leave their part out. Nothing passed is kept. */
void dfd_cfg_err(dfd_cfg_loader *ld, const char *file, unsigned line, const char *sect,
                 const char *key, const char *value, const char *fmt, ...)
{
    char what[1024], where[32] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(where, sizeof(where), ":%u", line);
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

/* ---- keys -------------------------------------------------------------------------- */

/* How a key's value is read and where it is stored (at offset in its struct). */
typedef enum cfg_type {
    CFG_UINT,     /* unsigned, lo..hi */
    CFG_THREADS,  /* unsigned, "auto" (online CPUs) or lo..hi */
    CFG_OCTAL,    /* unsigned, octal lo..hi */
    CFG_SIZE,     /* size_t, a size lo..hi */
    CFG_DURATION, /* uint64_t milliseconds, up to hi */
    CFG_BOOL,     /* int, 0 or 1 */
    CFG_CHOICE,   /* an int-sized enum: the index of the value in choices */
    CFG_SPECIAL   /* strings and addresses: cfg_server_special() / dfd_cfg_plugin_key() */
} cfg_type;

typedef struct cfg_key {
    dfd_cfg_sect sect;
    const char *name;
    cfg_type type;
    size_t offset;
    uint64_t lo, hi;
    const char *const *choices; /* CFG_CHOICE: NULL-terminated, index = enum value */
} cfg_key;

/* CFG_CHOICE stores through an int pointer into these enums. */
_Static_assert(sizeof(dfd_role) == sizeof(int), "dfd_role is int-sized");
_Static_assert(sizeof(dfd_log_target) == sizeof(int), "dfd_log_target is int-sized");
_Static_assert(sizeof(dfd_duplicate) == sizeof(int), "dfd_duplicate is int-sized");

static const char *const cfg_roles[] = { "service", "router", "worker", NULL };
static const char *const cfg_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const cfg_targets[] = { "stderr", "syslog", NULL };
static const char *const cfg_duplicates[] = { "reject", "replace", NULL };

#define CFG_S(f) offsetof(dfd_config, f)
#define CFG_P(f) offsetof(dfd_plugin_conf, f)
#define CFG_1G ((uint64_t)1 << 30)

static const cfg_key cfg_server_keys[] = {
    { DFD_SECT_SERVER, "role", CFG_CHOICE, CFG_S(role), 0, 0, cfg_roles },
    { DFD_SECT_SERVER, "name", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "listen", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "workers", CFG_THREADS, CFG_S(workers), 1, DFD_CFG_MAX_THREADS,
      NULL },
    { DFD_SECT_SERVER, "blocking_threads", CFG_THREADS, CFG_S(blocking_threads), 1,
      DFD_CFG_MAX_THREADS, NULL },
    { DFD_SECT_SERVER, "shutdown_timeout", CFG_DURATION, CFG_S(shutdown_timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_SERVER, "default_timeout", CFG_DURATION, CFG_S(default_timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_SERVER, "plugin_dir", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "pidfile", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "backlog", CFG_UINT, CFG_S(backlog), 1, 1000000, NULL },
    { DFD_SECT_SERVER, "unix_mode", CFG_OCTAL, CFG_S(unix_mode), 0, 0777, NULL },
    { DFD_SECT_SERVER, "router", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "duplicate", CFG_CHOICE, CFG_S(duplicate), 0, 0, cfg_duplicates },
    { DFD_SECT_SERVER, "heartbeat", CFG_DURATION, CFG_S(heartbeat_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_SERVER, "heartbeat_misses", CFG_UINT, CFG_S(heartbeat_misses), 1, 1000,
      NULL },
    { DFD_SECT_SERVER, "member_inflight", CFG_UINT, CFG_S(member_inflight), 1, 1000000,
      NULL },
    { DFD_SECT_SERVER, "reconnect_max", CFG_DURATION, CFG_S(reconnect_max_ms), 10,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_LIMITS, "max_message", CFG_SIZE, CFG_S(max_message), 64, CFG_1G, NULL },
    { DFD_SECT_LIMITS, "max_depth", CFG_UINT, CFG_S(max_depth), 1, 62, NULL },
    { DFD_SECT_LIMITS, "max_pending", CFG_UINT, CFG_S(max_pending), 1, 1000000, NULL },
    { DFD_SECT_LIMITS, "max_connections", CFG_UINT, CFG_S(max_connections), 1, 1000000,
      NULL },
    { DFD_SECT_LIMITS, "max_output", CFG_SIZE, CFG_S(max_output), 64 << 10, 4 * CFG_1G,
      NULL },
    { DFD_SECT_LOG, "level", CFG_CHOICE, CFG_S(log_level), 0, 0, cfg_levels },
    { DFD_SECT_LOG, "target", CFG_CHOICE, CFG_S(log_target), 0, 0, cfg_targets },
    { DFD_SECT_LOG, "access_log", CFG_BOOL, CFG_S(access_log), 0, 1, NULL },
    { DFD_SECT_SERVER, "metrics_listen", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "socket", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "mode", CFG_OCTAL, CFG_S(admin_mode), 0, 0777, NULL },
    { DFD_SECT_ADMIN, "owner", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "group", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "idle_timeout", CFG_DURATION, CFG_S(admin_idle_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
};

static const cfg_key cfg_plugin_keys[] = {
    { DFD_SECT_PLUGIN, "name", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_PLUGIN, "path", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_PLUGIN, "concurrency", CFG_UINT, CFG_P(concurrency), 0, 1000000, NULL },
    { DFD_SECT_PLUGIN, "queue", CFG_UINT, CFG_P(queue), 0, 1000000, NULL },
    { DFD_SECT_PLUGIN, "timeout", CFG_DURATION, CFG_P(timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_PLUGIN, "enabled", CFG_BOOL, CFG_P(enabled), 0, 1, NULL },
};

#define CFG_NKEYS(t) (sizeof(t) / sizeof((t)[0]))

/* Returns the key called name in section sect of table, or NULL. */
static const cfg_key *cfg_key_find(const cfg_key *table, size_t n, dfd_cfg_sect sect,
                                   const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].sect == sect && strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

/* Online CPUs, clamped to 1..DFD_CFG_MAX_THREADS. */
static unsigned cfg_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > (long)DFD_CFG_MAX_THREADS ? DFD_CFG_MAX_THREADS : (unsigned)n;
}

/* Writes n as the shortest exact binary-unit text ("64K", "1G", "100"). */
static void cfg_size_text(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = { "", "K", "M", "G" };
    unsigned u = 0;

    while (u < 3 && n != 0 && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    snprintf(buf, len, "%llu%s", (unsigned long long)n, units[u]);
}

/* Parses v as k says and stores it in the struct at base. Returns NULL, or the reason
 * v is refused (static, or in ld->why). Nothing is stored on refusal. */
static const char *cfg_typed(dfd_cfg_loader *ld, const cfg_key *k, void *base,
                             const char *v)
{
    char *field = (char *)base + k->offset;
    unsigned long n;
    uint64_t ms;
    size_t size;
    size_t len;
    int b;

    switch (k->type) {
    case CFG_THREADS:
        if (strcmp(v, "auto") == 0) {
            *(unsigned *)(void *)field = cfg_ncpu();
            return NULL;
        }
        /* fall through */
    case CFG_UINT:
        if (dfd_parse_uint(v, (unsigned long)k->hi, &n) == -1 || n < k->lo)
            break;
        *(unsigned *)(void *)field = (unsigned)n;
        return NULL;
    case CFG_OCTAL:
        len = strspn(v, "01234567");
        if (len == 0 || len > 8 || v[len] != '\0' || (n = strtoul(v, NULL, 8)) > k->hi)
            return "must be an octal mode from 0 to 0777 (e.g. 0660)";
        *(unsigned *)(void *)field = (unsigned)n;
        return NULL;
    case CFG_SIZE:
        if (dfd_parse_size(v, &size) == -1 || size < k->lo || size > k->hi) {
            char lo[32], hi[32];
            cfg_size_text(k->lo, lo, sizeof(lo));
            cfg_size_text(k->hi, hi, sizeof(hi));
            snprintf(ld->why, sizeof(ld->why),
                     "must be a size from %s to %s (bytes, or with K, M, G)", lo, hi);
            return ld->why;
        }
        *(size_t *)(void *)field = size;
        return NULL;
    case CFG_DURATION:
        if (dfd_parse_duration_ms(v, &ms) == -1 || ms > k->hi)
            return "must be a duration up to 7 days (250ms, 5s, 2m, 1h; a bare number "
                   "is ms)";
        *(uint64_t *)(void *)field = ms;
        return NULL;
    case CFG_BOOL:
        if (dfd_parse_bool(v, &b) == -1)
            return "must be yes/no, true/false, on/off or 1/0";
        *(int *)(void *)field = b;
        return NULL;
    case CFG_CHOICE:
        for (int i = 0; k->choices[i] != NULL; i++) {
            if (strcasecmp(v, k->choices[i]) == 0) {
                *(int *)(void *)field = i;
                return NULL;
            }
        }
        len = (size_t)snprintf(ld->why, sizeof(ld->why), "must be one of:");
        for (int i = 0; k->choices[i] != NULL && len < sizeof(ld->why); i++)
            len += (size_t)snprintf(ld->why + len, sizeof(ld->why) - len, "%s %s",
                                    i ? "," : "", k->choices[i]);
        return ld->why;
    case CFG_SPECIAL:
        return "internal error: no parser for this key";
    }
    snprintf(ld->why, sizeof(ld->why), "must be %san integer from %llu to %llu",
             k->type == CFG_THREADS ? "auto or " : "", (unsigned long long)k->lo,
             (unsigned long long)k->hi);
    return ld->why;
}

/* 1..max characters of [A-Za-z0-9_.-]. */
static int cfg_valid_name(const char *s, size_t max)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789_.-");
    return n > 0 && n <= max && s[n] == '\0';
}

/* Replaces *slot with a copy of v. Returns NULL or "out of memory". */
static const char *cfg_set_str(char **slot, const char *v)
{
    char *copy = strdup(v);

    if (copy == NULL)
        return "out of memory";
    free(*slot);
    *slot = copy;
    return NULL;
}

/* Parses one address for listen or router into *out. Returns NULL or the reason. Port 0
 * is refused: nobody could find a server bound to a random port from its config. */
static const char *cfg_addr(dfd_cfg_loader *ld, const char *text, daffi_addr *out)
{
    const char *reason = NULL;

    if (daffi_addr_parse(text, out, &reason) == -1) {
        snprintf(ld->why, sizeof(ld->why), "bad address '%s': %s", text,
                 reason ? reason : "not an address");
        return ld->why;
    }
    if (out->kind == DAFFI_ADDR_TCP && out->port == 0) {
        snprintf(ld->why, sizeof(ld->why), "bad address '%s': port 0 (use 1 to 65535)",
                 text);
        return ld->why;
    }
    return NULL;
}

/* listen: a comma-separated list of addresses. The list replaces the previous one only
 * when every item is good. Returns NULL or the reason. */
static const char *cfg_listen(dfd_cfg_loader *ld, const char *v)
{
    daffi_addr *addrs = NULL, *grown;
    size_t n = 0;
    char *copy = strdup(v), *item, *next;
    const char *why = NULL;

    if (copy == NULL)
        return "out of memory";
    /* strtok_r would merge ",," into one separator and hide an empty item. */
    for (item = copy; item != NULL && why == NULL; item = next) {
        char *end;

        if ((next = strchr(item, ',')) != NULL)
            *next++ = '\0';
        while (isspace((unsigned char)*item))
            item++;
        end = item + strlen(item);
        while (end > item && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*item == '\0')
            why = "empty address in the list (tcp://host:port or unix:///path, comma "
                  "separated)";
        else if ((grown = realloc(addrs, (n + 1) * sizeof(*addrs))) == NULL)
            why = "out of memory";
        else if ((why = cfg_addr(ld, item, &(addrs = grown)[n])) == NULL)
            n++;
    }
    free(copy);
    if (why != NULL) {
        free(addrs);
        return why;
    }
    free(ld->cfg->listen);
    ld->cfg->listen = addrs;
    ld->cfg->nlisten = n;
    return NULL;
}

/* metrics_listen: "HOST:PORT" or "tcp://HOST:PORT"; empty turns the listener off.
 * Returns NULL or the reason. */
static const char *cfg_metrics_listen(dfd_cfg_loader *ld, const char *v)
{
    daffi_addr addr;
    char text[300];
    const char *why;

    if (*v == '\0') {
        ld->cfg->metrics_enabled = 0;
        return NULL;
    }
    if (strncmp(v, "unix://", 7) == 0)
        return "must be HOST:PORT or tcp://HOST:PORT (metrics are served over HTTP on "
               "TCP)";
    snprintf(text, sizeof(text), "%s%s", strncmp(v, "tcp://", 6) == 0 ? "" : "tcp://", v);
    if ((why = cfg_addr(ld, text, &addr)) != NULL)
        return why;
    ld->cfg->metrics_listen = addr;
    ld->cfg->metrics_enabled = 1;
    return NULL;
}

/* [admin] owner and group: a name known to the system or a number. Stores the id in
 * *out. Returns NULL or the reason (in ld->why). */
static const char *cfg_admin_id(dfd_cfg_loader *ld, const char *key, const char *v,
                                long *out)
{
    char buf[4096];
    unsigned long n;
    int rc;

    if (*v == '\0')
        return "must be a user or group name, or a number";
    if (dfd_parse_uint(v, 0x7fffffffUL, &n) == 0) {
        *out = (long)n;
        return NULL;
    }
    if (strcmp(key, "owner") == 0) {
        struct passwd pw, *res = NULL;
        rc = getpwnam_r(v, &pw, buf, sizeof(buf), &res);
        if (rc == 0 && res != NULL) {
            *out = (long)res->pw_uid;
            return NULL;
        }
    } else {
        struct group gr, *res = NULL;
        rc = getgrnam_r(v, &gr, buf, sizeof(buf), &res);
        if (rc == 0 && res != NULL) {
            *out = (long)res->gr_gid;
            return NULL;
        }
    }
    snprintf(ld->why, sizeof(ld->why), "no such %s on this system",
             strcmp(key, "owner") == 0 ? "user" : "group");
    return ld->why;
}

/* The [admin] keys that are not a plain typed value. Returns NULL or the reason. */
static const char *cfg_admin_special(dfd_cfg_loader *ld, const char *key, const char *v)
{
    if (strcmp(key, "owner") == 0)
        return cfg_admin_id(ld, key, v, &ld->cfg->admin_uid);
    if (strcmp(key, "group") == 0)
        return cfg_admin_id(ld, key, v, &ld->cfg->admin_gid);
    /* socket: empty turns the admin socket off (e.g. -o admin.socket=) */
    if (*v == '\0') {
        free(ld->cfg->admin_socket);
        ld->cfg->admin_socket = NULL;
        return NULL;
    }
    if (strlen(v) >= sizeof(((daffi_addr *)0)->path))
        return "path too long for a Unix socket (at most 107 bytes)";
    return cfg_set_str(&ld->cfg->admin_socket, v);
}

/* The [server] keys that are not a plain typed value. Returns NULL or the reason. */
static const char *cfg_server_special(dfd_cfg_loader *ld, const char *key, const char *v)
{
    daffi_addr addr;

    if (strcmp(key, "metrics_listen") == 0)
        return cfg_metrics_listen(ld, v);
    if (strcmp(key, "socket") == 0 || strcmp(key, "owner") == 0 ||
        strcmp(key, "group") == 0)
        return cfg_admin_special(ld, key, v);
    if (strcmp(key, "name") == 0) {
        if (!cfg_valid_name(v, DFD_CFG_MEMBER_NAME_MAX))
            return "must be 1 to 255 characters of A-Z a-z 0-9 _ . -";
        return cfg_set_str(&ld->cfg->name, v);
    }
    if (strcmp(key, "listen") == 0)
        return cfg_listen(ld, v);
    if (strcmp(key, "router") == 0) {
        const char *why = cfg_addr(ld, v, &addr);
        return why != NULL ? why : cfg_set_str(&ld->cfg->router, v);
    }
    if (*v == '\0')
        return "must not be empty";
    if (strcmp(key, "plugin_dir") == 0)
        return cfg_set_str(&ld->plugin_dir, v);
    return cfg_set_str(&ld->cfg->pidfile, v);
}

/* Applies one server-section key. Records an error for an unknown key or a bad value. */
void dfd_cfg_server_key(dfd_cfg_loader *ld, dfd_cfg_sect sect, const char *key,
                        const char *value, dfd_cfg_where at)
{
    const cfg_key *k = cfg_key_find(cfg_server_keys, CFG_NKEYS(cfg_server_keys), sect,
                                    key);
    const char *why;

    if (k == NULL) {
        int plugin_key = cfg_key_find(cfg_plugin_keys, CFG_NKEYS(cfg_plugin_keys),
                                      DFD_SECT_PLUGIN, key) != NULL;
        dfd_cfg_err(ld, at.file, at.line, dfd_cfg_sect_name(sect), key, value,
                    "unknown key%s", plugin_key ? " (a [plugin] key: it belongs in a "
                                                  "[plugin] section)" : "");
        return;
    }
    why = k->type == CFG_SPECIAL ? cfg_server_special(ld, key, value)
                                 : cfg_typed(ld, k, ld->cfg, value);
    if (why == NULL) {
        if (strcmp(key, "role") == 0)
            ld->role_at = at;
        return;
    }
    dfd_cfg_err(ld, at.file, at.line, dfd_cfg_sect_name(sect), key, value, "%s", why);
    if (strcmp(key, "listen") == 0 || strcmp(key, "router") == 0)
        ld->addr_refused = 1;
}

/* Applies one [plugin] key to p (meta beside it). Returns NULL or the reason. */
const char *dfd_cfg_plugin_key(dfd_cfg_loader *ld, dfd_plugin_conf *p,
                               dfd_cfg_plugin_meta *m, const char *key, const char *v,
                               dfd_cfg_where at)
{
    const cfg_key *k = cfg_key_find(cfg_plugin_keys, CFG_NKEYS(cfg_plugin_keys),
                                    DFD_SECT_PLUGIN, key);

    if (k == NULL)
        return "unknown key (name, path, concurrency, queue, timeout, enabled)";
    if (k->type != CFG_SPECIAL)
        return cfg_typed(ld, k, p, v);
    if (strcmp(key, "name") == 0) {
        if (!cfg_valid_name(v, DFD_CFG_PLUGIN_NAME_MAX))
            return "must be 1 to 64 characters of A-Z a-z 0-9 _ . -";
        m->name_at = at;
        return cfg_set_str(&p->name, v);
    }
    if (*v == '\0')
        return "must be the path of a .so file";
    m->path_at = at;
    return cfg_set_str(&m->raw_path, v);
}

/* Sets key in p's [config]: replaces the first entry with that key, or appends one.
 * Returns NULL or "out of memory". */
const char *dfd_cfg_config_key(dfd_plugin_conf *p, dfd_cfg_plugin_meta *m,
                               const char *key, const char *value)
{
    char *k, *v;

    for (size_t i = 0; i < p->nconfig; i++)
        if (strcmp(p->config[i].key, key) == 0)
            return cfg_set_str(&p->config[i].value, value);
    if (p->nconfig == m->config_cap) {
        size_t cap = m->config_cap ? m->config_cap * 2 : 8;
        dfd_kv *grown = realloc(p->config, cap * sizeof(*grown));
        if (grown == NULL)
            return "out of memory";
        p->config = grown;
        m->config_cap = cap;
    }
    k = strdup(key);
    v = strdup(value);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return "out of memory";
    }
    p->config[p->nconfig].key = k;
    p->config[p->nconfig].value = v;
    p->nconfig++;
    return NULL;
}

/* Frees what a dfd_plugin_conf owns (not the struct) and zeroes it. */
void dfd_cfg_plugin_free(dfd_plugin_conf *p)
{
    free(p->name);
    free(p->path);
    free(p->origin.file);
    for (size_t i = 0; i < p->nconfig; i++) {
        free(p->config[i].key);
        free(p->config[i].value);
    }
    free(p->config);
    memset(p, 0, sizeof(*p));
}

/* Zeroes p and sets the [plugin] defaults (queue 1024, enabled). p owns nothing yet. */
void dfd_cfg_plugin_init(dfd_plugin_conf *p)
{
    memset(p, 0, sizeof(*p));
    p->queue = 1024;
    p->enabled = 1;
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
        dfd_cfg_err(ld, file, m->name_at.line, "plugin", "name", p->name,
                    "duplicate plugin name, already declared in %s:%u",
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
    dfd_cfg_where at = { "-o", index };
    const char *eq = strchr(text, '='), *why = NULL;
    char *left = NULL, *value = NULL, *name = NULL, *dot, *colon, *sect, *key;
    dfd_cfg_sect s;
    dfd_plugin_conf *p;
    long pi;

    /* "@FILE": one more ini file, read after the directory (admin `load` uses it) */
    if (text[0] == '@') {
        if (text[1] == '\0')
            dfd_cfg_err(ld, "-o", index, NULL, NULL, text,
                        "no file after '@' (expected @/path/to/file.ini)");
        else
            dfd_cfg_read_extra(ld, text + 1);
        return;
    }
    if (eq == NULL) {
        dfd_cfg_err(ld, "-o", index, NULL, NULL, text,
                    "no '=' (expected section.key=value or NAME:plugin.key=value)");
        return;
    }
    if ((left = cfg_trimmed(text, eq)) == NULL ||
        (value = cfg_trimmed(eq + 1, eq + 1 + strlen(eq + 1))) == NULL) {
        dfd_cfg_oom(ld, "-o", index);
        goto out;
    }
    sect = left;
    if ((colon = strchr(left, ':')) != NULL) {
        *colon = '\0';
        name = left;
        sect = colon + 1;
    }
    if ((dot = strchr(sect, '.')) == NULL) {
        dfd_cfg_err(ld, "-o", index, NULL, NULL, text,
                    "no section (expected section.key=value or NAME:plugin.key=value)");
        goto out;
    }
    *dot = '\0';
    key = dot + 1;
    if ((s = dfd_cfg_sect_find(sect)) == DFD_SECT_SKIP) {
        dfd_cfg_err(ld, "-o", index, sect, NULL, text,
                    "unknown section (sections: server, limits, log, admin; NAME:plugin, "
                    "NAME:config)");
        goto out;
    }
    if (name == NULL && (s == DFD_SECT_PLUGIN || s == DFD_SECT_CONFIG)) {
        dfd_cfg_err(ld, "-o", index, sect, key, text,
                    "no plugin name (expected NAME:%s.key=value)", sect);
        goto out;
    }
    if (name != NULL && s != DFD_SECT_PLUGIN && s != DFD_SECT_CONFIG) {
        dfd_cfg_err(ld, "-o", index, sect, key, text,
                    "a plugin name goes with plugin or config only (expected "
                    "%s.key=value)", sect);
        goto out;
    }
    if (*key == '\0') {
        dfd_cfg_err(ld, "-o", index, sect, NULL, text, "empty key");
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
        dfd_cfg_err(ld, "-o", index, sect, key, text, "no plugin named '%s'", name);
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
        dfd_cfg_err(ld, "-o", index, sect, key, value, "%s", why);
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

/* Resolves plugin_dir and every plugin path; with check_files, requires each enabled
 * plugin's .so to be a readable regular file. */
static void cfg_resolve_plugins(dfd_cfg_loader *ld, int check_files)
{
    dfd_config *cfg = ld->cfg;
    const char *pd = ld->plugin_dir;

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
    for (size_t i = 0; i < cfg->nplugins; i++) {
        dfd_plugin_conf *p = &cfg->plugins[i];
        dfd_cfg_plugin_meta *m = &ld->meta[i];
        const char *why;

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
                    "missing (role worker needs router = tcp://host:port)");
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
    free(cfg->router);
    free(cfg->admin_socket);
    for (size_t i = 0; i < cfg->nplugins; i++)
        dfd_cfg_plugin_free(&cfg->plugins[i]);
    free(cfg->plugins);
    memset(cfg, 0, sizeof(*cfg));
}

/* Sets every default of config-t.h on a zeroed cfg (name waits for cfg_check_role). */
static void cfg_defaults(dfd_config *cfg)
{
    unsigned threads = cfg_ncpu();

    cfg->role = DFD_ROLE_SERVICE;
    cfg->workers = threads;
    cfg->blocking_threads = threads;
    cfg->shutdown_timeout_ms = 10000;
    cfg->default_timeout_ms = 30000;
    cfg->backlog = 1024;
    cfg->duplicate = DFD_DUP_REJECT;
    cfg->heartbeat_ms = 1000;
    cfg->heartbeat_misses = 3;
    cfg->member_inflight = 16384;
    cfg->reconnect_max_ms = 5000;
    cfg->unix_mode = 0660;
    cfg->max_message = (size_t)16 << 20;
    cfg->max_depth = 32;
    cfg->max_pending = 16384;
    cfg->max_connections = 10000;
    cfg->max_output = (size_t)4 << 20;
    cfg->log_level = DAFFI_LOG_INFO;
    cfg->log_target = DFD_LOG_STDERR;
    cfg->access_log = 0;
    cfg->admin_mode = 0660;
    cfg->admin_uid = -1;
    cfg->admin_gid = -1;
    cfg->admin_idle_ms = 60000;
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
    cfg_defaults(cfg);
    if ((cfg->dir = strdup(dir)) == NULL) {
        dfd_cfg_oom(&ld, dir, 0);
        return -1;
    }
    if (dfd_cfg_read_dir(&ld, dir) == 0) {
        for (size_t i = 0; i < noverrides; i++)
            cfg_override(&ld, overrides[i], (unsigned)i + 1);
        cfg_resolve_plugins(&ld, check_files);
        cfg_check_role(&ld);
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
