/* resp.c - RESP2/RESP3 parser and serializer (see resp.h). */
#include "codec/resp.h"

#include <stdarg.h>
#include <string.h>

#define MAX_LINE (64 * 1024) /* simple strings, errors, numbers */

typedef struct rparser {
    const uint8_t *buf;
    size_t len, pos;
    const hr_resp_limits *lim;
    size_t count;         /* values counted (pass 1) */
    hr_resp *nodes;       /* pass 2: the array being filled */
    size_t used;
} rparser;

/* The line starting at p->pos (without CRLF): its length, or an error. */
static int line(rparser *p, const char **s, size_t *n)
{
    const uint8_t *start = p->buf + p->pos;
    size_t avail = p->len - p->pos;
    const uint8_t *cr = memchr(start, '\r', avail);
    /* a line longer than MAX_LINE is malformed, whether or not its end has arrived */
    if (!cr) return avail > MAX_LINE ? HR_ERR_PROTO : HR_ERR_AGAIN;
    size_t l = (size_t)(cr - start);
    if (l > MAX_LINE) return HR_ERR_PROTO;
    if (l + 1 >= avail) return HR_ERR_AGAIN;
    if (cr[1] != '\n') return HR_ERR_PROTO;
    *s = (const char *)start;
    *n = l;
    p->pos += l + 2;
    return 0;
}

static int parse_i64(const char *s, size_t n, int64_t *v)
{
    if (n == 0 || n > 20) return HR_ERR_PROTO;
    bool neg = false;
    size_t i = 0;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i = 1;
        if (n == 1) return HR_ERR_PROTO;
    }
    uint64_t acc = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return HR_ERR_PROTO;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (acc > (UINT64_MAX - d) / 10) return HR_ERR_PROTO;
        acc = acc * 10 + d;
    }
    if (neg ? acc > (uint64_t)INT64_MAX + 1 : acc > (uint64_t)INT64_MAX) return HR_ERR_PROTO;
    *v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}

static int value(rparser *p, size_t depth, hr_resp *into);

/* An aggregate of m values: pass 1 counts them, pass 2 lays them out
 * contiguously (children first reserved, then each filled). */
static int aggregate(rparser *p, size_t depth, hr_resp *r, size_t m)
{
    if (depth + 1 > p->lim->max_depth) return HR_ERR_TOO_BIG;
    if (m > p->lim->max_elems || p->count + m > p->lim->max_elems) return HR_ERR_TOO_BIG;
    p->count += m;
    hr_resp *kids = NULL;
    if (p->nodes) {
        kids = &p->nodes[p->used];
        p->used += m;
        if (r) r->elem = kids;
    }
    for (size_t i = 0; i < m; i++) {
        int rc = value(p, depth + 1, kids ? &kids[i] : NULL);
        if (rc) return rc;
    }
    return 0;
}

