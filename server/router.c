/*
 * router.c - the router role: hello, members, routing, forwarding, responses, events,
 * heartbeats (see router.h). Cast and wait live in fanout.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "fanout.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "stream.h"
#include "table.h"
#include "worker.h"

#define HELLO_MAX_CALLBACKS 65536
#define MEMBER_NAME_MAX 255

void dfd_event_free(dfd_event *ev)
{
    dfd_member_release(ev->member);
    free(ev->name);
    free(ev);
}

int dfd_router_init(dfd_server *srv)
{
    if (dfd_registry_init(&srv->registry) == -1)
        return -1;
    return 0;
}

/* The router's own plugins make it a member under its own name. Called once the loops
 * exist (the join mails them). */
int dfd_router_join_self(dfd_server *srv)
{
    const dfd_table *t = srv->table;
    if (t->ncallbacks == 0)
        return 0;
    const char **names = calloc(t->ncallbacks, sizeof(char *));
    size_t *lens = calloc(t->ncallbacks, sizeof(size_t));
    size_t n = 0;
    if (names == NULL || lens == NULL) {
        free(names);
        free(lens);
        return -1;
    }
    for (size_t i = 0; i < t->nplugins; i++)
        for (size_t k = 0; k < t->plugins[i]->ncallbacks; k++) {
            names[n] = t->plugins[i]->callbacks[k].name;
            lens[n] = strlen(names[n]);
            n++;
        }
    dfd_member *self = dfd_member_new(srv->cfg->name, strlen(srv->cfg->name), names, lens, n);
    free(names);
    free(lens);
    if (self == NULL)
        return -1;
    self->local = 1;
    dfd_member *replaced = NULL;
    int rc = dfd_registry_join(srv, self, 0, &replaced);
    dfd_member_release(self);
    return rc;
}

void dfd_router_update_self(dfd_server *srv)
{
    dfd_registry *r = &srv->registry;
    dfd_member *self = NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (r->members[i]->local) {
            self = r->members[i];
            dfd_member_retain(self);
            break;
        }
    pthread_mutex_unlock(&r->lock);
    const dfd_table *t = srv->table;
    if (self == NULL) {
        if (dfd_router_join_self(srv) == -1)
            dfd_error("router.self", "msg=\"cannot register the router's own callbacks\"");
        return;
    }
    if (t->ncallbacks == 0) {
        dfd_registry_leave(srv, self);
        dfd_member_release(self);
        return;
    }
    char **names = calloc(t->ncallbacks, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; names != NULL && i < t->nplugins; i++)
        for (size_t k = 0; k < t->plugins[i]->ncallbacks; k++) {
            names[n] = strdup(t->plugins[i]->callbacks[k].name);
            if (names[n] != NULL)
                n++;
        }
    if (names != NULL)
        dfd_registry_update(srv, self, names, n);
    dfd_member_release(self);
}

void dfd_router_destroy(dfd_server *srv)
{
    dfd_registry_destroy(&srv->registry);
}

/* ---- routing ------------------------------------------------------------------ */

/* Fails a forwarded call that never reached (or lost) its member. Any thread. */
static void router_fail(dfd_call *call, int code, const char *msg)
{
    daffi_call_set_error(&call->base, code, msg);
    dfd_dispatch_after_handler(call, DAFFI_DONE);
}

/* Answers a request that cannot be routed; frees nothing. */
static void router_refuse(dfd_conn *c, dfd_call *call, int code, const char *msg)
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
    dfd_call_free(call);
}

/* Counts a forwarded call in the "_forwarded" slot of the snapshot entry ss of its
 * callback (NULL: not counted, e.g. a stream's end, counted with its open). */
static void router_count(dfd_call *call, dfd_snap_slot *ss)
{
    if (ss == NULL)
        return;
    unsigned slot = dfd_callstat_forwarded_slot(call->loop->srv, ss->name, &ss->stat_slot);
    call->fwd_slot = slot + 1;
    dfd_stats_slot_start(call->loop, slot);
}

/* Sends call to member m (taking over the reference on m); ss is the snapshot entry of
 * the callback it is counted under (see router_count). */
