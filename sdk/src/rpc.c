/*
 * rpc.c - the MessagePack-RPC codec: error names, the resumable scanner, the decoder
 * into msgpack_object trees, the envelope writers and the error-array reader.
 *
 * The contract is in sdk/include/daffi/rpc.h and the wire format in sdk/PROTOCOL.md.
 *
 * Why the decoder is ours too: msgpack-c's C unpacker (msgpack_unpack and the
 * streaming unpacker) has a fixed stack of 32 containers (MSGPACK_EMBED_STACK_SIZE),
 * while a request legitimately nests 34 deep (envelope, params, then 32 levels of a
 * user value). The decoder below builds the same msgpack_object trees msgpack-c
 * would, from the caller's zone, with the input bytes referenced, and never
 * allocates from a count that the remaining bytes cannot hold.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#include "rpc-int.h"

/* What the first byte of a msgpack object says it is. */
typedef enum mp_type {
    MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_F32, MP_F64,
    MP_STR, MP_BIN, MP_EXT, MP_ARRAY, MP_MAP
} mp_type;

/* One decoded object header. For scalars the header is the whole object. */
typedef struct mp_head {
    mp_type type;
    size_t hsize;     /* bytes of the header */
    uint64_t n;       /* STR/BIN/EXT: payload bytes; ARRAY/MAP: count (map: entries) */
    uint64_t u;       /* UINT (and any signed encoding of a value >= 0) */
    int64_t i;        /* INT: a negative value */
    double f;         /* F32/F64 */
    int8_t ext_type;  /* EXT */
    bool b;           /* BOOL */
} mp_head;

static const char *const error_names[] = {
    [DAFFI_E_NO_CALLBACK] = "NO_CALLBACK",
    [DAFFI_E_BAD_ARGS] = "BAD_ARGS",
    [DAFFI_E_TIMEOUT] = "TIMEOUT",
    [DAFFI_E_HANDLER_ERROR] = "HANDLER_ERROR",
    [DAFFI_E_UNAVAILABLE] = "UNAVAILABLE",
    [DAFFI_E_OVERLOADED] = "OVERLOADED",
    [DAFFI_E_TOO_LARGE] = "TOO_LARGE",
    [DAFFI_E_PROTOCOL] = "PROTOCOL",
    [DAFFI_E_DENIED] = "DENIED",
    [DAFFI_E_SHUTTING_DOWN] = "SHUTTING_DOWN",
};

/* Accepts any int. Returns the static name of a wire error code, "UNKNOWN" outside
 * 1..10. The caller does not free it. */
const char *daffi_error_name(int code)
{
    if (code < DAFFI_E_NO_CALLBACK || code > DAFFI_E_SHUTTING_DOWN)
        return "UNKNOWN";
    return error_names[code];
}

/* ---- object headers --------------------------------------------------------- */

/* Big-endian readers: accept p with 2, 4 or 8 readable bytes, return the value. */
static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Accepts the first byte of an object. Returns the size of its header (the whole
 * object for scalars), or 0 for the reserved byte 0xc1, which starts nothing. */
static size_t head_size(uint8_t b)
{
    static const uint8_t sizes[0x20] = {
        /* c0 nil */ 1, /* c1 */ 0, /* c2 c3 bool */ 1, 1,
        /* c4-c6 bin8/16/32 */ 2, 3, 5, /* c7-c9 ext8/16/32 */ 3, 4, 6,
        /* ca cb float */ 5, 9, /* cc-cf uint */ 2, 3, 5, 9, /* d0-d3 int */ 2, 3, 5, 9,
        /* d4-d8 fixext 1/2/4/8/16: type byte + data */ 3, 4, 6, 10, 18,
        /* d9-db str8/16/32 */ 2, 3, 5, /* dc dd array16/32 */ 3, 5,
        /* de df map16/32 */ 3, 5,
        /* e0-ff negative fixint: not reached */
    };

    if (b <= 0xbf || b >= 0xe0)
        return 1;
    return sizes[b - 0xc0];
}

