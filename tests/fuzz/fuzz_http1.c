/* fuzz_http1.c - libFuzzer target for codec/http1.c. Parses the input whole
 * and split in two (an incremental parse must agree with the whole parse),
 * checks the result's invariants, then runs the chunked decoder over the rest
 * whole and in pieces and checks that both decode the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 16

static void check(bool ok)
{
    if (!ok) abort();
}

static bool inside(const char *p, size_t n, const char *lo, const char *hi)
{
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

static void check_request(int r, const char *buf, size_t len, const hr_http_limits *lim,
                          const hr_http_request *req, const hr_http_header *h)
{
    check(r > 0 && (size_t)r <= len && (size_t)r <= lim->max_head_bytes);
    check(req->head_len == (size_t)r);
    check(req->num_headers <= CAP && req->num_headers <= lim->max_headers);
    check(req->headers == h);
    const char *end = buf + req->head_len;
    check(req->method_len > 0 && inside(req->method, req->method_len, buf, end));
    check(req->target_len > 0 && req->target_len <= lim->max_target_bytes);
    check(inside(req->target, req->target_len, buf, end));
    /* path lies inside the target, or is the static "/" of an absolute-form
     * target without a path. */
    check(inside(req->path, req->path_len, req->target, req->target + req->target_len) ||
          (req->path_len == 1 && req->path[0] == '/'));
    if (req->query) check(inside(req->query, req->query_len, req->target, req->target + req->target_len));
    check(req->version_minor == 0 || req->version_minor == 1);
    check(!(req->chunked && req->content_length >= 0));
    for (size_t i = 0; i < req->num_headers; i++) {
        check(h[i].name_len > 0 && inside(h[i].name, h[i].name_len, buf, end));
        check(inside(h[i].value, h[i].value_len, buf, end));
        if (h[i].value_len) {
            char a = h[i].value[0], b = h[i].value[h[i].value_len - 1];
            check(a != ' ' && a != '\t' && b != ' ' && b != '\t');
        }
    }
}

/* Same request, two parses (possibly different buffers): same offsets. */
static void check_same(const hr_http_request *a, const char *abuf, const hr_http_request *b,
                       const char *bbuf)
{
    check(a->head_len == b->head_len && a->num_headers == b->num_headers);
    check(a->method - abuf == b->method - bbuf && a->method_len == b->method_len);
    check(a->target - abuf == b->target - bbuf && a->target_len == b->target_len);
    check(a->path_len == b->path_len && (a->query == NULL) == (b->query == NULL));
    check(a->content_length == b->content_length && a->chunked == b->chunked);
    check(a->keep_alive == b->keep_alive && a->expect_continue == b->expect_continue);
    for (size_t i = 0; i < a->num_headers; i++) {
        check(a->headers[i].name - abuf == b->headers[i].name - bbuf);
        check(a->headers[i].value_len == b->headers[i].value_len);
    }
}

/* Decode src[0..n) fed in pieces ending at bounds[] the way a caller would,
 * keeping unconsumed bytes. Decoded bytes go to out. Returns the last rc. */
static int decode(const char *src, size_t n, const size_t *bounds, size_t nb, uint64_t max,
                  char *out, size_t *out_len, size_t *consumed)
{
    hr_http_chunked c;
    hr_http_chunked_init(&c, max);
    char *pend = malloc(n ? n : 1);
    size_t plen = 0, fed = 0;
    int rc = 0;
    *out_len = 0;
    *consumed = 0;
    for (size_t i = 0; i < nb; i++) {
        memcpy(pend + plen, src + fed, bounds[i] - fed);
        plen += bounds[i] - fed;
        fed = bounds[i];
        size_t l = plen, o = 0;
        rc = hr_http_chunked_decode(&c, pend, &l, &o);
        check(l <= plen && o <= l);
        check(rc == 0 || rc == 1 || rc == HR_HTTP_E_BAD_CHUNK || rc == HR_HTTP_E_BODY_TOO_LARGE);
        memcpy(out + *out_len, pend, o);
        *out_len += o;
        *consumed += l;
        memmove(pend, pend + l, plen - l);
        plen -= l;
        if (rc != 0) break;
        check(plen == 0);
    }
    check(max == 0 || c.total <= max);
    check(c.total == *out_len);
    free(pend);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    uint8_t ctl = data[0];
    const hr_http_limits lim_big = {4096, CAP, 1024};
    const hr_http_limits lim_small = {128, 4, 24};
    const hr_http_limits *lim = (ctl & 0x80) ? &lim_small : &lim_big;

    /* Exact-size copies so ASan sees any read past len. */
    char *buf = malloc(size);
    memcpy(buf, data, size);

    hr_http_parser p;
    hr_http_request req, req2;
    hr_http_header h[CAP], h2[CAP];

    hr_http_parser_init(&p);
    int r = hr_http_parse_request(&p, buf, size, lim, &req, h, CAP);
    check(r > 0 || r == HR_HTTP_INCOMPLETE ||
          (r <= HR_HTTP_E_BAD_REQUEST && r >= HR_HTTP_E_BAD_ENCODING));
    if (r > 0) check_request(r, buf, size, lim, &req, h);
    else check(hr_http_error_status(r) >= 400 && hr_http_error_text(r) != NULL);

    /* Incremental: a prefix first (its own exact-size buffer), then all. */
    size_t split = (size_t)(((uint64_t)size * ctl) / 256);
    char *pre = malloc(split ? split : 1);
    memcpy(pre, data, split);
    hr_http_parser_init(&p);
    int r2 = hr_http_parse_request(&p, pre, split, lim, &req2, h2, CAP);
    if (r2 == HR_HTTP_INCOMPLETE) {
        r2 = hr_http_parse_request(&p, buf, size, lim, &req2, h2, CAP);
        check(r2 == r);
        if (r2 > 0) check_same(&req, buf, &req2, buf);
    } else {
        /* A prefix can only be decided the way the whole input is. */
        check(r2 == r);
        if (r2 > 0) check_same(&req, buf, &req2, pre);
    }
    free(pre);

    /* Chunked decoder over what follows the head (or over everything after
     * the control byte when there is no head), whole and in three pieces. */
    const char *body = r > 0 ? buf + r : buf + 1;
    size_t blen = r > 0 ? size - (size_t)r : size - 1;
    uint64_t max = (ctl & 0x40) ? 64 : 0;
    char *out1 = malloc(blen + 1), *out2 = malloc(blen + 1);
    size_t o1, o2, c1, c2;
    size_t whole[1] = {blen};
    int d1 = decode(body, blen, whole, 1, max, out1, &o1, &c1);
    size_t a = (size_t)(((uint64_t)blen * (ctl & 0x3f)) / 64);
    size_t b = a + (blen - a) / 2;
    size_t pieces[3] = {a, b, blen};
    int d2 = decode(body, blen, pieces, 3, max, out2, &o2, &c2);
    check(d1 == d2 && o1 == o2 && memcmp(out1, out2, o1) == 0);
    if (d1 == 1) check(c1 == c2);
    check(o1 <= blen);
    free(out1);
    free(out2);
    free(buf);
    return 0;
}
