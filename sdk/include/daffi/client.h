/*
 * daffi/client.h - the caller API of libdaffi: connect to a daffid (service or router)
 * or any MessagePack-RPC peer, call its callbacks, read results and errors.
 *
 * Contract
 *   Addresses are "tcp://host:port", "tls://host:port" or "unix:///path" (see
 *   daffi_addr_parse in
 *   <daffi/rpc.h>). TCP connections set TCP_NODELAY. The wire protocol is the
 *   normative one of sdk/PROTOCOL.md: one msgid per call, responses matched by msgid
 *   (they may arrive in any order), a notification gets no response.
 *
 *   Every call either succeeds (returns 0, fills its daffi_result) or fails (returns
 *   -1, fills its daffi_error). Errors are the wire error codes of <daffi/rpc.h>,
 *   whether the peer reported them or the client raised them itself:
 *     - cannot connect, connection lost or closed (also mid-call) ..... UNAVAILABLE
 *     - no reply within the call's timeout ............................. TIMEOUT
 *       (the connection stays usable; the late reply is discarded when it comes)
 *     - a malformed message from the peer .............................. PROTOCOL
 *     - a message from the peer over max_message ....................... TOO_LARGE
 *     - a request over max_message (refused before sending anything) ... TOO_LARGE
 *     - more than max_message bytes still unsent (peer not reading) .... OVERLOADED
 *     - a bad argument given to this API (address, params, timeout) ... BAD_ARGS
 *   Whatever breaks the byte stream (UNAVAILABLE, a malformed or oversize message
 *   from the peer) closes the connection: every later call on it fails at once with
 *   UNAVAILABLE naming why. The other errors leave the connection usable (so does a
 *   response whose error array is malformed: PROTOCOL, the framing was intact).
 *
 * Ownership (who frees what)
 *   - daffi_client: created by daffi_connect(), owned by the caller, released by
 *     daffi_close() (which also closes the socket).
 *   - daffi_result: a caller-provided struct; a successful call fills it with memory
 *     the result owns (a zone and a copy of the reply bytes). Release it with
 *     daffi_result_free(). A failed call leaves it zeroed (freeing it is harmless).
 *   - daffi_error: a caller-provided struct, initialised to DAFFI_ERROR_INIT (or
 *     zeroed). A failing function fills it with memory it owns (message, details);
 *     release it with daffi_error_clear(). Every function that reports into an error
 *     first releases what the error held, so one daffi_error can be reused across
 *     calls. Passing NULL for an error is allowed: the failure is then not described.
 *   - Arguments (method, params) are only read during the call and may be freed
 *     as soon as it returns.
 *
 * Two kinds of client, one type
 *   A synchronous client (daffi_connect) runs its connection on the calling thread:
 *   each call blocks until its outcome. An asynchronous client (daffi_client_new) runs
 *   on the caller's own libevent event_base: each call returns at once and its
 *   completion callback runs later from that loop; thousands of calls may be in flight
 *   on one connection and thousands of clients may share one loop (no thread per call,
 *   no hidden thread at all). The functions named *_async take an asynchronous client,
 *   the others a synchronous one; the wrong kind is BAD_ARGS. daffi_close(),
 *   daffi_client_connected(), daffi_client_address() and daffi_client_stats_get() take
 *   both, and so do daffi_stream_abort() and the stream getters.
 *
 * Thread safety
 *   A daffi_client is not thread-safe: the synchronous API runs the connection on the
 *   calling thread. Use one daffi_client per thread (or serialise all access to one
 *   with your own lock). Distinct clients share nothing and may be used concurrently.
 *   daffi_result and daffi_error values belong to whoever holds them.
 *   An asynchronous client belongs to its event_base: create it, call it, close it and
 *   run the loop on one thread (the loop's). Its callbacks run on that thread. The
 *   handlers of callbacks it exposes run there too, and a handler that returned
 *   DAFFI_PENDING must call daffi_call_done() from that thread as well (for work done
 *   elsewhere, hand the completion back to the loop yourself, e.g. with an event you
 *   activate under libevent's thread support).
 *
 * Blocking behaviour
 *   Synchronous calls block the calling thread in poll() until the reply arrives, the
 *   timeout passes or the connection fails; nothing else waits (no hidden threads, no
 *   signals: writes use MSG_NOSIGNAL, so SIGPIPE never fires). timeout_ms 0 waits
 *   forever; the timeout covers writing the request and reading the reply. Name
 *   resolution (getaddrinfo) in daffi_connect() is not bounded by the timeout.
 *   While a synchronous call waits, a request the peer sends on the connection is
 *   answered NO_CALLBACK (this client exposes no callbacks) and a notification is
 *   ignored; both are counted in daffi_client_stats.
 *   Asynchronous functions never block and never call their callback before they
 *   return; the only exception is daffi_close(), which completes every call still
 *   pending (UNAVAILABLE, "client closed") before it returns. Connecting is
 *   asynchronous too, a tls:// address's handshake included (driven by the socket's
 *   events, bounded by the connect timeout), except that a TCP host name is resolved
 *   (getaddrinfo) inline: use numeric addresses where that matters.
 *
 * Reconnecting (opts.reconnect_ms > 0)
 *   When the connection drops, every call in flight on it fails at once with
 *   UNAVAILABLE (its reply could never come), and the client reconnects: the first
 *   attempt right away, then after reconnect_ms, doubling up to reconnect_max_ms, with
 *   up to 25% random jitter. A call made while disconnected waits for the connection up
 *   to its own timeout (0: as long as it takes) and then fails with UNAVAILABLE naming
 *   the last connect error. A synchronous client reconnects inside the next call; an
 *   asynchronous one on its loop, announcing its exposed callbacks (daffi.hello) and
 *   renewing its membership subscription on every new connection before any queued
 *   call is sent. Without reconnect_ms, a dropped connection is final: later calls fail
 *   at once with UNAVAILABLE.
 *
 * Deadlines
 *   A call with a timeout (timeout_ms > 0) to a callback (not a daffi.* method) tells
 *   the peer how long it will wait: it goes out as daffi.call [method, params,
 *   {"timeout_ms": T}] (sdk/PROTOCOL.md section 6.1), T the time the call has left
 *   when it is written, so that every hop (a router, the member, its handler through
 *   daffi_call_cancelled()) stops working on it and forgets it when the caller has
 *   given up. The client itself still gives up after timeout_ms. A call to a named
 *   member (daffi_rpc_with(), opts.to) goes out as daffi.call with "to". A peer that
 *   is not daffi does not know daffi.call: set opts.local_timeouts for it.
 *
 * Router calls
 *   cast, cast_nowait, wait_for_members and the membership subscription are daffi
 *   control methods (daffi.cast, daffi.wait, daffi.subscribe; sdk/PROTOCOL.md section
 *   6) served by a router. A plain service answers them NO_CALLBACK ("... needs a
 *   router"); daffi_members() and daffi_ping() work everywhere. Timeouts given to these
 *   calls are sent to the router as its timeout_ms, and the client itself waits
 *   DAFFI_ROUTER_GRACE_MS longer, so that the router's own answer (a TIMEOUT naming who
 *   is missing, or per-member errors of a cast) arrives rather than a bare local one.
 *
 * Exposed callbacks (bidirectional clients)
 *   An asynchronous client may serve its own callbacks: daffi_client_expose() registers
 *   a table of daffi_callback_def (<daffi/plugin.h>: the plugin handler signature) and
 *   announces them with daffi.hello under opts.name. A request arriving on the
 *   connection naming one runs its handler on the loop with a daffi_call exactly as a
 *   plugin sees it (daffi_call_host() is NULL: there is no plugin instance, so
 *   libdaffi's host functions answer for it: daffi_config_get() and the other [config]
 *   readers find nothing, daffi_log() writes to stderr); other requests are answered
 *   NO_CALLBACK; a notification naming one runs it without reply.
 */
