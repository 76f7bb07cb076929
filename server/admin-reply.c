/*
 * admin-reply.c - the building blocks of the admin socket's JSON replies: the ok
 * envelope, times, counters, strings that came from outside, error lists, and the
 * server's state word (see admin.h for the protocol).
 */
#include <stdatomic.h>
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

/* A string that may come from outside (file names, plugin versions): null when it is
 * not valid UTF-8 rather than a failed reply. */
json_t *admin_str(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
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
