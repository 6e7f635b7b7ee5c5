/* test_sse_id.c - the Server-Sent Events id (transport/sse.h): a position
 * per concrete channel, "EPOCH:OFFSET" entries joined by '.'. Tables of
 * well-formed and malformed ids, round trips, the entry bound, and more
 * entries than the caller has room for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "transport/sse.h"

#include <stdio.h>
#include <string.h>

static void test_parse_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int count;
        const char *epoch0;
        uint64_t offset0;
        const char *epoch1;
        uint64_t offset1;
    } cases[] = {
        {"", 0, NULL, 0, NULL, 0},
        {"9c0d3e1a2b4f5a6c:41", 1, "9c0d3e1a2b4f5a6c", 41, NULL, 0},
        {"a:0", 1, "a", 0, NULL, 0},
        {"A_b-9:007", 1, "A_b-9", 7, NULL, 0},
        {"9c0d3e1a2b4f5a6c:41.3f1c0d5e9a7b4c21:7", 2, "9c0d3e1a2b4f5a6c", 41, "3f1c0d5e9a7b4c21", 7},
        {"e:18446744073709551615.f:1", 2, "e", UINT64_MAX, "f", 1},
        {"x:1.y:2.z:3", 3, "x", 1, "y", 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hr_sse_pos pos[2];
        memset(pos, 0, sizeof(pos));
        int rc = hr_sse_id_parse(cases[i].in, strlen(cases[i].in), pos, 2);
        if (rc != cases[i].count) fail_msg("%s: %d entries, expected %d", cases[i].in, rc, cases[i].count);
        if (cases[i].epoch0) {
            assert_string_equal(pos[0].epoch, cases[i].epoch0);
            assert_true(pos[0].offset == cases[i].offset0);
        }
        if (cases[i].epoch1) {
            assert_string_equal(pos[1].epoch, cases[i].epoch1);
            assert_true(pos[1].offset == cases[i].offset1);
        }
    }
}

static void test_parse_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        ":1",                                 /* empty epoch */
        "abc",                                /* no offset */
        "abc:",                               /* empty offset */
        "abc:x",                              /* not a number */
        "abc:1x",                             /* trailing junk */
        "abc:-1",
        "abc:+1",
        "abc: 1",
        "abc:1.",                             /* trailing separator */
        ".abc:1",
        "abc:1..d:2",
        "abc:1,d:2",                          /* wrong separator */
        "a.b:1",
        "ab c:1",
        "ab%3A:1",
        "0123456789abcdef0:1",                /* 17-character epoch */
        "e:18446744073709551616",             /* 2^64 */
        "e:99999999999999999999",
        "e:000000000000000000001",            /* 21 digits */
        "abc:1\n",
        "abc:1 ",
        "abc::1",
        "é:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hr_sse_pos pos[4];
        int rc = hr_sse_id_parse(bad[i], strlen(bad[i]), pos, 4);
        if (rc != HR_ERR_PROTO) fail_msg("\"%s\" parsed (%d), expected HR_ERR_PROTO", bad[i], rc);
    }
}

static void test_more_entries_than_room(void **state)
{
    (void)state;
    hr_sse_pos pos[2];
    memset(pos, 0, sizeof(pos));
    const char *id = "a:1.b:2.c:3.d:4";
    assert_int_equal(hr_sse_id_parse(id, strlen(id), pos, 2), 4);
    assert_string_equal(pos[0].epoch, "a");
    assert_string_equal(pos[1].epoch, "b");
    assert_true(pos[1].offset == 2);
    /* no room at all: still counted, and still checked */
    assert_int_equal(hr_sse_id_parse(id, strlen(id), NULL, 0), 4);
    assert_int_equal(hr_sse_id_parse("a:1.b", 5, pos, 1), HR_ERR_PROTO);
    /* the length given is respected (no NUL needed) */
    assert_int_equal(hr_sse_id_parse("a:12.b:2", 4, pos, 2), 1);
    assert_true(pos[0].offset == 12);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    hr_sse_pos in[5] = {
        {0, "9c0d3e1a2b4f5a6c"}, {41, "3f1c0d5e9a7b4c21"}, {UINT64_MAX, "0123456789abcdef"}, {7, "x"}, {10, "A_-z"},
    };
    char out[5 * HR_SSE_ID_ENTRY_MAX];
    size_t n = hr_sse_id_format(in, 5, out);
    const char *want = "9c0d3e1a2b4f5a6c:0.3f1c0d5e9a7b4c21:41.0123456789abcdef:18446744073709551615.x:7.A_-z:10";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    hr_sse_pos back[5];
    assert_int_equal(hr_sse_id_parse(out, n, back, 5), 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(back[i].epoch, in[i].epoch);
        assert_true(back[i].offset == in[i].offset);
    }
    /* the bound holds for the longest entries */
    hr_sse_pos longest[3] = {{UINT64_MAX, "0123456789abcdef"}, {UINT64_MAX, "0123456789abcdef"},
                             {UINT64_MAX, "0123456789abcdef"}};
    assert_true(hr_sse_id_format(longest, 3, out) <= 3 * HR_SSE_ID_ENTRY_MAX);
    assert_int_equal(hr_sse_id_format(longest, 0, out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_more_entries_than_room),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
