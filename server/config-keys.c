/*
 * config-keys.c - the keys an ini file or -o may set: their tables, how each typed
 * value is read (numbers, sizes, durations, choices), the one rule for an empty value
 * (unset), and the [plugin] and [config] keys of a plugin. Strings, addresses and lists
 * are config-special.c's; config.c owns the load around them.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unistd.h>

#include <daffi/plugin.h>

#include "config-int.h"

/* ---- keys -------------------------------------------------------------------------- */

/* How a key's value is read and where it is stored (at offset in its struct). */
typedef enum cfg_type {
    CFG_UINT,     /* unsigned, lo..hi */
    CFG_THREADS,  /* unsigned, "auto" (online CPUs) or lo..hi */
    CFG_LOOPS,    /* unsigned, "auto" (dfd_cfg_auto_workers) or lo..hi */
    CFG_OCTAL,    /* unsigned, octal lo..hi */
    CFG_SIZE,     /* size_t, a size lo..hi */
    CFG_DURATION, /* uint64_t milliseconds, up to hi */
    CFG_BOOL,     /* int, 0 or 1 */
    CFG_CHOICE,   /* an int-sized enum: the index of the value in choices */
    CFG_SPECIAL   /* strings and addresses: dfd_cfg_special() / dfd_cfg_plugin_key() */
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
_Static_assert(sizeof(dfd_log_format) == sizeof(int), "dfd_log_format is int-sized");
_Static_assert(sizeof(dfd_duplicate) == sizeof(int), "dfd_duplicate is int-sized");
_Static_assert(sizeof(dfd_plugin_paths) == sizeof(int), "dfd_plugin_paths is int-sized");
_Static_assert(sizeof(dfd_isolation_mode) == sizeof(int), "dfd_isolation_mode is int-sized");
_Static_assert(sizeof(dfd_tls_verify) == sizeof(int), "dfd_tls_verify is int-sized");

static const char *const cfg_roles[] = { "service", "router", "worker", NULL };
static const char *const cfg_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const cfg_targets[] = { "stderr", "syslog", NULL };
static const char *const cfg_formats[] = { "text", "json", NULL };
static const char *const cfg_duplicates[] = { "reject", "replace", NULL };
static const char *const cfg_plugin_paths[] = { "any", "strict", NULL };
static const char *const cfg_isolations[] = { "inline", "process", NULL };
static const char *const cfg_tls_verify[] = { "no", "optional", "require", NULL };
static const char *const cfg_tls_versions[] = { "TLS1.2", "TLS1.3", NULL };

#define CFG_S(f) offsetof(dfd_config, f)
#define CFG_P(f) offsetof(dfd_plugin_conf, f)
#define CFG_1G ((uint64_t)1 << 30)

static const cfg_key cfg_server_keys[] = {
    { DFD_SECT_SERVER, "role", CFG_CHOICE, CFG_S(role), 0, 0, cfg_roles },
    { DFD_SECT_SERVER, "name", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "listen", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "loops", CFG_LOOPS, CFG_S(workers), 1, DFD_CFG_MAX_THREADS, NULL },
    /* the old name of loops, kept as an alias: "workers" read as the worker role */
    { DFD_SECT_SERVER, "workers", CFG_LOOPS, CFG_S(workers), 1, DFD_CFG_MAX_THREADS, NULL },
    { DFD_SECT_SERVER, "blocking_threads", CFG_THREADS, CFG_S(blocking_threads), 1,
      DFD_CFG_MAX_THREADS, NULL },
    { DFD_SECT_SERVER, "shutdown_timeout", CFG_DURATION, CFG_S(shutdown_timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_SERVER, "default_timeout", CFG_DURATION, CFG_S(default_timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_SERVER, "plugin_dir", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "plugin_paths", CFG_CHOICE, CFG_S(plugin_paths), 0, 0,
      cfg_plugin_paths },
    { DFD_SECT_SERVER, "watch_max_wait", CFG_DURATION, CFG_S(watch_max_wait_ms), 100,
      DFD_CFG_MAX_DURATION_MS, NULL },
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
    { DFD_SECT_SERVER, "stall_warning", CFG_DURATION, CFG_S(stall_warning_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_SERVER, "startup_grace", CFG_DURATION, CFG_S(startup_grace_ms), 0,
      3600000, NULL },
    { DFD_SECT_SERVER, "state_file", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "nats", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "nats_namespace", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "nats_creds", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_SERVER, "nats_tls_ca", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_LIMITS, "max_message", CFG_SIZE, CFG_S(max_message), 64, CFG_1G, NULL },
    { DFD_SECT_LIMITS, "max_depth", CFG_UINT, CFG_S(max_depth), 1, 62, NULL },
    { DFD_SECT_LIMITS, "max_pending", CFG_UINT, CFG_S(max_pending), 1, 1000000, NULL },
    { DFD_SECT_LIMITS, "max_connections", CFG_UINT, CFG_S(max_connections), 1, 1000000,
      NULL },
    { DFD_SECT_LIMITS, "max_output", CFG_SIZE, CFG_S(max_output), 64 << 10, 4 * CFG_1G,
      NULL },
    { DFD_SECT_LIMITS, "max_memory", CFG_SIZE, CFG_S(max_memory), 64 << 20,
      1024 * CFG_1G, NULL },
    { DFD_SECT_LIMITS, "max_connection_memory", CFG_SIZE, CFG_S(max_connection_memory), 0,
      1024 * CFG_1G, NULL },
    { DFD_SECT_LIMITS, "idle_timeout", CFG_DURATION, CFG_S(idle_timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_LIMITS, "read_timeout", CFG_DURATION, CFG_S(read_timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_LOG, "level", CFG_CHOICE, CFG_S(log_level), 0, 0, cfg_levels },
    { DFD_SECT_LOG, "target", CFG_CHOICE, CFG_S(log_target), 0, 0, cfg_targets },
    { DFD_SECT_LOG, "format", CFG_CHOICE, CFG_S(log_format), 0, 0, cfg_formats },
    { DFD_SECT_LOG, "access_log", CFG_BOOL, CFG_S(access_log), 0, 1, NULL },
    { DFD_SECT_SERVER, "metrics_listen", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "socket", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "mode", CFG_OCTAL, CFG_S(admin_mode), 0, 0777, NULL },
    { DFD_SECT_ADMIN, "owner", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "group", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "idle_timeout", CFG_DURATION, CFG_S(admin_idle_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_ADMIN, "load_paths", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "allow_uids", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_ADMIN, "allow_gids", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_TLS, "cert", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_TLS, "key", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_TLS, "ca", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_TLS, "verify_clients", CFG_CHOICE, CFG_S(tls_verify_clients), 0, 0,
      cfg_tls_verify },
    { DFD_SECT_TLS, "ciphers", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_TLS, "min_version", CFG_CHOICE, CFG_S(tls_min_version), 0, 0,
      cfg_tls_versions },
    { DFD_SECT_TLS, "handshake_timeout", CFG_DURATION, CFG_S(tls_handshake_timeout_ms),
      10, DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_TLS, "ktls", CFG_BOOL, CFG_S(tls_ktls), 0, 1, NULL },
    { DFD_SECT_AUTH, "tokens", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_AUTH, "require", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_AUTH, "timeout", CFG_DURATION, CFG_S(auth_timeout_ms), 10,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_AUTH, "max_failures", CFG_UINT, CFG_S(auth_max_failures), 1, 1000, NULL },
    { DFD_SECT_AUTH, "token_file", CFG_SPECIAL, 0, 0, 0, NULL },
};

static const cfg_key cfg_plugin_keys[] = {
    { DFD_SECT_PLUGIN, "name", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_PLUGIN, "path", CFG_SPECIAL, 0, 0, 0, NULL },
    { DFD_SECT_PLUGIN, "concurrency", CFG_UINT, CFG_P(concurrency), 0, 1000000, NULL },
    { DFD_SECT_PLUGIN, "queue", CFG_UINT, CFG_P(queue), 0, 1000000, NULL },
    { DFD_SECT_PLUGIN, "blocking_max", CFG_UINT, CFG_P(blocking_max), 0, 1000000, NULL },
    { DFD_SECT_PLUGIN, "timeout", CFG_DURATION, CFG_P(timeout_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_PLUGIN, "enabled", CFG_BOOL, CFG_P(enabled), 0, 1, NULL },
    { DFD_SECT_PLUGIN, "isolation", CFG_CHOICE, CFG_P(isolation), 0, 0, cfg_isolations },
    { DFD_SECT_PLUGIN, "processes", CFG_UINT, CFG_P(processes), 1, DFD_CFG_MAX_PROCESSES,
      NULL },
    { DFD_SECT_PLUGIN, "harakiri", CFG_DURATION, CFG_P(harakiri_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
    { DFD_SECT_PLUGIN, "rlimit_as", CFG_SIZE, CFG_P(rlimit_as), 0, 1024 * CFG_1G,
      NULL },
    { DFD_SECT_PLUGIN, "rlimit_cpu", CFG_DURATION, CFG_P(rlimit_cpu_ms), 0,
      DFD_CFG_MAX_DURATION_MS, NULL },
};

/* 1 for the [plugin] keys that only mean something with isolation = process. */
static int cfg_process_only(const char *key)
{
    return strcmp(key, "processes") == 0 || strcmp(key, "harakiri") == 0 ||
           strcmp(key, "rlimit_as") == 0 || strcmp(key, "rlimit_cpu") == 0;
}

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
unsigned dfd_cfg_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > (long)DFD_CFG_MAX_THREADS ? DFD_CFG_MAX_THREADS : (unsigned)n;
}

size_t dfd_cfg_default_max_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t quarter = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4 : CFG_1G;

    if (quarter > CFG_1G)
        quarter = CFG_1G;
    return quarter < (64u << 20) ? (size_t)64 << 20 : (size_t)quarter;
}

unsigned dfd_cfg_auto_workers(void)
{
    unsigned n = dfd_cfg_ncpu();

    return n > 1 ? n - 1 : 1;
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
    case CFG_LOOPS:
        if (strcmp(v, "auto") == 0) {
            *(unsigned *)(void *)field =
                k->type == CFG_LOOPS ? dfd_cfg_auto_workers() : dfd_cfg_ncpu();
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
        if (dfd_parse_duration_ms(v, &ms) == -1 || ms < k->lo || ms > k->hi) {
            char lo[48] = "";
            if (k->lo > 0)
                snprintf(lo, sizeof(lo), "from %llums ", (unsigned long long)k->lo);
            snprintf(ld->why, sizeof(ld->why), "must be a duration %sup to 7 days (250ms, "
                     "5s, 2m, 1h; a bare number is ms)", lo);
            return ld->why;
        }
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
             k->type == CFG_THREADS || k->type == CFG_LOOPS ? "auto or " : "",
             (unsigned long long)k->lo, (unsigned long long)k->hi);
    return ld->why;
}

/* The size of the field a typed key stores. */
static size_t cfg_field_size(cfg_type type)
{
    switch (type) {
    case CFG_UINT:
    case CFG_THREADS:
    case CFG_LOOPS:
    case CFG_OCTAL:
        return sizeof(unsigned);
    case CFG_SIZE:
        return sizeof(size_t);
    case CFG_DURATION:
        return sizeof(uint64_t);
    case CFG_BOOL:
    case CFG_CHOICE:
        return sizeof(int);
    case CFG_SPECIAL:
        break;
    }
    return 0;
}

/* The one rule for "unset": an empty value, in a file or an -o override, puts the
 * server key k back to its default, whatever its type. A key that must be set (listen
 * for a service or router, router for a worker) is then reported missing by the check
 * that needs it, as if it had never been written. */
static void cfg_server_unset(dfd_cfg_loader *ld, const cfg_key *k)
{
    dfd_config *cfg = ld->cfg;

    if (k->type != CFG_SPECIAL) {
        dfd_config defaults;
        memset(&defaults, 0, sizeof(defaults));
        dfd_cfg_defaults(&defaults);
        memcpy((char *)cfg + k->offset, (const char *)&defaults + k->offset,
               cfg_field_size(k->type));
        if (strcmp(k->name, "role") == 0)
            ld->role_at.line = 0;
        return;
    }
    dfd_cfg_special_unset(ld, k->name);
}

/* Applies one server-section key. Records an error for an unknown key or a bad value. */
void dfd_cfg_server_key(dfd_cfg_loader *ld, dfd_cfg_sect sect, const char *key,
                        const char *value, dfd_cfg_where at)
{
    const cfg_key *k = cfg_key_find(cfg_server_keys, CFG_NKEYS(cfg_server_keys), sect,
                                    key);
    const char *why;
    int known = 0;

    if ((k == NULL || k->type == CFG_SPECIAL) &&
        (sect == DFD_SECT_TLS || sect == DFD_SECT_AUTH ||
         (sect == DFD_SECT_ADMIN && strncmp(key, "allow_", 6) == 0))) {
        why = dfd_cfg_security_key(ld, sect, key, value, at, &known);
        if (known) {
            if (why != NULL)
                dfd_cfg_err(ld, at.file, at.line, dfd_cfg_sect_name(sect), key, value,
                            "%s", why);
            return;
        }
    }
    if (k == NULL) {
        int plugin_key = cfg_key_find(cfg_plugin_keys, CFG_NKEYS(cfg_plugin_keys),
                                      DFD_SECT_PLUGIN, key) != NULL;
        dfd_cfg_err(ld, at.file, at.line, dfd_cfg_sect_name(sect), key, value,
                    "unknown key%s", plugin_key ? " (a [plugin] key: it belongs in a "
                                                  "[plugin] section)" : "");
        return;
    }
    if (*value == '\0') {
        cfg_server_unset(ld, k);
        return;
    }
    why = k->type == CFG_SPECIAL ? dfd_cfg_special(ld, key, value)
                                 : cfg_typed(ld, k, ld->cfg, value);
    if (why == NULL) {
        if (strcmp(key, "role") == 0)
            ld->role_at = at;
        if (strcmp(key, "listen") == 0)
            ld->listen_at = at;
        return;
    }
    dfd_cfg_err(ld, at.file, at.line, dfd_cfg_sect_name(sect), key, value, "%s", why);
    if (strcmp(key, "listen") == 0 || strcmp(key, "router") == 0 || strcmp(key, "nats") == 0)
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
        return "unknown key (name, path, concurrency, queue, blocking_max, timeout, enabled, "
               "isolation, processes, harakiri, rlimit_as, rlimit_cpu)";
    if (*v == '\0') {
        /* unset (cfg_server_unset's rule): the default, or missing for name and path */
        if (k->type != CFG_SPECIAL) {
            dfd_plugin_conf defaults;
            dfd_cfg_plugin_init(&defaults);
            memcpy((char *)p + k->offset, (const char *)&defaults + k->offset,
                   cfg_field_size(k->type));
            if (m->process_key == k->name)
                m->process_key = NULL;
        } else if (strcmp(key, "name") == 0) {
            dfd_cfg_unset_str(&p->name);
            m->name_at = at;
        } else {
            dfd_cfg_unset_str(&m->raw_path);
            m->path_at = at;
        }
        return NULL;
    }
    if (k->type != CFG_SPECIAL) {
        const char *why = cfg_typed(ld, k, p, v);
        /* remembered so that a key isolation = inline ignores is an error (config.c) */
        if (why == NULL && cfg_process_only(key) && m->process_key == NULL) {
            m->process_key = k->name;
            m->process_key_at = at;
        }
        return why;
    }
    if (strcmp(key, "name") == 0) {
        if (!dfd_cfg_valid_name(v, DFD_CFG_PLUGIN_NAME_MAX))
            return "must be 1 to 64 characters of A-Z a-z 0-9 _ . -";
        m->name_at = at;
        return dfd_cfg_set_str(&p->name, v);
    }
    m->path_at = at;
    return dfd_cfg_set_str(&m->raw_path, v);
}

/* Sets key in p's [config]: replaces the first entry with that key, or appends one.
 * Returns NULL or "out of memory". */
const char *dfd_cfg_config_key(dfd_plugin_conf *p, dfd_cfg_plugin_meta *m,
                               const char *key, const char *value)
{
    char *k, *v;

    for (size_t i = 0; i < p->nconfig; i++)
        if (strcmp(p->config[i].key, key) == 0)
            return dfd_cfg_set_str(&p->config[i].value, value);
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

void dfd_config_list_keys(FILE *out)
{
    for (size_t i = 0; i < CFG_NKEYS(cfg_server_keys); i++)
        fprintf(out, "%s.%s\n", dfd_cfg_sect_name(cfg_server_keys[i].sect),
                cfg_server_keys[i].name);
    for (size_t i = 0; i < CFG_NKEYS(cfg_plugin_keys); i++)
        fprintf(out, "plugin.%s\n", cfg_plugin_keys[i].name);
}
