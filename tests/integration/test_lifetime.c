/*
 * test_lifetime.c - attacks on the lifetime of connections and calls (server/conn.h,
 * "Lifetime"; dispatch.c, the completion protocol): handlers that complete on a
 * thread of their own while the handler returns, a heartbeat that drops a silent
 * member whose failed calls answer (and close) callers the walk has not reached yet,
 * and deadlines that answer a caller whose socket was reset while reading was paused.
 * Run under `make asan` and `make tsan`, these are the tests that catch a freed
 * connection being touched or a call read after its hand-off.
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
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rawmember.h"

#define CONNS 4
#define CALLS_PER_CONN 600

/* A daffid serving the handoff fixture (tests/fixtures/plugins/handoff.c). */
static tdaemon *handoff_daemon(void)
{
    tdaemon *d = calloc(1, sizeof(*d));
    char so[PATH_MAX + 64];

    assert_non_null(d);
    assert_int_equal(tdaemon_init(d), 0);
    snprintf(so, sizeof(so), "%s/tests/fixtures/handoff.so", d->build);
    assert_int_equal(tdaemon_write_file(d, "20-handoff.ini",
                                        "[plugin]\nname = handoff\npath = %s\n", so), 0);
    assert_int_equal(tdaemon_start(d, NULL), 0);
    return d;
}

/* Every call to a handler that completes on another thread, while the handler is
 * still returning (blocking pool and loop), or before it returns, is answered once
 * with its own value: 4 connections x 600 pipelined calls. */
static void test_handlers_completing_on_their_own_threads_answer_every_call(void **state)
{
    (void)state;
    static const char *const methods[] = {"handoff_blocking", "handoff_inline",
                                          "handoff_early"};
    tdaemon *d = handoff_daemon();
    rawconn c[CONNS];
    rawmsg m;

    rawmsg_init(&m);
    for (int k = 0; k < CONNS; k++) {
        expect_open(&c[k], k % 2 ? d->unix_addr : d->tcp);
        for (uint32_t id = 1; id <= CALLS_PER_CONN; id++) {
            msgpack_pack_int64(rawmsg_request(&m, id, methods[id % 3], 1),
                               (int64_t)k * 100000 + id);
        }
        expect_send(&c[k], &m);
    }
    for (int k = 0; k < CONNS; k++) {
        unsigned char seen[CALLS_PER_CONN + 1] = {0};
        for (int n = 0; n < CALLS_PER_CONN; n++) {
            rawconn_status st = rawconn_read(&c[k], expect_timeout_ms());
            if (st != RAWCONN_OK)
                fail_msg("connection %d: answer %d of %d: %s", k, n + 1, CALLS_PER_CONN,
                         rawconn_status_name(st));
            uint32_t id = c[k].msg.msgid;
            assert_true(c[k].msg.kind == DAFFI_MSG_RESPONSE && id >= 1 && id <= CALLS_PER_CONN);
            assert_int_equal(seen[id], 0);
            seen[id] = 1;
            assert_int_equal(c[k].msg.error->type, MSGPACK_OBJECT_NIL);
            assert_int_equal(c[k].msg.result->via.i64, (int64_t)k * 100000 + id);
        }
        rawconn_close(&c[k]);
    }
    rawmsg_destroy(&m);
    expect_serving(d->tcp);
    assert_int_equal(tdaemon_free(d), 0);
}

/* The heartbeat walks the loop's connections and drops a silent member; failing its
 * calls answers callers that had finished sending (half-closed), which then close.
 * The callers connected before the member, so the walk reaches them after it: each
 * gets UNAVAILABLE and its close, and the router keeps serving (one loop, so every
 * connection is on the walked list). */
