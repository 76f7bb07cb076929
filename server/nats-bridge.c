/*
 * nats-bridge.c - streams over NATS, the member's side (see nats-bridge.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <daffi/rpc.h>

#include "conn.h"
#include "dispatch.h"
#include "idmap.h"
#include "log.h"
#include "nats-bridge.h"
#include "server.h"
#include "stream.h"

/* A request written to the bridge whose answer goes back over NATS. */
typedef struct bridge_req {
    int open;                    /* daffi.stream (else daffi.end) */
    uint32_t sid;                /* daffi.end: the stream it ends */
    char reply[];                /* the NATS reply subject */
} bridge_req;

/* One loop's bridge. */
typedef struct bridge_loop {
    dfd_nats_bridge *b;
    dfd_conn *a;                 /* the caller end: dispatch and local streams */
    dfd_conn *c;                 /* our end */
    uint32_t next_msgid;
    dfd_idmap pending;           /* our msgid -> bridge_req (owned) */
    dfd_idmap streams;           /* stream id on a -> the gateway's subject (owned) */
    char subject[DFD_NATS_SUBJECT_MAX]; /* <prefix>.<loop>: where its steps come */
} bridge_loop;

struct dfd_nats_bridge {
    dfd_server *srv;
    natsConnection *nc;
    natsSubscription *sub;       /* <prefix>.* */
    unsigned nloops;
    bridge_loop loops[];
};

static void bridge_on_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                              uint32_t msgid);
static void bridge_closed(dfd_conn *c);
static void bridge_a_closed(dfd_conn *c);
static int bridge_busy(const dfd_conn *c);

static const dfd_conn_ops bridge_ops = {
    .message = bridge_on_message,
    .closed = bridge_closed,
    .busy = bridge_busy,
};

/* The caller end: a caller's connection (dispatch), whose owner is told it closed. */
static const dfd_conn_ops bridge_a_ops = {
    .message = dfd_dispatch_message,
    .closed = bridge_a_closed,
    .busy = bridge_busy,
};

static int bridge_busy(const dfd_conn *c)
{
    const bridge_loop *bl = c->owner;
    return bl != NULL && (bl->pending.count > 0 || bl->streams.count > 0);
}

static void free_val(void *val, void *arg)
{
    (void)arg;
    free(val);
}

/* A draining loop closes the bridge once its last stream ended (dfd_loop_drain closed
 * it at once when it held none): the loop is drained then, and the member exits
 * without waiting for shutdown_timeout. */
static void bridge_check_drained(bridge_loop *bl)
{
    if (bl->c != NULL && bl->c->loop->draining && bl->pending.count == 0 &&
        bl->streams.count == 0)
        dfd_conn_close(bl->c, 0); /* bridge_closed closes the other end */
}

/* Both ends go together; what waited on them is dropped (the gateway's deadlines end
 * it there). */
static void bridge_forget(bridge_loop *bl)
{
    dfd_idmap_drain(&bl->pending, free_val, NULL);
    dfd_idmap_drain(&bl->streams, free_val, NULL);
}

static void bridge_closed(dfd_conn *c)
{
    bridge_loop *bl = c->owner;
    if (bl == NULL)
        return;
    bl->c = NULL;
    if (bl->a != NULL)
        dfd_conn_close(bl->a, 0);
    bridge_forget(bl);
}

static void bridge_a_closed(dfd_conn *c)
{
    bridge_loop *bl = c->owner;
    dfd_stream_conn_closed(c);
    if (bl == NULL)
        return;
    bl->a = NULL;
    if (bl->c != NULL)
        dfd_conn_close(bl->c, 0);
    bridge_forget(bl);
}

