/*
 * client_sync.c - the synchronous client: connect, then run one connection on the
 * calling thread with poll(), a growable read buffer and a pending-output buffer.
 *
 * How a call runs: the request is appended to the output buffer and written at once
 * when the socket takes it; then the connection is pumped (write what is pending,
 * read what arrives, scan and handle whole messages) until the response with the
 * call's msgid arrives, the deadline passes or the connection fails. Anything else
 * that arrives is handled on the way: a response to an earlier call that timed out
 * is discarded, a request is answered NO_CALLBACK, a notification is ignored.
 *
 * Memory is bounded by max_message (client_buf.c), and a call is refused
 * (OVERLOADED) while more than max_message bytes wait to be written.
 *
 * With reconnect on, a call that finds the connection down reconnects first, within
 * its own timeout and on the schedule of client_common.c's backoff.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"

/* What a pump waits for: the response to msgid (want_reply), or output flushed. */
typedef struct client_wait {
    daffi_stream *stream;   /* waits for credit on this stream instead (want_reply 0) */
    int want_reply;
    uint32_t msgid;
    const char *method;     /* for messages */
    int done;               /* set when satisfied */
    int rc;                 /* with want_reply: 0 result, -1 error from the reply */
    daffi_result *out;
    daffi_error *err;
} client_wait;

/* Returns the poll() timeout until deadline (0: none -> -1), rounded up to a whole
 * millisecond so that a wait never returns early and spins. */
static int poll_ms_until(int64_t deadline)
{
    int64_t left;

    if (deadline == 0)
        return -1;
    left = deadline - daffi__now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* ---- failure -------------------------------------------------------------------- */

/* Closes the connection after a transport or framing failure and remembers why
 * (later calls fail with UNAVAILABLE quoting it). Sets err with code and the same
 * text. Returns -1. */
static int client_fail(daffi_client *c, daffi_error *err, int code, const char *fmt, ...)
    DAFFI_CL_PRINTF(4, 5);
static int client_fail(daffi_client *c, daffi_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    daffi__client_vset_why(c, fmt, ap);
    va_end(ap);
    if (c->fd != -1) {
        daffi__tls_drop(c);
        close(c->fd);
        c->fd = -1;
        c->stats.disconnects++;
        daffi__client_addr_lost(c); /* a reconnect tries the next address first */
    }
    /* a next connection (reconnect) starts clean: nothing half-sent or half-read, and
     * no stream of the old one */
    daffi__bufs_reset(c);
    daffi__streams_lost(c, 0);
    daffi__err_set(err, code, "%s: %s", c->address,
                   c->closed_why != NULL ? c->closed_why : "failed");
    return -1;
}

/* ---- I/O ------------------------------------------------------------------------ */

/* Writes as much pending output as the socket takes now. Returns 0 (possibly with
 * output left), or -1 after the connection failed (err set). */
static int client_flush(daffi_client *c, daffi_error *err)
{
    ssize_t n;

    while (c->out.pos < c->out.len) {
        n = daffi__io_send(c, c->out.p + c->out.pos, c->out.len - c->out.pos);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return client_fail(c, err, DAFFI_E_UNAVAILABLE, "write: %s", strerror(errno));
        }
        c->out.pos += (size_t)n;
        c->stats.bytes_out += (uint64_t)n;
    }
    daffi__out_shrink_if_idle(&c->out);
    return 0;
}

/* Appends a NO_CALLBACK error response to a request the peer sent us. Returns 0, or
 * -1 when memory ran out (err set, connection closed). */
static int client_refuse_request(daffi_client *c, uint32_t msgid, daffi_error *err)
{
    c->stats.requests_refused++;
    if (daffi_pack_response_error(&c->pk, msgid, DAFFI_E_NO_CALLBACK,
                                  "this client exposes no callbacks") == -1)
        return client_fail(c, err, DAFFI_E_UNAVAILABLE, "out of memory");
    return 0;
}

/* Handles one whole message of size bytes at msg, scanned as s describes. Returns 0,
 * or -1 when the connection failed (err set). */
