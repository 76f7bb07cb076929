/*
 * members.c - the member registry and its snapshots (see members.h).
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "members.h"
#include "membership.h"
#include "server.h"
#include "table.h"

dfd_member *dfd_member_new(const char *name, size_t name_len, const char *const *cbs,
                           const size_t *cb_lens, size_t ncbs)
{
    dfd_member *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    atomic_init(&m->refs, 1);
    atomic_init(&m->alive, 1);
    atomic_init(&m->inflight, 0);
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
    atomic_init(&m->next_msgid, 1);
    return m;
fail:
    dfd_member_release(m);
    return NULL;
}

void dfd_member_retain(dfd_member *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

static void member_free_callbacks(char **cbs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(cbs[i]);
    free(cbs);
}

void dfd_member_release(dfd_member *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    member_free_callbacks(m->callbacks, m->ncallbacks);
    dfd_idmap_free(&m->outstanding);
    free(m->name);
    free(m);
}

int dfd_snap_member_has(const dfd_snap_member *sm, const char *name, size_t len)
{
    for (size_t i = 0; i < sm->ncallbacks; i++)
        if (strncmp(sm->callbacks[i], name, len) == 0 && sm->callbacks[i][len] == '\0')
            return 1;
    return 0;
}

/* ---- snapshots ------------------------------------------------------------- */


dfd_snap_slot *dfd_snapshot_slot(const dfd_snapshot *s, const char *name, size_t len)
{
    if (s->slots == NULL)
        return NULL;
    size_t at = dfd_name_hash(name, len) & s->mask;
    for (;;) {
        dfd_snap_slot *slot = &s->slots[at];
        if (slot->name == NULL)
            return NULL;
        if (strncmp(slot->name, name, len) == 0 && slot->name[len] == '\0')
            return slot;
        at = (at + 1) & s->mask;
    }
}

/* Builds an immutable snapshot of the registry's members. Caller holds r->lock. */
static dfd_snapshot *snapshot_build(dfd_registry *r)
{
    dfd_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    s->version = r->version;
    size_t total = 0;
    for (size_t i = 0; i < r->n; i++)
        total += r->members[i]->ncallbacks;
    size_t size = 16;
    while (size < total * 2)
        size <<= 1;
    s->members = calloc(r->n ? r->n : 1, sizeof(*s->members));
    s->slots = calloc(size, sizeof(*s->slots));
    if (s->members == NULL || s->slots == NULL)
        goto fail;
    s->mask = size - 1;
    for (size_t i = 0; i < r->n; i++) {
        dfd_member *m = r->members[i];
        dfd_snap_member *sm = &s->members[s->n++];
        dfd_member_retain(m);
        sm->m = m;
        sm->callbacks = calloc(m->ncallbacks ? m->ncallbacks : 1, sizeof(char *));
        if (sm->callbacks == NULL)
            goto fail;
        for (size_t k = 0; k < m->ncallbacks; k++) {
            if ((sm->callbacks[k] = strdup(m->callbacks[k])) == NULL)
                goto fail;
            sm->ncallbacks = k + 1;
            const char *cb = sm->callbacks[k];
            size_t len = strlen(cb);
            dfd_snap_slot *slot = dfd_snapshot_slot(s, cb, len);
            if (slot == NULL) {
                size_t at = dfd_name_hash(cb, len) & s->mask;
                while (s->slots[at].name != NULL)
                    at = (at + 1) & s->mask;
                slot = &s->slots[at];
                slot->name = cb;
                atomic_init(&slot->rr, 0);
            }
            dfd_member **grown = realloc(slot->members, (slot->n + 1) * sizeof(*grown));
            if (grown == NULL)
                goto fail;
            slot->members = grown;
            slot->members[slot->n++] = m;
        }
    }
    return s;
fail:
    dfd_snapshot_release(s);
    return NULL;
}

void dfd_snapshot_retain(dfd_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void dfd_snapshot_release(dfd_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; s->slots && i <= s->mask; i++)
        free(s->slots[i].members);
    for (size_t i = 0; i < s->n; i++) {
        member_free_callbacks(s->members[i].callbacks, s->members[i].ncallbacks);
        dfd_member_release(s->members[i].m);
    }
    free(s->slots);
    free(s->members);
    free(s);
}

