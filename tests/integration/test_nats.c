/*
 * test_nats.c - members and routers meeting on NATS (docs/NATS.md), with real
 * nats-server processes on loopback ports: a call and a notification go router ->
 * NATS -> worker and back; calls spread over two workers serving the same callback;
 * `to` reaches one member; a callback nobody serves is NO_CALLBACK at once; every router
 * lists the members it learned over NATS, and subscribers see them join and leave; a
 * worker killed mid-call is dropped after heartbeat x misses and the calls it held fail
 * UNAVAILABLE naming it (sent by name, or by the queue group once it said "taken"),
 * never TIMEOUT at the deadline; a worker's calls from NATS count in its max_memory; a
 * stream in flight goes on through its worker's drain, and what outlives
 * shutdown_timeout fails at once ("gone"); one of two routers killed, the other keeps
 * serving; a NATS node of a cluster of two killed, its clients fail over to the other.
 *
 * The group runs one nats-server, workers w1 (echo, calc) and w2 (echo), routers r1 and
 * r2 (gateways to the same nats-server), heartbeat 250 ms x 4 everywhere (a dead member
 * goes within a second; a busy sanitizer run does not drop a live one). Tests that
 * kill something start their own daffids (and NATS cluster). Without nats-server every
 * test is skipped, and says why.
 */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <msgpack.h>
#include <nats/nats.h>

#include <daffi/client.h>
#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rexpect.h"
#include "../support/tnats.h"
#include "../support/tnkeys.h"
#include "../support/tstream.h"

#define START_MS 10000
#define HB "heartbeat = 250ms\nheartbeat_misses = 4\n"

typedef struct fixture {
    int absent;          /* no nats-server on this machine: every test skips */
    tnats nats;
    tdaemon r1, r2;
    tdaemon w1, w2;
    char w1_admin[200], w2_admin[200];
    tdaemon extra;       /* a daffid one test starts and kills */
    tdaemon extra2;
    tnats n2[2];         /* the failover test's cluster */
} fixture;

static void skip_without_nats(const fixture *f)
{
    if (f->absent) {
        print_message("SKIPPED: nats-server is not installed (apt-get install nats-server)\n");
        skip();
    }
}

/* A gateway router named name on nats (servers, comma separated). */
static int router_up(tdaemon *d, const char *name, const char *servers)
{
    char extra[400];
    snprintf(extra, sizeof(extra), HB "nats = %s\n", servers);
    if (tcluster_router_init(d, name, extra) == -1)
        return -1;
    return tdaemon_start(d, NULL);
}

/* A NATS worker named name serving plugins, with an admin socket (path into admin). */
static int worker_up(tdaemon *d, const char *servers, const char *name,
                     const char *const *plugins, const char *via_router, char *admin,
                     size_t adminsz)
{
    if (tcluster_worker_init(d, servers, name, HB) == -1)
        return -1;
    if (admin != NULL) {
        snprintf(admin, adminsz, "%s/admin.sock", d->dir);
        if (tdaemon_write_file(d, "05-admin.ini", "[admin]\nsocket = %s\n", admin) == -1)
            return -1;
    }
    for (size_t i = 0; plugins[i] != NULL; i++)
        if (tdaemon_add_plugin(d, plugins[i], NULL) == -1)
            return -1;
    return tcluster_worker_start(d, via_router, name, START_MS);
}

static int group_setup(void **state)
{
    fixture *f = tcluster_fixture_new(state, sizeof(*f));
    if (f == NULL)
        return -1;
    if (tnats_binary() == NULL) {
        f->absent = 1;
        return 0;
    }
    if (tnats_init(&f->nats, 0) == -1 || tnats_start(&f->nats, NULL) == -1 ||
        router_up(&f->r1, "r1", f->nats.url) == -1 ||
        router_up(&f->r2, "r2", f->nats.url) == -1 ||
        worker_up(&f->w1, f->nats.url, "w1", (const char *const[]){ "echo", "calc", NULL },
                  f->r1.tcp, f->w1_admin, sizeof(f->w1_admin)) == -1 ||
        worker_up(&f->w2, f->nats.url, "w2", (const char *const[]){ "echo", NULL }, f->r1.tcp,
                  f->w2_admin, sizeof(f->w2_admin)) == -1)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    int rc = 0;
    if (f == NULL)
        return -1;
    if (!f->absent) {
        rc |= tcluster_stop(&f->w1);
        rc |= tcluster_stop(&f->w2);
        rc |= tcluster_stop(&f->r1);
        rc |= tcluster_stop(&f->r2);
    }
    tnats_cleanup(&f->nats);
    free(f);
    return rc;
}

/* Per-test teardown: what a test started itself goes. */
static int test_teardown(void **state)
{
    fixture *f = *state;
    tdaemon_cleanup(&f->extra);
    memset(&f->extra, 0, sizeof(f->extra));
    tdaemon_cleanup(&f->extra2);
    memset(&f->extra2, 0, sizeof(f->extra2));
    tnats_cleanup(&f->n2[0]);
    tnats_cleanup(&f->n2[1]);
    return 0;
}

/* Starts method(nparams) as msgid id in m: the caller packs the params on the returned
 * packer, then end_request() sends m on c and releases it. */
static msgpack_packer *begin_request(rawmsg *m, uint32_t id, const char *method,
                                     uint32_t nparams)
{
    rawmsg_init(m);
    return rawmsg_request(m, id, method, nparams);
}

static void end_request(rawconn *c, rawmsg *m)
{
    expect_send(c, m);
    rawmsg_destroy(m);
}

/* Sends daffi.call [callback, [args...], {"to"?: to, "timeout_ms"?: ms}] as msgid id;
 * args are nargs encoded values. */
static void send_call(rawconn *c, uint32_t id, const char *callback, const char *args,
                      size_t len, uint32_t nargs, const char *to, int timeout_ms)
{
    rawmsg m;
    msgpack_packer *pk = begin_request(&m, id, "daffi.call", 3);
    daffi_pack_cstr(pk, callback);
    msgpack_pack_array(pk, nargs);
    msgpack_sbuffer_write(&m.sb, args, len);
    msgpack_pack_map(pk, (to != NULL) + (timeout_ms > 0));
    if (to != NULL) {
        daffi_pack_cstr(pk, "to");
        daffi_pack_cstr(pk, to);
    }
    if (timeout_ms > 0) {
        daffi_pack_cstr(pk, "timeout_ms");
        msgpack_pack_int(pk, timeout_ms);
    }
    end_request(c, &m);
}

/* Calls daffi.call [callback, [args], {"to": to}] every pause_ms (msgids from 1000 up)
 * until it succeeds, at most tries times. Returns 1 once it did. */
