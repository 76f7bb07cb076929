/*
 * tls.c - the TLS contexts: building them from [tls], swapping them at reload, the
 * peer's identity and OpenSSL's reasons in words (see tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "logfmt.h"
#include "server.h"
#include "tls.h"

/* The reason of the last OpenSSL error (the queue cleared), or fallback. */
static const char *tls_last_error(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0) {
        snprintf(buf, len, "%s", fallback);
    } else {
        const char *r = ERR_reason_error_string(e);
        if (r != NULL)
            snprintf(buf, len, "%s", r);
        else
            ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

const char *dfd_tls_reason(SSL *verify_ssl, char *buf, size_t len)
{
    if (verify_ssl != NULL) {
        long v = SSL_get_verify_result(verify_ssl);
        if (v != X509_V_OK) {
            ERR_clear_error();
            snprintf(buf, len, "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
            return buf;
        }
    }
    return tls_last_error(buf, len, "handshake failed");
}

/* 1 when path can be read; else the reason in why ("what path: reason"). */
static int tls_readable(const char *what, const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "re");

    if (f != NULL) {
        fclose(f);
        return 1;
    }
    snprintf(why, whylen, "%s %s: %s", what, path, strerror(errno));
    return 0;
}

/* OpenSSL fills a certificate's extension cache (its key identifiers, purposes) the
 * first time a chain is built with it, under the certificate's own lock, and later
 * reads parts of it without that lock: with the CA certificates shared by every loop,
 * ThreadSanitizer reports the read (ASN1_STRING_cmp) against the first loop's write
 * (ASN1_STRING_set) when two loops verify peers at once. Filling the caches here, on
 * the main thread before any loop has the context, leaves the loops only reading. */
static void tls_fill_caches(SSL_CTX *ctx)
{
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x != NULL)
            X509_check_purpose(x, -1, 0);
    }
    X509 *own = SSL_CTX_get0_certificate(ctx);
    if (own != NULL)
        X509_check_purpose(own, -1, 0);
    STACK_OF(X509) *chain = NULL;
    if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1)
        for (int i = 0; i < sk_X509_num(chain); i++)
            X509_check_purpose(sk_X509_value(chain, i), -1, 0);
}

/* What both kinds of context share: versions, modes, ciphers, the CA bundle. */
static int tls_ctx_common(SSL_CTX *ctx, const dfd_config *cfg, char *why, size_t whylen)
{
    char e[256];

    SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_version == DFD_TLS_V13
                                           ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* no renegotiation (a peer could make us do handshake work at will); a peer that
     * closes without close_notify is an end of input like any other */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_COMPRESSION);
    /* the connection's output buffer may move between a short write and its retry */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* one read() takes what the socket holds, as a plaintext connection's does: a
     * record that did not fill OpenSSL's buffer says the socket is drained (conn-tls.c) */
    SSL_CTX_set_read_ahead(ctx, 1);
#ifdef SSL_OP_ENABLE_KTLS
    /* OpenSSL hands the keys to the kernel after the handshake when the kernel has the
     * tls module and the cipher is one it does (AES-GCM, ChaCha20-Poly1305); where it
     * cannot, the connection goes on in OpenSSL: conn-tls.c tells which happened */
    if (cfg->tls_ktls)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
#endif
    if (cfg->tls_ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
        snprintf(why, whylen, "ciphers: %s", tls_last_error(e, sizeof(e), "no cipher "
                                                             "of the list is known"));
        return -1;
    }
    if ((cfg->tls_ca != NULL && !tls_readable("ca", cfg->tls_ca, why, whylen)) ||
        (cfg->tls_cert != NULL && !tls_readable("cert", cfg->tls_cert, why, whylen)) ||
        (cfg->tls_key != NULL && !tls_readable("key", cfg->tls_key, why, whylen)))
        return -1;
    if (cfg->tls_ca != NULL && SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
        snprintf(why, whylen, "ca %s: %s", cfg->tls_ca,
                 tls_last_error(e, sizeof(e), "cannot read it"));
        return -1;
    }
    if (cfg->tls_cert != NULL &&
        SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(why, whylen, "cert %s: %s", cfg->tls_cert,
                 tls_last_error(e, sizeof(e), "cannot read it"));
        return -1;
    }
    if (cfg->tls_key != NULL &&
        SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        snprintf(why, whylen, "key %s: %s", cfg->tls_key,
                 tls_last_error(e, sizeof(e), "cannot read it"));
        return -1;
    }
    if (cfg->tls_cert != NULL && cfg->tls_key != NULL && SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(why, whylen, "key %s: does not match the certificate of cert %s",
                 cfg->tls_key, cfg->tls_cert);
        ERR_clear_error();
        return -1;
    }
    tls_fill_caches(ctx);
    return 0;
}

