/*
 * reload-records.c - the reload engine's per-plugin records (what the admin socket
 * reads: generation, outcome, last error) and the engine's lifetime (see reload.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "plugin.h"
#include "reload-int.h"
#include "server.h"

/* ---- records -------------------------------------------------------------------- */

/* Returns the index of the record for name, or -1. */
long dfd_reload_record_index(const dfd_reload *r, const char *name)
{
    for (size_t i = 0; i < r->nplugins; i++)
        if (strcmp(r->plugins[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Returns the index of the record for name, appending an empty one when there is none
 * (pointers into r->plugins are invalid afterwards). Returns -1 when out of memory. */
long dfd_reload_record_add(dfd_reload *r, const char *name)
{
    long at = dfd_reload_record_index(r, name);

    if (at != -1)
        return at;
    if (r->nplugins == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        dfd_reload_plugin *grown = realloc(r->plugins, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        r->plugins = grown;
        r->cap = cap;
    }
    dfd_reload_plugin *rec = &r->plugins[r->nplugins];
    memset(rec, 0, sizeof(*rec));
    rec->name = strdup(name);
    if (rec->name == NULL)
        return -1;
    return (long)r->nplugins++;
}

/* Sets rec->path to path (copied). Keeps the old one when memory runs out. */
void dfd_reload_record_set_path(dfd_reload_plugin *rec, const char *path)
{
    char *copy;

    if (path == NULL || (rec->path != NULL && strcmp(rec->path, path) == 0))
        return;
    copy = strdup(path);
    if (copy == NULL)
        return;
    free(rec->path);
    rec->path = copy;
}

/* Records the outcome of an attempt; error (may be NULL) is copied. */
void dfd_reload_record_outcome(dfd_reload_plugin *rec, dfd_reload_outcome o, const char *error)
{
    free(rec->last_error);
    rec->last_error = error ? strdup(error) : NULL;
    rec->outcome = o;
    rec->last_time = time(NULL);
}

/* ---- lifetime and accessors ----------------------------------------------------------- */

/* See reload.h. */
dfd_reload *dfd_reload_new(dfd_server *srv)
{
    dfd_reload *r = calloc(1, sizeof(*r));

    if (r == NULL)
        goto oom;
    r->srv = srv;
    r->log_level = srv->cfg->log_level;
    r->log_target = srv->cfg->log_target;
    r->log_format = srv->cfg->log_format;
    r->access_log = srv->cfg->access_log;
    r->last_ok = 1;
    r->last_ok_time = time(NULL);
    r->retire_timer = evtimer_new(srv->base, dfd_reload_retire_tick, r);
    if (r->retire_timer == NULL)
        goto oom;
    for (size_t i = 0; i < srv->nplugins; i++) {
        dfd_plugin *p = srv->plugins[i];
        const dfd_plugin_conf *pc = NULL;
        for (size_t k = 0; k < srv->cfg->nplugins && pc == NULL; k++)
            if (strcmp(srv->cfg->plugins[k].name, p->name) == 0)
                pc = &srv->cfg->plugins[k];
        long at = dfd_reload_record_add(r, p->name);
        if (at == -1)
            goto oom;
        dfd_reload_plugin *rec = &r->plugins[at];
        rec->configured = 1;
        rec->current = p;
        rec->last_generation = p->generation;
        dfd_reload_record_set_path(rec, p->file);
        /* the file may have changed between the load and now: the first check compares
         * the bytes with the private copy instead of trusting a stat taken now */
        rec->applied_st_known = 0;
        if (pc != NULL && dfd_reload_conf_copy(&rec->applied, pc) == -1)
            goto oom;
    }
    return r;
oom:
    dfd_error("reload.oom", "msg=\"cannot set up hot reload\"");
    dfd_reload_free(r);
    return NULL;
}

/* See reload.h. */
void dfd_reload_free(dfd_reload *r)
{
    if (r == NULL)
        return;
    if (r->retire_timer != NULL)
        event_free(r->retire_timer);
    dfd_reload_retire_free(r);
    for (size_t i = 0; i < r->nplugins; i++) {
        dfd_reload_plugin *rec = &r->plugins[i];
        free(rec->name);
        free(rec->path);
        free(rec->last_error);
        dfd_reload_conf_free(&rec->applied);
    }
    free(r->plugins);
    free(r->last_error);
    free(r);
}

/* See reload.h. */
const dfd_reload_plugin *dfd_reload_find(const dfd_reload *r, const char *name)
{
    long at = r ? dfd_reload_record_index(r, name) : -1;

    return at == -1 ? NULL : &r->plugins[at];
}

/* See reload.h. */
const char *dfd_reload_outcome_name(dfd_reload_outcome o)
{
    switch (o) {
    case DFD_RELOAD_NONE:
        return "none";
    case DFD_RELOAD_LOADED:
        return "loaded";
    case DFD_RELOAD_UNCHANGED:
        return "unchanged";
    case DFD_RELOAD_FAILED:
        return "failed";
    case DFD_RELOAD_REMOVED:
        return "removed";
    }
    return "unknown";
}
