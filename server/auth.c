/*
 * auth.c - identities on connections, daffi.auth, the DENIED checks and the rules
 * (see auth.h). The tokens file is auth-tokens.c's.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "callobj.h"
#include "control.h"
#include "log.h"
#include "listener.h"
#include "logfmt.h"
#include "server.h"
#include "sweep.h"

/* What an identity that rules exist for, but none covers, may do: nothing. */
static const dfd_auth_rule auth_nothing = {0, NULL, NULL, 0};

void dfd_auth_rule_free(dfd_auth_rule *r)
{
    free(r->identity);
    for (size_t i = 0; i < r->nglobs; i++)
        free(r->globs[i]);
    free(r->globs);
    memset(r, 0, sizeof(*r));
}

static void auth_rules_unref(dfd_auth_rules *r)
{
    if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    for (size_t i = 0; i < r->n; i++)
        dfd_auth_rule_free(&r->rules[i]);
    free(r->rules);
    free(r);
}

/* A reading of cfg's rules (one reference), or NULL when memory ran out. */
static dfd_auth_rules *auth_rules_copy(const dfd_config *cfg)
{
    dfd_auth_rules *r = calloc(1, sizeof(*r));

    if (r == NULL || (cfg->nauth_rules > 0 &&
                      (r->rules = calloc(cfg->nauth_rules, sizeof(*r->rules))) == NULL)) {
        free(r);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    for (; r->n < cfg->nauth_rules; r->n++) {
        const dfd_auth_rule *from = &cfg->auth_rules[r->n];
        dfd_auth_rule *to = &r->rules[r->n];
        to->kind = from->kind;
        if ((to->identity = strdup(from->identity)) == NULL ||
            (from->nglobs > 0 && (to->globs = calloc(from->nglobs, sizeof(char *))) == NULL))
            goto oom;
        for (; to->nglobs < from->nglobs; to->nglobs++)
            if ((to->globs[to->nglobs] = strdup(from->globs[to->nglobs])) == NULL)
                goto oom;
    }
    return r;
oom:
    r->n++; /* the one being copied is freed too */
    auth_rules_unref(r);
    return NULL;
}

/* 1 when r holds the same rules as cfg, in the same order. */
static int auth_rules_same(const dfd_auth_rules *r, const dfd_config *cfg)
{
    if (r->n != cfg->nauth_rules)
        return 0;
    for (size_t i = 0; i < r->n; i++) {
        const dfd_auth_rule *a = &r->rules[i], *b = &cfg->auth_rules[i];
        if (a->kind != b->kind || strcmp(a->identity, b->identity) != 0 ||
            a->nglobs != b->nglobs)
            return 0;
        for (size_t g = 0; g < a->nglobs; g++)
            if (strcmp(a->globs[g], b->globs[g]) != 0)
                return 0;
    }
    return 1;
}

int dfd_auth_init(dfd_server *srv, dfd_errors *errs)
{
    char why[600];

    pthread_mutex_init(&srv->auth.mu, NULL);
    atomic_init(&srv->auth.gen, 1);
    atomic_init(&srv->auth.required, srv->cfg->auth_required);
    atomic_init(&srv->auth.timeout_ms, srv->cfg->auth_timeout_ms);
    atomic_init(&srv->auth.max_failures, srv->cfg->auth_max_failures);
    if ((srv->auth.rules = auth_rules_copy(srv->cfg)) == NULL) {
        dfd_errors_add(errs, "[auth] rules: out of memory");
        return -1;
    }
    if (srv->cfg->auth_tokens == NULL)
        return 0;
    srv->auth.tokens = dfd_tokens_load(srv->cfg->auth_tokens, why, sizeof(why));
    if (srv->auth.tokens == NULL) {
        dfd_errors_add(errs, "[auth] tokens: %s", why);
        return -1;
    }
    return 0;
}

/* Reload: nc's rules replace the running ones when they differ. */
static void auth_rules_reload(dfd_server *srv, const dfd_config *nc)
{
    dfd_auth_rules *r, *old;

    pthread_mutex_lock(&srv->auth.mu);
    int same = srv->auth.rules != NULL && auth_rules_same(srv->auth.rules, nc);
    pthread_mutex_unlock(&srv->auth.mu);
    if (same)
        return;
    if ((r = auth_rules_copy(nc)) == NULL) {
        dfd_error("auth.reload_failed", "error=\"out of memory\" msg=\"the running rules "
                  "stay\"");
        return;
    }
    pthread_mutex_lock(&srv->auth.mu);
    old = srv->auth.rules;
    srv->auth.rules = r;
    atomic_fetch_add(&srv->auth.gen, 1);
    pthread_mutex_unlock(&srv->auth.mu);
    auth_rules_unref(old); /* connections that still use it hold their own reference */
    dfd_info("auth.rules_reloaded", "rules=%zu msg=\"the next call or hello of every "
             "connection is checked against these; connections keep their identity\"", r->n);
}

int dfd_auth_reload(dfd_server *srv, const dfd_config *nc)
{
    char why[600], q[700];
    dfd_tokens *t = NULL, *old;

    auth_rules_reload(srv, nc);
    if (nc->auth_tokens != NULL &&
        (t = dfd_tokens_load(nc->auth_tokens, why, sizeof(why))) == NULL) {
        dfd_error("auth.reload_failed", "error=%s msg=\"the running tokens stay\"",
                  dfd_logfmt_value(q, sizeof(q), why));
        return -1;
    }
    pthread_mutex_lock(&srv->auth.mu);
    old = srv->auth.tokens;
    srv->auth.tokens = t;
    pthread_mutex_unlock(&srv->auth.mu);
    dfd_tokens_free(old);
    if (nc->auth_tokens != NULL || old != NULL)
        dfd_info("auth.reloaded", "tokens=%zu msg=\"new daffi.auth calls use the tokens "
                 "just read\"", dfd_tokens_count(t));
    return 0;
}

void dfd_auth_reload_settings(dfd_server *srv, const dfd_config *nc)
{
    dfd_auth *a = &srv->auth;
    int changed = 0, required = atomic_load(&a->required);

    if (dfd_listen_same(srv->cfg, nc) && srv->nlisteners == nc->nlisten) {
        required = 0;
        for (size_t i = 0; i < srv->nlisteners; i++) {
            int want = nc->listen_auth != NULL && nc->listen_auth[i];
            changed |= srv->listeners[i].require_auth != want;
            srv->listeners[i].require_auth = want; /* read by the accepts, this thread */
            required |= want;
        }
    }
    changed |= atomic_load(&a->timeout_ms) != nc->auth_timeout_ms ||
               atomic_load(&a->max_failures) != nc->auth_max_failures ||
               atomic_load(&a->required) != required;
    if (!changed)
        return;
    atomic_store(&a->timeout_ms, nc->auth_timeout_ms);
    atomic_store(&a->max_failures, nc->auth_max_failures);
    atomic_store(&a->required, required);
    dfd_sweep_auth_changed(srv);
    char q[600];
    dfd_info("auth.settings_reloaded", "require=%s timeout_ms=%llu max_failures=%u "
             "msg=\"new connections take the listeners' require; every connection still "
             "anonymous is held to this timeout and max_failures\"",
             dfd_logfmt_value(q, sizeof(q), nc->auth_require != NULL ? nc->auth_require : "no"),
             (unsigned long long)nc->auth_timeout_ms, nc->auth_max_failures);
}

void dfd_auth_destroy(dfd_server *srv)
{
    dfd_tokens_free(srv->auth.tokens);
    srv->auth.tokens = NULL;
    auth_rules_unref(srv->auth.rules);
    srv->auth.rules = NULL;
    pthread_mutex_destroy(&srv->auth.mu);
}

const dfd_auth_rule *dfd_auth_rule_for(const dfd_auth_rule *rules, size_t n, int kind,
                                       const char *identity)
{
    const dfd_auth_rule *any = NULL;
    int some = 0;

    for (size_t i = 0; i < n; i++) {
        const dfd_auth_rule *r = &rules[i];
        if (r->kind != kind)
            continue;
        some = 1;
        if (strcmp(r->identity, identity) == 0)
            return r;
        if (strcmp(r->identity, "*") == 0)
            any = r;
    }
    return any != NULL ? any : some ? &auth_nothing : NULL;
}

/* Sets c's rules for identity from the current reading of the rules (taking a
 * reference to it when c held another). */
static void auth_rules_set(dfd_conn *c, const char *identity)
{
    dfd_auth *a = &c->loop->srv->auth;

    pthread_mutex_lock(&a->mu);
    dfd_auth_rules *r = a->rules, *old = c->rules;
    if (r != old)
        atomic_fetch_add(&r->refs, 1);
    c->rules_gen = atomic_load(&a->gen);
    pthread_mutex_unlock(&a->mu);
    c->rules = r;
    if (old != r)
        auth_rules_unref(old);
    c->may_call = dfd_auth_rule_for(r->rules, r->n, DFD_AUTH_CALL, identity);
    c->may_serve = dfd_auth_rule_for(r->rules, r->n, DFD_AUTH_SERVE, identity);
    c->may_member = dfd_auth_rule_for(r->rules, r->n, DFD_AUTH_MEMBER, identity);
}

void dfd_auth_refresh(dfd_conn *c)
{
    if (c->rules != NULL &&
        c->rules_gen != atomic_load_explicit(&c->loop->srv->auth.gen, memory_order_relaxed))
        auth_rules_set(c, c->identity != NULL ? c->identity : "anonymous");
}

void dfd_auth_conn_init(dfd_conn *c, int require_auth)
{
    c->auth_pending = require_auth != 0;
    c->open_tick = c->loop->tick;
    auth_rules_set(c, "anonymous");
}

void dfd_auth_identified(dfd_conn *c, const char *identity, const char *how)
{
    char q[300];
    char *copy = strdup(identity);

    if (copy == NULL)
        return; /* stays as it was: anonymous, or its earlier identity */
    free(c->identity);
    c->identity = copy;
    c->auth_pending = 0;
    auth_rules_set(c, identity);
    dfd_stat_add(&c->loop->stats, DFD_STAT_auth_ok, 1);
    dfd_info("auth.ok", "peer=%s identity=%s by=%s", c->peer,
             dfd_logfmt_value(q, sizeof(q), identity), how);
}

void dfd_auth_conn_free(dfd_conn *c)
{
    free(c->identity);
    c->identity = NULL;
    auth_rules_unref(c->rules);
    c->rules = NULL;
    c->may_call = c->may_serve = c->may_member = NULL;
}

static void pack_identity(msgpack_packer *pk, void *arg)
{
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "identity");
    daffi_pack_cstr(pk, arg);
}

