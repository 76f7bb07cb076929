/*
 * isolate.c - a plugin generation served by child processes (see isolate.h): its load
 * (the children started and their hellos answered before it is returned), the hook
 * through which dispatch sends its calls to a child, and its release.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "call-t.h"
#include "callobj.h"
#include "dispatch.h"
#include "isolate-int.h"
#include "log.h"
#include "logfmt.h"
#include "plugin.h"
#include "router.h"
#include "server.h"

/* ---- the isolate ------------------------------------------------------------------------ */

/* See isolate-int.h. */
void dfd_isolate_set_status(dfd_isolate *iso, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&iso->lock);
    va_start(ap, fmt);
    vsnprintf(iso->status, sizeof(iso->status), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&iso->lock);
}

/* See isolate-int.h. */
void dfd_isolate_free(dfd_isolate *iso)
{
    msgpack_sbuffer_destroy(&iso->setup);
    for (size_t i = 0; i < iso->ncb; i++)
        free(iso->cb_names[i]);
    free(iso->cb_names);
    free(iso->cb_flags);
    free(iso->version);
    free(iso->slots);
    free(iso->name);
    free(iso->file);
    pthread_mutex_destroy(&iso->lock);
    free(iso);
}

/* A new isolate for generation p of pc, linked into sup (no child yet). NULL when
 * memory runs out. */
static dfd_isolate *isolate_new(dfd_supervisor *sup, dfd_plugin *p, const dfd_plugin_conf *pc)
{
    const dfd_config *cfg = sup->srv->cfg;
    dfd_isolate *iso = calloc(1, sizeof(*iso));
    if (iso == NULL)
        return NULL;
    iso->sup = sup;
    iso->gen = p;
    iso->generation = p->generation;
    iso->processes = pc->processes ? pc->processes : 1;
    iso->concurrency = pc->concurrency;
    iso->queue = pc->queue;
    uint64_t timeout = pc->timeout_ms ? pc->timeout_ms : cfg->default_timeout_ms;
    iso->harakiri_ms = pc->harakiri_ms == DFD_HARAKIRI_DEFAULT ? 2 * timeout : pc->harakiri_ms;
    pthread_mutex_init(&iso->lock, NULL);
    iso->name = strdup(pc->name);
    iso->file = strdup(pc->path);
    iso->slots = calloc(iso->processes, sizeof(*iso->slots));
    if (iso->name == NULL || iso->file == NULL || iso->slots == NULL ||
        dfd_isolate_setup(iso, pc) == -1) {
        dfd_isolate_free(iso);
        return NULL;
    }
    snprintf(iso->status, sizeof(iso->status), "plugin '%s' has no child process ready yet",
             iso->name);
    iso->next = sup->groups;
    sup->groups = iso;
    return iso;
}

/* Unlinks iso from its supervisor. */
static void isolate_unlink(dfd_isolate *iso)
{
    for (dfd_isolate **ip = &iso->sup->groups; *ip != NULL; ip = &(*ip)->next)
        if (*ip == iso) {
            *ip = iso->next;
            return;
        }
}

