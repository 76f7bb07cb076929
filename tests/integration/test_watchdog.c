/*
 * test_watchdog.c - the loop watchdog ([server] stall_warning, default 1s): a loop that
 * has not come back to its event loop for that long is reported while it is stuck, in
 * the log (naming the plugin and callback running, and for how long), in admin
 * `status` (per loop: stalled, plugin, callback, stalled_ms) and in the counter
 * loop_stalls (admin `stats`, metrics daffid_loop_stalls_total), by the main thread,
 * which the stuck loop cannot hold up.
 *
 * The fixture plugin spin (tests/fixtures/plugins/spin.c) keeps a loop busy for 1.5 s:
 * inside its handler (spin), or in a libevent timer of its own outside any handler
 * (spin_in_timer), which the watchdog sees as a stall of no known callback.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/aconn.h"
#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define SPIN_MS 1500

typedef struct wfix {
    tdaemon d;
    char admin[PATH_MAX];
} wfix;

static int setup_spin(void **state)
{
    wfix *f = calloc(1, sizeof(*f));
    char so[PATH_MAX + 64], o_admin[PATH_MAX + 32];
    const char *ov[] = { o_admin, NULL };

    if (f == NULL || tdaemon_init(&f->d) == -1)
        return -1;
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->d.dir);
    snprintf(o_admin, sizeof(o_admin), "admin.socket=%s", f->admin);
    snprintf(so, sizeof(so), "%s/tests/fixtures/spin.so", f->d.build);
    if (tdaemon_write_file(&f->d, "20-spin.ini", "[plugin]\nname = spin\npath = %s\n",
                           so) == -1 ||
        tdaemon_start(&f->d, ov) == -1) {
        tdaemon_cleanup(&f->d);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_spin(void **state)
{
    wfix *f = *state;
    int rc = tdaemon_stop(&f->d, TDAEMON_STOP_TIMEOUT_MS);

    tdaemon_cleanup(&f->d);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* The counter loop_stalls from admin `stats`. */
static json_int_t stalls(const wfix *f)
{
    long long n = tcluster_admin_counter(f->admin, "loop_stalls");

    if (n < 0)
        fail_msg("admin stats has no counter loop_stalls");
    return n;
}

/* The status entry of the first stalled loop (a new reference), or NULL.
 * status.watchdog.loops is an object by loop number: {"0": {...}, "1": {...}}. */
static json_t *stalled_loop(const wfix *f)
{
    json_t *r = aconn_once(f->admin, "status");
    json_t *loops = json_object_get(json_object_get(r, "watchdog"), "loops"), *found = NULL;
    json_t *l;
    const char *n;

    if (!json_is_object(loops) || json_object_size(loops) != 2 ||
        json_object_get(loops, "0") == NULL || json_object_get(loops, "1") == NULL)
        fail_msg("admin status has no watchdog.loops object of loops 0 and 1 (2 loops)");
    json_object_foreach(loops, n, l) {
        if (!json_is_boolean(json_object_get(l, "stalled")))
            fail_msg("status loops.%s has no boolean `stalled`", n);
        if (json_is_true(json_object_get(l, "stalled")) && found == NULL)
            found = json_incref(l);
    }
    json_decref(r);
    return found;
}

/* Sends method(SPIN_MS) on c and polls status until a loop reports the stall. Returns
 * that loop's entry (new reference) and the ms it took to appear in *after_ms. */
static json_t *spin_until_reported(const wfix *f, rawconn *c, const char *method,
                                   int64_t *after_ms)
{
    rawmsg m;
    json_t *l = NULL;

    rawmsg_init(&m);
    msgpack_pack_int(rawmsg_request(&m, 7, method, 1), SPIN_MS);
    int64_t t0 = expect_now_ms();
    expect_send(c, &m);
    while ((l = stalled_loop(f)) == NULL && expect_now_ms() - t0 < SPIN_MS)
        usleep(20 * 1000);
    *after_ms = expect_now_ms() - t0;
    rawmsg_destroy(&m);
    if (l == NULL)
        fail_msg("%s(%d): no loop was reported stalled while it spun", method, SPIN_MS);
    return l;
}

/* The last occurrence of needle in hay, or NULL. */
static const char *last_strstr(const char *hay, const char *needle)
{
    const char *last = NULL;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        last = p;
    return last;
}

/* Waits for the answer to the spin, then asserts no loop is stalled any more and the
 * log holds the stall's two lines. */
