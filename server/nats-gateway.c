/*
 * nats-gateway.c - a router as a stateless gateway to NATS (see nats-gateway.h,
 * docs/NATS.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <daffi/rpc.h>

#include "call.h"
#include "callobj.h"
#include "dispatch.h"
#include "idmap.h"
#include "log.h"
#include "members.h"
#include "nats-bus.h"
#include "nats-gateway.h"
#include "nats-members.h"
#include "router.h"
#include "server.h"
#include "stream-int.h"
#include "table.h"

/* One loop's calls in flight over NATS, by the id in their reply subject. */
typedef struct nats_gw_loop {
    dfd_idmap pending;           /* id -> dfd_call (the loop's) */
    dfd_idmap targets;           /* id -> the member `to` named (owned): targeted calls */
    dfd_idmap streams;           /* id of its open -> dfd_stream (a reference): streams
                                    relayed over NATS (nats-stream steps, below) */
    uint32_t next_id;
} nats_gw_loop;

struct dfd_nats_gateway {
    dfd_server *srv;
    dfd_nats_ctx ctx;
    natsConnection *nc;
    char inbox[160];             /* this connection's reply prefix */
    size_t inbox_len;
    natsSubscription *inbox_sub; /* <inbox>.*.*.q: no-responders (libnats' thread) */
    natsSubscription *words_sub; /* <inbox>.*.*.a.*: the members' answers, "taken" and
                                    stream credit (watched: read on loop 0) */
    dfd_nats_presence *presence;
    unsigned nloops;
    nats_gw_loop loops[];
};

/* A forwarded call whose deadline passed: its loop forgets it (router.c's way: by mail
 * even to the same loop, as the TIMEOUT is being answered on the call meanwhile). */
typedef struct nats_gw_forget {
    uint32_t id;
    dfd_call *call;              /* compared, never read unless still pending */
} nats_gw_forget;

static void gws_from_member(dfd_loop *loop, nats_gw_loop *gl, uint32_t id,
                            const dfd_nats_note *msg);
static void gws_member_opened(dfd_call *call, const char *member_subject);

/* ---- answers -------------------------------------------------------------------------- */

/* Takes the call waiting under id off loop gl (and its target name). Returns it, or
 * NULL when none waits (answered, forgotten). */
static dfd_call *gw_take(nats_gw_loop *gl, uint32_t id)
{
    dfd_call *call = id != 0 ? dfd_idmap_take(&gl->pending, id) : NULL;
    if (call != NULL && call->to_member)
        free(dfd_idmap_take(&gl->targets, id));
    return call;
}

static void gw_fail(dfd_call *call, int code, const char *msg)
{
    daffi_call_set_error(&call->base, code, msg);
    dfd_dispatch_after_handler(call, DAFFI_DONE);
}

/* The member named in msg (its "taken", on the reply subject + ".t") holds queue-group
 * call id: from now on the loop knows the call's member as a `to` call's, so that
 * losing that member fails it UNAVAILABLE at once (gw_member_lost_run). An answer that
 * came first, or a second word, changes nothing. */
static void gw_taken(nats_gw_loop *gl, uint32_t id, const dfd_nats_note *msg)
{
    dfd_call *call = id != 0 ? dfd_idmap_get(&gl->pending, id) : NULL;
    if (call == NULL || call->to_member || msg->len == 0 || msg->len > 255 ||
        memchr(msg->data, '\0', msg->len) != NULL)
        return;
    char *name = strndup(msg->data, msg->len);
    if (name == NULL || dfd_idmap_put(&gl->targets, id, name) == -1) {
        free(name); /* it ends at its deadline instead */
        return;
    }
    call->to_member = 1;
}

