/*
 * test_lifecycle.c - daffid's process life: the SIGTERM/SIGINT drain, `daffid -t`,
 * the Unix socket file (a stale one is replaced, a live one is not stolen) and the
 * pidfile (never through a symlink, locked while running, a stale one taken over,
 * removed at exit only while it is still ours).
 *
 * Every test starts its own daffid, because each ends it. The daemons a test starts
 * are kept in its fixture, so a failing test still has them killed and their
 * directories removed by the teardown.
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
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define FIXTURE_DAEMONS 2

/* The daemons of one test, released by the teardown whatever the outcome. */
typedef struct fixture {
    tdaemon *d[FIXTURE_DAEMONS];
} fixture;

/* Gives the test an empty fixture. Returns 0 or -1. */
static int fixture_setup(void **state)
{
    *state = calloc(1, sizeof(fixture));
    return *state ? 0 : -1;
}

/* Kills what still runs and removes the directories. Exit codes are asserted by the
 * tests themselves. */
static int fixture_teardown(void **state)
{
    fixture *f = *state;

    for (int i = 0; i < FIXTURE_DAEMONS; i++) {
        if (f->d[i] != NULL) {
            tdaemon_cleanup(f->d[i]);
            free(f->d[i]);
        }
    }
    free(f);
    return 0;
}

/* Stores d in the first free slot of the test's fixture. Returns d. */
static tdaemon *keep(void **state, tdaemon *d)
{
    fixture *f = *state;

    for (int i = 0; i < FIXTURE_DAEMONS; i++) {
        if (f->d[i] == NULL) {
            f->d[i] = d;
            return d;
        }
    }
    fail_msg("more than %d daemons in one test", FIXTURE_DAEMONS);
    return NULL;
}

/* Prepares a configuration dir with the example plugins, without starting daffid. */
static tdaemon *prepare(void **state)
{
    tdaemon *d = calloc(1, sizeof(*d));

    assert_non_null(d);
    keep(state, d);
    if (tdaemon_init(d) == -1 || tdaemon_add_example_plugins(d) == -1)
        fail_msg("cannot prepare a configuration directory");
    return d;
}

/* Starts a daffid with the example plugins for one test, or fails the test. */
static tdaemon *start(void **state, const char *const *overrides)
{
    tdaemon *d = prepare(state);

    if (tdaemon_start(d, overrides) == -1)
        fail_msg("daffid did not start");
    return d;
}

/* Sends echo_after(ms, id) as msgid id. */
static void send_echo_after(rawconn *c, uint32_t id, int ms)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "echo_after", 2);
    msgpack_pack_int(pk, ms);
    msgpack_pack_uint32(pk, id);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* Asserts that d exits by itself within timeout_ms with status code. */
static void expect_exit(tdaemon *d, int timeout_ms, int code)
{
    int r = tdaemon_wait_exit(d, timeout_ms);

    if (r != 1) {
        tdaemon_dump_log(d);
        fail_msg("daffid did not exit within %d ms", timeout_ms);
    }
    if (!WIFEXITED(d->status) || WEXITSTATUS(d->status) != code) {
        tdaemon_dump_log(d);
        fail_msg("daffid ended with wait status 0x%x, expected exit code %d",
                 (unsigned)d->status, code);
    }
}

/* Returns 1 when a connection to address is refused (nothing listens any more). */
static int refused(const char *address)
{
    rawconn c;
    int r = rawconn_open(&c, address, 200);
    int e = errno;

    rawconn_close(&c);
    return r == -1 && (e == ECONNREFUSED || e == ENOENT);
}

/* ---- SIGTERM / SIGINT ------------------------------------------------------------ */

/* Starts daffid with calls in flight on TCP and Unix, sends sig, and asserts every
 * call is answered and daffid exits 0. */
