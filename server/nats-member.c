/*
 * nats-member.c - the worker role over NATS (see nats-member.h, docs/NATS.md).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <daffi/rpc.h>

#include "callobj.h"
#include "dispatch.h"
#include "idmap.h"
#include "log.h"
#include "nats-bridge.h"
#include "nats-bus.h"
#include "nats-member.h"
#include "plugin.h"
#include "server.h"
#include "table.h"

/* One callback's queue-group subscription. */
typedef struct nats_cb_sub {
    char *name;                  /* owned */
    natsSubscription *sub;
} nats_cb_sub;

/* What one loop keeps: the requests whose calls run there, by the call's tag. */
typedef struct nats_member_loop {
    dfd_idmap replies;           /* tag -> dfd_nats_note (its reply subject; owned) */
    uint32_t next_tag;
    _Atomic(const dfd_table *) seen; /* the table the loop switched to last */
} nats_member_loop;

struct dfd_nats_member {
    dfd_server *srv;
    dfd_nats_ctx ctx;
    natsConnection *nc;
    char session[48];            /* tells a restarted member from the one before */
    pthread_mutex_t lock;        /* subs, own_sub */
    nats_cb_sub *subs;
    size_t nsubs;
    natsSubscription *own_sub;   /* <ns>.member.<name> */
    natsSubscription *sync_sub;  /* <ns>.sync */
    dfd_nats_bridge *bridge;     /* streams (nats-bridge.h) */
    atomic_uint rr;              /* the loop the next call goes to */
    atomic_int withdrawn;        /* draining: no heartbeats, no subscriptions */
    struct event hb_ev;          /* loop 0: the heartbeat */
    int hb_assigned;
    unsigned nloops;
    nats_member_loop loops[];
};

static void member_report(dfd_call *call);
static void member_timed_out(dfd_call *call, const char *msg);

static const dfd_call_hooks member_hooks = {
    .report = member_report,
    .timed_out = member_timed_out,
};

/* ---- answers ------------------------------------------------------------------------ */

/* Publishes the encoded response sb to the reply subject of request msg. */
static void member_publish_reply(dfd_loop *loop, dfd_nats_member *m, dfd_nats_note *req,
                                 const msgpack_sbuffer *sb)
{
    char subject[DFD_NATS_SUBJECT_MAX + 8];
    const char *reply = req->reply;
    if (reply != NULL && *reply != '\0' &&
        dfd_nats_word_subject(subject, sizeof(subject), reply, 'r') == 0)
        dfd_nats_publish(loop, m->nc, subject, NULL, sb->data, sb->size);
}

