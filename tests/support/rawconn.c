/*
 * rawconn.c - a blocking raw MessagePack-RPC connection for tests (see rawconn.h).
 *
 * Messages are delimited with the codec's resumable scanner and decoded with its
 * decoder, so the tests exercise the same code every daffi client uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rawconn.h"

#define RAWCONN_READ_CHUNK (64 * 1024)
/* What a test accepts from the server: generous, the server enforces its own. */
#define RAWCONN_MAX_MESSAGE ((size_t)256 * 1024 * 1024)
#define RAWCONN_MAX_DEPTH 62u
#define RAWCONN_SEND_TIMEOUT_S 10

/* Returns CLOCK_MONOTONIC in milliseconds. */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Returns the milliseconds left until deadline (>= 0) for poll(). */
static int ms_left(int64_t deadline)
{
    int64_t left = deadline - now_ms();

    return left < 0 ? 0 : (int)left;
}

/* Accepts a socket fd and a sockaddr. Connects without blocking past deadline.
 * Returns 0, or -1 with errno set; the caller closes fd. */
static int connect_by(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline)
{
    int flags = fcntl(fd, F_GETFL);
    int err = 0;
    socklen_t errlen = sizeof(err);

    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
        return -1;
    for (;;) {
        if (connect(fd, sa, salen) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            /* A Unix listener whose backlog is full: try again shortly. */
            if (ms_left(deadline) == 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            usleep(1000);
            continue;
        }
        if (errno != EINPROGRESS)
            return -1;
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int n = poll(&pfd, 1, ms_left(deadline));
        if (n == -1)
            return -1;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1)
            return -1;
        if (err != 0) {
            errno = err;
            return -1;
        }
        break;
    }
    return fcntl(fd, F_SETFL, flags);
}

/* Accepts a parsed address. Returns a connected blocking socket or -1 (errno set). */
static int open_socket(const daffi_addr *a, int64_t deadline)
{
    int fd;

    if (a->kind == DAFFI_ADDR_UNIX) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };

        if (strlen(a->path) >= sizeof(sun.sun_path)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd == -1)
            return -1;
        if (connect_by(fd, (struct sockaddr *)&sun, sizeof(sun), deadline) == -1) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        return fd;
    }

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    char port[16];

    snprintf(port, sizeof(port), "%d", a->port);
    if (getaddrinfo(a->host, port, &hints, &res) != 0) {
        errno = EINVAL;
        return -1;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd == -1) {
        freeaddrinfo(res);
        return -1;
    }
    if (connect_by(fd, res->ai_addr, res->ai_addrlen, deadline) == -1) {
        int e = errno;
        freeaddrinfo(res);
        close(fd);
        errno = e;
        return -1;
    }
    freeaddrinfo(res);
    int one = 1;
    /* One small write per request must leave at once, as real clients configure it. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Accepts an uninitialised rawconn and an address string. Returns 0 with c open, or
 * -1 with errno set and c already released (closing it again is harmless). */
int rawconn_open(rawconn *c, const char *address, int timeout_ms)
{
    daffi_addr a;
    const char *why = NULL;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->lim.max_message = RAWCONN_MAX_MESSAGE;
    c->lim.max_depth = RAWCONN_MAX_DEPTH;
    /* msgpack_zone_init() returns true on success. */
    if (!msgpack_zone_init(&c->zone, 4096)) {
        errno = ENOMEM;
        return -1;
    }
    c->zone_ready = 1;
    snprintf(c->addr, sizeof(c->addr), "%s", address);
    if (daffi_addr_parse(address, &a, &why) == -1) {
        rawconn_close(c);
        errno = EINVAL;
        return -1;
    }
    c->fd = open_socket(&a, now_ms() + timeout_ms);
    if (c->fd == -1) {
        int e = errno;
        rawconn_close(c);
        errno = e;
        return -1;
    }
    struct timeval tv = { .tv_sec = RAWCONN_SEND_TIMEOUT_S };
    /* A test must fail, not hang, when the server stops reading. */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return 0;
}

