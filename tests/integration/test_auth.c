/*
 * test_auth.c - authentication and authorization against real daffid processes
 * (server/auth.h): [auth] require = yes answers DENIED (code 9) to everything but
 * daffi.auth and daffi.ping until a token is presented; a good token (option or
 * DAFFI_TOKEN) authenticates, a bad one is DENIED and the connection closes after
 * max_failures; a silent connection closes at the auth timeout; call.ID rules; a
 * worker joining a router over TLS with its token_file, a rogue member refused (no
 * token, a name it may not take); require on one listener (tls) and not another
 * (unix); the admin socket's allow_uids / allow_gids; rules and allow lists changed by
 * a reload (SIGHUP) and applied to the next call of a connection that keeps its
 * identity, admin_denied counted; require, timeout and max_failures changed by a
 * reload and applied to the connections accepted after it.
 *
 * The service daemon of the group: listen tcp + unix, tokens bob (anything) and carol
 * (echo only), require = yes, timeout = 300ms, max_failures = 2.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/client.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/tcerts.h"

#define BOB "bobs-token-0123456789abcdef"
#define CAROL "carols-token-0123456789abcdef"
#define W1 "worker-one-token-0123456789"

typedef struct fixture {
    tdaemon d;
    char admin[200];
    tdaemon router, worker, other; /* the tests that start their own */
} fixture;

static int group_setup(void **state)
{
    fixture *f = tcluster_fixture_new(state, sizeof(*f));

    if (f == NULL || tdaemon_init(&f->d) == -1)
        return -1;
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->d.dir);
    if (tdaemon_write_file(&f->d, "tokens", "# name token\nbob %s\ncarol   %s\n", BOB,
                           CAROL) == -1 ||
        tdaemon_write_file(&f->d, "01-auth.ini",
                           "[admin]\nsocket = %s\n"
                           "[auth]\ntokens = tokens\nrequire = yes\ntimeout = 300ms\n"
                           "max_failures = 2\ncall.carol = echo, echo_*\n"
                           "call.bob = *\n", f->admin) == -1 ||
        tdaemon_add_plugin(&f->d, "echo", NULL) == -1 || tdaemon_start(&f->d, NULL) == -1)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *f = *state;

    return f == NULL ? 0 : tcluster_fixture_free(f, NULL, &f->d);
}

/* The daemons a test started, and DAFFI_TOKEN. */
static int test_teardown(void **state)
{
    fixture *f = *state;
    int rc = 0;

    unsetenv("DAFFI_TOKEN");
    if (tcluster_discard(&f->worker) == -1)
        rc = -1;
    if (tcluster_discard(&f->router) == -1)
        rc = -1;
    if (tcluster_discard(&f->other) == -1)
        rc = -1;
    return rc;
}

static daffi_client *connect_with(const char *address, const char *token)
{
    daffi_client_opts o;
    daffi_error err = DAFFI_ERROR_INIT;

    memset(&o, 0, sizeof(o));
    o.token = token;
    daffi_client *c = daffi_connect(address, &o, &err);
    if (c == NULL)
        fail_msg("connect %s: %s", address, err.message);
    return c;
}

/* Calls method("x") on c. Returns 0, or the error code (message into msg). */
static int call_x(daffi_client *c, const char *method, char *msg, size_t msglen)
{
    msgpack_object arg, params;
    daffi_result res;
    daffi_error err = DAFFI_ERROR_INIT;

    arg.type = MSGPACK_OBJECT_STR;
    arg.via.str.ptr = "x";
    arg.via.str.size = 1;
    params.type = MSGPACK_OBJECT_ARRAY;
    params.via.array.size = 1;
    params.via.array.ptr = &arg;
    if (daffi_rpc(c, method, &params, 3000, &res, &err) == 0) {
        daffi_result_free(&res);
        return 0;
    }
    snprintf(msg, msglen, "%s", err.message ? err.message : "");
    int code = err.code;
    daffi_error_clear(&err);
    return code;
}

static void test_denied_before_auth(void **state)
{
    fixture *f = *state;
    char msg[400];

    daffi_client *c = connect_with(f->d.tcp, NULL);
    daffi_error err = DAFFI_ERROR_INIT;
    assert_int_equal(daffi_ping(c, 3000, NULL, &err), 0);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), DAFFI_E_DENIED);
    assert_non_null(strstr(msg, "call daffi.auth [token] first"));
    daffi_close(c);
}

