/*
 * pidfile.c - the pidfile and its lock (see pidfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "pidfile.h"

/* Attempts before giving up when the file keeps changing under us (another daffid
 * removing it at exit, between our open and our lock). */
#define PIDFILE_TRIES 5

/* Reads the pid written in fd ("1234\n"), or 0 when there is none. */
static long pidfile_read(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* Opens path as a pidfile may be opened: created new (O_EXCL), else an existing regular
 * file of ours; never through a symlink. Returns the descriptor (*created says which),
 * or -1 with the reason in errs. */
static int pidfile_open(const char *path, int *created, dfd_errors *errs)
{
    struct stat st;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

    *created = fd != -1;
    if (fd == -1 && errno == EEXIST)
        fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd == -1) {
        if (errno == ELOOP)
            dfd_errors_add(errs, "[server] pidfile %s: is a symbolic link; refusing to "
                           "write through it", path);
        else
            dfd_errors_add(errs, "[server] pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == -1) {
        dfd_errors_add(errs, "[server] pidfile %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        if (!S_ISREG(st.st_mode))
            dfd_errors_add(errs, "[server] pidfile %s: not a regular file", path);
        else
            dfd_errors_add(errs, "[server] pidfile %s: belongs to uid %ld, not to this "
                           "process's uid %ld", path, (long)st.st_uid, (long)geteuid());
        close(fd);
        return -1;
    }
    return fd;
}

/* See pidfile.h. */
int dfd_pidfile_acquire(dfd_pidfile *pf, const char *path, dfd_errors *errs)
{
    memset(pf, 0, sizeof(*pf));
    pf->fd = -1;
    for (int attempt = 0; attempt < PIDFILE_TRIES; attempt++) {
        struct stat st, now;
        int created;
        int fd = pidfile_open(path, &created, errs);
        if (fd == -1)
            return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
            long holder = pidfile_read(fd);
            if (errno == EWOULDBLOCK)
                dfd_errors_add(errs, "[server] pidfile %s: held by a running daffid (pid "
                               "%ld); refusing to start a second one on it", path, holder);
            else
                dfd_errors_add(errs, "[server] pidfile %s: cannot lock: %s", path,
                               strerror(errno));
            close(fd);
            return -1;
        }
        /* the file we locked must still be the one the path names: a daffid exiting
         * may have removed it between our open and our lock */
        if (fstat(fd, &st) == -1 || lstat(path, &now) == -1 || st.st_dev != now.st_dev ||
            st.st_ino != now.st_ino) {
            close(fd);
            continue;
        }
        if (!created)
            dfd_info("pidfile.stale", "path=%s pid=%ld msg=\"nobody holds it; taking it "
                     "over\"", path, pidfile_read(fd));
        char text[32];
        int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == -1 || pwrite(fd, text, (size_t)len, 0) != len) {
            dfd_errors_add(errs, "[server] pidfile %s: cannot write: %s", path,
                           strerror(errno));
            if (created)
                unlink(path);
            close(fd);
            return -1;
        }
        if ((pf->path = strdup(path)) == NULL) {
            dfd_errors_add(errs, "[server] pidfile %s: out of memory", path);
            unlink(path);
            close(fd);
            return -1;
        }
        pf->fd = fd;
        pf->dev = st.st_dev;
        pf->ino = st.st_ino;
        return 0;
    }
    dfd_errors_add(errs, "[server] pidfile %s: keeps being replaced; not started", path);
    return -1;
}

/* See pidfile.h. */
void dfd_pidfile_release(dfd_pidfile *pf)
{
    struct stat st;

    if (pf->path == NULL)
        return;
    if (lstat(pf->path, &st) == 0 && st.st_dev == pf->dev && st.st_ino == pf->ino)
        unlink(pf->path);
    else
        dfd_warn("pidfile.replaced", "path=%s msg=\"it is no longer the file this daffid "
                 "wrote; left in place\"", pf->path);
    close(pf->fd); /* drops the lock, after the unlink: nobody takes a file going away */
    free(pf->path);
    pf->path = NULL;
    pf->fd = -1;
}
