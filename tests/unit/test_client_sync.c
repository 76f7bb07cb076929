/*
 * test_client_sync.c - the synchronous client (sdk/src/client_sync.c) as a
 * specification, against a real peer: the test forks a small MessagePack-RPC
 * responder on a Unix socket in /tmp, written here with the codec, whose methods
 * misbehave on purpose (late, out of order, errors, closing mid-call, oversize or
 * malformed replies, requests sent back to the client).
 */
#include <errno.h>
#include <poll.h>
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

#include <netinet/in.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/client.h>
#include <daffi/rpc.h>

#include "responder.h" /* fork, accept loop, params builders */

/* ==== the responder (runs in the forked child; no cmocka in here) ================= */

/* One connection's state in the responder. */
typedef struct peer {
    int fd;
    char *buf;
    size_t len, cap;
    msgpack_sbuffer out;          /* replies of the current message */
    msgpack_packer pk;
    msgpack_sbuffer notes;        /* [method, params] of each notification received */
    uint32_t nnotes;
    int holding;                  /* a "hold" request waits for the next request */
    uint32_t held_msgid;
    const char *cur;              /* the request being answered, as it arrived */
    size_t cur_len;
    uint64_t timeout_ms;          /* the timeout_ms it carried (daffi.call), 0: none */
} peer;

/* Sends what p->out holds and empties it. Returns 0, or -1 (client gone). */
static int flush_out(peer *p)
{
    int rc = write_all(p->fd, p->out.data, p->out.size);

    p->out.size = 0;
    return rc;
}

/* Reads one whole message from the client into p->buf (blocking), scanning with the
 * codec. Returns its size, or 0 at EOF / on a malformed message. */
