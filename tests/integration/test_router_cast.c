/*
 * test_router_cast.c - daffi.cast through a router (daffi's cast scenarios): one
 * request to every member exposing a callback or to those named in `to`, one entry per
 * member in the answer; members that do not answer in time are present with TIMEOUT
 * (partial results, never a lost answer); the nowait form; casts while the member set
 * grows from 1 to 3 daffid workers.
 *
 * The group runs one router ("hub": heartbeat 1s x 3, default_timeout = 1s so that a
 * cast without timeout_ms shows the server's default, and an admin socket for the
 * counters). Raw members (rawmember.h) answer [their name, the params they got], so
 * each entry says who answered what.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rawmember.h"
#include "../support/rexpect.h"

#define START_MS 10000
/* libevent's loop clock is coarse (CLOCK_MONOTONIC_COARSE: it may lag a few ms), so
 * a deadline can fire up to that much before the exact time measured here. */
#define CLOCK_SLACK_MS 5
#define DEFAULT_TIMEOUT_MS 1000
#define STR_(x) #x
#define STR(x) STR_(x)
#define NGROW 3

typedef struct fixture {
    tdaemon router;
    char admin[200];
    tdaemon workers[NGROW]; /* started by the test that grows the member set */
    rmpool *pool;
    rmpool *pool2;
} fixture;

/* Starts the group's router (see the top of the file). Returns 0, or -1 (log printed). */
static int group_setup(void **state)
{
    fixture *f = tcluster_fixture_new(state, sizeof(*f));

    if (f == NULL ||
        tcluster_router_start(&f->router, "hub", "heartbeat = 1s\nheartbeat_misses = 3\n"
                              "default_timeout = " STR(DEFAULT_TIMEOUT_MS) "ms\n",
                              f->admin, sizeof(f->admin)) == -1)
        return -1;
    return 0;
}

/* The router must stop cleanly (SIGTERM, exit 0). */
static int group_teardown(void **state)
{
    fixture *f = *state;

    if (f == NULL)
        return -1;
    return tcluster_fixture_free(f, NULL, &f->router);
}

/* Per-test teardown: raw members leave, workers stop. */
static int test_teardown(void **state)
{
    fixture *f = *state;
    int rc = 0;

    if (tcluster_pool_discard(&f->pool, f->router.tcp, 5000) == -1)
        rc = -1;
    if (tcluster_pool_discard(&f->pool2, f->router.tcp, 5000) == -1)
        rc = -1;
    for (int i = 0; i < NGROW; i++)
        if (tcluster_discard(&f->workers[i]) == -1)
            rc = -1;
    return rc;
}

/* Packs daffi.cast [callback, [arg], {"to": [to...], "timeout_ms": timeout_ms}] into m as
 * a request with msgid id (or a notification when id is 0). to (NULL-terminated) may
 * be NULL and timeout_ms 0: that key is left out; with neither the options map is left
 * out. */
static void pack_cast(rawmsg *m, uint32_t id, const char *callback, int64_t arg,
                      const char *const *to, int timeout_ms)
{
    uint32_t nto = 0, nopts = (to != NULL) + (timeout_ms > 0);
    msgpack_packer *pk = id ? rawmsg_request(m, id, "daffi.cast", nopts ? 3 : 2)
                            : rawmsg_notify(m, "daffi.cast", nopts ? 3 : 2);

    daffi_pack_cstr(pk, callback);
    msgpack_pack_array(pk, 1);
    msgpack_pack_int64(pk, arg);
    if (nopts == 0)
        return;
    msgpack_pack_map(pk, nopts);
    if (to != NULL) {
        while (to[nto] != NULL)
            nto++;
        daffi_pack_cstr(pk, "to");
        msgpack_pack_array(pk, nto);
        for (uint32_t i = 0; i < nto; i++)
            daffi_pack_cstr(pk, to[i]);
    }
    if (timeout_ms > 0) {
        daffi_pack_cstr(pk, "timeout_ms");
        msgpack_pack_int(pk, timeout_ms);
    }
}

