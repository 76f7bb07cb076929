/*
 * fuzz_stream.c - libFuzzer target for the client's side of streams (sdk/PROTOCOL.md
 * section 8): the receiver's answer to daffi.stream and its daffi.credit / daffi.abort
 * notifications, as sdk/src/client_stream.c (synchronous) and client_astream.c
 * (asynchronous) read them. `make fuzz FUZZ_FILTER=fuzz_stream` builds and runs it.
 *
 * Input layout: byte 0: the window asked (0: the receiver's default), byte 1: chunks to
 * send (1 + byte % 64), byte 2: chunk size in bytes, byte 3: max_message (64 + 8 *
 * byte); the rest is what the receiver sends, then it closes its side. Each input opens
 * one stream (msgid 1) with a synchronous client and with an asynchronous one, sends
 * the chunks as credit allows, and ends it.
 *
 * Properties checked (abort() on a violation), against an oracle that reads the same
 * bytes with the codec alone:
 *   - the stream opens exactly when the first response to msgid 1 (before a malformed
 *     message) is a success whose result is {"stream": uint32, "window": uint32 > 0},
 *     with that id and window;
 *   - never more chunks are sent than the window plus the credit the receiver returned
 *     for that id (backpressure holds whatever the receiver says), and the stream's
 *     credit never says more is allowed;
 *   - when no abort and no malformed message came, every chunk the credit allows is
 *     sent (min(chunks, window + credit), unless a chunk is over max_message: none);
 *   - a send refused for want of credit is OVERLOADED (asynchronous) and leaves the
 *     stream usable; after an abort for the stream, sends fail UNAVAILABLE;
 *   - the end returns, and nothing leaks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "fuzz_peer.h"

/* What the oracle read. */
typedef struct expect {
    int opens;             /* the open succeeds */
    uint32_t id, window;   /* its stream and window */
    uint64_t credit;       /* credit returned for id (saturated at 2^32-1 over window) */
    int aborted;           /* a daffi.abort for id came */
    int broken;            /* a malformed or oversize message came */
} expect;

/* Returns 1 with *v when o is a non-negative integer that fits 32 bits. */
static int u32_of(const msgpack_object *o, uint32_t *v)
{
    uint64_t x;

    if (daffi_obj_uint(o, &x) == -1 || x > 0xffffffffu)
        return 0;
    *v = (uint32_t)x;
    return 1;
}

/* Returns 1 when the decoded notification m names method. */
static int names(const daffi_msg *m, const char *method)
{
    return m->method_len == strlen(method) && memcmp(m->method, method, m->method_len) == 0;
}

/* Reads in as the receiver's messages. */
static void oracle(const char *in, size_t len, const daffi_limits *lim, expect *e)
{
    daffi_scan s;
    size_t off = 0;
    int answered = 0;

    memset(e, 0, sizeof(*e));
    for (;;) {
        daffi_scan_init(&s);
        daffi_scan_result r = daffi_scan_feed(&s, in + off, len - off, lim);
        msgpack_zone zone;
        daffi_msg m;
        uint32_t id, k;
        char *copy;

        if (r == DAFFI_SCAN_NEED_MORE)
            return;
        if (r != DAFFI_SCAN_COMPLETE) {
            e->broken = 1;
            return;
        }
        copy = malloc(s.size);
        if (copy == NULL)
            abort();
        memcpy(copy, in + off, s.size);
        msgpack_zone_init(&zone, 1024);
        if (daffi_msg_decode(copy, s.size, &zone, &m) == -1)
            abort();
        if (m.kind == DAFFI_MSG_RESPONSE && m.msgid == 1 && !answered) {
            answered = 1;
            e->opens = m.error->type == MSGPACK_OBJECT_NIL &&
                       u32_of(daffi_obj_get(m.result, "stream"), &e->id) &&
                       u32_of(daffi_obj_get(m.result, "window"), &e->window) && e->window > 0;
        } else if (m.kind == DAFFI_MSG_NOTIFY && e->opens &&
                   u32_of(daffi_obj_at(m.params, 0), &id) && id == e->id) {
            if (names(&m, "daffi.credit") && u32_of(daffi_obj_at(m.params, 1), &k))
                e->credit += k;
            else if (names(&m, "daffi.abort"))
                e->aborted = 1;
        }
        msgpack_zone_destroy(&zone);
        free(copy);
        off += s.size;
    }
}

/* The chunks that may ever be sent: the window plus the credit returned (the client's
 * own counter saturates at 2^32-1, which only lowers it). */
static uint64_t allowed(const expect *e)
{
    return (uint64_t)e->window + e->credit;
}

/* Aborts unless the open's outcome (s) is what e says. */
static void check_open(const expect *e, const daffi_stream *s)
{
    if ((s != NULL) != e->opens)
        abort();
    if (s != NULL && (daffi_stream_id(s) != e->id || daffi_stream_window(s) != e->window))
        abort();
}

