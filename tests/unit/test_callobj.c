/*
 * test_callobj.c - what daffi_call_write_response (sdk/src/callobj.c) lets a handler's
 * result send: a flat result (one scalar, str, bin or ext) is checked by its size
 * alone, and still refused with a clear HANDLER_ERROR when bytes follow it or it is cut
 * short; a container goes through the depth scan. daffi_call_result_is_flat, which
 * lets the server send a large flat result from its own block, says the same.
 * A load from the scanner's state (daffi_call_load(..., scan)) takes the envelope from
 * it and leaves the params encoded: the count and raw arguments come from the bytes,
 * the first daffi_arg() decodes them once, two threads asking at once get the same
 * objects, and such a load and a whole decode agree.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "callobj.h"

typedef struct answer {
    int code;            /* what daffi_call_write_response returned */
    int flat;            /* what daffi_call_result_is_flat said first */
    daffi_msg msg;       /* the response, decoded */
    char text[200];      /* the error's message, or "" */
} answer;

/* Replies len raw bytes from a fresh call and decodes the response it writes. The
 * zone and buffer live in z and sb (the caller destroys them). */
static answer respond_raw(const char *p, size_t len, msgpack_zone *z, msgpack_sbuffer *sb)
{
    daffi_limits lim = {.max_message = 16u << 20, .max_depth = 32};
    daffi_call call;
    answer a;

    memset(&a, 0, sizeof(a));
    daffi_call_init(&call);
    daffi_reply_raw(&call, p, len);
    a.flat = daffi_call_result_is_flat(&call);
    a.code = daffi_call_write_response(&call, 7, sb, &lim);
    daffi_call_destroy(&call);
    assert_int_equal(daffi_msg_decode(sb->data, sb->size, z, &a.msg), 0);
    assert_int_equal(a.msg.msgid, 7);
    if (a.msg.error->type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object_str *m = &a.msg.error->via.array.ptr[1].via.str;
        snprintf(a.text, sizeof(a.text), "%.*s", (int)m->size, m->ptr);
    }
    return a;
}

static void test_a_large_flat_result_is_sent_whole(void **state)
{
    (void)state;
    enum { N = 300 * 1024 };
    char *p = malloc(N + 5);
    msgpack_zone z;
    msgpack_sbuffer sb;
    assert_non_null(p);
    p[0] = (char)0xc6; /* bin32 */
    p[1] = 0, p[2] = (char)(N >> 16), p[3] = (char)(N >> 8), p[4] = (char)N;
    memset(p + 5, 'x', N);
    msgpack_zone_init(&z, 4096);
    msgpack_sbuffer_init(&sb);
    answer a = respond_raw(p, N + 5, &z, &sb);
    assert_int_equal(a.code, 0);
    assert_true(a.flat);
    assert_int_equal(a.msg.result->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(a.msg.result->via.bin.size, N);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&z);
    free(p);
}

static void test_bytes_after_a_flat_result_are_refused_by_name(void **state)
{
    (void)state;
    msgpack_zone z;
    msgpack_sbuffer sb;
    msgpack_zone_init(&z, 4096);
    msgpack_sbuffer_init(&sb);
    /* bin8 of 3 bytes, then one byte more */
    answer a = respond_raw("\xc4\x03" "abcX", 6, &z, &sb);
    assert_int_equal(a.code, DAFFI_E_HANDLER_ERROR);
    assert_false(a.flat);
    assert_non_null(strstr(a.text, "not one MessagePack object"));
    assert_non_null(strstr(a.text, "bytes after its first"));
    msgpack_sbuffer_clear(&sb);
    /* a str8 that says 9 bytes and holds 2 */
    a = respond_raw("\xd9\x09" "ab", 4, &z, &sb);
    assert_int_equal(a.code, DAFFI_E_HANDLER_ERROR);
    assert_false(a.flat);
    assert_non_null(strstr(a.text, "cut short"));
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&z);
}

static void test_a_container_result_still_gets_the_depth_check(void **state)
{
    (void)state;
    char deep[40];
    msgpack_zone z;
    msgpack_sbuffer sb;
    memset(deep, 0x91, sizeof(deep) - 1); /* 39 nested fixarrays of one element */
    deep[sizeof(deep) - 1] = 0x01;
    msgpack_zone_init(&z, 4096);
    msgpack_sbuffer_init(&sb);
    answer a = respond_raw(deep, sizeof(deep), &z, &sb);
    assert_int_equal(a.code, DAFFI_E_HANDLER_ERROR);
    assert_non_null(strstr(a.text, "nests deeper than max_depth"));
    msgpack_sbuffer_clear(&sb);
    a = respond_raw(deep + 20, sizeof(deep) - 20, &z, &sb); /* 19 deep: fine */
    assert_int_equal(a.code, 0);
    assert_false(a.flat); /* a container: the server's copying path, with the scan */
    assert_int_equal(a.msg.result->type, MSGPACK_OBJECT_ARRAY);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&z);
}

/* [0, 9, "m", [1, "two", [3, 4], {"k": -5}]]: a request with four arguments. */
static size_t pack_request(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    assert_int_equal(daffi_pack_request(&pk, 9, "m", 1, 4), 0);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "two", 3);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 3);
    msgpack_pack_int(&pk, 4);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_int(&pk, -5);
    return sb->size;
}

/* Scans the message in sb, which must be complete, into s. */
static const daffi_scan *scanned(const msgpack_sbuffer *sb, daffi_scan *s)
{
    daffi_scan_init(s);
    assert_int_equal(daffi_scan_feed(s, sb->data, sb->size, NULL), DAFFI_SCAN_COMPLETE);
    assert_int_equal(s->size, sb->size);
    return s;
}

