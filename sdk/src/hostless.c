/*
 * hostless.c - the host functions of <daffi/plugin.h> (configuration, logging, init
 * errors) for a program that is not daffid: a client exposing handlers written for a
 * plugin (daffi_client_expose) links and runs them. There is no plugin instance
 * (daffi_call_host() is NULL), so the [config] readers find nothing, daffi_log()
 * writes to stderr and daffi_host_error() has nobody to tell.
 *
 * Each is a weak definition: daffid defines the real ones (server/plugin.c,
 * server/log.c) and, linking libdaffi into itself, gets those. A plugin loaded by
 * daffid resolves these names against daffid either way.
 */
#include <stdarg.h>
#include <stdio.h>

#include <daffi/plugin.h>

#define DAFFI_WEAK __attribute__((weak))

/* See plugin.h: no [config] outside daffid. */
DAFFI_WEAK const char *daffi_config_get(const daffi_host *host, const char *key)
{
    (void)host;
    (void)key;
    return NULL;
}

DAFFI_WEAK size_t daffi_config_count(const daffi_host *host)
{
    (void)host;
    return 0;
}

DAFFI_WEAK const char *daffi_config_key(const daffi_host *host, size_t i)
{
    (void)host;
    (void)i;
    return NULL;
}

DAFFI_WEAK const char *daffi_config_value(const daffi_host *host, size_t i)
{
    (void)host;
    (void)i;
    return NULL;
}

/* See plugin.h: init runs only in daffid, so there is no failure to record. */
DAFFI_WEAK void daffi_host_error(daffi_host *host, const char *fmt, ...)
{
    (void)host;
    (void)fmt;
}

/* See plugin.h: one line "daffi: LEVEL: message" on stderr, info and above (a client
 * program has no log level of daffid's to follow; debug lines are dropped). */
DAFFI_WEAK void daffi_log(const daffi_host *host, daffi_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1024];
    va_list ap;

    (void)host;
    if (level <= DAFFI_LOG_DEBUG || level > DAFFI_LOG_ERROR)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "daffi: %s: %s\n", names[level], line);
}
