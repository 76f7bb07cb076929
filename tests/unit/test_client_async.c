/*
 * test_client_async.c - the asynchronous client (sdk/src/client_async*.c,
 * client_serve.c, client_control.c) and the router calls of both kinds of client, as
 * a specification, against a real peer: the test forks a small MessagePack-RPC
 * responder on a Unix socket in /tmp, written here with the codec. It plays a router:
 * besides plain methods it answers the control methods of sdk/PROTOCOL.md section 6
 * (daffi.hello, daffi.members, daffi.cast, daffi.wait, daffi.subscribe) with canned
 * members, echoing what it received so the tests can check what the client sent, and
 * it calls the client's exposed callbacks back on request. It answers the plain calls
 * of one read in reverse order, so every test also checks matching by msgid.
 *
 * The responder can be killed and started again on the same path, which is how the
 * reconnect behaviour is driven.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <msgpack.h>

#include <daffi/client.h>
#include <daffi/rpc.h>

#include "client_int.h" /* the backoff schedule, tested directly */
#include "responder.h"   /* fork, accept loop, params builders */

/* Deadlines of calls and waits whose timing is not what a test is about: long, so a
 * loaded machine does not fail them; a hang still ends. Upper bounds on the times the
 * tests are about are loose for the same reason: they tell prompt from hung. */
#define CALL_MS 10000
#define WAIT_MS 10000

/* ==== the responder (runs in forked children; no cmocka in here) ================== */

/* One connection's state in the responder. */
typedef struct peer {
    int fd;
    char *buf;
    size_t len, cap;
    msgpack_sbuffer out;          /* what to write next, in order */
    msgpack_packer pk;            /* packs into out */
    msgpack_sbuffer batch;        /* replies to echo/add of the current read ... */
    size_t marks[8192];           /* ... each one's start, to write them reversed */
    size_t nmarks;
    msgpack_packer bpk;           /* packs into batch */
    msgpack_sbuffer notes;        /* [method, params] of each notification received */
    uint32_t nnotes;
    msgpack_sbuffer hello;        /* params of the last daffi.hello */
    uint32_t nhello;
    const char *cur;              /* the request being answered, as it arrived */
    size_t cur_len;
    uint64_t timeout_ms;          /* the timeout_ms it carried (daffi.call), 0: none */
} peer;

/* Writes the batched replies, last first, then what out holds. Returns 0 or -1. */
static int flush_out(peer *p)
{
    size_t i, end = p->batch.size;
    int rc = 0;

    for (i = p->nmarks; rc == 0 && i-- > 0;) {
        rc = write_all(p->fd, p->batch.data + p->marks[i], end - p->marks[i]);
        end = p->marks[i];
    }
    p->batch.size = 0;
    p->nmarks = 0;
    if (rc == 0 && p->out.size > 0)
        rc = write_all(p->fd, p->out.data, p->out.size);
    p->out.size = 0;
    return rc;
}

/* Reads more bytes from the client (blocking). Returns 0, or -1 at EOF. */
static int read_more(peer *p)
{
    ssize_t n;

    if (p->cap - p->len < 65536) {
        p->cap = p->cap ? p->cap * 2 : 131072;
        p->buf = realloc(p->buf, p->cap);
        if (p->buf == NULL)
            die("realloc");
    }
    do
        n = recv(p->fd, p->buf + p->len, p->cap - p->len, 0);
    while (n == -1 && errno == EINTR);
    if (n <= 0)
        return -1;
    p->len += (size_t)n;
    return 0;
}

/* Returns the size of the whole message at the start of p->buf, 0 when it is not
 * complete yet, or -1 when it is malformed. */
static long message_size(peer *p)
{
    daffi_limits lim = {DAFFI_DEFAULT_MAX_MESSAGE, DAFFI_DEFAULT_MAX_DEPTH};
    daffi_scan s;
    daffi_scan_result r;

    if (p->len == 0)
        return 0;
    daffi_scan_init(&s);
    r = daffi_scan_feed(&s, p->buf, p->len, &lim);
    if (r == DAFFI_SCAN_COMPLETE)
        return (long)s.size;
    return r == DAFFI_SCAN_NEED_MORE ? 0 : -1;
}

/* Drops the first size bytes of p->buf (the message just handled). */
static void consume(peer *p, size_t size)
{
    memmove(p->buf, p->buf + size, p->len - size);
    p->len -= size;
}

/* Returns 1 when m's method is name. */
static int method_is(const daffi_msg *m, const char *name)
{
    return m->method_len == strlen(name) && memcmp(m->method, name, m->method_len) == 0;
}

/* Packs the canned member list: w1 serves add, w2 serves add and echo. */
static void pack_members(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, "w1");
    daffi_pack_cstr(pk, "callbacks");
    msgpack_pack_array(pk, 1);
    daffi_pack_cstr(pk, "add");
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, "w2");
    daffi_pack_cstr(pk, "callbacks");
    msgpack_pack_array(pk, 2);
    daffi_pack_cstr(pk, "add");
    daffi_pack_cstr(pk, "echo");
}

/* daffi.wait [[names], ms]: true when every name is w1 or w2, else TIMEOUT naming the
 * missing ones (details {"missing": [...]}). */
static void answer_wait(peer *p, const daffi_msg *m)
{
    const msgpack_object *names = &m->params->via.array.ptr[0];
    msgpack_object missing[16];
    uint32_t i, n = 0;

    for (i = 0; i < names->via.array.size && n < 16; i++) {
        const msgpack_object *o = &names->via.array.ptr[i];

        if (!(o->via.str.size == 2 && (memcmp(o->via.str.ptr, "w1", 2) == 0 ||
                                       memcmp(o->via.str.ptr, "w2", 2) == 0)))
            missing[n++] = *o;
    }
    if (n == 0) {
        daffi_pack_response_ok(&p->pk, m->msgid);
        msgpack_pack_true(&p->pk);
        return;
    }
    daffi_pack_response_error_details(&p->pk, m->msgid, DAFFI_E_TIMEOUT,
                                      "members missing after the wait");
    msgpack_pack_map(&p->pk, 1);
    daffi_pack_cstr(&p->pk, "missing");
    msgpack_pack_array(&p->pk, n);
    for (i = 0; i < n; i++)
        msgpack_pack_object(&p->pk, missing[i]);
    daffi_pack_response_error_end(&p->pk);
}

/* "call_client" [method, args...]: calls the client's method(args) with msgid 900,
 * waits for its response, and answers the original call with [code, value]: code 0
 * and the result, or the error's code and message. */
static int call_client(peer *p, const daffi_msg *m)
{
    uint32_t orig = m->msgid, i;
    const msgpack_object *a = m->params;
    msgpack_zone zone;
    daffi_msg r;
    long size;
    int code = 0, done = 0, rc = 0;
    const char *text = "";
    size_t text_len = 0;
    const msgpack_object *details;

    daffi_pack_request(&p->pk, 900, a->via.array.ptr[0].via.str.ptr,
                       a->via.array.ptr[0].via.str.size, a->via.array.size - 1);
    for (i = 1; i < a->via.array.size; i++)
        msgpack_pack_object(&p->pk, a->via.array.ptr[i]);
    if (flush_out(p) == -1)
        return -1;
    msgpack_zone_init(&zone, 1024);
    while (!done && rc == 0) {
        while ((size = message_size(p)) == 0)
            if (read_more(p) == -1) {
                msgpack_zone_destroy(&zone);
                return -1;
            }
        if (size < 0 || daffi_msg_decode(p->buf, (size_t)size, &zone, &r) == -1)
            die("call_client: bad message");
        if (r.kind == DAFFI_MSG_RESPONSE && r.msgid == 900) {
            daffi_pack_response_ok(&p->pk, orig);
            msgpack_pack_array(&p->pk, 2);
            if (r.error->type != MSGPACK_OBJECT_NIL) {
                daffi_error_parse(r.error, &code, &text, &text_len, &details);
                msgpack_pack_int(&p->pk, code);
                msgpack_pack_str_with_body(&p->pk, text, text_len);
            } else {
                msgpack_pack_int(&p->pk, 0);
                msgpack_pack_object(&p->pk, *r.result);
            }
            done = 1;
        }
        /* anything else the client sends meanwhile (a hello) is not answered */
        consume(p, (size_t)size);
        msgpack_zone_clear(&zone);
    }
    msgpack_zone_destroy(&zone);
    return flush_out(p);
}

