/*
 * blocking.c - the blocking thread pool (see blocking.h).
 *
 * A plain mutex + condition variable queue: blocking callbacks are long (milliseconds
 * and up), so the queue's cost is noise next to them. The pool's threads never touch a
 * connection; completions go back to the owning loop through dispatch.
 *
 * The pool runs below the loops: each thread switches itself to SCHED_BATCH at nice
 * 19 when it starts. CPU-bound callbacks (fib) on as many threads as there are CPUs
 * would otherwise take half of every CPU from the loops, and fast calls would wait
 * behind slow ones (measured: 0.07x of the idle rate with 2 fib(40) on 2 cores; 0.9x
 * and more at nice 19). Weight 15 against a loop's 1024: a loop that wakes takes the
 * CPU from a callback at once, and a callback that wakes does not preempt anything
 * (SCHED_BATCH). Unlike SCHED_IDLE the pool is never starved to zero, so a callback
 * holding a lock a loop waits for still progresses on a busy machine. The cost:
 * blocking callbacks get little CPU while the loops (or other processes of normal
 * priority) are busy. Threads are named daffid-blk-N (`ps -Lo tid,cls,ni,comm -p PID`).
 *
 * A plugin's share: with `[plugin] blocking_max = N` at most N of its calls run on the
 * pool at once (per generation); a thread takes the first queued call whose plugin is
 * under its share and leaves the others queued in order, so one plugin's stuck calls
 * cannot take every thread from the others. A thread that finishes a call scans the
 * queue again itself, which is when a call passed over may become runnable.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "blocking.h"
#include "call-t.h"
#include "callobj.h"
#include "dispatch.h"
#include "log.h"
#include "plugin-t.h"

#define DFD_BLOCKING_NICE 19

struct dfd_blocking {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    dfd_call *head;
    dfd_call *tail;
    unsigned queued;
    unsigned running;
    int stopping;
    unsigned nthreads;
    pthread_t *threads;
};

/* Names the calling pool thread and moves it below the loops (see the top). A failure
 * (a seccomp filter, a container's policy) is logged; the thread then serves at the
 * default priority. */
static void blocking_lower_priority(unsigned index)
{
    char name[16];
    struct sched_param sp = { .sched_priority = 0 };

    snprintf(name, sizeof(name), "daffid-blk-%u", index);
    pthread_setname_np(pthread_self(), name);
    int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    if (rc != 0)
        dfd_warn("blocking.priority", "thread=%u msg=\"cannot switch to SCHED_BATCH: %s\"",
                 index, strerror(rc));
    /* the nice value of this thread only (Linux: a thread is a process here) */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), DFD_BLOCKING_NICE) == -1)
        dfd_warn("blocking.priority", "thread=%u msg=\"cannot set nice %d: %s; blocking "
                 "callbacks compete with the loops\"", index, DFD_BLOCKING_NICE,
                 strerror(errno));
}

/* What a pool thread starts with: its pool and its index. */
typedef struct blocking_start {
    dfd_blocking *pool;
    unsigned index;
} blocking_start;

/* Under the lock: unlinks and returns the first queued call that may run now (any,
 * once the pool is stopping: it is answered unrun), counting it in its plugin's
 * share; NULL when there is none. */
static dfd_call *blocking_take(dfd_blocking *pool)
{
    dfd_call *prev = NULL, *call = pool->head;
    while (call != NULL && !pool->stopping) {
        const dfd_plugin *p = call->cb->plugin;
        if (p->blocking_max == 0 || p->blocking_running < p->blocking_max)
            break;
        prev = call;
        call = call->next;
    }
    if (call == NULL)
        return NULL;
    if (prev != NULL)
        prev->next = call->next;
    else
        pool->head = call->next;
    if (pool->tail == call)
        pool->tail = prev;
    call->next = NULL;
    pool->queued--;
    pool->running++;
    if (!pool->stopping)
        call->cb->plugin->blocking_running++;
    return call;
}

static void *blocking_main(void *arg)
{
    blocking_start st = *(blocking_start *)arg;
    dfd_blocking *pool = st.pool;
    free(arg);
    blocking_lower_priority(st.index);
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        dfd_call *call;
        while ((call = blocking_take(pool)) == NULL && !pool->stopping)
            pthread_cond_wait(&pool->cond, &pool->lock);
        if (call == NULL)
            break;
        int stopping = pool->stopping;
        pthread_mutex_unlock(&pool->lock);

        if (stopping) {
            daffi_call_set_error(&call->base, DAFFI_E_SHUTTING_DOWN, "daffid is shutting down");
            dfd_dispatch_after_handler(call, DAFFI_DONE);
            pthread_mutex_lock(&pool->lock);
        } else {
            /* the share is given back before the call is handed on: after that the
             * call (and the generation it holds) may be gone */
            dfd_plugin *p = call->cb->plugin;
            daffi_status st = call->cb->fn(&call->base);
            pthread_mutex_lock(&pool->lock);
            p->blocking_running--;
            pthread_mutex_unlock(&pool->lock);
            dfd_dispatch_after_handler(call, st);
            pthread_mutex_lock(&pool->lock);
        }
        pool->running--;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

dfd_blocking *dfd_blocking_start(unsigned nthreads)
{
    dfd_blocking *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->threads = calloc(nthreads, sizeof(pthread_t));
    if (pool->threads == NULL) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    for (unsigned i = 0; i < nthreads; i++) {
        blocking_start *st = malloc(sizeof(*st)); /* the thread frees it */
        if (st != NULL)
            *st = (blocking_start){ pool, i };
        if (st == NULL || pthread_create(&pool->threads[i], NULL, blocking_main, st) != 0) {
            free(st);
            dfd_error("blocking.start", "msg=\"cannot start blocking thread %u\"", i);
            pool->nthreads = i;
            dfd_blocking_stop(pool);
            return NULL;
        }
        pool->nthreads = i + 1;
    }
    return pool;
}

int dfd_blocking_submit(dfd_blocking *pool, dfd_call *call)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        pthread_mutex_unlock(&pool->lock);
        return -1;
    }
    call->next = NULL;
    if (pool->tail)
        pool->tail->next = call;
    else
        pool->head = call;
    pool->tail = call;
    pool->queued++;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

unsigned dfd_blocking_load(dfd_blocking *pool)
{
    pthread_mutex_lock(&pool->lock);
    unsigned n = pool->queued + pool->running;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

unsigned dfd_blocking_running_of(dfd_blocking *pool, const dfd_plugin *p)
{
    if (pool == NULL)
        return 0;
    pthread_mutex_lock(&pool->lock);
    unsigned n = p->blocking_running;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void dfd_blocking_stop(dfd_blocking *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->cond);
    free(pool->threads);
    free(pool);
}
