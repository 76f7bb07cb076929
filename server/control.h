/*
 * control.h - the daffi.* control methods a daffid answers itself.
 *
 * In the service and worker roles daffid is its own single member: daffi.ping,
 * daffi.members and daffi.hello describe it, and daffi.call runs a local callback (its
 * `to` may only name this daffid). The methods that need a router (daffi.cast,
 * daffi.wait, daffi.subscribe) answer NO_CALLBACK saying so. In the router role the
 * router answers them all (router.h). Any other daffi.* name is NO_CALLBACK.
 */
#ifndef DFD_CONTROL_H
#define DFD_CONTROL_H

#include <stddef.h>

#include <msgpack.h>

#include "call-t.h"
#include "conn.h"
#include "members.h"

/* Answers a daffi.* request or notification. Returns 0 when it was answered (the caller
 * frees the call), 1 when the call was taken over and will be answered later. */
int dfd_control_handle(dfd_conn *c, dfd_call *call);

/* Answers NO_CALLBACK for call's method, with the members and their callbacks in the
 * error's details map. Does not free the call. */
void dfd_control_no_callback(dfd_conn *c, dfd_call *call);
/* The same for a callback name other than the call's method (daffi.cast). */
void dfd_control_no_callback_named(dfd_conn *c, dfd_call *call, const char *name,
                                   size_t len);

/* Packs a snapshot's members as [{"name": str, "callbacks": [str...]}...]. */
void dfd_control_pack_snapshot(msgpack_packer *pk, const dfd_snapshot *s);

#endif /* DFD_CONTROL_H */