/* Answers one request. Returns 0 to go on, -1 to close the connection. */
static int answer(peer *p, const daffi_msg *m)
{
    msgpack_packer *pk = &p->pk;
    const msgpack_object *a = m->params;

    if (method_is(m, "add") || method_is(m, "echo")) {
        /* batched: the replies of one read go out last first */
        p->marks[p->nmarks++] = p->batch.size;
        daffi_pack_response_ok(&p->bpk, m->msgid);
        if (method_is(m, "add"))
            msgpack_pack_int64(&p->bpk, arg_int(m, 0) + arg_int(m, 1));
        else if (a->via.array.size > 0)
            msgpack_pack_object(&p->bpk, a->via.array.ptr[0]);
        else
            msgpack_pack_nil(&p->bpk);
        return p->nmarks == sizeof(p->marks) / sizeof(p->marks[0]) ? flush_out(p) : 0;
    }
    if (flush_out(p) == -1)
        return -1;
    if (method_is(m, "request_bytes")) {
        /* the request exactly as it arrived, as bin */
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_bin_with_body(pk, p->cur, p->cur_len);
    } else if (method_is(m, "daffi.ping")) {
        daffi_pack_response_ok(pk, m->msgid);
        daffi_pack_cstr(pk, "pong");
    } else if (method_is(m, "fail")) {
        daffi_pack_response_error_details(pk, m->msgid, DAFFI_E_HANDLER_ERROR, "boom");
        msgpack_pack_map(pk, 1);
        daffi_pack_cstr(pk, "n");
        msgpack_pack_int(pk, 7);
        daffi_pack_response_error_end(pk);
    } else if (method_is(m, "slow")) {
        sleep_ms((int)arg_int(m, 0));
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_object(pk, a->via.array.ptr[1]);
    } else if (method_is(m, "close")) {
        return -1;
    } else if (method_is(m, "garbage")) {
        msgpack_sbuffer_write(&p->out, "\xc1\xc1\xc1", 3);
    } else if (method_is(m, "notified")) {
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_array(pk, p->nnotes);
        msgpack_sbuffer_write(&p->out, p->notes.data, p->notes.size);
    } else if (method_is(m, "daffi.hello")) {
        msgpack_sbuffer_clear(&p->hello);
        msgpack_sbuffer_write(&p->hello, m->params_raw, m->params_raw_len);
        p->nhello++;
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_map(pk, 2);
        daffi_pack_cstr(pk, "name");
        daffi_pack_cstr(pk, "fake-router");
        daffi_pack_cstr(pk, "members");
        pack_members(pk);
    } else if (method_is(m, "hello_seen")) {
        /* [how many hellos on this connection, the last one's params] */
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, p->nhello);
        if (p->hello.size > 0)
            msgpack_sbuffer_write(&p->out, p->hello.data, p->hello.size);
        else
            msgpack_pack_nil(pk);
    } else if (method_is(m, "daffi.members")) {
        daffi_pack_response_ok(pk, m->msgid);
        pack_members(pk);
    } else if (method_is(m, "daffi.cast")) {
        /* {"w1": [nil, <the params received>], "w2": [[4, "boom"], nil]} */
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_map(pk, 2);
        daffi_pack_cstr(pk, "w1");
        msgpack_pack_array(pk, 2);
        msgpack_pack_nil(pk);
        msgpack_sbuffer_write(&p->out, m->params_raw, m->params_raw_len);
        daffi_pack_cstr(pk, "w2");
        msgpack_pack_array(pk, 2);
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, DAFFI_E_HANDLER_ERROR);
        daffi_pack_cstr(pk, "boom");
        msgpack_pack_nil(pk);
    } else if (method_is(m, "daffi.wait")) {
        answer_wait(p, m);
    } else if (method_is(m, "daffi.subscribe")) {
        /* true, then two events */
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_true(pk);
        daffi_pack_notify(pk, "daffi.event", 11, 1);
        msgpack_pack_map(pk, 2);
        daffi_pack_cstr(pk, "type");
        daffi_pack_cstr(pk, "joined");
        daffi_pack_cstr(pk, "member");
        daffi_pack_cstr(pk, "w3");
        daffi_pack_notify(pk, "daffi.event", 11, 1);
        msgpack_pack_map(pk, 2);
        daffi_pack_cstr(pk, "type");
        daffi_pack_cstr(pk, "left");
        daffi_pack_cstr(pk, "member");
        daffi_pack_cstr(pk, "w1");
    } else {
        daffi_pack_response_error(pk, m->msgid, DAFFI_E_NO_CALLBACK, "no such callback");
    }
    return flush_out(p);
}

/* Serves one connection until the client closes it or a method says to close. */
static void serve(int fd)
{
    peer *p = calloc(1, sizeof(*p));
    msgpack_zone zone;
    msgpack_packer npk;
    daffi_msg m;
    long size;
    int rc = 0;

    if (p == NULL)
        die("calloc");
    p->fd = fd;
    msgpack_sbuffer_init(&p->out);
    msgpack_sbuffer_init(&p->batch);
    msgpack_sbuffer_init(&p->notes);
    msgpack_sbuffer_init(&p->hello);
    msgpack_packer_init(&p->pk, &p->out, msgpack_sbuffer_write);
    msgpack_packer_init(&p->bpk, &p->batch, msgpack_sbuffer_write);
    msgpack_packer_init(&npk, &p->notes, msgpack_sbuffer_write);
    msgpack_zone_init(&zone, 4096);
    while (rc == 0 && read_more(p) == 0) {
        while (rc == 0 && (size = message_size(p)) > 0) {
            if (daffi_msg_decode(p->buf, (size_t)size, &zone, &m) == -1)
                die("decode");
            p->cur = p->buf;
            p->cur_len = (size_t)size;
            if (m.kind != DAFFI_MSG_RESPONSE)
                unwrap_daffi_call(&m, &p->timeout_ms);
            if (m.kind == DAFFI_MSG_NOTIFY) {
                msgpack_pack_array(&npk, 2);
                msgpack_pack_str_with_body(&npk, m.method, m.method_len);
                msgpack_pack_object(&npk, *m.params);
                p->nnotes++;
                consume(p, (size_t)size);
            } else if (m.kind == DAFFI_MSG_REQUEST && method_is(&m, "call_client")) {
                /* the original's params must outlive the consume: copy the message */
                char *copy = malloc((size_t)size);
                daffi_msg cm;

                if (copy == NULL)
                    die("malloc");
                memcpy(copy, p->buf, (size_t)size);
                consume(p, (size_t)size);
                if (daffi_msg_decode(copy, (size_t)size, &zone, &cm) == -1)
                    die("decode");
                unwrap_daffi_call(&cm, &p->timeout_ms);
                rc = flush_out(p) == 0 ? call_client(p, &cm) : -1;
                free(copy);
            } else {
                if (m.kind == DAFFI_MSG_REQUEST)
                    rc = answer(p, &m);
                consume(p, (size_t)size);
            }
            msgpack_zone_clear(&zone);
        }
        if (size < 0)
            break;
        if (rc == 0)
            rc = flush_out(p);
    }
    close(fd);
}

/* ==== the test fixture ============================================================== */

typedef struct suite {
    pid_t pid;               /* the responder, 0 when stopped */
    char path[108];
    char address[128];
    struct event_base *base;
} suite;

