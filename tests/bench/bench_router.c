/*
 * bench_router.c - the router part of `make bench` (run by tests/bench/run.sh): echo
 * through a router to one worker, side by side with the same echo served directly
 * and with the raw socket floor, all measured in this one run with the same client
 * and the same CPU pinning.
 *
 * usage: bench_router [-n SEQ_CALLS] [-p SEQ_PAYLOAD] [-c CONC_CONNS] [-m CONC_CALLS]
 *                     [-q CONC_PAYLOAD]
 *
 * Two shapes, each over TCP and over a Unix socket (the caller's side; the worker
 * reaches the router over the same transport):
 *   seq  - 1 connection, SEQ_CALLS sequential echo(bin(SEQ_PAYLOAD)) calls (default
 *          20,000 x 2,048 B);
 *   conc - CONC_CONNS connections with one call outstanding each, CONC_CALLS calls per
 *          connection (default 200 x 200 x 64 B).
 * Three systems, each started fresh for each measurement:
 *   router - daffid role = router (workers = 1, no plugins) and one daffid role =
 *            worker (workers = 1, the echo plugin), the caller talks to the router;
 *   direct - daffid role = service (workers = 1, the echo plugin);
 *   raw    - bench_raw_server (one thread, answers the frames echo's would have).
 * The client is bench_calls (one thread, one epoll loop), exactly as run.sh uses it.
 * Pinning: split = every server process on CPU 0, the client on CPU 1; shared =
 * everything on CPU 0. A router call crosses two hops (caller -> router -> worker and
 * back), so its floor is about half the direct figure on a loaded core; the target
 * router/direct >= 0.6 is informational and nothing is asserted. The exit status is
 * non-zero only when a measurement could not be made.
 *
 * Environment: BUILD (default build), relative to the repository root (the working
 * directory).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/rawconn.h"

#define START_MS 10000
#define TARGET_VS_DIRECT 0.6

/* The settings every measured daffid gets on top of the helpers' defaults. */
#define BENCH_INI "[server]\nworkers = 1\nblocking_threads = 1\nshutdown_timeout = 2s\n" \
                  "[log]\nlevel = warn\n"

typedef enum sys { SYS_ROUTER = 0, SYS_DIRECT, SYS_RAW, NSYS } sys;

typedef struct shape {
    const char *name;
    int conns;
    long calls;
    long payload;
} shape;

/* Everything one run owns. */
typedef struct bench {
    char build[PATH_MAX];
    char calls_bin[PATH_MAX + 64];
    char raw_bin[PATH_MAX + 64];
    char dir[128];           /* temp dir for the raw server's socket */
    int ncpu;
    cpu_set_t all;           /* this process's affinity at start */
    int failed;
} bench;

/* Returns CLOCK_MONOTONIC in milliseconds. */
static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Pins the calling thread (and what it forks from now on) to cpu. Returns 0 or -1. */
static int pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

/* Waits at most ms until address accepts a connection. Returns 0 or -1. */
static int wait_accepting(const char *address, int ms)
{
    long long deadline = now_ms() + ms;
    struct timespec pause = { 0, 5 * 1000000L };

    for (;;) {
        rawconn c;
        int r = rawconn_open(&c, address, 1000);
        rawconn_close(&c);
        if (r == 0)
            return 0;
        if (now_ms() >= deadline)
            return -1;
        nanosleep(&pause, NULL);
    }
}

/* Starts bench_raw_server on address for payload bytes (inherits this thread's
 * pinning). Returns its pid, or -1. */
static pid_t raw_start(bench *b, const char *address, long payload)
{
    char p[32];
    pid_t parent = getpid();
    pid_t pid;

    snprintf(p, sizeof(p), "%ld", payload);
    fflush(NULL);
    pid = fork();
    if (pid == -1)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        execl(b->raw_bin, b->raw_bin, "-l", address, "-p", p, (char *)NULL);
        _exit(127);
    }
    if (wait_accepting(address, START_MS) == -1) {
        fprintf(stderr, "bench_router: the raw server did not accept on %s\n", address);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* Runs bench_calls against address on client_cpu with shape sh. Returns calls/s, or
 * -1 (its output printed). */
static double client_run(bench *b, const char *address, int client_cpu, const shape *sh)
{
    char conns[16], calls[32], payload[32], out[512];
    int pfd[2];
    size_t len = 0;
    int status;

    snprintf(conns, sizeof(conns), "%d", sh->conns);
    snprintf(calls, sizeof(calls), "%ld", sh->calls);
    snprintf(payload, sizeof(payload), "%ld", sh->payload);
    if (pipe(pfd) == -1)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == -1)
        return -1;
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 1);
        if (pin(client_cpu) == -1)
            _exit(126);
        execl(b->calls_bin, b->calls_bin, "run", "-s", address, "-c", conns, "-n", calls, "-p",
              payload, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        ssize_t r = read(pfd[0], out + len, sizeof(out) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof(out) - 1)
            break;
    }
    out[len] = '\0';
    close(pfd[0]);
    waitpid(pid, &status, 0);
    const char *at = strstr(out, "calls_per_s=");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || at == NULL) {
        fprintf(stderr, "bench_router: bench_calls against %s failed: %s\n", address, out);
        return -1;
    }
    return strtod(at + 12, NULL);
}

