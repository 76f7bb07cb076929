/*
 * test_plugin_sdk.c - the plugin SDK (<daffi/plugin.h>) as plugin authors use it, through
 * real daffid processes: a C++ plugin, errors with details, a handler that calls
 * another member through the router, handlers linked into a client program (the host
 * functions outside daffid), and every public header compiling on its own as C99 and
 * as C++.
 *
 * Groups:
 *   service  one daffid (role=service) with the fixtures cxx_plugin and details
 *   router   a router "hub" (calc loaded, so it is a member itself) and a worker "w1"
 *            with the relay fixture configured to call back through the hub
 * Upper bounds on times are loose: they tell "answered" from "hung".
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <msgpack.h>

#include <daffi/client.h>
#include <daffi/plugin.h>
#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/tstream.h"

#define HANG_MS 5000 /* longer than this is a hang, not slowness */

/* ==== helpers ======================================================================= */

/* Declares fixture NAME ($BUILD/tests/fixtures/NAME.so) in d's dir, extra appended
 * (a [config] section, more keys). Returns 0 or -1. */
static int add_fixture(tdaemon *d, const char *name, const char *extra)
{
    char file[96];

    snprintf(file, sizeof(file), "10-%s.ini", name);
    return tdaemon_write_file(d, file, "[plugin]\nname = %s\npath = %s/tests/fixtures/%s.so\n%s",
                              name, d->build, name, extra != NULL ? extra : "");
}

/* Makes *p the params array of the n objects at objs. */
static msgpack_object params_of(msgpack_object *objs, uint32_t n)
{
    msgpack_object p;

    p.type = MSGPACK_OBJECT_ARRAY;
    p.via.array.size = n;
    p.via.array.ptr = objs;
    return p;
}

static void set_str(msgpack_object *o, const char *s)
{
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = s;
    o->via.str.size = (uint32_t)strlen(s);
}

static void set_int(msgpack_object *o, int64_t v)
{
    o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
    if (v < 0)
        o->via.i64 = v;
    else
        o->via.u64 = (uint64_t)v;
}

static int is_str(const msgpack_object *o, const char *s)
{
    const char *p;
    size_t len;

    return o != NULL && daffi_obj_str(o, &p, &len) == 0 && len == strlen(s) &&
           memcmp(p, s, len) == 0;
}

static daffi_client *sync_connect(const char *address)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_connect(address, NULL, &err);

    if (c == NULL)
        fail_msg("connect %s: %s", address, err.message);
    return c;
}

/* ==== no daemon: the headers ============================================================ */

/* Every public header compiles on its own, as C99 and as C++11, pedantic and without
 * a warning (a C++ plugin or caller includes them too). */
static void test_every_public_header_compiles_alone_as_c99_and_as_cxx(void **state)
{
    char out[8192];
    int rc;

    (void)state;
    rc = expect_run(out, sizeof(out),
                    "n=0; for h in sdk/include/daffi/*.h; do n=$((n+1)); "
                    "cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -Isdk/include "
                    "$(pkg-config --cflags msgpack libevent_core) -x c $h || exit 1; "
                    "g++ -std=c++11 -Wall -Wextra -Werror -pedantic -fsyntax-only -Isdk/include "
                    "$(pkg-config --cflags msgpack libevent_core) -x c++ $h || exit 2; done; "
                    "echo headers: $n 2>&1");
    if (rc != 0)
        fail_msg("a header does not compile (%s): %s", rc == 1 ? "C99" : "C++", out);
    assert_non_null(strstr(out, "headers: "));
    assert_null(strstr(out, "headers: 0"));
}

/* ==== group: service ================================================================== */

