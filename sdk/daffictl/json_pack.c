/*
 * json_pack.c - JSON text -> MessagePack, for daffictl's arguments (the mapping is
 * documented in json.h; the other direction is json_dump.c).
 *
 * Parsing uses jansson; the tagged objects {"$bin": ...}, {"$ext": ...} and
 * {"$map": ...} are checked over the whole parsed value before anything is packed,
 * so a rejected text packs nothing.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json.h"

/* ---- base64 (RFC 4648, standard alphabet, padded) ------------------------------- */

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

/* ---- JSON -> MessagePack -------------------------------------------------------- */

enum tag_kind { TAG_NONE = 0, TAG_BIN, TAG_EXT, TAG_MAP };

/* Fills err (may be NULL) with a formatted reason and no position. */
static void json_err(ctl_json_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void json_err(ctl_json_error *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

/* Says whether object v is a tagged bin/ext/map object, checking its shape (not the
 * pairs' content). Returns the tag, or -1 with err filled when the reserved key is
 * there with a malformed value. */
static int tag_of(json_t *v, ctl_json_error *err)
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
    if ((x = json_object_get(v, "$map")) != NULL) {
        size_t i;
        json_t *pair;

        if (!json_is_array(x)) {
            json_err(err, "{\"$map\": ...}: the value must be an array of [key, value] pairs");
            return -1;
        }
        json_array_foreach(x, i, pair) {
            if (!json_is_array(pair) || json_array_size(pair) != 2) {
                json_err(err, "{\"$map\": ...}: entry %zu is not a [key, value] pair", i);
                return -1;
            }
        }
        return TAG_MAP;
    }
    return TAG_NONE;
}

/* Checks every tagged object inside v. Returns 0, or -1 with err filled. */
static int json_check(json_t *v, ctl_json_error *err)
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
        if (tag == TAG_MAP) {
            /* the keys and values of the pairs are values of their own */
            json_array_foreach(json_object_get(v, "$map"), i, x)
                if (json_check(json_array_get(x, 0), err) == -1 ||
                    json_check(json_array_get(x, 1), err) == -1)
                    return -1;
            return 0;
        }
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
        case TAG_MAP:
            x = json_object_get(v, "$map");
            if (msgpack_pack_map(pk, json_array_size(x)) != 0)
                return -1;
            for (i = 0; i < json_array_size(x); i++)
                if (json_pack_value(pk, json_array_get(json_array_get(x, i), 0)) != 0 ||
                    json_pack_value(pk, json_array_get(json_array_get(x, i), 1)) != 0)
                    return -1;
            return 0;
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
static int pack_parsed(msgpack_packer *pk, json_t *root, ctl_json_error *err)
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
int ctl_json_pack(msgpack_packer *pk, const char *text, size_t len, ctl_json_error *err)
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
int ctl_json_arg(msgpack_packer *pk, const char *arg, ctl_json_error *err)
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
