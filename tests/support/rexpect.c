/*
 * rexpect.c - cmocka assertions about a router's answers (see rexpect.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <daffi/rpc.h>

#include "expect.h"
#include "rexpect.h"

/* See rexpect.h. A NULL o is no match. */
int rexpect_obj_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    if (o == NULL)
        return 0;
    if (o->type == MSGPACK_OBJECT_STR)
        return o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
    if (o->type == MSGPACK_OBJECT_BIN)
        return o->via.bin.size == n && memcmp(o->via.bin.ptr, s, n) == 0;
    return 0;
}

/* See rexpect.h. The value points into o. */
const msgpack_object *rexpect_obj_get(const msgpack_object *o, const char *key)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (rexpect_obj_is(&o->via.map.ptr[i].key, key))
            return &o->via.map.ptr[i].val;
    return NULL;
}

/* See rexpect.h. */
int rexpect_array_has_str(const msgpack_object *o, const char *s)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    for (uint32_t i = 0; i < o->via.array.size; i++)
        if (rexpect_obj_is(&o->via.array.ptr[i], s))
            return 1;
    return 0;
}

/* Returns the [error, result] pair of member name in a cast map, or fails. */
static const msgpack_object *cast_pair(const msgpack_object *map, const char *name)
{
    char d[1024];

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        fail_msg("a cast result must be a map, got %s", expect_describe(map, d, sizeof(d)));
    const msgpack_object *pair = rexpect_obj_get(map, name);
    if (pair == NULL)
        fail_msg("the cast result has no entry for member %s: %s", name,
                 expect_describe(map, d, sizeof(d)));
    if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2)
        fail_msg("member %s: a cast entry must be [error, result], got %s", name,
                 expect_describe(pair, d, sizeof(d)));
    return pair;
}

/* See rexpect.h. The result points into map. */
const msgpack_object *rexpect_cast_ok(const msgpack_object *map, const char *name)
{
    const msgpack_object *pair = cast_pair(map, name);
    char d[1024];

    if (pair->via.array.ptr[0].type != MSGPACK_OBJECT_NIL)
        fail_msg("member %s: expected a result in the cast, got %s", name,
                 expect_describe(pair, d, sizeof(d)));
    return &pair->via.array.ptr[1];
}

/* See rexpect.h. The error points into map. */
const msgpack_object *rexpect_cast_error(const msgpack_object *map, const char *name,
                                         int code)
{
    const msgpack_object *pair = cast_pair(map, name);
    const msgpack_object *err = &pair->via.array.ptr[0];
    int got = 0;
    const char *text = NULL;
    size_t len = 0;
    const msgpack_object *details;
    char d[1024];

    if (daffi_error_parse(err, &got, &text, &len, &details) == -1 || got != code ||
        len == 0 || pair->via.array.ptr[1].type != MSGPACK_OBJECT_NIL)
        fail_msg("member %s: expected [[%d %s, message], nil] in the cast, got %s", name, code,
                 daffi_error_name(code), expect_describe(pair, d, sizeof(d)));
    return err;
}

/* Reads one message on c or fails naming the status. */
static void read_or_fail(rawconn *c)
{
    rawconn_status st = rawconn_read(c, expect_timeout_ms());

    if (st != RAWCONN_OK)
        fail_msg("%s: expected a membership event, got %s", c->addr, rawconn_status_name(st));
}

/* Returns 1 when c holds a daffi.event notification, setting *type and *member. */
static int event_of(const rawconn *c, const msgpack_object **type,
                    const msgpack_object **member)
{
    const daffi_msg *m = &c->msg;

    if (m->kind != DAFFI_MSG_NOTIFY || m->method_len != 11 ||
        memcmp(m->method, "daffi.event", 11) != 0 || m->params->via.array.size != 1)
        return 0;
    *type = rexpect_obj_get(&m->params->via.array.ptr[0], "type");
    *member = rexpect_obj_get(&m->params->via.array.ptr[0], "member");
    return *type != NULL && *member != NULL;
}

/* See rexpect.h. */
void rexpect_event(rawconn *c, const char *type, const char *member)
{
    const msgpack_object *t, *who;
    char d[512];

    read_or_fail(c);
    if (!event_of(c, &t, &who))
        fail_msg("%s: expected event %s %s, got a message of kind %d: %s", c->addr, type,
                 member, (int)c->msg.kind,
                 expect_describe(c->msg.kind == DAFFI_MSG_RESPONSE ? c->msg.result
                                                                   : c->msg.params,
                                 d, sizeof(d)));
    if (!rexpect_obj_is(t, type) || !rexpect_obj_is(who, member))
        fail_msg("%s: expected event %s %s, got %s", c->addr, type, member,
                 expect_describe(c->msg.params, d, sizeof(d)));
}