/* The loop's bridge, made on first use. Returns it, or NULL (logged). */
static bridge_loop *bridge_ensure(dfd_nats_bridge *b, dfd_loop *loop)
{
    bridge_loop *bl = &b->loops[loop->index];
    if (bl->a != NULL && bl->c != NULL)
        return bl;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == -1) {
        dfd_error("nats.bridge", "loop=%u msg=\"socketpair: %s\"", loop->index, strerror(errno));
        return NULL;
    }
    atomic_fetch_add(&b->srv->conns, 2);
    bl->a = dfd_conn_adopt(loop, fds[0], 1, &bridge_a_ops, bl);
    bl->c = dfd_conn_adopt(loop, fds[1], 1, &bridge_ops, bl);
    if (bl->a == NULL || bl->c == NULL) {
        if (bl->a != NULL)
            dfd_conn_close(bl->a, 0);
        else
            atomic_fetch_sub(&b->srv->conns, 1);
        if (bl->c != NULL)
            dfd_conn_close(bl->c, 0);
        else
            atomic_fetch_sub(&b->srv->conns, 1);
        bl->a = bl->c = NULL;
        return NULL;
    }
    /* a link inside daffid: no idle timeout, never shed; it serves while draining */
    bl->a->internal = bl->c->internal = 1;
    bl->a->keep_serving = 1;
    snprintf(bl->a->peer, sizeof(bl->a->peer), "nats");
    snprintf(bl->c->peer, sizeof(bl->c->peer), "nats-bridge");
    return bl;
}

/* Decodes a message that NATS brought (scanned against the limits) into m (objects in
 * zone). Returns 0, or -1 when it is not one. */
static int bridge_decode(const dfd_server *srv, const char *data, size_t len, msgpack_zone *zone,
                         daffi_msg *m)
{
    daffi_scan scan;
    daffi_scan_init(&scan);
    if (daffi_scan_feed(&scan, data, len, &srv->limits) != DAFFI_SCAN_COMPLETE || scan.size != len)
        return -1;
    return daffi_msg_decode(data, len, zone, m);
}

int dfd_nats_bridge_is_open(const dfd_nats_note *note)
{
    /* the gateway's own encoding of [0, 0, "daffi.stream", ...] (nats-gateway.c): a
     * prefix test keeps the decode off every call's path */
    static const char open[] = "\x94\x00\x00\xac" "daffi.stream";
    return note->len > sizeof(open) - 1 && memcmp(note->data, open, sizeof(open) - 1) == 0;
}

/* Writes request m (method, params) on the bridge under a fresh msgid remembered with
 * req. Takes req. */
static void bridge_write_request(bridge_loop *bl, const daffi_msg *m, bridge_req *req)
{
    uint32_t id;
    do
        id = bl->next_msgid++;
    while (id == 0 || dfd_idmap_get(&bl->pending, id) != NULL);
    if (dfd_idmap_put(&bl->pending, id, req) == -1) {
        free(req); /* the gateway's deadline ends it */
        return;
    }
    dfd_conn_send_request(bl->c, id, m->method, m->method_len, m->params_raw, m->params_raw_len,
                          0);
}

static bridge_req *bridge_req_new(const char *reply, int open, uint32_t sid)
{
    size_t n = strlen(reply) + 1;
    bridge_req *req = malloc(sizeof(*req) + n);
    if (req != NULL) {
        req->open = open;
        req->sid = sid;
        memcpy(req->reply, reply, n);
    }
    return req;
}

void dfd_nats_bridge_open(dfd_nats_bridge *b, dfd_loop *loop, dfd_nats_note *note)
{
    bridge_loop *bl = note->reply != NULL ? bridge_ensure(b, loop) : NULL;
    msgpack_zone zone;
    daffi_msg m;
    msgpack_zone_init(&zone, 256);
    if (bl != NULL && bridge_decode(b->srv, note->data, note->len, &zone, &m) == 0) {
        bridge_req *req = bridge_req_new(note->reply, 1, 0);
        if (req != NULL)
            bridge_write_request(bl, &m, req);
    }
    msgpack_zone_destroy(&zone);
    free(note);
}

