/*
 * client_astream.c - streams sent by an asynchronous client (sdk/PROTOCOL.md section
 * 8) on the caller's loop: daffi.stream opens one (its answer creates the
 * daffi_stream), chunks are packed straight into the connection's output as long as
 * credit is left, daffi.credit / daffi.abort from the receiver are told to the
 * stream's ready callback, daffi.end is an ordinary asynchronous call.
 *
 * Nothing here waits. The window is the only queue: a send without credit fails at
 * once (OVERLOADED) instead of buffering, so a stream never holds more than `window`
 * chunks in the client's output or anywhere downstream. The ready callback is
 * edge-triggered: it runs when credit comes back to a stream whose window was used up
 * (blocked), and once when the stream is lost (the receiver aborted it, or the
 * connection dropped).
 *
 * The streams share the client's list with the synchronous kind (c->streams) and the
 * credit bookkeeping of client_stream.c (daffi__stream_note()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* The bookkeeping of one open call: what to tell when the answer comes. */
typedef struct astream_opening {
    daffi_stream_open_fn fn;
    void *arg;
} astream_opening;

/* The answer to daffi.stream: {"stream": id, "window": n} makes the stream (linked in
 * c's list before fn runs, so credit that follows finds it); anything else is the
 * open's failure. Frees the opening record arg. */
static void open_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    astream_opening op = *(astream_opening *)arg;
    daffi_error mine = DAFFI_ERROR_INIT;
    daffi_stream *s;

    free(arg);
    if (res == NULL) {
        op.fn(c, NULL, err, op.arg);
        return;
    }
    s = daffi__stream_opened(c, &res->obj, 1, &mine);
    if (s == NULL) {
        op.fn(c, NULL, &mine, op.arg);
        daffi_error_clear(&mine);
        return;
    }
    op.fn(c, s, NULL, op.arg);
}

/* See client.h. */
int daffi_stream_open_async(daffi_client *c, const char *callback,
                            const msgpack_object *params, const char *to, unsigned window,
                            int timeout_ms, daffi_stream_open_fn fn, void *arg,
                            daffi_error *err)
{
    astream_opening *op;
    msgpack_sbuffer sb;
    int rc;

    if (c == NULL || callback == NULL || fn == NULL ||
        (params != NULL && params->type != MSGPACK_OBJECT_ARRAY)) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_open_async: %s",
                       c == NULL ? "client is NULL" : callback == NULL ? "callback is NULL"
                       : fn == NULL ? "no completion callback" : "params is not an array");
        return -1;
    }
    if (c->as == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_open_async: needs an asynchronous "
                       "client (daffi_client_new); a synchronous one uses daffi_stream_open");
        return -1;
    }
    op = malloc(sizeof(*op));
    if (op == NULL) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "daffi_stream_open_async: out of memory");
        return -1;
    }
    op->fn = fn;
    op->arg = arg;
    msgpack_sbuffer_init(&sb);
    rc = daffi__stream_pack_open(&sb, callback, params, to, window, err);
    if (rc == 0)
        rc = daffi__async_call_raw(c, 0, "daffi.stream", sb.data, sb.size, timeout_ms, 0,
                                   open_reply, op, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc == -1)
        free(op);
    return rc;
}

/* See client.h. */
void daffi_stream_on_ready(daffi_stream *s, daffi_stream_ready_fn fn, void *arg)
{
    if (s == NULL || !s->async)
        return;
    s->ready = fn;
    s->ready_arg = fn != NULL ? arg : NULL;
}

/* See client.h: the getter reads s (not NULL), owned by the caller. */
unsigned daffi_stream_credit(const daffi_stream *s)
{
    return s->aborted || s->dead || s->c == NULL ? 0 : s->credit;
}

/* Checks that s is an asynchronous stream that can still carry messages. Returns 0,
 * or -1 with err set (BAD_ARGS for no or the wrong kind of stream, UNAVAILABLE for one
 * that cannot go on). */
