/*
 * watchdog.c - the loop watchdog, on the main thread (see watchdog.h).
 */
#include <stdlib.h>

#include <jansson.h>

#include "budget.h"
#include "log.h"
#include "server.h"
#include "sweep.h"
#include "watchdog.h"

#define WATCHDOG_MAX_PERIOD_MS 250 /* and a tenth of stall_warning */
#define WATCHDOG_MIN_PERIOD_MS 10

/* What the main thread knows of one loop. */
typedef struct wd_loop {
    int stalled;
    unsigned slot;                /* 1 + stats slot of what runs, 0: no handler */
    uint64_t began_ns;            /* when the stall began */
} wd_loop;

typedef struct dfd_watchdog {
    dfd_server *srv;
    struct event *tick;
    uint64_t stall_ns;            /* stall_warning; 0: loops are not checked */
    uint64_t sweep_ns;            /* the loops' sweep period */
    uint64_t stalls;
    unsigned stalled;
    wd_loop *loops;
} dfd_watchdog;

/* The plugin and callback names of a stats slot + 1 ("-" when none). Static or the
 * registry's, which live as long as the server. */
static void wd_names(const dfd_server *srv, unsigned slot, const char **plugin,
                     const char **callback)
{
    unsigned n = atomic_load_explicit(&srv->callnames.n, memory_order_acquire);

    *plugin = *callback = "-";
    if (slot != 0 && slot - 1 < n) {
        *plugin = srv->callnames.plugin[slot - 1];
        *callback = srv->callnames.callback[slot - 1];
    }
}

/* Checks loop i at now_ns: a stall starts, lasts or ends. */
static void wd_check(dfd_watchdog *w, unsigned i, uint64_t now_ns)
{
    dfd_loop *loop = &w->srv->loops[i];
    wd_loop *s = &w->loops[i];
    unsigned slot = atomic_load_explicit(&loop->wd_slot, memory_order_acquire);
    uint64_t since = atomic_load_explicit(&loop->wd_since_ns, memory_order_relaxed);
    uint64_t pass = atomic_load_explicit(&loop->wd_pass_ns, memory_order_relaxed);
    uint64_t began = 0;
    const char *plugin, *callback;

    if (slot != 0 && now_ns > since && now_ns - since >= w->stall_ns) {
        began = since;
    } else if (pass != 0 && now_ns > pass && now_ns - pass >= w->stall_ns + w->sweep_ns) {
        began = pass; /* slot: a handler that started since, if any */
    }
    if (began != 0 && !s->stalled) {
        s->stalled = 1;
        s->began_ns = began;
        s->slot = slot;
        w->stalls++;
        w->stalled++;
        wd_names(w->srv, slot, &plugin, &callback);
        dfd_warn("loop.stall", "loop=%u plugin=%s callback=%s stalled_ms=%llu "
                 "stall_warning_ms=%llu msg=\"the loop has not come back to its event "
                 "loop: its connections wait%s\"", i, plugin, callback,
                 (unsigned long long)((now_ns - began) / 1000000u),
                 (unsigned long long)(w->stall_ns / 1000000u),
                 slot ? "" : " (outside any handler daffid runs: a plugin's own timer or "
                             "I/O callback, or daffid itself)");
    } else if (began != 0) {
        if (slot != 0)
            s->slot = slot; /* what runs now */
    } else if (s->stalled) {
        wd_names(w->srv, s->slot, &plugin, &callback);
        dfd_info("loop.stall_end", "loop=%u plugin=%s callback=%s stalled_ms=%llu", i,
                 plugin, callback, (unsigned long long)((now_ns - s->began_ns) / 1000000u));
        s->stalled = 0;
        s->slot = 0;
        w->stalled--;
    }
}

static void wd_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dfd_watchdog *w = arg;
    uint64_t now = dfd_now_ns();

    if (w->stall_ns != 0)
        for (unsigned i = 0; i < w->srv->nloops; i++)
            wd_check(w, i, now);
    dfd_budget_report(w->srv, now);
}

int dfd_watchdog_start(dfd_server *srv)
{
    const dfd_config *cfg = srv->cfg;
    dfd_watchdog *w = calloc(1, sizeof(*w));
    uint64_t ms = cfg->stall_warning_ms / 10;

    if (w == NULL || (w->loops = calloc(srv->nloops ? srv->nloops : 1,
                                        sizeof(*w->loops))) == NULL) {
        free(w);
        return -1;
    }
    if (ms == 0 || ms > WATCHDOG_MAX_PERIOD_MS)
        ms = WATCHDOG_MAX_PERIOD_MS;
    if (ms < WATCHDOG_MIN_PERIOD_MS)
        ms = WATCHDOG_MIN_PERIOD_MS;
    w->srv = srv;
    w->stall_ns = cfg->stall_warning_ms * 1000000u;
    w->sweep_ns = (uint64_t)dfd_sweep_period_ms(cfg) * 1000000u;
    w->tick = event_new(srv->base, -1, EV_PERSIST, wd_on_tick, w);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    if (w->tick == NULL || event_add(w->tick, &tv) == -1) {
        if (w->tick)
            event_free(w->tick);
        free(w->loops);
        free(w);
        return -1;
    }
    srv->watchdog = w;
    return 0;
}

void dfd_watchdog_stop(dfd_server *srv)
{
    dfd_watchdog *w = srv->watchdog;

    if (w == NULL)
        return;
    event_free(w->tick);
    free(w->loops);
    free(w);
    srv->watchdog = NULL;
}

uint64_t dfd_watchdog_stalls(const dfd_server *srv)
{
    return srv->watchdog ? srv->watchdog->stalls : 0;
}

unsigned dfd_watchdog_stalled(const dfd_server *srv)
{
    return srv->watchdog ? srv->watchdog->stalled : 0;
}

json_t *dfd_watchdog_loop_json(dfd_server *srv, unsigned i)
{
    const dfd_watchdog *w = srv->watchdog;
    const wd_loop *s = w != NULL && i < srv->nloops ? &w->loops[i] : NULL;
    const char *plugin, *callback;

    if (s == NULL || !s->stalled)
        return json_pack("{s:b,s:n,s:n,s:I}", "stalled", 0, "plugin", "callback",
                         "stalled_ms", (json_int_t)0);
    wd_names(srv, s->slot, &plugin, &callback);
    json_t *jp = s->slot ? json_string(plugin) : NULL;
    json_t *jc = s->slot ? json_string(callback) : NULL;
    return json_pack("{s:b,s:o,s:o,s:I}", "stalled", 1, "plugin", jp ? jp : json_null(),
                     "callback", jc ? jc : json_null(),
                     "stalled_ms", (json_int_t)((dfd_now_ns() - s->began_ns) / 1000000u));
}
