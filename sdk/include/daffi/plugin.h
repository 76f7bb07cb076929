/*
 * daffi/plugin.h - the handler SDK: what a daffid plugin (.so) is built against.
 *
 * Contract
 *   A plugin exports exactly one symbol, `daffi_plugin` (DAFFI_PLUGIN() defines it,
 *   with C linkage and default visibility also when compiled as C++), a
 *   daffi_plugin_descriptor. The host checks abi_major == DAFFI_ABI_MAJOR and
 *   abi_minor <= the host's DAFFI_ABI_MINOR before it touches anything else.
 *
 *   ABI versions: a major changes the layout of what exists; a minor only appends
 *   (fields at the end of the descriptor or of a callback entry, new functions), so a
 *   host loads every plugin of its major whose minor is not newer than its own.
 *   `size` (the descriptor's) and `callback_size` (one callback entry's, the stride of
 *   the table) say how much a plugin's build has; the host reads only that and takes
 *   defaults for the rest. History:
 *     1.0  the descriptor up to `callbacks`; callback entries {name, fn, flags, doc}.
 *     1.1  the descriptor records callback_size and the msgpack-c and libevent
 *          versions the plugin was compiled against: the host refuses a plugin built
 *          against another msgpack-c major (msgpack_object's layout) or another
 *          libevent major.minor (another library soname), naming both versions.
 *          daffi_reply_error_details().
 *
 *   Lifecycle: init(host, &state) runs once per loaded generation on the main thread,
 *   before any call; it may read the plugin's [config] values and must return 0, or
 *   -1 after daffi_host_error(). fini(state) runs once, after the generation's last
 *   call completed. A reload creates a new generation with fresh state: state belongs
 *   to the instance init created, never to globals.
 *
 *   Handlers: daffi_status fn(daffi_call *call). A handler reads its arguments with the
 *   accessors, sets exactly one outcome (a daffi_reply_* or daffi_reply_error) and
 *   returns DAFFI_DONE; or keeps the call, returns DAFFI_PENDING, and later sets the
 *   outcome and calls daffi_call_done(). Arguments stay valid until the call is done.
 *   Handlers of one plugin run concurrently on every loop thread (and on the blocking
 *   pool when flagged DAFFI_CB_BLOCKING): shared state must be read-only or locked.
 *   A handler not flagged blocking must never block: it runs on an event loop that
 *   serves many connections. Use daffi_call_loop() for timers and async I/O.
 *
 *   Calling other members from a handler: a handler (not flagged blocking) may use
 *   libdaffi's asynchronous client (<daffi/client.h>) on daffi_call_loop(call): it
 *   creates a client there (daffi_client_new, e.g. to the router whose address its
 *   [config] names), starts the call (daffi_rpc_opts_async ...), returns
 *   DAFFI_PENDING, and in the call's completion, which runs on the same loop, sets
 *   the outcome and calls daffi_call_done(). A client belongs to the loop it was made
 *   on: keep one per loop, or make one per call and daffi_close() it in the
 *   completion (tests/fixtures/plugins/relay.c does). The libdaffi functions are
 *   daffid's own (it exports them): a plugin links nothing for them either.
 *
 *   Memory: everything the accessors return is owned by the call and valid until
 *   daffi_call_done() (or the handler's DAFFI_DONE return). Reply helpers copy.
 *
 *   Linking: the functions below are provided by the host process (daffid, or a client
 *   program using libdaffi); a plugin is built with
 *     cc -shared -fPIC $(pkg-config --cflags daffi) plugin.c -o plugin.so
 *   and does not link against them. A handler may also be linked into a client
 *   program that exposes it (daffi_client_expose): there the host functions are
 *   libdaffi's, for a call without a plugin instance (daffi_call_host() is NULL):
 *   daffi_config_get() and the other [config] readers find nothing, daffi_log()
 *   writes its line to stderr, daffi_host_error() does nothing.
 *
 * This header is C99 and C++ compatible and includes only <msgpack.h> and libevent's
 * <event2/event-config.h> (for the version it records) besides libc.
 */
#ifndef DAFFI_PLUGIN_H
#define DAFFI_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <event2/event-config.h>
#include <daffi/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAFFI_ABI_MAJOR 1u
#define DAFFI_ABI_MINOR 1u

/* A library version as a descriptor records it: major << 16 | minor << 8 | patch. */
#define DAFFI_VERSION_CODE(major_, minor_, patch_)                                       \
    (((uint32_t)(major_) << 16) | ((uint32_t)(minor_) << 8) | (uint32_t)(patch_))
