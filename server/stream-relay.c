/*
 * stream-relay.c - streams through the router: a relay joins the caller's connection
 * (the id the router gave it) to one link of the member (the member's id: every chunk
 * and the end go over the link that opened it). Chunks go to the member and credit
 * comes back, each written on the loop that owns the
 * connection, by mail when the loops differ (see stream.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callobj.h"
#include "log.h"
#include "nats-gateway.h"
#include "router.h"
#include "server.h"
#include "stream-int.h"

/* A relay operation for the loop that owns the connection it writes to. */
typedef enum stream_op {
    STREAM_OP_UNREGISTER,       /* member's loop: remove from it */
    STREAM_OP_TO_MEMBER,        /* member's loop: write data on the member connection */
    STREAM_OP_TO_CALLER,        /* caller's loop: write data on the caller connection */
    STREAM_OP_MEMBER_GONE       /* caller's loop: the member left: tell the caller */
} stream_op;

typedef struct stream_mail {
    stream_op op;
    dfd_stream *s;              /* a reference */
    size_t len;
    char data[];
} stream_mail;

static void relay_mail_free(void *mail)
{
    stream_mail *m = mail;
    dfd_stream_release(m->s);
    free(m);
}

static void relay_on_mail(dfd_loop *loop, void *mail)
{
    (void)loop; /* every operation names its connection through the stream */
    stream_mail *m = mail;
    dfd_stream *s = m->s;
    dfd_link *link = s->link;
    switch (m->op) {
    case STREAM_OP_UNREGISTER:
        if (link->conn != NULL && dfd_idmap_get(&link->conn->member_streams, s->member_id) == s) {
            dfd_idmap_take(&link->conn->member_streams, s->member_id);
            dfd_stream_release(s);
        }
        break;
    case STREAM_OP_TO_MEMBER:
        if (link->conn != NULL && !atomic_load(&s->dead))
            dfd_conn_send_raw(link->conn, m->data, m->len);
        break;
    case STREAM_OP_TO_CALLER:
        if (s->caller != NULL)
            dfd_conn_send_raw(s->caller, m->data, m->len);
        break;
    case STREAM_OP_MEMBER_GONE:
        if (s->caller != NULL)
            dfd_stream_send_note(s->caller, "daffi.abort", s->caller_id, -1);
        break;
    }
    relay_mail_free(m);
}

static void relay_chunk(dfd_conn *c, dfd_stream *s, dfd_call *chunk);
static int relay_finish(dfd_conn *c, dfd_call *call, dfd_stream *s, int abort);
static void relay_sender_gone(dfd_conn *c, dfd_stream *s);
static void relay_opened(dfd_call *call);

static const dfd_stream_ops relay_ops = {
    .chunk = relay_chunk,
    .finish = relay_finish,
    .sender_gone = relay_sender_gone,
};

static const dfd_call_hooks relay_open_hooks = {
    .before_answer = relay_opened,
};

/* Delivers a relay operation to the loop that must do it: inline when it is this loop. */
static void relay_post(dfd_loop *to, dfd_loop *here, stream_op op, dfd_stream *s,
                       const char *data, size_t len)
{
    stream_mail *m = malloc(sizeof(*m) + len);
    if (m == NULL) {
        dfd_error("stream.oom", "msg=\"cannot relay a stream message\"");
        return;
    }
    m->op = op;
    m->s = s;
    dfd_stream_retain(s);
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    if (to == here) {
        relay_on_mail(to, m);
        return;
    }
    if (dfd_loop_post(to, relay_on_mail, relay_mail_free, m) == -1)
        relay_mail_free(m);
}

/* Router: daffi.stream for a remote member. The open request goes to the member as is
 * (the member's daffid opens a local stream); the answer comes back through
 * dfd_stream_relay_opened. */
int dfd_stream_relay_open(dfd_conn *c, dfd_call *call, unsigned window, const char *to,
                          size_t to_len)
{
    if (c->loop->srv->nats_gateway != NULL)
        return dfd_nats_stream_open(c, call, window, to, to_len); /* over NATS */
    const msgpack_object *target = daffi_arg(&call->base, 0);
    if (target == NULL || target->type != MSGPACK_OBJECT_STR) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                       "daffi.stream takes [callback, [params...], {\"to\": name, "
                       "\"window\": int}]");
        return 0;
    }
    dfd_stream *s = dfd_stream_new(&relay_ops);
    if (s == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    s->window = window;
    s->caller_loop = c->loop;
    call->stream = s; /* the open call's reference */
    call->hooks = &relay_open_hooks;
    dfd_router_route_stream(c, call, target->via.str.ptr, target->via.str.size, to, to_len);
    return 1;
}

