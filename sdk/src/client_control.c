/*
 * client_control.c - the daffi control methods as client calls, for both kinds of
 * client: ping (daffi.ping, synchronous; the asynchronous one is client_async.c's),
 * cast and cast_nowait (daffi.cast), members (daffi.members) and wait_for_members
 * (daffi.wait), per the control table of sdk/PROTOCOL.md section 6.
 * Each packs its params once and goes through the raw call of the client's kind.
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* Packs the params of daffi.cast: [callback, params, {"to": [names], "timeout_ms":
 * ms}], the options present only when given. Returns 0, or -1 with err set. */
static int pack_cast(msgpack_sbuffer *sb, const char *callback, const msgpack_object *params,
                     const char *const *to, size_t nto, int timeout_ms, daffi_error *err)
{
    msgpack_packer pk;
    size_t i;
    int rc = 0;

    if (callback == NULL || (nto > 0 && to == NULL) || timeout_ms < 0 ||
        (params != NULL && params->type != MSGPACK_OBJECT_ARRAY)) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "cast: %s",
                       callback == NULL ? "callback is NULL"
                       : timeout_ms < 0 ? "timeout must be >= 0 (0: the router's default)"
                       : nto > 0 && to == NULL ? "member list is NULL"
                                               : "params is not an array");
        return -1;
    }
    for (i = 0; i < nto; i++) {
        if (to[i] == NULL) {
            daffi__err_set(err, DAFFI_E_BAD_ARGS, "cast: member name %zu is NULL", i);
            return -1;
        }
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    rc |= msgpack_pack_array(&pk, 3);
    rc |= daffi_pack_cstr(&pk, callback);
    if (params != NULL)
        rc |= msgpack_pack_object(&pk, *params);
    else
        rc |= msgpack_pack_array(&pk, 0);
    rc |= msgpack_pack_map(&pk, (nto > 0) + (timeout_ms > 0));
    if (nto > 0) {
        rc |= daffi_pack_cstr(&pk, "to");
        rc |= msgpack_pack_array(&pk, nto);
        for (i = 0; i < nto; i++)
            rc |= daffi_pack_cstr(&pk, to[i]);
    }
    if (timeout_ms > 0) {
        rc |= daffi_pack_cstr(&pk, "timeout_ms");
        rc |= msgpack_pack_int(&pk, timeout_ms);
    }
    if (rc != 0) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "cast: out of memory");
        return -1;
    }
    return 0;
}

/* Packs the params of daffi.wait: [[names...], timeout_ms]. Returns 0, or -1 with err
 * set. */
static int pack_wait(msgpack_sbuffer *sb, const char *const *names, size_t n, int timeout_ms,
                     daffi_error *err)
{
    msgpack_packer pk;
    size_t i;
    int rc = 0;

    if ((n > 0 && names == NULL) || timeout_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "wait_for_members: %s",
                       timeout_ms < 0 ? "timeout must be >= 0 (0: the router's default)"
                                      : "names is NULL");
        return -1;
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    rc |= msgpack_pack_array(&pk, 2);
    rc |= msgpack_pack_array(&pk, n);
    for (i = 0; i < n; i++) {
        if (names[i] == NULL) {
            daffi__err_set(err, DAFFI_E_BAD_ARGS, "wait_for_members: name %zu is NULL", i);
            return -1;
        }
        rc |= daffi_pack_cstr(&pk, names[i]);
    }
    rc |= msgpack_pack_int(&pk, timeout_ms);
    if (rc != 0) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "wait_for_members: out of memory");
        return -1;
    }
    return 0;
}

/* The router waits timeout_ms; this client a little longer, so the router's own
 * answer arrives. Without a timeout (the router's default) the client waits forever. */
static int grace(int timeout_ms)
{
    return timeout_ms > 0 ? DAFFI_ROUTER_GRACE_MS : 0;
}

/* ---- synchronous -------------------------------------------------------------- */

/* See client.h. */
int daffi_ping(daffi_client *c, int timeout_ms, int64_t *rtt_us, daffi_error *err)
{
    daffi_result res;
    const char *s;
    size_t len;
    int64_t start = daffi__now_ns();

    if (daffi_rpc(c, "daffi.ping", NULL, timeout_ms, &res, err) == -1)
        return -1;
    if (rtt_us != NULL)
        *rtt_us = (daffi__now_ns() - start) / 1000;
    if (daffi_obj_str(&res.obj, &s, &len) == -1 || len != 4 || memcmp(s, "pong", 4) != 0) {
        daffi_result_free(&res);
        daffi__err_set(err, DAFFI_E_PROTOCOL, "%s: daffi.ping answered something else than "
                       "\"pong\"", c->address);
        return -1;
    }
    daffi_result_free(&res);
    return 0;
}

