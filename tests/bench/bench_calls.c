/*
 * bench_calls.c - the benchmark client of `make bench` (driven by bench_table and
 * tests/bench/run.sh).
 *
 * usage: bench_calls run -s ADDRESS [-c CONNS] [-d DEPTH] [-p PAYLOAD_BYTES]
 *                        (-n CALLS_PER_CONN | -T MS [-w MS]) [-m METHOD -i INT] [-N] [-r]
 *                        [-g]
 *        bench_calls wait -s ADDRESS [-t TIMEOUT_MS]
 *        bench_calls port
 *
 * run: opens CONNS connections, then drives all of them from one epoll loop in this
 * one thread, each with DEPTH calls outstanding (default 1): echo(bin(PAYLOAD)) as
 * [0, msgid, "echo", [bin]] (or METHOD(INT) with -m and -i), msgids from 65536 up (so
 * every request of a run has the same size). Each response is delimited by the
 * codec's scanner, decoded and checked (a response, a msgid in flight, no error);
 * every whole response read in one recv is replaced by a new call, all of them sent
 * with one send. The sockets are non-blocking: a reply is read while a large request
 * is still being written. It prints one line:
 *     calls=N conns=C seconds=S calls_per_s=R served=M
 * (served: every call and notification the server handled, warm-up and drain
 * included, to divide the server's CPU time by)
 *   -n N      N calls per connection; the clock runs from the first send to the last
 *             answer.
 *   -T MS     calls for MS milliseconds after a warm-up of -w MS (default 100): only
 *             the answers inside the window count, then the calls in flight drain.
 *   -N        notifications: [2, "echo", [bin(PAYLOAD)]] written as fast as the
 *             server reads them, then one echo call per connection whose answer says
 *             that every notification before it was read; calls = notifications, the
 *             clock runs from the first send to the last such answer (no warm-up).
 *   -r        redis protocol (RESP): ECHO with a PAYLOAD-byte bulk string, the reply
 *             checked by its size and first byte (no msgid in RESP: DEPTH outstanding
 *             are counted in order).
 *   -g        after connecting and making one call on each connection (so that the
 *             server has accepted and set up every one), print "ready" and wait for a
 *             line on stdin before the first counted call: a tracer attached between
 *             the two sees the calls, not the connections' setup.
 * The same code runs against daffid, bench_raw_server (which answers frames of the
 * same sizes) and redis (-r), so the figures differ only by the server.
 *
 * wait: exits 0 once ADDRESS accepts a connection (default 10 s), else 1.
 * port: prints a free 127.0.0.1 TCP port.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/rawconn.h"
#include "rawio.h"

#define BENCH_READ (64 * 1024)        /* the least room offered to one recv */
#define BENCH_NOTIFY_BATCH (64 * 1024) /* notification bytes queued at once */
#define BENCH_MSGID_BASE 0x10000u     /* the smallest msgid packed as uint32 */
#define BENCH_MSGID_OFF 2             /* after the fixarray header and the kind */
#define BENCH_MAX_EVENTS 256
#define BENCH_STALL_MS 30000
#define BENCH_MAX_PAYLOAD (16L << 20)

/* One client connection. */
typedef struct bconn {
    int fd;
    char *in;                /* received bytes */
    size_t in_len, in_cap;
    char *out;               /* bytes not yet sent */
    size_t out_off, out_len, out_cap;
    int want_out;            /* EPOLLOUT is registered */
    daffi_scan scan;
    int scanning;
    uint32_t next_msgid;     /* the msgid of the next call */
    uint32_t oldest;         /* the oldest msgid in flight */
    int outstanding;         /* calls sent, not answered */
    long left;               /* calls (or notifications) still to queue */
    int final_sent;          /* -N: the closing call is queued */
    int finished;
} bconn;

typedef enum phase { PH_WARM, PH_MEASURE, PH_DRAIN } phase;

