/* test_utf8.c - unit tests for the streaming UTF-8 validator (codec/utf8.c).
 * A table of Markus Kuhn's stress-test categories with the exact byte index at
 * which the validator must fail, every case fed whole, byte by byte, split at
 * every position and behind ASCII padding; plus exhaustive comparison of all
 * short strings against an independent decoding reference, and random text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "codec/utf8.h"

/* ---- independent reference ------------------------------------------------
 * Decodes code points and, after every byte, asks whether the bytes seen so
 * far can still be completed to a Unicode scalar value with the shortest
 * encoding. The first byte for which the answer is "no" is where a fail-fast
 * validator must report INVALID. */
static int ref_check(const uint8_t *p, size_t n, size_t *fail_at)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            len = 2, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            *fail_at = i;
            return HR_UTF8_INVALID;
        }
        for (size_t k = 0; k < len; k++) {
            if (k > 0) {
                if (i + k >= n) return HR_UTF8_PARTIAL;
                if ((p[i + k] & 0xC0) != 0x80) {
                    *fail_at = i + k;
                    return HR_UTF8_INVALID;
                }
                cp = cp << 6 | (p[i + k] & 0x3F);
            }
            unsigned rem = (unsigned)(len - 1 - k);
            uint32_t lo = cp << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
            if (lo < min) lo = min;
            if (hi > 0x10FFFF) hi = 0x10FFFF;
            if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) {
                *fail_at = i + k;
                return HR_UTF8_INVALID;
            }
        }
        i += len;
    }
    return HR_UTF8_COMPLETE;
}

/* Feed byte by byte; returns the final result and where INVALID first came. */
static int feed_bytewise(const uint8_t *p, size_t n, size_t *fail_at)
{
    hr_utf8 s;
    hr_utf8_init(&s);
    int r = HR_UTF8_COMPLETE;
    for (size_t i = 0; i < n; i++) {
        r = hr_utf8_feed(&s, p + i, 1);
        if (r == HR_UTF8_INVALID) {
            *fail_at = i;
            return r;
        }
    }
    return r;
}

static int feed_whole(const uint8_t *p, size_t n)
{
    hr_utf8 s = HR_UTF8_INIT;
    return hr_utf8_feed(&s, p, n);
}

/* Validator vs. reference on one string: whole, byte by byte (exact fail
 * position), and hr_utf8_valid. Returns false on mismatch (no cmocka in the
 * hot loop of the exhaustive tests). */
static bool agrees(const uint8_t *p, size_t n)
{
    size_t ref_at = SIZE_MAX, got_at = SIZE_MAX;
    int ref = ref_check(p, n, &ref_at);
    if (feed_whole(p, n) != ref) return false;
    if (feed_bytewise(p, n, &got_at) != ref || got_at != ref_at) return false;
    return hr_utf8_valid(p, n) == (ref == HR_UTF8_COMPLETE);
}

static void report(const uint8_t *p, size_t n)
{
    fprintf(stderr, "mismatch on:");
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %02X", p[i]);
    fprintf(stderr, "\n");
}

/* ---- table ------------------------------------------------------------------ */

typedef struct u8case {
    const char *desc;
    const char *s;
    size_t len;
    int result;
    int fail_at; /* byte index of the first impossible byte, -1 if none */
} u8case;

#define V(d, str) {d, str, sizeof(str) - 1, HR_UTF8_COMPLETE, -1}
#define P(d, str) {d, str, sizeof(str) - 1, HR_UTF8_PARTIAL, -1}
#define X(d, str, at) {d, str, sizeof(str) - 1, HR_UTF8_INVALID, at}

