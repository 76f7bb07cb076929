/*
 * tnkeys.h - NATS decentralized authentication for the tests, without nsc: NKeys
 * (Ed25519 keys in NATS' base32 encoding, OpenSSL's Ed25519) and the JWTs that chain
 * them (operator -> account -> user, each signed by its issuer), so that a test can run
 * nats-server in operator mode and hand daffid a real .creds file.
 *
 * Contract
 *   tnkeys_operator_setup()  writes into dir: op.jwt (a self-signed operator), a
 *                            nats-server configuration nats.conf (operator op.jwt,
 *                            resolver MEMORY, the account preloaded) and user.creds (a
 *                            user of that account: its JWT and NKey seed, the .creds
 *                            layout nsc writes). With stranger = 1 it also writes
 *                            stranger.creds: a well-formed user of an account the
 *                            server does not know (nats-server rejects it).
 * Ownership: the caller owns dir and the files. No global state.
 */
#ifndef DAFFI_TEST_TNKEYS_H
#define DAFFI_TEST_TNKEYS_H

/* Returns 0, or -1 (printed). */
int tnkeys_operator_setup(const char *dir, int stranger);

#endif /* DAFFI_TEST_TNKEYS_H */
