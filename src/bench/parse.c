/* parse.c - payload, HTTP response head, SSE and URL helpers for
 * `herald bench` (see parse.h). */
#include "bench/parse.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- payload ------------------------------------------------------------- */

static size_t digits10(uint64_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

size_t hr_bench_payload_min_len(uint64_t t, uint64_t c, uint64_t s)
{
    /* {"t":  ,"c":  ,"s":  ,"p":"  "}  */
    return 5 + digits10(t) + 5 + digits10(c) + 5 + digits10(s) + 6 + 2;
}

static char *put_u64(char *p, uint64_t v) { return p + hr_u64_dec(p, v); }

size_t hr_bench_payload_build(char *out, size_t cap, uint64_t t, uint64_t c, uint64_t s, size_t target)
{
    size_t min = hr_bench_payload_min_len(t, c, s);
    size_t len = target > min ? target : min;
    if (len > cap) return 0;
    char *p = out;
    memcpy(p, "{\"t\":", 5);
    p = put_u64(p + 5, t);
    memcpy(p, ",\"c\":", 5);
    p = put_u64(p + 5, c);
    memcpy(p, ",\"s\":", 5);
    p = put_u64(p + 5, s);
    memcpy(p, ",\"p\":\"", 6);
    p += 6;
    size_t pad = len - min;
    memset(p, 'x', pad);
    p += pad;
    *p++ = '"';
    *p++ = '}';
    return (size_t)(p - out);
}

/* Digits at *pp (at most 19, so no overflow). */
static bool take_u64(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    int n = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++n > 19) return false;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (!n) return false;
    *pp = p;
    *out = v;
    return true;
}

static bool take_lit(const uint8_t **pp, const uint8_t *end, const char *lit, size_t n)
{
    if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0) return false;
    *pp += n;
    return true;
}

/* Slow path: "key" followed by optional blanks, ':', optional blanks, digits. */
static bool find_key(const uint8_t *p, size_t n, char key, uint64_t *out)
{
    const uint8_t *end = p + n;
    uint8_t pat[3] = {'"', (uint8_t)key, '"'};
    const uint8_t *q = p;
    while (q < end) {
        const uint8_t *hit = memmem(q, (size_t)(end - q), pat, 3);
        if (!hit) return false;
        const uint8_t *v = hit + 3;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
        if (v < end && *v == ':') {
            v++;
            while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
            if (take_u64(&v, end, out)) return true;
        }
        q = hit + 1;
    }
    return false;
}

bool hr_bench_payload_parse(const uint8_t *p, size_t n, uint64_t *t, uint64_t *c, uint64_t *s)
{
    const uint8_t *q = p, *end = p + n;
    if (HR_LIKELY(take_lit(&q, end, "{\"t\":", 5) && take_u64(&q, end, t) && take_lit(&q, end, ",\"c\":", 5) &&
                  take_u64(&q, end, c) && take_lit(&q, end, ",\"s\":", 5) && take_u64(&q, end, s)))
        return true;
    return find_key(p, n, 't', t) && find_key(p, n, 'c', c) && find_key(p, n, 's', s);
}

/* ---- HTTP/1.1 responses --------------------------------------------------- */

bool hr_bench_header(const char *head, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *end = head + len;
    const char *p = memchr(head, '\n', len);
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && (size_t)(colon - line) == nlen && strncasecmp(line, name, nlen) == 0) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *val = v;
            *vlen = (size_t)(ve - v);
            return true;
        }
        p = eol < end ? eol : NULL;
    }
    return false;
}

bool hr_bench_has_token(const char *v, size_t n, const char *tok)
{
    size_t t = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == t && strncasecmp(v + s, tok, t) == 0) return true;
    }
    return false;
}

int hr_bench_parse_response(const char *buf, size_t len, hr_bench_resp *r)
{
    /* the head ends at the first empty line (CRLF CRLF, or LF LF) */
    size_t head = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 < len && buf[i + 1] == '\n') {
            head = i + 2;
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            head = i + 3;
            break;
        }
    }
    if (!head) {
        if (len >= 9 && memcmp(buf, "HTTP/1.", 7) != 0) return HR_ERR_PROTO;
        return 0;
    }
    if (head < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ')
        return HR_ERR_PROTO;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') return HR_ERR_PROTO;
        st = st * 10 + (buf[i] - '0');
    }
    if (st < 100 || st > 599) return HR_ERR_PROTO;
    memset(r, 0, sizeof(*r));
    r->status = st;
    r->head_len = head;
    r->content_length = -1;
    const char *v;
    size_t vn;
    if (hr_bench_header(buf, head, "content-length", &v, &vn)) {
        if (vn == 0 || vn > 18) return HR_ERR_PROTO;
        int64_t cl = 0;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9') return HR_ERR_PROTO;
            cl = cl * 10 + (v[i] - '0');
        }
        r->content_length = cl;
    }
    if (hr_bench_header(buf, head, "transfer-encoding", &v, &vn)) r->chunked = hr_bench_has_token(v, vn, "chunked");
    if (hr_bench_header(buf, head, "connection", &v, &vn)) r->conn_close = hr_bench_has_token(v, vn, "close");
    return 1;
}

