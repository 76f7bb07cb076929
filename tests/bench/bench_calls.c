/*
 * bench_calls.c - the benchmark client of `make bench` (driven by tests/bench/run.sh).
 *
 * usage: bench_calls run -s ADDRESS -c CONNS -n CALLS_PER_CONN -p PAYLOAD_BYTES
 *        bench_calls wait -s ADDRESS [-t TIMEOUT_MS]
 *        bench_calls port
 *
 * run: opens CONNS connections, then drives all of them from one epoll loop in this
 * one thread, each with exactly one call outstanding: echo(bin(PAYLOAD)) as
 * [0, msgid, "echo", [bin]], msgids from 65536 up (so every request of a run has the
 * same size), each response delimited by the codec's scanner, decoded, and checked
 * (a response, the expected msgid, no error) before the connection's next call goes
 * out. It prints one line:
 *     calls=N conns=C seconds=S calls_per_s=R
 * The same code runs against daffid and against bench_raw_server (which answers
 * frames of the same sizes), so the two figures differ only by the server.
 *
 * wait: exits 0 once ADDRESS accepts a connection (default 10 s), else 1.
 * port: prints a free 127.0.0.1 TCP port.
 */
#include <errno.h>
#include <fcntl.h>
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

#define BENCH_BUF (64 * 1024)
#define BENCH_MSGID_BASE 0x10000u
#define BENCH_MAX_EVENTS 256

/* One client connection with one call outstanding. */
typedef struct bconn {
    int fd;
    char *in;                /* BENCH_BUF bytes */
    size_t in_len;
    daffi_scan scan;
    int scanning;
    uint32_t next_msgid;     /* the msgid of the call in flight */
    long left;               /* calls still to send after the one in flight */
} bconn;

/* Everything one run owns. */
typedef struct bench {
    bconn *conns;
    int nconns;
    long calls_per_conn;
    size_t payload;
    char *body;              /* the payload bytes */
    msgpack_sbuffer sb;      /* the request being sent */
    msgpack_packer pk;
    msgpack_zone zone;
    daffi_limits lim;
    long done;               /* responses received */
} bench;

