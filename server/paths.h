/*
 * paths.h - confinement of files to directories: [server] plugin_paths = strict (the
 * configuration and the plugin loader) and [admin] load_paths (admin `load`).
 *
 * Both sides of a test are resolved paths (realpath: absolute, no symlink, no "." or
 * ".." component), so that a string prefix is a directory relation. Pure functions
 * apart from the one system call each names; any thread.
 */
#ifndef DFD_PATHS_H
#define DFD_PATHS_H

#include <stddef.h>

/* 1 when path is dir or lies below it. Both must be resolved already for the answer to
 * mean anything; "/a/bc" is not below "/a/b". */
int dfd_path_within(const char *path, const char *dir);

/* Resolves the file open as fd to its path (the kernel's name for it, via
 * /proc/self/fd) into out (size n) and tells whether it lies under dir (resolved).
 * Returns 1 (under), 0 (not under) or -1 when it cannot be told (out then holds
 * "(unknown)"). */
int dfd_fd_within(int fd, const char *dir, char *out, size_t n);

#endif /* DFD_PATHS_H */
