/*
 * fanout.c - daffi.cast (one request to many members, partial results) and daffi.wait
 * (answer the moment the named members are all present), router role (see fanout.h).
 *
 * A cast is a record on the caller's loop with one slot per target member; each target
 * gets a child call (a copy of the request, unwrapped to the callback) that is routed
 * like any call. A child's outcome lands in its slot; the cast answers when every slot
 * is filled or at its deadline, where missing slots read TIMEOUT. Children that finish
 * after that are discarded. Everything about a cast happens on the caller's loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "fanout.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "table.h"

typedef struct cast_slot {
    char *name;               /* member name; owned */
    msgpack_sbuffer pair;     /* encoded [error, result] once done */
    int done;
} cast_slot;

struct dfd_cast {
    int refs;                 /* the parent (until answered) + children; owner loop only */
    dfd_call *parent;         /* NULL once answered, or for the nowait form */
    size_t n;
    size_t remaining;
    cast_slot *slots;
};

static void cast_child_done(dfd_call *call);
static void cast_child_timeout(dfd_call *call, const char *msg);
static void fanout_deadline(dfd_call *call);

static const dfd_call_hooks cast_child_hooks = {
    .report = cast_child_done,
    .timed_out = cast_child_timeout,
};

static void wait_caller_gone(dfd_call *call);

static const dfd_call_hooks cast_parent_hooks = {
    .deadline = fanout_deadline,
};

static const dfd_call_hooks wait_hooks = {
    .deadline = fanout_deadline,
    .caller_gone = wait_caller_gone,
};

static void cast_release(dfd_cast *cast)
{
    if (--cast->refs > 0)
        return;
    for (size_t i = 0; i < cast->n; i++) {
        free(cast->slots[i].name);
        msgpack_sbuffer_destroy(&cast->slots[i].pair);
    }
    free(cast->slots);
    free(cast);
}

/* Fills a slot with an error pair [[code, message], nil]. */
static void cast_fill_error(cast_slot *slot, int code, const char *message)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &slot->pair, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, code);
    daffi_pack_cstr(&pk, message);
    msgpack_pack_nil(&pk);
    slot->done = 1;
}

/* Answers the parent with the map {name: [error, result]}; missing slots: TIMEOUT. */
static void cast_answer(dfd_cast *cast)
{
    dfd_call *parent = cast->parent;
    cast->parent = NULL;
    parent->cast_parent = NULL;
    uint64_t ms = (dfd_now_ns() - parent->start_ns) / 1000000u;
    msgpack_packer *pk = daffi_reply_packer(&parent->base);
    msgpack_pack_map(pk, (uint32_t)cast->n);
    for (size_t i = 0; i < cast->n; i++) {
        cast_slot *slot = &cast->slots[i];
        daffi_pack_cstr(pk, slot->name);
        if (!slot->done) {
            char msg[200];
            snprintf(msg, sizeof(msg), "member '%s' did not answer within %llu ms", slot->name,
                     (unsigned long long)ms);
            cast_fill_error(slot, DAFFI_E_TIMEOUT, msg);
        }
        msgpack_sbuffer_write(&parent->base.result, slot->pair.data, slot->pair.size);
    }
    atomic_store(&parent->state, DFD_CALL_COMPLETING);
    dfd_dispatch_finish(parent);
    cast_release(cast);
}

