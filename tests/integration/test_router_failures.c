/*
 * test_router_failures.c - what a router does when members and routers fail (daffi's
 * failure scenarios): a worker killed mid-call fails its calls with UNAVAILABLE at
 * once; a stopped (SIGSTOP) worker makes calls time out, then is dropped by the
 * heartbeat with a left event, and comes back by itself after SIGCONT; a member that
 * ignores heartbeats is dropped; a worker notices a silent router and reconnects;
 * workers come back and serve after the router is killed and restarted; timeout_ms is
 * enforced to the millisecond and late answers are discarded and counted.
 *
 * Each test starts its own router and workers (they are killed on purpose), with
 * heartbeats set per test: long where only a closed connection may explain an
 * outcome, short where the heartbeat is what is tested.
 */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rawmember.h"
#include "../support/rexpect.h"

#define START_MS 10000
/* libevent's loop clock is coarse (CLOCK_MONOTONIC_COARSE: it may lag a few ms), so
 * a deadline can fire up to that much before the exact time measured here. */
#define CLOCK_SLACK_MS 5
#define NWORKERS TCLUSTER_WORKERS

/* each test starts its own router and workers: cluster.h's set */
typedef tcluster_set fixture;

/* Starts the router with extra [server] keys and an admin socket in its dir. */
static void start_router(fixture *f, const char *extra)
{
    assert_int_equal(tcluster_router_start(&f->router, "hub", extra, f->admin,
                                           sizeof(f->admin)), 0);
}

/* Starts worker i named name (echo) with extra [server] keys; waits until it is a
 * member. */
static void start_worker(fixture *f, int i, const char *name, const char *extra)
{
    assert_int_equal(tcluster_worker_up(&f->workers[i], f->router.tcp, name, extra,
                                        (const char *const[]){ "echo", NULL }, START_MS),
                     0);
}

/* Sends echo_after(ms, value) as msgid id; with timeout_ms > 0 through daffi.call with
 * that timeout. */
static void send_echo_after(rawconn *c, uint32_t id, int ms, int value, int timeout_ms)
{
    rawmsg m;

    rawmsg_init(&m);
    if (timeout_ms > 0) {
        msgpack_packer *pk = rawmsg_request(&m, id, "daffi.call", 3);
        daffi_pack_cstr(pk, "echo_after");
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, ms);
        msgpack_pack_int(pk, value);
        msgpack_pack_map(pk, 1);
        daffi_pack_cstr(pk, "timeout_ms");
        msgpack_pack_int(pk, timeout_ms);
    } else {
        msgpack_packer *pk = rawmsg_request(&m, id, "echo_after", 2);
        msgpack_pack_int(pk, ms);
        msgpack_pack_int(pk, value);
    }
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* Calls echo(v) as msgid id and asserts the answer v. */
static void echo_ok(rawconn *c, uint32_t id, int v)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_pack_int(rawmsg_request(&m, id, "echo", 1), v);
    expect_send(c, &m);
    rawmsg_destroy(&m);
    expect_result_int(c, id, v);
}

/* Waits on c (daffi.wait, its own loop) until the NULL-terminated names are members;
 * returns the milliseconds it took. */
static int64_t wait_members(rawconn *c, uint32_t id, const char *const *names, int ms)
{
    uint32_t n = 0;
    int64_t t0 = expect_now_ms();

    while (names[n] != NULL)
        n++;
    rexpect_send_wait(c, id, names, ms);
    rawconn_status st = rawconn_read(c, ms + 2000);
    if (st != RAWCONN_OK)
        fail_msg("daffi.wait got no answer: %s", rawconn_status_name(st));
    if (c->msg.kind != DAFFI_MSG_RESPONSE || c->msg.msgid != id ||
        c->msg.error->type != MSGPACK_OBJECT_NIL) {
        char d[512];
        fail_msg("daffi.wait for %u member(s) did not answer true within %d ms: %s", n, ms,
                 expect_describe(c->msg.kind == DAFFI_MSG_RESPONSE ? c->msg.error
                                                                   : c->msg.params,
                                 d, sizeof(d)));
    }
    return expect_now_ms() - t0;
}

