/*
 * expect.c - cmocka assertions about daffid's answers (see expect.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "expect.h"

/* See expect.h. */
int64_t expect_now_ms(void)
{
    return expect_now_us() / 1000;
}

/* See expect.h. */
int64_t expect_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* See expect.h. */
int expect_run(char *out, size_t outsz, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    FILE *p;
    size_t n = 0, r;
    int len, st;

    va_start(ap, fmt);
    len = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(cmd))
        fail_msg("command line too long (%d bytes): %.80s...", len, cmd);
    fflush(NULL);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (n + 1 < outsz && (r = fread(out + n, 1, outsz - 1 - n, p)) > 0)
        n += r;
    out[n] = '\0';
    while (fread(cmd, 1, sizeof(cmd), p) > 0)
        ; /* drain what did not fit */
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* See expect.h. Returns EXPECT_TIMEOUT_MS or the larger DAFFI_TEST_TIMEOUT_MS. */
int expect_timeout_ms(void)
{
    const char *env = getenv("DAFFI_TEST_TIMEOUT_MS");
    long v = env ? strtol(env, NULL, 10) : 0;

    return v > EXPECT_TIMEOUT_MS ? (int)v : EXPECT_TIMEOUT_MS;
}

/* See expect.h. buf is the caller's; the text is truncated to size. */
const char *expect_describe(const msgpack_object *o, char *buf, size_t size)
{
    if (o == NULL) {
        snprintf(buf, size, "(none)");
        return buf;
    }
    if (msgpack_object_print_buffer(buf, size, *o) <= 0)
        snprintf(buf, size, "(unprintable)");
    return buf;
}

/* Formats the message held by c for a failure message. */
static const char *describe_msg(const rawconn *c, char *buf, size_t size)
{
    char a[256], b[256];
    const daffi_msg *m = &c->msg;

    switch (m->kind) {
    case DAFFI_MSG_RESPONSE:
        snprintf(buf, size, "response msgid %u error %s result %s", m->msgid,
                 expect_describe(m->error, a, sizeof(a)),
                 expect_describe(m->result, b, sizeof(b)));
        break;
    case DAFFI_MSG_REQUEST:
        snprintf(buf, size, "request msgid %u method %.*s", m->msgid, (int)m->method_len,
                 m->method);
        break;
    case DAFFI_MSG_NOTIFY:
        snprintf(buf, size, "notification %.*s params %s", (int)m->method_len, m->method,
                 expect_describe(m->params, a, sizeof(a)));
        break;
    default:
        snprintf(buf, size, "message of kind %d", (int)m->kind);
    }
    return buf;
}

/* See expect.h. c is the caller's; on failure it is released before failing. */
void expect_open(rawconn *c, const char *address)
{
    if (rawconn_open(c, address, expect_timeout_ms()) == -1) {
        int e = errno;
        rawconn_close(c);
        fail_msg("connect to %s: %s", address, strerror(e));
    }
}

/* See expect.h. m is cleared, its memory kept. */
void expect_send(rawconn *c, rawmsg *m)
{
    size_t n = m->sb.size;

    if (rawconn_send_msg(c, m) == -1)
        fail_msg("%s: sending %zu bytes: %s", c->addr, n, strerror(errno));
}

/* See expect.h. The bytes stay the caller's. */
void expect_send_bytes(rawconn *c, const void *p, size_t n)
{
    if (rawconn_send(c, p, n) == -1)
        fail_msg("%s: sending %zu bytes: %s", c->addr, n, strerror(errno));
}

/* Reads one message or fails the test naming what happened instead. */
static void read_one(rawconn *c)
{
    rawconn_status st = rawconn_read(c, expect_timeout_ms());

    if (st == RAWCONN_OK)
        return;
    if (st == RAWCONN_BAD)
        fail_msg("%s: the server sent bytes the codec rejects: %s", c->addr, c->why);
    if (st == RAWCONN_ERROR)
        fail_msg("%s: read: %s", c->addr, strerror(errno));
    fail_msg("%s: expected a message, got %s", c->addr, rawconn_status_name(st));
}

/* See expect.h. The message stays in c->msg until the next read. */
uint32_t expect_response(rawconn *c)
{
    char d[640];

    read_one(c);
    if (c->msg.kind != DAFFI_MSG_RESPONSE)
        fail_msg("%s: expected a response, got %s", c->addr, describe_msg(c, d, sizeof(d)));
    return c->msg.msgid;
}

/* See expect.h. The result points into c's buffers. */
const msgpack_object *expect_result(rawconn *c, uint32_t msgid)
{
    char d[640];

    read_one(c);
    if (c->msg.kind != DAFFI_MSG_RESPONSE || c->msg.msgid != msgid ||
        c->msg.error == NULL || c->msg.error->type != MSGPACK_OBJECT_NIL)
        fail_msg("%s: expected a result for msgid %u, got %s", c->addr, msgid,
                 describe_msg(c, d, sizeof(d)));
    return c->msg.result;
}

/* See expect.h. Accepts any int encoding holding the value. */
void expect_result_int(rawconn *c, uint32_t msgid, int64_t v)
{
    const msgpack_object *o = expect_result(c, msgid);
    char d[256];
    int ok = 0;

    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        ok = v >= 0 && o->via.u64 == (uint64_t)v;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        ok = o->via.i64 == v;
    if (!ok)
        fail_msg("%s: msgid %u: expected integer %lld, got %s", c->addr, msgid,
                 (long long)v, expect_describe(o, d, sizeof(d)));
}

