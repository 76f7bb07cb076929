/*
 * test_tls.c - TLS listeners against a real daffid (server/tls.h, conn-tls.h): calls
 * over tls:// from libdaffi and daffictl, the server's certificate checked by name
 * (IP and DNS), mTLS identity, and every refusal with its log line and counter: an
 * untrusted server for the client, an expired and an untrusted client certificate, a
 * plaintext client on the TLS port, a TLS client on the plaintext port, a handshake
 * that never finishes (handshake_timeout), [tls] ktls with the kernel taking the
 * records or, where it has no TLS, the fallback and its one warning per loop, and for the asynchronous client one that
 * never finishes on the server's side (its loop runs on, the connect timeout ends
 * it); `daffid -t` on bad [tls] settings; the
 * certificates reloaded on SIGHUP while a connection stays open.
 *
 * The certificates are made at set-up with the openssl command line (tcerts.h). One
 * daffid: listen = tls://127.0.0.1:P, tcp://127.0.0.1:P2, unix://; verify_clients =
 * optional; handshake_timeout = 300ms. The reload test runs last: it changes the
 * server's certificate.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <msgpack.h>

#include <event2/event.h>

#include <daffi/client.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/rawconn.h"
#include "../support/tcerts.h"

typedef struct fixture {
    tdaemon d;
    tcerts certs;
    int plain_port;
    char tls_addr[64];     /* tls://127.0.0.1:P */
    char plain_tls[64];    /* tls://127.0.0.1:P2: TLS to the plaintext port */
    char tls_as_tcp[64];   /* tcp://127.0.0.1:P: plaintext to the TLS port */
    char admin[200];
} fixture;

static const char *cert(const fixture *f, const char *name)
{
    static char buf[8][300];
    static int next;
    return tcerts_path(&f->certs, name, buf[next++ % 8], sizeof(buf[0]));
}

static int group_setup(void **state)
{
    fixture *f = tcluster_fixture_new(state, sizeof(*f));
    char dir[240];

    if (f == NULL || tdaemon_init(&f->d) == -1)
        return -1;
    snprintf(dir, sizeof(dir), "%s/certs", f->d.dir);
    if (mkdir(dir, 0700) == -1 || tcerts_make(&f->certs, dir) == -1)
        return -1;
    f->plain_port = tdaemon_free_port();
    snprintf(f->tls_addr, sizeof(f->tls_addr), "tls://127.0.0.1:%d", f->d.port);
    snprintf(f->plain_tls, sizeof(f->plain_tls), "tls://127.0.0.1:%d", f->plain_port);
    snprintf(f->tls_as_tcp, sizeof(f->tls_as_tcp), "tcp://127.0.0.1:%d", f->d.port);
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->d.dir);
    if (tdaemon_write_file(&f->d, "01-tls.ini",
                           "[server]\n"
                           "listen = %s, tcp://127.0.0.1:%d, %s\n"
                           "[admin]\n"
                           "socket = %s\n"
                           "[tls]\n"
                           "cert = certs/server.pem\n"
                           "key = certs/server.key\n"
                           "ca = certs/ca.pem\n"
                           "verify_clients = optional\n"
                           "handshake_timeout = 300ms\n",
                           f->tls_addr, f->plain_port, f->d.unix_addr, f->admin) == -1 ||
        tdaemon_add_plugin(&f->d, "echo", NULL) == -1 ||
        tdaemon_start(&f->d, NULL) == -1)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *f = *state;

    return f == NULL ? 0 : tcluster_fixture_free(f, NULL, &f->d);
}

/* Connects to address with the given CA and client certificate (either may be NULL).
 * Returns the client or NULL (err set). */
static daffi_client *tls_connect(const char *address, const char *ca, const char *crt,
                                 const char *key, daffi_error *err)
{
    daffi_client_opts o;

    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = 3000;
    o.tls_ca = ca;
    o.tls_cert = crt;
    o.tls_key = key;
    return daffi_connect(address, &o, err);
}

/* Makes params the array [s] (arg holds the string). */
static void str_params(msgpack_object *params, msgpack_object *arg, const char *s)
{
    arg->type = MSGPACK_OBJECT_STR;
    arg->via.str.ptr = s;
    arg->via.str.size = (uint32_t)strlen(s);
    params->type = MSGPACK_OBJECT_ARRAY;
    params->via.array.size = 1;
    params->via.array.ptr = arg;
}

