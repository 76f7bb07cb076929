/*
 * client_async_call.c - starting the calls of an asynchronous client: the checks
 * every send makes, encoding a request or notification (plain, or wrapped in
 * daffi.call when it carries a member name or a deadline), queueing it for a
 * connection or handing it to the output, its timer, and the public *_async call
 * functions. The records, the msgid table and completion are client_async.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* Checks what every asynchronous send needs. Returns 0, or -1 with err set. */
static int check_send(daffi_client *c, const char *method, int timeout_ms, int is_notify,
                      daffi_reply_fn fn, daffi_error *err)
{
    if (c == NULL || method == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "%s is NULL", c == NULL ? "client" : "method");
        return -1;
    }
    if (c->as == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "'%s': an asynchronous call on a synchronous "
                       "client (made by daffi_connect): use daffi_client_new", method);
        return -1;
    }
    if (!is_notify && fn == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "'%s': no completion callback", method);
        return -1;
    }
    if (timeout_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "timeout %d ms: must be >= 0 (0: forever)",
                       timeout_ms);
        return -1;
    }
    if (c->as->state == DAFFI__AS_CLOSED) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "%s: not connected (%s)", c->address,
                       c->as->closing ? "client closed"
                       : c->closed_why != NULL ? c->closed_why : "closed");
        return -1;
    }
    if (c->as->state == DAFFI__AS_CONNECTED && c->out.len - c->out.pos > c->lim.max_message) {
        daffi__err_set(err, DAFFI_E_OVERLOADED,
                       "%s: %zu bytes still wait to be written (the peer is not reading)",
                       c->address, c->out.len - c->out.pos);
        return -1;
    }
    if (c->as->state != DAFFI__AS_CONNECTED && c->as->queue.bytes > c->lim.max_message) {
        daffi__err_set(err, DAFFI_E_OVERLOADED,
                       "%s: %zu bytes of calls already wait for the connection",
                       c->address, c->as->queue.bytes);
        return -1;
    }
    return 0;
}

/* Moves the message just appended to c->out (from mark on) into call->req, so it can
 * wait for a connection. Returns 0, or -1 without memory (the bytes are dropped). */
static int call_hold_bytes(daffi_client *c, daffi__acall *call, size_t mark)
{
    size_t n = c->out.len - mark;

    call->req = malloc(n);
    if (call->req != NULL)
        memcpy(call->req, c->out.p + mark, n);
    c->out.len = mark;
    daffi__out_shrink_if_idle(&c->out);
    if (call->req == NULL)
        return -1;
    call->req_len = n;
    return 0;
}

/* See client_int.h: the body of every asynchronous call. */
int daffi__async_call_raw(daffi_client *c, int is_notify, const char *method,
                          const char *params, size_t params_len, int timeout_ms,
                          int grace_ms, daffi_reply_fn fn, void *arg, daffi_error *err)
{
    return daffi__async_send(c, is_notify, 0, method, NULL, NULL, params, params_len,
                             timeout_ms, grace_ms, fn, arg, err);
}

