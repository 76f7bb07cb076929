/*
 * bsys.c - start pinned systems and run clients against them (see bsys.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bsys.h"
#include "../support/cluster.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define BSYS_START_MS 10000
#define BSYS_ATTACH_MS 10000

/* Sleeps ms milliseconds (polling pauses only). */
static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Finds name on PATH into out. Returns 0, or -1 (out is ""). */
static int find_on_path(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    char dir[PATH_MAX];

    out[0] = '\0';
    while (path != NULL && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < sizeof(dir)) {
            memcpy(dir, path, len);
            dir[len] = '\0';
            if ((size_t)snprintf(out, n, "%s/%s", dir, name) < n && access(out, X_OK) == 0)
                return 0;
        }
        path = colon ? colon + 1 : NULL;
    }
    out[0] = '\0';
    return -1;
}

int bsys_ctx_init(bsys_ctx *b)
{
    const char *build = getenv("BUILD");
    const char *dbuild = getenv("BENCH_DAFFID_BUILD");
    char probe[PATH_MAX + 64];

    memset(b, 0, sizeof(*b));
    if (build == NULL || *build == '\0')
        build = "build";
    if (dbuild == NULL || *dbuild == '\0')
        dbuild = build;
    char root[PATH_MAX];
    if (realpath(build, root) == NULL || realpath(dbuild, b->daffid_build) == NULL) {
        fprintf(stderr, "bench: build directory %s / %s: %s\n", build, dbuild, strerror(errno));
        return -1;
    }
    snprintf(b->bench_dir, sizeof(b->bench_dir), "%.*s/tests/bench", PATH_MAX - 16, root);
    static const char *const need[] = { "bench_calls", "bench_raw_server" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(probe, sizeof(probe), "%s/%s", b->bench_dir, need[i]);
        if (access(probe, X_OK) == -1) {
            fprintf(stderr, "bench: %s is missing (make bench builds it)\n", probe);
            return -1;
        }
    }
    snprintf(probe, sizeof(probe), "%s/daffid", b->daffid_build);
    if (access(probe, X_OK) == -1) {
        fprintf(stderr, "bench: %s is missing\n", probe);
        return -1;
    }
    find_on_path("redis-server", b->redis, sizeof(b->redis));
    find_on_path("strace", b->strace, sizeof(b->strace));
    snprintf(b->tmp, sizeof(b->tmp), "/tmp/daffid-bench.XXXXXX");
    if (mkdtemp(b->tmp) == NULL) {
        fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    sched_getaffinity(0, sizeof(b->all), &b->all);
    b->ncpu = CPU_COUNT(&b->all);
    return 0;
}

void bsys_ctx_done(bsys_ctx *b)
{
    char cmd[256];

    if (b->tmp[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", b->tmp);
}

/* The CPUs of pin for the server (client 0) or the client (client 1) into set. With
 * one CPU every pinning is that CPU. */
static void pin_set(const bsys_ctx *b, bpin pin, int client, cpu_set_t *set)
{
    *set = b->all;
    if (pin == BPIN_BOTH || b->ncpu < 2)
        return;
    CPU_ZERO(set);
    CPU_SET(client && pin == BPIN_SPLIT ? 1 : 0, set);
}

/* Pins this thread (and what it forks) as pin says. Returns 0 or -1. */
static int pin_self(const bsys_ctx *b, bpin pin, int client)
{
    cpu_set_t set;

    pin_set(b, pin, client, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

static void unpin_self(const bsys_ctx *b)
{
    sched_setaffinity(0, sizeof(b->all), &b->all);
}

/* Waits at most ms until address accepts a connection. Returns 0 or -1. */
static int wait_accepting(const char *address, int ms)
{
    long long deadline = expect_now_ms() + ms;

    for (;;) {
        rawconn c;
        int r = rawconn_open(&c, address, 1000);
        rawconn_close(&c);
        if (r == 0)
            return 0;
        if (expect_now_ms() >= deadline)
            return -1;
        pause_ms(5);
    }
}

/* fork + exec argv with stdout/stderr to log (NULL: inherited), dying with us.
 * Returns the pid or -1. */
static pid_t spawn(char *const *argv, const char *log, int in_fd, int out_fd)
{
    pid_t parent = getpid();

    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    if (log != NULL) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd != -1) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
    }
    if (in_fd != -1)
        dup2(in_fd, 0);
    if (out_fd != -1)
        dup2(out_fd, 1);
    execv(argv[0], argv);
    _exit(127);
}

/* The ini every measured daffid gets on top of tdaemon's. */
static int daffid_ini(tdaemon *d, int workers, int blocking)
{
    return tdaemon_write_file(d, "05-bench.ini",
                              "[server]\nworkers = %d\nblocking_threads = %d\n"
                              "shutdown_timeout = 2s\n[log]\nlevel = warn\n",
                              workers, blocking);
}

/* Starts the router and its worker (both workers = s->threads). Returns 0 or -1. */
static int start_router(bsys *s, int unix_net)
{
    if (tcluster_router_init(&s->d, "bench_router", NULL) == -1 ||
        daffid_ini(&s->d, s->threads, 1) == -1 || tdaemon_start(&s->d, NULL) == -1)
        return -1;
    const char *via = unix_net ? s->d.unix_addr : s->d.tcp;
    if (tcluster_worker_init(&s->w, via, "bench_worker", NULL) == -1 ||
        tdaemon_add_plugin(&s->w, "echo", NULL) == -1 || daffid_ini(&s->w, s->threads, 1) == -1 ||
        tcluster_worker_start(&s->w, s->d.tcp, "bench_worker", BSYS_START_MS) == -1)
        return -1;
    snprintf(s->addr, sizeof(s->addr), "%s", via);
    return 0;
}

/* Starts the floor or redis on a fresh address (BSYS_PROXY: the floor, then the
 * proxy in front of it). Returns 0 or -1. */
static int start_process(bsys_ctx *b, bsys *s, int unix_net, long payload)
{
    static int seq;
    char port[16], threads[16], pay[32], sock[160], log[192];
    int n = seq++;

    snprintf(port, sizeof(port), "%d", tdaemon_free_port());
    snprintf(threads, sizeof(threads), "%d", s->threads);
    snprintf(pay, sizeof(pay), "%ld", payload);
    snprintf(sock, sizeof(sock), "%s/s%d.sock", b->tmp, n);
    snprintf(log, sizeof(log), "%s/s%d.log", b->tmp, n);
    if (unix_net)
        snprintf(s->addr, sizeof(s->addr), "unix://%s", sock);
    else
        snprintf(s->addr, sizeof(s->addr), "tcp://127.0.0.1:%s", port);
    if (s->kind == BSYS_FLOOR || s->kind == BSYS_PROXY) {
        char bin[PATH_MAX + 32];
        snprintf(bin, sizeof(bin), "%s/bench_raw_server", b->bench_dir);
        char *argv[] = { bin, "-l", s->addr, "-p", pay, "-t", threads, NULL };
        s->pid = spawn(argv, log, -1, -1);
        if (s->kind == BSYS_PROXY && s->pid != -1 && wait_accepting(s->addr, BSYS_START_MS) == 0) {
            char up[200];
            snprintf(up, sizeof(up), "%s", s->addr);
            if (unix_net)
                snprintf(s->addr, sizeof(s->addr), "unix://%s/s%d-proxy.sock", b->tmp, n);
            else
                snprintf(s->addr, sizeof(s->addr), "tcp://127.0.0.1:%d", tdaemon_free_port());
            snprintf(bin, sizeof(bin), "%s/bench_raw_proxy", b->bench_dir);
            char *pargv[] = { bin, "-l", s->addr, "-u", up, NULL };
            s->pid2 = s->pid;
            s->pid = spawn(pargv, log, -1, -1);
        }
    } else {
        /* one thread serves commands (io-threads 1, the default); nothing persisted */
        char *argv[] = { b->redis, "--port", port, "--bind", "127.0.0.1", "--unixsocket",
                         sock, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                         "--daemonize", "no", "--protected-mode", "no", "--loglevel",
                         "warning", NULL };
        s->pid = spawn(argv, log, -1, -1);
    }
    if (s->pid == -1 || wait_accepting(s->addr, BSYS_START_MS) == -1) {
        fprintf(stderr, "bench: %s did not accept on %s (log %s)\n", bsys_name(s), s->addr,
                log);
        return -1;
    }
    return 0;
}

int bsys_start(bsys_ctx *b, bsys *s, bsys_kind kind, int threads, int blocking, bpin pin,
               int unix_net, long payload, const char *extra)
{
    int rc = -1;

    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->threads = threads;
    if (kind == BSYS_REDIS && b->redis[0] == '\0')
        return -1;
    /* tdaemon takes daffid from $BUILD: the build under test */
    const char *saved = getenv("BUILD");
    char keep[PATH_MAX];
    snprintf(keep, sizeof(keep), "%s", saved ? saved : "build");
    setenv("BUILD", b->daffid_build, 1);
    if (pin_self(b, pin, 0) == -1) {
        perror("bench: sched_setaffinity");
        goto out;
    }
    switch (kind) {
    case BSYS_DAFFID:
    case BSYS_ISOLATED:
        if (tdaemon_init(&s->d) == -1 ||
            tdaemon_add_plugin(&s->d, "echo",
                               kind == BSYS_ISOLATED ? "isolation = process\n" : NULL) == -1 ||
            daffid_ini(&s->d, threads, blocking) == -1 ||
            (extra != NULL && tdaemon_add_plugin(&s->d, extra, NULL) == -1) ||
            tdaemon_start(&s->d, NULL) == -1)
            break;
        snprintf(s->addr, sizeof(s->addr), "%s", unix_net ? s->d.unix_addr : s->d.tcp);
        rc = 0;
        break;
    case BSYS_ROUTER:
        rc = start_router(s, unix_net);
        break;
    default:
        rc = start_process(b, s, unix_net, payload);
        break;
    }
out:
    unpin_self(b);
    setenv("BUILD", keep, 1);
    s->up = 1;
    if (rc == -1)
        bsys_stop(s);
    return rc;
}

/* Stops a daemon (if started) and removes its dir. */
static void daemon_done(tdaemon *d)
{
    if (d->pid != 0)
        tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS);
    if (d->dir[0] != '\0')
        tdaemon_cleanup(d);
}

void bsys_stop(bsys *s)
{
    if (!s->up)
        return;
    daemon_done(&s->w);
    daemon_done(&s->d);
    pid_t pids[2] = { s->pid, s->pid2 };
    for (int i = 0; i < 2; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    s->pid = s->pid2 = 0;
    s->up = 0;
}

const char *bsys_name(const bsys *s)
{
    static char buf[48];

    switch (s->kind) {
    case BSYS_DAFFID: snprintf(buf, sizeof(buf), "daffid w%d", s->threads); break;
    case BSYS_FLOOR: snprintf(buf, sizeof(buf), "floor %dt", s->threads); break;
    case BSYS_REDIS: snprintf(buf, sizeof(buf), "redis"); break;
    case BSYS_ROUTER: snprintf(buf, sizeof(buf), "router+worker w%d", s->threads); break;
    case BSYS_PROXY: snprintf(buf, sizeof(buf), "proxy+floor"); break;
    case BSYS_ISOLATED: snprintf(buf, sizeof(buf), "daffid w%d isolated", s->threads); break;
    }
    return buf;
}

/* Fills argv (at least 24 slots, strings in bufs) with a bench_calls run against s.
 * mode: "-T" (timed: a = ms, w = warm-up) or "-n" (a calls per connection). */
static void client_argv(bsys_ctx *b, const bsys *s, const bshape *sh, const char *mode,
                        long a, long w, int handshake, char *argv[], char bufs[8][PATH_MAX + 32])
{
    int n = 0;

    snprintf(bufs[0], PATH_MAX + 32, "%s/bench_calls", b->bench_dir);
    snprintf(bufs[1], 32, "%d", sh->conns);
    snprintf(bufs[2], 32, "%d", sh->depth > 0 ? sh->depth : 1);
    snprintf(bufs[3], 32, "%ld", sh->payload);
    snprintf(bufs[4], 32, "%ld", a);
    snprintf(bufs[5], 32, "%ld", w);
    snprintf(bufs[6], 32, "%lld", sh->iarg);
    argv[n++] = bufs[0];
    argv[n++] = "run";
    argv[n++] = "-s";
    argv[n++] = (char *)s->addr;
    argv[n++] = "-c";
    argv[n++] = bufs[1];
    argv[n++] = "-d";
    argv[n++] = bufs[2];
    argv[n++] = "-p";
    argv[n++] = bufs[3];
    argv[n++] = (char *)mode;
    argv[n++] = bufs[4];
    if (mode[1] == 'T') {
        argv[n++] = "-w";
        argv[n++] = bufs[5];
    }
    if (sh->method != NULL) {
        argv[n++] = "-m";
        argv[n++] = (char *)sh->method;
        argv[n++] = "-i";
        argv[n++] = bufs[6];
    }
    if (sh->notify)
        argv[n++] = "-N";
    if (s->kind == BSYS_REDIS)
        argv[n++] = "-r";
    if (handshake)
        argv[n++] = "-g";
    argv[n] = NULL;
}

/* Reads fd to EOF into buf (n bytes). Returns the length. */
static size_t read_all(int fd, char *buf, size_t n)
{
    size_t len = 0;

    for (;;) {
        ssize_t r = read(fd, buf + len, n - 1 - len);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == n - 1)
            break;
    }
    buf[len] = '\0';
    return len;
}

/* Waits for the client pid, whose stdout is fd. Returns calls/s or -1 (printed);
 * *served (may be NULL) gets what the server handled. */
static double client_result(pid_t pid, int fd, long *served)
{
    char out[512];
    int status;

    read_all(fd, out, sizeof(out));
    close(fd);
    waitpid(pid, &status, 0);
    const char *at = strstr(out, "calls_per_s=");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || at == NULL) {
        fprintf(stderr, "bench: bench_calls failed (status %d): %s\n", status, out);
        return -1;
    }
    const char *sv = strstr(out, "served=");
    if (served != NULL)
        *served = sv ? strtol(sv + 7, NULL, 10) : 0;
    return strtod(at + 12, NULL);
}

/* The CPU time every thread of pid has had, in ns (/proc/PID/task/N/schedstat). */
static unsigned long long cpu_ns(pid_t pid)
{
    char dir[64];
    unsigned long long sum = 0;

    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[384], text[128];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1)
            continue;
        read_all(fd, text, sizeof(text));
        close(fd);
        sum += strtoull(text, NULL, 10);
    }
    closedir(d);
    return sum;
}

