/*
 * tnkeys.c - NKeys and NATS JWTs for the tests (see tnkeys.h). The encodings follow
 * github.com/nats-io/nkeys (a prefix byte naming the key's kind, the key, a CRC-16
 * XMODEM little endian, base32 without padding) and github.com/nats-io/jwt v2 (header
 * {"typ": "JWT", "alg": "ed25519-nkey"}, base64url without padding, the issuer's
 * Ed25519 signature of "header.claims").
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tnkeys.h"

#define PREFIX_SEED (18u << 3)
#define PREFIX_OPERATOR (14u << 3)
#define PREFIX_ACCOUNT 0u
#define PREFIX_USER (20u << 3)

/* One key: the OpenSSL key, its public NKey and its seed. */
typedef struct nkey {
    EVP_PKEY *pkey;
    char pub[64];
    char seed[64];
} nkey;

static uint16_t crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* base32 (RFC 4648 alphabet) of n bytes without padding into out (NUL-terminated). */
static void base32(const unsigned char *p, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned buf = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        buf = (buf << 8) | p[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = abc[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = abc[(buf << (5 - bits)) & 31];
    out[o] = '\0';
}

/* base64url without padding of n bytes into out (NUL-terminated). */
static void base64url(const unsigned char *p, size_t n, char *out)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
    }
    out[o] = '\0';
}

/* Encodes raw (n bytes, then 2 bytes of room) with its CRC into out. */
static void nkey_encode(unsigned char *raw, size_t n, char *out)
{
    uint16_t crc = crc16(raw, n);
    raw[n] = (unsigned char)(crc & 0xff);
    raw[n + 1] = (unsigned char)(crc >> 8);
    base32(raw, n + 2, out);
}

/* A fresh key of kind prefix. Returns 0 or -1. */
static int nkey_new(nkey *k, unsigned prefix)
{
    unsigned char pub[32], priv[32], raw[40];
    size_t plen = sizeof(pub), slen = sizeof(priv);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    k->pkey = NULL;
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &k->pkey) != 1 ||
        EVP_PKEY_get_raw_public_key(k->pkey, pub, &plen) != 1 ||
        EVP_PKEY_get_raw_private_key(k->pkey, priv, &slen) != 1 || plen != 32 || slen != 32) {
        EVP_PKEY_CTX_free(ctx);
        fprintf(stderr, "tnkeys: cannot make an Ed25519 key\n");
        return -1;
    }
    EVP_PKEY_CTX_free(ctx);
    raw[0] = (unsigned char)prefix;
    memcpy(raw + 1, pub, 32);
    nkey_encode(raw, 33, k->pub);
    raw[0] = (unsigned char)(PREFIX_SEED | (prefix >> 5));
    raw[1] = (unsigned char)((prefix & 31) << 3);
    memcpy(raw + 2, priv, 32);
    nkey_encode(raw, 34, k->seed);
    return 0;
}

/* The JWT of claims (JSON) signed by issuer into out (size bytes). Returns 0 or -1. */
static int jwt_sign(const nkey *issuer, const char *claims, char *out, size_t size)
{
    static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"ed25519-nkey\"}";
    unsigned char sig[64];
    size_t siglen = sizeof(sig);
    char h[128], c[4096], s[128];
    base64url((const unsigned char *)header, strlen(header), h);
    if (strlen(claims) * 4 / 3 + 4 > sizeof(c))
        return -1;
    base64url((const unsigned char *)claims, strlen(claims), c);
    int n = snprintf(out, size, "%s.%s", h, c);
    if (n < 0 || (size_t)n >= size)
        return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, issuer->pkey) == 1 &&
             EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out, (size_t)n) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return -1;
    base64url(sig, siglen, s);
    return snprintf(out + n, size - (size_t)n, ".%s", s) < (int)(size - (size_t)n) ? 0 : -1;
}

