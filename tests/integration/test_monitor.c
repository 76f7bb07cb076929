/*
 * test_monitor.c - the admin `monitor` command and `daffictl monitor`, as a
 * specification: a watcher gets one JSON line per finished call (answered, refused,
 * notified) with its callback, params, kind and outcome; other admin clients and RPC
 * callers are not disturbed; the watchers gauge follows watchers arriving and
 * leaving; a watcher that stops reading is never a memory sink: it is told how many
 * calls it missed once it reads again, and the counter daffid_monitor_dropped_total
 * moves by the same amount; daffictl monitor -n prints human lines and --json the raw
 * ones.
 *
 * One daemon for all the tests (group setup), with the example plugins.
 */
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
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/aconn.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

typedef struct mdaemon {
    tdaemon d;
    char admin[200];
} mdaemon;

/* ---- helpers ----------------------------------------------------------------------- */

/* Puts c in monitor mode (asserts the reply). */
static void monitor_on(aconn *c, const char *admin)
{
    aconn_open(c, admin);
    json_t *r = aconn_cmd(c, "monitor");
    assert_admin_ok(r, "monitor");
    json_decref(r);
}

/* The next monitor line of c, parsed (the caller decrefs). Fails on EOF or a line
 * that is not a JSON object with an "event". */
static json_t *monitor_next(aconn *c)
{
    json_error_t err;
    char *line = aconn_line(c);
    assert_non_null(line);
    json_t *j = json_loads(line, 0, &err);
    if (j == NULL || !json_is_object(j) || jstr(j, "event") == NULL)
        fail_msg("not a monitor line: %s", line);
    free(line);
    return j;
}

/* A gauge or counter from the admin `metrics` exposition (-1 when absent). */
static long long metric(const mdaemon *m, const char *name)
{
    json_t *r = aconn_once(m->admin, "metrics");
    assert_admin_ok(r, "metrics");
    const char *text = jstr(r, "text");
    long long v = -1;
    size_t n = strlen(name);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            v = atoll(p + n + 1);
            break;
        }
    json_decref(r);
    return v;
}

/* Waits (bounded) until the metric reads want. */
static void wait_metric(const mdaemon *m, const char *name, long long want)
{
    int64_t end = expect_now_ms() + expect_timeout_ms();
    long long v;
    while ((v = metric(m, name)) != want && expect_now_ms() < end)
        usleep(10000);
    if (v != want)
        fail_msg("%s: want %lld, read %lld", name, want, v);
}

/* Sends a call of callback with one string parameter of len bytes of ch. */
static void send_str_call(rawconn *rc, rawmsg *m, uint32_t id, const char *callback,
                          char ch, size_t len)
{
    static char s[1024];
    memset(s, ch, len);
    msgpack_packer *pk = rawmsg_request(m, id, callback, 1);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
    (void)rc;
}

/* ---- the daemon -------------------------------------------------------------------- */

static int group_setup(void **state)
{
    mdaemon *m = calloc(1, sizeof(*m));
    char o_sock[260];
    if (m == NULL || tdaemon_init(&m->d) == -1 || tdaemon_add_example_plugins(&m->d) == -1)
        return -1;
    snprintf(m->admin, sizeof(m->admin), "%s/admin.sock", m->d.dir);
    snprintf(o_sock, sizeof(o_sock), "admin.socket=%s", m->admin);
    const char *ov[] = {o_sock, "admin.idle_timeout=300ms", NULL};
    if (tdaemon_start(&m->d, ov) == -1) {
        tdaemon_cleanup(&m->d);
        free(m);
        return -1;
    }
    *state = m;
    return 0;
}

