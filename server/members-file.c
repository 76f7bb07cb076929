/*
 * members-file.c - the router's member file (see members-file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-int.h"
#include "log.h"
#include "members-file.h"
#include "server.h"

#define MEMBERS_FILE_MAX (1u << 20)   /* bytes read at most */
#define MEMBERS_FILE_NAMES_MAX 65536  /* names kept at most */

int dfd_members_file_init(dfd_server *srv)
{
    const dfd_config *cfg = srv->cfg;
    dfd_registry *r = &srv->registry;
    char path[PATH_MAX];
    if (cfg->state_file != NULL && strcmp(cfg->state_file, "none") == 0)
        return 0;
    if (cfg->state_file != NULL) {
        r->state_file = strdup(cfg->state_file);
        return r->state_file != NULL ? 0 : -1;
    }
    const char *sd = getenv("STATE_DIRECTORY");
    int len;
    if (sd != NULL && sd[0] != '\0') {
        /* systemd may pass several, colon-separated: the first is ours */
        len = snprintf(path, sizeof(path), "%.*s/router-%s.members", (int)strcspn(sd, ":"), sd,
                       cfg->name);
    } else {
        /* beside the private dirs of plugin copies: BASE/daffid-plugins.PID.XXXXXX */
        const char *slash = strrchr(srv->private_dir, '/');
        if (slash == NULL) {
            dfd_warn("router.state_file", "msg=\"no runtime directory: the startup grace "
                     "will not know the members of the last run\"");
            return 0;
        }
        len = snprintf(path, sizeof(path), "%.*s/router-%s.members",
                       (int)(slash - srv->private_dir), srv->private_dir, cfg->name);
    }
    if (len < 0 || (size_t)len >= sizeof(path)) {
        dfd_error("router.state_file", "msg=\"the member file's path is too long\"");
        return -1;
    }
    r->state_file = strdup(path);
    return r->state_file != NULL ? 0 : -1;
}

void dfd_members_file_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Splits the text buf (n bytes) into names. Returns 0 or -1 (out of memory). */
static int members_file_parse(const char *path, const char *buf, size_t n, char ***names,
                              size_t *count)
{
    unsigned lineno = 0;
    for (size_t at = 0; at < n;) {
        const char *line = buf + at;
        const char *nl = memchr(line, '\n', n - at);
        size_t len = nl != NULL ? (size_t)(nl - line) : n - at;
        at += len + 1;
        lineno++;
        if (len == 0 || line[0] == '#')
            continue;
        char *name = strndup(line, len);
        if (name == NULL)
            return -1;
        /* a member name is what [server] name may be: 1-255 of [A-Za-z0-9_.-] */
        if (!dfd_cfg_valid_name(name, DFD_CFG_MEMBER_NAME_MAX) ||
            *count >= MEMBERS_FILE_NAMES_MAX) {
            free(name);
            dfd_warn("router.state_file", "file=%s line=%u msg=\"not a member name: "
                     "skipped\"", path, lineno);
            continue;
        }
        char **grown = realloc(*names, (*count + 1) * sizeof(*grown));
        if (grown == NULL) {
            free(name);
            return -1;
        }
        *names = grown;
        grown[(*count)++] = name;
    }
    return 0;
}

int dfd_members_file_read(const char *path, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1 && errno == ENOENT)
        return 0;
    if (fd == -1) {
        dfd_warn("router.state_file", "file=%s errno=%d msg=\"%s: the startup grace does "
                 "not know the members of the last run\"", path, errno, strerror(errno));
        return -1;
    }
    char *buf = malloc(MEMBERS_FILE_MAX);
    size_t len = 0;
    ssize_t got = 0;
    while (buf != NULL && len < MEMBERS_FILE_MAX &&
           (got = read(fd, buf + len, MEMBERS_FILE_MAX - len)) > 0)
        len += (size_t)got;
    int saved = errno;
    close(fd);
    int rc = -1;
    if (buf == NULL || got == -1)
        dfd_warn("router.state_file", "file=%s errno=%d msg=\"cannot read it: %s\"", path,
                 buf == NULL ? ENOMEM : saved, strerror(buf == NULL ? ENOMEM : saved));
    else
        rc = members_file_parse(path, buf, len, names, n);
    free(buf);
    if (rc == -1) {
        dfd_members_file_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return rc;
}

/* Writes len bytes of buf to fd. Returns 0 or -1 (errno set). */
static int members_file_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void dfd_members_file_save(dfd_server *srv)
{
    dfd_registry *r = &srv->registry;
    if (r->state_file == NULL)
        return;
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", r->state_file) >= sizeof(tmp))
        return;
    size_t cap = 128, len = 0;
    for (size_t i = 0; i < r->n; i++)
        cap += strlen(r->members[i]->name) + 1;
    char *buf = malloc(cap);
    if (buf == NULL)
        return;
    len = (size_t)snprintf(buf, cap, "# daffid router %s: its members (startup_grace waits "
                           "for them after a restart)\n", srv->cfg->name);
    if (len >= cap)
        len = cap - 1;
    for (size_t i = 0; i < r->n; i++) {
        if (r->members[i]->local)
            continue;
        size_t k = strlen(r->members[i]->name);
        memcpy(buf + len, r->members[i]->name, k);
        buf[len + k] = '\n';
        len += k + 1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
    int ok = fd != -1 && members_file_write_all(fd, buf, len) == 0;
    int saved = errno;
    if (fd != -1 && close(fd) == -1 && ok) {
        ok = 0;
        saved = errno;
    }
    if (ok && rename(tmp, r->state_file) == -1) {
        ok = 0;
        saved = errno;
    }
    free(buf);
    if (!ok) {
        if (fd != -1)
            unlink(tmp);
        if (!r->state_file_failed++)
            dfd_warn("router.state_file", "file=%s errno=%d msg=\"cannot write the member "
                     "file: %s (a restart will not wait for these members)\"", r->state_file,
                     saved, strerror(saved));
        return;
    }
    r->state_file_failed = 0;
}
