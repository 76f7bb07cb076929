/*
 * stream.c - the stream control methods and what local streams and relays share (see
 * stream.h): the per-connection tables, ids, credit and abort notes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callobj.h"
#include "control.h"
#include "router.h"
#include "server.h"
#include "stream-int.h"

dfd_stream *dfd_stream_new(const dfd_stream_ops *ops)
{
    dfd_stream *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        atomic_init(&s->refs, 1);
        s->ops = ops;
    }
    return s;
}

void dfd_stream_retain(dfd_stream *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void dfd_stream_release(dfd_stream *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    dfd_link_release(s->link);
    free(s->nats_to);
    free(s);
}

int dfd_stream_arg_u32(const dfd_call *call, size_t i, uint32_t *out)
{
    uint64_t v;
    if (daffi_arg_uint(&call->base, i, &v) == -1 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

uint32_t dfd_stream_new_id(dfd_conn *c)
{
    /* 1 .. 0x7fffffff: the upper half is the peer's for the streams it receives on
     * this connection (PROTOCOL.md section 8, "Two id spaces") */
    uint32_t id;
    do {
        id = c->next_stream_id++ & 0x7fffffffu;
    } while (id == 0 || dfd_idmap_get(&c->streams, id) != NULL);
    return id;
}

void dfd_stream_pack_note(msgpack_sbuffer *sb, const char *method, uint32_t id, int64_t k)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    daffi_pack_notify(&pk, method, strlen(method), k >= 0 ? 2 : 1);
    msgpack_pack_uint32(&pk, id);
    if (k >= 0)
        msgpack_pack_int64(&pk, k);
}

void dfd_stream_send_note(dfd_conn *c, const char *method, uint32_t id, int64_t k)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    dfd_stream_pack_note(&sb, method, id, k);
    dfd_conn_send_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* daffi.stream [callback, [params...], {"to": name, "window": 1-1024}] */
int dfd_stream_open(dfd_conn *c, dfd_call *call)
{
    static const char usage[] =
        "daffi.stream takes [callback, [params...], {\"to\": name, \"window\": 1-1024}]";
    dfd_loop *loop = c->loop;
    dfd_call_opts o;
    if (dfd_call_opts_parse(call, DFD_OPT_TO | DFD_OPT_WINDOW, &o) == -1) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, usage);
        return 0;
    }
    unsigned window = o.window == 0 ? STREAM_WINDOW_DEFAULT
                      : o.window > STREAM_WINDOW_MAX ? STREAM_WINDOW_MAX : (unsigned)o.window;
    if (loop->srv->cfg->role == DFD_ROLE_ROUTER && !dfd_router_is_local(loop, call, o.to, o.to_len))
        return dfd_stream_relay_open(c, call, window, o.to, o.to_len);
    if (daffi_call_unwrap(&call->base) == -1) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, usage);
        return 0;
    }
    return dfd_stream_local_open(c, call, window);
}

/* Reads the stream id of a step; answers BAD_ARGS to a request without one. */
static int step_id(dfd_conn *c, dfd_call *call, const char *step, uint32_t *id)
{
    if (dfd_stream_arg_u32(call, 0, id) == 0)
        return 0;
    if (!call->notify) {
        char msg[120];
        snprintf(msg, sizeof(msg), "daffi.%s takes [stream id, ...]", step);
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
    }
    return -1;
}

/* A step for a stream this connection does not send: counted, or BAD_ARGS. */
static void no_stream(dfd_conn *c, dfd_call *call, uint32_t id)
{
    if (call->notify) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unknown_notifications, 1);
        return;
    }
    char msg[120];
    snprintf(msg, sizeof(msg), "no stream %u on this connection", id);
    dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
}

int dfd_stream_chunk(dfd_conn *c, dfd_call *call)
{
    uint32_t id;
    if (step_id(c, call, "chunk", &id) == -1)
        return 0;
    dfd_stream *s = dfd_idmap_get(&c->streams, id);
    if (s == NULL)
        no_stream(c, call, id);
    else
        s->ops->chunk(c, s, call);
    return 0;
}

/* daffi.end and the sender's daffi.abort: the stream leaves the table. */
static int stream_finish(dfd_conn *c, dfd_call *call, const char *step, int abort)
{
    uint32_t id;
    if (step_id(c, call, step, &id) == -1)
        return 0;
    dfd_stream *s = dfd_idmap_take(&c->streams, id);
    if (s == NULL) {
        no_stream(c, call, id);
        return 0;
    }
    return s->ops->finish(c, call, s, abort);
}

int dfd_stream_end(dfd_conn *c, dfd_call *call)
{
    return stream_finish(c, call, "end", 0);
}

/* daffi.abort [id]: from a member for a stream relayed to it (router), else from the
 * sender of one of this connection's streams. */
int dfd_stream_abort(dfd_conn *c, dfd_call *call)
{
    uint32_t id;
    if (dfd_stream_arg_u32(call, 0, &id) == 0 && dfd_idmap_get(&c->member_streams, id) != NULL) {
        dfd_stream_relay_from_member(c, call, 1);
        return 0;
    }
    return stream_finish(c, call, "abort", 1);
}

/* daffi.credit [id, k]: only a member returns credit (for a relayed stream). */
int dfd_stream_credit(dfd_conn *c, dfd_call *call)
{
    uint32_t id;
    if (step_id(c, call, "credit", &id) == -1)
        return 0;
    if (dfd_idmap_get(&c->member_streams, id) != NULL)
        dfd_stream_relay_from_member(c, call, 0);
    else
        dfd_stat_add(&c->loop->stats, DFD_STAT_unknown_notifications, 1);
    return 0;
}

static void stream_sender_gone(void *val, void *arg)
{
    dfd_stream *s = val;
    s->ops->sender_gone(arg, s);
}

static void stream_member_gone(void *val, void *arg)
{
    dfd_stream_relay_member_gone(arg, val);
}

void dfd_stream_conn_closed(dfd_conn *c)
{
    dfd_idmap_drain(&c->streams, stream_sender_gone, c);
    dfd_idmap_drain(&c->member_streams, stream_member_gone, c);
    dfd_idmap_free(&c->streams);
    dfd_idmap_free(&c->member_streams);
}
