/*
 * test_blocking_pool.c - the blocking pool runs below the event loops: its threads
 * (named daffid-blk-N) are SCHED_BATCH at nice 19, so a CPU-bound blocking callback
 * does not take a CPU from a loop that has calls to serve, while every other thread of
 * daffid keeps the default policy and a higher priority. The pool still serves: a
 * blocking fib call is answered.
 *
 * What the lower priority buys is a timing property (fast calls stay fast while slow
 * ones run); it is measured by `make bench` (section 3), not asserted here.
 *
 * A plugin's share ([plugin] blocking_max): a plugin whose calls hold its share of the
 * pool leaves the other threads to the other plugins, and its further calls wait their
 * turn in order; daffid -t refuses a bad value; admin `plugins` shows the share.
 */
#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/aconn.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define NBLOCKING 3

/* One thread of the daemon: its name and scheduling policy. */
typedef struct task {
    char comm[32];
    int policy;
    int nice;
} task;

/* Reads every thread of pid into tasks (at most max). Returns the count. */
static int read_tasks(pid_t pid, task *tasks, int max)
{
    char dir[64];
    int n = 0;

    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot list %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[384];
        snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* the thread ended meanwhile */
        if (fgets(tasks[n].comm, sizeof(tasks[n].comm), f) == NULL)
            tasks[n].comm[0] = '\0';
        fclose(f);
        tasks[n].comm[strcspn(tasks[n].comm, "\n")] = '\0';
        tasks[n].policy = sched_getscheduler((pid_t)atoi(e->d_name));
        tasks[n].nice = getpriority(PRIO_PROCESS, (id_t)atoi(e->d_name));
        n++;
    }
    closedir(d);
    return n;
}

static void test_pool_threads_are_batch_at_nice_19_and_the_rest_keep_the_default(void **state)
{
    tdaemon *d = *state;
    rawconn c;
    task tasks[64];

    /* the pool serves: fib runs on it */
    expect_open(&c, d->tcp);
    rawmsg m;
    rawmsg_init(&m);
    rawmsg_request(&m, 2, "fib", 1);
    msgpack_pack_int(&m.pk, 20);
    expect_send(&c, &m);
    expect_result_int(&c, 2, 6765);
    rawmsg_destroy(&m);
    rawconn_close(&c);

    int n = read_tasks(d->pid, tasks, 64), pool = 0;
    for (int i = 0; i < n; i++) {
        int is_pool = strncmp(tasks[i].comm, "daffid-blk-", 11) == 0;
        print_message("thread %-16s policy %d nice %d\n", tasks[i].comm, tasks[i].policy,
                      tasks[i].nice);
        if (is_pool && (tasks[i].policy != SCHED_BATCH || tasks[i].nice != 19))
            fail_msg("pool thread %s has policy %d nice %d, not SCHED_BATCH (%d) nice 19",
                     tasks[i].comm, tasks[i].policy, tasks[i].nice, SCHED_BATCH);
        if (!is_pool && (tasks[i].policy != SCHED_OTHER || tasks[i].nice >= 19))
            fail_msg("thread %s has policy %d nice %d: only the pool runs that low",
                     tasks[i].comm, tasks[i].policy, tasks[i].nice);
        pool += is_pool;
    }
    if (pool != NBLOCKING)
        fail_msg("%d threads named daffid-blk-N, blocking_threads = %d", pool, NBLOCKING);
}

static int setup(void **state)
{
    static const char *const overrides[] = { "server.blocking_threads=3", NULL };

    return tdaemon_group_setup_with(state, overrides);
}

/* Sends crashy's hold(ms) as msgid id. */
static void send_hold(rawconn *c, uint32_t id, int64_t ms)
{
    rawmsg m;
    rawmsg_init(&m);
    rawmsg_request(&m, id, "hold", 1);
    msgpack_pack_int64(&m.pk, ms);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* The entry of plugin name in an admin `plugins` reply. */
static json_t *plugin_entry(json_t *r, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "plugins"), i, v) {
        if (strcmp(jstr(v, "name"), name) == 0)
            return v;
    }
    fail_msg("admin plugins lists no %s", name);
    return NULL;
}

