/*
 * child.h - daffid --child: the process that serves one plugin generation for its
 * parent (isolation = process; docs/ISOLATION.md). It inherits fd 3 (its link to the
 * parent, a socketpair), fd 4 (a memfd: the board and its setup, board.h) and fd 5
 * (the plugin's private copy), loads the plugin, says daffi.hello on the link and
 * serves what the parent sends until the link closes or SIGTERM, then drains and
 * exits. The parent side is isolate.h's.
 */
#ifndef DFD_CHILD_H
#define DFD_CHILD_H

#include "call-t.h"
#include "conn.h"

struct dfd_board;
struct dfd_plugin;

/* The descriptors a child inherits. */
#define DFD_CHILD_FD_LINK 3
#define DFD_CHILD_FD_BOARD 4
#define DFD_CHILD_FD_PLUGIN 5

/* The child's main (main.c calls it for --child). Returns the process exit code:
 * 0 after a drain, 1 when it could not start (the reason is on the board). */
int dfd_child_main(void);

/* child-watch.c: the child's srv->route. Notes each call of the plugin on the board
 * (board.h) until its outcome is final, then dispatches it as a service does. */
void dfd_child_route(dfd_conn *c, dfd_call *call);
/* Starts publishing on board (the child's loop thread is the only writer), and wraps
 * plugin p's handlers so that the callback a dying thread ran is noted on the board
 * (fatal signals, exit()). Before the loop and the blocking pool start. */
void dfd_child_watch_init(struct dfd_board *board, struct dfd_plugin *p);
/* Frees what the watch holds (at exit, after the loop stopped). */
void dfd_child_watch_free(void);

#endif /* DFD_CHILD_H */
