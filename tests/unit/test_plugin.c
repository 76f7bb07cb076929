/*
 * test_plugin.c - the plugin loader: what loads, what is refused and why, and what a
 * generation leaves behind (nothing) once released.
 *
 * Real .so files built by the Makefile are loaded: the fixtures in
 * $BUILD/tests/fixtures (one per rejection case, plus "good") and the example plugins
 * in $BUILD/plugins. Run from the repository root with BUILD set (default "build").
 * Each test gets its own temporary directory holding the private dir and trace files.
 */
#include <dirent.h>
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
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "plugin.h"

typedef struct fx {
    char root[64];            /* the test's temporary directory */
    char private_dir[128];
    char trace[128];          /* the good fixture's init/fini trace file */
    dfd_errors errs;
} fx;

/* ---- helpers ------------------------------------------------------------------ */

static const char *build_dir(void)
{
    const char *b = getenv("BUILD");
    return b != NULL && b[0] != '\0' ? b : "build";
}

/* Writes "$BUILD/tests/fixtures/NAME.so" into out. */
static void fixture_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/tests/fixtures/%s.so", build_dir(), name);
}

/* Writes "$BUILD/plugins/NAME.so" into out. */
static void example_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/plugins/%s.so", build_dir(), name);
}

/* A plugin declaration as the config reader would produce it; strings are borrowed. */
static dfd_plugin_conf make_conf(const char *name, const char *path, dfd_kv *config,
                                 size_t nconfig)
{
    dfd_plugin_conf pc;

    memset(&pc, 0, sizeof(pc));
    pc.name = (char *)name;
    pc.path = (char *)path;
    pc.origin.file = (char *)"conf.d/10-test.ini";
    pc.origin.line = 1;
    pc.concurrency = 3;
    pc.queue = 77;
    pc.timeout_ms = 1500;
    pc.enabled = 1;
    pc.config = config;
    pc.nconfig = nconfig;
    return pc;
}

/* Loads the good fixture as generation gen, tracing to f->trace. */
static dfd_plugin *load_good(fx *f, unsigned gen)
{
    char path[PATH_MAX];
    dfd_kv kv[] = {{(char *)"trace_file", f->trace}};
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;

    fixture_path(path, sizeof(path), "good");
    pc = make_conf("good", path, kv, 1);
    if (dfd_plugin_load(&pc, f->private_dir, gen, &p, &f->errs) == -1)
        fail_msg("good fixture did not load: %s", f->errs.count ? f->errs.msgs[0] : "?");
    return p;
}

/* Returns the number of entries of dir besides . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Returns 1 when /proc/self/maps mentions text (a mapped file under that path). */
static int mapped(const char *text)
{
    FILE *m = fopen("/proc/self/maps", "r");
    char line[PATH_MAX + 256];
    int found = 0;

    assert_non_null(m);
    while (!found && fgets(line, sizeof(line), m) != NULL)
        found = strstr(line, text) != NULL;
    fclose(m);
    return found;
}

/* Reads the content of path (at most size - 1 bytes) into buf; "" when absent. */
static void read_text(const char *path, char *buf, size_t size)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;

    if (fp != NULL) {
        n = fread(buf, 1, size - 1, fp);
        fclose(fp);
    }
    buf[n] = '\0';
}

/* Asserts that loading the fixture/file at path is refused with exactly
 * "PATH: reason" (or, when exact is 0, a message starting "PATH: " that contains
 * reason), appended as the only error, and that nothing is left in the private dir
 * or mapped from it. */
static void assert_refused(fx *f, const char *name, const char *path, const char *reason,
                           int exact)
{
    dfd_plugin_conf pc = make_conf(name, path, NULL, 0);
    dfd_plugin *p = NULL;
    char expected[PATH_MAX + 256];
    const char *msg;

    assert_int_equal(dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs), -1);
    assert_null(p);
    assert_int_equal(f->errs.count, 1);
    msg = f->errs.msgs[0];
    snprintf(expected, sizeof(expected), "%s: %s", path, reason);
    if (exact) {
        assert_string_equal(msg, expected);
    } else {
        size_t plen = strlen(path);
        assert_memory_equal(msg, path, plen);
        assert_memory_equal(msg + plen, ": ", 2);
        if (strstr(msg, reason) == NULL)
            fail_msg("'%s' does not contain '%s'", msg, reason);
    }
    assert_int_equal(count_entries(f->private_dir), 0);
    assert_false(mapped(f->private_dir));
}

