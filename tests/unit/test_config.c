/*
 * test_config.c - the configuration reader (server/config*.c) as a specification: the
 * value parsers, how a directory of ini files becomes a dfd_config (order, overrides,
 * plugin files, path resolution, defaults), and every refusal, each naming the file,
 * the line and the key.
 *
 * Each directory test writes its own ini files into a fresh mkdtemp() directory that
 * the teardown removes.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <daffi/plugin.h>

#include "config.h"

#define LISTEN "[server]\nlisten = tcp://127.0.0.1:7700\n"

typedef struct fx {
    char dir[64];      /* the test's configuration directory */
    dfd_config cfg;
    dfd_errors errs;
} fx;

/* ---- helpers ------------------------------------------------------------------ */

/* Gives each directory test a fresh temporary directory. */
static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/dfd-test-config-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

/* nftw callback of teardown: removes one entry (children come first). */
static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Frees what the test loaded and removes its directory. */
static int teardown(void **state)
{
    fx *f = *state;

    dfd_config_free(&f->cfg);
    dfd_errors_free(&f->errs);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Writes text into DIR/name (name may hold one subdirectory, created). */
static void write_file(fx *f, const char *name, const char *text)
{
    char path[256], *slash;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    slash = strrchr(path, '/');
    if (slash > path + strlen(f->dir)) {
        *slash = '\0';
        if (mkdir(path, 0700) == -1 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
    fp = fopen(path, "w");
    if (fp == NULL)
        fail_msg("fopen %s: %s", path, strerror(errno));
    fputs(text, fp);
    fclose(fp);
}

/* Returns "DIR/rel" in a static buffer (one at a time). */
static const char *in_dir(fx *f, const char *rel)
{
    static char buf[256];

    snprintf(buf, sizeof(buf), "%s/%s", f->dir, rel);
    return buf;
}

/* Loads the test's directory with the given overrides; returns dfd_config_load's. */
static int load_o(fx *f, const char *const *ov, size_t nov, int check_files)
{
    return dfd_config_load(&f->cfg, f->dir, ov, nov, check_files, &f->errs);
}

/* Loads the test's directory without overrides or file checks. */
static int load(fx *f)
{
    return load_o(f, NULL, 0, 0);
}

/* Prints every collected error into the test log. */
static void print_errors(const dfd_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        print_message("  error: %s\n", errs->msgs[i]);
}

/* Returns the first message holding every one of the NULL-terminated needles, or NULL
 * (then prints all messages, for the failing test's log). */
static const char *find_error(const dfd_errors *errs, ...)
{
    for (size_t i = 0; i < errs->count; i++) {
        va_list ap;
        const char *needle;
        int all = 1;

        va_start(ap, errs);
        while (all && (needle = va_arg(ap, const char *)) != NULL)
            all = strstr(errs->msgs[i], needle) != NULL;
        va_end(ap);
        if (all)
            return errs->msgs[i];
    }
    print_errors(errs);
    return NULL;
}

#define assert_error(f, ...) assert_non_null(find_error(&(f)->errs, __VA_ARGS__, NULL))

/* Loads and expects failure with an error holding every needle. */
/* Asserts that no message holds needle: a file's values are never repeated. */
static void assert_no_error_holds(fx *f, const char *needle)
{
    for (size_t i = 0; i < f->errs.count; i++)
        if (strstr(f->errs.msgs[i], needle) != NULL)
            fail_msg("a message repeats '%s' from the file: %s", needle, f->errs.msgs[i]);
}

#define assert_load_error(f, ...)                                                      \
    do {                                                                               \
        assert_int_equal(load(f), -1);                                                 \
        assert_error(f, __VA_ARGS__);                                                  \
    } while (0)

/* Loads and expects success without a single error (printed if any). */
static void assert_loads(fx *f, const char *const *ov, size_t nov, int check_files)
{
    int rc = load_o(f, ov, nov, check_files);

    if (rc != 0)
        print_errors(&f->errs);
    assert_int_equal(rc, 0);
    assert_int_equal(f->errs.count, 0);
}

/* ---- value parsers ------------------------------------------------------------ */

static void test_size_accepts_bytes_and_binary_units(void **state)
{
    static const struct { const char *text; size_t want; } ok[] = {
        { "0", 0 }, { "512", 512 }, { "64K", 65536 }, { "64k", 65536 },
        { "64KiB", 65536 }, { "32M", 32u << 20 }, { "32m", 32u << 20 },
        { "1MiB", 1u << 20 }, { "1G", 1u << 30 }, { "1g", 1u << 30 },
        { "2GiB", (size_t)2 << 30 }, { "007", 7 },
    };
    size_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = 1;
        assert_int_equal(dfd_parse_size(ok[i].text, &v), 0);
        assert_true(v == ok[i].want);
    }
}

static void test_size_rejects_signs_fractions_and_junk(void **state)
{
    static const char *const bad[] = {
        "", "-1", "+1", "1.5M", "0.5", "1 M", " 1", "1 ", "1KB", "1T", "M", "12x",
        "1Mi", "1kib", "0x10", "1e3",
    };
    size_t v = 77;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dfd_parse_size(bad[i], &v) != -1)
            fail_msg("'%s' was accepted", bad[i]);
    }
    assert_int_equal(dfd_parse_size(NULL, &v), -1);
    assert_true(v == 77);
}

static void test_size_rejects_overflow(void **state)
{
    size_t v;

    (void)state;
    assert_int_equal(dfd_parse_size("18446744073709551615", &v), 0);
    assert_true(v == SIZE_MAX);
    assert_int_equal(dfd_parse_size("18446744073709551616", &v), -1);
    assert_int_equal(dfd_parse_size("99999999999999999999999", &v), -1);
    assert_int_equal(dfd_parse_size("17179869184G", &v), -1);   /* 2^34 G = 2^64 */
    assert_int_equal(dfd_parse_size("17179869183G", &v), 0);
    assert_int_equal(dfd_parse_size("18014398509481984K", &v), -1); /* 2^54 K */
}

static void test_duration_accepts_ms_s_m_h_and_bare_ms(void **state)
{
    static const struct { const char *text; uint64_t want; } ok[] = {
        { "0", 0 }, { "100", 100 }, { "250ms", 250 }, { "5s", 5000 },
        { "2m", 120000 }, { "1h", 3600000 }, { "0s", 0 },
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = 1;
        assert_int_equal(dfd_parse_duration_ms(ok[i].text, &v), 0);
        assert_true(v == ok[i].want);
    }
}

static void test_duration_rejects_junk(void **state)
{
    static const char *const bad[] = {
        "", "-5s", "+5s", "1.5s", "5 s", "5sec", "5S", "s", "5d", "ms", "5mss", " 5",
    };
    uint64_t v = 9;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dfd_parse_duration_ms(bad[i], &v) != -1)
            fail_msg("'%s' was accepted", bad[i]);
    }
    assert_true(v == 9);
}

static void test_duration_rejects_overflow(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(dfd_parse_duration_ms("18446744073709551615", &v), 0);
    assert_int_equal(dfd_parse_duration_ms("18446744073709551616", &v), -1);
    assert_int_equal(dfd_parse_duration_ms("18446744073709551615h", &v), -1);
    assert_int_equal(dfd_parse_duration_ms("5124095576031h", &v), -1);
    assert_int_equal(dfd_parse_duration_ms("5124095576030h", &v), 0);
}

static void test_bool_accepts_yes_no_true_false_on_off_1_0_any_case(void **state)
{
    static const char *const yes[] = { "yes", "YES", "true", "True", "on", "ON", "1" };
    static const char *const no[] = { "no", "No", "false", "FALSE", "off", "Off", "0" };
    int v;

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        v = 0;
        assert_int_equal(dfd_parse_bool(yes[i], &v), 0);
        assert_int_equal(v, 1);
        v = 1;
        assert_int_equal(dfd_parse_bool(no[i], &v), 0);
        assert_int_equal(v, 0);
    }
}

static void test_bool_rejects_anything_else(void **state)
{
    static const char *const bad[] = { "", "y", "n", "2", "yess", "enable", " yes" };
    int v = 5;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dfd_parse_bool(bad[i], &v) != -1)
            fail_msg("'%s' was accepted", bad[i]);
    }
    assert_int_equal(v, 5);
}

