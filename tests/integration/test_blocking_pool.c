/*
 * test_blocking_pool.c - the blocking pool runs below the event loops: its threads
 * (named daffid-blk-N) are SCHED_BATCH at nice 19, so a CPU-bound blocking callback
 * does not take a CPU from a loop that has calls to serve, while every other thread of
 * daffid keeps the default policy and a higher priority. The pool still serves: a
 * blocking fib call is answered.
 *
 * What the lower priority buys is a timing property (fast calls stay fast while slow
 * ones run); it is measured by `make bench` (section 3), not asserted here.
 */
#include <dirent.h>
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

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_threads_are_batch_at_nice_19_and_the_rest_keep_the_default),
    };
    return cmocka_run_group_tests(tests, setup, tdaemon_group_teardown);
}