static void assert_fixture_refused(fx *f, const char *fixture, const char *reason)
{
    char path[PATH_MAX];

    fixture_path(path, sizeof(path), fixture);
    assert_int_equal(access(path, R_OK), 0); /* built, so the refusal is the loader's */
    assert_refused(f, fixture, path, reason, 1);
}

/* ---- setup -------------------------------------------------------------------- */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/dfd-test-plugin.XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->private_dir, sizeof(f->private_dir), "%s/private", f->root);
    snprintf(f->trace, sizeof(f->trace), "%s/trace", f->root);
    if (mkdir(f->private_dir, 0700) == -1)
        return -1;
    *state = f;
    return 0;
}

/* Removes the test's directory and whatever a failed test left in it. */
static int teardown(void **state)
{
    fx *f = *state;
    char path[PATH_MAX * 2];
    DIR *d;
    struct dirent *e;

    d = opendir(f->private_dir);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            snprintf(path, sizeof(path), "%s/%s", f->private_dir, e->d_name);
            if (e->d_name[0] != '.')
                unlink(path);
        }
        closedir(d);
    }
    rmdir(f->private_dir);
    d = opendir(f->root);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            snprintf(path, sizeof(path), "%s/%s", f->root, e->d_name);
            if (e->d_name[0] != '.')
                unlink(path);
        }
        closedir(d);
    }
    rmdir(f->root);
    dfd_errors_free(&f->errs);
    free(f);
    return 0;
}

/* ---- a good plugin ------------------------------------------------------------ */

static void good_plugin_loads_with_its_callbacks_and_flags(void **state)
{
    fx *f = *state;
    dfd_plugin *p = load_good(f, 1);

    assert_int_equal(f->errs.count, 0);
    assert_string_equal(p->desc->name, "good");
    assert_string_equal(p->desc->version, "0.0.1");
    assert_int_equal(p->ncallbacks, 2);
    assert_string_equal(p->callbacks[0].name, "ping");
    assert_int_equal(p->callbacks[0].flags, 0);
    assert_non_null(p->callbacks[0].fn);
    assert_ptr_equal(p->callbacks[0].plugin, p);
    assert_string_equal(p->callbacks[1].name, "work");
    assert_int_equal(p->callbacks[1].flags, DAFFI_CB_BLOCKING);
    assert_ptr_equal(p->callbacks[1].plugin, p);
    assert_int_equal(atomic_load(&p->refs), 1);
    dfd_plugin_release(p);
}

static void generation_keeps_the_declared_settings(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];
    dfd_plugin *p = load_good(f, 5);

    fixture_path(path, sizeof(path), "good");
    assert_string_equal(p->name, "good");
    assert_string_equal(p->file, path);
    assert_string_equal(p->ini, "conf.d/10-test.ini");
    assert_int_equal(p->generation, 5);
    assert_int_equal(p->concurrency, 3);
    assert_int_equal(p->queue, 77);
    assert_int_equal(p->timeout_ms, 1500);
    assert_int_equal(p->running, 0);
    assert_int_equal(p->queued, 0);
    assert_null(p->queue_head);
    assert_ptr_equal(p->host.plugin, p);
    dfd_plugin_release(p);
}