static void test_uint_accepts_digits_up_to_max(void **state)
{
    unsigned long v;

    (void)state;
    assert_int_equal(dfd_parse_uint("0", 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(dfd_parse_uint("10", 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(dfd_parse_uint("4294967296", 1ul << 40, &v), 0);
    assert_true(v == 4294967296ul);
}

static void test_uint_rejects_over_max_signs_junk_and_overflow(void **state)
{
    static const char *const bad[] = {
        "11", "", "-1", "+1", "1.0", "1 ", " 1", "1k", "0x1", "99999999999999999999999",
    };
    unsigned long v = 3;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dfd_parse_uint(bad[i], 10, &v) != -1)
            fail_msg("'%s' was accepted", bad[i]);
    }
    assert_int_equal(dfd_parse_uint("18446744073709551616", (unsigned long)-1, &v), -1);
    assert_int_equal(v, 3);
}

static void test_role_names(void **state)
{
    (void)state;
    assert_string_equal(dfd_role_name(DFD_ROLE_SERVICE), "service");
    assert_string_equal(dfd_role_name(DFD_ROLE_ROUTER), "router");
    assert_string_equal(dfd_role_name(DFD_ROLE_WORKER), "worker");
    assert_string_equal(dfd_role_name((dfd_role)42), "unknown");
}

/* ---- a whole directory ---------------------------------------------------------- */

static void test_full_directory_sets_every_server_key_and_plugin(void **state)
{
    fx *f = *state;
    const dfd_plugin_conf *p;

    write_file(f, "00-daffid.ini",
               "; the server's own settings\n"
               "[server]\n"
               "role = router\n"
               "name = node-1\n"
               "listen = tcp://127.0.0.1:7700, unix:///tmp/dfd-test.sock\n"
               "workers = 3\n"
               "blocking_threads = 2\n"
               "shutdown_timeout = 5s\n"
               "default_timeout = 250ms\n"
               "pidfile = /run/daffid.pid\n"
               "backlog = 128\n"
               "unix_mode = 0600\n"
               "\n"
               "[limits]\n"
               "max_message = 1M\n"
               "max_depth = 16\n"
               "max_pending = 100\n"
               "max_connections = 50\n"
               "max_output = 128K\n"
               "\n"
               "[log]\n"
               "level = debug\n"
               "target = syslog\n"
               "access_log = yes\n");
    write_file(f, "10-calc.ini",
               "[plugin]\n"
               "name = calc\n"
               "path = calc.so\n"
               "concurrency = 4\n"
               "queue = 10\n"
               "timeout = 2s\n"
               "enabled = no\n"
               "\n"
               "[config]\n"
               "precision = 3\n");
    assert_loads(f, NULL, 0, 0);

    assert_int_equal(f->cfg.role, DFD_ROLE_ROUTER);
    assert_string_equal(f->cfg.name, "node-1");
    assert_int_equal(f->cfg.nlisten, 2);
    assert_int_equal(f->cfg.listen[0].kind, DAFFI_ADDR_TCP);
    assert_string_equal(f->cfg.listen[0].host, "127.0.0.1");
    assert_int_equal(f->cfg.listen[0].port, 7700);
    assert_int_equal(f->cfg.listen[1].kind, DAFFI_ADDR_UNIX);
    assert_string_equal(f->cfg.listen[1].path, "/tmp/dfd-test.sock");
    assert_int_equal(f->cfg.workers, 3);
    assert_int_equal(f->cfg.blocking_threads, 2);
    assert_true(f->cfg.shutdown_timeout_ms == 5000);
    assert_true(f->cfg.default_timeout_ms == 250);
    assert_string_equal(f->cfg.pidfile, "/run/daffid.pid");
    assert_int_equal(f->cfg.backlog, 128);
    assert_int_equal(f->cfg.unix_mode, 0600);
    assert_null(f->cfg.router);
    assert_true(f->cfg.max_message == 1048576);
    assert_int_equal(f->cfg.max_depth, 16);
    assert_int_equal(f->cfg.max_pending, 100);
    assert_int_equal(f->cfg.max_connections, 50);
    assert_true(f->cfg.max_output == 131072);
    assert_int_equal(f->cfg.log_level, 0 /* DAFFI_LOG_DEBUG */);
    assert_int_equal(f->cfg.log_target, DFD_LOG_SYSLOG);
    assert_int_equal(f->cfg.access_log, 1);
    assert_string_equal(f->cfg.dir, f->dir);

    assert_int_equal(f->cfg.nplugins, 1);
    p = &f->cfg.plugins[0];
    assert_string_equal(p->name, "calc");
    assert_string_equal(p->path, in_dir(f, "calc.so"));
    assert_string_equal(p->origin.file, in_dir(f, "10-calc.ini"));
    assert_int_equal(p->origin.line, 1);
    assert_int_equal(p->concurrency, 4);
    assert_int_equal(p->queue, 10);
    assert_true(p->timeout_ms == 2000);
    assert_int_equal(p->enabled, 0);
    assert_int_equal(p->nconfig, 1);
    assert_string_equal(p->config[0].key, "precision");
    assert_string_equal(p->config[0].value, "3");
}

static void test_defaults_apply_to_absent_keys(void **state)
{
    fx *f = *state;
    char host[256] = "";
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const dfd_plugin_conf *p;

    write_file(f, "00-daffid.ini", LISTEN);
    write_file(f, "10-echo.ini", "[plugin]\nname = echo\npath = echo.so\n");
    assert_loads(f, NULL, 0, 0);

    gethostname(host, sizeof(host) - 1);
    assert_int_equal(f->cfg.role, DFD_ROLE_SERVICE);
    assert_string_equal(f->cfg.name, host);
    /* workers: one loop per CPU but one (see test_auto_workers_leave_one_cpu_...) */
    assert_int_equal(f->cfg.workers, ncpu > 1 ? ncpu - 1 : 1);
    assert_int_equal(f->cfg.blocking_threads, ncpu < 1 ? 1 : ncpu);
    assert_true(f->cfg.shutdown_timeout_ms == 10000);
    assert_true(f->cfg.default_timeout_ms == 30000);
    assert_string_equal(f->cfg.plugin_dir, f->dir);
    assert_null(f->cfg.pidfile);
    assert_null(f->cfg.router);
    assert_int_equal(f->cfg.backlog, 1024);
    assert_int_equal(f->cfg.unix_mode, 0660);
    assert_true(f->cfg.max_message == 16u << 20);
    assert_int_equal(f->cfg.max_depth, 32);
    assert_int_equal(f->cfg.max_pending, 16384);
    assert_int_equal(f->cfg.max_connections, 10000);
    assert_true(f->cfg.max_output == 4u << 20);
    assert_int_equal(f->cfg.log_level, 1 /* DAFFI_LOG_INFO */);
    assert_int_equal(f->cfg.log_target, DFD_LOG_STDERR);
    assert_int_equal(f->cfg.access_log, 0);

    p = &f->cfg.plugins[0];
    assert_int_equal(p->concurrency, 0);
    assert_int_equal(p->queue, 1024);
    assert_true(p->timeout_ms == 0);
    assert_int_equal(p->enabled, 1);
    assert_int_equal(p->nconfig, 0);
    assert_null(p->config);
}

/* workers = auto leaves one CPU to what the loops wait on (the kernel's network work,
 * local clients, the main thread, the blocking pool): online CPUs - 1, at least 1;
 * blocking_threads = auto is the online CPUs. */
static void test_auto_workers_leave_one_cpu_and_auto_blocking_threads_are_the_cpus(void **state)
{
    fx *f = *state;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    write_file(f, "00.ini", LISTEN "workers = 5\nblocking_threads = 5\n");
    write_file(f, "10.ini", "[server]\nworkers = auto\nblocking_threads = auto\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.workers, ncpu > 1 ? ncpu - 1 : 1);
    assert_int_equal(f->cfg.blocking_threads, ncpu);
}

static void test_files_are_read_in_strcmp_order_and_later_files_override(void **state)
{
    fx *f = *state;

    /* strcmp order: "10-a" < "9-b" < "B" < "a" (no locale, no natural sort) */
    write_file(f, "a.ini", "[server]\nworkers = 4\n");
    write_file(f, "B.ini", "[server]\nworkers = 3\nbacklog = 7\n");
    write_file(f, "9-b.ini", "[server]\nworkers = 2\nbacklog = 6\nname = nine\n");
    write_file(f, "10-a.ini", LISTEN "workers = 1\nbacklog = 5\nname = ten\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.workers, 4);
    assert_int_equal(f->cfg.backlog, 7);
    assert_string_equal(f->cfg.name, "nine");
}

static void test_plugins_are_listed_in_file_order(void **state)
{
    fx *f = *state;

    write_file(f, "00-daffid.ini", LISTEN);
    write_file(f, "30-zeta.ini", "[plugin]\nname = alpha\npath = z.so\n");
    write_file(f, "20-mid.ini", "[plugin]\nname = mid\npath = m.so\n");
    write_file(f, "10-alpha.ini", "[plugin]\nname = zeta\npath = a.so\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.nplugins, 3);
    assert_string_equal(f->cfg.plugins[0].name, "zeta");
    assert_string_equal(f->cfg.plugins[1].name, "mid");
    assert_string_equal(f->cfg.plugins[2].name, "alpha");
}

static void test_dotfiles_and_other_extensions_are_skipped(void **state)
{
    fx *f = *state;

    write_file(f, "00-daffid.ini", LISTEN);
    write_file(f, ".hidden.ini", "this is not ini at all\n");
    write_file(f, ".ini", "[bogus]\n");
    write_file(f, "notes.txt", "[bogus]\n");
    write_file(f, "10-calc.ini.bak", "[plugin]\nname = calc\n");
    write_file(f, "README", "garbage\n");
    write_file(f, "sub/20-x.ini", "[bogus]\n");   /* only the top level is read */
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.nplugins, 0);
}

static void test_comments_blank_lines_and_indentation_are_allowed(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini",
               "\xEF\xBB\xBF# a comment\n"
               "; another\n"
               "\n"
               "  [server]  ; trailing comment\n"
               "    listen = tcp://127.0.0.1:7700   ; inline comment\n"
               "\tworkers=2\r\n"
               "    backlog: 9\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.workers, 2);
    assert_int_equal(f->cfg.backlog, 9);
    assert_int_equal(f->cfg.nlisten, 1);
}

static void test_config_keys_are_kept_in_file_order(void **state)
{
    fx *f = *state;
    const dfd_plugin_conf *p;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-kv.ini",
               "[config]\n"
               "zebra = 1\n"
               "apple = two words\n"
               "mango =\n"
               "url = http://example.com/a;b ; comment\n"
               "[plugin]\n"
               "name = kv\n"
               "path = kv.so\n"
               "[config]\n"
               "kiwi = last\n");
    assert_loads(f, NULL, 0, 0);
    p = &f->cfg.plugins[0];
    assert_int_equal(p->nconfig, 5);
    assert_string_equal(p->config[0].key, "zebra");
    assert_string_equal(p->config[0].value, "1");
    assert_string_equal(p->config[1].key, "apple");
    assert_string_equal(p->config[1].value, "two words");
    assert_string_equal(p->config[2].key, "mango");
    assert_string_equal(p->config[2].value, "");
    assert_string_equal(p->config[3].key, "url");
    assert_string_equal(p->config[3].value, "http://example.com/a;b");
    assert_string_equal(p->config[4].key, "kiwi");
    assert_string_equal(p->config[4].value, "last");
    assert_int_equal(p->origin.line, 6);
}

/* ---- plugin paths ----------------------------------------------------------------- */

static void test_plugin_path_defaults_to_the_config_dir(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = lib/calc.so\n");
    assert_loads(f, NULL, 0, 0);
    assert_string_equal(f->cfg.plugin_dir, f->dir);
    assert_string_equal(f->cfg.plugins[0].path, in_dir(f, "lib/calc.so"));
}

static void test_plugin_dir_from_a_later_file_applies_to_earlier_plugins(void **state)
{
    fx *f = *state;

    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\n");
    write_file(f, "90-local.ini", LISTEN "plugin_dir = ../plugins\n");
    assert_loads(f, NULL, 0, 0);
    assert_string_equal(f->cfg.plugin_dir, in_dir(f, "../plugins"));
    assert_string_equal(f->cfg.plugins[0].path, in_dir(f, "../plugins/calc.so"));
}

static void test_absolute_plugin_dir_and_absolute_plugin_path(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "plugin_dir = /opt/daffid/plugins/\n");
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\n");
    write_file(f, "20-echo.ini", "[plugin]\nname = echo\npath = /usr/lib/echo.so\n");
    assert_loads(f, NULL, 0, 0);
    assert_string_equal(f->cfg.plugin_dir, "/opt/daffid/plugins/");
    assert_string_equal(f->cfg.plugins[0].path, "/opt/daffid/plugins/calc.so");
    assert_string_equal(f->cfg.plugins[1].path, "/usr/lib/echo.so");
}

static void test_check_files_accepts_an_existing_so(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "plugin_dir = lib\n");
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\n");
    write_file(f, "lib/calc.so", "not really ELF, but a readable file\n");
    assert_loads(f, NULL, 0, 1);
}

static void test_check_files_refuses_a_missing_so(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\n\npath = missing.so\n");
    assert_int_equal(load_o(f, NULL, 0, 1), -1);
    assert_error(f, "10-calc.ini:4", "[plugin] path", "missing.so",
                 in_dir(f, "missing.so"), "No such file");
}

static void test_check_files_refuses_a_directory(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = lib\n");
    write_file(f, "lib/x", "");
    assert_int_equal(load_o(f, NULL, 0, 1), -1);
    assert_error(f, "10-calc.ini:3", "path", "not a regular file");
}

static void test_check_files_skips_a_disabled_plugin(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini",
               "[plugin]\nname = calc\npath = missing.so\nenabled = off\n");
    assert_loads(f, NULL, 0, 1);
}

