/*
 * test_readme.c - the README's examples, run as written. A fenced block that follows
 * a `<!-- readme-test: NAME -->` line is a test: its commands run in bash from the
 * repository root, each must succeed, and what they print is checked here.
 *
 * What differs from typing them: the example configurations are copied to a private
 * directory with a free port and socket paths of its own (so that parallel runs and a
 * developer's own daffid do not collide), `build/` is $BUILD, the harness waits for the
 * router to accept before the first client command (a person typing does), and
 * `kill %N...` becomes a kill of the background commands by PID followed by waiting for
 * each, which must exit 0 (a clean drain).
 */
#include <limits.h>
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
#include "../support/expect.h"
#include "../support/tnats.h"

/* Reads the fenced block after the marker line for name into out (its lines). */
static void readme_block(const char *name, char *out, size_t outsz)
{
    char marker[128], line[1024];
    FILE *f = fopen("README.md", "r");
    int state = 0; /* 0: looking, 1: marker seen, 2: in the block */
    size_t len = 0;

    assert_non_null(f);
    snprintf(marker, sizeof(marker), "<!-- readme-test: %s -->", name);
    out[0] = '\0';
    while (fgets(line, sizeof(line), f) != NULL) {
        if (state == 0 && strncmp(line, marker, strlen(marker)) == 0) {
            state = 1;
        } else if (state == 1 && strncmp(line, "```", 3) == 0) {
            state = 2;
        } else if (state == 2) {
            if (strncmp(line, "```", 3) == 0)
                break;
            size_t n = strlen(line);
            assert_true(len + n < outsz);
            memcpy(out + len, line, n + 1);
            len += n;
        }
    }
    fclose(f);
    if (state != 2 || len == 0)
        fail_msg("README.md has no block after '%s'", marker);
}

/* Appends the printf-formatted text to buf (size bufsz). */
static void append(char *buf, size_t bufsz, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, bufsz - len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < bufsz - len);
}

/* Replaces every occurrence of from in s (in place, within size). */
static void replace_all(char *s, size_t size, const char *from, const char *to)
{
    char *tmp = malloc(size);
    size_t flen = strlen(from), tlen = strlen(to), o = 0;
    assert_non_null(tmp);
    for (const char *p = s; *p != '\0';) {
        if (strncmp(p, from, flen) == 0) {
            assert_true(o + tlen < size);
            memcpy(tmp + o, to, tlen);
            o += tlen;
            p += flen;
        } else {
            assert_true(o + 1 < size);
            tmp[o++] = *p++;
        }
    }
    tmp[o] = '\0';
    memcpy(s, tmp, o + 1);
    free(tmp);
}

/* Turns the README block's lines into a bash script in script (scriptsz bytes): each
 * command runs as written and must succeed; a background command's PID is kept (a
 * nats-server's apart: it exits 1 on SIGTERM, which is not daffid's to check); the
 * first daffictl waits until wait_port answers daffi.ping; `kill %N...` kills every
 * background command, and each daffid must exit 0. Runs it from dir and returns its
 * stdout in out (outsz bytes), failing the test (with its stderr) unless it exits 0. */
static void run_block(char *block, char *script, size_t scriptsz, const char *build,
                      const char *wait_port, const char *dir, char *out, size_t outsz,
                      const char *what)
{
    char cmd[PATH_MAX * 2];
    append(script, scriptsz, "set -e\npids=\nnpids=\nwaited=\n");
    for (char *line = strtok(block, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *hash = strstr(line, "  #");
        if (hash != NULL)
            *hash = '\0';
        size_t n = strlen(line);
        while (n > 0 && line[n - 1] == ' ')
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (strncmp(line, "kill %", 6) == 0) {
            append(script, scriptsz,
                   "kill $pids $npids\nfor p in $pids; do wait $p || { echo \"pid $p exited $?\"; "
                   "exit 1; }; done\nfor p in $npids; do wait $p || true; done\n");
        } else if (line[n - 1] == '&') {
            append(script, scriptsz, "%s\n%s=\"$%s $!\"\n", line,
                   strstr(line, "nats-server") != NULL ? "npids" : "pids",
                   strstr(line, "nats-server") != NULL ? "npids" : "pids");
        } else {
            if (strstr(line, "daffictl") != NULL)
                append(script, scriptsz,
                       "[ -n \"$waited\" ] || { for i in $(seq 100); do "
                       "%s/daffictl -s tcp://127.0.0.1:%s call daffi.ping >/dev/null 2>&1 "
                       "&& break; sleep 0.05; done; waited=1; }\n", build, wait_port);
            char shown[2048];
            snprintf(shown, sizeof(shown), "%s", line);
            replace_all(shown, sizeof(shown), "'", "'\"'\"'"); /* inside '...' */
            append(script, scriptsz, "echo '>>> %s'\n%s\n", shown, line);
        }
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/run.sh", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(script, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "bash %s 2>%s/stderr.log", path, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outsz - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    fprintf(stderr, "%s", out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(cmd, sizeof(cmd), "tail -n 40 %s/stderr.log >&2", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "(no stderr log)\n");
        fail_msg("the README's %s example failed (status %d)", what, st);
    }
}

/* Copies examples/<example> into dir (a mkdtemp template, filled in) with sed_exprs
 * (sed -e arguments, may be "") applied to its ini files and plugin_dir pointed at
 * this build, whose absolute path goes to build; then makes the block's paths those of
 * the copy and the build. */
static void readme_prepare(char *block, size_t blocksz, const char *example, char *dir,
                           char *build, const char *sed_exprs)
{
    char cmd[PATH_MAX * 6], paths[PATH_MAX + 64], from[64];
    const char *b = getenv("BUILD");
    assert_non_null(realpath(b && *b ? b : "build", build));
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd),
             "cp -rL examples/%s %s/%s && sed -i %s -e 's|^plugin_dir = .*|plugin_dir = "
             "%s/plugins|' %s/%s/*/*.ini", example, dir, example, sed_exprs, build, dir,
             example);
    assert_int_equal(system(cmd), 0);
    snprintf(paths, sizeof(paths), "%s/%s", dir, example);
    snprintf(from, sizeof(from), "examples/%s", example);
    replace_all(block, blocksz, from, paths);
    replace_all(block, blocksz, "build/", "BUILD_DIR/");
    replace_all(block, blocksz, "BUILD_DIR", build);
}

