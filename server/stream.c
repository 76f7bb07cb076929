/*
 * stream.c - streams: local receivers and router relays (see stream.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "plugin.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "stream.h"
#include "table.h"

#define STREAM_WINDOW_DEFAULT 16u
#define STREAM_WINDOW_MAX 1024u

struct dfd_stream {
    atomic_long refs;
    int relay;                  /* 0: a local handler; 1: a router relay */
    unsigned window;

    /* local: on the receiving connection's loop */
    dfd_call *call;             /* the open call: handler, arguments, outcome */
    unsigned consumed;          /* chunks consumed since the last credit */
    int failed;                 /* an error is set in call's outcome */

    /* relay */
    dfd_loop *caller_loop;
    dfd_conn *caller;           /* on caller_loop only; NULL once it left */
    uint32_t caller_id;
    dfd_member *member;         /* a reference */
    uint32_t member_id;
    atomic_uint outstanding;    /* chunks sent to the member minus credit returned */
    atomic_int dead;            /* the member went away or aborted */
    atomic_int overrun;         /* the sender ignored its window */
};

/* A DFD_MAIL_STREAM mail: what to do with a relay stream on the receiving loop. */
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

static dfd_stream *stream_new(void)
{
    dfd_stream *s = calloc(1, sizeof(*s));
    if (s != NULL)
        atomic_init(&s->refs, 1);
    return s;
}

static void stream_retain(dfd_stream *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void dfd_stream_release(dfd_stream *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    dfd_member_release(s->member);
    free(s);
}

/* Reads a uint32 argument. */
static int arg_u32(const dfd_call *call, size_t i, uint32_t *out)
{
    uint64_t v;
    if (daffi_arg_uint(&call->base, i, &v) == -1 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static uint32_t conn_new_stream_id(dfd_conn *c)
{
    uint32_t id = c->next_stream_id++;
    while (id == 0 || dfd_idmap_get(&c->streams, id) != NULL)
        id = c->next_stream_id++;
    return id;
}

/* Packs [2, method, [id, k]] (credit, abort with k < 0 omitted) into sb. */
static void pack_stream_note(msgpack_sbuffer *sb, const char *method, uint32_t id, int64_t k)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    daffi_pack_notify(&pk, method, strlen(method), k >= 0 ? 2 : 1);
    msgpack_pack_uint32(&pk, id);
    if (k >= 0)
        msgpack_pack_int64(&pk, k);
}

static void send_note(dfd_conn *c, const char *method, uint32_t id, int64_t k)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_stream_note(&sb, method, id, k);
    dfd_conn_send_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Answers an open with {"stream": id, "window": n}. */
static void answer_opened(dfd_conn *c, uint32_t msgid, uint32_t id, unsigned window)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_response_ok(&pk, msgid);
    msgpack_pack_map(&pk, 2);
    daffi_pack_cstr(&pk, "stream");
    msgpack_pack_uint32(&pk, id);
    daffi_pack_cstr(&pk, "window");
    msgpack_pack_unsigned_int(&pk, window);
    dfd_conn_write_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Runs one step of a local stream's handler; returns the handler's status. */
static void local_step(dfd_stream *s, daffi_stream_step step, const msgpack_object *chunk)
{
    dfd_call *call = s->call;
    call->base.stream_step = step;
    call->base.chunk = chunk;
    daffi_status st = call->cb->fn(&call->base);
    call->base.chunk = NULL;
    if (st != DAFFI_DONE) {
        dfd_error("plugin.misuse", "callback=%s msg=\"a stream step returned PENDING; "
                  "steps complete inline\"", call->base.method);
        daffi_call_set_error(&call->base, DAFFI_E_HANDLER_ERROR,
                             "the stream handler did not complete a step inline");
    }
}

static void local_free(dfd_stream *s)
{
    dfd_call_free(s->call);
    s->call = NULL;
    dfd_stream_release(s);
}

/* Parses daffi.stream's options: window (1..1024) and to. Returns 0 or -1. */
static int open_options(const dfd_call *call, unsigned *window, const char **to, size_t *to_len)
{
    const msgpack_object *opts = daffi_arg(&call->base, 2);
    *window = STREAM_WINDOW_DEFAULT;
    *to = NULL;
    *to_len = 0;
    if (opts == NULL || opts->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (opts->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < opts->via.map.size; i++) {
        const msgpack_object *k = &opts->via.map.ptr[i].key;
        const msgpack_object *v = &opts->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_NIL)
            continue;
        if (k->via.str.size == 6 && memcmp(k->via.str.ptr, "window", 6) == 0) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0)
                return -1;
            *window = v->via.u64 > STREAM_WINDOW_MAX ? STREAM_WINDOW_MAX : (unsigned)v->via.u64;
        } else if (k->via.str.size == 2 && memcmp(k->via.str.ptr, "to", 2) == 0) {
            if (v->type != MSGPACK_OBJECT_STR)
                return -1;
            *to = v->via.str.ptr;
            *to_len = v->via.str.size;
        }
    }
    return 0;
}

