/*
 * common.c - helpers every daffictl subcommand uses: connecting, packing the
 * command-line arguments, printing results and errors, exit codes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#include "daffictl.h"

/* Maps an error code to daffictl's exit code (the table of --help). */
int ctl_exit_code(int code)
{
    switch (code) {
    case DAFFI_OK: return CTL_EXIT_OK;
    case DAFFI_E_UNAVAILABLE: return CTL_EXIT_UNAVAILABLE;
    case DAFFI_E_TIMEOUT: return CTL_EXIT_TIMEOUT;
    case DAFFI_E_HANDLER_ERROR: return CTL_EXIT_HANDLER;
    case DAFFI_E_BAD_ARGS: return CTL_EXIT_BAD_ARGS;
    case DAFFI_E_NO_CALLBACK: return CTL_EXIT_NO_CALLBACK;
    case DAFFI_E_OVERLOADED:
    case DAFFI_E_SHUTTING_DOWN: return CTL_EXIT_BUSY;
    case DAFFI_E_PROTOCOL:
    case DAFFI_E_TOO_LARGE: return CTL_EXIT_MESSAGE;
    case DAFFI_E_DENIED: return CTL_EXIT_DENIED;
    default: return CTL_EXIT_OTHER;
    }
}

/* Prints err to stderr: "NAME (code N): message", then "details: <json>" when the
 * peer sent details. Returns the exit code for err. */
int ctl_report(const ctl_opts *o, const daffi_error *err)
{
    char *details;

    fprintf(stderr, "%s (code %d): %s\n", err->name != NULL ? err->name : "UNKNOWN", err->code,
            err->message != NULL ? err->message : "(no message)");
    if (err->details.type != MSGPACK_OBJECT_NIL) {
        details = ctl_json_dump(&err->details, o->json_flags);
        fprintf(stderr, "details: %s\n", details != NULL ? details : "(out of memory)");
        free(details);
    }
    return ctl_exit_code(err->code);
}

/* Connects to o->address within the call timeout (the library's default when the
 * timeout is longer or infinite). Returns the client, or NULL after reporting. */
daffi_client *ctl_connect(const ctl_opts *o, int *exit_code)
{
    daffi_client_opts copts;
    daffi_error err = DAFFI_ERROR_INIT;
    daffi_client *c;

    memset(&copts, 0, sizeof(copts));
    ctl_client_security(o, &copts);
    if (o->timeout_ms > 0 && o->timeout_ms < DAFFI_DEFAULT_CONNECT_TIMEOUT_MS)
        copts.connect_timeout_ms = o->timeout_ms;
    c = daffi_connect(o->address, &copts, &err);
    if (c == NULL) {
        *exit_code = err.code == DAFFI_E_BAD_ARGS ? CTL_EXIT_USAGE : ctl_report(o, &err);
        if (err.code == DAFFI_E_BAD_ARGS)
            fprintf(stderr, "daffictl: %s\n", err.message != NULL ? err.message : "bad address");
        daffi_error_clear(&err);
    }
    return c;
}

/* See daffictl.h. */
void ctl_client_security(const ctl_opts *o, daffi_client_opts *copts)
{
    copts->tls_ca = o->tls_ca;
    copts->tls_cert = o->tls_cert;
    copts->tls_key = o->tls_key;
    copts->tls_insecure = o->tls_insecure;
    copts->token = o->token;
}

/* Packs the arguments as a params array into sb. Returns 0, or CTL_EXIT_USAGE after
 * naming the argument that was wrong. */
int ctl_pack_args(msgpack_sbuffer *sb, int argc, char **argv)
{
    msgpack_packer pk;
    ctl_json_error jerr;
    int i;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, (size_t)argc) != 0) {
        fprintf(stderr, "daffictl: out of memory\n");
        return CTL_EXIT_USAGE;
    }
    for (i = 0; i < argc; i++) {
        if (ctl_json_arg(&pk, argv[i], &jerr) == -1) {
            fprintf(stderr, "daffictl: argument %d (%s): %s\n", i + 1, argv[i], jerr.text);
            return CTL_EXIT_USAGE;
        }
    }
    return 0;
}

/* Prints obj as JSON and a newline on stdout. Returns 0, or CTL_EXIT_OTHER. */
int ctl_print_json(const ctl_opts *o, const msgpack_object *obj)
{
    char *text = ctl_json_dump(obj, o->json_flags);
    int rc = 0;

    if (text == NULL) {
        fprintf(stderr, "daffictl: out of memory while printing the result\n");
        return CTL_EXIT_OTHER;
    }
    if (puts(text) == EOF || fflush(stdout) == EOF) {
        perror("daffictl: stdout");
        rc = CTL_EXIT_OTHER;
    }
    free(text);
    return rc;
}

/* See daffictl.h. */
int ctl_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "daffictl: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see: daffictl help %s)\n", cmd);
    return CTL_EXIT_USAGE;
}

/* See daffictl.h. The arguments are checked before connecting: a bad one costs no
 * connection. */
daffi_client *ctl_call_setup(const ctl_opts *o, const char *cmd, int argc, char **argv,
                             msgpack_sbuffer *sb, msgpack_unpacked *unp,
                             msgpack_object *params, int *exit_code)
{
    size_t off = 0;

    msgpack_sbuffer_init(sb);
    if (unp != NULL)
        msgpack_unpacked_init(unp);
    if (argc < 1) {
        *exit_code = ctl_usage(cmd, "missing CALLBACK");
        return NULL;
    }
    *exit_code = ctl_pack_args(sb, argc - 1, argv + 1);
    if (*exit_code != 0)
        return NULL;
    if (unp != NULL) {
        if (msgpack_unpack_next(unp, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS) {
            fprintf(stderr, "daffictl: %s: cannot encode the arguments\n", cmd);
            *exit_code = CTL_EXIT_USAGE;
            return NULL;
        }
        *params = unp->data;
    }
    return ctl_connect(o, exit_code);
}
