/*
 * test_router_calls.c - calls through a router (daffi's rpc scenarios): a caller
 * reaches a worker's callbacks by name through a real daffid router, values come back
 * bit for bit, errors come back as the member sent them, msgids of different callers
 * never collide, calls are spread round-robin, `daffi.call` reaches the member named
 * by `to`, notifications are delivered, a 16 MiB message passes, and two clients that
 * expose callbacks call each other's through the router (bidirectional).
 *
 * The group runs one router ("hub", heartbeat 1s x 3) and one daffid worker ("w1",
 * echo and calc), both with max_message = 32M. Raw members (rawmember.h) join and
 * leave inside the tests that need them, under names no other test uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rawmember.h"
#include "../support/rexpect.h"

/* A literal byte string and its length, for raw msgpack values. */
#define BYTES(s) s, sizeof(s) - 1
#define START_MS 10000
#define BIG (16u * 1024 * 1024)

typedef struct fixture {
    tdaemon router;
    tdaemon worker;
    rmpool *pool;        /* raw members of the running test, stopped by its teardown */
} fixture;

/* Starts the router, then the worker w1 (echo, calc), and waits until w1 is a member.
 * Returns 0, or -1 (logs printed). */
static int group_setup(void **state)
{
    fixture *f = tcluster_fixture_new(state, sizeof(*f));

    if (f == NULL ||
        tcluster_router_start(&f->router, "hub", "heartbeat = 1s\nheartbeat_misses = 3\n"
                              "[limits]\nmax_message = 32M\n", NULL, 0) == -1 ||
        tcluster_worker_up(&f->worker, f->router.tcp, "w1",
                           "heartbeat = 1s\n[limits]\nmax_message = 32M\n",
                           (const char *const[]){ "echo", "calc", NULL }, START_MS) == -1)
        return -1;
    return 0;
}

/* Both must stop cleanly (SIGTERM, exit 0): the worker first, then the router. */
static int group_teardown(void **state)
{
    fixture *f = *state;

    if (f == NULL)
        return -1;
    return tcluster_fixture_free(f, &f->worker, &f->router);
}

/* Per-test teardown: stops the test's raw members and waits until the router has
 * dropped them, so a failed test cannot leave members behind for the next one. */
static int pool_teardown(void **state)
{
    fixture *f = *state;

    return tcluster_pool_discard(&f->pool, f->router.tcp, 5000);
}

/* Sends daffi.call [callback, [arg], {"to": to}] with one raw argument as msgid id;
 * to may be NULL (no options map). */
static void send_daffi_call(rawconn *c, uint32_t id, const char *callback, const char *arg,
                            size_t len, const char *to)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "daffi.call", to ? 3 : 2);
    daffi_pack_cstr(pk, callback);
    msgpack_pack_array(pk, 1);
    msgpack_sbuffer_write(&m.sb, arg, len);
    if (to != NULL) {
        msgpack_pack_map(pk, 1);
        daffi_pack_cstr(pk, "to");
        daffi_pack_cstr(pk, to);
    }
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* ---- values ------------------------------------------------------------------- */

typedef struct raw_value {
    const char *name;
    const char *bytes;
    size_t len;
} raw_value;

/* One or more of each msgpack type and encoding, minimal or not: a router that
 * re-encoded anything would change some of these bytes. */
