/*
 * router.c - routing in the router role: pick, forward, relay the answer, forget at
 * the deadline (see router.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "log.h"
#include "nats-gateway.h"
#include "router-grace.h"
#include "router.h"
#include "server.h"
#include "stream.h"
#include "table.h"

static void router_send(dfd_call *call);
static void router_expired(dfd_call *call, char *msg, size_t size);

static void router_send_mail(dfd_loop *loop, void *arg)
{
    (void)loop;
    router_send(arg);
}

static void router_drop_call(void *arg)
{
    dfd_call_free(arg);
}

/* 1 for a daffi.* method (a stream's open or end): daffi.call cannot carry those. */
static int router_is_control(const dfd_call *call)
{
    return call->base.msg.method_len >= 6 && memcmp(call->base.method, "daffi.", 6) == 0;
}

void dfd_router_pack_call_params(const dfd_call *call, msgpack_packer *pk, msgpack_sbuffer *sb)
{
    uint64_t spent = (dfd_now_ns() - call->start_ns) / 1000000u;
    uint64_t left = call->timeout_ms > spent ? call->timeout_ms - spent : 1;
    msgpack_pack_str(pk, call->base.msg.method_len);
    msgpack_pack_str_body(pk, call->base.method, call->base.msg.method_len);
    msgpack_sbuffer_write(sb, call->base.msg.params_raw, call->base.msg.params_raw_len);
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "timeout_ms");
    msgpack_pack_uint64(pk, left);
}

/* Writes [0, id, "daffi.call", [method, params, {"timeout_ms": left}]] on the member's
 * connection: the member stops working on the call when the caller stops waiting. */
