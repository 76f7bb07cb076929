/*
 * test_json.c - daffictl's JSON <-> MessagePack conversion (sdk/daffictl/json_*.c) as
 * a specification: what each JSON value packs as, what each msgpack type prints as,
 * that the output stays linear in the input, and how a command-line argument is read.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "../../sdk/daffictl/json.h"

typedef struct fixture {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
    char *text;          /* last ctl_json_dump() result */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&f->up);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    msgpack_sbuffer_destroy(&f->sb);
    msgpack_unpacked_destroy(&f->up);
    free(f->text);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

/* Unpacks the one object in f->sb (asserting it is exactly one) and returns it. */
static const msgpack_object *unpack_all(fixture *f)
{
    size_t off = 0;

    assert_int_equal(msgpack_unpack_next(&f->up, f->sb.data, f->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, f->sb.size);
    return &f->up.data;
}

/* Packs JSON text and returns the unpacked object. */
static const msgpack_object *from_json(fixture *f, const char *text)
{
    ctl_json_error err;

    f->sb.size = 0;
    assert_int_equal(ctl_json_pack(&f->pk, text, strlen(text), &err), 0);
    return unpack_all(f);
}

/* Returns the JSON text of obj (owned by the fixture). */
static const char *to_json(fixture *f, const msgpack_object *obj, unsigned flags)
{
    free(f->text);
    f->text = ctl_json_dump(obj, flags);
    assert_non_null(f->text);
    return f->text;
}

/* Asserts that JSON text packs and prints back as expected (compact). */
static void assert_roundtrip(fixture *f, const char *text, const char *expected)
{
    assert_string_equal(to_json(f, from_json(f, text), CTL_JSON_COMPACT), expected);
}

/* Packs one argument with ctl_json_arg and returns the unpacked object. */
static const msgpack_object *from_arg(fixture *f, const char *arg)
{
    ctl_json_error err;

    f->sb.size = 0;
    assert_int_equal(ctl_json_arg(&f->pk, arg, &err), 0);
    return unpack_all(f);
}

static void assert_str_object(const msgpack_object *o, const char *s)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(s));
    assert_memory_equal(o->via.str.ptr, s, strlen(s));
}

/* ---- JSON -> MessagePack -> JSON -------------------------------------------------- */

static void test_null_and_booleans_round_trip(void **state)
{
    fixture *f = *state;

    assert_int_equal(from_json(f, "null")->type, MSGPACK_OBJECT_NIL);
    assert_roundtrip(f, "null", "null");
    assert_int_equal(from_json(f, "true")->type, MSGPACK_OBJECT_BOOLEAN);
    assert_roundtrip(f, "true", "true");
    assert_roundtrip(f, "false", "false");
}

static void test_integers_pack_as_int_and_round_trip(void **state)
{
    fixture *f = *state;
    const msgpack_object *o;

    o = from_json(f, "42");
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(f->sb.size, 1); /* smallest encoding: positive fixint */
    o = from_json(f, "-5");
    assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(o->via.i64, -5);
    assert_roundtrip(f, "0", "0");
    assert_roundtrip(f, "-1", "-1");
    assert_roundtrip(f, "9223372036854775807", "9223372036854775807");
    assert_roundtrip(f, "-9223372036854775808", "-9223372036854775808");
}

static void test_reals_pack_as_float64_and_round_trip(void **state)
{
    fixture *f = *state;
    const msgpack_object *o;

    o = from_json(f, "1.5");
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    assert_int_equal((unsigned char)f->sb.data[0], 0xcb);
    assert_true(o->via.f64 == 1.5);
    assert_roundtrip(f, "1.5", "1.5");
    assert_roundtrip(f, "2.0", "2.0"); /* stays a real */
    assert_roundtrip(f, "0.1", "0.1");
    assert_roundtrip(f, "-0.25", "-0.25");
    assert_roundtrip(f, "1e300", "1e+300");
    assert_roundtrip(f, "123456789.125", "123456789.125");
}

