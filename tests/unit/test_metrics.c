/*
 * test_metrics.c - the address test behind the metrics.unauthenticated warning
 * (metrics.h: dfd_metrics_loopback): only loopback addresses and Unix sockets serve
 * this host alone. The integration tests may bind loopback only, so the other side of
 * the warning is specified here.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "metrics.h"

/* dfd_metrics_loopback() of the numeric address text (v4 or v6). */
static int loopback(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    return dfd_metrics_loopback((struct sockaddr *)&ss);
}

static void test_loopback_addresses_serve_this_host_only(void **state)
{
    (void)state;
    assert_true(loopback("127.0.0.1"));
    assert_true(loopback("127.1.2.3"));
    assert_true(loopback("::1"));
    assert_true(loopback("::ffff:127.0.0.1"));
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    assert_true(dfd_metrics_loopback((struct sockaddr *)&sun));
}

static void test_other_addresses_are_reachable_from_elsewhere(void **state)
{
    (void)state;
    assert_false(loopback("0.0.0.0"));
    assert_false(loopback("10.0.0.1"));
    assert_false(loopback("128.0.0.1"));
    assert_false(loopback("::"));
    assert_false(loopback("fe80::1"));
    assert_false(loopback("::ffff:10.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_addresses_serve_this_host_only),
        cmocka_unit_test(test_other_addresses_are_reachable_from_elsewhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
