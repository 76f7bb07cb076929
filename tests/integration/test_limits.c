/*
 * test_limits.c - the limits of DESIGN.md ("Bad input and limits", max_message,
 * max_pending, a plugin's concurrency and queue) against real daffid processes, over
 * TCP and over the Unix socket.
 *
 * max_message is set to 64K with -o limits.max_message=64K. It bounds every whole
 * encoded message in both directions. The direction "a handler result over
 * max_message is answered TOO_LARGE" cannot be reached with the example plugins: each
 * of their replies is smaller than the request that produced it (echo's reply
 * [1, id, nil, x] is 4 bytes shorter than [0, id, "echo", [x]], calc and fib reply a
 * scalar, echo_after drops its ms argument), and one max_message governs both
 * directions. So the boundary is tested on the request side, to the byte: a request of
 * exactly max_message bytes is served (and its reply, just under the limit, arrives
 * whole), one byte more is TOO_LARGE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define MAX_MESSAGE (64 * 1024)

/* Starts daffid with max_message = 64K. Returns 0 or -1. */
static int setup_small_max_message(void **state)
{
    static const char *const overrides[] = { "limits.max_message=64K", NULL };
    tdaemon *d = tdaemon_new_started(overrides);

    if (d == NULL)
        return -1;
    *state = d;
    return 0;
}

/* Starts daffid with max_pending = 4. Returns 0 or -1. */
static int setup_max_pending_4(void **state)
{
    static const char *const overrides[] = { "limits.max_pending=4", NULL };
    tdaemon *d = tdaemon_new_started(overrides);

    if (d == NULL)
        return -1;
    *state = d;
    return 0;
}

/* fib may run one call at a time and keep one more waiting. */
static int setup_fib_queue_1(void **state)
{
    tdaemon *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return -1;
    if (tdaemon_init(d) == -1 || tdaemon_add_plugin(d, "echo", NULL) == -1 ||
        tdaemon_add_plugin(d, "fib", "concurrency = 1\nqueue = 1\n") == -1 ||
        tdaemon_start(d, NULL) == -1) {
        tdaemon_cleanup(d);
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* Appends echo(<bin>) as msgid id to m, the bin sized so that the whole request is
 * exactly total bytes (it must need a bin16 header). */
static void pack_echo_of_size(rawmsg *m, uint32_t id, size_t total)
{
    rawmsg_request(m, id, "echo", 1);
    size_t head = m->sb.size;
    size_t n = total - head - 3; /* bin16: 0xc5 + 2 length bytes */
    char *body = malloc(n);

    assert_non_null(body);
    memset(body, 0x42, n);
    msgpack_pack_bin(&m->pk, n);
    msgpack_pack_bin_body(&m->pk, body, n);
    free(body);
    assert_int_equal(m->sb.size, total);
}

/* Sends the request in m on a fresh connection while a bystander is connected; asserts
 * TOO_LARGE for msgid, then the close, then that the bystander and a new connection
 * are served. */
static void check_too_large(const char *addr, rawmsg *m, uint32_t msgid)
{
    rawconn victim, bystander;

    expect_open(&bystander, addr);
    expect_open(&victim, addr);
    /* The server may stop reading and close before all bytes are sent. */
    rawconn_send(&victim, m->sb.data, m->sb.size);
    rawmsg_clear(m);
    expect_error(&victim, msgid, DAFFI_E_TOO_LARGE);
    expect_closed(&victim, NULL);
    rawconn_close(&victim);
    expect_ping(&bystander, 2);
    rawconn_close(&bystander);
    expect_serving(addr);
}

/* Body of test_a_message_over_max_message_is_too_large_and_closes_only_it. */
static void oversize(const char *addr)
{
    rawmsg m;
    size_t n = 70000;
    char *body = calloc(1, n);

    assert_non_null(body);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 41, "echo", 1);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, body, n);
    check_too_large(addr, &m, 41);
    rawmsg_destroy(&m);
    free(body);
}

static void test_a_message_over_max_message_is_too_large_and_closes_only_it(void **state)
{
    expect_on_both(state, oversize);
}

