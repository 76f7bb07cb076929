/*
 * nats-members.c - the members a gateway router learns over NATS (see nats-members.h,
 * docs/NATS.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <daffi/rpc.h>

#include "log.h"
#include "members.h"
#include "nats-bus.h"
#include "nats-gateway.h"
#include "nats-members.h"
#include "server.h"

#define PRESENCE_MAX_BYTES (1u << 20)  /* a heartbeat or event bigger than this is refused */
#define PRESENCE_MAX_CALLBACKS 65536

/* A member known over NATS (loop 0 only). */
typedef struct nats_remote {
    dfd_member *m;               /* a reference; NULL: its name is taken by another */
    char *name;                  /* owned */
    char session[72];            /* its heartbeat's "session" (names its stream subjects) */
    uint64_t last_ns;            /* its last heartbeat or event */
    uint64_t interval_ms;        /* the heartbeat interval it announced (0: none) */
} nats_remote;

struct dfd_nats_presence {
    dfd_server *srv;
    natsConnection *nc;
    natsSubscription *sub;       /* <ns>.*: heartbeats and events, in the order each
                                    member sent them (one subscription, one thread) */
    nats_remote *r;              /* loop 0 only */
    size_t n, cap;
    struct event sweep_ev;       /* loop 0 */
    int sweep_assigned;
};

/* What a presence message says (its strings point into the unpacked object). */
typedef struct presence_msg {
    const char *type;            /* "joined", "left", or NULL for a heartbeat */
    size_t type_len;
    const char *session;
    size_t session_len;
    const char *name;
    size_t name_len;
    uint64_t interval_ms;
    const msgpack_object *callbacks; /* an array of str, or NULL */
} presence_msg;

/* Reads {"type"?, "name", "interval_ms", "callbacks": [str...]}. Returns 0 or -1. */
static int presence_parse(const msgpack_object *o, presence_msg *pm)
{
    memset(pm, 0, sizeof(*pm));
    if (o->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        const char *key;
        size_t klen;
        if (daffi_obj_text(k, &key, &klen) == -1)
            continue;
        if (klen == 4 && memcmp(key, "type", 4) == 0)
            daffi_obj_text(v, &pm->type, &pm->type_len);
        else if (klen == 4 && memcmp(key, "name", 4) == 0)
            daffi_obj_text(v, &pm->name, &pm->name_len);
        else if (klen == 7 && memcmp(key, "session", 7) == 0)
            daffi_obj_text(v, &pm->session, &pm->session_len);
        else if (klen == 11 && memcmp(key, "interval_ms", 11) == 0 &&
                 v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            pm->interval_ms = v->via.u64;
        else if (klen == 9 && memcmp(key, "callbacks", 9) == 0 &&
                 v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size <= PRESENCE_MAX_CALLBACKS)
            pm->callbacks = v;
    }
    if (pm->name == NULL || pm->name_len == 0 || pm->name_len > 255)
        return -1;
    for (uint32_t i = 0; pm->callbacks != NULL && i < pm->callbacks->via.array.size; i++)
        if (pm->callbacks->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
            return -1;
    return 0;
}

static nats_remote *presence_find(dfd_nats_presence *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->n; i++)
        if (strlen(p->r[i].name) == len && memcmp(p->r[i].name, name, len) == 0)
            return &p->r[i];
    return NULL;
}

/* 1 when member m's callbacks are exactly the announced ones (loop 0 is the only writer
 * of a NATS member's callbacks, so it reads them without the registry lock). */
static int presence_same(const dfd_member *m, const msgpack_object *cbs)
{
    uint32_t n = cbs != NULL ? cbs->via.array.size : 0;
    if (m->ncallbacks != n)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object_str *s = &cbs->via.array.ptr[i].via.str;
        if (strlen(m->callbacks[i]) != s->size || memcmp(m->callbacks[i], s->ptr, s->size) != 0)
            return 0;
    }
    return 1;
}

/* The member left (an event, or silence): out of the registry and the table. */
static void presence_remove(dfd_nats_presence *p, nats_remote *r)
{
    if (r->m != NULL) {
        dfd_registry_leave(p->srv, r->m);
        dfd_member_release(r->m);
    }
    free(r->name);
    *r = p->r[--p->n];
}

