/*
 * conn.c - a client connection on its loop (see conn.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "blocks.h"
#include "budget.h"
#include "call-t.h"
#include "callobj.h"
#include "conn-tls.h"
#include "conn.h"
#include "log.h"
#include "server.h"

#define CONN_READ_MIN (64 * 1024)   /* read buffer size; grows for larger messages */
#define CONN_READ_ROOM (16 * 1024)  /* compact or grow when less room than this */

static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);
static void conn_flush(dfd_conn *c);
static void conn_kill(dfd_conn *c);

static const daffi_limits *conn_limits(const dfd_conn *c)
{
    return &c->loop->srv->limits;
}

dfd_conn *dfd_conn_adopt(dfd_loop *loop, int fd, int is_unix, const dfd_conn_ops *ops,
                         void *owner)
{
    dfd_conn *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->in = malloc(CONN_READ_MIN)) == NULL) {
        free(c);
        close(fd);
        return NULL;
    }
    c->loop = loop;
    c->fd = fd;
    c->is_unix = is_unix;
    c->ops = ops;
    c->owner = owner;
    c->in_cap = CONN_READ_MIN;
    c->last_rx_ns = dfd_now_ns();
    c->active_tick = loop->tick;
    daffi_scan_init(&c->scan);
    msgpack_sbuffer_init(&c->out);
    if (is_unix) {
        snprintf(c->peer, sizeof(c->peer), "unix:fd%d", fd);
    } else {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char host[48] = "?";
        int port = 0;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
                evutil_inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
                port = ntohs(sin->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
                evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
                port = ntohs(sin6->sin6_port);
            }
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    }
    event_assign(&c->rev, loop->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
    event_assign(&c->wev, loop->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
    event_add(&c->rev, NULL);
    c->next = loop->conns;
    if (loop->conns)
        loop->conns->prev = c;
    loop->conns = c;
    loop->nconns++;
    dfd_stat_add(&loop->stats, DFD_STAT_connections_accepted, 1);
    dfd_debug("conn.open", "peer=%s loop=%u", c->peer, loop->index);
    return c;
}

void dfd_conn_set_owner(dfd_conn *c, const dfd_conn_ops *ops, void *owner)
{
    c->ops = ops;
    c->owner = owner;
}

void dfd_conn_link(dfd_conn *c, dfd_call *call)
{
    call->conn = c;
    call->conn_prev = NULL;
    call->conn_next = c->calls;
    if (c->calls)
        c->calls->conn_prev = call;
    c->calls = call;
    if (!call->notify)
        c->pending++;
    dfd_budget_link_call(c, call);
}

int dfd_conn_idle(const dfd_conn *c)
{
    if (c->pending != 0 || c->calls != NULL)
        return 0;
    return c->ops->busy == NULL || !c->ops->busy(c);
}

/* Removes call from the in-flight list; a connection that was only waiting for its
 * calls (peer finished sending, or draining) closes once the last one is answered. */
static void conn_unlink(dfd_conn *c, dfd_call *call)
{
    if (call->conn_prev)
        call->conn_prev->conn_next = call->conn_next;
    else
        c->calls = call->conn_next;
    if (call->conn_next)
        call->conn_next->conn_prev = call->conn_prev;
    call->conn_prev = call->conn_next = NULL;
    call->conn = NULL;
    if (!call->notify)
        c->pending--;
    dfd_budget_unlink_call(c, call);
    if ((c->eof || c->loop->draining) && dfd_conn_idle(c))
        c->closing = 1;
}

/* After appending output: write now, unless a batch is in progress. The connection's
 * own read batch writes at its end; output for other connections (a router forwarding
 * to a member, answers mailed back) waits for the loop's flush event, which libevent
 * runs after every socket event of the same poll: requests that many callers sent to
 * one member in one pass leave in one write. */
static void conn_after_append(dfd_conn *c)
{
    if (c->in_batch || c->dead)
        return;
    dfd_loop *loop = c->loop;
    if (loop->batching) {
        if (!c->dirty) {
            c->dirty = 1;
            c->dirty_next = loop->dirty;
            loop->dirty = c;
        }
        dfd_loop_want_flush(loop);
        return;
    }
    conn_flush(c);
}

void dfd_conn_flush_dirty(dfd_loop *loop)
{
    while (loop->dirty != NULL) {
        dfd_conn *c = loop->dirty;
        loop->dirty = c->dirty_next;
        c->dirty = 0;
        c->dirty_next = NULL;
        conn_flush(c);
    }
}

/* The tail has left, or joined out: its block goes back to the loop's cache. */
static void conn_tail_release(dfd_conn *c)
{
    dfd_blocks_give(&c->loop->blocks, c->tail, c->tail_cap, c->loop->tick);
    c->tail = NULL;
    c->tail_len = c->tail_off = c->tail_cap = 0;
}

/* Room in c's output for n more bytes: a large output takes a block of the loop's
 * cache (on failure the write that follows tries realloc, and reports). Output
 * appended behind a tail goes after it: what is left of the tail joins out first (a
 * batch of several large answers copies as it did without tails). */
static void conn_out_room(dfd_conn *c, size_t n)
{
    msgpack_sbuffer *o = &c->out;
    size_t rest = c->tail_len - c->tail_off;
    if (o->alloc - o->size < rest + n && o->size + rest + n >= DFD_BLOCK_MIN)
        (void)dfd_blocks_grow(&c->loop->blocks, &o->data, &o->alloc, o->size,
                              o->size + rest + n, c->loop->tick);
    if (c->tail == NULL)
        return;
    if (msgpack_sbuffer_write(o, c->tail + c->tail_off, rest) != 0) {
        dfd_error("conn.oom", "peer=%s msg=\"out of memory joining output\"", c->peer);
        conn_kill(c);
        return;
    }
    conn_tail_release(c);
}

/* A large flat result of call leaves from its own block after its header, without a
 * copy into out (plaintext, when nothing else waits: the flush writes both with one
 * sendmsg). Returns 1 when done so, 0 when the copying path must answer. */
static int conn_answer_tail(dfd_conn *c, dfd_call *call)
{
    daffi_call *b = &call->base;
    if (c->tls != NULL || c->tail != NULL || c->dead || b->outcome != DAFFI_OUTCOME_RESULT ||
        b->result.size < DFD_BLOCK_MIN || b->result.size + 16 > conn_limits(c)->max_message ||
        !daffi_call_result_is_flat(b))
        return 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    if (daffi_pack_response_ok(&pk, call->msgid) == -1)
        return 0;
    c->tail = b->result.data;
    c->tail_len = b->result.size;
    c->tail_cap = b->result.alloc;
    c->tail_off = 0;
    msgpack_sbuffer_init(&b->result);
    dfd_stat_add(&c->loop->stats, DFD_STAT_responses_ok, 1);
    return 1;
}

void dfd_conn_answer(dfd_conn *c, dfd_call *call)
{
    if (conn_answer_tail(c, call)) {
        conn_unlink(c, call);
        conn_after_append(c);
        return;
    }
    conn_out_room(c, call->base.result.size + 16);
    int code = daffi_call_write_response(&call->base, call->msgid, &c->out, conn_limits(c));
    if (code == -1) {
        dfd_error("conn.oom", "peer=%s msg=\"out of memory writing a response\"", c->peer);
        c->closing = 1;
    } else if (code == 0) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_responses_ok, 1);
    } else {
        dfd_stat_add(&c->loop->stats, DFD_STAT_responses_error, 1);
        if (code == DAFFI_E_TOO_LARGE)
            dfd_stat_add(&c->loop->stats, DFD_STAT_too_large, 1);
    }
    conn_unlink(c, call);
    conn_after_append(c);
}

