/*
 * test_admin.c - the admin socket, the metrics and systemd notifications of a real
 * daffid, as a specification: every command answers one JSON line with a status; bad
 * input gets a structured error or a timeout close while the socket keeps serving the
 * others; the socket has its mode; counters move by exactly the calls made; the
 * Prometheus text passes the prometheus_client parser (python3-prometheus-client) and
 * stricter checks; NOTIFY_SOCKET receives READY=1, RELOADING=1 + READY=1 and
 * STOPPING=1; daffictl -a drives it all.
 *
 * The read-only commands share one daemon (group setup); a test that changes the
 * daemon's life (drain, shutdown, notify) starts its own, kept in the fixture so a
 * failing test still has it killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/aconn.h"
#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/promcheck.h"
#include "../support/rawconn.h"
#include "../support/thttp.h"

#define IDLE_MS 400

/* Files the tests write (an extra plugin ini) go here,
 * not into a daemon's configuration directory, which daffid watches for changes. */
static char scratch[64];

/* One daemon and its admin socket path. */
typedef struct adaemon {
    tdaemon *d;
    int started;               /* tdaemon_start() succeeded */
    char admin[200];
    int metrics_port;
} adaemon;


/* ---- helpers ----------------------------------------------------------------------- */

/* Starts a daffid with the example plugins, an admin socket in its dir and a metrics
 * listener; extra (NULL-terminated, may be NULL) adds overrides. NULL on failure. */
static adaemon *adaemon_start(const char *const *extra)
{
    adaemon *a = calloc(1, sizeof(*a));
    char o_sock[260], o_idle[64], o_metrics[64], o_load[300];
    const char *ov[16];
    size_t n = 0;

    if (a == NULL || (a->d = calloc(1, sizeof(*a->d))) == NULL)
        return NULL;
    if (tdaemon_init(a->d) == -1 || tdaemon_add_example_plugins(a->d) == -1)
        return a;
    snprintf(a->admin, sizeof(a->admin), "%s/admin.sock", a->d->dir);
    a->metrics_port = tdaemon_free_port();
    snprintf(o_sock, sizeof(o_sock), "admin.socket=%s", a->admin);
    snprintf(o_idle, sizeof(o_idle), "admin.idle_timeout=%dms", IDLE_MS);
    snprintf(o_metrics, sizeof(o_metrics), "server.metrics_listen=127.0.0.1:%d",
             a->metrics_port);
    ov[n++] = o_sock;
    ov[n++] = o_idle;
    ov[n++] = o_metrics;
    /* load reads the configuration directory and the scratch files */
    snprintf(o_load, sizeof(o_load), "admin.load_paths=%s, %s", a->d->dir, scratch);
    ov[n++] = o_load;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
        ov[n++] = extra[i];
    ov[n] = NULL;
    a->started = tdaemon_start(a->d, ov) == 0;
    return a;
}

static void adaemon_free(adaemon *a)
{
    if (a == NULL)
        return;
    if (a->d != NULL) {
        tdaemon_cleanup(a->d);
        free(a->d);
    }
    free(a);
}

/* One command on a fresh connection; returns the reply. */
static json_t *admin1(const adaemon *a, const char *line)
{
    return aconn_once(a->admin, line);
}

/* Calls method(a, b) with int arguments as msgid id and returns the error code (0 for
 * a result). */
static int call2(rawconn *rc, uint32_t id, const char *method, int64_t x, int64_t y)
{
    expect_send_ii(rc, id, method, x, y);
    assert_int_equal(expect_response(rc), id);
    if (rc->msg.error == NULL || rc->msg.error->type == MSGPACK_OBJECT_NIL)
        return 0;
    return (int)rc->msg.error->via.array.ptr[0].via.i64;
}

/* Calls add("x", 1): BAD_ARGS. */
static void call_bad_add(rawconn *rc, uint32_t id)
{
    rawmsg m;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "add", 2);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "x", 1);
    msgpack_pack_int(pk, 1);
    expect_send(rc, &m);
    rawmsg_destroy(&m);
    expect_error(rc, id, DAFFI_E_BAD_ARGS);
}

/* The callbacks entry called name in a callbacks reply. */
static json_t *find_named(json_t *list, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (strcmp(jstr(v, "name"), name) == 0)
            return v;
    }
    fail_msg("no entry named %s", name);
    return NULL;
}

/* outcomes[key] of a callbacks entry (0 when absent). */
static json_int_t outcome(json_t *cb, const char *key)
{
    json_t *v = json_object_get(json_object_get(cb, "outcomes"), key);
    return v ? json_integer_value(v) : 0;
}

/* The exposition through the admin socket. Owned by the caller. */
static char *admin_metrics(const adaemon *a)
{
    json_t *r = admin1(a, "metrics");
    assert_admin_ok(r, "metrics");
    assert_string_equal(jstr(r, "content_type"),
                        "text/plain; version=0.0.4; charset=utf-8");
    char *text = strdup(jstr(r, "text"));
    json_decref(r);
    return text;
}

/* ---- the shared daemon ------------------------------------------------------------- */

