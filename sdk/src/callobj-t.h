/*
 * callobj-t.h - the layout of daffi_call, shared by the hosts that run handlers (daffid,
 * and libdaffi for callbacks a client exposes). Not a public header.
 *
 * A daffi_call owns a copy of the request bytes, the zone its decoded params live in
 * and the buffer its result is packed into, so it can outlive the read that produced
 * it. The host embeds it in its own call record and supplies `ops` for what differs
 * between hosts (how completion is delivered, whether the caller is gone).
 */
#ifndef DAFFI_CALLOBJ_T_H
#define DAFFI_CALLOBJ_T_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <daffi/plugin.h>
#include <daffi/rpc.h>

typedef struct daffi_call_ops {
    /* daffi_call_done(): deliver the outcome (any thread). */
    void (*done)(daffi_call *call);
    /* daffi_call_cancelled(): 1 when the reply would be discarded. */
    int (*cancelled)(const daffi_call *call);
    /* Optional: before the result grows, room in sb for n more bytes (any thread; a
     * host keeps large blocks for reuse). Returns 0 (room made, or left to realloc),
     * -1 when out of memory. */
    int (*reserve)(daffi_call *call, msgpack_sbuffer *sb, size_t n);
} daffi_call_ops;

typedef enum daffi_outcome {
    DAFFI_OUTCOME_NONE = 0,  /* nothing set: answers nil */
    DAFFI_OUTCOME_RESULT,    /* one packed object in `result` */
    DAFFI_OUTCOME_ERROR,     /* error_code and error_msg */
    DAFFI_OUTCOME_RAW_ERROR  /* an encoded error array in `result` (relayed as is) */
} daffi_outcome;

struct daffi_call {
    const daffi_call_ops *ops;
    daffi_host *host;           /* the plugin instance, NULL for client callbacks */
    void *state;                /* what the instance's init() returned */
    struct event_base *loop;    /* the loop that owns the call */

    char *bytes;                /* owned copy of the request message */
    size_t bytes_len;
    size_t bytes_cap;
    char *method;               /* NUL-terminated copy, in zone */
    msgpack_zone zone;          /* decoded params live here */
    daffi_msg msg;              /* msg.params: read through daffi_call_params() */
    atomic_int params_state;    /* CALL_PARAMS_* (callobj.c): a lazy load decodes its
                                   params once, on the first thread that asks */

    daffi_outcome outcome;
    msgpack_sbuffer result;     /* owned */
    msgpack_packer packer;      /* writes into result */
    int error_code;
    char error_msg[256];
    /* DAFFI_OUTCOME_ERROR: the details map daffi_reply_error_details() gave the handler
     * a packer for (empty: none). Owned; checked to be one map when written. */
    msgpack_sbuffer details;
    msgpack_packer details_packer;

    /* streams (DAFFI_CB_STREAM handlers) */
    daffi_stream_step stream_step;
    const msgpack_object *chunk;  /* CHUNK step: the chunk, valid during the step */
    uint64_t chunk_index;
    void *stream_data;            /* the handler's, via daffi_stream_set_data */

    /* daffi_call_on_cancel */
    daffi_cancel_fn on_cancel;
    void *on_cancel_arg;
};

#endif /* DAFFI_CALLOBJ_T_H */
