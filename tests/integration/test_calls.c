/*
 * test_calls.c - every callback of the example plugins and every error they answer,
 * against a real daffid, over TCP and over the Unix socket.
 *
 * One daffid (calc, echo, fib; default limits) serves the whole group; each test runs
 * its checks once per transport on fresh connections. Values are built with msgpack-c's
 * packer, except where a test needs an encoding the packer never writes (non-minimal
 * integers, lengths and container headers): those are spelled out as bytes, because
 * "echo returns its argument bit for bit" is about exactly those bytes.
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

typedef void (*body_fn)(const char *address);

/* Runs body over TCP, then over the Unix socket of the group's daemon. */
static void on_both(void **state, body_fn body)
{
    tdaemon *d = *state;

    body(d->tcp);
    body(d->unix_addr);
}

/* Starts the group's daffid (calc, echo, fib). Returns 0, or -1 (log printed). */
static int group_setup(void **state)
{
    tdaemon *d = tdaemon_new_started(NULL);

    if (d == NULL)
        return -1;
    *state = d;
    return 0;
}

/* The daemon must also stop cleanly (SIGTERM, exit 0) after serving everything. */
static int group_teardown(void **state)
{
    return tdaemon_free(*state) == 0 ? 0 : -1;
}

/* Sends method(a, b) with two int64 arguments as msgid id. */
static void send_ii(rawconn *c, uint32_t id, const char *method, int64_t a, int64_t b)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, method, 2);
    msgpack_pack_int64(pk, a);
    msgpack_pack_int64(pk, b);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

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

