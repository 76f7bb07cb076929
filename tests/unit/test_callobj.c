/*
 * test_callobj.c - what daffi_call_write_response (sdk/src/callobj.c) lets a handler's
 * result send: a flat result (one scalar, str, bin or ext) is checked by its size
 * alone, and still refused with a clear HANDLER_ERROR when bytes follow it or it is cut
 * short; a container goes through the depth scan. daffi_call_result_is_flat, which
 * lets the server send a large flat result from its own block, says the same.
 */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_large_flat_result_is_sent_whole),
        cmocka_unit_test(test_bytes_after_a_flat_result_are_refused_by_name),
        cmocka_unit_test(test_a_container_result_still_gets_the_depth_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
