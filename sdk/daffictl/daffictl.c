/*
 * daffictl.c - the daffi command line: global options, the subcommand table, help.
 *
 *   daffictl [-s ADDRESS] [-a SOCKET | -c DIR] [-t TIMEOUT_MS] [--json|--pretty]
 *            [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-insecure]
 *            [--token-file FILE] SUBCOMMAND [ARGS...]
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

/* Each exit code with the protocol error codes (sdk/PROTOCOL.md section 4) it stands
 * for: the printed "NAME (code N)" is the protocol's code, the exit status daffictl's. */
static const char exit_codes_text[] =
    "Exit codes (the error's protocol code, as printed in \"NAME (code N)\", beside it):\n"
    "  0   success\n"
    "  1   usage error: bad option, subcommand, address or argument\n"
    "  2   UNAVAILABLE (code 5): cannot connect, or the connection was lost\n"
    "  3   TIMEOUT (code 3): no answer within -t TIMEOUT_MS (or the server's own timeout)\n"
    "  4   HANDLER_ERROR (code 4): the callback failed\n"
    "  5   BAD_ARGS (code 2): the callback rejected its arguments\n"
    "  6   NO_CALLBACK (code 1): no such callback\n"
    "  7   OVERLOADED (code 6) or SHUTTING_DOWN (code 10): refused for now, try again\n"
    "  8   PROTOCOL (code 8) or TOO_LARGE (code 7): a message was malformed or too big\n"
    "  9   DENIED (code 9)\n"
    "  10  any other error code\n";

/* Prints one line of the subcommand list: the synopsis, and the summary in a column
 * (on the next line when the synopsis is longer than the column). */
static void list_command(FILE *f, const char *synopsis, const char *summary)
{
    if (strlen(synopsis) <= 28)
        fprintf(f, "  %-28s %s\n", synopsis, summary);
    else
        fprintf(f, "  %s\n  %-28s %s\n", synopsis, "", summary);
}

/* Returns the subcommand of the RPC table called name, or NULL. */
static const ctl_cmd *find_rpc_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