static void test_missing_so_is_fine_without_check_files(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = missing.so\n");
    assert_loads(f, NULL, 0, 0);
}

/* ---- refusals: each names file:line, section and key ------------------------------ */

static void test_unknown_key_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[limits]\n\nmax_mesage = 1M\n");
    assert_load_error(f, "20-bad.ini:3", "[limits] max_mesage", "unknown key");
    assert_no_error_holds(f, "1M");
}

static void test_bad_value_is_refused_naming_the_key_not_the_value(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[limits]\n# size\nmax_message = 12Q\n");
    assert_load_error(f, "20-bad.ini:3", "[limits] max_message", "must be a size");
    assert_no_error_holds(f, "12Q");
}

/* A file that is no ini at all (admin `load` pointed at a password file or a key):
 * every line is refused by file:line, and nothing it holds is repeated. */
static void test_a_file_that_is_no_ini_is_refused_without_repeating_it(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-passwd.ini",
               "root:x:0:0:root:/root:/bin/bash\n"             /* 1 */
               "$6$saltsalt$hashhashhash\n"                   /* 2 */
               "[hunter2\n"                                  /* 3 */
               "[Secret Section]\n"                          /* 4 */
               "[server] trailing-secret\n"                  /* 5 */
               "[server]\n"
               "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo= x\n");  /* 7 */
    assert_int_equal(load(f), -1);
    assert_error(f, "20-passwd.ini:1", "root", "outside any section");
    assert_error(f, "20-passwd.ini:2", "expected 'key = value'");
    assert_error(f, "20-passwd.ini:3", "without ']'");
    assert_error(f, "20-passwd.ini:4", "unknown section");
    assert_error(f, "20-passwd.ini:5", "text after the section header");
    assert_error(f, "20-passwd.ini:7", "[server] (a key not repeated here)", "unknown key");
    assert_no_error_holds(f, "x:0:0");
    assert_no_error_holds(f, "/bin/bash");
    assert_no_error_holds(f, "saltsalt");
    assert_no_error_holds(f, "hunter2");
    assert_no_error_holds(f, "Secret");
    assert_no_error_holds(f, "trailing-secret");
    assert_no_error_holds(f, "QUJD");
}

static void test_out_of_range_values_are_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini",
               "[limits]\n"
               "max_message = 32\n"          /* 2: under 64 */
               "max_depth = 63\n"            /* 3: over 62 */
               "max_pending = 0\n"           /* 4 */
               "max_output = 32K\n"          /* 5: under 64K */
               "[server]\n"
               "workers = 0\n"               /* 7 */
               "unix_mode = 0888\n"          /* 8 */
               "role = master\n"             /* 9 */
               "shutdown_timeout = 1.5s\n"   /* 10 */
               "[log]\n"
               "level = loud\n"              /* 12 */
               "access_log = maybe\n");      /* 13 */
    assert_int_equal(load(f), -1);
    assert_error(f, "20-bad.ini:2", "max_message", "from 64 to 1G");
    assert_error(f, "20-bad.ini:3", "max_depth", "from 1 to 62");
    assert_error(f, "20-bad.ini:4", "max_pending");
    assert_error(f, "20-bad.ini:5", "max_output", "from 64K");
    assert_error(f, "20-bad.ini:7", "[server] workers", "auto or");
    assert_error(f, "20-bad.ini:8", "unix_mode", "octal");
    assert_error(f, "20-bad.ini:9", "role", "service, router, worker");
    assert_no_error_holds(f, "master");
    assert_error(f, "20-bad.ini:10", "shutdown_timeout", "duration");
    assert_error(f, "20-bad.ini:12", "[log] level", "debug");
    assert_error(f, "20-bad.ini:13", "access_log", "yes/no");
    assert_no_error_holds(f, "maybe");
    assert_int_equal(f->errs.count, 10);
}

static void test_bad_listen_item_is_named(void **state)
{
    fx *f = *state;

    write_file(f, "20-bad.ini", "[server]\nlisten = tcp://127.0.0.1:7700, ftp://x:1\n");
    assert_load_error(f, "20-bad.ini:2", "[server] listen", "address 2 of the list", "scheme");
    assert_no_error_holds(f, "ftp://x:1");
    assert_int_equal(f->errs.count, 1);   /* not also "no listen address" */
}

