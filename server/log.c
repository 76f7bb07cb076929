/*
 * log.c - the logger (see log.h) and the SDK's daffi_log for plugins.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>

#include "call-t.h"
#include "log.h"
#include "plugin-t.h"
#include "server.h"
#include "stats.h"

/* The log room's state: written at setup, read by every thread. */
static struct {
    atomic_int level;
    atomic_int target;
} dfd_logger = {DAFFI_LOG_INFO, DFD_LOG_STDERR};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* "child=NAME " in a child process (set before its threads start), else "". */
static char log_tag[96];

void dfd_log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "child=%.80s ", tag);
}

void dfd_log_setup(int level, dfd_log_target target, const char *ident)
{
    dfd_log_set_level(level);
    if (target == DFD_LOG_SYSLOG && atomic_load(&dfd_logger.target) != DFD_LOG_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    atomic_store(&dfd_logger.target, (int)target);
}

void dfd_log_set_level(int level)
{
    if (level < DAFFI_LOG_DEBUG)
        level = DAFFI_LOG_DEBUG;
    if (level > DAFFI_LOG_ERROR)
        level = DAFFI_LOG_ERROR;
    atomic_store_explicit(&dfd_logger.level, level, memory_order_relaxed);
}

int dfd_log_level(void)
{
    return atomic_load_explicit(&dfd_logger.level, memory_order_relaxed);
}

const char *dfd_log_level_name(int level)
{
    if (level < DAFFI_LOG_DEBUG || level > DAFFI_LOG_ERROR)
        return "unknown";
    return level_names[level];
}

int dfd_log_level_parse(const char *text)
{
    for (int i = 0; i <= DAFFI_LOG_ERROR; i++)
        if (strcmp(text, level_names[i]) == 0)
            return i;
    if (strcmp(text, "warning") == 0)
        return DAFFI_LOG_WARN;
    return -1;
}

/* Formats and emits one line. The whole line is built first and written with one
 * fputs/syslog so lines of concurrent threads never interleave. */
static void log_emit(int level, const char *event, const char *prefix, const char *fmt,
                     va_list ap)
{
    char body[2048];
    vsnprintf(body, sizeof(body), fmt, ap);
    if (atomic_load(&dfd_logger.target) == DFD_LOG_SYSLOG) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[level], "level=%s event=%s %s%s%s", level_names[level], event, log_tag,
               prefix, body);
        return;
    }
    struct timeval tv;
    struct tm tm;
    char ts[32];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2304];
    snprintf(line, sizeof(line), "%s.%03dZ level=%s event=%s %s%s%s\n", ts,
             (int)(tv.tv_usec / 1000), level_names[level], event, log_tag, prefix, body);
    fputs(line, stderr);
}

void dfd_log(int level, const char *event, const char *fmt, ...)
{
    if (level < dfd_log_level())
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, event, "", fmt, ap);
    va_end(ap);
}

/* SDK: a plugin's log line carries plugin= and generation= fields. */
void daffi_log(const daffi_host *host, daffi_log_level level, const char *fmt, ...)
{
    if ((int)level < dfd_log_level() || (int)level > DAFFI_LOG_ERROR)
        return;
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "plugin=%s generation=%u msg=",
             host && host->plugin ? host->plugin->name : "?",
             host && host->plugin ? host->plugin->generation : 0);
    va_list ap;
    va_start(ap, fmt);
    log_emit((int)level, "plugin", prefix, fmt, ap);
    va_end(ap);
}

/* One line per finished call: "event=access callback=NAME peer=ADDR outcome=ok|ERROR
 * duration_us=N". The method name is quoted: it is whatever the caller sent. */
void dfd_log_access(const dfd_call *call, const char *peer)
{
    uint64_t us = (dfd_now_ns() - call->start_ns) / 1000u;
    char name[160];
    size_t n = 0;
    for (const char *p = call->base.method; *p != '\0' && n + 2 < sizeof(name); p++)
        name[n++] = (*p == '"' || (unsigned char)*p < 0x20) ? '?' : *p;
    name[n] = '\0';
    dfd_info("access", "callback=\"%s\" peer=%s outcome=%s duration_us=%llu%s", name, peer,
             dfd_outcome_name(dfd_stats_call_outcome(call)), (unsigned long long)us,
             call->notify ? " notify=yes" : "");
}
