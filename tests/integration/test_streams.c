/*
 * test_streams.c - streams (sdk/PROTOCOL.md section 8) deliver: ordered chunks to one
 * receiver with credit-based backpressure and one final result, direct to a service
 * and through a router to a worker (picked by the router, or named with `to`), sent by
 * the synchronous client, the asynchronous client, daffictl and raw connections.
 * How streams end otherwise (failures, aborts, a side going away) is
 * test_stream_endings.c.
 *
 * The group (tests/support/tstream.h) runs a service "svc", a router "hub" and its
 * worker "w1", both daffids with echo. echo's digest folds every chunk into an FNV-1a
 * 64 hash in order, so a result equal to the hash the test computed over what it sent
 * proves every chunk arrived once, intact and in order. The memory a daffid holds is
 * its peak RSS while the stream passes. Tests about the window play the receiver
 * themselves: a raw member "rawsink" joined to the router, which returns credit only
 * when the test says so.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <msgpack.h>

#include <daffi/client.h>
#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rawmember.h"
#include "../support/tstream.h"

#define MIB ((size_t)1024 * 1024)
#define BIG_BYTES (100 * MIB)          /* daffi's big stream ... */
#define BIG_CHUNK ((size_t)64 * 1024)  /* ... in 64 KiB chunks */
#define RSS_BOUND_KIB (32L * 1024)     /* what a daffid may grow by while it passes one */
#define HANG_MS 10000                  /* longer than this is a hang, not slowness */

/* ==== the big streams ================================================================= */

/* A stream the asynchronous client sends from its loop: total bytes of src in chunks
 * of chunk bytes, sent whenever credit allows, then ended. */
typedef struct asender {
    daffi_stream *s;
    tstream_source src;
    unsigned char *buf;
    size_t total, chunk;
    int opened;             /* 1 open, -1 refused */
    int ready;              /* ready callbacks with credit */
    int lost;               /* ready callbacks saying the stream is lost */
    int failed;             /* a send or end failed at once (err) */
    int ended;              /* the end is under way */
    daffi_error err;        /* the open's refusal, a send's failure, or the loss */
    tstream_outcome end;
} asender;

/* Sends the next chunks while credit lasts; once all are sent, ends the stream. */
static void asender_pump(asender *a)
{
    daffi_error err = DAFFI_ERROR_INIT;
    size_t n;

    while (a->src.bytes < a->total && daffi_stream_credit(a->s) > 0) {
        n = a->total - a->src.bytes < a->chunk ? a->total - a->src.bytes : a->chunk;
        tstream_source_fill(&a->src, a->buf, n);
        if (daffi_stream_send_bin_async(a->s, a->buf, n, &err) == -1) {
            a->failed = 1;
            daffi_error_move(&a->err, &err);
            return;
        }
    }
    if (a->src.bytes == a->total && !a->ended) {
        a->ended = 1;
        if (daffi_stream_end_async(a->s, HANG_MS, tstream_collect, &a->end, &err) == -1) {
            a->failed = 1;
            daffi_error_move(&a->err, &err);
        }
        a->s = NULL;
    }
}

/* The stream's ready callback: credit came back (pump on), or the stream was lost. */
static void asender_ready(daffi_stream *s, const daffi_error *why, void *arg)
{
    asender *a = arg;

    (void)s;
    if (why != NULL) {
        a->lost++;
        daffi_error_clear(&a->err);
        a->err.code = why->code;
        a->err.message = strdup(why->message);
        return;
    }
    a->ready++;
    asender_pump(a);
}

/* The open's completion: start pumping, or keep the refusal. */
static void asender_opened(daffi_client *c, daffi_stream *s, daffi_error *err, void *arg)
{
    asender *a = arg;

    (void)c;
    if (s == NULL) {
        a->opened = -1;
        daffi_error_move(&a->err, err);
        return;
    }
    a->opened = 1;
    a->s = s;
    daffi_stream_on_ready(s, asender_ready, a);
    asender_pump(a);
}

