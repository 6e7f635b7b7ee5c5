/* test_channel_name.c - unit tests for hub/channel_name.c. Table-driven:
 * validation of names (valid names, every error code and its precedence,
 * length limits, every byte 0..255 in and out of a segment), validation of
 * patterns, matching, namespace extraction, user-limited channels and error
 * texts (the pattern and matching tables are shared with the JS SDK's tests:
 * tests/data/channel_patterns.json). Every input is copied into a heap buffer of exactly its length (no
 * terminating NUL) so that ASan catches any read past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hub/channel_name.h"

/* Exact-size copy of s[0..n) (n may be 0: then a 1-byte buffer, still no
 * readable content for the callee since it is passed length 0). */
static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

static int validate(const char *s, size_t n, size_t max_len)
{
    char *p = dup_exact(s, n);
    int r = hr_chan_validate(p, n, max_len);
    free(p);
    return r;
}

static int validate_pattern(const char *s, size_t n, size_t max_len, bool *is_pattern)
{
    char *p = dup_exact(s, n);
    int r = hr_chan_validate_pattern(p, n, max_len, is_pattern);
    free(p);
    return r;
}

static bool match(const char *pattern, const char *name)
{
    size_t pl = strlen(pattern), nl = strlen(name);
    char *p = dup_exact(pattern, pl), *n = dup_exact(name, nl);
    bool r = hr_chan_match(p, pl, n, nl);
    free(p);
    free(n);
    return r;
}

/* ---- names ------------------------------------------------------------- */

typedef struct {
    const char *name;
    size_t max_len; /* 0: no limit */
    int want;
} name_case;

static const name_case name_cases[] = {
    /* valid */
    {"a", 0, HR_CHAN_OK},
    {"room1", 0, HR_CHAN_OK},
    {"chat:room1", 0, HR_CHAN_OK},
    {"prices.eu.btc.usd", 0, HR_CHAN_OK},
    {"chat:room.sub.leaf", 0, HR_CHAN_OK},
    {"ns.with.dots:x", 0, HR_CHAN_OK},
    {"a::b", 0, HR_CHAN_OK},        /* namespace "a", rest ":b" */
    {"a:b:c", 0, HR_CHAN_OK},       /* namespace "a", rest "b:c" */
    {"a:b.:c", 0, HR_CHAN_OK},      /* rest segments "b", ":c" */
    {"#alice", 0, HR_CHAN_OK},      /* personal channel, default namespace */
    {"dm:#alice,bob", 0, HR_CHAN_OK},
    {"dm:#alice", 0, HR_CHAN_OK},
    {"room#alice,bob", 0, HR_CHAN_OK},
    {"#google:42", 0, HR_CHAN_OK},  /* ':' after '#' belongs to the user */
    {"dm:#a.b@example.com,c", 0, HR_CHAN_OK},
    {"dm:#a.,b", 0, HR_CHAN_OK},    /* users "a." and "b", segments fine */
    {"x.#u", 0, HR_CHAN_OK},
    {"AZaz09_-=@.x:y#u,/!~+$%", 0, HR_CHAN_OK},
    {"_-=@:x", 0, HR_CHAN_OK},
    {"a,b,c", 0, HR_CHAN_OK},       /* ',' is an ordinary byte before '#' */
    {"100%/done!~+$", 0, HR_CHAN_OK},
    /* limits: max_len counts bytes, 0 = unlimited */
    {"abcde", 5, HR_CHAN_OK},
    {"abcde", 4, HR_CHAN_E_TOO_LONG},
    {"abcde", 1, HR_CHAN_E_TOO_LONG},
    {"abcde", 6, HR_CHAN_OK},
    {"a", 1, HR_CHAN_OK},
    {"", 0, HR_CHAN_E_EMPTY},
    {"", 1, HR_CHAN_E_EMPTY},
    /* charset */
    {"a b", 0, HR_CHAN_E_CHARSET},
    {"a\"b", 0, HR_CHAN_E_CHARSET},
    {"a'b", 0, HR_CHAN_E_CHARSET},
    {"a\tb", 0, HR_CHAN_E_CHARSET},
    {"a\x7f", 0, HR_CHAN_E_CHARSET},
    {"caf\xc3\xa9", 0, HR_CHAN_E_CHARSET},
    {"a?b", 0, HR_CHAN_E_CHARSET},
    {"a&b", 0, HR_CHAN_E_CHARSET},
    {"a\\b", 0, HR_CHAN_E_CHARSET},
    {"a<b", 0, HR_CHAN_E_CHARSET},
    /* wildcards in a concrete name */
    {"*", 0, HR_CHAN_E_PATTERN},
    {">", 0, HR_CHAN_E_PATTERN},
    {"a.*", 0, HR_CHAN_E_PATTERN},
    {"a.>", 0, HR_CHAN_E_PATTERN},
    {"a*b", 0, HR_CHAN_E_PATTERN},
    {"chat:*", 0, HR_CHAN_E_PATTERN},
    {"*:x", 0, HR_CHAN_E_PATTERN},
    /* segments */
    {".", 0, HR_CHAN_E_SEGMENT},
    {".a", 0, HR_CHAN_E_SEGMENT},
    {"a.", 0, HR_CHAN_E_SEGMENT},
    {"a..b", 0, HR_CHAN_E_SEGMENT},
    {":", 0, HR_CHAN_E_SEGMENT},
    {":x", 0, HR_CHAN_E_SEGMENT},   /* empty namespace */
    {"x:", 0, HR_CHAN_E_SEGMENT},   /* empty rest */
    {"a.:b", 0, HR_CHAN_E_SEGMENT}, /* namespace "a." ends in '.' */
    {"a:.b", 0, HR_CHAN_E_SEGMENT}, /* rest ".b" */
    {".a:b", 0, HR_CHAN_E_SEGMENT},
    {"a:b.", 0, HR_CHAN_E_SEGMENT},
    {"dm:#a..b", 0, HR_CHAN_E_SEGMENT},
    {"dm:#a.", 0, HR_CHAN_E_SEGMENT},
    {"#.", 0, HR_CHAN_E_SEGMENT},
    /* users */
    {"#", 0, HR_CHAN_E_USERS},
    {"dm:#", 0, HR_CHAN_E_USERS},
    {"dm:#a,,b", 0, HR_CHAN_E_USERS},
    {"dm:#a,", 0, HR_CHAN_E_USERS},
    {"dm:#,a", 0, HR_CHAN_E_USERS},
    {"dm:#,", 0, HR_CHAN_E_USERS},
    {"dm:#a#b", 0, HR_CHAN_E_USERS},
    {"dm:##", 0, HR_CHAN_E_USERS},
    {"a#b:#c", 0, HR_CHAN_E_USERS},
    /* precedence: EMPTY, TOO_LONG, CHARSET, SEGMENT, PATTERN, USERS */
    {"a b..*", 3, HR_CHAN_E_TOO_LONG},
    {"a b..*", 0, HR_CHAN_E_CHARSET},
    {"*..a b", 0, HR_CHAN_E_CHARSET},
    {"*..a", 0, HR_CHAN_E_SEGMENT},
    {"dm:#a,,b.", 0, HR_CHAN_E_SEGMENT},
    {"dm:#a,,*", 0, HR_CHAN_E_PATTERN},
    {"*:#", 0, HR_CHAN_E_PATTERN},
    {":#", 0, HR_CHAN_E_SEGMENT},
};