static int call_until_ok(rawconn *c, const char *callback, const char *args, size_t len,
                         uint32_t nargs, const char *to, int tries, long pause_ms)
{
    for (int i = 0; i < tries; i++) {
        send_call(c, 1000 + (uint32_t)i, callback, args, len, nargs, to, 2000);
        assert_int_equal(rawconn_read(c, expect_timeout_ms()), RAWCONN_OK);
        if (c->msg.error == NULL || c->msg.error->type == MSGPACK_OBJECT_NIL)
            return 1;
        struct timespec ts = {0, pause_ms * 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* ---- calls ------------------------------------------------------------------------------ */

static void test_call_goes_router_nats_worker_and_back(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    expect_send_ii(&c, 1, "add", 40, 2);
    expect_result_int(&c, 1, 42);
    /* bit for bit: a float32 and a bin come back as they went */
    expect_send_raw_call(&c, 2, "echo", 1, "\xca\x3f\xc0\x00\x00", 5);
    expect_result_bytes(&c, 2, "float32 1.5", "\xca\x3f\xc0\x00\x00", 5);
    /* a member's error comes back as it sent it */
    expect_send_ii(&c, 3, "divide", 1, 0);
    expect_error(&c, 3, DAFFI_E_HANDLER_ERROR);
    rawconn_close(&c);
}

static void test_notification_reaches_one_worker(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    long long before = tcluster_admin_counter(f->w1_admin, "notifications");
    assert_true(before >= 0);
    rawconn c;
    expect_open(&c, f->r2.tcp);
    rawmsg m;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_notify(&m, "add", 2); /* only w1 serves add */
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 2);
    end_request(&c, &m);
    expect_ping(&c, 9);
    long long now = before;
    for (int i = 0; i < 300 && now == before; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        now = tcluster_admin_counter(f->w1_admin, "notifications");
    }
    assert_int_equal(now, before + 1);
    rawconn_close(&c);
}

static void test_cast_collects_every_member_serving_it(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    rawmsg m;
    msgpack_packer *pk = begin_request(&m, 1, "daffi.cast", 2);
    daffi_pack_cstr(pk, "echo");
    msgpack_pack_array(pk, 1);
    daffi_pack_cstr(pk, "hi");
    end_request(&c, &m);
    const msgpack_object *map = expect_result(&c, 1);
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(map->via.map.size, 2);
    assert_true(rexpect_obj_is(rexpect_cast_ok(map, "w1"), "hi"));
    assert_true(rexpect_obj_is(rexpect_cast_ok(map, "w2"), "hi"));
    rawconn_close(&c);
}

static void test_calls_spread_over_the_workers_serving_a_callback(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    long long a0 = tcluster_admin_counter(f->w1_admin, "nats_served");
    long long b0 = tcluster_admin_counter(f->w2_admin, "nats_served");
    rawconn c;
    expect_open(&c, f->r1.tcp);
    for (uint32_t i = 1; i <= 40; i++) {
        expect_send_raw_call(&c, i, "echo", 1, "\x07", 1);
        expect_result_int(&c, i, 7);
    }
    long long a = tcluster_admin_counter(f->w1_admin, "nats_served") - a0;
    long long b = tcluster_admin_counter(f->w2_admin, "nats_served") - b0;
    print_message("w1 served %lld, w2 served %lld of 40\n", a, b);
    assert_int_equal(a + b, 40);
    assert_true(a > 0 && b > 0); /* P(all 40 to one of two) = 2^-39 */
    rawconn_close(&c);
}

/* A requester that is not a daffid gateway (plain libnats request-reply: its reply
 * subject does not end in ".q") gets the member's answer at its reply subject itself,
 * not under ".a.r" (dfd_nats_word_subject; docs/NATS.md). */
static void test_a_plain_nats_requester_gets_its_answer(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_request(&pk, 0, "daffi.call", 10, 3); /* what a gateway sends */
    daffi_pack_cstr(&pk, "echo");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_map(&pk, 0);
    assert_int_equal(natsConnection_ConnectTo(&nc, f->nats.url), NATS_OK);
    natsStatus s = natsConnection_Request(&reply, nc, "daffi.member.w1", sb.data, (int)sb.size,
                                          5000);
    if (s != NATS_OK)
        fail_msg("no answer at the plain reply subject: %s", natsStatus_GetText(s));
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    daffi_msg m;
    assert_int_equal(daffi_msg_decode(natsMsg_GetData(reply),
                                      (size_t)natsMsg_GetDataLength(reply), &zone, &m), 0);
    assert_int_equal(m.kind, DAFFI_MSG_RESPONSE);
    assert_true(m.error == NULL || m.error->type == MSGPACK_OBJECT_NIL);
    assert_int_equal(m.result->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(m.result->via.u64, 7);
    msgpack_zone_destroy(&zone);
    natsMsg_Destroy(reply);
    natsConnection_Destroy(nc);
    msgpack_sbuffer_destroy(&sb);
}

static void test_to_reaches_the_member_named(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    long long a0 = tcluster_admin_counter(f->w1_admin, "nats_served");
    long long b0 = tcluster_admin_counter(f->w2_admin, "nats_served");
    rawconn c;
    expect_open(&c, f->r2.tcp);
    for (uint32_t i = 1; i <= 5; i++) {
        send_call(&c, i, "echo", "\x05", 1, 1, "w2", 0);
        expect_result_int(&c, i, 5);
    }
    assert_int_equal(tcluster_admin_counter(f->w2_admin, "nats_served") - b0, 5);
    assert_int_equal(tcluster_admin_counter(f->w1_admin, "nats_served") - a0, 0);
    /* w2 has no calc: its answer says so */
    send_call(&c, 6, "add", "\x01\x02", 2, 2, "w2", 0);
    rexpect_error_containing(&c, 6, DAFFI_E_NO_CALLBACK, "add");
    /* nobody of that name: UNAVAILABLE at once */
    send_call(&c, 7, "echo", "\x05", 1, 1, "nobody", 0);
    rexpect_error_containing(&c, 7, DAFFI_E_UNAVAILABLE, "no member of that name");
    rawconn_close(&c);
}

static void test_nobody_serving_is_no_callback_at_once(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    int64_t t0 = expect_now_ms();
    send_call(&c, 1, "nosuch", "\x01", 1, 1, NULL, 20000);
    rexpect_error_containing(&c, 1, DAFFI_E_NO_CALLBACK, "nosuch");
    /* the no-responders status, not the 20 s deadline */
    assert_true(expect_now_ms() - t0 < 10000);
    /* the router can still route after it */
    expect_send_ii(&c, 2, "add", 1, 1);
    expect_result_int(&c, 2, 2);
    rawconn_close(&c);
}

/* ---- members ---------------------------------------------------------------------------- */

static void test_every_router_lists_the_members_it_learned_over_nats(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    const tdaemon *routers[] = { &f->r1, &f->r2 };
    for (size_t r = 0; r < 2; r++) {
        rawconn c;
        expect_open(&c, routers[r]->tcp);
        rawmsg m;
        begin_request(&m, 1, "daffi.members", 0);
        end_request(&c, &m);
        const msgpack_object *list = expect_result(&c, 1), *cbs = NULL;
        assert_true(rexpect_members_find(list, "w1", &cbs));
        assert_true(rexpect_array_has_str(cbs, "add"));
        assert_true(rexpect_array_has_str(cbs, "echo"));
        assert_true(rexpect_members_find(list, "w2", &cbs));
        assert_true(rexpect_array_has_str(cbs, "echo"));
        assert_false(rexpect_array_has_str(cbs, "add"));
        rawconn_close(&c);
    }
}

static void test_subscribers_see_nats_members_join_and_leave(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    rawconn sub;
    expect_open(&sub, f->r2.tcp);
    rexpect_subscribe(&sub, 1);
    /* daffi.wait on r2 answers once the newcomer's heartbeat arrived */
    assert_int_equal(tcluster_worker_init(&f->extra, f->nats.url, "w3", HB), 0);
    assert_int_equal(tdaemon_add_plugin(&f->extra, "echo", NULL), 0);
    assert_int_equal(tdaemon_spawn(&f->extra, NULL), 0);
    assert_int_equal(tcluster_wait_members(f->r2.tcp, (const char *const[]){ "w3", NULL },
                                           START_MS), 0);
    rexpect_event_among(&sub, "w3", "joined", "w3");
    /* a clean stop says left at once */
    assert_int_equal(tdaemon_stop(&f->extra, TDAEMON_STOP_TIMEOUT_MS), 0);
    rexpect_event_among(&sub, "w3", "left", "w3");
    assert_int_equal(tcluster_has_member(f->r1.tcp, "w3"), 0);
    rawconn_close(&sub);
}

static void test_a_gateway_refuses_native_members(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    rawmsg m;
    msgpack_packer *pk = begin_request(&m, 1, "daffi.hello", 1);
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, "native");
    daffi_pack_cstr(pk, "callbacks");
    msgpack_pack_array(pk, 1);
    daffi_pack_cstr(pk, "x");
    end_request(&c, &m);
    rexpect_error_containing(&c, 1, DAFFI_E_DENIED, "NATS gateway");
    rawconn_close(&c);
    assert_int_equal(tcluster_has_member(f->r1.tcp, "native"), 0);
}

static void test_a_call_from_nats_has_its_access_line(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    json_t *r = tcluster_admin(f->w2_admin, "accesslog on");
    json_decref(r);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    send_call(&c, 1, "echo", "\x2a", 1, 1, "w2", 5000);
    expect_result_int(&c, 1, 42);
    rawconn_close(&c);
    assert_true(tcluster_log_contains(&f->w2, "event=access callback=echo peer=nats outcome=ok",
                                      expect_timeout_ms()));
    json_decref(tcluster_admin(f->w2_admin, "accesslog off"));
}

static void test_status_shows_the_nats_connection(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    json_t *r = tcluster_admin(f->w1_admin, "status");
    json_t *n = json_object_get(r, "nats");
    assert_true(json_is_object(n));
    assert_string_equal(json_string_value(json_object_get(n, "as")), "member");
    assert_string_equal(json_string_value(json_object_get(n, "namespace")), "daffi");
    assert_true(json_is_true(json_object_get(n, "connected")));
    assert_string_equal(json_string_value(json_object_get(n, "url")), f->nats.url);
    json_decref(r);
}

static void test_reload_changes_what_the_routers_see(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    assert_int_equal(worker_up(&f->extra, f->nats.url, "w6", (const char *const[]){ "echo", NULL },
                               f->r2.tcp, NULL, 0), 0);
    rawconn c;
    expect_open(&c, f->r2.tcp);
    send_call(&c, 1, "add", "\x01\x02", 2, 2, "w6", 5000);
    rexpect_error_containing(&c, 1, DAFFI_E_NO_CALLBACK, "add");
    /* calc appears: a reload (SIGHUP) subscribes it and re-announces the member */
    assert_int_equal(tdaemon_add_plugin(&f->extra, "calc", NULL), 0);
    assert_int_equal(tdaemon_signal(&f->extra, SIGHUP), 0);
    assert_true(call_until_ok(&c, "add", "\x01\x02", 2, 2, "w6", 300, 20));
    /* the routers list it, from its next heartbeat or event */
    for (int i = 0; i < 300; i++) {
        rawmsg m;
        begin_request(&m, 900, "daffi.members", 0);
        end_request(&c, &m);
        const msgpack_object *list = expect_result(&c, 900), *cbs = NULL;
        if (rexpect_members_find(list, "w6", &cbs) && rexpect_array_has_str(cbs, "add"))
            break;
        assert_true(i < 299);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    rawconn_close(&c);
    assert_int_equal(tdaemon_stop(&f->extra, TDAEMON_STOP_TIMEOUT_MS), 0);
}

/* Loop 0 drives each NATS connection and drains its watched subscriptions
 * (nats-io.c). Attack: calls to a worker keep flowing, pipelined from both router
 * loops, while reloads keep adding and removing a plugin's callbacks (their
 * subscriptions watched and unwatched from whichever loop switched last) under loop
 * 0's drain: every echo is answered, byte for byte, none left in a subscription nobody
 * drains (it would end TIMEOUT at its 5 s deadline). */
#define CHURN_ROUNDS 8
#define CHURN_CONNS 4
#define CHURN_CALLS 40
static void test_calls_flow_while_reloads_change_the_watched_subscriptions(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    assert_int_equal(worker_up(&f->extra, f->nats.url, "w12",
                               (const char *const[]){ "echo", NULL }, f->r1.tcp, NULL, 0), 0);
    rawconn c[CHURN_CONNS];
    for (int k = 0; k < CHURN_CONNS; k++)
        expect_open(&c[k], k % 2 ? f->r2.tcp : f->r1.tcp);
    char calc[PATH_MAX + 64];
    snprintf(calc, sizeof(calc), "%s/10-calc.ini", f->extra.dir);
    unsigned answered = 0;
    for (int round = 0; round < CHURN_ROUNDS; round++) {
        if (round % 2 == 0)
            assert_int_equal(tdaemon_add_plugin(&f->extra, "calc", NULL), 0);
        else
            assert_int_equal(unlink(calc), 0);
        assert_int_equal(tdaemon_signal(&f->extra, SIGHUP), 0);
        for (int k = 0; k < CHURN_CONNS; k++) {
            for (uint32_t i = 0; i < CHURN_CALLS; i++) {
                char arg[24];
                arg[0] = '\xa6'; /* fixstr of 6 */
                snprintf(arg + 1, sizeof(arg) - 1, "%02d%c%03u", round, 'a' + k, i);
                send_call(&c[k], i + 1, "echo", arg, 7, 1, "w12", 5000);
            }
        }
        for (int k = 0; k < CHURN_CONNS; k++) {
            for (uint32_t n = 0; n < CHURN_CALLS; n++) {
                assert_int_equal(rawconn_read(&c[k], 10000), RAWCONN_OK);
                const daffi_msg *m = &c[k].msg;
                char want[32];
                snprintf(want, sizeof(want), "%02d%c%03u", round, 'a' + k, m->msgid - 1);
                if (m->error != NULL && m->error->type != MSGPACK_OBJECT_NIL) {
                    char why[300];
                    fail_msg("round %d conn %d call %u failed: %s", round, k, m->msgid,
                             expect_describe(m->error, why, sizeof(why)));
                }
                assert_int_equal(m->result->type, MSGPACK_OBJECT_STR);
                assert_int_equal(m->result->via.str.size, 6);
                assert_memory_equal(m->result->via.str.ptr, want, 6);
                answered++;
            }
        }
    }
    print_message("%u echoes through %d reloads, every one answered\n", answered,
                  CHURN_ROUNDS);
    for (int k = 0; k < CHURN_CONNS; k++)
        rawconn_close(&c[k]);
    assert_int_equal(tdaemon_stop(&f->extra, TDAEMON_STOP_TIMEOUT_MS), 0);
}

/* A member that drains answers what it holds, and its loops stop right after the
 * last answers were published: loop 0 writes them at the end of the pass they were
 * published in (an answer of loop 1 kicks loop 0), and what is still buffered once the
 * loops are joined the main thread writes (dfd_nats_io_pump). Attack: 60 calls answered
 * 300-360 ms after they were sent, SIGTERM 100 ms after; every one comes back (none
 * TIMEOUT, none UNAVAILABLE), and the member exits cleanly. */
#define DRAIN_CALLS 60
static void test_answers_published_as_the_member_stops_still_go_out(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    assert_int_equal(worker_up(&f->extra, f->nats.url, "w13",
                               (const char *const[]){ "echo", NULL }, f->r1.tcp, NULL, 0), 0);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    for (uint32_t i = 0; i < DRAIN_CALLS; i++) {
        /* echo_after [ms, i]: the last ones are answered as the loops stop */
        char args[8];
        size_t n = 0;
        args[n++] = '\xcd'; /* uint16 ms */
        args[n++] = 0x01;
        args[n++] = (char)(0x2c + i); /* 300 + i ms */
        args[n++] = (char)i;        /* positive fixint */
        send_call(&c, i + 1, "echo_after", args, n, 2, "w13", 10000);
    }
    /* the calls reach w13 before the drain starts (it would refuse new ones) */
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(tdaemon_signal(&f->extra, SIGTERM), 0);
    for (uint32_t n = 0; n < DRAIN_CALLS; n++) {
        assert_int_equal(rawconn_read(&c, 10000), RAWCONN_OK);
        const daffi_msg *m = &c.msg;
        if (m->error != NULL && m->error->type != MSGPACK_OBJECT_NIL) {
            char why[300];
            fail_msg("call %u failed: %s", m->msgid, expect_describe(m->error, why, sizeof(why)));
        }
        assert_int_equal(m->result->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_int_equal(m->result->via.u64, m->msgid - 1);
    }
    rawconn_close(&c);
    assert_int_equal(tdaemon_wait_exit(&f->extra, 5000), 1);
    assert_true(WIFEXITED(f->extra.status) && WEXITSTATUS(f->extra.status) == 0);
}

#define BUDGET_CALLS 110
#define BUDGET_BYTES (768 * 1024) /* under nats-server's max_payload (1M) */

/* Sends daffi.call ["echo_after", [ms, <bytes of BUDGET_BYTES>], {"to": to,
 * "timeout_ms": 60000}] as msgid id. */
static void send_big_echo_after(rawconn *c, uint32_t id, int ms, const char *to,
                                const char *bytes)
{
    rawmsg m;
    msgpack_packer *pk = begin_request(&m, id, "daffi.call", 3);
    daffi_pack_cstr(pk, "echo_after");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, ms);
    msgpack_pack_bin(pk, BUDGET_BYTES);
    msgpack_pack_bin_body(pk, bytes, BUDGET_BYTES);
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "to");
    daffi_pack_cstr(pk, to);
    daffi_pack_cstr(pk, "timeout_ms");
    msgpack_pack_int(pk, 60000);
    end_request(c, &m);
}

static void test_calls_from_nats_count_in_the_workers_memory_budget(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
#if defined(__SANITIZE_THREAD__)
    /* past max_memory's floor (64M) means 80 MiB through router, NATS and worker in a
     * few seconds: under ThreadSanitizer the router takes longer than a send may wait */
    print_message("SKIPPED under ThreadSanitizer: 80 MiB in flight needs the "
                  "uninstrumented speed\n");
    skip();
#endif
    char admin[200];
    /* max_memory 64M (its least): 110 calls of 768 KiB held 6 s (82.5M) do not fit */
    assert_int_equal(tcluster_worker_init(&f->extra, f->nats.url, "w9",
                                          HB "[limits]\nmax_memory = 64M\n"), 0);
    snprintf(admin, sizeof(admin), "%s/admin.sock", f->extra.dir);
    assert_int_equal(tdaemon_write_file(&f->extra, "05-admin.ini", "[admin]\nsocket = %s\n",
                                        admin), 0);
    assert_int_equal(tdaemon_add_plugin(&f->extra, "echo", NULL), 0);
    assert_int_equal(tcluster_worker_start(&f->extra, f->r1.tcp, "w9", START_MS), 0);
    char *bytes = calloc(1, BUDGET_BYTES);
    assert_non_null(bytes);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    for (uint32_t i = 1; i <= BUDGET_CALLS; i++)
        send_big_echo_after(&c, i, 6000, "w9", bytes);
    unsigned ok = 0, refused = 0;
    for (int i = 0; i < BUDGET_CALLS; i++) {
        assert_int_equal(rawconn_read(&c, 60000), RAWCONN_OK);
        assert_int_equal(c.msg.kind, DAFFI_MSG_RESPONSE);
        if (c.msg.error == NULL || c.msg.error->type == MSGPACK_OBJECT_NIL) {
            assert_int_equal(c.msg.result->type, MSGPACK_OBJECT_BIN);
            assert_int_equal(c.msg.result->via.bin.size, BUDGET_BYTES);
            ok++;
        } else {
            /* the answer a TCP caller of w9 gets past its budget, with the figures */
            rexpect_check_error_containing(&c, c.msg.msgid, DAFFI_E_OVERLOADED,
                                           "memory budget spent");
            rexpect_check_error_containing(&c, c.msg.msgid, DAFFI_E_OVERLOADED,
                                           "of max_memory 64.0M");
            refused++;
        }
    }
    print_message("%u answered, %u refused past max_memory\n", ok, refused);
    assert_true(ok >= 40 && refused >= 10);
    assert_int_equal(ok + refused, BUDGET_CALLS);
    assert_int_equal(tcluster_admin_counter(admin, "memory_refused"), refused);
    assert_true(tcluster_log_contains(&f->extra, "event=memory.refusing", 5000));
    /* the answered calls gave their memory back: the budget's count is down again,
     * and a call fits */
    long long used = -1;
    for (int i = 0; i < 500; i++) {
        json_t *st = tcluster_admin(admin, "status");
        used = (long long)json_integer_value(json_object_get(json_object_get(st, "memory"),
                                                             "used"));
        json_decref(st);
        if (used < 4 << 20)
            break;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    print_message("memory used after the answers: %lld bytes\n", used);
    assert_true(used >= 0 && used < 4 << 20);
    send_big_echo_after(&c, 1000, 0, "w9", bytes);
    assert_int_equal(rawconn_read(&c, 60000), RAWCONN_OK);
    assert_true(c.msg.error == NULL || c.msg.error->type == MSGPACK_OBJECT_NIL);
    free(bytes);
    rawconn_close(&c);
    assert_int_equal(tdaemon_stop(&f->extra, TDAEMON_STOP_TIMEOUT_MS), 0);
}

/* ---- streams ---------------------------------------------------------------------------- */

/* FNV-1a 64 of the file at path (echo's digest hashes the same way). */
static uint64_t file_fnv(const char *path, size_t *bytes)
{
    FILE *in = fopen(path, "rb");
    uint64_t h = 14695981039346656037ull;
    int ch;
    *bytes = 0;
    assert_non_null(in);
    while ((ch = fgetc(in)) != EOF) {
        h = (h ^ (uint64_t)(unsigned char)ch) * 1099511628211ull;
        (*bytes)++;
    }
    fclose(in);
    return h;
}

static void test_a_stream_goes_over_nats_in_order_with_backpressure(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    char path[128], out[4096], want[128];
    const char *b = getenv("BUILD");
    size_t bytes;
    snprintf(path, sizeof(path), "%s/stream.bin", f->nats.dir);
    assert_int_equal(expect_run(out, sizeof(out), "head -c 2500000 /dev/urandom > %s", path), 0);
    uint64_t h = file_fnv(path, &bytes);
    snprintf(want, sizeof(want), "\"bytes\":%zu,\"fnv1a64\":%llu}", bytes,
             (unsigned long long)h);
    /* window 2, 64 KiB chunks: 39 chunks, so credit must come back over NATS many times;
     * by the queue group (w1 or w2), then to w2 by name, through both routers */
    const char *to[] = { "", "--to w2 " };
    const tdaemon *via[] = { &f->r1, &f->r2 };
    for (int i = 0; i < 2; i++) {
        assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -t 20000 -s %s stream %s"
                                    "--window 2 --chunk-size 65536 digest < %s",
                                    b && *b ? b : "build", via[i]->tcp, to[i], path), 0);
        print_message("%s", out);
        assert_non_null(strstr(out, "\"chunks\":39,"));
        assert_non_null(strstr(out, want));
    }
    unlink(path);
}

/* Opens c to the router at addr and there the stream digest on member `to` (window),
 * and sends it the chunk "abc". Returns the stream id. */
static uint32_t stream_open_abc(rawconn *c, const char *addr, unsigned window, const char *to)
{
    expect_open(c, addr);
    uint32_t id = tstream_raw_open(c, 1, "digest", window, to, NULL);
    rawmsg m;
    rawmsg_init(&m);
    tstream_raw_chunk(&m, id, "abc", 3);
    end_request(c, &m);
    return id;
}

/* Sends daffi.end [id] as msgid on c and reads its answer into c. */
static void stream_end(rawconn *c, uint32_t msgid, uint32_t id)
{
    rawmsg m;
    rawmsg_init(&m);
    tstream_raw_id_msg(&m, 0, msgid, "daffi.end", id);
    end_request(c, &m);
    tstream_raw_response(c, msgid, NULL);
}

static void test_a_stream_whose_member_dies_is_aborted(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    assert_int_equal(worker_up(&f->extra, f->nats.url, "w8", (const char *const[]){ "echo", NULL },
                               f->r1.tcp, NULL, 0), 0);
    rawconn c;
    uint32_t id = stream_open_abc(&c, f->r1.tcp, 2, "w8");
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(tdaemon_signal(&f->extra, SIGKILL), 0);
    /* dropped after 4 silent heartbeats: the caller is told, the end fails at once */
    tstream_raw_expect_note(&c, "daffi.abort", id);
    stream_end(&c, 2, id);
    check_error(&c, 2, DAFFI_E_UNAVAILABLE);
    rawconn_close(&c);
    tdaemon_wait_exit(&f->extra, 1000);
}

static void test_a_stream_in_flight_finishes_when_its_member_drains(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    assert_int_equal(worker_up(&f->extra, f->nats.url, "w10",
                               (const char *const[]){ "echo", NULL }, f->r1.tcp, NULL, 0), 0);
    rawconn c;
    uint32_t id = stream_open_abc(&c, f->r1.tcp, 4, "w10");
    /* SIGTERM: w10 says left and takes no new call, but the stream it holds goes on */
    assert_int_equal(tdaemon_signal(&f->extra, SIGTERM), 0);
    assert_true(tcluster_log_contains(&f->extra, "event=nats.member change=left", 5000));
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL);
    rawmsg m;
    rawmsg_init(&m);
    tstream_raw_chunk(&m, id, "defg", 4);
    end_request(&c, &m);
    stream_end(&c, 2, id);
    assert_true(c.msg.error == NULL || c.msg.error->type == MSGPACK_OBJECT_NIL);
    const msgpack_object *bytes = daffi_obj_get(c.msg.result, "bytes");
    assert_non_null(bytes);
    assert_int_equal(tstream_uint(bytes), 7);
    rawconn_close(&c);
    /* then it exits at once, cleanly, long before shutdown_timeout (5 s) */
    assert_int_equal(tdaemon_wait_exit(&f->extra, 4000), 1);
    assert_true(WIFEXITED(f->extra.status) && WEXITSTATUS(f->extra.status) == 0);
}

