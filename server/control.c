/*
 * control.c - the daffi.* control methods (see control.h).
 */
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "server.h"
#include "stats.h"
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

/* Packs the members list: [{"name", "callbacks"}...]. */
static void control_pack_members(msgpack_packer *pk, const dfd_loop *loop)
{
    msgpack_pack_array(pk, 1);
    control_pack_self(pk, loop);
}

void dfd_control_no_callback(dfd_conn *c, dfd_call *call)
{
    if (call->notify)
        return;
    char msg[360];
    snprintf(msg, sizeof(msg), "no callback '%.256s'", call->base.method);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    daffi_pack_response_error_details(&pk, call->msgid, DAFFI_E_NO_CALLBACK, msg);
    msgpack_pack_map(&pk, 1);
    daffi_pack_cstr(&pk, "members");
    control_pack_members(&pk, c->loop);
    daffi_pack_response_error_end(&pk);
    dfd_conn_write_raw(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void dfd_control_handle(dfd_conn *c, dfd_call *call)
{
    const char *m = call->base.method + 6; /* after "daffi." */
    if (strcmp(m, "ping") == 0 || strcmp(m, "members") == 0 || strcmp(m, "hello") == 0) {
        if (call->notify)
            return;
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
        return;
    }
    if (call->notify) {
        dfd_stat_add(&c->loop->stats, DFD_STAT_unknown_notifications, 1);
        return;
    }
    if (strcmp(m, "call") == 0 || strcmp(m, "cast") == 0 || strcmp(m, "wait") == 0 ||
        strcmp(m, "subscribe") == 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "%s needs a router; this daffid runs role=%s",
                 call->base.method, dfd_role_name(c->loop->srv->cfg->role));
        dfd_conn_error(c, call->msgid, DAFFI_E_NO_CALLBACK, msg);
        return;
    }
    dfd_stat_add(&c->loop->stats, DFD_STAT_no_callback, 1);
    dfd_control_no_callback(c, call);
}