static void router_forward(dfd_conn *c, dfd_call *call, dfd_member *m, dfd_snap_slot *ss)
{
    call->kind = DFD_KIND_FORWARD;
    call->member = m;
    if (call->timeout_ms == 0 && call->cast == NULL)
        call->timeout_ms = call->loop->srv->cfg->default_timeout_ms;
    atomic_fetch_add_explicit(&m->inflight, 1, memory_order_relaxed);
    if (c != NULL)
        dfd_conn_link(c, call);
    atomic_store(&call->state, DFD_CALL_RUNNING);
    dfd_stat_add(&call->loop->stats, DFD_STAT_forwarded, 1);
    router_count(call, ss);
    dfd_dispatch_arm_deadline(call);
    if (m->loop == call->loop) {
        dfd_router_send(call);
        return;
    }
    if (dfd_loop_post(m->loop, DFD_MAIL_FORWARD, -1, 0, call) == -1) {
        atomic_fetch_sub(&m->inflight, 1);
        router_fail(call, DAFFI_E_OVERLOADED, "out of memory");
    }
}

void dfd_router_forward_to(dfd_conn *c, dfd_call *call, dfd_member *m)
{
    router_forward(c, call, m, NULL);
}

/* Picks the member for a callback (round-robin, or `to`). Returns a retained member
 * and the callback's snapshot entry in *ss, or NULL after answering the call's error
 * (and freeing it). */
static dfd_member *router_pick(dfd_conn *c, dfd_call *call, const char *method, size_t len,
                               const char *to, size_t to_len, dfd_snap_slot **ss);

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
    dfd_member *m = router_pick(c, call, cb, cb_len, to, to_len, &ss);
    if (m != NULL)
        router_forward(c, call, m, ss);
}

void dfd_router_route(dfd_conn *c, dfd_call *call, const char *to, size_t to_len)
{
    dfd_snap_slot *ss;
    dfd_member *m = router_pick(c, call, call->base.method, call->base.msg.method_len, to,
                                to_len, &ss);
    if (m == NULL)
        return;
    if (m->local) {
        dfd_member_release(m);
        const dfd_callback *cb = dfd_table_find(call->loop->table, call->base.method,
                                                call->base.msg.method_len);
        if (cb == NULL) {
            char msg[360];
            snprintf(msg, sizeof(msg), "no callback '%.256s'", call->base.method);
            router_refuse(c, call, DAFFI_E_NO_CALLBACK, msg);
            return;
        }
        dfd_dispatch_local(c, call, cb);
        return;
    }
    router_forward(c, call, m, ss);
}

static dfd_member *router_pick(dfd_conn *c, dfd_call *call, const char *method, size_t len,
                               const char *to, size_t to_len, dfd_snap_slot **ss)
{
    dfd_loop *loop = call->loop;
    dfd_server *srv = loop->srv;
    dfd_member *m = NULL;
    char msg[400];

    /* one lookup serves the pick and the count (router_count) */
    *ss = loop->snapshot != NULL ? dfd_snapshot_slot(loop->snapshot, method, len) : NULL;

    if (to != NULL) {
        const dfd_snap_member *sm = dfd_snapshot_find(loop->snapshot, to, to_len);
        if (sm == NULL) {
            snprintf(msg, sizeof(msg), "no member named '%.*s' is connected", (int)to_len, to);
            router_refuse(c, call, DAFFI_E_UNAVAILABLE, msg);
            return NULL;
        }
        if (!dfd_snap_member_has(sm, method, len)) {
            snprintf(msg, sizeof(msg), "member '%s' has no callback '%.*s'", sm->m->name,
                     (int)(len > 200 ? 200 : len), method);
            router_refuse(c, call, DAFFI_E_NO_CALLBACK, msg);
            return NULL;
        }
        m = sm->m;
        if (!m->local && atomic_load(&m->inflight) >= srv->cfg->member_inflight) {
            snprintf(msg, sizeof(msg), "member '%s' holds %u calls (member_inflight)", m->name,
                     srv->cfg->member_inflight);
            dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
            router_refuse(c, call, DAFFI_E_OVERLOADED, msg);
            return NULL;
        }
        dfd_member_retain(m);
        return m;
    }
    int exists = 0;
    m = *ss != NULL ? dfd_snap_slot_pick(*ss, srv->cfg->member_inflight, &exists) : NULL;
    if (m != NULL)
        return m;
    if (exists) {
        snprintf(msg, sizeof(msg), "every member exposing '%.*s' holds %u calls "
                 "(member_inflight)", (int)(len > 200 ? 200 : len), method,
                 srv->cfg->member_inflight);
        dfd_stat_add(&loop->stats, DFD_STAT_overloaded, 1);
        router_refuse(c, call, DAFFI_E_OVERLOADED, msg);
    } else if (call->notify || c == NULL || call->cast != NULL) {
        if (call->notify)
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
        snprintf(msg, sizeof(msg), "no callback '%.*s'", (int)(len > 256 ? 256 : len), method);
        router_refuse(c, call, DAFFI_E_NO_CALLBACK, msg);
    } else {
        dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
        dfd_control_no_callback_named(c, call, method, len);
        dfd_call_free(call);
    }
    return NULL;
}