/* Mail: an answer on the inbox, on the loop its subject names. */
static void gw_on_reply_run(dfd_loop *loop, void *arg)
{
    dfd_nats_note *msg = arg;
    dfd_nats_gateway *g = loop->srv->nats_gateway;
    const char *subject = msg->subject;
    const char *tail = strchr(subject + g->inbox_len + 1, '.');
    char *end = NULL;
    uint32_t id = tail != NULL ? (uint32_t)strtoul(tail + 1, &end, 10) : 0;
    /* <id>.q: nats-server's no-responders (or the answer of a requester that answers
     * the reply subject itself); <id>.a.r: an answer (dfd_nats_word_subject) */
    if (end == NULL || (strcmp(end, ".q") != 0 && strcmp(end, ".a.r") != 0)) {
        if (end != NULL && strcmp(end, ".a.s") == 0)
            gws_from_member(loop, &g->loops[loop->index], id, msg);
        else if (end != NULL && strcmp(end, ".a.t") == 0)
            gw_taken(&g->loops[loop->index], id, msg);
        free(msg);
        return;
    }
    dfd_call *call = gw_take(&g->loops[loop->index], id);
    if (call == NULL) {
        /* answered after its deadline, or a second answer: nobody waits for it */
        dfd_stat_add(&loop->stats, DFD_STAT_unexpected_responses, 1);
        free(msg);
        return;
    }
    char text[400];
    if (msg->no_responders) {
        /* the callback: a stream's open names it in its first param */
        const msgpack_object *cb = call->stream != NULL ? daffi_arg(&call->base, 0) : NULL;
        const char *name = call->base.method;
        int name_len = (int)strlen(name);
        if (cb != NULL && cb->type == MSGPACK_OBJECT_STR) {
            name = cb->via.str.ptr;
            name_len = (int)cb->via.str.size;
        }
        if (name_len > 200)
            name_len = 200;
        dfd_stat_add(&loop->stats, DFD_STAT_nats_no_responders, 1);
        if (call->to_member) {
            snprintf(text, sizeof(text), "no member of that name is connected (NATS: no "
                     "responders for '%.*s')", name_len, name);
            gw_fail(call, DAFFI_E_UNAVAILABLE, text);
        } else {
            dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
            snprintf(text, sizeof(text), "no callback '%.*s' (no member serves it over "
                     "NATS)", name_len, name);
            gw_fail(call, DAFFI_E_NO_CALLBACK, text);
        }
        free(msg);
        return;
    }
    const char *data = msg->data;
    size_t len = msg->len;
    daffi_scan scan;
    daffi_scan_init(&scan);
    const char *err, *result;
    size_t err_len, result_len;
    if (daffi_scan_feed(&scan, data, len, &loop->srv->limits) != DAFFI_SCAN_COMPLETE ||
        scan.size != len || scan.kind != DAFFI_MSG_RESPONSE ||
        daffi_response_split(data, len, &err, &err_len, &result, &result_len) == -1) {
        dfd_stat_add(&loop->stats, DFD_STAT_protocol_errors, 1);
        gw_fail(call, DAFFI_E_PROTOCOL, "a member sent a malformed response over NATS");
    } else if (err_len == 1 && (unsigned char)err[0] == 0xc0) {
        daffi_reply_raw(&call->base, result, result_len);
        if (call->stream != NULL)
            gws_member_opened(call, msg->reply);
        dfd_dispatch_after_handler(call, DAFFI_DONE);
    } else {
        daffi_call_set_raw_error(&call->base, daffi_error_code_of(err, err_len), err, err_len);
        dfd_dispatch_after_handler(call, DAFFI_DONE);
    }
    free(msg);
}

/* The loop index in subject <inbox>.<loop>.<id>...; -1: not one of ours. */
static long gw_loop_of(const dfd_nats_gateway *g, const char *subject)
{
    char *end = NULL;
    unsigned long i = strtoul(subject + g->inbox_len + 1, &end, 10);
    return end != NULL && *end == '.' && i < g->nloops ? (long)i : -1;
}

/* libnats thread: no responders for a request (its subject <inbox>.<loop>.<id>.q
 * names the loop). */
static void gw_on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    dfd_nats_gateway *g = closure;
    long i = gw_loop_of(g, natsMsg_GetSubject(msg));
    if (i < 0) {
        natsMsg_Destroy(msg); /* not one of ours */
        return;
    }
    dfd_nats_mail_msg(&g->srv->loops[i], gw_on_reply_run, msg, NULL);
}

