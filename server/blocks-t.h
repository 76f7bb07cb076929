/*
 * blocks-t.h - a loop's cache of large memory blocks (see blocks.h).
 */
#ifndef DFD_BLOCKS_T_H
#define DFD_BLOCKS_T_H

#include <stddef.h>
#include <stdint.h>

#define DFD_BLOCKS_SLOTS 4

typedef struct dfd_blocks {
    void *p[DFD_BLOCKS_SLOTS];     /* malloc'd blocks, owned by the cache */
    size_t cap[DFD_BLOCKS_SLOTS];  /* their sizes */
    unsigned n;                    /* blocks cached */
    size_t bytes;                  /* their sum */
    size_t limit;                  /* at most this many bytes cached */
    uint64_t used_tick;            /* the sweep's tick of the last take or give */
} dfd_blocks;

#endif /* DFD_BLOCKS_T_H */