/* Sends a cast (see pack_cast) on c and returns its result map. */
static const msgpack_object *cast(rawconn *c, uint32_t id, const char *callback, int64_t arg,
                                  const char *const *to, int timeout_ms)
{
    rawmsg m;

    rawmsg_init(&m);
    pack_cast(&m, id, callback, arg, to, timeout_ms);
    expect_send(c, &m);
    rawmsg_destroy(&m);
    return expect_result(c, id);
}

/* Asserts the cast map has exactly n entries. */
static void expect_entries(const msgpack_object *map, uint32_t n)
{
    char d[2048];

    if (map->type != MSGPACK_OBJECT_MAP || map->via.map.size != n)
        fail_msg("expected a cast result of %u entries, got %s", n,
                 expect_describe(map, d, sizeof(d)));
}

/* Asserts the entry of a raw member name is [nil, [name, [arg]]]. */
static void expect_raw_answer(const msgpack_object *map, const char *name, int64_t arg)
{
    const msgpack_object *r = rexpect_cast_ok(map, name);
    char d[512];

    if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 2 ||
        !rexpect_obj_is(&r->via.array.ptr[0], name) ||
        r->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY ||
        r->via.array.ptr[1].via.array.size != 1 ||
        r->via.array.ptr[1].via.array.ptr[0].via.i64 != arg)
        fail_msg("member %s: expected [%s, [%lld]], got %s", name, name, (long long)arg,
                 expect_describe(r, d, sizeof(d)));
}

/* Waits (daffi.wait, on c's own connection so its loop sees them) for the members of
 * pool p. */
static void wait_pool(rawconn *c, rmpool *p)
{
    assert_int_equal(rexpect_wait_pool(c, 999, p, 5000)->type, MSGPACK_OBJECT_BOOLEAN);
}

/* ---- who is reached ------------------------------------------------------------- */

/* A cast reaches every member exposing the callback, and only those. */
static void test_cast_reaches_every_member_exposing_the_callback(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "ca_cb", NULL };
    const char *other[] = { "ca_other", NULL };
    rawconn c;

    f->pool = rexpect_pool(f->router.tcp, "ca", 3, cbs);
    f->pool2 = rexpect_pool(f->router.tcp, "cz", 2, other);
    expect_open(&c, f->router.tcp);
    wait_pool(&c, f->pool);
    wait_pool(&c, f->pool2);
    const msgpack_object *map = cast(&c, 1, "ca_cb", 5, NULL, 0);
    expect_entries(map, 3);
    for (unsigned i = 0; i < 3; i++)
        expect_raw_answer(map, rmpool_name(f->pool, i), 5);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(rmpool_answered(f->pool, i), 1);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(rmpool_answered(f->pool2, i), 0);
    rawconn_close(&c);
}

/* With `to`, a cast reaches exactly the members named; a name nobody has is present
 * as UNAVAILABLE and a member without the callback as NO_CALLBACK. */
static void test_cast_to_a_subset_reaches_only_the_members_named(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "cs_cb", NULL };
    const char *other[] = { "cs_other", NULL };
    const char *two[] = { "cs0", "cs2", NULL };
    const char *mixed[] = { "cs1", "cs_nobody", "cz0", NULL };
    rawconn c;

    f->pool = rexpect_pool(f->router.tcp, "cs", 3, cbs);
    f->pool2 = rexpect_pool(f->router.tcp, "cz", 1, other);
    expect_open(&c, f->router.unix_addr);
    wait_pool(&c, f->pool);
    wait_pool(&c, f->pool2);
    const msgpack_object *map = cast(&c, 1, "cs_cb", 6, two, 0);
    expect_entries(map, 2);
    expect_raw_answer(map, "cs0", 6);
    expect_raw_answer(map, "cs2", 6);
    assert_int_equal(rmpool_answered(f->pool, 1), 0);

    map = cast(&c, 2, "cs_cb", 7, mixed, 0);
    expect_entries(map, 3);
    expect_raw_answer(map, "cs1", 7);
    rexpect_cast_error(map, "cs_nobody", DAFFI_E_UNAVAILABLE);
    rexpect_cast_error(map, "cz0", DAFFI_E_NO_CALLBACK);
    assert_int_equal(rmpool_answered(f->pool2, 0), 0);
    rawconn_close(&c);
}

