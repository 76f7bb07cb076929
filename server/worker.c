/*
 * worker.c - the worker role: one connection to the router, a hello that announces
 * this daffid's callbacks under its name, calls served like any connection's, and a
 * reconnect with exponential backoff whenever the connection is lost or the router
 * goes silent (see worker.h).
 *
 * Everything here runs on the worker's loop (loop 0).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "dispatch.h"
#include "heartbeat.h"
#include "stream.h"
#include "log.h"
#include "server.h"
#include "table.h"
#include "worker.h"

#define BACKOFF_FIRST_MS 100

struct dfd_worker {
    dfd_server *srv;
    dfd_loop *loop;
    daffi_addr addr;
    int fd;                    /* connecting socket, -1 otherwise */
    struct event connect_ev;
    struct event retry_ev;
    dfd_conn *conn;            /* the established connection, or NULL */
    uint64_t backoff_ms;
    uint32_t next_msgid;
    uint32_t hello_msgid;
    int registered;
    int stopping;
    int withdrawing;           /* draining: the empty hello is on its way */
    int withdrawn;             /* the router acknowledged it (or there is no router) */
    int evicted;               /* a newcomer took our name: rejoin without replacing */
    unsigned attempts;
    unsigned refusals;         /* hellos refused since the last registration */
};

static const dfd_conn_ops worker_link_ops;

uint32_t dfd_worker_next_msgid(dfd_worker *w)
{
    uint32_t id = w->next_msgid++;
    if (id == 0)
        id = w->next_msgid++;
    return id;
}

static void worker_connect(evutil_socket_t fd, short what, void *arg);

static void worker_schedule(dfd_worker *w)
{
    if (w->stopping || w->srv->draining)
        return;
    uint64_t ms = w->backoff_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(&w->retry_ev, &tv);
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (w->backoff_ms > w->srv->cfg->reconnect_max_ms)
        w->backoff_ms = w->srv->cfg->reconnect_max_ms;
}

/* Sends daffi.hello with this daffid's name and the callbacks of the loop's table, or
 * with none when withdrawing. */
static void worker_hello(dfd_worker *w, int withdraw)
{
    const dfd_table *t = w->loop->table;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    w->hello_msgid = dfd_worker_next_msgid(w);
    daffi_pack_request(&pk, w->hello_msgid, "daffi.hello", 11, 1);
    msgpack_pack_map(&pk, w->evicted ? 4 : 3);
    daffi_pack_cstr(&pk, "name");
    daffi_pack_cstr(&pk, w->srv->cfg->name);
    /* we honour daffi.call's timeout_ms: the router sends each call's deadline */
    daffi_pack_cstr(&pk, "deadlines");
    msgpack_pack_true(&pk);
    if (w->evicted) {
        daffi_pack_cstr(&pk, "replace");
        msgpack_pack_false(&pk);
    }
    daffi_pack_cstr(&pk, "callbacks");
    msgpack_pack_array(&pk, withdraw ? 0 : (uint32_t)t->ncallbacks);
    for (size_t i = 0; !withdraw && i < t->nplugins; i++)
        for (size_t k = 0; k < t->plugins[i]->ncallbacks; k++)
            daffi_pack_cstr(&pk, t->plugins[i]->callbacks[k].name);
    dfd_conn_send_raw(w->conn, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void dfd_worker_announce(dfd_worker *w)
{
    if (w->conn != NULL && !w->withdrawing)
        worker_hello(w, 0);
}

void dfd_worker_withdraw(dfd_worker *w)
{
    if (w->conn == NULL || !w->registered) {
        w->withdrawn = 1;
        return;
    }
    w->withdrawing = 1;
    worker_hello(w, 1);
}

/* The connection is up: adopt it as an ordinary connection and say hello. */
static void worker_connected(dfd_worker *w, int fd)
{
    if (w->addr.kind == DAFFI_ADDR_TCP) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    atomic_fetch_add(&w->srv->conns, 1);
    dfd_conn *c = dfd_conn_adopt(w->loop, fd, w->addr.kind == DAFFI_ADDR_UNIX,
                                 &worker_link_ops, w);
    if (c == NULL) {
        atomic_fetch_sub(&w->srv->conns, 1);
        worker_schedule(w);
        return;
    }
    snprintf(c->peer, sizeof(c->peer), "router");
    c->track_rx = 1;
    c->keep_serving = 1;
    w->conn = c;
    dfd_worker_announce(w);
}

static void worker_on_connect(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    dfd_worker *w = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    w->fd = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err != 0) {
        if (w->attempts++ % 10 == 0)
            dfd_warn("worker.connect", "router=%s errno=%d msg=\"%s\" retry_ms=%llu",
                     w->srv->cfg->router, err, strerror(err),
                     (unsigned long long)(w->backoff_ms ? w->backoff_ms : BACKOFF_FIRST_MS));
        close(fd);
        worker_schedule(w);
        return;
    }
    worker_connected(w, fd);
}

/* Starts a non-blocking connect to the router. */
static void worker_connect(evutil_socket_t unused, short what, void *arg)
{
    (void)unused;
    (void)what;
    dfd_worker *w = arg;
    if (w->stopping || w->conn != NULL || w->fd != -1)
        return;
    int fd = -1;
    int rc = -1;
    if (w->addr.kind == DAFFI_ADDR_UNIX) {
        struct sockaddr_un sun = {0};
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", w->addr.path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd != -1)
            rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    } else {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        char port[16];
        snprintf(port, sizeof(port), "%d", w->addr.port);
        if (getaddrinfo(w->addr.host, port, &hints, &res) == 0) {
            fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd != -1)
                rc = connect(fd, res->ai_addr, res->ai_addrlen);
            freeaddrinfo(res);
        }
    }
    if (fd == -1) {
        worker_schedule(w);
        return;
    }
    if (rc == 0) {
        worker_connected(w, fd);
        return;
    }
    if (errno != EINPROGRESS && errno != EAGAIN) {
        if (w->attempts++ % 10 == 0)
            dfd_warn("worker.connect", "router=%s errno=%d msg=\"%s\"", w->srv->cfg->router,
                     errno, strerror(errno));
        close(fd);
        worker_schedule(w);
        return;
    }
    w->fd = fd;
    event_assign(&w->connect_ev, w->loop->base, fd, EV_WRITE, worker_on_connect, w);
    event_add(&w->connect_ev, NULL);
}

