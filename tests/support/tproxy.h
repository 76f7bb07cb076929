/*
 * tproxy.h - a TCP proxy for tests that need to break one connection as a network
 * would: a worker dials the proxy, the proxy dials the real address, and the test cuts
 * the connection it chooses (both sides closed), leaving the others alone.
 *
 * Contract
 *   tproxy_start() listens on a free 127.0.0.1 port and serves from a thread of its
 *   own: every accepted connection gets a connection of its own to the target, and
 *   bytes are copied both ways as they come. The first 4 KiB a client sends are kept,
 *   so that a test can tell connections apart by what they said (tproxy_find(), e.g. a
 *   hello's "link": 1). tproxy_cut() closes both sides of one connection.
 *
 * Ownership: the proxy owns its thread and sockets until tproxy_stop(). The accessors
 * may be called from any thread while it runs. No global state.
 */
#ifndef DAFFI_TEST_TPROXY_H
#define DAFFI_TEST_TPROXY_H

#include <stddef.h>

typedef struct tproxy tproxy;

/* Proxies to target ("tcp://127.0.0.1:PORT"). Returns the proxy, or NULL (printed). */
tproxy *tproxy_start(const char *target);

/* The proxy's own address, "tcp://127.0.0.1:PORT" (owned by the proxy). */
const char *tproxy_addr(const tproxy *p);

/* The index of the first open connection whose client sent bytes containing the n
 * bytes of needle (within its first 4 KiB), or -1. */
int tproxy_find(tproxy *p, const void *needle, size_t n);

/* Open connections. */
unsigned tproxy_open(tproxy *p);

/* Closes both sides of connection i. Returns 0, or -1 when there is no such open one. */
int tproxy_cut(tproxy *p, int i);

/* Closes everything and joins the thread; NULL is a no-op. */
void tproxy_stop(tproxy *p);

#endif /* DAFFI_TEST_TPROXY_H */