static void test_a_stream_left_open_ends_at_shutdown_timeout(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    assert_int_equal(tcluster_worker_init(&f->extra, f->nats.url, "w11", HB), 0);
    assert_int_equal(tdaemon_write_file(&f->extra, "06-shutdown.ini",
                                        "[server]\nshutdown_timeout = 1500ms\n"), 0);
    assert_int_equal(tdaemon_add_plugin(&f->extra, "echo", NULL), 0);
    assert_int_equal(tcluster_worker_start(&f->extra, f->r1.tcp, "w11", START_MS), 0);
    rawconn c;
    uint32_t id = stream_open_abc(&c, f->r1.tcp, 4, "w11");
    /* and a call that outlives the drain: echo_after 10 s, deadline 20 s */
    send_call(&c, 3, "echo_after", "\xcd\x27\x10\xa1z", 5, 2, "w11", 20000);
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    int64_t t0 = expect_now_ms();
    assert_int_equal(tdaemon_signal(&f->extra, SIGTERM), 0);
    /* the stream and the call keep the member until shutdown_timeout, then it says
     * "gone" and exits: the call fails UNAVAILABLE at once, the stream's caller is told
     * (daffi.abort), and its end fails at once */
    assert_int_equal(tdaemon_wait_exit(&f->extra, 10000), 1);
    assert_true(expect_now_ms() - t0 >= 1400);
    assert_true(tcluster_log_contains(&f->extra, "event=server.drain_timeout", 100));
    rexpect_error_containing(&c, 3, DAFFI_E_UNAVAILABLE, "it exited: shutdown_timeout");
    assert_true(expect_now_ms() - t0 < 8000);
    assert_true(tcluster_log_contains(&f->r1, "event=nats.member change=gone name=w11", 1000));
    tstream_raw_expect_note(&c, "daffi.abort", id);
    stream_end(&c, 2, id);
    check_error(&c, 2, DAFFI_E_UNAVAILABLE);
    rawconn_close(&c);
}