static void test_validate_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(name_cases); i++) {
        const name_case *c = &name_cases[i];
        int r = validate(c->name, strlen(c->name), c->max_len);
        if (r != c->want) fail_msg("validate(\"%s\", max %zu) = %d, want %d", c->name, c->max_len, r, c->want);
        /* A valid name is a valid pattern without wildcards; a name that
         * fails for a reason other than wildcards fails the same way as a
         * pattern. */
        bool isp = true;
        int rp = validate_pattern(c->name, strlen(c->name), c->max_len, &isp);
        if (r == HR_CHAN_OK) {
            assert_int_equal(rp, HR_CHAN_OK);
            assert_false(isp);
        } else if (r != HR_CHAN_E_PATTERN) {
            if (rp != r) fail_msg("validate_pattern(\"%s\") = %d, validate = %d", c->name, rp, r);
        }
    }
}

static void test_validate_embedded_nul(void **state)
{
    (void)state;
    assert_int_equal(validate("a\0b", 3, 0), HR_CHAN_E_CHARSET);
    assert_int_equal(validate("\0", 1, 0), HR_CHAN_E_CHARSET);
    assert_int_equal(validate("ab\0", 3, 0), HR_CHAN_E_CHARSET);
    /* the length is what counts, not a terminator */
    assert_int_equal(validate("ab\0", 2, 0), HR_CHAN_OK);
    assert_int_equal(validate("a..b", 1, 0), HR_CHAN_OK);
    assert_int_equal(hr_chan_validate(NULL, 0, 0), HR_CHAN_E_EMPTY);
    bool isp = true;
    assert_int_equal(hr_chan_validate_pattern(NULL, 0, 0, &isp), HR_CHAN_E_EMPTY);
    assert_false(isp);
}

