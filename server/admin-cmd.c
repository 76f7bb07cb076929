/*
 * admin-cmd.c - the admin socket's command table: a line is split into words, the
 * command is found and its arguments counted, then it runs (admin-view.c,
 * admin-ctl.c, admin-load.c); help lists the table (see admin.h for the protocol).
 */
#include <string.h>

#include "admin-int.h"
#include "log.h"

#define ADMIN_MAX_ARGS 8

static const admin_cmd *admin_find(const char *name);
static void cmd_help(admin_client *c, const admin_cmd *cmd, int argc, char **argv);

static const admin_cmd admin_cmds[] = {
    {"help", 0, 1, "help [COMMAND]", "list the commands, or show one", cmd_help},
    {"status", 0, 0, "status", "version, role, state, uptime, connections, calls in flight",
     admin_cmd_status},
    {"plugins", 0, 0, "plugins", "each plugin: generation, file, calls, errors, last reload",
     admin_cmd_plugins},
    {"callbacks", 0, 1, "callbacks [PLUGIN]", "each callback: calls by outcome, latency",
     admin_cmd_callbacks},
    {"members", 0, 0, "members", "the members this daffid knows and their callbacks",
     admin_cmd_members},
    {"stats", 0, 0, "stats", "every counter and gauge", admin_cmd_stats},
    {"metrics", 0, 0, "metrics", "the Prometheus text exposition", admin_cmd_metrics},
    {"reload", 0, 1, "reload [PLUGIN]", "reload what changed, or reload one plugin",
     admin_cmd_reload},
    {"load", 1, 1, "load FILE", "load the plugin an ini file (absolute path) declares",
     admin_cmd_load},
    {"unload", 1, 1, "unload NAME", "unload a plugin (its callbacks answer NO_CALLBACK)",
     admin_cmd_unload},
    {"loglevel", 0, 1, "loglevel [debug|info|warn|error]", "show or set the log level",
     admin_cmd_loglevel},
    {"accesslog", 0, 1, "accesslog [on|off]", "show or switch the access log (a line per call)",
     admin_cmd_accesslog},
    {"monitor", 0, 0, "monitor", "a JSON line per finished call, until you disconnect",
     admin_cmd_monitor},
    {"drain", 0, 0, "drain", "stop accepting, finish calls in flight, then report",
     admin_cmd_drain},
    {"resume", 0, 0, "resume", "undo a drain: listen and take calls again", admin_cmd_resume},
    {"shutdown", 0, 0, "shutdown", "graceful shutdown (as SIGTERM)", admin_cmd_shutdown},
};
#define ADMIN_NCMDS (sizeof(admin_cmds) / sizeof(admin_cmds[0]))

static const admin_cmd *admin_find(const char *name)
{
    for (size_t i = 0; i < ADMIN_NCMDS; i++)
        if (strcmp(admin_cmds[i].name, name) == 0)
            return &admin_cmds[i];
    return NULL;
}

static void cmd_help(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    if (argc > 0 && admin_find(argv[0]) == NULL) {
        admin_send_error(c, cmd->name, "unknown_command", NULL, 0,
                         "no command '%.64s' (help lists them)", argv[0]);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < ADMIN_NCMDS; i++) {
        if (argc > 0 && strcmp(admin_cmds[i].name, argv[0]) != 0)
            continue;
        json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "name", admin_cmds[i].name,
                                              "usage", admin_cmds[i].usage, "summary",
                                              admin_cmds[i].summary));
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "commands", list);
    admin_send(c, r);
}

/* See admin-int.h. Words are separated by blanks; a word of a known command must be
 * printable UTF-8 text (admin_unprintable_at), so that every argument can be named in
 * a reply and a log line as it was sent. */
void admin_run_line(admin_client *c, char *line)
{
    char *argv[ADMIN_MAX_ARGS + 1];
    int argc = 0, too_many = 0;
    char *save = NULL;

    for (char *tok = strtok_r(line, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save)) {
        if (argc == ADMIN_MAX_ARGS + 1) {
            too_many = 1;
            break;
        }
        argv[argc++] = tok;
    }
    if (argc == 0)
        return; /* a blank line is not a command */
    const admin_cmd *cmd = admin_find(argv[0]);
    if (cmd == NULL) {
        /* the name is echoed in the detail only (escaped): it may be anything */
        admin_send_error(c, NULL, "unknown_command", NULL, 0,
                         "no command '%.64s' (help lists them)", argv[0]);
        return;
    }
    int nargs = argc - 1;
    if (too_many || nargs < cmd->min_args || nargs > cmd->max_args) {
        admin_send_error(c, cmd->name, "bad_arguments", NULL, 0,
                         "%s takes %s%d argument%s; usage: %s", cmd->name,
                         cmd->min_args == cmd->max_args ? "" : "at most ", cmd->max_args,
                         cmd->max_args == 1 ? "" : "s", cmd->usage);
        return;
    }
    for (int i = 1; i < argc; i++) {
        long bad = admin_unprintable_at(argv[i]);
        if (bad != -1) {
            admin_send_error(c, cmd->name, "bad_arguments", NULL, 0,
                             "argument %d is not printable UTF-8 text (byte 0x%02x at "
                             "offset %ld)", i, (unsigned char)argv[i][bad], bad);
            return;
        }
    }
    dfd_debug("admin.command", "uid=%ld command=%s args=%d", c->uid, cmd->name, nargs);
    cmd->run(c, cmd, nargs, argv + 1);
}
