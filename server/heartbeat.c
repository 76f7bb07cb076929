/*
 * heartbeat.c - pings and silence detection on tracked connections (see heartbeat.h).
 */
#include "heartbeat.h"
#include "log.h"
#include "server.h"

static void heartbeat_tick(dfd_loop *loop)
{
    const dfd_config *cfg = loop->srv->cfg;
    uint64_t now = dfd_now_ns();
    uint64_t limit = cfg->heartbeat_ms * cfg->heartbeat_misses * 1000000u;
    /* closing a silent peer only marks it dead (conn.h): the walk stays valid */
    for (dfd_conn *c = loop->conns; c != NULL; c = c->next) {
        if (c->dead || !c->track_rx)
            continue;
        if (now - c->last_rx_ns > limit) {
            dfd_warn("heartbeat.silent", "peer=%s member=%s silent_ms=%llu msg=\"dropping "
                     "a peer silent for %u heartbeats\"", c->peer,
                     c->ops->describe ? c->ops->describe(c) : "?",
                     (unsigned long long)((now - c->last_rx_ns) / 1000000u),
                     cfg->heartbeat_misses);
            dfd_conn_close(c, 0);
        } else if (c->ping_msgid == 0 && c->ops->next_msgid != NULL) {
            c->ping_msgid = c->ops->next_msgid(c);
            dfd_conn_send_request(c, c->ping_msgid, "daffi.ping", 10, "\x90", 1, 0);
        }
    }
}

static void heartbeat_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_loop *loop = arg;
    dfd_loop_batch_begin(loop);
    heartbeat_tick(loop);
    dfd_loop_batch_end(loop);
}

void dfd_heartbeat_start(dfd_server *srv)
{
    uint64_t ms = srv->cfg->heartbeat_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    for (unsigned i = 0; i < srv->nloops; i++) {
        dfd_loop *loop = &srv->loops[i];
        event_assign(&loop->heartbeat_ev, loop->base, -1, EV_PERSIST, heartbeat_on_tick, loop);
        event_add(&loop->heartbeat_ev, &tv);
        loop->heartbeat_armed = 1;
    }
}

int dfd_heartbeat_answered(dfd_conn *c, uint32_t msgid)
{
    if (msgid == 0 || msgid != c->ping_msgid)
        return 0;
    c->ping_msgid = 0;
    return 1;
}
