/*
 * test_router_members.c - membership through a router: hello and the members list,
 * member names as untrusted input, duplicate names (reject and replace), a worker's
 * re-announce after a reload, joined/left events in order (never a member's own join,
 * never one from before the subscription), daffi.wait answering the moment the last
 * member joins or at its timeout, and a router with plugins of its own being a member
 * under its name.
 *
 * The group runs one router ("hub": heartbeat 1s x 3, duplicate = reject, the default,
 * default_timeout = 1s). Members are raw connections (rawmember.h) under names no
 * other test uses, except where a test needs daffid workers or a router configured
 * otherwise: it starts and stops those itself.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
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

#define START_MS 10000
/* libevent's loop clock is coarse (CLOCK_MONOTONIC_COARSE: it may lag a few ms), so
 * a deadline can fire up to that much before the exact time measured here. */
#define CLOCK_SLACK_MS 5
#define HUB_EXTRA "heartbeat = 1s\nheartbeat_misses = 3\n"
/* the group router's default_timeout: what a daffi.wait without timeout_ms gets */
#define HUB_DEFAULT_TIMEOUT_MS 1000
#define STR_(x) #x
#define STR(x) STR_(x)

#define STALE_SPINNERS 2

typedef struct fixture {
    tdaemon router;
    tdaemon extra[2];    /* daemons a test starts itself; cleaned up by its teardown */
    rmpool *pool;
    atomic_int spin_stop;               /* CPU load a test started; its teardown ends it */
    pthread_t spinners[STALE_SPINNERS];
    int nspinners;
} fixture;

/* Starts the group's router (see the top of the file). Returns 0, or -1 (log printed). */
static int group_setup(void **state)
{
    fixture *f = tcluster_fixture_new(state, sizeof(*f));

    if (f == NULL ||
        tcluster_router_start(&f->router, "hub",
                              HUB_EXTRA "default_timeout = " STR(HUB_DEFAULT_TIMEOUT_MS) "ms\n",
                              NULL, 0) == -1)
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

/* Per-test teardown: the test's raw members leave and its own daemons stop. */
static int test_teardown(void **state)
{
    fixture *f = *state;
    int rc = tcluster_pool_discard(&f->pool, f->router.tcp, 5000);

    atomic_store(&f->spin_stop, 1);
    for (int i = 0; i < f->nspinners; i++)
        pthread_join(f->spinners[i], NULL);
    f->nspinners = 0;
    for (int i = 0; i < 2; i++)
        if (tcluster_discard(&f->extra[i]) == -1)
            rc = -1;
    return rc;
}

/* Joins a raw member or fails the test; c must be closed by the caller. */
static void join_or_fail(rawconn *c, const char *addr, const char *name,
                         const char *const *cbs)
{
    char why[256];
    int rc = rawmember_join(c, addr, name, cbs, why, sizeof(why));

    if (rc != 0)
        fail_msg("member %s could not join %s: %s %s", name, addr,
                 rc > 0 ? daffi_error_name(rc) : "connection failed", why);
}

/* Sends daffi.members as msgid id on c and returns the list (valid until c's next
 * read). */
static const msgpack_object *members_of(rawconn *c, uint32_t id)
{
    rawmsg m;

    rawmsg_init(&m);
    rawmsg_request(&m, id, "daffi.members", 0);
    expect_send(c, &m);
    rawmsg_destroy(&m);
    return expect_result(c, id);
}

/* Asserts the message in c is the successful answer to a rawmember hello. */
static void check_hello_ok(const rawconn *c)
{
    char d[512];

    if (c->msg.kind != DAFFI_MSG_RESPONSE || c->msg.msgid != RAWMEMBER_HELLO_ID ||
        c->msg.error->type != MSGPACK_OBJECT_NIL)
        fail_msg("%s: expected the hello's answer, got %s", c->addr,
                 expect_describe(c->msg.kind == DAFFI_MSG_RESPONSE ? c->msg.error : c->msg.params,
                                 d, sizeof(d)));
}

/* ---- hello and members -------------------------------------------------------- */

/* The hello's answer names the router and lists the members, the newcomer included;
 * daffi.members lists every member with exactly the callbacks it announced. */
static void test_hello_answers_the_router_name_and_members_lists_callbacks(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "lst_x", "lst_y", NULL };
    rawconn a, c;
    const msgpack_object *list, *got = NULL;
    char d[1024];

    join_or_fail(&a, f->router.tcp, "lst_a", cbs);
    /* the hello's own answer, still in a.msg */
    if (!rexpect_obj_is(rexpect_obj_get(a.msg.result, "name"), "hub") ||
        !rexpect_members_find(rexpect_obj_get(a.msg.result, "members"), "lst_a", NULL))
        fail_msg("the hello answered %s, expected {name: hub, members: [.. lst_a ..]}",
                 expect_describe(a.msg.result, d, sizeof(d)));
    f->pool = rmpool_start(f->router.unix_addr, "lst_p", 2, cbs + 1);
    assert_non_null(f->pool);
    expect_open(&c, f->router.tcp);
    list = members_of(&c, 1);
    const char *names[] = { "lst_a", "lst_p0", "lst_p1" };
    size_t ncbs[] = { 2, 1, 1 };
    for (int i = 0; i < 3; i++) {
        if (!rexpect_members_find(list, names[i], &got))
            fail_msg("daffi.members does not list %s: %s", names[i],
                     expect_describe(list, d, sizeof(d)));
        if (got == NULL || got->type != MSGPACK_OBJECT_ARRAY || got->via.array.size != ncbs[i] ||
            !rexpect_array_has_str(got, "lst_y"))
            fail_msg("daffi.members lists %s with callbacks %s", names[i],
                     expect_describe(got, d, sizeof(d)));
    }
    /* a plain caller is not a member, and a router without plugins is not one either */
    assert_false(rexpect_members_find(list, "hub", NULL));
    rawconn_close(&a);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "lst_a", 5000), 0);
    rawconn_close(&c);
}

