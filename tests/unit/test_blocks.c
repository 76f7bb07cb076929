/*
 * test_blocks.c - a loop's cache of large blocks (server/blocks.c): it hands back only
 * a block of the size class asked for, keeps at most its slots and its limit (the
 * smallest blocks go first, a block past the limit is freed), forgets everything once
 * idle, and growing a buffer keeps its bytes whichever way the room is made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blocks.h"

#define MIB (1024 * 1024)

static void test_take_gives_back_only_its_size_class(void **state)
{
    (void)state;
    dfd_blocks b;
    size_t cap = 0;
    dfd_blocks_init(&b, 64 * MIB);

    void *two = malloc(2 * MIB), *eight = malloc(8 * MIB);
    dfd_blocks_give(&b, two, 2 * MIB, 1);
    dfd_blocks_give(&b, eight, 8 * MIB, 1);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.bytes, 10 * MIB);
    /* 3 MiB rounds to 4 MiB: neither the 2 MiB (too small) nor the 8 MiB (it would count
     * twice what the message needs) */
    assert_null(dfd_blocks_take(&b, 3 * MIB, &cap, 2));
    /* 1 MiB + 1 rounds to 2 MiB: the 2 MiB block */
    assert_ptr_equal(dfd_blocks_take(&b, MIB + 1, &cap, 2), two);
    assert_int_equal(cap, 2 * MIB);
    assert_ptr_equal(dfd_blocks_take(&b, 5 * MIB, &cap, 2), eight);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.bytes, 0);
    free(two);
    free(eight);
}

static void test_give_keeps_within_slots_and_limit(void **state)
{
    (void)state;
    dfd_blocks b;
    size_t cap = 0;
    dfd_blocks_init(&b, 8 * MIB);

    /* past the limit alone: freed at once (ASan reports a leak otherwise) */
    dfd_blocks_give(&b, malloc(16 * MIB), 16 * MIB, 1);
    assert_int_equal(b.n, 0);
    for (int i = 0; i < DFD_BLOCKS_SLOTS + 2; i++)
        dfd_blocks_give(&b, malloc(MIB), MIB, 1);
    assert_int_equal(b.n, DFD_BLOCKS_SLOTS);
    assert_int_equal(b.bytes, DFD_BLOCKS_SLOTS * MIB);
    /* a larger block evicts the smallest ones until it fits */
    dfd_blocks_give(&b, malloc(6 * MIB), 6 * MIB, 1);
    assert_true(b.bytes <= 8 * MIB);
    void *p = dfd_blocks_take(&b, 5 * MIB, &cap, 2);
    assert_non_null(p);
    assert_int_equal(cap, 6 * MIB);
    free(p);
    /* a block smaller than every cached one is freed when full */
    dfd_blocks_free(&b);
    for (int i = 0; i < DFD_BLOCKS_SLOTS; i++)
        dfd_blocks_give(&b, malloc(2 * MIB), 2 * MIB, 1);
    dfd_blocks_give(&b, malloc(MIB), MIB, 1);
    assert_int_equal(b.n, DFD_BLOCKS_SLOTS);
    assert_int_equal(b.bytes, 8 * MIB);
    dfd_blocks_free(&b);
    assert_int_equal(b.n, 0);

    /* a zero limit (no cache) frees what it is given */
    dfd_blocks_init(&b, 0);
    dfd_blocks_give(&b, malloc(MIB), MIB, 1);
    assert_int_equal(b.n, 0);
}

static void test_trim_frees_only_when_idle(void **state)
{
    (void)state;
    dfd_blocks b;
    dfd_blocks_init(&b, 8 * MIB);
    dfd_blocks_give(&b, malloc(MIB), MIB, 10);
    dfd_blocks_trim(&b, 14, 5); /* used 4 ticks ago: kept */
    assert_int_equal(b.n, 1);
    dfd_blocks_trim(&b, 15, 5);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.bytes, 0);
}

static void test_grow_keeps_the_bytes(void **state)
{
    (void)state;
    dfd_blocks b;
    dfd_blocks_init(&b, 8 * MIB);
    size_t cap = 4096;
    char *p = malloc(cap);
    memset(p, 'a', cap);

    /* below DFD_BLOCK_MIN: realloc, exactly as asked */
    assert_int_equal(dfd_blocks_grow(&b, &p, &cap, 4096, 8192, 1), 0);
    assert_int_equal(cap, 8192);
    memset(p + 4096, 'b', 4096);
    /* past it: a power of two, the bytes in use copied */
    assert_int_equal(dfd_blocks_grow(&b, &p, &cap, 8192, MIB + 5, 1), 0);
    assert_int_equal(cap, 2 * MIB);
    assert_int_equal(p[0], 'a');
    assert_int_equal(p[4095], 'a');
    assert_int_equal(p[4096], 'b');
    assert_int_equal(p[8191], 'b');
    assert_int_equal(b.n, 0); /* the small old buffer was freed, not cached */
    /* growing a large block: the old one goes to the cache, and the next growth of
     * that size takes it back */
    char *large = p;
    assert_int_equal(dfd_blocks_grow(&b, &p, &cap, 8192, 3 * MIB, 2), 0);
    assert_int_equal(cap, 4 * MIB);
    assert_int_equal(p[8191], 'b');
    assert_int_equal(b.n, 1);
    char *q = malloc(16);
    size_t qcap = 16;
    assert_int_equal(dfd_blocks_grow(&b, &q, &qcap, 0, MIB + 1, 3), 0);
    assert_ptr_equal(q, large);
    assert_int_equal(qcap, 2 * MIB);
    /* a want already within the buffer changes nothing */
    assert_int_equal(dfd_blocks_grow(&b, &q, &qcap, 0, 100, 3), 0);
    assert_ptr_equal(q, large);
    free(q);
    free(p);
    dfd_blocks_free(&b);
    assert_int_equal(dfd_blocks_round(1000), 1000);
    assert_int_equal(dfd_blocks_round(DFD_BLOCK_MIN), DFD_BLOCK_MIN);
    assert_int_equal(dfd_blocks_round(DFD_BLOCK_MIN + 1), 2 * DFD_BLOCK_MIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_gives_back_only_its_size_class),
        cmocka_unit_test(test_give_keeps_within_slots_and_limit),
        cmocka_unit_test(test_trim_frees_only_when_idle),
        cmocka_unit_test(test_grow_keeps_the_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
