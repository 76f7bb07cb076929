/*
 * test_router_grace.c - the startup grace of a restarted router: calls for callbacks
 * nobody exposes yet are held, not failed, until the members come back.
 *
 * - A router killed (SIGKILL) and restarted under a steady load from several callers,
 *   with two workers: no call gets NO_CALLBACK (without the grace thousands did, in the
 *   second before the workers re-registered); the counts are printed.
 * - The grace ends as soon as the members of the member file are back, long before
 *   startup_grace; a call for an unknown callback is then NO_CALLBACK at once.
 * - A held call is routed the moment a member exposing it joins; one with timeout_ms
 *   fails TIMEOUT at its deadline; the rest get NO_CALLBACK when the grace ends; the
 *   member file lists the router's members.
 * - No member file (a first start): no grace; state_file = none: the whole grace.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define START_MS 10000
#define CLOCK_SLACK_MS 5
#define NCALLERS 4

/* each test starts its own router and workers: cluster.h's set */
typedef tcluster_set fixture;

static void start_workers(fixture *f)
{
    static const char *const names[] = { "gw1", "gw2" };
    for (int i = 0; i < 2; i++)
        assert_int_equal(tcluster_worker_up(&f->workers[i], f->router.tcp, names[i],
                                            "heartbeat = 1s\nreconnect_max = 500ms\n",
                                            (const char *const[]){ "echo", NULL }, START_MS),
                         0);
}

/* Kills the router (SIGKILL) and starts it again on the same dir and addresses. */
static void restart_router(fixture *f)
{
    assert_int_equal(tdaemon_signal(&f->router, SIGKILL), 0);
    assert_int_equal(tdaemon_wait_exit(&f->router, 5000), 1);
    assert_int_equal(tdaemon_start(&f->router, NULL), 0);
}

/* ---- under load ------------------------------------------------------------------- */

typedef struct caller {
    const char *addr;
    atomic_int *stop;
    pthread_t thread;
    unsigned long ok, no_callback, unavailable, dropped, other, reconnects;
    char first_unavailable[200];
} caller;

/* A caller: sequential echo calls, reconnecting whenever the router goes away. */
static void *caller_main(void *arg)
{
    caller *k = arg;
    rawconn c;
    rawmsg m;
    int open = 0;
    uint32_t id = 0;
    rawmsg_init(&m);
    while (!atomic_load(k->stop)) {
        if (!open) {
            if (rawconn_open(&c, k->addr, 1000) == -1) {
                struct timespec ts = { 0, 2 * 1000000L };
                nanosleep(&ts, NULL);
                continue;
            }
            open = 1;
            k->reconnects++;
        }
        id++;
        msgpack_pack_uint32(rawmsg_request(&m, id, "echo", 1), id);
        rawconn_status st = rawconn_send_msg(&c, &m) == 0 ? rawconn_read(&c, 10000)
                                                           : RAWCONN_EOF;
        if (st != RAWCONN_OK) {
            k->dropped++; /* the router died with the call: the caller sees it fail */
            rawconn_close(&c);
            open = 0;
            continue;
        }
        if (c.msg.error->type == MSGPACK_OBJECT_NIL) {
            k->ok++;
            continue;
        }
        int code = 0;
        const char *text;
        size_t len;
        const msgpack_object *details;
        daffi_error_parse(c.msg.error, &code, &text, &len, &details);
        if (code == DAFFI_E_NO_CALLBACK)
            k->no_callback++;
        else if (code == DAFFI_E_UNAVAILABLE && k->unavailable++ == 0)
            snprintf(k->first_unavailable, sizeof(k->first_unavailable), "%.*s", (int)len,
                     text);
        else if (code == DAFFI_E_UNAVAILABLE)
            ;
        else
            k->other++;
    }
    if (open)
        rawconn_close(&c);
    rawmsg_destroy(&m);
    return NULL;
}