#ifndef DAFFI_CLIENT_H
#define DAFFI_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <daffi/plugin.h>
#include <daffi/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct daffi_client daffi_client; /* one connection to a peer (opaque) */

/* Connect timeout used when daffi_client_opts.connect_timeout_ms is 0. */
#define DAFFI_DEFAULT_CONNECT_TIMEOUT_MS 5000

/* Client options. Every field's zero value means its default; pass NULL for all
 * defaults. The struct is only read during daffi_connect(). */
typedef struct daffi_client_opts {
    int connect_timeout_ms; /* 0: DAFFI_DEFAULT_CONNECT_TIMEOUT_MS; < 0: no limit */
    size_t max_message;     /* bound on every message, both ways;
                               0: DAFFI_DEFAULT_MAX_MESSAGE */
    unsigned max_depth;     /* nesting bound of received values;
                               0: DAFFI_DEFAULT_MAX_DEPTH */
    int reconnect_ms;       /* > 0: reconnect after the connection drops (see
                               "Reconnecting" above), backing off from this delay;
                               0: a dropped connection is final */
    int reconnect_max_ms;   /* cap of the backoff; 0: DAFFI_DEFAULT_RECONNECT_MAX_MS
                               (never below reconnect_ms) */
    const char *name;       /* member name announced by daffi_client_expose();
                               NULL: "client-HOSTNAME-PID". Copied. */
    int local_timeouts;     /* 1: a call's timeout stays in this client and every call
                               goes out as the plain request the MessagePack-RPC
                               specification knows (for peers that are not daffi);
                               0: a call with a timeout carries it (see "Deadlines") */
    /* TLS, for a "tls://host:port" address (see "TLS and tokens" above). NULL: the
     * environment's DAFFI_TLS_CA, DAFFI_TLS_CERT, DAFFI_TLS_KEY. Read at creation. */
    const char *tls_ca;     /* PEM CA bundle the server's certificate must verify
                               against; NULL and no DAFFI_TLS_CA: the system's store */
    const char *tls_cert;   /* PEM client certificate (mTLS), with tls_key */
    const char *tls_key;    /* its PEM private key */
    int tls_insecure;       /* 1 (or DAFFI_TLS_INSECURE=1): no verification of the
                               server's certificate (tests only: anyone in the middle
                               reads everything) */
    const char *token;      /* sent with daffi.auth first on every connection (NULL:
                               DAFFI_TOKEN; neither: none). Copied. */
} daffi_client_opts;