static int group_setup(void **state)
{
    adaemon *a = adaemon_start(NULL);
    if (a == NULL || !a->started) {
        adaemon_free(a);
        return -1;
    }
    *state = a;
    return 0;
}

static int group_teardown(void **state)
{
    adaemon *a = *state;
    int rc = tdaemon_stop(a->d, TDAEMON_STOP_TIMEOUT_MS);
    adaemon_free(a);
    return rc == 0 ? 0 : -1;
}

static void test_socket_has_the_default_mode_0660(void **state)
{
    adaemon *a = *state;
    struct stat st;

    assert_int_equal(stat(a->admin, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
}

static void test_help_lists_every_command(void **state)
{
    static const char *const names[] = {
        "help", "status", "plugins", "callbacks", "members", "stats", "metrics", "reload",
        "load", "unload", "loglevel", "accesslog", "monitor", "drain", "resume", "shutdown",
    };
    json_t *r = admin1(*state, "help");

    assert_admin_ok(r, "help");
    json_t *cmds = json_object_get(r, "commands");
    assert_int_equal(json_array_size(cmds), sizeof(names) / sizeof(names[0]));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_true(json_is_string(json_object_get(find_named(cmds, names[i]), "usage")));
    json_decref(r);
}

static void test_status_reports_the_process(void **state)
{
    adaemon *a = *state;
    json_t *r = admin1(a, "status");

    assert_admin_ok(r, "status");
    assert_int_equal(jint(r, "pid"), a->d->pid);
    assert_string_equal(jstr(r, "role"), "service");
    assert_string_equal(jstr(r, "state"), "running");
    assert_true(json_is_string(json_object_get(r, "version")));
    assert_int_equal(jint(r, "workers"), 2);
    assert_int_equal(jint(r, "plugins"), 3);
    assert_true(jint(r, "callbacks") >= 5);
    assert_true(jint(r, "uptime_ms") >= 0);
    assert_true(json_is_true(json_object_get(r, "accepting")));
    assert_int_equal(jint(r, "calls_in_flight"), 0);
    json_decref(r);
}

static void test_status_counts_connections_and_calls_in_flight(void **state)
{
    adaemon *a = *state;
    rawconn rc;
    rawmsg m;

    expect_open(&rc, a->d->tcp);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 7, "echo_after", 2);
    msgpack_pack_int(pk, 600);
    msgpack_pack_int(pk, 7);
    expect_send(&rc, &m);
    rawmsg_destroy(&m);
    int64_t end = expect_now_ms() + 2000;
    json_int_t inflight = 0, conns = 0;
    /* a connection an earlier test closed may not be seen closed yet: wait for both */
    while ((inflight == 0 || conns != 1) && expect_now_ms() < end) {
        json_t *r = admin1(a, "status");
        inflight = jint(r, "calls_in_flight");
        conns = jint(r, "connections");
        json_decref(r);
        usleep(10000);
    }
    assert_int_equal(inflight, 1);
    assert_int_equal(conns, 1);
    expect_result_int(&rc, 7, 7);
    rawconn_close(&rc);
}

static void test_plugins_report_generation_file_and_calls(void **state)
{
    adaemon *a = *state;
    rawconn rc;
    json_t *r0 = admin1(a, "plugins");
    assert_admin_ok(r0, "plugins");
    json_t *calc0 = find_named(json_object_get(r0, "plugins"), "calc");
    json_int_t calls0 = jint(calc0, "calls"), errors0 = jint(calc0, "errors");
    assert_true(json_is_true(json_object_get(calc0, "serving")));
    assert_true(jint(calc0, "generation") >= 1);
    assert_non_null(strstr(jstr(calc0, "file"), "calc.so"));
    assert_true(json_is_string(json_object_get(calc0, "loaded_at")));
    assert_true(json_is_object(json_object_get(calc0, "last_reload")));

    expect_open(&rc, a->d->tcp);
    assert_int_equal(call2(&rc, 1, "add", 1, 2), 0);
    assert_int_equal(call2(&rc, 2, "multiply", 3, 4), 0);
    assert_int_equal(call2(&rc, 3, "divide", 1, 0), DAFFI_E_HANDLER_ERROR);
    rawconn_close(&rc);

    json_t *r1 = admin1(a, "plugins");
    json_t *calc1 = find_named(json_object_get(r1, "plugins"), "calc");
    assert_int_equal(jint(calc1, "calls") - calls0, 3);
    assert_int_equal(jint(calc1, "errors") - errors0, 1);
    assert_int_equal(jint(calc1, "in_flight"), 0);
    json_decref(r0);
    json_decref(r1);
}

static void test_callbacks_count_calls_by_outcome(void **state)
{
    adaemon *a = *state;
    rawconn rc;
    json_t *r0 = admin1(a, "callbacks calc");
    assert_admin_ok(r0, "callbacks");
    json_t *add0 = find_named(json_object_get(r0, "callbacks"), "add");
    json_t *div0 = find_named(json_object_get(r0, "callbacks"), "divide");

    expect_open(&rc, a->d->tcp);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(call2(&rc, 10 + i, "add", i, 1), 0);
    call_bad_add(&rc, 20);
    call_bad_add(&rc, 21);
    assert_int_equal(call2(&rc, 22, "divide", 1, 0), DAFFI_E_HANDLER_ERROR);
    rawconn_close(&rc);

    json_t *r1 = admin1(a, "callbacks calc");
    json_t *add1 = find_named(json_object_get(r1, "callbacks"), "add");
    json_t *div1 = find_named(json_object_get(r1, "callbacks"), "divide");
    assert_int_equal(outcome(add1, "ok") - outcome(add0, "ok"), 3);
    assert_int_equal(outcome(add1, "bad_args") - outcome(add0, "bad_args"), 2);
    assert_int_equal(jint(add1, "calls") - jint(add0, "calls"), 5);
    assert_int_equal(jint(add1, "errors") - jint(add0, "errors"), 2);
    assert_int_equal(outcome(div1, "handler_error") - outcome(div0, "handler_error"), 1);
    assert_string_equal(jstr(add1, "plugin"), "calc");
    assert_true(json_is_real(json_object_get(add1, "mean_us")));
    json_decref(r0);
    json_decref(r1);
}

static void test_callbacks_of_an_unknown_plugin_is_an_error(void **state)
{
    json_t *r = admin1(*state, "callbacks nosuch");
    assert_admin_err(r, "no_such_plugin");
    json_decref(r);
}

static void test_members_lists_this_daffid_with_its_callbacks(void **state)
{
    json_t *r = admin1(*state, "members");
    assert_admin_ok(r, "members");
    json_t *ms = json_object_get(r, "members");
    assert_int_equal(json_array_size(ms), 1);
    json_t *self = json_array_get(ms, 0);
    assert_true(json_is_true(json_object_get(self, "self")));
    json_t *cbs = json_object_get(self, "callbacks");
    int has_echo = 0;
    size_t i;
    json_t *v;
    json_array_foreach(cbs, i, v) has_echo |= strcmp(json_string_value(v), "echo") == 0;
    assert_true(has_echo);
    json_decref(r);
}

static void test_stats_counters_move_by_exactly_the_calls_made(void **state)
{
    adaemon *a = *state;
    rawconn rc;
    json_t *r0 = admin1(a, "stats");
    assert_admin_ok(r0, "stats");
    json_t *c0 = json_object_get(r0, "counters");

    expect_open(&rc, a->d->tcp);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(call2(&rc, i + 1, "add", i, i), 0);
    assert_int_equal(call2(&rc, 9, "nosuch", 1, 1), DAFFI_E_NO_CALLBACK);
    rawconn_close(&rc);
    /* the connection's close is counted by its loop: wait for it */
    json_t *r1 = NULL, *c1 = NULL;
    for (int tries = 0; tries < 200; tries++) {
        json_decref(r1);
        r1 = admin1(a, "stats");
        c1 = json_object_get(r1, "counters");
        if (jint(c1, "connections_closed") - jint(c0, "connections_closed") == 1)
            break;
        usleep(10000);
    }
    assert_int_equal(jint(c1, "requests") - jint(c0, "requests"), 6);
    /* one response per request: five results and the NO_CALLBACK error */
    assert_int_equal(jint(c1, "responses_ok") - jint(c0, "responses_ok"), 5);
    assert_int_equal(jint(c1, "responses_error") - jint(c0, "responses_error"), 1);
    assert_int_equal(jint(c1, "no_callback") - jint(c0, "no_callback"), 1);
    assert_int_equal(jint(c1, "connections_accepted") - jint(c0, "connections_accepted"), 1);
    assert_int_equal(jint(c1, "connections_closed") - jint(c0, "connections_closed"), 1);
    assert_true(jint(c1, "received_bytes") > jint(c0, "received_bytes"));
    json_t *g = json_object_get(r1, "gauges");
    assert_int_equal(jint(g, "plugins"), 3);
    assert_int_equal(jint(g, "members"), 1);
    /* the same table as the metrics: process_* and the last good reload too */
    assert_true(jint(g, "process_open_fds") > 0);
    assert_true(json_is_real(json_object_get(json_object_get(r1, "counters"),
                                             "process_cpu_seconds")));
    assert_int_equal(jint(g, "config_last_reload_successful"), 1);
    json_decref(r0);
    json_decref(r1);
}

static void test_metrics_text_passes_the_prometheus_parser(void **state)
{
    adaemon *a = *state;
    char *text = admin_metrics(a);
    char *out = promcheck(text);

    /* every entry of the counter table is there */
    assert_true(promcheck_sample(out, "daffid_requests_total{}") >= 0);
    assert_true(promcheck_sample(out, "daffid_connections_open{}") >= 0);
    assert_int_equal(promcheck_sample(out, "daffid_plugins{}"), 3);
    assert_int_equal(promcheck_sample(out, "daffid_plugin_generation{plugin=calc}") >= 1, 1);
    assert_true(promcheck_sample(out, "daffid_call_duration_seconds_count{callback=fib,plugin=fib}") >= 0);
    free(text);
    free(out);
}

static void test_metrics_calls_move_by_exactly_the_calls_made(void **state)
{
    adaemon *a = *state;
    rawconn rc;
    char *t0 = admin_metrics(a), *o0 = promcheck(t0);

    expect_open(&rc, a->d->tcp);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(call2(&rc, i + 1, "multiply", i, 2), 0);
    call_bad_add(&rc, 9);
    rawconn_close(&rc);
    char *t1 = admin_metrics(a), *o1 = promcheck(t1);
    const char *ok = "daffid_calls_total{callback=multiply,outcome=ok,plugin=calc}";
    const char *bad = "daffid_calls_total{callback=add,outcome=bad_args,plugin=calc}";
    const char *cnt = "daffid_call_duration_seconds_count{callback=multiply,plugin=calc}";
    const char *inf = "daffid_call_duration_seconds_bucket{callback=multiply,le=+Inf,plugin=calc}";
    assert_int_equal(promcheck_sample(o1, ok) - promcheck_sample(o0, ok), 4);
    long long bad0 = promcheck_sample(o0, bad) < 0 ? 0 : promcheck_sample(o0, bad);
    assert_int_equal(promcheck_sample(o1, bad) - bad0, 1);
    assert_int_equal(promcheck_sample(o1, cnt) - promcheck_sample(o0, cnt), 4);
    assert_int_equal(promcheck_sample(o1, inf), promcheck_sample(o1, cnt));
    free(t0);
    free(o0);
    free(t1);
    free(o1);
}

static void test_http_metrics_serves_the_same_exposition(void **state)
{
    adaemon *a = *state;
    char *resp = promcheck_http_get(a->metrics_port, "/metrics");

    if (strncmp(resp, "HTTP/1.", 7) != 0 || strncmp(resp + 9, "200", 3) != 0)
        fail_msg("GET /metrics: %.200s", resp);
    assert_non_null(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
    char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    char *out = promcheck(body + 4);
    assert_non_null(strstr(out, "daffid_build_info{"));
    free(out);
    free(resp);
    resp = promcheck_http_get(a->metrics_port, "/other");
    assert_int_equal(strncmp(resp + 9, "404", 3), 0);
    free(resp);
}

static void test_loglevel_sets_and_reports_the_level(void **state)
{
    adaemon *a = *state;
    aconn c;

    aconn_open(&c, a->admin);
    json_t *r = aconn_cmd(&c, "loglevel debug");
    assert_admin_ok(r, "loglevel");
    assert_string_equal(jstr(r, "log_level"), "debug");
    assert_string_equal(jstr(r, "previous"), "info");
    json_decref(r);
    r = aconn_cmd(&c, "status");
    assert_string_equal(jstr(r, "log_level"), "debug");
    json_decref(r);
    r = aconn_cmd(&c, "loglevel loud");
    assert_admin_err(r, "bad_arguments");
    json_decref(r);
    r = aconn_cmd(&c, "loglevel info");
    assert_admin_ok(r, "loglevel");
    json_decref(r);
    aconn_close(&c);
}

static void test_unknown_command_is_an_error_and_the_client_goes_on(void **state)
{
    adaemon *a = *state;
    aconn c;

    aconn_open(&c, a->admin);
    json_t *r = aconn_cmd(&c, "frobnicate now");
    assert_admin_err(r, "unknown_command");
    assert_true(json_is_null(json_object_get(r, "command")));
    json_decref(r);
    r = aconn_cmd(&c, "status");
    assert_admin_ok(r, "status");
    json_decref(r);
    aconn_close(&c);
}

static void test_wrong_arguments_name_the_usage(void **state)
{
    adaemon *a = *state;
    aconn c;
    static const char *const lines[] = { "status now", "load", "unload a b", "reload a b",
                                         "loglevel a b" };

    aconn_open(&c, a->admin);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        json_t *r = aconn_cmd(&c, lines[i]);
        assert_admin_err(r, "bad_arguments");
        assert_non_null(strstr(jstr(r, "detail"), "usage:"));
        json_decref(r);
    }
    aconn_close(&c);
}

static void test_pipelined_commands_are_answered_in_order(void **state)
{
    adaemon *a = *state;
    aconn c;
    const char *lines = "status\r\n\nhelp status\nbogus\nstats\n";

    aconn_open(&c, a->admin);
    aconn_send(&c, lines, strlen(lines));
    json_t *r = aconn_reply(&c);
    assert_admin_ok(r, "status");
    json_decref(r);
    r = aconn_reply(&c);
    assert_admin_ok(r, "help");
    assert_int_equal(json_array_size(json_object_get(r, "commands")), 1);
    json_decref(r);
    r = aconn_reply(&c);
    assert_admin_err(r, "unknown_command");
    json_decref(r);
    r = aconn_reply(&c);
    assert_admin_ok(r, "stats");
    json_decref(r);
    aconn_close(&c);
}

static void test_over_long_line_is_refused_and_closed_while_others_are_served(void **state)
{
    adaemon *a = *state;
    aconn bad, good;
    char *line = malloc(10000);

    aconn_open(&good, a->admin);
    aconn_open(&bad, a->admin);
    memset(line, 'a', 10000);
    aconn_send(&bad, line, 10000);
    json_t *r = aconn_reply(&bad);
    assert_admin_err(r, "line_too_long");
    json_decref(r);
    aconn_expect_closed(&bad, ACONN_READ_MS);
    r = aconn_cmd(&good, "status");
    assert_admin_ok(r, "status");
    json_decref(r);
    aconn_close(&bad);
    aconn_close(&good);
    free(line);
}

static void test_binary_garbage_is_refused_and_closed(void **state)
{
    adaemon *a = *state;
    aconn bad;
    static const unsigned char garbage[] = { 0x93, 0x00, 0x01, 0xa3, 'a', 'd', 'd', 0xff,
                                             '\n' };

    aconn_open(&bad, a->admin);
    aconn_send(&bad, garbage, sizeof(garbage));
    json_t *r = aconn_reply(&bad);
    assert_admin_err(r, "binary_input");
    assert_non_null(strstr(jstr(r, "detail"), "0x00"));
    json_decref(r);
    aconn_expect_closed(&bad, ACONN_READ_MS);
    aconn_close(&bad);
    r = admin1(a, "status");
    assert_admin_ok(r, "status");
    json_decref(r);
}

static void test_silent_client_is_closed_after_the_idle_timeout(void **state)
{
    adaemon *a = *state;
    aconn quiet, other;
    int64_t t0 = expect_now_ms();

    aconn_open(&quiet, a->admin);
    aconn_open(&other, a->admin);
    json_t *r = aconn_cmd(&other, "status"); /* served while the quiet one waits */
    assert_admin_ok(r, "status");
    json_decref(r);
    r = aconn_reply(&quiet);
    assert_admin_err(r, "idle_timeout");
    json_decref(r);
    aconn_expect_closed(&quiet, ACONN_READ_MS);
    int64_t waited = expect_now_ms() - t0;
    assert_true(waited >= IDLE_MS - 50);
    assert_true(waited < IDLE_MS + 3000);
    aconn_close(&quiet);
    aconn_close(&other);
}

static void test_reload_of_one_plugin_makes_a_new_generation(void **state)
{
    adaemon *a = *state;
    json_t *p0 = admin1(a, "plugins");
    json_int_t gen0 = jint(find_named(json_object_get(p0, "plugins"), "echo"), "generation");
    json_t *s0 = admin1(a, "status");
    json_int_t runs0 = jint(json_object_get(s0, "reload"), "runs");

    json_t *r = admin1(a, "reload echo");
    assert_admin_ok(r, "reload");
    json_t *echo = find_named(json_object_get(r, "plugins"), "echo");
    assert_int_equal(jint(echo, "generation"), gen0 + 1);
    assert_string_equal(jstr(echo, "result"), "loaded");
    json_t *p1 = admin1(a, "plugins");
    json_t *e1 = find_named(json_object_get(p1, "plugins"), "echo");
    assert_int_equal(jint(e1, "generation"), gen0 + 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e1, "last_reload"),
                                                          "result")), "loaded");
    json_t *s1 = admin1(a, "status");
    /* at least this one (the file watcher may have run one too) */
    assert_true(jint(json_object_get(s1, "reload"), "runs") >= runs0 + 1);
    expect_serving(a->d->tcp);
    json_decref(p0);
    json_decref(s0);
    json_decref(r);
    json_decref(p1);
    json_decref(s1);
}