static int client_handle(daffi_client *c, const char *msg, size_t size,
                         const daffi_scan *s, client_wait *w)
{
    switch (s->kind) {
    case DAFFI_MSG_RESPONSE:
        if (c->auth_msgid != 0 && s->msgid == c->auth_msgid) {
            char why[400];
            if (daffi__auth_reply(c, msg, size, why, sizeof(why)) == -1)
                return client_fail(c, w->err, DAFFI_E_DENIED, "%s", why);
            return 0;
        }
        if (w->want_reply && !w->done && s->msgid == w->msgid) {
            w->rc = daffi__reply_take(msg, size, w->method, w->out, w->err);
            w->done = 1;
        } else {
            /* the reply to a call that timed out, or to nothing we sent */
            c->stats.late_replies++;
        }
        return 0;
    case DAFFI_MSG_REQUEST:
        return client_refuse_request(c, s->msgid, w->err);
    default:
        if (c->streams != NULL) {
            daffi_stream *st = daffi__stream_note(c, msg, size);

            if (st != NULL) {
                if (st == w->stream)
                    w->done = 1;
                return 0;
            }
        }
        c->stats.notifications_ignored++;
        return 0;
    }
}

/* Scans and handles every whole message in the read buffer, stopping early once w
 * is satisfied (the rest stays buffered for the next call). Returns 0, or -1 when
 * the connection failed (err set): a malformed or oversize message closes it. */
static int client_process_input(daffi_client *c, client_wait *w)
{
    daffi__inbuf *b = &c->in;
    daffi_scan_result r;

    while (b->start < b->end && !w->done) {
        r = daffi_scan_feed(&b->scan, b->p + b->start, b->end - b->start, &c->lim);
        if (r == DAFFI_SCAN_NEED_MORE)
            break;
        if (r == DAFFI_SCAN_PROTOCOL)
            return client_fail(c, w->err, DAFFI_E_PROTOCOL, "malformed message from peer: %s",
                               b->scan.error != NULL ? b->scan.error : "invalid");
        if (r == DAFFI_SCAN_TOO_LARGE)
            return client_fail(c, w->err, DAFFI_E_TOO_LARGE,
                               "message from peer exceeds max_message (%zu bytes)%s%s",
                               c->lim.max_message, b->scan.error != NULL ? ": " : "",
                               b->scan.error != NULL ? b->scan.error : "");
        if (client_handle(c, b->p + b->start, b->scan.size, &b->scan, w) == -1)
            return -1;
        b->start += b->scan.size;
        daffi_scan_init(&b->scan);
    }
    daffi__in_settle(b);
    return 0;
}

/* Reads what the socket holds now into the read buffer. Returns 1 when bytes were
 * read, 0 when none were available, or -1 when the connection failed or the peer
 * closed it (err set, UNAVAILABLE). */
static int client_read(daffi_client *c, client_wait *w)
{
    daffi__inbuf *b = &c->in;
    ssize_t n;

    if (daffi__in_make_room(c) == -1)
        return client_fail(c, w->err, DAFFI_E_UNAVAILABLE, "out of memory for reading");
    for (;;) {
        n = daffi__io_recv(c, b->p + b->end, b->cap - b->end);
        if (n > 0) {
            b->end += (size_t)n;
            c->stats.bytes_in += (uint64_t)n;
            return 1;
        }
        if (n == 0) {
            if (w->want_reply)
                return client_fail(c, w->err, DAFFI_E_UNAVAILABLE,
                                   "connection closed by peer while waiting for the reply "
                                   "to '%s'", w->method);
            return client_fail(c, w->err, DAFFI_E_UNAVAILABLE, "connection closed by peer");
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return client_fail(c, w->err, DAFFI_E_UNAVAILABLE, "read: %s", strerror(errno));
    }
}

/* Runs the connection until w is satisfied (its reply arrived, or, without
 * want_reply, all output is written), the deadline (ns, 0: none) passes, or the
 * connection fails. Returns 1 when satisfied, 0 at the deadline, -1 on failure
 * (err set, connection closed). */
static int client_pump(daffi_client *c, client_wait *w, int64_t deadline)
{
    struct pollfd pfd;
    int n, ms;

    if (client_process_input(c, w) == -1)
        return -1;
    for (;;) {
        if (c->out.pos < c->out.len && client_flush(c, w->err) == -1)
            return -1;
        if (w->done || (!w->want_reply && w->stream == NULL && c->out.pos == c->out.len))
            return 1;
        ms = poll_ms_until(deadline);
        if (ms == 0)
            return 0;
        pfd.fd = c->fd;
        pfd.events = POLLIN;
        if (c->out.pos < c->out.len)
            pfd.events |= POLLOUT;
        pfd.revents = 0;
        /* records the SSL decrypted already raise no poll() event */
        n = daffi__io_pending(c) ? (pfd.revents = POLLIN, 1) : poll(&pfd, 1, ms);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return client_fail(c, w->err, DAFFI_E_UNAVAILABLE, "poll: %s", strerror(errno));
        }
        if (n == 0)
            continue; /* the deadline check above decides */
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            /* drain what is there: several reads when a large message streams in */
            do {
                n = client_read(c, w);
                if (n == -1)
                    return -1;
                if (n == 1 && client_process_input(c, w) == -1)
                    return -1;
            } while (n == 1 && !w->done);
        }
    }
}

