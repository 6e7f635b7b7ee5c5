/* fuzz_resp.c - libFuzzer target for the RESP parser (codec/resp.h). The
 * input, copied into an exact-size buffer, is parsed reply after reply:
 * every reply must consume bytes within the input, every prefix of a parsed
 * reply must be incomplete (not an error, not a different reply), and the
 * tree must be walkable within its counts; wherever the pub/sub fast path
 * (hr_resp_parse_message) takes a reply, the tree parser must give the same
 * push, strings and length. abort() on any disagreement. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static size_t walk(const hr_resp *r, size_t depth)
{
    check(depth <= 16);
    size_t n = 1;
    switch (r->type) {
    case HR_RESP_ARRAY:
    case HR_RESP_PUSH:
        for (size_t i = 0; i < r->n; i++) n += walk(&r->elem[i], depth + 1);
        break;
    case HR_RESP_MAP:
        for (size_t i = 0; i < 2 * r->n; i++) n += walk(&r->elem[i], depth + 1);
        break;
    case HR_RESP_SIMPLE:
    case HR_RESP_ERROR:
    case HR_RESP_BULK:
    case HR_RESP_DOUBLE:
    case HR_RESP_BIGNUM:
        if (r->len) check(r->str != NULL);
        break;
    case HR_RESP_INT:
    case HR_RESP_NIL:
    case HR_RESP_BOOL:
        break;
    default:
        check(false);
    }
    return n;
}

static bool same_str(const hr_resp *r, const char *s, size_t n)
{
    return r->type == HR_RESP_BULK && r->str == s && r->len == n;
}

/* The fast path's reading of buf, if it takes one, agrees with the tree's. */
static void check_message(const uint8_t *buf, size_t len, const hr_resp_limits *lim)
{
    hr_resp_message m;
    size_t used = 0, used2 = 0;
    if (!hr_resp_parse_message(buf, len, lim, &m, &used)) return;
    hr_resp *r = NULL;
    check(hr_resp_parse(buf, len, lim, &r, &used2) == 0 && used == used2 && r->type == HR_RESP_PUSH);
    size_t k = m.pattern ? 1 : 0;
    check(r->n == 3 + k && hr_resp_eq(&r->elem[0], m.pattern ? "pmessage" : "message"));
    check(!m.pattern || same_str(&r->elem[1], m.pattern, m.pattern_len));
    check(same_str(&r->elem[1 + k], m.channel, m.channel_len) && same_str(&r->elem[2 + k], m.data, m.data_len));
    hr_resp_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    size_t pos = 0;
    hr_resp_limits lim = {16, 1 << 20, 1 << 16};
    while (pos < size) {
        check_message(buf + pos, size - pos, &lim);
        hr_resp *r = NULL;
        size_t used = 0;
        int rc = hr_resp_parse(buf + pos, size - pos, &lim, &r, &used);
        if (rc) {
            check(rc == HR_ERR_AGAIN || rc == HR_ERR_PROTO || rc == HR_ERR_TOO_BIG);
            break;
        }
        check(used > 0 && used <= size - pos);
        check(walk(r, 0) >= 1);
        hr_resp_free(r);
        /* a cut inside the reply: incomplete (an error may show earlier only if the bytes before it are bad,
         * which they are not: they form the start of a valid reply) */
        if (used > 1) {
            hr_resp *r2 = NULL;
            size_t used2 = 0;
            int rc2 = hr_resp_parse(buf + pos, used - 1, &lim, &r2, &used2);
            check(rc2 == HR_ERR_AGAIN);
        }
        pos += used;
    }
    free(buf);
    return 0;
}
