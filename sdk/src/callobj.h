/*
 * callobj.h - host-side life cycle of a daffi_call (see callobj-t.h). Not a public header.
 */
#ifndef DAFFI_CALLOBJ_H
#define DAFFI_CALLOBJ_H

#include "callobj-t.h"

/* Prepares a zeroed call for use; pairs with daffi_call_destroy(). */
void daffi_call_init(daffi_call *call);
/* Releases what the call owns (bytes, zone, result). */
void daffi_call_destroy(daffi_call *call);
/* Makes the call ready for reuse, keeping buffers up to a modest size. */
void daffi_call_reset(daffi_call *call);

/* Copies one complete, scanned request or notification of len bytes into the call and
 * decodes it. Returns 0, or -1 (out of memory, or bytes that do not decode).
 *
 * With scan (the scanner's state for exactly these bytes, COMPLETE), the envelope
 * comes from it and the params are left encoded until the first daffi_arg() (or
 * daffi_call_params()): a handler that takes its arguments raw (echo, a router's
 * forward) never pays for objects it does not read. Any thread may be the first to
 * ask (a state word lets exactly one decode, the others wait for it); a host that
 * gives the call to other threads decodes it first (daffi_call_params) when it must
 * account for the memory on its own thread. scan NULL: everything decoded now. */
int daffi_call_load(daffi_call *call, const char *bytes, size_t len, const daffi_scan *scan);

/* 1 when the call's result is one scalar, str, bin or ext object of exactly its size
 * (nothing nests in it, so it needs no depth check before it is sent). */
int daffi_call_result_is_flat(const daffi_call *call);

/* daffi_call_load without the copy: the call takes ownership of bytes (a malloc'd
 * block of cap bytes whose first len are the message) and frees it (even on error). */
int daffi_call_adopt(daffi_call *call, char *bytes, size_t cap, size_t len,
                     const daffi_scan *scan);

/* The call's params array, decoded now if it was loaded lazily and nobody asked yet;
 * NULL when the zone ran out of memory (the handler then sees no arguments). The
 * objects live in the call's zone until it is reset. */
const msgpack_object *daffi_call_params(daffi_call *call);

/* 1 when the call's params are decoded (daffi_call_params has nothing left to do). */
int daffi_call_params_decoded(const daffi_call *call);

/* Appends the call's response envelope for msgid to sbuf: the result (or nil), or the
 * error. When the whole response would exceed lim->max_message it appends a TOO_LARGE
 * error instead, and a result nesting deeper than lim->max_depth is answered
 * HANDLER_ERROR (what we send passes the checks we make on what we receive). Returns
 * the error code sent (0 for a result) or -1 when out of memory. */
int daffi_call_write_response(const daffi_call *call, uint32_t msgid,
                              msgpack_sbuffer *sbuf, const daffi_limits *lim);

/* Packs an ERROR outcome's error array: [code, message, details] when the handler gave
 * details that are one map, else [code, message] (pk writes into sb). Returns 0 or -1.
 * For hosts that collect outcomes (a router's cast). */
int daffi_call_pack_error(const daffi_call *call, msgpack_packer *pk, msgpack_sbuffer *sb);

/* Sets the outcome to an error with a plain message (no formatting). */
void daffi_call_set_error(daffi_call *call, int code, const char *message);

/* Sets the outcome to an encoded error array ([code, message(, details)]) that is
 * relayed unchanged; code is its code, kept for counters. */
void daffi_call_set_raw_error(daffi_call *call, int code, const char *p, size_t len);

/* Runs the handler's cancel callback (daffi_call_on_cancel) once, if it set one. The
 * host calls it on the call's loop, for a pending call only; the call may be
 * completed (and freed by the host) before this returns. */
void daffi_call_fire_cancel(daffi_call *call);

/* Rewrites a loaded daffi.call / daffi.cast request so that it looks like a direct
 * call: the method becomes params[0] and the params become params[1] (an array).
 * Returns 0, or -1 when params[0] is not a str/bin or params[1] is not an array. */
int daffi_call_unwrap(daffi_call *call);

#endif /* DAFFI_CALLOBJ_H */
