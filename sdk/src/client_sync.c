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
 * Memory is bounded by max_message: the read buffer never holds more than one
 * partial message of at most max_message bytes plus one read's worth, and a call is
 * refused (OVERLOADED) while more than max_message bytes wait to be written.
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

#define READ_BUF_INITIAL ((size_t)64 * 1024) /* first read buffer */
#define READ_MIN_ROOM ((size_t)16 * 1024)    /* grow when less is free after compaction */
#define BUF_KEEP_MAX ((size_t)1024 * 1024)   /* an empty buffer over this is shrunk */
#define OUT_BUF_INITIAL ((size_t)4096)

/* Output waiting to be written: p[pos..len). */
typedef struct out_buf {
    char *p;
    size_t len, pos, cap;
    int oom;                /* set by the packer's writer when growing failed */
} out_buf;

/* Input read and not yet consumed: p[start..end); scan runs over the message that
 * starts at start. */
typedef struct in_buf {
    char *p;
    size_t start, end, cap;
    daffi_scan scan;
} in_buf;

struct daffi_client {
    int fd;                 /* -1 once closed after a failure */
    char *address;          /* as given to daffi_connect() */
    daffi_limits lim;
    uint32_t next_msgid;
    out_buf out;
    in_buf in;
    msgpack_packer pk;      /* writes into out */
    char *closed_why;       /* why fd was closed: repeated by later calls */
    daffi_client_stats stats;
};

/* What a pump waits for: the response to msgid (want_reply), or output flushed. */
typedef struct client_wait {
    int want_reply;
    uint32_t msgid;
    const char *method;     /* for messages */
    int done;               /* set when satisfied */
    int rc;                 /* with want_reply: 0 result, -1 error from the reply */
    daffi_result *out;
    daffi_error *err;
} client_wait;

/* Returns CLOCK_MONOTONIC in nanoseconds. */
static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Returns the poll() timeout until deadline (0: none -> -1), rounded up to a whole
 * millisecond so that a wait never returns early and spins. */
static int poll_ms_until(int64_t deadline)
{
    int64_t left;

    if (deadline == 0)
        return -1;
    left = deadline - now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* ---- buffers -------------------------------------------------------------------- */

/* Ensures room for need more bytes in the output buffer. Returns 0, or -1 (ENOMEM). */
static int out_reserve(out_buf *b, size_t need)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= need)
        return 0;
    /* reclaim what was written before growing */
    if (b->pos > 0) {
        memmove(b->p, b->p + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
        if (b->cap - b->len >= need)
            return 0;
    }
    cap = b->cap ? b->cap : OUT_BUF_INITIAL;
    while (cap - b->len < need)
        cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* msgpack_packer writer appending to the client's output buffer. Returns 0, or -1
 * when memory ran out (remembered in oom so the caller can say so). */
static int out_write(void *data, const char *buf, size_t len)
{
    out_buf *b = data;

    if (len == 0)
        return 0; /* buf may be NULL for an empty body */
    if (out_reserve(b, len) == -1) {
        b->oom = 1;
        return -1;
    }
    memcpy(b->p + b->len, buf, len);
    b->len += len;
    return 0;
}

/* Frees a large output buffer once it is empty, so one big request does not pin its
 * memory for the life of the connection. */
static void out_shrink_if_idle(out_buf *b)
{
    if (b->pos == b->len) {
        b->pos = b->len = 0;
        if (b->cap > BUF_KEEP_MAX) {
            free(b->p);
            b->p = NULL;
            b->cap = 0;
        }
    }
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
    char *why = NULL;

    va_start(ap, fmt);
    if (vasprintf(&why, fmt, ap) == -1)
        why = NULL;
    va_end(ap);
    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }
    free(c->closed_why);
    c->closed_why = why;
    daffi__err_set(err, code, "%s: %s", c->address, why != NULL ? why : "failed");
    return -1;
}

/* ---- I/O ------------------------------------------------------------------------ */

/* Writes as much pending output as the socket takes now. Returns 0 (possibly with
 * output left), or -1 after the connection failed (err set). */
