/*
 * reload-int.h - what the rooms of the reload engine share; private to reload.c,
 * reload-compare.c and reload-retire.c (nothing else includes it).
 *
 * reload.c owns a reload from start to end (read, plan, load, accept, commit);
 * reload-records.c the per-plugin records and the engine's lifetime. reload-compare.c says what changed (and quotes log fields).
 * reload-retire.c switches the
 * loops' table and finalises the generations that left it. Main thread only, all of it.
 */
#ifndef DFD_RELOAD_INT_H
#define DFD_RELOAD_INT_H

#include <stddef.h>
#include <sys/stat.h>

#include <event2/util.h>

#include "config.h"
#include "reload.h"

struct dfd_server;
struct dfd_table;

/* ---- reload-records.c ---- */

/* The index of the record for name, or -1. */
long dfd_reload_record_index(const dfd_reload *r, const char *name);
/* The index of the record for name, appending an empty one when there is none
 * (pointers into r->plugins are invalid afterwards); -1 when out of memory. */
long dfd_reload_record_add(dfd_reload *r, const char *name);
/* Sets rec->path to path (copied); keeps the old one when memory runs out. */
void dfd_reload_record_set_path(dfd_reload_plugin *rec, const char *path);
/* Records the outcome of an attempt; error (may be NULL) is copied. */
void dfd_reload_record_outcome(dfd_reload_plugin *rec, dfd_reload_outcome o,
                               const char *error);

/* ---- reload-compare.c ---- */


/* Deep-copies src into dst (zeroed, or released by dfd_reload_conf_free). Returns 0,
 * or -1 when memory runs out (dst then holds what was copied). */
int dfd_reload_conf_copy(dfd_plugin_conf *dst, const dfd_plugin_conf *src);
/* Frees what dfd_reload_conf_copy() put into c and zeroes it. */
void dfd_reload_conf_free(dfd_plugin_conf *c);
/* Returns NULL when a generation loaded from a would load the same from b, else which
 * part differs: "path", "settings" or "config" (static text). */
const char *dfd_reload_conf_difference(const dfd_plugin_conf *a, const dfd_plugin_conf *b);
/* Returns 1 when both stat results name the same unchanged file. */
int dfd_reload_stat_same(const struct stat *a, const struct stat *b);
/* Returns 1 when the two files hold the same bytes, 0 when they differ or either
 * cannot be read. */
int dfd_reload_files_same(const char *a, const char *b);
/* Compares the server sections of the running configuration with a new one: logs each
 * setting that needs a restart (reload.restart_required), applies [log] when the file
 * changed it. Returns how many settings need a restart. */
unsigned dfd_reload_server_settings(dfd_reload *r, const dfd_config *run,
                                    const dfd_config *nc);

/* ---- reload-retire.c ---- */

/* Posts t to every loop (one reference each) and makes it srv->table, releasing the
 * server's reference on the previous table. Takes over the caller's reference on t. */
void dfd_reload_switch_table(struct dfd_server *srv, struct dfd_table *t);
/* Moves the caller's reference on gen (out of the table already) to the retiring
 * list; it is finalised once drained and fenced. */
void dfd_reload_retire(dfd_reload *r, dfd_plugin *gen);
/* The retire timer's callback (arg: the dfd_reload). */
void dfd_reload_retire_tick(evutil_socket_t fd, short what, void *arg);
/* Forgets the records of names the configuration just read does not declare and that
 * never loaded (a failed admin `load`, an ini whose first load failed and that was then
 * removed): they hold no generation number to continue and no state to report, and
 * would otherwise be listed by every later reply. Call once the run's plan, indexed by
 * record, is no longer used. */
void dfd_reload_forget(dfd_reload *r);
/* Releases the fence and every retiring generation (at exit, after the loops). */
void dfd_reload_retire_free(dfd_reload *r);

#endif /* DFD_RELOAD_INT_H */