/* Answers request msg with an error (code, text) at once. */
static void member_reply_error(dfd_loop *loop, dfd_nats_member *m, dfd_nats_note *req, int code,
                               const char *text)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_response_error(&pk, 0, code, text);
    member_publish_reply(loop, m, req, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* Takes call's request (its reply subject) out of its loop's table: the caller answers
 * it and destroys it. NULL: nobody waits (a notification, or the TIMEOUT went). */
static dfd_nats_note *member_take_request(const dfd_call *call)
{
    dfd_nats_member *m = call->loop->srv->nats_member;
    return call->msgid != 0 ? dfd_idmap_take(&m->loops[call->loop->index].replies, call->msgid)
                            : NULL;
}

/* Hook report: the call's outcome is final; its response goes to the reply subject
 * (unless its TIMEOUT went there already, or it was a notification). */
static void member_report(dfd_call *call)
{
    dfd_loop *loop = call->loop;
    dfd_nats_member *m = loop->srv->nats_member;
    /* a call from NATS has one access line too, as every call (peer: nats) */
    if (atomic_load_explicit(&loop->srv->access_log, memory_order_relaxed))
        dfd_log_access(call, "nats", -1);
    dfd_nats_note *req = member_take_request(call);
    if (req == NULL)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int code = daffi_call_write_response(&call->base, 0, &sb, &loop->srv->limits);
    if (code == -1)
        member_reply_error(loop, m, req, DAFFI_E_OVERLOADED, "out of memory");
    else
        member_publish_reply(loop, m, req, &sb);
    dfd_stat_add(&loop->stats, code == 0 ? DFD_STAT_responses_ok : DFD_STAT_responses_error, 1);
    msgpack_sbuffer_destroy(&sb);
    free(req);
}

/* Hook timed_out: the deadline passed while the handler runs; TIMEOUT goes now. */
static void member_timed_out(dfd_call *call, const char *msg)
{
    dfd_loop *loop = call->loop;
    dfd_nats_note *req = member_take_request(call);
    if (req == NULL)
        return;
    member_reply_error(loop, loop->srv->nats_member, req, DAFFI_E_TIMEOUT, msg);
    dfd_stat_add(&loop->stats, DFD_STAT_responses_error, 1);
    free(req);
}

/* ---- calls ---------------------------------------------------------------------------- */

/* What a queue-group subscription's mails carry as their arg (member_on_queued): the
 * gateway does not know which member NATS gave such a call, so a member that holds one
 * says so (member_say_taken). A call on the member's own subject needs no word: its
 * gateway named the member. */
static int member_via_queue;

/* The call of request req did not answer within its dispatch (queued, in the blocking
 * pool, or a handler that answers later): "taken" goes to the reply subject + ".t"
 * with the member's name, so that the gateway fails it UNAVAILABLE at once should this
 * member be lost (docs/NATS.md, "UNAVAILABLE when a member dies"). A call answered at
 * once costs no message. */
static void member_say_taken(dfd_loop *loop, dfd_nats_member *m, const dfd_nats_note *req)
{
    char subject[DFD_NATS_SUBJECT_MAX + 8];
    const char *name = m->srv->cfg->name;
    if (dfd_nats_word_subject(subject, sizeof(subject), req->reply, 't') == -1)
        return; /* not one of a gateway's: it ends at its deadline as before */
    dfd_nats_publish(loop, m->nc, subject, NULL, name, strlen(name));
}

/* A held request at least this big gives back its bytes (its call has a copy). */
#define MEMBER_SHRINK_BYTES 4096

/* Mail: a call from NATS, on the loop that runs it. */
static void member_call_run(dfd_loop *loop, void *arg)
{
    dfd_nats_note *req = arg;
    dfd_nats_member *m = loop->srv->nats_member;
    nats_member_loop *ml = &m->loops[loop->index];
    const char *reply = req->reply;
    uint32_t tag = 0;
    dfd_stat_add(&loop->stats, DFD_STAT_nats_served, 1);
    if (m->bridge != NULL && dfd_nats_bridge_is_open(req)) {
        dfd_nats_bridge_open(m->bridge, loop, req); /* a stream: through the bridge */
        return;
    }
    if (reply != NULL && *reply != '\0') {
        do
            tag = ml->next_tag++;
        while (tag == 0 || dfd_idmap_get(&ml->replies, tag) != NULL);
        if (dfd_idmap_put(&ml->replies, tag, req) == -1) {
            member_reply_error(loop, m, req, DAFFI_E_OVERLOADED, "out of memory");
            free(req);
            return;
        }
    }
    char why[320];
    int code = dfd_dispatch_detached(loop, req->data, req->len, tag, &member_hooks, why,
                                     sizeof(why));
    if (code != 0 || tag == 0) {
        if (tag != 0) {
            dfd_idmap_take(&ml->replies, tag);
            member_reply_error(loop, m, req, code, why);
        }
        free(req); /* a notification's bytes were copied into its call */
        return;
    }
    /* still in the table: its answer comes later (member_report takes and frees it) */
    if (dfd_idmap_get(&ml->replies, tag) == NULL)
        return;
    if (req->arg == &member_via_queue)
        member_say_taken(loop, m, req);
    /* the call holds its copy of the bytes (counted in the budget): keep the reply */
    if (req->len >= MEMBER_SHRINK_BYTES) {
        dfd_idmap_take(&ml->replies, tag);
        dfd_nats_note *kept = dfd_nats_note_shrink(req);
        /* its slot is free again: only a table that must grow can fail here */
        if (dfd_idmap_put(&ml->replies, tag, kept) == -1) {
            dfd_error("nats.oom", "msg=\"out of memory: a call's answer will not reach "
                      "NATS (its gateway's deadline ends it)\"");
            free(kept);
        }
    }
}

/* Loop 0 (nats-io.h: the call subscriptions are watched there): runs call msg on a
 * loop picked round-robin, loop 0 itself at once, another by mail. */
static void member_mail_call(dfd_nats_member *m, natsMsg *msg, void *arg)
{
    unsigned i = atomic_fetch_add_explicit(&m->rr, 1, memory_order_relaxed) % m->nloops;
    dfd_nats_hand_msg(m->srv->loops, i, member_call_run, msg, arg);
}

/* Loop 0: a call on the member's own subject (`to`, a cast's leg). */
static void member_on_call(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                           void *closure)
{
    (void)nc;
    (void)sub;
    member_mail_call(closure, msg, NULL);
}

/* Loop 0: a call from a callback's queue group: the loop says "taken" for a call it
 * holds. */
static void member_on_queued(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                             void *closure)
{
    (void)nc;
    (void)sub;
    member_mail_call(closure, msg, &member_via_queue);
}

/* ---- presence ------------------------------------------------------------------------- */

/* Packs {"name", "callbacks", "interval_ms", "session"} (+ "type" for an event) of
 * table t (NULL: no callbacks) into sb. */
static void member_pack_presence(const dfd_nats_member *m, const dfd_table *t,
                                 const char *type, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, type != NULL ? 5 : 4);
    if (type != NULL) {
        daffi_pack_cstr(&pk, "type");
        daffi_pack_cstr(&pk, type);
    }
    daffi_pack_cstr(&pk, "name");
    daffi_pack_cstr(&pk, m->srv->cfg->name);
    daffi_pack_cstr(&pk, "session");
    daffi_pack_cstr(&pk, m->session);
    daffi_pack_cstr(&pk, "interval_ms");
    msgpack_pack_uint64(&pk, m->srv->cfg->heartbeat_ms);
    daffi_pack_cstr(&pk, "callbacks");
    msgpack_pack_array(&pk, t != NULL ? (uint32_t)t->ncallbacks : 0);
    for (size_t i = 0; t != NULL && i < t->nplugins; i++)
        for (size_t n = 0; n < t->plugins[i]->ncallbacks; n++)
            daffi_pack_cstr(&pk, t->plugins[i]->callbacks[n].name);
}

