/*
 * test_timeout_precision.c - a call's deadline never fires early: a call made with
 * timeout_ms = T (daffi.call's options) to a callback that answers much later gets
 * TIMEOUT no sooner than T ms after the client sent it, for every T from 3 to 24 ms
 * and many times over (a clock that lags by up to a scheduler tick, such as libevent's
 * coarse one, would fire most of them early by up to 4 ms).
 *
 * The client's clock starts before the request is written and stops after the error
 * is read, so the server's own interval (from reading the request to firing) is
 * shorter than the one measured here: a load on the machine can only make a correct
 * server look later, never earlier. A second connection keeps the (only) loop busy
 * with echo calls meanwhile: a loop that never sleeps reads a coarse clock at a random
 * point of its tick, where one woken from idle finds it just updated.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"

#define ROUNDS 3
#define ANSWER_MS 2000 /* echo_after's delay: far past every deadline */

/* The busy connection: echo calls back to back until stop is set. No cmocka here
 * (another thread): a failure is counted and reported by the test. */
typedef struct hammer {
    const char *addr;
    atomic_int stop;
    long calls;
    int failed;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    rawconn c;
    rawmsg m;

    if (rawconn_open(&c, h->addr, 5000) == -1) {
        h->failed = 1;
        return NULL;
    }
    rawmsg_init(&m);
    while (!atomic_load(&h->stop)) {
        msgpack_packer *pk = rawmsg_request(&m, 7, "echo", 1);
        msgpack_pack_int(pk, 7);
        if (rawconn_send_msg(&c, &m) == -1 || rawconn_read(&c, 5000) != RAWCONN_OK) {
            h->failed = 1;
            break;
        }
        h->calls++;
    }
    rawmsg_destroy(&m);
    rawconn_close(&c);
    return NULL;
}

/* Sends daffi.call("echo_after", [ANSWER_MS, id], {timeout_ms: ms}) as msgid id. */
static void send_with_timeout(rawconn *c, uint32_t id, int ms)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, id, "daffi.call", 3);
    daffi_pack_cstr(pk, "echo_after");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, ANSWER_MS);
    msgpack_pack_int(pk, (int)id);
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "timeout_ms");
    msgpack_pack_int(pk, ms);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

static void test_a_deadline_never_fires_before_its_timeout(void **state)
{
    tdaemon *d = *state;
    rawconn c;
    uint32_t id = 1;
    int64_t worst_late = 0, best_late = INT64_MAX;
    hammer h = { .addr = d->unix_addr };
    pthread_t t;

    atomic_init(&h.stop, 0);
    assert_int_equal(pthread_create(&t, NULL, hammer_main, &h), 0);
    expect_open(&c, d->tcp);
    for (int round = 0; round < ROUNDS; round++) {
        for (int ms = 3; ms <= 24; ms++, id++) {
            int64_t t0 = expect_now_us();
            send_with_timeout(&c, id, ms);
            expect_error(&c, id, DAFFI_E_TIMEOUT);
            int64_t late = expect_now_us() - t0 - (int64_t)ms * 1000;
            if (late < 0) {
                atomic_store(&h.stop, 1);
                pthread_join(t, NULL);
                fail_msg("timeout_ms %d answered TIMEOUT after %.3f ms: %.3f ms early", ms,
                         (double)(late + ms * 1000) / 1000.0, (double)-late / 1000.0);
            }
            if (late > worst_late)
                worst_late = late;
            if (late < best_late)
                best_late = late;
        }
    }
    atomic_store(&h.stop, 1);
    pthread_join(t, NULL);
    print_message("%u deadlines: between %.3f and %.3f ms late; %ld echo calls meanwhile\n",
                  id - 1, (double)best_late / 1000.0, (double)worst_late / 1000.0, h.calls);
    if (h.failed)
        fail_msg("the busy connection's echo calls failed");
    rawconn_close(&c);
}

/* One loop, so that the busy connection and the deadlines share it. */
static int setup(void **state)
{
    static const char *const overrides[] = { "server.workers=1", NULL };

    return tdaemon_group_setup_with(state, overrides);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_deadline_never_fires_before_its_timeout),
    };
    return cmocka_run_group_tests(tests, setup, tdaemon_group_teardown);
}