static const raw_value values[] = {
    { "nil", BYTES("\xc0") },
    { "false", BYTES("\xc2") },
    { "true", BYTES("\xc3") },
    { "positive fixint", BYTES("\x05") },
    { "uint8 holding 5 (non-minimal)", BYTES("\xcc\x05") },
    { "uint16", BYTES("\xcd\x01\x00") },
    { "uint32 holding 7 (non-minimal)", BYTES("\xce\x00\x00\x00\x07") },
    { "uint64 max", BYTES("\xcf\xff\xff\xff\xff\xff\xff\xff\xff") },
    { "negative fixint -32", BYTES("\xe0") },
    { "int8 holding 5", BYTES("\xd0\x05") },
    { "int16", BYTES("\xd1\x80\x00") },
    { "int32", BYTES("\xd2\x80\x00\x00\x00") },
    { "int64 min", BYTES("\xd3\x80\x00\x00\x00\x00\x00\x00\x00") },
    { "float32 1.5", BYTES("\xca\x3f\xc0\x00\x00") },
    { "float32 NaN", BYTES("\xca\x7f\xc0\x00\x01") },
    { "float64 pi", BYTES("\xcb\x40\x09\x21\xfb\x54\x44\x2d\x18") },
    { "float64 2.0", BYTES("\xcb\x40\x00\x00\x00\x00\x00\x00\x00") },
    { "empty fixstr", BYTES("\xa0") },
    { "UTF-8 fixstr with a NUL", BYTES("\xa7h\xc3\xa9l\x00lo") },
    { "str8 holding 5 bytes (non-minimal)", BYTES("\xd9\x05hello") },
    { "str32 holding 2 bytes (non-minimal)", BYTES("\xdb\x00\x00\x00\x02hi") },
    { "bin8 with NUL and 0xff", BYTES("\xc4\x04\x00\xff\x00\xc1") },
    { "bin16 holding 2 bytes (non-minimal)", BYTES("\xc5\x00\x02\x01\x02") },
    { "fixext1", BYTES("\xd4\x01\xaa") },
    { "fixext16", BYTES("\xd8\x05" "0123456789abcdef") },
    { "ext8 of 3 bytes", BYTES("\xc7\x03\x02" "abc") },
    { "ext32 of 4 bytes (non-minimal)", BYTES("\xc9\x00\x00\x00\x04\x10\xde\xad\xbe\xef") },
    { "timestamp96", BYTES("\xc7\x0c\xff\x00\x00\x00\x01\x00\x00\x00\x00\x5e\x00\x00\x00") },
    { "empty array", BYTES("\x90") },
    { "empty map", BYTES("\x80") },
    { "array16 of 2 (non-minimal)", BYTES("\xdc\x00\x02\x01\x02") },
    { "map32 with an int key (non-minimal)", BYTES("\xdf\x00\x00\x00\x01\x01\x02") },
    { "map with array, nil and bin keys",
      BYTES("\x83\x92\x01\x02\xa1" "a" "\xc0\x01\xc4\x01\x00\x02") },
    { "nested maps",
      BYTES("\x82\xa5outer\x82\xa5inner\x81\xa4" "deep" "\x93\x01\xcb\x3f\xf8\x00\x00\x00"
            "\x00\x00\x00\xd4\x01\x07\xa1n\xc0\xa3" "bin" "\xc4\x02\xff\x00") },
};
#define NVALUES (sizeof(values) / sizeof(values[0]))

/* Packs a str, a bin and an ext of n bytes, each with the packer's header, into sb. */
static void pack_long_values(msgpack_sbuffer *str, msgpack_sbuffer *bin, msgpack_sbuffer *ext,
                             size_t n)
{
    msgpack_packer pk;
    char *body = malloc(n);

    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i * 7 + 3);
    msgpack_packer_init(&pk, str, msgpack_sbuffer_write);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, body, n);
    msgpack_packer_init(&pk, bin, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, body, n);
    msgpack_packer_init(&pk, ext, msgpack_sbuffer_write);
    msgpack_pack_ext(&pk, n, 42);
    msgpack_pack_ext_body(&pk, body, n);
    free(body);
}

/* Echoes every value to w1 through the router at addr, by name and by daffi.call. */
static void echo_values(const char *addr)
{
    msgpack_sbuffer s, b, e;
    rawconn c;

    expect_open(&c, addr);
    for (size_t i = 0; i < NVALUES; i++) {
        assert_int_equal(daffi_object_size(values[i].bytes, values[i].len), values[i].len);
        expect_send_raw_call(&c, (uint32_t)(100 + i), "echo", 1, values[i].bytes,
                             values[i].len);
        expect_result_bytes(&c, (uint32_t)(100 + i), values[i].name, values[i].bytes,
                            values[i].len);
        send_daffi_call(&c, (uint32_t)(500 + i), "echo", values[i].bytes, values[i].len, "w1");
        expect_result_bytes(&c, (uint32_t)(500 + i), values[i].name, values[i].bytes,
                            values[i].len);
    }
    msgpack_sbuffer_init(&s);
    msgpack_sbuffer_init(&b);
    msgpack_sbuffer_init(&e);
    pack_long_values(&s, &b, &e, 70000);
    expect_send_raw_call(&c, 1, "echo", 1, s.data, s.size);
    expect_result_bytes(&c, 1, "str32 of 70000 bytes", s.data, s.size);
    expect_send_raw_call(&c, 2, "echo", 1, b.data, b.size);
    expect_result_bytes(&c, 2, "bin32 of 70000 bytes", b.data, b.size);
    expect_send_raw_call(&c, 3, "echo", 1, e.data, e.size);
    expect_result_bytes(&c, 3, "ext32 of 70000 bytes", e.data, e.size);
    /* several arguments: echo returns the array of them */
    expect_send_raw_call(&c, 4, "echo", 4, BYTES("\x01\xa1" "a" "\xc0\xca\x40\x00\x00\x00"));
    expect_result_bytes(&c, 4, "echo(1, \"a\", nil, float32 2.0)",
                        BYTES("\x94\x01\xa1" "a" "\xc0\xca\x40\x00\x00\x00"));
    rawconn_close(&c);
    msgpack_sbuffer_destroy(&s);
    msgpack_sbuffer_destroy(&b);
    msgpack_sbuffer_destroy(&e);
}