/* The CPU time of s's main process (which = 0) or of the one behind it (1: the
 * router's worker, the proxy's floor), in ns. */
static unsigned long long sys_cpu_ns(const bsys *s, int which)
{
    if (s->kind == BSYS_ROUTER)
        return cpu_ns(which ? s->w.pid : s->d.pid);
    if (s->kind == BSYS_PROXY)
        return cpu_ns(which ? s->pid2 : s->pid);
    if (which == 1)
        return 0;
    /* an isolated daffid: the parent only (its child's time is not in /proc/PID/task) */
    return s->kind == BSYS_DAFFID || s->kind == BSYS_ISOLATED ? cpu_ns(s->d.pid)
                                                               : cpu_ns(s->pid);
}

/* Spawns a client pinned as pin says; its stdout is *out (and stdin *in when in is
 * not NULL). Returns the pid or -1. */
static pid_t client_spawn(bsys_ctx *b, bpin pin, char *argv[], int *out, int *in)
{
    int po[2], pi[2] = { -1, -1 };

    if (pipe2(po, O_CLOEXEC) == -1 || (in != NULL && pipe2(pi, O_CLOEXEC) == -1))
        return -1;
    pin_self(b, pin, 1);
    pid_t pid = spawn(argv, NULL, pi[0], po[1]);
    unpin_self(b);
    close(po[1]);
    if (pi[0] != -1)
        close(pi[0]);
    *out = po[0];
    if (in != NULL)
        *in = pi[1];
    return pid;
}