static void test_a_stream_to_nobody_is_no_callback(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    rawmsg m;
    msgpack_packer *pk = begin_request(&m, 1, "daffi.stream", 2);
    daffi_pack_cstr(pk, "nosuch_stream");
    msgpack_pack_array(pk, 0);
    end_request(&c, &m);
    rexpect_error_containing(&c, 1, DAFFI_E_NO_CALLBACK, "nosuch_stream");
    rawconn_close(&c);
}

/* ---- failures ---------------------------------------------------------------------------- */

static void test_worker_killed_mid_call_ends_the_call_and_leaves(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    /* w4 alone serves fib: a fib call by the queue group is w4's */
    assert_int_equal(worker_up(&f->extra, f->nats.url, "w4",
                               (const char *const[]){ "echo", "fib", NULL }, f->r1.tcp, NULL, 0),
                     0);
    rawconn c;
    expect_open(&c, f->r1.tcp);
    /* echo_after 5000 on w4 by name, deadline 20 s: UNAVAILABLE once w4 is dropped
     * (4 silent heartbeats of 250 ms), long before the deadline */
    send_call(&c, 1, "echo_after", "\xcd\x13\x88\xa1x", 5, 2, "w4", 20000);
    /* fib(45) by the queue group (seconds in w4's blocking pool), deadline 20 s: w4 said
     * it took it, so it is UNAVAILABLE naming w4 too, not TIMEOUT at the deadline */
    send_call(&c, 2, "fib", "\x2d", 1, 1, NULL, 20000);
    /* echo_after by the queue group (w1, w2, w4 serve it), deadline 1.5 s: whoever took
     * it, the answer would come after 5 s: TIMEOUT, or UNAVAILABLE should w4 hold it and
     * be dropped first */
    send_call(&c, 3, "echo_after", "\xcd\x13\x88\xa1y", 5, 2, NULL, 1500);
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(tdaemon_signal(&f->extra, SIGKILL), 0);
    int64_t t0 = expect_now_ms();
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        /* bounded generously: a loaded machine delays the heartbeats' verdict */
        assert_int_equal(rawconn_read(&c, 15000), RAWCONN_OK);
        assert_int_equal(c.msg.kind, DAFFI_MSG_RESPONSE);
        uint32_t id = c.msg.msgid;
        assert_true(id >= 1 && id <= 3 && !(seen & (1 << id)));
        seen |= 1 << id;
        if (id == 3) {
            int code = 0;
            const char *text;
            size_t len;
            const msgpack_object *details;
            assert_int_equal(daffi_error_parse(c.msg.error, &code, &text, &len, &details), 0);
            assert_true(code == DAFFI_E_TIMEOUT || code == DAFFI_E_UNAVAILABLE);
        } else {
            rexpect_check_error_containing(&c, id, DAFFI_E_UNAVAILABLE, "member 'w4'");
        }
    }
    assert_true(expect_now_ms() - t0 < 16000); /* well before the 20 s deadlines */
    assert_int_equal(tcluster_wait_gone(f->r1.tcp, "w4", 5000), 0);
    assert_int_equal(tcluster_wait_gone(f->r2.tcp, "w4", 5000), 0);
    assert_true(tcluster_log_contains(&f->r1, "event=nats.member_lost name=w4", 1000));
    /* now nobody of that name: at once; nobody serves fib: at once */
    send_call(&c, 4, "echo", "\x01", 1, 1, "w4", 20000);
    rexpect_error_containing(&c, 4, DAFFI_E_UNAVAILABLE, "no member");
    send_call(&c, 5, "fib", "\x01", 1, 1, NULL, 20000);
    rexpect_error_containing(&c, 5, DAFFI_E_NO_CALLBACK, "fib");
    rawconn_close(&c);
    tdaemon_wait_exit(&f->extra, 1000);
}