static void test_token_ok(void **state)
{
    fixture *f = *state;
    char msg[400];

    daffi_client *c = connect_with(f->d.tcp, BOB);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    daffi_close(c);
    assert_true(tcluster_log_contains(&f->d, "identity=bob by=token", 2000));
    /* DAFFI_TOKEN does the same, over the Unix socket too */
    setenv("DAFFI_TOKEN", CAROL, 1);
    c = connect_with(f->d.unix_addr, NULL);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    daffi_close(c);
    unsetenv("DAFFI_TOKEN");
    assert_true(tcluster_log_contains(&f->d, "identity=carol by=token", 2000));
}

static void test_token_bad(void **state)
{
    fixture *f = *state;
    char msg[400];

    daffi_client *c = connect_with(f->d.tcp, "not-a-token-of-anyone-here");
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), DAFFI_E_DENIED);
    assert_non_null(strstr(msg, "authentication refused (daffi.auth): unknown token"));
    daffi_close(c);
    assert_true(tcluster_log_contains(&f->d, "event=auth.failed peer=127.0.0.1:", 2000));
}

static void test_max_failures_close(void **state)
{
    fixture *f = *state;
    rawconn c;
    rawmsg m;

    expect_open(&c, f->d.tcp);
    rawmsg_init(&m);
    for (uint32_t id = 1; id <= 2; id++) {
        msgpack_packer *pk = rawmsg_request(&m, id, "daffi.auth", 1);
        msgpack_pack_str(pk, 24);
        msgpack_pack_str_body(pk, "wrong-token-wrong-token!", 24);
        expect_send(&c, &m);
        expect_error(&c, id, DAFFI_E_DENIED);
    }
    expect_closed(&c, NULL);
    rawmsg_destroy(&m);
    rawconn_close(&c);
    assert_true(tcluster_log_contains(&f->d, "event=auth.closed", 2000));
}

static void test_auth_timeout(void **state)
{
    fixture *f = *state;
    rawconn c;

    expect_open(&c, f->d.tcp);
    assert_int_equal(rawconn_wait_eof(&c, 3000, NULL), RAWCONN_EOF);
    rawconn_close(&c);
    assert_true(tcluster_log_contains(&f->d, "msg=\"not authenticated within [auth] timeout",
                                      2000));
}

static void test_call_rules(void **state)
{
    fixture *f = *state;
    char msg[400];
    rawconn c;
    rawmsg m;

    daffi_client *cl = connect_with(f->d.tcp, CAROL);
    assert_int_equal(call_x(cl, "echo", msg, sizeof(msg)), 0);
    assert_int_equal(call_x(cl, "digest", msg, sizeof(msg)), DAFFI_E_DENIED);
    assert_non_null(strstr(msg, "identity 'carol' may not call 'digest'"));
    daffi_close(cl);
    /* daffi.call names the callback first: the same rule */
    expect_open(&c, f->d.tcp);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.auth", 1);
    msgpack_pack_str(pk, strlen(CAROL));
    msgpack_pack_str_body(pk, CAROL, strlen(CAROL));
    expect_send(&c, &m);
    expect_response(&c);
    pk = rawmsg_request(&m, 2, "daffi.call", 2);
    msgpack_pack_str(pk, 6);
    msgpack_pack_str_body(pk, "digest", 6);
    msgpack_pack_array(pk, 0);
    expect_send(&c, &m);
    expect_error(&c, 2, DAFFI_E_DENIED);
    rawmsg_destroy(&m);
    rawconn_close(&c);
    assert_true(tcluster_log_contains(&f->d, "identity=carol action=call name=digest", 2000));
    assert_true(tcluster_admin_counter(f->admin, "auth_denied") >= 3);
    assert_true(tcluster_admin_counter(f->admin, "auth_ok") >= 3);
    assert_true(tcluster_admin_counter(f->admin, "auth_failures") >= 3);
    assert_true(tcluster_admin_counter(f->admin, "auth_timeouts") >= 2);
}

/* Sends daffi.hello as name with callback echo on a raw connection to address, after
 * daffi.auth with token (NULL: none). Returns the hello's error code (0: joined). */