/* Loop 0 (watched, nats-io.h): a member's word about a call; loop 0's own at once,
 * another loop's by mail. */
static void gw_on_word(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    dfd_nats_gateway *g = closure;
    long i = gw_loop_of(g, natsMsg_GetSubject(msg));
    if (i < 0) {
        natsMsg_Destroy(msg);
        return;
    }
    dfd_nats_hand_msg(g->srv->loops, (unsigned)i, gw_on_reply_run, msg, NULL);
}

/* ---- deadlines ------------------------------------------------------------------------- */

static void gw_forget_run(dfd_loop *loop, void *arg)
{
    nats_gw_forget *f = arg;
    dfd_nats_gateway *g = loop->srv->nats_gateway;
    nats_gw_loop *gl = &g->loops[loop->index];
    if (dfd_idmap_get(&gl->pending, f->id) == f->call) {
        dfd_call *call = gw_take(gl, f->id);
        dfd_stat_add(&loop->stats, DFD_STAT_forgotten, 1);
        gw_fail(call, DAFFI_E_TIMEOUT, "the caller's deadline passed");
    }
    free(f);
}

/* The deadline of a call sent over NATS (the call's loop): the TIMEOUT message; the
 * loop forgets the call by mail (a late answer is then counted as unexpected). A
 * queue-group call whose member died before it said "taken" ends here. */
static void gw_expired(dfd_call *call, char *msg, size_t size)
{
    uint64_t ms = (dfd_now_ns() - call->start_ns) / 1000000u;
    snprintf(msg, size, "no member answered '%.100s' over NATS within %llu ms",
             call->base.method, (unsigned long long)ms);
    if (call->notify)
        return;
    nats_gw_forget *f = malloc(sizeof(*f));
    if (f == NULL)
        return; /* kept until an answer comes, as before */
    f->id = call->member_msgid;
    f->call = call;
    if (dfd_loop_post(call->loop, gw_forget_run, free, f) == -1)
        free(f);
}

/* ---- sending ----------------------------------------------------------------------------- */

/* The router's own plugins: a call for its own name, or (no `to`) a callback it has. */
static const dfd_callback *gw_local(const dfd_call *call, const char *to, size_t to_len)
{
    const dfd_config *cfg = call->loop->srv->cfg;
    if (to != NULL && (to_len != strlen(cfg->name) || memcmp(to, cfg->name, to_len) != 0))
        return NULL;
    return dfd_table_find(call->loop->table, call->base.method, call->base.msg.method_len);
}

/* Sends request call (len bytes of payload) to subject with a reply subject of this
 * loop, waiting for the answer in the loop's table; to (may be NULL) is the member it
 * names. The call is linked to c (may be NULL) and its deadline armed. Returns the id
 * it waits under, or 0 when it was answered at once (out of memory, NATS refused). */
