/*
 * members-snap.c - the registry's immutable snapshots and the picks made from them on
 * every routed call: a member round-robin, then one of its links (see members.h).
 *
 * Frozen links. A link that owes the router an answer (a forwarded call or a heartbeat
 * ping was written to it) and has sent nothing for longer than frozen_ns (router.c:
 * one and a half heartbeat intervals) is frozen: a stopped process, a loop stuck in a
 * handler. Picks pass over it while another link or member can take the call, so new
 * calls go to the healthy ones (a member with one frozen link comes after the members
 * with none: a stopped process freezes all its links, one pick at a time would find
 * them one by one); it is picked again as soon as anything arrives from it
 * (membership.c clears owed_since_ns). When every candidate is frozen the pick takes
 * one anyway: the call then waits as it did before, rather than failing.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "members.h"
#include "table.h"

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

/* Copies m's callbacks and links into the entry sm. Caller holds the registry lock.
 * Returns 0 or -1 (out of memory; what was copied is the snapshot's to free). */
static int snapshot_copy_member(dfd_snap_member *sm, dfd_member *m)
{
    dfd_member_retain(m);
    sm->m = m;
    atomic_init(&sm->link_rr, 0);
    sm->callbacks = calloc(m->ncallbacks ? m->ncallbacks : 1, sizeof(char *));
    if (sm->callbacks == NULL)
        return -1;
    for (size_t k = 0; k < m->ncallbacks; k++) {
        if ((sm->callbacks[k] = strdup(m->callbacks[k])) == NULL)
            return -1;
        sm->ncallbacks = k + 1;
    }
    if (m->nlinks == 0)
        return 0;
    sm->links = calloc(m->nlinks, sizeof(*sm->links));
    if (sm->links == NULL)
        return -1;
    for (size_t k = 0; k < m->nlinks; k++) {
        dfd_link_retain(m->links[k]);
        sm->links[sm->nlinks++] = m->links[k];
    }
    return 0;
}

/* Indexes sm's callbacks in the slots of s. Returns 0 or -1 (out of memory). */
static int snapshot_index_member(dfd_snapshot *s, dfd_snap_member *sm)
{
    for (size_t k = 0; k < sm->ncallbacks; k++) {
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
        dfd_snap_member **grown = realloc(slot->members, (slot->n + 1) * sizeof(*grown));
        if (grown == NULL)
            return -1;
        slot->members = grown;
        slot->members[slot->n++] = sm;
    }
    return 0;
}

dfd_snapshot *dfd_snapshot_build(dfd_registry *r)
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
    /* the slots point at these entries: the array is never reallocated */
    s->members = calloc(r->n ? r->n : 1, sizeof(*s->members));
    s->slots = calloc(size, sizeof(*s->slots));
    if (s->members == NULL || s->slots == NULL)
        goto fail;
    s->mask = size - 1;
    for (size_t i = 0; i < r->n; i++) {
        dfd_snap_member *sm = &s->members[s->n++];
        if (snapshot_copy_member(sm, r->members[i]) == -1 ||
            snapshot_index_member(s, sm) == -1)
            goto fail;
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
        dfd_snap_member *sm = &s->members[i];
        dfd_member_free_callbacks(sm->callbacks, sm->ncallbacks);
        for (size_t k = 0; k < sm->nlinks; k++)
            dfd_link_release(sm->links[k]);
        free(sm->links);
        dfd_member_release(sm->m);
    }
    free(s->slots);
    free(s->members);
    free(s);
}

int dfd_link_frozen(const dfd_link *l, uint64_t now_ns, uint64_t frozen_ns)
{
    if (frozen_ns == 0)
        return 0;
    uint64_t since = atomic_load_explicit(&l->owed_since_ns, memory_order_relaxed);
    return since != 0 && now_ns > since && now_ns - since > frozen_ns;
}

/* dfd_link_frozen, and the first pick that finds l frozen says so (once, until it
 * answers again: membership.c). */
static int link_check_frozen(dfd_loop *loop, dfd_link *l, uint64_t now_ns, uint64_t frozen_ns)
{
    if (!dfd_link_frozen(l, now_ns, frozen_ns))
        return 0;
    if (!atomic_load_explicit(&l->frozen, memory_order_relaxed) &&
        !atomic_exchange(&l->frozen, 1)) {
        dfd_stat_add(&loop->stats, DFD_STAT_members_frozen, 1);
        uint64_t since = atomic_load_explicit(&l->owed_since_ns, memory_order_relaxed);
        dfd_warn("router.frozen", "member=%s link=%u silent_ms=%llu msg=\"owes an answer and "
                 "sent nothing: new calls go to other members until it answers\"",
                 l->member != NULL ? l->member->name : "?", l->index,
                 (unsigned long long)((now_ns - since) / 1000000u));
    }
    return 1;
}