/* Backoff cap used when daffi_client_opts.reconnect_max_ms is 0. */
#define DAFFI_DEFAULT_RECONNECT_MAX_MS 5000

/* How much longer than the timeout given to a router call the client waits. */
#define DAFFI_ROUTER_GRACE_MS 1000

/* The outcome of a successful call. Fields other than obj/raw/raw_len are private.
 * obj and everything it points to live until daffi_result_free(). */
typedef struct daffi_result {
    msgpack_object obj;   /* the result value */
    const char *raw;      /* its exact encoded bytes (e.g. to relay it), raw_len long */
    size_t raw_len;
    msgpack_zone *zone;   /* private, owned: storage of obj's arrays and maps */
    char *bytes;          /* private, owned: the reply bytes obj points into */
} daffi_result;

/* A failure. Fields other than the private ones are read by the caller. */
typedef struct daffi_error {
    int code;               /* a daffi_error_code; DAFFI_OK (0) when no error */
    const char *name;       /* daffi_error_name(code), static; NULL when code is 0 */
    char *message;          /* owned, NUL-terminated; NULL when code is 0 (or when
                               memory for it ran out) */
    msgpack_object details; /* the peer's details map, else type NIL; owned storage */
    int64_t elapsed_ms;     /* for a failed call: how long it ran (TIMEOUT: time
                               waited before giving up); 0 for connect/usage errors */
    int remote;             /* 1: the peer reported it in a response; 0: raised here */
    msgpack_zone *zone;     /* private, owned: storage of details */
    char *bytes;            /* private, owned: the reply bytes details points into */
} daffi_error;

#define DAFFI_ERROR_INIT {0, NULL, NULL, {MSGPACK_OBJECT_NIL, {0}}, 0, 0, NULL, NULL}

/* Counters of one client, for tests and diagnostics. */
typedef struct daffi_client_stats {
    uint64_t calls;            /* requests sent (rpc, ping) */
    uint64_t notifications;    /* notifications sent */
    uint64_t timeouts;         /* calls that gave up waiting (TIMEOUT raised here) */
    uint64_t late_replies;     /* responses that matched no waiting call: discarded */
    uint64_t requests_refused; /* requests from the peer answered NO_CALLBACK */
    uint64_t notifications_ignored; /* notifications from the peer */
    uint64_t bytes_out;
    uint64_t bytes_in;
    /* appended by the asynchronous client and reconnect (zero for the others) */
    uint64_t connects;         /* connections established (the first one included) */
    uint64_t disconnects;      /* established connections that dropped */
    uint64_t calls_failed_on_drop; /* calls in flight failed UNAVAILABLE by a drop */
    uint64_t requests_served;  /* requests from the peer run by an exposed callback */
    uint64_t events;           /* daffi.event notifications delivered */
} daffi_client_stats;

