/*
 * bsys.h - the systems `make bench` compares (daffid, the raw epoll floor, redis, a
 * router with one worker), started pinned to CPUs, and the client runs against them:
 * a timed run (calls/s) or a traced one (syscalls per call, strace -c -f).
 *
 * Contract
 *   bsys_ctx_init() finds the binaries: the bench programs in $BUILD/tests/bench, the
 *   daffid under test and its plugins in $BENCH_DAFFID_BUILD (default $BUILD; point it
 *   at another build to measure an older daffid with the same harness), redis-server
 *   and strace on PATH (either may be missing: its figures are then "-").
 *   Pinning (sched_setaffinity, what `taskset -c` does), the same for every system:
 *     BPIN_SAME  - servers and client on CPU 0;
 *     BPIN_SPLIT - servers on CPU 0, client on CPU 1;
 *     BPIN_BOTH  - servers and client on CPUs 0-1 (the scheduler places them).
 *   bsys_start() starts one system and waits (bounded) until it accepts; several may
 *   run at once (idle ones cost nothing), so a row interleaves its measurements.
 *   bsys_rate() runs bench_calls against a system for a duration and returns calls/s.
 *   bsys_trace() runs bench_calls for a fixed number of calls with strace -c -f
 *   attached to the server's processes after the client connected, and returns the
 *   syscalls each process made per call.
 *
 * Ownership: the caller owns the structs; a started bsys owns its processes and temp
 * files until bsys_stop(). Failures are printed on stderr. Not thread-safe.
 */
#ifndef DAFFI_BENCH_BSYS_H
#define DAFFI_BENCH_BSYS_H

#include <limits.h>
#include <sched.h>
#include <sys/types.h>

#include "../support/daemon.h"

typedef enum bsys_kind {
    BSYS_DAFFID, BSYS_FLOOR, BSYS_REDIS, BSYS_ROUTER,
    BSYS_PROXY,                   /* bench_raw_proxy in front of a one-thread floor */
    BSYS_ISOLATED                 /* daffid with echo in a child process (isolation) */
} bsys_kind;
typedef enum bpin { BPIN_SAME, BPIN_SPLIT, BPIN_BOTH } bpin;

#define BSYS_MAX_TOP 6

typedef struct bsys_ctx {
    char bench_dir[PATH_MAX];     /* bench_calls, bench_raw_server */
    char daffid_build[PATH_MAX];  /* daffid and plugins/ */
    char redis[PATH_MAX];         /* "" when absent */
    char strace[PATH_MAX];        /* "" when absent */
    char tmp[128];                /* a private temp dir */
    int ncpu;
    cpu_set_t all;                /* this process's affinity at start */
} bsys_ctx;

/* One running system. */
typedef struct bsys {
    bsys_kind kind;
    int threads;                  /* daffid workers / floor threads */
    char addr[200];               /* where clients call */
    tdaemon d;                    /* daffid: the service, or the router */
    tdaemon w;                    /* BSYS_ROUTER: the worker */
    pid_t pid;                    /* floor, redis; BSYS_PROXY: the proxy */
    pid_t pid2;                   /* BSYS_PROXY: the floor behind it */
    int up;
} bsys;

/* What a client run does. */
typedef struct bshape {
    int conns, depth, notify;
    long payload;
    const char *method;           /* NULL: echo(bin(payload)) */
    long long iarg;               /* with method: its one integer argument */
} bshape;

/* The syscalls one process made during a traced run. */
typedef struct btrace {
    double per_call;              /* total syscalls / calls */
    int ntop;
    struct { char name[32]; double per_call; } top[BSYS_MAX_TOP]; /* most frequent */
} btrace;

/* Fills b. Returns 0, or -1 when a bench binary or daffid is missing (printed). */
int bsys_ctx_init(bsys_ctx *b);
void bsys_ctx_done(bsys_ctx *b);

/* Starts kind pinned by pin: daffid (threads = workers, blocking_threads = blocking,
 * the echo plugin and the plugin named extra, may be NULL; BSYS_ISOLATED: the same
 * with echo's `isolation = process`, one child), the floor (threads loops),
 * redis, a router (workers = threads) with one worker (workers = threads, echo), or
 * the raw proxy in front of a floor. unix_net: the client's transport (and
 * the worker's). Returns 0 or -1 (printed). */
int bsys_start(bsys_ctx *b, bsys *s, bsys_kind kind, int threads, int blocking, bpin pin,
               int unix_net, long payload, const char *extra);
void bsys_stop(bsys *s);

/* A short name: "daffid w1", "floor 2t", "redis", "router+worker w1", "proxy+floor",
 * "daffid w1 isolated".
 * Static buffer. */
const char *bsys_name(const bsys *s);

/* Runs bench_calls against s for ms after a warm-up of warm ms. Returns calls/s or -1;
 * cpu_us (may be NULL) gets the CPU time per call served (warm-up and drain included)
 * of every thread of s's process ([0]; the router's for BSYS_ROUTER) and of its
 * worker ([1], -1 but for BSYS_ROUTER), from /proc/PID/task/N/schedstat; -1 unknown. */
double bsys_rate(bsys_ctx *b, const bsys *s, bpin pin, const bshape *sh, long ms, long warm,
                 double cpu_us[2]);

/* A client running in the background. */
typedef struct bload {
    pid_t pid;
    int in, out;                  /* its stdin and stdout */
} bload;

/* Spawns bench_calls against s in the background (a load) and returns once it has
 * connected and started sending; it stops calling after ms and exits when its calls
 * in flight are answered. Returns 0 or -1 (printed). */
int bsys_load_start(bsys_ctx *b, const bsys *s, bpin pin, const bshape *sh, long ms,
                    bload *l);

/* Waits until the load l exits. Returns its calls/s or -1. */
double bsys_load_wait(bload *l);

/* Runs calls calls per connection with strace attached to the processes of s (the
 * router and the worker, the proxy and its floor: out[0], out[1]; otherwise out[0]).
 * Returns the number of traces filled, or -1 (printed; 0 without strace). */
int bsys_trace(bsys_ctx *b, const bsys *s, bpin pin, const bshape *sh, long calls,
               btrace out[2]);

/* The machine's load averages, "0.12 0.34 0.56", into buf. */
const char *bsys_loadavg(char *buf, size_t n);

#endif
