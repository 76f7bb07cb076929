/*
 * client_async.c - the calls of an asynchronous client: creating and closing it, the
 * table of calls awaiting a reply (indexed by msgid), the queue of calls that wait
 * for a connection, per-call timers, delivering outcomes to completion callbacks, and
 * closing it. Starting calls and the public *_async call functions are
 * client_async_call.c. The connection itself (connect, reconnect,
 * read, write) is client_async_io.c; exposed callbacks are client_serve.c.
 *
 * A call's life: daffi_rpc_async() takes a record from the free list and gives it a
 * msgid whose slot in the table is free. Connected, the request is appended to the
 * output buffer and written at once (or at the end of the read batch that runs);
 * otherwise its encoded bytes wait in the queue until a connection comes. Exactly one
 * of reply, timer, connection drop or daffi_close() completes it: whichever comes
 * first removes the record from the table (and queue) and stops its timer before the
 * callback runs, so the others find nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_int.h"

#define TABLE_INITIAL 64u     /* slots of a new call table (power of two) */
#define FREE_CALLS_KEEP 4096u /* recycled call records kept per client */

/* ---- the call table --------------------------------------------------------------- */

/* Doubles t. Each call keeps a distinct slot: distinct low bits of msgid stay distinct
 * with one more bit. Returns 0, or -1 when memory ran out. */
static int table_grow(daffi__acall_table *t)
{
    uint32_t size = (t->mask + 1) * 2, i;
    daffi__acall **slot = calloc(size, sizeof(*slot));

    if (slot == NULL)
        return -1;
    for (i = 0; i <= t->mask; i++)
        if (t->slot[i] != NULL)
            slot[t->slot[i]->msgid & (size - 1)] = t->slot[i];
    free(t->slot);
    t->slot = slot;
    t->mask = size - 1;
    return 0;
}

/* See client_int.h. Kept at most half full, so a free slot is found in a probe or two. */
int daffi__acall_table_put(daffi_client *c, daffi__acall *call)
{
    daffi__acall_table *t = &c->as->table;
    uint32_t id;

    if ((t->count + 1) * 2 > t->mask + 1 && table_grow(t) == -1)
        return -1;
    do
        id = c->next_msgid++;
    while (t->slot[id & t->mask] != NULL);
    call->msgid = id;
    t->slot[id & t->mask] = call;
    t->count++;
    return 0;
}

/* Returns the call awaiting the reply to msgid, or NULL. */
static daffi__acall *table_get(const daffi__acall_table *t, uint32_t msgid)
{
    daffi__acall *call = t->slot[msgid & t->mask];

    return call != NULL && call->msgid == msgid ? call : NULL;
}

/* See client_int.h. */
void daffi__acall_table_del(daffi__acall_table *t, const daffi__acall *call)
{
    t->slot[call->msgid & t->mask] = NULL;
    t->count--;
}

/* ---- the wait queue --------------------------------------------------------------- */

/* See client_int.h. */
void daffi__acall_queue_push(daffi__acall_queue *q, daffi__acall *call)
{
    call->next = NULL;
    call->prev = q->tail;
    if (q->tail != NULL)
        q->tail->next = call;
    else
        q->head = call;
    q->tail = call;
    q->bytes += call->req_len;
}

/* Unlinks call from q, wherever it is. */
static void queue_del(daffi__acall_queue *q, daffi__acall *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        q->head = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    else
        q->tail = call->prev;
    call->next = call->prev = NULL;
    q->bytes -= call->req_len;
}

/* ---- call records ----------------------------------------------------------------- */

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg);

/* See client_int.h. */
daffi__acall *daffi__acall_get(daffi_client *c)
{
    daffi__async *as = c->as;
    daffi__acall *call = as->free_calls;

    if (call != NULL) {
        as->free_calls = call->next;
        as->nfree--;
    } else {
        call = malloc(sizeof(*call));
        if (call == NULL)
            return NULL;
    }
    memset(call, 0, offsetof(daffi__acall, timer));
    call->c = c;
    /* assigned each time: the memory may be fresh, and re-assigning an idle event is
     * only a few stores */
    evtimer_assign(&call->timer, as->base, call_timeout_cb, call);
    call->method[0] = '\0';
    return call;
}

/* See client_int.h: kept for reuse up to FREE_CALLS_KEEP records, then freed. */
void daffi__acall_recycle(daffi_client *c, daffi__acall *call)
{
    daffi__async *as = c->as;

    free(call->req);
    call->req = NULL;
    if (as->nfree >= FREE_CALLS_KEEP) {
        free(call);
        return;
    }
    call->next = as->free_calls;
    as->free_calls = call;
    as->nfree++;
}

