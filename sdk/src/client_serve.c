/*
 * client_serve.c - the server side of an asynchronous client: callbacks it exposes
 * (registered with the plugin SDK's daffi_callback_def, announced with daffi.hello,
 * run on the client's loop with the daffi_call object every host shares), and the
 * membership events of daffi.subscribe delivered to its event callback.
 *
 * A request from the peer is copied into a daffi_call (daffi_call_load), so a handler
 * may keep it past the read that brought it (DAFFI_PENDING) and complete it later
 * with daffi_call_done() from the loop. Its response goes out only on the connection
 * it came in on: after a reconnect the caller that asked is gone, so the reply is
 * dropped (daffi_call_cancelled() says so).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callobj.h"
#include "client_int.h"

/* ---- served calls ----------------------------------------------------------------- */

/* Unlinks sv from its client's list of calls being served. */
static void served_unlink(daffi_client *c, daffi__served *sv)
{
    if (sv->prev != NULL)
        sv->prev->next = sv->next;
    else
        c->as->served = sv->next;
    if (sv->next != NULL)
        sv->next->prev = sv->prev;
    sv->next = sv->prev = NULL;
}

/* Appends an error response [1, msgid, [code, text], nil] to c's output. */
static void respond_error(daffi_client *c, uint32_t msgid, int code, const char *text)
{
    if (daffi_pack_response_error(&c->pk, msgid, code, text) == -1)
        return; /* out of memory: the caller will time out, nothing better to do */
    daffi__as_output_added(c);
}

/* Sends sv's response (unless it is a notification, or its connection is gone) and
 * frees sv. */
static void served_finish(daffi__served *sv)
{
    daffi_client *c = sv->c;
    msgpack_sbuffer *sb;

    if (c != NULL) {
        served_unlink(c, sv);
        if (!sv->is_notify && c->as->state == DAFFI__AS_CONNECTED &&
            sv->conn_gen == c->as->conn_gen) {
            sb = &c->as->scratch;
            sb->size = 0;
            if (daffi_call_write_response(&sv->call, sv->msgid, sb, &c->lim) == -1)
                respond_error(c, sv->msgid, DAFFI_E_OVERLOADED,
                              "out of memory for the response");
            else if (daffi__out_write(&c->out, sb->data, sb->size) == 0)
                daffi__as_output_added(c);
        }
    }
    daffi_call_destroy(&sv->call);
    free(sv);
}

/* daffi_call_done() of a served call whose handler returned DAFFI_PENDING. */
static void served_done(daffi_call *call)
{
    served_finish((daffi__served *)call);
}

/* daffi_call_cancelled(): the reply would be dropped, or come after the caller's
 * deadline. */
static int served_cancelled(const daffi_call *call)
{
    const daffi__served *sv = (const daffi__served *)call;

    return sv->c == NULL || sv->c->as->closing || sv->c->as->state != DAFFI__AS_CONNECTED ||
           sv->conn_gen != sv->c->as->conn_gen ||
           (sv->deadline_ns != 0 && daffi__now_ns() > sv->deadline_ns);
}

static const daffi_call_ops served_ops = {served_done, served_cancelled, NULL};

/* Returns the exposed callback named name (len bytes), or NULL. */
static const daffi__exposed *exposed_find(const daffi__async *as, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < as->nexposed; i++)
        if (strlen(as->exposed[i].name) == len && memcmp(as->exposed[i].name, name, len) == 0)
            return &as->exposed[i];
    return NULL;
}

/* Delivers a daffi.event notification [{"type": str, "member": str}] (decoded in
 * call) to the event callback. Anything else under that name is counted as ignored. */
static void deliver_event(daffi_client *c, const daffi_call *call)
{
    const msgpack_object *ev = daffi_arg(call, 0);
    const msgpack_object *type = daffi_obj_get(ev, "type");
    const msgpack_object *member = daffi_obj_get(ev, "member");
    char *t, *m;

    if (c->as->event_fn == NULL || type == NULL || member == NULL ||
        type->type != MSGPACK_OBJECT_STR || member->type != MSGPACK_OBJECT_STR) {
        c->stats.notifications_ignored++;
        return;
    }
    t = strndup(type->via.str.ptr, type->via.str.size);
    m = strndup(member->via.str.ptr, member->via.str.size);
    if (t != NULL && m != NULL) {
        c->stats.events++;
        c->as->event_fn(c, t, m, ev, c->as->event_arg);
    }
    free(t);
    free(m);
}