/* On the member's loop: write the request with a fresh msgid on its connection. */
void dfd_router_send(dfd_call *call)
{
    dfd_member *m = call->member;
    if (!atomic_load(&m->alive) || m->conn == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "member '%s' disconnected", m->name);
        atomic_fetch_sub(&m->inflight, 1);
        router_fail(call, DAFFI_E_UNAVAILABLE, msg);
        return;
    }
    if (call->notify) {
        /* a notification needs no answer: done once written */
        dfd_conn_send_request(m->conn, 0, call->base.method, call->base.msg.method_len,
                              call->base.msg.params_raw, call->base.msg.params_raw_len, 1);
        atomic_fetch_sub(&m->inflight, 1);
        dfd_dispatch_after_handler(call, DAFFI_DONE);
        return;
    }
    uint32_t id = m->next_msgid++;
    while (id == 0 || dfd_idmap_get(&m->outstanding, id) != NULL)
        id = m->next_msgid++;
    if (dfd_idmap_put(&m->outstanding, id, call) == -1) {
        atomic_fetch_sub(&m->inflight, 1);
        router_fail(call, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    call->member_msgid = id;
    dfd_conn_send_request(m->conn, id, call->base.method, call->base.msg.method_len,
                          call->base.msg.params_raw, call->base.msg.params_raw_len, 0);
}

/* Size of the array header at p. */
static size_t array_header_size(const char *p)
{
    unsigned char b = (unsigned char)p[0];
    return (b & 0xf0) == 0x90 ? 1 : b == 0xdc ? 3 : 5;
}

int dfd_response_split(const char *bytes, size_t size, const char **err, size_t *err_len,
                       const char **result, size_t *result_len)
{
    size_t off = array_header_size(bytes);
    for (int i = 0; i < 2; i++) { /* kind, msgid */
        size_t n = daffi_object_size(bytes + off, size - off);
        if (n == 0)
            return -1;
        off += n;
    }
    size_t n = daffi_object_size(bytes + off, size - off);
    if (n == 0)
        return -1;
    *err = bytes + off;
    *err_len = n;
    off += n;
    *result = bytes + off;
    *result_len = size - off;
    return 0;
}

/* The code of an encoded error array, for counters (0 when unreadable). */
static int raw_error_code(const char *p, size_t len)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object obj;
    size_t off = 0;
    int code = 0;
    if (msgpack_unpack(p, len, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS &&
        obj.type == MSGPACK_OBJECT_ARRAY && obj.via.array.size >= 1 &&
        obj.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        code = (int)obj.via.array.ptr[0].via.u64;
    msgpack_zone_destroy(&zone);
    return code;
}

void dfd_router_on_response(dfd_conn *c, const char *bytes, size_t size, uint32_t msgid)
{
    dfd_member *m = c->member;
    if (msgid == c->ping_msgid && c->ping_msgid != 0) {
        c->ping_msgid = 0; /* heartbeat answered */
        return;
    }
    dfd_call *call = dfd_idmap_take(&m->outstanding, msgid);
    if (call == NULL) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unexpected_responses, 1);
        return;
    }
    atomic_fetch_sub(&m->inflight, 1);
    const char *err, *result;
    size_t err_len, result_len;
    if (dfd_response_split(bytes, size, &err, &err_len, &result, &result_len) == -1) {
        router_fail(call, DAFFI_E_PROTOCOL, "the member sent a malformed response");
        return;
    }
    if (err_len == 1 && (unsigned char)err[0] == 0xc0) {
        daffi_reply_raw(&call->base, result, result_len);
        if (call->stream != NULL)
            dfd_stream_relay_member_opened(c, call);
    } else
        daffi_call_set_raw_error(&call->base, raw_error_code(err, err_len), err, err_len);
    dfd_dispatch_after_handler(call, DAFFI_DONE);
    /* a draining router closes a member's connection once it holds no call */
    if (c->loop->draining)
        dfd_conn_drain(c);
}