/* ---- killed and stopped workers ------------------------------------------------- */

/* A worker killed (SIGKILL) with a call in flight: the caller gets UNAVAILABLE at
 * once - from the closed connection, long before a heartbeat (5 s x 3 here) could
 * notice - and subscribers see it leave. */
static void test_a_killed_worker_fails_its_call_in_flight_with_unavailable_at_once(void **state)
{
    fixture *f = *state;
    rawconn c, sub;

    start_router(f, "heartbeat = 5s\nheartbeat_misses = 3\n");
    /* subscribed before the worker joins: the join is the first event */
    expect_open(&sub, f->router.unix_addr);
    rexpect_subscribe(&sub, 1);
    start_worker(f, 0, "kw", "heartbeat = 5s\n");
    rexpect_event(&sub, "joined", "kw");
    expect_open(&c, f->router.tcp);
    send_echo_after(&c, 1, 20000, 1, 0);
    /* echo(2) behind it on the same member connection: once it is answered, the
     * worker has echo_after(20000) in hand */
    echo_ok(&c, 2, 2);
    int64_t t0 = expect_now_ms();
    assert_int_equal(tdaemon_signal(&f->workers[0], SIGKILL), 0);
    expect_error(&c, 1, DAFFI_E_UNAVAILABLE);
    int64_t ms = expect_now_ms() - t0;
    print_message("the call in flight failed %lld ms after SIGKILL\n", (long long)ms);
    if (ms > 2000)
        fail_msg("UNAVAILABLE took %lld ms after the worker died", (long long)ms);
    rexpect_event(&sub, "left", "kw");
    rawmsg m;
    rawmsg_init(&m);
    msgpack_pack_int(rawmsg_request(&m, 3, "echo", 1), 3);
    expect_send(&c, &m);
    expect_error(&c, 3, DAFFI_E_NO_CALLBACK);
    rawmsg_destroy(&m);
    tdaemon_wait_exit(&f->workers[0], 5000);
    rawconn_close(&c);
    rawconn_close(&sub);
}

/* A stopped worker (SIGSTOP): a call with timeout_ms times out at that time; a call
 * without one waits until the heartbeat (300 ms x 3) drops the worker and then fails
 * UNAVAILABLE; subscribers see it leave. After SIGCONT it reconnects by itself and
 * serves again. */
static void test_a_stopped_worker_times_out_then_is_dropped_by_the_heartbeat(void **state)
{
    fixture *f = *state;
    rawconn c, c2, sub;
    const char *names[] = { "sw", NULL };

    start_router(f, "heartbeat = 300ms\nheartbeat_misses = 3\ndefault_timeout = 20s\n");
    expect_open(&sub, f->router.unix_addr);
    rexpect_subscribe(&sub, 1);
    start_worker(f, 0, "sw", "heartbeat = 1s\nreconnect_max = 500ms\n");
    rexpect_event(&sub, "joined", "sw");
    expect_open(&c, f->router.tcp);
    expect_open(&c2, f->router.tcp);
    echo_ok(&c, 1, 1);
    int64_t t0 = expect_now_ms();
    assert_int_equal(tcluster_freeze(&f->workers[0], 5000), 0);
    rawmsg m;
    rawmsg_init(&m);
    msgpack_pack_int(rawmsg_request(&m, 9, "echo", 1), 9);
    expect_send(&c2, &m); /* no timeout_ms: only the heartbeat can end it */
    rawmsg_destroy(&m);
    send_echo_after(&c, 2, 0, 2, 150);
    expect_error(&c, 2, DAFFI_E_TIMEOUT);
    int64_t ms = expect_now_ms() - t0;
    print_message("daffi.call with timeout_ms 150 timed out after %lld ms\n", (long long)ms);
    if (ms < 150 - CLOCK_SLACK_MS)
        fail_msg("the call timed out after %lld ms, before its timeout_ms", (long long)ms);

    expect_error(&c2, 9, DAFFI_E_UNAVAILABLE);
    int64_t dropped = expect_now_ms() - t0;
    rexpect_event(&sub, "left", "sw");
    print_message("the stopped worker was dropped %lld ms after SIGSTOP (heartbeat 300 ms "
                  "x 3)\n", (long long)dropped);
    if (dropped < 600 - CLOCK_SLACK_MS || dropped > 5000)
        fail_msg("the stopped worker was dropped after %lld ms; heartbeat 300 ms x 3",
                 (long long)dropped);

    assert_int_equal(tdaemon_signal(&f->workers[0], SIGCONT), 0);
    int64_t back = wait_members(&c, 3, names, 8000);
    rexpect_event(&sub, "joined", "sw");
    print_message("after SIGCONT the worker was back in %lld ms\n", (long long)back);
    echo_ok(&c, 4, 4);
    rawconn_close(&c);
    rawconn_close(&c2);
    rawconn_close(&sub);
}

