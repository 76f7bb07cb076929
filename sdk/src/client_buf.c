/*
 * client_buf.c - the buffers of a client connection, shared by the synchronous and
 * the asynchronous client: the output buffer requests are packed into, the read
 * buffer messages are scanned in, and appending one whole request or notification.
 *
 * Memory is bounded by max_message: the read buffer never holds more than one
 * partial message of at most max_message bytes plus one read's worth, and a message
 * over max_message is refused before anything of it is kept.
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define READ_BUF_INITIAL ((size_t)64 * 1024) /* first read buffer */
#define READ_MIN_ROOM ((size_t)16 * 1024)    /* grow when less is free after compaction */
#define BUF_KEEP_MAX ((size_t)1024 * 1024)   /* an empty buffer over this is shrunk */
#define OUT_BUF_INITIAL ((size_t)4096)

/* Moves the bytes still to be written to the front of b, reclaiming the written part. */
static void out_compact(daffi__outbuf *b)
{
    if (b->pos > 0) {
        memmove(b->p, b->p + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
    }
}

/* Frees the memory of an empty buffer (*p, *cap) when it grew over BUF_KEEP_MAX. */
static void buf_free_if_large(char **p, size_t *cap)
{
    if (*cap > BUF_KEEP_MAX) {
        free(*p);
        *p = NULL;
        *cap = 0;
    }
}

/* See client_int.h. Reclaims what was written before growing. */
int daffi__out_reserve(daffi__outbuf *b, size_t need)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= need)
        return 0;
    if (b->pos > 0) {
        out_compact(b);
        if (b->cap - b->len >= need)
            return 0;
    }
    cap = b->cap ? b->cap : OUT_BUF_INITIAL;
    while (cap - b->len < need)
        cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* See client_int.h. */
int daffi__out_write(void *data, const char *buf, size_t len)
{
    daffi__outbuf *b = data;

    if (len == 0)
        return 0; /* buf may be NULL for an empty body */
    if (daffi__out_reserve(b, len) == -1) {
        b->oom = 1;
        return -1;
    }
    memcpy(b->p + b->len, buf, len);
    b->len += len;
    return 0;
}

/* See client_int.h: one big request must not pin its memory for the life of the
 * connection. */
void daffi__out_shrink_if_idle(daffi__outbuf *b)
{
    if (b->pos == b->len) {
        b->pos = b->len = 0;
        buf_free_if_large(&b->p, &b->cap);
    }
}

/* See client_int.h. */
void daffi__bufs_reset(daffi_client *c)
{
    c->out.pos = c->out.len = 0;
    daffi__out_shrink_if_idle(&c->out);
    c->in.start = c->in.end = 0;
    daffi_scan_init(&c->in.scan);
    daffi__in_settle(&c->in);
}

/* See client_int.h. Moves the unconsumed bytes to the front, and grows the buffer
 * when less than READ_MIN_ROOM is free, up to what one message of max_message bytes
 * plus one read needs. */
int daffi__in_make_room(daffi_client *c)
{
    daffi__inbuf *b = &c->in;
    size_t used, cap, limit;
    char *p;

    if (b->start > 0 && (b->cap - b->end < READ_MIN_ROOM || b->start == b->end)) {
        used = b->end - b->start;
        memmove(b->p, b->p + b->start, used);
        b->start = 0;
        b->end = used;
    }
    if (b->p != NULL && b->cap - b->end >= READ_MIN_ROOM)
        return 0;
    limit = c->lim.max_message + READ_BUF_INITIAL;
    cap = b->cap ? b->cap * 2 : READ_BUF_INITIAL;
    if (cap > limit)
        cap = limit;
    if (cap <= b->cap)
        return b->cap > b->end ? 0 : -1; /* the scanner bounds the partial message */
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* See client_int.h. */
void daffi__in_settle(daffi__inbuf *b)
{
    if (b->start == b->end) {
        b->start = b->end = 0;
        buf_free_if_large(&b->p, &b->cap);
    }
}

/* Reads the element count of the msgpack array header at params (len bytes, already
 * known to hold one whole object) into *n. Returns 0, or -1 when it is no array. */
static int raw_array_count(const char *params, size_t len, uint32_t *n)
{
    unsigned char b = (unsigned char)params[0];

    if ((b & 0xf0) == 0x90) {
        *n = b & 0x0f;
    } else if (b == 0xdc && len >= 3) {
        *n = ((uint32_t)(unsigned char)params[1] << 8) | (unsigned char)params[2];
    } else if (b == 0xdd && len >= 5) {
        *n = ((uint32_t)(unsigned char)params[1] << 24) |
             ((uint32_t)(unsigned char)params[2] << 16) |
             ((uint32_t)(unsigned char)params[3] << 8) | (unsigned char)params[4];
    } else {
        return -1;
    }
    return 0;
}

/* See client_int.h. */
int daffi__raw_params_check(const char *params, size_t len, daffi_error *err)
{
    uint32_t n;

    if (params == NULL || len == 0 || daffi_object_size(params, len) != len) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: not exactly one encoded msgpack object");
        return -1;
    }
    if (raw_array_count(params, len, &n) == -1) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: not a msgpack array");
        return -1;
    }
    return 0;
}

