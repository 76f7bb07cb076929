/*
 * rawmember.c - raw router members for tests and benchmarks (see rawmember.h).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <daffi/rpc.h>

#include "rawmember.h"

#define RAWMEMBER_JOIN_MS 5000
#define RMPOOL_POLL_MS 20
#define RMPOOL_NAME_MAX 64

/* 1 when the message in c is a daffi.ping request. */
static int is_ping(const rawconn *c)
{
    return c->msg.kind == DAFFI_MSG_REQUEST && c->msg.method_len == 10 &&
           memcmp(c->msg.method, "daffi.ping", 10) == 0;
}

/* Answers the daffi.ping request in c with "pong". Returns 0 or -1. */
static int answer_ping(rawconn *c)
{
    rawmsg m;
    int rc;

    rawmsg_init(&m);
    daffi_pack_response_ok(&m.pk, c->msg.msgid);
    daffi_pack_cstr(&m.pk, "pong");
    rc = rawconn_send_msg(c, &m);
    rawmsg_destroy(&m);
    return rc;
}

/* Sends the hello of name (with the link options of l, when not NULL). */
static int send_hello(rawconn *c, const char *name, const char *const *callbacks,
                      const rawmember_link *l)
{
    rawmsg m;
    uint32_t n = 0;
    int rc;

    while (callbacks != NULL && callbacks[n] != NULL)
        n++;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, RAWMEMBER_HELLO_ID, "daffi.hello", 1);
    msgpack_pack_map(pk, l != NULL ? 5 : 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, name);
    if (l != NULL) {
        daffi_pack_cstr(pk, "session");
        daffi_pack_cstr(pk, l->session);
        daffi_pack_cstr(pk, "link");
        msgpack_pack_unsigned_int(pk, l->link);
        daffi_pack_cstr(pk, "links");
        msgpack_pack_unsigned_int(pk, l->links);
    }
    daffi_pack_cstr(pk, "callbacks");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        daffi_pack_cstr(pk, callbacks[i]);
    rc = rawconn_send_msg(c, &m);
    rawmsg_destroy(&m);
    return rc;
}

/* See rawmember.h. */
int rawmember_send_hello(rawconn *c, const char *name, const char *const *callbacks)
{
    return send_hello(c, name, callbacks, NULL);
}

/* See rawmember.h. */
rawconn_status rawmember_read(rawconn *c, int timeout_ms)
{
    for (;;) {
        rawconn_status st = rawconn_read(c, timeout_ms);
        if (st != RAWCONN_OK || !is_ping(c))
            return st;
        if (answer_ping(c) == -1)
            return RAWCONN_ERROR;
    }
}

/* See rawmember.h. */
int rawmember_join(rawconn *c, const char *address, const char *name,
                   const char *const *callbacks, char *why, size_t whysz)
{
    return rawmember_join_link(c, address, name, callbacks, NULL, why, whysz);
}

/* See rawmember.h. l may be NULL: a plain member. */
int rawmember_join_link(rawconn *c, const char *address, const char *name,
                        const char *const *callbacks, const rawmember_link *l, char *why,
                        size_t whysz)
{
    if (why != NULL && whysz > 0)
        why[0] = '\0';
    if (rawconn_open(c, address, RAWMEMBER_JOIN_MS) == -1) {
        fprintf(stderr, "rawmember %s: connect %s: %s\n", name, address, strerror(errno));
        return -1;
    }
    if (send_hello(c, name, callbacks, l) == -1) {
        fprintf(stderr, "rawmember %s: send hello: %s\n", name, strerror(errno));
        return -1;
    }
    rawconn_status st = rawmember_read(c, RAWMEMBER_JOIN_MS);
    if (st != RAWCONN_OK) {
        fprintf(stderr, "rawmember %s: no answer to hello: %s\n", name,
                rawconn_status_name(st));
        return -1;
    }
    if (c->msg.kind != DAFFI_MSG_RESPONSE || c->msg.msgid != RAWMEMBER_HELLO_ID) {
        fprintf(stderr, "rawmember %s: expected the hello's response, got a message of "
                "kind %d\n", name, (int)c->msg.kind);
        return -1;
    }
    if (c->msg.error->type == MSGPACK_OBJECT_NIL)
        return 0;
    int code = 0;
    const char *text = NULL;
    size_t len = 0;
    const msgpack_object *details;
    if (daffi_error_parse(c->msg.error, &code, &text, &len, &details) == -1 || code <= 0) {
        fprintf(stderr, "rawmember %s: the hello's error is not [code, message]\n", name);
        return -1;
    }
    if (why != NULL && whysz > 0)
        snprintf(why, whysz, "%.*s", (int)len, text ? text : "");
    return code;
}

/* See rawmember.h. */
int rawmember_reply_raw(rawconn *c, uint32_t msgid, const void *result, size_t n)
{
    rawmsg m;
    int rc;

    rawmsg_init(&m);
    daffi_pack_response_ok(&m.pk, msgid);
    msgpack_sbuffer_write(&m.sb, result, n);
    rc = rawconn_send_msg(c, &m);
    rawmsg_destroy(&m);
    return rc;
}

/* See rawmember.h. */
int rawmember_reply_error(rawconn *c, uint32_t msgid, int code, const char *message)
{
    rawmsg m;
    int rc;

    rawmsg_init(&m);
    daffi_pack_response_error(&m.pk, msgid, code, message);
    rc = rawconn_send_msg(c, &m);
    rawmsg_destroy(&m);
    return rc;
}