static size_t read_message(peer *p, daffi_scan *s)
{
    daffi_limits lim = {DAFFI_DEFAULT_MAX_MESSAGE, DAFFI_DEFAULT_MAX_DEPTH};
    daffi_scan_result r;
    ssize_t n;

    daffi_scan_init(s);
    for (;;) {
        if (p->len > 0) {
            r = daffi_scan_feed(s, p->buf, p->len, &lim);
            if (r == DAFFI_SCAN_COMPLETE)
                return s->size;
            if (r != DAFFI_SCAN_NEED_MORE)
                return 0;
        }
        if (p->cap - p->len < 65536) {
            p->cap = p->cap ? p->cap * 2 : 131072;
            p->buf = realloc(p->buf, p->cap);
            if (p->buf == NULL)
                die("realloc");
        }
        n = recv(p->fd, p->buf + p->len, p->cap - p->len, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        p->len += (size_t)n;
    }
}

/* Drops the first size bytes of p->buf (the message just handled). */
static void consume(peer *p, size_t size)
{
    memmove(p->buf, p->buf + size, p->len - size);
    p->len -= size;
}

/* Answers one request. Returns 0 to go on, -1 to close the connection. */
static int answer(peer *p, const daffi_msg *m)
{
    char method[64];
    size_t mlen = m->method_len < sizeof(method) - 1 ? m->method_len : sizeof(method) - 1;
    msgpack_packer *pk = &p->pk;
    const msgpack_object *a = m->params;

    memcpy(method, m->method, mlen);
    method[mlen] = '\0';

    if (strcmp(method, "hold") == 0) {
        /* answered only after the next request's reply: out of order */
        p->holding = 1;
        p->held_msgid = m->msgid;
        return 0;
    }
    if (strcmp(method, "request_bytes") == 0) {
        /* the request exactly as it arrived, as bin */
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_bin_with_body(pk, p->cur, p->cur_len);
    } else if (strcmp(method, "add") == 0) {
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_int64(pk, arg_int(m, 0) + arg_int(m, 1));
    } else if (strcmp(method, "echo") == 0) {
        daffi_pack_response_ok(pk, m->msgid);
        if (a->via.array.size > 0)
            msgpack_pack_object(pk, a->via.array.ptr[0]);
        else
            msgpack_pack_nil(pk);
    } else if (strcmp(method, "daffi.ping") == 0) {
        daffi_pack_response_ok(pk, m->msgid);
        daffi_pack_cstr(pk, "pong");
    } else if (strcmp(method, "fail") == 0) {
        daffi_pack_response_error_details(pk, m->msgid, DAFFI_E_HANDLER_ERROR, "boom");
        msgpack_pack_map(pk, 2);
        daffi_pack_cstr(pk, "where");
        daffi_pack_cstr(pk, "fail");
        daffi_pack_cstr(pk, "n");
        msgpack_pack_int(pk, 7);
        daffi_pack_response_error_end(pk);
    } else if (strcmp(method, "fail_plain") == 0) {
        daffi_pack_response_error(pk, m->msgid, DAFFI_E_BAD_ARGS, "wrong type");
    } else if (strcmp(method, "slow") == 0) {
        sleep_ms((int)arg_int(m, 0));
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_object(pk, a->via.array.ptr[1]);
    } else if (strcmp(method, "close") == 0) {
        return -1;
    } else if (strcmp(method, "stray") == 0) {
        /* a response nobody waits for and a notification, then the real reply */
        daffi_pack_response_ok(pk, m->msgid + 1000);
        daffi_pack_cstr(pk, "stray");
        daffi_pack_notify(pk, "daffi.event", 11, 1);
        daffi_pack_cstr(pk, "joined");
        daffi_pack_response_ok(pk, m->msgid);
        daffi_pack_cstr(pk, "ok");
    } else if (strcmp(method, "big") == 0) {
        size_t n = (size_t)arg_int(m, 0);
        char *s = malloc(n);

        if (s == NULL)
            die("malloc");
        memset(s, 'x', n);
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_str_with_body(pk, s, n);
        free(s);
    } else if (strcmp(method, "garbage") == 0) {
        msgpack_sbuffer_write(&p->out, "\xc1\xc1\xc1", 3);
    } else if (strcmp(method, "bad_error") == 0) {
        /* [1, msgid, ["oops"], nil]: an error array without a code */
        msgpack_pack_array(pk, 4);
        msgpack_pack_int(pk, 1);
        msgpack_pack_uint32(pk, m->msgid);
        msgpack_pack_array(pk, 1);
        daffi_pack_cstr(pk, "oops");
        msgpack_pack_nil(pk);
    } else if (strcmp(method, "notified") == 0) {
        daffi_pack_response_ok(pk, m->msgid);
        msgpack_pack_array(pk, p->nnotes);
        if (p->notes.size > 0)
            msgpack_sbuffer_write(&p->out, p->notes.data, p->notes.size);
    } else {
        daffi_pack_response_error(pk, m->msgid, DAFFI_E_NO_CALLBACK, "no such callback");
    }
    if (p->holding) {
        p->holding = 0;
        daffi_pack_response_ok(pk, p->held_msgid);
        daffi_pack_cstr(pk, "held");
    }
    return flush_out(p);
}

/* "ask_back": sends the client a request, waits for its answer, and replies to the
 * original call with the [code, message] of the client's error (or "answered"). */
static int ask_back(peer *p, uint32_t msgid)
{
    msgpack_zone zone;
    daffi_scan s;
    daffi_msg r;
    size_t size;
    int code = 0;
    const char *text = "";
    size_t text_len = 0;
    const msgpack_object *details;

    daffi_pack_request(&p->pk, 77, "client.callback", 15, 0);
    if (flush_out(p) == -1 || (size = read_message(p, &s)) == 0)
        return -1;
    msgpack_zone_init(&zone, 1024);
    if (daffi_msg_decode(p->buf, size, &zone, &r) == 0 && r.kind == DAFFI_MSG_RESPONSE &&
        r.msgid == 77 && r.error->type != MSGPACK_OBJECT_NIL)
        daffi_error_parse(r.error, &code, &text, &text_len, &details);
    daffi_pack_response_ok(&p->pk, msgid);
    msgpack_pack_array(&p->pk, 2);
    msgpack_pack_int(&p->pk, code);
    msgpack_pack_str_with_body(&p->pk, text, text_len);
    msgpack_zone_destroy(&zone);
    consume(p, size);
    return flush_out(p);
}

/* Serves one connection until the client closes it or a method says to close. */
static void serve(int fd)
{
    peer p;
    daffi_scan s;
    daffi_msg m;
    msgpack_zone zone;
    msgpack_packer npk;
    size_t size;
    int rc = 0;

    memset(&p, 0, sizeof(p));
    p.fd = fd;
    msgpack_sbuffer_init(&p.out);
    msgpack_sbuffer_init(&p.notes);
    msgpack_packer_init(&p.pk, &p.out, msgpack_sbuffer_write);
    msgpack_packer_init(&npk, &p.notes, msgpack_sbuffer_write);
    msgpack_zone_init(&zone, 4096);
    while (rc == 0 && (size = read_message(&p, &s)) != 0) {
        if (daffi_msg_decode(p.buf, size, &zone, &m) == -1)
            break;
        p.cur = p.buf;
        p.cur_len = size;
        if (m.kind != DAFFI_MSG_RESPONSE)
            unwrap_daffi_call(&m, &p.timeout_ms);
        if (m.kind == DAFFI_MSG_NOTIFY) {
            msgpack_pack_array(&npk, 2);
            msgpack_pack_str_with_body(&npk, m.method, m.method_len);
            msgpack_pack_object(&npk, *m.params);
            p.nnotes++;
        } else if (m.kind == DAFFI_MSG_REQUEST && m.method_len == 8 &&
                   memcmp(m.method, "ask_back", 8) == 0) {
            uint32_t id = m.msgid;

            consume(&p, size);
            msgpack_zone_clear(&zone);
            rc = ask_back(&p, id);
            continue;
        } else if (m.kind == DAFFI_MSG_REQUEST) {
            rc = answer(&p, &m);
        }
        consume(&p, size);
        msgpack_zone_clear(&zone);
    }
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&p.out);
    msgpack_sbuffer_destroy(&p.notes);
    free(p.buf);
    close(fd);
}

