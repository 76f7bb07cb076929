/*
 * tstream.c - helpers for the stream tests (see tstream.h).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <daffi/rpc.h>

#include "cluster.h"
#include "expect.h"
#include "rawmember.h"
#include "tstream.h"

#define TSTREAM_CALL_MS 10000 /* bound of the helper's own calls */

/* ---- data ------------------------------------------------------------------------ */

/* See tstream.h. */
void tstream_source_init(tstream_source *s, uint64_t seed)
{
    s->rng = seed | 1;
    s->hash = TSTREAM_FNV_BASIS;
    s->bytes = s->chunks = 0;
}

/* See tstream.h. */
void tstream_source_fill(tstream_source *s, unsigned char *buf, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if ((i & 7) == 0) {
            s->rng ^= s->rng << 13;
            s->rng ^= s->rng >> 7;
            s->rng ^= s->rng << 17;
        }
        buf[i] = (unsigned char)(s->rng >> ((i & 7) * 8));
        s->hash = (s->hash ^ buf[i]) * TSTREAM_FNV_PRIME;
    }
    s->bytes += n;
    s->chunks++;
}

/* See tstream.h. */
uint64_t tstream_uint(const msgpack_object *o)
{
    uint64_t v = 0;
    char buf[256];

    if (daffi_obj_uint(o, &v) == -1)
        fail_msg("expected an unsigned integer, got %s", expect_describe(o, buf, sizeof(buf)));
    return v;
}

/* See tstream.h. */
void tstream_assert_digest(const msgpack_object *r, const tstream_source *src)
{
    uint64_t h = tstream_uint(daffi_obj_get(r, "fnv1a64"));

    assert_int_equal(tstream_uint(daffi_obj_get(r, "chunks")), src->chunks);
    assert_int_equal(tstream_uint(daffi_obj_get(r, "bytes")), src->bytes);
    if (h != src->hash)
        fail_msg("the receiver hashed %016llx, the sender %016llx: a chunk was changed, "
                 "reordered, lost or repeated", (unsigned long long)h,
                 (unsigned long long)src->hash);
}

/* ---- memory -------------------------------------------------------------------------- */

/* Returns field ("VmRSS", "VmHWM") of /proc/PID/status in KiB, or fails the test. */
static long proc_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    if (f == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            v = strtol(line + flen + 1, NULL, 10);
    fclose(f);
    if (v < 0)
        fail_msg("%s: no %s", path, field);
    return v;
}

/* See tstream.h. The stream's own peak is measured from here: an earlier test's peak
 * must not count. */
void tstream_mem_start(tstream_mem *m, const tdaemon *d, const char *who)
{
    char path[64];
    FILE *f;

    m->pid = d->pid;
    m->who = who;
    snprintf(path, sizeof(path), "/proc/%ld/clear_refs", (long)d->pid);
    f = fopen(path, "w");
    if (f == NULL || fputs("5", f) == EOF || fclose(f) == EOF)
        fail_msg("%s: cannot reset the peak RSS: %s", path, strerror(errno));
    m->rss0 = proc_kib(m->pid, "VmRSS");
}

/* See tstream.h. */
void tstream_mem_check(const tstream_mem *m, size_t streamed, long bound_kib)
{
    long hwm = proc_kib(m->pid, "VmHWM"), rss = proc_kib(m->pid, "VmRSS");

    print_message("    %s: VmRSS %ld KiB before, peak %ld KiB while %zu MiB passed, %ld KiB "
                  "after\n", m->who, m->rss0, hwm, streamed >> 20, rss);
    if (hwm - m->rss0 >= bound_kib)
        fail_msg("%s (pid %ld) grew by %ld KiB while a %zu MiB stream passed (bound %ld KiB): "
                 "the window does not bound its memory", m->who, (long)m->pid, hwm - m->rss0,
                 streamed >> 20, bound_kib);
}

/* ---- a raw sender ---------------------------------------------------------------------- */

/* See tstream.h. */
int tstream_is_method(const daffi_msg *m, const char *method)
{
    return m->method_len == strlen(method) && memcmp(m->method, method, m->method_len) == 0;
}

/* Reads one message on c or fails naming what was awaited. */
static void raw_read(rawconn *c, const char *what)
{
    rawconn_status st = rawconn_read(c, expect_timeout_ms());

    if (st != RAWCONN_OK)
        fail_msg("%s: waiting for %s: %s", c->addr, what, rawconn_status_name(st));
}