double bsys_rate(bsys_ctx *b, const bsys *s, bpin pin, const bshape *sh, long ms, long warm,
                 double cpu_us[2])
{
    char *argv[24], bufs[8][PATH_MAX + 32];
    int out;
    long served = 0;

    client_argv(b, s, sh, "-T", ms, warm, 0, argv, bufs);
    unsigned long long before[2] = { sys_cpu_ns(s, 0), sys_cpu_ns(s, 1) };
    pid_t pid = client_spawn(b, pin, argv, &out, NULL);
    double r = pid == -1 ? -1 : client_result(pid, out, &served);
    for (int i = 0; cpu_us != NULL && i < 2; i++)
        cpu_us[i] = r < 0 || served <= 0 ||
                    (i == 1 && s->kind != BSYS_ROUTER && s->kind != BSYS_PROXY)
                    ? -1 : (double)(sys_cpu_ns(s, i) - before[i]) / 1000.0 / (double)served;
    return r;
}

int bsys_load_start(bsys_ctx *b, const bsys *s, bpin pin, const bshape *sh, long ms,
                    bload *l)
{
    char *argv[24], bufs[8][PATH_MAX + 32];
    char line[16];

    client_argv(b, s, sh, "-T", ms, 0, 1, argv, bufs);
    l->pid = client_spawn(b, pin, argv, &l->out, &l->in);
    if (l->pid == -1)
        return -1;
    /* connected: let it send */
    ssize_t r = read(l->out, line, 6);
    if (r != 6 || write(l->in, "go\n", 3) != 3) {
        fprintf(stderr, "bench: the load client did not start\n");
        kill(l->pid, SIGKILL);
        client_result(l->pid, l->out, NULL);
        close(l->in);
        return -1;
    }
    return 0;
}

