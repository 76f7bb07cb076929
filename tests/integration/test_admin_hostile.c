/*
 * test_admin_hostile.c - the admin socket against a hostile or unlucky operator, as a
 * specification: `load` reads only files under the configuration directory (or
 * [admin] load_paths) and its errors never repeat what a file holds; a failed load
 * leaves nothing behind; arguments that are not UTF-8 text, unknown commands and
 * argument counts get structured errors that always carry `command`.
 *
 * One daemon serves the tests that leave it as they found it (group setup); a test
 * that needs other settings starts its own.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../support/aconn.h"
#include "../support/daemon.h"

/* A daemon with an admin socket in its directory. */
typedef struct hdaemon {
    tdaemon d;
    char admin[200];
} hdaemon;

/* Starts a daemon with the example plugins and an admin socket; extra
 * (NULL-terminated, may be NULL) adds overrides. Fails the test when it does not
 * start. The caller frees with hdaemon_free. */
static hdaemon *hdaemon_start(const char *const *extra)
{
    hdaemon *h = calloc(1, sizeof(*h));
    char o_sock[260];
    const char *ov[16];
    size_t n = 0;

    assert_non_null(h);
    assert_int_equal(tdaemon_init(&h->d), 0);
    assert_int_equal(tdaemon_add_example_plugins(&h->d), 0);
    snprintf(h->admin, sizeof(h->admin), "%s/admin.sock", h->d.dir);
    snprintf(o_sock, sizeof(o_sock), "admin.socket=%s", h->admin);
    ov[n++] = o_sock;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
        ov[n++] = extra[i];
    ov[n] = NULL;
    if (tdaemon_start(&h->d, ov) == -1) {
        tdaemon_cleanup(&h->d);
        free(h);
        fail_msg("daffid did not start");
    }
    return h;
}

static void hdaemon_free(hdaemon *h)
{
    if (h == NULL)
        return;
    tdaemon_cleanup(&h->d);
    free(h);
}