/* A hello without a valid name, or announcing a reserved daffi.* callback, is
 * BAD_ARGS; a second hello on the same connection may re-announce callbacks but not
 * rename the member. */
static void test_bad_hellos_are_bad_args_and_a_member_cannot_rename_itself(void **state)
{
    fixture *f = *state;
    const char *reserved[] = { "ok_cb", "daffi.ping", NULL };
    const char *two[] = { "re_one", "re_two", NULL };
    rawconn c, m;
    rawmsg msg;
    char why[256];
    const msgpack_object *cbs = NULL;

    rawmsg_init(&msg);
    expect_open(&c, f->router.tcp);
    msgpack_packer *pk = rawmsg_request(&msg, 1, "daffi.hello", 1);
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "callbacks");
    msgpack_pack_array(pk, 0);
    expect_send(&c, &msg);
    expect_error(&c, 1, DAFFI_E_BAD_ARGS);
    pk = rawmsg_request(&msg, 2, "daffi.hello", 1);
    msgpack_pack_int(pk, 5);
    expect_send(&c, &msg);
    expect_error(&c, 2, DAFFI_E_BAD_ARGS);
    rawconn_close(&c);

    assert_int_equal(rawmember_join(&m, f->router.tcp, "bad_reserved", reserved, why,
                                    sizeof(why)), DAFFI_E_BAD_ARGS);
    rawconn_close(&m);
    assert_int_equal(tcluster_has_member(f->router.tcp, "bad_reserved"), 0);

    join_or_fail(&m, f->router.tcp, "re_member", two + 1);
    /* re-announce with two callbacks: the list follows */
    assert_int_equal(rawmember_send_hello(&m, "re_member", two), 0);
    if (rawmember_read(&m, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("no answer to the re-announce");
    check_hello_ok(&m);
    expect_open(&c, f->router.tcp);
    if (!rexpect_members_find(members_of(&c, 3), "re_member", &cbs) ||
        !rexpect_array_has_str(cbs, "re_one") || !rexpect_array_has_str(cbs, "re_two"))
        fail_msg("after the re-announce re_member should list re_one and re_two");
    rawconn_close(&c);
    /* the same connection cannot take another name */
    assert_int_equal(rawmember_send_hello(&m, "re_other", two), 0);
    if (rawmember_read(&m, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("no answer to the renaming hello");
    check_error(&m, RAWMEMBER_HELLO_ID, DAFFI_E_BAD_ARGS);
    assert_int_equal(tcluster_has_member(f->router.tcp, "re_other"), 0);
    assert_int_equal(tcluster_has_member(f->router.tcp, "re_member"), 1);
    rawconn_close(&m);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "re_member", 5000), 0);
    rawmsg_destroy(&msg);
}

/* A member name is untrusted input: one carrying a newline must not forge a line in
 * the router's log (the router may refuse such a name, or escape it). */
static void test_a_member_name_cannot_forge_router_log_lines(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "forge_cb", NULL };
    const char *name = "forge\nlevel=error event=forged.by.member";
    static char log[512 * 1024];
    rawconn m;
    char why[256];

    int rc = rawmember_join(&m, f->router.tcp, name, cbs, why, sizeof(why));
    if (rc < 0)
        fail_msg("the router closed the connection instead of answering the hello");
    rawconn_close(&m);
    /* a joined member has left: the log has both lines by now */
    if (rc == 0)
        assert_int_equal(tcluster_wait_gone(f->router.tcp, name, 5000), 0);
    assert_true(tdaemon_read_log(&f->router, log, sizeof(log)) > 0);
    for (const char *line = log; line != NULL && *line != '\0';) {
        if (strncmp(line, "level=error event=forged", 24) == 0)
            fail_msg("member name %s forged a router log line (hello answered %s)",
                     "\"forge\\nlevel=error event=forged.by.member\"",
                     rc == 0 ? "OK" : daffi_error_name(rc));
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
}

/* ---- duplicate names ------------------------------------------------------------ */

/* duplicate = reject (the default): a second hello for a connected name is DENIED
 * with a message naming it, and the first member keeps its name and its calls. */
static void test_a_taken_name_is_denied_and_the_first_member_keeps_serving(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "dup_cb", NULL };
    rawconn second, c;
    rawmsg m;
    char why[256];
    char d[512];

    f->pool = rmpool_start(f->router.tcp, "dupname", 1, cbs);
    assert_non_null(f->pool);
    int rc = rawmember_join(&second, f->router.unix_addr, "dupname0", cbs, why, sizeof(why));
    if (rc != DAFFI_E_DENIED)
        fail_msg("a second hello as dupname0 answered %s (%s), expected DENIED",
                 rc > 0 ? daffi_error_name(rc) : rc == 0 ? "OK" : "a failure", why);
    if (strstr(why, "dupname0") == NULL || strstr(why, "already connected") == NULL)
        fail_msg("the DENIED message does not say the name is taken: \"%s\"", why);
    rawconn_close(&second);
    rawmsg_init(&m);
    expect_open(&c, f->router.tcp);
    for (uint32_t i = 1; i <= 3; i++) {
        msgpack_pack_int(rawmsg_request(&m, i, "dup_cb", 1), (int)i);
        expect_send(&c, &m);
        const msgpack_object *r = expect_result(&c, i);
        if (r->type != MSGPACK_OBJECT_ARRAY || !rexpect_obj_is(&r->via.array.ptr[0], "dupname0"))
            fail_msg("dup_cb answered %s", expect_describe(r, d, sizeof(d)));
    }
    assert_int_equal(rmpool_answered(f->pool, 0), 3);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* A daffid worker refused for a taken name logs why, keeps retrying with backoff,
 * and takes the name once its holder is gone - with no manual step. */
static void test_a_refused_worker_retries_and_takes_the_name_once_it_is_free(void **state)
{
    fixture *f = *state;
    tdaemon *first = &f->extra[0], *second = &f->extra[1];
    rawconn c;
    const msgpack_object *cbs = NULL;
    char d[512];

    assert_int_equal(tcluster_worker_up(first, f->router.tcp, "dupw", HUB_EXTRA,
                                        (const char *const[]){ "echo", NULL }, START_MS),
                     0);
    /* the second has other plugins, so the list tells who holds the name */
    assert_int_equal(tcluster_worker_init(second, f->router.tcp, "dupw",
                                          HUB_EXTRA "reconnect_max = 200ms\n"), 0);
    assert_int_equal(tdaemon_add_plugin(second, "calc", NULL), 0);
    assert_int_equal(tdaemon_spawn(second, NULL), 0);
    if (!tcluster_log_contains(second, "already connected", 5000)) {
        tdaemon_dump_log(second);
        fail_msg("the second worker did not log that its name is taken");
    }
    expect_open(&c, f->router.tcp);
    if (!rexpect_members_find(members_of(&c, 1), "dupw", &cbs) ||
        !rexpect_array_has_str(cbs, "echo"))
        fail_msg("dupw should still be the first worker (echo): %s",
                 expect_describe(cbs, d, sizeof(d)));
    rawconn_close(&c);

    assert_int_equal(tdaemon_stop(first, TDAEMON_STOP_TIMEOUT_MS), 0);
    int64_t t0 = expect_now_ms();
    for (;;) {
        expect_open(&c, f->router.tcp);
        int has = rexpect_members_find(members_of(&c, 2), "dupw", &cbs) &&
                  rexpect_array_has_str(cbs, "add");
        rawconn_close(&c);
        if (has)
            break;
        if (expect_now_ms() - t0 > 5000) {
            tdaemon_dump_log(second);
            fail_msg("the second worker did not take the free name within 5 s");
        }
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
    }
    print_message("the waiting worker took the name %lld ms after the first left\n",
                  (long long)(expect_now_ms() - t0));
}

/* duplicate = replace: the newcomer takes the name, the old member's connection is
 * closed and its call in flight fails UNAVAILABLE at once; subscribers see the old
 * one leave before the new one joins; later calls reach the newcomer. */
static void test_replace_closes_the_old_member_and_fails_its_calls(void **state)
{
    fixture *f = *state;
    tdaemon *r = &f->extra[0];
    const char *cbs[] = { "twin_cb", NULL };
    rawconn old, young, caller, sub;
    rawmsg m;
    char d[512];

    assert_int_equal(tcluster_router_init(r, "hub_replace", HUB_EXTRA "duplicate = replace\n"),
                     0);
    assert_int_equal(tdaemon_start(r, NULL), 0);
    rawmsg_init(&m);
    expect_open(&sub, r->tcp);
    rexpect_subscribe(&sub, 1);
    join_or_fail(&old, r->tcp, "twin", cbs);
    rexpect_event(&sub, "joined", "twin");
    expect_open(&caller, r->unix_addr);
    msgpack_pack_int(rawmsg_request(&m, 5, "twin_cb", 1), 5);
    expect_send(&caller, &m);
    /* the old member holds the call, unanswered */
    assert_int_equal(rawmember_read(&old, expect_timeout_ms()), RAWCONN_OK);
    assert_int_equal(old.msg.kind, DAFFI_MSG_REQUEST);

    int64_t t0 = expect_now_ms();
    join_or_fail(&young, r->unix_addr, "twin", cbs);
    expect_error(&caller, 5, DAFFI_E_UNAVAILABLE);
    int64_t ms = expect_now_ms() - t0;
    print_message("the replaced member's call failed %lld ms after the newcomer's hello\n",
                  (long long)ms);
    expect_closed(&old, NULL);
    rexpect_event(&sub, "left", "twin");
    rexpect_event(&sub, "joined", "twin");

    msgpack_pack_int(rawmsg_request(&m, 6, "twin_cb", 1), 6);
    expect_send(&caller, &m);
    assert_int_equal(rawmember_read(&young, expect_timeout_ms()), RAWCONN_OK);
    assert_int_equal(young.msg.kind, DAFFI_MSG_REQUEST);
    assert_int_equal(rawmember_reply_raw(&young, young.msg.msgid, "\xa5young", 6), 0);
    const msgpack_object *res = expect_result(&caller, 6);
    if (!rexpect_obj_is(res, "young"))
        fail_msg("twin_cb answered %s", expect_describe(res, d, sizeof(d)));
    rawconn_close(&young);
    rawconn_close(&old);
    rawconn_close(&caller);
    rawconn_close(&sub);
    rawmsg_destroy(&m);
}

/* A worker that loads another plugin (drop-in ini + SIGHUP) re-announces itself: the
 * router lists the new callbacks under the same name and routes them, with no leave
 * and no join. */
static void test_a_worker_reannounces_its_callbacks_after_a_reload(void **state)
{
    fixture *f = *state;
    tdaemon *w = &f->extra[0];
    rawconn c, sub;
    rawmsg m;
    const msgpack_object *cbs = NULL;

    expect_open(&sub, f->router.tcp);
    rexpect_subscribe(&sub, 1);
    assert_int_equal(tcluster_worker_up(w, f->router.tcp, "rl", HUB_EXTRA,
                                        (const char *const[]){ "echo", NULL }, START_MS),
                     0);
    rexpect_event(&sub, "joined", "rl");
    assert_int_equal(tdaemon_add_plugin(w, "calc", NULL), 0);
    assert_int_equal(tdaemon_signal(w, SIGHUP), 0);
    int64_t t0 = expect_now_ms();
    for (uint32_t id = 2;; id++) {
        expect_open(&c, f->router.tcp);
        int has = rexpect_members_find(members_of(&c, id), "rl", &cbs) &&
                  rexpect_array_has_str(cbs, "add") && rexpect_array_has_str(cbs, "echo");
        if (has)
            break;
        rawconn_close(&c);
        if (expect_now_ms() - t0 > 5000) {
            tdaemon_dump_log(w);
            fail_msg("the router does not list calc's callbacks for rl 5 s after its reload");
        }
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
    }
    print_message("the router listed the reloaded callbacks after %lld ms\n",
                  (long long)(expect_now_ms() - t0));
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 100, "add", 2);
    msgpack_pack_int(pk, 40);
    msgpack_pack_int(pk, 2);
    expect_send(&c, &m);
    expect_result_int(&c, 100, 42);
    rawmsg_destroy(&m);
    rawconn_close(&c);
    expect_silence(&sub, 100); /* a re-announce is neither a leave nor a join */
    rawconn_close(&sub);
}