static int raw_hello(const char *address, const char *token, const char *name)
{
    rawconn c;
    rawmsg m;
    uint32_t id = 1;

    expect_open(&c, address);
    rawmsg_init(&m);
    if (token != NULL) {
        msgpack_packer *pk = rawmsg_request(&m, id, "daffi.auth", 1);
        msgpack_pack_str(pk, strlen(token));
        msgpack_pack_str_body(pk, token, strlen(token));
        expect_send(&c, &m);
        expect_response(&c);
        id++;
    }
    msgpack_packer *pk = rawmsg_request(&m, id, "daffi.hello", 1);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "name", 4);
    msgpack_pack_str(pk, strlen(name));
    msgpack_pack_str_body(pk, name, strlen(name));
    msgpack_pack_str(pk, 9);
    msgpack_pack_str_body(pk, "callbacks", 9);
    msgpack_pack_array(pk, 1);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "echo", 4);
    expect_send(&c, &m);
    expect_response(&c);
    int code = 0;
    const msgpack_object *e = c.msg.error;
    if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size >= 1)
        code = (int)e->via.array.ptr[0].via.u64;
    rawmsg_destroy(&m);
    rawconn_close(&c);
    return code;
}

/* Makes d's certificates (in d's dir/certs) and the paths a TLS listener on d's port
 * needs: ca, crt and key (300 bytes each), tls_addr (64). */
static void tls_daemon_certs(tdaemon *d, tcerts *certs, char *ca, char *crt, char *key,
                             char *tls_addr)
{
    char dir[200];

    snprintf(dir, sizeof(dir), "%s/certs", d->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(tcerts_make(certs, dir), 0);
    tcerts_path(certs, "ca.pem", ca, 300);
    tcerts_path(certs, "server.pem", crt, 300);
    tcerts_path(certs, "server.key", key, 300);
    snprintf(tls_addr, 64, "tls://127.0.0.1:%d", d->port);
}

static void test_worker_over_tls_with_token(void **state)
{
    fixture *f = *state;
    tcerts certs;
    char ca[300], crt[300], key[300], extra[2000], tls_addr[64], msg[400];

    /* the router: TLS, tokens, require; worker1 may join as w1 serving echo's callbacks */
    assert_int_equal(tdaemon_init(&f->router), 0);
    tls_daemon_certs(&f->router, &certs, ca, crt, key, tls_addr);
    assert_int_equal(tdaemon_write_file(&f->router, "tokens", "worker1 %s\nbob %s\n"
                                        "carol %s\n", W1, BOB, CAROL), 0);
    assert_int_equal(tdaemon_write_file(&f->router, "00-server.ini",
                                        "[server]\nrole = router\nname = hub\n"
                                        "listen = %s, %s\nloops = 1\n"
                                        "state_file = none\nstartup_grace = 0\n"
                                        "[tls]\ncert = %s\nkey = %s\nca = %s\n"
                                        "verify_clients = optional\n"
                                        "[auth]\ntokens = tokens\nrequire = yes\n"
                                        "member.worker1 = w1\nmember.alice = w2\n"
                                        "serve.* = echo, echo_after, digest\n",
                                        tls_addr, f->router.unix_addr, crt, key, ca), 0);
    assert_int_equal(tdaemon_start(&f->router, NULL), 0);
    /* the worker: TLS to the router, the CA, its token */
    snprintf(extra, sizeof(extra), "[tls]\nca = %s\n[auth]\ntoken_file = w1.token\n", ca);
    assert_int_equal(tcluster_worker_init(&f->worker, tls_addr, "w1", extra), 0);
    assert_int_equal(tdaemon_write_file(&f->worker, "w1.token", "%s\n", W1), 0);
    assert_int_equal(tdaemon_add_plugin(&f->worker, "echo", NULL), 0);
    assert_int_equal(tdaemon_spawn(&f->worker, NULL), 0);
    assert_true(tcluster_log_contains(&f->router, "identity=worker1 by=token", 10000));
    /* a call through the router reaches the worker, once it registered */
    daffi_client *c = connect_with(f->router.unix_addr, BOB);
    int code = -1;
    for (int i = 0; i < 500 && code != 0; i++) {
        code = call_x(c, "echo", msg, sizeof(msg));
        if (code != 0)
            usleep(10000);
    }
    if (code != 0)
        fail_msg("echo through the router: %d %s", code, msg);
    daffi_close(c);
    /* a worker with a client certificate and no token: mTLS is its identity */
    snprintf(extra, sizeof(extra), "[tls]\nca = %s\ncert = %s\nkey = %s\n", ca,
             tcerts_path(&certs, "alice.pem", crt, sizeof(crt)),
             tcerts_path(&certs, "alice.key", key, sizeof(key)));
    assert_int_equal(tcluster_worker_init(&f->other, tls_addr, "w2", extra), 0);
    assert_int_equal(tdaemon_add_plugin(&f->other, "echo", NULL), 0);
    assert_int_equal(tdaemon_spawn(&f->other, NULL), 0);
    assert_true(tcluster_log_contains(&f->router, "identity=alice by=certificate", 10000));
    assert_true(tcluster_log_contains(&f->other, "event=worker.registered", 10000));
    /* rogue members: no token, and carol (no member rule) taking a name */
    assert_int_equal(raw_hello(f->router.unix_addr, NULL, "w2"), DAFFI_E_DENIED);
    assert_int_equal(raw_hello(f->router.unix_addr, CAROL, "w1"), DAFFI_E_DENIED);
    assert_true(tcluster_log_contains(&f->router, "identity=carol action=\"join as\" name=w1",
                                      2000));
}

/* The admin socket's status lists address, and only it, as requiring authentication. */
static void assert_auth_required(const char *admin, const char *address)
{
    json_t *r = tcluster_admin(admin, "status");
    assert_non_null(r);
    json_t *req = json_object_get(r, "auth_required");
    assert_int_equal(json_array_size(req), 1);
    assert_string_equal(json_string_value(json_array_get(req, 0)), address);
    json_decref(r);
}

/* [auth] require = tls: the TLS listener requires a token, the Unix one does not (its
 * connections run as "anonymous"). */
static void test_require_per_listener(void **state)
{
    fixture *f = *state;
    tcerts certs;
    char ca[300], crt[300], key[300], tls_addr[64], admin[200], msg[400];
    daffi_client_opts o;
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(tdaemon_init(&f->other), 0);
    tls_daemon_certs(&f->other, &certs, ca, crt, key, tls_addr);
    snprintf(admin, sizeof(admin), "%s/admin.sock", f->other.dir);
    assert_int_equal(tdaemon_write_file(&f->other, "tokens", "bob %s\n", BOB), 0);
    assert_int_equal(tdaemon_write_file(&f->other, "05-auth.ini",
                                        "[server]\nlisten = %s, %s\n[admin]\nsocket = %s\n"
                                        "[tls]\ncert = %s\nkey = %s\n"
                                        "[auth]\ntokens = tokens\nrequire = tls\n",
                                        tls_addr, f->other.unix_addr, admin, crt, key), 0);
    assert_int_equal(tdaemon_add_plugin(&f->other, "echo", NULL), 0);
    assert_int_equal(tdaemon_start(&f->other, NULL), 0);
    assert_true(tcluster_log_contains(&f->other, "auth=required", 2000));
    /* the Unix listener: no token needed */
    daffi_client *c = connect_with(f->other.unix_addr, NULL);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    daffi_close(c);
    /* the TLS one: DENIED until daffi.auth */
    memset(&o, 0, sizeof(o));
    o.tls_ca = ca;
    c = daffi_connect(tls_addr, &o, &err);
    if (c == NULL)
        fail_msg("connect %s: %s", tls_addr, err.message);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), DAFFI_E_DENIED);
    assert_non_null(strstr(msg, "[auth] require covers this listener"));
    daffi_close(c);
    o.token = BOB;
    c = daffi_connect(tls_addr, &o, &err);
    if (c == NULL)
        fail_msg("connect %s: %s", tls_addr, err.message);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    daffi_close(c);
    /* status names the listeners that require it */
    assert_auth_required(admin, tls_addr);
}