/* Starts the responder listening on s->path. Returns 0 or -1. */
static int responder_start(suite *s)
{
    s->pid = responder_spawn(s->path, 64, serve);
    if (s->pid == -1) {
        s->pid = 0; /* stopped, as responder_stop() reads it */
        return -1;
    }
    return 0;
}

/* Kills the responder and every connection child at once (SIGKILL: no goodbye, like
 * a crash), and removes the socket. */
static void responder_stop(suite *s)
{
    if (s->pid == 0)
        return;
    kill(-s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    unlink(s->path);
}

static int setup(void **state)
{
    static unsigned seq;
    suite *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "/tmp/daffi-test-async-%ld-%u.sock", (long)getpid(),
             seq++);
    snprintf(s->address, sizeof(s->address), "unix://%s", s->path);
    s->base = event_base_new();
    if (s->base == NULL || responder_start(s) == -1) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    suite *s = *state;

    responder_stop(s);
    event_base_free(s->base);
    free(s);
    return 0;
}

/* ==== helpers ======================================================================= */

/* The outcome of one asynchronous call, filled by collect(). */
typedef struct outcome {
    int done;                /* how many times the callback ran */
    int ok;
    daffi_result res;
    daffi_error err;
    int returned;            /* set by the test after the starting call returned */
    int early;               /* the callback ran before the call returned */
} outcome;

static void collect(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    outcome *o = arg;

    (void)c;
    o->done++;
    if (!o->returned)
        o->early = 1;
    if (res != NULL) {
        o->ok = 1;
        daffi_result_move(&o->res, res);
    } else {
        o->ok = 0;
        daffi_error_move(&o->err, err);
    }
}

static void outcome_free(outcome *o)
{
    daffi_result_free(&o->res);
    daffi_error_clear(&o->err);
    memset(o, 0, sizeof(*o));
}

static void loop_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until *flag >= want or timeout_ms passed. Returns 1 when reached. */
static int run_until(struct event_base *base, const int *flag, int want, int timeout_ms)
{
    struct timespec t0, t;
    struct event *tick = event_new(base, -1, EV_PERSIST, loop_wake, NULL);
    struct timeval tv = {0, 10000};
    long elapsed;

    evtimer_add(tick, &tv); /* EVLOOP_ONCE must not block past the deadline */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (*flag >= want)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        elapsed = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms)
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return *flag >= want;
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct event_base *base, int ms)
{
    int never = 0;

    run_until(base, &never, 1, ms);
}

static int obj_is_str(const msgpack_object *o, const char *s)
{
    const char *p;
    size_t len;

    return daffi_obj_str(o, &p, &len) == 0 && len == strlen(s) && memcmp(p, s, len) == 0;
}

/* Creates an asynchronous client on the fixture's responder, asserting success. */
static daffi_client *new_client(suite *s, const daffi_client_opts *opts)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_client_new(s->base, s->address, opts, &err);

    if (c == NULL)
        fail_msg("daffi_client_new %s: %s", s->address, err.message);
    return c;
}

/* Starts add(a, b) on c into o, asserting the start succeeded. */
static void start_add(daffi_client *c, int64_t a, int64_t b, int timeout_ms, outcome *o)
{
    msgpack_object objs[2], params = int_params(objs, 2, (int64_t[]){a, b});
    daffi_error err = DAFFI_ERROR_INIT;

    if (daffi_rpc_async(c, "add", &params, timeout_ms, collect, o, &err) == -1)
        fail_msg("daffi_rpc_async: %s", err.message);
    o->returned = 1;
}

/* Counts state changes. */
typedef struct states {
    int up, down;
    char why[256];
} states;

static void on_state(daffi_client *c, int connected, const daffi_error *why, void *arg)
{
    states *st = arg;

    (void)c;
    if (connected) {
        st->up++;
    } else {
        st->down++;
        snprintf(st->why, sizeof(st->why), "%s", why->message != NULL ? why->message : "");
    }
}

/* ==== calls ========================================================================= */

