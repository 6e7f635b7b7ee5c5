/* channel_name.c - the channel-name grammar of hub/channel_name.h: validation
 * of names and subscription patterns, namespace extraction, wildcard matching
 * and user-limited channel checks. Pure functions: no allocation, no I/O,
 * every function linear in the lengths it is given.
 *
 * Precisions on top of the header's grammar:
 *   - Parts. The user list starts at the FIRST '#' and runs to the end of the
 *     name. The namespace is the part before the first ':' that comes before
 *     that '#' ("#google:42" is a personal channel in the default namespace,
 *     not namespace "#google"); ':' after it (or after the namespace ':') is
 *     an ordinary byte ("a::b" = namespace "a", rest ":b").
 *   - Segments. The namespace (when a ':' delimits one) and the rest are each
 *     split on '.'; every piece must be non-empty, and so must the namespace
 *     and the rest themselves: ".a", "a.", "a..b", ":x", "x:", "a.:b",
 *     "a:.b" are all HR_CHAN_E_SEGMENT. The user list is part of the rest and
 *     is split on '.' like everything else ("dm:#a..b" is a SEGMENT error).
 *   - Wildcards ('*' and '>', patterns only) must be a whole segment of the
 *     rest: never in the namespace ("*:x", "a*:x"), never inside a segment
 *     ("a*", "#*"), '>' only as the last segment, and never after the '#'
 *     ("dm:#alice.*"): a user list is always literal. Anything else is
 *     HR_CHAN_E_PATTERN, as is any '*' or '>' in a concrete name.
 *   - Users: the list after '#' is split on ','; each user is non-empty and
 *     holds no '#' ("dm:#", "dm:#a,,b", "dm:#a,", "dm:#a#b" are
 *     HR_CHAN_E_USERS). Users may contain '.', ':' and the other name bytes.
 *   - Matching: the namespaces must be byte-equal (a pattern without one only
 *     matches names without one: ">" does not match "chat:x"); then the
 *     rests are compared segment by segment; '*' matches any one segment,
 *     '>' one or more. A pattern without wildcards matches only the
 *     byte-identical name. Note: wildcards DO match segments of user-limited
 *     channels ("dm:*" matches "dm:#alice,bob"); whoever delivers through a
 *     pattern must check hr_chan_user_allowed on the concrete channel.
 *   - Error precedence when several apply: EMPTY, TOO_LONG (max_len counts
 *     bytes, 0 = no limit), CHARSET, SEGMENT, PATTERN, USERS.
 *   - hr_chan_namespace gives a slice of the name, or the static "" (length
 *     0) when the name has no namespace. */
#include "hub/channel_name.h"

#include <string.h>

const char *hr_chan_error_text(int err)
{
    switch (err) {
    case HR_CHAN_OK: return "ok";
    case HR_CHAN_E_EMPTY: return "empty channel name";
    case HR_CHAN_E_TOO_LONG: return "channel name too long";
    case HR_CHAN_E_CHARSET: return "forbidden byte in channel name";
    case HR_CHAN_E_PATTERN: return "misplaced wildcard ('*' and '>' must be whole segments, '>' last)";
    case HR_CHAN_E_SEGMENT: return "empty segment or namespace in channel name";
    case HR_CHAN_E_USERS: return "malformed user list after '#'";
    default: return hr_strerror(err);
    }
}

/* A byte allowed in a concrete name. */
static bool name_byte(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '_': case '-': case '=': case '@': case '.': case ':': case '#':
    case ',': case '/': case '!': case '~': case '+': case '$': case '%':
        return true;
    default:
        return false;
    }
}

static bool wild_byte(char c)
{
    return c == '*' || c == '>';
}

/* Where the parts of a name lie. */
typedef struct chan_parts {
    bool has_ns;   /* a ':' before any '#' delimits a namespace */
    size_t ns_len; /* namespace bytes [0, ns_len) */
    size_t rest;   /* the rest starts here (ns_len + 1, or 0) */
    size_t hash;   /* offset of the first '#', or len */
} chan_parts;

static void split_parts(const char *s, size_t len, chan_parts *p)
{
    const char *h = len ? memchr(s, '#', len) : NULL;
    p->hash = h ? (size_t)(h - s) : len;
    const char *c = p->hash ? memchr(s, ':', p->hash) : NULL;
    p->has_ns = c != NULL;
    p->ns_len = c ? (size_t)(c - s) : 0;
    p->rest = c ? p->ns_len + 1 : 0;
}

/* End (exclusive) of the '.'-segment starting at `at`, bounded by `end`. */
static size_t seg_end(const char *s, size_t at, size_t end)
{
    const char *d = at < end ? memchr(s + at, '.', end - at) : NULL;
    return d ? (size_t)(d - s) : end;
}

/* [a, b) is non-empty and has no empty '.'-segment. */
static bool segments_ok(const char *s, size_t a, size_t b)
{
    if (a >= b) return false;
    for (;;) {
        size_t e = seg_end(s, a, b);
        if (e == a) return false;
        if (e == b) return true;
        a = e + 1;
        if (a == b) return false; /* trailing '.' */
    }
}

