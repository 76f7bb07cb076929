/*
 * tproxy.c - a TCP proxy whose connections a test can cut one by one (see tproxy.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <daffi/rpc.h>

#include "tproxy.h"

#define TPROXY_MAX 32
#define TPROXY_KEEP 4096

typedef struct tproxy_pair {
    int client;                 /* -1: closed */
    int server;
    char said[TPROXY_KEEP];     /* the first bytes the client sent */
    size_t nsaid;
} tproxy_pair;

struct tproxy {
    pthread_t thread;
    pthread_mutex_t lock;
    atomic_int stop;
    int lfd;
    int wake[2];                /* a cut or a stop wakes the poll */
    struct sockaddr_in target;
    char addr[64];
    tproxy_pair pairs[TPROXY_MAX];
    unsigned npairs;
};

static void pair_close(tproxy_pair *pr)
{
    if (pr->client != -1) {
        close(pr->client);
        close(pr->server);
        pr->client = pr->server = -1;
    }
}

/* Copies what is readable on from to to. Returns 0, or -1 when either side is done. */
static int pair_copy(tproxy_pair *pr, int from, int to)
{
    char buf[65536];
    ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        return -1;
    if (from == pr->client && pr->nsaid < TPROXY_KEEP) {
        size_t k = (size_t)n < TPROXY_KEEP - pr->nsaid ? (size_t)n : TPROXY_KEEP - pr->nsaid;
        memcpy(pr->said + pr->nsaid, buf, k);
        pr->nsaid += k;
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1 && errno == EAGAIN) {
            struct pollfd p = { .fd = to, .events = POLLOUT };
            poll(&p, 1, 100);
            continue;
        }
        if (w <= 0)
            return -1;
        off += w;
    }
    return 0;
}

static void proxy_accept(tproxy *p)
{
    int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c == -1)
        return;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s == -1 || connect(s, (struct sockaddr *)&p->target, sizeof(p->target)) == -1 ||
        p->npairs == TPROXY_MAX) {
        close(c);
        if (s != -1)
            close(s);
        return;
    }
    pthread_mutex_lock(&p->lock);
    tproxy_pair *pr = &p->pairs[p->npairs++];
    pr->client = c;
    pr->server = s;
    pr->nsaid = 0;
    pthread_mutex_unlock(&p->lock);
}

static void *proxy_main(void *arg)
{
    tproxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd fds[2 + 2 * TPROXY_MAX];
        int who[2 + 2 * TPROXY_MAX];
        nfds_t n = 0;
        fds[n].fd = p->lfd;
        fds[n++].events = POLLIN;
        fds[n].fd = p->wake[0];
        fds[n++].events = POLLIN;
        pthread_mutex_lock(&p->lock);
        for (unsigned i = 0; i < p->npairs; i++) {
            if (p->pairs[i].client == -1)
                continue;
            who[n] = (int)i;
            fds[n].fd = p->pairs[i].client;
            fds[n++].events = POLLIN;
            who[n] = (int)i;
            fds[n].fd = p->pairs[i].server;
            fds[n++].events = POLLIN;
        }
        pthread_mutex_unlock(&p->lock);
        if (poll(fds, n, 100) <= 0)
            continue;
        if (fds[1].revents) {
            char b[16];
            while (read(p->wake[0], b, sizeof(b)) > 0) {
            }
            continue; /* the set changed: poll it again */
        }
        if (fds[0].revents & POLLIN)
            proxy_accept(p);
        pthread_mutex_lock(&p->lock);
        for (nfds_t k = 2; k < n; k++) {
            tproxy_pair *pr = &p->pairs[who[k]];
            if (!fds[k].revents || pr->client == -1)
                continue;
            int from = fds[k].fd, to = from == pr->client ? pr->server : pr->client;
            if (pair_copy(pr, from, to) == -1)
                pair_close(pr);
        }
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

tproxy *tproxy_start(const char *target)
{
    daffi_addr a;
    const char *why = NULL;
    if (daffi_addr_parse(target, &a, &why) == -1 || a.kind != DAFFI_ADDR_TCP) {
        fprintf(stderr, "tproxy: %s is not a tcp:// address\n", target);
        return NULL;
    }
    tproxy *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)a.port);
    inet_pton(AF_INET, a.host, &p->target.sin_addr);
    pthread_mutex_init(&p->lock, NULL);
    struct sockaddr_in me = { .sin_family = AF_INET };
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(me);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->lfd == -1 || bind(p->lfd, (struct sockaddr *)&me, sizeof(me)) == -1 ||
        listen(p->lfd, 64) == -1 || getsockname(p->lfd, (struct sockaddr *)&me, &len) == -1 ||
        pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) == -1) {
        fprintf(stderr, "tproxy: listen: %s\n", strerror(errno));
        if (p->lfd != -1)
            close(p->lfd);
        free(p);
        return NULL;
    }
    snprintf(p->addr, sizeof(p->addr), "tcp://127.0.0.1:%d", ntohs(me.sin_port));
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        close(p->lfd);
        close(p->wake[0]);
        close(p->wake[1]);
        free(p);
        return NULL;
    }
    return p;
}

const char *tproxy_addr(const tproxy *p)
{
    return p->addr;
}

int tproxy_find(tproxy *p, const void *needle, size_t n)
{
    int found = -1;
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < p->npairs && found == -1; i++)
        if (p->pairs[i].client != -1 && memmem(p->pairs[i].said, p->pairs[i].nsaid, needle, n))
            found = (int)i;
    pthread_mutex_unlock(&p->lock);
    return found;
}

unsigned tproxy_open(tproxy *p)
{
    unsigned n = 0;
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < p->npairs; i++)
        n += p->pairs[i].client != -1;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int tproxy_cut(tproxy *p, int i)
{
    int rc = -1;
    pthread_mutex_lock(&p->lock);
    if (i >= 0 && (unsigned)i < p->npairs && p->pairs[i].client != -1) {
        /* a reset, as a broken network shows it: no orderly end of the stream */
        struct linger lg = { 1, 0 };
        setsockopt(p->pairs[i].client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        setsockopt(p->pairs[i].server, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        pair_close(&p->pairs[i]);
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    if (write(p->wake[1], "x", 1) == -1) {
        /* the poll wakes within 100 ms anyway */
    }
    return rc;
}

void tproxy_stop(tproxy *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop, 1);
    if (write(p->wake[1], "x", 1) == -1) {
        /* the poll wakes within 100 ms anyway */
    }
    pthread_join(p->thread, NULL);
    for (unsigned i = 0; i < p->npairs; i++)
        pair_close(&p->pairs[i]);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
