/*
 * admin_socket.c - where daffictl finds daffid's admin socket: the way the server was
 * configured. In order:
 *   1. -a SOCKET
 *   2. $DAFFID_ADMIN
 *   3. -c DIR: the [admin] socket DIR's ini files set (read as daffid reads them: every
 *      *.ini in alphabetical order, dotfiles skipped, a later file's key wins)
 *   4. ./conf.d when it is a directory (the tree's `make run` is `daffid -c conf.d`),
 *      then CTL_CONFDIR (the packaged configuration), the same way
 *   5. CTL_DEFAULT_ADMIN
 * A directory whose files set no [admin] socket passes to the next place; one that
 * turns the socket off (an empty value) says so. `-o admin.socket=...` given to daffid
 * is not visible here: pass -a.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daffictl.h"

/* Strips blanks at both ends of s, in place. Returns s. */
static char *trim(char *s)
{
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                     s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Reads the [admin] socket key of the ini file path into a (a later one replaces an
 * earlier one). Returns 0 (found or not), or -1 when the file cannot be read. */
static int read_ini(const char *path, ctl_admin *a)
{
    FILE *f = fopen(path, "r");
    char line[4096], *s, *eq, *c;
    int in_admin = 0, lineno = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        s = trim(line);
        if (*s == ';' || *s == '#' || *s == '\0')
            continue;
        if (*s == '[') {
            in_admin = strncmp(s, "[admin]", 7) == 0;
            continue;
        }
        if (!in_admin || (eq = strchr(s, '=')) == NULL)
            continue;
        *eq = '\0';
        if (strcmp(trim(s), "socket") != 0)
            continue;
        s = trim(eq + 1);
        /* an inline comment starts at ';' or '#' after a blank, as daffid reads it */
        for (c = s; *c != '\0'; c++)
            if ((*c == ';' || *c == '#') && c > s && (c[-1] == ' ' || c[-1] == '\t')) {
                *c = '\0';
                break;
            }
        snprintf(a->path, sizeof(a->path), "%s", trim(s));
        snprintf(a->origin, sizeof(a->origin), "[admin] socket of %s:%d", path, lineno);
        a->found = 1;
    }
    fclose(f);
    return 0;
}

static int by_name(const struct dirent **x, const struct dirent **y)
{
    return strcmp((*x)->d_name, (*y)->d_name);
}

/* Reads the [admin] socket that the configuration directory dir sets into a. Returns
 * 1 when a file there sets it, 0 when none does, -1 when dir cannot be read. */
static int read_dir(const char *dir, ctl_admin *a)
{
    struct dirent **names;
    char path[4096];
    int n, i;
    size_t len;

    a->found = 0;
    n = scandir(dir, &names, NULL, by_name);
    if (n == -1)
        return -1;
    for (i = 0; i < n; i++) {
        len = strlen(names[i]->d_name);
        if (names[i]->d_name[0] != '.' && len > 4 &&
            strcmp(names[i]->d_name + len - 4, ".ini") == 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
            read_ini(path, a);
        }
        free(names[i]);
    }
    free(names);
    return a->found;
}

/* Returns 1 when path is a directory. */
static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* See daffictl.h. */
int ctl_admin_find(const ctl_opts *o, ctl_admin *a)
{
    static const char *const dirs[] = {"conf.d", CTL_CONFDIR};
    const char *env = getenv("DAFFID_ADMIN");
    size_t i;

    memset(a, 0, sizeof(*a));
    if (o->admin != NULL) {
        snprintf(a->path, sizeof(a->path), "%s", o->admin);
        snprintf(a->origin, sizeof(a->origin), "-a");
    } else if (env != NULL && env[0] != '\0') {
        snprintf(a->path, sizeof(a->path), "%s", env);
        snprintf(a->origin, sizeof(a->origin), "$DAFFID_ADMIN");
    } else if (o->confdir != NULL) {
        if (read_dir(o->confdir, a) == -1) {
            fprintf(stderr, "daffictl: -c %s: %s\n", o->confdir, strerror(errno));
            return -1;
        }
        if (!a->found) {
            fprintf(stderr, "daffictl: -c %s: no ini file there sets [admin] socket, so that "
                    "daffid has no admin socket\n", o->confdir);
            return -1;
        }
    } else {
        for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !a->found; i++)
            if (is_dir(dirs[i]))
                read_dir(dirs[i], a);
        if (!a->found) {
            snprintf(a->path, sizeof(a->path), "%s", CTL_DEFAULT_ADMIN);
            snprintf(a->origin, sizeof(a->origin), "the default");
        }
    }
    if (a->path[0] == '\0') {
        fprintf(stderr, "daffictl: the %s turns daffid's admin socket off\n", a->origin);
        return -1;
    }
    return 0;
}
