/*
 * bench_table.c - `make bench`: daffid against the floor (a raw-epoll MessagePack-RPC
 * server of the same protocol, bench_raw_server) and redis-server, every shape of
 * issue 17 measured in one run, plus the syscalls per call of each server.
 *
 * usage: bench_table   (environment: BUILD, BENCH_DAFFID_BUILD, BENCH_SECONDS,
 *                       BENCH_REPS, BENCH_ONLY, BENCH_TRACE, BENCH_EXTRA; see
 *                       tests/bench/run.sh)
 *
 * Every row starts its systems fresh, pinned the same way (bsys.h: same core, split,
 * 2 cores), then measures them in turn, BENCH_REPS times each (default 3, interleaved
 * so that a change in the machine's load hits every system alike), each time for
 * BENCH_SECONDS (default 1) after a 0.2 s warm-up, with the same client (bench_calls:
 * one thread, one epoll loop), and prints the median of each system and daffid/floor.
 * The client talks RESP to redis (ECHO with the same payload); redis has no
 * notifications and no router, so those cells are "-".
 *
 * Sections:
 *   1. daffid / floor per shape, with redis beside (2 KB echo unless said). Rows that
 *      depend on the number of threads run workers = 1 against a one-thread floor and
 *      workers = 2 against a two-thread floor.
 *   2. a router with one worker against the same echo served directly, the floor, and
 *      the floor behind a raw epoll relay (bench_raw_proxy: the least a hop costs);
 *      with BENCH_EXTRA=1 also over Unix, at split pinning, and with 200 connections.
 *   3. fast calls (2 KB echo: sequential on one core, where nothing depends on where
 *      the scheduler puts the threads, and 200 connections on 2 cores) while a second
 *      client keeps 2 fib(40) calls running on the blocking pool (blocking_threads =
 *      2), against the same calls with the pool idle.
 *   4. issue 13's: echo served by an isolated plugin (a child process, `isolation =
 *      process`) against the same echo inline, same daffid settings, 200 connections
 *      x 1 outstanding and sequential.
 *   5. per call, for each server process: its CPU time (every thread, from
 *      /proc/PID/task/N/schedstat around the timed runs, divided by every call it
 *      served) and its syscalls (strace -c -f attached once the client has connected
 *      and made one call per connection, over a fixed number of calls; includes the
 *      closing of the connections), total and the most frequent, for the rows that
 *      name a trace size. Under strace everything is slower: only the counts are used.
 * The goals are the issue's; nothing is asserted. The exit status is non-zero only
 * when a measurement could not be made. Wall-clock figures depend on the machine's
 * load: the load averages are printed at the start and the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "bsys.h"

#define MAX_REPS 15
#define WARM_MS 200
#define MAX_TRACES 64

typedef enum rkind { R_PLAIN, R_ROUTER, R_FIB, R_ISOLATED } rkind;

/* One row of the table. */
typedef struct row {
    const char *id;          /* for BENCH_ONLY */
    const char *name;
    rkind kind;
    bshape sh;
    int unix_net;
    bpin pin;
    int threads;             /* daffid workers = floor threads */
    int redis;               /* redis measured too */
    double goal;
    long trace_calls;        /* per connection; 0: not traced */
    int extra;               /* only with BENCH_EXTRA=1 or named in BENCH_ONLY */
} row;

#define KB2 2048L
#define MIB (1L << 20)

/* One row per line: id, name, kind, conns, depth, notifications, payload, Unix,
 * pinning, threads, redis too, goal, trace calls per connection, extra. */
#define ROW(id, name, kind, conns, depth, note, pay, unx, pin, thr, redis, goal, trace, extra) \
    { id, name, kind, { conns, depth, note, pay, NULL, 0 }, unx, pin, thr, redis, goal, trace, \
      extra }
#define SAME BPIN_SAME
#define SPLIT BPIN_SPLIT
#define BOTH BPIN_BOTH

