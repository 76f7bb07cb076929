/*
 * test_calls.c - the daffi.* control methods, unknown methods, and every callback of
 * the calc and fib example plugins with every error they answer, against a real
 * daffid, over TCP and over the Unix socket. (echo has its own file: test_echo.c.)
 *
 * One daffid (calc, echo, fib; default limits) serves the whole group; each test runs
 * its checks once per transport on fresh connections. Arguments are built with
 * msgpack-c's packer, or spelled out as bytes where a test needs a particular encoding.
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

/* A literal byte string and its length, for raw msgpack values. */
#define BYTES(s) s, sizeof(s) - 1

/* Sends method(a, b) with two float64 arguments as msgid id. */
static void send_dd(rawconn *c, uint32_t id, const char *method, double a, double b)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, method, 2);
    msgpack_pack_double(pk, a);
    msgpack_pack_double(pk, b);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* Reads the response to id and asserts a float result equal to v; when want_type is
 * not -1 the result must also have that msgpack type. */
static void expect_result_float(rawconn *c, uint32_t id, double v, int want_type)
{
    const msgpack_object *o = expect_result(c, id);
    char d[128];

    if ((o->type != MSGPACK_OBJECT_FLOAT64 && o->type != MSGPACK_OBJECT_FLOAT32) ||
        (want_type != -1 && (int)o->type != want_type) || o->via.f64 != v)
        fail_msg("%s: msgid %u: expected float%s %g, got %s", c->addr, id,
                 want_type == MSGPACK_OBJECT_FLOAT64 ? "64" : "", v,
                 expect_describe(o, d, sizeof(d)));
}

/* ---- daffi.* control methods and unknown methods ------------------------------ */

/* Body of test_ping_returns_pong over one transport. */
static void ping_returns_pong(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    expect_ping(&c, 1);
    rawconn_close(&c);
}

static void test_ping_returns_pong(void **state)
{
    expect_on_both(state, ping_returns_pong);
}

