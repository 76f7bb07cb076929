/*
 * table.h - the callback table: method name -> callback of a plugin generation.
 *
 * A table is immutable once built and reference counted: the server holds the
 * current one and each loop holds the one it switched to last. A reload builds a new
 * table and hands it to every loop; the old one is freed when its last holder lets go.
 * A table holds a reference on every plugin generation it names.
 */
#ifndef DFD_TABLE_H
#define DFD_TABLE_H

#include <stdatomic.h>
#include <stddef.h>

#include "config.h"
#include "plugin-t.h"

typedef struct dfd_table {
    atomic_long refs;
    dfd_plugin **plugins;       /* generations, one reference each; owned array */
    size_t nplugins;
    const dfd_callback **slots; /* open addressing, power-of-two size; owned array */
    size_t mask;
    size_t ncallbacks;
} dfd_table;

/* The hash of a callback name (FNV-1a), for every name table of the server. */
size_t dfd_name_hash(const char *name, size_t len);

/* Builds a table over the plugins (taking a reference on each). Returns NULL with a
 * message in errs when two plugins expose the same callback name (naming both). */
dfd_table *dfd_table_build(dfd_plugin *const *plugins, size_t nplugins, dfd_errors *errs);

/* Looks a method up; name need not be NUL-terminated. NULL when absent. */
const dfd_callback *dfd_table_find(const dfd_table *t, const char *name, size_t len);

/* 1 when both tables expose the same callback names (order aside). */
int dfd_table_same_callbacks(const dfd_table *a, const dfd_table *b);

void dfd_table_retain(dfd_table *t);
void dfd_table_release(dfd_table *t);

#endif /* DFD_TABLE_H */
