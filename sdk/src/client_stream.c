/*
 * client_stream.c - streams sent by a synchronous client (sdk/PROTOCOL.md section 8):
 * daffi.stream opens one and grants a window of chunks, daffi.chunk notifications
 * carry the chunks in order, daffi.credit notifications from the receiver return
 * credit, daffi.end asks for the one result, daffi.abort gives up (either side).
 *
 * The credit and abort notifications arrive while the client pumps its connection for
 * anything (client_sync.c hands them to daffi__stream_note()); a send that finds no
 * credit pumps until some comes (daffi__sync_wait_credit()).
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* See client_int.h. */
void daffi__stream_unlink(daffi_stream *s)
{
    if (s->c == NULL)
        return;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        s->c->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* Reads a non-negative integer that fits 32 bits. Returns 0, or -1. */
static int obj_u32(const msgpack_object *o, uint32_t *out)
{
    uint64_t v;

    if (daffi_obj_uint(o, &v) == -1 || v > 0xffffffffu)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* See client_int.h. */
void daffi__stream_id_params(char p[6], uint32_t id)
{
    p[0] = (char)0x91; /* [id], the id always as a uint32 */
    p[1] = (char)0xce;
    p[2] = (char)(id >> 24);
    p[3] = (char)(id >> 16);
    p[4] = (char)(id >> 8);
    p[5] = (char)id;
}

/* See client_int.h. */
daffi_stream *daffi__stream_opened(daffi_client *c, const msgpack_object *answer, int async,
                                   daffi_error *err)
{
    daffi_stream *s;
    uint32_t id, granted;

    if (obj_u32(daffi_obj_get(answer, "stream"), &id) == -1 ||
        obj_u32(daffi_obj_get(answer, "window"), &granted) == -1 || granted == 0) {
        daffi__err_set(err, DAFFI_E_PROTOCOL, "%s: daffi.stream answered something else than "
                       "{\"stream\": id, \"window\": n > 0}", c->address);
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        /* the receiver holds a stream nobody will send on: release it there (best
         * effort, as daffi_stream_abort) */
        char params[6];

        daffi__stream_id_params(params, id);
        if (async)
            daffi__async_call_raw(c, 1, "daffi.abort", params, sizeof(params), 0, 0, NULL,
                                  NULL, NULL);
        else
            daffi_notify_raw(c, "daffi.abort", params, sizeof(params), 1000, NULL);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "%s: out of memory",
                       async ? "daffi_stream_open_async" : "daffi_stream_open");
        return NULL;
    }
    s->c = c;
    s->async = async;
    s->id = id;
    s->window = s->credit = granted;
    s->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = s;
    c->streams = s;
    return s;
}

/* See client_int.h. */
int daffi__stream_pack_open(msgpack_sbuffer *sb, const char *callback, const msgpack_object *params,
                     const char *to, unsigned window, daffi_error *err)
{
    msgpack_packer pk;
    int rc = 0;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    rc |= msgpack_pack_array(&pk, 3);
    rc |= daffi_pack_cstr(&pk, callback);
    if (params != NULL)
        rc |= msgpack_pack_object(&pk, *params);
    else
        rc |= msgpack_pack_array(&pk, 0);
    rc |= msgpack_pack_map(&pk, (to != NULL) + (window > 0));
    if (to != NULL) {
        rc |= daffi_pack_cstr(&pk, "to");
        rc |= daffi_pack_cstr(&pk, to);
    }
    if (window > 0) {
        rc |= daffi_pack_cstr(&pk, "window");
        rc |= msgpack_pack_unsigned_int(&pk, window);
    }
    if (rc != 0) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "daffi.stream: out of memory");
        return -1;
    }
    return 0;
}