/* A cast for a callback no member exposes is NO_CALLBACK at once. */
static void test_cast_for_a_callback_nobody_exposes_is_no_callback(void **state)
{
    fixture *f = *state;
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, f->router.tcp);
    pack_cast(&m, 4, "cast_nobody_cb", 1, NULL, 0);
    expect_send(&c, &m);
    expect_error(&c, 4, DAFFI_E_NO_CALLBACK);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* daffi's scenario: daffid workers join one by one, and each cast has one entry per
 * worker then connected; once they are all gone the cast is NO_CALLBACK. */
static void test_casts_follow_the_member_set_as_it_grows_from_1_to_3(void **state)
{
    fixture *f = *state;
    char name[16];
    rawconn c;

    expect_open(&c, f->router.tcp);
    for (int i = 0; i < NGROW; i++) {
        snprintf(name, sizeof(name), "grow%d", i + 1);
        const char *names[] = { name, NULL };
        assert_int_equal(tcluster_worker_up(&f->workers[i], f->router.tcp, name,
                                            "heartbeat = 1s\n",
                                            (const char *const[]){ "echo", NULL }, START_MS),
                         0);
        rexpect_send_wait(&c, 100 + (uint32_t)i, names, 5000);
        expect_result(&c, 100 + (uint32_t)i);

        const msgpack_object *map = cast(&c, 1 + (uint32_t)i, "echo", 40 + i, NULL, 0);
        expect_entries(map, (uint32_t)i + 1);
        for (int k = 0; k <= i; k++) {
            char who[16];
            snprintf(who, sizeof(who), "grow%d", k + 1);
            const msgpack_object *r = rexpect_cast_ok(map, who);
            if (r->type != MSGPACK_OBJECT_POSITIVE_INTEGER || r->via.u64 != (uint64_t)(40 + i))
                fail_msg("%s answered the cast with something else than %d", who, 40 + i);
        }
    }
    for (int i = 0; i < NGROW; i++) {
        snprintf(name, sizeof(name), "grow%d", i + 1);
        assert_int_equal(tdaemon_stop(&f->workers[i], TDAEMON_STOP_TIMEOUT_MS), 0);
        assert_int_equal(tcluster_wait_gone(f->router.tcp, name, 5000), 0);
    }
    rawmsg m;
    rawmsg_init(&m);
    pack_cast(&m, 9, "echo", 1, NULL, 0);
    expect_send(&c, &m);
    expect_error(&c, 9, DAFFI_E_NO_CALLBACK);
    rawmsg_destroy(&m);
    rawconn_close(&c);
}

/* ---- timeouts and partial results ------------------------------------------------ */

/* A member that does not answer is present with TIMEOUT at the cast's timeout_ms,
 * beside the answers of the others (partial results, none lost). */
static void test_a_silent_member_is_a_timeout_entry_beside_the_others_answers(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "pt_cb", NULL };
    rawconn c;

    f->pool = rexpect_pool(f->router.tcp, "pt", 3, cbs);
    rmpool_set_mute(f->pool, 1, 1);
    expect_open(&c, f->router.tcp);
    wait_pool(&c, f->pool);
    int64_t t0 = expect_now_ms();
    const msgpack_object *map = cast(&c, 1, "pt_cb", 8, NULL, 300);
    int64_t ms = expect_now_ms() - t0;
    expect_entries(map, 3);
    expect_raw_answer(map, "pt0", 8);
    expect_raw_answer(map, "pt2", 8);
    rexpect_cast_error(map, "pt1", DAFFI_E_TIMEOUT);
    print_message("the cast with timeout_ms 300 answered after %lld ms\n", (long long)ms);
    if (ms < 300 - CLOCK_SLACK_MS || ms > 1500)
        fail_msg("the cast with timeout_ms 300 answered after %lld ms", (long long)ms);
    assert_int_equal(rmpool_ignored(f->pool, 1), 1);
    rawconn_close(&c);
}