static void drain_on(void **state, int sig)
{
    tdaemon *d = start(state, NULL);
    rawconn tcp, ux;

    expect_open(&tcp, d->tcp);
    expect_open(&ux, d->unix_addr);
    for (uint32_t id = 1; id <= 3; id++) {
        send_echo_after(&tcp, id, 500);
        send_echo_after(&ux, id, 500);
    }
    expect_ping(&tcp, 10);
    expect_ping(&ux, 10);
    assert_int_equal(tdaemon_signal(d, sig), 0);
    /* Every call in flight still gets its answer. */
    for (int i = 0; i < 3; i++) {
        uint32_t a = expect_response(&tcp);
        assert_int_equal(tcp.msg.error->type, MSGPACK_OBJECT_NIL);
        assert_int_equal(tcp.msg.result->via.u64, a);
        uint32_t b = expect_response(&ux);
        assert_int_equal(ux.msg.error->type, MSGPACK_OBJECT_NIL);
        assert_int_equal(ux.msg.result->via.u64, b);
    }
    expect_exit(d, TDAEMON_STOP_TIMEOUT_MS, 0);
    rawconn_close(&tcp);
    rawconn_close(&ux);
}

static void test_sigterm_lets_calls_in_flight_finish_then_exits_zero(void **state)
{
    drain_on(state, SIGTERM);
}

static void test_sigint_drains_like_sigterm(void **state)
{
    drain_on(state, SIGINT);
}

static void test_sigterm_refuses_new_connections_while_draining(void **state)
{
    tdaemon *d = start(state, NULL);
    rawconn busy;
    int64_t deadline;
    int tcp_refused = 0, unix_refused = 0;

    expect_open(&busy, d->tcp);
    send_echo_after(&busy, 1, 1500);
    expect_ping(&busy, 2);
    assert_int_equal(tdaemon_signal(d, SIGTERM), 0);
    /* Well before the call in flight is due, both listeners are gone. */
    deadline = expect_now_ms() + 1000;
    while (expect_now_ms() < deadline && !(tcp_refused && unix_refused)) {
        tcp_refused = tcp_refused || refused(d->tcp);
        unix_refused = unix_refused || refused(d->unix_addr);
        if (!(tcp_refused && unix_refused))
            usleep(10000);
    }
    if (!tcp_refused || !unix_refused)
        fail_msg("1 s after SIGTERM new connections are still accepted (tcp %s, unix %s)",
                 tcp_refused ? "refused" : "accepted", unix_refused ? "refused" : "accepted");
    if (!tdaemon_alive(d))
        fail_msg("daffid exited with a call in flight instead of draining");
    expect_result_int(&busy, 1, 1);
    expect_exit(d, TDAEMON_STOP_TIMEOUT_MS, 0);
    rawconn_close(&busy);
}

static void test_sigterm_closes_idle_connections(void **state)
{
    tdaemon *d = start(state, NULL);
    rawconn busy, idle;

    expect_open(&busy, d->tcp);
    expect_open(&idle, d->unix_addr);
    expect_ping(&idle, 1);
    send_echo_after(&busy, 1, 1000);
    expect_ping(&busy, 2);
    assert_int_equal(tdaemon_signal(d, SIGTERM), 0);
    expect_closed(&idle, NULL);
    expect_result_int(&busy, 1, 1);
    expect_exit(d, TDAEMON_STOP_TIMEOUT_MS, 0);
    rawconn_close(&busy);
    rawconn_close(&idle);
}

static void test_a_new_request_during_the_drain_is_shutting_down(void **state)
{
    tdaemon *d = start(state, NULL);
    rawconn busy;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&busy, d->tcp);
    /* 2 s: a wide margin on a loaded machine for the request below to arrive while
     * this call is still in flight (it keeps the connection open during the drain). */
    send_echo_after(&busy, 1, 2000);
    expect_ping(&busy, 2);
    assert_int_equal(tdaemon_signal(d, SIGTERM), 0);
    /* The main thread hears the signal and tells the loops: until this loop has heard,
     * a new call is still served. Ask every 10 ms (well within echo_after's 2 s) until
     * one is answered SHUTTING_DOWN; a served one must still be a correct answer. */
    for (uint32_t id = 3;; id++) {
        msgpack_pack_int(rawmsg_request(&m, id, "echo", 1), 3);
        expect_send(&busy, &m);
        if (expect_response(&busy) != id)
            fail_msg("msgid %u: a response to another request came first", id);
        if (busy.msg.error->type != MSGPACK_OBJECT_NIL) {
            check_error(&busy, id, DAFFI_E_SHUTTING_DOWN);
            break;
        }
        assert_true(busy.msg.result->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                    busy.msg.result->via.u64 == 3);
        if (id > 150)
            fail_msg("daffid still serves new calls 1.5 s after SIGTERM");
        usleep(10000);
    }
    expect_result_int(&busy, 1, 1);
    expect_closed(&busy, NULL);
    expect_exit(d, TDAEMON_STOP_TIMEOUT_MS, 0);
    rawconn_close(&busy);
    rawmsg_destroy(&m);
}