static void config_values_are_visible_through_the_sdk(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];
    dfd_kv kv[3];
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;

    /* heap strings freed right after the load: the generation must hold a copy */
    kv[0].key = strdup("trace_file");
    kv[0].value = strdup(f->trace);
    kv[1].key = strdup("greeting");
    kv[1].value = strdup("hello world");
    kv[2].key = strdup("empty");
    kv[2].value = strdup("");
    fixture_path(path, sizeof(path), "good");
    pc = make_conf("good", path, kv, 3);
    assert_int_equal(dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs), 0);
    for (size_t i = 0; i < 3; i++) {
        memset(kv[i].key, 'X', strlen(kv[i].key));
        free(kv[i].key);
        free(kv[i].value);
    }

    assert_int_equal(daffi_config_count(&p->host), 3);
    assert_string_equal(daffi_config_get(&p->host, "greeting"), "hello world");
    assert_string_equal(daffi_config_get(&p->host, "trace_file"), f->trace);
    assert_string_equal(daffi_config_get(&p->host, "empty"), "");
    assert_null(daffi_config_get(&p->host, "absent"));
    assert_string_equal(daffi_config_key(&p->host, 0), "trace_file");
    assert_string_equal(daffi_config_key(&p->host, 1), "greeting");
    assert_string_equal(daffi_config_value(&p->host, 1), "hello world");
    assert_string_equal(daffi_config_key(&p->host, 2), "empty");
    assert_null(daffi_config_key(&p->host, 3));
    assert_null(daffi_config_value(&p->host, 3));
    dfd_plugin_release(p);
}

static void init_runs_once_and_the_last_release_runs_fini_once(void **state)
{
    fx *f = *state;
    char text[256];
    dfd_plugin *p = load_good(f, 1);

    read_text(f->trace, text, sizeof(text));
    assert_string_equal(text, "init\n");
    assert_int_equal(p->initialised, 1);
    assert_non_null(p->state);
    dfd_plugin_release(p);
    read_text(f->trace, text, sizeof(text));
    assert_string_equal(text, "init\nfini\n");
}

static void fini_waits_for_every_reference(void **state)
{
    fx *f = *state;
    char text[256];
    dfd_plugin *p = load_good(f, 1);
    char *copy = strdup(p->private_path);

    dfd_plugin_retain(p);                      /* a call in flight */
    assert_int_equal(atomic_load(&p->refs), 2);
    dfd_plugin_release(p);                     /* the table lets go */
    read_text(f->trace, text, sizeof(text));
    assert_string_equal(text, "init\n");
    assert_int_equal(access(copy, F_OK), 0);
    assert_true(mapped(copy));
    dfd_plugin_release(p);                     /* the call completes */
    read_text(f->trace, text, sizeof(text));
    assert_string_equal(text, "init\nfini\n");
    assert_int_equal(access(copy, F_OK), -1);
    free(copy);
}