static const u8case cases[] = {
    /* 1: some correct text */
    V("empty", ""),
    V("ascii", "Hello, world"),
    V("kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"),
    V("autobahn 6.2.1", "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!"),
    V("NUL inside", "a\x00" "b"),
    V("mixed widths", "a\xC3\xA9" "b\xE2\x82\xAC" "c\xF0\x9D\x84\x9E" "d"),
    V("emoji", "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D"),
    /* 2.1: first code point of each length */
    V("U+0000", "\x00"),
    V("U+0080", "\xC2\x80"),
    V("U+0800", "\xE0\xA0\x80"),
    V("U+10000", "\xF0\x90\x80\x80"),
    X("5-byte U+200000", "\xF8\x88\x80\x80\x80", 0),
    X("6-byte U+4000000", "\xFC\x84\x80\x80\x80\x80", 0),
    /* 2.2: last code point of each length */
    V("U+007F", "\x7F"),
    V("U+07FF", "\xDF\xBF"),
    V("U+FFFF", "\xEF\xBF\xBF"),
    X("4-byte U+1FFFFF", "\xF7\xBF\xBF\xBF", 0),
    X("5-byte U+3FFFFFF", "\xFB\xBF\xBF\xBF\xBF", 0),
    X("6-byte U+7FFFFFFF", "\xFD\xBF\xBF\xBF\xBF\xBF", 0),
    /* 2.3: other boundaries */
    V("U+D7FF", "\xED\x9F\xBF"),
    V("U+E000", "\xEE\x80\x80"),
    V("U+FFFD", "\xEF\xBF\xBD"),
    V("U+10FFFF", "\xF4\x8F\xBF\xBF"),
    X("U+110000", "\xF4\x90\x80\x80", 1),
    X("U+13FFFF", "\xF4\xBF\xBF\xBF", 1),
    X("F5 lead", "\xF5\x80\x80\x80", 0),
    /* 3.1: unexpected continuation bytes */
    X("lone 80", "\x80", 0),
    X("lone BF", "\xBF", 0),
    X("80 BF", "\x80\xBF", 0),
    X("80 BF 80", "\x80\xBF\x80", 0),
    X("ascii then 80", "abc\x80", 3),
    X("extra continuation", "\xC3\xA9\x80", 2),
    X("extra after 4-byte", "\xF0\x90\x80\x80\x80", 4),
    /* 3.2: lonely start characters followed by a space */
    X("C0 space", "\xC0 ", 0),
    X("C2 space", "\xC2 ", 1),
    X("DF space", "\xDF ", 1),
    X("E0 space", "\xE0 ", 1),
    X("EF space", "\xEF ", 1),
    X("F0 space", "\xF0 ", 1),
    X("F4 space", "\xF4 ", 1),
    X("F8 space", "\xF8 ", 0),
    X("FC space", "\xFC ", 0),
    /* 3.3: sequences with the last byte(s) missing, at the end: PARTIAL */
    P("C2 at end", "\xC2"),
    P("DF at end", "\xDF"),
    P("E0 at end", "\xE0"),
    P("E0 A0 at end", "\xE0\xA0"),
    P("E1 80 at end", "\xE1\x80"),
    P("ED at end", "\xED"),
    P("ED 9F at end", "\xED\x9F"),
    P("EF BF at end", "\xEF\xBF"),
    P("F0 at end", "\xF0"),
    P("F0 90 at end", "\xF0\x90"),
    P("F0 90 80 at end", "\xF0\x90\x80"),
    P("F4 at end", "\xF4"),
    P("F4 8F BF at end", "\xF4\x8F\xBF"),
    P("text then E2 82", "price: 5\xE2\x82"),
    /* ... and in the middle: invalid at the byte that breaks them */
    X("E1 80 then ascii", "\xE1\x80" "a", 2),
    X("F0 90 80 then ascii", "\xF0\x90\x80" "a", 3),
    X("C2 then C2 80", "\xC2\xC2\x80", 1),
    X("E0 then lead", "\xE0\xE0", 1),
    /* 3.4: concatenated incomplete sequences */
    X("incomplete chain", "\xC2\xE0\xA0\xF0\x90\x80\xDF\xEF\xBF", 1),
    X("incomplete overlong chain", "\xC0\xE0\x80\xF0\x80\x80", 0),
    /* 3.5: impossible bytes */
    X("FE", "\xFE", 0),
    X("FF", "\xFF", 0),
    X("FE FE FF FF", "\xFE\xFE\xFF\xFF", 0),
    X("ascii then FF", "hello\xFF", 5),
    /* 4.1: overlong '/' */
    X("overlong / 2", "\xC0\xAF", 0),
    X("overlong / 3", "\xE0\x80\xAF", 1),
    X("overlong / 4", "\xF0\x80\x80\xAF", 1),
    X("overlong / 5", "\xF8\x80\x80\x80\xAF", 0),
    X("overlong / 6", "\xFC\x80\x80\x80\x80\xAF", 0),
    /* 4.2: maximum overlongs */
    X("max overlong 2", "\xC1\xBF", 0),
    X("max overlong 3", "\xE0\x9F\xBF", 1),
    X("max overlong 4", "\xF0\x8F\xBF\xBF", 1),
    X("max overlong 5", "\xF8\x87\xBF\xBF\xBF", 0),
    X("max overlong 6", "\xFC\x83\xBF\xBF\xBF\xBF", 0),
    /* 4.3: overlong NUL */
    X("overlong NUL 2", "\xC0\x80", 0),
    X("overlong NUL 3", "\xE0\x80\x80", 1),
    X("overlong NUL 4", "\xF0\x80\x80\x80", 1),
    X("overlong NUL 5", "\xF8\x80\x80\x80\x80", 0),
    X("overlong NUL 6", "\xFC\x80\x80\x80\x80\x80", 0),
    /* 5.1: single surrogates */
    X("U+D800", "\xED\xA0\x80", 1),
    X("U+DB7F", "\xED\xAD\xBF", 1),
    X("U+DB80", "\xED\xAE\x80", 1),
    X("U+DBFF", "\xED\xAF\xBF", 1),
    X("U+DC00", "\xED\xB0\x80", 1),
    X("U+DF80", "\xED\xBE\x80", 1),
    X("U+DFFF", "\xED\xBF\xBF", 1),
    X("ED A0 at end", "\xED\xA0", 1),
    /* 5.2: paired surrogates (CESU-8) */
    X("U+D800 U+DC00", "\xED\xA0\x80\xED\xB0\x80", 1),
    X("U+DBFF U+DFFF", "\xED\xAF\xBF\xED\xBF\xBF", 1),
    X("kosme + surrogate (autobahn 6.3.1)",
      "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80" "edited", 12),
    /* 5.3: noncharacters are valid UTF-8 */
    V("U+FFFE", "\xEF\xBF\xBE"),
    V("U+FDD0", "\xEF\xB7\x90"),
    V("U+FDEF", "\xEF\xB7\xAF"),
    V("U+1FFFF", "\xF0\x9F\xBF\xBF"),
    V("U+10FFFE", "\xF4\x8F\xBF\xBE"),
    /* fail fast inside a 4-byte sequence: the second byte decides */
    X("F4 90 fails at 90", "\xF4\x90", 1),
    X("F0 8F fails at 8F", "\xF0\x8F", 1),
    X("F0 C0", "\xF0\xC0", 1),
    X("F1 80 7F", "\xF1\x80\x7F", 2),
    X("F1 80 80 C0", "\xF1\x80\x80\xC0", 3),
};

