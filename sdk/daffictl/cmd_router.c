/*
 * cmd_router.c - the daffictl subcommands about members and the calls a router
 * serves: members, cast, wait, watch (membership events) and stream (sdk/PROTOCOL.md
 * section 8). cast, wait and watch use control methods only a router answers; a plain
 * service answers them NO_CALLBACK, which is reported as "needs a router".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "json.h"

#include "daffictl.h"

#define MAX_NAMES 256 /* --to NAME / wait NAME... given on one command line */

/* Reports err of subcommand cmd. A NO_CALLBACK answer naming the control method
 * itself means the peer is no router (a daffid service says "daffi.cast needs a
 * router"; other peers name the method they do not know): say so plainly, the exit
 * code staying NO_CALLBACK's. A router's NO_CALLBACK names the callback instead. */
static int report_router(const ctl_opts *o, const daffi_error *err, const char *cmd,
                         const char *method)
{
    if (err->code == DAFFI_E_NO_CALLBACK && err->remote && err->message != NULL &&
        strstr(err->message, method) != NULL) {
        fprintf(stderr,
                "daffictl: %s needs a router: %s answered that it has no %s, so it is a "
                "plain service (role=service) or not a daffid at all.\n"
                "Point -s at a daffid running role=router. (It said: %s)\n",
                cmd, o->address, method, err->message != NULL ? err->message : "");
        return ctl_exit_code(err->code);
    }
    return ctl_report(o, err);
}

/* Prints one member error ([code, message(, details)]) as "NAME (code N): message". */
static void print_member_error(const char *name, size_t name_len, const msgpack_object *e)
{
    const char *text = "";
    size_t text_len = 0;
    const msgpack_object *details;
    int code = 0;

    daffi_error_parse(e, &code, &text, &text_len, &details);
    printf("%.*s: %s (code %d): %.*s\n", (int)name_len, name, daffi_error_name(code), code,
           (int)text_len, text);
}

/* ---- members ------------------------------------------------------------------- */

/* daffictl members: one line per member "NAME: cb1 cb2 ...", or the list as JSON. */
static int run_members(const ctl_opts *o, int argc, char **argv)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    daffi_client *c;
    const msgpack_object *m, *name, *cbs;
    size_t i, k;
    int rc = 0;

    (void)argv;
    if (argc > 0)
        return ctl_usage("members", "takes no arguments");
    if ((c = ctl_connect(o, &rc)) == NULL)
        return rc;
    if (daffi_members(c, o->timeout_ms, &res, &err) == -1) {
        rc = ctl_report(o, &err);
        daffi_error_clear(&err);
        daffi_close(c);
        return rc;
    }
    if (o->json_explicit || res.obj.type != MSGPACK_OBJECT_ARRAY) {
        rc = ctl_print_json(o, &res.obj);
    } else {
        for (i = 0; (m = daffi_obj_at(&res.obj, i)) != NULL; i++) {
            name = daffi_obj_get(m, "name");
            cbs = daffi_obj_get(m, "callbacks");
            if (name == NULL || name->type != MSGPACK_OBJECT_STR) {
                rc = ctl_print_json(o, m); /* not the documented shape: show it as is */
                continue;
            }
            printf("%.*s:", (int)name->via.str.size, name->via.str.ptr);
            for (k = 0; cbs != NULL && k < cbs->via.array.size && cbs->type ==
                 MSGPACK_OBJECT_ARRAY; k++) {
                const msgpack_object *cb = &cbs->via.array.ptr[k];

                if (cb->type == MSGPACK_OBJECT_STR)
                    printf(" %.*s", (int)cb->via.str.size, cb->via.str.ptr);
            }
            printf("\n");
        }
        if (i == 0)
            fprintf(stderr, "daffictl: members: none\n");
    }
    daffi_result_free(&res);
    daffi_close(c);
    return rc;
}

/* ---- cast ---------------------------------------------------------------------- */

