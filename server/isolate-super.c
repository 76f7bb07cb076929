/*
 * isolate-super.c - the supervisor of isolated plugins' children, on the main thread
 * (see isolate-int.h and docs/ISOLATION.md, "Supervision"): SIGCHLD and a tick reap
 * children that ended; a death fails the calls the child held, is logged and counted,
 * and the child starts again after a backoff, until a crash loop stops it; the tick
 * also kills a child whose call runs past harakiri, one that does not start, and one
 * whose grace ran out.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "board.h"
#include "isolate-int.h"
#include "log.h"
#include "logfmt.h"
#include "plugin-t.h"
#include "server.h"

/* See isolate-int.h. Started as root, the children run as the user `daffid` (the
 * packages' system user), else `nobody`. */
dfd_supervisor *dfd_supervisor_get(dfd_server *srv)
{
    if (srv->supervisor != NULL)
        return srv->supervisor;
    dfd_supervisor *sup = calloc(1, sizeof(*sup));
    if (sup == NULL || (sup->envp = dfd_child_env()) == NULL) {
        free(sup);
        return NULL;
    }
    sup->srv = srv;
    sup->uid = sup->gid = -1;
    if (geteuid() == 0) {
        const struct passwd *pw = getpwnam("daffid");
        if (pw == NULL)
            pw = getpwnam("nobody");
        sup->uid = pw != NULL ? (long)pw->pw_uid : 65534;
        sup->gid = pw != NULL ? (long)pw->pw_gid : 65534;
        snprintf(sup->user, sizeof(sup->user), "%s", pw != NULL ? pw->pw_name : "65534");
    }
    srv->supervisor = sup;
    return sup;
}

/* ---- deaths and restarts ------------------------------------------------------------- */

static int super_draining(const dfd_supervisor *sup)
{
    return atomic_load(&sup->srv->draining) || sup->srv->drain_started;
}

/* The delay before the next start of slot s, which just lost a child that served
 * since ready_ns (0: never): 100 ms, doubling per death in a row, at most 5 s. */
static uint64_t super_backoff_ms(dfd_isolate_slot *s, uint64_t ready_ns, uint64_t now)
{
    if (ready_ns != 0 && now - ready_ns >= (uint64_t)DFD_ISOLATE_LIVED_MS * 1000000u)
        s->streak = 0;
    s->streak++;
    uint64_t ms = DFD_ISOLATE_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < s->streak && ms < DFD_ISOLATE_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < DFD_ISOLATE_BACKOFF_MAX_MS ? ms : DFD_ISOLATE_BACKOFF_MAX_MS;
}

/* Records a death; returns 1 when it makes a crash loop. */
static int super_crash_loop(dfd_isolate *iso, uint64_t now)
{
    iso->deaths[iso->ndeaths % DFD_ISOLATE_LOOP_DEATHS] = now;
    iso->ndeaths++;
    uint64_t oldest = iso->deaths[iso->ndeaths % DFD_ISOLATE_LOOP_DEATHS];
    return iso->ndeaths >= DFD_ISOLATE_LOOP_DEATHS &&
           now - oldest <= (uint64_t)DFD_ISOLATE_LOOP_WINDOW_MS * 1000000u;
}

