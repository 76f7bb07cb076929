/*
 * thttp.c - one raw HTTP/1.0 exchange for the integration tests (thttp.h).
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
#include <unistd.h>

#include <cmocka.h>

#include "expect.h"
#include "rawconn.h"
#include "thttp.h"

/* See thttp.h. */
char *thttp_exchange(const char *address, const char *request)
{
    rawconn rc;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);

    assert_non_null(out);
    if (rawconn_open(&rc, address, 2000) == -1)
        fail_msg("cannot connect to %s: %s", address, strerror(errno));
    assert_int_equal(rawconn_send(&rc, request, strlen(request)), 0);
    for (;;) {
        struct pollfd p = { .fd = rc.fd, .events = POLLIN };
        if (poll(&p, 1, expect_timeout_ms()) <= 0)
            fail_msg("no HTTP response from %s within %d ms", address, expect_timeout_ms());
        if (cap - len < 4096) {
            out = realloc(out, cap *= 2);
            assert_non_null(out);
        }
        ssize_t n = read(rc.fd, out + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    rawconn_close(&rc);
    return out;
}

/* See thttp.h. */
int thttp_status(const char *response)
{
    int code;
    return sscanf(response, "HTTP/%*d.%*d %d", &code) == 1 ? code : -1;
}
