/*
 * config-t.h - the data model of daffid's configuration (types only).
 *
 * A dfd_config is built by dfd_config_load() from a directory of ini files and the
 * -o overrides; it owns every string it points to and is released whole by
 * dfd_config_free(). Nothing in it changes after load: a reload builds a new one.
 */
#ifndef DFD_CONFIG_T_H
#define DFD_CONFIG_T_H

#include <stddef.h>
#include <stdint.h>

#include <daffi/rpc.h>

typedef enum dfd_role { DFD_ROLE_SERVICE = 0, DFD_ROLE_ROUTER = 1, DFD_ROLE_WORKER = 2 } dfd_role;

typedef enum dfd_duplicate { DFD_DUP_REJECT = 0, DFD_DUP_REPLACE = 1 } dfd_duplicate;

typedef enum dfd_log_target { DFD_LOG_STDERR = 0, DFD_LOG_SYSLOG = 1 } dfd_log_target;
typedef enum dfd_log_format { DFD_LOG_TEXT = 0, DFD_LOG_JSON = 1 } dfd_log_format;

/* [server] plugin_paths: where a plugin's .so may be. */
typedef enum dfd_plugin_paths {
    DFD_PLUGIN_PATHS_ANY = 0,    /* any path (the configuration directory is trusted) */
    DFD_PLUGIN_PATHS_STRICT = 1  /* only under plugin_dir, symlinks resolved */
} dfd_plugin_paths;

/* [plugin] isolation: where a plugin's handlers run. */
typedef enum dfd_isolation_mode {
    DFD_ISOLATION_INLINE = 0,    /* in daffid's own threads (the default) */
    DFD_ISOLATION_PROCESS = 1    /* in supervised child processes (isolate.h) */
} dfd_isolation_mode;

/* [plugin] harakiri unset: twice the plugin's call timeout. */
#define DFD_HARAKIRI_DEFAULT UINT64_MAX

/* [tls] verify_clients: what a TLS listener asks of its clients' certificates. */
typedef enum dfd_tls_verify {
    DFD_TLS_VERIFY_NO = 0,       /* none asked (the default) */
    DFD_TLS_VERIFY_OPTIONAL = 1, /* asked; one that is sent must verify against ca */
    DFD_TLS_VERIFY_REQUIRE = 2   /* a client without a certificate that verifies fails */
} dfd_tls_verify;

/* [tls] min_version. */
typedef enum dfd_tls_version { DFD_TLS_V12 = 0, DFD_TLS_V13 = 1 } dfd_tls_version;

/* [auth] call.ID / serve.ID / member.ID: what an identity may do (auth.h). */
typedef enum dfd_auth_kind {
    DFD_AUTH_CALL = 0,           /* callbacks it may call */
    DFD_AUTH_SERVE = 1,          /* callbacks it may expose as a member */
    DFD_AUTH_MEMBER = 2          /* member names it may join under */
} dfd_auth_kind;

typedef struct dfd_auth_rule {
    int kind;                    /* dfd_auth_kind */
    char *identity;              /* owned; "*": every identity without a rule of its own */
    char **globs;                /* owned; fnmatch(3) patterns */
    size_t nglobs;
} dfd_auth_rule;

/* Where a value came from, for error messages: "conf.d/10-calc.ini:4" or "-o #2". */
typedef struct dfd_origin {
    char *file;          /* owned; the ini path as opened, or "-o" for an override */
    unsigned line;       /* 1-based line in file, or the override's 1-based index */
} dfd_origin;

typedef struct dfd_kv {
    char *key;           /* owned */
    char *value;         /* owned */
} dfd_kv;

