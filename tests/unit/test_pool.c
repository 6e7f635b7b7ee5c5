/* test_pool.c - per-worker object pools (src/core/pool.c): objects are
 * zeroed, distinct, 8-byte aligned and packed at their size (no header, no
 * 16-byte rounding); freed objects are reused; size classes do not mix; a
 * block that empties is kept while the spare budget allows
 * (server.object_pool_spare_bytes) and given back past it, or at once with
 * a budget of 0; destroy gives back blocks still in use; under
 * AddressSanitizer a freed object and a block's unused space are poisoned
 * (a use after free is reported) and a handed-out object is not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define PER_BLOCK(size) ((HR_POOL_BLOCK_SIZE - 64) / (size))

static void test_alloc_packed_zeroed(void **state)
{
    (void)state;
    hr_pools ps = {0};
    char *a = hr_pool_alloc(&ps, 184);
    char *b = hr_pool_alloc(&ps, 184);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 8, 0);
    /* no header, no rounding to 16: consecutive objects 184 bytes apart */
    assert_int_equal(b - a, 184);
    for (int i = 0; i < 184; i++) assert_int_equal(a[i], 0);
    memset(a, 0xab, 184);
    hr_pool_free(&ps, a);
    char *c = hr_pool_alloc(&ps, 181); /* rounded up to 184: the same class */
    assert_ptr_equal(c, a);           /* the freed object first */
    for (int i = 0; i < 184; i++) assert_int_equal(c[i], 0);
    assert_int_equal(ps.objects, 2);
    assert_int_equal(ps.blocks, 1);
    hr_pool_free(&ps, b);
    hr_pool_free(&ps, c);
    hr_pool_free(&ps, NULL);
    assert_int_equal(ps.objects, 0);
    assert_int_equal(ps.blocks, 0); /* no spare budget: the empty block went back */
    hr_pools_destroy(&ps);
}

static void test_classes_apart(void **state)
{
    (void)state;
    hr_pools ps = {0};
    void *x = hr_pool_alloc(&ps, 72);
    void *y = hr_pool_alloc(&ps, 80);
    /* different classes live in different blocks */
    assert_true(((uintptr_t)x ^ (uintptr_t)y) >= HR_POOL_BLOCK_SIZE);
    assert_int_equal(ps.blocks, 2);
    hr_pool_free(&ps, x);
    hr_pool_free(&ps, y);
    assert_int_equal(ps.blocks, 0);
}

/* Fill several blocks, free all: the budget decides what is kept. */
static void fill_and_empty(hr_pools *ps, size_t size, size_t n)
{
    void **v = calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = hr_pool_alloc(ps, size);
        memset(v[i], (int)i, size);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < i + 3 && j < n; j++) assert_ptr_not_equal(v[i], v[j]);
    assert_int_equal(ps->objects, n);
    for (size_t i = 0; i < n; i++) hr_pool_free(ps, v[i]);
    free(v);
    assert_int_equal(ps->objects, 0);
}

static void test_spare_budget(void **state)
{
    (void)state;
    size_t n = 4 * PER_BLOCK(120) + 1; /* five blocks */
    hr_pools ps = {0};
    hr_pools_set_spare(&ps, 2 * HR_POOL_BLOCK_SIZE + 100); /* two whole blocks */
    fill_and_empty(&ps, 120, n);
    assert_int_equal(ps.blocks, 2);
    assert_int_equal(ps.spare, 2);
    /* the spares serve the next objects: no new block until they are full */
    fill_and_empty(&ps, 120, 2 * PER_BLOCK(120));
    assert_int_equal(ps.blocks, 2);
    /* another class uses the same spare budget: it is spent, so its empty block goes back */
    hr_pool_free(&ps, hr_pool_alloc(&ps, 96));
    assert_int_equal(ps.blocks, 2);
    hr_pools_destroy(&ps);
    assert_int_equal(ps.blocks, 0);

    hr_pools none = {0};
    hr_pools_set_spare(&none, 0);
    fill_and_empty(&none, 120, n);
    assert_int_equal(none.blocks, 0);
    assert_int_equal(none.spare, 0);
}

/* Objects freed out of order from full blocks: the blocks with room are
 * used before a new one is made, and the count per block stays right. */
static void test_reuse_across_blocks(void **state)
{
    (void)state;
    size_t per = PER_BLOCK(184), n = 3 * per;
    hr_pools ps = {0};
    void **v = calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) v[i] = hr_pool_alloc(&ps, 184);
    assert_int_equal(ps.blocks, 3);
    for (size_t i = 0; i < n; i += 2) hr_pool_free(&ps, v[i]); /* half of each block */
    assert_int_equal(ps.blocks, 3);
    for (size_t i = 0; i < n; i += 2) v[i] = hr_pool_alloc(&ps, 184);
    assert_int_equal(ps.blocks, 3);
    void *extra = hr_pool_alloc(&ps, 184); /* all full again: a fourth block */
    assert_int_equal(ps.blocks, 4);
    hr_pool_free(&ps, extra);
    assert_int_equal(ps.blocks, 3);
    /* destroy with objects still out */
    hr_pools_destroy(&ps);
    assert_int_equal(ps.blocks, 0);
    free(v);
}

static void test_asan_poisoning(void **state)
{
    (void)state;
#ifdef TEST_ASAN
    hr_pools ps = {0};
    hr_pools_set_spare(&ps, HR_POOL_BLOCK_SIZE); /* keep the block mapped when it empties */
    char *a = hr_pool_alloc(&ps, 104);
    char *b = hr_pool_alloc(&ps, 104);
    assert_null(__asan_region_is_poisoned(a, 104));
    assert_int_equal(__asan_address_is_poisoned(b + 104), 1); /* never handed out yet */
    hr_pool_free(&ps, a);
    assert_int_equal(__asan_address_is_poisoned(a), 1);
    assert_int_equal(__asan_address_is_poisoned(a + 103), 1);
    assert_int_equal(__asan_address_is_poisoned(b), 0);
    char *c = hr_pool_alloc(&ps, 104);
    assert_ptr_equal(c, a);
    assert_null(__asan_region_is_poisoned(c, 104));
    hr_pool_free(&ps, b);
    hr_pool_free(&ps, c);
    assert_int_equal(__asan_address_is_poisoned(c), 1); /* an empty spare block stays poisoned */
    hr_pools_destroy(&ps);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_packed_zeroed),
        cmocka_unit_test(test_classes_apart),
        cmocka_unit_test(test_spare_budget),
        cmocka_unit_test(test_reuse_across_blocks),
        cmocka_unit_test(test_asan_poisoning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
