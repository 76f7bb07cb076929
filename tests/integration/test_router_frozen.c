/*
 * test_router_frozen.c - a frozen member (SIGSTOP) is passed over: once it owes the
 * router an answer and has said nothing for 1.5 heartbeats, new calls all go to the
 * healthy member exposing the same callback; the calls already written to the frozen
 * one are not resent (they may have started) and are answered when it resumes; after
 * SIGCONT it is routed to again. No call runs twice.
 *
 * Two daffid workers (echo) behind one router; heartbeat 200 ms (frozen after 300 ms
 * of silence), heartbeat_misses 20 (no drop during the test).
 */
#include <setjmp.h>
#include <signal.h>
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

#define START_MS 10000
#define HEARTBEAT_MS 200
#define FREEZE_MS 1500
/* calls sent this long after the freeze must find the frozen member passed over:
 * 1.5 heartbeats to be taken for frozen, plus a heartbeat of slack */
#define DETECT_MS (HEARTBEAT_MS * 5 / 2)
/* ... and be answered (by the other member) within this */
#define ANSWER_MS 250
#define SEND_EVERY_MS 10
#define MAXCALLS 400

typedef struct fixture {
    tcluster_set s;             /* first: the set's teardown takes the fixture */
    char wadmin[2][300];
} fixture;

static int group_setup(void **state)
{
    return tcluster_fixture_new(state, sizeof(fixture)) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    int rc = tcluster_set_teardown(state);
    tcluster_group_free(state);
    return rc;
}

/* echo calls worker i has started (its admin `callbacks`: finished and in flight). */
static long long worker_calls(fixture *f, int i)
{
    json_t *r = tcluster_admin(f->wadmin[i], "callbacks");
    long long n = 0;
    size_t k;
    json_t *cb;
    assert_non_null(r);
    json_array_foreach(json_object_get(r, "callbacks"), k, cb)
        if (strcmp(json_string_value(json_object_get(cb, "name")), "echo") == 0)
            n += json_integer_value(json_object_get(cb, "calls")) +
                 json_integer_value(json_object_get(cb, "in_flight"));
    json_decref(r);
    return n;
}

/* 1 when the router's admin `members` shows member name with a frozen link. */
static int router_sees_frozen(fixture *f, const char *name)
{
    json_t *r = tcluster_admin(f->s.admin, "members");
    int frozen = 0;
    size_t i, k;
    json_t *m, *l;
    assert_non_null(r);
    json_array_foreach(json_object_get(r, "members"), i, m) {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) != 0)
            continue;
        json_array_foreach(json_object_get(m, "links"), k, l)
            frozen |= json_is_true(json_object_get(l, "frozen"));
    }
    json_decref(r);
    return frozen;
}

typedef struct calls {
    int64_t sent[MAXCALLS];
    int64_t answered[MAXCALLS];   /* 0: not yet */
    int code[MAXCALLS];           /* 0: a result */
    uint32_t n;
    uint32_t done;
} calls;

static void send_echo(rawconn *c, calls *k)
{
    rawmsg m;
    rawmsg_init(&m);
    msgpack_pack_uint32(rawmsg_request(&m, k->n, "echo", 1), k->n);
    expect_send(c, &m);
    rawmsg_destroy(&m);
    k->sent[k->n++] = expect_now_ms();
}

/* Reads the answers that arrive within ms. */
static void read_answers(rawconn *c, calls *k, int ms)
{
    rawconn_status st = rawconn_read(c, ms);
    while (st == RAWCONN_OK) {
        uint32_t id = c->msg.msgid;
        if (c->msg.kind != DAFFI_MSG_RESPONSE || id >= k->n || k->answered[id] != 0)
            fail_msg("an unexpected message (or a second answer to call %u)", id);
        k->answered[id] = expect_now_ms();
        if (c->msg.error->type != MSGPACK_OBJECT_NIL) {
            const msgpack_object *details;
            const char *text;
            size_t len;
            daffi_error_parse(c->msg.error, &k->code[id], &text, &len, &details);
        }
        k->done++;
        st = rawconn_read(c, 0);
    }
    if (st != RAWCONN_TIMEOUT)
        fail_msg("the caller's connection: %s", rawconn_status_name(st));
}

