/*
 * call.h - creating and recycling dfd_call records (see call-t.h).
 */
#ifndef DFD_CALL_H
#define DFD_CALL_H

#include "call-t.h"
#include "loop.h"

/* Returns a clean call owned by loop (from its free list, or new), or NULL when out of
 * memory. */
dfd_call *dfd_call_new(dfd_loop *loop);

/* Returns the call to its loop's free list (or frees it): releases the plugin
 * generation reference, disarms the timer. Owner loop thread only. */
void dfd_call_free(dfd_call *call);

/* Makes call a call of callback cb: holds a reference on its plugin generation (until
 * dfd_call_free), counted in the loop's handler_calls (a drain waits for them). */
void dfd_call_set_callback(dfd_call *call, const struct dfd_callback *cb);

/* Frees every recycled call of the loop (at loop teardown). */
void dfd_call_free_list(dfd_loop *loop);

#endif /* DFD_CALL_H */
