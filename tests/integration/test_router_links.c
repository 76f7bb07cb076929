/*
 * test_router_links.c - members with several links (PROTOCOL.md, "Members"): hellos
 * with one session are one member; a link that drops fails only the calls it carried,
 * and the member stays until its last link goes; a link connected again replaces its
 * stale self; another session under the name is a duplicate; bad link options are
 * BAD_ARGS. And the worker role: a daffid worker with two loops opens a link per loop,
 * so calls run on both of its loops.
 *
 * Each test starts its own router (admin socket in its dir); members are raw
 * connections (rawmember.h) or daffid workers.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
#include "../support/tproxy.h"

#define START_MS 10000
#define NCALLERS 4
#define CALLS_EACH 6

typedef struct fixture {
    tdaemon router;
    tdaemon worker;
    char admin[200];
    tproxy *proxy;
} fixture;

static int group_setup(void **state)
{
    return tcluster_fixture_new(state, sizeof(fixture)) == NULL ? -1 : 0;
}

static int test_teardown(void **state)
{
    fixture *f = *state;
    int rc = 0;
    tproxy_stop(f->proxy);
    if (tcluster_discard(&f->worker) == -1)
        rc = -1;
    if (tcluster_discard(&f->router) == -1)
        rc = -1;
    memset(f, 0, sizeof(*f));
    return rc;
}

static void start_router(fixture *f)
{
    assert_int_equal(tcluster_router_start(&f->router, "hub",
                                           "heartbeat = 1s\ndefault_timeout = 20s\n", f->admin,
                                           sizeof(f->admin)), 0);
}

/* Joins link `link` of 2 of member name (session s), exposing cb. */
static void join_link(fixture *f, rawconn *c, const char *name, const char *s, unsigned link,
                      const char *cb)
{
    const char *cbs[] = { cb, NULL };
    rawmember_link l = { s, link, 2 };
    char why[300];
    int rc = rawmember_join_link(c, f->router.tcp, name, cbs, &l, why, sizeof(why));
    if (rc != 0)
        fail_msg("link %u of %s (session %s) was refused: %d %s", link, name, s, rc, why);
}

/* Reads the forwarded requests that arrived on the links in ls (n of them), for at most
 * ms, counting them per link into got[] and keeping their msgids in ids[link][]. */
static void read_forwarded(rawconn *ls, unsigned n, int ms, unsigned *got,
                           uint32_t ids[][NCALLERS * CALLS_EACH])
{
    int64_t until = expect_now_ms() + ms;
    while (expect_now_ms() < until) {
        for (unsigned i = 0; i < n; i++) {
            rawconn_status st = rawmember_read(&ls[i], 20);
            if (st == RAWCONN_TIMEOUT)
                continue;
            if (st != RAWCONN_OK)
                fail_msg("link %u: %s", i, rawconn_status_name(st));
            if (ls[i].msg.kind == DAFFI_MSG_REQUEST)
                ids[i][got[i]++] = ls[i].msg.msgid;
        }
    }
}

/* 1 when the router's admin `members` lists name; *nlinks set to its links, loops[]
 * (and in_flight[], when not NULL) to those of links 0 and 1. */
static int admin_member_links_in(const char *admin, const char *name, size_t *nlinks,
                                 int loops[2], long long *in_flight)
{
    json_t *r = tcluster_admin(admin, "members");
    int found = 0;
    size_t i;
    json_t *m;
    assert_non_null(r);
    json_array_foreach(json_object_get(r, "members"), i, m) {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) != 0)
            continue;
        json_t *links = json_object_get(m, "links");
        *nlinks = json_array_size(links);
        for (size_t k = 0; k < *nlinks; k++) {
            json_t *l = json_array_get(links, k);
            unsigned idx = (unsigned)json_integer_value(json_object_get(l, "link"));
            if (idx < 2)
                loops[idx] = (int)json_integer_value(json_object_get(l, "loop"));
            if (idx < 2 && in_flight != NULL)
                in_flight[idx] = json_integer_value(json_object_get(l, "in_flight"));
        }
        found = 1;
    }
    json_decref(r);
    return found;
}

