/* fuzz_channel_name.c - libFuzzer target for hub/channel_name.c. The input is
 * split at its first 0x00 into pattern and name (no 0x00: both are the whole
 * input), each copied into an exact-size buffer. Both go through the
 * validators, which must agree with an independent reference validator
 * written here (including the error precedence and max_len); when both are
 * valid, hr_chan_match must agree with a recursive backtracking reference
 * matcher. Also: a valid name matches itself, a wildcard-free pattern matches
 * only the identical name, the namespace is a slice of the name, and
 * hr_chan_user_allowed agrees with a reference membership test. abort() on
 * any disagreement. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/channel_name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

/* ---- reference grammar ------------------------------------------------- */

static const char ref_allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@.:#,/!~+$%";

static bool ref_is_allowed(char c)
{
    return c != 0 && strchr(ref_allowed, c) != NULL;
}

static bool ref_is_wild(char c)
{
    return c == '*' || c == '>';
}

/* Position of the first '#' (n if none) and of the namespace ':' (SIZE_MAX
 * if none: the first ':' that comes before the '#'). */
static void ref_parts(const char *s, size_t n, size_t *hash, size_t *colon)
{
    *hash = n;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '#') {
            *hash = i;
            break;
        }
    *colon = SIZE_MAX;
    for (size_t i = 0; i < *hash; i++)
        if (s[i] == ':') {
            *colon = i;
            break;
        }
}

/* Delimiter of segments, with the namespace ':' counted as one. */
static bool ref_delim(const char *s, size_t i, size_t colon)
{
    return s[i] == '.' || i == colon;
}

static int ref_validate(const char *s, size_t n, bool wild_ok, bool *is_pattern)
{
    *is_pattern = false;
    if (n == 0) return HR_CHAN_E_EMPTY;
    for (size_t i = 0; i < n; i++)
        if (!ref_is_allowed(s[i]) && !ref_is_wild(s[i])) return HR_CHAN_E_CHARSET;
    size_t hash, colon;
    ref_parts(s, n, &hash, &colon);
    /* segments: no delimiter first or last, no two delimiters in a row */
    if (ref_delim(s, 0, colon) || ref_delim(s, n - 1, colon)) return HR_CHAN_E_SEGMENT;
    for (size_t i = 1; i < n; i++)
        if (ref_delim(s, i, colon) && ref_delim(s, i - 1, colon)) return HR_CHAN_E_SEGMENT;
    /* wildcards: whole segment, after the namespace, before the '#', '>' last */
    bool wild = false;
    for (size_t i = 0; i < n; i++) {
        if (!ref_is_wild(s[i])) continue;
        if (!wild_ok) return HR_CHAN_E_PATTERN;
        bool left = i == 0 || ref_delim(s, i - 1, colon);
        bool right = i == n - 1 || s[i + 1] == '.';
        bool after_ns = colon == SIZE_MAX || i > colon;
        if (!left || !right || !after_ns || i > hash) return HR_CHAN_E_PATTERN;
        if (s[i] == '>' && i != n - 1) return HR_CHAN_E_PATTERN;
        wild = true;
    }
    /* users: non-empty list, no '#', no empty item */
    if (hash < n) {
        const char *u = s + hash + 1;
        size_t un = n - hash - 1;
        if (un == 0 || u[0] == ',' || u[un - 1] == ',') return HR_CHAN_E_USERS;
        for (size_t i = 0; i < un; i++) {
            if (u[i] == '#') return HR_CHAN_E_USERS;
            if (i && u[i] == ',' && u[i - 1] == ',') return HR_CHAN_E_USERS;
        }
    }
    *is_pattern = wild;
    return HR_CHAN_OK;
}

/* Length of the first '.'-segment of s[0..n). */
static size_t ref_seglen(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] != '.') i++;
    return i;
}

/* Segment lists s[0..n) (n == 0: no segments left). '>' may match any
 * number >= 1 of segments, tried by backtracking. */
static bool ref_match_rest(const char *p, size_t pn, const char *s, size_t sn)
{
    if (pn == 0) return sn == 0;
    if (sn == 0) return false;
    size_t pl = ref_seglen(p, pn), sl = ref_seglen(s, sn);
    const char *p2 = pl < pn ? p + pl + 1 : p + pn;
    size_t pn2 = pl < pn ? pn - pl - 1 : 0;
    if (pl == 1 && p[0] == '>') {
        /* consume one segment, then either stop here or take more */
        const char *s2 = s;
        size_t sn2 = sn;
        for (;;) {
            size_t l = ref_seglen(s2, sn2);
            if (l == sn2) return ref_match_rest(p2, pn2, s2 + sn2, 0);
            s2 += l + 1;
            sn2 -= l + 1;
            if (ref_match_rest(p2, pn2, s2, sn2)) return true;
        }
    }
    const char *s2 = sl < sn ? s + sl + 1 : s + sn;
    size_t sn2 = sl < sn ? sn - sl - 1 : 0;
    if (!(pl == 1 && p[0] == '*') && (pl != sl || memcmp(p, s, pl) != 0)) return false;
    return ref_match_rest(p2, pn2, s2, sn2);
}

