/*
 * test_client.c - libdaffi and daffictl against real daffid processes: every call
 * style of the synchronous and asynchronous clients, timeouts, a daffid killed in the
 * middle of a call and restarted, a thousand calls in flight on one connection, the
 * examples built with pkg-config, and daffictl's subcommands.
 *
 * Three groups:
 *   service  one daffid (role=service, calc/echo/fib) shared by its tests; the router
 *            calls must say they need a router there; streams to echo's digest
 *   crash    a fresh daffid per test, killed (SIGKILL) and started again
 *   router   one daffid with role=router and no plugins: clients expose callbacks
 *            through it (daffi.hello) and call, cast, wait and watch each other
 * Upper bounds on times are loose (the suite may share two CPUs with others): they
 * tell "answered" from "hung", not fast from slow.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <msgpack.h>

#include <daffi/client.h>
#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/tstream.h"

#define HANG_MS 5000 /* longer than this is a hang, not slowness */

/* ==== helpers ======================================================================= */

/* Counts state changes of an asynchronous client. */
typedef struct states {
    int up, down;
} states;

static void on_state(daffi_client *c, int connected, const daffi_error *why, void *arg)
{
    states *st = arg;

    (void)c;
    (void)why;
    if (connected)
        st->up++;
    else
        st->down++;
}

/* params [a, b] of two non-negative integers, storage in objs. */
static msgpack_object ints2(msgpack_object objs[2], uint64_t a, uint64_t b)
{
    msgpack_object p;

    objs[0].type = objs[1].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    objs[0].via.u64 = a;
    objs[1].via.u64 = b;
    p.type = MSGPACK_OBJECT_ARRAY;
    p.via.array.size = 2;
    p.via.array.ptr = objs;
    return p;
}

/* params [ms, "str"] for echo_after, storage in objs. */
static msgpack_object echo_after(msgpack_object objs[2], uint64_t ms, const char *s)
{
    msgpack_object p = ints2(objs, ms, 0);

    objs[1].type = MSGPACK_OBJECT_STR;
    objs[1].via.str.ptr = s;
    objs[1].via.str.size = (uint32_t)strlen(s);
    return p;
}

static int is_str(const msgpack_object *o, const char *s)
{
    const char *p;
    size_t len;

    return daffi_obj_str(o, &p, &len) == 0 && len == strlen(s) && memcmp(p, s, len) == 0;
}

static int64_t int_of(const msgpack_object *o)
{
    int64_t v = -1;

    assert_int_equal(daffi_obj_int(o, &v), 0);
    return v;
}

static daffi_client *sync_connect(const char *address, const daffi_client_opts *opts)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_connect(address, opts, &err);

    if (c == NULL)
        fail_msg("connect %s: %s", address, err.message);
    return c;
}

static daffi_client *async_new(struct event_base *base, const char *address,
                               const daffi_client_opts *opts)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_client_new(base, address, opts, &err);

    if (c == NULL)
        fail_msg("daffi_client_new %s: %s", address, err.message);
    return c;
}

/* ==== group: service ================================================================== */

/* The group's daffid comes from tdaemon_group_setup() and goes with
 * tdaemon_group_teardown() (a clean exit required). */

/* rpc, rpc_raw, notify and ping with a synchronous client on address. */
static void sync_styles(const char *address)
{
    daffi_client *c = sync_connect(address, NULL);
    msgpack_object objs[2], params = ints2(objs, 6, 7);
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;
    daffi_result r;
    int64_t rtt;

    assert_int_equal(daffi_rpc(c, "multiply", &params, 2000, &r, &err), 0);
    assert_int_equal(int_of(&r.obj), 42);
    daffi_result_free(&r);
    /* echo returns its argument bit for bit: a float32 stays a float32 */
    assert_int_equal(daffi_rpc_raw(c, "echo", "\x91\xca\x3f\xc0\x00\x00", 6, 2000, &r, &err), 0);
    assert_int_equal(r.raw_len, 5);
    assert_memory_equal(r.raw, "\xca\x3f\xc0\x00\x00", 5);
    daffi_result_free(&r);
    /* rpc_nowait: no answer comes, the connection goes on */
    assert_int_equal(daffi_notify(c, "add", &params, 2000, &err), 0);
    assert_int_equal(daffi_notify(c, "no_such_callback", NULL, 2000, &err), 0);
    assert_int_equal(daffi_ping(c, 2000, &rtt, &err), 0);
    assert_true(rtt >= 0);
    assert_int_equal(daffi_rpc(c, "divide", &params, 2000, &r, &err), 0);
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.notifications, 2);
    assert_int_equal(st.late_replies, 0); /* nothing answered the notifications */
    daffi_close(c);
}

static void test_every_synchronous_call_style_works_against_daffid(void **state)
{
    tdaemon *d = *state;

    sync_styles(d->tcp);
    sync_styles(d->unix_addr);
}

/* rpc, rpc_raw, notify and ping with an asynchronous client on address. */
static void async_styles(const char *address)
{
    struct event_base *base = event_base_new();
    daffi_client *c = async_new(base, address, NULL);
    msgpack_object objs[2], params = ints2(objs, 40, 2);
    tstream_outcome a = {0}, b = {0}, p = {0}, e = {0};

    assert_int_equal(daffi_rpc_async(c, "add", &params, 2000, tstream_collect, &a, NULL), 0);
    assert_int_equal(daffi_notify_async(c, "add", &params, NULL), 0);
    assert_int_equal(daffi_rpc_raw_async(c, "echo", "\x91\xa2hi", 4, 2000,
                                         tstream_collect, &b, NULL), 0);
    assert_int_equal(daffi_ping_async(c, 2000, tstream_collect, &p, NULL), 0);
    params = ints2(objs, 1, 0);
    assert_int_equal(daffi_rpc_async(c, "divide", &params, 2000, tstream_collect, &e, NULL), 0);
    assert_true(tstream_run_until(base, &e.done, 1, HANG_MS));
    assert_true(tstream_run_until(base, &a.done, 1, HANG_MS));
    assert_true(tstream_run_until(base, &b.done, 1, HANG_MS));
    assert_true(tstream_run_until(base, &p.done, 1, HANG_MS));
    assert_true(a.ok);
    assert_int_equal(int_of(&a.res.obj), 42);
    assert_true(is_str(&b.res.obj, "hi"));
    assert_true(is_str(&p.res.obj, "pong"));
    assert_false(e.ok);
    assert_int_equal(e.err.code, DAFFI_E_HANDLER_ERROR);
    assert_non_null(strstr(e.err.message, "division by zero"));
    tstream_outcome_free(&a);
    tstream_outcome_free(&b);
    tstream_outcome_free(&p);
    tstream_outcome_free(&e);
    daffi_close(c);
    event_base_free(base);
}