/* Turns a loaded daffi.call [callback, params, {"to": name, "timeout_ms": ms}] into
 * the call of callback, as a daffid service does: a `to` naming anyone but this
 * client is UNAVAILABLE, the timeout becomes the call's deadline. Returns 0, or -1
 * after answering the request (a notification: silently). */
static int serve_unwrap(daffi_client *c, daffi__served *sv, uint32_t msgid, int is_notify)
{
    const msgpack_object *opts = daffi_arg(&sv->call, 2), *to = NULL, *ms = NULL;
    const char *name = NULL;
    size_t len = 0;
    char text[400];

    if (opts != NULL && opts->type == MSGPACK_OBJECT_MAP) {
        to = daffi_obj_get(opts, "to");
        ms = daffi_obj_get(opts, "timeout_ms");
    }
    if ((opts != NULL && opts->type != MSGPACK_OBJECT_MAP && opts->type != MSGPACK_OBJECT_NIL) ||
        (to != NULL && to->type != MSGPACK_OBJECT_NIL && daffi_obj_text(to, &name, &len) == -1) ||
        (ms != NULL && ms->type != MSGPACK_OBJECT_NIL && ms->type != MSGPACK_OBJECT_POSITIVE_INTEGER) ||
        daffi_call_unwrap(&sv->call) == -1) {
        if (!is_notify)
            respond_error(c, msgid, DAFFI_E_BAD_ARGS, "daffi.call takes [callback, [params...], "
                          "{\"to\": name, \"timeout_ms\": int}]");
        return -1;
    }
    if (name != NULL && (len != strlen(c->as->name) || memcmp(name, c->as->name, len) != 0)) {
        snprintf(text, sizeof(text), "no member named '%.*s' (this is client '%.100s')",
                 (int)(len > 200 ? 200 : len), name, c->as->name);
        if (!is_notify)
            respond_error(c, msgid, DAFFI_E_UNAVAILABLE, text);
        return -1;
    }
    if (ms != NULL && ms->type == MSGPACK_OBJECT_POSITIVE_INTEGER && ms->via.u64 > 0)
        sv->deadline_ns = daffi__now_ns() +
                          (int64_t)(ms->via.u64 > 86400000u * 7u ? 86400000u * 7u : ms->via.u64) *
                              1000000;
    return 0;
}

/* See client_int.h. */
void daffi__serve_message(daffi_client *c, const char *msg, size_t size, const daffi_scan *s)
{
    daffi__async *as = c->as;
    const daffi__exposed *ex;
    daffi__served *sv;
    char text[400];
    int is_notify = s->kind == DAFFI_MSG_NOTIFY;

    /* credit and aborts for the streams this client sends (client_astream.c) */
    if (is_notify && c->streams != NULL && daffi__astream_note(c, msg, size))
        return;
    sv = malloc(sizeof(*sv));
    if (sv == NULL) {
        if (!is_notify)
            respond_error(c, s->msgid, DAFFI_E_OVERLOADED, "out of memory");
        return;
    }
    daffi_call_init(&sv->call);
    sv->deadline_ns = 0;
    if (daffi_call_load(&sv->call, msg, size, NULL) == -1) {
        if (!is_notify)
            respond_error(c, s->msgid, DAFFI_E_OVERLOADED, "out of memory");
        goto drop;
    }
    if (is_notify && strcmp(sv->call.method, "daffi.event") == 0) {
        deliver_event(c, &sv->call);
        goto drop;
    }
    /* a call wrapped with a member name or a deadline (a router or caller sends it);
     * one this client cannot serve is counted as refused or ignored, as others are */
    if (strcmp(sv->call.method, "daffi.call") == 0 &&
        serve_unwrap(c, sv, s->msgid, is_notify) == -1) {
        if (is_notify)
            c->stats.notifications_ignored++;
        else
            c->stats.requests_refused++;
        goto drop;
    }
    ex = exposed_find(as, sv->call.msg.method, sv->call.msg.method_len);
    if (ex == NULL) {
        if (is_notify) {
            c->stats.notifications_ignored++;
        } else {
            c->stats.requests_refused++;
            snprintf(text, sizeof(text), "no callback '%.256s' on client '%.100s'",
                     sv->call.method, as->name);
            respond_error(c, s->msgid, DAFFI_E_NO_CALLBACK, text);
        }
        goto drop;
    }
    sv->c = c;
    sv->msgid = s->msgid;
    sv->is_notify = is_notify;
    sv->conn_gen = as->conn_gen;
    sv->call.ops = &served_ops;
    sv->call.host = NULL;
    sv->call.state = ex->state;
    sv->call.loop = as->base;
    /* linked before the handler runs: daffi_close() from inside it must find it */
    sv->prev = NULL;
    sv->next = as->served;
    if (as->served != NULL)
        as->served->prev = sv;
    as->served = sv;
    c->stats.requests_served++;
    if (ex->fn(&sv->call) == DAFFI_DONE)
        served_finish(sv);
    return;

drop:
    daffi_call_destroy(&sv->call);
    free(sv);
}

