/*
 * sdnotify.c - systemd notifications written directly to $NOTIFY_SOCKET (see
 * sdnotify.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"
#include "server.h"
#include "table.h"

/* Fills *sun from NOTIFY_SOCKET's value: "/path" or "@abstract". Returns the address
 * length, or 0 with *why set when the value cannot be used. */
static socklen_t sdnotify_address(const char *value, struct sockaddr_un *sun,
                                  const char **why)
{
    size_t n = strlen(value);

    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (value[0] != '/' && value[0] != '@') {
        *why = "not an absolute path or an @abstract name (vsock is not supported)";
        return 0;
    }
    if (n >= sizeof(sun->sun_path)) {
        *why = "longer than a Unix socket address";
        return 0;
    }
    memcpy(sun->sun_path, value, n);
    /* abstract: a leading NUL instead of '@', and no terminating NUL counted */
    if (value[0] == '@') {
        sun->sun_path[0] = '\0';
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    }
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

int dfd_sdnotify(const char *state)
{
    const char *value = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    const char *why = NULL;
    socklen_t len;

    if (value == NULL || value[0] == '\0')
        return 0;
    if ((len = sdnotify_address(value, &sun, &why)) == 0) {
        dfd_warn("sdnotify.address", "notify_socket=\"%.100s\" msg=\"%s\"", value, why);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        dfd_warn("sdnotify.socket", "errno=%d msg=\"%s\"", errno, strerror(errno));
        return -1;
    }
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
    int err = errno;
    close(fd);
    if (n == -1) {
        dfd_warn("sdnotify.send", "notify_socket=\"%.100s\" errno=%d msg=\"%s\"", value, err,
                 strerror(err));
        return -1;
    }
    dfd_debug("sdnotify.sent", "bytes=%zd", n);
    return 1;
}

int dfd_sdnotifyf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return dfd_sdnotify(buf);
}

int dfd_sdnotify_ready(const dfd_server *srv, const char *why)
{
    /* a status line is one line: no newline may come from why */
    char clean[400];
    size_t n = 0;
    for (; why[n] != '\0' && n + 1 < sizeof(clean); n++)
        clean[n] = why[n] == '\n' ? ' ' : why[n];
    clean[n] = '\0';
    return dfd_sdnotifyf("READY=1\nSTATUS=%s; serving %zu plugins, %zu callbacks; pid %d",
                         clean, srv->nplugins, srv->table ? srv->table->ncallbacks : 0,
                         (int)getpid());
}

int dfd_sdnotify_reloading(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return dfd_sdnotifyf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                         (unsigned long long)ts.tv_sec * 1000000ull +
                             (unsigned long long)ts.tv_nsec / 1000ull);
}

int dfd_sdnotify_stopping(const char *why)
{
    return dfd_sdnotifyf("STOPPING=1\nSTATUS=%s", why);
}