/* A member that stops answering heartbeats (a raw connection that no longer reads)
 * is dropped, its connection closed and its leave announced. */
static void test_a_member_ignoring_heartbeats_is_dropped(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "hb_cb", NULL };
    rawconn mem, sub;

    start_router(f, "heartbeat = 200ms\nheartbeat_misses = 3\n");
    expect_open(&sub, f->router.tcp);
    rexpect_subscribe(&sub, 1);
    if (rawmember_join(&mem, f->router.tcp, "hb_deaf", cbs, NULL, 0) != 0)
        fail_msg("hb_deaf could not join");
    rexpect_event(&sub, "joined", "hb_deaf");
    int64_t t0 = expect_now_ms();
    rexpect_event(&sub, "left", "hb_deaf");
    int64_t ms = expect_now_ms() - t0;
    print_message("dropped %lld ms after its last word (heartbeat 200 ms x 3)\n",
                  (long long)ms);
    if (ms < 400 - CLOCK_SLACK_MS)
        fail_msg("a member silent for %lld ms was dropped before 3 heartbeats", (long long)ms);
    unsigned nmsgs = 0;
    expect_closed(&mem, &nmsgs);
    rawconn_close(&mem);
    rawconn_close(&sub);
}

/* ---- router failures -------------------------------------------------------------- */

/* The router is killed (SIGKILL) and started again on the same addresses: both
 * workers are back and serving within a few seconds, with no manual step. */
static void test_workers_come_back_after_the_router_is_killed_and_restarted(void **state)
{
    fixture *f = *state;
    const char *names[] = { "rw1", "rw2", NULL };
    rawconn c;

    start_router(f, "heartbeat = 1s\n");
    start_worker(f, 0, "rw1", "heartbeat = 1s\nreconnect_max = 1s\n");
    start_worker(f, 1, "rw2", "heartbeat = 1s\nreconnect_max = 1s\n");
    assert_int_equal(tdaemon_signal(&f->router, SIGKILL), 0);
    assert_int_equal(tdaemon_wait_exit(&f->router, 5000), 1);
    /* the workers keep running without their router */
    struct timespec ts = { 0, 300 * 1000000L };
    nanosleep(&ts, NULL);
    assert_true(tdaemon_alive(&f->workers[0]));
    assert_true(tdaemon_alive(&f->workers[1]));

    /* measured from the moment the router accepts again: how long its own start takes
     * is not the workers' doing (seconds under a sanitizer on a loaded machine) */
    assert_int_equal(tdaemon_start(&f->router, NULL), 0);
    int64_t t0 = expect_now_ms();
    expect_open(&c, f->router.tcp);
    wait_members(&c, 1, names, 10000);
    int64_t ms = expect_now_ms() - t0;
    print_message("both workers were back %lld ms after the router restarted "
                  "(reconnect_max = 1s)\n", (long long)ms);
    if (ms > 5000)
        fail_msg("the workers took %lld ms to come back", (long long)ms);
    for (uint32_t i = 0; i < 4; i++)
        echo_ok(&c, 10 + i, (int)i);
    rawconn_close(&c);
}

