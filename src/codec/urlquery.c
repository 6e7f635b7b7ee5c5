/* urlquery.c - the URL query-string codec (see urlquery.h). */
#include "codec/urlquery.h"
#include "core/common.h"

#include <string.h>

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

ssize_t hr_url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (n - i < 3) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o == cap) return -1;
        out[o++] = ch;
    }
    return (ssize_t)o;
}

/* Are the escapes of s[0..n) well-formed? */
static bool escapes_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '%' && (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)) return false;
    return true;
}

int hr_query_param_next(const char *q, size_t n, size_t *pos, hr_query_param *p)
{
    while (q && *pos < n) {
        size_t start = *pos;
        const char *amp = memchr(q + start, '&', n - start);
        size_t end = amp ? (size_t)(amp - q) : n;
        *pos = amp ? end + 1 : n;
        if (end == start) continue;
        const char *eq = memchr(q + start, '=', end - start);
        size_t kend = eq ? (size_t)(eq - q) : end;
        *p = (hr_query_param){.name = q + start, .nlen = kend - start, .value = eq ? eq + 1 : q + end,
                              .vlen = eq ? end - kend - 1 : 0, .has_value = eq != NULL};
        return 1;
    }
    return 0;
}

int hr_query_next(const char *q, size_t n, size_t *pos, const char *name, char *out, size_t cap, size_t *len)
{
    size_t nlen = strlen(name);
    char key[64];
    if (nlen >= sizeof(key)) return 0;
    hr_query_param p;
    while (hr_query_param_next(q, n, pos, &p)) {
        /* a name that does not decode into nlen bytes (too long, or a
         * malformed escape) is some other parameter: not ours to judge */
        ssize_t klen = hr_url_decode(p.name, p.nlen, key, nlen);
        if (klen != (ssize_t)nlen || memcmp(key, name, nlen) != 0) continue;
        if (!escapes_ok(p.value, p.vlen)) return HR_ERR_PROTO;
        ssize_t vlen = hr_url_decode(p.value, p.vlen, out, cap);
        if (vlen < 0) return HR_ERR_TOO_BIG;
        *len = (size_t)vlen;
        return 1;
    }
    return 0;
}