/* Accepts p holding at least head_size(p[0]) (non-zero) bytes. Fills h. Signed
 * encodings of values >= 0 become MP_UINT, as msgpack-c does. */
static void head_parse(const uint8_t *p, mp_head *h)
{
    uint8_t b = p[0];
    int64_t sv = 0;
    uint32_t f32;
    uint64_t f64;
    float fl;
    double db;

    /* only what every type's readers look at: a type sets its own field below */
    h->n = 0;
    h->hsize = head_size(b);
    if (b <= 0x7f) {
        h->type = MP_UINT;
        h->u = b;
        return;
    }
    if (b >= 0xe0) {
        h->type = MP_INT;
        h->i = (int8_t)b;
        return;
    }
    if (b <= 0x8f) {
        h->type = MP_MAP;
        h->n = b & 0x0f;
        return;
    }
    if (b <= 0x9f) {
        h->type = MP_ARRAY;
        h->n = b & 0x0f;
        return;
    }
    if (b <= 0xbf) {
        h->type = MP_STR;
        h->n = b & 0x1f;
        return;
    }
    switch (b) {
    case 0xc0: h->type = MP_NIL; return;
    case 0xc2: h->type = MP_BOOL; h->b = false; return;
    case 0xc3: h->type = MP_BOOL; h->b = true; return;
    case 0xc4: h->type = MP_BIN; h->n = p[1]; return;
    case 0xc5: h->type = MP_BIN; h->n = be16(p + 1); return;
    case 0xc6: h->type = MP_BIN; h->n = be32(p + 1); return;
    case 0xc7: h->type = MP_EXT; h->n = p[1]; h->ext_type = (int8_t)p[2]; return;
    case 0xc8: h->type = MP_EXT; h->n = be16(p + 1); h->ext_type = (int8_t)p[3]; return;
    case 0xc9: h->type = MP_EXT; h->n = be32(p + 1); h->ext_type = (int8_t)p[5]; return;
    case 0xca:
        h->type = MP_F32;
        f32 = be32(p + 1);
        memcpy(&fl, &f32, sizeof(fl));
        h->f = fl;
        return;
    case 0xcb:
        h->type = MP_F64;
        f64 = be64(p + 1);
        memcpy(&db, &f64, sizeof(db));
        h->f = db;
        return;
    case 0xcc: h->type = MP_UINT; h->u = p[1]; return;
    case 0xcd: h->type = MP_UINT; h->u = be16(p + 1); return;
    case 0xce: h->type = MP_UINT; h->u = be32(p + 1); return;
    case 0xcf: h->type = MP_UINT; h->u = be64(p + 1); return;
    case 0xd0: sv = (int8_t)p[1]; break;
    case 0xd1: sv = (int16_t)be16(p + 1); break;
    case 0xd2: sv = (int32_t)be32(p + 1); break;
    case 0xd3: sv = (int64_t)be64(p + 1); break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        h->type = MP_EXT;
        h->n = h->hsize - 2;
        h->hsize = 2;   /* the data that follows is the payload */
        h->ext_type = (int8_t)p[1];
        return;
    case 0xd9: h->type = MP_STR; h->n = p[1]; return;
    case 0xda: h->type = MP_STR; h->n = be16(p + 1); return;
    case 0xdb: h->type = MP_STR; h->n = be32(p + 1); return;
    case 0xdc: h->type = MP_ARRAY; h->n = be16(p + 1); return;
    case 0xdd: h->type = MP_ARRAY; h->n = be32(p + 1); return;
    case 0xde: h->type = MP_MAP; h->n = be16(p + 1); return;
    case 0xdf: h->type = MP_MAP; h->n = be32(p + 1); return;
    default: return; /* 0xc1: head_size() already refused it */
    }
    /* the signed encodings, 0xd0-0xd3 */
    if (sv >= 0) {
        h->type = MP_UINT;
        h->u = (uint64_t)sv;
    } else {
        h->type = MP_INT;
        h->i = sv;
    }
}

/* ---- the scanner ------------------------------------------------------------- */

