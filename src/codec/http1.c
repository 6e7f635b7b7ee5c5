/* http1.c - HTTP/1.1 request-head parser and chunked body decoder (RFC 9112).
 * Owns request-line and field-line syntax, the message framing rules derived
 * from Content-Length / Transfer-Encoding (including the request-smuggling
 * defenses), Connection/Expect/Host interpretation, the incremental in-place
 * chunked decoder and the mapping of parser errors to HTTP statuses. */
#include "codec/http1.h"

#include <limits.h>
#include <string.h>

/* ---- character classes ------------------------------------------------ */

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Control characters other than HTAB, and DEL: never allowed in a field
 * value, a chunk extension or a trailer. obs-text (0x80-0xFF) is allowed. */
static bool is_bad_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Case-insensitive compare of s[0..len) with the NUL-terminated lit (the
 * lengths first: most names looked up differ in length). */
static bool ieq(const char *s, size_t len, const char *lit)
{
    if (strlen(lit) != len) return false;
    for (size_t i = 0; i < len; i++)
        if (to_lower((unsigned char)s[i]) != to_lower((unsigned char)lit[i])) return false;
    return true;
}

static bool eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Next non-empty element of a comma-separated list, OWS-trimmed. *pos is the
 * cursor into v[0..len). Returns false when the list is exhausted. */
static bool next_elem(const char *v, size_t len, size_t *pos, const char **e, size_t *elen)
{
    size_t i = *pos;
    while (i < len) {
        while (i < len && (is_ows((unsigned char)v[i]) || v[i] == ',')) i++;
        if (i >= len) break;
        size_t s = i;
        while (i < len && v[i] != ',') i++;
        size_t t = i;
        while (t > s && is_ows((unsigned char)v[t - 1])) t--;
        *pos = i;
        *e = v + s;
        *elen = t - s;
        return true;
    }
    *pos = len;
    return false;
}

/* ---- errors ------------------------------------------------------------ */

int hr_http_error_status(int err)
{
    switch (err) {
    case HR_HTTP_E_BAD_REQUEST: return 400;
    case HR_HTTP_E_HEADERS_TOO_LARGE: return 431;
    case HR_HTTP_E_TOO_MANY_HEADERS: return 431;
    case HR_HTTP_E_URI_TOO_LONG: return 414;
    case HR_HTTP_E_VERSION: return 505;
    case HR_HTTP_E_BAD_LENGTH: return 400;
    case HR_HTTP_E_BAD_ENCODING: return 501;
    case HR_HTTP_E_BAD_CHUNK: return 400;
    case HR_HTTP_E_BODY_TOO_LARGE: return 413;
    default: return 400;
    }
}

const char *hr_http_error_text(int err)
{
    switch (err) {
    case HR_HTTP_INCOMPLETE: return "incomplete request";
    case HR_HTTP_E_BAD_REQUEST: return "malformed request";
    case HR_HTTP_E_HEADERS_TOO_LARGE: return "header section too large";
    case HR_HTTP_E_TOO_MANY_HEADERS: return "too many header fields";
    case HR_HTTP_E_URI_TOO_LONG: return "request-target too long";
    case HR_HTTP_E_VERSION: return "HTTP version not supported";
    case HR_HTTP_E_BAD_LENGTH: return "invalid message length";
    case HR_HTTP_E_BAD_ENCODING: return "unsupported transfer coding";
    case HR_HTTP_E_BAD_CHUNK: return "malformed chunked body";
    case HR_HTTP_E_BODY_TOO_LARGE: return "request body too large";
    default: return "bad request";
    }
}

/* ---- head scanning (incremental) -------------------------------------- */

enum { PH_LEAD = 0, PH_METHOD, PH_TARGET, PH_LINE, PH_HEAD };