/* echo("hi") on c: asserts the answer. */
static void assert_echo(daffi_client *c)
{
    msgpack_object arg, params;
    daffi_result res;
    daffi_error err = DAFFI_ERROR_INIT;

    str_params(&params, &arg, "hi");
    if (daffi_rpc(c, "echo", &params, 3000, &res, &err) != 0)
        fail_msg("echo over TLS: %s", err.message ? err.message : "?");
    assert_int_equal(res.obj.type, MSGPACK_OBJECT_STR);
    assert_int_equal(res.obj.via.str.size, 2);
    assert_memory_equal(res.obj.via.str.ptr, "hi", 2);
    daffi_result_free(&res);
}

/* A call fails on c, or c did not connect: the refusal of a TLS peer. */
static void assert_refused(daffi_client *c, daffi_error *err)
{
    if (c != NULL) {
        int rc = daffi_ping(c, 3000, NULL, err);
        daffi_close(c);
        assert_int_equal(rc, -1);
    }
    assert_int_equal(err->code, DAFFI_E_UNAVAILABLE);
}

static void test_call_roundtrip(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;
    char localhost[64];

    daffi_client *c = tls_connect(f->tls_addr, cert(f, "ca.pem"), NULL, NULL, &err);
    if (c == NULL)
        fail_msg("connect %s: %s", f->tls_addr, err.message);
    assert_echo(c);
    /* a large message spans many TLS records, both ways */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    size_t big = 3u << 20;
    char *blob = malloc(big);
    assert_non_null(blob);
    memset(blob, 'x', big);
    msgpack_pack_bin(&pk, big);
    msgpack_pack_bin_body(&pk, blob, big);
    daffi_result res;
    assert_int_equal(daffi_rpc_raw(c, "echo", sb.data, sb.size, 5000, &res, &err), 0);
    assert_int_equal(res.obj.type, MSGPACK_OBJECT_BIN);
    assert_int_equal(res.obj.via.bin.size, big);
    assert_memory_equal(res.obj.via.bin.ptr, blob, big);
    daffi_result_free(&res);
    free(blob);
    msgpack_sbuffer_destroy(&sb);
    daffi_close(c);
    /* by DNS name: the certificate's SAN names localhost too */
    snprintf(localhost, sizeof(localhost), "tls://localhost:%d", f->d.port);
    c = tls_connect(localhost, cert(f, "ca.pem"), NULL, NULL, &err);
    if (c == NULL)
        fail_msg("connect %s: %s", localhost, err.message);
    assert_echo(c);
    daffi_close(c);
}

/* The asynchronous client's reply: the echoed string, and the loop stops. */
static void on_async_echo(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    int *done = arg;
    (void)c;
    *done = res != NULL && res->obj.type == MSGPACK_OBJECT_STR &&
                    res->obj.via.str.size == 5 && memcmp(res->obj.via.str.ptr, "async", 5) == 0
                ? 1 : -1;
    if (err != NULL)
        fprintf(stderr, "async echo: %s\n", err->message ? err->message : "?");
}

static void test_async_client(void **state)
{
    fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client_opts o;
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object arg, params;
    int done = 0;

    memset(&o, 0, sizeof(o));
    o.tls_ca = cert(f, "ca.pem");
    daffi_client *c = daffi_client_new(base, f->tls_addr, &o, &err);
    if (c == NULL)
        fail_msg("daffi_client_new: %s", err.message);
    str_params(&params, &arg, "async");
    assert_int_equal(daffi_rpc_async(c, "echo", &params, 3000, on_async_echo, &done, &err), 0);
    for (int i = 0; i < 3000 && done == 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    assert_int_equal(done, 1);
    daffi_close(c);
    event_base_free(base);
}

/* ---- the asynchronous client's handshake runs on its loop ---------------------- */

typedef struct stall {
    struct event_base *base;
    struct event *tick;
    int ticks;            /* the loop's other timer fired this often */
    int done;             /* the queued call completed: 1 with the expected error */
    int64_t done_ms;      /* ... this long after it was made */
    int64_t t0_ms;
    char why[300];
} stall;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((stall *)arg)->ticks++;
}

static void on_stalled_call(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    stall *s = arg;
    (void)c;
    s->done = res == NULL && err != NULL && err->code == DAFFI_E_UNAVAILABLE ? 1 : -1;
    s->done_ms = mono_ms() - s->t0_ms;
    snprintf(s->why, sizeof(s->why), "%s", err != NULL && err->message ? err->message : "");
    event_base_loopbreak(s->base);
}