static void test_reload_of_an_unknown_plugin_is_a_structured_error(void **state)
{
    json_t *r = admin1(*state, "reload nosuch");
    assert_admin_err(r, "no_such_plugin");
    assert_true(json_is_array(json_object_get(r, "errors")));
    json_decref(r);
}

static void test_unload_then_load_a_plugin(void **state)
{
    adaemon *a = *state;
    char line[400];
    rawconn rc;

    json_t *r = admin1(a, "unload echo");
    assert_admin_ok(r, "unload");
    json_int_t gen = jint(r, "generation");
    json_decref(r);
    /* its callbacks are gone */
    expect_open(&rc, a->d->tcp);
    assert_int_equal(call2(&rc, 1, "echo", 1, 2), DAFFI_E_NO_CALLBACK);
    rawconn_close(&rc);
    r = admin1(a, "status");
    assert_int_equal(jint(r, "plugins"), 2);
    json_decref(r);
    r = admin1(a, "unload echo");
    assert_admin_err(r, "no_such_plugin");
    json_decref(r);

    snprintf(line, sizeof(line), "load %s/10-echo.ini", a->d->dir);
    r = admin1(a, line);
    assert_admin_ok(r, "load");
    assert_string_equal(jstr(r, "plugin"), "echo");
    assert_true(jint(r, "generation") > gen);
    json_decref(r);
    expect_open(&rc, a->d->tcp);
    assert_int_equal(call2(&rc, 2, "echo", 1, 2), 0);
    rawconn_close(&rc);
    r = admin1(a, line);
    assert_admin_err(r, "load_failed"); /* serving already */
    json_decref(r);
}

