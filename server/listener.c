/*
 * listener.c - listening sockets and the accept path (see listener.h).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "conn-tls.h"
#include "conn.h"
#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "server.h"

/* Opens a TCP listener. Returns the fd or -1 with a reason in errs. */
static int listen_tcp(const daffi_addr *a, unsigned backlog, dfd_errors *errs)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof(port), "%d", a->port);
    int rc = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
    if (rc != 0) {
        dfd_errors_add(errs, "listen tcp://%s:%d: %s", a->host, a->port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        dfd_errors_add(errs, "listen tcp://%s:%d: socket: %s", a->host, a->port, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 || listen(fd, (int)backlog) == -1) {
        dfd_errors_add(errs, "listen tcp://%s:%d: %s", a->host, a->port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Opens a Unix listener. A socket file left by a crashed run (nobody accepts on it) is
 * replaced; a live one (a connect succeeds) is never stolen; a file that is not a
 * socket is never removed. */
static int listen_unix(dfd_listener *l, unsigned backlog, unsigned mode, dfd_errors *errs)
{
    const char *path = l->addr.path;
    struct sockaddr_un sun = {0};
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            dfd_errors_add(errs, "listen unix://%s: the path exists and is not a socket", path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe != -1 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            close(probe);
            dfd_errors_add(errs, "listen unix://%s: another process is serving this socket",
                           path);
            return -1;
        }
        if (probe != -1)
            close(probe);
        dfd_info("listen.stale_socket", "path=%s msg=\"replacing a socket file nobody serves\"",
                 path);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        dfd_errors_add(errs, "listen unix://%s: socket: %s", path, strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        dfd_errors_add(errs, "listen unix://%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, mode) == -1 || listen(fd, (int)backlog) == -1 || stat(path, &st) == -1) {
        dfd_errors_add(errs, "listen unix://%s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    return fd;
}

int dfd_listeners_open(dfd_server *srv, dfd_errors *errs)
{
    const dfd_config *cfg = srv->cfg;
    srv->listeners = calloc(cfg->nlisten ? cfg->nlisten : 1, sizeof(dfd_listener));
    if (srv->listeners == NULL)
        return -1;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        dfd_listener *l = &srv->listeners[i];
        l->srv = srv;
        l->addr = cfg->listen[i];
        l->is_unix = l->addr.kind == DAFFI_ADDR_UNIX;
        l->require_auth = cfg->listen_auth != NULL && cfg->listen_auth[i];
        l->fd = l->is_unix ? listen_unix(l, cfg->backlog, cfg->unix_mode, errs)
                           : listen_tcp(&l->addr, cfg->backlog, errs);
        if (l->fd == -1) {
            dfd_listeners_close(srv);
            return -1;
        }
        srv->nlisteners = i + 1;
    }
    return 0;
}

/* An accepted connection on its way to a loop (the mail owns it). */
typedef struct listener_accepted {
    int fd;
    int is_unix;
    int tls;
    int require_auth;
    dfd_server *srv;
} listener_accepted;

static void listener_drop(void *arg)
{
    listener_accepted *a = arg;
    close(a->fd);
    atomic_fetch_sub(&a->srv->conns, 1);
    free(a);
}

/* On the loop: a caller's connection, owned by the service dispatch. */
static void listener_adopt(dfd_loop *loop, void *arg)
{
    listener_accepted *a = arg;
    if (loop->draining) {
        listener_drop(a);
        return;
    }
    dfd_conn *c = dfd_conn_adopt(loop, a->fd, a->is_unix, &dfd_caller_ops, NULL);
    if (c == NULL) {
        atomic_fetch_sub(&a->srv->conns, 1);
    } else {
        dfd_auth_conn_init(c, a->require_auth);
        if (a->tls && dfd_conn_tls_attach(c, 1, NULL) == -1)
            dfd_conn_close(c, 0);
    }
    free(a);
}

/* Logs the connections refused at max_connections since the last line. */
static void listener_log_rejected(dfd_server *srv)
{
    if (srv->rejected_unlogged == 0)
        return;
    dfd_warn("listen.max_connections", "limit=%u refused=%u open=%u msg=\"refused %u "
             "connection%s at max_connections (one line a second at most)\"",
             srv->cfg->max_connections, srv->rejected_unlogged, atomic_load(&srv->conns),
             srv->rejected_unlogged, srv->rejected_unlogged == 1 ? "" : "s");
    srv->rejected_unlogged = 0;
}

/* A second after a line: the refusals since, if any, and another second. */
static void listener_on_rejected_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_server *srv = arg;
    struct timeval second = {1, 0};

    if (srv->rejected_unlogged == 0)
        return;
    listener_log_rejected(srv);
    evtimer_add(srv->rejected_log_ev, &second);
}

/* A connection refused at max_connections: counted, and logged at once when no line
 * was written in the last second, else with the next line. */
static void listener_rejected(dfd_server *srv)
{
    struct timeval second = {1, 0};

    atomic_fetch_add(&srv->rejected, 1);
    srv->rejected_unlogged++;
    if (srv->rejected_log_ev == NULL &&
        (srv->rejected_log_ev = evtimer_new(srv->base, listener_on_rejected_tick, srv)) ==
            NULL) {
        listener_log_rejected(srv); /* out of memory: unthrottled */
        return;
    }
    if (!evtimer_pending(srv->rejected_log_ev, NULL)) {
        listener_log_rejected(srv);
        evtimer_add(srv->rejected_log_ev, &second);
    }
}

static void listener_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    dfd_listener *l = arg;
    dfd_server *srv = l->srv;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                dfd_warn("listen.accept", "errno=%d msg=\"%s\"", errno, strerror(errno));
            return;
        }
        if (atomic_load(&srv->conns) >= srv->cfg->max_connections) {
            close(fd);
            listener_rejected(srv);
            continue;
        }
        if (!l->is_unix) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        atomic_fetch_add(&srv->conns, 1);
        dfd_loop *loop = &srv->loops[srv->next_loop++ % srv->nloops];
        listener_accepted *a = malloc(sizeof(*a));
        if (a == NULL) {
            atomic_fetch_sub(&srv->conns, 1);
            close(fd);
            continue;
        }
        a->fd = fd;
        a->is_unix = l->is_unix;
        a->tls = l->addr.tls;
        a->require_auth = l->require_auth;
        a->srv = srv;
        if (dfd_loop_post(loop, listener_adopt, listener_drop, a) == -1)
            listener_drop(a);
    }
}

int dfd_listeners_start(dfd_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        dfd_listener *l = &srv->listeners[i];
        l->ev = event_new(srv->base, l->fd, EV_READ | EV_PERSIST, listener_on_accept, l);
        if (l->ev == NULL || event_add(l->ev, NULL) == -1)
            return -1;
    }
    return 0;
}

void dfd_listeners_close(dfd_server *srv)
{
    /* no more refusals: the last count now */
    listener_log_rejected(srv);
    if (srv->rejected_log_ev != NULL)
        event_free(srv->rejected_log_ev);
    srv->rejected_log_ev = NULL;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        dfd_listener *l = &srv->listeners[i];
        if (l->ev)
            event_free(l->ev);
        l->ev = NULL;
        if (l->fd != -1)
            close(l->fd);
        l->fd = -1;
        struct stat st;
        if (l->is_unix && stat(l->addr.path, &st) == 0 && st.st_dev == l->dev &&
            st.st_ino == l->ino)
            unlink(l->addr.path);
    }
    free(srv->listeners);
    srv->listeners = NULL;
    srv->nlisteners = 0;
}
