/*
 * test_deadlines.c - deadlines travel with the call (DESIGN.md, second wave): a
 * caller's timeout goes with its request, and each hop (the router, the member) stops
 * waiting and forgets the call when it expires. Also what a member is told when a
 * newcomer takes its name (duplicate = replace): it does not fight back.
 *
 * A router "hub" (admin socket) and a daffid worker "w1" serving echo.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define CONNS 4
#define CALLS 1000 /* in all, CALLS / CONNS per connection */

typedef struct fixture {
    tdaemon router;
    tdaemon worker;
    char admin[PATH_MAX];
    char worker_admin[PATH_MAX];
} fixture;

static int setup(void **state)
{
    static const char *const plugins[] = {"echo", NULL};
    fixture *f = tcluster_fixture_new(state, sizeof(fixture));
    if (f == NULL || tcluster_router_start(&f->router, "hub", NULL, f->admin,
                                           sizeof(f->admin)) == -1)
        return -1;
    if (tcluster_worker_init(&f->worker, f->router.tcp, "w1", NULL) == -1)
        return -1;
    snprintf(f->worker_admin, sizeof(f->worker_admin), "%s/admin.sock", f->worker.dir);
    if (tdaemon_write_file(&f->worker, "05-admin.ini", "[admin]\nsocket = %s\n",
                           f->worker_admin) == -1 ||
        tdaemon_add_plugin(&f->worker, plugins[0], NULL) == -1 ||
        tcluster_worker_start(&f->worker, f->router.tcp, "w1", expect_timeout_ms()) == -1)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    return tcluster_fixture_free(f, &f->worker, &f->router);
}

/* Resident set size of a process in KiB, from /proc. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(fp);
    return kib;
}

/* Sends CALLS daffi.call echo_after(ms, "x") with timeout_ms over CONNS connections and
 * reads every answer: returns how many were TIMEOUT (the rest must be results). */
static int call_many(const char *address, int64_t ms, int64_t timeout_ms)
{
    rawconn c[CONNS];
    rawmsg m;
    int timeouts = 0;

    rawmsg_init(&m);
    for (int k = 0; k < CONNS; k++) {
        expect_open(&c[k], address);
        for (uint32_t id = 1; id <= CALLS / CONNS; id++) {
            msgpack_packer *pk = rawmsg_request(&m, id, "daffi.call", 3);
            daffi_pack_cstr(pk, "echo_after");
            msgpack_pack_array(pk, 2);
            msgpack_pack_int64(pk, ms);
            daffi_pack_cstr(pk, "x");
            msgpack_pack_map(pk, 1);
            daffi_pack_cstr(pk, "timeout_ms");
            msgpack_pack_int64(pk, timeout_ms);
        }
        expect_send(&c[k], &m);
    }
    for (int k = 0; k < CONNS; k++) {
        for (int n = 0; n < CALLS / CONNS; n++) {
            uint32_t id = expect_response(&c[k]);
            int code = 0;
            const char *text;
            size_t len;
            const msgpack_object *details;
            if (c[k].msg.error->type != MSGPACK_OBJECT_NIL) {
                assert_int_equal(daffi_error_parse(c[k].msg.error, &code, &text, &len,
                                                   &details), 0);
                if (code != DAFFI_E_TIMEOUT)
                    fail_msg("msgid %u: error %s: %.*s", id, daffi_error_name(code), (int)len,
                             text);
                timeouts++;
            }
        }
        rawconn_close(&c[k]);
    }
    rawmsg_destroy(&m);
    return timeouts;
}

/* calls_in_flight of the admin `status` reply, or -1. */
static long long status_in_flight(const char *admin)
{
    json_t *r = tcluster_admin(admin, "status");
    json_t *v = json_object_get(r, "calls_in_flight");
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(r);
    return n;
}

/* Waits until the daffid behind admin has no call in flight. Returns the last count. */
static long long wait_idle(const char *admin)
{
    long long n = -1;
    int64_t until = expect_now_ms() + expect_timeout_ms();
    do {
        n = status_in_flight(admin);
        if (n == 0)
            break;
        usleep(10000);
    } while (expect_now_ms() < until);
    return n;
}

/* 1,000 calls that time out through the router: the router forgets each at its
 * deadline (or relays the member's own TIMEOUT, which the member decided from the
 * deadline it was sent), so neither holds a call afterwards - long before the 3 s
 * the handlers would have taken - and the router's memory is back where it was. */
