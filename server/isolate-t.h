/*
 * isolate-t.h - isolation = process on the parent's side (types only; isolate.h is the
 * API, docs/ISOLATION.md the design).
 *
 * A dfd_supervisor (srv->supervisor) holds a dfd_isolate per isolated plugin
 * generation, and each isolate its dfd_child processes: `processes` slots, each with
 * the child serving it now, plus children that are on their way out (retired,
 * harakiri). A child is a member of its parent: its dfd_member's connection is the
 * link to it, on one of the loops.
 *
 * Threads. The main thread owns all of it (spawns, reaps, restarts, frees). The loops
 * read three things: a slot's current child and its `ready` flag and the isolate's
 * `status`, under the isolate's lock, when they pick a child for a call; the child's
 * member (fixed for the child's life) on the link's loop; and they set `adopted` and
 * `link_closed`. A child is freed only once it is reaped, its link is closed and no
 * mail for it is pending, so what the loops hold of it stays valid.
 */
#ifndef DFD_ISOLATE_T_H
#define DFD_ISOLATE_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>
#include <daffi/plugin.h>
#include <daffi/rpc.h>

#include "members.h"

struct dfd_server;
struct dfd_plugin;
struct dfd_loop;
struct dfd_board;
struct event;

/* Restart policy (docs/ISOLATION.md, "Supervision"). */
#define DFD_ISOLATE_START_TIMEOUT_MS 10000u /* from spawn to its hello */
#define DFD_ISOLATE_BACKOFF_FIRST_MS 100u   /* the first restart after a death */
#define DFD_ISOLATE_BACKOFF_MAX_MS 5000u    /* doubling up to this */
#define DFD_ISOLATE_LIVED_MS 10000u         /* a child that served this long resets it */
#define DFD_ISOLATE_LOOP_DEATHS 5u          /* this many deaths ... */
#define DFD_ISOLATE_LOOP_WINDOW_MS 60000u   /* ... within this window: a crash loop */
#define DFD_ISOLATE_KILL_GRACE_MS 1000u     /* harakiri: SIGTERM, then SIGKILL after this */
#define DFD_ISOLATE_TICK_MS 50u             /* the supervisor's tick */
#define DFD_ISOLATE_EXIT_WAIT_MS 2000u      /* at exit: children left get SIGKILL after */

typedef enum dfd_child_state {
    DFD_CHILD_STARTING = 0,   /* spawned; its hello not answered yet */
    DFD_CHILD_READY,          /* hello answered: serving (once its link is adopted) */
    DFD_CHILD_STOPPING,       /* gets no new calls: retired, harakiri, exit */
    DFD_CHILD_EXITED          /* reaped */
} dfd_child_state;

typedef struct dfd_child {
    struct dfd_isolate *iso;
    struct dfd_child *next;       /* iso->children */
    unsigned slot;                /* 0 .. processes - 1 */
    pid_t pid;                    /* 0 before the spawn */
    dfd_child_state state;
    int ready;                    /* under iso->lock: calls may be sent to it */
    dfd_member *m;                /* one reference; made with the hello */
    dfd_link *l;                  /* its one link (one reference; holds m too) */
    struct dfd_loop *loop;        /* the loop its link is on (once posted there) */
    struct dfd_board *board;      /* the shared page, mapped board_size bytes */
    size_t board_size;
    int fd;                       /* the link while the main thread holds it, else -1 */
    struct event *read_ev;        /* an asynchronous start reads the hello with it */
    char *in;                     /* the bytes of the hello read so far (owned) */
    size_t in_len;
    size_t in_cap;
    daffi_scan scan;
    atomic_int adopted;           /* 1 once the loop adopted the link */
    atomic_int link_closed;       /* 1 once the link is dead or will never be made */
    atomic_int mails;             /* mails for it not yet run or dropped */
    int reaped;
    int status;                   /* waitpid's, once reaped */
    int planned;                  /* its end was asked for: no restart of its own
                                     (written under iso->lock) */
    int harakiri;                 /* it was ended by harakiri */
    int sigkilled;                /* SIGKILL sent */
    uint64_t spawned_ns;
    uint64_t ready_ns;
    uint64_t kill_at_ns;          /* SIGKILL when still alive then (0: none due) */
    char running[256];            /* the callback it held when it ended, from its board */
    char failure[240];            /* why its start failed, when the parent saw it */
    char end[512];                /* how it ended: what the calls it held are told */
} dfd_child;

typedef struct dfd_isolate_slot {
    dfd_child *current;           /* under iso->lock: the child serving the slot */
    uint64_t restart_at_ns;       /* a start is due then (0: none) */
    unsigned streak;              /* deaths in a row of short-lived children */
    unsigned restarts;
} dfd_isolate_slot;

typedef struct dfd_isolate {
    struct dfd_supervisor *sup;
    struct dfd_isolate *next;     /* sup->groups */
    struct dfd_plugin *gen;       /* the generation served (not a reference); NULL once
                                     it was finalised */
    char *name;                   /* owned copies of the generation's identity */
    char *file;
    unsigned generation;
    unsigned processes;
    unsigned concurrency;         /* what each child applies (the plugin's settings) */
    unsigned queue;
    uint64_t harakiri_ms;         /* 0: off */
    msgpack_sbuffer setup;        /* the setup's key/value pairs but the slot */
    uint32_t setup_pairs;

    pthread_mutex_t lock;         /* slots[].current, children's ready, rr, status */
    dfd_isolate_slot *slots;      /* processes entries */
    unsigned rr;
    char status[640];             /* why no child is ready */

    dfd_child *children;          /* every child not freed yet */
    int released;                 /* the generation is gone: no more starts */
    int failed;                   /* a crash loop stopped the restarts */
    uint64_t deaths[DFD_ISOLATE_LOOP_DEATHS]; /* the last deaths (ring) */
    unsigned ndeaths;
    uint64_t crashes;
    uint64_t restarts;
    uint64_t harakiri;
    char last_death[512];

    /* what the children announce */
    daffi_plugin_descriptor desc;
    char *version;
    char **cb_names;
    unsigned *cb_flags;
    size_t ncb;
} dfd_isolate;

typedef struct dfd_supervisor {
    struct dfd_server *srv;
    dfd_isolate *groups;
    struct event *sigchld_ev;
    struct event *tick_ev;
    int attached;                 /* the loops run: links are adopted as children start */
    long uid;                     /* started as root: the children's user, else -1 */
    long gid;
    char user[64];
    char **envp;                  /* the children's environment; owned */
    uint64_t crashes;             /* every isolate's, for the counter table */
    uint64_t restarts;
    uint64_t harakiri;
} dfd_supervisor;

#endif /* DFD_ISOLATE_T_H */
