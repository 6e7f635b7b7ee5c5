/* json.c - owns the RFC 8259 string escaper shared by every JSON writer
 * (the native protocol, the server API, HTTP error bodies). Writing is done
 * by hand into hr_buf because the hot paths (pushes, replies) append to
 * buffers they already hold; jansson is used only for parsing. The
 * canonical-form check (hr_json_is_canonical) is a scanner, not a parser: it
 * accepts a subset of what hr_json_dump writes and refuses everything else. */
#include "core/json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p[0..avail) (*ok = true), or of
 * its maximal ill-formed prefix (*ok = false, at least 1 byte), which is
 * replaced by one U+FFFD (the Unicode "maximal subpart" practice). Same
 * ranges as codec/utf8.c: no overlongs, surrogates or values past U+10FFFF. */
static size_t utf8_seq(const uint8_t *p, size_t avail, bool *ok)
{
    uint8_t b = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    *ok = false;
    if (b < 0xC2) return 1; /* stray continuation byte or overlong lead */
    if (b < 0xE0) {
        need = 1;
    } else if (b < 0xF0) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;
        else if (b == 0xED) hi = 0x9F;
    } else if (b < 0xF5) {
        need = 3;
        if (b == 0xF0) lo = 0x90;
        else if (b == 0xF4) hi = 0x8F;
    } else {
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= avail || p[i] < lo || p[i] > hi) return i;
        lo = 0x80;
        hi = 0xBF;
    }
    *ok = true;
    return i;
}

void hr_json_append_string(hr_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0; /* p[run..i) is pending verbatim output */
    if (!p) {
        p = (const uint8_t *)"";
        n = 0;
    }
    hr_buf_reserve(out, n + 2);
    hr_buf_append(out, "\"", 1);
    while (i < n) {
        uint8_t b = p[i];
        if (b >= 0x20 && b < 0x80 && b != '"' && b != '\\') {
            i++;
            continue;
        }
        hr_buf_append(out, p + run, i - run);
        if (b >= 0x80) {
            bool ok;
            size_t l = utf8_seq(p + i, n - i, &ok);
            if (ok) hr_buf_append(out, p + i, l);
            else hr_buf_append(out, "\xEF\xBF\xBD", 3);
            i += l;
            run = i;
            continue;
        }
        char esc[6] = {'\\', 0, '0', '0', hex[b >> 4], hex[b & 15]};
        size_t el = 2;
        switch (b) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: esc[1] = 'u'; el = 6; break;
        }
        hr_buf_append(out, esc, el);
        run = ++i;
    }
    hr_buf_append(out, p + run, i - run);
    hr_buf_append(out, "\"", 1);
}


/* The shortest "%.Ng" text of d that reads back as exactly d, written as a
 * JSON real (with ".0" when it would otherwise look like an integer). */
static void append_real(hr_buf *out, double d)
{
    char t[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(t, sizeof(t), "%.*g", prec, d);
        if (strtod(t, NULL) == d) break;
    }
    hr_buf_append(out, t, (size_t)n);
    if (!strpbrk(t, ".eEn")) hr_buf_append(out, ".0", 2); /* "n": inf/nan never come from parsed JSON */
}

void hr_json_dump(const json_t *v, hr_buf *out)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        bool first = true;
        hr_buf_append(out, "{", 1);
        json_object_foreach((json_t *)v, key, val) {
            if (!first) hr_buf_append(out, ",", 1);
            first = false;
            hr_json_append_string(out, key, strlen(key));
            hr_buf_append(out, ":", 1);
            hr_json_dump(val, out);
        }
        hr_buf_append(out, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        hr_buf_append(out, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) hr_buf_append(out, ",", 1);
            hr_json_dump(json_array_get(v, i), out);
        }
        hr_buf_append(out, "]", 1);
        break;
    }
    case JSON_STRING: hr_json_append_string(out, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: hr_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: append_real(out, json_real_value(v)); break;
    case JSON_TRUE: hr_buf_append(out, "true", 4); break;
    case JSON_FALSE: hr_buf_append(out, "false", 5); break;
    case JSON_NULL: hr_buf_append(out, "null", 4); break;
    }
}

char *hr_json_dumps(const json_t *v, size_t *len)
{
    hr_buf b = HR_BUF_INIT;
    hr_json_dump(v, &b);
    char *s = malloc(b.len + 1);
    if (!s) abort();
    memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    *len = b.len;
    hr_buf_free(&b);
    return s;
}

/* ---- the canonical-form check (json.h) ---------------------------------------------- */

typedef struct canon {
    const char *p, *end;
    hr_json_member *m;  /* the keys sought in the objects at depth `at` (their spans, found counts) */
    size_t nm;
    int at;
    bool ws;            /* JSON whitespace allowed between tokens (hr_json_compact_members) */
    size_t nws;         /* whitespace bytes skipped so far */
} canon;

static bool canon_value(canon *c, int depth);

/* A string whose bytes hr_json_append_string would write unchanged; its
 * body (between the quotes) in *b, *bl. */
static bool canon_string(canon *c, const char **b, size_t *bl)
{
    if (c->p == c->end || *c->p != '"') return false;
    const char *s = ++c->p;
    while (c->p < c->end) {
        uint8_t ch = (uint8_t)*c->p;
        if (ch == '"') {
            *b = s;
            *bl = (size_t)(c->p++ - s);
            return true;
        }
        if (ch < 0x20 || ch >= 0x80) return false; /* controls are refused, UTF-8 goes the long way */
        if (ch == '\\') {
            if (c->p + 1 == c->end || !strchr("\"\\bfnrt", c->p[1]) || c->p[1] == '\0') return false;
            c->p++;
        }
        c->p++;
    }
    return false;
}

