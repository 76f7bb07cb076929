/*
 * logcheck.h - the test suite's own reader of daffid's log format (logfmt): every line
 * daffid writes as `ts=...` must be key=value pairs, values bare or quoted with
 * escapes. Written apart from server/logfmt.c on purpose: an oracle, not a copy.
 */
#ifndef DAFFI_TEST_LOGCHECK_H
#define DAFFI_TEST_LOGCHECK_H

/* 1 when line (no newline) is well-formed logfmt. */
int logcheck_line(const char *line);

/* Checks every line of the file at path that starts with "ts=". Prints each bad one
 * to stderr (with its number) and returns how many there were (-1: unreadable). */
int logcheck_file(const char *path);

#endif /* DAFFI_TEST_LOGCHECK_H */
