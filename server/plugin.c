/*
 * plugin.c - loading, checking and releasing plugin generations (see plugin.h), and
 * the SDK functions that belong to a plugin instance: daffi_config_* and
 * daffi_host_error.
 *
 * A load is all or nothing. Every step that acquires something (the private copy, the
 * mapping, the config copy, the lock, the state) is undone by plugin_discard() when a
 * later step fails, so a rejected plugin leaves no file, no mapping and no memory.
 *
 * Nothing here logs: failures go to the caller's dfd_errors, which the caller logs or
 * shows on the admin socket.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "paths.h"
#include "plugin.h"

/* The descriptor as ABI 1.0 and 1.1 defined it: a plugin's size must cover at least
 * what its minor defines. Later minors only append fields, so a larger size is fine. */
#define DFD_DESC_SIZE_1_0 \
    (offsetof(daffi_plugin_descriptor, callbacks) + sizeof(const daffi_callback_def *))
#define DFD_DESC_SIZE_1_1 \
    (offsetof(daffi_plugin_descriptor, libevent_version) + sizeof(uint32_t))

/* A callback entry as ABI 1.0 defined it: the table's stride of a 1.0 plugin, and the
 * least a later one may declare. */
#define DFD_CB_SIZE_1_0 (offsetof(daffi_callback_def, doc) + sizeof(const char *))

/* Callback flags this host understands. */
#define DFD_CB_KNOWN_FLAGS (DAFFI_CB_BLOCKING | DAFFI_CB_STREAM)

/* A callback name is at most this long (a method name on the wire). */
#define DFD_CB_NAME_MAX 255

/* A table longer than this is taken as a missing terminator rather than read on. */
#define DFD_CB_MAX 1024

/* The reserved prefix of control methods. */
#define DFD_RESERVED_PREFIX "daffi."

/* Appends "FILE: reason" to errs, the reason formatted printf-style. The message is
 * built whole first so dfd_errors_add receives one plain string. */