/* The msgpack-c and libevent versions of the headers this file is compiled with. */
#define DAFFI_BUILT_MSGPACK                                                              \
    DAFFI_VERSION_CODE(MSGPACK_VERSION_MAJOR, MSGPACK_VERSION_MINOR, MSGPACK_VERSION_REVISION)
#define DAFFI_BUILT_LIBEVENT ((uint32_t)(EVENT__NUMERIC_VERSION) >> 8)

/* The name of the descriptor symbol the host looks up. */
#define DAFFI_PLUGIN_SYMBOL "daffi_plugin"

#if defined(__GNUC__) || defined(__clang__)
#define DAFFI_PRINTF(fmt_, args_) __attribute__((format(printf, fmt_, args_)))
#else
#define DAFFI_PRINTF(fmt_, args_)
#endif

struct event_base; /* libevent; include <event2/event.h> to use it */

typedef struct daffi_call daffi_call; /* one call in progress (opaque) */
typedef struct daffi_host daffi_host; /* the host's view of one plugin instance */

typedef enum daffi_status {
    DAFFI_DONE = 0,    /* the outcome is set: send it now */
    DAFFI_PENDING = 1  /* the handler kept the call; daffi_call_done() follows */
} daffi_status;

typedef daffi_status (*daffi_handler_fn)(daffi_call *call);

/* Callback flags. */
#define DAFFI_CB_BLOCKING 0x1u /* run on the blocking thread pool, not on a loop */
#define DAFFI_CB_STREAM 0x2u   /* a stream handler (see "Streams" below); runs on the
                                  loop, so it cannot be combined with BLOCKING */

/* One entry of a plugin's callback table. A later minor may append fields: the
 * table's stride is the descriptor's callback_size, never the host's sizeof. */
typedef struct daffi_callback_def {
    const char *name;      /* the method name callers use; never "daffi." prefixed */
    daffi_handler_fn fn;
    unsigned flags;        /* DAFFI_CB_* */
    const char *doc;       /* optional one-line description, may be NULL */
} daffi_callback_def;

typedef struct daffi_plugin_descriptor {
    uint32_t abi_major;    /* DAFFI_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;    /* DAFFI_ABI_MINOR the plugin was built with */
    uint32_t size;         /* sizeof(daffi_plugin_descriptor) as built */
    const char *name;      /* plugin name, e.g. "calc" */
    const char *version;   /* plugin version text, e.g. "1.0.0" */
    /* optional: create per-instance state; returns 0 or -1 (see daffi_host_error) */
    int (*init)(daffi_host *host, void **state);
    /* optional: release what init created */
    void (*fini)(void *state);
    /* callbacks, terminated by an entry whose name is NULL */
    const daffi_callback_def *callbacks;
    /* ---- ABI 1.1 ---- */
    uint32_t callback_size;    /* sizeof(daffi_callback_def) as built: the table's stride */
    uint32_t msgpack_version;  /* DAFFI_BUILT_MSGPACK: msgpack-c compiled against */
    uint32_t libevent_version; /* DAFFI_BUILT_LIBEVENT: libevent compiled against */
} daffi_plugin_descriptor;

/* What the descriptor symbol is declared with: default visibility (also under
 * -fvisibility=hidden), and C linkage when compiled as C++, so that the host finds
 * the unmangled name "daffi_plugin" (a const object would have internal linkage in
 * C++ otherwise). */
#if defined(__GNUC__)
#define DAFFI_PLUGIN_VISIBLE __attribute__((visibility("default")))
#else
#define DAFFI_PLUGIN_VISIBLE
#endif
#ifdef __cplusplus
#define DAFFI_PLUGIN_EXPORT extern "C" DAFFI_PLUGIN_VISIBLE
#else
#define DAFFI_PLUGIN_EXPORT DAFFI_PLUGIN_VISIBLE
#endif

/* Defines the descriptor: DAFFI_PLUGIN("calc", "1.0.0", init, fini, callbacks); at file
 * scope, in C or C++. */
#define DAFFI_PLUGIN(name_, version_, init_, fini_, callbacks_)                        \
    DAFFI_PLUGIN_EXPORT const daffi_plugin_descriptor daffi_plugin = {                 \
        DAFFI_ABI_MAJOR, DAFFI_ABI_MINOR, (uint32_t)sizeof(daffi_plugin_descriptor),   \
        (name_), (version_), (init_), (fini_), (callbacks_),                           \
        (uint32_t)sizeof(daffi_callback_def), DAFFI_BUILT_MSGPACK, DAFFI_BUILT_LIBEVENT}

