/*
 * config-value.c - the value parsers of the configuration (sizes, durations, booleans,
 * integers) and the role names. Pure functions of their text: the loader, the tests
 * and the admin socket share them.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"

/* Reads one or more decimal digits from s into *out, *end after them. Returns 0, or -1
 * when there is no digit or the number passes UINT64_MAX. A sign is not a digit. */
static int cfg_digits(const char *s, uint64_t *out, const char **end)
{
    uint64_t n = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    if (p == s)
        return -1;
    *out = n;
    *end = p;
    return 0;
}

/* A unit suffix and what one of it is worth. */
typedef struct cfg_unit {
    const char *unit;
    uint64_t scale;
} cfg_unit;

/* Digits followed by exactly one of units (n of them). Returns 0 and sets *out to
 * digits * scale, or -1 (no digits, sign, fraction, unknown unit, above max). */
static int cfg_scaled(const char *text, const cfg_unit *units, size_t n, uint64_t max,
                      uint64_t *out)
{
    const char *end;
    uint64_t v;

    if (text == NULL || cfg_digits(text, &v, &end) == -1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        if (v > max / units[i].scale)
            return -1;
        *out = v * units[i].scale;
        return 0;
    }
    return -1;
}

/* "512", "64K", "64KiB", "64k", "32M", "1G": binary units. Returns 0 and sets *out,
 * or -1 (empty, sign, fraction, unknown unit, overflow of size_t). */
int dfd_parse_size(const char *text, size_t *out)
{
    static const cfg_unit units[] = {
        { "", 1 }, { "K", 1u << 10 }, { "KiB", 1u << 10 }, { "k", 1u << 10 },
        { "M", 1u << 20 }, { "MiB", 1u << 20 }, { "m", 1u << 20 },
        { "G", 1u << 30 }, { "GiB", 1u << 30 }, { "g", 1u << 30 },
    };
    uint64_t v;

    if (cfg_scaled(text, units, sizeof(units) / sizeof(units[0]), SIZE_MAX, &v) == -1)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* "250ms", "5s", "2m", "1h", "100" (ms). Returns 0 and sets *out in milliseconds, or -1
 * (empty, sign, fraction, unknown unit, overflow). */
int dfd_parse_duration_ms(const char *text, uint64_t *out)
{
    static const cfg_unit units[] = {
        { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
    };

    return cfg_scaled(text, units, sizeof(units) / sizeof(units[0]), UINT64_MAX, out);
}

/* yes/no, true/false, on/off, 1/0, any case. Returns 0 and sets *out to 1 or 0, or -1. */
int dfd_parse_bool(const char *text, int *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    if (text == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Decimal digits only, at most max. Returns 0 and sets *out, or -1. */
int dfd_parse_uint(const char *text, unsigned long max, unsigned long *out)
{
    const char *end;
    uint64_t n;

    if (text == NULL || cfg_digits(text, &n, &end) == -1 || *end != '\0' || n > max)
        return -1;
    *out = (unsigned long)n;
    return 0;
}

/* Returns the static name of a role ("service", "router", "worker", or "unknown"). */
const char *dfd_role_name(dfd_role role)
{
    switch (role) {
    case DFD_ROLE_SERVICE: return "service";
    case DFD_ROLE_ROUTER: return "router";
    case DFD_ROLE_WORKER: return "worker";
    }
    return "unknown";
}

const char *dfd_addr_format(const daffi_addr *a, char *buf, size_t n)
{
    int v6 = strchr(a->host, ':') != NULL;

    if (a->kind == DAFFI_ADDR_UNIX)
        snprintf(buf, n, "unix://%s", a->path);
    else
        snprintf(buf, n, "%s://%s%s%s:%d", a->tls ? "tls" : "tcp", v6 ? "[" : "", a->host,
                 v6 ? "]" : "", a->port);
    return buf;
}

int dfd_addr_same(const daffi_addr *a, const daffi_addr *b)
{
    /* daffi_addr_parse zeroes what a kind does not use: every field compares */
    return a->kind == b->kind && a->tls == b->tls && a->port == b->port &&
           strcmp(a->host, b->host) == 0 && strcmp(a->path, b->path) == 0;
}

int dfd_listen_same(const dfd_config *a, const dfd_config *b)
{
    if (a->nlisten != b->nlisten)
        return 0;
    for (size_t i = 0; i < a->nlisten; i++)
        if (!dfd_addr_same(&a->listen[i], &b->listen[i]))
            return 0;
    return 1;
}