/* A cast without timeout_ms uses the server's default_timeout (1 s here) for its
 * members: it must not wait forever for a silent one. */
static void test_a_cast_without_timeout_ms_ends_at_the_default_timeout(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "pd_cb", NULL };
    rawconn c;
    rawmsg m;

    f->pool = rexpect_pool(f->router.tcp, "pd", 2, cbs);
    rmpool_set_mute(f->pool, 0, 1);
    expect_open(&c, f->router.tcp);
    wait_pool(&c, f->pool);
    rawmsg_init(&m);
    pack_cast(&m, 2, "pd_cb", 9, NULL, 0);
    int64_t t0 = expect_now_ms();
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    rawconn_status st = rawconn_read(&c, DEFAULT_TIMEOUT_MS + 3000);
    int64_t ms = expect_now_ms() - t0;
    if (st != RAWCONN_OK)
        fail_msg("a cast without timeout_ms, one member silent, got no answer within %lld ms "
                 "(default_timeout = %d ms): %s", (long long)ms, DEFAULT_TIMEOUT_MS,
                 rawconn_status_name(st));
    assert_int_equal(c.msg.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(c.msg.error->type, MSGPACK_OBJECT_NIL);
    expect_entries(c.msg.result, 2);
    rexpect_cast_error(c.msg.result, "pd0", DAFFI_E_TIMEOUT);
    expect_raw_answer(c.msg.result, "pd1", 9);
    print_message("answered after %lld ms\n", (long long)ms);
    rawconn_close(&c);
}

/* An answer that arrives after its cast was answered is discarded (the caller gets
 * nothing more), counted, and the member keeps serving. */
static void test_a_late_cast_answer_is_discarded_and_counted(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "late_cb", NULL };
    const char *names[] = { "late0", NULL };
    rawconn c, late;
    rawmsg m;

    if (rawmember_join(&late, f->router.tcp, "late0", cbs, NULL, 0) != 0)
        fail_msg("late0 could not join");
    expect_open(&c, f->router.tcp);
    rexpect_send_wait(&c, 1, names, 5000);
    expect_result(&c, 1);
    rawmsg_init(&m);
    long long late0 = tcluster_admin_counter(f->admin, "late_completions");
    long long unexpected0 = tcluster_admin_counter(f->admin, "unexpected_responses");
    assert_true(late0 >= 0 && unexpected0 >= 0);

    pack_cast(&m, 2, "late_cb", 3, NULL, 200);
    expect_send(&c, &m);
    if (rawmember_read(&late, expect_timeout_ms()) != RAWCONN_OK ||
        late.msg.kind != DAFFI_MSG_REQUEST)
        fail_msg("late0 did not receive the cast");
    uint32_t fwd = late.msg.msgid;
    const msgpack_object *map = expect_result(&c, 2);
    rexpect_cast_error(map, "late0", DAFFI_E_TIMEOUT);
    /* now the answer comes, too late */
    assert_int_equal(rawmember_reply_raw(&late, fwd, "\x03", 1), 0);
    expect_silence(&c, 200);
    int64_t deadline = expect_now_ms() + 3000;
    long long late1, unexpected1;
    do {
        late1 = tcluster_admin_counter(f->admin, "late_completions");
        unexpected1 = tcluster_admin_counter(f->admin, "unexpected_responses");
    } while (late1 + unexpected1 == late0 + unexpected0 && expect_now_ms() < deadline);
    print_message("late_completions %lld -> %lld, unexpected_responses %lld -> %lld\n", late0,
                  late1, unexpected0, unexpected1);
    if (late1 + unexpected1 != late0 + unexpected0 + 1)
        fail_msg("the late cast answer was not counted (late_completions %lld -> %lld, "
                 "unexpected_responses %lld -> %lld)", late0, late1, unexpected0, unexpected1);
    /* late0 still serves */
    pack_cast(&m, 3, "late_cb", 4, NULL, 2000);
    expect_send(&c, &m);
    if (rawmember_read(&late, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("late0 did not receive the second cast");
    assert_int_equal(rawmember_reply_raw(&late, late.msg.msgid, "\x04", 1), 0);
    map = expect_result(&c, 3);
    assert_int_equal(rexpect_cast_ok(map, "late0")->via.u64, 4);
    rawconn_close(&late);
    rawconn_close(&c);
    rawmsg_destroy(&m);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "late0", 5000), 0);
}

