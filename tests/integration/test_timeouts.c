/*
 * test_timeouts.c - slow and silent peers ([limits] idle_timeout, read_timeout) and the
 * warning of connections refused at max_connections.
 *
 * Slowloris: 100 connections that each sent the first bytes of a message and nothing
 * more held every slot of max_connections = 100 for as long as they liked; read_timeout
 * closes them, so a new client is served within the timeout. A message dripping one byte
 * a second is closed at read_timeout, long before it would complete. idle_timeout
 * closes a connection that sends no complete message for that long, never one with a
 * call in flight, one that keeps calling, a member of a router (its heartbeats watch
 * it) or a subscriber of membership events. The refusal warning comes at most once a
 * second with the count refused since the previous line.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
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
#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define SLOW_CONNS 100

typedef struct tfix {
    tdaemon d;
    char admin[PATH_MAX];
    tdaemon worker;                /* the router group only */
} tfix;

/* Starts daffid (example plugins, an admin socket) with the NULL-terminated [limits]
 * overrides. Returns 0 or -1. */
static int start_with(void **state, const char *const *limits)
{
    tfix *f = calloc(1, sizeof(*f));
    char o_admin[PATH_MAX + 32];
    const char *ov[8];
    size_t n = 0;

    *state = NULL;
    if (f == NULL || tdaemon_init(&f->d) == -1 || tdaemon_add_example_plugins(&f->d) == -1) {
        if (f != NULL)
            tdaemon_cleanup(&f->d);
        free(f);
        return -1;
    }
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->d.dir);
    snprintf(o_admin, sizeof(o_admin), "admin.socket=%s", f->admin);
    ov[n++] = o_admin;
    for (size_t i = 0; limits[i] != NULL && n < 7; i++)
        ov[n++] = limits[i];
    ov[n] = NULL;
    if (tdaemon_start(&f->d, ov) == -1) {
        tdaemon_cleanup(&f->d);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup_slowloris(void **state)
{
    static const char *const o[] = { "limits.max_connections=100", "limits.read_timeout=2s",
                                     "limits.idle_timeout=3s", NULL };
    return start_with(state, o);
}

static int setup_drip(void **state)
{
    static const char *const o[] = { "limits.read_timeout=3s", "limits.idle_timeout=0",
                                     NULL };
    return start_with(state, o);
}

static int setup_idle(void **state)
{
    static const char *const o[] = { "limits.idle_timeout=1s", "limits.read_timeout=0",
                                     NULL };
    return start_with(state, o);
}

static int setup_refusals(void **state)
{
    static const char *const o[] = { "limits.max_connections=1", "limits.idle_timeout=0",
                                     "limits.read_timeout=0", NULL };
    return start_with(state, o);
}

static int teardown(void **state)
{
    tfix *f = *state;
    if (f == NULL)
        return 0;
    int rc = tcluster_stop(&f->worker);

    if (tcluster_stop(&f->d) == -1)
        rc = -1;
    free(f);
    return rc;
}

/* Admin `status` connections, polled until it is want (at most 5 s). */
static void wait_connections(const tfix *f, json_int_t want)
{
    int64_t t0 = expect_now_ms();
    json_int_t n = -1;

    while (expect_now_ms() - t0 < 5000) {
        json_t *r = aconn_once(f->admin, "status");
        n = jint(r, "connections");
        json_decref(r);
        if (n == want)
            return;
        usleep(20 * 1000);
    }
    fail_msg("status connections stayed %lld, not %lld", (long long)n, (long long)want);
}

/* 1 when a fresh connection to addr is answered a ping within 500 ms. */
static int served_now(const char *addr)
{
    rawconn c;
    rawmsg m;
    int ok = 0;

    if (rawconn_open(&c, addr, 500) == -1)
        return 0;
    rawmsg_init(&m);
    rawmsg_request(&m, 1, "daffi.ping", 0);
    if (rawconn_send_msg(&c, &m) == 0 && rawconn_read(&c, 500) == RAWCONN_OK &&
        c.msg.kind == DAFFI_MSG_RESPONSE && c.msg.error->type == MSGPACK_OBJECT_NIL)
        ok = 1;
    rawmsg_destroy(&m);
    rawconn_close(&c);
    return ok;
}

/* 100 connections holding the first 3 bytes of a request each fill max_connections =
 * 100: a new client is refused while they last, and served within read_timeout (2 s)
 * plus a little once they are closed. */
static void test_slow_connections_at_max_connections_lock_nobody_out_past_read_timeout(
    void **state)
{
    tfix *f = *state;
    rawconn *slow = calloc(SLOW_CONNS, sizeof(*slow));
    json_int_t closed0 = tcluster_admin_counter(f->admin, "read_timeouts");

    assert_non_null(slow);
    wait_connections(f, 0); /* the start's readiness probes are gone */
    for (int i = 0; i < SLOW_CONNS; i++) {
        expect_open(&slow[i], f->d.tcp);
        expect_send_bytes(&slow[i], "\x94\x00\x01", 3); /* [0, 1, ... never finished */
    }
    int64_t t0 = expect_now_ms();
    wait_connections(f, SLOW_CONNS);
    if (served_now(f->d.tcp))
        fail_msg("a new client was served with max_connections slow connections open");
    int64_t served_at = -1;
    while (expect_now_ms() - t0 < 8000) {
        if (served_now(f->d.tcp)) {
            served_at = expect_now_ms() - t0;
            break;
        }
        usleep(100 * 1000);
    }
    print_message("a new client was served %lld ms after the slow connections filled "
                  "max_connections\n", (long long)served_at);
    if (served_at == -1)
        fail_msg("new clients were locked out for more than 8 s (read_timeout 2 s)");
    if (served_at > 3500)
        fail_msg("new clients were locked out for %lld ms (read_timeout 2 s)",
                 (long long)served_at);
    for (int i = 0; i < SLOW_CONNS; i++) {
        expect_closed(&slow[i], NULL);
        rawconn_close(&slow[i]);
    }
    free(slow);
    json_int_t closed = tcluster_admin_counter(f->admin, "read_timeouts") - closed0;
    if (closed != SLOW_CONNS)
        fail_msg("read_timeouts counted %lld of %d slow connections", (long long)closed,
                 SLOW_CONNS);
    assert_true(tcluster_log_contains(&f->d, "event=conn.read_timeout", 1000));
}

/* A ping request sent one byte a second (15 bytes: 15 s) is closed at read_timeout
 * (3 s) after its first byte; a bystander is served throughout. */
static void test_a_message_dripping_a_byte_a_second_is_closed_at_read_timeout(void **state)
{
    tfix *f = *state;
    rawconn c, bystander;
    rawmsg m;
    int64_t closed_at = -1;

    rawmsg_init(&m);
    rawmsg_request(&m, 9, "daffi.ping", 0);
    expect_open(&bystander, f->d.tcp);
    expect_open(&c, f->d.tcp);
    int64_t t0 = expect_now_ms();
    for (size_t i = 0; i < m.sb.size && closed_at == -1; i++) {
        if (rawconn_send(&c, m.sb.data + i, 1) == -1) {
            closed_at = expect_now_ms() - t0;
            break;
        }
        rawconn_status st = rawconn_read(&c, 1000);
        if (st == RAWCONN_EOF)
            closed_at = expect_now_ms() - t0;
        else if (st != RAWCONN_TIMEOUT)
            fail_msg("the dripping connection got %s", rawconn_status_name(st));
        expect_ping(&bystander, (uint32_t)i + 1);
    }
    print_message("the dripping connection was closed %lld ms after its first byte\n",
                  (long long)closed_at);
    if (closed_at < 2500 || closed_at > 5000)
        fail_msg("closed after %lld ms, not at read_timeout (3 s)", (long long)closed_at);
    assert_true(tcluster_log_contains(&f->d, "event=conn.read_timeout", 1000));
    rawmsg_destroy(&m);
    rawconn_close(&c);
    rawconn_close(&bystander);
}

/* Waits for c to be closed; returns after how many ms (from t0), or fails. */
static int64_t closed_after(rawconn *c, int64_t t0, int within_ms)
{
    if (rawconn_wait_eof(c, within_ms, NULL) != RAWCONN_EOF)
        fail_msg("the connection was not closed within %d ms", within_ms);
    return expect_now_ms() - t0;
}

/* A connection that sends nothing is closed at idle_timeout (1 s). */
static void test_a_silent_connection_is_closed_at_idle_timeout(void **state)
{
    tfix *f = *state;
    rawconn c;
    json_int_t idle0 = tcluster_admin_counter(f->admin, "idle_timeouts");

    expect_open(&c, f->d.tcp);
    int64_t t0 = expect_now_ms();
    int64_t ms = closed_after(&c, t0, 4000);
    print_message("a silent connection was closed after %lld ms\n", (long long)ms);
    if (ms < 800 || ms > 2500)
        fail_msg("closed after %lld ms, not at idle_timeout (1 s)", (long long)ms);
    rawconn_close(&c);
    assert_true(tcluster_admin_counter(f->admin, "idle_timeouts") >= idle0 + 1);
    assert_true(tcluster_log_contains(&f->d, "event=conn.idle_timeout", 1000));
}

/* A call in flight for 2.5 s keeps its connection: it is answered, and the connection
 * is idle (and closed) only a second after the answer. */
static void test_a_connection_with_a_call_in_flight_is_not_idle(void **state)
{
    tfix *f = *state;
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, f->d.tcp);
    msgpack_packer *pk = rawmsg_request(&m, 3, "echo_after", 2);
    msgpack_pack_int(pk, 2500);
    msgpack_pack_int(pk, 77);
    expect_send(&c, &m);
    expect_result_int(&c, 3, 77);
    int64_t t0 = expect_now_ms();
    int64_t ms = closed_after(&c, t0, 4000);
    if (ms < 800 || ms > 2500)
        fail_msg("closed %lld ms after the answer, not at idle_timeout (1 s)", (long long)ms);
    rawmsg_destroy(&m);
    rawconn_close(&c);
}

