/*
 * control.h - the daffi.* control methods a daffid answers itself.
 *
 * In the service role daffid is its own single member: daffi.ping, daffi.members and
 * daffi.hello describe it. The methods that need a router (daffi.call, daffi.cast,
 * daffi.wait, daffi.subscribe) answer NO_CALLBACK saying so; any other daffi.* name is
 * NO_CALLBACK too.
 */
#ifndef DFD_CONTROL_H
#define DFD_CONTROL_H

#include "call-t.h"
#include "conn.h"

/* Answers a daffi.* request or notification. Does not free the call. */
void dfd_control_handle(dfd_conn *c, dfd_call *call);

/* Answers NO_CALLBACK for call's method, with the members and their callbacks in the
 * error's details map. Does not free the call. */
void dfd_control_no_callback(dfd_conn *c, dfd_call *call);

#endif /* DFD_CONTROL_H */
