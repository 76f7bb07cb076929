/*
 * nats-io.c - libnats' socket on loop 0 (see nats-io.h, docs/NATS.md "Threads").
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/thread.h>

#include "log.h"
#include "nats-io.h"
#include "server.h"

typedef struct nats_watch {
    natsSubscription *sub;
    dfd_nats_sync_fn fn;
    void *closure;
} nats_watch;

/* Events of a socket libnats left (a reconnection): freed with the io. */
typedef struct nats_retired {
    struct nats_retired *next;
    struct event *read_ev, *write_ev;
} nats_retired;

struct dfd_nats_io {
    dfd_loop *loop;
    natsConnection *nc;            /* set by attach (libnats' thread), then fixed */
    pthread_mutex_t lock;          /* everything below */
    struct event *read_ev;         /* the socket readable: read and parse, then drain */
    struct event *write_ev;        /* the socket writable again after a short write */
    struct event *kick_ev;         /* something was published: write it this pass */
    struct event *drain_ev;        /* a subscription was watched: drain what it holds */
    int fd;
    nats_retired *retired;
    nats_watch *watches;
    size_t nwatches, cap;
    unsigned gen;                  /* bumped by every unwatch: a drain pass restarts */
};

void dfd_nats_io_enable_locking(void)
{
    evthread_use_pthreads();
}

dfd_nats_io *dfd_nats_io_new(dfd_loop *loop)
{
    dfd_nats_io *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return NULL;
    io->loop = loop;
    io->fd = -1;
    pthread_mutex_init(&io->lock, NULL);
    return io;
}

/* ---- draining the watched subscriptions ------------------------------------------------ */

/* Takes the next message of a watched subscription (from *at on), under the lock so
 * that an unwatch cannot destroy the subscription meanwhile. Returns 1 with the message
 * and its callback, 0 when every watched subscription is empty. */
static int io_next(dfd_nats_io *io, size_t *at, unsigned *gen, natsMsg **msg,
                   nats_watch *w)
{
    pthread_mutex_lock(&io->lock);
    if (*gen != io->gen) {
        *gen = io->gen; /* the array moved: start again (an empty sub costs a check) */
        *at = 0;
    }
    for (; *at < io->nwatches; (*at)++) {
        nats_watch *cur = &io->watches[*at];
        int pending = 0;
        if (natsSubscription_GetPending(cur->sub, &pending, NULL) != NATS_OK || pending <= 0)
            continue;
        natsStatus s = natsSubscription_NextMsg(msg, cur->sub, 1);
        if (s == NATS_OK) {
            *w = *cur;
            pthread_mutex_unlock(&io->lock);
            return 1;
        }
        /* a failure (the subscription closed meanwhile) leaves no message: the next
         * one. NATS_NO_RESPONDERS cannot come: no-responders are never watched */
    }
    pthread_mutex_unlock(&io->lock);
    return 0;
}

/* Runs the callbacks of every message the watched subscriptions hold, in each
 * subscription's order. Loop 0, after a read; as a mail's work is batched (loop.h). */
static void io_drain(dfd_nats_io *io)
{
    size_t at = 0;
    unsigned gen = 0; /* a stale value only makes io_next start at 0, where it is */
    natsMsg *msg;
    nats_watch w;
    dfd_loop_batch_begin(io->loop);
    while (io_next(io, &at, &gen, &msg, &w))
        w.fn(io->nc, w.sub, msg, w.closure);
    dfd_loop_batch_end(io->loop);
}

/* ---- libevent callbacks (loop 0) ---------------------------------------------------------- */

static void io_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_nats_io *io = arg;
    natsConnection_ProcessReadEvent(io->nc);
    io_drain(io);
}

/* Not a read: a read event on a TLS connection with nothing to read would wait in
 * libnats for the socket. */
static void io_on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    io_drain(arg);
}

static void io_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_nats_io *io = arg;
    natsConnection_ProcessWriteEvent(io->nc);
}

/* A kick: write now; a short write waits for the socket (write_ev, which libnats
 * removes once everything went). */