/* A worker whose router goes silent (SIGSTOP; the worker's heartbeat 200 ms x 3) drops
 * its links and connects them again once the router answers: it registers anew and
 * serves. (Subscribers see sr leave and join again only when the router reads the old
 * links' end before the new hellos: a link of the same session may also join the
 * member that is still there, PROTOCOL.md "Members".) */
static void test_a_worker_leaves_a_silent_router_and_reconnects(void **state)
{
    fixture *f = *state;
    const char *names[] = { "sr", NULL };
    rawconn c, sub;

    start_router(f, "heartbeat = 10s\n");
    expect_open(&sub, f->router.tcp);
    rexpect_subscribe(&sub, 1);
    start_worker(f, 0, "sr", "heartbeat = 200ms\nheartbeat_misses = 3\nreconnect_max = 300ms\n");
    rexpect_event(&sub, "joined", "sr");
    int registered = tcluster_log_count(&f->workers[0], "worker.registered");
    assert_int_equal(tcluster_freeze(&f->router, 5000), 0);
    /* the worker's log says it gave up on the router */
    int silent = tcluster_log_contains(&f->workers[0], "heartbeat.silent", 5000);
    assert_int_equal(tdaemon_signal(&f->router, SIGCONT), 0);
    if (!silent) {
        tdaemon_dump_log(&f->workers[0]);
        fail_msg("the worker did not notice its router was silent");
    }
    int64_t until = expect_now_ms() + expect_timeout_ms();
    while (tcluster_log_count(&f->workers[0], "worker.registered") <= registered &&
           expect_now_ms() < until) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (tcluster_log_count(&f->workers[0], "worker.registered") <= registered)
        fail_msg("the worker did not register again after its router answered");
    expect_open(&c, f->router.tcp);
    wait_members(&c, 1, names, 5000);
    echo_ok(&c, 2, 2);
    rawconn_close(&c);
    rawconn_close(&sub);
}

/* ---- graceful shutdown ------------------------------------------------------------ */

/* SIGTERM drains a router as it drains a service: a call it forwarded before the
 * signal is answered with its result, not failed, and the router then exits 0. */
static void test_a_stopping_router_lets_its_forwarded_calls_finish(void **state)
{
    fixture *f = *state;
    rawconn c;

    start_router(f, "heartbeat = 1s\n");
    start_worker(f, 0, "dr", "heartbeat = 1s\n");
    expect_open(&c, f->router.tcp);
    send_echo_after(&c, 1, 600, 7, 0);
    echo_ok(&c, 2, 2); /* behind it: the worker has echo_after in hand */
    assert_int_equal(tdaemon_signal(&f->router, SIGTERM), 0);
    rawconn_status st = rawconn_read(&c, expect_timeout_ms());
    if (st != RAWCONN_OK)
        fail_msg("the call forwarded before SIGTERM got no answer: %s",
                 rawconn_status_name(st));
    if (c.msg.kind != DAFFI_MSG_RESPONSE || c.msg.msgid != 1 ||
        c.msg.error->type != MSGPACK_OBJECT_NIL) {
        char d[512];
        fail_msg("the call forwarded before SIGTERM was not drained: %s",
                 expect_describe(c.msg.error, d, sizeof(d)));
    }
    assert_int_equal(c.msg.result->via.u64, 7);
    assert_int_equal(tdaemon_wait_exit(&f->router, TDAEMON_STOP_TIMEOUT_MS), 1);
    assert_true(WIFEXITED(f->router.status) && WEXITSTATUS(f->router.status) == 0);
    rawconn_close(&c);
}

/* A worker stopping (SIGTERM) finishes the calls it holds, and while it does, the
 * router sends new calls to the other worker: a rolling restart loses no call. */