static const row rows[] = {
    ROW("seq", "sequential, 1 conn", R_PLAIN, 1, 1, 0, KB2, 0, SAME, 1, 1, 0.95, 2000, 0),
    ROW("c200-tcp", "200 conns x 1 outstanding", R_PLAIN, 200, 1, 0, KB2, 0, SPLIT, 1, 1, 0.9,
        20, 0),
    ROW("c200-tcp", "200 conns x 1 outstanding", R_PLAIN, 200, 1, 0, KB2, 0, BOTH, 1, 1, 0.9, 0,
        0),
    ROW("c200-tcp", "200 conns x 1 outstanding", R_PLAIN, 200, 1, 0, KB2, 0, BOTH, 2, 0, 0.9, 20,
        0),
    ROW("c200-unix", "200 conns x 1 outstanding", R_PLAIN, 200, 1, 0, KB2, 1, SPLIT, 1, 1, 0.9,
        20, 0),
    ROW("c200-unix", "200 conns x 1 outstanding", R_PLAIN, 200, 1, 0, KB2, 1, BOTH, 1, 1, 0.9, 0,
        0),
    ROW("c200-unix", "200 conns x 1 outstanding", R_PLAIN, 200, 1, 0, KB2, 1, BOTH, 2, 0, 0.9, 0,
        0),
    ROW("notify", "notifications/s, 1 conn", R_PLAIN, 1, 1, 1, KB2, 0, SPLIT, 1, 0, 0.9, 20000,
        0),
    ROW("pipe", "8 conns x 64 pipelined", R_PLAIN, 8, 64, 0, KB2, 0, SPLIT, 1, 1, 0.95, 500, 0),
    ROW("pipe", "8 conns x 64 pipelined", R_PLAIN, 8, 64, 0, KB2, 0, BOTH, 1, 1, 0.95, 0, 0),
    ROW("pipe", "8 conns x 64 pipelined", R_PLAIN, 8, 64, 0, KB2, 0, BOTH, 2, 0, 0.95, 0, 0),
    ROW("mib", "1 MiB echo, 1 conn", R_PLAIN, 1, 1, 0, MIB, 0, SPLIT, 1, 1, 0.95, 50, 0),
    ROW("router", "router -> 1 worker, sequential", R_ROUTER, 1, 1, 0, KB2, 0, SAME, 1, 0, 0.6,
        2000, 0),
    ROW("router-extra", "router -> 1 worker, sequential", R_ROUTER, 1, 1, 0, KB2, 1, SAME, 1, 0,
        0.6, 0, 1),
    ROW("router-extra", "router -> 1 worker, sequential", R_ROUTER, 1, 1, 0, KB2, 0, SPLIT, 1, 0,
        0.6, 0, 1),
    ROW("router-extra", "router -> 1 worker, 200 conns x 1", R_ROUTER, 200, 1, 0, KB2, 0, SAME,
        1, 0, 0.6, 0, 1),
    ROW("router-extra", "router -> 1 worker, 200 conns x 1", R_ROUTER, 200, 1, 0, KB2, 0, SPLIT,
        1, 0, 0.6, 0, 1),
    ROW("fib", "seq calls while 2 fib(40) run", R_FIB, 1, 1, 0, KB2, 0, SAME, 1, 0, 0.8, 0, 0),
    ROW("fib", "200 conns x 1 while 2 fib(40) run", R_FIB, 200, 1, 0, KB2, 0, BOTH, 1, 0, 0.8, 0,
        0),
    ROW("fib", "200 conns x 1 while 2 fib(40) run", R_FIB, 200, 1, 0, KB2, 0, BOTH, 2, 0, 0.8, 0,
        0),
    ROW("isolated", "200 conns x 1 outstanding", R_ISOLATED, 200, 1, 0, KB2, 0, BOTH, 1, 0, 0.6,
        0, 0),
    /* #13 set its goal for 200 conns only: the sequential row shows the cost of the
     * extra hop where nothing overlaps it. */
    ROW("isolated", "sequential, 1 conn", R_ISOLATED, 1, 1, 0, KB2, 0, SAME, 1, 0, 0, 0, 0),
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* One system of a row, printed in section 5: its CPU per call (from the timed runs)
 * and its syscalls per call (traced, when the row names a trace size). */
typedef struct trace_line {
    char shape[112];
    char system[48];
    double cpu_us;           /* -1: not measured */
    int traced;
    btrace t;
} trace_line;

/* Everything one run owns. */
typedef struct bench {
    bsys_ctx ctx;
    long ms;
    int reps;
    const char *only;
    int trace;
    int extra;
    int failed;
    trace_line traces[MAX_TRACES];
    int ntraces;
} bench;

static const char *pin_name(bpin p)
{
    return p == BPIN_SAME ? "same core" : p == BPIN_SPLIT ? "split" : "2 cores";
}

/* The median of n values (-1 when any is missing). Sorts v. */
static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    for (int i = 0; i < n; i++)
        if (v[i] < 0)
            return -1;
    return n > 0 ? v[n / 2] : -1;
}