void dfd_conn_forget(dfd_conn *c, dfd_call *call)
{
    conn_unlink(c, call);
    if (c->closing)
        conn_after_append(c);
}

const daffi_scan *dfd_conn_scan_of(const dfd_conn *c, const char *bytes, size_t size)
{
    return bytes == c->in + c->in_start && c->scan.size == size ? &c->scan : NULL;
}

char *dfd_conn_take_input(dfd_conn *c, const char *bytes, size_t size, size_t *cap)
{
    if (bytes != c->in || size != c->in_len || c->in_cap < DFD_BLOCK_MIN || c->in_taken)
        return NULL;
    char *fresh = malloc(CONN_READ_MIN);
    if (fresh == NULL)
        return NULL;
    char *p = c->in;
    *cap = c->in_cap;
    c->in = fresh;
    c->in_cap = CONN_READ_MIN;
    c->in_start = c->in_len = 0;
    c->in_taken = 1;
    dfd_budget_read_buffer(c, 0);
    return p;
}

void dfd_conn_error(dfd_conn *c, uint32_t msgid, int code, const char *message)
{
    conn_out_room(c, 64);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    daffi_pack_response_error(&pk, msgid, code, message);
    dfd_stat_add(&c->loop->stats, DFD_STAT_responses_error, 1);
    conn_after_append(c);
}

