/*
 * rexpect.h - cmocka assertions about what a daffid router answers: cast result maps,
 * membership events, member lists.
 *
 * Contract
 *   Like expect.h: each rexpect_*() that reads waits at most expect_timeout_ms() and
 *   fails the running cmocka test with a message naming the connection and what
 *   arrived instead. The rexpect_obj_*() helpers only look at decoded objects.
 *
 * Ownership: returned objects point into the rawconn's buffers (valid until its next
 * read) or into the object given. Must be called from a cmocka test.
 */
#ifndef DAFFI_TEST_REXPECT_H
#define DAFFI_TEST_REXPECT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "rawconn.h"
#include "rawmember.h"

/* 1 when o is a str (or bin) equal to the NUL-terminated s. */
int rexpect_obj_is(const msgpack_object *o, const char *s);

/* The value under the str key in map o, or NULL (also when o is not a map). */
const msgpack_object *rexpect_obj_get(const msgpack_object *o, const char *key);

/* For a cast result map: asserts the entry of member name is [nil, result] and
 * returns the result. */
const msgpack_object *rexpect_cast_ok(const msgpack_object *map, const char *name);

/* For a cast result map: asserts the entry of member name is [[code, message...],
 * nil] and returns the message's error array. */
const msgpack_object *rexpect_cast_error(const msgpack_object *map, const char *name,
                                         int code);

/* Reads the next message on c (a subscriber) and asserts it is the notification
 * [2, "daffi.event", [{"type": type, "member": member}]]. */
void rexpect_event(rawconn *c, const char *type, const char *member);

/* Reads notifications on c until one is the event type/member, skipping events for
 * members whose name does not start with prefix; fails on any other message, on an
 * event for a prefix member that is not the one expected, or at the deadline. */
void rexpect_event_among(rawconn *c, const char *prefix, const char *type,
                         const char *member);

/* Subscribes c to membership events (daffi.subscribe [["members"]]) with msgid id
 * and asserts the answer true. */
void rexpect_subscribe(rawconn *c, uint32_t id);

/* 1 when the member list (daffi.members' result) holds name, with *callbacks (may be
 * NULL) set to its callbacks array. */
int rexpect_members_find(const msgpack_object *list, const char *name,
                         const msgpack_object **callbacks);

/* 1 when the array o holds a str equal to s. */
int rexpect_array_has_str(const msgpack_object *o, const char *s);

/* Reads the error response to msgid with code (check_error) and asserts its message
 * contains needle. */
void rexpect_error_containing(rawconn *c, uint32_t msgid, int code, const char *needle);
/* The same for the message already read into c. */
void rexpect_check_error_containing(const rawconn *c, uint32_t msgid, int code,
                                    const char *needle);

/* rmpool_start(): n raw members PREFIX0.. exposing callbacks joined to the router at
 * address; fails the test when they could not join. */
rmpool *rexpect_pool(const char *address, const char *prefix, unsigned n,
                     const char *const *callbacks);

/* Sends daffi.wait [[names...], timeout_ms] (the NULL-terminated names) as msgid id on
 * c, without reading the answer. */
void rexpect_send_wait(rawconn *c, uint32_t id, const char *const *names, int timeout_ms);

/* Sends daffi.wait [[the members of pool p], timeout_ms] as msgid id on c (so that c's
 * own loop has seen them) and returns its result (expect_result). */
const msgpack_object *rexpect_wait_pool(rawconn *c, uint32_t id, const rmpool *p,
                                        int timeout_ms);

#endif /* DAFFI_TEST_REXPECT_H */
