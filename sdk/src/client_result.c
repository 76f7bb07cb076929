/*
 * client_result.c - the outcome of a client call: results and errors, their memory,
 * turning a response message into one of them, and typed readers of result values.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* Initial chunk of the zone a reply is decoded into: enough for the objects of a
 * typical reply in one allocation; msgpack-c grows it for larger ones. */
#define REPLY_ZONE_CHUNK 2048

/* Frees what r owns and zeroes it. Accepts NULL and zeroed results. */
void daffi_result_free(daffi_result *r)
{
    if (r == NULL)
        return;
    if (r->zone != NULL)
        msgpack_zone_free(r->zone);
    free(r->bytes);
    memset(r, 0, sizeof(*r));
}

/* Frees what e owns and resets it to DAFFI_ERROR_INIT. Accepts NULL. */
void daffi_error_clear(daffi_error *e)
{
    if (e == NULL)
        return;
    free(e->message);
    if (e->zone != NULL)
        msgpack_zone_free(e->zone);
    free(e->bytes);
    memset(e, 0, sizeof(*e));
    e->details.type = MSGPACK_OBJECT_NIL;
}

/* Releases what e held and sets a locally raised error with a formatted message
 * (owned by e). When memory for the message runs out, code and name are still set
 * and message stays NULL. */
void daffi__err_set(daffi_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;

    if (e == NULL)
        return;
    daffi_error_clear(e);
    e->code = code;
    e->name = daffi_error_name(code);
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) == -1)
        msg = NULL;
    va_end(ap);
    e->message = msg;
}

/* Takes the peer's error array of a decoded response into err, which then owns the
 * reply bytes and zone (moved from *bytes / *zone, which are set to NULL when taken).
 * Returns -1 always (the call failed); a malformed error array gives PROTOCOL. */
static int reply_error_take(const msgpack_object *error, const char *method,
                            char **bytes, msgpack_zone **zone, daffi_error *err)
{
    int code;
    const char *text;
    size_t text_len;
    const msgpack_object *details;

    if (daffi_error_parse(error, &code, &text, &text_len, &details) == -1) {
        daffi__err_set(err, DAFFI_E_PROTOCOL,
                       "reply to '%s': error is not [code:int, message:str(, details)]",
                       method);
        return -1;
    }
    if (code == DAFFI_OK) {
        daffi__err_set(err, DAFFI_E_PROTOCOL, "reply to '%s': error with code 0",
                       method);
        return -1;
    }
    if (err == NULL)
        return -1;
    daffi_error_clear(err);
    err->code = code;
    err->name = daffi_error_name(code);
    err->remote = 1;
    err->message = text != NULL ? strndup(text, text_len) : strdup("");
    if (details != NULL && details->type != MSGPACK_OBJECT_NIL) {
        /* details point into the reply bytes and the zone: the error keeps both */
        err->details = *details;
        err->bytes = *bytes;
        err->zone = *zone;
        *bytes = NULL;
        *zone = NULL;
    }
    return -1;
}

/* See client_int.h. */
int daffi__reply_take(const char *msg, size_t size, const char *method,
                      daffi_result *out, daffi_error *err)
{
    char *bytes;
    msgpack_zone *zone;
    daffi_msg m;
    int rc;

    memset(out, 0, sizeof(*out));
    bytes = malloc(size);
    zone = msgpack_zone_new(REPLY_ZONE_CHUNK);
    if (bytes == NULL || zone == NULL) {
        free(bytes);
        if (zone != NULL)
            msgpack_zone_free(zone);
        daffi__err_set(err, DAFFI_E_UNAVAILABLE, "reply to '%s': out of memory (%zu bytes)",
                       method, size);
        return -1;
    }
    /* the decoded objects point into the bytes: decode our own copy */
    memcpy(bytes, msg, size);
    if (daffi_msg_decode(bytes, size, zone, &m) == -1 || m.kind != DAFFI_MSG_RESPONSE) {
        daffi__err_set(err, DAFFI_E_PROTOCOL, "reply to '%s': undecodable response",
                       method);
        rc = -1;
    } else if (m.error != NULL && m.error->type != MSGPACK_OBJECT_NIL) {
        rc = reply_error_take(m.error, method, &bytes, &zone, err);
    } else {
        const char *e, *raw;
        size_t elen, raw_len;
        int split = daffi_response_split(bytes, size, &e, &elen, &raw, &raw_len);
        out->obj = *m.result;
        out->raw = split == 0 ? raw : NULL;
        out->raw_len = split == 0 ? raw_len : 0;
        out->bytes = bytes;
        out->zone = zone;
        return 0;
    }
    free(bytes);
    if (zone != NULL)
        msgpack_zone_free(zone);
    return rc;
}

