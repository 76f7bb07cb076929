/*
 * conn.h - one connection on its loop: reading and framing messages, writing output,
 * limits, closing. The transport knows nothing of roles.
 *
 * The connection reads into its own buffer from a plain event on the socket (not a
 * bufferevent: see DESIGN.md, performance facts), frames messages with the codec's
 * scanner and hands each to its owner's `message` handler. The replies of one read
 * are written together, inline, before the loop waits again. Unsent output past
 * max_output pauses reading, so a caller that never reads cannot grow our memory.
 *
 * Owners. Whoever adopts a connection sets its handlers (dfd_conn_ops), the way nginx
 * sets c->read->handler: the service dispatch for an accepted caller, the router's
 * membership once a caller said hello, the worker role for its link to the router.
 * `owner` is that party's own state (a member, the worker).
 *
 * Lifetime (the rule that makes every walk safe). No dfd_conn_* function frees a
 * connection, and nothing a handler, timer or mail can reach does. Closing marks the
 * connection dead at once: its events are removed, its socket closed, its calls
 * detached (their late completions are discarded), the dirty list and the owner
 * (ops->closed) let go of it. The memory stays valid, and the connection stays on its
 * loop's list with `dead` set, until the loop's reap event at the end of the pass
 * releases it, as Redis frees clients asynchronously. A walk over loop->conns skips
 * dead entries; a pointer to a connection held on the stack stays valid for the pass;
 * a pointer kept across passes must be cleared by the owner's `closed` handler.
 * Reads, mails and timers all batch their output the same way (loop.h).
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
struct dfd_auth_rule;
struct ssl_st;
typedef struct dfd_conn dfd_conn;

/* What the owner of a connection does with it. message is required; the rest may be
 * NULL. None of them may free c. */
typedef struct dfd_conn_ops {
    /* One complete message of size bytes (kind: request, response or notification;
     * msgid valid for requests and responses). */
    void (*message)(dfd_conn *c, const char *bytes, size_t size, int kind, uint32_t msgid);
    /* c is dead: detach what the owner keeps of it. May answer other connections. */
    void (*closed)(dfd_conn *c);
    /* 1 while something besides c's own calls keeps it open (a member's forwarded
     * calls, a withdrawal the router has not acknowledged). */
    int (*busy)(const dfd_conn *c);
    /* The loop drains: NULL closes c once idle (dfd_conn_drain). */
    void (*drain)(dfd_conn *c);
    /* A fresh msgid for a request we send on c (heartbeat pings). */
    uint32_t (*next_msgid)(dfd_conn *c);
    /* Who the peer is, for logs (a member's name, "router"). */
    const char *(*describe)(const dfd_conn *c);
} dfd_conn_ops;

struct dfd_conn {
    dfd_loop *loop;
    int fd;                       /* -1 once dead */
    int is_unix;
    struct event rev;
    struct event wev;
    struct dfd_conn *prev;        /* loop's connection list */
    struct dfd_conn *next;
    const dfd_conn_ops *ops;      /* set by the adopter */
    void *owner;                  /* the owner's state for this connection */

    char *in;                     /* read buffer */
    size_t in_start;              /* first byte not yet framed */
    size_t in_len;                /* bytes held */
    size_t in_cap;
    daffi_scan scan;              /* state of the message starting at in_start */

    msgpack_sbuffer out;          /* output not yet written */
    size_t out_off;               /* bytes of out already written */
    char *tail;                   /* a large result leaving after out, not copied into
                                     it (a malloc'd block the connection owns), or NULL */
    size_t tail_len, tail_off, tail_cap;

    unsigned pending;             /* calls in flight (requests awaiting a response) */
    struct dfd_call *calls;       /* in-flight list (requests and notifications) */

    /* the memory budget (budget.h): what this connection holds */
    size_t mem_in;                /* read buffer beyond its base size */
    size_t mem_out;               /* output buffer, while some of it waits */
    size_t mem_calls;             /* requests of its calls in flight */
    struct dfd_conn *stuck_prev;  /* loop's list of connections whose output waits */
    struct dfd_conn *stuck_next;
    uint64_t progress_ns;         /* when its waiting output last moved */
    size_t mem_wait;              /* mem_paused: the read buffer growth it waits for */
    /* timeouts (sweep.h), in sweeps of its loop */
    uint64_t active_tick;         /* last complete message, or last seen busy */
    uint64_t partial_tick;        /* when the message now arriving began */

    /* heartbeats (heartbeat.h): kept when track_rx is set by the owner */
    uint64_t last_rx_ns;          /* when bytes last arrived */
    uint32_t ping_msgid;          /* our heartbeat ping in flight on it, 0 = none */

    /* streams (stream.h) */
    dfd_idmap streams;            /* streams this connection sends, by the id we gave */
    dfd_idmap member_streams;     /* router: relay streams to this member, by its id */
    uint32_t next_stream_id;
    /* membership events (router) */
    uint64_t sub_version;         /* registry version when it subscribed */
    struct dfd_conn *dirty_next;  /* loop's list of connections with output to flush */

