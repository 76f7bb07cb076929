/*
 * test_completion.c - the bash completion of daffictl and daffid
 * (packaging/completion/daffictl), the way bash drives it: the file is sourced,
 * COMP_WORDS/COMP_CWORD (and COMP_LINE/COMP_POINT, as bash sets them) describe a
 * command line, the completion function runs, and COMPREPLY is what bash offers.
 * daffictl's callbacks and plugins come from a real daffid (its TCP listener and
 * admin socket); daffid -o offers every key the configuration reader knows
 * (server/config-keys.c), so a new key without completion fails here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/daemon.h"

#define COMPLETION "packaging/completion/daffictl"

typedef struct cdaemon {
    tdaemon d;
    char admin[200];
    char ctl[PATH_MAX];        /* $BUILD/daffictl, as typed on the command line */
} cdaemon;

static int setup(void **state)
{
    cdaemon *c = calloc(1, sizeof(*c));
    char o_admin[260];
    const char *build = getenv("BUILD");
    if (c == NULL || tdaemon_init(&c->d) == -1 || tdaemon_add_example_plugins(&c->d) == -1)
        return -1;
    snprintf(c->ctl, sizeof(c->ctl), "%s/daffictl", build && *build ? build : "build");
    snprintf(c->admin, sizeof(c->admin), "%s/admin.sock", c->d.dir);
    snprintf(o_admin, sizeof(o_admin), "admin.socket=%s", c->admin);
    const char *ov[] = { o_admin, NULL };
    *state = c;
    return tdaemon_start(&c->d, ov);
}

static int teardown(void **state)
{
    cdaemon *c = *state;
    if (c != NULL) {
        tdaemon_cleanup(&c->d);
        free(c);
    }
    return 0;
}

/* Runs the completion of a command line in bash: line is what was typed up to the
 * cursor; with_line 0 sets only COMP_WORDS/COMP_CWORD (split at blanks). Returns
 * COMPREPLY joined by single spaces (static buffer). */
