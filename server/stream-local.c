/*
 * stream-local.c - a stream received by one of this daffid's stream handlers: the
 * handler's OPEN, CHUNK, END and ABORT steps run inline on the sender's loop, and
 * credit goes back as chunks are consumed (see stream.h).
 */
#include <stdio.h>
#include <string.h>

#include "call.h"
#include "callobj.h"
#include "control.h"
#include "log.h"
#include "plugin.h"
#include "server.h"
#include "stream-int.h"
#include "table.h"
#include "watchdog.h"

/* Runs one step of a local stream's handler. Steps complete inline. */
static void local_step(dfd_stream *s, daffi_stream_step step, const msgpack_object *chunk)
{
    dfd_call *call = s->call;
    call->base.stream_step = step;
    call->base.chunk = chunk;
    dfd_watchdog_enter(call->loop, dfd_callstat_slot(call->loop->srv, call->cb) + 1,
                       dfd_now_ns());
    daffi_status st = call->cb->fn(&call->base);
    dfd_watchdog_leave(call->loop);
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

static void local_chunk(dfd_conn *c, dfd_stream *s, dfd_call *chunk)
{
    if (!s->failed) {
        const msgpack_object *data = daffi_arg(&chunk->base, 1);
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
        uint32_t id = 0;
        dfd_stream_arg_u32(chunk, 0, &id);
        dfd_stream_send_note(c, "daffi.credit", id, s->consumed);
        s->consumed = 0;
    }
}

/* A failed stream's end answers the error; the handler releases what it holds in an
 * ABORT step, which must not change that answer. */
static void local_abort_keeping_error(dfd_stream *s)
{
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

static int local_finish(dfd_conn *c, dfd_call *call, dfd_stream *s, int abort)
{
    if (abort) {
        local_step(s, DAFFI_STREAM_ABORT, NULL);
        local_free(s);
        return 0;
    }
    if (!s->failed)
        local_step(s, DAFFI_STREAM_END, NULL);
    else
        local_abort_keeping_error(s);
    if (!call->notify) {
        s->call->msgid = call->msgid;
        dfd_conn_answer_now(c, s->call);
    }
    local_free(s);
    return 0;
}

static void local_sender_gone(dfd_conn *c, dfd_stream *s)
{
    (void)c;
    local_step(s, DAFFI_STREAM_ABORT, NULL);
    local_free(s);
}

static const dfd_stream_ops local_ops = {
    .chunk = local_chunk,
    .finish = local_finish,
    .sender_gone = local_sender_gone,
};

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

int dfd_stream_local_open(dfd_conn *c, dfd_call *call, unsigned window)
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
    dfd_stream *s = dfd_stream_new(&local_ops);
    if (s == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    dfd_call_set_callback(call, cb);
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
    uint32_t id = dfd_stream_new_id(c);
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
