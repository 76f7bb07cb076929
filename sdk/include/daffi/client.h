/*
 * daffi/client.h - the caller API of libdaffi: connect to a daffid (service or router)
 * or any MessagePack-RPC peer, call its callbacks, read results and errors.
 *
 * Contract
 *   Addresses are "tcp://host:port" or "unix:///path" (see daffi_addr_parse in
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
 * Thread safety
 *   A daffi_client is not thread-safe: the synchronous API runs the connection on the
 *   calling thread. Use one daffi_client per thread (or serialise all access to one
 *   with your own lock). Distinct clients share nothing and may be used concurrently.
 *   daffi_result and daffi_error values belong to whoever holds them.
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
 *
 * The shape to come (issue 3; names reserved, not provided by this version)
 *   The later additions keep every declaration below unchanged:
 *   - an asynchronous client on the caller's libevent loop:
 *       daffi_client *daffi_client_new(struct event_base *base, const char *address,
 *                                      const daffi_client_opts *opts, daffi_error *err);
 *       typedef void (*daffi_reply_fn)(daffi_client *c, const daffi_result *res,
 *                                      const daffi_error *err, void *arg);
 *       int daffi_rpc_async(daffi_client *c, const char *method,
 *                           const msgpack_object *params, int timeout_ms,
 *                           daffi_reply_fn fn, void *arg, daffi_error *err);
 *     with the same result/error types and the same error mapping;
 *   - exposed callbacks, registered with the plugin SDK's daffi_callback_def table
 *     (<daffi/plugin.h>), announced with daffi.hello under opts.name;
 *   - cast / cast_nowait / members / wait_for_members (router control methods);
 *   - reconnect with backoff for long-lived clients (new opts fields, zero = off).
 *   New option fields are appended to daffi_client_opts and a zero field always means
 *   its default, so `daffi_client_opts o = {0};` keeps its meaning.
 */
#ifndef DAFFI_CLIENT_H
#define DAFFI_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
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
} daffi_client_opts;

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

/* ---- results and errors ----------------------------------------------------- */

/* Frees what a result owns and zeroes it. NULL and zeroed results are accepted. */
void daffi_result_free(daffi_result *r);

/* Frees what an error owns and resets it to DAFFI_ERROR_INIT. NULL is accepted. */
void daffi_error_clear(daffi_error *e);

/* Typed readers for result values (any msgpack_object, e.g. &res.obj or an element
 * of it). Each returns 0 and stores the value, or -1 when o is NULL or of another
 * type, with no conversion except: daffi_obj_int/daffi_obj_uint accept any integer
 * that fits, daffi_obj_double accepts integers and float32. Strings and bins are not
 * NUL-terminated and point into the result. */
int daffi_obj_int(const msgpack_object *o, int64_t *out);
int daffi_obj_uint(const msgpack_object *o, uint64_t *out);
int daffi_obj_double(const msgpack_object *o, double *out);
int daffi_obj_bool(const msgpack_object *o, int *out);
int daffi_obj_str(const msgpack_object *o, const char **p, size_t *len);
int daffi_obj_bin(const msgpack_object *o, const char **p, size_t *len);
/* Returns element i of an array, or NULL when o is not an array or i is past its end. */
const msgpack_object *daffi_obj_at(const msgpack_object *o, size_t i);
/* Returns the value of the first entry of map o whose key is the str key, or NULL. */
const msgpack_object *daffi_obj_get(const msgpack_object *o, const char *key);

#ifdef __cplusplus
}
#endif
#endif /* DAFFI_CLIENT_H */
