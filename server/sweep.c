/*
 * sweep.c - each loop's periodic sweep (see sweep.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "auth.h"
#include "blocks.h"
#include "budget.h"
#include "conn-tls.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "sweep.h"

#define SWEEP_MAX_MS 250
#define SWEEP_MIN_MS 10

/* The period for cfg with [auth] require's sum and timeout as given (they reload). */
static unsigned sweep_period(const dfd_config *cfg, int auth_required, uint64_t auth_timeout_ms)
{
    uint64_t p = SWEEP_MAX_MS;

    if (cfg->idle_timeout_ms != 0 && cfg->idle_timeout_ms / 8 < p)
        p = cfg->idle_timeout_ms / 8;
    if (cfg->read_timeout_ms != 0 && cfg->read_timeout_ms / 8 < p)
        p = cfg->read_timeout_ms / 8;
    if (cfg->stall_warning_ms != 0 && cfg->stall_warning_ms / 4 < p)
        p = cfg->stall_warning_ms / 4;
    /* the handshake and authentication timeouts: within an eighth */
    if ((cfg->tls_listeners || (cfg->router != NULL && strncmp(cfg->router, "tls://", 6) == 0)) &&
        cfg->tls_handshake_timeout_ms / 8 < p)
        p = cfg->tls_handshake_timeout_ms / 8;
    if (auth_required && auth_timeout_ms / 8 < p)
        p = auth_timeout_ms / 8;
    return p < SWEEP_MIN_MS ? SWEEP_MIN_MS : (unsigned)p;
}

unsigned dfd_sweep_period_ms(const dfd_config *cfg)
{
    return sweep_period(cfg, cfg->auth_required, cfg->auth_timeout_ms);
}

/* A timeout in sweeps of period_ms, rounded up (0 stays off). */
static uint64_t sweep_ticks(uint64_t timeout_ms, unsigned period_ms)
{
    return (timeout_ms + period_ms - 1) / period_ms;
}

/* 1 when something besides its own messages keeps c open (sweep.h). */
static int sweep_kept(const dfd_conn *c)
{
    return c->track_rx || c->internal || c->subscribed || c->mem_paused ||
           c->streams.count != 0 ||
           c->member_streams.count != 0 || !dfd_conn_idle(c);
}

/* The timeouts of one live connection, at sweep `tick`. */
static void sweep_conn(dfd_loop *loop, dfd_conn *c, uint64_t tick)
{
    const dfd_config *cfg = loop->srv->cfg;

    if (c->tls != NULL && !c->tls_ready && loop->handshake_ticks != 0 &&
        tick - c->open_tick > loop->handshake_ticks) {
        dfd_conn_tls_timed_out(c, (tick - c->open_tick) * loop->sweep_ms);
        dfd_conn_close(c, 0);
        return;
    }
    if (c->auth_pending && tick - c->open_tick > loop->auth_ticks) {
        dfd_auth_timed_out(c, (unsigned long long)((tick - c->open_tick) * loop->sweep_ms));
        dfd_conn_close(c, 0);
        return;
    }
    if (c->partial && loop->read_ticks != 0 && !c->internal) {
        if (c->read_paused) {
            c->partial_tick = tick; /* we stopped reading it: not its delay */
        } else if (tick - c->partial_tick > loop->read_ticks) {
            dfd_warn("conn.read_timeout", "peer=%s waited_ms=%llu received=%zu "
                     "read_timeout_ms=%llu msg=\"a message began arriving and did not "
                     "arrive whole within read_timeout: closed\"", c->peer,
                     (unsigned long long)((tick - c->partial_tick) * loop->sweep_ms),
                     c->in_len - c->in_start, (unsigned long long)cfg->read_timeout_ms);
            dfd_stat_add(&loop->stats, DFD_STAT_read_timeouts, 1);
            dfd_conn_close(c, 0);
            return;
        }
    }
    if (loop->idle_ticks == 0)
        return;
    if (sweep_kept(c)) {
        c->active_tick = tick;
    } else if (tick - c->active_tick > loop->idle_ticks) {
        dfd_info("conn.idle_timeout", "peer=%s idle_ms=%llu idle_timeout_ms=%llu "
                 "msg=\"no complete message within idle_timeout: closed\"", c->peer,
                 (unsigned long long)((tick - c->active_tick) * loop->sweep_ms),
                 (unsigned long long)cfg->idle_timeout_ms);
        dfd_stat_add(&loop->stats, DFD_STAT_idle_timeouts, 1);
        dfd_conn_close(c, 0);
    }
}