void hr_http_parser_init(hr_http_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/* The last index of the run of bytes other than CR and LF that b[i] starts:
 * none of them can be a bare CR or LF, nor end the head. */
static size_t plain_run_end(const unsigned char *b, size_t i, size_t n)
{
    const unsigned char *lf = memchr(b + i, '\n', n - i);
    size_t stop = lf ? (size_t)(lf - b) : n;
    const unsigned char *cr = memchr(b + i, '\r', stop - i);
    return (cr ? (size_t)(cr - b) : stop) - 1;
}

/* Look at bytes [p->scanned, n) once each (a run of bytes other than CR
 * and LF after the method and target in one step): reject bare CR / bare LF, a
 * non-token method and an over-long target as soon as they show up, and find
 * the CRLFCRLF that ends the head. Returns 1 with *end set, 0 if the end is
 * not within n bytes, or an error. */
static int scan_head(hr_http_parser *p, const unsigned char *b, size_t n, size_t max_target,
                     size_t *end)
{
    for (size_t i = p->scanned; i < n; i++) {
        unsigned char c = b[i];
        if (i > 0 && b[i - 1] == '\r' && c != '\n') return HR_HTTP_E_BAD_REQUEST; /* bare CR */
        if (c == '\n' && (i == 0 || b[i - 1] != '\r')) return HR_HTTP_E_BAD_REQUEST; /* bare LF */

        if (p->phase == PH_LEAD) {
            if (c == '\r' || c == '\n') continue; /* empty line before the request */
            p->line_start = i;
            p->phase = PH_METHOD;
        }
        switch (p->phase) {
        case PH_METHOD:
            if (c == ' ') {
                if (i == p->line_start) return HR_HTTP_E_BAD_REQUEST;
                p->phase = PH_TARGET;
                p->target_start = i + 1;
            } else if (!is_tchar(c)) {
                return HR_HTTP_E_BAD_REQUEST;
            }
            break;
        case PH_TARGET:
            if (c == ' ' || c == '\r') p->phase = PH_LINE;
            else if (i + 1 - p->target_start > max_target) return HR_HTTP_E_URI_TOO_LONG;
            break;
        case PH_LINE:
            if (c == '\n') p->phase = PH_HEAD;
            else if (c != '\r') i = plain_run_end(b, i, n);
            break;
        default:
            /* The request line is at least "X \r\n", so i >= 4 here. */
            if (c == '\n' && b[i - 1] == '\r' && b[i - 2] == '\n' && b[i - 3] == '\r') {
                p->scanned = i + 1;
                *end = i + 1;
                return 1;
            }
            if (c != '\r' && c != '\n') i = plain_run_end(b, i, n);
            break;
        }
    }
    p->scanned = n;
    return 0;
}

/* ---- full parse of a complete head ------------------------------------- */

static int parse_target(hr_http_request *req)
{
    const char *t = req->target;
    size_t n = req->target_len;
    bool connect = eq(req->method, req->method_len, "CONNECT");

    req->query = NULL;
    req->query_len = 0;

    if (connect) {
        /* authority-form: host ":" port, nothing else (RFC 9112 §3.2.3). */
        size_t colon = n;
        for (size_t i = 0; i < n; i++) {
            char c = t[i];
            if (c == '/' || c == '?' || c == '@') return HR_HTTP_E_BAD_REQUEST;
            if (c == ':') colon = i;
        }
        if (colon == 0 || colon >= n - 1 || n - 1 - colon > 5) return HR_HTTP_E_BAD_REQUEST;
        for (size_t i = colon + 1; i < n; i++)
            if (!is_digit((unsigned char)t[i])) return HR_HTTP_E_BAD_REQUEST;
        req->path = t;
        req->path_len = n;
        return 0;
    }

    size_t ps; /* start of the path within t */
    if (t[0] == '/') {
        ps = 0; /* origin-form */
    } else if (n == 1 && t[0] == '*') {
        if (!eq(req->method, req->method_len, "OPTIONS")) return HR_HTTP_E_BAD_REQUEST;
        req->path = t;
        req->path_len = 1;
        return 0;
    } else {
        /* absolute-form: scheme "://" authority [path] ["?" query] */
        size_t i = 0;
        if (!is_alpha((unsigned char)t[0])) return HR_HTTP_E_BAD_REQUEST;
        while (i < n && (is_alpha((unsigned char)t[i]) || is_digit((unsigned char)t[i]) ||
                         t[i] == '+' || t[i] == '-' || t[i] == '.'))
            i++;
        if (n - i < 3 || memcmp(t + i, "://", 3) != 0) return HR_HTTP_E_BAD_REQUEST;
        i += 3;
        size_t as = i;
        while (i < n && t[i] != '/' && t[i] != '?') i++;
        if (i == as) return HR_HTTP_E_BAD_REQUEST; /* empty authority */
        ps = i;
    }

    size_t q = ps;
    while (q < n && t[q] != '?') q++;
    if (q == ps) {
        req->path = "/"; /* absolute-form with no path */
        req->path_len = 1;
    } else {
        req->path = t + ps;
        req->path_len = q - ps;
    }
    if (q < n) {
        req->query = t + q + 1;
        req->query_len = n - q - 1;
    }
    return 0;
}

static int parse_request_line(const char *buf, size_t ls, size_t le, const hr_http_limits *lim,
                              hr_http_request *req)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t i = ls;

    while (i < le && is_tchar(u[i])) i++;
    if (i == ls || i >= le || u[i] != ' ') return HR_HTTP_E_BAD_REQUEST;
    req->method = buf + ls;
    req->method_len = i - ls;

    size_t ts = ++i;
    while (i < le && u[i] != ' ') i++;
    if (i - ts > lim->max_target_bytes) return HR_HTTP_E_URI_TOO_LONG;
    if (i == ts || i >= le) return HR_HTTP_E_BAD_REQUEST;
    for (size_t k = ts; k < i; k++) /* visible ASCII; no fragment */
        if (u[k] <= 0x20 || u[k] >= 0x7f || u[k] == '#') return HR_HTTP_E_BAD_REQUEST;
    req->target = buf + ts;
    req->target_len = i - ts;

    const unsigned char *v = u + i + 1; /* "HTTP/" DIGIT "." DIGIT, case-sensitive */
    if (le - (i + 1) != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) || v[6] != '.' ||
        !is_digit(v[7]))
        return HR_HTTP_E_BAD_REQUEST;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return HR_HTTP_E_VERSION;
    req->version_minor = v[7] - '0';

    return parse_target(req);
}