/* Everything one run owns. */
typedef struct bench {
    bconn *conns;
    int nconns, depth, notify, resp, handshake;
    long calls_per_conn;     /* -n; 0 in duration mode */
    long duration_ms, warm_ms;
    char *req;               /* one request frame; msgid patched per call */
    size_t req_size;
    char *note;              /* one notification frame (-N) */
    size_t note_size;
    size_t resp_size;        /* -r: the size of every reply */
    size_t in_min;           /* the receive buffer's least capacity */
    msgpack_zone zone;
    daffi_limits lim;
    int ep;
    long done;               /* answers (or notifications) counted so far */
    long answers;            /* every answer, warm-up and drain included */
    phase ph;
    double t0, t_warm, t_end;
    double t_start, t_stop;
} bench;

/* Returns CLOCK_MONOTONIC in seconds. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Packs the frames of the run into b->req (and b->note) from the codec's packers, or
 * RESP text. Returns 0 or -1. */
static int frames_build(bench *b, size_t payload, const char *method, long long iarg,
                        int use_int)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *body = calloc(1, payload ? payload : 1);

    if (body == NULL)
        return -1;
    for (size_t i = 0; i < payload; i++)
        body[i] = (char)(i * 31);
    if (b->resp) {
        char head[64];
        int h = snprintf(head, sizeof(head), "*2\r\n$4\r\nECHO\r\n$%zu\r\n", payload);
        b->req_size = (size_t)h + payload + 2;
        b->req = malloc(b->req_size);
        if (b->req == NULL) {
            free(body);
            return -1;
        }
        memcpy(b->req, head, (size_t)h);
        memcpy(b->req + h, body, payload);
        memcpy(b->req + h + payload, "\r\n", 2);
        b->resp_size = (size_t)snprintf(head, sizeof(head), "$%zu\r\n", payload) + payload + 2;
        free(body);
        return 0;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int which = 0; which < 2; which++) {
        msgpack_sbuffer_clear(&sb);
        if (which == 0)
            daffi_pack_request(&pk, BENCH_MSGID_BASE, method, strlen(method), 1);
        else
            daffi_pack_notify(&pk, method, strlen(method), 1);
        if (use_int) {
            msgpack_pack_long_long(&pk, iarg);
        } else {
            msgpack_pack_bin(&pk, payload);
            msgpack_pack_bin_body(&pk, body, payload);
        }
        char *copy = malloc(sb.size);
        if (copy == NULL)
            break;
        memcpy(copy, sb.data, sb.size);
        if (which == 0) {
            b->req = copy;
            b->req_size = sb.size;
        } else {
            b->note = copy;
            b->note_size = sb.size;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    free(body);
    return b->req != NULL && b->note != NULL ? 0 : -1;
}

/* Makes room for n more bytes in c->out. Returns 0 or -1. */
static int out_reserve(bconn *c, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n <= c->out_cap)
            return 0;
    }
    return rawio_reserve(&c->out, &c->out_cap, c->out_len + n, 4096);
}

/* Queues k calls on c. Returns 0 or -1. */
static int queue_calls(bench *b, bconn *c, long k)
{
    if (k <= 0)
        return 0;
    if (out_reserve(c, (size_t)k * b->req_size) == -1)
        return -1;
    for (long i = 0; i < k; i++) {
        char *o = c->out + c->out_len;
        memcpy(o, b->req, b->req_size);
        if (!b->resp) {
            uint32_t id = c->next_msgid;
            /* the packer wrote 0xce and a big-endian uint32 */
            o[BENCH_MSGID_OFF + 1] = (char)(id >> 24);
            o[BENCH_MSGID_OFF + 2] = (char)(id >> 16);
            o[BENCH_MSGID_OFF + 3] = (char)(id >> 8);
            o[BENCH_MSGID_OFF + 4] = (char)id;
        }
        c->next_msgid++;
        c->out_len += b->req_size;
    }
    c->outstanding += (int)k;
    return 0;
}