/* A member that leaves while it holds a cast's request is an UNAVAILABLE entry at once;
 * the cast does not wait for its timeout. */
static void test_a_member_leaving_mid_cast_is_unavailable_at_once(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "mid_cb", NULL };
    rawconn gone, c;
    rawmsg m;

    f->pool = rexpect_pool(f->router.tcp, "mid", 1, cbs);
    if (rawmember_join(&gone, f->router.tcp, "mid_gone", cbs, NULL, 0) != 0)
        fail_msg("mid_gone could not join");
    expect_open(&c, f->router.tcp);
    wait_pool(&c, f->pool);
    rawmsg_init(&m);
    pack_cast(&m, 1, "mid_cb", 2, NULL, 10000);
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    if (rawmember_read(&gone, expect_timeout_ms()) != RAWCONN_OK ||
        gone.msg.kind != DAFFI_MSG_REQUEST)
        fail_msg("mid_gone did not receive the cast");
    int64_t t0 = expect_now_ms();
    rawconn_close(&gone);
    const msgpack_object *map = expect_result(&c, 1);
    int64_t ms = expect_now_ms() - t0;
    expect_entries(map, 2);
    expect_raw_answer(map, "mid0", 2);
    rexpect_cast_error(map, "mid_gone", DAFFI_E_UNAVAILABLE);
    print_message("the cast answered %lld ms after mid_gone left (timeout_ms 10000)\n",
                  (long long)ms);
    if (ms > 2000)
        fail_msg("the cast waited %lld ms after its member left", (long long)ms);
    rawconn_close(&c);
}

/* A caller that leaves with a cast and a wait in flight costs nothing: the member's
 * later answer and the wait's deadline find no caller, and the router serves on. */
static void test_a_caller_leaving_mid_cast_or_wait_leaves_the_router_serving(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "gone_cb", NULL };
    const char *ghost[] = { "gone_ghost", NULL };
    rawconn mem, c;
    rawmsg m;

    if (rawmember_join(&mem, f->router.tcp, "gone_m", cbs, NULL, 0) != 0)
        fail_msg("gone_m could not join");
    expect_open(&c, f->router.unix_addr);
    rawmsg_init(&m);
    pack_cast(&m, 1, "gone_cb", 1, NULL, 5000);
    msgpack_packer *pk = rawmsg_request(&m, 2, "daffi.wait", 2);
    msgpack_pack_array(pk, 1);
    daffi_pack_cstr(pk, ghost[0]);
    msgpack_pack_int(pk, 200);
    expect_send(&c, &m);
    if (rawmember_read(&mem, expect_timeout_ms()) != RAWCONN_OK ||
        mem.msg.kind != DAFFI_MSG_REQUEST)
        fail_msg("gone_m did not receive the cast");
    uint32_t fwd = mem.msg.msgid;
    rawconn_close(&c);
    struct timespec ts = { 0, 50 * 1000000L };
    nanosleep(&ts, NULL); /* let the router see the caller leave first */
    assert_int_equal(rawmember_reply_raw(&mem, fwd, "\x01", 1), 0);
    ts.tv_nsec = 300 * 1000000L;
    nanosleep(&ts, NULL); /* past the wait's deadline */
    expect_serving(f->router.tcp);
    expect_serving(f->router.unix_addr);
    /* gone_m still serves */
    expect_open(&c, f->router.tcp);
    msgpack_pack_int(rawmsg_request(&m, 3, "gone_cb", 1), 3);
    expect_send(&c, &m);
    if (rawmember_read(&mem, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("gone_m did not receive the next call");
    assert_int_equal(rawmember_reply_raw(&mem, mem.msg.msgid, "\x03", 1), 0);
    expect_result_int(&c, 3, 3);
    rawconn_close(&c);
    rawconn_close(&mem);
    rawmsg_destroy(&m);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "gone_m", 5000), 0);
}

