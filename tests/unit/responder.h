/*
 * responder.h - what the client unit tests (test_client_sync.c, test_client_async.c)
 * share to fork a small MessagePack-RPC responder on a Unix socket and to build the
 * params they send it. Header-only: unit tests do not link tests/support, so every
 * function here is static inline (an unused one costs nothing and warns of nothing).
 *
 * Each test file keeps its own peer state and serve() function, which is where the
 * two responders really differ; this file holds the plumbing around them.
 *
 * Needs, before it: <errno.h>, <signal.h>, <stdint.h>, <stdio.h>, <stdlib.h>,
 * <string.h>, <sys/socket.h>, <sys/un.h>, <time.h>, <unistd.h>, <msgpack.h> and
 * <daffi/rpc.h>.
 */
#ifndef TESTS_UNIT_RESPONDER_H
#define TESTS_UNIT_RESPONDER_H

/* ==== in the responder (forked children; no cmocka in here) ======================= */

/* Ends the responder child after printing what failed (what, with errno's text). */
static inline void die(const char *what)
{
    fprintf(stderr, "responder: %s: %s\n", what, strerror(errno));
    _exit(1);
}

/* Writes all n bytes of p to fd (blocking). Returns 0, or -1 when the client went
 * away. */
static inline int write_all(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sleeps ms milliseconds, resuming after signals. */
static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Returns integer parameter i of request m (whose params is an array), 0 when
 * absent. */
static inline int64_t arg_int(const daffi_msg *m, uint32_t i)
{
    const msgpack_object *a = m->params;

    if (i >= a->via.array.size)
        return 0;
    return a->via.array.ptr[i].type == MSGPACK_OBJECT_NEGATIVE_INTEGER
               ? a->via.array.ptr[i].via.i64
               : (int64_t)a->via.array.ptr[i].via.u64;
}

/* A call with a timeout (or to a named member) arrives as daffid would get it:
 * daffi.call [callback, params, {"timeout_ms": T, "to": name}]. Rewrites the decoded
 * request or notification m into the call of callback (m->params_raw is then unset)
 * and returns 1 with *timeout_ms = T (0 when absent); returns 0, m untouched, when m
 * is no such daffi.call. */
static inline int unwrap_daffi_call(daffi_msg *m, uint64_t *timeout_ms)
{
    const msgpack_object *a = m->params, *t;

    *timeout_ms = 0;
    if (m->method_len != 10 || memcmp(m->method, "daffi.call", 10) != 0 ||
        a->via.array.size < 2 || a->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
        a->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY)
        return 0;
    if (a->via.array.size > 2 && (t = daffi_obj_get(&a->via.array.ptr[2], "timeout_ms")) != NULL &&
        t->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *timeout_ms = t->via.u64;
    m->method = a->via.array.ptr[0].via.str.ptr;
    m->method_len = a->via.array.ptr[0].via.str.size;
    m->params = &a->via.array.ptr[1];
    m->params_raw = NULL;
    m->params_raw_len = 0;
    return 1;
}

/* The responder process: accepts on lfd forever and serves each connection in a
 * child of its own (so a slow or abandoned one never delays the next test); serve
 * owns and closes the fd it is given. Never returns. */
static inline void responder_main(int lfd, void (*serve)(int fd))
{
    pid_t pid;
    int fd;

    signal(SIGCHLD, SIG_IGN); /* children reap themselves */
    for (;;) {
        fd = accept(lfd, NULL, NULL);
        if (fd == -1) {
            if (errno == EINTR)
                continue;
            die("accept");
        }
        pid = fork();
        if (pid == -1)
            die("fork");
        if (pid == 0) {
            close(lfd);
            serve(fd);
            _exit(0);
        }
        close(fd);
    }
}

/* ==== in the test process ========================================================== */

/* Forks a responder listening on the Unix socket path (replacing any file there) with
 * the given backlog, serving each connection with serve. The responder and its
 * connection children form one process group whose id is the returned pid, so
 * kill(-pid, ...) stops them all; the caller waits for it and unlinks path. Returns
 * the pid, or -1 after printing why. */
static inline pid_t responder_spawn(const char *path, int backlog, void (*serve)(int fd))
{
    struct sockaddr_un sun;
    pid_t pid;
    int lfd;

    unlink(path);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    /* listen before forking: the first connect cannot race the child */
    if (lfd == -1 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
        listen(lfd, backlog) == -1) {
        perror("responder socket");
        if (lfd != -1)
            close(lfd);
        return -1;
    }
    pid = fork();
    if (pid == -1) {
        perror("fork");
        close(lfd);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        responder_main(lfd, serve); /* never returns */
    }
    setpgid(pid, pid); /* also here: a kill must not race the child's own call */
    close(lfd);
    return pid;
}

/* Returns CLOCK_MONOTONIC in milliseconds. */
static inline int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Returns a params array of the n objects at objs (referenced, not copied). */
static inline msgpack_object array_params(msgpack_object *objs, size_t n)
{
    msgpack_object arr;

    arr.type = MSGPACK_OBJECT_ARRAY;
    arr.via.array.size = (uint32_t)n;
    arr.via.array.ptr = objs;
    return arr;
}

/* Makes *o the str of len bytes at p (referenced, not copied). */
static inline void set_str(msgpack_object *o, const char *p, size_t len)
{
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = p;
    o->via.str.size = (uint32_t)len;
}

/* Builds a params array of the n ints v in objs (caller's storage, n long) and
 * returns it; nothing is allocated. */
static inline msgpack_object int_params(msgpack_object *objs, size_t n, const int64_t *v)
{
    size_t i;

    for (i = 0; i < n; i++) {
        objs[i].type = v[i] < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER
                                : MSGPACK_OBJECT_POSITIVE_INTEGER;
        if (v[i] < 0)
            objs[i].via.i64 = v[i];
        else
            objs[i].via.u64 = (uint64_t)v[i];
    }
    return array_params(objs, n);
}

/* A params array [ms, "str"] in two (caller's storage) for the responders' "slow",
 * which answers str after sleeping ms milliseconds. */
static inline msgpack_object slow_params(msgpack_object *two, int ms, const char *str)
{
    two[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    two[0].via.u64 = (uint64_t)ms;
    set_str(&two[1], str, strlen(str));
    return array_params(two, 2);
}

#endif