static void private_copy_is_named_for_the_generation_and_mode_0600(void **state)
{
    fx *f = *state;
    char prefix[PATH_MAX];
    struct stat st;
    dfd_plugin *p = load_good(f, 7);
    size_t len = strlen(p->private_path);

    snprintf(prefix, sizeof(prefix), "%s/good.gen7.", f->private_dir);
    assert_memory_equal(p->private_path, prefix, strlen(prefix));
    assert_true(len > strlen(prefix) + 3);
    assert_string_equal(p->private_path + len - 3, ".so");
    assert_int_equal(stat(p->private_path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_entries(f->private_dir), 1);
    assert_true(mapped(p->private_path));
    dfd_plugin_release(p);
}

static void release_removes_the_private_copy_and_its_mapping(void **state)
{
    fx *f = *state;
    dfd_plugin *p = load_good(f, 1);
    char *copy = strdup(p->private_path);

    dfd_plugin_release(p);
    assert_int_equal(access(copy, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    assert_false(mapped(copy));
    assert_int_equal(count_entries(f->private_dir), 0);
    free(copy);
}

static void two_loads_of_one_file_are_independent_generations(void **state)
{
    fx *f = *state;
    char text[256];
    dfd_plugin *a = load_good(f, 1);
    dfd_plugin *b = load_good(f, 2);
    char *copy_a = strdup(a->private_path);
    char *copy_b = strdup(b->private_path);

    assert_string_not_equal(copy_a, copy_b);
    assert_ptr_not_equal(a->dl, b->dl);
    assert_ptr_not_equal(a->desc, b->desc);   /* two mappings, not a cached handle */
    assert_ptr_not_equal(a->state, b->state);
    assert_ptr_not_equal(a->callbacks[0].fn, b->callbacks[0].fn);
    assert_int_equal(count_entries(f->private_dir), 2);
    read_text(f->trace, text, sizeof(text));
    assert_string_equal(text, "init\ninit\n");

    dfd_plugin_release(a);
    assert_int_equal(access(copy_a, F_OK), -1);
    assert_false(mapped(copy_a));
    assert_int_equal(access(copy_b, F_OK), 0);
    assert_true(mapped(copy_b));
    read_text(f->trace, text, sizeof(text));
    assert_string_equal(text, "init\ninit\nfini\n");

    dfd_plugin_release(b);
    assert_false(mapped(copy_b));
    assert_int_equal(count_entries(f->private_dir), 0);
    read_text(f->trace, text, sizeof(text));
    assert_string_equal(text, "init\ninit\nfini\nfini\n");
    free(copy_a);
    free(copy_b);
}

/* ---- refusals ----------------------------------------------------------------- */

static void missing_file_is_refused(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/no-such-plugin.so", f->root);
    assert_refused(f, "missing", path, "cannot open: No such file or directory", 1);
}

/* Writes text into ROOT/name.so and asserts that loading it as plugin name is refused
 * as not an ELF shared object. */
static void assert_text_refused_as_not_elf(fx *f, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s.so", f->root, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_refused(f, name, path, "not an ELF shared object", 1);
}

static void text_file_is_refused_as_not_elf(void **state)
{
    assert_text_refused_as_not_elf(*state, "notes", "this is not a shared object\n");
}

static void empty_file_is_refused_as_not_elf(void **state)
{
    assert_text_refused_as_not_elf(*state, "empty", "");
}

static void directory_is_refused(void **state)
{
    fx *f = *state;

    assert_refused(f, "dir", f->root, "not a regular file", 1);
}

static void elf_executable_is_refused_with_the_dlopen_reason(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

    assert_true(n > 0);
    path[n] = '\0';
    assert_refused(f, "exe", path, "dlopen failed: ", 0);
}

static void undefined_host_symbol_is_refused_with_the_dlopen_reason(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];

    fixture_path(path, sizeof(path), "undefined_symbol");
    assert_refused(f, "undefined_symbol", path, "undefined symbol: daffi_no_such_function",
                   0);
}

static void plugin_without_descriptor_is_refused(void **state)
{
    assert_fixture_refused(*state, "no_descriptor", "no descriptor symbol 'daffi_plugin'");
}

static void other_abi_major_is_refused(void **state)
{
    assert_fixture_refused(*state, "abi_major", "ABI major 2, daffid speaks 1");
}

static void newer_abi_minor_is_refused(void **state)
{
    char reason[128];

    snprintf(reason, sizeof(reason), "built for ABI %u.%u, daffid supports up to %u.%u",
             DAFFI_ABI_MAJOR, DAFFI_ABI_MINOR + 1, DAFFI_ABI_MAJOR, DAFFI_ABI_MINOR);
    assert_fixture_refused(*state, "abi_minor", reason);
}

static void descriptor_smaller_than_abi_1_0_is_refused(void **state)
{
    char reason[128];

    snprintf(reason, sizeof(reason), "descriptor size 16 is smaller than ABI 1.0's %zu bytes",
             offsetof(daffi_plugin_descriptor, callback_size));
    assert_fixture_refused(*state, "small_size", reason);
}

static void duplicate_callback_is_refused(void **state)
{
    assert_fixture_refused(*state, "dup_callback", "duplicate callback 'add'");
}

static void reserved_prefix_is_refused(void **state)
{
    assert_fixture_refused(*state, "reserved_name",
                           "callback 'daffi.something' uses the reserved prefix daffi.");
}

static void callback_name_with_a_space_is_refused(void **state)
{
    assert_fixture_refused(*state, "bad_callback_name",
                           "callback #0 has byte 0x20 at offset 3 in its name "
                           "(names are printable ASCII without spaces)");
}

static void unknown_callback_flags_are_refused(void **state)
{
    assert_fixture_refused(*state, "unknown_flags", "callback 'x' has unknown flags 0x80");
}

static void callback_without_handler_is_refused(void **state)
{
    assert_fixture_refused(*state, "null_handler", "callback 'nothing' has no handler");
}

static void empty_callback_table_is_refused(void **state)
{
    assert_fixture_refused(*state, "empty_callbacks", "descriptor declares no callbacks");
}

static void failing_init_is_refused_with_its_reason(void **state)
{
    /* the fixture's fini aborts: reaching here also proves fini did not run */
    assert_fixture_refused(*state, "init_fails", "init failed: database unreachable");
}

static void failing_init_without_a_reason_says_no_reason_given(void **state)
{
    assert_fixture_refused(*state, "init_fails_silently", "init failed: no reason given");
}

static void good_plugin_refuses_to_start_without_its_trace_file(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;
    char expected[PATH_MAX + 64];

    /* init reads [config] through the SDK while it runs */
    fixture_path(path, sizeof(path), "good");
    pc = make_conf("good", path, NULL, 0);
    assert_int_equal(dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs), -1);
    snprintf(expected, sizeof(expected), "%s: init failed: [config] trace_file is required",
             path);
    assert_int_equal(f->errs.count, 1);
    assert_string_equal(f->errs.msgs[0], expected);
    assert_int_equal(count_entries(f->private_dir), 0);
    assert_false(mapped(f->private_dir));
}

static void failures_are_appended_to_earlier_errors(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;

    dfd_errors_add(&f->errs, "an earlier problem");
    fixture_path(path, sizeof(path), "dup_callback");
    pc = make_conf("dup", path, NULL, 0);
    assert_int_equal(dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs), -1);
    fixture_path(path, sizeof(path), "abi_major");
    pc = make_conf("abi", path, NULL, 0);
    assert_int_equal(dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs), -1);
    assert_int_equal(f->errs.count, 3);
    assert_string_equal(f->errs.msgs[0], "an earlier problem");
    assert_non_null(strstr(f->errs.msgs[1], "duplicate callback 'add'"));
    assert_non_null(strstr(f->errs.msgs[2], "ABI major 2"));
}