/* See client_int.h. */
int daffi__async_send(daffi_client *c, int is_notify, int is_ping, const char *method,
                      const char *to, const msgpack_object *params, const char *raw,
                      size_t raw_len, int timeout_ms, int grace_ms, daffi_reply_fn fn,
                      void *arg, daffi_error *err)
{
    daffi__async *as;
    daffi__acall *call;
    daffi__outmsg m;
    size_t mark, deadline_at;
    int connected;

    if (check_send(c, method, timeout_ms, is_notify, fn, err) == -1 ||
        daffi__check_to(method, to, err) == -1)
        return -1;
    as = c->as;
    connected = as->state == DAFFI__AS_CONNECTED;
    memset(&m, 0, sizeof(m));
    m.is_notify = is_notify;
    m.method = method;
    m.params = params;
    m.raw = raw;
    m.raw_len = raw_len;
    m.to = to;
    m.deadline_ms = is_notify ? 0 : daffi__deadline_to_send(c, method, timeout_ms);
    if (connected && is_notify) {
        /* nothing to remember: straight into the output */
        if (daffi__append(c, &m, NULL, err) == -1)
            return -1;
        c->stats.notifications++;
        daffi__as_output_added(c);
        return 0;
    }
    call = daffi__acall_get(c);
    if (call == NULL || (!is_notify && daffi__acall_table_put(c, call) == -1)) {
        if (call != NULL)
            daffi__acall_recycle(c, call);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "'%s': out of memory", method);
        return -1;
    }
    call->is_notify = is_notify;
    call->is_ping = is_ping;
    call->fn = fn;
    call->arg = arg;
    call->start_ns = daffi__now_ns();
    snprintf(call->method, sizeof(call->method), "%s", method);
    mark = c->out.len - c->out.pos; /* where daffi__append() starts, after compaction */
    m.msgid = call->msgid;
    if (daffi__append(c, &m, &deadline_at, err) == -1) {
        if (!is_notify)
            daffi__acall_table_del(&as->table, call);
        daffi__acall_recycle(c, call);
        return -1;
    }
    if (!connected) {
        if (call_hold_bytes(c, call, mark) == -1) {
            if (!is_notify)
                daffi__acall_table_del(&as->table, call);
            daffi__acall_recycle(c, call);
            daffi__err_set(err, DAFFI_E_UNAVAILABLE, "'%s': out of memory", method);
            return -1;
        }
        call->req_deadline = deadline_at;
        call->state = DAFFI__ACALL_QUEUED;
        daffi__acall_queue_push(&as->queue, call);
    } else {
        call->state = DAFFI__ACALL_SENT;
    }
    if (is_notify)
        c->stats.notifications++;
    else
        c->stats.calls++;
    if (timeout_ms > 0 && !is_notify) {
        struct timeval tv;
        int64_t ms = (int64_t)timeout_ms + grace_ms;

        call->timeout_ms = (int)(ms > 0x7fffffff ? 0x7fffffff : ms);
        tv.tv_sec = (time_t)(ms / 1000);
        tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
        evtimer_add(&call->timer, &tv);
        call->timer_on = 1;
    }
    if (connected)
        daffi__as_output_added(c);
    return 0;
}

/* ---- the public call functions ---------------------------------------------------- */

/* See client.h. */
int daffi_rpc_async(daffi_client *c, const char *method, const msgpack_object *params,
                    int timeout_ms, daffi_reply_fn fn, void *arg, daffi_error *err)
{
    return daffi__async_send(c, 0, 0, method, NULL, params, NULL, 0, timeout_ms, 0, fn, arg, err);
}

/* See client.h. */
int daffi_rpc_raw_async(daffi_client *c, const char *method, const char *params,
                        size_t params_len, int timeout_ms, daffi_reply_fn fn, void *arg,
                        daffi_error *err)
{
    if (params == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: NULL");
        return -1;
    }
    return daffi__async_send(c, 0, 0, method, NULL, NULL, params, params_len, timeout_ms, 0, fn,
                             arg, err);
}

/* See client.h. */
int daffi_notify_async(daffi_client *c, const char *method, const msgpack_object *params,
                       daffi_error *err)
{
    return daffi__async_send(c, 1, 0, method, NULL, params, NULL, 0, 0, 0, NULL, NULL, err);
}

/* See client.h. */
int daffi_notify_raw_async(daffi_client *c, const char *method, const char *params,
                           size_t params_len, daffi_error *err)
{
    if (params == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: NULL");
        return -1;
    }
    return daffi__async_send(c, 1, 0, method, NULL, NULL, params, params_len, 0, 0, NULL, NULL,
                             err);
}

/* See client.h. */
int daffi_ping_async(daffi_client *c, int timeout_ms, daffi_reply_fn fn, void *arg,
                     daffi_error *err)
{
    return daffi__async_send(c, 0, 1, "daffi.ping", NULL, NULL, NULL, 0, timeout_ms, 0, fn, arg,
                             err);
}

/* See client.h. */
int daffi_rpc_with_async(daffi_client *c, const char *method, const msgpack_object *params,
                         const daffi_rpc_opts *opts, daffi_reply_fn fn, void *arg,
                         daffi_error *err)
{
    static const daffi_rpc_opts none;
    const daffi_rpc_opts *o = opts != NULL ? opts : &none;

    return daffi__async_send(c, 0, 0, method, o->to, params, NULL, 0, o->timeout_ms, 0, fn,
                             arg, err);
}

/* See client.h. */
int daffi_rpc_raw_with_async(daffi_client *c, const char *method, const char *params,
                             size_t params_len, const daffi_rpc_opts *opts,
                             daffi_reply_fn fn, void *arg, daffi_error *err)
{
    static const daffi_rpc_opts none;
    const daffi_rpc_opts *o = opts != NULL ? opts : &none;

    if (params == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "params: NULL");
        return -1;
    }
    return daffi__async_send(c, 0, 0, method, o->to, NULL, params, params_len, o->timeout_ms,
                             0, fn, arg, err);
}