static bool ref_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t ph, pc, sh, sc;
    ref_parts(p, pn, &ph, &pc);
    ref_parts(s, sn, &sh, &sc);
    if ((pc == SIZE_MAX) != (sc == SIZE_MAX)) return false;
    size_t nsl = pc == SIZE_MAX ? 0 : pc;
    if (pc != SIZE_MAX && (pc != sc || memcmp(p, s, nsl) != 0)) return false;
    size_t pr = pc == SIZE_MAX ? 0 : pc + 1, sr = sc == SIZE_MAX ? 0 : sc + 1;
    return ref_match_rest(p + pr, pn - pr, s + sr, sn - sr);
}

static bool ref_member(const char *s, size_t n, const char *u, size_t un)
{
    size_t hash, colon;
    ref_parts(s, n, &hash, &colon);
    if (un == 0 || hash == n) return false;
    size_t a = hash + 1;
    for (size_t i = a; i <= n; i++) {
        if (i == n || s[i] == ',') {
            if (i - a == un && memcmp(s + a, u, un) == 0) return true;
            a = i + 1;
        }
    }
    return false;
}

/* ---- checks ------------------------------------------------------------- */

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (!d) abort();
    if (n) memcpy(d, p, n);
    return d;
}

static void check_user(const char *s, size_t n, const char *u, size_t un)
{
    char *c = malloc(un ? un : 1);
    if (!c) abort();
    if (un) memcpy(c, u, un);
    int r = hr_chan_user_allowed(s, n, c, un);
    check(r == (ref_member(s, n, c, un) ? 1 : 0));
    free(c);
}

/* Checks on one string as a name and as a pattern; returns the pattern
 * verdict. */
static int check_one(const char *s, size_t n, bool *is_pattern)
{
    bool rp, isp = true, dummy;
    int want_name = ref_validate(s, n, false, &dummy);
    int want_pat = ref_validate(s, n, true, &rp);
    int r = hr_chan_validate(s, n, 0);
    check(r == want_name);
    check(hr_chan_validate(s, n, n) == want_name);
    if (n > 1) check(hr_chan_validate(s, n, n - 1) == HR_CHAN_E_TOO_LONG);
    check(hr_chan_validate_pattern(s, n, 0, &isp) == want_pat);
    check(isp == rp);
    check(hr_chan_validate_pattern(s, n, n, NULL) == want_pat);
    if (n > 1) check(hr_chan_validate_pattern(s, n, n - 1, &isp) == HR_CHAN_E_TOO_LONG);
    /* a name is valid iff it is a valid pattern without wildcards */
    check((want_name == HR_CHAN_OK) == (want_pat == HR_CHAN_OK && !rp));
    check(hr_chan_error_text(r) != NULL);

    const char *ns = NULL;
    size_t nsl = SIZE_MAX;
    hr_chan_namespace(s, n, &ns, &nsl);
    check(ns != NULL && nsl < n + 1);
    if (nsl) check(ns == s && s[nsl] == ':');

    if (want_name == HR_CHAN_OK) {
        check(hr_chan_match(s, n, s, n));
        size_t hash, colon;
        ref_parts(s, n, &hash, &colon);
        if (hash == n) {
            check(hr_chan_user_allowed(s, n, "x", 1) == -1);
        } else {
            check(hr_chan_user_allowed(s, n, "x", 0) == 0);
            check_user(s, n, s + hash + 1, n - hash - 1); /* the whole list */
            size_t a = hash + 1;
            for (size_t i = a; i <= n; i++) {
                if (i < n && s[i] != ',') continue;
                check(hr_chan_user_allowed(s, n, s + a, i - a) == 1);
                check_user(s, n, s + a, i - a - 1);  /* shorter */
                check_user(s, n, s + a + 1, i - a - 1); /* suffix */
                a = i + 1;
            }
        }
    }
    *is_pattern = rp;
    return want_pat;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *z = memchr(data, 0, size);
    size_t pn = z ? (size_t)(z - data) : size;
    const uint8_t *nd = z ? z + 1 : data;
    size_t nn = z ? size - pn - 1 : size;
    char *p = dup_exact(data, pn), *s = dup_exact(nd, nn);

    bool p_wild, s_wild;
    int pr = check_one(p, pn, &p_wild);
    int sr = check_one(s, nn, &s_wild);
    if (pr == HR_CHAN_OK && sr == HR_CHAN_OK && !s_wild) {
        bool m = hr_chan_match(p, pn, s, nn);
        check(m == ref_match(p, pn, s, nn));
        if (!p_wild) check(m == (pn == nn && memcmp(p, s, pn) == 0));
    }
    free(p);
    free(s);
    return 0;
}