/* Queues one batch of notifications on c (-N). Returns 0 or -1. */
static int queue_notes(bench *b, bconn *c)
{
    long k = (long)(BENCH_NOTIFY_BATCH / b->note_size);
    if (k < 1)
        k = 1;
    if (c->left < k)
        k = c->left;
    if (k <= 0 || out_reserve(c, (size_t)k * b->note_size) == -1)
        return k <= 0 ? 0 : -1;
    for (long i = 0; i < k; i++) {
        memcpy(c->out + c->out_len, b->note, b->note_size);
        c->out_len += b->note_size;
    }
    c->left -= k;
    b->done += k;
    return 0;
}

/* Sets c's epoll interest to what it waits for. Returns 0 or -1. */
static int interest(bench *b, bconn *c, int want_out)
{
    if (want_out == c->want_out)
        return 0;
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c };
    c->want_out = want_out;
    return epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* 1 while new calls may start (count mode: calls left; duration mode: not draining). */
static int may_send(const bench *b, const bconn *c)
{
    return b->ph != PH_DRAIN && c->left > 0;
}

/* Writes what c has queued (-N: refilling with notifications while the socket takes
 * them). Returns 0, or -1 on a socket error (printed). */
static int flush_out(bench *b, bconn *c)
{
    for (;;) {
        if (c->out_off == c->out_len && b->notify && !c->final_sent) {
            if (may_send(b, c)) {
                if (queue_notes(b, c) == -1)
                    return -1;
            } else {
                c->final_sent = 1;
                if (queue_calls(b, c, 1) == -1)
                    return -1;
            }
        }
        if (c->out_off == c->out_len)
            return interest(b, c, 0);
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return interest(b, c, 1);
            perror("bench_calls: send");
            return -1;
        }
        c->out_off += (size_t)w;
    }
}

/* Checks one whole msgpack reply of size bytes at p. Returns 0 or -1 (printed). */
static int check_reply(bench *b, bconn *c, const char *p, size_t size)
{
    daffi_msg m;

    msgpack_zone_clear(&b->zone);
    if (daffi_msg_decode(p, size, &b->zone, &m) == -1 || m.kind != DAFFI_MSG_RESPONSE ||
        m.msgid - c->oldest >= c->next_msgid - c->oldest) {
        fprintf(stderr, "bench_calls: unexpected message (kind %d msgid %u, %u..%u in "
                "flight)\n", (int)m.kind, m.msgid, c->oldest, c->next_msgid - 1);
        return -1;
    }
    if (m.error->type != MSGPACK_OBJECT_NIL) {
        int code = 0;
        const char *text = "";
        size_t len = 0;
        daffi_error_parse(m.error, &code, &text, &len, NULL);
        fprintf(stderr, "bench_calls: msgid %u answered %s: %.*s\n", m.msgid,
                daffi_error_name(code), (int)len, text);
        return -1;
    }
    if (m.msgid == c->oldest)
        c->oldest++;
    return 0;
}

/* Splits off the next whole reply at c->in + off. Returns its size, 0 when more bytes
 * are needed, or -1 on bad bytes (printed). */
static long next_reply(bench *b, bconn *c, size_t off)
{
    size_t avail = c->in_len - off;

    if (b->resp) {
        if (avail < b->resp_size)
            return 0;
        if (c->in[off] != '$') {
            fprintf(stderr, "bench_calls: redis answered: %.*s\n",
                    (int)(avail < 120 ? avail : 120), c->in + off);
            return -1;
        }
        return (long)b->resp_size;
    }
    if (!c->scanning) {
        daffi_scan_init(&c->scan);
        c->scanning = 1;
    }
    daffi_scan_result sr = daffi_scan_feed(&c->scan, c->in + off, avail, &b->lim);
    if (sr == DAFFI_SCAN_NEED_MORE)
        return 0;
    if (sr != DAFFI_SCAN_COMPLETE) {
        fprintf(stderr, "bench_calls: bad bytes from the server: %s\n", c->scan.error);
        return -1;
    }
    c->scanning = 0;
    if (check_reply(b, c, c->in + off, c->scan.size) == -1)
        return -1;
    return (long)c->scan.size;
}

