/*
 * expect.h - cmocka assertions about what a daffid connection answers.
 *
 * Contract
 *   Each expect_*() reads (or sends) on a rawconn and fails the running cmocka test
 *   with a message naming the connection's address and what arrived instead, so a
 *   failing integration test says what the server did. Reads wait at most
 *   EXPECT_TIMEOUT_MS (more under sanitizers: EXPECT_TIMEOUT_MS is the floor, the
 *   environment variable DAFFI_TEST_TIMEOUT_MS may raise it).
 *
 * Ownership: returned objects point into the rawconn's buffers and are valid until its
 * next read. Must be called from a cmocka test (they use cmocka's failure path).
 */
#ifndef DAFFI_TEST_EXPECT_H
#define DAFFI_TEST_EXPECT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "daemon.h"
#include "rawconn.h"

#define EXPECT_TIMEOUT_MS 5000

/* Returns the read deadline in ms used by the helpers. */
int expect_timeout_ms(void);

/* Opens c to address or fails the test. */
void expect_open(rawconn *c, const char *address);

/* Sends m (then clears it) or fails the test. */
void expect_send(rawconn *c, rawmsg *m);

/* Sends raw bytes or fails the test. */
void expect_send_bytes(rawconn *c, const void *p, size_t n);

/* Sends method(a, b) with two int64 arguments as msgid id, or fails the test. */
void expect_send_ii(rawconn *c, uint32_t id, const char *method, int64_t a, int64_t b);

/* Reads one message, failing the test unless it is a response; returns its msgid. */
uint32_t expect_response(rawconn *c);

/* Reads one message and asserts it is a successful response to msgid. Returns its
 * result (valid until the next read on c). */
const msgpack_object *expect_result(rawconn *c, uint32_t msgid);

/* expect_result() plus the result's value. */
void expect_result_int(rawconn *c, uint32_t msgid, int64_t v);
void expect_result_str(rawconn *c, uint32_t msgid, const char *s);

/* Calls daffi.ping as msgid id and asserts the "pong": once it answers, everything
 * sent before it on c has been read by the server (requests are read in order). */
void expect_ping(rawconn *c, uint32_t id);

/* Reads one message and asserts it is an error response to msgid with code, a
 * non-empty str message and a nil result. */
void expect_error(rawconn *c, uint32_t msgid, int code);

/* Checks the message already read into c as expect_error() does. */
void check_error(const rawconn *c, uint32_t msgid, int code);

/* Asserts the peer closes c within the timeout; *nmsgs (may be NULL) gets how many
 * messages arrived before the close. */
void expect_closed(rawconn *c, unsigned *nmsgs);

/* Asserts nothing arrives on c (and it stays open) for ms milliseconds. */
void expect_silence(rawconn *c, int ms);

/* Opens a connection to address, calls daffi.ping and asserts "pong": the server
 * still serves this address. */
void expect_serving(const char *address);

/* Sends method(<args>) as msgid id, where args holds the nargs arguments already
 * encoded (any bytes: tests use it for exact or broken encodings). */
void expect_send_raw_call(rawconn *c, uint32_t id, const char *method, uint32_t nargs,
                          const char *args, size_t len);

/* Reads the response to id and asserts its result's encoded bytes are exactly the len
 * bytes at bytes (no re-encoding on the way); what names the value in the failure
 * message, which shows the first bytes sent and received. */
void expect_result_bytes(rawconn *c, uint32_t id, const char *what, const char *bytes,
                         size_t len);

/* Runs body(address) over the TCP listener, then over the Unix listener, of the
 * tdaemon in *state (a cmocka state set by tdaemon_group_setup()). */
typedef void (*expect_body_fn)(const char *address);
void expect_on_both(void **state, expect_body_fn body);

/* Runs the shell command line made from fmt (printf-style; failing the test if it does
 * not fit) with popen(), capturing its stdout (NUL-terminated, truncated to outsz) into
 * out; the rest is read and dropped. Returns its exit code, or -1 when it did not exit
 * normally. */
int expect_run(char *out, size_t outsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats o into buf for messages; returns buf. */
const char *expect_describe(const msgpack_object *o, char *buf, size_t size);

/* Returns CLOCK_MONOTONIC in milliseconds. */
int64_t expect_now_ms(void);
/* The same in microseconds. */
int64_t expect_now_us(void);

#endif /* DAFFI_TEST_EXPECT_H */