dfd_member *dfd_snap_slot_pick(dfd_snap_slot *slot, unsigned limit, int *exists)
{
    *exists = 0;
    unsigned start = atomic_fetch_add_explicit(&slot->rr, 1, memory_order_relaxed);
    for (size_t k = 0; k < slot->n; k++) {
        dfd_member *m = slot->members[(start + k) % slot->n];
        if (!atomic_load_explicit(&m->alive, memory_order_relaxed))
            continue;
        *exists = 1;
        if (!m->local && atomic_load_explicit(&m->inflight, memory_order_relaxed) >= limit)
            continue;
        dfd_member_retain(m);
        return m;
    }
    return NULL;
}

const dfd_snap_member *dfd_snapshot_find(const dfd_snapshot *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++) {
        const dfd_member *m = s->members[i].m;
        if (strncmp(m->name, name, len) == 0 && m->name[len] == '\0' &&
            atomic_load(&m->alive))
            return &s->members[i];
    }
    return NULL;
}

/* ---- the registry ------------------------------------------------------------ */

int dfd_registry_init(dfd_registry *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->current = snapshot_build(r);
    return r->current ? 0 : -1;
}

void dfd_registry_destroy(dfd_registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        dfd_member_release(r->members[i]);
    free(r->members);
    dfd_snapshot_release(r->current);
    pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof(*r));
}

/* An event for the loops: joined/left, and the member whose own connection must not
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
    dfd_info("router.member", "change=%s member=%s callbacks=%zu", type, m->name, m->ncallbacks);
}

/* Builds and mails the snapshot of the registry's current version. Caller holds
 * r->lock (and bumped r->version for the change), so loops receive snapshots and events
 * in the order the registry applied them. */
static void registry_publish(dfd_server *srv)
{
    dfd_registry *r = &srv->registry;
    dfd_snapshot *s = snapshot_build(r);
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

static void registry_remove_at(dfd_registry *r, size_t i)
{
    memmove(&r->members[i], &r->members[i + 1], (r->n - i - 1) * sizeof(*r->members));
    r->n--;
}

int dfd_registry_join(dfd_server *srv, dfd_member *m, int replace, dfd_member **replaced)
{
    dfd_registry *r = &srv->registry;
    *replaced = NULL;
    pthread_mutex_lock(&r->lock);
    uint64_t before = r->version;
    r->version++; /* the change's version: its events and snapshot carry it */
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->members[i]->name, m->name) != 0)
            continue;
        if (!replace) {
            r->version = before;
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        dfd_member *old = r->members[i];
        atomic_store(&old->alive, 0);
        registry_remove_at(r, i);
        *replaced = old; /* the registry's reference passes to the caller */
        registry_event(srv, "left", old);
        break;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        dfd_member **grown = realloc(r->members, cap * sizeof(*grown));
        if (grown == NULL) {
            if (*replaced == NULL)
                r->version = before;
            else
                registry_publish(srv); /* the old one is gone all the same */
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        r->members = grown;
        r->cap = cap;
    }
    dfd_member_retain(m);
    r->members[r->n++] = m;
    registry_publish(srv);
    registry_event(srv, "joined", m);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void dfd_registry_update(dfd_server *srv, dfd_member *m, char **callbacks, size_t ncallbacks)
{
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    member_free_callbacks(m->callbacks, m->ncallbacks);
    m->callbacks = callbacks;
    m->ncallbacks = ncallbacks;
    r->version++;
    registry_publish(srv);
    dfd_info("router.member", "change=updated member=%s callbacks=%zu", m->name, ncallbacks);
    pthread_mutex_unlock(&r->lock);
}

void dfd_registry_leave(dfd_server *srv, dfd_member *m)
{
    dfd_registry *r = &srv->registry;
    pthread_mutex_lock(&r->lock);
    atomic_store(&m->alive, 0);
    for (size_t i = 0; i < r->n; i++) {
        if (r->members[i] != m)
            continue;
        registry_remove_at(r, i);
        r->version++;
        registry_event(srv, "left", m);
        registry_publish(srv);
        dfd_member_release(m);
        break;
    }
    pthread_mutex_unlock(&r->lock);
}

uint32_t dfd_member_next_msgid(dfd_member *m)
{
    uint32_t id = atomic_fetch_add_explicit(&m->next_msgid, 1, memory_order_relaxed);
    if (id == 0)
        id = atomic_fetch_add_explicit(&m->next_msgid, 1, memory_order_relaxed);
    return id;
}
