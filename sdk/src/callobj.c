/*
 * callobj.c - the handler-facing SDK functions of daffi/plugin.h (arguments, replies,
 * completion) over the daffi_call record, and its host-side life cycle (callobj.h).
 * Shared by daffid and libdaffi; the host supplies completion through call->ops.
 */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callobj.h"
#include "rpc-int.h"

/* params_state: a load from the scan leaves the params encoded (ENCODED); the first
 * thread to ask moves it to DECODING, decodes, publishes msg.params and stores
 * DECODED with release order; a thread that finds DECODING waits for DECODED (a
 * handler rarely asks from two threads at once, and the decode is short). */
enum { CALL_PARAMS_ENCODED = 0, CALL_PARAMS_DECODING = 1, CALL_PARAMS_DECODED = 2 };

#define CALL_ZONE_CHUNK 2048
#define CALL_KEEP_BYTES (64 * 1024) /* buffers kept across reuse, at most */

/* The packer's writer of a call's result: a notification's result is never sent, so it
 * is not kept either (an echo of a 1 MiB notification copies nothing). */
static int call_result_write(void *data, const char *buf, size_t len)
{
    daffi_call *call = data;
    if (call->msg.kind == DAFFI_MSG_NOTIFY)
        return 0;
    if (call->result.alloc - call->result.size < len && call->ops != NULL &&
        call->ops->reserve != NULL && call->ops->reserve(call, &call->result, len) == -1)
        return -1;
    return msgpack_sbuffer_write(&call->result, buf, len);
}

void daffi_call_init(daffi_call *call)
{
    memset(call, 0, sizeof(*call));
    msgpack_zone_init(&call->zone, CALL_ZONE_CHUNK);
    msgpack_sbuffer_init(&call->result);
    msgpack_packer_init(&call->packer, call, call_result_write);
    msgpack_sbuffer_init(&call->details);
    msgpack_packer_init(&call->details_packer, &call->details, msgpack_sbuffer_write);
    atomic_init(&call->params_state, CALL_PARAMS_DECODED); /* nothing to decode */
}

void daffi_call_destroy(daffi_call *call)
{
    free(call->bytes);
    msgpack_zone_destroy(&call->zone);
    msgpack_sbuffer_destroy(&call->result);
    msgpack_sbuffer_destroy(&call->details);
}

void daffi_call_reset(daffi_call *call)
{
    if (call->bytes_cap > CALL_KEEP_BYTES) {
        free(call->bytes);
        call->bytes = NULL;
        call->bytes_cap = 0;
    }
    call->bytes_len = 0;
    msgpack_zone_clear(&call->zone);
    if (call->result.alloc > CALL_KEEP_BYTES)
        msgpack_sbuffer_destroy(&call->result), msgpack_sbuffer_init(&call->result);
    call->result.size = 0;
    if (call->details.alloc > CALL_KEEP_BYTES)
        msgpack_sbuffer_destroy(&call->details), msgpack_sbuffer_init(&call->details);
    call->details.size = 0;
    call->outcome = DAFFI_OUTCOME_NONE;
    call->error_code = 0;
    call->error_msg[0] = '\0';
    call->method = NULL;
    call->stream_step = DAFFI_STREAM_NONE;
    call->chunk = NULL;
    call->chunk_index = 0;
    call->stream_data = NULL;
    call->on_cancel = NULL;
    call->on_cancel_arg = NULL;
    call->host = NULL;
    call->state = NULL;
    call->loop = NULL;
    call->ops = NULL;
    memset(&call->msg, 0, sizeof(call->msg));
    atomic_store_explicit(&call->params_state, CALL_PARAMS_DECODED, memory_order_relaxed);
}

/* Decodes the len bytes at call->bytes (daffi_call_load, daffi_call_adopt), or with
 * scan takes the envelope from it and leaves the params for later. */
static int call_decode(daffi_call *call, size_t len, const daffi_scan *scan)
{
    call->bytes_len = len;
    if (scan != NULL ? scan->size != len ||
                           daffi__scan_envelope(scan, call->bytes, &call->msg) == -1
                     : daffi_msg_decode(call->bytes, len, &call->zone, &call->msg) == -1)
        return -1;
    if (call->msg.kind == DAFFI_MSG_RESPONSE)
        return -1;
    atomic_store_explicit(&call->params_state, scan != NULL ? CALL_PARAMS_ENCODED
                                                            : CALL_PARAMS_DECODED,
                          memory_order_relaxed);
    call->method = msgpack_zone_malloc(&call->zone, call->msg.method_len + 1);
    if (call->method == NULL)
        return -1;
    memcpy(call->method, call->msg.method, call->msg.method_len);
    call->method[call->msg.method_len] = '\0';
    return 0;
}

