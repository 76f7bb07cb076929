/*
 * config-value.c - the value parsers of the configuration (sizes, durations, booleans,
 * integers) and the role names. Pure functions of their text: the loader, the tests
 * and the admin socket share them.
 */
#include <stdint.h>
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

/* "512", "64K", "64KiB", "64k", "32M", "1G": binary units. Returns 0 and sets *out,
 * or -1 (empty, sign, fraction, unknown unit, overflow of size_t). */
int dfd_parse_size(const char *text, size_t *out)
{
    static const struct { const char *unit; unsigned shift; } units[] = {
        { "", 0 }, { "K", 10 }, { "KiB", 10 }, { "k", 10 }, { "M", 20 }, { "MiB", 20 },
        { "m", 20 }, { "G", 30 }, { "GiB", 30 }, { "g", 30 },
    };
    const char *end;
    uint64_t n;

    if (text == NULL || cfg_digits(text, &n, &end) == -1)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        if (n > (uint64_t)SIZE_MAX >> units[i].shift)
            return -1;
        *out = (size_t)(n << units[i].shift);
        return 0;
    }
    return -1;
}

/* "250ms", "5s", "2m", "1h", "100" (ms). Returns 0 and sets *out in milliseconds, or -1
 * (empty, sign, fraction, unknown unit, overflow). */
int dfd_parse_duration_ms(const char *text, uint64_t *out)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
    };
    const char *end;
    uint64_t n;

    if (text == NULL || cfg_digits(text, &n, &end) == -1)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        if (n > UINT64_MAX / units[i].ms)
            return -1;
        *out = n * units[i].ms;
        return 0;
    }
    return -1;
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
