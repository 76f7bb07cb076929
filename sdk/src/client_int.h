/*
 * client_int.h - private helpers shared by the client library's files (the
 * synchronous client now, the asynchronous one later). Not installed.
 */
#ifndef DAFFI_CLIENT_INT_H
#define DAFFI_CLIENT_INT_H

#include <daffi/client.h>

#if defined(__GNUC__) || defined(__clang__)
#define DAFFI_CL_PRINTF(fmt_, args_) __attribute__((format(printf, fmt_, args_)))
#else
#define DAFFI_CL_PRINTF(fmt_, args_)
#endif

/* Releases what e held, then sets code, name and a formatted message (raised here,
 * remote = 0). e may be NULL: nothing happens. */
void daffi__err_set(daffi_error *e, int code, const char *fmt, ...) DAFFI_CL_PRINTF(3, 4);

/* Turns one complete, scanned response message (size bytes at msg) into the outcome
 * of the call to method. Copies the bytes: msg need not outlive the call. Returns 0
 * with out filled (owned by the caller), or -1 with err set: the peer's error
 * (remote = 1, details owned by err), or PROTOCOL when the error array is malformed,
 * or UNAVAILABLE when memory ran out. */
int daffi__reply_take(const char *msg, size_t size, const char *method,
                      daffi_result *out, daffi_error *err);

/* Opens a stream socket connected to a (TCP: TCP_NODELAY set), before deadline
 * (CLOCK_MONOTONIC nanoseconds, 0: no limit). Returns the non-blocking, close-on-exec
 * socket (owned by the caller), or -1 with a reason written to why. */
int daffi__connect_socket(const daffi_addr *a, int64_t deadline, char *why, size_t whylen);

#endif /* DAFFI_CLIENT_INT_H */