static int client_flush(daffi_client *c, daffi_error *err)
{
    ssize_t n;

    while (c->out.pos < c->out.len) {
        n = send(c->fd, c->out.p + c->out.pos, c->out.len - c->out.pos,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
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
    out_shrink_if_idle(&c->out);
    return 0;
}

/* Makes room to read: moves the unconsumed bytes to the front, and grows the buffer
 * when less than READ_MIN_ROOM is free, up to what one message of max_message bytes
 * plus one read needs. Returns 0, or -1 when memory ran out. */
static int in_make_room(daffi_client *c)
{
    in_buf *b = &c->in;
    size_t used, cap, limit;
    char *p;

    if (b->start > 0 && (b->cap - b->end < READ_MIN_ROOM || b->start == b->end)) {
        used = b->end - b->start;
        memmove(b->p, b->p + b->start, used);
        b->start = 0;
        b->end = used;
    }
    if (b->p != NULL && b->cap - b->end >= READ_MIN_ROOM)
        return 0;
    limit = c->lim.max_message + READ_BUF_INITIAL;
    cap = b->cap ? b->cap * 2 : READ_BUF_INITIAL;
    if (cap > limit)
        cap = limit;
    if (cap <= b->cap)
        return b->cap > b->end ? 0 : -1; /* the scanner bounds the partial message */
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
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
        c->stats.notifications_ignored++;
        return 0;
    }
}

/* Scans and handles every whole message in the read buffer, stopping early once w
 * is satisfied (the rest stays buffered for the next call). Returns 0, or -1 when
 * the connection failed (err set): a malformed or oversize message closes it. */
static int client_process_input(daffi_client *c, client_wait *w)
{
    in_buf *b = &c->in;
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
    if (b->start == b->end) {
        b->start = b->end = 0;
        if (b->cap > BUF_KEEP_MAX) {
            free(b->p);
            b->p = NULL;
            b->cap = 0;
        }
    }
    return 0;
}

/* Reads what the socket holds now into the read buffer. Returns 1 when bytes were
 * read, 0 when none were available, or -1 when the connection failed or the peer
 * closed it (err set, UNAVAILABLE). */
static int client_read(daffi_client *c, client_wait *w)
{
    in_buf *b = &c->in;
    ssize_t n;

    if (in_make_room(c) == -1)
        return client_fail(c, w->err, DAFFI_E_UNAVAILABLE, "out of memory for reading");
    for (;;) {
        n = recv(c->fd, b->p + b->end, b->cap - b->end, MSG_DONTWAIT);
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
        if (w->done || (!w->want_reply && c->out.pos == c->out.len))
            return 1;
        ms = poll_ms_until(deadline);
        if (ms == 0)
            return 0;
        pfd.fd = c->fd;
        pfd.events = POLLIN;
        if (c->out.pos < c->out.len)
            pfd.events |= POLLOUT;
        pfd.revents = 0;
        n = poll(&pfd, 1, ms);
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

/* See client.h. */
daffi_client *daffi_connect(const char *address, const daffi_client_opts *opts,
                            daffi_error *err)
{
    daffi_addr addr;
    const char *why = NULL;
    char reason[512];
    daffi_client *c;
    int64_t deadline = 0;
    int fd, timeout_ms;

    if (address == NULL || daffi_addr_parse(address, &addr, &why) == -1) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "bad address '%s': %s",
                       address != NULL ? address : "(null)", why != NULL ? why : "missing");
        return NULL;
    }
    if (addr.kind == DAFFI_ADDR_TCP && addr.port == 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "bad address '%s': port 0", address);
        return NULL;
    }
    timeout_ms = opts != NULL ? opts->connect_timeout_ms : 0;
    if (timeout_ms == 0)
        timeout_ms = DAFFI_DEFAULT_CONNECT_TIMEOUT_MS;
    if (timeout_ms > 0)
        deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    fd = daffi__connect_socket(&addr, deadline, reason, sizeof(reason));
    if (fd == -1) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "cannot connect to %s: %s", address, reason);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->address = strdup(address)) == NULL) {
        free(c);
        close(fd);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "cannot connect to %s: out of memory",
                       address);
        return NULL;
    }
    c->fd = fd;
    c->lim.max_message = opts != NULL && opts->max_message != 0 ? opts->max_message
                                                                 : DAFFI_DEFAULT_MAX_MESSAGE;
    c->lim.max_depth = opts != NULL && opts->max_depth != 0 ? opts->max_depth
                                                             : DAFFI_DEFAULT_MAX_DEPTH;
    c->next_msgid = 1;
    msgpack_packer_init(&c->pk, &c->out, out_write);
    daffi_scan_init(&c->in.scan);
    daffi_error_clear(err);
    return c;
}