static void test_shutdown_timeout_bounds_the_drain(void **state)
{
    static const char *const overrides[] = { "server.shutdown_timeout=300ms", NULL };
    tdaemon *d = start(state, overrides);
    rawconn busy;

    expect_open(&busy, d->tcp);
    send_echo_after(&busy, 1, 30000);
    expect_ping(&busy, 2);
    int64_t t0 = expect_now_ms();
    assert_int_equal(tdaemon_signal(d, SIGTERM), 0);
    /* It leaves by itself soon after the deadline (its exit code reports the calls it
     * could not finish), without waiting 30 s for the call. */
    int r = tdaemon_wait_exit(d, 5000);
    if (r != 1)
        fail_msg("daffid still runs %lld ms after SIGTERM with shutdown_timeout=300ms",
                 (long long)(expect_now_ms() - t0));
    if (!WIFEXITED(d->status)) {
        tdaemon_dump_log(d);
        fail_msg("daffid did not exit by itself: wait status 0x%x", (unsigned)d->status);
    }
    rawconn_close(&busy);
}

/* ---- daffid -t --------------------------------------------------------------------- */

static void test_check_mode_exits_zero_on_a_good_directory(void **state)
{
    tdaemon *d = prepare(state);
    char out[4096];

    int rc = tdaemon_check(d, NULL, out, sizeof(out));
    if (rc != 0)
        fail_msg("daffid -t on a good directory exited %d:\n%s", rc, out);
}

static void test_check_mode_names_file_and_line_of_an_unknown_key(void **state)
{
    tdaemon *d = prepare(state);
    const char *where = "20-bad.ini:3";
    char out[4096];

    assert_int_equal(tdaemon_write_file(d, "20-bad.ini",
                                        "[limits]\nmax_pending = 10\nno_such_key = 1\n"), 0);
    int rc = tdaemon_check(d, NULL, out, sizeof(out));
    if (rc != 1 || strstr(out, where) == NULL || strstr(out, "no_such_key") == NULL)
        fail_msg("daffid -t with an unknown key: exit %d, expected 1 naming %s and the "
                 "key; output:\n%s", rc, where, out);
}

static void test_check_mode_names_a_missing_plugin_file(void **state)
{
    tdaemon *d = prepare(state);
    char out[4096];

    assert_int_equal(tdaemon_write_file(d, "30-ghost.ini",
                                        "[plugin]\nname = ghost\n"
                                        "path = /nonexistent/ghost.so\n"), 0);
    int rc = tdaemon_check(d, NULL, out, sizeof(out));
    if (rc != 1 || strstr(out, "/nonexistent/ghost.so") == NULL ||
        strstr(out, "30-ghost.ini") == NULL)
        fail_msg("daffid -t with a missing plugin: exit %d, expected 1 naming the file; "
                 "output:\n%s", rc, out);
}

static void test_check_mode_rejects_a_bad_override(void **state)
{
    static const char *const overrides[] = { "limits.max_message=lots", NULL };
    tdaemon *d = prepare(state);
    char out[4096];

    int rc = tdaemon_check(d, overrides, out, sizeof(out));
    if (rc != 1 || strstr(out, "max_message") == NULL)
        fail_msg("daffid -t -o limits.max_message=lots: exit %d, expected 1 naming the "
                 "key; output:\n%s", rc, out);
}

/* ---- the Unix socket file -------------------------------------------------------- */