static void test_validate_long(void **state)
{
    (void)state;
    size_t n = 100001; /* "a.a.a. ... .a" */
    char *s = malloc(n);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) s[i] = (i % 2) ? '.' : 'a';
    assert_int_equal(hr_chan_validate(s, n, 0), HR_CHAN_OK);
    assert_int_equal(hr_chan_validate(s, n, n), HR_CHAN_OK);
    assert_int_equal(hr_chan_validate(s, n, n - 1), HR_CHAN_E_TOO_LONG);
    assert_true(hr_chan_match(s, n, s, n));
    s[n - 1] = '>';
    bool isp = false;
    assert_int_equal(hr_chan_validate_pattern(s, n, 0, &isp), HR_CHAN_OK);
    assert_true(isp);
    free(s);
}

/* Independent statement of the allowed set. */
static const char allowed_set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@.:#,/!~+$%";

static bool in_allowed(int b)
{
    return b != 0 && memchr(allowed_set, b, sizeof allowed_set - 1) != NULL;
}

static void test_every_byte(void **state)
{
    (void)state;
    int n_allowed = 0;
    for (int b = 0; b < 256; b++) {
        char mid[3] = {'x', (char)b, 'y'};
        char seg[5] = {'x', '.', (char)b, '.', 'y'};
        char last[3] = {'x', '.', (char)b};
        bool wild = b == '*' || b == '>';
        bool isp = true;
        if (in_allowed(b)) n_allowed++;

        /* inside a segment: "x?y" */
        int want = in_allowed(b) ? HR_CHAN_OK : wild ? HR_CHAN_E_PATTERN : HR_CHAN_E_CHARSET;
        int r = validate(mid, 3, 0);
        if (r != want) fail_msg("byte 0x%02x in \"x?y\": %d, want %d", b, r, want);
        r = validate_pattern(mid, 3, 0, &isp);
        if (r != want) fail_msg("byte 0x%02x in pattern \"x?y\": %d, want %d", b, r, want);
        if (r == HR_CHAN_OK) assert_false(isp);

        /* a whole middle segment: "x.?.y" */
        if (b == '.') want = HR_CHAN_E_SEGMENT;
        else if (b == ':') want = HR_CHAN_E_SEGMENT; /* namespace "x." */
        else if (b == '#') want = HR_CHAN_OK;        /* "x.#.y": users ".y" */
        else if (in_allowed(b)) want = HR_CHAN_OK;
        else want = wild ? HR_CHAN_E_PATTERN : HR_CHAN_E_CHARSET;
        r = validate(seg, 5, 0);
        if (r != want) fail_msg("byte 0x%02x as segment in a name: %d, want %d", b, r, want);
        int wantp = b == '*' ? HR_CHAN_OK : want; /* '>' is not last */
        r = validate_pattern(seg, 5, 0, &isp);
        if (r != wantp) fail_msg("byte 0x%02x as segment in a pattern: %d, want %d", b, r, wantp);
        if (r == HR_CHAN_OK) assert_int_equal(isp, b == '*');

        /* a whole last segment: "x.?" */
        if (b == '.') want = HR_CHAN_E_SEGMENT;
        else if (b == '#') want = HR_CHAN_E_USERS;
        else if (b == ':') want = HR_CHAN_E_SEGMENT; /* namespace "x." */
        else if (in_allowed(b)) want = HR_CHAN_OK;
        else want = wild ? HR_CHAN_E_PATTERN : HR_CHAN_E_CHARSET;
        r = validate(last, 3, 0);
        if (r != want) fail_msg("byte 0x%02x as last segment in a name: %d, want %d", b, r, want);
        wantp = wild ? HR_CHAN_OK : want;
        r = validate_pattern(last, 3, 0, &isp);
        if (r != wantp) fail_msg("byte 0x%02x as last segment in a pattern: %d, want %d", b, r, wantp);
        if (r == HR_CHAN_OK) assert_int_equal(isp, wild);

        /* alone */
        char one[1] = {(char)b};
        if (b == '.' || b == ':') want = HR_CHAN_E_SEGMENT;
        else if (b == '#') want = HR_CHAN_E_USERS;
        else if (in_allowed(b)) want = HR_CHAN_OK;
        else want = wild ? HR_CHAN_E_PATTERN : HR_CHAN_E_CHARSET;
        assert_int_equal(validate(one, 1, 0), want);
        assert_int_equal(validate_pattern(one, 1, 0, &isp), wild ? HR_CHAN_OK : want);
    }
    assert_int_equal(n_allowed, 26 + 26 + 10 + 14);
}

