/*
 * budget.h - the server-wide memory budget for request and reply bytes held
 * ([limits] max_memory) and each connection's share of it (max_connection_memory).
 * What is counted, and where: budget-t.h.
 *
 * Past the budget:
 *   - a new call (request or notification) whose message does not fit in what is left,
 *     of the budget or of its connection's share, is refused before its bytes are
 *     copied: OVERLOADED with the figures (dispatch.c); a notification is dropped and
 *     counted, as one past a plugin's queue is. Both count memory_refused.
 *   - a connection whose message needs its read buffer to grow past what is left is
 *     not read until there is room (dfd_budget_resume, from the sweep), or, when the
 *     message alone is past its share, ends with OVERLOADED for its msgid (conn.c).
 *   - once the connections hold more than 15/16 of the budget, the connections that do
 *     not read their output (none of it written for DFD_BUDGET_SHED_GRACE_MS) are
 *     closed, the one whose output moved least recently first, across every loop,
 *     until they hold 7/8 of it, room for the others again (dfd_budget_shed, from each
 *     loop's sweep); each is logged (conn.memory_shed) and counted (memory_shed).
 *
 * Every function runs on the loop thread that owns the connection or call, except
 * dfd_budget_used() and dfd_budget_init() (any thread, and the main thread at start).
 */
#ifndef DFD_BUDGET_H
#define DFD_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "budget-t.h"
#include "call-t.h"
#include "callobj.h"
#include "config.h"
#include "conn.h"
#include "loop.h"
#include "server.h"

/* Sets the budget from cfg (max_connection_memory 0: a quarter of max_memory, but room
 * for a message of max_message on its way in and in its call, and never past
 * max_memory; max_memory 0, which no configuration can set: no budget). */
void dfd_budget_init(dfd_budget *b, const dfd_config *cfg);

/* What every loop holds now (any thread; the loops' exact counts). */
size_t dfd_budget_used(const struct dfd_server *srv);

/* Out of line: moves the loop's reservation to what it holds. */
void dfd_budget_rebalance(dfd_loop *loop);

/* The loop holds n more bytes / n fewer. */
static inline void dfd_budget_hold(dfd_loop *loop, size_t n)
{
    size_t h = atomic_load_explicit(&loop->mem.held, memory_order_relaxed) + n;
    atomic_store_explicit(&loop->mem.held, h, memory_order_relaxed);
    if (h > loop->mem.reserved)
        dfd_budget_rebalance(loop);
}

static inline void dfd_budget_release(dfd_loop *loop, size_t n)
{
    size_t h = atomic_load_explicit(&loop->mem.held, memory_order_relaxed) - n;
    atomic_store_explicit(&loop->mem.held, h, memory_order_relaxed);
    if (loop->mem.reserved > h + 3 * DFD_BUDGET_QUANTUM)
        dfd_budget_rebalance(loop);
}

/* What connection c holds. */
static inline size_t dfd_conn_mem(const dfd_conn *c)
{
    return c->mem_in + c->mem_out + c->mem_calls;
}

/* 1 when loop may take n more bytes: within the budget as the other loops reserved it
 * and this loop holds it. */
static inline int dfd_budget_loop_fits(const dfd_loop *loop, size_t n)
{
    const dfd_budget *b = &loop->srv->budget;
    size_t others = atomic_load_explicit(&b->reserved, memory_order_relaxed) -
                    loop->mem.reserved;
    return others + atomic_load_explicit(&loop->mem.held, memory_order_relaxed) + n <=
           b->limit;
}

/* 1 when c may take n more bytes: within its share, and within the budget
 * (dfd_budget_loop_fits). */
static inline int dfd_budget_fits(const dfd_conn *c, size_t n)
{
    return dfd_conn_mem(c) + n <= c->loop->srv->budget.conn_limit &&
           dfd_budget_loop_fits(c->loop, n);
}

/* Writes into msg why c cannot take n more bytes, with the figures ("... max_memory
 * 128.0M ..."), for an OVERLOADED answer or a log line. */
