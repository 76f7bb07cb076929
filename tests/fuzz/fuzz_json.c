/*
 * fuzz_json.c - libFuzzer target for daffictl's JSON <-> MessagePack conversion
 * (sdk/daffictl/json_pack.c, json_dump.c). `make fuzz FUZZ_FILTER=fuzz_json` builds
 * and runs it.
 *
 * Input layout: byte 0 picks the direction (even: the rest is JSON text; odd: the
 * rest is MessagePack bytes, the first object of which is printed). Hostile msgpack
 * is decoded with daffi's scanner and decoder (as the result of a response, so that
 * no declared count is trusted), not with msgpack-c's unpacker, which allocates from
 * the counts before checking them.
 *
 * Properties checked (abort() on a violation, so libFuzzer reports it):
 *   JSON text T:
 *     - ctl_json_pack(T) either fails having packed nothing, or packs exactly one
 *       msgpack object M;
 *     - ctl_json_arg(T) packs what ctl_json_pack did, or, when T is no JSON, the
 *       string T itself;
 *     - the compact and the pretty text of M both pack back to M, byte for byte;
 *   MessagePack object M of n bytes:
 *     - its compact text J is at most 10 n bytes (json.h's bound), its pretty text at
 *       most 10 n plus a newline and indentation per element;
 *     - J packs back unless M holds an integer above 2^63-1 (the parser refuses
 *       those), and what it packs prints as J again (one pass normalises: float32,
 *       NaN, scalar keys, invalid UTF-8);
 *   Time and memory: libFuzzer's -timeout and -rss_limit_mb catch output or work that
 *   grows faster than the input (maps nested in map keys once did).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#include "../../sdk/daffictl/json.h"

/* Aborts unless the len bytes at p (packed here, from JSON: their counts are true) are
 * exactly one msgpack object, which is unpacked into u. Returns 0, or -1 when
 * msgpack-c's unpacker cannot hold it (nested deeper than its stack). */
static int unpack_one(msgpack_unpacked *u, const char *p, size_t len)
{
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(u, p, len, &off);

    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return -1;
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        abort();
    return 0;
}

/* Packs JSON text (len bytes) into sb (cleared). Returns what ctl_json_pack did, and
 * aborts when a rejected text left bytes behind. */
static int pack(msgpack_sbuffer *sb, const char *text, size_t len)
{
    msgpack_packer pk;
    ctl_json_error err;
    int rc;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    rc = ctl_json_pack(&pk, text, len, &err);
    if (rc == -1 && sb->size != 0)
        abort();
    return rc;
}

/* Returns the depth of containers of o (a scalar is 0). */
static unsigned depth_of(const msgpack_object *o)
{
    unsigned d = 0, k;
    uint32_t i;

    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (i = 0; i < o->via.array.size; i++)
            if ((k = depth_of(&o->via.array.ptr[i])) > d)
                d = k;
        return d + 1;
    }
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (i = 0; i < o->via.map.size; i++) {
            if ((k = depth_of(&o->via.map.ptr[i].key)) > d)
                d = k;
            if ((k = depth_of(&o->via.map.ptr[i].val)) > d)
                d = k;
        }
        return d + 1;
    }
    return 0;
}

/* Returns 1 when o holds an unsigned integer above 2^63-1 anywhere. */
static int has_big_uint(const msgpack_object *o)
{
    uint32_t i;

    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return o->via.u64 > (uint64_t)INT64_MAX;
    case MSGPACK_OBJECT_ARRAY:
        for (i = 0; i < o->via.array.size; i++)
            if (has_big_uint(&o->via.array.ptr[i]))
                return 1;
        return 0;
    case MSGPACK_OBJECT_MAP:
        for (i = 0; i < o->via.map.size; i++)
            if (has_big_uint(&o->via.map.ptr[i].key) || has_big_uint(&o->via.map.ptr[i].val))
                return 1;
        return 0;
    default: return 0;
    }
}

/* Returns the text of o (never NULL: aborts when memory ran out). */
static char *dump(const msgpack_object *o, unsigned flags)
{
    char *t = ctl_json_dump(o, flags);

    if (t == NULL)
        abort();
    return t;
}

