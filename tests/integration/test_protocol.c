/*
 * test_protocol.c - the MessagePack-RPC rules of DESIGN.md's wire protocol, against a
 * real daffid over TCP and over the Unix socket: notifications, pipelining,
 * out-of-order responses, split input, and malformed input of every kind.
 *
 * Malformed input: each case opens a victim connection and a bystander connection
 * (which has already been served), sends the bad bytes on the victim, and asserts that
 *   - the victim is closed by the server, after exactly one PROTOCOL error response
 *     carrying the msgid when a valid msgid had been read, and after no message
 *     otherwise (there is nothing to answer);
 *   - the bystander is still served, and so is a new connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define BYTES(s) s, sizeof(s) - 1
#define NO_MSGID (-1) /* the bad bytes carry no valid msgid */

/* ---- notifications ---------------------------------------------------------------- */

/* Body of test_notification_gets_no_response over one transport. */
static void notification_no_response(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    /* Two notifications of real callbacks, then a request, in one write. */
    msgpack_pack_int(rawmsg_notify(&m, "echo", 1), 1);
    msgpack_packer *pk = rawmsg_notify(&m, "add", 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 2);
    rawmsg_request(&m, 5, "daffi.ping", 0);
    expect_send(&c, &m);
    /* The first (and only) message is the request's response. */
    expect_result_str(&c, 5, "pong");
    expect_silence(&c, 200);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_notification_gets_no_response(void **state)
{
    expect_on_both(state, notification_no_response);
}

/* Body of test_unknown_notification_is_ignored_and_the_connection_stays_open. */
static void unknown_notification_ignored(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    msgpack_pack_int(rawmsg_notify(&m, "no_such_callback", 1), 1);
    rawmsg_notify(&m, "daffi.no_such_control", 0);
    expect_send(&c, &m);
    expect_silence(&c, 100);
    expect_ping(&c, 6);
    expect_silence(&c, 100);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_unknown_notification_is_ignored_and_the_connection_stays_open(void **state)
{
    expect_on_both(state, unknown_notification_ignored);
}

/* Body of test_response_without_an_outstanding_call_is_ignored. */
static void stray_response_ignored(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    /* [1, 99, nil, 5]: a response to a call this service never made. */
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_int(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 99);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_int(&m.pk, 5);
    expect_send(&c, &m);
    expect_ping(&c, 7);
    expect_silence(&c, 100);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_response_without_an_outstanding_call_is_ignored(void **state)
{
    expect_on_both(state, stray_response_ignored);
}

/* ---- pipelining, ordering, framing ----------------------------------------------- */

#define PIPELINED 1000

/* Body of test_thousand_pipelined_requests_are_all_answered_by_msgid. */
static void pipelined_requests(const char *addr)
{
    rawconn c;
    rawmsg m;
    unsigned char seen[PIPELINED + 1] = { 0 };

    rawmsg_init(&m);
    expect_open(&c, addr);
    /* msgid i asks add(i, i) or echo(i): the answer says which call it belongs to. */
    for (uint32_t id = 1; id <= PIPELINED; id++) {
        if (id % 2) {
            msgpack_packer *pk = rawmsg_request(&m, id, "add", 2);
            msgpack_pack_uint32(pk, id);
            msgpack_pack_uint32(pk, id);
        } else {
            msgpack_pack_uint32(rawmsg_request(&m, id, "echo", 1), id);
        }
    }
    expect_send(&c, &m);
    for (int i = 0; i < PIPELINED; i++) {
        uint32_t id = expect_response(&c);
        const msgpack_object *r = c.msg.result;
        if (id < 1 || id > PIPELINED || seen[id])
            fail_msg("%s: unexpected or repeated msgid %u", addr, id);
        seen[id] = 1;
        uint64_t want = id % 2 ? 2u * id : id;
        if (c.msg.error->type != MSGPACK_OBJECT_NIL ||
            r->type != MSGPACK_OBJECT_POSITIVE_INTEGER || r->via.u64 != want)
            fail_msg("%s: msgid %u: wrong answer", addr, id);
    }
    expect_silence(&c, 50);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_thousand_pipelined_requests_are_all_answered_by_msgid(void **state)
{
    expect_on_both(state, pipelined_requests);
}

/* Body of test_a_fast_call_is_answered_before_an_earlier_slow_one. */
static void out_of_order(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    msgpack_packer *pk = rawmsg_request(&m, 1, "echo_after", 2);
    msgpack_pack_int(pk, 200);
    msgpack_pack_str_with_body(pk, "slow", 4);
    msgpack_pack_str_with_body(rawmsg_request(&m, 2, "echo", 1), "fast", 4);
    expect_send(&c, &m);
    expect_result_str(&c, 2, "fast");
    expect_result_str(&c, 1, "slow");
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_a_fast_call_is_answered_before_an_earlier_slow_one(void **state)
{
    expect_on_both(state, out_of_order);
}

/* Body of test_a_request_split_into_one_byte_writes_is_answered. */
static void split_request(const char *addr)
{
    rawconn c;
    rawmsg m;
    char payload[300];

    memset(payload, 'z', sizeof(payload));
    rawmsg_init(&m);
    expect_open(&c, addr);
    msgpack_packer *pk = rawmsg_request(&m, 8, "echo", 1);
    msgpack_pack_str_with_body(pk, payload, sizeof(payload));
    /* Every byte in its own write: the server must reassemble the message. */
    for (size_t i = 0; i < m.sb.size; i++) {
        expect_send_bytes(&c, m.sb.data + i, 1);
        if (i % 64 == 0)
            usleep(1000);
    }
    rawmsg_clear(&m);
    const msgpack_object *r = expect_result(&c, 8);
    assert_int_equal(r->type, MSGPACK_OBJECT_STR);
    assert_int_equal(r->via.str.size, sizeof(payload));
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_a_request_split_into_one_byte_writes_is_answered(void **state)
{
    expect_on_both(state, split_request);
}

/* ---- malformed input ------------------------------------------------------------- */

/* Sends bytes on a fresh victim connection while a bystander is connected; asserts
 * the victim is closed (after one PROTOCOL error for msgid, unless NO_MSGID) and that
 * the bystander and a new connection are still served. */
static void check_malformed(const char *addr, const char *what, const char *bytes,
                            size_t len, int64_t msgid)
{
    rawconn victim, bystander;
    unsigned nmsgs = 0;

    expect_open(&bystander, addr);
    expect_ping(&bystander, 1);
    expect_open(&victim, addr);
    /* The server may close before it read everything: a failed send is fine. */
    rawconn_send(&victim, bytes, len);
    if (msgid != NO_MSGID) {
        rawconn_status st = rawconn_read(&victim, expect_timeout_ms());
        if (st != RAWCONN_OK)
            fail_msg("%s: %s: expected a PROTOCOL error for msgid %lld, got %s", addr,
                     what, (long long)msgid, rawconn_status_name(st));
        check_error(&victim, (uint32_t)msgid, DAFFI_E_PROTOCOL);
    }
    expect_closed(&victim, &nmsgs);
    if (nmsgs != 0)
        fail_msg("%s: %s: %u unexpected message(s) before the close", addr, what, nmsgs);
    rawconn_close(&victim);
    expect_ping(&bystander, 2);
    rawconn_close(&bystander);
    expect_serving(addr);
}

typedef struct bad_case {
    const char *what;
    const char *bytes;
    size_t len;
    int64_t msgid;  /* the msgid of the expected PROTOCOL error, or NO_MSGID */
} bad_case;

/* Runs check_malformed() for each of the n cases. */
static void check_cases(const char *addr, const bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_malformed(addr, cases[i].what, cases[i].bytes, cases[i].len, cases[i].msgid);
}

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

static const bad_case not_array_cases[] = {
    { "a positive fixint", BYTES("\x01"), NO_MSGID },
    { "a map", BYTES("\x81\xa1" "a" "\x01"), NO_MSGID },
    { "a str", BYTES("\xa4" "ping"), NO_MSGID },
    { "nil", BYTES("\xc0"), NO_MSGID },
};

/* Body of test_a_message_that_is_not_an_array_closes_only_that_connection. */
static void not_an_array(const char *addr)
{
    check_cases(addr, not_array_cases, NCASES(not_array_cases));
}

static void test_a_message_that_is_not_an_array_closes_only_that_connection(void **state)
{
    expect_on_both(state, not_an_array);
}

static const bad_case reserved_byte_cases[] = {
    { "0xc1 as the message", BYTES("\xc1"), NO_MSGID },
    { "0xc1 as the kind", BYTES("\x94\xc1\x01\xa4" "echo" "\x90"), NO_MSGID },
    { "0xc1 inside params", BYTES("\x94\x00\x07\xa4" "echo" "\x91\xc1"), 7 },
};

/* Body of test_the_reserved_byte_0xc1_closes_only_that_connection. */
static void reserved_byte(const char *addr)
{
    check_cases(addr, reserved_byte_cases, NCASES(reserved_byte_cases));
}

static void test_the_reserved_byte_0xc1_closes_only_that_connection(void **state)
{
    expect_on_both(state, reserved_byte);
}

static const bad_case envelope_cases[] = {
    { "an empty array", BYTES("\x90"), NO_MSGID },
    { "an array of 2", BYTES("\x92\x00\x01"), NO_MSGID },
    { "an array of 5", BYTES("\x95\x00\x01\xa4" "echo" "\x90\xc0"), NO_MSGID },
    { "a request of 3 elements", BYTES("\x93\x00\x01\xa4" "echo"), NO_MSGID },
    { "a notification of 4 elements", BYTES("\x94\x02\xa4" "echo" "\x90\xc0"), NO_MSGID },
    { "kind 3", BYTES("\x94\x03\x01\xa4" "echo" "\x90"), NO_MSGID },
    { "kind -1", BYTES("\x94\xff\x01\xa4" "echo" "\x90"), NO_MSGID },
    { "kind as a str", BYTES("\x94\xa1" "0" "\x01\xa4" "echo" "\x90"), NO_MSGID },
};

/* Body of test_a_wrong_envelope_length_or_kind_closes_only_that_connection. */
static void wrong_envelope(const char *addr)
{
    check_cases(addr, envelope_cases, NCASES(envelope_cases));
}

static void test_a_wrong_envelope_length_or_kind_closes_only_that_connection(void **state)
{
    expect_on_both(state, wrong_envelope);
}

static const bad_case msgid_cases[] = {
    { "msgid -1", BYTES("\x94\x00\xff\xa4" "echo" "\x90"), NO_MSGID },
    { "msgid 2^32", BYTES("\x94\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa4" "echo" "\x90"),
      NO_MSGID },
    { "msgid a str", BYTES("\x94\x00\xa1" "1" "\xa4" "echo" "\x90"), NO_MSGID },
    { "msgid nil", BYTES("\x94\x00\xc0\xa4" "echo" "\x90"), NO_MSGID },
    { "msgid a float", BYTES("\x94\x00\xca\x3f\x80\x00\x00\xa4" "echo" "\x90"), NO_MSGID },
};

/* Body of test_a_msgid_that_is_not_uint32_closes_only_that_connection. */
static void bad_msgid(const char *addr)
{
    check_cases(addr, msgid_cases, NCASES(msgid_cases));
}

static void test_a_msgid_that_is_not_uint32_closes_only_that_connection(void **state)
{
    expect_on_both(state, bad_msgid);
}

static const bad_case method_cases[] = {
    { "method an int", BYTES("\x94\x00\x0b\x05\x90"), 11 },
    { "method nil", BYTES("\x94\x00\xcd\x01\x00\xc0\x90"), 256 },
    { "method an array", BYTES("\x94\x00\xce\x00\x01\x00\x00\x91\xa1" "a" "\x90"), 65536 },
    { "method a map, msgid uint32 max",
      BYTES("\x94\x00\xce\xff\xff\xff\xff\x80\x90"), 0xffffffffu },
};

/* Body of test_a_method_not_str_or_bin_gets_protocol_error_then_close. */
static void bad_method(const char *addr)
{
    check_cases(addr, method_cases, NCASES(method_cases));
}

static void test_a_method_not_str_or_bin_gets_protocol_error_then_close(void **state)
{
    expect_on_both(state, bad_method);
}

static const bad_case params_cases[] = {
    { "params an int", BYTES("\x94\x00\x0c\xa4" "echo" "\x01"), 12 },
    { "params a map", BYTES("\x94\x00\x0d\xa4" "echo" "\x81\x01\x02"), 13 },
    { "params nil", BYTES("\x94\x00\x0e\xa4" "echo" "\xc0"), 14 },
    { "params a str", BYTES("\x94\x00\x0f\xa4" "echo" "\xa1" "x"), 15 },
};

/* Body of test_params_not_an_array_gets_protocol_error_then_close. */
static void bad_params(const char *addr)
{
    check_cases(addr, params_cases, NCASES(params_cases));
}

static void test_params_not_an_array_gets_protocol_error_then_close(void **state)
{
    expect_on_both(state, bad_params);
}

static const bad_case notify_cases[] = {
    { "notification params an int", BYTES("\x93\x02\xa4" "echo" "\x01"), NO_MSGID },
    { "notification method an int", BYTES("\x93\x02\x05\x90"), NO_MSGID },
    { "notification with 0xc1 in params", BYTES("\x93\x02\xa4" "echo" "\x91\xc1"),
      NO_MSGID },
};

/* Body of test_a_malformed_notification_closes_only_that_connection. */
static void bad_notification(const char *addr)
{
    check_cases(addr, notify_cases, NCASES(notify_cases));
}

static void test_a_malformed_notification_closes_only_that_connection(void **state)
{
    expect_on_both(state, bad_notification);
}

/* Body of test_nesting_deeper_than_32_gets_protocol_error_then_close. */
static void too_deep(const char *addr)
{
    rawmsg m;

    rawmsg_init(&m);
    /* echo(x) where x is 33 arrays nested: one level deeper than allowed. */
    rawmsg_request(&m, 21, "echo", 1);
    for (int i = 0; i < 33; i++)
        msgpack_pack_array(&m.pk, 1);
    msgpack_pack_nil(&m.pk);
    check_malformed(addr, "nesting 33 deep", m.sb.data, m.sb.size, 21);
    rawmsg_destroy(&m);
}

static void test_nesting_deeper_than_32_gets_protocol_error_then_close(void **state)
{
    expect_on_both(state, too_deep);
}

static const bad_case count_cases[] = {
    { "params array32 declaring 4 billion elements",
      BYTES("\x94\x00\x16\xa4" "echo" "\xdd\xff\xff\xff\xff\x01"), 22 },
    { "a map32 argument declaring 4 billion entries",
      BYTES("\x94\x00\x17\xa4" "echo" "\x91\xdf\xff\xff\xff\xff\x01\x02"), 23 },
};

/* Body of test_a_count_that_cannot_fit_gets_protocol_error_then_close. */
static void impossible_count(const char *addr)
{
    check_cases(addr, count_cases, NCASES(count_cases));
}

static void test_a_count_that_cannot_fit_gets_protocol_error_then_close(void **state)
{
    expect_on_both(state, impossible_count);
}

/* Body of test_calls_before_malformed_bytes_are_answered_before_the_close. */
static void garbage_after_good(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    /* A good request, then junk in the same write: the good one is still answered. */
    rawmsg_request(&m, 31, "daffi.ping", 0);
    msgpack_sbuffer_write(&m.sb, "\xc1\xc1\xc1", 3);
    expect_send(&c, &m);
    expect_result_str(&c, 31, "pong");
    expect_closed(&c, NULL);
    rawconn_close(&c);
    rawmsg_destroy(&m);
    expect_serving(addr);
}

static void test_calls_before_malformed_bytes_are_answered_before_the_close(void **state)
{
    expect_on_both(state, garbage_after_good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notification_gets_no_response),
        cmocka_unit_test(test_unknown_notification_is_ignored_and_the_connection_stays_open),
        cmocka_unit_test(test_response_without_an_outstanding_call_is_ignored),
        cmocka_unit_test(test_thousand_pipelined_requests_are_all_answered_by_msgid),
        cmocka_unit_test(test_a_fast_call_is_answered_before_an_earlier_slow_one),
        cmocka_unit_test(test_a_request_split_into_one_byte_writes_is_answered),
        cmocka_unit_test(test_a_message_that_is_not_an_array_closes_only_that_connection),
        cmocka_unit_test(test_the_reserved_byte_0xc1_closes_only_that_connection),
        cmocka_unit_test(test_a_wrong_envelope_length_or_kind_closes_only_that_connection),
        cmocka_unit_test(test_a_msgid_that_is_not_uint32_closes_only_that_connection),
        cmocka_unit_test(test_a_method_not_str_or_bin_gets_protocol_error_then_close),
        cmocka_unit_test(test_params_not_an_array_gets_protocol_error_then_close),
        cmocka_unit_test(test_a_malformed_notification_closes_only_that_connection),
        cmocka_unit_test(test_nesting_deeper_than_32_gets_protocol_error_then_close),
        cmocka_unit_test(test_a_count_that_cannot_fit_gets_protocol_error_then_close),
        cmocka_unit_test(test_calls_before_malformed_bytes_are_answered_before_the_close),
    };

    return cmocka_run_group_tests(tests, tdaemon_group_setup, tdaemon_group_teardown);
}
