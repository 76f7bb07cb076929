/*
 * router-grace.h - the startup grace of a router (router role): right after a
 * (re)start, members have not reconnected yet, and a call for a callback nobody
 * exposes is held instead of failing NO_CALLBACK. It is routed the moment a member
 * exposing it joins; it fails TIMEOUT at its own deadline; when the grace ends it gets
 * NO_CALLBACK as any such call does.
 *
 * The grace lasts [server] startup_grace (2 s; 0 = off) and ends early once every
 * member the router had when it last ran is back: their names come from the member
 * file (members-file.h). A member file that holds no name (a first start) means no
 * grace; with `state_file = none` the grace always lasts its whole time.
 *
 * What is held: requests and notifications a caller sends for a callback without a
 * member, including daffi.call without `to`. Not held: calls naming a member (`to`),
 * casts, streams: they are answered at once as before.
 *
 * Threads: the grace is started and timed on the main thread; the registry ends it
 * early (under its lock) when the last expected name joins; either way every loop is
 * told by mail. Held calls stay on their own loop (loop->parked).
 */
#ifndef DFD_ROUTER_GRACE_H
#define DFD_ROUTER_GRACE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "call-t.h"
#include "conn.h"

struct dfd_server;
struct event;

typedef struct dfd_grace {
    atomic_int active;           /* 1 while calls are held */
    uint64_t started_ns;
    uint64_t ms;                 /* startup_grace */
    char **expected;             /* the names of the member file (owned; fixed) */
    size_t nexpected;
    int file_known;              /* the member file was read: its names end the grace */
    struct event *timer;         /* main thread: the end of the grace */
    atomic_ulong held;           /* calls held */
    atomic_ulong routed;         /* held calls routed once a member came */
    atomic_ulong failed;         /* held calls answered NO_CALLBACK at its end */
    atomic_ulong timed_out;      /* held calls that reached their own deadline */
} dfd_grace;

/* Reads the member file and starts the grace when there is one to wait out (router,
 * main thread, before the loops run; the registry's own member already joined).
 * Returns 0, or -1 (out of memory, or a member file path too long: logged). */
int dfd_grace_start(struct dfd_server *srv);
/* Frees the grace (teardown, after the loops stopped). */
void dfd_grace_free(struct dfd_server *srv);

/* Router pick: no member exposes call's method. Holds the call on its loop when the
 * grace runs and the call is one it holds (see above). Returns 1 when held (the call
 * is the grace's), 0 when not (the caller answers it). */
int dfd_grace_hold(dfd_conn *c, dfd_call *call);

/* The loop's snapshot changed: held calls whose callback now has a member are routed. */
void dfd_grace_members_changed(dfd_loop *loop);
/* The registry's member set changed (caller holds the registry lock): the grace ends
 * when every expected name is back. */
void dfd_grace_registry_changed(struct dfd_server *srv);

/* Copies up to max pointers to the expected names not back yet into out (they live as
 * long as the grace). Returns how many are missing. Any thread. */
size_t dfd_grace_missing(struct dfd_server *srv, const char **out, size_t max);

/* Frees the calls still held on loop (teardown, before the loop is destroyed). */
void dfd_grace_loop_destroy(dfd_loop *loop);

#endif /* DFD_ROUTER_GRACE_H */