static void router_fail_outstanding(void *val, void *arg)
{
    dfd_call *call = val;
    dfd_member *m = arg;
    char msg[300];
    snprintf(msg, sizeof(msg), "member '%s' disconnected with the call in flight", m->name);
    atomic_fetch_sub(&m->inflight, 1);
    router_fail(call, DAFFI_E_UNAVAILABLE, msg);
}

void dfd_router_conn_closed(dfd_conn *c)
{
    dfd_member *m = c->member;
    c->member = NULL;
    m->conn = NULL;
    atomic_store(&m->alive, 0);
    dfd_idmap_drain(&m->outstanding, router_fail_outstanding, m);
    dfd_registry_leave(c->loop->srv, m);
    dfd_member_release(m); /* the connection's reference */
}

void dfd_router_close_member(dfd_member *m)
{
    if (m->conn != NULL) {
        dfd_warn("router.replaced", "member=%s msg=\"a newcomer took this name "
                 "(duplicate = replace)\"", m->name);
        dfd_conn_close(m->conn, 0);
    }
    dfd_member_release(m);
}

/* ---- snapshots and events -------------------------------------------------------- */

void dfd_router_apply_snapshot(dfd_loop *loop, dfd_snapshot *s)
{
    if (loop->snapshot != NULL && loop->snapshot->version >= s->version) {
        dfd_snapshot_release(s);
        return;
    }
    dfd_snapshot_release(loop->snapshot);
    loop->snapshot = s;
    dfd_fanout_members_changed(loop);
}

void dfd_router_on_event(dfd_loop *loop, dfd_event *ev)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_notify(&pk, "daffi.event", 11, 1);
    msgpack_pack_map(&pk, 2);
    daffi_pack_cstr(&pk, "type");
    daffi_pack_cstr(&pk, ev->type);
    daffi_pack_cstr(&pk, "member");
    daffi_pack_cstr(&pk, ev->name);
    for (dfd_conn *c = loop->conns; c != NULL;) {
        dfd_conn *next = c->next;
        /* a member is never told about itself joining */
        if (c->subscribed && ev->version > c->sub_version &&
            !(c->member == ev->member && strcmp(ev->type, "joined") == 0))
            dfd_conn_send_raw(c, sb.data, sb.size);
        c = next;
    }
    msgpack_sbuffer_destroy(&sb);
    dfd_event_free(ev);
}

/* ---- control methods -------------------------------------------------------------- */

/* Packs the members list from the registry's newest snapshot. */
static void router_pack_members(dfd_server *srv, msgpack_packer *pk)
{
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    dfd_snapshot *s = r->current;
    dfd_snapshot_retain(s);
    pthread_mutex_unlock(&r->lock);
    dfd_control_pack_snapshot(pk, s);
    dfd_snapshot_release(s);
}



/* Reads an optional timeout_ms from an options map: 0 when absent, -1 when bad. */
static int64_t opts_timeout(const msgpack_object *opts)
{
    const msgpack_object *t = daffi_obj_get(opts, "timeout_ms");
    if (t == NULL || t->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || t->via.u64 > 7ull * 24 * 3600 * 1000)
        return -1;
    return (int64_t)t->via.u64;
}

static void router_answer_object(dfd_conn *c, dfd_call *call, void (*pack)(msgpack_packer *, void *),
                                 void *arg)
{
    if (call->notify)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_response_ok(&pk, call->msgid);
    pack(&pk, arg);
    dfd_conn_write_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

typedef struct hello_reply {
    dfd_server *srv;
} hello_reply;

static void pack_hello_reply(msgpack_packer *pk, void *arg)
{
    hello_reply *h = arg;
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, h->srv->cfg->name);
    daffi_pack_cstr(pk, "members");
    router_pack_members(h->srv, pk);
}

static void pack_members_reply(msgpack_packer *pk, void *arg)
{
    router_pack_members(arg, pk);
}

static void pack_true(msgpack_packer *pk, void *arg)
{
    (void)arg;
    msgpack_pack_true(pk);
}

static void pack_pong(msgpack_packer *pk, void *arg)
{
    (void)arg;
    daffi_pack_cstr(pk, "pong");
}

/* 1 when every byte is in [A-Za-z0-9_.-] (member names: they appear in logs). */
static int name_chars_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

/* 1 when every byte is printable ASCII without spaces (callback names). */
static int callback_chars_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return 0;
    return 1;
}

/* daffi.hello [{"name": str, "callbacks": [str...]}]: registers (or re-announces) the
 * connection as a member. */
