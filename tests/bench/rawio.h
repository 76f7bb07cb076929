/*
 * rawio.h - the socket pieces the raw servers of `make bench` share (bench_raw_server,
 * the floor, and bench_raw_proxy, the relay in front of it).
 *
 * Contract
 *   rawio_listen()  a listening, non-blocking socket on a daffi address (tcp:// or
 *                   unix://; a Unix path is unlinked first), backlog 1024.
 *   rawio_send()    writes from a non-blocking socket until it is done or would block.
 *   rawio_reserve() grows a malloc'ed buffer (doubling) to hold at least need bytes.
 *   rawio_stop_fd() blocks SIGTERM and SIGINT and returns a signalfd that reads them:
 *                   call it before creating threads, so that none takes them.
 * Failures are printed on stderr, prefixed with the caller's name. No state.
 */
#ifndef DAFFI_BENCH_RAWIO_H
#define DAFFI_BENCH_RAWIO_H

#include <stddef.h>

/* Returns the listening socket, or -1 (printed with who). */
int rawio_listen(const char *who, const char *address);

/* Sends up to n bytes at p on fd. Returns how many it sent (less than n: the socket
 * is full), or -1 when the peer is gone. */
long rawio_send(int fd, const char *p, size_t n);

/* Makes *buf (capacity *cap, may be NULL and 0) hold at least need bytes, doubling
 * from *cap or first. The caller owns *buf. Returns 0, or -1 (out of memory; *buf is
 * unchanged). */
int rawio_reserve(char **buf, size_t *cap, size_t need, size_t first);

/* Returns a non-blocking signalfd for SIGTERM and SIGINT (now blocked), or -1. */
int rawio_stop_fd(void);

#endif
