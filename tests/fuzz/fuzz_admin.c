/*
 * fuzz_admin.c - libFuzzer target for the admin socket: the transport (lines, limits),
 * the command parser and every command, in-process against a server without loops or
 * listeners. Not built by default: `make fuzz` builds it with clang and runs it
 * (FUZZ_TIME seconds; FUZZ_FILTER=admin for this one).
 *
 * Set-up (once): a configuration directory with a server ini and, in avail/, a plugin
 * ini for load to find (echo, when $BUILD/plugins/echo.so or build/plugins/echo.so
 * exists), one naming a .so that is not there, and one that is no ini at all; the
 * server has its configuration, main event base, private dir, reload engine and admin
 * state, as daffid's main thread has them.
 *
 * Each input is the bytes a client sends, with "@D" replaced by the configuration
 * directory (so that a corpus can name its files), at most 8 KiB: one admin client on
 * a bufferevent pair gets them, the base runs until nothing is left to do, then the
 * client hangs up. Properties checked on EVERY reply line: it is a JSON object; status
 * is "ok" or "error"; command is present, a known command's name for ok, a string or
 * null for an error; an error has a documented code and a non-empty detail; "errors",
 * when present, is an array of strings; an ok reply has its command's documented
 * members. Without a closing error (line_too_long, binary_input), every complete
 * non-blank line gets exactly one reply. A violation aborts (a crash to libFuzzer).
 * Between inputs the server is put back: drain and shutdown undone, runtime overrides
 * dropped, log level reset.
 */
#include <stddef.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "admin-int.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "reload.h"
#include "server.h"

#define FUZZ_MAX_INPUT 8190 /* below the client's read watermark: one transfer */

static dfd_server srv;
static char dir[64];

/* Writes text to dir/rel or aborts. */
static void put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

/* nftw callback of cleanup(): removes one entry. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* At exit (libFuzzer ends with exit()): reports what is still retiring, then removes
 * the configuration directory and the private plugin copies. */