/* ---- connection ------------------------------------------------------------ */

/* Connects to address ("tcp://host:port" or "unix:///path") within the connect
 * timeout. Returns a new client owned by the caller (release with daffi_close()), or
 * NULL with err set: BAD_ARGS for an address that does not parse, UNAVAILABLE when the
 * peer cannot be reached (the message names the address and the reason). */
daffi_client *daffi_connect(const char *address, const daffi_client_opts *opts,
                            daffi_error *err);

/* Closes the connection and frees the client. Output not yet written is dropped.
 * NULL is accepted. Results and errors obtained from the client stay valid. */
void daffi_close(daffi_client *c);

/* Returns 1 while the connection is open, 0 after it failed or was closed. */
int daffi_client_connected(const daffi_client *c);

/* Returns the address the client (not NULL) was created with, owned by the client. */
const char *daffi_client_address(const daffi_client *c);

/* Copies the counters of client c (not NULL) into out. */
void daffi_client_stats_get(const daffi_client *c, daffi_client_stats *out);

/* ---- synchronous calls ------------------------------------------------------ */

/* Calls method with params (an array object whose elements are the arguments, or NULL
 * for none) and waits up to timeout_ms (0: forever, < 0: BAD_ARGS) for its reply.
 * Returns 0 and fills out (owned by the caller: daffi_result_free(); out may be NULL
 * to discard the result), or -1, out zeroed, err set: the peer's error (remote = 1,
 * with its details), or one raised here (see the contract above). A TIMEOUT leaves
 * the connection usable. */
int daffi_rpc(daffi_client *c, const char *method, const msgpack_object *params,
              int timeout_ms, daffi_result *out, daffi_error *err);

/* As daffi_rpc(), with the params given as the encoded bytes of exactly one msgpack
 * array (e.g. built with a msgpack_packer into an sbuffer). Bytes that are not one
 * whole array are BAD_ARGS and nothing is sent. */
int daffi_rpc_raw(daffi_client *c, const char *method, const char *params,
                  size_t params_len, int timeout_ms, daffi_result *out, daffi_error *err);

/* Options of one call (daffi_rpc_with() and its raw and asynchronous forms). Every
 * field's zero value is its default; the struct is only read during the call. */
typedef struct daffi_rpc_opts {
    const char *to;         /* through a router: only the member of this name serves the
                               call (daffi.call's "to"; a service answers UNAVAILABLE for
                               any name but its own); NULL: any member exposing it */
    int timeout_ms;         /* as daffi_rpc()'s (0: forever); sent with the call */
} daffi_rpc_opts;

/* daffi_rpc() with options (opts NULL: all defaults, no timeout). A call with opts->to
 * or a timeout goes out as daffi.call [method, params, {"to": to, "timeout_ms": T}]
 * (unless opts.local_timeouts and no to); a daffi.* method cannot be sent to a
 * member (BAD_ARGS). Returns as daffi_rpc(): a `to` that names no member is the
 * router's UNAVAILABLE. */
int daffi_rpc_with(daffi_client *c, const char *method, const msgpack_object *params,
                   const daffi_rpc_opts *opts, daffi_result *out, daffi_error *err);
/* As daffi_rpc_with() with the params as the encoded bytes of one msgpack array. */
int daffi_rpc_raw_with(daffi_client *c, const char *method, const char *params,
                       size_t params_len, const daffi_rpc_opts *opts, daffi_result *out,
                       daffi_error *err);

/* Sends method(params) as a notification (rpc_nowait): no reply, no error from the
 * peer. Returns 0 once the whole message was handed to the kernel, or -1 with err
 * set. timeout_ms (0: forever) bounds the wait for a peer that stops reading; on
 * TIMEOUT the unsent rest is still delivered by the client's next call. */
int daffi_notify(daffi_client *c, const char *method, const msgpack_object *params,
                 int timeout_ms, daffi_error *err);
int daffi_notify_raw(daffi_client *c, const char *method, const char *params,
                     size_t params_len, int timeout_ms, daffi_error *err);

/* Calls daffi.ping and checks the reply is "pong". Returns 0 and, when rtt_us is not
 * NULL, stores the round trip in microseconds; or -1 with err set (a reply other
 * than "pong" is PROTOCOL). */
int daffi_ping(daffi_client *c, int timeout_ms, int64_t *rtt_us, daffi_error *err);