static void router_hello(dfd_conn *c, dfd_call *call)
{
    dfd_server *srv = c->loop->srv;
    const msgpack_object *info = daffi_arg(&call->base, 0);
    const msgpack_object *name_obj = daffi_obj_get(info, "name");
    const msgpack_object *cbs = daffi_obj_get(info, "callbacks");
    const char *name;
    size_t name_len;
    char msg[400];
    if (name_obj == NULL || daffi_obj_text(name_obj, &name, &name_len) == -1 || name_len == 0 ||
        name_len > MEMBER_NAME_MAX || !name_chars_ok(name, name_len)) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                       "daffi.hello takes [{\"name\": str of 1-255 characters from "
                       "[A-Za-z0-9_.-], \"callbacks\": [str...]}]");
        return;
    }
    uint32_t ncbs = 0;
    if (cbs != NULL && cbs->type != MSGPACK_OBJECT_NIL) {
        if (cbs->type != MSGPACK_OBJECT_ARRAY || cbs->via.array.size > HELLO_MAX_CALLBACKS) {
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                           "daffi.hello: callbacks must be an array of at most 65536 names");
            return;
        }
        ncbs = cbs->via.array.size;
    }
    const char **names = calloc(ncbs ? ncbs : 1, sizeof(char *));
    size_t *lens = calloc(ncbs ? ncbs : 1, sizeof(size_t));
    if (names == NULL || lens == NULL) {
        free(names);
        free(lens);
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < ncbs; i++) {
        if (daffi_obj_text(&cbs->via.array.ptr[i], &names[i], &lens[i]) == -1 || lens[i] == 0 ||
            lens[i] > 255 || !callback_chars_ok(names[i], lens[i]) ||
            (lens[i] >= 6 && memcmp(names[i], "daffi.", 6) == 0)) {
            snprintf(msg, sizeof(msg), "daffi.hello: callback %u is not a name a member may "
                     "expose (1-255 printable characters, no spaces, outside daffi.*)", i + 1);
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
            free(names);
            free(lens);
            return;
        }
    }
    dfd_member *fresh = dfd_member_new(name, name_len, names, lens, ncbs);
    free(names);
    free(lens);
    if (fresh == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    if (c->member != NULL) {
        /* a re-announce (e.g. after a reload) must keep the name */
        if (strcmp(c->member->name, fresh->name) != 0) {
            snprintf(msg, sizeof(msg), "this connection is member '%s'; a hello cannot rename "
                     "it", c->member->name);
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
        } else {
            dfd_registry_update(srv, c->member, fresh->callbacks, fresh->ncallbacks);
            fresh->callbacks = NULL;
            fresh->ncallbacks = 0;
            hello_reply h = {srv};
            router_answer_object(c, call, pack_hello_reply, &h);
        }
        dfd_member_release(fresh);
        return;
    }
    fresh->loop = c->loop;
    fresh->conn = c;
    dfd_member *replaced = NULL;
    if (dfd_registry_join(srv, fresh, srv->cfg->duplicate == DFD_DUP_REPLACE, &replaced) == -1) {
        snprintf(msg, sizeof(msg), "member name '%s' is already connected (duplicate = reject)",
                 fresh->name);
        dfd_warn("router.duplicate", "member=%s peer=%s msg=\"hello refused: name taken\"",
                 fresh->name, c->peer);
        dfd_conn_error(c, call->msgid, DAFFI_E_DENIED, msg);
        dfd_member_release(fresh);
        return;
    }
    c->member = fresh; /* the connection keeps the creation reference */
    /* this loop sees the newcomer at once (the mail brings the same snapshot later) */
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    dfd_snapshot *s = r->current;
    dfd_snapshot_retain(s);
    pthread_mutex_unlock(&r->lock);
    dfd_router_apply_snapshot(c->loop, s);
    if (replaced != NULL) {
        if (replaced->loop == c->loop)
            dfd_router_close_member(replaced);
        else if (dfd_loop_post(replaced->loop, DFD_MAIL_CLOSE_MEMBER, -1, 0, replaced) == -1)
            dfd_member_release(replaced);
    }
    hello_reply h = {srv};
    router_answer_object(c, call, pack_hello_reply, &h);
}