/* One plugin declared by a file with a [plugin] section. */
typedef struct dfd_plugin_conf {
    char *name;          /* [plugin] name (required; [A-Za-z0-9_.-]+, unique) */
    char *path;          /* resolved .so path: relative paths resolve against plugin_dir */
    dfd_origin origin;   /* the ini file and the line of its [plugin] header */
    unsigned concurrency; /* calls running at once; 0 = unlimited */
    unsigned queue;      /* calls waiting past concurrency before OVERLOADED */
    unsigned blocking_max; /* its blocking calls on the pool at once; 0 = no cap */
    uint64_t timeout_ms; /* per-call deadline; 0 = the server's default_timeout */
    int enabled;         /* 0 skips the plugin (enabled = no) */
    int isolation;       /* isolation = inline | process (dfd_isolation_mode) */
    unsigned processes;  /* processes = N child processes serving it (isolation =
                            process; default 1) */
    uint64_t harakiri_ms; /* harakiri = how long a call may run in a child before the
                            child is killed; DFD_HARAKIRI_DEFAULT = twice the call
                            timeout (none without one); 0 = never */
    size_t rlimit_as;    /* rlimit_as = size: a child's address space (RLIMIT_AS);
                            0 = no limit */
    uint64_t rlimit_cpu_ms; /* rlimit_cpu = duration: the CPU time a child may use over
                            its life (RLIMIT_CPU, whole seconds); 0 = no limit */
    char *confine_dir;   /* plugin_paths = strict: plugin_dir with symlinks resolved,
                            under which the opened file must be; NULL: anywhere; owned */
    dfd_kv *config;      /* the free-form [config] section, in file order; owned */
    size_t nconfig;
} dfd_plugin_conf;