static int astream_usable(const daffi_stream *s, const char *what, daffi_error *err)
{
    if (s == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "%s: stream is NULL", what);
        return -1;
    }
    if (!s->async) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "%s: stream %u belongs to a synchronous client",
                       what, s->id);
        return -1;
    }
    return daffi__stream_usable(s, err);
}

/* Appends [2, "daffi.chunk", [id, chunk]] to c's output: the value chunk, or a bin of
 * len bytes at bin. Nothing of a message over max_message is kept. Returns 0, or -1
 * with err set (TOO_LARGE, UNAVAILABLE when memory ran out). */
static int append_chunk(daffi_client *c, uint32_t id, const msgpack_object *chunk,
                        const void *bin, size_t len, daffi_error *err)
{
    size_t before = c->out.len - c->out.pos, size;
    int rc = 0;

    /* measured as pending bytes: growing the buffer may reclaim the written part and
     * move everything to the front */
    c->out.oom = 0;
    rc |= daffi_pack_notify(&c->pk, "daffi.chunk", 11, 2);
    rc |= msgpack_pack_uint32(&c->pk, id);
    if (chunk != NULL) {
        rc |= msgpack_pack_object(&c->pk, *chunk);
    } else {
        rc |= msgpack_pack_bin(&c->pk, len);
        rc |= msgpack_pack_bin_body(&c->pk, bin, len);
    }
    size = c->out.len - c->out.pos - before;
    if (rc != 0 || c->out.oom || size > c->lim.max_message) {
        c->out.len -= size; /* drop the partial message: nothing of it was written */
        if (rc != 0 || c->out.oom)
            daffi__err_set(err, DAFFI_E_UNAVAILABLE, "stream %u: out of memory", id);
        else
            daffi__err_set(err, DAFFI_E_TOO_LARGE, "stream %u: chunk message of %zu bytes "
                           "exceeds max_message (%zu bytes)", id, size, c->lim.max_message);
        return -1;
    }
    return 0;
}

/* Sends one chunk of s: the value chunk, or len bytes at bin. */
static int astream_send(daffi_stream *s, const msgpack_object *chunk, const void *bin,
                        size_t len, daffi_error *err)
{
    daffi_client *c;

    if (astream_usable(s, "daffi_stream_send_async", err) == -1)
        return -1;
    c = s->c;
    if (!daffi__async_connected(c)) {
        /* the drop is being handled: the stream is lost with it */
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "stream %u: not connected to %s", s->id,
                       c->address);
        return -1;
    }
    if (s->credit == 0) {
        s->blocked = 1;
        daffi__err_set(err, DAFFI_E_OVERLOADED, "stream %u: its window of %u chunks is used "
                       "up; send more when the ready callback says credit came back", s->id,
                       s->window);
        return -1;
    }
    if (append_chunk(c, s->id, chunk, bin, len, err) == -1)
        return -1;
    c->stats.notifications++;
    s->chunks++;
    if (--s->credit == 0)
        s->blocked = 1;
    daffi__as_output_added(c);
    daffi_error_clear(err);
    return 0;
}

/* See client.h. */
int daffi_stream_send_async(daffi_stream *s, const msgpack_object *chunk, daffi_error *err)
{
    if (chunk == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_send_async: chunk is NULL");
        return -1;
    }
    return astream_send(s, chunk, NULL, 0, err);
}

/* See client.h. */
int daffi_stream_send_bin_async(daffi_stream *s, const void *p, size_t len, daffi_error *err)
{
    if (p == NULL && len > 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_send_bin_async: data is NULL");
        return -1;
    }
    return astream_send(s, NULL, p, len, err);
}

/* Unlinks s from its client and frees it. */
static void astream_free(daffi_stream *s)
{
    daffi__stream_unlink(s);
    free(s);
}

/* Ends s with daffi.end as a request (fn gets the answer) or a notification (nowait),
 * then frees s. */
