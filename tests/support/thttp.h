/*
 * thttp.h - one raw HTTP/1.0 exchange for the integration tests: the metrics listener
 * over TCP or a Unix socket.
 *
 * Ownership: the returned response is malloc'd (the caller frees). Must be called from
 * a cmocka test: a connection or read failure fails it.
 */
#ifndef DAFFI_TEST_THTTP_H
#define DAFFI_TEST_THTTP_H

/* Sends request (the whole request text) to address (tcp://... or unix://...) and
 * returns everything read until the server closes: status line, headers, body. */
char *thttp_exchange(const char *address, const char *request);

/* The status code of a response ("HTTP/1.1 405 ..." -> 405), or -1. */
int thttp_status(const char *response);

#endif /* DAFFI_TEST_THTTP_H */