void dfd_budget_refusal(const dfd_conn *c, size_t n, char *msg, size_t size);
/* The same when loop cannot take n more bytes (a call with no connection: NATS). */
void dfd_budget_refusal_loop(const dfd_loop *loop, size_t n, char *msg, size_t size);

/* Bytes the decoded objects under o take in a call's zone (the msgpack_object and
 * msgpack_object_kv arrays of its containers; strings and binaries point into the
 * message). */
size_t dfd_budget_objects(const msgpack_object *o);

/* The call's loop holds its request (the message's copy, and its decoded objects when
 * its params are decoded: a lazy load's are held once a handler asked for them,
 * dfd_budget_hold_params) from now on, until the call is freed (dfd_budget_call_freed);
 * once per call. */
static inline void dfd_budget_hold_call(dfd_call *call)
{
    if (call->mem_bytes == 0) {
        size_t n = call->base.bytes_len;
        if (daffi_call_params_decoded(&call->base) && call->base.msg.params != NULL) {
            n += dfd_budget_objects(call->base.msg.params);
            call->mem_params = 1;
        }
        call->mem_bytes = n;
        dfd_budget_hold(call->loop, n);
    }
}

/* A held call outlives its inline handler (it went pending, or to the blocking pool):
 * decodes its params if nobody has (the handler will read them on any thread), and
 * its loop, and its connection while linked, hold the objects too. Owner loop only. */
void dfd_budget_hold_params(dfd_call *call);

/* A call joins c's calls in flight: c and its loop hold its request from now on (the
 * loop until the call is freed, dfd_budget_call_freed; a call linked again is held
 * once). */
static inline void dfd_budget_link_call(dfd_conn *c, dfd_call *call)
{
    dfd_budget_hold_call(call);
    c->mem_calls += call->mem_bytes;
}

/* The call leaves c's calls in flight (answered, forgotten, or c closed). */
static inline void dfd_budget_unlink_call(dfd_conn *c, const dfd_call *call)
{
    c->mem_calls -= call->mem_bytes;
}

/* The call is freed: its loop holds its request no more. */
static inline void dfd_budget_call_freed(dfd_call *call)
{
    if (call->mem_bytes != 0) {
        dfd_budget_release(call->loop, call->mem_bytes);
        call->mem_bytes = 0;
    }
    call->mem_params = 0;
}

/* c's read buffer holds extra bytes beyond its base size now. */
void dfd_budget_read_buffer(dfd_conn *c, size_t extra);

/* After a write attempt: backlog bytes of c's output are still unsent (then the whole
 * buffer is held), and progressed says whether any byte left in this attempt. Keeps
 * the loop's list of connections whose output waits. */
void dfd_budget_output(dfd_conn *c, size_t backlog, int progressed);

/* c is closed: it holds nothing any more (its calls still count on the loop until they
 * are freed) and leaves the waiting list. */
void dfd_budget_conn_gone(dfd_conn *c);

/* Past 15/16 of the budget, and down to 7/8 of it: closes this loop's connections that
 * do not read their output while each is the one of every loop whose output moved
 * least recently. now_ns: the sweep's clock. Inside a loop batch. */
void dfd_budget_shed(dfd_loop *loop, uint64_t now_ns);

/* Main thread, a few times a second: logs when calls begin to be refused for the
 * budget (memory.refusing, with the figures) and when none was for a second
 * (memory.refusing_end, with how many were). */
void dfd_budget_report(struct dfd_server *srv, uint64_t now_ns);

/* Reads again the loop's connections that waited for room (conn.h, mem_paused) and
 * now fit. Inside a loop batch. */
void dfd_budget_resume(dfd_loop *loop);

/* Writes n as a size with a binary unit and one decimal ("1.0M", "512B"). */
void dfd_budget_size_text(size_t n, char *buf, size_t size);

#endif /* DFD_BUDGET_H */