static void test_every_asynchronous_call_style_works_against_daffid(void **state)
{
    tdaemon *d = *state;

    async_styles(d->tcp);
    async_styles(d->unix_addr);
}

static void test_members_lists_the_service_itself_with_its_callbacks(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp, NULL);
    struct event_base *base = event_base_new();
    daffi_client *ac = async_new(base, d->unix_addr, NULL);
    const msgpack_object *me, *cbs;
    daffi_result r;
    tstream_outcome o = {0};
    size_t i;
    int found = 0;

    assert_int_equal(daffi_members(c, 2000, &r, NULL), 0);
    assert_int_equal(r.obj.via.array.size, 1);
    me = daffi_obj_at(&r.obj, 0);
    cbs = daffi_obj_get(me, "callbacks");
    assert_non_null(daffi_obj_get(me, "name"));
    for (i = 0; cbs != NULL && i < cbs->via.array.size; i++)
        found += is_str(&cbs->via.array.ptr[i], "echo_after") || is_str(&cbs->via.array.ptr[i], "fib");
    assert_int_equal(found, 2);
    daffi_result_free(&r);
    assert_int_equal(daffi_members_async(ac, 2000, tstream_collect, &o, NULL), 0);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_true(o.ok);
    assert_int_equal(o.res.obj.via.array.size, 1);
    tstream_outcome_free(&o);
    daffi_close(ac);
    event_base_free(base);
    daffi_close(c);
}

/* Asserts err is the service's NO_CALLBACK for a control method that needs a router. */
static void assert_needs_router(const daffi_error *err, const char *method)
{
    assert_int_equal(err->code, DAFFI_E_NO_CALLBACK);
    assert_int_equal(err->remote, 1);
    assert_non_null(strstr(err->message, method));
    assert_non_null(strstr(err->message, "needs a router"));
}

static void test_router_calls_on_a_plain_service_answer_that_they_need_a_router(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp, NULL);
    struct event_base *base = event_base_new();
    daffi_client *ac = async_new(base, d->tcp, NULL);
    const char *names[] = {"w1"};
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_outcome cast = {0}, wait = {0}, sub = {0};

    assert_int_equal(daffi_cast(c, "add", NULL, NULL, 0, 500, NULL, &err), -1);
    assert_needs_router(&err, "daffi.cast");
    assert_int_equal(daffi_wait_for_members(c, names, 1, 500, &err), -1);
    assert_needs_router(&err, "daffi.wait");
    /* a notification gets no answer: cast_nowait is sent, the service ignores it */
    assert_int_equal(daffi_cast_nowait(c, "add", NULL, NULL, 0, 500, &err), 0);
    assert_int_equal(daffi_ping(c, 2000, NULL, &err), 0);
    assert_int_equal(daffi_cast_async(ac, "add", NULL, names, 1, 500,
                                      tstream_collect, &cast, NULL), 0);
    assert_int_equal(daffi_wait_for_members_async(ac, names, 1, 500,
                                                  tstream_collect, &wait, NULL), 0);
    assert_int_equal(daffi_subscribe_members_async(ac, NULL, NULL, 500,
                                                   tstream_collect, &sub, &err),
                     -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS); /* an event callback is required */
    assert_true(tstream_run_until(base, &wait.done, 1, HANG_MS));
    assert_true(tstream_run_until(base, &cast.done, 1, HANG_MS));
    assert_needs_router(&cast.err, "daffi.cast");
    assert_needs_router(&wait.err, "daffi.wait");
    tstream_outcome_free(&cast);
    tstream_outcome_free(&wait);
    daffi_error_clear(&err);
    daffi_close(ac);
    event_base_free(base);
    daffi_close(c);
}

static void ignore_event(daffi_client *c, const char *type, const char *member,
                         const msgpack_object *event, void *arg)
{
    (void)c;
    (void)type;
    (void)member;
    (void)event;
    (*(int *)arg)++;
}

static void test_membership_subscription_on_a_plain_service_needs_a_router(void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    daffi_client *ac = async_new(base, d->unix_addr, NULL);
    tstream_outcome sub = {0};
    int events = 0;

    assert_int_equal(daffi_subscribe_members_async(ac, ignore_event, &events, 1000, tstream_collect,
                                                   &sub, NULL), 0);
    assert_true(tstream_run_until(base, &sub.done, 1, HANG_MS));
    assert_needs_router(&sub.err, "daffi.subscribe");
    assert_int_equal(events, 0);
    tstream_outcome_free(&sub);
    daffi_close(ac);
    event_base_free(base);
}