/* Sends method with nargs raw encoded arguments (concatenated in args) as msgid id. */
static void send_raw_args(rawconn *c, uint32_t id, const char *method, uint32_t nargs,
                          const char *args, size_t len)
{
    rawmsg m;

    rawmsg_init(&m);
    rawmsg_request(&m, id, method, nargs);
    msgpack_sbuffer_write(&m.sb, args, len);
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
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, addr);
    rawmsg_request(&m, 1, "daffi.ping", 0);
    expect_send(&c, &m);
    expect_result_str(&c, 1, "pong");
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_ping_returns_pong(void **state)
{
    on_both(state, ping_returns_pong);
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
    rawmsg_request(&m, 10, "daffi.ping", 0);
    expect_send(&c, &m);
    expect_result_str(&c, 10, "pong");
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_unknown_method_is_no_callback(void **state)
{
    on_both(state, unknown_method_is_no_callback);
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
    on_both(state, unknown_control_method_is_no_callback);
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

static void test_method_name_sent_as_bin_works(void **state)
{
    on_both(state, method_name_as_bin_is_a_name);
}

/* ---- calc ------------------------------------------------------------------------ */

/* Body of test_calc_add_returns_the_int_sum over one transport. */
static void calc_add_ints(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    send_ii(&c, 1, "add", 2, 3);
    expect_result_int(&c, 1, 5);
    send_ii(&c, 2, "add", -7, 3);
    expect_result_int(&c, 2, -4);
    send_ii(&c, 3, "add", INT64_MAX - 1, 1);
    expect_result_int(&c, 3, INT64_MAX);
    rawconn_close(&c);
}

static void test_calc_add_returns_the_int_sum(void **state)
{
    on_both(state, calc_add_ints);
}

/* Body of test_calc_with_a_float_argument_returns_a_float over one transport. */
static void calc_float_args(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    send_dd(&c, 1, "add", 1.5, 2.25);
    expect_result_float(&c, 1, 3.75, -1);
    /* One float argument is enough to make the result a float. */
    send_raw_args(&c, 2, "add", 2, BYTES("\x02\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"));
    expect_result_float(&c, 2, 3.5, -1);
    send_dd(&c, 3, "multiply", 1.5, -4.0);
    expect_result_float(&c, 3, -6.0, -1);
    rawconn_close(&c);
}

static void test_calc_with_a_float_argument_returns_a_float(void **state)
{
    on_both(state, calc_float_args);
}

/* Body of test_calc_multiply_returns_the_int_product over one transport. */
static void calc_multiply_ints(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    send_ii(&c, 1, "multiply", 6, 7);
    expect_result_int(&c, 1, 42);
    send_ii(&c, 2, "multiply", -3, 4);
    expect_result_int(&c, 2, -12);
    send_ii(&c, 3, "multiply", 0, INT64_MIN);
    expect_result_int(&c, 3, 0);
    rawconn_close(&c);
}

static void test_calc_multiply_returns_the_int_product(void **state)
{
    on_both(state, calc_multiply_ints);
}

/* Body of test_calc_divide_returns_float64 over one transport. */
static void calc_divide(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    send_ii(&c, 1, "divide", 7, 2);
    expect_result_float(&c, 1, 3.5, MSGPACK_OBJECT_FLOAT64);
    /* Even an exact quotient of two ints is a float64. */
    send_ii(&c, 2, "divide", 6, 3);
    expect_result_float(&c, 2, 2.0, MSGPACK_OBJECT_FLOAT64);
    send_dd(&c, 3, "divide", 1.0, 4.0);
    expect_result_float(&c, 3, 0.25, MSGPACK_OBJECT_FLOAT64);
    rawconn_close(&c);
}

static void test_calc_divide_returns_float64(void **state)
{
    on_both(state, calc_divide);
}

/* Body of test_calc_divide_by_zero_is_handler_error over one transport. */
static void calc_divide_by_zero(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    send_ii(&c, 1, "divide", 1, 0);
    expect_error(&c, 1, DAFFI_E_HANDLER_ERROR);
    send_dd(&c, 2, "divide", 1.0, 0.0);
    expect_error(&c, 2, DAFFI_E_HANDLER_ERROR);
    rawconn_close(&c);
}

static void test_calc_divide_by_zero_is_handler_error(void **state)
{
    on_both(state, calc_divide_by_zero);
}

/* Body of test_calc_int64_overflow_is_handler_error over one transport. */
static void calc_overflow(const char *addr)
{
    rawconn c;

    expect_open(&c, addr);
    send_ii(&c, 1, "add", INT64_MAX, 1);
    expect_error(&c, 1, DAFFI_E_HANDLER_ERROR);
    send_ii(&c, 2, "add", INT64_MIN, -1);
    expect_error(&c, 2, DAFFI_E_HANDLER_ERROR);
    send_ii(&c, 3, "multiply", INT64_MAX, 2);
    expect_error(&c, 3, DAFFI_E_HANDLER_ERROR);
    send_ii(&c, 4, "multiply", INT64_MIN, -1);
    expect_error(&c, 4, DAFFI_E_HANDLER_ERROR);
    rawconn_close(&c);
}

static void test_calc_int64_overflow_is_handler_error(void **state)
{
    on_both(state, calc_overflow);
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
        send_raw_args(&c, 100 + i, cases[i].method, cases[i].nargs, cases[i].args,
                      cases[i].len);
        expect_error(&c, 100 + i, DAFFI_E_BAD_ARGS);
    }
    rawconn_close(&c);
}

static void test_calc_non_numbers_or_wrong_arity_are_bad_args(void **state)
{
    on_both(state, calc_bad_args);
}

/* ---- echo: every msgpack type, bit for bit ---------------------------------------- */

typedef struct raw_value {
    const char *name;
    const char *bytes;
    size_t len;
} raw_value;

/* Calls echo(value) with value's exact bytes and asserts the result's bytes are equal. */
static void check_echo_bytes(rawconn *c, uint32_t id, const char *name, const char *bytes,
                             size_t len)
{
    const char *p;
    size_t n;

    /* The table itself must hold exactly one msgpack object per value. */
    if (daffi_object_size(bytes, len) != len)
        fail_msg("test data \"%s\" is not one whole msgpack object", name);
    send_raw_args(c, id, "echo", 1, bytes, len);
    expect_result(c, id);
    if (rawconn_result_raw(c, &p, &n) == -1)
        fail_msg("%s: echo %s: cannot locate the result bytes", c->addr, name);
    if (n != len || memcmp(p, bytes, len) != 0) {
        char a[64] = "", b[64] = "";
        for (size_t i = 0; i < len && i < 20; i++)
            snprintf(a + 3 * i, sizeof(a) - 3 * i, "%02x ", (unsigned char)bytes[i]);
        for (size_t i = 0; i < n && i < 20; i++)
            snprintf(b + 3 * i, sizeof(b) - 3 * i, "%02x ", (unsigned char)p[i]);
        fail_msg("%s: echo of %s changed its bytes: sent %zu [%s...], got %zu [%s...]",
                 c->addr, name, len, a, n, b);
    }
}

/* Echoes every value of vals on one connection to addr, bit for bit. */
static void check_echo_table(const char *addr, const raw_value *vals, size_t count)
{
    rawconn c;

    expect_open(&c, addr);
    for (size_t i = 0; i < count; i++)
        check_echo_bytes(&c, (uint32_t)(1000 + i), vals[i].name, vals[i].bytes,
                         vals[i].len);
    rawconn_close(&c);
}

static const raw_value scalar_values[] = {
    { "nil", BYTES("\xc0") },
    { "false", BYTES("\xc2") },
    { "true", BYTES("\xc3") },
    { "positive fixint", BYTES("\x05") },
    { "uint8", BYTES("\xcc\xff") },
    { "uint8 holding 5 (non-minimal)", BYTES("\xcc\x05") },
    { "uint16", BYTES("\xcd\x01\x00") },
    { "uint16 holding 1 (non-minimal)", BYTES("\xcd\x00\x01") },
    { "uint32", BYTES("\xce\x00\x01\x00\x00") },
    { "uint32 holding 7 (non-minimal)", BYTES("\xce\x00\x00\x00\x07") },
    { "uint64 max", BYTES("\xcf\xff\xff\xff\xff\xff\xff\xff\xff") },
    { "uint64 holding 9 (non-minimal)", BYTES("\xcf\x00\x00\x00\x00\x00\x00\x00\x09") },
    { "negative fixint -1", BYTES("\xff") },
    { "negative fixint -32", BYTES("\xe0") },
    { "int8 -128", BYTES("\xd0\x80") },
    { "int8 holding 5 (signed encoding of a positive)", BYTES("\xd0\x05") },
    { "int16", BYTES("\xd1\x80\x00") },
    { "int32", BYTES("\xd2\x80\x00\x00\x00") },
    { "int64 min", BYTES("\xd3\x80\x00\x00\x00\x00\x00\x00\x00") },
    { "int64 holding -1 (non-minimal)", BYTES("\xd3\xff\xff\xff\xff\xff\xff\xff\xff") },
    { "int64 holding 0 (non-minimal)", BYTES("\xd3\x00\x00\x00\x00\x00\x00\x00\x00") },
};

/* Body of test_echo_returns_nil_bool_and_every_int_encoding_unchanged. */
static void echo_scalars(const char *addr)
{
    check_echo_table(addr, scalar_values, sizeof(scalar_values) / sizeof(scalar_values[0]));
}

static void test_echo_returns_nil_bool_and_every_int_encoding_unchanged(void **state)
{
    on_both(state, echo_scalars);
}

static const raw_value float_values[] = {
    { "float32 1.5", BYTES("\xca\x3f\xc0\x00\x00") },
    { "float32 -0.0", BYTES("\xca\x80\x00\x00\x00") },
    { "float32 NaN", BYTES("\xca\x7f\xc0\x00\x01") },
    { "float32 +inf", BYTES("\xca\x7f\x80\x00\x00") },
    { "float64 pi", BYTES("\xcb\x40\x09\x21\xfb\x54\x44\x2d\x18") },
    { "float64 1.5 (fits a float32)", BYTES("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00") },
    { "float64 NaN with payload", BYTES("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x2a") },
    { "float64 2.0 (an integer value)", BYTES("\xcb\x40\x00\x00\x00\x00\x00\x00\x00") },
};

/* Body of test_echo_keeps_float32_float32_and_float64_float64. */
static void echo_floats(const char *addr)
{
    check_echo_table(addr, float_values, sizeof(float_values) / sizeof(float_values[0]));
}

static void test_echo_keeps_float32_float32_and_float64_float64(void **state)
{
    on_both(state, echo_floats);
}

static const raw_value str_values[] = {
    { "empty fixstr", BYTES("\xa0") },
    { "fixstr", BYTES("\xa5hello") },
    { "fixstr with NUL bytes", BYTES("\xa3" "a\x00" "b") },
    { "UTF-8 fixstr", BYTES("\xa6h\xc3\xa9llo") },
    { "str8 holding 5 bytes (non-minimal)", BYTES("\xd9\x05hello") },
    { "str16 holding 3 bytes (non-minimal)", BYTES("\xda\x00\x03" "abc") },
    { "str32 holding 2 bytes (non-minimal)", BYTES("\xdb\x00\x00\x00\x02hi") },
    { "str8 empty (non-minimal)", BYTES("\xd9\x00") },
};

/* Packs a str of n bytes of filler with the packer's (minimal) header into sb. */
static void pack_long_str(msgpack_sbuffer *sb, size_t n)
{
    msgpack_packer pk;
    char *body = malloc(n);

    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, body, n);
    free(body);
}