/* ---- host: configuration, state, logging ------------------------------------- */

/* Returns the value of key in the plugin's [config] section, or NULL when absent.
 * The string is owned by the host and valid for the generation's lifetime. */
const char *daffi_config_get(const daffi_host *host, const char *key);
/* Number of [config] entries and the i-th key/value (NULL past the end). */
size_t daffi_config_count(const daffi_host *host);
const char *daffi_config_key(const daffi_host *host, size_t i);
const char *daffi_config_value(const daffi_host *host, size_t i);

/* Reports why init failed; the host prints it with the plugin's file name. */
void daffi_host_error(daffi_host *host, const char *fmt, ...)
    DAFFI_PRINTF(2, 3);

/* Log levels, in increasing severity. */
typedef enum daffi_log_level {
    DAFFI_LOG_DEBUG = 0,
    DAFFI_LOG_INFO = 1,
    DAFFI_LOG_WARN = 2,
    DAFFI_LOG_ERROR = 3
} daffi_log_level;

/* Writes one log line attributed to this plugin (the host adds time and fields). */
void daffi_log(const daffi_host *host, daffi_log_level level, const char *fmt, ...)
    DAFFI_PRINTF(3, 4);

/* ---- call: identity and arguments ------------------------------------------- */

daffi_host *daffi_call_host(const daffi_call *call);
/* The state init() created for this call's generation. */
void *daffi_call_state(const daffi_call *call);
/* The event loop that owns the call's connection: use it (from that loop's thread
 * only) for timers and async I/O of a pending call. Its clock is libevent's coarse one
 * (no syscall per loop pass): a timer may fire up to a kernel tick (1-4 ms) early;
 * check the time yourself where that matters. The call's own deadline never fires
 * early. */
struct event_base *daffi_call_loop(const daffi_call *call);
/* The method name, NUL-terminated. */
const char *daffi_call_method(const daffi_call *call);

/* The params array and its elements. daffi_arg returns NULL past the end. The host
 * may decode the params on the first daffi_arg (from any thread, once); daffi_argc,
 * daffi_arg_raw and daffi_args_raw read the encoded bytes and decode nothing. */
size_t daffi_argc(const daffi_call *call);
const msgpack_object *daffi_arg(const daffi_call *call, size_t i);
/* The encoded bytes of argument i (for bit-exact relay), 0 on success, -1 past end. */
int daffi_arg_raw(const daffi_call *call, size_t i, const char **p, size_t *len);
/* The encoded bytes of the whole params array. */
void daffi_args_raw(const daffi_call *call, const char **p, size_t *len);

/* Typed accessors: return 0 and store the value, or -1 when argument i is absent or of
 * another type (no conversion except: an integer is accepted by daffi_arg_double,
 * int64/uint64 accept any integer that fits). str/bin pointers are not NUL-terminated. */
int daffi_arg_int(const daffi_call *call, size_t i, int64_t *out);
int daffi_arg_uint(const daffi_call *call, size_t i, uint64_t *out);
int daffi_arg_double(const daffi_call *call, size_t i, double *out);
int daffi_arg_bool(const daffi_call *call, size_t i, int *out);
int daffi_arg_str(const daffi_call *call, size_t i, const char **p, size_t *len);
int daffi_arg_bin(const daffi_call *call, size_t i, const char **p, size_t *len);

/* ---- call: outcome ----------------------------------------------------------- */

/* Each sets the call's result (the last one set wins); strings and bins are copied. */
void daffi_reply_nil(daffi_call *call);
void daffi_reply_bool(daffi_call *call, int v);
void daffi_reply_int(daffi_call *call, int64_t v);
void daffi_reply_uint(daffi_call *call, uint64_t v);
void daffi_reply_double(daffi_call *call, double v);
void daffi_reply_float(daffi_call *call, float v);
void daffi_reply_str(daffi_call *call, const char *p, size_t len);
void daffi_reply_cstr(daffi_call *call, const char *s);
void daffi_reply_bin(daffi_call *call, const void *p, size_t len);
void daffi_reply_object(daffi_call *call, const msgpack_object *obj);
/* Sets the result to already-encoded msgpack bytes (exactly one object: the caller
 * gets HANDLER_ERROR "the result is not one MessagePack object" otherwise, or "nests
 * deeper than max_depth" for a value deeper than the limits allow). */