static void sweep_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    dfd_loop *loop = arg;
    uint64_t expirations;
    while (read(fd, &expirations, sizeof(expirations)) == -1 && errno == EINTR)
        ;
    uint64_t now = dfd_now_ns();
    uint64_t tick = ++loop->tick;

    atomic_store_explicit(&loop->wd_pass_ns, now, memory_order_relaxed);
    dfd_loop_batch_begin(loop);
    /* closing only marks a connection dead (conn.h): the walk stays valid */
    if (loop->idle_ticks != 0 || loop->read_ticks != 0 || loop->handshake_ticks != 0 ||
        loop->auth_ticks != 0)
        for (dfd_conn *c = loop->conns; c != NULL; c = c->next)
            if (!c->dead && !c->closing)
                sweep_conn(loop, c, tick);
    dfd_budget_shed(loop, now);
    dfd_blocks_trim(&loop->blocks, tick, 1000 / loop->sweep_ms + 1);
    if (loop->mem.npaused != 0)
        dfd_budget_resume(loop);
    dfd_loop_batch_end(loop);
    /* what the closes wrote waits for the flush event of this pass */
}

/* The sweep's clock is a timerfd watched like a socket, not a libevent timer: with no
 * timer in its heap, libevent computes no timeout at each pass, which on the hot path
 * (calls that complete inline arm no timer) saves about a hundred instructions a call. */
/* The loop's timeouts in sweeps of ms, [auth]'s as last (re)loaded (auth.h). */
static void sweep_tune(dfd_loop *loop, unsigned ms)
{
    const dfd_config *cfg = loop->srv->cfg;
    const dfd_auth *a = &loop->srv->auth;

    loop->sweep_ms = ms;
    loop->idle_ticks = sweep_ticks(cfg->idle_timeout_ms, ms);
    loop->read_ticks = sweep_ticks(cfg->read_timeout_ms, ms);
    int tls = cfg->tls_listeners || (cfg->router != NULL && strncmp(cfg->router, "tls://", 6) == 0);
    loop->handshake_ticks = tls ? sweep_ticks(cfg->tls_handshake_timeout_ms, ms) : 0;
    loop->auth_ticks = atomic_load(&a->required) ? sweep_ticks(atomic_load(&a->timeout_ms), ms)
                                                 : 0;
}

/* The loop's period for the [auth] settings as last (re)loaded. */
static unsigned sweep_live_period(const dfd_loop *loop)
{
    const dfd_auth *a = &loop->srv->auth;

    return sweep_period(loop->srv->cfg, atomic_load(&a->required), atomic_load(&a->timeout_ms));
}

/* On the loop: [auth] require or timeout was reloaded. The period only ever gets
 * shorter (a longer one would make the watchdog, which expects a pass every period
 * of the start, see a stall); the ticks a connection already counted were at least
 * as long as the new ones, so a change never closes one early. */
static void sweep_auth_mail(dfd_loop *loop, void *arg)
{
    (void)arg;
    unsigned ms = sweep_live_period(loop);

    if (ms < loop->sweep_ms && loop->sweep_armed) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        struct itimerspec its = {ts, ts};
        if (timerfd_settime(loop->sweep_fd, 0, &its, NULL) == -1)
            ms = loop->sweep_ms; /* keeps its period; the ticks follow the one it has */
    } else {
        ms = loop->sweep_ms;
    }
    sweep_tune(loop, ms);
}

void dfd_sweep_auth_changed(dfd_server *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++)
        if (dfd_loop_post(&srv->loops[i], sweep_auth_mail, NULL, NULL) == -1)
            dfd_error("auth.reload_failed", "loop=%u msg=\"out of memory: this loop keeps "
                      "the [auth] timeout it had\"", i);
}

void dfd_sweep_start(dfd_loop *loop)
{
    unsigned ms = sweep_live_period(loop);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    struct itimerspec its = {ts, ts};

    sweep_tune(loop, ms);
    atomic_store_explicit(&loop->wd_pass_ns, dfd_now_ns(), memory_order_relaxed);
    loop->sweep_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop->sweep_fd == -1 || timerfd_settime(loop->sweep_fd, 0, &its, NULL) == -1) {
        dfd_error("loop.sweep", "loop=%u errno=%d msg=\"cannot start the loop's timer: no "
                  "idle_timeout, read_timeout, memory shedding or watchdog pass mark\"",
                  loop->index, errno);
        if (loop->sweep_fd != -1)
            close(loop->sweep_fd);
        loop->sweep_fd = -1;
        return;
    }
    event_assign(&loop->sweep_ev, loop->base, loop->sweep_fd, EV_READ | EV_PERSIST,
                 sweep_on_tick, loop);
    event_add(&loop->sweep_ev, NULL);
    loop->sweep_armed = 1;
}

void dfd_sweep_stop(dfd_loop *loop)
{
    if (loop->sweep_armed) {
        event_del(&loop->sweep_ev);
        close(loop->sweep_fd);
    }
    loop->sweep_armed = 0;
    loop->sweep_fd = -1;
}
