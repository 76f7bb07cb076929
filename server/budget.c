/*
 * budget.c - the memory budget (see budget.h): reservations, what a call holds, the
 * list of connections that do not read their output, and closing them past the budget.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "budget.h"
#include "log.h"
#include "stats.h"

void dfd_budget_init(dfd_budget *b, const dfd_config *cfg)
{
    size_t share = cfg->max_connection_memory;

    if (cfg->max_memory == 0) {
        /* no budget (an isolated plugin's child: its parent's bounds what reaches it) */
        b->limit = b->conn_limit = SIZE_MAX / 4;
        atomic_init(&b->reserved, 0);
        atomic_init(&b->shedding, 0);
        return;
    }
    if (share == 0) {
        /* a message of max_message is held twice while it is taken: in the read
         * buffer and in its call */
        size_t one_message = 2 * cfg->max_message + 2 * DFD_BUDGET_QUANTUM;
        share = cfg->max_memory / 4;
        if (share < one_message)
            share = one_message;
    }
    /* glibc raises its mmap threshold as large blocks are freed, after which freed
     * messages and outputs stay in the heap, fragmented: the process could hold half as
     * much again as the budget counts. A fixed threshold maps every block over 256K and
     * gives it back when freed (unless the environment chose one). */
    if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL)
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    b->limit = cfg->max_memory;
    b->conn_limit = share < cfg->max_memory ? share : cfg->max_memory;
    atomic_init(&b->reserved, 0);
    atomic_init(&b->shedding, 0);
}

size_t dfd_budget_used(const dfd_server *srv)
{
    size_t used = 0;

    for (unsigned i = 0; i < srv->nloops; i++)
        used += atomic_load_explicit(&srv->loops[i].mem.held, memory_order_relaxed);
    return used;
}

/* Reserves one quantum beyond what the loop holds, rounded up to quanta: the next
 * small holds and releases stay on the loop. */
void dfd_budget_rebalance(dfd_loop *loop)
{
    dfd_budget *b = &loop->srv->budget;
    size_t held = atomic_load_explicit(&loop->mem.held, memory_order_relaxed);
    size_t want = (held / DFD_BUDGET_QUANTUM + 2) * DFD_BUDGET_QUANTUM;

    if (want > loop->mem.reserved)
        atomic_fetch_add_explicit(&b->reserved, want - loop->mem.reserved,
                                  memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&b->reserved, loop->mem.reserved - want,
                                  memory_order_relaxed);
    loop->mem.reserved = want;
}

void dfd_budget_size_text(size_t n, char *buf, size_t size)
{
    static const char units[] = "KMGT";
    double v = (double)n;
    int u = -1;

    while (v >= 1024.0 && u < 3) {
        v /= 1024.0;
        u++;
    }
    if (u < 0)
        snprintf(buf, size, "%zuB", n);
    else
        snprintf(buf, size, "%.1f%c", v, units[u]);
}

void dfd_budget_refusal(const dfd_conn *c, size_t n, char *msg, size_t size)
{
    const dfd_budget *b = &c->loop->srv->budget;
    char need[32], held[32], limit[32];

    dfd_budget_size_text(n, need, sizeof(need));
    if (dfd_conn_mem(c) + n > b->conn_limit) {
        dfd_budget_size_text(dfd_conn_mem(c), held, sizeof(held));
        dfd_budget_size_text(b->conn_limit, limit, sizeof(limit));
        snprintf(msg, size, "memory budget: this connection holds %s of its share "
                 "(max_connection_memory %s); %s more does not fit", held, limit, need);
        return;
    }
    dfd_budget_refusal_loop(c->loop, n, msg, size);
}

void dfd_budget_refusal_loop(const dfd_loop *loop, size_t n, char *msg, size_t size)
{
    const dfd_budget *b = &loop->srv->budget;
    char need[32], held[32], limit[32];

    dfd_budget_size_text(n, need, sizeof(need));
    dfd_budget_size_text(dfd_budget_used(loop->srv), held, sizeof(held));
    dfd_budget_size_text(b->limit, limit, sizeof(limit));
    snprintf(msg, size, "memory budget spent: connections hold %s of max_memory %s; %s "
             "more does not fit", held, limit, need);
}

