/* fuzz_urlquery.c - libFuzzer target for the URL query-string codec
 * (codec/urlquery.h: hr_url_decode, hr_query_param_next, hr_query_next).
 * The input is a query, copied into an exact-size buffer. Checked against a
 * reference written here: the decoding (or its refusal) byte for byte; the
 * pieces cover the input exactly ('&'-separated, none empty, split at the
 * first '='); every value hr_query_next finds for a name is the decoded
 * value of a piece whose decoded name is that name, in order, and an error
 * only for a malformed escape in such a value or one that does not fit.
 * abort() on any disagreement. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/urlquery.h"
#include "core/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The reference decoder: -1 on a malformed escape, else the length. */
static ssize_t ref_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
        } else if (i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
            out[o++] = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
            i += 2;
        } else {
            return -1;
        }
    }
    return (ssize_t)o;
}

static void check_decode(const char *s, size_t n, char *a, char *b)
{
    ssize_t want = ref_decode(s, n, a);
    ssize_t got = hr_url_decode(s, n, b, n);
    check(got == want);
    if (got > 0) check(!memcmp(a, b, (size_t)got));
    if (got > 0) check(hr_url_decode(s, n, b, (size_t)got - 1) == -1); /* one byte short: refused */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = malloc(size ? size : 1), *a = malloc(size + 1), *b = malloc(size + 1);
    memcpy(q, data, size);
    check_decode(q, size, a, b);
    /* the pieces, and the decoded name of the first one */
    size_t pos = 0, covered = 0, npieces = 0;
    hr_query_param p;
    char name[16];
    size_t name_len = 0;
    while (hr_query_param_next(q, size, &pos, &p) == 1) {
        check(p.nlen + p.vlen + (p.has_value ? 1 : 0) > 0);
        check(!memchr(p.name, '&', p.nlen) && !memchr(p.name, '=', p.nlen) && !memchr(p.value, '&', p.vlen));
        check(p.has_value || p.vlen == 0);
        covered += p.nlen + p.vlen + (p.has_value ? 1 : 0);
        check_decode(p.name, p.nlen, a, b);
        check_decode(p.value, p.vlen, a, b);
        if (npieces++ == 0) {
            ssize_t k = ref_decode(p.name, p.nlen, a);
            if (k > 0 && (size_t)k < sizeof(name) && !memchr(a, '\0', (size_t)k)) {
                memcpy(name, a, (size_t)k);
                name_len = (size_t)k;
            }
        }
    }
    size_t amps = 0;
    for (size_t i = 0; i < size; i++) amps += q[i] == '&';
    check(covered + amps == size); /* every byte is in a piece or is a separator */
    /* every value of the first piece's name, against the pieces */
    if (name_len) {
        name[name_len] = '\0';
        size_t qpos = 0, ppos = 0, len;
        int rc;
        while ((rc = hr_query_next(q, size, &qpos, name, b, size + 1, &len)) == 1) {
            for (;;) { /* the next piece named `name` */
                check(hr_query_param_next(q, size, &ppos, &p) == 1);
                ssize_t k = ref_decode(p.name, p.nlen, a);
                if (k == (ssize_t)name_len && !memcmp(a, name, name_len)) break;
            }
            check(ref_decode(p.value, p.vlen, a) == (ssize_t)len && !memcmp(a, b, len));
        }
        check(rc == 0 || rc == HR_ERR_PROTO);
    }
    free(q);
    free(a);
    free(b);
    return 0;
}
