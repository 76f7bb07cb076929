/*
 * loop.c - one event-loop thread and its mailbox (see loop.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "call.h"
#include "conn.h"
#include "dispatch.h"
#include "fanout.h"
#include "log.h"
#include "loop.h"
#include "members.h"
#include "router.h"
#include "server.h"
#include "stream.h"
#include "table.h"
#include "worker.h"

static void loop_on_mail(evutil_socket_t fd, short what, void *arg);
static void loop_on_flush(evutil_socket_t fd, short what, void *arg);

int dfd_loop_init(dfd_loop *loop, dfd_server *srv, unsigned index, dfd_table *table)
{
    loop->srv = srv;
    loop->index = index;
    /* precise timers: deadlines are promised to the millisecond, and libevent's coarse
     * clock fires them up to a few ms early */
    struct event_config *ec = event_config_new();
    if (ec == NULL)
        return -1;
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    loop->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (loop->base == NULL)
        return -1;
    loop->mail_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->mail_fd == -1) {
        event_base_free(loop->base);
        loop->base = NULL;
        return -1;
    }
    pthread_mutex_init(&loop->mail_lock, NULL);
    event_assign(&loop->mail_ev, loop->base, loop->mail_fd, EV_READ | EV_PERSIST,
                 loop_on_mail, loop);
    event_assign(&loop->flush_ev, loop->base, -1, 0, loop_on_flush, loop);
    event_add(&loop->mail_ev, NULL);
    dfd_table_retain(table);
    loop->table = table;
    return 0;
}

static void *loop_main(void *arg)
{
    dfd_loop *loop = arg;
    event_base_loop(loop->base, 0);
    return NULL;
}

int dfd_loop_start(dfd_loop *loop)
{
    return pthread_create(&loop->thread, NULL, loop_main, loop) == 0 ? 0 : -1;
}

int dfd_loop_post(dfd_loop *loop, dfd_mail_kind kind, int fd, int is_unix, void *ptr)
{
    dfd_mail *m = malloc(sizeof(*m));
    if (m == NULL)
        return -1;
    m->next = NULL;
    m->kind = kind;
    m->fd = fd;
    m->is_unix = is_unix;
    m->ptr = ptr;
    pthread_mutex_lock(&loop->mail_lock);
    int was_empty = loop->mail_head == NULL;
    if (loop->mail_tail)
        loop->mail_tail->next = m;
    else
        loop->mail_head = m;
    loop->mail_tail = m;
    pthread_mutex_unlock(&loop->mail_lock);
    if (was_empty) {
        uint64_t one = 1;
        /* a full counter (EAGAIN) still wakes the loop: nothing is lost */
        while (write(loop->mail_fd, &one, sizeof(one)) == -1 && errno == EINTR)
            ;
    }
    return 0;
}

/* Starts draining: idle connections close now, busy ones after their last answer. */
static void loop_drain(dfd_loop *loop)
{
    loop->draining = 1;
    if (loop->srv->worker != NULL && loop->index == 0)
        dfd_worker_withdraw(loop->srv->worker);
    for (dfd_conn *c = loop->conns; c != NULL;) {
        dfd_conn *next = c->next;
        dfd_conn_drain(c);
        c = next;
    }
    if (loop->nconns == 0)
        atomic_store(&loop->drained, 1);
}