static void test_rpc_async_delivers_the_result_to_its_callback(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    outcome o = {0};
    int64_t v;

    start_add(c, 2, 40, CALL_MS, &o);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_int_equal(o.done, 1);
    assert_true(o.ok);
    assert_int_equal(daffi_obj_int(&o.res.obj, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(o.res.raw_len, 1); /* the exact encoding: positive fixint 42 */
    outcome_free(&o);
    daffi_close(c);
}

static void test_callback_never_runs_inside_the_starting_call(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    outcome o = {0};

    /* connected first, so that nothing waits: still, the reply comes from the loop */
    start_add(c, 1, 1, CALL_MS, &o);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    outcome_free(&o);
    start_add(c, 1, 2, CALL_MS, &o);
    assert_int_equal(o.done, 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_false(o.early);
    outcome_free(&o);
    daffi_close(c);
}

static void test_calls_made_before_the_connection_is_up_are_sent_once_it_is(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    outcome o[3] = {{0}};
    int done = 0, i;
    int64_t v;

    assert_false(daffi_client_connected(c)); /* the connect completes on the loop */
    for (i = 0; i < 3; i++)
        start_add(c, i, 100, CALL_MS, &o[i]);
    while (done < 3 && run_until(s->base, &o[done].done, 1, WAIT_MS))
        done++;
    assert_int_equal(done, 3);
    for (i = 0; i < 3; i++) {
        assert_true(o[i].ok);
        assert_int_equal(daffi_obj_int(&o[i].res.obj, &v), 0);
        assert_int_equal(v, 100 + i);
        outcome_free(&o[i]);
    }
    assert_true(daffi_client_connected(c));
    daffi_close(c);
}

static void test_peer_error_reaches_the_callback_with_code_message_and_details(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    outcome o = {0};
    int64_t n;

    assert_int_equal(daffi_rpc_async(c, "fail", NULL, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_false(o.ok);
    assert_int_equal(o.err.code, DAFFI_E_HANDLER_ERROR);
    assert_string_equal(o.err.name, "HANDLER_ERROR");
    assert_string_equal(o.err.message, "boom");
    assert_int_equal(o.err.remote, 1);
    assert_int_equal(daffi_obj_int(daffi_obj_get(&o.err.details, "n"), &n), 0);
    assert_int_equal(n, 7);
    daffi_close(c);
    /* moved out of the callback: the details outlive the client */
    assert_int_equal(o.err.details.type, MSGPACK_OBJECT_MAP);
    outcome_free(&o);
}

static void test_timeout_fails_that_call_reports_elapsed_and_discards_the_late_reply(
    void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    msgpack_object two[2], params = slow_params(two, 1000, "late");
    outcome o = {0}, next = {0};
    daffi_client_stats st;
    int64_t t0, v;

    start_add(c, 0, 0, CALL_MS, &next); /* connect first: the timeout is the reply's */
    assert_true(run_until(s->base, &next.done, 1, WAIT_MS));
    outcome_free(&next);
    t0 = mono_ms();
    assert_int_equal(daffi_rpc_async(c, "slow", &params, 50, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_false(o.ok);
    assert_int_equal(o.err.code, DAFFI_E_TIMEOUT);
    assert_int_equal(o.err.remote, 0);
    assert_true(o.err.elapsed_ms >= 50);
    assert_true(o.err.elapsed_ms < 900); /* well before the reply at 1000 ms */
    assert_true(mono_ms() - t0 < 1000);
    assert_non_null(strstr(o.err.message, "50 ms"));
    assert_true(daffi_client_connected(c));
    /* the connection stays usable; the late "late" is matched to nobody */
    start_add(c, 20, 22, CALL_MS, &next);
    assert_true(run_until(s->base, &next.done, 1, WAIT_MS));
    assert_true(next.ok);
    assert_int_equal(daffi_obj_int(&next.res.obj, &v), 0);
    assert_int_equal(v, 42);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.late_replies, 1);
    assert_int_equal(o.done, 1); /* the late reply did not run the callback again */
    outcome_free(&o);
    outcome_free(&next);
    daffi_close(c);
}

/* Checks that add(i, 1000000) answered i + 1000000: each reply went to its own call. */
typedef struct many {
    int done, bad;
    int64_t *got;
} many;

static void many_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    many *m = ((many **)arg)[0];
    int64_t i = (int64_t)(intptr_t)((void **)arg)[1], v;

    (void)c;
    (void)err;
    m->done++;
    if (res == NULL || daffi_obj_int(&res->obj, &v) == -1)
        m->bad++;
    else
        m->got[i] = v;
}

static void test_thousand_concurrent_calls_on_one_connection_each_get_their_reply(
    void **state)
{
    enum { N = 1000 };
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    many m = {0, 0, NULL};
    void *(*args)[2] = calloc(N, sizeof(*args));
    daffi_client_stats st;
    int i, wrong = 0;

    m.got = calloc(N, sizeof(*m.got));
    assert_non_null(args);
    assert_non_null(m.got);
    for (i = 0; i < N; i++) {
        msgpack_object objs[2], params = int_params(objs, 2, (int64_t[]){i, 1000000});

        args[i][0] = &m;
        args[i][1] = (void *)(intptr_t)i;
        assert_int_equal(daffi_rpc_async(c, "add", &params, 5000, many_reply, args[i], NULL), 0);
    }
    assert_true(run_until(s->base, &m.done, N, 5000));
    assert_int_equal(m.bad, 0);
    for (i = 0; i < N; i++)
        wrong += m.got[i] != i + 1000000;
    assert_int_equal(wrong, 0);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.calls, N);
    assert_int_equal(st.late_replies, 0);
    free(args);
    free(m.got);
    daffi_close(c);
}

static void test_notifications_are_sent_in_order_without_reply(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    msgpack_object objs[2], params;
    outcome o = {0};
    uint64_t k;

    params = int_params(objs, 1, (int64_t[]){1});
    assert_int_equal(daffi_notify_async(c, "first", &params, NULL), 0);
    params = int_params(objs, 1, (int64_t[]){2});
    assert_int_equal(daffi_notify_async(c, "second", &params, NULL), 0);
    assert_int_equal(daffi_notify_raw_async(c, "third", "\x91\x03", 2, NULL), 0);
    assert_int_equal(daffi_rpc_async(c, "notified", NULL, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_true(o.ok);
    assert_int_equal(o.res.obj.via.array.size, 3);
    assert_true(obj_is_str(daffi_obj_at(daffi_obj_at(&o.res.obj, 0), 0), "first"));
    assert_true(obj_is_str(daffi_obj_at(daffi_obj_at(&o.res.obj, 2), 0), "third"));
    assert_int_equal(daffi_obj_uint(daffi_obj_at(daffi_obj_at(daffi_obj_at(&o.res.obj, 2), 1), 0),
                                    &k), 0);
    assert_int_equal(k, 3);
    outcome_free(&o);
    daffi_close(c);
}

static void test_ping_async_answers_pong(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    outcome o = {0};

    assert_int_equal(daffi_ping_async(c, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_true(o.ok);
    assert_true(obj_is_str(&o.res.obj, "pong"));
    outcome_free(&o);
    daffi_close(c);
}

static void test_wrong_kind_of_client_and_bad_arguments_are_bad_args(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_client *sc;
    daffi_error err = DAFFI_ERROR_INIT;
    outcome o = {0};

    assert_int_equal(daffi_rpc(c, "add", NULL, 1000, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "asynchronous client"));
    assert_int_equal(daffi_rpc_async(c, "add", NULL, 1000, NULL, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS); /* no completion callback */
    assert_int_equal(daffi_rpc_async(c, "add", NULL, -1, collect, &o, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_rpc_raw_async(c, "add", "\x01", 1, CALL_MS, collect, &o, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS); /* params not an array */
    assert_null(daffi_client_new(NULL, s->address, NULL, &err));
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_null(daffi_client_new(s->base, "udp://x:1", NULL, &err));
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    sc = daffi_connect(s->address, NULL, &err);
    assert_non_null(sc);
    assert_int_equal(daffi_rpc_async(sc, "add", NULL, CALL_MS, collect, &o, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "synchronous client"));
    daffi_close(sc);
    run_for(s->base, 20);
    assert_int_equal(o.done, 0);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_connect_to_a_missing_socket_without_reconnect_fails_at_once(void **state)
{
    suite *s = *state;
    daffi_error err = DAFFI_ERROR_INIT;

    responder_stop(s);
    assert_null(daffi_client_new(s->base, s->address, NULL, &err));
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, s->path));
    daffi_error_clear(&err);
}

/* ==== drops, reconnect, close ======================================================== */

static void test_drop_fails_every_call_in_flight_at_once_with_unavailable(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    msgpack_object two[2], params = slow_params(two, 5000, "never");
    outcome o[3] = {{0}}, after = {0};
    daffi_client_stats st;
    int64_t t0;

    start_add(c, 0, 0, 0, &o[0]); /* connected and idle */
    assert_true(run_until(s->base, &o[0].done, 1, WAIT_MS));
    outcome_free(&o[0]);
    /* two calls wait (no timeout); then another connection's... no: this one's peer dies */
    assert_int_equal(daffi_rpc_async(c, "slow", &params, 0, collect, &o[0], NULL), 0);
    assert_int_equal(daffi_rpc_async(c, "slow", &params, 0, collect, &o[1], NULL), 0);
    run_for(s->base, 50);
    t0 = mono_ms();
    responder_stop(s);
    assert_true(run_until(s->base, &o[1].done, 1, WAIT_MS));
    assert_true(run_until(s->base, &o[0].done, 1, 100));
    assert_true(mono_ms() - t0 < 1000);
    assert_int_equal(o[0].err.code, DAFFI_E_UNAVAILABLE);
    assert_int_equal(o[1].err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(o[0].err.message, "closed by peer"));
    assert_false(daffi_client_connected(c));
    /* without reconnect the drop is final: later calls fail at once, saying why */
    assert_int_equal(daffi_rpc_async(c, "add", NULL, 100, collect, &after, &after.err), -1);
    assert_int_equal(after.err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(after.err.message, "closed by peer"));
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.calls_failed_on_drop, 2);
    assert_int_equal(st.disconnects, 1);
    outcome_free(&o[0]);
    outcome_free(&o[1]);
    outcome_free(&after);
    daffi_close(c);
}

static void test_reconnects_after_the_peer_comes_back_and_the_next_call_succeeds(
    void **state)
{
    suite *s = *state;
    daffi_client_opts opts = {0};
    daffi_client *c;
    states st = {0};
    outcome o = {0};
    daffi_client_stats cs;

    opts.reconnect_ms = 20;
    opts.reconnect_max_ms = 50;
    c = new_client(s, &opts);
    daffi_client_on_state(c, on_state, &st);
    assert_true(run_until(s->base, &st.up, 1, WAIT_MS));
    responder_stop(s);
    assert_true(run_until(s->base, &st.down, 1, WAIT_MS));
    assert_false(daffi_client_connected(c));
    /* a further attempt fails: the backoff goes on (waited for, not timed: under a
     * sanitizer on a busy machine 100 ms may hold a single attempt) */
    assert_true(run_until(s->base, &st.down, 2, WAIT_MS));
    assert_int_equal(responder_start(s), 0);
    assert_true(run_until(s->base, &st.up, 2, WAIT_MS));
    assert_true(daffi_client_connected(c));
    start_add(c, 3, 4, CALL_MS, &o);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_true(o.ok);
    daffi_client_stats_get(c, &cs);
    assert_int_equal(cs.connects, 2);
    assert_int_equal(cs.disconnects, 1);
    outcome_free(&o);
    daffi_close(c);
}

/* Starts the responder again from the loop, after a delay. */
static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    responder_start(arg);
}

/* A client reconnecting every 20-40 ms whose responder was stopped: returned once its
 * state callback (counting into st) heard the connection come up and go down. */
static daffi_client *client_left_disconnected(suite *s, states *st)
{
    daffi_client_opts opts = {0};
    daffi_client *c;

    opts.reconnect_ms = 20;
    opts.reconnect_max_ms = 40;
    c = new_client(s, &opts);
    daffi_client_on_state(c, on_state, st);
    assert_true(run_until(s->base, &st->up, 1, WAIT_MS));
    responder_stop(s);
    assert_true(run_until(s->base, &st->down, 1, WAIT_MS));
    return c;
}

static void test_call_made_while_disconnected_waits_for_the_reconnect(void **state)
{
    suite *s = *state;
    states st = {0};
    daffi_client *c = client_left_disconnected(s, &st);
    outcome o = {0};
    struct event *later;
    struct timeval tv = {0, 200000};
    int64_t v;

    /* made while down; the responder comes back 200 ms later */
    start_add(c, 40, 2, 3000, &o);
    later = evtimer_new(s->base, restart_cb, s);
    evtimer_add(later, &tv);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    if (!o.ok)
        fail_msg("%s", o.err.message);
    assert_int_equal(daffi_obj_int(&o.res.obj, &v), 0);
    assert_int_equal(v, 42);
    event_free(later);
    outcome_free(&o);
    daffi_close(c);
}

static void test_call_made_while_disconnected_fails_unavailable_at_its_timeout(void **state)
{
    suite *s = *state;
    states st = {0};
    daffi_client *c = client_left_disconnected(s, &st);
    outcome o = {0};
    int64_t t0;

    t0 = mono_ms();
    start_add(c, 1, 1, 100, &o);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_int_equal(o.err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(o.err.message, "not connected within 100 ms"));
    assert_true(o.err.elapsed_ms >= 100);
    assert_true(mono_ms() - t0 < 2000);
    outcome_free(&o);
    daffi_close(c);
}

static void test_close_completes_pending_calls_with_unavailable(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    msgpack_object two[2], params = slow_params(two, 300, "x");
    outcome o = {0};

    assert_int_equal(daffi_rpc_async(c, "slow", &params, 0, collect, &o, NULL), 0);
    o.returned = 1;
    run_for(s->base, 20);
    daffi_close(c); /* the one place a callback runs inside an API call */
    assert_int_equal(o.done, 1);
    assert_int_equal(o.err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(o.err.message, "client closed"));
    run_for(s->base, 20); /* nothing of the client is left on the loop */
    outcome_free(&o);
}

/* Closes the client from inside the first completion; counts completions. */
typedef struct closer {
    int done;
    int codes[4];
} closer;

static void close_in_callback(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    closer *k = arg;

    k->codes[k->done < 4 ? k->done : 3] = res != NULL ? 0 : err->code;
    if (k->done++ == 0)
        daffi_close(c);
}

static void test_closing_the_client_inside_its_own_callback_is_safe(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    msgpack_object objs[2], params = int_params(objs, 2, (int64_t[]){1, 2});
    closer k = {0, {0}};
    int i;

    for (i = 0; i < 3; i++)
        assert_int_equal(daffi_rpc_async(c, "add", &params, CALL_MS, close_in_callback, &k, NULL),
                         0);
    assert_true(run_until(s->base, &k.done, 3, WAIT_MS));
    run_for(s->base, 20);
    assert_int_equal(k.done, 3);
    assert_int_equal(k.codes[0], 0);
    assert_int_equal(k.codes[1], DAFFI_E_UNAVAILABLE); /* "client closed" */
    assert_int_equal(k.codes[2], DAFFI_E_UNAVAILABLE);
}

/* ==== exposed callbacks =============================================================== */

/* mul(a, b) -> a * b, inline. */
static daffi_status cb_mul(daffi_call *call)
{
    int64_t a, b;

    if (daffi_arg_int(call, 0, &a) == -1 || daffi_arg_int(call, 1, &b) == -1) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "mul takes two integers");
        return DAFFI_DONE;
    }
    daffi_reply_int(call, a * b);
    return DAFFI_DONE;
}

/* whoami() -> the state pointer given to expose, as a string, and the method name. */
static daffi_status cb_whoami(daffi_call *call)
{
    msgpack_packer *pk = daffi_reply_packer(call);

    msgpack_pack_array(pk, 2);
    daffi_pack_cstr(pk, (const char *)daffi_call_state(call));
    daffi_pack_cstr(pk, daffi_call_method(call));
    return DAFFI_DONE;
}

/* later(x) -> x, 30 ms later, from a timer on the call's loop. */
static void later_fire(evutil_socket_t fd, short what, void *arg)
{
    daffi_call *call = arg;

    (void)fd;
    (void)what;
    daffi_reply_object(call, daffi_arg(call, 0));
    daffi_call_done(call);
}

static daffi_status cb_later(daffi_call *call)
{
    struct timeval tv = {0, 30000};

    event_base_once(daffi_call_loop(call), -1, EV_TIMEOUT, later_fire, call, &tv);
    return DAFFI_PENDING;
}

static const daffi_callback_def client_callbacks[] = {
    {"mul", cb_mul, 0, "a * b"},
    {"whoami", cb_whoami, 0, NULL},
    {"later", cb_later, 0, NULL},
    {NULL, NULL, 0, NULL},
};

/* Asks the responder to call the client's method(args...) and returns the
 * responder's [code, value] in o. */
static void ask_responder_to_call(suite *s, daffi_client *c, const char *packed_params,
                                  size_t len, outcome *o)
{
    daffi_error err = DAFFI_ERROR_INIT;

    if (daffi_rpc_raw_async(c, "call_client", packed_params, len, CALL_MS, collect, o, &err) == -1)
        fail_msg("call_client: %s", err.message);
    assert_true(run_until(s->base, &o->done, 1, WAIT_MS));
    if (!o->ok)
        fail_msg("call_client: %s", o->err.message);
}

static void test_exposed_callback_is_served_when_the_peer_calls_it(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;
    outcome o = {0};
    int64_t code, v;

    assert_int_equal(daffi_client_expose(c, client_callbacks, "my-state", NULL, NULL, &err), 0);
    /* call_client("mul", 6, 7) */
    ask_responder_to_call(s, c, "\x93\xa3mul\x06\x07", 7, &o);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 0), &code), 0);
    assert_int_equal(code, 0);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 1), &v), 0);
    assert_int_equal(v, 42);
    outcome_free(&o);
    /* the handler sees its state and its name */
    ask_responder_to_call(s, c, "\x91\xa6whoami", 8, &o);
    assert_true(obj_is_str(daffi_obj_at(daffi_obj_at(&o.res.obj, 1), 0), "my-state"));
    assert_true(obj_is_str(daffi_obj_at(daffi_obj_at(&o.res.obj, 1), 1), "whoami"));
    outcome_free(&o);
    /* a handler error travels back as the handler set it */
    ask_responder_to_call(s, c, "\x92\xa3mul\xa1x", 7, &o);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 0), &code), 0);
    assert_int_equal(code, DAFFI_E_BAD_ARGS);
    outcome_free(&o);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.requests_served, 3);
    daffi_close(c);
}