/* ---- events --------------------------------------------------------------------- */

/* Joined and left events reach a subscriber in the order the router applied them,
 * members on either transport, the subscriber on a third connection. */
static void test_events_arrive_in_the_order_members_joined_and_left(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "ev_cb", NULL };
    const char *names[] = { "ev_a", "ev_b", "ev_c" };
    rawconn sub, mem[3];

    expect_open(&sub, f->router.unix_addr);
    rexpect_subscribe(&sub, 1);
    for (int i = 0; i < 3; i++)
        join_or_fail(&mem[i], i % 2 ? f->router.unix_addr : f->router.tcp, names[i], cbs);
    /* leave in another order than they joined: b, a, c */
    const int order[] = { 1, 0, 2 };
    for (int k = 0; k < 3; k++) {
        rawconn_close(&mem[order[k]]);
        assert_int_equal(tcluster_wait_gone(f->router.tcp, names[order[k]], 5000), 0);
    }
    for (int i = 0; i < 3; i++)
        rexpect_event_among(&sub, "ev_", "joined", names[i]);
    for (int k = 0; k < 3; k++)
        rexpect_event_among(&sub, "ev_", "left", names[order[k]]);
    rawconn_close(&sub);
}

#define STALE_ROUNDS 30

/* Keeps a CPU busy until *stop: the router's threads get preempted, as on a loaded
 * machine, which is when a stale event shows. */