/* A child finished (hook report): its outcome fills its slot. */
static void cast_child_done(dfd_call *call)
{
    dfd_cast *cast = call->cast;
    call->cast = NULL;
    cast_slot *slot = &cast->slots[call->cast_slot];
    if (!slot->done) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &slot->pair, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        switch (call->base.outcome) {
        case DAFFI_OUTCOME_RESULT:
            msgpack_pack_nil(&pk);
            msgpack_sbuffer_write(&slot->pair, call->base.result.data, call->base.result.size);
            break;
        case DAFFI_OUTCOME_RAW_ERROR:
            msgpack_sbuffer_write(&slot->pair, call->base.result.data, call->base.result.size);
            msgpack_pack_nil(&pk);
            break;
        case DAFFI_OUTCOME_ERROR:
            daffi_call_pack_error(&call->base, &pk, &slot->pair); /* details kept */
            msgpack_pack_nil(&pk);
            break;
        default:
            msgpack_pack_nil(&pk);
            msgpack_pack_nil(&pk);
            break;
        }
        slot->done = 1;
        cast->remaining--;
        if (cast->remaining == 0 && cast->parent != NULL)
            cast_answer(cast);
    } else {
        /* its slot already reads TIMEOUT: the answer came too late */
        dfd_stat_add(&call->loop->stats, DFD_STAT_late_completions, 1);
    }
    cast_release(cast);
}

/* A child hit its own deadline (hook timed_out): its slot reads TIMEOUT. */
static void cast_child_timeout(dfd_call *call, const char *msg)
{
    dfd_cast *cast = call->cast;
    cast_slot *slot = &cast->slots[call->cast_slot];
    if (slot->done)
        return;
    cast_fill_error(slot, DAFFI_E_TIMEOUT, msg);
    cast->remaining--;
    if (cast->remaining == 0 && cast->parent != NULL)
        cast_answer(cast);
}

/* Creates a child call for slot i: a copy of the cast's request, unwrapped. */
static dfd_call *cast_child(dfd_call *parent, dfd_cast *cast, size_t i)
{
    dfd_call *child = dfd_call_new(parent->loop);
    if (child == NULL)
        return NULL;
    child->base.ops = parent->base.ops;
    child->start_ns = parent->start_ns;
    child->timeout_ms = 0; /* the cast's deadline covers its children */
    if (daffi_call_load(&child->base, parent->base.bytes, parent->base.bytes_len, NULL) == -1 ||
        daffi_call_unwrap(&child->base) == -1) {
        dfd_call_free(child);
        return NULL;
    }
    child->cast = cast;
    child->cast_slot = (unsigned)i;
    child->hooks = &cast_child_hooks;
    cast->refs++;
    return child;
}



static void fanout_bad_args(dfd_conn *c, dfd_call *call, const char *msg)
{
    if (!call->notify)
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
}