/* An integer jansson reads as a json_int_t and writes back the same. */
static bool canon_integer(canon *c)
{
    bool neg = *c->p == '-';
    if (neg) c->p++;
    const char *d = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    size_t nd = (size_t)(c->p - d);
    if (nd == 0 || (d[0] == '0' && (nd > 1 || neg))) return false;
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')) return false; /* a real */
    return nd < 19 || (nd == 19 && memcmp(d, "9223372036854775807", 19) <= 0);
}

/* Whitespace between tokens, where c allows it (counted). */
static void skip_ws(canon *c)
{
    if (!c->ws) return;
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
        c->nws++;
    }
}

static bool canon_word(canon *c, const char *w, size_t n)
{
    skip_ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    c->p += n;
    return true;
}

/* The member of c->m named k[0..n), or NULL. */
static hr_json_member *sought_member(const canon *c, const char *k, size_t n)
{
    for (size_t i = 0; i < c->nm; i++)
        if (strlen(c->m[i].key) == n && memcmp(c->m[i].key, k, n) == 0) return &c->m[i];
    return NULL;
}

static bool canon_object(canon *c, int depth)
{
    const char *key[HR_JSON_CANON_MAX_KEYS];
    size_t klen[HR_JSON_CANON_MAX_KEYS], nk = 0;
    c->p++;
    if (canon_word(c, "}", 1)) return true;
    for (;;) {
        skip_ws(c);
        if (nk == HR_JSON_CANON_MAX_KEYS || !canon_string(c, &key[nk], &klen[nk])) return false;
        for (size_t i = 0; i < nk; i++)
            if (klen[i] == klen[nk] && memcmp(key[i], key[nk], klen[i]) == 0) return false; /* jansson keeps one */
        hr_json_member *sought = depth == c->at ? sought_member(c, key[nk], klen[nk]) : NULL;
        nk++;
        if (!canon_word(c, ":", 1)) return false;
        skip_ws(c);
        const char *vb = c->p;
        size_t nws = c->nws;
        if (!canon_value(c, depth + 1)) return false;
        if (sought) {
            sought->value = vb;
            sought->len = (size_t)(c->p - vb);
            sought->spaced = c->nws != nws;
            sought->found++;
        }
        if (canon_word(c, "}", 1)) return true;
        if (!canon_word(c, ",", 1)) return false;
    }
}

static bool canon_array(canon *c, int depth)
{
    c->p++;
    if (canon_word(c, "]", 1)) return true;
    for (;;) {
        if (!canon_value(c, depth + 1)) return false;
        if (canon_word(c, "]", 1)) return true;
        if (!canon_word(c, ",", 1)) return false;
    }
}

static bool canon_value(canon *c, int depth)
{
    skip_ws(c);
    if (c->p == c->end || depth > HR_JSON_CANON_MAX_DEPTH) return false;
    const char *b;
    size_t bl;
    switch (*c->p) {
    case '{': return canon_object(c, depth);
    case '[': return canon_array(c, depth);
    case '"': return canon_string(c, &b, &bl);
    case 't': return canon_word(c, "true", 4);
    case 'f': return canon_word(c, "false", 5);
    case 'n': return canon_word(c, "null", 4);
    default: return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) && canon_integer(c);
    }
}

bool hr_json_is_canonical(const char *s, size_t n)
{
    if (!s) return false; /* (no arithmetic on a NULL s) */
    canon c = {.p = s, .end = s + n};
    return canon_value(&c, 0) && c.p == c.end;
}

static void members_clear(hr_json_member *m, size_t nm)
{
    for (size_t i = 0; i < nm; i++) m[i] = (hr_json_member){.key = m[i].key};
}

/* hr_json_is_canonical for an object s[0..n), with the spans of m's keys
 * in the objects at depth `at` (0: s's own members); none when false. */
static bool canon_members(const char *s, size_t n, hr_json_member *m, size_t nm, int at, bool ws)
{
    members_clear(m, nm);
    if (!s || !n) return false; /* (no arithmetic on a NULL s: an empty body) */
    canon c = {.p = s, .end = s + n, .m = m, .nm = nm, .at = at, .ws = ws};
    skip_ws(&c);
    if (c.p < c.end && *c.p == '{' && canon_value(&c, 0)) {
        skip_ws(&c);
        if (c.p == c.end) return true;
    }
    members_clear(m, nm); /* nothing found */
    return false;
}

bool hr_json_canonical_inner(const char *s, size_t n, const char *key, const char **vb, size_t *vn)
{
    hr_json_member m = {.key = key};
    bool ok = canon_members(s, n, &m, 1, 1, false);
    *vb = ok && m.found == 1 ? m.value : NULL;
    *vn = ok && m.found == 1 ? m.len : 0;
    return ok;
}

bool hr_json_canonical_members(const char *s, size_t n, hr_json_member *m, size_t nm)
{
    return canon_members(s, n, m, nm, 0, false);
}

bool hr_json_compact_members(const char *s, size_t n, hr_json_member *m, size_t nm)
{
    return canon_members(s, n, m, nm, 0, true);
}

size_t hr_json_compact(const char *s, size_t n, char *out)
{
    size_t o = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_string) {
            if (ch == '\\' && i + 1 < n) {
                out[o++] = ch;
                ch = s[++i];
            } else if (ch == '"') {
                in_string = false;
            }
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            continue;
        }
        out[o++] = ch;
    }
    return o;
}
