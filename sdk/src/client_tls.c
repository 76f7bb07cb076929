/*
 * client_tls.c - TLS and the token of a libdaffi client: the context a tls:// address
 * gets from the options (or DAFFI_TLS_CA, DAFFI_TLS_CERT, DAFFI_TLS_KEY,
 * DAFFI_TLS_INSECURE, DAFFI_TOKEN), the handshake on a connected socket, and the
 * socket's reads and writes through the SSL when there is one (both kinds of client
 * read and write through daffi__io_recv/daffi__io_send).
 *
 * The handshake is a begin (the SSL on the connected non-blocking socket) and steps
 * (SSL_do_handshake until it no longer wants to read or write): the synchronous
 * client waits between steps with poll(), bounded by the connect timeout; the
 * asynchronous one from its loop, on the socket's events (client_async_io.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "client_int.h"

/* opt, or the environment variable env when opt is NULL or empty. */
static const char *opt_or_env(const char *opt, const char *env)
{
    const char *v = opt != NULL && *opt != '\0' ? opt : getenv(env);

    return v != NULL && *v != '\0' ? v : NULL;
}

static const char *ssl_reason(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, len, "%s", r != NULL ? r : fallback);
    ERR_clear_error();
    return buf;
}

/* See client_int.h. */
int daffi__tls_setup(daffi_client *c, const daffi_client_opts *o, daffi_error *err)
{
    const char *token = opt_or_env(o->token, "DAFFI_TOKEN");
    char r[256];

    if (token != NULL && (c->token = strdup(token)) == NULL) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "out of memory");
        return -1;
    }
    if (!c->addr.tls)
        return 0;
    const char *ca = opt_or_env(o->tls_ca, "DAFFI_TLS_CA");
    const char *cert = opt_or_env(o->tls_cert, "DAFFI_TLS_CERT");
    const char *key = opt_or_env(o->tls_key, "DAFFI_TLS_KEY");
    const char *insecure = getenv("DAFFI_TLS_INSECURE");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "out of memory");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1); /* one recv() per readiness (daffi__io_recv) */
    c->tls_insecure = o->tls_insecure || (insecure != NULL && strcmp(insecure, "1") == 0);
    SSL_CTX_set_verify(ctx, c->tls_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    const char *bad = NULL;
    if (ca != NULL && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        bad = "tls_ca";
    else if (ca == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1)
        bad = "the system's CA store";
    else if ((cert == NULL) != (key == NULL))
        bad = cert != NULL ? "tls_key (tls_cert needs it)" : "tls_cert (tls_key needs it)";
    else if (cert != NULL && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        bad = "tls_cert";
    else if (key != NULL && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        bad = "tls_key";
    else if (cert != NULL && SSL_CTX_check_private_key(ctx) != 1)
        bad = "tls_key (it does not match tls_cert)";
    if (bad != NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "%s: %s: %s", c->address, bad,
                       ssl_reason(r, sizeof(r), "missing"));
        SSL_CTX_free(ctx);
        return -1;
    }
    c->tls_ctx = ctx;
    return 0;
}

/* See client_int.h. */
void daffi__tls_free(daffi_client *c)
{
    daffi__tls_drop(c);
    SSL_CTX_free(c->tls_ctx);
    c->tls_ctx = NULL;
    free(c->token);
    c->token = NULL;
}

/* See client_int.h. */
void daffi__tls_drop(daffi_client *c)
{
    if (c->ssl != NULL) {
        if (SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl); /* one attempt: a non-blocking socket */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    c->ssl = NULL;
}

/* ---- the socket under the SSL ------------------------------------------------------
 * OpenSSL's own socket BIO writes with write(), which raises SIGPIPE in a program that
 * did not ignore it when the peer has gone; the library never does that to its caller
 * (its plaintext path sends with MSG_NOSIGNAL). So the SSL reads and writes the socket
 * through this BIO: recv() and send(MSG_NOSIGNAL), both non-blocking. */

static int bio_write(BIO *b, const char *p, int n)
{
    ssize_t r = send((int)(intptr_t)BIO_get_data(b), p, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);

    BIO_clear_retry_flags(b);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)r;
}

static int bio_read(BIO *b, char *p, int n)
{
    ssize_t r = recv((int)(intptr_t)BIO_get_data(b), p, (size_t)n, MSG_DONTWAIT);

    BIO_clear_retry_flags(b);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "daffi socket");

    if (m != NULL && (BIO_meth_set_write(m, bio_write) != 1 ||
                      BIO_meth_set_read(m, bio_read) != 1 ||
                      BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
                      BIO_meth_set_create(m, bio_create) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    bio_method = m; /* set once, for the process's life */
}

/* A BIO on fd (not owned: the client closes it). NULL when memory ran out. */
static BIO *bio_for(int fd)
{
    pthread_once(&bio_once, bio_method_init);
    BIO *b = bio_method != NULL ? BIO_new(bio_method) : NULL;

    if (b != NULL)
        BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}

/* The poll() timeout until deadline (ns, 0: none -> -1), at least 1 ms when not past. */
static int ms_left(int64_t deadline)
{
    if (deadline == 0)
        return -1;
    int64_t left = deadline - daffi__now_ns();
    if (left <= 0)
        return 0;
    return (int)((left + 999999) / 1000000);
}

/* See client_int.h. */
int daffi__tls_begin(daffi_client *c, int fd, char *why, size_t whylen)
{
    SSL *ssl;
    unsigned char ip[16];

    if (c->tls_ctx == NULL)
        return 0;
    BIO *bio = NULL;
    if ((ssl = SSL_new(c->tls_ctx)) == NULL || (bio = bio_for(fd)) == NULL) {
        SSL_free(ssl);
        snprintf(why, whylen, "TLS: out of memory");
        return -1;
    }
    SSL_set_bio(ssl, bio, bio); /* the SSL owns the BIO */
    if (!c->tls_insecure) {
        /* the certificate must name the host dialled */
        if (inet_pton(AF_INET, c->addr.host, ip) == 1 || inet_pton(AF_INET6, c->addr.host, ip) == 1)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->addr.host);
        else
            SSL_set1_host(ssl, c->addr.host);
    }
    if (inet_pton(AF_INET, c->addr.host, ip) != 1 && inet_pton(AF_INET6, c->addr.host, ip) != 1)
        SSL_set_tlsext_host_name(ssl, c->addr.host);
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    return 0;
}

/* See client_int.h. */
int daffi__tls_step(daffi_client *c, char *why, size_t whylen)
{
    SSL *ssl = c->ssl;
    char r[256];

    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        ERR_clear_error(); /* the reads and writes start on an empty queue */
        return DAFFI__TLS_DONE;
    }
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return DAFFI__TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return DAFFI__TLS_WANT_WRITE;
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
        snprintf(why, whylen, "TLS handshake failed: certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(why, whylen, "TLS handshake failed: %s", errno != 0 ? strerror(errno)
                 : "the peer closed the connection (is it a TLS port?)");
    else
        snprintf(why, whylen, "TLS handshake failed: %s",
                 ssl_reason(r, sizeof(r), "the peer closed the connection or does not speak TLS (is it a tls:// port?)"));
    ERR_clear_error();
    SSL_free(ssl); /* no shutdown after a failed handshake */
    c->ssl = NULL;
    return -1;
}

/* See client_int.h. */
int daffi__tls_handshake(daffi_client *c, int fd, int64_t deadline, char *why, size_t whylen)
{
    if (c->tls_ctx == NULL)
        return 0;
    if (daffi__tls_begin(c, fd, why, whylen) == -1)
        return -1;
    for (;;) {
        int rc = daffi__tls_step(c, why, whylen);
        if (rc == DAFFI__TLS_DONE)
            return 0;
        if (rc == -1)
            return -1;
        struct pollfd pfd = {fd, rc == DAFFI__TLS_WANT_WRITE ? POLLOUT : POLLIN, 0};
        int ms = ms_left(deadline);
        if (ms == 0 || (poll(&pfd, 1, ms) == 0 && ms_left(deadline) == 0)) {
            snprintf(why, whylen, "TLS handshake timed out");
            SSL_free(c->ssl);
            c->ssl = NULL;
            ERR_clear_error();
            return -1;
        }
    }
}

/* SSL_get_error() reads the thread's error queue, which must be empty before the call
 * it explains. Every error path here and in daffid's TLS code empties it, so it is
 * empty on the hot path: look before clearing (ERR_clear_error walks all 16 slots of
 * the queue on every call; ERR_peek_error only compares two indexes). */
static void ssl_errors_clear(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* See client_int.h. */
ssize_t daffi__ssl_send(void *ssl, const char *p, size_t len)
{
    ssl_errors_clear();
    int n = SSL_write(ssl, p, len > 0x40000000 ? 0x40000000 : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        errno = EAGAIN;
    else if (!(e == SSL_ERROR_SYSCALL && errno != 0))
        errno = EPIPE;
    ERR_clear_error();
    return -1;
}

/* See client_int.h. */
ssize_t daffi__ssl_recv(void *ssl, char *p, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssl_errors_clear();
        int n = SSL_read(ssl, p + got, len - got > 0x40000000 ? 0x40000000 : (int)(len - got));
        if (n > 0) {
            got += (size_t)n;
            /* nothing more buffered: the last read() did not fill OpenSSL's buffer
             * (read-ahead), so the socket is drained and another would say EAGAIN */
            if (!SSL_has_pending(ssl))
                break;
            continue;
        }
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (got > 0)
            break; /* the end or the error again on the next call */
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
                                          errno == 0))
            return 0;
        if (e != SSL_ERROR_SYSCALL || ERR_peek_error() != 0)
            errno = EPROTO; /* the error queue says why: the caller reads or clears it */
        return -1;
    }
    if (got == 0) {
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)got;
}