/* Formats a rate (or "-") into buf. */
static const char *rate(double v, char *buf, size_t n)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.0f", v);
    return buf;
}

/* Formats a / b and its verdict against goal into buf. */
static const char *ratio(double a, double b, double goal, char *buf, size_t n)
{
    if (goal <= 0 && a >= 0 && b > 0) /* a row the issues set no goal for */
        snprintf(buf, n, "%6.2f  %-14s", a / b, "(no goal)");
    else if (goal <= 0)
        snprintf(buf, n, "%6s  %-14s", "-", "(no goal)");
    else if (a < 0 || b <= 0)
        snprintf(buf, n, "%6s  >= %.2f %-5s", "-", goal, "");
    else
        snprintf(buf, n, "%6.2f  >= %.2f %-5s", a / b, goal, a / b >= goal ? "met" : "below");
    return buf;
}

/* The shape's description with its payload and transport, into buf. */
static const char *shape_name(const row *r, char *buf, size_t n)
{
    snprintf(buf, n, "%s, %s, %s", r->name, r->sh.payload == MIB ? "1 MiB" : "2 KB",
             r->unix_net ? "unix" : "tcp");
    return buf;
}

/* Traces s for row r (when the row names a trace size) and keeps it and cpu_us (the
 * CPU per call of its process, and of its worker) for section 5. */
static void trace_system(bench *b, const row *r, const bsys *s, const double cpu_us[2])
{
    btrace t[2];
    char shape[112];
    int n = 0;

    if (!s->up || b->ntraces + 2 > MAX_TRACES)
        return;
    if (b->trace && r->trace_calls > 0) {
        n = bsys_trace(&b->ctx, s, r->pin, &r->sh, r->trace_calls, t);
        if (n < 0) {
            b->failed = 1;
            n = 0;
        }
    }
    char base[80];
    snprintf(shape, sizeof(shape), "%s, %s", shape_name(r, base, sizeof(base)), pin_name(r->pin));
    int lines = s->kind == BSYS_ROUTER || s->kind == BSYS_PROXY ? 2 : 1;
    static const char *const parts[2][2] = { { ": router", ": worker" },
                                             { ": proxy", ": floor" } };
    for (int i = 0; i < lines; i++) {
        trace_line *l = &b->traces[b->ntraces++];
        snprintf(l->shape, sizeof(l->shape), "%s", shape);
        snprintf(l->system, sizeof(l->system), "%s%s", bsys_name(s),
                 lines == 2 ? parts[s->kind == BSYS_PROXY][i] : "");
        l->cpu_us = cpu_us[i];
        l->traced = i < n;
        if (l->traced)
            l->t = t[i];
    }
}

/* Measures every started system of sys[] reps times, interleaved; the medians of the
 * rates into med, of the CPU per call into cpu. */
static void measure_all(bench *b, const row *r, bsys *sys, int nsys, double *med,
                        double (*cpu)[2])
{
    double v[4][MAX_REPS], u[4][2][MAX_REPS];

    for (int k = 0; k < b->reps; k++)
        for (int i = 0; i < nsys; i++) {
            double c[2] = { -1, -1 };
            v[i][k] = sys[i].up ? bsys_rate(&b->ctx, &sys[i], r->pin, &r->sh, b->ms, WARM_MS, c)
                                : -1;
            u[i][0][k] = c[0];
            u[i][1][k] = c[1];
        }
    for (int i = 0; i < nsys; i++) {
        med[i] = median(v[i], b->reps);
        cpu[i][0] = median(u[i][0], b->reps);
        cpu[i][1] = median(u[i][1], b->reps);
        if (med[i] < 0 && !(sys[i].kind == BSYS_REDIS && b->ctx.redis[0] == '\0'))
            b->failed = 1;
    }
}

