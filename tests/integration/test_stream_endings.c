/*
 * test_stream_endings.c - how a stream (sdk/PROTOCOL.md section 8) ends when it does
 * not simply end: a handler error on a chunk (the stream fails, credit still flows,
 * the end answers the error), daffi.end as a notification (stream_nowait), daffi.abort
 * from either side, the sender disconnecting mid-stream (the receiver runs ABORT), the
 * receiving worker killed mid-stream (the sender gets daffi.abort, its end answers
 * UNAVAILABLE), the asynchronous client's connection lost, and each kind of client
 * refusing the other kind's stream. Direct to a service and through a router.
 *
 * The group (tests/support/tstream.h) runs a service "svc", a router "hub" and its
 * worker "w1", both daffids with echo (digest) and streamprobe
 * (tests/fixtures/plugins/streamprobe.c), whose counters show which steps the
 * receiver's streams went through. Tests that kill a daffid start their own.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <msgpack.h>

#include <daffi/client.h>
#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rawmember.h"
#include "../support/tstream.h"

#define HANG_MS 10000 /* longer than this is a hang, not slowness */
#define START_MS 10000

/* ==== failures ========================================================================= */

/* Fails the first chunk (an integer: digest takes bin or str), then sends three
 * windows' worth more with the synchronous client: each needs credit, so the sends
 * only succeed if the failed stream still returns it. The end answers the error. */