/* Reaps ch, which is ending, waiting at most ms before SIGKILL. */
static void isolate_reap_now(dfd_child *ch, unsigned ms)
{
    uint64_t deadline = dfd_now_ns() + (uint64_t)ms * 1000000u;
    while (!ch->reaped) {
        int st = 0;
        pid_t r = waitpid(ch->pid, &st, WNOHANG);
        if (r == ch->pid || (r == -1 && errno == ECHILD)) {
            dfd_child_exited(ch, r == ch->pid ? st : 0);
            break;
        }
        if (dfd_now_ns() > deadline && !ch->sigkilled) {
            kill(ch->pid, SIGKILL);
            ch->sigkilled = 1;
        }
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* A load that failed: every child it started is killed and reaped, iso freed. */
static void isolate_abort(dfd_isolate *iso)
{
    for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next) {
        dfd_child_stop(ch, 0);
        if (!ch->reaped) {
            kill(ch->pid, SIGKILL);
            ch->sigkilled = 1;
            isolate_reap_now(ch, 1000);
        }
    }
    while (iso->children != NULL) {
        dfd_child *ch = iso->children;
        iso->children = ch->next;
        dfd_child_free(ch);
    }
    isolate_unlink(iso);
    dfd_isolate_free(iso);
}

/* Why a child that failed while starting (read_why: what the parent saw) makes the
 * load fail, into why: the loader's own words when the child wrote them on its board
 * ("FILE: init failed: ..."), else how it ended. */
static void isolate_start_failure(dfd_child *ch, const char *read_why, char *why, size_t n)
{
    ch->planned = 1; /* a failed load is reported by the load: not a crash to restart */
    if (!ch->reaped) {
        isolate_reap_now(ch, 1000);
    }
    if (ch->failure[0] != '\0' && strncmp(ch->failure, ch->iso->file, strlen(ch->iso->file)) == 0)
        snprintf(why, n, "%s", ch->failure);
    else
        snprintf(why, n, "%.150s: %.300s (%.100s%s%.200s)", ch->iso->file, ch->end, read_why,
                 ch->failure[0] ? ": " : "", ch->failure);
}

/* Starts every child of iso and reads their hellos, at most the start timeout.
 * Returns 0 when all are READY, or -1 with the reason (naming the file) in why. */
static int isolate_start_all(dfd_isolate *iso, char *why, size_t n)
{
    struct pollfd *pfd = calloc(iso->processes, sizeof(*pfd));
    dfd_child **who = calloc(iso->processes, sizeof(*who));
    uint64_t deadline = dfd_now_ns() + (uint64_t)DFD_ISOLATE_START_TIMEOUT_MS * 1000000u;
    char w[400];
    int rc = -1;

    if (pfd == NULL || who == NULL) {
        snprintf(why, n, "%s: out of memory", iso->file);
        goto out;
    }
    for (unsigned s = 0; s < iso->processes; s++) {
        dfd_child *ch = dfd_child_spawn(iso, s, w, sizeof(w));
        if (ch == NULL) {
            snprintf(why, n, "%s: %s", iso->file, w);
            goto out;
        }
        iso->slots[s].current = ch;
    }
    for (;;) {
        nfds_t k = 0;
        for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next)
            if (ch->state == DFD_CHILD_STARTING) {
                pfd[k].fd = ch->fd;
                pfd[k].events = POLLIN;
                who[k++] = ch;
            }
        if (k == 0)
            break;
        uint64_t now = dfd_now_ns();
        if (now >= deadline) {
            snprintf(why, n, "%s: child %u (pid %ld) did not announce its callbacks within "
                     "%u ms", iso->file, who[0]->slot, (long)who[0]->pid,
                     DFD_ISOLATE_START_TIMEOUT_MS);
            goto out;
        }
        int r = poll(pfd, k, (int)((deadline - now) / 1000000u) + 1);
        if (r == -1 && errno != EINTR) {
            snprintf(why, n, "%s: cannot wait for the children: %s", iso->file, strerror(errno));
            goto out;
        }
        for (nfds_t i = 0; r > 0 && i < k; i++) {
            if (pfd[i].revents == 0)
                continue;
            if (dfd_child_read_hello(who[i], w, sizeof(w)) == -1) {
                isolate_start_failure(who[i], w, why, n);
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(pfd);
    free(who);
    return rc;
}

/* ---- calls ---------------------------------------------------------------------------- */

/* The handler of an isolated generation's callbacks here. Dispatch forwards every call
 * before a handler would run, so only a stream's open reaches it. */
static daffi_status isolate_no_stream(daffi_call *call)
{
    daffi_reply_error(call, DAFFI_E_UNAVAILABLE, "callback '%.200s' runs in a child process "
                      "(isolation = process), where streams are not served yet",
                      call->method);
    return DAFFI_DONE;
}

/* The generation's forward hook (dispatch.c, on the call's loop): a ready child,
 * round-robin, gets the call through the router's forwarding; without one the call is
 * answered at once (UNAVAILABLE naming why, or OVERLOADED). */
static void isolate_forward(dfd_call *call)
{
    dfd_isolate *iso = call->cb->plugin->iso;
    unsigned limit = call->loop->srv->cfg->member_inflight;
    dfd_link *l = NULL;
    int busy = 0;
    char msg[sizeof(iso->status)];

    pthread_mutex_lock(&iso->lock);
    for (unsigned k = 0; k < iso->processes && l == NULL; k++) {
        unsigned s = (iso->rr + k) % iso->processes;
        dfd_child *ch = iso->slots[s].current;
        if (ch == NULL || !ch->ready)
            continue;
        if (atomic_load_explicit(&ch->m->inflight, memory_order_relaxed) >= limit) {
            busy = 1;
            continue;
        }
        l = ch->l;
        dfd_link_retain(l);
        iso->rr = s + 1;
    }
    if (l == NULL && !busy)
        memcpy(msg, iso->status, sizeof(msg));
    pthread_mutex_unlock(&iso->lock);
    if (l != NULL) {
        /* no other member serves it: a child gone before the call was written fails it
         * (UNAVAILABLE), it is not routed anywhere else */
        call->to_member = 1;
        dfd_router_forward_to(NULL, call, l); /* the call is linked to its caller already */
        return;
    }
    if (busy) {
        snprintf(msg, sizeof(msg), "every child process of plugin '%s' holds %u calls "
                 "(member_inflight)", iso->name, limit);
        dfd_stat_add(&call->loop->stats, DFD_STAT_overloaded, 1);
    }
    daffi_call_set_error(&call->base, busy ? DAFFI_E_OVERLOADED : DAFFI_E_UNAVAILABLE, msg);
    atomic_store(&call->state, DFD_CALL_COMPLETING);
    dfd_dispatch_finish(call);
}

/* The generation's last release (main thread): its children stop. The isolate stays
 * until they are reaped (the supervisor frees it). */
static void isolate_fini(dfd_plugin *p)
{
    dfd_isolate *iso = p->iso;
    const dfd_config *cfg = iso->sup->srv->cfg;
    iso->gen = NULL;
    iso->released = 1;
    for (unsigned s = 0; s < iso->processes; s++)
        iso->slots[s].restart_at_ns = 0;
    for (dfd_child *ch = iso->children; ch != NULL; ch = ch->next)
        if (!ch->reaped && !ch->planned)
            dfd_child_stop(ch, cfg->shutdown_timeout_ms + DFD_ISOLATE_KILL_GRACE_MS);
    dfd_isolate_set_status(iso, "plugin '%s' generation %u was unloaded", iso->name,
                           iso->generation);
}

/* Makes p the generation iso's children serve: their callbacks, the hooks. */
static int isolate_fill(dfd_plugin *p, dfd_isolate *iso)
{
    p->callbacks = calloc(iso->ncb, sizeof(*p->callbacks));
    if (p->callbacks == NULL)
        return -1;
    for (size_t k = 0; k < iso->ncb; k++) {
        p->callbacks[k].name = iso->cb_names[k];
        p->callbacks[k].fn = isolate_no_stream;
        p->callbacks[k].flags = iso->cb_flags[k];
        p->callbacks[k].plugin = p;
    }
    p->ncallbacks = iso->ncb;
    iso->desc.abi_major = DAFFI_ABI_MAJOR;
    iso->desc.abi_minor = DAFFI_ABI_MINOR;
    iso->desc.size = sizeof(iso->desc);
    iso->desc.name = iso->name;
    iso->desc.version = iso->version;
    p->desc = &iso->desc;
    /* the children apply concurrency and queue, each its own */
    p->concurrency = 0;
    p->iso = iso;
    p->forward = isolate_forward;
    p->fini_hook = isolate_fini;
    return 0;
}

/* See isolate.h. */
int dfd_isolate_load(dfd_server *srv, const dfd_plugin_conf *pc, unsigned generation,
                     dfd_plugin **out, dfd_errors *errs)
{
    dfd_supervisor *sup = dfd_supervisor_get(srv);
    dfd_plugin *p = NULL;
    char why[800] = "";

    if (sup == NULL) {
        dfd_errors_add(errs, "%s: out of memory", pc->path);
        return -1;
    }
    if (dfd_plugin_shell(pc, srv->private_dir, generation, &p, errs) == -1)
        return -1;
    dfd_isolate *iso = isolate_new(sup, p, pc);
    if (iso == NULL) {
        dfd_errors_add(errs, "%s: out of memory", pc->path);
        dfd_plugin_release(p);
        return -1;
    }
    if (isolate_start_all(iso, why, sizeof(why)) == -1 || isolate_fill(p, iso) == -1) {
        if (why[0] == '\0') /* the children started: building the callbacks failed */
            snprintf(why, sizeof(why), "%s: out of memory", pc->path);
        dfd_errors_add(errs, "%s", why);
        isolate_abort(iso);
        p->iso = NULL;
        p->fini_hook = NULL;
        dfd_plugin_release(p);
        return -1;
    }
    /* running: the loops take the links now, before the table names the generation */
    if (sup->attached && dfd_supervisor_adopt_all(sup, errs) == -1) {
        dfd_plugin_release(p); /* its children stop */
        return -1;
    }
    char pids[200] = "";
    size_t len = 0;
    for (dfd_child *ch = iso->children; ch != NULL && len + 16 < sizeof(pids); ch = ch->next)
        len += (size_t)snprintf(pids + len, sizeof(pids) - len, "%s%ld", len ? "," : "",
                                (long)ch->pid);
    char quser[160];
    dfd_info("plugin.isolated", "plugin=%s generation=%u processes=%u pids=%s user=%s "
             "harakiri_ms=%llu", iso->name, generation, iso->processes, pids,
             dfd_logfmt_value(quser, sizeof(quser), sup->user[0] ? sup->user : "(daffid's)"),
             (unsigned long long)iso->harakiri_ms);
    *out = p;
    return 0;
}

/* ---- readers ---------------------------------------------------------------------------- */

const dfd_isolate *dfd_isolate_of(const dfd_plugin *p)
{
    return p != NULL ? p->iso : NULL;
}

int dfd_isolate_failed(const dfd_plugin *p)
{
    return p != NULL && p->iso != NULL && p->iso->failed;
}

const char *dfd_isolate_state(dfd_isolate *iso)
{
    unsigned ready = 0, pending = 0;
    if (iso->failed)
        return "failed";
    pthread_mutex_lock(&iso->lock);
    for (unsigned s = 0; s < iso->processes; s++) {
        const dfd_child *ch = iso->slots[s].current;
        ready += ch != NULL && ch->ready;
        pending += iso->slots[s].restart_at_ns != 0;
    }
    pthread_mutex_unlock(&iso->lock);
    if (ready == iso->processes)
        return "serving";
    if (ready == 0)
        return pending ? "restarting" : "starting";
    return "degraded";
}

const char *dfd_child_state_name(dfd_child_state s)
{
    switch (s) {
    case DFD_CHILD_STARTING:
        return "starting";
    case DFD_CHILD_READY:
        return "ready";
    case DFD_CHILD_STOPPING:
        return "stopping";
    case DFD_CHILD_EXITED:
        return "exited";
    }
    return "unknown";
}