/* See client.h. */
void daffi_close(daffi_client *c)
{
    if (c == NULL)
        return;
    if (c->fd != -1)
        close(c->fd);
    free(c->out.p);
    free(c->in.p);
    free(c->closed_why);
    free(c->address);
    free(c);
}

int daffi_client_connected(const daffi_client *c)
{
    return c != NULL && c->fd != -1;
}

const char *daffi_client_address(const daffi_client *c)
{
    return c->address;
}

void daffi_client_stats_get(const daffi_client *c, daffi_client_stats *out)
{
    *out = c->stats;
}

/* ---- calls ---------------------------------------------------------------------- */

/* Checks what every sending call needs: an open connection, a method, a sane timeout
 * and room in the output buffer. Returns 0, or -1 with err set. */
static int client_check_send(daffi_client *c, const char *method, int timeout_ms,
                             daffi_error *err)
{
    if (c == NULL || method == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "%s is NULL", c == NULL ? "client" : "method");
        return -1;
    }
    if (timeout_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "timeout %d ms: must be >= 0 (0: forever)",
                       timeout_ms);
        return -1;
    }
    if (c->fd == -1) {
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

/* Checks that params (len bytes) hold exactly one msgpack array and returns its
 * element count in *n. Returns 0, or -1 with err set (BAD_ARGS). */
static int raw_params_check(const char *params, size_t len, uint32_t *n, daffi_error *err)
{
    unsigned char b;

    if (params == NULL || len == 0 || daffi_object_size(params, len) != len) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: not exactly one encoded msgpack object");
        return -1;
    }
    b = (unsigned char)params[0];
    if ((b & 0xf0) == 0x90) {
        *n = b & 0x0f;
    } else if (b == 0xdc && len >= 3) {
        *n = ((uint32_t)(unsigned char)params[1] << 8) | (unsigned char)params[2];
    } else if (b == 0xdd && len >= 5) {
        *n = ((uint32_t)(unsigned char)params[1] << 24) |
             ((uint32_t)(unsigned char)params[2] << 16) |
             ((uint32_t)(unsigned char)params[3] << 8) | (unsigned char)params[4];
    } else {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: not a msgpack array");
        return -1;
    }
    return 0;
}

/* Appends one request or notification (msgid 0 and is_notify) to the output buffer:
 * the envelope, then the params from either the object (NULL: none) or raw bytes.
 * A message over max_message is TOO_LARGE and nothing of it is kept. Returns 0, or
 * -1 with err set. */
static int client_append(daffi_client *c, int is_notify, uint32_t msgid, const char *method,
                         const msgpack_object *params, const char *raw, size_t raw_len,
                         daffi_error *err)
{
    size_t mark = c->out.len, size, mlen = strlen(method);
    uint32_t i, n = 0;
    int rc;

    if (raw != NULL) {
        if (raw_params_check(raw, raw_len, &n, err) == -1)
            return -1;
    } else if (params != NULL) {
        if (params->type != MSGPACK_OBJECT_ARRAY) {
            daffi__err_set(err, DAFFI_E_BAD_ARGS, "params of '%s': not an array", method);
            return -1;
        }
        n = params->via.array.size;
    }
    c->out.oom = 0;
    rc = is_notify ? daffi_pack_notify(&c->pk, method, mlen, raw != NULL ? 0 : n)
                   : daffi_pack_request(&c->pk, msgid, method, mlen, raw != NULL ? 0 : n);
    if (rc == 0 && raw != NULL) {
        /* the envelope was packed with an empty params array: replace that one byte
         * (0x90, the last written) with the caller's array */
        if (c->out.len == mark || (unsigned char)c->out.p[c->out.len - 1] != 0x90)
            rc = -1;
        else
            c->out.len--;
    }
    if (rc == 0 && raw != NULL) {
        rc = out_write(&c->out, raw, raw_len);
    }
    for (i = 0; rc == 0 && raw == NULL && i < n; i++)
        rc = msgpack_pack_object(&c->pk, params->via.array.ptr[i]);
    size = c->out.len - mark;
    if (rc != 0 || size > c->lim.max_message) {
        c->out.len = mark; /* drop the partial message: nothing of it was written */
        if (rc != 0)
            daffi__err_set(err, DAFFI_E_UNAVAILABLE, "'%s': out of memory", method);
        else
            daffi__err_set(err, DAFFI_E_TOO_LARGE,
                           "'%s': message of %zu bytes exceeds max_message (%zu bytes)",
                           method, size, c->lim.max_message);
        return -1;
    }
    return 0;
}

