/*
 * members.h - the router's member registry: who is connected, under which name, with
 * which callbacks.
 *
 * The registry (one per server, under a mutex) changes only on hello, leave and
 * re-announce. Each change builds an immutable snapshot (member list and a callback
 * index for round-robin picks) and mails it to every loop, so the per-call lookup on a
 * loop takes no lock. The same change mails the joined/left events to every loop, in
 * the order the registry applied them.
 *
 * Ownership: members are reference counted (the registry, each snapshot and each
 * forwarded call hold one). A member's connection and outstanding map are touched only
 * on the member's own loop.
 */
#ifndef DFD_MEMBERS_H
#define DFD_MEMBERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "idmap.h"

struct dfd_server;
struct dfd_loop;
struct dfd_conn;

typedef struct dfd_member {
    atomic_long refs;
    char *name;                 /* owned */
    char **callbacks;           /* owned, each owned; read only under the registry lock
                                   (snapshots carry their own copies) */
    size_t ncallbacks;
    struct dfd_loop *loop;      /* the loop of its connection; NULL for the router itself */
    int local;                  /* the router's own plugins */
    atomic_int alive;           /* 0 once it left or was replaced */
    atomic_uint inflight;       /* forwarded calls not yet answered by it */
    atomic_uint next_msgid;     /* our msgids on its connection (any loop takes one) */
    int deadlines;              /* its hello said it honours daffi.call's timeout_ms */
    /* on `loop` only: */
    struct dfd_conn *conn;      /* NULL once the connection closed */
    dfd_idmap outstanding;      /* our msgid -> dfd_call forwarded to it */
} dfd_member;

/* One callback of a snapshot and the members exposing it. */
typedef struct dfd_snap_slot {
    const char *name;           /* points into a dfd_snap_member's callbacks */
    dfd_member **members;
    size_t n;
    atomic_uint rr;             /* round-robin cursor */
    _Atomic unsigned stat_slot; /* "_forwarded" callstat slot + 1; 0 = not looked up */
} dfd_snap_slot;

/* A member as a snapshot saw it: its callbacks are the snapshot's own copies. */
typedef struct dfd_snap_member {
    dfd_member *m;              /* retained */
    char **callbacks;           /* owned by the snapshot */
    size_t ncallbacks;
} dfd_snap_member;

typedef struct dfd_snapshot {
    atomic_long refs;
    uint64_t version;
    dfd_snap_member *members;   /* join order */
    size_t n;
    dfd_snap_slot *slots;       /* open addressing over callback names */
    size_t mask;
} dfd_snapshot;

typedef struct dfd_registry {
    pthread_mutex_t lock;
    dfd_member **members;       /* join order, each retained */
    size_t n;
    size_t cap;
    uint64_t version;
    dfd_snapshot *current;      /* one reference */
} dfd_registry;

/* A fresh msgid for a request to m (never 0); any thread. */
uint32_t dfd_member_next_msgid(dfd_member *m);

/* Creates a member from a hello's name and callbacks (copied). refs = 1. */
dfd_member *dfd_member_new(const char *name, size_t name_len, const char *const *cbs,
                           const size_t *cb_lens, size_t ncbs);
void dfd_member_retain(dfd_member *m);
void dfd_member_release(dfd_member *m);

int dfd_registry_init(dfd_registry *r);
void dfd_registry_destroy(dfd_registry *r);

/* Adds m under its name (taking a reference). When the name exists: with replace = 0
 * returns -1 (nothing changed); with replace = 1 the old member is removed and
 * returned in *replaced (a reference the caller releases after closing it). Publishes
 * the new snapshot and the events to every loop of srv. Returns 0 or -1. */
int dfd_registry_join(struct dfd_server *srv, dfd_member *m, int replace,
                      dfd_member **replaced);
/* Replaces m's callbacks (a re-announce; takes ownership of the array); publishes. */
void dfd_registry_update(struct dfd_server *srv, dfd_member *m, char **callbacks,
                         size_t ncallbacks);
/* Removes m if it is still registered; publishes a left event. */
void dfd_registry_leave(struct dfd_server *srv, dfd_member *m);

/* Picks a member exposing the callback of slot (from dfd_snapshot_slot), round-robin,
 * skipping members that are not alive or hold `limit` calls. Returns a retained member,
 * or NULL with *exists = 1 when some member exposes it but all are busy, 0 when none
 * alive does. */
dfd_member *dfd_snap_slot_pick(dfd_snap_slot *slot, unsigned limit, int *exists);
/* Returns the entry of callback name (the members exposing it), or NULL. */
dfd_snap_slot *dfd_snapshot_slot(const dfd_snapshot *s, const char *name, size_t len);
/* Returns the member entry called name, or NULL. */
const dfd_snap_member *dfd_snapshot_find(const dfd_snapshot *s, const char *name, size_t len);
/* Returns 1 when the member entry exposes the callback. */
int dfd_snap_member_has(const dfd_snap_member *sm, const char *name, size_t len);

void dfd_snapshot_retain(dfd_snapshot *s);
void dfd_snapshot_release(dfd_snapshot *s);

#endif /* DFD_MEMBERS_H */