static int value(rparser *p, size_t depth, hr_resp *r)
{
    if (p->pos >= p->len) return HR_ERR_AGAIN;
    char t = (char)p->buf[p->pos++];
    const char *s;
    size_t n;
    int rc = line(p, &s, &n);
    if (rc) return rc;
    int64_t v = 0;
    if (r) memset(r, 0, sizeof(*r));
    switch (t) {
    case '+':
    case '-':
        if (r) {
            r->type = t == '+' ? HR_RESP_SIMPLE : HR_RESP_ERROR;
            r->str = s;
            r->len = n;
        }
        return 0;
    case ',':
    case '(':
        if (n == 0) return HR_ERR_PROTO;
        if (r) {
            r->type = t == ',' ? HR_RESP_DOUBLE : HR_RESP_BIGNUM;
            r->str = s;
            r->len = n;
        }
        return 0;
    case ':':
        if ((rc = parse_i64(s, n, &v))) return rc;
        if (r) {
            r->type = HR_RESP_INT;
            r->integer = v;
        }
        return 0;
    case '_':
        if (n) return HR_ERR_PROTO;
        if (r) r->type = HR_RESP_NIL;
        return 0;
    case '#':
        if (n != 1 || (s[0] != 't' && s[0] != 'f')) return HR_ERR_PROTO;
        if (r) {
            r->type = HR_RESP_BOOL;
            r->integer = s[0] == 't';
        }
        return 0;
    case '$':
    case '!':
    case '=': {
        if ((rc = parse_i64(s, n, &v))) return rc;
        if (v == -1 && t == '$') {
            if (r) r->type = HR_RESP_NIL;
            return 0;
        }
        if (v < 0) return HR_ERR_PROTO;
        if ((uint64_t)v > p->lim->max_bulk) return HR_ERR_TOO_BIG;
        size_t bl = (size_t)v;
        if (p->len - p->pos < bl + 2) return HR_ERR_AGAIN;
        const char *body = (const char *)p->buf + p->pos;
        if (body[bl] != '\r' || body[bl + 1] != '\n') return HR_ERR_PROTO;
        p->pos += bl + 2;
        if (t == '=') { /* verbatim: "txt:" + text */
            if (bl < 4 || body[3] != ':') return HR_ERR_PROTO;
            body += 4;
            bl -= 4;
        }
        if (r) {
            r->type = t == '!' ? HR_RESP_ERROR : HR_RESP_BULK;
            r->str = body;
            r->len = bl;
        }
        return 0;
    }
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
        if ((rc = parse_i64(s, n, &v))) return rc;
        if (v == -1 && t == '*') {
            if (r) r->type = HR_RESP_NIL;
            return 0;
        }
        if (v < 0) return HR_ERR_PROTO;
        if ((uint64_t)v > p->lim->max_elems) return HR_ERR_TOO_BIG;
        size_t m = (size_t)v;
        if (t == '%' || t == '|') {
            if (m > p->lim->max_elems / 2) return HR_ERR_TOO_BIG;
            m *= 2;
        }
        if (t == '|') {
            /* an attribute: parse it into scratch (not kept), then the real value follows */
            rparser q = *p;
            q.nodes = NULL;
            if ((rc = aggregate(&q, depth, NULL, m))) return rc;
            p->pos = q.pos;
            p->count = q.count;
            return value(p, depth, r);
        }
        if (r) {
            r->type = t == '>' ? HR_RESP_PUSH : t == '%' ? HR_RESP_MAP : HR_RESP_ARRAY;
            r->n = t == '%' ? m / 2 : m;
        }
        return aggregate(p, depth, r, m);
    }
    default:
        return HR_ERR_PROTO;
    }
}

static const hr_resp_limits defaults = HR_RESP_LIMITS_DEFAULT;

int hr_resp_parse(const uint8_t *buf, size_t len, const hr_resp_limits *lim, hr_resp **out, size_t *consumed)
{
    if (!lim) lim = &defaults;
    rparser p = {buf, len, 0, lim, 1, NULL, 0};
    int rc = value(&p, 0, NULL);
    if (rc) return rc;
    size_t total = p.count; /* nodes, attributes' included (counted but not laid out) */
    rparser q = {buf, len, 0, lim, 1, hr_malloc(total * sizeof(hr_resp)), 1};
    rc = value(&q, 0, &q.nodes[0]);
    if (rc) { /* cannot happen: pass 1 accepted the same bytes */
        hr_free(q.nodes);
        return rc;
    }
    *out = q.nodes;
    *consumed = q.pos;
    return 0;
}

void hr_resp_free(hr_resp *r) { hr_free(r); }

/* ---- pub/sub messages, without a tree ------------------------------------------ */

/* A bulk string "$LEN\r\nBYTES\r\n" (LEN: 1 to 10 digits, within
 * max_bulk) at p->pos, whole; false for anything else. */
static bool msg_bulk(rparser *p, const char **s, size_t *n)
{
    const uint8_t *b = p->buf + p->pos;
    size_t avail = p->len - p->pos, i = 1, v = 0;
    if (avail < 4 || b[0] != '$') return false;
    while (i < avail && i <= 10 && b[i] >= '0' && b[i] <= '9') v = v * 10 + (size_t)(b[i++] - '0');
    if (i == 1 || v > p->lim->max_bulk || avail - i < 2 || b[i] != '\r' || b[i + 1] != '\n') return false;
    i += 2;
    if (avail - i < v + 2 || b[i + v] != '\r' || b[i + v + 1] != '\n') return false;
    *s = (const char *)b + i;
    *n = v;
    p->pos += i + v + 2;
    return true;
}