static void test_exposed_callback_may_complete_later_from_the_loop(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    outcome o = {0};

    assert_int_equal(daffi_client_expose(c, client_callbacks, "st", NULL, NULL, NULL), 0);
    ask_responder_to_call(s, c, "\x92\xa5later\xa2ok", 10, &o);
    assert_true(obj_is_str(daffi_obj_at(&o.res.obj, 1), "ok"));
    outcome_free(&o);
    daffi_close(c);
}

/* ---- deadlines travel with the call ------------------------------------------------ */

/* The timeout_ms that the request the responder's request_bytes returned in o carried
 * (daffi.call's option), or 0 when it went out plain. */
static uint64_t sent_timeout(const outcome *o)
{
    msgpack_zone zone;
    daffi_msg m;
    const char *p;
    size_t len;
    uint64_t t = 0;

    assert_true(o->ok);
    assert_int_equal(daffi_obj_bin(&o->res.obj, &p, &len), 0);
    msgpack_zone_init(&zone, 1024);
    assert_int_equal(daffi_msg_decode(p, len, &zone, &m), 0);
    if (m.method_len == 10 && memcmp(m.method, "daffi.call", 10) == 0)
        assert_int_equal(daffi_obj_uint(daffi_obj_get(daffi_obj_at(m.params, 2), "timeout_ms"),
                                        &t), 0);
    msgpack_zone_destroy(&zone);
    return t;
}

