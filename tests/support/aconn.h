/*
 * aconn.h - a client of daffid's admin socket for the integration tests: one command
 * line out, one JSON reply line in, with cmocka assertions about the reply's shape.
 *
 * Contract
 *   Every reply read is required to be a JSON object with a string `status` (the
 *   admin protocol's first rule); anything else fails the running test with the line
 *   that arrived. Reads wait at most ACONN_READ_MS.
 *
 * Ownership: the caller owns the aconn (aconn_close frees its buffer) and every json_t
 * returned (json_decref). Must be called from a cmocka test.
 */
#ifndef DAFFI_TEST_ACONN_H
#define DAFFI_TEST_ACONN_H

#include <stddef.h>

#include <jansson.h>

#define ACONN_READ_MS 5000

/* An admin connection: a blocking socket and what was read past the last line. */
typedef struct aconn {
    int fd;
    char *buf;
    size_t len;
    size_t cap;
} aconn;

/* Connects to the admin socket at path or fails the test. */
void aconn_open(aconn *c, const char *path);
void aconn_close(aconn *c);
/* Sends n bytes or fails the test. */
void aconn_send(aconn *c, const void *p, size_t n);
/* Reads one line (without its LF) into a new string (the caller frees). Returns NULL
 * on EOF; fails the test on a timeout. */
char *aconn_line(aconn *c);
/* Reads one reply: a JSON object with a status. Fails the test otherwise. */
json_t *aconn_reply(aconn *c);
/* Sends a command line (LF added) and returns its reply. */
json_t *aconn_cmd(aconn *c, const char *line);
/* One command on a fresh connection to path; returns the reply. */
json_t *aconn_once(const char *path, const char *line);
/* Asserts the peer closes c within ms (whatever it sent before). */
void aconn_expect_closed(aconn *c, int ms);

/* o[key] as a string (NULL when absent or not a string). */
const char *jstr(json_t *o, const char *key);
/* o[key] as an integer; fails the test when it is not one. */
json_int_t jint(json_t *o, const char *key);

/* Asserts r is {"status": "ok", "command": command, ...}. */
void assert_admin_ok(json_t *r, const char *command);
/* Asserts r is a structured error: status "error", a `command` key (a string or null),
 * error == code and a non-empty detail. */
void assert_admin_err(json_t *r, const char *code);

#endif /* DAFFI_TEST_ACONN_H */