/* Takes call out of everything that can complete it (table, queue, timer). */
static void call_unlink(daffi_client *c, daffi__acall *call)
{
    if (call->timer_on) {
        evtimer_del(&call->timer);
        call->timer_on = 0;
    }
    if (call->state == DAFFI__ACALL_QUEUED)
        queue_del(&c->as->queue, call);
    if (!call->is_notify)
        daffi__acall_table_del(&c->as->table, call);
}

/* Delivers an outcome to an unlinked call's callback (res or err), then recycles the
 * record. The result and error are released after the callback (it may have moved
 * them out). */
static void call_complete(daffi_client *c, daffi__acall *call, daffi_result *res,
                          daffi_error *err)
{
    daffi_reply_fn fn = call->fn;
    void *arg = call->arg;

    daffi__acall_recycle(c, call);
    if (fn != NULL)
        fn(c, err == NULL ? res : NULL, err, arg);
    daffi_result_free(res);
    daffi_error_clear(err);
}

/* Fails an unlinked call with code and a formatted message, elapsed time set. */
static void call_fail(daffi_client *c, daffi__acall *call, int code, const char *fmt, ...)
    DAFFI_CL_PRINTF(4, 5);
static void call_fail(daffi_client *c, daffi__acall *call, int code, const char *fmt, ...)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    char *msg = NULL;
    va_list ap;

    memset(&res, 0, sizeof(res));
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) == -1)
        msg = NULL;
    va_end(ap);
    daffi__err_set(&err, code, "%s", msg != NULL ? msg : "(out of memory)");
    free(msg);
    err.elapsed_ms = (daffi__now_ns() - call->start_ns) / 1000000;
    call_complete(c, call, &res, &err);
}

/* A call's deadline passed: TIMEOUT when it was sent, UNAVAILABLE when it never found
 * a connection. */
static void call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    daffi__acall *call = arg;
    daffi_client *c = call->c;
    int total = call->timeout_ms;

    int64_t left_us;

    (void)fd;
    (void)what;
    call->timer_on = 0;
    /* libevent's clock is coarse (and cached during a loop pass): a timer may fire a
     * few ms early. A timeout must never be reported before it passed. */
    left_us = ((int64_t)total * 1000000 - (daffi__now_ns() - call->start_ns)) / 1000;
    if (left_us > 0) {
        struct timeval tv = {(time_t)(left_us / 1000000), (suseconds_t)(left_us % 1000000)};

        evtimer_add(&call->timer, &tv);
        call->timer_on = 1;
        return;
    }
    daffi__as_enter(c);
    if (call->state == DAFFI__ACALL_QUEUED) {
        call_unlink(c, call);
        call_fail(c, call, DAFFI_E_UNAVAILABLE, "%s: not connected within %d ms (%s)",
                  c->address, total, c->closed_why != NULL ? c->closed_why : "connecting");
    } else {
        call_unlink(c, call);
        c->stats.timeouts++;
        call_fail(c, call, DAFFI_E_TIMEOUT, "no reply to '%s' from %s within %d ms",
                  call->method, c->address, total);
    }
    daffi__as_leave(c);
}

/* ---- re-entrancy ------------------------------------------------------------------ */

/* Frees everything an asynchronous client owns, then the client. Nothing refers to it
 * any more: its events are stopped and its calls completed. */
static void async_free(daffi_client *c)
{
    daffi__async *as = c->as;
    daffi__acall *call;

    while ((call = as->free_calls) != NULL) {
        as->free_calls = call->next;
        free(call);
    }
    free(as->table.slot);
    if (as->ai_list != NULL)
        freeaddrinfo(as->ai_list);
    msgpack_sbuffer_destroy(&as->scratch);
    free(as->name);
    free(as);
    c->as = NULL;
    daffi__client_free(c);
}

/* See client_int.h. */
void daffi__as_enter(daffi_client *c)
{
    c->as->depth++;
}

/* See client_int.h. Frees c when it is the outermost frame of a closed client. */
int daffi__as_leave(daffi_client *c)
{
    if (--c->as->depth == 0 && c->as->closing) {
        async_free(c);
        return 1;
    }
    return 0;
}

/* ---- creating and closing --------------------------------------------------------- */

