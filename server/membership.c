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
#include "router-grace.h"
#include "router.h"
#include "server.h"
#include "stream.h"
#include "table.h"

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
    int rc = dfd_registry_join(srv, self);
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
    dfd_grace_free(srv);
    dfd_registry_destroy(&srv->registry);
}

/* ---- the owner of a link's connection --------------------------------------------- */

/* Anything that arrives from a link shows it is not frozen (members-snap.c): it owes
 * nothing until the router writes to it again, and a link a pick found frozen is
 * eligible again. */
static void link_heard(dfd_link *l)
{
    if (atomic_load_explicit(&l->owed_since_ns, memory_order_relaxed) != 0)
        atomic_store_explicit(&l->owed_since_ns, 0, memory_order_relaxed);
    if (atomic_load_explicit(&l->frozen, memory_order_relaxed) && atomic_exchange(&l->frozen, 0))
        dfd_info("router.thawed", "member=%s link=%u msg=\"answered again: routed to as "
                 "before\"", l->member->name, l->index);
}

static void member_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                           uint32_t msgid)
{
    dfd_link *l = c->owner;
    link_heard(l);
    if (kind != DAFFI_MSG_RESPONSE) {
        dfd_dispatch_message(c, bytes, size, kind, msgid);
        return;
    }
    if (dfd_heartbeat_answered(c, msgid))
        return;
    dfd_router_on_response(c, l, bytes, size, msgid);
}

/* The link's connection is gone: its calls fail, it leaves its member (and the member
 * the registry, with its last link). */
static void member_closed(dfd_conn *c)
{
    dfd_link *l = c->owner;
    c->owner = NULL;
    l->conn = NULL;
    atomic_store(&l->alive, 0);
    dfd_stream_conn_closed(c);
    dfd_router_link_gone(l);
    dfd_registry_detach(c->loop->srv, l, c->loop->draining);
    dfd_link_release(l); /* the connection's reference */
}

/* Calls forwarded on the link keep its connection open while it drains. */
static int member_busy(const dfd_conn *c)
{
    const dfd_link *l = c->owner;
    return l != NULL && l->outstanding.count != 0;
}

/* The heartbeat is about to ping the link (heartbeat.h): from now it owes an answer. */
static uint32_t member_next_msgid(dfd_conn *c)
{
    dfd_link *l = c->owner;
    dfd_router_link_owes(l);
    return dfd_link_next_msgid(l);
}

static const char *member_describe(const dfd_conn *c)
{
    const dfd_link *l = c->owner;
    return l != NULL && l->member != NULL ? l->member->name : "?";
}

static const dfd_conn_ops member_ops = {
    .message = member_message,
    .closed = member_closed,
    .busy = member_busy,
    .next_msgid = member_next_msgid,
    .describe = member_describe,
};

dfd_link *dfd_membership_link_of(const dfd_conn *c)
{
    return c->ops == &member_ops ? c->owner : NULL;
}

dfd_member *dfd_membership_of(const dfd_conn *c)
{
    dfd_link *l = dfd_membership_link_of(c);
    return l != NULL ? l->member : NULL;
}

void dfd_membership_adopt(dfd_conn *c, dfd_link *l)
{
    dfd_conn_set_owner(c, &member_ops, l);
    c->track_rx = 1;
    c->last_rx_ns = dfd_now_ns();
}

/* Packs [2, method, [{k1: v1, k2: v2}]] into sb (initialised here; the caller
 * destroys it): the membership notices a member or subscriber gets. */
static void pack_note(msgpack_sbuffer *sb, const char *method, const char *k1,
                      const char *v1, const char *k2, const char *v2)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    daffi_pack_notify(&pk, method, strlen(method), 1);
    msgpack_pack_map(&pk, 2);
    daffi_pack_cstr(&pk, k1);
    daffi_pack_cstr(&pk, v1);
    daffi_pack_cstr(&pk, k2);
    daffi_pack_cstr(&pk, v2);
}

/* Mail to a replaced member's link's loop: tell it why, and close it. */
static void member_close_replaced(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_link *l = arg;
    dfd_conn *c = l->conn;
    if (c != NULL && !c->dead) {
        /* tell it why, so that it does not fight back: an evicted member rejoins only
         * with "replace": false (PROTOCOL.md, "Members") */
        msgpack_sbuffer sb;
        pack_note(&sb, "daffi.evicted", "member", l->member->name, "reason",
                  "replaced: a newcomer took this name (duplicate = replace)");
        dfd_conn_send_raw(c, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        /* closed once the notice is written; the calls it holds then fail */
        dfd_conn_close(c, 1);
    }
    dfd_link_release(l);
}

/* Mail to a stale link's loop: the peer reconnected this link, the old connection
 * goes (its calls fail UNAVAILABLE: their answers could only come on it). */
static void member_close_stale_mail(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_link *l = arg;
    if (l->conn != NULL && !l->conn->dead)
        dfd_conn_close(l->conn, 0);
    dfd_link_release(l);
}

static void link_drop(void *arg)
{
    dfd_link_release(arg);
}

/* Runs fn for link l on its loop: now when that is loop, else by mail (taking over the
 * reference on l). */
static void link_on_its_loop(dfd_loop *loop, dfd_link *l, dfd_mail_fn fn)
{
    if (l->loop == loop)
        fn(loop, l);
    else if (dfd_loop_post(l->loop, fn, link_drop, l) == -1)
        dfd_link_release(l);
}

void dfd_membership_close_replaced(dfd_server *srv, dfd_loop *loop, dfd_member *m)
{
    pthread_mutex_lock(&srv->registry.lock);
    size_t n = m->nlinks;
    dfd_link **links = n ? calloc(n, sizeof(*links)) : NULL;
    for (size_t i = 0; links != NULL && i < n; i++) {
        links[i] = m->links[i];
        dfd_link_retain(links[i]);
    }
    pthread_mutex_unlock(&srv->registry.lock);
    for (size_t i = 0; links != NULL && i < n; i++)
        link_on_its_loop(loop, links[i], member_close_replaced);
    free(links);
}

void dfd_membership_close_stale(dfd_loop *loop, dfd_link *l)
{
    link_on_its_loop(loop, l, member_close_stale_mail);
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
    dfd_grace_members_changed(loop);
}

void dfd_membership_on_event(dfd_loop *loop, void *event)
{
    dfd_event *ev = event;
    msgpack_sbuffer sb;
    pack_note(&sb, "daffi.event", "type", ev->type, "member", ev->name);
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

static void pack_true(msgpack_packer *pk, void *arg)
{
    (void)arg;
    msgpack_pack_true(pk);
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

