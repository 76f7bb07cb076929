/*
 * bench_async_client.c - the libdaffi asynchronous client under load, for `make bench`
 * (tests/bench/run.sh, scenario (c)).
 *
 * usage: bench_async_client run -s ADDRESS -c CONNS -n CALLS_PER_CONN -p PAYLOAD_BYTES
 *                               [-T TIMEOUT_MS]
 *
 * The same shape and output as bench_calls (the raw epoll client the runner measures
 * the floor with), but through the library: CONNS asynchronous clients
 * (daffi_client_new) on one libevent loop in this one thread, each with exactly one
 * echo(bin(PAYLOAD)) call outstanding; each completion callback checks its result (a
 * bin of PAYLOAD bytes) and makes the connection's next call. Every client is
 * connected before the clock starts. -T gives each call a timeout (0, the default:
 * none, as bench_calls), to measure the per-call timer too. Prints one line:
 *     calls=N conns=C seconds=S calls_per_s=R
 * so the runner compares it with bench_calls against the same server and with the raw
 * floor (bench_calls against bench_raw_server) in the same run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <daffi/client.h>

/* One connection of the run. */
typedef struct bclient {
    struct brun *run;
    daffi_client *c;
    long left;               /* calls still to make after the one in flight */
} bclient;

/* Everything one run owns. */
typedef struct brun {
    struct event_base *base;
    bclient *clients;
    int nclients;
    int connected;
    int timeout_ms;
    size_t payload;
    msgpack_sbuffer params;  /* [bin(payload)], encoded once */
    long done, failed;
    int active;              /* clients with calls left */
} brun;

/* Returns CLOCK_MONOTONIC in seconds. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg);

/* Makes b's next call. Returns 0 or -1 (printed). */
static int call_next(bclient *b)
{
    daffi_error err = DAFFI_ERROR_INIT;

    if (daffi_rpc_raw_async(b->c, "echo", b->run->params.data, b->run->params.size,
                            b->run->timeout_ms, on_reply, b, &err) == -1) {
        fprintf(stderr, "bench_async_client: %s\n", err.message);
        daffi_error_clear(&err);
        return -1;
    }
    return 0;
}

/* A call completed: check it, then the next one, or this client is finished. */
static void on_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    bclient *b = arg;
    brun *r = b->run;
    const char *p;
    size_t len;

    (void)c;
    if (res == NULL || daffi_obj_bin(&res->obj, &p, &len) == -1 || len != r->payload) {
        if (r->failed++ == 0)
            fprintf(stderr, "bench_async_client: %s\n",
                    err != NULL ? err->message : "echo answered something else");
        event_base_loopbreak(r->base);
        return;
    }
    r->done++;
    if (b->left == 0) {
        if (--r->active == 0)
            event_base_loopbreak(r->base);
        return;
    }
    b->left--;
    if (call_next(b) == -1) {
        r->failed++;
        event_base_loopbreak(r->base);
    }
}

/* Counts connections up; a drop ends the run. */
static void on_state(daffi_client *c, int connected, const daffi_error *why, void *arg)
{
    brun *r = arg;

    (void)c;
    if (connected) {
        if (++r->connected == r->nclients)
            event_base_loopbreak(r->base);
        return;
    }
    fprintf(stderr, "bench_async_client: %s\n", why->message);
    r->failed++;
    event_base_loopbreak(r->base);
}

/* The run command. Returns the exit status. */
static int run(const char *addr, int nconns, long calls, size_t payload, int timeout_ms)
{
    brun r;
    msgpack_packer pk;
    daffi_error err = DAFFI_ERROR_INIT;
    char *body = calloc(1, payload ? payload : 1);
    double t0, secs;
    int i, rc = 1;

    memset(&r, 0, sizeof(r));
    r.base = event_base_new();
    r.clients = calloc((size_t)nconns, sizeof(*r.clients));
    if (r.base == NULL || r.clients == NULL || body == NULL) {
        fprintf(stderr, "bench_async_client: out of memory\n");
        return 1;
    }
    r.nclients = nconns;
    r.payload = payload;
    r.timeout_ms = timeout_ms;
    for (size_t k = 0; k < payload; k++)
        body[k] = (char)(k * 31);
    msgpack_sbuffer_init(&r.params);
    msgpack_packer_init(&pk, &r.params, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_bin_with_body(&pk, body, payload);
    for (i = 0; i < nconns; i++) {
        r.clients[i].run = &r;
        r.clients[i].left = calls - 1;
        r.clients[i].c = daffi_client_new(r.base, addr, NULL, &err);
        if (r.clients[i].c == NULL) {
            fprintf(stderr, "bench_async_client: %s\n", err.message);
            goto out;
        }
        daffi_client_on_state(r.clients[i].c, on_state, &r);
    }
    event_base_dispatch(r.base); /* until every client is connected */
    if (r.failed != 0 || r.connected != nconns)
        goto out;
    r.active = nconns;
    t0 = now_s();
    for (i = 0; i < nconns; i++)
        if (call_next(&r.clients[i]) == -1)
            goto out;
    event_base_dispatch(r.base); /* until the last call of the last client */
    secs = now_s() - t0;
    if (r.failed != 0 || r.done != (long)nconns * calls) {
        fprintf(stderr, "bench_async_client: %ld of %ld calls done, %ld failed\n", r.done,
                (long)nconns * calls, r.failed);
        goto out;
    }
    printf("calls=%ld conns=%d seconds=%.3f calls_per_s=%.0f\n", r.done, nconns, secs,
           (double)r.done / secs);
    rc = 0;
out:
    for (i = 0; i < nconns; i++) {
        if (r.clients[i].c != NULL) {
            daffi_client_on_state(r.clients[i].c, NULL, NULL);
            daffi_close(r.clients[i].c);
        }
    }
    daffi_error_clear(&err);
    msgpack_sbuffer_destroy(&r.params);
    free(r.clients);
    free(body);
    event_base_free(r.base);
    return rc;
}

/* Prints the usage on stderr. Returns the exit status 2. */
static int usage(void)
{
    fprintf(stderr, "usage: bench_async_client run -s ADDRESS -c CONNS -n CALLS_PER_CONN "
                    "-p PAYLOAD_BYTES [-T TIMEOUT_MS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    long conns = 1, calls = 0, payload = 0, timeout = 0;
    int opt;

    if (argc < 2 || strcmp(argv[1], "run") != 0)
        return usage();
    optind = 2;
    while ((opt = getopt(argc, argv, "s:c:n:p:T:")) != -1) {
        switch (opt) {
        case 's': addr = optarg; break;
        case 'c': conns = strtol(optarg, NULL, 10); break;
        case 'n': calls = strtol(optarg, NULL, 10); break;
        case 'p': payload = strtol(optarg, NULL, 10); break;
        case 'T': timeout = strtol(optarg, NULL, 10); break;
        default: return usage();
        }
    }
    if (addr == NULL || conns < 1 || conns > 10000 || calls < 1 || payload < 0 ||
        payload > 60000 || timeout < 0 || timeout > 3600000)
        return usage();
    return run(addr, (int)conns, calls, (size_t)payload, (int)timeout);
}