static void test_load_of_a_new_plugin_file_and_its_unload(void **state)
{
    adaemon *a = *state;
    char path[300], line[400];

    snprintf(path, sizeof(path), "%s/calc2.ini", scratch);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[plugin]\nname = calc2\npath = %s/plugins/fib.so\n", a->d->build);
    fclose(f);
    snprintf(line, sizeof(line), "load %s", path);
    json_t *r = admin1(a, line);
    /* fib's callbacks clash with the serving fib plugin: refused, nothing changed */
    assert_admin_err(r, "load_failed");
    json_decref(r);
    r = admin1(a, "unload fib");
    assert_admin_ok(r, "unload");
    json_decref(r);
    r = admin1(a, line);
    assert_admin_ok(r, "load");
    assert_string_equal(jstr(r, "plugin"), "calc2");
    json_decref(r);
    r = admin1(a, "unload calc2");
    assert_admin_ok(r, "unload");
    json_decref(r);
    snprintf(line, sizeof(line), "load %s/10-fib.ini", a->d->dir);
    r = admin1(a, line);
    assert_admin_ok(r, "load");
    assert_string_equal(jstr(r, "plugin"), "fib");
    json_decref(r);
}

static void test_load_refuses_relative_and_missing_files(void **state)
{
    adaemon *a = *state;
    json_t *r = admin1(a, "load relative.ini");
    assert_admin_err(r, "bad_arguments");
    json_decref(r);
    r = admin1(a, "load /nonexistent/x.ini");
    assert_admin_err(r, "load_failed");
    assert_non_null(strstr(jstr(r, "detail"), "/nonexistent"));
    json_decref(r);
    r = admin1(a, "status");
    assert_int_equal(jint(r, "plugins"), 3);
    json_decref(r);
}