static void test_50ms_timeout_against_echo_after_500_reports_elapsed_and_keeps_the_connection(
    void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp, NULL);
    msgpack_object objs[2], params = echo_after(objs, 500, "late");
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;
    daffi_result r;
    int64_t t0 = expect_now_ms();
    int local;

    assert_int_equal(daffi_rpc(c, "echo_after", &params, 50, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_TIMEOUT);
    /* the deadline went with the call: daffid's own TIMEOUT may come first */
    local = !err.remote;
    assert_true(err.elapsed_ms >= 50);
    assert_true(err.elapsed_ms < 450); /* given up long before the reply */
    assert_true(expect_now_ms() - t0 < 450);
    assert_true(daffi_client_connected(c));
    /* the late "late" arrives while this call waits; it must not be taken for it */
    params = echo_after(objs, 600, "next");
    assert_int_equal(daffi_rpc(c, "echo_after", &params, 5000, &r, &err), 0);
    assert_true(is_str(&r.obj, "next"));
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.timeouts, local);
    assert_int_equal(st.late_replies, local); /* daffid's answer, when it came late */
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_50ms_async_timeout_against_echo_after_500_discards_the_late_reply(
    void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = async_new(base, d->unix_addr, NULL);
    msgpack_object objs[2], params = echo_after(objs, 500, "late");
    tstream_outcome late = {0}, next = {0};
    daffi_client_stats st;

    assert_int_equal(daffi_ping_async(c, 2000, tstream_collect, &next, NULL), 0); /* connected */
    assert_true(tstream_run_until(base, &next.done, 1, HANG_MS));
    tstream_outcome_free(&next);
    assert_int_equal(daffi_rpc_async(c, "echo_after", &params, 50,
                                     tstream_collect, &late, NULL), 0);
    params = echo_after(objs, 600, "next");
    assert_int_equal(daffi_rpc_async(c, "echo_after", &params, 5000,
                                     tstream_collect, &next, NULL), 0);
    assert_true(tstream_run_until(base, &late.done, 1, HANG_MS));
    assert_int_equal(late.err.code, DAFFI_E_TIMEOUT);
    assert_true(late.err.elapsed_ms >= 50);
    assert_true(late.err.elapsed_ms < 450);
    assert_true(tstream_run_until(base, &next.done, 1, HANG_MS));
    assert_true(is_str(&next.res.obj, "next"));
    assert_int_equal(late.done, 1);
    daffi_client_stats_get(c, &st);
    /* the deadline went with the call: daffid answers TIMEOUT itself, which comes
     * late unless it came first */
    assert_int_equal(st.late_replies, late.err.remote ? 0 : 1);
    assert_int_equal(st.timeouts, late.err.remote ? 0 : 1);
    tstream_outcome_free(&late);
    tstream_outcome_free(&next);
    daffi_close(c);
    event_base_free(base);
}

/* One of many concurrent echo calls: it must get back its own number. */
typedef struct echo_check {
    int *done, *wrong;
    uint64_t sent;
} echo_check;

static void echo_checked(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    echo_check *e = arg;
    uint64_t v;

    (void)c;
    (void)err;
    (*e->done)++;
    if (res == NULL || daffi_obj_uint(&res->obj, &v) == -1 || v != e->sent)
        (*e->wrong)++;
}

static void test_a_thousand_concurrent_async_calls_on_one_connection_each_get_their_reply(
    void **state)
{
    enum { N = 1000 };
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = async_new(base, d->tcp, NULL);
    echo_check *checks = calloc(N, sizeof(*checks));
    daffi_client_stats st;
    int done = 0, wrong = 0, i;

    assert_non_null(checks);
    for (i = 0; i < N; i++) {
        msgpack_object one, params;

        one.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        one.via.u64 = 1000003u * (uint64_t)i; /* distinct, of every width */
        params.type = MSGPACK_OBJECT_ARRAY;
        params.via.array.size = 1;
        params.via.array.ptr = &one;
        checks[i].done = &done;
        checks[i].wrong = &wrong;
        checks[i].sent = one.via.u64;
        assert_int_equal(daffi_rpc_async(c, "echo", &params, 10000, echo_checked, &checks[i],
                                         NULL), 0);
    }
    assert_true(tstream_run_until(base, &done, N, 3 * HANG_MS));
    assert_int_equal(wrong, 0);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.calls, N);
    assert_int_equal(st.connects, 1); /* all on one connection */
    assert_int_equal(st.late_replies, 0);
    free(checks);
    daffi_close(c);
    event_base_free(base);
}

static void test_examples_built_with_pkg_config_run_against_daffid(void **state)
{
    tdaemon *d = *state;
    char out[4096];

    assert_int_equal(expect_run(out, sizeof(out), "%s/examples/sync_caller %s 2>&1", d->build,
                                d->tcp), 0);
    assert_non_null(strstr(out, "add(1, 2) = 3"));
    assert_non_null(strstr(out, "divide(1, 0): HANDLER_ERROR (code 4)"));
    assert_non_null(strstr(out, "with a 50 ms timeout: TIMEOUT"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/examples/async_caller %s 2000 2>&1",
                                d->build, d->unix_addr), 0);
    assert_non_null(strstr(out, "completion order: c b a"));
    assert_non_null(strstr(out, "2000 concurrent add calls on one connection: 2000 right, "
                                "0 wrong, 0 failed"));
}

static void test_examples_are_linked_from_the_generated_pkg_config_file(void **state)
{
    tdaemon *d = *state;
    char out[2048];

    assert_int_equal(expect_run(out, sizeof(out), "PKG_CONFIG_PATH=%s pkg-config --cflags --libs "
                                "daffi 2>&1", d->build), 0);
    assert_non_null(strstr(out, "/sdk/include"));
    assert_non_null(strstr(out, "libdaffi.a"));
    assert_int_equal(expect_run(out, sizeof(out), "PKG_CONFIG_PATH=%s PKG_CONFIG_DISABLE_UNINSTALLED"
                                "=1 pkg-config --libs daffi; PKG_CONFIG_PATH=%s "
                                "PKG_CONFIG_DISABLE_UNINSTALLED=1 pkg-config "
                                "--variable=plugindir daffi", d->build, d->build), 0);
    assert_non_null(strstr(out, "-ldaffi"));
    assert_non_null(strstr(out, "/daffid/plugins"));
}