/* A connection that calls every 400 ms stays open for 3 s. */
static void test_a_connection_that_keeps_calling_is_not_idle(void **state)
{
    tfix *f = *state;
    rawconn c;

    expect_open(&c, f->d.tcp);
    for (uint32_t i = 1; i <= 8; i++) {
        expect_ping(&c, i);
        usleep(400 * 1000);
    }
    expect_ping(&c, 99);
    rawconn_close(&c);
}

/* With max_connections = 1 held, 60 connections refused over about 2.4 s log at most
 * one line a second (4 in all: the first at once, then one a second and the rest once
 * the refusals stop); the counts of every line add up to connections_rejected. */
static void test_the_refusal_warning_comes_once_a_second_with_a_count(void **state)
{
    tfix *f = *state;
    rawconn held;
    int before = tcluster_log_count(&f->d, "event=listen.max_connections");

    wait_connections(f, 0);
    json_int_t rejected0 = tcluster_admin_counter(f->admin, "connections_rejected");
    expect_open(&held, f->d.tcp);
    expect_ping(&held, 1);
    wait_connections(f, 1);
    int64_t t0 = expect_now_ms();
    for (int i = 0; i < 60; i++) {
        rawconn c;
        expect_open(&c, f->d.tcp);
        if (rawconn_wait_eof(&c, 2000, NULL) != RAWCONN_EOF)
            fail_msg("connection %d past max_connections was not refused", i);
        rawconn_close(&c);
        usleep(40 * 1000);
    }
    int64_t took = expect_now_ms() - t0;
    json_int_t rejected = tcluster_admin_counter(f->admin, "connections_rejected");
    assert_int_equal(rejected - rejected0, 60);
    /* the count of the last second comes when that second is over */
    char *log = malloc(4 << 20);
    int lines = 0;
    long logged = 0;
    assert_non_null(log);
    for (int64_t w0 = expect_now_ms(); expect_now_ms() - w0 < 3000; usleep(50 * 1000)) {
        assert_true(tdaemon_read_log(&f->d, log, 4 << 20) > 0);
        lines = 0;
        logged = 0;
        for (const char *p = strstr(log, "event=listen.max_connections"); p != NULL;
             p = strstr(p + 1, "event=listen.max_connections")) {
            const char *r = strstr(p, "refused=");
            const char *eol = strchr(p, '\n');
            if (r == NULL || (eol != NULL && r > eol))
                fail_msg("a listen.max_connections line has no refused= count");
            logged += atol(r + 8);
            lines++;
        }
        if (logged == rejected)
            break;
    }
    lines -= before;
    print_message("60 refusals in %lld ms: %d warning lines; the lines count %ld of %lld "
                  "refused since the start\n", (long long)took, lines, logged,
                  (long long)rejected);
    free(log);
    if (lines > 2 + (int)(took / 1000))
        fail_msg("%d warning lines for 60 refusals in %lld ms (one a second)", lines,
                 (long long)took);
    if (logged != rejected)
        fail_msg("the warning lines count %ld refusals, connections_rejected %lld", logged,
                 (long long)rejected);
    rawconn_close(&held);
}

