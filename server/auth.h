/*
 * auth.h - who is on a connection and what it may do.
 *
 * Identities. A connection accepted on a listener is anonymous until it presents a
 * token with daffi.auth ([auth] tokens: a file of "name token" lines; the name is the
 * identity) or a client certificate that verified on a tls:// listener (the identity is
 * its CN, else its first DNS or email name; conn-tls.c). Tokens are kept as SHA-256
 * digests and compared in constant time, every entry every time.
 *
 * [auth] require (yes, or the listeners it names: config-security.c): until a
 * connection accepted on such a listener is authenticated, everything but daffi.auth
 * and daffi.ping is answered DENIED (code 9); it is closed after max_failures refused
 * tokens, or when it is still anonymous at [auth] timeout (the loop's sweep). On the
 * other listeners a connection runs as "anonymous" (its rules) until it authenticates.
 *
 * Authorization ([auth] call.ID, serve.ID, member.ID = glob, glob...): which callbacks
 * an identity may call (plain calls and daffi.call, daffi.cast, daffi.stream), expose
 * as a router's member (daffi.hello's callbacks) and under which member names it may
 * join. "anonymous" names an unauthenticated connection, "*" every identity without a
 * rule of its own. A kind with no rule at all is unrestricted; once one is written, an
 * identity that no rule of that kind covers may do nothing of it. The tokens file and
 * the rules are read again at every reload: new daffi.auth calls use the new tokens;
 * a connection keeps its identity and its next call (or hello) is checked against the
 * new rules (each connection holds a reference to the reading of the rules it last
 * used, and takes the current one when the generation moved).
 *
 * The connections of daffid's own links (its children, a worker's link to the router)
 * are not a listener's: no rule applies to them.
 */
#ifndef DFD_AUTH_H
#define DFD_AUTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "call-t.h"
#include "config-t.h"
#include "conn.h"

struct dfd_server;

/* ---- tokens (auth-tokens.c) ---------------------------------------------------------- */

typedef struct dfd_tokens dfd_tokens;

/* Parses a tokens file's text (len bytes): "name token" lines, '#' comments and blank
 * lines skipped; a name is 1-64 of [A-Za-z0-9_.@-], a token 16-1024 printable
 * characters without spaces; names and tokens unique. Returns the set (free with
 * dfd_tokens_free), or NULL with "line N: what is wrong" in why. */
dfd_tokens *dfd_tokens_parse(const char *text, size_t len, char *why, size_t whylen);
/* Reads and parses the file at path; the reason then starts with the path. */
dfd_tokens *dfd_tokens_load(const char *path, char *why, size_t whylen);
void dfd_tokens_free(dfd_tokens *t);
size_t dfd_tokens_count(const dfd_tokens *t);
/* Returns the name of the entry whose token is tok (len bytes), or NULL. Takes the same
 * time whatever tok is and whichever entry matches. */
const char *dfd_tokens_match(const dfd_tokens *t, const char *tok, size_t len);

/* ---- the server's part (auth.c) ------------------------------------------------------ */

/* One reading of the [auth] rules: copies of a configuration's, shared by the server
 * (the current one) and the connections that last checked against it. */
typedef struct dfd_auth_rules {
    atomic_uint refs;
    dfd_auth_rule *rules;      /* owned */
    size_t n;
} dfd_auth_rules;

typedef struct dfd_auth {
    pthread_mutex_t mu;
    dfd_tokens *tokens;        /* the current set (NULL: no tokens file); under mu */
    dfd_auth_rules *rules;     /* the current rules; one reference; under mu */
    atomic_uint gen;           /* moves each time rules is replaced */
    /* [auth] require's sum, timeout and max_failures as last (re)loaded: read by the
     * loops (sweep.c, daffi.auth) in place of the start's configuration */
    atomic_int required;       /* some listener requires authentication */
    atomic_uint_fast64_t timeout_ms;
    atomic_uint max_failures;
} dfd_auth;

/* Reads [auth] tokens and copies the rules. Returns 0, or -1 with the reason in errs. */
int dfd_auth_init(struct dfd_server *srv, dfd_errors *errs);
/* Reload: reads nc's tokens file again (on failure the running set stays, logged, -1)
 * and takes nc's rules when they differ (auth.rules_reloaded). */
int dfd_auth_reload(struct dfd_server *srv, const dfd_config *nc);
/* Reload: nc's [auth] require (which listeners require authentication), timeout and
 * max_failures replace the running ones (auth.settings_reloaded). New connections
 * take the listeners' new require; a connection accepted before keeps its own, but
 * the new timeout (from each loop's next sweep) and max_failures (at its next refused
 * token) hold for every connection still anonymous. require waits for a restart when
 * [server] listen changed too (its items name listen's). Main thread. */
void dfd_auth_reload_settings(struct dfd_server *srv, const dfd_config *nc);
void dfd_auth_destroy(struct dfd_server *srv);

/* A connection accepted on a listener: anonymous, pending when [auth] require covers
 * that listener (require_auth); the rules apply to it from now on. */
void dfd_auth_conn_init(dfd_conn *c, int require_auth);
/* Before a call or a hello of a listener's connection (dispatch.c, membership-hello.c):
 * when the rules were reloaded since c last looked, c's rules are set again from the
 * current ones for its identity. One relaxed load when nothing changed. */
void dfd_auth_refresh(dfd_conn *c);
/* c authenticated as identity (how: "token", "certificate"): its rules apply from now
 * on. Logged (auth.ok) and counted. */
void dfd_auth_identified(dfd_conn *c, const char *identity, const char *how);
/* Frees what c holds of authentication (its reap). */
void dfd_auth_conn_free(dfd_conn *c);

/* daffi.auth [token]: the control method (control.c's table). */
int dfd_auth_control(dfd_conn *c, dfd_call *call);

/* The sweep: c stayed anonymous past [auth] timeout. Logs and counts (the caller
 * closes c). */
void dfd_auth_timed_out(dfd_conn *c, unsigned long long waited_ms);

/* Checks a request or notification on c before it runs (dispatch.c): a pending
 * connection may only send daffi.auth and daffi.ping; an identity with call rules only
 * call what they allow (the method, or params[0] of daffi.call, daffi.cast and
 * daffi.stream). Returns 0 to go on, or -1 after answering DENIED (logged, counted). */
int dfd_auth_check_call(dfd_conn *c, dfd_call *call);

/* Checks a hello's member name and callbacks (names[i], lens[i]) against c's member and
 * serve rules (membership-hello.c). Returns 0, or -1 after answering DENIED. */
int dfd_auth_check_hello(dfd_conn *c, dfd_call *call, const char *name, size_t name_len,
                         const char *const *names, const size_t *lens, size_t n);

/* 1 when rule (NULL: no rule of its kind, anything goes) lets name (len bytes) pass. */
int dfd_auth_rule_allows(const dfd_auth_rule *rule, const char *name, size_t len);

/* The rule of kind for identity among rules[n]: its own, else "*"'s; when no rule of
 * that kind exists at all NULL (anything goes); when rules exist but none covers
 * identity, a rule allowing nothing. */
const dfd_auth_rule *dfd_auth_rule_for(const dfd_auth_rule *rules, size_t n, int kind,
                                       const char *identity);
/* Frees what r owns and zeroes it (the configuration's rules and the copies here). */
void dfd_auth_rule_free(dfd_auth_rule *r);

#endif /* DFD_AUTH_H */
