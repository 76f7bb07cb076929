/*
 * call.c - creating and recycling dfd_call records (see call.h).
 *
 * Calls are recycled per loop so the hot path allocates nothing in steady state: the
 * record keeps its request buffer, zone chunk and result buffer between uses.
 */
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "budget.h"
#include "call.h"
#include "callobj.h"
#include "members.h"
#include "plugin.h"
#include "stream.h"

#define LOOP_FREE_CALLS_MAX 1024

dfd_call *dfd_call_new(dfd_loop *loop)
{
    dfd_call *call = loop->free_calls;
    if (call != NULL) {
        loop->free_calls = call->next;
        loop->nfree_calls--;
    } else {
        call = malloc(sizeof(*call));
        if (call == NULL)
            return NULL;
        memset(call, 0, sizeof(*call));
        daffi_call_init(&call->base);
    }
    call->loop = loop;
    call->conn = NULL;
    call->conn_prev = call->conn_next = call->next = NULL;
    call->cb = NULL;
    call->kind = DFD_KIND_LOCAL;
    call->hooks = NULL;
    call->expire = NULL;
    call->timeout_ms = 0;
    call->link = NULL;
    call->member_msgid = 0;
    call->to_member = 0;
    call->fwd_slot = 0;
    call->cast = NULL;
    call->cast_slot = 0;
    call->cast_parent = NULL;
    call->stream = NULL;
    call->msgid = 0;
    call->notify = 0;
    atomic_init(&call->state, DFD_CALL_NEW);
    atomic_init(&call->cancelled, 0);
    call->answered = 0;
    call->holds_slot = 0;
    call->start_ns = 0;
    call->timer_armed = 0;
    call->mem_params = 0;
    call->base.loop = loop->base;
    return call;
}

void dfd_call_free(dfd_call *call)
{
    dfd_loop *loop = call->loop;
    if (call->timer_armed) {
        event_del(&call->timer);
        call->timer_armed = 0;
    }
    if (call->cb != NULL) {
        dfd_plugin_release(call->cb->plugin);
        atomic_fetch_sub_explicit(&loop->handler_calls, 1, memory_order_relaxed);
        dfd_loop_check_drained(loop);
    }
    call->cb = NULL;
    dfd_budget_call_freed(call);
    dfd_link_release(call->link);
    call->link = NULL;
    dfd_stream_release(call->stream);
    call->stream = NULL;
    /* large request and result blocks go to the loop's cache, for the next message */
    daffi_call *b = &call->base;
    if (b->bytes_cap >= DFD_BLOCK_MIN) {
        dfd_blocks_give(&loop->blocks, b->bytes, b->bytes_cap, loop->tick);
        b->bytes = NULL;
        b->bytes_cap = 0;
    }
    if (b->result.alloc >= DFD_BLOCK_MIN)
        dfd_blocks_give_sbuffer(&loop->blocks, &b->result, loop->tick);
    daffi_call_reset(&call->base);
    if (loop->nfree_calls >= LOOP_FREE_CALLS_MAX) {
        daffi_call_destroy(&call->base);
        free(call);
        return;
    }
    call->next = loop->free_calls;
    loop->free_calls = call;
    loop->nfree_calls++;
}

void dfd_call_set_callback(dfd_call *call, const dfd_callback *cb)
{
    dfd_plugin_retain(cb->plugin);
    call->cb = cb;
    call->kind = DFD_KIND_LOCAL;
    call->base.host = &cb->plugin->host;
    call->base.state = cb->plugin->state;
    atomic_fetch_add_explicit(&call->loop->handler_calls, 1, memory_order_relaxed);
}

void dfd_call_free_list(dfd_loop *loop)
{
    while (loop->free_calls != NULL) {
        dfd_call *call = loop->free_calls;
        loop->free_calls = call->next;
        daffi_call_destroy(&call->base);
        free(call);
    }
    loop->nfree_calls = 0;
}
