/*
 * fib - fib(n) by the naive recursive definition: CPU-bound on purpose.
 *
 *   fib(n)   n an integer 0..45; fib(0) = 0, fib(1) = 1, fib(n) = fib(n-1) + fib(n-2).
 *
 * The callback is flagged DAFFI_CB_BLOCKING: fib(40) takes about 0.2 s and fib(45)
 * over a second here, so it runs on the blocking thread pool and never stalls an event
 * loop. [plugin] concurrency bounds how many run at once.
 *
 * Instance state counts the calls (handlers run on several threads: an atomic), and
 * fini logs the count.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <daffi/plugin.h>

#define FIB_MAX_N 45 /* fib(45) = 1134903170; each step up costs 1.6 times more */

typedef struct fib_state {
    const daffi_host *host;   /* for logging from fini */
    atomic_ulong calls;
} fib_state;

/* The definition, deliberately not memoised. */
static uint64_t fib_naive(unsigned n)
{
    return n < 2 ? n : fib_naive(n - 1) + fib_naive(n - 2);
}

/* fib(n). */
static daffi_status fib_fib(daffi_call *call)
{
    fib_state *st = daffi_call_state(call);
    int64_t n;

    atomic_fetch_add_explicit(&st->calls, 1, memory_order_relaxed);
    if (daffi_argc(call) != 1) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "fib takes 1 argument (n), got %zu",
                          daffi_argc(call));
        return DAFFI_DONE;
    }
    if (daffi_arg_int(call, 0, &n) == -1 || n < 0 || n > FIB_MAX_N) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "argument 1 (n) must be an integer 0..%d",
                          FIB_MAX_N);
        return DAFFI_DONE;
    }
    daffi_reply_uint(call, fib_naive((unsigned)n));
    return DAFFI_DONE;
}

/* Creates the instance state: the call counter, and the host to log with at fini. */
static int fib_init(daffi_host *host, void **state)
{
    fib_state *st = malloc(sizeof(*st));

    if (st == NULL) {
        daffi_host_error(host, "out of memory");
        return -1;
    }
    st->host = host;
    atomic_init(&st->calls, 0);
    *state = st;
    return 0;
}

/* Logs how many calls this instance served and frees its state. */
static void fib_fini(void *state)
{
    fib_state *st = state;

    daffi_log(st->host, DAFFI_LOG_INFO, "served %lu calls",
              atomic_load_explicit(&st->calls, memory_order_relaxed));
    free(st);
}

static const daffi_callback_def fib_callbacks[] = {
    {"fib", fib_fib, DAFFI_CB_BLOCKING, "fib(n): the n-th Fibonacci number, naively"},
    {NULL, NULL, 0, NULL}
};

DAFFI_PLUGIN("fib", "1.0.0", fib_init, fib_fini, fib_callbacks);
