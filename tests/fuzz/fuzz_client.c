/*
 * fuzz_client.c - libFuzzer target for the client library's response path: the bytes
 * a server sends become a call's result or error (sdk/src/client_sync.c,
 * client_async*.c, client_result.c, client_serve.c). `make fuzz FUZZ_FILTER=fuzz_client`
 * builds and runs it.
 *
 * Input layout: byte 0 sets max_message (16 + 17 * byte), byte 1 max_depth (1 + byte %
 * 62); the rest is what the server sends, then it closes its side. Each input drives
 * both kinds of client through a real socket: a synchronous client (a socketpair in
 * place of its connection) and an asynchronous one (a Unix listener of this process)
 * each make one call, msgid 1, with no timeout: the server's bytes and their end
 * decide the outcome.
 *
 * Properties checked (abort() on a violation), against an oracle that reads the same
 * bytes with the codec alone (daffi_scan_feed, daffi_msg_decode, daffi_error_parse):
 *   - the outcome is the oracle's: the first response with msgid 1, before any
 *     malformed message, gives the result (its exact bytes in res.raw, the same value
 *     in res.obj), the peer's error (code, message, details), or PROTOCOL for an error
 *     array that is no [code != 0, message(, details)] (the connection stays); a
 *     malformed or oversize message first gives PROTOCOL / TOO_LARGE and closes the
 *     connection; the end of the bytes first gives UNAVAILABLE;
 *   - every message before it (for the asynchronous client, which reads on: every one
 *     up to the end or a malformed one) is counted once: requests answered NO_CALLBACK, other responses as late,
 *     notifications as ignored;
 *   - error messages are NUL-terminated text, a failure's result is zeroed, and
 *     nothing leaks (libFuzzer's leak check).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "fuzz_peer.h"

/* What the oracle expects of the call. */
enum { EXP_RESULT, EXP_REMOTE, EXP_BAD_ERROR, EXP_BROKEN, EXP_EOF };

typedef struct expect {
    int kind;
    int code;                     /* EXP_REMOTE: the peer's; EXP_BROKEN: PROTOCOL/TOO_LARGE */
    const char *msg;              /* the response to msgid 1, in the input */
    size_t msg_len;
    uint64_t requests, late, notes;             /* before that response (sync) */
    uint64_t all_requests, all_late, all_notes; /* in every message read (async) */
} expect;

/* Packs o into sb (cleared) and returns it. */
static msgpack_sbuffer *repack(msgpack_sbuffer *sb, const msgpack_object *o)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *o) != 0)
        abort();
    return sb;
}

/* Aborts unless objects a and b encode the same. */
static void same_value(const msgpack_object *a, const msgpack_object *b)
{
    msgpack_sbuffer x, y;

    msgpack_sbuffer_init(&x);
    msgpack_sbuffer_init(&y);
    repack(&x, a);
    repack(&y, b);
    if (x.size != y.size || memcmp(x.data, y.data, x.size) != 0)
        abort();
    msgpack_sbuffer_destroy(&x);
    msgpack_sbuffer_destroy(&y);
}

/* Reads in (len bytes) as the server's messages, as the client must. */
static void oracle(const char *in, size_t len, const daffi_limits *lim, expect *e)
{
    daffi_scan s;
    size_t off = 0;
    int found = 0;

    memset(e, 0, sizeof(*e));
    e->kind = EXP_EOF;
    for (;;) {
        daffi_scan_init(&s);
        daffi_scan_result r = daffi_scan_feed(&s, in + off, len - off, lim);

        if (r == DAFFI_SCAN_NEED_MORE)
            return; /* the end: EOF unless the answer came */
        if (r != DAFFI_SCAN_COMPLETE) {
            if (!found) {
                e->kind = EXP_BROKEN;
                e->code = r == DAFFI_SCAN_PROTOCOL ? DAFFI_E_PROTOCOL : DAFFI_E_TOO_LARGE;
            }
            return;
        }
        if (s.kind == DAFFI_MSG_RESPONSE && s.msgid == 1 && !found) {
            found = 1;
            e->msg = in + off;
            e->msg_len = s.size;
            e->kind = EXP_RESULT; /* refined by check_outcome() */
        } else if (s.kind == DAFFI_MSG_RESPONSE) {
            e->all_late++;
            e->late += !found;
        } else if (s.kind == DAFFI_MSG_REQUEST) {
            e->all_requests++;
            e->requests += !found;
        } else {
            e->all_notes++;
            e->notes += !found;
        }
        off += s.size;
    }
}

/* Aborts unless the call's outcome (rc, res, err) is what e expects. closed: the
 * client's connection is down after it. */
