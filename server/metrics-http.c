/*
 * metrics-http.c - the /metrics HTTP listener of [server] metrics_listen (see
 * metrics.h): libevent's evhttp on the main event base, over TCP or a Unix socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "metrics.h"
#include "server.h"
#include "unixsock.h"

#define METRICS_HTTP_TIMEOUT_S 10
#define METRICS_HTTP_MAX_HEADERS 16384
/* a request body is read (and ignored) up to this, so that a POST is answered 405 */
#define METRICS_HTTP_MAX_BODY 4096
#define METRICS_HTTP_ALLOW "GET, HEAD"
#define METRICS_HTTP_ALL_METHODS                                                       \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |             \
     EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |  \
     EVHTTP_REQ_PATCH)

typedef struct dfd_metrics_http {
    struct evhttp *http;
    dfd_server *srv;
    char path[108];            /* a Unix socket's path, "" for TCP */
    dfd_unixsock made;         /* the socket file we created */
} dfd_metrics_http;

/* Sends a short text reply with code and reason. */
static void metrics_text(struct evhttp_request *req, int code, const char *reason,
                         struct evbuffer *body, const char *text)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer_add_printf(body, "%s\n", text);
    evhttp_send_reply(req, code, reason, body);
}

/* Any request: GET or HEAD /metrics gets the exposition; another method 405 with an
 * Allow header (every method is let through evhttp for this: it would answer 501);
 * another path 404. evhttp answers malformed requests (400) and bodies over
 * METRICS_HTTP_MAX_BODY (413) by itself. */
static void metrics_on_request(struct evhttp_request *req, void *arg)
{
    dfd_metrics_http *mh = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    struct evbuffer *body = evbuffer_new();
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(headers, "Allow", METRICS_HTTP_ALLOW);
        metrics_text(req, 405, "Method Not Allowed", body,
                     "method not allowed: metrics answer GET and HEAD");
    } else if (path == NULL || strcmp(path, "/metrics") != 0) {
        metrics_text(req, HTTP_NOTFOUND, "Not Found", body,
                     "not found: metrics are at /metrics");
    } else if (dfd_metrics_render(mh->srv, body) == -1) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
    } else {
        evhttp_add_header(headers, "Content-Type", DFD_METRICS_CONTENT_TYPE);
        if (method == EVHTTP_REQ_HEAD) {
            /* libevent 2.1 would send the body after a HEAD: the headers only, with the
             * length the body has */
            char n[32];
            snprintf(n, sizeof(n), "%zu", evbuffer_get_length(body));
            evhttp_add_header(headers, "Content-Length", n);
            evbuffer_drain(body, evbuffer_get_length(body));
        }
        evhttp_send_reply(req, HTTP_OK, "OK", body);
    }
    evbuffer_free(body);
}

/* See metrics.h. */
int dfd_metrics_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_UNIX)
        return 1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Binds the TCP listener of a; warns when it is reachable from other hosts. Returns 0
 * or -1 with the reason in errs. */
static int metrics_bind_tcp(dfd_metrics_http *mh, const daffi_addr *a, dfd_errors *errs)
{
    struct evhttp_bound_socket *bound;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    errno = 0;
    bound = evhttp_bind_socket_with_handle(mh->http, a->host, (ev_uint16_t)a->port);
    if (bound == NULL) {
        dfd_errors_add(errs, "metrics_listen tcp://%s:%d: %s", a->host, a->port,
                       errno ? strerror(errno) : "cannot listen");
        return -1;
    }
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) == 0 &&
        !dfd_metrics_loopback((struct sockaddr *)&ss))
        dfd_warn("metrics.unauthenticated", "address=tcp://%s:%d msg=\"/metrics answers "
                 "anyone who reaches this address, without authentication; bind a "
                 "loopback address or unix:///path, or firewall it\"", a->host, a->port);
    dfd_info("metrics.listen", "address=http://%s%s%s:%d/metrics",
             strchr(a->host, ':') ? "[" : "", a->host, strchr(a->host, ':') ? "]" : "",
             a->port);
    return 0;
}

/* Binds the Unix socket of a ([server] unix_mode, as the listeners). Returns 0 or -1
 * with the reason in errs. */
static int metrics_bind_unix(dfd_metrics_http *mh, const daffi_addr *a, unsigned mode,
                             dfd_errors *errs)
{
    int fd = dfd_unix_listen(a->path, mode, -1, -1, 16, "metrics_listen", &mh->made, errs);
    if (fd == -1)
        return -1;
    if (evhttp_accept_socket_with_handle(mh->http, fd) == NULL) {
        dfd_errors_add(errs, "metrics_listen unix://%s: cannot serve it", a->path);
        close(fd);
        dfd_unix_unlink(a->path, &mh->made);
        return -1;
    }
    snprintf(mh->path, sizeof(mh->path), "%s", a->path);
    dfd_info("metrics.listen", "address=unix://%s path=/metrics mode=%04o", a->path, mode);
    return 0;
}

/* See metrics.h. */
int dfd_metrics_http_start(dfd_server *srv, dfd_errors *errs)
{
    const dfd_config *cfg = srv->cfg;
    if (!cfg->metrics_enabled)
        return 0;
    const daffi_addr *a = &cfg->metrics_listen;
    dfd_metrics_http *mh = calloc(1, sizeof(*mh));
    if (mh == NULL || (mh->http = evhttp_new(srv->base)) == NULL) {
        free(mh);
        dfd_errors_add(errs, "metrics_listen: out of memory");
        return -1;
    }
    mh->srv = srv;
    evhttp_set_allowed_methods(mh->http, METRICS_HTTP_ALL_METHODS);
    evhttp_set_max_headers_size(mh->http, METRICS_HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(mh->http, METRICS_HTTP_MAX_BODY);
    evhttp_set_timeout(mh->http, METRICS_HTTP_TIMEOUT_S);
    evhttp_set_gencb(mh->http, metrics_on_request, mh);
    int rc = a->kind == DAFFI_ADDR_UNIX ? metrics_bind_unix(mh, a, cfg->unix_mode, errs)
                                        : metrics_bind_tcp(mh, a, errs);
    if (rc == -1) {
        evhttp_free(mh->http);
        free(mh);
        return -1;
    }
    srv->metrics_http = mh;
    return 0;
}

/* See metrics.h. */
void dfd_metrics_http_stop(dfd_server *srv)
{
    dfd_metrics_http *mh = srv->metrics_http;
    if (mh == NULL)
        return;
    evhttp_free(mh->http); /* closes the listening socket */
    if (mh->path[0] != '\0')
        dfd_unix_unlink(mh->path, &mh->made);
    free(mh);
    srv->metrics_http = NULL;
}
