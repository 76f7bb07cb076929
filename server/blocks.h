/*
 * blocks.h - each loop keeps a few large blocks (read buffers, requests, results,
 * outputs of DFD_BLOCK_MIN bytes and more) for the next large message, instead of
 * giving them back to the system and mapping them again.
 *
 * Why: blocks past malloc's mmap threshold (which budget.c fixes at 256 KiB so that a
 * freed message's memory leaves the process) are mapped for each use and unmapped at
 * free, and every page of a new mapping faults in zeroed: a 1 MiB echo paid three maps,
 * three unmaps, six mremaps and about a thousand page faults per call.
 *
 * The cache holds at most DFD_BLOCKS_SLOTS blocks and `limit` bytes per loop (8 MiB, or
 * max_memory / 16 when that is less), freed after a second unused (dfd_blocks_trim, from
 * the sweep) and when the loop stops. Cached blocks hold no request or reply, so the
 * memory budget does not count them; they are part of its stated overhead (README
 * "Memory budget"). Every block is a plain malloc() block: whoever holds one may
 * free() it instead of giving it back.
 *
 * Every function runs on the loop's thread.
 */
#ifndef DFD_BLOCKS_H
#define DFD_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "blocks-t.h"

#define DFD_BLOCK_MIN (256 * 1024)      /* smaller blocks come from malloc's heap */
#define DFD_BLOCKS_LIMIT (8 * 1024 * 1024) /* bytes cached per loop, at most */

/* Sets the limit in bytes (0: cache nothing). */
void dfd_blocks_init(dfd_blocks *b, size_t limit);

/* Returns the smallest cached block of at least want bytes and at most
 * dfd_blocks_round(want), its size in *cap; the caller owns it. NULL when none is
 * cached. */
void *dfd_blocks_take(dfd_blocks *b, size_t want, size_t *cap, uint64_t tick);

/* Takes ownership of block p of cap bytes: keeps it (evicting smaller ones for it when
 * full) or frees it. */
void dfd_blocks_give(dfd_blocks *b, void *p, size_t cap, uint64_t tick);

/* Gives sb's block to the cache (dfd_blocks_give) and leaves sb empty, as
 * msgpack_sbuffer_init does. */
void dfd_blocks_give_sbuffer(dfd_blocks *b, msgpack_sbuffer *sb, uint64_t tick);

/* Makes *p (a malloc'd buffer of *cap bytes, the first keep of them in use) at least
 * want bytes: with realloc below DFD_BLOCK_MIN, from the cache or a new block of a
 * power of two past it (the old block, when large, goes to the cache). *p and *cap
 * change only on success. Returns 0, or -1 when out of memory (*p unchanged). */
int dfd_blocks_grow(dfd_blocks *b, char **p, size_t *cap, size_t keep, size_t want,
                    uint64_t tick);

/* The size dfd_blocks_grow gives for want bytes: want below DFD_BLOCK_MIN, else the next
 * power of two (so that blocks fit the next message of about the same size). */
size_t dfd_blocks_round(size_t want);

/* Frees the blocks when none was taken or given since tick - idle_ticks. */
void dfd_blocks_trim(dfd_blocks *b, uint64_t tick, uint64_t idle_ticks);

/* Frees every cached block. */
void dfd_blocks_free(dfd_blocks *b);

#endif /* DFD_BLOCKS_H */
