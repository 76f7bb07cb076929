/*
 * child.c - daffid --child (see child.h and docs/ISOLATION.md): the setup from the
 * board, the user, the parent-death signal, the plugin from fd 5, one loop serving
 * the link on fd 3 with a blocking pool of its own, the resource limits, the hello,
 * and the drain at the end (SIGTERM, or the link closing).
 *
 * The child is a small dfd_server: the same loop, dispatch, control methods and
 * blocking pool as any daffid, without listeners, admin socket, reload or watcher.
 * Its route is child-watch.c's, which tells the parent on the board what it runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blocking.h"
#include "board.h"
#include "budget.h"
#include "child.h"
#include "conn.h"
#include "dispatch.h"
#include "log.h"
#include "plugin.h"
#include "server.h"
#include "table.h"

/* ASan and TSan reserve terabytes of shadow memory at start: a plain RLIMIT_AS would
 * forbid every mapping after it. A sanitizer build adds what it holds already. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHILD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHILD_SANITIZED 1
#endif
#endif
#ifndef CHILD_SANITIZED
#define CHILD_SANITIZED 0
#endif

/* What the parent sets up for this child (the board's setup message). */
typedef struct child_setup {
    dfd_config *cfg;              /* owned until it becomes the server's */
    unsigned slot;
    unsigned generation;
    long uid, gid;                /* -1: keep */
    long ppid;
    uint64_t rlimit_as;           /* bytes; 0 = none */
    uint64_t rlimit_cpu_s;        /* seconds; 0 = none */
    char member[160];             /* PLUGIN#SLOT */
} child_setup;

/* One child process: its board, and whether it is on its way out (the link's closed
 * handler must not signal a process that tears itself down). */
static struct {
    dfd_board *board;
    size_t board_size;
    atomic_int exiting;
} child;

/* Writes why the child cannot start on the board (the parent reports it), and
 * returns 1, the exit code. */
static int child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int child_fail(const char *fmt, ...)
{
    char msg[DFD_BOARD_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = (int)sizeof(msg) - 1;
    if (child.board != NULL) {
        memcpy(child.board->error, msg, (size_t)n + 1);
        atomic_store_explicit(&child.board->error_len, (uint32_t)n, memory_order_release);
    } else {
        fprintf(stderr, "daffid --child: %s\n", msg);
    }
    return 1;
}

/* ---- the setup -------------------------------------------------------------------------- */

static int setup_uint(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *o = daffi_obj_get(map, key);
    return o != NULL && daffi_obj_uint(o, out) == 0 ? 0 : -1;
}

static int setup_int(const msgpack_object *map, const char *key, int64_t *out)
{
    const msgpack_object *o = daffi_obj_get(map, key);
    return o != NULL && daffi_obj_int(o, out) == 0 ? 0 : -1;
}

/* A copy of the string at key (NULL when absent or out of memory). */
static char *setup_str(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = daffi_obj_get(map, key);
    const char *p;
    size_t len;
    return o != NULL && daffi_obj_text(o, &p, &len) == 0 ? strndup(p, len) : NULL;
}

/* Reads the [config] pairs into pc. Returns 0 or -1. */
static int setup_config(const msgpack_object *map, dfd_plugin_conf *pc)
{
    const msgpack_object *a = daffi_obj_get(map, "config");
    if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
        return -1;
    pc->config = calloc(a->via.array.size ? a->via.array.size : 1, sizeof(*pc->config));
    if (pc->config == NULL)
        return -1;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *kv = &a->via.array.ptr[i];
        const char *k, *v;
        size_t kl, vl;
        if (kv->type != MSGPACK_OBJECT_ARRAY || kv->via.array.size != 2 ||
            daffi_obj_text(&kv->via.array.ptr[0], &k, &kl) == -1 ||
            daffi_obj_text(&kv->via.array.ptr[1], &v, &vl) == -1)
            return -1;
        pc->config[i].key = strndup(k, kl);
        pc->config[i].value = strndup(v, vl);
        pc->nconfig = i + 1;
        if (pc->config[i].key == NULL || pc->config[i].value == NULL)
            return -1;
    }
    return 0;
}