/* Starts a on c: a stream to callback (through a router to `to`, may be NULL). */
static void asender_start(asender *a, daffi_client *c, const char *callback, const char *to,
                          size_t total, size_t chunk, uint64_t seed)
{
    daffi_error err = DAFFI_ERROR_INIT;

    memset(a, 0, sizeof(*a));
    tstream_source_init(&a->src, seed);
    a->total = total;
    a->chunk = chunk;
    a->buf = malloc(chunk);
    assert_non_null(a->buf);
    if (daffi_stream_open_async(c, callback, NULL, to, 0, HANG_MS, asender_opened, a, &err) == -1)
        fail_msg("daffi_stream_open_async %s: %s", callback, err.message);
}

/* Frees what a holds (an unfinished stream is aborted). */
static void asender_free(asender *a)
{
    daffi_stream_abort(a->s);
    free(a->buf);
    daffi_error_clear(&a->err);
    tstream_outcome_free(&a->end);
}

/* Sends 100 MiB in 64 KiB chunks to digest with the synchronous client at address
 * (through a router to `to`, may be NULL), asserting the digest and the memory of
 * receiver (and of router, when not NULL). */
static void big_stream_sync(const char *address, const char *to, const tdaemon *receiver,
                            const tdaemon *router)
{
    daffi_client *c = tstream_connect(address);
    daffi_error err = DAFFI_ERROR_INIT;
    unsigned char *buf = malloc(BIG_CHUNK);
    int64_t t0 = expect_now_ms();
    tstream_mem mr, mx;
    daffi_result r;
    daffi_stream *s;
    tstream_source src;

    assert_non_null(buf);
    tstream_source_init(&src, 0x5eed0001);
    tstream_mem_start(&mr, receiver, "receiver");
    if (router != NULL)
        tstream_mem_start(&mx, router, "router");
    s = daffi_stream_open(c, "digest", NULL, to, 0, HANG_MS, &err);
    if (s == NULL)
        fail_msg("open: %s", err.message);
    while (src.bytes < BIG_BYTES) {
        tstream_source_fill(&src, buf, BIG_CHUNK);
        if (daffi_stream_send_bin(s, buf, BIG_CHUNK, HANG_MS, &err) == -1)
            fail_msg("chunk %llu: %s", (unsigned long long)src.chunks, err.message);
    }
    if (daffi_stream_end(s, HANG_MS, &r, &err) == -1)
        fail_msg("end: %s", err.message);
    print_message("    %zu MiB in %llu chunks in %lld ms\n", BIG_BYTES / MIB,
                  (unsigned long long)src.chunks, (long long)(expect_now_ms() - t0));
    assert_int_equal(src.chunks, BIG_BYTES / BIG_CHUNK);
    tstream_assert_digest(&r.obj, &src);
    tstream_mem_check(&mr, BIG_BYTES, RSS_BOUND_KIB);
    if (router != NULL)
        tstream_mem_check(&mx, BIG_BYTES, RSS_BOUND_KIB);
    daffi_result_free(&r);
    free(buf);
    daffi_close(c);
}

static void test_a_100_mib_stream_reaches_a_service_intact_with_bounded_memory(void **state)
{
    tstream_fixture *f = *state;

    big_stream_sync(f->svc.unix_addr, NULL, &f->svc, NULL);
}

static void test_a_100_mib_stream_through_the_router_to_a_named_worker_arrives_intact(
    void **state)
{
    tstream_fixture *f = *state;

    big_stream_sync(f->router.tcp, "w1", &f->worker, &f->router);
}

