/*
 * plugin.h - loading and releasing plugin generations.
 */
#ifndef DFD_PLUGIN_H
#define DFD_PLUGIN_H

#include "config.h"
#include "plugin-t.h"

/* Loads one generation of the plugin pc declares: copies pc->path to a private file
 * in private_dir (so dlopen never returns a cached handle of an older file), dlopens
 * it RTLD_NOW|RTLD_LOCAL, checks the descriptor (symbol present, abi_major equal,
 * abi_minor not newer, size, name, callbacks: non-empty names, no "daffi." prefix, no
 * duplicates, a handler each) and runs init(). On success returns 0 and *out, a
 * generation holding one reference (the caller's). On failure returns -1, appends
 * "FILE: reason" to errs, and leaves nothing behind (no mapping, no private copy). */
int dfd_plugin_load(const dfd_plugin_conf *pc, const char *private_dir,
                    unsigned generation, dfd_plugin **out, dfd_errors *errs);

/* Loads a generation from the .so at path as it is, without a private copy (a child
 * process's inherited descriptor, /proc/self/fd/N): dlopen, the checks, [config] and
 * init as dfd_plugin_load; messages name pc->path. private_path stays NULL, so nothing
 * is unlinked at the end. Returns 0 and *out, or -1 with "FILE: reason" in errs. */
int dfd_plugin_open(const dfd_plugin_conf *pc, const char *path, unsigned generation,
                    dfd_plugin **out, dfd_errors *errs);

/* A generation that this process does not load (isolation = process): the checked
 * private copy of pc's .so (served to child processes from it) and pc's settings,
 * with no mapping, no descriptor and no callbacks; the caller (isolate.c) fills desc,
 * callbacks, iso, forward and fini_hook. Returns 0 and *out (one reference), or -1
 * with the reason in errs and nothing left behind. */
int dfd_plugin_shell(const dfd_plugin_conf *pc, const char *private_dir,
                     unsigned generation, dfd_plugin **out, dfd_errors *errs);

/* Reference counting. dfd_plugin_release() of the last reference runs fini (if init
 * succeeded), dlcloses, unlinks the private copy and frees the generation. Both are
 * safe from any thread. */
void dfd_plugin_retain(dfd_plugin *p);
void dfd_plugin_release(dfd_plugin *p);

#endif /* DFD_PLUGIN_H */