static void test_admin_allow_list(void **state)
{
    fixture *f = *state;
    char admin[200];

    assert_int_equal(tdaemon_init(&f->other), 0);
    snprintf(admin, sizeof(admin), "%s/admin.sock", f->other.dir);
    assert_int_equal(tdaemon_write_file(&f->other, "05-admin.ini",
                                        "[admin]\nsocket = %s\nallow_uids = %u\n", admin,
                                        getuid() == 65534 ? 65533u : 65534u), 0);
    assert_int_equal(tdaemon_start(&f->other, NULL), 0);
    json_t *r = tcluster_admin(admin, "status");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "error")), "denied");
    json_decref(r);
    assert_true(tcluster_log_contains(&f->other, "event=admin.denied uid=", 2000));
    assert_int_equal(tcluster_discard(&f->other), 0);
    /* our own gid is let in */
    assert_int_equal(tdaemon_init(&f->other), 0);
    snprintf(admin, sizeof(admin), "%s/admin.sock", f->other.dir);
    assert_int_equal(tdaemon_write_file(&f->other, "05-admin.ini",
                                        "[admin]\nsocket = %s\nallow_uids = 65534\n"
                                        "allow_gids = %u\n", admin, (unsigned)getgid()), 0);
    assert_int_equal(tdaemon_start(&f->other, NULL), 0);
    r = tcluster_admin(admin, "status");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "ok");
    json_decref(r);
}