static void test_a_100_mib_async_stream_through_the_router_arrives_intact_with_bounded_memory(
    void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = tstream_client_new(base, f->router.unix_addr);
    int64_t t0 = expect_now_ms();
    tstream_mem mr, mx;
    asender a;

    tstream_mem_start(&mr, &f->worker, "receiver");
    tstream_mem_start(&mx, &f->router, "router");
    asender_start(&a, c, "digest", NULL, BIG_BYTES, BIG_CHUNK, 0x5eed0002);
    tstream_run_until(base, &a.end.done, 1, 4 * HANG_MS);
    if (a.opened != 1 || a.failed || a.lost)
        fail_msg("the stream failed: %s", a.err.message ? a.err.message : "(no message)");
    if (!a.end.done)
        fail_msg("no answer to daffi.end: %llu of %zu bytes sent",
                 (unsigned long long)a.src.bytes, BIG_BYTES);
    if (!a.end.ok)
        fail_msg("end: %s", a.end.err.message);
    print_message("    %zu MiB in %llu chunks in %lld ms, %d waits for credit\n",
                  BIG_BYTES / MIB, (unsigned long long)a.src.chunks,
                  (long long)(expect_now_ms() - t0), a.ready);
    tstream_assert_digest(&a.end.res.obj, &a.src);
    assert_true(a.ready > 0); /* the window was used up, and credit came back */
    tstream_mem_check(&mr, BIG_BYTES, RSS_BOUND_KIB);
    tstream_mem_check(&mx, BIG_BYTES, RSS_BOUND_KIB);
    asender_free(&a);
    daffi_close(c);
    event_base_free(base);
}

/* ==== backpressure: the window ======================================================== */

/* The synchronous sender of test_the_sync_client_never_sends_past_its_window, on a
 * thread of its own while the test thread plays the receiver. */
typedef struct sync_sender {
    const char *address;
    int rc;                 /* 0: every step succeeded */
    unsigned window;
    char why[300];
    char result[64];
} sync_sender;

/* The thread: opens "sink" asking for a window of 4, sends "c0", "c1", "c2" (each
 * waiting for credit as it must), ends, and records the outcome in arg. */
static void *sync_sender_run(void *arg)
{
    sync_sender *ss = arg;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_connect(ss->address, NULL, &err);
    const char *chunks[] = {"c0", "c1", "c2"};
    daffi_stream *s = NULL;
    daffi_result r;
    const char *p;
    size_t n;
    int i;

    ss->rc = -1;
    if (c == NULL || (s = daffi_stream_open(c, "sink", NULL, NULL, 4, HANG_MS, &err)) == NULL)
        goto out;
    ss->window = daffi_stream_window(s);
    for (i = 0; i < 3; i++)
        if (daffi_stream_send_bin(s, chunks[i], 2, HANG_MS, &err) == -1)
            goto out;
    if (daffi_stream_end(s, HANG_MS, &r, &err) == -1) {
        s = NULL;
        goto out;
    }
    s = NULL;
    if (daffi_obj_str(&r.obj, &p, &n) == 0)
        snprintf(ss->result, sizeof(ss->result), "%.*s", (int)n, p);
    daffi_result_free(&r);
    ss->rc = 0;
out:
    if (ss->rc != 0)
        snprintf(ss->why, sizeof(ss->why), "%s", err.message ? err.message : "(no message)");
    daffi_stream_abort(s);
    daffi_error_clear(&err);
    daffi_close(c);
    return NULL;
}

static void test_the_sync_client_never_sends_past_its_window(void **state)
{
    tstream_fixture *f = *state;
    sync_sender *ss = calloc(1, sizeof(*ss)); /* outlives a failed test's frame */
    pthread_t t;
    rawconn *m = &f->sink;

    assert_non_null(ss);
    ss->address = f->router.tcp;
    tstream_sink_join(m, f->router.tcp);
    assert_int_equal(pthread_create(&t, NULL, sync_sender_run, ss), 0);
    tstream_sink_accept(m, 4, 2); /* asked for 4, granted 2 */
    tstream_sink_expect_chunk(m, "c0");
    tstream_sink_expect_chunk(m, "c1");
    tstream_sink_expect_silence(m); /* the third waits for credit ... */
    tstream_sink_credit(m, 1);
    tstream_sink_expect_chunk(m, "c2"); /* ... and goes once one came */
    tstream_sink_end(m);
    pthread_join(t, NULL);
    if (ss->rc != 0)
        fail_msg("sender: %s", ss->why);
    assert_int_equal(ss->window, 2);
    assert_string_equal(ss->result, "done");
    free(ss);
    tstream_sink_leave(m, f->router.tcp);
}