static int parse_fields(const char *buf, size_t pos, size_t end, size_t maxh,
                        hr_http_header *headers, size_t *count)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t n = 0;

    for (;;) {
        if (pos >= end) return HR_HTTP_E_BAD_REQUEST;
        if (u[pos] == '\r') break; /* the empty line ending the head */
        if (n >= maxh) return HR_HTTP_E_TOO_MANY_HEADERS;
        if (is_ows(u[pos])) return HR_HTTP_E_BAD_REQUEST; /* obs-fold */

        const char *cr = memchr(buf + pos, '\r', end - pos);
        if (!cr) return HR_HTTP_E_BAD_REQUEST;
        size_t le = (size_t)(cr - buf);

        size_t i = pos;
        while (i < le && is_tchar(u[i])) i++;
        if (i == pos || i >= le || u[i] != ':') return HR_HTTP_E_BAD_REQUEST;
        size_t name_end = i++;

        while (i < le && is_ows(u[i])) i++;
        size_t ve = le;
        while (ve > i && is_ows(u[ve - 1])) ve--;
        for (size_t k = i; k < ve; k++)
            if (is_bad_ctl(u[k])) return HR_HTTP_E_BAD_REQUEST;

        headers[n].name = buf + pos;
        headers[n].name_len = name_end - pos;
        headers[n].value = buf + i;
        headers[n].value_len = ve - i;
        n++;
        pos = le + 2;
    }
    *count = n;
    return 0;
}