void dfd_conn_write_raw(dfd_conn *c, const char *p, size_t len)
{
    conn_out_room(c, len);
    msgpack_sbuffer_write(&c->out, p, len);
    dfd_stat_add(&c->loop->stats, DFD_STAT_responses_ok, 1);
    conn_after_append(c);
}

void dfd_conn_write_raw_error(dfd_conn *c, const char *p, size_t len)
{
    conn_out_room(c, len);
    msgpack_sbuffer_write(&c->out, p, len);
    dfd_stat_add(&c->loop->stats, DFD_STAT_responses_error, 1);
    conn_after_append(c);
}

void dfd_conn_send_raw(dfd_conn *c, const char *p, size_t len)
{
    conn_out_room(c, len);
    msgpack_sbuffer_write(&c->out, p, len);
    conn_after_append(c);
}

void dfd_conn_send_request(dfd_conn *c, uint32_t msgid, const char *method,
                           size_t method_len, const char *params_raw, size_t params_len,
                           int notify)
{
    msgpack_packer pk;
    conn_out_room(c, method_len + params_len + 16);
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    if (notify) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int(&pk, DAFFI_MSG_NOTIFY);
    } else {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_int(&pk, DAFFI_MSG_REQUEST);
        msgpack_pack_uint32(&pk, msgid);
    }
    msgpack_pack_str(&pk, method_len);
    msgpack_pack_str_body(&pk, method, method_len);
    msgpack_sbuffer_write(&c->out, params_raw, params_len);
    conn_after_append(c);
}

void dfd_conn_answer_now(dfd_conn *c, dfd_call *call)
{
    if (conn_answer_tail(c, call)) {
        conn_after_append(c);
        return;
    }
    conn_out_room(c, call->base.result.size + 16);
    daffi_call_write_response(&call->base, call->msgid, &c->out, conn_limits(c));
    dfd_stat_add(&c->loop->stats, DFD_STAT_responses_ok, 1);
    conn_after_append(c);
}

/* Stops reading c for good and closes it once its output is written, after an error
 * response (code, msg) to the request being framed when its msgid was read. */
static void conn_end_input(dfd_conn *c, int code, const char *msg)
{
    if (c->scan.have_msgid && c->scan.kind == DAFFI_MSG_REQUEST)
        dfd_conn_error(c, c->scan.msgid, code, msg);
    c->read_paused = 1;
    event_del(&c->rev);
    c->closing = 1;
}

