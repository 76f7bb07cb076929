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
#include "table.h"

/* One loop's calls in flight over NATS, by the id in their reply subject. */
typedef struct nats_gw_loop {
    dfd_idmap pending;           /* id -> dfd_call (the loop's) */
    dfd_idmap targets;           /* id -> the member `to` named (owned): targeted calls */
    uint32_t next_id;
} nats_gw_loop;

struct dfd_nats_gateway {
    dfd_server *srv;
    dfd_nats_ctx ctx;
    natsConnection *nc;
    char inbox[160];             /* this connection's reply prefix */
    size_t inbox_len;
    natsSubscription *inbox_sub; /* <inbox>.> */
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

/* Mail: an answer on the inbox, on the loop its subject names. */
static void gw_on_reply_run(dfd_loop *loop, void *arg)
{
    dfd_nats_note *msg = arg;
    dfd_nats_gateway *g = loop->srv->nats_gateway;
    const char *subject = msg->subject;
    const char *tail = strchr(subject + g->inbox_len + 1, '.');
    uint32_t id = tail != NULL ? (uint32_t)strtoul(tail + 1, NULL, 10) : 0;
    dfd_call *call = gw_take(&g->loops[loop->index], id);
    if (call == NULL) {
        /* answered after its deadline, or a second answer: nobody waits for it */
        dfd_stat_add(&loop->stats, DFD_STAT_unexpected_responses, 1);
        free(msg);
        return;
    }
    char text[400];
    if (msg->no_responders) {
        dfd_stat_add(&loop->stats, DFD_STAT_nats_no_responders, 1);
        if (call->to_member) {
            snprintf(text, sizeof(text), "no member of that name is connected (NATS: no "
                     "responders for '%.200s')", call->base.method);
            gw_fail(call, DAFFI_E_UNAVAILABLE, text);
        } else {
            dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
            snprintf(text, sizeof(text), "no callback '%.256s' (no member serves it over "
                     "NATS)", call->base.method);
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
        dfd_dispatch_after_handler(call, DAFFI_DONE);
    } else {
        daffi_call_set_raw_error(&call->base, daffi_error_code_of(err, err_len), err, err_len);
        dfd_dispatch_after_handler(call, DAFFI_DONE);
    }
    free(msg);
}

/* libnats thread: an answer arrived; its subject <inbox>.<loop>.<id> names the loop. */
static void gw_on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    dfd_nats_gateway *g = closure;
    const char *subject = natsMsg_GetSubject(msg);
    char *end = NULL;
    unsigned long i = strtoul(subject + g->inbox_len + 1, &end, 10);
    if (end == NULL || *end != '.' || i >= g->nloops) {
        natsMsg_Destroy(msg); /* not one of ours */
        return;
    }
    dfd_nats_mail_msg(&g->srv->loops[i], gw_on_reply_run, msg, NULL);
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
 * member that died with the call ends here: NATS cannot tell who took it. */
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

void dfd_nats_route(dfd_conn *c, dfd_call *call, const char *to, size_t to_len)
{
    dfd_loop *loop = call->loop;
    dfd_server *srv = loop->srv;
    dfd_nats_gateway *g = srv->nats_gateway;
    nats_gw_loop *gl = &g->loops[loop->index];
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
    dfd_stat_add(&loop->stats, DFD_STAT_nats_requests, 1);

    if (call->notify) {
        /* fire and forget: one member of the queue group (or the one named) gets it */
        dfd_nats_publish(loop, g->nc, subject, NULL, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        dfd_call_free(call);
        return;
    }
    uint32_t id;
    do
        id = gl->next_id++;
    while (id == 0 || dfd_idmap_get(&gl->pending, id) != NULL);
    char reply[sizeof(g->inbox) + 32];
    snprintf(reply, sizeof(reply), "%s.%u.%u", g->inbox, loop->index, id);
    char *target = to != NULL ? strndup(to, to_len) : NULL;
    if ((to != NULL && (target == NULL || dfd_idmap_put(&gl->targets, id, target) == -1)) ||
        dfd_idmap_put(&gl->pending, id, call) == -1) {
        if (target != NULL) {
            dfd_idmap_take(&gl->targets, id); /* when it got in */
            free(target);
        }
        msgpack_sbuffer_destroy(&sb);
        dfd_router_refuse(c, call, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    call->member_msgid = id;
    call->to_member = to != NULL;
    /* per callback, as a router counts the calls it forwards ("_forwarded", callback) */
    if (loop->snapshot != NULL)
        dfd_router_count(call, dfd_snapshot_slot(loop->snapshot, method, len));
    call->expire = gw_expired;
    if (c != NULL)
        dfd_conn_link(c, call);
    atomic_store(&call->state, DFD_CALL_RUNNING);
    dfd_dispatch_arm_deadline(call);
    int rc = dfd_nats_publish(loop, g->nc, subject, reply, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc == -1) {
        gw_take(gl, id);
        gw_fail(call, DAFFI_E_UNAVAILABLE, "NATS refused the request (disconnected?)");
    }
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

/* Mail to every loop: the calls this loop sent to member `name` (owned) fail now. */
static void gw_member_lost_run(dfd_loop *loop, void *arg)
{
    char *name = arg;
    dfd_nats_gateway *g = loop->srv->nats_gateway;
    nats_gw_loop *gl = &g->loops[loop->index];
    gw_lost_scan scan = { .name = name };
    char text[400];
    dfd_idmap_each(&gl->targets, gw_lost_collect, &scan);
    snprintf(text, sizeof(text), "member '%.200s' stopped answering with the call in flight "
             "(no heartbeat: dropped)", name);
    for (size_t i = 0; i < scan.n; i++) {
        dfd_call *call = gw_take(gl, scan.ids[i]);
        if (call != NULL)
            gw_fail(call, DAFFI_E_UNAVAILABLE, text);
    }
    free(scan.ids);
    free(name);
}

void dfd_nats_gateway_member_lost(dfd_server *srv, const char *name)
{
    dfd_nats_gateway *g = srv->nats_gateway;
    for (unsigned i = 0; g != NULL && i < g->nloops; i++) {
        char *copy = strdup(name);
        if (copy == NULL || dfd_loop_post(&srv->loops[i], gw_member_lost_run, free, copy) == -1)
            free(copy); /* its calls end at their deadline instead */
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
    char subject[sizeof(g->inbox) + 4];
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
    snprintf(subject, sizeof(subject), "%s.>", g->inbox);
    natsStatus s = natsConnection_Subscribe(&g->inbox_sub, g->nc, subject, gw_on_reply, g);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(g->inbox_sub, -1, -1);
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

void dfd_nats_gateway_stop(dfd_nats_gateway *g)
{
    if (g == NULL)
        return;
    dfd_nats_presence_stop(g->presence);
    if (g->inbox_sub != NULL)
        natsSubscription_Destroy(g->inbox_sub);
    g->inbox_sub = NULL;
    atomic_store(&g->ctx.closing, 1);
    natsConnection_Destroy(g->nc);
    g->nc = NULL;
}

void dfd_nats_gateway_free(dfd_nats_gateway *g)
{
    if (g == NULL)
        return;
    dfd_nats_presence_free(g->presence);
    for (unsigned i = 0; i < g->nloops; i++) {
        dfd_idmap_free(&g->loops[i].pending); /* the calls are their loops' */
        dfd_idmap_drain(&g->loops[i].targets, gw_free_target, NULL);
        dfd_idmap_free(&g->loops[i].targets);
    }
    free(g);
}