/* A member named twice in `to` is reached once and has one entry (a map's keys are
 * unique). */
static void test_a_member_named_twice_in_to_is_reached_once(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "twice_cb", NULL };
    const char *to[] = { "twice0", "twice0", NULL };
    rawconn c;

    f->pool = rexpect_pool(f->router.tcp, "twice", 1, cbs);
    expect_open(&c, f->router.tcp);
    wait_pool(&c, f->pool);
    const msgpack_object *map = cast(&c, 1, "twice_cb", 1, to, 0);
    expect_entries(map, 1);
    expect_raw_answer(map, "twice0", 1);
    /* the pool counts what it answered: once */
    assert_int_equal(rmpool_answered(f->pool, 0), 1);
    rawconn_close(&c);
}

/* ---- nowait -------------------------------------------------------------------- */

/* daffi.cast sent as a notification reaches every member; the caller gets no answer. */
static void test_the_nowait_cast_reaches_every_member_without_an_answer(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "nw_cb", NULL };
    rawconn c;
    rawmsg m;

    f->pool = rexpect_pool(f->router.tcp, "nw", 3, cbs);
    expect_open(&c, f->router.tcp);
    wait_pool(&c, f->pool);
    rawmsg_init(&m);
    pack_cast(&m, 0, "nw_cb", 1, NULL, 0);
    expect_send(&c, &m);
    int64_t deadline = expect_now_ms() + expect_timeout_ms();
    for (unsigned i = 0; i < 3; i++) {
        while (rmpool_answered(f->pool, i) + rmpool_notified(f->pool, i) == 0 &&
               expect_now_ms() < deadline) {
            struct timespec ts = { 0, 5 * 1000000L };
            nanosleep(&ts, NULL);
        }
        if (rmpool_answered(f->pool, i) + rmpool_notified(f->pool, i) != 1)
            fail_msg("member nw%u received the nowait cast %lu times", i,
                     rmpool_answered(f->pool, i) + rmpool_notified(f->pool, i));
    }
    rawmsg_request(&m, 5, "daffi.ping", 0);
    expect_send(&c, &m);
    expect_result_str(&c, 5, "pong");
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* ---- counters ------------------------------------------------------------------ */

/* The row of callback name in the router's `callbacks _forwarded` (a new reference), or
 * fails the test. */
static json_t *forwarded_row(fixture *f, const char *name)
{
    json_t *r = tcluster_admin(f->admin, "callbacks _forwarded"), *row;
    size_t i;

    json_array_foreach(json_object_get(r, "callbacks"), i, row) {
        const char *n = json_string_value(json_object_get(row, "name"));
        if (n != NULL && strcmp(n, name) == 0 &&
            strcmp(json_string_value(json_object_get(row, "plugin")), "_forwarded") == 0) {
            json_incref(row);
            json_decref(r);
            return row;
        }
    }
    char *text = r != NULL ? json_dumps(r, JSON_COMPACT) : NULL;
    fail_msg("no _forwarded row for %s in: %.500s", name, text ? text : "(no reply)");
    return NULL;
}

