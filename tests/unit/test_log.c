/* test_log.c - the log's escapers (src/core/log.c): JSON strings per RFC 8259
 * (quotes, backslashes, control characters as \u00XX, valid UTF-8 kept,
 * invalid UTF-8 -- stray continuation bytes, overlong forms, surrogates,
 * truncated sequences, past U+10FFFF -- replaced by \ufffd), text values
 * (bare when plain, else quoted with \xHH for controls and non-ASCII), and
 * cutting at a small capacity never splitting an escape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/log.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static void json_is(const char *in, size_t n, const char *want)
{
    char out[256];
    size_t len = hr_log_json_escape(out, sizeof(out), in, n);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

static void text_is(const char *in, size_t n, const char *want)
{
    char out[256];
    size_t len = hr_log_text_escape(out, sizeof(out), in, n);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

#define J(lit, want) json_is(lit, sizeof(lit) - 1, want)
#define T(lit, want) text_is(lit, sizeof(lit) - 1, want)

static void test_json(void **state)
{
    (void)state;
    J("", "");
    J("plain", "plain");
    J("a\"b\\c", "a\\\"b\\\\c");
    J("\"}\n{\"level\":\"error\"", "\\\"}\\n{\\\"level\\\":\\\"error\\\"");
    J("\r\t\b\f", "\\r\\t\\u0008\\u000c");
    J("a\0b", "a\\u0000b");
    J("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    J("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); /* valid UTF-8 kept */
    J("\xff", "\\ufffd");
    J("\x80x", "\\ufffdx");                   /* stray continuation byte */
    J("\xc0\xaf", "\\ufffd\\ufffd");          /* overlong '/' */
    J("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"); /* overlong, 3 bytes */
    J("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"); /* a surrogate */
    J("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"); /* past U+10FFFF */
    J("\xc3", "\\ufffd");                     /* cut sequence at the end */
    J("\xc3(", "\\ufffd(");
    J("\xe2\x82", "\\ufffd\\ufffd");
}

static void test_text(void **state)
{
    (void)state;
    T("plain", "plain");
    T("1.2.3.4", "1.2.3.4");
    T("/ws/raw", "/ws/raw");
    T("", "\"\"");
    T("a b", "\"a b\"");
    T("k=v", "\"k=v\"");
    T("say \"hi\"", "\"say \\\"hi\\\"\"");
    T("back\\slash", "\"back\\\\slash\"");
    T("two\nlines\r\t", "\"two\\nlines\\r\\t\"");
    T("nul\0", "\"nul\\x00\"");
    T("\x7f\x01", "\"\\x7f\\x01\"");
    T("caf\xc3\xa9", "\"caf\\xc3\\xa9\"");
    T("\xff", "\"\\xff\"");
}

/* A small capacity cuts the value between escapes, never inside one. */
static void test_cut(void **state)
{
    (void)state;
    char out[8];
    size_t n = hr_log_json_escape(out, sizeof(out), "ab\"\"\"\"", 6);
    assert_string_equal(out, "ab\\\"\\\""); /* 7 usable bytes: two \" fit, a third does not */
    assert_int_equal(n, 6);
    n = hr_log_json_escape(out, 5, "\x01", 1); /* \u0001 is 6 bytes: nothing fits */
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
    n = hr_log_text_escape(out, sizeof(out), "a\nb\nc\n", 6);
    assert_true(n < sizeof(out));
    assert_int_equal(out[0], '"');
    assert_int_equal(out[n - 1], '"'); /* still closed */
    assert_null(strchr(out, '\n'));
    assert_int_equal(hr_log_text_escape(out, 0, "x", 1), 0);
}

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(hr_log_format_parse("text"), HR_LOG_TEXT);
    assert_int_equal(hr_log_format_parse("json"), HR_LOG_JSON);
    assert_int_equal(hr_log_format_parse("JSON"), -1);
    assert_int_equal(hr_log_format_parse(""), -1);
    assert_int_equal(hr_log_level_parse("warn"), HR_LOG_WARN);
    assert_int_equal(hr_log_level_parse("verbose"), -1);
}

/* The line one call writes to stderr (captured through a pipe). */
static size_t capture(char *out, size_t cap, int level, const char *event, const hr_log_field *f, size_t n)
{
    int p[2], saved = dup(STDERR_FILENO);
    assert_int_equal(pipe(p), 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 16);
    dup2(p[1], STDERR_FILENO);
    hr_log_fields(level, event, f, n);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    ssize_t got = read(p[0], out, cap - 1);
    close(p[0]);
    out[got > 0 ? got : 0] = '\0';
    return got > 0 ? (size_t)got : 0;
}

static void test_lines(void **state)
{
    (void)state;
    char out[4096];
    hr_log_set_level(HR_LOG_INFO);
    hr_log_set_format(HR_LOG_JSON);
    hr_log_field f[] = {HR_LOG_S("remote", "1.2.3.4"), HR_LOG_I("status", -3), HR_LOG_U("n", 18446744073709551615ull),
                        HR_LOG_S("none", NULL), HR_LOG_M("ua", "a\"b\0c", 5)};
    size_t n = capture(out, sizeof(out), HR_LOG_WARN, "conn_refused", f, 5);
    assert_true(n > 0);
    assert_non_null(strstr(out, "\",\"level\":\"warn\",\"event\":\"conn_refused\",\"remote\":\"1.2.3.4\",\"status\":-3,"
                                "\"n\":18446744073709551615,\"none\":null,\"ua\":\"a\\\"b\\u0000c\"}\n"));
    assert_null(strstr(out, "worker")); /* not a worker thread */
    assert_int_equal(strncmp(out, "{\"time\":\"", 9), 0);
    /* below the level: nothing */
    assert_int_equal(capture(out, sizeof(out), HR_LOG_DEBUG, "x", f, 1), 0);

    hr_log_set_format(HR_LOG_TEXT);
    hr_log_set_worker(3);
    n = capture(out, sizeof(out), HR_LOG_INFO, "conn_refused", f, 5);
    assert_non_null(strstr(out, " info conn_refused worker=3 remote=1.2.3.4 status=-3 n=18446744073709551615 none=- "
                                "ua=\"a\\\"b\\x00c\"\n"));
    hr_log_set_worker(-1);

    /* a value longer than a line: cut, the line still one well-formed line */
    static char big[5000];
    memset(big, '"', sizeof(big));
    hr_log_field g[] = {HR_LOG_M("v", big, sizeof(big)), HR_LOG_I("after", 1)};
    hr_log_set_format(HR_LOG_JSON);
    n = capture(out, sizeof(out), HR_LOG_INFO, "big", g, 2);
    assert_true(n <= HR_LOG_LINE_MAX);
    assert_int_equal(out[n - 1], '\n');
    assert_int_equal(out[n - 2], '}');
    assert_int_equal(out[n - 3], '"'); /* the cut string is closed; "after" did not fit */
    assert_int_equal(out[n - 4], '"'); /* ...after a whole \" */
    assert_int_equal(out[n - 5], '\\');
    hr_log_set_format(HR_LOG_TEXT);
    n = capture(out, sizeof(out), HR_LOG_INFO, "big", g, 2);
    assert_true(n <= HR_LOG_LINE_MAX);
    assert_int_equal(out[n - 1], '\n');
    assert_int_equal(out[n - 2], '"');
    assert_ptr_equal(strchr(out, '\n'), out + n - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_cut),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
