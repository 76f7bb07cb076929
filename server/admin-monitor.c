/*
 * admin-monitor.c - the admin `monitor` command: the live view of calls, as Redis's
 * MONITOR. After {"status":"ok","command":"monitor"} the client receives one JSON line
 * per call a loop finishes (monitor.h records it), until it disconnects:
 *
 *   {"event":"call","ts":"2026-12-02T22:40:01.123456Z","loop":0,"peer":"127.0.0.1:5000",
 *    "callback":"add","plugin":"calc","kind":"request","params":"[2, 3]",
 *    "outcome":"ok","duration_us":12}
 *
 * A watcher that reads slower than calls finish is never allowed to hold memory
 * without bound: past ADMIN_MONITOR_MAX_OUT bytes of unread output its lines are
 * skipped and counted, and once it has caught up it reads
 * {"event":"dropped","calls":N} first (N also counts what the feed itself dropped).
 * The client may send other commands meanwhile; their replies come between the lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "admin-int.h"
#include "log.h"
#include "monitor.h"
#include "server.h"
#include "stats.h"

/* Unread output a monitoring client may have before its lines are skipped. */
#define ADMIN_MONITOR_MAX_OUT (4u * 1024 * 1024)

void admin_cmd_monitor(admin_client *c, const admin_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    dfd_server *srv = c->adm->srv;
    if (!c->monitoring) {
        c->monitoring = 1;
        dfd_monitor_watchers_add(&srv->monitor, 1);
        /* quiet by design from now on: no idle timeout */
        bufferevent_set_timeouts(c->bev, NULL, NULL);
        dfd_info("admin.monitor", "uid=%ld pid=%ld state=on", c->uid, c->pid);
    }
    json_t *r = admin_ok(cmd->name);
    json_object_set_new(r, "detail", json_string("a line per finished call follows; "
                                                 "disconnect to stop"));
    admin_send(c, r);
}

void admin_monitor_leave(admin_client *c)
{
    if (!c->monitoring)
        return;
    c->monitoring = 0;
    dfd_monitor_watchers_add(&c->adm->srv->monitor, -1);
    dfd_info("admin.monitor", "uid=%ld pid=%ld state=off missed=%llu", c->uid, c->pid,
             (unsigned long long)c->monitor_missed);
}

/* Appends rec as one JSON line to out. Returns 0 or -1 (no memory). */
static int admin_monitor_line(struct evbuffer *out, const dfd_monitor_rec *rec)
{
    struct tm tm;
    time_t sec = (time_t)(rec->wall_ns / 1000000000u);
    char ts[48];
    gmtime_r(&sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%06uZ", (unsigned)(rec->wall_ns % 1000000000u / 1000u));

    json_t *o = json_object();
    if (o == NULL)
        return -1;
    json_object_set_new(o, "event", json_string("call"));
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "loop", json_integer(rec->loop));
    json_object_set_new(o, "peer", admin_str(rec->peer));
    /* the callback's name and params are what the caller sent: escaped */
    json_object_set_new(o, "callback", admin_str(rec->callback));
    json_object_set_new(o, "plugin", rec->plugin[0] ? admin_str(rec->plugin) : json_null());
    json_object_set_new(o, "kind", json_string(rec->notify ? "notify" : "request"));
    json_object_set_new(o, "params", admin_str(rec->params));
    json_object_set_new(o, "outcome", json_string(dfd_outcome_name(rec->outcome)));
    json_object_set_new(o, "duration_us", admin_uint(rec->duration_us));
    char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (text == NULL)
        return -1;
    int rc = evbuffer_add_printf(out, "%s\n", text) == -1 ? -1 : 0;
    free(text);
    return rc;
}

/* Sends c its "you missed N calls" line when it has caught up. Returns 1 when c may be
 * written to now. */
static int admin_monitor_ready(admin_client *c, struct evbuffer *out)
{
    if (evbuffer_get_length(out) >= ADMIN_MONITOR_MAX_OUT)
        return 0;
    if (c->monitor_missed > 0) {
        evbuffer_add_printf(out, "{\"event\":\"dropped\",\"calls\":%llu}\n",
                            (unsigned long long)c->monitor_missed);
        dfd_warn("admin.monitor_dropped", "uid=%ld pid=%ld calls=%llu", c->uid, c->pid,
                 (unsigned long long)c->monitor_missed);
        c->monitor_missed = 0;
    }
    return 1;
}

void admin_monitor_sink(void *arg, const dfd_monitor_rec *recs, unsigned n, uint64_t dropped)
{
    dfd_admin *adm = arg;
    for (admin_client *c = adm->clients; c != NULL; c = c->next) {
        if (!c->monitoring || c->closing)
            continue;
        struct evbuffer *out = bufferevent_get_output(c->bev);
        c->monitor_missed += dropped;
        unsigned i = 0;
        if (admin_monitor_ready(c, out))
            for (; i < n && evbuffer_get_length(out) < ADMIN_MONITOR_MAX_OUT; i++)
                if (admin_monitor_line(out, &recs[i]) == -1)
                    break;
        c->monitor_missed += n - i;
        if (n - i > 0)
            dfd_monitor_skipped(&adm->srv->monitor, n - i);
    }
}