static void test_a_restarted_router_under_load_fails_no_call_with_no_callback(void **state)
{
    fixture *f = *state;
    caller callers[NCALLERS];
    atomic_int stop = 0;
    const char *names[] = { "gw1", "gw2", NULL };

    assert_int_equal(tcluster_router_start(&f->router, "hub", "heartbeat = 1s\n", f->admin,
                                           sizeof(f->admin)), 0);
    start_workers(f);
    memset(callers, 0, sizeof(callers));
    for (int i = 0; i < NCALLERS; i++) {
        callers[i].addr = i % 2 ? f->router.tcp : f->router.unix_addr;
        callers[i].stop = &stop;
        assert_int_equal(pthread_create(&callers[i].thread, NULL, caller_main, &callers[i]), 0);
    }
    struct timespec warm = { 0, 300 * 1000000L };
    nanosleep(&warm, NULL);
    int64_t t0 = expect_now_ms();
    restart_router(f);
    int64_t up = expect_now_ms() - t0;
    assert_int_equal(tcluster_wait_members(f->router.tcp, names, START_MS), 0);
    int64_t back = expect_now_ms() - t0;
    nanosleep(&warm, NULL);
    atomic_store(&stop, 1);
    unsigned long ok = 0, nocb = 0, unav = 0, dropped = 0, other = 0;
    const char *why = "";
    for (int i = 0; i < NCALLERS; i++) {
        pthread_join(callers[i].thread, NULL);
        ok += callers[i].ok;
        nocb += callers[i].no_callback;
        unav += callers[i].unavailable;
        dropped += callers[i].dropped;
        other += callers[i].other;
        if (callers[i].unavailable > 0)
            why = callers[i].first_unavailable;
    }
    print_message("router killed and restarted (listening again after %lld ms, both workers "
                  "back after %lld ms): %d callers made %lu calls: %lu ok, %lu NO_CALLBACK, "
                  "%lu lost with the connection when it died, %lu UNAVAILABLE%s%s%s, %lu "
                  "other\n", (long long)up, (long long)back, NCALLERS,
                  ok + nocb + unav + dropped + other, ok, nocb, dropped, unav, *why ? " (\"" : "",
                  why, *why ? "\")" : "", other);
    json_t *r = tcluster_admin(f->admin, "status");
    json_t *g = json_object_get(r, "startup_grace");
    print_message("startup_grace after the restart: held %lld, routed %lld, failed %lld\n",
                  (long long)json_integer_value(json_object_get(g, "held")),
                  (long long)json_integer_value(json_object_get(g, "routed")),
                  (long long)json_integer_value(json_object_get(g, "failed")));
    json_decref(r);
    assert_true(ok > 0);
    assert_int_equal(nocb, 0);
    assert_int_equal(other, 0);
    /* each caller: its call in flight at the kill, and one more when it reconnected while
     * the dying router's listener still completed connections it would never serve */
    assert_true(dropped <= 2 * NCALLERS);
    assert_true(tcluster_log_contains(&f->router, "reason=members_back", 2000));
}

/* ---- when it ends ----------------------------------------------------------------- */

/* The grace (10 s here) ends as soon as both workers of the member file are back;
 * then an unknown callback is NO_CALLBACK at once. */
static void test_the_grace_ends_once_the_members_last_known_are_back(void **state)
{
    fixture *f = *state;
    const char *names[] = { "gw1", "gw2", NULL };
    rawconn c;

    assert_int_equal(tcluster_router_start(&f->router, "hub",
                                           "heartbeat = 1s\nstartup_grace = 10s\n", f->admin,
                                           sizeof(f->admin)), 0);
    start_workers(f);
    int64_t t0 = expect_now_ms();
    restart_router(f);
    assert_int_equal(tcluster_wait_members(f->router.tcp, names, START_MS), 0);
    if (!tcluster_log_contains(&f->router, "router.grace_over reason=members_back", 5000))
        fail_msg("the grace did not end when both members were back");
    int64_t ms = expect_now_ms() - t0;
    print_message("grace over %lld ms after the kill (startup_grace 10 s)\n", (long long)ms);
    assert_true(ms < 5000);
    expect_open(&c, f->router.tcp);
    int64_t t1 = expect_now_ms();
    rawmsg m;
    rawmsg_init(&m);
    msgpack_pack_int(rawmsg_request(&m, 1, "nobody_has_it", 1), 1);
    expect_send(&c, &m);
    expect_error(&c, 1, DAFFI_E_NO_CALLBACK);
    assert_true(expect_now_ms() - t1 < 500);
    rawmsg_destroy(&m);
    rawconn_close(&c);
}