static void check_case(const u8case *c, const uint8_t *p, size_t n, size_t pad)
{
    size_t at = SIZE_MAX;
    int whole = feed_whole(p, n);
    if (whole != c->result) fprintf(stderr, "case %s (pad %zu)\n", c->desc, pad);
    assert_int_equal(whole, c->result);
    assert_int_equal(hr_utf8_valid(p, n), c->result == HR_UTF8_COMPLETE);

    /* byte by byte: INVALID appears exactly at the first impossible byte */
    int bw = feed_bytewise(p, n, &at);
    assert_int_equal(bw, c->result);
    if (c->result == HR_UTF8_INVALID) assert_int_equal(at, (size_t)c->fail_at + pad);

    /* the reference agrees with the table */
    size_t ref_at = SIZE_MAX;
    assert_int_equal(ref_check(p, n, &ref_at), c->result);
    if (c->result == HR_UTF8_INVALID) assert_int_equal(ref_at, (size_t)c->fail_at + pad);

    /* split in two at every position: same final answer; the first piece
     * fails on its own exactly when it contains the impossible byte */
    for (size_t k = 0; k <= n; k++) {
        hr_utf8 s;
        hr_utf8_init(&s);
        int r1 = hr_utf8_feed(&s, p, k);
        bool has_bad = c->result == HR_UTF8_INVALID && k > (size_t)c->fail_at + pad;
        if (has_bad) {
            assert_int_equal(r1, HR_UTF8_INVALID);
            continue;
        }
        assert_int_not_equal(r1, HR_UTF8_INVALID);
        assert_int_equal(hr_utf8_feed(&s, p + k, n - k), c->result);
    }
    /* and in three pieces */
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            hr_utf8 s = HR_UTF8_INIT;
            int r = hr_utf8_feed(&s, p, a);
            if (r != HR_UTF8_INVALID) r = hr_utf8_feed(&s, p + a, b - a);
            if (r != HR_UTF8_INVALID) r = hr_utf8_feed(&s, p + b, n - b);
            assert_int_equal(r, c->result);
        }
    }
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++)
        check_case(&cases[i], (const uint8_t *)cases[i].s, cases[i].len, 0);
}