/* A random JWT id. */
static void jti(char *out)
{
    unsigned char r[20];
    if (RAND_bytes(r, sizeof(r)) != 1)
        memset(r, 7, sizeof(r));
    base32(r, sizeof(r), out);
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) == EOF) {
        fprintf(stderr, "tnkeys: cannot write %s\n", path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Writes the account's and a user's JWTs (issued by op and account) into acc_jwt and
 * name (a .creds file in dir). Returns 0 or -1. */
static int make_user(const char *dir, const char *name, const nkey *op, char *acc_jwt,
                     size_t acc_size)
{
    nkey acc, user;
    char claims[2048], id[40], user_jwt[4096], creds[8192];
    long long now = (long long)time(NULL);
    int rc = -1;
    acc.pkey = user.pkey = NULL;
    if (nkey_new(&acc, PREFIX_ACCOUNT) == -1 || nkey_new(&user, PREFIX_USER) == -1)
        goto out;
    jti(id);
    snprintf(claims, sizeof(claims),
             "{\"jti\":\"%s\",\"iat\":%lld,\"iss\":\"%s\",\"name\":\"tnkeys-account\","
             "\"sub\":\"%s\",\"nats\":{\"limits\":{\"subs\":-1,\"data\":-1,\"payload\":-1,"
             "\"imports\":-1,\"exports\":-1,\"wildcards\":true,\"conn\":-1,\"leaf\":-1},"
             "\"default_permissions\":{\"pub\":{},\"sub\":{}},\"type\":\"account\","
             "\"version\":2}}", id, now, op->pub, acc.pub);
    if (jwt_sign(op, claims, acc_jwt, acc_size) == -1)
        goto out;
    jti(id);
    snprintf(claims, sizeof(claims),
             "{\"jti\":\"%s\",\"iat\":%lld,\"iss\":\"%s\",\"name\":\"tnkeys-user\","
             "\"sub\":\"%s\",\"nats\":{\"pub\":{},\"sub\":{},\"subs\":-1,\"data\":-1,"
             "\"payload\":-1,\"type\":\"user\",\"version\":2}}", id, now, acc.pub, user.pub);
    if (jwt_sign(&acc, claims, user_jwt, sizeof(user_jwt)) == -1)
        goto out;
    snprintf(creds, sizeof(creds),
             "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"
             "************************* IMPORTANT *************************\n"
             "NKEY Seed printed below can be used to sign and prove identity.\n"
             "NKEYs are sensitive and should be treated as secrets.\n\n"
             "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n\n"
             "*************************************************************\n",
             user_jwt, user.seed);
    rc = write_file(dir, name, creds);
    /* the account's public key names it in the server's preload */
    if (rc == 0 && strlen(acc.pub) + 1 < acc_size) {
        char jwt[4096];
        snprintf(jwt, sizeof(jwt), "%s", acc_jwt);
        snprintf(acc_jwt, acc_size, "%s: \"%s\"", acc.pub, jwt);
    }
out:
    EVP_PKEY_free(acc.pkey);
    EVP_PKEY_free(user.pkey);
    return rc;
}

int tnkeys_operator_setup(const char *dir, int stranger)
{
    nkey op;
    char claims[1024], id[40], op_jwt[2048], acc_line[4200], stranger_line[4200];
    char conf[8192];
    int rc = -1;
    op.pkey = NULL;
    if (nkey_new(&op, PREFIX_OPERATOR) == -1)
        goto out;
    jti(id);
    snprintf(claims, sizeof(claims),
             "{\"jti\":\"%s\",\"iat\":%lld,\"iss\":\"%s\",\"name\":\"tnkeys-operator\","
             "\"sub\":\"%s\",\"nats\":{\"type\":\"operator\",\"version\":2}}", id,
             (long long)time(NULL), op.pub, op.pub);
    if (jwt_sign(&op, claims, op_jwt, sizeof(op_jwt)) == -1 ||
        write_file(dir, "op.jwt", op_jwt) == -1 ||
        make_user(dir, "user.creds", &op, acc_line, sizeof(acc_line)) == -1)
        goto out;
    /* a user of an account signed by the same operator, but never given to the server */
    if (stranger && make_user(dir, "stranger.creds", &op, stranger_line,
                              sizeof(stranger_line)) == -1)
        goto out;
    snprintf(conf, sizeof(conf), "operator: \"%s/op.jwt\"\nresolver: MEMORY\n"
             "resolver_preload: {\n  %s\n}\n", dir, acc_line);
    rc = write_file(dir, "nats.conf", conf);
out:
    EVP_PKEY_free(op.pkey);
    return rc;
}
