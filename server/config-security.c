/*
 * config-security.c - the [tls] and [auth] keys that are not a plain typed value, the
 * [admin] allow_uids / allow_gids lists, and the checks of both sections that need
 * every file read (see config-int.h). What the keys mean: tls.h, auth.h.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "auth.h"
#include "config-int.h"
#include "tls.h"

/* A path as written, or joined to the configuration directory when relative. */
static const char *sec_path(dfd_cfg_loader *ld, char **slot, const char *v)
{
    char *p = v[0] == '/' ? strdup(v) : dfd_cfg_join(ld->cfg->dir, v);

    if (p == NULL)
        return "out of memory";
    free(*slot);
    *slot = p;
    return NULL;
}

/* allow_uids / allow_gids: names or numbers, comma separated. */
static const char *sec_ids(dfd_cfg_loader *ld, int users, const char *v, long **out,
                           size_t *nout)
{
    char *copy = strdup(v), *cur = copy, *item;
    long *ids = NULL;
    size_t n = 0;
    const char *why = NULL;

    if (copy == NULL)
        return "out of memory";
    while (why == NULL && (item = dfd_cfg_list_next(&cur)) != NULL) {
        unsigned long num;
        long id = -1;
        char buf[4096];
        if (*item == '\0') {
            why = "empty item in the list (names or numbers, comma separated)";
            break;
        }
        if (dfd_parse_uint(item, 0x7fffffffUL, &num) == 0) {
            id = (long)num;
        } else if (users) {
            struct passwd pw, *res = NULL;
            if (getpwnam_r(item, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
                id = (long)res->pw_uid;
        } else {
            struct group gr, *res = NULL;
            if (getgrnam_r(item, &gr, buf, sizeof(buf), &res) == 0 && res != NULL)
                id = (long)res->gr_gid;
        }
        if (id == -1) {
            snprintf(ld->why, sizeof(ld->why), "item %zu: no such %s on this system", n + 1,
                     users ? "user" : "group");
            why = ld->why;
            break;
        }
        long *g = realloc(ids, (n + 1) * sizeof(*g));
        if (g == NULL) {
            why = "out of memory";
            break;
        }
        ids = g;
        ids[n++] = id;
    }
    free(copy);
    if (why != NULL) {
        free(ids);
        return why;
    }
    free(*out);
    *out = ids;
    *nout = n;
    return NULL;
}

/* call.ID / serve.ID / member.ID = glob, glob... (an empty value removes the rule). */
static const char *sec_rule(dfd_cfg_loader *ld, int kind, const char *id, const char *v)
{
    dfd_config *cfg = ld->cfg;
    dfd_auth_rule r = {kind, NULL, NULL, 0};
    size_t at = cfg->nauth_rules;

    if (strcmp(id, "*") != 0 && !dfd_cfg_valid_name(id, 64) &&
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-") !=
            strlen(id))
        return "the identity after the dot must be 1-64 of A-Z a-z 0-9 _ . @ -, or *";
    if (*id == '\0' || strlen(id) > 64)
        return "the identity after the dot must be 1-64 of A-Z a-z 0-9 _ . @ -, or *";
    for (size_t i = 0; i < cfg->nauth_rules; i++)
        if (cfg->auth_rules[i].kind == kind && strcmp(cfg->auth_rules[i].identity, id) == 0)
            at = i;
    if (*v == '\0') {
        if (at < cfg->nauth_rules) {
            dfd_auth_rule_free(&cfg->auth_rules[at]);
            memmove(&cfg->auth_rules[at], &cfg->auth_rules[at + 1],
                    (cfg->nauth_rules - at - 1) * sizeof(*cfg->auth_rules));
            cfg->nauth_rules--;
        }
        return NULL;
    }
    char *copy = strdup(v), *cur = copy, *item;
    const char *why = copy == NULL || (r.identity = strdup(id)) == NULL ? "out of memory" : NULL;
    while (why == NULL && (item = dfd_cfg_list_next(&cur)) != NULL) {
        char **g;
        if (*item == '\0' || strlen(item) > 255)
            why = "empty or over-long pattern in the list (fnmatch globs, comma separated)";
        else if ((g = realloc(r.globs, (r.nglobs + 1) * sizeof(*g))) == NULL)
            why = "out of memory";
        else if ((r.globs = g, g[r.nglobs] = strdup(item)) == NULL)
            why = "out of memory";
        else
            r.nglobs++;
    }
    free(copy);
    if (why == NULL && at == cfg->nauth_rules && cfg->nauth_rules == ld->rules_cap) {
        size_t cap = ld->rules_cap ? ld->rules_cap * 2 : 8;
        dfd_auth_rule *g = realloc(cfg->auth_rules, cap * sizeof(*g));
        if (g == NULL)
            why = "out of memory";
        else {
            cfg->auth_rules = g;
            ld->rules_cap = cap;
        }
    }
    if (why != NULL) {
        dfd_auth_rule_free(&r);
        return why;
    }
    if (at < cfg->nauth_rules)
        dfd_auth_rule_free(&cfg->auth_rules[at]);
    else
        cfg->nauth_rules++;
    cfg->auth_rules[at] = r;
    return NULL;
}

/* One item of a require list: "unix", "tcp", "tls" (every listener of that scheme) or
 * an address as listen writes it (into *addr). Returns the scheme item's kind
 * (DAFFI_ADDR_UNIX, DAFFI_ADDR_TCP; *tls set), 0 for an address, -1 when it is neither. */
static int sec_require_item(const char *item, int *tls, daffi_addr *addr)
{
    const char *reason;

    *tls = strcmp(item, "tls") == 0;
    if (strcmp(item, "unix") == 0)
        return DAFFI_ADDR_UNIX;
    if (*tls || strcmp(item, "tcp") == 0)
        return DAFFI_ADDR_TCP;
    return daffi_addr_parse(item, addr, &reason) == 0 ? 0 : -1;
}

/* require = yes | no | LIST: the syntax; which listeners it covers is resolved by
 * sec_require_resolve once listen is known. */
static const char *sec_require(dfd_cfg_loader *ld, const char *v, dfd_cfg_where at)
{
    char *copy, *cur, *item;
    const char *why = NULL;
    int b, tls;
    size_t n = 0;
    daffi_addr a;

    if (*v == '\0') {
        dfd_cfg_unset_str(&ld->cfg->auth_require);
        return NULL;
    }
    if (dfd_parse_bool(v, &b) == -1) {
        if ((copy = strdup(v)) == NULL)
            return "out of memory";
        for (cur = copy; why == NULL && (item = dfd_cfg_list_next(&cur)) != NULL;)
            if (n++, *item == '\0' || sec_require_item(item, &tls, &a) == -1) {
                snprintf(ld->why, sizeof(ld->why), "item %zu of the list is not a scheme "
                         "(unix, tcp, tls) or a listen address (tls://HOST:PORT, "
                         "tcp://HOST:PORT, unix:///PATH); the whole value may be yes or no",
                         n);
                why = ld->why;
            }
        free(copy);
        if (why != NULL)
            return why;
    }
    ld->require_at = at;
    return dfd_cfg_set_str(&ld->cfg->auth_require, v);
}

const char *dfd_cfg_security_key(dfd_cfg_loader *ld, dfd_cfg_sect sect, const char *key,
                                 const char *v, dfd_cfg_where at, int *known)
{
    dfd_config *cfg = ld->cfg;
    char **slot = NULL;

    *known = 1;
    if (sect == DFD_SECT_ADMIN &&
        (strcmp(key, "allow_uids") == 0 || strcmp(key, "allow_gids") == 0)) {
        int users = key[6] == 'u';
        long **ids = users ? &cfg->admin_allow_uids : &cfg->admin_allow_gids;
        size_t *n = users ? &cfg->nadmin_allow_uids : &cfg->nadmin_allow_gids;
        if (*v != '\0')
            return sec_ids(ld, users, v, ids, n);
        free(*ids);
        *ids = NULL;
        *n = 0;
        return NULL;
    }
    if (sect == DFD_SECT_TLS) {
        if (strcmp(key, "cert") == 0)
            slot = &cfg->tls_cert;
        else if (strcmp(key, "key") == 0)
            slot = &cfg->tls_key;
        else if (strcmp(key, "ca") == 0)
            slot = &cfg->tls_ca;
        else if (strcmp(key, "ciphers") == 0) {
            if (*v == '\0') {
                dfd_cfg_unset_str(&cfg->tls_ciphers);
                return NULL;
            }
            return dfd_cfg_set_str(&cfg->tls_ciphers, v);
        }
        if (slot != NULL) {
            if (*v == '\0') {
                dfd_cfg_unset_str(slot);
                return NULL;
            }
            ld->tls_at = at; /* the last one set: what a -t error points at */
            return sec_path(ld, slot, v);
        }
    }
    if (sect == DFD_SECT_AUTH) {
        if (strcmp(key, "require") == 0)
            return sec_require(ld, v, at);
        if (strcmp(key, "tokens") == 0 || strcmp(key, "token_file") == 0) {
            int tokens = key[5] == 's';
            slot = tokens ? &cfg->auth_tokens : &cfg->auth_token_file;
            if (*v == '\0') {
                dfd_cfg_unset_str(slot);
                return NULL;
            }
            if (tokens)
                ld->tokens_at = at;
            else
                ld->token_file_at = at;
            return sec_path(ld, slot, v);
        }
        static const char *const kinds[] = { "call.", "serve.", "member." };
        for (int k = 0; k < 3; k++)
            if (strncmp(key, kinds[k], strlen(kinds[k])) == 0)
                return sec_rule(ld, k, key + strlen(kinds[k]), v);
    }
    *known = 0;
    return NULL;
}

/* Records a problem at where (or, line 0, at the configuration directory). */
static void sec_err(dfd_cfg_loader *ld, dfd_cfg_where where, const char *sect,
                    const char *key, const char *what)
{
    dfd_cfg_err(ld, where.line ? where.file : ld->cfg->dir, where.line, sect, key, NULL,
                "%s", what);
}

/* Sets cfg->listen_auth and auth_required from require; an address that is not a
 * listener, or a list that covers no listener, is an error at the require line. */
static void sec_require_resolve(dfd_cfg_loader *ld)
{
    dfd_config *cfg = ld->cfg;
    char *copy, *cur, *item;
    int b, tls, kind;
    daffi_addr a;

    free(cfg->listen_auth);
    cfg->auth_required = 0;
    if ((cfg->listen_auth = calloc(cfg->nlisten ? cfg->nlisten : 1, 1)) == NULL) {
        sec_err(ld, ld->require_at, "auth", "require", "out of memory");
        return;
    }
    if (cfg->auth_require == NULL)
        return;
    if (dfd_parse_bool(cfg->auth_require, &b) == 0) {
        for (size_t i = 0; i < cfg->nlisten; i++)
            cfg->listen_auth[i] = (unsigned char)b;
        cfg->auth_required = b && cfg->nlisten > 0;
        return;
    }
    if ((cur = copy = strdup(cfg->auth_require)) == NULL) {
        sec_err(ld, ld->require_at, "auth", "require", "out of memory");
        return;
    }
    for (size_t n = 1; (item = dfd_cfg_list_next(&cur)) != NULL; n++) {
        int found = 0;
        if ((kind = sec_require_item(item, &tls, &a)) == -1)
            continue; /* refused when it was read */
        for (size_t i = 0; i < cfg->nlisten; i++) {
            const daffi_addr *l = &cfg->listen[i];
            if (kind == 0 ? dfd_addr_same(l, &a)
                          : (int)l->kind == kind && (kind == DAFFI_ADDR_UNIX || l->tls == tls))
                cfg->listen_auth[i] = 1, found = 1;
        }
        if (kind == 0 && !found) {
            snprintf(ld->why, sizeof(ld->why), "item %zu of the list is an address that is "
                     "not one of [server] listen (write it as listen does)", n);
            sec_err(ld, ld->require_at, "auth", "require", ld->why);
        }
    }
    free(copy);
    for (size_t i = 0; i < cfg->nlisten; i++)
        cfg->auth_required |= cfg->listen_auth[i];
    if (!cfg->auth_required && cfg->nlisten > 0) {
        sec_err(ld, ld->require_at, "auth", "require", "the list covers none of the "
                "listeners: nothing would require authentication (write require = no)");
    }
}

void dfd_cfg_security_check(dfd_cfg_loader *ld)
{
    dfd_config *cfg = ld->cfg;
    char why[700];
    int router_tls = cfg->role == DFD_ROLE_WORKER && cfg->router != NULL &&
                     strncmp(cfg->router, "tls://", 6) == 0;

    sec_require_resolve(ld);
    cfg->tls_listeners = 0;
    for (size_t i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].tls)
            cfg->tls_listeners = 1;
    if (cfg->tls_listeners && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
        sec_err(ld, ld->listen_at, "server", "listen",
                "a tls:// listener needs [tls] cert and key (PEM files)");
        return;
    }
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        sec_err(ld, ld->tls_at, "tls", cfg->tls_cert ? "key" : "cert",
                "cert and key go together: set both or neither");
        return;
    }
    if (cfg->tls_verify_clients != DFD_TLS_VERIFY_NO && cfg->tls_ca == NULL) {
        sec_err(ld, ld->tls_at, "tls", "verify_clients",
                "verify_clients = optional or require needs [tls] ca (the CA that signs "
                "the client certificates)");
        return;
    }
    if (cfg->tls_listeners || router_tls) {
        SSL_CTX *ctx = dfd_tls_ctx_build(cfg, cfg->tls_listeners, why, sizeof(why));
        if (ctx == NULL) {
            sec_err(ld, ld->tls_at, "tls", NULL, why);
            return;
        }
        SSL_CTX_free(ctx);
        if (cfg->tls_listeners && router_tls) {
            if ((ctx = dfd_tls_ctx_build(cfg, 0, why, sizeof(why))) == NULL) {
                sec_err(ld, ld->tls_at, "tls", NULL, why);
                return;
            }
            SSL_CTX_free(ctx);
        }
    }
    if (cfg->auth_tokens != NULL) {
        dfd_tokens *t = dfd_tokens_load(cfg->auth_tokens, why, sizeof(why));
        if (t == NULL)
            sec_err(ld, ld->tokens_at, "auth", "tokens", why);
        dfd_tokens_free(t);
    }
    if (cfg->auth_token_file != NULL) {
        FILE *f = fopen(cfg->auth_token_file, "re");
        char line[1100];
        if (f == NULL || fgets(line, sizeof(line), f) == NULL ||
            line[strspn(line, " \t\r\n")] == '\0') {
            snprintf(why, sizeof(why), "%s: %s", cfg->auth_token_file,
                     f == NULL ? "cannot be read" : "empty (the token is its first line)");
            sec_err(ld, ld->token_file_at, "auth", "token_file", why);
        }
        if (f != NULL)
            fclose(f);
    }
    for (size_t i = 0; cfg->auth_tokens == NULL && i < cfg->nlisten; i++) {
        const daffi_addr *l = &cfg->listen[i];
        if (!cfg->listen_auth[i] || (l->tls && cfg->tls_verify_clients != DFD_TLS_VERIFY_NO))
            continue;
        snprintf(why, sizeof(why), "require covers listen item %zu (%s://), but nothing "
                 "can authenticate there: set [auth] tokens%s", i + 1,
                 l->kind == DAFFI_ADDR_UNIX ? "unix" : l->tls ? "tls" : "tcp",
                 l->tls ? " or [tls] verify_clients" : " (only a tls:// listener "
                 "authenticates by certificate)");
        sec_err(ld, ld->require_at, "auth", "require", why);
        break;
    }
}

void dfd_cfg_security_free(dfd_config *cfg)
{
    free(cfg->admin_allow_uids);
    free(cfg->admin_allow_gids);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_ca);
    free(cfg->tls_ciphers);
    free(cfg->auth_tokens);
    free(cfg->auth_token_file);
    free(cfg->auth_require);
    free(cfg->listen_auth);
    for (size_t i = 0; i < cfg->nauth_rules; i++)
        dfd_auth_rule_free(&cfg->auth_rules[i]);
    free(cfg->auth_rules);
}
