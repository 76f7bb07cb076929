/*
 * json.c - JSON text <-> MessagePack (the mapping is documented in daffi/json.h).
 *
 * Parsing uses jansson; the tagged objects {"$bin": ...} and {"$ext": ...} are
 * checked over the whole parsed value before anything is packed, so a rejected text
 * packs nothing. Output is written here (see the header for why), into a growable
 * text buffer.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <daffi/json.h>

/* ---- base64 (RFC 4648, standard alphabet, padded) ------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns the value of base64 character ch, or -1. */
static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Decodes base64 text s of len characters (padding optional) into out, which has room
 * for len * 3 / 4 + 3 bytes (out may be NULL to only validate). Returns the decoded
 * length, or -1 when s is not base64. */
static long b64_decode(const char *s, size_t len, unsigned char *out)
{
    size_t i, n = 0;
    unsigned acc = 0;
    int bits = 0, v;

    /* padding: at most two '=' at the very end, and the total length a multiple of 4 */
    if (len > 0 && s[len - 1] == '=') {
        if (len % 4 != 0)
            return -1;
        len--;
        if (len > 0 && s[len - 1] == '=')
            len--;
    }
    if (len % 4 == 1)
        return -1; /* one leftover character cannot encode a byte */
    for (i = 0; i < len; i++) {
        v = b64_value((unsigned char)s[i]);
        if (v == -1)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (out != NULL)
                out[n] = (unsigned char)(acc >> bits);
            n++;
        }
    }
    return (long)n;
}

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

    if (!(flags & DAFFI_JSON_PRETTY))
        return;
    tb_add(t, "\n", 1);
    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        tb_add(t, spaces, k);
        n -= k;
    }
}

/* ---- MessagePack -> JSON -------------------------------------------------------- */

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

static void dump_value(text_buf *t, const msgpack_object *o, unsigned flags, unsigned depth);

/* Appends a map key: a str as itself, anything else as the string of its compact
 * JSON text. */
static void dump_key(text_buf *t, const msgpack_object *key)
{
    text_buf k = {0};

    if (key->type == MSGPACK_OBJECT_STR) {
        dump_string(t, key->via.str.ptr, key->via.str.size);
        return;
    }
    dump_value(&k, key, DAFFI_JSON_COMPACT, 0);
    if (k.oom)
        t->oom = 1;
    else
        dump_string(t, k.p, k.len);
    free(k.p);
}

