/*
 * admin-int.h - what the admin socket's files share (private to the admin*.c files;
 * nothing else includes it).
 *
 * admin.c owns the transport: the listening socket, the clients, reading lines,
 * sending replies, limits. admin-cmd.c parses a line and finds the command in its
 * table; admin-reply.c has the JSON building blocks of the replies; admin-view.c runs
 * the commands that only look, admin-ctl.c those that steer (reload, loglevel, drain,
 * shutdown), admin-load.c load and unload and the runtime overrides behind them,
 * admin-monitor.c the live view of calls.
 */
#ifndef DFD_ADMIN_INT_H
#define DFD_ADMIN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "admin.h"
#include "unixsock.h"

struct bufferevent;
struct event;
struct dfd_server;
struct dfd_monitor_rec;

typedef struct dfd_admin dfd_admin;
typedef struct admin_client admin_client;

/* One command of the table (admin-cmd.c). */
typedef struct admin_cmd {
    const char *name;
    int min_args;
    int max_args;
    const char *usage;
    const char *summary;
    void (*run)(admin_client *c, const struct admin_cmd *cmd, int argc, char **argv);
} admin_cmd;

struct admin_client {
    dfd_admin *adm;
    struct bufferevent *bev;
    struct admin_client *prev;
    struct admin_client *next;
    int closing;                /* close once the output is written */
    int waiting;                /* a drain answers later: reading is paused */
    long uid;                   /* the peer's uid (SO_PEERCRED), -1 if unknown */
    long pid;
    int monitoring;             /* `monitor`: a line per finished call (admin-monitor.c) */
    uint64_t monitor_missed;    /* calls not written to it yet: its output was full */
};

/* One runtime override that load/unload added (admin-load.c). */
typedef struct admin_override {
    char *text;                 /* "@FILE" or "NAME:plugin.enabled=no"; owned */
    char *plugin;               /* the plugin it loaded or disabled; owned */
    char *file;                 /* the ini it came from (realpath); owned */
} admin_override;

typedef enum admin_drain_state {
    ADMIN_DRAIN_NONE = 0,
    ADMIN_DRAIN_RUNNING,        /* listeners closed, loops draining */
    ADMIN_DRAIN_DONE            /* every loop drained, or the deadline passed */
} admin_drain_state;

struct dfd_admin {
    struct dfd_server *srv;
    char path[108];
    int fd;
    dfd_unixsock made;          /* the socket file we created (never unlink another) */
    struct event *accept_ev;
    admin_client *clients;
    unsigned nclients;
    uint64_t commands;          /* commands answered */
    uint64_t errors;            /* of which errors */
    /* [admin] allow_uids / allow_gids as last read (start, then each reload); owned.
     * Both empty: anyone the socket's file mode lets connect. */
    long *allow_uids;
    size_t nallow_uids;
    long *allow_gids;
    size_t nallow_gids;
    uint64_t denied;            /* peers refused by them (admin_denied) */

    admin_drain_state drain;
    uint64_t drain_start_ns;
    uint64_t drain_deadline_ns;
    int drain_complete;         /* 1: drained; 0: the deadline passed first */
    struct event *drain_timer;

    /* load/unload: srv->overrides points at ov while any runtime override exists */
    const char *const *base_ov; /* main's -o list (not owned) */
    size_t nbase_ov;
    int base_saved;
    admin_override *rt;         /* owned array */
    size_t nrt;
    const char **ov;            /* owned array; its strings belong to base_ov and rt */
};

/* ---- admin.c ---- */

/* The admin state of srv without a socket (srv->admin = it; dfd_admin_stop frees it).
 * dfd_admin_start uses it; so does tests/fuzz/fuzz_admin.c, which drives clients over
 * bufferevent pairs. Returns NULL when memory ran out. */
