/*
 * client_result.c - the outcome of a client call: results and errors, their memory,
 * turning a response message into one of them, and typed readers of result values.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* Initial chunk of the zone a reply is decoded into: enough for the objects of a
 * typical reply in one allocation; msgpack-c grows it for larger ones. */
#define REPLY_ZONE_CHUNK 2048

/* Frees what r owns and zeroes it. Accepts NULL and zeroed results. */
void daffi_result_free(daffi_result *r)
{
    if (r == NULL)
        return;
    if (r->zone != NULL)
        msgpack_zone_free(r->zone);
    free(r->bytes);
    memset(r, 0, sizeof(*r));
}

/* Frees what e owns and resets it to DAFFI_ERROR_INIT. Accepts NULL. */
void daffi_error_clear(daffi_error *e)
{
    if (e == NULL)
        return;
    free(e->message);
    if (e->zone != NULL)
        msgpack_zone_free(e->zone);
    free(e->bytes);
    memset(e, 0, sizeof(*e));
    e->details.type = MSGPACK_OBJECT_NIL;
}

/* Releases what e held and sets a locally raised error with a formatted message
 * (owned by e). When memory for the message runs out, code and name are still set
 * and message stays NULL. */
void daffi__err_set(daffi_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;

    if (e == NULL)
        return;
    daffi_error_clear(e);
    e->code = code;
    e->name = daffi_error_name(code);
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) == -1)
        msg = NULL;
    va_end(ap);
    e->message = msg;
}

/* Returns the offset of the result element inside a response envelope
 * [1, msgid, error, result] of size bytes (already validated by the scanner), or 0
 * when it cannot be located (not a response envelope). */
static size_t response_result_offset(const char *msg, size_t size)
{
    size_t off, n;
    int i;

    if (size == 0)
        return 0;
    switch ((unsigned char)msg[0]) {
    case 0x94: off = 1; break; /* fixarray of 4 */
    case 0xdc: off = 3; break; /* array 16 */
    case 0xdd: off = 5; break; /* array 32 */
    default: return 0;
    }
    /* skip kind, msgid and error: what follows is the result */
    for (i = 0; i < 3; i++) {
        if (off >= size)
            return 0;
        n = daffi_object_size(msg + off, size - off);
        if (n == 0)
            return 0;
        off += n;
    }
    return off < size ? off : 0;
}

/* Takes the peer's error array of a decoded response into err, which then owns the
 * reply bytes and zone (moved from *bytes / *zone, which are set to NULL when taken).
 * Returns -1 always (the call failed); a malformed error array gives PROTOCOL. */
static int reply_error_take(const msgpack_object *error, const char *method,
                            char **bytes, msgpack_zone **zone, daffi_error *err)
{
    int code;
    const char *text;
    size_t text_len;
    const msgpack_object *details;

    if (daffi_error_parse(error, &code, &text, &text_len, &details) == -1) {
        daffi__err_set(err, DAFFI_E_PROTOCOL,
                       "reply to '%s': error is not [code:int, message:str(, details)]",
                       method);
        return -1;
    }
    if (code == DAFFI_OK) {
        daffi__err_set(err, DAFFI_E_PROTOCOL, "reply to '%s': error with code 0",
                       method);
        return -1;
    }
    if (err == NULL)
        return -1;
    daffi_error_clear(err);
    err->code = code;
    err->name = daffi_error_name(code);
    err->remote = 1;
    err->message = text != NULL ? strndup(text, text_len) : strdup("");
    if (details != NULL && details->type != MSGPACK_OBJECT_NIL) {
        /* details point into the reply bytes and the zone: the error keeps both */
        err->details = *details;
        err->bytes = *bytes;
        err->zone = *zone;
        *bytes = NULL;
        *zone = NULL;
    }
    return -1;
}

/* See client_int.h. */
int daffi__reply_take(const char *msg, size_t size, const char *method,
                      daffi_result *out, daffi_error *err)
{
    char *bytes;
    msgpack_zone *zone;
    daffi_msg m;
    size_t off;
    int rc;

    memset(out, 0, sizeof(*out));
    bytes = malloc(size);
    zone = msgpack_zone_new(REPLY_ZONE_CHUNK);
    if (bytes == NULL || zone == NULL) {
        free(bytes);
        if (zone != NULL)
            msgpack_zone_free(zone);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "reply to '%s': out of memory (%zu bytes)",
                       method, size);
        return -1;
    }
    /* the decoded objects point into the bytes: decode our own copy */
    memcpy(bytes, msg, size);
    if (daffi_msg_decode(bytes, size, zone, &m) == -1 || m.kind != DAFFI_MSG_RESPONSE) {
        daffi__err_set(err, DAFFI_E_PROTOCOL, "reply to '%s': undecodable response",
                       method);
        rc = -1;
    } else if (m.error != NULL && m.error->type != MSGPACK_OBJECT_NIL) {
        rc = reply_error_take(m.error, method, &bytes, &zone, err);
    } else {
        off = response_result_offset(bytes, size);
        out->obj = *m.result;
        out->raw = off != 0 ? bytes + off : NULL;
        out->raw_len = off != 0 ? size - off : 0;
        out->bytes = bytes;
        out->zone = zone;
        return 0;
    }
    free(bytes);
    if (zone != NULL)
        msgpack_zone_free(zone);
    return rc;
}

/* ---- typed readers -------------------------------------------------------------- */

/* Stores an integer object that fits int64 in *out. Returns 0, or -1. */
int daffi_obj_int(const msgpack_object *o, int64_t *out)
{
    if (o == NULL)
        return -1;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return 0;
    }
    return -1;
}

/* Stores a non-negative integer object in *out. Returns 0, or -1. */
int daffi_obj_uint(const msgpack_object *o, uint64_t *out)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *out = o->via.u64;
    return 0;
}

/* Stores a float64, float32 or integer object as a double in *out. Returns 0, or -1. */
int daffi_obj_double(const msgpack_object *o, double *out)
{
    if (o == NULL)
        return -1;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return 0;
    default: return -1;
    }
}

/* Stores a boolean object as 0/1 in *out. Returns 0, or -1. */
int daffi_obj_bool(const msgpack_object *o, int *out)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_BOOLEAN)
        return -1;
    *out = o->via.boolean ? 1 : 0;
    return 0;
}

/* Points *p and *len at a str object's bytes (not NUL-terminated). Returns 0, or -1. */
int daffi_obj_str(const msgpack_object *o, const char **p, size_t *len)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return -1;
    *p = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
}

/* Points *p and *len at a bin object's bytes. Returns 0, or -1. */
int daffi_obj_bin(const msgpack_object *o, const char **p, size_t *len)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_BIN)
        return -1;
    *p = o->via.bin.ptr;
    *len = o->via.bin.size;
    return 0;
}

/* Returns element i of array o, or NULL. The element belongs to o's owner. */
const msgpack_object *daffi_obj_at(const msgpack_object *o, size_t i)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || i >= o->via.array.size)
        return NULL;
    return &o->via.array.ptr[i];
}

/* Returns the value of the first entry of map o whose key is the str key, or NULL.
 * The value belongs to o's owner. */
const msgpack_object *daffi_obj_get(const msgpack_object *o, const char *key)
{
    size_t klen, i;
    const msgpack_object_kv *kv;

    if (o == NULL || key == NULL || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    klen = strlen(key);
    for (i = 0; i < o->via.map.size; i++) {
        kv = &o->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
            memcmp(kv->key.via.str.ptr, key, klen) == 0)
            return &kv->val;
    }
    return NULL;
}
