/*
 * test_load.c - daffid under concurrent load, against a real daffid (workers = 2):
 * many connections at once, a blocking callback that must not hold up the event
 * loops, and clients that leave without reading their answers (SIGPIPE).
 *
 * Timing assertions are about order relative to the slow call's reply, never about
 * absolute durations, so they hold on a loaded 2-core machine and under sanitizers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define NCONNS 200
#define ROUNDS 10
#define FAST_CONNS 10
#define FAST_CALLS 1000
/* The issue names fib(35), but built with -O2 here it returns in about 20 ms, close to
 * what 1,000 calls take under a sanitizer on a loaded 2-core machine, so "the fast
 * calls finish first" would test the clock, not the server. fib(40) (0.15-0.3 s; each
 * step costs 1.6x) keeps a wide margin: a loop blocked by it would hold every fast
 * call back until it returned. */
#define SLOW_FIB 40
#define SLOW_FIB_VALUE 102334155

/* Opens n connections to addr into conns (caller's array). */
static void open_all(rawconn *conns, int n, const char *addr)
{
    for (int i = 0; i < n; i++)
        expect_open(&conns[i], addr);
}

/* Closes the n connections of conns. */
static void close_all(rawconn *conns, int n)
{
    for (int i = 0; i < n; i++)
        rawconn_close(&conns[i]);
}

/* Accepts two arrays of NCONNS connections (TCP and Unix). In each round every
 * connection has one call in flight at the same time: add(i, round) on each, then
 * every answer is read and checked. */
static void test_200_concurrent_connections_per_transport_are_all_served(void **state)
{
    tdaemon *d = *state;
    rawconn *conns = calloc(2 * NCONNS, sizeof(*conns));
    rawmsg m;

    assert_non_null(conns);
    rawmsg_init(&m);
    open_all(conns, NCONNS, d->tcp);
    open_all(conns + NCONNS, NCONNS, d->unix_addr);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < 2 * NCONNS; i++) {
            msgpack_packer *pk = rawmsg_request(&m, (uint32_t)(round * 1000 + i), "add", 2);
            msgpack_pack_int(pk, i);
            msgpack_pack_int(pk, round);
            expect_send(&conns[i], &m);
        }
        for (int i = 0; i < 2 * NCONNS; i++)
            expect_result_int(&conns[i], (uint32_t)(round * 1000 + i), i + round);
    }
    close_all(conns, 2 * NCONNS);
    free(conns);
    rawmsg_destroy(&m);
}

/* Sends fib(SLOW_FIB) on slow as msgid 1. */
static void send_slow_fib(rawconn *slow)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_pack_int(rawmsg_request(&m, 1, "fib", 1), SLOW_FIB);
    expect_send(slow, &m);
    rawmsg_destroy(&m);
}