/* Content-Length, possibly as a list of identical values ("5, 5"). */
static int parse_content_length(const char *v, size_t len, int64_t *cl)
{
    size_t i = 0;
    for (;;) {
        while (i < len && is_ows((unsigned char)v[i])) i++;
        size_t s = i;
        int64_t x = 0;
        while (i < len && is_digit((unsigned char)v[i])) {
            int d = v[i] - '0';
            if (x > (INT64_MAX - d) / 10) return HR_HTTP_E_BAD_LENGTH;
            x = x * 10 + d;
            i++;
        }
        if (i == s) return HR_HTTP_E_BAD_LENGTH;
        while (i < len && is_ows((unsigned char)v[i])) i++;
        if (*cl >= 0 && *cl != x) return HR_HTTP_E_BAD_LENGTH;
        *cl = x;
        if (i == len) return 0;
        if (v[i] != ',') return HR_HTTP_E_BAD_LENGTH;
        i++;
    }
}

/* Transfer-Encoding across all its fields: only a single final "chunked". */
static int check_transfer_encoding(const hr_http_request *req)
{
    bool chunked = false;
    for (size_t h = 0; h < req->num_headers; h++) {
        const hr_http_header *f = &req->headers[h];
        if (!ieq(f->name, f->name_len, "transfer-encoding")) continue;
        size_t pos = 0;
        const char *e;
        size_t elen;
        while (next_elem(f->value, f->value_len, &pos, &e, &elen)) {
            if (chunked) return HR_HTTP_E_BAD_ENCODING; /* chunked not last */
            if (!ieq(e, elen, "chunked")) return HR_HTTP_E_BAD_ENCODING;
            chunked = true;
        }
    }
    return chunked ? 0 : HR_HTTP_E_BAD_REQUEST; /* only empty values */
}

static int interpret_fields(hr_http_request *req)
{
    size_t hosts = 0;
    bool te = false, conn_close = false, conn_keep = false, expect = false;

    for (size_t h = 0; h < req->num_headers; h++) {
        const hr_http_header *f = &req->headers[h];
        switch (to_lower((unsigned char)f->name[0])) {
        case 'c':
            if (ieq(f->name, f->name_len, "content-length")) {
                int rc = parse_content_length(f->value, f->value_len, &req->content_length);
                if (rc < 0) return rc;
            } else if (ieq(f->name, f->name_len, "connection")) {
                if (hr_http_has_token(f->value, f->value_len, "close")) conn_close = true;
                if (hr_http_has_token(f->value, f->value_len, "keep-alive")) conn_keep = true;
            }
            break;
        case 'e':
            if (ieq(f->name, f->name_len, "expect") && ieq(f->value, f->value_len, "100-continue"))
                expect = true;
            break;
        case 'h':
            if (ieq(f->name, f->name_len, "host")) hosts++;
            break;
        case 't':
            if (ieq(f->name, f->name_len, "transfer-encoding")) te = true;
            break;
        default:
            break;
        }
    }

    if (hosts > 1 || (hosts == 0 && req->version_minor == 1)) return HR_HTTP_E_BAD_REQUEST;
    if (te) {
        if (req->version_minor == 0) return HR_HTTP_E_BAD_REQUEST;
        if (req->content_length >= 0) return HR_HTTP_E_BAD_LENGTH; /* smuggling defense */
        int rc = check_transfer_encoding(req);
        if (rc < 0) return rc;
        req->chunked = true;
    }
    if (req->version_minor == 1) {
        req->keep_alive = !conn_close;
        req->expect_continue = expect; /* ignored for HTTP/1.0 (RFC 9110 §10.1.1) */
    } else {
        req->keep_alive = conn_keep && !conn_close;
    }
    return 0;
}

