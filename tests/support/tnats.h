/*
 * tnats.h - real nats-server processes for the NATS tests and benchmark.
 *
 * Contract
 *   tnats_binary()  where nats-server is ($DAFFI_TEST_NATS_SERVER when set, else $PATH,
 *                   then /usr/sbin, /usr/bin), or NULL: the callers skip then, saying so.
 *   tnats_start()   picks free loopback ports (tdaemon_free_port), runs
 *                   `nats-server -a 127.0.0.1 -p PORT` (with a cluster port and routes to
 *                   the others for a cluster) with its output in a temp dir, and waits
 *                   (bounded) until the client port accepts. The child gets SIGKILL if
 *                   the test dies (PR_SET_PDEATHSIG).
 *   tnats_kill()    SIGKILL by PID and reap (a node that dies).
 *   tnats_cleanup() kills what still runs and removes the temp dir.
 * Ownership: the caller owns the struct; it owns the child and the dir. No global state.
 */
#ifndef DAFFI_TEST_TNATS_H
#define DAFFI_TEST_TNATS_H

#include <sys/types.h>

typedef struct tnats {
    pid_t pid;                 /* 0 when not running */
    int port;                  /* client port */
    int cport;                 /* cluster port, 0 when alone */
    char url[64];              /* nats://127.0.0.1:PORT */
    char dir[64];              /* temp dir holding its log */
    const char *tls_cert;      /* set before tnats_start: serve TLS only, with this */
    const char *tls_key;       /*   certificate and key (NULL: plain) */
    const char *config;        /* set before tnats_start: nats-server -c this file */
} tnats;

const char *tnats_binary(void);

/* Prepares n (ports, dir) without starting; cluster = 1 also picks a cluster port.
 * Returns 0 or -1 (printed). */
int tnats_init(tnats *n, int cluster);

/* Starts n; routes (may be NULL) is the comma-separated nats://127.0.0.1:CPORT list of
 * the other nodes of its cluster. Returns 0, or -1 (printed with its log). */
int tnats_start(tnats *n, const char *routes);

void tnats_kill(tnats *n);
void tnats_cleanup(tnats *n);

#endif /* DAFFI_TEST_TNATS_H */
