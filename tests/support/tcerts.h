/*
 * tcerts.h - the certificates a TLS test needs, made at test time with the openssl
 * command line in a directory of the test's own (nothing is checked in):
 *   ca.pem / ca.key            a test CA
 *   server.pem / server.key    CN=localhost, SAN DNS:localhost and IP:127.0.0.1, by ca
 *   alice.pem / alice.key      a client certificate, CN=alice, by ca
 *   expired.pem / expired.key  CN=old, by ca, expired yesterday
 *   rogue.pem / rogue.key      CN=mallory, self-signed (no CA the tests trust)
 *   ca2.pem, server2.pem/.key  a second CA and a server certificate by it (reloads)
 * EC P-256 keys: making all of them takes a few tens of milliseconds.
 */
#ifndef DAFFI_TEST_TCERTS_H
#define DAFFI_TEST_TCERTS_H

typedef struct tcerts {
    char dir[200];
} tcerts;

/* Makes the certificates in dir (which must exist). Returns 0, or -1 with the failing
 * command and its output printed. */
int tcerts_make(tcerts *t, const char *dir);

/* Writes "DIR/name" into out (outsz bytes) and returns out. */
const char *tcerts_path(const tcerts *t, const char *name, char *out, unsigned long outsz);

#endif /* DAFFI_TEST_TCERTS_H */
