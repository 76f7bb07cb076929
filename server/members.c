/*
 * members.c - members, their links and the registry (see members.h). Snapshots and
 * picks are members-snap.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "members-file.h"
#include "members.h"
#include "membership.h"
#include "router-grace.h"
#include "server.h"

dfd_member *dfd_member_new(const char *name, size_t name_len, const char *const *cbs,
                           const size_t *cb_lens, size_t ncbs)
{
    dfd_member *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    atomic_init(&m->refs, 1);
    atomic_init(&m->alive, 1);
    atomic_init(&m->inflight, 0);
    m->links_announced = 1;
    m->name = strndup(name, name_len);
    m->callbacks = calloc(ncbs ? ncbs : 1, sizeof(char *));
    if (m->name == NULL || m->callbacks == NULL)
        goto fail;
    for (size_t i = 0; i < ncbs; i++) {
        m->callbacks[i] = strndup(cbs[i], cb_lens[i]);
        if (m->callbacks[i] == NULL)
            goto fail;
        m->ncallbacks = i + 1;
    }
    return m;
fail:
    dfd_member_release(m);
    return NULL;
}

void dfd_member_retain(dfd_member *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void dfd_member_free_callbacks(char **cbs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(cbs[i]);
    free(cbs);
}

void dfd_member_release(dfd_member *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    dfd_member_free_callbacks(m->callbacks, m->ncallbacks);
    free(m->links);
    free(m->session);
    free(m->name);
    free(m);
}

dfd_link *dfd_link_new(dfd_loop *loop, struct dfd_conn *conn, const dfd_hello *h)
{
    dfd_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    atomic_init(&l->refs, 1);
    atomic_init(&l->alive, 1);
    atomic_init(&l->inflight, 0);
    atomic_init(&l->next_msgid, 1);
    atomic_init(&l->owed_since_ns, 0);
    atomic_init(&l->frozen, 0);
    l->loop = loop;
    l->conn = conn;
    l->index = h->link;
    l->of = h->links;
    l->deadlines = h->deadlines;
    return l;
}

void dfd_link_retain(dfd_link *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

void dfd_link_release(dfd_link *l)
{
    if (l == NULL || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    dfd_idmap_free(&l->outstanding);
    dfd_member_release(l->member);
    free(l);
}

uint32_t dfd_link_next_msgid(dfd_link *l)
{
    uint32_t id = atomic_fetch_add_explicit(&l->next_msgid, 1, memory_order_relaxed);
    if (id == 0)
        id = atomic_fetch_add_explicit(&l->next_msgid, 1, memory_order_relaxed);
    return id;
}

/* ---- the registry ------------------------------------------------------------------ */

int dfd_registry_init(dfd_registry *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->current = dfd_snapshot_build(r);
    return r->current ? 0 : -1;
}

void dfd_registry_destroy(dfd_registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        dfd_member_release(r->members[i]);
    free(r->members);
    dfd_snapshot_release(r->current);
    free(r->state_file);
    pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof(*r));
}

dfd_snapshot *dfd_registry_snapshot(dfd_server *srv)
{
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    dfd_snapshot *s = r->current;
    dfd_snapshot_retain(s);
    pthread_mutex_unlock(&r->lock);
    return s;
}

/* An event for the loops: joined/left, and the member whose own connections must not
 * receive it. Owned by the mail; the loop frees it. */
static void registry_event(dfd_server *srv, const char *type, dfd_member *m)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        dfd_event *ev = malloc(sizeof(*ev));
        if (ev == NULL)
            continue;
        ev->type = type;
        ev->version = srv->registry.version;
        ev->name = strdup(m->name);
        ev->member = m;
        dfd_member_retain(m);
        if (ev->name == NULL || dfd_loop_post(&srv->loops[i], dfd_membership_on_event,
                                              dfd_membership_drop_event, ev) == -1)
            dfd_membership_drop_event(ev);
    }
    dfd_info("router.member", "change=%s member=%s callbacks=%zu links=%zu", type, m->name,
             m->ncallbacks, m->nlinks);
}

/* Builds and mails the snapshot of the registry's current version. Caller holds
 * r->lock (and bumped r->version for the change), so loops receive snapshots and events
 * in the order the registry applied them. */
