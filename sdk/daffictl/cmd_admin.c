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

/* Reads one line (the reply) from fd within timeout_ms (0: no limit). Returns it
 * (malloc'd, without the LF) or NULL with *exit_code set after reporting. */
static char *admin_read_reply(int fd, int timeout_ms, int *exit_code)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    long long end = now_ms() + timeout_ms;

    while (buf != NULL) {
        char *nl = memchr(buf, '\n', len);
        if (nl != NULL) {
            *nl = '\0';
            return buf;
        }
        int left = timeout_ms > 0 ? (int)(end - now_ms()) : -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (timeout_ms > 0 && left <= 0) {
            fprintf(stderr, "daffictl: no reply from the admin socket within %d ms\n",
                    timeout_ms);
            *exit_code = CTL_EXIT_TIMEOUT;
            free(buf);
            return NULL;
        }
        if (poll(&p, 1, left) == -1 && errno != EINTR)
            break;
        if (len == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL)
                break;
            buf = grown;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n == -1 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            fprintf(stderr, "daffictl: the admin socket closed without a reply\n");
            *exit_code = CTL_EXIT_UNAVAILABLE;
            free(buf);
            return NULL;
        }
        len += (size_t)n;
    }
    free(buf);
    fprintf(stderr, "daffictl: reading the admin reply failed: %s\n", strerror(errno));
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

/* Runs one admin command: name and its arguments become one line. */
static int admin_run(const ctl_opts *o, const char *name, int argc, char **argv)
{
    char line[ADMIN_LINE_MAX + 2];
    size_t len = (size_t)snprintf(line, sizeof(line), "%s", name);
    int rc = CTL_EXIT_OK;

    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '\0' || strpbrk(argv[i], " \t\r\n") != NULL) {
            fprintf(stderr, "daffictl: %s: argument '%s' may not be empty or hold blanks\n",
                    name, argv[i]);
            return CTL_EXIT_USAGE;
        }
        len += (size_t)snprintf(line + len, sizeof(line) - len, " %s", argv[i]);
        if (len >= ADMIN_LINE_MAX) {
            fprintf(stderr, "daffictl: %s: the command line is over %d bytes\n", name,
                    ADMIN_LINE_MAX);
            return CTL_EXIT_USAGE;
        }
    }
    line[len++] = '\n';
    ctl_admin where;
    if (ctl_admin_find(o, &where) == -1)
        return CTL_EXIT_UNAVAILABLE;
    int fd = admin_connect(where.path, where.origin);
    if (fd == -1)
        return CTL_EXIT_UNAVAILABLE;
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (n == -1) {
            fprintf(stderr, "daffictl: sending to the admin socket: %s\n", strerror(errno));
            close(fd);
            return CTL_EXIT_UNAVAILABLE;
        }
        off += (size_t)n;
    }
    char *text = admin_read_reply(fd, o->timeout_ms, &rc);
    close(fd);
    if (text == NULL)
        return rc;
    json_error_t jerr;
    json_t *reply = json_loads(text, 0, &jerr);
    if (reply == NULL || !json_is_object(reply)) {
        fprintf(stderr, "daffictl: the admin reply is not JSON (%s): %.200s\n", jerr.text,
                text);
        free(text);
        json_decref(reply);
        return CTL_EXIT_OTHER;
    }
    const char *status = json_string_value(json_object_get(reply, "status"));
    int ok = status != NULL && strcmp(status, "ok") == 0;
    if (o->json_explicit) {
        char *out = json_dumps(reply, o->json_flags & CTL_JSON_PRETTY
                                          ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                          : JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", out ? out : text);
        free(out);
    } else if (ok) {
        ctl_admin_view(name, reply, stdout);
    }
    if (!ok) {
        if (!o->json_explicit)
            admin_print_error(reply);
        rc = ctl_admin_exit(json_string_value(json_object_get(reply, "error")));
    }
    free(text);
    json_decref(reply);
    return rc;
}

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
ADMIN_CMD(drain, "drain", "drain", "admin: stop accepting, finish calls, report",
          "Stops accepting connections, lets the calls in flight finish (at most\n"
          "shutdown_timeout), then reports. daffid keeps running until shutdown.\n"
          ADMIN_HELP_TAIL)
ADMIN_CMD(shutdown, "shutdown", "shutdown", "admin: graceful shutdown",
          "Shuts daffid down gracefully, as SIGTERM does.\n" ADMIN_HELP_TAIL)

const ctl_cmd *const ctl_admin_cmds[] = {
    &ctl_cmd_admin_status,   &ctl_cmd_admin_plugins, &ctl_cmd_admin_callbacks,
    &ctl_cmd_admin_members,  &ctl_cmd_admin_stats,   &ctl_cmd_admin_metrics,
    &ctl_cmd_admin_reload,   &ctl_cmd_admin_load,    &ctl_cmd_admin_unload,
    &ctl_cmd_admin_loglevel, &ctl_cmd_admin_drain,   &ctl_cmd_admin_shutdown,
    NULL,
};