int hr_http_parse_request(hr_http_parser *p, const char *buf, size_t len,
                          const hr_http_limits *lim, hr_http_request *req,
                          hr_http_header *headers, size_t cap)
{
    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    req->headers = headers;

    if (p->scanned > len) hr_http_parser_init(p); /* caller restarted with less data */

    size_t window = HR_MIN(len, lim->max_head_bytes);
    if (window > (size_t)INT_MAX) window = (size_t)INT_MAX;

    size_t end = 0;
    int rc = scan_head(p, (const unsigned char *)buf, window, lim->max_target_bytes, &end);
    if (rc < 0) return rc;
    if (rc == 0) {
        if (len >= lim->max_head_bytes || window == (size_t)INT_MAX)
            return HR_HTTP_E_HEADERS_TOO_LARGE;
        return HR_HTTP_INCOMPLETE;
    }

    size_t ls = p->line_start;
    const char *cr = memchr(buf + ls, '\r', end - ls);
    if (!cr) return HR_HTTP_E_BAD_REQUEST;
    size_t le = (size_t)(cr - buf);

    rc = parse_request_line(buf, ls, le, lim, req);
    if (rc < 0) return rc;

    size_t count = 0;
    rc = parse_fields(buf, le + 2, end, HR_MIN(lim->max_headers, cap), headers, &count);
    if (rc < 0) return rc;
    req->num_headers = count;

    rc = interpret_fields(req);
    if (rc < 0) return rc;

    req->head_len = end;
    hr_http_parser_init(p); /* ready for the next request */
    return (int)end;
}

const hr_http_header *hr_http_find_header(const hr_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, name)) return h;
    }
    return NULL;
}

bool hr_http_has_token(const char *value, size_t len, const char *token)
{
    size_t pos = 0;
    const char *e;
    size_t elen;
    while (next_elem(value, len, &pos, &e, &elen))
        if (ieq(e, elen, token)) return true;
    return false;
}

/* ---- chunked transfer coding (RFC 9112 §7.1) --------------------------- */

enum {
    CS_SIZE0 = 0,  /* start of a chunk-size line: a hex digit is required */
    CS_SIZE,       /* more hex digits */
    CS_SIZE_WS,    /* BWS after the size, before ';' */
    CS_EXT,        /* chunk extensions, skipped up to CR */
    CS_SIZE_LF,    /* LF ending the size line */
    CS_DATA,       /* chunk_left data bytes */
    CS_DATA_CR,    /* CRLF after the data */
    CS_DATA_LF,
    CS_TR_START,   /* start of a trailer line, or the final CRLF */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_END_LF,     /* LF of the final empty line */
    CS_DONE,
};

#define HR_CHUNK_SIZE_MAX ((uint64_t)1 << 62)
#define HR_CHUNK_LINE_MAX 1024
#define HR_CHUNK_TRAILER_MAX 8192