static uint32_t gw_request(dfd_conn *c, dfd_call *call, const char *subject, const char *to,
                           size_t to_len, const char *payload, size_t len)
{
    dfd_loop *loop = call->loop;
    dfd_nats_gateway *g = loop->srv->nats_gateway;
    nats_gw_loop *gl = &g->loops[loop->index];
    uint32_t id;
    dfd_stat_add(&loop->stats, DFD_STAT_nats_requests, 1);
    if (call->timeout_ms == 0)
        call->timeout_ms = loop->srv->cfg->default_timeout_ms;
    do
        id = gl->next_id++;
    while (id == 0 || dfd_idmap_get(&gl->pending, id) != NULL ||
           dfd_idmap_get(&gl->streams, id) != NULL);
    char reply[sizeof(g->inbox) + 32];
    snprintf(reply, sizeof(reply), "%s.%u.%u.q", g->inbox, loop->index, id);
    char *target = to != NULL ? strndup(to, to_len) : NULL;
    if ((to != NULL && (target == NULL || dfd_idmap_put(&gl->targets, id, target) == -1)) ||
        dfd_idmap_put(&gl->pending, id, call) == -1) {
        if (target != NULL) {
            dfd_idmap_take(&gl->targets, id); /* when it got in */
            free(target);
        }
        dfd_router_refuse(c, call, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    call->member_msgid = id;
    call->to_member = to != NULL;
    call->expire = gw_expired;
    if (c != NULL)
        dfd_conn_link(c, call);
    atomic_store(&call->state, DFD_CALL_RUNNING);
    dfd_dispatch_arm_deadline(call);
    if (dfd_nats_publish(loop, g->nc, subject, reply, payload, len) == -1) {
        gw_take(gl, id);
        gw_fail(call, DAFFI_E_UNAVAILABLE, "NATS refused the request (disconnected?)");
        return 0;
    }
    return id;
}

void dfd_nats_route(dfd_conn *c, dfd_call *call, const char *to, size_t to_len)
{
    dfd_loop *loop = call->loop;
    dfd_server *srv = loop->srv;
    dfd_nats_gateway *g = srv->nats_gateway;
    const char *method = call->base.method;
    size_t len = call->base.msg.method_len;
    char subject[DFD_NATS_SUBJECT_MAX], text[400];

    const dfd_callback *cb = gw_local(call, to, to_len);
    if (cb != NULL) {
        dfd_dispatch_local(c, call, cb);
        return;
    }
    if (strlen(method) != len ||
        dfd_nats_subject(subject, sizeof(subject), srv, to != NULL ? "member" : "call",
                         to != NULL ? to : method, to != NULL ? to_len : len) == -1) {
        snprintf(text, sizeof(text), "%s '%.*s' cannot be a NATS subject",
                 to != NULL ? "member name" : "callback",
                 (int)((to != NULL ? to_len : len) > 200 ? 200 : (to != NULL ? to_len : len)),
                 to != NULL ? to : method);
        dfd_router_refuse(c, call, to != NULL ? DAFFI_E_UNAVAILABLE : DAFFI_E_NO_CALLBACK, text);
        return;
    }
    if (call->timeout_ms == 0)
        call->timeout_ms = srv->cfg->default_timeout_ms;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (call->notify)
        daffi_pack_notify(&pk, "daffi.call", 10, 3);
    else
        daffi_pack_request(&pk, 0, "daffi.call", 10, 3);
    dfd_router_pack_call_params(call, &pk, &sb);
    if (call->notify) {
        /* fire and forget: one member of the queue group (or the one named) gets it */
        dfd_stat_add(&loop->stats, DFD_STAT_nats_requests, 1);
        dfd_nats_publish(loop, g->nc, subject, NULL, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        dfd_call_free(call);
        return;
    }
    /* per callback, as a router counts the calls it forwards ("_forwarded", callback) */
    if (loop->snapshot != NULL)
        dfd_router_count(call, dfd_snapshot_slot(loop->snapshot, method, len));
    gw_request(c, call, subject, to, to_len, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- streams ------------------------------------------------------------------------- */

static void gws_chunk(dfd_conn *c, dfd_stream *s, dfd_call *chunk);
static int gws_finish(dfd_conn *c, dfd_call *call, dfd_stream *s, int abort);
static void gws_sender_gone(dfd_conn *c, dfd_stream *s);
static void gws_opened(dfd_call *call);

static const dfd_stream_ops gws_ops = {
    .chunk = gws_chunk,
    .finish = gws_finish,
    .sender_gone = gws_sender_gone,
};

static const dfd_call_hooks gws_open_hooks = {
    .before_answer = gws_opened,
};

/* Publishes [2, method, [member id]] (abort) to the stream's member. */
static void gws_note_member(dfd_loop *loop, dfd_stream *s, const char *method)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    dfd_stream_pack_note(&sb, method, s->member_id, -1);
    dfd_nats_publish(loop, loop->srv->nats_gateway->nc, s->nats_to, NULL, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Takes s out of the loop's table of NATS streams (its reference released). */
static void gws_unregister(nats_gw_loop *gl, dfd_stream *s)
{
    if (dfd_idmap_get(&gl->streams, s->nats_id) == s) {
        dfd_idmap_take(&gl->streams, s->nats_id);
        dfd_stream_release(s);
    }
}

int dfd_nats_stream_open(dfd_conn *c, dfd_call *call, unsigned window, const char *to,
                         size_t to_len)
{
    dfd_server *srv = c->loop->srv;
    const msgpack_object *target = daffi_arg(&call->base, 0);
    char subject[DFD_NATS_SUBJECT_MAX];
    if (target == NULL || target->type != MSGPACK_OBJECT_STR) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                       "daffi.stream takes [callback, [params...], {\"to\": name, "
                       "\"window\": int}]");
        return 0;
    }
    if (dfd_nats_subject(subject, sizeof(subject), srv, to != NULL ? "member" : "call",
                         to != NULL ? to : target->via.str.ptr,
                         to != NULL ? to_len : target->via.str.size) == -1) {
        dfd_conn_error(c, call->msgid, to != NULL ? DAFFI_E_UNAVAILABLE : DAFFI_E_NO_CALLBACK,
                       "the stream's callback or member cannot be a NATS subject");
        return 0;
    }
    dfd_stream *s = dfd_stream_new(&gws_ops);
    if (s == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    s->window = window;
    s->caller_loop = c->loop;
    call->stream = s; /* the open call's reference */
    call->hooks = &gws_open_hooks;
    /* [0, 0, "daffi.stream", [callback, params, options]] as the caller sent it */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 0);
    daffi_pack_cstr(&pk, "daffi.stream");
    msgpack_sbuffer_write(&sb, call->base.msg.params_raw, call->base.msg.params_raw_len);
    gw_request(c, call, subject, to, to_len, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 1;
}

/* The member accepted the open: its answer {"stream": id, "window": n}, and the subject
 * its steps go to in the answer's reply. */
static void gws_member_opened(dfd_call *call, const char *member_subject)
{
    dfd_stream *s = call->stream;
    if (dfd_stream_relay_read_opened(call, s) == -1)
        return;
    if (member_subject == NULL || (s->nats_to = strdup(member_subject)) == NULL) {
        daffi_call_set_error(&call->base, DAFFI_E_PROTOCOL,
                             "the member answered daffi.stream without a stream subject");
        return;
    }
    s->nats_id = call->member_msgid;
}

/* The open's answer is final (before it is written): register the stream under the
 * caller's own id and the open's id, and rewrite the result with the caller's id. */
static void gws_opened(dfd_call *call)
{
    dfd_stream *s = call->stream;
    dfd_conn *c = call->conn;
    dfd_loop *loop = call->loop;
    nats_gw_loop *gl = &loop->srv->nats_gateway->loops[loop->index];
    if (call->base.outcome != DAFFI_OUTCOME_RESULT || s->nats_to == NULL)
        return; /* refused or failed: relayed as is */
    if (c == NULL || call->answered) {
        gws_note_member(loop, s, "daffi.abort"); /* the caller left as it opened */
        return;
    }
    if (dfd_stream_relay_answer_opened(c, call, s) == -1) {
        gws_note_member(loop, s, "daffi.abort");
        return;
    }
    if (dfd_idmap_put(&gl->streams, s->nats_id, s) == 0)
        dfd_stream_retain(s); /* the loop's table: credit finds it */
    else
        atomic_store(&s->dead, 1);
}

/* A chunk from the caller: to the member with its id, within the window. */
static void gws_chunk(dfd_conn *c, dfd_stream *s, dfd_call *chunk)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (dfd_stream_relay_pack_chunk(c, s, chunk, &sb) == 0)
        dfd_nats_publish(c->loop, c->loop->srv->nats_gateway->nc, s->nats_to, NULL, sb.data,
                         sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* The caller ends (or aborts) the stream: daffi.end goes to the member as a request. */
static int gws_finish(dfd_conn *c, dfd_call *call, dfd_stream *s, int abort)
{
    dfd_loop *loop = c->loop;
    nats_gw_loop *gl = &loop->srv->nats_gateway->loops[loop->index];
    int dead = atomic_load(&s->dead), overrun = atomic_load(&s->overrun);
    gws_unregister(gl, s);
    if (abort || dead || overrun) {
        if (!dead)
            gws_note_member(loop, s, "daffi.abort");
        dfd_stream_relay_refuse_end(c, call, abort, dead);
        dfd_stream_release(s);
        return 0;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (call->notify)
        daffi_pack_notify(&pk, "daffi.end", 9, 1);
    else
        daffi_pack_request(&pk, 0, "daffi.end", 9, 1);
    msgpack_pack_uint32(&pk, s->member_id);
    int taken = 0;
    if (call->notify) {
        dfd_nats_publish(loop, loop->srv->nats_gateway->nc, s->nats_to, NULL, sb.data, sb.size);
    } else {
        taken = 1;
        if (gw_request(c, call, s->nats_to, NULL, 0, sb.data, sb.size) != 0)
            call->to_member = 1; /* nobody there: the member went away (UNAVAILABLE) */
    }
    msgpack_sbuffer_destroy(&sb);
    dfd_stream_release(s); /* the caller's table's */
    return taken;
}

/* The caller's connection closed: abort at the member. */
static void gws_sender_gone(dfd_conn *c, dfd_stream *s)
{
    dfd_loop *loop = c->loop;
    s->caller = NULL;
    if (!atomic_load(&s->dead))
        gws_note_member(loop, s, "daffi.abort");
    gws_unregister(&loop->srv->nats_gateway->loops[loop->index], s);
    dfd_stream_release(s);
}

/* A credit or an abort the member sent for stream id (on the open's reply + ".s"). */
static void gws_from_member(dfd_loop *loop, nats_gw_loop *gl, uint32_t id,
                            const dfd_nats_note *msg)
{
    dfd_stream *s = dfd_idmap_get(&gl->streams, id);
    daffi_scan scan;
    daffi_scan_init(&scan);
    msgpack_zone zone;
    daffi_msg m;
    if (s == NULL) {
        dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
        return;
    }
    if (daffi_scan_feed(&scan, msg->data, msg->len, &loop->srv->limits) != DAFFI_SCAN_COMPLETE ||
        scan.kind != DAFFI_MSG_NOTIFY)
        return;
    msgpack_zone_init(&zone, 256);
    if (daffi_msg_decode(msg->data, msg->len, &zone, &m) == 0 && m.params != NULL &&
        m.params->type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object *p = m.params->via.array.ptr;
        uint32_t n = m.params->via.array.size;
        if (m.method_len == 12 && memcmp(m.method, "daffi.credit", 12) == 0 && n >= 2 &&
            p[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            uint64_t k = p[1].via.u64;
            dfd_stream_relay_credited(s, k);
            if (s->caller != NULL)
                dfd_stream_send_note(s->caller, "daffi.credit", s->caller_id, (int64_t)k);
        } else if (m.method_len == 11 && memcmp(m.method, "daffi.abort", 11) == 0) {
            atomic_store(&s->dead, 1);
            if (s->caller != NULL)
                dfd_stream_send_note(s->caller, "daffi.abort", s->caller_id, -1);
            gws_unregister(gl, s);
        }
    }
    msgpack_zone_destroy(&zone);
}

/* ---- a member lost -------------------------------------------------------------------- */

typedef struct gw_lost_scan {
    const char *name;
    uint32_t *ids;
    size_t n, cap;
} gw_lost_scan;

static void gw_lost_collect(uint32_t id, void *val, void *arg)
{
    gw_lost_scan *scan = arg;
    if (strcmp(val, scan->name) != 0)
        return;
    if (scan->n == scan->cap) {
        size_t cap = scan->cap ? scan->cap * 2 : 16;
        uint32_t *grown = realloc(scan->ids, cap * sizeof(*grown));
        if (grown == NULL)
            return; /* that call ends at its deadline instead */
        scan->ids = grown;
        scan->cap = cap;
    }
    scan->ids[scan->n++] = id;
}

/* What a member-lost mail carries: its name and the prefix of its stream subjects. */
typedef struct gw_lost {
    const char *why;             /* static */
    char *name;
    char *streams;               /* "<ns>.stream.<session>." or NULL */
} gw_lost;

static void gw_lost_free(void *arg)
{
    gw_lost *l = arg;
    free(l->name);
    free(l->streams);
    free(l);
}

typedef struct gw_lost_streams {
    const char *prefix;
    dfd_stream **found;
    size_t n, cap;
} gw_lost_streams;

static void gw_lost_stream_collect(uint32_t id, void *val, void *arg)
{
    (void)id;
    gw_lost_streams *ls = arg;
    dfd_stream *s = val;
    if (s->nats_to == NULL || strncmp(s->nats_to, ls->prefix, strlen(ls->prefix)) != 0)
        return;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 8;
        dfd_stream **grown = realloc(ls->found, cap * sizeof(*grown));
        if (grown == NULL)
            return; /* that stream's end answers UNAVAILABLE instead */
        ls->found = grown;
        ls->cap = cap;
    }
    ls->found[ls->n++] = s;
}

/* Mail to every loop: the calls this loop sent to member l->name fail now, and the
 * streams it relays to it are aborted at their callers. */
static void gw_member_lost_run(dfd_loop *loop, void *arg)
{
    gw_lost *l = arg;
    dfd_nats_gateway *g = loop->srv->nats_gateway;
    nats_gw_loop *gl = &g->loops[loop->index];
    gw_lost_scan scan = { .name = l->name };
    char text[400];
    dfd_idmap_each(&gl->targets, gw_lost_collect, &scan);
    snprintf(text, sizeof(text), "member '%.200s' stopped answering with the call in flight "
             "(%s)", l->name, l->why);
    for (size_t i = 0; i < scan.n; i++) {
        dfd_call *call = gw_take(gl, scan.ids[i]);
        if (call != NULL)
            gw_fail(call, DAFFI_E_UNAVAILABLE, text);
    }
    free(scan.ids);
    if (l->streams != NULL) {
        gw_lost_streams ls = { .prefix = l->streams };
        dfd_idmap_each(&gl->streams, gw_lost_stream_collect, &ls);
        for (size_t i = 0; i < ls.n; i++) {
            dfd_stream *s = ls.found[i];
            atomic_store(&s->dead, 1);
            if (s->caller != NULL)
                dfd_stream_send_note(s->caller, "daffi.abort", s->caller_id, -1);
            gws_unregister(gl, s);
        }
        free(ls.found);
    }
    gw_lost_free(l);
}

void dfd_nats_gateway_member_lost(dfd_server *srv, const char *name, const char *session,
                                  const char *why)
{
    dfd_nats_gateway *g = srv->nats_gateway;
    char prefix[DFD_NATS_SUBJECT_MAX];
    int has_prefix = session != NULL && *session != '\0' &&
                     dfd_nats_subject(prefix, sizeof(prefix) - 1, srv, "stream", session,
                                      strlen(session)) == 0;
    if (has_prefix)
        strcat(prefix, ".");
    for (unsigned i = 0; g != NULL && i < g->nloops; i++) {
        gw_lost *l = calloc(1, sizeof(*l));
        if (l != NULL) {
            l->why = why;
            l->name = strdup(name);
            l->streams = has_prefix ? strdup(prefix) : NULL;
        }
        if (l == NULL || l->name == NULL || (has_prefix && l->streams == NULL) ||
            dfd_loop_post(&srv->loops[i], gw_member_lost_run, gw_lost_free, l) == -1) {
            if (l != NULL)
                gw_lost_free(l); /* its calls end at their deadline instead */
        }
    }
}

/* ---- life ------------------------------------------------------------------------------------ */

static void gw_on_reconnect(void *arg)
{
    dfd_nats_gateway *g = arg;
    if (g->presence != NULL)
        dfd_nats_presence_sync(g->presence);
}

dfd_nats_gateway *dfd_nats_gateway_start(dfd_server *srv)
{
    unsigned n = srv->nloops;
    dfd_nats_gateway *g = calloc(1, sizeof(*g) + n * sizeof(nats_gw_loop));
    if (g == NULL)
        return NULL;
    g->srv = srv;
    g->nloops = n;
    g->ctx.what = "router";
    g->ctx.on_reconnect = gw_on_reconnect;
    g->ctx.arg = g;
    for (unsigned i = 0; i < n; i++)
        g->loops[i].next_id = 1;
    srv->nats_gateway = g;
    natsInbox *inbox = NULL;
    char subject[sizeof(g->inbox) + 16];
    g->nc = dfd_nats_connect(srv, srv->cfg->nats, &g->ctx);
    if (g->nc == NULL || natsInbox_Create(&inbox) != NATS_OK) {
        dfd_nats_gateway_stop(g);
        dfd_nats_shutdown(); /* its callbacks read g until libnats' threads are gone */
        dfd_nats_gateway_free(g);
        srv->nats_gateway = NULL;
        return NULL;
    }
    snprintf(g->inbox, sizeof(g->inbox), "%s", (const char *)inbox);
    natsInbox_Destroy(inbox);
    g->inbox_len = strlen(g->inbox);
    snprintf(subject, sizeof(subject), "%s.*.*.q", g->inbox);
    natsStatus s = natsConnection_Subscribe(&g->inbox_sub, g->nc, subject, gw_on_reply, g);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(g->inbox_sub, -1, -1);
    if (s == NATS_OK) {
        snprintf(subject, sizeof(subject), "%s.*.*.a.*", g->inbox);
        s = dfd_nats_io_subscribe(g->ctx.io, &g->words_sub, g->nc, subject, NULL, gw_on_word, g);
    }
    if (s != NATS_OK || (g->presence = dfd_nats_presence_start(srv, g->nc)) == NULL) {
        dfd_error("nats.subscribe", "subject=%s status=\"%s\"", subject, natsStatus_GetText(s));
        dfd_nats_gateway_stop(g);
        dfd_nats_shutdown(); /* its callbacks read g until libnats' threads are gone */
        dfd_nats_gateway_free(g);
        srv->nats_gateway = NULL;
        return NULL;
    }
    dfd_info("nats.gateway", "servers=%s namespace=%s msg=\"routing every call over NATS\"",
             srv->cfg->nats, dfd_nats_namespace(srv));
    return g;
}

natsConnection *dfd_nats_gateway_conn(const dfd_nats_gateway *g)
{
    return g->nc;
}

static void gw_free_target(void *val, void *arg)
{
    (void)arg;
    free(val);
}

static void gw_release_stream(void *val, void *arg)
{
    (void)arg;
    dfd_stream_release(val);
}

void dfd_nats_gateway_stop(dfd_nats_gateway *g)
{
    if (g == NULL)
        return;
    dfd_nats_presence_stop(g->presence);
    if (g->inbox_sub != NULL)
        natsSubscription_Destroy(g->inbox_sub);
    g->inbox_sub = NULL;
    dfd_nats_io_unsubscribe(g->ctx.io, &g->words_sub);
    atomic_store(&g->ctx.closing, 1);
    dfd_nats_io_pump(g->ctx.io, g->nc, 200); /* the loops are joined: their last words */
    natsConnection_Destroy(g->nc);
    g->nc = NULL;
}

void dfd_nats_gateway_free(dfd_nats_gateway *g)
{
    if (g == NULL)
        return;
    dfd_nats_presence_free(g->presence);
    dfd_nats_io_free(g->ctx.io);
    for (unsigned i = 0; i < g->nloops; i++) {
        dfd_idmap_free(&g->loops[i].pending); /* the calls are their loops' */
        dfd_idmap_drain(&g->loops[i].targets, gw_free_target, NULL);
        dfd_idmap_free(&g->loops[i].targets);
        dfd_idmap_drain(&g->loops[i].streams, gw_release_stream, NULL);
        dfd_idmap_free(&g->loops[i].streams);
    }
    free(g);
}