int daffi_call_load(daffi_call *call, const char *bytes, size_t len, const daffi_scan *scan)
{
    if (call->bytes_cap < len) {
        char *p = realloc(call->bytes, len);
        if (p == NULL)
            return -1;
        call->bytes = p;
        call->bytes_cap = len;
    }
    memcpy(call->bytes, bytes, len);
    return call_decode(call, len, scan);
}

int daffi_call_adopt(daffi_call *call, char *bytes, size_t cap, size_t len,
                     const daffi_scan *scan)
{
    free(call->bytes);
    call->bytes = bytes;
    call->bytes_cap = cap;
    return call_decode(call, len, scan);
}

/* The slow half of daffi_call_params: decodes, or waits for the thread that does. */
static const msgpack_object *call_params_decode(daffi_call *call)
{
    int expected = CALL_PARAMS_ENCODED;
    if (atomic_compare_exchange_strong_explicit(&call->params_state, &expected,
                                                CALL_PARAMS_DECODING, memory_order_acquire,
                                                memory_order_acquire)) {
        msgpack_object *p = msgpack_zone_malloc(&call->zone, sizeof(*p));
        if (p != NULL && daffi__params_decode(call->msg.params_raw, call->msg.params_raw_len,
                                              &call->zone, p) == -1)
            p = NULL;
        call->msg.params = p;
        atomic_store_explicit(&call->params_state, CALL_PARAMS_DECODED, memory_order_release);
        return p;
    }
    while (atomic_load_explicit(&call->params_state, memory_order_acquire) !=
           CALL_PARAMS_DECODED)
        sched_yield();
    return call->msg.params;
}

const msgpack_object *daffi_call_params(daffi_call *call)
{
    if (atomic_load_explicit(&call->params_state, memory_order_acquire) == CALL_PARAMS_DECODED)
        return call->msg.params;
    return call_params_decode(call);
}

int daffi_call_params_decoded(const daffi_call *call)
{
    return atomic_load_explicit(&call->params_state, memory_order_acquire) ==
           CALL_PARAMS_DECODED;
}

void daffi_call_set_error(daffi_call *call, int code, const char *message)
{
    call->details.size = 0;
    call->outcome = DAFFI_OUTCOME_ERROR;
    call->error_code = code;
    snprintf(call->error_msg, sizeof(call->error_msg), "%s", message);
}

void daffi_call_set_raw_error(daffi_call *call, int code, const char *p, size_t len)
{
    call->details.size = 0;
    call->result.size = 0;
    msgpack_sbuffer_write(&call->result, p, len);
    call->outcome = DAFFI_OUTCOME_RAW_ERROR;
    call->error_code = code;
}

int daffi_call_unwrap(daffi_call *call)
{
    const msgpack_object *target = daffi_arg(call, 0);
    const msgpack_object *params = daffi_arg(call, 1);
    const char *raw;
    size_t raw_len;
    if (target == NULL || params == NULL || params->type != MSGPACK_OBJECT_ARRAY ||
        daffi_arg_raw(call, 1, &raw, &raw_len) == -1)
        return -1;
    const char *name;
    size_t len;
    if (daffi_obj_text(target, &name, &len) == -1)
        return -1;
    char *method = msgpack_zone_malloc(&call->zone, len + 1);
    if (method == NULL)
        return -1;
    memcpy(method, name, len);
    method[len] = '\0';
    call->method = method;
    call->msg.method = method;
    call->msg.method_len = len;
    call->msg.params = params;
    call->msg.params_raw = raw;
    call->msg.params_raw_len = raw_len;
    return 0;
}

/* Returns 1 when the len bytes at p are exactly one msgpack map, 0 otherwise. */
static int is_one_map(const char *p, size_t len)
{
    unsigned char b = len > 0 ? (unsigned char)p[0] : 0;

    return len > 0 && ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf) &&
           daffi_object_size(p, len) == len;
}