static void *spin(void *arg)
{
    atomic_int *stop = arg;
    volatile unsigned long n = 0;

    while (!atomic_load(stop))
        n++;
    return NULL;
}

/* A subscriber is told what happens after daffi.subscribe answered, never an event
 * from before: once daffi.wait has said a member is present, a new subscriber must not
 * then be told that it joined; its first event is the next real change. Repeated,
 * because a stale event depends on how the router's threads interleave. */
static void test_a_subscriber_is_not_told_of_changes_before_its_subscription(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "stale_cb", NULL };
    char name[32];
    int stale = 0;
    char first[512] = "";

    atomic_store(&f->spin_stop, 0);
    for (; f->nspinners < STALE_SPINNERS; f->nspinners++)
        assert_int_equal(pthread_create(&f->spinners[f->nspinners], NULL, spin, &f->spin_stop),
                         0);
    for (int round = 0; round < STALE_ROUNDS; round++) {
        rawconn m, sub, marker;
        snprintf(name, sizeof(name), "stale_%d", round);
        const char *names[] = { name, NULL };
        /* a deployment script waits for the member (daffi.wait, parked: the ping
         * behind it is answered), the member says hello, the wait answers */
        rawconn w;
        rawmsg msg;
        rawmsg_init(&msg);
        expect_open(&w, f->router.tcp);
        rexpect_send_wait(&w, 1, names, 5000);
        rawmsg_request(&msg, 2, "daffi.ping", 0);
        expect_send(&w, &msg);
        rawmsg_destroy(&msg);
        expect_result_str(&w, 2, "pong");
        expect_open(&m, round % 2 ? f->router.tcp : f->router.unix_addr);
        assert_int_equal(rawmember_send_hello(&m, name, cbs), 0);
        expect_result(&w, 1);
        rawconn_close(&w);
        expect_open(&sub, round % 2 ? f->router.unix_addr : f->router.tcp);
        rexpect_subscribe(&sub, 1);
        join_or_fail(&marker, f->router.tcp, "stale_marker", cbs);
        if (rawconn_read(&sub, expect_timeout_ms()) != RAWCONN_OK)
            fail_msg("round %d: no event for stale_marker joining", round);
        const msgpack_object *ev = sub.msg.kind == DAFFI_MSG_NOTIFY
                                       ? &sub.msg.params->via.array.ptr[0]
                                       : NULL;
        if (!rexpect_obj_is(rexpect_obj_get(ev, "member"), "stale_marker") ||
            !rexpect_obj_is(rexpect_obj_get(ev, "type"), "joined")) {
            char d[256];
            if (stale++ == 0)
                snprintf(first, sizeof(first), "round %d: first event %s", round,
                         expect_describe(ev, d, sizeof(d)));
        }
        rawconn_close(&marker);
        rawconn_close(&m);
        rawconn_close(&sub);
        assert_int_equal(tcluster_wait_gone(f->router.tcp, "stale_marker", 5000), 0);
        assert_int_equal(tcluster_wait_gone(f->router.tcp, name, 5000), 0);
    }
    if (stale > 0)
        fail_msg("%d of %d new subscribers were first told of a change from before their "
                 "subscription (%s)", stale, STALE_ROUNDS, first);
}

