/*
 * client_connect.c - opening the socket of a client connection: TCP (every resolved
 * address in turn, non-blocking connect bounded by a deadline, TCP_NODELAY) or a
 * Unix stream socket (a full listen backlog is retried until the deadline).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"

/* Returns the poll() timeout until deadline (CLOCK_MONOTONIC ns, 0: none -> -1),
 * rounded up to a whole millisecond. */
static int ms_until(int64_t deadline)
{
    struct timespec ts;
    int64_t left;

    if (deadline == 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    left = deadline - ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* Waits for a non-blocking connect on fd to finish before deadline (ns, 0: none).
 * Returns 0 when connected, or -1 with errno set (ETIMEDOUT at the deadline). */
static int connect_wait(int fd, int64_t deadline)
{
    struct pollfd pfd;
    int n, soerr;
    socklen_t len = sizeof(soerr);

    for (;;) {
        pfd.fd = fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;
        n = poll(&pfd, 1, ms_until(deadline));
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return -1;
        if (n == 0) {
            if (ms_until(deadline) != 0)
                continue;
            errno = ETIMEDOUT;
            return -1;
        }
        break;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
        return -1;
    if (soerr != 0) {
        errno = soerr;
        return -1;
    }
    return 0;
}

/* Connects a TCP socket to a->host:a->port, trying each resolved address in turn.
 * Returns the connected non-blocking socket with TCP_NODELAY set, or -1 with a reason
 * written to buf. */
static int connect_tcp(const daffi_addr *a, int64_t deadline, char *buf, size_t buflen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int fd = -1, rc, one = 1, saved = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", a->port);
    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(buf, buflen, "cannot resolve '%s': %s", a->host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd == -1) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && connect_wait(fd, deadline) == 0))
            break;
        saved = errno;
        close(fd);
        fd = -1;
        if (saved == ETIMEDOUT)
            break; /* the time is spent: do not start on the next address */
    }
    freeaddrinfo(res);
    if (fd == -1) {
        snprintf(buf, buflen, "%s", saved == ETIMEDOUT ? "connect timed out" : strerror(saved));
        return -1;
    }
    /* requests are small and latency-bound: never wait for Nagle */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1) {
        snprintf(buf, buflen, "setsockopt TCP_NODELAY: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Connects a Unix stream socket to a->path. A full listen backlog (EAGAIN) is
 * retried until the deadline. Returns the non-blocking socket, or -1 with a reason in
 * buf. */
static int connect_unix(const daffi_addr *a, int64_t deadline, char *buf, size_t buflen)
{
    struct sockaddr_un sun;
    int fd, delay_ms = 1;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(a->path) >= sizeof(sun.sun_path)) {
        snprintf(buf, buflen, "socket path too long");
        return -1;
    }
    memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(buf, buflen, "socket: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            return fd;
        if (errno == EINTR)
            continue;
        if (errno == EINPROGRESS && connect_wait(fd, deadline) == 0)
            return fd;
        if (errno != EAGAIN || ms_until(deadline) == 0)
            break;
        /* the server's backlog is full: it is alive, give it a moment */
        poll(NULL, 0, delay_ms);
        if (delay_ms < 50)
            delay_ms *= 2;
    }
    snprintf(buf, buflen, "%s", errno == EAGAIN ? "connect timed out (listen backlog full)"
                                                 : strerror(errno));
    close(fd);
    return -1;
}

/* See client_int.h. */
int daffi__connect_socket(const daffi_addr *a, int64_t deadline, char *why, size_t whylen)
{
    why[0] = '\0';
    return a->kind == DAFFI_ADDR_TCP ? connect_tcp(a, deadline, why, whylen)
                                     : connect_unix(a, deadline, why, whylen);
}

/* See client_int.h. */
int daffi__resolve(const daffi_addr *a, struct addrinfo **res, char *why, size_t whylen)
{
    struct addrinfo hints;
    char port[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", a->port);
    *res = NULL;
    rc = getaddrinfo(a->host, port, &hints, res);
    if (rc != 0) {
        snprintf(why, whylen, "cannot resolve '%s': %s", a->host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

/* See client_int.h. */
int daffi__connect_begin(const struct sockaddr *sa, socklen_t salen, int *in_progress,
                         char *why, size_t whylen)
{
    int fd, one = 1;

    *in_progress = 0;
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    /* requests are small and latency-bound: never wait for Nagle */
    if (sa->sa_family != AF_UNIX &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1) {
        snprintf(why, whylen, "setsockopt TCP_NODELAY: %s", strerror(errno));
        close(fd);
        return -1;
    }
    while (connect(fd, sa, salen) == -1) {
        if (errno == EINTR)
            continue;
        if (errno == EINPROGRESS) {
            *in_progress = 1;
            return fd;
        }
        /* a Unix listener with a full backlog answers EAGAIN: the peer is alive, the
         * caller may retry shortly (*in_progress 2 says so) */
        if (errno == EAGAIN)
            *in_progress = 2;
        snprintf(why, whylen, "%s", errno == EAGAIN ? "listen backlog full" : strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* See client_int.h. */
int daffi__connect_finish(int fd, char *why, size_t whylen)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1) {
        snprintf(why, whylen, "getsockopt SO_ERROR: %s", strerror(errno));
        return -1;
    }
    if (soerr != 0) {
        snprintf(why, whylen, "%s", strerror(soerr));
        return -1;
    }
    return 0;
}