/* 1 when the len bytes at p are exactly one message the scanner accepts with lim: what
 * we send passes the checks we make on what we receive. */
static int daffi_scan_accepts(const char *p, size_t len, const daffi_limits *lim)
{
    daffi_scan scan;
    daffi_scan_init(&scan);
    return daffi_scan_feed(&scan, p, len, lim) == DAFFI_SCAN_COMPLETE && scan.size == len;
}

/* 1 when the len bytes at p are one scalar, str, bin or ext object: it nests nothing,
 * so its size is all there is to check (in constant time, where a scan walks it). */
static int result_is_flat(const char *p, size_t len)
{
    uint8_t b = (uint8_t)p[0];
    int container = (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf);
    return !container && daffi_object_size(p, len) == len;
}

int daffi_call_result_is_flat(const daffi_call *call)
{
    return call->result.size > 0 && result_is_flat(call->result.data, call->result.size);
}

int daffi_call_pack_error(const daffi_call *call, msgpack_packer *pk, msgpack_sbuffer *sb)
{
    int with = call->details.size > 0 && is_one_map(call->details.data, call->details.size);
    if (msgpack_pack_array(pk, with ? 3 : 2) != 0 || msgpack_pack_int(pk, call->error_code) != 0 ||
        daffi_pack_cstr(pk, call->error_msg) != 0)
        return -1;
    if (with && msgpack_sbuffer_write(sb, call->details.data, call->details.size) != 0)
        return -1;
    return 0;
}

/* Appends the error response of an ERROR outcome: [code, message, details] when the
 * handler packed details that are one map and fit max_message with the rest, else
 * [code, message], the message then saying why the details were dropped (a handler's
 * mistake must not make the response malformed). Returns 0 or -1 (out of memory,
 * sbuf unchanged). */
static int write_error(const daffi_call *call, uint32_t msgid, msgpack_sbuffer *sbuf,
                       const daffi_limits *lim)
{
    size_t max_message = lim->max_message;
    msgpack_packer pk;
    size_t mark = sbuf->size;
    const char *why = NULL;
    char msg[sizeof(call->error_msg) + 64];

    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    if (call->details.size > 0) {
        if (!is_one_map(call->details.data, call->details.size)) {
            why = "not one map";
        } else if (daffi_pack_response_error_details(&pk, msgid, call->error_code,
                                                     call->error_msg) == -1 ||
                   msgpack_sbuffer_write(sbuf, call->details.data, call->details.size) != 0 ||
                   daffi_pack_response_error_end(&pk) == -1) {
            sbuf->size = mark;
            return -1;
        } else if (sbuf->size - mark > max_message) {
            sbuf->size = mark;
            why = "over max_message";
        } else if (!daffi_scan_accepts(sbuf->data + mark, sbuf->size - mark, lim)) {
            sbuf->size = mark;
            why = "nests deeper than max_depth";
        } else {
            return 0;
        }
    }
    if (why != NULL)
        snprintf(msg, sizeof(msg), "%s [details dropped: %s]", call->error_msg, why);
    if (daffi_pack_response_error(&pk, msgid, call->error_code,
                                  why != NULL ? msg : call->error_msg) == -1) {
        sbuf->size = mark;
        return -1;
    }
    return 0;
}