/* Section 1: daffid, floor and maybe redis on one shape. */
static void plain_row(bench *b, const row *r)
{
    bsys sys[3];
    double med[3], cpu[3][2];
    char s0[24], s1[24], s2[24], q[40], shape[96], thr[24];
    int nsys = r->redis ? 3 : 2;
    static const bsys_kind kinds[] = { BSYS_DAFFID, BSYS_FLOOR, BSYS_REDIS };

    memset(sys, 0, sizeof(sys));
    for (int i = 0; i < nsys; i++)
        if (bsys_start(&b->ctx, &sys[i], kinds[i], r->threads, 1, r->pin, r->unix_net,
                       r->sh.payload, NULL) == -1 && kinds[i] != BSYS_REDIS)
            b->failed = 1;
    measure_all(b, r, sys, nsys, med, cpu);
    for (int i = 0; i < nsys; i++)
        trace_system(b, r, &sys[i], cpu[i]);
    for (int i = 0; i < nsys; i++)
        bsys_stop(&sys[i]);
    snprintf(thr, sizeof(thr), "w%d / %dt", r->threads, r->threads);
    printf("%-44s %-9s %-8s %9s %9s %s %9s\n", shape_name(r, shape, sizeof(shape)),
           pin_name(r->pin), thr, rate(med[0], s0, sizeof(s0)), rate(med[1], s1, sizeof(s1)),
           ratio(med[0], med[1], r->goal, q, sizeof(q)),
           r->redis ? rate(med[2], s2, sizeof(s2)) : "-");
    fflush(stdout);
}

/* Section 2: router + worker against the direct service, the floor, and the raw
 * proxy in front of the floor (what one hop costs at the least). */
static void router_row(bench *b, const row *r)
{
    bsys sys[4];
    double med[4], cpu[4][2];
    char s0[24], s1[24], s2[24], s3[24], q[40], c[40], shape[96];
    static const bsys_kind kinds[] = { BSYS_ROUTER, BSYS_DAFFID, BSYS_FLOOR, BSYS_PROXY };

    memset(sys, 0, sizeof(sys));
    for (int i = 0; i < 4; i++)
        if (bsys_start(&b->ctx, &sys[i], kinds[i], r->threads, 1, r->pin, r->unix_net,
                       r->sh.payload, NULL) == -1)
            b->failed = 1;
    measure_all(b, r, sys, 4, med, cpu);
    for (int i = 0; i < 4; i++)
        trace_system(b, r, &sys[i], cpu[i]);
    for (int i = 0; i < 4; i++)
        bsys_stop(&sys[i]);
    if (med[3] < 0 || med[2] <= 0)
        snprintf(c, sizeof(c), "-");
    else
        snprintf(c, sizeof(c), "%.2f", med[3] / med[2]);
    printf("%-44s %-9s %9s %9s %9s %9s %s %8s\n", shape_name(r, shape, sizeof(shape)),
           pin_name(r->pin), rate(med[0], s0, sizeof(s0)), rate(med[1], s1, sizeof(s1)),
           rate(med[2], s2, sizeof(s2)), rate(med[3], s3, sizeof(s3)),
           ratio(med[0], med[1], r->goal, q, sizeof(q)), c);
    fflush(stdout);
}

/* Section 3: the fast calls with the blocking pool idle, then busy with 2 fib(40). */
static void fib_row(bench *b, const row *r)
{
    bsys d, f;
    double idle[MAX_REPS], loaded[MAX_REPS], fibs[MAX_REPS], floor_v[MAX_REPS];
    char s0[24], s1[24], s2[24], s3[24], q[40], shape[96], thr[16];
    const bshape load = { 2, 1, 0, 0, "fib", 40 };

    if (bsys_start(&b->ctx, &d, BSYS_DAFFID, r->threads, 2, r->pin, r->unix_net,
                   r->sh.payload, "fib") == -1 ||
        bsys_start(&b->ctx, &f, BSYS_FLOOR, 1, 1, r->pin, r->unix_net, r->sh.payload,
                   NULL) == -1) {
        b->failed = 1;
        bsys_stop(&d);
        return;
    }
    for (int k = 0; k < b->reps; k++) {
        bload l;
        floor_v[k] = bsys_rate(&b->ctx, &f, r->pin, &r->sh, b->ms, WARM_MS, NULL);
        idle[k] = bsys_rate(&b->ctx, &d, r->pin, &r->sh, b->ms, WARM_MS, NULL);
        loaded[k] = fibs[k] = -1;
        /* the load outlasts the measurement; its end drains the pool before the next */
        if (bsys_load_start(&b->ctx, &d, r->pin, &load, b->ms + WARM_MS + 300, &l) == 0) {
            loaded[k] = bsys_rate(&b->ctx, &d, r->pin, &r->sh, b->ms, WARM_MS, NULL);
            fibs[k] = bsys_load_wait(&l);
        }
    }
    bsys_stop(&d);
    bsys_stop(&f);
    double mi = median(idle, b->reps), ml = median(loaded, b->reps);
    double mf = median(fibs, b->reps), mfl = median(floor_v, b->reps);
    if (mi < 0 || ml < 0)
        b->failed = 1;
    snprintf(thr, sizeof(thr), "w%d", r->threads);
    printf("%-44s %-9s %-7s %9s %9s %s %9s %9s\n", shape_name(r, shape, sizeof(shape)),
           pin_name(r->pin), thr, rate(ml, s0, sizeof(s0)), rate(mi, s1, sizeof(s1)),
           ratio(ml, mi, r->goal, q, sizeof(q)), mf < 0 ? "-" : (snprintf(s2, sizeof(s2),
           "%.1f", mf), s2), rate(mfl, s3, sizeof(s3)));
    fflush(stdout);
}