    unsigned in_batch : 1;        /* inside the read handler: writes wait for its end */
    unsigned read_paused : 1;     /* output over max_output, or peer finished sending */
    unsigned write_armed : 1;
    unsigned closing : 1;         /* close once the output is written */
    unsigned eof : 1;             /* peer shut down its sending side */
    unsigned dead : 1;            /* closed; released at the end of the pass */
    unsigned dirty : 1;           /* on the loop's dirty list */
    unsigned track_rx : 1;        /* owner wants last_rx_ns kept (heartbeats) */
    unsigned keep_serving : 1;    /* draining: still serve this peer's requests (the
                                     worker's link: its router sends what it routed) */
    unsigned subscribed : 1;      /* router: wants daffi.event notifications (of
                                     registry versions after sub_version) */
    unsigned stuck : 1;           /* on the loop's list of connections whose output
                                     waits (budget.h) */
    unsigned partial : 1;         /* part of a message is buffered (read_timeout) */
    unsigned mem_paused : 1;      /* not read until the budget has room (budget.h) */
    unsigned in_taken : 1;        /* the message being dispatched took the read buffer */
    unsigned internal : 1;        /* a link between daffid and its own child process:
                                     no idle or read timeout and never shed, its
                                     supervisor watches it (set by the adopter) */
    /* TLS (conn-tls.h): NULL for a plaintext connection */
    struct ssl_st *tls;
    uint64_t open_tick;           /* the sweep tick it was adopted at (handshake and
                                     authentication timeouts) */
    unsigned tls_ready : 1;       /* the handshake finished */
    unsigned tls_server : 1;      /* we accepted it (else: our link to a router) */
    unsigned tls_peeked : 1;      /* its first byte was seen to start a TLS record */
    unsigned tls_hs_write : 1;    /* the handshake waits for the socket to take output */
    /* authentication (auth.h) */
    unsigned auth_pending : 1;    /* [auth] require and not authenticated yet: nothing
                                     but daffi.auth and daffi.ping */
    unsigned char auth_failures;  /* daffi.auth refused on it so far */
    char *identity;               /* who it authenticated as (token name or certificate
                                     name); owned; NULL: anonymous */
    /* what its identity may do ([auth] call.ID, serve.ID, member.ID; auth.h): NULL
                                     when no rule of that kind is written */
    const struct dfd_auth_rule *may_call;
    const struct dfd_auth_rule *may_serve;
    const struct dfd_auth_rule *may_member;
    struct dfd_auth_rules *rules; /* the reading of the rules may_* point into; one
                                     reference (auth.c); NULL: not a listener's */
    unsigned rules_gen;           /* the dfd_auth gen that reading had */
    char peer[64];                /* for logs: address, or what the owner named it */
};

/* Output bytes not written yet (out and its tail). */
static inline size_t dfd_conn_backlog(const struct dfd_conn *c)
{
    return c->out.size - c->out_off + c->tail_len - c->tail_off;
}

/* Takes ownership of a connected, non-blocking fd and starts reading it on loop, owned
 * by ops/owner. Returns the connection, or NULL (fd closed) when out of memory. The
 * caller counts it in srv->conns first; closing uncounts it. */
dfd_conn *dfd_conn_adopt(dfd_loop *loop, int fd, int is_unix, const dfd_conn_ops *ops,
                         void *owner);
/* Hands c to another owner (e.g. a caller that said hello becomes a member). */
void dfd_conn_set_owner(dfd_conn *c, const dfd_conn_ops *ops, void *owner);

/* Appends the response of a finished request call and unlinks the call from the
 * connection. Writes at once unless a batch is in progress. */
void dfd_conn_answer(dfd_conn *c, struct dfd_call *call);

/* Unlinks a call from the connection without answering (notifications, calls already
 * answered by a timeout). */
void dfd_conn_forget(dfd_conn *c, struct dfd_call *call);

/* Appends an error response for msgid. Writes at once unless in a batch. */
void dfd_conn_error(dfd_conn *c, uint32_t msgid, int code, const char *message);

/* The read buffer, when it holds exactly the one large message at bytes (size bytes,
 * being dispatched now) and nothing else: c reads on into a new buffer, and the caller
 * owns the returned malloc'd block of *cap bytes (its request, without a copy). NULL
 * otherwise. */
char *dfd_conn_take_input(dfd_conn *c, const char *bytes, size_t size, size_t *cap);

/* The scanner's state for the message at bytes (size bytes) when it is the one c is
 * dispatching now (its envelope read, daffi_call_load), else NULL. Valid until the
 * owner's message callback returns. */
const daffi_scan *dfd_conn_scan_of(const dfd_conn *c, const char *bytes, size_t size);

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

/* Releases the loop's dead connections (its reap event, and loop teardown). */
void dfd_conn_reap(dfd_loop *loop);

/* Links a new call into the connection's in-flight list; counts it as pending when it
 * is a request. */
void dfd_conn_link(dfd_conn *c, struct dfd_call *call);

/* Closes now (c is dead when this returns), or, with graceful, once the output is
 * written. Never frees c (see "Lifetime"). Harmless on a dead connection. */
void dfd_conn_close(dfd_conn *c, int graceful);

/* Draining: close the connection if it has nothing in flight; otherwise it closes
 * after its last response is written. */
void dfd_conn_drain(dfd_conn *c);

/* The memory budget has room for what c waited for (mem_paused): reads it again, unless
 * its output keeps it paused (budget.c). */
void dfd_conn_memory_resume(dfd_conn *c);

/* 1 when nothing keeps c open: no call of its own, and its owner is not busy. */
int dfd_conn_idle(const dfd_conn *c);

#endif /* DFD_CONN_H */