/* ---- daffictl -a ------------------------------------------------------------------- */

/* Runs daffictl with args (a shell word list), captures stdout. Returns its exit code. */
static int daffictl(const adaemon *a, const char *args, char *out, size_t outsz)
{
    return expect_run(out, outsz, "%s/daffictl -a %s %s 2>/dev/null", a->d->build,
                      a->admin, args);
}

static void test_daffictl_prints_tables_and_raw_json(void **state)
{
    adaemon *a = *state;
    static char out[1 << 16];
    json_error_t err;

    assert_int_equal(daffictl(a, "status", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "state"));
    assert_non_null(strstr(out, "running"));
    assert_null(strstr(out, "{\""));
    assert_int_equal(daffictl(a, "plugins", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "GEN"));
    assert_non_null(strstr(out, "calc"));
    assert_int_equal(daffictl(a, "--json status", out, sizeof(out)), 0);
    json_t *j = json_loads(out, 0, &err);
    assert_non_null(j);
    assert_string_equal(jstr(j, "status"), "ok");
    json_decref(j);
    /* with -a, members is the admin command (daffictl's RPC members needs -s) */
    assert_int_equal(daffictl(a, "members", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "MEMBER"));
    assert_int_equal(daffictl(a, "metrics", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "# TYPE daffid_requests_total counter"));
    assert_true(daffictl(a, "reload nosuch", out, sizeof(out)) != 0);
    assert_true(daffictl(a, "loglevel loud", out, sizeof(out)) != 0);
}