/* Body of test_echo_returns_str_of_every_length_encoding_unchanged. */
static void echo_strs(const char *addr)
{
    msgpack_sbuffer s8, s16, s32;
    rawconn c;

    check_echo_table(addr, str_values, sizeof(str_values) / sizeof(str_values[0]));
    msgpack_sbuffer_init(&s8);
    msgpack_sbuffer_init(&s16);
    msgpack_sbuffer_init(&s32);
    pack_long_str(&s8, 200);
    pack_long_str(&s16, 300);
    pack_long_str(&s32, 70000);
    assert_int_equal((unsigned char)s8.data[0], 0xd9);
    assert_int_equal((unsigned char)s16.data[0], 0xda);
    assert_int_equal((unsigned char)s32.data[0], 0xdb);
    expect_open(&c, addr);
    check_echo_bytes(&c, 1, "str8", s8.data, s8.size);
    check_echo_bytes(&c, 2, "str16", s16.data, s16.size);
    check_echo_bytes(&c, 3, "str32", s32.data, s32.size);
    rawconn_close(&c);
    msgpack_sbuffer_destroy(&s8);
    msgpack_sbuffer_destroy(&s16);
    msgpack_sbuffer_destroy(&s32);
}

static void test_echo_returns_str_of_every_length_encoding_unchanged(void **state)
{
    on_both(state, echo_strs);
}

