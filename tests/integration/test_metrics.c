/*
 * test_metrics.c - the Prometheus view as a scraper sees it, from a real daffid's
 * metrics_listen: every scrape passes promcheck (prometheus_client's parser and the
 * naming rules: units last, _total on counters only, lower-case outcomes); the
 * process_* metrics agree with what the kernel says of the daffid process; the
 * last-successful-reload gauges move on a successful reload only.
 *
 * Each test starts its own daffid (the reload test changes its configuration).
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/promcheck.h"
#include "../support/rawconn.h"

typedef struct mdaemon {
    tdaemon d;
    int port;                /* metrics_listen */
} mdaemon;

static int setup(void **state)
{
    mdaemon *m = calloc(1, sizeof(*m));
    char o_metrics[64];
    if (m == NULL || tdaemon_init(&m->d) == -1 || tdaemon_add_example_plugins(&m->d) == -1)
        return -1;
    m->port = tdaemon_free_port();
    snprintf(o_metrics, sizeof(o_metrics), "server.metrics_listen=127.0.0.1:%d", m->port);
    const char *ov[] = { o_metrics, NULL };
    *state = m;
    return tdaemon_start(&m->d, ov);
}

static int teardown(void **state)
{
    mdaemon *m = *state;
    if (m != NULL) {
        tdaemon_cleanup(&m->d);
        free(m);
    }
    return 0;
}

/* Reads /proc/PID/FILE into buf (NUL-terminated) or fails the test. */
static void read_proc(pid_t pid, const char *file, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* utime + stime of pid in seconds, as the test reads /proc itself. */
static double proc_cpu_seconds(pid_t pid)
{
    char buf[1024];
    read_proc(pid, "stat", buf, sizeof(buf));
    char *p = strrchr(buf, ')');
    assert_non_null(p);
    unsigned long long v[13];
    /* fields 3..15 after the ')': state, then 12 numbers up to stime */
    char *tok = strtok(p + 1, " ");
    for (int k = 0; k < 13; k++) {
        assert_non_null(tok);
        v[k] = strtoull(tok, NULL, 10);
        tok = strtok(NULL, " ");
    }
    return (double)(v[11] + v[12]) / (double)sysconf(_SC_CLK_TCK);
}

/* The number after "key" on its line of text, or fails the test. */
static unsigned long long field_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        fail_msg("no '%s' in:\n%s", key, text);
    p += strlen(key);
    while (*p == ' ' || *p == '\t' || *p == ':')
        p++;
    return strtoull(p, NULL, 10);
}

/* Calls fib(n) on c as msgid id and waits for its answer. */
static void call_fib(rawconn *c, uint32_t id, int n)
{
    rawmsg m;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "fib", 1);
    msgpack_pack_int(pk, n);
    expect_send(c, &m);
    rawmsg_destroy(&m);
    expect_result(c, id);
}

static void test_process_metrics_agree_with_the_kernel(void **state)
{
    mdaemon *m = *state;
    pid_t pid = m->d.pid;
    char *samples;
    char *text = promcheck_scrape(m->port, &samples);

    /* start time: the kernel's, in whole seconds, within the test's own clock */
    time_t now = time(NULL);
    double start = promcheck_value(text, "process_start_time_seconds");
    assert_true(start <= (double)now);
    assert_true(start >= (double)now - 60);

    char limits[4096], status[4096];
    read_proc(pid, "limits", limits, sizeof(limits));
    read_proc(pid, "status", status, sizeof(status));
    assert_int_equal((long long)promcheck_value(text, "process_max_fds"),
                     (long long)field_after(limits, "Max open files"));
    /* RSS moves a little between the two reads: the same within a quarter */
    double rss = promcheck_value(text, "process_resident_memory_bytes");
    double vmrss = (double)field_after(status, "VmRSS") * 1024;
    assert_true(rss > vmrss * 0.75 && rss < vmrss * 1.25);
    assert_true(promcheck_value(text, "process_virtual_memory_bytes") >= rss);
    /* descriptors: listeners, sockets, pipes, inotify...; the scrape's own connection
     * and the loops' may come and go between the reads */
    double fds = promcheck_value(text, "process_open_fds");
    assert_true(fds >= 5);
    assert_true(fds <= promcheck_value(text, "process_max_fds"));
    assert_true(promcheck_sample(samples, "process_cpu_seconds_total{}") >= 0);
    free(text);
    free(samples);

    /* CPU: burn at least 0.2 s in fib (the blocking pool) as the kernel counts it,
     * then the counter has grown by as much, and is no more than the kernel says */
    text = promcheck_scrape(m->port, NULL);
    double cpu0 = promcheck_value(text, "process_cpu_seconds_total");
    free(text);
    double k0 = proc_cpu_seconds(pid);
    rawconn c;
    expect_open(&c, m->d.tcp);
    for (uint32_t id = 1; proc_cpu_seconds(pid) - k0 < 0.2; id++) {
        if (id > 1000)
            fail_msg("fib(30) x 1000 did not take 0.2 s of CPU");
        call_fib(&c, id, 30);
    }
    rawconn_close(&c);
    text = promcheck_scrape(m->port, NULL);
    double cpu1 = promcheck_value(text, "process_cpu_seconds_total");
    double k1 = proc_cpu_seconds(pid);
    free(text);
    if (cpu1 - cpu0 < 0.2 - 0.011 || cpu1 > k1 + 0.011)
        fail_msg("process_cpu_seconds_total went %.3f -> %.3f; the kernel: %.3f -> %.3f",
                 cpu0, cpu1, k0, k1);
}