/* Ends the connection for malformed or oversize input (conn_end_input). */
static void conn_reject_input(dfd_conn *c, daffi_scan_result r)
{
    if (c->tls == NULL && c->in_len - c->in_start >= 2 && c->in[c->in_start] == 0x16 &&
        c->in[c->in_start + 1] == 0x03) {
        /* a TLS record header (handshake, version 3.x) where a message should start */
        dfd_warn("conn.tls_on_plaintext", "peer=%s msg=\"the client starts TLS on a "
                 "plaintext listener (use its tls:// address): connection closed\"", c->peer);
        dfd_stat_add(&c->loop->stats, DFD_STAT_tls_on_plaintext_refused, 1);
        conn_end_input(c, DAFFI_E_PROTOCOL, "not TLS here");
        return;
    }
    int code = r == DAFFI_SCAN_TOO_LARGE ? DAFFI_E_TOO_LARGE : DAFFI_E_PROTOCOL;
    dfd_stat_add(&c->loop->stats, r == DAFFI_SCAN_TOO_LARGE ? DFD_STAT_too_large
                                                             : DFD_STAT_protocol_errors, 1);
    dfd_warn("conn.bad_input", "peer=%s error=%s reason=\"%s\"", c->peer,
             daffi_error_name(code), c->scan.error ? c->scan.error : "?");
    conn_end_input(c, code, c->scan.error ? c->scan.error : daffi_error_name(code));
}

static void conn_pause_reading(dfd_conn *c);

/* Reading c again after a pause: bytes TLS already decrypted raise no socket event. */
static void conn_read_again(dfd_conn *c)
{
    event_add(&c->rev, NULL);
    if (dfd_conn_tls_pending(c))
        event_active(&c->rev, EV_READ, 0);
}

/* The message arriving on c needs its read buffer to grow by grow bytes, which the
 * memory budget does not have now: c is not read until it has (the sweep resumes it,
 * dfd_budget_resume), unless the message alone is past the connection's share, which
 * it can never have (conn_end_input, with OVERLOADED). */
static void conn_wait_memory(dfd_conn *c, size_t grow)
{
    char msg[256];

    if (c->mem_in + grow <= c->loop->srv->budget.conn_limit) {
        c->mem_wait = grow;
        c->mem_paused = 1;
        c->loop->mem.npaused++;
        dfd_stat_add(&c->loop->stats, DFD_STAT_memory_waits, 1);
        dfd_debug("conn.memory_wait", "peer=%s need=%zu", c->peer, grow);
        conn_pause_reading(c);
        return;
    }
    dfd_budget_refusal(c, grow, msg, sizeof(msg));
    dfd_stat_add(&c->loop->stats, DFD_STAT_memory_refused, 1);
    dfd_warn("conn.memory_refused", "peer=%s msg=\"a message arriving needs more read "
             "buffer than its share: %s\"", c->peer, msg);
    conn_end_input(c, DAFFI_E_OVERLOADED, msg);
}

void dfd_conn_memory_resume(dfd_conn *c)
{
    c->mem_paused = 0;
    c->loop->mem.npaused--;
    /* output over max_output keeps it paused: conn_flush resumes it then */
    if (!c->eof && !c->closing &&
        dfd_conn_backlog(c) <= c->loop->srv->cfg->max_output / 2) {
        c->read_paused = 0;
        conn_read_again(c);
    }
}

/* Makes room for at least CONN_READ_ROOM more bytes, or for the whole message being
 * framed: compacts the buffer, then grows it (never past max_message + a read).
 * Returns 0, -1 when out of memory, -2 when the memory budget has no room
 * (conn_wait_memory). */