/* A drain was undone: announce the callbacks again, or reconnect if the withdrawal
 * already closed the link. */
static void worker_on_resume(dfd_loop *loop)
{
    dfd_worker *w = loop->on_table_arg;
    w->withdrawing = 0;
    w->withdrawn = 0;
    if (w->conn != NULL)
        worker_hello(w, 0);
    else
        worker_schedule(w);
}

/* The loop switched tables (a reload): re-announce when the callbacks changed. */
static void worker_on_table(dfd_loop *loop, const dfd_table *old)
{
    dfd_worker *w = loop->on_table_arg;
    if (!dfd_table_same_callbacks(old, loop->table))
        dfd_worker_announce(w);
}

dfd_worker *dfd_worker_start(dfd_server *srv, dfd_loop *loop)
{
    dfd_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->srv = srv;
    w->loop = loop;
    w->fd = -1;
    w->next_msgid = 1;
    const char *why = NULL;
    if (daffi_addr_parse(srv->cfg->router, &w->addr, &why) == -1) {
        dfd_error("worker.router", "router=%s msg=\"%s\"", srv->cfg->router, why);
        free(w);
        return NULL;
    }
    loop->on_table = worker_on_table;
    loop->on_resume = worker_on_resume;
    loop->on_table_arg = w;
    evtimer_assign(&w->retry_ev, loop->base, worker_connect, w);
    struct timeval now = {0, 0};
    evtimer_add(&w->retry_ev, &now);
    return w;
}