int daffi_call_write_response(const daffi_call *call, uint32_t msgid,
                              msgpack_sbuffer *sbuf, const daffi_limits *lim)
{
    size_t max_message = lim->max_message;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    size_t mark = sbuf->size;
    if (call->outcome == DAFFI_OUTCOME_ERROR) {
        if (write_error(call, msgid, sbuf, lim) == -1)
            goto oom;
        return call->error_code;
    }
    if (call->outcome == DAFFI_OUTCOME_RAW_ERROR) {
        if (msgpack_pack_array(&pk, 4) != 0 || msgpack_pack_int(&pk, DAFFI_MSG_RESPONSE) != 0 ||
            msgpack_pack_uint32(&pk, msgid) != 0 ||
            msgpack_sbuffer_write(sbuf, call->result.data, call->result.size) != 0 ||
            msgpack_pack_nil(&pk) != 0)
            goto oom;
        return call->error_code ? call->error_code : DAFFI_E_HANDLER_ERROR;
    }
    if (call->outcome == DAFFI_OUTCOME_RESULT) {
        /* the envelope around a result takes at least 4 bytes: rule out the hopeless
         * case before copying the result, measure the exact size after */
        if (call->result.size + 4 > max_message)
            goto too_large;
        if (daffi_pack_response_ok(&pk, msgid) == -1 ||
            msgpack_sbuffer_write(sbuf, call->result.data, call->result.size) != 0)
            goto oom;
        if (sbuf->size - mark > max_message) {
            sbuf->size = mark;
            goto too_large;
        }
        /* what we send must pass the checks we make on what we receive: a handler's
         * result nesting deeper than max_depth (echo(a, b) of two 32-deep values) would
         * be refused by any peer with the same limits */
        if (call->result.size > 1 && !result_is_flat(call->result.data, call->result.size) &&
            !daffi_scan_accepts(sbuf->data + mark, sbuf->size - mark, lim)) {
            sbuf->size = mark;
            char msg[160];
            size_t first = daffi_object_size(call->result.data, call->result.size);
            if (first != call->result.size)
                snprintf(msg, sizeof(msg), "the result is not one MessagePack object (%zu "
                         "bytes, %s)", call->result.size,
                         first == 0 ? "its first object is cut short" : "bytes after its first");
            else
                snprintf(msg, sizeof(msg), "the result nests deeper than max_depth (%u levels)",
                         lim->max_depth);
            if (daffi_pack_response_error(&pk, msgid, DAFFI_E_HANDLER_ERROR, msg) == -1)
                goto oom;
            return DAFFI_E_HANDLER_ERROR;
        }
        return 0;
    }
    if (daffi_pack_response_ok(&pk, msgid) == -1 || msgpack_pack_nil(&pk) != 0)
        goto oom;
    return 0;

too_large:;
    char msg[160];
    snprintf(msg, sizeof(msg), "result of %zu bytes exceeds max_message (%zu bytes)",
             call->result.size, max_message);
    if (daffi_pack_response_error(&pk, msgid, DAFFI_E_TOO_LARGE, msg) == -1)
        goto oom;
    return DAFFI_E_TOO_LARGE;
oom:
    sbuf->size = mark;
    return -1;
}

/* ---- identity -------------------------------------------------------------- */

daffi_host *daffi_call_host(const daffi_call *call)
{
    return call->host;
}

void *daffi_call_state(const daffi_call *call)
{
    return call->state;
}

struct event_base *daffi_call_loop(const daffi_call *call)
{
    return call->loop;
}

const char *daffi_call_method(const daffi_call *call)
{
    return call->method;
}

/* ---- arguments ------------------------------------------------------------- */

/* The arguments are the call's to read: decoding them on first use changes nothing a
 * handler can see, so the const call may fill its own cache. */
size_t daffi_argc(const daffi_call *call)
{
    /* not decoded yet: the array's header says (echo counts, then takes one raw) */
    uint32_t n;
    size_t off;
    if (!daffi_call_params_decoded(call) &&
        daffi_array_header(call->msg.params_raw, call->msg.params_raw_len, &n, &off) == 0)
        return n;
    const msgpack_object *p = daffi_call_params((daffi_call *)call);
    return p ? p->via.array.size : 0;
}

const msgpack_object *daffi_arg(const daffi_call *call, size_t i)
{
    const msgpack_object *p = daffi_call_params((daffi_call *)call);
    if (p == NULL || i >= p->via.array.size)
        return NULL;
    return &p->via.array.ptr[i];
}

void daffi_args_raw(const daffi_call *call, const char **p, size_t *len)
{
    *p = call->msg.params_raw;
    *len = call->msg.params_raw_len;
}

int daffi_arg_raw(const daffi_call *call, size_t i, const char **p, size_t *len)
{
    /* from the bytes alone: raw arguments need no decoded params (a load from the
     * scan) */
    if (call->msg.params_raw == NULL)
        return -1;
    return daffi_array_element(call->msg.params_raw, call->msg.params_raw_len, i, p, len);
}

int daffi_arg_int(const daffi_call *call, size_t i, int64_t *out)
{
    return daffi_obj_int(daffi_arg(call, i), out);
}

int daffi_arg_uint(const daffi_call *call, size_t i, uint64_t *out)
{
    return daffi_obj_uint(daffi_arg(call, i), out);
}

