/*
 * watch.c - inotify triggers for hot reload (see watch.h).
 *
 * inotify watches directories, not files: a file replaced by rename is a new inode, and
 * a watch on the old one would go quiet. Each watched directory carries the names that
 * matter in it; the kernel hands back the same watch descriptor for two spellings of
 * one directory, so the table is keyed by descriptor.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "reload.h"
#include "server.h"
#include "sdnotify.h"
#include "watch.h"

#define WATCH_MASK                                                                     \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | \
     IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* One watched directory. */
typedef struct watch_dir {
    int wd;
    char *path;                   /* as first added; owned */
    int is_config;                /* the configuration directory: *.ini matter */
    char **names;                 /* plugin file names that matter here; owned */
    size_t nnames;
    int seen;                     /* mark of the current sync */
} watch_dir;

/* A file written in place whose writer has not closed it yet. */
typedef struct watch_writer {
    int wd;
    char *name;                   /* owned */
} watch_writer;

struct dfd_watch {
    dfd_server *srv;
    int fd;                       /* inotify */
    struct event *ev;             /* readable inotify descriptor */
    struct event *timer;          /* the quiet period */
    watch_dir *dirs;              /* owned array */
    size_t ndirs;
    size_t cap;
    watch_writer *writers;        /* owned array */
    size_t nwriters;
    size_t wcap;
    uint64_t first_ns;            /* first event of the pending batch; 0 = none */
    int initial;                  /* the start-up check is due */
    unsigned nevents;             /* relevant events in the batch */
    char last[NAME_MAX + 1];      /* the last relevant name, for the log */
};

/* Returns the directory watched as wd, or NULL. */
static watch_dir *dir_find(dfd_watch *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd)
            return &w->dirs[i];
    return NULL;
}

/* Frees what d owns. */
static void dir_free(watch_dir *d)
{
    for (size_t i = 0; i < d->nnames; i++)
        free(d->names[i]);
    free(d->names);
    free(d->path);
}

/* Adds name (may be NULL) to d's names unless there. Returns 0 or -1 (out of memory). */
static int dir_add_name(watch_dir *d, const char *name)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < d->nnames; i++)
        if (strcmp(d->names[i], name) == 0)
            return 0;
    char **grown = realloc(d->names, (d->nnames + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    d->names = grown;
    d->names[d->nnames] = strdup(name);
    if (d->names[d->nnames] == NULL)
        return -1;
    d->nnames++;
    return 0;
}

/* Watches directory path (is_config: its *.ini files matter; name: a file in it that
 * matters, may be NULL). Marks the entry seen. A directory that cannot be watched is
 * logged and skipped. */
static void dir_add(dfd_watch *w, const char *path, int is_config, const char *name)
{
    int wd = inotify_add_watch(w->fd, path, WATCH_MASK);

    if (wd == -1) {
        dfd_warn("watch.add_failed", "dir=%s error=\"%s\" msg=\"changes there are not "
                 "seen; SIGHUP still reloads\"", path, strerror(errno));
        return;
    }
    watch_dir *d = dir_find(w, wd);
    if (d == NULL) {
        if (w->ndirs == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 8;
            watch_dir *grown = realloc(w->dirs, cap * sizeof(*grown));
            if (grown == NULL) {
                inotify_rm_watch(w->fd, wd);
                dfd_error("watch.oom", "dir=%s", path);
                return;
            }
            w->dirs = grown;
            w->cap = cap;
        }
        d = &w->dirs[w->ndirs];
        memset(d, 0, sizeof(*d));
        d->wd = wd;
        d->path = strdup(path);
        if (d->path == NULL) {
            inotify_rm_watch(w->fd, wd);
            dfd_error("watch.oom", "dir=%s", path);
            return;
        }
        w->ndirs++;
        dfd_debug("watch.dir", "dir=%s wd=%d", path, wd);
    }
    d->seen = 1;
    d->is_config |= is_config;
    if (dir_add_name(d, name) == -1)
        dfd_error("watch.oom", "dir=%s file=%s", path, name);
}

/* Watches the directory of file for its base name. */
static void file_add(dfd_watch *w, const char *file)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(file, '/');

    if (slash == NULL) {
        dir_add(w, ".", 0, file);
        return;
    }
    size_t len = (size_t)(slash - file);
    if (len == 0)
        len = 1; /* "/x.so": the root */
    if (len >= sizeof(dir) || slash[1] == '\0')
        return;
    memcpy(dir, file, len);
    dir[len] = '\0';
    dir_add(w, dir, 0, slash + 1);
}

