/*
 * admin.h - the admin socket: a Unix stream socket ([admin] socket, mode, owner, group)
 * on the main event base, speaking a line-based command language. `socat -
 * UNIX-CONNECT:PATH` is enough to use it by hand; daffictl -a PATH is its front end.
 *
 * Protocol
 *   A command is one line of text (LF or CRLF), at most DFD_ADMIN_MAX_LINE bytes:
 *   a command name and its arguments separated by blanks. Blank lines are ignored.
 *   Every command gets exactly one reply, in order: one JSON object on one line.
 *     success  {"status": "ok", "command": NAME, ...what the command reports}
 *     failure  {"status": "error", "command": NAME|null, "error": CODE,
 *               "detail": "what was wrong, naming it"}
 *   Error codes: unknown_command, bad_arguments, line_too_long, binary_input,
 *   idle_timeout, busy, no_such_plugin, reload_failed, load_failed, unload_failed,
 *   denied, shutting_down, internal. `command` is the command's name, or null when the
 *   line named none the table knows. Arguments must be printable UTF-8 text
 *   (bad_arguments otherwise); strings in replies that came from outside are escaped
 *   (\xNN) where they are not. After line_too_long, binary_input, idle_timeout and busy
 *   the connection is closed (the stream cannot be trusted to resynchronise); after
 *   any other error the client may go on.
 *
 * Commands: help, status, plugins, callbacks [PLUGIN], members, stats, metrics,
 * reload [PLUGIN], load FILE, unload NAME, loglevel [LEVEL], drain, shutdown
 * (`help` lists them with their usage; README.md describes each reply).
 *
 * Trust: whoever can connect has the server's own rights (load runs the code of any
 * .so an ini in an allowed directory names): guard the socket file like a root
 * shell when daffid runs as root. load reads only files under [admin] load_paths (the
 * configuration directory by default); its errors never repeat what a file holds.
 *
 * Limits: DFD_ADMIN_MAX_CLIENTS connections at once (more are answered busy and
 * closed), [admin] idle_timeout for a client that says nothing, the line length.
 * A client that misbehaves costs only its own connection.
 *
 * Threads: everything runs on the main thread.
 */
#ifndef DFD_ADMIN_H
#define DFD_ADMIN_H

#include "config.h"

struct dfd_server;

#define DFD_ADMIN_MAX_LINE 4096
#define DFD_ADMIN_MAX_CLIENTS 32

/* Opens the admin socket of srv->cfg (if any) and starts serving it on srv->base:
 * a stale socket file nobody serves is replaced, a live one is never stolen, a path
 * that is not a socket is never removed. Returns 0 (also when none is configured), or
 * -1 with the reason in errs. */
int dfd_admin_start(struct dfd_server *srv, dfd_errors *errs);

/* Reload: [admin] allow_uids / allow_gids of nc apply to the next connections (the
 * clients connected stay). Logged when they changed (admin.allow_reloaded). The socket
 * itself, its mode and owner are restart settings. Returns 0, or -1 (out of memory: the
 * running lists stay, logged). */
int dfd_admin_reload(struct dfd_server *srv, const dfd_config *nc);

/* Peers the allow lists refused since start (the admin_denied counter); 0 without an
 * admin socket. */
uint64_t dfd_admin_denied(const struct dfd_server *srv);

/* Flushes what each client still has to read, closes every client and the socket,
 * removes the socket file we created and frees the admin state (srv->admin = NULL).
 * Safe when it never started. */
void dfd_admin_stop(struct dfd_server *srv);

#endif /* DFD_ADMIN_H */