/* Every value, over TCP and over the Unix socket. */
static void test_echo_through_the_router_returns_every_type_bit_for_bit(void **state)
{
    fixture *f = *state;

    echo_values(f->router.tcp);
    echo_values(f->router.unix_addr);
}

/* Maps nested 32 deep, the deepest a caller may send, pass the router unchanged. */
static void test_values_nested_32_deep_pass_the_router(void **state)
{
    fixture *f = *state;
    msgpack_sbuffer deep;
    msgpack_packer pk;
    rawconn c;

    msgpack_sbuffer_init(&deep);
    msgpack_packer_init(&pk, &deep, msgpack_sbuffer_write);
    for (int i = 0; i < 32; i++) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_int(&pk, i);
    }
    msgpack_pack_nil(&pk);
    expect_open(&c, f->router.tcp);
    expect_send_raw_call(&c, 1, "echo", 1, deep.data, deep.size);
    expect_result_bytes(&c, 1, "maps nested 32 deep", deep.data, deep.size);
    rawconn_close(&c);
    msgpack_sbuffer_destroy(&deep);
}

/* ---- errors ------------------------------------------------------------------- */

/* The member's own errors reach the caller with their code (the router adds none). */
static void test_a_members_errors_reach_the_caller_with_their_code(void **state)
{
    fixture *f = *state;
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, f->router.tcp);
    msgpack_packer *pk = rawmsg_request(&m, 1, "divide", 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 0);
    expect_send(&c, &m);
    expect_error(&c, 1, DAFFI_E_HANDLER_ERROR);
    pk = rawmsg_request(&m, 2, "add", 2);
    daffi_pack_cstr(pk, "x");
    msgpack_pack_int(pk, 1);
    expect_send(&c, &m);
    expect_error(&c, 2, DAFFI_E_BAD_ARGS);
    pk = rawmsg_request(&m, 3, "multiply", 2);
    msgpack_pack_int64(pk, INT64_MAX);
    msgpack_pack_int(pk, 2);
    expect_send(&c, &m);
    expect_error(&c, 3, DAFFI_E_HANDLER_ERROR);
    /* and the connection keeps serving */
    pk = rawmsg_request(&m, 4, "add", 2);
    msgpack_pack_int(pk, 40);
    msgpack_pack_int(pk, 2);
    expect_send(&c, &m);
    expect_result_int(&c, 4, 42);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* A callback no member exposes is NO_CALLBACK at once, and the details list the
 * members with their callbacks (daffi's router drops such calls and the caller hangs). */
static void test_unknown_callback_is_no_callback_with_the_members_in_details(void **state)
{
    fixture *f = *state;
    rawconn c;
    rawmsg m;
    const char *text;
    size_t len;
    int code;
    const msgpack_object *details = NULL, *cbs = NULL;
    char d[1024];

    rawmsg_init(&m);
    expect_open(&c, f->router.tcp);
    msgpack_pack_int(rawmsg_request(&m, 7, "no_such_callback", 1), 1);
    int64_t t0 = expect_now_ms();
    expect_send(&c, &m);
    expect_error(&c, 7, DAFFI_E_NO_CALLBACK);
    int64_t ms = expect_now_ms() - t0;
    assert_int_equal(daffi_error_parse(c.msg.error, &code, &text, &len, &details), 0);
    if (!rexpect_members_find(rexpect_obj_get(details, "members"), "w1", &cbs))
        fail_msg("NO_CALLBACK details do not list member w1: %s",
                 expect_describe(c.msg.error, d, sizeof(d)));
    if (!rexpect_array_has_str(cbs, "echo") || !rexpect_array_has_str(cbs, "divide"))
        fail_msg("NO_CALLBACK details do not list w1's callbacks: %s",
                 expect_describe(c.msg.error, d, sizeof(d)));
    print_message("NO_CALLBACK answered in %lld ms\n", (long long)ms);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* daffi.call reaches the member named by `to`; a name nobody has is UNAVAILABLE and a
 * member without the callback is NO_CALLBACK. */
static void test_daffi_call_reaches_the_member_named_by_to(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "echo", NULL };
    rmpool *p = f->pool = rexpect_pool(f->router.tcp, "callto", 1, cbs);
    rawconn c;
    const msgpack_object *r;
    char d[512];

    expect_open(&c, f->router.tcp);
    /* both w1 and callto0 expose echo: `to` decides */
    for (uint32_t i = 0; i < 4; i++) {
        send_daffi_call(&c, 10 + i, "echo", "\x07", 1, "callto0");
        r = expect_result(&c, 10 + i);
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 2 ||
            !rexpect_obj_is(&r->via.array.ptr[0], "callto0"))
            fail_msg("daffi.call to callto0 was answered by someone else: %s",
                     expect_describe(r, d, sizeof(d)));
        send_daffi_call(&c, 20 + i, "echo", "\x07", 1, "w1");
        expect_result_int(&c, 20 + i, 7);
    }
    send_daffi_call(&c, 30, "echo", "\x07", 1, "nobody_by_that_name");
    rexpect_error_containing(&c, 30, DAFFI_E_UNAVAILABLE, "nobody_by_that_name");
    send_daffi_call(&c, 31, "divide", "\x07", 1, "callto0");
    expect_error(&c, 31, DAFFI_E_NO_CALLBACK);
    /* without options, daffi.call is a plain call */
    send_daffi_call(&c, 32, "add", "\x07", 1, NULL);
    expect_error(&c, 32, DAFFI_E_BAD_ARGS); /* add needs two numbers: w1 said so */
    rawconn_close(&c);
    assert_int_equal(rmpool_answered(p, 0), 4);
}

