/*
 * log.h - daffid's logger: one line per event, key=value fields, to stderr or syslog.
 *
 * The logger is the log room's own state, configured once at start (and by the admin
 * socket's loglevel later); the level is read atomically on every call so that a
 * disabled debug line costs one load and a compare.
 */
#ifndef DFD_LOG_H
#define DFD_LOG_H

#include <daffi/plugin.h>

#include "config-t.h"

/* Configures the logger: level (daffi_log_level), target, and the program name used as
 * syslog ident. Safe to call again (e.g. after a reload). */
void dfd_log_setup(int level, dfd_log_target target, dfd_log_format format,
                   const char *ident);
void dfd_log_set_level(int level);
/* Marks every later line of this process with "child=TAG " after its event (a child
 * process of an isolated plugin, whose lines share daffid's log). Call once, before
 * any thread but the caller's runs. */
void dfd_log_set_tag(const char *tag);
int dfd_log_level(void);
/* Returns "debug", "info", "warn", "error"; dfd_log_level_parse returns -1 if unknown. */
const char *dfd_log_level_name(int level);
int dfd_log_level_parse(const char *text);

/* Writes one line: "ts=TIME level=LEVEL event=EVENT <formatted fields>" (logfmt), or
 * the same as a JSON object ([log] format = json). fmt must produce logfmt pairs
 * separated by one space: a value that may hold anything (a peer's text, a path, a
 * message) goes through dfd_logfmt_value() (logfmt.h), or is written as \"%s\" only
 * when it is known to hold no quote, backslash or control character. The suite checks
 * every line daffid writes. */
void dfd_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The access log line of a call (when the access log is on): callback, peer, outcome
 * as the caller saw it (refused >= 0: the error code it was refused with before it
 * ran), duration. peer is not kept. */
struct dfd_call;
void dfd_log_access(const struct dfd_call *call, const char *peer, int refused);

#define dfd_debug(ev, ...) do { if (dfd_log_level() <= DAFFI_LOG_DEBUG) dfd_log(DAFFI_LOG_DEBUG, ev, __VA_ARGS__); } while (0)
#define dfd_info(ev, ...) dfd_log(DAFFI_LOG_INFO, ev, __VA_ARGS__)
#define dfd_warn(ev, ...) dfd_log(DAFFI_LOG_WARN, ev, __VA_ARGS__)
#define dfd_error(ev, ...) dfd_log(DAFFI_LOG_ERROR, ev, __VA_ARGS__)

#endif /* DFD_LOG_H */