static int conn_make_room(dfd_conn *c)
{
    if (c->in_cap - c->in_len >= CONN_READ_ROOM)
        return 0;
    if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
        c->in_len -= c->in_start;
        c->in_start = 0;
        if (c->in_cap - c->in_len >= CONN_READ_ROOM)
            return 0;
    }
    /* the scanner has read the lengths of what it is in (scan.pos: the message holds
     * at least that many bytes): one growth for them, not one per doubling */
    size_t cap = c->in_cap * 2;
    if (c->scan.pos + CONN_READ_ROOM > cap)
        cap = c->scan.pos + CONN_READ_ROOM;
    cap = dfd_blocks_round(cap);
    size_t ceiling = conn_limits(c)->max_message + CONN_READ_MIN;
    if (cap > ceiling)
        cap = ceiling;
    if (cap <= c->in_cap)
        return 0; /* the scanner reports TOO_LARGE before this is a problem */
    if (!dfd_budget_fits(c, cap - c->in_cap)) {
        conn_wait_memory(c, cap - c->in_cap);
        return -2;
    }
    if (dfd_blocks_grow(&c->loop->blocks, &c->in, &c->in_cap, c->in_len, cap,
                        c->loop->tick) == -1)
        return -1;
    dfd_budget_read_buffer(c, c->in_cap - CONN_READ_MIN);
    return 0;
}

/* Frames and dispatches every complete message in the buffer; notes when the last one
 * completed and when a message now partly buffered began (sweep.c's timeouts). */
static void conn_process(dfd_conn *c)
{
    const daffi_limits *lim = conn_limits(c);
    int completed = 0;
    while (c->in_start < c->in_len && !c->closing && !c->dead) {
        const char *start = c->in + c->in_start;
        daffi_scan_result r = daffi_scan_feed(&c->scan, start, c->in_len - c->in_start, lim);
        if (r == DAFFI_SCAN_NEED_MORE)
            break;
        if (r != DAFFI_SCAN_COMPLETE) {
            conn_reject_input(c, r);
            return;
        }
        size_t size = c->scan.size;
        c->ops->message(c, start, size, c->scan.kind, c->scan.msgid);
        if (c->in_taken)
            c->in_taken = 0; /* the buffer left with the message, which was all it held */
        else
            c->in_start += size;
        daffi_scan_init(&c->scan);
        completed = 1;
    }
    uint64_t tick = c->loop->tick;
    if (completed)
        c->active_tick = tick;
    if (c->in_start == c->in_len) {
        c->partial = 0;
        c->in_start = c->in_len = 0;
        /* a large message is done: its block goes to the loop's cache, for the next */
        if (c->in_cap > 4 * CONN_READ_MIN) {
            char *p = malloc(CONN_READ_MIN);
            if (p != NULL) {
                dfd_blocks_give(&c->loop->blocks, c->in, c->in_cap, tick);
                c->in = p;
                c->in_cap = CONN_READ_MIN;
                dfd_budget_read_buffer(c, 0);
            }
        }
    } else if (completed || !c->partial) {
        c->partial = 1;
        c->partial_tick = tick;
    }
}

static void conn_pause_reading(dfd_conn *c)
{
    if (!c->read_paused) {
        c->read_paused = 1;
        event_del(&c->rev);
    }
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    dfd_conn *c = arg;
    dfd_loop *loop = c->loop;
    if (c->tls != NULL && !c->tls_ready) {
        conn_flush(c); /* moves the handshake on (and writes what waited for it) */
        if (c->dead || !c->tls_ready)
            return;
    }
    c->in_batch = 1;
    loop->batching++;
    for (int rounds = 0; rounds < 4; rounds++) {
        int room_rc = conn_make_room(c);
        if (room_rc == -2)
            break;
        if (room_rc == -1) {
            dfd_error("conn.oom", "peer=%s msg=\"out of memory growing the read buffer\"", c->peer);
            conn_kill(c);
            break;
        }
        size_t room = c->in_cap - c->in_len;
        /* recv/send rather than read/write (every connection is a socket): they skip
         * the VFS layers, a tenth of the kernel's share of a 2 KB call in perf (#17) */
        ssize_t n = c->tls != NULL ? dfd_conn_tls_read(c, c->in + c->in_len, room)
                                   : recv(fd, c->in + c->in_len, room, 0);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            dfd_debug("conn.read_error", "peer=%s errno=%d", c->peer, errno);
            conn_kill(c);
            break;
        }
        if (n == 0) {
            /* The peer finished sending: answer what it asked, then close. */
            c->eof = 1;
            conn_pause_reading(c);
            if (c->in_start < c->in_len && !c->closing)
                conn_process(c);
            if (c->pending == 0 && c->calls == NULL)
                c->closing = 1;
            break;
        }
        c->in_len += (size_t)n;
        dfd_stat_add(&loop->stats, DFD_STAT_received_bytes, (uint64_t)n);
        if (c->track_rx)
            c->last_rx_ns = dfd_now_ns();
        conn_process(c);
        if ((size_t)n < room || c->closing || c->dead || c->read_paused)
            break;
    }
    c->in_batch = 0;
    loop->batching--;
    conn_flush(c); /* nothing when it died: reaped at the end of the pass */
    if (!c->dead && !c->read_paused && dfd_conn_tls_pending(c))
        event_active(&c->rev, EV_READ, 0); /* a full buffer left records decrypted */
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_flush(arg);
}