static void failed_stream_keeps_crediting(const char *address, const char *to)
{
    daffi_client *c = tstream_connect(address);
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object seven = {MSGPACK_OBJECT_POSITIVE_INTEGER, {.u64 = 7}};
    daffi_stream *s = daffi_stream_open(c, "digest", NULL, to, 2, HANG_MS, &err);
    int i;

    if (s == NULL)
        fail_msg("open at %s: %s", address, err.message);
    assert_int_equal(daffi_stream_send(s, &seven, HANG_MS, &err), 0);
    for (i = 0; i < 6; i++)
        if (daffi_stream_send_bin(s, "ok", 2, HANG_MS, &err) == -1)
            fail_msg("chunk %d after the failed one at %s: %s", i + 1, address, err.message);
    assert_int_equal(daffi_stream_end(s, HANG_MS, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(err.remote, 1);
    assert_non_null(strstr(err.message, "chunk 0"));
    assert_int_equal(daffi_ping(c, HANG_MS, NULL, &err), 0);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_a_handler_error_on_a_chunk_fails_the_stream_while_credit_flows(void **state)
{
    tstream_fixture *f = *state;

    failed_stream_keeps_crediting(f->svc.unix_addr, NULL);
    failed_stream_keeps_crediting(f->router.tcp, NULL);
    failed_stream_keeps_crediting(f->router.tcp, "w1");
}

static void test_an_async_stream_whose_chunk_fails_ends_with_that_error(void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = tstream_client_new(base, f->router.tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object seven = {MSGPACK_OBJECT_POSITIVE_INTEGER, {.u64 = 7}};
    tstream_ready_log rl = {0, 0, 0};
    tstream_outcome end = {0};
    daffi_stream *s = tstream_async_open(base, c, "digest", NULL, 2);
    int sent = 0, credit;

    daffi_stream_on_ready(s, tstream_log_ready, &rl);
    assert_int_equal(daffi_stream_send_async(s, &seven, &err), 0);
    /* six more chunks through a window of 2: each wait ends with credit */
    while (sent < 6) {
        if (daffi_stream_send_bin_async(s, "ok", 2, &err) == 0) {
            sent++;
            continue;
        }
        assert_int_equal(err.code, DAFFI_E_OVERLOADED);
        credit = rl.credit;
        if (!tstream_run_until(base, &rl.credit, credit + 1, HANG_MS))
            fail_msg("no credit after %d chunks: the failed stream stopped returning it", sent);
    }
    assert_int_equal(daffi_stream_end_async(s, HANG_MS, tstream_collect, &end, &err), 0);
    assert_true(tstream_run_until(base, &end.done, 1, HANG_MS));
    assert_false(end.ok);
    assert_int_equal(end.err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(end.err.message, "chunk 0"));
    tstream_outcome_free(&end);
    daffi_error_clear(&err);
    daffi_close(c);
    event_base_free(base);
}

/* ==== a side goes away ================================================================= */

/* A raw sender opens probe at address (to: through a router), sends three chunks and
 * disconnects; the receiver must run ABORT (probe at probe_addr counts it). */
static void sender_leaves_mid_stream(const char *address, const char *to, const char *probe_addr)
{
    tstream_counts before = tstream_probe_counts(probe_addr);
    rawconn c;
    rawmsg m;
    uint32_t id;

    expect_open(&c, address);
    id = tstream_raw_open(&c, 1, "probe", 8, to, NULL);
    rawmsg_init(&m);
    tstream_raw_chunk(&m, id, "a", 1);
    tstream_raw_chunk(&m, id, "b", 1);
    tstream_raw_chunk(&m, id, "c", 1);
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    tstream_probe_wait(probe_addr, 0, 0, before.live + 1); /* open at the receiver */
    rawconn_close(&c);
    tstream_probe_wait(probe_addr, before.aborted + 1, 0, before.live);
}

static void test_a_sender_that_disconnects_mid_stream_makes_the_receiver_abort(void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = tstream_client_new(base, f->router.tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_opening o = {0, NULL, DAFFI_ERROR_INIT};
    rawconn *m = &f->sink;

    sender_leaves_mid_stream(f->svc.unix_addr, NULL, f->svc.unix_addr);
    sender_leaves_mid_stream(f->router.tcp, NULL, f->router.tcp);
    sender_leaves_mid_stream(f->router.unix_addr, "w1", f->router.tcp);
    /* a raw receiver sees the router's daffi.abort, with the id it gave the stream */
    tstream_sink_join(m, f->router.tcp);
    assert_int_equal(daffi_stream_open_async(c, "sink", NULL, NULL, 0, HANG_MS,
                                             tstream_keep_stream, &o, &err), 0);
    tstream_flush(base, c);
    tstream_sink_accept(m, 0, 4);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_non_null(o.s);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "s0", 2, &err), 0);
    tstream_flush(base, c);
    tstream_sink_expect_chunk(m, "s0");
    daffi_close(c); /* the sender leaves; its stream is detached ... */
    daffi_stream_abort(o.s); /* ... and only freed here */
    tstream_sink_expect_abort(m);
    tstream_sink_leave(m, f->router.tcp);
    event_base_free(base);
}

/* ==== how else streams end ============================================================== */

/* A raw sender ends a probe stream at address (to: through a router) with daffi.end
 * as a notification, then pings: the first answer is the ping's, the id is released
 * (a later daffi.end for it is BAD_ARGS) and the receiver ran END. */
static void end_as_notification(const char *address, const char *to, const char *probe_addr)
{
    tstream_counts before = tstream_probe_counts(probe_addr);
    rawconn c;
    rawmsg m;
    uint32_t id;

    expect_open(&c, address);
    id = tstream_raw_open(&c, 1, "probe", 8, to, NULL);
    rawmsg_init(&m);
    tstream_raw_chunk(&m, id, "a", 1);
    tstream_raw_chunk(&m, id, "b", 1);
    tstream_raw_id_msg(&m, 1, 0, "daffi.end", id);
    rawmsg_request(&m, 2, "daffi.ping", 0);
    expect_send(&c, &m);
    tstream_raw_response(&c, 2, NULL); /* nothing answered the end */
    assert_true(c.msg.error->type == MSGPACK_OBJECT_NIL);
    tstream_probe_wait(probe_addr, 0, before.ended + 1, before.live);
    tstream_raw_id_msg(&m, 0, 3, "daffi.end", id);
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    tstream_raw_response(&c, 3, NULL);
    check_error(&c, 3, DAFFI_E_BAD_ARGS);
    rawconn_close(&c);
}

static void test_end_as_a_notification_ends_the_stream_without_an_answer(void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *ac = tstream_client_new(base, f->router.tcp);
    daffi_client *sc = tstream_connect(f->router.unix_addr);
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_stream *s;
    tstream_counts before;

    end_as_notification(f->svc.tcp, NULL, f->svc.tcp);
    end_as_notification(f->router.tcp, NULL, f->router.tcp);
    end_as_notification(f->router.tcp, "w1", f->router.tcp);
    /* stream_nowait from both clients */
    before = tstream_probe_counts(f->router.tcp);
    s = daffi_stream_open(sc, "probe", NULL, NULL, 0, HANG_MS, &err);
    assert_non_null(s);
    assert_int_equal(daffi_stream_send_bin(s, "x", 1, HANG_MS, &err), 0);
    assert_int_equal(daffi_stream_end_nowait(s, HANG_MS, &err), 0);
    s = tstream_async_open(base, ac, "probe", "w1", 0);
    assert_int_equal(daffi_stream_send_bin_async(s, "y", 1, &err), 0);
    assert_int_equal(daffi_stream_end_nowait_async(s, &err), 0);
    tstream_flush(base, ac);
    tstream_probe_wait(f->router.tcp, 0, before.ended + 2, before.live);
    daffi_close(sc);
    daffi_close(ac);
    event_base_free(base);
}

/* The router opens the stream at the member while the sender already left: the
 * member's stream is aborted as soon as it exists, not left open. */
static void test_a_sender_that_leaves_while_the_stream_opens_makes_the_receiver_abort(
    void **state)
{
    tstream_fixture *f = *state;
    rawconn c, *m = &f->sink;

    tstream_sink_join(m, f->router.tcp);
    expect_open(&c, f->router.tcp);
    tstream_raw_open_send(&c, 1, "sink", 4, NULL);
    tstream_sink_read(m); /* the forwarded open ... */
    assert_true(tstream_is_method(&m->msg, "daffi.stream"));
    rawconn_close(&c); /* ... and its sender is gone before the answer */
    usleep(100000);    /* (whichever the router sees first, the member must hear abort) */
    assert_int_equal(rawmember_reply_raw(m, m->msg.msgid,
                                         "\x82\xa6stream\x4d\xa6window\x04", 17), 0);
    tstream_sink_expect_abort(m); /* [2, "daffi.abort", [77]] */
    tstream_sink_leave(m, f->router.tcp);
}

/* A receiver that gives up (daffi.abort from the member) tells the sender through the
 * router: a raw sender reads daffi.abort with its own id, an asynchronous client's
 * ready callback hears it, and both ends are UNAVAILABLE. */
static void test_a_receiver_that_aborts_tells_the_sender(void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *ac = tstream_client_new(base, f->router.tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_opening o = {0, NULL, DAFFI_ERROR_INIT};
    tstream_ready_log rl = {0, 0, 0};
    rawconn c, *m = &f->sink;
    rawmsg msg;
    uint32_t id;

    tstream_sink_join(m, f->router.tcp);
    /* raw sender */
    expect_open(&c, f->router.tcp);
    tstream_raw_open_send(&c, 1, "sink", 4, NULL);
    tstream_sink_accept(m, 4, 4);
    id = tstream_raw_opened(&c, 1, "sink", NULL);
    rawmsg_init(&msg);
    tstream_raw_id_msg(&msg, 1, 0, "daffi.abort", TSTREAM_SINK_ID);
    expect_send(m, &msg);
    tstream_raw_expect_note(&c, "daffi.abort", id);
    tstream_raw_id_msg(&msg, 0, 2, "daffi.end", id);
    expect_send(&c, &msg);
    tstream_raw_response(&c, 2, NULL);
    check_error(&c, 2, DAFFI_E_UNAVAILABLE);
    rawconn_close(&c);
    /* asynchronous client */
    assert_int_equal(daffi_stream_open_async(ac, "sink", NULL, NULL, 4, HANG_MS,
                                             tstream_keep_stream, &o, &err), 0);
    tstream_flush(base, ac);
    tstream_sink_accept(m, 4, 4);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_non_null(o.s);
    daffi_stream_on_ready(o.s, tstream_log_ready, &rl);
    tstream_raw_id_msg(&msg, 1, 0, "daffi.abort", TSTREAM_SINK_ID);
    expect_send(m, &msg);
    rawmsg_destroy(&msg);
    assert_true(tstream_run_until(base, &rl.lost, 1, HANG_MS));
    assert_int_equal(rl.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "x", 1, &err), -1);
    assert_non_null(strstr(err.message, "aborted by the receiver"));
    assert_int_equal(daffi_stream_end_async(o.s, HANG_MS, tstream_ignore_reply, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    daffi_error_clear(&err);
    daffi_close(ac);
    event_base_free(base);
    tstream_sink_leave(m, f->router.tcp);
}

static void test_a_receiver_killed_mid_stream_aborts_it_and_end_answers_unavailable(
    void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *ac = tstream_client_new(base, f->router.tcp);
    daffi_client *sc = tstream_connect(f->router.unix_addr);
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_ready_log rl = {0, 0, 0};
    daffi_stream *as, *ss;
    tdaemon v;
    rawconn c;
    rawmsg m;
    uint32_t id;

    memset(&v, 0, sizeof(v));
    if (tcluster_worker_up(&v, f->router.tcp, "victim", NULL,
                           (const char *const[]){ "echo", NULL }, START_MS) == -1) {
        tdaemon_cleanup(&v);
        fail_msg("the worker victim did not start");
    }
    /* three senders, one stream each at victim: raw, synchronous, asynchronous */
    expect_open(&c, f->router.tcp);
    id = tstream_raw_open(&c, 1, "digest", 4, "victim", NULL);
    rawmsg_init(&m);
    tstream_raw_chunk(&m, id, "r", 1);
    expect_send(&c, &m);
    ss = daffi_stream_open(sc, "digest", NULL, "victim", 4, HANG_MS, &err);
    assert_non_null(ss);
    assert_int_equal(daffi_stream_send_bin(ss, "s", 1, HANG_MS, &err), 0);
    as = tstream_async_open(base, ac, "digest", "victim", 4);
    daffi_stream_on_ready(as, tstream_log_ready, &rl);
    assert_int_equal(daffi_stream_send_bin_async(as, "a", 1, &err), 0);
    tstream_flush(base, ac);

    assert_int_equal(tdaemon_signal(&v, SIGKILL), 0);
    assert_int_equal(tdaemon_wait_exit(&v, HANG_MS), 1);
    /* raw: the router says daffi.abort, then the end is UNAVAILABLE */
    tstream_raw_expect_note(&c, "daffi.abort", id);
    tstream_raw_id_msg(&m, 0, 2, "daffi.end", id);
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    tstream_raw_response(&c, 2, NULL);
    check_error(&c, 2, DAFFI_E_UNAVAILABLE);
    rawconn_close(&c);
    /* asynchronous: the ready callback hears of it; sends and the end fail */
    assert_true(tstream_run_until(base, &rl.lost, 1, HANG_MS));
    assert_int_equal(rl.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(daffi_stream_credit(as), 0);
    assert_int_equal(daffi_stream_send_bin_async(as, "b", 1, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(daffi_stream_end_async(as, HANG_MS, NULL, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS); /* no callback: as is left as it was */
    assert_int_equal(daffi_stream_end_async(as, HANG_MS, tstream_ignore_reply, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    /* synchronous: the end is UNAVAILABLE */
    assert_int_equal(daffi_stream_end(ss, HANG_MS, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    /* the connections go on */
    assert_int_equal(daffi_ping(sc, HANG_MS, NULL, &err), 0);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "victim", HANG_MS), 0);
    tdaemon_cleanup(&v);
    daffi_error_clear(&err);
    daffi_close(sc);
    daffi_close(ac);
    event_base_free(base);
}

static void test_an_async_stream_is_lost_with_its_connection(void **state)
{
    tdaemon *d = tdaemon_new_started(NULL);
    struct event_base *base = event_base_new();
    daffi_client *c;
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_ready_log rl = {0, 0, 0};
    daffi_stream *s;

    (void)state;
    assert_non_null(d);
    c = tstream_client_new(base, d->unix_addr);
    s = tstream_async_open(base, c, "digest", NULL, 0);
    daffi_stream_on_ready(s, tstream_log_ready, &rl);
    assert_int_equal(daffi_stream_send_bin_async(s, "a", 1, &err), 0);
    tstream_flush(base, c);
    assert_int_equal(tdaemon_signal(d, SIGKILL), 0);
    assert_true(tstream_run_until(base, &rl.lost, 1, HANG_MS));
    assert_int_equal(rl.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(daffi_stream_send_bin_async(s, "b", 1, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "connection"));
    assert_int_equal(daffi_stream_end_async(s, HANG_MS, tstream_ignore_reply, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(rl.lost, 1);
    daffi_error_clear(&err);
    daffi_close(c);
    event_base_free(base);
    tdaemon_cleanup(d);
    free(d);
}

static void test_the_two_kinds_of_stream_refuse_each_others_functions(void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *ac = tstream_client_new(base, f->svc.unix_addr);
    daffi_client *sc = tstream_connect(f->svc.unix_addr);
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object one = {MSGPACK_OBJECT_POSITIVE_INTEGER, {.u64 = 1}};
    tstream_outcome end = {0};
    daffi_stream *ss, *as;
    daffi_result r;
    tstream_counts before;

    ss = daffi_stream_open(sc, "digest", NULL, NULL, 0, HANG_MS, &err);
    assert_non_null(ss);
    as = tstream_async_open(base, ac, "digest", NULL, 0);
    assert_int_equal(daffi_stream_open_async(sc, "digest", NULL, NULL, 0, HANG_MS,
                                             tstream_keep_stream, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_stream_send_async(ss, &one, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_stream_end_async(ss, HANG_MS, tstream_collect, &end, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_stream_send_bin(as, "x", 1, HANG_MS, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_stream_end(as, HANG_MS, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    /* both were left as they were and end normally */
    assert_int_equal(daffi_stream_send_bin(ss, "x", 1, HANG_MS, &err), 0);
    assert_int_equal(daffi_stream_end(ss, HANG_MS, &r, &err), 0);
    assert_int_equal(tstream_uint(daffi_obj_get(&r.obj, "chunks")), 1);
    daffi_result_free(&r);
    assert_int_equal(daffi_stream_send_bin_async(as, "x", 1, &err), 0);
    assert_int_equal(daffi_stream_end_async(as, HANG_MS, tstream_collect, &end, &err), 0);
    assert_true(tstream_run_until(base, &end.done, 1, HANG_MS));
    assert_true(end.ok);
    assert_int_equal(tstream_uint(daffi_obj_get(&end.res.obj, "chunks")), 1);
    tstream_outcome_free(&end);
    /* daffi_stream_abort() takes both */
    before = tstream_probe_counts(f->svc.unix_addr);
    ss = daffi_stream_open(sc, "probe", NULL, NULL, 0, HANG_MS, &err);
    assert_non_null(ss);
    as = tstream_async_open(base, ac, "probe", NULL, 0);
    daffi_stream_abort(ss);
    daffi_stream_abort(as);
    tstream_flush(base, ac);
    tstream_probe_wait(f->svc.unix_addr, before.aborted + 2, 0, before.live);
    daffi_error_clear(&err);
    daffi_close(sc);
    daffi_close(ac);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_handler_error_on_a_chunk_fails_the_stream_while_credit_flows),
        cmocka_unit_test(test_an_async_stream_whose_chunk_fails_ends_with_that_error),
        cmocka_unit_test_teardown(
            test_a_sender_that_disconnects_mid_stream_makes_the_receiver_abort,
            tstream_sink_teardown),
        cmocka_unit_test(test_end_as_a_notification_ends_the_stream_without_an_answer),
        cmocka_unit_test_teardown(
            test_a_sender_that_leaves_while_the_stream_opens_makes_the_receiver_abort,
            tstream_sink_teardown),
        cmocka_unit_test_teardown(test_a_receiver_that_aborts_tells_the_sender,
                                  tstream_sink_teardown),
        cmocka_unit_test(test_a_receiver_killed_mid_stream_aborts_it_and_end_answers_unavailable),
        cmocka_unit_test(test_an_async_stream_is_lost_with_its_connection),
        cmocka_unit_test(test_the_two_kinds_of_stream_refuse_each_others_functions),
    };

    tstream_small_asan_quarantine();
    return cmocka_run_group_tests(tests, tstream_group_setup, tstream_group_teardown);
}