size_t dfd_budget_objects(const msgpack_object *o)
{
    size_t n = 0;

    /* only containers cost zone memory: scalars inside them are not visited */
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object *e = o->via.array.ptr;
        n = o->via.array.size * sizeof(msgpack_object);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (e[i].type == MSGPACK_OBJECT_ARRAY || e[i].type == MSGPACK_OBJECT_MAP)
                n += dfd_budget_objects(&e[i]);
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_kv *kv = o->via.map.ptr;
        n = o->via.map.size * sizeof(msgpack_object_kv);
        for (uint32_t i = 0; i < o->via.map.size; i++)
            n += dfd_budget_objects(&kv[i].key) + dfd_budget_objects(&kv[i].val);
    }
    return n;
}

void dfd_budget_hold_params(dfd_call *call)
{
    const msgpack_object *p = daffi_call_params(&call->base);
    if (call->mem_bytes == 0 || call->mem_params)
        return; /* not held yet (dfd_budget_hold_call counts them), or counted */
    call->mem_params = 1;
    if (p == NULL)
        return;
    size_t n = dfd_budget_objects(p);
    call->mem_bytes += n;
    dfd_budget_hold(call->loop, n);
    if (call->conn != NULL)
        call->conn->mem_calls += n; /* dfd_budget_unlink_call takes mem_bytes back */
}

void dfd_budget_read_buffer(dfd_conn *c, size_t extra)
{
    if (extra > c->mem_in)
        dfd_budget_hold(c->loop, extra - c->mem_in);
    else
        dfd_budget_release(c->loop, c->mem_in - extra);
    c->mem_in = extra;
}

/* ---- connections that do not read ------------------------------------------------- */

static void stuck_publish(dfd_loop *loop)
{
    dfd_conn *h = loop->mem.stuck_head;
    atomic_store_explicit(&loop->mem.stuck_oldest_ns, h ? h->progress_ns : UINT64_MAX,
                          memory_order_relaxed);
}

static void stuck_remove(dfd_conn *c)
{
    dfd_loop_mem *m = &c->loop->mem;

    if (c->stuck_prev)
        c->stuck_prev->stuck_next = c->stuck_next;
    else
        m->stuck_head = c->stuck_next;
    if (c->stuck_next)
        c->stuck_next->stuck_prev = c->stuck_prev;
    else
        m->stuck_tail = c->stuck_prev;
    c->stuck_prev = c->stuck_next = NULL;
    c->stuck = 0;
}

/* Appends c (its output just moved, or just started to wait): the list stays ordered
 * by progress_ns. */
static void stuck_append(dfd_conn *c)
{
    dfd_loop_mem *m = &c->loop->mem;

    c->progress_ns = dfd_now_ns();
    c->stuck_prev = m->stuck_tail;
    c->stuck_next = NULL;
    if (m->stuck_tail)
        m->stuck_tail->stuck_next = c;
    else
        m->stuck_head = c;
    m->stuck_tail = c;
    c->stuck = 1;
}

void dfd_budget_output(dfd_conn *c, size_t backlog, int progressed)
{
    size_t held = backlog != 0 ? c->out.size + c->tail_len : 0;

    if (held > c->mem_out)
        dfd_budget_hold(c->loop, held - c->mem_out);
    else if (held < c->mem_out)
        dfd_budget_release(c->loop, c->mem_out - held);
    c->mem_out = held;
    if (c->internal)
        return; /* counted, never shed: its supervisor watches it */
    if (backlog == 0) {
        if (!c->stuck)
            return;
        stuck_remove(c);
    } else if (!c->stuck) {
        stuck_append(c);
    } else if (progressed) {
        stuck_remove(c);
        stuck_append(c);
    } else {
        return;
    }
    stuck_publish(c->loop);
}

void dfd_budget_conn_gone(dfd_conn *c)
{
    dfd_budget_release(c->loop, c->mem_in + c->mem_out);
    c->mem_in = c->mem_out = c->mem_calls = 0;
    if (c->mem_paused) {
        c->mem_paused = 0;
        c->loop->mem.npaused--;
    }
    if (c->stuck) {
        stuck_remove(c);
        stuck_publish(c->loop);
    }
}

/* The loop holding the connection whose output moved first of all, when it is not
 * loop (its own moved at at_ns; ties: the lower loop index goes first); else NULL. */
static dfd_loop *budget_older_elsewhere(dfd_loop *loop, uint64_t at_ns)
{
    dfd_server *srv = loop->srv;
    dfd_loop *oldest = NULL;

    for (unsigned i = 0; i < srv->nloops; i++) {
        dfd_loop *o = &srv->loops[i];
        uint64_t t = atomic_load_explicit(&o->mem.stuck_oldest_ns, memory_order_relaxed);
        if (o != loop && (t < at_ns || (t == at_ns && o->index < loop->index))) {
            oldest = o;
            at_ns = t;
        }
    }
    return oldest;
}

