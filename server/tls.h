/*
 * tls.h - TLS contexts for daffid (OpenSSL): what [tls] says, built into an SSL_CTX
 * for the listeners (server side) and one for a worker's link to its router (client
 * side), swapped whole at reload.
 *
 * The connections use them through conn-tls.c (an SSL on the connection's own
 * non-blocking socket, feeding the connection's own buffers). An SSL takes a reference
 * to the context it was made from, so a reload that swaps the context leaves every
 * open connection on the certificates it shook hands with, and only new connections
 * see the new ones: nothing is dropped.
 *
 * Threads: the contexts are built and swapped on the main thread; the loops take a new
 * SSL from the current one under the room's mutex (once per connection).
 */
#ifndef DFD_TLS_H
#define DFD_TLS_H

#include <pthread.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config-t.h"

struct dfd_server;

typedef struct dfd_tls {
    pthread_mutex_t mu;
    SSL_CTX *server;   /* tls:// listeners; NULL when there is none */
    SSL_CTX *client;   /* a worker's tls:// router; NULL otherwise */
} dfd_tls;

/* Builds the context cfg's [tls] describes: server = 1 for the listeners (cert and key
 * required, client certificates per verify_clients), 0 for a client (the router's
 * certificate verified against ca, or the system's store without one; cert and key,
 * when set, sent as the client's). Returns it (SSL_CTX_free by the caller), or NULL
 * with the reason in why ("cert /path: ..."). */
SSL_CTX *dfd_tls_ctx_build(const dfd_config *cfg, int server, char *why, size_t whylen);

/* Builds the contexts srv->cfg needs. Returns 0, or -1 with the reason in errs. */
int dfd_tls_init(struct dfd_server *srv, dfd_errors *errs);

/* Reload: builds the contexts from nc and swaps them in; on failure keeps the running
 * ones (logged: tls.reload_failed). Returns 0 or -1. Main thread. */
int dfd_tls_reload(struct dfd_server *srv, const dfd_config *nc);

void dfd_tls_destroy(struct dfd_server *srv);

/* A new SSL from the current server (server = 1) or client context, in the accept or
 * connect state; NULL when there is none or memory ran out. Any thread. */
SSL *dfd_tls_new_ssl(struct dfd_server *srv, int server);

/* Writes the identity of the peer's verified certificate into out: its subject CN, or
 * else its first DNS name, or else its first email address. Returns 0, or -1 when the
 * peer sent none or it did not verify. */
int dfd_tls_peer_identity(SSL *ssl, char *out, size_t outlen);

/* Writes the reason of the last OpenSSL failure into buf (and clears the error queue):
 * a failed verification's own reason when verify_ssl is given and it failed. */
const char *dfd_tls_reason(SSL *verify_ssl, char *buf, size_t len);

#endif /* DFD_TLS_H */