/* Accepts s. Resets it for a new message; nothing to release. */
void daffi_scan_init(daffi_scan *s)
{
    /* the per-depth arrays (390 bytes) are written as each container opens, before any
     * read: clearing them cost a tenth of a pipelined call's scanning (#17) */
    memset(s, 0, offsetof(daffi_scan, remain));
    s->kind = -1;
}

/* Records a fault. Leaves pos where the faulty element starts, so that feeding the
 * same bytes again reaches the same verdict. */
static daffi_scan_result scan_fail(daffi_scan *s, daffi_scan_result r, const char *why)
{
    s->error = why;
    return r;
}

/* One element (scalar, str/bin/ext with its payload, or a closed container) is
 * complete: count it off its container and close every container it fills. */
static void scan_element_done(daffi_scan *s)
{
    while (s->depth > 0) {
        if (--s->remain[s->depth - 1] > 0)
            return;
        s->depth--;
    }
}

/* Accepts the header h of the element that starts the envelope position
 * s->top_index (s->depth == 1). Returns NEED_MORE when it is acceptable there,
 * else the verdict with s->error set. Sets kind/msgid as they are read. */
/* 1 when the method at s->method_at (whole in p) wraps a callback's params. */
static int scan_method_wraps(const daffi_scan *s, const uint8_t *p)
{
    /* every wrapper starts "daffi." and is 10 or 12 bytes: most methods are told apart
     * by their length or first byte, without a compare */
    if ((s->method_len != 10 && s->method_len != 12) || p[s->method_at] != 'd')
        return 0;
    const char *m = (const char *)p + s->method_at;
    if (s->method_len == 12)
        return memcmp(m, "daffi.stream", 12) == 0;
    return memcmp(m, "daffi.call", 10) == 0 || memcmp(m, "daffi.cast", 10) == 0;
}

static daffi_scan_result scan_check_envelope(daffi_scan *s, const mp_head *h,
                                             const uint8_t *p)
{
    unsigned idx = s->top_index;
    int want;

    if (idx == 0) {
        if (h->type != MP_UINT && h->type != MP_INT)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "message kind is not an integer");
        if (h->type == MP_INT || h->u > DAFFI_MSG_NOTIFY)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "unknown message kind");
        /* remain[0] still holds the envelope's whole count here */
        want = h->u == DAFFI_MSG_NOTIFY ? 3 : 4;
        if (s->remain[0] != (uint32_t)want)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, want == 3
                             ? "notification is not an array of 3 elements"
                             : "request or response is not an array of 4 elements");
        s->kind = (int)h->u;
        return DAFFI_SCAN_NEED_MORE;
    }
    if (s->kind == DAFFI_MSG_NOTIFY) {
        if (idx == 1 && h->type != MP_STR && h->type != MP_BIN)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "method is not a str or bin");
        if (idx == 2 && h->type != MP_ARRAY)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "params is not an array");
        goto method;
    }
    if (idx == 1) {
        if (h->type != MP_UINT || h->u > UINT32_MAX)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "msgid is not a uint32");
        s->msgid = (uint32_t)h->u;
        s->have_msgid = 1;
        return DAFFI_SCAN_NEED_MORE;
    }
    if (s->kind == DAFFI_MSG_REQUEST) {
        if (idx == 2 && h->type != MP_STR && h->type != MP_BIN)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "method is not a str or bin");
        if (idx == 3 && h->type != MP_ARRAY)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "params is not an array");
        idx--; /* as a notification's: method 1, params 2 */
        goto method;
    }
    /* response: the error is nil or an array, the result anything */
    if (idx == 2 && h->type != MP_NIL && h->type != MP_ARRAY)
        return scan_fail(s, DAFFI_SCAN_PROTOCOL, "error is not nil or an array");
    return DAFFI_SCAN_NEED_MORE;
method:
    /* the method's bytes precede the params header, which is whole in p now */
    if (idx == 1) {
        s->method_at = s->pos + h->hsize;
        s->method_len = (size_t)h->n;
    } else if (idx == 2) {
        s->wrapped = scan_method_wraps(s, p);
    }
    return DAFFI_SCAN_NEED_MORE;
}

