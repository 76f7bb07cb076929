/*
 * privdir.c - the directory of daffid's private plugin copies (see server.h).
 *
 * daffid dlopens a private copy of every plugin file (plugin.c), never the file
 * itself. Those copies live in one directory per process, BASE/daffid-plugins.PID.XXXXXX,
 * where BASE is, in order:
 *   $RUNTIME_DIRECTORY            systemd's RuntimeDirectory= (/run/daffid in the unit)
 *   /run/daffid                   when it exists and this user may write there
 *   $TMPDIR/daffid-UID            (or /tmp/daffid-UID) a directory of this user's own,
 *                                 made mode 0700; refused when it is not a directory
 *                                 owned by this user and closed to others
 * The owner holds an exclusive flock on its directory for its whole life (the kernel
 * drops it when the process dies, however it dies). A daffid that exits cleanly
 * removes its directory; one that crashed leaves it behind, and the next daffid to
 * start (daffid -t included) in the same BASE removes it: a directory is stale only
 * when its PID no longer exists AND its lock can be taken, so a live daffid's
 * directory is never touched, even one in another PID namespace sharing BASE.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

#define PRIVDIR_PREFIX "daffid-plugins."
#define PRIVDIR_RUNDIR "/run/daffid"

/* Makes (or accepts) $TMPDIR/daffid-UID as this user's own directory. Writes its path
 * into out. Returns 0, or -1 after logging what was wrong with it. */
static int privdir_user_base(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    uid_t uid = geteuid();
    if ((size_t)snprintf(out, size, "%s/daffid-%u", tmp, (unsigned)uid) >= size) {
        dfd_error("server.private_dir", "path=%s msg=\"TMPDIR is too long\"", tmp);
        return -1;
    }
    if (mkdir(out, 0700) == -1 && errno != EEXIST) {
        dfd_error("server.private_dir", "path=%s errno=%d msg=\"%s\"", out, errno,
                  strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(out, &st) == -1) {
        dfd_error("server.private_dir", "path=%s errno=%d msg=\"%s\"", out, errno,
                  strerror(errno));
        return -1;
    }
    /* a directory others can write into (or one they made for us) could hold files
     * they chose: daffid would dlopen what another user put there */
    const char *why = !S_ISDIR(st.st_mode)      ? "not a directory"
                      : st.st_uid != uid        ? "owned by another user"
                      : (st.st_mode & 0022) != 0 ? "writable by group or others"
                                                 : NULL;
    if (why != NULL) {
        dfd_error("server.private_dir", "path=%s uid=%u mode=%04o msg=\"refused: %s\"", out,
                  (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), why);
        return -1;
    }
    return 0;
}

/* Chooses BASE (see the top of the file) into out. Returns 0 or -1 (logged). */
static int privdir_base(char *out, size_t size)
{
    const char *rt = getenv("RUNTIME_DIRECTORY");
    struct stat st;
    if (rt != NULL && rt[0] != '\0') {
        /* systemd may pass several, colon-separated: the first is ours */
        size_t n = strcspn(rt, ":");
        if (n >= size) {
            dfd_error("server.private_dir", "msg=\"RUNTIME_DIRECTORY is too long\"");
            return -1;
        }
        memcpy(out, rt, n);
        out[n] = '\0';
        return 0;
    }
    if (stat(PRIVDIR_RUNDIR, &st) == 0 && S_ISDIR(st.st_mode) &&
        access(PRIVDIR_RUNDIR, W_OK | X_OK) == 0) {
        snprintf(out, size, "%s", PRIVDIR_RUNDIR);
        return 0;
    }
    return privdir_user_base(out, size);
}

/* Returns the PID in a name "daffid-plugins.PID.XXXXXX", or 0 when the name is not
 * one (an older daffid's "daffid-plugins.XXXXXX" has no owner to ask: left alone). */
static pid_t privdir_owner(const char *name)
{
    if (strncmp(name, PRIVDIR_PREFIX, strlen(PRIVDIR_PREFIX)) != 0)
        return 0;
    const char *p = name + strlen(PRIVDIR_PREFIX);
    if (*p < '0' || *p > '9')
        return 0;
    char *end;
    errno = 0;
    long pid = strtol(p, &end, 10);
    if (errno != 0 || *end != '.' || pid <= 0)
        return 0;
    return (pid_t)pid;
}

/* Removes the stale directory name in base (open as bfd) if it is one: owned by this
 * user, its PID gone, its lock free. Returns 1 when removed, 0 when left alone. */
static int privdir_remove_stale(int bfd, const char *base, const char *name)
{
    pid_t pid = privdir_owner(name);
    if (pid == 0 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
        return 0;
    int fd = openat(bfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1)
        return 0;
    struct stat st;
    if (fstat(fd, &st) == -1 || st.st_uid != geteuid() || flock(fd, LOCK_EX | LOCK_NB) == -1) {
        close(fd); /* another user's, or its owner (in another PID namespace) lives */
        return 0;
    }
    /* the directory holds plain copies only; fdopendir takes its own descriptor so that
     * fd, and with it the lock, stays until the directory is gone */
    unsigned files = 0;
    int dfd = dup(fd);
    DIR *d = dfd == -1 ? NULL : fdopendir(dfd);
    if (d == NULL && dfd != -1)
        close(dfd);
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, e->d_name, 0) == 0)
            files++;
    }
    if (d != NULL)
        closedir(d);
    int rc = unlinkat(bfd, name, AT_REMOVEDIR);
    int err = errno;
    close(fd);
    if (rc == -1) {
        dfd_warn("server.stale_copies", "dir=%s/%s pid=%d errno=%d msg=\"cannot remove: %s\"",
                 base, name, (int)pid, err, strerror(err));
        return 0;
    }
    dfd_info("server.stale_copies_removed", "dir=%s/%s pid=%d files=%u "
             "msg=\"left by a daffid that did not exit cleanly\"", base, name, (int)pid, files);
    return 1;
}