static void loop_on_mail(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    dfd_loop *loop = arg;
    uint64_t count;
    while (read(fd, &count, sizeof(count)) == -1 && errno == EINTR)
        ;
    pthread_mutex_lock(&loop->mail_lock);
    dfd_mail *m = loop->mail_head;
    loop->mail_head = loop->mail_tail = NULL;
    pthread_mutex_unlock(&loop->mail_lock);

    loop->batching++;
    while (m != NULL) {
        dfd_mail *next = m->next;
        switch (m->kind) {
        case DFD_MAIL_CONN:
            if (loop->draining) {
                close(m->fd);
                atomic_fetch_sub(&loop->srv->conns, 1);
            } else if (dfd_conn_adopt(loop, m->fd, m->is_unix) == NULL) {
                atomic_fetch_sub(&loop->srv->conns, 1);
            }
            break;
        case DFD_MAIL_CALL_DONE:
            dfd_dispatch_finish(m->ptr);
            break;
        case DFD_MAIL_CALL_RUN:
            dfd_dispatch_run(m->ptr);
            break;
        case DFD_MAIL_TABLE: {
            dfd_table *old = loop->table;
            loop->table = m->ptr;
            /* a worker re-announces when its callbacks changed (not on every switch) */
            if (loop->srv->worker != NULL && loop->index == 0 &&
                !dfd_table_same_callbacks(old, loop->table))
                dfd_worker_announce(loop->srv->worker);
            dfd_table_release(old);
            break;
        }
        case DFD_MAIL_FORWARD:
            dfd_router_send(m->ptr);
            break;
        case DFD_MAIL_SNAPSHOT:
            dfd_router_apply_snapshot(loop, m->ptr);
            break;
        case DFD_MAIL_EVENT:
            dfd_router_on_event(loop, m->ptr);
            break;
        case DFD_MAIL_CLOSE_MEMBER:
            dfd_router_close_member(m->ptr);
            break;
        case DFD_MAIL_STREAM:
            dfd_stream_on_mail(loop, m->ptr);
            break;
        case DFD_MAIL_DRAIN:
            loop_drain(loop);
            break;
        case DFD_MAIL_STOP:
            event_base_loopbreak(loop->base);
            break;
        }
        free(m);
        m = next;
    }
    loop->batching--;
}

/* Runs after the socket and mail events of one poll: writes what they gathered for
 * other connections (see conn.c, conn_after_append). */
static void loop_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_loop *loop = arg;
    loop->flush_pending = 0;
    dfd_conn_flush_dirty(loop);
}

static void loop_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_router_heartbeat(arg);
}

void dfd_loop_start_heartbeat(dfd_loop *loop, uint64_t interval_ms)
{
    struct timeval tv = {(time_t)(interval_ms / 1000), (suseconds_t)((interval_ms % 1000) * 1000)};
    event_assign(&loop->heartbeat_ev, loop->base, -1, EV_PERSIST, loop_on_heartbeat, loop);
    event_add(&loop->heartbeat_ev, &tv);
    loop->heartbeat_armed = 1;
}

void dfd_loop_join(dfd_loop *loop)
{
    if (loop->base != NULL && loop->thread) {
        pthread_join(loop->thread, NULL);
        loop->thread = 0;
    }
}

void dfd_loop_destroy(dfd_loop *loop)
{
    if (loop->base == NULL)
        return;
    dfd_loop_join(loop);
    if (loop->heartbeat_armed)
        event_del(&loop->heartbeat_ev);
    event_del(&loop->flush_ev);
    dfd_fanout_loop_destroy(loop);
    while (loop->conns != NULL)
        dfd_conn_close(loop->conns, 0);
    /* mail that arrived after STOP: connections are closed, calls are freed */
    for (dfd_mail *m = loop->mail_head; m != NULL;) {
        dfd_mail *next = m->next;
        if (m->kind == DFD_MAIL_CONN)
            close(m->fd);
        else if (m->kind == DFD_MAIL_TABLE)
            dfd_table_release(m->ptr);
        else if (m->kind == DFD_MAIL_CALL_DONE || m->kind == DFD_MAIL_CALL_RUN ||
                 m->kind == DFD_MAIL_FORWARD)
            dfd_call_free(m->ptr);
        else if (m->kind == DFD_MAIL_SNAPSHOT)
            dfd_snapshot_release(m->ptr);
        else if (m->kind == DFD_MAIL_EVENT)
            dfd_event_free(m->ptr);
        else if (m->kind == DFD_MAIL_CLOSE_MEMBER)
            dfd_member_release(m->ptr);
        else if (m->kind == DFD_MAIL_STREAM)
            dfd_stream_mail_free(m->ptr);
        free(m);
        m = next;
    }
    loop->mail_head = loop->mail_tail = NULL;
    dfd_call_free_list(loop);
    dfd_snapshot_release(loop->snapshot);
    loop->snapshot = NULL;
    dfd_table_release(loop->table);
    loop->table = NULL;
    event_del(&loop->mail_ev);
    close(loop->mail_fd);
    pthread_mutex_destroy(&loop->mail_lock);
    event_base_free(loop->base);
    loop->base = NULL;
}
