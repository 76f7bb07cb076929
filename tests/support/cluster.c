/*
 * cluster.c - a router and its workers as real daffid processes (see cluster.h).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "cluster.h"
#include "rawconn.h"

#define CLUSTER_CONNECT_MS 2000

/* Returns CLOCK_MONOTONIC in milliseconds. */
static long long cluster_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* See cluster.h. Overwrites the 00-server.ini tdaemon_init() wrote. */
int tcluster_router_init(tdaemon *d, const char *name, const char *extra)
{
    if (tdaemon_init(d) == -1)
        return -1;
    return tdaemon_write_file(d, "00-server.ini",
                              "[server]\n"
                              "role = router\n"
                              "name = %s\n"
                              "listen = %s, %s\n"
                              "workers = 2\n"
                              "blocking_threads = 1\n"
                              "shutdown_timeout = 5s\n"
                              "state_file = %s/router.members\n"
                              "%s\n"
                              "[log]\n"
                              "level = info\n",
                              name, d->tcp, d->unix_addr, d->dir, extra ? extra : "");
}

/* See cluster.h. The worker listens nowhere: it only connects to its router. */
int tcluster_worker_init(tdaemon *d, const char *router_addr, const char *name,
                         const char *extra)
{
    if (tdaemon_init(d) == -1)
        return -1;
    return tdaemon_write_file(d, "00-server.ini",
                              "[server]\n"
                              "role = worker\n"
                              "name = %s\n"
                              "router = %s\n"
                              "workers = 2\n"
                              "blocking_threads = 2\n"
                              "shutdown_timeout = 5s\n"
                              "%s\n"
                              "[log]\n"
                              "level = info\n",
                              name, router_addr, extra ? extra : "");
}

/* See cluster.h. */
int tcluster_router_start(tdaemon *d, const char *name, const char *extra, char *admin,
                          size_t adminsz)
{
    if (tcluster_router_init(d, name, extra) == -1)
        return -1;
    if (admin != NULL) {
        snprintf(admin, adminsz, "%s/admin.sock", d->dir);
        if (tdaemon_write_file(d, "05-admin.ini", "[admin]\nsocket = %s\n", admin) == -1)
            return -1;
    }
    return tdaemon_start(d, NULL);
}

/* See cluster.h. */
int tcluster_worker_up(tdaemon *d, const char *router_addr, const char *name,
                       const char *extra, const char *const *plugins, int timeout_ms)
{
    if (tcluster_worker_init(d, router_addr, name, extra) == -1)
        return -1;
    for (size_t i = 0; plugins != NULL && plugins[i] != NULL; i++)
        if (tdaemon_add_plugin(d, plugins[i], NULL) == -1)
            return -1;
    return tcluster_worker_start(d, router_addr, name, timeout_ms);
}

/* See cluster.h. */
void *tcluster_fixture_new(void **state, size_t size)
{
    void *f = calloc(1, size);

    *state = f;
    return f;
}

/* See cluster.h. */
int tcluster_set_setup(void **state)
{
    return tcluster_fixture_new(state, sizeof(tcluster_set)) == NULL ? -1 : 0;
}

/* See cluster.h. */
int tcluster_set_teardown(void **state)
{
    tcluster_set *s = *state;
    int rc = 0;

    for (int i = 0; i < TCLUSTER_WORKERS; i++) {
        if (s->workers[i].dir[0] != '\0')
            tdaemon_signal(&s->workers[i], SIGCONT);
        if (tcluster_discard(&s->workers[i]) == -1)
            rc = -1;
    }
    if (s->router.dir[0] != '\0')
        tdaemon_signal(&s->router, SIGCONT);
    if (tcluster_discard(&s->router) == -1)
        rc = -1;
    memset(s, 0, sizeof(*s));
    return rc;
}

/* See cluster.h. */
int tcluster_group_free(void **state)
{
    free(*state);
    *state = NULL;
    return 0;
}

/* See cluster.h. */
int tcluster_fixture_free(void *f, tdaemon *worker, tdaemon *router)
{
    int rc = 0;

    if (worker != NULL && tcluster_stop(worker) == -1)
        rc = -1;
    if (tcluster_stop(router) == -1)
        rc = -1;
    free(f);
    return rc;
}

/* Sends one request (params packed by the caller into m after the header) on a fresh
 * connection to addr and reads its response into c, which the caller closes. Returns
 * 0 with c->msg holding the response, or -1 (printed). */
static int cluster_ask(rawconn *c, const char *addr, rawmsg *m, int timeout_ms)
{
    if (rawconn_open(c, addr, CLUSTER_CONNECT_MS) == -1) {
        fprintf(stderr, "cluster: connect %s: %s\n", addr, strerror(errno));
        return -1;
    }
    if (rawconn_send_msg(c, m) == -1) {
        fprintf(stderr, "cluster: send to %s: %s\n", addr, strerror(errno));
        return -1;
    }
    rawconn_status st = rawconn_read(c, timeout_ms);
    if (st != RAWCONN_OK || c->msg.kind != DAFFI_MSG_RESPONSE) {
        fprintf(stderr, "cluster: %s: no response (%s)\n", addr, rawconn_status_name(st));
        return -1;
    }
    return 0;
}

