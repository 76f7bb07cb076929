/*
 * admin-reply.c - the building blocks of the admin socket's JSON replies: the ok
 * envelope, times, counters, strings that came from outside, error lists, and the
 * server's state word (see admin.h for the protocol).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin-int.h"
#include "server.h"

/* See admin-int.h (each function of this file is described there). */
json_t *admin_ok(const char *command)
{
    json_t *r = json_object();
    if (r == NULL)
        return NULL;
    json_object_set_new(r, "status", json_string("ok"));
    json_object_set_new(r, "command", json_string(command));
    return r;
}

/* A wall-clock time as "2024-05-01T12:00:00Z", or null for 0. New reference. */
json_t *admin_time(time_t t)
{
    struct tm tm;
    char buf[32];

    if (t == 0 || gmtime_r(&t, &tm) == NULL)
        return json_null();
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

/* Returns the length (1 to 4) of the printable UTF-8 character at s, or 0 when the
 * bytes there are not one: not UTF-8 (a stray or missing continuation byte, an overlong
 * form, a surrogate, past U+10FFFF), a control character (C0, DEL, C1) or an invisible
 * character that changes how the text around it reads (zero-width and direction marks,
 * line and paragraph separators, bidirectional embeddings, overrides and isolates,
 * word joiners, the byte order mark). */
static size_t admin_char_len(const unsigned char *s)
{
    unsigned char b = s[0];
    uint32_t cp;
    size_t n;

    if (b < 0x80)
        return b >= 0x20 && b < 0x7f ? 1 : 0;
    if (b >= 0xc2 && b <= 0xdf)
        n = 2, cp = b & 0x1fu;
    else if (b >= 0xe0 && b <= 0xef)
        n = 3, cp = b & 0x0fu;
    else if (b >= 0xf0 && b <= 0xf4)
        n = 4, cp = b & 0x07u;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0; /* also the NUL that ends a string cut short */
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0 || (cp >= 0x200b && cp <= 0x200f) ||
        (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
        (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff)
        return 0;
    return n;
}

long admin_unprintable_at(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; p[i] != '\0';) {
        size_t n = admin_char_len(p + i);
        if (n == 0)
            return (long)i;
        i += n;
    }
    return -1;
}

void admin_escape(const char *s, char *out, size_t size)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;

    for (size_t i = 0; p[i] != '\0';) {
        size_t n = admin_char_len(p + i);
        if (n == 0) {
            if (o + 4 >= size)
                break;
            snprintf(out + o, size - o, "\\x%02x", p[i]);
            o += 4;
            i++;
        } else {
            if (o + n >= size)
                break;
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
}

json_t *admin_str(const char *s)
{
    if (s == NULL)
        return json_null();
    if (admin_unprintable_at(s) == -1)
        return json_string(s);
    size_t size = 4 * strlen(s) + 1;
    char *text = malloc(size);
    json_t *v = NULL;
    if (text != NULL) {
        admin_escape(s, text, size);
        v = json_string(text);
        free(text);
    }
    return v ? v : json_null();
}

json_t *admin_uint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* "running", "draining", "drained" or "stopping". */
const char *admin_state(const dfd_admin *adm)
{
    if (atomic_load(&adm->srv->draining))
        return "stopping";
    if (adm->drain == ADMIN_DRAIN_RUNNING)
        return "draining";
    if (adm->drain == ADMIN_DRAIN_DONE)
        return "drained";
    return "running";
}

json_t *admin_errors(const dfd_errors *errs)
{
    json_t *a = json_array();
    for (size_t i = 0; i < errs->count; i++)
        json_array_append_new(a, admin_str(errs->msgs[i]));
    return a;
}