static void io_on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_nats_io *io = arg;
    natsConnection_ProcessWriteEvent(io->nc);
    if (natsConnection_Buffered(io->nc) > 0) {
        pthread_mutex_lock(&io->lock);
        if (io->write_ev != NULL)
            event_add(io->write_ev, NULL);
        pthread_mutex_unlock(&io->lock);
    }
}

/* ---- libnats' event loop hooks ----------------------------------------------------------- */

static natsStatus io_attach(void **user, void *loop, natsConnection *nc, natsSock sock)
{
    dfd_nats_io *io = loop;
    struct event_base *base = io->loop->base;
    natsStatus s = NATS_OK;
    pthread_mutex_lock(&io->lock);
    io->nc = nc;
    if (io->read_ev != NULL) {
        /* a reconnection: the old events were removed (libnats stopped polling), but
         * loop 0 may still be leaving one of their callbacks */
        nats_retired *r = malloc(sizeof(*r));
        if (r == NULL) {
            s = NATS_NO_MEMORY;
            goto out;
        }
        r->read_ev = io->read_ev;
        r->write_ev = io->write_ev;
        r->next = io->retired;
        io->retired = r;
        io->read_ev = io->write_ev = NULL;
    }
    if (io->kick_ev == NULL)
        io->kick_ev = event_new(base, -1, 0, io_on_kick, io);
    if (io->drain_ev == NULL)
        io->drain_ev = event_new(base, -1, 0, io_on_drain, io);
    io->read_ev = event_new(base, sock, EV_READ | EV_PERSIST, io_on_read, io);
    io->write_ev = event_new(base, sock, EV_WRITE | EV_PERSIST, io_on_write, io);
    if (io->kick_ev == NULL || io->drain_ev == NULL || io->read_ev == NULL || io->write_ev == NULL ||
        event_add(io->read_ev, NULL) == -1) {
        s = NATS_NO_MEMORY;
        goto out;
    }
    io->fd = sock;
    *user = io;
out:
    pthread_mutex_unlock(&io->lock);
    return s;
}

static natsStatus io_read(void *user, bool add)
{
    dfd_nats_io *io = user;
    pthread_mutex_lock(&io->lock);
    int rc = io->read_ev == NULL ? 0 : add ? event_add(io->read_ev, NULL)
                                           : event_del_noblock(io->read_ev);
    pthread_mutex_unlock(&io->lock);
    return rc == 0 ? NATS_OK : NATS_ERR;
}

/* add: libnats buffered something to send (called with its connection locked, on the
 * publishing thread): loop 0 writes it once the events of this pass ran, one write for
 * everything published meanwhile. libnats asks again only after a write sent all. */
static natsStatus io_write(void *user, bool add)
{
    dfd_nats_io *io = user;
    pthread_mutex_lock(&io->lock);
    if (add && io->kick_ev != NULL)
        event_active(io->kick_ev, EV_WRITE, 1);
    else if (!add && io->write_ev != NULL)
        event_del_noblock(io->write_ev);
    pthread_mutex_unlock(&io->lock);
    return NATS_OK;
}

/* The connection is closed (any thread): its events stop; they are freed with io. */
static natsStatus io_detach(void *user)
{
    dfd_nats_io *io = user;
    pthread_mutex_lock(&io->lock);
    if (io->read_ev != NULL)
        event_del_noblock(io->read_ev);
    if (io->write_ev != NULL)
        event_del_noblock(io->write_ev);
    io->fd = -1;
    pthread_mutex_unlock(&io->lock);
    return NATS_OK;
}

natsStatus dfd_nats_io_options(dfd_nats_io *io, natsOptions *opts)
{
    natsStatus s = natsOptions_SetEventLoop(opts, io, io_attach, io_read, io_write, io_detach);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(opts, true);
    return s;
}

/* ---- watching --------------------------------------------------------------------------- */

/* Makes sub run fn(nc, sub, msg, closure) on loop 0 for each message. Returns 0, or -1
 * (out of memory: nothing watched). */
