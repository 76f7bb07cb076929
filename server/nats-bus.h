/*
 * nats-bus.h - what the NATS roles share (docs/NATS.md): a libnats connection made
 * from the configuration (servers, nats_creds, nats_tls_ca; reconnecting forever, its
 * losses and returns logged), the subject names under the namespace, and the one way a
 * libnats thread hands a message to a loop: a mail carrying the natsMsg.
 *
 * libnats calls its callbacks on its own threads; those never touch daffid state.
 * They copy the message into a note and mail it (dfd_nats_mail_msg); the loop does the
 * work.
 */
#ifndef DFD_NATS_BUS_H
#define DFD_NATS_BUS_H

#include <stdatomic.h>
#include <stddef.h>

#include <nats/nats.h>

#include "loop.h"
#include "nats-io.h"

struct dfd_server;

#define DFD_NATS_DEFAULT_NAMESPACE "daffi"
#define DFD_NATS_SUBJECT_MAX 512

/* What a connection's callbacks (libnats threads) read: the role's, kept as long as
 * its connection; read-only once connected. */
typedef struct dfd_nats_ctx {
    const char *what;                 /* "worker" or "router", for the logs */
    void (*on_reconnect)(void *arg);  /* after each (re)connection, on a libnats
                                         thread; NULL: none */
    void *arg;
    atomic_int closing;               /* set by the role before it destroys the
                                         connection: its loss is not news */
    struct dfd_nats_io *io;           /* loop 0 drives the connection (nats-io.h);
                                         made by dfd_nats_connect, freed by the role
                                         after dfd_nats_shutdown */
} dfd_nats_ctx;

/* Connects to the comma-separated servers urls for srv. The connection retries in the
 * background when no server answers yet (logged nats.connect), and reconnects forever
 * after a loss. Returns the connection (the caller destroys it), or NULL (logged). */
natsConnection *dfd_nats_connect(struct dfd_server *srv, const char *urls,
                                 dfd_nats_ctx *ctx);

/* The configured namespace (nats_namespace, default "daffi"). */
const char *dfd_nats_namespace(const struct dfd_server *srv);

/* Writes "<ns>.<kind>" or, with name, "<ns>.<kind>.<name>" into out (size bytes).
 * Returns 0, or -1 when it does not fit or name is not a valid subject part
 * (dfd_nats_subject_ok). */
int dfd_nats_subject(char *out, size_t size, const struct dfd_server *srv, const char *kind,
                     const char *name, size_t name_len);

/* 1 when name (len bytes) can be the tail of a subject: printable, no blank, no
 * wildcard, no empty token. */
int dfd_nats_subject_ok(const char *name, size_t len);

/* A NATS message copied out of libnats: libnats' own message (and the subscription
 * lock its destruction takes) stays on libnats' thread. One allocation; free() it. */
typedef struct dfd_nats_note {
    const char *subject;
    const char *reply;              /* NULL: none */
    const char *data;
    size_t len;
    int no_responders;              /* nats-server's no-responders status */
    void *arg;                      /* the poster's (the gateway, the presence) */
    char buf[];
} dfd_nats_note;

/* Gives back note's data (data NULL, len 0), keeping its subject and reply. Returns
 * the note, which may have moved (the old pointer is then invalid). */
dfd_nats_note *dfd_nats_note_shrink(dfd_nats_note *note);

/* Copies msg into a note (arg in it) and destroys msg. Returns the note (free() it),
 * or NULL (out of memory: logged, msg destroyed all the same). */
dfd_nats_note *dfd_nats_note_of(natsMsg *msg, void *arg);

/* The subject where a member sends its word of kind about the request whose reply
 * subject is reply: 'r' the answer, 't' "taken", 's' a stream's credit and abort. A
 * gateway's reply ends in ".q" (its no-responders come there, on a plain
 * subscription); a member's words go to the same subject ending ".a.<kind>" instead,
 * which the gateway's loop 0 reads without a thread hop (docs/NATS.md). Any other
 * requester gets the answer at reply itself ('t' and 's': reply + ".<kind>").
 * Writes it into out (size bytes); returns 0, or -1 when it does not fit. */
int dfd_nats_word_subject(char *out, size_t size, const char *reply, char kind);

/* Copies msg into a note (arg in it), destroys msg and posts the note to loop:
 * run(loop, note) there owns it (free); a loop that stops first frees it unrun. On a
 * libnats thread. Returns 0, or -1 (nothing posted, logged). */
int dfd_nats_mail_msg(dfd_loop *loop, void (*run)(dfd_loop *loop, void *note), natsMsg *msg,
                      void *arg);

/* On loop 0 (a watched subscription's callback, nats-io.h): hands msg to loops[i] as
 * dfd_nats_mail_msg does, but runs run(loop 0, note) at once when i is 0 (no mail). */
void dfd_nats_hand_msg(dfd_loop *loops, unsigned i, void (*run)(dfd_loop *loop, void *note),
                       natsMsg *msg, void *arg);

/* Publishes len bytes to subject (reply may be NULL) from any thread; a failure is
 * counted on loop (nats_publish_errors) and logged once a second at most by the
 * caller's loop. Returns 0 or -1. */
int dfd_nats_publish(dfd_loop *loop, natsConnection *nc, const char *subject,
                     const char *reply, const void *data, size_t len);

/* What a role's NATS connection is doing, for the admin `status` (any thread): 1 when
 * connected (the server's URL in url), 0 otherwise (url empty). */
int dfd_nats_conn_state(natsConnection *nc, char *url, size_t size);

/* The connection of srv's NATS role (a member or a gateway), or NULL: none. */
natsConnection *dfd_nats_conn_of(const struct dfd_server *srv);

/* Waits (bounded) until libnats' own threads are gone, after the roles destroyed their
 * connections and subscriptions: no callback runs after this. Main thread, at exit. */
void dfd_nats_shutdown(void);

#endif /* DFD_NATS_BUS_H */
