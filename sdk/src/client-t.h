/*
 * client-t.h - the data model of a libdaffi client (types only; the functions are in
 * client_int.h). Not installed.
 *
 * One struct daffi_client serves both kinds of client. The connection part (socket,
 * buffers, msgid counter, limits, counters, reconnect schedule) is common; a
 * synchronous client drives it with poll() on the calling thread (client_sync.c), an
 * asynchronous one (as != NULL) with libevent events on the caller's loop
 * (client_async.c), which adds the table of calls in flight, the queue of calls that
 * wait for a connection, and the callbacks the client exposes (client_serve.c).
 */
#ifndef DAFFI_CLIENT_T_H
#define DAFFI_CLIENT_T_H

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <msgpack.h>

#include <daffi/client.h>
#include "callobj-t.h"

/* Output waiting to be written: p[pos..len). */
typedef struct daffi__outbuf {
    char *p;
    size_t len, pos, cap;
    int oom;                /* set by the packer's writer when growing failed */
} daffi__outbuf;

/* Input read and not yet consumed: p[start..end); scan runs over the message that
 * starts at start. */
typedef struct daffi__inbuf {
    char *p;
    size_t start, end, cap;
    daffi_scan scan;
} daffi__inbuf;

/* When the next connect attempt of a reconnecting client may start. */
typedef struct daffi__backoff {
    int min_ms;             /* opts.reconnect_ms; 0: no reconnect */
    int max_ms;
    int failures;           /* attempts failed in a row (0: next one is immediate) */
    uint64_t rng;           /* xorshift state for the jitter */
} daffi__backoff;

typedef struct daffi__async daffi__async;

/* A stream a client sends (synchronous: client_stream.c; asynchronous:
 * client_astream.c): owned by the caller until its end or daffi_stream_abort(),
 * linked in its client's list while the client lives. */
struct daffi_stream {
    daffi_client *c;        /* NULL once the client was closed */
    uint32_t id;            /* the receiver's id, on this connection */
    unsigned window;        /* granted at open */
    unsigned credit;        /* chunks that may still be sent before more credit */
    int aborted;            /* the receiver sent daffi.abort */
    int dead;               /* the connection it was opened on is gone */
    uint64_t chunks;        /* chunks sent */
    struct daffi_stream *next, *prev;
    /* asynchronous streams */
    int async;              /* opened by an asynchronous client */
    int blocked;            /* the window was used up: tell ready when credit comes */
    int told_lost;          /* ready was told the stream cannot go on */
    int lost_pending;       /* ready is still to be told (a drop being handled) */
    daffi_stream_ready_fn ready;
    void *ready_arg;
};

struct daffi_client {
    int fd;                 /* -1 while not connected */
    char *address;          /* as given to daffi_connect() / daffi_client_new() */
    daffi_addr addr;        /* the address tried now (addrs[addr_i]) */
    daffi_addr *addrs;      /* every address of a comma-separated list, in order (owned;
                               one for a single address) */
    unsigned naddrs;
    unsigned addr_i;        /* the current one */
    unsigned addrs_tried;   /* how many of the list this connect attempt went through */
    daffi_limits lim;
    int connect_timeout_ms; /* < 0: none */
    int local_timeouts;     /* opts.local_timeouts: calls go out plain, never wrapped */
    uint32_t next_msgid;
    daffi__outbuf out;
    daffi__inbuf in;
    msgpack_packer pk;      /* writes into out */
    char *closed_why;       /* why fd was closed: repeated by later calls */
    daffi_client_stats stats;
    daffi__backoff backoff;
    daffi_stream *streams;  /* synchronous client: streams open on the connection */
    daffi__async *as;       /* NULL for a synchronous client */
    /* TLS and the token (client_tls.c) */
    void *tls_ctx;          /* SSL_CTX for a tls:// address, NULL otherwise; owned */
    void *ssl;              /* the SSL of the open connection, NULL: plaintext; owned */
    int tls_insecure;       /* no verification of the server's certificate */
    char *token;            /* presented with daffi.auth on each connection; owned */
    uint32_t auth_msgid;    /* synchronous client: the daffi.auth awaiting its reply */
};

/* ---- asynchronous client ------------------------------------------------------ */

/* Where an outgoing call of an asynchronous client is. */
typedef enum daffi__acall_state {
    DAFFI__ACALL_QUEUED = 1, /* waits for a connection: its bytes are in req */
    DAFFI__ACALL_SENT = 2    /* appended to the connection's output: waits for a reply */
} daffi__acall_state;

#define DAFFI__METHOD_KEEP 64 /* bytes of the method name kept for messages */

/* One outgoing call (or queued notification) of an asynchronous client. Owned by the
 * client: in its call table (requests) and/or its wait queue (QUEUED); recycled
 * through its free list. */
