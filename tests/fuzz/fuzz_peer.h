/*
 * fuzz_peer.h - what the client fuzz targets (fuzz_client.c, fuzz_stream.c) share: the
 * server side of a connection that sends the fuzzer's bytes and then closes its side,
 * for a synchronous client (a socketpair in place of its connection) or an
 * asynchronous one (a Unix listener of this process, on one event_base). Header-only:
 * a fuzz target is one .c file.
 */
#ifndef FUZZ_PEER_H
#define FUZZ_PEER_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "client_int.h"

/* Writes all of in (len bytes) to fd, then ends its sending side. */
static inline void peer_serve_bytes(int fd, const char *in, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, in, len);

        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            abort();
        in += n;
        len -= (size_t)n;
    }
    shutdown(fd, SHUT_WR);
}

/* A synchronous client with opts whose connection is a socketpair: the server's end
 * goes to *server_fd (the caller closes it), which has already sent in and closed its
 * side. */
static inline daffi_client *peer_sync_client(const daffi_client_opts *opts, const char *in,
                                      size_t len, int *server_fd)
{
    daffi_client *c = daffi__client_alloc("unix:///fuzz-peer", opts, NULL);
    int sv[2];

    if (c == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        abort();
    c->fd = sv[0]; /* the client's connection, owned by it now */
    peer_serve_bytes(sv[1], in, len);
    *server_fd = sv[1];
    return c;
}

static struct event_base *peer_base;
static int peer_lfd = -1;
static char peer_address[128];

/* An asynchronous client with opts on peer_base, connected to this process's listener
 * (made on first use); the accepted server end goes to *server_fd (the caller sends on
 * it and closes it). */
static inline daffi_client *peer_async_client(const daffi_client_opts *opts, int *server_fd)
{
    struct sockaddr_un sun;
    daffi_client *c;

    if (peer_base == NULL) {
        peer_base = event_base_new();
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/fuzz_peer.%ld.sock", (long)getpid());
        unlink(sun.sun_path);
        peer_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (peer_base == NULL || peer_lfd == -1 ||
            bind(peer_lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 || listen(peer_lfd, 16) == -1)
            abort();
        snprintf(peer_address, sizeof(peer_address), "unix://%s", sun.sun_path);
    }
    c = daffi_client_new(peer_base, peer_address, opts, NULL);
    /* a Unix connect is complete in the kernel at once: the server end is there */
    if (c == NULL || (*server_fd = accept(peer_lfd, NULL, NULL)) == -1)
        abort();
    return c;
}

/* Runs peer_base until *flag is set, then until c's connection is down (the server
 * closed its side: every byte was read), at most a bounded number of passes; aborts
 * when that does not happen (a hang). */
static inline void peer_run(daffi_client *c, const int *flag)
{
    int i;

    for (i = 0; i < 10000 && *flag == 0; i++)
        event_base_loop(peer_base, EVLOOP_ONCE);
    for (i = 0; i < 10000 && daffi_client_connected(c); i++)
        event_base_loop(peer_base, EVLOOP_ONCE);
    if (*flag == 0 || daffi_client_connected(c))
        abort();
}

#endif /* FUZZ_PEER_H */