/* A heartbeat or joined event: the member joins, or its callbacks change. */
static void presence_seen(dfd_nats_presence *p, const presence_msg *pm)
{
    nats_remote *r = presence_find(p, pm->name, pm->name_len);
    uint32_t n = pm->callbacks != NULL ? pm->callbacks->via.array.size : 0;
    if (r == NULL) {
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 16;
            nats_remote *grown = realloc(p->r, cap * sizeof(*grown));
            if (grown == NULL)
                return;
            p->r = grown;
            p->cap = cap;
        }
        const char **names = calloc(n ? n : 1, sizeof(*names));
        size_t *lens = calloc(n ? n : 1, sizeof(*lens));
        char *name = strndup(pm->name, pm->name_len);
        dfd_member *m = NULL;
        for (uint32_t i = 0; names != NULL && lens != NULL && i < n; i++) {
            names[i] = pm->callbacks->via.array.ptr[i].via.str.ptr;
            lens[i] = pm->callbacks->via.array.ptr[i].via.str.size;
        }
        if (names != NULL && lens != NULL && name != NULL)
            m = dfd_member_new(pm->name, pm->name_len, names, lens, n);
        free(names);
        free(lens);
        if (m == NULL) {
            free(name);
            return;
        }
        r = &p->r[p->n++];
        r->name = name;
        r->session[0] = '\0';
        r->m = m;
        if (dfd_registry_join(p->srv, m) == -1) {
            dfd_warn("nats.member_refused", "name=%s msg=\"the name is taken by another "
                     "member of this router: its NATS namesake is not listed\"", name);
            dfd_member_release(m);
            r->m = NULL;
        } else {
            dfd_info("nats.member", "change=joined name=%s callbacks=%u", name, n);
        }
    } else if (r->m != NULL && !presence_same(r->m, pm->callbacks)) {
        char **cbs = calloc(n ? n : 1, sizeof(*cbs));
        uint32_t i = 0;
        for (; cbs != NULL && i < n; i++) {
            const msgpack_object_str *s = &pm->callbacks->via.array.ptr[i].via.str;
            if ((cbs[i] = strndup(s->ptr, s->size)) == NULL)
                break;
        }
        if (cbs != NULL && i == n)
            dfd_registry_update(p->srv, r->m, cbs, n);
        else
            dfd_member_free_callbacks(cbs, i);
    }
    r->last_ns = dfd_now_ns();
    r->interval_ms = pm->interval_ms;
    if (pm->session != NULL && pm->session_len < sizeof(r->session)) {
        memcpy(r->session, pm->session, pm->session_len);
        r->session[pm->session_len] = '\0';
    }
}

/* A "gone" event: the member exits now with calls or streams unfinished (its
 * shutdown_timeout passed during a drain, after its `left`): what it holds fails now. */
static void presence_gone(dfd_nats_presence *p, const presence_msg *pm)
{
    char name[256], session[72];
    snprintf(name, sizeof(name), "%.*s", (int)pm->name_len, pm->name);
    snprintf(session, sizeof(session), "%.*s",
             pm->session != NULL && pm->session_len < sizeof(session) ? (int)pm->session_len
                                                                       : 0,
             pm->session != NULL ? pm->session : "");
    dfd_warn("nats.member", "change=gone name=%s msg=\"exiting with calls or streams "
             "unfinished (shutdown_timeout passed): they fail now\"", name);
    dfd_nats_gateway_member_lost(p->srv, name, session, "it exited: shutdown_timeout passed");
    nats_remote *r = presence_find(p, pm->name, pm->name_len);
    if (r != NULL)
        presence_remove(p, r);
}

/* Mail to loop 0: one heartbeat or event. */
static void presence_run(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_nats_note *note = arg;
    dfd_nats_presence *p = note->arg;
    const char *data = note->data;
    size_t len = note->len;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    presence_msg pm;
    const char *last = strrchr(note->subject, '.');
    if (last == NULL || (strcmp(last, ".hb") != 0 && strcmp(last, ".events") != 0)) {
        free(note); /* <ns>.sync, ours or another router's */
        return;
    }
    if (len == 0 || len > PRESENCE_MAX_BYTES ||
        msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        presence_parse(&up.data, &pm) == -1) {
        dfd_debug("nats.presence", "subject=%s msg=\"not a member's heartbeat or event: "
                  "ignored\"", note->subject);
    } else if (pm.type != NULL && pm.type_len == 4 && memcmp(pm.type, "left", 4) == 0) {
        nats_remote *r = presence_find(p, pm.name, pm.name_len);
        if (r != NULL) {
            dfd_info("nats.member", "change=left name=%s", r->name);
            presence_remove(p, r);
        }
    } else if (pm.type != NULL && pm.type_len == 4 && memcmp(pm.type, "gone", 4) == 0) {
        presence_gone(p, &pm);
    } else {
        presence_seen(p, &pm);
    }
    msgpack_unpacked_destroy(&up);
    free(note);
}