static void registry_publish(dfd_server *srv)
{
    dfd_registry *r = &srv->registry;
    dfd_snapshot *s = dfd_snapshot_build(r);
    if (s == NULL) {
        dfd_error("router.oom", "msg=\"cannot build the member snapshot\"");
        return;
    }
    dfd_snapshot_release(r->current);
    r->current = s;
    for (unsigned i = 0; i < srv->nloops; i++) {
        dfd_snapshot_retain(s);
        if (dfd_loop_post(&srv->loops[i], dfd_membership_on_snapshot,
                          dfd_membership_drop_snapshot, s) == -1)
            dfd_snapshot_release(s);
    }
}

/* The index of m in the registry, or r->n. Caller holds r->lock. */
static size_t registry_index(const dfd_registry *r, const dfd_member *m)
{
    size_t i = 0;
    while (i < r->n && r->members[i] != m)
        i++;
    return i;
}

static void registry_remove_at(dfd_registry *r, size_t i)
{
    memmove(&r->members[i], &r->members[i + 1], (r->n - i - 1) * sizeof(*r->members));
    r->n--;
}

/* Room for one more member. Caller holds r->lock. Returns 0 or -1. */
static int registry_grow(dfd_registry *r)
{
    if (r->n < r->cap)
        return 0;
    size_t cap = r->cap ? r->cap * 2 : 16;
    dfd_member **grown = realloc(r->members, cap * sizeof(*grown));
    if (grown == NULL)
        return -1;
    r->members = grown;
    r->cap = cap;
    return 0;
}

/* Adds l to m's links (l takes a reference on m). Caller holds the lock. Returns 0 or
 * -1 (out of memory). */
