/*
 * membership-hello.c - daffi.hello in the router role: a caller's connection becomes a
 * link of a member (a new member, or one more link of a member that announced a
 * session), or re-announces its member's callbacks (see membership.h; the protocol is
 * PROTOCOL.md's "Members").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "callobj.h"
#include "control.h"
#include "log.h"
#include "membership.h"
#include "server.h"

#define HELLO_MAX_CALLBACKS 65536
#define MEMBER_NAME_MAX 255

static void pack_hello_reply(msgpack_packer *pk, void *arg)
{
    dfd_server *srv = arg;
    msgpack_pack_map(pk, 2);
    daffi_pack_cstr(pk, "name");
    daffi_pack_cstr(pk, srv->cfg->name);
    daffi_pack_cstr(pk, "members");
    dfd_snapshot *s = dfd_registry_snapshot(srv);
    dfd_control_pack_snapshot(pk, s);
    dfd_snapshot_release(s);
}

/* 1 when every byte is in [A-Za-z0-9_.-] (member names: they appear in logs). */
static int name_chars_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

/* 1 when every byte is printable ASCII without spaces (callback names, sessions). */
static int printable_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return 0;
    return 1;
}

/* Reads an optional unsigned key of info into *out (left alone when absent). Returns 0,
 * or -1 when it is present but not an integer from lo to hi. */
static int hello_uint(const msgpack_object *info, const char *key, unsigned lo, unsigned hi,
                      unsigned *out)
{
    const msgpack_object *o = daffi_obj_get(info, key);
    uint64_t v;
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (daffi_obj_uint(o, &v) == -1 || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Reads the hello's options besides name and callbacks into h: "deadlines", "replace",
 * "session", "link", "links". Returns NULL, or what is wrong (static text). */
static const char *hello_options(const msgpack_object *info, dfd_hello *h, int *replace)
{
    const msgpack_object *session = daffi_obj_get(info, "session");
    daffi_obj_bool(daffi_obj_get(info, "deadlines"), &h->deadlines);
    daffi_obj_bool(daffi_obj_get(info, "replace"), replace);
    h->link = 0;
    h->links = 1;
    if (session != NULL && session->type != MSGPACK_OBJECT_NIL &&
        (daffi_obj_text(session, &h->session, &h->session_len) == -1 ||
         h->session_len == 0 || h->session_len > DFD_MEMBER_SESSION_MAX ||
         !printable_ok(h->session, h->session_len)))
        return "daffi.hello: \"session\" must be a str of 1-64 printable characters "
               "without spaces";
    if (hello_uint(info, "links", 1, DFD_MEMBER_LINKS_MAX, &h->links) == -1)
        return "daffi.hello: \"links\" must be an integer from 1 to 256";
    if (hello_uint(info, "link", 0, DFD_MEMBER_LINKS_MAX - 1, &h->link) == -1 ||
        h->link >= h->links)
        return "daffi.hello: \"link\" must be an integer from 0 to links - 1";
    if (h->session == NULL && h->links > 1)
        return "daffi.hello: several links (\"links\" > 1) need a \"session\" naming them "
               "one member";
    return NULL;
}

/* Makes a member from the hello's name and callbacks. Returns it, or NULL after
 * answering the error. */
static dfd_member *hello_member(dfd_conn *c, dfd_call *call, const char *name,
                                size_t name_len, const msgpack_object *cbs)
{
    char msg[400];
    uint32_t ncbs = 0;
    if (cbs != NULL && cbs->type != MSGPACK_OBJECT_NIL) {
        if (cbs->type != MSGPACK_OBJECT_ARRAY || cbs->via.array.size > HELLO_MAX_CALLBACKS) {
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                           "daffi.hello: callbacks must be an array of at most 65536 names");
            return NULL;
        }
        ncbs = cbs->via.array.size;
    }
    const char **names = calloc(ncbs ? ncbs : 1, sizeof(char *));
    size_t *lens = calloc(ncbs ? ncbs : 1, sizeof(size_t));
    dfd_member *fresh = NULL;
    if (names == NULL || lens == NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < ncbs; i++) {
        if (daffi_obj_text(&cbs->via.array.ptr[i], &names[i], &lens[i]) == -1 || lens[i] == 0 ||
            lens[i] > 255 || !printable_ok(names[i], lens[i]) ||
            (lens[i] >= 6 && memcmp(names[i], "daffi.", 6) == 0)) {
            snprintf(msg, sizeof(msg), "daffi.hello: callback %u is not a name a member may "
                     "expose (1-255 printable characters, no spaces, outside daffi.*)", i + 1);
            dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
            goto out;
        }
    }
    /* [auth] member.ID and serve.ID: a name or a callback its identity may not take */
    if (c->rules != NULL)
        dfd_auth_refresh(c);
    if ((c->may_member != NULL || c->may_serve != NULL) &&
        dfd_auth_check_hello(c, call, name, name_len, names, lens, ncbs) == -1)
        goto out;
    fresh = dfd_member_new(name, name_len, names, lens, ncbs);
    if (fresh == NULL)
        dfd_conn_error(c, call->msgid, DAFFI_E_OVERLOADED, "out of memory");
out:
    free(names);
    free(lens);
    return fresh;
}

/* A hello on a connection that is already link l: re-announce the member's callbacks
 * (the name cannot change). Takes fresh. */
static void hello_reannounce(dfd_conn *c, dfd_call *call, dfd_link *l, dfd_member *fresh,
                             const dfd_hello *h)
{
    dfd_server *srv = c->loop->srv;
    dfd_member *self = l->member;
    if (strcmp(self->name, fresh->name) != 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "this connection is member '%s'; a hello cannot rename it",
                 self->name);
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, msg);
    } else {
        l->deadlines = h->deadlines;
        dfd_registry_update(srv, self, fresh->callbacks, fresh->ncallbacks);
        fresh->callbacks = NULL;
        fresh->ncallbacks = 0;
        dfd_control_answer(c, call, pack_hello_reply, srv);
    }
    dfd_member_release(fresh);
}

