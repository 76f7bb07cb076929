/*
 * daemon.c - real daffid processes for integration tests (see daemon.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "daemon.h"
#include "logcheck.h"
#include "rawconn.h"

#define TDAEMON_MAX_ARGS 64

/* Returns CLOCK_MONOTONIC in milliseconds. */
static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds, resuming after signals. */
static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* See daemon.h. The port is free when this returns; another process could take it
 * before daffid binds it, which tests accept as a (rare) start failure. */
int tdaemon_free_port(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd == -1)
        return -1;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* Accepts an uninitialised d. Fills in the paths of the build and the temp dir and
 * writes the server's ini. Returns 0 or -1 (reason printed). */
int tdaemon_init(tdaemon *d)
{
    const char *build = getenv("BUILD");
    const char *tmp = getenv("TMPDIR");
    char tmpl[sizeof(d->dir)];

    memset(d, 0, sizeof(*d));
    if (build == NULL || *build == '\0')
        build = "build";
    if (realpath(build, d->build) == NULL) {
        fprintf(stderr, "tdaemon: build directory %s: %s (run from the repository root "
                "with BUILD set)\n", build, strerror(errno));
        return -1;
    }
    snprintf(d->bin, sizeof(d->bin), "%s/daffid", d->build);
    if (access(d->bin, X_OK) == -1) {
        fprintf(stderr, "tdaemon: %s: %s\n", d->bin, strerror(errno));
        return -1;
    }
    /* Unix socket paths are limited to 107 bytes: keep the dir short. */
    if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 64)
        tmp = "/tmp";
    snprintf(tmpl, sizeof(tmpl), "%s/daffid-itest.XXXXXX", tmp);
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "tdaemon: mkdtemp %s: %s\n", tmpl, strerror(errno));
        return -1;
    }
    memcpy(d->dir, tmpl, sizeof(d->dir));
    snprintf(d->sock_path, sizeof(d->sock_path), "%s/daffid.sock", d->dir);
    snprintf(d->log_path, sizeof(d->log_path), "%s/daffid.log", d->dir);
    snprintf(d->unix_addr, sizeof(d->unix_addr), "unix://%s", d->sock_path);
    d->port = tdaemon_free_port();
    if (d->port == -1) {
        fprintf(stderr, "tdaemon: no free TCP port: %s\n", strerror(errno));
        return -1;
    }
    snprintf(d->tcp, sizeof(d->tcp), "tcp://127.0.0.1:%d", d->port);
    return tdaemon_write_file(d, "00-server.ini",
                              "[server]\n"
                              "listen = %s, %s\n"
                              "workers = 2\n"
                              "blocking_threads = 2\n"
                              "shutdown_timeout = 5s\n"
                              "state_file = %s/router.members\n"
                              "\n"
                              "[log]\n"
                              "level = info\n",
                              d->tcp, d->unix_addr, d->dir);
}

/* See daemon.h. Accepts a file name inside d->dir. Returns 0 or -1 (printed). */
int tdaemon_write_file(tdaemon *d, const char *name, const char *fmt, ...)
{
    char path[PATH_MAX];
    va_list ap;
    FILE *f;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/%s", d->dir, name);
    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "tdaemon: %s: %s\n", path, strerror(errno));
        return -1;
    }
    va_start(ap, fmt);
    if (vfprintf(f, fmt, ap) < 0)
        rc = -1;
    va_end(ap);
    if (fclose(f) == EOF)
        rc = -1;
    if (rc == -1)
        fprintf(stderr, "tdaemon: writing %s failed\n", path);
    return rc;
}