/* ---- Server-Sent Events --------------------------------------------------- */

size_t hr_bench_sse_parse(const uint8_t *buf, size_t len, hr_bench_sse_cb cb, void *ctx, hr_buf *scratch)
{
    size_t pos = 0, consumed = 0;
    const uint8_t *d1 = NULL;
    size_t d1len = 0;
    unsigned ndata = 0;
    bool other_type = false; /* "event: X" with X other than message: not for onmessage */
    while (pos < len) {
        size_t e = pos;
        while (e < len && buf[e] != '\n' && buf[e] != '\r') e++;
        if (e == len) break;                      /* no line end yet */
        size_t next;
        if (buf[e] == '\r') {
            if (e + 1 == len) break;              /* an LF may follow */
            next = buf[e + 1] == '\n' ? e + 2 : e + 1;
        } else {
            next = e + 1;
        }
        const uint8_t *line = buf + pos;
        size_t ln = e - pos;
        pos = next;
        if (ln == 0) { /* end of an event */
            if (ndata == 1 && !other_type) cb(ctx, d1, d1len);
            else if (ndata > 1 && !other_type) cb(ctx, scratch->data, scratch->len);
            ndata = 0;
            other_type = false;
            consumed = next;
            continue;
        }
        if (line[0] == ':') continue; /* comment */
        const uint8_t *colon = memchr(line, ':', ln);
        size_t fl = colon ? (size_t)(colon - line) : ln;
        const uint8_t *val = colon ? colon + 1 : line + ln;
        size_t vl = (size_t)(line + ln - val);
        if (vl && val[0] == ' ') {
            val++;
            vl--;
        }
        if (fl == 5 && memcmp(line, "event", 5) == 0) {
            other_type = vl != 0 && !(vl == 7 && memcmp(val, "message", 7) == 0);
            continue;
        }
        if (fl != 4 || memcmp(line, "data", 4) != 0) continue;
        if (ndata == 0) {
            d1 = val;
            d1len = vl;
        } else {
            if (ndata == 1) {
                scratch->len = 0;
                hr_buf_append(scratch, d1, d1len);
            }
            hr_buf_append(scratch, "\n", 1);
            hr_buf_append(scratch, val, vl);
        }
        ndata++;
    }
    return consumed;
}

/* ---- URLs ----------------------------------------------------------------- */

size_t hr_bench_urlencode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                     ch == '_' || ch == '.' || ch == '~';
        size_t need = plain ? 1 : 3;
        if (w + need + 1 > cap) return 0;
        if (plain) {
            out[w++] = (char)ch;
        } else {
            out[w++] = '%';
            out[w++] = hex[ch >> 4];
            out[w++] = hex[ch & 15];
        }
    }
    if (w + 1 > cap) return 0;
    out[w] = '\0';
    return w;
}

int hr_bench_pusher_msg(const uint8_t *p, size_t len, char *out, size_t cap, size_t *n)
{
    static const char ok[] = "{\"event\":\"pusher_internal:subscription_succeeded\"";
    if (len >= sizeof(ok) - 1 && !memcmp(p, ok, sizeof(ok) - 1)) return 2;
    if (len > 10 && !memcmp(p, "{\"event\":\"pusher", 16)) return 0;
    static const char key[] = ",\"data\":\"";
    const uint8_t *d = memmem(p, len, key, sizeof(key) - 1);
    if (!d) return 0;
    size_t i = (size_t)(d - p) + sizeof(key) - 1, o = 0;
    for (; i < len && p[i] != '"'; i++) {
        if (p[i] == '\\' && i + 1 < len) i++; /* the payload's escapes are \" and \\ only */
        if (o == cap) return 0;
        out[o++] = (char)p[i];
    }
    *n = o;
    return i < len;
}