/* See client_int.h. */
int daffi__deadline_to_send(const daffi_client *c, const char *method, int timeout_ms)
{
    if (timeout_ms <= 0 || c->local_timeouts || strncmp(method, "daffi.", 6) == 0)
        return 0;
    return timeout_ms;
}

/* See client_int.h. */
void daffi__put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

/* See client_int.h. */
int daffi__check_to(const char *method, const char *to, daffi_error *err)
{
    if (to != NULL && method != NULL && strncmp(method, "daffi.", 6) == 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "'%s': a daffi.* method cannot be sent to a "
                       "member (to '%s')", method, to);
        return -1;
    }
    if (to != NULL && to[0] == '\0') {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "'%s': empty member name (to)", method);
        return -1;
    }
    return 0;
}

/* Packs the params of m: its raw array, or an array of its object's elements (n of
 * them). Returns 0, or -1 when memory ran out. */
static int pack_params(daffi_client *c, const daffi__outmsg *m, uint32_t n)
{
    uint32_t i;

    if (m->raw != NULL)
        return daffi__out_write(&c->out, m->raw, m->raw_len);
    if (msgpack_pack_array(&c->pk, n) != 0)
        return -1;
    for (i = 0; i < n; i++)
        if (msgpack_pack_object(&c->pk, m->params->via.array.ptr[i]) != 0)
            return -1;
    return 0;
}

/* Packs the envelope of the daffi.call wrapping m and its params [method, params,
 * {"to": to, "timeout_ms": ms}], the timeout as a uint32 whose offset from mark goes
 * to *deadline_at. Returns 0, or -1 when memory ran out. */
static int pack_wrapped(daffi_client *c, const daffi__outmsg *m, uint32_t n, size_t mark,
                        size_t *deadline_at)
{
    msgpack_packer *pk = &c->pk;
    int rc;

    rc = m->is_notify ? daffi_pack_notify(pk, "daffi.call", 10, 3)
                      : daffi_pack_request(pk, m->msgid, "daffi.call", 10, 3);
    rc = rc || daffi_pack_cstr(pk, m->method) || pack_params(c, m, n) ||
         msgpack_pack_map(pk, (m->to != NULL) + (m->deadline_ms > 0)) != 0;
    if (rc == 0 && m->to != NULL)
        rc = daffi_pack_cstr(pk, "to") || daffi_pack_cstr(pk, m->to);
    if (rc == 0 && m->deadline_ms > 0) {
        rc = daffi_pack_cstr(pk, "timeout_ms") || daffi__out_reserve(&c->out, 5);
        if (rc == 0) {
            /* always 5 bytes: a call queued for a connection refreshes it in place */
            c->out.p[c->out.len] = (char)0xce;
            daffi__put_u32(c->out.p + c->out.len + 1, (uint32_t)m->deadline_ms);
            if (deadline_at != NULL)
                *deadline_at = c->out.len + 1 - mark;
            c->out.len += 5;
        }
    }
    return rc ? -1 : 0;
}

/* See client_int.h. */
int daffi__append(daffi_client *c, const daffi__outmsg *m, size_t *deadline_at,
                  daffi_error *err)
{
    size_t mark, size, mlen = strlen(m->method);
    uint32_t n = 0;
    int rc;

    if (deadline_at != NULL)
        *deadline_at = 0;
    /* reclaim the written part now: growing must not move the bytes under mark */
    out_compact(&c->out);
    mark = c->out.len;
    if (m->raw != NULL) {
        if (daffi__raw_params_check(m->raw, m->raw_len, err) == -1)
            return -1;
    } else if (m->params != NULL) {
        if (m->params->type != MSGPACK_OBJECT_ARRAY) {
            daffi__err_set(err, DAFFI_E_BAD_ARGS, "params of '%s': not an array", m->method);
            return -1;
        }
        n = m->params->via.array.size;
    }
    c->out.oom = 0;
    if (m->to != NULL || m->deadline_ms > 0) {
        rc = pack_wrapped(c, m, n, mark, deadline_at);
    } else {
        /* the envelope with an empty params array; then that one byte (0x90, the last
         * written) is replaced by the params */
        rc = m->is_notify ? daffi_pack_notify(&c->pk, m->method, mlen, 0)
                          : daffi_pack_request(&c->pk, m->msgid, m->method, mlen, 0);
        if (rc == 0 && (c->out.len == mark || (unsigned char)c->out.p[c->out.len - 1] != 0x90))
            rc = -1;
        if (rc == 0) {
            c->out.len--;
            rc = pack_params(c, m, n);
        }
    }
    size = c->out.len - mark;
    if (rc != 0 || size > c->lim.max_message) {
        c->out.len = mark; /* drop the partial message: nothing of it was written */
        if (rc != 0)
            daffi__err_set(err, DAFFI_E_UNAVAILABLE, "'%s': out of memory", m->method);
        else
            daffi__err_set(err, DAFFI_E_TOO_LARGE,
                           "'%s': message of %zu bytes exceeds max_message (%zu bytes)",
                           m->method, size, c->lim.max_message);
        return -1;
    }
    return 0;
}
