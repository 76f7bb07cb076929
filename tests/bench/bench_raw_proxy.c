/*
 * bench_raw_proxy.c - the floor of a router hop for `make bench`: a single-threaded
 * raw epoll byte relay put in front of bench_raw_server, so that "client -> proxy ->
 * floor" against "client -> floor" shows what one extra hop costs at the least.
 *
 * usage: bench_raw_proxy -l ADDRESS -u UPSTREAM
 *
 * For every connection accepted on ADDRESS it opens one to UPSTREAM and relays bytes
 * both ways: each read (into a 64 KiB buffer) is written to the other side inline, the
 * rest kept and sent on EPOLLOUT. No parsing and no msgid mapping, so it does less
 * than a router must (a router picks a member per call and maps msgids): its figure
 * is a ceiling for router/direct on the same pinning. TCP or Unix on both sides.
 * Runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <daffi/rpc.h>

#include "../support/rawconn.h"
#include "rawio.h"

#define PROXY_BUF (64 * 1024)
#define PROXY_MAX_EVENTS 256

/* One side of a relayed pair: its socket, and what waits to be written to it. */
typedef struct side {
    int fd;
    struct side *peer;
    char *pend;              /* bytes for this side not yet written */
    size_t pend_len, pend_cap;
    int want_out;
} side;

static char listen_tag, signal_tag;

/* Sets s's epoll interest (EPOLLOUT while bytes wait). Returns 0 or -1. */
static int interest(int ep, side *s, int want_out)
{
    if (s->want_out == want_out)
        return 0;
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = s };
    s->want_out = want_out;
    return epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Writes n bytes at p to s, keeping what the socket does not take. Returns 0 or -1. */
static int put(int ep, side *s, const char *p, size_t n)
{
    long sent = s->pend_len == 0 ? rawio_send(s->fd, p, n) : 0;

    if (sent == -1)
        return -1;
    size_t off = (size_t)sent;
    if (off == n)
        return 0;
    if (rawio_reserve(&s->pend, &s->pend_cap, s->pend_len + n - off, PROXY_BUF) == -1)
        return -1;
    memcpy(s->pend + s->pend_len, p + off, n - off);
    s->pend_len += n - off;
    return interest(ep, s, 1);
}

/* Writes what waits for s. Returns 0 or -1. */
static int flush_pend(int ep, side *s)
{
    long off = rawio_send(s->fd, s->pend, s->pend_len);

    if (off == -1)
        return -1;
    memmove(s->pend, s->pend + off, s->pend_len - (size_t)off);
    s->pend_len -= (size_t)off;
    return interest(ep, s, s->pend_len > 0);
}

/* Relays what s can read to its peer. Returns 0, or -1 when the pair must close. */
static int relay(int ep, side *s, char *buf)
{
    for (;;) {
        ssize_t r = recv(s->fd, buf, PROXY_BUF, 0);
        if (r == 0)
            return -1;
        if (r == -1)
            return errno == EAGAIN ? 0 : errno == EINTR ? relay(ep, s, buf) : -1;
        if (put(ep, s->peer, buf, (size_t)r) == -1)
            return -1;
        if (r < PROXY_BUF)
            return 0;
    }
}

/* Closes both sides of a pair and frees them. */
static void pair_free(int ep, side *s)
{
    side *sides[2] = { s, s->peer };
    for (int i = 0; i < 2; i++) {
        epoll_ctl(ep, EPOLL_CTL_DEL, sides[i]->fd, NULL);
        close(sides[i]->fd);
        free(sides[i]->pend);
    }
    free(s < s->peer ? s : s->peer); /* both live in one allocation */
}

/* Accepts every pending connection and pairs it with a new one to upstream. */
static void accept_all(int lfd, int ep, const char *upstream)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rawconn up;
        side *pair = calloc(2, sizeof(side));
        if (pair == NULL || rawconn_open(&up, upstream, 5000) == -1) {
            fprintf(stderr, "bench_raw_proxy: cannot reach %s\n", upstream);
            free(pair);
            close(fd);
            continue;
        }
        pair[0].fd = fd;
        pair[1].fd = dup(up.fd);
        rawconn_close(&up);
        pair[0].peer = &pair[1];
        pair[1].peer = &pair[0];
        fcntl(pair[1].fd, F_SETFL, O_NONBLOCK);
        for (int i = 0; i < 2; i++) {
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &pair[i] };
            epoll_ctl(ep, EPOLL_CTL_ADD, pair[i].fd, &ev);
        }
    }
}

int main(int argc, char **argv)
{
    const char *addr = NULL, *upstream = NULL;
    int opt;
    static char buf[PROXY_BUF];

    while ((opt = getopt(argc, argv, "l:u:")) != -1) {
        if (opt == 'l')
            addr = optarg;
        else if (opt == 'u')
            upstream = optarg;
        else
            break;
    }
    if (addr == NULL || upstream == NULL) {
        fprintf(stderr, "usage: bench_raw_proxy -l ADDRESS -u UPSTREAM\n");
        return 2;
    }
    int lfd = rawio_listen("bench_raw_proxy", addr);
    if (lfd == -1)
        return 1;
    int sfd = rawio_stop_fd();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    struct epoll_event sev = { .events = EPOLLIN, .data.ptr = &signal_tag };
    if (sfd == -1 || ep == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) == -1 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) == -1) {
        perror("bench_raw_proxy: epoll");
        return 1;
    }
    struct epoll_event evs[PROXY_MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, PROXY_MAX_EVENTS, -1);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return 1;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listen_tag) {
                accept_all(lfd, ep, upstream);
                continue;
            }
            if (p == &signal_tag)
                return 0;
            side *s = p;
            int rc = 0;
            if (evs[i].events & EPOLLOUT)
                rc = flush_pend(ep, s);
            if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                rc = relay(ep, s, buf);
            if (rc == -1) {
                pair_free(ep, s);
                /* the peer may also be in this batch: drop the rest of it */
                break;
            }
        }
    }
}