/* Section 4: echo in an isolated plugin's child against the same echo inline. */
static void isolated_row(bench *b, const row *r)
{
    bsys sys[2];
    double med[2], cpu[2][2];
    char s0[24], s1[24], q[40], shape[96], thr[16];
    static const bsys_kind kinds[] = { BSYS_ISOLATED, BSYS_DAFFID };

    memset(sys, 0, sizeof(sys));
    for (int i = 0; i < 2; i++)
        if (bsys_start(&b->ctx, &sys[i], kinds[i], r->threads, 1, r->pin, r->unix_net,
                       r->sh.payload, NULL) == -1)
            b->failed = 1;
    measure_all(b, r, sys, 2, med, cpu);
    for (int i = 0; i < 2; i++)
        bsys_stop(&sys[i]);
    snprintf(thr, sizeof(thr), "w%d", r->threads);
    printf("%-44s %-9s %-7s %9s %9s %s\n", shape_name(r, shape, sizeof(shape)),
           pin_name(r->pin), thr, rate(med[0], s0, sizeof(s0)), rate(med[1], s1, sizeof(s1)),
           ratio(med[0], med[1], r->goal, q, sizeof(q)));
    fflush(stdout);
}

/* 1 when BENCH_ONLY selects r (a comma-separated list of row ids; unset: every row
 * but the extra ones, which BENCH_EXTRA=1 adds). */
static int selected(const bench *b, const row *r)
{
    if (b->only == NULL || *b->only == '\0')
        return !r->extra || b->extra;
    size_t n = strlen(r->id);
    for (const char *p = b->only; p != NULL && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, r->id, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* 1 when some selected row has kind k. */
static int any_of(const bench *b, rkind k)
{
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].kind == k && selected(b, &rows[i]))
            return 1;
    return 0;
}

/* Runs fn on every selected row of kind k. */
static void run_rows(bench *b, rkind k, void (*fn)(bench *, const row *))
{
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].kind == k && selected(b, &rows[i]))
            fn(b, &rows[i]);
}

static void print_traces(const bench *b)
{
    printf("\n5. per call, for each server: CPU time (us: all its threads, from the timed "
           "runs, median) and syscalls\n   (strace -c -f, attached once the client has "
           "connected and made one call per connection, over a\n   fixed count: seq/router "
           "2000 calls, 200 conns x 20, 20000 notifications, 8 x 500, 1 MiB x 50;\n   the "
           "closing of the connections included)\n");
    printf("%-55s %-22s %7s %8s  %s\n", "shape, pinning", "system", "CPU us", "syscalls",
           "most frequent syscalls (per call)");
    const char *last = "";
    for (int i = 0; i < b->ntraces; i++) {
        const trace_line *l = &b->traces[i];
        char top[256], cpu[16], per[16];
        size_t off = 0;
        top[0] = '\0';
        for (int k = 0; l->traced && k < l->t.ntop && off < sizeof(top); k++)
            off += (size_t)snprintf(top + off, sizeof(top) - off, "%s%s %.2f", k ? ", " : "",
                                    l->t.top[k].name, l->t.top[k].per_call);
        snprintf(cpu, sizeof(cpu), l->cpu_us < 0 ? "-" : "%.2f", l->cpu_us);
        snprintf(per, sizeof(per), l->traced ? "%.2f" : "-", l->t.per_call);
        printf("%-55s %-22s %7s %8s  %s\n", strcmp(last, l->shape) == 0 ? "" : l->shape,
               l->system, cpu, per, top);
        last = l->shape;
    }
}

