/*
 * test_router_load.c - a router under load (daffi's load scenarios): 200 callers at
 * once through the router to one daffid worker, and 3 callers each making 100 casts
 * to 50 members.
 *
 * The 50 members are raw member connections served by one thread of this process
 * (rawmember.h's pool), not 50 daffid processes: 50 daemons would need 50 x 3 threads
 * on a 2-core machine and test the scheduler more than the router. Every member answers
 * [its name, the params it got], so each of the 15,000 entries is checked for who
 * answered what.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include <daffi/rpc.h>

#include "../support/cluster.h"
#include "../support/daemon.h"
#include "../support/expect.h"
#include "../support/rawconn.h"
#include "../support/rawmember.h"
#include "../support/rexpect.h"

#define START_MS 10000
#define NCALLERS 200
#define ROUNDS 10
#define NCASTERS 3
#define NCASTS 100
#define NMEMBERS 50

typedef struct fixture {
    tdaemon router;
    tdaemon worker;
    rmpool *pool;
} fixture;

/* Starts the router and the worker lw (calc), waits until lw is a member. Returns 0,
 * or -1 (logs printed). */
static int group_setup(void **state)
{
    fixture *f = tcluster_fixture_new(state, sizeof(*f));

    if (f == NULL ||
        tcluster_router_start(&f->router, "hub", "heartbeat = 1s\nheartbeat_misses = 3\n",
                              NULL, 0) == -1 ||
        tcluster_worker_up(&f->worker, f->router.tcp, "lw", "heartbeat = 1s\n",
                           (const char *const[]){ "calc", NULL }, START_MS) == -1)
        return -1;
    return 0;
}

/* Both must stop cleanly (SIGTERM, exit 0): the worker first, then the router. */
static int group_teardown(void **state)
{
    fixture *f = *state;

    if (f == NULL)
        return -1;
    rmpool_stop(f->pool);
    return tcluster_fixture_free(f, &f->worker, &f->router);
}

/* 200 callers (half TCP, half Unix) each have one call in flight at the same time,
 * 10 rounds: every answer reaches its own caller with its own value. */
static void test_200_callers_through_the_router_to_one_worker_are_all_served(void **state)
{
    fixture *f = *state;
    rawconn *c = calloc(NCALLERS, sizeof(*c));
    rawmsg m;

    assert_non_null(c);
    rawmsg_init(&m);
    for (int i = 0; i < NCALLERS; i++)
        expect_open(&c[i], i % 2 ? f->router.unix_addr : f->router.tcp);
    int64_t t0 = expect_now_ms();
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NCALLERS; i++) {
            msgpack_packer *pk = rawmsg_request(&m, (uint32_t)(round * 1000 + i), "add", 2);
            msgpack_pack_int(pk, i);
            msgpack_pack_int(pk, round * 100000);
            expect_send(&c[i], &m);
        }
        for (int i = 0; i < NCALLERS; i++)
            expect_result_int(&c[i], (uint32_t)(round * 1000 + i), i + round * 100000);
    }
    print_message("%d calls from %d callers through the router in %lld ms\n",
                  NCALLERS * ROUNDS, NCALLERS, (long long)(expect_now_ms() - t0));
    for (int i = 0; i < NCALLERS; i++)
        rawconn_close(&c[i]);
    free(c);
    rawmsg_destroy(&m);
}

/* Sends cast fan_cb(caster, n) as msgid n+1 on c. */
static void send_cast(rawconn *c, int caster, int n)
{
    rawmsg m;

    rawmsg_init(&m);
    msgpack_packer *pk = rawmsg_request(&m, (uint32_t)n + 1, "daffi.cast", 3);
    daffi_pack_cstr(pk, "fan_cb");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, caster);
    msgpack_pack_int(pk, n);
    msgpack_pack_map(pk, 1);
    daffi_pack_cstr(pk, "timeout_ms");
    msgpack_pack_int(pk, 10000);
    expect_send(c, &m);
    rawmsg_destroy(&m);
}

/* Checks that cast n of caster has one [nil, [name, [caster, n]]] entry per member. */
static void check_cast(const rmpool *p, const msgpack_object *map, int caster, int n)
{
    char d[512];

    if (map->type != MSGPACK_OBJECT_MAP || map->via.map.size != NMEMBERS)
        fail_msg("caster %d cast %d: %u entries, expected %d", caster, n,
                 map->type == MSGPACK_OBJECT_MAP ? map->via.map.size : 0, NMEMBERS);
    for (unsigned i = 0; i < NMEMBERS; i++) {
        const char *name = rmpool_name(p, i);
        const msgpack_object *r = rexpect_cast_ok(map, name);
        const msgpack_object *args = r->type == MSGPACK_OBJECT_ARRAY && r->via.array.size == 2
                                         ? &r->via.array.ptr[1]
                                         : NULL;
        if (args == NULL || !rexpect_obj_is(&r->via.array.ptr[0], name) ||
            args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2 ||
            args->via.array.ptr[0].via.u64 != (uint64_t)caster ||
            args->via.array.ptr[1].via.u64 != (uint64_t)n)
            fail_msg("caster %d cast %d: %s answered %s", caster, n, name,
                     expect_describe(r, d, sizeof(d)));
    }
}

/* 3 callers each make 100 casts, one in flight per caller, to 50 members: every cast
 * has 50 entries, every entry the answer of the member it names to that very cast. */
static void test_3_callers_x_100_casts_to_50_members_get_every_answer(void **state)
{
    fixture *f = *state;
    const char *cbs[] = { "fan_cb", NULL };
    rawconn c[NCASTERS];

    f->pool = rexpect_pool(f->router.tcp, "fan", NMEMBERS, cbs);
    for (int k = 0; k < NCASTERS; k++) {
        expect_open(&c[k], k == 1 ? f->router.unix_addr : f->router.tcp);
        /* each caster's loop must see all 50 before its first cast */
        rexpect_wait_pool(&c[k], 0xfffff, f->pool, 5000);
    }
    int64_t t0 = expect_now_ms();
    for (int n = 0; n < NCASTS; n++) {
        for (int k = 0; k < NCASTERS; k++)
            send_cast(&c[k], k, n);
        for (int k = 0; k < NCASTERS; k++)
            check_cast(f->pool, expect_result(&c[k], (uint32_t)n + 1), k, n);
    }
    int64_t ms = expect_now_ms() - t0;
    unsigned long total = 0;
    for (unsigned i = 0; i < NMEMBERS; i++) {
        if (rmpool_answered(f->pool, i) != NCASTERS * NCASTS)
            fail_msg("member %s answered %lu requests, expected %d", rmpool_name(f->pool, i),
                     rmpool_answered(f->pool, i), NCASTERS * NCASTS);
        total += rmpool_answered(f->pool, i);
    }
    print_message("%d casts x %d members = %lu answers in %lld ms\n", NCASTERS * NCASTS,
                  NMEMBERS, total, (long long)ms);
    for (int k = 0; k < NCASTERS; k++)
        rawconn_close(&c[k]);
    assert_int_equal(tcluster_pool_discard(&f->pool, f->router.tcp, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_200_callers_through_the_router_to_one_worker_are_all_served),
        cmocka_unit_test(test_3_callers_x_100_casts_to_50_members_get_every_answer),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
