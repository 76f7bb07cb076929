/*
 * rawio.c - socket pieces of the raw bench servers (see rawio.h).
 */
#include <errno.h>
#include <signal.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <daffi/rpc.h>

#include "rawio.h"

int rawio_listen(const char *who, const char *text)
{
    daffi_addr a;
    const char *why = NULL;
    int fd, one = 1;

    if (daffi_addr_parse(text, &a, &why) == -1) {
        fprintf(stderr, "%s: %s: %s\n", who, text, why);
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
            fprintf(stderr, "%s: cannot resolve %s\n", who, a.host);
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
    fprintf(stderr, "%s: %s: %s\n", who, text, strerror(errno));
    return -1;
}

long rawio_send(int fd, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        off += (size_t)w;
    }
    return (long)off;
}

int rawio_reserve(char **buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

int rawio_stop_fd(void)
{
    sigset_t stop;

    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    return signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
}