/* 1 when c holds a daffi.credit notification. */
static int is_credit(const rawconn *c)
{
    return c->msg.kind == DAFFI_MSG_NOTIFY && tstream_is_method(&c->msg, "daffi.credit");
}

/* See tstream.h. */
void tstream_raw_response(rawconn *c, uint32_t msgid, unsigned *credits)
{
    for (;;) {
        raw_read(c, "a response");
        if (is_credit(c)) {
            if (credits != NULL)
                *credits += (unsigned)tstream_uint(daffi_obj_at(c->msg.params, 1));
            continue;
        }
        if (c->msg.kind != DAFFI_MSG_RESPONSE || c->msg.msgid != msgid)
            fail_msg("%s: expected the response to %u, got a message of kind %d (msgid %u)",
                     c->addr, msgid, (int)c->msg.kind, c->msg.msgid);
        return;
    }
}

/* See tstream.h. */
void tstream_raw_expect_note(rawconn *c, const char *method, uint32_t id)
{
    for (;;) {
        raw_read(c, method);
        if (is_credit(c) && strcmp(method, "daffi.credit") != 0)
            continue;
        if (c->msg.kind != DAFFI_MSG_NOTIFY || !tstream_is_method(&c->msg, method))
            fail_msg("%s: expected the notification %s, got a message of kind %d", c->addr,
                     method, (int)c->msg.kind);
        assert_int_equal(tstream_uint(daffi_obj_at(c->msg.params, 0)), id);
        return;
    }
}