/* See client.h. */
int daffi_cast(daffi_client *c, const char *callback, const msgpack_object *params,
               const char *const *to, size_t nto, int timeout_ms, daffi_result *out,
               daffi_error *err)
{
    msgpack_sbuffer sb;
    int rc = -1;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    msgpack_sbuffer_init(&sb);
    if (pack_cast(&sb, callback, params, to, nto, timeout_ms, err) == 0)
        rc = daffi__sync_call_raw(c, "daffi.cast", sb.data, sb.size, timeout_ms,
                                  grace(timeout_ms), out, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* See client.h. */
int daffi_cast_nowait(daffi_client *c, const char *callback, const msgpack_object *params,
                      const char *const *to, size_t nto, int timeout_ms, daffi_error *err)
{
    msgpack_sbuffer sb;
    int rc = -1;

    msgpack_sbuffer_init(&sb);
    if (pack_cast(&sb, callback, params, to, nto, timeout_ms, err) == 0)
        rc = daffi_notify_raw(c, "daffi.cast", sb.data, sb.size, timeout_ms, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* See client.h. */
int daffi_members(daffi_client *c, int timeout_ms, daffi_result *out, daffi_error *err)
{
    return daffi_rpc(c, "daffi.members", NULL, timeout_ms, out, err);
}

/* See client.h. */
int daffi_wait_for_members(daffi_client *c, const char *const *names, size_t n,
                           int timeout_ms, daffi_error *err)
{
    msgpack_sbuffer sb;
    daffi_result res;
    int rc = -1, yes = 0;

    msgpack_sbuffer_init(&sb);
    if (pack_wait(&sb, names, n, timeout_ms, err) == 0 &&
        daffi__sync_call_raw(c, "daffi.wait", sb.data, sb.size, timeout_ms, grace(timeout_ms),
                             &res, err) == 0) {
        if (daffi_obj_bool(&res.obj, &yes) == 0 && yes) {
            rc = 0;
        } else {
            daffi__err_set(err, DAFFI_E_PROTOCOL,
                           "%s: daffi.wait answered something else than true",
                           daffi_client_address(c));
        }
        daffi_result_free(&res);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- asynchronous ------------------------------------------------------------- */

/* See client.h. */
int daffi_cast_async(daffi_client *c, const char *callback, const msgpack_object *params,
                     const char *const *to, size_t nto, int timeout_ms, daffi_reply_fn fn,
                     void *arg, daffi_error *err)
{
    msgpack_sbuffer sb;
    int rc = -1;

    msgpack_sbuffer_init(&sb);
    if (pack_cast(&sb, callback, params, to, nto, timeout_ms, err) == 0)
        rc = daffi__async_call_raw(c, 0, "daffi.cast", sb.data, sb.size, timeout_ms,
                                   grace(timeout_ms), fn, arg, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* See client.h. */
int daffi_cast_nowait_async(daffi_client *c, const char *callback,
                            const msgpack_object *params, const char *const *to,
                            size_t nto, int timeout_ms, daffi_error *err)
{
    msgpack_sbuffer sb;
    int rc = -1;

    msgpack_sbuffer_init(&sb);
    if (pack_cast(&sb, callback, params, to, nto, timeout_ms, err) == 0)
        rc = daffi__async_call_raw(c, 1, "daffi.cast", sb.data, sb.size, 0, 0, NULL, NULL,
                                   err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* See client.h. */
int daffi_members_async(daffi_client *c, int timeout_ms, daffi_reply_fn fn, void *arg,
                        daffi_error *err)
{
    return daffi_rpc_async(c, "daffi.members", NULL, timeout_ms, fn, arg, err);
}

/* The user's completion of an asynchronous daffi.wait, kept while it runs. */
typedef struct wait_ctx {
    daffi_reply_fn fn;
    void *arg;
} wait_ctx;

/* daffi.wait answered: anything but true is PROTOCOL. Frees the context. */
static void wait_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    wait_ctx ctx = *(wait_ctx *)arg;
    daffi_error bad = DAFFI_ERROR_INIT;
    int yes = 0;

    free(arg);
    if (res != NULL && (daffi_obj_bool(&res->obj, &yes) == -1 || !yes)) {
        daffi__err_set(&bad, DAFFI_E_PROTOCOL, "%s: daffi.wait answered something else "
                       "than true", daffi_client_address(c));
        ctx.fn(c, NULL, &bad, ctx.arg);
        daffi_error_clear(&bad);
        return;
    }
    ctx.fn(c, res, err, ctx.arg);
}

/* See client.h. */
int daffi_wait_for_members_async(daffi_client *c, const char *const *names, size_t n,
                                 int timeout_ms, daffi_reply_fn fn, void *arg,
                                 daffi_error *err)
{
    msgpack_sbuffer sb;
    wait_ctx *ctx;
    int rc = -1;

    if (fn == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi.wait: no completion callback");
        return -1;
    }
    ctx = malloc(sizeof(*ctx));
    if (ctx == NULL) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "daffi.wait: out of memory");
        return -1;
    }
    ctx->fn = fn;
    ctx->arg = arg;
    msgpack_sbuffer_init(&sb);
    if (pack_wait(&sb, names, n, timeout_ms, err) == 0)
        rc = daffi__async_call_raw(c, 0, "daffi.wait", sb.data, sb.size, timeout_ms,
                                   grace(timeout_ms), wait_reply, ctx, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc == -1)
        free(ctx);
    return rc;
}