/* The same cases behind 0..23 bytes of ASCII, so that the word-at-a-time
 * fast path stops at every alignment relative to the interesting bytes. */
static void test_table_padded(void **state)
{
    (void)state;
    uint8_t buf[64];
    for (size_t pad = 1; pad < 24; pad++) {
        for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
            const u8case *c = &cases[i];
            memset(buf, 'x', pad);
            memcpy(buf + pad, c->s, c->len);
            check_case(c, buf, pad + c->len, pad);
        }
    }
}

/* Every byte 80..BF alone, and with an ASCII lead-in. */
static void test_lone_continuations(void **state)
{
    (void)state;
    for (unsigned b = 0x80; b <= 0xBF; b++) {
        uint8_t one[1] = {(uint8_t)b};
        uint8_t two[10] = {'0', '1', '2', '3', '4', '5', '6', '7', '8', (uint8_t)b};
        size_t at = SIZE_MAX;
        assert_int_equal(feed_whole(one, 1), HR_UTF8_INVALID);
        assert_int_equal(feed_bytewise(two, sizeof two, &at), HR_UTF8_INVALID);
        assert_int_equal(at, 9);
        assert_int_equal(feed_whole(two, sizeof two), HR_UTF8_INVALID);
    }
}

/* Every possible lead byte C0..FF followed by a space (Kuhn 3.2): bytes that
 * can never start a sequence fail at once, the others at the space. */
static void test_lonely_starts(void **state)
{
    (void)state;
    for (unsigned b = 0xC0; b <= 0xFF; b++) {
        uint8_t s[2] = {(uint8_t)b, ' '};
        size_t at = SIZE_MAX;
        bool never = b <= 0xC1 || b >= 0xF5;
        assert_int_equal(feed_bytewise(s, 2, &at), HR_UTF8_INVALID);
        assert_int_equal(at, never ? 0 : 1);
        hr_utf8 st = HR_UTF8_INIT;
        assert_int_equal(hr_utf8_feed(&st, s, 1), never ? HR_UTF8_INVALID : HR_UTF8_PARTIAL);
    }
}

