/*
 * conn.h - one client connection on its loop: reading and framing requests, writing
 * responses, limits, closing.
 *
 * The connection reads into its own buffer from a plain event on the socket (not a
 * bufferevent: see DESIGN.md, performance facts), frames messages with the codec's
 * scanner, hands each to dispatch, and writes the responses of one read together,
 * inline, before the loop waits again. Unsent output past max_output pauses reading,
 * so a caller that never reads cannot grow our memory.
 *
 * Ownership: a dfd_conn belongs to its loop and is freed by dfd_conn_close() (or at
 * the end of the read batch that closed it). Calls in flight hold a pointer to it that
 * closing clears.
 */
#ifndef DFD_CONN_H
#define DFD_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <daffi/rpc.h>

#include "idmap.h"
#include "loop.h"

struct dfd_call;

typedef struct dfd_conn {
    dfd_loop *loop;
    int fd;
    int is_unix;
    struct event rev;
    struct event wev;
    struct dfd_conn *prev;        /* loop's connection list */
    struct dfd_conn *next;

    char *in;                     /* read buffer */
    size_t in_start;              /* first byte not yet framed */
    size_t in_len;                /* bytes held */
    size_t in_cap;
    daffi_scan scan;              /* state of the message starting at in_start */

    msgpack_sbuffer out;          /* responses not yet written */
    size_t out_off;               /* bytes of out already written */

    unsigned pending;             /* calls in flight (requests awaiting a response) */
    struct dfd_call *calls;       /* in-flight list (requests and notifications) */

    struct dfd_member *member;    /* router: the member this connection said hello as
                                     (a reference), or NULL */
    struct dfd_worker *worker;    /* worker role: this is the connection to the router */
    uint64_t last_rx_ns;          /* when bytes last arrived (heartbeats) */
    uint32_t ping_msgid;          /* our heartbeat ping in flight on it, 0 = none */
    dfd_idmap streams;            /* streams this connection sends, by the id we gave */
    dfd_idmap member_streams;     /* router: relay streams to this member, by its id */
    uint32_t next_stream_id;
    uint64_t sub_version;         /* router: registry version when it subscribed */
    struct dfd_conn *dirty_next;  /* loop's list of connections with output to flush */

    unsigned in_batch : 1;        /* inside the read handler: defer writes and frees */
    unsigned read_paused : 1;     /* output over max_output, or peer finished sending */
    unsigned write_armed : 1;
    unsigned closing : 1;         /* close once the output is written */
    unsigned eof : 1;             /* peer shut down its sending side */
    unsigned dead : 1;            /* closed during a batch; freed at its end */
    unsigned subscribed : 1;      /* router: wants daffi.event notifications (of
                                     registry versions after sub_version) */
    unsigned dirty : 1;           /* on the loop's dirty list */
    char peer[64];                /* for logs */
} dfd_conn;

/* Takes ownership of an accepted, non-blocking fd and starts reading it on loop.
 * Returns the connection or NULL (fd closed) when out of memory. */
dfd_conn *dfd_conn_adopt(dfd_loop *loop, int fd, int is_unix);

/* Appends the response of a finished request call and unlinks the call from the
 * connection. Writes at once unless a read batch is in progress. */
void dfd_conn_answer(dfd_conn *c, struct dfd_call *call);

/* Unlinks a call from the connection without answering (notifications, calls already
 * answered by a timeout). */
void dfd_conn_forget(dfd_conn *c, struct dfd_call *call);

/* Appends an error response for msgid. Writes at once unless in a batch. */
void dfd_conn_error(dfd_conn *c, uint32_t msgid, int code, const char *message);

/* Appends an already-encoded response (e.g. a control method's). */
void dfd_conn_write_raw(dfd_conn *c, const char *p, size_t len);

/* The same for an encoded error response (counted as one). */
void dfd_conn_write_raw_error(dfd_conn *c, const char *p, size_t len);

/* Appends an already-encoded message that is not a response (an event, a hello). */
void dfd_conn_send_raw(dfd_conn *c, const char *p, size_t len);

/* Appends a request (or, with notify, a notification) whose params are already
 * encoded: [0, msgid, method, params] or [2, method, params]. */
void dfd_conn_send_request(dfd_conn *c, uint32_t msgid, const char *method,
                           size_t method_len, const char *params_raw, size_t params_len,
                           int notify);

/* Answers a request call at once (the call was never linked). Does not free it. */
void dfd_conn_answer_now(dfd_conn *c, struct dfd_call *call);

/* Writes the output of every connection that gathered some during a loop batch. */
void dfd_conn_flush_dirty(dfd_loop *loop);

/* Links a new call into the connection's in-flight list; counts it as pending when it
 * is a request. */
void dfd_conn_link(dfd_conn *c, struct dfd_call *call);

/* Closes now, or after the output is flushed when graceful is 1. Detaches every call
 * in flight (their late completions are discarded). */
void dfd_conn_close(dfd_conn *c, int graceful);

/* Draining: close the connection if it has nothing in flight; otherwise it closes
 * after its last response is written. */
void dfd_conn_drain(dfd_conn *c);

#endif /* DFD_CONN_H */