/* Accepts the header h of a container starting at s->pos, inside the envelope.
 * Returns NEED_MORE when it may open, else PROTOCOL with s->error set.
 * Depth counts from the user value: the envelope, and for requests and
 * notifications the params array, are not part of it. */
static daffi_scan_result scan_check_container(daffi_scan *s, const mp_head *h,
                                              size_t max_message, unsigned max_depth,
                                              uint64_t elems)
{
    unsigned base = s->kind == DAFFI_MSG_RESPONSE ? 1 : 2 + s->wrapped;
    unsigned level = s->depth + 1 > base ? s->depth + 1 - base : 0;

    /* each element takes at least one byte */
    if (elems > max_message - s->pos - h->hsize || elems > UINT32_MAX)
        return scan_fail(s, DAFFI_SCAN_PROTOCOL, h->type == MP_MAP
                         ? "map count cannot fit in max_message"
                         : "array count cannot fit in max_message");
    if (level > max_depth)
        return scan_fail(s, DAFFI_SCAN_PROTOCOL, "nesting deeper than max_depth");
    return DAFFI_SCAN_NEED_MORE;
}

/* See rpc.h. Walks elements from s->pos on; a header cut short is read again on the
 * next call (at most 9 bytes), a payload is stepped over without being read, so a
 * message costs O(its size) however it is split. */
daffi_scan_result daffi_scan_feed(daffi_scan *s, const char *buf, size_t len,
                                  const daffi_limits *lim)
{
    const uint8_t *p = (const uint8_t *)buf;
    size_t max_message = lim ? lim->max_message : DAFFI_DEFAULT_MAX_MESSAGE;
    unsigned max_depth = lim ? lim->max_depth : DAFFI_DEFAULT_MAX_DEPTH;
    daffi_scan_result r;
    mp_head h;
    uint64_t elems;
    size_t hs;

    if (max_depth > DAFFI_SCAN_MAX_DEPTH - 3)
        max_depth = DAFFI_SCAN_MAX_DEPTH - 3;

    for (;;) {
        if (s->pos > 0 && s->depth == 0) {
            /* the structure is closed; its last payload may still be arriving */
            if (len < s->pos)
                break;
            s->size = s->pos;
            return DAFFI_SCAN_COMPLETE;
        }
        /* invariant: s->pos <= max_message. Decided before looking at the byte, so
         * that the verdict never depends on how the bytes were split. */
        if (s->pos == max_message)
            return scan_fail(s, DAFFI_SCAN_TOO_LARGE, "message exceeds max_message");
        if (s->pos >= len)
            break;
        hs = head_size(p[s->pos]);
        if (hs == 0)
            return scan_fail(s, DAFFI_SCAN_PROTOCOL, "reserved byte 0xc1");
        if (hs > max_message - s->pos)
            return scan_fail(s, DAFFI_SCAN_TOO_LARGE, "message exceeds max_message");
        if (hs > len - s->pos)
            break;
        head_parse(p + s->pos, &h);
        elems = 0;

        if (s->depth == 0) {
            if (h.type != MP_ARRAY)
                return scan_fail(s, DAFFI_SCAN_PROTOCOL, "message is not an array");
            if (h.n != 3 && h.n != 4)
                return scan_fail(s, DAFFI_SCAN_PROTOCOL,
                                 "envelope is not an array of 3 or 4 elements");
            s->pos += h.hsize;
            s->remain[0] = (uint32_t)h.n;
            s->is_map[0] = 0;
            s->depth = 1;
            continue;
        }
        if (s->depth == 1) {
            r = scan_check_envelope(s, &h, p);
            if (r != DAFFI_SCAN_NEED_MORE)
                return r;
        }

        switch (h.type) {
        case MP_STR:
        case MP_BIN:
        case MP_EXT:
            if (h.n > max_message - s->pos - h.hsize)
                return scan_fail(s, DAFFI_SCAN_TOO_LARGE,
                                 h.type == MP_STR ? "str length past max_message"
                                 : h.type == MP_BIN ? "bin length past max_message"
                                 : "ext length past max_message");
            s->pos += h.hsize + (size_t)h.n;
            break;
        case MP_ARRAY:
        case MP_MAP:
            elems = h.type == MP_MAP ? h.n * 2 : h.n;
            r = scan_check_container(s, &h, max_message, max_depth, elems);
            if (r != DAFFI_SCAN_NEED_MORE)
                return r;
            s->pos += h.hsize;
            break;
        default:
            s->pos += h.hsize;
            break;
        }

        /* committed: the element is accepted */
        if (s->depth == 1)
            s->top_index++;
        if ((h.type == MP_ARRAY || h.type == MP_MAP) && elems > 0) {
            s->remain[s->depth] = (uint32_t)elems;
            s->is_map[s->depth] = h.type == MP_MAP;
            s->depth++;
        } else {
            scan_element_done(s);
        }
    }

    /* Every way out of the loop above leaves len < max_message: the bytes run out
     * before pos, or inside a header or payload that ends within max_message. So
     * "len >= max_message without a whole message" was answered TOO_LARGE above. */
    return DAFFI_SCAN_NEED_MORE;
}