/* A link of sm that is alive and not frozen, on loop when it has one there (no hop to
 * another thread), round-robin among those that qualify; or NULL. *frozen is set when
 * an alive link of sm is frozen (every link is looked at: a process that stopped
 * freezes all of them, and a pick must not discover them one at a time). Not
 * retained. */
static dfd_link *snap_member_healthy_link(dfd_snap_member *sm, dfd_loop *loop,
                                          uint64_t now_ns, uint64_t frozen_ns, int *frozen)
{
    size_t n = sm->nlinks;
    unsigned start = n > 1 ? atomic_fetch_add_explicit(&sm->link_rr, 1, memory_order_relaxed)
                           : 0;
    dfd_link *here = NULL, *other = NULL;
    for (size_t k = 0; k < n; k++) {
        dfd_link *l = sm->links[(start + k) % n];
        if (!atomic_load_explicit(&l->alive, memory_order_relaxed))
            continue;
        if (link_check_frozen(loop, l, now_ns, frozen_ns))
            *frozen = 1;
        else if (l->loop == loop && here == NULL)
            here = l;
        else if (other == NULL)
            other = l;
    }
    return here != NULL ? here : other;
}

/* Any alive link of sm, frozen or not (the last resort), or NULL. Not retained. */
static dfd_link *snap_member_any_link(const dfd_snap_member *sm)
{
    for (size_t k = 0; k < sm->nlinks; k++)
        if (atomic_load_explicit(&sm->links[k]->alive, memory_order_relaxed))
            return sm->links[k];
    return NULL;
}

dfd_link *dfd_snap_member_link(dfd_snap_member *sm, dfd_loop *loop, uint64_t now_ns,
                               uint64_t frozen_ns)
{
    int frozen = 0;
    dfd_link *l = snap_member_healthy_link(sm, loop, now_ns, frozen_ns, &frozen);
    if (l == NULL)
        l = snap_member_any_link(sm);
    if (l != NULL)
        dfd_link_retain(l);
    return l;
}

const dfd_snap_member *dfd_snap_slot_pick(dfd_snap_slot *slot, unsigned limit,
                                          dfd_loop *loop, uint64_t now_ns,
                                          uint64_t frozen_ns, dfd_link **link, int *exists)
{
    *exists = 0;
    *link = NULL;
    /* first choice: a member none of whose links is frozen; then one with a healthy
     * link beside a frozen one (a loop stuck in a handler, or a process stopping: its
     * other links may be next); last, a frozen one */
    dfd_snap_member *suspect = NULL, *last_resort = NULL;
    dfd_link *suspect_link = NULL;
    unsigned start = atomic_fetch_add_explicit(&slot->rr, 1, memory_order_relaxed);
    for (size_t k = 0; k < slot->n; k++) {
        dfd_snap_member *sm = slot->members[(start + k) % slot->n];
        dfd_member *m = sm->m;
        if (!atomic_load_explicit(&m->alive, memory_order_relaxed) ||
            atomic_load_explicit(&m->withdrawn, memory_order_relaxed))
            continue;
        *exists = 1;
        if (m->local)
            return sm;
        if (atomic_load_explicit(&m->inflight, memory_order_relaxed) >= limit)
            continue;
        int frozen = 0;
        dfd_link *l = snap_member_healthy_link(sm, loop, now_ns, frozen_ns, &frozen);
        if (l != NULL && !frozen) {
            dfd_link_retain(l);
            *link = l;
            return sm;
        }
        if (l != NULL && suspect == NULL) {
            suspect = sm;
            suspect_link = l;
        } else if (l == NULL && frozen && last_resort == NULL) {
            last_resort = sm;
        }
    }
    if (suspect != NULL) {
        dfd_link_retain(suspect_link);
        *link = suspect_link;
        return suspect;
    }
    if (last_resort != NULL && (*link = snap_member_any_link(last_resort)) != NULL) {
        dfd_link_retain(*link);
        return last_resort;
    }
    return NULL;
}

dfd_snap_member *dfd_snapshot_find(const dfd_snapshot *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++) {
        const dfd_member *m = s->members[i].m;
        if (strncmp(m->name, name, len) == 0 && m->name[len] == '\0' &&
            atomic_load(&m->alive))
            return &s->members[i];
    }
    return NULL;
}

int dfd_snap_member_has(const dfd_snap_member *sm, const char *name, size_t len)
{
    for (size_t i = 0; i < sm->ncallbacks; i++)
        if (strncmp(sm->callbacks[i], name, len) == 0 && sm->callbacks[i][len] == '\0')
            return 1;
    return 0;
}
