/*
 * async_caller.c - an asynchronous daffi caller: many calls in flight at once on one
 * connection, on the program's own libevent loop, each completed by a callback.
 *
 *   cc async_caller.c $(pkg-config --cflags --libs daffi) -o async_caller
 *   ./async_caller [ADDRESS [N]]   (default $DAFFI_ADDRESS, else tcp://127.0.0.1:6001;
 *                                   N = 1000)
 *
 * Against a daffid serving the example plugins (make run) it issues N add(i, i) calls
 * at once, and three echo_after calls whose answers come back in the reverse order of
 * the calls, then prints:
 *   echo_after answers in completion order: c b a
 *   1000 concurrent add calls on one connection: 1000 right, 0 wrong, 0 failed (8.1 ms)
 * and exits 0 when every call got its own right answer, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include <daffi/client.h>

/* What the whole run counts. */
typedef struct run {
    struct event_base *base;
    long pending;         /* calls not completed yet */
    long right, wrong, failed;
    char order[8];        /* tags of echo_after answers, in completion order */
    size_t norder;
} run;

/* One add(i, i) call: its own expected answer travels with it. */
typedef struct add_call {
    run *r;
    int64_t expect;
} add_call;

static void finish_one(run *r)
{
    if (--r->pending == 0)
        event_base_loopbreak(r->base);
}

/* Completion of add(i, i): the answer must be this call's 2 * i. */
static void add_done(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    add_call *a = arg;
    int64_t v;

    (void)c;
    if (err != NULL) {
        if (a->r->failed++ == 0)
            fprintf(stderr, "add: %s (code %d): %s\n", err->name, err->code, err->message);
    } else if (daffi_obj_int(&res->obj, &v) == 0 && v == a->expect) {
        a->r->right++;
    } else {
        a->r->wrong++;
    }
    finish_one(a->r);
}

/* Completion of echo_after(ms, tag): records the tag. */
static void echo_done(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    run *r = arg;
    const char *p;
    size_t len;

    (void)c;
    if (err != NULL) {
        fprintf(stderr, "echo_after: %s (code %d): %s\n", err->name, err->code, err->message);
        r->failed++;
    } else if (daffi_obj_str(&res->obj, &p, &len) == 0 && len == 1 &&
               r->norder < sizeof(r->order) - 1) {
        r->order[r->norder++] = p[0];
    }
    finish_one(r);
}

/* Starts echo_after(ms, tag). Returns 0, or -1 after printing why. */
static int start_echo_after(daffi_client *c, run *r, int ms, const char *tag)
{
    msgpack_object args[2], params;
    daffi_error err = DAFFI_ERROR_INIT;

    args[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    args[0].via.u64 = (uint64_t)ms;
    args[1].type = MSGPACK_OBJECT_STR;
    args[1].via.str.ptr = tag;
    args[1].via.str.size = (uint32_t)strlen(tag);
    params.type = MSGPACK_OBJECT_ARRAY;
    params.via.array.size = 2;
    params.via.array.ptr = args;
    if (daffi_rpc_async(c, "echo_after", &params, 5000, echo_done, r, &err) == -1) {
        fprintf(stderr, "echo_after: %s\n", err.message);
        daffi_error_clear(&err);
        return -1;
    }
    r->pending++;
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    const char *env = getenv("DAFFI_ADDRESS");
    const char *address = argc > 1 ? argv[1] : env != NULL ? env : "tcp://127.0.0.1:6001";
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1000, i;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c;
    add_call *calls;
    run r;
    double t0;
    int ok;

    if (n < 1 || n > 1000000) {
        fprintf(stderr, "async_caller: N must be 1 .. 1000000\n");
        return 1;
    }
    memset(&r, 0, sizeof(r));
    r.base = event_base_new();
    calls = calloc((size_t)n, sizeof(*calls));
    if (r.base == NULL || calls == NULL) {
        fprintf(stderr, "async_caller: out of memory\n");
        return 1;
    }
    /* the connection is made on the loop; calls made before it is up wait for it */
    c = daffi_client_new(r.base, address, NULL, &err);
    if (c == NULL) {
        fprintf(stderr, "async_caller: %s (code %d): %s\n", err.name, err.code, err.message);
        return 1;
    }
    t0 = now_ms();
    /* answered after 60, 40 and 20 ms: they complete in the reverse order */
    if (start_echo_after(c, &r, 60, "a") == -1 || start_echo_after(c, &r, 40, "b") == -1 ||
        start_echo_after(c, &r, 20, "c") == -1)
        return 1;
    for (i = 0; i < n; i++) {
        msgpack_object args[2], params;

        calls[i].r = &r;
        calls[i].expect = 2 * i;
        args[0].type = args[1].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        args[0].via.u64 = args[1].via.u64 = (uint64_t)i;
        params.type = MSGPACK_OBJECT_ARRAY;
        params.via.array.size = 2;
        params.via.array.ptr = args;
        /* params are only read during the call: a stack array is fine */
        if (daffi_rpc_async(c, "add", &params, 5000, add_done, &calls[i], &err) == -1) {
            fprintf(stderr, "add: %s\n", err.message);
            return 1;
        }
        r.pending++;
    }
    event_base_dispatch(r.base); /* until the last completion breaks the loop */
    printf("echo_after answers in completion order: %c %c %c\n", r.order[0] ? r.order[0] : '?',
           r.order[1] ? r.order[1] : '?', r.order[2] ? r.order[2] : '?');
    printf("%ld concurrent add calls on one connection: %ld right, %ld wrong, %ld failed "
           "(%.1f ms)\n", n, r.right, r.wrong, r.failed, now_ms() - t0);
    ok = r.right == n && r.wrong == 0 && r.failed == 0 && strcmp(r.order, "cba") == 0;
    daffi_close(c);
    event_base_free(r.base);
    free(calls);
    return ok ? 0 : 1;
}
