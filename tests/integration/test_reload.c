/*
 * test_reload.c - hot reload against real daffid processes: a plugin's .so swapped,
 * broken, written in place; its ini added, removed and edited; calls in flight across
 * every kind of reload; and nothing left mapped after many reloads.
 *
 * Every test starts its own daffid with the "reloadable" fixture plugin
 * (tests/fixtures/plugins/reloadable.c): variant() says which build answered, count()
 * counts in the instance's own state, config(key) returns a [config] value, hold(ms)
 * keeps a blocking call busy. New builds are compiled at test time from the same
 * source with -DRELOAD_VARIANT=N (`cc -shared -fPIC -I sdk/include`), the way an
 * operator rebuilds a plugin, and swapped in by rename. Reloads come from the inotify
 * watcher unless a test says SIGHUP.
 *
 * The daemon's log (DIR/daffid.log) is part of the contract here: failures and
 * generations are asserted from its event lines (plugin.loaded, plugin.load_failed,
 * plugin.finalised, plugin.drain_timeout, reload.restart_required).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>
#include <elf.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define FIXTURE_SRC "tests/fixtures/plugins/reloadable.c"
#define PLUGIN_SO "reloadable.so"
#define PLUGIN_INI "10-reloadable.ini"
#define SWAPS 100           /* test (a): rebuilds swapped in under load */
#define CYCLES 200          /* test (d): reload cycles */
#define CLIENTS 4

/* ---- helpers: time, files, builds ------------------------------------------------ */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* The generous deadline for "this must happen" waits (raised under sanitizers). */
static int wait_ms(void)
{
    return expect_timeout_ms();
}

/* Returns "DIR/name" in buf. */
static const char *in_dir(const tdaemon *d, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", d->dir, name);
    return buf;
}

/* Writes len bytes of p to path (created or truncated). Returns 0 or -1. */
static int write_bytes(const char *path, const void *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *b = p;

    if (fd == -1)
        return -1;
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            close(fd);
            return -1;
        }
        b += n;
        len -= (size_t)n;
    }
    return close(fd);
}

/* Reads the whole file at path into a malloc'd buffer (NUL-terminated). Returns it
 * with *len, or NULL. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 262144;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* Replaces DIR/name with a copy of src the way deployments do: written to a temporary
 * name beside it, then renamed over it. Fails the test on error. */
static void swap_in(const tdaemon *d, const char *src, const char *name)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    size_t len;
    char *bytes = read_all(src, &len);

    if (bytes == NULL)
        fail_msg("cannot read %s: %s", src, strerror(errno));
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", d->dir, name);
    in_dir(d, name, dst, sizeof(dst));
    if (write_bytes(tmp, bytes, len) == -1 || rename(tmp, dst) == -1)
        fail_msg("cannot swap %s in as %s: %s", src, dst, strerror(errno));
    free(bytes);
}