/* The signal or status of a wait status, for the log ("signal=SIGSEGV", "status=3"). */
static void super_status_field(int st, char *buf, size_t n)
{
    if (WIFSIGNALED(st)) {
        const char *a = sigabbrev_np(WTERMSIG(st));
        snprintf(buf, n, "signal=SIG%s", a ? a : "?");
    } else {
        snprintf(buf, n, "status=%d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* Copies the reason a child wrote on its board before it exited into ch->failure
 * (when it wrote one and the parent saw nothing better). */
static void super_board_error(dfd_child *ch)
{
    uint32_t len = atomic_load_explicit(&ch->board->error_len, memory_order_acquire);
    if (len == 0 || ch->failure[0] != '\0')
        return;
    if (len >= sizeof(ch->board->error))
        len = sizeof(ch->board->error) - 1;
    snprintf(ch->failure, sizeof(ch->failure), "%.*s", (int)len, ch->board->error);
    /* it goes into a quoted log field: the plugin's words may hold anything */
    for (char *c = ch->failure; *c != '\0'; c++)
        if (*c == '"' || (unsigned char)*c < 0x20)
            *c = *c == '"' ? '\'' : ' ';
}

/* See isolate-int.h. */
void dfd_child_exited(dfd_child *ch, int status)
{
    dfd_isolate *iso = ch->iso;
    dfd_supervisor *sup = iso->sup;
    uint64_t now = dfd_now_ns();
    char field[48];

    ch->reaped = 1;
    ch->status = status;
    if (!ch->harakiri) {
        /* the callback whose thread died, else the oldest the child held */
        uint64_t since;
        unsigned fatal = atomic_load_explicit(&ch->board->fatal, memory_order_acquire);
        unsigned k = UINT32_MAX;
        if (fatal != 0)
            k = fatal - 1;
        else if (!dfd_board_unword(atomic_load_explicit(&ch->board->oldest,
                                                        memory_order_acquire), &since, &k))
            k = UINT32_MAX;
        snprintf(ch->running, sizeof(ch->running), "%s", k < iso->ncb ? iso->cb_names[k] : "");
    }
    if (ch->m != NULL)
        atomic_store(&ch->m->alive, 0);
    if (ch->l != NULL)
        atomic_store(&ch->l->alive, 0);
    pthread_mutex_lock(&iso->lock);
    ch->ready = 0;
    if (iso->slots[ch->slot].current == ch)
        iso->slots[ch->slot].current = NULL;
    pthread_mutex_unlock(&iso->lock);
    if (ch->state == DFD_CHILD_STARTING)
        super_board_error(ch);
    dfd_child_describe_end(ch);
    int was_starting = ch->state == DFD_CHILD_STARTING;
    ch->state = DFD_CHILD_EXITED;
    if (ch->read_ev != NULL) {
        event_free(ch->read_ev);
        ch->read_ev = NULL;
    }
    /* ch->loop first: once the link is posted, fd is the loop's to touch */
    if (ch->loop == NULL && ch->fd != -1) {
        close(ch->fd);
        ch->fd = -1;
        atomic_store(&ch->link_closed, 1);
    }
    /* the calls it held learn how it ended; its link closes if it has not yet */
    dfd_child_post_fail(ch);
    super_status_field(status, field, sizeof(field));
    int clean_drain = super_draining(sup) && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if ((ch->planned && !ch->harakiri) || clean_drain) {
        dfd_info("plugin.child_exited", "plugin=%s generation=%u slot=%u pid=%ld %s",
                 iso->name, iso->generation, ch->slot, (long)ch->pid, field);
        return;
    }
    if (!ch->harakiri) {
        iso->crashes++;
        sup->crashes++;
    }
    snprintf(iso->last_death, sizeof(iso->last_death), "%s", ch->end);
    char text[sizeof(ch->end) + sizeof(ch->failure) + 4], qtext[2 * sizeof(text)];
    char qrun[2 * sizeof(ch->running) + 8];
    snprintf(text, sizeof(text), "%s%s%s", ch->end, ch->failure[0] ? ": " : "", ch->failure);
    dfd_warn("plugin.child_died", "plugin=%s generation=%u slot=%u pid=%ld %s running=%s "
             "msg=%s", iso->name, iso->generation, ch->slot, (long)ch->pid, field,
             dfd_logfmt_value(qrun, sizeof(qrun), ch->running),
             dfd_logfmt_value(qtext, sizeof(qtext), text));
    if (iso->released || super_draining(sup))
        return;
    if (super_crash_loop(iso, now)) {
        iso->failed = 1;
        dfd_isolate_set_status(iso, "plugin '%s' failed: its child processes died %u times "
                               "within %u s (the last: %.400s); a reload starts it again",
                               iso->name, DFD_ISOLATE_LOOP_DEATHS,
                               DFD_ISOLATE_LOOP_WINDOW_MS / 1000, ch->end);
        dfd_error("plugin.crash_loop", "plugin=%s generation=%u deaths=%u window_s=%u msg=\"no "
                  "more restarts; its calls are answered UNAVAILABLE until a reload\"",
                  iso->name, iso->generation, DFD_ISOLATE_LOOP_DEATHS,
                  DFD_ISOLATE_LOOP_WINDOW_MS / 1000);
        return;
    }
    if (ch->harakiri)
        return; /* its replacement started when it was killed */
    dfd_isolate_slot *s = &iso->slots[ch->slot];
    uint64_t ms = super_backoff_ms(s, was_starting ? 0 : ch->ready_ns, now);
    s->restart_at_ns = now + ms * 1000000u;
    dfd_isolate_set_status(iso, "plugin '%s' has no child process ready: %.400s; the next "
                           "start is in %llu ms", iso->name, ch->end, (unsigned long long)ms);
}

/* See isolate-int.h. */
void dfd_supervisor_reap(dfd_supervisor *sup)
{
    for (dfd_isolate *iso = sup->groups; iso != NULL; iso = iso->next) {
        for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next) {
            if (ch->pid <= 0 || ch->reaped)
                continue;
            int st = 0;
            pid_t r = waitpid(ch->pid, &st, WNOHANG);
            if (r == ch->pid)
                dfd_child_exited(ch, st);
            else if (r == -1 && errno == ECHILD)
                dfd_child_exited(ch, 0); /* reaped by someone else: its status is lost */
        }
    }
}

/* See isolate-int.h. */
void dfd_child_stop(dfd_child *ch, uint64_t kill_after_ms)
{
    dfd_isolate *iso = ch->iso;
    pthread_mutex_lock(&iso->lock);
    ch->planned = 1;
    ch->ready = 0;
    if (iso->slots[ch->slot].current == ch)
        iso->slots[ch->slot].current = NULL;
    pthread_mutex_unlock(&iso->lock);
    if (ch->reaped)
        return;
    if (ch->read_ev != NULL) {
        event_free(ch->read_ev);
        ch->read_ev = NULL;
    }
    if (ch->loop == NULL) {
        /* the main thread holds its link (it is starting, or no loop runs): EOF now */
        if (ch->fd != -1)
            close(ch->fd);
        ch->fd = -1;
        atomic_store(&ch->link_closed, 1);
    } else {
        dfd_child_post_close(ch);
    }
    ch->state = DFD_CHILD_STOPPING;
    uint64_t at = dfd_now_ns() + kill_after_ms * 1000000u;
    if (ch->kill_at_ns == 0 || at < ch->kill_at_ns)
        ch->kill_at_ns = at;
}

/* ---- asynchronous starts -------------------------------------------------------------- */

static void super_on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_child *ch = arg;
    dfd_isolate *iso = ch->iso;
    char why[240];
    int r = dfd_child_read_hello(ch, why, sizeof(why));
    if (r == 0)
        return;
    event_free(ch->read_ev);
    ch->read_ev = NULL;
    if (r == -1) {
        /* it is dying (EOF), or it says what no child of this generation says: the
         * reap counts it as a death while starting */
        snprintf(ch->failure, sizeof(ch->failure), "%s", why);
        close(ch->fd);
        ch->fd = -1;
        atomic_store(&ch->link_closed, 1);
        kill(ch->pid, SIGKILL);
        ch->sigkilled = 1;
        return;
    }
    if (dfd_child_post_adopt(ch) == 0)
        dfd_info("plugin.child_started", "plugin=%s generation=%u slot=%u pid=%ld restarts=%u",
                 iso->name, iso->generation, ch->slot, (long)ch->pid,
                 iso->slots[ch->slot].restarts);
}

/* Starts a new child for slot (a restart or a replacement), read asynchronously. */
static void super_start(dfd_isolate *iso, unsigned slot)
{
    dfd_supervisor *sup = iso->sup;
    dfd_isolate_slot *s = &iso->slots[slot];
    char why[240];
    s->restart_at_ns = 0;
    dfd_child *ch = dfd_child_spawn(iso, slot, why, sizeof(why));
    if (ch != NULL) {
        ch->read_ev = event_new(sup->srv->base, ch->fd, EV_READ | EV_PERSIST,
                                super_on_readable, ch);
        if (ch->read_ev == NULL || event_add(ch->read_ev, NULL) == -1) {
            snprintf(why, sizeof(why), "cannot watch the child's link");
            dfd_child_stop(ch, 0);
            ch = NULL;
        }
    }
    if (ch == NULL) {
        uint64_t ms = super_backoff_ms(s, 0, dfd_now_ns());
        s->restart_at_ns = dfd_now_ns() + ms * 1000000u;
        char qwhy[2 * sizeof(why)];
        dfd_error("plugin.child_start_failed", "plugin=%s generation=%u slot=%u retry_ms=%llu "
                  "msg=%s", iso->name, iso->generation, slot, (unsigned long long)ms,
                  dfd_logfmt_value(qwhy, sizeof(qwhy), why));
        return;
    }
    pthread_mutex_lock(&iso->lock);
    s->current = ch;
    pthread_mutex_unlock(&iso->lock);
    s->restarts++;
    iso->restarts++;
    sup->restarts++;
}

/* ---- the tick --------------------------------------------------------------------------- */

/* A call of ch's ran past harakiri: no new calls for it, a replacement at once,
 * SIGTERM now and SIGKILL after the grace. */
static void super_harakiri(dfd_child *ch, const char *callback, uint64_t ran_ms)
{
    dfd_isolate *iso = ch->iso;
    int serving = iso->slots[ch->slot].current == ch;
    ch->harakiri = 1;
    iso->harakiri++;
    iso->sup->harakiri++;
    snprintf(ch->running, sizeof(ch->running), "%s", callback);
    snprintf(ch->end, sizeof(ch->end), "plugin '%.64s' child %u (pid %ld) was killed by "
             "harakiri: '%.200s' ran %llu ms (harakiri %llu ms)", iso->name, ch->slot,
             (long)ch->pid, callback, (unsigned long long)ran_ms,
             (unsigned long long)iso->harakiri_ms);
    char qcb[600];
    dfd_warn("plugin.harakiri", "plugin=%s generation=%u slot=%u pid=%ld callback=%s "
             "ran_ms=%llu harakiri_ms=%llu msg=\"killing the child (SIGTERM, SIGKILL after "
             "%u ms); a new one starts\"", iso->name, iso->generation, ch->slot, (long)ch->pid,
             dfd_logfmt_value(qcb, sizeof(qcb), callback), (unsigned long long)ran_ms,
             (unsigned long long)iso->harakiri_ms, DFD_ISOLATE_KILL_GRACE_MS);
    pthread_mutex_lock(&iso->lock);
    ch->planned = 1;
    ch->ready = 0;
    if (serving)
        iso->slots[ch->slot].current = NULL;
    pthread_mutex_unlock(&iso->lock);
    if (ch->state != DFD_CHILD_STOPPING)
        ch->state = DFD_CHILD_STOPPING;
    kill(ch->pid, SIGTERM);
    uint64_t at = dfd_now_ns() + (uint64_t)DFD_ISOLATE_KILL_GRACE_MS * 1000000u;
    if (ch->kill_at_ns == 0 || at < ch->kill_at_ns)
        ch->kill_at_ns = at;
    if (serving && !iso->released && !iso->failed && !super_draining(iso->sup))
        super_start(iso, ch->slot);
}

/* What the tick checks of one child that runs. */
static void super_check(dfd_child *ch, uint64_t now)
{
    dfd_isolate *iso = ch->iso;
    if (ch->state == DFD_CHILD_STARTING && ch->read_ev != NULL &&
        now - ch->spawned_ns > (uint64_t)DFD_ISOLATE_START_TIMEOUT_MS * 1000000u) {
        snprintf(ch->failure, sizeof(ch->failure), "it did not announce its callbacks "
                 "within %u ms", DFD_ISOLATE_START_TIMEOUT_MS);
        event_free(ch->read_ev);
        ch->read_ev = NULL;
        kill(ch->pid, SIGKILL);
        ch->sigkilled = 1;
        return;
    }
    if (ch->state != DFD_CHILD_STARTING && iso->harakiri_ms != 0 && !ch->harakiri &&
        atomic_load(&ch->adopted)) {
        uint64_t since_ms, now_ms = now / 1000000u;
        unsigned k;
        uint64_t w = atomic_load_explicit(&ch->board->oldest, memory_order_acquire);
        if (dfd_board_unword(w, &since_ms, &k) && now_ms > since_ms &&
            now_ms - since_ms > iso->harakiri_ms)
            super_harakiri(ch, k < iso->ncb ? iso->cb_names[k] : "?", now_ms - since_ms);
    }
    if (ch->state == DFD_CHILD_READY && atomic_load(&ch->adopted) &&
        atomic_load(&ch->link_closed) && ch->kill_at_ns == 0) {
        /* its link is gone (the drain closed it, or it broke): a child exits on EOF;
         * one still there after the grace is of no use and is killed */
        if (!super_draining(ch->iso->sup))
            snprintf(ch->failure, sizeof(ch->failure), "its link closed while it ran");
        ch->kill_at_ns = now + (uint64_t)DFD_ISOLATE_KILL_GRACE_MS * 1000000u;
    }
    if (ch->kill_at_ns != 0 && now >= ch->kill_at_ns && !ch->sigkilled) {
        dfd_warn("plugin.child_killed", "plugin=%s generation=%u slot=%u pid=%ld msg=\"it did "
                 "not exit in time: SIGKILL\"", iso->name, iso->generation, ch->slot,
                 (long)ch->pid);
        kill(ch->pid, SIGKILL);
        ch->sigkilled = 1;
    }
}

/* See isolate-int.h. */
void dfd_supervisor_collect(dfd_supervisor *sup)
{
    for (dfd_isolate **ip = &sup->groups; *ip != NULL;) {
        dfd_isolate *iso = *ip;
        for (dfd_child **cp = &iso->children; *cp != NULL;) {
            dfd_child *ch = *cp;
            if (ch->reaped && atomic_load_explicit(&ch->link_closed, memory_order_acquire) &&
                atomic_load_explicit(&ch->mails, memory_order_acquire) == 0) {
                *cp = ch->next;
                dfd_child_free(ch);
                continue;
            }
            cp = &ch->next;
        }
        if (iso->released && iso->children == NULL) {
            *ip = iso->next;
            dfd_isolate_free(iso);
            continue;
        }
        ip = &iso->next;
    }
    if (sup->groups == NULL && sup->tick_ev != NULL)
        event_del(sup->tick_ev); /* nothing to watch until the next isolated load */
}

static void super_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_supervisor *sup = arg;
    uint64_t now = dfd_now_ns();
    dfd_supervisor_reap(sup);
    for (dfd_isolate *iso = sup->groups; iso != NULL; iso = iso->next) {
        for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next)
            if (!ch->reaped)
                super_check(ch, now);
        if (iso->released || iso->failed || super_draining(sup))
            continue;
        for (unsigned s = 0; s < iso->processes; s++)
            if (iso->slots[s].restart_at_ns != 0 && now >= iso->slots[s].restart_at_ns)
                super_start(iso, s);
    }
    dfd_supervisor_collect(sup);
}