/* Calls the router's daffi.cast: callback(params) on every member that exposes it,
 * or only on the nto members named in to (nto 0: all). timeout_ms (0: the router's
 * default, and this client waits forever) is each member's deadline. Returns 0 with
 * out holding the map {member name: [error, result]...}, one entry per member reached
 * (error nil or [code, message(, details)], as a response carries them), or -1 with
 * err set (NO_CALLBACK from a plain service: "daffi.cast needs a router"). */
int daffi_cast(daffi_client *c, const char *callback, const msgpack_object *params,
               const char *const *to, size_t nto, int timeout_ms, daffi_result *out,
               daffi_error *err);

/* cast_nowait: daffi.cast sent as a notification; no result, no error from the peer.
 * timeout_ms is passed to the router and bounds the write as in daffi_notify(). */
int daffi_cast_nowait(daffi_client *c, const char *callback, const msgpack_object *params,
                      const char *const *to, size_t nto, int timeout_ms, daffi_error *err);

/* Calls daffi.members. Returns 0 with out holding [{"name": str, "callbacks":
 * [str...]}...] (a service lists itself), or -1 with err set. */
int daffi_members(daffi_client *c, int timeout_ms, daffi_result *out, daffi_error *err);

/* Calls the router's daffi.wait: returns 0 once the n members named are all present,
 * or -1 with err set (TIMEOUT from the router naming who is missing after timeout_ms;
 * NO_CALLBACK from a plain service). timeout_ms 0: the router's default. */
int daffi_wait_for_members(daffi_client *c, const char *const *names, size_t n,
                           int timeout_ms, daffi_error *err);

/* ---- streams (synchronous client) ------------------------------------------------ */

/* A stream (daffi's stream / stream_nowait; sdk/PROTOCOL.md section 8): an ordered
 * sequence of chunks to one receiver, a stream handler (DAFFI_CB_STREAM), which
 * answers once at the end. Backpressure is the receiver's credit: at most `window`
 * chunks are ever unacknowledged, and a send waits for credit. A stream belongs to
 * the connection it was opened on: when that drops, the stream is dead (later sends
 * and its end fail UNAVAILABLE), a reconnect does not revive it. The functions below
 * take a stream of a synchronous client; an asynchronous client opens and sends its
 * streams with the *_async functions further down ("streams (asynchronous client)").
 * A stream of the other kind is BAD_ARGS and is left as it was; daffi_stream_abort()
 * and the getters take both kinds. */
typedef struct daffi_stream daffi_stream;

/* Opens a stream to callback with params (an array, or NULL for none): daffi.stream,
 * through a router to the member named to (NULL: any that exposes it), asking for a
 * window of window chunks (0: the receiver's default, 16; it may grant fewer). Returns
 * the stream, owned by the caller until daffi_stream_end() or daffi_stream_abort(),
 * or NULL with err set: the handler's refusal, BAD_ARGS from a callback that is no
 * stream handler, NO_CALLBACK, or as daffi_rpc(). */
daffi_stream *daffi_stream_open(daffi_client *c, const char *callback,
                                const msgpack_object *params, const char *to,
                                unsigned window, int timeout_ms, daffi_error *err);

/* Sends the next chunk: any value (send), or a bin of len bytes at p (send_bin).
 * When the window is used up, first waits up to timeout_ms (0: forever) for credit:
 * TIMEOUT when none came (the stream stays usable). Returns 0, or -1 with err set
 * (UNAVAILABLE when the receiver aborted the stream or the connection dropped;
 * TOO_LARGE for a chunk over max_message). */
int daffi_stream_send(daffi_stream *s, const msgpack_object *chunk, int timeout_ms,
                      daffi_error *err);
int daffi_stream_send_bin(daffi_stream *s, const void *p, size_t len, int timeout_ms,
                          daffi_error *err);

/* Ends the stream (daffi.end) and waits up to timeout_ms for its one result: 0 with
 * out filled (as daffi_rpc()), or -1 with err set (the handler's error, the error a
 * failed chunk left, UNAVAILABLE for a dead or aborted stream). Frees s in every
 * case. */
int daffi_stream_end(daffi_stream *s, int timeout_ms, daffi_result *out, daffi_error *err);

/* stream_nowait's end: daffi.end as a notification, the result discarded. Frees s. */
int daffi_stream_end_nowait(daffi_stream *s, int timeout_ms, daffi_error *err);

/* Abandons the stream (daffi.abort, when its connection is still up) and frees s.
 * Either kind of stream; NULL is accepted. An asynchronous stream's abort is queued
 * for writing on the loop. */