/* Writes DIR/name (an ini) atomically: temporary dotfile, then rename. */
static void write_ini(const tdaemon *d, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void write_ini(const tdaemon *d, const char *name, const char *fmt, ...)
{
    char text[4096], tmp[PATH_MAX], dst[PATH_MAX];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", d->dir, name);
    in_dir(d, name, dst, sizeof(dst));
    if (write_bytes(tmp, text, (size_t)n) == -1 || rename(tmp, dst) == -1)
        fail_msg("cannot write %s: %s", dst, strerror(errno));
}

/* Starts `cc` building the fixture with RELOAD_VARIANT=variant into out. Returns the
 * child's pid (see build_wait), or fails the test. */
static pid_t build_start(const char *out, int variant)
{
    char def[64];
    pid_t pid;

    snprintf(def, sizeof(def), "-DRELOAD_VARIANT=%d", variant);
    pid = fork();
    if (pid == -1)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        execlp("cc", "cc", "-shared", "-fPIC", "-O1", "-I", "sdk/include", def, FIXTURE_SRC,
               "-o", out, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits for a build_start() child; fails the test unless it succeeded. */
static void build_wait(pid_t pid, const char *out)
{
    int status;

    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("building %s from %s failed (status %d)", out, FIXTURE_SRC, status);
}

/* Builds variant into DIR/name and waits for it. */
static void build(const tdaemon *d, const char *name, int variant)
{
    char out[PATH_MAX];

    in_dir(d, name, out, sizeof(out));
    build_wait(build_start(out, variant), out);
}

/* ---- helpers: the log ---------------------------------------------------------------- */

/* Returns the log's current size: a later search starts there. */
static size_t log_mark(const tdaemon *d)
{
    struct stat st;

    return stat(d->log_path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Counts the lines past offset from that contain a and (when not NULL) b. */
static unsigned log_count(const tdaemon *d, size_t from, const char *a, const char *b)
{
    size_t len;
    char *log = read_all(d->log_path, &len);
    unsigned n = 0;

    if (log == NULL)
        return 0;
    for (char *line = log + (from < len ? from : len); *line != '\0';) {
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = '\0';
        if (strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL))
            n++;
        if (end == NULL)
            break;
        line = end + 1;
    }
    free(log);
    return n;
}

/* Waits until a line past from contains a and b (b may be NULL). Returns 1 when it
 * appeared within timeout_ms. */
static int log_wait(const tdaemon *d, size_t from, const char *a, const char *b,
                    int timeout_ms)
{
    int64_t deadline = expect_now_ms() + timeout_ms;

    do {
        if (log_count(d, from, a, b) > 0)
            return 1;
        sleep_ms(10);
    } while (expect_now_ms() < deadline);
    return 0;
}

/* Fails the test unless a line past from contains a and b, printing the log. */
static void expect_log(const tdaemon *d, size_t from, const char *a, const char *b)
{
    if (!log_wait(d, from, a, b, wait_ms())) {
        tdaemon_dump_log(d);
        fail_msg("no log line with '%s'%s%s%s", a, b ? " and '" : "", b ? b : "", b ? "'" : "");
    }
}

/* ---- helpers: calls -------------------------------------------------------------------- */

/* A request: method and up to two params ('i': an int64 from i, 's': a str from s). */
typedef struct req {
    const char *method;
    const char *spec;
    int64_t i;
    const char *s;
} req;

/* What came back, decoded enough for these tests. */
typedef struct reply {
    int code;                     /* 0 for a result, else the error code */
    msgpack_object_type type;     /* of the result */
    int64_t i;
    char s[256];                  /* a str result, or the error message */
} reply;

/* Sends r on c as msgid and reads the response within timeout_ms into out. Returns 0,
 * or -1 when the transport failed or the answer was not that response (why in out->s). */
static int rpc(rawconn *c, uint32_t msgid, const req *r, int timeout_ms, reply *out)
{
    rawmsg m;
    int rc;

    memset(out, 0, sizeof(*out));
    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, msgid, r->method, (uint32_t)strlen(r->spec));
    for (const char *p = r->spec; *p != '\0'; p++) {
        if (*p == 'i')
            msgpack_pack_int64(pk, r->i);
        else
            daffi_pack_cstr(pk, r->s);
    }
    rc = rawconn_send_msg(c, &m);
    rawmsg_destroy(&m);
    if (rc == -1) {
        snprintf(out->s, sizeof(out->s), "send: %s", strerror(errno));
        return -1;
    }
    rawconn_status st = rawconn_read(c, timeout_ms);
    if (st != RAWCONN_OK) {
        snprintf(out->s, sizeof(out->s), "read: %s", rawconn_status_name(st));
        return -1;
    }
    if (c->msg.kind != DAFFI_MSG_RESPONSE || c->msg.msgid != msgid) {
        snprintf(out->s, sizeof(out->s), "not the response to msgid %u", msgid);
        return -1;
    }
    if (c->msg.error != NULL && c->msg.error->type != MSGPACK_OBJECT_NIL) {
        const char *msg;
        size_t len;
        const msgpack_object *details;
        if (daffi_error_parse(c->msg.error, &out->code, &msg, &len, &details) == -1) {
            snprintf(out->s, sizeof(out->s), "malformed error");
            return -1;
        }
        snprintf(out->s, sizeof(out->s), "%.*s", (int)len, msg);
        return 0;
    }
    const msgpack_object *res = c->msg.result;
    out->type = res->type;
    if (res->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        out->i = (int64_t)res->via.u64;
    else if (res->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        out->i = res->via.i64;
    else if (res->type == MSGPACK_OBJECT_STR)
        snprintf(out->s, sizeof(out->s), "%.*s", (int)res->via.str.size, res->via.str.ptr);
    return 0;
}

/* Returns 1 when t is an integer type. */
static int is_int(msgpack_object_type t)
{
    return t == MSGPACK_OBJECT_POSITIVE_INTEGER || t == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

/* Calls r on a fresh connection to addr; fails the test unless it answered. */
static reply call(const char *addr, const req *r)
{
    rawconn c;
    reply out;

    expect_open(&c, addr);
    if (rpc(&c, 1, r, wait_ms(), &out) == -1)
        fail_msg("%s %s: %s", addr, r->method, out.s);
    rawconn_close(&c);
    return out;
}

/* Asserts that r answers the integer want. */
static void expect_int(const char *addr, const req *r, int64_t want)
{
    reply out = call(addr, r);

    if (out.code != 0 || !is_int(out.type) || out.i != want)
        fail_msg("%s: expected %lld, got code %d '%s' int %lld", r->method, (long long)want,
                 out.code, out.s, (long long)out.i);
}

/* Asserts that r answers the string want. */
static void expect_str(const char *addr, const req *r, const char *want)
{
    reply out = call(addr, r);

    if (out.code != 0 || out.type != MSGPACK_OBJECT_STR || strcmp(out.s, want) != 0)
        fail_msg("%s: expected '%s', got code %d '%s'", r->method, want, out.code, out.s);
}

/* Calls r every 10 ms until the answer is the integer want (code 0) or the error code
 * (want_code != 0); fails the test past the deadline. */
static void await_answer(const tdaemon *d, const req *r, int want_code, int64_t want,
                         const char *want_s)
{
    int64_t deadline = expect_now_ms() + wait_ms();
    reply out;
    rawconn c;

    expect_open(&c, d->tcp);
    for (uint32_t id = 1;; id++) {
        if (rpc(&c, id, r, wait_ms(), &out) == -1)
            fail_msg("%s: %s", r->method, out.s);
        if (want_code != 0 && out.code == want_code)
            break;
        if (want_code == 0 && out.code == 0 && want_s == NULL &&
            is_int(out.type) && out.i == want)
            break;
        if (want_code == 0 && out.code == 0 && want_s != NULL &&
            out.type == MSGPACK_OBJECT_STR && strcmp(out.s, want_s) == 0)
            break;
        if (expect_now_ms() >= deadline) {
            tdaemon_dump_log(d);
            fail_msg("%s never answered as expected; last: code %d '%s' int %lld", r->method,
                     out.code, out.s, (long long)out.i);
        }
        sleep_ms(10);
    }
    rawconn_close(&c);
}

static const req VARIANT = {"variant", "", 0, NULL};
static const req COUNT = {"count", "", 0, NULL};
static const req ANSWER = {"config", "s", 0, "answer"};
static const req ADD = {"add", "ii", 0, NULL}; /* add(0, 0): 0 when calc is loaded */

/* ---- helpers: daemons -------------------------------------------------------------------- */

/* Starts a daffid whose dir holds the Makefile's reloadable.so (variant 0) declared by
 * 10-reloadable.ini, with plugin_keys appended to its [plugin] section and [config]
 * answer = one; extra_ini (may be NULL) goes into 20-extra.ini. Stores the daemon in
 * *state for the teardown. */
static tdaemon *start(void **state, const char *plugin_keys, const char *extra_ini,
                      const char *const *overrides)
{
    tdaemon *d = calloc(1, sizeof(*d));
    char src[PATH_MAX + 64], dst[PATH_MAX];

    assert_non_null(d);
    *state = d;
    assert_int_equal(tdaemon_init(d), 0);
    snprintf(src, sizeof(src), "%s/tests/fixtures/reloadable.so", d->build);
    swap_in(d, src, PLUGIN_SO);
    in_dir(d, PLUGIN_SO, dst, sizeof(dst));
    write_ini(d, PLUGIN_INI, "[plugin]\nname = reloadable\npath = %s\n%s\n[config]\n"
              "answer = one\n", dst, plugin_keys ? plugin_keys : "");
    if (extra_ini != NULL)
        write_ini(d, "20-extra.ini", "%s", extra_ini);
    if (tdaemon_start(d, overrides) == -1)
        fail_msg("daffid did not start");
    /* the listeners accept before start-up is over: wait for the whole of it, up to
     * the watcher's start-up check */
    expect_log(d, 0, "event=reload.done", NULL);
    return d;
}

/* Stops the test's daemon (a clean exit is part of every test: no crash, no leak
 * reported by a sanitizer build) and removes its dir. */
static int teardown(void **state)
{
    tdaemon *d = *state;
    int rc;

    if (d == NULL)
        return 0;
    rc = tdaemon_stop(d, TDAEMON_STOP_TIMEOUT_MS);
    if (rc != 0)
        fprintf(stderr, "daffid exited with %d\n", rc);
    tdaemon_cleanup(d);
    free(d);
    *state = NULL;
    return rc == 0 ? 0 : -1;
}

/* ---- (a) reload under load -------------------------------------------------------------- */

/* One client: calls variant() back to back and checks every answer. */
typedef struct client {
    pthread_t thread;
    const char *addr;
    atomic_int *stop;
    atomic_long seen;             /* the newest variant this client was answered */
    long calls;
    long failed;                  /* errors, timeouts, closed connections */
    long out_of_order;            /* an answer neither the last variant nor the next */
    char why[320];                /* the first problem */
} client;

static void *client_main(void *arg)
{
    client *cl = arg;
    rawconn c;
    reply out;

    if (rawconn_open(&c, cl->addr, 5000) == -1) {
        cl->failed++;
        snprintf(cl->why, sizeof(cl->why), "connect %s: %s", cl->addr, strerror(errno));
        return NULL;
    }
    for (uint32_t id = 1; !atomic_load(cl->stop); id++) {
        cl->calls++;
        if (rpc(&c, id, &VARIANT, 10000, &out) == -1 || out.code != 0) {
            if (cl->failed++ == 0)
                snprintf(cl->why, sizeof(cl->why), "call %ld: code %d %.256s", cl->calls,
                         out.code, out.s);
            if (out.code == 0)
                break; /* the connection is unusable */
            continue;
        }
        long last = atomic_load(&cl->seen);
        if (out.i != last && out.i != last + 1) {
            if (cl->out_of_order++ == 0)
                snprintf(cl->why, sizeof(cl->why), "call %ld: variant %lld after %ld",
                         cl->calls, (long long)out.i, last);
        }
        if (out.i > last)
            atomic_store(&cl->seen, (long)out.i);
    }
    rawconn_close(&c);
    return NULL;
}

/* Builds variants 1..SWAPS into DIR/vN.so, two compilers at a time (the machine's
 * cores), before any load starts: under load a compiler would crawl. */
static void build_variants(const tdaemon *d)
{
    pid_t pids[2] = {0, 0};
    char outs[2][PATH_MAX];

    for (int v = 1; v <= SWAPS + 1; v++) {
        int slot = v % 2;
        if (pids[slot] != 0)
            build_wait(pids[slot], outs[slot]);
        pids[slot] = 0;
        if (v > SWAPS)
            continue;
        char name[32];
        snprintf(name, sizeof(name), "v%d.so", v);
        in_dir(d, name, outs[slot], sizeof(outs[slot]));
        pids[slot] = build_start(outs[slot], v);
    }
    for (int slot = 0; slot < 2; slot++)
        if (pids[slot] != 0)
            build_wait(pids[slot], outs[slot]);
}

/* Four clients call variant() without pause while SWAPS builds of the plugin, each
 * with a new variant, are renamed over its path one after the other: no call fails,
 * every answer comes from the generation before or after the swap, and every client
 * sees each new one. */
static void test_rebuilt_so_swapped_under_load_loses_no_call(void **state)
{
    tdaemon *d = start(state, NULL, NULL, NULL);
    client cl[CLIENTS];
    atomic_int stop;
    char next[PATH_MAX];
    size_t mark;
    int64_t t0, worst = 0;

    build_variants(d);
    mark = log_mark(d);
    t0 = expect_now_ms();
    atomic_init(&stop, 0);
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < CLIENTS; i++) {
        cl[i].addr = i % 2 ? d->unix_addr : d->tcp;
        cl[i].stop = &stop;
        atomic_init(&cl[i].seen, 0);
        assert_int_equal(pthread_create(&cl[i].thread, NULL, client_main, &cl[i]), 0);
    }
    for (int v = 1; v <= SWAPS; v++) {
        char name[32];
        snprintf(name, sizeof(name), "v%d.so", v);
        swap_in(d, in_dir(d, name, next, sizeof(next)), PLUGIN_SO);
        int64_t swapped = expect_now_ms();
        for (int i = 0; i < CLIENTS; i++) {
            while (atomic_load(&cl[i].seen) < v && cl[i].failed == 0 &&
                   expect_now_ms() - swapped < wait_ms())
                sleep_ms(1);
        }
        int64_t took = expect_now_ms() - swapped;
        worst = took > worst ? took : worst;
        for (int i = 0; i < CLIENTS; i++) {
            if (atomic_load(&cl[i].seen) < v) {
                atomic_store(&stop, 1);
                for (int k = 0; k < CLIENTS; k++)
                    pthread_join(cl[k].thread, NULL);
                tdaemon_dump_log(d);
                fail_msg("swap %d: client %d still sees variant %ld after %lld ms (%s)", v,
                         i, atomic_load(&cl[i].seen), (long long)took, cl[i].why);
            }
        }
    }
    atomic_store(&stop, 1);
    long calls = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(cl[i].thread, NULL);
        calls += cl[i].calls;
        if (cl[i].failed || cl[i].out_of_order)
            fail_msg("client %d: %ld failed, %ld out of order of %ld calls: %s", i,
                     cl[i].failed, cl[i].out_of_order, cl[i].calls, cl[i].why);
    }
    int64_t spent = expect_now_ms() - t0;
    print_message("    %d swaps in %lld ms (%lld ms each), %ld calls, 0 failed; slowest "
                  "swap seen by all clients after %lld ms\n", SWAPS, (long long)spent,
                  (long long)(spent / SWAPS), calls, (long long)worst);
    /* one rename, one load: the watcher never loaded a half-done file or twice */
    assert_int_equal(log_count(d, mark, "plugin.loaded", "plugin=reloadable"), SWAPS);
    assert_int_equal(log_count(d, mark, "plugin.load_failed", NULL), 0);
    /* and every replaced generation drained and was finalised */
    expect_log(d, mark, "plugin.finalised", "generation=100 ");
    int64_t deadline = expect_now_ms() + wait_ms();
    while (log_count(d, mark, "plugin.finalised", NULL) < SWAPS && expect_now_ms() < deadline)
        sleep_ms(20);
    assert_int_equal(log_count(d, mark, "plugin.finalised", NULL), SWAPS);
}

/* ---- (b) broken files -------------------------------------------------------------------- */

/* A broken .so and the reason daffid must give for refusing it. */
typedef struct broken {
    const char *fixture;          /* $BUILD/tests/fixtures/NAME.so, or a special case */
    const char *reason;
} broken;

static const broken BROKEN[] = {
    {"abi_major", "ABI major"},
    {"abi_minor", "built for ABI"},
    {"small_size", "descriptor size"},
    {"no_descriptor", "no descriptor symbol"},
    {"empty_callbacks", "declares no callbacks"},
    {"bad_callback_name", "callback #"},
    {"reserved_name", "reserved prefix"},
    {"dup_callback", "duplicate callback"},
    {"null_handler", "has no handler"},
    {"unknown_flags", "unknown flags"},
    {"undefined_symbol", "dlopen failed"},
    {"init_fails", "init failed: database unreachable"},
    {"init_fails_silently", "init failed: no reason given"},
    {":text", "not an ELF shared object"},
    {":empty", "not an ELF shared object"},
    {":missing", "cannot open"},
};

/* Puts broken case b in place of the plugin's .so. */
/* The bytes of an ELF file that its loadable segments span: half of it cuts into the
 * code, wherever the build put its debug sections (a sanitizer build's .so keeps all
 * its segments in the first half of the file). */
static size_t loadable_size(const char *bytes, size_t len)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)bytes;
    size_t end = 0;
    assert_true(len >= sizeof(*eh) && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0);
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(bytes + eh->e_phoff + i * eh->e_phentsize);
        assert_true((const char *)(ph + 1) <= bytes + len);
        if (ph->p_type == PT_LOAD && ph->p_offset + ph->p_filesz > end)
            end = ph->p_offset + ph->p_filesz;
    }
    assert_true(end > 0 && end <= len);
    return end;
}

static void break_plugin(const tdaemon *d, const broken *b)
{
    char path[PATH_MAX + 64], tmp[PATH_MAX];

    in_dir(d, PLUGIN_SO, path, sizeof(path));
    if (strcmp(b->fixture, ":missing") == 0) {
        assert_int_equal(unlink(path), 0);
    } else if (strcmp(b->fixture, ":text") == 0) {
        in_dir(d, "broken.txt", tmp, sizeof(tmp));
        assert_int_equal(write_bytes(tmp, "this is not a plugin\n", 21), 0);
        swap_in(d, tmp, PLUGIN_SO);
    } else if (strcmp(b->fixture, ":empty") == 0) {
        in_dir(d, "empty.so", tmp, sizeof(tmp));
        assert_int_equal(write_bytes(tmp, "", 0), 0);
        swap_in(d, tmp, PLUGIN_SO);
    } else if (strcmp(b->fixture, ":truncated") == 0) {
        size_t len;
        char good[PATH_MAX + 64];
        snprintf(good, sizeof(good), "%s/tests/fixtures/reloadable.so", d->build);
        char *bytes = read_all(good, &len);
        assert_non_null(bytes);
        in_dir(d, "half.so", tmp, sizeof(tmp));
        assert_int_equal(write_bytes(tmp, bytes, loadable_size(bytes, len) / 2), 0);
        free(bytes);
        swap_in(d, tmp, PLUGIN_SO);
    } else {
        snprintf(path, sizeof(path), "%s/tests/fixtures/%s.so", d->build, b->fixture);
        swap_in(d, path, PLUGIN_SO);
    }
}

/* Each kind of broken .so swapped in is refused with its reason in the log, and the
 * old generation keeps serving with its state (count() keeps counting). */
static void test_broken_so_is_refused_and_old_generation_keeps_serving(void **state)
{
    tdaemon *d = start(state, NULL, NULL, NULL);
    int64_t n = 0;

    expect_int(d->tcp, &VARIANT, 0);
    expect_int(d->tcp, &COUNT, ++n);
    for (size_t i = 0; i < sizeof(BROKEN) / sizeof(BROKEN[0]); i++) {
        size_t mark = log_mark(d);
        break_plugin(d, &BROKEN[i]);
        if (!log_wait(d, mark, "plugin.load_failed plugin=reloadable", BROKEN[i].reason,
                      wait_ms())) {
            tdaemon_dump_log(d);
            fail_msg("%s: no load_failed line with '%s'", BROKEN[i].fixture, BROKEN[i].reason);
        }
        /* the line names the file too */
        assert_true(log_count(d, mark, "plugin.load_failed", PLUGIN_SO) > 0);
        expect_int(d->tcp, &VARIANT, 0);
        expect_int(d->unix_addr, &COUNT, ++n);
    }
    /* a good build after all that is loaded, with fresh state */
    build(d, "good.so", 7);
    char good[PATH_MAX];
    swap_in(d, in_dir(d, "good.so", good, sizeof(good)), PLUGIN_SO);
    await_answer(d, &VARIANT, 0, 7, NULL);
    expect_int(d->tcp, &COUNT, 1);
}

/* A .so cut short (a copy interrupted half way) is refused like any broken file: the
 * loader must check that the segments lie inside the file, since glibc's dlopen maps
 * them and dies of SIGBUS touching pages past the end. */
static void test_truncated_so_is_refused_without_crashing(void **state)
{
    tdaemon *d = start(state, NULL, NULL, NULL);
    const broken truncated = {":truncated", "plugin=reloadable"};
    size_t mark = log_mark(d);

    expect_int(d->tcp, &COUNT, 1);
    break_plugin(d, &truncated);
    expect_log(d, mark, "plugin.load_failed", "plugin=reloadable");
    assert_int_equal(tdaemon_alive(d), 1);
    expect_int(d->tcp, &VARIANT, 0);
    expect_int(d->tcp, &COUNT, 2);
}

/* A new plugin whose callbacks clash with a loaded plugin's is refused, naming both;
 * the loaded one keeps serving. */
static void test_new_plugin_with_clashing_callbacks_is_refused(void **state)
{
    tdaemon *d = start(state, NULL, NULL, NULL);
    char copy[PATH_MAX];
    size_t mark = log_mark(d);

    expect_int(d->tcp, &COUNT, 1);
    build(d, "other.so", 5);
    write_ini(d, "20-other.ini", "[plugin]\nname = other\npath = %s\n",
              in_dir(d, "other.so", copy, sizeof(copy)));
    expect_log(d, mark, "plugin.load_failed plugin=other", "is exposed by both");
    expect_int(d->tcp, &VARIANT, 0);
    expect_int(d->tcp, &COUNT, 2);
}

/* ---- (c) ini added, removed, edited ------------------------------------------------------ */

/* Changes that never stop (a rename 20 times a second, faster than the quiet period)
 * still get a reload at least every watch_max_wait: each batch waited about that long,
 * and several reloads happened while the changes went on. */
static void test_steady_changes_still_reload_within_watch_max_wait(void **state)
{
    static const char *const ov[] = { "server.watch_max_wait=500ms", NULL };
    tdaemon *d = start(state, NULL, NULL, ov);
    size_t mark = log_mark(d), len;
    int64_t end = expect_now_ms() + 4000;

    for (int i = 0; expect_now_ms() < end; i++) {
        write_ini(d, "30-churn.ini", "[server]\n; change %d\n", i);
        sleep_ms(50);
    }
    sleep_ms(1000); /* the last batch */
    char *log = read_all(d->log_path, &len);
    assert_non_null(log);
    unsigned reloads = 0, longest = 0;
    for (const char *p = log + (mark < len ? mark : len);
         (p = strstr(p, "event=watch.changed")) != NULL; p++) {
        const char *w = strstr(p, "waited_ms=");
        unsigned waited = w ? (unsigned)strtoul(w + 10, NULL, 10) : 0;
        reloads++;
        if (waited > longest)
            longest = waited;
    }
    free(log);
    if (reloads < 3 || longest > 2500) {
        tdaemon_dump_log(d);
        fail_msg("%u reloads in 4 s of steady change, the longest batch waited %u ms "
                 "(watch_max_wait = 500ms)", reloads, longest);
    }
}

/* A new ini in the config dir loads its plugin; until then its callbacks are unknown. */
static void test_added_ini_loads_its_plugin(void **state)
{
    tdaemon *d = start(state, NULL, NULL, NULL);
    reply out = call(d->tcp, &ADD);

    assert_int_equal(out.code, DAFFI_E_NO_CALLBACK);
    write_ini(d, "20-calc.ini", "[plugin]\nname = calc\npath = %s/plugins/calc.so\n", d->build);
    await_answer(d, &ADD, 0, 0, NULL);
    expect_int(d->tcp, &VARIANT, 0);
}

/* A removed ini unloads its plugin: its callbacks answer NO_CALLBACK, the others serve. */
static void test_removed_ini_unloads_its_plugin(void **state)
{
    char extra[PATH_MAX + 64], ini[PATH_MAX];
    tdaemon *d;
    size_t mark;

    {
        const char *build = getenv("BUILD");
        char real[PATH_MAX];
        if (realpath(build && *build ? build : "build", real) == NULL)
            fail_msg("BUILD: %s", strerror(errno));
        snprintf(extra, sizeof(extra), "[plugin]\nname = calc\npath = %s/plugins/calc.so\n",
                 real);
    }
    d = start(state, NULL, extra, NULL);
    mark = log_mark(d);
    expect_int(d->tcp, &ADD, 0);
    assert_int_equal(unlink(in_dir(d, "20-extra.ini", ini, sizeof(ini))), 0);
    await_answer(d, &ADD, DAFFI_E_NO_CALLBACK, 0, NULL);
    expect_log(d, mark, "plugin.removed", "plugin=calc");
    expect_log(d, mark, "plugin.finalised", "plugin=calc");
    expect_int(d->tcp, &VARIANT, 0);
}

/* An edited [config] value reaches the plugin through a new generation. */
static void test_edited_config_value_takes_effect(void **state)
{
    char so[PATH_MAX];
    tdaemon *d = start(state, NULL, NULL, NULL);

    expect_str(d->tcp, &ANSWER, "one");
    write_ini(d, PLUGIN_INI, "[plugin]\nname = reloadable\npath = %s\n[config]\nanswer = two\n",
              in_dir(d, PLUGIN_SO, so, sizeof(so)));
    await_answer(d, &ANSWER, 0, 0, "two");
}

/* An edited [plugin] setting loads a new generation (the log says what changed). */
static void test_edited_plugin_setting_takes_effect(void **state)
{
    char so[PATH_MAX];
    tdaemon *d = start(state, "timeout = 5s\n", NULL, NULL);
    size_t mark = log_mark(d);

    expect_int(d->tcp, &COUNT, 1);
    write_ini(d, PLUGIN_INI, "[plugin]\nname = reloadable\npath = %s\ntimeout = 100ms\n"
              "[config]\nanswer = one\n", in_dir(d, PLUGIN_SO, so, sizeof(so)));
    expect_log(d, mark, "plugin.loaded plugin=reloadable", "change=settings");
    expect_int(d->tcp, &COUNT, 1);
    /* the new deadline applies: hold(1000) now times out */
    const req hold = {"hold", "i", 1000, NULL};
    reply out = call(d->tcp, &hold);
    assert_int_equal(out.code, DAFFI_E_TIMEOUT);
}

/* The -o overrides given at start apply to every reload too. */
static void test_command_line_overrides_survive_a_reload(void **state)
{
    const char *const ov[] = {"reloadable:config.answer=cli", NULL};
    char so[PATH_MAX];
    tdaemon *d = start(state, NULL, NULL, ov);
    const req other = {"config", "s", 0, "other"};

    expect_str(d->tcp, &ANSWER, "cli");
    write_ini(d, PLUGIN_INI, "[plugin]\nname = reloadable\npath = %s\n[config]\n"
              "answer = ini\nother = new\n", in_dir(d, PLUGIN_SO, so, sizeof(so)));
    await_answer(d, &other, 0, 0, "new");
    expect_str(d->tcp, &ANSWER, "cli");
}

/* A server setting that cannot change at runtime is reported, not ignored. */
static void test_setting_needing_restart_is_reported(void **state)
{
    tdaemon *d = start(state, NULL, NULL, NULL);
    size_t mark = log_mark(d);

    write_ini(d, "30-site.ini", "[server]\nworkers = 3\n[limits]\nmax_pending = 99\n");
    expect_log(d, mark, "reload.restart_required", "setting=server.loops");
    expect_log(d, mark, "reload.restart_required", "setting=limits.max_pending");
    expect_int(d->tcp, &VARIANT, 0);
}

/* ---- triggers ------------------------------------------------------------------------------ */

/* SIGHUP reloads at once, even while the watcher waits for a writer to close the
 * file; the watcher's own reload afterwards finds nothing left to do. */
static void test_sighup_reloads_what_changed(void **state)
{
    char path[PATH_MAX], so[PATH_MAX];
    tdaemon *d = start(state, NULL, NULL, NULL);
    size_t mark = log_mark(d);

    FILE *f = fopen(in_dir(d, PLUGIN_INI, path, sizeof(path)), "w");
    assert_non_null(f);
    fprintf(f, "[plugin]\nname = reloadable\npath = %s\n[config]\nanswer = hup\n",
            in_dir(d, PLUGIN_SO, so, sizeof(so)));
    assert_int_equal(fflush(f), 0); /* written, still open */
    assert_int_equal(tdaemon_signal(d, SIGHUP), 0);
    await_answer(d, &ANSWER, 0, 0, "hup");
    assert_int_equal(log_count(d, mark, "watch.changed", NULL), 0);
    assert_int_equal(fclose(f), 0);
    expect_log(d, mark, "watch.changed", PLUGIN_INI);
    expect_log(d, mark, "reload.done", "loaded=0 unchanged=1");
    assert_int_equal(log_count(d, mark, "plugin.loaded", NULL), 1);
}

/* A .so written in place, slowly, is loaded once, after its writer closed it. */
static void test_so_written_in_place_loads_once_when_complete(void **state)
{
    char path[PATH_MAX], next[PATH_MAX];
    tdaemon *d = start(state, NULL, NULL, NULL);
    size_t len, mark;

    build(d, "next.so", 3);
    char *bytes = read_all(in_dir(d, "next.so", next, sizeof(next)), &len);
    assert_non_null(bytes);
    mark = log_mark(d);
    int fd = open(in_dir(d, PLUGIN_SO, path, sizeof(path)), O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(fd != -1);
    /* eight pieces, 60 ms apart: longer than the watcher's quiet period */
    for (size_t off = 0, piece = len / 8 + 1; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        assert_int_equal(write(fd, bytes + off, n), (ssize_t)n);
        sleep_ms(60);
    }
    assert_int_equal(close(fd), 0);
    free(bytes);
    await_answer(d, &VARIANT, 0, 3, NULL);
    sleep_ms(300);
    assert_int_equal(log_count(d, mark, "plugin.loaded", NULL), 1);
    assert_int_equal(log_count(d, mark, "plugin.load_failed", NULL), 0);
}

/* A .so rebuilt with the same bytes (or touched) loads nothing new. */
static void test_unchanged_so_is_not_reloaded(void **state)
{
    char src[PATH_MAX + 64], path[PATH_MAX];
    tdaemon *d = start(state, NULL, NULL, NULL);
    size_t mark = log_mark(d);

    expect_int(d->tcp, &COUNT, 1);
    snprintf(src, sizeof(src), "%s/tests/fixtures/reloadable.so", d->build);
    swap_in(d, src, PLUGIN_SO);
    expect_log(d, mark, "reload.done", "loaded=0 unchanged=1");
    assert_int_equal(utimensat(AT_FDCWD, in_dir(d, PLUGIN_SO, path, sizeof(path)), NULL, 0), 0);
    assert_int_equal(tdaemon_signal(d, SIGHUP), 0);
    expect_log(d, mark, "server.sighup", NULL);
    sleep_ms(200);
    assert_int_equal(log_count(d, mark, "plugin.loaded", NULL), 0);
    expect_int(d->tcp, &COUNT, 2);
}

/* ---- (e) state, (f) calls in flight, drain ------------------------------------------------ */

/* A new generation starts with fresh instance state. */
static void test_new_generation_starts_with_clean_state(void **state)
{
    char next[PATH_MAX];
    tdaemon *d = start(state, NULL, NULL, NULL);

    for (int64_t i = 1; i <= 3; i++)
        expect_int(d->tcp, &COUNT, i);
    build(d, "next.so", 1);
    swap_in(d, in_dir(d, "next.so", next, sizeof(next)), PLUGIN_SO);
    await_answer(d, &VARIANT, 0, 1, NULL);
    expect_int(d->tcp, &COUNT, 1);
}

#define INFLIGHT_CONNS 4
#define INFLIGHT_PER_CONN 8

/* echo_after calls in flight on the old generation complete with their own values
 * after a reload replaced it; the old generation is finalised only after them. */
static void test_echo_after_in_flight_completes_across_reload(void **state)
{
    char extra[PATH_MAX + 128];
    const char *build = getenv("BUILD");
    char real[PATH_MAX];
    rawconn c[INFLIGHT_CONNS];
    tdaemon *d;
    size_t mark;

    if (realpath(build && *build ? build : "build", real) == NULL)
        fail_msg("BUILD: %s", strerror(errno));
    snprintf(extra, sizeof(extra), "[plugin]\nname = echo\npath = %s/plugins/echo.so\n"
             "[config]\nmax_delay_ms = 60000\n", real);
    d = start(state, NULL, extra, NULL);
    mark = log_mark(d);
    for (int k = 0; k < INFLIGHT_CONNS; k++) {
        expect_open(&c[k], k % 2 ? d->unix_addr : d->tcp);
        for (int i = 0; i < INFLIGHT_PER_CONN; i++) {
            rawmsg m;
            char v[32];
            rawmsg_init(&m);
            msgpack_packer *pk = rawmsg_request(&m, (uint32_t)(100 + i), "echo_after", 2);
            msgpack_pack_int64(pk, 400 + 20 * i);
            snprintf(v, sizeof(v), "v-%d-%d", k, i);
            daffi_pack_cstr(pk, v);
            expect_send(&c[k], &m);
            rawmsg_destroy(&m);
        }
    }
    snprintf(extra, sizeof(extra), "[plugin]\nname = echo\npath = %s/plugins/echo.so\n"
             "[config]\nmax_delay_ms = 1000\n", real);
    write_ini(d, "20-extra.ini", "%s", extra);
    assert_int_equal(tdaemon_signal(d, SIGHUP), 0);
    expect_log(d, mark, "plugin.loaded plugin=echo", "generation=2");
    /* generation 2 serves: 5000 ms is past its max_delay_ms */
    const req late = {"echo_after", "is", 5000, "x"};
    assert_int_equal(call(d->tcp, &late).code, DAFFI_E_BAD_ARGS);
    assert_int_equal(log_count(d, mark, "plugin.finalised", "plugin=echo"), 0);
    for (int k = 0; k < INFLIGHT_CONNS; k++) {
        for (int i = 0; i < INFLIGHT_PER_CONN; i++) {
            char v[32];
            snprintf(v, sizeof(v), "v-%d-%d", k, i);
            expect_result_str(&c[k], (uint32_t)(100 + i), v);
        }
        rawconn_close(&c[k]);
    }
    expect_log(d, mark, "plugin.finalised", "plugin=echo generation=1");
}

/* A replaced generation whose call outlives its deadline is reported and kept loaded
 * until the call returns; then it is finalised. */
static void test_generation_that_does_not_drain_is_reported_and_kept(void **state)
{
    char so[PATH_MAX];
    tdaemon *d = start(state, "timeout = 200ms\n", NULL, NULL);
    const req hold = {"hold", "i", 2500, NULL};
    size_t mark = log_mark(d);
    reply out;

    /* the call is answered TIMEOUT at 200 ms but its handler keeps sleeping */
    out = call(d->tcp, &hold);
    assert_int_equal(out.code, DAFFI_E_TIMEOUT);
    write_ini(d, PLUGIN_INI, "[plugin]\nname = reloadable\npath = %s\ntimeout = 200ms\n"
              "[config]\nanswer = two\n", in_dir(d, PLUGIN_SO, so, sizeof(so)));
    assert_int_equal(tdaemon_signal(d, SIGHUP), 0);
    await_answer(d, &ANSWER, 0, 0, "two");
    expect_log(d, mark, "plugin.drain_timeout", "plugin=reloadable generation=1");
    assert_int_equal(log_count(d, mark, "plugin.finalised", NULL), 0);
    expect_log(d, mark, "plugin.finalised", "plugin=reloadable generation=1");
}

/* ---- (d) many reloads leave nothing behind ------------------------------------------------ */

/* Counts the distinct private plugin copies mapped by pid, and stores the directory of
 * one of them in dir (or "" when none). */
static int mapped_copies(pid_t pid, char *dir, size_t dirsz)
{
    char path[64], seen[16][512];
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    dir[0] = '\0';
    char line[PATH_MAX + 256];
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, "/daffid-plugins.");
        if (p == NULL)
            continue;
        p = strchr(line, '/');
        p[strcspn(p, "\n")] = '\0';
        int known = 0;
        for (int i = 0; i < n && !known; i++)
            known = strcmp(seen[i], p) == 0;
        if (!known && n < 16)
            snprintf(seen[n++], sizeof(seen[0]), "%s", p);
        snprintf(dir, dirsz, "%s", p);
        char *slash = strrchr(dir, '/');
        if (slash != NULL)
            *slash = '\0';
    }
    fclose(f);
    return n;
}