/* libdaffi needs libevent and msgpack-c only: JSON is daffictl's business. */
static void test_libdaffi_needs_no_json_library(void **state)
{
    tdaemon *d = *state;
    char out[4096];

    assert_int_equal(expect_run(out, sizeof(out), "for k in uninstalled disabled; do "
                                "[ $k = disabled ] && export PKG_CONFIG_DISABLE_UNINSTALLED=1; "
                                "PKG_CONFIG_PATH=%s pkg-config --static --libs --print-requires "
                                "--print-requires-private daffi || exit 1; done 2>&1", d->build),
                     0);
    assert_non_null(strstr(out, "msgpack"));
    assert_null(strstr(out, "jansson"));
    assert_int_equal(expect_run(out, sizeof(out), "readelf -d %s/libdaffi.so 2>&1 | grep NEEDED; "
                                "nm -u %s/libdaffi.a 2>&1 | grep ' json_'", d->build, d->build),
                     1); /* grep's status: the last pipeline found nothing */
    assert_non_null(strstr(out, "libmsgpackc"));
    assert_null(strstr(out, "jansson"));
    assert_null(strstr(out, "json_"));
}

static void test_daffictl_members_and_the_router_subcommands_on_a_service(void **state)
{
    tdaemon *d = *state;
    char out[4096];

    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s members 2>&1", d->build,
                                d->tcp), 0);
    assert_non_null(strstr(out, "echo_after"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s --json members 2>&1", d->build,
                                d->tcp), 0);
    assert_non_null(strstr(out, "\"callbacks\":["));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s -t 500 cast add 1 2 2>&1",
                                d->build, d->tcp), 6);
    assert_non_null(strstr(out, "cast needs a router"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s -t 500 wait w1 2>&1", d->build,
                                d->unix_addr), 6);
    assert_non_null(strstr(out, "wait needs a router"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s -t 500 watch 2>&1", d->build,
                                d->tcp), 6);
    assert_non_null(strstr(out, "watch needs a router"));
    assert_int_equal(expect_run(out, sizeof(out), "echo hi | %s/daffictl -s %s stream echo 2>&1",
                                d->build, d->tcp), 5);
    assert_non_null(strstr(out, "not a stream handler"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl help watch 2>&1", d->build), 0);
    assert_non_null(strstr(out, "--count N"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl cast --bogus x 2>&1", d->build), 1);
}

/* A bad option or a missing operand is a usage error (exit 1) that names the option
 * and what it wants, before anything is sent. */
static void test_daffictl_usage_errors_name_the_option_and_what_it_wants(void **state)
{
    static const struct {
        const char *args, *says;
    } bad[] = {
        {"stream --window 0 echo", "--window '0': expected a number from 1 to 1024"},
        {"stream --chunk-size 0 echo", "--chunk-size '0': expected bytes from 1 to 16777216"},
        {"stream --to '' echo", "--to needs a member name"},
        {"cast --to '' add", "--to needs a member name"},
        {"watch --count", "watch: --count needs a number"},
        {"call", "call: missing CALLBACK"},
    };
    tdaemon *d = *state;
    char out[4096];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = expect_run(out, sizeof(out), "%s/daffictl -s %s %s </dev/null 2>&1",
                            d->build, d->tcp, bad[i].args);
        if (rc != 1 || strstr(out, bad[i].says) == NULL)
            fail_msg("daffictl %s: exit %d, expected 1 and \"%s\" in: %s", bad[i].args, rc,
                     bad[i].says, out);
    }
}

/* daffictl finds daffid's admin socket the way daffid was configured: -c DIR's
 * [admin] socket, ./conf.d's when there is one, $DAFFID_ADMIN and -a before them; a
 * failure names where the path came from. */
static void test_daffictl_finds_the_admin_socket_the_way_daffid_was_configured(void **state)
{
    tdaemon d;
    char out[4096], work[64];

    (void)state;
    memset(&d, 0, sizeof(d));
    assert_int_equal(tdaemon_init(&d), 0);
    assert_int_equal(tdaemon_write_file(&d, "05-admin.ini", "[admin]\n; from -c\nsocket = "
                                        "%s/admin.sock ; inline comment\n", d.dir), 0);
    assert_int_equal(tdaemon_start(&d, NULL), 0);
    snprintf(work, sizeof(work), "/tmp/daffictl-conf.XXXXXX");
    assert_non_null(mkdtemp(work));
    assert_int_equal(expect_run(out, sizeof(out), "cd / && %s/daffictl -c %s status 2>&1",
                                d.build, d.dir), 0);
    assert_non_null(strstr(out, "running"));
    /* ./conf.d, as after `make run` in the tree */
    assert_int_equal(expect_run(out, sizeof(out), "cd %s && ln -s %s conf.d && %s/daffictl "
                                "status 2>&1", work, d.dir, d.build), 0);
    assert_non_null(strstr(out, "running"));
    /* $DAFFID_ADMIN comes before the configuration, and the failure says so */
    assert_int_equal(expect_run(out, sizeof(out), "cd %s && DAFFID_ADMIN=%s/nothing %s/daffictl "
                                "status 2>&1", work, work, d.build), 2);
    assert_non_null(strstr(out, "/nothing (from $DAFFID_ADMIN)"));
    /* a configuration without an admin socket, and one that turns it off */
    assert_int_equal(expect_run(out, sizeof(out), "cd / && %s/daffictl -c %s status 2>&1",
                                d.build, work), 2);
    assert_non_null(strstr(out, "no ini file there sets [admin] socket"));
    assert_int_equal(expect_run(out, sizeof(out), "printf '[admin]\\nsocket =\\n' > %s/off.ini; "
                                "cd / && %s/daffictl -c %s status 2>&1", work, d.build, work), 2);
    assert_non_null(strstr(out, "off.ini:2 turns daffid's admin socket off"));
    /* in the tree, its own conf.d names the socket `make run` opens (a daffid of
     * someone else's `make run` may even answer) */
    expect_run(out, sizeof(out), "cd %s/.. && %s/daffictl -t 2000 status 2>&1", d.build, d.build);
    if (strstr(out, "running") == NULL)
        assert_non_null(strstr(out, "(from [admin] socket of conf.d/00-daffid.ini:"));
    expect_run(out, sizeof(out), "rm -rf %s", work);
    assert_int_equal(tdaemon_stop(&d, TDAEMON_STOP_TIMEOUT_MS), 0);
    tdaemon_cleanup(&d);
}

/* --help lists each subcommand once and each exit code with the protocol codes it
 * stands for; -V and -v both print the version, for daffictl and daffid. */
static void test_daffictl_help_lists_members_once_with_exit_codes_beside_protocol_codes(
    void **state)
{
    tdaemon *d = *state;
    char out[8192];

    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl --help | grep -c '^  members '",
                                d->build), 0);
    assert_string_equal(out, "1\n");
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl --help", d->build), 0);
    assert_non_null(strstr(out, "  2   UNAVAILABLE (code 5)"));
    assert_non_null(strstr(out, "  5   BAD_ARGS (code 2)"));
    assert_non_null(strstr(out, "  6   NO_CALLBACK (code 1)"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl help members", d->build), 0);
    assert_non_null(strstr(out, "asks the admin socket instead"));
    for (int i = 0; i < 2; i++) {
        const char *flag = i == 0 ? "-V" : "-v";

        assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl %s", d->build, flag), 0);
        assert_non_null(strstr(out, "daffictl "));
        assert_int_equal(expect_run(out, sizeof(out), "%s/daffid %s", d->build, flag), 0);
        assert_non_null(strstr(out, "daffid "));
    }
}

/* FNV-1a 64 of n bytes at p, continuing from h: what echo's digest computes. */
static uint64_t fnv1a64(uint64_t h, const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t uint_of(const msgpack_object *o)
{
    uint64_t v = 0;

    assert_int_equal(daffi_obj_uint(o, &v), 0);
    return v;
}

static void test_a_stream_delivers_every_chunk_in_order_under_a_small_window(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->unix_addr, NULL);
    daffi_error err = DAFFI_ERROR_INIT;
    unsigned char chunk[777];
    uint64_t h = 14695981039346656037ull;
    daffi_result r;
    daffi_stream *s;
    int i, k;

    s = daffi_stream_open(c, "digest", NULL, NULL, 2, 5000, &err);
    if (s == NULL)
        fail_msg("open: %s", err.message);
    assert_int_equal(daffi_stream_window(s), 2);
    /* 300 chunks through a window of 2: the sender waits for credit again and again */
    for (i = 0; i < 300; i++) {
        for (k = 0; k < (int)sizeof(chunk); k++)
            chunk[k] = (unsigned char)(i * 7 + k);
        h = fnv1a64(h, chunk, sizeof(chunk));
        if (daffi_stream_send_bin(s, chunk, sizeof(chunk), 5000, &err) == -1)
            fail_msg("chunk %d: %s", i, err.message);
    }
    assert_int_equal(daffi_stream_chunks(s), 300);
    assert_int_equal(daffi_stream_end(s, 5000, &r, &err), 0);
    assert_int_equal(uint_of(daffi_obj_get(&r.obj, "chunks")), 300);
    assert_int_equal(uint_of(daffi_obj_get(&r.obj, "bytes")), 300 * sizeof(chunk));
    assert_true(uint_of(daffi_obj_get(&r.obj, "fnv1a64")) == h); /* in order, none lost */
    daffi_result_free(&r);
    daffi_close(c);
}

static void test_a_stream_whose_handler_fails_a_chunk_ends_with_that_error(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp, NULL);
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object seven = {MSGPACK_OBJECT_POSITIVE_INTEGER, {.u64 = 7}};
    daffi_stream *s = daffi_stream_open(c, "digest", NULL, NULL, 0, 5000, &err);

    assert_non_null(s);
    assert_int_equal(daffi_stream_send(s, &seven, 5000, &err), 0); /* not bin: refused */
    assert_int_equal(daffi_stream_send_bin(s, "ok", 2, 5000, &err), 0);
    assert_int_equal(daffi_stream_end(s, 5000, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "chunk 0"));
    /* the connection goes on */
    assert_int_equal(daffi_ping(c, 2000, NULL, &err), 0);
    daffi_close(c);
}

static void test_a_stream_to_a_callback_that_is_no_stream_handler_is_bad_args(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp, NULL);
    struct event_base *base = event_base_new();
    daffi_client *ac = async_new(base, d->tcp, NULL);
    daffi_error err = DAFFI_ERROR_INIT;

    assert_null(daffi_stream_open(c, "echo", NULL, NULL, 0, 5000, &err));
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(err.remote, 1);
    assert_null(daffi_stream_open(c, "no_such", NULL, NULL, 0, 5000, &err));
    assert_int_equal(err.code, DAFFI_E_NO_CALLBACK);
    assert_null(daffi_stream_open(ac, "digest", NULL, NULL, 0, 5000, &err));
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS); /* streams: a synchronous client */
    daffi_error_clear(&err);
    daffi_close(ac);
    event_base_free(base);
    daffi_close(c);
}