/* Opens a local stream for an (unwrapped) daffi.stream call. Returns 0 (the caller
 * frees the call) or 1 (the stream keeps it). */
static int local_open(dfd_conn *c, dfd_call *call, unsigned window)
{
    const dfd_callback *cb = dfd_table_find(c->loop->table, call->base.method,
                                            call->base.msg.method_len);
    char msg[360];
    if (cb == NULL) {
        dfd_control_no_callback(c, call);
        return 0;
    }
    if (!(cb->flags & DAFFI_CB_STREAM)) {
        snprintf(msg, sizeof(msg), "callback '%.200s' is not a stream handler", cb->name);
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
        return 0;
    }
    dfd_stream *s = stream_new();
    if (s == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    dfd_plugin_retain(cb->plugin);
    call->cb = cb;
    call->kind = DFD_KIND_LOCAL;
    call->base.host = &cb->plugin->host;
    call->base.state = cb->plugin->state;
    s->call = call;
    s->window = window;
    local_step(s, DAFFI_STREAM_OPEN, NULL);
    if (call->base.outcome == DAFFI_OUTCOME_ERROR || call->base.outcome == DAFFI_OUTCOME_RAW_ERROR) {
        dfd_conn_answer_now(c, call); /* the refusal */
        s->call = NULL;
        dfd_stream_release(s);
        return 0; /* the caller frees the call (and its plugin reference) */
    }
    call->base.outcome = DAFFI_OUTCOME_NONE;
    call->base.result.size = 0;
    uint32_t id = conn_new_stream_id(c);
    if (dfd_idmap_put(&c->streams, id, s) == -1) {
        local_step(s, DAFFI_STREAM_ABORT, NULL);
        s->call = NULL;
        dfd_stream_release(s);
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    answer_opened(c, call->msgid, id, window);
    return 1;
}

/* ---- relays (router) --------------------------------------------------------------- */

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
    stream_retain(s);
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    if (to == here) {
        dfd_stream_on_mail(to, m);
        return;
    }
    if (dfd_loop_post(to, DFD_MAIL_STREAM, -1, 0, m) == -1)
        dfd_stream_mail_free(m);
}

void dfd_stream_mail_free(void *mail)
{
    stream_mail *m = mail;
    dfd_stream_release(m->s);
    free(m);
}

void dfd_stream_on_mail(dfd_loop *loop, void *mail)
{
    (void)loop; /* every operation names its connection through the stream */
    stream_mail *m = mail;
    dfd_stream *s = m->s;
    dfd_member *mem = s->member;
    switch (m->op) {
    case STREAM_OP_UNREGISTER:
        if (mem->conn != NULL && dfd_idmap_get(&mem->conn->member_streams, s->member_id) == s) {
            dfd_idmap_take(&mem->conn->member_streams, s->member_id);
            dfd_stream_release(s);
        }
        break;
    case STREAM_OP_TO_MEMBER:
        if (mem->conn != NULL && !atomic_load(&s->dead))
            dfd_conn_send_raw(mem->conn, m->data, m->len);
        break;
    case STREAM_OP_TO_CALLER:
        if (s->caller != NULL)
            dfd_conn_send_raw(s->caller, m->data, m->len);
        break;
    case STREAM_OP_MEMBER_GONE:
        if (s->caller != NULL)
            send_note(s->caller, "daffi.abort", s->caller_id, -1);
        break;
    }
    dfd_stream_mail_free(m);
}

/* Router: daffi.stream for a remote member. The open request goes to the member as is
 * (the member's daffid opens a local stream); the answer comes back through
 * dfd_stream_relay_opened. */
static int relay_open(dfd_conn *c, dfd_call *call, unsigned window, const char *to,
                      size_t to_len)
{
    const msgpack_object *target = daffi_arg(&call->base, 0);
    if (target == NULL || target->type != MSGPACK_OBJECT_STR) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                       "daffi.stream takes [callback, [params...], {\"to\": name, "
                       "\"window\": int}]");
        return 0;
    }
    dfd_stream *s = stream_new();
    if (s == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    s->relay = 1;
    s->window = window;
    s->caller_loop = c->loop;
    call->stream = s; /* the open call's reference */
    dfd_router_route_stream(c, call, target->via.str.ptr, target->via.str.size, to, to_len);
    return 1;
}

