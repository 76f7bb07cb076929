/*
 * members-file.h - the router's member file: the names of its members, kept across
 * restarts so that a restarted router knows whom its startup grace waits for
 * (router-grace.h).
 *
 * Where: [server] state_file (an absolute path), else $STATE_DIRECTORY/router-NAME.members
 * (systemd's StateDirectory=), else router-NAME.members in the base directory of the
 * private plugin copies (privdir.c: $RUNTIME_DIRECTORY, /run/daffid or
 * $TMPDIR/daffid-UID). `state_file = none` keeps no file.
 *
 * The file is text: a comment line, then one member name per line (the router's own
 * plugins are not a member it waits for, so they are not listed). It is written whole
 * (a temporary file renamed over it) each time the set of names changes, except while
 * the router drains (its members did not choose to leave: a planned restart waits for
 * them too), and read once at start. A line that is not a member name is skipped with
 * a warning naming the file and line.
 */
#ifndef DFD_MEMBERS_FILE_H
#define DFD_MEMBERS_FILE_H

#include <stddef.h>

struct dfd_server;

/* Sets srv->registry.state_file from the configuration (NULL: none). Main thread,
 * before the loops run. Returns 0 or -1 (logged: the path would be too long). */
int dfd_members_file_init(struct dfd_server *srv);

/* Reads the names in the file at path into *names (an owned array of owned strings,
 * *n of them; free with dfd_members_file_free). A file that does not exist holds no
 * names. Returns 0, or -1 when it exists but cannot be read (logged). */
int dfd_members_file_read(const char *path, char ***names, size_t *n);
void dfd_members_file_free(char **names, size_t n);

/* Writes the registry's member names to the file (nothing without one). Caller holds
 * the registry lock, so writes follow the registry's order. A failure is logged (once
 * until a write succeeds again); routing goes on. */
void dfd_members_file_save(struct dfd_server *srv);

#endif /* DFD_MEMBERS_FILE_H */
