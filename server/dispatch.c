/*
 * dispatch.c - from a framed request to its answer (see dispatch.h).
 *
 * Completion protocol. A call's `state` moves by compare-and-swap so that exactly one
 * party completes it, whichever thread the handler finishes on:
 *   RUNNING --handler returns DONE--------------------> COMPLETING
 *   RUNNING --handler returns PENDING-----------------> PENDING --daffi_call_done--> COMPLETING
 *   RUNNING --daffi_call_done inside the handler------> DONE_EARLY --handler returns--> COMPLETING
 * COMPLETING calls are finished on their owner loop: inline when already there,
 * otherwise through the loop's mailbox.
 */
#include <stdio.h>
#include <string.h>

#include "blocking.h"
#include "blocks.h"
#include "budget.h"
#include "call.h"
#include "callobj.h"
#include "auth.h"
#include "control.h"
#include "dispatch.h"
#include "log.h"
#include "logfmt.h"
#include "monitor.h"
#include "plugin.h"
#include "server.h"
#include "stream.h"
#include "table.h"
#include "watchdog.h"

static void dispatch_done_op(daffi_call *base);
static int dispatch_cancelled_op(const daffi_call *base);

static int dispatch_reserve_op(daffi_call *base, msgpack_sbuffer *sb, size_t n);

static const daffi_call_ops dispatch_ops = {
    .done = dispatch_done_op,
    .cancelled = dispatch_cancelled_op,
    .reserve = dispatch_reserve_op,
};

static void dispatch_on_timeout(evutil_socket_t fd, short what, void *arg);

/* Arms call->timer for what is left of its deadline, rounded up to the microsecond.
 * Returns 0 when armed, 1 when the deadline has passed. */
static int dispatch_arm_rest(dfd_call *call)
{
    uint64_t due = call->start_ns + call->timeout_ms * 1000000u;
    uint64_t now = dfd_now_ns();
    if (now >= due)
        return 1;
    uint64_t us = (due - now + 999) / 1000;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(&call->timer, &tv);
    call->timer_armed = 1;
    return 0;
}

/* Arms the call's deadline (call->timeout_ms; 0 = none). Owner loop thread only. */
void dfd_dispatch_arm_deadline(dfd_call *call)
{
    if (call->timer_armed || call->timeout_ms == 0)
        return;
    evtimer_assign(&call->timer, call->loop->base, dispatch_on_timeout, call);
    if (dispatch_arm_rest(call) == 1) {
        struct timeval now = {0, 0};
        evtimer_add(&call->timer, &now);
        call->timer_armed = 1;
    }
}

/* Mail: a call completed on another thread (or a queued one got its slot). */
static void dispatch_finish_mail(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_dispatch_finish(arg);
}

static void dispatch_run_mail(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_dispatch_run(arg);
}

/* A call mail the loop never ran (teardown): the call is still the loop's to free. */
static void dispatch_drop_call(void *arg)
{
    dfd_call_free(arg);
}

/* Completes a COMPLETING call on its owner loop: inline or by mail. on_loop was
 * decided by the caller before the call could be handed over. */
static void dispatch_deliver(dfd_call *call, int on_loop)
{
    if (on_loop) {
        dfd_dispatch_finish(call);
        return;
    }
    if (dfd_loop_post(call->loop, dispatch_finish_mail, dispatch_drop_call, call) == -1)
        dfd_error("dispatch.oom", "callback=%s msg=\"cannot post a completion\"",
                  call->base.method);
}

void dfd_dispatch_after_handler(dfd_call *call, daffi_status st)
{
    /* Decided before the hand-off: once the state leaves RUNNING, a daffi_call_done on
     * another thread may complete the call and its loop free it, so a handler that ran
     * off its loop (the blocking pool) must not read the call after the exchange. */
    int on_loop = dfd_loop_is_current(call->loop);
    if (st == DAFFI_PENDING) {
        int expected = DFD_CALL_RUNNING;
        if (atomic_compare_exchange_strong(&call->state, &expected, DFD_CALL_PENDING)) {
            /* on its loop the call cannot be finished before this returns (a
             * completion from elsewhere comes by mail); a blocking call's deadline was
             * armed, and its params decoded, before it left the loop */
            if (on_loop) {
                dfd_budget_hold_params(call);
                dfd_dispatch_arm_deadline(call);
            }
            return;
        }
        /* daffi_call_done() already ran inside the handler (DONE_EARLY) */
    }
    atomic_store(&call->state, DFD_CALL_COMPLETING);
    dispatch_deliver(call, on_loop);
}