static void test_names_put_units_last_and_outcomes_are_lower_case(void **state)
{
    mdaemon *m = *state;
    rawconn c;
    rawmsg msg;

    expect_open(&c, m->d.tcp);
    rawmsg_init(&msg);
    msgpack_packer *pk = rawmsg_request(&msg, 1, "add", 2);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "x", 1);
    msgpack_pack_int(pk, 1);
    expect_send(&c, &msg);
    rawmsg_destroy(&msg);
    expect_error(&c, 1, DAFFI_E_BAD_ARGS);
    expect_send_ii(&c, 2, "divide", 1, 0);
    expect_error(&c, 2, DAFFI_E_HANDLER_ERROR);
    rawconn_close(&c);

    char *samples;
    char *text = promcheck_scrape(m->port, &samples); /* the naming rules hold */
    assert_true(promcheck_sample(samples, "daffid_received_bytes_total{}") > 0);
    assert_true(promcheck_sample(samples, "daffid_sent_bytes_total{}") > 0);
    assert_null(strstr(text, "bytes_in"));
    assert_null(strstr(text, "bytes_out"));
    assert_int_equal(promcheck_sample(samples, "daffid_calls_total{callback=add,outcome=bad_args,"
                                               "plugin=calc}"), 1);
    assert_int_equal(promcheck_sample(samples, "daffid_calls_total{callback=divide,"
                                               "outcome=handler_error,plugin=calc}"), 1);
    assert_null(strstr(text, "BAD_ARGS"));
    free(text);
    free(samples);
}

/* Scrapes until counter passes after, at most the expect timeout. Returns the
 * exposition (malloc'd). */
static char *scrape_until_counter(mdaemon *m, const char *counter, double after)
{
    int64_t end = expect_now_ms() + expect_timeout_ms();
    for (;;) {
        char *text = promcheck_scrape(m->port, NULL);
        if (promcheck_value(text, counter) > after)
            return text;
        free(text);
        if (expect_now_ms() > end)
            fail_msg("%s did not pass %.0f within %d ms", counter, after, expect_timeout_ms());
        usleep(20000);
    }
}

static void test_last_reload_success_gauges_move_on_a_successful_reload_only(void **state)
{
    mdaemon *m = *state;
    const char *ok = "daffid_config_last_reload_successful";
    const char *ts = "daffid_config_last_reload_success_timestamp_seconds";

    char *text = promcheck_scrape(m->port, NULL);
    double t_start = promcheck_value(text, ts);
    double reloads = promcheck_value(text, "daffid_reloads_total");
    double failures = promcheck_value(text, "daffid_reload_failures_total");
    /* before any reload: the start, whose configuration loaded */
    assert_true(promcheck_value(text, ok) == 1);
    assert_true(t_start >= promcheck_value(text, "process_start_time_seconds"));
    assert_true(t_start <= (double)time(NULL));
    free(text);

    /* a successful reload, a clock second later */
    while ((double)time(NULL) <= t_start)
        usleep(20000);
    assert_int_equal(tdaemon_signal(&m->d, SIGHUP), 0);
    text = scrape_until_counter(m, "daffid_reloads_total", reloads);
    double t_ok = promcheck_value(text, ts);
    assert_true(promcheck_value(text, ok) == 1);
    assert_true(t_ok > t_start);
    assert_true(t_ok <= (double)time(NULL));
    free(text);

    /* a failing one (an ini naming a missing plugin file): the time stays */
    while ((double)time(NULL) <= t_ok)
        usleep(20000);
    assert_int_equal(tdaemon_write_file(&m->d, "50-broken.ini",
                                        "[plugin]\nname = broken\npath = /nonexistent.so\n"), 0);
    text = scrape_until_counter(m, "daffid_reload_failures_total", failures);
    assert_true(promcheck_value(text, ok) == 0);
    assert_true(promcheck_value(text, ts) == t_ok);
    reloads = promcheck_value(text, "daffid_reloads_total");
    free(text);

    /* mended: successful again, at a later time */
    char path[300];
    snprintf(path, sizeof(path), "%s/50-broken.ini", m->d.dir);
    assert_int_equal(unlink(path), 0);
    int64_t end = expect_now_ms() + expect_timeout_ms();
    for (;;) {
        text = promcheck_scrape(m->port, NULL);
        if (promcheck_value(text, ok) == 1)
            break;
        free(text);
        if (expect_now_ms() > end)
            fail_msg("no successful reload after the broken ini was removed");
        usleep(20000);
    }
    assert_true(promcheck_value(text, ts) > t_ok);
    assert_true(promcheck_value(text, "daffid_reloads_total") > reloads);
    free(text);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_process_metrics_agree_with_the_kernel),
        T(test_names_put_units_last_and_outcomes_are_lower_case),
        T(test_last_reload_success_gauges_move_on_a_successful_reload_only),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
