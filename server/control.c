/*
 * control.c - the daffi.* control methods: the table, the options parser, and the
 * methods every role answers itself (see control.h).
 */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "call.h"
#include "callobj.h"
#include "control.h"
#include "dispatch.h"
#include "fanout.h"
#include "log.h"
#include "membership.h"
#include "router.h"
#include "server.h"
#include "stats.h"
#include "stream.h"
#include "table.h"

#define OPTS_TIMEOUT_MAX_MS (7ull * 24 * 3600 * 1000)

/* ---- the options parser -------------------------------------------------------------- */

int dfd_call_opts_parse(const dfd_call *call, unsigned allowed, dfd_call_opts *o)
{
    memset(o, 0, sizeof(*o));
    const msgpack_object *opts = daffi_arg(&call->base, 2);
    if (opts == NULL || opts->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (opts->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < opts->via.map.size; i++) {
        const char *k;
        size_t klen;
        const msgpack_object *v = &opts->via.map.ptr[i].val;
        if (daffi_obj_text(&opts->via.map.ptr[i].key, &k, &klen) == -1 ||
            v->type == MSGPACK_OBJECT_NIL)
            continue;
        if (klen == 2 && memcmp(k, "to", 2) == 0) {
            if ((allowed & DFD_OPT_TO_LIST) && v->type == MSGPACK_OBJECT_ARRAY)
                o->to_list = v;
            else if (!(allowed & DFD_OPT_TO) || daffi_obj_text(v, &o->to, &o->to_len) == -1)
                return -1;
        } else if (klen == 10 && memcmp(k, "timeout_ms", 10) == 0 && (allowed & DFD_OPT_TIMEOUT)) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > OPTS_TIMEOUT_MAX_MS)
                return -1;
            o->timeout_ms = v->via.u64;
        } else if (klen == 6 && memcmp(k, "window", 6) == 0 && (allowed & DFD_OPT_WINDOW)) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0)
                return -1;
            o->window = v->via.u64;
        }
    }
    return 0;
}

/* ---- answers ---------------------------------------------------------------------------- */

void dfd_control_answer(dfd_conn *c, dfd_call *call, void (*pack)(msgpack_packer *, void *),
                        void *arg)
{
    if (call->notify)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_response_ok(&pk, call->msgid);
    pack(&pk, arg);
    dfd_conn_write_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

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

void dfd_control_pack_members(msgpack_packer *pk, const dfd_loop *loop)
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
    dfd_control_pack_members(&pk, c->loop);
    daffi_pack_response_error_end(&pk);
    dfd_conn_write_raw_error(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void dfd_control_no_callback(dfd_conn *c, dfd_call *call)
{
    dfd_control_no_callback_named(c, call, call->base.method, call->base.msg.method_len);
}

/* ---- the methods every role answers ---------------------------------------------------- */

static void pack_pong(msgpack_packer *pk, void *arg)
{
    (void)arg;
    daffi_pack_cstr(pk, "pong");
}

static void pack_members(msgpack_packer *pk, void *arg)
{
    dfd_control_pack_members(pk, arg);
}

static void pack_hello(msgpack_packer *pk, void *arg)
{
    const dfd_loop *loop = arg;
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, loop->srv->cfg->name);
    daffi_pack_cstr(pk, "members");
    dfd_control_pack_members(pk, loop);
}

static int control_ping(dfd_conn *c, dfd_call *call)
{
    dfd_control_answer(c, call, pack_pong, NULL);
    return 0;
}

static int control_members(dfd_conn *c, dfd_call *call)
{
    dfd_control_answer(c, call, pack_members, c->loop);
    return 0;
}

/* daffi.hello outside a router: this daffid describes itself; nobody joins. */
static int control_hello(dfd_conn *c, dfd_call *call)
{
    if (c->loop->srv->cfg->role == DFD_ROLE_ROUTER)
        return dfd_membership_hello(c, call);
    dfd_control_answer(c, call, pack_hello, c->loop);
    return 0;
}

/* daffi.call [callback, [params...], {"to": name, "timeout_ms": int}]: the callback,
 * routed as a plain call would be (a router's members; elsewhere this daffid, which
 * `to` may only name). */
static int control_call(dfd_conn *c, dfd_call *call)
{
    static const char usage[] =
        "daffi.call takes [callback, [params...], {\"to\": name, \"timeout_ms\": int}]";
    dfd_server *srv = c->loop->srv;
    dfd_call_opts o;
    if (dfd_call_opts_parse(call, DFD_OPT_TO | DFD_OPT_TIMEOUT, &o) == -1 ||
        daffi_call_unwrap(&call->base) == -1) {
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, usage);
        return 0;
    }
    if (call->base.msg.method_len >= 6 && memcmp(call->base.method, "daffi.", 6) == 0) {
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                           "daffi.call cannot call a daffi.* method");
        return 0;
    }
    call->timeout_ms = o.timeout_ms;
    if (srv->cfg->role == DFD_ROLE_ROUTER) {
        dfd_router_route(c, call, o.to, o.to_len);
        return 1;
    }
    const char *name = srv->cfg->name;
    if (o.to != NULL && (o.to_len != strlen(name) || memcmp(o.to, name, o.to_len) != 0)) {
        char msg[400];
        if (srv->cfg->role == DFD_ROLE_WORKER)
            snprintf(msg, sizeof(msg), "no member named '%.*s' here: this daffid is worker "
                     "'%s' of the router at %s; call other members through that router",
                     (int)(o.to_len > 120 ? 120 : o.to_len), o.to, name, srv->cfg->router);
        else
            snprintf(msg, sizeof(msg), "no member named '%.*s' (this daffid is '%s' and runs "
                     "role=%s, without a router)", (int)(o.to_len > 200 ? 200 : o.to_len),
                     o.to, name, dfd_role_name(srv->cfg->role));
        if (!call->notify)
            dfd_conn_error(c, call->msgid, DAFFI_E_UNAVAILABLE, msg);
        return 0;
    }
    srv->route(c, call); /* a service's or worker's table (a child's, watched) */
    return 1;
}

