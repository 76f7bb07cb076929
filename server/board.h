/*
 * board.h - the page a child process (isolation = process) shares with its parent:
 * uWSGI's scoreboard. The parent creates a memfd, writes the child's setup after the
 * board, and hands it to the child as fd 4; both map it MAP_SHARED.
 *
 *   The child, on its loop thread, publishes the arrival time and the callback of the
 *   oldest call it holds (a seqlock: seq is odd while it writes), and how many it
 *   holds. The parent's supervisor reads them for harakiri and to name the callback
 *   that was running when a child died.
 *   A child whose handler dies (a fatal signal, or exit() called from it) writes that
 *   handler's callback into `fatal` on its way out: with calls running at once, the
 *   oldest is not always the one that killed it.
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
#define DFD_BOARD_CB_WORDS 32           /* a callback name: 255 bytes and a NUL */
#define DFD_BOARD_ERROR_MAX 2048

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the board needs lock-free 64-bit atomics");

typedef struct dfd_board {
    uint32_t magic;                    /* written by the parent before the spawn */
    uint32_t setup_len;                /* bytes of setup at DFD_BOARD_SETUP_OFF */
    _Atomic uint32_t seq;              /* odd while the child writes the two below */
    _Atomic uint32_t running;          /* calls the child holds (handlers not ended) */
    _Atomic uint64_t oldest_ns;        /* CLOCK_MONOTONIC arrival of the oldest; 0 = none */
    _Atomic uint64_t callback[DFD_BOARD_CB_WORDS]; /* its callback, NUL-padded bytes */
    _Atomic uint64_t fatal[DFD_BOARD_CB_WORDS]; /* the callback whose thread died
                                          (a fatal signal, exit()): the child's last note */
    _Atomic uint32_t error_len;        /* set once error[] is complete */
    char error[DFD_BOARD_ERROR_MAX];   /* why the child could not start */
} dfd_board;

_Static_assert(sizeof(dfd_board) <= DFD_BOARD_SETUP_OFF, "the board fits its page");

/* Copies name (NUL-padded, at most 255 bytes) into words: plain stores, no call,
 * so that a fatal-signal handler may use it. */
static inline void dfd_board_put_name(_Atomic uint64_t *words, const char *name)
{
    size_t i = 0;
    int end = name == NULL;
    for (size_t k = 0; k < DFD_BOARD_CB_WORDS; k++) {
        uint64_t w = 0;
        for (int b = 0; b < 8; b++) {
            unsigned char ch = 0;
            if (!end && i < DFD_BOARD_CB_WORDS * 8 - 1) {
                ch = (unsigned char)name[i++];
                end = ch == 0;
            }
            w |= (uint64_t)ch << (8 * b);
        }
        atomic_store_explicit(&words[k], w, memory_order_relaxed);
    }
}

/* Reads a name dfd_board_put_name wrote (the writer is gone or idle) into out. */
static inline void dfd_board_get_name(_Atomic uint64_t *words, char *out, size_t size)
{
    size_t n = 0;
    for (size_t k = 0; k < DFD_BOARD_CB_WORDS && n + 1 < size; k++) {
        uint64_t w = atomic_load_explicit(&words[k], memory_order_acquire);
        for (int b = 0; b < 8 && n + 1 < size; b++) {
            char ch = (char)((w >> (8 * b)) & 0xff);
            if (ch == '\0') {
                out[n] = '\0';
                return;
            }
            out[n++] = ch;
        }
    }
    out[n] = '\0';
}

/* The child: publishes the oldest call (since_ns 0 and name NULL: none). */
static inline void dfd_board_publish(dfd_board *b, uint64_t since_ns, const char *name,
                                     uint32_t running)
{
    uint32_t s = atomic_load_explicit(&b->seq, memory_order_relaxed);
    atomic_store_explicit(&b->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&b->oldest_ns, since_ns, memory_order_relaxed);
    dfd_board_put_name(b->callback, name);
    atomic_store_explicit(&b->running, running, memory_order_relaxed);
    atomic_store_explicit(&b->seq, s + 2, memory_order_release);
}

/* The parent: reads the oldest call into *since_ns and name (size > 0; "" when none)
 * and returns how many calls the child holds. Retries while the child writes, a
 * bounded number of times (a child stopped mid-write reads as idle). */
static inline uint32_t dfd_board_read(dfd_board *b, uint64_t *since_ns, char *name,
                                      size_t size)
{
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t s1 = atomic_load_explicit(&b->seq, memory_order_acquire);
        if (s1 & 1u)
            continue;
        uint64_t since = atomic_load_explicit(&b->oldest_ns, memory_order_relaxed);
        dfd_board_get_name(b->callback, name, size);
        uint32_t running = atomic_load_explicit(&b->running, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&b->seq, memory_order_relaxed) != s1)
            continue;
        *since_ns = since;
        return running;
    }
    *since_ns = 0;
    name[0] = '\0';
    return 0;
}

#endif /* DFD_BOARD_H */