/* See client_int.h. */
void daffi__serve_release(daffi_client *c)
{
    daffi__async *as = c->as;
    daffi__served *sv, *next;
    size_t i;

    for (sv = as->served; sv != NULL; sv = next) {
        next = sv->next;
        sv->c = NULL;
        sv->next = sv->prev = NULL;
    }
    as->served = NULL;
    for (i = 0; i < as->nexposed; i++)
        free(as->exposed[i].name);
    free(as->exposed);
    as->exposed = NULL;
    as->nexposed = as->exposed_cap = 0;
}

/* ---- announcing: daffi.hello ------------------------------------------------------- */

/* daffi.hello answered: pass the answer on. */
static void hello_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    (void)arg;
    if (c->as->announced != NULL)
        c->as->announced(c, res, err, c->as->announced_arg);
}

/* Sends daffi.hello [{"name": NAME, "callbacks": [...]}] with every exposed callback.
 * Returns 0, or -1 with err set. */
static int send_hello(daffi_client *c, daffi_error *err)
{
    daffi__async *as = c->as;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t i;
    int rc = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc |= msgpack_pack_array(&pk, 1);
    rc |= msgpack_pack_map(&pk, 2);
    rc |= daffi_pack_cstr(&pk, "name");
    rc |= daffi_pack_cstr(&pk, as->name);
    rc |= daffi_pack_cstr(&pk, "callbacks");
    rc |= msgpack_pack_array(&pk, as->nexposed);
    for (i = 0; i < as->nexposed; i++)
        rc |= daffi_pack_cstr(&pk, as->exposed[i].name);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "daffi.hello: out of memory");
        return -1;
    }
    rc = daffi__async_send(c, 0, 0, "daffi.hello", NULL, NULL, sb.data, sb.size,
                           c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 0, 0,
                           hello_reply, NULL, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Checks one entry of a table given to daffi_client_expose(): against the rules and
 * against the names before it (in the table and already exposed). Returns 0, or -1
 * with err set. */
static int expose_check(const daffi__async *as, const daffi_callback_def *defs, size_t i,
                        daffi_error *err)
{
    const daffi_callback_def *d = &defs[i];
    size_t k, len = strlen(d->name);

    if (len == 0 || len > 255) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "callback %zu: name must be 1 to 255 bytes", i);
        return -1;
    }
    if (strncmp(d->name, "daffi.", 6) == 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS,
                       "callback %zu '%s': names beginning with \"daffi.\" are reserved", i,
                       d->name);
        return -1;
    }
    if (d->fn == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "callback %zu '%s': handler is NULL", i, d->name);
        return -1;
    }
    if (d->flags != 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS,
                       "callback %zu '%s': flags 0x%x not supported by a client (a client "
                       "runs handlers on its loop; for blocking work use your own thread "
                       "and complete the call from the loop)", i, d->name, d->flags);
        return -1;
    }
    for (k = 0; k < i; k++)
        if (strcmp(defs[k].name, d->name) == 0)
            break;
    if (k < i || exposed_find(as, d->name, len) != NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "callback %zu '%s': exposed twice", i, d->name);
        return -1;
    }
    return 0;
}