/* See rpc.h. Counts the elements still owed instead of keeping a stack, so it has
 * no depth limit; gives up as soon as the owed elements exceed the bytes left. */
size_t daffi_object_size(const char *buf, size_t len)
{
    const uint8_t *p = (const uint8_t *)buf;
    uint64_t owed = 1;
    size_t off = 0, hs;
    mp_head h;

    while (owed > 0) {
        if (owed > len - off)
            return 0;
        hs = head_size(p[off]);
        if (hs == 0 || hs > len - off)
            return 0;
        head_parse(p + off, &h);
        owed--;
        off += h.hsize;
        switch (h.type) {
        case MP_STR:
        case MP_BIN:
        case MP_EXT:
            if (h.n > len - off)
                return 0;
            off += (size_t)h.n;
            break;
        case MP_ARRAY:
            owed += h.n;
            break;
        case MP_MAP:
            owed += h.n * 2;
            break;
        default:
            break;
        }
    }
    return off;
}

/* ---- the decoder ------------------------------------------------------------- */

/* Accepts *pp pointing at an object that must end by end, the caller's zone, the
 * object to fill and the number of containers around it. Returns 0 and advances *pp
 * past the object, or -1 when the bytes are malformed, truncated, nested deeper than
 * DAFFI_SCAN_MAX_DEPTH or the zone is out of memory. Strings, bins and ext payloads
 * point into the input; arrays and maps come from zone. */