/* See cluster.h. */
int tcluster_wait_members(const char *router_addr, const char *const *names,
                          int timeout_ms)
{
    rawconn c;
    rawmsg m;
    uint32_t n = 0;
    int rc = -1;

    while (names[n] != NULL)
        n++;
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, 1, "daffi.wait", 2);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        daffi_pack_cstr(pk, names[i]);
    msgpack_pack_uint32(pk, (uint32_t)timeout_ms);
    if (cluster_ask(&c, router_addr, &m, timeout_ms + 2000) == 0) {
        if (c.msg.error->type == MSGPACK_OBJECT_NIL &&
            c.msg.result->type == MSGPACK_OBJECT_BOOLEAN && c.msg.result->via.boolean) {
            rc = 0;
        } else {
            char buf[512];
            msgpack_object_print_buffer(buf, sizeof(buf), *c.msg.error);
            fprintf(stderr, "cluster: %s: daffi.wait for %u member(s) within %d ms: %s\n",
                    router_addr, n, timeout_ms, buf);
        }
    }
    rawconn_close(&c);
    rawmsg_destroy(&m);
    return rc;
}

/* See cluster.h. */
int tcluster_has_member(const char *router_addr, const char *name)
{
    rawconn c;
    rawmsg m;
    int rc = -1;

    rawmsg_init(&m);
    rawmsg_request(&m, 1, "daffi.members", 0);
    if (cluster_ask(&c, router_addr, &m, CLUSTER_CONNECT_MS) == 0 &&
        c.msg.result->type == MSGPACK_OBJECT_ARRAY) {
        rc = 0;
        const msgpack_object_array *a = &c.msg.result->via.array;
        for (uint32_t i = 0; i < a->size && rc == 0; i++) {
            if (a->ptr[i].type != MSGPACK_OBJECT_MAP)
                continue;
            const msgpack_object_map *mp = &a->ptr[i].via.map;
            for (uint32_t k = 0; k < mp->size; k++) {
                const msgpack_object *key = &mp->ptr[k].key, *val = &mp->ptr[k].val;
                if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == 4 &&
                    memcmp(key->via.str.ptr, "name", 4) == 0 &&
                    val->type == MSGPACK_OBJECT_STR && val->via.str.size == strlen(name) &&
                    memcmp(val->via.str.ptr, name, val->via.str.size) == 0)
                    rc = 1;
            }
        }
    }
    rawconn_close(&c);
    rawmsg_destroy(&m);
    return rc;
}

/* See cluster.h. */
int tcluster_wait_gone(const char *router_addr, const char *name, int timeout_ms)
{
    long long deadline = cluster_now_ms() + timeout_ms;
    struct timespec pause = { 0, 10 * 1000000L };

    for (;;) {
        int r = tcluster_has_member(router_addr, name);
        if (r == 0)
            return 0;
        if (cluster_now_ms() >= deadline) {
            fprintf(stderr, "cluster: %s still lists member %s after %d ms\n", router_addr,
                    name, timeout_ms);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
}

/* See cluster.h. */
int tcluster_worker_start(tdaemon *d, const char *router_addr, const char *name,
                          int timeout_ms)
{
    const char *names[] = { name, NULL };

    if (tdaemon_spawn(d, NULL) == -1)
        return -1;
    if (tcluster_wait_members(router_addr, names, timeout_ms) == -1) {
        fprintf(stderr, "cluster: worker %s did not register with %s within %d ms%s\n", name,
                router_addr, timeout_ms, tdaemon_alive(d) ? "" : " (it exited)");
        tdaemon_dump_log(d);
        return -1;
    }
    return 0;
}

/* See cluster.h. One connection per command: send the line, read one line of JSON. */
json_t *tcluster_admin(const char *admin_path, const char *command)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    static char buf[1 << 20]; /* a test thread's, one command at a time */
    size_t len = 0, n = strlen(command);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return NULL;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", admin_path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 || n + 1 > sizeof(buf)) {
        fprintf(stderr, "cluster: admin socket %s: %s\n", admin_path, strerror(errno));
        close(fd);
        return NULL;
    }
    /* one send, without SIGPIPE: a daemon that refuses the peer (allow_uids) writes its
     * answer and closes at once, maybe before the command is sent; the answer is still
     * there to read */
    memcpy(buf, command, n);
    buf[n] = '\n';
    if (send(fd, buf, n + 1, MSG_NOSIGNAL) != (ssize_t)(n + 1) && errno != EPIPE &&
        errno != ECONNRESET) {
        fprintf(stderr, "cluster: admin socket %s: %s\n", admin_path, strerror(errno));
        close(fd);
        return NULL;
    }
    while (len + 1 < sizeof(buf) && memchr(buf, '\n', len) == NULL) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, CLUSTER_CONNECT_MS) != 1)
            break;
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    json_error_t jerr;
    json_t *root = json_loads(buf, JSON_DISABLE_EOF_CHECK, &jerr);
    if (root == NULL)
        fprintf(stderr, "cluster: admin %s on %s: no JSON reply (%s): %.200s\n", command,
                admin_path, jerr.text, buf);
    return root;
}

