/*
 * conn-tls.c - TLS on one connection: handshake, reads, writes, close (see
 * conn-tls.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "auth.h"
#include "client_int.h" /* sdk/src: the library's SSL reads and writes */
#include "conn-tls.h"
#include "log.h"
#include "logfmt.h"
#include "server.h"
#include "tls.h"

/* The first byte of a TLS record carrying a handshake (a ClientHello). */
#define TLS_RECORD_HANDSHAKE 0x16

int dfd_conn_tls_attach(dfd_conn *c, int server, const char *host)
{
    SSL *ssl = dfd_tls_new_ssl(c->loop->srv, server);

    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
        dfd_error("tls.attach", "peer=%s msg=\"cannot start TLS on the connection (no "
                  "context, or out of memory)\"", c->peer);
        SSL_free(ssl);
        ERR_clear_error();
        return -1;
    }
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        unsigned char ip[16];
        int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        /* the router's certificate must name the host we dialled */
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
        else {
            SSL_set_tlsext_host_name(ssl, host);
            SSL_set1_host(ssl, host);
        }
        SSL_set_connect_state(ssl);
    }
    c->tls = ssl;
    c->tls_server = server != 0;
    c->open_tick = c->loop->tick;
    return 0;
}

/* Logs and counts a handshake that failed (reason in words). */
static void tls_failed(dfd_conn *c, const char *reason, enum dfd_counter extra)
{
    char q[400];

    dfd_warn("tls.handshake_failed", "peer=%s side=%s reason=%s msg=\"TLS handshake failed: "
             "connection closed\"", c->peer, c->tls_server ? "server" : "client",
             dfd_logfmt_value(q, sizeof(q), reason));
    dfd_stat_add(&c->loop->stats, DFD_STAT_tls_handshake_failures, 1);
    if (extra != DFD_STAT_COUNT)
        dfd_stat_add(&c->loop->stats, extra, 1);
}

/* [tls] ktls: whether the kernel took this connection's records in each direction
 * (OpenSSL tries once the handshake is done and falls back silently), counted, and
 * once per loop a warning when it took neither: the operator asked for something this
 * machine does not do. Writes "send,recv", "send", "recv" or "none" into out. */
static const char *tls_ktls_state(dfd_conn *c, char *out, size_t len)
{
    int tx = 0, rx = 0;

#if defined(SSL_OP_ENABLE_KTLS) && !defined(OPENSSL_NO_KTLS)
    if (!(SSL_get_options(c->tls) & SSL_OP_ENABLE_KTLS)) {
        snprintf(out, len, "off");
        return out;
    }
    tx = BIO_get_ktls_send(SSL_get_wbio(c->tls));
    rx = BIO_get_ktls_recv(SSL_get_rbio(c->tls));
#else
    if (!c->loop->srv->cfg->tls_ktls) {
        snprintf(out, len, "off");
        return out;
    }
#endif
    if (tx)
        dfd_stat_add(&c->loop->stats, DFD_STAT_tls_ktls_send, 1);
    if (rx)
        dfd_stat_add(&c->loop->stats, DFD_STAT_tls_ktls_recv, 1);
    if (!tx && !rx) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_tls_ktls_unavailable, 1);
        if (!c->loop->ktls_warned) {
            c->loop->ktls_warned = 1;
            dfd_warn("tls.ktls_unavailable", "peer=%s loop=%u version=%s cipher=%s "
                     "msg=\"[tls] ktls = yes, but the kernel took neither direction of "
                     "the connection: OpenSSL does its records (Linux needs the tls module, "
                     "modprobe tls, and an AES-GCM or ChaCha20-Poly1305 cipher; OpenSSL "
                     "built with KTLS). Logged once per loop; counted as "
                     "tls_ktls_unavailable\"", c->peer, c->loop->index,
                     SSL_get_version(c->tls), SSL_get_cipher_name(c->tls));
        }
    }
    snprintf(out, len, "%s", tx && rx ? "send,recv" : tx ? "send" : rx ? "recv" : "none");
    return out;
}

