/*
 * tstream.h - helpers for the stream tests (sdk/PROTOCOL.md section 8): data whose
 * digest is known, the memory of a daffid a stream passes, raw senders and a raw
 * receiver speaking the stream messages, streamprobe's step counters, and running an
 * asynchronous client's loop until something happened.
 *
 * Contract
 *   tstream_source   pseudo-random chunks (xorshift64), hashed with FNV-1a 64 as they
 *                    are produced: echo's digest must answer the same hash when every
 *                    chunk arrived once, intact and in order.
 *   tstream_mem      resets a daffid's peak RSS (/proc/PID/clear_refs "5"), notes its
 *                    VmRSS, and later asserts VmHWM grew by less than a bound.
 *   tstream_raw_*    a sender on a rawconn: daffi.stream, daffi.chunk, daffi.end,
 *                    reading past the daffi.credit notifications a receiver sends.
 *   tstream_sink_*   a raw member "rawsink" exposing "sink" joined to a router: it
 *                    accepts a forwarded daffi.stream as stream TSTREAM_SINK_ID with the
 *                    window it chooses, reads chunks, returns credit when told, and
 *                    answers daffi.end with "done".
 *   tstream_probe_*  the counters of tests/fixtures/plugins/streamprobe.c.
 *   tstream_run_*    an event_base run until a counter reaches a value, or for a while.
 *   Every function that checks something fails the running cmocka test with a message
 *   naming what arrived instead (they use cmocka's failure path).
 *
 * Ownership: the caller owns every struct passed in; messages read point into the
 * rawconn (valid until its next read). No global state.
 */
#ifndef DAFFI_TEST_TSTREAM_H
#define DAFFI_TEST_TSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <msgpack.h>

#include <daffi/client.h>

#include "daemon.h"
#include "rawconn.h"

#define TSTREAM_FNV_BASIS 14695981039346656037ull
#define TSTREAM_FNV_PRIME 1099511628211ull
#define TSTREAM_SINK_ID 77u   /* the stream id the raw receiver hands out */
#define TSTREAM_SILENCE_MS 300 /* "nothing more comes" */

/* ---- data ---------------------------------------------------------------------- */

typedef struct tstream_source {
    uint64_t rng;
    uint64_t hash;          /* FNV-1a 64 of every byte produced, in order */
    uint64_t bytes, chunks; /* produced so far */
} tstream_source;

void tstream_source_init(tstream_source *s, uint64_t seed);
/* Fills buf with the next n bytes (one chunk) and folds them into the hash. */
void tstream_source_fill(tstream_source *s, unsigned char *buf, size_t n);
/* Asserts digest's result r ({"chunks", "bytes", "fnv1a64"}) is what src produced. */
void tstream_assert_digest(const msgpack_object *r, const tstream_source *src);
/* Returns the unsigned integer o, or fails the test. */
uint64_t tstream_uint(const msgpack_object *o);

/* ---- memory --------------------------------------------------------------------- */

typedef struct tstream_mem {
    pid_t pid;
    const char *who;        /* for messages, not copied */
    long rss0;              /* VmRSS at the start, KiB */
} tstream_mem;

/* Resets the peak RSS of d's process and notes its RSS. */
void tstream_mem_start(tstream_mem *m, const tdaemon *d, const char *who);
/* Prints the figures and asserts the peak since the start is below rss0 + bound_kib
 * (streamed: bytes that passed, for the message). */
void tstream_mem_check(const tstream_mem *m, size_t streamed, long bound_kib);

/* ---- a raw sender ----------------------------------------------------------------- */

/* 1 when the message m names method. */
int tstream_is_method(const daffi_msg *m, const char *method);
/* Reads messages on c until the response to msgid, adding the k of every daffi.credit
 * on the way to *credits (may be NULL); fails on anything else. */
void tstream_raw_response(rawconn *c, uint32_t msgid, unsigned *credits);
/* Reads messages on c, skipping daffi.credit, until the notification method whose
 * first param is id; fails on anything else. */
void tstream_raw_expect_note(rawconn *c, const char *method, uint32_t id);
/* Sends daffi.stream [callback, [], {"window": window, "to": to}] (window 0 and to
 * NULL left out) as msgid, asserts success and returns the stream id; *granted (may
 * be NULL) gets the window. */
uint32_t tstream_raw_open(rawconn *c, uint32_t msgid, const char *callback,
                          unsigned window, const char *to, unsigned *granted);
/* The two halves of tstream_raw_open(), for a test that plays the receiver in
 * between: sending the request, then reading its successful answer. */
void tstream_raw_open_send(rawconn *c, uint32_t msgid, const char *callback, unsigned window,
                           const char *to);
uint32_t tstream_raw_opened(rawconn *c, uint32_t msgid, const char *callback,
                            unsigned *granted);
/* Appends [2, "daffi.chunk", [id, <bin n>]] to m. */
void tstream_raw_chunk(rawmsg *m, uint32_t id, const void *p, size_t n);
/* Appends method [id] to m: a request with msgid, or a notification (notify). */
void tstream_raw_id_msg(rawmsg *m, int notify, uint32_t msgid, const char *method,
                        uint32_t id);

/* ---- a raw receiver: the router member "rawsink" ------------------------------------ */

