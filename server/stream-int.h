/*
 * stream-int.h - what the stream rooms share (stream.c, stream-local.c,
 * stream-relay.c): the stream record, its ops, and the small message helpers.
 */
#ifndef DFD_STREAM_INT_H
#define DFD_STREAM_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "call-t.h"
#include "conn.h"
#include "members.h"
#include "stream.h"

#define STREAM_WINDOW_DEFAULT 16u
#define STREAM_WINDOW_MAX 1024u

/* What the receiving side does with the sender's steps: a local handler, or a relay
 * to a member (router). Run on the sender's loop. */
typedef struct dfd_stream_ops {
    /* daffi.chunk [id, data] from the sender. */
    void (*chunk)(dfd_conn *c, dfd_stream *s, dfd_call *chunk);
    /* daffi.end (abort = 0) or daffi.abort from the sender; the stream left the
     * connection's table and its reference is the callee's. Returns the control
     * convention (0: caller frees call; 1: taken over). */
    int (*finish)(dfd_conn *c, dfd_call *call, dfd_stream *s, int abort);
    /* The sender's connection closed; the table's reference is the callee's. */
    void (*sender_gone)(dfd_conn *c, dfd_stream *s);
} dfd_stream_ops;

struct dfd_stream {
    atomic_long refs;
    const dfd_stream_ops *ops;
    unsigned window;

    /* local: on the receiving connection's loop */
    dfd_call *call;             /* the open call: handler, arguments, outcome */
    unsigned consumed;          /* chunks consumed since the last credit */
    int failed;                 /* an error is set in call's outcome */

    /* relay */
    dfd_loop *caller_loop;
    dfd_conn *caller;           /* on caller_loop only; NULL once it left */
    uint32_t caller_id;
    dfd_link *link;             /* the member link it goes to (a reference) */
    uint32_t member_id;
    atomic_uint outstanding;    /* chunks sent to the member minus credit returned */
    atomic_int dead;            /* the member went away or aborted */
    atomic_int overrun;         /* the sender ignored its window */

    /* relay over NATS (nats-gateway.c), on the caller's loop */
    char *nats_to;              /* the member's stream subject (owned) */
    uint32_t nats_id;           /* the id its steps come back under */
};

/* A new stream with one reference, or NULL. */
dfd_stream *dfd_stream_new(const dfd_stream_ops *ops);
void dfd_stream_retain(dfd_stream *s);

/* A fresh id for a stream the connection sends (its table's key). */
uint32_t dfd_stream_new_id(dfd_conn *c);
/* Packs [2, method, [id, k]] (k < 0: [id] only) into sb. */
void dfd_stream_pack_note(msgpack_sbuffer *sb, const char *method, uint32_t id, int64_t k);
/* Sends that notification on c. */
void dfd_stream_send_note(dfd_conn *c, const char *method, uint32_t id, int64_t k);
/* Reads a uint32 argument. Returns 0 or -1. */
int dfd_stream_arg_u32(const dfd_call *call, size_t i, uint32_t *out);

/* Opens a local stream for an (unwrapped) daffi.stream call (stream-local.c). Same
 * return convention as a control method. */
int dfd_stream_local_open(dfd_conn *c, dfd_call *call, unsigned window);

/* Router (stream-relay.c): opens a relay of daffi.stream to a member; a credit or an
 * abort the member sent for one of its relayed streams (abort = 1); a member's
 * connection closed (its relays fail at their callers). */
int dfd_stream_relay_open(dfd_conn *c, dfd_call *call, unsigned window, const char *to,
                          size_t to_len);
void dfd_stream_relay_from_member(dfd_conn *c, dfd_call *call, int abort);
void dfd_stream_relay_member_gone(dfd_conn *c, dfd_stream *s);

/* What every relay shares (a router's, a NATS gateway's), stream-relay.c: */
/* Reads a receiver's answer to an open, {"stream": id, "window": n}, from call's
 * result into s (member_id; window lowered to n). Returns 0, or -1 with PROTOCOL set on
 * the call. */
int dfd_stream_relay_read_opened(dfd_call *call, dfd_stream *s);
/* Registers s in the caller's table under a new id of c and rewrites the open's
 * result with it. Returns 0, or -1 (out of memory: OVERLOADED set on the call). */
int dfd_stream_relay_answer_opened(dfd_conn *c, dfd_call *call, dfd_stream *s);
/* Packs the caller's chunk as [2, "daffi.chunk", [member id, data]] into sb when the
 * window allows it (counted outstanding). Returns 0, or -1: dropped (the stream is dead
 * or was overrun: then it fails, logged). */
int dfd_stream_relay_pack_chunk(dfd_conn *c, dfd_stream *s, const dfd_call *chunk,
                                msgpack_sbuffer *sb);
/* Credit k came back from the receiver: fewer chunks outstanding. */
void dfd_stream_relay_credited(dfd_stream *s, uint64_t k);
/* The end of a stream that cannot end well (dead: UNAVAILABLE; overrun: PROTOCOL),
 * answered to the caller unless it is an abort or a notification. */
void dfd_stream_relay_refuse_end(dfd_conn *c, dfd_call *call, int abort, int dead);

#endif /* DFD_STREAM_INT_H */