/* Writes what is pending; arms the write event on a short write; resumes reading once
 * the backlog is under half of max_output; finishes a graceful close (c is dead then;
 * never freed here). */
static void conn_flush(dfd_conn *c)
{
    if (c->dead)
        return;
    if (c->tls != NULL && !c->tls_ready) {
        /* output waits for the handshake, which the socket's events move on */
        int hs = dfd_conn_tls_handshake(c);
        if (hs == -1) {
            conn_kill(c);
            return;
        }
        if (hs == 0) {
            if (c->tls_hs_write && !c->write_armed) {
                event_add(&c->wev, NULL);
                c->write_armed = 1;
            } else if (!c->tls_hs_write && c->write_armed) {
                event_del(&c->wev);
                c->write_armed = 0;
            }
            return;
        }
        /* records that came with the handshake's last flight wait inside the SSL */
        if (!c->in_batch && dfd_conn_tls_pending(c))
            event_active(&c->rev, EV_READ, 0);
    }
    size_t off0 = c->out_off + c->tail_off;
    while (dfd_conn_backlog(c) != 0) {
        size_t left = c->out.size - c->out_off;
        ssize_t n;
        if (c->tail != NULL) {
            /* plaintext only (conn_answer_tail): what is left of out, then the tail */
            struct iovec iov[2] = {{c->out.data + c->out_off, left},
                                   {c->tail + c->tail_off, c->tail_len - c->tail_off}};
            struct msghdr mh = {.msg_iov = left != 0 ? iov : iov + 1,
                                .msg_iovlen = left != 0 ? 2 : 1};
            n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        } else {
            n = c->tls != NULL ? dfd_conn_tls_write(c, c->out.data + c->out_off, left)
                               : send(c->fd, c->out.data + c->out_off, left, MSG_NOSIGNAL);
        }
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            dfd_debug("conn.write_error", "peer=%s errno=%d", c->peer, errno);
            conn_kill(c);
            return;
        }
        dfd_stat_add(&c->loop->stats, DFD_STAT_sent_bytes, (uint64_t)n);
        size_t w = (size_t)n < left ? (size_t)n : left;
        c->out_off += w;
        c->tail_off += (size_t)n - w;
    }
    size_t backlog = dfd_conn_backlog(c);
    /* the budget counts output only while some of it waits: nothing to do on the hot
     * path, where every write completes */
    if (backlog != 0 || c->stuck)
        dfd_budget_output(c, backlog, c->out_off + c->tail_off != off0);
    if (backlog == 0) {
        if (c->tail != NULL)
            conn_tail_release(c);
        c->out.size = c->out_off = 0;
        if (c->out.alloc > 4 * CONN_READ_MIN)
            dfd_blocks_give_sbuffer(&c->loop->blocks, &c->out, c->loop->tick);
        if (c->write_armed) {
            event_del(&c->wev);
            c->write_armed = 0;
        }
        if (c->closing) {
            conn_kill(c);
            return;
        }
    } else if (!c->write_armed) {
        event_add(&c->wev, NULL);
        c->write_armed = 1;
    }
    size_t max_output = c->loop->srv->cfg->max_output;
    if (backlog > max_output) {
        conn_pause_reading(c);
    } else if (c->read_paused && !c->eof && !c->closing && !c->mem_paused &&
               backlog <= max_output / 2) {
        c->read_paused = 0;
        conn_read_again(c);
        /* bytes already buffered may hold whole messages */
        if (c->in_start < c->in_len) {
            c->in_batch = 1;
            conn_process(c);
            c->in_batch = 0;
            conn_flush(c);
        }
    }
}

