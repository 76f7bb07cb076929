/*
 * client_async_io.c - the connection of an asynchronous client on the caller's
 * libevent loop: non-blocking connect (every resolved TCP address in turn, bounded by
 * the connect timeout), reconnect with backoff, reading and framing messages, writing
 * output inline.
 *
 * Like daffid's connections, it uses plain events on the socket and its own buffers,
 * not bufferevents (DESIGN.md: their 4 KiB reads and deferred writes cost a lot):
 * one recv() per readiness into a 64 KiB+ buffer, every whole message handled, and
 * everything the callbacks of that batch sent written together with one send() at
 * its end. A call made outside a read batch is written at once.
 *
 * States: CONNECTING -> CONNECTED -> (drop) -> BACKOFF -> CONNECTING ... or CLOSED
 * when reconnect is off (or after daffi_close()). A tls:// connection stays
 * CONNECTING through its handshake, which the loop drives on the socket's readable /
 * writable events (never waiting inside a callback), the connect timeout bounding
 * connect and handshake together; calls made meanwhile wait in the queue as for any
 * connect under way.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_int.h"

#define READS_PER_EVENT 16 /* more reads in one go only while each fills the buffer */

static void rd_cb(evutil_socket_t fd, short what, void *arg);
static void wr_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

/* Arms c's timer for ms milliseconds (replacing what it was set to). */
static void timer_set(daffi_client *c, int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(&c->as->timer, &tv);
    c->as->timer_on = 1;
}

/* Stops c's timer if it is armed. */
static void timer_stop(daffi_client *c)
{
    if (c->as->timer_on) {
        evtimer_del(&c->as->timer);
        c->as->timer_on = 0;
    }
}

/* Stops the socket's events and closes it. */
static void socket_close(daffi_client *c)
{
    daffi__async *as = c->as;

    /* event_del() also takes an event off the active queue (a flush armed by
     * daffi__as_output_added()), so neither can fire for a socket that is gone */
    if (event_initialized(&as->rd))
        event_del(&as->rd);
    if (event_initialized(&as->wr))
        event_del(&as->wr);
    as->rd_on = as->wr_on = as->flush_armed = 0;
    as->handshaking = 0;
    if (c->fd != -1) {
        daffi__tls_drop(c);
        close(c->fd);
        c->fd = -1;
    }
}

/* See client_int.h. */
void daffi__as_stop_io(daffi_client *c)
{
    socket_close(c);
    timer_stop(c);
    if (c->as->ai_list != NULL) {
        freeaddrinfo(c->as->ai_list);
        c->as->ai_list = NULL;
    }
}

/* Goes on after a connection or an attempt ended: BACKOFF with the next delay when
 * reconnect is on, else CLOSED. Returns 1 when the client is closed for good. */
static int schedule_retry(daffi_client *c)
{
    if (c->backoff.min_ms > 0 && !c->as->closing) {
        c->as->state = DAFFI__AS_BACKOFF;
        timer_set(c, daffi__backoff_next(&c->backoff));
        return 0;
    }
    c->as->state = DAFFI__AS_CLOSED;
    return 1;
}

/* The current connect attempt failed (why: the last reason). */
static void attempt_failed(daffi_client *c, const char *why)
{
    char label[300];

    daffi__as_stop_io(c);
    daffi__client_set_why(c, "cannot connect: %s%s",
                          daffi__client_addr_label(c, label, sizeof(label)), why);
    /* a list of addresses: the next one, in this same attempt (client_addrs.c) */
    if (daffi__client_next_addr(c)) {
        daffi__as_connect(c);
        return;
    }
    daffi__as_disconnected(c, 0, schedule_retry(c), DAFFI_E_UNAVAILABLE);
}

/* The established connection c dropped: closes it and fails what was in flight with
 * code (UNAVAILABLE; PROTOCOL or TOO_LARGE when the peer's bytes broke the stream).
 * Loop context only (it runs callbacks). */
static void conn_drop(daffi_client *c, int code, const char *fmt, ...) DAFFI_CL_PRINTF(3, 4);
static void conn_drop(daffi_client *c, int code, const char *fmt, ...)
{
    va_list ap;

    if (c->as->state != DAFFI__AS_CONNECTED)
        return;
    va_start(ap, fmt);
    daffi__client_vset_why(c, fmt, ap);
    va_end(ap);
    socket_close(c);
    daffi__bufs_reset(c);
    c->stats.disconnects++;
    daffi__client_addr_lost(c); /* a reconnect tries the next address first */
    daffi__as_disconnected(c, 1, schedule_retry(c), code);
}

