/* test_bench_seq.c - the bench's per-connection sequence tracker: in-order
 * arrivals, duplicates, gaps filled late (reorders), losses, the sliding
 * and the bounded bitmap, against a reference on random streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bench/seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void test_in_order_and_early(void **state)
{
    (void)state;
    hr_bench_seq q = {0};
    hr_bench_seq_init(&q, 100);
    assert_int_equal(hr_bench_seq_add(&q, 99), HR_SEQ_EARLY);
    assert_int_equal(hr_bench_seq_add(&q, 0), HR_SEQ_EARLY);
    for (uint64_t s = 100; s < 100000; s++) assert_int_equal(hr_bench_seq_add(&q, s), HR_SEQ_NEW);
    assert_null(q.seen); /* never needed a bitmap */
    assert_int_equal(q.next, 100000);
    assert_int_equal(q.top, 100000);
    assert_int_equal(hr_bench_seq_add(&q, 500), HR_SEQ_DUP);
    assert_int_equal(hr_bench_seq_add(&q, 99999), HR_SEQ_DUP);
    assert_true(hr_bench_seq_has(&q, 100));
    assert_false(hr_bench_seq_has(&q, 99));
    assert_false(hr_bench_seq_has(&q, 100000));
    hr_bench_seq_free(&q);
}

static void test_gap_filled_late(void **state)
{
    (void)state;
    hr_bench_seq q = {0};
    hr_bench_seq_init(&q, 0);
    assert_int_equal(hr_bench_seq_add(&q, 0), HR_SEQ_NEW);
    assert_int_equal(hr_bench_seq_add(&q, 1), HR_SEQ_NEW);
    assert_int_equal(hr_bench_seq_add(&q, 3), HR_SEQ_NEW); /* a gap at 2 */
    assert_non_null(q.seen);
    assert_int_equal(hr_bench_seq_add(&q, 3), HR_SEQ_DUP);
    assert_int_equal(hr_bench_seq_add(&q, 5), HR_SEQ_NEW);
    assert_int_equal(hr_bench_seq_add(&q, 2), HR_SEQ_LATE);
    assert_int_equal(q.next, 4);
    assert_int_equal(hr_bench_seq_add(&q, 4), HR_SEQ_LATE); /* 5 came before it */
    assert_int_equal(q.next, 6);
    assert_null(q.seen); /* filled: back to in-order mode */
    assert_int_equal(hr_bench_seq_add(&q, 6), HR_SEQ_NEW);
    assert_int_equal(hr_bench_seq_add(&q, 2), HR_SEQ_DUP);
    hr_bench_seq_free(&q);
}

static void test_loss_slides_and_bounds_the_bitmap(void **state)
{
    (void)state;
    hr_bench_seq q = {0};
    hr_bench_seq_init(&q, 10);
    assert_int_equal(hr_bench_seq_add(&q, 11), HR_SEQ_NEW); /* 10 is lost */
    uint64_t n = 3u << 20;                                   /* three windows' worth */
    for (uint64_t s = 12; s < 10 + n; s++) assert_int_equal(hr_bench_seq_add(&q, s), HR_SEQ_NEW);
    fprintf(stderr, "bitmap after a loss and %llu more arrivals: %zu words\n", (unsigned long long)n, q.words);
    assert_true(q.words * 64 <= (2u << 20)); /* bounded: 256 KiB at most */
    assert_true(q.next > 10);                /* 10 was given up ... */
    assert_int_equal(hr_bench_seq_add(&q, 10), HR_SEQ_DUP); /* ... and counts as a duplicate if it comes */
    assert_int_equal(q.top, 10 + n);
    assert_int_equal(hr_bench_seq_add(&q, 10 + n), HR_SEQ_NEW);
    hr_bench_seq_free(&q);

    /* a short loss does not hold memory: once behind, the window slides with next */
    hr_bench_seq_init(&q, 0);
    assert_int_equal(hr_bench_seq_add(&q, 1), HR_SEQ_NEW);
    assert_int_equal(hr_bench_seq_add(&q, 0), HR_SEQ_LATE);
    assert_null(q.seen);
    hr_bench_seq_free(&q);
}

/* Random streams (losses, duplicates, local reorders) against a reference. */
static void test_random_against_reference(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        uint64_t first = rnd() % 1000, n = 20000 + rnd() % 50000;
        uint8_t *got = calloc(first + n + 1, 1);
        uint64_t *stream = malloc(3 * n * sizeof(uint64_t));
        size_t len = 0;
        int loss = (int)(rnd() % 5), dup = (int)(rnd() % 5), swap = (int)(rnd() % 20);
        for (uint64_t s = first > 50 ? first - 50 : 0; s < first + n; s++) {
            if ((int)(rnd() % 100) < loss) continue;
            stream[len++] = s;
            if ((int)(rnd() % 100) < dup) {
                uint64_t back = rnd() % 3;
                stream[len++] = s >= back ? s - back : s;
            }
        }
        for (size_t i = 0; i + 5 < len; i++) /* local reorders within 5 places */
            if ((int)(rnd() % 100) < swap) {
                size_t j = i + 1 + (size_t)(rnd() % 5);
                uint64_t t = stream[i];
                stream[i] = stream[j];
                stream[j] = t;
            }
        hr_bench_seq q = {0};
        hr_bench_seq_init(&q, first);
        uint64_t top = first;
        for (size_t i = 0; i < len; i++) {
            uint64_t s = stream[i];
            int want;
            if (s < first) want = HR_SEQ_EARLY;
            else if (got[s]) want = HR_SEQ_DUP;
            else {
                got[s] = 1;
                if (s + 1 < top) want = HR_SEQ_LATE;
                else {
                    want = HR_SEQ_NEW;
                    top = s + 1;
                }
            }
            int r = hr_bench_seq_add(&q, s);
            if (r != want) {
                fprintf(stderr, "round %d, arrival %zu (sequence %llu): got %d, want %d\n", round, i,
                        (unsigned long long)s, r, want);
                fail();
            }
        }
        for (uint64_t s = first; s < first + n; s++) assert_int_equal(hr_bench_seq_has(&q, s), got[s] != 0);
        hr_bench_seq_free(&q);
        free(got);
        free(stream);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_and_early),
        cmocka_unit_test(test_gap_filled_late),
        cmocka_unit_test(test_loss_slides_and_bounds_the_bitmap),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