/* libnats thread: a heartbeat or event; loop 0 reads it. */
static void presence_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                            void *closure)
{
    (void)nc;
    (void)sub;
    dfd_nats_presence *p = closure;
    dfd_nats_mail_msg(&p->srv->loops[0], presence_run, msg, p);
}

/* Loop 0's timer, every heartbeat: drops members silent for interval x misses. */
static void presence_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_nats_presence *p = arg;
    dfd_server *srv = p->srv;
    uint64_t now = dfd_now_ns();
    for (size_t i = 0; i < p->n;) {
        nats_remote *r = &p->r[i];
        uint64_t limit_ns = r->interval_ms * srv->cfg->heartbeat_misses * 1000000u;
        if (r->interval_ms == 0 || now - r->last_ns <= limit_ns) {
            i++;
            continue;
        }
        dfd_warn("nats.member_lost", "name=%s silent_ms=%llu msg=\"no heartbeat for %u "
                 "intervals of %llu ms: dropped\"", r->name,
                 (unsigned long long)((now - r->last_ns) / 1000000u), srv->cfg->heartbeat_misses,
                 (unsigned long long)r->interval_ms);
        dfd_stat_add(&srv->loops[0].stats, DFD_STAT_nats_members_lost, 1);
        dfd_nats_gateway_member_lost(srv, r->name, r->session, "no heartbeat: dropped");
        presence_remove(p, r); /* the last entry moves to i */
    }
    uint64_t ms = srv->cfg->heartbeat_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(&p->sweep_ev, &tv);
}

void dfd_nats_presence_sync(dfd_nats_presence *p)
{
    char subject[DFD_NATS_SUBJECT_MAX];
    if (dfd_nats_subject(subject, sizeof(subject), p->srv, "sync", NULL, 0) == 0)
        dfd_nats_publish(NULL, p->nc, subject, NULL, "", 0);
}

dfd_nats_presence *dfd_nats_presence_start(dfd_server *srv, natsConnection *nc)
{
    dfd_nats_presence *p = calloc(1, sizeof(*p));
    char subject[DFD_NATS_SUBJECT_MAX];
    if (p == NULL)
        return NULL;
    p->srv = srv;
    p->nc = nc;
    /* one token under the namespace: hb, events (and sync), never a call's subject */
    if (dfd_nats_subject(subject, sizeof(subject), srv, "*", NULL, 0) == -1 ||
        natsConnection_Subscribe(&p->sub, nc, subject, presence_on_msg, p) != NATS_OK) {
        dfd_error("nats.subscribe", "subject=%s msg=\"cannot subscribe the members' "
                  "presence\"", subject);
        free(p); /* nothing subscribed: nothing calls back */
        return NULL;
    }
    if (srv->cfg->heartbeat_ms > 0) {
        uint64_t ms = srv->cfg->heartbeat_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_assign(&p->sweep_ev, srv->loops[0].base, presence_sweep, p);
        evtimer_add(&p->sweep_ev, &tv);
        p->sweep_assigned = 1;
    }
    dfd_nats_presence_sync(p);
    return p;
}

void dfd_nats_presence_stop(dfd_nats_presence *p)
{
    if (p != NULL && p->sub != NULL)
        natsSubscription_Destroy(p->sub);
    if (p != NULL)
        p->sub = NULL;
}

void dfd_nats_presence_free(dfd_nats_presence *p)
{
    if (p == NULL)
        return;
    if (p->sweep_assigned)
        event_del(&p->sweep_ev);
    for (size_t i = 0; i < p->n; i++) {
        dfd_member_release(p->r[i].m); /* the registry keeps its own until it goes */
        free(p->r[i].name);
    }
    free(p->r);
    free(p);
}
