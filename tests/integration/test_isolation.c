/*
 * test_isolation.c - [plugin] isolation = process against real daffid processes
 * (docs/ISOLATION.md): a plugin that segfaults, aborts, exits, spins or allocates
 * without end, in an inline and in a blocking callback, costs its caller an error and
 * its child a restart, never daffid or its other plugins; a crash loop stops and is
 * brought back by a reload; a reload under load fails no call; children show in admin
 * `plugins`, hold no descriptor of their parent and run as the server's user; the
 * isolated plugin serves in every role.
 *
 * The fixture plugin is tests/fixtures/plugins/crashy.c (see its header); every test
 * starts its own daffid with it isolated (timeout 500 ms, so harakiri is at 1 s) and
 * the example echo plugin inline beside it, and an admin socket. Sanitizer builds are
 * told to leave SIGSEGV to the kernel and to let malloc return NULL, so that a child
 * ends the same way in every build.
 */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define TIMEOUT_MS 500        /* the plugin's call timeout: harakiri at twice that */
#define SWAPS 20              /* reloads under load */
#define CLIENTS 4

/* A test's daffid, its admin socket, and how far its log was read. */
typedef struct fixture {
    tdaemon d;
    char admin[PATH_MAX];
} fixture;

/* ---- helpers ------------------------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int wait_ms(void)
{
    return expect_timeout_ms();
}

/* Appends opt to the environment variable name (colon-separated options). */
static void env_append(const char *name, const char *opt)
{
    const char *old = getenv(name);
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s%s", old ? old : "", old && *old ? ":" : "", opt);
    setenv(name, buf, 1);
}

/* Writes the crashy ini (isolated, timeout TIMEOUT_MS unless keys set one, with keys
 * and config lines appended) into d's dir as 10-crashy.ini. */
static void write_crashy(fixture *f, const char *keys, const char *config)
{
    char timeout[48] = "";
    if (keys == NULL || strstr(keys, "timeout =") == NULL)
        snprintf(timeout, sizeof(timeout), "timeout = %dms\n", TIMEOUT_MS);
    assert_int_equal(tdaemon_write_file(&f->d, "10-crashy.ini", "[plugin]\nname = crashy\n"
                     "path = %s/tests/fixtures/crashy.so\nisolation = process\n%s%s\n"
                     "[config]\n%s\n", f->d.build, timeout, keys ? keys : "",
                     config ? config : ""), 0);
}

/* Prepares a daffid with crashy isolated (keys: more [plugin] keys), echo inline,
 * two blocking threads and an admin socket, and starts it. */
static fixture *start_keys(void **state, const char *keys, int start)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    *state = f;
    assert_int_equal(tdaemon_init(&f->d), 0);
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->d.dir);
    assert_int_equal(tdaemon_write_file(&f->d, "05-admin.ini", "[server]\nblocking_threads = 2\n"
                     "[admin]\nsocket = %s\n", f->admin), 0);
    write_crashy(f, keys, NULL);
    assert_int_equal(tdaemon_add_plugin(&f->d, "echo", NULL), 0);
    if (start && tdaemon_start(&f->d, NULL) == -1)
        fail_msg("daffid did not start");
    return f;
}

static fixture *start(void **state, const char *keys)
{
    return start_keys(state, keys, 1);
}

/* Stops the test's daffid: a clean exit 0 (no crash, no sanitizer report) is part of
 * every test, and so is every child reaped. */
static int teardown(void **state)
{
    fixture *f = *state;
    int rc = 0;
    if (f == NULL)
        return 0;
    if (f->d.pid != 0) {
        rc = tdaemon_stop(&f->d, TDAEMON_STOP_TIMEOUT_MS);
        if (rc != 0)
            fprintf(stderr, "daffid exited with %d\n", rc);
    }
    tdaemon_cleanup(&f->d);
    free(f);
    *state = NULL;
    return rc == 0 ? 0 : -1;
}

/* One answer, decoded enough for these tests. */
typedef struct answer {
    int code;                     /* 0: a result */
    int64_t i;                    /* an integer result */
    char s[600];                  /* a str result, or the error message */
} answer;

/* Calls method with nargs (0 or 1) int arguments on addr and returns the answer; fails
 * the test when none comes within timeout_ms. */
static answer ask_within(const char *addr, const char *method, int nargs, int64_t arg,
                         int timeout_ms)
{
    rawconn c;
    rawmsg m;
    answer a;
    memset(&a, 0, sizeof(a));
    expect_open(&c, addr);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 7, method, (uint32_t)nargs);
    if (nargs == 1)
        msgpack_pack_int64(pk, arg);
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    rawconn_status st = rawconn_read(&c, timeout_ms);
    if (st != RAWCONN_OK || c.msg.kind != DAFFI_MSG_RESPONSE || c.msg.msgid != 7)
        fail_msg("%s on %s: no answer (%s)", method, addr, rawconn_status_name(st));
    if (c.msg.error != NULL && c.msg.error->type != MSGPACK_OBJECT_NIL) {
        const char *msg;
        size_t len;
        const msgpack_object *details;
        assert_int_equal(daffi_error_parse(c.msg.error, &a.code, &msg, &len, &details), 0);
        snprintf(a.s, sizeof(a.s), "%.*s", (int)len, msg);
    } else if (c.msg.result->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        a.i = (int64_t)c.msg.result->via.u64;
    } else if (c.msg.result->type == MSGPACK_OBJECT_STR) {
        snprintf(a.s, sizeof(a.s), "%.*s", (int)c.msg.result->via.str.size,
                 c.msg.result->via.str.ptr);
    }
    rawconn_close(&c);
    return a;
}