/* Mail: another loop found that this one holds the oldest non-reader. */
static void budget_shed_mail(dfd_loop *loop, void *arg)
{
    (void)arg;
    atomic_store_explicit(&loop->mem.shed_asked, 0, memory_order_relaxed);
    dfd_budget_shed(loop, dfd_now_ns());
}

void dfd_budget_shed(dfd_loop *loop, uint64_t now_ns)
{
    dfd_server *srv = loop->srv;
    dfd_budget *b = &srv->budget;
    const uint64_t grace = (uint64_t)DFD_BUDGET_SHED_GRACE_MS * 1000000u;
    size_t used = dfd_budget_used(srv);

    if (used > DFD_BUDGET_SHED_START(b->limit))
        atomic_store_explicit(&b->shedding, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&b->shedding, memory_order_relaxed))
        return;
    for (; used > DFD_BUDGET_SHED_STOP(b->limit); used = dfd_budget_used(srv)) {
        dfd_conn *c = loop->mem.stuck_head;
        dfd_loop *o = budget_older_elsewhere(loop, c ? c->progress_ns : UINT64_MAX);
        if (o != NULL) {
            /* its turn now rather than at its next sweep; one mail at a time */
            if (!atomic_exchange_explicit(&o->mem.shed_asked, 1, memory_order_relaxed) &&
                dfd_loop_post(o, budget_shed_mail, NULL, NULL) == -1)
                atomic_store_explicit(&o->mem.shed_asked, 0, memory_order_relaxed);
            return;
        }
        if (c == NULL || now_ns < c->progress_ns + grace)
            return;
        char held[32], u[32], limit[32];
        dfd_budget_size_text(dfd_conn_mem(c), held, sizeof(held));
        dfd_budget_size_text(used, u, sizeof(u));
        dfd_budget_size_text(b->limit, limit, sizeof(limit));
        dfd_warn("conn.memory_shed", "peer=%s loop=%u held=%s unsent=%zu "
                 "stalled_ms=%llu used=%s max_memory=%s msg=\"closed: it does not read "
                 "its output while connections hold nearly max_memory (the one whose "
                 "output waited longest goes first)\"", c->peer, loop->index, held,
                 dfd_conn_backlog(c),
                 (unsigned long long)((now_ns - c->progress_ns) / 1000000u), u, limit);
        dfd_stat_add(&loop->stats, DFD_STAT_memory_shed, 1);
        dfd_conn_close(c, 0); /* leaves the list (dfd_budget_conn_gone) */
    }
    atomic_store_explicit(&b->shedding, 0, memory_order_relaxed);
}

void dfd_budget_report(dfd_server *srv, uint64_t now_ns)
{
    dfd_budget *b = &srv->budget;
    uint64_t refused = 0;

    for (unsigned i = 0; i < srv->nloops; i++)
        refused += dfd_stat_get(&srv->loops[i].stats, DFD_STAT_memory_refused);
    uint64_t fresh = refused - b->refused_seen;
    b->refused_seen = refused;
    if (fresh != 0) {
        b->quiet_since_ns = now_ns;
        b->refused_since += fresh;
        if (!b->refusing) {
            char used[32], limit[32], share[32];
            dfd_budget_size_text(dfd_budget_used(srv), used, sizeof(used));
            dfd_budget_size_text(b->limit, limit, sizeof(limit));
            dfd_budget_size_text(b->conn_limit, share, sizeof(share));
            dfd_warn("memory.refusing", "used=%s max_memory=%s max_connection_memory=%s "
                     "refused=%llu msg=\"calls are refused (OVERLOADED): the memory "
                     "budget or a connection's share of it is spent\"", used, limit, share,
                     (unsigned long long)fresh);
            b->refusing = 1;
        }
    } else if (b->refusing && now_ns - b->quiet_since_ns >= 1000000000u) {
        char used[32];
        dfd_budget_size_text(dfd_budget_used(srv), used, sizeof(used));
        dfd_info("memory.refusing_end", "used=%s refused=%llu msg=\"no call refused for "
                 "the memory budget for a second\"", used,
                 (unsigned long long)b->refused_since);
        b->refusing = 0;
        b->refused_since = 0;
    }
}

void dfd_budget_resume(dfd_loop *loop)
{
    for (dfd_conn *c = loop->conns; c != NULL && loop->mem.npaused != 0; c = c->next)
        if (!c->dead && c->mem_paused && dfd_budget_fits(c, c->mem_wait))
            dfd_conn_memory_resume(c);
}
