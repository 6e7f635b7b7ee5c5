/* test_buf.c - unit tests for the growable buffer (core/buf.c): decimal
 * digits written by hand (hr_u64_dec, hr_buf_append_u64) against printf's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/buf.h"

static void test_u64_dec_as_printf(void **state)
{
    (void)state;
    static const uint64_t v[] = {0, 1, 9, 10, 99, 100, 12345, 4294967295u, 4294967296u, 999999999999999999u,
                                 1000000000000000000u, 18446744073709551615u};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[32], got[20];
        int n = snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
        assert_int_equal(hr_u64_dec(got, v[i]), (size_t)n);
        assert_memory_equal(got, want, (size_t)n);
        hr_buf b = HR_BUF_INIT;
        hr_buf_append(&b, "x", 1);
        hr_buf_append_u64(&b, v[i]);
        assert_int_equal(b.len, (size_t)n + 1);
        assert_memory_equal(b.data + 1, want, (size_t)n);
        hr_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_dec_as_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