void daffi_stream_abort(daffi_stream *s);

/* The receiver's id of the stream, the window it granted, the chunks sent, and the
 * chunks that may be sent now before more credit comes (both kinds). */
uint32_t daffi_stream_id(const daffi_stream *s);
unsigned daffi_stream_window(const daffi_stream *s);
uint64_t daffi_stream_chunks(const daffi_stream *s);
unsigned daffi_stream_credit(const daffi_stream *s);

/* ---- asynchronous client ------------------------------------------------------ */

struct event_base; /* libevent: include <event2/event.h> to create and run one */

/* Completion of an asynchronous call: exactly one of res (success) and err (failure)
 * is not NULL. Both are owned by the library and released when fn returns; to keep
 * one, move it out with daffi_result_move() / daffi_error_move(). fn may make new
 * calls on c or any client, and may call daffi_close(c). */
typedef void (*daffi_reply_fn)(daffi_client *c, daffi_result *res, daffi_error *err,
                               void *arg);

/* Connection state changes of an asynchronous client: connected 1 once a connection
 * is established (after exposed callbacks were announced), 0 when a connection
 * dropped or an attempt failed (why says what; with reconnect the client goes on
 * trying, else it is closed for good). why is owned by the library. */
typedef void (*daffi_state_fn)(daffi_client *c, int connected, const daffi_error *why,
                               void *arg);

/* Creates an asynchronous client on base and starts connecting to address; the
 * connection is completed on the loop (calls made before it is up wait for it, up to
 * their timeout; the state callback hears of it). Returns the client, owned by the
 * caller (daffi_close()), or NULL with err set: BAD_ARGS for a bad address, option or
 * base; UNAVAILABLE when memory ran out, or, with reconnect off, when the connection
 * failed at once (no such Unix socket, a host name that does not resolve, a refusal
 * the kernel gave without waiting). A failure found later reaches the waiting calls
 * and the state callback instead. base must outlive the client. */
daffi_client *daffi_client_new(struct event_base *base, const char *address,
                               const daffi_client_opts *opts, daffi_error *err);

/* Sets (fn not NULL) or clears the state callback of an asynchronous client. */
void daffi_client_on_state(daffi_client *c, daffi_state_fn fn, void *arg);

/* Calls method with params (an array, or NULL for none) and returns at once: 0 when
 * the call is under way (fn will run exactly once, from the loop), or -1 with err set
 * and fn never called (BAD_ARGS, TOO_LARGE, OVERLOADED when more than max_message
 * bytes already wait to be written, UNAVAILABLE when the client is closed for good).
 * timeout_ms 0 waits forever. Outcomes delivered to fn: as daffi_rpc() (TIMEOUT leaves
 * the connection usable and discards the late reply; UNAVAILABLE when the connection
 * drops with the call in flight, or no connection came within the timeout). */
int daffi_rpc_async(daffi_client *c, const char *method, const msgpack_object *params,
                    int timeout_ms, daffi_reply_fn fn, void *arg, daffi_error *err);
/* As daffi_rpc_async() with the params as the encoded bytes of one msgpack array. */
int daffi_rpc_raw_async(daffi_client *c, const char *method, const char *params,
                        size_t params_len, int timeout_ms, daffi_reply_fn fn, void *arg,
                        daffi_error *err);

/* daffi_rpc_with() on an asynchronous client: opts (may be NULL) as there, the
 * outcome to fn as daffi_rpc_async(). A call that waits for a connection carries the
 * time it has left when it is finally written. */
int daffi_rpc_with_async(daffi_client *c, const char *method, const msgpack_object *params,
                         const daffi_rpc_opts *opts, daffi_reply_fn fn, void *arg,
                         daffi_error *err);
int daffi_rpc_raw_with_async(daffi_client *c, const char *method, const char *params,
                             size_t params_len, const daffi_rpc_opts *opts,
                             daffi_reply_fn fn, void *arg, daffi_error *err);

/* Sends a notification (rpc_nowait). Returns 0 once it is queued for writing (while
 * disconnected with reconnect on: until the next connection), or -1 with err set. A
 * queued notification is dropped, not retried, if its connection drops before it was
 * written or the client is closed. */
int daffi_notify_async(daffi_client *c, const char *method, const msgpack_object *params,
                       daffi_error *err);