/* Fills s from the map m. Returns 0, or -1 when a key is missing or bad. */
static int setup_fill(const msgpack_object *m, child_setup *s)
{
    uint64_t u[15];
    int64_t uid, gid, ppid;
    static const char *const ukeys[15] = {
        "slot", "generation", "concurrency", "queue", "timeout_ms", "max_message",
        "max_depth", "max_pending", "max_output", "default_timeout_ms",
        "shutdown_timeout_ms", "blocking_threads", "log_level", "log_target", "log_format",
    };
    for (int i = 0; i < 15; i++)
        if (setup_uint(m, ukeys[i], &u[i]) == -1)
            return -1;
    if (setup_int(m, "uid", &uid) == -1 || setup_int(m, "gid", &gid) == -1 ||
        setup_int(m, "ppid", &ppid) == -1 || setup_uint(m, "rlimit_as", &s->rlimit_as) == -1 ||
        setup_uint(m, "rlimit_cpu", &s->rlimit_cpu_s) == -1)
        return -1;
    dfd_config *cfg = s->cfg;
    dfd_plugin_conf *pc = &cfg->plugins[0];
    s->slot = (unsigned)u[0];
    s->generation = (unsigned)u[1];
    pc->concurrency = (unsigned)u[2];
    pc->queue = (unsigned)u[3];
    pc->timeout_ms = u[4];
    pc->enabled = 1;
    pc->processes = 1;
    cfg->max_message = (size_t)u[5];
    cfg->max_depth = (unsigned)u[6];
    cfg->max_pending = (unsigned)u[7];
    cfg->max_output = (size_t)u[8];
    cfg->default_timeout_ms = u[9];
    cfg->shutdown_timeout_ms = u[10];
    cfg->blocking_threads = u[11] ? (unsigned)u[11] : 1;
    cfg->log_level = (int)u[12];
    cfg->log_target = u[13] == DFD_LOG_SYSLOG ? DFD_LOG_SYSLOG : DFD_LOG_STDERR;
    cfg->log_format = u[14] == DFD_LOG_JSON ? DFD_LOG_JSON : DFD_LOG_TEXT;
    s->uid = (long)uid;
    s->gid = (long)gid;
    s->ppid = (long)ppid;
    pc->name = setup_str(m, "plugin");
    pc->path = setup_str(m, "file");
    pc->origin.file = setup_str(m, "ini");
    if (pc->name == NULL || pc->path == NULL || pc->origin.file == NULL ||
        setup_config(m, pc) == -1)
        return -1;
    snprintf(s->member, sizeof(s->member), "%s#%u", pc->name, s->slot);
    cfg->name = strdup(s->member);
    cfg->dir = strdup(pc->origin.file);
    return cfg->name != NULL && cfg->dir != NULL ? 0 : -1;
}

/* Maps the board (fd 4) and reads the setup into s. Returns 0, or 1 (reported). */
static int child_setup_read(child_setup *s)
{
    struct stat st;
    if (fstat(DFD_CHILD_FD_BOARD, &st) == -1 || (size_t)st.st_size < DFD_BOARD_SETUP_OFF)
        return child_fail("no board on fd %d (daffid --child is started by daffid only)",
                          DFD_CHILD_FD_BOARD);
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                     DFD_CHILD_FD_BOARD, 0);
    close(DFD_CHILD_FD_BOARD);
    if (map == MAP_FAILED)
        return child_fail("cannot map the board: %s", strerror(errno));
    child.board = map;
    child.board_size = (size_t)st.st_size;
    if (child.board->magic != DFD_BOARD_MAGIC ||
        child.board->setup_len > child.board_size - DFD_BOARD_SETUP_OFF)
        return child_fail("the board is not one daffid made");
    s->cfg = calloc(1, sizeof(*s->cfg));
    if (s->cfg == NULL || (s->cfg->plugins = calloc(1, sizeof(dfd_plugin_conf))) == NULL)
        return child_fail("out of memory");
    s->cfg->nplugins = 1;
    msgpack_zone zone;
    msgpack_object m;
    size_t off = 0;
    msgpack_zone_init(&zone, 4096);
    int ok = msgpack_unpack((const char *)map + DFD_BOARD_SETUP_OFF, child.board->setup_len,
                            &off, &zone, &m) == MSGPACK_UNPACK_SUCCESS &&
             m.type == MSGPACK_OBJECT_MAP && setup_fill(&m, s) == 0;
    msgpack_zone_destroy(&zone);
    return ok ? 0 : child_fail("the setup on the board is incomplete");
}