/* A TLS server that accepts (the kernel does: the socket listens) and never answers
 * the ClientHello. The client's loop keeps running its other timer every 10 ms
 * while the handshake waits, the call made meanwhile waits in the queue, and both end
 * at the connect timeout (600 ms) with a reason that says so. */
static void test_async_handshake_runs_on_the_loop(void **state)
{
    fixture *f = *state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sin);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "tls://127.0.0.1:%d", ntohs(sin.sin_port));

    stall s = {0};
    s.base = event_base_new();
    s.tick = event_new(s.base, -1, EV_PERSIST, on_tick, &s);
    struct timeval ten_ms = {0, 10000};
    event_add(s.tick, &ten_ms);
    daffi_client_opts o;
    daffi_error err = DAFFI_ERROR_INIT;
    memset(&o, 0, sizeof(o));
    o.tls_ca = cert(f, "ca.pem");
    o.connect_timeout_ms = 600;
    s.t0_ms = mono_ms();
    daffi_client *c = daffi_client_new(s.base, addr, &o, &err);
    if (c == NULL)
        fail_msg("daffi_client_new: %s", err.message);
    assert_int_equal(daffi_ping_async(c, 5000, on_stalled_call, &s, &err), 0);
    /* the loop waits in the kernel between events: a handshake that blocked inside a
     * callback would hold every tick back until it gave up */
    struct timeval guard = {10, 0};
    event_base_loopexit(s.base, &guard);
    event_base_dispatch(s.base);
    if (s.done != 1)
        fail_msg("the queued call: done=%d why=%s", s.done, s.why);
    assert_non_null(strstr(s.why, "TLS handshake timed out"));
    assert_true(s.done_ms >= 550);
    assert_true(s.done_ms < 5000);
    /* 600 ms of 10 ms ticks: most of them, even on a loaded machine */
    if (s.ticks < 20)
        fail_msg("the loop ran its timer %d times in %lld ms", s.ticks, (long long)s.done_ms);
    daffi_close(c);
    event_free(s.tick);
    event_base_free(s.base);
    close(lfd);
}

static void test_daffictl_over_tls(void **state)
{
    fixture *f = *state;
    char cmd[8192], out[256] = "";

    snprintf(cmd, sizeof(cmd), "%s/daffictl -s %s --tls-ca %s call echo '\"over tls\"'",
             f->d.build, f->tls_addr, cert(f, "ca.pem"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, "\"over tls\"\n");
    /* the environment's CA does the same */
    snprintf(cmd, sizeof(cmd), "DAFFI_TLS_CA=%s %s/daffictl -s %s ping >/dev/null",
             cert(f, "ca.pem"), f->d.build, f->tls_addr);
    assert_int_equal(system(cmd), 0);
    /* without the CA the server is not trusted: UNAVAILABLE, exit 2 */
    snprintf(cmd, sizeof(cmd), "%s/daffictl -s %s ping 2>/dev/null", f->d.build,
             f->tls_addr);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 2);
}

static void test_mtls_identity(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;

    daffi_client *c = tls_connect(f->tls_addr, cert(f, "ca.pem"), cert(f, "alice.pem"),
                                  cert(f, "alice.key"), &err);
    if (c == NULL)
        fail_msg("connect with alice's certificate: %s", err.message);
    assert_echo(c);
    daffi_close(c);
    assert_true(tcluster_log_contains(&f->d, "event=auth.ok peer=127.0.0.1:", 2000));
    assert_true(tcluster_log_contains(&f->d, "identity=alice by=certificate", 2000));
}

static void test_untrusted_server(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;

    /* the client trusts another CA: the server's certificate does not verify */
    daffi_client *c = tls_connect(f->tls_addr, cert(f, "ca2.pem"), NULL, NULL, &err);
    assert_null(c);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "certificate verify failed"));
    daffi_error_clear(&err);
    /* the server hears the client's alert */
    assert_true(tcluster_log_contains(&f->d, "reason=\"tlsv1 alert unknown ca\"", 2000));
}

static void test_bad_client_certificates(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;

    daffi_client *c = tls_connect(f->tls_addr, cert(f, "ca.pem"), cert(f, "expired.pem"),
                                  cert(f, "expired.key"), &err);
    assert_refused(c, &err);
    daffi_error_clear(&err);
    assert_true(tcluster_log_contains(&f->d, "reason=\"certificate verify failed: "
                                      "certificate has expired\"", 2000));
    c = tls_connect(f->tls_addr, cert(f, "ca.pem"), cert(f, "rogue.pem"),
                    cert(f, "rogue.key"), &err);
    assert_refused(c, &err);
    daffi_error_clear(&err);
    assert_true(tcluster_log_contains(&f->d, "reason=\"certificate verify failed: self-signed "
                                      "certificate\"", 2000));
    /* the listener serves on */
    c = tls_connect(f->tls_addr, cert(f, "ca.pem"), NULL, NULL, &err);
    assert_non_null(c);
    assert_echo(c);
    daffi_close(c);
}