/* Packs a bin of n bytes (every byte value) with the packer's header into sb. */
static void pack_bin(msgpack_sbuffer *sb, size_t n)
{
    msgpack_packer pk;
    char *body = malloc(n ? n : 1);

    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i * 7 + 3);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, body, n);
    free(body);
}

static const raw_value bin_values[] = {
    { "empty bin8", BYTES("\xc4\x00") },
    { "bin8 with NUL and 0xff bytes", BYTES("\xc4\x04\x00\xff\x00\xc1") },
    { "bin16 holding 2 bytes (non-minimal)", BYTES("\xc5\x00\x02\x01\x02") },
    { "bin32 holding 1 byte (non-minimal)", BYTES("\xc6\x00\x00\x00\x01\xff") },
};

/* Body of test_echo_returns_bin_unchanged over one transport. */
static void echo_bins(const char *addr)
{
    msgpack_sbuffer b8, b16, b32;
    rawconn c;

    check_echo_table(addr, bin_values, sizeof(bin_values) / sizeof(bin_values[0]));
    msgpack_sbuffer_init(&b8);
    msgpack_sbuffer_init(&b16);
    msgpack_sbuffer_init(&b32);
    pack_bin(&b8, 255);
    pack_bin(&b16, 2048);
    pack_bin(&b32, 100000);
    assert_int_equal((unsigned char)b8.data[0], 0xc4);
    assert_int_equal((unsigned char)b16.data[0], 0xc5);
    assert_int_equal((unsigned char)b32.data[0], 0xc6);
    expect_open(&c, addr);
    check_echo_bytes(&c, 1, "bin8", b8.data, b8.size);
    check_echo_bytes(&c, 2, "bin16", b16.data, b16.size);
    check_echo_bytes(&c, 3, "bin32", b32.data, b32.size);
    rawconn_close(&c);
    msgpack_sbuffer_destroy(&b8);
    msgpack_sbuffer_destroy(&b16);
    msgpack_sbuffer_destroy(&b32);
}