/* ---- connect -------------------------------------------------------------------- */

/* Opens c's socket to c->addr within the connect timeout, also bounded by deadline
 * (ns, 0: none). Returns 0, or -1 with the reason written to reason. */
static int client_open_one(daffi_client *c, int64_t deadline, char *reason, size_t reasonlen)
{
    int64_t limit = 0;

    if (c->connect_timeout_ms > 0)
        limit = daffi__now_ns() + (int64_t)c->connect_timeout_ms * 1000000;
    if (deadline != 0 && (limit == 0 || deadline < limit))
        limit = deadline;
    c->fd = daffi__connect_socket(&c->addr, limit, reason, reasonlen);
    if (c->fd != -1 && daffi__tls_handshake(c, c->fd, limit, reason, reasonlen) == -1) {
        close(c->fd);
        c->fd = -1;
    }
    return c->fd != -1 ? 0 : -1;
}

/* Opens c's socket: to c->addr, else to the next addresses of its list in turn, each
 * within the connect timeout, all bounded by deadline (ns, 0: none). Returns 0, or -1
 * with the last reason (naming its address when there are several) written to reason
 * and kept (prefixed "cannot connect: ") in c->closed_why. */
static int client_open(daffi_client *c, int64_t deadline, char *reason, size_t reasonlen)
{
    char label[300], one[400];

    for (;;) {
        if (client_open_one(c, deadline, one, sizeof(one)) == 0)
            break;
        snprintf(reason, reasonlen, "%s%s", daffi__client_addr_label(c, label, sizeof(label)),
                 one);
        if ((deadline != 0 && daffi__now_ns() >= deadline) || !daffi__client_next_addr(c)) {
            daffi__client_attempt_over(c); /* this attempt is over all the same */
            daffi__client_set_why(c, "cannot connect: %s", reason);
            return -1;
        }
    }
    daffi__client_attempt_over(c);
    /* the token goes first: the peer answers in order, every call after it is
     * authenticated */
    if (daffi__auth_append(c) == -1) {
        snprintf(reason, reasonlen, "out of memory");
        daffi__tls_drop(c);
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->stats.connects++;
    daffi__backoff_reset(&c->backoff);
    return 0;
}

/* See client.h. */
daffi_client *daffi_connect(const char *address, const daffi_client_opts *opts,
                            daffi_error *err)
{
    daffi_client *c = daffi__client_alloc(address, opts, err);
    char reason[512];

    if (c == NULL)
        return NULL;
    if (client_open(c, 0, reason, sizeof(reason)) == -1) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "cannot connect to %s: %s", address, reason);
        daffi__client_free(c);
        return NULL;
    }
    daffi_error_clear(err);
    return c;
}

/* Sleeps until the backoff allows the next attempt, but not past deadline (ns, 0:
 * none), then tries to connect. Repeats until connected or the deadline passed.
 * Returns 0 when connected, or -1 with err set (UNAVAILABLE naming the last reason). */
static int client_reconnect(daffi_client *c, int64_t deadline, daffi_error *err)
{
    char reason[512];
    int64_t wake;
    int delay;

    for (;;) {
        delay = daffi__backoff_next(&c->backoff);
        wake = daffi__now_ns() + (int64_t)delay * 1000000;
        if (deadline != 0 && wake >= deadline) {
            /* no attempt fits before the call must give up: undo the count */
            c->backoff.failures--;
            break;
        }
        while (poll_ms_until(wake) > 0)
            poll(NULL, 0, poll_ms_until(wake));
        if (client_open(c, deadline, reason, sizeof(reason)) == 0)
            return 0;
        if (deadline != 0 && daffi__now_ns() >= deadline)
            break;
    }
    daffi__err_set(err, DAFFI_E_UNAVAILABLE, "%s: not connected (%s)", c->address,
                   c->closed_why != NULL ? c->closed_why : "closed");
    return -1;
}

/* ---- calls ---------------------------------------------------------------------- */

/* Returns 1 when the peer of the idle connection c has closed it or it failed (a
 * reconnecting client then reconnects before sending instead of losing the call), 0
 * otherwise. Input that is merely waiting is left for the next pump. */
