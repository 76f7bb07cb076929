/*
 * rawconn.h - a blocking raw MessagePack-RPC connection, for tests and benchmarks.
 *
 * Contract
 *   A rawconn is one client socket (TCP or Unix, addressed as daffi_addr_parse() reads
 *   it) plus a receive buffer. It sends whatever bytes the caller gives it - valid
 *   messages built with the codec's packers, or deliberately broken ones - and reads
 *   back one whole message at a time, delimited by daffi_scan_feed() and decoded by
 *   daffi_msg_decode() (the codec under test; no msgpack parsing of our own). Every
 *   read has a deadline, and a peer close is reported as RAWCONN_EOF, so a test can
 *   assert "the server closed this connection".
 *
 *   A rawmsg is a growable byte buffer with a msgpack packer writing into it: envelope
 *   helpers write the header, the caller packs params with msgpack_pack_*().
 *
 * Ownership: the rawconn owns its socket, buffer and zone; the message returned by
 * rawconn_read() (c->msg and c->raw) points into them and is valid until the next
 * rawconn_read()/rawconn_close(). A rawmsg owns its buffer.
 *
 * Thread safety: none; one rawconn belongs to one thread. No global state.
 */
#ifndef DAFFI_TEST_RAWCONN_H
#define DAFFI_TEST_RAWCONN_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <daffi/rpc.h>

typedef enum rawconn_status {
    RAWCONN_OK = 0,      /* c->msg holds one whole decoded message */
    RAWCONN_EOF = 1,     /* the peer closed (or reset) the connection */
    RAWCONN_TIMEOUT = 2, /* nothing complete arrived before the deadline */
    RAWCONN_BAD = 3,     /* the peer sent bytes the codec rejects (c->why says what) */
    RAWCONN_ERROR = 4    /* a local socket error (errno is set) */
} rawconn_status;

typedef struct rawconn {
    int fd;                    /* -1 when closed */
    char addr[192];            /* the address it was opened with, for messages */
    char *buf;                 /* received bytes; owned */
    size_t len;                /* bytes held in buf */
    size_t cap;
    size_t consumed;           /* bytes at buf start that belong to the last message */
    daffi_limits lim;          /* limits applied to what the peer sends */
    msgpack_zone zone;         /* objects of the last message */
    int zone_ready;            /* 1 while zone is initialised */
    daffi_msg msg;             /* the last message read (RAWCONN_OK) */
    const char *raw;           /* its encoded bytes ... */
    size_t raw_size;           /* ... and their count */
    const char *why;           /* RAWCONN_BAD: static text from the scanner */
    daffi_scan scan;           /* resumable scan of the message at buf + consumed */
    int scanning;              /* 1 while scan holds a partial verdict */
} rawconn;

/* Connects to address ("tcp://127.0.0.1:6001", "unix:///path"), waiting at most
 * timeout_ms. Sets TCP_NODELAY on TCP. Returns 0, or -1 with errno set (EINVAL for an
 * address that does not parse, ECONNREFUSED/ENOENT when nothing listens). */
int rawconn_open(rawconn *c, const char *address, int timeout_ms);

/* Closes the socket and frees the buffers; safe on a closed or failed rawconn. */
void rawconn_close(rawconn *c);

/* Writes all n bytes (blocking). Returns 0, or -1 with errno set (EPIPE when the peer
 * closed: SIGPIPE is never raised). */
int rawconn_send(rawconn *c, const void *p, size_t n);

/* Shuts down the sending direction (the peer reads EOF). Returns 0 or -1. */
int rawconn_shutdown_write(rawconn *c);

/* Reads until one whole message is buffered or timeout_ms passed, then decodes it into
 * c->msg (c->raw/c->raw_size hold its bytes). Returns a rawconn_status. */
rawconn_status rawconn_read(rawconn *c, int timeout_ms);

/* Reads and discards until the peer closes. Returns RAWCONN_EOF when it did within
 * timeout_ms, RAWCONN_TIMEOUT when it did not, RAWCONN_ERROR on a local error.
 * *nmsgs (may be NULL) receives how many whole messages arrived before the close. */
rawconn_status rawconn_wait_eof(rawconn *c, int timeout_ms, unsigned *nmsgs);

/* For a response in c->msg: the encoded bytes of its result element. Returns 0, or -1
 * when the last message is not a response. The bytes belong to c. */
int rawconn_result_raw(const rawconn *c, const char **p, size_t *n);

/* Returns the static name of a status ("OK", "EOF", ...). */
const char *rawconn_status_name(rawconn_status st);

/* A message being built: sb receives what pk packs. */
typedef struct rawmsg {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} rawmsg;

void rawmsg_init(rawmsg *m);
void rawmsg_destroy(rawmsg *m);
/* Empties the buffer, keeping its memory. */
void rawmsg_clear(rawmsg *m);

/* Appends a request / notification header; the caller then packs exactly nparams
 * objects with msgpack_pack_*(&m->pk, ...). Returns the packer. */
msgpack_packer *rawmsg_request(rawmsg *m, uint32_t msgid, const char *method,
                               uint32_t nparams);
msgpack_packer *rawmsg_notify(rawmsg *m, const char *method, uint32_t nparams);

/* Sends the whole buffer, then clears it. Returns 0 or -1 (errno set). */
int rawconn_send_msg(rawconn *c, rawmsg *m);

#endif /* DAFFI_TEST_RAWCONN_H */