/* See daemon.h. Fails (printed) when the .so was not built. */
int tdaemon_add_plugin(tdaemon *d, const char *name, const char *extra)
{
    char file[64];
    char so[PATH_MAX + 64];

    snprintf(so, sizeof(so), "%s/plugins/%s.so", d->build, name);
    if (access(so, R_OK) == -1) {
        fprintf(stderr, "tdaemon: plugin %s: %s\n", so, strerror(errno));
        return -1;
    }
    snprintf(file, sizeof(file), "10-%s.ini", name);
    return tdaemon_write_file(d, file, "[plugin]\nname = %s\npath = %s\n%s", name, so,
                              extra ? extra : "");
}

/* See daemon.h. Returns 0 or -1. */
int tdaemon_add_example_plugins(tdaemon *d)
{
    if (tdaemon_add_plugin(d, "calc", NULL) == -1 ||
        tdaemon_add_plugin(d, "echo", NULL) == -1 ||
        tdaemon_add_plugin(d, "fib", NULL) == -1)
        return -1;
    return 0;
}

/* Accepts d and overrides. Fills argv (of at most TDAEMON_MAX_ARGS slots) with
 * daffid's command line; the strings belong to d and overrides. Returns 0 or -1. */
static int build_argv(tdaemon *d, const char *check, const char *const *overrides,
                      char **argv)
{
    int n = 0;

    argv[n++] = d->bin;
    if (check != NULL)
        argv[n++] = (char *)check;
    argv[n++] = "-c";
    argv[n++] = d->dir;
    for (size_t i = 0; overrides != NULL && overrides[i] != NULL; i++) {
        if (n + 3 > TDAEMON_MAX_ARGS) {
            fprintf(stderr, "tdaemon: too many overrides\n");
            return -1;
        }
        argv[n++] = "-o";
        argv[n++] = (char *)overrides[i];
    }
    argv[n] = NULL;
    return 0;
}

/* In the child after fork(): makes out_fd its stdout and stderr, stdin /dev/null, and
 * execs argv. parent is the test process. Never returns. */