/* Aborts unless sent chunks (chunk_fits: one fits max_message) agree with e. */
static void check_sent(const expect *e, uint64_t sent, unsigned want, int chunk_fits,
                       const daffi_stream *s)
{
    uint64_t limit = allowed(e), expected = limit < want ? limit : want;

    if (sent > limit || daffi_stream_chunks(s) != sent)
        abort();
    if ((uint64_t)daffi_stream_credit(s) + sent > limit)
        abort();
    if (!e->aborted && !e->broken && sent != (chunk_fits ? expected : 0))
        abort();
}

/* ---- the synchronous client ----------------------------------------------------- */

static void run_sync(const daffi_client_opts *opts, unsigned window, unsigned want,
                     const char *chunk, size_t chunk_len, const char *in, size_t len)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    daffi_stream *s;
    daffi_client *c;
    expect e;
    uint64_t sent = 0;
    int fd, fits = 1;

    c = peer_sync_client(opts, in, len, &fd);
    oracle(in, len, &c->lim, &e);
    s = daffi_stream_open(c, "cb", NULL, NULL, window, 0, &err);
    check_open(&e, s);
    if (s != NULL) {
        while (sent < want) {
            if (daffi_stream_send_bin(s, chunk, chunk_len, 0, &err) == -1) {
                if (err.code == DAFFI_E_TOO_LARGE)
                    fits = 0;
                /* no credit came before the end, the receiver aborted, or its bytes
                 * broke the connection */
                else if (err.code != DAFFI_E_UNAVAILABLE && err.code != DAFFI_E_PROTOCOL)
                    abort();
                break;
            }
            sent++;
        }
        check_sent(&e, sent, want, fits, s);
        /* frees s whatever happens; no reply can come any more (the receiver closed) */
        if (daffi_stream_end(s, 0, &res, &err) == 0)
            daffi_result_free(&res);
    }
    daffi_error_clear(&err);
    daffi_close(c);
    close(fd);
}

/* ---- the asynchronous client ----------------------------------------------------- */

typedef struct async_run {
    daffi_stream *s;
    int opened;             /* the open completed (either way) */
    unsigned want;
    uint64_t sent;
    int fits, lost;
    const char *chunk;
    size_t chunk_len;
} async_run;

/* Sends while the window allows, as a producer does. */
static void pump(async_run *r)
{
    daffi_error err = DAFFI_ERROR_INIT;

    while (r->sent < r->want && !r->lost) {
        unsigned credit = daffi_stream_credit(r->s);

        if (daffi_stream_send_bin_async(r->s, r->chunk, r->chunk_len, &err) == -1) {
            if (err.code == DAFFI_E_OVERLOADED && credit == 0)
                break; /* wait for the ready callback */
            if (err.code == DAFFI_E_TOO_LARGE && credit > 0)
                r->fits = 0;
            else if (err.code != DAFFI_E_UNAVAILABLE)
                abort(); /* OVERLOADED with credit left, or anything else */
            r->lost = 1;
            break;
        }
        if (credit == 0)
            abort(); /* a chunk past the window went out */
        r->sent++;
    }
    daffi_error_clear(&err);
}

static void ready(daffi_stream *s, const daffi_error *why, void *arg)
{
    async_run *r = arg;

    (void)s;
    if (why != NULL) {
        if (why->code != DAFFI_E_UNAVAILABLE)
            abort();
        r->lost = 1;
        return;
    }
    if (daffi_stream_credit(r->s) == 0)
        abort(); /* told of credit that is not there */
    pump(r);
}

static void opened(daffi_client *c, daffi_stream *s, daffi_error *err, void *arg)
{
    async_run *r = arg;

    (void)c;
    (void)err;
    r->opened = 1;
    r->s = s;
    if (s != NULL) {
        daffi_stream_on_ready(s, ready, r);
        pump(r);
    }
}

static void run_async(const daffi_client_opts *opts, unsigned window, unsigned want,
                      const char *chunk, size_t chunk_len, const char *in, size_t len)
{
    async_run r;
    daffi_client *c;
    expect e;
    int fd;

    memset(&r, 0, sizeof(r));
    r.want = want;
    r.fits = 1;
    r.chunk = chunk;
    r.chunk_len = chunk_len;
    c = peer_async_client(opts, &fd);
    if (daffi_stream_open_async(c, "cb", NULL, NULL, window, 0, opened, &r, NULL) == -1)
        abort();
    peer_serve_bytes(fd, in, len);
    oracle(in, len, &c->lim, &e);
    peer_run(c, &r.opened);
    check_open(&e, r.s);
    if (r.s != NULL) {
        check_sent(&e, r.sent, want, r.fits, r.s);
        daffi_stream_abort(r.s); /* the connection is gone: frees it */
    }
    daffi_close(c);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    daffi_client_opts opts;
    char chunk[256];

    if (size < 4)
        return 0;
    memset(&opts, 0, sizeof(opts));
    memset(chunk, 'c', sizeof(chunk));
    opts.max_message = 64 + (size_t)data[3] * 8;
    run_sync(&opts, data[0], 1 + data[1] % 64u, chunk, data[2], (const char *)data + 4,
             size - 4);
    run_async(&opts, data[0], 1 + data[1] % 64u, chunk, data[2], (const char *)data + 4,
              size - 4);
    return 0;
}