/* Wildcards are well placed (patterns) or absent (names); sets *wild when a
 * wildcard segment is present. */
static bool wildcards_ok(const char *s, size_t len, const chan_parts *p, bool allow, bool *wild)
{
    *wild = false;
    for (size_t i = 0; i < p->ns_len; i++)
        if (wild_byte(s[i])) return false;
    size_t a = p->rest;
    while (a < len) {
        size_t e = seg_end(s, a, len);
        for (size_t i = a; i < e; i++) {
            if (!wild_byte(s[i])) continue;
            if (!allow || e - a != 1 || a > p->hash) return false;
            if (s[i] == '>' && e != len) return false;
            *wild = true;
        }
        a = e + 1;
    }
    return true;
}

/* The user list after the '#' at p->hash is well formed (true if none). */
static bool users_ok(const char *s, size_t len, const chan_parts *p)
{
    if (p->hash == len) return true;
    size_t start = p->hash + 1;
    for (size_t i = start; i <= len; i++) {
        if (i == len || s[i] == ',') {
            if (i == start) return false;
            start = i + 1;
        } else if (s[i] == '#') {
            return false;
        }
    }
    return true;
}

static int check(const char *s, size_t len, size_t max_len, bool allow_wild, bool *is_pattern)
{
    if (is_pattern) *is_pattern = false;
    if (len == 0) return HR_CHAN_E_EMPTY;
    if (max_len && len > max_len) return HR_CHAN_E_TOO_LONG;
    bool plain = true; /* no byte the later checks look at */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!name_byte(c) && !wild_byte((char)c)) return HR_CHAN_E_CHARSET;
        plain &= c != '.' && c != ':' && c != '#' && !wild_byte((char)c);
    }
    if (plain) return HR_CHAN_OK; /* one non-empty segment, no namespace, users or wildcard */
    chan_parts p;
    split_parts(s, len, &p);
    if (p.has_ns && !segments_ok(s, 0, p.ns_len)) return HR_CHAN_E_SEGMENT;
    if (!segments_ok(s, p.rest, len)) return HR_CHAN_E_SEGMENT;
    bool wild;
    if (!wildcards_ok(s, len, &p, allow_wild, &wild)) return HR_CHAN_E_PATTERN;
    if (!users_ok(s, len, &p)) return HR_CHAN_E_USERS;
    if (is_pattern) *is_pattern = wild;
    return HR_CHAN_OK;
}

int hr_chan_validate(const char *name, size_t len, size_t max_len)
{
    return check(name, len, max_len, false, NULL);
}

int hr_chan_validate_pattern(const char *pattern, size_t len, size_t max_len, bool *is_pattern)
{
    return check(pattern, len, max_len, true, is_pattern);
}

bool hr_chan_match(const char *pattern, size_t plen, const char *name, size_t nlen)
{
    chan_parts pp, np;
    split_parts(pattern, plen, &pp);
    split_parts(name, nlen, &np);
    if (pp.has_ns != np.has_ns || pp.ns_len != np.ns_len) return false;
    if (pp.ns_len && memcmp(pattern, name, pp.ns_len) != 0) return false;

    /* Both rests are non-empty for valid input; an empty one is read as one
     * empty segment, which keeps this memory-safe on anything. */
    size_t pi = pp.rest, ni = np.rest;
    for (;;) {
        size_t pe = seg_end(pattern, pi, plen), ne = seg_end(name, ni, nlen);
        size_t pl = pe - pi;
        if (pl == 1 && pattern[pi] == '>' && pe == plen) return true; /* name has >= 1 left */
        if (!(pl == 1 && pattern[pi] == '*')) {
            if (pl != ne - ni || (pl && memcmp(pattern + pi, name + ni, pl) != 0)) return false;
        }
        bool pmore = pe < plen, nmore = ne < nlen;
        if (!pmore || !nmore) return pmore == nmore;
        pi = pe + 1;
        ni = ne + 1;
    }
}

void hr_chan_namespace(const char *name, size_t len, const char **ns, size_t *ns_len)
{
    chan_parts p;
    split_parts(name, len, &p);
    *ns = p.ns_len ? name : "";
    *ns_len = p.ns_len;
}

int hr_chan_user_allowed(const char *name, size_t len, const char *user, size_t ulen)
{
    const char *h = len ? memchr(name, '#', len) : NULL;
    if (!h) return -1;
    if (ulen == 0 || memchr(user, '#', ulen) || memchr(user, ',', ulen)) return 0;
    const char *end = name + len, *a = h + 1;
    for (;;) {
        const char *c = a < end ? memchr(a, ',', (size_t)(end - a)) : NULL;
        const char *e = c ? c : end;
        if ((size_t)(e - a) == ulen && memcmp(a, user, ulen) == 0) return 1;
        if (e == end) return 0;
        a = e + 1;
    }
}
