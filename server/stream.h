/*
 * stream.h - streams (sdk/PROTOCOL.md, "Streams"): ordered chunks to one receiver with
 * credit-based backpressure and one final result.
 *
 * A connection holds its streams in a table keyed by the id it gave the sender. A
 * local stream keeps the open call (handler, arguments, state) for the stream's life
 * and runs the handler's steps inline as chunks are read, returning credit as it goes.
 * In the router, a relay stream joins the caller's connection (its own id) to the
 * member's connection (the member's id); chunks go one way and credit the other, each
 * on the loop that owns the connection, by mail when the two loops differ. A relay
 * never holds more than `window` chunks: a sender past its window loses the chunk and
 * the stream fails.
 *
 * Ownership: streams are reference counted (each table holding it, the open call, and
 * every mail carrying it hold one).
 */
#ifndef DFD_STREAM_H
#define DFD_STREAM_H

#include <stdatomic.h>
#include <stdint.h>

#include "call-t.h"
#include "conn.h"
#include "members.h"

typedef struct dfd_stream dfd_stream;

/* daffi.stream, daffi.chunk, daffi.end, daffi.abort, daffi.credit on connection c
 * (any role). Returns 0 when the call was answered or consumed (the caller frees it),
 * 1 when the call was taken over. */
int dfd_stream_control(dfd_conn *c, dfd_call *call, const char *step);

/* The member accepted a relayed stream (router, member's loop, as its answer arrives):
 * record its id and window and register the stream on its connection at once, so a
 * credit or abort it sends right after finds the stream. */
void dfd_stream_relay_member_opened(dfd_conn *c, dfd_call *call);

/* The open call of a relay stream finished (router, caller's loop, before the answer):
 * register the stream under the caller's own id and rewrite the result with it. */
void dfd_stream_relay_opened(dfd_call *call);

/* A connection is closing: abort its streams (local ones see the ABORT step; relays
 * tell the other side). */
void dfd_stream_conn_closed(dfd_conn *c);

/* DFD_MAIL_STREAM handler. */
void dfd_stream_on_mail(dfd_loop *loop, void *mail);
/* Frees an undelivered DFD_MAIL_STREAM mail (loop teardown). */
void dfd_stream_mail_free(void *mail);

void dfd_stream_release(dfd_stream *s);

#endif /* DFD_STREAM_H */
