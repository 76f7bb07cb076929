/*
 * bench_nats.c - the references for daffid over NATS (tests/bench/run.sh, README
 * "Scaling out"): plain libnats request-reply, no daffid anywhere. A responder process
 * (its own connection, a queue subscription) answers each request with its payload;
 * requesters keep C requests outstanding until C x N replies came back, and it prints
 * calls_per_s= like bench_calls. Two shapes:
 *
 *   -m one (default): one connection with C requests outstanding (reply subjects
 *     <inbox>.<slot>, a slot's next request sent from the reply's callback);
 *   -m conns: C connections with one request outstanding each, the shape of the
 *     daffid rows (200 callers, one call each in flight). libnats at its leanest for
 *     that shape: every connection on one libevent loop (libnats' libevent adapter,
 *     sendAsap: no reader or flusher thread per connection), every reply delivered
 *     by libnats' one global delivery thread, which sends that connection's next
 *     request.
 *
 *   bench_nats ref -u nats://127.0.0.1:PORT [-m one|conns] [-c 200] [-n 250] [-p 64]
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/adapters/libevent.h>
#include <nats/nats.h>

#define SUBJECT "bench.echo"

typedef struct req_state {
    natsConnection *nc;
    char inbox[128];
    char payload[4096];
    int payload_len;
    long per_slot;
    long *left;            /* per slot: requests still to send (callback thread only) */
    atomic_long done;
    long total;
} req_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    if (reply != NULL)
        natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

/* The responder: serves until its parent kills it. */
static int serve(const char *url)
{
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK ||
        natsConnection_QueueSubscribe(&sub, nc, SUBJECT, "bench", on_request, NULL) != NATS_OK ||
        natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
        natsConnection_Flush(nc) != NATS_OK) {
        fprintf(stderr, "bench_nats: responder: %s\n", nats_GetLastError(NULL));
        return 1;
    }
    for (;;)
        pause();
}

static void send_slot(req_state *s, long slot)
{
    char reply[160];
    snprintf(reply, sizeof(reply), "%s.%ld", s->inbox, slot);
    natsConnection_PublishRequest(s->nc, SUBJECT, reply, s->payload, s->payload_len);
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    req_state *s = closure;
    const char *dot = strrchr(natsMsg_GetSubject(msg), '.');
    long slot = dot != NULL ? strtol(dot + 1, NULL, 10) : -1;
    natsMsg_Destroy(msg);
    atomic_fetch_add(&s->done, 1);
    if (slot >= 0 && --s->left[slot] > 0)
        send_slot(s, slot);
}

/* -m conns: one requester connection of C, one request in flight. */
typedef struct conn_state {
    natsConnection *nc;
    char inbox[128];
    long left;                     /* delivery thread only */
    atomic_long *done;
    const char *payload;
    int payload_len;
} conn_state;

static void on_conn_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                          void *closure)
{
    (void)sub;
    conn_state *c = closure;
    natsMsg_Destroy(msg);
    atomic_fetch_add(c->done, 1);
    if (--c->left > 0)
        natsConnection_PublishRequest(nc, SUBJECT, c->inbox, c->payload, c->payload_len);
}

