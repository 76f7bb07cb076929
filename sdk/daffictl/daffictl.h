/*
 * daffictl.h - what the daffictl command files share: the global options, the
 * subcommand table entry, exit codes and the helpers every subcommand uses.
 */
#ifndef DAFFICTL_H
#define DAFFICTL_H

#include <daffi/client.h>

/* Exit codes: one per class of outcome (documented in --help and README.md). */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_USAGE = 1,       /* bad option, subcommand, address or argument */
    CTL_EXIT_UNAVAILABLE = 2, /* cannot connect, or the connection was lost */
    CTL_EXIT_TIMEOUT = 3,
    CTL_EXIT_HANDLER = 4,     /* HANDLER_ERROR: the callback failed */
    CTL_EXIT_BAD_ARGS = 5,
    CTL_EXIT_NO_CALLBACK = 6,
    CTL_EXIT_BUSY = 7,        /* OVERLOADED, SHUTTING_DOWN: refused for now */
    CTL_EXIT_MESSAGE = 8,     /* PROTOCOL, TOO_LARGE: a message was malformed/too big */
    CTL_EXIT_DENIED = 9,
    CTL_EXIT_OTHER = 10       /* any other error code */
};

#define CTL_DEFAULT_ADDRESS "tcp://127.0.0.1:6001"
#define CTL_DEFAULT_TIMEOUT_MS 30000
#define CTL_DEFAULT_ADMIN "/run/daffid/admin.sock"
#ifndef CTL_CONFDIR
#define CTL_CONFDIR "/etc/daffid/conf.d" /* daffid's default -c */
#endif

/* Options given before the subcommand. */
typedef struct ctl_opts {
    const char *address;   /* -s, else $DAFFI_ADDRESS, else CTL_DEFAULT_ADDRESS */
    int timeout_ms;        /* -t; 0: wait forever */
    unsigned json_flags;   /* CTL_JSON_COMPACT or CTL_JSON_PRETTY */
    int json_explicit;     /* 1 when --json or --pretty was given */
    const char *admin;     /* -a, else NULL (ctl_admin_find() looks further) */
    const char *confdir;   /* -c: daffid's configuration directory, else NULL */
    /* TLS and the token for a tls:// server (NULL: the library reads DAFFI_TLS_CA,
     * DAFFI_TLS_CERT, DAFFI_TLS_KEY, DAFFI_TOKEN) */
    const char *tls_ca;    /* --tls-ca FILE */
    const char *tls_cert;  /* --tls-cert FILE */
    const char *tls_key;   /* --tls-key FILE */
    int tls_insecure;      /* --tls-insecure */
    const char *token;     /* --token-file FILE's first line, read at start; owned by
                              main */
} ctl_opts;

/* Sets the TLS and token fields of o into copts (the client options). */
void ctl_client_security(const ctl_opts *o, daffi_client_opts *copts);

/* The admin socket an admin subcommand talks to, and where that path came from. */
typedef struct ctl_admin {
    char path[4096];
    char origin[4200];     /* "-a", "$DAFFID_ADMIN", "[admin] socket of FILE:LINE", ... */
    int found;             /* internal: a configuration file set it */
} ctl_admin;

/* Finds the admin socket (admin_socket.c: -a, $DAFFID_ADMIN, -c DIR's ini files,
 * ./conf.d's, CTL_CONFDIR's, CTL_DEFAULT_ADMIN). Returns 0 with a filled, or -1 after
 * printing why there is none (a directory that cannot be read or sets no socket, a
 * configuration that turns it off). */
int ctl_admin_find(const ctl_opts *o, ctl_admin *a);

/* A subcommand: run gets the arguments after the subcommand's name and returns an
 * exit code. */
typedef struct ctl_cmd {
    const char *name;
    int (*run)(const ctl_opts *o, int argc, char **argv);
    const char *synopsis;  /* "call CALLBACK [ARGS...]" */
    const char *summary;   /* one line for the command list */
    const char *help;      /* the full text of `daffictl help NAME` */
} ctl_cmd;

/* Subcommands (cmd_call.c). */
extern const ctl_cmd ctl_cmd_call, ctl_cmd_notify, ctl_cmd_ping;
/* Subcommands about members and router calls (cmd_router.c). */
extern const ctl_cmd ctl_cmd_members, ctl_cmd_cast, ctl_cmd_wait, ctl_cmd_watch,
    ctl_cmd_stream;
/* The admin socket's subcommands (cmd_admin.c), NULL-terminated. */
extern const ctl_cmd *const ctl_admin_cmds[];

/* Maps an error code to daffictl's exit code. */
int ctl_exit_code(int code);

/* Prints "NAME (code N): message" and the details, if any, as JSON to stderr, and
 * returns the exit code for err. */
int ctl_report(const ctl_opts *o, const daffi_error *err);

/* Connects to o->address. Returns the client (caller closes it), or NULL after
 * reporting the error; *exit_code then holds the exit code. */
daffi_client *ctl_connect(const ctl_opts *o, int *exit_code);

/* Packs argv[0..argc) as a params array (each a JSON value where it parses as one,
 * else a string) into sb, which the caller initialised and destroys. Returns 0, or
 * CTL_EXIT_USAGE after printing which argument was wrong. */
int ctl_pack_args(msgpack_sbuffer *sb, int argc, char **argv);

/* Prints "daffictl: CMD: <message> (see: daffictl help CMD)" to stderr. Returns
 * CTL_EXIT_USAGE. */
int ctl_usage(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prepares subcommand cmd, which calls CALLBACK (argv[0]) with ARGS (the rest; argc
 * counts both): checks that CALLBACK was given, packs ARGS into sb and, with unp not
 * NULL, decodes them into *params (stored in *unp), then connects. sb and unp are
 * initialised here in any case; the caller destroys them. Returns the client (caller
 * closes it), or NULL after reporting, with *exit_code set. */
daffi_client *ctl_call_setup(const ctl_opts *o, const char *cmd, int argc, char **argv,
                             msgpack_sbuffer *sb, msgpack_unpacked *unp,
                             msgpack_object *params, int *exit_code);

/* Prints obj as JSON on stdout (compact or pretty per o) with a newline. Returns 0,
 * or CTL_EXIT_OTHER when memory ran out or stdout failed. */
int ctl_print_json(const ctl_opts *o, const msgpack_object *obj);

#endif /* DAFFICTL_H */