int dfd_stream_relay_read_opened(dfd_call *call, dfd_stream *s)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object obj;
    size_t off = 0;
    uint64_t mid = 0, win = 0;
    if (msgpack_unpack(call->base.result.data, call->base.result.size, &off, &zone, &obj) ==
        MSGPACK_UNPACK_SUCCESS) {
        daffi_obj_uint(daffi_obj_get(&obj, "stream"), &mid);
        daffi_obj_uint(daffi_obj_get(&obj, "window"), &win);
    }
    msgpack_zone_destroy(&zone);
    if (mid == 0 || mid > UINT32_MAX || win == 0) {
        daffi_call_set_error(&call->base, DAFFI_E_PROTOCOL,
                             "the member answered daffi.stream without a stream id");
        return -1;
    }
    s->member_id = (uint32_t)mid;
    if (win < s->window)
        s->window = (unsigned)win;
    return 0;
}

int dfd_stream_relay_answer_opened(dfd_conn *c, dfd_call *call, dfd_stream *s)
{
    s->caller = c;
    s->caller_id = dfd_stream_new_id(c);
    if (dfd_idmap_put(&c->streams, s->caller_id, s) == -1) {
        daffi_call_set_error(&call->base, DAFFI_E_OVERLOADED, "out of memory");
        return -1;
    }
    dfd_stream_retain(s); /* the caller's table */
    msgpack_packer *pk = daffi_reply_packer(&call->base);
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "stream");
    msgpack_pack_uint32(pk, s->caller_id);
    daffi_pack_cstr(pk, "window");
    msgpack_pack_unsigned_int(pk, s->window);
    return 0;
}

int dfd_stream_relay_pack_chunk(dfd_conn *c, dfd_stream *s, const dfd_call *chunk,
                                msgpack_sbuffer *sb)
{
    if (atomic_load(&s->dead) || atomic_load(&s->overrun))
        return -1;
    if (atomic_load(&s->outstanding) >= s->window) {
        atomic_store(&s->overrun, 1);
        dfd_warn("stream.overrun", "peer=%s stream=%u window=%u msg=\"the sender ignored its "
                 "window; the chunk is dropped and the stream fails\"", c->peer, s->caller_id,
                 s->window);
        return -1;
    }
    const char *data;
    size_t len;
    if (daffi_arg_raw(&chunk->base, 1, &data, &len) == -1)
        return -1;
    atomic_fetch_add(&s->outstanding, 1);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    daffi_pack_notify(&pk, "daffi.chunk", 11, 2);
    msgpack_pack_uint32(&pk, s->member_id);
    msgpack_sbuffer_write(sb, data, len);
    return 0;
}

void dfd_stream_relay_credited(dfd_stream *s, uint64_t k)
{
    unsigned cur = atomic_load(&s->outstanding);
    atomic_fetch_sub(&s->outstanding, k > cur ? cur : (unsigned)k);
}

void dfd_stream_relay_refuse_end(dfd_conn *c, dfd_call *call, int abort, int dead)
{
    if (!abort && !call->notify)
        dfd_conn_error(c, call->msgid, dead ? DAFFI_E_UNAVAILABLE : DAFFI_E_PROTOCOL,
                       dead ? "the stream's receiver went away"
                            : "chunks were sent past the stream's window");
}

void dfd_stream_relay_member_opened(dfd_conn *c, dfd_call *call)
{
    dfd_stream *s = call->stream;
    if (dfd_stream_relay_read_opened(call, s) == -1)
        return;
    s->link = call->link;
    dfd_link_retain(s->link);
    if (dfd_idmap_put(&c->member_streams, s->member_id, s) == 0)
        dfd_stream_retain(s); /* the member's table */
    else
        atomic_store(&s->dead, 1);
}

/* The open call of a relay finished (caller's loop, before the answer): register the
 * stream under the caller's own id and rewrite the result with it. */