static answer ask(const char *addr, const char *method, int nargs, int64_t arg)
{
    return ask_within(addr, method, nargs, arg, wait_ms());
}

/* Fails the test unless the answer is error code with every word of the
 * NULL-terminated list in its message. */
static void expect_words(const tdaemon *d, const answer *a, int code, ...)
{
    va_list ap;
    if (a->code != code) {
        tdaemon_dump_log(d);
        fail_msg("expected error %d, got code %d: '%s'", code, a->code, a->s);
    }
    va_start(ap, code);
    for (const char *w = va_arg(ap, const char *); w != NULL; w = va_arg(ap, const char *))
        if (strstr(a->s, w) == NULL) {
            va_end(ap);
            fail_msg("error message lacks '%s': '%s'", w, a->s);
        }
    va_end(ap);
}

/* The pid of the child serving crashy now (its pid() callback). */
static pid_t child_pid(const fixture *f)
{
    answer a = ask(f->d.tcp, "pid", 0, 0);
    if (a.code != 0)
        fail_msg("pid(): code %d '%s'", a.code, a.s);
    return (pid_t)a.i;
}

/* Waits until a child other than old serves pid(); returns it. */
static pid_t await_new_child(const fixture *f, pid_t old)
{
    int64_t deadline = expect_now_ms() + wait_ms();
    for (;;) {
        answer a = ask(f->d.tcp, "pid", 0, 0);
        if (a.code == 0 && (pid_t)a.i != old)
            return (pid_t)a.i;
        if (expect_now_ms() > deadline) {
            tdaemon_dump_log(&f->d);
            fail_msg("no new child served pid() (last: code %d '%s' %lld)", a.code, a.s,
                     (long long)a.i);
        }
        sleep_ms(10);
    }
}

/* Waits until pid is gone (reaped by daffid). */
static void await_gone(pid_t pid)
{
    int64_t deadline = expect_now_ms() + wait_ms();
    while (kill(pid, 0) == 0 || errno != ESRCH) {
        if (expect_now_ms() > deadline)
            fail_msg("process %ld is still there", (long)pid);
        sleep_ms(5);
    }
}

/* The inline plugin beside it still answers. */
static void expect_echo_serves(const fixture *f)
{
    answer a = ask(f->d.unix_addr, "echo", 1, 4242);
    if (a.code != 0 || a.i != 4242)
        fail_msg("echo(4242) beside the isolated plugin: code %d '%s'", a.code, a.s);
}

/* The admin `plugins` row of name (a new reference; the reply is released). */
static json_t *plugin_row(const fixture *f, const char *name)
{
    json_t *r = tcluster_admin(f->admin, "plugins");
    json_t *row = NULL, *v;
    size_t i;
    assert_non_null(r);
    json_array_foreach(json_object_get(r, "plugins"), i, v)
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            row = json_incref(v);
    json_decref(r);
    if (row == NULL)
        fail_msg("admin plugins lists no '%s'", name);
    return row;
}

static long long row_int(const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    if (!json_is_integer(v))
        fail_msg("admin plugins: '%s' is not an integer", key);
    return (long long)json_integer_value(v);
}

static const char *row_str(const json_t *row, const char *key)
{
    const char *s = json_string_value(json_object_get(row, key));
    if (s == NULL)
        fail_msg("admin plugins: '%s' is not a string", key);
    return s;
}

/* A gauge or counter of admin `stats`. */
static long long stat_value(const fixture *f, const char *kind, const char *name)
{
    json_t *r = tcluster_admin(f->admin, "stats");
    json_t *v = json_object_get(json_object_get(r, kind), name);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(r);
    return n;
}