static int service_setup(void **state)
{
    tdaemon *d = calloc(1, sizeof(*d));

    if (d == NULL || tdaemon_init(d) == -1 ||
        add_fixture(d, "cxx_plugin", "[config]\nprefix = P:\n") == -1 ||
        add_fixture(d, "details", NULL) == -1 ||
        tdaemon_start(d, NULL) == -1) {
        if (d != NULL)
            tdaemon_cleanup(d);
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* The C++ fixture (DAFFI_PLUGIN compiled by g++ -fvisibility=hidden) loads into
 * daffid, and its handlers run: its state from init, std:: containers, an exception
 * turned into the call's error. */
static void test_a_cxx_plugin_is_loaded_by_daffid_and_its_callbacks_answer(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object objs[3];
    msgpack_object params;
    daffi_result r;
    int64_t sum;

    set_str(&objs[0], "abc");
    params = params_of(objs, 1);
    if (daffi_rpc(c, "cxx_upper", &params, HANG_MS, &r, &err) == -1)
        fail_msg("cxx_upper: %s", err.message);
    assert_true(is_str(&r.obj, "P:ABC"));
    daffi_result_free(&r);
    set_int(&objs[0], 1);
    set_int(&objs[1], -2);
    set_int(&objs[2], 40);
    params = params_of(objs, 3);
    assert_int_equal(daffi_rpc(c, "cxx_sum", &params, HANG_MS, &r, &err), 0);
    assert_int_equal(daffi_obj_int(&r.obj, &sum), 0);
    assert_int_equal(sum, 39);
    daffi_result_free(&r);
    set_str(&objs[0], "thrown");
    params = params_of(objs, 1);
    assert_int_equal(daffi_rpc(c, "cxx_throw", &params, HANG_MS, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_HANDLER_ERROR);
    assert_string_equal(err.message, "thrown");
    assert_true(is_str(daffi_obj_get(&err.details, "type"), "std::runtime_error"));
    daffi_error_clear(&err);
    daffi_close(c);
}

/* Asserts err is the details fixture's error for type with traceback trace. */
static void assert_details(const daffi_error *err, const char *message, const char *type,
                           const char *trace)
{
    int64_t line;

    assert_int_equal(err->code, DAFFI_E_HANDLER_ERROR);
    assert_int_equal(err->remote, 1);
    assert_string_equal(err->message, message);
    assert_int_equal(err->details.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(err->details.via.map.size, 3);
    assert_true(is_str(daffi_obj_get(&err->details, "type"), type));
    assert_true(is_str(daffi_obj_at(daffi_obj_get(&err->details, "traceback"), 0), trace));
    assert_int_equal(daffi_obj_int(daffi_obj_get(&err->details, "line"), &line), 0);
    assert_int_equal(line, 42);
}

/* A handler's details map travels as [code, message, details] and the client library
 * hands it over as daffi_error.details, for a call answered at once and for one
 * answered later (pending). */
static void test_an_error_with_details_reaches_the_client_with_its_map(void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->unix_addr);
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object objs[2];
    msgpack_object params;

    set_str(&objs[0], "ValueError");
    set_str(&objs[1], "  File \"x.py\", line 42");
    params = params_of(objs, 2);
    assert_int_equal(daffi_rpc(c, "fail_with_details", &params, HANG_MS, NULL, &err), -1);
    assert_details(&err, "failed: ValueError", "ValueError", "  File \"x.py\", line 42");
    set_int(&objs[0], 20);
    set_str(&objs[1], "KeyError");
    assert_int_equal(daffi_rpc(c, "fail_later", &params, HANG_MS, NULL, &err), -1);
    assert_details(&err, "failed later", "KeyError", "timer");
    daffi_error_clear(&err);
    daffi_close(c);
}

/* Details that are not one map never make the response malformed: they are dropped,
 * the message says so, and the connection goes on. A reply after the details
 * replaces the error. */
static void test_details_that_are_not_one_map_are_dropped_and_the_message_says_so(
    void **state)
{
    tdaemon *d = *state;
    daffi_client *c = sync_connect(d->tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result r;

    assert_int_equal(daffi_rpc(c, "fail_bad_details", NULL, HANG_MS, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_HANDLER_ERROR);
    assert_string_equal(err.message, "bad details [details dropped: not one map]");
    assert_int_equal(err.details.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(daffi_rpc(c, "details_then_result", NULL, HANG_MS, &r, &err), 0);
    assert_true(is_str(&r.obj, "result wins"));
    daffi_result_free(&r);
    assert_true(daffi_client_connected(c));
    daffi_close(c);
}

/* daffictl prints the details under the error, as JSON. */
static void test_daffictl_prints_an_errors_details_as_json(void **state)
{
    tdaemon *d = *state;
    char out[2048];

    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s call fail_with_details "
                                "TypeError tb 2>&1", d->build, d->tcp), 4);
    assert_non_null(strstr(out, "HANDLER_ERROR (code 4): failed: TypeError\n"));
    assert_non_null(strstr(out, "details: {\"type\":\"TypeError\",\"traceback\":[\"tb\"],"
                                "\"line\":42}"));
}

/* ==== group: router ================================================================= */

/* The router "hub" (with calc: itself a member) and the worker "w1". */
typedef struct router_fx {
    tdaemon hub;
    tdaemon w1;
} router_fx;

/* Declares the relay fixture in d as member name, calling through the router at
 * router. Returns 0 or -1. */
static int add_relay(tdaemon *d, const char *router, const char *name)
{
    char extra[256];

    snprintf(extra, sizeof(extra), "[config]\nrouter = %s\nname = %s\n", router, name);
    return add_fixture(d, "relay", extra);
}

static int router_setup(void **state)
{
    router_fx *f = tcluster_fixture_new(state, sizeof(router_fx));

    if (f == NULL || tcluster_router_init(&f->hub, "hub", NULL) == -1 ||
        tdaemon_add_plugin(&f->hub, "calc", NULL) == -1 ||
        add_relay(&f->hub, f->hub.tcp, "hub") == -1 || add_fixture(&f->hub, "details", NULL) == -1 ||
        tdaemon_start(&f->hub, NULL) == -1)
        return -1;
    if (tcluster_worker_init(&f->w1, f->hub.tcp, "w1", NULL) == -1 ||
        add_relay(&f->w1, f->hub.unix_addr, "w1") == -1 || add_fixture(&f->w1, "details", NULL) == -1 ||
        tcluster_worker_start(&f->w1, f->hub.tcp, "w1", HANG_MS) == -1)
        return -1;
    return 0;
}

static int router_teardown(void **state)
{
    router_fx *f = *state;

    return tcluster_fixture_free(f, &f->w1, &f->hub);
}

/* A handler written for a plugin, run by a client program: it uses the host functions,
 * which libdaffi provides outside daffid. */
static daffi_status cb_hostless(daffi_call *call)
{
    const daffi_host *host = daffi_call_host(call);
    msgpack_packer *pk;

    daffi_log(host, DAFFI_LOG_WARN, "hostless handler ran (%d)", 7);
    daffi_log(host, DAFFI_LOG_DEBUG, "not shown");
    pk = daffi_reply_packer(call);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, host == NULL);
    msgpack_pack_int(pk, daffi_config_get(host, "anything") == NULL);
    msgpack_pack_uint64(pk, daffi_config_count(host));
    return DAFFI_DONE;
}

/* Outside daffid, a handler's host functions link (libdaffi has them) and do the sane
 * thing: no [config], daffi_log to stderr (info and above). */
static void test_a_plugin_handler_linked_into_a_client_finds_no_config_and_logs_to_stderr(
    void **state)
{
    static const daffi_callback_def defs[] = {{"hostless", cb_hostless, 0, NULL},
                                              {NULL, NULL, 0, NULL}};
    router_fx *f = *state;
    struct event_base *base = event_base_new();
    daffi_client_opts opts = {0};
    tstream_outcome ann = {0}, o = {0};
    daffi_client *m, *caller;
    char logpath[256], text[512];
    int saved, fd;
    int64_t v;

    /* the handler's stderr goes to a file for the test to read */
    snprintf(logpath, sizeof(logpath), "%s/hostless.log", f->hub.dir);
    fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd != -1);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    opts.name = "hostless-member";
    m = daffi_client_new(base, f->hub.tcp, &opts, NULL);
    assert_non_null(m);
    assert_int_equal(daffi_client_expose(m, defs, NULL, tstream_collect, &ann, NULL), 0);
    assert_true(tstream_run_until(base, &ann.done, 1, HANG_MS));
    caller = tstream_client_new(base, f->hub.unix_addr);
    assert_int_equal(daffi_rpc_async(caller, "hostless", NULL, HANG_MS, tstream_collect, &o,
                                     NULL), 0);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    if (!o.ok)
        fail_msg("hostless: %s", o.err.message);
    for (uint32_t i = 0; i < 2; i++) {
        assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, i), &v), 0);
        assert_int_equal(v, 1);
    }
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 2), &v), 0);
    assert_int_equal(v, 0);
    fd = open(logpath, O_RDONLY);
    assert_true(fd != -1);
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    assert_non_null(strstr(text, "daffi: warn: hostless handler ran (7)\n"));
    assert_null(strstr(text, "not shown"));
    tstream_outcome_free(&ann);
    tstream_outcome_free(&o);
    daffi_close(caller);
    daffi_close(m);
    event_base_free(base);
    assert_int_equal(tcluster_wait_gone(f->hub.tcp, "hostless-member", HANG_MS), 0);
}