/* Reads what c has, checks every whole reply, queues as many new calls as were
 * answered and sends them. Returns 0, or -1 on error (printed). */
static int on_readable(bench *b, bconn *c)
{
    if (c->in_cap - c->in_len < BENCH_READ &&
        rawio_reserve(&c->in, &c->in_cap, c->in_cap ? c->in_cap * 2 : b->in_min, b->in_min) == -1)
        return -1;
    ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r == 0) {
        fprintf(stderr, "bench_calls: the server closed a connection\n");
        return -1;
    }
    if (r == -1)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->in_len += (size_t)r;
    size_t off = 0;
    long answered = 0;
    for (;;) {
        long size = next_reply(b, c, off);
        if (size == -1)
            return -1;
        if (size == 0)
            break;
        off += (size_t)size;
        answered++;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    c->outstanding -= (int)answered;
    b->answers += answered;
    if (b->notify) {
        if (answered > 0)
            c->finished = 1;
        return 0;
    }
    if (b->ph == PH_MEASURE)
        b->done += answered;
    if (b->calls_per_conn > 0)
        c->left -= answered;
    long more = may_send(b, c) ? answered : 0;
    if (b->calls_per_conn > 0 && more > c->left - c->outstanding)
        more = c->left - c->outstanding;
    if (queue_calls(b, c, more) == -1)
        return -1;
    if (c->outstanding == 0 && !may_send(b, c))
        c->finished = 1;
    return c->out_off < c->out_len ? flush_out(b, c) : 0;
}

/* Moves the duration mode's phases on at time t; returns the epoll timeout in ms. */
static int advance(bench *b, double t)
{
    if (b->duration_ms == 0)
        return BENCH_STALL_MS;
    if (b->ph == PH_WARM && t >= b->t_warm) {
        b->ph = PH_MEASURE;
        b->t_start = t;
    }
    if (b->ph == PH_MEASURE && t >= b->t_end) {
        b->ph = PH_DRAIN;
        b->t_stop = t;
        for (int i = 0; i < b->nconns; i++) {
            bconn *c = &b->conns[i];
            if (b->notify) {
                if (c->out_off == c->out_len)
                    flush_out(b, c);
            } else if (c->outstanding == 0) {
                c->finished = 1;
            }
        }
    }
    double next = b->ph == PH_WARM ? b->t_warm : b->ph == PH_MEASURE ? b->t_end : 0;
    if (next == 0)
        return BENCH_STALL_MS;
    int ms = (int)((next - t) * 1000.0) + 1;
    return ms < 1 ? 1 : ms;
}

/* Makes one call on c and waits for its answer, outside the run's counts (-g).
 * Returns 0 or -1 (printed). */
static int prime_conn(bench *b, bconn *c)
{
    long keep_left = c->left;

    if (queue_calls(b, c, 1) == -1)
        return -1;
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w == -1 && errno != EAGAIN && errno != EINTR) {
            perror("bench_calls: send");
            return -1;
        }
        if (w > 0)
            c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    struct epoll_event ev;
    while (c->outstanding > 0) {
        if (epoll_wait(b->ep, &ev, 1, BENCH_STALL_MS) != 1) {
            fprintf(stderr, "bench_calls: no answer to the first call\n");
            return -1;
        }
        bconn *r = ev.data.ptr;
        if (r != c)
            continue;
        /* as if counting down from one call: nothing new is queued */
        long k = b->calls_per_conn;
        b->calls_per_conn = 1;
        c->left = 1;
        int rc = on_readable(b, r);
        b->calls_per_conn = k;
        if (rc == -1)
            return -1;
    }
    c->left = keep_left;
    c->finished = 0;
    b->done = b->answers = 0;
    return 0;
}