/* Body of test_a_request_of_exactly_max_message_bytes_is_served. */
static void exact_limit(const char *addr)
{
    rawconn c;
    rawmsg m;
    const char *p;
    size_t n;

    rawmsg_init(&m);
    expect_open(&c, addr);
    pack_echo_of_size(&m, 42, MAX_MESSAGE);
    expect_send(&c, &m);
    const msgpack_object *r = expect_result(&c, 42);
    assert_int_equal(r->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(r->via.bin.size, MAX_MESSAGE - 12);
    assert_int_equal(rawconn_result_raw(&c, &p, &n), 0);
    assert_int_equal(n, MAX_MESSAGE - 12 + 3);
    /* And the connection is still in service. */
    expect_ping(&c, 43);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_a_request_of_exactly_max_message_bytes_is_served(void **state)
{
    expect_on_both(state, exact_limit);
}

/* Body of test_a_request_one_byte_over_max_message_is_too_large. */
static void one_over(const char *addr)
{
    rawmsg m;

    rawmsg_init(&m);
    pack_echo_of_size(&m, 44, MAX_MESSAGE + 1);
    check_too_large(addr, &m, 44);
    rawmsg_destroy(&m);
}

static void test_a_request_one_byte_over_max_message_is_too_large(void **state)
{
    expect_on_both(state, one_over);
}

/* Body of test_a_declared_length_past_max_message_is_refused_at_once. */
static void declared_length_past_limit(const char *addr)
{
    rawmsg m;

    rawmsg_init(&m);
    /* echo(<str32 declaring 1 GiB>) with none of the payload sent: the verdict must
     * come from the declared length, without waiting for (or buffering) the bytes. */
    rawmsg_request(&m, 45, "echo", 1);
    msgpack_sbuffer_write(&m.sb, "\xdb\x40\x00\x00\x00" "abc", 8);
    check_too_large(addr, &m, 45);
    rawmsg_destroy(&m);
}

static void test_a_declared_length_past_max_message_is_refused_at_once(void **state)
{
    expect_on_both(state, declared_length_past_limit);
}

/* Body of test_a_call_past_max_pending_is_overloaded_at_once over one transport. */
static void max_pending(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    for (uint32_t id = 1; id <= 5; id++) {
        msgpack_packer *pk = rawmsg_request(&m, id, "echo_after", 2);
        msgpack_pack_int(pk, 500);
        msgpack_pack_uint32(pk, id);
    }
    int64_t t0 = expect_now_ms();
    expect_send(&c, &m);
    /* The fifth is refused at once, long before the four others are due. */
    expect_error(&c, 5, DAFFI_E_OVERLOADED);
    int64_t waited = expect_now_ms() - t0;
    if (waited >= 400)
        fail_msg("%s: OVERLOADED came after %lld ms, not at once", addr, (long long)waited);
    unsigned seen = 0;
    for (int i = 0; i < 4; i++) {
        uint32_t id = expect_response(&c);
        if (id < 1 || id > 4 || (seen & (1u << id)) ||
            c.msg.error->type != MSGPACK_OBJECT_NIL)
            fail_msg("%s: unexpected answer for msgid %u", addr, id);
        seen |= 1u << id;
    }
    /* Not a protocol fault: the connection serves the next calls. */
    expect_ping(&c, 6);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_a_call_past_max_pending_is_overloaded_at_once(void **state)
{
    expect_on_both(state, max_pending);
}

/* Body of test_a_call_past_a_plugins_queue_is_overloaded_at_once. */
static void plugin_queue(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    /* One fib runs, one waits in the queue, the third finds it full. */
    for (uint32_t id = 1; id <= 3; id++)
        msgpack_pack_int(rawmsg_request(&m, id, "fib", 1), 30);
    expect_send(&c, &m);
    expect_error(&c, 3, DAFFI_E_OVERLOADED);
    expect_result_int(&c, 1, 832040);
    expect_result_int(&c, 2, 832040);
    /* The queue drained: fib is served again. */
    msgpack_pack_int(rawmsg_request(&m, 4, "fib", 1), 20);
    expect_send(&c, &m);
    expect_result_int(&c, 4, 6765);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_a_call_past_a_plugins_queue_is_overloaded_at_once(void **state)
{
    expect_on_both(state, plugin_queue);
}

int main(void)
{
    const struct CMUnitTest max_message_tests[] = {
        cmocka_unit_test(test_a_message_over_max_message_is_too_large_and_closes_only_it),
        cmocka_unit_test(test_a_request_of_exactly_max_message_bytes_is_served),
        cmocka_unit_test(test_a_request_one_byte_over_max_message_is_too_large),
        cmocka_unit_test(test_a_declared_length_past_max_message_is_refused_at_once),
    };
    const struct CMUnitTest max_pending_tests[] = {
        cmocka_unit_test(test_a_call_past_max_pending_is_overloaded_at_once),
    };
    const struct CMUnitTest queue_tests[] = {
        cmocka_unit_test(test_a_call_past_a_plugins_queue_is_overloaded_at_once),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("max_message=64K", max_message_tests,
                                          setup_small_max_message, tdaemon_group_teardown);
    failed += cmocka_run_group_tests_name("max_pending=4", max_pending_tests,
                                          setup_max_pending_4, tdaemon_group_teardown);
    failed += cmocka_run_group_tests_name("fib concurrency=1 queue=1", queue_tests,
                                          setup_fib_queue_1, tdaemon_group_teardown);
    return failed;
}
