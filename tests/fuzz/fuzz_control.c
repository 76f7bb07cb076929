/*
 * fuzz_control.c - libFuzzer target for what a router does with the messages its peers
 * send: framing, the daffi.* control table (hello and re-announce, members, subscribe,
 * call, cast, wait, the stream steps), routing to members, relayed streams, and the
 * connection lifetime when peers vanish mid-way. In-process, against a real router
 * state with one loop run on the fuzzing thread. `make fuzz FUZZ_FILTER=control`.
 *
 * Set-up (once): a router configuration (one loop, the echo plugin when it was built,
 * which makes the router a member too), the member registry, the callback table, the
 * loop, as daffid has them.
 *
 * Each input is cut at every "\xc1\xc1" (0xc1 is never valid msgpack) into the byte
 * streams of up to 4 peers, connected over socketpairs in turn; each stream is written
 * (at most 64 KiB), the loop runs until nothing is left to do, and what the router sent
 * each peer is read. Properties: the router stays up; everything it writes to a peer is
 * a sequence of whole, valid MessagePack-RPC messages (the codec's scanner accepts it
 * with the server's limits). Then every peer hangs up and the router must release
 * every connection and every call tied to them (nothing may be left: checked).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn.h"
#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "membership.h"
#include "router.h"
#include "server.h"

#define PEERS 4
#define PEER_MAX (64 * 1024)

static dfd_server srv;
static dfd_loop *loop;
static char dir[64];

static void setup(void)
{
    static const char *const sos[] = { "build-fuzz/plugins/echo.so", "build/plugins/echo.so" };
    char text[PATH_MAX + 256], so[PATH_MAX], path[128];
    dfd_errors errs = {0};
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/daffid-fuzz-control.XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/00-router.ini", dir);
    f = fopen(path, "w");
    if (f == NULL)
        abort();
    fprintf(f, "[server]\nrole = router\nname = hub\nlisten = unix://%s/never.sock\n"
               "workers = 1\ndefault_timeout = 200ms\n[log]\nlevel = error\n", dir);
    fclose(f);
    for (size_t i = 0; i < sizeof(sos) / sizeof(sos[0]); i++)
        if (realpath(sos[i], so) != NULL) {
            snprintf(path, sizeof(path), "%s/10-echo.ini", dir);
            f = fopen(path, "w");
            if (f == NULL)
                abort();
            snprintf(text, sizeof(text), "[plugin]\nname = echo\npath = %s\n", so);
            fputs(text, f);
            fclose(f);
            break;
        }
    dfd_log_setup(DAFFI_LOG_ERROR, DFD_LOG_STDERR, DFD_LOG_TEXT, "fuzz_control");
    srv.cfg = calloc(1, sizeof(*srv.cfg));
    if (srv.cfg == NULL || dfd_config_load(srv.cfg, dir, NULL, 0, 1, &errs) == -1)
        abort();
    srv.limits.max_message = srv.cfg->max_message;
    srv.limits.max_depth = srv.cfg->max_depth;
    srv.started_ns = dfd_now_ns();
    srv.route = dfd_router_route_call;
    if (dfd_callstat_names_init(&srv.callnames) == -1 || dfd_membership_init(&srv) == -1 ||
        dfd_server_private_dir(&srv) == -1 || dfd_server_load_plugins(&srv, &errs) == -1)
        abort();
    srv.loops = calloc(1, sizeof(dfd_loop));
    if (srv.loops == NULL || dfd_loop_init(&srv.loops[0], &srv, 0, srv.table) == -1)
        abort();
    srv.nloops = 1;
    loop = &srv.loops[0];
    loop->thread = pthread_self(); /* this thread runs the loop */
    dfd_snapshot_retain(srv.registry.current);
    loop->snapshot = srv.registry.current;
    if (dfd_membership_join_self(&srv) == -1)
        abort();
}

/* Runs the loop until nothing is left to do now. */
static void run_loop(void)
{
    for (int i = 0; i < 32; i++)
        event_base_loop(loop->base, EVLOOP_NONBLOCK);
}

/* Reads what the router sent on fd and checks that it is whole, valid messages. */
static void check_output(int fd)
{
    static char buf[4 * 1024 * 1024];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf))
            break;
    }
    size_t off = 0;
    while (off < len) {
        daffi_scan scan;
        daffi_scan_init(&scan);
        daffi_scan_result r = daffi_scan_feed(&scan, buf + off, len - off, &srv.limits);
        if (r == DAFFI_SCAN_NEED_MORE && len == sizeof(buf))
            return; /* more than the buffer holds: the rest is still coming */
        if (r != DAFFI_SCAN_COMPLETE) {
            fprintf(stderr, "fuzz_control: the router wrote %s at byte %zu of %zu: %s\n",
                    r == DAFFI_SCAN_NEED_MORE ? "a cut message" : "an invalid message", off,
                    len, scan.error ? scan.error : "?");
            abort();
        }
        off += scan.size;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (srv.cfg == NULL)
        setup();
    int peers[PEERS];
    int npeers = 0;
    const uint8_t *p = data, *end = data + size;
    while (npeers < PEERS && p <= end) {
        const uint8_t *cut = p;
        while (cut + 1 < end && !(cut[0] == 0xc1 && cut[1] == 0xc1))
            cut++;
        if (cut + 1 >= end)
            cut = end;
        size_t n = (size_t)(cut - p);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
            abort();
        atomic_fetch_add(&srv.conns, 1);
        if (dfd_conn_adopt(loop, sv[0], 1, &dfd_caller_ops, NULL) == NULL)
            abort();
        peers[npeers++] = sv[1];
        if (n > PEER_MAX)
            n = PEER_MAX;
        for (size_t off = 0; off < n;) {
            ssize_t w = write(sv[1], p + off, n - off);
            if (w <= 0) {
                run_loop(); /* the router reads, making room */
                check_output(sv[1]);
                if (w == -1 && errno != EAGAIN)
                    break;
                continue;
            }
            off += (size_t)w;
        }
        run_loop();
        for (int k = 0; k < npeers; k++)
            check_output(peers[k]);
        if (cut == end)
            break;
        p = cut + 2;
    }
    /* everyone hangs up; the router keeps nothing of them */
    for (int k = 0; k < npeers; k++)
        close(peers[k]);
    run_loop();
    for (dfd_conn *c = loop->conns; c != NULL; c = c->next)
        if (!c->dead)
            dfd_conn_close(c, 0); /* half-closed callers with calls parked */
    run_loop();
    if (loop->conns != NULL || loop->nconns != 0 || atomic_load(&srv.conns) != 0) {
        fprintf(stderr, "fuzz_control: %u connections left after every peer left\n",
                loop->nconns);
        abort();
    }
    if (atomic_load(&loop->nwaiters) != 0 || atomic_load(&loop->handler_calls) != 0) {
        fprintf(stderr, "fuzz_control: %u waits and %u handler calls left\n",
                atomic_load(&loop->nwaiters), atomic_load(&loop->handler_calls));
        abort();
    }
    return 0;
}