typedef struct daffi__acall {
    struct daffi__acall *next, *prev; /* wait queue, or free list (next only) */
    daffi_client *c;
    uint32_t msgid;
    int is_notify;
    daffi__acall_state state;
    daffi_reply_fn fn;
    void *arg;
    int is_ping;            /* the reply must be "pong" */
    int timeout_ms;         /* 0: none */
    int timer_on;
    int64_t start_ns;
    char *req;              /* QUEUED: the encoded message (owned) */
    size_t req_len;
    size_t req_deadline;    /* QUEUED: offset in req of the uint32 timeout_ms a wrapped
                               call carries, refreshed when it is written (0: none) */
    struct event timer;
    char method[DAFFI__METHOD_KEEP];
} daffi__acall;

/* The calls awaiting a reply, indexed by msgid: slot = msgid & mask. msgids are
 * handed out so that no two calls in the table share a slot, which makes lookup one
 * probe and keeps slots distinct when the table doubles. */
typedef struct daffi__acall_table {
    daffi__acall **slot;
    uint32_t mask;          /* size - 1; size a power of two */
    uint32_t count;
} daffi__acall_table;

/* A FIFO of calls (QUEUED ones waiting for a connection). */
typedef struct daffi__acall_queue {
    daffi__acall *head, *tail;
    size_t bytes;           /* sum of req_len */
} daffi__acall_queue;

/* A callback the client exposes. */
typedef struct daffi__exposed {
    char *name;
    daffi_handler_fn fn;
    void *state;
} daffi__exposed;

/* A request from the peer being served by an exposed callback. */
typedef struct daffi__served {
    daffi_call call;        /* first: the handler's daffi_call points here */
    daffi_client *c;        /* NULL once the client is closed */
    uint32_t msgid;
    int is_notify;
    uint64_t conn_gen;      /* the connection it arrived on: a reply after a
                               reconnect is dropped (the caller is gone) */
    int64_t deadline_ns;    /* daffi.call's timeout_ms as a CLOCK_MONOTONIC time: past
                               it the caller gave up (0: none) */
    struct daffi__served *next, *prev; /* the client's pending list */
} daffi__served;

/* Connection states of an asynchronous client. */
typedef enum daffi__astate {
    DAFFI__AS_CONNECTING = 1, /* a non-blocking connect is under way */
    DAFFI__AS_CONNECTED = 2,
    DAFFI__AS_BACKOFF = 3,    /* waiting before the next attempt */
    DAFFI__AS_CLOSED = 4      /* for good (no reconnect, or daffi_close) */
} daffi__astate;

struct daffi__async {
    struct event_base *base;
    daffi__astate state;
    struct event rd;          /* EV_READ | EV_PERSIST on fd while connected */
    struct event wr;          /* EV_WRITE | EV_PERSIST: connect completion, or output
                                 the socket did not take */
    struct event timer;       /* backoff delay / connect timeout */
    int rd_on, wr_on, timer_on;
    int64_t attempt_ns;       /* when the current connect attempt started */
    int backlog_wait_ms;      /* > 0: the timer retries a Unix connect (backlog full) */
    int handshaking;          /* CONNECTING: connected, the TLS handshake under way on
                                 fd (c->ssl), stepped from rd / wr */
    uint64_t conn_gen;        /* bumped on every established connection */
    struct addrinfo *ai_list; /* TCP: resolved addresses of the current attempt */
    struct addrinfo *ai_next; /* the next one to try */
    daffi__acall_table table;
    daffi__acall_queue queue;
    daffi__acall *free_calls; /* recycled records */
    size_t nfree;
    int depth;                /* > 0 while library code up the stack uses the client */
    int closing;              /* daffi_close() ran: free when depth drops to 0 */
    daffi_state_fn on_state;
    void *on_state_arg;
    /* exposed callbacks */
    char *name;               /* announced member name */
    daffi__exposed *exposed;
    size_t nexposed, exposed_cap;
    daffi_reply_fn announced;
    void *announced_arg;
    daffi__served *served;    /* requests whose handler returned DAFFI_PENDING */
    msgpack_sbuffer scratch;  /* a served call's response before it joins out */
    int in_read;              /* a read batch runs: output is flushed at its end */
    int flush_armed;          /* the write event was made active to flush output */
    /* membership subscription */
    daffi_event_fn event_fn;
    void *event_arg;
    daffi_reply_fn sub_done;  /* gets the first answer only */
    void *sub_done_arg;
    int sub_active;           /* the first answer was a success: renew on reconnect */
    int sub_timeout_ms;
};

#endif /* DAFFI_CLIENT_T_H */
