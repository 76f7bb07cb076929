/*
 * fanout.h - daffi.cast and daffi.wait in the router role (see fanout.c).
 */
#ifndef DFD_FANOUT_H
#define DFD_FANOUT_H

#include "call-t.h"
#include "conn.h"

typedef struct dfd_cast dfd_cast;

/* daffi.cast [callback, params, {"to": [names], "timeout_ms": int}]. Returns 1 when the
 * call is kept until its children answer, 0 when it was answered (or was a
 * notification) and the caller frees it. */
int dfd_fanout_cast(dfd_conn *c, dfd_call *call);

/* daffi.wait [[names...], timeout_ms]. Same return convention. */
int dfd_fanout_wait(dfd_conn *c, dfd_call *call);

/* The loop's member snapshot changed: answer the waits it satisfies. */
void dfd_fanout_members_changed(dfd_loop *loop);

/* Frees the waits still parked on a loop (teardown). */
void dfd_fanout_loop_destroy(dfd_loop *loop);

#endif /* DFD_FANOUT_H */