static void test_the_async_client_never_sends_past_its_window(void **state)
{
    tstream_fixture *f = *state;
    struct event_base *base = event_base_new();
    daffi_client *c = tstream_client_new(base, f->router.tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_ready_log rl = {0, 0, 0};
    tstream_opening o = {0, NULL, DAFFI_ERROR_INIT};
    tstream_outcome end = {0};
    rawconn *m = &f->sink;

    tstream_sink_join(m, f->router.tcp);
    assert_int_equal(daffi_stream_open_async(c, "sink", NULL, NULL, 4, HANG_MS,
                                             tstream_keep_stream, &o, &err), 0);
    tstream_flush(base, c);
    tstream_sink_accept(m, 4, 3);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_non_null(o.s);
    daffi_stream_on_ready(o.s, tstream_log_ready, &rl);
    assert_int_equal(daffi_stream_window(o.s), 3);
    assert_int_equal(daffi_stream_credit(o.s), 3);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "a0", 2, &err), 0);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "a1", 2, &err), 0);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "a2", 2, &err), 0);
    /* the window is used up: refused at once, nothing queued */
    assert_int_equal(daffi_stream_credit(o.s), 0);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "a3", 2, &err), -1);
    assert_int_equal(err.code, DAFFI_E_OVERLOADED);
    tstream_flush(base, c);
    tstream_sink_expect_chunk(m, "a0");
    tstream_sink_expect_chunk(m, "a1");
    tstream_sink_expect_chunk(m, "a2");
    tstream_sink_expect_silence(m);
    /* credit comes back: the ready callback says so, once */
    tstream_sink_credit(m, 2);
    assert_true(tstream_run_until(base, &rl.credit, 1, HANG_MS));
    assert_int_equal(daffi_stream_credit(o.s), 2);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "a3", 2, &err), 0);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "a4", 2, &err), 0);
    assert_int_equal(daffi_stream_send_bin_async(o.s, "a5", 2, &err), -1);
    assert_int_equal(daffi_stream_chunks(o.s), 5);
    assert_int_equal(daffi_stream_end_async(o.s, HANG_MS, tstream_collect, &end, &err), 0);
    tstream_flush(base, c);
    tstream_sink_expect_chunk(m, "a3");
    tstream_sink_expect_chunk(m, "a4");
    tstream_sink_end(m);
    assert_true(tstream_run_until(base, &end.done, 1, HANG_MS));
    assert_true(end.ok);
    assert_int_equal(end.res.obj.type, MSGPACK_OBJECT_STR);
    assert_int_equal(rl.credit, 1);
    assert_int_equal(rl.lost, 0);
    tstream_outcome_free(&end);
    daffi_error_clear(&err);
    daffi_close(c);
    event_base_free(base);
    tstream_sink_leave(m, f->router.tcp);
}

/* The router counts the chunks it relayed and the credit the receiver returned: a
 * sender past its window loses the chunk, the receiver gets daffi.abort instead, and
 * the end answers PROTOCOL. The raw receiver never returns credit, so the count is
 * exact whatever the timing. */