/* daffi.auth [token]. */
int dfd_auth_control(dfd_conn *c, dfd_call *call)
{
    dfd_server *srv = c->loop->srv;
    const msgpack_object *tok = daffi_arg(&call->base, 0);
    const char *p, *name;
    size_t len;
    char found[72];

    if (call->notify)
        return 0; /* an answer is the point */
    if (tok == NULL || daffi_obj_text(tok, &p, &len) == -1 || daffi_arg(&call->base, 1)) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, "daffi.auth takes [token]");
        return 0;
    }
    pthread_mutex_lock(&srv->auth.mu);
    int have_tokens = srv->auth.tokens != NULL;
    name = dfd_tokens_match(srv->auth.tokens, p, len);
    if (name != NULL)
        snprintf(found, sizeof(found), "%s", name);
    pthread_mutex_unlock(&srv->auth.mu);
    if (name != NULL) {
        dfd_auth_identified(c, found, "token");
        dfd_control_answer(c, call, pack_identity, found);
        return 0;
    }
    c->auth_failures++;
    dfd_stat_add(&c->loop->stats, DFD_STAT_auth_failures, 1);
    const char *reason = have_tokens ? "unknown token"
                                     : "no tokens on this daffid ([auth] tokens is not set)";
    unsigned max_failures = atomic_load_explicit(&srv->auth.max_failures,
                                                 memory_order_relaxed);
    dfd_warn("auth.failed", "peer=%s failures=%u max_failures=%u reason=\"%s\"", c->peer,
             c->auth_failures, max_failures, reason);
    dfd_conn_error(c, call->msgid, DAFFI_E_DENIED, reason);
    if (c->auth_failures >= max_failures) {
        dfd_warn("auth.closed", "peer=%s failures=%u msg=\"max_failures refused tokens: "
                 "connection closed\"", c->peer, c->auth_failures);
        dfd_stat_add(&c->loop->stats, DFD_STAT_auth_timeouts, 1);
        dfd_conn_close(c, 1);
    }
    return 0;
}

