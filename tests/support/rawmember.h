/*
 * rawmember.h - a raw connection that is a router member: it says daffi.hello and
 * answers the requests the router forwards to it (and the router's heartbeats), for
 * the router tests and the router benchmark.
 *
 * Contract
 *   One member, driven by the test's own thread:
 *     rawmember_join()     opens a connection and says hello with a name and callbacks;
 *                          reports whether the router accepted the name.
 *     rawmember_read()     reads the next message that is not the router's heartbeat,
 *                          answering each daffi.ping request on the way, so a member
 *                          driven this way is never dropped while the test reads it.
 *     rawmember_reply_*()  answer a forwarded request by its (router-chosen) msgid.
 *   A pool of members served by a thread of its own (rmpool_*): every forwarded
 *   request is answered with [member name, params] - so a result says who answered and
 *   what it was asked - unless the member is muted (then requests go unanswered while
 *   heartbeats still are). Members are named PREFIX + index ("m0", "m1", ...).
 *
 * Ownership: the caller owns the rawconn of a single member; a pool owns its members,
 * its thread and their connections until rmpool_stop(). rmpool_* accessors may be used
 * from any thread while the pool runs.
 */
#ifndef DAFFI_TEST_RAWMEMBER_H
#define DAFFI_TEST_RAWMEMBER_H

#include <stddef.h>
#include <stdint.h>

#include "rawconn.h"

/* The msgid of the hello a rawmember sends. */
#define RAWMEMBER_HELLO_ID 0x7fff0001u

/* Opens c to address and sends daffi.hello as name exposing the NULL-terminated
 * callbacks (may be NULL: none), then reads until the hello's response. Returns 0
 * when the router accepted (c stays open, a member), the error code (> 0) it refused
 * with (its message copied into why, when not NULL), or -1 on a connection problem
 * (printed). The caller closes c in every case. */
int rawmember_join(rawconn *c, const char *address, const char *name,
                   const char *const *callbacks, char *why, size_t whysz);

/* Sends daffi.hello on an open c without reading the answer. Returns 0 or -1. */
int rawmember_send_hello(rawconn *c, const char *name, const char *const *callbacks);

/* A link of a member with several (PROTOCOL.md, "Members"): the hello carries
 * {"session": session, "link": link, "links": links}. */
typedef struct rawmember_link {
    const char *session;
    unsigned link;
    unsigned links;
} rawmember_link;

/* rawmember_join() for one link of a member with a session. Same returns. */
int rawmember_join_link(rawconn *c, const char *address, const char *name,
                        const char *const *callbacks, const rawmember_link *l, char *why,
                        size_t whysz);

/* rawconn_read(), except that daffi.ping requests are answered and skipped. */
rawconn_status rawmember_read(rawconn *c, int timeout_ms);

/* Answers request msgid with result, the n bytes of one encoded msgpack object.
 * Returns 0 or -1 (errno set). */
int rawmember_reply_raw(rawconn *c, uint32_t msgid, const void *result, size_t n);

/* Answers request msgid with the error [code, message]. Returns 0 or -1. */
int rawmember_reply_error(rawconn *c, uint32_t msgid, int code, const char *message);

typedef struct rmpool rmpool;

/* Joins n members PREFIX0 .. PREFIX(n-1), each exposing the NULL-terminated
 * callbacks, to the router at address, then serves them from a thread. Returns the
 * pool, or NULL (printed) when a member could not join. */
rmpool *rmpool_start(const char *address, const char *prefix, unsigned n,
                     const char *const *callbacks);

/* Closes every member's connection and joins the thread; NULL is a no-op. */
void rmpool_stop(rmpool *p);

/* The number of members of the pool. */
unsigned rmpool_size(const rmpool *p);

/* The name of member i (owned by the pool). */
const char *rmpool_name(const rmpool *p, unsigned i);

/* 1: member i leaves forwarded requests unanswered (heartbeats still answered). */
void rmpool_set_mute(rmpool *p, unsigned i, int mute);

/* Forwarded requests member i answered / received while muted / notifications it
 * received. */
unsigned long rmpool_answered(const rmpool *p, unsigned i);
unsigned long rmpool_ignored(const rmpool *p, unsigned i);
unsigned long rmpool_notified(const rmpool *p, unsigned i);

/* 1 once the router closed member i's connection. */
int rmpool_closed(const rmpool *p, unsigned i);

#endif /* DAFFI_TEST_RAWMEMBER_H */