static int admin_member_links(const char *admin, const char *name, size_t *nlinks,
                              int loops[2])
{
    return admin_member_links_in(admin, name, nlinks, loops, NULL);
}

/* Waits until the router's admin lists member name with want links. */
static void wait_links(fixture *f, const char *name, size_t want)
{
    size_t nlinks = 0;
    int loops[2] = { -1, -1 };
    int64_t until = expect_now_ms() + expect_timeout_ms();
    while ((!admin_member_links(f->admin, name, &nlinks, loops) || nlinks != want) &&
           expect_now_ms() < until) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (nlinks != want)
        fail_msg("member %s has %zu links, not %zu", name, nlinks, want);
}

/* Reads the CALLS_EACH answers of each caller: *ok results, *unavailable
 * UNAVAILABLE errors (any other answer fails the test). */
static void read_outcomes(rawconn *callers, unsigned *ok, unsigned *unavailable)
{
    for (unsigned c = 0; c < NCALLERS; c++)
        for (unsigned k = 0; k < CALLS_EACH; k++) {
            expect_response(&callers[c]);
            if (callers[c].msg.error->type == MSGPACK_OBJECT_NIL) {
                (*ok)++;
                continue;
            }
            check_error(&callers[c], callers[c].msg.msgid, DAFFI_E_UNAVAILABLE);
            (*unavailable)++;
        }
}

/* Two links of one session are one member; a dropped link fails exactly the calls it
 * carried (UNAVAILABLE) while the other link's calls are answered and the member stays
 * (no left event); new calls go over the link that is left; the member leaves with its
 * last link. */
static void test_a_dropped_link_fails_only_its_calls_and_the_member_stays(void **state)
{
    fixture *f = *state;
    rawconn ls[2], sub, callers[NCALLERS];
    static uint32_t ids[2][NCALLERS * CALLS_EACH];
    unsigned got[2] = { 0, 0 };
    rawmsg m;

    start_router(f);
    expect_open(&sub, f->router.unix_addr);
    rexpect_subscribe(&sub, 1);
    join_link(f, &ls[0], "duo", "s-duo", 0, "slow");
    rexpect_event(&sub, "joined", "duo");
    join_link(f, &ls[1], "duo", "s-duo", 1, "slow");
    size_t nlinks = 0;
    int loops[2] = { -1, -1 };
    assert_true(admin_member_links(f->admin, "duo", &nlinks, loops));
    assert_int_equal(nlinks, 2);
    print_message("links of duo on router loops %d and %d\n", loops[0], loops[1]);
    /* callers on both router loops (accepted round-robin): calls spread over the links */
    rawmsg_init(&m);
    for (unsigned c = 0; c < NCALLERS; c++) {
        expect_open(&callers[c], f->router.tcp);
        for (unsigned k = 0; k < CALLS_EACH; k++) {
            msgpack_pack_int(rawmsg_request(&m, 100 + k, "slow", 1), (int)(c * 100 + k));
            expect_send(&callers[c], &m);
        }
    }
    read_forwarded(ls, 2, 500, got, ids);
    print_message("link 0 holds %u calls, link 1 holds %u\n", got[0], got[1]);
    assert_int_equal(got[0] + got[1], NCALLERS * CALLS_EACH);
    if (got[0] == 0 || got[1] == 0)
        fail_msg("every call went over one link (%u, %u)", got[0], got[1]);

    /* link 1 drops: its calls fail UNAVAILABLE, link 0's are answered by link 0 */
    rawconn_close(&ls[1]);
    for (unsigned i = 0; i < got[0]; i++) {
        static const char nil = (char)0xc0;
        assert_int_equal(rawmember_reply_raw(&ls[0], ids[0][i], &nil, 1), 0);
    }
    unsigned ok = 0, unavailable = 0;
    read_outcomes(callers, &ok, &unavailable);
    print_message("after link 1 dropped: %u answered by link 0, %u failed UNAVAILABLE\n", ok,
                  unavailable);
    assert_int_equal(ok, got[0]);
    assert_int_equal(unavailable, got[1]);
    expect_silence(&sub, 200); /* no left event: duo is still a member */
    assert_int_equal(tcluster_has_member(f->router.tcp, "duo"), 1);
    assert_true(admin_member_links(f->admin, "duo", &nlinks, loops));
    assert_int_equal(nlinks, 1);

    /* new calls go over link 0 */
    msgpack_pack_int(rawmsg_request(&m, 900, "slow", 1), 900);
    expect_send(&callers[0], &m);
    if (rawmember_read(&ls[0], expect_timeout_ms()) != RAWCONN_OK ||
        ls[0].msg.kind != DAFFI_MSG_REQUEST)
        fail_msg("a call after link 1 dropped did not reach link 0");
    assert_int_equal(rawmember_reply_raw(&ls[0], ls[0].msg.msgid, "\x07", 1), 0);
    expect_result_int(&callers[0], 900, 7);

    /* the last link goes: the member leaves */
    rawconn_close(&ls[0]);
    rexpect_event(&sub, "left", "duo");
    for (unsigned c = 0; c < NCALLERS; c++)
        rawconn_close(&callers[c]);
    rawconn_close(&sub);
    rawmsg_destroy(&m);
}