static void test_one_router_killed_the_other_keeps_serving(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    assert_int_equal(router_up(&f->extra, "r3", f->nats.url), 0);
    assert_int_equal(tcluster_wait_members(f->extra.tcp, (const char *const[]){ "w1", "w2", NULL },
                                           START_MS), 0);
    rawconn a, b;
    expect_open(&a, f->extra.tcp);
    expect_open(&b, f->r2.tcp);
    expect_send_ii(&a, 1, "add", 2, 3);
    expect_result_int(&a, 1, 5);
    assert_int_equal(tdaemon_signal(&f->extra, SIGKILL), 0);
    expect_closed(&a, NULL);
    for (uint32_t i = 1; i <= 20; i++) {
        expect_send_ii(&b, i, "add", i, 1);
        expect_result_int(&b, i, i + 1);
    }
    rawconn_close(&a);
    rawconn_close(&b);
    tdaemon_wait_exit(&f->extra, 1000);
}

/* add(a, b) on c: its result, or -1 when the call failed (printed). */
static long long client_add(daffi_client *c, int a, int b)
{
    char params[8];
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    long long v = -1;
    params[0] = (char)0x92;
    params[1] = (char)a;
    params[2] = (char)b;
    if (daffi_rpc_raw(c, "add", params, 3, 5000, &r, &err) == 0) {
        if (r.obj.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            v = (long long)r.obj.via.u64;
        daffi_result_free(&r);
    } else {
        print_message("add: %s\n", err.message != NULL ? err.message : "?");
    }
    daffi_error_clear(&err);
    return v;
}

typedef struct async_add {
    int done;
    long long v;                 /* the result, -1: failed */
} async_add;

static void on_async_add(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    (void)c;
    async_add *w = arg;
    w->v = err == NULL && res->obj.type == MSGPACK_OBJECT_POSITIVE_INTEGER
               ? (long long)res->obj.via.u64 : -1;
    w->done = 1;
}

/* add(a, b) on the asynchronous client c (its loop base run meanwhile). */
static long long async_client_add(struct event_base *base, daffi_client *c, int a, int b)
{
    char params[3] = { (char)0x92, (char)a, (char)b };
    async_add w = { 0, -1 };
    daffi_error err = DAFFI_ERROR_INIT;
    if (daffi_rpc_raw_async(c, "add", params, 3, 5000, on_async_add, &w, &err) == -1) {
        daffi_error_clear(&err);
        return -1;
    }
    assert_true(tstream_run_until(base, &w.done, 1, 10000));
    return w.v;
}

static void test_a_client_given_two_routers_fails_over_to_the_other(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    char list[300], out[4096];
    const char *b = getenv("BUILD");
    assert_int_equal(router_up(&f->extra2, "r8", f->nats.url), 0);
    assert_int_equal(tcluster_wait_members(f->extra2.tcp, (const char *const[]){ "w1", NULL },
                                           START_MS), 0);
    /* r8 first, r2 second: both gateways of the same NATS, so either serves w1's add */
    snprintf(list, sizeof(list), "%s, %s", f->extra2.tcp, f->r2.tcp);
    daffi_client_opts opts = {0};
    opts.reconnect_ms = 50;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_connect(list, &opts, &err);
    assert_non_null(c);
    assert_int_equal(client_add(c, 1, 2), 3);
    /* and an asynchronous client, reconnecting on its loop */
    struct event_base *base = event_base_new();
    assert_non_null(base);
    daffi_client *ac = daffi_client_new(base, list, &opts, &err);
    assert_non_null(ac);
    assert_int_equal(async_client_add(base, ac, 5, 6), 11);
    assert_int_equal(tdaemon_signal(&f->extra2, SIGKILL), 0);
    tdaemon_wait_exit(&f->extra2, 5000);
    long long av = async_client_add(base, ac, 6, 6);
    for (int i = 0; i < 20 && av != 12; i++)
        av = async_client_add(base, ac, 6, 6);
    assert_int_equal(av, 12);
    daffi_client_stats ast;
    daffi_client_stats_get(ac, &ast);
    assert_int_equal(ast.connects, 2);
    daffi_close(ac);
    event_base_free(base);
    /* the call after the loss reconnects, to r2 (the list's next) */
    long long v = client_add(c, 2, 2);
    for (int i = 0; i < 20 && v != 4; i++)
        v = client_add(c, 2, 2); /* a call in flight when r8 died fails UNAVAILABLE */
    assert_int_equal(v, 4);
    daffi_client_stats st;
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.disconnects, 1);
    daffi_close(c);
    /* r8 is gone: a new client given the list skips it, and daffictl takes the list */
    c = daffi_connect(list, NULL, &err);
    assert_non_null(c);
    assert_int_equal(client_add(c, 3, 4), 7);
    daffi_close(c);
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s '%s' call add 20 22",
                                b && *b ? b : "build", list), 0);
    assert_non_null(strstr(out, "42"));
    /* a list where nobody answers says which address failed last, and why */
    snprintf(list, sizeof(list), "%s,%s", f->extra2.tcp, f->extra2.tcp);
    assert_null(daffi_connect(list, NULL, &err));
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    print_message("%s\n", err.message);
    assert_non_null(strstr(err.message, "Connection refused"));
    daffi_error_clear(&err);
    /* a bad item is named */
    assert_null(daffi_connect("tcp://127.0.0.1:1,tcp://nowhere", NULL, &err));
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "item 2"));
    daffi_error_clear(&err);
}

