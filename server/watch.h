/*
 * watch.h - inotify on the configuration directory and on every plugin file's
 * directory; a quiet period after the last change triggers one reload.
 *
 * Contract
 *   Watched: the configuration directory (any "*.ini" not starting with '.') and, for
 *   every plugin the latest configuration declares, the directory of its .so path and
 *   of the file the path resolves to (symlinks), filtered to that file's name. Other
 *   names in those directories (temporary files of a build, a .so.tmp about to be
 *   renamed) are ignored, so a rename over the watched name is one change.
 *
 *   Debounce: every relevant event restarts a DFD_WATCH_QUIET_MS timer; when it fires,
 *   dfd_reload_run(srv, NULL) runs once for the whole batch. The batch waits at most
 *   [server] watch_max_wait after its first event: changes that never stop (a build
 *   renaming files 20 times a second) still get a reload at that deadline, then the
 *   next batch starts. A file being written in
 *   place (IN_MODIFY seen, IN_CLOSE_WRITE not yet) holds the reload back until its
 *   writer closes it, for at most DFD_WATCH_WRITER_MAX_MS after the batch began, so a
 *   half-written .so is not loaded (and if it were, the load fails and changes
 *   nothing).
 *
 *   Start-up: a change made after the configuration was read but before the watches
 *   were in place raises no event, so the main loop's first pass runs one reload
 *   (logged as watch.initial_check).
 *
 *   A directory that does not exist is not watched (logged); the next reload, from
 *   SIGHUP or the admin socket, tries again through dfd_watch_sync().
 *
 * Threads: the main thread (its event_base) only. Memory: the dfd_watch owns its
 * inotify descriptor, events and tables; dfd_watch_stop() releases them.
 */
#ifndef DFD_WATCH_H
#define DFD_WATCH_H

struct dfd_server;

/* Quiet time after the last change before the reload starts. */
#define DFD_WATCH_QUIET_MS 100
/* Longest wait for a writer to close a changed file, from the batch's first event. */
#define DFD_WATCH_WRITER_MAX_MS 2000

typedef struct dfd_watch dfd_watch;

/* Starts watching for srv (its base must exist; srv->reload names the plugin files)
 * and schedules the start-up check on the base. Returns the watcher (owned by the
 * caller: srv->watch), or NULL when inotify is not available (logged; reloads still
 * come from SIGHUP and the admin socket). */
dfd_watch *dfd_watch_start(struct dfd_server *srv);

/* Re-reads the set of files to watch from srv->reload, adding and dropping directory
 * watches as needed. Called after every reload. */
void dfd_watch_sync(dfd_watch *w);

/* Stops watching and frees w. NULL is accepted. */
void dfd_watch_stop(dfd_watch *w);

#endif /* DFD_WATCH_H */