static void test_a_member_dropped_by_the_heartbeat_answers_half_closed_callers(void **state)
{
    (void)state;
    tdaemon router;
    const char *cbs[] = {"lt_silent", NULL};
    rawconn callers[CONNS], member;
    rawmsg m;

    assert_int_equal(tcluster_router_init(&router, "hub", "heartbeat = 100ms\n"
                                          "heartbeat_misses = 2\n"), 0);
    /* one loop: every connection is on the list the heartbeat walks */
    assert_int_equal(tdaemon_write_file(&router, "50-one-loop.ini", "[server]\nworkers = 1\n"), 0);
    assert_int_equal(tdaemon_start(&router, NULL), 0);
    for (int k = 0; k < CONNS; k++)
        expect_open(&callers[k], router.tcp);
    assert_int_equal(rawmember_join(&member, router.tcp, "mute", cbs, NULL, 0), 0);
    rawmsg_init(&m);
    for (int k = 0; k < CONNS; k++) {
        rawmsg_request(&m, 1, "lt_silent", 0);
        expect_send(&callers[k], &m);
        assert_int_equal(rawconn_shutdown_write(&callers[k]), 0);
    }
    /* the member reads nothing: no answer to the calls nor to the pings */
    for (int k = 0; k < CONNS; k++) {
        expect_error(&callers[k], 1, DAFFI_E_UNAVAILABLE);
        expect_closed(&callers[k], NULL);
        rawconn_close(&callers[k]);
    }
    rawconn_close(&member);
    rawmsg_destroy(&m);
    expect_serving(router.tcp);
    assert_int_equal(tcluster_stop(&router), 0);
}

/* Resets a connection at once (SO_LINGER 0): the peer's next write fails. */
static void reset_conn(rawconn *c)
{
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    rawconn_close(c);
}

/* A caller half-closes (daffid stops reading it, keeping it for the answer), then
 * resets its socket: the deadline's TIMEOUT cannot be written. Through a router and
 * directly, the server survives that write and keeps serving. */
static void timeout_to_a_reset_caller(const char *address, const char *method)
{
    rawconn c;
    rawmsg m;

    for (int round = 0; round < 20; round++) {
        expect_open(&c, address);
        rawmsg_init(&m);
        msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.call", 3);
        daffi_pack_cstr(pk, method);
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, 2000);
        daffi_pack_cstr(pk, "late");
        msgpack_pack_map(pk, 1);
        daffi_pack_cstr(pk, "timeout_ms");
        msgpack_pack_int(pk, 30);
        expect_send(&c, &m);
        rawmsg_destroy(&m);
        assert_int_equal(rawconn_shutdown_write(&c), 0);
        usleep(5000); /* let daffid read the EOF and pause the connection */
        reset_conn(&c);
    }
    usleep(100000); /* every deadline has passed */
    expect_serving(address);
}

static void test_a_deadline_answering_a_reset_caller_leaves_the_server_serving(void **state)
{
    (void)state;
    tdaemon svc, router, worker;

    assert_int_equal(tdaemon_init(&svc), 0);
    assert_int_equal(tdaemon_add_example_plugins(&svc), 0);
    assert_int_equal(tdaemon_start(&svc, NULL), 0);
    timeout_to_a_reset_caller(svc.tcp, "echo_after");
    timeout_to_a_reset_caller(svc.unix_addr, "echo_after");
    assert_int_equal(tdaemon_stop(&svc, 5000), 0);
    tdaemon_cleanup(&svc);

    assert_int_equal(tcluster_router_start(&router, "hub", NULL, NULL, 0), 0);
    static const char *const plugins[] = {"echo", NULL};
    assert_int_equal(tcluster_worker_up(&worker, router.tcp, "w1", NULL, plugins,
                                        expect_timeout_ms()), 0);
    timeout_to_a_reset_caller(router.tcp, "echo_after");
    assert_int_equal(tcluster_stop(&worker), 0);
    assert_int_equal(tcluster_stop(&router), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handlers_completing_on_their_own_threads_answer_every_call),
        cmocka_unit_test(test_a_member_dropped_by_the_heartbeat_answers_half_closed_callers),
        cmocka_unit_test(test_a_deadline_answering_a_reset_caller_leaves_the_server_serving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
