/*
 * dispatch.h - what happens to a request once it is framed: lookup in the callback
 * table (or a daffi.* control method), per-connection and per-plugin limits, running
 * the handler inline, on the blocking pool or asynchronously, deadlines, and
 * delivering the outcome on the loop that owns the call.
 */
#ifndef DFD_DISPATCH_H
#define DFD_DISPATCH_H

#include <stddef.h>

#include "call-t.h"
#include "conn.h"

/* Handles one complete message of size bytes that the connection framed (kind is the
 * envelope's kind; msgid is valid for requests). On the connection's loop thread. */
void dfd_dispatch_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                          uint32_t msgid);

/* Runs a local callback for call (c may be NULL for a cast's child): per-plugin
 * concurrency and queue, inline / blocking / async. */
void dfd_dispatch_local(dfd_conn *c, dfd_call *call, const struct dfd_callback *cb);

/* Arms the call's deadline from call->timeout_ms (owner loop; 0 = none). */
void dfd_dispatch_arm_deadline(dfd_call *call);

/* A concurrency slot was granted to a queued call: start it (owner loop thread). */
void dfd_dispatch_run(dfd_call *call);

/* The call's outcome is final: answer, release its slot, free it (owner loop). */
void dfd_dispatch_finish(dfd_call *call);

/* After a handler returned st (loop or blocking thread): completes the call or leaves
 * it pending. */
void dfd_dispatch_after_handler(dfd_call *call, daffi_status st);

#endif /* DFD_DISPATCH_H */