/* Opens c to addr and sends hold(ms) as msgid 1 without waiting for its answer. */
static void send_hold(rawconn *c, const char *addr, int64_t ms)
{
    rawmsg m;
    expect_open(c, addr);
    rawmsg_init(&m);
    rawmsg_request(&m, 1, "hold", 1);
    msgpack_pack_int64(&m.pk, ms);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* ---- each way to die, inline and blocking ---------------------------------------------- */

/* Calls method (nargs int args), which kills the child serving it: the caller gets
 * UNAVAILABLE naming the plugin, the child's pid, how it ended (how) and the callback;
 * daffid and echo go on; a new child serves; the old one is gone and logged. */
static void expect_death(fixture *f, const char *method, int nargs, int64_t arg,
                         const char *how)
{
    pid_t before = child_pid(f);
    char pid[32], cb[300];
    snprintf(pid, sizeof(pid), "pid %ld", (long)before);
    snprintf(cb, sizeof(cb), "while running '%s'", method);
    answer a = ask(f->d.tcp, method, nargs, arg);
    expect_words(&f->d, &a, DAFFI_E_UNAVAILABLE, "plugin 'crashy'", pid, how, cb, NULL);
    expect_echo_serves(f);
    assert_true(tdaemon_alive(&f->d));
    pid_t after = await_new_child(f, before);
    assert_true(after != before);
    await_gone(before);
    char running[300];
    snprintf(running, sizeof(running), "running=%s ", method); /* a bare logfmt value */
    if (!tcluster_log_contains(&f->d, running, wait_ms()))
        fail_msg("no plugin.child_died line with %s", running);
}

static void test_segfault_inline_and_blocking_fail_the_call_and_restart_the_child(void **state)
{
    fixture *f = start(state, NULL);
    expect_death(f, "segv", 0, 0, "killed by signal SIGSEGV");
    expect_death(f, "segv_blocking", 0, 0, "killed by signal SIGSEGV");
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.child_died"), 2);
    assert_int_equal(tcluster_admin_counter(f->admin, "isolated_crashes"), 2);
    assert_int_equal(tcluster_admin_counter(f->admin, "isolated_restarts"), 2);
}

static void test_abort_inline_and_blocking_fail_the_call_and_restart_the_child(void **state)
{
    fixture *f = start(state, NULL);
    expect_death(f, "abort_now", 0, 0, "killed by signal SIGABRT");
    expect_death(f, "abort_blocking", 0, 0, "killed by signal SIGABRT");
}

static void test_exit_inline_and_blocking_fail_the_call_and_restart_the_child(void **state)
{
    fixture *f = start(state, NULL);
    expect_death(f, "exit_now", 1, 7, "exited with status 7");
    expect_death(f, "exit_blocking", 1, 9, "exited with status 9");
}

/* Allocating without end under rlimit_as: malloc fails in the child (whose writes
 * through NULL kill it), not the machine or daffid. */
static void test_allocation_bomb_under_rlimit_as_kills_only_the_child(void **state)
{
    /* a sanitizer build adds its shadow reserve to rlimit_as and writes 4 shadow bytes
     * per byte: a smaller bomb, and time to fill it */
    const char *build = getenv("BUILD");
    int sanitized = build != NULL && strstr(build, "san") != NULL;
    fixture *f = start(state, sanitized ? "rlimit_as = 64M\ntimeout = 30s"
                                        : "rlimit_as = 512M\ntimeout = 30s");
    expect_death(f, "bomb", 0, 0, "killed by signal SIGSEGV");
    expect_death(f, "bomb_blocking", 0, 0, "killed by signal SIGSEGV");
    /* daffid itself never held the bomb's memory */
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)f->d.pid);
    FILE *st = fopen(path, "r");
    assert_non_null(st);
    long rss_kb = -1;
    while (fgets(line, sizeof(line), st) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &rss_kb) == 1)
            break;
    fclose(st);
    if (rss_kb < 0 || rss_kb > 256 * 1024)
        fail_msg("daffid's resident memory is %ld kB after the bombs", rss_kb);
}

/* A handler that burns CPU past rlimit_cpu (harakiri off) gets its child SIGXCPU. */
static void test_cpu_past_rlimit_cpu_kills_only_the_child(void **state)
{
    fixture *f = start(state, "rlimit_cpu = 2s\nharakiri = 0\ntimeout = 60s");
    expect_death(f, "spin", 0, 0, "killed by signal SIGXCPU");
}

/* A call that spins: TIMEOUT at its deadline; at harakiri (twice the timeout) the child
 * is killed and replaced; a blocking one spinning leaves the child's other blocking
 * thread serving until then. */
static void test_spinning_calls_time_out_and_harakiri_replaces_the_child(void **state)
{
    fixture *f = start(state, NULL);
    pid_t first = child_pid(f);
    int64_t t0 = expect_now_ms();
    answer a = ask(f->d.tcp, "spin", 0, 0);
    int64_t took = expect_now_ms() - t0;
    expect_words(&f->d, &a, DAFFI_E_TIMEOUT, "'spin'", NULL);
    if (took < TIMEOUT_MS - 20 || took > TIMEOUT_MS + 400)
        fail_msg("spin answered TIMEOUT after %lld ms (timeout %d ms)", (long long)took,
                 TIMEOUT_MS);
    pid_t second = await_new_child(f, first);
    int64_t replaced = expect_now_ms() - t0;
    if (replaced < 2 * TIMEOUT_MS)
        fail_msg("the spinning child was replaced after %lld ms, before harakiri (%d ms)",
                 (long long)replaced, 2 * TIMEOUT_MS);
    assert_true(tcluster_log_contains(&f->d, "callback=spin ", wait_ms()));
    await_gone(first);
    expect_echo_serves(f);

    /* blocking: the spin holds one of the child's two blocking threads */
    rawconn c;
    rawmsg m;
    expect_open(&c, f->d.tcp);
    rawmsg_init(&m);
    rawmsg_request(&m, 1, "spin_blocking", 0);
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    sleep_ms(50);
    a = ask(f->d.unix_addr, "hold", 1, 100);
    if (a.code != 0 || a.i != 100)
        fail_msg("hold(100) beside a spinning blocking call: code %d '%s'", a.code, a.s);
    expect_error(&c, 1, DAFFI_E_TIMEOUT);
    rawconn_close(&c);
    await_new_child(f, second);
    await_gone(second);
    assert_true(tcluster_log_contains(&f->d, "callback=spin_blocking ", wait_ms()));
    assert_int_equal(tcluster_admin_counter(f->admin, "isolated_harakiri"), 2);
    json_t *row = plugin_row(f, "crashy");
    assert_int_equal(row_int(row, "harakiri"), 2);
    assert_int_equal(row_int(row, "harakiri_ms"), 2 * TIMEOUT_MS);
    json_decref(row);
}

