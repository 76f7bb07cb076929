/*
 * bench_reload.c - hot reload under measurement: how long from the trigger until the
 * new generation answers, and what a reload storm does to call latency.
 *
 * usage: bench_reload [-n RELOADS] [-s STORM_MS] [-i INTERVAL_MS]
 *
 * It builds two variants of the reloadable fixture plugin
 * (tests/fixtures/plugins/reloadable.c, -DRELOAD_VARIANT=1 and 2) with `cc`, starts a
 * daffid (tests/support/daemon.h: workers = 2, [log] level = warn) serving one of them,
 * then:
 *   (1) serve time: RELOADS times, renames the other variant over the plugin path,
 *       sends SIGHUP, and calls variant() on one connection until the new variant
 *       answers. Prints the median, p90 and max of trigger-to-serving (target: under
 *       50 ms). The watcher's own trigger adds its quiet period (100 ms) on purpose; it
 *       is measured once the same way and printed beside.
 *   (2) latency: one client thread calls variant() back to back for STORM_MS of steady
 *       state, then for STORM_MS while the main thread swaps and SIGHUPs every
 *       INTERVAL_MS. Prints p50 / p99 / max of each phase from the same run, and the
 *       ratio of the p99s (target: within 2x). Any failed call is counted and printed.
 * Nothing is asserted; the exit status is non-zero only when a measurement could not
 * be made. Run from the repository root with BUILD set (as make bench does).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/rawconn.h"

#define FIXTURE_SRC "tests/fixtures/plugins/reloadable.c"
#define MAX_SAMPLES (4 * 1024 * 1024)

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Builds the fixture with RELOAD_VARIANT=variant into out. Returns 0 or -1. */
static int build(const char *out, int variant)
{
    char def[64];
    int status;
    pid_t pid;

    snprintf(def, sizeof(def), "-DRELOAD_VARIANT=%d", variant);
    pid = fork();
    if (pid == -1)
        return -1;
    if (pid == 0) {
        execlp("cc", "cc", "-shared", "-fPIC", "-O2", "-I", "sdk/include", def, FIXTURE_SRC,
               "-o", out, (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Copies src to dst through a temporary name and a rename. Returns 0 or -1. */
static int swap_in(const char *src, const char *dst)
{
    char tmp[PATH_MAX + 8], buf[65536];
    int in, out;
    ssize_t n;

    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in == -1)
        return -1;
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out == -1) {
        close(in);
        return -1;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            n = -1;
    close(in);
    if (close(out) == -1 || n == -1)
        return -1;
    return rename(tmp, dst);
}

/* Calls variant() on c. Returns the variant, or -1 when the call failed. */
static int64_t call_variant(rawconn *c, uint32_t msgid)
{
    rawmsg m;

    rawmsg_init(&m);
    rawmsg_request(&m, msgid, "variant", 0);
    int rc = rawconn_send_msg(c, &m);
    rawmsg_destroy(&m);
    if (rc == -1 || rawconn_read(c, 10000) != RAWCONN_OK)
        return -1;
    const daffi_msg *msg = &c->msg;
    if (msg->kind != DAFFI_MSG_RESPONSE || msg->msgid != msgid ||
        (msg->error != NULL && msg->error->type != MSGPACK_OBJECT_NIL) ||
        msg->result->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    return (int64_t)msg->result->via.u64;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Returns the q-quantile (0..1) of the sorted samples. */
static int64_t quantile(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* The latency client: calls back to back, files each latency under the phase it
 * started in (0 steady, 1 storm), until phase 2. */
typedef struct prober {
    const char *addr;
    atomic_int phase;
    int64_t *lat[2];
    size_t n[2];
    long failed;
    int ready;
} prober;

static void *prober_main(void *arg)
{
    prober *p = arg;
    rawconn c;

    if (rawconn_open(&c, p->addr, 5000) == -1) {
        p->failed++;
        return NULL;
    }
    p->ready = 1;
    for (uint32_t id = 1;; id++) {
        int phase = atomic_load(&p->phase);
        if (phase >= 2)
            break;
        int64_t t0 = now_us();
        if (call_variant(&c, id) == -1) {
            p->failed++;
            break;
        }
        if (p->n[phase] < MAX_SAMPLES)
            p->lat[phase][p->n[phase]++] = now_us() - t0;
    }
    rawconn_close(&c);
    return NULL;
}

int main(int argc, char **argv)
{
    int reloads = 50, storm_ms = 2000, interval_ms = 10, opt;
    const char *const overrides[] = {"log.level=warn", NULL};
    char so[PATH_MAX], var[2][PATH_MAX];
    tdaemon d;
    rawconn c;
    int rc = 1;

    while ((opt = getopt(argc, argv, "n:s:i:")) != -1) {
        switch (opt) {
        case 'n':
            reloads = atoi(optarg);
            break;
        case 's':
            storm_ms = atoi(optarg);
            break;
        case 'i':
            interval_ms = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bench_reload [-n RELOADS] [-s STORM_MS] [-i INTERVAL_MS]\n");
            return 2;
        }
    }
    if (reloads < 1 || storm_ms < 100 || interval_ms < 1) {
        fprintf(stderr, "bench_reload: -n >= 1, -s >= 100, -i >= 1\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (tdaemon_init(&d) == -1)
        return 2;
    snprintf(so, sizeof(so), "%s/reloadable.so", d.dir);
    for (int v = 0; v < 2; v++) {
        snprintf(var[v], sizeof(var[v]), "%s/variant%d.so", d.dir, v + 1);
        if (build(var[v], v + 1) == -1) {
            fprintf(stderr, "bench_reload: cannot build %s from %s\n", var[v], FIXTURE_SRC);
            goto out;
        }
    }
    if (swap_in(var[0], so) == -1 ||
        tdaemon_write_file(&d, "10-reloadable.ini", "[plugin]\nname = reloadable\n"
                           "path = %s\n", so) == -1 ||
        tdaemon_start(&d, overrides) == -1)
        goto out;
    if (rawconn_open(&c, d.tcp, 5000) == -1) {
        fprintf(stderr, "bench_reload: connect %s: %s\n", d.tcp, strerror(errno));
        goto out;
    }
    sleep_us(300000); /* the watcher's start-up check */

    /* (1) trigger to serving */
    int64_t *serve = calloc((size_t)reloads, sizeof(*serve));
    uint32_t id = 1;
    int64_t cur = call_variant(&c, id++);
    if (serve == NULL || cur != 1) {
        fprintf(stderr, "bench_reload: variant() answered %lld, want 1\n", (long long)cur);
        rawconn_close(&c);
        free(serve);
        goto out;
    }
    for (int r = 0; r < reloads; r++) {
        int64_t want = cur == 1 ? 2 : 1, got;
        if (swap_in(var[want - 1], so) == -1)
            break;
        int64_t t0 = now_us();
        tdaemon_signal(&d, SIGHUP);
        while ((got = call_variant(&c, id++)) == cur)
            ;
        serve[r] = now_us() - t0;
        if (got != want) {
            fprintf(stderr, "bench_reload: reload %d: variant() answered %lld\n", r,
                    (long long)got);
            rawconn_close(&c);
            free(serve);
            goto out;
        }
        cur = want;
        sleep_us(150000); /* let the watcher's reload of the same change pass */
    }
    /* once through the watcher alone: its quiet period is part of the figure */
    int64_t want = cur == 1 ? 2 : 1, watch_us = -1;
    if (swap_in(var[want - 1], so) == 0) {
        int64_t t0 = now_us(), got;
        while ((got = call_variant(&c, id++)) == cur && now_us() - t0 < 5000000)
            ;
        if (got == want)
            watch_us = now_us() - t0;
        cur = got;
    }
    rawconn_close(&c);
    qsort(serve, (size_t)reloads, sizeof(*serve), cmp_i64);
    printf("daffid hot reload (workers = 2; reloadable fixture, two builds swapped by "
           "rename)\n\n");
    printf("(1) trigger to new generation serving, %d reloads by SIGHUP:\n", reloads);
    printf("    median %.2f ms  p90 %.2f ms  max %.2f ms   target < 50 ms: %s\n",
           quantile(serve, (size_t)reloads, 0.5) / 1000.0,
           quantile(serve, (size_t)reloads, 0.9) / 1000.0, serve[reloads - 1] / 1000.0,
           serve[reloads - 1] < 50000 ? "met" : "below");
    printf("    by the inotify watcher alone (includes its %d ms quiet period): %.2f ms\n",
           100, watch_us / 1000.0);
    free(serve);

    /* (2) latency, steady then storm, in one run */
    prober p;
    pthread_t th;
    memset(&p, 0, sizeof(p));
    p.addr = d.tcp;
    atomic_init(&p.phase, 0);
    p.lat[0] = malloc(MAX_SAMPLES * sizeof(int64_t));
    p.lat[1] = malloc(MAX_SAMPLES * sizeof(int64_t));
    if (p.lat[0] == NULL || p.lat[1] == NULL ||
        pthread_create(&th, NULL, prober_main, &p) != 0) {
        free(p.lat[0]);
        free(p.lat[1]);
        goto out;
    }
    sleep_us((int64_t)storm_ms * 1000);
    atomic_store(&p.phase, 1);
    int storm = 0;
    for (int64_t end = now_us() + (int64_t)storm_ms * 1000; now_us() < end; storm++) {
        int next = storm % 2 == 0 ? (cur == 1 ? 2 : 1) : (int)cur;
        swap_in(var[next - 1], so);
        tdaemon_signal(&d, SIGHUP);
        sleep_us((int64_t)interval_ms * 1000);
    }
    atomic_store(&p.phase, 2);
    pthread_join(th, NULL);
    qsort(p.lat[0], p.n[0], sizeof(int64_t), cmp_i64);
    qsort(p.lat[1], p.n[1], sizeof(int64_t), cmp_i64);
    int64_t p99s = quantile(p.lat[0], p.n[0], 0.99), p99r = quantile(p.lat[1], p.n[1], 0.99);
    printf("\n(2) call latency, one connection back to back, %d ms each phase:\n", storm_ms);
    printf("    steady            %8zu calls  p50 %6lld us  p99 %6lld us  max %7lld us\n",
           p.n[0], (long long)quantile(p.lat[0], p.n[0], 0.5), (long long)p99s,
           (long long)(p.n[0] ? p.lat[0][p.n[0] - 1] : 0));
    printf("    storm (%4d reloads) %6zu calls  p50 %6lld us  p99 %6lld us  max %7lld us\n",
           storm, p.n[1], (long long)quantile(p.lat[1], p.n[1], 0.5), (long long)p99r,
           (long long)(p.n[1] ? p.lat[1][p.n[1] - 1] : 0));
    double ratio = p99s > 0 ? (double)p99r / (double)p99s : 0;
    printf("    p99 storm/steady %.2f   target <= 2: %s   failed calls: %ld\n", ratio,
           ratio <= 2.0 ? "met" : "below", p.failed);
    free(p.lat[0]);
    free(p.lat[1]);
    rc = p.failed ? 1 : 0;
out:
    if (tdaemon_stop(&d, TDAEMON_STOP_TIMEOUT_MS) != 0)
        rc = 1;
    tdaemon_cleanup(&d);
    return rc;
}