static void super_on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_supervisor *sup = arg;
    dfd_supervisor_reap(sup);
    dfd_supervisor_collect(sup);
}

/* Arms SIGCHLD and the tick on the main base (the tick runs while any isolate
 * exists). Returns 0 or -1. */
static int super_arm(dfd_supervisor *sup)
{
    struct timeval tv = {0, DFD_ISOLATE_TICK_MS * 1000};
    if (sup->tick_ev == NULL) {
        sup->sigchld_ev = evsignal_new(sup->srv->base, SIGCHLD, super_on_sigchld, sup);
        sup->tick_ev = event_new(sup->srv->base, -1, EV_PERSIST, super_on_tick, sup);
        if (sup->sigchld_ev == NULL || sup->tick_ev == NULL ||
            event_add(sup->sigchld_ev, NULL) == -1)
            return -1;
    }
    if (!event_pending(sup->tick_ev, EV_TIMEOUT, NULL) && event_add(sup->tick_ev, &tv) == -1)
        return -1;
    return 0;
}

/* See isolate.h. Before the loops run: their links are adopted now, so that no call
 * (a worker announces its callbacks as soon as its router answers) finds a plugin
 * without a ready child. */
int dfd_supervisor_attach(dfd_server *srv, dfd_errors *errs)
{
    dfd_supervisor *sup = dfd_supervisor_get(srv);
    if (sup == NULL) {
        dfd_errors_add(errs, "out of memory setting up the supervisor of isolated plugins");
        return -1;
    }
    sup->attached = 1;
    if (sup->groups == NULL)
        return 0;
    if (super_arm(sup) == -1) {
        dfd_errors_add(errs, "cannot watch the children of isolated plugins (SIGCHLD)");
        return -1;
    }
    for (dfd_isolate *iso = sup->groups; iso != NULL; iso = iso->next)
        for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next)
            if (ch->state == DFD_CHILD_READY && ch->loop == NULL)
                dfd_child_adopt_now(ch);
    return 0;
}

