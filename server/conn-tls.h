/*
 * conn-tls.h - TLS on one dfd_conn: an OpenSSL SSL on the connection's own
 * non-blocking socket (SSL_set_fd), so that the records it decrypts land in the
 * connection's own read buffer and feed the same framer, and its output is written
 * inline from the connection's own output buffer, as a plaintext connection's is
 * (conn.c calls these where it would read() and write()).
 *
 * The handshake runs first, driven by the connection's read and write events; output
 * appended meanwhile waits in the buffer. A failed handshake is one warning naming the
 * peer and OpenSSL's reason (tls.handshake_failed), counted, and the connection alone
 * is closed by the caller; one that does not finish within [tls] handshake_timeout is
 * closed by the loop's sweep (sweep.c).
 */
#ifndef DFD_CONN_TLS_H
#define DFD_CONN_TLS_H

#include <sys/types.h>

#include "conn.h"

/* Puts TLS on c: server = 1 for a connection accepted on a tls:// listener, 0 for our
 * link to a tls:// router, whose certificate must name host. Returns 0, or -1 (no
 * context, out of memory: logged; the caller closes c). */
int dfd_conn_tls_attach(dfd_conn *c, int server, const char *host);

/* Moves the handshake on. Returns 1 when it is done (now or before), 0 when it waits
 * for the socket (the write event armed when it must write), -1 when it failed
 * (logged, counted; the caller kills c). */
int dfd_conn_tls_handshake(dfd_conn *c);

/* Like read(2) on the socket: the plaintext of as many records as fit in len bytes.
 * Returns the bytes, 0 at the end of input, or -1 with errno (EAGAIN: nothing now). */
ssize_t dfd_conn_tls_read(dfd_conn *c, char *buf, size_t len);

/* Like write(2): returns the bytes of p taken (encrypted and sent), or -1 with errno
 * (EAGAIN: the socket is full; retry with the same bytes). */
ssize_t dfd_conn_tls_write(dfd_conn *c, const char *p, size_t len);

/* 1 when decrypted bytes wait inside the SSL (no socket event will announce them). */
int dfd_conn_tls_pending(const dfd_conn *c);

/* The sweep found c's handshake older than handshake_timeout: logs and counts it
 * (the caller closes c). */
void dfd_conn_tls_timed_out(dfd_conn *c, uint64_t waited_ms);

/* Sends close_notify when the handshake finished (one attempt, never waits) and frees
 * the SSL. c is being killed. */
void dfd_conn_tls_close(dfd_conn *c);

#endif /* DFD_CONN_TLS_H */
