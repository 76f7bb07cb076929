/*
 * members.h - the router's member registry: who is connected, under which name, with
 * which callbacks, over which links.
 *
 * A member is a name with callbacks. It is reached over one or more links: a link is
 * one connection that said daffi.hello for it. A plain member has one link; a member
 * that announced a session ({"session": id, "link": i, "links": n}, PROTOCOL.md
 * "Members") may open several, typically one per loop of the worker, and the router
 * keeps them as one member: calls pick the member, then one of its links. A link that
 * drops fails only the calls it carries; the member leaves when its last link does.
 *
 * The registry (one per server, under a mutex) changes only on hello, leave, a link
 * joining or leaving, and re-announce. Each change builds an immutable snapshot (the
 * member list with each member's links, and a callback index for round-robin picks)
 * and mails it to every loop, so the per-call lookup on a loop takes no lock. The same
 * change mails the joined/left events to every loop, in the order the registry
 * applied them.
 *
 * Ownership: members and links are reference counted. The registry and each snapshot
 * hold a member; each snapshot, the link's connection and each forwarded call hold a
 * link, and a link holds its member. A member's list of links is not counted: a link
 * takes itself out of it (under the registry lock) as its connection closes. A link's
 * connection and outstanding map are touched only on the link's own loop.
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
struct dfd_grace;
struct dfd_member;

#define DFD_MEMBER_SESSION_MAX 64  /* bytes of a hello's "session" */
#define DFD_MEMBER_LINKS_MAX 256   /* a hello's "links" */

/* One connection of a member. */
typedef struct dfd_link {
    atomic_long refs;
    struct dfd_member *member;  /* a reference */
    unsigned index;             /* the hello's "link" (0 for a plain member) */
    unsigned of;                /* the hello's "links" (1 for a plain member) */
    struct dfd_loop *loop;      /* the loop of its connection */
    atomic_int alive;           /* 0 once its connection closed or it was replaced */
    atomic_uint inflight;       /* calls forwarded on it, not yet answered */
    atomic_uint next_msgid;     /* our msgids on its connection (any loop takes one) */
    /* frozen members (router.c): since when it owes us an answer (a forwarded call or
     * a heartbeat ping written to it) with nothing received since; 0: it owes nothing */
    _Atomic uint64_t owed_since_ns;
    atomic_int frozen;          /* 1 once a pick found it silent too long (logged) */
    /* on `loop` only: */
    struct dfd_conn *conn;      /* NULL once the connection closed */
    dfd_idmap outstanding;      /* our msgid -> dfd_call forwarded on it */
    int deadlines;              /* its hello said it honours daffi.call's timeout_ms */
} dfd_link;

typedef struct dfd_member {
    atomic_long refs;
    char *name;                 /* owned */
    char **callbacks;           /* owned, each owned; read only under the registry lock
                                   (snapshots carry their own copies) */
    size_t ncallbacks;
    int local;                  /* the router's own plugins (no link) */
    atomic_int alive;           /* 0 once it left or was replaced */
    atomic_int withdrawn;       /* it announces no callbacks (a draining worker): picks
                                   pass it at once, before the new snapshot arrives, and
                                   calls not yet written to it go elsewhere */
    atomic_uint inflight;       /* forwarded calls not yet answered, all links */
    char *session;              /* its hello's "session", owned; NULL: a plain member */
    unsigned links_announced;   /* its hello's "links" (1 for a plain member) */
    /* under the registry lock: its live links (not counted references, see above) */
    dfd_link **links;
    size_t nlinks;
} dfd_member;

/* A member as a snapshot saw it: its callbacks and links are the snapshot's own. */
typedef struct dfd_snap_member {
    dfd_member *m;              /* retained */
    char **callbacks;           /* owned by the snapshot */
    size_t ncallbacks;
    dfd_link **links;           /* each retained; NULL for the router itself */
    size_t nlinks;
    atomic_uint link_rr;        /* round-robin cursor over links */
} dfd_snap_member;

/* One callback of a snapshot and the members exposing it. */
typedef struct dfd_snap_slot {
    const char *name;           /* points into a dfd_snap_member's callbacks */
    dfd_snap_member **members;  /* entries of the snapshot's members array */
    size_t n;
    atomic_uint rr;             /* round-robin cursor */
    _Atomic unsigned stat_slot; /* "_forwarded" callstat slot + 1; 0 = not looked up */
} dfd_snap_slot;

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
    char *state_file;           /* members-file.h: where the member names are kept across
                                   restarts (owned; NULL: nowhere) */
    unsigned state_file_failed; /* writes failed in a row (the first is logged) */
    struct dfd_grace *grace;    /* router-grace.h: the startup grace (owned) */
} dfd_registry;

/* What a hello asks the registry (membership.c parses it; the strings are the hello's). */
typedef struct dfd_hello {
    const char *name;
    size_t name_len;
    const char *session;        /* NULL: a plain member */
    size_t session_len;
    unsigned link;              /* "link", 0 .. links - 1 */
    unsigned links;             /* "links", 1 for a plain member */
    int deadlines;              /* "deadlines": true */
    int may_replace;            /* duplicate = replace, and not "replace": false */
} dfd_hello;

/* Creates a link on loop for connection conn, as hello h describes it (no member
 * yet). refs = 1. */