static void test_chunks_past_the_window_through_the_router_fail_the_stream_with_protocol(
    void **state)
{
    tstream_fixture *f = *state;
    rawconn c, *m = &f->sink;
    rawmsg msg;
    uint32_t id;
    unsigned granted = 0;

    tstream_sink_join(m, f->router.tcp);
    expect_open(&c, f->router.tcp);
    tstream_raw_open_send(&c, 1, "sink", 2, NULL);
    tstream_sink_accept(m, 2, 2);
    id = tstream_raw_opened(&c, 1, "sink", &granted);
    assert_int_equal(granted, 2);
    rawmsg_init(&msg);
    tstream_raw_chunk(&msg, id, "x", 1);
    tstream_raw_chunk(&msg, id, "y", 1);
    tstream_raw_chunk(&msg, id, "z", 1); /* past the window */
    tstream_raw_id_msg(&msg, 0, 2, "daffi.end", id);
    expect_send(&c, &msg);
    tstream_raw_response(&c, 2, NULL);
    check_error(&c, 2, DAFFI_E_PROTOCOL);
    tstream_sink_expect_chunk(m, "x");
    tstream_sink_expect_chunk(m, "y");
    tstream_sink_expect_abort(m); /* never "z" */
    tstream_sink_leave(m, f->router.tcp);
    /* only that stream failed: the connection goes on, its id was released */
    tstream_raw_id_msg(&msg, 0, 3, "daffi.end", id);
    id = tstream_raw_open(&c, 4, "digest", 2, NULL, NULL);
    tstream_raw_chunk(&msg, id, "x", 1);
    tstream_raw_id_msg(&msg, 0, 5, "daffi.end", id);
    expect_send(&c, &msg);
    rawmsg_destroy(&msg);
    tstream_raw_response(&c, 3, NULL);
    check_error(&c, 3, DAFFI_E_BAD_ARGS);
    tstream_raw_response(&c, 5, NULL);
    assert_int_equal(tstream_uint(daffi_obj_get(c.msg.result, "chunks")), 1);
    rawconn_close(&c);
}

/* ==== refusals ========================================================================= */

static void test_a_stream_to_a_callback_that_is_no_stream_handler_is_bad_args(void **state)
{
    tstream_fixture *f = *state;
    const char *addrs[] = {f->svc.unix_addr, f->router.tcp};
    struct event_base *base = event_base_new();
    daffi_client *ac = tstream_client_new(base, f->router.unix_addr);
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_opening o = {0, NULL, DAFFI_ERROR_INIT};
    size_t i;

    for (i = 0; i < 2; i++) {
        daffi_client *c = tstream_connect(addrs[i]);

        assert_null(daffi_stream_open(c, "echo", NULL, NULL, 0, HANG_MS, &err));
        assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
        assert_int_equal(err.remote, 1);
        assert_non_null(strstr(err.message, "not a stream handler"));
        daffi_close(c);
    }
    assert_int_equal(daffi_stream_open_async(ac, "echo", NULL, "w1", 0, HANG_MS,
                                             tstream_keep_stream, &o, &err), 0);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_null(o.s);
    assert_int_equal(o.err.code, DAFFI_E_BAD_ARGS);
    daffi_error_clear(&o.err);
    daffi_error_clear(&err);
    daffi_close(ac);
    event_base_free(base);
}

static void test_a_stream_to_an_unknown_callback_is_no_callback(void **state)
{
    tstream_fixture *f = *state;
    const char *addrs[] = {f->svc.tcp, f->router.tcp};
    struct event_base *base = event_base_new();
    daffi_client *ac = tstream_client_new(base, f->router.tcp);
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_opening o = {0, NULL, DAFFI_ERROR_INIT};
    size_t i;

    for (i = 0; i < 2; i++) {
        daffi_client *c = tstream_connect(addrs[i]);

        assert_null(daffi_stream_open(c, "no_such_stream", NULL, NULL, 0, HANG_MS, &err));
        assert_int_equal(err.code, DAFFI_E_NO_CALLBACK);
        assert_int_equal(err.remote, 1);
        if (i == 1) /* a router names the members and their callbacks */
            assert_int_equal(err.details.type, MSGPACK_OBJECT_MAP);
        daffi_close(c);
    }
    assert_int_equal(daffi_stream_open_async(ac, "no_such_stream", NULL, NULL, 0, HANG_MS,
                                             tstream_keep_stream, &o, &err), 0);
    assert_true(tstream_run_until(base, &o.done, 1, HANG_MS));
    assert_null(o.s);
    assert_int_equal(o.err.code, DAFFI_E_NO_CALLBACK);
    daffi_error_clear(&o.err);
    daffi_error_clear(&err);
    daffi_close(ac);
    event_base_free(base);
}