static void test_a_lazy_load_decodes_the_params_when_asked(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    daffi_call lazy, eager;
    daffi_scan scan;
    const char *raw;
    size_t raw_len;

    msgpack_sbuffer_init(&sb);
    pack_request(&sb);
    daffi_call_init(&lazy);
    daffi_call_init(&eager);
    assert_int_equal(daffi_call_load(&lazy, sb.data, sb.size, scanned(&sb, &scan)), 0);
    assert_int_equal(daffi_call_load(&eager, sb.data, sb.size, NULL), 0);
    assert_true(daffi_call_params_decoded(&eager));
    /* the envelope is read at once */
    assert_string_equal(daffi_call_method(&lazy), "m");
    assert_int_equal(lazy.msg.kind, DAFFI_MSG_REQUEST);
    assert_int_equal(lazy.msg.msgid, 9);
    assert_int_equal(lazy.msg.params_raw_len, eager.msg.params_raw_len);
    assert_ptr_equal(lazy.msg.params_raw, lazy.bytes + (eager.msg.params_raw - eager.bytes));
    /* the count and a raw argument come from the bytes: nothing decoded yet */
    assert_int_equal(daffi_argc(&lazy), 4);
    assert_int_equal(daffi_arg_raw(&lazy, 1, &raw, &raw_len), 0);
    assert_int_equal(raw_len, 4);
    assert_memory_equal(raw, "\xa3two", 4);
    assert_int_equal(daffi_arg_raw(&lazy, 4, &raw, &raw_len), -1);
    assert_false(daffi_call_params_decoded(&lazy));
    /* the first daffi_arg decodes all of them, once */
    const msgpack_object *a0 = daffi_arg(&lazy, 0);
    assert_true(daffi_call_params_decoded(&lazy));
    assert_non_null(a0);
    assert_ptr_equal(daffi_arg(&lazy, 0), a0);
    assert_null(daffi_arg(&lazy, 4));
    int64_t v;
    assert_int_equal(daffi_arg_int(&lazy, 0, &v), 0);
    assert_int_equal(v, 1);
    for (size_t i = 0; i < 4; i++)
        assert_true(msgpack_object_equal(*daffi_arg(&lazy, i), *daffi_arg(&eager, i)));
    assert_int_equal(daffi_arg(&lazy, 3)->via.map.ptr[0].val.via.i64, -5);
    /* reused: a notification, lazily again */
    daffi_call_reset(&lazy);
    assert_true(daffi_call_params_decoded(&lazy)); /* a reset call has nothing to decode */
    msgpack_sbuffer_clear(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(daffi_pack_notify(&pk, "n", 1, 1), 0);
    msgpack_pack_nil(&pk);
    assert_int_equal(daffi_call_load(&lazy, sb.data, sb.size, scanned(&sb, &scan)), 0);
    assert_int_equal(lazy.msg.kind, DAFFI_MSG_NOTIFY);
    assert_int_equal(lazy.msg.msgid, 0);
    assert_string_equal(daffi_call_method(&lazy), "n");
    assert_false(daffi_call_params_decoded(&lazy));
    assert_int_equal(daffi_arg(&lazy, 0)->type, MSGPACK_OBJECT_NIL);
    /* a response is no call, lazily or not */
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(daffi_pack_response_ok(&pk, 3), 0);
    msgpack_pack_nil(&pk);
    daffi_call_reset(&lazy);
    assert_int_equal(daffi_call_load(&lazy, sb.data, sb.size, scanned(&sb, &scan)), -1);
    /* a scan of other bytes than those given is refused, not trusted */
    daffi_call_reset(&lazy);
    msgpack_sbuffer_clear(&sb);
    pack_request(&sb);
    scanned(&sb, &scan);
    assert_int_equal(daffi_call_load(&lazy, sb.data, sb.size - 1, &scan), -1);
    daffi_call_destroy(&lazy);
    daffi_call_destroy(&eager);
    msgpack_sbuffer_destroy(&sb);
}

typedef struct racer {
    daffi_call *call;
    pthread_barrier_t *go;
    const msgpack_object *seen;
} racer;

static void *race_arg(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->go);
    r->seen = daffi_arg(r->call, 2);
    return NULL;
}

/* A handler may read its arguments on another thread while it still runs on the
 * loop: whichever asks first decodes, the other waits for it, both see one array. */
static void test_two_threads_decode_once(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    pthread_barrier_t go;
    daffi_scan scan;

    msgpack_sbuffer_init(&sb);
    pack_request(&sb);
    scanned(&sb, &scan);
    for (int round = 0; round < 200; round++) {
        daffi_call call;
        pthread_t t[2];
        racer r[2];
        daffi_call_init(&call);
        assert_int_equal(daffi_call_load(&call, sb.data, sb.size, &scan), 0);
        pthread_barrier_init(&go, NULL, 2);
        for (int i = 0; i < 2; i++) {
            r[i] = (racer){ &call, &go, NULL };
            assert_int_equal(pthread_create(&t[i], NULL, race_arg, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        assert_non_null(r[0].seen);
        assert_ptr_equal(r[0].seen, r[1].seen);
        assert_int_equal(r[0].seen->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(r[0].seen->via.array.size, 2);
        daffi_call_destroy(&call);
    }
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_large_flat_result_is_sent_whole),
        cmocka_unit_test(test_bytes_after_a_flat_result_are_refused_by_name),
        cmocka_unit_test(test_a_container_result_still_gets_the_depth_check),
        cmocka_unit_test(test_a_lazy_load_decodes_the_params_when_asked),
        cmocka_unit_test(test_two_threads_decode_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