int daffi_notify_raw_async(daffi_client *c, const char *method, const char *params,
                           size_t params_len, daffi_error *err);

/* daffi.ping; res->obj is the string "pong" (anything else is delivered as PROTOCOL). */
int daffi_ping_async(daffi_client *c, int timeout_ms, daffi_reply_fn fn, void *arg,
                     daffi_error *err);

/* The asynchronous forms of the router calls above; same params and results. */
int daffi_cast_async(daffi_client *c, const char *callback, const msgpack_object *params,
                     const char *const *to, size_t nto, int timeout_ms, daffi_reply_fn fn,
                     void *arg, daffi_error *err);
int daffi_cast_nowait_async(daffi_client *c, const char *callback,
                            const msgpack_object *params, const char *const *to,
                            size_t nto, int timeout_ms, daffi_error *err);
int daffi_members_async(daffi_client *c, int timeout_ms, daffi_reply_fn fn, void *arg,
                        daffi_error *err);
/* res->obj is true when every member named is present. */
int daffi_wait_for_members_async(daffi_client *c, const char *const *names, size_t n,
                                 int timeout_ms, daffi_reply_fn fn, void *arg,
                                 daffi_error *err);

/* A membership event: type "joined" or "left", member the member's name (both
 * NUL-terminated copies), event the whole event map as the router sent it. All valid
 * during the callback only. */
typedef void (*daffi_event_fn)(daffi_client *c, const char *type, const char *member,
                               const msgpack_object *event, void *arg);

/* Subscribes to membership events (daffi.subscribe [["members"]]): done (may be NULL)
 * gets the router's answer (true, or the error: NO_CALLBACK from a plain service),
 * then fn gets each daffi.event notification until the client is closed. The
 * subscription is renewed on every reconnect (until an answer is an error). One
 * subscription per client: a second call replaces fn. Returns 0 or -1 as
 * daffi_rpc_async(). */
int daffi_subscribe_members_async(daffi_client *c, daffi_event_fn fn, void *fn_arg,
                                  int timeout_ms, daffi_reply_fn done, void *done_arg,
                                  daffi_error *err);

/* Exposes the callbacks of defs (a table ended by an entry whose name is NULL, the
 * shape of a plugin's) on the asynchronous client c: requests naming them are run by
 * their handlers on c's loop, with daffi_call_state() returning state. The entries are
 * copied. Names must be non-empty, unique on c and not start with "daffi."; handlers
 * not NULL; flags 0 (DAFFI_CB_BLOCKING needs a thread pool a client does not have):
 * otherwise BAD_ARGS and nothing is registered. May be called again to add more.
 * Every connection (now, or the next one) announces the whole set with daffi.hello
 * under opts.name; announced (may be NULL) gets each announcement's answer. Returns 0
 * or -1 with err set. */
int daffi_client_expose(daffi_client *c, const daffi_callback_def *defs, void *state,
                        daffi_reply_fn announced, void *arg, daffi_error *err);

/* ---- streams (asynchronous client) --------------------------------------------------
 *
 * The streams above, sent by an asynchronous client from its loop; nothing ever waits.
 * A send takes one chunk of the window at once, or fails at once (OVERLOADED) when
 * the window is used up: a stream never holds more than `window` chunks queued or in
 * flight, so what it costs the sender, a router and the receiver stays bounded by
 * window x chunk size however fast the program produces. Credit coming back is told
 * to the stream's ready callback. A stream belongs to the connection it was opened
 * on: when that drops, the ready callback hears so and the stream is dead (a
 * reconnect does not revive it). Typical use:
 *
 *     opened:  daffi_stream_on_ready(s, ready, me); pump(s, me);
 *     ready:   if (why != NULL) daffi_stream_abort(s); else pump(s, me);
 *     pump:    while (more data && daffi_stream_credit(s) > 0) daffi_stream_send_bin_async(...);
 *              when the data is all sent: daffi_stream_end_async(s, ..., done, me, &err);
 */

/* Completion of daffi_stream_open_async(): exactly one of s and err is not NULL. s is
 * the open stream, owned by the caller from now on until daffi_stream_end_async(),
 * daffi_stream_end_nowait_async() or daffi_stream_abort() frees it; its credit is the
 * granted window. err (the handler's refusal, BAD_ARGS from a callback that is no
 * stream handler, NO_CALLBACK, or any failure of a call) is owned by the library and
 * released when fn returns (move it out with daffi_error_move() to keep it). fn may
 * send on s at once, and may make other calls or close the client. */
