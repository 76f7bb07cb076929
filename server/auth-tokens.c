/*
 * auth-tokens.c - the [auth] tokens file: parsing it, and finding the entry a
 * presented token names in constant time (see auth.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth.h"

#define TOKEN_NAME_MAX 64
#define TOKEN_MIN 16
#define TOKEN_MAX 1024
#define TOKENS_FILE_MAX (1u << 20)

typedef struct token_entry {
    char name[TOKEN_NAME_MAX + 1];
    unsigned char digest[SHA256_DIGEST_LENGTH];
} token_entry;

struct dfd_tokens {
    token_entry *v;
    size_t n;
};

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '@' || c == '-';
}

/* Splits one line (len bytes, no newline) into name and token. Returns NULL, or what
 * is wrong. A blank line or a comment gives *name_len 0. */
static const char *token_line(const char *p, size_t len, const char **name, size_t *name_len,
                              const char **tok, size_t *tok_len)
{
    size_t i = 0;

    *name_len = *tok_len = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i == len || p[i] == '#')
        return NULL;
    *name = p + i;
    while (i < len && name_char((unsigned char)p[i]))
        i++;
    *name_len = (size_t)(p + i - *name);
    if (*name_len == 0 || (i < len && p[i] != ' ' && p[i] != '\t'))
        return "a name is 1-64 characters of A-Z a-z 0-9 _ . @ -, then blanks, then the "
               "token";
    if (*name_len > TOKEN_NAME_MAX)
        return "name longer than 64 characters";
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    *tok = p + i;
    while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    *tok_len = (size_t)(p + i - *tok);
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
        i++;
    if (*tok_len == 0)
        return "missing token after the name (lines are: name token)";
    if (i != len)
        return "unexpected text after the token (a token is printable characters "
               "without spaces)";
    if (*tok_len < TOKEN_MIN)
        return "token shorter than 16 characters";
    if (*tok_len > TOKEN_MAX)
        return "token longer than 1024 characters";
    return NULL;
}

dfd_tokens *dfd_tokens_parse(const char *text, size_t len, char *why, size_t whylen)
{
    dfd_tokens *t = calloc(1, sizeof(*t));
    size_t cap = 0, line = 0, at = 0;

    if (t == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    while (at < len) {
        const char *p = text + at, *nl = memchr(p, '\n', len - at);
        size_t n = nl != NULL ? (size_t)(nl - p) : len - at;
        const char *name = NULL, *tok = NULL, *bad;
        size_t name_len, tok_len;

        at += n + (nl != NULL);
        line++;
        if (memchr(p, '\0', n) != NULL)
            bad = "a NUL byte in the line";
        else
            bad = token_line(p, n, &name, &name_len, &tok, &tok_len);
        if (bad == NULL && name_len == 0)
            continue;
        token_entry e;
        if (bad == NULL) {
            memcpy(e.name, name, name_len);
            e.name[name_len] = '\0';
            SHA256((const unsigned char *)tok, tok_len, e.digest);
            for (size_t i = 0; i < t->n && bad == NULL; i++) {
                if (strcmp(t->v[i].name, e.name) == 0)
                    bad = "this name has a token already";
                else if (memcmp(t->v[i].digest, e.digest, sizeof(e.digest)) == 0)
                    bad = "this token is another name's already";
            }
        }
        if (bad == NULL && t->n == cap) {
            token_entry *g = realloc(t->v, (cap = cap ? cap * 2 : 8) * sizeof(*g));
            if (g == NULL)
                bad = "out of memory";
            else
                t->v = g;
        }
        if (bad != NULL) {
            snprintf(why, whylen, "line %zu: %s", line, bad);
            OPENSSL_cleanse(&e, sizeof(e));
            dfd_tokens_free(t);
            return NULL;
        }
        t->v[t->n++] = e;
    }
    return t;
}

dfd_tokens *dfd_tokens_load(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL, r[300];
    size_t len = 0;

    if (f == NULL) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(TOKENS_FILE_MAX + 1);
    if (buf != NULL)
        len = fread(buf, 1, TOKENS_FILE_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    if (buf == NULL || err || len > TOKENS_FILE_MAX) {
        snprintf(why, whylen, "%s: %s", path, buf == NULL ? "out of memory"
                 : err ? "read error" : "larger than 1M");
        free(buf);
        return NULL;
    }
    dfd_tokens *t = dfd_tokens_parse(buf, len, r, sizeof(r));
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (t == NULL)
        snprintf(why, whylen, "%s: %s", path, r);
    return t;
}

void dfd_tokens_free(dfd_tokens *t)
{
    if (t == NULL)
        return;
    if (t->v != NULL)
        OPENSSL_cleanse(t->v, t->n * sizeof(*t->v));
    free(t->v);
    free(t);
}

size_t dfd_tokens_count(const dfd_tokens *t)
{
    return t != NULL ? t->n : 0;
}

const char *dfd_tokens_match(const dfd_tokens *t, const char *tok, size_t len)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    const char *found = NULL;

    if (t == NULL)
        return NULL;
    /* the digest makes every comparison the same length; every entry is compared, the
     * match chosen without a branch on the bytes */
    SHA256((const unsigned char *)tok, len, d);
    for (size_t i = 0; i < t->n; i++) {
        int same = CRYPTO_memcmp(d, t->v[i].digest, sizeof(d)) == 0;
        uintptr_t mask = (uintptr_t)0 - (uintptr_t)same;
        found = (const char *)(((uintptr_t)t->v[i].name & mask) |
                               ((uintptr_t)found & ~mask));
    }
    OPENSSL_cleanse(d, sizeof(d));
    return found;
}
