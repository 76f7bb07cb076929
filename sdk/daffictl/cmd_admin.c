/*
 * cmd_admin.c - daffictl's admin subcommands: one command line to daffid's admin socket
 * (found by admin_socket.c), one JSON reply back, shown as a table (admin_view.c) or,
 * with --json/--pretty, as the raw reply.
 *
 * Exit codes: 0 for an "ok" reply; an error reply maps its code (ctl_admin_exit);
 * 2 when the socket cannot be reached or closes without a reply, 3 on a timeout.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include "json.h"

#include "admin_view.h"
#include "daffictl.h"

#define ADMIN_LINE_MAX 4096

/* Maps an admin error code to daffictl's exit code. */
static int ctl_admin_exit(const char *code)
{
    static const struct { const char *code; int exit; } map[] = {
        {"unknown_command", CTL_EXIT_USAGE}, {"bad_arguments", CTL_EXIT_USAGE},
        {"line_too_long", CTL_EXIT_USAGE},   {"binary_input", CTL_EXIT_USAGE},
        {"no_such_plugin", CTL_EXIT_NO_CALLBACK}, {"reload_failed", CTL_EXIT_HANDLER},
        {"load_failed", CTL_EXIT_HANDLER},   {"unload_failed", CTL_EXIT_HANDLER},
        {"busy", CTL_EXIT_BUSY},             {"shutting_down", CTL_EXIT_BUSY},
        {"idle_timeout", CTL_EXIT_TIMEOUT},
    };
    for (size_t i = 0; code != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].code, code) == 0)
            return map[i].exit;
    return CTL_EXIT_OTHER;
}

/* Connects to the admin socket at path (origin: where that path came from, for the
 * message). Returns the fd, or -1 after reporting. */
static int admin_connect(const char *path, const char *origin)
{
    struct sockaddr_un sun = {0};

    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "daffictl: admin socket path too long: %s\n", path);
        return -1;
    }
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        fprintf(stderr, "daffictl: cannot connect to the admin socket %s (from %s): %s\n"
                "  (is daffid running with that socket? -a SOCKET or -c DIR names another)\n",
                path, origin, strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    return fd;
}

/* Milliseconds of CLOCK_MONOTONIC. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Lines read from the admin socket: a reply, or (monitor) one line after another. */
typedef struct admin_reader {
    int fd;
    char *buf;                  /* owned */
    size_t len;                 /* bytes held */
    size_t used;                /* of them, the lines already returned */
    size_t cap;
} admin_reader;

/* Returns the next line read from r->fd within timeout_ms (0: no limit), without its
 * LF and NUL-terminated, valid until the next call; or NULL with *exit_code set after
 * reporting (eof_msg: what to say when the socket closes first). */
static char *admin_read_line(admin_reader *r, int timeout_ms, const char *eof_msg,
                             int *exit_code)
{
    long long end = now_ms() + timeout_ms;

    if (r->used > 0) { /* drop what was returned */
        memmove(r->buf, r->buf + r->used, r->len - r->used);
        r->len -= r->used;
        r->used = 0;
    }
    for (;;) {
        char *nl = r->buf != NULL ? memchr(r->buf, '\n', r->len) : NULL;
        if (nl != NULL) {
            *nl = '\0';
            r->used = (size_t)(nl - r->buf) + 1;
            return r->buf;
        }
        if (r->len == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 1 << 16;
            char *grown = realloc(r->buf, cap);
            if (grown == NULL) {
                fprintf(stderr, "daffictl: out of memory reading the admin socket\n");
                *exit_code = CTL_EXIT_OTHER;
                return NULL;
            }
            r->buf = grown;
            r->cap = cap;
        }
        int left = timeout_ms > 0 ? (int)(end - now_ms()) : -1;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (timeout_ms > 0 && left <= 0) {
            fprintf(stderr, "daffictl: no reply from the admin socket within %d ms\n",
                    timeout_ms);
            *exit_code = CTL_EXIT_TIMEOUT;
            return NULL;
        }
        if (poll(&p, 1, left) == -1 && errno != EINTR)
            break;
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (n == -1 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n == 0) {
            fprintf(stderr, "daffictl: %s\n", eof_msg);
            *exit_code = CTL_EXIT_UNAVAILABLE;
            return NULL;
        }
        if (n == -1)
            break;
        r->len += (size_t)n;
    }
    fprintf(stderr, "daffictl: reading the admin socket failed: %s\n", strerror(errno));
    *exit_code = CTL_EXIT_UNAVAILABLE;
    return NULL;
}