/* Sends cb(1) as id; with timeout_ms > 0 as daffi.call with that timeout. */
static void send_call(rawconn *c, uint32_t id, const char *cb, int timeout_ms)
{
    rawmsg m;
    rawmsg_init(&m);
    if (timeout_ms > 0) {
        msgpack_packer *pk = rawmsg_request(&m, id, "daffi.call", 3);
        daffi_pack_cstr(pk, cb);
        msgpack_pack_array(pk, 1);
        msgpack_pack_int(pk, 1);
        msgpack_pack_map(pk, 1);
        daffi_pack_cstr(pk, "timeout_ms");
        msgpack_pack_int(pk, timeout_ms);
    } else {
        msgpack_pack_int(rawmsg_request(&m, id, cb, 1), 1);
    }
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* The member file names "ghost", which never comes back: the grace (1 s) lasts its
 * whole time. A call for "later" is held until member "latecomer" joins with it and
 * is then served by it; daffi.call with timeout_ms 200 times out at 200 ms; a call for
 * a callback nobody ever exposes is NO_CALLBACK when the grace ends; the member file
 * then names the router's member. */
static void test_held_calls_are_routed_on_join_time_out_or_fail_when_the_grace_ends(
    void **state)
{
    fixture *f = *state;
    rawconn c, mem;
    char path[300], text[512];

    assert_int_equal(tcluster_router_init(&f->router, "hub",
                                          "heartbeat = 1s\nstartup_grace = 1s\n"), 0);
    snprintf(path, sizeof(path), "%s/router.members", f->router.dir);
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->router.dir);
    assert_int_equal(tdaemon_write_file(&f->router, "05-admin.ini", "[admin]\nsocket = %s\n",
                                        f->admin), 0);
    assert_int_equal(tdaemon_write_file(&f->router, "router.members",
                                        "# members of the last run\nghost\nnot a name!\n"), 0);
    int64_t t0 = expect_now_ms();
    assert_int_equal(tdaemon_start(&f->router, NULL), 0);
    /* the bad line is named */
    assert_true(tcluster_log_contains(&f->router, "line=3", expect_timeout_ms()));
    expect_open(&c, f->router.tcp);
    send_call(&c, 1, "later", 0);
    send_call(&c, 2, "never", 200);
    send_call(&c, 3, "never", 0);
    /* daffi.call with timeout_ms 200: TIMEOUT at its deadline */
    int64_t t1 = expect_now_ms();
    expect_error(&c, 2, DAFFI_E_TIMEOUT);
    int64_t ms = expect_now_ms() - t1;
    print_message("a held call with timeout_ms 200 timed out after %lld ms\n", (long long)ms);
    assert_true(ms >= 200 - CLOCK_SLACK_MS);
    /* a member with "later" joins: the held call reaches it */
    const char *cbs[] = { "later", NULL };
    assert_int_equal(rawmember_join(&mem, f->router.tcp, "latecomer", cbs, NULL, 0), 0);
    if (rawmember_read(&mem, expect_timeout_ms()) != RAWCONN_OK ||
        mem.msg.kind != DAFFI_MSG_REQUEST)
        fail_msg("the held call did not reach the member that joined");
    assert_int_equal(rawmember_reply_raw(&mem, mem.msg.msgid, "\x2a", 1), 0);
    expect_result_int(&c, 1, 42);
    /* "never": NO_CALLBACK when the grace ends, about 1 s after the start */
    expect_error(&c, 3, DAFFI_E_NO_CALLBACK);
    ms = expect_now_ms() - t0;
    print_message("a held call for a callback nobody exposes: NO_CALLBACK %lld ms after the "
                  "router started (startup_grace 1 s)\n", (long long)ms);
    assert_true(ms >= 1000 - CLOCK_SLACK_MS);
    assert_true(tcluster_log_contains(&f->router, "router.grace_over reason=timeout", 2000));
    assert_int_equal(tcluster_admin_counter(f->admin, "startup_held"), 3);
    /* the member file names the members now */
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    print_message("member file: %s", text);
    assert_non_null(strstr(text, "\nlatecomer\n"));
    assert_null(strstr(text, "ghost"));
    rawconn_close(&mem);
    rawconn_close(&c);
}

/* Starts the router with extra (and the drop-in file text dropin, when not NULL),
 * sends a call for a callback nobody exposes and returns the milliseconds until its
 * NO_CALLBACK. */
static int64_t no_callback_after(fixture *f, const char *extra, const char *dropin)
{
    rawconn c;
    assert_int_equal(tcluster_router_init(&f->router, "hub", extra), 0);
    if (dropin != NULL)
        assert_int_equal(tdaemon_write_file(&f->router, "50-local.ini", "%s", dropin), 0);
    assert_int_equal(tdaemon_start(&f->router, NULL), 0);
    expect_open(&c, f->router.tcp);
    int64_t t0 = expect_now_ms();
    send_call(&c, 1, "never", 0);
    expect_error(&c, 1, DAFFI_E_NO_CALLBACK);
    rawconn_close(&c);
    return expect_now_ms() - t0;
}

/* A first start (no member file) has no grace; with state_file = none the grace (300
 * ms here) lasts its whole time. */
static void test_no_member_file_means_no_grace_and_none_means_the_whole_grace(void **state)
{
    fixture *f = *state;
    int64_t first = no_callback_after(f, "startup_grace = 10s\n", NULL);
    print_message("first start: NO_CALLBACK after %lld ms\n", (long long)first);
    assert_true(first < 500);
    assert_int_equal(tcluster_discard(&f->router), 0);
    int64_t none = no_callback_after(f, "startup_grace = 300ms\n",
                                     "[server]\nstate_file = none\n");
    print_message("state_file = none: NO_CALLBACK after %lld ms (startup_grace 300 ms)\n",
                  (long long)none);
    assert_true(none >= 100); /* the grace started before the router accepted the call */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_a_restarted_router_under_load_fails_no_call_with_no_callback, tcluster_set_teardown),
        cmocka_unit_test_teardown(test_the_grace_ends_once_the_members_last_known_are_back,
                                  tcluster_set_teardown),
        cmocka_unit_test_teardown(
            test_held_calls_are_routed_on_join_time_out_or_fail_when_the_grace_ends,
            tcluster_set_teardown),
        cmocka_unit_test_teardown(
            test_no_member_file_means_no_grace_and_none_means_the_whole_grace, tcluster_set_teardown),
    };
    return cmocka_run_group_tests(tests, tcluster_set_setup, tcluster_group_free);
}