static void test_calls_timing_out_through_a_router_are_forgotten_by_every_hop(void **state)
{
    fixture *f = *state;

    /* warm up: the loops' recycled call records and buffers exist before measuring.
     * Two rounds that time out: which hop forgets a call (the router at the deadline,
     * or the member with its own TIMEOUT) splits differently from round to round, and
     * each path's tables keep the capacity they grew to, so one round may not reach
     * the high-water mark a later one needs (seen: 250 then 500 forgotten by the
     * router, RSS +1.1 MiB once, flat after) */
    assert_int_equal(call_many(f->router.tcp, 0, 5000), 0);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(call_many(f->router.tcp, 3000, 50), CALLS);
        assert_int_equal(wait_idle(f->admin), 0);
    }
    long before = rss_kib(f->router.pid);
    long long forgotten0 = tcluster_admin_counter(f->admin, "forgotten");
    int64_t t0 = expect_now_ms();
    assert_int_equal(call_many(f->router.tcp, 3000, 50), CALLS);
    assert_int_equal(wait_idle(f->admin), 0);
    assert_int_equal(wait_idle(f->worker_admin), 0);
    int64_t took = expect_now_ms() - t0;
    long after = rss_kib(f->router.pid);
    long long forgotten = tcluster_admin_counter(f->admin, "forgotten") - forgotten0;
    fprintf(stderr, "%d calls timed out and were dropped by both hops in %lld ms "
            "(router forgot %lld itself); router RSS %ld -> %ld KiB\n", CALLS,
            (long long)took, forgotten, before, after);
    assert_true(took < 2500); /* the handlers alone would take 3000 ms */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* a sanitizer's quarantine keeps freed memory resident: nothing to compare */
    (void)after;
#else
    assert_true(after - before < 1024);
#endif
    expect_serving(f->router.tcp);
}

/* gauges.NAME of the admin `stats` reply, or -1. */
static long long stats_gauge(const char *admin, const char *name)
{
    json_t *r = tcluster_admin(admin, "stats");
    json_t *v = json_object_get(json_object_get(r, "gauges"), name);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(r);
    return n;
}

/* 200 callers park daffi.wait for a member that never comes (10 minutes) and vanish
 * (their sockets reset): the router lets go of each wait when its caller's connection
 * dies, not at its deadline. (A caller that only shuts down its sending side still
 * gets its answers: PROTOCOL.md, section 3.) */
static void test_a_wait_whose_caller_left_is_dropped_at_once(void **state)
{
    fixture *f = *state;
    rawconn c[200];
    rawmsg m;

    rawmsg_init(&m);
    for (int k = 0; k < 200; k++) {
        expect_open(&c[k], f->router.tcp);
        msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.wait", 2);
        msgpack_pack_array(pk, 1);
        daffi_pack_cstr(pk, "nobody");
        msgpack_pack_int(pk, 600000);
        expect_send(&c[k], &m);
    }
    rawmsg_destroy(&m);
    int64_t until = expect_now_ms() + expect_timeout_ms();
    while (stats_gauge(f->admin, "waits_parked") < 200 && expect_now_ms() < until)
        usleep(10000);
    assert_int_equal(stats_gauge(f->admin, "waits_parked"), 200);
    for (int k = 0; k < 200; k++) {
        struct linger lg = {1, 0};
        assert_int_equal(setsockopt(c[k].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        rawconn_close(&c[k]);
    }
    until = expect_now_ms() + expect_timeout_ms();
    while (stats_gauge(f->admin, "waits_parked") != 0 && expect_now_ms() < until)
        usleep(10000);
    assert_int_equal(stats_gauge(f->admin, "waits_parked"), 0);
    expect_serving(f->router.tcp);
}

/* A drained worker withdraws its callbacks from the router; resume announces them
 * again on its links and it serves again. */
static void test_a_drained_worker_serves_again_after_resume(void **state)
{
    fixture *f = *state;
    json_t *r = tcluster_admin(f->worker_admin, "drain");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "state")), "drained");
    json_decref(r);
    rawconn c;
    expect_open(&c, f->router.tcp);
    expect_send_ii(&c, 1, "echo", 1, 2);
    expect_error(&c, 1, DAFFI_E_NO_CALLBACK);
    r = tcluster_admin(f->worker_admin, "resume");
    assert_non_null(r);
    assert_true(json_is_true(json_object_get(r, "resumed")));
    json_decref(r);
    int64_t until = expect_now_ms() + expect_timeout_ms();
    uint32_t id = 2;
    for (;; id++) {
        expect_send_ii(&c, id, "echo", 1, 2);
        uint32_t got = expect_response(&c);
        assert_int_equal(got, id);
        if (c.msg.error->type == MSGPACK_OBJECT_NIL)
            break;
        if (expect_now_ms() > until)
            fail_msg("the resumed worker did not serve echo again");
        usleep(20000);
    }
    rawconn_close(&c);
}