/* The calls a child holds when it dies all fail at once, each naming the callback
 * that was running. */
static void test_calls_in_flight_on_a_dying_child_fail_at_once(void **state)
{
    fixture *f = start(state, NULL);
    rawconn c;
    send_hold(&c, f->d.tcp, 5000);
    sleep_ms(50);
    int64_t t0 = expect_now_ms();
    answer a = ask(f->d.unix_addr, "segv", 0, 0);
    expect_words(&f->d, &a, DAFFI_E_UNAVAILABLE, "SIGSEGV", "'segv'", NULL);
    expect_error(&c, 1, DAFFI_E_UNAVAILABLE);
    int64_t took = expect_now_ms() - t0;
    const char *msg;
    size_t len;
    const msgpack_object *details;
    int code;
    assert_int_equal(daffi_error_parse(c.msg.error, &code, &msg, &len, &details), 0);
    char text[600];
    snprintf(text, sizeof(text), "%.*s", (int)len, msg);
    if (strstr(text, "'segv'") == NULL || strstr(text, "'hold'") == NULL)
        fail_msg("the held call's error names neither the crash nor itself: '%s'", text);
    /* at once: not at its 5 s hold nor at its deadline */
    if (took > TIMEOUT_MS)
        fail_msg("the held call failed %lld ms after the crash", (long long)took);
    rawconn_close(&c);
}

/* ---- crash loops ------------------------------------------------------------------------ */

/* Five deaths within a minute stop the restarts: admin shows the plugin failed, its
 * calls say so, echo serves; `reload crashy` brings it back. */
static void test_crash_loop_is_stopped_and_a_reload_brings_the_plugin_back(void **state)
{
    fixture *f = start(state, NULL);
    pid_t p = child_pid(f);
    for (int i = 0; i < 4; i++) {
        answer a = ask(f->d.tcp, "segv", 0, 0);
        expect_words(&f->d, &a, DAFFI_E_UNAVAILABLE, "SIGSEGV", NULL);
        p = await_new_child(f, p);
    }
    answer a = ask(f->d.tcp, "segv", 0, 0);
    expect_words(&f->d, &a, DAFFI_E_UNAVAILABLE, "SIGSEGV", NULL);
    assert_true(tcluster_log_contains(&f->d, "event=plugin.crash_loop", wait_ms()));
    a = ask(f->d.tcp, "ok", 0, 0);
    expect_words(&f->d, &a, DAFFI_E_UNAVAILABLE, "plugin 'crashy' failed", "reload", NULL);
    expect_echo_serves(f);
    json_t *row = plugin_row(f, "crashy");
    assert_string_equal(row_str(row, "state"), "failed");
    assert_false(json_is_true(json_object_get(row, "serving")));
    assert_int_equal(row_int(row, "crashes"), 5);
    assert_non_null(strstr(row_str(row, "last_death"), "SIGSEGV"));
    json_decref(row);
    /* no restart is attempted any more */
    sleep_ms(300);
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.child_started"), 4);

    json_t *r = tcluster_admin(f->admin, "reload crashy");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "ok");
    json_decref(r);
    answer ok = ask(f->d.tcp, "ok", 0, 0);
    if (ok.code != 0 || strcmp(ok.s, "ok") != 0)
        fail_msg("ok() after the reload: code %d '%s'", ok.code, ok.s);
    row = plugin_row(f, "crashy");
    assert_string_equal(row_str(row, "state"), "serving");
    assert_int_equal(row_int(row, "generation"), 2);
    json_decref(row);
}

/* ---- what admin and the counters show --------------------------------------------------- */