/* A member subscribed before its hello is told about others joining and leaving,
 * never about itself joining. */
static void test_a_member_never_receives_its_own_join(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "self_cb", NULL };
    rawconn self, other;

    expect_open(&self, f->router.tcp);
    rexpect_subscribe(&self, 1);
    assert_int_equal(rawmember_send_hello(&self, "self_m", cbs), 0);
    /* the next message is the hello's answer, not an event about itself */
    expect_result(&self, RAWMEMBER_HELLO_ID);
    join_or_fail(&other, f->router.unix_addr, "self_other", cbs);
    if (rawmember_read(&self, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("self_m got no event for self_other joining");
    /* rexpect_event reads; check the message already read instead */
    const msgpack_object *ev = self.msg.kind == DAFFI_MSG_NOTIFY &&
                                       self.msg.params->via.array.size == 1
                                   ? &self.msg.params->via.array.ptr[0]
                                   : NULL;
    char d[512];
    if (!rexpect_obj_is(rexpect_obj_get(ev, "type"), "joined") ||
        !rexpect_obj_is(rexpect_obj_get(ev, "member"), "self_other"))
        fail_msg("self_m's first event should be self_other joining, got %s",
                 expect_describe(ev ? ev : self.msg.result, d, sizeof(d)));
    rawconn_close(&other);
    if (rawmember_read(&self, expect_timeout_ms()) != RAWCONN_OK)
        fail_msg("self_m got no event for self_other leaving");
    ev = self.msg.kind == DAFFI_MSG_NOTIFY ? &self.msg.params->via.array.ptr[0] : NULL;
    if (!rexpect_obj_is(rexpect_obj_get(ev, "type"), "left") ||
        !rexpect_obj_is(rexpect_obj_get(ev, "member"), "self_other"))
        fail_msg("self_m's second event should be self_other leaving");
    rawconn_close(&self);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "self_m", 5000), 0);
}

