/*
 * aconn.c - a client of daffid's admin socket for the integration tests (aconn.h).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "aconn.h"
#include "expect.h"

/* Connects to the admin socket at path or fails the test. */
void aconn_open(aconn *c, const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct timeval tv = { ACONN_READ_MS / 1000, 0 };

    memset(c, 0, sizeof(*c));
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd != -1);
    if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
        fail_msg("connect %s: %s", path, strerror(errno));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
}

void aconn_close(aconn *c)
{
    if (c->fd != -1)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

void aconn_send(aconn *c, const void *p, size_t n)
{
    if (send(c->fd, p, n, MSG_NOSIGNAL) != (ssize_t)n)
        fail_msg("send to the admin socket: %s", strerror(errno));
}

/* Reads one line (without its LF) into a new string. Returns NULL on EOF; fails the
 * test on a timeout. */
char *aconn_line(aconn *c)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            char *line = strndup(c->buf, n);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return line;
        }
        if (c->len == c->cap) {
            c->cap *= 2;
            c->buf = realloc(c->buf, c->cap);
            assert_non_null(c->buf);
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r == 0 || (r == -1 && errno == ECONNRESET))
            return NULL;
        if (r == -1)
            fail_msg("no reply from the admin socket within %d ms: %s", ACONN_READ_MS,
                     strerror(errno));
        c->len += (size_t)r;
    }
}

/* Reads one reply: a JSON object with a status. Fails the test otherwise. */
json_t *aconn_reply(aconn *c)
{
    json_error_t err;
    char *line = aconn_line(c);

    if (line == NULL)
        fail_msg("the admin socket closed instead of replying");
    json_t *j = json_loads(line, 0, &err);
    if (j == NULL || !json_is_object(j) || !json_is_string(json_object_get(j, "status")))
        fail_msg("reply is not a JSON object with a status: %s (%s)", line, err.text);
    free(line);
    return j;
}

/* o[key] as a string (NULL when absent or not a string). */
const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Sends a command line and returns its reply. */
json_t *aconn_cmd(aconn *c, const char *line)
{
    aconn_send(c, line, strlen(line));
    aconn_send(c, "\n", 1);
    return aconn_reply(c);
}

/* See aconn.h. */
void assert_admin_ok(json_t *r, const char *command)
{
    const char *st = jstr(r, "status");
    if (strcmp(st, "ok") != 0) {
        char *t = json_dumps(r, JSON_COMPACT);
        fail_msg("expected ok from %s, got %s", command, t);
    }
    assert_string_equal(jstr(r, "command"), command);
}

/* See aconn.h: the command key is part of the shape. */
void assert_admin_err(json_t *r, const char *code)
{
    char *t = json_dumps(r, JSON_COMPACT);
    if (strcmp(jstr(r, "status"), "error") != 0 ||
        !json_is_string(json_object_get(r, "error")) ||
        strcmp(jstr(r, "error"), code) != 0 ||
        !(json_is_string(json_object_get(r, "command")) ||
          json_is_null(json_object_get(r, "command"))) ||
        !json_is_string(json_object_get(r, "detail")) ||
        json_string_length(json_object_get(r, "detail")) == 0)
        fail_msg("expected error %s with a detail, got %s", code, t);
    free(t);
}

/* Asserts the peer closes c within ms (whatever it sent before). */
void aconn_expect_closed(aconn *c, int ms)
{
    int64_t end = expect_now_ms() + ms;
    for (;;) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int left = (int)(end - expect_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            fail_msg("the admin socket did not close the connection within %d ms", ms);
        char tmp[4096];
        ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);
        if (r == 0 || (r == -1 && errno == ECONNRESET))
            return;
    }
}

json_int_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return json_integer_value(v);
}

/* See aconn.h. */
json_t *aconn_once(const char *path, const char *line)
{
    aconn c;
    aconn_open(&c, path);
    json_t *r = aconn_cmd(&c, line);
    aconn_close(&c);
    return r;
}