/* See client_int.h. */
ssize_t daffi__io_send(daffi_client *c, const char *p, size_t len)
{
    if (c->ssl == NULL)
        return send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    return daffi__ssl_send(c->ssl, p, len);
}

/* See client_int.h. */
ssize_t daffi__io_recv(daffi_client *c, char *p, size_t len)
{
    if (c->ssl == NULL)
        return recv(c->fd, p, len, MSG_DONTWAIT);
    ssize_t n = daffi__ssl_recv(c->ssl, p, len);
    if (n == -1 && errno == EPROTO)
        ERR_clear_error();
    return n;
}

/* See client_int.h. */
int daffi__io_pending(const daffi_client *c)
{
    return c->ssl != NULL && SSL_has_pending(c->ssl);
}

/* See client_int.h. */
void daffi__auth_params(const daffi_client *c, msgpack_object *params, msgpack_object *tok)
{
    tok->type = MSGPACK_OBJECT_STR;
    tok->via.str.ptr = c->token;
    tok->via.str.size = (uint32_t)strlen(c->token);
    params->type = MSGPACK_OBJECT_ARRAY;
    params->via.array.size = 1;
    params->via.array.ptr = tok;
}

/* See client_int.h. */
int daffi__auth_append(daffi_client *c)
{
    msgpack_object tok, params;

    if (c->token == NULL)
        return 0;
    daffi__auth_params(c, &params, &tok);
    c->auth_msgid = c->next_msgid++;
    if (c->next_msgid == 0)
        c->next_msgid = 1;
    daffi__outmsg m = {0, c->auth_msgid, "daffi.auth", &params, NULL, 0, NULL, 0};
    daffi_error err = DAFFI_ERROR_INIT;
    int rc = daffi__append(c, &m, NULL, &err);
    daffi_error_clear(&err);
    return rc;
}

/* See client_int.h. */
int daffi__auth_reply(daffi_client *c, const char *msg, size_t size, char *why, size_t whylen)
{
    daffi_result res;
    daffi_error err = DAFFI_ERROR_INIT;

    c->auth_msgid = 0;
    if (daffi__reply_take(msg, size, "daffi.auth", &res, &err) == 0) {
        daffi_result_free(&res);
        return 0;
    }
    snprintf(why, whylen, "authentication refused (daffi.auth): %s",
             err.message != NULL ? err.message : "?");
    daffi_error_clear(&err);
    return -1;
}