static void test_a_stale_unix_socket_file_is_replaced(void **state)
{
    tdaemon *d = prepare(state);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };

    /* A socket file left behind by a process that died: bound, never unlinked. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_not_equal(fd, -1);
    memcpy(sun.sun_path, d->sock_path, strlen(d->sock_path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    assert_int_equal(access(d->sock_path, F_OK), 0);
    assert_true(refused(d->unix_addr));

    if (tdaemon_start(d, NULL) == -1)
        fail_msg("daffid did not start over a stale socket file");
    expect_serving(d->unix_addr);
    assert_int_equal(tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS), 0);
}

static void test_a_live_unix_socket_is_not_stolen(void **state)
{
    tdaemon *first = start(state, NULL);
    tdaemon *second = prepare(state);
    char listen[512], log[8192];
    const char *overrides[] = { listen, NULL };

    snprintf(listen, sizeof(listen), "server.listen=%s, %s", second->tcp, first->unix_addr);
    assert_int_equal(tdaemon_spawn(second, overrides), 0);
    int r = tdaemon_wait_exit(second, TDAEMON_START_TIMEOUT_MS);
    if (r != 1)
        fail_msg("a second daffid on %s kept running instead of failing", first->sock_path);
    tdaemon_read_log(second, log, sizeof(log));
    if (!WIFEXITED(second->status) || WEXITSTATUS(second->status) == 0)
        fail_msg("a second daffid on a live socket ended with wait status 0x%x; log:\n%s",
                 (unsigned)second->status, log);
    if (strstr(log, first->sock_path) == NULL)
        fail_msg("the second daffid's error does not name %s; log:\n%s", first->sock_path,
                 log);
    /* The first one still owns its socket. */
    expect_serving(first->unix_addr);
    assert_int_equal(tdaemon_stop(first, TDAEMON_STOP_TIMEOUT_MS), 0);
}

/* ---- the pidfile ----------------------------------------------------------------- */