static void test_admin_plugins_shows_the_children(void **state)
{
    fixture *f = start(state, "processes = 2");
    pid_t seen[2] = {0, 0};
    for (int i = 0; i < 10 && seen[1] == 0; i++) {
        pid_t p = child_pid(f);
        if (seen[0] == 0)
            seen[0] = p;
        else if (p != seen[0])
            seen[1] = p;
    }
    if (seen[1] == 0)
        fail_msg("10 calls all went to child %ld (processes = 2, round-robin)", (long)seen[0]);
    json_t *row = plugin_row(f, "crashy");
    assert_string_equal(row_str(row, "isolation"), "process");
    assert_string_equal(row_str(row, "state"), "serving");
    assert_int_equal(row_int(row, "processes"), 2);
    assert_int_equal(row_int(row, "restarts"), 0);
    json_t *kids = json_object_get(row, "children");
    assert_int_equal(json_array_size(kids), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *k = json_array_get(kids, i);
        pid_t pid = (pid_t)row_int(k, "pid");
        assert_true(pid == seen[0] || pid == seen[1]);
        assert_string_equal(row_str(k, "state"), "ready");
        assert_int_equal(row_int(k, "restarts"), 0);
        assert_true(json_is_true(json_object_get(k, "serving")));
    }
    json_decref(row);
    row = plugin_row(f, "echo");
    assert_string_equal(row_str(row, "isolation"), "inline");
    json_decref(row);
    assert_int_equal(stat_value(f, "gauges", "isolated_children"), 2);

    /* one dies: its slot restarts, the other child serves meanwhile */
    answer a = ask(f->d.tcp, "segv", 0, 0);
    expect_words(&f->d, &a, DAFFI_E_UNAVAILABLE, "SIGSEGV", NULL);
    a = ask(f->d.tcp, "ok", 0, 0);
    if (a.code != 0)
        fail_msg("ok() with one of two children dead: code %d '%s'", a.code, a.s);
    int64_t deadline = expect_now_ms() + wait_ms();
    for (;;) {
        row = plugin_row(f, "crashy");
        int done = row_int(row, "restarts") == 1 && strcmp(row_str(row, "state"), "serving") == 0;
        if (done) {
            assert_int_equal(row_int(row, "crashes"), 1);
            assert_non_null(strstr(row_str(row, "last_death"), "SIGSEGV"));
            json_decref(row);
            break;
        }
        json_decref(row);
        if (expect_now_ms() > deadline)
            fail_msg("the dead child's slot did not serve again");
        sleep_ms(20);
    }
    /* per callback under the plugin's own name, as for an inline plugin */
    json_t *r = tcluster_admin(f->admin, "callbacks crashy");
    json_t *v;
    size_t i;
    int found = 0;
    json_array_foreach(json_object_get(r, "callbacks"), i, v)
        if (strcmp(json_string_value(json_object_get(v, "name")), "segv") == 0) {
            found = 1;
            assert_string_equal(json_string_value(json_object_get(v, "plugin")), "crashy");
            json_t *o = json_object_get(json_object_get(v, "outcomes"), "unavailable");
            assert_int_equal(json_integer_value(o), 1);
        }
    json_decref(r);
    assert_true(found);
}

/* ---- what a child holds ------------------------------------------------------------------ */

/* The target of /proc/pid/fd/name into buf ("" when unreadable). */
static const char *fd_target(pid_t pid, const char *name, char *buf, size_t n)
{
    char path[320];
    snprintf(path, sizeof(path), "/proc/%ld/fd/%.256s", (long)pid, name);
    ssize_t len = readlink(path, buf, n - 1);
    buf[len > 0 ? len : 0] = '\0';
    return buf;
}

/* A child holds its link and its own event loop's descriptors: none of daffid's
 * listeners, admin socket, log-unrelated files or plugin copies; and runs as the
 * server's user when daffid runs as root. */
static void test_child_holds_only_its_link_and_runs_as_the_servers_user(void **state)
{
    fixture *f = start(state, NULL);
    pid_t pid = child_pid(f);
    char parent_log[512], t[512];
    fd_target(f->d.pid, "2", parent_log, sizeof(parent_log));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    DIR *dir = opendir(path);
    assert_non_null(dir);
    int sockets = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        fd_target(pid, e->d_name, t, sizeof(t));
        if (fd == 0) {
            assert_string_equal(t, "/dev/null");
        } else if (fd == 1 || fd == 2) {
            assert_string_equal(t, parent_log);
        } else if (strncmp(t, "socket:", 7) == 0) {
            sockets++;
            /* its end of the socketpair: no socket of daffid's is the same one */
            char pdir[64], pt[512];
            snprintf(pdir, sizeof(pdir), "/proc/%ld/fd", (long)f->d.pid);
            DIR *pd = opendir(pdir);
            assert_non_null(pd);
            for (struct dirent *pe; (pe = readdir(pd)) != NULL;)
                if (pe->d_name[0] != '.' &&
                    strcmp(fd_target(f->d.pid, pe->d_name, pt, sizeof(pt)), t) == 0)
                    fail_msg("child fd %d is daffid's fd %s (%s)", fd, pe->d_name, t);
            closedir(pd);
        } else if (strncmp(t, "anon_inode:", 11) != 0 && strncmp(t, "pipe:", 5) != 0) {
            fail_msg("child fd %d is %s: a child holds its link and its loop only", fd, t);
        }
    }
    closedir(dir);
    assert_int_equal(sockets, 1);

    uid_t want = getuid();
    if (geteuid() == 0) {
        const struct passwd *pw = getpwnam("daffid");
        if (pw == NULL)
            pw = getpwnam("nobody");
        want = pw != NULL ? pw->pw_uid : 65534;
    }
    answer a = ask(f->d.tcp, "uid", 0, 0);
    assert_int_equal(a.code, 0);
    assert_int_equal(a.i, (int64_t)want);
    char line[256], status[64];
    snprintf(status, sizeof(status), "/proc/%ld/status", (long)pid);
    FILE *st = fopen(status, "r");
    assert_non_null(st);
    unsigned long r = 0, e = 0, s = 0, fs = 0;
    while (fgets(line, sizeof(line), st) != NULL)
        if (sscanf(line, "Uid: %lu %lu %lu %lu", &r, &e, &s, &fs) == 4)
            break;
    fclose(st);
    assert_true(r == want && e == want && s == want && fs == want);
}