static void check_outcome(const expect *e, int rc, const daffi_result *res,
                          const daffi_error *err, int closed)
{
    msgpack_zone zone;
    daffi_msg m;
    int code;
    const char *text;
    size_t text_len;
    const msgpack_object *details;

    if (rc == -1 && (err->message == NULL || err->name == NULL || err->code == 0))
        abort();
    if (rc == -1 && res != NULL && (res->zone != NULL || res->bytes != NULL || res->raw != NULL))
        abort();
    if (e->kind == EXP_EOF) {
        if (rc != -1 || err->code != DAFFI_E_UNAVAILABLE || err->remote || !closed)
            abort();
        return;
    }
    if (e->kind == EXP_BROKEN) {
        if (rc != -1 || err->code != e->code || err->remote || !closed)
            abort();
        return;
    }
    /* the response: decode it here too */
    char *copy = malloc(e->msg_len);
    if (copy == NULL)
        abort();
    memcpy(copy, e->msg, e->msg_len);
    msgpack_zone_init(&zone, 1024);
    if (daffi_msg_decode(copy, e->msg_len, &zone, &m) == -1)
        abort();
    if (m.error->type == MSGPACK_OBJECT_NIL) {
        if (rc != 0 || res == NULL)
            abort();
        /* the result is the envelope's last element: its bytes are the tail */
        if (res->raw_len == 0 || res->raw_len > e->msg_len ||
            memcmp(res->raw, e->msg + e->msg_len - res->raw_len, res->raw_len) != 0 ||
            daffi_object_size(res->raw, res->raw_len) != res->raw_len)
            abort();
        same_value(&res->obj, m.result);
    } else if (daffi_error_parse(m.error, &code, &text, &text_len, &details) == -1 ||
               code == 0) {
        /* a malformed error array: PROTOCOL, but the framing held */
        if (rc != -1 || err->code != DAFFI_E_PROTOCOL || err->remote || closed)
            abort();
    } else {
        if (rc != -1 || err->code != code || !err->remote || closed)
            abort();
        if (strlen(err->message) > text_len ||
            (text_len > 0 && memcmp(err->message, text, strlen(err->message)) != 0))
            abort();
        if (details == NULL || details->type == MSGPACK_OBJECT_NIL) {
            if (err->details.type != MSGPACK_OBJECT_NIL)
                abort();
        } else {
            same_value(&err->details, details);
        }
    }
    msgpack_zone_destroy(&zone);
    free(copy);
}

/* Aborts unless the counters of c are the oracle's. */
static void check_stats(const daffi_client *c, const expect *e, int async)
{
    daffi_client_stats st;

    daffi_client_stats_get(c, &st);
    if (st.calls != 1 ||
        st.requests_refused != (async ? e->all_requests : e->requests) ||
        st.late_replies != (async ? e->all_late : e->late) ||
        st.notifications_ignored != (async ? e->all_notes : e->notes))
        abort();
}

/* ---- the synchronous client ----------------------------------------------------- */

static void run_sync(const daffi_client_opts *opts, const char *in, size_t len)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    daffi_client *c;
    expect e;
    int fd, rc;

    c = peer_sync_client(opts, in, len, &fd);
    oracle(in, len, &c->lim, &e);
    rc = daffi_rpc(c, "m", NULL, 0, &res, &err);
    check_outcome(&e, rc, &res, &err, !daffi_client_connected(c));
    check_stats(c, &e, 0);
    if (rc == 0)
        daffi_result_free(&res);
    daffi_error_clear(&err);
    daffi_close(c);
    close(fd);
}

/* ---- the asynchronous client ----------------------------------------------------- */

/* The call's outcome, kept by done(). */
typedef struct async_out {
    int done;
    int rc;
    int closed;             /* the connection was down when the outcome came */
    daffi_result res;
    daffi_error err;
} async_out;

static void done(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    async_out *o = arg;

    o->done++;
    o->closed = !daffi_client_connected(c);
    o->rc = res != NULL ? 0 : -1;
    if (res != NULL)
        daffi_result_move(&o->res, res);
    else
        daffi_error_move(&o->err, err);
}

static void run_async(const daffi_client_opts *opts, const char *in, size_t len)
{
    async_out o;
    daffi_client *c;
    expect e;
    int fd;

    memset(&o, 0, sizeof(o));
    o.err.details.type = MSGPACK_OBJECT_NIL;
    c = peer_async_client(opts, &fd);
    if (daffi_rpc_async(c, "m", NULL, 0, done, &o, NULL) == -1)
        abort();
    peer_serve_bytes(fd, in, len);
    oracle(in, len, &c->lim, &e);
    peer_run(c, &o.done); /* to the end: the server closed its side */
    if (o.done != 1)
        abort();
    check_outcome(&e, o.rc, o.rc == 0 ? &o.res : NULL, &o.err, o.closed);
    check_stats(c, &e, 1);
    daffi_result_free(&o.res);
    daffi_error_clear(&o.err);
    daffi_close(c);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    daffi_client_opts opts;

    if (size < 2)
        return 0;
    memset(&opts, 0, sizeof(opts));
    opts.max_message = 16 + (size_t)data[0] * 17;
    opts.max_depth = 1 + data[1] % 62;
    run_sync(&opts, (const char *)data + 2, size - 2);
    run_async(&opts, (const char *)data + 2, size - 2);
    return 0;
}