/* See watch.h. */
void dfd_watch_sync(dfd_watch *w)
{
    const dfd_reload *r = w->srv->reload;

    for (size_t i = 0; i < w->ndirs; i++) {
        watch_dir *d = &w->dirs[i];
        d->seen = 0;
        d->is_config = 0;
        for (size_t k = 0; k < d->nnames; k++)
            free(d->names[k]);
        d->nnames = 0;
    }
    dir_add(w, w->srv->cfg->dir, 1, NULL);
    for (size_t i = 0; r != NULL && i < r->nplugins; i++) {
        const dfd_reload_plugin *rec = &r->plugins[i];
        char real[PATH_MAX];
        if (!rec->configured || rec->path == NULL)
            continue;
        file_add(w, rec->path);
        /* a symlinked .so: the file it points to may be replaced where it lives */
        if (realpath(rec->path, real) != NULL && strcmp(real, rec->path) != 0)
            file_add(w, real);
    }
    for (size_t i = 0; i < w->ndirs;) {
        watch_dir *d = &w->dirs[i];
        if (d->seen) {
            i++;
            continue;
        }
        dfd_debug("watch.dir_dropped", "dir=%s wd=%d", d->path, d->wd);
        inotify_rm_watch(w->fd, d->wd);
        dir_free(d);
        w->dirs[i] = w->dirs[--w->ndirs];
    }
}

/* Returns the index of (wd, name) among the writers, or -1. */
static long writer_index(const dfd_watch *w, int wd, const char *name)
{
    for (size_t i = 0; i < w->nwriters; i++)
        if (w->writers[i].wd == wd && strcmp(w->writers[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Notes that (wd, name) is being written (open) or is done (!open). */
static void writer_note(dfd_watch *w, int wd, const char *name, int open)
{
    long at = writer_index(w, wd, name);

    if (!open) {
        if (at != -1) {
            free(w->writers[at].name);
            w->writers[at] = w->writers[--w->nwriters];
        }
        return;
    }
    if (at != -1)
        return;
    if (w->nwriters == w->wcap) {
        size_t cap = w->wcap ? w->wcap * 2 : 4;
        watch_writer *grown = realloc(w->writers, cap * sizeof(*grown));
        if (grown == NULL)
            return; /* then the quiet period alone decides */
        w->writers = grown;
        w->wcap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return;
    w->writers[w->nwriters].wd = wd;
    w->writers[w->nwriters].name = copy;
    w->nwriters++;
}

/* Forgets every writer. */
static void writers_clear(dfd_watch *w)
{
    for (size_t i = 0; i < w->nwriters; i++)
        free(w->writers[i].name);
    w->nwriters = 0;
}

/* Returns 1 when name is a configuration file: "*.ini", not a dotfile. */
static int is_ini(const char *name)
{
    size_t len = strlen(name);

    return name[0] != '.' && len > 4 && strcmp(name + len - 4, ".ini") == 0;
}

/* Returns 1 when the event concerns a file that matters. */
static int event_relevant(dfd_watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW)
        return 1; /* events were lost: anything may have changed */
    watch_dir *d = dir_find(w, ev->wd);
    if (d == NULL)
        return 0; /* a watch dropped by a sync (its IN_IGNORED) */
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
        return 1; /* the directory itself went away: the reload re-syncs */
    if (ev->len == 0 || ev->name[0] == '\0')
        return 0;
    if (d->is_config && is_ini(ev->name))
        return 1;
    for (size_t i = 0; i < d->nnames; i++)
        if (strcmp(d->names[i], ev->name) == 0)
            return 1;
    return 0;
}

/* Restarts the quiet period, never past the batch's deadline: [server] watch_max_wait
 * after its first event (DFD_WATCH_WRITER_MAX_MS when that is later and a writer still
 * holds a changed file open). Under steady change the reload so happens at the
 * deadline instead of waiting for a quiet moment that never comes. */
static void quiet_restart(dfd_watch *w)
{
    uint64_t limit_ms = w->srv->cfg->watch_max_wait_ms;
    uint64_t elapsed_ms = (dfd_now_ns() - w->first_ns) / 1000000u;
    uint64_t delay_ms = DFD_WATCH_QUIET_MS;

    if (w->nwriters > 0 && limit_ms < DFD_WATCH_WRITER_MAX_MS)
        limit_ms = DFD_WATCH_WRITER_MAX_MS;
    if (elapsed_ms >= limit_ms)
        delay_ms = 0;
    else if (limit_ms - elapsed_ms < delay_ms)
        delay_ms = limit_ms - elapsed_ms;
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000 * 1000)};
    evtimer_add(w->timer, &tv);
}

/* The inotify descriptor is readable: drains it, notes relevant events. */
static void watch_on_read(evutil_socket_t fd, short what, void *arg)
{
    dfd_watch *w = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int relevant = 0;

    (void)what;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 || n == 0)
            break; /* EAGAIN: drained */
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (!event_relevant(w, ev))
                continue;
            relevant = 1;
            w->nevents++;
            if (ev->len > 0 && ev->name[0] != '\0') {
                snprintf(w->last, sizeof(w->last), "%s", ev->name);
                if (ev->mask & IN_MODIFY)
                    writer_note(w, ev->wd, ev->name, 1);
                if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_DELETE))
                    writer_note(w, ev->wd, ev->name, 0);
            }
            if (ev->wd != -1 && (ev->mask & IN_IGNORED)) {
                /* the kernel dropped the watch (directory deleted) */
                watch_dir *d = dir_find(w, ev->wd);
                if (d != NULL) {
                    dir_free(d);
                    *d = w->dirs[--w->ndirs];
                }
            }
        }
    }
    if (!relevant)
        return;
    if (w->first_ns == 0)
        w->first_ns = dfd_now_ns();
    quiet_restart(w);
}

