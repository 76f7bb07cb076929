/*
 * unixsock.c - listening Unix socket files (see unixsock.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "unixsock.h"

/* See unixsock.h. */
int dfd_unix_listen(const char *path, unsigned mode, long uid, long gid, int backlog,
                    const char *what, dfd_unixsock *made, dfd_errors *errs)
{
    struct sockaddr_un sun = {0};
    struct stat st;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        dfd_errors_add(errs, "%s %s: path too long for a Unix socket", what, path);
        return -1;
    }
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            dfd_errors_add(errs, "%s %s: the path exists and is not a socket", what, path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe != -1 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            close(probe);
            dfd_errors_add(errs, "%s %s: another process is serving it", what, path);
            return -1;
        }
        if (probe != -1)
            close(probe);
        dfd_info("unix.stale_socket", "path=%s msg=\"replacing a socket file nobody "
                 "serves\"", path);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        dfd_errors_add(errs, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    /* no moment with wider permissions than asked: the file is born owner-only, then
     * opened up to the configured mode (daffid has no other thread yet) */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc == -1) {
        dfd_errors_add(errs, "%s %s: %s", what, path, strerror(errno));
        close(fd);
        return -1;
    }
    const char *step = "chown";
    if ((uid == -1 && gid == -1) || chown(path, (uid_t)uid, (gid_t)gid) == 0) {
        step = "chmod";
        if (chmod(path, mode) == 0) {
            step = "listen";
            if (listen(fd, backlog) == 0 && stat(path, &st) == 0) {
                made->dev = st.st_dev;
                made->ino = st.st_ino;
                return fd;
            }
        }
    }
    dfd_errors_add(errs, "%s %s: %s: %s", what, path, step, strerror(errno));
    unlink(path);
    close(fd);
    return -1;
}

/* See unixsock.h. */
void dfd_unix_unlink(const char *path, const dfd_unixsock *made)
{
    struct stat st;
    if (stat(path, &st) == 0 && st.st_dev == made->dev && st.st_ino == made->ino)
        unlink(path);
}
