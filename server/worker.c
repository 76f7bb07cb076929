/*
 * worker.c - the worker role: one link to the router per loop, each a connection that
 * says daffi.hello for this daffid's name and callbacks with the worker's session, so
 * that the router keeps them as one member (PROTOCOL.md, "Members"); calls the router
 * sends on a link are served on that link's loop like any connection's; each link
 * reconnects on its own with exponential backoff when it is lost or the router goes
 * silent (see worker.h).
 *
 * Connecting uses the client library's pieces (sdk/src/client_connect.c: resolve,
 * non-blocking connect, its completion; client_common.c: the backoff with jitter), so
 * there is one copy of them. The library's asynchronous client itself cannot serve
 * here: it owns the socket and its buffers, where a link must hand its socket to a
 * dfd_conn of the loop.
 *
 * A link and everything in it belongs to its loop; the worker's shared part (address,
 * session, eviction) is read-only or atomic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <netdb.h>

#include "client_int.h" /* sdk/src: the library's connect and backoff */
#include "conn-tls.h"
#include "conn.h"
#include "dispatch.h"
#include "heartbeat.h"
#include "stream.h"
#include "log.h"
#include "server.h"
#include "table.h"
#include "worker.h"

#define BACKOFF_FIRST_MS 100

typedef struct worker_link {
    dfd_worker *w;
    dfd_loop *loop;
    unsigned index;            /* the hello's "link" */
    int fd;                    /* connecting socket, -1 otherwise */
    struct event connect_ev;
    struct event retry_ev;
    struct addrinfo *ai_list;  /* the attempt's addresses (TCP) */
    struct addrinfo *ai_next;  /* the next one to try */
    daffi__backoff backoff;
    dfd_conn *conn;            /* the established connection, or NULL */
    _Atomic(const dfd_table *) seen; /* the table its loop switched to last (announce) */
    uint32_t next_msgid;
    uint32_t hello_msgid;
    uint32_t auth_msgid;       /* our daffi.auth awaiting its answer, 0 = none */
    int registered;
    int withdrawing;           /* draining: the empty hello is on its way */
    int withdrawn;             /* the router acknowledged it (or there is no router) */
    unsigned attempts;
    unsigned refusals;         /* hellos refused since the last registration */
} worker_link;

struct dfd_worker {
    dfd_server *srv;
    daffi_addr addr;
    char session[48];          /* names this process's links as one member */
    char token[1025];          /* [auth] token_file's token, presented with daffi.auth
                                  before the hello ("": none) */
    atomic_int stopping;
    atomic_int evicted;        /* a newcomer took our name: rejoin without replacing */
    unsigned nlinks;
    worker_link links[];       /* one per loop: links[i] on loop i */
};

static const dfd_conn_ops worker_link_ops;

static uint32_t link_next_msgid(worker_link *k)
{
    uint32_t id = k->next_msgid++;
    if (id == 0)
        id = k->next_msgid++;
    return id;
}

static void link_schedule(worker_link *k)
{
    /* a drained loop stays away from the router until resume (worker_on_resume) */
    if (atomic_load(&k->w->stopping) || atomic_load(&k->w->srv->draining) ||
        k->loop->draining)
        return;
    int ms = daffi__backoff_next(&k->backoff);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(&k->retry_ev, &tv);
}

/* Sends daffi.hello on link k with this daffid's name and the callbacks of the link's
 * loop, or with none when withdrawing. */