/* Appends the JSON text of o; depth is the indentation level of pretty output. */
static void dump_value(text_buf *t, const msgpack_object *o, unsigned flags, unsigned depth)
{
    const char *colon = (flags & DAFFI_JSON_PRETTY) ? ": " : ":";
    uint32_t i;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL: tb_add(t, "null", 4); break;
    case MSGPACK_OBJECT_BOOLEAN: tb_str(t, o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: tb_fmt(t, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: tb_fmt(t, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32: dump_float(t, o->via.f64, 1); break;
    case MSGPACK_OBJECT_FLOAT64: dump_float(t, o->via.f64, 0); break;
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
        tb_fmt(t, (flags & DAFFI_JSON_PRETTY) ? "[%d, " : "[%d,", (int)o->via.ext.type);
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
        if (o->via.map.size == 0) {
            tb_add(t, "{}", 2);
            break;
        }
        tb_add(t, "{", 1);
        for (i = 0; i < o->via.map.size; i++) {
            if (i > 0)
                tb_add(t, ",", 1);
            tb_indent(t, flags, depth + 1);
            dump_key(t, &o->via.map.ptr[i].key);
            tb_str(t, colon);
            dump_value(t, &o->via.map.ptr[i].val, flags, depth + 1);
        }
        tb_indent(t, flags, depth);
        tb_add(t, "}", 1);
        break;
    default:
        tb_add(t, "null", 4); /* no other msgpack type exists */
    }
}

/* See json.h. */
char *daffi_json_dump(const msgpack_object *obj, unsigned flags)
{
    text_buf t = {0};

    dump_value(&t, obj, flags, 0);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

/* ---- JSON -> MessagePack -------------------------------------------------------- */

enum tag_kind { TAG_NONE = 0, TAG_BIN, TAG_EXT };

/* Fills err (may be NULL) with a formatted reason and no position. */
static void json_err(daffi_json_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void json_err(daffi_json_error *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

/* Says whether object v is a tagged bin/ext object, checking its shape. Returns the
 * tag, or -1 with err filled when the reserved key is there with a malformed value. */
static int tag_of(json_t *v, daffi_json_error *err)
{
    json_t *x, *type, *data;
    json_int_t n;

    if (json_object_size(v) != 1)
        return TAG_NONE;
    if ((x = json_object_get(v, "$bin")) != NULL) {
        if (!json_is_string(x) ||
            b64_decode(json_string_value(x), json_string_length(x), NULL) == -1) {
            json_err(err, "{\"$bin\": ...}: the value must be a base64 string");
            return -1;
        }
        return TAG_BIN;
    }
    if ((x = json_object_get(v, "$ext")) != NULL) {
        type = json_array_get(x, 0);
        data = json_array_get(x, 1);
        n = json_is_integer(type) ? json_integer_value(type) : 1000;
        if (!json_is_array(x) || json_array_size(x) != 2 || n < -128 || n > 127 ||
            !json_is_string(data) ||
            b64_decode(json_string_value(data), json_string_length(data), NULL) == -1) {
            json_err(err, "{\"$ext\": ...}: the value must be [type -128..127, base64 string]");
            return -1;
        }
        return TAG_EXT;
    }
    return TAG_NONE;
}

/* Checks every tagged object inside v. Returns 0, or -1 with err filled. */
static int json_check(json_t *v, daffi_json_error *err)
{
    const char *key;
    size_t i;
    json_t *x;
    int tag;

    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
            if (json_check(x, err) == -1)
                return -1;
    } else if (json_is_object(v)) {
        tag = tag_of(v, err);
        if (tag == -1)
            return -1;
        if (tag != TAG_NONE)
            return 0;
        json_object_foreach(v, key, x)
            if (json_check(x, err) == -1)
                return -1;
    }
    return 0;
}

/* Packs base64 text s (already validated) as bin (ext_type < -128) or ext. Returns 0,
 * or -1 when memory ran out or the writer failed. */
static int pack_base64(msgpack_packer *pk, json_t *s, int ext_type)
{
    size_t len = json_string_length(s);
    unsigned char *buf = malloc(len * 3 / 4 + 3);
    long n;
    int rc;

    if (buf == NULL)
        return -1;
    n = b64_decode(json_string_value(s), len, buf);
    if (ext_type < -128)
        rc = msgpack_pack_bin(pk, (size_t)n) || msgpack_pack_bin_body(pk, buf, (size_t)n);
    else
        rc = msgpack_pack_ext(pk, (size_t)n, (int8_t)ext_type) ||
             msgpack_pack_ext_body(pk, buf, (size_t)n);
    free(buf);
    return rc ? -1 : 0;
}

/* Packs a checked jansson value. Returns 0, or -1 when the writer failed. */
static int json_pack_value(msgpack_packer *pk, json_t *v)
{
    const char *key;
    size_t klen, i;
    json_t *x;

    switch (json_typeof(v)) {
    case JSON_NULL: return msgpack_pack_nil(pk);
    case JSON_TRUE: return msgpack_pack_true(pk);
    case JSON_FALSE: return msgpack_pack_false(pk);
    case JSON_INTEGER: return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL: return msgpack_pack_double(pk, json_real_value(v));
    case JSON_STRING:
        if (msgpack_pack_str(pk, json_string_length(v)) != 0)
            return -1;
        return msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        if (msgpack_pack_array(pk, json_array_size(v)) != 0)
            return -1;
        json_array_foreach(v, i, x)
            if (json_pack_value(pk, x) != 0)
                return -1;
        return 0;
    case JSON_OBJECT:
        switch (tag_of(v, NULL)) {
        case TAG_BIN:
            return pack_base64(pk, json_object_get(v, "$bin"), -129);
        case TAG_EXT:
            x = json_object_get(v, "$ext");
            return pack_base64(pk, json_array_get(x, 1),
                               (int)json_integer_value(json_array_get(x, 0)));
        default:
            break;
        }
        if (msgpack_pack_map(pk, json_object_size(v)) != 0)
            return -1;
        json_object_keylen_foreach(v, key, klen, x) {
            if (msgpack_pack_str(pk, klen) != 0 || msgpack_pack_str_body(pk, key, klen) != 0 ||
                json_pack_value(pk, x) != 0)
                return -1;
        }
        return 0;
    }
    return -1;
}

/* Checks and packs a parsed value, then releases it. Returns 0, or -1 with err. */
static int pack_parsed(msgpack_packer *pk, json_t *root, daffi_json_error *err)
{
    int rc = json_check(root, err);

    if (rc == 0 && json_pack_value(pk, root) != 0) {
        json_err(err, "out of memory while packing");
        rc = -1;
    }
    json_decref(root);
    return rc;
}

/* See json.h. */
int daffi_json_pack(msgpack_packer *pk, const char *text, size_t len, daffi_json_error *err)
{
    json_error_t jerr;
    json_t *root;

    root = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        if (err != NULL) {
            memset(err, 0, sizeof(*err));
            err->line = jerr.line > 0 ? jerr.line : 0;
            err->column = jerr.column > 0 ? jerr.column : 0;
            err->position = (size_t)jerr.position;
            snprintf(err->text, sizeof(err->text), "%s", jerr.text);
        }
        return -1;
    }
    return pack_parsed(pk, root, err);
}

/* See json.h. */
int daffi_json_arg(msgpack_packer *pk, const char *arg, daffi_json_error *err)
{
    json_error_t jerr;
    json_t *root;
    size_t len = strlen(arg);

    root = json_loadb(arg, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        /* not JSON: the argument is the string itself */
        if (msgpack_pack_str(pk, len) != 0 || msgpack_pack_str_body(pk, arg, len) != 0) {
            json_err(err, "out of memory while packing");
            return -1;
        }
        return 0;
    }
    return pack_parsed(pk, root, err);
}