static void router_send_with_deadline(dfd_conn *mc, uint32_t id, dfd_call *call)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    dfd_router_pack_call_params(call, &pk, &sb);
    dfd_conn_send_request(mc, id, "daffi.call", 10, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- routing ------------------------------------------------------------------ */

/* Fails a forwarded call that never reached (or lost) its member. Any thread. */
static void router_fail(dfd_call *call, int code, const char *msg)
{
    daffi_call_set_error(&call->base, code, msg);
    dfd_dispatch_after_handler(call, DAFFI_DONE);
}

void dfd_router_refuse(dfd_conn *c, dfd_call *call, int code, const char *msg)
{
    if (call->cast != NULL || c == NULL) {
        /* a cast's child: its outcome goes into the cast */
        daffi_call_set_error(&call->base, code, msg);
        atomic_store(&call->state, DFD_CALL_COMPLETING);
        dfd_dispatch_finish(call);
        return;
    }
    if (!call->notify)
        dfd_conn_error(c, call->msgid, code, msg);
    dfd_dispatch_log_refused(c, call, code);
    dfd_call_free(call);
}

void dfd_router_count(dfd_call *call, dfd_snap_slot *ss)
{
    if (ss == NULL || call->fwd_slot != 0)
        return; /* not counted, or counted when it first went out */
    unsigned slot = dfd_callstat_forwarded_slot(call->loop->srv, ss->name, &ss->stat_slot);
    call->fwd_slot = slot + 1;
    dfd_stats_slot_start(call->loop, slot);
}

/* How long a link may owe an answer without a word before picks pass over it
 * (members-snap.c): one and a half heartbeat intervals, so that a healthy member, which
 * answers the ping of the next tick, is never taken for frozen. 0 with heartbeats off. */
static uint64_t router_frozen_ns(const dfd_server *srv)
{
    return srv->cfg->heartbeat_ms * 1500000u;
}

void dfd_router_link_owes(dfd_link *l)
{
    if (atomic_load_explicit(&l->owed_since_ns, memory_order_relaxed) == 0)
        atomic_store_explicit(&l->owed_since_ns, dfd_now_ns(), memory_order_relaxed);
}

/* The call no longer counts against its link and member. */
static void router_uncount(dfd_call *call)
{
    atomic_fetch_sub(&call->link->inflight, 1);
    atomic_fetch_sub(&call->link->member->inflight, 1);
}

/* Sends call over link l (taking over the reference on l); ss is the snapshot entry of
 * the callback it is counted under (see dfd_router_count). A call forwarded already was
 * sent back by a link that could not take it (router_send) and goes out once more. */
static void router_forward(dfd_conn *c, dfd_call *call, dfd_link *l, dfd_snap_slot *ss)
{
    int again = call->kind == DFD_KIND_FORWARD;
    call->kind = DFD_KIND_FORWARD;
    call->link = l;
    call->expire = router_expired;
    if (call->timeout_ms == 0 && call->cast == NULL)
        call->timeout_ms = call->loop->srv->cfg->default_timeout_ms;
    atomic_fetch_add_explicit(&l->inflight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->member->inflight, 1, memory_order_relaxed);
    if (!call->notify)
        call->member_msgid = dfd_link_next_msgid(l); /* here: the deadline reads it */
    if (c != NULL)
        dfd_conn_link(c, call);
    atomic_store(&call->state, DFD_CALL_RUNNING);
    dfd_stat_add(&call->loop->stats, again ? DFD_STAT_rerouted : DFD_STAT_forwarded, 1);
    dfd_router_count(call, ss);
    dfd_dispatch_arm_deadline(call);
    if (l->loop == call->loop) {
        router_send(call);
        return;
    }
    if (dfd_loop_post(l->loop, router_send_mail, router_drop_call, call) == -1) {
        router_uncount(call);
        router_fail(call, DAFFI_E_OVERLOADED, "out of memory");
    }
}

void dfd_router_forward_to(dfd_conn *c, dfd_call *call, dfd_link *l)
{
    router_forward(c, call, l, NULL);
}

/* Picks the member for a callback (round-robin, or `to`), then its link. Returns the
 * member's snapshot entry with a retained link in *link (NULL for the router itself),
 * and the callback's snapshot entry in *ss; or NULL after answering the call's error
 * (and freeing it). */
static const dfd_snap_member *router_pick(dfd_conn *c, dfd_call *call, const char *method,
                                          size_t len, const char *to, size_t to_len,
                                          dfd_snap_slot **ss, dfd_link **link);

int dfd_router_is_local(dfd_loop *loop, const dfd_call *call, const char *to, size_t to_len)
{
    const msgpack_object *target = daffi_arg(&call->base, 0);
    if (target == NULL || target->type != MSGPACK_OBJECT_STR)
        return 0;
    if (to != NULL) {
        const dfd_snap_member *sm = dfd_snapshot_find(loop->snapshot, to, to_len);
        return sm != NULL && sm->m->local;
    }
    /* streams prefer the router's own handler when it has one */
    return dfd_table_find(loop->table, target->via.str.ptr, target->via.str.size) != NULL;
}

void dfd_router_route_stream(dfd_conn *c, dfd_call *call, const char *cb, size_t cb_len,
                             const char *to, size_t to_len)
{
    dfd_snap_slot *ss;
    dfd_link *l;
    const dfd_snap_member *sm = router_pick(c, call, cb, cb_len, to, to_len, &ss, &l);
    if (sm != NULL)
        router_forward(c, call, l, ss);
}

void dfd_router_route_call(dfd_conn *c, dfd_call *call)
{
    dfd_router_route(c, call, NULL, 0);
}

void dfd_router_route(dfd_conn *c, dfd_call *call, const char *to, size_t to_len)
{
    if (call->loop->srv->nats_gateway != NULL) {
        dfd_nats_route(c, call, to, to_len); /* a gateway: every member is over NATS */
        return;
    }
    dfd_snap_slot *ss;
    dfd_link *l;
    const dfd_snap_member *sm = router_pick(c, call, call->base.method,
                                            call->base.msg.method_len, to, to_len, &ss, &l);
    if (sm == NULL)
        return;
    if (sm->m->local) {
        const dfd_callback *cb = dfd_table_find(call->loop->table, call->base.method,
                                                call->base.msg.method_len);
        if (cb == NULL) {
            char msg[360];
            snprintf(msg, sizeof(msg), "no callback '%.256s'", call->base.method);
            dfd_router_refuse(c, call, DAFFI_E_NO_CALLBACK, msg);
            return;
        }
        dfd_dispatch_local(c, call, cb);
        return;
    }
    router_forward(c, call, l, ss);
}

static const dfd_snap_member *router_pick(dfd_conn *c, dfd_call *call, const char *method,
                                          size_t len, const char *to, size_t to_len,
                                          dfd_snap_slot **ss, dfd_link **link)
{
    dfd_loop *loop = call->loop;
    dfd_server *srv = loop->srv;
    uint64_t now = dfd_now_ns(), frozen_ns = router_frozen_ns(srv);
    char msg[400];

    *link = NULL;
    /* one lookup serves the pick and the count (router_count) */
    *ss = loop->snapshot != NULL ? dfd_snapshot_slot(loop->snapshot, method, len) : NULL;

    if (to != NULL) {
        dfd_snap_member *sm = dfd_snapshot_find(loop->snapshot, to, to_len);
        if (sm == NULL) {
            snprintf(msg, sizeof(msg), "no member named '%.*s' is connected", (int)to_len, to);
            dfd_router_refuse(c, call, DAFFI_E_UNAVAILABLE, msg);
            return NULL;
        }
        if (!dfd_snap_member_has(sm, method, len)) {
            snprintf(msg, sizeof(msg), "member '%s' has no callback '%.*s'", sm->m->name,
                     (int)(len > 200 ? 200 : len), method);
            dfd_router_refuse(c, call, DAFFI_E_NO_CALLBACK, msg);
            return NULL;
        }
        call->to_member = 1;
        if (sm->m->local)
            return sm;
        if (atomic_load(&sm->m->inflight) >= srv->cfg->member_inflight) {
            snprintf(msg, sizeof(msg), "member '%s' holds %u calls (member_inflight)",
                     sm->m->name, srv->cfg->member_inflight);
            dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
            dfd_router_refuse(c, call, DAFFI_E_OVERLOADED, msg);
            return NULL;
        }
        if ((*link = dfd_snap_member_link(sm, loop, now, frozen_ns)) == NULL) {
            snprintf(msg, sizeof(msg), "member '%s' is disconnecting", sm->m->name);
            dfd_router_refuse(c, call, DAFFI_E_UNAVAILABLE, msg);
            return NULL;
        }
        return sm;
    }
    int exists = 0;
    const dfd_snap_member *sm = NULL;
    if (*ss != NULL)
        sm = dfd_snap_slot_pick(*ss, srv->cfg->member_inflight, loop, now, frozen_ns, link,
                                &exists);
    if (sm != NULL)
        return sm;
    if (exists) {
        snprintf(msg, sizeof(msg), "every member exposing '%.*s' holds %u calls "
                 "(member_inflight)", (int)(len > 200 ? 200 : len), method,
                 srv->cfg->member_inflight);
        dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
        dfd_router_refuse(c, call, DAFFI_E_OVERLOADED, msg);
    } else if (dfd_grace_hold(c, call)) {
        /* a restarted router: held until a member exposing it is back */
    } else if (call->notify || c == NULL || call->cast != NULL) {
        if (call->notify)
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
        snprintf(msg, sizeof(msg), "no callback '%.*s'", (int)(len > 256 ? 256 : len), method);
        dfd_router_refuse(c, call, DAFFI_E_NO_CALLBACK, msg);
    } else {
        dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
        dfd_control_no_callback_named(c, call, method, len);
        dfd_dispatch_log_refused(c, call, DAFFI_E_NO_CALLBACK);
        dfd_call_free(call);
    }
    return NULL;
}

/* ---- a call its link could not take ------------------------------------------------ */

/* On the call's own loop: the link it was sent to closed, or its member withdrew (a
 * draining worker), before the call was written to it, so no member saw it. It goes
 * out once more: over another link of the same member while that one still serves,
 * else (unless `to` named the member) to whichever member exposes the callback now;
 * or fails UNAVAILABLE. A call already written is never resent (PROTOCOL.md,
 * "Members": it may have started). */
static void router_resend_run(dfd_loop *loop, void *arg)
{
    dfd_call *call = arg;
    dfd_link *old = call->link;
    dfd_member *m = old->member;
    char msg[300];
    if (call->answered || atomic_load(&call->cancelled)) {
        /* its deadline passed meanwhile (answered TIMEOUT): nothing more to do */
        atomic_store(&call->state, DFD_CALL_COMPLETING);
        dfd_dispatch_finish(call);
        return;
    }
    int serves = atomic_load(&m->alive) && !atomic_load(&m->withdrawn);
    dfd_snap_member *sm = serves && loop->snapshot != NULL
                              ? dfd_snapshot_find(loop->snapshot, m->name, strlen(m->name))
                              : NULL;
    dfd_link *l = sm != NULL && sm->m == m
                      ? dfd_snap_member_link(sm, loop, dfd_now_ns(), router_frozen_ns(loop->srv))
                      : NULL;
    if (l == old) {
        dfd_link_release(l);
        l = NULL;
    }
    if (l == NULL && call->to_member) {
        snprintf(msg, sizeof(msg), "member '%s' %s", m->name,
                 atomic_load(&m->withdrawn) ? "withdrew its callbacks (draining)"
                                            : "disconnected");
        router_fail(call, DAFFI_E_UNAVAILABLE, msg);
        return;
    }
    call->link = NULL;
    dfd_link_release(old);
    if (l != NULL) {
        router_forward(NULL, call, l, NULL);
        return;
    }
    /* already linked to its connection: routed as a call without one */
    dfd_router_route(NULL, call, NULL, 0);
}

/* On the link's loop: write the request with a fresh msgid on its connection. */
static void router_send(dfd_call *call)
{
    dfd_link *l = call->link;
    int control = router_is_control(call);
    /* a stream's open and end go to their link as long as it is there; a call for a
     * member that withdrew (its ack may be closing the link) is not written to it */
    if (!atomic_load(&l->alive) || l->conn == NULL ||
        (!control && atomic_load(&l->member->withdrawn))) {
        router_uncount(call);
        if (!control &&
            dfd_loop_post(call->loop, router_resend_run, router_drop_call, call) == 0)
            return;
        char msg[300];
        snprintf(msg, sizeof(msg), "member '%s' disconnected", l->member->name);
        router_fail(call, DAFFI_E_UNAVAILABLE, msg);
        return;
    }
    if (call->notify) {
        /* a notification needs no answer: done once written */
        dfd_conn_send_request(l->conn, 0, call->base.method, call->base.msg.method_len,
                              call->base.msg.params_raw, call->base.msg.params_raw_len, 1);
        router_uncount(call);
        dfd_dispatch_after_handler(call, DAFFI_DONE);
        return;
    }
    uint32_t id = call->member_msgid;
    /* the ids of a link wrap after 2^32 calls: one still held under this id (it cannot
     * be answered apart from the new one) fails the newcomer */
    if (dfd_idmap_get(&l->outstanding, id) != NULL || dfd_idmap_put(&l->outstanding, id, call) == -1) {
        router_uncount(call);
        router_fail(call, DAFFI_E_OVERLOADED, "cannot hold another call for this member");
        return;
    }
    dfd_router_link_owes(l);
    if (l->deadlines && call->timeout_ms != 0 && !router_is_control(call)) {
        router_send_with_deadline(l->conn, id, call);
        return;
    }
    dfd_conn_send_request(l->conn, id, call->base.method, call->base.msg.method_len,
                          call->base.msg.params_raw, call->base.msg.params_raw_len, 0);
}

void dfd_router_on_response(dfd_conn *c, dfd_link *l, const char *bytes, size_t size,
                            uint32_t msgid)
{
    dfd_call *call = dfd_idmap_take(&l->outstanding, msgid);
    if (call == NULL) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unexpected_responses, 1);
        return;
    }
    router_uncount(call);
    const char *err, *result;
    size_t err_len, result_len;
    if (daffi_response_split(bytes, size, &err, &err_len, &result, &result_len) == -1) {
        router_fail(call, DAFFI_E_PROTOCOL, "the member sent a malformed response");
        return;
    }
    if (err_len == 1 && (unsigned char)err[0] == 0xc0) {
        daffi_reply_raw(&call->base, result, result_len);
        if (call->stream != NULL)
            dfd_stream_relay_member_opened(c, call);
    } else {
        daffi_call_set_raw_error(&call->base, daffi_error_code_of(err, err_len), err, err_len);
    }
    dfd_dispatch_after_handler(call, DAFFI_DONE);
    /* a draining router closes a member's connection once it holds no call */
    if (c->loop->draining)
        dfd_conn_drain(c);
}