/* A reload (SIGHUP) applies changed call rules to the next call of a connection that
 * keeps its identity, and changed admin allow lists to the next admin connection; the
 * refusals are counted (admin_denied). */
static void test_reload_rules_and_allow_lists(void **state)
{
    fixture *f = *state;
    char admin[200], msg[400];
    unsigned other_uid = getuid() == 65534 ? 65533u : 65534u;

    assert_int_equal(tdaemon_init(&f->other), 0);
    snprintf(admin, sizeof(admin), "%s/admin.sock", f->other.dir);
    assert_int_equal(tdaemon_write_file(&f->other, "tokens", "carol %s\n", CAROL), 0);
    assert_int_equal(tdaemon_write_file(&f->other, "05-auth.ini",
                                        "[admin]\nsocket = %s\nallow_uids = %u\n"
                                        "[auth]\ntokens = tokens\ncall.carol = echo\n",
                                        admin, other_uid), 0);
    assert_int_equal(tdaemon_add_plugin(&f->other, "echo", NULL), 0);
    assert_int_equal(tdaemon_start(&f->other, NULL), 0);
    daffi_client *c = connect_with(f->other.tcp, CAROL);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    assert_int_equal(call_x(c, "digest", msg, sizeof(msg)), DAFFI_E_DENIED);
    json_t *r = tcluster_admin(admin, "status");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "error")), "denied");
    json_decref(r);
    /* carol may call digest and no longer echo; our gid may use the admin socket */
    assert_int_equal(tdaemon_write_file(&f->other, "05-auth.ini",
                                        "[admin]\nsocket = %s\nallow_uids = %u\n"
                                        "allow_gids = %u\n"
                                        "[auth]\ntokens = tokens\ncall.carol = digest\n",
                                        admin, other_uid, (unsigned)getgid()), 0);
    assert_int_equal(kill(f->other.pid, SIGHUP), 0);
    assert_true(tcluster_log_contains(&f->other, "event=auth.rules_reloaded rules=1", 5000));
    assert_true(tcluster_log_contains(&f->other, "event=admin.allow_reloaded allow_uids=1 "
                                                 "allow_gids=1", 5000));
    assert_false(tcluster_log_contains(&f->other, "setting=auth.rules", 0));
    /* the same connection, still carol: the new rules */
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), DAFFI_E_DENIED);
    assert_non_null(strstr(msg, "identity 'carol' may not call 'echo'"));
    assert_int_not_equal(call_x(c, "digest", msg, sizeof(msg)), DAFFI_E_DENIED);
    daffi_close(c);
    r = tcluster_admin(admin, "status");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "ok");
    json_decref(r);
    assert_int_equal(tcluster_admin_counter(admin, "admin_denied"), 1);
}

/* A reload (SIGHUP) applies [auth] require, timeout and max_failures to the
 * connections accepted after it; one accepted before keeps what it had (here:
 * anonymous, not required to authenticate). */