static void test_a_plugin_at_its_share_leaves_the_other_threads_to_the_others(void **state)
{
    (void)state;
    tdaemon d;
    char admin[200];
    assert_int_equal(tdaemon_init(&d), 0);
    snprintf(admin, sizeof(admin), "%s/admin.sock", d.dir);
    assert_int_equal(tdaemon_write_file(&d, "05-pool.ini", "[server]\nblocking_threads = 3\n"
                                        "[admin]\nsocket = %s\n", admin), 0);
    assert_int_equal(tdaemon_write_file(&d, "10-crashy.ini", "[plugin]\nname = crashy\n"
                                        "path = %s/tests/fixtures/crashy.so\nblocking_max = 2\n",
                                        d.build), 0);
    assert_int_equal(tdaemon_add_plugin(&d, "fib", NULL), 0);
    assert_int_equal(tdaemon_start(&d, NULL), 0);

    /* three calls that sleep: two take crashy's share, the third waits for one */
    rawconn holds, fast;
    expect_open(&holds, d.tcp);
    for (uint32_t id = 1; id <= 3; id++)
        send_hold(&holds, id, 1500);
    /* admin sees the share taken (polled: the pool picks the calls up at its pace) */
    int64_t end = expect_now_ms() + expect_timeout_ms();
    json_int_t running = -1;
    while (running != 2 && expect_now_ms() < end) {
        json_t *r = aconn_once(admin, "plugins");
        json_t *e = plugin_entry(r, "crashy");
        assert_int_equal(jint(e, "blocking_max"), 2);
        running = jint(e, "blocking_running");
        json_decref(r);
        if (running != 2)
            usleep(10000);
    }
    assert_int_equal(running, 2);
    /* the third thread is free for another plugin: fib is answered before any hold
     * (without the share, three holds would take the three threads for 1.5 s) */
    expect_open(&fast, d.tcp);
    rawmsg m;
    rawmsg_init(&m);
    rawmsg_request(&m, 9, "fib", 1);
    msgpack_pack_int(&m.pk, 20);
    expect_send(&fast, &m);
    rawmsg_destroy(&m);
    expect_result_int(&fast, 9, 6765);
    struct pollfd pfd = { holds.fd, POLLIN, 0 };
    assert_int_equal(poll(&pfd, 1, 0), 0); /* no hold has been answered yet */
    /* the holds finish in their turn: 1 and 2 together, then 3 */
    uint32_t first = expect_response(&holds), second = expect_response(&holds);
    assert_true((first == 1 && second == 2) || (first == 2 && second == 1));
    assert_int_equal(expect_response(&holds), 3);
    rawconn_close(&holds);
    rawconn_close(&fast);
    assert_int_equal(tdaemon_stop(&d, TDAEMON_STOP_TIMEOUT_MS), 0);
    tdaemon_cleanup(&d);
}

static void test_a_bad_blocking_max_is_refused_with_its_file_and_line(void **state)
{
    tdaemon *d = *state;
    char out[2048];
    int rc = expect_run(out, sizeof(out), "%s/daffid -t -c %s -o 'fib:plugin.blocking_max=-1' 2>&1",
                        d->build, d->dir);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "blocking_max"));
    /* with isolation = process it would do nothing: named, with the [plugin] line */
    rc = expect_run(out, sizeof(out), "%s/daffid -t -c %s -o 'fib:plugin.blocking_max=1' "
                    "-o 'fib:plugin.isolation=process' 2>&1", d->build, d->dir);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "blocking_max: only applies with isolation = inline"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_threads_are_batch_at_nice_19_and_the_rest_keep_the_default),
        cmocka_unit_test(test_a_plugin_at_its_share_leaves_the_other_threads_to_the_others),
        cmocka_unit_test(test_a_bad_blocking_max_is_refused_with_its_file_and_line),
    };
    return cmocka_run_group_tests(tests, setup, tdaemon_group_teardown);
}
