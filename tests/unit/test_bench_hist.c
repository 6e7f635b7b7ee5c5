/* test_bench_hist.c - the bench's log-linear histogram: bucket geometry,
 * percentiles against a sorted reference on random data (within the
 * promised 1/128 relative error), and edge values (empty, 0, one value,
 * the top of the range and beyond, merge). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bench/hist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The reference: the value at rank ceil(p/100 * n) of the sorted data. */
static uint64_t ref_percentile(const uint64_t *sorted, size_t n, double p)
{
    if (p <= 0) return sorted[0];
    if (p >= 100) return sorted[n - 1];
    double r = ceil(p / 100.0 * (double)n);
    size_t rank = r < 1 ? 1 : (size_t)r;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void check_against_reference(uint64_t *v, size_t n)
{
    static hr_hist h;
    hr_hist_init(&h);
    for (size_t i = 0; i < n; i++) hr_hist_record(&h, v[i]);
    qsort(v, n, sizeof(uint64_t), cmp_u64);
    assert_int_equal(h.count, n);
    assert_int_equal(h.min, v[0]);
    assert_int_equal(h.max, v[n - 1]);
    static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100};
    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
        uint64_t want = ref_percentile(v, n, ps[k]);
        uint64_t got = hr_hist_percentile(&h, ps[k]);
        double tol = (double)want / 128.0 + 1.0;
        if (fabs((double)got - (double)want) > tol) {
            fprintf(stderr, "p%g: histogram %llu, reference %llu (n=%zu)\n", ps[k], (unsigned long long)got,
                    (unsigned long long)want, n);
            fail();
        }
    }
    long double sum = 0;
    for (size_t i = 0; i < n; i++) sum += v[i];
    double mean = (double)(sum / n);
    assert_true(fabs(hr_hist_mean(&h) - mean) <= mean * 1e-9 + 1e-9);
}

static void test_bucket_geometry(void **state)
{
    (void)state;
    assert_int_equal(HR_HIST_BUCKETS, 2240);
    for (size_t i = 0; i < HR_HIST_BUCKETS; i++) {
        uint64_t lo = hr_hist_bucket_low(i), hi = hr_hist_bucket_high(i);
        assert_true(lo <= hi);
        assert_int_equal(hr_hist_index(lo), i);
        assert_int_equal(hr_hist_index(hi), i);
        if (i + 1 < HR_HIST_BUCKETS) assert_int_equal(hr_hist_bucket_low(i + 1), hi + 1); /* contiguous */
        if (i >= HR_HIST_SUB) assert_true((hi - lo + 1) * 64 <= lo);                  /* width <= 1/64 */
        else assert_int_equal(lo, hi);                                                   /* exact below 128 */
    }
    assert_int_equal(hr_hist_bucket_high(HR_HIST_BUCKETS - 1), HR_HIST_MAX_TRACKED);
    assert_int_equal(hr_hist_index(HR_HIST_MAX_TRACKED + 1), HR_HIST_BUCKETS - 1);
    assert_int_equal(hr_hist_index(UINT64_MAX), HR_HIST_BUCKETS - 1);
    assert_int_equal(hr_hist_index(127), 127);
    assert_int_equal(hr_hist_index(128), 128);
    assert_int_equal(hr_hist_index(129), 128); /* [128, 129] share a bucket of width 2 */
    assert_int_equal(hr_hist_index(130), 129);
}

static void test_random_log_uniform(void **state)
{
    (void)state;
    /* 1 us .. 100 s in ns, log-uniform: what publish-to-receive latencies look like */
    for (int round = 0; round < 5; round++) {
        size_t n = 1000 + (size_t)(rnd() % 200000);
        uint64_t *v = malloc(n * sizeof(uint64_t));
        for (size_t i = 0; i < n; i++) v[i] = (uint64_t)exp(log(1e3) + rnd01() * (log(1e11) - log(1e3)));
        check_against_reference(v, n);
        free(v);
    }
}

static void test_random_uniform_and_small(void **state)
{
    (void)state;
    size_t n = 100000;
    uint64_t *v = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) v[i] = rnd() % 1000000; /* up to 1 ms */
    check_against_reference(v, n);
    for (size_t i = 0; i < n; i++) v[i] = rnd() % 300; /* around the exact/log boundary */
    check_against_reference(v, n);
    for (size_t i = 0; i < n; i++) v[i] = (rnd() % 100 == 0) ? 50000000 + rnd() % 1000 : 20000 + rnd() % 100; /* tail */
    check_against_reference(v, n);
    free(v);
}