/* Stops a daemon started for one measurement and removes its dir. */
static void daemon_done(tdaemon *d)
{
    if (d->pid != 0)
        tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS);
    tdaemon_cleanup(d);
}

/* Starts system s pinned to CPU 0, measures it with the client on client_cpu over
 * the transport unix (0: TCP), stops it. Returns calls/s or -1. */
static double measure(bench *b, sys s, int unix_net, int client_cpu, const shape *sh)
{
    tdaemon router, worker, direct;
    double r = -1;

    memset(&router, 0, sizeof(router));
    memset(&worker, 0, sizeof(worker));
    memset(&direct, 0, sizeof(direct));
    if (pin(0) == -1)
        return -1;
    switch (s) {
    case SYS_RAW: {
        char addr[200];
        int port = tdaemon_free_port();
        if (unix_net)
            snprintf(addr, sizeof(addr), "unix://%s/raw.sock", b->dir);
        else
            snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", port);
        if (unix_net)
            unlink(addr + strlen("unix://"));
        pid_t pid = raw_start(b, addr, sh->payload);
        sched_setaffinity(0, sizeof(b->all), &b->all);
        if (pid == -1)
            return -1;
        r = client_run(b, addr, client_cpu, sh);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        if (unix_net)
            unlink(addr + strlen("unix://"));
        return r;
    }
    case SYS_DIRECT:
        if (tdaemon_init(&direct) == -1 || tdaemon_add_plugin(&direct, "echo", NULL) == -1 ||
            tdaemon_write_file(&direct, "05-bench.ini", BENCH_INI) == -1 ||
            tdaemon_start(&direct, NULL) == -1)
            break;
        sched_setaffinity(0, sizeof(b->all), &b->all);
        r = client_run(b, unix_net ? direct.unix_addr : direct.tcp, client_cpu, sh);
        break;
    case SYS_ROUTER:
        if (tcluster_router_init(&router, "bench_router", NULL) == -1 ||
            tdaemon_write_file(&router, "05-bench.ini", BENCH_INI) == -1 ||
            tdaemon_start(&router, NULL) == -1)
            break;
        if (tcluster_worker_init(&worker, unix_net ? router.unix_addr : router.tcp,
                                 "bench_worker", NULL) == -1 ||
            tdaemon_add_plugin(&worker, "echo", NULL) == -1 ||
            tdaemon_write_file(&worker, "05-bench.ini", BENCH_INI) == -1 ||
            tcluster_worker_start(&worker, router.tcp, "bench_worker", START_MS) == -1)
            break;
        sched_setaffinity(0, sizeof(b->all), &b->all);
        /* every loop of the router has seen the worker: wait answered on its loop, and
         * with workers = 1 there is only one */
        r = client_run(b, unix_net ? router.unix_addr : router.tcp, client_cpu, sh);
        break;
    default:
        break;
    }
    sched_setaffinity(0, sizeof(b->all), &b->all);
    daemon_done(&worker);
    daemon_done(&router);
    daemon_done(&direct);
    return r;
}

/* Formats calls/s (or "-") into buf. */
static const char *fmt_rate(double v, char *buf, size_t n)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.0f", v);
    return buf;
}

