/*
 * test_rpc.c - the MessagePack-RPC codec (sdk/src/rpc.c, sdk/src/addr.c) as a
 * specification: what the scanner accepts and rejects, how it resumes, what the
 * decoder produces, what the writers emit, and how addresses parse.
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

typedef struct fixture {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone zone;
    daffi_msg msg;
    daffi_limits lim;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
    if (!msgpack_zone_init(&f->zone, 4096)) {
        free(f);
        return -1;
    }
    f->lim.max_message = DAFFI_DEFAULT_MAX_MESSAGE;
    f->lim.max_depth = DAFFI_DEFAULT_MAX_DEPTH;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    msgpack_sbuffer_destroy(&f->sb);
    msgpack_zone_destroy(&f->zone);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

/* Scans len bytes of buf in one call from a fresh state. */
static daffi_scan_result scan_once(const void *buf, size_t len, const daffi_limits *lim,
                                   daffi_scan *s)
{
    daffi_scan_init(s);
    return daffi_scan_feed(s, buf, len, lim);
}

/* Feeds buf one more byte at a time. Messages up to 4 KiB are fed each time from a
 * fresh copy of exactly the bytes available (so the bytes move and a read past them
 * is caught by ASan); longer ones in place, to keep the run linear. Returns the
 * first verdict that is not NEED_MORE, or NEED_MORE at the end. */
static daffi_scan_result scan_bytewise(const void *buf, size_t len,
                                       const daffi_limits *lim, daffi_scan *s)
{
    daffi_scan_result r = DAFFI_SCAN_NEED_MORE;
    size_t n;

    daffi_scan_init(s);
    for (n = 1; n <= len; n++) {
        if (len <= 4096) {
            char *copy = malloc(n);

            assert_non_null(copy);
            memcpy(copy, buf, n);
            r = daffi_scan_feed(s, copy, n, lim);
            free(copy);
        } else {
            r = daffi_scan_feed(s, buf, n, lim);
        }
        if (r != DAFFI_SCAN_NEED_MORE)
            return r;
    }
    return r;
}

/* Scans the packed buffer whole and byte by byte (both must find the same whole
 * message), decodes it into f->msg and re-encodes params to check they come back
 * bit for bit. Returns param number index. */
static const msgpack_object *roundtrip_param(fixture *f, uint32_t index)
{
    daffi_scan a, b;
    msgpack_sbuffer again;
    msgpack_packer pk;

    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &a), DAFFI_SCAN_COMPLETE);
    assert_int_equal(a.size, f->sb.size);
    assert_int_equal(scan_bytewise(f->sb.data, f->sb.size, &f->lim, &b),
                     DAFFI_SCAN_COMPLETE);
    assert_int_equal(b.size, f->sb.size);
    assert_int_equal(daffi_msg_decode(f->sb.data, a.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.kind, DAFFI_MSG_REQUEST);
    assert_int_equal(f->msg.params->type, MSGPACK_OBJECT_ARRAY);
    assert_true(index < f->msg.params->via.array.size);

    msgpack_sbuffer_init(&again);
    msgpack_packer_init(&pk, &again, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_object(&pk, *f->msg.params), 0);
    assert_int_equal(again.size, f->msg.params_raw_len);
    assert_memory_equal(again.data, f->msg.params_raw, again.size);
    msgpack_sbuffer_destroy(&again);
    return &f->msg.params->via.array.ptr[index];
}

/* Starts a request "echo" with n params in f's buffer. */
static void begin_echo(fixture *f, uint32_t n)
{
    assert_int_equal(daffi_pack_request(&f->pk, 7, "echo", 4, n), 0);
}

/* The byte of the packed buffer at offset off (to check which encoding was used). */
static uint8_t byte_at(const fixture *f, size_t off)
{
    assert_true(off < f->sb.size);
    return (uint8_t)f->sb.data[off];
}

/* Offset of the first param in a request "echo" with msgid 7 and < 16 params:
 * 94 00 07 a4 'echo' 9n. */
#define ECHO_PARAM0 9

/* A request [0, 1, "m", [<inner>]] around len bytes of one encoded param. */
static size_t wrap_request(uint8_t *out, const uint8_t *param, size_t len)
{
    static const uint8_t head[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0x91 };

    memcpy(out, head, sizeof(head));
    memcpy(out + sizeof(head), param, len);
    return sizeof(head) + len;
}

/* Expects the raw bytes to be rejected with verdict r both whole and byte by byte. */
static daffi_scan expect_rejected(const void *buf, size_t len, const daffi_limits *lim,
                                  daffi_scan_result r)
{
    daffi_scan a, b;

    assert_int_equal(scan_once(buf, len, lim, &a), r);
    assert_non_null(a.error);
    assert_int_equal(scan_bytewise(buf, len, lim, &b), r);
    assert_string_equal(a.error, b.error);
    assert_int_equal(a.have_msgid, b.have_msgid);
    return a;
}

/* ---- round trips of every msgpack type ---------------------------------------- */

static void test_nil_and_bools_round_trip(void **state)
{
    fixture *f = *state;

    begin_echo(f, 3);
    msgpack_pack_nil(&f->pk);
    msgpack_pack_true(&f->pk);
    msgpack_pack_false(&f->pk);
    assert_int_equal(roundtrip_param(f, 0)->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(roundtrip_param(f, 1)->type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(roundtrip_param(f, 1)->via.boolean);
    assert_false(roundtrip_param(f, 2)->via.boolean);
}

static void test_positive_ints_of_every_width_round_trip(void **state)
{
    static const struct { uint64_t v; uint8_t first; } cases[] = {
        { 0, 0x00 }, { 127, 0x7f }, { 128, 0xcc }, { 255, 0xcc }, { 256, 0xcd },
        { 65535, 0xcd }, { 65536, 0xce }, { 0xffffffffu, 0xce },
        { 0x100000000ull, 0xcf }, { UINT64_MAX, 0xcf },
    };
    fixture *f = *state;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const msgpack_object *o;

        msgpack_sbuffer_clear(&f->sb);
        begin_echo(f, 1);
        msgpack_pack_uint64(&f->pk, cases[i].v);
        assert_int_equal(byte_at(f, ECHO_PARAM0), cases[i].first);
        o = roundtrip_param(f, 0);
        assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_true(o->via.u64 == cases[i].v);
    }
}

static void test_negative_ints_of_every_width_round_trip(void **state)
{
    static const struct { int64_t v; uint8_t first; } cases[] = {
        { -1, 0xff }, { -32, 0xe0 }, { -33, 0xd0 }, { -128, 0xd0 }, { -129, 0xd1 },
        { -32768, 0xd1 }, { -32769, 0xd2 }, { INT32_MIN, 0xd2 },
        { (int64_t)INT32_MIN - 1, 0xd3 }, { INT64_MIN, 0xd3 },
    };
    fixture *f = *state;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const msgpack_object *o;

        msgpack_sbuffer_clear(&f->sb);
        begin_echo(f, 1);
        msgpack_pack_int64(&f->pk, cases[i].v);
        assert_int_equal(byte_at(f, ECHO_PARAM0), cases[i].first);
        o = roundtrip_param(f, 0);
        assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
        assert_true(o->via.i64 == cases[i].v);
    }
}