/* ---- tests with a daemon of their own ---------------------------------------------- */

static int own_teardown(void **state)
{
    adaemon_free(*state);
    unsetenv("NOTIFY_SOCKET");
    return 0;
}

static int own_setup(void **state)
{
    *state = NULL;
    return 0;
}

static void test_drain_finishes_calls_in_flight_then_reports(void **state)
{
    static const char *const extra[] = { "admin.mode=0600", NULL };
    adaemon *a = adaemon_start(extra);
    *state = a;
    assert_non_null(a);
    assert_true(a->started);
    struct stat st;
    assert_int_equal(stat(a->admin, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    rawconn rc;
    rawmsg m;
    expect_open(&rc, a->d->tcp);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 5, "echo_after", 2);
    msgpack_pack_int(pk, 300);
    msgpack_pack_int(pk, 5);
    expect_send(&rc, &m);
    rawmsg_destroy(&m);
    expect_ping(&rc, 6); /* echo_after is in flight now */

    int64_t t0 = expect_now_ms();
    json_t *r = admin1(a, "drain");
    assert_admin_ok(r, "drain");
    assert_true(json_is_true(json_object_get(r, "complete")));
    assert_string_equal(jstr(r, "state"), "drained");
    assert_int_equal(jint(r, "connections"), 0);
    assert_true(expect_now_ms() - t0 >= 150); /* it waited for echo_after */
    json_decref(r);
    expect_result_int(&rc, 5, 5); /* the call in flight was answered */
    rawconn_close(&rc);
    rawconn rc2;
    assert_int_equal(rawconn_open(&rc2, a->d->tcp, 500), -1); /* not accepting */
    rawconn_close(&rc2);
    r = admin1(a, "status");
    assert_string_equal(jstr(r, "state"), "drained");
    assert_true(json_is_false(json_object_get(r, "accepting")));
    json_decref(r);
    r = admin1(a, "drain"); /* again: the same report, at once */
    assert_admin_ok(r, "drain");
    json_decref(r);

    r = admin1(a, "shutdown");
    assert_admin_ok(r, "shutdown");
    json_decref(r);
    assert_int_equal(tdaemon_wait_exit(a->d, 5000), 1);
    assert_true(WIFEXITED(a->d->status) && WEXITSTATUS(a->d->status) == 0);
}

/* resume undoes a drain: connections are accepted and calls served again. */
static void test_resume_takes_calls_again_after_a_drain(void **state)
{
    adaemon *a = adaemon_start(NULL);
    *state = a;
    assert_non_null(a);
    json_t *r = admin1(a, "resume"); /* nothing to undo */
    assert_admin_ok(r, "resume");
    assert_true(json_is_false(json_object_get(r, "resumed")));
    json_decref(r);
    r = admin1(a, "drain");
    assert_string_equal(jstr(r, "state"), "drained");
    json_decref(r);
    rawconn rc;
    assert_int_equal(rawconn_open(&rc, a->d->tcp, 500), -1);
    rawconn_close(&rc);
    r = admin1(a, "resume");
    assert_admin_ok(r, "resume");
    assert_string_equal(jstr(r, "state"), "running");
    assert_true(json_is_true(json_object_get(r, "resumed")));
    assert_int_equal(jint(r, "listeners"), 2);
    json_decref(r);
    expect_serving(a->d->tcp);
    expect_serving(a->d->unix_addr);
    r = admin1(a, "status");
    assert_string_equal(jstr(r, "state"), "running");
    assert_true(json_is_true(json_object_get(r, "accepting")));
    json_decref(r);
}

/* accesslog switches the access log at run time; with it on, every call gets a line,
 * those refused before they ran (no such callback) included. */
static void test_accesslog_switches_at_run_time_and_logs_every_call(void **state)
{
    adaemon *a = adaemon_start(NULL);
    *state = a;
    assert_non_null(a);
    json_t *r = admin1(a, "accesslog on");
    assert_admin_ok(r, "accesslog");
    assert_true(json_is_true(json_object_get(r, "access_log")));
    assert_true(json_is_false(json_object_get(r, "previous")));
    json_decref(r);
    rawconn rc;
    expect_open(&rc, a->d->tcp);
    expect_send_ii(&rc, 1, "add", 1, 2);
    expect_result_int(&rc, 1, 3);
    expect_send_ii(&rc, 2, "no_such_thing", 1, 2);
    expect_error(&rc, 2, DAFFI_E_NO_CALLBACK);
    assert_int_equal(tcluster_log_contains(a->d, "event=access callback=add", expect_timeout_ms()), 1);
    assert_int_equal(tcluster_log_contains(a->d, "event=access callback=no_such_thing peer=",
                                           expect_timeout_ms()), 1);
    assert_int_equal(tcluster_log_contains(a->d, "outcome=no_callback", 0), 1);
    r = admin1(a, "accesslog off");
    json_decref(r);
    int before = tcluster_log_count(a->d, "event=access");
    expect_send_ii(&rc, 3, "add", 2, 2);
    expect_result_int(&rc, 3, 4);
    expect_ping(&rc, 4);
    assert_int_equal(tcluster_log_count(a->d, "event=access"), before);
    rawconn_close(&rc);
    r = admin1(a, "accesslog maybe");
    assert_string_equal(jstr(r, "status"), "error");
    json_decref(r);
}

static void test_shutdown_stops_daffid_and_removes_the_socket(void **state)
{
    adaemon *a = adaemon_start(NULL);
    *state = a;
    assert_non_null(a);
    assert_true(a->started);
    aconn c;
    aconn_open(&c, a->admin);
    json_t *r = aconn_cmd(&c, "shutdown");
    assert_admin_ok(r, "shutdown");
    assert_string_equal(jstr(r, "state"), "stopping");
    json_decref(r);
    aconn_close(&c);
    assert_int_equal(tdaemon_wait_exit(a->d, 5000), 1);
    assert_true(WIFEXITED(a->d->status) && WEXITSTATUS(a->d->status) == 0);
    assert_int_equal(access(a->admin, F_OK), -1);
}

/* Receives one datagram on fd within ms into buf (NUL-terminated); what names the
 * one expected, for the failure. */
static void recv_notify(int fd, char *buf, size_t size, int ms, const char *what)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, ms) <= 0)
        fail_msg("no notification within %d ms (expected: %s)", ms, what);
    ssize_t n = recv(fd, buf, size - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
}

