/*
 * stream.h - streams (sdk/PROTOCOL.md, "Streams"): ordered chunks to one receiver with
 * credit-based backpressure and one final result.
 *
 * A connection holds the streams it sends in a table keyed by the id it was given. A
 * local stream (stream-local.c) keeps the open call (handler, arguments, state) for
 * the stream's life and runs the handler's steps inline as chunks are read, returning
 * credit as it goes. In the router, a relay (stream-relay.c) joins the caller's
 * connection (its own id) to the member's connection (the member's id); chunks go one
 * way and credit the other, each on the loop that owns the connection, by mail when
 * the two loops differ. A relay never holds more than `window` chunks: a sender past
 * its window loses the chunk and the stream fails. stream.c reads the control methods
 * and hands each step to the stream's own ops.
 *
 * Ownership: streams are reference counted (each table holding it, the open call, and
 * every mail carrying it hold one).
 */
#ifndef DFD_STREAM_H
#define DFD_STREAM_H

#include "call-t.h"
#include "conn.h"

typedef struct dfd_stream dfd_stream;

/* The control methods (control.h's convention): daffi.stream, daffi.chunk,
 * daffi.end, daffi.abort, daffi.credit on connection c (any role). */
int dfd_stream_open(dfd_conn *c, dfd_call *call);
int dfd_stream_chunk(dfd_conn *c, dfd_call *call);
int dfd_stream_end(dfd_conn *c, dfd_call *call);
int dfd_stream_abort(dfd_conn *c, dfd_call *call);
int dfd_stream_credit(dfd_conn *c, dfd_call *call);

/* The member accepted a relayed stream (router, member's loop, as its answer arrives):
 * record its id and window and register the stream on its connection at once, so a
 * credit or abort it sends right after finds the stream. */
void dfd_stream_relay_member_opened(dfd_conn *c, dfd_call *call);

/* A connection is closing: abort the streams it sends (local ones see the ABORT step;
 * relays tell the other side) and fail the relays it receives as a member. */
void dfd_stream_conn_closed(dfd_conn *c);

void dfd_stream_release(dfd_stream *s);

#endif /* DFD_STREAM_H */