/* A plugin's own timeout caps a caller's longer deadline (and a shorter one wins). */
static void test_a_plugins_timeout_caps_the_callers_deadline(void **state)
{
    (void)state;
    tdaemon d;
    rawconn c;
    rawmsg m;

    assert_int_equal(tdaemon_init(&d), 0);
    assert_int_equal(tdaemon_add_plugin(&d, "echo", "timeout = 100ms\n"), 0);
    assert_int_equal(tdaemon_start(&d, NULL), 0);
    expect_open(&c, d.tcp);
    rawmsg_init(&m);
    const int64_t deadlines[] = {5000, 40};
    const int64_t want[] = {100, 40};
    for (int i = 0; i < 2; i++) {
        msgpack_packer *pk = rawmsg_request(&m, (uint32_t)i + 1, "daffi.call", 3);
        daffi_pack_cstr(pk, "echo_after");
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, 1000);
        msgpack_pack_int(pk, 1);
        msgpack_pack_map(pk, 1);
        daffi_pack_cstr(pk, "timeout_ms");
        msgpack_pack_int64(pk, deadlines[i]);
        int64_t t0 = expect_now_ms();
        expect_send(&c, &m);
        expect_error(&c, (uint32_t)i + 1, DAFFI_E_TIMEOUT);
        int64_t ms = expect_now_ms() - t0;
        fprintf(stderr, "deadline %lld ms, plugin timeout 100 ms: TIMEOUT after %lld ms\n",
                (long long)deadlines[i], (long long)ms);
        assert_true(ms >= want[i] - 2 && ms < want[i] + 400);
    }
    rawmsg_destroy(&m);
    rawconn_close(&c);
    assert_int_equal(tdaemon_stop(&d, 5000), 0);
    tdaemon_cleanup(&d);
}

/* Two workers with one name and duplicate = replace: the evicted one is told why and
 * rejoins only once the name is free, so they do not replace each other in a loop
 * (fewer than 10 replacements in 5 s); when the newcomer leaves, the evicted one
 * takes the name back. */
static void test_workers_sharing_a_name_do_not_replace_each_other_in_a_loop(void **state)
{
    (void)state;
    static const char *const plugins[] = {"echo", NULL};
    tdaemon router, a, b;
    assert_int_equal(tcluster_router_start(&router, "hub", "duplicate = replace\n", NULL, 0),
                     0);
    assert_int_equal(tcluster_worker_up(&a, router.tcp, "twin", "reconnect_max = 200ms\n",
                                        plugins, expect_timeout_ms()), 0);
    assert_int_equal(tcluster_worker_up(&b, router.tcp, "twin", "reconnect_max = 200ms\n",
                                        plugins, expect_timeout_ms()), 0);
    sleep(5);
    int replaced = tcluster_log_count(&router, "router.replaced");
    fprintf(stderr, "replacements in 5 s: %d\n", replaced);
    assert_true(replaced >= 1 && replaced < 10);
    assert_int_equal(tcluster_log_contains(&a, "worker.evicted", 0), 1);
    /* the newcomer leaves: the evicted worker gets its name back */
    int registered = tcluster_log_count(&a, "worker.registered");
    assert_int_equal(tcluster_stop(&b), 0);
    int64_t until = expect_now_ms() + expect_timeout_ms();
    while (tcluster_log_count(&a, "worker.registered") <= registered &&
           expect_now_ms() < until)
        usleep(10000);
    assert_true(tcluster_log_count(&a, "worker.registered") > registered);
    assert_int_equal(tcluster_stop(&a), 0);
    assert_int_equal(tcluster_stop(&router), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_timing_out_through_a_router_are_forgotten_by_every_hop),
        cmocka_unit_test(test_a_wait_whose_caller_left_is_dropped_at_once),
        cmocka_unit_test(test_a_drained_worker_serves_again_after_resume),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_workers_sharing_a_name_do_not_replace_each_other_in_a_loop),
        cmocka_unit_test(test_a_plugins_timeout_caps_the_callers_deadline),
    };
    int failed = cmocka_run_group_tests_name("deadlines", tests, setup, teardown);
    return failed + cmocka_run_group_tests_name("duplicates", alone, NULL, NULL);
}
