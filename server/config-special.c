/*
 * config-special.c - the keys whose value is not a plain number, size, duration or
 * choice: names, paths, addresses and address lists, the admin socket's owner and
 * group, directory lists (see config-int.h; config-keys.c dispatches to it).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "config-int.h"

/* 1..max characters of [A-Za-z0-9_.-]. */
int dfd_cfg_valid_name(const char *s, size_t max)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789_.-");
    return n > 0 && n <= max && s[n] == '\0';
}

/* Replaces *slot with a copy of v. Returns NULL or "out of memory". */
const char *dfd_cfg_set_str(char **slot, const char *v)
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
        snprintf(ld->why, sizeof(ld->why), "bad address: %s",
                 reason ? reason : "not an address");
        return ld->why;
    }
    if (out->kind == DAFFI_ADDR_TCP && out->port == 0) {
        snprintf(ld->why, sizeof(ld->why), "bad address: port 0 (use 1 to 65535)");
        return ld->why;
    }
    return NULL;
}

/* See config-int.h. */
char *dfd_cfg_list_next(char **cursor)
{
    char *item = *cursor, *end, *next;

    if (item == NULL)
        return NULL;
    if ((next = strchr(item, ',')) != NULL)
        *next++ = '\0';
    *cursor = next;
    while (isspace((unsigned char)*item))
        item++;
    end = item + strlen(item);
    while (end > item && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return item;
}

int dfd_cfg_is_nats_url(const char *v)
{
    /* only nats:// starts a NATS list: a lone tls:// is a daffid router over TLS
     * (later items of a NATS list may be tls://, as libnats reads them) */
    while (isspace((unsigned char)*v))
        v++;
    return strncmp(v, "nats://", 7) == 0;
}

int dfd_cfg_uses_nats(const dfd_config *cfg)
{
    return (cfg->role == DFD_ROLE_ROUTER && cfg->nats != NULL) ||
           (cfg->role == DFD_ROLE_WORKER && cfg->router != NULL &&
            dfd_cfg_is_nats_url(cfg->router));
}

/* A NATS server list: nats://HOST:PORT or tls://HOST:PORT, comma separated (libnats
 * takes each as it is). Returns NULL or the reason, naming the item. */
static const char *cfg_nats_urls(dfd_cfg_loader *ld, const char *v)
{
    char *copy = strdup(v), *cursor = copy, *item;
    size_t n = 0;

    if (copy == NULL)
        return "out of memory";
    while ((item = dfd_cfg_list_next(&cursor)) != NULL) {
        const char *hp = strncmp(item, "nats://", 7) == 0  ? item + 7
                         : strncmp(item, "tls://", 6) == 0 ? item + 6 : NULL;
        const char *colon = hp != NULL ? strrchr(hp, ':') : NULL;
        char *end = NULL;
        long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
        n++;
        if (hp == NULL || colon == NULL || colon == hp || end == colon + 1 || *end != '\0' ||
            port < 1 || port > 65535 || strpbrk(hp, " \t/") != NULL) {
            snprintf(ld->why, sizeof(ld->why), "bad NATS server '%.100s' (item %zu): use "
                     "nats://HOST:PORT or tls://HOST:PORT, comma separated", item, n);
            free(copy);
            return ld->why;
        }
    }
    free(copy);
    return NULL;
}

/* A subject prefix: tokens of A-Z a-z 0-9 _ - separated by single dots, 1..64 bytes. */
static int cfg_nats_namespace_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 64 || v[0] == '.' || v[n - 1] == '.' || strstr(v, "..") != NULL)
        return 0;
    return strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") == n;
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
    next = copy;
    while (why == NULL && (item = dfd_cfg_list_next(&next)) != NULL) {
        if (*item == '\0')
            why = "empty address in the list (tcp://host:port or unix:///path, comma "
                  "separated)";
        else if ((grown = realloc(addrs, (n + 1) * sizeof(*addrs))) == NULL)
            why = "out of memory";
        else if ((why = cfg_addr(ld, item, &(addrs = grown)[n])) == NULL)
            n++;
    }
    if (why != NULL && why == ld->why && n > 0) {
        /* a value from a file is not shown: say which item of the list it was */
        char reason[sizeof(ld->why)];
        memcpy(reason, ld->why, sizeof(reason));
        snprintf(ld->why, sizeof(ld->why), "address %zu of the list: %.400s", n + 1, reason);
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

/* metrics_listen: "HOST:PORT", "tcp://HOST:PORT" or "unix:///path". Returns NULL or
 * the reason. */
static const char *cfg_metrics_listen(dfd_cfg_loader *ld, const char *v)
{
    daffi_addr addr;
    char text[300];
    const char *why;

    snprintf(text, sizeof(text), "%s%s",
             strncmp(v, "tcp://", 6) == 0 || strncmp(v, "unix://", 7) == 0 ? "" : "tcp://",
             v);
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

/* Frees the [admin] load_paths list. */
static void cfg_load_paths_free(dfd_config *cfg)
{
    for (size_t i = 0; i < cfg->nadmin_load_paths; i++)
        free(cfg->admin_load_paths[i]);
    free(cfg->admin_load_paths);
    cfg->admin_load_paths = NULL;
    cfg->nadmin_load_paths = 0;
}

/* [admin] load_paths: comma-separated directories, each absolute or relative to the
 * configuration directory. The list replaces the previous one only when every item is
 * good. Returns NULL or the reason. */
static const char *cfg_load_paths(dfd_cfg_loader *ld, const char *v)
{
    dfd_config *cfg = ld->cfg;
    char **dirs = NULL, **grown;
    size_t n = 0;
    char *copy = strdup(v), *item, *next;
    const char *why = NULL;

    next = copy;
    while (copy != NULL && why == NULL && (item = dfd_cfg_list_next(&next)) != NULL) {
        if (*item == '\0')
            why = "empty directory in the list (directories, comma separated)";
        else if ((grown = realloc(dirs, (n + 1) * sizeof(*dirs))) == NULL)
            why = "out of memory";
        else if ((dirs = grown, dirs[n] = item[0] == '/' ? strdup(item)
                                                         : dfd_cfg_join(cfg->dir, item))
                 == NULL)
            why = "out of memory";
        else
            n++;
    }
    if (copy == NULL)
        why = "out of memory";
    free(copy);
    if (why != NULL) {
        for (size_t i = 0; i < n; i++)
            free(dirs[i]);
        free(dirs);
        return why;
    }
    cfg_load_paths_free(cfg);
    cfg->admin_load_paths = dirs;
    cfg->nadmin_load_paths = n;
    return NULL;
}

/* The [admin] keys that are not a plain typed value. Returns NULL or the reason. */
static const char *cfg_admin_special(dfd_cfg_loader *ld, const char *key, const char *v)
{
    if (strcmp(key, "owner") == 0)
        return cfg_admin_id(ld, key, v, &ld->cfg->admin_uid);
    if (strcmp(key, "group") == 0)
        return cfg_admin_id(ld, key, v, &ld->cfg->admin_gid);
    if (strcmp(key, "load_paths") == 0)
        return cfg_load_paths(ld, v);
    if (strlen(v) >= sizeof(((daffi_addr *)0)->path))
        return "path too long for a Unix socket (at most 107 bytes)";
    return dfd_cfg_set_str(&ld->cfg->admin_socket, v);
}

/* The [server] keys that are not a plain typed value. Returns NULL or the reason. */
const char *dfd_cfg_special(dfd_cfg_loader *ld, const char *key, const char *v)
{
    daffi_addr addr;

    if (strcmp(key, "metrics_listen") == 0)
        return cfg_metrics_listen(ld, v);
    if (strcmp(key, "socket") == 0 || strcmp(key, "owner") == 0 ||
        strcmp(key, "group") == 0 || strcmp(key, "load_paths") == 0)
        return cfg_admin_special(ld, key, v);
    if (strcmp(key, "name") == 0) {
        if (!dfd_cfg_valid_name(v, DFD_CFG_MEMBER_NAME_MAX))
            return "must be 1 to 255 characters of A-Z a-z 0-9 _ . -";
        return dfd_cfg_set_str(&ld->cfg->name, v);
    }
    if (strcmp(key, "listen") == 0)
        return cfg_listen(ld, v);
    if (strcmp(key, "nats") == 0 || (strcmp(key, "router") == 0 &&
                                      dfd_cfg_is_nats_url(v))) {
        const char *why = cfg_nats_urls(ld, v);
        return why != NULL ? why : dfd_cfg_set_str(strcmp(key, "nats") == 0 ? &ld->cfg->nats
                                                                         : &ld->cfg->router, v);
    }
    if (strcmp(key, "nats_namespace") == 0) {
        if (!cfg_nats_namespace_ok(v))
            return "must be 1 to 64 characters of A-Z a-z 0-9 _ - in tokens separated by "
                   "single dots (a NATS subject prefix, no wildcards)";
        return dfd_cfg_set_str(&ld->cfg->nats_namespace, v);
    }
    if (strcmp(key, "nats_creds") == 0 || strcmp(key, "nats_tls_ca") == 0) {
        if (access(v, R_OK) == -1) {
            snprintf(ld->why, sizeof(ld->why), "cannot read %s: %s", v, strerror(errno));
            return ld->why;
        }
        return dfd_cfg_set_str(strcmp(key, "nats_creds") == 0 ? &ld->cfg->nats_creds
                                                              : &ld->cfg->nats_tls_ca, v);
    }
    if (strcmp(key, "router") == 0) {
        const char *why = cfg_addr(ld, v, &addr);
        return why != NULL ? why : dfd_cfg_set_str(&ld->cfg->router, v);
    }
    if (strcmp(key, "plugin_dir") == 0)
        return dfd_cfg_set_str(&ld->plugin_dir, v);
    if (strcmp(key, "state_file") == 0) {
        if (strcmp(v, "none") != 0 && v[0] != '/')
            return "must be an absolute path, or none (no member file: the startup grace "
                   "then lasts its whole time)";
        return dfd_cfg_set_str(&ld->cfg->state_file, v);
    }
    return dfd_cfg_set_str(&ld->cfg->pidfile, v);
}

/* Puts a string key back to "not set". */
void dfd_cfg_unset_str(char **slot)
{
    free(*slot);
    *slot = NULL;
}

/* See config-int.h: the keys of dfd_cfg_special() back to "not set". */
void dfd_cfg_special_unset(dfd_cfg_loader *ld, const char *key)
{
    dfd_config *cfg = ld->cfg;

    if (strcmp(key, "name") == 0) {
        dfd_cfg_unset_str(&cfg->name); /* the host name, once everything is read */
    } else if (strcmp(key, "listen") == 0) {
        free(cfg->listen);
        cfg->listen = NULL;
        cfg->nlisten = 0;
    } else if (strcmp(key, "router") == 0) {
        dfd_cfg_unset_str(&cfg->router);
    } else if (strcmp(key, "nats") == 0) {
        dfd_cfg_unset_str(&cfg->nats);
    } else if (strcmp(key, "nats_namespace") == 0) {
        dfd_cfg_unset_str(&cfg->nats_namespace); /* "daffi" */
    } else if (strcmp(key, "nats_creds") == 0) {
        dfd_cfg_unset_str(&cfg->nats_creds);
    } else if (strcmp(key, "nats_tls_ca") == 0) {
        dfd_cfg_unset_str(&cfg->nats_tls_ca);
    } else if (strcmp(key, "plugin_dir") == 0) {
        dfd_cfg_unset_str(&ld->plugin_dir); /* the configuration directory */
    } else if (strcmp(key, "pidfile") == 0) {
        dfd_cfg_unset_str(&cfg->pidfile);
    } else if (strcmp(key, "state_file") == 0) {
        dfd_cfg_unset_str(&cfg->state_file); /* the default place */
    } else if (strcmp(key, "metrics_listen") == 0) {
        cfg->metrics_enabled = 0;
    } else if (strcmp(key, "socket") == 0) {
        dfd_cfg_unset_str(&cfg->admin_socket);
    } else if (strcmp(key, "owner") == 0) {
        cfg->admin_uid = -1;
    } else if (strcmp(key, "group") == 0) {
        cfg->admin_gid = -1;
    } else if (strcmp(key, "load_paths") == 0) {
        cfg_load_paths_free(cfg); /* the configuration directory */
    }
}