void hr_http_chunked_init(hr_http_chunked *c, uint64_t max_body)
{
    memset(c, 0, sizeof(*c));
    c->state = CS_SIZE0;
    c->max_body = max_body;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Feed one non-data byte. Returns 0, 1 (body complete) or an error. */
static int chunk_step(hr_http_chunked *c, unsigned char ch)
{
    int st = c->state;

    if (st <= CS_EXT && ch != '\r' && ++c->line_len > HR_CHUNK_LINE_MAX)
        return HR_HTTP_E_BAD_CHUNK;
    if (st >= CS_TR_START && st <= CS_END_LF && ++c->line_len > HR_CHUNK_TRAILER_MAX)
        return HR_HTTP_E_BAD_CHUNK;

    switch (st) {
    case CS_SIZE0:
    case CS_SIZE: {
        int d = hex_value(ch);
        if (d >= 0) {
            if (c->chunk_left > (HR_CHUNK_SIZE_MAX - (uint64_t)d) / 16) return HR_HTTP_E_BAD_CHUNK;
            c->chunk_left = c->chunk_left * 16 + (uint64_t)d;
            if (c->max_body && c->chunk_left > c->max_body - c->total)
                return HR_HTTP_E_BODY_TOO_LARGE;
            c->state = CS_SIZE;
            return 0;
        }
        if (st == CS_SIZE0) return HR_HTTP_E_BAD_CHUNK; /* empty size */
        if (ch == '\r') c->state = CS_SIZE_LF;
        else if (ch == ';') c->state = CS_EXT;
        else if (is_ows(ch)) c->state = CS_SIZE_WS;
        else return HR_HTTP_E_BAD_CHUNK;
        return 0;
    }
    case CS_SIZE_WS:
        if (ch == ';') c->state = CS_EXT;
        else if (!is_ows(ch)) return HR_HTTP_E_BAD_CHUNK;
        return 0;
    case CS_EXT:
        if (ch == '\r') c->state = CS_SIZE_LF;
        else if (is_bad_ctl(ch)) return HR_HTTP_E_BAD_CHUNK;
        return 0;
    case CS_SIZE_LF:
        if (ch != '\n') return HR_HTTP_E_BAD_CHUNK;
        if (c->chunk_left == 0) {
            c->state = CS_TR_START; /* last-chunk */
            c->line_len = 0;
        } else {
            if (c->chunk_left > UINT64_MAX - c->total) return HR_HTTP_E_BODY_TOO_LARGE;
            c->state = CS_DATA;
        }
        return 0;
    case CS_DATA_CR:
        if (ch != '\r') return HR_HTTP_E_BAD_CHUNK;
        c->state = CS_DATA_LF;
        return 0;
    case CS_DATA_LF:
        if (ch != '\n') return HR_HTTP_E_BAD_CHUNK;
        c->state = CS_SIZE0;
        c->line_len = 0;
        c->chunk_left = 0;
        return 0;
    case CS_TR_START:
        if (ch == '\r') c->state = CS_END_LF;
        else if (is_tchar(ch)) c->state = CS_TR_NAME;
        else return HR_HTTP_E_BAD_CHUNK; /* obs-fold, empty name, junk */
        return 0;
    case CS_TR_NAME:
        if (ch == ':') c->state = CS_TR_VALUE;
        else if (!is_tchar(ch)) return HR_HTTP_E_BAD_CHUNK;
        return 0;
    case CS_TR_VALUE:
        if (ch == '\r') c->state = CS_TR_LF;
        else if (is_bad_ctl(ch)) return HR_HTTP_E_BAD_CHUNK;
        return 0;
    case CS_TR_LF:
        if (ch != '\n') return HR_HTTP_E_BAD_CHUNK;
        c->state = CS_TR_START;
        return 0;
    case CS_END_LF:
        if (ch != '\n') return HR_HTTP_E_BAD_CHUNK;
        c->state = CS_DONE;
        return 1;
    default:
        return HR_HTTP_E_BAD_CHUNK;
    }
}

int hr_http_chunked_decode(hr_http_chunked *c, char *buf, size_t *len, size_t *out_len)
{
    size_t n = *len, r = 0, w = 0;
    int rc = 0;

    if (c->state < 0) { /* an earlier error is final */
        *len = 0;
        *out_len = 0;
        return c->state;
    }
    while (r < n && c->state != CS_DONE) {
        if (c->state == CS_DATA) {
            size_t take = n - r;
            if ((uint64_t)take > c->chunk_left) take = (size_t)c->chunk_left;
            if (w != r) memmove(buf + w, buf + r, take);
            w += take;
            r += take;
            c->chunk_left -= take;
            c->total += take;
            if (c->chunk_left == 0) c->state = CS_DATA_CR;
            continue;
        }
        rc = chunk_step(c, (unsigned char)buf[r]);
        if (rc < 0) {
            c->state = rc;
            break;
        }
        r++;
    }
    *len = r;
    *out_len = w;
    if (rc < 0) return rc;
    return c->state == CS_DONE ? 1 : 0;
}