static void test_an_async_call_with_a_timeout_carries_it_as_daffi_call(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_rpc_opts opts = {NULL, 2000};
    outcome o = {0}, plain = {0};
    uint64_t t;

    assert_int_equal(daffi_rpc_with_async(c, "request_bytes", NULL, &opts, collect, &o, NULL), 0);
    assert_int_equal(daffi_rpc_async(c, "request_bytes", NULL, 0, collect, &plain, NULL), 0);
    assert_true(run_until(s->base, &plain.done, 1, WAIT_MS));
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    t = sent_timeout(&o);
    assert_true(t > 1000 && t <= 2000);
    assert_int_equal(sent_timeout(&plain), 0);
    outcome_free(&o);
    outcome_free(&plain);
    daffi_close(c);
}

/* A call that waited for the connection tells the peer only the time it has left. */
static void test_a_call_that_waited_for_the_connection_carries_what_is_left(void **state)
{
    suite *s = *state;
    daffi_rpc_opts opts = {NULL, 3000};
    states st = {0};
    daffi_client *c = client_left_disconnected(s, &st);
    outcome o = {0};
    struct event *later;
    struct timeval tv = {0, 400000};
    uint64_t t;

    assert_int_equal(daffi_rpc_with_async(c, "request_bytes", NULL, &opts, collect, &o, NULL), 0);
    later = evtimer_new(s->base, restart_cb, s);
    evtimer_add(later, &tv);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    t = sent_timeout(&o);
    assert_in_range(t, 1, 3000 - 400); /* a failure prints what was sent */
    event_free(later);
    outcome_free(&o);
    daffi_close(c);
}

/* A peer (a router forwarding with a deadline, or a caller naming this client) may
 * send daffi.call to an exposed callback: it runs the callback, as a daffid service
 * does; a `to` naming someone else is UNAVAILABLE, bad options BAD_ARGS. */
static void test_an_exposed_callback_is_served_through_daffi_call(void **state)
{
    suite *s = *state;
    daffi_client_opts copts = {0};
    daffi_client *c;
    outcome o = {0};
    int64_t code, v;

    copts.name = "me";
    c = new_client(s, &copts);
    assert_int_equal(daffi_client_expose(c, client_callbacks, "st", NULL, NULL, NULL), 0);
    /* call_client("daffi.call", "mul", [6, 7], {"to": "me", "timeout_ms": 500}) */
    ask_responder_to_call(s, c, "\x94\xaa" "daffi.call\xa3mul\x92\x06\x07\x82\xa2to\xa2me"
                                "\xaatimeout_ms\xcd\x01\xf4", 40, &o);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 0), &code), 0);
    assert_int_equal(code, 0);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 1), &v), 0);
    assert_int_equal(v, 42);
    outcome_free(&o);
    ask_responder_to_call(s, c, "\x94\xaa" "daffi.call\xa3mul\x92\x06\x07\x81\xa2to\xa2no",
                          26, &o);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 0), &code), 0);
    assert_int_equal(code, DAFFI_E_UNAVAILABLE);
    outcome_free(&o);
    ask_responder_to_call(s, c, "\x94\xaa" "daffi.call\xa3mul\x92\x06\x07\x07", 20, &o);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 0), &code), 0);
    assert_int_equal(code, DAFFI_E_BAD_ARGS);
    outcome_free(&o);
    daffi_close(c);
}

/* A malformed message from the peer fails the calls in flight with PROTOCOL (as the
 * synchronous client does), and closes the connection. */
static void test_a_malformed_message_fails_the_calls_in_flight_with_protocol(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    outcome o = {0};

    assert_int_equal(daffi_rpc_async(c, "garbage", NULL, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_false(o.ok);
    assert_int_equal(o.err.code, DAFFI_E_PROTOCOL);
    assert_int_equal(o.err.remote, 0);
    assert_non_null(strstr(o.err.message, "malformed message from peer"));
    assert_false(daffi_client_connected(c));
    outcome_free(&o);
    daffi_close(c);
}

static void test_a_method_the_client_does_not_expose_is_answered_no_callback(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_client_stats st;
    outcome o = {0};
    int64_t code;

    ask_responder_to_call(s, c, "\x91\xa4nope", 6, &o);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&o.res.obj, 0), &code), 0);
    assert_int_equal(code, DAFFI_E_NO_CALLBACK);
    outcome_free(&o);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.requests_refused, 1);
    daffi_close(c);
}

static daffi_status cb_noop(daffi_call *call)
{
    daffi_reply_nil(call);
    return DAFFI_DONE;
}