/* See expect.h. s is NUL-terminated; the str must match byte for byte. */
void expect_result_str(rawconn *c, uint32_t msgid, const char *s)
{
    const msgpack_object *o = expect_result(c, msgid);
    char d[256];

    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != strlen(s) ||
        memcmp(o->via.str.ptr, s, o->via.str.size) != 0)
        fail_msg("%s: msgid %u: expected str \"%s\", got %s", c->addr, msgid, s,
                 expect_describe(o, d, sizeof(d)));
}

/* See expect.h. */
void expect_send_ii(rawconn *c, uint32_t id, const char *method, int64_t a, int64_t b)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, method, 2);
    msgpack_pack_int64(pk, a);
    msgpack_pack_int64(pk, b);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* See expect.h. */
void expect_ping(rawconn *c, uint32_t id)
{
    rawmsg m;

    rawmsg_init(&m);
    rawmsg_request(&m, id, "daffi.ping", 0);
    expect_send(c, &m);
    expect_result_str(c, id, "pong");
    rawmsg_destroy(&m);
}

/* See expect.h. Reads nothing; checks c->msg. */
void check_error(const rawconn *c, uint32_t msgid, int code)
{
    char d[640];
    int got = 0;
    const char *text = NULL;
    size_t text_len = 0;
    const msgpack_object *details = NULL;

    describe_msg(c, d, sizeof(d));
    if (c->msg.kind != DAFFI_MSG_RESPONSE || c->msg.msgid != msgid)
        fail_msg("%s: expected error %s for msgid %u, got %s", c->addr,
                 daffi_error_name(code), msgid, d);
    if (c->msg.error == NULL || c->msg.error->type == MSGPACK_OBJECT_NIL ||
        daffi_error_parse(c->msg.error, &got, &text, &text_len, &details) == -1)
        fail_msg("%s: expected error %s for msgid %u, got %s", c->addr,
                 daffi_error_name(code), msgid, d);
    if (got != code)
        fail_msg("%s: msgid %u: expected error %d %s, got %d %s: %s", c->addr, msgid, code,
                 daffi_error_name(code), got, daffi_error_name(got), d);
    if (text == NULL || text_len == 0)
        fail_msg("%s: msgid %u: error %s carries no message: %s", c->addr, msgid,
                 daffi_error_name(code), d);
    if (c->msg.result == NULL || c->msg.result->type != MSGPACK_OBJECT_NIL)
        fail_msg("%s: msgid %u: an error response must have a nil result: %s", c->addr,
                 msgid, d);
}

/* See expect.h. Reads one message, then check_error(). */
void expect_error(rawconn *c, uint32_t msgid, int code)
{
    read_one(c);
    check_error(c, msgid, code);
}

/* See expect.h. Messages before the close are read and dropped. */
void expect_closed(rawconn *c, unsigned *nmsgs)
{
    unsigned n = 0;
    rawconn_status st = rawconn_wait_eof(c, expect_timeout_ms(), &n);

    if (nmsgs != NULL)
        *nmsgs = n;
    if (st != RAWCONN_EOF)
        fail_msg("%s: expected the server to close the connection, got %s after %u "
                 "message(s)", c->addr, rawconn_status_name(st), n);
}

/* See expect.h. A message or a close within ms fails the test. */
void expect_silence(rawconn *c, int ms)
{
    char d[640];
    rawconn_status st = rawconn_read(c, ms);

    if (st == RAWCONN_TIMEOUT)
        return;
    if (st == RAWCONN_OK)
        fail_msg("%s: expected nothing, got %s", c->addr, describe_msg(c, d, sizeof(d)));
    fail_msg("%s: expected nothing and the connection open, got %s", c->addr,
             rawconn_status_name(st));
}

/* See expect.h. Uses (and closes) a connection of its own. */
void expect_serving(const char *address)
{
    rawconn c;
    rawmsg m;

    rawmsg_init(&m);
    expect_open(&c, address);
    rawmsg_request(&m, 77, "daffi.ping", 0);
    expect_send(&c, &m);
    expect_result_str(&c, 77, "pong");
    rawconn_close(&c);
    rawmsg_destroy(&m);
}

/* See expect.h. args stay the caller's. */
void expect_send_raw_call(rawconn *c, uint32_t id, const char *method, uint32_t nargs,
                          const char *args, size_t len)
{
    rawmsg m;

    rawmsg_init(&m);
    rawmsg_request(&m, id, method, nargs);
    msgpack_sbuffer_write(&m.sb, args, len);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* See expect.h. bytes stay the caller's; the result is read in place in c's buffer. */
void expect_result_bytes(rawconn *c, uint32_t id, const char *what, const char *bytes,
                         size_t len)
{
    const char *p;
    size_t n;

    expect_result(c, id);
    if (rawconn_result_raw(c, &p, &n) == -1)
        fail_msg("%s: %s: cannot locate the result bytes", c->addr, what);
    if (n != len || memcmp(p, bytes, len) != 0) {
        char a[64] = "", b[64] = "";
        for (size_t i = 0; i < len && i < 20; i++)
            snprintf(a + 3 * i, sizeof(a) - 3 * i, "%02x ", (unsigned char)bytes[i]);
        for (size_t i = 0; i < n && i < 20; i++)
            snprintf(b + 3 * i, sizeof(b) - 3 * i, "%02x ", (unsigned char)p[i]);
        fail_msg("%s: %s changed its bytes: sent %zu [%s...], got %zu [%s...]", c->addr,
                 what, len, a, n, b);
    }
}

/* See expect.h. */
void expect_on_both(void **state, expect_body_fn body)
{
    const tdaemon *d = *state;

    body(d->tcp);
    body(d->unix_addr);
}