/* Accepts a rawconn in any state. Releases everything it owns. */
void rawconn_close(rawconn *c)
{
    if (c->fd != -1)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = c->consumed = 0;
    c->scanning = 0;
    /* msgpack_zone_destroy() is not safe twice: closing twice must be. */
    if (c->zone_ready)
        msgpack_zone_destroy(&c->zone);
    c->zone_ready = 0;
}

/* Accepts bytes the caller keeps. Returns 0 once all were written, or -1 (errno). */
int rawconn_send(rawconn *c, const void *p, size_t n)
{
    const char *b = p;

    while (n > 0) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* See rawconn.h. Returns what shutdown() returned. */
int rawconn_shutdown_write(rawconn *c)
{
    return shutdown(c->fd, SHUT_WR);
}

/* Drops the bytes of the previous message from the buffer start. */
static void discard_consumed(rawconn *c)
{
    if (c->consumed == 0)
        return;
    memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
    c->len -= c->consumed;
    c->consumed = 0;
    c->raw = NULL;
    c->raw_size = 0;
}

/* Receives what is available, waiting at most until deadline. Returns RAWCONN_OK when
 * bytes arrived, RAWCONN_EOF, RAWCONN_TIMEOUT or RAWCONN_ERROR. */
static rawconn_status fill(rawconn *c, int64_t deadline)
{
    if (c->cap - c->len < RAWCONN_READ_CHUNK) {
        size_t ncap = c->cap ? c->cap * 2 : 2 * RAWCONN_READ_CHUNK;
        while (ncap - c->len < RAWCONN_READ_CHUNK)
            ncap *= 2;
        char *nb = realloc(c->buf, ncap);
        if (nb == NULL)
            return RAWCONN_ERROR;
        c->buf = nb;
        c->cap = ncap;
    }
    for (;;) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int n = poll(&pfd, 1, ms_left(deadline));
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return RAWCONN_ERROR;
        }
        if (n == 0)
            return RAWCONN_TIMEOUT;
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (r == 0)
            return RAWCONN_EOF;
        if (r == -1) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            /* A server that closes with our unread bytes in its queue resets. */
            if (errno == ECONNRESET || errno == EPIPE)
                return RAWCONN_EOF;
            return RAWCONN_ERROR;
        }
        c->len += (size_t)r;
        return RAWCONN_OK;
    }
}

/* Accepts an open rawconn. Returns a rawconn_status; on RAWCONN_OK c->msg, c->raw and
 * c->raw_size describe the message, valid until the next read. */
rawconn_status rawconn_read(rawconn *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    discard_consumed(c);
    msgpack_zone_clear(&c->zone);
    for (;;) {
        if (c->len > 0) {
            if (!c->scanning) {
                daffi_scan_init(&c->scan);
                c->scanning = 1;
            }
            daffi_scan_result r = daffi_scan_feed(&c->scan, c->buf, c->len, &c->lim);
            if (r == DAFFI_SCAN_COMPLETE) {
                c->scanning = 0;
                if (daffi_msg_decode(c->buf, c->scan.size, &c->zone, &c->msg) == -1) {
                    c->why = "the decoder refused a message the scanner accepted";
                    return RAWCONN_BAD;
                }
                c->raw = c->buf;
                c->raw_size = c->scan.size;
                c->consumed = c->scan.size;
                return RAWCONN_OK;
            }
            if (r != DAFFI_SCAN_NEED_MORE) {
                c->why = c->scan.error ? c->scan.error : "rejected by the scanner";
                return RAWCONN_BAD;
            }
        }
        rawconn_status st = fill(c, deadline);
        if (st != RAWCONN_OK)
            return st;
    }
}

/* Accepts an open rawconn. Reads and drops messages (and undecodable bytes) until the
 * peer closes or timeout_ms passed. Returns RAWCONN_EOF, RAWCONN_TIMEOUT or
 * RAWCONN_ERROR; *nmsgs counts the whole messages seen. */