/* A router with idle_timeout = 1 s and heartbeats every 5 s: a worker that said hello
 * (its heartbeats watch it) and a subscriber of membership events stay for 3 s, while a
 * silent caller is closed. */
static int setup_router(void **state)
{
    tfix *f = calloc(1, sizeof(*f));
    static const char *const plugins[] = { "calc", NULL };
    const char *extra = "heartbeat = 5s\n[limits]\nidle_timeout = 1s\n";

    if (f == NULL)
        return -1;
    *state = f;
    if (tcluster_router_start(&f->d, "router", extra, f->admin, sizeof(f->admin)) == -1 ||
        tcluster_worker_up(&f->worker, f->d.tcp, "w1", "heartbeat = 5s\n", plugins,
                           10000) == -1)
        return -1;
    return 0;
}

static void test_members_and_subscribers_of_a_router_are_not_idle(void **state)
{
    tfix *f = *state;
    rawconn sub, silent;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&sub, f->d.tcp);
    msgpack_packer *pk = rawmsg_request(&m, 5, "daffi.subscribe", 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_str(pk, 7);
    msgpack_pack_str_body(pk, "members", 7);
    expect_send(&sub, &m);
    expect_response(&sub);
    expect_open(&silent, f->d.tcp);
    int64_t t0 = expect_now_ms();
    int64_t ms = closed_after(&silent, t0, 4000);
    if (ms > 2500)
        fail_msg("a silent caller of the router was closed after %lld ms", (long long)ms);
    usleep(2000 * 1000);
    assert_int_equal(tcluster_has_member(f->d.tcp, "w1"), 1);
    expect_ping(&sub, 6);
    rawconn_close(&silent);
    rawconn_close(&sub);
    rawmsg_destroy(&m);
    expect_serving(f->d.tcp);
}