/* Reads fib's reply already in slow->msg and checks its value. */
static void check_fib_reply(rawconn *slow)
{
    const msgpack_object *r = slow->msg.result;

    assert_int_equal(slow->msg.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(slow->msg.msgid, 1);
    assert_int_equal(slow->msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(r->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(r->via.u64, SLOW_FIB_VALUE);
}

/* Body of test_fast_calls_complete_while_a_blocking_fib_runs over one
 * transport. */
static void fast_calls_on_other_connections(const char *addr)
{
    rawconn slow;
    rawconn fast[FAST_CONNS];
    rawmsg m;
    int64_t t0;

    rawmsg_init(&m);
    expect_open(&slow, addr);
    open_all(fast, FAST_CONNS, addr);
    t0 = expect_now_ms();
    send_slow_fib(&slow);
    /* 1,000 calls: each fast connection pipelines 100 in one write, then reads. */
    for (int i = 0; i < FAST_CONNS; i++) {
        for (int k = 0; k < FAST_CALLS / FAST_CONNS; k++)
            msgpack_pack_int(rawmsg_request(&m, (uint32_t)(k * 100 + i), "echo", 1), k);
        expect_send(&fast[i], &m);
    }
    for (int i = 0; i < FAST_CONNS; i++)
        for (int k = 0; k < FAST_CALLS / FAST_CONNS; k++)
            expect_result_int(&fast[i], (uint32_t)(k * 100 + i), k);
    int64_t fast_ms = expect_now_ms() - t0;
    rawconn_status st = rawconn_read(&slow, 0);
    if (st == RAWCONN_OK)
        fail_msg("%s: fib(%d) answered before the 1,000 fast calls completed (%lld ms): "
                 "they waited for it", addr, SLOW_FIB, (long long)fast_ms);
    assert_int_equal(st, RAWCONN_TIMEOUT);
    st = rawconn_read(&slow, 60000);
    if (st != RAWCONN_OK)
        fail_msg("%s: fib(%d) never answered: %s", addr, SLOW_FIB, rawconn_status_name(st));
    check_fib_reply(&slow);
    print_message("%s: 1,000 fast calls in %lld ms, fib(%d) in %lld ms\n", addr,
                  (long long)fast_ms, SLOW_FIB, (long long)(expect_now_ms() - t0));
    close_all(fast, FAST_CONNS);
    rawconn_close(&slow);
    rawmsg_destroy(&m);
}

static void test_fast_calls_complete_while_a_blocking_fib_runs(void **state)
{
    tdaemon *d = *state;

    fast_calls_on_other_connections(d->tcp);
    fast_calls_on_other_connections(d->unix_addr);
}

/* Body of test_calls_behind_a_blocking_fib_on_its_connection_overtake_it. */
static void fast_calls_same_connection(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    send_slow_fib(&c);
    /* Calls behind fib on the same connection are answered before it. */
    for (uint32_t id = 2; id < 102; id++) {
        msgpack_pack_uint32(rawmsg_request(&m, id, "echo", 1), id);
        expect_send(&c, &m);
        uint32_t got = expect_response(&c);
        if (got == 1)
            fail_msg("%s: fib(%d) answered before fast call %u on its connection", addr,
                     SLOW_FIB, id);
        assert_int_equal(got, id);
    }
    rawconn_status st = rawconn_read(&c, 60000);
    if (st != RAWCONN_OK)
        fail_msg("%s: fib(%d) never answered: %s", addr, SLOW_FIB, rawconn_status_name(st));
    check_fib_reply(&c);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_calls_behind_a_blocking_fib_on_its_connection_overtake_it(void **state)
{
    tdaemon *d = *state;

    fast_calls_same_connection(d->tcp);
    fast_calls_same_connection(d->unix_addr);
}

/* Sends many echo calls with 1 KiB payloads and closes without reading, several
 * times, so daffid writes replies to closed sockets (EPIPE). */
static void leave_without_reading(const char *addr)
{
    char payload[1024];
    rawmsg m;

    memset(payload, 'p', sizeof(payload));
    rawmsg_init(&m);
    for (uint32_t id = 1; id <= 2000; id++) {
        msgpack_packer *pk = rawmsg_request(&m, id, "echo", 1);
        msgpack_pack_bin(pk, sizeof(payload));
        msgpack_pack_bin_body(pk, payload, sizeof(payload));
    }
    for (int k = 0; k < 5; k++) {
        rawconn c;
        expect_open(&c, addr);
        /* The server may stop reading while its replies pile up: errors are fine. */
        rawconn_send(&c, m.sb.data, m.sb.size);
        rawconn_close(&c);
    }
    rawmsg_destroy(&m);
}

static void test_clients_closing_without_reading_do_not_kill_daffid(void **state)
{
    tdaemon *d = *state;

    leave_without_reading(d->tcp);
    leave_without_reading(d->unix_addr);
    if (!tdaemon_alive(d))
        fail_msg("daffid died (wait status 0x%x)", (unsigned)d->status);
    expect_serving(d->tcp);
    expect_serving(d->unix_addr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_200_concurrent_connections_per_transport_are_all_served),
        cmocka_unit_test(test_fast_calls_complete_while_a_blocking_fib_runs),
        cmocka_unit_test(test_calls_behind_a_blocking_fib_on_its_connection_overtake_it),
        cmocka_unit_test(test_clients_closing_without_reading_do_not_kill_daffid),
    };

    return cmocka_run_group_tests(tests, tdaemon_group_setup, tdaemon_group_teardown);
}