double bsys_load_wait(bload *l)
{
    close(l->in);
    return client_result(l->pid, l->out, NULL);
}

/* Parses strace -c output in path into t for calls calls. Returns 0 or -1. */
static int parse_strace(const char *path, long calls, btrace *t)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int rc = -1;

    memset(t, 0, sizeof(*t));
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *tok[8];
        int n = 0;
        for (char *p = strtok(line, " \t\n"); p != NULL && n < 8; p = strtok(NULL, " \t\n"))
            tok[n++] = p;
        /* % time, seconds, usecs/call, calls, [errors,] syscall */
        if (n < 5 || n > 6 || tok[0][0] < '0' || tok[0][0] > '9')
            continue;
        double per = strtod(tok[3], NULL) / (double)calls;
        const char *name = tok[n - 1];
        if (strcmp(name, "total") == 0) {
            t->per_call = per;
            rc = 0;
        } else if (t->ntop < BSYS_MAX_TOP && per >= 0.01) {
            /* strace -S calls sorted them by count */
            snprintf(t->top[t->ntop].name, sizeof(t->top[0].name), "%s", name);
            t->top[t->ntop++].per_call = per;
        }
    }
    fclose(f);
    return rc;
}

/* Starts strace -c -f on pid writing to out (its messages to err) and waits until it
 * says it attached. Returns its pid or -1. */
