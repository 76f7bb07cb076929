/*
 * bench_raw_server.c - the raw socket ping-pong floor that `make bench` compares
 * daffid with.
 *
 * usage: bench_raw_server -l ADDRESS -p PAYLOAD_BYTES [-t THREADS]
 *
 * A minimal epoll server that does what daffid's echo does on the wire, and nothing
 * else: for every request frame of the exact size of [0, msgid, "echo", [bin(PAYLOAD)]]
 * it reads, it answers one frame of the exact size of daffid's reply
 * [1, msgid, nil, bin(PAYLOAD)], with the request's msgid copied in; a notification
 * frame [2, "echo", [bin(PAYLOAD)]] (told apart by its first byte: an array of 3, not
 * 4) is read and dropped. The frame layouts come from the codec's packers (msgids >=
 * 65536, which the packer always writes as uint32, so every frame of a run has the
 * same size and the msgid sits at a fixed offset). No parsing, no dispatch, no
 * allocation per call: reads into a buffer of at least 64 KiB (two frames for large
 * payloads), replies written inline per read, like daffid's hot path.
 *
 * THREADS (default 1) epoll loops, each in its own thread: the first accepts and
 * hands connections round-robin to the loops (itself included), as daffid's listener
 * does with its workers; a connection stays on its loop. Runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#include "rawio.h"

#define RAW_BUF (64 * 1024)
#define RAW_MAX_EVENTS 256
#define RAW_MAX_THREADS 64
#define RAW_MSGID_BASE 0x10000u /* the smallest msgid packed as uint32 */
#define RAW_REQUEST_HEAD 0x94   /* fixarray of 4: a request */
#define RAW_NOTIFY_HEAD 0x93    /* fixarray of 3: a notification */

/* One connection: its unparsed input and its unsent output. */
typedef struct raw_conn {
    int fd;
    char *in;                 /* in_cap bytes */
    size_t in_len;
    size_t in_cap;
    char *out;
    size_t out_len;
    size_t out_cap;
} raw_conn;

/* The frames of one run, built once. */
typedef struct raw_shape {
    size_t req_size;
    size_t note_size;    /* a notification frame */
    size_t resp_size;
    char *resp;          /* the reply template; msgid bytes patched per request */
    size_t msgid_off;    /* where the 5-byte uint32 msgid sits in both frames */
} raw_shape;

/* Accepts the payload size. Fills sh with both frame sizes and the reply template,
 * as the codec packs them. Returns 0 or -1. */
