/*
 * cmd_call.c - the daffictl subcommands that call a service directly:
 * call (rpc), notify (rpc_nowait) and ping.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#include "daffictl.h"

/* Parses call's options before CALLBACK (--to NAME, --to=NAME, --). Returns the index
 * of CALLBACK, or -1 after printing a usage error. */
static int parse_call_opts(int argc, char **argv, const char **to)
{
    int i;

    for (i = 0; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--") == 0)
            return i + 1;
        if (strcmp(argv[i], "--to") == 0 || strncmp(argv[i], "--to=", 5) == 0) {
            const char *v = argv[i][4] == '=' ? argv[i] + 5 : (i + 1 < argc ? argv[++i] : NULL);

            if (v == NULL || v[0] == '\0') {
                fprintf(stderr, "daffictl: call: --to needs a member name\n");
                return -1;
            }
            *to = v;
        } else {
            ctl_usage("call", "unknown option '%s'", argv[i]);
            return -1;
        }
    }
    return i;
}

/* daffictl call [--to NAME] CALLBACK [ARGS...]: prints the result as JSON. The
 * timeout (-t) goes with the call (daffi.call's timeout_ms), so the server and a
 * router stop waiting when daffictl does. */
static int run_call(const ctl_opts *o, int argc, char **argv)
{
    msgpack_sbuffer sb;
    daffi_client *c;
    daffi_result res;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_rpc_opts ro = {NULL, o->timeout_ms};
    int rc, first = parse_call_opts(argc, argv, &ro.to);

    if (first == -1)
        return CTL_EXIT_USAGE;
    argc -= first;
    argv += first;
    if ((c = ctl_call_setup(o, "call", argc, argv, &sb, NULL, NULL, &rc)) == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    if (daffi_rpc_raw_with(c, argv[0], sb.data, sb.size, &ro, &res, &err) == 0) {
        rc = ctl_print_json(o, &res.obj);
        daffi_result_free(&res);
    } else {
        rc = ctl_report(o, &err);
        daffi_error_clear(&err);
    }
    daffi_close(c);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* daffictl notify CALLBACK [ARGS...]: sends a notification, prints nothing. */
static int run_notify(const ctl_opts *o, int argc, char **argv)
{
    msgpack_sbuffer sb;
    daffi_client *c;
    daffi_error err = DAFFI_ERROR_INIT;
    int rc;

    if ((c = ctl_call_setup(o, "notify", argc, argv, &sb, NULL, NULL, &rc)) == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    if (daffi_notify_raw(c, argv[0], sb.data, sb.size, o->timeout_ms, &err) == -1) {
        rc = ctl_report(o, &err);
        daffi_error_clear(&err);
    }
    daffi_close(c);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* daffictl ping: calls daffi.ping, prints the round trip. */
static int run_ping(const ctl_opts *o, int argc, char **argv)
{
    daffi_client *c;
    daffi_error err = DAFFI_ERROR_INIT;
    int64_t rtt_us;
    int rc = 0;

    (void)argv;
    if (argc > 0)
        return ctl_usage("ping", "takes no arguments");
    if ((c = ctl_connect(o, &rc)) == NULL)
        return rc;
    if (daffi_ping(c, o->timeout_ms, &rtt_us, &err) == -1) {
        rc = ctl_report(o, &err);
        daffi_error_clear(&err);
    } else if (o->json_explicit) {
        printf((o->json_flags & CTL_JSON_PRETTY)
                   ? "{\n  \"result\": \"pong\",\n  \"rtt_us\": %" PRId64 "\n}\n"
                   : "{\"result\":\"pong\",\"rtt_us\":%" PRId64 "}\n",
               rtt_us);
    } else {
        printf("pong from %s in %.3f ms\n", daffi_client_address(c), (double)rtt_us / 1000.0);
    }
    daffi_close(c);
    return rc;
}

const ctl_cmd ctl_cmd_call = {
    "call", run_call, "call [--to NAME] CALLBACK [ARGS...]",
    "call a callback and print its result as JSON",
    "Calls CALLBACK with ARGS and waits (up to -t TIMEOUT_MS) for its result, which is\n"
    "printed on stdout as JSON (--pretty: indented). The timeout goes with the call\n"
    "(daffi.call's timeout_ms), so the server, and a router on the way, stop waiting\n"
    "when daffictl does.\n"
    "\n"
    "  --to NAME   through a router: only the member NAME serves the call (a member\n"
    "              that is not connected: UNAVAILABLE, exit 2)\n"
    "\n"
    "Each ARG is a JSON value where it parses as one, else a string:\n"
    "  3 -> int   -2.5 -> float   true, null   [1,2] -> array   {\"a\":1} -> map\n"
    "  '\"3\"' -> the string 3   hello -> the string hello\n"
    "  '{\"$bin\":\"AAEC\"}' -> bin (base64)   '{\"$ext\":[1,\"AAEC\"]}' -> ext\n"
    "  '{\"$map\":[[[1,2],\"a\"]]}' -> a map whose keys may be of any type\n"
    "Results use the same notation: bin as {\"$bin\": base64}, ext as {\"$ext\": [type,\n"
    "base64]}, nil/boolean/number map keys as their JSON text, and a map no JSON object\n"
    "can hold (container keys, repeated keys) as {\"$map\": [[key, value]...]}.\n"
    "\n"
    "On error, prints `NAME (code N): message` (and the error's details as JSON) to\n"
    "stderr and exits with the code of the error's class (see daffictl --help).\n"
    "\n"
    "Examples:\n"
    "  daffictl call add 1 2                 -> 3\n"
    "  daffictl call echo '{\"k\":[1,2]}'       -> {\"k\":[1,2]}\n"
    "  daffictl -t 50 call echo_after 500 x  -> TIMEOUT (code 3): ..., exit 3\n"
    "  daffictl -s tcp://router:7000 call --to w1 add 1 2   -> 3, computed by w1\n"};

const ctl_cmd ctl_cmd_notify = {
    "notify", run_notify, "notify CALLBACK [ARGS...]",
    "send a notification (rpc_nowait): no reply",
    "Sends CALLBACK(ARGS) as a MessagePack-RPC notification and exits 0 once the\n"
    "message is handed to the operating system. The callback runs, but its result and\n"
    "its errors are not reported: a notification has no response (an unknown callback\n"
    "is counted by the server and ignored). ARGS as for `call`.\n"
    "\n"
    "Errors reported: the connection cannot be made (exit 2), or the message cannot be\n"
    "written within -t TIMEOUT_MS (exit 3).\n"
    "\n"
    "Example:\n"
    "  daffictl notify log_event '{\"level\":\"info\"}'\n"};

const ctl_cmd ctl_cmd_ping = {
    "ping", run_ping, "ping",
    "check that the server answers (daffi.ping)",
    "Calls daffi.ping and prints the round-trip time:\n"
    "  pong from tcp://127.0.0.1:6001 in 0.105 ms\n"
    "With --json or --pretty: {\"result\":\"pong\",\"rtt_us\":105}.\n"
    "Exit 0 when the server answered \"pong\"; 2 when it cannot be reached; 3 when it\n"
    "did not answer within -t TIMEOUT_MS.\n"};