/* ==== the tests ===================================================================== */

typedef struct suite {
    pid_t pid;
    char path[108];
    char address[128];
} suite;

static int suite_setup(void **state)
{
    suite *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "/tmp/daffi-test-client-%ld.sock", (long)getpid());
    snprintf(s->address, sizeof(s->address), "unix://%s", s->path);
    s->pid = responder_spawn(s->path, 16, serve);
    if (s->pid == -1) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int suite_teardown(void **state)
{
    suite *s = *state;

    kill(-s->pid, SIGTERM); /* the responder and its connection children */
    waitpid(s->pid, NULL, 0);
    unlink(s->path);
    free(s);
    return 0;
}

/* Connects to the responder with default options, asserting success. */
static daffi_client *connect_ok(const suite *s, const daffi_client_opts *opts)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c = daffi_connect(s->address, opts, &err);

    if (c == NULL)
        fail_msg("connect %s: %s", s->address, err.message);
    assert_int_equal(err.code, DAFFI_OK);
    return c;
}

/* A params array [str] (the string is referenced, not copied). */
static msgpack_object str_params(msgpack_object *one, const char *p, size_t len)
{
    set_str(one, p, len);
    return array_params(one, 1);
}

static void assert_result_str(const daffi_result *r, const char *s)
{
    const char *p;
    size_t len;

    assert_int_equal(daffi_obj_str(&r->obj, &p, &len), 0);
    assert_int_equal(len, strlen(s));
    assert_memory_equal(p, s, len);
}

static void test_call_returns_the_decoded_result(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_object objs[2], params = int_params(objs, 2, (int64_t[]){2, 40});
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    int64_t v;

    assert_int_equal(daffi_rpc(c, "add", &params, 1000, &r, &err), 0);
    assert_int_equal(daffi_obj_int(&r.obj, &v), 0);
    assert_int_equal(v, 42);
    /* raw holds the result's exact encoding: positive fixint 42 */
    assert_int_equal(r.raw_len, 1);
    assert_int_equal((unsigned char)r.raw[0], 42);
    assert_int_equal(err.code, DAFFI_OK);
    daffi_result_free(&r);
    daffi_close(c);
}

static void test_call_with_encoded_params_returns_the_result(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    daffi_result r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, "hi", 2);
    assert_int_equal(daffi_rpc_raw(c, "echo", sb.data, sb.size, 1000, &r, NULL), 0);
    assert_result_str(&r, "hi");
    daffi_result_free(&r);
    msgpack_sbuffer_destroy(&sb);
    daffi_close(c);
}