/* The integer at key (or key.sub when sub is not NULL) of row; -1 when absent. */
static long long row_int(json_t *row, const char *key, const char *sub)
{
    json_t *v = json_object_get(row, key);

    if (sub != NULL)
        v = json_object_get(v, sub);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* The router counts the calls it forwards by callback and outcome, like a plugin's
 * (admin `callbacks _forwarded`, and the same slots feed the metrics): plain calls and
 * each member's part of a cast; a call its caller saw time out is forgotten by the
 * router at its deadline and counts as that TIMEOUT. */
static void test_the_router_counts_forwarded_calls_by_callback_and_outcome(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "fc_cb", NULL };
    long long fwd0 = tcluster_admin_counter(f->admin, "forwarded");
    rawconn c;
    rawmsg m;
    json_t *row;

    f->pool = rexpect_pool(f->router.tcp, "fc", 2, cbs);
    expect_open(&c, f->router.tcp);
    wait_pool(&c, f->pool);
    rawmsg_init(&m);
    for (uint32_t id = 1; id <= 3; id++) {
        msgpack_pack_int(rawmsg_request(&m, id, "fc_cb", 1), id);
        expect_send(&c, &m);
        expect_result(&c, id);
    }
    expect_entries(cast(&c, 4, "fc_cb", 4, NULL, 0), 2);
    rmpool_set_mute(f->pool, 1, 1);
    msgpack_packer *pk = rawmsg_request(&m, 5, "daffi.call", 3);
    daffi_pack_cstr(pk, "fc_cb");
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 5);
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "to");
    daffi_pack_cstr(pk, rmpool_name(f->pool, 1));
    daffi_pack_cstr(pk, "timeout_ms");
    msgpack_pack_int(pk, 100);
    expect_send(&c, &m);
    expect_error(&c, 5, DAFFI_E_TIMEOUT);

    /* the deadline travelled: the router forgot the call at once (by mail to the
     * member's loop), so it counts as the TIMEOUT the caller saw, with nothing left in
     * flight although the member never answers */
    long long forgotten0 = tcluster_admin_counter(f->admin, "forgotten");
    int64_t until = expect_now_ms() + expect_timeout_ms();
    do {
        row = forwarded_row(f, "fc_cb");
        if (row_int(row, "in_flight", NULL) == 0)
            break;
        json_decref(row);
        row = NULL;
        usleep(10000);
    } while (expect_now_ms() < until);
    assert_non_null(row);
    assert_int_equal(row_int(row, "calls", NULL), 6);
    assert_int_equal(row_int(row, "outcomes", "ok"), 5);
    assert_int_equal(row_int(row, "outcomes", "timeout"), 1);
    assert_int_equal(row_int(row, "errors", NULL), 1);
    assert_int_equal(row_int(row, "in_flight", NULL), 0);
    assert_true(json_is_null(json_object_get(row, "generation")));
    json_decref(row);
    assert_true(forgotten0 >= 1);
    assert_int_equal(tcluster_pool_discard(&f->pool, f->router.tcp, 5000), 0);

    /* a member's error comes back as it sent it, and is counted under its code */
    const char *ecbs[] = { "fe_cb", NULL };
    rawconn mem;
    assert_int_equal(rawmember_join(&mem, f->router.tcp, "fe0", ecbs, NULL, 0), 0);
    msgpack_pack_int(rawmsg_request(&m, 6, "fe_cb", 1), 6);
    expect_send(&c, &m);
    if (rawmember_read(&mem, expect_timeout_ms()) != RAWCONN_OK ||
        mem.msg.kind != DAFFI_MSG_REQUEST)
        fail_msg("fe0 did not receive the call");
    assert_int_equal(rawmember_reply_error(&mem, mem.msg.msgid, DAFFI_E_BAD_ARGS, "no"), 0);
    expect_error(&c, 6, DAFFI_E_BAD_ARGS);
    row = forwarded_row(f, "fe_cb");
    assert_int_equal(row_int(row, "calls", NULL), 1);
    assert_int_equal(row_int(row, "outcomes", "bad_args"), 1);
    assert_int_equal(row_int(row, "errors", NULL), 1);
    json_decref(row);
    rawconn_close(&mem);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "fe0", 5000), 0);

    assert_int_equal(tcluster_admin_counter(f->admin, "forwarded") - fwd0, 7);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* The rows of the router's `callbacks _forwarded` (a new reference), or fails. */
static json_t *forwarded_rows(fixture *f)
{
    json_t *r = tcluster_admin(f->admin, "callbacks _forwarded");
    json_t *list = json_object_get(r, "callbacks");

    if (!json_is_array(list))
        fail_msg("admin callbacks _forwarded: no list");
    json_incref(list);
    json_decref(r);
    return list;
}