typedef struct dfd_config {
    char *dir;                 /* the configuration directory as given; owned */

    /* [server] */
    dfd_role role;             /* role = service | router | worker */
    char *name;                /* name = member name; default: the host name */
    daffi_addr *listen;        /* listen = tcp://h:p, unix:///path (comma separated) */
    size_t nlisten;
    unsigned workers;          /* workers = N | auto (auto: online CPUs); >= 1 */
    unsigned blocking_threads; /* blocking_threads = N | auto; >= 1 */
    uint64_t shutdown_timeout_ms; /* shutdown_timeout = duration (default 10s) */
    uint64_t default_timeout_ms;  /* default_timeout = duration (default 30s; 0 = none) */
    char *plugin_dir;          /* plugin_dir = dir (relative to the config dir); default:
                                  the config dir */
    int plugin_paths;          /* plugin_paths = any | strict (dfd_plugin_paths; default
                                  any) */
    uint64_t watch_max_wait_ms; /* watch_max_wait = duration: longest a change waits
                                  for a quiet moment before the reload (default 1s) */
    char *pidfile;             /* pidfile = path, NULL when unset */
    unsigned backlog;          /* backlog = N (default 1024) */
    unsigned unix_mode;        /* unix_mode = octal (default 0660) for Unix listeners */
    char *router;              /* router = address (role=worker), NULL when unset */
    int duplicate;             /* duplicate = reject | replace: a hello naming a member
                                  that exists (router; default reject) */
    uint64_t heartbeat_ms;     /* heartbeat = duration between pings of a member or of
                                  the router (default 1s; 0 = off) */
    unsigned heartbeat_misses; /* heartbeat_misses = N silent intervals before the peer
                                  is dropped (default 3) */
    unsigned member_inflight;  /* member_inflight = N forwarded calls a member may hold
                                  before the router skips it (default 16384) */
    uint64_t reconnect_max_ms; /* reconnect_max = duration: worker backoff ceiling
                                  (default 5s) */
    uint64_t stall_warning_ms; /* stall_warning = duration a loop may stay away from its
                                  event loop before the watchdog warns (default 1s;
                                  0 = off) */
    uint64_t startup_grace_ms; /* startup_grace = duration a restarted router holds calls
                                  for callbacks nobody exposes yet (default 2s; 0 = off) */
    char *state_file;          /* state_file = absolute path of the router's member file,
                                  or "none"; NULL when unset: the default place
                                  (members-file.h) */
    char *nats;                /* nats = nats://h:p[,nats://...]: a router's NATS cluster
                                  (the router becomes a gateway, docs/NATS.md); NULL:
                                  none. A worker names NATS with router = nats://... */
    char *nats_namespace;      /* nats_namespace = subject prefix (default "daffi") */
    char *nats_creds;          /* nats_creds = path of a NATS .creds file; NULL: none */
    char *nats_tls_ca;         /* nats_tls_ca = path of the CA file for TLS to NATS */

    /* [limits] */
    size_t max_message;        /* max_message = size (default 16M) */
    unsigned max_depth;        /* max_depth = N (default 32, at most 62) */
    unsigned max_pending;      /* max_pending = N calls per connection (default 16384) */
    unsigned max_connections;  /* max_connections = N (default 10000) */
    size_t max_output;         /* max_output = size: a connection's unsent replies past
                                  which daffid stops reading it (default 4M, >= 64K) */
    size_t max_memory;         /* max_memory = size: request and reply bytes all
                                  connections may hold (budget.h; default 1G, or a
                                  quarter of the RAM when that is less, >= 64M) */
    size_t max_connection_memory; /* max_connection_memory = size: one connection's
                                  share of max_memory (0 = auto: a quarter of it) */
    uint64_t idle_timeout_ms;  /* idle_timeout = duration without a complete message
                                  before a connection is closed (default 5m; 0 = off) */
    uint64_t read_timeout_ms;  /* read_timeout = duration a started message may take to
                                  arrive whole (default 30s; 0 = off) */

    /* [log] */
    int log_level;             /* level = debug | info | warn | error (daffi_log_level) */
    dfd_log_target log_target; /* target = stderr | syslog */
    dfd_log_format log_format; /* format = text (logfmt) | json */
    int access_log;            /* access_log = yes | no */

    /* [admin] (admin.h), and [server] metrics_listen (metrics.h) */
    char *admin_socket;        /* socket = path of the admin Unix socket; NULL: none */
    unsigned admin_mode;       /* mode = octal (default 0660) */
    long admin_uid;            /* owner = user name or uid; -1: left as created */
    long admin_gid;            /* group = group name or gid; -1: left as created */
    uint64_t admin_idle_ms;    /* idle_timeout = duration a client may stay silent
                                  (default 60s; 0 = no limit) */
    char **admin_load_paths;   /* load_paths = dir, dir...: where admin `load` may read
                                  files (relative ones joined to the config dir); none
                                  set: the config dir; owned */
    size_t nadmin_load_paths;
    int metrics_enabled;       /* 1 when metrics_listen is set */
    daffi_addr metrics_listen; /* metrics_listen = HOST:PORT, tcp://HOST:PORT or
                                  unix:///path: Prometheus /metrics over HTTP */

    long *admin_allow_uids;    /* allow_uids = users or uids that may use the admin
                                  socket (SO_PEERCRED); owned; none: anyone the file
                                  mode lets in */
    size_t nadmin_allow_uids;
    long *admin_allow_gids;    /* allow_gids = groups or gids likewise */
    size_t nadmin_allow_gids;

    /* [tls] (tls.h): paths resolved against the config dir; owned */
    char *tls_cert;            /* cert = PEM chain this daffid presents (listeners; a
                                  worker's client certificate) */
    char *tls_key;             /* key = its PEM private key */
    char *tls_ca;              /* ca = PEM CA bundle: verifies client certificates
                                  (listeners) and the router's (worker) */
    int tls_verify_clients;    /* verify_clients = no | optional | require */
    char *tls_ciphers;         /* ciphers = OpenSSL cipher list for TLS 1.2; NULL:
                                  OpenSSL's default */
    int tls_min_version;       /* min_version = TLS1.2 | TLS1.3 (dfd_tls_version) */
    uint64_t tls_handshake_timeout_ms; /* handshake_timeout = duration (default 10s) */
    int tls_ktls;              /* ktls = yes: let the kernel do the records
                                  (SSL_OP_ENABLE_KTLS) where it can; default no */
    int tls_listeners;         /* listen has a tls:// address */

    /* [auth] (auth.h) */
    char *auth_tokens;         /* tokens = path of the "name token" file; owned */
    char *auth_require;        /* require = yes | no | LIST as written (NULL: no): the
                                  listeners where nothing but daffi.auth and daffi.ping
                                  runs before a connection is authenticated; owned */
    unsigned char *listen_auth; /* nlisten entries, resolved from require at the end of
                                  the load: 1 when listen[i] requires it; owned */
    int auth_required;         /* some listener requires authentication */
    uint64_t auth_timeout_ms;  /* timeout = duration to authenticate (default 10s) */
    unsigned auth_max_failures; /* max_failures = N refused daffi.auth before the
                                  connection is closed (default 3) */
    char *auth_token_file;     /* token_file = path of the token this daffid presents to
                                  its router (worker); owned */
    dfd_auth_rule *auth_rules; /* call.ID, serve.ID, member.ID in file order; owned */
    size_t nauth_rules;

    dfd_plugin_conf *plugins;  /* in file order (alphabetical); owned */
    size_t nplugins;
} dfd_config;

/* Errors collected while loading: every problem is reported, not just the first. */
typedef struct dfd_errors {
    char **msgs;               /* owned, each "file:line: [section] key: what is wrong" */
    size_t count;
} dfd_errors;

#endif /* DFD_CONFIG_T_H */