int dfd_fanout_cast(dfd_conn *c, dfd_call *call)
{
    static const char usage[] =
        "daffi.cast takes [callback, [params...], {\"to\": [names...], \"timeout_ms\": int}]";
    dfd_loop *loop = c->loop;
    const msgpack_object *target = daffi_arg(&call->base, 0);
    const msgpack_object *params = daffi_arg(&call->base, 1);
    const char *cb;
    size_t cb_len;
    dfd_call_opts o;
    if (target == NULL || daffi_obj_text(target, &cb, &cb_len) == -1 || params == NULL ||
        params->type != MSGPACK_OBJECT_ARRAY ||
        dfd_call_opts_parse(call, DFD_OPT_TO_LIST | DFD_OPT_TIMEOUT, &o) == -1) {
        fanout_bad_args(c, call, usage);
        return 0;
    }
    dfd_snapshot *snap = loop->snapshot;
    const msgpack_object *to = o.to_list;
    int use_to = to != NULL;
    size_t n = use_to ? to->via.array.size : snap->n;
    dfd_cast *cast = calloc(1, sizeof(*cast));
    if (cast == NULL || (cast->slots = calloc(n ? n : 1, sizeof(cast_slot))) == NULL) {
        free(cast);
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    cast->refs = 1;
    /* the targets: the members named in "to", else every member exposing the callback */
    const dfd_snap_member **targets = calloc(n ? n : 1, sizeof(*targets));
    if (targets == NULL) {
        free(cast->slots);
        free(cast);
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const dfd_snap_member *sm = NULL;
        cast_slot *slot = &cast->slots[cast->n];
        msgpack_sbuffer_init(&slot->pair);
        if (use_to) {
            const char *name;
            size_t len;
            if (daffi_obj_text(&to->via.array.ptr[i], &name, &len) == -1) {
                free(targets);
                cast->n++;
                cast_release(cast);
                fanout_bad_args(c, call, usage);
                return 0;
            }
            int seen = 0;
            for (size_t k = 0; k < cast->n && !seen; k++)
                seen = cast->slots[k].name != NULL && strlen(cast->slots[k].name) == len &&
                       memcmp(cast->slots[k].name, name, len) == 0;
            if (seen) { /* a member named twice is reached once */
                msgpack_sbuffer_destroy(&slot->pair);
                continue;
            }
            slot->name = strndup(name, len);
            sm = dfd_snapshot_find(snap, name, len);
            if (sm == NULL) {
                cast_fill_error(slot, DAFFI_E_UNAVAILABLE, "no member by that name is connected");
            } else if (!dfd_snap_member_has(sm, cb, cb_len)) {
                cast_fill_error(slot, DAFFI_E_NO_CALLBACK, "the member has no such callback");
                sm = NULL;
            }
        } else {
            sm = &snap->members[i];
            if (!atomic_load(&sm->m->alive) || !dfd_snap_member_has(sm, cb, cb_len)) {
                msgpack_sbuffer_destroy(&slot->pair);
                continue;
            }
            slot->name = strdup(sm->m->name);
        }
        if (slot->name == NULL) {
            cast_fill_error(slot, DAFFI_E_OVERLOADED, "out of memory");
            sm = NULL;
        }
        targets[cast->n] = sm;
        cast->n++;
        if (sm != NULL)
            cast->remaining++;
    }
    if (cast->n == 0) {
        free(targets);
        cast_release(cast);
        if (!call->notify) {
            dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
            dfd_control_no_callback_named(c, call, cb, cb_len);
        }
        return 0;
    }

    /* the parent waits for its children on this loop */
    call->kind = DFD_KIND_CAST;
    call->hooks = &cast_parent_hooks;
    call->timeout_ms = o.timeout_ms ? o.timeout_ms : loop->srv->cfg->default_timeout_ms;
    if (!call->notify) {
        cast->parent = call;
        call->cast_parent = cast;
        cast->refs++;
        dfd_conn_link(c, call);
        atomic_store(&call->state, DFD_CALL_RUNNING);
        dfd_dispatch_arm_deadline(call);
    }
    size_t total = cast->n;
    for (size_t i = 0; i < total; i++) {
        if (targets[i] == NULL)
            continue;
        dfd_call *child = cast_child(call, cast, i);
        if (child == NULL) {
            cast_fill_error(&cast->slots[i], DAFFI_E_OVERLOADED, "out of memory");
            if (--cast->remaining == 0 && cast->parent != NULL)
                cast_answer(cast);
            continue;
        }
        dfd_router_route(NULL, child, targets[i]->m->name, strlen(targets[i]->m->name));
    }
    free(targets);
    if (cast->remaining == 0 && cast->parent != NULL)
        cast_answer(cast);
    cast_release(cast); /* the reference this function held */
    return call->notify ? 0 : 1;
}

/* ---- daffi.wait ----------------------------------------------------------------- */

/* 1 when every name in the wait call's first argument is a live member. Appends the
 * missing names to `missing` when not NULL. */
static int wait_satisfied(const dfd_loop *loop, const dfd_call *call, char *missing,
                          size_t cap)
{
    const msgpack_object *names = daffi_arg(&call->base, 0);
    int ok = 1;
    size_t used = 0;
    if (missing)
        missing[0] = '\0';
    for (uint32_t i = 0; i < names->via.array.size; i++) {
        const char *p = NULL;
        size_t len = 0;
        daffi_obj_text(&names->via.array.ptr[i], &p, &len);
        if (dfd_snapshot_find(loop->snapshot, p, len) != NULL)
            continue;
        ok = 0;
        if (missing && used + len + 3 < cap) {
            used += (size_t)snprintf(missing + used, cap - used, "%s%.*s", used ? ", " : "",
                                     (int)len, p);
        }
    }
    return ok;
}

static void wait_unlink(dfd_loop *loop, dfd_call *call)
{
    for (dfd_call **pp = &loop->waiters; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            call->next = NULL;
            atomic_fetch_sub_explicit(&loop->nwaiters, 1, memory_order_relaxed);
            return;
        }
    }
}