/* The answer to our hello (or its withdrawal). */
static void worker_on_response(dfd_conn *c, const char *bytes, size_t size, uint32_t msgid)
{
    dfd_worker *w = c->owner;
    if (dfd_heartbeat_answered(c, msgid))
        return;
    if (msgid != w->hello_msgid) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unexpected_responses, 1);
        return;
    }
    const char *err, *result;
    size_t err_len, result_len;
    if (daffi_response_split(bytes, size, &err, &err_len, &result, &result_len) == -1)
        return;
    if (err_len == 1 && (unsigned char)err[0] == 0xc0 && w->withdrawing) {
        /* the router sends us nothing new: close once what it sent is answered */
        w->withdrawn = 1;
        dfd_info("worker.withdrawn", "router=%s msg=\"no new calls; finishing the ones "
                 "in flight\"", w->srv->cfg->router);
        /* closes now, or as its last call is answered (conn.c) */
        if (dfd_conn_idle(c))
            dfd_conn_close(c, 1);
        return;
    }
    if (err_len == 1 && (unsigned char)err[0] == 0xc0) {
        if (!w->registered)
            dfd_info("worker.registered", "router=%s name=%s callbacks=%zu",
                     w->srv->cfg->router, w->srv->cfg->name, w->loop->table->ncallbacks);
        w->registered = 1;
        w->evicted = 0;
        w->backoff_ms = 0;
        w->attempts = 0;
        w->refusals = 0;
        return;
    }
    msgpack_zone zone;
    msgpack_zone_init(&zone, 512);
    msgpack_object obj;
    size_t off = 0;
    int code = 0;
    const char *text = "?";
    size_t text_len = 1;
    if (msgpack_unpack(err, err_len, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *details;
        daffi_error_parse(&obj, &code, &text, &text_len, &details);
    }
    w->withdrawn = 1;
    /* refused (e.g. the name is taken): said once, then every tenth time */
    if (w->refusals++ % 10 == 0)
        dfd_error("worker.hello_refused", "router=%s name=%s error=%s refusals=%u msg=\"%.*s\"",
                  w->srv->cfg->router, w->srv->cfg->name, daffi_error_name(code), w->refusals,
                  (int)text_len, text);
    msgpack_zone_destroy(&zone);
    /* drop the connection and try again later, with backoff */
    dfd_conn_close(c, 1);
}

/* The router's daffi.evicted notification: a newcomer took our name. */
static int worker_evicted(dfd_worker *w, const char *bytes, size_t size)
{
    static const char name[] = "\xad" "daffi.evicted";
    const char *m;
    size_t len;
    if (daffi_array_element(bytes, size, 1, &m, &len) == -1 || len != sizeof(name) - 1 ||
        memcmp(m, name, len) != 0)
        return 0;
    if (!w->evicted)
        dfd_warn("worker.evicted", "router=%s name=%s msg=\"another member took this name "
                 "(the router's duplicate = replace); rejoining only once the name is free\"",
                 w->srv->cfg->router, w->srv->cfg->name);
    w->evicted = 1;
    w->registered = 0;
    return 1;
}

static void worker_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                           uint32_t msgid)
{
    dfd_worker *w = c->owner;
    if (kind == DAFFI_MSG_RESPONSE) {
        worker_on_response(c, bytes, size, msgid);
        return;
    }
    if (kind == DAFFI_MSG_NOTIFY && worker_evicted(w, bytes, size))
        return;
    dfd_dispatch_message(c, bytes, size, kind, msgid);
}

static void worker_closed(dfd_conn *c)
{
    dfd_worker *w = c->owner;
    dfd_stream_conn_closed(c);
    if (w == NULL)
        return; /* the worker stopped first */
    c->owner = NULL;
    w->conn = NULL;
    if (w->registered)
        dfd_warn("worker.disconnected", "router=%s msg=\"connection to the router lost\"",
                 w->srv->cfg->router);
    w->registered = 0;
    worker_schedule(w);
}

/* While draining, the link stays open until the router acknowledged the withdrawal. */
static int worker_busy(const dfd_conn *c)
{
    const dfd_worker *w = c->owner;
    return w != NULL && c->loop->draining && !w->withdrawn;
}

static void worker_drain(dfd_conn *c)
{
    dfd_worker *w = c->owner;
    if (w != NULL && !w->withdrawing)
        dfd_worker_withdraw(w);
    if (dfd_conn_idle(c))
        dfd_conn_close(c, 1);
}

static uint32_t worker_link_msgid(dfd_conn *c)
{
    return dfd_worker_next_msgid(c->owner);
}

static const char *worker_describe(const dfd_conn *c)
{
    (void)c;
    return "router";
}

static const dfd_conn_ops worker_link_ops = {
    .message = worker_message,
    .closed = worker_closed,
    .busy = worker_busy,
    .drain = worker_drain,
    .next_msgid = worker_link_msgid,
    .describe = worker_describe,
};

void dfd_worker_stop(dfd_worker *w)
{
    if (w == NULL)
        return;
    w->stopping = 1;
    event_del(&w->retry_ev);
    if (w->fd != -1) {
        event_del(&w->connect_ev);
        close(w->fd);
    }
    if (w->conn != NULL)
        w->conn->owner = NULL;
    free(w);
}