/* A listener's first look at a new connection: a TLS client starts with a handshake
 * record; anything else is a plaintext client on a TLS port, told apart here so that
 * the log says so instead of OpenSSL's "wrong version number". Returns 1 (TLS), 0 (no
 * byte yet), -1 (refused, logged). */
static int tls_peek(dfd_conn *c)
{
    unsigned char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);

    if (n == 1 && b == TLS_RECORD_HANDSHAKE) {
        c->tls_peeked = 1;
        return 1;
    }
    if (n == 1) {
        char why[160];
        snprintf(why, sizeof(why), "not TLS: the client speaks plaintext on a TLS listener "
                 "(first byte 0x%02x, a TLS client sends 0x16)", b);
        tls_failed(c, why, DFD_STAT_tls_plaintext_refused);
        return -1;
    }
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    tls_failed(c, n == 0 ? "the peer closed the connection before the handshake"
                         : strerror(errno), DFD_STAT_COUNT);
    return -1;
}

int dfd_conn_tls_handshake(dfd_conn *c)
{
    char reason[300];

    if (c->tls_ready)
        return 1;
    if (c->tls_server && !c->tls_peeked) {
        int p = tls_peek(c);
        if (p <= 0)
            return p;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(c->tls);
    if (r == 1) {
        c->tls_ready = 1;
        c->tls_hs_write = 0;
        dfd_stat_add(&c->loop->stats, DFD_STAT_tls_handshakes, 1);
        char id[256];
        if (c->tls_server && dfd_tls_peer_identity(c->tls, id, sizeof(id)) == 0)
            dfd_auth_identified(c, id, "certificate");
        char ktls[16];
        tls_ktls_state(c, ktls, sizeof(ktls));
        dfd_debug("tls.handshake", "peer=%s version=%s cipher=%s ktls=%s", c->peer,
                  SSL_get_version(c->tls), SSL_get_cipher_name(c->tls), ktls);
        ERR_clear_error(); /* the reads and writes start on an empty queue */
        return 1;
    }
    int e = SSL_get_error(c->tls, r);
    if (e == SSL_ERROR_WANT_READ) {
        c->tls_hs_write = 0;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->tls_hs_write = 1;
        return 0;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(reason, sizeof(reason), "%s", errno != 0 ? strerror(errno)
                 : "the peer closed the connection during the handshake");
    else
        dfd_tls_reason(c->tls, reason, sizeof(reason));
    tls_failed(c, reason, DFD_STAT_COUNT);
    return -1;
}

ssize_t dfd_conn_tls_read(dfd_conn *c, char *buf, size_t len)
{
    ssize_t n = daffi__ssl_recv(c->tls, buf, len);

    if (n == -1 && errno == EPROTO) {
        char reason[300], q[400];
        dfd_warn("tls.error", "peer=%s reason=%s msg=\"bad TLS record: connection closed\"",
                 c->peer, dfd_logfmt_value(q, sizeof(q),
                                           dfd_tls_reason(NULL, reason, sizeof(reason))));
        errno = EPROTO;
    }
    return n;
}

ssize_t dfd_conn_tls_write(dfd_conn *c, const char *p, size_t len)
{
    return daffi__ssl_send(c->tls, p, len);
}

int dfd_conn_tls_pending(const dfd_conn *c)
{
    return c->tls != NULL && c->tls_ready && SSL_has_pending(c->tls);
}

void dfd_conn_tls_timed_out(dfd_conn *c, uint64_t waited_ms)
{
    char why[160];

    snprintf(why, sizeof(why), "handshake not finished within handshake_timeout "
             "(%llums)", (unsigned long long)waited_ms);
    tls_failed(c, why, DFD_STAT_tls_handshake_timeouts);
}

void dfd_conn_tls_close(dfd_conn *c)
{
    if (c->tls == NULL)
        return;
    if (c->tls_ready) {
        /* a non-blocking socket: one attempt, whatever the socket takes now */
        SSL_shutdown(c->tls);
    }
    SSL_free(c->tls);
    ERR_clear_error();
    c->tls = NULL;
}