/* ---- a pool of members served by a thread ------------------------------------ */

typedef struct rmember {
    rawconn c;
    char name[RMPOOL_NAME_MAX];
    atomic_int mute;
    atomic_int closed;
    atomic_ulong answered;
    atomic_ulong ignored;
    atomic_ulong notified;
} rmember;

struct rmpool {
    pthread_t thread;
    int running;
    atomic_int stop;
    unsigned n;
    rmember *m;
    rawmsg out;              /* the reply being built (pool thread only) */
};

/* Pool thread: answers the message just read by member m. Returns 0 or -1. */
static int pool_handle(rmpool *p, rmember *m)
{
    rawconn *c = &m->c;

    if (c->msg.kind == DAFFI_MSG_NOTIFY) {
        atomic_fetch_add(&m->notified, 1);
        return 0;
    }
    if (c->msg.kind != DAFFI_MSG_REQUEST)
        return 0;
    if (is_ping(c))
        return answer_ping(c);
    if (atomic_load(&m->mute)) {
        atomic_fetch_add(&m->ignored, 1);
        return 0;
    }
    /* [name, params]: who answered, and exactly what the router delivered */
    daffi_pack_response_ok(&p->out.pk, c->msg.msgid);
    msgpack_pack_array(&p->out.pk, 2);
    daffi_pack_cstr(&p->out.pk, m->name);
    msgpack_sbuffer_write(&p->out.sb, c->msg.params_raw, c->msg.params_raw_len);
    atomic_fetch_add(&m->answered, 1);
    return rawconn_send_msg(c, &p->out);
}

/* Pool thread: polls every open member; reads and answers all it has. */
static void *pool_main(void *arg)
{
    rmpool *p = arg;
    struct pollfd *fds = calloc(p->n, sizeof(*fds));

    if (fds == NULL)
        return NULL;
    for (unsigned i = 0; i < p->n; i++) {
        fds[i].fd = p->m[i].c.fd;
        fds[i].events = POLLIN;
    }
    while (!atomic_load(&p->stop)) {
        int n = poll(fds, p->n, RMPOOL_POLL_MS);
        if (n == -1 && errno != EINTR)
            break;
        for (unsigned i = 0; n > 0 && i < p->n; i++) {
            if (fds[i].fd == -1 || fds[i].revents == 0)
                continue;
            rmember *m = &p->m[i];
            for (;;) {
                /* drain every whole message already buffered, then wait again */
                rawconn_status st = rawconn_read(&m->c, 0);
                if (st == RAWCONN_TIMEOUT)
                    break;
                if (st != RAWCONN_OK || pool_handle(p, m) == -1) {
                    atomic_store(&m->closed, 1);
                    fds[i].fd = -1;
                    break;
                }
            }
        }
    }
    free(fds);
    return NULL;
}

/* See rawmember.h. */
rmpool *rmpool_start(const char *address, const char *prefix, unsigned n,
                     const char *const *callbacks)
{
    rmpool *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->m = calloc(n ? n : 1, sizeof(*p->m));
    if (p->m == NULL) {
        free(p);
        return NULL;
    }
    p->n = n;
    rawmsg_init(&p->out);
    for (unsigned i = 0; i < n; i++)
        p->m[i].c.fd = -1;
    for (unsigned i = 0; i < n; i++) {
        rmember *m = &p->m[i];
        char why[256];
        snprintf(m->name, sizeof(m->name), "%s%u", prefix, i);
        int rc = rawmember_join(&m->c, address, m->name, callbacks, why, sizeof(why));
        if (rc != 0) {
            if (rc > 0)
                fprintf(stderr, "rmpool: %s refused (%s): %s\n", m->name,
                        daffi_error_name(rc), why);
            rmpool_stop(p);
            return NULL;
        }
    }
    if (pthread_create(&p->thread, NULL, pool_main, p) != 0) {
        fprintf(stderr, "rmpool: cannot start the thread\n");
        rmpool_stop(p);
        return NULL;
    }
    p->running = 1;
    return p;
}

/* See rawmember.h. */
void rmpool_stop(rmpool *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop, 1);
    if (p->running)
        pthread_join(p->thread, NULL);
    for (unsigned i = 0; i < p->n; i++)
        rawconn_close(&p->m[i].c);
    rawmsg_destroy(&p->out);
    free(p->m);
    free(p);
}

/* See rawmember.h. */
unsigned rmpool_size(const rmpool *p)
{
    return p->n;
}

/* See rawmember.h. The name belongs to the pool. */
const char *rmpool_name(const rmpool *p, unsigned i)
{
    return p->m[i].name;
}

/* See rawmember.h. Read by the pool thread at each request. */
void rmpool_set_mute(rmpool *p, unsigned i, int mute)
{
    atomic_store(&p->m[i].mute, mute);
}

/* See rawmember.h. */
unsigned long rmpool_answered(const rmpool *p, unsigned i)
{
    return atomic_load(&p->m[i].answered);
}

/* See rawmember.h. */
unsigned long rmpool_ignored(const rmpool *p, unsigned i)
{
    return atomic_load(&p->m[i].ignored);
}

/* See rawmember.h. */
unsigned long rmpool_notified(const rmpool *p, unsigned i)
{
    return atomic_load(&p->m[i].notified);
}

/* See rawmember.h. */
int rmpool_closed(const rmpool *p, unsigned i)
{
    return atomic_load(&p->m[i].closed);
}
