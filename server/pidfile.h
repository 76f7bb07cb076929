/*
 * pidfile.h - [server] pidfile: the file that says which process is this daffid, and
 * the lock that keeps two from running on one pidfile.
 *
 * Contract
 *   dfd_pidfile_acquire() creates the file without following a symlink (O_NOFOLLOW,
 *   O_EXCL for a new file), refuses one that is not a regular file or belongs to
 *   another user, and takes an exclusive flock on it that lasts as long as the
 *   process holds the descriptor. A file another live process holds locked means
 *   another daffid runs on it: start is refused, naming its pid, and the file is left
 *   alone. A file nobody holds (a crashed run's) is taken over. The pid is written
 *   once locked. dfd_pidfile_release() removes the file only if the path still names
 *   the file we locked (same device and inode), then drops the lock.
 *
 * Threads: the main thread, at start and exit. Memory: the dfd_pidfile is the
 * caller's; it owns a copy of the path and the descriptor until released.
 */
#ifndef DFD_PIDFILE_H
#define DFD_PIDFILE_H

#include <sys/types.h>

#include "config.h"

typedef struct dfd_pidfile {
    char *path;                 /* owned; NULL when none is held */
    int fd;                     /* locked (flock LOCK_EX) while held */
    dev_t dev;                  /* identity of the file we locked */
    ino_t ino;
} dfd_pidfile;

/* Takes path for this process (see above) into *pf. Returns 0, or -1 with the reason
 * in errs (*pf then holds nothing). */
int dfd_pidfile_acquire(dfd_pidfile *pf, const char *path, dfd_errors *errs);

/* Removes the file if it is still ours and releases *pf. Safe on a zeroed or released
 * dfd_pidfile. */
void dfd_pidfile_release(dfd_pidfile *pf);

#endif /* DFD_PIDFILE_H */