static void test_empty_listen_item_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "20-bad.ini", "[server]\nlisten = tcp://127.0.0.1:7700,,unix:///tmp/s\n");
    assert_load_error(f, "20-bad.ini:2", "listen", "empty address");
}

static void test_listen_port_zero_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "20-bad.ini", "[server]\nlisten = tcp://127.0.0.1:0\n");
    assert_load_error(f, "20-bad.ini:2", "listen", "port 0");
}

static void test_unknown_section_is_refused_even_without_keys(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "; nothing here\n[frobnicate]\n");
    assert_load_error(f, "20-bad.ini:2", "[frobnicate]", "unknown section");
    assert_int_equal(f->errs.count, 1);
}

static void test_empty_section_name_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[server]\nworkers = 2\n[ ]\nkey = 1\n");
    assert_load_error(f, "20-bad.ini:3", "empty section name");
    assert_int_equal(f->errs.count, 1);   /* the keys under it are not reported again */
}

static void test_broken_section_header_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[server\nworkers = 2\n[log] junk\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "20-bad.ini:1", "without ']'");
    assert_error(f, "20-bad.ini:3", "after the section header");
}

static void test_key_outside_any_section_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "workers = 2\n[server]\n");
    assert_load_error(f, "20-bad.ini:1", "workers", "outside any section");
}

static void test_line_without_equals_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[server]\nworkers = 2\n   continued value\nbacklog 5\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "20-bad.ini:3", "expected 'key = value'");
    assert_error(f, "20-bad.ini:4", "expected 'key = value'");
    assert_no_error_holds(f, "continued value");
    assert_no_error_holds(f, "backlog 5");
    assert_int_equal(f->cfg.workers, 0);   /* cleared: failure leaves nothing */
}

static void test_long_lines_are_read_whole(void **state)
{
    fx *f = *state;
    char text[2048], want[1001];
    const dfd_plugin_conf *p;

    /* Longer than inih's 200-byte line buffer: read whole, comment still stripped. */
    memset(want, 'v', 1000);
    want[1000] = '\0';
    snprintf(text, sizeof(text), "[plugin]\nname = x\npath = x.so\n[config]\n"
             "   long_key   =   %s   ; a comment\nshort = 1\n", want);
    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-x.ini", text);
    assert_loads(f, NULL, 0, 0);
    p = &f->cfg.plugins[0];
    assert_int_equal(p->nconfig, 2);
    assert_string_equal(p->config[0].key, "long_key");
    assert_string_equal(p->config[0].value, want);
    assert_string_equal(p->config[1].key, "short");
}

static void test_long_line_errors_name_their_line(void **state)
{
    fx *f = *state;
    char text[512], nines[301];

    memset(nines, '9', 300);   /* too long for inih's buffer, and too large a number */
    nines[300] = '\0';
    snprintf(text, sizeof(text), "[server]\n\nworkers = %s\n", nines);
    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", text);
    assert_load_error(f, "20-bad.ini:3", "[server] workers", "integer");
}

static void test_line_over_64k_is_refused(void **state)
{
    fx *f = *state;
    size_t n = 70000;
    char *text = malloc(n + 32);

    assert_non_null(text);
    strcpy(text, "[server]\nname = ");
    memset(text + strlen(text), 'a', n);
    strcpy(text + 16 + n, "\n");
    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", text);
    free(text);
    assert_load_error(f, "20-bad.ini:2", "line longer than 65536");
}

static void test_key_given_twice_in_one_section_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[server]\nworkers = 2\n[log]\nlevel = info\n[server]\n"
                                "workers = 3\n");
    assert_load_error(f, "20-bad.ini:6", "[server] workers", "given twice",
                      "first at line 2");
}

static void test_config_key_given_twice_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini",
               "[plugin]\nname = x\npath = x.so\n[config]\na = 1\na = 2\n");
    assert_load_error(f, "20-bad.ini:6", "[config] a", "given twice", "first at line 5");
}

static void test_same_key_in_two_files_is_an_override_not_an_error(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "workers = 2\n");
    write_file(f, "10.ini", "[server]\nworkers = 3\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.workers, 3);
}

static void test_plugin_without_name_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "# no name\n[plugin]\npath = x.so\n");
    assert_load_error(f, "20-bad.ini:2", "[plugin] name", "missing");
    assert_int_equal(f->errs.count, 1);
}

static void test_plugin_without_path_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[plugin]\nname = x\n");
    assert_load_error(f, "20-bad.ini:1", "[plugin] path", "missing");
}

static void test_bad_plugin_name_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[plugin]\nname = my plugin\npath = x.so\n");
    assert_load_error(f, "20-bad.ini:2", "[plugin] name", "must be 1 to 64 characters");
    assert_no_error_holds(f, "my plugin");
}

static void test_unknown_plugin_key_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[plugin]\nname = x\npath = x.so\nthreads = 4\n");
    assert_load_error(f, "20-bad.ini:4", "[plugin] threads", "unknown key");
}

static void test_two_plugin_sections_in_one_file_are_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "20-bad.ini", "[plugin]\nname = a\npath = a.so\n\n[plugin]\nname = b\n"
                                "path = b.so\n");
    assert_load_error(f, "20-bad.ini:5", "[plugin]", "second [plugin]", "line 1");
    assert_int_equal(f->errs.count, 1);
}

static void test_config_section_without_plugin_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "\n[config]\nkey = 1\n");
    assert_load_error(f, "00.ini:4", "[config]", "without [plugin]");
}

static void test_plugin_key_in_a_server_section_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "path = calc.so\n");
    assert_load_error(f, "00.ini:3", "[server] path", "unknown key", "[plugin]");
}

static void test_duplicate_plugin_names_name_both_files(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\n");
    write_file(f, "20-calc2.ini", "[plugin]\npath = calc2.so\nname = calc\n");
    assert_load_error(f, "20-calc2.ini:3", "[plugin] name", "duplicate", "10-calc.ini:2",
                      "'calc'");
}

static void test_service_without_listen_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nworkers = 2\n");
    assert_load_error(f, f->dir, "[server] listen", "no listen address", "service");
}

static void test_router_without_listen_names_the_role_line(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\n\nrole = router\n");
    assert_load_error(f, "00.ini:3", "[server] listen", "no listen address", "router");
}

static void test_worker_without_router_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = worker\n");
    assert_load_error(f, "00.ini:2", "[server] router", "role worker");
}

static void test_worker_with_router_needs_no_listen(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = worker\nrouter = tcp://127.0.0.1:7700\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.role, DFD_ROLE_WORKER);
    assert_string_equal(f->cfg.router, "tcp://127.0.0.1:7700");
    assert_int_equal(f->cfg.nlisten, 0);
}

static void test_bad_router_address_is_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = worker\nrouter = 127.0.0.1:7700\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "00.ini:3", "[server] router", "bad address");
    assert_no_error_holds(f, "127.0.0.1:7700'");
    assert_int_equal(f->errs.count, 1);   /* not also "router missing" */
}

static void test_worker_router_may_name_nats_servers(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = worker\n"
                            "router = nats://127.0.0.1:4222, tls://nats.example:4443\n"
                            "nats_namespace = prod.eu-1\n");
    assert_loads(f, NULL, 0, 0);
    assert_string_equal(f->cfg.router, "nats://127.0.0.1:4222, tls://nats.example:4443");
    assert_string_equal(f->cfg.nats_namespace, "prod.eu-1");
    assert_true(dfd_cfg_is_nats_url(f->cfg.router));
}

static void test_bad_nats_server_names_the_item(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = router\nlisten = tcp://127.0.0.1:7700\n"
                            "nats = nats://127.0.0.1:4222,nats://host:99999\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "00.ini:4", "[server] nats", "bad NATS server 'nats://host:99999' (item 2)");
    assert_int_equal(f->errs.count, 1);
}

static void test_nats_namespace_must_be_a_subject_prefix(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = router\nlisten = tcp://127.0.0.1:7700\n"
                            "nats = nats://127.0.0.1:4222\nnats_namespace = a..b\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "00.ini:5", "[server] nats_namespace", "NATS subject prefix");
    write_file(f, "00.ini", "[server]\nrole = router\nlisten = tcp://127.0.0.1:7700\n"
                            "nats = nats://127.0.0.1:4222\nnats_namespace = a.*\n");
    dfd_errors_free(&f->errs);
    assert_int_equal(load(f), -1);
    assert_error(f, "00.ini:5", "[server] nats_namespace", "no wildcards");
}

static void test_nats_gateway_is_a_router_key(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = worker\nrouter = tcp://127.0.0.1:7700\n"
                            "nats = nats://127.0.0.1:4222\n");
    assert_load_error(f, "00.ini:2", "[server] nats", "only a router is a NATS gateway");
}