dfd_admin *admin_new(struct dfd_server *srv);
/* Serves one more client on bev (taken: freed with the client), answering busy and
 * closing past DFD_ADMIN_MAX_CLIENTS. uid and pid are for the log (-1: unknown).
 * Returns 0 (the client may be gone already, having been answered and closed), or -1
 * when memory ran out (bev is then the caller's). */
int admin_client_add(dfd_admin *adm, struct bufferevent *bev, long uid, long pid);

/* Sends reply (taking the reference) as one line. Returns 0, or -1 when it could not
 * be encoded (the client is then closed). */
int admin_send(admin_client *c, json_t *reply);
/* Sends {"status":"error","command":command,"error":code,"detail":...}; extra (may be
 * NULL, reference taken) adds its members to the reply. close_after 1 closes the
 * connection once the reply is written. */
void admin_send_error(admin_client *c, const char *command, const char *code,
                      json_t *extra, int close_after, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Pauses reading c until admin_resume(): its command answers later. */
void admin_pause(admin_client *c);
void admin_resume(admin_client *c);

/* ---- admin-cmd.c ---- */

/* Runs one command line (NUL-terminated, without its newline, checked to be text) and
 * answers it on c, now or (drain) later. */
void admin_run_line(admin_client *c, char *line);

/* ---- admin-reply.c ---- */

/* Returns {"status":"ok","command":command}, or NULL when memory ran out. */
json_t *admin_ok(const char *command);
/* A wall-clock time as "2024-05-01T12:00:00Z", or null for 0. New reference. */
json_t *admin_time(time_t t);
/* A string that may come from outside (file names, plugin versions, what a client
 * sent): every byte that is not part of a printable UTF-8 character (admin_unprintable_at)
 * is written \xNN, so the reply is always valid, readable JSON. null for NULL. New
 * reference. */
json_t *admin_str(const char *s);
/* The offset of the first byte of s that does not start a printable UTF-8 character
 * (not UTF-8; a control character; an invisible character that changes how text reads:
 * direction marks and overrides, zero-width characters, line separators), or -1. */
long admin_unprintable_at(const char *s);
/* Copies s into out (size > 0), each byte admin_unprintable_at() would stop at written
 * as \xNN; cut at a character boundary when out is full. */
void admin_escape(const char *s, char *out, size_t size);
/* An unsigned counter. New reference. */
json_t *admin_uint(uint64_t v);
/* Every message of errs as a JSON array of strings. New reference. */
json_t *admin_errors(const dfd_errors *errs);
/* "running", "draining", "drained" or "stopping". */
const char *admin_state(const dfd_admin *adm);

/* ---- the commands: admin-view.c, admin-ctl.c, admin-load.c ---- */

/* Each answers on c, now or (drain) later; argv holds argc arguments, counted against
 * cmd's bounds already. README.md describes each reply. */
void admin_cmd_status(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_plugins(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_callbacks(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_members(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_stats(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_metrics(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_reload(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_loglevel(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_accesslog(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_drain(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_resume(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_shutdown(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
/* load FILE / unload NAME (see admin-load.c) */
void admin_cmd_load(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
void admin_cmd_unload(admin_client *c, const admin_cmd *cmd, int argc, char **argv);

/* `monitor` (admin-monitor.c): the client gets a JSON line per finished call until it
 * disconnects. */
void admin_cmd_monitor(admin_client *c, const admin_cmd *cmd, int argc, char **argv);
/* Delivers the monitor's batches to the monitoring clients (admin.c sets it as the
 * feed's sink at start). */
void admin_monitor_sink(void *arg, const struct dfd_monitor_rec *recs, unsigned n,
                        uint64_t dropped);
/* A monitoring client leaves (admin.c, before freeing it). */
void admin_monitor_leave(admin_client *c);

/* Answers every client waiting for the drain (the drain has ended). admin-ctl.c. */
void admin_drain_answer(dfd_admin *adm);
/* Frees the runtime overrides; points srv->overrides back at main's list. admin-load.c. */
void admin_overrides_free(dfd_admin *adm);

#endif /* DFD_ADMIN_INT_H */
