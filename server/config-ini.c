/*
 * config-ini.c - reads the configuration directory: every "*.ini" in strcmp order
 * (dotfiles and other extensions skipped), each through inih with our own line reader.
 *
 * Why our own reader (cfg_read_line): Debian's inih is built without line numbers in
 * the handler and reports only the first syntax error. The reader counts the lines it
 * hands out (the handler runs right after the line holding its key), sees every
 * [section] header (so an unknown or empty section is refused on its own line even
 * without keys), rejects broken lines itself so that all of them are reported, and
 * hands inih key lines without leading blanks (so inih's multi-line continuation never
 * turns an indented key into a value). inih only ever sees "key = value" lines; it
 * splits them and strips inline comments. A key line longer than inih's 200-byte line
 * buffer is split by the same rules here instead of being cut.
 *
 * The meaning of each key is config-keys.c's business (dfd_cfg_server_key, ...).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <ini.h>

#include "config-int.h"

/* The longest line read (past it a line is refused); inih's own buffer is smaller,
 * longer key lines are split by cfg_long_line(). */
#define CFG_MAX_LINE 65536

/* A key seen in one section of one file, to reject a key given twice. */
typedef struct cfg_seen {
    dfd_cfg_sect sect;
    char *key;
    unsigned line;
} cfg_seen;

/* The state of one ini file while inih reads it (the reader's stream and the
 * handler's user pointer). */
typedef struct cfg_file {
    dfd_cfg_loader *ld;
    const char *path;
    FILE *fp;
    char *buf;           /* getline buffer; owned */
    size_t cap;
    unsigned line;       /* lines handed to inih so far = the line being handled */
    dfd_cfg_sect sect;
    unsigned plugin_line; /* line of the [plugin] header, 0 when none */
    unsigned config_line; /* line of the first [config] header, 0 when none */
    dfd_plugin_conf plug; /* the plugin this file declares, being built */
    dfd_cfg_plugin_meta meta;
    cfg_seen *seen;
    size_t nseen, seen_cap;
} cfg_file;

/* Remembers (sect, key) for f. Returns the line of an earlier occurrence, 0 for the
 * first one (and then records it), or 0 without recording when memory runs out (a
 * missed duplicate is better than a false one). */
static unsigned cfg_seen_before(cfg_file *f, dfd_cfg_sect sect, const char *key)
{
    char *copy;

    for (size_t i = 0; i < f->nseen; i++)
        if (f->seen[i].sect == sect && strcmp(f->seen[i].key, key) == 0)
            return f->seen[i].line;
    if (f->nseen == f->seen_cap) {
        size_t cap = f->seen_cap ? f->seen_cap * 2 : 16;
        cfg_seen *grown = realloc(f->seen, cap * sizeof(*grown));
        if (grown == NULL)
            return 0;
        f->seen = grown;
        f->seen_cap = cap;
    }
    if ((copy = strdup(key)) == NULL)
        return 0;
    f->seen[f->nseen].sect = sect;
    f->seen[f->nseen].key = copy;
    f->seen[f->nseen].line = f->line;
    f->nseen++;
    return 0;
}

/* Handles a "[name]" header at f->line (name already trimmed): switches f->sect or
 * records why the section is refused. */
static void cfg_header(cfg_file *f, const char *name)
{
    dfd_cfg_loader *ld = f->ld;
    dfd_cfg_sect s;

    s = dfd_cfg_sect_find(name);
    f->sect = DFD_SECT_SKIP;
    if (*name == '\0') {
        dfd_cfg_err(ld, f->path, f->line, NULL, NULL, "[]",
                    "empty section name (sections: server, limits, log, admin, plugin, config)");
        return;
    }
    if (s == DFD_SECT_SKIP) {
        dfd_cfg_err(ld, f->path, f->line, name, NULL, NULL,
                    "unknown section (sections: server, limits, log, admin, plugin, config)");
        return;
    }
    if (s == DFD_SECT_PLUGIN) {
        if (f->plugin_line != 0) {
            dfd_cfg_err(ld, f->path, f->line, "plugin", NULL, NULL,
                        "second [plugin] section in one file (the first is at line %u; "
                        "one file declares one plugin)", f->plugin_line);
            return;
        }
        f->plugin_line = f->line;
    }
    if (s == DFD_SECT_CONFIG && f->config_line == 0)
        f->config_line = f->line;
    f->sect = s;
}

static int cfg_on_key(void *user, const char *section, const char *key,
                      const char *value);

/* A key line too long for inih's line buffer (Debian builds it with 200 bytes): splits
 * it here by inih's own rules (name and value trimmed, a ';' after a blank starts a
 * comment) and handles it as inih would have. s is the line without leading blanks,
 * sep its '=' or ':'; both point into f->buf, which is modified. */
