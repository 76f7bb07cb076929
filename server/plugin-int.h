/*
 * plugin-int.h - what plugin.c and plugin-file.c share (nothing else includes it).
 */
#ifndef DFD_PLUGIN_INT_H
#define DFD_PLUGIN_INT_H

#include "config.h"

/* Appends "FILE: reason" to errs (may be NULL), the reason formatted printf-style. */
void dfd_plugin_error(dfd_errors *errs, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Opens pc->path once, checks it (a regular ELF file; under pc->confine_dir when set)
 * and copies it from that descriptor to a new private file in private_dir, whose ELF
 * layout is then checked (segments inside the file). Returns the copy's path (the
 * caller unlinks and frees it), or NULL with the reason in errs and no file left. */
char *dfd_plugin_copy_file(const dfd_plugin_conf *pc, const char *private_dir,
                           unsigned generation, dfd_errors *errs);

#endif /* DFD_PLUGIN_INT_H */