static void test_strings_pack_as_str_and_round_trip_escaped(void **state)
{
    fixture *f = *state;

    assert_str_object(from_json(f, "\"hello\""), "hello");
    assert_roundtrip(f, "\"\"", "\"\"");
    assert_roundtrip(f, "\"a\\\"b\\\\c\\n\\t\\u0001\"", "\"a\\\"b\\\\c\\n\\t\\u0001\"");
    assert_roundtrip(f, "\"caf\\u00e9 \xe2\x82\xac\"", "\"caf\xc3\xa9 \xe2\x82\xac\"");
}

static void test_string_with_nul_round_trips(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "\"a\\u0000b\"");

    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, 3);
    assert_memory_equal(o->via.str.ptr, "a\0b", 3);
    assert_string_equal(to_json(f, o, CTL_JSON_COMPACT), "\"a\\u0000b\"");
}

static void test_arrays_round_trip(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "[1, \"two\", [3.5, null], []]");

    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, 4);
    assert_roundtrip(f, "[1, \"two\", [3.5, null], []]", "[1,\"two\",[3.5,null],[]]");
    assert_roundtrip(f, "[]", "[]");
}

static void test_objects_pack_as_maps_in_order(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "{\"z\": 1, \"a\": {\"k\": [true]}, \"m\": {}}");

    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 3);
    assert_str_object(&o->via.map.ptr[0].key, "z");
    assert_str_object(&o->via.map.ptr[1].key, "a");
    assert_roundtrip(f, "{\"z\": 1, \"a\": {\"k\": [true]}, \"m\": {}}",
                     "{\"z\":1,\"a\":{\"k\":[true]},\"m\":{}}");
}

static void test_pretty_output_is_indented_by_two(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "{\"a\": [1, 2], \"b\": {}, \"c\": []}");

    assert_string_equal(to_json(f, o, CTL_JSON_PRETTY),
                        "{\n"
                        "  \"a\": [\n"
                        "    1,\n"
                        "    2\n"
                        "  ],\n"
                        "  \"b\": {},\n"
                        "  \"c\": []\n"
                        "}");
}

static void test_invalid_json_is_rejected_with_position(void **state)
{
    fixture *f = *state;
    ctl_json_error err;

    f->sb.size = 0;
    assert_int_equal(ctl_json_pack(&f->pk, "[1,\n  x]", 8, &err), -1);
    assert_int_equal(err.line, 2);
    assert_true(err.column >= 2);
    assert_true(strlen(err.text) > 0);
    assert_int_equal(f->sb.size, 0); /* nothing packed */
}

static void test_integer_beyond_int64_is_rejected(void **state)
{
    fixture *f = *state;
    ctl_json_error err;
    const char *text = "18446744073709551615";

    assert_int_equal(ctl_json_pack(&f->pk, text, strlen(text), &err), -1);
    assert_non_null(strstr(err.text, "integer"));
}

/* ---- tagged values ---------------------------------------------------------------- */

static void test_tagged_bin_packs_as_bin_and_round_trips(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "{\"$bin\": \"AAEC/w==\"}");

    assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(o->via.bin.size, 4);
    assert_memory_equal(o->via.bin.ptr, "\x00\x01\x02\xff", 4);
    assert_roundtrip(f, "{\"$bin\": \"AAEC/w==\"}", "{\"$bin\":\"AAEC/w==\"}");
    assert_roundtrip(f, "{\"$bin\": \"\"}", "{\"$bin\":\"\"}");
}

static void test_tagged_ext_packs_as_ext_and_round_trips(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "{\"$ext\": [-3, \"aGk=\"]}");

    assert_int_equal(o->type, MSGPACK_OBJECT_EXT);
    assert_int_equal(o->via.ext.type, -3);
    assert_int_equal(o->via.ext.size, 2);
    assert_memory_equal(o->via.ext.ptr, "hi", 2);
    assert_roundtrip(f, "{\"$ext\": [-3, \"aGk=\"]}", "{\"$ext\":[-3,\"aGk=\"]}");
}

