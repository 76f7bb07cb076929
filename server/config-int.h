/*
 * config-int.h - what the pieces of the configuration loader share (private to
 * config.c, config-keys.c, config-ini.c; nothing outside includes it).
 *
 * config.c owns the model: defaults, overrides, plugin resolution and the errors;
 * config-keys.c the key tables and how each value is read. config-ini.c reads the
 * directory and its ini files and feeds every key to them through the functions below. A dfd_cfg_loader lives for one
 * dfd_config_load() call.
 */
#ifndef DFD_CONFIG_INT_H
#define DFD_CONFIG_INT_H

#include "config.h"

#define DFD_CFG_MAX_THREADS 1024u
#define DFD_CFG_MAX_DURATION_MS (7ull * 24 * 3600 * 1000) /* 7 days */
#define DFD_CFG_PLUGIN_NAME_MAX 64
#define DFD_CFG_MEMBER_NAME_MAX 255
#define DFD_CFG_MAX_PROCESSES 256u

typedef enum dfd_cfg_sect {
    DFD_SECT_NONE = 0, /* before any header */
    DFD_SECT_SERVER,
    DFD_SECT_LIMITS,
    DFD_SECT_LOG,
    DFD_SECT_ADMIN,
    DFD_SECT_TLS,
    DFD_SECT_AUTH,
    DFD_SECT_PLUGIN,
    DFD_SECT_CONFIG,
    DFD_SECT_SKIP      /* a header already reported as bad: its keys are ignored */
} dfd_cfg_sect;

/* The "file" of an -o override in messages and dfd_cfg_where. */
#define DFD_CFG_OVERRIDE "-o"

/* Where a value was set: file points to a loader-owned path or to DFD_CFG_OVERRIDE. */
typedef struct dfd_cfg_where {
    const char *file;
    unsigned line;
} dfd_cfg_where;

/* What the loader keeps per plugin beside its dfd_plugin_conf until resolution. */
typedef struct dfd_cfg_plugin_meta {
    char *raw_path;          /* path as written; owned */
    dfd_cfg_where path_at;
    dfd_cfg_where name_at;
    size_t config_cap;       /* allocated entries of the plugin's config array */
    const char *process_key; /* the first key only isolation = process reads (static
                                name), or NULL */
    dfd_cfg_where process_key_at;
} dfd_cfg_plugin_meta;

typedef struct dfd_cfg_loader {
    dfd_config *cfg;
    dfd_errors *errs;        /* the caller's; may be NULL (then only counted) */
    size_t nerr;             /* problems found by this load (counted even when storing
                                the message failed) */
    char **files;            /* every ini path opened; owned; dfd_cfg_where.file points
                                here */
    size_t nfiles;
    char *plugin_dir;        /* plugin_dir as written; owned; NULL = the config dir */
    dfd_cfg_where role_at;   /* line 0 while role is the default */
    int addr_refused;        /* a listen or router value was refused (reported) */
    dfd_cfg_where listen_at; /* the line that set listen (0: never set) */
    dfd_cfg_where tls_at;    /* the last line that set [tls] cert, key or ca */
    dfd_cfg_where tokens_at; /* [auth] tokens */
    dfd_cfg_where require_at; /* [auth] require */
    dfd_cfg_where token_file_at; /* [auth] token_file */
    size_t rules_cap;        /* allocated entries of cfg->auth_rules */
    dfd_cfg_plugin_meta *meta; /* parallel to cfg->plugins */
    size_t plugins_cap;
    char why[512];           /* scratch for reasons built by the key parsers */
} dfd_cfg_loader;

/* Sets every default of config-t.h on a zeroed cfg (name waits for the end of the load:
 * the host name). Allocates nothing. */
void dfd_cfg_defaults(dfd_config *cfg);

/* The online CPUs (at least 1): what blocking_threads = auto means. */
unsigned dfd_cfg_ncpu(void);
/* The default [limits] max_memory: 1G, or a quarter of the physical memory when that
 * is less, but at least 64M. */
size_t dfd_cfg_default_max_memory(void);
/* What workers = auto means: the online CPUs but one, at least 1. The spare CPU runs
 * what the loops wait on (the kernel's network work, clients on the same machine, the
 * main thread, the blocking pool): on 2 CPUs with a local client one loop served more
 * calls than two, at less CPU per call (make bench, "2 cores" rows). */
unsigned dfd_cfg_auto_workers(void);

/* Returns the name of a real section ("server", ...), NULL for NONE and SKIP. */
const char *dfd_cfg_sect_name(dfd_cfg_sect sect);
/* Returns the section called name, or DFD_SECT_SKIP when there is none. */
dfd_cfg_sect dfd_cfg_sect_find(const char *name);