/* Reads the first line of path into buf ("" when it cannot be read). */
static void read_first_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (f != NULL) {
        if (fgets(buf, (int)size, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
}

/* Asserts that path holds pid. */
static void expect_pidfile(const char *path, pid_t pid)
{
    char line[64], want[64];
    read_first_line(path, line, sizeof(line));
    snprintf(want, sizeof(want), "%ld\n", (long)pid);
    if (strcmp(line, want) != 0)
        fail_msg("pidfile %s holds '%s', expected pid %ld", path, line, (long)pid);
}

/* Spawns d with overrides and asserts it exits 1 with a log naming needle. */
static void expect_refused(tdaemon *d, const char *const *overrides, const char *needle)
{
    char log[16384];

    assert_int_equal(tdaemon_spawn(d, overrides), 0);
    if (tdaemon_wait_exit(d, TDAEMON_START_TIMEOUT_MS) != 1)
        fail_msg("daffid kept running instead of refusing to start");
    tdaemon_read_log(d, log, sizeof(log));
    if (!WIFEXITED(d->status) || WEXITSTATUS(d->status) != 1 || strstr(log, needle) == NULL)
        fail_msg("expected exit 1 naming '%s'; wait status 0x%x, log:\n%s", needle,
                 (unsigned)d->status, log);
}

static void test_a_symlink_pidfile_is_refused_and_its_target_untouched(void **state)
{
    tdaemon *d = prepare(state);
    char target[300], link[300], ov[400], line[64];
    const char *overrides[] = { ov, NULL };

    snprintf(target, sizeof(target), "%s/precious.txt", d->dir);
    snprintf(link, sizeof(link), "%s/daffid.pid", d->dir);
    FILE *f = fopen(target, "w");
    assert_non_null(f);
    fputs("precious\n", f);
    fclose(f);
    assert_int_equal(symlink(target, link), 0);
    snprintf(ov, sizeof(ov), "server.pidfile=%s", link);
    expect_refused(d, overrides, "symbolic link");
    read_first_line(target, line, sizeof(line));
    assert_string_equal(line, "precious\n");
}

static void test_a_second_instance_refuses_a_held_pidfile_and_leaves_it(void **state)
{
    tdaemon *first = prepare(state);
    tdaemon *second = prepare(state);
    char pidfile[300], ov[400], pid[32];
    const char *overrides[] = { ov, NULL };

    snprintf(pidfile, sizeof(pidfile), "%s/daffid.pid", first->dir);
    snprintf(ov, sizeof(ov), "server.pidfile=%s", pidfile);
    if (tdaemon_start(first, overrides) == -1)
        fail_msg("daffid did not start");
    expect_pidfile(pidfile, first->pid);
    /* the second listens elsewhere: only the pidfile is shared */
    snprintf(pid, sizeof(pid), "pid %ld", (long)first->pid);
    expect_refused(second, overrides, pid);
    expect_pidfile(pidfile, first->pid);
    expect_serving(first->tcp);
    assert_int_equal(tdaemon_stop(first, TDAEMON_STOP_TIMEOUT_MS), 0);
    assert_int_equal(access(pidfile, F_OK), -1); /* ours: removed at exit */
}

static void test_a_stale_pidfile_is_taken_over(void **state)
{
    tdaemon *d = prepare(state);
    char pidfile[300], ov[400];
    const char *overrides[] = { ov, NULL };

    snprintf(pidfile, sizeof(pidfile), "%s/daffid.pid", d->dir);
    FILE *f = fopen(pidfile, "w");
    assert_non_null(f);
    fputs("999999\n", f); /* a crashed run's: nobody holds its lock */
    fclose(f);
    snprintf(ov, sizeof(ov), "server.pidfile=%s", pidfile);
    if (tdaemon_start(d, overrides) == -1)
        fail_msg("daffid did not take over a stale pidfile");
    expect_pidfile(pidfile, d->pid);
    assert_int_equal(tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS), 0);
    assert_int_equal(access(pidfile, F_OK), -1);
}

static void test_a_pidfile_replaced_while_running_is_left_at_exit(void **state)
{
    tdaemon *d = prepare(state);
    char pidfile[300], moved[320], ov[400], line[64];
    const char *overrides[] = { ov, NULL };

    snprintf(pidfile, sizeof(pidfile), "%s/daffid.pid", d->dir);
    snprintf(moved, sizeof(moved), "%s/moved.pid", d->dir);
    snprintf(ov, sizeof(ov), "server.pidfile=%s", pidfile);
    if (tdaemon_start(d, overrides) == -1)
        fail_msg("daffid did not start");
    assert_int_equal(rename(pidfile, moved), 0);
    FILE *f = fopen(pidfile, "w");
    assert_non_null(f);
    fputs("someone else's\n", f);
    fclose(f);
    assert_int_equal(tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS), 0);
    read_first_line(pidfile, line, sizeof(line));
    assert_string_equal(line, "someone else's\n");
}

/* A test with its own fixture of daemons. */
#define LIFECYCLE_TEST(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LIFECYCLE_TEST(test_sigterm_lets_calls_in_flight_finish_then_exits_zero),
        LIFECYCLE_TEST(test_sigint_drains_like_sigterm),
        LIFECYCLE_TEST(test_sigterm_refuses_new_connections_while_draining),
        LIFECYCLE_TEST(test_sigterm_closes_idle_connections),
        LIFECYCLE_TEST(test_a_new_request_during_the_drain_is_shutting_down),
        LIFECYCLE_TEST(test_shutdown_timeout_bounds_the_drain),
        LIFECYCLE_TEST(test_check_mode_exits_zero_on_a_good_directory),
        LIFECYCLE_TEST(test_check_mode_names_file_and_line_of_an_unknown_key),
        LIFECYCLE_TEST(test_check_mode_names_a_missing_plugin_file),
        LIFECYCLE_TEST(test_check_mode_rejects_a_bad_override),
        LIFECYCLE_TEST(test_a_stale_unix_socket_file_is_replaced),
        LIFECYCLE_TEST(test_a_live_unix_socket_is_not_stolen),
        LIFECYCLE_TEST(test_a_symlink_pidfile_is_refused_and_its_target_untouched),
        LIFECYCLE_TEST(test_a_second_instance_refuses_a_held_pidfile_and_leaves_it),
        LIFECYCLE_TEST(test_a_stale_pidfile_is_taken_over),
        LIFECYCLE_TEST(test_a_pidfile_replaced_while_running_is_left_at_exit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