SSL_CTX *dfd_tls_ctx_build(const dfd_config *cfg, int server, char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

    if (ctx == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (tls_ctx_common(ctx, cfg, why, whylen) == -1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (server) {
        static const unsigned char sid[] = "daffid";
        int mode = SSL_VERIFY_NONE;
        if (cfg->tls_verify_clients != DFD_TLS_VERIFY_NO)
            mode = SSL_VERIFY_PEER;
        if (cfg->tls_verify_clients == DFD_TLS_VERIFY_REQUIRE)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
        /* a resumed session must stay in this daffid's verification context */
        SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
        if (mode != SSL_VERIFY_NONE && cfg->tls_ca != NULL) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_ca);
            if (names != NULL)
                SSL_CTX_set_client_CA_list(ctx, names);
            ERR_clear_error();
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (cfg->tls_ca == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(why, whylen, "ca: not set, and the system's certificate store does "
                     "not load");
            ERR_clear_error();
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

/* The contexts cfg needs: a server one for tls:// listeners, a client one for a
 * worker's tls:// router. Returns 0, or -1 with the reason in why. */
static int tls_build_pair(const dfd_config *cfg, SSL_CTX **server, SSL_CTX **client,
                          char *why, size_t whylen)
{
    char r[600];

    *server = *client = NULL;
    if (cfg->tls_listeners && (*server = dfd_tls_ctx_build(cfg, 1, r, sizeof(r))) == NULL) {
        snprintf(why, whylen, "[tls] for the tls:// listeners: %s", r);
        return -1;
    }
    if (cfg->role == DFD_ROLE_WORKER && cfg->router != NULL &&
        strncmp(cfg->router, "tls://", 6) == 0 &&
        (*client = dfd_tls_ctx_build(cfg, 0, r, sizeof(r))) == NULL) {
        snprintf(why, whylen, "[tls] for the router %s: %s", cfg->router, r);
        SSL_CTX_free(*server);
        *server = NULL;
        return -1;
    }
    return 0;
}

int dfd_tls_init(dfd_server *srv, dfd_errors *errs)
{
    char why[700];

    pthread_mutex_init(&srv->tls.mu, NULL);
    if (tls_build_pair(srv->cfg, &srv->tls.server, &srv->tls.client, why, sizeof(why)) == -1) {
        dfd_errors_add(errs, "%s", why);
        return -1;
    }
    return 0;
}

int dfd_tls_reload(dfd_server *srv, const dfd_config *nc)
{
    SSL_CTX *server, *client, *old_server, *old_client;
    char why[700], q[800];

    if (srv->tls.server == NULL && srv->tls.client == NULL)
        return 0; /* no TLS at start: listeners and router are restart settings */
    if (tls_build_pair(nc, &server, &client, why, sizeof(why)) == -1) {
        dfd_error("tls.reload_failed", "error=%s msg=\"the running certificates stay\"",
                  dfd_logfmt_value(q, sizeof(q), why));
        return -1;
    }
    pthread_mutex_lock(&srv->tls.mu);
    old_server = srv->tls.server;
    old_client = srv->tls.client;
    /* a context that nothing needs now stays: the listeners did not change */
    if (server != NULL || old_server == NULL)
        srv->tls.server = server;
    if (client != NULL || old_client == NULL)
        srv->tls.client = client;
    pthread_mutex_unlock(&srv->tls.mu);
    /* open connections hold their own references (SSL_new) */
    if (old_server != srv->tls.server)
        SSL_CTX_free(old_server);
    else
        SSL_CTX_free(server);
    if (old_client != srv->tls.client)
        SSL_CTX_free(old_client);
    else
        SSL_CTX_free(client);
    dfd_info("tls.reloaded", "cert=%s ca=%s msg=\"new connections use the certificates "
             "just read; open ones keep theirs\"", nc->tls_cert ? nc->tls_cert : "-",
             nc->tls_ca ? nc->tls_ca : "-");
    return 0;
}

void dfd_tls_destroy(dfd_server *srv)
{
    SSL_CTX_free(srv->tls.server);
    SSL_CTX_free(srv->tls.client);
    srv->tls.server = srv->tls.client = NULL;
    pthread_mutex_destroy(&srv->tls.mu);
}

SSL *dfd_tls_new_ssl(dfd_server *srv, int server)
{
    SSL *ssl = NULL;

    pthread_mutex_lock(&srv->tls.mu);
    SSL_CTX *ctx = server ? srv->tls.server : srv->tls.client;
    if (ctx != NULL)
        ssl = SSL_new(ctx);
    pthread_mutex_unlock(&srv->tls.mu);
    return ssl;
}

/* Copies the first GEN_DNS (or GEN_EMAIL) name of cert into out. Returns 0 or -1. */
static int tls_san(X509 *cert, int type, char *out, size_t outlen)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int rc = -1;

    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && rc == -1; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != type)
            continue;
        const ASN1_IA5STRING *s = type == GEN_DNS ? g->d.dNSName : g->d.rfc822Name;
        int n = ASN1_STRING_length(s);
        if (n > 0 && (size_t)n < outlen) {
            memcpy(out, ASN1_STRING_get0_data(s), (size_t)n);
            out[n] = '\0';
            rc = 0;
        }
    }
    GENERAL_NAMES_free(names);
    return rc;
}

int dfd_tls_peer_identity(SSL *ssl, char *out, size_t outlen)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);

    if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
        return -1;
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out,
                                      (int)outlen);
    if (n > 0 && (size_t)n < outlen && strlen(out) == (size_t)n)
        return 0;
    if (tls_san(cert, GEN_DNS, out, outlen) == 0 || tls_san(cert, GEN_EMAIL, out, outlen) == 0)
        return 0;
    ERR_clear_error();
    return -1;
}
