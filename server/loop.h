/*
 * loop.h - the event-loop worker pool: one thread per loop, each owning an event_base
 * and the connections handed to it, which stay there for life (memcached's model).
 *
 * Other threads talk to a loop only through its mailbox: a locked list of mails plus
 * an eventfd that wakes the loop. A mail is a function and its argument, run on the
 * loop's thread; the loop knows nothing of what mails do. The eventfd is written only
 * when the list was empty, so a burst of posts costs one wakeup.
 *
 * Batching: while a loop runs a read, a mail or a timer (dfd_loop_batch_begin/end),
 * output appended to connections waits for the loop's flush event, which libevent runs
 * after the other events of the same poll: one write per connection per pass. Dead
 * connections are released by the reap event at the end of the pass (conn.h).
 */
#ifndef DFD_LOOP_H
#define DFD_LOOP_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "blocks-t.h"
#include "budget-t.h"
#include "stats.h"

struct dfd_server;
struct dfd_conn;
struct dfd_call;
struct dfd_table;
struct dfd_snapshot;
struct dfd_loop;

/* A mail's work, on the loop's thread. arg is the mail's; run owns it from then on. */
typedef void (*dfd_mail_fn)(struct dfd_loop *loop, void *arg);
/* Releases the argument of a mail that was never run (the loop stopped first). */
typedef void (*dfd_mail_drop_fn)(void *arg);

typedef struct dfd_mail {
    struct dfd_mail *next;
    dfd_mail_fn run;
    dfd_mail_drop_fn drop;          /* NULL: nothing to release */
    void *arg;
} dfd_mail;

/* Hooks a role sets on a loop (worker: re-announce after a table switch). */
typedef void (*dfd_loop_table_fn)(struct dfd_loop *loop, const struct dfd_table *old);

typedef struct dfd_loop {
    struct dfd_server *srv;
    unsigned index;
    pthread_t thread;
    struct event_base *base;

    int mail_fd;                  /* eventfd */
    struct event mail_ev;
    pthread_mutex_t mail_lock;
    dfd_mail *mail_head;
    dfd_mail *mail_tail;

    struct dfd_table *table;      /* this loop's current table (one reference) */
    dfd_loop_table_fn on_table;   /* called after a switch (NULL: none) */
    void *on_table_arg;           /* the role's, for on_table and on_resume */
    void (*on_resume)(struct dfd_loop *loop); /* after a drain is undone (NULL: none) */
    struct dfd_conn *conns;       /* connections owned by this loop (dead ones too, until
                                     the reap at the end of the pass) */
    unsigned nconns;              /* live ones */
    struct dfd_call *free_calls;  /* recycled call records */
    unsigned nfree_calls;
    int draining;
    _Atomic int drained;          /* draining, no connection and no handler call left */
    _Atomic unsigned handler_calls; /* calls holding a plugin generation (a handler
                                     running, pending or queued, a local stream) */
    int batching;                 /* > 0: writes wait for the flush event */
    struct dfd_conn *dirty;       /* connections with output gathered in the batch */
    struct event flush_ev;        /* writes them after the poll's other events */
    int flush_pending;
    struct event reap_ev;         /* releases dead connections at the end of the pass */
    int reap_pending;
    unsigned ndead;               /* dead connections not yet released */
    struct dfd_snapshot *snapshot; /* router: the member set this loop routes with */
    struct dfd_call *waiters;     /* router: daffi.wait calls parked here */
    _Atomic unsigned nwaiters;    /* how many (read by the stats) */
    struct dfd_call *parked;      /* router: calls the startup grace holds (router-grace.h) */
    struct event heartbeat_ev;    /* router/worker: heartbeat tick */
    int heartbeat_armed;
    dfd_stats stats;
    dfd_loop_mem mem;             /* the memory budget's count (budget-t.h) */
    dfd_blocks blocks;            /* large blocks kept for the next large message (blocks.h) */

    /* the sweep (sweep.h): one timer for the timeouts of every connection */
    int sweep_fd;                 /* its timerfd */
    struct event sweep_ev;
    int sweep_armed;
    uint64_t tick;                /* sweeps so far: connections note it (conn.h) */
    uint64_t idle_ticks;          /* idle_timeout in sweeps (0: off) */
    uint64_t read_ticks;          /* read_timeout in sweeps (0: off) */
    uint64_t handshake_ticks;     /* [tls] handshake_timeout in sweeps */
    uint64_t auth_ticks;          /* [auth] timeout in sweeps */
    unsigned sweep_ms;            /* the period */
    int ktls_warned;              /* tls.ktls_unavailable logged by this loop */

    /* what the watchdog (watchdog.h) reads from the main thread */
    _Atomic unsigned wd_slot;     /* 1 + stats slot of the handler running inline, or 0 */
    _Atomic uint64_t wd_since_ns; /* when that handler started */
    _Atomic uint64_t wd_pass_ns;  /* when the sweep last ran: the loop came back */
} dfd_loop;

/* Creates the loop's base and mailbox (not the thread). Returns 0 or -1. */
int dfd_loop_init(dfd_loop *loop, struct dfd_server *srv, unsigned index,
                  struct dfd_table *table);
/* Starts the thread running the loop. Returns 0 or -1. */
int dfd_loop_start(dfd_loop *loop);
/* Asks the loop to leave (any thread); dfd_loop_join waits for it. */
void dfd_loop_stop(dfd_loop *loop);
void dfd_loop_join(dfd_loop *loop);
/* Frees what the loop owns (after dfd_loop_join): its connections are closed, unrun
 * mails dropped. What roles keep on the loop (snapshot, waiters, recycled calls) is
 * theirs to free first (server.c). */
void dfd_loop_destroy(dfd_loop *loop);

/* Posts a mail to the loop from any thread (its own too: it runs on a later pass).
 * Returns 0, or -1 when out of memory (nothing was posted; arg is still the caller's). */
int dfd_loop_post(dfd_loop *loop, dfd_mail_fn run, dfd_mail_drop_fn drop, void *arg);

/* Stops taking calls: idle connections close now, busy ones after their last answer
 * (mailed to every loop by dfd_server_drain). */
void dfd_loop_drain(dfd_loop *loop, void *unused);
/* Takes calls again after a drain (mailed by dfd_server_resume). */
void dfd_loop_resume(dfd_loop *loop, void *unused);
/* Switches the loop to table t (a mail's argument: one reference, now the loop's). */
void dfd_loop_switch_table(dfd_loop *loop, void *t);
void dfd_loop_drop_table(void *t);

/* Marks the loop drained once it is draining with no connection and no handler call
 * left (conn.c and call.c call it as those end). */
void dfd_loop_check_drained(dfd_loop *loop);

/* Brackets work done outside a connection's read (mails, timers): output waits for
 * the flush event. */
void dfd_loop_batch_begin(dfd_loop *loop);
void dfd_loop_batch_end(dfd_loop *loop);
/* Asks for the flush event of this pass (conn.c). */
void dfd_loop_want_flush(dfd_loop *loop);
/* Asks for the reap event of this pass (conn.c). */
void dfd_loop_want_reap(dfd_loop *loop);

/* 1 when the calling thread is the loop's thread. */
static inline int dfd_loop_is_current(const dfd_loop *loop)
{
    return pthread_equal(loop->thread, pthread_self());
}

#endif /* DFD_LOOP_H */