static int shape_build(raw_shape *sh, size_t payload)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *body = calloc(1, payload ? payload : 1);

    if (body == NULL)
        return -1;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_request(&pk, RAW_MSGID_BASE, "echo", 4, 1);
    msgpack_pack_bin(&pk, payload);
    msgpack_pack_bin_body(&pk, body, payload);
    sh->req_size = sb.size;
    msgpack_sbuffer_clear(&sb);
    daffi_pack_notify(&pk, "echo", 4, 1);
    msgpack_pack_bin(&pk, payload);
    msgpack_pack_bin_body(&pk, body, payload);
    sh->note_size = sb.size;
    msgpack_sbuffer_clear(&sb);
    daffi_pack_response_ok(&pk, RAW_MSGID_BASE);
    sh->msgid_off = 2; /* after the fixarray header and the kind */
    msgpack_pack_bin(&pk, payload);
    msgpack_pack_bin_body(&pk, body, payload);
    sh->resp_size = sb.size;
    sh->resp = malloc(sb.size);
    free(body);
    if (sh->resp == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    memcpy(sh->resp, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* Writes what c->out holds; keeps the rest. Returns 0, or -1 when the peer is gone. */
static int flush_out(raw_conn *c)
{
    long off = rawio_send(c->fd, c->out, c->out_len);

    if (off == -1)
        return -1;
    memmove(c->out, c->out + off, c->out_len - (size_t)off);
    c->out_len -= (size_t)off;
    return 0;
}

/* Reads what is available, answers every whole request frame and drops every whole
 * notification, writes the answers inline. Returns 0, or -1 when the connection must
 * close (bytes that are neither frame, a read error or the peer's close). */
static int on_readable(raw_conn *c, const raw_shape *sh)
{
    for (;;) {
        size_t space = c->in_cap - c->in_len;
        ssize_t r = recv(c->fd, c->in + c->in_len, space, 0);
        if (r == 0)
            return -1;
        if (r == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        c->in_len += (size_t)r;
        size_t off = 0;
        for (;;) {
            size_t left = c->in_len - off;
            if (left == 0)
                break;
            unsigned char head = (unsigned char)c->in[off];
            size_t need = head == RAW_REQUEST_HEAD ? sh->req_size
                          : head == RAW_NOTIFY_HEAD ? sh->note_size : 0;
            if (need == 0)
                return -1;
            if (left < need)
                break;
            if (head == RAW_REQUEST_HEAD) {
                if (rawio_reserve(&c->out, &c->out_cap, c->out_len + sh->resp_size,
                                  sh->resp_size * 4) == -1)
                    return -1;
                char *o = c->out + c->out_len;
                memcpy(o, sh->resp, sh->resp_size);
                memcpy(o + sh->msgid_off, c->in + off + sh->msgid_off, 5);
                c->out_len += sh->resp_size;
            }
            off += need;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if ((size_t)r < space)
            break; /* the socket is empty: no syscall spent to learn it */
    }
    return flush_out(c);
}

/* One epoll loop; the first also owns the listener and the signal fd. */
typedef struct raw_loop {
    int ep;
    pthread_t thread;
    const raw_shape *sh;
    struct raw_server *srv;
} raw_loop;

typedef struct raw_server {
    raw_loop loops[RAW_MAX_THREADS];
    int nloops;
    unsigned next;            /* the loop the next connection goes to */
    int lfd, sfd;
    size_t in_cap;            /* every connection's input buffer */
    const char *addr;
} raw_server;

/* Distinct addresses tell the listener and the signal fd from connections. */
static char listen_tag, signal_tag;

/* Accepts every pending connection on the listener and registers each with the next
 * loop's epoll (epoll_ctl is thread-safe; the connection is that loop's from then on). */
static void accept_all(raw_server *srv)
{
    for (;;) {
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        int one = 1;
        /* Fails harmlessly on a Unix socket. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        raw_conn *c = calloc(1, sizeof(*c));
        char *in = malloc(srv->in_cap);
        if (c == NULL || in == NULL) {
            free(c);
            free(in);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->in = in;
        c->in_cap = srv->in_cap;
        raw_loop *to = &srv->loops[srv->next++ % (unsigned)srv->nloops];
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(to->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
            close(fd);
            free(c->in);
            free(c);
        }
    }
}

/* Closes c's socket and frees c and its buffers. */
static void conn_free(raw_conn *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Removes the Unix socket file, when the address is one. */
static void unlink_unix(const char *addr)
{
    daffi_addr a;
    const char *why;

    if (strncmp(addr, "unix://", 7) == 0 && daffi_addr_parse(addr, &a, &why) == 0)
        unlink(a.path);
}

/* Runs one loop until SIGTERM/SIGINT reaches the first (which then exits the process). */
static void *loop_main(void *arg)
{
    raw_loop *lp = arg;
    raw_server *srv = lp->srv;
    struct epoll_event evs[RAW_MAX_EVENTS];

    for (;;) {
        int n = epoll_wait(lp->ep, evs, RAW_MAX_EVENTS, -1);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            perror("bench_raw_server: epoll_wait");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listen_tag) {
                accept_all(srv);
                continue;
            }
            if (p == &signal_tag) {
                unlink_unix(srv->addr);
                exit(0);
            }
            raw_conn *c = p;
            int had_out = c->out_len > 0;
            int rc = 0;
            if (evs[i].events & EPOLLOUT)
                rc = flush_out(c);
            if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                rc = on_readable(c, lp->sh);
            if (rc == -1) {
                epoll_ctl(lp->ep, EPOLL_CTL_DEL, c->fd, NULL);
                conn_free(c);
                continue;
            }
            /* Ask for EPOLLOUT only while replies wait for room. */
            if (had_out != (c->out_len > 0)) {
                struct epoll_event ev = { .events = EPOLLIN | (c->out_len ? EPOLLOUT : 0),
                                          .data.ptr = c };
                epoll_ctl(lp->ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static raw_server srv;
    long payload = -1, threads = 1;
    raw_shape sh;
    int opt;

    while ((opt = getopt(argc, argv, "l:p:t:")) != -1) {
        if (opt == 'l')
            srv.addr = optarg;
        else if (opt == 'p')
            payload = strtol(optarg, NULL, 10);
        else if (opt == 't')
            threads = strtol(optarg, NULL, 10);
        else
            break;
    }
    if (srv.addr == NULL || payload < 0 || payload > (64L << 20) || threads < 1 ||
        threads > RAW_MAX_THREADS) {
        fprintf(stderr, "usage: bench_raw_server -l ADDRESS -p PAYLOAD_BYTES [-t THREADS "
                "(1..%d)]\n", RAW_MAX_THREADS);
        return 2;
    }
    if (shape_build(&sh, (size_t)payload) == -1)
        return 1;
    srv.in_cap = 2 * sh.req_size > RAW_BUF ? 2 * sh.req_size : RAW_BUF;
    srv.lfd = rawio_listen("bench_raw_server", srv.addr);
    if (srv.lfd == -1)
        return 1;

    /* before any thread exists: only the signal fd sees them */
    srv.sfd = rawio_stop_fd();
    srv.nloops = (int)threads;
    for (int i = 0; i < srv.nloops; i++) {
        srv.loops[i].ep = epoll_create1(EPOLL_CLOEXEC);
        srv.loops[i].sh = &sh;
        srv.loops[i].srv = &srv;
        if (srv.loops[i].ep == -1) {
            perror("bench_raw_server: epoll_create1");
            return 1;
        }
    }
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    struct epoll_event sev = { .events = EPOLLIN, .data.ptr = &signal_tag };
    if (srv.sfd == -1 || epoll_ctl(srv.loops[0].ep, EPOLL_CTL_ADD, srv.lfd, &lev) == -1 ||
        epoll_ctl(srv.loops[0].ep, EPOLL_CTL_ADD, srv.sfd, &sev) == -1) {
        perror("bench_raw_server: epoll");
        return 1;
    }
    for (int i = 1; i < srv.nloops; i++) {
        if (pthread_create(&srv.loops[i].thread, NULL, loop_main, &srv.loops[i]) != 0) {
            fprintf(stderr, "bench_raw_server: cannot start thread %d\n", i);
            return 1;
        }
    }
    loop_main(&srv.loops[0]);
    return 0;
}
