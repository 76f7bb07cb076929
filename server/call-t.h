/*
 * call-t.h - a call in progress inside daffid (types only).
 *
 * dfd_call embeds the SDK's daffi_call (arguments, outcome; see sdk/src/callobj-t.h) and
 * adds what the server needs: the owning loop, the connection (NULL once the caller
 * left), list links, the callback (holding a reference on its plugin generation), the
 * deadline timer and the completion state.
 *
 * Ownership: a call belongs to its loop from creation to dfd_call_free(); only that
 * loop frees it. While a handler runs (on a loop or the blocking pool) or holds the
 * call pending, the handler may touch its daffi_call part. `state` decides, by
 * compare-and-swap, who completes the call.
 */
#ifndef DFD_CALL_T_H
#define DFD_CALL_T_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "callobj-t.h" /* sdk/src: daffi_call */

struct dfd_conn;
struct dfd_loop;
struct dfd_callback;
struct dfd_link;
struct dfd_cast;
struct dfd_stream;

struct dfd_call;

/* What a call's role adds to its life, where the default (answer the caller's
 * connection; TIMEOUT at the deadline) is not the whole story. Set by the role that
 * made the call (router, fanout, stream relays); NULL members keep the default. All
 * run on the owner loop. */
typedef struct dfd_call_hooks {
    /* The outcome is final: report it instead of answering a connection (a cast's
     * child reports to its cast). The call is freed afterwards. */
    void (*report)(struct dfd_call *call);
    /* Just before the answer is written (a relay stream's open registers the stream
     * under the caller's id). */
    void (*before_answer)(struct dfd_call *call);
    /* The deadline passed: instead of the default TIMEOUT (a cast answers with what
     * it has, a wait names who is missing). */
    void (*deadline)(struct dfd_call *call);
    /* The default TIMEOUT was decided with message msg: report it instead of writing
     * it to the connection (a cast's child). */
    void (*timed_out)(struct dfd_call *call, const char *msg);
    /* The caller's connection closed while the call waits for something other than a
     * handler (a daffi.wait): drop it now. May free the call. */
    void (*caller_gone)(struct dfd_call *call);
} dfd_call_hooks;

/* Where a call went, at its deadline: write the TIMEOUT message into msg and stop
 * waiting there (a forwarded call is forgotten by its member). */
typedef void (*dfd_call_expire_fn)(struct dfd_call *call, char *msg, size_t size);

/* What a call does: run a local handler, go to a member (router), fan out (cast), or
 * wait for members to join. */
typedef enum dfd_call_kind {
    DFD_KIND_LOCAL = 0,
    DFD_KIND_FORWARD,
    DFD_KIND_CAST,
    DFD_KIND_WAIT
} dfd_call_kind;

typedef enum dfd_call_state {
    DFD_CALL_NEW = 0,       /* created, not started */
    DFD_CALL_QUEUED,        /* waiting for a concurrency slot of its plugin */
    DFD_CALL_RUNNING,       /* inside the handler (a loop or the blocking pool) */
    DFD_CALL_DONE_EARLY,    /* daffi_call_done() ran before the handler returned */
    DFD_CALL_PENDING,       /* handler returned DAFFI_PENDING; done() not yet */
    DFD_CALL_COMPLETING     /* outcome final; the owner loop answers and frees it */
} dfd_call_state;

typedef struct dfd_call {
    daffi_call base;                /* first: a daffi_call* is a dfd_call* */
    struct dfd_loop *loop;          /* owner */
    struct dfd_conn *conn;          /* NULL once the caller left */
    struct dfd_call *conn_prev;     /* the connection's in-flight list */
    struct dfd_call *conn_next;
    struct dfd_call *next;          /* plugin queue, loop mailbox or free list */
    const struct dfd_callback *cb;  /* LOCAL: holds a reference on cb->plugin */
    dfd_call_kind kind;
    const dfd_call_hooks *hooks;    /* NULL: the default life */
    dfd_call_expire_fn expire;      /* NULL: a local call */
    uint64_t timeout_ms;            /* deadline (0 = none) */
    struct dfd_link *link;          /* FORWARD: the member link it went to (a reference) */
    uint32_t member_msgid;          /* FORWARD: our msgid on that link's connection */
    int to_member;                  /* FORWARD: `to` named its member: no other serves it */
    unsigned fwd_slot;              /* FORWARD: callstat slot + 1 (0: not counted) */
    struct dfd_cast *cast;          /* a cast's child: the cast it reports to */
    unsigned cast_slot;
    struct dfd_cast *cast_parent;   /* CAST: the cast this call answers for */
    struct dfd_stream *stream;      /* router: a relay stream's open call (a reference) */

    uint32_t msgid;
    int notify;                     /* 1: a notification, no response */
    atomic_int state;               /* dfd_call_state */
    atomic_int cancelled;           /* caller gone or timed out: reply discarded */
    int answered;                   /* a response (e.g. TIMEOUT) was already sent */
    int holds_slot;                 /* counted in its plugin's running */
    uint64_t start_ns;              /* monotonic, for latency and the access log */
    size_t mem_bytes;               /* its request, as its loop holds it in the memory
                                       budget from its link to a connection until it
                                       is freed (budget.h); 0: not held */
    int mem_params;                 /* mem_bytes counts its decoded params */
    int timer_armed;
    struct event timer;             /* deadline of a call that did not finish inline */
} dfd_call;

#endif /* DFD_CALL_T_H */