/* Starts a daemon with NOTIFY_SOCKET set to name ("@abstract" or a path in the dir)
 * and checks READY=1, then RELOADING=1 + READY=1 on SIGHUP, then STOPPING=1. */
static void notify_sequence(void **state, int abstract)
{
    char name[160], buf[1024];
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    socklen_t len;
    tdaemon tmp;

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd != -1);
    if (abstract) {
        snprintf(name, sizeof(name), "@daffid-test-notify-%d", (int)getpid());
        memcpy(sun.sun_path, name, strlen(name));
        sun.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    } else {
        /* a dir of its own so the name is known before the daemon's dir exists */
        assert_int_equal(tdaemon_init(&tmp), 0);
        snprintf(name, sizeof(name), "%s/notify.sock", tmp.dir);
        memcpy(sun.sun_path, name, strlen(name) < sizeof(sun.sun_path) ? strlen(name) : sizeof(sun.sun_path) - 1);
        len = sizeof(sun);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
    setenv("NOTIFY_SOCKET", name, 1);
    adaemon *a = adaemon_start(NULL);
    unsetenv("NOTIFY_SOCKET");
    *state = a;
    assert_non_null(a);
    assert_true(a->started);

    recv_notify(fd, buf, sizeof(buf), 5000, "READY=1 at start");
    assert_non_null(strstr(buf, "READY=1"));
    assert_non_null(strstr(buf, "STATUS=started"));
    tdaemon_signal(a->d, SIGHUP);
    recv_notify(fd, buf, sizeof(buf), 5000, "RELOADING=1 on SIGHUP");
    assert_non_null(strstr(buf, "RELOADING=1"));
    assert_non_null(strstr(buf, "MONOTONIC_USEC="));
    recv_notify(fd, buf, sizeof(buf), 5000, "READY=1 after SIGHUP");
    assert_non_null(strstr(buf, "READY=1"));
    /* a reload the file watcher starts is announced the same way */
    char path[256];
    snprintf(path, sizeof(path), "%s/99-watched.ini", a->d->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[log]\nlevel = info\n", f);
    fclose(f);
    recv_notify(fd, buf, sizeof(buf), 5000, "RELOADING=1 on a file change");
    assert_non_null(strstr(buf, "RELOADING=1"));
    recv_notify(fd, buf, sizeof(buf), 5000, "READY=1 after the file change");
    assert_non_null(strstr(buf, "READY=1"));
    assert_non_null(strstr(buf, "file change"));
    assert_int_equal(tdaemon_stop(a->d, 5000), 0);
    recv_notify(fd, buf, sizeof(buf), 1000, "STOPPING=1");
    assert_non_null(strstr(buf, "STOPPING=1"));
    close(fd);
    if (!abstract)
        tdaemon_cleanup(&tmp);
}

static void test_notify_socket_gets_ready_reloading_and_stopping(void **state)
{
    notify_sequence(state, 0);
}

static void test_abstract_notify_socket_gets_the_same(void **state)
{
    notify_sequence(state, 1);
}

#define OWN(name) cmocka_unit_test_setup_teardown(name, own_setup, own_teardown)

int main(void)
{
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_socket_has_the_default_mode_0660),
        cmocka_unit_test(test_help_lists_every_command),
        cmocka_unit_test(test_status_reports_the_process),
        cmocka_unit_test(test_status_counts_connections_and_calls_in_flight),
        cmocka_unit_test(test_plugins_report_generation_file_and_calls),
        cmocka_unit_test(test_callbacks_count_calls_by_outcome),
        cmocka_unit_test(test_callbacks_of_an_unknown_plugin_is_an_error),
        cmocka_unit_test(test_members_lists_this_daffid_with_its_callbacks),
        cmocka_unit_test(test_stats_counters_move_by_exactly_the_calls_made),
        cmocka_unit_test(test_metrics_text_passes_the_prometheus_parser),
        cmocka_unit_test(test_metrics_calls_move_by_exactly_the_calls_made),
        cmocka_unit_test(test_http_metrics_serves_the_same_exposition),
        cmocka_unit_test(test_loglevel_sets_and_reports_the_level),
        cmocka_unit_test(test_unknown_command_is_an_error_and_the_client_goes_on),
        cmocka_unit_test(test_wrong_arguments_name_the_usage),
        cmocka_unit_test(test_pipelined_commands_are_answered_in_order),
        cmocka_unit_test(test_over_long_line_is_refused_and_closed_while_others_are_served),
        cmocka_unit_test(test_binary_garbage_is_refused_and_closed),
        cmocka_unit_test(test_silent_client_is_closed_after_the_idle_timeout),
        cmocka_unit_test(test_reload_of_one_plugin_makes_a_new_generation),
        cmocka_unit_test(test_reload_of_an_unknown_plugin_is_a_structured_error),
        cmocka_unit_test(test_unload_then_load_a_plugin),
        cmocka_unit_test(test_load_of_a_new_plugin_file_and_its_unload),
        cmocka_unit_test(test_load_refuses_relative_and_missing_files),
        cmocka_unit_test(test_daffictl_prints_tables_and_raw_json),
    };
    const struct CMUnitTest own[] = {
        OWN(test_drain_finishes_calls_in_flight_then_reports),
        OWN(test_resume_takes_calls_again_after_a_drain),
        OWN(test_accesslog_switches_at_run_time_and_logs_every_call),
        OWN(test_shutdown_stops_daffid_and_removes_the_socket),
        OWN(test_notify_socket_gets_ready_reloading_and_stopping),
        OWN(test_abstract_notify_socket_gets_the_same),
    };
    int failed = 0;

    signal(SIGPIPE, SIG_IGN);
    snprintf(scratch, sizeof(scratch), "/tmp/daffid-admin-test.XXXXXX");
    if (mkdtemp(scratch) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    failed += cmocka_run_group_tests_name("admin socket", shared, group_setup,
                                          group_teardown);
    failed += cmocka_run_group_tests_name("admin lifecycle and systemd", own, NULL, NULL);
    static const char *const files[] = { "calc2.ini" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", scratch, files[i]);
        unlink(path);
    }
    rmdir(scratch);
    return failed == 0 ? 0 : 1;
}