static void test_echo_returns_bin_unchanged(void **state)
{
    on_both(state, echo_bins);
}

static const raw_value ext_values[] = {
    { "fixext1 type 1", BYTES("\xd4\x01\xaa") },
    { "fixext2 type -1", BYTES("\xd5\xff\xaa\xbb") },
    { "fixext4 type 127", BYTES("\xd6\x7f\x01\x02\x03\x04") },
    { "fixext8 type -128", BYTES("\xd7\x80\x01\x02\x03\x04\x05\x06\x07\x08") },
    { "fixext16 type 5", BYTES("\xd8\x05" "0123456789abcdef") },
    { "ext8 of 3 bytes", BYTES("\xc7\x03\x02" "abc") },
    { "ext8 of 0 bytes", BYTES("\xc7\x00\x05") },
    { "ext8 of 1 byte (fixext1 would fit)", BYTES("\xc7\x01\x09\x00") },
    { "ext32 of 4 bytes (non-minimal)", BYTES("\xc9\x00\x00\x00\x04\x10\xde\xad\xbe\xef") },
    { "timestamp32 (ext -1)", BYTES("\xd6\xff\x5e\x00\x00\x00") },
    { "timestamp96 (ext -1)",
      BYTES("\xc7\x0c\xff\x00\x00\x00\x01\x00\x00\x00\x00\x5e\x00\x00\x00") },
};

/* Body of test_echo_returns_ext_types_unchanged over one transport. */
static void echo_exts(const char *addr)
{
    msgpack_sbuffer e16;
    msgpack_packer pk;
    char body[300];
    rawconn c;

    check_echo_table(addr, ext_values, sizeof(ext_values) / sizeof(ext_values[0]));
    memset(body, 0x5a, sizeof(body));
    msgpack_sbuffer_init(&e16);
    msgpack_packer_init(&pk, &e16, msgpack_sbuffer_write);
    msgpack_pack_ext(&pk, sizeof(body), 42);
    msgpack_pack_ext_body(&pk, body, sizeof(body));
    assert_int_equal((unsigned char)e16.data[0], 0xc8);
    expect_open(&c, addr);
    check_echo_bytes(&c, 1, "ext16", e16.data, e16.size);
    rawconn_close(&c);
    msgpack_sbuffer_destroy(&e16);
}

static void test_echo_returns_ext_types_unchanged(void **state)
{
    on_both(state, echo_exts);
}

