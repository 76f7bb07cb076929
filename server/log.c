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
#include "logfmt.h"
#include "plugin-t.h"
#include "server.h"
#include "stats.h"

/* The log room's state: written at setup, read by every thread. */
static struct {
    atomic_int level;
    atomic_int target;
    atomic_int format;
} dfd_logger = {DAFFI_LOG_INFO, DFD_LOG_STDERR, DFD_LOG_TEXT};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* "child=NAME " in a child process (set before its threads start), else "". */
static char log_tag[96];

void dfd_log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "child=%.80s ", tag);
}

static void json_escape_raw(const char *s, char *fields, size_t size);

void dfd_log_setup(int level, dfd_log_target target, dfd_log_format format,
                   const char *ident)
{
    dfd_log_set_level(level);
    atomic_store(&dfd_logger.format, (int)format);
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

/* Formats and emits one line: `ts=... level=... event=... <fields>`, or the same as a
 * JSON object with [log] format = json. The whole line is built first and written with
 * one fputs/syslog so lines of concurrent threads never interleave. prefix is already
 * logfmt; body is what the caller formatted (logfmt by contract: the suite checks
 * every line daffid writes). */
static void log_emit(int level, const char *event, const char *prefix, const char *body)
{
    if (atomic_load(&dfd_logger.target) == DFD_LOG_SYSLOG) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[level], "level=%s event=%s %s%s%s", level_names[level], event, log_tag,
               prefix, body);
        return;
    }
    struct timeval tv;
    struct tm tm;
    char ts[40], day[32];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts, sizeof(ts), "%s.%03dZ", day, (int)(tv.tv_usec / 1000));
    char line[4096];
    if (atomic_load(&dfd_logger.format) == DFD_LOG_JSON) {
        char fields[3072], pairs[2400];
        snprintf(pairs, sizeof(pairs), "%s%s%s", log_tag, prefix, body);
        if (dfd_logfmt_to_json(pairs, fields, sizeof(fields)) == -1) {
            /* not logfmt (a bug the suite looks for): keep it, as one string */
            json_escape_raw(pairs, fields, sizeof(fields));
        }
        snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\"%s}\n",
                 ts, level_names[level], event, fields);
    } else {
        snprintf(line, sizeof(line), "ts=%s level=%s event=%s %s%s%s\n", ts, level_names[level],
                 event, log_tag, prefix, body);
    }
    fputs(line, stderr);
}

/* fields = ,"raw":"<s as a JSON string>" (for a body that is not logfmt). */
static void json_escape_raw(const char *s, char *fields, size_t size)
{
    char v[2400];
    size_t o = 0;
    for (; *s != '\0' && o + 8 < sizeof(v); s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            v[o++] = '\\';
            v[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(v + o, sizeof(v) - o, "\\u%04x", ch);
        } else {
            v[o++] = (char)ch;
        }
    }
    v[o] = '\0';
    snprintf(fields, size, ",\"raw\":\"%s\"", v);
}

void dfd_log(int level, const char *event, const char *fmt, ...)
{
    if (level < dfd_log_level())
        return;
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    log_emit(level, event, "", body);
}

/* SDK: a plugin's log line carries plugin= and generation= fields. */
void daffi_log(const daffi_host *host, daffi_log_level level, const char *fmt, ...)
{
    if ((int)level < dfd_log_level() || (int)level > DAFFI_LOG_ERROR)
        return;
    char prefix[160], text[1536], msg[2048];
    snprintf(prefix, sizeof(prefix), "plugin=%s generation=%u msg=",
             host && host->plugin ? host->plugin->name : "?",
             host && host->plugin ? host->plugin->generation : 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    /* the plugin's text is the value of msg=, quoted and escaped whatever it holds */
    log_emit((int)level, "plugin", prefix, dfd_logfmt_value(msg, sizeof(msg), text));
}

/* One line per finished call: "event=access callback=NAME peer=ADDR outcome=ok|ERROR
 * duration_us=N". The method name is quoted: it is whatever the caller sent. */
void dfd_log_access(const dfd_call *call, const char *peer, int refused)
{
    uint64_t us = (dfd_now_ns() - call->start_ns) / 1000u;
    char name[300], who[160];
    dfd_logfmt_value_n(name, sizeof(name), call->base.method,
                       call->base.msg.method_len > 200 ? 200 : call->base.msg.method_len);
    dfd_logfmt_value(who, sizeof(who), peer);
    dfd_info("access", "callback=%s peer=%s outcome=%s duration_us=%llu%s", name, who,
             dfd_outcome_name(dfd_stats_outcome_of(call, refused)),
             (unsigned long long)us,
             call->notify ? " notify=yes" : "");
}
