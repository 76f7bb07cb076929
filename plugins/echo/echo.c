/*
 * echo - returns what it was given, now or later.
 *
 *   echo(x)                 x unchanged, bit for bit: the encoded bytes of the argument
 *                           are relayed, so float32 stays float32, ext and bin stay what
 *                           they were, even a non-minimal integer encoding is kept.
 *                           With zero or several arguments: the array of them.
 *   echo_after(ms, value)   value (bit for bit) after ms milliseconds, 0..max_delay_ms.
 *
 * echo_after shows the asynchronous pattern: the handler arms a timer on the call's own
 * loop, returns DAFFI_PENDING, and the timer callback sets the reply and calls
 * daffi_call_done(). The loop keeps serving other calls meanwhile.
 *
 * [config]
 *   max_delay_ms = N   the largest ms echo_after accepts, 0..60000 (default 60000).
 *
 * libevent comes from the host process: the plugin includes its header but does not
 * link it.
 */
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>
#include <daffi/plugin.h>

#define ECHO_MAX_DELAY_MS 60000

typedef struct echo_state {
    int64_t max_delay_ms;
} echo_state;

/* One pending echo_after: owns its timer; the call is the host's. */
typedef struct echo_delay {
    struct event *timer;
    daffi_call *call;
} echo_delay;

/* echo(x): x; echo() or echo(x, y, ...): [x, y, ...]. */
static daffi_status echo_echo(daffi_call *call)
{
    const char *p;
    size_t len;

    if (daffi_argc(call) == 1)
        daffi_arg_raw(call, 0, &p, &len);
    else
        daffi_args_raw(call, &p, &len);
    daffi_reply_raw(call, p, len);
    return DAFFI_DONE;
}

/* Timer callback of echo_after, on the call's loop: replies with the value, frees the
 * timer and completes the call (after which it is not touched). */
static void echo_fire(evutil_socket_t fd, short what, void *arg)
{
    echo_delay *d = arg;
    daffi_call *call = d->call;
    const char *p;
    size_t len;

    (void)fd;
    (void)what;
    /* the arguments stay valid until daffi_call_done() */
    if (daffi_arg_raw(call, 1, &p, &len) == 0)
        daffi_reply_raw(call, p, len);
    daffi_call_on_cancel(call, NULL, NULL);
    event_free(d->timer);
    free(d);
    daffi_call_done(call);
}

/* The caller left or the deadline passed: nobody waits for the value any more. */
static void echo_cancel(daffi_call *call, void *arg)
{
    echo_delay *d = arg;
    event_free(d->timer);
    free(d);
    daffi_call_done(call);
}

/* echo_after(ms, value): value after ms milliseconds, from a one-shot loop timer. */
static daffi_status echo_after(daffi_call *call)
{
    const echo_state *st = daffi_call_state(call);
    echo_delay *d;
    struct timeval tv;
    int64_t ms;

    if (daffi_argc(call) != 2) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS,
                          "echo_after takes 2 arguments (ms, value), got %zu",
                          daffi_argc(call));
        return DAFFI_DONE;
    }
    if (daffi_arg_int(call, 0, &ms) == -1 || ms < 0 || ms > st->max_delay_ms) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS,
                          "argument 1 (ms) must be an integer 0..%lld",
                          (long long)st->max_delay_ms);
        return DAFFI_DONE;
    }
    if (daffi_call_loop(call) == NULL) { /* a host that runs no loop for this call */
        daffi_reply_error(call, DAFFI_E_HANDLER_ERROR, "no event loop to arm a timer on");
        return DAFFI_DONE;
    }
    d = malloc(sizeof(*d));
    if (d == NULL) {
        daffi_reply_error(call, DAFFI_E_HANDLER_ERROR, "out of memory");
        return DAFFI_DONE;
    }
    d->call = call;
    d->timer = evtimer_new(daffi_call_loop(call), echo_fire, d);
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    if (d->timer == NULL || evtimer_add(d->timer, &tv) == -1) {
        if (d->timer != NULL)
            event_free(d->timer);
        free(d);
        daffi_reply_error(call, DAFFI_E_HANDLER_ERROR, "cannot arm a timer");
        return DAFFI_DONE;
    }
    daffi_call_on_cancel(call, echo_cancel, d);
    return DAFFI_PENDING;
}