/* JSON text first: pack, print, pack again. */
static void from_text(const char *text, size_t len)
{
    msgpack_sbuffer m, again, arg;
    msgpack_unpacked u;
    msgpack_packer pk;
    ctl_json_error err;
    char *cstr, *j;
    int ok;

    msgpack_sbuffer_init(&m);
    msgpack_sbuffer_init(&again);
    msgpack_sbuffer_init(&arg);
    msgpack_unpacked_init(&u);
    ok = pack(&m, text, len) == 0;
    /* the command-line form of the same text (when it holds no NUL to cut it short) */
    cstr = malloc(len + 1);
    if (cstr == NULL)
        abort();
    memcpy(cstr, text, len);
    cstr[len] = '\0';
    msgpack_packer_init(&pk, &arg, msgpack_sbuffer_write);
    if (memchr(text, '\0', len) == NULL && ctl_json_arg(&pk, cstr, &err) == 0) {
        if (ok && (arg.size != m.size || memcmp(arg.data, m.data, m.size) != 0))
            abort();
        if (!ok && unpack_one(&u, arg.data, arg.size) == 0 &&
            (u.data.type != MSGPACK_OBJECT_STR || u.data.via.str.size != len ||
             (len > 0 && memcmp(u.data.via.str.ptr, text, len) != 0)))
            abort(); /* not JSON: the argument is the string itself */
    }
    free(cstr);
    if (ok && unpack_one(&u, m.data, m.size) == 0) {
        for (unsigned flags = CTL_JSON_COMPACT; flags <= CTL_JSON_PRETTY; flags++) {
            j = dump(&u.data, flags);
            if (pack(&again, j, strlen(j)) != 0 || again.size != m.size ||
                memcmp(again.data, m.data, m.size) != 0)
                abort();
            free(j);
        }
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&arg);
    msgpack_sbuffer_destroy(&again);
    msgpack_sbuffer_destroy(&m);
}

/* Decodes the first msgpack object of the len bytes at p as the result of a response
 * [1, 0, nil, object] built in *env (owned by the caller, freed by it), objects from
 * zone. Returns the object and its encoded size in *n, or NULL when the bytes hold no
 * valid object within daffi's limits. */
static const msgpack_object *decode_object(const char *p, size_t len, char **env,
                                           msgpack_zone *zone, size_t *n)
{
    daffi_limits lim = {len + 16, DAFFI_SCAN_MAX_DEPTH - 2};
    daffi_scan s;
    daffi_msg m;

    *env = malloc(len + 4);
    if (*env == NULL)
        abort();
    memcpy(*env, "\x94\x01\x00\xc0", 4);
    memcpy(*env + 4, p, len);
    daffi_scan_init(&s);
    if (daffi_scan_feed(&s, *env, len + 4, &lim) != DAFFI_SCAN_COMPLETE)
        return NULL;
    if (daffi_msg_decode(*env, s.size, zone, &m) == -1)
        abort(); /* the scanner accepted it */
    *n = s.size - 4;
    return m.result;
}

/* MessagePack first: print, bound, pack, print again. */
static void from_msgpack(const char *p, size_t len)
{
    msgpack_unpacked u2;
    msgpack_sbuffer back;
    msgpack_zone zone;
    const msgpack_object *o;
    size_t n, elems;
    unsigned depth;
    char *env, *j, *pretty, *j2;

    msgpack_zone_init(&zone, 1024);
    o = decode_object(p, len, &env, &zone, &n);
    if (o == NULL) {
        free(env);
        msgpack_zone_destroy(&zone);
        return;
    }
    depth = depth_of(o);
    j = dump(o, CTL_JSON_COMPACT);
    if (strlen(j) > 10 * n)
        abort();
    /* every element (at most one per input byte) gets a newline and at most 2 x its
     * JSON depth (3 per msgpack level: the object, the pairs, the pair) spaces */
    pretty = dump(o, CTL_JSON_PRETTY);
    elems = 3 * n; /* a map entry of 2 bytes: 4 lines as a pair; a map: 3 more */
    if (strlen(pretty) > 10 * n + elems * (1 + 2 * (3 * (size_t)depth + 3)))
        abort();
    msgpack_sbuffer_init(&back);
    if (pack(&back, j, strlen(j)) != 0) {
        if (!has_big_uint(o))
            abort(); /* only integers the parser cannot hold may fail */
    } else {
        msgpack_unpacked_init(&u2);
        if (unpack_one(&u2, back.data, back.size) == 0) {
            j2 = dump(&u2.data, CTL_JSON_COMPACT);
            if (strcmp(j, j2) != 0)
                abort();
            free(j2);
        }
        msgpack_unpacked_destroy(&u2);
        /* the pretty text reads back the same */
        msgpack_sbuffer b2;
        msgpack_sbuffer_init(&b2);
        if (pack(&b2, pretty, strlen(pretty)) != 0 || b2.size != back.size ||
            memcmp(b2.data, back.data, back.size) != 0)
            abort();
        msgpack_sbuffer_destroy(&b2);
    }
    msgpack_sbuffer_destroy(&back);
    free(pretty);
    free(j);
    free(env);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        from_msgpack((const char *)data + 1, size - 1);
    else
        from_text((const char *)data + 1, size - 1);
    return 0;
}