/* See tstream.h. */
void tstream_raw_open_send(rawconn *c, uint32_t msgid, const char *callback, unsigned window,
                           const char *to)
{
    msgpack_packer *pk;
    rawmsg m;

    rawmsg_init(&m);
    pk = rawmsg_request(&m, msgid, "daffi.stream", 3);
    daffi_pack_cstr(pk, callback);
    msgpack_pack_array(pk, 0);
    msgpack_pack_map(pk, (window > 0) + (to != NULL));
    if (window > 0) {
        daffi_pack_cstr(pk, "window");
        msgpack_pack_unsigned_int(pk, window);
    }
    if (to != NULL) {
        daffi_pack_cstr(pk, "to");
        daffi_pack_cstr(pk, to);
    }
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* See tstream.h. */
uint32_t tstream_raw_opened(rawconn *c, uint32_t msgid, const char *callback,
                            unsigned *granted)
{
    char buf[256];

    tstream_raw_response(c, msgid, NULL);
    if (c->msg.error->type != MSGPACK_OBJECT_NIL)
        fail_msg("daffi.stream %s: %s", callback,
                 expect_describe(c->msg.error, buf, sizeof(buf)));
    if (granted != NULL)
        *granted = (unsigned)tstream_uint(daffi_obj_get(c->msg.result, "window"));
    return (uint32_t)tstream_uint(daffi_obj_get(c->msg.result, "stream"));
}

/* See tstream.h. */
uint32_t tstream_raw_open(rawconn *c, uint32_t msgid, const char *callback,
                          unsigned window, const char *to, unsigned *granted)
{
    tstream_raw_open_send(c, msgid, callback, window, to);
    return tstream_raw_opened(c, msgid, callback, granted);
}

/* See tstream.h. */
void tstream_raw_chunk(rawmsg *m, uint32_t id, const void *p, size_t n)
{
    msgpack_packer *pk = rawmsg_notify(m, "daffi.chunk", 2);

    msgpack_pack_uint32(pk, id);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

/* See tstream.h. */
void tstream_raw_id_msg(rawmsg *m, int notify, uint32_t msgid, const char *method,
                        uint32_t id)
{
    msgpack_packer *pk = notify ? rawmsg_notify(m, method, 1)
                                : rawmsg_request(m, msgid, method, 1);

    msgpack_pack_uint32(pk, id);
}

/* ---- a raw receiver ---------------------------------------------------------------------- */

/* See tstream.h. */
void tstream_sink_join(rawconn *m, const char *router_addr)
{
    static const char *const cbs[] = {"sink", NULL};
    char why[256] = "";
    int rc = rawmember_join(m, router_addr, "rawsink", cbs, why, sizeof(why));

    if (rc != 0)
        fail_msg("rawsink could not join %s: %d %s", router_addr, rc, why);
}

/* See tstream.h. */
void tstream_sink_leave(rawconn *m, const char *router_addr)
{
    rawconn_close(m);
    if (tcluster_wait_gone(router_addr, "rawsink", TSTREAM_CALL_MS) == -1)
        fail_msg("the router %s still lists rawsink", router_addr);
}

/* See tstream.h. */
void tstream_sink_read(rawconn *m)
{
    rawconn_status st = rawmember_read(m, expect_timeout_ms());

    if (st != RAWCONN_OK)
        fail_msg("rawsink: %s%s", rawconn_status_name(st),
                 st == RAWCONN_EOF ? " (the router dropped the member: see its log)" : "");
}

/* See tstream.h. */
void tstream_sink_accept(rawconn *m, unsigned asked, unsigned window)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const msgpack_object *opts;

    tstream_sink_read(m);
    if (m->msg.kind != DAFFI_MSG_REQUEST || !tstream_is_method(&m->msg, "daffi.stream"))
        fail_msg("rawsink: expected daffi.stream, got a message of kind %d", (int)m->msg.kind);
    opts = daffi_obj_at(m->msg.params, 2);
    if (asked == 0)
        assert_null(daffi_obj_get(opts, "window"));
    else
        assert_int_equal(tstream_uint(daffi_obj_get(opts, "window")), asked);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    daffi_pack_cstr(&pk, "stream");
    msgpack_pack_uint32(&pk, TSTREAM_SINK_ID);
    daffi_pack_cstr(&pk, "window");
    msgpack_pack_unsigned_int(&pk, window);
    assert_int_equal(rawmember_reply_raw(m, m->msg.msgid, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* See tstream.h. */
void tstream_sink_expect_chunk(rawconn *m, const char *text)
{
    const char *p;
    size_t n;

    tstream_sink_read(m);
    if (m->msg.kind != DAFFI_MSG_NOTIFY || !tstream_is_method(&m->msg, "daffi.chunk"))
        fail_msg("rawsink: expected the chunk \"%s\", got a message of kind %d", text,
                 (int)m->msg.kind);
    assert_int_equal(tstream_uint(daffi_obj_at(m->msg.params, 0)), TSTREAM_SINK_ID);
    if (daffi_obj_bin(daffi_obj_at(m->msg.params, 1), &p, &n) == -1 &&
        daffi_obj_str(daffi_obj_at(m->msg.params, 1), &p, &n) == -1)
        fail_msg("rawsink: a chunk that is no str or bin");
    if (n != strlen(text) || memcmp(p, text, n) != 0)
        fail_msg("rawsink: chunk \"%.*s\", expected \"%s\"", (int)n, p, text);
}

/* See tstream.h. */
void tstream_sink_expect_silence(rawconn *m)
{
    rawconn_status st = rawmember_read(m, TSTREAM_SILENCE_MS);

    if (st != RAWCONN_TIMEOUT)
        fail_msg("rawsink: the sender went past its window (%s, kind %d)",
                 rawconn_status_name(st), st == RAWCONN_OK ? (int)m->msg.kind : -1);
}

/* See tstream.h. */
void tstream_sink_expect_abort(rawconn *m)
{
    tstream_sink_read(m);
    if (m->msg.kind != DAFFI_MSG_NOTIFY || !tstream_is_method(&m->msg, "daffi.abort"))
        fail_msg("rawsink: expected daffi.abort, got a message of kind %d", (int)m->msg.kind);
    assert_int_equal(tstream_uint(daffi_obj_at(m->msg.params, 0)), TSTREAM_SINK_ID);
}

/* See tstream.h. */
void tstream_sink_credit(rawconn *m, unsigned k)
{
    msgpack_packer *pk;
    rawmsg msg;

    rawmsg_init(&msg);
    pk = rawmsg_notify(&msg, "daffi.credit", 2);
    msgpack_pack_uint32(pk, TSTREAM_SINK_ID);
    msgpack_pack_uint32(pk, k);
    expect_send(m, &msg);
    rawmsg_destroy(&msg);
}

/* See tstream.h. */
void tstream_sink_end(rawconn *m)
{
    tstream_sink_read(m);
    if (m->msg.kind != DAFFI_MSG_REQUEST || !tstream_is_method(&m->msg, "daffi.end"))
        fail_msg("rawsink: expected daffi.end, got a message of kind %d", (int)m->msg.kind);
    assert_int_equal(tstream_uint(daffi_obj_at(m->msg.params, 0)), TSTREAM_SINK_ID);
    assert_int_equal(rawmember_reply_raw(m, m->msg.msgid, "\xa4" "done", 5), 0);
}

/* ---- streamprobe ------------------------------------------------------------------------ */

/* See tstream.h. */
int tstream_add_probe(tdaemon *d)
{
    char so[PATH_MAX + 64];

    snprintf(so, sizeof(so), "%s/tests/fixtures/streamprobe.so", d->build);
    if (access(so, R_OK) == -1) {
        fprintf(stderr, "tstream: %s: %s (make test-only builds it)\n", so, strerror(errno));
        return -1;
    }
    return tdaemon_write_file(d, "20-streamprobe.ini", "[plugin]\nname = streamprobe\n"
                              "path = %s\n", so);
}

/* See tstream.h. */
tstream_counts tstream_probe_counts(const char *address)
{
    daffi_client *c = tstream_connect(address);
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_counts n;
    daffi_result r;

    if (daffi_rpc(c, "probe_counts", NULL, TSTREAM_CALL_MS, &r, &err) == -1)
        fail_msg("probe_counts at %s: %s", address, err.message);
    n.opened = tstream_uint(daffi_obj_get(&r.obj, "opened"));
    n.chunks = tstream_uint(daffi_obj_get(&r.obj, "chunks"));
    n.ended = tstream_uint(daffi_obj_get(&r.obj, "ended"));
    n.aborted = tstream_uint(daffi_obj_get(&r.obj, "aborted"));
    n.live = tstream_uint(daffi_obj_get(&r.obj, "live"));
    daffi_result_free(&r);
    daffi_close(c);
    return n;
}

/* See tstream.h. */
tstream_counts tstream_probe_wait(const char *address, uint64_t aborted, uint64_t ended,
                                  uint64_t live)
{
    int64_t end = expect_now_ms() + expect_timeout_ms();
    tstream_counts n;

    for (;;) {
        n = tstream_probe_counts(address);
        if (n.aborted >= aborted && n.ended >= ended && n.live == live)
            return n;
        if (expect_now_ms() > end)
            fail_msg("%s: streamprobe counts aborted %llu ended %llu live %llu; waited for "
                     "aborted %llu ended %llu live %llu", address,
                     (unsigned long long)n.aborted, (unsigned long long)n.ended,
                     (unsigned long long)n.live, (unsigned long long)aborted,
                     (unsigned long long)ended, (unsigned long long)live);
        usleep(10000);
    }
}

/* ---- clients and their loop ---------------------------------------------------------------- */

/* See tstream.h. */
daffi_client *tstream_connect(const char *address)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_connect(address, NULL, &err);

    if (c == NULL)
        fail_msg("connect %s: %s", address, err.message);
    return c;
}

/* See tstream.h. */
daffi_client *tstream_client_new(struct event_base *base, const char *address)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_client_new(base, address, NULL, &err);

    if (c == NULL)
        fail_msg("daffi_client_new %s: %s", address, err.message);
    return c;
}

/* A timer that only makes EVLOOP_ONCE return. */
static void loop_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* See tstream.h. */
int tstream_run_until(struct event_base *base, const int *flag, int want, int timeout_ms)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, loop_wake, NULL);
    struct timeval tv = {0, 5000};
    int64_t end = expect_now_ms() + timeout_ms;

    evtimer_add(tick, &tv); /* EVLOOP_ONCE must not block past the deadline */
    while (*flag < want && expect_now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return *flag >= want;
}

/* See tstream.h. */
void tstream_run_for(struct event_base *base, int ms)
{
    int never = 0;

    tstream_run_until(base, &never, 1, ms);
}

/* See tstream.h. The client writes what was queued in the loop pass after it was
 * queued (or once connected): a few non-blocking passes after the connection is up
 * hand a small output to the kernel. */
void tstream_flush(struct event_base *base, daffi_client *c)
{
    int64_t end = expect_now_ms() + TSTREAM_CALL_MS;
    int i;

    while (!daffi_client_connected(c) && expect_now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    if (!daffi_client_connected(c))
        fail_msg("%s: not connected", daffi_client_address(c));
    for (i = 0; i < 4; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* See tstream.h. */
void tstream_collect(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    tstream_outcome *o = arg;

    (void)c;
    o->done++;
    o->ok = res != NULL;
    if (res != NULL)
        daffi_result_move(&o->res, res);
    else
        daffi_error_move(&o->err, err);
}

/* See tstream.h. */
void tstream_outcome_free(tstream_outcome *o)
{
    daffi_result_free(&o->res);
    daffi_error_clear(&o->err);
    memset(o, 0, sizeof(*o));
}

/* See tstream.h. */
void tstream_ignore_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    (void)c;
    (void)res;
    (void)err;
    (void)arg;
}

/* See tstream.h. */
void tstream_log_ready(daffi_stream *s, const daffi_error *why, void *arg)
{
    tstream_ready_log *l = arg;

    (void)s;
    if (why == NULL) {
        l->credit++;
    } else {
        l->lost++;
        l->code = why->code;
    }
}

/* See tstream.h. */
void tstream_keep_stream(daffi_client *c, daffi_stream *s, daffi_error *err, void *arg)
{
    tstream_opening *o = arg;

    (void)c;
    o->done = 1;
    o->s = s;
    if (s == NULL)
        daffi_error_move(&o->err, err);
}

/* See tstream.h. */
daffi_stream *tstream_async_open(struct event_base *base, daffi_client *c,
                                 const char *callback, const char *to, unsigned window)
{
    daffi_error err = DAFFI_ERROR_INIT;
    tstream_opening o = {0, NULL, DAFFI_ERROR_INIT};

    if (daffi_stream_open_async(c, callback, NULL, to, window, TSTREAM_CALL_MS,
                                tstream_keep_stream, &o, &err) == -1)
        fail_msg("open %s: %s", callback, err.message);
    if (!tstream_run_until(base, &o.done, 1, TSTREAM_CALL_MS))
        fail_msg("open %s: no answer", callback);
    if (o.s == NULL)
        fail_msg("open %s: %s", callback, o.err.message);
    return o.s;
}

/* ---- the group of daffids ------------------------------------------------------------------ */

/* See tstream.h. */
int tstream_group_setup(void **state)
{
    tstream_fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    *state = f;
    f->sink.fd = -1;
    if (tdaemon_init(&f->svc) == -1 || tdaemon_add_plugin(&f->svc, "echo", NULL) == -1 ||
        tstream_add_probe(&f->svc) == -1 || tdaemon_start(&f->svc, NULL) == -1)
        return -1;
    /* the raw receiver answers heartbeats only while a test reads it: a loaded machine
     * must not make the router drop it in between */
    if (tcluster_router_init(&f->router, "hub", "heartbeat = 1s\nheartbeat_misses = 10\n") == -1 ||
        tdaemon_start(&f->router, NULL) == -1)
        return -1;
    if (tcluster_worker_init(&f->worker, f->router.tcp, "w1", "heartbeat = 1s\n") == -1 ||
        tdaemon_add_plugin(&f->worker, "echo", NULL) == -1 || tstream_add_probe(&f->worker) == -1 ||
        tcluster_worker_start(&f->worker, f->router.tcp, "w1", TSTREAM_CALL_MS) == -1)
        return -1;
    return 0;
}

/* See tstream.h. The worker first, then the router, then the service. */
int tstream_group_teardown(void **state)
{
    tstream_fixture *f = *state;
    int rc = 0;

    if (f == NULL)
        return -1;
    rawconn_close(&f->sink);
    if (f->worker.pid != 0 && tdaemon_stop(&f->worker, TDAEMON_STOP_TIMEOUT_MS) != 0)
        rc = -1;
    if (f->router.pid != 0 && tdaemon_stop(&f->router, TDAEMON_STOP_TIMEOUT_MS) != 0)
        rc = -1;
    if (f->svc.pid != 0 && tdaemon_stop(&f->svc, TDAEMON_STOP_TIMEOUT_MS) != 0)
        rc = -1;
    tdaemon_cleanup(&f->worker);
    tdaemon_cleanup(&f->router);
    tdaemon_cleanup(&f->svc);
    free(f);
    return rc;
}

/* See tstream.h. */
int tstream_sink_teardown(void **state)
{
    tstream_fixture *f = *state;

    if (f->sink.fd == -1)
        return 0;
    rawconn_close(&f->sink);
    return tcluster_wait_gone(f->router.tcp, "rawsink", TSTREAM_CALL_MS);
}

/* See tstream.h. */
void tstream_small_asan_quarantine(void)
{
    const char *old = getenv("ASAN_OPTIONS");
    char opts[1024];

    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", old != NULL ? old : "",
             old != NULL && old[0] != '\0' ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
}
