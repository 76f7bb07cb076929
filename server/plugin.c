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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "plugin-int.h"
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

/* Releases everything a generation holds, in the reverse order of acquisition: state
 * (fini, if init succeeded and run_fini), mapping, private copy, lock (if lock_ready),
 * memory. Accepts a partially built generation: unset fields are NULL/0. */
static void plugin_discard(dfd_plugin *p, int run_fini, int lock_ready)
{
    /* a generation served elsewhere (isolation = process) lets its owner stop it */
    if (p->fini_hook != NULL)
        p->fini_hook(p);
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

/* Checks one callback name: non-empty, at most DFD_CB_NAME_MAX bytes of printable
 * ASCII without spaces, not under the reserved prefix. Returns 0, or -1 with the
 * reason in errs; index is the callback's 0-based position, for names that cannot be
 * printed. */
static int check_callback_name(const char *name, size_t index, const char *file,
                               dfd_errors *errs)
{
    size_t len;

    if (name[0] == '\0') {
        dfd_plugin_error(errs, file, "callback #%zu has an empty name", index);
        return -1;
    }
    len = strnlen(name, DFD_CB_NAME_MAX + 1);
    if (len > DFD_CB_NAME_MAX) {
        dfd_plugin_error(errs, file, "callback #%zu has a name longer than %d bytes", index,
                   DFD_CB_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c > 0x7e) {
            dfd_plugin_error(errs, file,
                       "callback #%zu has byte 0x%02x at offset %zu in its name "
                       "(names are printable ASCII without spaces)", index, c, i);
            return -1;
        }
    }
    if (strncmp(name, DFD_RESERVED_PREFIX, strlen(DFD_RESERVED_PREFIX)) == 0) {
        dfd_plugin_error(errs, file, "callback '%s' uses the reserved prefix %s", name,
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
        dfd_plugin_error(errs, file, "built against msgpack-c %u.%u.%u, daffid runs msgpack-c "
                   "%u.%u.%u: another major version (rebuild the plugin)", pm >> 16,
                   (pm >> 8) & 0xff, pm & 0xff, mp >> 16, (mp >> 8) & 0xff, mp & 0xff);
        return -1;
    }
    if (pe >> 8 != ev >> 8) {
        dfd_plugin_error(errs, file, "built against libevent %u.%u.%u, daffid runs libevent "
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
        dfd_plugin_error(errs, file, "ABI major %u, daffid speaks %u", (unsigned)d->abi_major,
                   DAFFI_ABI_MAJOR);
        return -1;
    }
    if (d->abi_minor > DAFFI_ABI_MINOR) {
        dfd_plugin_error(errs, file, "built for ABI %u.%u, daffid supports up to %u.%u",
                   (unsigned)d->abi_major, (unsigned)d->abi_minor, DAFFI_ABI_MAJOR,
                   DAFFI_ABI_MINOR);
        return -1;
    }
    if (d->size < DFD_DESC_SIZE_1_0) {
        dfd_plugin_error(errs, file, "descriptor size %u is smaller than ABI %u.0's %zu bytes",
                   (unsigned)d->size, DAFFI_ABI_MAJOR, (size_t)DFD_DESC_SIZE_1_0);
        return -1;
    }
    if (d->abi_minor >= 1) {
        if (d->size < DFD_DESC_SIZE_1_1) {
            dfd_plugin_error(errs, file, "descriptor size %u is smaller than ABI %u.1's %zu bytes",
                       (unsigned)d->size, DAFFI_ABI_MAJOR, (size_t)DFD_DESC_SIZE_1_1);
            return -1;
        }
        stride = d->callback_size;
        if (stride < DFD_CB_SIZE_1_0 || stride % _Alignof(daffi_callback_def) != 0) {
            dfd_plugin_error(errs, file, "callback_size %u: a callback entry takes at least %zu "
                       "bytes, in steps of %zu", (unsigned)stride, (size_t)DFD_CB_SIZE_1_0,
                       (size_t)_Alignof(daffi_callback_def));
            return -1;
        }
        if (check_library_versions(d, file, errs) == -1)
            return -1;
    }
    if (d->name == NULL) {
        dfd_plugin_error(errs, file, "descriptor has no name");
        return -1;
    }
    if (d->version == NULL) {
        dfd_plugin_error(errs, file, "descriptor has no version");
        return -1;
    }
    if (d->callbacks == NULL) {
        dfd_plugin_error(errs, file, "descriptor has no callback table");
        return -1;
    }
    for (n = 0; n <= DFD_CB_MAX && callback_at(d, stride, n)->name != NULL; n++)
        ;
    if (n == 0) {
        dfd_plugin_error(errs, file, "descriptor declares no callbacks");
        return -1;
    }
    if (n > DFD_CB_MAX) {
        dfd_plugin_error(errs, file, "more than %d callbacks (is the table's NULL terminator "
                   "missing?)", DFD_CB_MAX);
        return -1;
    }

    p->callbacks = calloc(n, sizeof(*p->callbacks));
    if (p->callbacks == NULL) {
        dfd_plugin_error(errs, file, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const daffi_callback_def *def = callback_at(d, stride, i);

        if (check_callback_name(def->name, i, file, errs) == -1)
            return -1;
        if (def->fn == NULL) {
            dfd_plugin_error(errs, file, "callback '%s' has no handler", def->name);
            return -1;
        }
        if ((def->flags & ~DFD_CB_KNOWN_FLAGS) != 0) {
            dfd_plugin_error(errs, file, "callback '%s' has unknown flags 0x%x", def->name,
                       def->flags & ~DFD_CB_KNOWN_FLAGS);
            return -1;
        }
        if ((def->flags & DAFFI_CB_STREAM) && (def->flags & DAFFI_CB_BLOCKING)) {
            dfd_plugin_error(errs, file, "callback '%s' is both a stream handler and blocking "
                       "(stream steps run on the loop)", def->name);
            return -1;
        }
        /* tables are small (<= DFD_CB_MAX) and checked once per load */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->callbacks[j].name, def->name) == 0) {
                dfd_plugin_error(errs, file, "duplicate callback '%s'", def->name);
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
        dfd_plugin_error(errs, p->file, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < pc->nconfig; i++) {
        p->config[i].key = strdup(pc->config[i].key ? pc->config[i].key : "");
        p->config[i].value = strdup(pc->config[i].value ? pc->config[i].value : "");
        p->nconfig = i + 1;
        if (p->config[i].key == NULL || p->config[i].value == NULL) {
            dfd_plugin_error(errs, p->file, "out of memory");
            return -1;
        }
    }
    return 0;
}


/* A generation of pc with its identity and settings and nothing loaded yet: refs 1,
 * no copy, no mapping, no lock. Returns it, or NULL with the reason in errs. */
static dfd_plugin *plugin_new(const dfd_plugin_conf *pc, unsigned generation,
                              dfd_errors *errs)
{
    dfd_plugin *p;

    if (pc->path == NULL || pc->name == NULL) {
        dfd_plugin_error(errs, pc->path, "plugin has no %s",
                         pc->name == NULL ? "name" : "path");
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        dfd_plugin_error(errs, pc->path, "out of memory");
        return NULL;
    }
    p->name = strdup(pc->name);
    p->file = strdup(pc->path);
    p->ini = strdup(pc->origin.file ? pc->origin.file : "");
    if (p->name == NULL || p->file == NULL || p->ini == NULL) {
        dfd_plugin_error(errs, pc->path, "out of memory");
        plugin_discard(p, 0, 0);
        return NULL;
    }
    p->generation = generation;
    p->concurrency = pc->concurrency;
    p->queue = pc->queue;
    p->blocking_max = pc->blocking_max;
    p->timeout_ms = pc->timeout_ms;
    p->host.plugin = p;
    atomic_init(&p->refs, 1);
    return p;
}

/* Creates p's lock (the dispatch state). Returns 0, or -1 with the reason in errs. */
static int plugin_lock_init(dfd_plugin *p, dfd_errors *errs)
{
    int rc = pthread_mutex_init(&p->lock, NULL);

    if (rc != 0)
        dfd_plugin_error(errs, p->file, "cannot create lock: %s", strerror(rc));
    return rc == 0 ? 0 : -1;
}

/* Maps the .so at path into p: dlopen, the descriptor and its checks, [config], the
 * lock, init. Returns 0, or -1 with the reason in errs after discarding p (whatever
 * it held: a private copy is unlinked). */
static int plugin_map(dfd_plugin *p, const dfd_plugin_conf *pc, const char *path,
                      dfd_errors *errs)
{
    void *sym;

    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        dfd_plugin_error(errs, p->file, "dlopen failed: %s", dlerror());
        plugin_discard(p, 0, 0);
        return -1;
    }
    /* dlsym on the handle searches this object and its dependencies only, so a
     * descriptor elsewhere in the process is never taken for this plugin's. */
    dlerror();
    sym = dlsym(p->dl, DAFFI_PLUGIN_SYMBOL);
    if (sym == NULL) {
        dfd_plugin_error(errs, p->file, "no descriptor symbol '%s'", DAFFI_PLUGIN_SYMBOL);
        plugin_discard(p, 0, 0);
        return -1;
    }
    p->desc = sym;

    if (check_descriptor(p, errs) == -1 || copy_config(p, pc, errs) == -1 ||
        plugin_lock_init(p, errs) == -1) {
        plugin_discard(p, 0, 0);
        return -1;
    }
    if (p->desc->init != NULL) {
        p->host.error[0] = '\0';
        if (p->desc->init(&p->host, &p->state) != 0) {
            dfd_plugin_error(errs, p->file, "init failed: %s",
                             p->host.error[0] ? p->host.error : "no reason given");
            /* a failing init releases what it made itself: no fini */
            plugin_discard(p, 0, 1);
            return -1;
        }
    }
    p->initialised = 1;
    return 0;
}

/* plugin_new with the checked private copy of pc's file. NULL (reason in errs, no
 * copy left) when either fails. */
static dfd_plugin *plugin_new_copied(const dfd_plugin_conf *pc, const char *private_dir,
                                     unsigned generation, dfd_errors *errs)
{
    dfd_plugin *p = plugin_new(pc, generation, errs);

    if (p == NULL)
        return NULL;
    p->private_path = dfd_plugin_copy_file(pc, private_dir, generation, errs);
    if (p->private_path == NULL) {
        plugin_discard(p, 0, 0);
        return NULL;
    }
    return p;
}

/* See plugin.h. */
int dfd_plugin_load(const dfd_plugin_conf *pc, const char *private_dir,
                    unsigned generation, dfd_plugin **out, dfd_errors *errs)
{
    dfd_plugin *p = plugin_new_copied(pc, private_dir, generation, errs);

    if (p == NULL || plugin_map(p, pc, p->private_path, errs) == -1)
        return -1;
    *out = p;
    return 0;
}

/* See plugin.h. */
int dfd_plugin_open(const dfd_plugin_conf *pc, const char *path, unsigned generation,
                    dfd_plugin **out, dfd_errors *errs)
{
    dfd_plugin *p = plugin_new(pc, generation, errs);

    if (p == NULL || plugin_map(p, pc, path, errs) == -1)
        return -1;
    *out = p;
    return 0;
}

/* See plugin.h. */
int dfd_plugin_shell(const dfd_plugin_conf *pc, const char *private_dir,
                     unsigned generation, dfd_plugin **out, dfd_errors *errs)
{
    dfd_plugin *p = plugin_new_copied(pc, private_dir, generation, errs);

    if (p == NULL)
        return -1;
    if (plugin_lock_init(p, errs) == -1) {
        plugin_discard(p, 0, 0);
        return -1;
    }
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