static void dispatch_done_op(daffi_call *base)
{
    dfd_call *call = (dfd_call *)base;
    for (;;) {
        int s = atomic_load(&call->state);
        if (s == DFD_CALL_RUNNING) {
            if (atomic_compare_exchange_strong(&call->state, &s, DFD_CALL_DONE_EARLY))
                return;
        } else if (s == DFD_CALL_PENDING) {
            int on_loop = dfd_loop_is_current(call->loop);
            if (atomic_compare_exchange_strong(&call->state, &s, DFD_CALL_COMPLETING)) {
                dispatch_deliver(call, on_loop);
                return;
            }
        } else {
            dfd_error("plugin.misuse", "callback=%s msg=\"daffi_call_done on a call that "
                      "is not running or pending (called twice?)\"", base->method);
            return;
        }
    }
}

static int dispatch_cancelled_op(const daffi_call *base)
{
    const dfd_call *call = (const dfd_call *)base;
    return atomic_load(&call->cancelled);
}

/* A large result takes a block of the loop's cache when the handler runs on the loop
 * (a blocking thread's result grows with realloc: the cache is the loop's alone). */
static int dispatch_reserve_op(daffi_call *base, msgpack_sbuffer *sb, size_t n)
{
    dfd_call *call = (dfd_call *)base;
    if (sb->size + n < DFD_BLOCK_MIN || !dfd_loop_is_current(call->loop))
        return 0;
    return dfd_blocks_grow(&call->loop->blocks, &sb->data, &sb->alloc, sb->size, sb->size + n,
                           call->loop->tick);
}

/* Starts the handler of a call that holds a slot (or needs none); since_ns is when
 * it starts (the watchdog's mark around an inline handler). */
static void dispatch_start(dfd_call *call, uint64_t since_ns)
{
    if (atomic_load(&call->cancelled)) {
        /* the caller left, or the deadline passed, while it waited: skip the work */
        atomic_store(&call->state, DFD_CALL_COMPLETING);
        dfd_dispatch_finish(call);
        return;
    }
    /* a generation served by child processes (isolation = process) takes it here */
    if (call->cb->plugin->forward != NULL) {
        call->cb->plugin->forward(call);
        return;
    }
    atomic_store(&call->state, DFD_CALL_RUNNING);
    if (call->cb->flags & DAFFI_CB_BLOCKING) {
        dfd_budget_hold_params(call); /* decoded here, read there */
        dfd_dispatch_arm_deadline(call);
        if (dfd_blocking_submit(call->loop->srv->blocking, call) == -1) {
            daffi_call_set_error(&call->base, DAFFI_E_SHUTTING_DOWN, "daffid is shutting down");
            atomic_store(&call->state, DFD_CALL_COMPLETING);
            dfd_dispatch_finish(call);
        }
        return;
    }
    dfd_loop *loop = call->loop;
    /* the stats slot (cached when the call was counted) names the callback for the
     * watchdog, which must not follow pointers into a generation unloaded meanwhile */
    dfd_watchdog_enter(loop, atomic_load_explicit(&call->cb->stat_slot, memory_order_relaxed),
                       since_ns);
    daffi_status st = call->cb->fn(&call->base);
    dfd_watchdog_leave(loop);
    dfd_dispatch_after_handler(call, st);
}

void dfd_dispatch_run(dfd_call *call)
{
    dispatch_start(call, dfd_now_ns());
}

/* A call is finished (refused: the code it was refused with before running, or -1):
 * its access log line and its monitor record, each when switched on. */
static void dispatch_observe(const dfd_call *call, const dfd_conn *c, int refused)
{
    dfd_server *srv = call->loop->srv;
    const char *peer = c != NULL ? c->peer : "-";
    if (atomic_load_explicit(&srv->access_log, memory_order_relaxed))
        dfd_log_access(call, peer, refused);
    if (dfd_monitor_on(&srv->monitor))
        dfd_monitor_call(&srv->monitor, call, peer, refused);
}