/* A handler calls another member through the router (libdaffi's asynchronous client
 * on daffi_call_loop) and replies with its outcome: a result, a named member's
 * result, an error with its details, NO_CALLBACK. */
static void test_a_handler_calls_another_member_through_the_router_and_replies_with_it(
    void **state)
{
    router_fx *f = *state;
    daffi_client *c = sync_connect(f->hub.tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    msgpack_object objs[4];
    msgpack_object params;
    daffi_result r;
    int64_t v;
    daffi_rpc_opts opts = {"w1", HANG_MS};

    /* w1's relay, asked through the hub, calls add, which the hub serves */
    set_str(&objs[0], "add");
    set_int(&objs[1], 20);
    set_int(&objs[2], 22);
    params = params_of(objs, 3);
    if (daffi_rpc_with(c, "relay", &params, &opts, &r, &err) == -1)
        fail_msg("relay add on w1: %s", err.message);
    assert_int_equal(daffi_obj_int(&r.obj, &v), 0);
    assert_int_equal(v, 42);
    daffi_result_free(&r);
    /* the hub's relay calls whoami on w1 (named), which answers its own name */
    set_str(&objs[0], "w1");
    set_str(&objs[1], "whoami");
    params = params_of(objs, 2);
    opts.to = "hub";
    if (daffi_rpc_with(c, "relay_to", &params, &opts, &r, &err) == -1)
        fail_msg("relay_to w1 whoami on the hub: %s", err.message);
    assert_true(is_str(&r.obj, "w1"));
    daffi_result_free(&r);
    /* an error keeps its code, message and details on the way back */
    set_str(&objs[0], "fail_with_details");
    set_str(&objs[1], "OSError");
    set_str(&objs[2], "relayed");
    params = params_of(objs, 3);
    assert_int_equal(daffi_rpc(c, "relay", &params, HANG_MS, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_HANDLER_ERROR);
    assert_string_equal(err.message, "failed: OSError");
    assert_true(is_str(daffi_obj_get(&err.details, "type"), "OSError"));
    set_str(&objs[0], "nobody_has_this");
    params = params_of(objs, 1);
    assert_int_equal(daffi_rpc(c, "relay", &params, HANG_MS, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_NO_CALLBACK);
    daffi_error_clear(&err);
    daffi_close(c);
}

/* daffictl call --to and daffi_rpc_with()'s opts.to pick the member; a member that is
 * not connected is UNAVAILABLE (daffictl's exit 2). */
static void test_daffictl_and_the_c_api_call_a_named_member_through_the_router(void **state)
{
    router_fx *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = sync_connect(f->hub.unix_addr), *ac;
    daffi_rpc_opts opts = {"w1", HANG_MS};
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_outcome o = {0};
    daffi_result r;
    char out[2048];

    for (int i = 0; i < 2; i++) {
        const char *who = i == 0 ? "w1" : "hub";

        assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s call --to %s whoami 2>&1",
                                    f->hub.build, f->hub.tcp, who), 0);
        if (strncmp(out, "\"", 1) != 0 || strncmp(out + 1, who, strlen(who)) != 0)
            fail_msg("daffictl call --to %s whoami: %s", who, out);
    }
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s call --to=hub add 1 2 2>&1",
                                f->hub.build, f->hub.tcp), 0);
    assert_string_equal(out, "3\n");
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s call --to nobody add 1 2 "
                                "2>&1", f->hub.build, f->hub.tcp), 2);
    assert_non_null(strstr(out, "UNAVAILABLE (code 5): no member named 'nobody'"));
    assert_int_equal(expect_run(out, sizeof(out), "%s/daffictl -s %s call --to 2>&1",
                                f->hub.build, f->hub.tcp), 1);
    assert_non_null(strstr(out, "--to needs a member name"));
    if (daffi_rpc_with(c, "whoami", NULL, &opts, &r, &err) == -1)
        fail_msg("whoami to w1: %s", err.message);
    assert_true(is_str(&r.obj, "w1"));
    daffi_result_free(&r);
    opts.to = "hub";
    assert_int_equal(daffi_rpc_raw_with(c, "whoami", "\x90", 1, &opts, &r, &err), 0);
    assert_true(is_str(&r.obj, "hub"));
    daffi_result_free(&r);
    ac = tstream_client_new(base, f->hub.tcp);
    opts.to = "w1";
    assert_int_equal(daffi_rpc_with_async(ac, "whoami", NULL, &opts, tstream_collect, &o, NULL),
                     0);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_true(o.ok);
    assert_true(is_str(&o.res.obj, "w1"));
    tstream_outcome_free(&o);
    daffi_close(ac);
    event_base_free(base);
    daffi_close(c);
}