static void cfg_long_line(cfg_file *f, char *s, char *sep)
{
    char *name_end = sep, *value = sep + 1, *c;
    int was_space = 0;

    while (name_end > s && isspace((unsigned char)name_end[-1]))
        name_end--;
    *name_end = '\0';
    while (isspace((unsigned char)*value))
        value++;
    for (c = value; *c != '\0'; c++) {
        if (was_space && *c == ';') {
            *c = '\0';
            break;
        }
        was_space = isspace((unsigned char)*c);
    }
    while (c > value && isspace((unsigned char)c[-1]))
        *--c = '\0';
    cfg_on_key(f, NULL, s, value);
}

/* inih's reader: fills str (num bytes) with the next line of f, or returns NULL at the
 * end. Counts lines; checks headers and syntax itself and hands inih an empty line for
 * headers, broken lines and key lines too long for str (handled by cfg_long_line), so
 * inih only ever sees "key = value" lines, without leading blanks. */
static char *cfg_read_line(char *str, int num, void *stream)
{
    cfg_file *f = stream;
    dfd_cfg_loader *ld = f->ld;
    ssize_t got = getline(&f->buf, &f->cap, f->fp);
    char *s, *end, *p;
    int was_space = 0;

    if (got == -1)
        return NULL;
    f->line++;
    str[0] = '\n';
    str[1] = '\0';
    if (memchr(f->buf, '\0', (size_t)got) != NULL) {
        dfd_cfg_err(ld, f->path, f->line, NULL, NULL, NULL, "NUL byte in the line");
        return str;
    }
    s = f->buf;
    if (f->line == 1 && got >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    if (*s == '\0' || *s == ';' || *s == '#')
        return str;
    if (end - s > CFG_MAX_LINE) {
        dfd_cfg_err(ld, f->path, f->line, NULL, NULL, NULL,
                    "line longer than %d characters", CFG_MAX_LINE);
        return str;
    }
    if (*s == '[') {
        char *close = strchr(s, ']'), *name = s + 1, *tail;
        if (close == NULL) {
            dfd_cfg_err(ld, f->path, f->line, NULL, NULL, s,
                        "section header without ']'");
            f->sect = DFD_SECT_SKIP;
            return str;
        }
        tail = close + 1;
        while (*tail == ' ' || *tail == '\t')
            tail++;
        if (*tail != '\0' && *tail != ';' && *tail != '#') {
            dfd_cfg_err(ld, f->path, f->line, NULL, NULL, s,
                        "text after the section header");
            f->sect = DFD_SECT_SKIP;
            return str;
        }
        *close = '\0';
        while (*name == ' ' || *name == '\t')
            name++;
        while (close > name && (close[-1] == ' ' || close[-1] == '\t'))
            *--close = '\0';
        cfg_header(f, name);
        return str;
    }
    /* A key line needs '=' (or ':') before any inline comment, as inih reads it. */
    for (p = s; *p != '\0' && *p != '=' && *p != ':' && !(was_space && *p == ';'); p++)
        was_space = isspace((unsigned char)*p);
    if (*p != '=' && *p != ':') {
        dfd_cfg_err(ld, f->path, f->line, NULL, NULL, s, "expected 'key = value'");
        return str;
    }
    if (end - s > num - 3) {
        cfg_long_line(f, s, p);
        return str;
    }
    memcpy(str, s, (size_t)(end - s));
    str[end - s] = '\n';
    str[end - s + 1] = '\0';
    return str;
}

/* inih's handler: one "key = value" of f at f->line, in f->sect (inih's own section
 * argument is ignored: the reader tracks sections). Always returns 1: problems are
 * recorded, not reported to inih. */
static int cfg_on_key(void *user, const char *section, const char *key,
                      const char *value)
{
    cfg_file *f = user;
    dfd_cfg_loader *ld = f->ld;
    dfd_cfg_where at = { f->path, f->line };
    const char *sect = dfd_cfg_sect_name(f->sect), *why;
    unsigned first;

    (void)section;
    if (f->sect == DFD_SECT_SKIP)
        return 1;
    if (f->sect == DFD_SECT_NONE) {
        dfd_cfg_err(ld, f->path, f->line, NULL, key, value,
                    "key outside any section (put it under [server], [limits], [log], [admin], "
                    "[plugin] or [config])");
        return 1;
    }
    if (*key == '\0') {
        dfd_cfg_err(ld, f->path, f->line, sect, NULL, value, "empty key");
        return 1;
    }
    if ((first = cfg_seen_before(f, f->sect, key)) != 0) {
        dfd_cfg_err(ld, f->path, f->line, sect, key, value,
                    "given twice in this section (first at line %u)", first);
        return 1;
    }
    switch (f->sect) {
    case DFD_SECT_PLUGIN:
        why = dfd_cfg_plugin_key(ld, &f->plug, &f->meta, key, value, at);
        if (why != NULL)
            dfd_cfg_err(ld, f->path, f->line, sect, key, value, "%s", why);
        break;
    case DFD_SECT_CONFIG:
        if ((why = dfd_cfg_config_key(&f->plug, &f->meta, key, value)) != NULL)
            dfd_cfg_err(ld, f->path, f->line, sect, key, value, "%s", why);
        break;
    default:
        dfd_cfg_server_key(ld, f->sect, key, value, at);
        break;
    }
    return 1;
}

/* Ends f: checks the plugin it declares and hands it to the config (then f no longer
 * owns it), or reports why not. */
static void cfg_file_finish(cfg_file *f)
{
    dfd_cfg_loader *ld = f->ld;
    dfd_plugin_conf *p = &f->plug;

    if (f->plugin_line == 0) {
        if (f->config_line != 0)
            dfd_cfg_err(ld, f->path, f->config_line, "config", NULL, NULL,
                        "section in a file without [plugin] (a [config] section "
                        "belongs to the plugin its file declares)");
        return;
    }
    if (p->name == NULL)
        dfd_cfg_err(ld, f->path, f->plugin_line, "plugin", "name",
                    NULL, "missing (every [plugin] needs name and path)");
    if (f->meta.raw_path == NULL)
        dfd_cfg_err(ld, f->path, f->plugin_line, "plugin", "path",
                    NULL, "missing (every [plugin] needs name and path)");
    if (p->name == NULL || f->meta.raw_path == NULL)
        return;
    dfd_cfg_add_plugin(ld, f->path, f->plugin_line, p, &f->meta);
}

/* Reads the ini file at path (owned by ld->files) into ld. */
static void cfg_read_file(dfd_cfg_loader *ld, const char *path)
{
    cfg_file f;
    struct stat st;
    int fd, rc;

    memset(&f, 0, sizeof(f));
    f.ld = ld;
    f.path = path;
    dfd_cfg_plugin_init(&f.plug);
    /* O_NONBLOCK: a FIFO named "x.ini" must not hang the load before fstat sees it. */
    if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
        dfd_cfg_err(ld, path, 0, NULL, NULL, NULL, "cannot open: %s", strerror(errno));
        return;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        dfd_cfg_err(ld, path, 0, NULL, NULL, NULL, "not a regular file");
        close(fd);
        return;
    }
    if ((f.fp = fdopen(fd, "r")) == NULL) {
        dfd_cfg_oom(ld, path, 0);
        close(fd);
        return;
    }
    rc = ini_parse_stream(cfg_read_line, &f, cfg_on_key, &f);
    if (ferror(f.fp))
        dfd_cfg_err(ld, path, f.line, NULL, NULL, NULL, "read error: %s",
                    strerror(errno));
    else if (rc == -2)
        dfd_cfg_oom(ld, path, f.line);
    else if (rc > 0)
        /* inih refused a line our reader let through: report it rather than miss it. */
        dfd_cfg_err(ld, path, (unsigned)rc, NULL, NULL, NULL, "syntax error");
    cfg_file_finish(&f);
    fclose(f.fp);
    free(f.buf);
    for (size_t i = 0; i < f.nseen; i++)
        free(f.seen[i].key);
    free(f.seen);
    dfd_cfg_plugin_free(&f.plug);
    free(f.meta.raw_path);
}