/* Writes text to DIR/rel, creating the one subdirectory rel may name. */
static void put_file(const char *dir, const char *rel, const char *text)
{
    char path[PATH_MAX], *slash;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    slash = strrchr(path, '/');
    if (slash > path + strlen(dir)) {
        *slash = '\0';
        if (mkdir(path, 0700) == -1 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("fopen %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* The whole reply as compact JSON (the caller frees). */
static char *dump(json_t *r)
{
    char *t = json_dumps(r, JSON_COMPACT);
    assert_non_null(t);
    return t;
}

/* Asserts the reply text holds none of the NULL-terminated needles. */
static void assert_reply_lacks(json_t *r, ...)
{
    char *t = dump(r);
    va_list ap;
    const char *needle;

    va_start(ap, r);
    while ((needle = va_arg(ap, const char *)) != NULL)
        if (strstr(t, needle) != NULL)
            fail_msg("the reply repeats '%s': %s", needle, t);
    va_end(ap);
    free(t);
}

/* Asserts the reply text holds needle. */
static void assert_reply_has(json_t *r, const char *needle)
{
    char *t = dump(r);
    if (strstr(t, needle) == NULL)
        fail_msg("the reply does not name '%s': %s", needle, t);
    free(t);
}

/* 1 when the list of {"name": ...} objects has one called name. */
static int has_named(json_t *list, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (jstr(v, "name") != NULL && strcmp(jstr(v, "name"), name) == 0)
            return 1;
    }
    return 0;
}

static int group_setup(void **state)
{
    *state = hdaemon_start(NULL);
    return 0;
}

static int group_teardown(void **state)
{
    hdaemon *h = *state;
    int rc = tdaemon_stop(&h->d, TDAEMON_STOP_TIMEOUT_MS);
    hdaemon_free(h);
    return rc == 0 ? 0 : -1;
}

/* ---- load: which files, and what its errors say ------------------------------------ */

static void test_load_of_a_file_outside_the_configuration_directory_is_denied(void **state)
{
    hdaemon *h = *state;
    char line[400], link[300];

    json_t *r = aconn_once(h->admin, "load /etc/passwd");
    assert_admin_err(r, "denied");
    assert_string_equal(jstr(r, "command"), "load");
    assert_reply_has(r, "/etc/passwd");
    assert_reply_lacks(r, "root:", "/bin/", "nologin", NULL);
    json_decref(r);

    /* a way out of the directory by name or by symlink is the same file */
    snprintf(line, sizeof(line), "load %s/../../etc/passwd", h->d.dir);
    r = aconn_once(h->admin, line);
    assert_admin_err(r, "denied");
    json_decref(r);
    snprintf(link, sizeof(link), "%s/passwd.ini", h->d.dir);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    snprintf(line, sizeof(line), "load %s", link);
    r = aconn_once(h->admin, line);
    unlink(link);
    assert_admin_err(r, "denied");
    assert_reply_lacks(r, "root:", NULL);
    json_decref(r);

    r = aconn_once(h->admin, "status");
    assert_int_equal(jint(r, "plugins"), 3);
    json_decref(r);
}

static void test_load_errors_name_file_line_and_key_but_never_the_contents(void **state)
{
    hdaemon *h = *state;
    char line[400];

    /* a subdirectory of the configuration directory: allowed, and not read by itself */
    put_file(h->d.dir, "avail/secrets.ini",
             "root:x:0:0:root:/root:/bin/bash\n"
             "hunter2-on-its-own-line\n"
             "[server\n"
             "[secret-section] tail-text\n"
             "[server]\n"
             "workers = swordfish\n"
             "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n");
    snprintf(line, sizeof(line), "load %s/avail/secrets.ini", h->d.dir);
    json_t *r = aconn_once(h->admin, line);
    assert_admin_err(r, "load_failed");
    assert_reply_has(r, "secrets.ini:1");
    assert_reply_has(r, "secrets.ini:6: [server] workers");
    assert_reply_lacks(r, "x:0:0", "/bin/bash", "hunter2", "tail-text", "swordfish",
                       "QUJDREVG", NULL);
    json_decref(r);
}

static void test_a_failed_load_leaves_nothing_behind(void **state)
{
    hdaemon *h = *state;
    char line[400];

    put_file(h->d.dir, "avail/ghost.ini",
             "[plugin]\nname = ghost\npath = /nonexistent/ghost.so\n");
    snprintf(line, sizeof(line), "load %s/avail/ghost.ini", h->d.dir);
    json_t *r = aconn_once(h->admin, line);
    assert_admin_err(r, "load_failed");
    assert_reply_has(r, "ghost");
    json_decref(r);

    r = aconn_once(h->admin, "plugins");
    assert_admin_ok(r, "plugins");
    assert_false(has_named(json_object_get(r, "plugins"), "ghost"));
    json_decref(r);
    r = aconn_once(h->admin, "reload");
    assert_admin_ok(r, "reload");
    assert_false(has_named(json_object_get(r, "plugins"), "ghost"));
    json_decref(r);
    r = aconn_once(h->admin, "unload ghost");
    assert_admin_err(r, "no_such_plugin");
    json_decref(r);
    /* and it may be tried again, failing the same way */
    r = aconn_once(h->admin, line);
    assert_admin_err(r, "load_failed");
    json_decref(r);
}

static void test_load_paths_sets_the_directories_load_may_read(void **state)
{
    (void)state;
    char scratch[] = "/tmp/daffid-load-paths.XXXXXX", ov[128], line[400], so[PATH_MAX + 64];
    assert_non_null(mkdtemp(scratch));
    snprintf(ov, sizeof(ov), "admin.load_paths=%s", scratch);
    const char *const extra[] = { ov, NULL };
    hdaemon *h = hdaemon_start(extra);

    snprintf(so, sizeof(so), "[plugin]\nname = calc2\npath = %s/plugins/calc.so\n",
             h->d.build);
    put_file(scratch, "calc2.ini", so);
    json_t *r = aconn_once(h->admin, "unload calc");
    assert_admin_ok(r, "unload");
    json_decref(r);
    snprintf(line, sizeof(line), "load %s/calc2.ini", scratch);
    r = aconn_once(h->admin, line);
    assert_admin_ok(r, "load");
    assert_string_equal(jstr(r, "plugin"), "calc2");
    json_decref(r);
    /* the configuration directory is no longer in the set */
    snprintf(line, sizeof(line), "load %s/10-calc.ini", h->d.dir);
    r = aconn_once(h->admin, line);
    assert_admin_err(r, "denied");
    assert_reply_has(r, scratch);
    json_decref(r);

    assert_int_equal(tdaemon_stop(&h->d, TDAEMON_STOP_TIMEOUT_MS), 0);
    hdaemon_free(h);
    snprintf(line, sizeof(line), "%s/calc2.ini", scratch);
    unlink(line);
    rmdir(scratch);
}

/* ---- plugin_paths = strict ---------------------------------------------------------- */

/* Copies the file at from to to, or fails the test. */
static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    size_t n;
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");

    if (in == NULL || out == NULL)
        fail_msg("copy %s to %s: %s", from, to, strerror(errno));
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* Asserts that one of the reply's errors holds both needles. */
static void assert_errors_hold(json_t *r, const char *a, const char *b)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "errors"), i, v) {
        const char *e = json_string_value(v);
        if (e != NULL && strstr(e, a) != NULL && strstr(e, b) != NULL)
            return;
    }
    char *t = dump(r);
    fail_msg("no error holds '%s' and '%s': %s", a, b, t);
}