static void test_plaintext_on_tls_port(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;

    daffi_client *c = tls_connect(f->tls_as_tcp, NULL, NULL, NULL, &err);
    assert_refused(c, &err);
    daffi_error_clear(&err);
    assert_true(tcluster_log_contains(&f->d, "reason=\"not TLS: the client speaks plaintext "
                                      "on a TLS listener (first byte 0x94", 2000));
}

static void test_tls_on_plaintext_port(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;

    daffi_client *c = tls_connect(f->plain_tls, cert(f, "ca.pem"), NULL, NULL, &err);
    assert_refused(c, &err);
    daffi_error_clear(&err);
    assert_true(tcluster_log_contains(&f->d, "event=conn.tls_on_plaintext peer=127.0.0.1:",
                                      2000));
}

static void test_handshake_timeout(void **state)
{
    fixture *f = *state;
    rawconn rc;

    /* the first bytes of a ClientHello record, and then nothing */
    assert_int_equal(rawconn_open(&rc, f->tls_as_tcp, 2000), 0);
    assert_int_equal(rawconn_send(&rc, "\x16\x03\x01\x00\x80", 5), 0);
    assert_int_equal(rawconn_wait_eof(&rc, 3000, NULL), RAWCONN_EOF);
    rawconn_close(&rc);
    assert_true(tcluster_log_contains(&f->d, "reason=\"handshake not finished within "
                                      "handshake_timeout", 2000));
}

static void test_counters(void **state)
{
    fixture *f = *state;

    assert_true(tcluster_admin_counter(f->admin, "tls_handshakes") >= 5);
    assert_true(tcluster_admin_counter(f->admin, "tls_handshake_failures") >= 5);
    assert_true(tcluster_admin_counter(f->admin, "tls_plaintext_refused") >= 1);
    assert_true(tcluster_admin_counter(f->admin, "tls_on_plaintext_refused") >= 1);
    assert_true(tcluster_admin_counter(f->admin, "tls_handshake_timeouts") >= 1);
}

static void test_check_config(void **state)
{
    fixture *f = *state;
    char out[4096];
    static const char *const missing[] = { "tls.cert=/nonexistent/server.pem", NULL };
    static const char *const unpaired[] = { "tls.key=", NULL };
    static const char *const verify[] = { "tls.verify_clients=sometimes", NULL };
    static const char *const ktls[] = { "tls.ktls=maybe", NULL };

    assert_int_not_equal(tdaemon_check(&f->d, missing, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "-o:1: [tls] cert /nonexistent/server.pem: No such file"));
    assert_int_not_equal(tdaemon_check(&f->d, unpaired, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "01-tls.ini:2: [server] listen: a tls:// listener needs "
                                "[tls] cert and key"));
    assert_int_not_equal(tdaemon_check(&f->d, verify, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "-o:1: [tls] verify_clients: must be one of: no, optional, "
                                "require"));
    assert_int_not_equal(tdaemon_check(&f->d, ktls, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "-o:1: [tls] ktls: must be yes/no"));
    assert_int_equal(tdaemon_check(&f->d, NULL, out, sizeof(out)), 0);
}

/* 1 when this kernel offers the tls ULP (kernel TLS: built in or its module loaded). */
static int kernel_has_tls(void)
{
    char buf[256] = "";
    FILE *fp = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
    if (fp != NULL) {
        if (fgets(buf, sizeof(buf), fp) == NULL)
            buf[0] = '\0';
        fclose(fp);
    }
    for (char *t = strtok(buf, " \n"); t != NULL; t = strtok(NULL, " \n"))
        if (strcmp(t, "tls") == 0)
            return 1;
    return 0;
}

/* [tls] ktls = yes, turned on by a reload: the calls work whichever side does the
 * records, every new connection is counted as taken by the kernel or not, and where
 * the kernel has no TLS the operator is told once per loop, not once per connection. */