static void unwritable_private_dir_is_refused(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];
    char dir[PATH_MAX + 16];
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;

    fixture_path(path, sizeof(path), "good");
    snprintf(dir, sizeof(dir), "%s/absent", f->root);
    pc = make_conf("good", path, NULL, 0);
    assert_int_equal(dfd_plugin_load(&pc, dir, 1, &p, &f->errs), -1);
    assert_int_equal(f->errs.count, 1);
    assert_non_null(strstr(f->errs.msgs[0], "cannot create a private copy in"));
    assert_non_null(strstr(f->errs.msgs[0], "No such file or directory"));
}

/* plugin_paths = strict: the loader checks the file it opened, symlinks resolved, so a
 * path that the configuration accepted but that leads elsewhere now is refused. */
static void a_confined_load_refuses_a_file_outside_its_directory(void **state)
{
    fx *f = *state;
    char rel[PATH_MAX], good[PATH_MAX], lib[PATH_MAX], real_lib[PATH_MAX];
    char link[PATH_MAX + 16];
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;

    fixture_path(rel, sizeof(rel), "good");
    assert_non_null(realpath(rel, good));
    snprintf(lib, sizeof(lib), "%s/lib", f->root);
    assert_int_equal(mkdir(lib, 0700), 0);
    assert_non_null(realpath(lib, real_lib));
    snprintf(link, sizeof(link), "%s/good.so", lib);
    assert_int_equal(symlink(good, link), 0);
    pc = make_conf("good", link, NULL, 0);
    pc.confine_dir = real_lib;
    assert_int_equal(dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs), -1);
    assert_null(p);
    assert_int_equal(f->errs.count, 1);
    assert_non_null(strstr(f->errs.msgs[0], "not under plugin_dir"));
    assert_non_null(strstr(f->errs.msgs[0], good));
    assert_int_equal(count_entries(f->private_dir), 0);
    unlink(link);
    rmdir(lib);
}

/* ---- the example plugins ------------------------------------------------------ */

typedef struct expected_cb {
    const char *name;
    unsigned flags;
} expected_cb;

/* Loads the plugin file path as name with the given [config] and asserts it exposes
 * exactly the expected callbacks, in order, with their flags; then releases it. */