dfd_link *dfd_link_new(struct dfd_loop *loop, struct dfd_conn *conn, const dfd_hello *h);
void dfd_link_retain(dfd_link *l);
void dfd_link_release(dfd_link *l);

/* What dfd_registry_attach did. References for the caller to release (NULL: none). */
typedef struct dfd_attach {
    dfd_member *member;         /* the member the link now belongs to (a reference) */
    int joined;                 /* 1: the member is new (a "joined" event went out) */
    dfd_member *replaced;       /* duplicate = replace: the member whose name it took;
                                   its links must be closed (and told why) */
    dfd_link *stale;            /* the member's earlier link with the same index (the
                                   peer reconnected it): its connection must close */
} dfd_attach;

/* A fresh msgid for a request on link l (never 0); any thread. */
uint32_t dfd_link_next_msgid(dfd_link *l);

/* Creates a member from a name and callbacks (copied). refs = 1. */
dfd_member *dfd_member_new(const char *name, size_t name_len, const char *const *cbs,
                           const size_t *cb_lens, size_t ncbs);
void dfd_member_retain(dfd_member *m);
void dfd_member_release(dfd_member *m);
/* Frees an array of n owned callback names. */
void dfd_member_free_callbacks(char **cbs, size_t n);


int dfd_registry_init(dfd_registry *r);
void dfd_registry_destroy(dfd_registry *r);

/* Adds a member without links: the router's own (local), or one reached over NATS
 * (nats-members.c); a reference is taken, a joined event goes out. Returns 0, or -1
 * when its name is taken or memory ran out. */
int dfd_registry_join(struct dfd_server *srv, dfd_member *m);

/* Attaches link l (fresh, on its loop) as h says, with callbacks `fresh` (a member
 * made from the hello: its callbacks are taken over when they are used). When h names
 * a member that exists: the same session adds l to it (a link of that index still
 * there is returned as stale); otherwise, with may_replace, the old member is removed
 * (returned as replaced) and fresh takes the name, else nothing changes and -1 is
 * returned. A name not taken: fresh joins with l. Publishes the new snapshot and the
 * events to every loop of srv. Returns 0 with *out filled, or -1 (name taken, or out of
 * memory: *out empty). */
int dfd_registry_attach(struct dfd_server *srv, const dfd_hello *h, dfd_member *fresh,
                        dfd_link *l, dfd_attach *out);
/* Replaces m's callbacks (a re-announce; takes ownership of the array); publishes. */
void dfd_registry_update(struct dfd_server *srv, dfd_member *m, char **callbacks,
                         size_t ncallbacks);
/* Link l's connection closed: l leaves its member, and the member leaves the registry
 * with its last link (a left event), unless it had left already. keep_record: the
 * member file keeps its name (the router drains: members did not choose to go). */
void dfd_registry_detach(struct dfd_server *srv, dfd_link *l, int keep_record);
/* Removes m if it is still registered (the router's own member); publishes. */
void dfd_registry_leave(struct dfd_server *srv, dfd_member *m);
/* A new reference on the registry's current snapshot. */
dfd_snapshot *dfd_registry_snapshot(struct dfd_server *srv);

/* Picks a member exposing the callback of slot (from dfd_snapshot_slot), round-robin,
 * skipping members that are not alive or hold `limit` calls, and preferring members
 * none of whose links is frozen (dfd_link_frozen), then members with a link that is
 * not, then a frozen one. Returns the member's entry (valid
 * while the snapshot is) and, in *link, a retained link of it (dfd_snap_member_link;
 * NULL for the router itself); or NULL with *exists = 1 when some member exposes it
 * but all are busy, 0 when none alive does. now_ns: dfd_now_ns(). */
const dfd_snap_member *dfd_snap_slot_pick(dfd_snap_slot *slot, unsigned limit,
                                          struct dfd_loop *loop, uint64_t now_ns,
                                          uint64_t frozen_ns, dfd_link **link,
                                          int *exists);
/* Picks a link of member entry sm: an alive one that is not frozen, on `loop` when it
 * has one there (no hop to another thread), else round-robin; a frozen one only when
 * all are (a link first found frozen is counted in loop's members_frozen). Returns it
 * retained, or NULL when it has none alive (or is the router). */
dfd_link *dfd_snap_member_link(dfd_snap_member *sm, struct dfd_loop *loop,
                               uint64_t now_ns, uint64_t frozen_ns);
/* 1 when link l owes an answer and has sent nothing for more than frozen_ns (0: the
 * check is off). */
int dfd_link_frozen(const dfd_link *l, uint64_t now_ns, uint64_t frozen_ns);
/* Returns the entry of callback name (the members exposing it), or NULL. */
dfd_snap_slot *dfd_snapshot_slot(const dfd_snapshot *s, const char *name, size_t len);
/* Returns the member entry called name, or NULL. */
dfd_snap_member *dfd_snapshot_find(const dfd_snapshot *s, const char *name, size_t len);
/* Returns 1 when the member entry exposes the callback. */
int dfd_snap_member_has(const dfd_snap_member *sm, const char *name, size_t len);

/* Builds an immutable snapshot of r's members and their links (members-snap.c).
 * Caller holds r->lock. Returns it (refs = 1) or NULL (out of memory). */
dfd_snapshot *dfd_snapshot_build(dfd_registry *r);
void dfd_snapshot_retain(dfd_snapshot *s);
void dfd_snapshot_release(dfd_snapshot *s);

#endif /* DFD_MEMBERS_H */