/* Reads max_delay_ms from [config] (optional) into fresh instance state. */
static int echo_init(daffi_host *host, void **state)
{
    const char *text = daffi_config_get(host, "max_delay_ms");
    echo_state *st;
    long long v = ECHO_MAX_DELAY_MS;

    if (text != NULL) {
        char *end;
        v = strtoll(text, &end, 10);
        if (end == text || *end != '\0' || v < 0 || v > ECHO_MAX_DELAY_MS) {
            daffi_host_error(host, "[config] max_delay_ms: '%s' is not an integer 0..%d",
                             text, ECHO_MAX_DELAY_MS);
            return -1;
        }
    }
    st = malloc(sizeof(*st));
    if (st == NULL) {
        daffi_host_error(host, "out of memory");
        return -1;
    }
    st->max_delay_ms = v;
    daffi_log(host, DAFFI_LOG_INFO, "max_delay_ms=%lld", v);
    *state = st;
    return 0;
}

/* Frees the instance state echo_init made. */
static void echo_fini(void *state)
{
    free(state);
}

/* digest: a stream handler (DAFFI_CB_STREAM). The open takes no arguments; every chunk
 * (bin or str) is folded, in order, into a running FNV-1a 64-bit hash; the end answers
 * {"chunks": n, "bytes": total, "fnv1a64": hash}. A sender that reorders, drops or
 * repeats a chunk gets a different hash, which is what the stream tests check. */
typedef struct digest_state {
    uint64_t chunks;
    uint64_t bytes;
    uint64_t hash;
} digest_state;

static daffi_status echo_digest(daffi_call *call)
{
    digest_state *d = daffi_stream_data(call);
    switch (daffi_stream_step_of(call)) {
    case DAFFI_STREAM_OPEN:
        if (daffi_argc(call) != 0) {
            daffi_reply_error(call, DAFFI_E_BAD_ARGS, "digest takes no arguments");
            return DAFFI_DONE;
        }
        d = calloc(1, sizeof(*d));
        if (d == NULL) {
            daffi_reply_error(call, DAFFI_E_HANDLER_ERROR, "out of memory");
            return DAFFI_DONE;
        }
        d->hash = 14695981039346656037ull;
        daffi_stream_set_data(call, d);
        return DAFFI_DONE;
    case DAFFI_STREAM_CHUNK: {
        const msgpack_object *o = daffi_stream_chunk(call);
        const unsigned char *p;
        size_t len;
        if (o->type == MSGPACK_OBJECT_BIN) {
            p = (const unsigned char *)o->via.bin.ptr;
            len = o->via.bin.size;
        } else if (o->type == MSGPACK_OBJECT_STR) {
            p = (const unsigned char *)o->via.str.ptr;
            len = o->via.str.size;
        } else {
            daffi_reply_error(call, DAFFI_E_BAD_ARGS, "chunk %llu must be bin or str",
                              (unsigned long long)daffi_stream_index(call));
            return DAFFI_DONE;
        }
        for (size_t i = 0; i < len; i++) {
            d->hash ^= p[i];
            d->hash *= 1099511628211ull;
        }
        d->chunks++;
        d->bytes += len;
        return DAFFI_DONE;
    }
    case DAFFI_STREAM_END: {
        msgpack_packer *pk = daffi_reply_packer(call);
        msgpack_pack_map(pk, 3);
        msgpack_pack_str(pk, 6);
        msgpack_pack_str_body(pk, "chunks", 6);
        msgpack_pack_uint64(pk, d->chunks);
        msgpack_pack_str(pk, 5);
        msgpack_pack_str_body(pk, "bytes", 5);
        msgpack_pack_uint64(pk, d->bytes);
        msgpack_pack_str(pk, 7);
        msgpack_pack_str_body(pk, "fnv1a64", 7);
        msgpack_pack_uint64(pk, d->hash);
        free(d);
        daffi_stream_set_data(call, NULL);
        return DAFFI_DONE;
    }
    case DAFFI_STREAM_ABORT:
        free(d);
        daffi_stream_set_data(call, NULL);
        return DAFFI_DONE;
    default:
        daffi_reply_error(call, DAFFI_E_BAD_ARGS,
                          "digest is a stream handler: open it with daffi.stream");
        return DAFFI_DONE;
    }
}

static const daffi_callback_def echo_callbacks[] = {
    {"echo", echo_echo, 0, "echo(x): x unchanged; echo(...): the array of the arguments"},
    {"echo_after", echo_after, 0, "echo_after(ms, value): value after ms milliseconds"},
    {"digest", echo_digest, DAFFI_CB_STREAM, "stream: a running FNV-1a 64 of its chunks"},
    {NULL, NULL, 0, NULL}
};

DAFFI_PLUGIN("echo", "1.0.0", echo_init, echo_fini, echo_callbacks);