static void link_hello(worker_link *k, int withdraw)
{
    dfd_worker *w = k->w;
    const dfd_table *t = k->loop->table;
    int evicted = atomic_load(&w->evicted);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    k->hello_msgid = link_next_msgid(k);
    daffi_pack_request(&pk, k->hello_msgid, "daffi.hello", 11, 1);
    msgpack_pack_map(&pk, evicted ? 7 : 6);
    daffi_pack_cstr(&pk, "name");
    daffi_pack_cstr(&pk, w->srv->cfg->name);
    /* we honour daffi.call's timeout_ms: the router sends each call's deadline */
    daffi_pack_cstr(&pk, "deadlines");
    msgpack_pack_true(&pk);
    /* our links are one member; a link connected again replaces its stale self */
    daffi_pack_cstr(&pk, "session");
    daffi_pack_cstr(&pk, w->session);
    daffi_pack_cstr(&pk, "link");
    msgpack_pack_unsigned_int(&pk, k->index);
    daffi_pack_cstr(&pk, "links");
    msgpack_pack_unsigned_int(&pk, w->nlinks);
    if (evicted) {
        daffi_pack_cstr(&pk, "replace");
        msgpack_pack_false(&pk);
    }
    daffi_pack_cstr(&pk, "callbacks");
    msgpack_pack_array(&pk, withdraw ? 0 : (uint32_t)t->ncallbacks);
    for (size_t i = 0; !withdraw && i < t->nplugins; i++)
        for (size_t n = 0; n < t->plugins[i]->ncallbacks; n++)
            daffi_pack_cstr(&pk, t->plugins[i]->callbacks[n].name);
    dfd_conn_send_raw(k->conn, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void link_announce(worker_link *k)
{
    if (k->conn != NULL && !k->withdrawing)
        link_hello(k, 0);
}

/* Draining: announce no callbacks on k, so the router sends nothing new; the link
 * closes once the router acknowledged it and the calls in flight are answered. */
static void link_withdraw(worker_link *k)
{
    if (k->conn == NULL || !k->registered) {
        k->withdrawn = 1;
        return;
    }
    k->withdrawing = 1;
    link_hello(k, 1);
}

/* Sends daffi.auth [token] on link k (the output waits for the TLS handshake). */
static void link_auth(worker_link *k)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    k->auth_msgid = link_next_msgid(k);
    daffi_pack_request(&pk, k->auth_msgid, "daffi.auth", 10, 1);
    daffi_pack_cstr(&pk, k->w->token);
    dfd_conn_send_raw(k->conn, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* The connection is up: adopt it as an ordinary connection of the loop and say hello. */
static void link_connected(worker_link *k, int fd)
{
    dfd_server *srv = k->w->srv;
    atomic_fetch_add(&srv->conns, 1);
    dfd_conn *c = dfd_conn_adopt(k->loop, fd, k->w->addr.kind == DAFFI_ADDR_UNIX,
                                 &worker_link_ops, k);
    if (c == NULL) {
        atomic_fetch_sub(&srv->conns, 1);
        link_schedule(k);
        return;
    }
    snprintf(c->peer, sizeof(c->peer), "router");
    c->track_rx = 1;
    c->keep_serving = 1;
    if (k->w->addr.tls && dfd_conn_tls_attach(c, 0, k->w->addr.host) == -1) {
        dfd_conn_close(c, 0); /* its closed handler schedules the next attempt */
        return;
    }
    k->conn = c;
    k->withdrawing = k->withdrawn = 0;
    /* the token first: the router answers in order, the hello is authenticated */
    if (k->w->token[0] != '\0')
        link_auth(k);
    link_announce(k);
}

/* The attempt failed (why: the last reason): try again after the backoff. */
static void link_failed(worker_link *k, const char *why)
{
    if (k->ai_list != NULL) {
        freeaddrinfo(k->ai_list);
        k->ai_list = k->ai_next = NULL;
    }
    if (k->attempts++ % 10 == 0)
        dfd_warn("worker.connect", "router=%s link=%u attempts=%u msg=\"%s\"",
                 k->w->srv->cfg->router, k->index, k->attempts, why);
    link_schedule(k);
}

static void link_on_connect(evutil_socket_t fd, short what, void *arg);

/* Starts a connect to the next address of the attempt (TCP: the next resolved one;
 * Unix: the path), or gives up on the attempt. */
static void link_try_next(worker_link *k)
{
    const daffi_addr *a = &k->w->addr;
    char why[256] = "no address";
    int fd = -1, in_progress = 0;
    if (a->kind == DAFFI_ADDR_UNIX) {
        struct sockaddr_un sun = {0};
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
        fd = daffi__connect_begin((struct sockaddr *)&sun, sizeof(sun), &in_progress, why,
                                  sizeof(why));
    }
    while (a->kind == DAFFI_ADDR_TCP && fd == -1 && k->ai_next != NULL) {
        struct addrinfo *ai = k->ai_next;
        k->ai_next = ai->ai_next;
        fd = daffi__connect_begin(ai->ai_addr, ai->ai_addrlen, &in_progress, why, sizeof(why));
    }
    if (fd == -1) {
        link_failed(k, why);
        return;
    }
    if (!in_progress) {
        link_connected(k, fd);
        return;
    }
    k->fd = fd;
    struct timeval tv = {DAFFI_DEFAULT_CONNECT_TIMEOUT_MS / 1000, 0};
    event_assign(&k->connect_ev, k->loop->base, fd, EV_WRITE, link_on_connect, k);
    event_add(&k->connect_ev, &tv);
}

static void link_on_connect(evutil_socket_t fd, short what, void *arg)
{
    worker_link *k = arg;
    char why[256] = "connect timed out";
    k->fd = -1;
    if (!(what & EV_TIMEOUT) && daffi__connect_finish(fd, why, sizeof(why)) == 0) {
        link_connected(k, fd);
        return;
    }
    close(fd);
    if (!(what & EV_TIMEOUT) && k->ai_next != NULL)
        link_try_next(k); /* refused there: the next address (the time is not spent) */
    else
        link_failed(k, why);
}

/* The backoff passed: a new attempt (the name is resolved again: it may point elsewhere
 * by now). */
static void link_connect(evutil_socket_t unused, short what, void *arg)
{
    (void)unused;
    (void)what;
    worker_link *k = arg;
    char why[300];
    if (atomic_load(&k->w->stopping) || k->conn != NULL || k->fd != -1)
        return;
    if (k->w->addr.kind == DAFFI_ADDR_TCP) {
        if (k->ai_list != NULL)
            freeaddrinfo(k->ai_list);
        k->ai_list = k->ai_next = NULL;
        if (daffi__resolve(&k->w->addr, &k->ai_list, why, sizeof(why)) == -1) {
            link_failed(k, why);
            return;
        }
        k->ai_next = k->ai_list;
    }
    link_try_next(k);
}

/* A drain was undone (the loop's link): announce the callbacks again, or reconnect if
 * the withdrawal already closed the link. */
static void worker_on_resume(dfd_loop *loop)
{
    dfd_worker *w = loop->on_table_arg;
    worker_link *k = &w->links[loop->index];
    k->withdrawing = 0;
    k->withdrawn = 0;
    if (k->conn != NULL)
        link_announce(k);
    else
        link_schedule(k);
}

/* Mail: announce on link k (another loop found every loop on the new table). */
static void link_announce_mail(dfd_loop *loop, void *arg)
{
    (void)loop;
    link_announce(arg);
}

/* The loop switched tables (a reload). The member's callbacks are one set for all its
 * links: once every loop serves the new table, each link re-announces it (when the
 * callbacks changed), so the router never sends a new callback to a loop that does not
 * have it yet. */
static void worker_on_table(dfd_loop *loop, const dfd_table *old)
{
    dfd_worker *w = loop->on_table_arg;
    worker_link *k = &w->links[loop->index];
    atomic_store(&k->seen, loop->table);
    if (dfd_table_same_callbacks(old, loop->table))
        return;
    for (unsigned i = 0; i < w->nlinks; i++)
        if (atomic_load(&w->links[i].seen) != loop->table)
            return; /* that loop announces when it switches */
    for (unsigned i = 0; i < w->nlinks; i++) {
        worker_link *o = &w->links[i];
        if (o->loop == loop)
            link_announce(o);
        else if (dfd_loop_post(o->loop, link_announce_mail, NULL, o) == -1)
            dfd_error("worker.announce", "link=%u msg=\"out of memory: the link keeps its "
                      "callbacks until it reconnects\"", i);
    }
}

/* A session id naming this process's links: unique per start. */
static void worker_session(dfd_worker *w)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = dfd_now_ns() ^ ((uint64_t)getpid() << 40);
    snprintf(w->session, sizeof(w->session), "%s-%d-%016llx", w->srv->cfg->name, (int)getpid(),
             (unsigned long long)r);
    /* the name may be long: the router takes at most DFD_MEMBER_SESSION_MAX bytes */
    if (strlen(w->session) > 64)
        snprintf(w->session, sizeof(w->session), "%d-%016llx", (int)getpid(),
                 (unsigned long long)r);
}

/* Reads [auth] token_file's first line into w->token. Returns 0, or -1 (logged). */
static int worker_read_token(dfd_worker *w)
{
    const char *path = w->srv->cfg->auth_token_file;
    FILE *f = fopen(path, "re");

    if (f == NULL || fgets(w->token, sizeof(w->token), f) == NULL) {
        dfd_error("worker.token", "file=%s msg=\"cannot read the token\"", path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    w->token[strcspn(w->token, "\r\n")] = '\0';
    return 0;
}

dfd_worker *dfd_worker_start(dfd_server *srv)
{
    unsigned n = srv->nloops;
    dfd_worker *w = calloc(1, sizeof(*w) + n * sizeof(worker_link));
    if (w == NULL)
        return NULL;
    w->srv = srv;
    w->nlinks = n;
    atomic_init(&w->stopping, 0);
    atomic_init(&w->evicted, 0);
    const char *why = NULL;
    if (daffi_addr_parse(srv->cfg->router, &w->addr, &why) == -1) {
        dfd_error("worker.router", "router=%s msg=\"%s\"", srv->cfg->router, why);
        free(w);
        return NULL;
    }
    worker_session(w);
    if (srv->cfg->auth_token_file != NULL && worker_read_token(w) == -1) {
        free(w);
        return NULL;
    }
    uint64_t max = srv->cfg->reconnect_max_ms;
    for (unsigned i = 0; i < n; i++) {
        worker_link *k = &w->links[i];
        dfd_loop *loop = &srv->loops[i];
        k->w = w;
        k->loop = loop;
        k->index = i;
        k->fd = -1;
        k->next_msgid = 1;
        atomic_init(&k->seen, loop->table);
        daffi__backoff_init(&k->backoff, BACKOFF_FIRST_MS, max > 0x7fffffff ? 0x7fffffff : (int)max);
        loop->on_table = worker_on_table;
        loop->on_resume = worker_on_resume;
        loop->on_table_arg = w;
        evtimer_assign(&k->retry_ev, loop->base, link_connect, k);
        struct timeval now = {0, 0};
        evtimer_add(&k->retry_ev, &now);
    }
    return w;
}

/* The answer to our hello (or its withdrawal). */
static void link_on_response(dfd_conn *c, const char *bytes, size_t size, uint32_t msgid)
{
    worker_link *k = c->owner;
    dfd_worker *w = k->w;
    const dfd_config *cfg = w->srv->cfg;
    if (dfd_heartbeat_answered(c, msgid))
        return;
    if (k->auth_msgid != 0 && msgid == k->auth_msgid) {
        const char *e, *r;
        size_t elen, rlen;
        k->auth_msgid = 0;
        if (daffi_response_split(bytes, size, &e, &elen, &r, &rlen) == 0 &&
            !(elen == 1 && (unsigned char)e[0] == 0xc0) && k->refusals % 10 == 0)
            dfd_error("worker.auth_refused", "router=%s link=%u msg=\"the router refused "
                      "our token ([auth] token_file): the hello will be DENIED\"",
                      cfg->router, k->index);
        return;
    }
    if (msgid != k->hello_msgid) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unexpected_responses, 1);
        return;
    }
    const char *err, *result;
    size_t err_len, result_len;
    if (daffi_response_split(bytes, size, &err, &err_len, &result, &result_len) == -1)
        return;
    if (err_len == 1 && (unsigned char)err[0] == 0xc0 && k->withdrawing) {
        /* the router sends us nothing new: close once what it sent is answered */
        k->withdrawn = 1;
        dfd_info("worker.withdrawn", "router=%s link=%u msg=\"no new calls; finishing the "
                 "ones in flight\"", cfg->router, k->index);
        /* closes now, or as its last call is answered (conn.c) */
        if (dfd_conn_idle(c))
            dfd_conn_close(c, 1);
        return;
    }
    if (err_len == 1 && (unsigned char)err[0] == 0xc0) {
        if (!k->registered)
            dfd_info("worker.registered", "router=%s name=%s link=%u/%u callbacks=%zu",
                     cfg->router, cfg->name, k->index, w->nlinks, k->loop->table->ncallbacks);
        k->registered = 1;
        atomic_store(&w->evicted, 0);
        daffi__backoff_reset(&k->backoff);
        k->attempts = 0;
        k->refusals = 0;
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
    k->withdrawn = 1;
    /* refused (e.g. the name is taken): said once, then every tenth time */
    if (k->refusals++ % 10 == 0)
        dfd_error("worker.hello_refused", "router=%s name=%s link=%u error=%s refusals=%u "
                  "msg=\"%.*s\"", cfg->router, cfg->name, k->index, daffi_error_name(code),
                  k->refusals, (int)text_len, text);
    msgpack_zone_destroy(&zone);
    /* drop the connection and try again later, with backoff */
    dfd_conn_close(c, 1);
}

/* The router's daffi.evicted notification: a newcomer took our name. */
static int link_evicted(worker_link *k, const char *bytes, size_t size)
{
    static const char name[] = "\xad" "daffi.evicted";
    const char *m;
    size_t len;
    if (daffi_array_element(bytes, size, 1, &m, &len) == -1 || len != sizeof(name) - 1 ||
        memcmp(m, name, len) != 0)
        return 0;
    if (!atomic_exchange(&k->w->evicted, 1))
        dfd_warn("worker.evicted", "router=%s name=%s msg=\"another member took this name "
                 "(the router's duplicate = replace); rejoining only once the name is free\"",
                 k->w->srv->cfg->router, k->w->srv->cfg->name);
    k->registered = 0;
    return 1;
}

static void link_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                         uint32_t msgid)
{
    worker_link *k = c->owner;
    if (kind == DAFFI_MSG_RESPONSE) {
        link_on_response(c, bytes, size, msgid);
        return;
    }
    if (kind == DAFFI_MSG_NOTIFY && link_evicted(k, bytes, size))
        return;
    dfd_dispatch_message(c, bytes, size, kind, msgid);
}

static void link_closed(dfd_conn *c)
{
    worker_link *k = c->owner;
    dfd_stream_conn_closed(c);
    if (k == NULL)
        return; /* the worker stopped first */
    c->owner = NULL;
    k->conn = NULL;
    if (k->registered)
        dfd_warn("worker.disconnected", "router=%s link=%u msg=\"connection to the router "
                 "lost\"", k->w->srv->cfg->router, k->index);
    k->registered = 0;
    link_schedule(k);
}

/* While draining, the link stays open until the router acknowledged the withdrawal. */
static int link_busy(const dfd_conn *c)
{
    const worker_link *k = c->owner;
    return k != NULL && c->loop->draining && !k->withdrawn;
}

static void link_drain(dfd_conn *c)
{
    worker_link *k = c->owner;
    if (k != NULL && !k->withdrawing)
        link_withdraw(k);
    if (dfd_conn_idle(c))
        dfd_conn_close(c, 1);
}

static uint32_t link_msgid(dfd_conn *c)
{
    return link_next_msgid(c->owner);
}

static const char *link_describe(const dfd_conn *c)
{
    (void)c;
    return "router";
}

static const dfd_conn_ops worker_link_ops = {
    .message = link_message,
    .closed = link_closed,
    .busy = link_busy,
    .drain = link_drain,
    .next_msgid = link_msgid,
    .describe = link_describe,
};

void dfd_worker_stop(dfd_worker *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stopping, 1);
    for (unsigned i = 0; i < w->nlinks; i++) {
        worker_link *k = &w->links[i];
        event_del(&k->retry_ev);
        if (k->fd != -1) {
            event_del(&k->connect_ev);
            close(k->fd);
        }
        if (k->ai_list != NULL)
            freeaddrinfo(k->ai_list);
        if (k->conn != NULL)
            k->conn->owner = NULL;
    }
    free(w);
}