static void test_few_values(void **state)
{
    (void)state;
    uint64_t v[7];
    for (size_t n = 1; n <= 7; n++) {
        for (size_t i = 0; i < n; i++) v[i] = 1000 + rnd() % 100000000;
        check_against_reference(v, n);
    }
}

static void test_empty(void **state)
{
    (void)state;
    hr_hist h;
    hr_hist_init(&h);
    assert_int_equal(h.count, 0);
    assert_int_equal(hr_hist_percentile(&h, 0), 0);
    assert_int_equal(hr_hist_percentile(&h, 50), 0);
    assert_int_equal(hr_hist_percentile(&h, 100), 0);
    assert_true(hr_hist_mean(&h) == 0.0);
}

static void test_single_value_is_exact(void **state)
{
    (void)state;
    static const uint64_t vals[] = {0, 1, 127, 128, 129, 1000, 123456789, 99999999999ull, HR_HIST_MAX_TRACKED};
    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
        hr_hist h;
        hr_hist_init(&h);
        hr_hist_record(&h, vals[k]);
        /* clamped to [min, max]: one value is reported exactly */
        assert_int_equal(hr_hist_percentile(&h, 0), vals[k]);
        assert_int_equal(hr_hist_percentile(&h, 50), vals[k]);
        assert_int_equal(hr_hist_percentile(&h, 99.9), vals[k]);
        assert_int_equal(hr_hist_percentile(&h, 100), vals[k]);
    }
}

static void test_beyond_range(void **state)
{
    (void)state;
    hr_hist h;
    hr_hist_init(&h);
    hr_hist_record(&h, 5);
    hr_hist_record(&h, UINT64_MAX);
    hr_hist_record(&h, HR_HIST_MAX_TRACKED + 12345);
    assert_int_equal(h.count, 3);
    assert_int_equal(h.min, 5);
    assert_int_equal(h.max, UINT64_MAX);
    assert_int_equal(hr_hist_percentile(&h, 10), 5);
    assert_int_equal(hr_hist_percentile(&h, 100), UINT64_MAX);
    uint64_t p50 = hr_hist_percentile(&h, 50); /* in the overflow bucket: at least its low bound */
    assert_true(p50 >= hr_hist_bucket_low(HR_HIST_BUCKETS - 1));
}

static void test_record_n_and_merge(void **state)
{
    (void)state;
    static hr_hist a, b, all;
    hr_hist_init(&a);
    hr_hist_init(&b);
    hr_hist_init(&all);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = rnd() % 10000000;
        hr_hist_record(i % 3 ? &a : &b, v);
        hr_hist_record(&all, v);
    }
    hr_hist_record_n(&a, 777777, 1000);
    hr_hist_record_n(&all, 777777, 1000);
    hr_hist_record_n(&a, 1, 0); /* n = 0 records nothing */
    hr_hist_merge(&a, &b);
    assert_int_equal(a.count, all.count);
    assert_int_equal(a.min, all.min);
    assert_int_equal(a.max, all.max);
    assert_memory_equal(a.buckets, all.buckets, sizeof(a.buckets));
    for (double p = 0; p <= 100; p += 0.5) assert_int_equal(hr_hist_percentile(&a, p), hr_hist_percentile(&all, p));
    hr_hist e;
    hr_hist_init(&e);
    hr_hist_merge(&a, &e); /* merging an empty one changes nothing (min stays) */
    assert_int_equal(a.min, all.min);
    hr_hist_merge(&e, &all);
    assert_int_equal(e.min, all.min);
    assert_int_equal(e.count, all.count);
}

static void test_percentile_ranks(void **state)
{
    (void)state;
    /* 1..100 exact values: p50 is the 50th value, p99 the 99th, p99.9 the 100th */
    hr_hist h;
    hr_hist_init(&h);
    for (uint64_t v = 1; v <= 100; v++) hr_hist_record(&h, v);
    assert_int_equal(hr_hist_percentile(&h, 50), 50);
    assert_int_equal(hr_hist_percentile(&h, 99), 99);
    assert_int_equal(hr_hist_percentile(&h, 99.9), 100);
    assert_int_equal(hr_hist_percentile(&h, 1), 1);
    assert_int_equal(hr_hist_percentile(&h, 0.5), 1);
    assert_int_equal(hr_hist_percentile(&h, -5), 1);
    assert_int_equal(hr_hist_percentile(&h, 250), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_geometry),   cmocka_unit_test(test_random_log_uniform),
        cmocka_unit_test(test_random_uniform_and_small), cmocka_unit_test(test_few_values),
        cmocka_unit_test(test_empty),             cmocka_unit_test(test_single_value_is_exact),
        cmocka_unit_test(test_beyond_range),      cmocka_unit_test(test_record_n_and_merge),
        cmocka_unit_test(test_percentile_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
