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
#include <pthread.h>
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

/* A daffid serving the handoff fixture (tests/fixtures/plugins/handoff.c) and echo. */
static tdaemon *handoff_daemon(void)
{
    tdaemon *d = calloc(1, sizeof(*d));
    char so[PATH_MAX + 64];

    assert_non_null(d);
    assert_int_equal(tdaemon_init(d), 0);
    snprintf(so, sizeof(so), "%s/tests/fixtures/handoff.so", d->build);
    assert_int_equal(tdaemon_write_file(d, "20-handoff.ini",
                                        "[plugin]\nname = handoff\npath = %s\n", so), 0);
    assert_int_equal(tdaemon_add_plugin(d, "echo", NULL), 0);
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

/* ---- large messages: blocks of the loop's cache (server/blocks.h) ------------------ */

#define MIB_BYTES (1024 * 1024)
#define BIG_SIZES 3
static const size_t big_sizes[BIG_SIZES] = {300 * 1024, 1024 * 1024, 3 * 1024 * 1024 + 7};
static const char *const big_methods[] = {"echo", "handoff_echo_blocking", "handoff_echo_thread"};
#define BIG_CALLS (BIG_SIZES * 3)

/* Call id's payload: its size from big_sizes, bytes that differ per call. */
static void big_payload(uint32_t id, char **p, size_t *n)
{
    *n = big_sizes[id % BIG_SIZES];
    *p = malloc(*n);
    assert_non_null(*p);
    for (size_t i = 0; i < *n; i++)
        (*p)[i] = (char)(i * 31 + id * 7 + (i >> 12));
}

static void big_request(rawmsg *m, uint32_t id)
{
    char *p;
    size_t n;
    big_payload(id, &p, &n);
    msgpack_packer *pk = rawmsg_request(m, id, big_methods[(id / BIG_SIZES) % 3], 1);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
    free(p);
}

static void big_check(rawconn *c, uint32_t id)
{
    char *p;
    size_t n;
    big_payload(id, &p, &n);
    if (c->msg.error->type == MSGPACK_OBJECT_ARRAY && c->msg.error->via.array.size >= 2 &&
        c->msg.error->via.array.ptr[1].type == MSGPACK_OBJECT_STR)
        fail_msg("call %u (%s, %zu bytes): error %.*s", id, big_methods[(id / BIG_SIZES) % 3],
                 n, (int)c->msg.error->via.array.ptr[1].via.str.size,
                 c->msg.error->via.array.ptr[1].via.str.ptr);
    assert_int_equal(c->msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(c->msg.result->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(c->msg.result->via.bin.size, n);
    if (memcmp(c->msg.result->via.bin.ptr, p, n) != 0)
        fail_msg("call %u (%s, %zu bytes): the echo differs", id,
                 big_methods[(id / BIG_SIZES) % 3], n);
    free(p);
}

typedef struct big_sender {
    rawconn *c;
    rawmsg m;
} big_sender;

static void *big_send(void *arg)
{
    big_sender *s = arg;
    rawconn_send_msg(s->c, &s->m);
    return NULL;
}

/* Large requests and results pass through the loop's block cache: a request alone in
 * its read buffer becomes its call's without a copy, results grow from the cache on
 * the loop and with realloc on a blocking or a plugin's own thread, outputs come from
 * it and go back. Each echo comes back byte for byte: one after the other (each alone
 * in the buffer), then all pipelined on two connections at once (requests sharing a
 * buffer), for three sizes and the three threads a result can be built on. */
static void test_large_messages_through_the_block_cache_keep_their_bytes(void **state)
{
    (void)state;
    tdaemon *d = handoff_daemon();
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, d->tcp);
    for (uint32_t round = 0; round < 2; round++) /* the second takes cached blocks */
        for (uint32_t id = 1; id <= BIG_CALLS; id++) {
            rawmsg_clear(&m);
            big_request(&m, id);
            expect_send(&c, &m);
            assert_int_equal(rawconn_read(&c, expect_timeout_ms()), RAWCONN_OK);
            assert_int_equal(c.msg.msgid, id);
            big_check(&c, id);
        }
    rawconn_close(&c);
    rawmsg_destroy(&m);

    rawconn pc[2];
    big_sender s[2];
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        expect_open(&pc[k], k ? d->unix_addr : d->tcp);
        s[k].c = &pc[k];
        rawmsg_init(&s[k].m);
        for (uint32_t id = 1; id <= BIG_CALLS; id++)
            big_request(&s[k].m, id);
        /* the answers are read while it sends: its output would stop its reading */
        assert_int_equal(pthread_create(&t[k], NULL, big_send, &s[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        unsigned char seen[BIG_CALLS + 1] = {0};
        for (int n = 0; n < BIG_CALLS; n++) {
            rawconn_status st = rawconn_read(&pc[k], expect_timeout_ms());
            if (st != RAWCONN_OK)
                fail_msg("connection %d: answer %d of %d: %s", k, n + 1, BIG_CALLS,
                         rawconn_status_name(st));
            uint32_t id = pc[k].msg.msgid;
            assert_true(id >= 1 && id <= BIG_CALLS && !seen[id]);
            seen[id] = 1;
            big_check(&pc[k], id);
        }
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
        rawmsg_destroy(&s[k].m);
        rawconn_close(&pc[k]);
    }
    expect_serving(d->tcp);
    assert_int_equal(tdaemon_free(d), 0);
}

/* A large result leaves as the connection's output tail (no copy): answers appended
 * behind it, small and large, must follow it on the wire, whole. Four rounds of
 * [1 MiB, "x", 1 MiB, "yy"] pipelined in one write, read only once all is sent, so the
 * tail is still waiting when the next answers are appended. */
static void test_answers_behind_a_large_result_follow_it_whole(void **state)
{
    (void)state;
    enum { ROUNDS = 4, PER = 4 };
    tdaemon *d = handoff_daemon();
    big_sender s;
    rawconn c;
    pthread_t t;
    char *big = malloc(MIB_BYTES);
    assert_non_null(big);

    expect_open(&c, d->tcp);
    s.c = &c;
    rawmsg_init(&s.m);
    for (uint32_t id = 1; id <= ROUNDS * PER; id++) {
        msgpack_packer *pk = rawmsg_request(&s.m, id, "echo", 1);
        if (id % 2) {
            memset(big, (int)id, MIB_BYTES);
            msgpack_pack_bin(pk, MIB_BYTES);
            msgpack_pack_bin_body(pk, big, MIB_BYTES);
        } else {
            msgpack_pack_str(pk, id % 4 ? 1 : 2);
            msgpack_pack_str_body(pk, "yy", id % 4 ? 1 : 2);
        }
    }
    assert_int_equal(pthread_create(&t, NULL, big_send, &s), 0);
    usleep(200 * 1000); /* the server answers into a socket nobody reads yet */
    unsigned char seen[ROUNDS * PER + 1] = {0};
    for (int n = 0; n < ROUNDS * PER; n++) {
        assert_int_equal(rawconn_read(&c, expect_timeout_ms()), RAWCONN_OK);
        uint32_t id = c.msg.msgid;
        assert_true(id >= 1 && id <= ROUNDS * PER && !seen[id]);
        seen[id] = 1;
        assert_int_equal(c.msg.error->type, MSGPACK_OBJECT_NIL);
        if (id % 2) {
            assert_int_equal(c.msg.result->type, MSGPACK_OBJECT_BIN);
            assert_int_equal(c.msg.result->via.bin.size, MIB_BYTES);
            memset(big, (int)id, MIB_BYTES);
            assert_memory_equal(c.msg.result->via.bin.ptr, big, MIB_BYTES);
        } else {
            assert_int_equal(c.msg.result->type, MSGPACK_OBJECT_STR);
            assert_int_equal(c.msg.result->via.str.size, id % 4 ? 1 : 2);
        }
    }
    pthread_join(t, NULL);
    rawmsg_destroy(&s.m);
    rawconn_close(&c);
    free(big);
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
        cmocka_unit_test(test_large_messages_through_the_block_cache_keep_their_bytes),
        cmocka_unit_test(test_answers_behind_a_large_result_follow_it_whole),
        cmocka_unit_test(test_a_member_dropped_by_the_heartbeat_answers_half_closed_callers),
        cmocka_unit_test(test_a_deadline_answering_a_reset_caller_leaves_the_server_serving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