static pid_t strace_attach(bsys_ctx *b, pid_t pid, const char *out, const char *err)
{
    char p[16];

    snprintf(p, sizeof(p), "%d", (int)pid);
    unlink(out);
    unlink(err);
    char *argv[] = { b->strace, "-c", "-f", "-S", "calls", "-o", (char *)out, "-p", p, NULL };
    pid_t sp = spawn(argv, err, -1, -1);
    if (sp == -1)
        return -1;
    long long deadline = expect_now_ms() + BSYS_ATTACH_MS;
    while (expect_now_ms() < deadline) {
        char text[1024];
        int fd = open(err, O_RDONLY | O_CLOEXEC);
        if (fd != -1) {
            read_all(fd, text, sizeof(text));
            close(fd);
            if (strstr(text, "attached") != NULL)
                return sp;
        }
        pause_ms(10);
    }
    fprintf(stderr, "bench: strace did not attach to %d (see %s)\n", (int)pid, err);
    kill(sp, SIGKILL);
    waitpid(sp, NULL, 0);
    return -1;
}

int bsys_trace(bsys_ctx *b, const bsys *s, bpin pin, const bshape *sh, long calls,
               btrace out[2])
{
    char *argv[24], bufs[8][PATH_MAX + 32];
    char tout[2][192], terr[2][192];
    pid_t targets[2], tracers[2] = { -1, -1 };
    int ntargets = 0, cin, cout, rc = -1;
    char line[16];

    if (b->strace[0] == '\0')
        return 0;
    if (s->kind == BSYS_DAFFID || s->kind == BSYS_ROUTER || s->kind == BSYS_ISOLATED)
        targets[ntargets++] = s->d.pid;
    if (s->kind == BSYS_ROUTER)
        targets[ntargets++] = s->w.pid;
    if (s->kind == BSYS_FLOOR || s->kind == BSYS_REDIS || s->kind == BSYS_PROXY)
        targets[ntargets++] = s->pid;
    if (s->kind == BSYS_PROXY)
        targets[ntargets++] = s->pid2;
    client_argv(b, s, sh, "-n", calls, 0, 1, argv, bufs);
    pid_t pid = client_spawn(b, pin, argv, &cout, &cin);
    if (pid == -1)
        return -1;
    if (read(cout, line, 6) != 6) {
        fprintf(stderr, "bench: the traced client did not connect\n");
        goto out;
    }
    for (int i = 0; i < ntargets; i++) {
        snprintf(tout[i], sizeof(tout[i]), "%s/strace%d.out", b->tmp, i);
        snprintf(terr[i], sizeof(terr[i]), "%s/strace%d.err", b->tmp, i);
        tracers[i] = strace_attach(b, targets[i], tout[i], terr[i]);
        if (tracers[i] == -1)
            goto out;
    }
    if (write(cin, "go\n", 3) != 3)
        goto out;
    close(cin);
    cin = -1;
    double r = client_result(pid, cout, NULL);
    pid = -1;
    for (int i = 0; i < ntargets; i++) {
        kill(tracers[i], SIGINT);
        waitpid(tracers[i], NULL, 0);
        tracers[i] = -1;
    }
    if (r < 0)
        goto out;
    long total = (long)sh->conns * calls;
    for (int i = 0; i < ntargets; i++)
        if (parse_strace(tout[i], total, &out[i]) == -1) {
            fprintf(stderr, "bench: no strace summary in %s\n", tout[i]);
            goto out;
        }
    rc = ntargets;
out:
    if (cin != -1)
        close(cin);
    if (pid != -1) {
        kill(pid, SIGKILL);
        client_result(pid, cout, NULL);
    }
    for (int i = 0; i < ntargets; i++)
        if (tracers[i] > 0) {
            kill(tracers[i], SIGINT);
            waitpid(tracers[i], NULL, 0);
        }
    return rc;
}

const char *bsys_loadavg(char *buf, size_t n)
{
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    double a = 0, b5 = 0, c = 0;

    snprintf(buf, n, "?");
    if (fd == -1)
        return buf;
    char text[128];
    read_all(fd, text, sizeof(text));
    close(fd);
    if (sscanf(text, "%lf %lf %lf", &a, &b5, &c) == 3)
        snprintf(buf, n, "%.2f %.2f %.2f", a, b5, c);
    return buf;
}
