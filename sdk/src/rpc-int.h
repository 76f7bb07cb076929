/*
 * rpc-int.h - the decoder's two halves for a host that decodes a request's params only
 * when a handler asks for them (callobj.c). Not a public header.
 */
#ifndef DAFFI_RPC_INT_H
#define DAFFI_RPC_INT_H

#include <stddef.h>

#include <msgpack.h>
#include <daffi/rpc.h>

/* daffi_msg_decode() without a request's or notification's params: out->params is
 * NULL, out->params_raw and params_raw_len locate them (a response decodes whole).
 * For bytes daffi_scan_feed() accepted, so the params are known to be well formed.
 * Returns 0 or -1 as daffi_msg_decode(). */
int daffi__msg_decode_head(const char *buf, size_t size, msgpack_zone *zone, daffi_msg *out);

/* Decodes the len bytes at raw, exactly one array (a message's params_raw), into
 * *out, its containers allocated from zone (the caller's). Returns 0, or -1 when the
 * bytes are not one array or the zone is out of memory. */
int daffi__params_decode(const char *raw, size_t len, msgpack_zone *zone, msgpack_object *out);

#endif /* DAFFI_RPC_INT_H */