static void test_expose_refuses_reserved_duplicate_unnamed_and_blocking_callbacks(
    void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_client *sc;
    daffi_error err = DAFFI_ERROR_INIT;
    const daffi_callback_def reserved[] = {{"daffi.x", cb_noop, 0, NULL}, {NULL, NULL, 0, NULL}};
    const daffi_callback_def dup[] = {{"a", cb_noop, 0, NULL}, {"a", cb_noop, 0, NULL},
                                      {NULL, NULL, 0, NULL}};
    const daffi_callback_def empty[] = {{"", cb_noop, 0, NULL}, {NULL, NULL, 0, NULL}};
    const daffi_callback_def nofn[] = {{"f", NULL, 0, NULL}, {NULL, NULL, 0, NULL}};
    const daffi_callback_def blocking[] = {{"b", cb_noop, DAFFI_CB_BLOCKING, NULL},
                                           {NULL, NULL, 0, NULL}};

    assert_int_equal(daffi_client_expose(c, reserved, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "reserved"));
    assert_int_equal(daffi_client_expose(c, dup, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.message, "twice"));
    assert_int_equal(daffi_client_expose(c, empty, NULL, NULL, NULL, &err), -1);
    assert_int_equal(daffi_client_expose(c, nofn, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.message, "NULL"));
    assert_int_equal(daffi_client_expose(c, blocking, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.message, "flags"));
    /* nothing of a refused table was registered: "a" can still be exposed once */
    assert_int_equal(daffi_client_expose(c, dup + 1, NULL, NULL, NULL, &err), 0);
    assert_int_equal(daffi_client_expose(c, dup + 1, NULL, NULL, NULL, &err), -1);
    sc = daffi_connect(s->address, NULL, &err);
    assert_int_equal(daffi_client_expose(sc, client_callbacks, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "asynchronous"));
    daffi_close(sc);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_hello_announces_the_name_and_callbacks_and_its_answer_is_passed_on(
    void **state)
{
    suite *s = *state;
    daffi_client_opts opts = {0};
    daffi_client *c;
    outcome ann = {0}, o = {0};
    const msgpack_object *hello, *cbs;
    uint64_t n;

    opts.name = "calc-client";
    c = new_client(s, &opts);
    assert_int_equal(daffi_client_expose(c, client_callbacks, NULL, collect, &ann, NULL), 0);
    ann.returned = 1;
    assert_true(run_until(s->base, &ann.done, 1, WAIT_MS));
    assert_true(ann.ok); /* the router's answer: {"name": "fake-router", ...} */
    assert_true(obj_is_str(daffi_obj_get(&ann.res.obj, "name"), "fake-router"));
    assert_int_equal(daffi_rpc_async(c, "hello_seen", NULL, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_int_equal(daffi_obj_uint(daffi_obj_at(&o.res.obj, 0), &n), 0);
    assert_int_equal(n, 1);
    hello = daffi_obj_at(daffi_obj_at(&o.res.obj, 1), 0); /* params[0] */
    assert_true(obj_is_str(daffi_obj_get(hello, "name"), "calc-client"));
    cbs = daffi_obj_get(hello, "callbacks");
    assert_non_null(cbs);
    assert_int_equal(cbs->via.array.size, 3);
    assert_true(obj_is_str(daffi_obj_at(cbs, 0), "mul"));
    assert_true(obj_is_str(daffi_obj_at(cbs, 2), "later"));
    outcome_free(&ann);
    outcome_free(&o);
    daffi_close(c);
}

static void test_hello_is_repeated_on_every_new_connection(void **state)
{
    suite *s = *state;
    daffi_client_opts opts = {0};
    daffi_client *c;
    states st = {0};
    outcome ann = {0}, o = {0};
    uint64_t n;

    opts.reconnect_ms = 20;
    opts.name = "again";
    c = new_client(s, &opts);
    daffi_client_on_state(c, on_state, &st);
    assert_int_equal(daffi_client_expose(c, client_callbacks, NULL, collect, &ann, NULL), 0);
    ann.returned = 1;
    assert_true(run_until(s->base, &ann.done, 1, WAIT_MS));
    responder_stop(s);
    assert_true(run_until(s->base, &st.down, 1, WAIT_MS));
    assert_int_equal(responder_start(s), 0);
    assert_true(run_until(s->base, &ann.done, 2, WAIT_MS)); /* announced again */
    assert_true(ann.ok);
    assert_int_equal(daffi_rpc_async(c, "hello_seen", NULL, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_int_equal(daffi_obj_uint(daffi_obj_at(&o.res.obj, 0), &n), 0);
    assert_int_equal(n, 1); /* on the new connection, before the calls */
    /* and the callbacks are served on it */
    outcome_free(&o);
    ask_responder_to_call(s, c, "\x93\xa3mul\x03\x05", 7, &o);
    assert_int_equal(daffi_obj_uint(daffi_obj_at(&o.res.obj, 1), &n), 0);
    assert_int_equal(n, 15);
    outcome_free(&ann);
    outcome_free(&o);
    daffi_close(c);
}

/* ==== router calls (fake router) ====================================================== */

static void test_members_returns_the_member_list(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_client *sc;
    daffi_result r;
    outcome o = {0};

    assert_int_equal(daffi_members_async(c, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_true(o.ok);
    assert_int_equal(o.res.obj.via.array.size, 2);
    assert_true(obj_is_str(daffi_obj_get(daffi_obj_at(&o.res.obj, 1), "name"), "w2"));
    sc = daffi_connect(s->address, NULL, NULL);
    assert_non_null(sc);
    assert_int_equal(daffi_members(sc, 1000, &r, NULL), 0);
    assert_true(obj_is_str(daffi_obj_get(daffi_obj_at(&r.obj, 0), "name"), "w1"));
    daffi_result_free(&r);
    daffi_close(sc);
    outcome_free(&o);
    daffi_close(c);
}

/* Checks a cast result from the fake router: w1 echoes the params it received,
 * w2 failed. */
static void check_cast_result(const msgpack_object *map)
{
    const msgpack_object *w1 = daffi_obj_get(map, "w1"), *w2 = daffi_obj_get(map, "w2");
    const msgpack_object *sent, *opts, *to;
    int64_t v;

    assert_non_null(w1);
    assert_int_equal(daffi_obj_at(w1, 0)->type, MSGPACK_OBJECT_NIL);
    sent = daffi_obj_at(w1, 1); /* [callback, params, options] as the router got them */
    assert_true(obj_is_str(daffi_obj_at(sent, 0), "add"));
    assert_int_equal(daffi_obj_int(daffi_obj_at(daffi_obj_at(sent, 1), 1), &v), 0);
    assert_int_equal(v, 2);
    opts = daffi_obj_at(sent, 2);
    to = daffi_obj_get(opts, "to");
    assert_int_equal(to->via.array.size, 2);
    assert_true(obj_is_str(daffi_obj_at(to, 1), "w2"));
    assert_int_equal(daffi_obj_int(daffi_obj_get(opts, "timeout_ms"), &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(daffi_obj_int(daffi_obj_at(daffi_obj_at(w2, 0), 0), &v), 0);
    assert_int_equal(v, DAFFI_E_HANDLER_ERROR);
}

static void test_cast_sends_callback_params_and_options_and_returns_the_map(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_client *sc;
    const char *to[] = {"w1", "w2"};
    msgpack_object objs[2], params = int_params(objs, 2, (int64_t[]){1, 2});
    daffi_result r;
    outcome o = {0};

    assert_int_equal(daffi_cast_async(c, "add", &params, to, 2, 500, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_true(o.ok);
    check_cast_result(&o.res.obj);
    sc = daffi_connect(s->address, NULL, NULL);
    assert_int_equal(daffi_cast(sc, "add", &params, to, 2, 500, &r, NULL), 0);
    check_cast_result(&r.obj);
    daffi_result_free(&r);
    daffi_close(sc);
    outcome_free(&o);
    daffi_close(c);
}

static void test_cast_to_everyone_without_timeout_sends_an_empty_options_map(void **state)
{
    suite *s = *state;
    daffi_client *sc = daffi_connect(s->address, NULL, NULL);
    daffi_result r;
    const msgpack_object *sent;

    assert_int_equal(daffi_cast(sc, "ping_all", NULL, NULL, 0, 0, &r, NULL), 0);
    sent = daffi_obj_at(daffi_obj_get(&r.obj, "w1"), 1);
    assert_int_equal(daffi_obj_at(sent, 1)->via.array.size, 0);
    assert_int_equal(daffi_obj_at(sent, 2)->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(daffi_obj_at(sent, 2)->via.map.size, 0);
    daffi_result_free(&r);
    daffi_close(sc);
}

static void test_cast_nowait_goes_as_a_daffi_cast_notification(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_client *sc = daffi_connect(s->address, NULL, NULL);
    const char *to[] = {"w1"};
    outcome o = {0};
    daffi_result r;

    assert_int_equal(daffi_cast_nowait_async(c, "add", NULL, to, 1, 0, NULL), 0);
    assert_int_equal(daffi_rpc_async(c, "notified", NULL, CALL_MS, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_int_equal(o.res.obj.via.array.size, 1);
    assert_true(obj_is_str(daffi_obj_at(daffi_obj_at(&o.res.obj, 0), 0), "daffi.cast"));
    assert_int_equal(daffi_cast_nowait(sc, "add", NULL, NULL, 0, 1000, NULL), 0);
    assert_int_equal(daffi_rpc(sc, "notified", NULL, 1000, &r, NULL), 0);
    assert_true(obj_is_str(daffi_obj_at(daffi_obj_at(&r.obj, 0), 0), "daffi.cast"));
    daffi_result_free(&r);
    daffi_close(sc);
    outcome_free(&o);
    daffi_close(c);
}

static void test_wait_for_members_is_true_or_a_timeout_naming_who_is_missing(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_client *sc = daffi_connect(s->address, NULL, NULL);
    const char *present[] = {"w1", "w2"}, *absent[] = {"w1", "w9"};
    daffi_error err = DAFFI_ERROR_INIT;
    outcome o = {0};
    const msgpack_object *missing;

    assert_int_equal(daffi_wait_for_members(sc, present, 2, 500, &err), 0);
    assert_int_equal(daffi_wait_for_members(sc, absent, 2, 500, &err), -1);
    assert_int_equal(err.code, DAFFI_E_TIMEOUT);
    assert_int_equal(err.remote, 1); /* the router's answer, not a local timeout */
    missing = daffi_obj_get(&err.details, "missing");
    assert_true(obj_is_str(daffi_obj_at(missing, 0), "w9"));
    assert_int_equal(daffi_wait_for_members_async(c, present, 2, 500, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_true(o.ok);
    outcome_free(&o);
    assert_int_equal(daffi_wait_for_members_async(c, absent, 2, 500, collect, &o, NULL), 0);
    assert_true(run_until(s->base, &o.done, 1, WAIT_MS));
    assert_int_equal(o.err.code, DAFFI_E_TIMEOUT);
    assert_true(obj_is_str(daffi_obj_at(daffi_obj_get(&o.err.details, "missing"), 0), "w9"));
    outcome_free(&o);
    daffi_error_clear(&err);
    daffi_close(sc);
    daffi_close(c);
}

/* Records membership events. */
typedef struct events {
    int n;
    char text[4][64];
} events;

static void on_event(daffi_client *c, const char *type, const char *member,
                     const msgpack_object *event, void *arg)
{
    events *ev = arg;

    (void)c;
    (void)event;
    if (ev->n < 4)
        snprintf(ev->text[ev->n], sizeof(ev->text[0]), "%s %s", type, member);
    ev->n++;
}

static void test_subscription_delivers_membership_events(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    events ev = {0};
    outcome done = {0};
    daffi_client_stats st;

    assert_int_equal(daffi_subscribe_members_async(c, on_event, &ev, CALL_MS, collect, &done,
                                                   NULL), 0);
    done.returned = 1;
    assert_true(run_until(s->base, &ev.n, 2, WAIT_MS));
    assert_int_equal(done.done, 1);
    assert_true(done.ok);
    assert_string_equal(ev.text[0], "joined w3");
    assert_string_equal(ev.text[1], "left w1");
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.events, 2);
    outcome_free(&done);
    daffi_close(c);
}

static void test_subscription_is_renewed_after_a_reconnect(void **state)
{
    suite *s = *state;
    daffi_client_opts opts = {0};
    daffi_client *c;
    states st = {0};
    events ev = {0};

    opts.reconnect_ms = 20;
    c = new_client(s, &opts);
    daffi_client_on_state(c, on_state, &st);
    assert_int_equal(daffi_subscribe_members_async(c, on_event, &ev, 1000, NULL, NULL, NULL),
                     0);
    assert_true(run_until(s->base, &ev.n, 2, WAIT_MS));
    responder_stop(s);
    assert_true(run_until(s->base, &st.down, 1, WAIT_MS));
    assert_int_equal(responder_start(s), 0);
    assert_true(run_until(s->base, &ev.n, 4, WAIT_MS)); /* the new connection's events */
    daffi_close(c);
}

/* ==== the synchronous client's reconnect ============================================== */

static void test_sync_client_with_reconnect_reconnects_inside_the_next_call(void **state)
{
    suite *s = *state;
    daffi_client_opts opts = {0};
    daffi_client *sc;
    msgpack_object objs[2], params = int_params(objs, 2, (int64_t[]){5, 6});
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result r;
    daffi_client_stats st;
    int64_t v;

    opts.reconnect_ms = 20;
    sc = daffi_connect(s->address, &opts, &err);
    assert_non_null(sc);
    assert_int_equal(daffi_rpc(sc, "add", &params, 1000, &r, &err), 0);
    daffi_result_free(&r);
    responder_stop(s);
    /* down, and nothing to reconnect to within 100 ms: UNAVAILABLE at the timeout */
    assert_int_equal(daffi_rpc(sc, "add", &params, 100, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_true(err.elapsed_ms <= 300);
    assert_int_equal(responder_start(s), 0);
    /* back: the next call reconnects first and succeeds */
    assert_int_equal(daffi_rpc(sc, "add", &params, 2000, &r, &err), 0);
    assert_int_equal(daffi_obj_int(&r.obj, &v), 0);
    assert_int_equal(v, 11);
    daffi_result_free(&r);
    daffi_client_stats_get(sc, &st);
    assert_int_equal(st.connects, 2);
    daffi_error_clear(&err);
    daffi_close(sc);
}

static void test_sync_router_calls_on_an_async_client_are_bad_args(void **state)
{
    suite *s = *state;
    daffi_client *c = new_client(s, NULL);
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_members(c, 100, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_cast(c, "x", NULL, NULL, 0, 100, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    daffi_error_clear(&err);
    daffi_close(c);
}

/* ==== the reconnect schedule ========================================================== */

static void test_backoff_retries_at_once_then_doubles_with_jitter_up_to_the_cap(void **state)
{
    daffi__backoff b = {100, 1000, 0, 0x1234567u};
    int d[8], i;

    (void)state;
    for (i = 0; i < 8; i++)
        d[i] = daffi__backoff_next(&b);
    assert_int_equal(d[0], 0);                         /* a restart is often quick */
    assert_in_range(d[1], 100, 125);                   /* min, + up to 25% */
    assert_in_range(d[2], 200, 250);
    assert_in_range(d[3], 400, 500);
    assert_in_range(d[4], 800, 1000);
    for (i = 5; i < 8; i++)
        assert_in_range(d[i], 1000, 1250);             /* capped */
    daffi__backoff_reset(&b);
    assert_int_equal(daffi__backoff_next(&b), 0);      /* connected: at once again */
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_retries_at_once_then_doubles_with_jitter_up_to_the_cap),
        T(test_rpc_async_delivers_the_result_to_its_callback),
        T(test_callback_never_runs_inside_the_starting_call),
        T(test_calls_made_before_the_connection_is_up_are_sent_once_it_is),
        T(test_peer_error_reaches_the_callback_with_code_message_and_details),
        T(test_timeout_fails_that_call_reports_elapsed_and_discards_the_late_reply),
        T(test_thousand_concurrent_calls_on_one_connection_each_get_their_reply),
        T(test_notifications_are_sent_in_order_without_reply),
        T(test_ping_async_answers_pong),
        T(test_wrong_kind_of_client_and_bad_arguments_are_bad_args),
        T(test_connect_to_a_missing_socket_without_reconnect_fails_at_once),
        T(test_drop_fails_every_call_in_flight_at_once_with_unavailable),
        T(test_reconnects_after_the_peer_comes_back_and_the_next_call_succeeds),
        T(test_call_made_while_disconnected_waits_for_the_reconnect),
        T(test_call_made_while_disconnected_fails_unavailable_at_its_timeout),
        T(test_close_completes_pending_calls_with_unavailable),
        T(test_closing_the_client_inside_its_own_callback_is_safe),
        T(test_exposed_callback_is_served_when_the_peer_calls_it),
        T(test_exposed_callback_may_complete_later_from_the_loop),
        T(test_a_method_the_client_does_not_expose_is_answered_no_callback),
        T(test_an_async_call_with_a_timeout_carries_it_as_daffi_call),
        T(test_a_malformed_message_fails_the_calls_in_flight_with_protocol),
        T(test_a_call_that_waited_for_the_connection_carries_what_is_left),
        T(test_an_exposed_callback_is_served_through_daffi_call),
        T(test_expose_refuses_reserved_duplicate_unnamed_and_blocking_callbacks),
        T(test_hello_announces_the_name_and_callbacks_and_its_answer_is_passed_on),
        T(test_hello_is_repeated_on_every_new_connection),
        T(test_members_returns_the_member_list),
        T(test_cast_sends_callback_params_and_options_and_returns_the_map),
        T(test_cast_to_everyone_without_timeout_sends_an_empty_options_map),
        T(test_cast_nowait_goes_as_a_daffi_cast_notification),
        T(test_wait_for_members_is_true_or_a_timeout_naming_who_is_missing),
        T(test_subscription_delivers_membership_events),
        T(test_subscription_is_renewed_after_a_reconnect),
        T(test_sync_client_with_reconnect_reconnects_inside_the_next_call),
        T(test_sync_router_calls_on_an_async_client_are_bad_args),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