static void test_malformed_tagged_values_are_rejected(void **state)
{
    fixture *f = *state;
    ctl_json_error err;
    static const char *bad[] = {
        "{\"$bin\": \"not base64!\"}", "{\"$bin\": 3}", "[{\"$bin\": \"A\"}]",
        "{\"$ext\": [300, \"AA==\"]}", "{\"$ext\": [1]}", "{\"$ext\": \"AA==\"}"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->sb.size = 0;
        assert_int_equal(ctl_json_pack(&f->pk, bad[i], strlen(bad[i]), &err), -1);
        assert_non_null(strstr(err.text, "$"));
        assert_int_equal(f->sb.size, 0);
    }
}

static void test_object_with_reserved_key_and_others_is_a_map(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "{\"$bin\": \"AA==\", \"x\": 1}");

    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 2);
}

/* ---- MessagePack -> JSON ------------------------------------------------------------ */

static void test_bin_prints_as_tagged_base64(void **state)
{
    fixture *f = *state;

    msgpack_pack_bin(&f->pk, 5);
    msgpack_pack_bin_body(&f->pk, "hello", 5);
    assert_string_equal(to_json(f, unpack_all(f), 0), "{\"$bin\":\"aGVsbG8=\"}");
}

static void test_ext_prints_as_tagged_type_and_base64(void **state)
{
    fixture *f = *state;

    msgpack_pack_ext(&f->pk, 1, 42);
    msgpack_pack_ext_body(&f->pk, "A", 1);
    assert_string_equal(to_json(f, unpack_all(f), 0), "{\"$ext\":[42,\"QQ==\"]}");
    assert_string_equal(to_json(f, &f->up.data, CTL_JSON_PRETTY),
                        "{\"$ext\": [42, \"QQ==\"]}");
}

static void test_float32_prints_at_its_own_precision(void **state)
{
    fixture *f = *state;

    msgpack_pack_array(&f->pk, 3);
    msgpack_pack_float(&f->pk, 0.1f);
    msgpack_pack_float(&f->pk, 1.5f);
    msgpack_pack_float(&f->pk, 3.0f);
    assert_int_equal(unpack_all(f)->via.array.ptr[0].type, MSGPACK_OBJECT_FLOAT32);
    assert_string_equal(to_json(f, &f->up.data, 0), "[0.1,1.5,3.0]");
}

static void test_nan_and_infinity_print_as_null(void **state)
{
    fixture *f = *state;

    msgpack_pack_array(&f->pk, 3);
    msgpack_pack_double(&f->pk, NAN);
    msgpack_pack_double(&f->pk, INFINITY);
    msgpack_pack_float(&f->pk, -INFINITY);
    assert_string_equal(to_json(f, unpack_all(f), 0), "[null,null,null]");
}

static void test_uint64_and_int64_extremes_print_exactly(void **state)
{
    fixture *f = *state;

    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_uint64(&f->pk, UINT64_MAX);
    msgpack_pack_int64(&f->pk, INT64_MIN);
    assert_string_equal(to_json(f, unpack_all(f), 0),
                        "[18446744073709551615,-9223372036854775808]");
}

static void test_scalar_map_keys_print_as_their_json_text(void **state)
{
    fixture *f = *state;

    msgpack_pack_map(&f->pk, 5);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_str_with_body(&f->pk, "a", 1);
    msgpack_pack_int(&f->pk, -7);
    msgpack_pack_str_with_body(&f->pk, "b", 1);
    msgpack_pack_nil(&f->pk);
    msgpack_pack_str_with_body(&f->pk, "c", 1);
    msgpack_pack_true(&f->pk);
    msgpack_pack_str_with_body(&f->pk, "d", 1);
    msgpack_pack_double(&f->pk, 2.5);
    msgpack_pack_str_with_body(&f->pk, "e", 1);
    assert_string_equal(to_json(f, unpack_all(f), 0),
                        "{\"1\":\"a\",\"-7\":\"b\",\"null\":\"c\",\"true\":\"d\",\"2.5\":\"e\"}");
}

/* A key that is a container (or bin, ext) is no object key: the whole map is written
 * as its pairs, with each key as a value, and reads back as the same map. */