/* Gives the call's concurrency slot to the next queued call of its plugin, if any. */
static void dispatch_release_slot(dfd_call *call)
{
    if (!call->holds_slot)
        return;
    call->holds_slot = 0;
    dfd_plugin *p = call->cb->plugin;
    pthread_mutex_lock(&p->lock);
    dfd_call *next = p->queue_head;
    if (next != NULL) {
        p->queue_head = next->next;
        if (p->queue_head == NULL)
            p->queue_tail = NULL;
        p->queued--;
        next->next = NULL;
        next->holds_slot = 1;
        atomic_store(&next->state, DFD_CALL_NEW);
    } else {
        p->running--;
    }
    pthread_mutex_unlock(&p->lock);
    /* by mail even on this loop: a chain of inline calls must not recurse */
    if (next != NULL &&
        dfd_loop_post(next->loop, dispatch_run_mail, dispatch_drop_call, next) == -1) {
        dfd_error("dispatch.oom", "callback=%s msg=\"cannot start a queued call\"",
                  next->base.method);
    }
}

void dfd_dispatch_finish(dfd_call *call)
{
    dfd_loop *loop = call->loop;
    if (call->timer_armed) {
        event_del(&call->timer);
        call->timer_armed = 0;
    }
    dispatch_release_slot(call);
    dfd_stats_call_end(loop, call);
    const dfd_call_hooks *h = call->hooks;
    if (h != NULL && h->report != NULL) {
        h->report(call);
        dfd_call_free(call);
        return;
    }
    if (h != NULL && h->before_answer != NULL)
        h->before_answer(call);
    dfd_conn *c = call->conn;
    dispatch_observe(call, c, -1);
    if (c == NULL || call->answered) {
        if (atomic_load(&call->cancelled))
            dfd_stat_add(&loop->stats, DFD_STAT_late_completions, 1);
        if (c != NULL)
            dfd_conn_forget(c, call);
    } else if (call->notify) {
        dfd_conn_forget(c, call);
    } else {
        dfd_conn_answer(c, call);
    }
    dfd_call_free(call);
}

/* Takes a queued call out of its plugin's queue. Returns 1 when it was there. */
static int dispatch_unqueue(dfd_call *call)
{
    int was_queued = 0;
    dfd_plugin *p = call->cb->plugin;
    pthread_mutex_lock(&p->lock);
    if (atomic_load(&call->state) == DFD_CALL_QUEUED) {
        dfd_call **pp = &p->queue_head;
        dfd_call *prev = NULL;
        while (*pp != NULL && *pp != call) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp == call) {
            *pp = call->next;
            if (p->queue_tail == call)
                p->queue_tail = prev;
            p->queued--;
            call->next = NULL;
            was_queued = 1;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return was_queued;
}

/* The deadline of a call that is queued, on the pool, pending, or forwarded: answer
 * TIMEOUT now; wherever the call went stops waiting for it (call->expire), and a
 * handler's later completion is discarded. */
static void dispatch_timeout(dfd_call *call)
{
    dfd_loop *loop = call->loop;
    const dfd_call_hooks *h = call->hooks;
    if (h != NULL && h->deadline != NULL) {
        h->deadline(call);
        return;
    }
    int was_queued = call->kind == DFD_KIND_LOCAL && call->cb != NULL && dispatch_unqueue(call);
    uint64_t ms = (dfd_now_ns() - call->start_ns) / 1000000u;
    char msg[320];
    if (call->expire != NULL)
        call->expire(call, msg, sizeof(msg));
    else
        snprintf(msg, sizeof(msg), "callback '%.100s' did not complete within %llu ms%s",
                 call->base.method, (unsigned long long)ms, was_queued ? " (still queued)" : "");
    dfd_stat_add(&loop->stats, DFD_STAT_timeouts, 1);
    if (was_queued) {
        daffi_call_set_error(&call->base, DAFFI_E_TIMEOUT, msg);
        atomic_store(&call->state, DFD_CALL_COMPLETING);
        dfd_dispatch_finish(call);
        return;
    }
    atomic_store(&call->cancelled, 1);
    if (h != NULL && h->timed_out != NULL) {
        call->answered = 1;
        h->timed_out(call, msg);
    } else if (call->conn != NULL && !call->notify && !call->answered) {
        call->answered = 1;
        dfd_conn *c = call->conn;
        dfd_conn_error(c, call->msgid, DAFFI_E_TIMEOUT, msg);
        dfd_conn_forget(c, call);
    }
    /* last: a handler waiting on the loop stops now, and may complete (free) the call */
    if (atomic_load(&call->state) == DFD_CALL_PENDING)
        daffi_call_fire_cancel(&call->base);
}

static void dispatch_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_call *call = arg;
    dfd_loop *loop = call->loop;
    call->timer_armed = 0;
    /* the loops run libevent's coarse clock (no timerfd syscall per loop pass), which
     * may fire up to a tick early: the deadline is the precise clock's */
    if (dispatch_arm_rest(call) == 0)
        return;
    dfd_loop_batch_begin(loop);
    dispatch_timeout(call);
    dfd_loop_batch_end(loop);
}

