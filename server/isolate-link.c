/*
 * isolate-link.c - the link to a child on its loop (see isolate-int.h): the child is a
 * member of its parent, so its answers go to the router's relay
 * (dfd_router_on_response), and the link closing leaves the calls it held to the
 * supervisor, which fails them once it knows how the child ended.
 *
 * Mails from the main thread (adopt, close, fail) run on the link's loop in the order
 * they were posted; each counts in ch->mails until it ran or was dropped, so that the
 * supervisor never frees a child a mail still names.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "call-t.h"
#include "callobj.h"
#include "conn.h"
#include "dispatch.h"
#include "isolate-int.h"
#include "log.h"
#include "router.h"
#include "server.h"

#define ADOPT_WAIT_MS 5000u

/* ---- the link's owner --------------------------------------------------------------- */

static void link_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                         uint32_t msgid)
{
    dfd_child *ch = c->owner;
    if (kind == DAFFI_MSG_RESPONSE) {
        dfd_router_on_response(c, ch->l, bytes, size, msgid);
        return;
    }
    /* a child serves its parent and asks nothing of it: it may not reach the parent's
     * other plugins through its link */
    if (kind == DAFFI_MSG_REQUEST)
        dfd_conn_error(c, msgid, DAFFI_E_DENIED, "a child process may not call its parent");
    else
        dfd_stat_add(&c->loop->stats, DFD_STAT_unknown_notifications, 1);
}

/* The link is dead (the child died, or closed it, or we did): no more calls go to it.
 * The calls it holds stay in its member's map until the supervisor, which reaps the
 * child, fails them naming how it ended (dfd_child_post_fail). */
static void link_closed(dfd_conn *c)
{
    dfd_child *ch = c->owner;
    c->owner = NULL;
    ch->l->conn = NULL;
    atomic_store(&ch->l->alive, 0);
    atomic_store(&ch->m->alive, 0);
    pthread_mutex_lock(&ch->iso->lock);
    ch->ready = 0;
    pthread_mutex_unlock(&ch->iso->lock);
    /* last: the supervisor may free ch once it sees this */
    atomic_store_explicit(&ch->link_closed, 1, memory_order_release);
}

/* Calls sent to the child keep the link open while the loop drains. */
static int link_busy(const dfd_conn *c)
{
    const dfd_child *ch = c->owner;
    return ch != NULL && ch->l->outstanding.count != 0;
}

static const char *link_describe(const dfd_conn *c)
{
    const dfd_child *ch = c->owner;
    return ch != NULL ? ch->m->name : "child";
}

static const dfd_conn_ops link_ops = {
    .message = link_message,
    .closed = link_closed,
    .busy = link_busy,
    .describe = link_describe,
};

/* ---- mails from the supervisor ------------------------------------------------------- */

static void mail_done(dfd_child *ch)
{
    atomic_fetch_sub_explicit(&ch->mails, 1, memory_order_release);
}

/* Adopts ch's link on loop and lets calls go to the child (the loop's thread, or the
 * main thread before the loop runs). */
static void link_adopt(dfd_loop *loop, dfd_child *ch)
{
    dfd_server *srv = loop->srv;
    atomic_fetch_add(&srv->conns, 1);
    dfd_conn *c = dfd_conn_adopt(loop, ch->fd, 1, &link_ops, ch);
    ch->fd = -1; /* the connection's now (closed by the adopt when it failed) */
    if (c == NULL) {
        atomic_fetch_sub(&srv->conns, 1);
        dfd_error("isolate.oom", "plugin=%s slot=%u msg=\"cannot adopt a child's link\"",
                  ch->iso->name, ch->slot);
        atomic_store_explicit(&ch->link_closed, 1, memory_order_release);
    } else {
        snprintf(c->peer, sizeof(c->peer), "child:%s", ch->m->name);
        c->internal = 1; /* no idle timeout, never shed (conn.h) */
        ch->l->conn = c;
        pthread_mutex_lock(&ch->iso->lock);
        ch->ready = !ch->planned;
        pthread_mutex_unlock(&ch->iso->lock);
        atomic_store_explicit(&ch->adopted, 1, memory_order_release);
    }
}

/* Mail: the same on the link's loop, once it runs. */
static void adopt_run(dfd_loop *loop, void *arg)
{
    link_adopt(loop, arg);
    mail_done(arg);
}