static void test_a_container_map_key_makes_the_map_a_list_of_pairs(void **state)
{
    fixture *f = *state;
    msgpack_sbuffer first;

    msgpack_pack_map(&f->pk, 2);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_str_with_body(&f->pk, "a", 1);
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_str_with_body(&f->pk, "x", 1);
    msgpack_pack_str_with_body(&f->pk, "b", 1);
    assert_string_equal(to_json(f, unpack_all(f), 0),
                        "{\"$map\":[[1,\"a\"],[[1,\"x\"],\"b\"]]}");
    assert_string_equal(to_json(f, &f->up.data, CTL_JSON_PRETTY),
                        "{\n  \"$map\": [\n    [\n      1,\n      \"a\"\n    ],\n    [\n"
                        "      [\n        1,\n        \"x\"\n      ],\n      \"b\"\n    ]\n  ]\n}");
    /* and back: the same bytes */
    msgpack_sbuffer_init(&first);
    msgpack_sbuffer_write(&first, f->sb.data, f->sb.size);
    from_json(f, f->text);
    assert_int_equal(f->sb.size, first.size);
    assert_memory_equal(f->sb.data, first.data, first.size);
    msgpack_sbuffer_destroy(&first);
}

static void test_duplicate_map_keys_are_kept_as_pairs(void **state)
{
    fixture *f = *state;

    msgpack_pack_map(&f->pk, 3);
    msgpack_pack_str_with_body(&f->pk, "k", 1);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_str_with_body(&f->pk, "j", 1);
    msgpack_pack_int(&f->pk, 3);
    msgpack_pack_str_with_body(&f->pk, "k", 1);
    msgpack_pack_int(&f->pk, 2);
    assert_string_equal(to_json(f, unpack_all(f), 0),
                        "{\"$map\":[[\"k\",1],[\"j\",3],[\"k\",2]]}");
    /* an int key and a str key with the same text are duplicates too */
    f->sb.size = 0;
    msgpack_pack_map(&f->pk, 2);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_nil(&f->pk);
    msgpack_pack_str_with_body(&f->pk, "1", 1);
    msgpack_pack_nil(&f->pk);
    assert_string_equal(to_json(f, unpack_all(f), 0), "{\"$map\":[[1,null],[\"1\",null]]}");
}

/* A map of one entry named like a tag, or with a NUL in a key, would not read back
 * as itself from an object. */
static void test_maps_an_object_cannot_hold_are_pairs(void **state)
{
    fixture *f = *state;

    msgpack_pack_map(&f->pk, 1);
    msgpack_pack_str_with_body(&f->pk, "$bin", 4);
    msgpack_pack_int(&f->pk, 5);
    assert_string_equal(to_json(f, unpack_all(f), 0), "{\"$map\":[[\"$bin\",5]]}");
    f->sb.size = 0;
    msgpack_pack_map(&f->pk, 1);
    msgpack_pack_str_with_body(&f->pk, "a\0b", 3);
    msgpack_pack_int(&f->pk, 5);
    assert_string_equal(to_json(f, unpack_all(f), 0), "{\"$map\":[[\"a\\u0000b\",5]]}");
}

static void test_tagged_map_packs_as_a_map_with_any_keys(void **state)
{
    fixture *f = *state;
    const msgpack_object *o = from_json(f, "{\"$map\": [[[1], {\"$bin\": \"AQ==\"}], [null, 2], "
                                           "[\"k\", 3], [\"k\", 4]]}");

    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 4);
    assert_int_equal(o->via.map.ptr[0].key.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.map.ptr[0].val.type, MSGPACK_OBJECT_BIN);
    assert_int_equal(o->via.map.ptr[1].key.type, MSGPACK_OBJECT_NIL);
    assert_str_object(&o->via.map.ptr[2].key, "k");
    assert_str_object(&o->via.map.ptr[3].key, "k");
    assert_int_equal(from_json(f, "{\"$map\": []}")->via.map.size, 0);
}