/* The allowed range of the byte after each lead byte, exhaustively. */
static void test_second_byte_ranges(void **state)
{
    (void)state;
    for (unsigned lead = 0xC2; lead <= 0xF4; lead++) {
        unsigned lo = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
        unsigned hi = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
        for (unsigned b = 0; b < 256; b++) {
            uint8_t s[2] = {(uint8_t)lead, (uint8_t)b};
            hr_utf8 st = HR_UTF8_INIT;
            int r = hr_utf8_feed(&st, s, 2);
            if (b < lo || b > hi) assert_int_equal(r, HR_UTF8_INVALID);
            else assert_int_equal(r, lead < 0xE0 ? HR_UTF8_COMPLETE : HR_UTF8_PARTIAL);
        }
    }
}

/* All strings of length 1 and 2; all of length 3 that start with a non-ASCII
 * byte (ASCII-led ones reduce to length 2). */
static void test_exhaustive_short(void **state)
{
    (void)state;
    uint8_t s[3];
    size_t bad = 0;
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        if (!agrees(s, 1)) bad++, report(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            if (!agrees(s, 2)) bad++, report(s, 2);
            if (a < 0x80) continue;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                if (!agrees(s, 3) && bad++ < 20) report(s, 3);
            }
        }
    }
    assert_int_equal(bad, 0);
}

/* Four-byte strings: every lead F0..F7 and second byte, third and fourth
 * byte from the class boundaries. */
static void test_exhaustive_four(void **state)
{
    (void)state;
    static const uint8_t edge[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F,
                                   0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    uint8_t s[4];
    size_t bad = 0;
    for (unsigned a = 0xC0; a < 0x100; a++) {
        s[0] = (uint8_t)a;
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            for (size_t c = 0; c < sizeof edge; c++) {
                s[2] = edge[c];
                for (size_t d = 0; d < sizeof edge; d++) {
                    s[3] = edge[d];
                    if (!agrees(s, 4) && bad++ < 20) report(s, 4);
                }
            }
        }
    }
    assert_int_equal(bad, 0);
}

/* Every code point U+0000..U+10FFFF encoded by hand: surrogates must fail at
 * their second byte, everything else must be COMPLETE, alone and behind a
 * 7-byte ASCII prefix. */