/* daffi.hello [{"name": str, "callbacks": [str...], ...options}]: makes the caller's
 * connection a link of a member, or re-announces. */
int dfd_membership_hello(dfd_conn *c, dfd_call *call)
{
    dfd_server *srv = c->loop->srv;
    const msgpack_object *info = daffi_arg(&call->base, 0);
    const msgpack_object *name_obj = daffi_obj_get(info, "name");
    const char *name;
    size_t name_len;
    char msg[400];
    if (call->notify)
        return 0; /* a hello needs its answer: the member learns whether it joined */
    if (srv->nats_gateway != NULL) {
        /* every call of a gateway goes to NATS: a member here would never be called */
        dfd_conn_error(c, call->msgid, DAFFI_E_DENIED, "this router is a NATS gateway: "
                       "members join the NATS cluster (a worker: router = nats://HOST:PORT), "
                       "not the router");
        return 0;
    }
    if (name_obj == NULL || daffi_obj_text(name_obj, &name, &name_len) == -1 || name_len == 0 ||
        name_len > MEMBER_NAME_MAX || !name_chars_ok(name, name_len)) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS,
                       "daffi.hello takes [{\"name\": str of 1-255 characters from "
                       "[A-Za-z0-9_.-], \"callbacks\": [str...]}]");
        return 0;
    }
    /* "replace": false: do not take the name from a member holding it (an evicted
     * member rejoining) */
    dfd_hello h = {.name = name, .name_len = name_len};
    int replace = 1;
    const char *why = hello_options(info, &h, &replace);
    if (why != NULL) {
        dfd_conn_error(c, call->msgid, DAFFI_E_BAD_ARGS, why);
        return 0;
    }
    dfd_member *fresh = hello_member(c, call, name, name_len, daffi_obj_get(info, "callbacks"));
    if (fresh == NULL)
        return 0;
    dfd_link *self = dfd_membership_link_of(c);
    if (self != NULL) {
        hello_reannounce(c, call, self, fresh, &h);
        return 0;
    }
    h.may_replace = srv->cfg->duplicate == DFD_DUP_REPLACE && replace;
    dfd_link *l = dfd_link_new(c->loop, c, &h);
    dfd_attach at;
    if (l == NULL || dfd_registry_attach(srv, &h, fresh, l, &at) == -1) {
        if (l == NULL)
            snprintf(msg, sizeof(msg), "out of memory");
        else if (srv->cfg->duplicate == DFD_DUP_REPLACE)
            snprintf(msg, sizeof(msg), "member name '%s' is already connected (this member "
                     "was evicted from it and asked not to replace)", fresh->name);
        else
            snprintf(msg, sizeof(msg), "member name '%s' is already connected (duplicate = "
                     "reject)", fresh->name);
        if (l != NULL)
            dfd_warn("router.duplicate", "member=%s peer=%s msg=\"hello refused: name taken\"",
                     fresh->name, c->peer);
        dfd_conn_error(c, call->msgid, l == NULL ? DAFFI_E_OVERLOADED : DAFFI_E_DENIED, msg);
        dfd_link_release(l);
        dfd_member_release(fresh);
        return 0;
    }
    dfd_membership_adopt(c, l); /* the connection keeps the link's creation reference */
    if (at.replaced != NULL) {
        dfd_warn("router.replaced", "member=%s peer=%s msg=\"a newcomer took this name "
                 "(duplicate = replace); the old member is told and closed\"", fresh->name,
                 c->peer);
        dfd_membership_close_replaced(srv, c->loop, at.replaced);
        dfd_member_release(at.replaced);
    }
    if (at.stale != NULL)
        dfd_membership_close_stale(c->loop, at.stale); /* takes the reference */
    dfd_member_release(at.member);
    dfd_member_release(fresh);
    dfd_control_answer(c, call, pack_hello_reply, srv);
    /* this loop sees the newcomer at once (the mail brings the same snapshot later):
     * after the answer, so that calls the startup grace held reach it behind it */
    dfd_membership_on_snapshot(c->loop, dfd_registry_snapshot(srv));
    return 0;
}