/* Records "FILE:LINE: [sect] key: what", and " (got 'value')" for an override (file
 * DFD_CFG_OVERRIDE). A file's values are never shown, its key and section names only
 * when they are plain lowercase names: a message must not repeat what a file holds.
 * line 0, sect, key and value NULL leave their part out. Nothing passed is kept. */
void dfd_cfg_err(dfd_cfg_loader *ld, const char *file, unsigned line, const char *sect,
                 const char *key, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
void dfd_cfg_oom(dfd_cfg_loader *ld, const char *file, unsigned line);

/* Applies key = value of a server section (SERVER, LIMITS, LOG), recording an error for
 * an unknown key or a bad value. */
void dfd_cfg_server_key(dfd_cfg_loader *ld, dfd_cfg_sect sect, const char *key,
                        const char *value, dfd_cfg_where at);
/* Applies one [plugin] key to p and m. Returns NULL or why value is refused (static, or
 * in ld->why until the next call). */
const char *dfd_cfg_plugin_key(dfd_cfg_loader *ld, dfd_plugin_conf *p,
                               dfd_cfg_plugin_meta *m, const char *key, const char *value,
                               dfd_cfg_where at);
/* config-special.c: applies a [server] or [admin] key that is not a plain typed value
 * (name, listen, router, plugin_dir, pidfile, state_file, nats, nats_namespace, nats_creds,
 * nats_tls_ca, metrics_listen, socket, owner, group, load_paths); v is not empty. Returns NULL or why v is refused (static, or in
 * ld->why). */
const char *dfd_cfg_special(dfd_cfg_loader *ld, const char *key, const char *v);
/* Puts such a key back to "not set" (its default). */
void dfd_cfg_special_unset(dfd_cfg_loader *ld, const char *key);
/* config-security.c: the [tls], [auth] and [admin] allow_* keys that are not a plain
 * typed value (cert, key, ca, ciphers, tokens, token_file, call.ID, serve.ID,
 * member.ID, allow_uids, allow_gids). Returns NULL or why v is refused; 1 in *known
 * when key is one of them. An empty v unsets it. */
const char *dfd_cfg_security_key(dfd_cfg_loader *ld, dfd_cfg_sect sect, const char *key,
                                 const char *v, dfd_cfg_where at, int *known);
/* The checks of [tls] and [auth] that need every file read: which listeners [auth]
 * require covers (cfg->listen_auth), a tls:// listener or router without what it
 * needs, certificates and keys that do not load, a tokens file that does not parse
 * (each reported at the line that set it). */
void dfd_cfg_security_check(dfd_cfg_loader *ld);
/* Frees what config-security.c's keys own in cfg. */
void dfd_cfg_security_free(dfd_config *cfg);
/* Replaces *slot with a copy of v. Returns NULL or "out of memory". */
const char *dfd_cfg_set_str(char **slot, const char *v);
/* Cuts the next item of a comma-separated list at *cursor (a modifiable copy; NULL once
 * the list is done) and returns it trimmed of blanks, or NULL at the end. An empty item
 * ("a,,b") is returned empty: strtok_r would merge ",," and hide it. */
char *dfd_cfg_list_next(char **cursor);
/* Frees *slot and sets it to NULL. */
void dfd_cfg_unset_str(char **slot);
/* 1 when s is 1..max characters of [A-Za-z0-9_.-]. */
int dfd_cfg_valid_name(const char *s, size_t max);

/* Sets key in p's [config] (replaces the first entry with that key, or appends). Returns
 * NULL or "out of memory". */
const char *dfd_cfg_config_key(dfd_plugin_conf *p, dfd_cfg_plugin_meta *m,
                               const char *key, const char *value);

/* A plugin under construction: defaults in, everything owned freed out (zeroed). */
void dfd_cfg_plugin_init(dfd_plugin_conf *p);
void dfd_cfg_plugin_free(dfd_plugin_conf *p);
/* Adds the plugin that file declares (its [plugin] header at line) to the config,
 * taking what p and m own (then zeroed), unless its name is taken (recorded). */
void dfd_cfg_add_plugin(dfd_cfg_loader *ld, const char *file, unsigned line,
                        dfd_plugin_conf *p, dfd_cfg_plugin_meta *m);

/* Returns "base/rel" (malloc'd, the caller frees), or NULL when memory runs out. */
char *dfd_cfg_join(const char *base, const char *rel);

/* Reads every "*.ini" of dir in strcmp order into ld (config-ini.c). Returns 0, or -1
 * when dir cannot be listed (recorded). */
int dfd_cfg_read_dir(dfd_cfg_loader *ld, const char *dir);
/* Reads one more ini file (an "@FILE" override) into ld, as if it came after the
 * directory's files. Returns 0, or -1 when memory ran out (recorded); problems in the
 * file are recorded under its path. */
int dfd_cfg_read_extra(dfd_cfg_loader *ld, const char *path);

#endif /* DFD_CONFIG_INT_H */