/* The socket fd is connected: start reading and hand over to the call side. */
static void established(daffi_client *c, int fd)
{
    daffi__async *as = c->as;

    timer_stop(c);
    if (as->wr_on) {
        event_del(&as->wr);
        as->wr_on = 0;
    }
    if (as->ai_list != NULL) {
        freeaddrinfo(as->ai_list);
        as->ai_list = NULL;
    }
    c->fd = fd;
    event_assign(&as->rd, as->base, fd, EV_READ | EV_PERSIST, rd_cb, c);
    event_assign(&as->wr, as->base, fd, EV_WRITE | EV_PERSIST, wr_cb, c);
    event_add(&as->rd, NULL);
    as->rd_on = 1;
    as->state = DAFFI__AS_CONNECTED;
    as->conn_gen++;
    c->stats.connects++;
    daffi__client_attempt_over(c);
    daffi__backoff_reset(&c->backoff);
    daffi__bufs_reset(c);
    daffi__as_connected(c);
}

/* Starts a connect to the next address of the attempt (TCP: the next resolved one;
 * Unix: the path, once). Waits for its completion, or goes on to established() or
 * attempt_failed(). */
static void try_next(daffi_client *c)
{
    daffi__async *as = c->as;
    struct sockaddr_un sun;
    char why[256] = "no address";
    int fd = -1, in_progress = 0;

    if (c->addr.kind == DAFFI_ADDR_UNIX) {
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(c->addr.path) >= sizeof(sun.sun_path)) {
            attempt_failed(c, "socket path too long");
            return;
        }
        memcpy(sun.sun_path, c->addr.path, strlen(c->addr.path) + 1);
        fd = daffi__connect_begin((struct sockaddr *)&sun, sizeof(sun), &in_progress, why,
                                  sizeof(why));
        if (fd == -1 && in_progress == 2 &&
            (c->connect_timeout_ms <= 0 ||
             daffi__now_ns() - as->attempt_ns < (int64_t)c->connect_timeout_ms * 1000000)) {
            /* the listener's backlog is full: it is alive, give it a moment (1 ms
             * doubling up to 50 ms) within the connect timeout */
            as->backlog_wait_ms = as->backlog_wait_ms == 0 ? 1
                                  : as->backlog_wait_ms < 50 ? as->backlog_wait_ms * 2 : 50;
            timer_set(c, as->backlog_wait_ms);
            return;
        }
    } else {
        while (fd == -1 && as->ai_next != NULL) {
            struct addrinfo *ai = as->ai_next;

            as->ai_next = ai->ai_next;
            fd = daffi__connect_begin(ai->ai_addr, ai->ai_addrlen, &in_progress, why,
                                      sizeof(why));
        }
    }
    if (fd == -1) {
        attempt_failed(c, why);
        return;
    }
    /* a connect that completed at once (Unix sockets do) is still finished from the
     * loop, so that the state callback and the waiting calls always hear of it there */
    (void)in_progress;
    c->fd = fd;
    event_assign(&as->wr, as->base, fd, EV_WRITE | EV_PERSIST, wr_cb, c);
    event_add(&as->wr, NULL);
    as->wr_on = 1;
    if (c->connect_timeout_ms > 0)
        timer_set(c, c->connect_timeout_ms);
}

/* See client_int.h. */
void daffi__as_connect(daffi_client *c)
{
    daffi__async *as = c->as;
    char why[300];

    if (!event_initialized(&as->timer))
        evtimer_assign(&as->timer, as->base, timer_cb, c);
    as->state = DAFFI__AS_CONNECTING;
    as->attempt_ns = daffi__now_ns();
    as->backlog_wait_ms = 0;
    if (c->addr.kind == DAFFI_ADDR_TCP) {
        if (as->ai_list != NULL)
            freeaddrinfo(as->ai_list);
        as->ai_list = NULL;
        /* resolved again on every attempt: the name may point elsewhere by now */
        if (daffi__resolve(&c->addr, &as->ai_list, why, sizeof(why)) == -1) {
            attempt_failed(c, why);
            return;
        }
        as->ai_next = as->ai_list;
    }
    try_next(c);
}

/* The backoff delay or the connect timeout passed. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    daffi_client *c = arg;

    (void)fd;
    (void)what;
    c->as->timer_on = 0;
    daffi__as_enter(c);
    if (c->as->state == DAFFI__AS_BACKOFF) {
        daffi__as_connect(c);
    } else if (c->as->state == DAFFI__AS_CONNECTING && c->as->backlog_wait_ms > 0 &&
               c->fd == -1) {
        try_next(c); /* a Unix listener's backlog was full: try again */
    } else if (c->as->state == DAFFI__AS_CONNECTING) {
        /* the time is spent: do not start on the next address */
        attempt_failed(c, c->as->handshaking ? "TLS handshake timed out" : "connect timed out");
    }
    daffi__as_leave(c);
}