/* Publishes the member's presence: a heartbeat (type NULL) or an event, for table t. */
static void member_announce(dfd_nats_member *m, const dfd_table *t, const char *type)
{
    char subject[DFD_NATS_SUBJECT_MAX];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    member_pack_presence(m, t, type, &sb);
    if (dfd_nats_subject(subject, sizeof(subject), m->srv, type != NULL ? "events" : "hb",
                         NULL, 0) == 0)
        dfd_nats_publish(NULL, m->nc, subject, NULL, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Loop 0's heartbeat timer. */
static void member_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_nats_member *m = arg;
    if (!atomic_load(&m->withdrawn))
        member_announce(m, m->srv->loops[0].table, NULL);
    uint64_t ms = m->srv->cfg->heartbeat_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(&m->hb_ev, &tv);
}

/* Mail to loop 0: a router asked for heartbeats now (it started), or we reconnected. */
static void member_heartbeat_now(dfd_loop *loop, void *arg)
{
    free(arg);
    dfd_nats_member *m = loop->srv->nats_member;
    if (!atomic_load(&m->withdrawn))
        member_announce(m, loop->table, NULL);
}

static void member_on_sync(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                           void *closure)
{
    (void)nc;
    (void)sub;
    dfd_nats_member *m = closure;
    dfd_nats_mail_msg(&m->srv->loops[0], member_heartbeat_now, msg, NULL);
}

/* libnats thread, after a reconnection: routers may have dropped us meanwhile. */
static void member_on_reconnect(void *arg)
{
    dfd_nats_member *m = arg;
    natsMsg *msg = NULL;
    if (natsMsg_Create(&msg, "-", NULL, NULL, 0) == NATS_OK)
        dfd_nats_mail_msg(&m->srv->loops[0], member_heartbeat_now, msg, NULL);
}

/* ---- subscriptions ----------------------------------------------------------------------- */

/* Subscribes callback name (queue group <ns>). Caller holds the lock. Returns 0 or -1. */
static int member_subscribe_cb(dfd_nats_member *m, const char *name, nats_cb_sub *out)
{
    char subject[DFD_NATS_SUBJECT_MAX];
    out->name = NULL;
    out->sub = NULL;
    if (dfd_nats_subject(subject, sizeof(subject), m->srv, "call", name, strlen(name)) == -1) {
        dfd_warn("nats.subject", "callback=%s msg=\"not a valid NATS subject: reached by "
                 "targeted calls only\"", name);
        return (out->name = strdup(name)) != NULL ? 0 : -1;
    }
    natsStatus s = dfd_nats_io_subscribe(m->ctx.io, &out->sub, m->nc, subject,
                                         dfd_nats_namespace(m->srv), member_on_queued, m);
    if (s != NATS_OK) {
        dfd_error("nats.subscribe", "subject=%s status=\"%s\"", subject, natsStatus_GetText(s));
        return -1;
    }
    out->name = strdup(name);
    return out->name != NULL ? 0 : -1;
}

static void member_unsubscribe_cb(dfd_nats_member *m, nats_cb_sub *cs)
{
    dfd_nats_io_unsubscribe(m->ctx.io, &cs->sub);
    free(cs->name);
    cs->name = NULL;
}

/* Makes the callback subscriptions those of table t (NULL: none): new ones first, so a
 * callback kept is never without its subscription. Caller holds the lock. */
static void member_sync_subs(dfd_nats_member *m, const dfd_table *t)
{
    size_t want = t != NULL ? t->ncallbacks : 0;
    nats_cb_sub *next = calloc(want ? want : 1, sizeof(*next));
    size_t n = 0;
    if (next == NULL) {
        dfd_error("nats.subscribe", "msg=\"out of memory: the subscriptions stay as they "
                  "were\"");
        return;
    }
    for (size_t i = 0; t != NULL && i < t->nplugins; i++) {
        for (size_t k = 0; k < t->plugins[i]->ncallbacks; k++) {
            const char *name = t->plugins[i]->callbacks[k].name;
            size_t j = 0;
            while (j < m->nsubs && (m->subs[j].name == NULL || strcmp(m->subs[j].name, name) != 0))
                j++;
            if (j < m->nsubs) {
                next[n++] = m->subs[j]; /* kept */
                m->subs[j].name = NULL;
                m->subs[j].sub = NULL;
            } else if (n < want && member_subscribe_cb(m, name, &next[n]) == 0) {
                n++;
            }
        }
    }
    for (size_t j = 0; j < m->nsubs; j++)
        member_unsubscribe_cb(m, &m->subs[j]);
    free(m->subs);
    m->subs = next;
    m->nsubs = n;
}

/* Subscribes everything (start, resume). Main thread, or before the loops run. */
static int member_subscribe_all(dfd_nats_member *m)
{
    char subject[DFD_NATS_SUBJECT_MAX];
    const char *name = m->srv->cfg->name;
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    member_sync_subs(m, m->srv->table);
    if (m->own_sub == NULL &&
        (dfd_nats_subject(subject, sizeof(subject), m->srv, "member", name, strlen(name)) == -1 ||
         dfd_nats_io_subscribe(m->ctx.io, &m->own_sub, m->nc, subject, NULL, member_on_call,
                               m) != NATS_OK)) {
        dfd_error("nats.subscribe", "name=%s msg=\"cannot subscribe the member's own subject "
                  "(the name must be a valid NATS subject token)\"", name);
        rc = -1;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* The loop switched tables (a reload): once every loop serves the new one, the
 * subscriptions follow it (a call mailed to any loop finds its callback) and the
 * member re-announces itself. */
static void member_on_table(dfd_loop *loop, const dfd_table *old)
{
    dfd_nats_member *m = loop->on_table_arg;
    atomic_store(&m->loops[loop->index].seen, loop->table);
    if (dfd_table_same_callbacks(old, loop->table))
        return;
    for (unsigned i = 0; i < m->nloops; i++)
        if (atomic_load(&m->loops[i].seen) != loop->table)
            return;
    pthread_mutex_lock(&m->lock);
    if (!atomic_load(&m->withdrawn))
        member_sync_subs(m, loop->table);
    pthread_mutex_unlock(&m->lock);
    if (!atomic_load(&m->withdrawn))
        member_announce(m, loop->table, "joined");
    dfd_info("nats.member", "change=updated name=%s callbacks=%zu", loop->srv->cfg->name,
             loop->table->ncallbacks);
}

dfd_nats_member *dfd_nats_member_start(dfd_server *srv)
{
    unsigned n = srv->nloops;
    dfd_nats_member *m = calloc(1, sizeof(*m) + n * sizeof(nats_member_loop));
    if (m == NULL)
        return NULL;
    m->srv = srv;
    m->nloops = n;
    m->ctx.what = "worker";
    m->ctx.on_reconnect = member_on_reconnect;
    m->ctx.arg = m;
    pthread_mutex_init(&m->lock, NULL);
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = dfd_now_ns();
    snprintf(m->session, sizeof(m->session), "%d-%016llx", (int)getpid(), (unsigned long long)r);
    for (unsigned i = 0; i < n; i++) {
        m->loops[i].next_tag = 1;
        atomic_init(&m->loops[i].seen, srv->loops[i].table);
        srv->loops[i].on_table = member_on_table;
        srv->loops[i].on_table_arg = m;
    }
    srv->nats_member = m;
    char subject[DFD_NATS_SUBJECT_MAX];
    m->nc = dfd_nats_connect(srv, srv->cfg->router, &m->ctx);
    char prefix[DFD_NATS_SUBJECT_MAX];
    if (m->nc == NULL || member_subscribe_all(m) == -1 ||
        dfd_nats_subject(subject, sizeof(subject), srv, "sync", NULL, 0) == -1 ||
        natsConnection_Subscribe(&m->sync_sub, m->nc, subject, member_on_sync, m) != NATS_OK ||
        dfd_nats_subject(prefix, sizeof(prefix), srv, "stream", m->session,
                         strlen(m->session)) == -1 ||
        (m->bridge = dfd_nats_bridge_new(srv, m->nc, prefix)) == NULL) {
        dfd_nats_member_stop(m);
        dfd_nats_shutdown(); /* its callbacks read m until libnats' threads are gone */
        dfd_nats_member_free(m);
        srv->nats_member = NULL;
        return NULL;
    }
    member_announce(m, srv->table, "joined");
    dfd_info("nats.member", "change=joined name=%s callbacks=%zu namespace=%s", srv->cfg->name,
             srv->table->ncallbacks, dfd_nats_namespace(srv));
    if (srv->cfg->heartbeat_ms > 0) {
        struct timeval now = {0, 0};
        evtimer_assign(&m->hb_ev, srv->loops[0].base, member_on_heartbeat, m);
        evtimer_add(&m->hb_ev, &now);
        m->hb_assigned = 1;
    }
    return m;
}

void dfd_nats_member_withdraw(dfd_nats_member *m)
{
    if (m == NULL || atomic_exchange(&m->withdrawn, 1))
        return;
    pthread_mutex_lock(&m->lock);
    member_sync_subs(m, NULL);
    dfd_nats_io_unsubscribe(m->ctx.io, &m->own_sub);
    pthread_mutex_unlock(&m->lock);
    member_announce(m, NULL, "left");
    natsConnection_FlushTimeout(m->nc, 1000);
    dfd_info("nats.member", "change=left name=%s msg=\"draining: no new calls; finishing "
             "the ones in flight\"", m->srv->cfg->name);
}

void dfd_nats_member_abandon(dfd_nats_member *m)
{
    if (m == NULL || m->nc == NULL)
        return;
    member_announce(m, NULL, "gone");
    /* loop 0 writes it (not from here: beside loop 0's reads, a TLS connection would
     * be used by two threads at once); a handler holding loop 0 holds it too */
    natsConnection_FlushTimeout(m->nc, 500);
}

void dfd_nats_member_resume(dfd_nats_member *m)
{
    if (m == NULL || !atomic_exchange(&m->withdrawn, 0))
        return;
    member_subscribe_all(m);
    member_announce(m, m->srv->table, "joined");
    dfd_info("nats.member", "change=joined name=%s msg=\"resumed\"", m->srv->cfg->name);
}

natsConnection *dfd_nats_member_conn(const dfd_nats_member *m)
{
    return m->nc;
}

static void member_drop_reply(void *val, void *arg)
{
    (void)arg;
    free(val);
}

void dfd_nats_member_stop(dfd_nats_member *m)
{
    if (m == NULL)
        return;
    if (m->nc != NULL && !atomic_load(&m->withdrawn))
        member_announce(m, NULL, "left"); /* stopped without a drain (an init failure) */
    pthread_mutex_lock(&m->lock);
    member_sync_subs(m, NULL);
    pthread_mutex_unlock(&m->lock);
    dfd_nats_io_unsubscribe(m->ctx.io, &m->own_sub);
    if (m->sync_sub != NULL)
        natsSubscription_Destroy(m->sync_sub);
    m->own_sub = m->sync_sub = NULL;
    dfd_nats_bridge_stop(m->bridge);
    if (m->nc != NULL) {
        /* the loops are joined: what they published last is written from here */
        dfd_nats_io_pump(m->ctx.io, m->nc, 500);
        atomic_store(&m->ctx.closing, 1);
        natsConnection_Destroy(m->nc);
        m->nc = NULL;
    }
}

void dfd_nats_member_free(dfd_nats_member *m)
{
    if (m == NULL)
        return;
    dfd_nats_bridge_free(m->bridge);
    if (m->hb_assigned)
        event_del(&m->hb_ev);
    for (unsigned i = 0; i < m->nloops; i++) {
        dfd_idmap_drain(&m->loops[i].replies, member_drop_reply, NULL);
        dfd_idmap_free(&m->loops[i].replies);
    }
    free(m->subs);
    dfd_nats_io_free(m->ctx.io);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