/* ---- patterns ---------------------------------------------------------- */

/* The pattern and matching tables live in tests/data/channel_patterns.json,
 * which the JavaScript SDK's test (clients/js/test/patterns.test.mjs) reads
 * too, so that the client and the server agree on what a pattern is and what
 * it matches. */
static json_t *shared_table(const char *key)
{
    const char *src = getenv("HERALD_SOURCE_DIR");
    if (!src) src = HERALD_SOURCE_DIR_FALLBACK;
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/channel_patterns.json", src);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) fail_msg("%s:%d: %s", path, err.line, err.text);
    json_t *rows = json_incref(json_object_get(root, key));
    json_decref(root);
    if (!json_is_array(rows) || json_array_size(rows) == 0) fail_msg("%s: no \"%s\" array", path, key);
    return rows;
}

static int chan_result(const char *name)
{
    static const struct {
        const char *name;
        int code;
    } codes[] = {
        {"ok", HR_CHAN_OK},          {"empty", HR_CHAN_E_EMPTY},     {"too_long", HR_CHAN_E_TOO_LONG},
        {"charset", HR_CHAN_E_CHARSET}, {"pattern", HR_CHAN_E_PATTERN}, {"segment", HR_CHAN_E_SEGMENT},
        {"users", HR_CHAN_E_USERS},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(codes); i++)
        if (strcmp(codes[i].name, name) == 0) return codes[i].code;
    fail_msg("channel_patterns.json: unknown result \"%s\"", name);
    return 1;
}

/* Row i of a shared table: [string, string, bool, optional note]. */
static void table_row(json_t *rows, size_t i, const char **a, const char **b, bool *flag)
{
    json_t *r = json_array_get(rows, i);
    *a = json_string_value(json_array_get(r, 0));
    *b = json_string_value(json_array_get(r, 1));
    json_t *f = json_array_get(r, 2);
    if (!*a || !*b || !json_is_boolean(f)) fail_msg("channel_patterns.json: malformed row %zu", i);
    *flag = json_is_true(f);
}

static void test_validate_pattern_table(void **state)
{
    (void)state;
    json_t *rows = shared_table("patterns");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const char *pattern, *result;
        bool is_pattern;
        table_row(rows, i, &pattern, &result, &is_pattern);
        int want = chan_result(result);
        bool isp = !is_pattern;
        size_t n = strlen(pattern);
        int r = validate_pattern(pattern, n, 0, &isp);
        if (r != want) fail_msg("validate_pattern(\"%s\") = %d, want %d", pattern, r, want);
        if (isp != is_pattern) fail_msg("validate_pattern(\"%s\"): is_pattern %d", pattern, isp);
        /* Limits apply to patterns too. */
        if (n > 1) assert_int_equal(validate_pattern(pattern, n, n - 1, &isp), HR_CHAN_E_TOO_LONG);
        /* A NULL is_pattern is accepted. */
        assert_int_equal(validate_pattern(pattern, n, 0, NULL), want);
        /* A concrete name with a wildcard is always a PATTERN error (unless
         * something earlier in the precedence fails). */
        if (is_pattern) assert_int_equal(validate(pattern, n, 0), HR_CHAN_E_PATTERN);
    }
    json_decref(rows);
}

/* ---- matching ---------------------------------------------------------- */

static void test_match_table(void **state)
{
    (void)state;
    json_t *rows = shared_table("matches");
    assert_true(json_array_size(rows) >= 40);
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const char *pattern, *name;
        bool want, isp;
        table_row(rows, i, &pattern, &name, &want);
        /* every row uses valid inputs, as hr_chan_match requires */
        assert_int_equal(validate_pattern(pattern, strlen(pattern), 0, &isp), HR_CHAN_OK);
        assert_int_equal(validate(name, strlen(name), 0), HR_CHAN_OK);
        if (match(pattern, name) != want) fail_msg("match(\"%s\", \"%s\") != %d", pattern, name, want);
        /* every valid name matches itself */
        assert_true(match(name, name));
        /* a pattern without wildcards matches only the identical name */
        if (!isp) assert_int_equal(match(pattern, name), strcmp(pattern, name) == 0);
    }
    json_decref(rows);
}

static void test_match_self_from_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(name_cases); i++) {
        const char *n = name_cases[i].name;
        if (validate(n, strlen(n), 0) == HR_CHAN_OK) assert_true(match(n, n));
    }
}