int dfd_router_control(dfd_conn *c, dfd_call *call)
{
    const char *m = call->base.method + 6; /* after "daffi." */
    dfd_server *srv = c->loop->srv;
    if (strcmp(m, "ping") == 0) {
        router_answer_object(c, call, pack_pong, NULL);
        return 0;
    }
    if (strcmp(m, "members") == 0) {
        router_answer_object(c, call, pack_members_reply, srv);
        return 0;
    }
    if (strcmp(m, "hello") == 0) {
        if (call->notify)
            return 0;
        router_hello(c, call);
        return 0;
    }
    if (strcmp(m, "subscribe") == 0) {
        const msgpack_object *topics = daffi_arg(&call->base, 0);
        int ok = topics != NULL && topics->type == MSGPACK_OBJECT_ARRAY;
        for (uint32_t i = 0; ok && i < topics->via.array.size; i++) {
            const char *p;
            size_t len;
            ok = daffi_obj_text(&topics->via.array.ptr[i], &p, &len) == 0 && len == 7 &&
                 memcmp(p, "members", 7) == 0;
        }
        if (!ok) {
            if (!call->notify)
                dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                               "daffi.subscribe takes [[\"members\"]]");
            return 0;
        }
        /* events of changes the subscriber could already see are not sent again */
        pthread_mutex_lock(&srv->registry.lock);
        c->sub_version = srv->registry.version;
        pthread_mutex_unlock(&srv->registry.lock);
        c->subscribed = 1;
        router_answer_object(c, call, pack_true, NULL);
        return 0;
    }
    if (strcmp(m, "call") == 0) {
        const msgpack_object *opts = daffi_arg(&call->base, 2);
        int64_t timeout = opts_timeout(opts);
        const msgpack_object *to = daffi_obj_get(opts, "to");
        const char *to_p = NULL;
        size_t to_len = 0;
        if (timeout < 0 || (to != NULL && to->type != MSGPACK_OBJECT_NIL &&
                            daffi_obj_text(to, &to_p, &to_len) == -1) ||
            (opts != NULL && opts->type != MSGPACK_OBJECT_MAP && opts->type != MSGPACK_OBJECT_NIL) ||
            daffi_call_unwrap(&call->base) == -1) {
            if (!call->notify)
                dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                               "daffi.call takes [callback, [params...], {\"to\": name, "
                               "\"timeout_ms\": int}]");
            return 0;
        }
        if (timeout > 0)
            call->timeout_ms = (uint64_t)timeout;
        if (call->base.msg.method_len >= 6 && memcmp(call->base.method, "daffi.", 6) == 0) {
            if (!call->notify)
                dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                               "daffi.call cannot call a daffi.* method");
            return 0;
        }
        dfd_router_route(c, call, to_p, to_len);
        return 1;
    }
    if (strcmp(m, "stream") == 0 || strcmp(m, "chunk") == 0 || strcmp(m, "end") == 0 ||
        strcmp(m, "abort") == 0 || strcmp(m, "credit") == 0)
        return dfd_stream_control(c, call, m);
    if (strcmp(m, "cast") == 0)
        return dfd_fanout_cast(c, call);
    if (strcmp(m, "wait") == 0)
        return dfd_fanout_wait(c, call);
    if (call->notify) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unknown_notifications, 1);
        return 0;
    }
    dfd_stat_add(&c->loop->stats, DFD_STAT_no_callback, 1);
    dfd_control_no_callback(c, call);
    return 0;
}

/* ---- heartbeats ------------------------------------------------------------------- */

void dfd_router_heartbeat(dfd_loop *loop)
{
    const dfd_config *cfg = loop->srv->cfg;
    uint64_t now = dfd_now_ns();
    uint64_t limit = cfg->heartbeat_ms * cfg->heartbeat_misses * 1000000u;
    for (dfd_conn *c = loop->conns; c != NULL;) {
        dfd_conn *next = c->next;
        if (c->member != NULL || c->worker != NULL) {
            if (now - c->last_rx_ns > limit) {
                dfd_warn("heartbeat.silent", "peer=%s member=%s silent_ms=%llu msg=\"dropping "
                         "a peer silent for %u heartbeats\"", c->peer,
                         c->member ? c->member->name : "router",
                         (unsigned long long)((now - c->last_rx_ns) / 1000000u),
                         cfg->heartbeat_misses);
                dfd_conn_close(c, 0);
            } else if (c->ping_msgid == 0) {
                uint32_t id;
                if (c->member != NULL) {
                    id = c->member->next_msgid++;
                    while (id == 0 || dfd_idmap_get(&c->member->outstanding, id) != NULL)
                        id = c->member->next_msgid++;
                } else {
                    id = dfd_worker_next_msgid(c->worker);
                }
                c->ping_msgid = id;
                dfd_conn_send_request(c, id, "daffi.ping", 10, "\x90", 1, 0);
            }
        }
        c = next;
    }
}