/* ==== daffictl ========================================================================= */

/* Pipes 5 MiB of /dev/urandom through daffictl stream digest (extra: more options),
 * keeping a copy of the bytes, and compares daffictl's digest with the copy's. */
static void daffictl_stream_random(const tdaemon *d, const char *address, const char *extra)
{
    char cmd[PATH_MAX + 1024], out[1024], file[256];
    unsigned char buf[65536];
    uint64_t h = TSTREAM_FNV_BASIS, bytes = 0, got;
    const char *p;
    size_t n, i, len = 0;
    FILE *pipe, *in;
    int st;

    snprintf(file, sizeof(file), "%s/random.bin", d->dir);
    snprintf(cmd, sizeof(cmd), "head -c 5M /dev/urandom | tee %s | %s/daffictl -s %s stream "
             "%s digest 2>&1", file, d->build, address, extra);
    fflush(NULL);
    pipe = popen(cmd, "r");
    assert_non_null(pipe);
    while (len + 1 < sizeof(out) && (n = fread(out + len, 1, sizeof(out) - 1 - len, pipe)) > 0)
        len += n;
    out[len] = '\0';
    st = pclose(pipe);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: exit %d: %s", cmd, WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    in = fopen(file, "rb");
    assert_non_null(in);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        for (i = 0; i < n; i++)
            h = (h ^ buf[i]) * TSTREAM_FNV_PRIME;
        bytes += n;
    }
    fclose(in);
    unlink(file);
    assert_int_equal(bytes, 5 * MIB);
    assert_non_null(strstr(out, "\"bytes\":5242880"));
    p = strstr(out, "\"fnv1a64\":");
    if (p == NULL)
        fail_msg("daffictl printed no fnv1a64: %s", out);
    got = strtoull(p + 10, NULL, 10);
    if (got != h)
        fail_msg("daffictl's digest %llu, the bytes' %llu: %s", (unsigned long long)got,
                 (unsigned long long)h, out);
}

static void test_daffictl_streams_5_mib_of_random_bytes_intact(void **state)
{
    tstream_fixture *f = *state;

    daffictl_stream_random(&f->svc, f->svc.unix_addr, "");
    daffictl_stream_random(&f->router, f->router.tcp, "--to w1 --chunk-size 65536");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_100_mib_stream_reaches_a_service_intact_with_bounded_memory),
        cmocka_unit_test(test_a_100_mib_stream_through_the_router_to_a_named_worker_arrives_intact),
        cmocka_unit_test(
            test_a_100_mib_async_stream_through_the_router_arrives_intact_with_bounded_memory),
        cmocka_unit_test_teardown(test_the_sync_client_never_sends_past_its_window,
                                  tstream_sink_teardown),
        cmocka_unit_test_teardown(test_the_async_client_never_sends_past_its_window,
                                  tstream_sink_teardown),
        cmocka_unit_test_teardown(
            test_chunks_past_the_window_through_the_router_fail_the_stream_with_protocol,
            tstream_sink_teardown),
        cmocka_unit_test(test_a_stream_to_a_callback_that_is_no_stream_handler_is_bad_args),
        cmocka_unit_test(test_a_stream_to_an_unknown_callback_is_no_callback),
        cmocka_unit_test(test_daffictl_streams_5_mib_of_random_bytes_intact),
    };

    tstream_small_asan_quarantine();
    return cmocka_run_group_tests(tests, tstream_group_setup, tstream_group_teardown);
}
