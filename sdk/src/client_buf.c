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
int daffi__append(daffi_client *c, int is_notify, uint32_t msgid, const char *method,
                  const msgpack_object *params, const char *raw, size_t raw_len,
                  daffi_error *err)
{
    size_t mark, size, mlen = strlen(method);
    uint32_t i, n = 0;
    int rc;

    /* reclaim the written part now: growing must not move the bytes under mark */
    out_compact(&c->out);
    mark = c->out.len;
    if (raw != NULL) {
        if (daffi__raw_params_check(raw, raw_len, err) == -1)
            return -1;
    } else if (params != NULL) {
        if (params->type != MSGPACK_OBJECT_ARRAY) {
            daffi__err_set(err, DAFFI_E_BAD_ARGS, "params of '%s': not an array", method);
            return -1;
        }
        n = params->via.array.size;
    }
    c->out.oom = 0;
    rc = is_notify ? daffi_pack_notify(&c->pk, method, mlen, raw != NULL ? 0 : n)
                   : daffi_pack_request(&c->pk, msgid, method, mlen, raw != NULL ? 0 : n);
    if (rc == 0 && raw != NULL) {
        /* the envelope was packed with an empty params array: replace that one byte
         * (0x90, the last written) with the caller's array */
        if (c->out.len == mark || (unsigned char)c->out.p[c->out.len - 1] != 0x90)
            rc = -1;
        else
            c->out.len--;
    }
    if (rc == 0 && raw != NULL)
        rc = daffi__out_write(&c->out, raw, raw_len);
    for (i = 0; rc == 0 && raw == NULL && i < n; i++)
        rc = msgpack_pack_object(&c->pk, params->via.array.ptr[i]);
    size = c->out.len - mark;
    if (rc != 0 || size > c->lim.max_message) {
        c->out.len = mark; /* drop the partial message: nothing of it was written */
        if (rc != 0)
            daffi__err_set(err, DAFFI_E_UNAVAILABLE, "'%s': out of memory", method);
        else
            daffi__err_set(err, DAFFI_E_TOO_LARGE,
                           "'%s': message of %zu bytes exceeds max_message (%zu bytes)",
                           method, size, c->lim.max_message);
        return -1;
    }
    return 0;
}