/* See cluster.h. */
long long tcluster_admin_counter(const char *admin_path, const char *name)
{
    long long v = -1;
    json_t *root = tcluster_admin(admin_path, "stats");
    json_t *val = json_object_get(json_object_get(root, "counters"), name);

    if (json_is_integer(val))
        v = (long long)json_integer_value(val);
    else if (root != NULL)
        fprintf(stderr, "cluster: admin stats on %s: no counter %s\n", admin_path, name);
    json_decref(root);
    return v;
}

/* See cluster.h. */
int tcluster_pool_stop(rmpool *p, const char *router_addr, int timeout_ms)
{
    char (*names)[64];
    unsigned n;
    int rc = 0;

    if (p == NULL)
        return 0;
    n = rmpool_size(p);
    names = calloc(n ? n : 1, sizeof(*names));
    if (names == NULL)
        return -1;
    for (unsigned i = 0; i < n; i++)
        snprintf(names[i], sizeof(names[i]), "%s", rmpool_name(p, i));
    rmpool_stop(p);
    for (unsigned i = 0; i < n; i++)
        if (tcluster_wait_gone(router_addr, names[i], timeout_ms) == -1)
            rc = -1;
    free(names);
    return rc;
}

/* See cluster.h. */
int tcluster_pool_discard(rmpool **p, const char *router_addr, int timeout_ms)
{
    int rc = tcluster_pool_stop(*p, router_addr, timeout_ms);

    *p = NULL;
    return rc;
}

/* Returns 1 when every thread of pid is stopped (state T or t), 0 when one is not, -1
 * when /proc cannot tell. */
static int all_threads_stopped(pid_t pid)
{
    char path[64];
    DIR *dir;
    struct dirent *e;
    int stopped = 1, seen = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    dir = opendir(path);
    if (dir == NULL)
        return -1;
    while (stopped && (e = readdir(dir)) != NULL) {
        char stat[300], buf[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(stat, sizeof(stat), "/proc/%d/task/%s/stat", (int)pid, e->d_name);
        FILE *fp = fopen(stat, "r");
        if (fp == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        /* "pid (comm) S ...": the state follows the last ')' */
        char *rp = strrchr(buf, ')');
        if (rp == NULL || rp[1] == '\0' || (rp[2] != 'T' && rp[2] != 't'))
            stopped = 0;
        seen++;
    }
    closedir(dir);
    return seen ? stopped : -1;
}

/* See cluster.h. */
int tcluster_freeze(tdaemon *d, int timeout_ms)
{
    long long deadline = cluster_now_ms() + timeout_ms;
    struct timespec pause = { 0, 1000000L };

    if (tdaemon_signal(d, SIGSTOP) == -1) {
        fprintf(stderr, "cluster: SIGSTOP: %s\n", strerror(errno));
        return -1;
    }
    for (;;) {
        int r = all_threads_stopped(d->pid);
        if (r == 1)
            return 0;
        if (r == -1 || cluster_now_ms() >= deadline) {
            fprintf(stderr, "cluster: daffid %d did not stop within %d ms\n", (int)d->pid,
                    timeout_ms);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
}

/* See cluster.h. The log is read whole each time into a buffer of this call's own
 * (256 KiB: what the router tests' daemons log fits), freed before returning. */
int tcluster_log_contains(const tdaemon *d, const char *needle, int timeout_ms)
{
    const size_t cap = 256 * 1024;
    char *buf = malloc(cap);
    long long deadline = cluster_now_ms() + timeout_ms;
    int found = 0;

    if (buf == NULL)
        return 0;
    for (;;) {
        if (tdaemon_read_log(d, buf, cap) > 0 && strstr(buf, needle) != NULL) {
            found = 1;
            break;
        }
        if (cluster_now_ms() >= deadline)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(buf);
    return found;
}

/* See cluster.h. */
int tcluster_log_count(const tdaemon *d, const char *needle)
{
    const size_t cap = 4 * 1024 * 1024;
    char *buf = malloc(cap);
    int n = 0;

    if (buf == NULL)
        return -1;
    if (tdaemon_read_log(d, buf, cap) > 0)
        for (const char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
            n++;
    free(buf);
    return n;
}

/* Ends the prepared daemon d: stops it (only when it still runs, with running_only),
 * requiring a clean stop, and removes its dir. Returns 0 or -1. */
static int cluster_end(tdaemon *d, int running_only)
{
    int rc = 0;

    if ((!running_only || d->pid != 0) && tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS) != 0)
        rc = -1;
    tdaemon_cleanup(d);
    return rc;
}

/* See cluster.h. */
int tcluster_stop(tdaemon *d)
{
    if (d->dir[0] == '\0')
        return 0;
    return cluster_end(d, 0);
}

/* See cluster.h. A test may have ended d itself (killed or stopped it on purpose): only
 * one still running is asked to stop. */
int tcluster_discard(tdaemon *d)
{
    int rc;

    if (d->dir[0] == '\0')
        return 0;
    rc = cluster_end(d, 1);
    memset(d, 0, sizeof(*d));
    return rc;
}
