/*
 * admin-load.c - the admin socket's `load FILE` and `unload NAME`, done through the
 * reload engine (reload.h) so that a plugin loaded or unloaded by hand follows the same
 * path as any reload: private copy, ABI check, init, one table switch, old generation
 * drained and finalised.
 *
 * The engine reloads from the configuration directory plus the -o overrides
 * (srv->overrides). The admin keeps runtime overrides after main's:
 *   load FILE    adds "@FILE" (config.h: one more ini file read after the directory),
 *                or, when FILE is the ini of a plugin unloaded by hand, drops the
 *                override that disabled it;
 *   unload NAME  drops the "@FILE" that loaded NAME, or adds "NAME:plugin.enabled=no".
 * then runs dfd_reload_run(). When the plugin did not come (or go), the override is
 * put back as it was. The overrides last until daffid exits; SIGHUP and file-change
 * reloads keep applying them. They are not written anywhere: to make a change
 * permanent, change the configuration directory.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-int.h"
#include "log.h"
#include "paths.h"
#include "plugin-t.h"
#include "reload.h"
#include "sdnotify.h"
#include "server.h"

/* Points srv->overrides at main's list followed by the runtime overrides. Returns 0,
 * or -1 when memory ran out (nothing changed). */
static int overrides_publish(dfd_admin *adm)
{
    dfd_server *srv = adm->srv;
    if (!adm->base_saved) {
        adm->base_ov = srv->overrides;
        adm->nbase_ov = srv->noverrides;
        adm->base_saved = 1;
    }
    size_t n = adm->nbase_ov + adm->nrt;
    const char **ov = calloc(n + 1, sizeof(*ov));
    if (ov == NULL)
        return -1;
    for (size_t i = 0; i < adm->nbase_ov; i++)
        ov[i] = adm->base_ov[i];
    for (size_t i = 0; i < adm->nrt; i++)
        ov[adm->nbase_ov + i] = adm->rt[i].text;
    srv->overrides = ov;
    srv->noverrides = n;
    free(adm->ov);
    adm->ov = ov;
    return 0;
}

void admin_overrides_free(dfd_admin *adm)
{
    if (adm->base_saved) {
        adm->srv->overrides = adm->base_ov;
        adm->srv->noverrides = adm->nbase_ov;
    }
    for (size_t i = 0; i < adm->nrt; i++) {
        free(adm->rt[i].text);
        free(adm->rt[i].plugin);
        free(adm->rt[i].file);
    }
    free(adm->rt);
    free(adm->ov);
    adm->rt = NULL;
    adm->ov = NULL;
    adm->nrt = 0;
}

/* Appends a runtime override made of copies of the strings (plugin may be NULL).
 * Returns 0 or -1 (out of memory, nothing added). */