static void after_the_spin(const wfix *f, rawconn *c, const char *stall_line,
                           json_int_t stalls_before)
{
    char *log = malloc(1 << 20);

    expect_result_int(c, 7, SPIN_MS);
    /* the watchdog sees the loop back at its next check */
    int64_t t0 = expect_now_ms();
    json_t *l;
    while ((l = stalled_loop(f)) != NULL && expect_now_ms() - t0 < 1000) {
        json_decref(l);
        usleep(20 * 1000);
    }
    if (l != NULL)
        fail_msg("a loop is still reported stalled 1 s after the spin ended");
    json_int_t n = stalls(f);
    if (n != stalls_before + 1)
        fail_msg("loop_stalls went %lld -> %lld for one stall", (long long)stalls_before,
                 (long long)n);
    /* the metrics view of the same counter */
    json_t *r = aconn_once(f->admin, "metrics");
    char want[64];
    snprintf(want, sizeof(want), "daffid_loop_stalls_total %lld", (long long)n);
    if (jstr(r, "text") == NULL || strstr(jstr(r, "text"), want) == NULL)
        fail_msg("metrics lack \"%s\"", want);
    json_decref(r);

    assert_non_null(log);
    assert_true(tdaemon_read_log(&f->d, log, 1 << 20) > 0);
    if (strstr(log, stall_line) == NULL) {
        tdaemon_dump_log(&f->d);
        fail_msg("the log has no line with \"%s\"", stall_line);
    }
    const char *end = last_strstr(log, "event=loop.stall_end");
    if (end == NULL)
        fail_msg("the log has no loop.stall_end line");
    const char *ms = strstr(end, "stalled_ms=");
    if (ms == NULL || atoi(ms + 11) < SPIN_MS - 300)
        fail_msg("loop.stall_end does not say the stall lasted about %d ms", SPIN_MS);
    free(log);
}

/* A handler spinning 1.5 s: reported about stall_warning (1 s) after it started,
 * naming plugin and callback; the bystander loop keeps serving; counted once. */
static void test_a_handler_spinning_past_stall_warning_is_reported_by_name(void **state)
{
    wfix *f = *state;
    rawconn c, other;
    int64_t after;
    json_int_t before = stalls(f);

    expect_open(&c, f->d.tcp);
    expect_open(&other, f->d.tcp); /* round-robin: the other loop */
    json_t *l = spin_until_reported(f, &c, "spin", &after);
    print_message("stall reported %lld ms after the call was sent\n", (long long)after);
    if (after < 900)
        fail_msg("the stall was reported after %lld ms, before stall_warning (1 s)",
                 (long long)after);
    assert_string_equal(jstr(l, "plugin"), "spin");
    assert_string_equal(jstr(l, "callback"), "spin");
    if (jint(l, "stalled_ms") < 900)
        fail_msg("stalled_ms %lld while the loop spun for %lld ms",
                 (long long)jint(l, "stalled_ms"), (long long)after);
    json_decref(l);
    expect_ping(&other, 1); /* the other loop serves meanwhile */
    after_the_spin(f, &c, "event=loop.stall loop=", before);
    char *log = malloc(1 << 20);
    assert_true(tdaemon_read_log(&f->d, log, 1 << 20) > 0);
    if (strstr(log, "plugin=spin callback=spin") == NULL)
        fail_msg("the loop.stall line does not name plugin=spin callback=spin");
    free(log);
    rawconn_close(&other);
    rawconn_close(&c);
}

/* A plugin timer spinning 1.5 s, outside any handler: reported all the same, with no
 * callback named (null in status, callback=- in the log). */
static void test_a_stall_outside_any_handler_is_reported_too(void **state)
{
    wfix *f = *state;
    rawconn c;
    int64_t after;
    json_int_t before = stalls(f);

    expect_open(&c, f->d.tcp);
    json_t *l = spin_until_reported(f, &c, "spin_in_timer", &after);
    print_message("stall reported %lld ms after the call was sent\n", (long long)after);
    assert_true(json_is_null(json_object_get(l, "callback")));
    assert_true(json_is_null(json_object_get(l, "plugin")));
    json_decref(l);
    after_the_spin(f, &c, "callback=- ", before);
    rawconn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_handler_spinning_past_stall_warning_is_reported_by_name),
        cmocka_unit_test(test_a_stall_outside_any_handler_is_reported_too),
    };

    return cmocka_run_group_tests_name("stall_warning=1s", tests, setup_spin,
                                       teardown_spin);
}