/* Body of test_unknown_method_is_no_callback over one transport. */
static void unknown_method_is_no_callback(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    msgpack_packer *pk = rawmsg_request(&m, 9, "no_such_callback", 1);
    msgpack_pack_int(pk, 1);
    expect_send(&c, &m);
    expect_error(&c, 9, DAFFI_E_NO_CALLBACK);
    /* Not a protocol fault: the connection keeps serving. */
    expect_ping(&c, 10);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_unknown_method_is_no_callback(void **state)
{
    expect_on_both(state, unknown_method_is_no_callback);
}

/* Body of test_unknown_daffi_method_is_no_callback over one transport. */
static void unknown_control_method_is_no_callback(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    rawmsg_request(&m, 3, "daffi.x", 0);
    expect_send(&c, &m);
    expect_error(&c, 3, DAFFI_E_NO_CALLBACK);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_unknown_daffi_method_is_no_callback(void **state)
{
    expect_on_both(state, unknown_control_method_is_no_callback);
}

/* [0, msgid, <method as bin>, params] built with the packer's bin writer. */
static void method_name_as_bin_is_a_name(const char *addr)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint8(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 21);
    msgpack_pack_bin(&m.pk, 3);
    msgpack_pack_bin_body(&m.pk, "add", 3);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, 20);
    msgpack_pack_int(&m.pk, 22);
    expect_send(&c, &m);
    expect_result_int(&c, 21, 42);

    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint8(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 22);
    msgpack_pack_bin(&m.pk, 10);
    msgpack_pack_bin_body(&m.pk, "daffi.ping", 10);
    msgpack_pack_array(&m.pk, 0);
    expect_send(&c, &m);
    expect_result_str(&c, 22, "pong");
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* Body of test_stream_notifications_sent_as_requests_are_answered. daffi.chunk,
 * daffi.credit and daffi.abort are notifications: sent as requests they get BAD_ARGS
 * naming the notification to send, so the caller does not wait for its timeout. */
static void stream_notes_as_requests(const char *addr)
{
    static const char *const notes[] = {"daffi.chunk", "daffi.credit", "daffi.abort"};
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    for (uint32_t i = 0; i < 3; i++) {
        msgpack_packer *pk = rawmsg_request(&m, i + 1, notes[i], 2);
        msgpack_pack_int(pk, 1);
        msgpack_pack_int(pk, 1);
        expect_send(&c, &m);
        expect_error(&c, i + 1, DAFFI_E_BAD_ARGS);
        int code;
        const char *text;
        size_t len;
        const msgpack_object *details;
        assert_int_equal(daffi_error_parse(c.msg.error, &code, &text, &len, &details), 0);
        char msg[300];
        snprintf(msg, sizeof(msg), "%.*s", (int)len, text);
        if (strstr(msg, "is a notification") == NULL || strstr(msg, notes[i]) == NULL)
            fail_msg("%s: %s as a request: '%s'", addr, notes[i], msg);
    }
    expect_ping(&c, 9);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_stream_notifications_sent_as_requests_are_answered(void **state)
{
    expect_on_both(state, stream_notes_as_requests);
}

static void test_method_name_sent_as_bin_works(void **state)
{
    expect_on_both(state, method_name_as_bin_is_a_name);
}

/* ---- calc ------------------------------------------------------------------------ */

/* Body of test_calc_add_returns_the_int_sum over one transport. */
static void calc_add_ints(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    expect_send_ii(&c, 1, "add", 2, 3);
    expect_result_int(&c, 1, 5);
    expect_send_ii(&c, 2, "add", -7, 3);
    expect_result_int(&c, 2, -4);
    expect_send_ii(&c, 3, "add", INT64_MAX - 1, 1);
    expect_result_int(&c, 3, INT64_MAX);
    rawconn_close(&c);
}

static void test_calc_add_returns_the_int_sum(void **state)
{
    expect_on_both(state, calc_add_ints);
}

/* Body of test_calc_with_a_float_argument_returns_a_float over one transport. */
static void calc_float_args(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    send_dd(&c, 1, "add", 1.5, 2.25);
    expect_result_float(&c, 1, 3.75, -1);
    /* One float argument is enough to make the result a float. */
    expect_send_raw_call(&c, 2, "add", 2, BYTES("\x02\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"));
    expect_result_float(&c, 2, 3.5, -1);
    send_dd(&c, 3, "multiply", 1.5, -4.0);
    expect_result_float(&c, 3, -6.0, -1);
    rawconn_close(&c);
}

static void test_calc_with_a_float_argument_returns_a_float(void **state)
{
    expect_on_both(state, calc_float_args);
}

/* Body of test_calc_multiply_returns_the_int_product over one transport. */
static void calc_multiply_ints(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    expect_send_ii(&c, 1, "multiply", 6, 7);
    expect_result_int(&c, 1, 42);
    expect_send_ii(&c, 2, "multiply", -3, 4);
    expect_result_int(&c, 2, -12);
    expect_send_ii(&c, 3, "multiply", 0, INT64_MIN);
    expect_result_int(&c, 3, 0);
    rawconn_close(&c);
}

static void test_calc_multiply_returns_the_int_product(void **state)
{
    expect_on_both(state, calc_multiply_ints);
}

/* Body of test_calc_divide_returns_float64 over one transport. */
static void calc_divide(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    expect_send_ii(&c, 1, "divide", 7, 2);
    expect_result_float(&c, 1, 3.5, MSGPACK_OBJECT_FLOAT64);
    /* Even an exact quotient of two ints is a float64. */
    expect_send_ii(&c, 2, "divide", 6, 3);
    expect_result_float(&c, 2, 2.0, MSGPACK_OBJECT_FLOAT64);
    send_dd(&c, 3, "divide", 1.0, 4.0);
    expect_result_float(&c, 3, 0.25, MSGPACK_OBJECT_FLOAT64);
    rawconn_close(&c);
}

static void test_calc_divide_returns_float64(void **state)
{
    expect_on_both(state, calc_divide);
}

/* Body of test_calc_divide_by_zero_is_handler_error over one transport. */
static void calc_divide_by_zero(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    expect_send_ii(&c, 1, "divide", 1, 0);
    expect_error(&c, 1, DAFFI_E_HANDLER_ERROR);
    send_dd(&c, 2, "divide", 1.0, 0.0);
    expect_error(&c, 2, DAFFI_E_HANDLER_ERROR);
    rawconn_close(&c);
}

static void test_calc_divide_by_zero_is_handler_error(void **state)
{
    expect_on_both(state, calc_divide_by_zero);
}

/* Body of test_calc_int64_overflow_is_handler_error over one transport. */
static void calc_overflow(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    expect_send_ii(&c, 1, "add", INT64_MAX, 1);
    expect_error(&c, 1, DAFFI_E_HANDLER_ERROR);
    expect_send_ii(&c, 2, "add", INT64_MIN, -1);
    expect_error(&c, 2, DAFFI_E_HANDLER_ERROR);
    expect_send_ii(&c, 3, "multiply", INT64_MAX, 2);
    expect_error(&c, 3, DAFFI_E_HANDLER_ERROR);
    expect_send_ii(&c, 4, "multiply", INT64_MIN, -1);
    expect_error(&c, 4, DAFFI_E_HANDLER_ERROR);
    rawconn_close(&c);
}

static void test_calc_int64_overflow_is_handler_error(void **state)
{
    expect_on_both(state, calc_overflow);
}

/* Body of test_calc_non_numbers_or_wrong_arity_are_bad_args over one transport. */
static void calc_bad_args(const char *addr)
{
    static const struct {
        const char *method;
        uint32_t nargs;
        const char *args;
        size_t len;
    } cases[] = {
        { "add", 2, BYTES("\xa1" "a" "\x01") },        /* a str */
        { "add", 2, BYTES("\xc0\x01") },               /* nil */
        { "multiply", 2, BYTES("\x01\x91\x02") },      /* an array */
        { "divide", 2, BYTES("\xc3\x01") },            /* a bool */
        { "add", 1, BYTES("\x01") },                   /* too few */
        { "add", 3, BYTES("\x01\x02\x03") },           /* too many */
        { "multiply", 0, "", 0 },                      /* none */
        { "divide", 2, BYTES("\x01\xc4\x01\x00") },    /* a bin */
    };
    rawconn c;

    expect_open(&c, addr);
    for (uint32_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_send_raw_call(&c, 100 + i, cases[i].method, cases[i].nargs, cases[i].args,
                      cases[i].len);
        expect_error(&c, 100 + i, DAFFI_E_BAD_ARGS);
    }
    rawconn_close(&c);
}

static void test_calc_non_numbers_or_wrong_arity_are_bad_args(void **state)
{
    expect_on_both(state, calc_bad_args);
}

/* ---- fib --------------------------------------------------------------------------- */

/* Body of test_fib_returns_the_fibonacci_number over one transport. */
static void fib_values(const char *addr)
{
    static const struct { int n; int64_t v; } cases[] = {
        { 0, 0 }, { 1, 1 }, { 2, 1 }, { 10, 55 }, { 25, 75025 },
    };
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    for (uint32_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msgpack_packer *pk = rawmsg_request(&m, 300 + i, "fib", 1);
        msgpack_pack_int(pk, cases[i].n);
        expect_send(&c, &m);
        expect_result_int(&c, 300 + i, cases[i].v);
    }
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_fib_returns_the_fibonacci_number(void **state)
{
    expect_on_both(state, fib_values);
}

/* Body of test_fib_out_of_range_or_not_an_integer_is_bad_args. */
static void fib_bad_args(const char *addr)
{
    static const struct {
        uint32_t nargs;
        const char *args;
        size_t len;
    } cases[] = {
        { 1, BYTES("\x2e") },                               /* 46 */
        { 1, BYTES("\xff") },                               /* -1 */
        { 1, BYTES("\xa2" "10") },                          /* a str */
        { 1, BYTES("\xcb\x40\x24\x00\x00\x00\x00\x00\x00") }, /* 10.0 */
        { 0, "", 0 },
        { 2, BYTES("\x01\x02") },
    };
    rawconn c;

    expect_open(&c, addr);
    for (uint32_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_send_raw_call(&c, 400 + i, "fib", cases[i].nargs, cases[i].args, cases[i].len);
        expect_error(&c, 400 + i, DAFFI_E_BAD_ARGS);
    }
    rawconn_close(&c);
}

static void test_fib_out_of_range_or_not_an_integer_is_bad_args(void **state)
{
    expect_on_both(state, fib_bad_args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_returns_pong),
        cmocka_unit_test(test_unknown_method_is_no_callback),
        cmocka_unit_test(test_unknown_daffi_method_is_no_callback),
        cmocka_unit_test(test_method_name_sent_as_bin_works),
        cmocka_unit_test(test_stream_notifications_sent_as_requests_are_answered),
        cmocka_unit_test(test_calc_add_returns_the_int_sum),
        cmocka_unit_test(test_calc_with_a_float_argument_returns_a_float),
        cmocka_unit_test(test_calc_multiply_returns_the_int_product),
        cmocka_unit_test(test_calc_divide_returns_float64),
        cmocka_unit_test(test_calc_divide_by_zero_is_handler_error),
        cmocka_unit_test(test_calc_int64_overflow_is_handler_error),
        cmocka_unit_test(test_calc_non_numbers_or_wrong_arity_are_bad_args),
        cmocka_unit_test(test_fib_returns_the_fibonacci_number),
        cmocka_unit_test(test_fib_out_of_range_or_not_an_integer_is_bad_args),
    };

    return cmocka_run_group_tests(tests, tdaemon_group_setup, tdaemon_group_teardown);
}