/* See config-int.h. The path is copied into ld->files, where the plugin's
 * dfd_cfg_where points until the load ends. */
int dfd_cfg_read_extra(dfd_cfg_loader *ld, const char *path)
{
    char **grown = realloc(ld->files, (ld->nfiles + 2) * sizeof(*grown));
    char *copy;

    if (grown == NULL) {
        dfd_cfg_oom(ld, path, 0);
        return -1;
    }
    ld->files = grown;
    if ((copy = strdup(path)) == NULL) {
        dfd_cfg_oom(ld, path, 0);
        return -1;
    }
    ld->files[ld->nfiles++] = copy;
    ld->files[ld->nfiles] = NULL;
    cfg_read_file(ld, copy);
    return 0;
}

/* scandir filter: "*.ini", not a dotfile. */
static int cfg_is_ini(const struct dirent *d)
{
    size_t n = strlen(d->d_name);

    return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".ini") == 0;
}

/* scandir order: plain strcmp, whatever the locale. */
static int cfg_namecmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* See config-int.h. The paths opened are kept in ld->files (owned by ld) because the
 * plugins' dfd_cfg_where point into them until the load ends. */
int dfd_cfg_read_dir(dfd_cfg_loader *ld, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, cfg_is_ini, cfg_namecmp);
    int rc = 0;

    if (n == -1) {
        dfd_cfg_err(ld, dir, 0, NULL, NULL, NULL, "cannot read the configuration "
                    "directory: %s", strerror(errno));
        return -1;
    }
    if ((ld->files = calloc((size_t)n + 1, sizeof(*ld->files))) == NULL) {
        dfd_cfg_oom(ld, dir, 0);
        rc = -1;
    }
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            char *path = dfd_cfg_join(dir, names[i]->d_name);
            if (path == NULL) {
                dfd_cfg_oom(ld, dir, 0);
                rc = -1;
            } else {
                ld->files[ld->nfiles++] = path;
                cfg_read_file(ld, path);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}