/* The router and two workers of examples/cluster, through daffictl. */
static void test_the_readme_cluster_example_works_as_written(void **state)
{
    (void)state;
    char block[8192], script[32768] = "", dir[] = "/tmp/daffid-readme.XXXXXX";
    char build[PATH_MAX], cmd[PATH_MAX * 6], port[16], sock[PATH_MAX], out[65536];

    readme_block("cluster", block, sizeof(block));
    snprintf(port, sizeof(port), "%d", tdaemon_free_port());
    /* the example's configuration, on this run's port and socket */
    char seds[PATH_MAX * 2];
    snprintf(seds, sizeof(seds), "-e 's|127.0.0.1:7000|127.0.0.1:%s|'", port);
    readme_prepare(block, sizeof(block), "cluster", dir, build, seds);
    snprintf(sock, sizeof(sock), "%s/cluster.sock", dir);
    snprintf(cmd, sizeof(cmd), "sed -i -e 's|/tmp/daffid-cluster.sock|%s|' %s/cluster/*/*.ini",
             sock, dir);
    assert_int_equal(system(cmd), 0);
    replace_all(block, sizeof(block), "127.0.0.1:7000", "127.0.0.1:PORT_NUM");
    replace_all(block, sizeof(block), "PORT_NUM", port);
    replace_all(block, sizeof(block), "/tmp/daffid-cluster.sock", sock);

    run_block(block, script, sizeof(script), build, port, dir, out, sizeof(out), "cluster");
    /* what the comments promise */
    assert_non_null(strstr(out, "call daffi.wait '[\"w1\", \"w2\"]' 5000\ntrue\n"));
    assert_non_null(strstr(out, "\"name\":\"w1\""));
    assert_non_null(strstr(out, "\"name\":\"w2\""));
    assert_non_null(strstr(out, "call add 1 2\n3\n"));
    assert_non_null(strstr(out, "{\"to\": \"w2\"}'\n3\n"));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* "Scaling out": a nats-server, two gateway routers and two NATS workers of
 * examples/nats, through daffictl. Skipped without nats-server. */
static void test_the_readme_scaling_out_example_works_as_written(void **state)
{
    (void)state;
    char block[8192], script[32768] = "", dir[] = "/tmp/daffid-readme-nats.XXXXXX";
    char build[PATH_MAX], cmd[PATH_MAX * 6], nport[16], p1[16], p2[16], out[65536];
    const char *nats = tnats_binary();

    if (nats == NULL) {
        print_message("SKIPPED: nats-server is not installed\n");
        skip();
    }
    readme_block("scaling-out", block, sizeof(block));
    snprintf(nport, sizeof(nport), "%d", tdaemon_free_port());
    snprintf(p1, sizeof(p1), "%d", tdaemon_free_port());
    snprintf(p2, sizeof(p2), "%d", tdaemon_free_port());
    char seds[128];
    snprintf(seds, sizeof(seds), "-e 's|127.0.0.1:4222|127.0.0.1:%s|' "
             "-e 's|127.0.0.1:7001|127.0.0.1:%s|'", nport, p1);
    readme_prepare(block, sizeof(block), "nats", dir, build, seds);
    replace_all(block, sizeof(block), "nats-server ", "NATS_BIN ");
    replace_all(block, sizeof(block), "NATS_BIN", nats);
    replace_all(block, sizeof(block), "4222", "NPORT");
    replace_all(block, sizeof(block), "NPORT", nport);
    replace_all(block, sizeof(block), "7001", "PORT_ONE");
    replace_all(block, sizeof(block), "PORT_ONE", p1);
    replace_all(block, sizeof(block), "7002", "PORT_TWO");
    replace_all(block, sizeof(block), "PORT_TWO", p2);
    run_block(block, script, sizeof(script), build, p1, dir, out, sizeof(out), "scaling out");
    /* what the comments promise */
    assert_non_null(strstr(out, "call daffi.wait '[\"w1\", \"w2\"]' 5000\ntrue\n"));
    assert_non_null(strstr(out, "\"name\":\"w1\""));
    assert_non_null(strstr(out, "\"name\":\"w2\""));
    assert_non_null(strstr(out, "call add 1 2\n3\n"));
    assert_non_null(strstr(out, "{\"to\": \"w2\"}'\n3\n"));
    assert_non_null(strstr(out, "NO_CALLBACK"));
    /* a million zero bytes: FNV-1a 64 folded over them */
    assert_non_null(strstr(out, "\"bytes\":1000000,"));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_readme_cluster_example_works_as_written),
        cmocka_unit_test(test_the_readme_scaling_out_example_works_as_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