/* ---- namespaces -------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *ns;
} ns_case;

static const ns_case ns_cases[] = {
    {"chat:room1", "chat"},
    {"room1", ""},
    {"a::b", "a"},
    {"a:b:c", "a"},
    {"ns.with.dots:x.y", "ns.with.dots"},
    {"dm:#alice,bob", "dm"},
    {"#alice", ""},
    {"#google:42", ""},
    {"room#a:b", ""},
    {"dm:#a:b", "dm"},
    {"chat:*", "chat"},
    {"prices.>", ""},
    {":x", ""},
    {"", ""},
};

static void test_namespace_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(ns_cases); i++) {
        const ns_case *c = &ns_cases[i];
        size_t n = strlen(c->name);
        char *p = dup_exact(c->name, n);
        const char *ns = NULL;
        size_t ns_len = 99;
        hr_chan_namespace(p, n, &ns, &ns_len);
        assert_non_null(ns);
        if (ns_len != strlen(c->ns) || memcmp(ns, c->ns, ns_len) != 0)
            fail_msg("namespace(\"%s\") = \"%.*s\", want \"%s\"", c->name, (int)ns_len, ns, c->ns);
        if (ns_len) assert_ptr_equal(ns, p); /* a slice of the name */
        free(p);
    }
    const char *ns = NULL;
    size_t ns_len = 99;
    hr_chan_namespace(NULL, 0, &ns, &ns_len);
    assert_non_null(ns);
    assert_int_equal(ns_len, 0);
}

/* ---- user-limited channels -------------------------------------------- */

typedef struct {
    const char *name;
    const char *user;
    int want;
} user_case;

static const user_case user_cases[] = {
    {"dm:#alice,bob", "alice", 1},
    {"dm:#alice,bob", "bob", 1},
    {"dm:#alice,bob", "carol", 0},
    {"dm:#alice,bob", "alic", 0},
    {"dm:#alice,bob", "alicex", 0},
    {"dm:#alice,bob", "bo", 0},
    {"dm:#alice,bob", "Alice", 0},
    {"dm:#alice,bob", "alice,bob", 0},
    {"dm:#alice,bob", "#alice", 0},
    {"dm:#alice,bob", "", 0},
    {"#alice", "alice", 1},
    {"#alice", "bob", 0},
    {"#alice", "", 0},
    {"#google:42", "google:42", 1},
    {"#google:42", "google", 0},
    {"dm:#a.b@example.com,c", "a.b@example.com", 1},
    {"dm:#a.b@example.com,c", "c", 1},
    {"dm:#a.b@example.com,c", "a.b", 0},
    {"room#x,y,z", "y", 1},
    {"room#x,y,z", "z", 1},
    {"room#x,y,z", "room", 0},
    {"chat:room1", "alice", -1},
    {"chat:room1", "", -1},
    {"a,b", "a", -1},
    {"prices.btc", "prices", -1},
};

static void test_user_allowed_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(user_cases); i++) {
        const user_case *c = &user_cases[i];
        size_t n = strlen(c->name), u = strlen(c->user);
        assert_int_equal(validate(c->name, n, 0), HR_CHAN_OK);
        char *p = dup_exact(c->name, n), *q = dup_exact(c->user, u);
        int r = hr_chan_user_allowed(p, n, q, u);
        if (r != c->want) fail_msg("user_allowed(\"%s\", \"%s\") = %d, want %d", c->name, c->user, r, c->want);
        free(p);
        free(q);
    }
    assert_int_equal(hr_chan_user_allowed(NULL, 0, "a", 1), -1);
}

/* ---- error texts ------------------------------------------------------- */

static void test_error_text(void **state)
{
    (void)state;
    const int codes[] = {HR_CHAN_OK, HR_CHAN_E_EMPTY, HR_CHAN_E_TOO_LONG, HR_CHAN_E_CHARSET,
                         HR_CHAN_E_PATTERN, HR_CHAN_E_SEGMENT, HR_CHAN_E_USERS};
    for (size_t i = 0; i < HR_ARRAY_LEN(codes); i++) {
        const char *t = hr_chan_error_text(codes[i]);
        assert_non_null(t);
        assert_true(strlen(t) > 0);
        for (size_t j = 0; j < i; j++) assert_string_not_equal(t, hr_chan_error_text(codes[j]));
    }
    assert_non_null(hr_chan_error_text(HR_ERR_INVALID));
    assert_non_null(hr_chan_error_text(-12345));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_validate_embedded_nul),
        cmocka_unit_test(test_validate_long),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_validate_pattern_table),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_self_from_names),
        cmocka_unit_test(test_namespace_table),
        cmocka_unit_test(test_user_allowed_table),
        cmocka_unit_test(test_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
