/*
 * membership.c - the router role's members: hello, re-announce, replace, subscribe,
 * events, and the owner of a member's connection (see membership.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "fanout.h"
#include "heartbeat.h"
#include "log.h"
#include "membership.h"
#include "router.h"
#include "server.h"
#include "stream.h"
#include "table.h"

#define HELLO_MAX_CALLBACKS 65536
#define MEMBER_NAME_MAX 255

static void member_event_free(dfd_event *ev)
{
    dfd_member_release(ev->member);
    free(ev->name);
    free(ev);
}

int dfd_membership_init(dfd_server *srv)
{
    if (dfd_registry_init(&srv->registry) == -1)
        return -1;
    return 0;
}

/* The router's own plugins make it a member under its own name. Called once the loops
 * exist (the join mails them). */
int dfd_membership_join_self(dfd_server *srv)
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

void dfd_membership_update_self(dfd_server *srv)
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
        if (dfd_membership_join_self(srv) == -1)
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

void dfd_membership_destroy(dfd_server *srv)
{
    dfd_registry_destroy(&srv->registry);
}

/* ---- the owner of a member's connection ------------------------------------------ */

static void member_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                           uint32_t msgid)
{
    if (kind != DAFFI_MSG_RESPONSE) {
        dfd_dispatch_message(c, bytes, size, kind, msgid);
        return;
    }
    if (dfd_heartbeat_answered(c, msgid))
        return;
    dfd_router_on_response(c, c->owner, bytes, size, msgid);
}

/* The member's connection is gone: its calls fail, it leaves the registry. */
static void member_closed(dfd_conn *c)
{
    dfd_member *m = c->owner;
    c->owner = NULL;
    m->conn = NULL;
    atomic_store(&m->alive, 0);
    dfd_stream_conn_closed(c);
    dfd_router_member_gone(m);
    dfd_registry_leave(c->loop->srv, m);
    dfd_member_release(m); /* the connection's reference */
}

/* Calls forwarded to the member keep its connection open while it drains. */
static int member_busy(const dfd_conn *c)
{
    const dfd_member *m = c->owner;
    return m != NULL && m->outstanding.count != 0;
}

static uint32_t member_next_msgid(dfd_conn *c)
{
    return dfd_member_next_msgid(c->owner);
}

static const char *member_describe(const dfd_conn *c)
{
    const dfd_member *m = c->owner;
    return m != NULL ? m->name : "?";
}

static const dfd_conn_ops member_ops = {
    .message = member_message,
    .closed = member_closed,
    .busy = member_busy,
    .next_msgid = member_next_msgid,
    .describe = member_describe,
};

dfd_member *dfd_membership_of(const dfd_conn *c)
{
    return c->ops == &member_ops ? c->owner : NULL;
}

/* Makes the caller's connection c the member m's (c keeps m's creation reference). */
static void member_adopt(dfd_conn *c, dfd_member *m)
{
    dfd_conn_set_owner(c, &member_ops, m);
    c->track_rx = 1;
    c->last_rx_ns = dfd_now_ns();
}