static void router_fail_outstanding(void *val, void *arg)
{
    dfd_call *call = val;
    dfd_link *l = arg;
    char msg[300];
    if (l->of > 1)
        snprintf(msg, sizeof(msg), "member '%s' link %u disconnected with the call in flight",
                 l->member->name, l->index);
    else
        snprintf(msg, sizeof(msg), "member '%s' disconnected with the call in flight",
                 l->member->name);
    router_uncount(call);
    router_fail(call, DAFFI_E_UNAVAILABLE, msg);
}

void dfd_router_link_gone(dfd_link *l)
{
    dfd_idmap_drain(&l->outstanding, router_fail_outstanding, l);
}

/* ---- deadlines ------------------------------------------------------------------------ */

/* Mail to the link's loop: forget a forwarded call whose caller stopped waiting. The
 * call itself may be gone by then (its answer crossed this mail): it is only compared,
 * never read, unless the link still holds it under the same msgid. */
typedef struct router_forget {
    dfd_link *l;                /* a reference */
    uint32_t msgid;
    dfd_call *call;
} router_forget;

static void router_forget_drop(void *arg)
{
    router_forget *f = arg;
    dfd_link_release(f->l);
    free(f);
}

static void router_forget_run(dfd_loop *loop, void *arg)
{
    (void)loop;
    router_forget *f = arg;
    dfd_link *l = f->l;
    if (dfd_idmap_get(&l->outstanding, f->msgid) == f->call) {
        dfd_call *call = dfd_idmap_take(&l->outstanding, f->msgid);
        router_uncount(call);
        dfd_stat_add(&loop->stats, DFD_STAT_forgotten, 1);
        router_fail(call, DAFFI_E_TIMEOUT, "the caller's deadline passed");
        if (loop->draining && l->conn != NULL)
            dfd_conn_drain(l->conn);
    }
    router_forget_drop(f);
}

/* The deadline of a forwarded call (caller's loop): the TIMEOUT message, and the
 * member's loop forgets the call (freeing it; its late answer is counted as
 * unexpected). A call still in the member loop's mailbox is registered before the
 * forget arrives (one sender, one mailbox: in order). Its msgid was taken on this loop
 * (router_forward), so reading it here races with nothing. */
static void router_expired(dfd_call *call, char *msg, size_t size)
{
    dfd_link *l = call->link;
    uint64_t ms = (dfd_now_ns() - call->start_ns) / 1000000u;
    snprintf(msg, size, "member '%s' did not answer '%.100s' within %llu ms", l->member->name,
             call->base.method, (unsigned long long)ms);
    if (call->notify)
        return;
    router_forget *f = malloc(sizeof(*f));
    if (f == NULL)
        return; /* kept until the member answers or leaves, as before */
    dfd_link_retain(l);
    f->l = l;
    f->call = call;
    f->msgid = call->member_msgid;
    /* by mail even to this loop: the TIMEOUT is being answered on the call now */
    if (dfd_loop_post(l->loop, router_forget_run, router_forget_drop, f) == -1)
        router_forget_drop(f);
}