static int decode_value(const uint8_t **pp, const uint8_t *end, msgpack_zone *zone,
                        msgpack_object *o, unsigned depth)
{
    const uint8_t *p = *pp;
    size_t hs, left;
    mp_head h;
    uint32_t k;

    if (p >= end)
        return -1;
    hs = head_size(*p);
    if (hs == 0 || hs > (size_t)(end - p))
        return -1;
    head_parse(p, &h);
    p += h.hsize;
    left = (size_t)(end - p);

    switch (h.type) {
    case MP_NIL:
        o->type = MSGPACK_OBJECT_NIL;
        break;
    case MP_BOOL:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = h.b;
        break;
    case MP_UINT:
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = h.u;
        break;
    case MP_INT:
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = h.i;
        break;
    case MP_F32:
        o->type = MSGPACK_OBJECT_FLOAT32;
        o->via.f64 = h.f;
        break;
    case MP_F64:
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = h.f;
        break;
    case MP_STR:
    case MP_BIN:
    case MP_EXT:
        if (h.n > left)
            return -1;
        if (h.type == MP_STR) {
            o->type = MSGPACK_OBJECT_STR;
            o->via.str.size = (uint32_t)h.n;
            o->via.str.ptr = (const char *)p;
        } else if (h.type == MP_BIN) {
            o->type = MSGPACK_OBJECT_BIN;
            o->via.bin.size = (uint32_t)h.n;
            o->via.bin.ptr = (const char *)p;
        } else {
            o->type = MSGPACK_OBJECT_EXT;
            o->via.ext.type = h.ext_type;
            o->via.ext.size = (uint32_t)h.n;
            o->via.ext.ptr = (const char *)p;
        }
        p += h.n;
        break;
    case MP_ARRAY:
        /* checked before allocating: one byte per element at least */
        if (depth + 1 > DAFFI_SCAN_MAX_DEPTH || h.n > left ||
            h.n > SIZE_MAX / sizeof(msgpack_object))
            return -1;
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = (uint32_t)h.n;
        o->via.array.ptr = NULL;
        if (h.n == 0)
            break;
        o->via.array.ptr = msgpack_zone_malloc(zone, (size_t)h.n * sizeof(msgpack_object));
        if (o->via.array.ptr == NULL)
            return -1;
        for (k = 0; k < h.n; k++)
            if (decode_value(&p, end, zone, &o->via.array.ptr[k], depth + 1) == -1)
                return -1;
        break;
    case MP_MAP:
        /* two bytes per entry at least */
        if (depth + 1 > DAFFI_SCAN_MAX_DEPTH || h.n > left / 2 ||
            h.n > SIZE_MAX / sizeof(msgpack_object_kv))
            return -1;
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = (uint32_t)h.n;
        o->via.map.ptr = NULL;
        if (h.n == 0)
            break;
        o->via.map.ptr = msgpack_zone_malloc(zone, (size_t)h.n * sizeof(msgpack_object_kv));
        if (o->via.map.ptr == NULL)
            return -1;
        for (k = 0; k < h.n; k++) {
            if (decode_value(&p, end, zone, &o->via.map.ptr[k].key, depth + 1) == -1 ||
                decode_value(&p, end, zone, &o->via.map.ptr[k].val, depth + 1) == -1)
                return -1;
        }
        break;
    }
    *pp = p;
    return 0;
}

/* See rpc.h. Decodes the envelope element by element so that the params bytes are
 * located on the way; the same shape rules as the scanner apply. */
