/*
 * isolate-spawn.c - one child process of an isolated plugin: the setup it is given,
 * the board it shares (board.h), its spawn, the hello it answers with, and the words
 * its end is told in (see isolate-int.h).
 *
 * A child gets exactly three descriptors besides 0-2: 3 its end of the link (a
 * socketpair), 4 the memfd of its board and setup, 5 the generation's private copy.
 * posix_spawn closes every other one (closefrom), so nothing the parent holds (the
 * listeners, the admin socket, other plugins' copies, loops' eventfds) reaches it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "board.h"
#include "child.h"
#include "isolate-int.h"
#include "log.h"
#include "plugin-t.h"
#include "server.h"

#define HELLO_MAX_CALLBACKS 65536u
#define CHILD_FD_FIRST_FREE 6      /* descriptors above the three a child inherits */

/* ---- the setup ---------------------------------------------------------------------- */

static void pack_key(msgpack_packer *pk, const char *key, uint32_t *n)
{
    daffi_pack_cstr(pk, key);
    (*n)++;
}

static void pack_kv_str(msgpack_packer *pk, const char *key, const char *v, uint32_t *n)
{
    pack_key(pk, key, n);
    daffi_pack_cstr(pk, v != NULL ? v : "");
}

static void pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v, uint32_t *n)
{
    pack_key(pk, key, n);
    msgpack_pack_uint64(pk, v);
}

static void pack_kv_int(msgpack_packer *pk, const char *key, int64_t v, uint32_t *n)
{
    pack_key(pk, key, n);
    msgpack_pack_int64(pk, v);
}

/* See isolate-int.h. The keys are child.c's (child_setup_read). */
int dfd_isolate_setup(dfd_isolate *iso, const dfd_plugin_conf *pc)
{
    const dfd_supervisor *sup = iso->sup;
    const dfd_config *cfg = sup->srv->cfg;
    msgpack_packer pk;
    uint32_t n = 0;

    msgpack_sbuffer_init(&iso->setup);
    msgpack_packer_init(&pk, &iso->setup, msgpack_sbuffer_write);
    pack_kv_str(&pk, "plugin", pc->name, &n);
    pack_kv_str(&pk, "file", pc->path, &n);
    pack_kv_str(&pk, "ini", pc->origin.file, &n);
    pack_kv_uint(&pk, "generation", iso->generation, &n);
    pack_kv_uint(&pk, "concurrency", pc->concurrency, &n);
    pack_kv_uint(&pk, "queue", pc->queue, &n);
    pack_kv_uint(&pk, "timeout_ms", pc->timeout_ms, &n);
    pack_key(&pk, "config", &n);
    msgpack_pack_array(&pk, (uint32_t)pc->nconfig);
    for (size_t i = 0; i < pc->nconfig; i++) {
        msgpack_pack_array(&pk, 2);
        daffi_pack_cstr(&pk, pc->config[i].key ? pc->config[i].key : "");
        daffi_pack_cstr(&pk, pc->config[i].value ? pc->config[i].value : "");
    }
    pack_kv_uint(&pk, "max_message", cfg->max_message, &n);
    pack_kv_uint(&pk, "max_depth", cfg->max_depth, &n);
    pack_kv_uint(&pk, "max_pending", cfg->max_pending, &n);
    pack_kv_uint(&pk, "max_output", cfg->max_output, &n);
    pack_kv_uint(&pk, "default_timeout_ms", cfg->default_timeout_ms, &n);
    pack_kv_uint(&pk, "shutdown_timeout_ms", cfg->shutdown_timeout_ms, &n);
    pack_kv_uint(&pk, "blocking_threads", cfg->blocking_threads, &n);
    pack_kv_uint(&pk, "log_level", (uint64_t)dfd_log_level(), &n);
    pack_kv_uint(&pk, "log_target", (uint64_t)cfg->log_target, &n);
    pack_kv_uint(&pk, "log_format", (uint64_t)cfg->log_format, &n);
    pack_kv_int(&pk, "uid", sup->uid, &n);
    pack_kv_int(&pk, "gid", sup->gid, &n);
    pack_kv_int(&pk, "ppid", (int64_t)getpid(), &n);
    pack_kv_uint(&pk, "rlimit_as", pc->rlimit_as, &n);
    /* RLIMIT_CPU counts whole seconds: a part of one is one more */
    pack_kv_uint(&pk, "rlimit_cpu", (pc->rlimit_cpu_ms + 999) / 1000, &n);
    iso->setup_pairs = n;
    return iso->setup.data != NULL ? 0 : -1;
}