/* Returns CLOCK_MONOTONIC in seconds. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Packs echo(bin(payload)) with c's next msgid and writes it whole. Returns 0 or -1. */
static int send_call(bench *b, bconn *c)
{
    size_t off = 0;

    msgpack_sbuffer_clear(&b->sb);
    daffi_pack_request(&b->pk, c->next_msgid, "echo", 4, 1);
    msgpack_pack_bin(&b->pk, b->payload);
    msgpack_pack_bin_body(&b->pk, b->body, b->payload);
    /* A blocking socket with one call outstanding: the write completes at once. */
    while (off < b->sb.size) {
        ssize_t w = send(c->fd, b->sb.data + off, b->sb.size - off, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            perror("bench_calls: send");
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

/* Handles one whole response of size bytes at c->in. Returns 0, or -1 on a wrong
 * answer (printed). */
static int on_response(bench *b, bconn *c, size_t size)
{
    daffi_msg m;

    msgpack_zone_clear(&b->zone);
    if (daffi_msg_decode(c->in, size, &b->zone, &m) == -1 || m.kind != DAFFI_MSG_RESPONSE ||
        m.msgid != c->next_msgid) {
        fprintf(stderr, "bench_calls: unexpected message (kind %d msgid %u, expected a "
                "response to %u)\n", (int)m.kind, m.msgid, c->next_msgid);
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
    b->done++;
    return 0;
}

/* Reads what c has, handles every whole response, sends the next call. Returns 1
 * while c has calls left, 0 when it is finished, -1 on error. */
static int on_readable(bench *b, bconn *c)
{
    ssize_t r = recv(c->fd, c->in + c->in_len, BENCH_BUF - c->in_len, MSG_DONTWAIT);

    if (r == 0) {
        fprintf(stderr, "bench_calls: the server closed a connection\n");
        return -1;
    }
    if (r == -1)
        return errno == EAGAIN || errno == EINTR ? 1 : -1;
    c->in_len += (size_t)r;
    for (;;) {
        if (!c->scanning) {
            daffi_scan_init(&c->scan);
            c->scanning = 1;
        }
        daffi_scan_result sr = daffi_scan_feed(&c->scan, c->in, c->in_len, &b->lim);
        if (sr == DAFFI_SCAN_NEED_MORE)
            return 1;
        if (sr != DAFFI_SCAN_COMPLETE) {
            fprintf(stderr, "bench_calls: bad bytes from the server: %s\n", c->scan.error);
            return -1;
        }
        size_t size = c->scan.size;
        c->scanning = 0;
        if (on_response(b, c, size) == -1)
            return -1;
        memmove(c->in, c->in + size, c->in_len - size);
        c->in_len -= size;
        if (c->left == 0)
            return 0;
        c->left--;
        c->next_msgid++;
        if (send_call(b, c) == -1)
            return -1;
    }
}

/* The run command. Returns the exit status. */
static int run(const char *addr, int nconns, long calls, size_t payload)
{
    bench b = { .nconns = nconns, .calls_per_conn = calls, .payload = payload };
    struct epoll_event evs[BENCH_MAX_EVENTS];
    int ep, active = nconns, rc = 1;

    b.lim.max_message = DAFFI_DEFAULT_MAX_MESSAGE;
    b.lim.max_depth = DAFFI_DEFAULT_MAX_DEPTH;
    b.body = calloc(1, payload ? payload : 1);
    b.conns = calloc((size_t)nconns, sizeof(*b.conns));
    if (b.body == NULL || b.conns == NULL)
        return 1;
    for (size_t i = 0; i < payload; i++)
        b.body[i] = (char)(i * 31);
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    msgpack_zone_init(&b.zone, 4096);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        return 1;
    for (int i = 0; i < nconns; i++) {
        bconn *c = &b.conns[i];
        rawconn rc0;
        if (rawconn_open(&rc0, addr, 10000) == -1) {
            fprintf(stderr, "bench_calls: connect %s: %s\n", addr, strerror(errno));
            return 1;
        }
        /* rawconn connected it (TCP_NODELAY set); this loop drives the socket itself. */
        c->fd = dup(rc0.fd);
        rawconn_close(&rc0);
        c->in = malloc(BENCH_BUF);
        c->next_msgid = BENCH_MSGID_BASE;
        c->left = calls - 1;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (c->fd == -1 || c->in == NULL || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
            return 1;
    }

    double t0 = now_s();
    for (int i = 0; i < nconns; i++)
        if (send_call(&b, &b.conns[i]) == -1)
            goto out;
    while (active > 0) {
        int n = epoll_wait(ep, evs, BENCH_MAX_EVENTS, 30000);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            perror("bench_calls: epoll_wait");
            goto out;
        }
        if (n == 0) {
            fprintf(stderr, "bench_calls: no answer for 30 s (%ld calls done)\n", b.done);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            bconn *c = evs[i].data.ptr;
            int r = on_readable(&b, c);
            if (r == -1)
                goto out;
            if (r == 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                active--;
            }
        }
    }
    double secs = now_s() - t0;
    printf("calls=%ld conns=%d seconds=%.3f calls_per_s=%.0f\n", b.done, nconns, secs,
           (double)b.done / secs);
    rc = 0;
out:
    for (int i = 0; i < nconns; i++) {
        if (b.conns[i].fd > 0)
            close(b.conns[i].fd);
        free(b.conns[i].in);
    }
    free(b.conns);
    free(b.body);
    msgpack_sbuffer_destroy(&b.sb);
    msgpack_zone_destroy(&b.zone);
    close(ep);
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
            "usage: bench_calls run -s ADDRESS -c CONNS -n CALLS_PER_CONN -p PAYLOAD_BYTES\n"
            "       bench_calls wait -s ADDRESS [-t TIMEOUT_MS]\n"
            "       bench_calls port\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    long conns = 1, calls = 0, payload = 0, timeout = 10000;
    int opt;

    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    optind = 2;
    while ((opt = getopt(argc, argv, "s:c:n:p:t:")) != -1) {
        switch (opt) {
        case 's': addr = optarg; break;
        case 'c': conns = strtol(optarg, NULL, 10); break;
        case 'n': calls = strtol(optarg, NULL, 10); break;
        case 'p': payload = strtol(optarg, NULL, 10); break;
        case 't': timeout = strtol(optarg, NULL, 10); break;
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
    if (strcmp(cmd, "run") == 0) {
        if (conns < 1 || conns > 10000 || calls < 1 || payload < 0 || payload > 60000)
            return usage();
        return run(addr, (int)conns, calls, (size_t)payload);
    }
    return usage();
}