int daffi_msg_decode(const char *buf, size_t size, msgpack_zone *zone, daffi_msg *out)
{
    const uint8_t *p = (const uint8_t *)buf, *end = p + size, *start[4];
    msgpack_object *el;
    mp_head h;
    size_t hs;
    unsigned i;
    int method_at, params_at;

    memset(out, 0, sizeof(*out));
    if (size == 0)
        return -1;
    hs = head_size(*p);
    if (hs == 0 || hs > size)
        return -1;
    head_parse(p, &h);
    if (h.type != MP_ARRAY || (h.n != 3 && h.n != 4))
        return -1;
    p += h.hsize;
    el = msgpack_zone_malloc(zone, 4 * sizeof(*el));
    if (el == NULL)
        return -1;
    for (i = 0; i < h.n; i++) {
        start[i] = p;
        if (decode_value(&p, end, zone, &el[i], 1) == -1)
            return -1;
    }
    if (p != end)
        return -1;

    if (el[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || el[0].via.u64 > DAFFI_MSG_NOTIFY)
        return -1;
    out->kind = (daffi_msg_kind)el[0].via.u64;
    if (h.n != (out->kind == DAFFI_MSG_NOTIFY ? 3u : 4u))
        return -1;
    if (out->kind != DAFFI_MSG_NOTIFY) {
        if (el[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || el[1].via.u64 > UINT32_MAX)
            return -1;
        out->msgid = (uint32_t)el[1].via.u64;
    }
    if (out->kind == DAFFI_MSG_RESPONSE) {
        if (el[2].type != MSGPACK_OBJECT_NIL && el[2].type != MSGPACK_OBJECT_ARRAY)
            return -1;
        out->error = &el[2];
        out->result = &el[3];
        return 0;
    }
    method_at = out->kind == DAFFI_MSG_REQUEST ? 2 : 1;
    params_at = method_at + 1;
    if (el[method_at].type == MSGPACK_OBJECT_STR) {
        out->method = el[method_at].via.str.ptr;
        out->method_len = el[method_at].via.str.size;
    } else if (el[method_at].type == MSGPACK_OBJECT_BIN) {
        out->method = el[method_at].via.bin.ptr;
        out->method_len = el[method_at].via.bin.size;
    } else {
        return -1;
    }
    if (el[params_at].type != MSGPACK_OBJECT_ARRAY)
        return -1;
    out->params = &el[params_at];
    /* params is the last element, so its bytes run to the end of the message */
    out->params_raw = (const char *)start[params_at];
    out->params_raw_len = (size_t)(end - start[params_at]);
    return 0;
}

/* See rpc-int.h. The scanner read the envelope on its way: the method is the element
 * before the params, which run to the end of the message. */
int daffi__scan_envelope(const daffi_scan *s, const char *buf, daffi_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (s->size == 0 || s->depth != 0 ||
        (s->kind != DAFFI_MSG_REQUEST && s->kind != DAFFI_MSG_NOTIFY) ||
        s->method_at + s->method_len >= s->size)
        return -1;
    out->kind = (daffi_msg_kind)s->kind;
    out->msgid = s->kind == DAFFI_MSG_REQUEST ? s->msgid : 0;
    out->method = buf + s->method_at;
    out->method_len = s->method_len;
    out->params_raw = buf + s->method_at + s->method_len;
    out->params_raw_len = s->size - (s->method_at + s->method_len);
    return 0;
}

/* See rpc-int.h. */
int daffi__params_decode(const char *raw, size_t len, msgpack_zone *zone, msgpack_object *out)
{
    const uint8_t *p = (const uint8_t *)raw, *end = p + len;

    /* depth 1: as inside the envelope, where daffi_msg_decode() meets it */
    if (decode_value(&p, end, zone, out, 1) == -1 || p != end ||
        out->type != MSGPACK_OBJECT_ARRAY)
        return -1;
    return 0;
}

/* ---- the envelope writers ---------------------------------------------------- */

/* Accepts pk (the caller's packer). Packs the header of a request; the caller then
 * packs nparams objects. Returns 0, or -1 when the writer failed. */
int daffi_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method,
                       size_t method_len, uint32_t nparams)
{
    if (msgpack_pack_array(pk, 4) != 0 || msgpack_pack_uint8(pk, DAFFI_MSG_REQUEST) != 0 ||
        msgpack_pack_uint32(pk, msgid) != 0 || msgpack_pack_str(pk, method_len) != 0 ||
        msgpack_pack_str_body(pk, method, method_len) != 0 ||
        msgpack_pack_array(pk, nparams) != 0)
        return -1;
    return 0;
}

/* Like daffi_pack_request() for a notification (no msgid). */
int daffi_pack_notify(msgpack_packer *pk, const char *method, size_t method_len,
                      uint32_t nparams)
{
    if (msgpack_pack_array(pk, 3) != 0 || msgpack_pack_uint8(pk, DAFFI_MSG_NOTIFY) != 0 ||
        msgpack_pack_str(pk, method_len) != 0 ||
        msgpack_pack_str_body(pk, method, method_len) != 0 ||
        msgpack_pack_array(pk, nparams) != 0)
        return -1;
    return 0;
}

/* Packs [1, msgid, nil, ; the caller packs the result. Returns 0 or -1. */
int daffi_pack_response_ok(msgpack_packer *pk, uint32_t msgid)
{
    /* [1, msgid, nil, in one write: the bytes msgpack_pack_* would give (msgid in its
     * smallest encoding), without four trips through the packer's callback */
    unsigned char h[8] = {0x94, DAFFI_MSG_RESPONSE};
    size_t n = 2;
    if (msgid < 0x80) {
        h[n++] = (unsigned char)msgid;
    } else if (msgid <= 0xff) {
        h[n++] = 0xcc;
        h[n++] = (unsigned char)msgid;
    } else if (msgid <= 0xffff) {
        h[n++] = 0xcd;
        h[n++] = (unsigned char)(msgid >> 8);
        h[n++] = (unsigned char)msgid;
    } else {
        h[n++] = 0xce;
        for (int shift = 24; shift >= 0; shift -= 8)
            h[n++] = (unsigned char)(msgid >> shift);
    }
    h[n++] = 0xc0;
    return pk->callback(pk->data, (const char *)h, n) == 0 ? 0 : -1;
}

/* Packs [1, msgid, [code, message and, with details, leaves the error array one
 * element short. message NULL stands for the code's name. Returns 0 or -1. */
static int pack_error_head(msgpack_packer *pk, uint32_t msgid, int code,
                           const char *message, uint32_t nerror)
{
    if (message == NULL)
        message = daffi_error_name(code);
    if (msgpack_pack_array(pk, 4) != 0 || msgpack_pack_uint8(pk, DAFFI_MSG_RESPONSE) != 0 ||
        msgpack_pack_uint32(pk, msgid) != 0 || msgpack_pack_array(pk, nerror) != 0 ||
        msgpack_pack_int(pk, code) != 0 || daffi_pack_cstr(pk, message) != 0)
        return -1;
    return 0;
}

/* Packs a whole error response [1, msgid, [code, message], nil]. Returns 0 or -1. */
int daffi_pack_response_error(msgpack_packer *pk, uint32_t msgid, int code,
                              const char *message)
{
    if (pack_error_head(pk, msgid, code, message, 2) != 0 || msgpack_pack_nil(pk) != 0)
        return -1;
    return 0;
}

/* Packs [1, msgid, [code, message, ; the caller packs the details object and calls
 * daffi_pack_response_error_end(). Returns 0 or -1. */
int daffi_pack_response_error_details(msgpack_packer *pk, uint32_t msgid, int code,
                                      const char *message)
{
    return pack_error_head(pk, msgid, code, message, 3);
}

/* Packs the nil result that closes an error response. Returns 0 or -1. */
int daffi_pack_response_error_end(msgpack_packer *pk)
{
    return msgpack_pack_nil(pk) != 0 ? -1 : 0;
}

/* Packs the NUL-terminated s (not kept) as a str. Returns 0 or -1. */
int daffi_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    if (msgpack_pack_str(pk, n) != 0 || msgpack_pack_str_body(pk, s, n) != 0)
        return -1;
    return 0;
}