static void test_nats_node_killed_clients_fail_over(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    char routes[128], both[160];
    assert_int_equal(tnats_init(&f->n2[0], 1), 0);
    assert_int_equal(tnats_init(&f->n2[1], 1), 0);
    snprintf(routes, sizeof(routes), "nats://127.0.0.1:%d", f->n2[0].cport);
    assert_int_equal(tnats_start(&f->n2[0], NULL), 0);
    assert_int_equal(tnats_start(&f->n2[1], routes), 0);
    snprintf(both, sizeof(both), "%s,%s", f->n2[0].url, f->n2[1].url);
    /* the router talks to both nodes, the worker too: whichever node each is on dies */
    assert_int_equal(router_up(&f->extra2, "r4", both), 0);
    assert_int_equal(tcluster_worker_init(&f->extra, f->n2[0].url, "w5", HB), 0);
    assert_int_equal(tdaemon_write_file(&f->extra, "01-nats.ini",
                                        "[server]\nrouter = %s\n", both), 0);
    assert_int_equal(tdaemon_add_plugin(&f->extra, "calc", NULL), 0);
    assert_int_equal(tcluster_worker_start(&f->extra, f->extra2.tcp, "w5", START_MS), 0);
    rawconn c;
    expect_open(&c, f->extra2.tcp);
    send_call(&c, 1, "add", "\x01\x02", 2, 2, "w5", 5000);
    expect_result_int(&c, 1, 3);
    /* which node the worker chose (libnats shuffles the list): that one dies */
    char needle[160];
    snprintf(needle, sizeof(needle), "event=nats.connected role=worker url=%s", f->n2[1].url);
    int on_second = tcluster_log_contains(&f->extra, needle, 100);
    tnats_kill(&f->n2[on_second ? 1 : 0]);
    /* the worker reconnects to the other node; calls work again (polled: the reconnection
     * and the interest crossing the cluster take a moment) */
    assert_true(call_until_ok(&c, "add", "\x02\x02", 2, 2, "w5", 200, 50));
    assert_true(tcluster_log_contains(&f->extra, "event=nats.reconnected", 1000));
    rawconn_close(&c);
    assert_int_equal(tdaemon_stop(&f->extra, TDAEMON_STOP_TIMEOUT_MS), 0);
    assert_int_equal(tdaemon_stop(&f->extra2, TDAEMON_STOP_TIMEOUT_MS), 0);
}

