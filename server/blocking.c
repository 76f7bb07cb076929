/*
 * blocking.c - the blocking thread pool (see blocking.h).
 *
 * A plain mutex + condition variable queue: blocking callbacks are long (milliseconds
 * and up), so the queue's cost is noise next to them. The pool's threads never touch a
 * connection; completions go back to the owning loop through dispatch.
 */
#include <pthread.h>
#include <stdlib.h>

#include "blocking.h"
#include "call-t.h"
#include "callobj.h"
#include "dispatch.h"
#include "log.h"
#include "plugin-t.h"

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

static void *blocking_main(void *arg)
{
    dfd_blocking *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->cond, &pool->lock);
        if (pool->head == NULL)
            break;
        dfd_call *call = pool->head;
        pool->head = call->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        call->next = NULL;
        pool->queued--;
        pool->running++;
        int stopping = pool->stopping;
        pthread_mutex_unlock(&pool->lock);

        if (stopping) {
            daffi_call_set_error(&call->base, DAFFI_E_SHUTTING_DOWN, "daffid is shutting down");
            dfd_dispatch_after_handler(call, DAFFI_DONE);
        } else {
            daffi_status st = call->cb->fn(&call->base);
            dfd_dispatch_after_handler(call, st);
        }

        pthread_mutex_lock(&pool->lock);
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
        if (pthread_create(&pool->threads[i], NULL, blocking_main, pool) != 0) {
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