static void test_a_draining_worker_gets_no_new_calls_while_another_serves(void **state)
{
    fixture *f = *state;
    rawconn slow, c;
    rawmsg m;

    start_router(f, "heartbeat = 1s\n");
    start_worker(f, 0, "dw1", "heartbeat = 1s\n");
    start_worker(f, 1, "dw2", "heartbeat = 1s\n");
    const char *both[] = { "dw1", "dw2", NULL };
    expect_open(&slow, f->router.tcp);
    expect_open(&c, f->router.tcp);
    wait_members(&c, 1, both, 5000);
    /* a slow call held by dw1 */
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.call", 3);
    daffi_pack_cstr(pk, "echo_after");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1000);
    msgpack_pack_int(pk, 1);
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "to");
    daffi_pack_cstr(pk, "dw1");
    expect_send(&slow, &m);
    /* echo(5) to dw1 behind it: once answered, dw1 has the slow call in hand */
    pk = rawmsg_request(&m, 2, "daffi.call", 3);
    daffi_pack_cstr(pk, "echo");
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 5);
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "to");
    daffi_pack_cstr(pk, "dw1");
    expect_send(&slow, &m);
    expect_result_int(&slow, 2, 5);
    assert_int_equal(tdaemon_signal(&f->workers[0], SIGTERM), 0);
    if (!tcluster_log_contains(&f->workers[0], "server.signal", 5000))
        fail_msg("dw1 did not log its SIGTERM");
    int refused = 0;
    char first[300] = "";
    for (uint32_t i = 0; i < 8; i++) {
        msgpack_pack_int(rawmsg_request(&m, 10 + i, "echo", 1), (int)i);
        expect_send(&c, &m);
        expect_response(&c);
        if (c.msg.error->type != MSGPACK_OBJECT_NIL) {
            if (refused++ == 0)
                expect_describe(c.msg.error, first, sizeof(first));
        }
    }
    if (refused > 0)
        fail_msg("%d of 8 calls made while dw1 drained failed although dw2 serves: %s",
                 refused, first);
    expect_result_int(&slow, 1, 1);
    assert_int_equal(tdaemon_wait_exit(&f->workers[0], TDAEMON_STOP_TIMEOUT_MS), 1);
    rawconn_close(&slow);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* ---- member_inflight ---------------------------------------------------------------- */

/* A member holding member_inflight calls is skipped: calls go to the members that
 * have room; when none has, the call is OVERLOADED at once. */
static void test_a_member_at_its_inflight_limit_is_skipped(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "lim_cb", NULL };
    rawconn full, c;
    rawmsg m;

    start_router(f, "heartbeat = 1s\nmember_inflight = 2\n");
    if (rawmember_join(&full, f->router.tcp, "lim_full", cbs, NULL, 0) != 0)
        fail_msg("lim_full could not join");
    expect_open(&c, f->router.tcp);
    rawmsg_init(&m);
    /* two calls fill lim_full (it never answers them) */
    for (uint32_t i = 1; i <= 2; i++) {
        msgpack_pack_int(rawmsg_request(&m, i, "lim_cb", 1), (int)i);
        expect_send(&c, &m);
        if (rawmember_read(&full, expect_timeout_ms()) != RAWCONN_OK ||
            full.msg.kind != DAFFI_MSG_REQUEST)
            fail_msg("lim_full did not receive call %u", i);
    }
    /* the third: no member has room */
    msgpack_pack_int(rawmsg_request(&m, 3, "lim_cb", 1), 3);
    expect_send(&c, &m);
    expect_error(&c, 3, DAFFI_E_OVERLOADED);
    /* a member with room joins: every call now goes to it */
    rmpool *p = rmpool_start(f->router.tcp, "lim_free", 1, cbs);
    assert_non_null(p);
    const char *names[] = { "lim_free0", NULL };
    wait_members(&c, 4, names, 5000);
    for (uint32_t i = 5; i < 11; i++) {
        msgpack_pack_int(rawmsg_request(&m, i, "lim_cb", 1), (int)i);
        expect_send(&c, &m);
        const msgpack_object *r = expect_result(&c, i);
        if (r->type != MSGPACK_OBJECT_ARRAY || !rexpect_obj_is(&r->via.array.ptr[0], "lim_free0"))
            fail_msg("call %u was not answered by lim_free0", i);
    }
    assert_int_equal(rmpool_answered(p, 0), 6);
    rmpool_stop(p);
    rawconn_close(&full);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* ---- timeouts ----------------------------------------------------------------------- */