static int io_watch(dfd_nats_io *io, natsSubscription *sub, dfd_nats_sync_fn fn,
                    void *closure)
{
    int rc = 0;
    pthread_mutex_lock(&io->lock);
    if (io->nwatches == io->cap) {
        size_t cap = io->cap ? io->cap * 2 : 8;
        nats_watch *w = realloc(io->watches, cap * sizeof(*w));
        if (w == NULL)
            rc = -1;
        else {
            io->watches = w;
            io->cap = cap;
        }
    }
    if (rc == 0) {
        io->watches[io->nwatches++] = (nats_watch){sub, fn, closure};
        /* messages may have come before it was watched */
        if (io->drain_ev != NULL)
            event_active(io->drain_ev, EV_READ, 1);
    }
    pthread_mutex_unlock(&io->lock);
    return rc;
}

static void io_unwatch(dfd_nats_io *io, natsSubscription *sub)
{
    pthread_mutex_lock(&io->lock);
    for (size_t i = 0; i < io->nwatches; i++) {
        if (io->watches[i].sub == sub) {
            memmove(&io->watches[i], &io->watches[i + 1],
                    (io->nwatches - i - 1) * sizeof(io->watches[0]));
            io->nwatches--;
            io->gen++;
            break;
        }
    }
    pthread_mutex_unlock(&io->lock);
}

natsStatus dfd_nats_io_subscribe(dfd_nats_io *io, natsSubscription **sub, natsConnection *nc,
                                 const char *subject, const char *queue, dfd_nats_sync_fn fn,
                                 void *closure)
{
    natsStatus s = queue != NULL ? natsConnection_QueueSubscribeSync(sub, nc, subject, queue)
                                 : natsConnection_SubscribeSync(sub, nc, subject);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(*sub, -1, -1);
    if (s == NATS_OK && io_watch(io, *sub, fn, closure) == -1)
        s = NATS_NO_MEMORY;
    if (s != NATS_OK) {
        natsSubscription_Destroy(*sub);
        *sub = NULL;
    }
    return s;
}

void dfd_nats_io_unsubscribe(dfd_nats_io *io, natsSubscription **sub)
{
    if (*sub == NULL)
        return;
    if (io != NULL)
        io_unwatch(io, *sub);
    natsSubscription_Unsubscribe(*sub);
    natsSubscription_Destroy(*sub);
    *sub = NULL;
}

/* ---- writing without loop 0 -------------------------------------------------------------- */

int dfd_nats_io_pump(dfd_nats_io *io, natsConnection *nc, int timeout_ms)
{
    if (io == NULL || nc == NULL)
        return 0;
    uint64_t end = dfd_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        pthread_mutex_lock(&io->lock);
        int fd = io->fd;
        pthread_mutex_unlock(&io->lock);
        /* what NATS sent meanwhile is read too: a socket closed with bytes unread
         * resets the connection, and NATS may then drop what we wrote last. Only
         * when readable: libnats waits for the socket inside a read that finds none;
         * and never beside loop 0 (one parser, one read buffer, one TLS object). */
        struct pollfd pfd = {fd, POLLIN, 0};
        if (fd >= 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN))
            natsConnection_ProcessReadEvent(nc);
        natsConnection_ProcessWriteEvent(nc);
        if (natsConnection_Buffered(nc) <= 0)
            return 0;
        if (dfd_now_ns() >= end)
            return -1;
        pfd.events = POLLOUT;
        if (fd < 0 || poll(&pfd, 1, 2) == -1) {
            struct timespec ts = {0, 2000000}; /* reconnecting: it may come back */
            nanosleep(&ts, NULL);
        }
    }
}

void dfd_nats_io_free(dfd_nats_io *io)
{
    if (io == NULL)
        return;
    while (io->retired != NULL) {
        nats_retired *r = io->retired;
        io->retired = r->next;
        event_free(r->read_ev);
        event_free(r->write_ev);
        free(r);
    }
    if (io->read_ev != NULL)
        event_free(io->read_ev);
    if (io->write_ev != NULL)
        event_free(io->write_ev);
    if (io->kick_ev != NULL)
        event_free(io->kick_ev);
    if (io->drain_ev != NULL)
        event_free(io->drain_ev);
    free(io->watches);
    pthread_mutex_destroy(&io->lock);
    free(io);
}