/* ---- the environment ---------------------------------------------------------------- */

extern char **environ;

/* Variables a child must not inherit: systemd speaks to daffid, not to its children. */
static const char *const env_dropped[] = {
    "NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "WATCHDOG_USEC=",
    "WATCHDOG_PID=", NULL,
};

/* See isolate-int.h. */
char **dfd_child_env(void)
{
    size_t n = 0, k = 0;
    while (environ[n] != NULL)
        n++;
    char **envp = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; envp != NULL && i < n; i++) {
        int drop = 0;
        for (size_t d = 0; env_dropped[d] != NULL && !drop; d++)
            drop = strncmp(environ[i], env_dropped[d], strlen(env_dropped[d])) == 0;
        if (!drop && (envp[k] = strdup(environ[i])) != NULL)
            k++;
    }
    return envp;
}

void dfd_child_env_free(char **envp)
{
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        free(envp[i]);
    free(envp);
}

/* ---- the spawn ------------------------------------------------------------------------- */

/* Makes ch's board: a memfd of the board's page and the setup for slot after it,
 * mapped into ch. Returns the memfd, or -1 with the reason in why. */
static int child_board(dfd_child *ch, char *why, size_t n)
{
    const dfd_isolate *iso = ch->iso;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    long page = sysconf(_SC_PAGESIZE);
    int fd;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, iso->setup_pairs + 1);
    daffi_pack_cstr(&pk, "slot");
    msgpack_pack_uint32(&pk, ch->slot);
    msgpack_sbuffer_write(&sb, iso->setup.data, iso->setup.size);
    size_t size = DFD_BOARD_SETUP_OFF + sb.size;
    size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
    fd = memfd_create("daffid-board", MFD_CLOEXEC);
    if (fd == -1 || ftruncate(fd, (off_t)size) == -1) {
        snprintf(why, n, "cannot make the child's board: %s", strerror(errno));
        goto fail;
    }
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        snprintf(why, n, "cannot map the child's board: %s", strerror(errno));
        goto fail;
    }
    ch->board = map;
    ch->board_size = size;
    ch->board->magic = DFD_BOARD_MAGIC;
    ch->board->setup_len = (uint32_t)sb.size;
    memcpy((char *)map + DFD_BOARD_SETUP_OFF, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return fd;
fail:
    if (fd != -1)
        close(fd);
    msgpack_sbuffer_destroy(&sb);
    return -1;
}

/* Moves fd above the descriptors a child inherits (CLOEXEC), closing the original, so
 * that the spawn's dup2 onto 3, 4 and 5 never overwrites one of its sources. Returns
 * the new fd or -1 (fd closed either way). */
static int child_fd_high(int fd)
{
    int high = fd == -1 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, CHILD_FD_FIRST_FREE);
    if (fd != -1)
        close(fd);
    return high;
}

/* posix_spawn of daffid --child with the three descriptors. Returns 0 or an errno. */
static int child_exec(dfd_child *ch, const int fds[3])
{
    const dfd_isolate *iso = ch->iso;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dflt;
    char *argv[] = {"daffid", "--child", iso->name, NULL};
    pid_t pid;
    int rc;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGHUP);
    sigaddset(&dflt, SIGTERM);
    /* stdin from /dev/null, stdout and stderr daffid's log; the three; nothing else.
     * Its own process group: a terminal's Ctrl-C is for daffid, which stops it. */
    if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, fds[0], DFD_CHILD_FD_LINK)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, fds[1], DFD_CHILD_FD_BOARD)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, fds[2], DFD_CHILD_FD_PLUGIN)) != 0 ||
        (rc = posix_spawn_file_actions_addclosefrom_np(&fa, CHILD_FD_FIRST_FREE)) != 0 ||
        (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&at, 0)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&at, &none)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&at, &dflt)) != 0)
        goto out;
    /* /proc/self/exe: the very binary of this daffid, even when a newer one was
     * installed over it since */
    rc = posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, iso->sup->envp);
    if (rc == 0)
        ch->pid = pid;