/* See client.h. */
daffi_stream *daffi_stream_open(daffi_client *c, const char *callback,
                                const msgpack_object *params, const char *to,
                                unsigned window, int timeout_ms, daffi_error *err)
{
    msgpack_sbuffer sb;
    daffi_result res;
    daffi_stream *s;
    int rc;

    if (c == NULL || callback == NULL || (params != NULL && params->type != MSGPACK_OBJECT_ARRAY)) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_open: %s",
                       c == NULL ? "client is NULL" : callback == NULL ? "callback is NULL"
                                                                      : "params is not an array");
        return NULL;
    }
    if (c->as != NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_open: streams are sent by a "
                       "synchronous client (daffi_connect)");
        return NULL;
    }
    msgpack_sbuffer_init(&sb);
    rc = daffi__stream_pack_open(&sb, callback, params, to, window, err);
    if (rc == 0)
        rc = daffi__sync_call_raw(c, "daffi.stream", sb.data, sb.size, timeout_ms, 0, &res, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc == -1)
        return NULL;
    s = daffi__stream_opened(c, &res.obj, 0, err);
    daffi_result_free(&res);
    if (s != NULL)
        daffi_error_clear(err);
    return s;
}

/* See client_int.h. */
int daffi__stream_usable(const daffi_stream *s, daffi_error *err)
{
    if (s->c == NULL) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "stream %u: client closed", s->id);
        return -1;
    }
    if (s->dead) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "stream %u: its connection to %s is gone (%s)",
                       s->id, s->c->address,
                       s->c->closed_why != NULL ? s->c->closed_why : "closed");
        return -1;
    }
    if (s->aborted) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "stream %u: aborted by the receiver", s->id);
        return -1;
    }
    return 0;
}

/* Sends one chunk whose encoded value is the n bytes at value (raw) or the object
 * chunk. */
static int stream_send(daffi_stream *s, const msgpack_object *chunk, const void *bin,
                       size_t len, int timeout_ms, daffi_error *err)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc = 0;

    if (s == NULL || timeout_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_send: %s",
                       s == NULL ? "stream is NULL" : "timeout must be >= 0 (0: forever)");
        return -1;
    }
    if (s->async) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "stream %u belongs to an asynchronous client: "
                       "use daffi_stream_send_async", s->id);
        return -1;
    }
    if (daffi__stream_usable(s, err) == -1)
        return -1;
    if (s->credit == 0 &&
        (daffi__sync_wait_credit(s->c, s, timeout_ms, err) == -1 ||
         daffi__stream_usable(s, err) == -1))
        return -1;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc |= msgpack_pack_array(&pk, 2);
    rc |= msgpack_pack_uint32(&pk, s->id);
    if (chunk != NULL) {
        rc |= msgpack_pack_object(&pk, *chunk);
    } else {
        rc |= msgpack_pack_bin(&pk, len);
        rc |= msgpack_pack_bin_body(&pk, bin, len);
    }
    if (rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "stream %u: out of memory", s->id);
        return -1;
    }
    rc = daffi_notify_raw(s->c, "daffi.chunk", sb.data, sb.size, timeout_ms, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc == -1 && err != NULL && err->code == DAFFI_E_TIMEOUT)
        rc = 0; /* it is queued and goes out with the next write: it was sent, late */
    if (rc == 0) {
        s->credit--;
        s->chunks++;
        daffi_error_clear(err);
    }
    return rc;
}

/* See client.h. */
int daffi_stream_send(daffi_stream *s, const msgpack_object *chunk, int timeout_ms,
                      daffi_error *err)
{
    if (chunk == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_send: chunk is NULL");
        return -1;
    }
    return stream_send(s, chunk, NULL, 0, timeout_ms, err);
}

/* See client.h. */
int daffi_stream_send_bin(daffi_stream *s, const void *p, size_t len, int timeout_ms,
                          daffi_error *err)
{
    if (p == NULL && len > 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_send_bin: data is NULL");
        return -1;
    }
    return stream_send(s, NULL, p, len, timeout_ms, err);
}

/* Ends s with daffi.end as a request (out/err get the result) or a notification
 * (nowait), then frees s. */