static const raw_value container_values[] = {
    { "empty array", BYTES("\x90") },
    { "empty map", BYTES("\x80") },
    { "fixarray of mixed types", BYTES("\x94\x01\xa1x\xc0\xca\x3f\x80\x00\x00") },
    { "array16 of 2 (non-minimal)", BYTES("\xdc\x00\x02\x01\x02") },
    { "array32 of 1 (non-minimal)", BYTES("\xdd\x00\x00\x00\x01\xc3") },
    { "fixmap", BYTES("\x82\xa1" "a" "\x01\xa1" "b" "\x92\x01\x02") },
    { "map16 of 1 (non-minimal)", BYTES("\xde\x00\x01\xa1k\xc0") },
    { "map32 with an int key (non-minimal)", BYTES("\xdf\x00\x00\x00\x01\x01\x02") },
    { "map with array, nil and bin keys",
      BYTES("\x83\x92\x01\x02\xa1" "a" "\xc0\x01\xc4\x01\x00\x02") },
    { "nested maps",
      BYTES("\x82\xa5outer\x82\xa5inner\x81\xa4" "deep" "\x93\x01\xcb\x3f\xf8\x00\x00\x00"
            "\x00\x00\x00\xd4\x01\x07\xa1n\xc0\xa3" "bin" "\xc4\x02\xff\x00") },
};

/* Body of test_echo_returns_arrays_and_nested_maps_unchanged. */
static void echo_containers(const char *addr)
{
    msgpack_sbuffer a16, deep;
    msgpack_packer pk;
    rawconn c;

    check_echo_table(addr, container_values,
                     sizeof(container_values) / sizeof(container_values[0]));

    msgpack_sbuffer_init(&a16);
    msgpack_packer_init(&pk, &a16, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 20);
    for (int i = 0; i < 20; i++)
        msgpack_pack_int(&pk, i * 1000 - 5000);
    assert_int_equal((unsigned char)a16.data[0], 0xdc);

    /* 32 nested single-entry maps: the deepest nesting a caller may send. */
    msgpack_sbuffer_init(&deep);
    msgpack_packer_init(&pk, &deep, msgpack_sbuffer_write);
    for (int i = 0; i < 32; i++) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_int(&pk, i);
    }
    msgpack_pack_nil(&pk);

    expect_open(&c, addr);
    check_echo_bytes(&c, 1, "array16 of 20 ints", a16.data, a16.size);
    check_echo_bytes(&c, 2, "maps nested 32 deep", deep.data, deep.size);
    rawconn_close(&c);
    msgpack_sbuffer_destroy(&a16);
    msgpack_sbuffer_destroy(&deep);
}

static void test_echo_returns_arrays_and_nested_maps_unchanged(void **state)
{
    on_both(state, echo_containers);
}