/* Opens b's connections (non-blocking, registered with b->ep). Returns 0 or -1. */
static int connect_all(bench *b, const char *addr)
{
    for (int i = 0; i < b->nconns; i++) {
        bconn *c = &b->conns[i];
        rawconn rc0;
        if (rawconn_open(&rc0, addr, 10000) == -1) {
            fprintf(stderr, "bench_calls: connect %s: %s\n", addr, strerror(errno));
            return -1;
        }
        /* rawconn connected it (TCP_NODELAY set); this loop drives the socket itself */
        c->fd = dup(rc0.fd);
        rawconn_close(&rc0);
        c->next_msgid = c->oldest = BENCH_MSGID_BASE;
        c->left = b->calls_per_conn > 0 ? b->calls_per_conn : LONG_MAX;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (c->fd == -1 || fcntl(c->fd, F_SETFL, O_NONBLOCK) == -1 ||
            epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
            return -1;
    }
    return 0;
}

/* The loop of one run, from the first send to the last answer. Returns 0 or -1. */
static int drive(bench *b)
{
    struct epoll_event evs[BENCH_MAX_EVENTS];
    double last_progress = b->t0;
    long last_done = -1;

    for (int i = 0; i < b->nconns; i++) {
        bconn *c = &b->conns[i];
        long k = b->notify ? 0 : b->depth;
        if (b->calls_per_conn > 0 && k > c->left)
            k = c->left;
        if (queue_calls(b, c, k) == -1 || flush_out(b, c) == -1)
            return -1;
    }
    for (;;) {
        double t = now_s();
        int timeout = advance(b, t);
        int active = 0;
        for (int i = 0; i < b->nconns; i++)
            active += !b->conns[i].finished;
        if (active == 0)
            return 0;
        if (b->done != last_done) {
            last_done = b->done;
            last_progress = t;
        } else if (t - last_progress > BENCH_STALL_MS / 1000.0) {
            fprintf(stderr, "bench_calls: no answer for %d s (%ld done)\n",
                    BENCH_STALL_MS / 1000, b->done);
            return -1;
        }
        int n = epoll_wait(b->ep, evs, BENCH_MAX_EVENTS, timeout);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            perror("bench_calls: epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            bconn *c = evs[i].data.ptr;
            if ((evs[i].events & EPOLLOUT) && flush_out(b, c) == -1)
                return -1;
            if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && on_readable(b, c) == -1)
                return -1;
        }
    }
}

/* The run command. Returns the exit status. */
static int run(bench *b, const char *addr)
{
    int rc = 1;

    b->lim.max_message = DAFFI_DEFAULT_MAX_MESSAGE;
    b->lim.max_depth = DAFFI_DEFAULT_MAX_DEPTH;
    b->in_min = 2 * (b->req_size > b->resp_size ? b->req_size : b->resp_size) + BENCH_READ;
    b->conns = calloc((size_t)b->nconns, sizeof(*b->conns));
    msgpack_zone_init(&b->zone, 4096);
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    if (b->conns == NULL || b->ep == -1 || connect_all(b, addr) == -1)
        goto out;
    if (b->handshake) {
        char line[16];
        for (int i = 0; i < b->nconns; i++)
            if (prime_conn(b, &b->conns[i]) == -1)
                goto out;
        printf("ready\n");
        fflush(stdout);
        if (fgets(line, sizeof(line), stdin) == NULL)
            goto out;
    }
    b->t0 = now_s();
    b->t_warm = b->t0 + (double)b->warm_ms / 1000.0;
    b->t_end = b->t_warm + (double)b->duration_ms / 1000.0;
    b->ph = b->duration_ms > 0 ? PH_WARM : PH_MEASURE;
    b->t_start = b->t0;
    if (b->notify)
        b->ph = PH_MEASURE; /* no warm-up: every notification sent counts */
    if (drive(b) == -1)
        goto out;
    double end = now_s();
    if (b->notify || b->duration_ms == 0) {
        b->t_stop = end;
        b->t_start = b->t0;
    }
    double secs = b->t_stop - b->t_start;
    /* served: what the server handled from the first send to the last answer */
    long served = b->notify ? b->done + b->answers : b->answers;
    printf("calls=%ld conns=%d seconds=%.3f calls_per_s=%.0f served=%ld\n", b->done,
           b->nconns, secs, secs > 0 ? (double)b->done / secs : 0.0, served);
    rc = 0;
out:
    for (int i = 0; b->conns != NULL && i < b->nconns; i++) {
        if (b->conns[i].fd > 0)
            close(b->conns[i].fd);
        free(b->conns[i].in);
        free(b->conns[i].out);
    }
    free(b->conns);
    free(b->req);
    free(b->note);
    msgpack_zone_destroy(&b->zone);
    if (b->ep != -1)
        close(b->ep);
    return rc;
}

