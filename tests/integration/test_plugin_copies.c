/*
 * test_plugin_copies.c - where daffid keeps its private copies of plugin files, and
 * who removes them: each daffid has BASE/daffid-plugins.PID.XXXXXX (BASE from
 * $RUNTIME_DIRECTORY, else /run/daffid when writable, else $TMPDIR/daffid-UID); a
 * clean exit removes it; a daffid killed with SIGKILL leaves it, and the next daffid
 * to start removes it, never the directory of a daffid that still runs.
 *
 * Each test points RUNTIME_DIRECTORY (or TMPDIR) at a scratch directory of its own,
 * which the daemons it starts inherit.
 */
#include <dirent.h>
#include <errno.h>
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

#include "../support/daemon.h"
#include "../support/expect.h"

#define NDAEMONS 3

typedef struct fixture {
    char base[128];            /* the scratch BASE (or TMPDIR) */
    tdaemon *d[NDAEMONS];
} fixture;

/* Removes dir and everything below it (two levels are all these tests make). */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char p[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (unlink(p) == -1)
            rm_tree(p);
    }
    closedir(d);
    rmdir(dir);
}

static int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    if (f == NULL)
        return -1;
    snprintf(f->base, sizeof(f->base), "%s/daffid-copies.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->base) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < NDAEMONS; i++) {
        if (f->d[i] != NULL) {
            tdaemon_cleanup(f->d[i]);
            free(f->d[i]);
        }
    }
    unsetenv("RUNTIME_DIRECTORY");
    rm_tree(f->base);
    free(f);
    return 0;
}

/* Starts daemon i of the fixture with the example plugins, or fails the test. */
static tdaemon *start(fixture *f, int i)
{
    tdaemon *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    f->d[i] = d;
    assert_int_equal(tdaemon_init(d), 0);
    assert_int_equal(tdaemon_add_example_plugins(d), 0);
    assert_int_equal(tdaemon_start(d, NULL), 0);
    return d;
}

/* The private directory of pid in base (its path into out), counting the entries in
 * it into *files. Returns 1 when there is one, 0 when there is none. */
static int copies_of(const char *base, pid_t pid, char *out, size_t outsz, int *files)
{
    char prefix[64];
    int found = 0;
    snprintf(prefix, sizeof(prefix), "daffid-plugins.%d.", (int)pid);
    DIR *d = opendir(base);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        assert_int_equal(found, 0); /* one directory per daffid */
        found = 1;
        snprintf(out, outsz, "%s/%s", base, e->d_name);
    }
    closedir(d);
    *files = 0;
    if (found) {
        DIR *c = opendir(out);
        assert_non_null(c);
        for (struct dirent *e; (e = readdir(c)) != NULL;)
            *files += e->d_name[0] != '.';
        closedir(c);
    }
    return found;
}

/* Entries of base whose name begins with "daffid-plugins.". */
static int count_dirs(const char *base)
{
    int n = 0;
    DIR *d = opendir(base);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, "daffid-plugins.", 15) == 0;
    closedir(d);
    return n;
}

static void test_copies_live_in_runtime_directory_and_a_clean_exit_removes_them(void **state)
{
    fixture *f = *state;
    char dir[512];
    int files;

    setenv("RUNTIME_DIRECTORY", f->base, 1);
    tdaemon *a = start(f, 0);
    pid_t pid = a->pid;
    assert_int_equal(copies_of(f->base, pid, dir, sizeof(dir), &files), 1);
    assert_int_equal(files, 3); /* calc, echo, fib */
    assert_int_equal(tdaemon_stop(a, TDAEMON_STOP_TIMEOUT_MS), 0);
    assert_int_equal(copies_of(f->base, pid, dir, sizeof(dir), &files), 0);
    assert_int_equal(count_dirs(f->base), 0);
}