static int rt_add(dfd_admin *adm, const char *text, const char *plugin, const char *file)
{
    admin_override *grown = realloc(adm->rt, (adm->nrt + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    adm->rt = grown;
    admin_override *o = &adm->rt[adm->nrt];
    o->text = strdup(text);
    o->plugin = plugin ? strdup(plugin) : NULL;
    o->file = strdup(file);
    if (o->text == NULL || o->file == NULL || (plugin != NULL && o->plugin == NULL)) {
        free(o->text);
        free(o->plugin);
        free(o->file);
        return -1;
    }
    adm->nrt++;
    return 0;
}

/* Takes runtime override i out of the list into *out (the caller owns its strings). */
static void rt_take(dfd_admin *adm, size_t i, admin_override *out)
{
    *out = adm->rt[i];
    memmove(&adm->rt[i], &adm->rt[i + 1], (adm->nrt - i - 1) * sizeof(adm->rt[0]));
    adm->nrt--;
}

/* Puts a taken override back at the end (taking its strings). Returns 0 or -1. */
static int rt_put_back(dfd_admin *adm, admin_override *o)
{
    admin_override *grown = realloc(adm->rt, (adm->nrt + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    adm->rt = grown;
    adm->rt[adm->nrt++] = *o;
    return 0;
}

static void rt_free_one(admin_override *o)
{
    free(o->text);
    free(o->plugin);
    free(o->file);
}

/* A load or unload that did not take: puts the runtime overrides back as they were
 * (the one taken out returns when put_back, else the one just added goes) and reloads
 * again, so that the engine's view follows the overrides: whatever the first reload
 * applied is undone, and a plugin only the file declared is forgotten (reload.h: a
 * name nothing declares and that never loaded leaves no record). */
static void rt_undo(dfd_admin *adm, int put_back, admin_override *taken)
{
    if (put_back) {
        if (rt_put_back(adm, taken) == 0)
            taken->text = taken->plugin = taken->file = NULL;
    } else {
        admin_override added;
        rt_take(adm, adm->nrt - 1, &added);
        rt_free_one(&added);
    }
    overrides_publish(adm);
    dfd_errors again = {0};
    dfd_reload_run(adm->srv, NULL, &again);
    dfd_errors_free(&again);
}

/* The serving generation of the plugin called name, or NULL. */
static dfd_plugin *serving(const dfd_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->nplugins; i++)
        if (strcmp(srv->plugins[i]->name, name) == 0)
            return srv->plugins[i];
    return NULL;
}

/* Copies of the names of the serving plugins (NULL-terminated; the caller frees with
 * names_free). NULL when memory ran out. */
static char **names_serving(const dfd_server *srv)
{
    char **names = calloc(srv->nplugins + 1, sizeof(*names));
    for (size_t i = 0; names != NULL && i < srv->nplugins; i++)
        if ((names[i] = strdup(srv->plugins[i]->name)) == NULL)
            return names; /* shorter: at worst a plugin looks new */
    return names;
}

static void names_free(char **names)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        free(names[i]);
    free(names);
}

/* The first serving plugin whose name is not in before, or NULL. */
static dfd_plugin *first_new(const dfd_server *srv, char **before)
{
    for (size_t i = 0; i < srv->nplugins; i++) {
        int seen = 0;
        for (size_t k = 0; before != NULL && before[k] != NULL && !seen; k++)
            seen = strcmp(before[k], srv->plugins[i]->name) == 0;
        if (!seen)
            return srv->plugins[i];
    }
    return NULL;
}

/* Publishes the overrides and reloads, with the systemd notifications around it.
 * Returns what dfd_reload_run returned (-1 also when memory ran out); the caller looks
 * at the plugins serving afterwards to tell whether its change took. */
static int admin_reload(dfd_admin *adm, dfd_errors *errs)
{
    if (overrides_publish(adm) == -1) {
        dfd_errors_add(errs, "out of memory");
        return -1;
    }
    dfd_sdnotify_reloading();
    int rc = dfd_reload_run(adm->srv, NULL, errs);
    dfd_sdnotify_ready(adm->srv, rc == 0 ? "reloaded" : "reload failed");
    return rc;
}

/* The callbacks of p as a JSON array of names. New reference. */
static json_t *callbacks_json(const dfd_plugin *p)
{
    json_t *a = json_array();
    for (size_t k = 0; k < p->ncallbacks; k++) {
        json_t *s = json_string(p->callbacks[k].name);
        json_array_append_new(a, s ? s : json_null());
    }
    return a;
}

/* Answers load or unload after its reload: r (an ok reply, reference taken) gets every
 * message of errs as reload_errors; r NULL answers the error code, with detail
 * "what: first error" (fallback when errs is empty) and every message in errors.
 * Frees taken and errs. */
static void admin_load_answer(admin_client *c, const char *command, json_t *r,
                              const char *code, const char *what, const char *fallback,
                              dfd_errors *errs, admin_override *taken)
{
    if (r == NULL) {
        admin_send_error(c, command, code, json_pack("{s:o}", "errors", admin_errors(errs)),
                         0, "%s: %s", what, errs->count ? errs->msgs[0] : fallback);
    } else {
        /* the reload also applied whatever else changed; its failures are reported */
        json_object_set_new(r, "reload_errors", admin_errors(errs));
        admin_send(c, r);
    }
    rt_free_one(taken);
    dfd_errors_free(errs);
}

/* Whether admin `load` may read real (a resolved path): 1 when it lies under one of
 * [admin] load_paths, or under the configuration directory when none is set (each
 * resolved now: a directory that does not exist holds nothing). 0 otherwise. dirs
 * (size n) gets the list as the operator wrote it, for the refusal. */
static int load_allowed(const dfd_config *cfg, const char *real, char *dirs, size_t n)
{
    const char *const *list = (const char *const *)cfg->admin_load_paths;
    size_t count = cfg->nadmin_load_paths;
    size_t used = 0;
    int ok = 0;

    if (count == 0) {
        list = (const char *const *)&cfg->dir;
        count = 1;
    }
    dirs[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        char dir[PATH_MAX];
        if (realpath(list[i], dir) != NULL && dfd_path_within(real, dir))
            ok = 1;
        if (used < n)
            used += (size_t)snprintf(dirs + used, n - used, "%s%s", i ? ", " : "", list[i]);
    }
    return ok;
}

/* Common refusals of load and unload. Returns 1 when c was answered. */
static int admin_load_refused(admin_client *c, const char *command)
{
    dfd_server *srv = c->adm->srv;
    if (srv->reload == NULL) {
        admin_send_error(c, command, "internal", NULL, 0,
                         "hot reload is not available in this process");
        return 1;
    }
    if (atomic_load(&srv->draining)) {
        admin_send_error(c, command, "shutting_down", NULL, 0,
                         "daffid is shutting down: nothing is loaded or unloaded");
        return 1;
    }
    return 0;
}

void admin_cmd_load(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    const char *file = argv[0];
    (void)cmd;
    (void)argc;
    dfd_admin *adm = c->adm;
    dfd_server *srv = adm->srv;
    char real[PATH_MAX], text[PATH_MAX + 2], dirs[600];
    dfd_errors errs = {0};
    admin_override taken = {0};
    int reenable = 0;

    if (admin_load_refused(c, "load"))
        return;
    if (file[0] != '/') {
        admin_send_error(c, "load", "bad_arguments", NULL, 0,
                         "FILE must be an absolute path to a plugin's ini file (got "
                         "'%.200s')", file);
        return;
    }
    if (realpath(file, real) == NULL) {
        admin_send_error(c, "load", "load_failed", NULL, 0, "cannot use %.200s: %s", file,
                         strerror(errno));
        return;
    }
    if (load_allowed(srv->cfg, real, dirs, sizeof(dirs)) != 1) {
        admin_send_error(c, "load", "denied", NULL, 0, "%.200s is not under %s: load "
                         "reads only files there ([admin] load_paths)", real, dirs);
        return;
    }
    for (size_t i = 0; i < adm->nrt; i++) {
        admin_override *o = &adm->rt[i];
        if (strcmp(o->file, real) != 0)
            continue;
        if (o->text[0] == '@') {
            admin_send_error(c, "load", "load_failed", NULL, 0,
                             "%.200s is loaded already (plugin '%s')", real,
                             o->plugin ? o->plugin : "?");
            return;
        }
        rt_take(adm, i, &taken); /* it disabled this file's plugin: enable it again */
        reenable = 1;
        break;
    }
    for (size_t i = 0; !reenable && i < srv->nplugins; i++) {
        char ini[PATH_MAX];
        const dfd_plugin *p = srv->plugins[i];
        if (p->ini != NULL && realpath(p->ini, ini) != NULL && strcmp(ini, real) == 0) {
            admin_send_error(c, "load", "load_failed", NULL, 0,
                             "%.200s declares plugin '%s', which is serving already "
                             "(reload %s loads a new generation)", real, p->name, p->name);
            return;
        }
    }
    snprintf(text, sizeof(text), "@%s", real);
    if (!reenable && rt_add(adm, text, NULL, real) == -1) {
        admin_send_error(c, "load", "internal", NULL, 0, "out of memory");
        return;
    }
    char **before = names_serving(srv);
    dfd_info("admin.load", "uid=%ld file=%s", c->uid, real);
    admin_reload(adm, &errs); /* what it met is in errs; whether it took is below */
    dfd_plugin *p = reenable ? serving(srv, taken.plugin) : first_new(srv, before);
    names_free(before);
    if (p == NULL) {
        rt_undo(adm, reenable, &taken);
        snprintf(text, sizeof(text), "%.200s", real);
        admin_load_answer(c, "load", NULL, "load_failed", text,
                          "it declares no plugin to load", &errs, &taken);
        return;
    }
    if (!reenable) {
        free(adm->rt[adm->nrt - 1].plugin);
        adm->rt[adm->nrt - 1].plugin = strdup(p->name);
    }
    json_t *r = admin_ok("load");
    json_object_set_new(r, "plugin", json_string(p->name));
    json_object_set_new(r, "generation", json_integer(p->generation));
    json_object_set_new(r, "file", json_string(real));
    json_object_set_new(r, "callbacks", callbacks_json(p));
    admin_load_answer(c, "load", r, NULL, NULL, NULL, &errs, &taken);
}

void admin_cmd_unload(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    const char *name = argv[0];
    (void)cmd;
    (void)argc;
    dfd_admin *adm = c->adm;
    dfd_server *srv = adm->srv;
    dfd_errors errs = {0};
    admin_override taken = {0};
    int dropped = 0;

    if (admin_load_refused(c, "unload"))
        return;
    dfd_plugin *p = serving(srv, name);
    if (p == NULL) {
        admin_send_error(c, "unload", "no_such_plugin", NULL, 0,
                         "no plugin named '%.100s' is serving (see plugins)", name);
        return;
    }
    unsigned generation = p->generation;
    char ini[PATH_MAX], text[300];
    if (p->ini == NULL || realpath(p->ini, ini) == NULL)
        snprintf(ini, sizeof(ini), "%s", p->ini ? p->ini : "");
    for (size_t i = 0; i < adm->nrt; i++) {
        if (adm->rt[i].text[0] == '@' && adm->rt[i].plugin != NULL &&
            strcmp(adm->rt[i].plugin, name) == 0) {
            rt_take(adm, i, &taken); /* loaded by hand: forget its file */
            dropped = 1;
            break;
        }
    }
    snprintf(text, sizeof(text), "%s:plugin.enabled=no", name);
    if (!dropped && rt_add(adm, text, name, ini) == -1) {
        admin_send_error(c, "unload", "internal", NULL, 0, "out of memory");
        return;
    }
    dfd_info("admin.unload", "uid=%ld plugin=%s generation=%u", c->uid, name, generation);
    admin_reload(adm, &errs); /* what it met is in errs; whether it took is below */
    if (serving(srv, name) != NULL) {
        rt_undo(adm, dropped, &taken);
        snprintf(text, sizeof(text), "plugin '%s' still serves", name);
        admin_load_answer(c, "unload", NULL, "unload_failed", text, "the reload kept it",
                          &errs, &taken);
        return;
    }
    json_t *r = admin_ok("unload");
    json_object_set_new(r, "plugin", json_string(name));
    json_object_set_new(r, "generation", json_integer(generation));
    json_object_set_new(r, "ini", json_string(ini));
    admin_load_answer(c, "unload", r, NULL, NULL, NULL, &errs, &taken);
}