static void test_malformed_tagged_map_is_rejected(void **state)
{
    static const char *const bad[] = {"{\"$map\": 1}", "{\"$map\": [1]}",
                                      "{\"$map\": [[1]]}", "{\"$map\": [[1, 2, 3]]}",
                                      "{\"$map\": [[{\"$bin\": 7}, 1]]}"};
    fixture *f = *state;
    ctl_json_error err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->sb.size = 0;
        assert_int_equal(ctl_json_pack(&f->pk, bad[i], strlen(bad[i]), &err), -1);
        assert_non_null(strstr(err.text, "$"));
        assert_int_equal(f->sb.size, 0);
    }
}

/* Packs depth maps each nested in the key of the one around it, the innermost {nil:
 * nil}: 2 bytes per level (the shape that once printed 134 MB from 57 bytes). */
static void pack_maps_in_keys(fixture *f, int depth)
{
    f->sb.size = 0;
    for (int i = 0; i < depth; i++)
        msgpack_pack_map(&f->pk, 1);
    msgpack_pack_nil(&f->pk);
    for (int i = 0; i < depth; i++)
        msgpack_pack_nil(&f->pk);
}

/* Output is linear in the input: at most 10 bytes per input byte (compact), each level
 * of nesting the same few bytes more, whatever the depth. */
static void test_maps_nested_in_map_keys_print_in_linear_size(void **state)
{
    fixture *f = *state;
    size_t len[32];

    pack_maps_in_keys(f, 2);
    assert_string_equal(to_json(f, unpack_all(f), 0), "{\"$map\":[[{\"null\":null},null]]}");
    for (int depth = 1; depth <= 31; depth++) {
        pack_maps_in_keys(f, depth);
        len[depth] = strlen(to_json(f, unpack_all(f), 0));
        assert_true(len[depth] <= 10 * f->sb.size);
        if (depth > 2)
            assert_int_equal(len[depth] - len[depth - 1], len[depth - 1] - len[depth - 2]);
        /* pretty: a newline and 2 x depth spaces per element more */
        assert_true(strlen(to_json(f, &f->up.data, CTL_JSON_PRETTY)) <=
                    len[depth] + 2 * f->sb.size * (1 + 2 * (3 * (size_t)depth + 2)));
    }
}

static void test_invalid_utf8_prints_as_replacement_character(void **state)
{
    fixture *f = *state;

    /* a lone continuation byte, an overlong '/', a surrogate, then valid text */
    msgpack_pack_str_with_body(&f->pk, "a\x80" "b\xc0\xaf" "c\xed\xa0\x80" "d", 10);
    assert_string_equal(to_json(f, unpack_all(f), 0),
                        "\"a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                        "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d\"");
}

static void test_control_characters_are_escaped(void **state)
{
    fixture *f = *state;

    msgpack_pack_str_with_body(&f->pk, "\x1f\r\b\f/", 5);
    assert_string_equal(to_json(f, unpack_all(f), 0), "\"\\u001f\\r\\b\\f/\"");
}

/* ---- command-line arguments ---------------------------------------------------------- */

static void test_arg_integer_is_int(void **state)
{
    const msgpack_object *o = from_arg(*state, "3");

    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o->via.u64, 3);
}

static void test_arg_negative_integer_is_int(void **state)
{
    const msgpack_object *o = from_arg(*state, "-17");

    assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(o->via.i64, -17);
}

static void test_arg_real_is_float64(void **state)
{
    const msgpack_object *o = from_arg(*state, "2.5");

    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o->via.f64 == 2.5);
}

static void test_arg_quoted_string_is_its_content(void **state)
{
    assert_str_object(from_arg(*state, "\"x\""), "x");
    assert_str_object(from_arg(*state, "\"3\""), "3");
}

static void test_arg_quoted_string_may_hold_nul(void **state)
{
    const msgpack_object *o = from_arg(*state, "\"a\\u0000b\"");

    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, 3);
    assert_memory_equal(o->via.str.ptr, "a\0b", 3);
}

static void test_arg_bare_word_is_a_string(void **state)
{
    assert_str_object(from_arg(*state, "hello"), "hello");
    assert_str_object(from_arg(*state, "hello world"), "hello world");
}

static void test_arg_array_is_an_array(void **state)
{
    const msgpack_object *o = from_arg(*state, "[1,2]");

    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, 2);
    assert_int_equal(o->via.array.ptr[1].via.u64, 2);
}