/* Removes every stale private directory in base (see the top of the file). */
static void privdir_clean(const char *base)
{
    int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (bfd == -1)
        return;
    int lfd = dup(bfd);
    DIR *d = lfd == -1 ? NULL : fdopendir(lfd);
    if (d == NULL) {
        if (lfd != -1)
            close(lfd);
        close(bfd);
        return;
    }
    /* names first, removals after: readdir is not promised to be stable under them */
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (privdir_owner(e->d_name) == 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (nn == NULL)
                break;
            names = nn;
            cap = ncap;
        }
        if ((names[n] = strdup(e->d_name)) != NULL)
            n++;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        privdir_remove_stale(bfd, base, names[i]);
        free(names[i]);
    }
    free(names);
    close(bfd);
}

int dfd_server_private_dir(dfd_server *srv)
{
    char base[PATH_MAX - 64];
    srv->private_dir[0] = '\0';
    if (privdir_base(base, sizeof(base)) == -1)
        return -1;
    privdir_clean(base);
    snprintf(srv->private_dir, sizeof(srv->private_dir), "%s/" PRIVDIR_PREFIX "%d.XXXXXX",
             base, (int)getpid());
    if (mkdtemp(srv->private_dir) == NULL) {
        dfd_error("server.private_dir", "path=%s errno=%d msg=\"%s\"", srv->private_dir, errno,
                  strerror(errno));
        srv->private_dir[0] = '\0';
        return -1;
    }
    /* held until dfd_server_private_dir_remove() or the process's end */
    srv->private_dir_fd = open(srv->private_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srv->private_dir_fd == -1 || flock(srv->private_dir_fd, LOCK_EX | LOCK_NB) == -1) {
        dfd_error("server.private_dir", "path=%s errno=%d msg=\"cannot lock: %s\"",
                  srv->private_dir, errno, strerror(errno));
        if (srv->private_dir_fd != -1)
            close(srv->private_dir_fd);
        rmdir(srv->private_dir);
        srv->private_dir[0] = '\0';
        return -1;
    }
    return 0;
}

void dfd_server_private_dir_remove(dfd_server *srv)
{
    if (srv->private_dir[0] == '\0')
        return;
    /* removed before the lock goes: nobody may take a live directory for stale */
    rmdir(srv->private_dir);
    close(srv->private_dir_fd);
    srv->private_dir[0] = '\0';
}