/* ---- spreading and msgids ----------------------------------------------------- */

/* Calls of a callback two members expose alternate between them. */
static void test_calls_alternate_round_robin_between_members(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "rr_cb", NULL };
    const char *names[] = { "rr0", "rr1", NULL };
    rmpool *p = f->pool = rexpect_pool(f->router.tcp, "rr", 2, cbs);
    rawconn c;
    rawmsg m;
    char d[512];
    char prev[16] = "";

    rawmsg_init(&m);
    expect_open(&c, f->router.tcp);
    /* this connection's loop sees both members before the first call */
    assert_int_equal(tcluster_wait_members(f->router.tcp, names, 5000), 0);
    for (int i = 0; i < 10; i++) {
        msgpack_pack_int(rawmsg_request(&m, (uint32_t)i + 1, "rr_cb", 1), i);
        expect_send(&c, &m);
        const msgpack_object *r = expect_result(&c, (uint32_t)i + 1);
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 2 ||
            r->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            r->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY ||
            r->via.array.ptr[1].via.array.size != 1 ||
            r->via.array.ptr[1].via.array.ptr[0].via.u64 != (uint64_t)i)
            fail_msg("call %d: unexpected answer %s", i, expect_describe(r, d, sizeof(d)));
        char who[16];
        snprintf(who, sizeof(who), "%.*s", (int)r->via.array.ptr[0].via.str.size,
                 r->via.array.ptr[0].via.str.ptr);
        if (strcmp(who, prev) == 0)
            fail_msg("call %d went to %s again: not round-robin", i, who);
        snprintf(prev, sizeof(prev), "%s", who);
    }
    assert_int_equal(rmpool_answered(p, 0), 5);
    assert_int_equal(rmpool_answered(p, 1), 5);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

#define MSGID_CONNS 20
#define MSGID_CALLS 50

/* 20 callers pipeline calls with the same msgids 1..50 to the one worker: each gets
 * its own answers, because the router gives every forwarded call a msgid of its own. */