/* Joins "rawsink" exposing "sink" to the router at router_addr, on m. */
void tstream_sink_join(rawconn *m, const char *router_addr);
/* Closes m and waits until the router no longer lists "rawsink". */
void tstream_sink_leave(rawconn *m, const char *router_addr);
/* Reads the next message (heartbeats answered on the way). */
void tstream_sink_read(rawconn *m);
/* Reads the forwarded daffi.stream, asserts the sender asked for window `asked` (0:
 * asked for none), and accepts it as stream TSTREAM_SINK_ID granting window. */
void tstream_sink_accept(rawconn *m, unsigned asked, unsigned window);
/* Reads the next message and asserts it is the chunk text (str or bin). */
void tstream_sink_expect_chunk(rawconn *m, const char *text);
/* Asserts nothing arrives for TSTREAM_SILENCE_MS: the sender waits for credit. */
void tstream_sink_expect_silence(rawconn *m);
/* Reads the next message and asserts it is [2, "daffi.abort", [TSTREAM_SINK_ID]]. */
void tstream_sink_expect_abort(rawconn *m);
/* Returns k chunks of credit to the sender. */
void tstream_sink_credit(rawconn *m, unsigned k);
/* Reads daffi.end [TSTREAM_SINK_ID] and answers "done". */
void tstream_sink_end(rawconn *m);

/* ---- streamprobe --------------------------------------------------------------------- */

/* Declares $BUILD/tests/fixtures/streamprobe.so in d. Returns 0 or -1 (printed). */
int tstream_add_probe(tdaemon *d);

typedef struct tstream_counts {
    uint64_t opened, chunks, ended, aborted, live;
} tstream_counts;

/* Calls probe_counts() at address (a service, or a router that forwards it). */
tstream_counts tstream_probe_counts(const char *address);
/* Polls probe_counts() until at least aborted and ended streams were counted and
 * live are open; fails past the expect timeout. Returns the last counts. */
tstream_counts tstream_probe_wait(const char *address, uint64_t aborted, uint64_t ended,
                                  uint64_t live);

/* ---- clients and their loop ---------------------------------------------------------- */

/* daffi_connect() / daffi_client_new() with default options, or fail the test. */
daffi_client *tstream_connect(const char *address);
daffi_client *tstream_client_new(struct event_base *base, const char *address);

/* Runs base until *flag >= want or timeout_ms passed. Returns 1 when reached. */
int tstream_run_until(struct event_base *base, const int *flag, int want, int timeout_ms);
/* Runs base for ms milliseconds (output is written, input handled). */
void tstream_run_for(struct event_base *base, int ms);
/* Runs base until the asynchronous client c is connected and everything it queued
 * was handed to the kernel, or fails the test. */
void tstream_flush(struct event_base *base, daffi_client *c);

/* The outcome of one asynchronous call: tstream_collect (a daffi_reply_fn whose arg
 * is the outcome) counts it in done and keeps the result or the error. */
typedef struct tstream_outcome {
    int done;
    int ok;
    daffi_result res;
    daffi_error err;
} tstream_outcome;

void tstream_collect(daffi_client *c, daffi_result *res, daffi_error *err, void *arg);
void tstream_outcome_free(tstream_outcome *o);
/* A daffi_reply_fn for answers a test does not look at. */
void tstream_ignore_reply(daffi_client *c, daffi_result *res, daffi_error *err, void *arg);

/* What the ready callback tstream_log_ready (arg: the log) of a stream was told. */
typedef struct tstream_ready_log {
    int credit;             /* times credit came back to a used-up window */
    int lost;               /* times the stream was said lost */
    int code;               /* the loss's error code */
} tstream_ready_log;

void tstream_log_ready(daffi_stream *s, const daffi_error *why, void *arg);

/* A completed daffi_stream_open_async(): tstream_keep_stream (arg: the opening) sets
 * done and keeps the stream, or the error. */
typedef struct tstream_opening {
    int done;
    daffi_stream *s;
    daffi_error err;
} tstream_opening;

void tstream_keep_stream(daffi_client *c, daffi_stream *s, daffi_error *err, void *arg);

/* Opens callback (through a router to `to`, may be NULL) on the asynchronous client
 * c asking for window (0: the default), runs base until it is open and returns the
 * stream (the caller's), or fails the test. */
daffi_stream *tstream_async_open(struct event_base *base, daffi_client *c,
                                 const char *callback, const char *to, unsigned window);

/* ---- the group of daffids the stream tests share --------------------------------------- */

/* A service "svc" (echo, streamprobe), a router "hub" (no plugins) and its worker
 * "w1" (echo, streamprobe), plus the raw receiver a test may join. */
typedef struct tstream_fixture {
    tdaemon svc;
    tdaemon router;
    tdaemon worker;
    rawconn sink;           /* "rawsink" while a test has it joined; fd -1 otherwise */
} tstream_fixture;

/* cmocka group fixtures: starts the three daffids (svc, the router, then w1, and waits
 * until w1 is a member) into *state; stops them and requires each to exit 0 on SIGTERM
 * (under ASan also: without a leak). Each returns 0 or -1 (logs printed). */
int tstream_group_setup(void **state);
int tstream_group_teardown(void **state);

/* cmocka per-test teardown of a test that joins rawsink: closes it when still joined
 * (the test failed) and waits until the router dropped it, so the next test can join. */
int tstream_sink_teardown(void **state);

/* Gives the daffids started from now on a small AddressSanitizer quarantine: freed
 * memory waits there (256 MiB by default) before reuse, so a daffid that passed 100
 * MiB would look as if it held them. Call before starting any daffid; a build without
 * ASan ignores the variable. */
void tstream_small_asan_quarantine(void);

#endif /* DAFFI_TEST_TSTREAM_H */