static void test_ktls(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;
    enum { CONNS = 4 };

    /* off (the default): nothing asked, nothing counted */
    assert_int_equal(tcluster_admin_counter(f->admin, "tls_ktls_unavailable"), 0);
    assert_int_equal(tcluster_admin_counter(f->admin, "tls_ktls_send"), 0);
    assert_int_equal(tcluster_log_count(&f->d, "event=tls.ktls_unavailable"), 0);

    int before = tcluster_log_count(&f->d, "event=tls.reloaded");
    assert_int_equal(tdaemon_write_file(&f->d, "02-ktls.ini", "[tls]\nktls = yes\n"), 0);
    assert_int_equal(tdaemon_signal(&f->d, SIGHUP), 0);
    for (int i = 0; i < 300 && tcluster_log_count(&f->d, "event=tls.reloaded") <= before; i++)
        usleep(10000);
    assert_true(tcluster_log_count(&f->d, "event=tls.reloaded") > before);

    daffi_client *c[CONNS];
    for (int i = 0; i < CONNS; i++) {
        c[i] = tls_connect(f->tls_addr, cert(f, "ca.pem"), NULL, NULL, &err);
        if (c[i] == NULL)
            fail_msg("connect with ktls = yes: %s", err.message);
        assert_echo(c[i]);
    }
    long long tx = tcluster_admin_counter(f->admin, "tls_ktls_send");
    long long rx = tcluster_admin_counter(f->admin, "tls_ktls_recv");
    long long none = tcluster_admin_counter(f->admin, "tls_ktls_unavailable");
    int warned = tcluster_log_count(&f->d, "event=tls.ktls_unavailable");
    if (kernel_has_tls()) {
        /* the kernel takes at least the sending side of AES-GCM (OpenSSL 3.0+) */
        assert_int_equal(tx, CONNS);
        assert_int_equal(none, 0);
        assert_int_equal(warned, 0);
    } else {
        assert_int_equal(tx + rx, 0);
        assert_int_equal(none, CONNS);
        /* one warning per loop that met such a connection (2 loops at most here) */
        assert_true(warned >= 1 && warned <= 2);
        assert_true(tcluster_log_contains(&f->d, "event=tls.ktls_unavailable peer=127.0.0.1:",
                                          2000));
    }
    for (int i = 0; i < CONNS; i++) {
        assert_echo(c[i]);
        daffi_close(c[i]);
    }
}

/* Copies file from to to (both in the certificate dir). */
static void copy_cert(const fixture *f, const char *from, const char *to)
{
    char cmd[800];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s.new' && mv '%s.new' '%s'", cert(f, from),
             cert(f, to), cert(f, to), cert(f, to));
    assert_int_equal(system(cmd), 0);
}

static void test_reload_certificates(void **state)
{
    fixture *f = *state;
    daffi_error err = DAFFI_ERROR_INIT;

    daffi_client *old = tls_connect(f->tls_addr, cert(f, "ca.pem"), NULL, NULL, &err);
    assert_non_null(old);
    assert_echo(old);
    int before = tcluster_log_count(&f->d, "event=tls.reloaded");
    copy_cert(f, "server2.pem", "server.pem");
    copy_cert(f, "server2.key", "server.key");
    assert_int_equal(tdaemon_signal(&f->d, SIGHUP), 0);
    for (int i = 0; i < 300 && tcluster_log_count(&f->d, "event=tls.reloaded") <= before; i++)
        usleep(10000);
    assert_true(tcluster_log_count(&f->d, "event=tls.reloaded") > before);
    /* the open connection stays, on the certificate it shook hands with */
    assert_echo(old);
    daffi_close(old);
    /* new connections get the new certificate: ca2 trusts it, ca no longer */
    daffi_client *c = tls_connect(f->tls_addr, cert(f, "ca2.pem"), NULL, NULL, &err);
    if (c == NULL)
        fail_msg("after the reload: %s", err.message);
    assert_echo(c);
    daffi_close(c);
    c = tls_connect(f->tls_addr, cert(f, "ca.pem"), NULL, NULL, &err);
    assert_null(c);
    daffi_error_clear(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_roundtrip),
        cmocka_unit_test(test_async_client),
        cmocka_unit_test(test_async_handshake_runs_on_the_loop),
        cmocka_unit_test(test_daffictl_over_tls),
        cmocka_unit_test(test_mtls_identity),
        cmocka_unit_test(test_untrusted_server),
        cmocka_unit_test(test_bad_client_certificates),
        cmocka_unit_test(test_plaintext_on_tls_port),
        cmocka_unit_test(test_tls_on_plaintext_port),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_ktls),
        cmocka_unit_test(test_reload_certificates),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