/* Parses the options of cast that precede the positional arguments into
 * names (--to NAME, repeatable) and *nowait. Returns the index of the first
 * positional argument, or -1 after printing a usage error. */
static int parse_cast_opts(int argc, char **argv, const char **names, size_t *n, int *nowait)
{
    int i;

    *n = 0;
    for (i = 0; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--") == 0)
            return i + 1;
        if (strcmp(argv[i], "--nowait") == 0) {
            *nowait = 1;
        } else if (strcmp(argv[i], "--to") == 0 || strncmp(argv[i], "--to=", 5) == 0) {
            const char *v = argv[i][4] == '=' ? argv[i] + 5 : (i + 1 < argc ? argv[++i] : NULL);

            if (v == NULL || v[0] == '\0') {
                fprintf(stderr, "daffictl: cast: --to needs a member name\n");
                return -1;
            }
            if (*n == MAX_NAMES) {
                fprintf(stderr, "daffictl: cast: at most %d --to names\n", MAX_NAMES);
                return -1;
            }
            names[(*n)++] = v;
        } else {
            ctl_usage("cast", "unknown option '%s'", argv[i]);
            return -1;
        }
    }
    return i;
}

/* Prints a cast result {name: [error, result]...}: the map as JSON with --json or
 * --pretty, else one line per member. Returns the exit code: 0 when every member
 * succeeded, else the code of the first member's error. */
static int print_cast(const ctl_opts *o, const msgpack_object *map)
{
    const msgpack_object_kv *kv;
    const msgpack_object *e, *r;
    int rc = 0, code;
    const char *text;
    size_t text_len, i;
    const msgpack_object *details;
    char *json;

    if (map->type != MSGPACK_OBJECT_MAP) {
        fprintf(stderr, "daffictl: cast: the router answered something else than a map:\n");
        ctl_print_json(o, map);
        return CTL_EXIT_MESSAGE;
    }
    if (o->json_explicit)
        rc = ctl_print_json(o, map);
    for (i = 0; i < map->via.map.size; i++) {
        kv = &map->via.map.ptr[i];
        e = daffi_obj_at(&kv->val, 0);
        r = daffi_obj_at(&kv->val, 1);
        if (kv->key.type != MSGPACK_OBJECT_STR || e == NULL || r == NULL) {
            if (!o->json_explicit) {
                fprintf(stderr, "daffictl: cast: malformed entry %zu in the answer\n", i);
            }
            rc = rc != 0 ? rc : CTL_EXIT_MESSAGE;
            continue;
        }
        if (e->type != MSGPACK_OBJECT_NIL) {
            code = DAFFI_E_PROTOCOL;
            daffi_error_parse(e, &code, &text, &text_len, &details);
            if (rc == 0)
                rc = ctl_exit_code(code);
            if (!o->json_explicit)
                print_member_error(kv->key.via.str.ptr, kv->key.via.str.size, e);
            continue;
        }
        if (!o->json_explicit) {
            json = ctl_json_dump(r, o->json_flags);
            printf("%.*s: %s\n", (int)kv->key.via.str.size, kv->key.via.str.ptr,
                   json != NULL ? json : "(out of memory)");
            free(json);
        }
    }
    if (map->via.map.size == 0 && !o->json_explicit)
        fprintf(stderr, "daffictl: cast: no member was reached\n");
    return rc;
}

