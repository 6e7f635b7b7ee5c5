/* forwarded.c - X-Forwarded-For / Forwarded client address (see forwarded.h). */
#include "codec/forwarded.h"

#include <string.h>

void hr_fwd_init(hr_fwd *f, const hr_cidr_set *trusted)
{
    memset(f, 0, sizeof(*f));
    f->trusted = trusted;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **s, size_t *n)
{
    while (*n && is_ows((*s)[0])) (*s)++, (*n)--;
    while (*n && is_ows((*s)[*n - 1])) (*n)--;
}

/* ":PORT" (digits) or, in Forwarded, an obfuscated port ("_abc"). */
static bool port_ok(const char *p, size_t n)
{
    if (n == 0 || n > 32) return false;
    if (p[0] == '_') {
        for (size_t i = 1; i < n; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-'))
                return false;
        }
        return n > 1;
    }
    if (n > 5) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    return v <= 65535;
}

int hr_fwd_parse_node(const char *s, size_t len, hr_ipaddr *out)
{
    if (len == 0) return HR_ERR_INVALID;
    if (s[0] == '[') {
        const char *end = memchr(s, ']', len);
        if (!end) return HR_ERR_INVALID;
        size_t in = (size_t)(end - s - 1), after = len - in - 2;
        if (after && (end[1] != ':' || !port_ok(end + 2, after - 1))) return HR_ERR_INVALID;
        if (!memchr(s + 1, ':', in)) return HR_ERR_INVALID; /* brackets are for IPv6 */
        return hr_ipaddr_parse(s + 1, in, out);
    }
    const char *c1 = memchr(s, ':', len);
    if (!c1) return hr_ipaddr_parse(s, len, out);
    if (!memchr(c1 + 1, ':', len - (size_t)(c1 - s) - 1)) { /* one colon: IPv4:port */
        size_t al = (size_t)(c1 - s);
        if (!port_ok(c1 + 1, len - al - 1)) return HR_ERR_INVALID;
        int rc = hr_ipaddr_parse(s, al, out);
        return rc == 0 && out->v4 ? 0 : HR_ERR_INVALID;
    }
    return hr_ipaddr_parse(s, len, out); /* a bare IPv6 address */
}

/* One entry, in list order. */
static void entry(hr_fwd *f, bool ok, const hr_ipaddr *a)
{
    if (f->entries++ == 0) {
        f->first_ok = ok;
        if (ok) f->first = *a;
    }
    if (ok && hr_cidr_set_match(f->trusted, a)) return;
    f->have_untrusted = true;
    f->untrusted_ok = ok;
    if (ok) f->untrusted = *a;
}

void hr_fwd_feed_xff(hr_fwd *f, const char *v, size_t len)
{
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && v[i] != ',') i++;
        const char *e = v + start;
        size_t n = i - start;
        trim(&e, &n);
        if (n) {
            hr_ipaddr a;
            bool ok = hr_fwd_parse_node(e, n, &a) == 0;
            entry(f, ok, ok ? &a : NULL);
        }
        i++; /* past the comma (or the end) */
    }
}

/* The for= node of one forwarded-element e[0..n): 0 with *a set, or -1. */
static int element_for(const char *e, size_t n, hr_ipaddr *a)
{
    size_t i = 0;
    int rc = -1;
    bool seen = false;
    while (i < n) {
        /* one pair up to ';' outside quotes */
        size_t start = i;
        bool q = false;
        for (; i < n; i++) {
            if (q && e[i] == '\\') { i++; continue; }
            if (e[i] == '"') q = !q;
            else if (!q && e[i] == ';') break;
        }
        if (i > n) i = n; /* a trailing backslash inside quotes */
        const char *p = e + start;
        size_t pl = i - start;
        i++;
        trim(&p, &pl);
        if (pl < 4 || !((p[0] | 0x20) == 'f' && (p[1] | 0x20) == 'o' && (p[2] | 0x20) == 'r' && p[3] == '='))
            continue;
        if (seen) return -1; /* for= twice in one element */
        seen = true;
        const char *val = p + 4;
        size_t vl = pl - 4;
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val++;
            vl -= 2;
            if (memchr(val, '\\', vl)) continue; /* escapes never occur in an address */
        } else if (memchr(val, '"', vl)) {
            continue;
        }
        if (hr_fwd_parse_node(val, vl, a) == 0) rc = 0;
    }
    return rc;
}

void hr_fwd_feed_forwarded(hr_fwd *f, const char *v, size_t len)
{
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        bool q = false;
        for (; i < len; i++) {
            if (q && v[i] == '\\') { i++; continue; }
            if (v[i] == '"') q = !q;
            else if (!q && v[i] == ',') break;
        }
        if (i > len) i = len; /* a trailing backslash inside quotes */
        const char *e = v + start;
        size_t n = i - start;
        trim(&e, &n);
        if (n) {
            hr_ipaddr a;
            bool ok = element_for(e, n, &a) == 0;
            entry(f, ok, ok ? &a : NULL);
        }
        i++;
    }
}

int hr_fwd_result(const hr_fwd *f, hr_ipaddr *out)
{
    if (!f->entries) return HR_FWD_NONE;
    bool ok = f->have_untrusted ? f->untrusted_ok : f->first_ok;
    if (!ok) return HR_FWD_UNKNOWN;
    *out = f->have_untrusted ? f->untrusted : f->first;
    return HR_FWD_ADDR;
}