/* A link connected again (same session and index) replaces its stale connection,
 * which the router closes; another session under the name is a duplicate (DENIED); a
 * link of the session is no duplicate. */
static void test_sessions_tell_a_reconnected_link_from_a_duplicate(void **state)
{
    fixture *f = *state;
    rawconn a0, a1, again, other;
    const char *cbs[] = { "x_cb", NULL };
    char why[300];

    start_router(f);
    join_link(f, &a0, "uno", "s-uno", 0, "x_cb");
    join_link(f, &a1, "uno", "s-uno", 1, "x_cb");
    rawmember_link l_other = { "s-other", 0, 2 };
    assert_int_equal(rawmember_join_link(&other, f->router.tcp, "uno", cbs, &l_other, why,
                                         sizeof(why)), DAFFI_E_DENIED);
    print_message("another session: DENIED \"%s\"\n", why);
    rawconn_close(&other);
    /* link 1 again: the stale link 1 is closed, uno keeps two links */
    join_link(f, &again, "uno", "s-uno", 1, "x_cb");
    unsigned n = 0;
    if (rawconn_wait_eof(&a1, expect_timeout_ms(), &n) != RAWCONN_EOF)
        fail_msg("the stale link 1 was not closed");
    size_t nlinks = 0;
    int loops[2];
    assert_true(admin_member_links(f->admin, "uno", &nlinks, loops));
    assert_int_equal(nlinks, 2);
    rawconn_close(&a0);
    rawconn_close(&a1);
    rawconn_close(&again);
}

/* Link options that do not fit are BAD_ARGS, and the name stays free. */
static void test_bad_link_options_are_bad_args(void **state)
{
    fixture *f = *state;
    static const struct { const char *session; unsigned link, links; } bad[] = {
        { "s", 2, 2 },        /* link past links */
        { "s", 0, 300 },      /* too many links */
        { "", 0, 2 },         /* empty session */
        { "a b", 0, 2 },      /* a space in the session */
        { "0123456789012345678901234567890123456789012345678901234567890123456789", 0, 2 },
    };
    const char *cbs[] = { "x_cb", NULL };
    char why[300];

    start_router(f);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rawconn c;
        rawmember_link l = { bad[i].session, bad[i].link, bad[i].links };
        int rc = rawmember_join_link(&c, f->router.tcp, "badlink", cbs, &l, why, sizeof(why));
        print_message("session \"%.12s\" link %u of %u: %d \"%s\"\n", bad[i].session,
                      bad[i].link, bad[i].links, rc, why);
        assert_int_equal(rc, DAFFI_E_BAD_ARGS);
        rawconn_close(&c);
    }
    /* several links without a session */
    rawconn c;
    assert_int_equal(rawconn_open(&c, f->router.tcp, 2000), 0);
    rawmsg m;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.hello", 1);
    msgpack_pack_map(pk, 3);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, "badlink");
    daffi_pack_cstr(pk, "links");
    msgpack_pack_int(pk, 2);
    daffi_pack_cstr(pk, "callbacks");
    msgpack_pack_array(pk, 0);
    expect_send(&c, &m);
    expect_error(&c, 1, DAFFI_E_BAD_ARGS);
    rawmsg_destroy(&m);
    rawconn_close(&c);
    assert_int_equal(tcluster_has_member(f->router.tcp, "badlink"), 0);
}