/* ---- daffi.wait ------------------------------------------------------------------ */

/* daffi.wait answers true the moment the last named member joins - not on a polling
 * tick - and not before. */
static void test_wait_answers_the_moment_the_last_member_joins(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "wt_cb", NULL };
    const char *names[] = { "wt_a", "wt_b", NULL };
    rawconn w, a, b;
    char d[256];

    expect_open(&w, f->router.tcp);
    rexpect_send_wait(&w, 3, names, 20000);
    join_or_fail(&a, f->router.unix_addr, "wt_a", cbs);
    expect_silence(&w, 150); /* wt_b is still missing */
    join_or_fail(&b, f->router.tcp, "wt_b", cbs);
    int64_t t0 = expect_now_ms();
    const msgpack_object *r = expect_result(&w, 3);
    int64_t ms = expect_now_ms() - t0;
    if (r->type != MSGPACK_OBJECT_BOOLEAN || !r->via.boolean)
        fail_msg("daffi.wait answered %s, expected true", expect_describe(r, d, sizeof(d)));
    print_message("daffi.wait answered %lld ms after the last hello's answer\n", (long long)ms);
    if (ms > 500)
        fail_msg("daffi.wait answered %lld ms after the last member joined: it polls",
                 (long long)ms);
    /* members already present: at once */
    rexpect_send_wait(&w, 4, names, 20000);
    expect_result(&w, 4);
    rawconn_close(&a);
    rawconn_close(&b);
    rawconn_close(&w);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "wt_a", 5000), 0);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "wt_b", 5000), 0);
}