static void test_nats_creds_must_be_readable(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", "[server]\nrole = worker\nrouter = nats://127.0.0.1:4222\n"
                            "nats_creds = /nonexistent/user.creds\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "00.ini:4", "[server] nats_creds", "cannot read /nonexistent/user.creds");
}

static void test_several_errors_are_reported_together(void **state)
{
    fx *f = *state;

    write_file(f, "10-a.ini", "[server]\nworkers = many\n[nope]\n");
    write_file(f, "20-b.ini", "[plugin]\nname = b\npath = b.so\nqueue = -1\n"
                              "[limits]\nmax_depth = 99\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "10-a.ini:2", "workers");
    assert_error(f, "10-a.ini:3", "nope");
    assert_error(f, "20-b.ini:4", "queue");
    assert_error(f, "20-b.ini:6", "max_depth");
    assert_error(f, "no listen address");
    assert_int_equal(f->errs.count, 5);
}

static void test_errors_are_appended_to_existing_ones(void **state)
{
    fx *f = *state;

    dfd_errors_add(&f->errs, "earlier %d", 1);
    write_file(f, "00.ini", "[server]\nbacklog = x\n");
    assert_int_equal(load(f), -1);
    assert_string_equal(f->errs.msgs[0], "earlier 1");
    assert_error(f, "00.ini:2", "backlog");
}

static void test_unreadable_directory_is_refused(void **state)
{
    fx *f = *state;
    char missing[128];

    snprintf(missing, sizeof(missing), "%s/nope", f->dir);
    assert_int_equal(dfd_config_load(&f->cfg, missing, NULL, 0, 0, &f->errs), -1);
    assert_error(f, missing, "cannot read", "No such file");
    assert_null(f->cfg.dir);
}

static void test_failed_load_leaves_nothing_to_free(void **state)
{
    fx *f = *state;
    dfd_config zero;

    write_file(f, "00.ini", LISTEN "name = n\npidfile = /x\n");
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = c.so\n[config]\na = 1\n");
    write_file(f, "20-bad.ini", "[server]\nbogus = 1\n");
    assert_int_equal(load(f), -1);
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&f->cfg, &zero, sizeof(zero));
}

/* ---- overrides ---------------------------------------------------------------------- */

static void test_override_sets_server_keys_over_the_files(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "server.workers=7", " limits.max_message = 2M ",
                               "log.level=warn", "server.listen=unix:///tmp/o.sock" };

    write_file(f, "00.ini", LISTEN "workers = 2\n[limits]\nmax_message = 1M\n");
    assert_loads(f, ov, 4, 0);
    assert_int_equal(f->cfg.workers, 7);
    assert_true(f->cfg.max_message == 2u << 20);
    assert_int_equal(f->cfg.log_level, 2 /* DAFFI_LOG_WARN */);
    assert_int_equal(f->cfg.nlisten, 1);
    assert_string_equal(f->cfg.listen[0].path, "/tmp/o.sock");
}

static void test_override_sets_plugin_keys(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "calc:plugin.queue=5", "calc:plugin.enabled=no",
                               "calc:plugin.path=/abs/calc2.so" };

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\nqueue = 9\n");
    assert_loads(f, ov, 3, 0);
    assert_int_equal(f->cfg.plugins[0].queue, 5);
    assert_int_equal(f->cfg.plugins[0].enabled, 0);
    assert_string_equal(f->cfg.plugins[0].path, "/abs/calc2.so");
}

static void test_override_replaces_and_adds_config_keys(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "calc:config.b=20", "calc:config.new=x=y" };
    const dfd_plugin_conf *p;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = c.so\n[config]\na = 1\n"
                                 "b = 2\n");
    assert_loads(f, ov, 2, 0);
    p = &f->cfg.plugins[0];
    assert_int_equal(p->nconfig, 3);
    assert_string_equal(p->config[0].key, "a");
    assert_string_equal(p->config[1].key, "b");
    assert_string_equal(p->config[1].value, "20");
    assert_string_equal(p->config[2].key, "new");
    assert_string_equal(p->config[2].value, "x=y");
}

static void test_override_of_plugin_dir_resolves_plugin_paths(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "server.plugin_dir=/srv/so" };

    write_file(f, "00.ini", LISTEN "plugin_dir = lib\n");
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\n");
    assert_loads(f, ov, 1, 0);
    assert_string_equal(f->cfg.plugins[0].path, "/srv/so/calc.so");
}

static void test_override_without_equals_is_refused(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "server.workers=2", "server.workers" };

    write_file(f, "00.ini", LISTEN);
    assert_int_equal(load_o(f, ov, 2, 0), -1);
    assert_error(f, "-o:2", "no '='", "'server.workers'");
    assert_int_equal(f->errs.count, 1);
}

static void test_override_without_section_is_refused(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "workers=2" };

    write_file(f, "00.ini", LISTEN);
    assert_int_equal(load_o(f, ov, 1, 0), -1);
    assert_error(f, "-o:1", "no section", "'workers=2'");
}

static void test_override_bad_value_names_index_section_and_key(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "limits.max_depth=4", "server.workers=lots" };

    write_file(f, "00.ini", LISTEN);
    assert_int_equal(load_o(f, ov, 2, 0), -1);
    assert_error(f, "-o:2", "[server] workers", "'lots'");
}

static void test_override_of_unknown_section_or_key_is_refused(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "frob.x=1", "server.nope=1", "plugin.queue=1",
                               "calc:server.workers=1" };

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = c.so\n");
    assert_int_equal(load_o(f, ov, 4, 0), -1);
    assert_error(f, "-o:1", "[frob]", "unknown section");
    assert_error(f, "-o:2", "[server] nope", "unknown key");
    assert_error(f, "-o:3", "[plugin] queue", "no plugin name");
    assert_error(f, "-o:4", "[server] workers", "plugin name");
    assert_int_equal(f->errs.count, 4);
}

static void test_override_for_unknown_plugin_is_refused(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "nope:plugin.queue=1", "nope:config.k=v" };

    write_file(f, "00.ini", LISTEN);
    assert_int_equal(load_o(f, ov, 2, 0), -1);
    assert_error(f, "-o:1", "[plugin] queue", "no plugin named 'nope'");
    assert_error(f, "-o:2", "[config] k", "no plugin named 'nope'");
}

static void test_override_cannot_rename_a_plugin(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "calc:plugin.name=other" };

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = c.so\n");
    assert_int_equal(load_o(f, ov, 1, 0), -1);
    assert_error(f, "-o:1", "[plugin] name", "cannot be changed");
}

/* ---- ownership ---------------------------------------------------------------------- */

static void test_config_free_releases_everything_and_zeroes(void **state)
{
    fx *f = *state;
    const char *const ov[] = { "a:config.extra=1" };
    dfd_config zero;

    write_file(f, "00.ini", "[server]\nlisten = tcp://127.0.0.1:1, unix:///tmp/x\n"
                            "name = n\npidfile = /p\nrole = router\nplugin_dir = lib\n");
    write_file(f, "10-a.ini", "[plugin]\nname = a\npath = a.so\n[config]\nk = v\n");
    write_file(f, "20-b.ini", "[plugin]\nname = b\npath = b.so\n[config]\nk = v\nj = w\n");
    assert_loads(f, ov, 1, 0);
    dfd_config_free(&f->cfg);
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&f->cfg, &zero, sizeof(zero));
    dfd_config_free(&f->cfg);   /* freeing a freed (zeroed) config is harmless */
}

static void test_errors_free_empties_the_list(void **state)
{
    fx *f = *state;

    dfd_errors_add(&f->errs, "one %s", "x");
    dfd_errors_add(&f->errs, "two");
    assert_int_equal(f->errs.count, 2);
    assert_string_equal(f->errs.msgs[0], "one x");
    dfd_errors_free(&f->errs);
    assert_int_equal(f->errs.count, 0);
    assert_null(f->errs.msgs);
}

/* ---- [admin] and metrics_listen ------------------------------------------------ */

static void test_admin_and_metrics_are_off_by_default(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    assert_loads(f, NULL, 0, 0);
    assert_null(f->cfg.admin_socket);
    assert_int_equal(f->cfg.admin_mode, 0660);
    assert_int_equal(f->cfg.admin_uid, -1);
    assert_int_equal(f->cfg.admin_gid, -1);
    assert_true(f->cfg.admin_idle_ms == 60000);
    assert_int_equal(f->cfg.metrics_enabled, 0);
}