static int astream_end(daffi_stream *s, int nowait, int timeout_ms, daffi_reply_fn fn,
                       void *arg, daffi_error *err)
{
    const char *what = nowait ? "daffi_stream_end_nowait_async" : "daffi_stream_end_async";
    char params[6];
    int rc;

    if (s == NULL || !s->async) {
        astream_usable(s, what, err); /* BAD_ARGS; a stream of the other kind stays */
        return -1;
    }
    if (!nowait && fn == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "%s: no completion callback", what);
        return -1; /* a misuse: s stays, as for the other BAD_ARGS */
    }
    rc = astream_usable(s, what, err);
    if (rc == 0) {
        daffi__stream_id_params(params, s->id);
        rc = daffi__async_call_raw(s->c, nowait, "daffi.end", params, sizeof(params),
                                   nowait ? 0 : timeout_ms, 0, fn, arg, err);
    } else if (s->aborted && !s->dead && s->c != NULL && daffi__async_connected(s->c)) {
        /* the receiver gave up: its id is released there only by the sender's end or
         * abort (a router answers a later end UNAVAILABLE); abort needs no answer */
        daffi__stream_id_params(params, s->id);
        daffi__async_call_raw(s->c, 1, "daffi.abort", params, sizeof(params), 0, 0, NULL,
                              NULL, NULL);
    }
    astream_free(s);
    return rc;
}

/* See client.h. */
int daffi_stream_end_async(daffi_stream *s, int timeout_ms, daffi_reply_fn fn, void *arg,
                           daffi_error *err)
{
    return astream_end(s, 0, timeout_ms, fn, arg, err);
}

/* See client.h. */
int daffi_stream_end_nowait_async(daffi_stream *s, daffi_error *err)
{
    return astream_end(s, 1, 0, NULL, NULL, err);
}

/* See client_int.h. An abort that cannot be written is moot: the connection is
 * failing, and its close aborts the stream on the receiver's side. */
void daffi__astream_abort(daffi_stream *s)
{
    char params[6];

    if (s->c != NULL && !s->dead && daffi__async_connected(s->c)) {
        daffi__stream_id_params(params, s->id);
        daffi__async_call_raw(s->c, 1, "daffi.abort", params, sizeof(params), 0, 0, NULL,
                              NULL, NULL);
    }
    astream_free(s);
}

/* Tells s's ready callback (if any) that the stream cannot go on, once: why is
 * UNAVAILABLE, its message "stream ID: " + reason. */
static void tell_lost(daffi_stream *s, const char *reason)
{
    daffi_error why = DAFFI_ERROR_INIT;

    s->lost_pending = 0;
    if (s->told_lost)
        return;
    s->told_lost = 1;
    if (s->ready == NULL)
        return;
    daffi__err_set(&why, DAFFI_E_UNAVAILABLE, "stream %u: %s", s->id, reason);
    s->ready(s, &why, s->ready_arg);
    daffi_error_clear(&why);
}

/* See client_int.h. The callback may free s or close c: nothing is touched after it. */
int daffi__astream_note(daffi_client *c, const char *msg, size_t size)
{
    daffi_stream *s = daffi__stream_note(c, msg, size);

    if (s == NULL)
        return 0;
    if (s->aborted) {
        tell_lost(s, "aborted by the receiver");
        return 1;
    }
    if (s->blocked && s->credit > 0) {
        s->blocked = 0;
        if (s->ready != NULL)
            s->ready(s, NULL, s->ready_arg);
    }
    return 1;
}

/* See client_int.h. A callback may end or abort any stream (unlinking it) or close
 * the client (detaching them all): the list is walked again from its head after each
 * one, and the streams still to be told carry a mark. */
void daffi__astreams_lost(daffi_client *c)
{
    char reason[300];
    daffi_stream *s;

    for (s = c->streams; s != NULL; s = s->next)
        s->lost_pending = !s->told_lost;
    daffi__streams_lost(c, 0);
    snprintf(reason, sizeof(reason), "its connection to %s is gone (%s)", c->address,
             c->closed_why != NULL ? c->closed_why : "closed");
    for (;;) {
        if (c->as->closing)
            return;
        for (s = c->streams; s != NULL && !s->lost_pending; s = s->next)
            ;
        if (s == NULL)
            return;
        tell_lost(s, reason);
    }
}