/* The wait command: polls until addr accepts. Returns the exit status. */
static int wait_for(const char *addr, long timeout_ms)
{
    struct timespec pause = { 0, 10 * 1000000L };
    double deadline = now_s() + (double)timeout_ms / 1000.0;

    while (now_s() < deadline) {
        rawconn c;
        int r = rawconn_open(&c, addr, 1000);
        rawconn_close(&c);
        if (r == 0)
            return 0;
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "bench_calls: %s did not accept within %ld ms\n", addr, timeout_ms);
    return 1;
}

/* Prints the usage on stderr. Returns the exit status 2. */
static int usage(void)
{
    fprintf(stderr,
            "usage: bench_calls run -s ADDRESS [-c CONNS] [-d DEPTH] [-p PAYLOAD_BYTES]\n"
            "                       (-n CALLS_PER_CONN | -T MS [-w MS]) [-m METHOD -i INT]\n"
            "                       [-N] [-r] [-g]\n"
            "       bench_calls wait -s ADDRESS [-t TIMEOUT_MS]\n"
            "       bench_calls port\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *addr = NULL, *method = "echo";
    long conns = 1, depth = 1, calls = 0, payload = 0, timeout = 10000, dur = 0, warm = 100;
    long long iarg = 0;
    int opt, use_int = 0;
    bench b;

    memset(&b, 0, sizeof(b));
    b.ep = -1;
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    optind = 2;
    while ((opt = getopt(argc, argv, "s:c:d:n:p:t:T:w:m:i:Nrg")) != -1) {
        switch (opt) {
        case 's': addr = optarg; break;
        case 'c': conns = strtol(optarg, NULL, 10); break;
        case 'd': depth = strtol(optarg, NULL, 10); break;
        case 'n': calls = strtol(optarg, NULL, 10); break;
        case 'p': payload = strtol(optarg, NULL, 10); break;
        case 't': timeout = strtol(optarg, NULL, 10); break;
        case 'T': dur = strtol(optarg, NULL, 10); break;
        case 'w': warm = strtol(optarg, NULL, 10); break;
        case 'm': method = optarg; break;
        case 'i': iarg = strtoll(optarg, NULL, 10); use_int = 1; break;
        case 'N': b.notify = 1; break;
        case 'r': b.resp = 1; break;
        case 'g': b.handshake = 1; break;
        default: return usage();
        }
    }
    if (strcmp(cmd, "port") == 0) {
        int port = tdaemon_free_port();
        if (port == -1)
            return 1;
        printf("%d\n", port);
        return 0;
    }
    if (addr == NULL)
        return usage();
    if (strcmp(cmd, "wait") == 0)
        return wait_for(addr, timeout);
    if (strcmp(cmd, "run") != 0 || conns < 1 || conns > 10000 || depth < 1 || depth > 4096 ||
        (calls < 1) == (dur < 1) || warm < 0 || payload < 0 || payload > BENCH_MAX_PAYLOAD ||
        (b.resp && (b.notify || use_int || strcmp(method, "echo") != 0)))
        return usage();
    b.nconns = (int)conns;
    b.depth = (int)depth;
    b.calls_per_conn = calls;
    b.duration_ms = dur;
    b.warm_ms = dur > 0 && !b.notify ? warm : 0;
    if (frames_build(&b, (size_t)payload, method, iarg, use_int) == -1)
        return 1;
    return run(&b, addr);
}