static int client_peer_gone(daffi_client *c)
{
    struct pollfd pfd;

    pfd.fd = c->fd;
    pfd.events = POLLRDHUP;
    pfd.revents = 0;
    if (poll(&pfd, 1, 0) == -1)
        return 0;
    return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Checks what every sending call needs: a synchronous client, a method, a sane
 * timeout, an open connection (reconnecting first, before deadline, when reconnect is
 * on) and room in the output buffer. Returns 0, or -1 with err set. */
static int client_check_send(daffi_client *c, const char *method, int timeout_ms,
                             int64_t deadline, daffi_error *err)
{
    if (c == NULL || method == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "%s is NULL", c == NULL ? "client" : "method");
        return -1;
    }
    if (c->as != NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "'%s': a synchronous call on an asynchronous "
                       "client (made by daffi_client_new): use the *_async functions",
                       method);
        return -1;
    }
    if (timeout_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "timeout %d ms: must be >= 0 (0: forever)",
                       timeout_ms);
        return -1;
    }
    if (c->fd != -1 && c->backoff.min_ms > 0 && client_peer_gone(c))
        client_fail(c, NULL, DAFFI_E_UNAVAILABLE, "connection closed by peer");
    if (c->fd == -1) {
        if (c->backoff.min_ms > 0)
            return client_reconnect(c, deadline, err);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "%s: not connected (%s)", c->address,
                       c->closed_why != NULL ? c->closed_why : "closed");
        return -1;
    }
    if (c->out.len - c->out.pos > c->lim.max_message) {
        daffi__err_set(err, DAFFI_E_OVERLOADED,
                       "%s: %zu bytes still wait to be written (the peer is not reading)",
                       c->address, c->out.len - c->out.pos);
        return -1;
    }
    return 0;
}

/* Sends a request and waits for its reply: the body of daffi_rpc()/daffi_rpc_raw(),
 * their *_with forms (to: the member, may be NULL) and the router calls, which wait
 * grace_ms longer than the timeout they pass on. */
static int client_call(daffi_client *c, const char *method, const char *to,
                       const msgpack_object *params, const char *raw, size_t raw_len,
                       int timeout_ms, int grace_ms, daffi_result *out, daffi_error *err)
{
    daffi_result discard;
    daffi__outmsg m;
    client_wait w;
    int64_t start, deadline, left_ms = 0;
    int r;

    if (out == NULL)
        out = &discard; /* the caller wants only success or failure */
    memset(out, 0, sizeof(*out));
    start = daffi__now_ns();
    deadline = timeout_ms > 0 ? start + ((int64_t)timeout_ms + grace_ms) * 1000000 : 0;
    if (daffi__check_to(method, to, err) == -1 ||
        client_check_send(c, method, timeout_ms, deadline, err) == -1) {
        if (err != NULL && err->code == DAFFI_E_UNAVAILABLE)
            err->elapsed_ms = (daffi__now_ns() - start) / 1000000;
        return -1;
    }
    memset(&w, 0, sizeof(w));
    w.want_reply = 1;
    w.msgid = c->next_msgid++;
    w.method = method;
    w.out = out;
    w.err = err;
    /* the peer gets what is left of the timeout once a reconnect (if any) is done */
    if (timeout_ms > 0) {
        left_ms = (deadline - daffi__now_ns() + 999999) / 1000000 - grace_ms;
        left_ms = left_ms < 1 ? 1 : left_ms;
    }
    memset(&m, 0, sizeof(m));
    m.msgid = w.msgid;
    m.method = method;
    m.params = params;
    m.raw = raw;
    m.raw_len = raw_len;
    m.to = to;
    m.deadline_ms = daffi__deadline_to_send(c, method, (int)left_ms);
    if (daffi__append(c, &m, NULL, err) == -1)
        return -1;
    c->stats.calls++;
    r = client_pump(c, &w, deadline);
    if (r == 1 && w.rc == 0) {
        if (out == &discard)
            daffi_result_free(&discard);
        daffi_error_clear(err);
        return 0;
    }
    if (r == 0) {
        c->stats.timeouts++;
        daffi__err_set(err, DAFFI_E_TIMEOUT, "no reply to '%s' from %s within %d ms", method,
                       c->address, timeout_ms + grace_ms);
    }
    if (err != NULL)
        err->elapsed_ms = (daffi__now_ns() - start) / 1000000;
    return -1;
}

/* See client_int.h. */
int daffi__sync_wait_credit(daffi_client *c, daffi_stream *s, int timeout_ms,
                            daffi_error *err)
{
    client_wait w;
    int64_t start = daffi__now_ns();
    int r;

    if (s->credit > 0 || s->aborted || s->dead)
        return 0;
    memset(&w, 0, sizeof(w));
    w.stream = s;
    w.method = "daffi.chunk";
    w.err = err;
    r = client_pump(c, &w, timeout_ms > 0 ? start + (int64_t)timeout_ms * 1000000 : 0);
    if (r == 1)
        return 0;
    if (r == 0)
        daffi__err_set(err, DAFFI_E_TIMEOUT, "stream %u to %s: no credit within %d ms (the "
                       "receiver consumes slower)", s->id, c->address, timeout_ms);
    if (err != NULL)
        err->elapsed_ms = (daffi__now_ns() - start) / 1000000;
    return -1;
}

