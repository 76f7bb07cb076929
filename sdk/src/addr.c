/*
 * addr.c - parsing of listen/connect addresses, shared by daffid and the clients:
 *   tcp://host:port      host a name or IPv4 address
 *   tcp://[v6addr]:port  an IPv6 address in brackets
 *   tls://host:port      TCP with TLS over it (the same forms; kind TCP, tls 1)
 *   unix:///abs/path     an absolute Unix socket path
 *   unix://rel/path      a path relative to the working directory
 * Resolving names and checking that a port is not 0 are the caller's business.
 */
#include <string.h>

#include <daffi/rpc.h>

#define TCP_SCHEME "tcp://"
#define UNIX_SCHEME "unix://"
#define TLS_SCHEME "tls://"

/* Accepts the text after the host's ':' (NUL-terminated). Returns the port 0..65535,
 * or -1 when it is empty, not all digits, or too large. */
static int parse_port(const char *s)
{
    long v = 0;
    const char *c;

    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (c = s; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (*c - '0');
    }
    return v > 65535 ? -1 : (int)v;
}

/* Accepts an unbracketed host of n bytes. Returns 1 when no byte would make it
 * ambiguous in a URL or in a log line (controls, spaces, '/', brackets). */
static int host_chars_ok(const char *h, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];

        if (c <= 0x20 || c == 0x7f || c == '/' || c == '[' || c == ']')
            return 0;
    }
    return 1;
}

/* Accepts the text after "tcp://". Fills out->host and out->port. Returns 0, or -1
 * with the reason in *why. */
static int parse_tcp(const char *rest, daffi_addr *out, const char **why)
{
    const char *host, *colon, *close;
    size_t n;
    int port;

    if (*rest == '[') {
        host = rest + 1;
        close = strchr(host, ']');
        if (close == NULL) {
            *why = "missing ']' after the IPv6 address";
            return -1;
        }
        n = (size_t)(close - host);
        if (close[1] != ':') {
            *why = "missing port: expected tcp://[address]:port";
            return -1;
        }
        colon = close + 1;
        if (n > 0 && (!host_chars_ok(host, n) || memchr(host, ':', n) == NULL)) {
            *why = "bad IPv6 address between the brackets";
            return -1;
        }
    } else {
        host = rest;
        colon = strrchr(rest, ':');
        if (colon == NULL) {
            *why = "missing port: expected tcp://host:port";
            return -1;
        }
        n = (size_t)(colon - host);
        if (memchr(host, ':', n) != NULL) {
            *why = "an IPv6 address needs brackets: tcp://[address]:port";
            return -1;
        }
        if (!host_chars_ok(host, n)) {
            *why = "bad character in host";
            return -1;
        }
    }
    if (n == 0) {
        *why = "empty host";
        return -1;
    }
    if (n >= sizeof(out->host)) {
        *why = "host too long (at most 255 bytes)";
        return -1;
    }
    port = parse_port(colon + 1);
    if (port == -1) {
        *why = "bad port: expected a number 0-65535";
        return -1;
    }
    memcpy(out->host, host, n);
    out->host[n] = '\0';
    out->port = port;
    out->kind = DAFFI_ADDR_TCP;
    return 0;
}

/* Accepts text (NUL-terminated, not kept) and out. Returns 0 with out filled (other
 * fields zeroed), or -1 with a static reason in *why and out zeroed. */
int daffi_addr_parse(const char *text, daffi_addr *out, const char **why)
{
    const char *path;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (text == NULL || *text == '\0') {
        *why = "empty address";
        return -1;
    }
    if (strncmp(text, TCP_SCHEME, strlen(TCP_SCHEME)) == 0) {
        if (parse_tcp(text + strlen(TCP_SCHEME), out, why) == -1) {
            memset(out, 0, sizeof(*out));
            return -1;
        }
        return 0;
    }
    if (strncmp(text, TLS_SCHEME, strlen(TLS_SCHEME)) == 0) {
        if (parse_tcp(text + strlen(TLS_SCHEME), out, why) == -1) {
            memset(out, 0, sizeof(*out));
            if (strncmp(*why, "missing port: expected tcp://", 29) == 0)
                *why = "missing port: expected tls://host:port";
            return -1;
        }
        out->tls = 1;
        return 0;
    }
    if (strncmp(text, UNIX_SCHEME, strlen(UNIX_SCHEME)) == 0) {
        path = text + strlen(UNIX_SCHEME);
        n = strlen(path);
        if (n == 0) {
            *why = "empty path: expected unix:///absolute/path or unix://relative/path";
            return -1;
        }
        if (n >= sizeof(out->path)) {
            *why = "path too long (at most 107 bytes)";
            return -1;
        }
        memcpy(out->path, path, n + 1);
        out->kind = DAFFI_ADDR_UNIX;
        return 0;
    }
    *why = strstr(text, "://") != NULL
        ? "unknown scheme: expected tcp://, tls:// or unix://"
        : "missing scheme: expected tcp://host:port, tls://host:port or unix://path";
    return -1;
}