/* daffictl cast [--to NAME]... [--nowait] CALLBACK [ARGS...] */
static int run_cast(const ctl_opts *o, int argc, char **argv)
{
    const char *to[MAX_NAMES];
    size_t nto;
    int nowait = 0, first, rc;
    msgpack_sbuffer sb;
    msgpack_unpacked unp;
    msgpack_object params;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    daffi_client *c;

    first = parse_cast_opts(argc, argv, to, &nto, &nowait);
    if (first == -1)
        return CTL_EXIT_USAGE;
    c = ctl_call_setup(o, "cast", argc - first, argv + first, &sb, &unp, &params, &rc);
    if (c == NULL) {
        msgpack_unpacked_destroy(&unp);
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    if (nowait) {
        if (daffi_cast_nowait(c, argv[first], &params, to, nto, o->timeout_ms, &err) == -1)
            rc = ctl_report(o, &err);
    } else if (daffi_cast(c, argv[first], &params, to, nto, o->timeout_ms, &res, &err) == 0) {
        rc = print_cast(o, &res.obj);
        daffi_result_free(&res);
    } else {
        rc = report_router(o, &err, "cast", "daffi.cast");
    }
    daffi_error_clear(&err);
    daffi_close(c);
    msgpack_unpacked_destroy(&unp);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- wait ---------------------------------------------------------------------- */

/* daffictl wait NAME...: returns once every member named is present. */
static int run_wait(const ctl_opts *o, int argc, char **argv)
{
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c;
    int rc = 0, i;

    if (argc < 1)
        return ctl_usage("wait", "missing NAME");
    for (i = 0; i < argc; i++) {
        if (argv[i][0] == '\0') {
            fprintf(stderr, "daffictl: wait: argument %d: empty member name\n", i + 1);
            return CTL_EXIT_USAGE;
        }
    }
    if ((c = ctl_connect(o, &rc)) == NULL)
        return rc;
    if (daffi_wait_for_members(c, (const char *const *)argv, (size_t)argc, o->timeout_ms,
                               &err) == -1) {
        rc = report_router(o, &err, "wait", "daffi.wait");
    } else if (o->json_explicit) {
        printf("true\n");
    } else {
        printf("present:");
        for (i = 0; i < argc; i++)
            printf(" %s", argv[i]);
        printf("\n");
    }
    daffi_error_clear(&err);
    daffi_close(c);
    return rc;
}

/* ---- watch --------------------------------------------------------------------- */

/* What a watch run shares with its callbacks. */
typedef struct watch_run {
    const ctl_opts *o;
    struct event_base *base;
    long count;            /* events to print before exiting; 0: no limit */
    long seen;
    int reconnect;         /* --reconnect: survive the router going away */
    int rc;                /* exit code */
} watch_run;

/* A membership event: one line (or one JSON value) on stdout; stops after --count. */
static void watch_event(daffi_client *c, const char *type, const char *member,
                        const msgpack_object *event, void *arg)
{
    watch_run *w = arg;

    (void)c;
    if (w->o->json_explicit)
        w->rc = ctl_print_json(w->o, event);
    else
        printf("%s %s\n", type, member);
    fflush(stdout);
    if (w->count > 0 && ++w->seen >= w->count)
        event_base_loopbreak(w->base);
}

/* daffi.subscribe answered: an error (a plain service: "needs a router") ends the run. */
static void watch_subscribed(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    watch_run *w = arg;

    (void)c;
    (void)res;
    if (err != NULL) {
        w->rc = report_router(w->o, err, "watch", "daffi.subscribe");
        event_base_loopbreak(w->base);
    }
}

/* Connection changes: reported and survived with --reconnect, else a drop ends the run
 * with exit 2. */
static void watch_state(daffi_client *c, int connected, const daffi_error *why, void *arg)
{
    watch_run *w = arg;

    (void)c;
    if (connected) {
        if (w->reconnect)
            fprintf(stderr, "daffictl: watch: connected to %s\n", w->o->address);
        return;
    }
    if (w->reconnect) {
        fprintf(stderr, "daffictl: watch: %s (reconnecting)\n",
                why->message != NULL ? why->message : "disconnected");
        return;
    }
    w->rc = ctl_report(w->o, why);
    event_base_loopbreak(w->base);
}

/* SIGINT / SIGTERM: stop watching (exit 0). */
static void watch_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

/* Parses watch's options. Returns 0, or CTL_EXIT_USAGE after printing why. */
static int parse_watch_opts(int argc, char **argv, watch_run *w)
{
    char *end;
    int i;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--reconnect") == 0) {
            w->reconnect = 1;
        } else if (strcmp(argv[i], "--count") == 0) {
            if (i + 1 >= argc)
                return ctl_usage("watch", "--count needs a number");
            w->count = strtol(argv[++i], &end, 10);
            if (*end != '\0' || w->count <= 0) {
                fprintf(stderr, "daffictl: watch: --count '%s': expected a number > 0\n",
                        argv[i]);
                return CTL_EXIT_USAGE;
            }
        } else {
            return ctl_usage("watch", "unknown argument '%s'", argv[i]);
        }
    }
    return 0;
}