/* See client_int.h. */
int daffi__sync_call_raw(daffi_client *c, const char *method, const char *params,
                         size_t params_len, int timeout_ms, int grace_ms,
                         daffi_result *out, daffi_error *err)
{
    return client_call(c, method, NULL, NULL, params, params_len, timeout_ms, grace_ms, out,
                       err);
}

/* See client.h. */
int daffi_rpc(daffi_client *c, const char *method, const msgpack_object *params,
              int timeout_ms, daffi_result *out, daffi_error *err)
{
    return client_call(c, method, NULL, params, NULL, 0, timeout_ms, 0, out, err);
}

/* See client.h. */
int daffi_rpc_raw(daffi_client *c, const char *method, const char *params,
                  size_t params_len, int timeout_ms, daffi_result *out, daffi_error *err)
{
    if (params == NULL) {
        if (out != NULL)
            memset(out, 0, sizeof(*out));
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: NULL");
        return -1;
    }
    return client_call(c, method, NULL, NULL, params, params_len, timeout_ms, 0, out, err);
}

/* See client.h. */
int daffi_rpc_with(daffi_client *c, const char *method, const msgpack_object *params,
                   const daffi_rpc_opts *opts, daffi_result *out, daffi_error *err)
{
    static const daffi_rpc_opts none;
    const daffi_rpc_opts *o = opts != NULL ? opts : &none;

    return client_call(c, method, o->to, params, NULL, 0, o->timeout_ms, 0, out, err);
}

/* See client.h. */
int daffi_rpc_raw_with(daffi_client *c, const char *method, const char *params,
                       size_t params_len, const daffi_rpc_opts *opts, daffi_result *out,
                       daffi_error *err)
{
    static const daffi_rpc_opts none;
    const daffi_rpc_opts *o = opts != NULL ? opts : &none;

    if (params == NULL) {
        if (out != NULL)
            memset(out, 0, sizeof(*out));
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: NULL");
        return -1;
    }
    return client_call(c, method, o->to, NULL, params, params_len, o->timeout_ms, 0, out,
                       err);
}

/* Sends a notification and waits until it is handed to the kernel. */
static int client_notify(daffi_client *c, const char *method, const msgpack_object *params,
                         const char *raw, size_t raw_len, int timeout_ms, daffi_error *err)
{
    daffi__outmsg m;
    client_wait w;
    int64_t start, deadline;
    int r;

    start = daffi__now_ns();
    deadline = timeout_ms > 0 ? start + (int64_t)timeout_ms * 1000000 : 0;
    if (client_check_send(c, method, timeout_ms, deadline, err) == -1) {
        if (err != NULL && err->code == DAFFI_E_UNAVAILABLE)
            err->elapsed_ms = (daffi__now_ns() - start) / 1000000;
        return -1;
    }
    memset(&w, 0, sizeof(w));
    w.method = method;
    w.err = err;
    memset(&m, 0, sizeof(m));
    m.is_notify = 1;
    m.method = method;
    m.params = params;
    m.raw = raw;
    m.raw_len = raw_len;
    if (daffi__append(c, &m, NULL, err) == -1)
        return -1;
    c->stats.notifications++;
    r = client_pump(c, &w, deadline);
    if (r == 1) {
        daffi_error_clear(err);
        return 0;
    }
    if (r == 0)
        daffi__err_set(err, DAFFI_E_TIMEOUT,
                       "notification '%s' to %s: not written within %d ms (peer not reading)",
                       method, c->address, timeout_ms);
    if (err != NULL)
        err->elapsed_ms = (daffi__now_ns() - start) / 1000000;
    return -1;
}

/* See client.h. */
int daffi_notify(daffi_client *c, const char *method, const msgpack_object *params,
                 int timeout_ms, daffi_error *err)
{
    return client_notify(c, method, params, NULL, 0, timeout_ms, err);
}

/* See client.h. */
int daffi_notify_raw(daffi_client *c, const char *method, const char *params,
                     size_t params_len, int timeout_ms, daffi_error *err)
{
    if (params == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: NULL");
        return -1;
    }
    return client_notify(c, method, NULL, params, params_len, timeout_ms, err);
}