/* See rexpect.h. */
void rexpect_event_among(rawconn *c, const char *prefix, const char *type,
                         const char *member)
{
    const msgpack_object *t, *who;
    char d[512];
    size_t plen = strlen(prefix);

    for (;;) {
        read_or_fail(c);
        if (!event_of(c, &t, &who))
            fail_msg("%s: expected event %s %s, got a message of kind %d", c->addr, type,
                     member, (int)c->msg.kind);
        if (who->type != MSGPACK_OBJECT_STR || who->via.str.size < plen ||
            memcmp(who->via.str.ptr, prefix, plen) != 0)
            continue; /* another test's member */
        if (!rexpect_obj_is(t, type) || !rexpect_obj_is(who, member))
            fail_msg("%s: expected event %s %s, got %s", c->addr, type, member,
                     expect_describe(c->msg.params, d, sizeof(d)));
        return;
    }
}

/* See rexpect.h. */
void rexpect_subscribe(rawconn *c, uint32_t id)
{
    rawmsg m;
    const msgpack_object *r;
    char d[256];

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "daffi.subscribe", 1);
    msgpack_pack_array(pk, 1);
    daffi_pack_cstr(pk, "members");
    expect_send(c, &m);
    rawmsg_destroy(&m);
    r = expect_result(c, id);
    if (r->type != MSGPACK_OBJECT_BOOLEAN || !r->via.boolean)
        fail_msg("%s: daffi.subscribe answered %s, expected true", c->addr,
                 expect_describe(r, d, sizeof(d)));
}

/* See rexpect.h. *callbacks points into list. */
int rexpect_members_find(const msgpack_object *list, const char *name,
                         const msgpack_object **callbacks)
{
    if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *e = &list->via.array.ptr[i];
        if (rexpect_obj_is(rexpect_obj_get(e, "name"), name)) {
            if (callbacks != NULL)
                *callbacks = rexpect_obj_get(e, "callbacks");
            return 1;
        }
    }
    return 0;
}

/* See rexpect.h. */
void rexpect_error_containing(rawconn *c, uint32_t msgid, int code, const char *needle)
{
    expect_error(c, msgid, code);
    rexpect_check_error_containing(c, msgid, code, needle);
}

/* See rexpect.h. */
void rexpect_check_error_containing(const rawconn *c, uint32_t msgid, int code,
                                    const char *needle)
{
    int got = 0;
    const char *text = NULL;
    size_t len = 0;
    const msgpack_object *details;
    char buf[1024];

    check_error(c, msgid, code);
    daffi_error_parse(c->msg.error, &got, &text, &len, &details);
    snprintf(buf, sizeof(buf), "%.*s", (int)len, text);
    if (strstr(buf, needle) == NULL)
        fail_msg("%s: msgid %u: the %s message \"%s\" does not mention \"%s\"", c->addr, msgid,
                 daffi_error_name(code), buf, needle);
}

/* See rexpect.h. */
rmpool *rexpect_pool(const char *address, const char *prefix, unsigned n,
                     const char *const *callbacks)
{
    rmpool *p = rmpool_start(address, prefix, n, callbacks);

    if (p == NULL)
        fail_msg("%u raw members %s* could not join %s", n, prefix, address);
    return p;
}

/* Sends daffi.wait for n names, name(arg, i) each, as msgid id on c. */
static void send_wait(rawconn *c, uint32_t id, uint32_t n,
                      const char *(*name)(const void *, unsigned), const void *arg,
                      int timeout_ms)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "daffi.wait", 2);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        daffi_pack_cstr(pk, name(arg, i));
    msgpack_pack_int(pk, timeout_ms);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* name() of send_wait for a NULL-terminated array of names. */
static const char *array_name(const void *arg, unsigned i)
{
    return ((const char *const *)arg)[i];
}

/* name() of send_wait for the members of a pool. */
static const char *pool_name(const void *arg, unsigned i)
{
    return rmpool_name(arg, i);
}

/* See rexpect.h. */
void rexpect_send_wait(rawconn *c, uint32_t id, const char *const *names, int timeout_ms)
{
    uint32_t n = 0;

    while (names[n] != NULL)
        n++;
    send_wait(c, id, n, array_name, names, timeout_ms);
}

/* See rexpect.h. */
const msgpack_object *rexpect_wait_pool(rawconn *c, uint32_t id, const rmpool *p,
                                        int timeout_ms)
{
    send_wait(c, id, rmpool_size(p), pool_name, p, timeout_ms);
    return expect_result(c, id);
}