/* See isolate-int.h. */
int dfd_supervisor_adopt_all(dfd_supervisor *sup, dfd_errors *errs)
{
    if (super_arm(sup) == -1) {
        dfd_errors_add(errs, "cannot watch the children of isolated plugins (SIGCHLD)");
        return -1;
    }
    int rc = 0;
    for (dfd_isolate *iso = sup->groups; iso != NULL; iso = iso->next)
        for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next)
            if (ch->state == DFD_CHILD_READY && ch->loop == NULL &&
                dfd_child_post_adopt(ch) == -1)
                rc = -1;
    for (dfd_isolate *iso = sup->groups; iso != NULL; iso = iso->next)
        for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next)
            if (ch->state == DFD_CHILD_READY && dfd_child_wait_adopted(ch) == -1) {
                dfd_errors_add(errs, "plugin %s: the link to child %u (pid %ld) was not "
                               "taken by a loop", iso->name, ch->slot, (long)ch->pid);
                rc = -1;
            }
    return rc;
}

/* ---- the end ------------------------------------------------------------------------------ */

/* See isolate.h. */
void dfd_supervisor_free(dfd_server *srv)
{
    dfd_supervisor *sup = srv->supervisor;
    if (sup == NULL)
        return;
    uint64_t deadline = dfd_now_ns() + (uint64_t)DFD_ISOLATE_EXIT_WAIT_MS * 1000000u;
    for (int alive = 1; alive;) {
        dfd_supervisor_reap(sup);
        alive = 0;
        for (dfd_isolate *iso = sup->groups; iso != NULL; iso = iso->next)
            for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next) {
                if (ch->reaped)
                    continue;
                if (ch->loop == NULL && ch->fd != -1) {
                    close(ch->fd); /* EOF: it exits */
                    ch->fd = -1;
                }
                if (dfd_now_ns() > deadline && !ch->sigkilled) {
                    kill(ch->pid, SIGKILL);
                    ch->sigkilled = 1;
                }
                alive = 1;
            }
        if (alive) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    while (sup->groups != NULL) {
        dfd_isolate *iso = sup->groups;
        sup->groups = iso->next;
        while (iso->children != NULL) {
            dfd_child *ch = iso->children;
            iso->children = ch->next;
            dfd_child_free(ch);
        }
        dfd_isolate_free(iso);
    }
    if (sup->sigchld_ev != NULL)
        event_free(sup->sigchld_ev);
    if (sup->tick_ev != NULL)
        event_free(sup->tick_ev);
    dfd_child_env_free(sup->envp);
    free(sup);
    srv->supervisor = NULL;
}

/* See isolate.h. */
void dfd_supervisor_counts(const dfd_server *srv, uint64_t *crashes, uint64_t *restarts,
                           uint64_t *harakiri, uint64_t *children)
{
    const dfd_supervisor *sup = srv->supervisor;
    *crashes = *restarts = *harakiri = *children = 0;
    if (sup == NULL)
        return;
    *crashes = sup->crashes;
    *restarts = sup->restarts;
    *harakiri = sup->harakiri;
    for (const dfd_isolate *iso = sup->groups; iso != NULL; iso = iso->next)
        for (const dfd_child *ch = iso->children; ch != NULL; ch = ch->next)
            *children += ch->pid > 0 && !ch->reaped;
}
