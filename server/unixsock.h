/*
 * unixsock.h - a listening Unix stream socket file, made safely: for the admin socket
 * and a metrics_listen = unix:///path.
 *
 * Contract
 *   A socket file left by a crashed run (nobody accepts on it) is replaced; a live one
 *   (a connect succeeds) is never stolen; a path that is not a socket is never removed.
 *   The file is born owner-only (umask while binding) and only then given its owner,
 *   group and mode, so it is never open wider than asked. Its identity (device, inode)
 *   is kept so that dfd_unix_unlink() removes it only while it is still ours.
 *
 * Threads: the main thread at start-up (it changes the umask for the bind).
 */
#ifndef DFD_UNIXSOCK_H
#define DFD_UNIXSOCK_H

#include <sys/types.h>

#include "config.h"

/* The socket file we created. */
typedef struct dfd_unixsock {
    dev_t dev;
    ino_t ino;
} dfd_unixsock;

/* Creates, binds and listens (backlog) on path with mode and owner uid, group gid (-1:
 * left as created), non-blocking, close-on-exec. what names it in errors ("[admin]
 * socket", "metrics_listen"). Returns the descriptor and fills *made, or -1 with the
 * reason in errs. */
int dfd_unix_listen(const char *path, unsigned mode, long uid, long gid, int backlog,
                    const char *what, dfd_unixsock *made, dfd_errors *errs);

/* Removes path if it is still the socket file made describes. */
void dfd_unix_unlink(const char *path, const dfd_unixsock *made);

#endif /* DFD_UNIXSOCK_H */
