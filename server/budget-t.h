/*
 * budget-t.h - the memory budget's data (types only; budget.h has the functions).
 *
 * What is counted: the bytes a connection holds for its peer - its read buffer beyond
 * the base size, its unsent output, and the request of each of its calls in flight
 * (the message's copy and its decoded objects), pending and queued ones included,
 * until the call is freed, even after its caller left.
 *
 * Where it is counted. Each loop counts what its connections and calls hold, in
 * dfd_loop_mem.held, written by the loop thread only (relaxed stores, like the stats).
 * Loops meet in one atomic, dfd_budget.reserved: each loop reserves from it in quanta
 * of DFD_BUDGET_QUANTUM ahead of what it holds and gives back what it holds a few
 * quanta less, so that a call, which holds and releases a few hundred bytes, touches
 * only its own loop's counters. reserved is therefore at least the sum of the loops'
 * held, and at most 3 quanta a loop more.
 */
#ifndef DFD_BUDGET_T_H
#define DFD_BUDGET_T_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct dfd_conn;

#define DFD_BUDGET_QUANTUM ((size_t)256 * 1024)
/* A connection whose output has not moved for this long does not read it: when the
 * budget is nearly spent (past 15/16 of it), such connections are closed, oldest
 * first, until what is held is down to 7/8 of it, so that others have room again. */
#define DFD_BUDGET_SHED_GRACE_MS 1000
#define DFD_BUDGET_SHED_START(limit) ((limit) - (limit) / 16)
#define DFD_BUDGET_SHED_STOP(limit) ((limit) - (limit) / 8)

/* The server's budget ([limits] max_memory, max_connection_memory). */
typedef struct dfd_budget {
    size_t limit;                  /* max_memory */
    size_t conn_limit;             /* max_connection_memory, resolved (never 0) */
    _Atomic size_t reserved;       /* what the loops reserved, >= what they hold */
    _Atomic int shedding;          /* past DFD_BUDGET_SHED_START, not yet down to
                                      DFD_BUDGET_SHED_STOP: loops close non-readers */
    /* the log's view (dfd_budget_report, main thread) */
    uint64_t refused_seen;         /* memory_refused at the last report */
    uint64_t refused_since;        /* refused since the refusals began */
    uint64_t quiet_since_ns;       /* refusing, and none refused since then */
    int refusing;
} dfd_budget;

/* A loop's part (in dfd_loop). Written by the loop thread; `held` and
 * `stuck_oldest_ns` are read by others. */
typedef struct dfd_loop_mem {
    _Atomic size_t held;           /* bytes this loop's connections and calls hold */
    size_t reserved;               /* this loop's part of dfd_budget.reserved */
    /* connections whose output waits for the peer, the one whose output moved least
     * recently first (conn.h: stuck_prev/next, progress_ns) */
    struct dfd_conn *stuck_head;
    struct dfd_conn *stuck_tail;
    _Atomic uint64_t stuck_oldest_ns; /* stuck_head's progress_ns; UINT64_MAX: none */
    _Atomic int shed_asked;        /* another loop mailed it to shed (budget.c) */
    unsigned npaused;              /* connections not read until the budget has room */
} dfd_loop_mem;

#endif /* DFD_BUDGET_T_H */