/* Counts the entries of a directory (without . and ..), -1 when it cannot be read. */
static int dir_entries(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    int n = 0;

    if (dir == NULL)
        return -1;
    while ((e = readdir(dir)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(dir);
    return n;
}

/* CYCLES reloads (ini edit + SIGHUP, each waited for) leave exactly one mapped copy,
 * one private file and the same number of open descriptors; the daemon then exits
 * cleanly (a sanitizer build reports leaks at that exit). */
static void test_many_reload_cycles_leave_nothing_mapped(void **state)
{
    char so[PATH_MAX], pdir[PATH_MAX], fdpath[64], v[32];
    tdaemon *d = start(state, NULL, NULL, NULL);
    rawconn c;
    reply out;

    expect_open(&c, d->tcp);
    assert_int_equal(rpc(&c, 1, &ANSWER, wait_ms(), &out), 0);
    snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd", (int)d->pid);
    /* the start-up probes' connections close asynchronously: let them go first */
    sleep_ms(200);
    int fds0 = dir_entries(fdpath);
    assert_int_equal(mapped_copies(d->pid, pdir, sizeof(pdir)), 1);
    in_dir(d, PLUGIN_SO, so, sizeof(so));
    int64_t t0 = expect_now_ms();
    for (int i = 1; i <= CYCLES; i++) {
        snprintf(v, sizeof(v), "c%d", i);
        write_ini(d, PLUGIN_INI, "[plugin]\nname = reloadable\npath = %s\n[config]\n"
                  "answer = %s\n", so, v);
        assert_int_equal(tdaemon_signal(d, SIGHUP), 0);
        int64_t deadline = expect_now_ms() + wait_ms();
        for (uint32_t id = 2;; id++) {
            if (rpc(&c, id, &ANSWER, wait_ms(), &out) == -1)
                fail_msg("cycle %d: %s", i, out.s);
            if (out.code == 0 && strcmp(out.s, v) == 0)
                break;
            if (expect_now_ms() >= deadline)
                fail_msg("cycle %d: still '%s'", i, out.s);
            sleep_ms(1);
        }
    }
    print_message("    %d reload cycles in %lld ms\n", CYCLES,
                  (long long)(expect_now_ms() - t0));
    /* retiring generations are finalised within a few polls once drained */
    int64_t deadline = expect_now_ms() + wait_ms();
    int copies, files, fds;
    do {
        sleep_ms(50);
        char now_dir[PATH_MAX];
        copies = mapped_copies(d->pid, now_dir, sizeof(now_dir));
        files = dir_entries(pdir);
        fds = dir_entries(fdpath);
    } while ((copies != 1 || files != 1 || fds > fds0) && expect_now_ms() < deadline);
    rawconn_close(&c);
    if (copies != 1 || files != 1 || fds > fds0) {
        tdaemon_dump_log(d);
        fail_msg("after %d reloads: %d mapped copies (want 1), %d private files (want 1), "
                 "%d descriptors (had %d)", CYCLES, copies, files, fds, fds0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_rebuilt_so_swapped_under_load_loses_no_call, teardown),
        cmocka_unit_test_teardown(test_broken_so_is_refused_and_old_generation_keeps_serving,
                                  teardown),
        cmocka_unit_test_teardown(test_truncated_so_is_refused_without_crashing, teardown),
        cmocka_unit_test_teardown(test_new_plugin_with_clashing_callbacks_is_refused, teardown),
        cmocka_unit_test_teardown(test_added_ini_loads_its_plugin, teardown),
        cmocka_unit_test_teardown(test_steady_changes_still_reload_within_watch_max_wait,
                                  teardown),
        cmocka_unit_test_teardown(test_removed_ini_unloads_its_plugin, teardown),
        cmocka_unit_test_teardown(test_edited_config_value_takes_effect, teardown),
        cmocka_unit_test_teardown(test_edited_plugin_setting_takes_effect, teardown),
        cmocka_unit_test_teardown(test_command_line_overrides_survive_a_reload, teardown),
        cmocka_unit_test_teardown(test_setting_needing_restart_is_reported, teardown),
        cmocka_unit_test_teardown(test_sighup_reloads_what_changed, teardown),
        cmocka_unit_test_teardown(test_so_written_in_place_loads_once_when_complete, teardown),
        cmocka_unit_test_teardown(test_unchanged_so_is_not_reloaded, teardown),
        cmocka_unit_test_teardown(test_new_generation_starts_with_clean_state, teardown),
        cmocka_unit_test_teardown(test_echo_after_in_flight_completes_across_reload, teardown),
        cmocka_unit_test_teardown(test_generation_that_does_not_drain_is_reported_and_kept,
                                  teardown),
        cmocka_unit_test_teardown(test_many_reload_cycles_leave_nothing_mapped, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    /* RELOAD_TEST=pattern runs only the matching tests (cmocka's filter syntax) */
    if (getenv("RELOAD_TEST") != NULL)
        cmocka_set_test_filter(getenv("RELOAD_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
