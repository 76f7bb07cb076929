/*
 * isolate-int.h - what the rooms of isolation = process share on the parent's side
 * (private to isolate*.c):
 *   isolate.c        a generation served by children: load, the forward hook, release
 *   isolate-spawn.c  one child: the board and its setup, posix_spawn, the hello
 *   isolate-link.c   the link on its loop: adoption, answers, its end, failing calls
 *   isolate-super.c  supervision: SIGCHLD, the tick, deaths, restarts, harakiri
 */
#ifndef DFD_ISOLATE_INT_H
#define DFD_ISOLATE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "isolate.h"

struct dfd_server;

/* ---- isolate-super.c ---- */

/* srv's supervisor, created on first use (the children's user, their environment).
 * NULL when memory runs out. */
dfd_supervisor *dfd_supervisor_get(struct dfd_server *srv);
/* Reaps every child that exited (waitpid WNOHANG on each) and handles its end. */
void dfd_supervisor_reap(dfd_supervisor *sup);
/* Handles the end of a reaped child: the calls it held, the log, the counters, the
 * restart or the crash loop. */
void dfd_child_exited(dfd_child *ch, int status);
/* Stops a child (its end asked for, no restart of its own): no new calls, its link
 * closed (the child exits on EOF), SIGKILL at kill_after_ms from now. */
void dfd_child_stop(dfd_child *ch, uint64_t kill_after_ms);
/* Arms supervision and hands every READY child the main thread still holds to a
 * loop, waiting until each is adopted. Returns 0, or -1 with the reasons in errs. */
int dfd_supervisor_adopt_all(dfd_supervisor *sup, dfd_errors *errs);
/* Frees what the isolates no longer need: children reaped, closed and without mail,
 * and released isolates without children. */
void dfd_supervisor_collect(dfd_supervisor *sup);

/* ---- isolate-spawn.c ---- */

/* Spawns a child for slot of iso (linked into iso->children, STARTING): its board
 * with the setup, the socketpair, posix_spawn of daffid --child. Returns it, or NULL
 * with the reason in why. */
dfd_child *dfd_child_spawn(dfd_isolate *iso, unsigned slot, char *why, size_t n);
/* Reads what the child sent while STARTING (its fd is non-blocking). Returns 1 once
 * its hello is read, checked against what iso knows (or, for the first child of a
 * load, taken as what iso knows) and answered (the child is READY, its member made),
 * 0 while more is needed, -1 with the reason in why (EOF: it died; a bad hello). */
int dfd_child_read_hello(dfd_child *ch, char *why, size_t n);
/* Releases what a child holds (board, fd, event, member, buffer) and frees it; it
 * must be unlinked already. */
void dfd_child_free(dfd_child *ch);
/* Writes how a reaped child ended into ch->end: "plugin 'P' child S (pid N) was
 * killed by signal SIGX (text)" or "exited with status N", and what it ran. */
void dfd_child_describe_end(dfd_child *ch);
/* The children's environment: a copy of daffid's without systemd's NOTIFY_SOCKET,
 * LISTEN_* and WATCHDOG_* (they speak to daffid, not to its children). NULL when
 * memory runs out; dfd_child_env_free releases it. */
char **dfd_child_env(void);
void dfd_child_env_free(char **envp);
/* Encodes iso's setup (everything a child needs but its slot). Returns 0 or -1. */
int dfd_isolate_setup(dfd_isolate *iso, const dfd_plugin_conf *pc);

/* ---- isolate-link.c ---- */

/* Hands a READY child's link to a loop (round-robin), which adopts it and marks the
 * child ready for calls. Returns 0, or -1 when the mail cannot be posted (the link is
 * closed then). */
int dfd_child_post_adopt(dfd_child *ch);
/* The same before the loops' threads run (server start): adopted at once, from the
 * main thread. */
void dfd_child_adopt_now(dfd_child *ch);
/* Mails the link's loop to close the link (a stopping child): it exits on EOF. */
void dfd_child_post_close(dfd_child *ch);
/* Mails the link's loop to close the link and fail every call the child held with
 * UNAVAILABLE and ch->end. */
void dfd_child_post_fail(dfd_child *ch);
/* Waits (at most a few seconds) until the loop adopted the link posted for ch.
 * Returns 0, or -1 when it was closed instead or the loop did not get to it. */
int dfd_child_wait_adopted(dfd_child *ch);

/* ---- isolate.c ---- */

/* Sets iso->status (why no child is ready, for the callers), under iso->lock. */
void dfd_isolate_set_status(dfd_isolate *iso, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees an isolate whose children are all freed (unlinked from the supervisor). */
void dfd_isolate_free(dfd_isolate *iso);

#endif /* DFD_ISOLATE_INT_H */