/* Sends a request and waits for its reply: the body of daffi_rpc()/daffi_rpc_raw(). */
static int client_call(daffi_client *c, const char *method, const msgpack_object *params,
                       const char *raw, size_t raw_len, int timeout_ms, daffi_result *out,
                       daffi_error *err)
{
    daffi_result discard;
    client_wait w;
    int64_t start, deadline;
    int r;

    if (out == NULL)
        out = &discard; /* the caller wants only success or failure */
    memset(out, 0, sizeof(*out));
    if (client_check_send(c, method, timeout_ms, err) == -1)
        return -1;
    start = now_ns();
    deadline = timeout_ms > 0 ? start + (int64_t)timeout_ms * 1000000 : 0;
    memset(&w, 0, sizeof(w));
    w.want_reply = 1;
    w.msgid = c->next_msgid++;
    w.method = method;
    w.out = out;
    w.err = err;
    if (client_append(c, 0, w.msgid, method, params, raw, raw_len, err) == -1)
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
                       c->address, timeout_ms);
    }
    if (err != NULL)
        err->elapsed_ms = (now_ns() - start) / 1000000;
    return -1;
}

/* See client.h. */
int daffi_rpc(daffi_client *c, const char *method, const msgpack_object *params,
              int timeout_ms, daffi_result *out, daffi_error *err)
{
    return client_call(c, method, params, NULL, 0, timeout_ms, out, err);
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
    return client_call(c, method, NULL, params, params_len, timeout_ms, out, err);
}

/* Sends a notification and waits until it is handed to the kernel. */
static int client_notify(daffi_client *c, const char *method, const msgpack_object *params,
                         const char *raw, size_t raw_len, int timeout_ms, daffi_error *err)
{
    client_wait w;
    int64_t start, deadline;
    int r;

    if (client_check_send(c, method, timeout_ms, err) == -1)
        return -1;
    start = now_ns();
    deadline = timeout_ms > 0 ? start + (int64_t)timeout_ms * 1000000 : 0;
    memset(&w, 0, sizeof(w));
    w.method = method;
    w.err = err;
    if (client_append(c, 1, 0, method, params, raw, raw_len, err) == -1)
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
        err->elapsed_ms = (now_ns() - start) / 1000000;
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

/* See client.h. */
int daffi_ping(daffi_client *c, int timeout_ms, int64_t *rtt_us, daffi_error *err)
{
    daffi_result res;
    const char *s;
    size_t len;
    int64_t start = now_ns();

    if (daffi_rpc(c, "daffi.ping", NULL, timeout_ms, &res, err) == -1)
        return -1;
    if (rtt_us != NULL)
        *rtt_us = (now_ns() - start) / 1000;
    if (daffi_obj_str(&res.obj, &s, &len) == -1 || len != 4 || memcmp(s, "pong", 4) != 0) {
        daffi_result_free(&res);
        daffi__err_set(err, DAFFI_E_PROTOCOL, "%s: daffi.ping answered something else than "
                       "\"pong\"", c->address);
        return -1;
    }
    daffi_result_free(&res);
    return 0;
}