static void assert_loads(fx *f, const char *path, const char *name, dfd_kv *config,
                         size_t nconfig, const expected_cb *cbs, size_t ncbs)
{
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;

    pc = make_conf(name, path, config, nconfig);
    if (dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs) == -1)
        fail_msg("%s did not load: %s", name, f->errs.msgs[0]);
    assert_string_equal(p->desc->name, name);
    assert_int_equal(p->ncallbacks, ncbs);
    for (size_t i = 0; i < ncbs; i++) {
        assert_string_equal(p->callbacks[i].name, cbs[i].name);
        assert_int_equal(p->callbacks[i].flags, cbs[i].flags);
    }
    dfd_plugin_release(p);
    assert_int_equal(count_entries(f->private_dir), 0);
#if defined(__SANITIZE_THREAD__)
    /* under ThreadSanitizer a C++ library stays mapped after dlclose (its runtime's
     * exit handlers are intercepted); the private copy is removed all the same */
    if (strncmp(name, "cxx", 3) != 0)
#endif
        assert_false(mapped(f->private_dir));
}

/* assert_loads() of example plugin name. */
static void assert_example(fx *f, const char *name, dfd_kv *config, size_t nconfig,
                           const expected_cb *cbs, size_t ncbs)
{
    char path[PATH_MAX];

    example_path(path, sizeof(path), name);
    assert_loads(f, path, name, config, nconfig, cbs, ncbs);
}

/* assert_loads() of fixture name. */
static void assert_fixture_loads(fx *f, const char *name, const expected_cb *cbs, size_t ncbs)
{
    char path[PATH_MAX];

    fixture_path(path, sizeof(path), name);
    assert_loads(f, path, name, NULL, 0, cbs, ncbs);
}

/* ---- ABI minors, entry sizes and library versions ---------------------------- */

static void abi_1_0_descriptor_still_loads(void **state)
{
    static const expected_cb cbs[] = {{"old_one", 0}, {"old_two", 0}};
    assert_fixture_loads(*state, "abi_1_0", cbs, 2);
}

static void abi_1_1_descriptor_with_1_0_size_is_refused(void **state)
{
    char reason[128];

    snprintf(reason, sizeof(reason), "descriptor size %zu is smaller than ABI 1.1's %zu bytes",
             offsetof(daffi_plugin_descriptor, callback_size),
             offsetof(daffi_plugin_descriptor, libevent_version) + sizeof(uint32_t));
    assert_fixture_refused(*state, "short_1_1", reason);
}

/* Entries larger than this host's daffi_callback_def (a later minor's) are stepped
 * through by the plugin's callback_size. */
static void callback_table_is_walked_by_the_plugins_entry_size(void **state)
{
    static const expected_cb cbs[] = {{"wide_one", 0}, {"wide_two", DAFFI_CB_BLOCKING}};
    assert_fixture_loads(*state, "wide_entries", cbs, 2);
}

static void callback_size_below_a_1_0_entry_is_refused(void **state)
{
    char reason[128];

    snprintf(reason, sizeof(reason), "callback_size 8: a callback entry takes at least %zu "
             "bytes, in steps of %zu", sizeof(daffi_callback_def),
             _Alignof(daffi_callback_def));
    assert_fixture_refused(*state, "bad_callback_size", reason);
}

static void plugin_built_against_another_msgpack_major_is_refused_naming_both(void **state)
{
    char reason[256];

    snprintf(reason, sizeof(reason), "built against msgpack-c %d.2.3, daffid runs msgpack-c "
             "%d.%d.%d: another major version (rebuild the plugin)", msgpack_version_major() + 1,
             msgpack_version_major(), msgpack_version_minor(), msgpack_version_revision());
    assert_fixture_refused(*state, "other_msgpack", reason);
}

static void plugin_built_against_another_libevent_is_refused_naming_both(void **state)
{
    char reason[256];
    uint32_t ev = event_get_version_number();

    snprintf(reason, sizeof(reason), "built against libevent 2.2.1, daffid runs libevent "
             "%u.%u.%u: another major.minor version (rebuild the plugin)", ev >> 24,
             (ev >> 16) & 0xff, (ev >> 8) & 0xff);
    assert_fixture_refused(*state, "other_libevent", reason);
}

/* The DAFFI_PLUGIN macro in a C++ file (built with g++ -fvisibility=hidden) exports
 * the unmangled descriptor. */