/* The quiet period passed: reloads once for the batch, unless a writer is still at work
 * (then waits, up to DFD_WATCH_WRITER_MAX_MS). */
static void watch_on_quiet(evutil_socket_t fd, short what, void *arg)
{
    dfd_watch *w = arg;
    uint64_t waited_ms = (dfd_now_ns() - w->first_ns) / 1000000u;
    dfd_errors errs = {0};

    (void)fd;
    (void)what;
    if (w->initial && w->first_ns == 0) {
        w->initial = 0;
        dfd_info("watch.initial_check", "msg=\"reloading what changed since the "
                 "configuration was read\"");
        dfd_reload_run(w->srv, NULL, &errs);
        dfd_errors_free(&errs);
        return;
    }
    w->initial = 0; /* an event came first: its reload checks everything */
    if (w->nwriters > 0 && waited_ms < DFD_WATCH_WRITER_MAX_MS) {
        quiet_restart(w);
        return;
    }
    if (w->nwriters > 0)
        dfd_warn("watch.writer_slow", "file=%s waited_ms=%llu msg=\"still open for "
                 "writing; reloading anyway\"", w->writers[0].name,
                 (unsigned long long)waited_ms);
    dfd_info("watch.changed", "events=%u file=%s waited_ms=%llu%s", w->nevents,
             w->last[0] ? w->last : "-", (unsigned long long)waited_ms,
             waited_ms >= w->srv->cfg->watch_max_wait_ms ? " quiet=no msg=\"changes keep "
             "coming: reloading at watch_max_wait\"" : "");
    writers_clear(w);
    w->first_ns = 0;
    w->nevents = 0;
    w->last[0] = '\0';
    /* dfd_reload_run logs each outcome and re-syncs the watches; systemd hears of it
     * as of any other reload */
    dfd_sdnotify_reloading();
    int rc = dfd_reload_run(w->srv, NULL, &errs);
    dfd_sdnotify_ready(w->srv, rc == 0 ? "reloaded (file change)" : "reload failed (file change)");
    dfd_errors_free(&errs);
}

/* See watch.h. */
dfd_watch *dfd_watch_start(dfd_server *srv)
{
    dfd_watch *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        dfd_error("watch.oom", "msg=\"cannot start watching for changes\"");
        return NULL;
    }
    w->srv = srv;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd == -1) {
        dfd_warn("watch.unavailable", "error=\"%s\" msg=\"changes are not picked up by "
                 "themselves; SIGHUP reloads\"", strerror(errno));
        free(w);
        return NULL;
    }
    w->ev = event_new(srv->base, w->fd, EV_READ | EV_PERSIST, watch_on_read, w);
    w->timer = evtimer_new(srv->base, watch_on_quiet, w);
    if (w->ev == NULL || w->timer == NULL || event_add(w->ev, NULL) == -1) {
        dfd_error("watch.oom", "msg=\"cannot start watching for changes\"");
        dfd_watch_stop(w);
        return NULL;
    }
    dfd_watch_sync(w);
    dfd_info("watch.started", "dirs=%zu quiet_ms=%d max_wait_ms=%llu", w->ndirs,
             DFD_WATCH_QUIET_MS, (unsigned long long)srv->cfg->watch_max_wait_ms);
    /* A file changed between the configuration's reading and the first watch raised no
     * event: one reload on the loop's first pass picks it up (and changes nothing
     * otherwise). Not now: the server is still being set up (its -o overrides, for
     * one, are stored after init). */
    struct timeval now = {0, 0};
    w->initial = 1;
    evtimer_add(w->timer, &now);
    return w;
}

/* See watch.h. */
void dfd_watch_stop(dfd_watch *w)
{
    if (w == NULL)
        return;
    if (w->ev != NULL)
        event_free(w->ev);
    if (w->timer != NULL)
        event_free(w->timer);
    for (size_t i = 0; i < w->ndirs; i++)
        dir_free(&w->dirs[i]);
    free(w->dirs);
    writers_clear(w);
    free(w->writers);
    if (w->fd != -1)
        close(w->fd);
    free(w);
}