static void test_result_may_be_discarded(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_rpc(c, "echo", NULL, 1000, NULL, &err), 0);
    assert_int_equal(daffi_rpc(c, "fail", NULL, 1000, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_HANDLER_ERROR);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_nested_result_is_read_with_the_helpers(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    daffi_result r;
    const msgpack_object *list;
    int64_t v;
    const char *p;
    size_t len;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "list", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, -9);
    msgpack_pack_bin_with_body(&pk, "\x00\x01", 2);
    assert_int_equal(daffi_rpc_raw(c, "echo", sb.data, sb.size, 1000, &r, NULL), 0);
    list = daffi_obj_get(&r.obj, "list");
    assert_non_null(list);
    assert_null(daffi_obj_get(&r.obj, "missing"));
    assert_int_equal(daffi_obj_int(daffi_obj_at(list, 0), &v), 0);
    assert_int_equal(v, -9);
    assert_int_equal(daffi_obj_bin(daffi_obj_at(list, 1), &p, &len), 0);
    assert_int_equal(len, 2);
    assert_null(daffi_obj_at(list, 2));
    daffi_result_free(&r);
    msgpack_sbuffer_destroy(&sb);
    daffi_close(c);
}

static void test_peer_error_carries_code_name_message_and_details(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    const char *p;
    size_t len;
    int64_t n;

    assert_int_equal(daffi_rpc(c, "fail", NULL, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_HANDLER_ERROR);
    assert_string_equal(err.name, "HANDLER_ERROR");
    assert_string_equal(err.message, "boom");
    assert_int_equal(err.remote, 1);
    assert_int_equal(err.details.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(daffi_obj_str(daffi_obj_get(&err.details, "where"), &p, &len), 0);
    assert_memory_equal(p, "fail", 4);
    assert_int_equal(daffi_obj_int(daffi_obj_get(&err.details, "n"), &n), 0);
    assert_int_equal(n, 7);
    assert_null(r.zone); /* a failed call leaves the result empty */
    daffi_result_free(&r);
    daffi_close(c); /* the error's details outlive the client */
    assert_int_equal(err.details.type, MSGPACK_OBJECT_MAP);
    daffi_error_clear(&err);
    assert_int_equal(err.code, DAFFI_OK);
    assert_null(err.message);
}

static void test_peer_error_without_details_has_nil_details(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_rpc(c, "fail_plain", NULL, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_string_equal(err.name, "BAD_ARGS");
    assert_string_equal(err.message, "wrong type");
    assert_int_equal(err.details.type, MSGPACK_OBJECT_NIL);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_one_error_struct_is_reused_across_calls(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_rpc(c, "fail", NULL, 1000, &r, &err), -1);
    assert_int_equal(daffi_rpc(c, "fail_plain", NULL, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(err.details.type, MSGPACK_OBJECT_NIL);
    /* a success clears what the error held */
    assert_int_equal(daffi_rpc(c, "echo", NULL, 1000, &r, &err), 0);
    assert_int_equal(err.code, DAFFI_OK);
    assert_null(err.message);
    daffi_result_free(&r);
    daffi_close(c);
}

static void test_timeout_reports_elapsed_and_discards_the_late_reply(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_object one[2], params;
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;

    /* 400 ms: far from the 50 ms timeout, even on a loaded machine */
    params = slow_params(one, 400, "late");
    assert_int_equal(daffi_rpc(c, "slow", &params, 50, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_TIMEOUT);
    assert_string_equal(err.name, "TIMEOUT");
    assert_int_equal(err.remote, 0);
    assert_true(err.elapsed_ms >= 50);
    assert_true(err.elapsed_ms < 350);
    assert_non_null(strstr(err.message, "50 ms"));
    assert_true(daffi_client_connected(c));

    /* the next call gets its own reply, not the late "late" */
    params = str_params(one, "next", 4);
    assert_int_equal(daffi_rpc(c, "echo", &params, 2000, &r, &err), 0);
    assert_result_str(&r, "next");
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.late_replies, 1);
    daffi_close(c);
}

static void test_out_of_order_replies_are_matched_by_msgid(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_object objs[2], params = int_params(objs, 2, (int64_t[]){1, 2});
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;
    int64_t v;

    /* the responder holds "hold" until the next request, then answers that first */
    assert_int_equal(daffi_rpc(c, "hold", NULL, 30, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_TIMEOUT);
    assert_int_equal(daffi_rpc(c, "add", &params, 1000, &r, &err), 0);
    assert_int_equal(daffi_obj_int(&r.obj, &v), 0);
    assert_int_equal(v, 3);
    daffi_result_free(&r);
    params = str_params(objs, "third", 5);
    assert_int_equal(daffi_rpc(c, "echo", &params, 1000, &r, &err), 0);
    assert_result_str(&r, "third");
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.late_replies, 1); /* "held", after the reply to add */
    daffi_close(c);
}

static void test_stray_responses_and_notifications_are_skipped(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_client_stats st;

    assert_int_equal(daffi_rpc(c, "stray", NULL, 1000, &r, NULL), 0);
    assert_result_str(&r, "ok");
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.late_replies, 1);
    assert_int_equal(st.notifications_ignored, 1);
    daffi_close(c);
}

static void test_request_from_the_peer_is_answered_no_callback(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_client_stats st;
    int64_t code;

    /* the responder calls the client back and returns the [code, message] it got */
    assert_int_equal(daffi_rpc(c, "ask_back", NULL, 1000, &r, NULL), 0);
    assert_int_equal(daffi_obj_int(daffi_obj_at(&r.obj, 0), &code), 0);
    assert_int_equal(code, DAFFI_E_NO_CALLBACK);
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.requests_refused, 1);
    daffi_close(c);
}

static void test_peer_closing_mid_call_is_unavailable_without_hanging(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    int64_t t0 = mono_ms();

    alarm(5); /* a hang fails the run instead of blocking it */
    assert_int_equal(daffi_rpc(c, "close", NULL, 0, &r, &err), -1); /* 0: no timeout */
    alarm(0);
    assert_true(mono_ms() - t0 < 1000);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "closed by peer"));
    assert_false(daffi_client_connected(c));
    /* later calls fail at once, saying why */
    assert_int_equal(daffi_rpc(c, "echo", NULL, 0, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "not connected"));
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_connect_to_a_missing_socket_is_unavailable(void **state)
{
    daffi_error err = DAFFI_ERROR_INIT;

    (void)state;
    assert_null(daffi_connect("unix:///tmp/daffi-test-no-such.sock", NULL, &err));
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "/tmp/daffi-test-no-such.sock"));
    assert_non_null(strstr(err.message, "No such file"));
    daffi_error_clear(&err);
}