/* The loop stopped before the adopt ran (teardown): the link is closed unused. */
static void adopt_drop(void *arg)
{
    dfd_child *ch = arg;
    close(ch->fd);
    ch->fd = -1;
    atomic_store_explicit(&ch->link_closed, 1, memory_order_release);
    mail_done(ch);
}

/* On the link's loop: a stopping child's link closes once what is queued is written;
 * the child finishes what it runs and exits on EOF. */
static void close_run(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_child *ch = arg;
    if (ch->l->conn != NULL && !ch->l->conn->dead)
        dfd_conn_close(ch->l->conn, 1);
    mail_done(ch);
}

static void mail_drop(void *arg)
{
    mail_done(arg);
}

/* Fails one call the dead child held: its caller is told how the child ended. */
static void fail_one(void *val, void *arg)
{
    dfd_call *call = val;
    dfd_child *ch = arg;
    char msg[sizeof(ch->end) + 160];
    atomic_fetch_sub(&ch->l->inflight, 1);
    atomic_fetch_sub(&ch->m->inflight, 1);
    if (ch->running[0] != '\0' && strcmp(ch->running, call->base.method) != 0)
        snprintf(msg, sizeof(msg), "%s; this call ('%.100s') was in flight", ch->end,
                 call->base.method);
    else
        snprintf(msg, sizeof(msg), "%s", ch->end);
    daffi_call_set_error(&call->base, DAFFI_E_UNAVAILABLE, msg);
    dfd_dispatch_after_handler(call, DAFFI_DONE);
}

/* On the link's loop: the child is gone; its link closes now and its calls fail. */
static void fail_run(dfd_loop *loop, void *arg)
{
    (void)loop;
    dfd_child *ch = arg;
    if (ch->l->conn != NULL && !ch->l->conn->dead)
        dfd_conn_close(ch->l->conn, 0);
    dfd_idmap_drain(&ch->l->outstanding, fail_one, ch);
    mail_done(ch);
}

/* Posts run to ch's loop, counted in ch->mails. Returns 0 or -1 (not posted). */
static int post(dfd_child *ch, dfd_mail_fn run, dfd_mail_drop_fn drop)
{
    atomic_fetch_add_explicit(&ch->mails, 1, memory_order_relaxed);
    if (dfd_loop_post(ch->loop, run, drop, ch) == 0)
        return 0;
    atomic_fetch_sub_explicit(&ch->mails, 1, memory_order_relaxed);
    dfd_error("isolate.oom", "plugin=%s slot=%u msg=\"cannot post to the link's loop\"",
              ch->iso->name, ch->slot);
    return -1;
}

/* The loop a child's link goes to: round-robin, as accepted connections. */
static void link_pick_loop(dfd_child *ch)
{
    dfd_server *srv = ch->iso->sup->srv;
    ch->loop = &srv->loops[srv->next_loop++ % srv->nloops];
    ch->l->loop = ch->loop;
}

/* See isolate-int.h. */
void dfd_child_adopt_now(dfd_child *ch)
{
    link_pick_loop(ch);
    link_adopt(ch->loop, ch);
}

/* See isolate-int.h. */
int dfd_child_post_adopt(dfd_child *ch)
{
    link_pick_loop(ch);
    if (post(ch, adopt_run, adopt_drop) == 0)
        return 0;
    close(ch->fd);
    ch->fd = -1;
    atomic_store(&ch->link_closed, 1);
    return -1;
}

/* See isolate-int.h. */
void dfd_child_post_close(dfd_child *ch)
{
    if (ch->loop != NULL && !atomic_load(&ch->link_closed) && ch->iso->sup->srv->loops != NULL)
        post(ch, close_run, mail_drop);
}

/* See isolate-int.h. */
void dfd_child_post_fail(dfd_child *ch)
{
    if (ch->loop != NULL && ch->iso->sup->srv->loops != NULL)
        post(ch, fail_run, mail_drop);
}

/* See isolate-int.h. */
int dfd_child_wait_adopted(dfd_child *ch)
{
    uint64_t deadline = dfd_now_ns() + (uint64_t)ADOPT_WAIT_MS * 1000000u;
    while (!atomic_load_explicit(&ch->adopted, memory_order_acquire)) {
        if (atomic_load(&ch->link_closed) || dfd_now_ns() > deadline)
            return -1;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