bool hr_resp_parse_message(const uint8_t *buf, size_t len, const hr_resp_limits *lim, hr_resp_message *m,
                           size_t *consumed)
{
    static const char msg[] = ">3\r\n$7\r\nmessage\r\n", pmsg[] = ">4\r\n$8\r\npmessage\r\n";
    if (!lim) lim = &defaults;
    bool pattern = len >= sizeof(pmsg) - 1 && memcmp(buf, pmsg, sizeof(pmsg) - 1) == 0;
    if (!pattern && (len < sizeof(msg) - 1 || memcmp(buf, msg, sizeof(msg) - 1) != 0)) return false;
    /* what hr_resp_parse would refuse under these limits stays its to refuse */
    if (lim->max_depth < 1 || lim->max_elems < (pattern ? 5u : 4u) || lim->max_bulk < 8) return false;
    rparser p = {buf, len, pattern ? sizeof(pmsg) - 1 : sizeof(msg) - 1, lim, 0, NULL, 0};
    memset(m, 0, sizeof(*m));
    if (pattern && !msg_bulk(&p, &m->pattern, &m->pattern_len)) return false;
    if (!msg_bulk(&p, &m->channel, &m->channel_len) || !msg_bulk(&p, &m->data, &m->data_len)) return false;
    *consumed = p.pos;
    return true;
}

/* ---- serializer -------------------------------------------------------------- */

/* "<type><n>\r\n" (a command's hot path: no printf). */
static size_t count_into(uint8_t *out, char type, size_t n)
{
    char t[24];
    size_t k = sizeof(t);
    t[--k] = '\n';
    t[--k] = '\r';
    do t[--k] = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    t[--k] = type;
    memcpy(out, t + k, sizeof(t) - k);
    return sizeof(t) - k;
}

/* The same, appended to b. */
static void append_count(hr_buf *b, char type, size_t n)
{
    b->len += count_into(hr_buf_reserve(b, 24), type, n);
}

void hr_resp_cmd_head(hr_buf *b, size_t argc) { append_count(b, '*', argc); }

void hr_resp_cmd_arg_head(hr_buf *b, size_t len) { append_count(b, '$', len); }

/* One reservation per argument: its head, bytes and CRLF written in place
 * (a publish script call has a few arguments per publication). */
void hr_resp_cmd_arg(hr_buf *b, const void *s, size_t len)
{
    uint8_t *p = hr_buf_reserve(b, len + 26);
    size_t k = count_into(p, '$', len);
    if (len) memcpy(p + k, s, len);
    p[k + len] = '\r';
    p[k + len + 1] = '\n';
    b->len += k + len + 2;
}

void hr_resp_cmd(hr_buf *b, size_t argc, const char *const *argv, const size_t *lens)
{
    hr_resp_cmd_head(b, argc);
    for (size_t i = 0; i < argc; i++) hr_resp_cmd_arg(b, argv[i], lens[i]);
}

void hr_resp_cmdv(hr_buf *b, ...)
{
    const char *argv[64];
    size_t lens[64], argc = 0;
    va_list ap;
    va_start(ap, b);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && argc < 64) {
        argv[argc] = s;
        lens[argc++] = strlen(s);
    }
    va_end(ap);
    hr_resp_cmd(b, argc, argv, lens);
}

bool hr_resp_is_str(const hr_resp *r) { return r && (r->type == HR_RESP_SIMPLE || r->type == HR_RESP_BULK); }

bool hr_resp_eq(const hr_resp *r, const char *s)
{
    size_t n = strlen(s);
    return hr_resp_is_str(r) && r->len == n && memcmp(r->str, s, n) == 0;
}

int hr_resp_int(const hr_resp *r, int64_t *v)
{
    if (!r) return HR_ERR_INVALID;
    if (r->type == HR_RESP_INT) {
        *v = r->integer;
        return 0;
    }
    if (hr_resp_is_str(r)) return parse_i64(r->str, r->len, v) ? HR_ERR_INVALID : 0;
    return HR_ERR_INVALID;
}