static void test_signed_encoding_of_a_positive_value_is_a_positive_integer(void **state)
{
    /* [0, 1, "m", [int8 5, int64 7]]: some encoders use signed types for any int */
    static const uint8_t msg[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0x92, 0xd0, 0x05,
                                   0xd3, 0, 0, 0, 0, 0, 0, 0, 7 };
    fixture *f = *state;
    daffi_scan s;

    assert_int_equal(scan_once(msg, sizeof(msg), &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_msg_decode((const char *)msg, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.params->via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(f->msg.params->via.array.ptr[0].via.u64, 5);
    assert_int_equal(f->msg.params->via.array.ptr[1].via.u64, 7);
}

static void test_float32_stays_float32(void **state)
{
    fixture *f = *state;
    const msgpack_object *o;

    begin_echo(f, 1);
    msgpack_pack_float(&f->pk, 1.5f);
    assert_int_equal(byte_at(f, ECHO_PARAM0), 0xca);
    o = roundtrip_param(f, 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT32);
    assert_true(o->via.f64 == 1.5);
}

static void test_float64_round_trips(void **state)
{
    fixture *f = *state;
    const msgpack_object *o;

    begin_echo(f, 1);
    msgpack_pack_double(&f->pk, -0.1);
    assert_int_equal(byte_at(f, ECHO_PARAM0), 0xcb);
    o = roundtrip_param(f, 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o->via.f64 == -0.1);
}

/* One length of a str, bin or ext body and the first byte its encoding must have. */
typedef struct width_case {
    size_t len;
    uint8_t first;
} width_case;

/* Packs each case as one param of kind (STR, BIN or EXT; an ext's type alternates 42
 * and -1) whose body is the first len bytes of a 64 KiB pattern, checks the first
 * byte of the encoding, and that the value round trips with the same type, size and
 * bytes. */
static void check_body_widths(fixture *f, msgpack_object_type kind, const width_case *cases,
                              size_t ncases)
{
    char *body = malloc(65536);
    size_t i;

    assert_non_null(body);
    for (i = 0; i < 65536; i++) {
        if (kind == MSGPACK_OBJECT_STR)
            body[i] = (char)('a' + i % 26);
        else if (kind == MSGPACK_OBJECT_BIN)
            body[i] = (char)(i * 7);
        else
            body[i] = (char)(i * 13 + 1);
    }
    for (i = 0; i < ncases; i++) {
        const msgpack_object *o;
        const char *ptr;
        uint32_t size;
        int8_t type = (int8_t)(i % 2 ? -1 : 42);

        msgpack_sbuffer_clear(&f->sb);
        begin_echo(f, 1);
        if (kind == MSGPACK_OBJECT_STR)
            msgpack_pack_str_with_body(&f->pk, body, cases[i].len);
        else if (kind == MSGPACK_OBJECT_BIN)
            msgpack_pack_bin_with_body(&f->pk, body, cases[i].len);
        else
            msgpack_pack_ext_with_body(&f->pk, body, cases[i].len, type);
        assert_int_equal(byte_at(f, ECHO_PARAM0), cases[i].first);
        o = roundtrip_param(f, 0);
        assert_int_equal(o->type, kind);
        if (kind == MSGPACK_OBJECT_STR) {
            ptr = o->via.str.ptr;
            size = o->via.str.size;
        } else if (kind == MSGPACK_OBJECT_BIN) {
            ptr = o->via.bin.ptr;
            size = o->via.bin.size;
        } else {
            assert_int_equal(o->via.ext.type, type);
            ptr = o->via.ext.ptr;
            size = o->via.ext.size;
        }
        assert_int_equal(size, cases[i].len);
        if (cases[i].len > 0)
            assert_memory_equal(ptr, body, cases[i].len);
    }
    free(body);
}

static void test_str_of_each_width_round_trips(void **state)
{
    static const width_case cases[] = {
        { 0, 0xa0 }, { 31, 0xbf }, { 32, 0xd9 }, { 255, 0xd9 }, { 256, 0xda },
        { 65535, 0xda }, { 65536, 0xdb },
    };

    check_body_widths(*state, MSGPACK_OBJECT_STR, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_bin_of_each_width_round_trips(void **state)
{
    static const width_case cases[] = {
        { 0, 0xc4 }, { 255, 0xc4 }, { 256, 0xc5 }, { 65535, 0xc5 }, { 65536, 0xc6 },
    };

    check_body_widths(*state, MSGPACK_OBJECT_BIN, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_ext_fixext_and_ext8_16_32_round_trip(void **state)
{
    static const width_case cases[] = {
        { 1, 0xd4 }, { 2, 0xd5 }, { 4, 0xd6 }, { 8, 0xd7 }, { 16, 0xd8 },
        { 0, 0xc7 }, { 3, 0xc7 }, { 255, 0xc7 }, { 256, 0xc8 }, { 65535, 0xc8 },
        { 65536, 0xc9 },
    };

    check_body_widths(*state, MSGPACK_OBJECT_EXT, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_nested_arrays_and_maps_round_trip(void **state)
{
    fixture *f = *state;
    const msgpack_object *o, *inner;

    /* {"a": [1, {"b": [true, nil]}], 2: "x"} */
    begin_echo(f, 1);
    msgpack_pack_map(&f->pk, 2);
    daffi_pack_cstr(&f->pk, "a");
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_map(&f->pk, 1);
    daffi_pack_cstr(&f->pk, "b");
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_true(&f->pk);
    msgpack_pack_nil(&f->pk);
    msgpack_pack_int(&f->pk, 2);
    daffi_pack_cstr(&f->pk, "x");

    o = roundtrip_param(f, 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 2);
    assert_int_equal(o->via.map.ptr[0].key.type, MSGPACK_OBJECT_STR);
    inner = &o->via.map.ptr[0].val;
    assert_int_equal(inner->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(inner->via.array.size, 2);
    inner = &inner->via.array.ptr[1];
    assert_int_equal(inner->type, MSGPACK_OBJECT_MAP);
    inner = &inner->via.map.ptr[0].val;
    assert_int_equal(inner->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(inner->via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(o->via.map.ptr[1].key.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o->via.map.ptr[1].val.type, MSGPACK_OBJECT_STR);
}

static void test_empty_containers_round_trip(void **state)
{
    fixture *f = *state;

    begin_echo(f, 4);
    msgpack_pack_array(&f->pk, 0);
    msgpack_pack_map(&f->pk, 0);
    msgpack_pack_str(&f->pk, 0);
    msgpack_pack_bin(&f->pk, 0);
    assert_int_equal(roundtrip_param(f, 0)->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(roundtrip_param(f, 0)->via.array.size, 0);
    assert_int_equal(roundtrip_param(f, 1)->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(roundtrip_param(f, 1)->via.map.size, 0);
    assert_int_equal(roundtrip_param(f, 2)->via.str.size, 0);
    assert_int_equal(roundtrip_param(f, 3)->via.bin.size, 0);
}

static void test_request_with_no_params_decodes(void **state)
{
    fixture *f = *state;
    daffi_scan s;

    assert_int_equal(daffi_pack_request(&f->pk, 42, "daffi.ping", 10, 0), 0);
    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(s.kind, DAFFI_MSG_REQUEST);
    assert_int_equal(s.have_msgid, 1);
    assert_int_equal(s.msgid, 42);
    assert_int_equal(daffi_msg_decode(f->sb.data, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.msgid, 42);
    assert_int_equal(f->msg.method_len, 10);
    assert_memory_equal(f->msg.method, "daffi.ping", 10);
    assert_int_equal(f->msg.params->via.array.size, 0);
    assert_int_equal(f->msg.params_raw_len, 1);
    assert_int_equal((uint8_t)f->msg.params_raw[0], 0x90);
}

static void test_method_as_bin_is_a_name(void **state)
{
    /* pynvim sends [0, 3, bin "add", [1, 2]] */
    static const uint8_t msg[] = { 0x94, 0x00, 0x03, 0xc4, 0x03, 'a', 'd', 'd',
                                   0x92, 0x01, 0x02 };
    fixture *f = *state;
    daffi_scan s;

    assert_int_equal(scan_once(msg, sizeof(msg), &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_msg_decode((const char *)msg, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.method_len, 3);
    assert_memory_equal(f->msg.method, "add", 3);
    assert_int_equal(f->msg.params->via.array.size, 2);
    assert_ptr_equal(f->msg.params_raw, (const char *)msg + 8);
    assert_int_equal(f->msg.params_raw_len, 3);
}

static void test_notification_round_trips(void **state)
{
    fixture *f = *state;
    daffi_scan s;

    assert_int_equal(daffi_pack_notify(&f->pk, "log", 3, 1), 0);
    daffi_pack_cstr(&f->pk, "hello");
    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(s.kind, DAFFI_MSG_NOTIFY);
    assert_int_equal(s.have_msgid, 0);
    assert_int_equal(daffi_msg_decode(f->sb.data, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.kind, DAFFI_MSG_NOTIFY);
    assert_memory_equal(f->msg.method, "log", 3);
    assert_int_equal(f->msg.params->via.array.size, 1);
    assert_int_equal(f->msg.params_raw_len, 7);
}

static void test_ok_response_round_trips(void **state)
{
    fixture *f = *state;
    daffi_scan s;

    assert_int_equal(daffi_pack_response_ok(&f->pk, 0xffffffffu), 0);
    msgpack_pack_int(&f->pk, 3);
    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(s.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(s.msgid, 0xffffffffu);
    assert_int_equal(daffi_msg_decode(f->sb.data, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(f->msg.msgid, 0xffffffffu);
    assert_int_equal(f->msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(f->msg.result->via.u64, 3);
    assert_null(f->msg.params);
}

/* ---- exact bytes of the writers ------------------------------------------------ */

static void test_pack_request_writes_the_envelope_bytes(void **state)
{
    /* [0, 1, "add", [1, 2]] */
    static const uint8_t want[] = { 0x94, 0x00, 0x01, 0xa3, 'a', 'd', 'd', 0x92, 0x01, 0x02 };
    fixture *f = *state;

    assert_int_equal(daffi_pack_request(&f->pk, 1, "add", 3, 2), 0);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_int(&f->pk, 2);
    assert_int_equal(f->sb.size, sizeof(want));
    assert_memory_equal(f->sb.data, want, sizeof(want));
}

static void test_pack_response_error_writes_code_and_message(void **state)
{
    /* [1, 1, [2, "BAD_ARGS"], nil]: a NULL message stands for the code's name */
    static const uint8_t want[] = { 0x94, 0x01, 0x01, 0x92, 0x02, 0xa8, 'B', 'A', 'D', '_',
                                    'A', 'R', 'G', 'S', 0xc0 };
    fixture *f = *state;

    assert_int_equal(daffi_pack_response_error(&f->pk, 1, DAFFI_E_BAD_ARGS, NULL), 0);
    assert_int_equal(f->sb.size, sizeof(want));
    assert_memory_equal(f->sb.data, want, sizeof(want));
}

static void test_pack_response_error_details_carries_a_map(void **state)
{
    fixture *f = *state;
    daffi_scan s;
    int code;
    const char *message;
    size_t message_len;
    const msgpack_object *details;

    assert_int_equal(daffi_pack_response_error_details(&f->pk, 9, DAFFI_E_NO_CALLBACK,
                                                       "no callback 'nope'"), 0);
    msgpack_pack_map(&f->pk, 1);
    daffi_pack_cstr(&f->pk, "members");
    msgpack_pack_array(&f->pk, 0);
    assert_int_equal(daffi_pack_response_error_end(&f->pk), 0);

    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_msg_decode(f->sb.data, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.result->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(daffi_error_parse(f->msg.error, &code, &message, &message_len,
                                       &details), 0);
    assert_int_equal(code, DAFFI_E_NO_CALLBACK);
    assert_int_equal(message_len, strlen("no callback 'nope'"));
    assert_memory_equal(message, "no callback 'nope'", message_len);
    assert_non_null(details);
    assert_int_equal(details->type, MSGPACK_OBJECT_MAP);
}

/* ---- error arrays --------------------------------------------------------------- */

static void test_error_parse_reads_a_two_element_error(void **state)
{
    fixture *f = *state;
    daffi_scan s;
    int code = 0;
    const char *message = NULL;
    size_t message_len = 0;
    const msgpack_object *details = (const msgpack_object *)1;

    daffi_pack_response_error(&f->pk, 5, DAFFI_E_OVERLOADED, "queue full");
    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_msg_decode(f->sb.data, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(daffi_error_parse(f->msg.error, &code, &message, &message_len,
                                       &details), 0);
    assert_int_equal(code, DAFFI_E_OVERLOADED);
    assert_int_equal(message_len, 10);
    assert_memory_equal(message, "queue full", 10);
    assert_null(details);
}

static void test_error_parse_reads_a_three_element_error(void **state)
{
    /* [7, "too large", {"max": 16}] */
    static const uint8_t err[] = { 0x93, 0x07, 0xa9, 't', 'o', 'o', ' ', 'l', 'a', 'r', 'g',
                                   'e', 0x81, 0xa3, 'm', 'a', 'x', 0x10 };
    fixture *f = *state;
    int code;
    const char *message;
    size_t message_len;
    const msgpack_object *details;
    uint8_t msg[64];
    size_t n;
    daffi_scan s;

    /* carried in a response [1, 1, <err>, nil] */
    msg[0] = 0x94;
    msg[1] = 0x01;
    msg[2] = 0x01;
    memcpy(msg + 3, err, sizeof(err));
    msg[3 + sizeof(err)] = 0xc0;
    n = 4 + sizeof(err);
    assert_int_equal(scan_once(msg, n, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_msg_decode((const char *)msg, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(daffi_error_parse(f->msg.error, &code, &message, &message_len,
                                       &details), 0);
    assert_int_equal(code, DAFFI_E_TOO_LARGE);
    assert_memory_equal(message, "too large", 9);
    assert_non_null(details);
    assert_int_equal(details->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(details->via.map.ptr[0].val.via.u64, 16);
}

static void test_error_parse_refuses_what_is_not_an_error_array(void **state)
{
    msgpack_object items[4], err;
    int code;
    const char *message;
    size_t message_len;
    const msgpack_object *details;

    (void)state;
    memset(items, 0, sizeof(items));
    items[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    items[0].via.u64 = 2;
    items[1].type = MSGPACK_OBJECT_STR;
    items[1].via.str.ptr = "x";
    items[1].via.str.size = 1;
    err.type = MSGPACK_OBJECT_ARRAY;
    err.via.array.ptr = items;

    err.via.array.size = 2;
    assert_int_equal(daffi_error_parse(&err, &code, &message, &message_len, &details), 0);
    err.via.array.size = 1;   /* too short */
    assert_int_equal(daffi_error_parse(&err, &code, &message, &message_len, &details), -1);
    err.via.array.size = 4;   /* too long */
    assert_int_equal(daffi_error_parse(&err, &code, &message, &message_len, &details), -1);
    err.via.array.size = 2;
    items[0].type = MSGPACK_OBJECT_STR;   /* code not an integer */
    assert_int_equal(daffi_error_parse(&err, &code, &message, &message_len, &details), -1);
    items[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    items[1].type = MSGPACK_OBJECT_ARRAY; /* message not a string */
    assert_int_equal(daffi_error_parse(&err, &code, &message, &message_len, &details), -1);
    err.type = MSGPACK_OBJECT_NIL;
    assert_int_equal(daffi_error_parse(&err, &code, &message, &message_len, &details), -1);
}

/* ---- fragments and streams ------------------------------------------------------ */

/* Packs a message that uses every kind of header, with payloads that straddle. */
static void pack_rich_request(fixture *f)
{
    static const char data[300] = { 1, 2, 3 };

    /* [{"k": [INT64_MIN, UINT64_MAX, 2.5f], 300: fixext16}, bin, str, 3.25, [],
     *  ext8, nil] */
    begin_echo(f, 7);
    msgpack_pack_map(&f->pk, 2);
    daffi_pack_cstr(&f->pk, "k");
    msgpack_pack_array(&f->pk, 3);
    msgpack_pack_int64(&f->pk, INT64_MIN);
    msgpack_pack_uint64(&f->pk, UINT64_MAX);
    msgpack_pack_float(&f->pk, 2.5f);
    msgpack_pack_int(&f->pk, 300);
    msgpack_pack_ext_with_body(&f->pk, data, 16, 3);
    msgpack_pack_bin_with_body(&f->pk, data, 300);
    msgpack_pack_str_with_body(&f->pk, data, 40);
    msgpack_pack_double(&f->pk, 3.25);
    msgpack_pack_array(&f->pk, 0);
    msgpack_pack_ext_with_body(&f->pk, data, 200, -7);
    msgpack_pack_nil(&f->pk);
}

static void test_byte_at_a_time_finds_the_same_message(void **state)
{
    fixture *f = *state;
    daffi_scan whole, bytes;

    pack_rich_request(f);
    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &whole), DAFFI_SCAN_COMPLETE);
    assert_int_equal(scan_bytewise(f->sb.data, f->sb.size, &f->lim, &bytes),
                     DAFFI_SCAN_COMPLETE);
    assert_int_equal(whole.size, f->sb.size);
    assert_int_equal(bytes.size, whole.size);
    assert_int_equal(bytes.msgid, whole.msgid);
    assert_int_equal(bytes.kind, whole.kind);
}

static void test_random_splits_find_the_same_message(void **state)
{
    fixture *f = *state;
    uint64_t rng = 0x9e3779b97f4a7c15ull;   /* fixed seed: the run is reproducible */
    int round;

    pack_rich_request(f);
    for (round = 0; round < 200; round++) {
        daffi_scan s;
        daffi_scan_result r = DAFFI_SCAN_NEED_MORE;
        size_t have = 0;

        daffi_scan_init(&s);
        while (have < f->sb.size) {
            char *copy;

            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            have += 1 + rng % 64;
            if (have > f->sb.size)
                have = f->sb.size;
            copy = malloc(have);
            assert_non_null(copy);
            memcpy(copy, f->sb.data, have);
            r = daffi_scan_feed(&s, copy, have, &f->lim);
            free(copy);
            if (have < f->sb.size)
                assert_int_equal(r, DAFFI_SCAN_NEED_MORE);
        }
        assert_int_equal(r, DAFFI_SCAN_COMPLETE);
        assert_int_equal(s.size, f->sb.size);
    }
}

static void test_concatenated_messages_are_found_one_after_another(void **state)
{
    fixture *f = *state;
    size_t off = 0, sizes[3];
    daffi_scan s;
    int i;

    daffi_pack_request(&f->pk, 1, "add", 3, 2);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_int(&f->pk, 2);
    sizes[0] = f->sb.size;
    daffi_pack_notify(&f->pk, "tick", 4, 0);
    sizes[1] = f->sb.size - sizes[0];
    daffi_pack_response_error(&f->pk, 9, DAFFI_E_TIMEOUT, "late");
    sizes[2] = f->sb.size - sizes[0] - sizes[1];

    for (i = 0; i < 3; i++) {
        /* the scanner is given everything that follows and must stop at the end */
        assert_int_equal(scan_once(f->sb.data + off, f->sb.size - off, &f->lim, &s),
                         DAFFI_SCAN_COMPLETE);
        assert_int_equal(s.size, sizes[i]);
        assert_int_equal(daffi_msg_decode(f->sb.data + off, s.size, &f->zone, &f->msg), 0);
        assert_int_equal(f->msg.kind, i == 0 ? DAFFI_MSG_REQUEST
                         : i == 1 ? DAFFI_MSG_NOTIFY : DAFFI_MSG_RESPONSE);
        off += s.size;
    }
    assert_int_equal(off, f->sb.size);
}

static void test_complete_verdict_repeats_when_fed_again(void **state)
{
    fixture *f = *state;
    daffi_scan s;

    daffi_pack_notify(&f->pk, "tick", 4, 0);
    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_scan_feed(&s, f->sb.data, f->sb.size, &f->lim),
                     DAFFI_SCAN_COMPLETE);
    assert_int_equal(s.size, f->sb.size);
}

static void test_resumed_scan_of_8mib_bin_in_64k_steps_completes(void **state)
{
    fixture *f = *state;
    size_t big = 8u << 20, have = 0, step = 64u << 10;
    char *data = calloc(1, big);
    daffi_scan s;
    daffi_scan_result r = DAFFI_SCAN_NEED_MORE;

    assert_non_null(data);
    begin_echo(f, 1);
    msgpack_pack_bin_with_body(&f->pk, data, big);
    free(data);

    daffi_scan_init(&s);
    while (have < f->sb.size) {
        have = have + step > f->sb.size ? f->sb.size : have + step;
        r = daffi_scan_feed(&s, f->sb.data, have, &f->lim);
        if (have < f->sb.size)
            assert_int_equal(r, DAFFI_SCAN_NEED_MORE);
    }
    assert_int_equal(r, DAFFI_SCAN_COMPLETE);
    assert_int_equal(s.size, f->sb.size);
    assert_int_equal(daffi_msg_decode(f->sb.data, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.params->via.array.ptr[0].via.bin.size, big);
}

static void test_resumed_scan_of_a_million_small_elements_completes(void **state)
{
    fixture *f = *state;
    size_t have = 0, step = 4096;
    uint32_t i, n = 1u << 20;
    daffi_scan s;
    daffi_scan_result r = DAFFI_SCAN_NEED_MORE;

    begin_echo(f, 1);
    msgpack_pack_array(&f->pk, n);
    for (i = 0; i < n; i++)
        msgpack_pack_int(&f->pk, (int)(i % 200)); /* 1 or 2 bytes each */

    daffi_scan_init(&s);
    while (have < f->sb.size) {
        have = have + step > f->sb.size ? f->sb.size : have + step;
        r = daffi_scan_feed(&s, f->sb.data, have, &f->lim);
        if (have < f->sb.size)
            assert_int_equal(r, DAFFI_SCAN_NEED_MORE);
    }
    assert_int_equal(r, DAFFI_SCAN_COMPLETE);
    assert_int_equal(s.size, f->sb.size);
    assert_int_equal(daffi_msg_decode(f->sb.data, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.params->via.array.ptr[0].via.array.size, n);
}

static void test_object_size_measures_one_complete_object(void **state)
{
    fixture *f = *state;
    size_t i;

    pack_rich_request(f);
    assert_int_equal(daffi_object_size(f->sb.data, f->sb.size), f->sb.size);
    /* every proper prefix holds no complete object */
    for (i = 0; i < f->sb.size; i++)
        assert_int_equal(daffi_object_size(f->sb.data, i), 0);
    /* trailing bytes are not part of it */
    msgpack_pack_nil(&f->pk);
    assert_int_equal(daffi_object_size(f->sb.data, f->sb.size), f->sb.size - 1);
    assert_int_equal(daffi_object_size("\xc1", 1), 0);
}

/* ---- limits --------------------------------------------------------------------- */

/* Packs [0, 7, "echo", [str of n bytes]] into f. */
static void pack_echo_str(fixture *f, size_t n)
{
    char *text = calloc(1, n + 1);

    assert_non_null(text);
    begin_echo(f, 1);
    msgpack_pack_str_with_body(&f->pk, text, n);
    free(text);
}

static void test_message_exactly_max_message_is_accepted(void **state)
{
    fixture *f = *state;
    daffi_scan s;

    pack_echo_str(f, 1000);
    f->lim.max_message = f->sb.size;
    assert_int_equal(scan_once(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(scan_bytewise(f->sb.data, f->sb.size, &f->lim, &s), DAFFI_SCAN_COMPLETE);
}

static void test_message_one_byte_over_max_message_is_too_large(void **state)
{
    fixture *f = *state;
    daffi_scan s;

    pack_echo_str(f, 1000);
    f->lim.max_message = f->sb.size - 1;
    s = expect_rejected(f->sb.data, f->sb.size, &f->lim, DAFFI_SCAN_TOO_LARGE);
    assert_string_equal(s.error, "str length past max_message");
    /* decided from the str header alone, long before its bytes arrive */
    assert_int_equal(scan_once(f->sb.data, ECHO_PARAM0 + 3, &f->lim, &s),
                     DAFFI_SCAN_TOO_LARGE);
}

static void test_max_message_bytes_without_a_whole_message_is_too_large(void **state)
{
    /* [0, 1, "m", [[1 x 50], 1 x 10]]: the counts fit, but 64 bytes pass before the
     * message ends */
    uint8_t msg[128];
    size_t n = 0, i;
    daffi_limits lim = { 64, DAFFI_DEFAULT_MAX_DEPTH };
    daffi_scan s;

    (void)state;
    msg[n++] = 0x94; msg[n++] = 0x00; msg[n++] = 0x01; msg[n++] = 0xa1; msg[n++] = 'm';
    msg[n++] = 0x9b;
    msg[n++] = 0xdc; msg[n++] = 0x00; msg[n++] = 50;
    for (i = 0; i < 60; i++)
        msg[n++] = 0x01;
    assert_int_equal(scan_once(msg, 63, &lim, &s), DAFFI_SCAN_NEED_MORE);
    assert_int_equal(scan_once(msg, 64, &lim, &s), DAFFI_SCAN_TOO_LARGE);
    assert_string_equal(s.error, "message exceeds max_message");
    expect_rejected(msg, n, &lim, DAFFI_SCAN_TOO_LARGE);
}

static void test_verdict_at_the_max_message_boundary_ignores_the_split(void **state)
{
    /* [0, 1, "m", ["xy", ...]] cut by max_message = 9 right before a 0xc1: whatever
     * starts at max_message is too large, however the bytes arrive */
    static const uint8_t msg[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0x92, 0xa2, 'x', 'y', 0xc1 };
    daffi_limits lim = { 9, DAFFI_DEFAULT_MAX_DEPTH };
    daffi_scan s;

    (void)state;
    s = expect_rejected(msg, sizeof(msg), &lim, DAFFI_SCAN_TOO_LARGE);
    assert_string_equal(s.error, "message exceeds max_message");
}

static void test_bin_and_ext_length_past_max_message_are_too_large(void **state)
{
    static const uint8_t bin[] = { 0xc6, 0x7f, 0xff, 0xff, 0xff };
    static const uint8_t ext[] = { 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01 };
    static const uint8_t str[] = { 0xdb, 0xff, 0xff, 0xff, 0xff };
    fixture *f = *state;
    uint8_t msg[32];
    daffi_scan s;

    s = expect_rejected(msg, wrap_request(msg, bin, sizeof(bin)), &f->lim,
                        DAFFI_SCAN_TOO_LARGE);
    assert_string_equal(s.error, "bin length past max_message");
    s = expect_rejected(msg, wrap_request(msg, ext, sizeof(ext)), &f->lim,
                        DAFFI_SCAN_TOO_LARGE);
    assert_string_equal(s.error, "ext length past max_message");
    s = expect_rejected(msg, wrap_request(msg, str, sizeof(str)), &f->lim,
                        DAFFI_SCAN_TOO_LARGE);
    assert_string_equal(s.error, "str length past max_message");
    assert_int_equal(s.have_msgid, 1);
}

/* Builds [0, 1, "m", [V]] where V is depth nested arrays around 0; returns the size. */
static size_t nested_request(uint8_t *out, unsigned depth)
{
    size_t n = 0;
    unsigned i;

    out[n++] = 0x94; out[n++] = 0x00; out[n++] = 0x01; out[n++] = 0xa1; out[n++] = 'm';
    out[n++] = 0x91;
    for (i = 0; i < depth; i++)
        out[n++] = 0x91;
    out[n++] = 0x00;
    return n;
}

static void test_nesting_32_deep_is_accepted_and_decodes(void **state)
{
    fixture *f = *state;
    uint8_t msg[128];
    size_t n = nested_request(msg, 32);
    const msgpack_object *o;
    daffi_scan s;
    unsigned d;

    assert_int_equal(scan_once(msg, n, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(scan_bytewise(msg, n, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    /* 34 containers in all: more than msgpack-c's own unpacker takes */
    assert_int_equal(daffi_msg_decode((const char *)msg, s.size, &f->zone, &f->msg), 0);
    o = &f->msg.params->via.array.ptr[0];
    for (d = 0; d < 32; d++) {
        assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
        o = &o->via.array.ptr[0];
    }
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
}

static void test_nesting_33_deep_is_protocol(void **state)
{
    fixture *f = *state;
    uint8_t msg[128];
    daffi_scan s;

    s = expect_rejected(msg, nested_request(msg, 33), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "nesting deeper than max_depth");
    assert_int_equal(s.have_msgid, 1);
    assert_int_equal(s.msgid, 1);
}

static void test_response_result_nesting_is_bounded_alike(void **state)
{
    fixture *f = *state;
    uint8_t msg[128];
    size_t n = 0;
    unsigned i;
    daffi_scan s;

    /* [1, 1, nil, V] with V 32 deep, then 33 deep */
    msg[n++] = 0x94; msg[n++] = 0x01; msg[n++] = 0x01; msg[n++] = 0xc0;
    for (i = 0; i < 32; i++)
        msg[n++] = 0x91;
    msg[n++] = 0xc0;
    assert_int_equal(scan_once(msg, n, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_msg_decode((const char *)msg, s.size, &f->zone, &f->msg), 0);
    memmove(msg + 5, msg + 4, n - 4);
    msg[4] = 0x91;
    expect_rejected(msg, n + 1, &f->lim, DAFFI_SCAN_PROTOCOL);
}

static void test_max_depth_is_configurable_up_to_62(void **state)
{
    fixture *f = *state;
    uint8_t msg[128];
    size_t n;
    daffi_scan s;

    f->lim.max_depth = 62;
    n = nested_request(msg, 62);
    assert_int_equal(scan_once(msg, n, &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(daffi_msg_decode((const char *)msg, s.size, &f->zone, &f->msg), 0);
    expect_rejected(msg, nested_request(msg, 63), &f->lim, DAFFI_SCAN_PROTOCOL);
    /* a larger setting is held to the ceiling */
    f->lim.max_depth = 1000;
    expect_rejected(msg, nested_request(msg, 63), &f->lim, DAFFI_SCAN_PROTOCOL);
    f->lim.max_depth = 2;
    assert_int_equal(scan_once(msg, nested_request(msg, 2), &f->lim, &s),
                     DAFFI_SCAN_COMPLETE);
    expect_rejected(msg, nested_request(msg, 3), &f->lim, DAFFI_SCAN_PROTOCOL);
}

static void test_array_count_beyond_max_message_is_rejected_from_its_header(void **state)
{
    /* dd ff ff ff ff inside params: 4 billion elements cannot fit in 16 MiB */
    static const uint8_t arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
    fixture *f = *state;
    uint8_t msg[32];
    daffi_scan s;

    /* the 5 header bytes are all it takes: nothing follows, nothing is allocated */
    s = expect_rejected(msg, wrap_request(msg, arr, sizeof(arr)), &f->lim,
                        DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "array count cannot fit in max_message");
    assert_int_equal(s.have_msgid, 1);
}

static void test_map_count_is_checked_at_two_bytes_per_entry(void **state)
{
    /* df 00 00 80 00: 32768 entries need at least 65536 bytes */
    static const uint8_t map[] = { 0xdf, 0x00, 0x00, 0x80, 0x00 };
    uint8_t msg[32];
    size_t n = wrap_request(msg, map, sizeof(map));
    daffi_limits lim = { 65536 + n, DAFFI_DEFAULT_MAX_DEPTH };
    daffi_scan s;

    (void)state;
    assert_int_equal(scan_once(msg, n, &lim, &s), DAFFI_SCAN_NEED_MORE);
    lim.max_message = 65535 + n;
    s = expect_rejected(msg, n, &lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "map count cannot fit in max_message");
}

static void test_msgid_negative_is_protocol_without_msgid(void **state)
{
    static const uint8_t msg[] = { 0x94, 0x00, 0xff, 0xa1, 'm', 0x90 };
    fixture *f = *state;
    daffi_scan s = expect_rejected(msg, sizeof(msg), &f->lim, DAFFI_SCAN_PROTOCOL);

    assert_string_equal(s.error, "msgid is not a uint32");
    assert_int_equal(s.have_msgid, 0);
    assert_int_equal(s.kind, DAFFI_MSG_REQUEST);
}

static void test_msgid_float_is_protocol_without_msgid(void **state)
{
    static const uint8_t msg[] = { 0x94, 0x00, 0xca, 0x3f, 0x80, 0x00, 0x00, 0xa1, 'm', 0x90 };
    fixture *f = *state;
    daffi_scan s = expect_rejected(msg, sizeof(msg), &f->lim, DAFFI_SCAN_PROTOCOL);

    assert_string_equal(s.error, "msgid is not a uint32");
    assert_int_equal(s.have_msgid, 0);
}

static void test_msgid_above_uint32_is_protocol_without_msgid(void **state)
{
    static const uint8_t msg[] = { 0x94, 0x01, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 0xc0 };
    fixture *f = *state;
    daffi_scan s = expect_rejected(msg, sizeof(msg), &f->lim, DAFFI_SCAN_PROTOCOL);

    assert_string_equal(s.error, "msgid is not a uint32");
    assert_int_equal(s.have_msgid, 0);
}

static void test_msgid_uint64_encoding_of_a_uint32_is_accepted(void **state)
{
    static const uint8_t msg[] = { 0x94, 0x00, 0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                                   0xa1, 'm', 0x90 };
    fixture *f = *state;
    daffi_scan s;

    assert_int_equal(scan_once(msg, sizeof(msg), &f->lim, &s), DAFFI_SCAN_COMPLETE);
    assert_int_equal(s.msgid, 0xffffffffu);
    assert_int_equal(daffi_msg_decode((const char *)msg, s.size, &f->zone, &f->msg), 0);
    assert_int_equal(f->msg.msgid, 0xffffffffu);
}

static void test_method_as_int_is_protocol_with_msgid(void **state)
{
    static const uint8_t msg[] = { 0x94, 0x00, 0x05, 0x07, 0x90 };
    fixture *f = *state;
    daffi_scan s = expect_rejected(msg, sizeof(msg), &f->lim, DAFFI_SCAN_PROTOCOL);

    assert_string_equal(s.error, "method is not a str or bin");
    assert_int_equal(s.have_msgid, 1);
    assert_int_equal(s.msgid, 5);
}

static void test_params_not_an_array_is_protocol(void **state)
{
    static const uint8_t req[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0x80 };
    static const uint8_t note[] = { 0x93, 0x02, 0xa1, 'm', 0xc0 };
    fixture *f = *state;
    daffi_scan s;

    s = expect_rejected(req, sizeof(req), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "params is not an array");
    assert_int_equal(s.have_msgid, 1);
    s = expect_rejected(note, sizeof(note), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "params is not an array");
    assert_int_equal(s.kind, DAFFI_MSG_NOTIFY);
}

static void test_notification_method_not_a_string_is_protocol(void **state)
{
    static const uint8_t note[] = { 0x93, 0x02, 0xc0, 0x90 };
    fixture *f = *state;
    daffi_scan s = expect_rejected(note, sizeof(note), &f->lim, DAFFI_SCAN_PROTOCOL);

    assert_string_equal(s.error, "method is not a str or bin");
}

static void test_response_error_not_nil_or_array_is_protocol(void **state)
{
    /* [1, 1, "bad", nil]: some peers send a bare string */
    static const uint8_t msg[] = { 0x94, 0x01, 0x01, 0xa3, 'b', 'a', 'd', 0xc0 };
    fixture *f = *state;
    daffi_scan s = expect_rejected(msg, sizeof(msg), &f->lim, DAFFI_SCAN_PROTOCOL);

    assert_string_equal(s.error, "error is not nil or an array");
    assert_int_equal(s.have_msgid, 1);
}

static void test_wrong_envelope_length_is_protocol(void **state)
{
    static const uint8_t req3[] = { 0x93, 0x00, 0x01, 0xa1, 'm' };
    static const uint8_t note4[] = { 0x94, 0x02, 0xa1, 'm', 0x90, 0xc0 };
    static const uint8_t five[] = { 0x95, 0x00, 0x01, 0xa1, 'm', 0x90, 0xc0 };
    static const uint8_t two[] = { 0x92, 0x00, 0x01 };
    static const uint8_t empty[] = { 0x90 };
    fixture *f = *state;
    daffi_scan s;

    s = expect_rejected(req3, sizeof(req3), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "request or response is not an array of 4 elements");
    s = expect_rejected(note4, sizeof(note4), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "notification is not an array of 3 elements");
    s = expect_rejected(five, sizeof(five), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "envelope is not an array of 3 or 4 elements");
    expect_rejected(two, sizeof(two), &f->lim, DAFFI_SCAN_PROTOCOL);
    expect_rejected(empty, sizeof(empty), &f->lim, DAFFI_SCAN_PROTOCOL);
}

static void test_unknown_kind_3_is_protocol(void **state)
{
    static const uint8_t msg[] = { 0x94, 0x03, 0x01, 0xa1, 'm', 0x90 };
    static const uint8_t neg[] = { 0x94, 0xff, 0x01, 0xa1, 'm', 0x90 };
    static const uint8_t nil[] = { 0x94, 0xc0, 0x01, 0xa1, 'm', 0x90 };
    fixture *f = *state;
    daffi_scan s;

    s = expect_rejected(msg, sizeof(msg), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "unknown message kind");
    assert_int_equal(s.kind, -1);
    assert_int_equal(s.have_msgid, 0);
    expect_rejected(neg, sizeof(neg), &f->lim, DAFFI_SCAN_PROTOCOL);
    s = expect_rejected(nil, sizeof(nil), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "message kind is not an integer");
}

static void test_reserved_byte_c1_is_protocol(void **state)
{
    static const uint8_t in_params[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0x91, 0xc1 };
    static const uint8_t at_start[] = { 0xc1 };
    static const uint8_t in_payload[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0x91, 0xa1, 0xc1 };
    fixture *f = *state;
    daffi_scan s;

    s = expect_rejected(in_params, sizeof(in_params), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "reserved byte 0xc1");
    expect_rejected(at_start, sizeof(at_start), &f->lim, DAFFI_SCAN_PROTOCOL);
    /* inside a str payload it is just a byte */
    assert_int_equal(scan_once(in_payload, sizeof(in_payload), &f->lim, &s),
                     DAFFI_SCAN_COMPLETE);
}

static void test_top_level_not_an_array_is_protocol(void **state)
{
    static const uint8_t map[] = { 0x81, 0xa1, 'm', 0x90 };
    static const uint8_t str[] = { 0xa3, 'a', 'b', 'c' };
    static const uint8_t num[] = { 0x05 };
    fixture *f = *state;
    daffi_scan s;

    s = expect_rejected(map, sizeof(map), &f->lim, DAFFI_SCAN_PROTOCOL);
    assert_string_equal(s.error, "message is not an array");
    assert_int_equal(s.kind, -1);
    expect_rejected(str, sizeof(str), &f->lim, DAFFI_SCAN_PROTOCOL);
    expect_rejected(num, sizeof(num), &f->lim, DAFFI_SCAN_PROTOCOL);
}

static void test_decode_refuses_bytes_that_are_not_a_message(void **state)
{
    static const uint8_t truncated[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0x92, 0x01 };
    static const uint8_t kind3[] = { 0x94, 0x03, 0x01, 0xa1, 'm', 0x90 };
    static const uint8_t huge[] = { 0x94, 0x00, 0x01, 0xa1, 'm', 0xdd, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t trailing[] = { 0x93, 0x02, 0xa1, 'm', 0x90, 0xc0 };
    fixture *f = *state;

    assert_int_equal(daffi_msg_decode((const char *)truncated, sizeof(truncated), &f->zone,
                                      &f->msg), -1);
    assert_int_equal(daffi_msg_decode((const char *)kind3, sizeof(kind3), &f->zone,
                                      &f->msg), -1);
    assert_int_equal(daffi_msg_decode((const char *)huge, sizeof(huge), &f->zone,
                                      &f->msg), -1);
    assert_int_equal(daffi_msg_decode((const char *)trailing, sizeof(trailing), &f->zone,
                                      &f->msg), -1);
    assert_int_equal(daffi_msg_decode("", 0, &f->zone, &f->msg), -1);
}

static void test_protocol_document_examples_are_accepted(void **state)
{
    /* the byte examples of sdk/PROTOCOL.md, sections 2 and 6 */
    static const char *const examples[] = {
        "94 00 01 a3 61 64 64 92 01 02",
        "94 00 03 c4 03 61 64 64 92 01 02",
        "94 01 01 c0 03",
        "94 01 01 92 02 b2 65 78 70 65 63 74 65 64 20 32 20 6e 75 6d 62 65 72 73 c0",
        "94 01 03 93 01 b2 6e 6f 20 63 61 6c 6c 62 61 63 6b 20 27 6e 6f 70 65 27 81 a7 6d"
        " 65 6d 62 65 72 73 91 82 a4 6e 61 6d 65 a3 73 76 63 a9 63 61 6c 6c 62 61 63 6b"
        " 73 91 a3 61 64 64 c0",
        "93 02 a3 6c 6f 67 91 a2 68 69",
        "94 00 cd 01 2c a3 61 64 64 92 cb 3f f8 00 00 00 00 00 00 ff",
        "94 00 02 aa 64 61 66 66 69 2e 70 69 6e 67 90",
        "94 01 02 c0 a4 70 6f 6e 67",
        "93 02 aa 64 61 66 66 69 2e 63 61 6c 6c 93 a3 61 64 64 92 01 02 81 a2 74 6f a2 77 31",
    };
    fixture *f = *state;
    size_t i;

    for (i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
        uint8_t bytes[128];
        size_t n = 0;
        const char *h = examples[i];
        daffi_scan s;

        while (*h != '\0') {
            unsigned v;

            assert_int_equal(sscanf(h, "%2x", &v), 1);
            bytes[n++] = (uint8_t)v;
            h += h[2] == ' ' ? 3 : 2;
        }
        assert_int_equal(scan_once(bytes, n, &f->lim, &s), DAFFI_SCAN_COMPLETE);
        assert_int_equal(s.size, n);
        assert_int_equal(daffi_msg_decode((const char *)bytes, n, &f->zone, &f->msg), 0);
    }
}

/* ---- names and addresses ------------------------------------------------------ */

static void test_error_name_names_every_code(void **state)
{
    static const char *const names[] = {
        NULL, "NO_CALLBACK", "BAD_ARGS", "TIMEOUT", "HANDLER_ERROR", "UNAVAILABLE",
        "OVERLOADED", "TOO_LARGE", "PROTOCOL", "DENIED", "SHUTTING_DOWN",
    };
    int code;

    (void)state;
    for (code = DAFFI_E_NO_CALLBACK; code <= DAFFI_E_SHUTTING_DOWN; code++)
        assert_string_equal(daffi_error_name(code), names[code]);
    assert_string_equal(daffi_error_name(0), "UNKNOWN");
    assert_string_equal(daffi_error_name(11), "UNKNOWN");
    assert_string_equal(daffi_error_name(-1), "UNKNOWN");
}

static void test_addr_parses_tcp_hosts_and_ports(void **state)
{
    daffi_addr a;
    const char *why = NULL;

    (void)state;
    assert_int_equal(daffi_addr_parse("tcp://127.0.0.1:7000", &a, &why), 0);
    assert_int_equal(a.kind, DAFFI_ADDR_TCP);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 7000);
    assert_int_equal(daffi_addr_parse("tcp://localhost:0", &a, &why), 0);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 0);
    assert_int_equal(daffi_addr_parse("tcp://example.org:65535", &a, &why), 0);
    assert_int_equal(a.port, 65535);
}

static void test_addr_parses_bracketed_ipv6(void **state)
{
    daffi_addr a;
    const char *why = NULL;

    (void)state;
    assert_int_equal(daffi_addr_parse("tcp://[::1]:8080", &a, &why), 0);
    assert_int_equal(a.kind, DAFFI_ADDR_TCP);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 8080);
    assert_int_equal(daffi_addr_parse("tcp://[fe80::1:2]:1", &a, &why), 0);
    assert_string_equal(a.host, "fe80::1:2");
}

static void test_addr_parses_unix_paths(void **state)
{
    daffi_addr a;
    const char *why = NULL;
    char text[200], path[120];

    (void)state;
    assert_int_equal(daffi_addr_parse("unix:///run/daffid/daffid.sock", &a, &why), 0);
    assert_int_equal(a.kind, DAFFI_ADDR_UNIX);
    assert_string_equal(a.path, "/run/daffid/daffid.sock");
    assert_int_equal(daffi_addr_parse("unix://rel/daffid.sock", &a, &why), 0);
    assert_string_equal(a.path, "rel/daffid.sock");
    /* 107 bytes is the longest path sun_path holds with its NUL */
    memset(path, 'p', 107);
    path[0] = '/';
    path[107] = '\0';
    snprintf(text, sizeof(text), "unix://%s", path);
    assert_int_equal(daffi_addr_parse(text, &a, &why), 0);
    assert_int_equal(strlen(a.path), 107);
}

/* Expects text to be refused with a reason containing word. */
static void expect_bad_addr(const char *text, const char *word)
{
    daffi_addr a;
    const char *why = NULL;

    assert_int_equal(daffi_addr_parse(text, &a, &why), -1);
    assert_non_null(why);
    if (strstr(why, word) == NULL)
        fail_msg("\"%s\": reason \"%s\" does not mention \"%s\"", text, why, word);
}

static void test_addr_refuses_bad_addresses_with_a_reason(void **state)
{
    char text[300], path[120];

    (void)state;
    expect_bad_addr("127.0.0.1:80", "missing scheme");
    expect_bad_addr("", "empty address");
    expect_bad_addr("http://host:80", "unknown scheme");
    expect_bad_addr("tcp://host", "missing port");
    expect_bad_addr("tcp://host:", "bad port");
    expect_bad_addr("tcp://host:65536", "bad port");
    expect_bad_addr("tcp://host:8o", "bad port");
    expect_bad_addr("tcp://host:-1", "bad port");
    expect_bad_addr("tcp://host:80/x", "bad port");
    expect_bad_addr("tcp://:80", "empty host");
    expect_bad_addr("tcp://[]:80", "empty host");
    expect_bad_addr("tcp://[::1:80", "missing ']'");
    expect_bad_addr("tcp://[::1]80", "missing port");
    expect_bad_addr("tcp://::1:80", "brackets");
    expect_bad_addr("tcp://a b:80", "bad character");
    expect_bad_addr("unix://", "empty path");
    memset(path, 'p', 108);
    path[108] = '\0';
    snprintf(text, sizeof(text), "unix:///%s", path + 1);
    expect_bad_addr(text, "path too long");
    /* 256 bytes of host: one more than daffi_addr holds */
    memset(text, 'h', sizeof(text));
    memcpy(text, "tcp://", 6);
    memcpy(text + 6 + 256, ":80", 4);
    expect_bad_addr(text, "host too long");
}

/* daffi_pack_response_ok writes its header bytes itself: they are the bytes msgpack-c's
 * packers give, for a msgid at each edge of each encoding. */
static void test_response_header_is_msgpack_cs_encoding(void **state)
{
    (void)state;
    static const uint32_t ids[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 0x7fffffff,
                                   UINT32_MAX};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        msgpack_sbuffer ours, theirs;
        msgpack_packer pk;
        msgpack_sbuffer_init(&ours);
        msgpack_sbuffer_init(&theirs);
        msgpack_packer_init(&pk, &ours, msgpack_sbuffer_write);
        assert_int_equal(daffi_pack_response_ok(&pk, ids[i]), 0);
        msgpack_packer_init(&pk, &theirs, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, DAFFI_MSG_RESPONSE);
        msgpack_pack_uint32(&pk, ids[i]);
        msgpack_pack_nil(&pk);
        assert_int_equal(ours.size, theirs.size);
        assert_memory_equal(ours.data, theirs.data, ours.size);
        msgpack_sbuffer_destroy(&ours);
        msgpack_sbuffer_destroy(&theirs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_header_is_msgpack_cs_encoding),
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_nil_and_bools_round_trip),
        T(test_positive_ints_of_every_width_round_trip),
        T(test_negative_ints_of_every_width_round_trip),
        T(test_signed_encoding_of_a_positive_value_is_a_positive_integer),
        T(test_float32_stays_float32),
        T(test_float64_round_trips),
        T(test_str_of_each_width_round_trips),
        T(test_bin_of_each_width_round_trips),
        T(test_ext_fixext_and_ext8_16_32_round_trip),
        T(test_nested_arrays_and_maps_round_trip),
        T(test_empty_containers_round_trip),
        T(test_request_with_no_params_decodes),
        T(test_method_as_bin_is_a_name),
        T(test_notification_round_trips),
        T(test_ok_response_round_trips),
        T(test_pack_request_writes_the_envelope_bytes),
        T(test_pack_response_error_writes_code_and_message),
        T(test_pack_response_error_details_carries_a_map),
        T(test_error_parse_reads_a_two_element_error),
        T(test_error_parse_reads_a_three_element_error),
        T(test_error_parse_refuses_what_is_not_an_error_array),
        T(test_byte_at_a_time_finds_the_same_message),
        T(test_random_splits_find_the_same_message),
        T(test_concatenated_messages_are_found_one_after_another),
        T(test_complete_verdict_repeats_when_fed_again),
        T(test_resumed_scan_of_8mib_bin_in_64k_steps_completes),
        T(test_resumed_scan_of_a_million_small_elements_completes),
        T(test_object_size_measures_one_complete_object),
        T(test_message_exactly_max_message_is_accepted),
        T(test_message_one_byte_over_max_message_is_too_large),
        T(test_max_message_bytes_without_a_whole_message_is_too_large),
        T(test_verdict_at_the_max_message_boundary_ignores_the_split),
        T(test_bin_and_ext_length_past_max_message_are_too_large),
        T(test_nesting_32_deep_is_accepted_and_decodes),
        T(test_nesting_33_deep_is_protocol),
        T(test_response_result_nesting_is_bounded_alike),
        T(test_max_depth_is_configurable_up_to_62),
        T(test_array_count_beyond_max_message_is_rejected_from_its_header),
        T(test_map_count_is_checked_at_two_bytes_per_entry),
        T(test_msgid_negative_is_protocol_without_msgid),
        T(test_msgid_float_is_protocol_without_msgid),
        T(test_msgid_above_uint32_is_protocol_without_msgid),
        T(test_msgid_uint64_encoding_of_a_uint32_is_accepted),
        T(test_method_as_int_is_protocol_with_msgid),
        T(test_params_not_an_array_is_protocol),
        T(test_notification_method_not_a_string_is_protocol),
        T(test_response_error_not_nil_or_array_is_protocol),
        T(test_wrong_envelope_length_is_protocol),
        T(test_unknown_kind_3_is_protocol),
        T(test_reserved_byte_c1_is_protocol),
        T(test_top_level_not_an_array_is_protocol),
        T(test_decode_refuses_bytes_that_are_not_a_message),
        T(test_protocol_document_examples_are_accepted),
        T(test_error_name_names_every_code),
        T(test_addr_parses_tcp_hosts_and_ports),
        T(test_addr_parses_bracketed_ipv6),
        T(test_addr_parses_unix_paths),
        T(test_addr_refuses_bad_addresses_with_a_reason),
#undef T
    };

    return cmocka_run_group_tests_name("rpc codec", tests, NULL, NULL);
}