void daffi_reply_raw(daffi_call *call, const char *p, size_t len);
/* Returns a packer into the result: pack exactly one object (it may be a large
 * array or map). Discards any result set before. Owned by the call. */
msgpack_packer *daffi_reply_packer(daffi_call *call);

/* Sets the outcome to an error: code is a daffi error code (<daffi/errors.h>:
 * DAFFI_E_BAD_ARGS, DAFFI_E_HANDLER_ERROR, ...); the message is formatted printf-style. */
void daffi_reply_error(daffi_call *call, int code, const char *fmt, ...)
    DAFFI_PRINTF(3, 4);

/* As daffi_reply_error(), with a details map the caller sees with the error (its
 * daffi_error.details; the wire's [code, message, details]), e.g. the type of an
 * exception and its traceback:
 *     msgpack_packer *pk = daffi_reply_error_details(call, DAFFI_E_HANDLER_ERROR, "boom");
 *     msgpack_pack_map(pk, 1);
 *     msgpack_pack_str_with_body(pk, "type", 4);
 *     msgpack_pack_str_with_body(pk, "ValueError", 10);
 * Returns a packer (owned by the call) into the details: pack exactly one map, before
 * the call completes. Details that are not one map, or would make the response larger
 * than max_message, are dropped and the message says so. Any later reply replaces
 * the error and its details. Since ABI 1.1. */
msgpack_packer *daffi_reply_error_details(daffi_call *call, int code, const char *fmt, ...)
    DAFFI_PRINTF(3, 4);

/* Completes a call whose handler returned DAFFI_PENDING: the outcome set before is
 * sent (a call with no outcome set answers nil). Call it once, from any thread; the
 * call must not be touched afterwards. Harmless when the caller has gone. */
void daffi_call_done(daffi_call *call);

/* ---- streams ------------------------------------------------------------------
 *
 * A callback flagged DAFFI_CB_STREAM receives a stream (sdk/PROTOCOL.md, "Streams"):
 * the host calls it once per step, with the same call object for the whole stream:
 *   DAFFI_STREAM_OPEN   the arguments are the stream's params; return DAFFI_DONE to
 *                       accept, or set an error to refuse (the caller gets it);
 *   DAFFI_STREAM_CHUNK  daffi_stream_chunk() is the next chunk, in the sender's order;
 *                       setting an error fails the stream (later chunks are skipped
 *                       and the end answers that error);
 *   DAFFI_STREAM_END    every chunk was seen: set the stream's one result;
 *   DAFFI_STREAM_ABORT  the stream ends without an end (the sender left): release what
 *                       you hold; no result is sent.
 * Each step must return DAFFI_DONE (steps complete inline, on the loop). A chunk's
 * object is valid only during its step. Keep per-stream state with
 * daffi_stream_set_data(); it is yours to free at END or ABORT. */
typedef enum daffi_stream_step {
    DAFFI_STREAM_NONE = 0,   /* not a stream call */
    DAFFI_STREAM_OPEN = 1,
    DAFFI_STREAM_CHUNK = 2,
    DAFFI_STREAM_END = 3,
    DAFFI_STREAM_ABORT = 4
} daffi_stream_step;

daffi_stream_step daffi_stream_step_of(const daffi_call *call);
/* The current chunk (CHUNK step), or NULL. */
const msgpack_object *daffi_stream_chunk(const daffi_call *call);
/* The 0-based index of the current chunk (CHUNK), or the number of chunks (END). */
uint64_t daffi_stream_index(const daffi_call *call);
void daffi_stream_set_data(daffi_call *call, void *data);
void *daffi_stream_data(const daffi_call *call);

/* Returns 1 when the caller is gone or the call timed out, so further work is wasted
 * (the reply would be discarded). Safe from the call's loop thread. */
int daffi_call_cancelled(const daffi_call *call);

/* Cancellation, pushed: fn(call, arg) runs on the call's loop, at most once, when a
 * call whose handler returned DAFFI_PENDING is cancelled (its caller's connection
 * closed, or its deadline passed). Stop the work there and complete the call with
 * daffi_call_done (its outcome is discarded). Set it before returning DAFFI_PENDING;
 * fn NULL removes it (do that before completing the call some other way, from the
 * loop). Meant for handlers that wait on the loop (timers, I/O); a DAFFI_CB_BLOCKING
 * handler polls daffi_call_cancelled() instead. */
typedef void (*daffi_cancel_fn)(daffi_call *call, void *arg);
void daffi_call_on_cancel(daffi_call *call, daffi_cancel_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* DAFFI_PLUGIN_H */