void dfd_auth_timed_out(dfd_conn *c, unsigned long long waited_ms)
{
    dfd_warn("auth.timeout", "peer=%s waited_ms=%llu timeout_ms=%llu msg=\"not "
             "authenticated within [auth] timeout: connection closed\"", c->peer, waited_ms,
             (unsigned long long)atomic_load_explicit(&c->loop->srv->auth.timeout_ms,
                                                      memory_order_relaxed));
    dfd_stat_add(&c->loop->stats, DFD_STAT_auth_timeouts, 1);
}

int dfd_auth_rule_allows(const dfd_auth_rule *rule, const char *name, size_t len)
{
    char buf[256];

    if (rule == NULL)
        return 1;
    if (len >= sizeof(buf))
        return 0;
    memcpy(buf, name, len);
    buf[len] = '\0';
    for (size_t i = 0; i < rule->nglobs; i++)
        if (fnmatch(rule->globs[i], buf, 0) == 0)
            return 1;
    return 0;
}

/* Answers DENIED for what (a callback, a member name) and logs it with the identity. */
static void auth_deny(dfd_conn *c, dfd_call *call, const char *verb, const char *what,
                      size_t len)
{
    char msg[400], q[300], w[300], v[32];
    const char *id = c->identity != NULL ? c->identity : "anonymous";

    dfd_stat_add(&c->loop->stats, DFD_STAT_auth_denied, 1);
    dfd_warn("auth.denied", "peer=%s identity=%s action=%s name=%s", c->peer,
             dfd_logfmt_value(q, sizeof(q), id), dfd_logfmt_value(v, sizeof(v), verb),
             dfd_logfmt_value_n(w, sizeof(w), what, len > 255 ? 255 : len));
    snprintf(msg, sizeof(msg), "identity '%.100s' may not %s '%.*s' ([auth] rules)", id, verb,
             (int)(len > 200 ? 200 : len), what);
    if (!call->notify)
        dfd_conn_error(c, call->msgid, DAFFI_E_DENIED, msg);
}

