/*
 * json_dump.c - MessagePack -> JSON text, for daffictl's output (the mapping is
 * documented in json.h; the other direction is json_pack.c).
 *
 * Written here rather than by jansson's encoder (see json.h for why), into one
 * growable text buffer. Every value is written exactly once: a map key is never
 * turned into text that is then escaped again as a string (nesting such keys would
 * double the escapes at each level, an output exponential in the depth). A map whose
 * keys cannot all be plain object keys is written as {"$map": [[key, value]...]}
 * instead, with its keys as values.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- text buffer ---------------------------------------------------------------- */

typedef struct text_buf {
    char *p;
    size_t len, cap;
    int oom;
} text_buf;

/* Appends len bytes; on allocation failure sets oom and drops further output. */
static void tb_add(text_buf *t, const char *s, size_t len)
{
    size_t cap;
    char *p;

    if (t->oom || len == 0)
        return; /* also: s may be NULL for an empty msgpack str */
    if (t->cap - t->len < len + 1) {
        cap = t->cap ? t->cap : 256;
        while (cap - t->len < len + 1)
            cap *= 2;
        p = realloc(t->p, cap);
        if (p == NULL) {
            t->oom = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, len);
    t->len += len;
    t->p[t->len] = '\0';
}

static void tb_str(text_buf *t, const char *s)
{
    tb_add(t, s, strlen(s));
}

static void tb_fmt(text_buf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_fmt(text_buf *t, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        tb_add(t, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Appends a newline and 2 * depth spaces (pretty output only). */
static void tb_indent(text_buf *t, unsigned flags, unsigned depth)
{
    static const char spaces[] = "                                ";
    size_t n = (size_t)depth * 2;

    if (!(flags & CTL_JSON_PRETTY))
        return;
    tb_add(t, "\n", 1);
    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        tb_add(t, spaces, k);
        n -= k;
    }
}

/* ---- scalars -------------------------------------------------------------------- */

/* Returns the length of the valid UTF-8 sequence at s (len bytes left), or 0 when the
 * bytes there are not one (overlong forms, surrogates and > U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n, i;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Appends the len bytes at s as UTF-8 text, unquoted and unescaped, every invalid
 * sequence replaced by U+FFFD: the string a JSON reader gets back. */
static void add_utf8(text_buf *t, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, start = 0, n;

    if (len == 0)
        return; /* s may be NULL for an empty msgpack str */
    while (i < len) {
        n = u[i] < 0x80 ? 1 : utf8_seq(u + i, len - i);
        if (n > 0) {
            i += n;
            continue;
        }
        tb_add(t, s + start, i - start);
        tb_add(t, "\xef\xbf\xbd", 3);
        start = ++i;
    }
    tb_add(t, s + start, i - start);
}

/* Appends s (len bytes) as a JSON string: quoted, escaped, invalid UTF-8 replaced by
 * U+FFFD. */
static void dump_string(text_buf *t, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0, n;
    char esc[8];

    if (len == 0) {
        tb_add(t, "\"\"", 2); /* s may be NULL */
        return;
    }
    tb_add(t, "\"", 1);
    while (i < len) {
        if (u[i] >= 0x20 && u[i] != '"' && u[i] != '\\' && u[i] < 0x80) {
            i++;
            run++;
            continue;
        }
        /* flush the plain run before this byte */
        tb_add(t, s + i - run, run);
        run = 0;
        if (u[i] >= 0x80) {
            n = utf8_seq(u + i, len - i);
            if (n == 0) {
                tb_add(t, "\xef\xbf\xbd", 3);
                i++;
            } else {
                tb_add(t, s + i, n);
                i += n;
            }
            continue;
        }
        switch (u[i]) {
        case '"': tb_add(t, "\\\"", 2); break;
        case '\\': tb_add(t, "\\\\", 2); break;
        case '\n': tb_add(t, "\\n", 2); break;
        case '\r': tb_add(t, "\\r", 2); break;
        case '\t': tb_add(t, "\\t", 2); break;
        case '\b': tb_add(t, "\\b", 2); break;
        case '\f': tb_add(t, "\\f", 2); break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            tb_add(t, esc, 6);
        }
        i++;
    }
    tb_add(t, s + i - run, run);
    tb_add(t, "\"", 1);
}

/* Appends the base64 text of len bytes at p, quoted. */
static void dump_base64(text_buf *t, const char *p, size_t len)
{
    const unsigned char *u = (const unsigned char *)p;
    char q[4];
    size_t i;
    unsigned v;

    tb_add(t, "\"", 1);
    for (i = 0; i + 2 < len; i += 3) {
        v = (unsigned)u[i] << 16 | (unsigned)u[i + 1] << 8 | u[i + 2];
        q[0] = b64_alphabet[v >> 18];
        q[1] = b64_alphabet[(v >> 12) & 63];
        q[2] = b64_alphabet[(v >> 6) & 63];
        q[3] = b64_alphabet[v & 63];
        tb_add(t, q, 4);
    }
    if (i < len) {
        v = (unsigned)u[i] << 16 | (i + 1 < len ? (unsigned)u[i + 1] << 8 : 0);
        q[0] = b64_alphabet[v >> 18];
        q[1] = b64_alphabet[(v >> 12) & 63];
        q[2] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        q[3] = '=';
        tb_add(t, q, 4);
    }
    tb_add(t, "\"", 1);
}

/* Appends a float as the shortest decimal text that reads back to the same value at
 * its own precision (float32 or float64), marked as a real; NaN/inf as null. */
static void dump_float(text_buf *t, double v, int is_float32)
{
    char s[40];
    int prec, max = is_float32 ? 9 : 17;

    if (isnan(v) || isinf(v)) {
        tb_add(t, "null", 4);
        return;
    }
    for (prec = 1; prec <= max; prec++) {
        snprintf(s, sizeof(s), "%.*g", prec, v);
        if (is_float32 ? strtof(s, NULL) == (float)v : strtod(s, NULL) == v)
            break;
    }
    tb_str(t, s);
    /* "2" would read back as an integer: keep it a real */
    if (strpbrk(s, ".eE") == NULL)
        tb_add(t, ".0", 2);
}

/* Appends the JSON text of a scalar (nil, bool, int, float). Returns 0, or -1 when o
 * is no scalar. */
static int dump_scalar(text_buf *t, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: tb_add(t, "null", 4); return 0;
    case MSGPACK_OBJECT_BOOLEAN: tb_str(t, o->via.boolean ? "true" : "false"); return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: tb_fmt(t, "%" PRIu64, o->via.u64); return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: tb_fmt(t, "%" PRId64, o->via.i64); return 0;
    case MSGPACK_OBJECT_FLOAT32: dump_float(t, o->via.f64, 1); return 0;
    case MSGPACK_OBJECT_FLOAT64: dump_float(t, o->via.f64, 0); return 0;
    default: return -1;
    }
}

/* ---- map keys --------------------------------------------------------------------- */

/* The key strings of a map written as a JSON object: key i is text.p[off[i]..off[i+1]). */
typedef struct key_texts {
    text_buf text;
    size_t *off;  /* n + 1 offsets */
} key_texts;

/* Returns key string i of k and its length in *len (k's buffer is NULL while every
 * key so far was empty). */
static const char *key_at(const key_texts *k, size_t i, size_t *len)
{
    *len = k->off[i + 1] - k->off[i];
    return k->text.p != NULL ? k->text.p + k->off[i] : "";
}

/* Returns the FNV-1a hash of len bytes at p. */
static uint64_t fnv1a(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Returns 1 when two of the n key strings of k are equal (a hash table of 2n..4n
 * slots: linear time), 0 when all differ, -1 when memory ran out. */
static int keys_repeat(const key_texts *k, size_t n)
{
    size_t size = 4, mask, i, s;
    uint32_t *slot;
    int dup = 0;

    while (size < 2 * n)
        size *= 2;
    mask = size - 1;
    slot = calloc(size, sizeof(*slot));
    if (slot == NULL)
        return -1;
    for (i = 0; i < n && !dup; i++) {
        size_t len, jlen;
        const char *p = key_at(k, i, &len);

        for (s = fnv1a(p, len) & mask; slot[s] != 0; s = (s + 1) & mask) {
            const char *q = key_at(k, slot[s] - 1, &jlen);

            if (jlen == len && memcmp(q, p, len) == 0) {
                dup = 1;
                break;
            }
        }
        slot[s] = (uint32_t)(i + 1);
    }
    free(slot);
    return dup;
}

/* Decides how the map o (at least one entry) is written. Returns 1 when it can be a
 * JSON object, with k holding its key strings (the caller frees k->text.p and k->off);
 * 0 when it must be {"$map": ...} (k holds nothing); -1 when memory ran out. */
static int map_keys_plain(const msgpack_object *o, key_texts *k)
{
    uint32_t n = o->via.map.size, i;
    int rc = 1, dup;

    memset(k, 0, sizeof(*k));
    k->off = malloc(((size_t)n + 1) * sizeof(*k->off));
    if (k->off == NULL)
        return -1;
    for (i = 0; i < n && rc == 1; i++) {
        const msgpack_object *key = &o->via.map.ptr[i].key;
        size_t len;
        const char *p;

        k->off[i] = k->text.len;
        if (key->type == MSGPACK_OBJECT_STR)
            add_utf8(&k->text, key->via.str.ptr, key->via.str.size);
        else if (dump_scalar(&k->text, key) == -1)
            rc = 0; /* an array, map, bin or ext key */
        k->off[i + 1] = k->text.len;
        p = key_at(k, i, &len);
        if (rc == 1 && memchr(p, '\0', len) != NULL)
            rc = 0; /* a JSON reader refuses NUL in object keys */
        /* one entry named like a tag would read back as that tag */
        if (rc == 1 && n == 1 && len == 4 &&
            (memcmp(p, "$bin", 4) == 0 || memcmp(p, "$ext", 4) == 0 || memcmp(p, "$map", 4) == 0))
            rc = 0;
    }
    if (rc == 1 && k->text.oom)
        rc = -1;
    if (rc == 1 && n > 1) {
        dup = keys_repeat(k, n);
        rc = dup == -1 ? -1 : !dup;
    }
    if (rc != 1) {
        free(k->text.p);
        free(k->off);
        memset(k, 0, sizeof(*k));
    }
    return rc;
}

/* ---- values ----------------------------------------------------------------------- */

static void dump_value(text_buf *t, const msgpack_object *o, unsigned flags, unsigned depth);

/* Appends the map o (at least one entry) as a JSON object, or as {"$map": [[key,
 * value]...]} when its keys cannot be object keys. depth: o's indentation level. */
static void dump_map(text_buf *t, const msgpack_object *o, unsigned flags, unsigned depth)
{
    const char *colon = (flags & CTL_JSON_PRETTY) ? ": " : ":";
    key_texts k;
    uint32_t i;
    int plain = map_keys_plain(o, &k);

    if (plain == -1) {
        t->oom = 1;
        return;
    }
    tb_add(t, "{", 1);
    if (plain) {
        for (i = 0; i < o->via.map.size; i++) {
            size_t len;
            const char *p = key_at(&k, i, &len);

            if (i > 0)
                tb_add(t, ",", 1);
            tb_indent(t, flags, depth + 1);
            dump_string(t, p, len);
            tb_str(t, colon);
            dump_value(t, &o->via.map.ptr[i].val, flags, depth + 1);
        }
        free(k.text.p);
        free(k.off);
    } else {
        tb_indent(t, flags, depth + 1);
        tb_str(t, "\"$map\"");
        tb_str(t, colon);
        tb_add(t, "[", 1);
        for (i = 0; i < o->via.map.size; i++) {
            if (i > 0)
                tb_add(t, ",", 1);
            tb_indent(t, flags, depth + 2);
            tb_add(t, "[", 1);
            tb_indent(t, flags, depth + 3);
            dump_value(t, &o->via.map.ptr[i].key, flags, depth + 3);
            tb_add(t, ",", 1);
            tb_indent(t, flags, depth + 3);
            dump_value(t, &o->via.map.ptr[i].val, flags, depth + 3);
            tb_indent(t, flags, depth + 2);
            tb_add(t, "]", 1);
        }
        tb_indent(t, flags, depth + 1);
        tb_add(t, "]", 1);
    }
    tb_indent(t, flags, depth);
    tb_add(t, "}", 1);
}

/* Appends the JSON text of o; depth is the indentation level of pretty output. */
static void dump_value(text_buf *t, const msgpack_object *o, unsigned flags, unsigned depth)
{
    const char *colon = (flags & CTL_JSON_PRETTY) ? ": " : ":";
    uint32_t i;

    if (t->oom || dump_scalar(t, o) == 0)
        return;
    switch (o->type) {
    case MSGPACK_OBJECT_STR: dump_string(t, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN:
        tb_str(t, "{\"$bin\"");
        tb_str(t, colon);
        dump_base64(t, o->via.bin.ptr, o->via.bin.size);
        tb_add(t, "}", 1);
        break;
    case MSGPACK_OBJECT_EXT:
        tb_str(t, "{\"$ext\"");
        tb_str(t, colon);
        tb_fmt(t, (flags & CTL_JSON_PRETTY) ? "[%d, " : "[%d,", (int)o->via.ext.type);
        dump_base64(t, o->via.ext.ptr, o->via.ext.size);
        tb_add(t, "]}", 2);
        break;
    case MSGPACK_OBJECT_ARRAY:
        if (o->via.array.size == 0) {
            tb_add(t, "[]", 2);
            break;
        }
        tb_add(t, "[", 1);
        for (i = 0; i < o->via.array.size; i++) {
            if (i > 0)
                tb_add(t, ",", 1);
            tb_indent(t, flags, depth + 1);
            dump_value(t, &o->via.array.ptr[i], flags, depth + 1);
        }
        tb_indent(t, flags, depth);
        tb_add(t, "]", 1);
        break;
    case MSGPACK_OBJECT_MAP:
        if (o->via.map.size == 0)
            tb_add(t, "{}", 2);
        else
            dump_map(t, o, flags, depth);
        break;
    default:
        tb_add(t, "null", 4); /* no other msgpack type exists */
    }
}

/* See json.h. */
char *ctl_json_dump(const msgpack_object *obj, unsigned flags)
{
    text_buf t = {0};

    dump_value(&t, obj, flags, 0);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    return t.p; /* every value writes something: not NULL */
}