static void test_new_calls_pass_over_a_frozen_member_and_it_comes_back(void **state)
{
    fixture *f = *state;
    static calls k;
    rawconn c;
    char extra[400];
    static const char *const names[] = { "fa", "fb" };

    memset(&k, 0, sizeof(k));
    assert_int_equal(tcluster_router_start(&f->s.router, "hub",
                                           "heartbeat = 200ms\nheartbeat_misses = 20\n"
                                           "default_timeout = 20s\n", f->s.admin,
                                           sizeof(f->s.admin)), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(f->wadmin[i], sizeof(f->wadmin[i]), "%s/%s-admin.sock", f->s.router.dir,
                 names[i]);
        snprintf(extra, sizeof(extra), "heartbeat = 1s\n[admin]\nsocket = %s\n", f->wadmin[i]);
        assert_int_equal(tcluster_worker_up(&f->s.workers[i], f->s.router.tcp, names[i], extra,
                                            (const char *const[]){ "echo", NULL }, START_MS),
                         0);
    }
    const char *both[] = { "fa", "fb", NULL };
    assert_int_equal(tcluster_wait_members(f->s.router.tcp, both, START_MS), 0);
    expect_open(&c, f->s.router.tcp);
    for (int i = 0; i < 20; i++) {
        send_echo(&c, &k);
        while (k.done < k.n)
            read_answers(&c, &k, expect_timeout_ms());
    }
    long long calls0[2] = { worker_calls(f, 0), worker_calls(f, 1) };
    assert_true(calls0[0] > 0 && calls0[1] > 0);

    assert_int_equal(tcluster_freeze(&f->s.workers[0], 5000), 0);
    int64_t t0 = expect_now_ms();
    uint32_t first = k.n;
    int frozen_seen = 0;
    /* one call every SEND_EVERY_MS, answers read in between */
    for (int64_t next = t0; next - t0 < FREEZE_MS && k.n < MAXCALLS; next += SEND_EVERY_MS) {
        send_echo(&c, &k);
        int64_t now;
        while ((now = expect_now_ms()) < next + SEND_EVERY_MS)
            read_answers(&c, &k, (int)(next + SEND_EVERY_MS - now));
        if (!frozen_seen && now - t0 > DETECT_MS)
            frozen_seen = router_sees_frozen(f, "fa");
    }
    uint32_t during = k.n - first, late = 0, held = 0, after_detect = 0;
    int64_t worst = 0;
    for (uint32_t i = first; i < k.n; i++) {
        if (k.sent[i] - t0 < DETECT_MS) {
            if (k.answered[i] == 0)
                held++; /* written to fa before it was found frozen */
            continue;
        }
        after_detect++;
        int64_t took = k.answered[i] ? k.answered[i] - k.sent[i] : expect_now_ms() - k.sent[i];
        if (took > worst)
            worst = took;
        if (k.answered[i] == 0 || took > ANSWER_MS || k.code[i] != 0)
            late++;
    }
    print_message("%u calls while fa was stopped: %u held by fa (sent in the first %d ms), "
                  "%u sent later, of which %u not answered within %d ms (slowest %lld ms); "
                  "the router showed fa frozen: %s\n", during, held, DETECT_MS, after_detect,
                  late, ANSWER_MS, (long long)worst, frozen_seen ? "yes" : "no");
    if (late > 0)
        fail_msg("%u of %u calls made after fa froze were not served by fb within %d ms",
                 late, after_detect, ANSWER_MS);
    assert_true(frozen_seen);

    /* fa resumes: the calls it holds are answered (never resent), it is routed to again */
    assert_int_equal(tdaemon_signal(&f->s.workers[0], SIGCONT), 0);
    int64_t until = expect_now_ms() + expect_timeout_ms();
    while (k.done < k.n && expect_now_ms() < until)
        read_answers(&c, &k, 50);
    unsigned failed = 0;
    for (uint32_t i = first; i < k.n; i++)
        failed += k.code[i] != 0;
    print_message("after SIGCONT: %u of %u calls answered, %u with an error\n", k.done, k.n,
                  failed);
    assert_int_equal(k.done, k.n);
    assert_int_equal(failed, 0);
    long long fa_before = worker_calls(f, 0);
    for (int i = 0; i < 20; i++) {
        send_echo(&c, &k);
        while (k.done < k.n)
            read_answers(&c, &k, expect_timeout_ms());
    }
    long long calls1[2] = { worker_calls(f, 0), worker_calls(f, 1) };
    print_message("after SIGCONT fa served %lld of 20 new calls; calls run by fa %lld, by fb "
                  "%lld, made %u\n", calls1[0] - fa_before, calls1[0] - calls0[0],
                  calls1[1] - calls0[1], k.n - first);
    assert_true(calls1[0] > fa_before);
    /* every call ran exactly once */
    assert_int_equal((calls1[0] - calls0[0]) + (calls1[1] - calls0[1]), k.n - first);
    assert_true(tcluster_log_contains(&f->s.router, "router.frozen", 2000));
    assert_true(tcluster_admin_counter(f->s.admin, "members_frozen") >= 1);
    assert_true(tcluster_log_contains(&f->s.router, "router.thawed", 2000));
    rawconn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_calls_pass_over_a_frozen_member_and_it_comes_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
