/*
 * control.h - the daffi.* control methods: one table (control.c) says, for every
 * method, which roles serve it, whether it is a request or a notification, and which
 * function answers it; one parser reads the options maps of daffi.call, daffi.cast and
 * daffi.stream.
 *
 * In the service and worker roles daffid is its own single member: daffi.ping,
 * daffi.members and daffi.hello describe it, and daffi.call runs a local callback (its
 * `to` may only name this daffid). The methods that need a router answer NO_CALLBACK
 * saying so. Any other daffi.* name is NO_CALLBACK.
 */
#ifndef DFD_CONTROL_H
#define DFD_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "call-t.h"
#include "conn.h"
#include "members.h"

/* A control method's handler: returns 0 when the call was answered (or consumed, for
 * a notification) and the caller frees it, 1 when it was taken over. */
typedef int (*dfd_control_fn)(dfd_conn *c, dfd_call *call);

/* Answers a daffi.* request or notification (same return convention). */
int dfd_control_handle(dfd_conn *c, dfd_call *call);

/* The options map of daffi.call, daffi.cast and daffi.stream (params[2]). */
enum {
    DFD_OPT_TO = 1u << 0,        /* "to": a member name */
    DFD_OPT_TO_LIST = 1u << 1,   /* "to": an array of member names (daffi.cast) */
    DFD_OPT_TIMEOUT = 1u << 2,   /* "timeout_ms": 0 .. 7 days */
    DFD_OPT_WINDOW = 1u << 3     /* "window": 1 .. (capped at DFD_STREAM_WINDOW_MAX) */
};

typedef struct dfd_call_opts {
    const char *to;               /* NULL: not given */
    size_t to_len;
    const msgpack_object *to_list; /* NULL: not given */
    uint64_t timeout_ms;          /* 0: not given (the server's default applies) */
    uint64_t window;              /* 0: not given */
} dfd_call_opts;

/* Reads the options map at the call's params[2] (absent or nil: nothing set), taking
 * the keys in `allowed` (others are ignored, for newer clients). Returns 0, or -1 when
 * it is not a map or an allowed key has a bad value. */
int dfd_call_opts_parse(const dfd_call *call, unsigned allowed, dfd_call_opts *o);

/* Answers NO_CALLBACK for call's method, with the members and their callbacks in the
 * error's details map. Does not free the call. */
void dfd_control_no_callback(dfd_conn *c, dfd_call *call);
/* The same for a callback name other than the call's method (daffi.cast). */
void dfd_control_no_callback_named(dfd_conn *c, dfd_call *call, const char *name,
                                   size_t len);

/* Answers a request with a result that pack() writes (nothing for a notification). */
void dfd_control_answer(dfd_conn *c, dfd_call *call, void (*pack)(msgpack_packer *, void *),
                        void *arg);

/* Packs a snapshot's members as [{"name": str, "callbacks": [str...]}...]. */
void dfd_control_pack_snapshot(msgpack_packer *pk, const dfd_snapshot *s);
/* Packs the members this loop knows: the snapshot (router) or this daffid alone. */
void dfd_control_pack_members(msgpack_packer *pk, const dfd_loop *loop);

#endif /* DFD_CONTROL_H */