/* The loop index's share of handler calls from the worker's admin `status`. */
static long long loop_calls(const char *admin, int loop)
{
    json_t *r = tcluster_admin(admin, "status");
    long long n = -1;
    assert_non_null(r);
    json_t *v = json_array_get(json_object_get(json_object_get(r, "per_loop"),
                                               "calls_started"), (size_t)loop);
    if (v != NULL)
        n = json_integer_value(v);
    json_decref(r);
    return n;
}

/* A daffid worker with 2 loops opens a link per loop: the router lists one member with
 * 2 links, and calls from callers on both router loops run on both worker loops (its
 * admin `status`: calls_started per loop). */
static void test_a_worker_with_two_loops_serves_calls_on_both(void **state)
{
    fixture *f = *state;
    char wadmin[300], extra[400];
    rawconn callers[NCALLERS];

    start_router(f);
    snprintf(wadmin, sizeof(wadmin), "%s/w-admin.sock", f->router.dir);
    snprintf(extra, sizeof(extra), "heartbeat = 1s\n[admin]\nsocket = %s\n", wadmin);
    assert_int_equal(tcluster_worker_up(&f->worker, f->router.tcp, "w2", extra,
                                        (const char *const[]){ "echo", NULL }, START_MS), 0);
    /* both links are up once the router lists two */
    size_t nlinks = 0;
    int loops[2] = { -1, -1 };
    int64_t until = expect_now_ms() + expect_timeout_ms();
    while ((!admin_member_links(f->admin, "w2", &nlinks, loops) || nlinks < 2) &&
           expect_now_ms() < until) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    print_message("the worker's links: %zu, on router loops %d and %d\n", nlinks, loops[0],
                  loops[1]);
    assert_int_equal(nlinks, 2);
    long long before[2] = { loop_calls(wadmin, 0), loop_calls(wadmin, 1) };
    for (unsigned c = 0; c < NCALLERS; c++)
        expect_open(&callers[c], f->router.tcp);
    for (unsigned round = 0; round < 25; round++)
        for (unsigned c = 0; c < NCALLERS; c++) {
            rawmsg m;
            rawmsg_init(&m);
            msgpack_pack_int(rawmsg_request(&m, round, "echo", 1), (int)round);
            expect_send(&callers[c], &m);
            rawmsg_destroy(&m);
            expect_result_int(&callers[c], round, round);
        }
    long long after[2] = { loop_calls(wadmin, 0), loop_calls(wadmin, 1) };
    print_message("100 calls ran %lld on worker loop 0 and %lld on worker loop 1\n",
                  after[0] - before[0], after[1] - before[1]);
    assert_true(after[0] >= 0 && after[1] >= 0);
    assert_int_equal(after[0] - before[0] + after[1] - before[1], 100);
    if (after[0] == before[0] || after[1] == before[1])
        fail_msg("all calls ran on one loop of the worker");
    for (unsigned c = 0; c < NCALLERS; c++)
        rawconn_close(&callers[c]);
}