/* daffictl watch [--count N] [--reconnect]: prints membership events as they come. */
static int run_watch(const ctl_opts *o, int argc, char **argv)
{
    watch_run w;
    daffi_client_opts copts;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c;
    struct event *sigint, *sigterm;

    memset(&w, 0, sizeof(w));
    w.o = o;
    if ((w.rc = parse_watch_opts(argc, argv, &w)) != 0)
        return w.rc;
    w.base = event_base_new();
    if (w.base == NULL) {
        fprintf(stderr, "daffictl: watch: cannot create an event loop\n");
        return CTL_EXIT_OTHER;
    }
    memset(&copts, 0, sizeof(copts));
    ctl_client_security(o, &copts);
    if (w.reconnect)
        copts.reconnect_ms = 100;
    c = daffi_client_new(w.base, o->address, &copts, &err);
    if (c == NULL) {
        w.rc = err.code == DAFFI_E_BAD_ARGS ? CTL_EXIT_USAGE : ctl_report(o, &err);
        if (err.code == DAFFI_E_BAD_ARGS)
            fprintf(stderr, "daffictl: %s\n", err.message != NULL ? err.message : "bad address");
        daffi_error_clear(&err);
        event_base_free(w.base);
        return w.rc;
    }
    daffi_client_on_state(c, watch_state, &w);
    if (daffi_subscribe_members_async(c, watch_event, &w, o->timeout_ms, watch_subscribed,
                                      &w, &err) == -1) {
        w.rc = ctl_report(o, &err);
        daffi_error_clear(&err);
        daffi_close(c);
        event_base_free(w.base);
        return w.rc;
    }
    sigint = evsignal_new(w.base, SIGINT, watch_signal, w.base);
    sigterm = evsignal_new(w.base, SIGTERM, watch_signal, w.base);
    if (sigint != NULL)
        evsignal_add(sigint, NULL);
    if (sigterm != NULL)
        evsignal_add(sigterm, NULL);
    event_base_dispatch(w.base);
    /* the state callback must not report the close as a lost connection */
    daffi_client_on_state(c, NULL, NULL);
    daffi_close(c);
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
    event_base_free(w.base);
    return w.rc;
}

/* ---- stream ------------------------------------------------------------------- */

#define STREAM_CHUNK_DEFAULT (64 * 1024)

/* Parses stream's options (before CALLBACK). Returns the index of CALLBACK, or -1
 * after printing why. */
static int parse_stream_opts(int argc, char **argv, const char **to, unsigned *window,
                             size_t *chunk)
{
    char *end;
    long v;
    int i;

    for (i = 0; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--") == 0)
            return i + 1;
        if (i + 1 >= argc) {
            fprintf(stderr, "daffictl: stream: %s needs a value\n", argv[i]);
            return -1;
        }
        if (strcmp(argv[i], "--to") == 0) {
            if (argv[i + 1][0] == '\0') {
                fprintf(stderr, "daffictl: stream: --to needs a member name\n");
                return -1;
            }
            *to = argv[++i];
            continue;
        }
        v = strtol(argv[i + 1], &end, 10);
        if (strcmp(argv[i], "--window") == 0) {
            if (argv[i + 1][0] == '\0' || *end != '\0' || v < 1 || v > 1024) {
                ctl_usage("stream", "--window '%s': expected a number from 1 to 1024",
                          argv[i + 1]);
                return -1;
            }
            *window = (unsigned)v;
        } else if (strcmp(argv[i], "--chunk-size") == 0) {
            if (argv[i + 1][0] == '\0' || *end != '\0' || v < 1 || v > 16 * 1024 * 1024) {
                ctl_usage("stream", "--chunk-size '%s': expected bytes from 1 to %d",
                          argv[i + 1], 16 * 1024 * 1024);
                return -1;
            }
            *chunk = (size_t)v;
        } else {
            ctl_usage("stream", "unknown option '%s'", argv[i]);
            return -1;
        }
        i++;
    }
    return i;
}

