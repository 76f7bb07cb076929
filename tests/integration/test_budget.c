/*
 * test_budget.c - the memory budget ([limits] max_memory, max_connection_memory) under
 * the two attacks of issue 16:
 *
 *   - one connection sends 1,200 pending echo_after(6000, <1 MiB>) calls (before the
 *     budget: +1.2 GiB of RSS); several connections do the same together;
 *   - 20 clients send echo(<1 MiB>) calls and never read the answers (before: about
 *     10 MiB each, 204 MiB for 20 here; 216 MiB in the issue).
 *
 * With the budget, the calls past a connection's share or past max_memory are answered
 * OVERLOADED with a message naming the limit and the figures, the clients that do not
 * read are closed oldest first (the log names each and why), the resident memory of
 * daffid grows by less than max_memory plus a stated overhead (BUDGET_OVERHEAD), other
 * callers keep being served, admin `status` shows memory used and limit, and `used`
 * comes back to 0 once the calls are over; a pending call is charged for its decoded
 * params (the server decodes them only when a handler asks). A big message arriving while the budget
 * is spent waits (its connection is not read) until there is room, then is served.
 *
 * Under a sanitizer the resident memory means little (shadow memory, quarantine): the
 * figures are printed, not asserted.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/aconn.h"
#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_ASSERTED 0
#else
#define RSS_ASSERTED 1
#endif

#define MIB (1024 * 1024)
/* What daffid may hold besides the budget: its own baseline growth under load (the
 * read buffers' base size, recycled call records, malloc's arenas and fragmentation,
 * a result being packed). */
#define BUDGET_OVERHEAD (32 * MIB)

#define PENDING_CALLS 1200
#define NON_READERS 20
#ifndef NON_READER_PAYLOAD
#define NON_READER_PAYLOAD MIB /* each echo call of a client that never reads */
#endif

typedef struct bfix {
    tdaemon d;
    char admin[PATH_MAX];
    long long limit;
} bfix;