/* Sends echo_after(ms, v) as id. */
static void send_echo_after(rawconn *c, uint32_t id, int ms, int v)
{
    rawmsg m;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "echo_after", 2);
    msgpack_pack_int(pk, ms);
    msgpack_pack_int(pk, v);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* A daffid worker reaching the router through a proxy: cutting the connection of its
 * link 1 (a reset, as a broken network does) fails exactly the calls that link held
 * (UNAVAILABLE), the calls on link 0 are answered, the member never leaves, and the
 * worker connects link 1 again. */
static void test_cutting_one_link_of_a_worker_fails_only_its_calls(void **state)
{
    fixture *f = *state;
    rawconn callers[NCALLERS], sub;
    static const unsigned char link1[] = { 0xa4, 'l', 'i', 'n', 'k', 0x01 };

    start_router(f);
    f->proxy = tproxy_start(f->router.tcp);
    assert_non_null(f->proxy);
    expect_open(&sub, f->router.unix_addr);
    rexpect_subscribe(&sub, 1);
    assert_int_equal(tcluster_worker_up(&f->worker, tproxy_addr(f->proxy), "wp",
                                        "heartbeat = 1s\nreconnect_max = 200ms\n",
                                        (const char *const[]){ "echo", NULL }, START_MS), 0);
    rexpect_event(&sub, "joined", "wp");
    wait_links(f, "wp", 2);
    for (unsigned c = 0; c < NCALLERS; c++) {
        expect_open(&callers[c], f->router.tcp);
        for (unsigned k = 0; k < CALLS_EACH; k++)
            send_echo_after(&callers[c], k, 2000, (int)(c * 100 + k));
    }
    /* every call is on a link: the router's admin says which holds how many */
    size_t nlinks = 0;
    int loops[2];
    long long held[2] = { 0, 0 };
    int64_t until = expect_now_ms() + expect_timeout_ms();
    while (admin_member_links_in(f->admin, "wp", &nlinks, loops, held) &&
           held[0] + held[1] < NCALLERS * CALLS_EACH && expect_now_ms() < until) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    print_message("link 0 holds %lld calls, link 1 holds %lld\n", held[0], held[1]);
    assert_int_equal(held[0] + held[1], NCALLERS * CALLS_EACH);
    assert_true(held[0] > 0 && held[1] > 0);
    int cut = tproxy_find(f->proxy, link1, sizeof(link1));
    assert_true(cut >= 0);
    assert_int_equal(tproxy_cut(f->proxy, cut), 0);
    unsigned ok = 0, unavailable = 0;
    read_outcomes(callers, &ok, &unavailable);
    print_message("after link 1 was cut: %u answered, %u UNAVAILABLE\n", ok, unavailable);
    assert_int_equal(ok, held[0]);
    assert_int_equal(unavailable, held[1]);
    wait_links(f, "wp", 2); /* the worker connected link 1 again */
    expect_silence(&sub, 100); /* never left */
    for (unsigned c = 0; c < NCALLERS; c++)
        rawconn_close(&callers[c]);
    rawconn_close(&sub);
}

/* ---- a withdrawing member ------------------------------------------------------ */

typedef struct hammer {
    const char *addr;
    atomic_int stop;
    pthread_t thread;
    unsigned long ok, failed;
    char first[200];
} hammer;

/* Keeps 16 calls of wcb in flight on each of 4 connections until told to stop, then
 * reads the answers still due; counts results and errors. */
static void *hammer_main(void *arg)
{
    hammer *h = arg;
    rawconn c[4];
    unsigned due[4] = { 0, 0, 0, 0 };
    uint32_t id = 0;
    rawmsg m;
    rawmsg_init(&m);
    for (int i = 0; i < 4; i++)
        if (rawconn_open(&c[i], h->addr, 2000) == -1)
            return NULL;
    for (int stopping = 0;;) {
        int busy = 0;
        for (int i = 0; i < 4; i++) {
            while (!stopping && due[i] < 16) {
                id++;
                msgpack_pack_uint32(rawmsg_request(&m, id, "wcb", 1), id);
                if (rawconn_send_msg(&c[i], &m) == -1)
                    break;
                due[i]++;
            }
            if (due[i] == 0)
                continue;
            busy = 1;
            if (rawconn_read(&c[i], 5) != RAWCONN_OK)
                continue;
            due[i]--;
            if (c[i].msg.error->type == MSGPACK_OBJECT_NIL) {
                h->ok++;
            } else if (h->failed++ == 0) {
                msgpack_object_print_buffer(h->first, sizeof(h->first), *c[i].msg.error);
            }
        }
        if (!stopping && atomic_load(&h->stop))
            stopping = 1;
        if (stopping && !busy)
            break;
    }
    for (int i = 0; i < 4; i++)
        rawconn_close(&c[i]);
    rawmsg_destroy(&m);
    return NULL;
}

