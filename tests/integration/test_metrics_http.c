/*
 * test_metrics_http.c - the /metrics HTTP listener of a real daffid, as a
 * specification: GET and HEAD answer the exposition; every other method is 405 with
 * "Allow: GET, HEAD", on any path; metrics_listen = unix:///path serves the same over
 * a Unix socket with [server] unix_mode, removed at exit; a loopback listener raises no
 * "unauthenticated" warning (one on another address does: that is checked by
 * tests/unit/test_metrics.c on the address test itself, since tests bind loopback and
 * Unix sockets only).
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
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/daemon.h"
#include "../support/thttp.h"

/* Starts a daemon with the example plugins and the overrides, or fails the test. */
static tdaemon *start(const char *const *overrides)
{
    tdaemon *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    if (tdaemon_init(d) == -1 || tdaemon_add_example_plugins(d) == -1 ||
        tdaemon_start(d, overrides) == -1) {
        tdaemon_cleanup(d);
        free(d);
        fail_msg("daffid did not start");
    }
    return d;
}

static void stop(tdaemon *d)
{
    assert_int_equal(tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS), 0);
    tdaemon_cleanup(d);
    free(d);
}

/* 1 when the response has the header line "name: value" (name in any case). */
static int has_header(const char *resp, const char *name, const char *value)
{
    char want[256];
    snprintf(want, sizeof(want), "%s: %s\r\n", name, value);
    const char *end = strstr(resp, "\r\n\r\n");
    for (const char *p = strstr(resp, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, want, strlen(want)) == 0)
            return 1;
    return 0;
}

/* The method with path on address: asserts the status code. Returns the response. */
static char *expect_status(const char *address, const char *method, const char *path,
                           int code)
{
    char req[256];
    snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0"
             "\r\n\r\n", method, path);
    char *resp = thttp_exchange(address, req);
    if (thttp_status(resp) != code)
        fail_msg("%s %s: expected %d, got: %.300s", method, path, code, resp);
    return resp;
}

static void test_methods_other_than_get_and_head_are_405_with_allow(void **state)
{
    (void)state;
    char ov[64], addr[64];
    int port = tdaemon_free_port();
    snprintf(ov, sizeof(ov), "server.metrics_listen=127.0.0.1:%d", port);
    snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", port);
    const char *const overrides[] = { ov, NULL };
    tdaemon *d = start(overrides);

    static const char *const refused[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char *resp = expect_status(addr, refused[i], "/metrics", 405);
        if (!has_header(resp, "Allow", "GET, HEAD"))
            fail_msg("%s: 405 without 'Allow: GET, HEAD': %.300s", refused[i], resp);
        free(resp);
        free(expect_status(addr, refused[i], "/elsewhere", 405));
    }
    /* a POST with a body is answered the same */
    char *resp = thttp_exchange(addr, "POST /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(thttp_status(resp), 405);
    free(resp);
    resp = expect_status(addr, "GET", "/metrics", 200);
    assert_non_null(strstr(resp, "daffid_build_info{"));
    free(resp);
    resp = expect_status(addr, "HEAD", "/metrics", 200);
    assert_null(strstr(resp, "daffid_build_info{"));
    free(resp);
    free(expect_status(addr, "GET", "/elsewhere", 404));

    char log[65536];
    tdaemon_read_log(d, log, sizeof(log));
    if (strstr(log, "metrics.unauthenticated") != NULL)
        fail_msg("a loopback listener was reported as reachable from elsewhere:\n%s", log);
    stop(d);
}

static void test_metrics_listen_serves_a_unix_socket(void **state)
{
    (void)state;
    char ov[300], path[200], addr[220];
    tdaemon *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    assert_int_equal(tdaemon_init(d), 0);
    assert_int_equal(tdaemon_add_example_plugins(d), 0);
    snprintf(path, sizeof(path), "%s/metrics.sock", d->dir);
    snprintf(addr, sizeof(addr), "unix://%s", path);
    snprintf(ov, sizeof(ov), "server.metrics_listen=%s", addr);
    const char *const overrides[] = { ov, "server.unix_mode=0600", NULL };
    if (tdaemon_start(d, overrides) == -1) {
        tdaemon_cleanup(d);
        free(d);
        fail_msg("daffid did not start");
    }

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    char *resp = expect_status(addr, "GET", "/metrics", 200);
    assert_non_null(strstr(resp, "daffid_build_info{"));
    assert_true(has_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8"));
    free(resp);
    free(expect_status(addr, "POST", "/metrics", 405));

    assert_int_equal(tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS), 0);
    assert_int_equal(access(path, F_OK), -1); /* removed at exit */
    tdaemon_cleanup(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods_other_than_get_and_head_are_405_with_allow),
        cmocka_unit_test(test_metrics_listen_serves_a_unix_socket),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