static void test_arg_object_is_a_map(void **state)
{
    const msgpack_object *o = from_arg(*state, "{\"a\": [true, null]}");

    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 1);
    assert_str_object(&o->via.map.ptr[0].key, "a");
    assert_int_equal(o->via.map.ptr[0].val.type, MSGPACK_OBJECT_ARRAY);
}

static void test_arg_literals_are_bool_and_nil(void **state)
{
    assert_int_equal(from_arg(*state, "true")->type, MSGPACK_OBJECT_BOOLEAN);
    assert_int_equal(from_arg(*state, "null")->type, MSGPACK_OBJECT_NIL);
}

static void test_arg_invalid_json_is_a_string(void **state)
{
    assert_str_object(from_arg(*state, "[1,"), "[1,");
    assert_str_object(from_arg(*state, "{a: 1}"), "{a: 1}");
    assert_str_object(from_arg(*state, "1e999"), "1e999");
    assert_str_object(from_arg(*state, "18446744073709551616"), "18446744073709551616");
}

static void test_arg_empty_is_an_empty_string(void **state)
{
    assert_str_object(from_arg(*state, ""), "");
}

static void test_arg_bin_tag_is_bin(void **state)
{
    const msgpack_object *o = from_arg(*state, "{\"$bin\":\"AAEC\"}");

    assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(o->via.bin.size, 3);
}

static void test_arg_malformed_tag_is_an_error(void **state)
{
    fixture *f = *state;
    ctl_json_error err;

    assert_int_equal(ctl_json_arg(&f->pk, "{\"$bin\": \"@@\"}", &err), -1);
    assert_non_null(strstr(err.text, "$bin"));
    assert_int_equal(f->sb.size, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_null_and_booleans_round_trip),
        T(test_integers_pack_as_int_and_round_trip),
        T(test_reals_pack_as_float64_and_round_trip),
        T(test_strings_pack_as_str_and_round_trip_escaped),
        T(test_string_with_nul_round_trips),
        T(test_arrays_round_trip),
        T(test_objects_pack_as_maps_in_order),
        T(test_pretty_output_is_indented_by_two),
        T(test_invalid_json_is_rejected_with_position),
        T(test_integer_beyond_int64_is_rejected),
        T(test_tagged_bin_packs_as_bin_and_round_trips),
        T(test_tagged_ext_packs_as_ext_and_round_trips),
        T(test_malformed_tagged_values_are_rejected),
        T(test_object_with_reserved_key_and_others_is_a_map),
        T(test_bin_prints_as_tagged_base64),
        T(test_ext_prints_as_tagged_type_and_base64),
        T(test_float32_prints_at_its_own_precision),
        T(test_nan_and_infinity_print_as_null),
        T(test_uint64_and_int64_extremes_print_exactly),
        T(test_scalar_map_keys_print_as_their_json_text),
        T(test_a_container_map_key_makes_the_map_a_list_of_pairs),
        T(test_duplicate_map_keys_are_kept_as_pairs),
        T(test_maps_an_object_cannot_hold_are_pairs),
        T(test_tagged_map_packs_as_a_map_with_any_keys),
        T(test_malformed_tagged_map_is_rejected),
        T(test_maps_nested_in_map_keys_print_in_linear_size),
        T(test_invalid_utf8_prints_as_replacement_character),
        T(test_control_characters_are_escaped),
        T(test_arg_integer_is_int),
        T(test_arg_negative_integer_is_int),
        T(test_arg_real_is_float64),
        T(test_arg_quoted_string_is_its_content),
        T(test_arg_quoted_string_may_hold_nul),
        T(test_arg_bare_word_is_a_string),
        T(test_arg_array_is_an_array),
        T(test_arg_object_is_a_map),
        T(test_arg_literals_are_bool_and_nil),
        T(test_arg_invalid_json_is_a_string),
        T(test_arg_empty_is_an_empty_string),
        T(test_arg_bin_tag_is_bin),
        T(test_arg_malformed_tag_is_an_error),
    };

    return cmocka_run_group_tests_name("json conversion", tests, NULL, NULL);
}
