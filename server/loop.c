/*
 * loop.c - one event-loop thread and its mailbox (see loop.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blocks.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "sweep.h"
#include "table.h"

static void loop_on_mail(evutil_socket_t fd, short what, void *arg);
static void loop_on_flush(evutil_socket_t fd, short what, void *arg);
static void loop_on_reap(evutil_socket_t fd, short what, void *arg);

int dfd_loop_init(dfd_loop *loop, dfd_server *srv, unsigned index, dfd_table *table)
{
    loop->srv = srv;
    loop->index = index;
    atomic_init(&loop->mem.stuck_oldest_ns, UINT64_MAX);
    size_t max_memory = srv->cfg->max_memory;
    dfd_blocks_init(&loop->blocks, max_memory != 0 && max_memory / 16 < DFD_BLOCKS_LIMIT
                                       ? max_memory / 16
                                       : DFD_BLOCKS_LIMIT);
    /* No EVENT_BASE_FLAG_PRECISE_TIMER: with it libevent's epoll backend reprograms a
     * timerfd (timerfd_settime) on every loop pass, one syscall per call more than the
     * floor (make bench, section 4). Without it the loop's clock is
     * CLOCK_MONOTONIC_COARSE, which lags by up to a tick (4 ms here), so a timer may
     * fire that much early: a call's deadline re-checks the precise clock when it
     * fires and re-arms for the rest (dispatch.c, dispatch_on_timeout), so it never
     * fires early (tests/integration/test_timeout_precision.c). */
    /* Without a lock (no thread but the loop's touches its base), except loop 0's
     * in a NATS role: libnats' threads and the other loops add and activate the NATS
     * connection's events there (nats-io.h). */
    struct event_config *ec = event_config_new();
    if (ec == NULL)
        return -1;
    if (index != 0 || !dfd_cfg_uses_nats(srv->cfg))
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
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
    event_assign(&loop->reap_ev, loop->base, -1, 0, loop_on_reap, loop);
    event_add(&loop->mail_ev, NULL);
    dfd_table_retain(table);
    loop->table = table;
    return 0;
}

static void *loop_main(void *arg)
{
    dfd_loop *loop = arg;
    dfd_sweep_start(loop);
    event_base_loop(loop->base, 0);
    return NULL;
}

int dfd_loop_start(dfd_loop *loop)
{
    return pthread_create(&loop->thread, NULL, loop_main, loop) == 0 ? 0 : -1;
}

int dfd_loop_post(dfd_loop *loop, dfd_mail_fn run, dfd_mail_drop_fn drop, void *arg)
{
    dfd_mail *m = malloc(sizeof(*m));
    if (m == NULL)
        return -1;
    m->next = NULL;
    m->run = run;
    m->drop = drop;
    m->arg = arg;
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

void dfd_loop_drain(dfd_loop *loop, void *unused)
{
    (void)unused;
    if (loop->draining)
        return;
    loop->draining = 1;
    /* dead connections are skipped: they are released at the end of this pass */
    for (dfd_conn *c = loop->conns; c != NULL; c = c->next)
        if (!c->dead)
            dfd_conn_drain(c);
    dfd_loop_check_drained(loop);
}

void dfd_loop_resume(dfd_loop *loop, void *unused)
{
    (void)unused;
    loop->draining = 0;
    atomic_store(&loop->drained, 0);
    if (loop->on_resume != NULL)
        loop->on_resume(loop);
}

void dfd_loop_check_drained(dfd_loop *loop)
{
    /* handlers whose caller left still run: their plugin generation must outlive them */
    if (loop->draining && loop->nconns == 0 && atomic_load(&loop->handler_calls) == 0)
        atomic_store(&loop->drained, 1);
}

void dfd_loop_switch_table(dfd_loop *loop, void *t)
{
    dfd_table *old = loop->table;
    loop->table = t;
    if (loop->on_table != NULL)
        loop->on_table(loop, old);
    dfd_table_release(old);
}

void dfd_loop_drop_table(void *t)
{
    dfd_table_release(t);
}

static void loop_on_stop(dfd_loop *loop, void *unused)
{
    (void)unused;
    event_base_loopbreak(loop->base);
}

void dfd_loop_stop(dfd_loop *loop)
{
    if (dfd_loop_post(loop, loop_on_stop, NULL, NULL) == -1) {
        /* out of memory: the loop still leaves, at its next pass */
        event_base_loopbreak(loop->base);
    }
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

    dfd_loop_batch_begin(loop);
    while (m != NULL) {
        dfd_mail *next = m->next;
        m->run(loop, m->arg);
        free(m);
        m = next;
    }
    dfd_loop_batch_end(loop);
}

void dfd_loop_batch_begin(dfd_loop *loop)
{
    loop->batching++;
}

void dfd_loop_batch_end(dfd_loop *loop)
{
    loop->batching--;
}

void dfd_loop_want_flush(dfd_loop *loop)
{
    if (!loop->flush_pending) {
        loop->flush_pending = 1;
        event_active(&loop->flush_ev, EV_WRITE, 0);
    }
}

void dfd_loop_want_reap(dfd_loop *loop)
{
    if (!loop->reap_pending) {
        loop->reap_pending = 1;
        event_active(&loop->reap_ev, EV_WRITE, 0);
    }
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

/* Runs after the flush: nothing on the stack can hold a connection any more, so the
 * dead ones are released here (conn.h, "Lifetime"). */
static void loop_on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_loop *loop = arg;
    loop->reap_pending = 0;
    dfd_conn_reap(loop);
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
    dfd_sweep_stop(loop);
    event_del(&loop->flush_ev);
    event_del(&loop->reap_ev);
    for (dfd_conn *c = loop->conns; c != NULL; c = c->next)
        if (!c->dead)
            dfd_conn_close(c, 0);
    /* mail that arrived after the stop: connections are closed, calls are freed */
    for (dfd_mail *m = loop->mail_head; m != NULL;) {
        dfd_mail *next = m->next;
        if (m->drop != NULL)
            m->drop(m->arg);
        free(m);
        m = next;
    }
    loop->mail_head = loop->mail_tail = NULL;
    dfd_conn_reap(loop);
    dfd_table_release(loop->table);
    loop->table = NULL;
    event_del(&loop->mail_ev);
    close(loop->mail_fd);
    pthread_mutex_destroy(&loop->mail_lock);
    event_base_free(loop->base);
    loop->base = NULL;
}