static void cleanup(void)
{
    if (srv.reload != NULL)
        fprintf(stderr, "fuzz_admin: %zu generations still retiring at exit\n",
                srv.reload->nretiring);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    if (srv.private_dir[0] != '\0')
        nftw(srv.private_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Sets up the configuration directory and the server (see the top of the file). */
static void setup(void)
{
    static const char *const sos[] = { "build-fuzz/plugins/echo.so", "build/plugins/echo.so" };
    char text[PATH_MAX + 128], so[PATH_MAX];
    dfd_errors errs = {0};

    snprintf(dir, sizeof(dir), "/tmp/daffid-fuzz-admin.XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    snprintf(text, sizeof(text), "[server]\nlisten = unix://%s/never.sock\nworkers = 1\n"
             "shutdown_timeout = 1s\n[log]\nlevel = error\n", dir);
    put("00-server.ini", text);
    snprintf(text, sizeof(text), "%s/avail", dir);
    if (mkdir(text, 0700) == -1)
        abort();
    for (size_t i = 0; i < sizeof(sos) / sizeof(sos[0]); i++) {
        if (realpath(sos[i], so) != NULL) {
            snprintf(text, sizeof(text), "[plugin]\nname = echo\npath = %s\n", so);
            put("avail/echo.ini", text);
            break;
        }
    }
    put("avail/ghost.ini", "[plugin]\nname = ghost\npath = /nonexistent/ghost.so\n");
    put("avail/junk.ini", "root:x:0:0:root:/root:/bin/bash\n[server\nworkers = many\n");

    dfd_log_setup(DAFFI_LOG_ERROR, DFD_LOG_STDERR, DFD_LOG_TEXT, "fuzz_admin");
    srv.cfg = calloc(1, sizeof(*srv.cfg));
    if (srv.cfg == NULL || dfd_config_load(srv.cfg, dir, NULL, 0, 1, &errs) == -1)
        abort();
    srv.base = event_base_new();
    srv.started_ns = dfd_now_ns();
    if (srv.base == NULL || dfd_server_private_dir(&srv) == -1 ||
        dfd_server_load_plugins(&srv, &errs) == -1)
        abort();
    srv.reload = dfd_reload_new(&srv);
    if (srv.reload == NULL || admin_new(&srv) == NULL)
        abort();
}

/* Runs the base until it has nothing left to do now (deferred callbacks, timers due). */
static void run_base(void)
{
    for (int i = 0; i < 64; i++)
        event_base_loop(srv.base, EVLOOP_NONBLOCK);
}

/* Puts the server back as setup() left it. */
static void reset(void)
{
    dfd_admin *adm = srv.admin;
    int overrides = adm->nrt > 0;

    if (adm->clients != NULL)
        abort(); /* the client hung up: nothing may be left of it */
    if (adm->drain != ADMIN_DRAIN_NONE || overrides) {
        dfd_admin_stop(&srv);
        if (admin_new(&srv) == NULL)
            abort();
    }
    if (srv.drain_timer != NULL) {
        event_free(srv.drain_timer);
        srv.drain_timer = NULL;
    }
    atomic_store(&srv.draining, 0);
    /* a resume listens again: this server never accepts */
    dfd_listeners_close(&srv);
    srv.drain_started = 0;
    atomic_store(&srv.access_log, 0);
    if (overrides) {
        dfd_errors errs = {0};
        dfd_reload_run(&srv, NULL, &errs);
        dfd_errors_free(&errs);
    }
    dfd_log_set_level(DAFFI_LOG_ERROR);
}

/* 1 when s is one of the documented error codes. */
static int known_code(const char *s)
{
    static const char *const codes[] = {
        "unknown_command", "bad_arguments", "line_too_long", "binary_input", "idle_timeout",
        "busy", "no_such_plugin", "reload_failed", "load_failed", "unload_failed", "denied",
        "shutting_down", "internal", "resume_failed",
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(s, codes[i]) == 0)
            return 1;
    return 0;
}

/* The members an ok reply of each command documents (README "Admin socket"). */
static const struct {
    const char *command;
    const char *members[6];
} shapes[] = {
    { "help", { "commands" } },
    { "status", { "version", "role", "state", "uptime_ms", "plugins", "reload" } },
    { "plugins", { "plugins" } },
    { "callbacks", { "callbacks" } },
    { "members", { "role", "members" } },
    { "stats", { "counters", "gauges" } },
    { "metrics", { "content_type", "text" } },
    { "reload", { "plugin", "duration_us", "plugins" } },
    { "load", { "plugin", "generation", "file", "callbacks", "reload_errors" } },
    { "unload", { "plugin", "generation", "ini", "reload_errors" } },
    { "loglevel", { "log_level", "previous" } },
    { "accesslog", { "access_log", "previous" } },
    { "monitor", { "detail" } },
    { "drain", { "state", "complete", "waited_ms", "connections", "calls_in_flight" } },
    { "resume", { "state", "resumed", "listeners" } },
    { "shutdown", { "state", "connections", "calls_in_flight", "shutdown_timeout_ms" } },
};

/* Aborts with the line when cond is false. */
#define REQUIRE(cond, line)                                                            \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_admin: %s fails for the reply %s\n", #cond, line);   \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* Checks one reply line against the documented shape. Returns 1 when it is an error
 * after which the connection closes. */
static int check_reply(const char *line)
{
    json_error_t jerr;
    json_t *r = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    int closing = 0;

    REQUIRE(json_is_object(r), line);
    const char *status = json_string_value(json_object_get(r, "status"));
    json_t *command = json_object_get(r, "command");
    REQUIRE(status != NULL, line);
    REQUIRE(command != NULL && (json_is_string(command) || json_is_null(command)), line);
    json_t *errors = json_object_get(r, "errors");
    if (errors != NULL) {
        size_t i;
        json_t *e;
        REQUIRE(json_is_array(errors), line);
        json_array_foreach(errors, i, e)
            REQUIRE(json_is_string(e) && json_string_length(e) > 0, line);
    }
    if (strcmp(status, "error") == 0) {
        const char *code = json_string_value(json_object_get(r, "error"));
        const char *detail = json_string_value(json_object_get(r, "detail"));
        REQUIRE(code != NULL && known_code(code), line);
        REQUIRE(detail != NULL && detail[0] != '\0', line);
        closing = strcmp(code, "line_too_long") == 0 || strcmp(code, "binary_input") == 0;
    } else {
        REQUIRE(strcmp(status, "ok") == 0, line);
        REQUIRE(json_is_string(command), line);
        size_t k = 0;
        while (k < sizeof(shapes) / sizeof(shapes[0]) &&
               strcmp(shapes[k].command, json_string_value(command)) != 0)
            k++;
        REQUIRE(k < sizeof(shapes) / sizeof(shapes[0]), line);
        for (size_t m = 0; m < 6 && shapes[k].members[m] != NULL; m++)
            REQUIRE(json_object_get(r, shapes[k].members[m]) != NULL, line);
    }
    json_decref(r);
    return closing;
}

/* The complete non-blank lines of in[0..n): what gets one reply each. */
static size_t count_lines(const char *in, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(in + i, '\n', n - i);
        if (nl == NULL)
            break;
        int blank = 1;
        for (const char *p = in + i; p < nl; p++)
            if (*p != ' ' && *p != '\t' && !(*p == '\r' && p + 1 == nl))
                blank = 0;
        lines += !blank;
        i = (size_t)(nl - in) + 1;
    }
    return lines;
}

/* Copies data into out (size FUZZ_MAX_INPUT + 1) with "@D" replaced by the directory.
 * Returns the length. */
static size_t expand(const uint8_t *data, size_t size, char *out)
{
    size_t n = 0, dl = strlen(dir);
    for (size_t i = 0; i < size && n < FUZZ_MAX_INPUT; i++) {
        if (data[i] == '@' && i + 1 < size && data[i + 1] == 'D' &&
            n + dl <= FUZZ_MAX_INPUT) {
            memcpy(out + n, dir, dl);
            n += dl;
            i++;
        } else {
            out[n++] = (char)data[i];
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char in[FUZZ_MAX_INPUT + 1];
    struct bufferevent *pair[2];

    if (srv.base == NULL)
        setup();
    size_t n = expand(data, size, in);
    if (bufferevent_pair_new(srv.base, BEV_OPT_DEFER_CALLBACKS, pair) == -1)
        abort();
    bufferevent_enable(pair[1], EV_READ | EV_WRITE);
    if (admin_client_add(srv.admin, pair[0], 0, 0) == -1)
        abort();
    bufferevent_write(pair[1], in, n);
    run_base();

    /* every reply, checked */
    struct evbuffer *replies = bufferevent_get_input(pair[1]);
    size_t got = 0, len;
    int closed = 0;
    char *line;
    while ((line = evbuffer_readln(replies, &len, EVBUFFER_EOL_LF)) != NULL) {
        closed |= check_reply(line);
        free(line);
        got++;
    }
    if (evbuffer_get_length(replies) != 0)
        abort(); /* a reply without its newline */
    if (!closed && got != count_lines(in, n)) {
        fprintf(stderr, "fuzz_admin: %zu replies to %zu lines\n", got, count_lines(in, n));
        abort();
    }
    /* the client hangs up: BEV_FINISHED is how a pair says EOF to its partner */
    bufferevent_flush(pair[1], EV_WRITE, BEV_FINISHED);
    bufferevent_free(pair[1]);
    run_base();
    reset();
    return 0;
}