/* ---- start-up failures ------------------------------------------------------------------- */

/* daffid -t loads an isolated plugin in a child: the loader's own words when init
 * fails, the child's signal when init crashes (and daffid -t survives it), and a key
 * that inline mode ignores is an error. */
static void test_check_reports_a_child_that_cannot_start(void **state)
{
    fixture *f = start_keys(state, NULL, 0);
    char out[8192];
    write_crashy(f, NULL, "init = fail");
    assert_int_equal(tdaemon_check(&f->d, NULL, out, sizeof(out)), 1);
    if (strstr(out, "crashy.so: init failed: told to fail") == NULL)
        fail_msg("daffid -t does not give init's reason:\n%s", out);
    write_crashy(f, NULL, "init = crash");
    assert_int_equal(tdaemon_check(&f->d, NULL, out, sizeof(out)), 1);
    if (strstr(out, "SIGSEGV") == NULL || strstr(out, "while starting") == NULL)
        fail_msg("daffid -t does not say how the child died:\n%s", out);
    assert_int_equal(tdaemon_write_file(&f->d, "10-crashy.ini", "[plugin]\nname = crashy\n"
                     "path = %s/tests/fixtures/crashy.so\nprocesses = 2\n", f->d.build), 0);
    assert_int_equal(tdaemon_check(&f->d, NULL, out, sizeof(out)), 1);
    if (strstr(out, "10-crashy.ini:4: [plugin] processes: only applies with isolation = "
               "process") == NULL)
        fail_msg("processes without isolation is not named:\n%s", out);
    write_crashy(f, NULL, NULL);
    assert_int_equal(tdaemon_check(&f->d, NULL, out, sizeof(out)), 0);
}

/* A reload whose new generation cannot start changes nothing: the children of the
 * serving one go on. */
static void test_reload_to_a_generation_that_cannot_start_keeps_the_old_one(void **state)
{
    fixture *f = start(state, NULL);
    pid_t pid = child_pid(f);
    write_crashy(f, NULL, "init = crash");
    json_t *r = tcluster_admin(f->admin, "reload crashy");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(r, "error")), "reload_failed");
    json_decref(r);
    assert_true(tcluster_log_contains(&f->d, "event=plugin.load_failed", wait_ms()));
    assert_int_equal(child_pid(f), pid);
    json_t *row = plugin_row(f, "crashy");
    assert_int_equal(row_int(row, "generation"), 1);
    assert_string_equal(row_str(row, "state"), "serving");
    json_decref(row);
}

/* ---- reload under load -------------------------------------------------------------------- */

/* Builds the reloadable fixture with RELOAD_VARIANT=v into out; fails the test when cc
 * does. */
static void build_variant(const char *out, int v)
{
    char def[48];
    snprintf(def, sizeof(def), "-DRELOAD_VARIANT=%d", v);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("cc", "cc", "-shared", "-fPIC", "-O1", "-I", "sdk/include", def,
               "tests/fixtures/plugins/reloadable.c", "-o", out, (char *)NULL);
        _exit(127);
    }
    int st;
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* One caller of variant(), back to back, on its own connection. */
typedef struct caller {
    pthread_t thread;
    const char *addr;
    atomic_int *stop;
    atomic_long seen;             /* the newest variant it was answered */
    long calls, failed;
    char why[640];
} caller;

static void *caller_main(void *arg)
{
    caller *c = arg;
    rawconn rc;
    rawmsg m;
    if (rawconn_open(&rc, c->addr, 5000) == -1) {
        c->failed++;
        snprintf(c->why, sizeof(c->why), "connect: %s", strerror(errno));
        return NULL;
    }
    rawmsg_init(&m);
    for (uint32_t id = 1; !atomic_load(c->stop); id++) {
        c->calls++;
        rawmsg_request(&m, id, "variant", 0);
        rawconn_status st = rawconn_send_msg(&rc, &m) == 0 ? rawconn_read(&rc, 10000)
                                                            : RAWCONN_ERROR;
        if (st != RAWCONN_OK || rc.msg.msgid != id ||
            (rc.msg.error != NULL && rc.msg.error->type != MSGPACK_OBJECT_NIL) ||
            rc.msg.result->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (c->failed++ == 0) {
                int code = 0;
                const char *msg = "";
                size_t len = 0;
                const msgpack_object *details;
                if (st == RAWCONN_OK && rc.msg.error != NULL)
                    daffi_error_parse(rc.msg.error, &code, &msg, &len, &details);
                snprintf(c->why, sizeof(c->why), "call %ld: %s code %d %.*s", c->calls,
                         rawconn_status_name(st), code, (int)len, msg);
            }
            if (st != RAWCONN_OK)
                break;
            continue;
        }
        long v = (long)rc.msg.result->via.u64;
        if (v > atomic_load(&c->seen))
            atomic_store(&c->seen, v);
    }
    rawmsg_destroy(&m);
    rawconn_close(&rc);
    return NULL;
}