static void relay_opened(dfd_call *call)
{
    dfd_stream *s = call->stream;
    dfd_conn *c = call->conn;
    if (call->base.outcome != DAFFI_OUTCOME_RESULT || s->link == NULL)
        return; /* refused or failed: relayed as is */
    if (c == NULL || call->answered || atomic_load(&s->dead)) {
        /* the caller left (or timed out) while the member opened: abort it there */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        dfd_stream_pack_note(&sb, "daffi.abort", s->member_id, -1);
        if (!atomic_load(&s->dead))
            relay_post(s->link->loop, call->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        relay_post(s->link->loop, call->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
        if (c != NULL && !call->answered)
            daffi_call_set_error(&call->base, DAFFI_E_UNAVAILABLE,
                                 "the stream's receiver went away as it opened");
        return;
    }
    if (dfd_stream_relay_answer_opened(c, call, s) == -1)
        relay_post(s->link->loop, call->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
}

/* Router: a chunk from the caller: forward it with the member's id, within the window. */
static void relay_chunk(dfd_conn *c, dfd_stream *s, dfd_call *chunk)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (dfd_stream_relay_pack_chunk(c, s, chunk, &sb) == 0)
        relay_post(s->link->loop, c->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Router: the caller ends (or aborts) a relay stream. */
static int relay_finish(dfd_conn *c, dfd_call *call, dfd_stream *s, int abort)
{
    int dead = atomic_load(&s->dead);
    int overrun = atomic_load(&s->overrun);
    if (abort || dead || overrun) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        dfd_stream_pack_note(&sb, "daffi.abort", s->member_id, -1);
        if (!dead)
            relay_post(s->link->loop, c->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        relay_post(s->link->loop, c->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
        dfd_stream_relay_refuse_end(c, call, abort, dead);
        dfd_stream_release(s);
        return 0;
    }
    /* daffi.end [member id] to the member, answered like any forwarded call */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint32(&pk, s->member_id);
    char *params = msgpack_zone_malloc(&call->base.zone, sb.size);
    if (params == NULL) {
        msgpack_sbuffer_destroy(&sb);
        dfd_stream_release(s);
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    memcpy(params, sb.data, sb.size);
    call->base.msg.params_raw = params;
    call->base.msg.params_raw_len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    dfd_link *l = s->link;
    dfd_link_retain(l);
    dfd_router_forward_to(c, call, l);
    relay_post(l->loop, c->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
    dfd_stream_release(s);
    return 1;
}

/* Router, member's loop: credit or abort from the member for one of its streams. */
void dfd_stream_relay_from_member(dfd_conn *c, dfd_call *call, int abort)
{
    uint32_t mid;
    if (dfd_stream_arg_u32(call, 0, &mid) == -1)
        return;
    dfd_stream *s = dfd_idmap_get(&c->member_streams, mid);
    if (s == NULL) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unknown_notifications, 1);
        return;
    }
    if (abort) {
        atomic_store(&s->dead, 1);
        dfd_idmap_take(&c->member_streams, mid);
        relay_post(s->caller_loop, c->loop, STREAM_OP_MEMBER_GONE, s, NULL, 0);
        dfd_stream_release(s);
        return;
    }
    int64_t k;
    if (daffi_arg_int(&call->base, 1, &k) == -1 || k <= 0)
        return;
    dfd_stream_relay_credited(s, (uint64_t)k);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    dfd_stream_pack_note(&sb, "daffi.credit", s->caller_id, k);
    relay_post(s->caller_loop, c->loop, STREAM_OP_TO_CALLER, s, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* The caller's connection closed: abort at the member. */
static void relay_sender_gone(dfd_conn *c, dfd_stream *s)
{
    s->caller = NULL;
    if (!atomic_load(&s->dead)) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        dfd_stream_pack_note(&sb, "daffi.abort", s->member_id, -1);
        relay_post(s->link->loop, c->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    relay_post(s->link->loop, c->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
    dfd_stream_release(s);
}

void dfd_stream_relay_member_gone(dfd_conn *c, dfd_stream *s)
{
    atomic_store(&s->dead, 1);
    relay_post(s->caller_loop, c->loop, STREAM_OP_MEMBER_GONE, s, NULL, 0);
    dfd_stream_release(s);
}