static void test_a_killed_daffids_copies_are_removed_by_the_next_start_not_a_live_ones(
    void **state)
{
    fixture *f = *state;
    char dir_a[512], dir_b[512], dir[512];
    int files_a, files_b, files;

    setenv("RUNTIME_DIRECTORY", f->base, 1);
    tdaemon *a = start(f, 0);
    pid_t pid_a = a->pid;
    tdaemon *b = start(f, 1);
    pid_t pid_b = b->pid;
    /* b's start left a's directory alone: a runs */
    assert_int_equal(copies_of(f->base, pid_a, dir_a, sizeof(dir_a), &files_a), 1);
    assert_int_equal(files_a, 3);
    assert_int_equal(copies_of(f->base, pid_b, dir_b, sizeof(dir_b), &files_b), 1);

    /* a crash: nothing of a's runs to clean up */
    assert_int_equal(tdaemon_signal(a, SIGKILL), 0);
    assert_int_equal(tdaemon_wait_exit(a, TDAEMON_STOP_TIMEOUT_MS), 1);
    assert_int_equal(copies_of(f->base, pid_a, dir, sizeof(dir), &files), 1);
    assert_string_equal(dir, dir_a);
    assert_int_equal(files, 3);

    /* daffid -t starts the same way: it removes a's leftovers too, but not b's */
    char out[4096];
    assert_int_equal(tdaemon_check(b, NULL, out, sizeof(out)), 0);
    assert_int_equal(copies_of(f->base, pid_a, dir, sizeof(dir), &files), 0);
    assert_int_equal(copies_of(f->base, pid_b, dir, sizeof(dir), &files), 1);
    assert_string_equal(dir, dir_b);
    assert_int_equal(files, files_b);
    assert_int_equal(count_dirs(f->base), 1);
    expect_serving(b->tcp);

    /* a second crash, then a full start removes it and keeps b's */
    assert_int_equal(tdaemon_signal(b, SIGKILL), 0);
    assert_int_equal(tdaemon_wait_exit(b, TDAEMON_STOP_TIMEOUT_MS), 1);
    tdaemon *c = start(f, 2);
    assert_int_equal(copies_of(f->base, pid_b, dir, sizeof(dir), &files), 0);
    assert_int_equal(copies_of(f->base, c->pid, dir, sizeof(dir), &files), 1);
    assert_int_equal(count_dirs(f->base), 1);
    char log[1 << 16];
    assert_true(tdaemon_read_log(c, log, sizeof(log)) > 0);
    char want[128];
    snprintf(want, sizeof(want), "daffid-plugins.%d.", (int)pid_b);
    const char *line = strstr(log, "event=server.stale_copies_removed");
    assert_non_null(line);
    assert_non_null(strstr(line, want));
    assert_int_equal(tdaemon_stop(c, TDAEMON_STOP_TIMEOUT_MS), 0);
}

static void test_another_users_directory_of_the_same_name_is_not_touched(void **state)
{
    fixture *f = *state;
    char stale[256], other[256], file[300];

    if (geteuid() != 0)
        skip(); /* only root can make a directory that belongs to someone else */
    setenv("RUNTIME_DIRECTORY", f->base, 1);
    /* a pid that does not run: the directory looks stale, but is not this user's */
    snprintf(other, sizeof(other), "%s/daffid-plugins.999999999.abcdef", f->base);
    snprintf(stale, sizeof(stale), "%s/daffid-plugins.999999998.abcdef", f->base);
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(chown(other, 65534, 65534), 0);
    assert_int_equal(mkdir(stale, 0700), 0);
    snprintf(file, sizeof(file), "%s/calc.1.so", stale);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    tdaemon *a = start(f, 0);
    struct stat st;
    assert_int_equal(stat(other, &st), 0);
    assert_int_equal(stat(stale, &st), -1);
    assert_int_equal(tdaemon_stop(a, TDAEMON_STOP_TIMEOUT_MS), 0);
}

/* Without RUNTIME_DIRECTORY (and no writable /run/daffid), copies go to a directory of
 * this user's own under TMPDIR, and one that others could have planted is refused. */
static void test_without_a_runtime_directory_copies_go_to_a_private_dir_in_tmpdir(
    void **state)
{
    fixture *f = *state;
    char user_dir[256], dir[512], out[4096];
    int files;
    struct stat st;

    if (access("/run/daffid", W_OK) == 0)
        skip(); /* /run/daffid would be chosen: the README's order */
    unsetenv("RUNTIME_DIRECTORY");
    char *old_tmp = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", f->base, 1);
    snprintf(user_dir, sizeof(user_dir), "%s/daffid-%u", f->base, (unsigned)geteuid());

    tdaemon *a = start(f, 0);
    assert_int_equal(stat(user_dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(copies_of(user_dir, a->pid, dir, sizeof(dir), &files), 1);
    assert_int_equal(files, 3);

    /* a directory others may write into is not used */
    assert_int_equal(chmod(user_dir, 0777), 0);
    int rc = tdaemon_check(a, NULL, out, sizeof(out));
    assert_int_equal(chmod(user_dir, 0700), 0);
    if (old_tmp != NULL) {
        setenv("TMPDIR", old_tmp, 1);
        free(old_tmp);
    } else {
        unsetenv("TMPDIR");
    }
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "writable by group or others"));
    assert_non_null(strstr(out, user_dir));
    assert_int_equal(tdaemon_stop(a, TDAEMON_STOP_TIMEOUT_MS), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_copies_live_in_runtime_directory_and_a_clean_exit_removes_them),
        T(test_a_killed_daffids_copies_are_removed_by_the_next_start_not_a_live_ones),
        T(test_another_users_directory_of_the_same_name_is_not_touched),
        T(test_without_a_runtime_directory_copies_go_to_a_private_dir_in_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