static const char *complete_line(const char *line, int with_line)
{
    static char out[16384];
    char script[PATH_MAX], cmd[PATH_MAX + 64];
    const char *tmp = getenv("TMPDIR");
    const char *fn = strncmp(line, "daffid ", 7) == 0 ? "_daffid" : "_daffictl";

    snprintf(script, sizeof(script), "%s/daffid-compl.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(script);
    assert_true(fd != -1);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    /* "daffid" is the tree's: the completion asks it for its keys (daffid --keys) */
    char bin[PATH_MAX];
    const char *build = getenv("BUILD");
    if (realpath(build && *build ? build : "build", bin) == NULL)
        fail_msg("no build directory");
    fprintf(f, "PATH=%s:$PATH\n", bin);
    fprintf(f, "source %s || exit 3\n", COMPLETION);
    fprintf(f, "line=$(cat <<'LINE_END'\n%s\nLINE_END\n)\n", line);
    /* a trailing blank starts a new, empty word, as bash has it */
    fprintf(f, "read -r -a COMP_WORDS <<< \"$line\"\n"
               "[[ $line == *' ' ]] && COMP_WORDS+=('')\n"
               "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n");
    if (with_line)
        fprintf(f, "COMP_LINE=$line; COMP_POINT=${#line}\n");
    fprintf(f, "COMPREPLY=()\n%s\nprintf '%%s\\n' \"${COMPREPLY[*]}\"\n", fn);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "bash %s 2>&1", script);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(script);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("bash failed completing '%s':\n%s", line, out);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* Asserts that completing the line offers exactly want. */
static void expect_completion(const char *line, const char *want)
{
    const char *got = complete_line(line, 1);
    if (strcmp(got, want) != 0)
        fail_msg("completing '%s': expected '%s', got '%s'", line, want, got);
}

/* Asserts the offer for line has the word w among its words. */
static void expect_offered(const char *offer, const char *line, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = offer; (p = strstr(p, w)) != NULL; p++)
        if ((p == offer || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return;
    fail_msg("completing '%s' does not offer '%s': '%s'", line, w, offer);
}

static void test_daffictl_completes_its_options_and_subcommands(void **state)
{
    cdaemon *c = *state;
    char line[PATH_MAX + 64];

    snprintf(line, sizeof(line), "%s ca", c->ctl);
    expect_completion(line, "call callbacks cast");
    snprintf(line, sizeof(line), "%s --ti", c->ctl);
    expect_completion(line, "--timeout");
    snprintf(line, sizeof(line), "%s -t 500 loglevel w", c->ctl);
    expect_completion(line, "warn");
    snprintf(line, sizeof(line), "%s help relo", c->ctl);
    expect_completion(line, "reload");
    /* COMP_WORDS and COMP_CWORD alone, as a caller without COMP_LINE gives them */
    snprintf(line, sizeof(line), "%s sta", c->ctl);
    const char *got = complete_line(line, 0);
    if (strcmp(got, "stats status") != 0)
        fail_msg("COMP_WORDS only: expected 'stats status', got '%s'", got);
}

static void test_daffictl_completes_the_servers_callbacks_and_the_admin_plugins(void **state)
{
    cdaemon *c = *state;
    char line[PATH_MAX + 512];

    snprintf(line, sizeof(line), "%s -s %s call ", c->ctl, c->d.tcp);
    expect_completion(line, "add digest divide echo echo_after fib multiply");
    snprintf(line, sizeof(line), "%s -s %s call ec", c->ctl, c->d.tcp);
    expect_completion(line, "echo echo_after");
    snprintf(line, sizeof(line), "%s -s %s notify mul", c->ctl, c->d.unix_addr);
    expect_completion(line, "multiply");
    /* the callback's arguments are the caller's own */
    snprintf(line, sizeof(line), "%s -s %s call add ", c->ctl, c->d.tcp);
    expect_completion(line, "");
    snprintf(line, sizeof(line), "%s -a %s reload ", c->ctl, c->admin);
    expect_completion(line, "calc echo fib");
    snprintf(line, sizeof(line), "%s --admin=%s unload f", c->ctl, c->admin);
    expect_completion(line, "fib");
    /* nobody there: nothing, and no error */
    snprintf(line, sizeof(line), "%s -s tcp://127.0.0.1:1 call ", c->ctl);
    expect_completion(line, "");
}

static void test_daffictl_completes_unix_socket_paths_after_s(void **state)
{
    cdaemon *c = *state;
    char line[PATH_MAX + 512], want[600];

    /* bash splits "unix:///dir/x" at ':'; the reply is the rest of the word */
    snprintf(line, sizeof(line), "%s -s unix://%s/daffid.so", c->ctl, c->d.dir);
    snprintf(want, sizeof(want), "//%s", c->d.sock_path);
    const char *got = complete_line(line, 1);
    if (strcmp(got, want) != 0)
        fail_msg("completing '%s': expected '%s', got '%s'", line, want, got);
    snprintf(line, sizeof(line), "%s -s tc", c->ctl);
    expect_completion(line, "tcp://127.0.0.1:6001");
}

static void test_daffid_completes_options_and_override_keys(void **state)
{
    cdaemon *c = *state;
    char line[PATH_MAX + 64];

    expect_completion("daffid --c", "--config");
    expect_completion("daffid -o server.wor", "server.workers=");
    /* after '=' bash's word is the value alone */
    expect_completion("daffid -o log.level=w", "warn");
    expect_completion("daffid -o server.role=", "service router worker");
    snprintf(line, sizeof(line), "daffid -c %s -o ca", c->d.dir);
    expect_completion(line, "calc:");
    snprintf(line, sizeof(line), "daffid -c %s -o calc:plugin.q", c->d.dir);
    expect_completion(line, "plugin.queue=");
}

/* Every (section, key) of the configuration reader's table is offered after -o. */
static void test_daffid_offers_every_key_the_configuration_reader_knows(void **state)
{
    (void)state;
    static const struct { const char *id, *name; } sections[] = {
        {"DFD_SECT_SERVER", "server"}, {"DFD_SECT_LIMITS", "limits"},
        {"DFD_SECT_LOG", "log"}, {"DFD_SECT_ADMIN", "admin"},
    };
    char offer[16384];
    snprintf(offer, sizeof(offer), "%s", complete_line("daffid -o ", 1));

    FILE *f = fopen("server/config-keys.c", "r");
    assert_non_null(f);
    char buf[512];
    int keys = 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
            char pat[64];
            snprintf(pat, sizeof(pat), "{ %s, \"", sections[i].id);
            const char *p = strstr(buf, pat);
            if (p == NULL)
                continue;
            p += strlen(pat);
            char w[128];
            snprintf(w, sizeof(w), "%s.%.*s=", sections[i].name, (int)strcspn(p, "\""), p);
            expect_offered(offer, "daffid -o ", w);
            keys++;
        }
    }
    fclose(f);
    /* the table's shape is what this reads: if it changed, this test must follow */
    if (keys < 20)
        fail_msg("found only %d keys in server/config-keys.c: its table changed shape", keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daffictl_completes_its_options_and_subcommands),
        cmocka_unit_test(test_daffictl_completes_the_servers_callbacks_and_the_admin_plugins),
        cmocka_unit_test(test_daffictl_completes_unix_socket_paths_after_s),
        cmocka_unit_test(test_daffid_completes_options_and_override_keys),
        cmocka_unit_test(test_daffid_offers_every_key_the_configuration_reader_knows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