/* Prints an error reply on stderr: "CODE: detail" and the errors list if any. */
static void admin_print_error(json_t *reply)
{
    const char *code = json_string_value(json_object_get(reply, "error"));
    const char *detail = json_string_value(json_object_get(reply, "detail"));
    json_t *errors = json_object_get(reply, "errors");
    size_t i;
    json_t *v;

    fprintf(stderr, "daffictl: %s: %s\n", code ? code : "error", detail ? detail : "");
    json_array_foreach(errors, i, v)
        if (json_is_string(v))
            fprintf(stderr, "  %s\n", json_string_value(v));
}

/* Connects to the admin socket and sends the command line of name and its arguments.
 * Returns the fd, or -1 with *exit_code set after reporting. */
static int admin_send_command(const ctl_opts *o, const char *name, int argc, char **argv,
                              int *exit_code)
{
    char line[ADMIN_LINE_MAX + 2];
    size_t len = (size_t)snprintf(line, sizeof(line), "%s", name);

    *exit_code = CTL_EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '\0' || strpbrk(argv[i], " \t\r\n") != NULL) {
            fprintf(stderr, "daffictl: %s: argument '%s' may not be empty or hold blanks\n",
                    name, argv[i]);
            return -1;
        }
        len += (size_t)snprintf(line + len, sizeof(line) - len, " %s", argv[i]);
        if (len >= ADMIN_LINE_MAX) {
            fprintf(stderr, "daffictl: %s: the command line is over %d bytes\n", name,
                    ADMIN_LINE_MAX);
            return -1;
        }
    }
    line[len++] = '\n';
    *exit_code = CTL_EXIT_UNAVAILABLE;
    ctl_admin where;
    if (ctl_admin_find(o, &where) == -1)
        return -1;
    int fd = admin_connect(where.path, where.origin);
    if (fd == -1)
        return -1;
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (n == -1) {
            fprintf(stderr, "daffictl: sending to the admin socket: %s\n", strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    *exit_code = CTL_EXIT_OK;
    return fd;
}

/* Reads the reply to name from r and shows it (show: 1 prints an ok reply, as a table
 * or with --json as it is). Returns the exit code. */
static int admin_reply(const ctl_opts *o, const char *name, admin_reader *r, int show)
{
    int rc = CTL_EXIT_OK;
    char *text = admin_read_line(r, o->timeout_ms, "the admin socket closed without a reply",
                                 &rc);
    if (text == NULL)
        return rc;
    json_error_t jerr;
    json_t *reply = json_loads(text, 0, &jerr);
    if (reply == NULL || !json_is_object(reply)) {
        fprintf(stderr, "daffictl: the admin reply is not JSON (%s): %.200s\n", jerr.text,
                text);
        json_decref(reply);
        return CTL_EXIT_OTHER;
    }
    const char *status = json_string_value(json_object_get(reply, "status"));
    int ok = status != NULL && strcmp(status, "ok") == 0;
    if (o->json_explicit && (show || !ok)) {
        char *out = json_dumps(reply, o->json_flags & CTL_JSON_PRETTY
                                          ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                          : JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", out ? out : text);
        free(out);
    } else if (ok && show) {
        ctl_admin_view(name, reply, stdout);
    }
    if (!ok) {
        if (!o->json_explicit)
            admin_print_error(reply);
        rc = ctl_admin_exit(json_string_value(json_object_get(reply, "error")));
    }
    json_decref(reply);
    return rc;
}

/* Runs one admin command: name and its arguments become one line. */
static int admin_run(const ctl_opts *o, const char *name, int argc, char **argv)
{
    int rc;
    admin_reader r = {0};

    r.fd = admin_send_command(o, name, argc, argv, &rc);
    if (r.fd == -1)
        return rc;
    rc = admin_reply(o, name, &r, 1);
    close(r.fd);
    free(r.buf);
    return rc;
}

/* The string member key of o, or "-". */
static const char *monitor_str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : "-";
}

/* Prints one monitor line: as it came with --json, else as
 * "TS [loop N PEER] CALLBACK PARAMS -> OUTCOME DURATIONus". Returns 1 for a call. */
static int monitor_print(const ctl_opts *o, const char *line)
{
    json_t *ev = json_loads(line, 0, NULL);
    const char *what = json_string_value(json_object_get(ev, "event"));
    int call = what != NULL && strcmp(what, "call") == 0;

    if (o->json_explicit || ev == NULL || what == NULL) {
        printf("%s\n", line); /* --json, or a line of a kind this daffictl does not know */
    } else if (call) {
        printf("%s [loop %lld %s] %s %s -> %s %lldus%s\n", monitor_str(ev, "ts"),
               (long long)json_integer_value(json_object_get(ev, "loop")),
               monitor_str(ev, "peer"), monitor_str(ev, "callback"),
               monitor_str(ev, "params"), monitor_str(ev, "outcome"),
               (long long)json_integer_value(json_object_get(ev, "duration_us")),
               strcmp(monitor_str(ev, "kind"), "notify") == 0 ? " (notify)" : "");
    } else if (strcmp(what, "dropped") == 0) {
        printf("(%lld calls not shown: this monitor fell behind)\n",
               (long long)json_integer_value(json_object_get(ev, "calls")));
    } else {
        printf("%s\n", line);
    }
    fflush(stdout); /* a live view: each line as it comes, also into a pipe */
    json_decref(ev);
    return call;
}

/* daffictl monitor [-n COUNT]: every call daffid finishes, as it happens. */
static int run_monitor(const ctl_opts *o, int argc, char **argv)
{
    long count = 0;
    int rc;
    admin_reader r = {0};

    if (argc == 2 && strcmp(argv[0], "-n") == 0) {
        char *end;
        count = strtol(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0' || count < 1)
            return ctl_usage("monitor", "-n wants a count of calls, at least 1: '%s'", argv[1]);
    } else if (argc != 0) {
        return ctl_usage("monitor", "takes no argument but -n COUNT");
    }
    r.fd = admin_send_command(o, "monitor", 0, NULL, &rc);
    if (r.fd == -1)
        return rc;
    rc = admin_reply(o, "monitor", &r, 0);
    for (long seen = 0; rc == CTL_EXIT_OK && (count == 0 || seen < count);) {
        /* no timeout: a quiet daffid is not an error */
        char *line = admin_read_line(&r, 0, "the admin socket closed (daffid stopped?)", &rc);
        if (line != NULL)
            seen += monitor_print(o, line);
    }
    close(r.fd);
    free(r.buf);
    return rc;
}

const ctl_cmd ctl_cmd_admin_monitor = {
    "monitor", run_monitor, "monitor [-n COUNT]", "admin: every call as it finishes, live",
    "Shows every call daffid finishes, as it happens (like redis-cli monitor), one line\n"
    "each: when, loop, peer, callback, params, outcome and duration. Runs until\n"
    "interrupted, or until COUNT calls were shown with -n COUNT. --json prints each\n"
    "line as daffid sends it. A monitor that cannot keep up is told how many calls it\n"
    "missed; daffid never slows down for it.\n"
    "Talks to daffid's admin socket: -a SOCKET, else $DAFFID_ADMIN, else the [admin]\n"
    "socket that -c DIR's ini files set, else ./conf.d's, else " CTL_CONFDIR "'s, else\n"
    CTL_DEFAULT_ADMIN ".\n"};

#define ADMIN_CMD(id, nm, syn, sum, hlp)                                                   \
    static int run_##id(const ctl_opts *o, int argc, char **argv)                          \
    {                                                                                      \
        return admin_run(o, nm, argc, argv);                                               \
    }                                                                                      \
    const ctl_cmd ctl_cmd_admin_##id = {nm, run_##id, syn, sum, hlp};

#define ADMIN_HELP_TAIL                                                                    \
    "Talks to daffid's admin socket: -a SOCKET, else $DAFFID_ADMIN, else the [admin]\n"   \
    "socket that -c DIR's ini files set, else ./conf.d's, else " CTL_CONFDIR "'s, else\n" \
    CTL_DEFAULT_ADMIN ". Prints a table; --json or --pretty print the raw JSON reply.\n"  \
    "An error reply goes to stderr as 'CODE: detail' with a non-zero exit code.\n"

ADMIN_CMD(status, "status", "status", "admin: version, state, uptime, connections, calls",
          "Shows what daffid is: version, role, name, pid, state (running, draining,\n"
          "drained, stopping), uptime, workers, connections, calls in flight, plugins.\n"
          ADMIN_HELP_TAIL)
ADMIN_CMD(plugins, "plugins", "plugins", "admin: plugins, generations, calls, reloads",
          "Lists each plugin: version, generation, calls, errors, in flight, when it was\n"
          "loaded, the last reload's result and error, its file.\n" ADMIN_HELP_TAIL)
ADMIN_CMD(callbacks, "callbacks", "callbacks [PLUGIN]", "admin: calls by callback and outcome",
          "Lists each callback (of one plugin with PLUGIN): calls, errors, in flight, mean\n"
          "latency, and the calls by outcome.\n" ADMIN_HELP_TAIL)
ADMIN_CMD(members, "members", "members", "admin: members and their callbacks",
          "Lists the members daffid knows (a service: itself) and their callbacks.\n"
          ADMIN_HELP_TAIL)
ADMIN_CMD(stats, "stats", "stats", "admin: every counter and gauge",
          "Prints every counter and gauge of daffid's counter table.\n" ADMIN_HELP_TAIL)
ADMIN_CMD(metrics, "metrics", "metrics", "admin: Prometheus text exposition",
          "Prints the Prometheus text exposition (the same as metrics_listen's /metrics).\n"
          ADMIN_HELP_TAIL)
ADMIN_CMD(reload, "reload", "reload [PLUGIN]", "admin: reload what changed, or one plugin",
          "Reloads every plugin whose ini or .so changed, or loads a new generation of\n"
          "PLUGIN. A failed load changes nothing; the errors are printed.\n" ADMIN_HELP_TAIL)
ADMIN_CMD(load, "load", "load FILE", "admin: load the plugin an ini file declares",
          "Loads the plugin that FILE (an absolute path to a plugin's ini) declares, or\n"
          "loads again a plugin unloaded with unload. Lasts until daffid exits.\n"
          ADMIN_HELP_TAIL)
ADMIN_CMD(unload, "unload", "unload NAME", "admin: unload a plugin",
          "Unloads plugin NAME: its callbacks answer NO_CALLBACK; calls in flight finish.\n"
          "Lasts until daffid exits (or load brings it back).\n" ADMIN_HELP_TAIL)
ADMIN_CMD(loglevel, "loglevel", "loglevel [LEVEL]", "admin: show or set the log level",
          "Shows the log level, or sets it to LEVEL: debug, info, warn or error.\n"
          ADMIN_HELP_TAIL)
ADMIN_CMD(accesslog, "accesslog", "accesslog [on|off]", "admin: show or switch the access log",
          "Shows whether the access log (a line per finished call) is on, or switches it\n"
          "on or off at run time.\n" ADMIN_HELP_TAIL)
ADMIN_CMD(drain, "drain", "drain", "admin: stop accepting, finish calls, report",
          "Stops accepting connections, lets the calls in flight finish (at most\n"
          "shutdown_timeout), then reports. daffid keeps running until shutdown.\n"
          ADMIN_HELP_TAIL)
ADMIN_CMD(resume, "resume", "resume", "admin: undo a drain",
          "Undoes drain: daffid listens and takes calls again.\n" ADMIN_HELP_TAIL)
ADMIN_CMD(shutdown, "shutdown", "shutdown", "admin: graceful shutdown",
          "Shuts daffid down gracefully, as SIGTERM does.\n" ADMIN_HELP_TAIL)

const ctl_cmd *const ctl_admin_cmds[] = {
    &ctl_cmd_admin_status,   &ctl_cmd_admin_plugins, &ctl_cmd_admin_callbacks,
    &ctl_cmd_admin_members,  &ctl_cmd_admin_stats,   &ctl_cmd_admin_metrics,
    &ctl_cmd_admin_reload,   &ctl_cmd_admin_load,    &ctl_cmd_admin_unload,
    &ctl_cmd_admin_loglevel, &ctl_cmd_admin_accesslog, &ctl_cmd_admin_monitor,
    &ctl_cmd_admin_drain,    &ctl_cmd_admin_resume,  &ctl_cmd_admin_shutdown,
    NULL,
};