static int stream_end(daffi_stream *s, int nowait, int timeout_ms, daffi_result *out,
                      daffi_error *err)
{
    char params[6];
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (s == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_stream_end: stream is NULL");
        return -1;
    }
    if (s->async) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "stream %u belongs to an asynchronous client: "
                       "use daffi_stream_end%s_async", s->id, nowait ? "_nowait" : "");
        return -1;
    }
    rc = daffi__stream_usable(s, err);
    if (rc == 0) {
        daffi__stream_id_params(params, s->id);
        rc = nowait ? daffi_notify_raw(s->c, "daffi.end", params, sizeof(params), timeout_ms,
                                       err)
                    : daffi__sync_call_raw(s->c, "daffi.end", params, sizeof(params),
                                           timeout_ms, 0, out, err);
    } else if (s->aborted && !s->dead && s->c != NULL) {
        daffi_stream_abort(s); /* releases the id there, then frees s */
        return rc;
    }
    daffi__stream_unlink(s);
    free(s);
    return rc;
}

/* See client.h. */
int daffi_stream_end(daffi_stream *s, int timeout_ms, daffi_result *out, daffi_error *err)
{
    return stream_end(s, 0, timeout_ms, out, err);
}

/* See client.h. */
int daffi_stream_end_nowait(daffi_stream *s, int timeout_ms, daffi_error *err)
{
    return stream_end(s, 1, timeout_ms, NULL, err);
}

/* See client.h. Best effort: an abort that cannot be written is moot (the connection
 * is failing, and its close aborts the stream on the receiver's side). */
void daffi_stream_abort(daffi_stream *s)
{
    char params[6];

    if (s == NULL)
        return;
    if (s->async) {
        daffi__astream_abort(s);
        return;
    }
    /* an aborted stream's id is released on the other side only by the sender's end or
     * abort (a router keeps it to answer a later end UNAVAILABLE) */
    if (daffi__stream_usable(s, NULL) == 0 || (s->aborted && !s->dead && s->c != NULL)) {
        daffi__stream_id_params(params, s->id);
        daffi_notify_raw(s->c, "daffi.abort", params, sizeof(params), 1000, NULL);
    }
    daffi__stream_unlink(s);
    free(s);
}

/* See client.h: the getters read s (not NULL), owned by the caller. */
uint32_t daffi_stream_id(const daffi_stream *s)
{
    return s->id;
}

unsigned daffi_stream_window(const daffi_stream *s)
{
    return s->window;
}

uint64_t daffi_stream_chunks(const daffi_stream *s)
{
    return s->chunks;
}

/* See client_int.h. */
daffi_stream *daffi__stream_note(daffi_client *c, const char *msg, size_t size)
{
    msgpack_zone zone;
    daffi_msg m;
    daffi_stream *s, *hit = NULL;
    uint32_t id, k = 0;
    int is_credit;

    msgpack_zone_init(&zone, 256);
    if (daffi_msg_decode(msg, size, &zone, &m) == -1 || m.kind != DAFFI_MSG_NOTIFY)
        goto out;
    is_credit = m.method_len == 12 && memcmp(m.method, "daffi.credit", 12) == 0;
    if (!is_credit && !(m.method_len == 11 && memcmp(m.method, "daffi.abort", 11) == 0))
        goto out;
    if (obj_u32(daffi_obj_at(m.params, 0), &id) == -1 ||
        (is_credit && obj_u32(daffi_obj_at(m.params, 1), &k) == -1))
        goto out;
    for (s = c->streams; s != NULL; s = s->next) {
        if (s->id != id || s->dead)
            continue;
        if (is_credit)
            s->credit = s->credit + k < s->credit ? 0xffffffffu : s->credit + k;
        else
            s->aborted = 1;
        hit = s;
        break;
    }
out:
    msgpack_zone_destroy(&zone);
    return hit;
}

/* See client_int.h. */
void daffi__streams_lost(daffi_client *c, int closing)
{
    daffi_stream *s, *next;

    for (s = c->streams; s != NULL; s = next) {
        next = s->next;
        s->dead = 1;
        if (closing) {
            s->c = NULL;
            s->next = s->prev = NULL;
        }
    }
    if (closing)
        c->streams = NULL;
}