rawconn_status rawconn_wait_eof(rawconn *c, int timeout_ms, unsigned *nmsgs)
{
    int64_t deadline = now_ms() + timeout_ms;
    unsigned n = 0;

    for (;;) {
        rawconn_status st = rawconn_read(c, ms_left(deadline));
        if (st == RAWCONN_OK) {
            n++;
            continue;
        }
        if (st == RAWCONN_BAD) {
            /* Not a message: drop the bytes and keep waiting for the close. */
            c->len = 0;
            c->consumed = 0;
            c->scanning = 0;
            st = fill(c, deadline);
            if (st == RAWCONN_OK)
                continue;
        }
        if (nmsgs != NULL)
            *nmsgs = n;
        return st;
    }
}

/* Accepts the encoded bytes of a top-level array at p. Returns its header size, or 0
 * when p does not start an array. (Only the array header is read here; elements are
 * measured by the codec.) */
static size_t array_header_size(const unsigned char *p, size_t n)
{
    if (n >= 1 && (p[0] & 0xf0) == 0x90)
        return 1;
    if (n >= 3 && p[0] == 0xdc)
        return 3;
    if (n >= 5 && p[0] == 0xdd)
        return 5;
    return 0;
}

/* Accepts a rawconn whose last read returned a response. Returns 0 with *p and *n the
 * encoded result element (inside c's buffer), or -1. */
int rawconn_result_raw(const rawconn *c, const char **p, size_t *n)
{
    if (c->raw == NULL || c->msg.kind != DAFFI_MSG_RESPONSE)
        return -1;
    size_t off = array_header_size((const unsigned char *)c->raw, c->raw_size);
    if (off == 0)
        return -1;
    /* Skip kind, msgid and error: the result is the rest. */
    for (int i = 0; i < 3; i++) {
        size_t sz = daffi_object_size(c->raw + off, c->raw_size - off);
        if (sz == 0)
            return -1;
        off += sz;
    }
    *p = c->raw + off;
    *n = c->raw_size - off;
    return 0;
}

/* See rawconn.h. Returns a static string. */
const char *rawconn_status_name(rawconn_status st)
{
    switch (st) {
    case RAWCONN_OK: return "OK";
    case RAWCONN_EOF: return "EOF";
    case RAWCONN_TIMEOUT: return "TIMEOUT";
    case RAWCONN_BAD: return "BAD";
    case RAWCONN_ERROR: return "ERROR";
    }
    return "?";
}

/* See rawconn.h. m is the caller's; its buffer starts empty. */
void rawmsg_init(rawmsg *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

/* See rawconn.h. Frees m's buffer. */
void rawmsg_destroy(rawmsg *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

/* See rawconn.h. */
void rawmsg_clear(rawmsg *m)
{
    msgpack_sbuffer_clear(&m->sb);
}

/* Accepts a NUL-terminated method name. Appends [0, msgid, method, [ (the caller
 * packs nparams objects). Returns the packer, owned by m. */
msgpack_packer *rawmsg_request(rawmsg *m, uint32_t msgid, const char *method,
                               uint32_t nparams)
{
    daffi_pack_request(&m->pk, msgid, method, strlen(method), nparams);
    return &m->pk;
}

/* Accepts a NUL-terminated method name. Appends [2, method, [ (the caller packs
 * nparams objects). Returns the packer, owned by m. */
msgpack_packer *rawmsg_notify(rawmsg *m, const char *method, uint32_t nparams)
{
    daffi_pack_notify(&m->pk, method, strlen(method), nparams);
    return &m->pk;
}

/* Sends what m holds and clears it. Returns 0 or -1 (errno). */
int rawconn_send_msg(rawconn *c, rawmsg *m)
{
    int rc = rawconn_send(c, m->sb.data, m->sb.size);

    rawmsg_clear(m);
    return rc;
}