/* Four callers call the isolated reloadable plugin's variant() without pause while
 * SWAPS new builds are renamed over its .so: every swap starts new children and
 * drains the old ones, every caller sees every variant, and no call fails. */
static void test_reload_under_load_loses_and_fails_no_call(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char so[PATH_MAX], next[PATH_MAX + 32];
    caller cl[CLIENTS];
    atomic_int stop;
    assert_non_null(f);
    *state = f;
    assert_int_equal(tdaemon_init(&f->d), 0);
    snprintf(so, sizeof(so), "%s/reloadable.so", f->d.dir);
    build_variant(so, 0);
    for (int v = 1; v <= SWAPS; v++) {
        snprintf(next, sizeof(next), "%s/v%d.so", f->d.dir, v);
        build_variant(next, v);
    }
    assert_int_equal(tdaemon_write_file(&f->d, "10-reloadable.ini", "[plugin]\nname = "
                     "reloadable\npath = %s\nisolation = process\nprocesses = 2\n", so), 0);
    if (tdaemon_start(&f->d, NULL) == -1)
        fail_msg("daffid did not start");
    assert_true(tcluster_log_contains(&f->d, "event=reload.done", wait_ms()));
    atomic_init(&stop, 0);
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < CLIENTS; i++) {
        cl[i].addr = i % 2 ? f->d.unix_addr : f->d.tcp;
        cl[i].stop = &stop;
        atomic_init(&cl[i].seen, 0);
        assert_int_equal(pthread_create(&cl[i].thread, NULL, caller_main, &cl[i]), 0);
    }
    for (int v = 1; v <= SWAPS; v++) {
        /* renamed over the path, as a deployment does */
        snprintf(next, sizeof(next), "%s/v%d.so", f->d.dir, v);
        assert_int_equal(rename(next, so), 0);
        int64_t t0 = expect_now_ms();
        for (int i = 0; i < CLIENTS; i++)
            while (atomic_load(&cl[i].seen) < v && cl[i].failed == 0 &&
                   expect_now_ms() - t0 < wait_ms())
                sleep_ms(1);
        for (int i = 0; i < CLIENTS; i++)
            if (atomic_load(&cl[i].seen) < v) {
                atomic_store(&stop, 1);
                for (int k = 0; k < CLIENTS; k++)
                    pthread_join(cl[k].thread, NULL);
                tdaemon_dump_log(&f->d);
                fail_msg("swap %d: caller %d sees variant %ld (%s)", v, i,
                         atomic_load(&cl[i].seen), cl[i].why);
            }
    }
    atomic_store(&stop, 1);
    long calls = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(cl[i].thread, NULL);
        calls += cl[i].calls;
        if (cl[i].failed != 0)
            fail_msg("caller %d: %ld of %ld calls failed: %s", i, cl[i].failed, cl[i].calls,
                     cl[i].why);
    }
    print_message("    %d reloads of an isolated plugin (2 children each), %ld calls, "
                  "0 failed\n", SWAPS, calls);
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.isolated"), SWAPS + 1);
    /* every replaced generation's children drained and exited */
    int64_t deadline = expect_now_ms() + wait_ms();
    while (tcluster_log_count(&f->d, "event=plugin.child_exited") < 2 * SWAPS &&
           expect_now_ms() < deadline)
        sleep_ms(20);
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.child_exited"), 2 * SWAPS);
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.child_died"), 0);
}

/* ---- roles -------------------------------------------------------------------------------- */

/* A worker's isolated plugin serves calls routed to it, and its crash is the caller's
 * error, not the worker's or the router's; a router's own isolated plugin serves too. */
static void test_isolated_plugins_serve_in_the_worker_and_router_roles(void **state)
{
    (void)state;
    tdaemon router, worker;
    char out[64];
    memset(&router, 0, sizeof(router));
    memset(&worker, 0, sizeof(worker));
    assert_int_equal(tcluster_router_init(&router, "hub", NULL), 0);
    assert_int_equal(tdaemon_add_plugin(&router, "echo", "isolation = process\n"), 0);
    assert_int_equal(tdaemon_start(&router, NULL), 0);
    assert_int_equal(tcluster_worker_init(&worker, router.tcp, "w1", NULL), 0);
    assert_int_equal(tdaemon_write_file(&worker, "10-crashy.ini", "[plugin]\nname = crashy\n"
                     "path = %s/tests/fixtures/crashy.so\nisolation = process\n",
                     worker.build), 0);
    assert_int_equal(tcluster_worker_start(&worker, router.tcp, "w1", wait_ms()), 0);
    answer a = ask(router.tcp, "pid", 0, 0);
    assert_int_equal(a.code, 0);
    assert_true((pid_t)a.i != worker.pid && (pid_t)a.i != router.pid);
    pid_t child = (pid_t)a.i;
    a = ask(router.tcp, "segv", 0, 0);
    expect_words(&worker, &a, DAFFI_E_UNAVAILABLE, "plugin 'crashy'", "SIGSEGV", "'segv'",
                 NULL);
    assert_int_equal(tcluster_has_member(router.tcp, "w1"), 1);
    int64_t deadline = expect_now_ms() + wait_ms();
    do {
        a = ask(router.tcp, "pid", 0, 0);
        sleep_ms(10);
    } while ((a.code != 0 || (pid_t)a.i == child) && expect_now_ms() < deadline);
    assert_int_equal(a.code, 0);
    /* the router's own: echo in a child of the router */
    a = ask(router.unix_addr, "echo", 1, 99);
    assert_int_equal(a.code, 0);
    assert_int_equal(a.i, 99);
    snprintf(out, sizeof(out), "%s", "event=plugin.isolated plugin=echo");
    assert_true(tcluster_log_contains(&router, out, wait_ms()));
    assert_int_equal(tcluster_stop(&worker), 0);
    assert_int_equal(tcluster_stop(&router), 0);
}