static void test_admin_section_sets_socket_mode_owner_and_group(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "metrics_listen = 127.0.0.1:9101\n"
                            "[admin]\nsocket = /run/daffid/admin.sock\nmode = 0600\n"
                            "owner = root\ngroup = 0\nidle_timeout = 250ms\n");
    assert_loads(f, NULL, 0, 0);
    assert_true(f->cfg.admin_idle_ms == 250);
    assert_string_equal(f->cfg.admin_socket, "/run/daffid/admin.sock");
    assert_int_equal(f->cfg.admin_mode, 0600);
    assert_int_equal(f->cfg.admin_uid, 0);
    assert_int_equal(f->cfg.admin_gid, 0);
    assert_int_equal(f->cfg.metrics_enabled, 1);
    assert_int_equal(f->cfg.metrics_listen.kind, DAFFI_ADDR_TCP);
    assert_string_equal(f->cfg.metrics_listen.host, "127.0.0.1");
    assert_int_equal(f->cfg.metrics_listen.port, 9101);
}

static void test_metrics_listen_accepts_the_tcp_scheme(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "metrics_listen = tcp://[::1]:9102\n");
    assert_loads(f, NULL, 0, 0);
    assert_string_equal(f->cfg.metrics_listen.host, "::1");
    assert_int_equal(f->cfg.metrics_listen.port, 9102);
}

static void test_metrics_listen_accepts_a_unix_socket(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "metrics_listen = unix:///tmp/m.sock\n");
    assert_loads(f, NULL, 0, 0);
    assert_true(f->cfg.metrics_enabled);
    assert_int_equal(f->cfg.metrics_listen.kind, DAFFI_ADDR_UNIX);
    assert_string_equal(f->cfg.metrics_listen.path, "/tmp/m.sock");
}

static void test_metrics_listen_refuses_port_zero_and_other_schemes(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10.ini", "[server]\nmetrics_listen = http://127.0.0.1:9100\n");
    write_file(f, "20.ini", "[server]\nmetrics_listen = 127.0.0.1:0\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "10.ini:2", "[server] metrics_listen", "bad address");
    assert_error(f, "20.ini:2", "[server] metrics_listen", "port 0");
}

static void test_load_paths_are_directories_joined_to_the_config_dir(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "[admin]\nload_paths = avail, /srv/daffid/extra/\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.nadmin_load_paths, 2);
    assert_string_equal(f->cfg.admin_load_paths[0], in_dir(f, "avail"));
    assert_string_equal(f->cfg.admin_load_paths[1], "/srv/daffid/extra/");
    dfd_config_free(&f->cfg);
    write_file(f, "00.ini", LISTEN "[admin]\nload_paths = a,,b\n");
    assert_load_error(f, "00.ini:4", "[admin] load_paths", "empty directory");
}

static void test_watch_max_wait_is_a_duration_of_at_least_100ms(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN);
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.watch_max_wait_ms, 1000);
    dfd_config_free(&f->cfg);
    write_file(f, "00.ini", LISTEN "watch_max_wait = 250ms\n");
    assert_loads(f, NULL, 0, 0);
    assert_int_equal(f->cfg.watch_max_wait_ms, 250);
    dfd_config_free(&f->cfg);
    write_file(f, "00.ini", LISTEN "watch_max_wait = 50ms\n");
    assert_load_error(f, "00.ini:3", "[server] watch_max_wait", "from 100ms");
}

/* [limits] max_memory, max_connection_memory, idle_timeout, read_timeout and [server]
 * stall_warning: their defaults (max_memory: 1G, or a quarter of the RAM when that is
 * less, at least 64M), values, and refusals. */
static void test_memory_budget_timeouts_and_stall_warning_keys(void **state)
{
    fx *f = *state;
    uint64_t quarter = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) / 4;
    uint64_t want = quarter > (1u << 30) ? 1u << 30 : quarter < (64u << 20) ? 64u << 20 : quarter;

    write_file(f, "00.ini", LISTEN);
    assert_loads(f, NULL, 0, 0);
    assert_true(f->cfg.max_memory == want);
    assert_true(f->cfg.max_connection_memory == 0);
    assert_true(f->cfg.idle_timeout_ms == 300000);
    assert_true(f->cfg.read_timeout_ms == 30000);
    assert_true(f->cfg.stall_warning_ms == 1000);
    dfd_config_free(&f->cfg);
    write_file(f, "00.ini", LISTEN "stall_warning = 250ms\n[limits]\nmax_memory = 2G\n"
               "max_connection_memory = 100M\nidle_timeout = 0\nread_timeout = 5s\n");
    assert_loads(f, NULL, 0, 0);
    assert_true(f->cfg.max_memory == (size_t)2 << 30);
    assert_true(f->cfg.max_connection_memory == (size_t)100 << 20);
    assert_true(f->cfg.idle_timeout_ms == 0);
    assert_true(f->cfg.read_timeout_ms == 5000);
    assert_true(f->cfg.stall_warning_ms == 250);
    dfd_config_free(&f->cfg);
    write_file(f, "00.ini", LISTEN "[limits]\nmax_memory = 32M\n");
    assert_load_error(f, "00.ini:4", "[limits] max_memory", "from 64M");
    write_file(f, "00.ini", LISTEN "[limits]\nread_timeout = soon\n");
    assert_load_error(f, "00.ini:4", "[limits] read_timeout", "duration");
    write_file(f, "00.ini", LISTEN "stall_warning = -1s\n");
    assert_load_error(f, "00.ini:3", "[server] stall_warning", "duration");
}

static void test_admin_unknown_user_and_group_are_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "[admin]\nsocket = /tmp/a.sock\n"
                            "owner = no-such-user-dfd\ngroup = no-such-group-dfd\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "00.ini:5", "[admin] owner", "no such user");
    assert_no_error_holds(f, "no-such-user-dfd");
    assert_error(f, "00.ini:6", "[admin] group", "no such group");
}

static void test_admin_bad_mode_and_unknown_key_are_refused(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "[admin]\nmode = 0999\nsockett = /tmp/a.sock\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "00.ini:4", "[admin] mode", "octal");
    assert_error(f, "00.ini:5", "[admin] sockett", "unknown key");
}

static void test_admin_socket_path_over_107_bytes_is_refused(void **state)
{
    fx *f = *state;
    char text[400];
    char path[200];

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    snprintf(text, sizeof(text), LISTEN "[admin]\nsocket = %s\n", path);
    write_file(f, "00.ini", text);
    assert_load_error(f, "00.ini:4", "[admin] socket", "too long");
}

static void test_admin_socket_override_and_empty_value_turns_it_off(void **state)
{
    fx *f = *state;
    static const char *const on[] = { "admin.socket=/tmp/x.sock", "admin.mode=0640" };
    static const char *const off[] = { "admin.socket=" };

    write_file(f, "00.ini", LISTEN "[admin]\nsocket = /tmp/a.sock\n");
    assert_loads(f, on, 2, 0);
    assert_string_equal(f->cfg.admin_socket, "/tmp/x.sock");
    assert_int_equal(f->cfg.admin_mode, 0640);
    dfd_config_free(&f->cfg);
    assert_loads(f, off, 1, 0);
    assert_null(f->cfg.admin_socket);
}

/* The one rule for "unset": an empty value puts any key back to its default, and a
 * key that must be set is then the ordinary "missing" error. */
static void test_an_empty_override_unsets_listen_into_the_required_error(void **state)
{
    fx *f = *state;
    static const char *const ov[] = { "server.listen=" };

    write_file(f, "00.ini", LISTEN);
    assert_int_equal(load_o(f, ov, 1, 0), -1);
    assert_error(f, "[server] listen", "no listen address");
    assert_int_equal(f->errs.count, 1);
}

static void test_an_empty_value_puts_every_kind_of_key_back_to_its_default(void **state)
{
    fx *f = *state;
    static const char *const ov[] = {
        "server.workers=", "limits.max_message=", "server.role=", "log.level=",
        "admin.socket=", "admin.owner=", "server.pidfile=", "calc:plugin.queue=",
        "calc:plugin.timeout=", "server.metrics_listen=", "admin.load_paths=",
    };

    write_file(f, "00.ini", LISTEN "workers = 3\nrole = router\npidfile = /tmp/p.pid\n"
               "metrics_listen = 127.0.0.1:9100\nplugin_dir =\n"
               "[limits]\nmax_message = 1M\nmax_depth =\n"
               "[log]\nlevel = debug\n"
               "[admin]\nsocket = /tmp/a.sock\nowner = 0\nload_paths = x\n");
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\nqueue = 5\n"
               "timeout = 2s\nconcurrency =\n");
    assert_loads(f, ov, sizeof(ov) / sizeof(ov[0]), 0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN) > 1024 ? 1024 : sysconf(_SC_NPROCESSORS_ONLN);
    /* workers = auto: the online CPUs but one, at least 1 */
    assert_int_equal(f->cfg.workers, ncpu > 1 ? ncpu - 1 : 1);
    assert_int_equal(f->cfg.max_message, 16u << 20);
    assert_int_equal(f->cfg.max_depth, 32);
    assert_int_equal(f->cfg.role, DFD_ROLE_SERVICE);
    assert_int_equal(f->cfg.log_level, DAFFI_LOG_INFO);
    assert_null(f->cfg.admin_socket);
    assert_int_equal(f->cfg.admin_uid, -1);
    assert_null(f->cfg.pidfile);
    assert_false(f->cfg.metrics_enabled);
    assert_int_equal(f->cfg.nadmin_load_paths, 0);
    assert_string_equal(f->cfg.plugin_dir, f->dir);
    assert_int_equal(f->cfg.plugins[0].queue, 1024);
    assert_int_equal(f->cfg.plugins[0].timeout_ms, 0);
    assert_int_equal(f->cfg.plugins[0].concurrency, 0);
}