static void test_callers_using_the_same_msgids_never_get_each_others_answers(void **state)
{
    fixture *f = *state;
    rawconn c[MSGID_CONNS];
    rawmsg m;

    rawmsg_init(&m);
    for (int k = 0; k < MSGID_CONNS; k++) {
        expect_open(&c[k], k % 2 ? f->router.unix_addr : f->router.tcp);
        for (uint32_t id = 1; id <= MSGID_CALLS; id++)
            msgpack_pack_int(rawmsg_request(&m, id, "echo", 1), k * 1000 + (int)id);
        expect_send(&c[k], &m);
    }
    for (int k = 0; k < MSGID_CONNS; k++) {
        int seen[MSGID_CALLS + 1] = { 0 };
        for (int n = 0; n < MSGID_CALLS; n++) {
            uint32_t id = expect_response(&c[k]);
            char d[256];
            if (id < 1 || id > MSGID_CALLS || seen[id]++)
                fail_msg("caller %d: unexpected or repeated msgid %u", k, id);
            const msgpack_object *r = c[k].msg.result;
            if (c[k].msg.error->type != MSGPACK_OBJECT_NIL ||
                r->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                r->via.u64 != (uint64_t)(k * 1000) + id)
                fail_msg("caller %d msgid %u: got %s, expected %d", k, id,
                         expect_describe(r, d, sizeof(d)), k * 1000 + (int)id);
        }
        rawconn_close(&c[k]);
    }
    rawmsg_destroy(&m);
}

/* ---- notifications (rpc_nowait) ------------------------------------------------- */

/* Polls fn(p, 0) every 5 ms until it reaches want, at most ms. Returns its last value. */
static unsigned long wait_count(rmpool *p, unsigned long (*fn)(const rmpool *, unsigned),
                                unsigned long want, int ms)
{
    int64_t deadline = expect_now_ms() + ms;
    unsigned long v;

    while ((v = fn(p, 0)) < want && expect_now_ms() < deadline) {
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    return v;
}

/* A notification for a callback, and daffi.call sent as a notification (nowait), are
 * delivered to the member; the caller gets no answer to either. */
static void test_notifications_reach_the_member_and_get_no_answer(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "note_cb", NULL };
    rmpool *p = f->pool = rexpect_pool(f->router.tcp, "note", 1, cbs);
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, f->router.tcp);
    msgpack_pack_int(rawmsg_notify(&m, "note_cb", 1), 1);
    expect_send(&c, &m);
    msgpack_packer *pk = rawmsg_notify(&m, "daffi.call", 3);
    daffi_pack_cstr(pk, "note_cb");
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 2);
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "to");
    daffi_pack_cstr(pk, "note0");
    expect_send(&c, &m);
    if (wait_count(p, rmpool_notified, 2, expect_timeout_ms()) != 2)
        fail_msg("the member received %lu of the 2 notifications", rmpool_notified(p, 0));
    assert_int_equal(rmpool_answered(p, 0), 0);
    /* nothing comes back to the caller; the next request's answer is the first */
    rawmsg_request(&m, 9, "daffi.ping", 0);
    expect_send(&c, &m);
    expect_result_str(&c, 9, "pong");
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* ---- big messages --------------------------------------------------------------- */

/* echo of a 16 MiB bin through the router (max_message = 32M on both sides) arrives
 * intact, over TCP and over the Unix socket. */
static void test_a_16_mib_message_passes_the_router_intact(void **state)
{
    fixture *f = *state;
    const char *addrs[] = { f->router.tcp, f->router.unix_addr };
    msgpack_sbuffer v;
    msgpack_packer pk;
    char *body = malloc(BIG);

    assert_non_null(body);
    for (size_t i = 0; i < BIG; i++)
        body[i] = (char)((i * 2654435761u) >> 13);
    msgpack_sbuffer_init(&v);
    msgpack_packer_init(&pk, &v, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, BIG);
    msgpack_pack_bin_body(&pk, body, BIG);
    free(body);
    for (int k = 0; k < 2; k++) {
        rawconn c;
        int64_t t0 = expect_now_ms();
        expect_open(&c, addrs[k]);
        expect_send_raw_call(&c, 1, "echo", 1, v.data, v.size);
        expect_result_bytes(&c, 1, "bin of 16 MiB", v.data, v.size);
        print_message("%s: 16 MiB echoed through the router in %lld ms\n", addrs[k],
                      (long long)(expect_now_ms() - t0));
        rawconn_close(&c);
    }
    msgpack_sbuffer_destroy(&v);
}

