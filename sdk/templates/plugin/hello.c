/*
 * hello.c - a daffid plugin to start from: hello(name) returns "GREETING NAME".
 *
 * It shows the whole life of a plugin: init() reads the [config] section of its ini
 * (greeting, default "hello") into per-instance state, the handler reads a typed
 * argument, answers a BAD_ARGS error naming what was wrong, or builds its result with
 * the reply packer, and fini() frees the state when the generation's last call is
 * done. daffid reloads the plugin when hello.so or its ini changes: a new generation
 * starts from init() again.
 *
 * Build: make (see the Makefile). Reference: daffi_plugin(3), daffi_arg(3),
 * daffi_reply(3), daffi_host(3), and <daffi/plugin.h>.
 */
#include <stdlib.h>
#include <string.h>

#include <daffi/plugin.h>

/* One instance's state, made by init() and freed by fini(). */
typedef struct hello_state {
    char *greeting;
    size_t len;
} hello_state;

static int hello_init(daffi_host *host, void **state)
{
    const char *g = daffi_config_get(host, "greeting");
    hello_state *st = calloc(1, sizeof(*st));

    if (g == NULL)
        g = "hello";
    if (st == NULL || (st->greeting = malloc(strlen(g) + 1)) == NULL) {
        free(st);
        daffi_host_error(host, "out of memory");
        return -1;
    }
    st->len = strlen(g);
    memcpy(st->greeting, g, st->len + 1);
    daffi_log(host, DAFFI_LOG_INFO, "greeting=\"%s\"", st->greeting);
    *state = st;
    return 0;
}

static void hello_fini(void *state)
{
    hello_state *st = state;
    free(st->greeting);
    free(st);
}

/* hello(name): "GREETING name"; anything but one string is BAD_ARGS. */
static daffi_status hello(daffi_call *call)
{
    const hello_state *st = daffi_call_state(call);
    const char *name;
    size_t len;

    if (daffi_argc(call) != 1 || daffi_arg_str(call, 0, &name, &len) == -1) {
        daffi_reply_error(call, DAFFI_E_BAD_ARGS, "hello(name): name must be a string");
        return DAFFI_DONE;
    }
    msgpack_packer *pk = daffi_reply_packer(call);
    msgpack_pack_str(pk, st->len + 1 + len);
    msgpack_pack_str_body(pk, st->greeting, st->len);
    msgpack_pack_str_body(pk, " ", 1);
    msgpack_pack_str_body(pk, name, len);
    return DAFFI_DONE;
}

static const daffi_callback_def callbacks[] = {
    {"hello", hello, 0, "hello(name): greets name"},
    {NULL, NULL, 0, NULL},
};

DAFFI_PLUGIN("hello", "1.0.0", hello_init, hello_fini, callbacks);
