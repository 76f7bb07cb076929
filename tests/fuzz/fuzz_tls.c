/*
 * fuzz_tls.c - libFuzzer target for the TLS-wrapped byte stream that feeds the framer:
 * the SSL reads and writes daffid's connections and libdaffi share (daffi__ssl_recv,
 * daffi__ssl_send: read-ahead, one read per readiness, stop once OpenSSL holds
 * nothing more).
 * Not built by default: `make fuzz` builds it with clang and runs it (FUZZ_TIME seconds).
 *
 * One TLS 1.3 client and server are connected once through a pair of memory BIOs
 * (a certificate made in memory at the first input). Input layout: byte 0 seeds the
 * sizes of the writes and of the read buffers; the rest is the stream (messages, or
 * anything), written by the client in pieces and read by the server in pieces, as a
 * connection reads into its buffer before the framer (fuzz_rpc fuzzes the framer on
 * such bytes).
 *
 * Properties (abort() on a violation): every byte written arrives, in order, unchanged,
 * with no read ever reporting the end or an error, and without a stall (a bounded
 * number of rounds): reading stops at no record boundary and loses nothing.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "client_int.h"

static SSL *cli, *srv;

/* A self-signed P-256 certificate for the server, in memory. */
static void make_cert(EVP_PKEY **key, X509 **cert)
{
    *key = EVP_EC_gen("P-256");
    *cert = X509_new();
    if (*key == NULL || *cert == NULL)
        abort();
    X509_set_version(*cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(*cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(*cert), 86400);
    X509_set_pubkey(*cert, *key);
    X509_NAME *n = X509_get_subject_name(*cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(*cert, n);
    if (X509_sign(*cert, *key, EVP_sha256()) == 0)
        abort();
}

/* Connects cli and srv through a BIO pair and finishes their handshake. */
static void setup(void)
{
    EVP_PKEY *key;
    X509 *cert;
    BIO *a, *b;

    make_cert(&key, &cert);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (sctx == NULL || cctx == NULL || SSL_CTX_use_certificate(sctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(sctx, key) != 1)
        abort();
    SSL_CTX *both[] = {sctx, cctx};
    for (int i = 0; i < 2; i++) {
        /* as daffid's and libdaffi's contexts are set (tls.c, client_tls.c) */
        SSL_CTX_set_mode(both[i], SSL_MODE_ENABLE_PARTIAL_WRITE |
                                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_read_ahead(both[i], 1);
    }
    srv = SSL_new(sctx);
    cli = SSL_new(cctx);
    if (srv == NULL || cli == NULL || BIO_new_bio_pair(&a, 0, &b, 0) != 1)
        abort();
    SSL_set_bio(srv, a, a);
    SSL_set_bio(cli, b, b);
    SSL_set_accept_state(srv);
    SSL_set_connect_state(cli);
    for (int i = 0; i < 1000; i++) {
        int c = SSL_do_handshake(cli), s = SSL_do_handshake(srv);
        if (c == 1 && s == 1)
            break;
        if (i == 999)
            abort();
    }
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static size_t next_size(uint32_t *rng, size_t max)
{
    *rng = *rng * 1103515245u + 12345u;
    return 1 + (*rng >> 8) % max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cli == NULL)
        setup();
    if (size < 1)
        return 0;
    uint32_t rng = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1, sent = 0, got = 0;
    char *buf = malloc(n + 1);

    if (buf == NULL)
        abort();
    for (int rounds = 0; got < n; rounds++) {
        if (rounds > 100000)
            abort(); /* a stall: bytes written never arrive */
        if (sent < n) {
            size_t want = next_size(&rng, 20000);
            ssize_t w = daffi__ssl_send(cli, p + sent, want > n - sent ? n - sent : want);
            if (w > 0)
                sent += (size_t)w;
            else if (errno != EAGAIN)
                abort();
        }
        size_t room = next_size(&rng, 70000);
        if (room > n - got)
            room = n - got;
        ssize_t r = daffi__ssl_recv(srv, buf + got, room);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || errno != EAGAIN)
            abort(); /* an end or an error in the middle of a good stream */
    }
    if (memcmp(buf, p, n) != 0)
        abort();
    free(buf);
    return 0;
}