/* ---- the process ---------------------------------------------------------------------- */

/* Started as root: becomes the user the parent named, before any plugin code runs
 * (dumpable again, so that it may open its own /proc/self/fd and dump core). Then
 * asks for SIGKILL when the parent dies (set after the switch, which clears it). */
static int child_credentials(const child_setup *s)
{
    if (s->uid >= 0 && geteuid() == 0) {
        gid_t g = (gid_t)s->gid;
        if (setgroups(1, &g) == -1 || setgid(g) == -1 || setuid((uid_t)s->uid) == -1)
            return child_fail("cannot switch to uid %ld gid %ld: %s", s->uid, s->gid,
                              strerror(errno));
        /* the switch made the process undumpable, which also closes /proc/self/fd to
         * it (the plugin is opened from there); it held nothing of root's */
        if (prctl(PR_SET_DUMPABLE, 1) == -1)
            return child_fail("cannot make the process dumpable again: %s", strerror(errno));
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
        return child_fail("cannot ask for the parent-death signal: %s", strerror(errno));
    if ((long)getppid() != s->ppid)
        return child_fail("the parent (pid %ld) is gone", s->ppid);
    return 0;
}

/* The address space the process holds, in bytes (/proc/self/statm, which stays
 * readable after the switch of user); 0 when it cannot be read. */
static uint64_t child_vsize(void)
{
    unsigned long long pages = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu", &pages) != 1)
        pages = 0;
    fclose(f);
    return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Sets rlimit_cpu and rlimit_as (see CHILD_SANITIZED); file names the plugin in
 * messages. Returns 0, or 1 (reported). */
static int child_limits(const child_setup *s, const char *file)
{
    if (s->rlimit_cpu_s != 0) {
        /* SIGXCPU at the soft limit, SIGKILL a second later */
        struct rlimit r = {(rlim_t)s->rlimit_cpu_s, (rlim_t)s->rlimit_cpu_s + 1};
        if (setrlimit(RLIMIT_CPU, &r) == -1)
            return child_fail("%s: cannot set rlimit_cpu: %s", file, strerror(errno));
    }
    if (s->rlimit_as != 0) {
        uint64_t used = child_vsize();
        uint64_t limit = s->rlimit_as + (CHILD_SANITIZED ? used : 0);
        if (!CHILD_SANITIZED && used > s->rlimit_as)
            return child_fail("%s: rlimit_as %llu is below the %llu bytes of address space "
                              "the child already uses (daffid, its threads and the plugin's "
                              "init)", file, (unsigned long long)s->rlimit_as,
                              (unsigned long long)used);
        struct rlimit r = {(rlim_t)limit, (rlim_t)limit};
        if (setrlimit(RLIMIT_AS, &r) == -1)
            return child_fail("%s: cannot set rlimit_as: %s", file, strerror(errno));
    }
    return 0;
}

/* Copies the plugin (fd 5, the parent's private copy, opened for us) into a memfd of
 * our own and closes fd 5: dlopen takes a path, and reopening the parent's copy
 * through /proc/self/fd would check its permissions (0600, the parent's user) against
 * ours. Returns the memfd, or -1 (errno). */
static int child_plugin_copy(void)
{
    int m = memfd_create("daffid-plugin", MFD_CLOEXEC);
    char buf[65536];
    ssize_t n = 0;
    while (m != -1) {
        n = read(DFD_CHILD_FD_PLUGIN, buf, sizeof(buf));
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(m, buf + off, (size_t)(n - off));
            if (w == -1 && errno != EINTR) {
                n = -1;
                break;
            }
            off += w > 0 ? w : 0;
        }
        if (n == -1)
            break;
    }
    int saved = errno;
    close(DFD_CHILD_FD_PLUGIN);
    if (m != -1 && n == -1) {
        close(m);
        m = -1;
    }
    errno = saved;
    return m;
}

/* ---- the link ---------------------------------------------------------------------------- */

static void link_message(dfd_conn *c, const char *bytes, size_t size, int kind, uint32_t msgid)
{
    (void)msgid;
    if (kind == DAFFI_MSG_RESPONSE)
        return; /* the answer to our hello: nothing in it for us */
    dfd_dispatch_message(c, bytes, size, kind, msgid);
}

/* The parent closed the link (retired, shutting down) or went away: drain and exit. */
static void link_closed(dfd_conn *c)
{
    (void)c;
    if (!atomic_load(&child.exiting))
        kill(getpid(), SIGTERM);
}

static const char *link_describe(const dfd_conn *c)
{
    (void)c;
    return "parent";
}

static const dfd_conn_ops link_ops = {
    .message = link_message,
    .closed = link_closed,
    .describe = link_describe,
};

/* Mail: says daffi.hello on the link (from the loop, which owns it). */
static void child_hello(dfd_loop *loop, void *arg)
{
    dfd_conn *c = arg;
    const dfd_table *t = loop->table;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_request(&pk, 1, "daffi.hello", 11, 1);
    msgpack_pack_map(&pk, 6);
    daffi_pack_cstr(&pk, "name");
    daffi_pack_cstr(&pk, loop->srv->cfg->name);
    daffi_pack_cstr(&pk, "deadlines");
    msgpack_pack_true(&pk);
    daffi_pack_cstr(&pk, "callbacks");
    msgpack_pack_array(&pk, (uint32_t)t->ncallbacks);
    for (size_t k = 0; k < t->plugins[0]->ncallbacks; k++)
        daffi_pack_cstr(&pk, t->plugins[0]->callbacks[k].name);
    /* only a parent reads these two: what each callback is, and the plugin's version */
    daffi_pack_cstr(&pk, "flags");
    msgpack_pack_array(&pk, (uint32_t)t->ncallbacks);
    for (size_t k = 0; k < t->plugins[0]->ncallbacks; k++)
        msgpack_pack_unsigned_int(&pk, t->plugins[0]->callbacks[k].flags);
    daffi_pack_cstr(&pk, "version");
    daffi_pack_cstr(&pk, t->plugins[0]->desc->version);
    daffi_pack_cstr(&pk, "pid");
    msgpack_pack_int64(&pk, (int64_t)getpid());
    dfd_conn_send_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void child_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    dfd_server_shutdown(arg);
}

/* Builds the child's server around plugin p (taking it and s->cfg) and its link.
 * Returns 0, or 1 (reported). */
static int child_server(dfd_server *srv, child_setup *s, dfd_plugin *p)
{
    dfd_errors errs = {0};
    memset(srv, 0, sizeof(*srv));
    srv->cfg = s->cfg;
    s->cfg = NULL;
    srv->cfg->workers = 1;
    srv->limits.max_message = srv->cfg->max_message;
    srv->limits.max_depth = srv->cfg->max_depth;
    srv->started_ns = dfd_now_ns();
    srv->route = dfd_child_route;
    srv->private_dir_fd = -1;
    srv->plugins = calloc(1, sizeof(*srv->plugins));
    if (srv->plugins == NULL || dfd_callstat_names_init(&srv->callnames) == -1)
        return child_fail("out of memory");
    srv->plugins[0] = p;
    srv->nplugins = 1;
    srv->table = dfd_table_build(srv->plugins, 1, &errs);
    dfd_errors_free(&errs);
    srv->base = event_base_new();
    srv->blocking = dfd_blocking_start(srv->cfg->blocking_threads);
    srv->loops = calloc(1, sizeof(dfd_loop));
    if (srv->table == NULL || srv->base == NULL || srv->blocking == NULL ||
        srv->loops == NULL || dfd_loop_init(&srv->loops[0], srv, 0, srv->table) == -1)
        return child_fail("cannot set up the child's loop");
    srv->nloops = 1;
    dfd_budget_init(&srv->budget, srv->cfg); /* none: the parent's bounds the calls */
    srv->sig_events[0] = evsignal_new(srv->base, SIGTERM, child_on_signal, srv);
    if (srv->sig_events[0] == NULL || event_add(srv->sig_events[0], NULL) == -1)
        return child_fail("cannot handle SIGTERM");
    fcntl(DFD_CHILD_FD_LINK, F_SETFD, FD_CLOEXEC); /* never to what a plugin runs */
    fcntl(DFD_CHILD_FD_LINK, F_SETFL, O_NONBLOCK);
    atomic_fetch_add(&srv->conns, 1);
    dfd_conn *c = dfd_conn_adopt(&srv->loops[0], DFD_CHILD_FD_LINK, 1, &link_ops, NULL);
    if (c == NULL)
        return child_fail("out of memory");
    snprintf(c->peer, sizeof(c->peer), "parent");
    c->internal = 1;
    if (dfd_loop_start(&srv->loops[0]) == -1)
        return child_fail("cannot start the child's loop");
    if (child_limits(s, srv->cfg->plugins[0].path) != 0)
        return 1;
    if (dfd_loop_post(&srv->loops[0], child_hello, NULL, c) == -1)
        return child_fail("out of memory");
    return 0;
}

/* See child.h. */
int dfd_child_main(void)
{
    child_setup s;
    dfd_server srv;
    dfd_errors errs = {0};
    dfd_plugin *p = NULL;

    memset(&s, 0, sizeof(s));
    atomic_init(&child.exiting, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    unsetenv("NOTIFY_SOCKET");
    /* a child that cannot start said why on its board: it leaves at once (what it
     * allocated is the process's) */
    if (child_setup_read(&s) != 0)
        _exit(1);
    dfd_log_setup(s.cfg->log_level, s.cfg->log_target, s.cfg->log_format, "daffid");
    dfd_log_set_tag(s.member);
    if (child_credentials(&s) != 0)
        _exit(1);
    char path[64];
    int so = child_plugin_copy();
    if (so == -1)
        _exit(child_fail("%s: cannot copy the plugin into the child: %s",
                         s.cfg->plugins[0].path, strerror(errno)));
    snprintf(path, sizeof(path), "/proc/self/fd/%d", so);
    int rc = dfd_plugin_open(&s.cfg->plugins[0], path, s.generation, &p, &errs);
    close(so);
    if (rc == -1) {
        char msg[DFD_BOARD_ERROR_MAX] = "";
        size_t len = 0;
        for (size_t i = 0; i < errs.count && len + 3 < sizeof(msg); i++)
            len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%s", i ? "; " : "",
                                    errs.msgs[i]);
        dfd_errors_free(&errs);
        _exit(child_fail("%s", msg));
    }
    /* SIGTERM is the main thread's (evsignal): the threads started below inherit it
     * blocked */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    dfd_child_watch_init(child.board, p);
    rc = child_server(&srv, &s, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        /* threads may run: leave without tearing down under them */
        _exit(1);
    }
    dfd_info("child.ready", "plugin=%s generation=%u slot=%u pid=%ld callbacks=%zu",
             p->name, p->generation, s.slot, (long)getpid(), p->ncallbacks);
    event_base_dispatch(srv.base);
    atomic_store(&child.exiting, 1);
    if (srv.exit_code == -1)
        _exit(1); /* shutdown_timeout passed with handlers running: no fini under them */
    dfd_server_destroy(&srv);
    dfd_child_watch_free();
    munmap(child.board, child.board_size);
    return 0;
}