/* A message past the memory budget (budget.h), refused before its bytes are copied:
 * OVERLOADED with the figures; a notification is dropped, as one past a queue is. */
static void dispatch_refuse_memory(dfd_conn *c, uint32_t msgid, int notify, size_t size)
{
    char msg[256];

    dfd_stat_add(&c->loop->stats, DFD_STAT_memory_refused, 1);
    dfd_stat_add(&c->loop->stats, DFD_STAT_overloaded, 1);
    if (notify)
        return;
    dfd_budget_refusal(c, size, msg, sizeof(msg));
    dfd_conn_error(c, msgid, DAFFI_E_OVERLOADED, msg);
}

/* Packs and sends an error for a request that never became a running call. */
static void dispatch_refuse(dfd_conn *c, dfd_call *call, int code, const char *msg)
{
    if (!call->notify)
        dfd_conn_error(c, call->msgid, code, msg);
    dfd_dispatch_log_refused(c, call, code);
    dfd_call_free(call);
}

void dfd_dispatch_log_refused(dfd_conn *c, dfd_call *call, int code)
{
    dispatch_observe(call, c, code);
}

void dfd_dispatch_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                          uint32_t msgid)
{
    dfd_loop *loop = c->loop;
    if (kind == DAFFI_MSG_RESPONSE) {
        /* a caller has no call of ours outstanding: the owners that do (a router's
         * members, a worker's link) take responses before they come here */
        dfd_stat_add(&loop->stats, DFD_STAT_unexpected_responses, 1);
        return;
    }
    int notify = kind == DAFFI_MSG_NOTIFY;
    dfd_stat_add(&loop->stats, notify ? DFD_STAT_notifications : DFD_STAT_requests, 1);
    if (!dfd_budget_fits(c, size)) {
        dispatch_refuse_memory(c, msgid, notify, size);
        return;
    }

    dfd_call *call = dfd_call_new(loop);
    if (call == NULL) {
        if (!notify)
            dfd_conn_error(c, msgid, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    call->msgid = msgid;
    call->notify = notify;
    call->start_ns = dfd_now_ns();
    call->base.ops = &dispatch_ops;
    /* the connection's scanner read the envelope of these bytes: the call takes it from
     * there and decodes its params when a handler asks (bytes from elsewhere, which no
     * owner sends today, are decoded whole). Asked before the input may be taken. */
    const daffi_scan *scan = dfd_conn_scan_of(c, bytes, size);
    /* a large request alone in the read buffer becomes the call's without a copy */
    size_t cap = 0;
    char *own = size >= DFD_BLOCK_MIN ? dfd_conn_take_input(c, bytes, size, &cap) : NULL;
    if ((own != NULL ? daffi_call_adopt(&call->base, own, cap, size, scan)
                     : daffi_call_load(&call->base, bytes, size, scan)) == -1) {
        dispatch_refuse(c, call, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    /* a worker keeps serving what its router still sends while it withdraws */
    if (loop->draining && !c->keep_serving) {
        dispatch_refuse(c, call, DAFFI_E_SHUTTING_DOWN, "daffid is shutting down");
        return;
    }
    /* [auth]: not authenticated yet, or a callback its identity may not call (the rules
     * of the last reload) */
    if (c->rules != NULL)
        dfd_auth_refresh(c);
    if ((c->auth_pending || c->may_call != NULL) && dfd_auth_check_call(c, call) == -1) {
        dfd_dispatch_log_refused(c, call, DAFFI_E_DENIED);
        dfd_call_free(call);
        return;
    }
    const char *method = call->base.method;
    size_t len = call->base.msg.method_len;
    if (!notify && c->pending >= loop->srv->cfg->max_pending) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%u calls already pending on this connection (max_pending)",
                 c->pending);
        dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
        dispatch_refuse(c, call, DAFFI_E_OVERLOADED, msg);
        return;
    }
    if (len >= 6 && memcmp(method, "daffi.", 6) == 0) {
        if (dfd_control_handle(c, call) == 0)
            dfd_call_free(call);
        return;
    }
    loop->srv->route(c, call);
}

int dfd_dispatch_detached(dfd_loop *loop, const char *bytes, size_t size, uint32_t tag,
                          const dfd_call_hooks *hooks, char *why, size_t why_size)
{
    daffi_scan scan;
    daffi_scan_init(&scan);
    daffi_scan_result r = daffi_scan_feed(&scan, bytes, size, &loop->srv->limits);
    if (r != DAFFI_SCAN_COMPLETE || scan.size != size ||
        (scan.kind != DAFFI_MSG_REQUEST && scan.kind != DAFFI_MSG_NOTIFY)) {
        if (r == DAFFI_SCAN_TOO_LARGE) {
            snprintf(why, why_size, "the message exceeds max_message");
            dfd_stat_add(&loop->stats, DFD_STAT_too_large, 1);
            return DAFFI_E_TOO_LARGE;
        }
        snprintf(why, why_size, "not a MessagePack-RPC request");
        dfd_stat_add(&loop->stats, DFD_STAT_protocol_errors, 1);
        return DAFFI_E_PROTOCOL;
    }
    int notify = scan.kind == DAFFI_MSG_NOTIFY;
    dfd_stat_add(&loop->stats, notify ? DFD_STAT_notifications : DFD_STAT_requests, 1);
    /* the memory budget, as for a connection's call (dispatch_refuse_memory): the
     * server's, as no connection has a share of it */
    if (!dfd_budget_loop_fits(loop, size)) {
        dfd_stat_add(&loop->stats, DFD_STAT_memory_refused, 1);
        dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
        dfd_budget_refusal_loop(loop, size, why, why_size);
        return DAFFI_E_OVERLOADED;
    }
    dfd_call *call = dfd_call_new(loop);
    if (call == NULL) {
        snprintf(why, why_size, "out of memory");
        dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
        return DAFFI_E_OVERLOADED;
    }
    call->msgid = tag;
    call->notify = notify;
    call->start_ns = dfd_now_ns();
    call->base.ops = &dispatch_ops;
    call->hooks = hooks;
    if (daffi_call_load(&call->base, bytes, size, &scan) == -1) {
        dfd_call_free(call);
        snprintf(why, why_size, "out of memory");
        dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
        return DAFFI_E_OVERLOADED;
    }
    dfd_budget_hold_call(call); /* released when the call is freed */
    /* from here every outcome, errors too, goes to hooks->report */
    const char *method = call->base.method;
    size_t len = call->base.msg.method_len;
    dfd_call_opts o = {0};
    char msg[320];
    int code = 0;
    if (len == 10 && memcmp(method, "daffi.call", 10) == 0) {
        if (dfd_call_opts_parse(call, DFD_OPT_TIMEOUT, &o) == -1 ||
            daffi_call_unwrap(&call->base) == -1) {
            code = DAFFI_E_BAD_ARGS;
            snprintf(msg, sizeof(msg), "daffi.call takes [callback, [params...], "
                     "{\"timeout_ms\": int}]");
        }
        call->timeout_ms = o.timeout_ms;
        method = call->base.method;
        len = call->base.msg.method_len;
    }
    const dfd_callback *cb = code == 0 ? dfd_table_find(loop->table, method, len) : NULL;
    if (code == 0 && (cb == NULL || strlen(method) != len)) {
        code = DAFFI_E_NO_CALLBACK;
        snprintf(msg, sizeof(msg), "no callback '%.*s' here", (int)(len > 200 ? 200 : len),
                 method);
        dfd_stat_add(&loop->stats, notify ? DFD_STAT_unknown_notifications
                                          : DFD_STAT_no_callback, 1);
    }
    if (code != 0) {
        daffi_call_set_error(&call->base, code, msg);
        atomic_store(&call->state, DFD_CALL_COMPLETING);
        dfd_dispatch_finish(call);
        return 0;
    }
    dfd_dispatch_local(NULL, call, cb);
    return 0;
}

void dfd_dispatch_route_local(dfd_conn *c, dfd_call *call)
{
    dfd_loop *loop = call->loop;
    const char *method = call->base.method;
    size_t len = call->base.msg.method_len;
    int notify = call->notify;
    const dfd_callback *cb = dfd_table_find(loop->table, method, len);
    if (cb == NULL || strlen(method) != len) {
        dfd_dispatch_log_refused(c, call, DAFFI_E_NO_CALLBACK);
        if (notify) {
            char name[160];
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
            dfd_debug("call.unknown_notification", "peer=%s method=%s", c->peer,
                      dfd_logfmt_value_n(name, sizeof(name), method, len > 64 ? 64 : len));
            dfd_call_free(call);
            return;
        }
        dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
        dfd_control_no_callback(c, call);
        dfd_call_free(call);
        return;
    }
    dfd_dispatch_local(c, call, cb);
}

void dfd_dispatch_local(dfd_conn *c, dfd_call *call, const dfd_callback *cb)
{
    dfd_loop *loop = call->loop;
    if (cb->flags & DAFFI_CB_STREAM) {
        char msg[320];
        snprintf(msg, sizeof(msg), "callback '%.200s' is a stream handler: open it with "
                 "daffi.stream", cb->name);
        daffi_call_set_error(&call->base, DAFFI_E_BAD_ARGS, msg);
        if (c != NULL)
            dfd_conn_link(c, call);
        atomic_store(&call->state, DFD_CALL_COMPLETING);
        dfd_dispatch_finish(call);
        return;
    }
    dfd_plugin *p = cb->plugin;
    dfd_call_set_callback(call, cb);
    dfd_stats_call_start(loop, cb);
    /* the caller's deadline (sent with the call, or travelled from a router) and the
     * plugin's own timeout: the sooner wins; neither: the server's default */
    if (call->timeout_ms == 0)
        call->timeout_ms = p->timeout_ms ? p->timeout_ms : loop->srv->cfg->default_timeout_ms;
    else if (p->timeout_ms != 0 && p->timeout_ms < call->timeout_ms)
        call->timeout_ms = p->timeout_ms;
    if (c != NULL)
        dfd_conn_link(c, call);

    /* started now: the clock read when the message arrived is close enough */
    if (p->concurrency == 0) {
        dispatch_start(call, call->start_ns);
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (p->running < p->concurrency) {
        p->running++;
        call->holds_slot = 1;
        pthread_mutex_unlock(&p->lock);
        dispatch_start(call, call->start_ns);
        return;
    }
    if (p->queued < p->queue) {
        atomic_store(&call->state, DFD_CALL_QUEUED);
        call->next = NULL;
        if (p->queue_tail)
            p->queue_tail->next = call;
        else
            p->queue_head = call;
        p->queue_tail = call;
        p->queued++;
        pthread_mutex_unlock(&p->lock);
        dfd_dispatch_arm_deadline(call);
        return;
    }
    unsigned running = p->running, queued = p->queued;
    pthread_mutex_unlock(&p->lock);
    char msg[200];
    snprintf(msg, sizeof(msg), "plugin '%s' is busy: %u running (concurrency %u), %u queued "
             "(queue %u)", p->name, running, p->concurrency, queued, p->queue);
    dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
    daffi_call_set_error(&call->base, DAFFI_E_OVERLOADED, msg);
    atomic_store(&call->state, DFD_CALL_COMPLETING);
    dfd_dispatch_finish(call);
}

/* The connection's owner for a caller (the default for accepted connections): its
 * streams end with it. */
static void dispatch_caller_closed(dfd_conn *c)
{
    dfd_stream_conn_closed(c);
}

const dfd_conn_ops dfd_caller_ops = {
    .message = dfd_dispatch_message,
    .closed = dispatch_caller_closed,
};
