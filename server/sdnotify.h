/*
 * sdnotify.h - systemd's notification protocol (sd_notify(3)), written directly: one
 * datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for an
 * abstract socket). libsystemd is not used. Without NOTIFY_SOCKET every call is a
 * no-op, so daffid runs the same under any supervisor.
 *
 * What daffid sends (Type=notify-reload units use all of it):
 *   READY=1 + STATUS=...                 once every listener accepts
 *   RELOADING=1 + MONOTONIC_USEC=N       when a reload starts (SIGHUP, admin reload)
 *   READY=1 + STATUS=...                 when that reload ends, with its result
 *   STOPPING=1 + STATUS=...              when shutdown (or an admin drain) starts
 *
 * Main thread only; nothing is kept between calls.
 */
#ifndef DFD_SDNOTIFY_H
#define DFD_SDNOTIFY_H

struct dfd_server;

/* Sends state (newline-separated VAR=value assignments) to $NOTIFY_SOCKET. Returns 1
 * when sent, 0 when NOTIFY_SOCKET is unset or empty, -1 when it could not be sent
 * (logged at warn level with the reason). */
int dfd_sdnotify(const char *state);

/* printf-style dfd_sdnotify(); the text is truncated at 1 KiB. */
int dfd_sdnotifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* READY=1 with a STATUS line describing what srv serves; why ("started", "reloaded",
 * "reload failed: ...") begins the status text. */
int dfd_sdnotify_ready(const struct dfd_server *srv, const char *why);
/* RELOADING=1 with MONOTONIC_USEC=now (CLOCK_MONOTONIC), as Type=notify-reload needs. */
int dfd_sdnotify_reloading(void);
/* STOPPING=1 with STATUS=why. */
int dfd_sdnotify_stopping(const char *why);

#endif /* DFD_SDNOTIFY_H */
