/*
 * dispatch.h - what happens to a request once it is framed: lookup in the callback
 * table (or a daffi.* control method), per-connection and per-plugin limits, running
 * the handler inline, on the blocking pool or asynchronously, deadlines, and
 * delivering the outcome on the loop that owns the call.
 *
 * Dispatch names no role: the router routes through srv->route, and what a role adds
 * to a call's life (a cast's children, forwarded calls, relay streams) comes through
 * the call's hooks (call-t.h).
 */
#ifndef DFD_DISPATCH_H
#define DFD_DISPATCH_H

#include <stddef.h>

#include "call-t.h"
#include "conn.h"

/* The owner of a caller's connection (what an accepted connection starts with). */
extern const dfd_conn_ops dfd_caller_ops;

/* Handles one complete message of size bytes that the connection framed (kind is the
 * envelope's kind; msgid is valid for requests): daffi.* control methods go to the
 * control table, every other request to the role's route (srv->route). On the
 * connection's loop thread. Other owners hand their requests and notifications here. */
void dfd_dispatch_message(dfd_conn *c, const char *bytes, size_t size, int kind,
                          uint32_t msgid);

/* The route of the service and worker roles: the loop's callback table, else
 * NO_CALLBACK (a notification for nobody is counted and dropped). */
void dfd_dispatch_route_local(dfd_conn *c, dfd_call *call);

/* Runs a request or notification that came without a connection (a call a NATS member
 * received, nats-member.c): bytes is the whole message (scanned here against the
 * limits, copied into the call), [0|2, 0, callback, params] or the daffi.call form
 * [0|2, 0, "daffi.call", [callback, params, {"timeout_ms": n}]]; tag becomes the call's
 * msgid (the caller's key for what report needs). Every outcome, an error found here
 * too, goes to hooks->report (required; timed_out too for a TIMEOUT at the deadline).
 * The call counts in the loop's memory budget (budget.h) until it is freed; one past
 * the budget is refused, as a connection's is. On the loop's thread. Returns 0 once the
 * call is the hooks', or the error code of a message refused before it became a call
 * (PROTOCOL, TOO_LARGE, OVERLOADED: out of memory or past max_memory), counted, its
 * error message in why (why_size bytes). */
int dfd_dispatch_detached(dfd_loop *loop, const char *bytes, size_t size, uint32_t tag,
                          const dfd_call_hooks *hooks, char *why, size_t why_size);

/* Runs a local callback for call (c may be NULL for a cast's child): per-plugin
 * concurrency and queue, inline / blocking / async. */
void dfd_dispatch_local(dfd_conn *c, dfd_call *call, const struct dfd_callback *cb);

/* The access log line of a call refused before it ran (its error code), when the
 * access log is on: the log then has one line per call, whatever became of it. */
void dfd_dispatch_log_refused(dfd_conn *c, dfd_call *call, int code);

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