static void test_daffictl_stream_sends_stdin_to_a_stream_handler(void **state)
{
    tdaemon *d = *state;
    char out[1024];

    assert_int_equal(expect_run(out, sizeof(out), "head -c 300000 /dev/zero | %s/daffictl -s %s "
                                "stream --window 2 --chunk-size 1000 digest 2>&1", d->build,
                                d->unix_addr), 0);
    assert_non_null(strstr(out, "\"chunks\":300,\"bytes\":300000"));
}

/* ==== group: crash (a daffid per test) ================================================= */

/* Each test's daffid comes from tdaemon_group_setup(), run as a per-test setup. */
static int crash_teardown(void **state)
{
    tdaemon *d = *state;

    tdaemon_cleanup(d); /* it may have been killed: no clean-stop check */
    free(d);
    return 0;
}

/* Kills daffid (SIGKILL) and reaps it. */
static void kill_daffid(tdaemon *d)
{
    assert_int_equal(tdaemon_signal(d, SIGKILL), 0);
    assert_int_equal(tdaemon_wait_exit(d, HANG_MS), 1);
}

static void test_daffid_killed_mid_call_fails_the_sync_call_unavailable_not_a_hang(
    void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp, NULL);
    msgpack_object objs[2], params = echo_after(objs, 30000, "never");
    daffi_error err = DAFFI_ERROR_INIT;
    pid_t killer, victim = d->pid;
    int64_t t0 = expect_now_ms();

    killer = fork();
    assert_true(killer != -1);
    if (killer == 0) {
        struct timespec ts = {0, 200000000};

        nanosleep(&ts, NULL);
        kill(victim, SIGKILL);
        _exit(0);
    }
    alarm(20); /* a hang fails the run instead of blocking it */
    assert_int_equal(daffi_rpc(c, "echo_after", &params, 0, NULL, &err), -1); /* no timeout */
    alarm(0);
    waitpid(killer, NULL, 0);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_true(expect_now_ms() - t0 < HANG_MS);
    assert_true(err.elapsed_ms >= 150);
    assert_false(daffi_client_connected(c));
    assert_int_equal(tdaemon_wait_exit(d, HANG_MS), 1);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_daffid_killed_mid_call_fails_every_async_call_in_flight_at_once(void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = async_new(base, d->unix_addr, NULL);
    msgpack_object objs[2], params = echo_after(objs, 30000, "never");
    tstream_outcome o[3] = {{0}};
    int64_t t0;
    int i;

    for (i = 0; i < 3; i++)
        assert_int_equal(daffi_rpc_async(c, "echo_after", &params, 0,
                                         tstream_collect, &o[i], NULL), 0);
    {
        tstream_outcome ping = {0};

        assert_int_equal(daffi_ping_async(c, 2000, tstream_collect, &ping, NULL), 0);
        assert_true(tstream_run_until(base, &ping.done, 1, HANG_MS)); /* the calls are in */
        tstream_outcome_free(&ping);
    }
    t0 = expect_now_ms();
    kill_daffid(d);
    for (i = 0; i < 3; i++) {
        assert_true(tstream_run_until(base, &o[i].done, 1, HANG_MS));
        assert_int_equal(o[i].err.code, DAFFI_E_UNAVAILABLE);
        tstream_outcome_free(&o[i]);
    }
    assert_true(expect_now_ms() - t0 < HANG_MS);
    daffi_close(c);
    event_base_free(base);
}