/* See client.h. */
int daffi_client_expose(daffi_client *c, const daffi_callback_def *defs, void *state,
                        daffi_reply_fn announced, void *arg, daffi_error *err)
{
    daffi__async *as;
    daffi__exposed *grown;
    size_t n, i, cap;

    if (c == NULL || c->as == NULL || defs == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_client_expose: %s",
                       c == NULL ? "client is NULL"
                       : defs == NULL ? "callback table is NULL"
                                      : "needs an asynchronous client (daffi_client_new): a "
                                        "synchronous one reads only while it calls");
        return -1;
    }
    as = c->as;
    if (as->state == DAFFI__AS_CLOSED) {
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "%s: not connected (%s)", c->address,
                       c->closed_why != NULL ? c->closed_why : "closed");
        return -1;
    }
    for (n = 0; defs[n].name != NULL; n++)
        if (expose_check(as, defs, n, err) == -1)
            return -1;
    if (as->nexposed + n > as->exposed_cap) {
        cap = as->exposed_cap ? as->exposed_cap : 8;
        while (cap < as->nexposed + n)
            cap *= 2;
        grown = realloc(as->exposed, cap * sizeof(*grown));
        if (grown == NULL)
            goto oom;
        as->exposed = grown;
        as->exposed_cap = cap;
    }
    for (i = 0; i < n; i++) {
        as->exposed[as->nexposed + i].name = strdup(defs[i].name);
        if (as->exposed[as->nexposed + i].name == NULL) {
            while (i-- > 0)
                free(as->exposed[as->nexposed + i].name);
            goto oom;
        }
        as->exposed[as->nexposed + i].fn = defs[i].fn;
        as->exposed[as->nexposed + i].state = state;
    }
    as->nexposed += n;
    as->announced = announced;
    as->announced_arg = arg;
    /* connected: announce now; otherwise the next connection does */
    if (as->state == DAFFI__AS_CONNECTED && n > 0)
        return send_hello(c, err);
    daffi_error_clear(err);
    return 0;

oom:
    daffi__err_set(err, DAFFI_E_UNAVAILABLE, "daffi_client_expose: out of memory");
    return -1;
}

/* ---- membership events: daffi.subscribe -------------------------------------------- */

/* The params of daffi.subscribe: [["members"]]. */
static const char subscribe_params[] = "\x91\x91\xa7members";

/* The first answer to daffi.subscribe: a success makes the subscription one to renew
 * on reconnect; the answer goes to the done callback. */
static void subscribe_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    daffi_reply_fn done = c->as->sub_done;

    (void)arg;
    c->as->sub_active = res != NULL;
    c->as->sub_done = NULL;
    if (done != NULL)
        done(c, res, err, c->as->sub_done_arg);
}

/* A renewal's answer: an error ends the renewals. */
static void subscribe_renewed(daffi_client *c, daffi_result *res, daffi_error *err, void *arg)
{
    (void)err;
    (void)arg;
    if (res == NULL && err->code != DAFFI_E_UNAVAILABLE)
        c->as->sub_active = 0;
}

/* See client.h. */
int daffi_subscribe_members_async(daffi_client *c, daffi_event_fn fn, void *fn_arg,
                                  int timeout_ms, daffi_reply_fn done, void *done_arg,
                                  daffi_error *err)
{
    if (c == NULL || c->as == NULL || fn == NULL) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "daffi_subscribe_members_async: %s",
                       c == NULL ? "client is NULL"
                       : fn == NULL ? "event callback is NULL"
                                    : "needs an asynchronous client (daffi_client_new)");
        return -1;
    }
    if (timeout_ms < 0) {
        daffi__err_set(err, DAFFI_E_BAD_ARGS, "timeout %d ms: must be >= 0 (0: forever)",
                       timeout_ms);
        return -1;
    }
    if (daffi__async_send(c, 0, 0, "daffi.subscribe", NULL, NULL, subscribe_params,
                          sizeof(subscribe_params) - 1, timeout_ms, 0, subscribe_reply, NULL,
                          err) == -1)
        return -1;
    c->as->event_fn = fn;
    c->as->event_arg = fn_arg;
    c->as->sub_done = done;
    c->as->sub_done_arg = done_arg;
    c->as->sub_timeout_ms = timeout_ms;
    return 0;
}

/* See client_int.h. Failures to send are not fatal: an announcement that could not
 * be made leaves the calls to this client answered NO_CALLBACK by the router. */
void daffi__serve_announce(daffi_client *c)
{
    daffi__async *as = c->as;
    daffi_error err = DAFFI_ERROR_INIT;

    if (as->nexposed > 0)
        send_hello(c, &err);
    if (as->sub_active && as->event_fn != NULL)
        daffi__async_send(c, 0, 0, "daffi.subscribe", NULL, NULL, subscribe_params,
                          sizeof(subscribe_params) - 1, as->sub_timeout_ms, 0,
                          subscribe_renewed, NULL, &err);
    daffi_error_clear(&err);
}