static void cxx_plugin_loads(void **state)
{
    static const expected_cb cbs[] = {{"cxx_upper", 0}, {"cxx_sum", 0}, {"cxx_throw", 0}};
    assert_fixture_loads(*state, "cxx_plugin", cbs, 3);
}

static void calc_exposes_add_multiply_divide_inline(void **state)
{
    static const expected_cb cbs[] = {{"add", 0}, {"multiply", 0}, {"divide", 0}};
    assert_example(*state, "calc", NULL, 0, cbs, 3);
}

static void echo_exposes_echo_and_echo_after_inline_and_the_digest_stream(void **state)
{
    static const expected_cb cbs[] = {{"echo", 0}, {"echo_after", 0},
                                      {"digest", DAFFI_CB_STREAM}};
    dfd_kv kv[] = {{(char *)"max_delay_ms", (char *)"500"}};
    assert_example(*state, "echo", kv, 1, cbs, 3);
}

static void echo_refuses_a_bad_max_delay_at_init(void **state)
{
    fx *f = *state;
    char path[PATH_MAX];
    dfd_kv kv[] = {{(char *)"max_delay_ms", (char *)"70000"}};
    dfd_plugin_conf pc;
    dfd_plugin *p = NULL;

    example_path(path, sizeof(path), "echo");
    pc = make_conf("echo", path, kv, 1);
    assert_int_equal(dfd_plugin_load(&pc, f->private_dir, 1, &p, &f->errs), -1);
    assert_int_equal(f->errs.count, 1);
    assert_non_null(strstr(f->errs.msgs[0],
                           "init failed: [config] max_delay_ms: '70000' is not an integer "
                           "0..60000"));
    assert_int_equal(count_entries(f->private_dir), 0);
}

static void fib_exposes_fib_as_blocking(void **state)
{
    static const expected_cb cbs[] = {{"fib", DAFFI_CB_BLOCKING}};
    assert_example(*state, "fib", NULL, 0, cbs, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(good_plugin_loads_with_its_callbacks_and_flags),
        T(generation_keeps_the_declared_settings),
        T(config_values_are_visible_through_the_sdk),
        T(init_runs_once_and_the_last_release_runs_fini_once),
        T(fini_waits_for_every_reference),
        T(private_copy_is_named_for_the_generation_and_mode_0600),
        T(release_removes_the_private_copy_and_its_mapping),
        T(two_loads_of_one_file_are_independent_generations),
        T(missing_file_is_refused),
        T(text_file_is_refused_as_not_elf),
        T(empty_file_is_refused_as_not_elf),
        T(directory_is_refused),
        T(elf_executable_is_refused_with_the_dlopen_reason),
        T(undefined_host_symbol_is_refused_with_the_dlopen_reason),
        T(plugin_without_descriptor_is_refused),
        T(other_abi_major_is_refused),
        T(newer_abi_minor_is_refused),
        T(descriptor_smaller_than_abi_1_0_is_refused),
        T(duplicate_callback_is_refused),
        T(reserved_prefix_is_refused),
        T(callback_name_with_a_space_is_refused),
        T(unknown_callback_flags_are_refused),
        T(callback_without_handler_is_refused),
        T(empty_callback_table_is_refused),
        T(failing_init_is_refused_with_its_reason),
        T(failing_init_without_a_reason_says_no_reason_given),
        T(good_plugin_refuses_to_start_without_its_trace_file),
        T(failures_are_appended_to_earlier_errors),
        T(unwritable_private_dir_is_refused),
        T(a_confined_load_refuses_a_file_outside_its_directory),
        T(calc_exposes_add_multiply_divide_inline),
        T(echo_exposes_echo_and_echo_after_inline_and_the_digest_stream),
        T(echo_refuses_a_bad_max_delay_at_init),
        T(fib_exposes_fib_as_blocking),
        T(abi_1_0_descriptor_still_loads),
        T(abi_1_1_descriptor_with_1_0_size_is_refused),
        T(callback_table_is_walked_by_the_plugins_entry_size),
        T(callback_size_below_a_1_0_entry_is_refused),
        T(plugin_built_against_another_msgpack_major_is_refused_naming_both),
        T(plugin_built_against_another_libevent_is_refused_naming_both),
        T(cxx_plugin_loads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