/* Mail to a replaced member's loop: close its connection. */
static void member_close_replaced(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_member *m = arg;
    dfd_conn *c = m->conn;
    if (c != NULL && !c->dead) {
        /* tell it why, so that it does not fight back: an evicted member rejoins only
         * with "replace": false (PROTOCOL.md, "Members") */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        daffi_pack_notify(&pk, "daffi.evicted", 13, 1);
        msgpack_pack_map(&pk, 2);
        daffi_pack_cstr(&pk, "member");
        daffi_pack_cstr(&pk, m->name);
        daffi_pack_cstr(&pk, "reason");
        daffi_pack_cstr(&pk, "replaced: a newcomer took this name (duplicate = replace)");
        dfd_conn_send_raw(c, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        /* closed once the notice is written; the calls it holds then fail */
        dfd_conn_close(c, 1);
    }
    dfd_member_release(m);
}

static void member_drop(void *arg)
{
    dfd_member_release(arg);
}

/* ---- snapshots and events -------------------------------------------------------- */

void dfd_membership_on_snapshot(dfd_loop *loop, void *snapshot)
{
    dfd_snapshot *s = snapshot;
    if (loop->snapshot != NULL && loop->snapshot->version >= s->version) {
        dfd_snapshot_release(s);
        return;
    }
    dfd_snapshot_release(loop->snapshot);
    loop->snapshot = s;
    dfd_fanout_members_changed(loop);
}

void dfd_membership_on_event(dfd_loop *loop, void *event)
{
    dfd_event *ev = event;
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
    for (dfd_conn *c = loop->conns; c != NULL; c = c->next) {
        /* a member is never told about itself joining */
        if (!c->dead && c->subscribed && ev->version > c->sub_version &&
            !(dfd_membership_of(c) == ev->member && strcmp(ev->type, "joined") == 0))
            dfd_conn_send_raw(c, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    member_event_free(ev);
}

void dfd_membership_drop_snapshot(void *snapshot)
{
    dfd_snapshot_release(snapshot);
}

void dfd_membership_drop_event(void *event)
{
    member_event_free(event);
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

static void pack_true(msgpack_packer *pk, void *arg)
{
    (void)arg;
    msgpack_pack_true(pk);
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
int dfd_membership_hello(dfd_conn *c, dfd_call *call)
{
    dfd_server *srv = c->loop->srv;
    const msgpack_object *info = daffi_arg(&call->base, 0);
    const msgpack_object *name_obj = daffi_obj_get(info, "name");
    const msgpack_object *cbs = daffi_obj_get(info, "callbacks");
    const char *name;
    size_t name_len;
    char msg[400];
    if (call->notify)
        return 0; /* a hello needs its answer: the member learns whether it joined */
    if (name_obj == NULL || daffi_obj_text(name_obj, &name, &name_len) == -1 || name_len == 0 ||
        name_len > MEMBER_NAME_MAX || !name_chars_ok(name, name_len)) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                       "daffi.hello takes [{\"name\": str of 1-255 characters from "
                       "[A-Za-z0-9_.-], \"callbacks\": [str...]}]");
        return 0;
    }
    /* optional: "deadlines": true (it honours daffi.call's timeout_ms), "replace":
     * false (do not take the name from a member holding it: an evicted member
     * rejoining) */
    int deadlines = 0, replace = 1;
    daffi_obj_bool(daffi_obj_get(info, "deadlines"), &deadlines);
    daffi_obj_bool(daffi_obj_get(info, "replace"), &replace);
    uint32_t ncbs = 0;
    if (cbs != NULL && cbs->type != MSGPACK_OBJECT_NIL) {
        if (cbs->type != MSGPACK_OBJECT_ARRAY || cbs->via.array.size > HELLO_MAX_CALLBACKS) {
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                           "daffi.hello: callbacks must be an array of at most 65536 names");
            return 0;
        }
        ncbs = cbs->via.array.size;
    }
    const char **names = calloc(ncbs ? ncbs : 1, sizeof(char *));
    size_t *lens = calloc(ncbs ? ncbs : 1, sizeof(size_t));
    if (names == NULL || lens == NULL) {
        free(names);
        free(lens);
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
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
            return 0;
        }
    }
    dfd_member *fresh = dfd_member_new(name, name_len, names, lens, ncbs);
    free(names);
    free(lens);
    if (fresh == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    dfd_member *self = dfd_membership_of(c);
    if (self != NULL) {
        /* a re-announce (e.g. after a reload) must keep the name */
        if (strcmp(self->name, fresh->name) != 0) {
            snprintf(msg, sizeof(msg), "this connection is member '%s'; a hello cannot rename "
                     "it", self->name);
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
        } else {
            self->deadlines = deadlines;
            dfd_registry_update(srv, self, fresh->callbacks, fresh->ncallbacks);
            fresh->callbacks = NULL;
            fresh->ncallbacks = 0;
            hello_reply h = {srv};
            dfd_control_answer(c, call, pack_hello_reply, &h);
        }
        dfd_member_release(fresh);
        return 0;
    }
    fresh->loop = c->loop;
    fresh->conn = c;
    fresh->deadlines = deadlines;
    dfd_member *replaced = NULL;
    int may_replace = srv->cfg->duplicate == DFD_DUP_REPLACE && replace;
    if (dfd_registry_join(srv, fresh, may_replace, &replaced) == -1) {
        if (srv->cfg->duplicate == DFD_DUP_REPLACE)
            snprintf(msg, sizeof(msg), "member name '%s' is already connected (this member "
                     "was evicted from it and asked not to replace)", fresh->name);
        else
            snprintf(msg, sizeof(msg), "member name '%s' is already connected (duplicate = "
                     "reject)", fresh->name);
        dfd_warn("router.duplicate", "member=%s peer=%s msg=\"hello refused: name taken\"",
                 fresh->name, c->peer);
        dfd_conn_error(c, call->msgid, DAFFI_E_DENIED, msg);
        dfd_member_release(fresh);
        return 0;
    }
    member_adopt(c, fresh); /* the connection keeps the creation reference */
    /* this loop sees the newcomer at once (the mail brings the same snapshot later) */
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    dfd_snapshot *s = r->current;
    dfd_snapshot_retain(s);
    pthread_mutex_unlock(&r->lock);
    dfd_membership_on_snapshot(c->loop, s);
    if (replaced != NULL) {
        dfd_warn("router.replaced", "member=%s peer=%s msg=\"a newcomer took this name "
                 "(duplicate = replace); the old member is told and closed\"", fresh->name,
                 c->peer);
        if (replaced->loop == c->loop)
            member_close_replaced(c->loop, replaced);
        else if (dfd_loop_post(replaced->loop, member_close_replaced, member_drop, replaced) == -1)
            dfd_member_release(replaced);
    }
    hello_reply h = {srv};
    dfd_control_answer(c, call, pack_hello_reply, &h);
    return 0;
}

/* daffi.subscribe [["members"]]: joined/left events from now on. */
int dfd_membership_subscribe(dfd_conn *c, dfd_call *call)
{
    dfd_server *srv = c->loop->srv;
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
    dfd_control_answer(c, call, pack_true, NULL);
    return 0;
}

