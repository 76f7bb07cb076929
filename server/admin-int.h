/*
 * admin-int.h - what the admin socket's files share (private to admin.c, admin-cmd.c,
 * admin-load.c; nothing else includes it).
 *
 * admin.c owns the transport: the listening socket, the clients, reading lines,
 * sending replies, limits. admin-cmd.c parses a line and runs the command, building
 * the reply with jansson. admin-load.c keeps the runtime overrides behind load and
 * unload.
 */
#ifndef DFD_ADMIN_INT_H
#define DFD_ADMIN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "admin.h"

struct bufferevent;
struct event;
struct dfd_server;

typedef struct dfd_admin dfd_admin;

typedef struct admin_client {
    dfd_admin *adm;
    struct bufferevent *bev;
    struct admin_client *prev;
    struct admin_client *next;
    int closing;                /* close once the output is written */
    int waiting;                /* a drain answers later: reading is paused */
    long uid;                   /* the peer's uid (SO_PEERCRED), -1 if unknown */
    long pid;
} admin_client;

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
    dev_t dev;                  /* identity of the socket file we created, so that */
    ino_t ino;                  /* we never unlink a file that is not ours */
    struct event *accept_ev;
    admin_client *clients;
    unsigned nclients;
    uint64_t commands;          /* commands answered */
    uint64_t errors;            /* of which errors */

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
/* Answers every client waiting for the drain (the drain has ended). */
void admin_drain_answer(dfd_admin *adm);
/* Returns {"status":"ok","command":command}, or NULL when memory ran out. */
json_t *admin_ok(const char *command);
/* Every message of errs as a JSON array of strings. New reference. */
json_t *admin_errors(const dfd_errors *errs);

/* ---- admin-load.c ---- */

/* load FILE / unload NAME (see admin.h); answer on c. */
void admin_cmd_load(admin_client *c, const char *file);
void admin_cmd_unload(admin_client *c, const char *name);
/* Frees the runtime overrides; points srv->overrides back at main's list. */
void admin_overrides_free(dfd_admin *adm);

#endif /* DFD_ADMIN_INT_H */