static void test_connect_to_a_closed_tcp_port_is_unavailable(void **state)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    daffi_error err = DAFFI_ERROR_INIT;
    char address[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    /* a port that was just free: bind to port 0, note it, close */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    snprintf(address, sizeof(address), "tcp://127.0.0.1:%d", ntohs(sin.sin_port));
    assert_null(daffi_connect(address, NULL, &err));
    assert_int_equal(err.code, DAFFI_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "refused"));
    daffi_error_clear(&err);
}

static void test_bad_address_is_bad_args(void **state)
{
    daffi_error err = DAFFI_ERROR_INIT;

    (void)state;
    assert_null(daffi_connect("http://example.com", NULL, &err));
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "http://example.com"));
    daffi_error_clear(&err);
}

static void test_oversize_reply_is_too_large_and_closes_the_connection(void **state)
{
    daffi_client_opts opts = {0};
    daffi_client *c;
    msgpack_object objs[1], params = int_params(objs, 1, (int64_t[]){4096});
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;

    opts.max_message = 1024;
    c = connect_ok(*state, &opts);
    assert_int_equal(daffi_rpc(c, "big", &params, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_TOO_LARGE);
    assert_false(daffi_client_connected(c));
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_oversize_request_is_refused_before_sending(void **state)
{
    daffi_client_opts opts = {0};
    daffi_client *c;
    msgpack_object one, params;
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    char big[2000];

    memset(big, 'y', sizeof(big));
    opts.max_message = 1024;
    c = connect_ok(*state, &opts);
    params = str_params(&one, big, sizeof(big));
    assert_int_equal(daffi_rpc(c, "echo", &params, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_TOO_LARGE);
    assert_non_null(strstr(err.message, "max_message"));
    /* nothing was sent: the connection goes on */
    params = str_params(&one, "small", 5);
    assert_int_equal(daffi_rpc(c, "echo", &params, 1000, &r, &err), 0);
    assert_result_str(&r, "small");
    daffi_result_free(&r);
    daffi_close(c);
}

static void test_malformed_reply_is_a_protocol_error(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_rpc(c, "garbage", NULL, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_PROTOCOL);
    assert_false(daffi_client_connected(c));
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_malformed_error_array_is_protocol_and_connection_survives(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_rpc(c, "bad_error", NULL, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_PROTOCOL);
    assert_non_null(strstr(err.message, "bad_error"));
    assert_true(daffi_client_connected(c));
    assert_int_equal(daffi_ping(c, 1000, NULL, &err), 0);
    daffi_close(c);
}

static void test_megabyte_params_and_result_round_trip(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    size_t n = 1024 * 1024, i;
    char *big = malloc(n);
    msgpack_object one, params;
    daffi_result r;
    const char *p;
    size_t len;

    assert_non_null(big);
    for (i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    one.type = MSGPACK_OBJECT_BIN;
    one.via.bin.ptr = big;
    one.via.bin.size = (uint32_t)n;
    params = array_params(&one, 1);
    assert_int_equal(daffi_rpc(c, "echo", &params, 2000, &r, NULL), 0);
    assert_int_equal(daffi_obj_bin(&r.obj, &p, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(p, big, n);
    daffi_result_free(&r);
    free(big);
    daffi_close(c);
}

/* ---- deadlines travel with the call ------------------------------------------------ */

/* What a call sent, as the responder's request_bytes saw it: decoded into *m (objects
 * from zone, pointing into the result r, which the caller frees). */
static void sent_request(daffi_client *c, const daffi_rpc_opts *opts, daffi_result *r,
                         msgpack_zone *zone, daffi_msg *m)
{
    daffi_error err = DAFFI_ERROR_INIT;
    const char *p;
    size_t len;

    if (daffi_rpc_with(c, "request_bytes", NULL, opts, r, &err) == -1)
        fail_msg("request_bytes: %s", err.message);
    assert_int_equal(daffi_obj_bin(&r->obj, &p, &len), 0);
    msgpack_zone_init(zone, 1024);
    assert_int_equal(daffi_msg_decode(p, len, zone, m), 0);
}

static int text_is(const msgpack_object *o, const char *s)
{
    const char *p;
    size_t len;

    return o != NULL && daffi_obj_text(o, &p, &len) == 0 && len == strlen(s) &&
           memcmp(p, s, len) == 0;
}

/* The bytes a server gets: daffi.call [callback, params, {"timeout_ms": T}], T what is
 * left of the timeout (at most the timeout, a uint32), so it can stop waiting when the
 * caller does. */
static void test_a_call_with_a_timeout_carries_it_as_daffi_call(void **state)
{
    static const char tail[] = "\x93\xadrequest_bytes\x90\x81\xaatimeout_ms\xce";
    daffi_client *c = connect_ok(*state, NULL);
    daffi_rpc_opts o = {NULL, 1500};
    msgpack_zone zone;
    daffi_result r;
    daffi_msg m;
    uint64_t t;
    const char *p;
    size_t len;

    sent_request(c, &o, &r, &zone, &m);
    assert_int_equal(m.kind, DAFFI_MSG_REQUEST);
    assert_int_equal(m.method_len, 10);
    assert_memory_equal(m.method, "daffi.call", 10);
    assert_true(text_is(daffi_obj_at(m.params, 0), "request_bytes"));
    assert_int_equal(daffi_obj_at(m.params, 1)->via.array.size, 0);
    assert_int_equal(daffi_obj_uint(daffi_obj_get(daffi_obj_at(m.params, 2), "timeout_ms"), &t),
                     0);
    assert_true(t <= 1500 && t > 1000);
    /* byte for byte: params [callback, [], {"timeout_ms": uint32}] */
    assert_int_equal(daffi_obj_bin(&r.obj, &p, &len), 0);
    assert_true(len > sizeof(tail) - 1 + 4);
    assert_memory_equal(p + len - 4 - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    msgpack_zone_destroy(&zone);
    daffi_result_free(&r);
    daffi_close(c);
}

/* No timeout and no member, or a daffi.* method: the plain request. */
static void test_a_call_without_a_timeout_goes_out_plain(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_zone zone;
    daffi_result r;
    daffi_msg m;

    sent_request(c, NULL, &r, &zone, &m);
    assert_int_equal(m.method_len, 13);
    assert_memory_equal(m.method, "request_bytes", 13);
    assert_int_equal(m.params->via.array.size, 0);
    msgpack_zone_destroy(&zone);
    daffi_result_free(&r);
    /* daffi.ping with a timeout stays daffi.ping (the responder knows no daffi.call) */
    assert_int_equal(daffi_ping(c, 1000, NULL, NULL), 0);
    daffi_close(c);
}

/* local_timeouts: for a peer that knows no daffi.call, the timeout stays here. */
static void test_local_timeouts_send_calls_with_a_timeout_plain(void **state)
{
    daffi_client_opts opts = {0};
    daffi_rpc_opts o = {NULL, 1500};
    daffi_client *c;
    msgpack_zone zone;
    daffi_result r;
    daffi_msg m;

    opts.local_timeouts = 1;
    c = connect_ok(*state, &opts);
    sent_request(c, &o, &r, &zone, &m);
    assert_int_equal(m.method_len, 13);
    assert_memory_equal(m.method, "request_bytes", 13);
    msgpack_zone_destroy(&zone);
    daffi_result_free(&r);
    daffi_close(c);
}

/* A call to a named member carries "to" (and its timeout, when it has one). */
static void test_a_call_to_a_named_member_carries_to(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_rpc_opts o = {"w1", 0};
    const msgpack_object *opts;
    msgpack_zone zone;
    daffi_result r;
    daffi_msg m;

    sent_request(c, &o, &r, &zone, &m);
    assert_memory_equal(m.method, "daffi.call", 10);
    opts = daffi_obj_at(m.params, 2);
    assert_int_equal(opts->via.map.size, 1);
    assert_true(text_is(daffi_obj_get(opts, "to"), "w1"));
    msgpack_zone_destroy(&zone);
    daffi_result_free(&r);
    o.timeout_ms = 700;
    sent_request(c, &o, &r, &zone, &m);
    opts = daffi_obj_at(m.params, 2);
    assert_int_equal(opts->via.map.size, 2);
    assert_true(text_is(daffi_obj_get(opts, "to"), "w1"));
    assert_non_null(daffi_obj_get(opts, "timeout_ms"));
    msgpack_zone_destroy(&zone);
    daffi_result_free(&r);
    daffi_close(c);
}

/* A daffi.* method cannot go to a member (daffi.call refuses them), nor can a call go
 * to a member without a name: BAD_ARGS, nothing sent. */
static void test_to_with_a_daffi_method_or_an_empty_name_is_bad_args(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_rpc_opts o = {"w1", 0};
    daffi_client_stats st;

    assert_int_equal(daffi_rpc_with(c, "daffi.members", NULL, &o, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_non_null(strstr(err.message, "cannot be sent to a member"));
    o.to = "";
    assert_int_equal(daffi_rpc_raw_with(c, "add", "\x90", 1, &o, NULL, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.calls, 0);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_notifications_arrive_in_order_without_reply(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_object objs[1], params;
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;
    const msgpack_object *note;
    int64_t v;

    params = int_params(objs, 1, (int64_t[]){1});
    assert_int_equal(daffi_notify(c, "note", &params, 1000, &err), 0);
    params = int_params(objs, 1, (int64_t[]){2});
    assert_int_equal(daffi_notify(c, "note", &params, 1000, &err), 0);
    assert_int_equal(daffi_rpc(c, "notified", NULL, 1000, &r, &err), 0);
    assert_int_equal(r.obj.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(r.obj.via.array.size, 2);
    note = daffi_obj_at(&r.obj, 1);
    assert_int_equal(daffi_obj_int(daffi_obj_at(daffi_obj_at(note, 1), 0), &v), 0);
    assert_int_equal(v, 2);
    daffi_result_free(&r);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.notifications, 2);
    assert_int_equal(st.late_replies, 0);
    daffi_close(c);
}

static void test_ping_answers_pong_with_a_round_trip_time(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_error err = DAFFI_ERROR_INIT;
    int64_t rtt = -1;

    assert_int_equal(daffi_ping(c, 1000, &rtt, &err), 0);
    assert_true(rtt >= 0 && rtt < 1000000);
    daffi_close(c);
}

static void test_unknown_method_is_the_peers_no_callback(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;

    assert_int_equal(daffi_rpc(c, "nope", NULL, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_NO_CALLBACK);
    assert_int_equal(err.remote, 1);
    daffi_error_clear(&err);
    daffi_close(c);
}

static void test_bad_call_arguments_are_bad_args_and_send_nothing(void **state)
{
    daffi_client *c = connect_ok(*state, NULL);
    msgpack_object notarray;
    daffi_result r;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client_stats st;

    notarray.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    notarray.via.u64 = 1;
    assert_int_equal(daffi_rpc(c, "echo", &notarray, 1000, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_rpc(c, "echo", NULL, -1, &r, &err), -1);
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_rpc_raw(c, "echo", "\x01", 1, 1000, &r, &err), -1); /* not an array */
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    assert_int_equal(daffi_rpc_raw(c, "echo", "\x92\x01", 2, 1000, &r, &err), -1); /* truncated */
    assert_int_equal(err.code, DAFFI_E_BAD_ARGS);
    daffi_client_stats_get(c, &st);
    assert_int_equal(st.bytes_out, 0);
    assert_int_equal(daffi_ping(c, 1000, NULL, &err), 0);
    daffi_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_returns_the_decoded_result),
        cmocka_unit_test(test_call_with_encoded_params_returns_the_result),
        cmocka_unit_test(test_result_may_be_discarded),
        cmocka_unit_test(test_nested_result_is_read_with_the_helpers),
        cmocka_unit_test(test_peer_error_carries_code_name_message_and_details),
        cmocka_unit_test(test_peer_error_without_details_has_nil_details),
        cmocka_unit_test(test_one_error_struct_is_reused_across_calls),
        cmocka_unit_test(test_timeout_reports_elapsed_and_discards_the_late_reply),
        cmocka_unit_test(test_out_of_order_replies_are_matched_by_msgid),
        cmocka_unit_test(test_stray_responses_and_notifications_are_skipped),
        cmocka_unit_test(test_request_from_the_peer_is_answered_no_callback),
        cmocka_unit_test(test_peer_closing_mid_call_is_unavailable_without_hanging),
        cmocka_unit_test(test_connect_to_a_missing_socket_is_unavailable),
        cmocka_unit_test(test_connect_to_a_closed_tcp_port_is_unavailable),
        cmocka_unit_test(test_bad_address_is_bad_args),
        cmocka_unit_test(test_oversize_reply_is_too_large_and_closes_the_connection),
        cmocka_unit_test(test_oversize_request_is_refused_before_sending),
        cmocka_unit_test(test_malformed_reply_is_a_protocol_error),
        cmocka_unit_test(test_malformed_error_array_is_protocol_and_connection_survives),
        cmocka_unit_test(test_megabyte_params_and_result_round_trip),
        cmocka_unit_test(test_notifications_arrive_in_order_without_reply),
        cmocka_unit_test(test_a_call_with_a_timeout_carries_it_as_daffi_call),
        cmocka_unit_test(test_a_call_without_a_timeout_goes_out_plain),
        cmocka_unit_test(test_local_timeouts_send_calls_with_a_timeout_plain),
        cmocka_unit_test(test_a_call_to_a_named_member_carries_to),
        cmocka_unit_test(test_to_with_a_daffi_method_or_an_empty_name_is_bad_args),
        cmocka_unit_test(test_ping_answers_pong_with_a_round_trip_time),
        cmocka_unit_test(test_unknown_method_is_the_peers_no_callback),
        cmocka_unit_test(test_bad_call_arguments_are_bad_args_and_send_nothing),
    };

    return cmocka_run_group_tests_name("sync client", tests, suite_setup, suite_teardown);
}
