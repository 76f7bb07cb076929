/*
 * idmap.c - uint32 -> pointer map (see idmap.h). Linear probing with tombstones; msgids
 * are sequential, so a multiplicative hash spreads them.
 */
#include <stdlib.h>

#include "idmap.h"

static char idmap_tombstone_mark;
#define IDMAP_TOMBSTONE ((void *)&idmap_tombstone_mark)

static size_t idmap_slot(uint32_t id, size_t mask)
{
    return (size_t)((id * 2654435761u) & mask);
}

static int idmap_grow(dfd_idmap *m)
{
    size_t cap = m->mask ? (m->mask + 1) : 16;
    if (m->count * 2 >= cap)
        cap *= 2; /* else only tombstones are cleared */
    uint32_t *keys = malloc(cap * sizeof(*keys));
    void **vals = calloc(cap, sizeof(*vals));
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return -1;
    }
    size_t mask = cap - 1;
    for (size_t i = 0; m->mask && i <= m->mask; i++) {
        if (m->vals[i] == NULL || m->vals[i] == IDMAP_TOMBSTONE)
            continue;
        size_t at = idmap_slot(m->keys[i], mask);
        while (vals[at] != NULL)
            at = (at + 1) & mask;
        keys[at] = m->keys[i];
        vals[at] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->mask = mask;
    m->used = m->count;
    return 0;
}

int dfd_idmap_put(dfd_idmap *m, uint32_t id, void *val)
{
    if ((m->used + 1) * 4 >= (m->mask + 1) * 3 && idmap_grow(m) == -1)
        return -1;
    size_t at = idmap_slot(id, m->mask);
    while (m->vals[at] != NULL && m->vals[at] != IDMAP_TOMBSTONE)
        at = (at + 1) & m->mask;
    if (m->vals[at] == NULL)
        m->used++;
    m->keys[at] = id;
    m->vals[at] = val;
    m->count++;
    return 0;
}

static size_t idmap_find(const dfd_idmap *m, uint32_t id)
{
    if (m->mask == 0)
        return (size_t)-1;
    size_t at = idmap_slot(id, m->mask);
    while (m->vals[at] != NULL) {
        if (m->vals[at] != IDMAP_TOMBSTONE && m->keys[at] == id)
            return at;
        at = (at + 1) & m->mask;
    }
    return (size_t)-1;
}

void *dfd_idmap_get(const dfd_idmap *m, uint32_t id)
{
    size_t at = idmap_find(m, id);
    return at == (size_t)-1 ? NULL : m->vals[at];
}

void *dfd_idmap_take(dfd_idmap *m, uint32_t id)
{
    size_t at = idmap_find(m, id);
    if (at == (size_t)-1)
        return NULL;
    void *val = m->vals[at];
    m->vals[at] = IDMAP_TOMBSTONE;
    m->count--;
    return val;
}

void dfd_idmap_drain(dfd_idmap *m, void (*fn)(void *val, void *arg), void *arg)
{
    for (size_t i = 0; m->mask && i <= m->mask; i++) {
        void *val = m->vals[i];
        m->vals[i] = NULL;
        if (val != NULL && val != IDMAP_TOMBSTONE)
            fn(val, arg);
    }
    m->count = m->used = 0;
}

void dfd_idmap_each(const dfd_idmap *m, void (*fn)(uint32_t id, void *val, void *arg),
                    void *arg)
{
    for (size_t i = 0; m->vals != NULL && i <= m->mask; i++)
        if (m->vals[i] != NULL && m->vals[i] != IDMAP_TOMBSTONE)
            fn(m->keys[i], m->vals[i], arg);
}

void dfd_idmap_free(dfd_idmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->mask = m->count = m->used = 0;
}