void dfd_stream_relay_member_opened(dfd_conn *c, dfd_call *call)
{
    dfd_stream *s = call->stream;
    /* the member's answer: {"stream": id, "window": n} */
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
        return;
    }
    s->member = call->member;
    dfd_member_retain(s->member);
    s->member_id = (uint32_t)mid;
    if (win < s->window)
        s->window = (unsigned)win;
    if (dfd_idmap_put(&c->member_streams, s->member_id, s) == 0)
        stream_retain(s); /* the member's table */
    else
        atomic_store(&s->dead, 1);
}

void dfd_stream_relay_opened(dfd_call *call)
{
    dfd_stream *s = call->stream;
    dfd_conn *c = call->conn;
    if (call->base.outcome != DAFFI_OUTCOME_RESULT || s->member == NULL)
        return; /* refused or failed: relayed as is */
    if (c == NULL || call->answered || atomic_load(&s->dead)) {
        /* the caller left (or timed out) while the member opened: abort it there */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        pack_stream_note(&sb, "daffi.abort", s->member_id, -1);
        if (!atomic_load(&s->dead))
            relay_post(s->member->loop, call->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        relay_post(s->member->loop, call->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
        if (c != NULL && !call->answered)
            daffi_call_set_error(&call->base, DAFFI_E_UNAVAILABLE,
                                 "the stream's receiver went away as it opened");
        return;
    }
    s->caller = c;
    s->caller_id = conn_new_stream_id(c);
    if (dfd_idmap_put(&c->streams, s->caller_id, s) == -1) {
        relay_post(s->member->loop, call->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
        daffi_call_set_error(&call->base, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    stream_retain(s); /* the caller's table */
    msgpack_packer *pk = daffi_reply_packer(&call->base);
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "stream");
    msgpack_pack_uint32(pk, s->caller_id);
    daffi_pack_cstr(pk, "window");
    msgpack_pack_unsigned_int(pk, s->window);
}

/* Router: a chunk from the caller: forward it with the member's id, within the window. */
static void relay_chunk(dfd_conn *c, dfd_stream *s, dfd_call *chunk)
{
    if (atomic_load(&s->dead) || atomic_load(&s->overrun))
        return;
    if (atomic_load(&s->outstanding) >= s->window) {
        atomic_store(&s->overrun, 1);
        dfd_warn("stream.overrun", "peer=%s stream=%u window=%u msg=\"the sender ignored its "
                 "window; the chunk is dropped and the stream fails\"", c->peer, s->caller_id,
                 s->window);
        return;
    }
    const char *data;
    size_t len;
    if (daffi_arg_raw(&chunk->base, 1, &data, &len) == -1)
        return;
    atomic_fetch_add(&s->outstanding, 1);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_notify(&pk, "daffi.chunk", 11, 2);
    msgpack_pack_uint32(&pk, s->member_id);
    msgpack_sbuffer_write(&sb, data, len);
    relay_post(s->member->loop, c->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
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
        pack_stream_note(&sb, "daffi.abort", s->member_id, -1);
        if (!dead)
            relay_post(s->member->loop, c->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        relay_post(s->member->loop, c->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
        if (!abort && !call->notify)
            dfd_conn_error(c, call->msgid, dead ? DAFFI_E_UNAVAILABLE : DAFFI_E_PROTOCOL,
                           dead ? "the stream's receiver went away"
                                : "chunks were sent past the stream's window");
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
    dfd_member *m = s->member;
    dfd_member_retain(m);
    dfd_router_forward_to(c, call, m);
    relay_post(m->loop, c->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
    dfd_stream_release(s);
    return 1;
}

/* Router, member's loop: credit or abort from the member for one of its streams. */
static void relay_from_member(dfd_conn *c, dfd_call *call, int abort)
{
    uint32_t mid;
    if (arg_u32(call, 0, &mid) == -1)
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
    unsigned cur = atomic_load(&s->outstanding);
    unsigned dec = (uint64_t)k > cur ? cur : (unsigned)k;
    atomic_fetch_sub(&s->outstanding, dec);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_stream_note(&sb, "daffi.credit", s->caller_id, k);
    relay_post(s->caller_loop, c->loop, STREAM_OP_TO_CALLER, s, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the control methods ------------------------------------------------------------- */

int dfd_stream_control(dfd_conn *c, dfd_call *call, const char *step)
{
    dfd_loop *loop = c->loop;
    if (strcmp(step, "stream") == 0) {
        unsigned window;
        const char *to;
        size_t to_len;
        if (call->notify) {
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
            return 0;
        }
        if (open_options(call, &window, &to, &to_len) == -1) {
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                           "daffi.stream takes [callback, [params...], {\"to\": name, "
                           "\"window\": 1-1024}]");
            return 0;
        }
        if (loop->srv->cfg->role == DFD_ROLE_ROUTER && !dfd_router_is_local(loop, call, to, to_len))
            return relay_open(c, call, window, to, to_len);
        if (daffi_call_unwrap(&call->base) == -1) {
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                           "daffi.stream takes [callback, [params...], {\"window\": int}]");
            return 0;
        }
        return local_open(c, call, window);
    }
    uint32_t id;
    if (arg_u32(call, 0, &id) == -1) {
        if (!call->notify) {
            char msg[120];
            snprintf(msg, sizeof(msg), "daffi.%s takes [stream id, ...]", step);
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
        }
        return 0;
    }
    if (strcmp(step, "credit") == 0 || (strcmp(step, "abort") == 0 && c->member != NULL &&
                                        dfd_idmap_get(&c->member_streams, id) != NULL)) {
        if (c->member != NULL)
            relay_from_member(c, call, step[0] == 'a');
        else
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
        return 0;
    }
    int is_chunk = strcmp(step, "chunk") == 0;
    int is_end = strcmp(step, "end") == 0;
    dfd_stream *s = is_chunk ? dfd_idmap_get(&c->streams, id) : dfd_idmap_take(&c->streams, id);
    if (s == NULL) {
        if (call->notify) {
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
        } else {
            char msg[120];
            snprintf(msg, sizeof(msg), "no stream %u on this connection", id);
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
        }
        return 0;
    }
    if (s->relay) {
        if (is_chunk) {
            relay_chunk(c, s, call);
            return 0;
        }
        return relay_finish(c, call, s, !is_end);
    }
    if (is_chunk) {
        if (!s->failed) {
            const msgpack_object *data = daffi_arg(&call->base, 1);
            static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
            local_step(s, DAFFI_STREAM_CHUNK, data ? data : &nil);
            daffi_outcome o = s->call->base.outcome;
            if (o == DAFFI_OUTCOME_ERROR || o == DAFFI_OUTCOME_RAW_ERROR)
                s->failed = 1;
            else
                s->call->base.outcome = DAFFI_OUTCOME_NONE;
        }
        s->call->base.chunk_index++;
        if (++s->consumed * 2 >= s->window) {
            send_note(c, "daffi.credit", id, s->consumed);
            s->consumed = 0;
        }
        return 0;
    }
    if (!is_end) { /* abort */
        local_step(s, DAFFI_STREAM_ABORT, NULL);
        local_free(s);
        return 0;
    }
    if (!s->failed) {
        local_step(s, DAFFI_STREAM_END, NULL);
    } else {
        /* a failed stream's end answers the error; the handler releases what it holds
         * in an ABORT step, which must not change that answer */
        daffi_call *b = &s->call->base;
        int code = b->error_code;
        daffi_outcome outcome = b->outcome;
        char saved[sizeof(b->error_msg)];
        memcpy(saved, b->error_msg, sizeof(saved));
        msgpack_sbuffer raw = b->result;
        msgpack_sbuffer_init(&b->result);
        local_step(s, DAFFI_STREAM_ABORT, NULL);
        msgpack_sbuffer_destroy(&b->result);
        b->result = raw;
        b->outcome = outcome;
        b->error_code = code;
        memcpy(b->error_msg, saved, sizeof(saved));
    }
    if (!call->notify) {
        s->call->msgid = call->msgid;
        dfd_conn_answer_now(c, s->call);
    }
    local_free(s);
    return 0;
}

static void stream_closed_one(void *val, void *arg)
{
    dfd_stream *s = val;
    dfd_conn *c = arg;
    if (!s->relay) {
        local_step(s, DAFFI_STREAM_ABORT, NULL);
        local_free(s);
        return;
    }
    /* the caller left: abort at the member */
    s->caller = NULL;
    if (!atomic_load(&s->dead)) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        pack_stream_note(&sb, "daffi.abort", s->member_id, -1);
        relay_post(s->member->loop, c->loop, STREAM_OP_TO_MEMBER, s, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    relay_post(s->member->loop, c->loop, STREAM_OP_UNREGISTER, s, NULL, 0);
    dfd_stream_release(s);
}

static void stream_member_gone_one(void *val, void *arg)
{
    dfd_stream *s = val;
    dfd_conn *c = arg;
    atomic_store(&s->dead, 1);
    relay_post(s->caller_loop, c->loop, STREAM_OP_MEMBER_GONE, s, NULL, 0);
    dfd_stream_release(s);
}

void dfd_stream_conn_closed(dfd_conn *c)
{
    dfd_idmap_drain(&c->streams, stream_closed_one, c);
    dfd_idmap_drain(&c->member_streams, stream_member_gone_one, c);
    dfd_idmap_free(&c->streams);
    dfd_idmap_free(&c->member_streams);
}