static void test_reload_require_timeout_max_failures(void **state)
{
    fixture *f = *state;
    char admin[200], msg[400];
    rawconn rc;
    rawmsg m;

    assert_int_equal(tdaemon_init(&f->other), 0);
    snprintf(admin, sizeof(admin), "%s/admin.sock", f->other.dir);
    assert_int_equal(tdaemon_write_file(&f->other, "tokens", "bob %s\n", BOB), 0);
    assert_int_equal(tdaemon_write_file(&f->other, "05-auth.ini",
                                        "[admin]\nsocket = %s\n[auth]\ntokens = tokens\n",
                                        admin), 0);
    assert_int_equal(tdaemon_add_plugin(&f->other, "echo", NULL), 0);
    assert_int_equal(tdaemon_start(&f->other, NULL), 0);
    daffi_client *before = connect_with(f->other.tcp, NULL);
    assert_int_equal(call_x(before, "echo", msg, sizeof(msg)), 0);

    assert_int_equal(tdaemon_write_file(&f->other, "05-auth.ini",
                                        "[admin]\nsocket = %s\n[auth]\ntokens = tokens\n"
                                        "require = tcp\ntimeout = 400ms\nmax_failures = 1\n",
                                        admin), 0);
    assert_int_equal(kill(f->other.pid, SIGHUP), 0);
    assert_true(tcluster_log_contains(&f->other, "event=auth.settings_reloaded require=tcp "
                                      "timeout_ms=400 max_failures=1", 5000));
    assert_true(tcluster_log_contains(&f->other, "event=reload.done", 5000));
    assert_false(tcluster_log_contains(&f->other, "setting=auth.", 0));
    /* a new TCP connection must authenticate; the Unix listener is not covered */
    daffi_client *c = connect_with(f->other.tcp, NULL);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), DAFFI_E_DENIED);
    assert_non_null(strstr(msg, "[auth] require covers this listener"));
    daffi_close(c);
    c = connect_with(f->other.tcp, BOB);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    daffi_close(c);
    c = connect_with(f->other.unix_addr, NULL);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    daffi_close(c);
    assert_auth_required(admin, f->other.tcp);
    /* max_failures = 1: the first refused token closes */
    expect_open(&rc, f->other.tcp);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.auth", 1);
    msgpack_pack_str(pk, 24);
    msgpack_pack_str_body(pk, "wrong-token-wrong-token!", 24);
    expect_send(&rc, &m);
    expect_error(&rc, 1, DAFFI_E_DENIED);
    expect_closed(&rc, NULL);
    rawmsg_destroy(&m);
    rawconn_close(&rc);
    assert_true(tcluster_log_contains(&f->other, "failures=1 max_failures=1", 2000));
    /* timeout = 400ms (the sweep's period shortened for it): closed anonymous */
    expect_open(&rc, f->other.tcp);
    assert_int_equal(rawconn_wait_eof(&rc, 3000, NULL), RAWCONN_EOF);
    rawconn_close(&rc);
    assert_true(tcluster_log_contains(&f->other, "timeout_ms=400 msg=\"not authenticated "
                                      "within [auth] timeout", 2000));
    /* the connection from before the reload: still anonymous, still served, not timed out */
    assert_int_equal(call_x(before, "echo", msg, sizeof(msg)), 0);
    daffi_close(before);

    /* and back: require no longer covers tcp */
    assert_int_equal(tdaemon_write_file(&f->other, "05-auth.ini",
                                        "[admin]\nsocket = %s\n[auth]\ntokens = tokens\n",
                                        admin), 0);
    assert_int_equal(kill(f->other.pid, SIGHUP), 0);
    assert_true(tcluster_log_contains(&f->other, "event=auth.settings_reloaded require=no", 5000));
    c = connect_with(f->other.tcp, NULL);
    assert_int_equal(call_x(c, "echo", msg, sizeof(msg)), 0);
    daffi_close(c);
}

static void test_check_config(void **state)
{
    fixture *f = *state;
    char out[4096];
    static const char *const no_way[] = { "auth.tokens=", NULL };
    static const char *const bad_rule[] = { "auth.call.bad name=x", NULL };
    static const char *const bad_require[] = { "auth.require=tcp://127.0.0.1:1", NULL };

    assert_int_equal(tdaemon_write_file(&f->d, "bad-tokens", "bob short\n"), 0);
    static const char *const bad_tokens[] = { "auth.tokens=bad-tokens", NULL };
    assert_int_not_equal(tdaemon_check(&f->d, bad_tokens, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "-o:1: [auth] tokens: "));
    assert_non_null(strstr(out, "bad-tokens: line 1: token shorter than 16 characters"));
    assert_int_not_equal(tdaemon_check(&f->d, no_way, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "[auth] require: require covers listen item 1 (tcp://), "
                               "but nothing can authenticate there"));
    assert_int_not_equal(tdaemon_check(&f->d, bad_require, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "-o:1: [auth] require: item 1 of the list is an address "
                                "that is not one of [server] listen"));
    assert_int_not_equal(tdaemon_check(&f->d, bad_rule, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "the identity after the dot must be"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_denied_before_auth),
        cmocka_unit_test(test_token_ok),
        cmocka_unit_test(test_token_bad),
        cmocka_unit_test(test_max_failures_close),
        cmocka_unit_test(test_auth_timeout),
        cmocka_unit_test(test_call_rules),
        cmocka_unit_test_teardown(test_worker_over_tls_with_token, test_teardown),
        cmocka_unit_test_teardown(test_require_per_listener, test_teardown),
        cmocka_unit_test_teardown(test_admin_allow_list, test_teardown),
        cmocka_unit_test_teardown(test_reload_rules_and_allow_lists, test_teardown),
        cmocka_unit_test_teardown(test_reload_require_timeout_max_failures, test_teardown),
        cmocka_unit_test(test_check_config),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
