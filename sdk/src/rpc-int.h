/*
 * rpc-int.h - for a host that decodes a request's params only when a handler asks for
 * them (callobj.c): the envelope from the scanner, the params later. Not a public
 * header.
 */
#ifndef DAFFI_RPC_INT_H
#define DAFFI_RPC_INT_H

#include <stddef.h>

#include <msgpack.h>
#include <daffi/rpc.h>

/* The envelope of the request or notification that s scanned COMPLETE, without
 * reading it again: kind, msgid, method and params_raw/params_raw_len pointing into
 * buf (the message's first byte: the bytes s was fed, or a copy of them); out->params
 * is NULL (daffi__params_decode). Returns 0, or -1 for a response or a scan that is not
 * complete. */
int daffi__scan_envelope(const daffi_scan *s, const char *buf, daffi_msg *out);

/* Decodes the len bytes at raw, exactly one array (a message's params_raw), into
 * *out, its containers allocated from zone (the caller's). Returns 0, or -1 when the
 * bytes are not one array or the zone is out of memory. */
int daffi__params_decode(const char *raw, size_t len, msgpack_zone *zone, msgpack_object *out);

#endif /* DAFFI_RPC_INT_H */