static int group_teardown(void **state)
{
    mdaemon *m = *state;
    int rc = tdaemon_stop(&m->d, TDAEMON_STOP_TIMEOUT_MS);
    tdaemon_cleanup(&m->d);
    free(m);
    return rc == 0 ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_a_watcher_sees_every_call_with_its_params_and_outcome(void **state)
{
    mdaemon *m = *state;
    aconn w;
    monitor_on(&w, m->admin);
    rawconn rc;
    expect_open(&rc, m->d.tcp);
    expect_send_ii(&rc, 1, "add", 2, 3);
    expect_result_int(&rc, 1, 5);
    expect_send_ii(&rc, 2, "no_such_thing", 7, 8);
    expect_error(&rc, 2, DAFFI_E_NO_CALLBACK);
    rawmsg msg;
    rawmsg_init(&msg);
    msgpack_packer *pk = rawmsg_notify(&msg, "add", 2);
    msgpack_pack_int(pk, 40);
    msgpack_pack_int(pk, 2);
    assert_int_equal(rawconn_send_msg(&rc, &msg), 0);
    expect_ping(&rc, 3); /* the notification ran before the ping was answered */

    json_t *j = monitor_next(&w);
    assert_string_equal(jstr(j, "event"), "call");
    assert_string_equal(jstr(j, "callback"), "add");
    assert_string_equal(jstr(j, "plugin"), "calc");
    assert_string_equal(jstr(j, "kind"), "request");
    assert_string_equal(jstr(j, "params"), "[2, 3]");
    assert_string_equal(jstr(j, "outcome"), "ok");
    assert_non_null(strstr(jstr(j, "peer"), "127.0.0.1:"));
    assert_true(json_is_integer(json_object_get(j, "duration_us")));
    assert_true(json_is_integer(json_object_get(j, "loop")));
    const char *ts = jstr(j, "ts");
    assert_non_null(ts);
    assert_int_equal(strlen(ts), strlen("2026-12-03T09:00:00.000000Z"));
    json_decref(j);

    j = monitor_next(&w);
    assert_string_equal(jstr(j, "callback"), "no_such_thing");
    assert_true(json_is_null(json_object_get(j, "plugin")));
    assert_string_equal(jstr(j, "params"), "[7, 8]");
    assert_string_equal(jstr(j, "outcome"), "no_callback");
    json_decref(j);

    j = monitor_next(&w);
    assert_string_equal(jstr(j, "callback"), "add");
    assert_string_equal(jstr(j, "kind"), "notify");
    assert_string_equal(jstr(j, "params"), "[40, 2]");
    json_decref(j);

    /* the ping is a control call: it is not a line (nothing more arrives) */
    struct pollfd p = {w.fd, POLLIN, 0};
    assert_int_equal(w.len, 0);
    assert_int_equal(poll(&p, 1, 100), 0);
    rawmsg_destroy(&msg);
    rawconn_close(&rc);
    aconn_close(&w);
}

static void test_long_params_are_cut_and_names_escaped(void **state)
{
    mdaemon *m = *state;
    aconn w;
    monitor_on(&w, m->admin);
    rawconn rc;
    rawmsg msg;
    rawmsg_init(&msg);
    expect_open(&rc, m->d.tcp);
    send_str_call(&rc, &msg, 1, "echo", 'z', 900);
    assert_int_equal(rawconn_send_msg(&rc, &msg), 0);
    assert_int_equal(expect_response(&rc), 1);
    /* a callback name with a quote and a control byte */
    send_str_call(&rc, &msg, 2, "we\"ird\x01", 'a', 1);
    assert_int_equal(rawconn_send_msg(&rc, &msg), 0);
    expect_error(&rc, 2, DAFFI_E_NO_CALLBACK);

    json_t *j = monitor_next(&w);
    const char *params = jstr(j, "params");
    assert_true(strlen(params) < 300);
    assert_non_null(strstr(params, "zzzzzzzz"));
    assert_string_equal(params + strlen(params) - 3, "...");
    json_decref(j);
    j = monitor_next(&w);
    /* control bytes are shown escaped, as the access log shows them */
    assert_string_equal(jstr(j, "callback"), "we\"ird\\x01");
    json_decref(j);
    rawmsg_destroy(&msg);
    rawconn_close(&rc);
    aconn_close(&w);
}

static void test_watchers_gauge_follows_watchers_and_others_are_served(void **state)
{
    mdaemon *m = *state;
    wait_metric(m, "daffid_monitor_watchers", 0);
    aconn a, b;
    monitor_on(&a, m->admin);
    monitor_on(&b, m->admin);
    wait_metric(m, "daffid_monitor_watchers", 2);
    /* a watcher may still send commands: the reply comes between the lines */
    json_t *r = aconn_cmd(&a, "status");
    assert_admin_ok(r, "status");
    json_decref(r);
    /* a watcher is not closed by the admin idle timeout (300 ms here) */
    usleep(600 * 1000);
    rawconn rc;
    expect_open(&rc, m->d.tcp);
    expect_send_ii(&rc, 1, "add", 1, 1);
    expect_result_int(&rc, 1, 2);
    json_t *ja = monitor_next(&a), *jb = monitor_next(&b);
    assert_string_equal(jstr(ja, "params"), "[1, 1]");
    assert_string_equal(jstr(jb, "params"), "[1, 1]");
    json_decref(ja);
    json_decref(jb);
    aconn_close(&a);
    wait_metric(m, "daffid_monitor_watchers", 1);
    aconn_close(&b);
    wait_metric(m, "daffid_monitor_watchers", 0);
    /* with nobody watching, calls are still answered */
    expect_send_ii(&rc, 2, "add", 2, 2);
    expect_result_int(&rc, 2, 4);
    rawconn_close(&rc);
}

static void test_a_watcher_that_stops_reading_is_told_what_it_missed(void **state)
{
    mdaemon *m = *state;
    long long dropped0 = metric(m, "daffid_monitor_dropped_total");
    assert_true(dropped0 >= 0);
    aconn w;
    monitor_on(&w, m->admin);
    rawconn rc;
    rawmsg msg;
    rawmsg_init(&msg);
    expect_open(&rc, m->d.tcp);
    /* lines of ~450 bytes: 4 MiB of unread output (plus the socket's buffers) is
     * fewer than 12,000 of them; send 16,000 calls, 500 at a time, reading nothing */
    enum { BATCH = 500, CALLS = 16000 };
    uint32_t id = 1;
    for (int b = 0; b < CALLS / BATCH; b++) {
        for (int i = 0; i < BATCH; i++, id++)
            send_str_call(&rc, &msg, id, "no_such_thing", 'q', 300);
        assert_int_equal(rawconn_send_msg(&rc, &msg), 0);
        for (int i = 0; i < BATCH; i++)
            assert_true(expect_response(&rc) > 0);
    }
    /* the daemon serves others meanwhile */
    expect_send_ii(&rc, id, "add", 5, 6);
    expect_result_int(&rc, id++, 11);

    /* read what was kept; once nothing more comes, one more call (the marker) lets the
     * sink write again: a "dropped" line comes before it. Every finished call is either
     * shown or counted as missed. */
    unsigned calls = 0, dropped_lines = 0;
    long long missed = 0;
    int marker_sent = 0, marker_seen = 0;
    while (!marker_seen) {
        if (!marker_sent && w.len == 0) {
            struct pollfd p = {w.fd, POLLIN, 0};
            if (poll(&p, 1, 100) == 0) {
                expect_send_ii(&rc, id, "add", 1, 2);
                expect_result_int(&rc, id++, 3);
                marker_sent = 1;
            }
        }
        json_t *j = monitor_next(&w);
        if (strcmp(jstr(j, "event"), "dropped") == 0) {
            missed += jint(j, "calls");
            dropped_lines++;
        } else if (marker_sent && strcmp(jstr(j, "params"), "[1, 2]") == 0) {
            marker_seen = 1;
        } else {
            calls++;
        }
        json_decref(j);
    }
    assert_true(dropped_lines > 0);
    assert_true(missed > 0);
    assert_true(calls > 0);
    assert_int_equal((long long)calls + missed, (long long)CALLS + 1);
    assert_int_equal(metric(m, "daffid_monitor_dropped_total"), dropped0 + missed);
    rawmsg_destroy(&msg);
    rawconn_close(&rc);
    aconn_close(&w);
}

/* Starts `daffictl -a ADMIN ARGS > outfile` in the background and waits until daffid
 * counts it as a watcher. */
static void ctl_monitor_start(const mdaemon *m, const char *args, const char *outfile)
{
    static char cmd[PATH_MAX + 1024];
    snprintf(cmd, sizeof(cmd), "%s/daffictl -a %s %s > %s 2>&1 &", m->d.build, m->admin, args,
             outfile);
    assert_int_equal(system(cmd), 0);
    wait_metric(m, "daffid_monitor_watchers", 1);
}

static void test_daffictl_monitor_prints_n_calls(void **state)
{
    mdaemon *m = *state;
    static char out[1 << 14];
    char outfile[300];
    snprintf(outfile, sizeof(outfile), "%s/monitor.out", m->d.dir);

    ctl_monitor_start(m, "monitor -n 2", outfile);
    rawconn rc;
    expect_open(&rc, m->d.tcp);
    expect_send_ii(&rc, 1, "add", 20, 22);
    expect_result_int(&rc, 1, 42);
    expect_send_ii(&rc, 2, "nosuch", 1, 1);
    expect_error(&rc, 2, DAFFI_E_NO_CALLBACK);
    wait_metric(m, "daffid_monitor_watchers", 0); /* it left after 2 lines */
    assert_int_equal(expect_run(out, sizeof(out), "cat %s", outfile), 0);
    assert_non_null(strstr(out, "add [20, 22] -> ok"));
    assert_non_null(strstr(out, "nosuch [1, 1] -> no_callback"));

    ctl_monitor_start(m, "--json monitor -n 1", outfile);
    expect_send_ii(&rc, 3, "add", 1, 2);
    expect_result_int(&rc, 3, 3);
    wait_metric(m, "daffid_monitor_watchers", 0);
    assert_int_equal(expect_run(out, sizeof(out), "cat %s", outfile), 0);
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    assert_non_null(j);
    assert_string_equal(jstr(j, "callback"), "add");
    assert_string_equal(jstr(j, "params"), "[1, 2]");
    json_decref(j);
    rawconn_close(&rc);
    /* bad arguments are named */
    assert_true(expect_run(out, sizeof(out), "%s/daffictl -a %s monitor -n zero 2>&1",
                           m->d.build, m->admin) != 0);
    assert_non_null(strstr(out, "-n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_watcher_sees_every_call_with_its_params_and_outcome),
        cmocka_unit_test(test_long_params_are_cut_and_names_escaped),
        cmocka_unit_test(test_watchers_gauge_follows_watchers_and_others_are_served),
        cmocka_unit_test(test_a_watcher_that_stops_reading_is_told_what_it_missed),
        cmocka_unit_test(test_daffictl_monitor_prints_n_calls),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("admin monitor", tests, group_setup, group_teardown);
}