/* A CA and a certificate for 127.0.0.1 signed by it, in dir (openssl). Returns 0 or -1. */
static int make_certs(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
             "-subj /CN=daffid-test-ca && "
             "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
             "-subj /CN=127.0.0.1 && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 1 -extfile san.ext", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Starts gateway router (f->extra2, its [server] extra router_extra) and a worker
 * (f->extra) serving calc on NATS servers wurl (its extra worker_extra), and asserts
 * add(20, 22) through them is 42. */
static void gateway_and_worker_add(fixture *f, const char *router, const char *router_extra,
                                   const char *wurl, const char *worker,
                                   const char *worker_extra)
{
    assert_int_equal(tcluster_router_init(&f->extra2, router, router_extra), 0);
    assert_int_equal(tdaemon_start(&f->extra2, NULL), 0);
    assert_int_equal(tcluster_worker_init(&f->extra, wurl, worker, worker_extra), 0);
    assert_int_equal(tdaemon_add_plugin(&f->extra, "calc", NULL), 0);
    assert_int_equal(tcluster_worker_start(&f->extra, f->extra2.tcp, worker, START_MS), 0);
    rawconn c;
    expect_open(&c, f->extra2.tcp);
    expect_send_ii(&c, 1, "add", 20, 22);
    expect_result_int(&c, 1, 42);
    rawconn_close(&c);
}

static void test_tls_to_nats_with_nats_tls_ca(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    char cert[128], key[128], ca[128], url[96], extra[400];
    assert_int_equal(tnats_init(&f->n2[0], 0), 0);
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: openssl is not installed (it makes the test's certificates)\n");
        skip();
    }
    assert_int_equal(make_certs(f->n2[0].dir), 0);
    snprintf(cert, sizeof(cert), "%s/srv.pem", f->n2[0].dir);
    snprintf(key, sizeof(key), "%s/srv.key", f->n2[0].dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", f->n2[0].dir);
    f->n2[0].tls_cert = cert;
    f->n2[0].tls_key = key;
    assert_int_equal(tnats_start(&f->n2[0], NULL), 0);
    snprintf(url, sizeof(url), "tls://127.0.0.1:%d", f->n2[0].port);
    snprintf(extra, sizeof(extra), HB "nats = %s\nnats_tls_ca = %s\n", url, ca);
    /* a worker's router must start with nats:// to be NATS (a lone tls:// is a daffid
     * router over TLS); nats_tls_ca makes libnats insist on TLS */
    char wurl[96], wextra[400];
    snprintf(wurl, sizeof(wurl), "nats://127.0.0.1:%d", f->n2[0].port);
    snprintf(wextra, sizeof(wextra), HB "nats_tls_ca = %s\n", ca);
    gateway_and_worker_add(f, "r5", extra, wurl, "w7", wextra);
    assert_true(tcluster_log_contains(&f->extra2, "url=tls://127.0.0.1", 1000));
    assert_int_equal(tdaemon_stop(&f->extra, TDAEMON_STOP_TIMEOUT_MS), 0);
    assert_int_equal(tdaemon_stop(&f->extra2, TDAEMON_STOP_TIMEOUT_MS), 0);
}

static void test_nats_creds_authenticate_with_a_real_credentials_file(void **state)
{
    fixture *f = *state;
    skip_without_nats(f);
    char conf[160], creds[160], stranger[160], extra[400];
    /* nats-server in operator mode (JWTs made here: no nsc on the machine) */
    assert_int_equal(tnats_init(&f->n2[0], 0), 0);
    assert_int_equal(tnkeys_operator_setup(f->n2[0].dir, 1), 0);
    snprintf(conf, sizeof(conf), "%s/nats.conf", f->n2[0].dir);
    snprintf(creds, sizeof(creds), "%s/user.creds", f->n2[0].dir);
    snprintf(stranger, sizeof(stranger), "%s/stranger.creds", f->n2[0].dir);
    f->n2[0].config = conf;
    assert_int_equal(tnats_start(&f->n2[0], NULL), 0);
    char wextra[400];
    snprintf(extra, sizeof(extra), HB "nats = %s\nnats_creds = %s\n", f->n2[0].url, creds);
    snprintf(wextra, sizeof(wextra), HB "nats_creds = %s\n", creds);
    gateway_and_worker_add(f, "r6", extra, f->n2[0].url, "w12", wextra);
    assert_int_equal(tdaemon_stop(&f->extra, TDAEMON_STOP_TIMEOUT_MS), 0);
    /* a credentials file the server rejects (a user of an account it does not know):
     * the start fails, its log names the file and NATS' error */
    tdaemon_cleanup(&f->extra);
    memset(&f->extra, 0, sizeof(f->extra));
    snprintf(extra, sizeof(extra), HB "nats_creds = %s\n", stranger);
    assert_int_equal(tcluster_worker_init(&f->extra, f->n2[0].url, "w13", extra), 0);
    assert_int_equal(tdaemon_add_plugin(&f->extra, "calc", NULL), 0);
    assert_int_equal(tdaemon_spawn(&f->extra, NULL), 0);
    assert_int_equal(tdaemon_wait_exit(&f->extra, 10000), 1);
    assert_true(WIFEXITED(f->extra.status) && WEXITSTATUS(f->extra.status) != 0);
    char needle[300];
    snprintf(needle, sizeof(needle), "error=\"Authorization Violation\" nats_creds=%s "
             "msg=\"NATS refused the credentials in nats_creds\"", stranger);
    assert_true(tcluster_log_contains(&f->extra, needle, 1000));
    assert_int_equal(tcluster_has_member(f->extra2.tcp, "w13"), 0);
    assert_int_equal(tdaemon_stop(&f->extra2, TDAEMON_STOP_TIMEOUT_MS), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_call_goes_router_nats_worker_and_back),
        T(test_notification_reaches_one_worker),
        T(test_cast_collects_every_member_serving_it),
        T(test_calls_spread_over_the_workers_serving_a_callback),
        T(test_to_reaches_the_member_named),
        T(test_a_plain_nats_requester_gets_its_answer),
        T(test_nobody_serving_is_no_callback_at_once),
        T(test_every_router_lists_the_members_it_learned_over_nats),
        T(test_subscribers_see_nats_members_join_and_leave),
        T(test_a_stream_goes_over_nats_in_order_with_backpressure),
        T(test_a_stream_whose_member_dies_is_aborted),
        T(test_a_stream_in_flight_finishes_when_its_member_drains),
        T(test_a_stream_left_open_ends_at_shutdown_timeout),
        T(test_a_stream_to_nobody_is_no_callback),
        T(test_a_gateway_refuses_native_members),
        T(test_a_call_from_nats_has_its_access_line),
        T(test_status_shows_the_nats_connection),
        T(test_reload_changes_what_the_routers_see),
        T(test_calls_flow_while_reloads_change_the_watched_subscriptions),
        T(test_answers_published_as_the_member_stops_still_go_out),
        T(test_calls_from_nats_count_in_the_workers_memory_budget),
        T(test_worker_killed_mid_call_ends_the_call_and_leaves),
        T(test_one_router_killed_the_other_keeps_serving),
        T(test_a_client_given_two_routers_fails_over_to_the_other),
        T(test_nats_node_killed_clients_fail_over),
        T(test_tls_to_nats_with_nats_tls_ca),
        T(test_nats_creds_authenticate_with_a_real_credentials_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
