/*
 * fuzz_rpc.c - libFuzzer target for the MessagePack-RPC scanner and decoder.
 * Not built by default. Build and run from the top of the tree:
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Isdk/include tests/fuzz/fuzz_rpc.c sdk/src/rpc.c -lmsgpackc -o /tmp/fuzz_rpc
 *   /tmp/fuzz_rpc -max_total_time=60
 *
 * Input layout: byte 0 picks max_depth, byte 1 max_message, byte 2 seeds the
 * fragment sizes; the rest is the byte stream, read as consecutive messages.
 *
 * Properties checked (abort() on a violation, so libFuzzer reports it):
 *   - a message scanned in random fragments, each fed from a fresh copy of exactly
 *     the bytes available, gets the same verdict, size and error as in one call;
 *   - a COMPLETE message fits max_message, daffi_object_size() agrees with its size,
 *     daffi_msg_decode() accepts it, and params_raw is exactly the params object;
 *   - the lazy halves agree with it: daffi__scan_envelope() gives the same kind,
 *     msgid, method and params bytes from the scanner's state, and
 *     daffi__params_decode() of those bytes gives the same params objects;
 *   - msgpack-c's own unpacker, as an independent oracle, reads the same message
 *     with the same size and the same values (where its 32-container stack allows).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#include "rpc-int.h"

/* Scans the message at data in fragments whose sizes come from *rng. Every feed
 * gets a fresh heap copy of exactly the bytes available. */
static daffi_scan_result scan_in_fragments(const uint8_t *data, size_t size,
                                           const daffi_limits *lim, uint32_t *rng,
                                           daffi_scan *s)
{
    daffi_scan_result r = DAFFI_SCAN_NEED_MORE;
    size_t have = 0;
    int feeds = 0;

    daffi_scan_init(s);
    while (have < size) {
        char *copy;

        *rng = *rng * 1103515245u + 12345u;
        /* at most 32 feeds per message, so a long input stays cheap */
        have = ++feeds >= 32 ? size : have + 1 + (*rng >> 16) % 97;
        if (have > size)
            have = size;
        copy = malloc(have);
        if (copy == NULL)
            abort();
        memcpy(copy, data, have);
        r = daffi_scan_feed(s, copy, have, lim);
        free(copy);
        if (r != DAFFI_SCAN_NEED_MORE)
            break;
    }
    return r;
}

/* Packs o into sb (cleared first). */
static void repack(msgpack_sbuffer *sb, const msgpack_object *o)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *o) != 0)
        abort();
}

/* Checks that msgpack-c decodes the message at buf of size bytes to the same values
 * as msg (compared re-encoded, so NaN payloads compare too). */
static void check_against_msgpack_c(const char *buf, size_t size, const daffi_msg *msg)
{
    msgpack_zone zone;
    msgpack_object env;
    msgpack_sbuffer a, b;
    const msgpack_object *ours[2] = { NULL, NULL }, *theirs[2] = { NULL, NULL };
    size_t off = 0;
    int r, i;

    if (!msgpack_zone_init(&zone, 1024))
        abort();
    r = msgpack_unpack(buf, size, &off, &zone, &env);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR) {
        /* deeper than msgpack-c's fixed stack: nothing to compare */
        msgpack_zone_destroy(&zone);
        return;
    }
    if (r != MSGPACK_UNPACK_SUCCESS || off != size || env.type != MSGPACK_OBJECT_ARRAY)
        abort();
    if (msg->kind == DAFFI_MSG_RESPONSE) {
        ours[0] = msg->error;
        ours[1] = msg->result;
        theirs[0] = &env.via.array.ptr[2];
        theirs[1] = &env.via.array.ptr[3];
    } else {
        ours[0] = msg->params;
        theirs[0] = &env.via.array.ptr[env.via.array.size - 1];
    }
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    for (i = 0; i < 2 && ours[i] != NULL; i++) {
        repack(&a, ours[i]);
        repack(&b, theirs[i]);
        if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
            abort();
    }
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    msgpack_zone_destroy(&zone);
}

/* Checks one message the scanner accepted. */
/* The envelope from the scan s and the params decoded later against the whole
 * decode (msg) of the same message. */
static void check_lazy(const char *buf, const daffi_scan *s, const daffi_msg *msg)
{
    msgpack_zone zone;
    daffi_msg head;
    msgpack_object params;

    if (msg->kind == DAFFI_MSG_RESPONSE) {
        if (daffi__scan_envelope(s, buf, &head) != -1)
            abort(); /* no call: decoded whole where it is needed */
        return;
    }
    if (!msgpack_zone_init(&zone, 1024))
        abort();
    if (daffi__scan_envelope(s, buf, &head) != 0 || head.kind != msg->kind)
        abort();
    if (head.params != NULL || head.msgid != msg->msgid || head.method != msg->method ||
        head.method_len != msg->method_len || head.params_raw != msg->params_raw ||
        head.params_raw_len != msg->params_raw_len)
        abort();
    if (daffi__params_decode(head.params_raw, head.params_raw_len, &zone, &params) != 0)
        abort();
    /* compared re-encoded, as against msgpack-c: NaN payloads compare too */
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    repack(&a, &params);
    repack(&b, msg->params);
    if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
        abort();
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    msgpack_zone_destroy(&zone);
}

static void check_complete(const uint8_t *data, size_t size, const daffi_limits *lim,
                           const daffi_scan *s)
{
    msgpack_zone zone;
    daffi_msg msg;
    const char *buf = (const char *)data;

    if (s->size == 0 || s->size > size || s->size > lim->max_message)
        abort();
    if (daffi_object_size(buf, size) != s->size)
        abort();
    if (!msgpack_zone_init(&zone, 1024))
        abort();
    if (daffi_msg_decode(buf, s->size, &zone, &msg) != 0)
        abort();
    if ((int)msg.kind != s->kind)
        abort();
    if (msg.kind != DAFFI_MSG_NOTIFY && msg.msgid != s->msgid)
        abort();
    if (msg.kind != DAFFI_MSG_RESPONSE) {
        if (msg.params_raw < buf || msg.params_raw + msg.params_raw_len != buf + s->size ||
            daffi_object_size(msg.params_raw, msg.params_raw_len) != msg.params_raw_len)
            abort();
    }
    check_against_msgpack_c(buf, s->size, &msg);
    check_lazy(buf, s, &msg);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    daffi_limits lim;
    uint32_t rng;
    size_t off = 3;

    if (size < 3)
        return 0;
    lim.max_depth = data[0] % 64;
    lim.max_message = data[1] == 0 ? DAFFI_DEFAULT_MAX_MESSAGE : 16 + (size_t)data[1] * 8;
    rng = data[2];

    while (off < size) {
        daffi_scan whole, parts;
        daffi_scan_result a, b;

        daffi_scan_init(&whole);
        a = daffi_scan_feed(&whole, (const char *)data + off, size - off, &lim);
        b = scan_in_fragments(data + off, size - off, &lim, &rng, &parts);
        if (a != b)
            abort();
        if (a == DAFFI_SCAN_NEED_MORE)
            break;
        if (a != DAFFI_SCAN_COMPLETE) {
            if (whole.error == NULL || parts.error == NULL ||
                strcmp(whole.error, parts.error) != 0 ||
                whole.have_msgid != parts.have_msgid)
                abort();
            break;
        }
        if (whole.size != parts.size || whole.msgid != parts.msgid || whole.kind != parts.kind)
            abort();
        check_complete(data + off, size - off, &lim, &whole);
        off += whole.size;
    }
    return 0;
}
