/*
 * daffictl.c - the daffi command line: global options, the subcommand table, help.
 *
 *   daffictl [-s ADDRESS] [-t TIMEOUT_MS] [--json|--pretty] SUBCOMMAND [ARGS...]
 *
 * Options come before the subcommand; everything after it belongs to the subcommand
 * (so `daffictl call add -1 2` passes -1 as an argument).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#include "daffictl.h"

#ifndef DAFFID_VERSION
#define DAFFID_VERSION "unknown"
#endif

static const ctl_cmd *const commands[] = {&ctl_cmd_call,    &ctl_cmd_notify, &ctl_cmd_ping,
                                          &ctl_cmd_members, &ctl_cmd_cast,   &ctl_cmd_wait,
                                          &ctl_cmd_watch,   &ctl_cmd_stream};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char exit_codes_text[] =
    "Exit codes:\n"
    "  0   success\n"
    "  1   usage error: bad option, subcommand, address or argument\n"
    "  2   UNAVAILABLE: cannot connect, or the connection was lost\n"
    "  3   TIMEOUT: no answer within -t TIMEOUT_MS (or the server's own timeout)\n"
    "  4   HANDLER_ERROR: the callback failed\n"
    "  5   BAD_ARGS: the callback rejected its arguments\n"
    "  6   NO_CALLBACK: no such callback\n"
    "  7   OVERLOADED or SHUTTING_DOWN: refused for now, try again later\n"
    "  8   PROTOCOL or TOO_LARGE: a message was malformed or too big\n"
    "  9   DENIED\n"
    "  10  any other error\n";

/* Prints the general usage to f. */
static void usage(FILE *f)
{
    size_t i;

    fprintf(f,
            "Usage: daffictl [OPTIONS] SUBCOMMAND [ARGS...]\n"
            "\n"
            "Calls the callbacks of a daffid server (or any MessagePack-RPC peer).\n"
            "\n"
            "Options (before the subcommand):\n"
            "  -s, --server ADDRESS    tcp://HOST:PORT or unix:///PATH; default $DAFFI_ADDRESS,\n"
            "                          else " CTL_DEFAULT_ADDRESS "\n"
            "  -a, --admin SOCKET      daffid's admin socket for the admin subcommands;\n"
            "                          default $DAFFID_ADMIN, else " CTL_DEFAULT_ADMIN "\n"
            "  -t, --timeout MS        give up after MS milliseconds (default %d; 0: wait\n"
            "                          forever)\n"
            "      --json              print results as compact JSON (the default)\n"
            "      --pretty            print results as indented JSON\n"
            "  -h, --help              this help; `daffictl help SUBCOMMAND` for one subcommand\n"
            "  -V, --version           print the version\n"
            "\n"
            "Subcommands:\n",
            CTL_DEFAULT_TIMEOUT_MS);
    for (i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-28s %s\n", commands[i]->synopsis, commands[i]->summary);
    for (i = 0; ctl_admin_cmds[i] != NULL; i++)
        fprintf(f, "  %-28s %s\n", ctl_admin_cmds[i]->synopsis, ctl_admin_cmds[i]->summary);
    fprintf(f, "  %-28s %s\n", "help [SUBCOMMAND]", "show this help, or one subcommand's");
    fprintf(f, "\n%s", exit_codes_text);
}

/* Returns the admin subcommand called name, or NULL. */
static const ctl_cmd *find_admin_command(const char *name)
{
    for (size_t i = 0; ctl_admin_cmds[i] != NULL; i++)
        if (strcmp(ctl_admin_cmds[i]->name, name) == 0)
            return ctl_admin_cmds[i];
    return NULL;
}

/* Returns the subcommand called name (the RPC ones first), or NULL. */
static const ctl_cmd *find_command(const char *name)
{
    size_t i;

    for (i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return find_admin_command(name);
}

/* Prints the help of one subcommand on stdout. Returns 0, or CTL_EXIT_USAGE when
 * there is no such subcommand. */
static int command_help(const char *name)
{
    const ctl_cmd *cmd = find_command(name);

    if (cmd == NULL) {
        fprintf(stderr, "daffictl: help: unknown subcommand '%s'\n", name);
        return CTL_EXIT_USAGE;
    }
    /* the admin subcommands talk to the admin socket (-a), the others to -s */
    printf("Usage: daffictl [%s] [-t TIMEOUT_MS] [--json|--pretty] %s\n\n%s\n%s",
           find_admin_command(name) == cmd ? "-a SOCKET" : "-s ADDRESS", cmd->synopsis,
           cmd->help, exit_codes_text);
    return CTL_EXIT_OK;
}

/* Parses a timeout in milliseconds: digits only, 0 .. INT_MAX. Returns 0, or -1. */
static int parse_timeout(const char *s, int *out)
{
    char *end;
    long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > 0x7fffffff)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},
        {"admin", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"pretty", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    ctl_opts o;
    const ctl_cmd *cmd;
    const char *env;
    int ch;
    int admin_given = 0;

    memset(&o, 0, sizeof(o));
    env = getenv("DAFFI_ADDRESS");
    o.address = env != NULL && env[0] != '\0' ? env : CTL_DEFAULT_ADDRESS;
    o.timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    env = getenv("DAFFID_ADMIN");
    o.admin = env != NULL && env[0] != '\0' ? env : CTL_DEFAULT_ADMIN;
    o.json_flags = CTL_JSON_COMPACT;
    /* '+': stop at the subcommand, whose arguments may start with '-' */
    while ((ch = getopt_long(argc, argv, "+s:a:t:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': o.address = optarg; break;
        case 'a': o.admin = optarg; admin_given = 1; break;
        case 't':
            if (parse_timeout(optarg, &o.timeout_ms) == -1) {
                fprintf(stderr, "daffictl: -t '%s': expected milliseconds, 0 or more\n",
                        optarg);
                return CTL_EXIT_USAGE;
            }
            break;
        case 'j': o.json_flags = CTL_JSON_COMPACT; o.json_explicit = 1; break;
        case 'p': o.json_flags = CTL_JSON_PRETTY; o.json_explicit = 1; break;
        case 'h': usage(stdout); return CTL_EXIT_OK;
        case 'V': printf("daffictl %s\n", DAFFID_VERSION); return CTL_EXIT_OK;
        default:
            fprintf(stderr, "Try 'daffictl --help'.\n");
            return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[optind], "help") == 0) {
        if (optind + 1 >= argc) {
            usage(stdout);
            return CTL_EXIT_OK;
        }
        return command_help(argv[optind + 1]);
    }
    /* with -a, a name both lists know (members) is the admin socket's */
    cmd = admin_given ? find_admin_command(argv[optind]) : NULL;
    if (cmd == NULL)
        cmd = find_command(argv[optind]);
    if (cmd == NULL) {
        fprintf(stderr, "daffictl: unknown subcommand '%s'. Try 'daffictl --help'.\n",
                argv[optind]);
        return CTL_EXIT_USAGE;
    }
    /* `daffictl call --help` is help, not a callback named --help */
    if (optind + 1 < argc &&
        (strcmp(argv[optind + 1], "--help") == 0 || strcmp(argv[optind + 1], "-h") == 0))
        return command_help(cmd->name);
    return cmd->run(&o, argc - optind - 1, argv + optind + 1);
}