/* The caller of a parked daffi.wait left: nobody waits for its answer. */
static void wait_caller_gone(dfd_call *call)
{
    wait_unlink(call->loop, call);
    dfd_call_free(call);
}

int dfd_fanout_wait(dfd_conn *c, dfd_call *call)
{
    dfd_loop *loop = c->loop;
    const msgpack_object *names = daffi_arg(&call->base, 0);
    const msgpack_object *tmo = daffi_arg(&call->base, 1);
    int ok = names != NULL && names->type == MSGPACK_OBJECT_ARRAY &&
             (tmo == NULL || tmo->type == MSGPACK_OBJECT_NIL ||
              tmo->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    for (uint32_t i = 0; ok && i < names->via.array.size; i++) {
        const char *p;
        size_t len;
        ok = daffi_obj_text(&names->via.array.ptr[i], &p, &len) == 0;
    }
    if (!ok) {
        fanout_bad_args(c, call, "daffi.wait takes [[names...], timeout_ms]");
        return 0;
    }
    if (call->notify)
        return 0;
    if (wait_satisfied(loop, call, NULL, 0)) {
        daffi_reply_bool(&call->base, 1);
        dfd_conn_answer_now(c, call);
        return 0;
    }
    call->kind = DFD_KIND_WAIT;
    call->hooks = &wait_hooks;
    call->timeout_ms = loop->srv->cfg->default_timeout_ms;
    if (tmo != NULL && tmo->type == MSGPACK_OBJECT_POSITIVE_INTEGER && tmo->via.u64 > 0)
        call->timeout_ms = tmo->via.u64;
    dfd_conn_link(c, call);
    atomic_store(&call->state, DFD_CALL_RUNNING);
    call->next = loop->waiters;
    loop->waiters = call;
    atomic_fetch_add_explicit(&loop->nwaiters, 1, memory_order_relaxed);
    dfd_dispatch_arm_deadline(call);
    return 1;
}

void dfd_fanout_members_changed(dfd_loop *loop)
{
    dfd_call *call = loop->waiters;
    while (call != NULL) {
        dfd_call *next = call->next;
        if (wait_satisfied(loop, call, NULL, 0)) {
            wait_unlink(loop, call);
            daffi_reply_bool(&call->base, 1);
            atomic_store(&call->state, DFD_CALL_COMPLETING);
            dfd_dispatch_finish(call);
        }
        call = next;
    }
}

/* The deadline of a cast (what it has, missing slots TIMEOUT) or a wait. */
static void fanout_deadline(dfd_call *call)
{
    dfd_loop *loop = call->loop;
    if (call->kind == DFD_KIND_CAST) {
        dfd_cast *cast = call->cast_parent;
        if (cast != NULL && cast->parent == call)
            cast_answer(cast);
        return;
    }
    /* DFD_KIND_WAIT */
    char missing[300];
    wait_satisfied(loop, call, missing, sizeof(missing));
    wait_unlink(loop, call);
    char msg[400];
    snprintf(msg, sizeof(msg), "members still missing after %llu ms: %s",
             (unsigned long long)call->timeout_ms, missing);
    dfd_stat_add(&loop->stats, DFD_STAT_timeouts, 1);
    daffi_call_set_error(&call->base, DAFFI_E_TIMEOUT, msg);
    atomic_store(&call->state, DFD_CALL_COMPLETING);
    dfd_dispatch_finish(call);
}

void dfd_fanout_loop_destroy(dfd_loop *loop)
{
    while (loop->waiters != NULL) {
        dfd_call *call = loop->waiters;
        loop->waiters = call->next;
        dfd_call_free(call);
    }
}