/* Mail: a step of a stream (chunk, end, abort) on the loop its subject names. */
static void bridge_step_run(dfd_loop *loop, void *arg)
{
    dfd_nats_note *note = arg;
    dfd_nats_bridge *b = note->arg;
    bridge_loop *bl = &b->loops[loop->index];
    msgpack_zone zone;
    daffi_msg m;
    msgpack_zone_init(&zone, 256);
    if (bl->c == NULL || bridge_decode(b->srv, note->data, note->len, &zone, &m) == -1) {
        /* its bridge is gone (the stream with it) or it is not a message */
        dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
    } else if (m.kind == DAFFI_MSG_REQUEST && note->reply != NULL) {
        uint64_t sid = 0;
        if (m.params->via.array.size > 0 &&
            m.params->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            sid = m.params->via.array.ptr[0].via.u64;
        bridge_req *req = bridge_req_new(note->reply, 0, (uint32_t)sid);
        if (req != NULL)
            bridge_write_request(bl, &m, req);
    } else if (m.kind == DAFFI_MSG_NOTIFY) {
        if (m.method_len == 11 && memcmp(m.method, "daffi.abort", 11) == 0 &&
            m.params->via.array.size > 0 &&
            m.params->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            free(dfd_idmap_take(&bl->streams, (uint32_t)m.params->via.array.ptr[0].via.u64));
        dfd_conn_send_raw(bl->c, note->data, note->len); /* chunk, abort, end: as is */
        bridge_check_drained(bl); /* an abort, the last stream: closing aborts it too */
    }
    msgpack_zone_destroy(&zone);
    free(note);
}

/* What the stream handlers answered: to NATS. */
static void bridge_on_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                              uint32_t msgid)
{
    bridge_loop *bl = c->owner;
    dfd_nats_bridge *b = bl->b;
    if (kind == DAFFI_MSG_RESPONSE) {
        bridge_req *req = dfd_idmap_take(&bl->pending, msgid);
        if (req == NULL)
            return;
        const char *err, *result;
        size_t err_len, result_len;
        int ok = daffi_response_split(bytes, size, &err, &err_len, &result, &result_len) == 0 &&
                 err_len == 1 && (unsigned char)err[0] == 0xc0;
        if (req->open && ok) {
            /* {"stream": id, "window": n}: its credit and abort go to the gateway */
            msgpack_zone zone;
            msgpack_object obj;
            size_t off = 0;
            uint64_t sid = 0;
            msgpack_zone_init(&zone, 256);
            if (msgpack_unpack(result, result_len, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS)
                daffi_obj_uint(daffi_obj_get(&obj, "stream"), &sid);
            msgpack_zone_destroy(&zone);
            char word[DFD_NATS_SUBJECT_MAX + 8];
            char *to = dfd_nats_word_subject(word, sizeof(word), req->reply, 's') == 0
                           ? strdup(word) : NULL;
            if (dfd_nats_word_subject(word, sizeof(word), req->reply, 'r') == -1)
                word[0] = '\0';
            if (sid == 0 || sid > UINT32_MAX || to == NULL ||
                dfd_idmap_put(&bl->streams, (uint32_t)sid, to) == -1)
                free(to);
            /* the answer's reply names the subject this stream's steps go to */
            if (word[0] != '\0')
                dfd_nats_publish(c->loop, b->nc, word, bl->subject, bytes, size);
        } else {
            char word[DFD_NATS_SUBJECT_MAX + 8];
            if (!req->open)
                free(dfd_idmap_take(&bl->streams, req->sid));
            if (dfd_nats_word_subject(word, sizeof(word), req->reply, 'r') == 0)
                dfd_nats_publish(c->loop, b->nc, word, NULL, bytes, size);
        }
        free(req);
        bridge_check_drained(bl);
        return;
    }
    if (kind != DAFFI_MSG_NOTIFY)
        return;
    /* daffi.credit [id, k] or daffi.abort [id] from a stream handler */
    msgpack_zone zone;
    daffi_msg m;
    msgpack_zone_init(&zone, 256);
    if (daffi_msg_decode(bytes, size, &zone, &m) == 0 && m.params->via.array.size > 0 &&
        m.params->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        uint32_t sid = (uint32_t)m.params->via.array.ptr[0].via.u64;
        const char *to = dfd_idmap_get(&bl->streams, sid);
        if (to != NULL)
            dfd_nats_publish(c->loop, b->nc, to, NULL, bytes, size);
        if (m.method_len == 11 && memcmp(m.method, "daffi.abort", 11) == 0)
            free(dfd_idmap_take(&bl->streams, sid));
    }
    msgpack_zone_destroy(&zone);
    bridge_check_drained(bl);
}

/* libnats thread: a stream step; its subject's last token names the loop. */
static void bridge_on_step(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                           void *closure)
{
    (void)nc;
    (void)sub;
    dfd_nats_bridge *b = closure;
    const char *dot = strrchr(natsMsg_GetSubject(msg), '.');
    char *end = NULL;
    unsigned long i = dot != NULL ? strtoul(dot + 1, &end, 10) : b->nloops;
    if (end == NULL || *end != '\0' || i >= b->nloops) {
        natsMsg_Destroy(msg);
        return;
    }
    dfd_nats_mail_msg(&b->srv->loops[i], bridge_step_run, msg, b);
}

dfd_nats_bridge *dfd_nats_bridge_new(dfd_server *srv, natsConnection *nc, const char *prefix)
{
    unsigned n = srv->nloops;
    dfd_nats_bridge *b = calloc(1, sizeof(*b) + n * sizeof(bridge_loop));
    char subject[DFD_NATS_SUBJECT_MAX];
    if (b == NULL)
        return NULL;
    b->srv = srv;
    b->nc = nc;
    b->nloops = n;
    for (unsigned i = 0; i < n; i++) {
        b->loops[i].b = b;
        b->loops[i].next_msgid = 1;
        snprintf(b->loops[i].subject, sizeof(b->loops[i].subject), "%s.%u", prefix, i);
    }
    snprintf(subject, sizeof(subject), "%s.*", prefix);
    if (natsConnection_Subscribe(&b->sub, nc, subject, bridge_on_step, b) != NATS_OK ||
        natsSubscription_SetPendingLimits(b->sub, -1, -1) != NATS_OK) {
        dfd_error("nats.subscribe", "subject=%s msg=\"streams will not reach this member\"",
                  subject);
        natsSubscription_Destroy(b->sub);
        free(b);
        return NULL;
    }
    return b;
}

/* Publishes daffi.abort [sid] to a stream's gateway subject (val). */
static void bridge_abort_at_exit(uint32_t sid, void *val, void *arg)
{
    dfd_nats_bridge *b = arg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_notify(&pk, "daffi.abort", 11, 1);
    msgpack_pack_uint32(&pk, sid);
    dfd_nats_publish(NULL, b->nc, val, NULL, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void dfd_nats_bridge_stop(dfd_nats_bridge *b)
{
    /* the loops are joined: their tables are ours to read. Streams still open went on
     * through the drain until shutdown_timeout passed: their gateways tell their
     * callers now rather than at their end. */
    size_t open = 0;
    for (unsigned i = 0; b != NULL && i < b->nloops; i++) {
        open += b->loops[i].streams.count;
        dfd_idmap_each(&b->loops[i].streams, bridge_abort_at_exit, b);
    }
    if (open > 0)
        dfd_warn("nats.bridge", "streams=%zu msg=\"streams still open at exit: aborted at "
                 "their callers\"", open);
    if (b != NULL && b->sub != NULL) {
        natsSubscription_Unsubscribe(b->sub);
        natsSubscription_Destroy(b->sub);
        b->sub = NULL;
    }
}

void dfd_nats_bridge_free(dfd_nats_bridge *b)
{
    if (b == NULL)
        return;
    for (unsigned i = 0; i < b->nloops; i++) {
        bridge_loop *bl = &b->loops[i];
        /* the connections are their loop's (closed with it); they no longer tell us */
        if (bl->a != NULL)
            bl->a->owner = NULL;
        if (bl->c != NULL)
            bl->c->owner = NULL;
        bridge_forget(bl);
        dfd_idmap_free(&bl->pending);
        dfd_idmap_free(&bl->streams);
    }
    free(b);
}