typedef void (*daffi_stream_open_fn)(daffi_client *c, daffi_stream *s, daffi_error *err,
                                     void *arg);

/* The ready callback of an asynchronous stream. why NULL: credit came back to a stream
 * whose window was used up (daffi_stream_credit(s) > 0 again: send more). why not
 * NULL: the stream can take no more chunks (UNAVAILABLE: the receiver aborted it, or
 * its connection dropped); it is told once, and the stream is still the caller's to
 * free with daffi_stream_abort() or an end (which then fails with the same error).
 * why is owned by the library. fn may send on, end or abort s, make other calls, and
 * close the client. It is not called for daffi_close(): the caller closed it. */
typedef void (*daffi_stream_ready_fn)(daffi_stream *s, const daffi_error *why, void *arg);

/* Opens a stream to callback with params (an array, or NULL for none) on the
 * asynchronous client c: daffi.stream, through a router to the member named to (NULL:
 * any that exposes it), asking for a window of window chunks (0: the receiver's
 * default, 16; it may grant fewer). timeout_ms (0: forever) bounds the open. Returns 0
 * when the open is under way (fn runs exactly once, from the loop), or -1 with err
 * set and fn never called (as daffi_rpc_async()). */
int daffi_stream_open_async(daffi_client *c, const char *callback,
                            const msgpack_object *params, const char *to, unsigned window,
                            int timeout_ms, daffi_stream_open_fn fn, void *arg,
                            daffi_error *err);

/* Sets (fn not NULL) or clears the ready callback of the asynchronous stream s. Set it
 * in the open callback: credit may come back in the same loop pass. */
void daffi_stream_on_ready(daffi_stream *s, daffi_stream_ready_fn fn, void *arg);

/* Sends the next chunk of the asynchronous stream s: any value (send), or a bin of len
 * bytes at p (send_bin). The chunk is copied into the connection's output at once and
 * written from the loop. Returns 0 (one credit used), or -1 with err set and nothing
 * sent: OVERLOADED when no credit is left (the stream stays usable: wait for the ready
 * callback), UNAVAILABLE when the receiver aborted the stream, its connection dropped
 * or the client was closed, TOO_LARGE for a chunk over max_message, BAD_ARGS. */
int daffi_stream_send_async(daffi_stream *s, const msgpack_object *chunk, daffi_error *err);
int daffi_stream_send_bin_async(daffi_stream *s, const void *p, size_t len,
                                daffi_error *err);

/* Ends the asynchronous stream s (daffi.end) and frees s. Returns 0 when the end is
 * under way: fn runs exactly once, from the loop, with the stream's one result, or its
 * error (the handler's, the error a failed chunk left, TIMEOUT after timeout_ms (0:
 * forever), UNAVAILABLE when the connection drops first). Returns -1 with err set and
 * fn never called when the stream cannot be ended: UNAVAILABLE for a stream the
 * receiver aborted (its id is released there with daffi.abort), whose connection
 * dropped, or whose client was closed; or as daffi_rpc_async(). s is freed in every
 * case but a misuse (BAD_ARGS: fn NULL, a synchronous client's stream), which leaves
 * it as it was. */
int daffi_stream_end_async(daffi_stream *s, int timeout_ms, daffi_reply_fn fn, void *arg,
                           daffi_error *err);

/* stream_nowait's end: daffi.end as a notification, queued for writing; the result is
 * discarded. Frees s. Returns 0, or -1 with err set as daffi_stream_end_async(). */
int daffi_stream_end_nowait_async(daffi_stream *s, daffi_error *err);

/* ---- results and errors ----------------------------------------------------- */

/* Moves what src holds into dst (whose previous content is released) and zeroes src.
 * For keeping an asynchronous call's result or error past its callback. */
void daffi_result_move(daffi_result *dst, daffi_result *src);
void daffi_error_move(daffi_error *dst, daffi_error *src);

/* Frees what a result owns and zeroes it. NULL and zeroed results are accepted. */
void daffi_result_free(daffi_result *r);

/* Frees what an error owns and resets it to DAFFI_ERROR_INIT. NULL is accepted. */
void daffi_error_clear(daffi_error *e);

/* Typed readers for result values (daffi_obj_int, daffi_obj_get, ...) are declared in
 * <daffi/rpc.h>, which this header includes. */

#ifdef __cplusplus
}
#endif
#endif /* DAFFI_CLIENT_H */