/* Sets as->name from opts (or "client-HOST-PID"). Returns 0, or -1 without memory. */
static int async_name(daffi__async *as, const daffi_client_opts *opts)
{
    char host[256];

    if (opts != NULL && opts->name != NULL) {
        as->name = strdup(opts->name);
        return as->name != NULL ? 0 : -1;
    }
    if (gethostname(host, sizeof(host)) == -1)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    return asprintf(&as->name, "client-%s-%ld", host, (long)getpid()) == -1 ? -1 : 0;
}

/* See client.h. */
daffi_client *daffi_client_new(struct event_base *base, const char *address,
                               const daffi_client_opts *opts, daffi_error *err)
{
    daffi_client *c;
    daffi__async *as;

    if (base == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_client_new: event_base is NULL");
        return NULL;
    }
    if (opts != NULL && opts->name != NULL &&
        (opts->name[0] == '\0' || strlen(opts->name) > 255)) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "name '%s': must be 1 to 255 bytes",
                       opts->name);
        return NULL;
    }
    c = daffi__client_alloc(address, opts, err);
    if (c == NULL)
        return NULL;
    as = calloc(1, sizeof(*as));
    if (as == NULL || (as->table.slot = calloc(TABLE_INITIAL, sizeof(*as->table.slot))) == NULL ||
        async_name(as, opts) == -1) {
        if (as != NULL) {
            free(as->table.slot);
            free(as->name);
        }
        free(as);
        daffi__client_free(c);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "%s: out of memory", address);
        return NULL;
    }
    c->as = as;
    as->base = base;
    as->table.mask = TABLE_INITIAL - 1;
    msgpack_sbuffer_init(&as->scratch);
    daffi__as_connect(c);
    if (as->state == DAFFI__AS_CLOSED) {
        /* failed at once (no such socket, name does not resolve) and no reconnect */
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "cannot connect to %s: %s", address,
                       c->closed_why != NULL ? c->closed_why : "failed");
        daffi__as_stop_io(c);
        async_free(c);
        return NULL;
    }
    daffi_error_clear(err);
    return c;
}

/* See client.h. */
void daffi_client_on_state(daffi_client *c, daffi_state_fn fn, void *arg)
{
    if (c == NULL || c->as == NULL)
        return;
    c->as->on_state = fn;
    c->as->on_state_arg = arg;
}

/* Completes every call of c: those in flight (SENT) with code, and with all also those
 * waiting for a connection, with UNAVAILABLE; notifications waiting are dropped.
 * reason is the message. Returns how many calls were failed. */
static uint64_t fail_calls(daffi_client *c, int all, int code, const char *reason)
{
    daffi__async *as = c->as;
    daffi__acall *list = NULL, *call, *next;
    uint64_t n = 0;
    uint32_t i;

    /* unlink first, call back after: a callback may make new calls (which must not
     * be failed by this pass) or close the client */
    for (i = 0; i <= as->table.mask; i++) {
        call = as->table.slot[i];
        if (call == NULL || (!all && call->state != DAFFI__ACALL_SENT))
            continue;
        call_unlink(c, call);
        call->next = list;
        list = call;
    }
    while (all && as->queue.head != NULL) {
        call = as->queue.head; /* only notifications are left in the queue */
        call_unlink(c, call);
        daffi__acall_recycle(c, call);
    }
    for (call = list; call != NULL; call = next) {
        next = call->next;
        n++;
        call_fail(c, call, call->state == DAFFI__ACALL_SENT ? code : DAFFI_E_UNAVAILABLE,
                  "%s: %s (call '%s')", c->address, reason, call->method);
    }
    return n;
}

/* See client_int.h. */
void daffi__async_close(daffi_client *c)
{
    daffi__async *as = c->as;

    if (as->closing)
        return;
    as->closing = 1;
    as->state = DAFFI__AS_CLOSED;
    daffi__as_enter(c);
    daffi__as_stop_io(c);
    daffi__serve_release(c);
    daffi__streams_lost(c, 1); /* the caller still owns them: they must not see c */
    fail_calls(c, 1, DAFFI_E_UNAVAILABLE, "client closed");
    daffi__as_leave(c);
}

/* See client_int.h. */
int daffi__async_connected(const daffi_client *c)
{
    return c->as->state == DAFFI__AS_CONNECTED;
}

/* ---- connection events (from client_async_io.c) -------------------------------- */