static size_t encode(uint32_t cp, uint8_t *o)
{
    if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static void test_all_code_points(void **state)
{
    (void)state;
    uint8_t buf[16] = "1234567";
    size_t bad = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode(cp, buf + 7);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        int want = surrogate ? HR_UTF8_INVALID : HR_UTF8_COMPLETE;
        if (feed_whole(buf + 7, n) != want || feed_whole(buf, n + 7) != want) bad++;
        if (surrogate) {
            size_t at = SIZE_MAX;
            if (feed_bytewise(buf + 7, n, &at) != HR_UTF8_INVALID || at != 1) bad++;
        } else if (n > 1) {
            hr_utf8 s = HR_UTF8_INIT; /* every proper prefix is PARTIAL */
            for (size_t k = 0; k + 1 < n; k++)
                if (hr_utf8_feed(&s, buf + 7 + k, 1) != HR_UTF8_PARTIAL) bad++;
            if (hr_utf8_feed(&s, buf + 7 + n - 1, 1) != HR_UTF8_COMPLETE) bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Long ASCII with one bad byte at every position: exact fail index, whole
 * and byte by byte; and the fast path does not skip a multi-byte char. */
static void test_ascii_fast_path(void **state)
{
    (void)state;
    uint8_t buf[80];
    for (size_t n = 0; n <= sizeof buf; n++) {
        memset(buf, 'a', n);
        assert_int_equal(feed_whole(buf, n), HR_UTF8_COMPLETE);
        for (size_t pos = 0; pos < n; pos++) {
            static const uint8_t bad[] = {0x80, 0xC0, 0xFF, 0xF8};
            for (size_t k = 0; k < sizeof bad; k++) {
                buf[pos] = bad[k];
                size_t at = SIZE_MAX;
                assert_int_equal(feed_whole(buf, n), HR_UTF8_INVALID);
                assert_int_equal(feed_bytewise(buf, n, &at), HR_UTF8_INVALID);
                assert_int_equal(at, pos);
            }
            /* a valid 2-byte char at pos (when it fits) */
            if (pos + 1 < n) {
                buf[pos] = 0xC3, buf[pos + 1] = 0xA9;
                assert_int_equal(feed_whole(buf, n), HR_UTF8_COMPLETE);
                buf[pos + 1] = 'a';
                assert_int_equal(feed_whole(buf, n), HR_UTF8_INVALID);
            } else {
                buf[pos] = 0xC3; /* last byte: truncated */
                assert_int_equal(feed_whole(buf, n), HR_UTF8_PARTIAL);
            }
            buf[pos] = 'a';
        }
    }
}

/* Random strings built from valid characters and junk, fed in random pieces,
 * against the reference. */
static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t bad = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = 0, want = rnd() % 200;
        while (n + 4 <= want) {
            uint32_t k = rnd() % 16;
            if (k < 6) buf[n++] = (uint8_t)('a' + rnd() % 26);
            else if (k < 13) {
                uint32_t cp;
                do cp = rnd() % 0x110000; while (cp >= 0xD800 && cp <= 0xDFFF && iter % 8);
                n += encode(cp, buf + n);
            } else if (k < 15 || iter % 4) {
                buf[n++] = (uint8_t)(0x80 | rnd() % 0x80);
            } else {
                buf[n++] = (uint8_t)rnd();
            }
        }
        /* valid prefixes are common: cut at a random point */
        if (n && iter % 3 == 0) n = rnd() % n;
        size_t ref_at = SIZE_MAX;
        int ref = ref_check(buf, n, &ref_at);
        hr_utf8 s = HR_UTF8_INIT;
        size_t pos = 0;
        int r = HR_UTF8_COMPLETE;
        while (pos < n) {
            size_t piece = rnd() % 20;
            if (piece > n - pos) piece = n - pos;
            r = hr_utf8_feed(&s, buf + pos, piece);
            if (r == HR_UTF8_INVALID) {
                /* must have failed in the piece holding the bad byte */
                if (ref != HR_UTF8_INVALID || ref_at < pos || ref_at >= pos + piece) bad++;
                break;
            }
            pos += piece;
        }
        if (r != ref) bad++;
        if (!agrees(buf, n) && bad++ < 10) report(buf, n);
    }
    assert_int_equal(bad, 0);
}

/* Implementation guarantee beyond the header: once INVALID, it stays so. */
static void test_invalid_is_sticky(void **state)
{
    (void)state;
    hr_utf8 s;
    hr_utf8_init(&s);
    assert_int_equal(hr_utf8_feed(&s, (const uint8_t *)"\xC0", 1), HR_UTF8_INVALID);
    assert_int_equal(hr_utf8_feed(&s, (const uint8_t *)"abc", 3), HR_UTF8_INVALID);
    assert_int_equal(hr_utf8_feed(&s, (const uint8_t *)"", 0), HR_UTF8_INVALID);
    /* re-init recovers */
    hr_utf8_init(&s);
    assert_int_equal(hr_utf8_feed(&s, (const uint8_t *)"abc", 3), HR_UTF8_COMPLETE);
    /* an empty feed keeps a partial state */
    assert_int_equal(hr_utf8_feed(&s, (const uint8_t *)"\xE2", 1), HR_UTF8_PARTIAL);
    assert_int_equal(hr_utf8_feed(&s, (const uint8_t *)"", 0), HR_UTF8_PARTIAL);
    assert_int_equal(hr_utf8_feed(&s, (const uint8_t *)"\x82\xAC", 2), HR_UTF8_COMPLETE);
    assert_int_equal(HR_UTF8_INVALID, HR_ERR_UTF8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_padded),
        cmocka_unit_test(test_lone_continuations),
        cmocka_unit_test(test_lonely_starts),
        cmocka_unit_test(test_second_byte_ranges),
        cmocka_unit_test(test_exhaustive_short),
        cmocka_unit_test(test_exhaustive_four),
        cmocka_unit_test(test_all_code_points),
        cmocka_unit_test(test_ascii_fast_path),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_invalid_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