/* daffi.wait gives up at its timeout with TIMEOUT naming the members still missing
 * (and not those present), to the millisecond rather than the second. */
static void test_wait_times_out_naming_the_missing_members(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "wt_cb", NULL };
    const char *names[] = { "wt_present", "wt_missing", NULL };
    rawconn w, a;
    const char *text;
    size_t len;
    int code;
    const msgpack_object *details;
    char msg[512];

    join_or_fail(&a, f->router.tcp, "wt_present", cbs);
    expect_open(&w, f->router.tcp);
    int64_t t0 = expect_now_ms();
    rexpect_send_wait(&w, 5, names, 300);
    expect_error(&w, 5, DAFFI_E_TIMEOUT);
    int64_t ms = expect_now_ms() - t0;
    daffi_error_parse(w.msg.error, &code, &text, &len, &details);
    snprintf(msg, sizeof(msg), "%.*s", (int)len, text);
    print_message("daffi.wait timed out after %lld ms: %s\n", (long long)ms, msg);
    if (strstr(msg, "wt_missing") == NULL || strstr(msg, "wt_present") != NULL)
        fail_msg("the TIMEOUT should name wt_missing only: \"%s\"", msg);
    if (ms < 300 - CLOCK_SLACK_MS || ms > 1500)
        fail_msg("daffi.wait with timeout_ms 300 answered after %lld ms", (long long)ms);
    rawconn_close(&a);
    rawconn_close(&w);
    assert_int_equal(tcluster_wait_gone(f->router.tcp, "wt_present", 5000), 0);
}

/* A daffi.wait without a timeout_ms waits the server's default_timeout (1 s here), not
 * forever. */
static void test_a_wait_without_timeout_ms_ends_at_the_default_timeout(void **state)
{
    fixture *f = *state;
    rawconn w;
    rawmsg m;

    expect_open(&w, f->router.tcp);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 6, "daffi.wait", 1);
    msgpack_pack_array(pk, 1);
    daffi_pack_cstr(pk, "wt_never");
    int64_t t0 = expect_now_ms();
    expect_send(&w, &m);
    rawmsg_destroy(&m);
    rawconn_status st = rawconn_read(&w, HUB_DEFAULT_TIMEOUT_MS + 3000);
    int64_t ms = expect_now_ms() - t0;
    if (st != RAWCONN_OK)
        fail_msg("daffi.wait [[\"wt_never\"]] without timeout_ms got no answer within %lld ms "
                 "(default_timeout = %d ms): %s", (long long)ms, HUB_DEFAULT_TIMEOUT_MS,
                 rawconn_status_name(st));
    check_error(&w, 6, DAFFI_E_TIMEOUT);
    print_message("answered TIMEOUT after %lld ms\n", (long long)ms);
    rawconn_close(&w);
}