static void test_an_empty_plugin_path_is_the_missing_error(void **state)
{
    fx *f = *state;
    static const char *const ov[] = { "calc:plugin.path=" };

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath = calc.so\n");
    assert_int_equal(load_o(f, ov, 1, 0), -1);
    assert_error(f, "-o:1", "[plugin] path", "missing");
    dfd_config_free(&f->cfg);
    dfd_errors_free(&f->errs);
    write_file(f, "10-calc.ini", "[plugin]\nname = calc\npath =\n");
    assert_load_error(f, "10-calc.ini:1", "[plugin] path", "missing");
}

/* plugin_paths = strict: plugin files only under plugin_dir, symlinks resolved. */
static void test_strict_plugin_paths_refuse_files_outside_plugin_dir(void **state)
{
    fx *f = *state;
    char link[300];

    write_file(f, "00.ini", LISTEN "plugin_dir = lib\nplugin_paths = strict\n");
    write_file(f, "lib/inside.so", "x");
    write_file(f, "outside.so", "x");
    snprintf(link, sizeof(link), "%s/lib/link.so", f->dir);
    assert_int_equal(symlink(in_dir(f, "outside.so"), link), 0);
    write_file(f, "10-a.ini", "[plugin]\nname = a\npath = inside.so\n");
    write_file(f, "20-b.ini", "[plugin]\nname = b\npath = ../outside.so\n");
    write_file(f, "30-c.ini", "[plugin]\nname = c\npath = link.so\n");
    write_file(f, "40-d.ini", "[plugin]\nname = d\npath = /usr/lib/x.so\n");
    write_file(f, "50-e.ini", "[plugin]\nname = e\npath = missing.so\n");
    assert_int_equal(load(f), -1);
    assert_error(f, "20-b.ini:3", "[plugin] path", "not under plugin_dir", "strict");
    assert_error(f, "30-c.ini:3", "[plugin] path", "not under plugin_dir");
    assert_error(f, "40-d.ini:3", "[plugin] path", "not under plugin_dir");
    assert_int_equal(f->errs.count, 3);  /* inside.so and a missing file inside pass */
    dfd_config_free(&f->cfg);
    dfd_errors_free(&f->errs);

    /* the default (any) takes them all, as before */
    write_file(f, "00.ini", LISTEN "plugin_dir = lib\n");
    assert_loads(f, NULL, 0, 0);
    assert_null(f->cfg.plugins[0].confine_dir);
    dfd_config_free(&f->cfg);
    write_file(f, "00.ini", LISTEN "plugin_dir = lib\nplugin_paths = strict\n");
    unlink(link);
    unlink(in_dir(f, "20-b.ini"));
    unlink(in_dir(f, "30-c.ini"));
    unlink(in_dir(f, "40-d.ini"));
    assert_loads(f, NULL, 0, 0);
    assert_non_null(f->cfg.plugins[0].confine_dir);
}

static void test_admin_keys_do_not_belong_in_server(void **state)
{
    fx *f = *state;

    write_file(f, "00.ini", LISTEN "mode = 0600\n");
    assert_load_error(f, "00.ini:3", "[server] mode", "unknown key");
}

static void test_override_at_file_reads_one_more_plugin_ini(void **state)
{
    fx *f = *state;
    char ov[300];
    const char *ovs[2];

    write_file(f, "00.ini", LISTEN);
    write_file(f, "extra/echo.ini", "[plugin]\nname = echo\npath = /x/echo.so\n"
                                    "[config]\nk = v\n");
    snprintf(ov, sizeof(ov), "@%s", in_dir(f, "extra/echo.ini"));
    ovs[0] = ov;
    ovs[1] = "echo:config.k=w";
    assert_loads(f, ovs, 2, 0);
    assert_int_equal(f->cfg.nplugins, 1);
    assert_string_equal(f->cfg.plugins[0].name, "echo");
    assert_string_equal(f->cfg.plugins[0].path, "/x/echo.so");
    assert_string_equal(f->cfg.plugins[0].config[0].value, "w");
}

static void test_override_at_missing_file_is_refused(void **state)
{
    fx *f = *state;
    char ov[300];
    const char *ovs[2] = { ov, "@" };

    write_file(f, "00.ini", LISTEN);
    snprintf(ov, sizeof(ov), "@%s", in_dir(f, "nope.ini"));
    assert_int_equal(load_o(f, ovs, 2, 0), -1);
    assert_error(f, "nope.ini", "cannot open");
    assert_error(f, "-o:2", "no file after '@'");
}

static void test_override_at_file_cannot_redeclare_a_plugin(void **state)
{
    fx *f = *state;
    char ov[300];
    const char *ovs[1] = { ov };

    write_file(f, "00.ini", LISTEN);
    write_file(f, "10-echo.ini", "[plugin]\nname = echo\npath = echo.so\n");
    write_file(f, "extra/echo.ini", "[plugin]\nname = echo\npath = other.so\n");
    snprintf(ov, sizeof(ov), "@%s", in_dir(f, "extra/echo.ini"));
    assert_int_equal(load_o(f, ovs, 1, 0), -1);
    assert_error(f, "extra/echo.ini:2", "duplicate plugin name", "10-echo.ini:2");
}

static void test_override_disabling_an_undeclared_plugin_is_a_no_op(void **state)
{
    fx *f = *state;
    static const char *const ok[] = { "gone:plugin.enabled=no" };
    static const char *const bad[] = { "gone:plugin.enabled=yes" };

    write_file(f, "00.ini", LISTEN);
    assert_loads(f, ok, 1, 0);
    assert_int_equal(f->cfg.nplugins, 0);
    dfd_config_free(&f->cfg);
    assert_int_equal(load_o(f, bad, 1, 0), -1);
    assert_error(f, "-o:1", "no plugin named 'gone'");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* [server] loops is the event-loop count; workers, its old name, is read the same. */
/* [auth] require: yes, no, or the listeners it names (schemes or addresses). */
#define REQ_LISTEN "[server]\nlisten = tcp://127.0.0.1:7700, unix:///tmp/dfd-req.sock\n"
#define REQ_TOKENS "[auth]\ntokens = tokens\n"

static void test_auth_require_covers_the_listeners_it_names(void **state)
{
    fx *f = *state;
    static const struct {
        const char *value;
        unsigned char tcp, unx;
    } cases[] = {
        { NULL, 0, 0 },
        { "yes", 1, 1 },
        { "no", 0, 0 },
        { "tcp", 1, 0 },
        { "unix", 0, 1 },
        { "tcp, tls", 1, 0 },
        { "tcp://127.0.0.1:7700", 1, 0 },
        { "unix:///tmp/dfd-req.sock, tcp", 1, 1 },
    };

    write_file(f, "tokens", "bob 0123456789abcdef0123\n");
    write_file(f, "00.ini", REQ_LISTEN REQ_TOKENS);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char ov[128];
        const char *const o[] = { ov };
        snprintf(ov, sizeof(ov), "auth.require=%s", cases[i].value ? cases[i].value : "");
        assert_loads(f, o, cases[i].value ? 1 : 0, 0);
        assert_non_null(f->cfg.listen_auth);
        if (f->cfg.listen_auth[0] != cases[i].tcp || f->cfg.listen_auth[1] != cases[i].unx)
            fail_msg("require = %s: tcp %d unix %d", cases[i].value ? cases[i].value : "(unset)",
                     f->cfg.listen_auth[0], f->cfg.listen_auth[1]);
        assert_int_equal(f->cfg.auth_required, cases[i].tcp || cases[i].unx);
        dfd_config_free(&f->cfg);
    }
}

