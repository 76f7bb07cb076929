/*
 * logfmt.h - the logfmt line format of daffid's log: `key=value` pairs separated by
 * one space; a value is bare (printable, no space, `"` or `=`) or quoted ("..." with
 * \" \\ \n \r \t and \xNN escapes). One writer quotes what needs it; one reader turns a
 * line into JSON for `[log] format = json`.
 */
#ifndef DFD_LOGFMT_H
#define DFD_LOGFMT_H

#include <stddef.h>

/* Writes s as one logfmt value into out (size bytes, NUL-terminated): bare when it can
 * be, else quoted with escapes; truncated (still well-formed) when out is too small.
 * Returns out, so that it can be an argument of the log call. */
const char *dfd_logfmt_value(char *out, size_t size, const char *s);
/* The same for len bytes that need not be NUL-terminated. */
const char *dfd_logfmt_value_n(char *out, size_t size, const char *s, size_t len);

/* 1 when line (without its newline) is a well-formed sequence of key=value pairs. */
int dfd_logfmt_valid(const char *line);

/* Appends the pairs of a logfmt line to out as JSON members ("key":"value", each
 * preceded by a comma), values as JSON strings. Returns 0, or -1 when the line is not
 * logfmt (out then holds what was read). size bounds out (NUL-terminated). */
int dfd_logfmt_to_json(const char *line, char *out, size_t size);

#endif /* DFD_LOGFMT_H */
