/*
 * bench_raw_server.c - the raw socket ping-pong floor that `make bench` compares
 * daffid with.
 *
 * usage: bench_raw_server -l ADDRESS -p PAYLOAD_BYTES
 *
 * A minimal single-threaded epoll server that does what daffid's echo does on the
 * wire, and nothing else: for every request frame of the exact size of
 * [0, msgid, "echo", [bin(PAYLOAD)]] it reads, it answers one frame of the exact size
 * of daffid's reply [1, msgid, nil, bin(PAYLOAD)], with the request's msgid copied in.
 * Both frame layouts come from the codec's packers (msgids >= 65536, which the packer
 * always writes as uint32, so every frame of a run has the same size and the msgid
 * sits at a fixed offset). No parsing, no dispatch, no allocation per call: reads into
 * a 64 KiB buffer, replies written inline per read, like daffid's hot path. Runs until
 * SIGTERM or SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#define RAW_BUF (64 * 1024)
#define RAW_MAX_EVENTS 256
#define RAW_MSGID_BASE 0x10000u /* the smallest msgid packed as uint32 */

/* One connection: its unparsed input and its unsent output. */
typedef struct raw_conn {
    int fd;
    char in[RAW_BUF];
    size_t in_len;
    char *out;
    size_t out_len;
    size_t out_cap;
} raw_conn;

/* The frames of one run, built once. */
typedef struct raw_shape {
    size_t req_size;
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

/* Accepts an address string. Returns a listening non-blocking socket, or -1. */
static int listen_on(const char *text)
{
    daffi_addr a;
    const char *why = NULL;
    int fd, one = 1;

    if (daffi_addr_parse(text, &a, &why) == -1) {
        fprintf(stderr, "bench_raw_server: %s: %s\n", text, why);
        return -1;
    }
    if (a.kind == DAFFI_ADDR_UNIX) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a.path);
        unlink(a.path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
            goto fail;
    } else {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *res = NULL;
        char port[16];
        snprintf(port, sizeof(port), "%d", a.port);
        if (getaddrinfo(a.host, port, &hints, &res) != 0) {
            fprintf(stderr, "bench_raw_server: cannot resolve %s\n", a.host);
            return -1;
        }
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd != -1)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd == -1 || bind(fd, res->ai_addr, res->ai_addrlen) == -1) {
            freeaddrinfo(res);
            goto fail;
        }
        freeaddrinfo(res);
    }
    if (listen(fd, 1024) == -1)
        goto fail;
    return fd;
fail:
    fprintf(stderr, "bench_raw_server: %s: %s\n", text, strerror(errno));
    return -1;
}

/* Writes what c->out holds; keeps the rest. Returns 0, or -1 when the peer is gone. */
static int flush_out(raw_conn *c)
{
    size_t off = 0;

    while (off < c->out_len) {
        ssize_t w = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        off += (size_t)w;
    }
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
    return 0;
}

/* Reads what is available, answers every whole request frame, writes the answers
 * inline. Returns 0, or -1 when the connection must close. */
static int on_readable(raw_conn *c, const raw_shape *sh)
{
    for (;;) {
        size_t space = sizeof(c->in) - c->in_len;
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
        size_t frames = c->in_len / sh->req_size;
        size_t need = c->out_len + frames * sh->resp_size;
        if (need > c->out_cap) {
            char *n = realloc(c->out, need);
            if (n == NULL)
                return -1;
            c->out = n;
            c->out_cap = need;
        }
        for (size_t i = 0; i < frames; i++) {
            char *o = c->out + c->out_len;
            memcpy(o, sh->resp, sh->resp_size);
            memcpy(o + sh->msgid_off, c->in + i * sh->req_size + sh->msgid_off, 5);
            c->out_len += sh->resp_size;
        }
        size_t used = frames * sh->req_size;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if ((size_t)r < space)
            break; /* the socket is empty: no syscall spent to learn it */
    }
    return flush_out(c);
}

/* Accepts every pending connection on lfd and registers it with ep. */
static void accept_all(int lfd, int ep)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        int one = 1;
        /* Fails harmlessly on a Unix socket. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        raw_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
            close(fd);
            free(c);
        }
    }
}

/* Closes c's socket and frees c and its buffers. */
static void conn_free(raw_conn *c)
{
    close(c->fd);
    free(c->out);
    free(c);
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    long payload = -1;
    raw_shape sh;
    int opt;
    /* Distinct addresses tell the listener and the signal fd from connections. */
    static char listen_tag, signal_tag;

    while ((opt = getopt(argc, argv, "l:p:")) != -1) {
        if (opt == 'l')
            addr = optarg;
        else if (opt == 'p')
            payload = strtol(optarg, NULL, 10);
        else
            break;
    }
    if (addr == NULL || payload < 0) {
        fprintf(stderr, "usage: bench_raw_server -l ADDRESS -p PAYLOAD_BYTES\n");
        return 2;
    }
    if (shape_build(&sh, (size_t)payload) == -1)
        return 1;
    if (2 * sh.req_size > RAW_BUF) {
        fprintf(stderr, "bench_raw_server: payload %ld too large for %d-byte buffers\n",
                payload, RAW_BUF);
        return 2;
    }
    int lfd = listen_on(addr);
    if (lfd == -1)
        return 1;

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    struct epoll_event sev = { .events = EPOLLIN, .data.ptr = &signal_tag };
    if (sfd == -1 || ep == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) == -1 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) == -1) {
        perror("bench_raw_server: epoll");
        return 1;
    }

    struct epoll_event evs[RAW_MAX_EVENTS];
    int running = 1;
    while (running) {
        int n = epoll_wait(ep, evs, RAW_MAX_EVENTS, -1);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            perror("bench_raw_server: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listen_tag) {
                accept_all(lfd, ep);
                continue;
            }
            if (p == &signal_tag) {
                running = 0;
                continue;
            }
            raw_conn *c = p;
            int had_out = c->out_len > 0;
            int rc = 0;
            if (evs[i].events & EPOLLOUT)
                rc = flush_out(c);
            if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                rc = on_readable(c, &sh);
            if (rc == -1) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                conn_free(c);
                continue;
            }
            /* Ask for EPOLLOUT only while replies wait for room. */
            if (had_out != (c->out_len > 0)) {
                struct epoll_event ev = { .events = EPOLLIN | (c->out_len ? EPOLLOUT : 0),
                                          .data.ptr = c };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    if (strncmp(addr, "unix://", 7) == 0) {
        daffi_addr a;
        const char *why;
        if (daffi_addr_parse(addr, &a, &why) == 0)
            unlink(a.path);
    }
    free(sh.resp);
    return 0;
}