/* ---- the table ---------------------------------------------------------------------------- */

#define ROLE_ALL 0x7u
#define ROLE_ROUTER (1u << DFD_ROLE_ROUTER)

enum {
    CTL_REQUEST = 1u << 0,  /* a notification of it is counted and dropped */
    CTL_NOTIFY = 1u << 1    /* a request of it is answered BAD_ARGS (it is a notification) */
};

typedef struct control_method {
    const char *name;       /* after "daffi." */
    size_t len;
    dfd_control_fn fn;
    unsigned roles;         /* bit (1 << role) for each role that serves it */
    unsigned flags;
    const char *notify_form; /* CTL_NOTIFY: the params a notification carries */
} control_method;

static const control_method control_methods[] = {
    {"ping", 4, control_ping, ROLE_ALL, CTL_REQUEST, NULL},
    {"auth", 4, dfd_auth_control, ROLE_ALL, CTL_REQUEST, NULL},
    {"members", 7, control_members, ROLE_ALL, CTL_REQUEST, NULL},
    {"hello", 5, control_hello, ROLE_ALL, CTL_REQUEST, NULL},
    {"call", 4, control_call, ROLE_ALL, 0, NULL},
    {"cast", 4, dfd_fanout_cast, ROLE_ROUTER, 0, NULL},
    {"wait", 4, dfd_fanout_wait, ROLE_ROUTER, 0, NULL},
    {"subscribe", 9, dfd_membership_subscribe, ROLE_ROUTER, 0, NULL},
    {"stream", 6, dfd_stream_open, ROLE_ALL, CTL_REQUEST, NULL},
    {"end", 3, dfd_stream_end, ROLE_ALL, 0, NULL},
    {"chunk", 5, dfd_stream_chunk, ROLE_ALL, CTL_NOTIFY, "[stream id, chunk]"},
    {"credit", 6, dfd_stream_credit, ROLE_ALL, CTL_NOTIFY, "[stream id, chunks]"},
    {"abort", 5, dfd_stream_abort, ROLE_ALL, CTL_NOTIFY, "[stream id]"},
};

int dfd_control_handle(dfd_conn *c, dfd_call *call)
{
    dfd_loop *loop = c->loop;
    const char *name = call->base.method + 6; /* after "daffi." */
    size_t len = call->base.msg.method_len - 6;
    const control_method *m = NULL;
    for (size_t i = 0; i < sizeof(control_methods) / sizeof(control_methods[0]); i++)
        if (control_methods[i].len == len && memcmp(control_methods[i].name, name, len) == 0) {
            m = &control_methods[i];
            break;
        }
    dfd_role role = loop->srv->cfg->role;
    if (m == NULL || (call->notify && (m->flags & CTL_REQUEST))) {
        if (call->notify) {
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
            return 0;
        }
        dfd_stat_add(&loop->stats, DFD_STAT_no_callback, 1);
        dfd_control_no_callback(c, call);
        return 0;
    }
    if (!(m->roles & (1u << role))) {
        if (call->notify) {
            dfd_stat_add(&loop->stats, DFD_STAT_unknown_notifications, 1);
            return 0;
        }
        char msg[200];
        snprintf(msg, sizeof(msg), "daffi.%s needs a router; this daffid runs role=%s",
                 m->name, dfd_role_name(role));
        dfd_conn_error(c, call->msgid, DAFFI_E_NO_CALLBACK, msg);
        return 0;
    }
    if (!call->notify && (m->flags & CTL_NOTIFY)) {
        char msg[240];
        snprintf(msg, sizeof(msg), "daffi.%s is a notification, never answered: send it as "
                 "[2, \"daffi.%s\", %s]", m->name, m->name, m->notify_form);
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
        return 0;
    }
    return m->fn(c, call);
}
