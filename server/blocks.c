/*
 * blocks.c - the loop's cache of large blocks (see blocks.h).
 */
#include <stdlib.h>
#include <string.h>

#include "blocks.h"

void dfd_blocks_init(dfd_blocks *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

static void blocks_drop(dfd_blocks *b, unsigned i)
{
    b->bytes -= b->cap[i];
    b->n--;
    b->p[i] = b->p[b->n];
    b->cap[i] = b->cap[b->n];
}

void *dfd_blocks_take(dfd_blocks *b, size_t want, size_t *cap, uint64_t tick)
{
    unsigned best = b->n;
    /* a larger block would count in full where it is held (a read buffer's share of
     * the budget): only the size dfd_blocks_round gives for want, at most */
    size_t most = dfd_blocks_round(want);
    for (unsigned i = 0; i < b->n; i++)
        if (b->cap[i] >= want && b->cap[i] <= most &&
            (best == b->n || b->cap[i] < b->cap[best]))
            best = i;
    if (best == b->n)
        return NULL;
    void *p = b->p[best];
    *cap = b->cap[best];
    blocks_drop(b, best);
    b->used_tick = tick;
    return p;
}

void dfd_blocks_give(dfd_blocks *b, void *p, size_t cap, uint64_t tick)
{
    if (cap > b->limit) {
        free(p);
        return;
    }
    /* room first: the smallest blocks go, if they are smaller than this one */
    while (b->n == DFD_BLOCKS_SLOTS || b->bytes + cap > b->limit) {
        unsigned small = 0;
        for (unsigned i = 1; i < b->n; i++)
            if (b->cap[i] < b->cap[small])
                small = i;
        if (b->n == 0 || b->cap[small] > cap) {
            free(p);
            return;
        }
        free(b->p[small]);
        blocks_drop(b, small);
    }
    b->p[b->n] = p;
    b->cap[b->n] = cap;
    b->n++;
    b->bytes += cap;
    b->used_tick = tick;
}

void dfd_blocks_give_sbuffer(dfd_blocks *b, msgpack_sbuffer *sb, uint64_t tick)
{
    dfd_blocks_give(b, sb->data, sb->alloc, tick);
    msgpack_sbuffer_init(sb);
}

size_t dfd_blocks_round(size_t want)
{
    if (want < DFD_BLOCK_MIN)
        return want;
    size_t r = DFD_BLOCK_MIN;
    while (r < want && r <= SIZE_MAX / 2)
        r *= 2;
    return r < want ? want : r;
}

int dfd_blocks_grow(dfd_blocks *b, char **p, size_t *cap, size_t keep, size_t want,
                    uint64_t tick)
{
    if (want <= *cap)
        return 0;
    if (want < DFD_BLOCK_MIN) {
        char *q = realloc(*p, want);
        if (q == NULL)
            return -1;
        *p = q;
        *cap = want;
        return 0;
    }
    size_t ncap = 0;
    char *q = dfd_blocks_take(b, want, &ncap, tick);
    if (q == NULL) {
        ncap = dfd_blocks_round(want);
        if ((q = malloc(ncap)) == NULL)
            return -1;
    }
    if (keep != 0)
        memcpy(q, *p, keep);
    if (*cap >= DFD_BLOCK_MIN)
        dfd_blocks_give(b, *p, *cap, tick);
    else
        free(*p);
    *p = q;
    *cap = ncap;
    return 0;
}

void dfd_blocks_trim(dfd_blocks *b, uint64_t tick, uint64_t idle_ticks)
{
    if (b->n != 0 && tick - b->used_tick >= idle_ticks)
        dfd_blocks_free(b);
}

void dfd_blocks_free(dfd_blocks *b)
{
    for (unsigned i = 0; i < b->n; i++)
        free(b->p[i]);
    b->n = 0;
    b->bytes = 0;
}