/* Formats a / b (or "-") into buf. */
static const char *fmt_ratio(double a, double b, char *buf, size_t n)
{
    if (a < 0 || b <= 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.2f", a / b);
    return buf;
}

/* Measures one shape over both transports and every pinning, printing a row each. */
static void row(bench *b, const shape *sh)
{
    static const char *pinnings[] = { "split", "shared" };

    for (int unix_net = 0; unix_net < 2; unix_net++) {
        for (int p = b->ncpu >= 2 ? 0 : 1; p < 2; p++) {
            int client_cpu = p == 0 ? 1 : 0;
            double v[NSYS];
            char r0[24], r1[24], r2[24], q0[16], q1[16];
            for (int s = 0; s < NSYS; s++) {
                v[s] = measure(b, (sys)s, unix_net, client_cpu, sh);
                if (v[s] < 0)
                    b->failed = 1;
            }
            const char *verdict = v[SYS_ROUTER] < 0 || v[SYS_DIRECT] <= 0 ? "not measured"
                                  : v[SYS_ROUTER] / v[SYS_DIRECT] >= TARGET_VS_DIRECT ? "met"
                                                                                      : "below";
            printf("%-30s %-5s %-7s %9s %9s %9s %8s %8s  >= %.1f %s\n", sh->name,
                   unix_net ? "unix" : "tcp", pinnings[p], fmt_rate(v[SYS_ROUTER], r0, sizeof(r0)),
                   fmt_rate(v[SYS_DIRECT], r1, sizeof(r1)), fmt_rate(v[SYS_RAW], r2, sizeof(r2)),
                   fmt_ratio(v[SYS_ROUTER], v[SYS_DIRECT], q0, sizeof(q0)),
                   fmt_ratio(v[SYS_ROUTER], v[SYS_RAW], q1, sizeof(q1)), TARGET_VS_DIRECT,
                   verdict);
            fflush(stdout);
        }
    }
}

/* Prints the usage on stderr. Returns the exit status 2. */
static int usage(void)
{
    fprintf(stderr, "usage: bench_router [-n SEQ_CALLS] [-p SEQ_PAYLOAD] [-c CONC_CONNS] "
            "[-m CONC_CALLS] [-q CONC_PAYLOAD]\n");
    return 2;
}

int main(int argc, char **argv)
{
    bench b;
    shape seq = { NULL, 1, 20000, 2048 }, conc = { NULL, 200, 200, 64 };
    char seq_name[64], conc_name[64];
    const char *build = getenv("BUILD");
    int opt;

    memset(&b, 0, sizeof(b));
    while ((opt = getopt(argc, argv, "n:p:c:m:q:")) != -1) {
        switch (opt) {
        case 'n': seq.calls = strtol(optarg, NULL, 10); break;
        case 'p': seq.payload = strtol(optarg, NULL, 10); break;
        case 'c': conc.conns = (int)strtol(optarg, NULL, 10); break;
        case 'm': conc.calls = strtol(optarg, NULL, 10); break;
        case 'q': conc.payload = strtol(optarg, NULL, 10); break;
        default: return usage();
        }
    }
    if (seq.calls < 1 || conc.calls < 1 || conc.conns < 1 || conc.conns > 10000 ||
        seq.payload < 0 || seq.payload > 60000 || conc.payload < 0 || conc.payload > 60000)
        return usage();
    if (realpath(build && *build ? build : "build", b.build) == NULL) {
        fprintf(stderr, "bench_router: build directory: %s\n", strerror(errno));
        return 2;
    }
    snprintf(b.calls_bin, sizeof(b.calls_bin), "%s/tests/bench/bench_calls", b.build);
    snprintf(b.raw_bin, sizeof(b.raw_bin), "%s/tests/bench/bench_raw_server", b.build);
    if (access(b.calls_bin, X_OK) == -1 || access(b.raw_bin, X_OK) == -1) {
        fprintf(stderr, "bench_router: %s or %s is missing (make bench)\n", b.calls_bin,
                b.raw_bin);
        return 2;
    }
    snprintf(b.dir, sizeof(b.dir), "/tmp/daffid-rbench.XXXXXX");
    if (mkdtemp(b.dir) == NULL) {
        fprintf(stderr, "bench_router: mkdtemp: %s\n", strerror(errno));
        return 2;
    }
    sched_getaffinity(0, sizeof(b.all), &b.all);
    b.ncpu = CPU_COUNT(&b.all);
    snprintf(seq_name, sizeof(seq_name), "(d) seq 1 x %ld, %ld B", seq.calls, seq.payload);
    snprintf(conc_name, sizeof(conc_name), "(e) %d conns x %ld, %ld B", conc.conns, conc.calls,
             conc.payload);
    seq.name = seq_name;
    conc.name = conc_name;

    printf("daffid router: echo through a router to one worker vs the same echo served "
           "directly vs the raw floor\n"
           "  router: role = router + one role = worker (echo), workers = 1 each; direct: "
           "role = service (echo), workers = 1;\n"
           "  raw: bench_raw_server; client: bench_calls. split = servers on CPU 0, client on "
           "CPU 1; shared = all on CPU 0\n\n");
    if (b.ncpu < 2)
        printf("bench_router: one CPU only: the split pinning is skipped\n");
    printf("%-30s %-5s %-7s %9s %9s %9s %8s %8s  %s\n", "scenario", "net", "pinning", "router/s",
           "direct/s", "raw/s", "r/direct", "r/raw", "target (router/direct)");
    row(&b, &seq);
    row(&b, &conc);
    rmdir(b.dir);
    return b.failed;
}