void dfd_conn_close(dfd_conn *c, int graceful)
{
    if (c->dead)
        return;
    if (!graceful) {
        conn_kill(c);
        return;
    }
    c->closing = 1;
    conn_pause_reading(c);
    if (!c->in_batch)
        conn_flush(c);
}

void dfd_conn_drain(dfd_conn *c)
{
    if (c->ops->drain != NULL)
        c->ops->drain(c);
    else if (dfd_conn_idle(c))
        dfd_conn_close(c, 1);
}

/* Marks the connection dead (see conn.h, "Lifetime"): detaches its calls (their
 * completion is discarded), leaves the dirty list, stops its events, closes the
 * socket and tells the owner. The memory is released by dfd_conn_reap. */
static void conn_kill(dfd_conn *c)
{
    if (c->dead)
        return;
    dfd_loop *loop = c->loop;
    c->dead = 1; /* nothing may write to it any more */
    if (c->dirty) {
        for (dfd_conn **pp = &loop->dirty; *pp != NULL; pp = &(*pp)->dirty_next)
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
        c->dirty = 0;
    }
    /* detach calls first: the owner failing a member's calls below may answer one of
     * this connection's own calls (a member calling through the router) */
    dfd_call *calls = c->calls;
    c->calls = NULL;
    for (dfd_call *call = calls; call != NULL;) {
        dfd_call *next = call->conn_next;
        call->conn = NULL;
        call->conn_prev = call->conn_next = NULL;
        atomic_store(&call->cancelled, 1);
        /* whoever holds the call lets go now (either may complete or free it here): its
         * role (a daffi.wait parked for members), or a handler waiting on this loop */
        if (call->hooks != NULL && call->hooks->caller_gone != NULL)
            call->hooks->caller_gone(call);
        else if (atomic_load(&call->state) == DFD_CALL_PENDING && dfd_loop_is_current(loop))
            daffi_call_fire_cancel(&call->base);
        call = next;
    }
    c->pending = 0;
    dfd_budget_conn_gone(c);
    event_del(&c->rev);
    event_del(&c->wev);
    dfd_conn_tls_close(c);
    close(c->fd);
    c->fd = -1;
    loop->nconns--;
    loop->ndead++;
    atomic_fetch_sub(&loop->srv->conns, 1);
    dfd_stat_add(&loop->stats, DFD_STAT_connections_closed, 1);
    dfd_debug("conn.close", "peer=%s loop=%u", c->peer, loop->index);
    if (c->ops->closed != NULL)
        c->ops->closed(c);
    dfd_loop_want_reap(loop);
    dfd_loop_check_drained(loop);
}

void dfd_conn_reap(dfd_loop *loop)
{
    if (loop->ndead == 0)
        return;
    for (dfd_conn *c = loop->conns; c != NULL;) {
        dfd_conn *next = c->next;
        if (c->dead) {
            if (c->prev)
                c->prev->next = c->next;
            else
                loop->conns = c->next;
            if (c->next)
                c->next->prev = c->prev;
            free(c->in);
            free(c->tail);
            msgpack_sbuffer_destroy(&c->out);
            dfd_auth_conn_free(c);
            free(c);
        }
        c = next;
    }
    loop->ndead = 0;
}
