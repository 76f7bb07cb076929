/*
 * test_plugin_template.c - the plugin skeleton (sdk/templates/plugin: hello.c,
 * hello.ini, Makefile) works as it is: copied out of the tree, `make` builds it
 * against this tree's uninstalled daffi.pc (PKG_CONFIG_PATH=$BUILD) without a
 * warning, a real daffid loads its ini unchanged and answers hello(name), and
 * `make install` / `make uninstall` put the .so and an ini pointing at it where
 * SITEPLUGINDIR and CONFDIR say (under DESTDIR).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define TEMPLATE "sdk/templates/plugin"

typedef struct fixture {
    char dir[128];            /* the copy of the template */
    char build[PATH_MAX];     /* absolute $BUILD, for PKG_CONFIG_PATH */
    tdaemon d;
    int d_used;
} fixture;

/* Runs a shell command; returns its exit status, its output (both streams) in out. */
static int run(char *out, size_t outsz, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outsz - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR"), *build = getenv("BUILD");
    char out[4096];
    if (f == NULL)
        return -1;
    *state = f;
    snprintf(f->dir, sizeof(f->dir), "%s/daffid-template.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL || realpath(build && *build ? build : "build", f->build) == NULL)
        return -1;
    if (run(out, sizeof(out), "cp -R %s/. %s", TEMPLATE, f->dir) != 0) {
        fprintf(stderr, "copying the template: %s\n", out);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char out[256];
    if (f->d_used)
        tdaemon_cleanup(&f->d);
    if (f->dir[0] != '\0')
        run(out, sizeof(out), "rm -rf %s", f->dir);
    free(f);
    return 0;
}

/* `make` in the copy, against this tree's SDK, warnings as errors. */
static void build_template(fixture *f)
{
    char out[16384];
    int rc = run(out, sizeof(out), "PKG_CONFIG_PATH=%s make -C %s CFLAGS='-O2 -g -Werror'",
                 f->build, f->dir);
    if (rc != 0)
        fail_msg("make in a copy of %s failed (%d):\n%s", TEMPLATE, rc, out);
}

/* Calls hello with one string argument as msgid id. */
static void send_hello(rawconn *c, uint32_t id, const char *name)
{
    rawmsg m;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "hello", 1);
    msgpack_pack_str(pk, strlen(name));
    msgpack_pack_str_body(pk, name, strlen(name));
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

static void test_the_template_builds_and_daffid_serves_it_as_it_is(void **state)
{
    fixture *f = *state;
    char ini[PATH_MAX], o_dir[PATH_MAX + 32], out[8192];

    build_template(f);
    /* its ini, unchanged, in a daffid's configuration; its plugin_dir the copy */
    assert_int_equal(tdaemon_init(&f->d), 0);
    f->d_used = 1;
    snprintf(ini, sizeof(ini), "%s/hello.ini", f->dir);
    assert_int_equal(run(out, sizeof(out), "cp %s %s/20-hello.ini", ini, f->d.dir), 0);
    snprintf(o_dir, sizeof(o_dir), "server.plugin_dir=%s", f->dir);
    const char *ov[] = { o_dir, NULL };
    int rc = tdaemon_check(&f->d, ov, out, sizeof(out));
    if (rc != 0)
        fail_msg("daffid -t on the template's ini: %s", out);
    assert_int_equal(tdaemon_start(&f->d, ov), 0);

    rawconn c;
    expect_open(&c, f->d.tcp);
    send_hello(&c, 1, "world");
    expect_result_str(&c, 1, "hello world");
    expect_send_ii(&c, 2, "hello", 1, 2);
    expect_error(&c, 2, DAFFI_E_BAD_ARGS);
    rawconn_close(&c);
    assert_int_equal(tdaemon_stop(&f->d, TDAEMON_STOP_TIMEOUT_MS), 0);
    /* init logged the greeting it read from [config] */
    char log[1 << 16];
    assert_true(tdaemon_read_log(&f->d, log, sizeof(log)) > 0);
    assert_non_null(strstr(log, "greeting="));
}

static void test_make_install_puts_the_so_and_an_ini_naming_it_where_it_is_told(void **state)
{
    fixture *f = *state;
    char out[16384], path[PATH_MAX + 64];
    struct stat st;

    build_template(f);
    int rc = run(out, sizeof(out),
                 "PKG_CONFIG_PATH=%s make -C %s DESTDIR=%s/stage SITEPLUGINDIR=/site/plugins "
                 "CONFDIR=/etc/conf.d install", f->build, f->dir, f->dir);
    if (rc != 0)
        fail_msg("make install failed (%d):\n%s", rc, out);
    snprintf(path, sizeof(path), "%s/stage/site/plugins/hello.so", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    /* the installed ini is the template's with the absolute path, nothing else */
    rc = run(out, sizeof(out), "diff %s/hello.ini %s/stage/etc/conf.d/20-hello.ini", f->dir,
             f->dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "> path = /site/plugins/hello.so"));
    assert_non_null(strstr(out, "< path = hello.so"));
    size_t changed = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        changed += p[1] == '<' || p[1] == '>';
    assert_int_equal(changed, 2);

    rc = run(out, sizeof(out),
             "PKG_CONFIG_PATH=%s make -C %s DESTDIR=%s/stage SITEPLUGINDIR=/site/plugins "
             "CONFDIR=/etc/conf.d uninstall", f->build, f->dir, f->dir);
    assert_int_equal(rc, 0);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/stage/etc/conf.d/20-hello.ini", f->dir);
    assert_int_equal(stat(path, &st), -1);
}

static void test_without_an_sdk_make_says_what_is_missing(void **state)
{
    fixture *f = *state;
    char out[4096];

    int rc = run(out, sizeof(out), "PKG_CONFIG_PATH=/nonexistent PKG_CONFIG_LIBDIR=/nonexistent "
                 "make -C %s", f->dir);
    assert_true(rc != 0);
    assert_non_null(strstr(out, "pkg-config finds no daffi SDK"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_the_template_builds_and_daffid_serves_it_as_it_is),
        T(test_make_install_puts_the_so_and_an_ini_naming_it_where_it_is_told),
        T(test_without_an_sdk_make_says_what_is_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