#define MANY_CBS 70

/* A member announcing many callbacks: the first ones forwarded get rows of their own
 * up to DFD_CALLSTAT_FORWARDED_MAX (64) "_forwarded" pairs in all, the rest share
 * "_other"; nothing is lost (every call is counted somewhere) and metrics still
 * render. */
static void test_forwarded_counters_past_64_callbacks_share_one_row(void **state)
{
    fixture *f = *state;
    static char names[MANY_CBS][16];
    const char *cbs[MANY_CBS + 1];
    rawconn c, mem;
    rawmsg m;

    json_t *rows = forwarded_rows(f);
    size_t before = json_array_size(rows);
    json_decref(rows);
    assert_true(before < 64);
    for (int i = 0; i < MANY_CBS; i++) {
        snprintf(names[i], sizeof(names[i]), "many%02d", i);
        cbs[i] = names[i];
    }
    cbs[MANY_CBS] = NULL;
    assert_int_equal(rawmember_join(&mem, f->router.tcp, "many0", cbs, NULL, 0), 0);
    expect_open(&c, f->router.tcp);
    rawmsg_init(&m);
    for (uint32_t i = 0; i < MANY_CBS; i++) {
        msgpack_pack_int(rawmsg_request(&m, i + 1, names[i], 1), i);
        expect_send(&c, &m);
        if (rawmember_read(&mem, expect_timeout_ms()) != RAWCONN_OK ||
            mem.msg.kind != DAFFI_MSG_REQUEST)
            fail_msg("many0 did not receive %s", names[i]);
        assert_int_equal(rawmember_reply_raw(&mem, mem.msg.msgid, "\x01", 1), 0);
        expect_result_int(&c, i + 1, 1);
    }
    rows = forwarded_rows(f);
    size_t i, own = 64 - before;
    json_t *row;
    long long other = -1, mine = 0;
    assert_int_equal(json_array_size(rows), 65);
    json_array_foreach(rows, i, row) {
        const char *n = json_string_value(json_object_get(row, "name"));
        if (strcmp(n, "_other") == 0)
            other = row_int(row, "calls", NULL);
        else if (strncmp(n, "many", 4) == 0)
            mine += row_int(row, "calls", NULL);
    }
    json_decref(rows);
    assert_int_equal(mine, (long long)own);
    assert_int_equal(other, (long long)(MANY_CBS - own));
    json_t *met = tcluster_admin(f->admin, "metrics");
    const char *text = json_string_value(json_object_get(met, "text"));
    assert_non_null(text);
    assert_non_null(strstr(text, "daffid_calls_total{plugin=\"_forwarded\","
                                 "callback=\"_other\",outcome=\"ok\"}"));
    json_decref(met);
    rawconn_close(&mem);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "many0", 5000), 0);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cast_reaches_every_member_exposing_the_callback,
                                  test_teardown),
        cmocka_unit_test_teardown(test_cast_to_a_subset_reaches_only_the_members_named,
                                  test_teardown),
        cmocka_unit_test_teardown(test_cast_for_a_callback_nobody_exposes_is_no_callback,
                                  test_teardown),
        cmocka_unit_test_teardown(test_casts_follow_the_member_set_as_it_grows_from_1_to_3,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_silent_member_is_a_timeout_entry_beside_the_others_answers,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_cast_without_timeout_ms_ends_at_the_default_timeout,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_late_cast_answer_is_discarded_and_counted,
                                  test_teardown),
        cmocka_unit_test_teardown(test_the_nowait_cast_reaches_every_member_without_an_answer,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_member_leaving_mid_cast_is_unavailable_at_once,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_caller_leaving_mid_cast_or_wait_leaves_the_router_serving,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_member_named_twice_in_to_is_reached_once, test_teardown),
        cmocka_unit_test_teardown(
            test_the_router_counts_forwarded_calls_by_callback_and_outcome, test_teardown),
        cmocka_unit_test_teardown(test_forwarded_counters_past_64_callbacks_share_one_row,
                                  test_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