/* The sections 1-4, in order: their rows' kind, title and column header. */
static const struct {
    rkind kind;
    const char *title, *header;
    void (*fn)(bench *, const row *);
} sections[] = {
    { R_PLAIN, "1. daffid / floor (redis beside; it has no notifications)\n",
      "shape                                        pinning   threads   daffid/s   floor/s"
      "  ratio  goal            redis/s", plain_row },
    { R_ROUTER, "2. through a router to one worker (workers = 1 each) vs the same echo served "
      "directly; proxy/s: the floor\n   behind a raw epoll byte relay (bench_raw_proxy), whose "
      "proxy/floor bounds what a hop can keep\n",
      "shape                                        pinning    router/s  direct/s   floor/s"
      "   proxy/s  r/dir  goal          px/floor", router_row },
    { R_FIB, "3. fast calls while a second client keeps 2 fib(40) running (blocking_threads = "
      "2) vs the pool idle\n   (fib/s: the fib calls answered per second meanwhile)\n",
      "shape                                        pinning   workers  loaded/s    idle/s"
      "  ratio  goal              fib/s   floor/s", fib_row },
    { R_ISOLATED, "4. echo in an isolated plugin (isolation = process: a child serves it over a "
      "socketpair) vs the same echo inline\n",
      "shape                                        pinning   workers isolated/s  inline/s"
      "  ratio  goal", isolated_row },
};

int main(void)
{
    static bench b;
    const char *secs = getenv("BENCH_SECONDS"), *reps = getenv("BENCH_REPS");
    const char *trace = getenv("BENCH_TRACE"), *extra = getenv("BENCH_EXTRA");
    char load[64];
    struct utsname u;

    b.ms = secs && *secs ? (long)(strtod(secs, NULL) * 1000) : 1000;
    b.reps = reps && *reps ? atoi(reps) : 3;
    b.only = getenv("BENCH_ONLY");
    b.trace = !(trace && strcmp(trace, "0") == 0);
    b.extra = extra && strcmp(extra, "1") == 0;
    if (b.ms < 100 || b.reps < 1 || b.reps > MAX_REPS) {
        fprintf(stderr, "bench: BENCH_SECONDS must be >= 0.1 and BENCH_REPS 1..%d\n", MAX_REPS);
        return 2;
    }
    if (bsys_ctx_init(&b.ctx) == -1)
        return 2;
    uname(&u);
    printf("daffid bench: %s/daffid against the floor (bench_raw_server: raw epoll, the same "
           "frames) and redis-server\n", b.ctx.daffid_build);
    printf("  %d CPUs, %s %s; load average at start: %s\n", b.ctx.ncpu, u.sysname, u.release,
           bsys_loadavg(load, sizeof(load)));
    printf("  each figure: median of %d runs of %.1f s (after 0.2 s warm-up), client "
           "bench_calls (1 thread, 1 epoll loop)\n", b.reps, (double)b.ms / 1000.0);
    printf("  pinning (as taskset -c): same core = servers and client on CPU 0; split = "
           "servers CPU 0, client CPU 1;\n  2 cores = servers and client on CPUs 0-1. "
           "threads: daffid workers / floor threads. Wall-clock figures\n  are only "
           "comparable within one run on a quiet machine; the syscall counts are exact.\n");
    if (b.ctx.redis[0] == '\0')
        printf("  redis-server not found: its column is \"-\" (make bench installs it)\n");
    if (b.ctx.strace[0] == '\0' && b.trace)
        printf("  strace not found: no syscall counts (make bench installs it)\n");
    if (b.ctx.ncpu < 2)
        printf("  one CPU only: every pinning is that CPU\n");

    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        if (any_of(&b, sections[i].kind)) {
            printf("\n%s%s\n", sections[i].title, sections[i].header);
            run_rows(&b, sections[i].kind, sections[i].fn);
        }
    if (b.ntraces > 0)
        print_traces(&b);
    printf("\nload average at end: %s\n", bsys_loadavg(load, sizeof(load)));
    bsys_ctx_done(&b.ctx);
    return b.failed;
}
