/*
 * client_common.c - what both kinds of client share besides their buffers: creating
 * the struct from an address and options, the reason a connection is down, the
 * reconnect schedule (exponential backoff with jitter), the clock, closing a client
 * and the getters both kinds answer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"

/* See client_int.h. */
int64_t daffi__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Checks the options that have a range. Returns 0, or -1 with err set naming the
 * option. */
static int opts_check(const daffi_client_opts *o, daffi_error *err)
{
    if (o->reconnect_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "reconnect_ms %d: must be >= 0 (0: off)",
                       o->reconnect_ms);
        return -1;
    }
    if (o->reconnect_max_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS,
                       "reconnect_max_ms %d: must be >= 0 (0: the default, %d)",
                       o->reconnect_max_ms, DAFFI_DEFAULT_RECONNECT_MAX_MS);
        return -1;
    }
    if (o->max_depth > DAFFI_SCAN_MAX_DEPTH - 3) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "max_depth %u: at most %u", o->max_depth,
                       DAFFI_SCAN_MAX_DEPTH - 3);
        return -1;
    }
    if (o->max_message != 0 && o->max_message < 16) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "max_message %zu: at least 16 bytes",
                       o->max_message);
        return -1;
    }
    return 0;
}

/* See client_int.h. */
daffi_client *daffi__client_alloc(const char *address, const daffi_client_opts *opts,
                                  daffi_error *err)
{
    static const daffi_client_opts defaults;
    const daffi_client_opts *o = opts != NULL ? opts : &defaults;
    daffi_client *c;
    daffi_addr *addrs = NULL;
    unsigned naddrs = 0;

    if (address == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "bad address '(null)': missing");
        return NULL;
    }
    if (daffi__addrs_parse(address, &addrs, &naddrs, err) == -1)
        return NULL;
    if (opts_check(o, err) == -1) {
        free(addrs);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->address = strdup(address)) == NULL) {
        free(c);
        free(addrs);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "cannot connect to %s: out of memory",
                       address);
        return NULL;
    }
    c->fd = -1;
    c->addrs = addrs; /* the client's from here */
    c->naddrs = naddrs;
    c->addr = addrs[0];
    c->lim.max_message = o->max_message != 0 ? o->max_message : DAFFI_DEFAULT_MAX_MESSAGE;
    c->lim.max_depth = o->max_depth != 0 ? o->max_depth : DAFFI_DEFAULT_MAX_DEPTH;
    c->connect_timeout_ms = o->connect_timeout_ms != 0 ? o->connect_timeout_ms
                                                       : DAFFI_DEFAULT_CONNECT_TIMEOUT_MS;
    c->next_msgid = 1;
    c->local_timeouts = o->local_timeouts != 0;
    daffi__backoff_init(&c->backoff, o->reconnect_ms,
                        o->reconnect_max_ms != 0 ? o->reconnect_max_ms
                                                 : DAFFI_DEFAULT_RECONNECT_MAX_MS);
    msgpack_packer_init(&c->pk, &c->out, daffi__out_write);
    daffi_scan_init(&c->in.scan);
    if (daffi__tls_setup(c, o, err) == -1) {
        daffi__client_free(c);
        return NULL;
    }
    return c;
}

/* See client_int.h. */
void daffi__client_free(daffi_client *c)
{
    daffi__tls_free(c);
    if (c->fd != -1)
        close(c->fd);
    free(c->out.p);
    free(c->in.p);
    free(c->closed_why);
    free(c->address);
    free(c->addrs);
    free(c);
}

/* See client_int.h. When memory runs out the old reason is dropped (NULL reads as
 * "closed"). */
void daffi__client_vset_why(daffi_client *c, const char *fmt, va_list ap)
{
    char *why = NULL;

    if (vasprintf(&why, fmt, ap) == -1)
        why = NULL;
    free(c->closed_why);
    c->closed_why = why;
}

/* See client_int.h. */
void daffi__client_set_why(daffi_client *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    daffi__client_vset_why(c, fmt, ap);
    va_end(ap);
}

/* Returns the next pseudo-random number of b's xorshift64 generator. */
static uint64_t backoff_rand(daffi__backoff *b)
{
    uint64_t x = b->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return x;
}

/* See client_int.h. */
void daffi__backoff_init(daffi__backoff *b, int min_ms, int max_ms)
{
    b->min_ms = min_ms;
    b->max_ms = max_ms < min_ms ? min_ms : max_ms;
    b->failures = 0;
    /* the jitter only needs to differ between clients started together */
    b->rng = (uint64_t)daffi__now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)b;
    if (b->rng == 0)
        b->rng = 0x9e3779b97f4a7c15ull;
}

/* See client_int.h. A server that restarts is often back at once, so the first
 * attempt does not wait; after that each failure doubles the wait, and the jitter
 * spreads the clients of one server that went down together. */
int daffi__backoff_next(daffi__backoff *b)
{
    int64_t d;
    int k;

    if (b->failures++ == 0)
        return 0;
    d = b->min_ms;
    for (k = 2; k < b->failures && d < b->max_ms; k++)
        d *= 2;
    if (d > b->max_ms)
        d = b->max_ms;
    d += (int64_t)(backoff_rand(b) % ((uint64_t)d / 4 + 1));
    return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

/* See client_int.h. */
void daffi__backoff_reset(daffi__backoff *b)
{
    b->failures = 0;
}

/* See client.h. */
void daffi_result_move(daffi_result *dst, daffi_result *src)
{
    if (dst == src)
        return;
    daffi_result_free(dst);
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

/* See client.h. */
void daffi_error_move(daffi_error *dst, daffi_error *src)
{
    if (dst == src)
        return;
    daffi_error_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof(*src));
    src->details.type = MSGPACK_OBJECT_NIL;
}

/* ---- what both kinds of client answer ---------------------------------------------- */

/* See client.h. */
void daffi_close(daffi_client *c)
{
    if (c == NULL)
        return;
    if (c->as != NULL) {
        daffi__async_close(c);
        return;
    }
    daffi__streams_lost(c, 1); /* the caller still owns them: they must not see c */
    daffi__client_free(c);
}

/* See client.h: both kinds of client. */
int daffi_client_connected(const daffi_client *c)
{
    return c != NULL && c->fd != -1 && (c->as == NULL || daffi__async_connected(c));
}

/* See client.h: the string is owned by c. */
const char *daffi_client_address(const daffi_client *c)
{
    return c->address;
}

/* See client.h. */
void daffi_client_stats_get(const daffi_client *c, daffi_client_stats *out)
{
    *out = c->stats;
}