out:
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* See isolate-int.h. */
dfd_child *dfd_child_spawn(dfd_isolate *iso, unsigned slot, char *why, size_t n)
{
    dfd_child *ch = calloc(1, sizeof(*ch));
    int sv[2] = {-1, -1}, fds[3] = {-1, -1, -1};

    if (ch == NULL) {
        snprintf(why, n, "out of memory");
        return NULL;
    }
    ch->iso = iso;
    ch->slot = slot;
    ch->fd = -1;
    atomic_init(&ch->adopted, 0);
    atomic_init(&ch->link_closed, 0);
    atomic_init(&ch->mails, 0);
    daffi_scan_init(&ch->scan);
    int board_fd = child_board(ch, why, n);
    if (board_fd == -1)
        goto fail;
    int so = open(iso->gen->private_path, O_RDONLY | O_CLOEXEC);
    if (so == -1) {
        snprintf(why, n, "cannot open the private copy %s: %s", iso->gen->private_path,
                 strerror(errno));
        close(board_fd);
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
        fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1) {
        snprintf(why, n, "cannot make the child's link: %s", strerror(errno));
        close(board_fd);
        close(so);
        goto fail;
    }
    fds[0] = child_fd_high(sv[1]);
    fds[1] = child_fd_high(board_fd);
    fds[2] = child_fd_high(so);
    if (fds[0] == -1 || fds[1] == -1 || fds[2] == -1) {
        snprintf(why, n, "cannot pass descriptors to the child: %s", strerror(errno));
        goto fail;
    }
    int rc = child_exec(ch, fds);
    if (rc != 0) {
        snprintf(why, n, "cannot start daffid --child: %s", strerror(rc));
        goto fail;
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    ch->fd = sv[0];
    ch->state = DFD_CHILD_STARTING;
    ch->spawned_ns = dfd_now_ns();
    ch->next = iso->children;
    iso->children = ch;
    return ch;
fail:
    for (int i = 0; i < 3; i++)
        if (fds[i] != -1)
            close(fds[i]);
    if (sv[0] != -1)
        close(sv[0]);
    dfd_child_free(ch);
    return NULL;
}

void dfd_child_free(dfd_child *ch)
{
    if (ch->read_ev != NULL)
        event_free(ch->read_ev);
    if (ch->fd != -1)
        close(ch->fd);
    if (ch->board != NULL)
        munmap(ch->board, ch->board_size);
    free(ch->in);
    dfd_link_release(ch->l);
    dfd_member_release(ch->m);
    free(ch);
}

/* ---- the hello ------------------------------------------------------------------------- */

/* 1 when p (len bytes) can be a callback name a parent table takes: 1 to 255 bytes
 * of printable ASCII without spaces, outside daffi.* (the child's loader checked it;
 * the link is read as hostile all the same). */
static int hello_name_ok(const char *p, size_t len)
{
    if (len == 0 || len > 255 || (len >= 6 && memcmp(p, "daffi.", 6) == 0))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return 0;
    return 1;
}

/* Takes what the first child of a load announced as iso's callbacks. Returns 0 or -1. */
static int hello_adopt(dfd_isolate *iso, const msgpack_object *cbs, const msgpack_object *flags,
                       const char *version, size_t version_len)
{
    size_t n = cbs->via.array.size;
    iso->cb_names = calloc(n ? n : 1, sizeof(char *));
    iso->cb_flags = calloc(n ? n : 1, sizeof(unsigned));
    iso->version = strndup(version, version_len);
    if (iso->cb_names == NULL || iso->cb_flags == NULL || iso->version == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &cbs->via.array.ptr[i];
        if ((iso->cb_names[i] = strndup(o->via.str.ptr, o->via.str.size)) == NULL)
            return -1;
        iso->cb_flags[i] = (unsigned)flags->via.array.ptr[i].via.u64;
        iso->ncb = i + 1;
    }
    return 0;
}

/* Checks the hello of ch (one message of size bytes) and makes its member. Returns 0
 * and the msgid to answer, or -1 with the reason in why. */
static int hello_take(dfd_child *ch, const char *bytes, size_t size, uint32_t *msgid,
                      char *why, size_t n)
{
    dfd_isolate *iso = ch->iso;
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int rc = -1;
    char expect[160];
    const char *p;
    size_t len;

    snprintf(expect, sizeof(expect), "%s#%u", iso->name, ch->slot);
    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(bytes, size, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS ||
        o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4 ||
        o.via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o.via.array.ptr[1].via.u64 > UINT32_MAX ||
        daffi_obj_text(&o.via.array.ptr[2], &p, &len) == -1 || len != 11 ||
        memcmp(p, "daffi.hello", 11) != 0 || o.via.array.ptr[3].type != MSGPACK_OBJECT_ARRAY ||
        o.via.array.ptr[3].via.array.size < 1) {
        snprintf(why, n, "the child's first message is not its daffi.hello");
        goto out;
    }
    *msgid = (uint32_t)o.via.array.ptr[1].via.u64;
    const msgpack_object *info = &o.via.array.ptr[3].via.array.ptr[0];
    const msgpack_object *name = daffi_obj_get(info, "name");
    const msgpack_object *cbs = daffi_obj_get(info, "callbacks");
    const msgpack_object *flags = daffi_obj_get(info, "flags");
    const msgpack_object *version = daffi_obj_get(info, "version");
    const char *vp;
    size_t vlen;
    if (name == NULL || daffi_obj_text(name, &p, &len) == -1 || len != strlen(expect) ||
        memcmp(p, expect, len) != 0 || cbs == NULL || cbs->type != MSGPACK_OBJECT_ARRAY ||
        cbs->via.array.size == 0 || cbs->via.array.size > HELLO_MAX_CALLBACKS ||
        flags == NULL || flags->type != MSGPACK_OBJECT_ARRAY ||
        flags->via.array.size != cbs->via.array.size || version == NULL ||
        daffi_obj_text(version, &vp, &vlen) == -1) {
        snprintf(why, n, "the child's daffi.hello is not what a child of '%s' says", expect);
        goto out;
    }
    uint32_t ncb = cbs->via.array.size;
    for (uint32_t i = 0; i < ncb; i++) {
        const msgpack_object *c = &cbs->via.array.ptr[i], *f = &flags->via.array.ptr[i];
        if (c->type != MSGPACK_OBJECT_STR || !hello_name_ok(c->via.str.ptr, c->via.str.size) ||
            f->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            (f->via.u64 & ~(uint64_t)(DAFFI_CB_BLOCKING | DAFFI_CB_STREAM)) != 0) {
            snprintf(why, n, "the child's daffi.hello announces a bad callback (#%u)", i + 1);
            goto out;
        }
    }
    if (iso->cb_names == NULL) {
        if (hello_adopt(iso, cbs, flags, vp, vlen) == -1) {
            snprintf(why, n, "out of memory");
            goto out;
        }
    } else {
        /* every child loads the same copy: one that announces otherwise is not it */
        int same = ncb == iso->ncb;
        for (uint32_t i = 0; same && i < ncb; i++) {
            const msgpack_object *c = &cbs->via.array.ptr[i];
            same = c->via.str.size == strlen(iso->cb_names[i]) &&
                   memcmp(c->via.str.ptr, iso->cb_names[i], c->via.str.size) == 0 &&
                   flags->via.array.ptr[i].via.u64 == iso->cb_flags[i];
        }
        if (!same) {
            snprintf(why, n, "the child announced other callbacks than the generation has");
            goto out;
        }
    }
    ch->m = dfd_member_new(expect, strlen(expect), (const char *const *)iso->cb_names, NULL, 0);
    if (ch->m == NULL) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    /* one link, not in the registry (a child is its parent's member only); it
     * honours daffi.call's timeout_ms: the router's forwarding sends each deadline */
    dfd_hello h = {0};
    h.links = 1;
    h.deadlines = 1;
    ch->l = dfd_link_new(NULL, NULL, &h);
    if (ch->l == NULL) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    dfd_member_retain(ch->m);
    ch->l->member = ch->m;
    rc = 0;
out:
    msgpack_zone_destroy(&zone);
    return rc;
}

/* Answers the hello as a router does: {"name": ours, "members": []}. Returns 0 or -1. */
static int hello_answer(dfd_child *ch, uint32_t msgid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ssize_t w;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_response_ok(&pk, msgid);
    msgpack_pack_map(&pk, 2);
    daffi_pack_cstr(&pk, "name");
    daffi_pack_cstr(&pk, ch->iso->sup->srv->cfg->name);
    daffi_pack_cstr(&pk, "members");
    msgpack_pack_array(&pk, 0);
    do {
        w = write(ch->fd, sb.data, sb.size);
    } while (w == -1 && errno == EINTR);
    int ok = w == (ssize_t)sb.size;
    msgpack_sbuffer_destroy(&sb);
    return ok ? 0 : -1;
}

/* See isolate-int.h. */
int dfd_child_read_hello(dfd_child *ch, char *why, size_t n)
{
    /* from the configuration: daffid -t has no srv->limits */
    const dfd_config *cfg = ch->iso->sup->srv->cfg;
    const daffi_limits limits = {cfg->max_message, cfg->max_depth};
    const daffi_limits *lim = &limits;
    daffi_scan_result r = DAFFI_SCAN_NEED_MORE;
    uint32_t msgid;

    for (;;) {
        if (ch->in_cap - ch->in_len < 4096) {
            size_t cap = ch->in_cap ? ch->in_cap * 2 : 16384;
            char *grown = cap <= lim->max_message + 16384 ? realloc(ch->in, cap) : NULL;
            if (grown == NULL) {
                snprintf(why, n, "the child's daffi.hello is larger than max_message");
                return -1;
            }
            ch->in = grown;
            ch->in_cap = cap;
        }
        ssize_t got = read(ch->fd, ch->in + ch->in_len, ch->in_cap - ch->in_len);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (got == -1) {
            snprintf(why, n, "cannot read the child's link: %s", strerror(errno));
            return -1;
        }
        if (got == 0) {
            snprintf(why, n, "the child closed its link before announcing its callbacks");
            return -1;
        }
        ch->in_len += (size_t)got;
        r = daffi_scan_feed(&ch->scan, ch->in, ch->in_len, lim);
        if (r != DAFFI_SCAN_NEED_MORE)
            break;
    }
    /* a child sends nothing but its hello until it is answered */
    if (r != DAFFI_SCAN_COMPLETE || ch->scan.size != ch->in_len) {
        snprintf(why, n, "the child sent something else than its daffi.hello");
        return -1;
    }
    if (hello_take(ch, ch->in, ch->in_len, &msgid, why, n) == -1)
        return -1;
    if (hello_answer(ch, msgid) == -1) {
        snprintf(why, n, "cannot answer the child's daffi.hello: %s", strerror(errno));
        return -1;
    }
    free(ch->in);
    ch->in = NULL;
    ch->in_len = ch->in_cap = 0;
    ch->state = DFD_CHILD_READY;
    ch->ready_ns = dfd_now_ns();
    return 1;
}

/* ---- how it ended ---------------------------------------------------------------------- */

/* See isolate-int.h. A harakiri's words were written when it was decided. */
void dfd_child_describe_end(dfd_child *ch)
{
    const dfd_isolate *iso = ch->iso;
    char how[120], what[224];
    int st = ch->status;

    if (ch->harakiri && ch->end[0] != '\0')
        return;
    if (WIFSIGNALED(st)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(st));
        snprintf(how, sizeof(how), "was killed by signal %s%s (%s)", abbrev ? "SIG" : "",
                 abbrev ? abbrev : "?", strsignal(WTERMSIG(st)));
    } else if (WIFEXITED(st)) {
        snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(st));
    } else {
        snprintf(how, sizeof(how), "ended (wait status 0x%x)", (unsigned)st);
    }
    if (ch->state == DFD_CHILD_STARTING)
        snprintf(what, sizeof(what), " while starting");
    else if (ch->running[0] != '\0')
        snprintf(what, sizeof(what), " while running '%.180s'", ch->running);
    else
        snprintf(what, sizeof(what), " while idle");
    snprintf(ch->end, sizeof(ch->end), "plugin '%.64s' child %u (pid %ld) %s%s", iso->name,
             ch->slot, (long)ch->pid, how, what);
}
