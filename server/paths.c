/*
 * paths.c - confinement of files to directories (see paths.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "paths.h"

/* See paths.h. */
int dfd_path_within(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (strncmp(path, dir, n) != 0)
        return 0;
    return path[n] == '\0' || path[n] == '/' || (n == 1 && dir[0] == '/');
}

/* See paths.h. */
int dfd_fd_within(int fd, const char *dir, char *out, size_t n)
{
    char link[64];
    ssize_t len;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    len = n > 1 ? readlink(link, out, n - 1) : -1;
    if (len == -1) {
        snprintf(out, n, "(unknown)");
        return -1;
    }
    out[len] = '\0';
    return dfd_path_within(out, dir);
}