static int start_with_budget(void **state, const char *max_memory, long long limit)
{
    bfix *f = calloc(1, sizeof(*f));
    char o_admin[PATH_MAX + 32], o_mem[64];
    const char *ov[] = { o_admin, o_mem, NULL };

    if (f == NULL || tdaemon_init(&f->d) == -1 || tdaemon_add_example_plugins(&f->d) == -1)
        return -1;
    snprintf(f->admin, sizeof(f->admin), "%s/admin.sock", f->d.dir);
    snprintf(o_admin, sizeof(o_admin), "admin.socket=%s", f->admin);
    snprintf(o_mem, sizeof(o_mem), "limits.max_memory=%s", max_memory);
    f->limit = limit;
    if (tdaemon_start(&f->d, ov) == -1) {
        tdaemon_cleanup(&f->d);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup_128m(void **state)
{
    return start_with_budget(state, "128M", 128LL * MIB);
}

static int setup_64m(void **state)
{
    return start_with_budget(state, "64M", 64LL * MIB);
}

static int teardown(void **state)
{
    bfix *f = *state;
    int rc = tcluster_stop(&f->d);

    free(f);
    return rc;
}

/* A field of /proc/PID/status in bytes (VmRSS, VmHWM), or -1. */
static long long proc_status_bytes(pid_t pid, const char *field)
{
    char path[64], line[256];
    long long kib = -1;
    size_t n = strlen(field);

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kib = atoll(line + n + 1);
    fclose(fp);
    return kib < 0 ? -1 : kib * 1024;
}

/* status.memory of the daemon: used and limit (fails when absent). */
static void memory_status(const bfix *f, long long *used, long long *limit)
{
    json_t *r = aconn_once(f->admin, "status");
    json_t *m = json_object_get(r, "memory");

    if (!json_is_object(m))
        fail_msg("admin status has no `memory` object");
    *used = jint(m, "used");
    *limit = jint(m, "limit");
    json_decref(r);
}

/* Polls status until memory.used is 0 (at most 5 s): nothing held is left counted. */
static void wait_used_zero(const bfix *f)
{
    long long used = -1, limit;
    int64_t t0 = expect_now_ms();

    while (expect_now_ms() - t0 < 5000) {
        memory_status(f, &used, &limit);
        if (used == 0)
            return;
        usleep(50 * 1000);
    }
    fail_msg("memory.used stayed %lld once every call was over", used);
}

/* The peak resident memory daffid reached above baseline, printed and (outside
 * sanitizers) asserted under the budget plus BUDGET_OVERHEAD. */
static void check_rss(const bfix *f, long long baseline, const char *what)
{
    long long hwm = proc_status_bytes(f->d.pid, "VmHWM");

    assert_true(hwm > 0);
    long long grew = hwm - baseline;
    print_message("%s: resident memory peaked %.1f MiB above its %.1f MiB baseline "
                  "(max_memory %.0f MiB + overhead %d MiB allowed)\n", what,
                  (double)grew / MIB, (double)baseline / MIB, (double)f->limit / MIB,
                  BUDGET_OVERHEAD / MIB);
    if (RSS_ASSERTED && grew > f->limit + BUDGET_OVERHEAD)
        fail_msg("%s: daffid's resident memory grew by %lld bytes, past max_memory %lld "
                 "+ %d", what, grew, f->limit, BUDGET_OVERHEAD);
}

/* ---- one connection, many pending big calls ---------------------------------------- */

/* The pending calls sleep long enough for every call of an attack to arrive while the
 * first ones still hold their memory: what the tests infer ("held at once") needs it.
 * Under ThreadSanitizer moving hundreds of MiB through daffid takes several times as
 * long, and 4-6 s were not enough (more calls served than fit, a big message refused
 * instead of waiting): the delays are three times as long there. The six-connection
 * attacks need more than that (sending their 240 MiB took 30 s under TSan, and a
 * connection whose 1 MiB answers pile up unread meanwhile is rightly shed as a
 * non-reader), and so does the big message that waits for room: under TSan they are
 * skipped, and say so (TSAN_SKIP). */
#if defined(__SANITIZE_THREAD__)
#define DELAY(ms) ((ms) * 3)
#define TSAN_SKIP()                                                                    \
    do {                                                                               \
        print_message("SKIPPED under ThreadSanitizer: the attack's timing needs "      \
                      "the uninstrumented speed (see DELAY)\n");                       \
        skip();                                                                        \
    } while (0)
#else
#define DELAY(ms) (ms)
#define TSAN_SKIP() ((void)0)
#endif

typedef struct pending_attack {
    const char *addr;
    unsigned calls;
    int delay_ms;
    rawconn c;
    atomic_int sent;               /* 1 once every call is sent (the thread's word) */
} pending_attack;

/* Sends attack->calls echo_after(delay, <1 MiB>) without reading. Thread body. */
static void *send_pending(void *arg)
{
    pending_attack *a = arg;
    char *body = malloc(MIB);
    rawmsg m;

    memset(body, 0x5a, MIB);
    rawmsg_init(&m);
    for (unsigned id = 1; id <= a->calls; id++) {
        msgpack_packer *pk = rawmsg_request(&m, id, "echo_after", 2);
        msgpack_pack_int(pk, a->delay_ms);
        msgpack_pack_bin(pk, MIB);
        msgpack_pack_bin_body(pk, body, MIB);
        if (rawconn_send_msg(&a->c, &m) == -1)
            break;
    }
    rawmsg_destroy(&m);
    free(body);
    atomic_store(&a->sent, 1);
    return NULL;
}

/* Reads the answers of a: returns how many were served; every other one must be
 * OVERLOADED with a message naming `limit_word`, copied into *why (the first one). */
static unsigned read_pending_answers(const bfix *f, pending_attack *a,
                                     const char *limit_word, char *why, size_t whysz,
                                     unsigned *named)
{
    unsigned ok = 0;

    for (unsigned i = 0; i < a->calls; i++) {
        rawconn_status st = rawconn_read(&a->c, 60000); /* slow under a sanitizer */
        if (st != RAWCONN_OK || a->c.msg.kind != DAFFI_MSG_RESPONSE)
            tdaemon_dump_log(&f->d);
        if (st != RAWCONN_OK || a->c.msg.kind != DAFFI_MSG_RESPONSE)
            fail_msg("answer %u of %u: %s", i + 1, a->calls, rawconn_status_name(st));
        if (a->c.msg.error->type == MSGPACK_OBJECT_NIL) {
            if (a->c.msg.result->type != MSGPACK_OBJECT_BIN ||
                a->c.msg.result->via.bin.size != MIB)
                fail_msg("a served call did not return its 1 MiB");
            ok++;
            continue;
        }
        check_error(&a->c, a->c.msg.msgid, DAFFI_E_OVERLOADED);
        const msgpack_object_str *s = &a->c.msg.error->via.array.ptr[1].via.str;
        if (why[0] == '\0')
            snprintf(why, whysz, "%.*s", (int)s->size, s->ptr);
        if (memmem(s->ptr, s->size, limit_word, strlen(limit_word)) != NULL)
            (*named)++;
    }
    return ok;
}

/* 1,200 pending echo_after(6000, <1 MiB>) on one connection: it gets its share
 * (max_connection_memory, a quarter of max_memory: 32 MiB), the rest is OVERLOADED
 * naming max_connection_memory, others are served meanwhile (a 1 MiB echo too), the
 * memory stays within the budget. */
static void test_pending_big_calls_of_one_connection_stay_within_its_share(void **state)
{
    bfix *f = *state;
    pending_attack a = { .addr = f->d.tcp, .calls = PENDING_CALLS, .delay_ms = DELAY(6000) };
    pthread_t t;
    rawconn bystander;
    long long used, limit, max_used = 0;
    int64_t worst = 0;
    char why[256] = "";
    unsigned named = 0;

    expect_open(&bystander, f->d.tcp);
    expect_ping(&bystander, 1);
    long long baseline = proc_status_bytes(f->d.pid, "VmRSS");
    expect_open(&a.c, f->d.tcp);
    assert_int_equal(pthread_create(&t, NULL, send_pending, &a), 0);
    uint32_t id = 2;
    while (!atomic_load(&a.sent)) {
        int64_t t0 = expect_now_ms();
        expect_ping(&bystander, id++);
        int64_t ms = expect_now_ms() - t0;
        worst = ms > worst ? ms : worst;
        memory_status(f, &used, &limit);
        max_used = used > max_used ? used : max_used;
        usleep(20 * 1000);
    }
    pthread_join(t, NULL);
    /* the calls are pending now: a 1 MiB call of another connection still fits */
    rawconn other;
    expect_open(&other, f->d.tcp);
    char *body = calloc(1, MIB);
    expect_send_raw_call(&other, 1, "echo", 1, "\xc6\x00\x10\x00\x00", 5);
    rawconn_send(&other, body, MIB);
    free(body);
    const msgpack_object *r = expect_result(&other, 1);
    assert_int_equal(r->via.bin.size, MIB);
    rawconn_close(&other);
    memory_status(f, &used, &limit);
    max_used = used > max_used ? used : max_used;
    unsigned ok = read_pending_answers(f, &a, "max_connection_memory", why, sizeof(why),
                                       &named);
    print_message("%u of %u pending calls served, %u OVERLOADED (\"%s\"); bystander's "
                  "slowest ping %lld ms; memory.used peaked at %.1f MiB of %.0f MiB\n", ok,
                  PENDING_CALLS, PENDING_CALLS - ok, why, (long long)worst,
                  (double)max_used / MIB, (double)limit / MIB);
    assert_int_equal(limit, f->limit);
    if (ok == 0 || ok > 32)
        fail_msg("%u pending 1 MiB calls were taken, not a share of 32 MiB", ok);
    if (named != PENDING_CALLS - ok)
        fail_msg("%u of %u OVERLOADED answers name max_connection_memory", named,
                 PENDING_CALLS - ok);
    if (max_used > f->limit / 4 + 4 * MIB)
        fail_msg("memory.used reached %lld with one connection (its share: %lld)", max_used,
                 f->limit / 4);
    if (worst > 1000)
        fail_msg("a bystander's ping took %lld ms during the attack", (long long)worst);
    check_rss(f, baseline, "1,200 pending 1 MiB calls");
    assert_true(tcluster_admin_counter(f->admin, "memory_refused") >= PENDING_CALLS - ok);
    rawconn_close(&a.c);
    expect_ping(&bystander, id);
    rawconn_close(&bystander);
    wait_used_zero(f);
}

/* Six connections with 40 pending 1 MiB calls each (240 MiB wanted, 6 x 32 MiB of
 * shares): max_memory (128 MiB) holds, the calls past it are OVERLOADED naming
 * max_memory, and once they are answered the budget is free again. */
static void test_many_connections_together_stay_within_max_memory(void **state)
{
    TSAN_SKIP();
    bfix *f = *state;
    enum { N = 6 };
    pending_attack a[N];
    pthread_t t[N];
    unsigned ok = 0, named = 0, refused = 0;
    char why[256] = "";

    long long baseline = proc_status_bytes(f->d.pid, "VmRSS");
    for (int i = 0; i < N; i++) {
        a[i] = (pending_attack){ .addr = f->d.tcp, .calls = 40, .delay_ms = DELAY(4000) };
        expect_open(&a[i].c, f->d.tcp);
        assert_int_equal(pthread_create(&t[i], NULL, send_pending, &a[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    long long used, limit;
    memory_status(f, &used, &limit);
    print_message("with every call sent: memory.used %.1f MiB of %.0f MiB\n",
                  (double)used / MIB, (double)limit / MIB);
    if (used > limit)
        fail_msg("memory.used %lld past max_memory %lld", used, limit);
    for (int i = 0; i < N; i++) {
        unsigned served = read_pending_answers(f, &a[i], "max_memory ", why, sizeof(why),
                                               &named);
        ok += served;
        refused += a[i].calls - served;
        rawconn_close(&a[i].c);
    }
    print_message("%u of %u calls served, %u OVERLOADED, %u of them naming max_memory "
                  "(\"%s\")\n", ok, N * 40, refused, named, why);
    if (ok > 128)
        fail_msg("%u pending 1 MiB calls held at once, past max_memory 128 MiB", ok);
    if (named == 0)
        fail_msg("no OVERLOADED answer named max_memory");
    check_rss(f, baseline, "6 connections x 40 pending 1 MiB calls");
    wait_used_zero(f);
    expect_serving(f->d.tcp);
}

/* Sends echo(<4 MiB>) on the rawconn arg (its bytes may wait in the kernel while the
 * server does not read them). Thread body. */
static void *send_big_echo(void *arg)
{
    rawconn *c = arg;
    char *body = malloc(4 * MIB);
    rawmsg m;

    memset(body, 0x33, 4 * MIB);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "echo", 1);
    msgpack_pack_bin(pk, 4 * MIB);
    msgpack_pack_bin_body(pk, body, 4 * MIB);
    rawconn_send_msg(c, &m);
    rawmsg_destroy(&m);
    free(body);
    return NULL;
}

/* While pending calls hold the budget, a 4 MiB message arriving on another connection
 * cannot grow its read buffer: its connection is not read until they are answered,
 * then it is served whole (not refused, not closed), and memory_waits counts it. */
static void test_a_message_arriving_past_the_budget_waits_for_room(void **state)
{
    TSAN_SKIP(); /* under TSan load its read buffer got room but the copy into its call
                  * did not, before the pending calls ended: OVERLOADED (#16's note) */
    bfix *f = *state;
    enum { N = 4 };
    pending_attack a[N];
    pthread_t t[N], tb;
    rawconn big;
    char why[256] = "";
    unsigned named = 0;
    json_int_t waits0 = tcluster_admin_counter(f->admin, "memory_waits");
    long long used = 0, limit = 0;

    for (int i = 0; i < N; i++) {
        a[i] = (pending_attack){ .addr = f->d.tcp, .calls = 40, .delay_ms = DELAY(5000) };
        expect_open(&a[i].c, f->d.tcp);
        assert_int_equal(pthread_create(&t[i], NULL, send_pending, &a[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    /* the senders' last bytes may still wait in the kernel: the pending calls hold the
     * budget once less than the 4 MiB message's read buffer (8 MiB) is left */
    int64_t w0 = expect_now_ms();
    do {
        memory_status(f, &used, &limit);
        if (used + 8 * MIB > limit)
            break;
        usleep(20 * 1000);
    } while (expect_now_ms() - w0 < 3000);
    print_message("pending calls hold %.1f MiB of %.0f MiB\n", (double)used / MIB,
                  (double)limit / MIB);
    if (used + 8 * MIB <= limit)
        fail_msg("the pending calls never held the budget (%.1f MiB of %.0f MiB)",
                 (double)used / MIB, (double)limit / MIB);
    int64_t t0 = expect_now_ms();
    expect_open(&big, f->d.tcp);
    assert_int_equal(pthread_create(&tb, NULL, send_big_echo, &big), 0);
    /* the budget has no room for its read buffer: it waits, counted */
    while (tcluster_admin_counter(f->admin, "memory_waits") == waits0 &&
           expect_now_ms() - t0 < 1500)
        usleep(20 * 1000);
    if (tcluster_admin_counter(f->admin, "memory_waits") == waits0)
        fail_msg("the 4 MiB message did not wait for room (memory_waits did not move)");
    for (int i = 0; i < N; i++) {
        read_pending_answers(f, &a[i], "max_", why, sizeof(why), &named);
        rawconn_close(&a[i].c);
    }
    int64_t pending_done = expect_now_ms() - t0;
    const msgpack_object *r = expect_result(&big, 1);
    int64_t served = expect_now_ms() - t0;
    pthread_join(tb, NULL);
    print_message("the 4 MiB echo waited for room and was served %lld ms after it was sent "
                  "(the pending calls were answered by %lld ms)\n", (long long)served,
                  (long long)pending_done);
    assert_int_equal(r->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(r->via.bin.size, 4 * MIB);
    rawconn_close(&big);
    wait_used_zero(f);
}

/* ---- clients that never read ------------------------------------------------------- */

/* Sends echo(<1 MiB>) calls on c (non-blocking) and never reads, until the server
 * stops taking them (no progress for 300 ms), closes c, or 64 MiB were sent. */
static void fill_without_reading(rawconn *c, const char *burst, size_t burst_len)
{
    size_t off = 0, sent = 0;

    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    while (sent < 64u * MIB) {
        ssize_t n = send(c->fd, burst + off, burst_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off = (off + (size_t)n) % burst_len;
            sent += (size_t)n;
            continue;
        }
        if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return; /* closed by the server */
        struct pollfd p = { .fd = c->fd, .events = POLLOUT };
        if (poll(&p, 1, 300) == 0)
            return; /* stuck: the server stopped reading */
    }
}

/* Pings on c until the answer is "pong", retrying an OVERLOADED answer every 50 ms (a
 * moment when the budget is spent and nothing could be closed yet); fails past
 * within_ms. Returns how long it took. */
static int64_t ping_served(rawconn *c, uint32_t *id, int within_ms)
{
    rawmsg m;
    int64_t t0 = expect_now_ms();

    rawmsg_init(&m);
    for (;;) {
        rawmsg_request(&m, ++*id, "daffi.ping", 0);
        expect_send(c, &m);
        uint32_t got = expect_response(c);
        if (got != *id)
            fail_msg("ping %u answered as %u", *id, got);
        if (c->msg.error->type == MSGPACK_OBJECT_NIL)
            break;
        check_error(c, *id, DAFFI_E_OVERLOADED);
        if (expect_now_ms() - t0 > within_ms)
            fail_msg("the bystander's ping was refused for %d ms", within_ms);
        usleep(50 * 1000);
    }
    rawmsg_destroy(&m);
    return expect_now_ms() - t0;
}

/* The local port of c. */
static int local_port(const rawconn *c)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    if (getsockname(c->fd, (struct sockaddr *)&sin, &len) == -1)
        return -1;
    return ntohs(sin.sin_port);
}

/* 20 clients that never read: past max_memory (64 MiB) the oldest are closed first,
 * each named in the log with why; a bystander is served throughout; memory stays
 * within the budget. */
static void test_clients_that_never_read_are_closed_oldest_first(void **state)
{
    bfix *f = *state;
    rawconn c[NON_READERS], bystander;
    int port[NON_READERS];
    rawmsg m;
    char *body = calloc(1, NON_READER_PAYLOAD);

    rawmsg_init(&m);
    for (uint32_t id = 1; id <= 16; id++) {
        msgpack_packer *pk = rawmsg_request(&m, id, "echo", 1);
        msgpack_pack_bin(pk, NON_READER_PAYLOAD);
        msgpack_pack_bin_body(pk, body, NON_READER_PAYLOAD);
    }
    free(body);
    expect_open(&bystander, f->d.tcp);
    long long baseline = proc_status_bytes(f->d.pid, "VmRSS");
    json_int_t shed0 = tcluster_admin_counter(f->admin, "memory_shed");
    uint32_t id = 0;
    int64_t worst = 0;
    for (int i = 0; i < NON_READERS; i++) {
        expect_open(&c[i], f->d.tcp);
        port[i] = local_port(&c[i]);
        fill_without_reading(&c[i], m.sb.data, m.sb.size);
        int64_t ms = ping_served(&bystander, &id, 2000);
        worst = ms > worst ? ms : worst;
    }
    print_message("the bystander's ping was served within %lld ms after each non-reader\n",
                  (long long)worst);
    /* past 15/16 of the budget the shedding goes on (down to 7/8 each time; the
     * non-readers left, read again, fill their output anew) until the ones left hold
     * no more than 15/16 */
    long long used = -1, limit = 0;
    int64_t t0 = expect_now_ms();
    while (expect_now_ms() - t0 < 30000) {
        memory_status(f, &used, &limit);
        if (tcluster_admin_counter(f->admin, "memory_shed") > shed0 &&
            used <= limit - limit / 16)
            break;
        usleep(50 * 1000);
    }
    json_int_t shed = tcluster_admin_counter(f->admin, "memory_shed") - shed0;
    print_message("%lld of %d non-reading clients closed; memory.used %.1f MiB of %.0f "
                  "MiB\n", (long long)shed, NON_READERS, (double)used / MIB,
                  (double)limit / MIB);
    if (shed == 0)
        fail_msg("no client that never reads was closed past max_memory");
    if (used > limit - limit / 16)
        fail_msg("memory.used %lld is still past 15/16 of max_memory %lld", used, limit);
    /* the log names each, oldest first, and says why */
    char *log = malloc(4 << 20);
    assert_non_null(log);
    assert_true(tdaemon_read_log(&f->d, log, 4 << 20) > 0);
    int first = -1, lines = 0;
    for (const char *p = strstr(log, "event=conn.memory_shed"); p != NULL;
         p = strstr(p + 1, "event=conn.memory_shed")) {
        const char *peer = strstr(p, "peer=127.0.0.1:");
        const char *eol = strchr(p, '\n');
        if (peer == NULL || (eol != NULL && peer > eol) || strstr(p, "msg=") == NULL)
            fail_msg("a conn.memory_shed line lacks its peer or its reason");
        int pp = atoi(peer + 15), idx = -1;
        for (int i = 0; i < NON_READERS; i++)
            if (port[i] == pp)
                idx = i;
        if (idx == -1)
            fail_msg("conn.memory_shed closed port %d, not one of the non-readers", pp);
        if (first == -1)
            first = idx;
        lines++;
    }
    free(log);
    if (lines != shed)
        fail_msg("%d conn.memory_shed lines for %lld closed", lines, (long long)shed);
    if (first != 0)
        fail_msg("the first client closed was non-reader %d, not the oldest (0)", first);
    check_rss(f, baseline, "20 clients that never read");
    /* the bystander is served, a 1 MiB echo included */
    ping_served(&bystander, &id, 2000);
    expect_send_raw_call(&bystander, 1000, "echo", 1, m.sb.data + 9, 5 + NON_READER_PAYLOAD);
    expect_result(&bystander, 1000);
    for (int i = 0; i < NON_READERS; i++)
        rawconn_close(&c[i]);
    rawconn_close(&bystander);
    rawmsg_destroy(&m);
    wait_used_zero(f);
}

/* A pending call holds the objects of its decoded params, not only its bytes: the
 * server decodes a request's params when a handler first asks, and a call that
 * outlives its handler (echo_after waits) is charged for them then. 20,000 small
 * integers are 20 KB on the wire and 20,000 objects in memory. */
static void test_a_pending_call_holds_its_decoded_params(void **state)
{
    bfix *f = *state;
    enum { N = 20000 };
    rawconn c;
    rawmsg m;
    long long used = 0, limit, peak = 0;

    wait_used_zero(f);
    assert_int_equal(rawconn_open(&c, f->d.tcp, 2000), 0);
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "echo_after", 2);
    msgpack_pack_int(pk, DELAY(1500));
    msgpack_pack_array(pk, N);
    for (int i = 0; i < N; i++)
        msgpack_pack_fix_uint8(pk, (uint8_t)(i & 0x7f));
    assert_int_equal(rawconn_send_msg(&c, &m), 0);
    int64_t t0 = expect_now_ms();
    while (expect_now_ms() - t0 < DELAY(1000) && peak < (long long)(N * sizeof(msgpack_object))) {
        memory_status(f, &used, &limit);
        if (used > peak)
            peak = used;
        usleep(20 * 1000);
    }
    print_message("a pending call with %d small integers: memory.used peaked at %lld "
                  "bytes (%zu bytes of objects)\n", N, peak, N * sizeof(msgpack_object));
    assert_true(peak >= (long long)(N * sizeof(msgpack_object)));
    assert_int_equal(rawconn_read(&c, 10000), RAWCONN_OK);
    assert_int_equal(c.msg.kind, DAFFI_MSG_RESPONSE);
    assert_int_equal(c.msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(c.msg.result->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(c.msg.result->via.array.size, N);
    rawmsg_destroy(&m);
    rawconn_close(&c);
    wait_used_zero(f);
}

int main(void)
{
    const struct CMUnitTest pending[] = {
        cmocka_unit_test(test_pending_big_calls_of_one_connection_stay_within_its_share),
        cmocka_unit_test(test_many_connections_together_stay_within_max_memory),
        cmocka_unit_test(test_a_message_arriving_past_the_budget_waits_for_room),
        cmocka_unit_test(test_a_pending_call_holds_its_decoded_params),
    };
    const struct CMUnitTest readers[] = {
        cmocka_unit_test(test_clients_that_never_read_are_closed_oldest_first),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("max_memory=128M", pending, setup_128m, teardown);
    failed += cmocka_run_group_tests_name("max_memory=64M", readers, setup_64m, teardown);
    return failed;
}
