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
        daffi_reply_error(call, DAFFI_ERR_BAD_ARGS,
                          "echo_after takes 2 arguments (ms, value), got %zu",
                          daffi_argc(call));
        return DAFFI_DONE;
    }
    if (daffi_arg_int(call, 0, &ms) == -1 || ms < 0 || ms > st->max_delay_ms) {
        daffi_reply_error(call, DAFFI_ERR_BAD_ARGS,
                          "argument 1 (ms) must be an integer 0..%lld",
                          (long long)st->max_delay_ms);
        return DAFFI_DONE;
    }
    if (daffi_call_loop(call) == NULL) { /* a host that runs no loop for this call */
        daffi_reply_error(call, DAFFI_ERR_HANDLER, "no event loop to arm a timer on");
        return DAFFI_DONE;
    }
    d = malloc(sizeof(*d));
    if (d == NULL) {
        daffi_reply_error(call, DAFFI_ERR_HANDLER, "out of memory");
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
        daffi_reply_error(call, DAFFI_ERR_HANDLER, "cannot arm a timer");
        return DAFFI_DONE;
    }
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

static const daffi_callback_def echo_callbacks[] = {
    {"echo", echo_echo, 0, "echo(x): x unchanged; echo(...): the array of the arguments"},
    {"echo_after", echo_after, 0, "echo_after(ms, value): value after ms milliseconds"},
    {NULL, NULL, 0, NULL}
};

DAFFI_PLUGIN("echo", "1.0.0", echo_init, echo_fini, echo_callbacks);