static void test_auth_require_refusals_name_the_line(void **state)
{
    fx *f = *state;

    write_file(f, "tokens", "bob 0123456789abcdef0123\n");
    write_file(f, "00.ini", REQ_LISTEN REQ_TOKENS "require = tcp, ftp\n");
    assert_load_error(f, "00.ini:5: [auth] require: item 2 of the list is not a scheme");
    assert_no_error_holds(f, "ftp");
    dfd_errors_free(&f->errs);
    write_file(f, "00.ini", REQ_LISTEN REQ_TOKENS "require = tcp://127.0.0.1:7701\n");
    assert_load_error(f, "00.ini:5: [auth] require: item 1 of the list is an address that "
                         "is not one of [server] listen");
    dfd_errors_free(&f->errs);
    write_file(f, "00.ini", REQ_LISTEN REQ_TOKENS "require = tls\n");
    assert_load_error(f, "00.ini:5: [auth] require: the list covers none of the listeners");
    dfd_errors_free(&f->errs);
    /* no tokens: nothing can authenticate on a unix:// listener */
    write_file(f, "00.ini", REQ_LISTEN "[auth]\nrequire = unix\n");
    assert_load_error(f, "00.ini:4: [auth] require: require covers listen item 2 (unix://), "
                         "but nothing can authenticate there: set [auth] tokens");
}

static void test_loops_and_its_old_name_workers_set_the_loop_count(void **state)
{
    (void)state;
    const char *const a[] = { "server.loops=3", NULL };
    const char *const b[] = { "server.workers=4", NULL };
    const char *const c[] = { "server.workers=4", "server.loops=2", NULL };
    const char *const *sets[] = { a, b, c };
    const unsigned want[] = { 3, 4, 2 };
    for (int i = 0; i < 3; i++) {
        char dir[] = "/tmp/daffid-cfg-loops.XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[128];
        snprintf(path, sizeof(path), "%s/00.ini", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("[server]\nlisten = tcp://127.0.0.1:1\n", f);
        fclose(f);
        size_t n = 0;
        while (sets[i][n] != NULL)
            n++;
        dfd_config cfg;
        dfd_errors errs = {0};
        assert_int_equal(dfd_config_load(&cfg, dir, sets[i], n, 0, &errs), 0);
        assert_int_equal(cfg.workers, want[i]);
        dfd_config_free(&cfg);
        dfd_errors_free(&errs);
        unlink(path);
        rmdir(dir);
    }
}

int main(void)
{
    const struct CMUnitTest values[] = {
        cmocka_unit_test(test_size_accepts_bytes_and_binary_units),
        cmocka_unit_test(test_size_rejects_signs_fractions_and_junk),
        cmocka_unit_test(test_size_rejects_overflow),
        cmocka_unit_test(test_duration_accepts_ms_s_m_h_and_bare_ms),
        cmocka_unit_test(test_duration_rejects_junk),
        cmocka_unit_test(test_duration_rejects_overflow),
        cmocka_unit_test(test_bool_accepts_yes_no_true_false_on_off_1_0_any_case),
        cmocka_unit_test(test_bool_rejects_anything_else),
        cmocka_unit_test(test_uint_accepts_digits_up_to_max),
        cmocka_unit_test(test_uint_rejects_over_max_signs_junk_and_overflow),
        cmocka_unit_test(test_role_names),
    };
    const struct CMUnitTest dirs[] = {
        T(test_full_directory_sets_every_server_key_and_plugin),
        T(test_defaults_apply_to_absent_keys),
        T(test_auto_workers_leave_one_cpu_and_auto_blocking_threads_are_the_cpus),
        T(test_files_are_read_in_strcmp_order_and_later_files_override),
        T(test_plugins_are_listed_in_file_order),
        T(test_dotfiles_and_other_extensions_are_skipped),
        T(test_comments_blank_lines_and_indentation_are_allowed),
        T(test_config_keys_are_kept_in_file_order),
        T(test_long_lines_are_read_whole),
        T(test_plugin_path_defaults_to_the_config_dir),
        T(test_plugin_dir_from_a_later_file_applies_to_earlier_plugins),
        T(test_absolute_plugin_dir_and_absolute_plugin_path),
        T(test_check_files_accepts_an_existing_so),
        T(test_check_files_refuses_a_missing_so),
        T(test_check_files_refuses_a_directory),
        T(test_check_files_skips_a_disabled_plugin),
        T(test_missing_so_is_fine_without_check_files),
    };
    const struct CMUnitTest refusals[] = {
        T(test_unknown_key_is_refused),
        T(test_bad_value_is_refused_naming_the_key_not_the_value),
        T(test_a_file_that_is_no_ini_is_refused_without_repeating_it),
        T(test_out_of_range_values_are_refused),
        T(test_bad_listen_item_is_named),
        T(test_empty_listen_item_is_refused),
        T(test_listen_port_zero_is_refused),
        T(test_unknown_section_is_refused_even_without_keys),
        T(test_empty_section_name_is_refused),
        T(test_broken_section_header_is_refused),
        T(test_key_outside_any_section_is_refused),
        T(test_line_without_equals_is_refused),
        T(test_line_over_64k_is_refused),
        T(test_long_line_errors_name_their_line),
        T(test_key_given_twice_in_one_section_is_refused),
        T(test_config_key_given_twice_is_refused),
        T(test_same_key_in_two_files_is_an_override_not_an_error),
        T(test_plugin_without_name_is_refused),
        T(test_plugin_without_path_is_refused),
        T(test_bad_plugin_name_is_refused),
        T(test_unknown_plugin_key_is_refused),
        T(test_two_plugin_sections_in_one_file_are_refused),
        T(test_config_section_without_plugin_is_refused),
        T(test_plugin_key_in_a_server_section_is_refused),
        T(test_duplicate_plugin_names_name_both_files),
        T(test_service_without_listen_is_refused),
        T(test_router_without_listen_names_the_role_line),
        T(test_worker_without_router_is_refused),
        T(test_worker_with_router_needs_no_listen),
        T(test_bad_router_address_is_refused),
        T(test_worker_router_may_name_nats_servers),
        T(test_bad_nats_server_names_the_item),
        T(test_nats_namespace_must_be_a_subject_prefix),
        T(test_nats_gateway_is_a_router_key),
        T(test_nats_creds_must_be_readable),
        T(test_several_errors_are_reported_together),
        T(test_errors_are_appended_to_existing_ones),
        T(test_unreadable_directory_is_refused),
        T(test_failed_load_leaves_nothing_to_free),
    };
    const struct CMUnitTest overrides[] = {
        cmocka_unit_test(test_loops_and_its_old_name_workers_set_the_loop_count),
        T(test_override_sets_server_keys_over_the_files),
        T(test_override_sets_plugin_keys),
        T(test_override_replaces_and_adds_config_keys),
        T(test_override_of_plugin_dir_resolves_plugin_paths),
        T(test_override_without_equals_is_refused),
        T(test_override_without_section_is_refused),
        T(test_override_bad_value_names_index_section_and_key),
        T(test_override_of_unknown_section_or_key_is_refused),
        T(test_override_for_unknown_plugin_is_refused),
        T(test_override_cannot_rename_a_plugin),
        T(test_config_free_releases_everything_and_zeroes),
        T(test_errors_free_empties_the_list),
    };
    const struct CMUnitTest admin[] = {
        T(test_admin_and_metrics_are_off_by_default),
        T(test_admin_section_sets_socket_mode_owner_and_group),
        T(test_metrics_listen_accepts_the_tcp_scheme),
        T(test_metrics_listen_accepts_a_unix_socket),
        T(test_metrics_listen_refuses_port_zero_and_other_schemes),
        T(test_load_paths_are_directories_joined_to_the_config_dir),
        T(test_watch_max_wait_is_a_duration_of_at_least_100ms),
        T(test_memory_budget_timeouts_and_stall_warning_keys),
        T(test_admin_unknown_user_and_group_are_refused),
        T(test_admin_bad_mode_and_unknown_key_are_refused),
        T(test_admin_socket_path_over_107_bytes_is_refused),
        T(test_admin_socket_override_and_empty_value_turns_it_off),
        T(test_admin_keys_do_not_belong_in_server),
        T(test_an_empty_override_unsets_listen_into_the_required_error),
        T(test_an_empty_value_puts_every_kind_of_key_back_to_its_default),
        T(test_an_empty_plugin_path_is_the_missing_error),
        T(test_strict_plugin_paths_refuse_files_outside_plugin_dir),
        T(test_override_at_file_reads_one_more_plugin_ini),
        T(test_override_at_missing_file_is_refused),
        T(test_override_at_file_cannot_redeclare_a_plugin),
        T(test_override_disabling_an_undeclared_plugin_is_a_no_op),
        T(test_auth_require_covers_the_listeners_it_names),
        T(test_auth_require_refusals_name_the_line),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("config values", values, NULL, NULL);
    failed += cmocka_run_group_tests_name("config directory", dirs, NULL, NULL);
    failed += cmocka_run_group_tests_name("config refusals", refusals, NULL, NULL);
    failed += cmocka_run_group_tests_name("config overrides", overrides, NULL, NULL);
    failed += cmocka_run_group_tests_name("config admin and metrics", admin, NULL, NULL);
    return failed == 0 ? 0 : 1;
}
