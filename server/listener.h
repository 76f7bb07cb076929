/*
 * listener.h - listening sockets (TCP and Unix) and the accept path.
 *
 * The main thread accepts and hands each connection to a loop, round-robin, through
 * the loop's mailbox; the connection stays on that loop for life.
 */
#ifndef DFD_LISTENER_H
#define DFD_LISTENER_H

#include <event2/event.h>
#include <daffi/rpc.h>

#include "config.h"

struct dfd_server;

typedef struct dfd_listener {
    daffi_addr addr;
    int fd;
    int is_unix;
    int require_auth;          /* [auth] require covers it (cfg->listen_auth) */
    dev_t dev;                 /* Unix: identity of the socket file we created, so */
    ino_t ino;                 /*       we never unlink a file that is not ours */
    struct event *ev;
    struct dfd_server *srv;
} dfd_listener;

/* Opens every listener of the configuration. Returns 0, or -1 with the reasons in
 * errs (listeners opened so far are closed). */
int dfd_listeners_open(struct dfd_server *srv, dfd_errors *errs);
/* Starts accepting on the main base. */
int dfd_listeners_start(struct dfd_server *srv);
/* Stops accepting and closes the sockets; Unix socket files we created are removed. */
void dfd_listeners_close(struct dfd_server *srv);

#endif /* DFD_LISTENER_H */
