/*
 * monitor.c - the live feed of finished calls (see monitor.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <msgpack.h>

#include "call-t.h"
#include "callobj.h"
#include "log.h"
#include "loop.h"
#include "monitor.h"
#include "plugin-t.h"
#include "server.h"
#include "stats.h"

static void monitor_on_wake(evutil_socket_t fd, short what, void *arg);

int dfd_monitor_init(dfd_monitor *m, struct event_base *base)
{
    memset(m, 0, sizeof(*m));
    atomic_init(&m->watchers, 0);
    atomic_init(&m->skipped_total, 0);
    m->pending = malloc(DFD_MONITOR_MAX_PENDING * sizeof(*m->pending));
    m->spare = malloc(DFD_MONITOR_MAX_PENDING * sizeof(*m->spare));
    m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->pending == NULL || m->spare == NULL || m->wake_fd == -1) {
        free(m->pending);
        free(m->spare);
        m->pending = m->spare = NULL;
        if (m->wake_fd != -1)
            close(m->wake_fd);
        m->wake_fd = -1;
        return -1;
    }
    pthread_mutex_init(&m->lock, NULL);
    event_assign(&m->wake_ev, base, m->wake_fd, EV_READ | EV_PERSIST, monitor_on_wake, m);
    event_add(&m->wake_ev, NULL);
    m->started = 1;
    return 0;
}

void dfd_monitor_destroy(dfd_monitor *m)
{
    if (!m->started)
        return;
    event_del(&m->wake_ev);
    close(m->wake_fd);
    pthread_mutex_destroy(&m->lock);
    free(m->pending);
    free(m->spare);
    m->pending = m->spare = NULL;
    m->started = 0;
}

void dfd_monitor_set_sink(dfd_monitor *m, dfd_monitor_sink_fn sink, void *arg)
{
    m->sink = sink;
    m->sink_arg = arg;
}

void dfd_monitor_watchers_add(dfd_monitor *m, int delta)
{
    atomic_fetch_add_explicit(&m->watchers, delta, memory_order_relaxed);
}

uint64_t dfd_monitor_dropped(dfd_monitor *m)
{
    if (!m->started)
        return 0;
    pthread_mutex_lock(&m->lock);
    uint64_t n = m->dropped_total;
    pthread_mutex_unlock(&m->lock);
    return n + atomic_load_explicit(&m->skipped_total, memory_order_relaxed);
}

void dfd_monitor_skipped(dfd_monitor *m, uint64_t n)
{
    atomic_fetch_add_explicit(&m->skipped_total, n, memory_order_relaxed);
}

/* Copies len bytes of s into out (size > 0), NUL-terminated, cut to fit. */
static void monitor_copy(char *out, size_t size, const char *s, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

/* Fills rec from call (outside the lock: the printing is the costly part). */
static void monitor_fill(dfd_monitor_rec *rec, const dfd_call *call, const char *peer,
                         int refused)
{
    const daffi_msg *msg = &call->base.msg;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    rec->wall_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    rec->duration_us = (dfd_now_ns() - call->start_ns) / 1000u;
    rec->loop = call->loop->index;
    rec->outcome = dfd_stats_outcome_of(call, refused);
    rec->notify = call->notify;
    monitor_copy(rec->peer, sizeof(rec->peer), peer, strlen(peer));
    monitor_copy(rec->callback, sizeof(rec->callback), msg->method != NULL ? msg->method : "",
                 msg->method != NULL ? msg->method_len : 0);
    rec->plugin[0] = '\0';
    if (call->cb != NULL && call->cb->plugin != NULL)
        monitor_copy(rec->plugin, sizeof(rec->plugin), call->cb->plugin->name,
                     strlen(call->cb->plugin->name));
    rec->params[0] = '\0';
    /* a lazily loaded call decodes its params here if nobody asked (its loop, which
     * owns it now: one that went elsewhere was decoded before it left) */
    const msgpack_object *params = daffi_call_params((daffi_call *)&call->base);
    if (params != NULL) {
        /* msgpack-c's printer returns the length written, or <= 0 when the buffer ran
         * out: then what fits is shown with "..." */
        size_t room = sizeof(rec->params) - 4;
        int n = msgpack_object_print_buffer(rec->params, room, *params);
        rec->params[room - 1] = '\0';
        if (n <= 0 || (size_t)n >= room - 1)
            memcpy(rec->params + strlen(rec->params), "...", 4);
    }
}

void dfd_monitor_call(dfd_monitor *m, const dfd_call *call, const char *peer, int refused)
{
    dfd_monitor_rec rec;
    int wake;

    monitor_fill(&rec, call, peer, refused);
    pthread_mutex_lock(&m->lock);
    wake = m->n == 0 && m->dropped == 0;
    if (m->n < DFD_MONITOR_MAX_PENDING) {
        m->pending[m->n++] = rec;
    } else {
        m->dropped++;
        m->dropped_total++;
    }
    pthread_mutex_unlock(&m->lock);
    if (wake) {
        uint64_t one = 1;
        /* EAGAIN: the counter is saturated, a wake-up is pending anyway */
        if (write(m->wake_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
            dfd_warn("monitor.wake", "errno=%d msg=\"%s\"", errno, strerror(errno));
    }
}

/* Main thread: a loop wrote into an empty feed. Takes every record (by swapping the
 * arrays, so that the loops never wait for the sink's writes) and delivers them. */
static void monitor_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    dfd_monitor *m = arg;
    uint64_t count;
    if (read(fd, &count, sizeof(count)) == -1 && errno != EAGAIN)
        dfd_warn("monitor.wake", "errno=%d msg=\"%s\"", errno, strerror(errno));
    pthread_mutex_lock(&m->lock);
    dfd_monitor_rec *batch = m->pending;
    unsigned n = m->n;
    uint64_t dropped = m->dropped;
    m->pending = m->spare;
    m->n = 0;
    m->dropped = 0;
    pthread_mutex_unlock(&m->lock);
    m->spare = batch;
    if (m->sink != NULL && (n > 0 || dropped > 0))
        m->sink(m->sink_arg, batch, n, dropped);
}
