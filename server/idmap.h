/*
 * idmap.h - a small open-addressing map from uint32 ids (msgids) to pointers.
 *
 * Used for the calls a daffid has outstanding on a connection (router -> member,
 * worker -> router). Owned by one thread; not locked.
 */
#ifndef DFD_IDMAP_H
#define DFD_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct dfd_idmap {
    uint32_t *keys;
    void **vals;      /* NULL = empty slot; a removed slot holds the tombstone */
    size_t mask;      /* capacity - 1, capacity a power of two (0 when unallocated) */
    size_t count;     /* live entries */
    size_t used;      /* live + tombstones */
} dfd_idmap;

/* Inserts id -> val (val not NULL; id not present). Returns 0 or -1 (out of memory). */
int dfd_idmap_put(dfd_idmap *m, uint32_t id, void *val);
/* Returns the value for id or NULL. */
void *dfd_idmap_get(const dfd_idmap *m, uint32_t id);
/* Removes id and returns its value, or NULL when absent. */
void *dfd_idmap_take(dfd_idmap *m, uint32_t id);
/* Calls fn(val, arg) for every live entry, then empties the map (keeps its memory). */
void dfd_idmap_drain(dfd_idmap *m, void (*fn)(void *val, void *arg), void *arg);
/* Calls fn(id, val, arg) for every live entry; fn must not change the map. */
void dfd_idmap_each(const dfd_idmap *m, void (*fn)(uint32_t id, void *val, void *arg),
                    void *arg);
void dfd_idmap_free(dfd_idmap *m);

#endif /* DFD_IDMAP_H */