/* A member that withdraws its callbacks (as a draining worker does) and closes the
 * moment the router acknowledges it, under a steady load of calls that another member
 * also serves: every call written to it before the acknowledgement is answered by it,
 * none is written after (those go to the other member), so no call fails. */
static void test_a_member_closing_at_its_withdrawal_ack_loses_no_call(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "wcb", NULL };
    rawconn wd;
    static hammer h;
    unsigned served = 0;

    start_router(f);
    rmpool *alt = rmpool_start(f->router.tcp, "walt", 1, cbs);
    assert_non_null(alt);
    assert_int_equal(rawmember_join(&wd, f->router.tcp, "wd", cbs, NULL, 0), 0);
    memset(&h, 0, sizeof(h));
    h.addr = f->router.tcp;
    assert_int_equal(pthread_create(&h.thread, NULL, hammer_main, &h), 0);
    int64_t until = expect_now_ms() + 300;
    while (expect_now_ms() < until) {
        if (rawmember_read(&wd, 10) == RAWCONN_OK && wd.msg.kind == DAFFI_MSG_REQUEST) {
            assert_int_equal(rawmember_reply_raw(&wd, wd.msg.msgid, "\x01", 1), 0);
            served++;
        }
    }
    /* withdraw: answer what arrives until the acknowledgement, then close at once */
    assert_int_equal(rawmember_send_hello(&wd, "wd", NULL), 0);
    for (;;) {
        rawconn_status st = rawmember_read(&wd, expect_timeout_ms());
        if (st != RAWCONN_OK)
            fail_msg("wd: no acknowledgement of its withdrawal: %s", rawconn_status_name(st));
        if (wd.msg.kind == DAFFI_MSG_RESPONSE && wd.msg.msgid == RAWMEMBER_HELLO_ID)
            break;
        if (wd.msg.kind == DAFFI_MSG_REQUEST) {
            assert_int_equal(rawmember_reply_raw(&wd, wd.msg.msgid, "\x01", 1), 0);
            served++;
        }
    }
    rawconn_close(&wd);
    struct timespec ts = { 0, 300 * 1000000L };
    nanosleep(&ts, NULL);
    atomic_store(&h.stop, 1);
    pthread_join(h.thread, NULL);
    print_message("%lu calls: %lu answered, %lu failed%s%s; wd served %u before it withdrew, "
                  "walt %lu\n", h.ok + h.failed, h.ok, h.failed, h.failed ? ": " : "", h.first,
                  served, rmpool_answered(alt, 0));
    assert_true(served > 0 && rmpool_answered(alt, 0) > 0);
    assert_int_equal(h.failed, 0);
    rmpool_stop(alt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_a_dropped_link_fails_only_its_calls_and_the_member_stays,
                                  test_teardown),
        cmocka_unit_test_teardown(test_sessions_tell_a_reconnected_link_from_a_duplicate,
                                  test_teardown),
        cmocka_unit_test_teardown(test_bad_link_options_are_bad_args, test_teardown),
        cmocka_unit_test_teardown(test_a_worker_with_two_loops_serves_calls_on_both,
                                  test_teardown),
        cmocka_unit_test_teardown(test_cutting_one_link_of_a_worker_fails_only_its_calls,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_member_closing_at_its_withdrawal_ack_loses_no_call,
                                  test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, tcluster_group_free);
}
