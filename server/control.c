/*
 * control.c - the daffi.* control methods outside the router role, and the members
 * listing shared with the router (see control.h).
 */
#include <stdio.h>
#include <string.h>

#include "call.h"
#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "stats.h"
#include "stream.h"
#include "table.h"

/* Packs {"name": NAME, "callbacks": [...]} for this daffid from the loop's table. */
static void control_pack_self(msgpack_packer *pk, const dfd_loop *loop)
{
    const dfd_table *t = loop->table;
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, loop->srv->cfg->name);
    daffi_pack_cstr(pk, "callbacks");
    msgpack_pack_array(pk, (uint32_t)t->ncallbacks);
    for (size_t i = 0; i < t->nplugins; i++)
        for (size_t k = 0; k < t->plugins[i]->ncallbacks; k++)
            daffi_pack_cstr(pk, t->plugins[i]->callbacks[k].name);
}

void dfd_control_pack_snapshot(msgpack_packer *pk, const dfd_snapshot *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (atomic_load(&s->members[i].m->alive))
            n++;
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < s->n; i++) {
        const dfd_snap_member *sm = &s->members[i];
        if (!atomic_load(&sm->m->alive))
            continue;
        msgpack_pack_map(pk, 2);
        daffi_pack_cstr(pk, "name");
        daffi_pack_cstr(pk, sm->m->name);
        daffi_pack_cstr(pk, "callbacks");
        msgpack_pack_array(pk, (uint32_t)sm->ncallbacks);
        for (size_t k = 0; k < sm->ncallbacks; k++)
            daffi_pack_cstr(pk, sm->callbacks[k]);
    }
}

/* Packs the members list: [{"name", "callbacks"}...]. */
static void control_pack_members(msgpack_packer *pk, const dfd_loop *loop)
{
    if (loop->srv->cfg->role == DFD_ROLE_ROUTER && loop->snapshot != NULL) {
        dfd_control_pack_snapshot(pk, loop->snapshot);
        return;
    }
    msgpack_pack_array(pk, 1);
    control_pack_self(pk, loop);
}

void dfd_control_no_callback_named(dfd_conn *c, dfd_call *call, const char *name, size_t len)
{
    if (call->notify)
        return;
    char msg[360];
    snprintf(msg, sizeof(msg), "no callback '%.*s'", (int)(len > 256 ? 256 : len), name);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_response_error_details(&pk, call->msgid, DAFFI_E_NO_CALLBACK, msg);
    msgpack_pack_map(&pk, 1);
    daffi_pack_cstr(&pk, "members");
    control_pack_members(&pk, c->loop);
    daffi_pack_response_error_end(&pk);
    dfd_conn_write_raw_error(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void dfd_control_no_callback(dfd_conn *c, dfd_call *call)
{
    dfd_control_no_callback_named(c, call, call->base.method, call->base.msg.method_len);
}


/* daffi.call outside a router: a local callback; `to` may only name this daffid. */
static int control_local_call(dfd_conn *c, dfd_call *call)
{
    static const char usage[] =
        "daffi.call takes [callback, [params...], {\"to\": name, \"timeout_ms\": int}]";
    const msgpack_object *opts = daffi_arg(&call->base, 2);
    const char *to = NULL;
    size_t to_len = 0;
    uint64_t timeout = 0;
    if (opts != NULL && opts->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < opts->via.map.size; i++) {
            const char *k;
            size_t klen;
            const msgpack_object *v = &opts->via.map.ptr[i].val;
            if (daffi_obj_text(&opts->via.map.ptr[i].key, &k, &klen) == -1)
                continue;
            if (klen == 2 && memcmp(k, "to", 2) == 0 && v->type != MSGPACK_OBJECT_NIL &&
                daffi_obj_text(v, &to, &to_len) == -1)
                goto bad;
            if (klen == 10 && memcmp(k, "timeout_ms", 10) == 0 && v->type != MSGPACK_OBJECT_NIL) {
                if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                    goto bad;
                timeout = v->via.u64;
            }
        }
    } else if (opts != NULL && opts->type != MSGPACK_OBJECT_NIL) {
        goto bad;
    }
    if (daffi_call_unwrap(&call->base) == -1)
        goto bad;
    const char *name = c->loop->srv->cfg->name;
    if (to != NULL && (to_len != strlen(name) || memcmp(to, name, to_len) != 0)) {
        char msg[360];
        snprintf(msg, sizeof(msg), "no member named '%.*s' (this daffid is '%s' and runs "
                 "role=%s, without a router)", (int)(to_len > 200 ? 200 : to_len), to, name,
                 dfd_role_name(c->loop->srv->cfg->role));
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_UNAVAILABLE, msg);
        return 0;
    }
    const char *method = call->base.method;
    size_t len = call->base.msg.method_len;
    const dfd_callback *cb = dfd_table_find(c->loop->table, method, len);
    if (cb == NULL || strlen(method) != len) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_no_callback, 1);
        dfd_control_no_callback(c, call);
        return 0;
    }
    call->timeout_ms = timeout;
    dfd_dispatch_local(c, call, cb);
    return 1;
bad:
    if (!call->notify)
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, usage);
    return 0;
}

int dfd_control_handle(dfd_conn *c, dfd_call *call)
{
    if (c->loop->srv->cfg->role == DFD_ROLE_ROUTER)
        return dfd_router_control(c, call);
    const char *m = call->base.method + 6; /* after "daffi." */
    if (strcmp(m, "ping") == 0 || strcmp(m, "members") == 0 || strcmp(m, "hello") == 0) {
        if (call->notify)
            return 0;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        daffi_pack_response_ok(&pk, call->msgid);
        if (m[0] == 'p') {
            daffi_pack_cstr(&pk, "pong");
        } else if (m[0] == 'm') {
            control_pack_members(&pk, c->loop);
        } else {
            msgpack_pack_map(&pk, 2);
            daffi_pack_cstr(&pk, "name");
            daffi_pack_cstr(&pk, c->loop->srv->cfg->name);
            daffi_pack_cstr(&pk, "members");
            control_pack_members(&pk, c->loop);
        }
        dfd_conn_write_raw(c, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        return 0;
    }
    if (strcmp(m, "call") == 0)
        return control_local_call(c, call);
    if (strcmp(m, "stream") == 0 || strcmp(m, "chunk") == 0 || strcmp(m, "end") == 0 ||
        strcmp(m, "abort") == 0 || strcmp(m, "credit") == 0)
        return dfd_stream_control(c, call, m);
    if (call->notify) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unknown_notifications, 1);
        return 0;
    }
    if (strcmp(m, "cast") == 0 || strcmp(m, "wait") == 0 || strcmp(m, "subscribe") == 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "%s needs a router; this daffid runs role=%s",
                 call->base.method, dfd_role_name(c->loop->srv->cfg->role));
        dfd_conn_error(c, call->msgid, DAFFI_E_NO_CALLBACK, msg);
        return 0;
    }
    dfd_stat_add(&c->loop->stats, DFD_STAT_no_callback, 1);
    dfd_control_no_callback(c, call);
    return 0;
}