int dfd_auth_check_call(dfd_conn *c, dfd_call *call)
{
    const char *m = call->base.method;
    size_t len = call->base.msg.method_len;
    int control = len >= 6 && memcmp(m, "daffi.", 6) == 0;

    if (c->auth_pending) {
        if (control && ((len == 10 && memcmp(m + 6, "auth", 4) == 0) ||
                        (len == 10 && memcmp(m + 6, "ping", 4) == 0)))
            return 0;
        dfd_stat_add(&c->loop->stats, DFD_STAT_auth_denied, 1);
        dfd_debug("auth.pending", "peer=%s method=%.*s", c->peer, (int)(len > 64 ? 64 : len),
                  m);
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_DENIED, "not authenticated: call "
                           "daffi.auth [token] first ([auth] require covers this listener)");
        return -1;
    }
    if (c->may_call == NULL)
        return 0;
    if (control) {
        /* the control methods that run a callback name it first */
        if (!((len == 10 && memcmp(m + 6, "call", 4) == 0) ||
              (len == 10 && memcmp(m + 6, "cast", 4) == 0) ||
              (len == 12 && memcmp(m + 6, "stream", 6) == 0)))
            return 0;
        const msgpack_object *first = daffi_arg(&call->base, 0);
        if (first == NULL || daffi_obj_text(first, &m, &len) == -1)
            return 0; /* the method answers BAD_ARGS */
    }
    if (dfd_auth_rule_allows(c->may_call, m, len))
        return 0;
    auth_deny(c, call, "call", m, len);
    return -1;
}

int dfd_auth_check_hello(dfd_conn *c, dfd_call *call, const char *name, size_t name_len,
                         const char *const *names, const size_t *lens, size_t n)
{
    if (!dfd_auth_rule_allows(c->may_member, name, name_len)) {
        auth_deny(c, call, "join as", name, name_len);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!dfd_auth_rule_allows(c->may_serve, names[i], lens[i])) {
            auth_deny(c, call, "serve", names[i], lens[i]);
            return -1;
        }
    return 0;
}
