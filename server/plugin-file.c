/*
 * plugin-file.c - the file side of loading a plugin (see plugin-int.h): the .so is
 * opened once and checked (a regular ELF file, under plugin_dir with plugin_paths =
 * strict), copied from that same descriptor to a private file, and the copy's ELF
 * layout is checked before anything maps it. Nothing here logs.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"
#include "plugin-int.h"

/* Appends "FILE: reason" to errs, the reason formatted printf-style. The message is
 * built whole first so dfd_errors_add receives one plain string. */
void dfd_plugin_error(dfd_errors *errs, const char *file, const char *fmt, ...)
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
        dfd_plugin_error(errs, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    /* the file actually opened: a symlink swapped in after the check changes nothing */
    if (confine_dir != NULL && dfd_fd_within(fd, confine_dir, real, sizeof(real)) != 1) {
        dfd_plugin_error(errs, path, "the file opened is %s, not under plugin_dir %s ([server] "
                   "plugin_paths = strict)", real, confine_dir);
        close(fd);
        return -1;
    }
    if (fstat(fd, &st) == -1) {
        dfd_plugin_error(errs, path, "cannot stat: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        dfd_plugin_error(errs, path, "not a regular file");
        close(fd);
        return -1;
    }
    do {
        n = pread(fd, magic, sizeof(magic), 0);
    } while (n == -1 && errno == EINTR);
    if (n == -1) {
        dfd_plugin_error(errs, path, "cannot read: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if ((size_t)n < sizeof(magic) || memcmp(magic, "\177ELF", sizeof(magic)) != 0) {
        dfd_plugin_error(errs, path, "not an ELF shared object");
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
        dfd_plugin_error(errs, file, "out of memory");
        return NULL;
    }
    /* mkstemps: O_EXCL with a random part, mode 0600 */
    fd = mkstemps(path, 3);
    if (fd == -1) {
        dfd_plugin_error(errs, file, "cannot create a private copy in %s: %s", dir,
                   strerror(errno));
        free(path);
        return NULL;
    }
    for (;;) {
        ssize_t n = pread(src, buf, sizeof(buf), off);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            dfd_plugin_error(errs, file, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (write_all(fd, buf, (size_t)n) == -1) {
            dfd_plugin_error(errs, file, "cannot write private copy %s: %s", path,
                       strerror(errno));
            goto fail;
        }
        off += n;
    }
    if (close(fd) == -1) {
        fd = -1;
        dfd_plugin_error(errs, file, "cannot write private copy %s: %s", path, strerror(errno));
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
        dfd_plugin_error(errs, file, "cannot open private copy %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == -1 || pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh)) {
        dfd_plugin_error(errs, file, "truncated: no complete ELF header");
        goto out;
    }
    if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32)) {
        dfd_plugin_error(errs, file, "not a %zu-bit ELF object", sizeof(void *) * 8);
        goto out;
    }
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) ||
        (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)) > (uint64_t)st.st_size) {
        dfd_plugin_error(errs, file, "truncated or corrupt: program headers past the end of the "
                   "file (%lld bytes)", (long long)st.st_size);
        goto out;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph)) {
            dfd_plugin_error(errs, file, "cannot read program header %u", i);
            goto out;
        }
        if (ph.p_filesz > 0 && (uint64_t)ph.p_offset + ph.p_filesz > (uint64_t)st.st_size) {
            dfd_plugin_error(errs, file, "truncated: segment %u ends at byte %llu of a %lld-byte file",
                       i, (unsigned long long)(ph.p_offset + ph.p_filesz), (long long)st.st_size);
            goto out;
        }
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

/* See plugin-int.h. */
char *dfd_plugin_copy_file(const dfd_plugin_conf *pc, const char *private_dir,
                           unsigned generation, dfd_errors *errs)
{
    int fd = open_elf(pc->path, pc->confine_dir, errs);
    char *path;

    if (fd == -1)
        return NULL;
    path = copy_private(fd, private_dir, pc->name, generation, pc->path, errs);
    close(fd);
    if (path != NULL && check_elf_layout(path, pc->path, errs) == -1) {
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}