/* An isolated plugin (isolation = process) with idle_timeout = 1 s: the links between
 * daffid and its child carry no call for 3 s, and are not closed for it: the next call
 * is served by the same child (no restart). */
static int setup_isolated(void **state)
{
    tfix *f = calloc(1, sizeof(*f));
    char o_admin[PATH_MAX + 32];
    const char *ov[] = { o_admin, "limits.idle_timeout=1s", NULL };

    *state = f;
    if (f == NULL || tdaemon_init(&f->d) == -1 ||
        tdaemon_add_plugin(&f->d, "echo", "isolation = process\n") == -1)
        return -1;
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->d.dir);
    snprintf(o_admin, sizeof(o_admin), "admin.socket=%s", f->admin);
    return tdaemon_start(&f->d, ov);
}

static void test_the_links_of_an_isolated_plugin_are_not_idle(void **state)
{
    tfix *f = *state;
    rawconn c;

    expect_open(&c, f->d.tcp);
    expect_send_raw_call(&c, 1, "echo", 1, "\x01", 1);
    expect_result_int(&c, 1, 1);
    rawconn_close(&c);
    usleep(3000 * 1000); /* three idle timeouts with no call on the links */
    expect_open(&c, f->d.tcp);
    expect_send_raw_call(&c, 2, "echo", 1, "\x02", 1);
    expect_result_int(&c, 2, 2);
    rawconn_close(&c);
    assert_int_equal(tcluster_admin_counter(f->admin, "isolated_restarts"), 0);
    if (tcluster_log_count(&f->d, "event=conn.idle_timeout peer=child") != 0 ||
        tcluster_log_count(&f->d, "event=conn.idle_timeout peer=parent") != 0)
        fail_msg("a link to the isolated plugin's child was closed as idle");
}

int main(void)
{
    const struct CMUnitTest slowloris[] = {
        cmocka_unit_test(
            test_slow_connections_at_max_connections_lock_nobody_out_past_read_timeout),
    };
    const struct CMUnitTest drip[] = {
        cmocka_unit_test(test_a_message_dripping_a_byte_a_second_is_closed_at_read_timeout),
    };
    const struct CMUnitTest idle[] = {
        cmocka_unit_test(test_a_silent_connection_is_closed_at_idle_timeout),
        cmocka_unit_test(test_a_connection_with_a_call_in_flight_is_not_idle),
        cmocka_unit_test(test_a_connection_that_keeps_calling_is_not_idle),
    };
    const struct CMUnitTest refusals[] = {
        cmocka_unit_test(test_the_refusal_warning_comes_once_a_second_with_a_count),
    };
    const struct CMUnitTest router[] = {
        cmocka_unit_test(test_members_and_subscribers_of_a_router_are_not_idle),
    };
    const struct CMUnitTest isolated[] = {
        cmocka_unit_test(test_the_links_of_an_isolated_plugin_are_not_idle),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("max_connections=100 read_timeout=2s", slowloris,
                                          setup_slowloris, teardown);
    failed += cmocka_run_group_tests_name("read_timeout=3s", drip, setup_drip, teardown);
    failed += cmocka_run_group_tests_name("idle_timeout=1s", idle, setup_idle, teardown);
    failed += cmocka_run_group_tests_name("max_connections=1", refusals, setup_refusals,
                                          teardown);
    failed += cmocka_run_group_tests_name("router idle_timeout=1s", router, setup_router,
                                          teardown);
    failed += cmocka_run_group_tests_name("isolated echo idle_timeout=1s", isolated,
                                          setup_isolated, teardown);
    return failed;
}
