/*
 * daemon.h - start and stop real daffid processes for integration tests and benchmarks.
 *
 * Contract
 *   A tdaemon is one daffid process and its private configuration directory:
 *     tdaemon_init()        makes a temp dir (mkdtemp) and writes 00-server.ini there:
 *                           listen on a free 127.0.0.1 TCP port (found by binding port
 *                           0) and on a Unix socket inside the dir, workers = 2.
 *     tdaemon_add_plugin()  writes 10-NAME.ini declaring $BUILD/plugins/NAME.so by its
 *                           absolute path (the repo's conf.d is never used).
 *     tdaemon_start()       fork/execs `$BUILD/daffid -c DIR [-o k=v ...]` with stdout and
 *                           stderr appended to DIR/daffid.log, and waits (bounded) until
 *                           both listeners accept.
 *     tdaemon_stop()        SIGTERM, then waits (bounded); past the deadline SIGKILL and
 *                           report failure.
 *     tdaemon_cleanup()     kills a daemon still running, removes the dir.
 *   A daffid child gets SIGKILL when the test process dies (PR_SET_PDEATHSIG), so a
 *   crashed or timed-out test never leaves a server behind.
 *   BUILD comes from the environment (default "build"), relative to the working
 *   directory (the repository root, where tests/run.sh runs every test).
 *
 * Ownership: the caller owns the tdaemon struct; it owns the temp dir and the child.
 * Every function reports failures on stderr with what was wrong. No global state.
 */
#ifndef DAFFI_TEST_DAEMON_H
#define DAFFI_TEST_DAEMON_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#define TDAEMON_START_TIMEOUT_MS 10000
#define TDAEMON_STOP_TIMEOUT_MS 10000

typedef struct tdaemon {
    char build[PATH_MAX];      /* absolute build directory */
    char bin[PATH_MAX + 16];   /* absolute path of daffid */
    char dir[128];             /* the temp configuration dir */
    char sock_path[160];       /* the Unix listener's path, in dir */
    char log_path[160];        /* daffid's stdout+stderr */
    int port;                  /* the TCP listener's port */
    char tcp[64];              /* "tcp://127.0.0.1:PORT" */
    char unix_addr[176];       /* "unix://" + sock_path */
    pid_t pid;                 /* the running child, 0 when none */
    int status;                /* waitpid() status once the child exited */
} tdaemon;

/* Prepares d: temp dir, free port, 00-server.ini. Returns 0, or -1 (reason printed)
 * after which tdaemon_cleanup() is still safe. */
int tdaemon_init(tdaemon *d);

/* Writes DIR/name with the printf-formatted text (replacing it). Returns 0 or -1. */
int tdaemon_write_file(tdaemon *d, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Declares plugin NAME ($BUILD/plugins/NAME.so) in DIR/10-NAME.ini; extra (may be NULL)
 * is appended verbatim: more [plugin] keys ("concurrency = 1\n") or a [config]
 * section. Returns 0 or -1. */
int tdaemon_add_plugin(tdaemon *d, const char *name, const char *extra);

/* Declares the example plugins calc, echo and fib with default settings. */
int tdaemon_add_example_plugins(tdaemon *d);

/* Starts daffid on d's dir with the NULL-terminated "section.key=value" overrides
 * (may be NULL), without waiting. Returns 0 or -1. */
int tdaemon_spawn(tdaemon *d, const char *const *overrides);

/* Waits until address accepts a connection, at most timeout_ms, giving up early when
 * the child exits. Returns 0 or -1 (reason and the daemon's log printed). */
int tdaemon_wait_ready(tdaemon *d, const char *address, int timeout_ms);

/* tdaemon_spawn() then tdaemon_wait_ready() on both listeners. Returns 0 or -1. */
int tdaemon_start(tdaemon *d, const char *const *overrides);

/* Sends sig to the running child. Returns 0 or -1. */
int tdaemon_signal(tdaemon *d, int sig);

/* Waits at most timeout_ms for the child to exit. Returns 1 when it exited (d->status
 * holds the wait status, d->pid is 0), 0 when it still runs, -1 on error. */
int tdaemon_wait_exit(tdaemon *d, int timeout_ms);

/* Returns 1 while the child runs, 0 once it exited (reaping it). */
int tdaemon_alive(tdaemon *d);

/* SIGTERM and wait at most timeout_ms; past it SIGKILL. Returns the exit code when the
 * daemon exited by itself (0 for a clean stop), or -1 when it died from a signal or
 * had to be killed (the log is printed then). */
int tdaemon_stop(tdaemon *d, int timeout_ms);

/* Runs `daffid -t -c DIR [-o ...]` to completion (bounded), capturing its stdout and
 * stderr into out (NUL-terminated, truncated to outsz). Returns its exit code, or -1
 * when it did not exit normally. */
int tdaemon_check(tdaemon *d, const char *const *overrides, char *out, size_t outsz);

/* Prints the daemon's log on stderr, framed, for a failing test. */
void tdaemon_dump_log(const tdaemon *d);

/* Reads the daemon's log into out (NUL-terminated). Returns its length or -1. */
long tdaemon_read_log(const tdaemon *d, char *out, size_t outsz);

/* Kills a child still running (SIGKILL), removes the dir and everything in it. */
void tdaemon_cleanup(tdaemon *d);

/* Returns a free 127.0.0.1 TCP port (bound with port 0, then released), or -1. */
int tdaemon_free_port(void);

/* Convenience for test fixtures: allocates, inits, adds the example plugins, starts
 * with the overrides. Returns the running daemon, or NULL (everything released and
 * the reason printed). */
tdaemon *tdaemon_new_started(const char *const *overrides);

/* Stops (tdaemon_stop) and cleans up d, then frees it. Returns what tdaemon_stop()
 * returned (0 for a clean exit); NULL d returns 0. */
int tdaemon_free(tdaemon *d);

/* cmocka group fixtures: tdaemon_group_setup() starts a daemon with the example
 * plugins and default settings into *state (returns 0, or -1 with the reason
 * printed); tdaemon_group_setup_with() the same with the NULL-terminated overrides;
 * tdaemon_group_teardown() stops it and requires a clean exit 0 on SIGTERM (returns
 * 0, or -1 with the log printed). */
int tdaemon_group_setup(void **state);
int tdaemon_group_setup_with(void **state, const char *const *overrides);
int tdaemon_group_teardown(void **state);

#endif /* DAFFI_TEST_DAEMON_H */