/* A cast reaches the router's own plugin and a worker: both errors keep their details
 * in the cast's entries (the router's own one packed by the router, the worker's
 * relayed as it sent it). */
static void test_a_cast_keeps_each_members_error_details(void **state)
{
    router_fx *f = *state;
    rawconn c;
    rawmsg m;

    expect_open(&c, f->hub.tcp);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.cast", 2);
    daffi_pack_cstr(pk, "fail_with_details");
    msgpack_pack_array(pk, 2);
    daffi_pack_cstr(pk, "ValueError");
    daffi_pack_cstr(pk, "trace");
    expect_send(&c, &m);
    const msgpack_object *r = expect_result(&c, 1);
    assert_int_equal(r->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(r->via.map.size, 2);
    for (uint32_t i = 0; i < 2; i++) {
        const msgpack_object *pair = &r->via.map.ptr[i].val;
        assert_int_equal(pair->type, MSGPACK_OBJECT_ARRAY);
        const msgpack_object *e = daffi_obj_at(pair, 0);
        int code;
        const char *text;
        size_t len;
        const msgpack_object *details;
        assert_int_equal(daffi_error_parse(e, &code, &text, &len, &details), 0);
        assert_int_equal(code, DAFFI_E_HANDLER_ERROR);
        assert_non_null(details);
        assert_true(is_str(daffi_obj_get(details, "type"), "ValueError"));
    }
    rawmsg_destroy(&m);
    rawconn_close(&c);
}

int main(void)
{
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_every_public_header_compiles_alone_as_c99_and_as_cxx),
    };
    const struct CMUnitTest service[] = {
        cmocka_unit_test(test_a_cxx_plugin_is_loaded_by_daffid_and_its_callbacks_answer),
        cmocka_unit_test(test_an_error_with_details_reaches_the_client_with_its_map),
        cmocka_unit_test(test_details_that_are_not_one_map_are_dropped_and_the_message_says_so),
        cmocka_unit_test(test_daffictl_prints_an_errors_details_as_json),
    };
    const struct CMUnitTest router[] = {
        cmocka_unit_test(
            test_a_plugin_handler_linked_into_a_client_finds_no_config_and_logs_to_stderr),
        cmocka_unit_test(
            test_a_handler_calls_another_member_through_the_router_and_replies_with_it),
        cmocka_unit_test(test_daffictl_and_the_c_api_call_a_named_member_through_the_router),
        cmocka_unit_test(test_a_cast_keeps_each_members_error_details),
    };
    int failed = 0;

    signal(SIGPIPE, SIG_IGN);
    failed += cmocka_run_group_tests_name("public headers", alone, NULL, NULL);
    failed += cmocka_run_group_tests_name("plugins in a service", service, service_setup,
                                          tdaemon_group_teardown);
    failed += cmocka_run_group_tests_name("plugins and clients through a router", router,
                                          router_setup, router_teardown);
    return failed == 0 ? 0 : 1;
}