static void test_strict_plugin_paths_are_refused_by_file_and_line(void **state)
{
    (void)state;
    tdaemon d;
    char path[PATH_MAX + 32], to[PATH_MAX], admin[200], o_sock[260], line[400], out[8192];
    const char *ov[] = { "server.plugin_dir=lib", "server.plugin_paths=strict", o_sock, NULL };

    assert_int_equal(tdaemon_init(&d), 0);
    snprintf(admin, sizeof(admin), "%s/admin.sock", d.dir);
    snprintf(o_sock, sizeof(o_sock), "admin.socket=%s", admin);
    snprintf(path, sizeof(path), "%s/lib", d.dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/plugins/calc.so", d.build);
    snprintf(to, sizeof(to), "%s/lib/calc.so", d.dir);
    copy_file(path, to);
    snprintf(path, sizeof(path), "%s/plugins/echo.so", d.build);
    snprintf(to, sizeof(to), "%s/outside.so", d.dir);
    copy_file(path, to);
    snprintf(path, sizeof(path), "%s/lib/sneaky.so", d.dir);
    assert_int_equal(symlink(to, path), 0);
    put_file(d.dir, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\n");

    /* daffid -t */
    assert_int_equal(tdaemon_check(&d, ov, out, sizeof(out)), 0);
    put_file(d.dir, "20-out.ini", "[plugin]\nname = echo\npath = ../outside.so\n");
    assert_int_equal(tdaemon_check(&d, ov, out, sizeof(out)), 1);
    if (strstr(out, "20-out.ini:3: [plugin] path") == NULL ||
        strstr(out, "not under plugin_dir") == NULL)
        fail_msg("daffid -t does not name 20-out.ini:3: %s", out);
    snprintf(path, sizeof(path), "%s/20-out.ini", d.dir);
    unlink(path);
    if (tdaemon_start(&d, ov) == -1) {
        tdaemon_cleanup(&d);
        fail_msg("daffid did not start");
    }

    /* load: by name and by a symlink inside plugin_dir */
    put_file(d.dir, "avail/out.ini", "[plugin]\nname = echo\npath = ../outside.so\n");
    put_file(d.dir, "avail/sneaky.ini", "[plugin]\nname = echo\npath = sneaky.so\n");
    snprintf(line, sizeof(line), "load %s/avail/out.ini", d.dir);
    json_t *r = aconn_once(admin, line);
    assert_admin_err(r, "load_failed");
    assert_errors_hold(r, "out.ini:3: [plugin] path", "not under plugin_dir");
    json_decref(r);
    snprintf(line, sizeof(line), "load %s/avail/sneaky.ini", d.dir);
    r = aconn_once(admin, line);
    assert_admin_err(r, "load_failed");
    assert_errors_hold(r, "sneaky.ini:3: [plugin] path", "not under plugin_dir");
    json_decref(r);

    /* reload: an ini in the directory that names a file outside fails the reload */
    put_file(d.dir, "30-out.ini", "[plugin]\nname = echo\npath = /usr/lib/echo.so\n");
    r = aconn_once(admin, "reload");
    assert_admin_err(r, "reload_failed");
    assert_errors_hold(r, "30-out.ini:3: [plugin] path", "not under plugin_dir");
    json_decref(r);
    r = aconn_once(admin, "status");
    assert_int_equal(jint(r, "plugins"), 1);
    json_decref(r);
    snprintf(path, sizeof(path), "%s/30-out.ini", d.dir);
    unlink(path);
    assert_int_equal(tdaemon_stop(&d, TDAEMON_STOP_TIMEOUT_MS), 0);
    tdaemon_cleanup(&d);
}

/* ---- arguments and the reply's shape ---------------------------------------------- */

static void test_arguments_that_are_not_utf8_text_get_a_structured_error(void **state)
{
    hdaemon *h = *state;
    static const char *const lines[] = {
        "reload \xff",              /* not UTF-8 at all */
        "callbacks \xc3\x28",       /* a broken sequence */
        "unload \xed\xa0\x80",      /* a surrogate */
        "help \xc0\xaf",            /* an overlong '/' */
        "reload a\xc2\x85",         /* a C1 control character */
        "loglevel \xe2\x80\xae",    /* a bidirectional override */
    };
    aconn c;

    aconn_open(&c, h->admin);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        json_t *r = aconn_cmd(&c, lines[i]);
        assert_admin_err(r, "bad_arguments");
        assert_non_null(jstr(r, "command"));
        assert_non_null(strstr(jstr(r, "detail"), "argument 1"));
        assert_reply_lacks(r, "null]", NULL);
        json_decref(r);
    }
    /* the client goes on */
    json_t *r = aconn_cmd(&c, "status");
    assert_admin_ok(r, "status");
    json_decref(r);
    aconn_close(&c);
}

static void test_every_error_reply_names_its_command_or_null(void **state)
{
    hdaemon *h = *state;
    /* an unknown command is null, whatever its arguments */
    static const char *const unknown[] = {
        "nosuch", "nosuch 1 2 3 4 5 6 7 8 9 10", "\xff", "\xff 1 2 3 4 5 6 7 8 9 10",
        "st\xc3\xa4tus",
    };
    aconn c;

    aconn_open(&c, h->admin);
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        json_t *r = aconn_cmd(&c, unknown[i]);
        assert_admin_err(r, "unknown_command");
        assert_true(json_is_null(json_object_get(r, "command")));
        json_decref(r);
    }
    /* a known one is named, whatever went wrong with its arguments */
    json_t *r = aconn_cmd(&c, "status 1 2 3 4 5 6 7 8 9 10");
    assert_admin_err(r, "bad_arguments");
    assert_string_equal(jstr(r, "command"), "status");
    json_decref(r);
    r = aconn_cmd(&c, "load");
    assert_admin_err(r, "bad_arguments");
    assert_string_equal(jstr(r, "command"), "load");
    json_decref(r);
    aconn_close(&c);
}

int main(void)
{
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_load_of_a_file_outside_the_configuration_directory_is_denied),
        cmocka_unit_test(test_load_errors_name_file_line_and_key_but_never_the_contents),
        cmocka_unit_test(test_a_failed_load_leaves_nothing_behind),
        cmocka_unit_test(test_arguments_that_are_not_utf8_text_get_a_structured_error),
        cmocka_unit_test(test_every_error_reply_names_its_command_or_null),
    };
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_load_paths_sets_the_directories_load_may_read),
        cmocka_unit_test(test_strict_plugin_paths_are_refused_by_file_and_line),
    };
    int failed = 0;

    signal(SIGPIPE, SIG_IGN);
    failed += cmocka_run_group_tests_name("admin socket, hostile input", shared,
                                          group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("admin load_paths", own, NULL, NULL);
    return failed == 0 ? 0 : 1;
}