/* Writes pending output (loop context: a write error drops the connection). What the
 * socket does not take waits for the write event. */
static void flush(daffi_client *c)
{
    daffi__async *as = c->as;
    ssize_t n;

    while (c->out.pos < c->out.len) {
        n = daffi__io_send(c, c->out.p + c->out.pos, c->out.len - c->out.pos);
        if (n >= 0) {
            c->out.pos += (size_t)n;
            c->stats.bytes_out += (uint64_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_drop(c, DAFFI_E_UNAVAILABLE, "write: %s", strerror(errno));
            return;
        }
        if (!as->wr_on) {
            event_add(&as->wr, NULL);
            as->wr_on = 1;
        }
        return;
    }
    daffi__out_shrink_if_idle(&c->out);
    if (as->wr_on) {
        event_del(&as->wr);
        as->wr_on = 0;
    }
}

/* See client_int.h. The write is left to the loop (the write event made active),
 * where it runs in the same loop pass: the calls a program makes in a row go out in
 * one send(), and a write error never runs callbacks inside the caller's call. */
void daffi__as_output_added(daffi_client *c)
{
    daffi__async *as = c->as;

    if (as->state != DAFFI__AS_CONNECTED || as->in_read || as->flush_armed)
        return;
    as->flush_armed = 1;
    event_active(&as->wr, EV_WRITE, 1);
}

/* The connect to one address failed (why): the next address of the attempt, or the
 * attempt failed. */
static void next_address(daffi_client *c, const char *why)
{
    daffi__client_set_why(c, "cannot connect: %s", why);
    if (c->addr.kind == DAFFI_ADDR_TCP && c->as->ai_next != NULL)
        try_next(c);
    else
        attempt_failed(c, why);
}

/* Waits for fd to be readable (want_write 0) or writable (1) for the handshake: of
 * the two events, only the one the step needs is on. */
static void handshake_wait(daffi_client *c, int want_write)
{
    daffi__async *as = c->as;
    struct event *need = want_write ? &as->wr : &as->rd;
    struct event *other = want_write ? &as->rd : &as->wr;
    int *need_on = want_write ? &as->wr_on : &as->rd_on;
    int *other_on = want_write ? &as->rd_on : &as->wr_on;

    if (*other_on) {
        event_del(other);
        *other_on = 0;
    }
    if (!*need_on) {
        event_add(need, NULL);
        *need_on = 1;
    }
}

/* Runs the handshake as far as the socket allows: established, failed (the next
 * address), or waiting for the socket again. */
static void handshake_step(daffi_client *c)
{
    daffi__async *as = c->as;
    char why[300];
    int fd = c->fd;
    int rc = daffi__tls_step(c, why, sizeof(why));

    if (rc == DAFFI__TLS_WANT_READ || rc == DAFFI__TLS_WANT_WRITE) {
        handshake_wait(c, rc == DAFFI__TLS_WANT_WRITE);
        return;
    }
    /* done or failed: established() assigns both events afresh */
    if (as->rd_on)
        event_del(&as->rd);
    if (as->wr_on)
        event_del(&as->wr);
    as->rd_on = as->wr_on = 0;
    as->handshaking = 0;
    c->fd = -1;
    if (rc == DAFFI__TLS_DONE) {
        established(c, fd);
        /* records read ahead with the handshake's raise no socket event */
        if (as->state == DAFFI__AS_CONNECTED && !as->closing && daffi__io_pending(c))
            event_active(&as->rd, EV_READ, 1);
        return;
    }
    close(fd); /* the step freed the SSL */
    timer_stop(c);
    next_address(c, why);
}

/* The connect on sock completed and c->ssl was made on it: the handshake starts,
 * bounded by what is left of the connect timeout. */
static void handshake_start(daffi_client *c, int sock)
{
    daffi__async *as = c->as;

    c->fd = sock;
    as->handshaking = 1;
    event_assign(&as->rd, as->base, sock, EV_READ | EV_PERSIST, rd_cb, c);
    if (c->connect_timeout_ms > 0) {
        int64_t left = as->attempt_ns + (int64_t)c->connect_timeout_ms * 1000000 -
                       daffi__now_ns();
        timer_set(c, left > 1000000 ? (int)(left / 1000000) : 1);
    }
    handshake_step(c);
}

/* The socket is writable: a connect completed, a handshake can go on, or output the
 * kernel refused before can go now. */
static void wr_cb(evutil_socket_t fd, short what, void *arg)
{
    daffi_client *c = arg;
    char why[256];

    (void)fd;
    (void)what;
    daffi__as_enter(c);
    if (c->as->state == DAFFI__AS_CONNECTING && c->as->handshaking) {
        handshake_step(c);
    } else if (c->as->state == DAFFI__AS_CONNECTING) {
        int sock = c->fd;

        timer_stop(c);
        event_del(&c->as->wr);
        c->as->wr_on = 0;
        c->fd = -1;
        if (daffi__connect_finish(sock, why, sizeof(why)) == 0 &&
            daffi__tls_begin(c, sock, why, sizeof(why)) == 0) {
            if (c->tls_ctx == NULL) {
                established(c, sock);
            } else {
                handshake_start(c, sock);
            }
        } else {
            close(sock);
            next_address(c, why);
        }
    } else if (c->as->state == DAFFI__AS_CONNECTED) {
        c->as->flush_armed = 0;
        flush(c);
    }
    daffi__as_leave(c);
}

/* Scans and handles every whole message in the read buffer. Stops when the
 * connection is no longer up (a malformed message dropped it, or a callback closed
 * the client). */
static void process_input(daffi_client *c)
{
    daffi__inbuf *b = &c->in;
    daffi_scan_result r;
    uint64_t gen = c->as->conn_gen;

    while (b->start < b->end) {
        r = daffi_scan_feed(&b->scan, b->p + b->start, b->end - b->start, &c->lim);
        if (r == DAFFI_SCAN_NEED_MORE)
            break;
        if (r == DAFFI_SCAN_PROTOCOL) {
            conn_drop(c, DAFFI_E_PROTOCOL, "malformed message from peer: %s",
                      b->scan.error != NULL ? b->scan.error : "invalid");
            return;
        }
        if (r == DAFFI_SCAN_TOO_LARGE) {
            conn_drop(c, DAFFI_E_TOO_LARGE, "message from peer exceeds max_message (%zu bytes)%s%s",
                      c->lim.max_message, b->scan.error != NULL ? ": " : "",
                      b->scan.error != NULL ? b->scan.error : "");
            return;
        }
        if (b->scan.kind == DAFFI_MSG_RESPONSE)
            daffi__as_response(c, b->p + b->start, b->scan.size, &b->scan);
        else
            daffi__serve_message(c, b->p + b->start, b->scan.size, &b->scan);
        if (c->as->closing || c->as->state != DAFFI__AS_CONNECTED || c->as->conn_gen != gen)
            return;
        b->start += b->scan.size;
        daffi_scan_init(&b->scan);
    }
    daffi__in_settle(b);
}

/* The socket is readable: the handshake goes on, or read, handle the messages, then
 * write what they caused. */
static void rd_cb(evutil_socket_t fd, short what, void *arg)
{
    daffi_client *c = arg;
    daffi__async *as = c->as;
    size_t room;
    ssize_t n;
    int i;

    (void)fd;
    (void)what;
    daffi__as_enter(c);
    if (as->state == DAFFI__AS_CONNECTING) {
        if (as->handshaking)
            handshake_step(c);
        daffi__as_leave(c);
        return;
    }
    as->in_read = 1;
    for (i = 0; i < READS_PER_EVENT; i++) {
        if (daffi__in_make_room(c) == -1) {
            conn_drop(c, DAFFI_E_UNAVAILABLE, "out of memory for reading");
            break;
        }
        room = c->in.cap - c->in.end;
        n = daffi__io_recv(c, c->in.p + c->in.end, room);
        if (n == 0) {
            conn_drop(c, DAFFI_E_UNAVAILABLE, "connection closed by peer");
            break;
        }
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_drop(c, DAFFI_E_UNAVAILABLE, "read: %s", strerror(errno));
            break;
        }
        c->in.end += (size_t)n;
        c->stats.bytes_in += (uint64_t)n;
        process_input(c);
        if (as->closing || as->state != DAFFI__AS_CONNECTED || (size_t)n < room)
            break;
    }
    as->in_read = 0;
    if (!as->closing && as->state == DAFFI__AS_CONNECTED && c->out.pos < c->out.len)
        flush(c);
    /* records the SSL decrypted already raise no socket event */
    if (!as->closing && as->state == DAFFI__AS_CONNECTED && daffi__io_pending(c))
        event_active(&as->rd, EV_READ, 1);
    daffi__as_leave(c);
}