int daffi_arg_double(const daffi_call *call, size_t i, double *out)
{
    return daffi_obj_double(daffi_arg(call, i), out);
}

int daffi_arg_bool(const daffi_call *call, size_t i, int *out)
{
    return daffi_obj_bool(daffi_arg(call, i), out);
}

int daffi_arg_str(const daffi_call *call, size_t i, const char **p, size_t *len)
{
    return daffi_obj_str(daffi_arg(call, i), p, len);
}

int daffi_arg_bin(const daffi_call *call, size_t i, const char **p, size_t *len)
{
    return daffi_obj_bin(daffi_arg(call, i), p, len);
}

/* ---- outcome --------------------------------------------------------------- */

msgpack_packer *daffi_reply_packer(daffi_call *call)
{
    call->details.size = 0;
    call->result.size = 0;
    call->outcome = DAFFI_OUTCOME_RESULT;
    return &call->packer;
}

void daffi_reply_nil(daffi_call *call)
{
    msgpack_pack_nil(daffi_reply_packer(call));
}

void daffi_reply_bool(daffi_call *call, int v)
{
    msgpack_packer *pk = daffi_reply_packer(call);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void daffi_reply_int(daffi_call *call, int64_t v)
{
    msgpack_pack_int64(daffi_reply_packer(call), v);
}

void daffi_reply_uint(daffi_call *call, uint64_t v)
{
    msgpack_pack_uint64(daffi_reply_packer(call), v);
}

void daffi_reply_double(daffi_call *call, double v)
{
    msgpack_pack_double(daffi_reply_packer(call), v);
}

void daffi_reply_float(daffi_call *call, float v)
{
    msgpack_pack_float(daffi_reply_packer(call), v);
}

void daffi_reply_str(daffi_call *call, const char *p, size_t len)
{
    msgpack_packer *pk = daffi_reply_packer(call);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, p, len);
}

void daffi_reply_cstr(daffi_call *call, const char *s)
{
    daffi_reply_str(call, s, strlen(s));
}

void daffi_reply_bin(daffi_call *call, const void *p, size_t len)
{
    msgpack_packer *pk = daffi_reply_packer(call);
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, p, len);
}

void daffi_reply_object(daffi_call *call, const msgpack_object *obj)
{
    msgpack_pack_object(daffi_reply_packer(call), *obj);
}

void daffi_reply_raw(daffi_call *call, const char *p, size_t len)
{
    daffi_reply_packer(call);
    call_result_write(call, p, len);
}

void daffi_reply_error(daffi_call *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->error_msg, sizeof(call->error_msg), fmt, ap);
    va_end(ap);
    call->details.size = 0;
    call->outcome = DAFFI_OUTCOME_ERROR;
    call->error_code = code;
}

msgpack_packer *daffi_reply_error_details(daffi_call *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->error_msg, sizeof(call->error_msg), fmt, ap);
    va_end(ap);
    call->details.size = 0;
    call->outcome = DAFFI_OUTCOME_ERROR;
    call->error_code = code;
    return &call->details_packer;
}

daffi_stream_step daffi_stream_step_of(const daffi_call *call)
{
    return call->stream_step;
}

const msgpack_object *daffi_stream_chunk(const daffi_call *call)
{
    return call->stream_step == DAFFI_STREAM_CHUNK ? call->chunk : NULL;
}

uint64_t daffi_stream_index(const daffi_call *call)
{
    return call->chunk_index;
}

void daffi_stream_set_data(daffi_call *call, void *data)
{
    call->stream_data = data;
}

void *daffi_stream_data(const daffi_call *call)
{
    return call->stream_data;
}

void daffi_call_done(daffi_call *call)
{
    call->ops->done(call);
}

int daffi_call_cancelled(const daffi_call *call)
{
    return call->ops->cancelled(call);
}

void daffi_call_on_cancel(daffi_call *call, daffi_cancel_fn fn, void *arg)
{
    call->on_cancel = fn;
    call->on_cancel_arg = arg;
}

void daffi_call_fire_cancel(daffi_call *call)
{
    daffi_cancel_fn fn = call->on_cancel;
    call->on_cancel = NULL;
    if (fn != NULL)
        fn(call, call->on_cancel_arg);
}