/* Body of test_echo_with_zero_or_several_arguments_returns_their_array. */
static void echo_several_args(const char *addr)
{
    rawconn c;
    const char *p;
    size_t n;

    expect_open(&c, addr);
    /* echo(1, "a", nil, float32 2.0) returns the array of its arguments. */
    send_raw_args(&c, 1, "echo", 4, BYTES("\x01\xa1" "a" "\xc0\xca\x40\x00\x00\x00"));
    expect_result(&c, 1);
    assert_int_equal(rawconn_result_raw(&c, &p, &n), 0);
    assert_int_equal(n, 10);
    assert_memory_equal(p, "\x94\x01\xa1" "a" "\xc0\xca\x40\x00\x00\x00", 10);

    /* echo() with no argument returns the empty array. */
    send_raw_args(&c, 2, "echo", 0, "", 0);
    expect_result(&c, 2);
    assert_int_equal(rawconn_result_raw(&c, &p, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(p, "\x90", 1);
    rawconn_close(&c);
}

static void test_echo_with_zero_or_several_arguments_returns_their_array(void **state)
{
    on_both(state, echo_several_args);
}

/* Body of test_echo_after_returns_the_value_after_the_delay. */
static void echo_after_replies_later(const char *addr)
{
    rawconn c;
    rawmsg m;
    int64_t t0;

    rawmsg_init(&m);
    expect_open(&c, addr);
    msgpack_packer *pk = rawmsg_request(&m, 5, "echo_after", 2);
    msgpack_pack_int(pk, 150);
    msgpack_pack_str_with_body(pk, "late", 4);
    t0 = expect_now_ms();
    expect_send(&c, &m);
    expect_result_str(&c, 5, "late");
    int64_t elapsed = expect_now_ms() - t0;
    if (elapsed < 145)
        fail_msg("%s: echo_after(150) replied after %lld ms", addr, (long long)elapsed);

    pk = rawmsg_request(&m, 6, "echo_after", 2);
    msgpack_pack_int(pk, 0);
    msgpack_pack_int(pk, -9);
    expect_send(&c, &m);
    expect_result_int(&c, 6, -9);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

static void test_echo_after_returns_the_value_after_the_delay(void **state)
{
    on_both(state, echo_after_replies_later);
}

/* Body of test_echo_after_out_of_range_or_malformed_is_bad_args. */
static void echo_after_bad_args(const char *addr)
{
    static const struct {
        uint32_t nargs;
        const char *args;
        size_t len;
    } cases[] = {
        { 2, BYTES("\xff\x01") },                    /* -1 ms */
        { 2, BYTES("\xcd\xea\x61\x01") },            /* 60,001 ms */
        { 2, BYTES("\xa2ms\x01") },                  /* ms not a number */
        { 1, BYTES("\x05") },                        /* no value */
        { 0, "", 0 },
        { 3, BYTES("\x05\x01\x02") },                /* too many */
    };
    rawconn c;

    expect_open(&c, addr);
    for (uint32_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        send_raw_args(&c, 200 + i, "echo_after", cases[i].nargs, cases[i].args,
                      cases[i].len);
        expect_error(&c, 200 + i, DAFFI_E_BAD_ARGS);
    }
    rawconn_close(&c);
}

static void test_echo_after_out_of_range_or_malformed_is_bad_args(void **state)
{
    on_both(state, echo_after_bad_args);
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
    on_both(state, fib_values);
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
        send_raw_args(&c, 400 + i, "fib", cases[i].nargs, cases[i].args, cases[i].len);
        expect_error(&c, 400 + i, DAFFI_E_BAD_ARGS);
    }
    rawconn_close(&c);
}

static void test_fib_out_of_range_or_not_an_integer_is_bad_args(void **state)
{
    on_both(state, fib_bad_args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_returns_pong),
        cmocka_unit_test(test_unknown_method_is_no_callback),
        cmocka_unit_test(test_unknown_daffi_method_is_no_callback),
        cmocka_unit_test(test_method_name_sent_as_bin_works),
        cmocka_unit_test(test_calc_add_returns_the_int_sum),
        cmocka_unit_test(test_calc_with_a_float_argument_returns_a_float),
        cmocka_unit_test(test_calc_multiply_returns_the_int_product),
        cmocka_unit_test(test_calc_divide_returns_float64),
        cmocka_unit_test(test_calc_divide_by_zero_is_handler_error),
        cmocka_unit_test(test_calc_int64_overflow_is_handler_error),
        cmocka_unit_test(test_calc_non_numbers_or_wrong_arity_are_bad_args),
        cmocka_unit_test(test_echo_returns_nil_bool_and_every_int_encoding_unchanged),
        cmocka_unit_test(test_echo_keeps_float32_float32_and_float64_float64),
        cmocka_unit_test(test_echo_returns_str_of_every_length_encoding_unchanged),
        cmocka_unit_test(test_echo_returns_bin_unchanged),
        cmocka_unit_test(test_echo_returns_ext_types_unchanged),
        cmocka_unit_test(test_echo_returns_arrays_and_nested_maps_unchanged),
        cmocka_unit_test(test_echo_with_zero_or_several_arguments_returns_their_array),
        cmocka_unit_test(test_echo_after_returns_the_value_after_the_delay),
        cmocka_unit_test(test_echo_after_out_of_range_or_malformed_is_bad_args),
        cmocka_unit_test(test_fib_returns_the_fibonacci_number),
        cmocka_unit_test(test_fib_out_of_range_or_not_an_integer_is_bad_args),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
