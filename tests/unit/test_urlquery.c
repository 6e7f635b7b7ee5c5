/* test_urlquery.c - the URL query-string codec (codec/urlquery.c):
 * percent-decoding, parameters by name and one by one (tables; inputs in
 * exact-size buffers so ASan catches a read past the end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec/urlquery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_url_decode(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out; /* NULL: -1 */
        size_t outlen;
    } cases[] = {
        {"", "", 0},
        {"abc", "abc", 3},
        {"a%3Ab", "a:b", 3},
        {"a%3ab", "a:b", 3},
        {"%23alice", "#alice", 6},
        {"a+b", "a+b", 3},            /* '+' is not a space */
        {"%2B", "+", 1},
        {"%20", " ", 1},
        {"%00x", "\0x", 2},
        {"%ff", "\xff", 1},
        {"%25%25", "%%", 2},
        {"%", NULL, 0},
        {"a%", NULL, 0},
        {"a%2", NULL, 0},
        {"%zz", NULL, 0},
        {"%2g", NULL, 0},
        {"%g2", NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].in);
        char *in = malloc(n ? n : 1); /* exact size: ASan catches reads past the end */
        memcpy(in, cases[i].in, n);
        char out[64];
        ssize_t r = hr_url_decode(in, n, out, sizeof(out));
        if (!cases[i].out) {
            assert_int_equal(r, -1);
        } else {
            assert_int_equal(r, (ssize_t)cases[i].outlen);
            assert_memory_equal(out, cases[i].out, cases[i].outlen);
        }
        free(in);
    }
    /* in place, and out too small */
    char buf[] = "a%3Ab";
    assert_int_equal(hr_url_decode(buf, 5, buf, 5), 3);
    assert_memory_equal(buf, "a:b", 3);
    char small[2];
    assert_int_equal(hr_url_decode("abc", 3, small, 2), -1);
    assert_int_equal(hr_url_decode("a%3A", 4, small, 2), 2);
}

/* All values of `name` in q, joined with '|'; "ERR<code>" on an error. */
static void values(const char *q, const char *name, char *out, size_t cap)
{
    size_t n = strlen(q), pos = 0, len;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, q, n);
    out[0] = '\0';
    char v[64];
    int rc;
    bool first = true;
    while ((rc = hr_query_next(copy, n, &pos, name, v, sizeof(v), &len)) == 1) {
        size_t o = strlen(out);
        snprintf(out + o, cap - o, "%s%.*s", first ? "" : "|", (int)len, v);
        first = false;
    }
    if (rc < 0) snprintf(out, cap, "ERR%d", rc);
    free(copy);
}

static void test_query_next(void **state)
{
    (void)state;
    static const struct {
        const char *q, *want;
    } cases[] = {
        {"", ""},
        {"channel=a", "a"},
        {"channel=a&channel=b", "a|b"},
        {"x=1&channel=a&y=2&channel=b%3Ac&z", "a|b:c"},
        {"&&channel=a&&", "a"},
        {"channel", ""},                  /* present, empty value */
        {"channel=", ""},
        {"channel=a=b", "a=b"},           /* split at the first '=' */
        {"chann%65l=x", "x"},             /* the name is decoded too */
        {"channels=x&chan=y&Channel=z", ""},
        {"channel=a%zz", "ERR-3"},
        {"channel=a%2", "ERR-3"},
        {"other=%zz&channel=a", "a"},     /* other parameters are not judged */
        {"%zz=1&channel=a", "a"},
        {"channel=" "0123456789012345678901234567890123456789012345678901234567890123456789", "ERR-4"},
    };
    char got[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        values(cases[i].q, "channel", got, sizeof(got));
        if (strcmp(got, cases[i].want) != 0) fail_msg("query %s: got [%s], want [%s]", cases[i].q, got, cases[i].want);
    }
    /* "channel" with no value counts as present (an invalid, empty name) */
    size_t pos = 0, len = 99;
    char v[8];
    assert_int_equal(hr_query_next("channel", 7, &pos, "channel", v, sizeof(v), &len), 1);
    assert_int_equal(len, 0);
    pos = 0;
    assert_int_equal(hr_query_next(NULL, 0, &pos, "channel", v, sizeof(v), &len), 0);
}

/* Every piece of q as "name[=value]" joined with '|'. */
static void pieces(const char *q, char *out, size_t cap)
{
    size_t n = strlen(q), pos = 0;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, q, n);
    out[0] = '\0';
    hr_query_param p;
    while (hr_query_param_next(copy, n, &pos, &p) == 1) {
        size_t o = strlen(out);
        snprintf(out + o, cap - o, "%s%.*s%s%.*s", o ? "|" : "", (int)p.nlen, p.name, p.has_value ? "=" : "",
                 (int)p.vlen, p.value);
    }
    free(copy);
}

static void test_query_param_next(void **state)
{
    (void)state;
    static const struct {
        const char *q, *want;
    } cases[] = {
        {"", ""},
        {"a=1", "a=1"},
        {"a=1&&b", "a=1|b"},
        {"&a=&=b&", "a=|=b"},
        {"a=b=c&%zz=%4", "a=b=c|%zz=%4"}, /* as written: decoding is the caller's */
    };
    char got[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pieces(cases[i].q, got, sizeof(got));
        if (strcmp(got, cases[i].want) != 0) fail_msg("query %s: got [%s], want [%s]", cases[i].q, got, cases[i].want);
    }
    size_t pos = 0;
    hr_query_param p;
    assert_int_equal(hr_query_param_next(NULL, 0, &pos, &p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_query_next),
        cmocka_unit_test(test_query_param_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