static void test_a_stream_dies_with_its_connection_and_says_so(void **state)
{
    tdaemon *d = *state;
    daffi_client_opts opts = {0};
    daffi_client *c;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_stream *s;
    int i, rc = 0;

    opts.reconnect_ms = 50;
    c = sync_connect(d->tcp, &opts);
    s = daffi_stream_open(c, "digest", NULL, NULL, 4, 5000, &err);
    assert_non_null(s);
    assert_int_equal(daffi_stream_send_bin(s, "a", 1, 5000, &err), 0);
    kill_daffid(d);
    /* the first sends may still fit the socket; the stream then learns of the drop */
    for (i = 0; i < 50 && rc == 0; i++)
        rc = daffi_stream_send_bin(s, "b", 1, 2000, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(tdaemon_start(d, NULL), 0);
    /* the client reconnects for its next call; the stream stays dead */
    assert_int_equal(daffi_ping(c, 5000, NULL, &err), 0);
    assert_int_equal(daffi_stream_send_bin(s, "c", 1, 2000, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(daffi_stream_end(s, 2000, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_daffid_restarted_the_async_client_reconnects_and_the_next_call_succeeds(
    void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    daffi_client_opts opts = {0};
    daffi_client *c;
    msgpack_object objs[2], params = ints2(objs, 20, 22);
    daffi_client_stats st;
    states s = {0, 0};
    tstream_outcome o = {0};

    opts.reconnect_ms = 50;
    opts.reconnect_max_ms = 200;
    c = async_new(base, d->tcp, &opts);
    daffi_client_on_state(c, on_state, &s);
    assert_true(tstream_run_until(base, &s.up, 1, HANG_MS));
    kill_daffid(d);
    assert_true(tstream_run_until(base, &s.down, 1, HANG_MS));
    assert_int_equal(tdaemon_start(d, NULL), 0);
    assert_true(tstream_run_until(base, &s.up, 2, HANG_MS));
    assert_int_equal(daffi_rpc_async(c, "add", &params, 2000, tstream_collect, &o, NULL), 0);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_true(o.ok);
    assert_int_equal(int_of(&o.res.obj), 42);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.connects, 2);
    tstream_outcome_free(&o);
    daffi_close(c);
    event_base_free(base);
}

/* Starts the tdaemon again from the loop. */
static void restart_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tdaemon_start(arg, NULL);
}

static void test_a_call_made_while_daffid_is_down_waits_for_it_to_come_back(void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    daffi_client_opts opts = {0};
    daffi_client *c;
    msgpack_object objs[2], params = ints2(objs, 1, 2);
    struct timeval tv = {0, 300000};
    struct event *later;
    states s = {0, 0};
    tstream_outcome o = {0};

    opts.reconnect_ms = 50;
    opts.reconnect_max_ms = 100;
    c = async_new(base, d->unix_addr, &opts);
    daffi_client_on_state(c, on_state, &s);
    assert_true(tstream_run_until(base, &s.up, 1, HANG_MS));
    kill_daffid(d);
    assert_true(tstream_run_until(base, &s.down, 1, HANG_MS));
    assert_int_equal(daffi_rpc_async(c, "add", &params, 10000, tstream_collect, &o, NULL), 0);
    later = evtimer_new(base, restart_later, d);
    evtimer_add(later, &tv);
    assert_true(tstream_run_until(base, &o.done, 1, 2 * HANG_MS));
    if (!o.ok)
        fail_msg("%s", o.err.message);
    assert_int_equal(int_of(&o.res.obj), 3);
    event_free(later);
    tstream_outcome_free(&o);
    daffi_close(c);
    event_base_free(base);
}

static void test_daffid_restarted_the_sync_client_reconnects_within_the_next_call(
    void **state)
{
    tdaemon *d = *state;
    daffi_client_opts opts = {0};
    daffi_client *c;
    msgpack_object objs[2], params = ints2(objs, 2, 3);
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;
    daffi_result r;

    opts.reconnect_ms = 50;
    c = sync_connect(d->tcp, &opts);
    assert_int_equal(daffi_rpc(c, "add", &params, 2000, &r, &err), 0);
    daffi_result_free(&r);
    kill_daffid(d);
    assert_int_equal(tdaemon_start(d, NULL), 0);
    /* the old connection is dead; the call notices before sending, reconnects, succeeds */
    assert_int_equal(daffi_rpc(c, "add", &params, 5000, &r, &err), 0);
    assert_int_equal(int_of(&r.obj), 5);
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.connects, 2);
    daffi_close(c);
}

/* ==== group: router ==================================================================== */

static int router_setup(void **state)
{
    static const char *const overrides[] = {"server.role=router", "server.name=rtr", NULL};
    tdaemon *d = calloc(1, sizeof(*d));

    if (d == NULL || tdaemon_init(d) == -1 || tdaemon_start(d, overrides) == -1) {
        if (d != NULL)
            tdaemon_cleanup(d);
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* Per-test teardown: a closed member's connection ends on the router's loop a moment
 * after daffi_close() returns, and with duplicate = reject the next test's hello under
 * the same name would be DENIED meanwhile. Waits until the router dropped them all. */
static int members_gone(void **state)
{
    static const char *const names[] = {"m1", "m2", "m3"};
    tdaemon *d = *state;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (tcluster_wait_gone(d->tcp, names[i], 5000) == -1)
            return -1;
    return 0;
}

/* mul(a, b) -> a * b. */
static daffi_status cb_mul(daffi_call *call)
{
    int64_t a, b;

    if (daffi_arg_int(call, 0, &a) == -1 || daffi_arg_int(call, 1, &b) == -1) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "mul takes two integers");
        return DAFFI_DONE;
    }
    daffi_reply_int(call, a * b);
    return DAFFI_DONE;
}

/* whoami() -> the state string given to daffi_client_expose(). */
static daffi_status cb_whoami(daffi_call *call)
{
    daffi_reply_cstr(call, daffi_call_state(call));
    return DAFFI_DONE;
}

static const daffi_callback_def member_callbacks[] = {
    {"mul", cb_mul, 0, NULL},
    {"whoami", cb_whoami, 0, NULL},
    {NULL, NULL, 0, NULL},
};

/* A member: an asynchronous client named name exposing member_callbacks on base,
 * announced (the router answered its hello) when this returns. */
static daffi_client *member_new(struct event_base *base, const char *address, const char *name,
                                tstream_outcome *ann)
{
    daffi_client_opts opts = {0};
    daffi_client *c;
    daffi_error err = DAFFI_ERROR_INIT;

    opts.name = name;
    c = async_new(base, address, &opts);
    if (daffi_client_expose(c, member_callbacks, (void *)name, tstream_collect, ann, &err) == -1)
        fail_msg("expose: %s", err.message);
    assert_true(tstream_run_until(base, &ann->done, 1, HANG_MS));
    if (!ann->ok)
        fail_msg("hello: %s", ann->err.message);
    return c;
}

/* A synchronous caller in another thread would block the members' loop: the calls
 * through the router are made asynchronously on the same loop instead. */
static void test_a_client_exposed_callback_is_called_by_another_client_through_the_router(
    void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    tstream_outcome ann = {0}, o = {0}, bad = {0};
    daffi_client *m = member_new(base, d->tcp, "m1", &ann);
    daffi_client *caller = async_new(base, d->unix_addr, NULL);
    msgpack_object objs[2], params = ints2(objs, 6, 7);
    daffi_client_stats st;

    assert_int_equal(daffi_rpc_async(caller, "mul", &params, 2000, tstream_collect, &o, NULL), 0);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    if (!o.ok)
        fail_msg("mul through the router: %s", o.err.message);
    assert_int_equal(int_of(&o.res.obj), 42);
    /* the handler's error travels back through the router unchanged */
    assert_int_equal(daffi_rpc_raw_async(caller, "mul", "\x91\xa1x", 3, 2000, tstream_collect, &bad,
                                         NULL), 0);
    assert_true(tstream_run_until(base, &bad.done, 1, HANG_MS));
    assert_int_equal(bad.err.code, DAFFI_E_BAD_ARGS);
    daffi_client_stats_get(m, &st);
    assert_int_equal(st.requests_served, 2);
    tstream_outcome_free(&ann);
    tstream_outcome_free(&o);
    tstream_outcome_free(&bad);
    daffi_close(caller);
    daffi_close(m);
    event_base_free(base);
}

static void test_members_wait_and_cast_through_the_router_see_the_exposing_clients(
    void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    tstream_outcome a1 = {0}, a2 = {0}, mem = {0}, wt = {0}, cast = {0};
    daffi_client *m1 = member_new(base, d->tcp, "m1", &a1);
    daffi_client *m2 = member_new(base, d->unix_addr, "m2", &a2);
    daffi_client *caller = async_new(base, d->tcp, NULL);
    const char *both[] = {"m1", "m2"};
    const msgpack_object *e1, *e2;

    assert_int_equal(daffi_members_async(caller, 2000, tstream_collect, &mem, NULL), 0);
    assert_true(tstream_run_until(base, &mem.done, 1, HANG_MS));
    assert_true(mem.ok);
    assert_int_equal(mem.res.obj.via.array.size, 2);
    assert_int_equal(daffi_wait_for_members_async(caller, both, 2, 1000,
                                                  tstream_collect, &wt, NULL), 0);
    assert_true(tstream_run_until(base, &wt.done, 1, HANG_MS));
    if (!wt.ok)
        fail_msg("wait: %s", wt.err.message);
    assert_int_equal(daffi_cast_async(caller, "whoami", NULL, NULL, 0, 2000, tstream_collect, &cast,
                                      NULL), 0);
    assert_true(tstream_run_until(base, &cast.done, 1, HANG_MS));
    if (!cast.ok)
        fail_msg("cast: %s", cast.err.message);
    e1 = daffi_obj_get(&cast.res.obj, "m1");
    e2 = daffi_obj_get(&cast.res.obj, "m2");
    assert_non_null(e1);
    assert_non_null(e2);
    assert_true(is_str(daffi_obj_at(e1, 1), "m1"));
    assert_true(is_str(daffi_obj_at(e2, 1), "m2"));
    tstream_outcome_free(&a1);
    tstream_outcome_free(&a2);
    tstream_outcome_free(&mem);
    tstream_outcome_free(&wt);
    tstream_outcome_free(&cast);
    daffi_close(caller);
    daffi_close(m1);
    daffi_close(m2);
    event_base_free(base);
}

static void test_wait_for_a_member_that_never_comes_times_out_naming_it(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp, NULL);
    const char *names[] = {"ghost"};
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_wait_for_members(c, names, 1, 200, &err), -1);
    assert_int_equal(err.code, DAFFI_E_TIMEOUT);
    assert_int_equal(err.remote, 1); /* the router's answer, within the grace */
    assert_non_null(strstr(err.message, "ghost"));
    daffi_error_clear(&err);
    daffi_close(c);
}

/* Records membership events as "type member". */
typedef struct seen {
    int n;
    char text[8][64];
} seen;

static void record_event(daffi_client *c, const char *type, const char *member,
                         const msgpack_object *event, void *arg)
{
    seen *s = arg;

    (void)c;
    (void)event;
    if (s->n < 8)
        snprintf(s->text[s->n], sizeof(s->text[0]), "%s %s", type, member);
    s->n++;
}

static void test_membership_events_tell_when_an_exposing_client_joins_and_leaves(
    void **state)
{
    tdaemon *d = *state;
    struct event_base *base = event_base_new();
    daffi_client *watcher = async_new(base, d->tcp, NULL);
    tstream_outcome sub = {0}, ann = {0};
    daffi_client *m;
    seen s = {0};

    assert_int_equal(daffi_subscribe_members_async(watcher, record_event, &s, 2000, tstream_collect,
                                                   &sub, NULL), 0);
    assert_true(tstream_run_until(base, &sub.done, 1, HANG_MS));
    if (!sub.ok)
        fail_msg("subscribe: %s", sub.err.message);
    m = member_new(base, d->unix_addr, "m3", &ann);
    assert_true(tstream_run_until(base, &s.n, 1, HANG_MS));
    assert_string_equal(s.text[0], "joined m3");
    daffi_close(m);
    assert_true(tstream_run_until(base, &s.n, 2, HANG_MS));
    assert_string_equal(s.text[1], "left m3");
    tstream_outcome_free(&sub);
    tstream_outcome_free(&ann);
    daffi_close(watcher);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest service[] = {
        cmocka_unit_test(test_every_synchronous_call_style_works_against_daffid),
        cmocka_unit_test(test_every_asynchronous_call_style_works_against_daffid),
        cmocka_unit_test(test_members_lists_the_service_itself_with_its_callbacks),
        cmocka_unit_test(test_router_calls_on_a_plain_service_answer_that_they_need_a_router),
        cmocka_unit_test(test_membership_subscription_on_a_plain_service_needs_a_router),
        cmocka_unit_test(
            test_50ms_timeout_against_echo_after_500_reports_elapsed_and_keeps_the_connection),
        cmocka_unit_test(test_50ms_async_timeout_against_echo_after_500_discards_the_late_reply),
        cmocka_unit_test(
            test_a_thousand_concurrent_async_calls_on_one_connection_each_get_their_reply),
        cmocka_unit_test(test_examples_built_with_pkg_config_run_against_daffid),
        cmocka_unit_test(test_examples_are_linked_from_the_generated_pkg_config_file),
        cmocka_unit_test(test_libdaffi_needs_no_json_library),
        cmocka_unit_test(test_daffictl_members_and_the_router_subcommands_on_a_service),
        cmocka_unit_test(test_daffictl_usage_errors_name_the_option_and_what_it_wants),
        cmocka_unit_test(test_daffictl_finds_the_admin_socket_the_way_daffid_was_configured),
        cmocka_unit_test(
            test_daffictl_help_lists_members_once_with_exit_codes_beside_protocol_codes),
        cmocka_unit_test(test_a_stream_delivers_every_chunk_in_order_under_a_small_window),
        cmocka_unit_test(test_a_stream_whose_handler_fails_a_chunk_ends_with_that_error),
        cmocka_unit_test(test_a_stream_to_a_callback_that_is_no_stream_handler_is_bad_args),
        cmocka_unit_test(test_daffictl_stream_sends_stdin_to_a_stream_handler),
    };
    const struct CMUnitTest crash[] = {
#define CRASH(t) cmocka_unit_test_setup_teardown(t, tdaemon_group_setup, crash_teardown)
        CRASH(test_daffid_killed_mid_call_fails_the_sync_call_unavailable_not_a_hang),
        CRASH(test_daffid_killed_mid_call_fails_every_async_call_in_flight_at_once),
        CRASH(test_a_stream_dies_with_its_connection_and_says_so),
        CRASH(test_daffid_restarted_the_async_client_reconnects_and_the_next_call_succeeds),
        CRASH(test_a_call_made_while_daffid_is_down_waits_for_it_to_come_back),
        CRASH(test_daffid_restarted_the_sync_client_reconnects_within_the_next_call),
#undef CRASH
    };
    const struct CMUnitTest router[] = {
#define MEMBERS(t) cmocka_unit_test_teardown(t, members_gone)
        MEMBERS(test_a_client_exposed_callback_is_called_by_another_client_through_the_router),
        MEMBERS(test_members_wait_and_cast_through_the_router_see_the_exposing_clients),
        MEMBERS(test_wait_for_a_member_that_never_comes_times_out_naming_it),
        MEMBERS(test_membership_events_tell_when_an_exposing_client_joins_and_leaves),
#undef MEMBERS
    };
    int failed = 0;

    signal(SIGPIPE, SIG_IGN);
    failed += cmocka_run_group_tests_name("client against a service", service,
                                          tdaemon_group_setup, tdaemon_group_teardown);
    failed += cmocka_run_group_tests_name("client when daffid dies", crash, NULL, NULL);
    failed += cmocka_run_group_tests_name("client through a router", router, router_setup,
                                          tdaemon_group_teardown);
    return failed == 0 ? 0 : 1;
}