/* timeout_ms is enforced in milliseconds (daffi rounds to seconds and sub-second means
 * "forever"): 1 ms and 120 ms time out at about that time. The deadline travels: the
 * worker stops waiting too, so the handlers' answers at 400 ms are discarded and
 * counted where they happen (the worker's late_completions), and the caller gets
 * nothing more. */
static void test_timeout_ms_is_enforced_to_the_millisecond_and_late_answers_counted(
    void **state)
{
    fixture *f = *state;
    rawconn c;
    char worker_admin[PATH_MAX], extra[PATH_MAX + 64];

    start_router(f, "heartbeat = 1s\n");
    snprintf(worker_admin, sizeof(worker_admin), "%s/tw-admin.sock", f->router.dir);
    snprintf(extra, sizeof(extra), "heartbeat = 1s\n[admin]\nsocket = %s\n", worker_admin);
    start_worker(f, 0, "tw", extra);
    expect_open(&c, f->router.tcp);
    long long late0 = tcluster_admin_counter(worker_admin, "late_completions");
    assert_true(late0 >= 0);
    const int timeouts[] = { 1, 120 };
    for (int i = 0; i < 2; i++) {
        int64_t t0 = expect_now_ms();
        send_echo_after(&c, 1 + (uint32_t)i, 400, 5, timeouts[i]);
        expect_error(&c, 1 + (uint32_t)i, DAFFI_E_TIMEOUT);
        int64_t ms = expect_now_ms() - t0;
        print_message("timeout_ms %d: TIMEOUT after %lld ms\n", timeouts[i], (long long)ms);
        if (ms < timeouts[i] - CLOCK_SLACK_MS || ms >= 400)
            fail_msg("timeout_ms %d answered after %lld ms", timeouts[i], (long long)ms);
    }
    /* the two answers come at 400 ms: discarded by the worker, counted there */
    int64_t deadline = expect_now_ms() + 3000;
    long long late1;
    while ((late1 = tcluster_admin_counter(worker_admin, "late_completions")) < late0 + 2 &&
           expect_now_ms() < deadline) {
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (late1 != late0 + 2)
        fail_msg("late_completions went %lld -> %lld for 2 late answers", late0, late1);
    expect_silence(&c, 100);
    echo_ok(&c, 3, 3);
    rawconn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_a_killed_worker_fails_its_call_in_flight_with_unavailable_at_once,
            tcluster_set_teardown),
        cmocka_unit_test_teardown(test_a_stopped_worker_times_out_then_is_dropped_by_the_heartbeat,
                                  tcluster_set_teardown),
        cmocka_unit_test_teardown(test_a_member_ignoring_heartbeats_is_dropped,
                                  tcluster_set_teardown),
        cmocka_unit_test_teardown(test_workers_come_back_after_the_router_is_killed_and_restarted,
                                  tcluster_set_teardown),
        cmocka_unit_test_teardown(test_a_worker_leaves_a_silent_router_and_reconnects,
                                  tcluster_set_teardown),
        cmocka_unit_test_teardown(
            test_timeout_ms_is_enforced_to_the_millisecond_and_late_answers_counted,
            tcluster_set_teardown),
        cmocka_unit_test_teardown(test_a_stopping_router_lets_its_forwarded_calls_finish,
                                  tcluster_set_teardown),
        cmocka_unit_test_teardown(test_a_draining_worker_gets_no_new_calls_while_another_serves,
                                  tcluster_set_teardown),
        cmocka_unit_test_teardown(test_a_member_at_its_inflight_limit_is_skipped,
                                  tcluster_set_teardown),
    };

    return cmocka_run_group_tests(tests, tcluster_set_setup, tcluster_group_free);
}