/* ---- bidirectional ---------------------------------------------------------------- */

/* Reads the next forwarded request on member c and asserts it calls method with
 * params whose bytes are params_raw. Returns the router's msgid for it. */
static uint32_t expect_forwarded(rawconn *c, const char *method, const char *params_raw,
                                 size_t len)
{
    rawconn_status st = rawmember_read(c, expect_timeout_ms());

    if (st != RAWCONN_OK)
        fail_msg("%s: expected a forwarded %s request, got %s", c->addr, method,
                 rawconn_status_name(st));
    if (c->msg.kind != DAFFI_MSG_REQUEST || c->msg.method_len != strlen(method) ||
        memcmp(c->msg.method, method, c->msg.method_len) != 0)
        fail_msg("%s: expected a forwarded %s request, got a message of kind %d", c->addr,
                 method, (int)c->msg.kind);
    if (c->msg.params_raw_len != len || memcmp(c->msg.params_raw, params_raw, len) != 0)
        fail_msg("%s: the forwarded %s request carries other params than were sent", c->addr,
                 method);
    return c->msg.msgid;
}

/* Two clients that expose callbacks (hello) call each other's through the router -
 * including a call made while the other's call to it is still waiting - with msgids
 * that overlap those the router uses towards them. */
static void test_two_clients_call_each_others_callbacks_through_the_router(void **state)
{
    fixture *f = *state;
    const char *a_cbs[] = { "peer_a_double", NULL };
    const char *b_cbs[] = { "peer_b_concat", NULL };
    rawconn a, b;
    rawmsg m;
    uint32_t fwd;

    rawmsg_init(&m);
    assert_int_equal(rawmember_join(&a, f->router.tcp, "peer_a", a_cbs, NULL, 0), 0);
    assert_int_equal(rawmember_join(&b, f->router.unix_addr, "peer_b", b_cbs, NULL, 0), 0);
    const char *both[] = { "peer_a", "peer_b", NULL };
    assert_int_equal(tcluster_wait_members(f->router.tcp, both, 5000), 0);

    /* A calls B's callback */
    msgpack_packer *pk = rawmsg_request(&m, 1, "peer_b_concat", 2);
    daffi_pack_cstr(pk, "ab");
    daffi_pack_cstr(pk, "cd");
    expect_send(&a, &m);
    fwd = expect_forwarded(&b, "peer_b_concat", BYTES("\x92\xa2" "ab" "\xa2" "cd"));
    /* before answering, B calls A's callback, using msgid 1 itself */
    msgpack_pack_int(rawmsg_request(&m, 1, "peer_a_double", 1), 21);
    expect_send(&b, &m);
    uint32_t fwd_a = expect_forwarded(&a, "peer_a_double", BYTES("\x91\x15"));
    assert_int_equal(rawmember_reply_raw(&a, fwd_a, "\x2a", 1), 0); /* 42 */
    if (rawmember_read(&b, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("B got no answer from A's callback");
    assert_int_equal(b.msg.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(b.msg.msgid, 1);
    assert_int_equal(b.msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(b.msg.result->via.u64, 42);
    /* now B answers A's call, which A has waited for all along */
    assert_int_equal(rawmember_reply_raw(&b, fwd, "\xa4" "abcd", 5), 0);
    if (rawmember_read(&a, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("A got no answer from B's callback");
    assert_int_equal(a.msg.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(a.msg.msgid, 1);
    assert_true(rexpect_obj_is(a.msg.result, "abcd"));

    /* an error B answers reaches A as B sent it */
    pk = rawmsg_request(&m, 2, "peer_b_concat", 0);
    expect_send(&a, &m);
    fwd = expect_forwarded(&b, "peer_b_concat", BYTES("\x90"));
    assert_int_equal(rawmember_reply_error(&b, fwd, DAFFI_E_BAD_ARGS, "concat takes 2 strs"),
                     0);
    if (rawmember_read(&a, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("A got no answer");
    check_error(&a, 2, DAFFI_E_BAD_ARGS);
    rawconn_close(&a);
    rawconn_close(&b);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "peer_a", 5000), 0);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "peer_b", 5000), 0);
    rawmsg_destroy(&m);
}

/* A member may call its own callback through the router: the request comes back on
 * its own connection with the router's msgid, and its answer comes back as the
 * response to its call. */
static void test_a_member_can_call_its_own_callback_through_the_router(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "selfcall_cb", NULL };
    rawconn me;
    rawmsg m;

    rawmsg_init(&m);
    assert_int_equal(rawmember_join(&me, f->router.tcp, "selfcall", cbs, NULL, 0), 0);
    msgpack_pack_int(rawmsg_request(&m, 1, "selfcall_cb", 1), 5);
    expect_send(&me, &m);
    uint32_t fwd = expect_forwarded(&me, "selfcall_cb", BYTES("\x91\x05"));
    assert_int_equal(rawmember_reply_raw(&me, fwd, "\x06", 1), 0);
    if (rawmember_read(&me, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("selfcall got no answer to its own call");
    assert_int_equal(me.msg.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(me.msg.msgid, 1);
    assert_int_equal(me.msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(me.msg.result->via.u64, 6);
    rawconn_close(&me);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "selfcall", 5000), 0);
    rawmsg_destroy(&m);
}

/* Streams through the router (daffi's 100 MiB stream among them) are specified in
 * test_streams.c and test_stream_endings.c. */

/* A worker that also listens is its own single member to its direct callers: a
 * daffi.call naming another member says to go through its router, naming it. */
static void test_a_worker_asked_for_another_member_names_its_router(void **state)
{
    fixture *f = *state;
    tdaemon w;
    rawconn c;
    rawmsg m;

    assert_int_equal(tcluster_worker_init(&w, f->router.tcp, "w2", NULL), 0);
    assert_int_equal(tdaemon_write_file(&w, "50-listen.ini", "[server]\nlisten = %s\n", w.tcp), 0);
    assert_int_equal(tdaemon_add_plugin(&w, "calc", NULL), 0);
    assert_int_equal(tcluster_worker_start(&w, f->router.tcp, "w2", START_MS), 0);
    expect_open(&c, w.tcp);
    rawmsg_init(&m);
    for (uint32_t id = 1; id <= 2; id++) {
        msgpack_packer *pk = rawmsg_request(&m, id, "daffi.call", 3);
        daffi_pack_cstr(pk, "add");
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, 1);
        msgpack_pack_int(pk, 2);
        msgpack_pack_map(pk, 1);
        daffi_pack_cstr(pk, "to");
        daffi_pack_cstr(pk, id == 1 ? "w1" : "w2");
        expect_send(&c, &m);
    }
    expect_error(&c, 1, DAFFI_E_UNAVAILABLE);
    int code;
    const char *text;
    size_t len;
    const msgpack_object *details;
    assert_int_equal(daffi_error_parse(c.msg.error, &code, &text, &len, &details), 0);
    char msg[512];
    snprintf(msg, sizeof(msg), "%.*s", (int)len, text);
    assert_non_null(strstr(msg, "worker 'w2'"));
    assert_non_null(strstr(msg, f->router.tcp));
    assert_null(strstr(msg, "without a router"));
    expect_result_int(&c, 2, 3);
    rawconn_close(&c);
    rawmsg_destroy(&m);
    assert_int_equal(tcluster_stop(&w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_through_the_router_returns_every_type_bit_for_bit),
        cmocka_unit_test(test_values_nested_32_deep_pass_the_router),
        cmocka_unit_test(test_a_members_errors_reach_the_caller_with_their_code),
        cmocka_unit_test(test_unknown_callback_is_no_callback_with_the_members_in_details),
        cmocka_unit_test_teardown(test_daffi_call_reaches_the_member_named_by_to, pool_teardown),
        cmocka_unit_test_teardown(test_calls_alternate_round_robin_between_members, pool_teardown),
        cmocka_unit_test(test_callers_using_the_same_msgids_never_get_each_others_answers),
        cmocka_unit_test_teardown(test_notifications_reach_the_member_and_get_no_answer,
                                  pool_teardown),
        cmocka_unit_test(test_a_16_mib_message_passes_the_router_intact),
        cmocka_unit_test(test_two_clients_call_each_others_callbacks_through_the_router),
        cmocka_unit_test(test_a_member_can_call_its_own_callback_through_the_router),
        cmocka_unit_test(test_a_worker_asked_for_another_member_names_its_router),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
