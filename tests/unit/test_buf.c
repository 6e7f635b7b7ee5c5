/* test_buf.c - the growable byte buffer (src/core/buf.c): appends grow it
 * and keep the bytes, an empty buffer holds no memory, and reserving nothing
 * in an empty buffer is defined (NULL; it was NULL + 0, which UBSan stops
 * on: a native frame without commands, found by fuzz_session). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"

#include <string.h>

static void test_append_and_grow(void **state)
{
    (void)state;
    hr_buf b = HR_BUF_INIT;
    for (int i = 0; i < 100; i++) hr_buf_append_str(&b, "0123456789");
    hr_buf_printf(&b, "%d", 42);
    assert_int_equal(b.len, 1002);
    assert_true(b.cap >= b.len);
    assert_memory_equal(b.data + 990, "012345678942", 12);
    hr_buf_consume(&b, 1000);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "42", 2);
    hr_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.cap, 0);
}

static void test_reserve_nothing_in_an_empty_buffer(void **state)
{
    (void)state;
    hr_buf b = HR_BUF_INIT;
    assert_null(hr_buf_reserve(&b, 0));
    assert_null(b.data);
    hr_buf_append(&b, NULL, 0);
    assert_int_equal(b.len, 0);
    uint8_t *p = hr_buf_reserve(&b, 1);
    assert_non_null(p);
    assert_ptr_equal(hr_buf_reserve(&b, 0), p);
    hr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_grow),
        cmocka_unit_test(test_reserve_nothing_in_an_empty_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
