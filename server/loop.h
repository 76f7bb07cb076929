/*
 * loop.h - the event-loop worker pool: one thread per loop, each owning an event_base
 * and the connections handed to it, which stay there for life (memcached's model).
 *
 * Other threads talk to a loop only through its mailbox: a locked list plus an
 * eventfd that wakes the loop. The eventfd is written only when the list was empty,
 * so a burst of posts costs one wakeup.
 */
#ifndef DFD_LOOP_H
#define DFD_LOOP_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "stats.h"

struct dfd_server;
struct dfd_conn;
struct dfd_call;
struct dfd_table;
struct dfd_snapshot;

typedef enum dfd_mail_kind {
    DFD_MAIL_CONN,        /* fd: adopt this accepted connection */
    DFD_MAIL_CALL_DONE,   /* call: its outcome is final, answer and free it */
    DFD_MAIL_CALL_RUN,    /* call: a concurrency slot was granted, start it */
    DFD_MAIL_TABLE,       /* table: switch to it (the mail owns one reference) */
    DFD_MAIL_DRAIN,       /* stop taking calls, close connections as they go idle */
    DFD_MAIL_STOP,        /* leave the loop now */
    DFD_MAIL_FORWARD,     /* call: write it to its member, whose connection is here */
    DFD_MAIL_SNAPSHOT,    /* snapshot: the new member set (one reference) */
    DFD_MAIL_EVENT,       /* event: tell the subscribed connections (owned) */
    DFD_MAIL_CLOSE_MEMBER, /* member: close its connection (replaced; one reference) */
    DFD_MAIL_STREAM       /* a stream relay operation (stream.c owns the mail) */
} dfd_mail_kind;

typedef struct dfd_mail {
    struct dfd_mail *next;
    dfd_mail_kind kind;
    int fd;
    int is_unix;
    void *ptr;
} dfd_mail;

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
    struct dfd_conn *conns;       /* connections owned by this loop */
    unsigned nconns;
    struct dfd_call *free_calls;  /* recycled call records */
    unsigned nfree_calls;
    int draining;
    _Atomic int drained;          /* draining and no connection left */
    int batching;                 /* > 0: writes wait for the batch's end */
    struct dfd_conn *dirty;       /* connections with output gathered in the batch */
    struct event flush_ev;        /* writes them after the poll's other events */
    int flush_pending;
    struct dfd_snapshot *snapshot; /* router: the member set this loop routes with */
    struct dfd_call *waiters;     /* router: daffi.wait calls parked here */
    struct event heartbeat_ev;    /* router/worker: heartbeat tick */
    int heartbeat_armed;
    dfd_stats stats;
} dfd_loop;

/* Creates the loop's base and mailbox (not the thread). Returns 0 or -1. */
int dfd_loop_init(dfd_loop *loop, struct dfd_server *srv, unsigned index,
                  struct dfd_table *table);
/* Starts the thread running the loop. Returns 0 or -1. */
int dfd_loop_start(dfd_loop *loop);
/* Waits for the thread to leave (after DFD_MAIL_STOP). */
void dfd_loop_join(dfd_loop *loop);
/* Frees what the loop owns (after dfd_loop_join). */
void dfd_loop_destroy(dfd_loop *loop);
/* Starts the loop's heartbeat tick (router and worker roles). */
void dfd_loop_start_heartbeat(dfd_loop *loop, uint64_t interval_ms);

/* Posts a mail to the loop from any thread. The mail is malloc'd here; returns 0 or
 * -1 when out of memory. */
int dfd_loop_post(dfd_loop *loop, dfd_mail_kind kind, int fd, int is_unix, void *ptr);

/* 1 when the calling thread is the loop's thread. */
static inline int dfd_loop_is_current(const dfd_loop *loop)
{
    return pthread_equal(loop->thread, pthread_self());
}

#endif /* DFD_LOOP_H */
