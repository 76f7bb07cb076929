/*
 * test_echo.c - the echo example plugin against a real daffid, over TCP and over the
 * Unix socket: echo(x) returns x bit for bit, whatever msgpack type and encoding x
 * has; several arguments come back as their array; echo_after(ms, x) answers from a
 * timer.
 *
 * Values are built with msgpack-c's packer, except where a test needs an encoding the
 * packer never writes (non-minimal integers, lengths and container headers): those are
 * spelled out as bytes, because "bit for bit" is about exactly those bytes. The result
 * is compared as the raw bytes of the response's last element.
 *
 * One daffid (calc, echo, fib; default limits) serves the whole group.
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

typedef struct raw_value {
    const char *name;
    const char *bytes;
    size_t len;
} raw_value;

/* Calls echo(value) with value's exact bytes and asserts the result's bytes are equal. */
static void check_echo_bytes(rawconn *c, uint32_t id, const char *name, const char *bytes,
                             size_t len)
{
    char what[200];

    /* The table itself must hold exactly one msgpack object per value. */
    if (daffi_object_size(bytes, len) != len)
        fail_msg("test data \"%s\" is not one whole msgpack object", name);
    snprintf(what, sizeof(what), "echo of %s", name);
    expect_send_raw_call(c, id, "echo", 1, bytes, len);
    expect_result_bytes(c, id, what, bytes, len);
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
    expect_on_both(state, echo_scalars);
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
    expect_on_both(state, echo_floats);
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
    expect_on_both(state, echo_strs);
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
    expect_on_both(state, echo_bins);
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
    expect_on_both(state, echo_exts);
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
    expect_on_both(state, echo_containers);
}

/* Body of test_echo_with_zero_or_several_arguments_returns_their_array. */
static void echo_several_args(const char *addr)
{
    rawconn c;
    const char *p;
    size_t n;

    expect_open(&c, addr);
    /* echo(1, "a", nil, float32 2.0) returns the array of its arguments. */
    expect_send_raw_call(&c, 1, "echo", 4, BYTES("\x01\xa1" "a" "\xc0\xca\x40\x00\x00\x00"));
    expect_result(&c, 1);
    assert_int_equal(rawconn_result_raw(&c, &p, &n), 0);
    assert_int_equal(n, 10);
    assert_memory_equal(p, "\x94\x01\xa1" "a" "\xc0\xca\x40\x00\x00\x00", 10);

    /* echo() with no argument returns the empty array. */
    expect_send_raw_call(&c, 2, "echo", 0, "", 0);
    expect_result(&c, 2);
    assert_int_equal(rawconn_result_raw(&c, &p, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(p, "\x90", 1);
    rawconn_close(&c);
}

static void test_echo_with_zero_or_several_arguments_returns_their_array(void **state)
{
    expect_on_both(state, echo_several_args);
}

/* Body of test_a_result_deeper_than_max_depth_is_an_error_not_sent. echo(a, b) of two
 * values nested 32 deep (the most a caller may send) returns [a, b], 33 deep: daffid
 * answers HANDLER_ERROR instead of writing what a peer with its limits would refuse,
 * and the connection keeps serving. (Found by tests/fuzz/fuzz_control.c.) */
static void echo_too_deep(const char *addr)
{
    char deep[64];
    rawconn c;

    memset(deep, 0x91, 31); /* 31 arrays of one element ... */
    deep[31] = (char)0x90;  /* ... around an empty one: 32 deep */
    memcpy(deep + 32, deep, 32);
    expect_open(&c, addr);
    expect_send_raw_call(&c, 1, "echo", 1, deep, 32);
    expect_result_bytes(&c, 1, "one 32-deep value", deep, 32);
    expect_send_raw_call(&c, 2, "echo", 2, deep, 64);
    expect_error(&c, 2, DAFFI_E_HANDLER_ERROR);
    expect_ping(&c, 3);
    rawconn_close(&c);
}

static void test_a_result_deeper_than_max_depth_is_an_error_not_sent(void **state)
{
    expect_on_both(state, echo_too_deep);
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
    expect_on_both(state, echo_after_replies_later);
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
        expect_send_raw_call(&c, 200 + i, "echo_after", cases[i].nargs, cases[i].args,
                      cases[i].len);
        expect_error(&c, 200 + i, DAFFI_E_BAD_ARGS);
    }
    rawconn_close(&c);
}

static void test_echo_after_out_of_range_or_malformed_is_bad_args(void **state)
{
    expect_on_both(state, echo_after_bad_args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_returns_nil_bool_and_every_int_encoding_unchanged),
        cmocka_unit_test(test_echo_keeps_float32_float32_and_float64_float64),
        cmocka_unit_test(test_echo_returns_str_of_every_length_encoding_unchanged),
        cmocka_unit_test(test_echo_returns_bin_unchanged),
        cmocka_unit_test(test_echo_returns_ext_types_unchanged),
        cmocka_unit_test(test_echo_returns_arrays_and_nested_maps_unchanged),
        cmocka_unit_test(test_echo_with_zero_or_several_arguments_returns_their_array),
        cmocka_unit_test(test_a_result_deeper_than_max_depth_is_an_error_not_sent),
        cmocka_unit_test(test_echo_after_returns_the_value_after_the_delay),
        cmocka_unit_test(test_echo_after_out_of_range_or_malformed_is_bad_args),
    };

    return cmocka_run_group_tests(tests, tdaemon_group_setup, tdaemon_group_teardown);
}
