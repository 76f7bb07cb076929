/*
 * obj.c - typed readers of msgpack objects (daffi/rpc.h), shared by the client library,
 * the handler SDK's argument accessors and daffid's control methods.
 */
#include <string.h>

#include <daffi/rpc.h>

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
        const char *p;
        size_t len;
        kv = &o->via.map.ptr[i];
        if (daffi_obj_text(&kv->key, &p, &len) == 0 && len == klen && memcmp(p, key, klen) == 0)
            return &kv->val;
    }
    return NULL;
}

int daffi_obj_text(const msgpack_object *o, const char **p, size_t *len)
{
    if (o == NULL)
        return -1;
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr;
        *len = o->via.str.size;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *len = o->via.bin.size;
        return 0;
    }
    return -1;
}