static int run_conns(const char *url, long conns, long calls, int payload, pid_t child)
{
    static char data[4096];
    memset(data, 'x', sizeof(data));
    natsLibevent_Init();
    struct event_base *base = event_base_new();
    conn_state *cs = calloc((size_t)conns, sizeof(*cs));
    natsSubscription **subs = calloc((size_t)conns, sizeof(*subs));
    natsOptions *opts = NULL;
    atomic_long done = 0;
    if (base == NULL || cs == NULL || subs == NULL || natsOptions_Create(&opts) != NATS_OK ||
        natsOptions_SetURL(opts, url) != NATS_OK ||
        natsOptions_SetEventLoop(opts, base, natsLibevent_Attach, natsLibevent_Read,
                                 natsLibevent_Write, natsLibevent_Detach) != NATS_OK ||
        natsOptions_SetSendAsap(opts, true) != NATS_OK ||
        natsOptions_UseGlobalMessageDelivery(opts, true) != NATS_OK)
        goto fail;
    for (long i = 0; i < conns; i++) {
        natsInbox *inbox = NULL;
        cs[i].done = &done;
        cs[i].payload = data;
        cs[i].payload_len = payload;
        cs[i].left = calls;
        if (natsConnection_Connect(&cs[i].nc, opts) != NATS_OK ||
            natsInbox_Create(&inbox) != NATS_OK)
            goto fail;
        snprintf(cs[i].inbox, sizeof(cs[i].inbox), "%s", (const char *)inbox);
        natsInbox_Destroy(inbox);
        if (natsConnection_Subscribe(&subs[i], cs[i].nc, cs[i].inbox, on_conn_reply, &cs[i]) !=
            NATS_OK)
            goto fail;
    }
    /* every subscription and the responder's interest in place before the clock:
     * one round trip of the last connection, run through the loop */
    for (int i = 0; i < 500; i++) {
        natsMsg *m = NULL;
        natsConnection *probe = NULL;
        if (natsConnection_ConnectTo(&probe, url) == NATS_OK &&
            natsConnection_Request(&m, probe, SUBJECT, "", 0, 100) == NATS_OK) {
            natsMsg_Destroy(m);
            natsConnection_Destroy(probe);
            break;
        }
        natsConnection_Destroy(probe);
    }
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK); /* the SUBs go out */
    double t0 = now_s();
    for (long i = 0; i < conns; i++)
        natsConnection_PublishRequest(cs[i].nc, SUBJECT, cs[i].inbox, data, payload);
    double deadline = t0 + 120;
    struct timeval tick = {0, 10000};
    while (atomic_load(&done) < conns * calls && now_s() < deadline) {
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    double t = now_s() - t0;
    long got = atomic_load(&done);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("calls=%ld conns=%ld seconds=%.3f calls_per_s=%.0f\n", got, conns, t,
           (double)got / t);
    fflush(stdout);
    _exit(got == conns * calls ? 0 : 1); /* 200 connections' teardown is not measured */
fail:
    fprintf(stderr, "bench_nats: %s\n", nats_GetLastError(NULL));
    kill(child, SIGKILL);
    return 1;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *mode = "one";
    long conns = 200, calls = 250, payload = 64;
    int opt;
    if (argc < 2 || strcmp(argv[1], "ref") != 0)
        goto usage;
    optind = 2;
    while ((opt = getopt(argc, argv, "u:m:c:n:p:")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'm': mode = optarg; break;
        case 'c': conns = strtol(optarg, NULL, 10); break;
        case 'n': calls = strtol(optarg, NULL, 10); break;
        case 'p': payload = strtol(optarg, NULL, 10); break;
        default: goto usage;
        }
    }
    if (url == NULL || conns < 1 || calls < 1 || payload < 0 || payload > 4000 ||
        (strcmp(mode, "one") != 0 && strcmp(mode, "conns") != 0))
        goto usage;
    pid_t child = fork();
    if (child == 0)
        return serve(url);
    if (strcmp(mode, "conns") == 0)
        return run_conns(url, conns, calls, (int)payload, child);
    req_state s;
    memset(&s, 0, sizeof(s));
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    s.left = calloc((size_t)conns, sizeof(long));
    s.total = conns * calls;
    s.payload_len = (int)payload;
    memset(s.payload, 'x', sizeof(s.payload));
    if (s.left == NULL || natsConnection_ConnectTo(&s.nc, url) != NATS_OK ||
        natsInbox_Create(&inbox) != NATS_OK) {
        fprintf(stderr, "bench_nats: %s\n", nats_GetLastError(NULL));
        kill(child, SIGKILL);
        return 1;
    }
    snprintf(s.inbox, sizeof(s.inbox), "%s", (const char *)inbox);
    char wild[160];
    snprintf(wild, sizeof(wild), "%s.*", s.inbox);
    if (natsConnection_Subscribe(&sub, s.nc, wild, on_reply, &s) != NATS_OK ||
        natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK) {
        fprintf(stderr, "bench_nats: %s\n", nats_GetLastError(NULL));
        kill(child, SIGKILL);
        return 1;
    }
    /* the responder's interest must be there before the clock starts */
    for (int i = 0; i < 500; i++) {
        natsMsg *m = NULL;
        if (natsConnection_Request(&m, s.nc, SUBJECT, "", 0, 100) == NATS_OK) {
            natsMsg_Destroy(m);
            break;
        }
    }
    for (long i = 0; i < conns; i++)
        s.left[i] = calls;
    double t0 = now_s();
    for (long i = 0; i < conns; i++)
        send_slot(&s, i);
    struct timespec nap = {0, 1000000};
    double deadline = t0 + 120;
    while (atomic_load(&s.done) < s.total && now_s() < deadline)
        nanosleep(&nap, NULL);
    double t = now_s() - t0;
    long done = atomic_load(&s.done);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("calls=%ld seconds=%.3f calls_per_s=%.0f\n", done, t, (double)done / t);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(s.nc);
    natsInbox_Destroy(inbox);
    free(s.left);
    return done == s.total ? 0 : 1;
usage:
    fprintf(stderr, "usage: bench_nats ref -u NATS_URL [-m one|conns] [-c OUTSTANDING] "
            "[-n CALLS_EACH] [-p PAYLOAD_BYTES]\n");
    return 2;
}