/* Prints the general usage to f. */
static void usage(FILE *f)
{
    size_t i;

    fprintf(f,
            "Usage: daffictl [OPTIONS] SUBCOMMAND [ARGS...]\n"
            "\n"
            "Calls the callbacks of a daffid server (or any MessagePack-RPC peer), and steers\n"
            "daffid through its admin socket.\n"
            "\n"
            "Options (before the subcommand):\n"
            "  -s, --server ADDRESS    tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH,\n"
            "                          or a comma-separated list of them (tried in order);\n"
            "                          default $DAFFI_ADDRESS, else " CTL_DEFAULT_ADDRESS "\n"
            "      --tls-ca FILE       PEM CAs the tls:// server's certificate must verify\n"
            "                          against (default $DAFFI_TLS_CA, else the system's)\n"
            "      --tls-cert FILE     PEM client certificate, for mTLS ($DAFFI_TLS_CERT)\n"
            "      --tls-key FILE      its PEM private key ($DAFFI_TLS_KEY)\n"
            "      --tls-insecure      do not verify the server's certificate (tests only)\n"
            "      --token-file FILE   present the token on FILE's first line with\n"
            "                          daffi.auth first (default $DAFFI_TOKEN)\n"
            "  -a, --admin SOCKET      daffid's admin socket for the admin subcommands;\n"
            "                          default $DAFFID_ADMIN, else found as -c says\n"
            "  -c, --config DIR        daffid's configuration directory: the admin socket is\n"
            "                          the [admin] socket its ini files set (without -c:\n"
            "                          ./conf.d, else " CTL_CONFDIR ", else\n"
            "                          " CTL_DEFAULT_ADMIN ")\n"
            "  -t, --timeout MS        give up after MS milliseconds (default %d; 0: wait\n"
            "                          forever); the timeout goes with each call\n"
            "      --json              print results as compact JSON (the default)\n"
            "      --pretty            print results as indented JSON\n"
            "  -h, --help              this help; `daffictl help SUBCOMMAND` for one subcommand\n"
            "  -V, -v, --version       print the version\n"
            "\n"
            "Subcommands, calls (to -s ADDRESS):\n",
            CTL_DEFAULT_TIMEOUT_MS);
    for (i = 0; i < NCOMMANDS; i++)
        list_command(f, commands[i]->synopsis, commands[i]->summary);
    /* one block without a blank line: shell completion reads the subcommands from it */
    fprintf(f, "Subcommands of the admin socket (-a SOCKET, -c DIR; `members` too, with -a "
               "or -c):\n");
    for (i = 0; ctl_admin_cmds[i] != NULL; i++)
        if (find_rpc_command(ctl_admin_cmds[i]->name) == NULL) /* listed once, above */
            list_command(f, ctl_admin_cmds[i]->synopsis, ctl_admin_cmds[i]->summary);
    list_command(f, "help [SUBCOMMAND]", "show this help, or one subcommand's");
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
    const ctl_cmd *cmd = find_rpc_command(name);

    return cmd != NULL ? cmd : find_admin_command(name);
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
    /* the admin subcommands talk to the admin socket (-a, -c), the others to -s */
    printf("Usage: daffictl [%s] [-t TIMEOUT_MS] [--json|--pretty] %s\n\n%s\n",
           find_admin_command(name) == cmd ? "-a SOCKET | -c DIR" : "-s ADDRESS",
           cmd->synopsis, cmd->help);
    if (find_admin_command(name) != NULL && find_admin_command(name) != cmd)
        printf("With -a SOCKET or -c DIR, `daffictl %s` asks the admin socket instead:\n%s\n",
               name, find_admin_command(name)->help);
    printf("%s", exit_codes_text);
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

/* Reads the first line of path (the token) into buf, trimmed. Returns 0, or -1 after
 * saying why. */
static int read_token(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (f == NULL || fgets(buf, (int)len, f) == NULL) {
        fprintf(stderr, "daffictl: --token-file %s: %s\n", path,
                f == NULL ? strerror(errno) : "empty");
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "daffictl: --token-file %s: the first line is empty\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},
        {"admin", required_argument, NULL, 'a'},
        {"config", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"pretty", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"tls-ca", required_argument, NULL, 'C'},
        {"tls-cert", required_argument, NULL, 'E'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-insecure", no_argument, NULL, 'I'},
        {"token-file", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    static char token[1100];
    ctl_opts o;
    const ctl_cmd *cmd;
    const char *env;
    int ch;
    int admin_given = 0;

    memset(&o, 0, sizeof(o));
    env = getenv("DAFFI_ADDRESS");
    o.address = env != NULL && env[0] != '\0' ? env : CTL_DEFAULT_ADDRESS;
    o.timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    o.json_flags = CTL_JSON_COMPACT;
    /* '+': stop at the subcommand, whose arguments may start with '-' */
    while ((ch = getopt_long(argc, argv, "+s:a:c:t:hVv", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': o.address = optarg; break;
        case 'a': o.admin = optarg; admin_given = 1; break;
        case 'c': o.confdir = optarg; admin_given = 1; break;
        case 't':
            if (parse_timeout(optarg, &o.timeout_ms) == -1) {
                fprintf(stderr, "daffictl: -t '%s': expected milliseconds, 0 or more\n",
                        optarg);
                return CTL_EXIT_USAGE;
            }
            break;
        case 'j': o.json_flags = CTL_JSON_COMPACT; o.json_explicit = 1; break;
        case 'p': o.json_flags = CTL_JSON_PRETTY; o.json_explicit = 1; break;
        case 'C': o.tls_ca = optarg; break;
        case 'E': o.tls_cert = optarg; break;
        case 'K': o.tls_key = optarg; break;
        case 'I': o.tls_insecure = 1; break;
        case 'T':
            if (read_token(optarg, token, sizeof(token)) == -1)
                return CTL_EXIT_USAGE;
            o.token = token;
            break;
        case 'h': usage(stdout); return CTL_EXIT_OK;
        case 'V':
        case 'v': printf("daffictl %s\n", DAFFID_VERSION); return CTL_EXIT_OK;
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
    /* with -a or -c, a name both lists know (members) is the admin socket's */
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