/* ---- shutdown and streams ------------------------------------------------------------------ */

/* SIGTERM with a call in flight in a child: the call is answered, daffid exits 0, the
 * child exits by itself once its link closes. */
static void test_shutdown_answers_calls_in_children_and_reaps_them(void **state)
{
    fixture *f = start(state, NULL);
    pid_t pid = child_pid(f);
    rawconn c;
    send_hold(&c, f->d.tcp, 300);
    sleep_ms(50);
    assert_int_equal(tdaemon_signal(&f->d, SIGTERM), 0);
    expect_result_int(&c, 1, 300);
    rawconn_close(&c);
    assert_int_equal(tdaemon_stop(&f->d, TDAEMON_STOP_TIMEOUT_MS), 0);
    await_gone(pid);
    /* it left on its own, after the drain closed its link: no death, no SIGKILL */
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.child_exited"), 1);
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.child_died"), 0);
    assert_int_equal(tcluster_log_count(&f->d, "event=plugin.child_killed"), 0);
}

/* A stream callback of an isolated plugin is refused at its open, saying why; its
 * plain callbacks answer bit for bit. */
static void test_isolated_echo_answers_and_refuses_streams(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    *state = f;
    assert_int_equal(tdaemon_init(&f->d), 0);
    assert_int_equal(tdaemon_add_plugin(&f->d, "echo", "isolation = process\n"), 0);
    assert_int_equal(tdaemon_start(&f->d, NULL), 0);
    rawconn c;
    expect_open(&c, f->d.tcp);
    /* a float32 stays a float32 through the child */
    expect_send_raw_call(&c, 1, "echo", 1, "\xca\x3f\xc0\x00\x00", 5);
    expect_result_bytes(&c, 1, "float32 1.5", "\xca\x3f\xc0\x00\x00", 5);
    rawmsg m;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 2, "daffi.stream", 2);
    daffi_pack_cstr(pk, "digest");
    msgpack_pack_array(pk, 0);
    expect_send(&c, &m);
    rawmsg_destroy(&m);
    expect_error(&c, 2, DAFFI_E_UNAVAILABLE);
    rawconn_close(&c);
}

int main(void)
{
    /* a child ends by the kernel's signal in every build */
    env_append("ASAN_OPTIONS", "handle_segv=0:handle_abort=0:allocator_may_return_null=1");
    env_append("TSAN_OPTIONS", "handle_segv=0:handle_abort=0:allocator_may_return_null=1:"
               "atexit_sleep_ms=0");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_segfault_inline_and_blocking_fail_the_call_and_restart_the_child, teardown),
        cmocka_unit_test_teardown(test_abort_inline_and_blocking_fail_the_call_and_restart_the_child, teardown),
        cmocka_unit_test_teardown(test_exit_inline_and_blocking_fail_the_call_and_restart_the_child, teardown),
        cmocka_unit_test_teardown(test_allocation_bomb_under_rlimit_as_kills_only_the_child, teardown),
        cmocka_unit_test_teardown(test_cpu_past_rlimit_cpu_kills_only_the_child, teardown),
        cmocka_unit_test_teardown(test_spinning_calls_time_out_and_harakiri_replaces_the_child, teardown),
        cmocka_unit_test_teardown(test_calls_in_flight_on_a_dying_child_fail_at_once, teardown),
        cmocka_unit_test_teardown(test_crash_loop_is_stopped_and_a_reload_brings_the_plugin_back, teardown),
        cmocka_unit_test_teardown(test_admin_plugins_shows_the_children, teardown),
        cmocka_unit_test_teardown(test_child_holds_only_its_link_and_runs_as_the_servers_user, teardown),
        cmocka_unit_test_teardown(test_check_reports_a_child_that_cannot_start, teardown),
        cmocka_unit_test_teardown(test_reload_to_a_generation_that_cannot_start_keeps_the_old_one, teardown),
        cmocka_unit_test_teardown(test_reload_under_load_loses_and_fails_no_call, teardown),
        cmocka_unit_test(test_isolated_plugins_serve_in_the_worker_and_router_roles),
        cmocka_unit_test_teardown(test_shutdown_answers_calls_in_children_and_reaps_them, teardown),
        cmocka_unit_test_teardown(test_isolated_echo_answers_and_refuses_streams, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