static int member_add_link(dfd_member *m, dfd_link *l)
{
    dfd_link **grown = realloc(m->links, (m->nlinks + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    m->links = grown;
    m->links[m->nlinks++] = l;
    dfd_member_retain(m);
    l->member = m;
    return 0;
}

/* Takes l out of m's links. Caller holds the lock. Returns 1 when it was there. */
static int member_drop_link(dfd_member *m, const dfd_link *l)
{
    for (size_t i = 0; i < m->nlinks; i++) {
        if (m->links[i] != l)
            continue;
        memmove(&m->links[i], &m->links[i + 1], (m->nlinks - i - 1) * sizeof(*m->links));
        m->nlinks--;
        return 1;
    }
    return 0;
}

/* 1 when m's callbacks are exactly those of other (in order). */
static int same_callbacks(const dfd_member *m, const dfd_member *other)
{
    if (m->ncallbacks != other->ncallbacks)
        return 0;
    for (size_t i = 0; i < m->ncallbacks; i++)
        if (strcmp(m->callbacks[i], other->callbacks[i]) != 0)
            return 0;
    return 1;
}

/* The set of names changed: the member file and the startup grace hear of it. Caller
 * holds the lock. */
static void registry_names_changed(dfd_server *srv, int keep_record)
{
    if (!keep_record)
        dfd_members_file_save(srv);
    dfd_grace_registry_changed(srv);
}

int dfd_registry_join(dfd_server *srv, dfd_member *m)
{
    dfd_registry *r = &srv->registry;
    int rc = -1;
    pthread_mutex_lock(&r->lock);
    size_t i = 0;
    while (i < r->n && strcmp(r->members[i]->name, m->name) != 0)
        i++;
    if (i == r->n && registry_grow(r) == 0) {
        dfd_member_retain(m);
        r->members[r->n++] = m;
        r->version++;
        registry_publish(srv);
        registry_event(srv, "joined", m);
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* The hello's link joins the member existing (same session). Caller holds the lock. */
static int registry_add_link(dfd_server *srv, dfd_member *existing, const dfd_hello *h,
                             dfd_member *fresh, dfd_link *l, dfd_attach *out)
{
    for (size_t k = 0; k < existing->nlinks; k++) {
        if (existing->links[k]->index == h->link) {
            out->stale = existing->links[k];
            dfd_link_retain(out->stale);
            atomic_store(&out->stale->alive, 0);
            member_drop_link(existing, out->stale);
            break;
        }
    }
    if (member_add_link(existing, l) == -1) {
        dfd_link_release(out->stale);
        out->stale = NULL;
        return -1;
    }
    existing->links_announced = h->links;
    if (!same_callbacks(existing, fresh)) {
        /* the link's hello re-announces the member's callbacks */
        char **old = existing->callbacks;
        size_t nold = existing->ncallbacks;
        existing->callbacks = fresh->callbacks;
        existing->ncallbacks = fresh->ncallbacks;
        fresh->callbacks = old;
        fresh->ncallbacks = nold;
        atomic_store(&existing->withdrawn, existing->ncallbacks == 0);
    }
    srv->registry.version++;
    registry_publish(srv);
    dfd_info("router.link", "member=%s link=%u links=%zu/%u%s", existing->name, l->index,
             existing->nlinks, existing->links_announced,
             out->stale != NULL ? " msg=\"replaces its earlier connection\"" : "");
    dfd_member_retain(existing);
    out->member = existing;
    return 0;
}

int dfd_registry_attach(dfd_server *srv, const dfd_hello *h, dfd_member *fresh,
                        dfd_link *l, dfd_attach *out)
{
    dfd_registry *r = &srv->registry;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&r->lock);
    size_t i = 0;
    while (i < r->n && strcmp(r->members[i]->name, fresh->name) != 0)
        i++;
    if (i < r->n) {
        dfd_member *existing = r->members[i];
        if (h->session != NULL && existing->session != NULL &&
            strlen(existing->session) == h->session_len &&
            memcmp(existing->session, h->session, h->session_len) == 0) {
            int rc = registry_add_link(srv, existing, h, fresh, l, out);
            pthread_mutex_unlock(&r->lock);
            return rc;
        }
        if (!h->may_replace || existing->local) {
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
    }
    if (h->session != NULL && (fresh->session = strndup(h->session, h->session_len)) == NULL) {
        pthread_mutex_unlock(&r->lock);
        return -1;
    }
    if (registry_grow(r) == -1 || member_add_link(fresh, l) == -1) {
        pthread_mutex_unlock(&r->lock);
        return -1;
    }
    fresh->links_announced = h->links;
    r->version++; /* the change's version: its events and snapshot carry it */
    if (i < r->n) {
        dfd_member *old = r->members[i];
        atomic_store(&old->alive, 0);
        registry_remove_at(r, i);
        out->replaced = old; /* the registry's reference passes to the caller */
        registry_event(srv, "left", old);
    }
    dfd_member_retain(fresh);
    r->members[r->n++] = fresh;
    registry_publish(srv);
    registry_event(srv, "joined", fresh);
    registry_names_changed(srv, 0);
    pthread_mutex_unlock(&r->lock);
    dfd_member_retain(fresh);
    out->member = fresh;
    out->joined = 1;
    return 0;
}

void dfd_registry_update(dfd_server *srv, dfd_member *m, char **callbacks, size_t ncallbacks)
{
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    dfd_member_free_callbacks(m->callbacks, m->ncallbacks);
    m->callbacks = callbacks;
    m->ncallbacks = ncallbacks;
    atomic_store(&m->withdrawn, ncallbacks == 0);
    r->version++;
    registry_publish(srv);
    dfd_info("router.member", "change=updated member=%s callbacks=%zu", m->name, ncallbacks);
    pthread_mutex_unlock(&r->lock);
}

void dfd_registry_detach(dfd_server *srv, dfd_link *l, int keep_record)
{
    dfd_registry *r = &srv->registry;
    dfd_member *m = l->member;
    pthread_mutex_lock(&r->lock);
    atomic_store(&l->alive, 0);
    int had = member_drop_link(m, l);
    size_t i = registry_index(r, m);
    if (i < r->n && m->nlinks == 0) {
        atomic_store(&m->alive, 0);
        registry_remove_at(r, i);
        r->version++;
        registry_event(srv, "left", m);
        registry_publish(srv);
        registry_names_changed(srv, keep_record);
        pthread_mutex_unlock(&r->lock);
        dfd_member_release(m); /* the registry's */
        return;
    }
    if (i < r->n && had) {
        /* one link of several: the member stays, routed over the others */
        r->version++;
        registry_publish(srv);
        dfd_info("router.link", "member=%s link=%u links=%zu/%u msg=\"link closed\"", m->name,
                 l->index, m->nlinks, m->links_announced);
    }
    pthread_mutex_unlock(&r->lock);
}

void dfd_registry_leave(dfd_server *srv, dfd_member *m)
{
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    atomic_store(&m->alive, 0);
    size_t i = registry_index(r, m);
    if (i < r->n) {
        registry_remove_at(r, i);
        r->version++;
        registry_event(srv, "left", m);
        registry_publish(srv);
        pthread_mutex_unlock(&r->lock);
        dfd_member_release(m);
        return;
    }
    pthread_mutex_unlock(&r->lock);
}