/* See rpc.h. The code must be an integer that fits an int; the message a str, a bin
 * (some encoders send bytes) or nil; the details, when present and not nil, any
 * object (a map by this protocol; the caller checks). Outputs are only written on
 * success and point into err. */
int daffi_error_parse(const msgpack_object *err, int *code, const char **message,
                      size_t *message_len, const msgpack_object **details)
{
    const msgpack_object *e;
    int c;

    if (err == NULL || err->type != MSGPACK_OBJECT_ARRAY ||
        (err->via.array.size != 2 && err->via.array.size != 3))
        return -1;
    e = err->via.array.ptr;
    if (e[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[0].via.u64 <= INT_MAX)
        c = (int)e[0].via.u64;
    else if (e[0].type == MSGPACK_OBJECT_NEGATIVE_INTEGER && e[0].via.i64 >= INT_MIN)
        c = (int)e[0].via.i64;
    else
        return -1;
    if (e[1].type != MSGPACK_OBJECT_STR && e[1].type != MSGPACK_OBJECT_BIN &&
        e[1].type != MSGPACK_OBJECT_NIL)
        return -1;

    *code = c;
    if (e[1].type == MSGPACK_OBJECT_NIL) {
        *message = NULL;
        *message_len = 0;
    } else {
        /* str and bin share their layout in msgpack_object */
        *message = e[1].type == MSGPACK_OBJECT_STR ? e[1].via.str.ptr : e[1].via.bin.ptr;
        *message_len = e[1].type == MSGPACK_OBJECT_STR ? e[1].via.str.size : e[1].via.bin.size;
    }
    if (details != NULL)
        *details = err->via.array.size == 3 && e[2].type != MSGPACK_OBJECT_NIL ? &e[2] : NULL;
    return 0;
}