static void load_error(dfd_errors *errs, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void load_error(dfd_errors *errs, const char *file, const char *fmt, ...)
{
    char reason[768];
    va_list ap;

    if (errs == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    dfd_errors_add(errs, "%s: %s", file ? file : "(no path)", reason);
}

/* Releases everything a generation holds, in the reverse order of acquisition: state
 * (fini, if init succeeded and run_fini), mapping, private copy, lock (if lock_ready),
 * memory. Accepts a partially built generation: unset fields are NULL/0. */
static void plugin_discard(dfd_plugin *p, int run_fini, int lock_ready)
{
    if (run_fini && p->initialised && p->desc->fini != NULL)
        p->desc->fini(p->state);
    p->initialised = 0;
    p->state = NULL;
    p->desc = NULL;
    if (p->dl != NULL)
        dlclose(p->dl);
    p->dl = NULL;
    if (p->private_path != NULL)
        unlink(p->private_path);
    if (lock_ready)
        pthread_mutex_destroy(&p->lock);
    for (size_t i = 0; i < p->nconfig; i++) {
        free(p->config[i].key);
        free(p->config[i].value);
    }
    free(p->config);
    free(p->callbacks);
    free(p->private_path);
    free(p->ini);
    free(p->file);
    free(p->name);
    free(p);
}

/* Opens path for reading and checks that it is a regular file starting with the ELF
 * magic (and, with confine_dir, that it lies under that directory). Returns the
 * open descriptor (the caller closes it), or -1 with the reason appended to errs.
 * Copying from this same descriptor means the bytes checked are the bytes copied, even
 * if the file is replaced meanwhile. */
static int open_elf(const char *path, const char *confine_dir, dfd_errors *errs)
{
    char real[PATH_MAX];
    struct stat st;
    unsigned char magic[4];
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        load_error(errs, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    /* the file actually opened: a symlink swapped in after the check changes nothing */
    if (confine_dir != NULL && dfd_fd_within(fd, confine_dir, real, sizeof(real)) != 1) {
        load_error(errs, path, "the file opened is %s, not under plugin_dir %s ([server] "
                   "plugin_paths = strict)", real, confine_dir);
        close(fd);
        return -1;
    }
    if (fstat(fd, &st) == -1) {
        load_error(errs, path, "cannot stat: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        load_error(errs, path, "not a regular file");
        close(fd);
        return -1;
    }
    do {
        n = pread(fd, magic, sizeof(magic), 0);
    } while (n == -1 && errno == EINTR);
    if (n == -1) {
        load_error(errs, path, "cannot read: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if ((size_t)n < sizeof(magic) || memcmp(magic, "\177ELF", sizeof(magic)) != 0) {
        load_error(errs, path, "not an ELF shared object");
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes all of buf to fd, retrying short writes and EINTR. Returns 0 or -1 (errno). */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copies the open file src (read from offset 0) to a new private file in dir named
 * "NAME.gen<N>.<random>.so", created exclusively with mode 0600. Returns the new path
 * (owned by the caller, who unlinks and frees it), or NULL with the reason in errs and
 * no file left behind. */
static char *copy_private(int src, const char *dir, const char *name, unsigned generation,
                          const char *file, dfd_errors *errs)
{
    char safe[65];
    char buf[65536];
    char *path;
    off_t off = 0;
    size_t i;
    int fd;

    /* The configured name is validated by the config reader, but the file name must
     * never leave dir whatever it holds. */
    for (i = 0; name[i] != '\0' && i < sizeof(safe) - 1; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '-' || (c == '.' && i > 0);
        safe[i] = ok ? c : '_';
    }
    safe[i] = '\0';

    if (asprintf(&path, "%s/%s.gen%u.XXXXXX.so", dir, safe, generation) == -1) {
        load_error(errs, file, "out of memory");
        return NULL;
    }
    /* mkstemps: O_EXCL with a random part, mode 0600 */
    fd = mkstemps(path, 3);
    if (fd == -1) {
        load_error(errs, file, "cannot create a private copy in %s: %s", dir,
                   strerror(errno));
        free(path);
        return NULL;
    }
    for (;;) {
        ssize_t n = pread(src, buf, sizeof(buf), off);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            load_error(errs, file, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (write_all(fd, buf, (size_t)n) == -1) {
            load_error(errs, file, "cannot write private copy %s: %s", path,
                       strerror(errno));
            goto fail;
        }
        off += n;
    }
    if (close(fd) == -1) {
        fd = -1;
        load_error(errs, file, "cannot write private copy %s: %s", path, strerror(errno));
        goto fail;
    }
    return path;

fail:
    if (fd != -1)
        close(fd);
    unlink(path);
    free(path);
    return NULL;
}

/* Checks one callback name: non-empty, at most DFD_CB_NAME_MAX bytes of printable
 * ASCII without spaces, not under the reserved prefix. Returns 0, or -1 with the
 * reason in errs; index is the callback's 0-based position, for names that cannot be
 * printed. */
static int check_callback_name(const char *name, size_t index, const char *file,
                               dfd_errors *errs)
{
    size_t len;

    if (name[0] == '\0') {
        load_error(errs, file, "callback #%zu has an empty name", index);
        return -1;
    }
    len = strnlen(name, DFD_CB_NAME_MAX + 1);
    if (len > DFD_CB_NAME_MAX) {
        load_error(errs, file, "callback #%zu has a name longer than %d bytes", index,
                   DFD_CB_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c > 0x7e) {
            load_error(errs, file,
                       "callback #%zu has byte 0x%02x at offset %zu in its name "
                       "(names are printable ASCII without spaces)", index, c, i);
            return -1;
        }
    }
    if (strncmp(name, DFD_RESERVED_PREFIX, strlen(DFD_RESERVED_PREFIX)) == 0) {
        load_error(errs, file, "callback '%s' uses the reserved prefix %s", name,
                   DFD_RESERVED_PREFIX);
        return -1;
    }
    return 0;
}

/* Checks the library versions an ABI 1.1+ descriptor records against the ones this
 * process runs: the same msgpack-c major (msgpack_object's layout is the plugin's
 * interface) and the same libevent major.minor (each is another library soname).
 * Returns 0, or -1 with a message naming both versions in errs. */
static int check_library_versions(const daffi_plugin_descriptor *d, const char *file,
                                  dfd_errors *errs)
{
    uint32_t mp = DAFFI_VERSION_CODE(msgpack_version_major(), msgpack_version_minor(),
                                     msgpack_version_revision());
    uint32_t ev = event_get_version_number() >> 8;
    uint32_t pm = d->msgpack_version, pe = d->libevent_version;

    if (pm >> 16 != mp >> 16) {
        load_error(errs, file, "built against msgpack-c %u.%u.%u, daffid runs msgpack-c "
                   "%u.%u.%u: another major version (rebuild the plugin)", pm >> 16,
                   (pm >> 8) & 0xff, pm & 0xff, mp >> 16, (mp >> 8) & 0xff, mp & 0xff);
        return -1;
    }
    if (pe >> 8 != ev >> 8) {
        load_error(errs, file, "built against libevent %u.%u.%u, daffid runs libevent "
                   "%u.%u.%u: another major.minor version (rebuild the plugin)", pe >> 16,
                   (pe >> 8) & 0xff, pe & 0xff, ev >> 16, (ev >> 8) & 0xff, ev & 0xff);
        return -1;
    }
    return 0;
}

/* Returns entry i of the descriptor's callback table, whose entries are stride bytes
 * apart (the plugin's sizeof(daffi_callback_def), which a later minor may enlarge). */
static const daffi_callback_def *callback_at(const daffi_plugin_descriptor *d, size_t stride,
                                             size_t i)
{
    return (const daffi_callback_def *)(const void *)((const char *)d->callbacks + i * stride);
}

/* Checks the descriptor of p (p->desc set) and fills p->callbacks. Returns 0, or -1
 * with the first problem in errs. The ABI fields are checked before anything else is
 * read, since a descriptor of another major may have another layout. */
static int check_descriptor(dfd_plugin *p, dfd_errors *errs)
{
    const daffi_plugin_descriptor *d = p->desc;
    const char *file = p->file;
    size_t n, stride = DFD_CB_SIZE_1_0;

    if (d->abi_major != DAFFI_ABI_MAJOR) {
        load_error(errs, file, "ABI major %u, daffid speaks %u", (unsigned)d->abi_major,
                   DAFFI_ABI_MAJOR);
        return -1;
    }
    if (d->abi_minor > DAFFI_ABI_MINOR) {
        load_error(errs, file, "built for ABI %u.%u, daffid supports up to %u.%u",
                   (unsigned)d->abi_major, (unsigned)d->abi_minor, DAFFI_ABI_MAJOR,
                   DAFFI_ABI_MINOR);
        return -1;
    }
    if (d->size < DFD_DESC_SIZE_1_0) {
        load_error(errs, file, "descriptor size %u is smaller than ABI %u.0's %zu bytes",
                   (unsigned)d->size, DAFFI_ABI_MAJOR, (size_t)DFD_DESC_SIZE_1_0);
        return -1;
    }
    if (d->abi_minor >= 1) {
        if (d->size < DFD_DESC_SIZE_1_1) {
            load_error(errs, file, "descriptor size %u is smaller than ABI %u.1's %zu bytes",
                       (unsigned)d->size, DAFFI_ABI_MAJOR, (size_t)DFD_DESC_SIZE_1_1);
            return -1;
        }
        stride = d->callback_size;
        if (stride < DFD_CB_SIZE_1_0 || stride % _Alignof(daffi_callback_def) != 0) {
            load_error(errs, file, "callback_size %u: a callback entry takes at least %zu "
                       "bytes, in steps of %zu", (unsigned)stride, (size_t)DFD_CB_SIZE_1_0,
                       (size_t)_Alignof(daffi_callback_def));
            return -1;
        }
        if (check_library_versions(d, file, errs) == -1)
            return -1;
    }
    if (d->name == NULL) {
        load_error(errs, file, "descriptor has no name");
        return -1;
    }
    if (d->version == NULL) {
        load_error(errs, file, "descriptor has no version");
        return -1;
    }
    if (d->callbacks == NULL) {
        load_error(errs, file, "descriptor has no callback table");
        return -1;
    }
    for (n = 0; n <= DFD_CB_MAX && callback_at(d, stride, n)->name != NULL; n++)
        ;
    if (n == 0) {
        load_error(errs, file, "descriptor declares no callbacks");
        return -1;
    }
    if (n > DFD_CB_MAX) {
        load_error(errs, file, "more than %d callbacks (is the table's NULL terminator "
                   "missing?)", DFD_CB_MAX);
        return -1;
    }

    p->callbacks = calloc(n, sizeof(*p->callbacks));
    if (p->callbacks == NULL) {
        load_error(errs, file, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const daffi_callback_def *def = callback_at(d, stride, i);

        if (check_callback_name(def->name, i, file, errs) == -1)
            return -1;
        if (def->fn == NULL) {
            load_error(errs, file, "callback '%s' has no handler", def->name);
            return -1;
        }
        if ((def->flags & ~DFD_CB_KNOWN_FLAGS) != 0) {
            load_error(errs, file, "callback '%s' has unknown flags 0x%x", def->name,
                       def->flags & ~DFD_CB_KNOWN_FLAGS);
            return -1;
        }
        if ((def->flags & DAFFI_CB_STREAM) && (def->flags & DAFFI_CB_BLOCKING)) {
            load_error(errs, file, "callback '%s' is both a stream handler and blocking "
                       "(stream steps run on the loop)", def->name);
            return -1;
        }
        /* tables are small (<= DFD_CB_MAX) and checked once per load */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->callbacks[j].name, def->name) == 0) {
                load_error(errs, file, "duplicate callback '%s'", def->name);
                return -1;
            }
        }
        p->callbacks[i].name = def->name;
        p->callbacks[i].fn = def->fn;
        p->callbacks[i].flags = def->flags;
        p->callbacks[i].plugin = p;
        p->ncallbacks = i + 1;
    }
    return 0;
}

/* Copies the [config] pairs of pc into p. Returns 0, or -1 (out of memory) with the
 * reason in errs; what was copied is freed by plugin_discard(). */
static int copy_config(dfd_plugin *p, const dfd_plugin_conf *pc, dfd_errors *errs)
{
    if (pc->nconfig == 0)
        return 0;
    p->config = calloc(pc->nconfig, sizeof(*p->config));
    if (p->config == NULL) {
        load_error(errs, p->file, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < pc->nconfig; i++) {
        p->config[i].key = strdup(pc->config[i].key ? pc->config[i].key : "");
        p->config[i].value = strdup(pc->config[i].value ? pc->config[i].value : "");
        p->nconfig = i + 1;
        if (p->config[i].key == NULL || p->config[i].value == NULL) {
            load_error(errs, p->file, "out of memory");
            return -1;
        }
    }
    return 0;
}


/* Checks that the ELF header, the program headers and the file bytes of every segment
 * of the private copy at path lie inside the file. dlopen maps segments as the headers
 * say, and touching a page past the end of a truncated file is SIGBUS for the whole
 * process. Returns 0, or -1 with the reason (naming file) in errs. */
static int check_elf_layout(const char *path, const char *file, dfd_errors *errs)
{
    ElfW(Ehdr) eh;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1;

    if (fd == -1) {
        load_error(errs, file, "cannot open private copy %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == -1 || pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh)) {
        load_error(errs, file, "truncated: no complete ELF header");
        goto out;
    }
    if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32)) {
        load_error(errs, file, "not a %zu-bit ELF object", sizeof(void *) * 8);
        goto out;
    }
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) ||
        (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)) > (uint64_t)st.st_size) {
        load_error(errs, file, "truncated or corrupt: program headers past the end of the "
                   "file (%lld bytes)", (long long)st.st_size);
        goto out;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph)) {
            load_error(errs, file, "cannot read program header %u", i);
            goto out;
        }
        if (ph.p_filesz > 0 && (uint64_t)ph.p_offset + ph.p_filesz > (uint64_t)st.st_size) {
            load_error(errs, file, "truncated: segment %u ends at byte %llu of a %lld-byte file",
                       i, (unsigned long long)(ph.p_offset + ph.p_filesz), (long long)st.st_size);
            goto out;
        }
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

/* See plugin.h. */
int dfd_plugin_load(const dfd_plugin_conf *pc, const char *private_dir,
                    unsigned generation, dfd_plugin **out, dfd_errors *errs)
{
    dfd_plugin *p;
    void *sym;
    int fd;
    int rc;

    if (pc->path == NULL || pc->name == NULL) {
        load_error(errs, pc->path, "plugin has no %s", pc->name == NULL ? "name" : "path");
        return -1;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        load_error(errs, pc->path, "out of memory");
        return -1;
    }
    p->name = strdup(pc->name);
    p->file = strdup(pc->path);
    p->ini = strdup(pc->origin.file ? pc->origin.file : "");
    if (p->name == NULL || p->file == NULL || p->ini == NULL) {
        load_error(errs, pc->path, "out of memory");
        plugin_discard(p, 0, 0);
        return -1;
    }
    p->generation = generation;
    p->concurrency = pc->concurrency;
    p->queue = pc->queue;
    p->timeout_ms = pc->timeout_ms;
    p->host.plugin = p;
    atomic_init(&p->refs, 1);

    fd = open_elf(p->file, pc->confine_dir, errs);
    if (fd == -1) {
        plugin_discard(p, 0, 0);
        return -1;
    }
    p->private_path = copy_private(fd, private_dir, p->name, generation, p->file, errs);
    close(fd);
    if (p->private_path == NULL) {
        plugin_discard(p, 0, 0);
        return -1;
    }

    if (check_elf_layout(p->private_path, p->file, errs) == -1) {
        plugin_discard(p, 0, 0);
        return -1;
    }
    p->dl = dlopen(p->private_path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        load_error(errs, p->file, "dlopen failed: %s", dlerror());
        plugin_discard(p, 0, 0);
        return -1;
    }
    /* dlsym on the handle searches this object and its dependencies only, so a
     * descriptor elsewhere in the process is never taken for this plugin's. */
    dlerror();
    sym = dlsym(p->dl, DAFFI_PLUGIN_SYMBOL);
    if (sym == NULL) {
        load_error(errs, p->file, "no descriptor symbol '%s'", DAFFI_PLUGIN_SYMBOL);
        plugin_discard(p, 0, 0);
        return -1;
    }
    p->desc = sym;

    if (check_descriptor(p, errs) == -1 || copy_config(p, pc, errs) == -1) {
        plugin_discard(p, 0, 0);
        return -1;
    }

    rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0) {
        load_error(errs, p->file, "cannot create lock: %s", strerror(rc));
        plugin_discard(p, 0, 0);
        return -1;
    }

    if (p->desc->init != NULL) {
        p->host.error[0] = '\0';
        if (p->desc->init(&p->host, &p->state) != 0) {
            load_error(errs, p->file, "init failed: %s",
                       p->host.error[0] ? p->host.error : "no reason given");
            /* a failing init releases what it made itself: no fini */
            plugin_discard(p, 0, 1);
            return -1;
        }
    }
    p->initialised = 1;
    *out = p;
    return 0;
}

/* See plugin.h. Relaxed: taking a reference needs one already held by the caller. */
void dfd_plugin_retain(dfd_plugin *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

/* See plugin.h. acq_rel so that every write of every former holder happens before
 * fini and the free, on whichever thread drops the last reference. */
void dfd_plugin_release(dfd_plugin *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    plugin_discard(p, 1, 1);
}

/* ---- SDK: the instance's view of its configuration ---------------------------- */

/* Returns the value of key in the instance's [config] copy, or NULL. When a key
 * appears twice the later one wins, as later settings do everywhere in daffid. The
 * string belongs to the generation. */
const char *daffi_config_get(const daffi_host *host, const char *key)
{
    const dfd_plugin *p;

    if (host == NULL || host->plugin == NULL || key == NULL)
        return NULL;
    p = host->plugin;
    for (size_t i = p->nconfig; i > 0; i--)
        if (strcmp(p->config[i - 1].key, key) == 0)
            return p->config[i - 1].value;
    return NULL;
}

/* Returns the number of [config] entries of the instance. */
size_t daffi_config_count(const daffi_host *host)
{
    if (host == NULL || host->plugin == NULL)
        return 0;
    return host->plugin->nconfig;
}

/* Returns the i-th [config] key in file order, NULL past the end; owned by the
 * generation. */
const char *daffi_config_key(const daffi_host *host, size_t i)
{
    if (host == NULL || host->plugin == NULL || i >= host->plugin->nconfig)
        return NULL;
    return host->plugin->config[i].key;
}

/* Returns the i-th [config] value in file order, NULL past the end; owned by the
 * generation. */
const char *daffi_config_value(const daffi_host *host, size_t i)
{
    if (host == NULL || host->plugin == NULL || i >= host->plugin->nconfig)
        return NULL;
    return host->plugin->config[i].value;
}

/* Records why init failed, truncated to the host's buffer; dfd_plugin_load reports
 * it as "FILE: init failed: <text>". */
void daffi_host_error(daffi_host *host, const char *fmt, ...)
{
    va_list ap;

    if (host == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(host->error, sizeof(host->error), fmt, ap);
    va_end(ap);
}