static void exec_child(int out_fd, char **argv, pid_t parent)
{
    /* A test that crashes or is killed by its deadline must not leave daffid running. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
        _exit(126);
    int null = open("/dev/null", O_RDONLY);

    if (null != -1)
        dup2(null, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    /* The test process may ignore or block signals; daffid must start clean. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    execv(argv[0], argv);
    dprintf(2, "tdaemon: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* See daemon.h. The child's output is appended to d->log_path; d->pid is set. */
int tdaemon_spawn(tdaemon *d, const char *const *overrides)
{
    char *argv[TDAEMON_MAX_ARGS];
    int fd;
    pid_t pid;

    if (d->pid != 0) {
        fprintf(stderr, "tdaemon: already running (pid %d)\n", (int)d->pid);
        return -1;
    }
    if (build_argv(d, NULL, overrides, argv) == -1)
        return -1;
    fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1) {
        fprintf(stderr, "tdaemon: %s: %s\n", d->log_path, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid = fork();
    if (pid == -1) {
        fprintf(stderr, "tdaemon: fork: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0)
        exec_child(fd, argv, parent);
    close(fd);
    d->pid = pid;
    d->status = 0;
    return 0;
}

/* See daemon.h. Reaps the child (d->status) when it has exited. */
int tdaemon_alive(tdaemon *d)
{
    if (d->pid == 0)
        return 0;
    pid_t r = waitpid(d->pid, &d->status, WNOHANG);
    if (r == d->pid) {
        d->pid = 0;
        return 0;
    }
    return 1;
}

/* Prints how the child ended, from d->status. */
static void print_exit(const tdaemon *d, const char *what)
{
    if (WIFEXITED(d->status))
        fprintf(stderr, "tdaemon: daffid %s: exited with status %d\n", what,
                WEXITSTATUS(d->status));
    else if (WIFSIGNALED(d->status))
        fprintf(stderr, "tdaemon: daffid %s: killed by signal %d (%s)\n", what,
                WTERMSIG(d->status), strsignal(WTERMSIG(d->status)));
}

/* See daemon.h. Polls with a fresh connection every 10 ms. */
int tdaemon_wait_ready(tdaemon *d, const char *address, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    int last_errno = 0;

    for (;;) {
        rawconn c;
        if (rawconn_open(&c, address, 1000) == 0) {
            rawconn_close(&c);
            return 0;
        }
        last_errno = errno;
        rawconn_close(&c);
        if (!tdaemon_alive(d)) {
            print_exit(d, "did not start");
            tdaemon_dump_log(d);
            return -1;
        }
        if (now_ms() >= deadline)
            break;
        sleep_ms(10);
    }
    fprintf(stderr, "tdaemon: %s did not accept within %d ms (last error: %s)\n", address,
            timeout_ms, strerror(last_errno));
    tdaemon_dump_log(d);
    return -1;
}

/* See daemon.h. Returns 0 once both listeners accept, or -1 (log printed). */
int tdaemon_start(tdaemon *d, const char *const *overrides)
{
    if (tdaemon_spawn(d, overrides) == -1)
        return -1;
    if (tdaemon_wait_ready(d, d->tcp, TDAEMON_START_TIMEOUT_MS) == -1 ||
        tdaemon_wait_ready(d, d->unix_addr, TDAEMON_START_TIMEOUT_MS) == -1)
        return -1;
    return 0;
}

/* See daemon.h. Returns what kill() returned, -1 when nothing runs. */
int tdaemon_signal(tdaemon *d, int sig)
{
    if (d->pid == 0)
        return -1;
    return kill(d->pid, sig);
}

/* See daemon.h. Polls waitpid() every 5 ms until the deadline. */
int tdaemon_wait_exit(tdaemon *d, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    if (d->pid == 0)
        return 1;
    for (;;) {
        pid_t r = waitpid(d->pid, &d->status, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            return 1;
        }
        if (r == -1 && errno != EINTR)
            return -1;
        if (now_ms() >= deadline)
            return 0;
        sleep_ms(5);
    }
}

/* See daemon.h. Prints the log whenever the stop was not clean. */
int tdaemon_stop(tdaemon *d, int timeout_ms)
{
    if (d->pid == 0) {
        /* Already gone: report how it ended. */
        return WIFEXITED(d->status) ? WEXITSTATUS(d->status) : -1;
    }
    if (tdaemon_signal(d, SIGTERM) == -1) {
        fprintf(stderr, "tdaemon: kill(%d, SIGTERM): %s\n", (int)d->pid, strerror(errno));
        return -1;
    }
    int r = tdaemon_wait_exit(d, timeout_ms);
    if (r != 1) {
        fprintf(stderr, "tdaemon: daffid (pid %d) did not exit within %d ms of SIGTERM: "
                "killed\n", (int)d->pid, timeout_ms);
        kill(d->pid, SIGKILL);
        tdaemon_wait_exit(d, 5000);
        tdaemon_dump_log(d);
        return -1;
    }
    if (!WIFEXITED(d->status)) {
        print_exit(d, "on SIGTERM");
        tdaemon_dump_log(d);
        return -1;
    }
    if (WEXITSTATUS(d->status) != 0) {
        print_exit(d, "on SIGTERM");
        tdaemon_dump_log(d);
        return WEXITSTATUS(d->status);
    }
    /* every line daffid logged is logfmt (operators parse them) */
    int bad = logcheck_file(d->log_path);
    if (bad > 0) {
        fprintf(stderr, "tdaemon: %d log line(s) of daffid (pid %d) are not logfmt\n", bad,
                (int)d->pid);
        return -1;
    }
    return 0;
}

/* See daemon.h. The output is read through a pipe until daffid closes it. */
int tdaemon_check(tdaemon *d, const char *const *overrides, char *out, size_t outsz)
{
    char *argv[TDAEMON_MAX_ARGS];
    int pfd[2];
    size_t len = 0;
    long long deadline = now_ms() + TDAEMON_START_TIMEOUT_MS;
    int status = 0;

    if (outsz > 0)
        out[0] = '\0';
    if (build_argv(d, "-t", overrides, argv) == -1)
        return -1;
    if (pipe2(pfd, O_CLOEXEC) == -1)
        return -1;
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == -1) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0)
        exec_child(pfd[1], argv, parent);
    close(pfd[1]);
    for (;;) {
        struct pollfd p = { .fd = pfd[0], .events = POLLIN };
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        char tmp[4096];
        ssize_t n = read(pfd[0], tmp, sizeof(tmp));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && len + 1 < outsz; i++)
            out[len++] = tmp[i];
        if (outsz > 0)
            out[len] = '\0';
    }
    close(pfd[0]);
    /* Bounded: a -t run that hangs is killed and reported. */
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() >= deadline) {
            fprintf(stderr, "tdaemon: daffid -t did not exit: killed\n");
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_ms(5);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* See daemon.h. out is owned by the caller. */
long tdaemon_read_log(const tdaemon *d, char *out, size_t outsz)
{
    FILE *f = fopen(d->log_path, "r");
    size_t n;

    if (outsz == 0)
        return -1;
    out[0] = '\0';
    if (f == NULL)
        return -1;
    n = fread(out, 1, outsz - 1, f);
    out[n] = '\0';
    fclose(f);
    return (long)n;
}

/* See daemon.h. Prints at most the first 200 lines. */
void tdaemon_dump_log(const tdaemon *d)
{
    FILE *f = fopen(d->log_path, "r");
    char line[1024];
    unsigned n = 0;

    fprintf(stderr, "---- %s ----\n", d->log_path);
    if (f != NULL) {
        /* The tail matters; a runaway log must not flood the test output. */
        while (fgets(line, sizeof(line), f) != NULL && n++ < 200)
            fputs(line, stderr);
        fclose(f);
    }
    fprintf(stderr, "---- end of log ----\n");
}

/* See daemon.h. The dir holds only flat files daffid or the tests wrote. */
/* nftw callback of tdaemon_cleanup: removes one entry of the tree. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tdaemon_cleanup(tdaemon *d)
{
    if (d->pid != 0) {
        kill(d->pid, SIGKILL);
        tdaemon_wait_exit(d, 5000);
    }
    if (d->dir[0] == '\0')
        return;
    /* children first, symlinks not followed: a test may leave subdirectories */
    nftw(d->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (access(d->dir, F_OK) == 0)
        fprintf(stderr, "tdaemon: cannot remove %s\n", d->dir);
    d->dir[0] = '\0';
}

/* See daemon.h. The returned daemon is owned by the caller (tdaemon_free()). */
tdaemon *tdaemon_new_started(const char *const *overrides)
{
    tdaemon *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    if (tdaemon_init(d) == -1 || tdaemon_add_example_plugins(d) == -1 ||
        tdaemon_start(d, overrides) == -1) {
        tdaemon_cleanup(d);
        free(d);
        return NULL;
    }
    return d;
}

/* See daemon.h. Frees d whatever the stop returned. */
int tdaemon_free(tdaemon *d)
{
    int rc;

    if (d == NULL)
        return 0;
    rc = tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS);
    tdaemon_cleanup(d);
    free(d);
    return rc;
}

/* See daemon.h. *state receives a daemon owned by the group (freed by the teardown). */
int tdaemon_group_setup(void **state)
{
    return tdaemon_group_setup_with(state, NULL);
}

/* See daemon.h. */
int tdaemon_group_setup_with(void **state, const char *const *overrides)
{
    tdaemon *d = tdaemon_new_started(overrides);

    if (d == NULL)
        return -1;
    *state = d;
    return 0;
}

/* See daemon.h. Frees the daemon whatever its exit. */
int tdaemon_group_teardown(void **state)
{
    int rc = tdaemon_free(*state);

    *state = NULL;
    return rc == 0 ? 0 : -1;
}
