/*
 * board.h - the page a child process (isolation = process) shares with its parent:
 * uWSGI's scoreboard. The parent creates a memfd, writes the child's setup after the
 * board, and hands it to the child as fd 4; both map it MAP_SHARED.
 *
 *   The child, on its loop thread, publishes the oldest call it holds as one word:
 *   its arrival (CLOCK_MONOTONIC milliseconds) and its callback's index in the order
 *   its hello announced the callbacks (the parent has the names). The parent's
 *   supervisor reads it for harakiri and to name the callback that was running when
 *   a child died.
 *   A child whose handler dies (a fatal signal, or exit() called from it) writes that
 *   handler's callback index into `fatal` on its way out: with calls running at once,
 *   the oldest is not always the one that killed it.
 *   A child that cannot start writes why into `error` and publishes its length last,
 *   then exits; the parent reads it once the child is gone.
 *
 * Every field both sides touch while the other runs is a lock-free atomic: they work
 * between processes that map the same page.
 */
#ifndef DFD_BOARD_H
#define DFD_BOARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define DFD_BOARD_MAGIC 0x64666462u     /* "dfdb" */
#define DFD_BOARD_SETUP_OFF 4096u       /* the setup message starts here */
#define DFD_BOARD_INDEX_BITS 12         /* callback index + 1 (plugins have <= 1024) */
#define DFD_BOARD_ERROR_MAX 2048

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the board needs lock-free 64-bit atomics");

typedef struct dfd_board {
    uint32_t magic;                    /* written by the parent before the spawn */
    uint32_t setup_len;                /* bytes of setup at DFD_BOARD_SETUP_OFF */
    _Atomic uint64_t oldest;           /* dfd_board_word() of the oldest call; 0: none */
    _Atomic uint32_t running;          /* calls the child holds (handlers not ended) */
    _Atomic uint32_t fatal;            /* callback index + 1 whose thread died; 0: none */
    _Atomic uint32_t error_len;        /* set once error[] is complete */
    char error[DFD_BOARD_ERROR_MAX];   /* why the child could not start */
} dfd_board;

_Static_assert(sizeof(dfd_board) <= DFD_BOARD_SETUP_OFF, "the board fits its page");

/* The word of a call that arrived at since_ns, for the callback of that index. */
static inline uint64_t dfd_board_word(uint64_t since_ns, unsigned index)
{
    return ((since_ns / 1000000u) << DFD_BOARD_INDEX_BITS) | (uint64_t)(index + 1);
}

/* Reads a word: 1 with the arrival (ms) and the index, 0 for none. */
static inline int dfd_board_unword(uint64_t w, uint64_t *since_ms, unsigned *index)
{
    if (w == 0)
        return 0;
    *since_ms = w >> DFD_BOARD_INDEX_BITS;
    *index = (unsigned)(w & ((1u << DFD_BOARD_INDEX_BITS) - 1)) - 1;
    return 1;
}

#endif /* DFD_BOARD_H */