/* Sends everything stdin holds on s, in chunks of up to size bytes. Returns 0, or an
 * exit code after reporting. */
static int stream_stdin(const ctl_opts *o, daffi_stream *s, size_t size)
{
    daffi_error err = DAFFI_ERROR_INIT;
    char *buf = malloc(size);
    size_t n;
    int rc = 0;

    if (buf == NULL) {
        fprintf(stderr, "daffictl: stream: out of memory\n");
        return CTL_EXIT_OTHER;
    }
    for (;;) {
        n = fread(buf, 1, size, stdin);
        if (n > 0 && daffi_stream_send_bin(s, buf, n, o->timeout_ms, &err) == -1) {
            rc = ctl_report(o, &err);
            break;
        }
        if (n < size) {
            if (ferror(stdin)) {
                perror("daffictl: stream: stdin");
                rc = CTL_EXIT_OTHER;
            }
            break;
        }
    }
    daffi_error_clear(&err);
    free(buf);
    return rc;
}

/* daffictl stream [--to NAME] [--window N] [--chunk-size BYTES] CALLBACK [ARGS...]:
 * stdin to a stream handler, then its one result. */
static int run_stream(const ctl_opts *o, int argc, char **argv)
{
    const char *to = NULL;
    unsigned window = 0;
    size_t chunk = STREAM_CHUNK_DEFAULT;
    msgpack_sbuffer sb;
    msgpack_unpacked unp;
    msgpack_object params;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_result res;
    daffi_stream *s;
    daffi_client *c;
    int first, rc;

    first = parse_stream_opts(argc, argv, &to, &window, &chunk);
    if (first == -1)
        return CTL_EXIT_USAGE;
    c = ctl_call_setup(o, "stream", argc - first, argv + first, &sb, &unp, &params, &rc);
    if (c == NULL) {
        msgpack_unpacked_destroy(&unp);
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    s = daffi_stream_open(c, argv[first], &params, to, window, o->timeout_ms, &err);
    if (s == NULL) {
        rc = report_router(o, &err, "stream", "daffi.stream");
    } else if ((rc = stream_stdin(o, s, chunk)) != 0) {
        daffi_stream_abort(s);
    } else if (daffi_stream_end(s, o->timeout_ms, &res, &err) == 0) {
        rc = ctl_print_json(o, &res.obj);
        daffi_result_free(&res);
    } else {
        rc = ctl_report(o, &err);
    }
    daffi_error_clear(&err);
    daffi_close(c);
    msgpack_unpacked_destroy(&unp);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

const ctl_cmd ctl_cmd_members = {
    "members", run_members, "members",
    "list the members and their callbacks (-a/-c: the admin socket's)",
    "Calls daffi.members and prints one line per member: its name, then the callbacks\n"
    "it serves. A plain service lists itself; a router lists every member connected to\n"
    "it. With --json or --pretty: the list as JSON, [{\"name\": ..., \"callbacks\": [...]}].\n"
    "\n"
    "Example:\n"
    "  $ daffictl members\n"
    "  daffid: add multiply divide echo echo_after fib\n"};

const ctl_cmd ctl_cmd_cast = {
    "cast", run_cast, "cast [--to NAME]... [--nowait] CALLBACK [ARGS...]",
    "call a callback on every member that serves it (router)",
    "Asks a router (daffi.cast) to call CALLBACK(ARGS) on every member that exposes it,\n"
    "or only on the members named with --to, and prints each member's answer:\n"
    "  w1: 3\n"
    "  w2: HANDLER_ERROR (code 4): boom\n"
    "With --json or --pretty: the router's map as JSON, {member: [error, result]...}.\n"
    "-t TIMEOUT_MS is each member's deadline (the router answers TIMEOUT for a member\n"
    "that misses it); daffictl itself waits 1 s longer for the router's answer.\n"
    "ARGS as for `call`.\n"
    "\n"
    "  --to NAME   only this member (repeat for more)\n"
    "  --nowait    send it as a notification (cast_nowait): nothing is printed\n"
    "\n"
    "Exit 0 when every member reached succeeded; else the exit code of the first\n"
    "member's error class. A plain service has no daffi.cast: daffictl says the\n"
    "command needs a router and exits 6.\n"};

const ctl_cmd ctl_cmd_wait = {
    "wait", run_wait, "wait NAME...",
    "wait until the named members are connected (router)",
    "Asks a router (daffi.wait) to answer once every member NAME is connected, waiting\n"
    "at most -t TIMEOUT_MS. Prints `present: NAME...` (--json: true) and exits 0, or\n"
    "exits 3 with the router's TIMEOUT naming who is missing. A plain service has no\n"
    "daffi.wait: daffictl says the command needs a router and exits 6.\n"
    "\n"
    "Example:\n"
    "  daffictl -t 10000 wait worker-1 worker-2 && start-the-job\n"};

const ctl_cmd ctl_cmd_watch = {
    "watch", run_watch, "watch [--count N] [--reconnect]",
    "print membership events as members join and leave (router)",
    "Subscribes to a router's membership events (daffi.subscribe) and prints one line\n"
    "per event until interrupted (Ctrl-C, SIGTERM: exit 0):\n"
    "  joined worker-1\n"
    "  left worker-1\n"
    "With --json or --pretty: each event as JSON, {\"type\": ..., \"member\": ...}.\n"
    "-t TIMEOUT_MS bounds the wait for the subscription's answer only.\n"
    "\n"
    "  --count N     exit 0 after N events\n"
    "  --reconnect   when the router goes away, reconnect (with backoff) and subscribe\n"
    "                again instead of exiting 2; notices go to stderr\n"
    "\n"
    "A plain service has no daffi.subscribe: daffictl says the command needs a router\n"
    "and exits 6.\n"};

const ctl_cmd ctl_cmd_stream = {
    "stream", run_stream, "stream [--to NAME] [--window N] [--chunk-size BYTES] CALLBACK [ARGS...]",
    "send stdin to a stream handler in chunks, print its result",
    "Opens a stream (daffi.stream, sdk/PROTOCOL.md section 8) to CALLBACK, a stream\n"
    "handler, with ARGS (as for `call`), sends stdin to it in order as bin chunks of\n"
    "--chunk-size bytes (default 65536), waiting for the receiver's credit whenever the\n"
    "window is used up, then ends the stream and prints its one result as JSON.\n"
    "-t TIMEOUT_MS bounds each step: the open, each wait for credit, the end.\n"
    "\n"
    "  --to NAME         through a router: the member that receives the stream\n"
    "  --window N        ask for a window of N chunks (1-1024; default: the receiver's)\n"
    "  --chunk-size B    bytes per chunk (1-16777216; default 65536)\n"
    "\n"
    "Example (daffid's echo plugin has a stream handler, digest):\n"
    "  $ head -c 1000000 /dev/zero | daffictl stream digest\n"
    "  {\"chunks\":16,\"bytes\":1000000,\"fnv1a64\":...}\n"
    "A callback that is no stream handler answers BAD_ARGS (exit 5).\n"};