/* Calls the state callback, if any, inside an enter/leave bracket held by the caller. */
static void notify_state(daffi_client *c, int connected)
{
    daffi_error why = DAFFI_ERROR_INIT;

    if (c->as->on_state == NULL || c->as->closing)
        return;
    if (!connected)
        daffi__err_set(&why, DAFFI_E_UNAVAILABLE, "%s: %s", c->address,
                       c->closed_why != NULL ? c->closed_why : "disconnected");
    c->as->on_state(c, connected, connected ? NULL : &why, c->as->on_state_arg);
    daffi_error_clear(&why);
}

/* The answer to daffi.auth: refused, the reason is kept for what fails next (every
 * call answers DENIED where authentication is required). */
static void auth_done(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    (void)arg;
    if (res != NULL)
        return; /* the library frees it */
    if (err != NULL && err->code != DAFFI_E_UNAVAILABLE)
        daffi__client_set_why(c, "authentication refused (daffi.auth): %s",
                              err->message != NULL ? err->message : "?");
}

/* See client_int.h. The queued calls keep their msgids: the table was emptied of
 * every call of the previous connection. */
void daffi__as_connected(daffi_client *c)
{
    daffi__async *as = c->as;
    daffi__acall *call;

    daffi__as_enter(c);
    /* the token goes first: the peer answers in order */
    if (c->token != NULL) {
        msgpack_object tok, params;
        daffi_error err = DAFFI_ERROR_INIT;
        daffi__auth_params(c, &params, &tok);
        daffi__async_send(c, 0, 0, "daffi.auth", NULL, &params, NULL, 0, 0, 0, auth_done,
                          NULL, &err);
        daffi_error_clear(&err);
    }
    daffi__serve_announce(c);
    while ((call = as->queue.head) != NULL) {
        queue_del(&as->queue, call);
        if (call->req_deadline != 0) {
            /* the peer waits for what is left of the call's time, not all of it */
            int64_t left = call->timeout_ms - (daffi__now_ns() - call->start_ns) / 1000000;

            daffi__put_u32(call->req + call->req_deadline, left < 1 ? 1 : (uint32_t)left);
        }
        c->out.oom = 0;
        if (daffi__out_write(&c->out, call->req, call->req_len) == -1) {
            call->state = DAFFI__ACALL_SENT;
            call_unlink(c, call);
            call_fail(c, call, DAFFI_E_UNAVAILABLE, "%s: out of memory sending '%s'",
                      c->address, call->method);
            continue;
        }
        free(call->req);
        call->req = NULL;
        call->req_len = 0;
        call->state = DAFFI__ACALL_SENT;
        if (call->is_notify)
            daffi__acall_recycle(c, call);
    }
    daffi__as_output_added(c);
    notify_state(c, 1);
    daffi__as_leave(c);
}

/* See client_int.h. */
void daffi__as_disconnected(daffi_client *c, int was_up, int final, int code)
{
    daffi__async *as = c->as;
    uint64_t n;

    daffi__as_enter(c);
    if (was_up) {
        n = fail_calls(c, final, code, c->closed_why != NULL ? c->closed_why : "connection lost");
        c->stats.calls_failed_on_drop += n;
        if (!as->closing)
            daffi__astreams_lost(c);
    } else if (final) {
        fail_calls(c, 1, DAFFI_E_UNAVAILABLE,
                   c->closed_why != NULL ? c->closed_why : "cannot connect");
    }
    if (!as->closing)
        notify_state(c, 0);
    daffi__as_leave(c);
}

/* See client_int.h. */
void daffi__as_response(daffi_client *c, const char *msg, size_t size, const daffi_scan *s)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    daffi__acall *call = table_get(&c->as->table, s->msgid);
    const char *p;
    size_t len;

    if (call == NULL || call->state != DAFFI__ACALL_SENT) {
        /* the reply to a call that timed out, or to nothing we sent */
        c->stats.late_replies++;
        return;
    }
    call_unlink(c, call);
    if (daffi__reply_take(msg, size, call->method, &res, &err) == 0) {
        if (call->is_ping &&
            (daffi_obj_str(&res.obj, &p, &len) == -1 || len != 4 || memcmp(p, "pong", 4) != 0)) {
            daffi_result_free(&res);
            call_fail(c, call, DAFFI_E_PROTOCOL,
                      "%s: daffi.ping answered something else than \"pong\"", c->address);
            return;
        }
        call_complete(c, call, &res, NULL);
        return;
    }
    err.elapsed_ms = (daffi__now_ns() - call->start_ns) / 1000000;
    call_complete(c, call, &res, &err);
}