/* ---- a router with plugins ---------------------------------------------------------- */

/* A router with plugins of its own is a member under its name: listed, called, and
 * sharing a callback round-robin with a member that exposes it too. */
static void test_a_router_with_plugins_is_a_member_under_its_name(void **state)
{
    fixture *f = *state;
    tdaemon *r = &f->extra[0];
    const char *cbs[] = { "echo", NULL };
    rawconn c;
    rawmsg m;
    const msgpack_object *got = NULL;
    char d[512];

    assert_int_equal(tcluster_router_init(r, "hub_local", HUB_EXTRA), 0);
    assert_int_equal(tdaemon_add_plugin(r, "echo", NULL), 0);
    assert_int_equal(tdaemon_start(r, NULL), 0);
    rawmsg_init(&m);
    expect_open(&c, r->tcp);
    if (!rexpect_members_find(members_of(&c, 1), "hub_local", &got) ||
        !rexpect_array_has_str(got, "echo"))
        fail_msg("the router is not listed as member hub_local with echo");
    msgpack_pack_int(rawmsg_request(&m, 2, "echo", 1), 7);
    expect_send(&c, &m);
    expect_result_int(&c, 2, 7);

    f->pool = rmpool_start(r->tcp, "loc_m", 1, cbs);
    assert_non_null(f->pool);
    const char *names[] = { "hub_local", "loc_m0", NULL };
    rexpect_send_wait(&c, 3, names, 5000);
    expect_result(&c, 3);
    int local = 0, remote = 0;
    for (uint32_t i = 0; i < 6; i++) {
        msgpack_pack_int(rawmsg_request(&m, 10 + i, "echo", 1), 7);
        expect_send(&c, &m);
        const msgpack_object *res = expect_result(&c, 10 + i);
        if (res->type == MSGPACK_OBJECT_POSITIVE_INTEGER && res->via.u64 == 7)
            local++;
        else if (res->type == MSGPACK_OBJECT_ARRAY &&
                 rexpect_obj_is(&res->via.array.ptr[0], "loc_m0"))
            remote++;
        else
            fail_msg("echo answered %s", expect_describe(res, d, sizeof(d)));
    }
    if (local != 3 || remote != 3)
        fail_msg("6 echo calls went %d to the router's plugin and %d to loc_m0, expected 3 "
                 "and 3", local, remote);
    tcluster_pool_discard(&f->pool, r->tcp, 5000);
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hello_answers_the_router_name_and_members_lists_callbacks,
                                  test_teardown),
        cmocka_unit_test_teardown(test_bad_hellos_are_bad_args_and_a_member_cannot_rename_itself,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_member_name_cannot_forge_router_log_lines, test_teardown),
        cmocka_unit_test_teardown(test_a_taken_name_is_denied_and_the_first_member_keeps_serving,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_refused_worker_retries_and_takes_the_name_once_it_is_free,
                                  test_teardown),
        cmocka_unit_test_teardown(test_replace_closes_the_old_member_and_fails_its_calls,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_worker_reannounces_its_callbacks_after_a_reload,
                                  test_teardown),
        cmocka_unit_test_teardown(test_events_arrive_in_the_order_members_joined_and_left,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_member_never_receives_its_own_join, test_teardown),
        cmocka_unit_test_teardown(test_a_subscriber_is_not_told_of_changes_before_its_subscription,
                                  test_teardown),
        cmocka_unit_test_teardown(test_wait_answers_the_moment_the_last_member_joins,
                                  test_teardown),
        cmocka_unit_test_teardown(test_wait_times_out_naming_the_missing_members, test_teardown),
        cmocka_unit_test_teardown(test_a_wait_without_timeout_ms_ends_at_the_default_timeout,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_router_with_plugins_is_a_member_under_its_name,
                                  test_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
