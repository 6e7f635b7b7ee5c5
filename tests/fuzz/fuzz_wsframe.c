/* fuzz_wsframe.c - libFuzzer target for codec/wsframe.c and codec/utf8.c.
 * The first input byte picks the parse options; the rest is parsed as a
 * stream of frames. Per frame: every header prefix must give INCOMPLETE or
 * the final answer, the header must obey the options and re-encode, the
 * payload present is unmasked whole, in two pieces and byte by byte (all must
 * agree), text payloads are validated whole, split in two and byte by byte
 * (same verdict, fail-fast position consistent), and close payloads go through
 * hr_ws_parse_close and back through hr_ws_build_close. abort() on any
 * inconsistency. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/utf8.h"
#include "codec/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static bool known_error(int r)
{
    switch (r) {
    case HR_WS_E_RSV:
    case HR_WS_E_OPCODE:
    case HR_WS_E_CONTROL_FRAGMENTED:
    case HR_WS_E_CONTROL_TOO_LONG:
    case HR_WS_E_UNMASKED:
    case HR_WS_E_MASKED:
    case HR_WS_E_LENGTH:
    case HR_WS_E_TOO_BIG:
    case HR_WS_E_CONTROL_RSV1: return true;
    default: return false;
    }
}

static void check_header(const uint8_t *p, size_t len, const hr_ws_parse_opts *o, int r,
                         const hr_ws_frame_header *h)
{
    /* every prefix: INCOMPLETE, or already the final answer */
    bool decided = false;
    size_t lim = len < 16 ? len : 16;
    for (size_t k = 0; k <= lim; k++) {
        hr_ws_frame_header hk;
        int rk = hr_ws_parse_header(p, k, o, &hk);
        if (rk == HR_WS_INCOMPLETE) {
            check(!decided);
        } else {
            check(rk == r);
            decided = true;
        }
    }
    if (r == HR_WS_INCOMPLETE) {
        check(len < 14);
        return;
    }
    if (r < 0) {
        check(known_error(r));
        uint16_t cc = hr_ws_error_close_code(r);
        check(cc == (r == HR_WS_E_TOO_BIG ? 1009 : 1002));
        check(hr_ws_close_code_valid(cc));
        const char *t = hr_ws_error_text(r);
        check(t && t[0]);
        return;
    }
    /* success: header fields obey the rules and the options */
    check(r >= 2 && r <= 14 && (size_t)r <= len && h->header_len == (size_t)r);
    uint8_t op = h->opcode;
    check(op <= 2 || (op >= 8 && op <= 10));
    check(!h->rsv2 && !h->rsv3);
    if (h->rsv1) check(o->allow_rsv1 && (op == HR_WS_OP_TEXT || op == HR_WS_OP_BINARY));
    if (op >= 8) check(h->fin && h->payload_len <= 125);
    if (o->require_mask) check(h->masked);
    if (o->forbid_mask) check(!h->masked);
    if (o->max_frame) check(h->payload_len <= o->max_frame);
    check(h->payload_len >> 63 == 0);
    check(h->fin == !!(p[0] & 0x80) && h->rsv1 == !!(p[0] & 0x40) && op == (p[0] & 0x0F));
    check(h->masked == !!(p[1] & 0x80));
    if (h->masked) check(memcmp(h->mask, p + r - 4, 4) == 0);

    /* re-encode: the writer uses the minimal length form; equal bytes when
     * the input did too, otherwise shorter with the same meaning */
    uint8_t out[14];
    size_t n = hr_ws_write_header(out, h->fin, h->rsv1, op, h->payload_len, h->masked ? h->mask : NULL);
    check(n <= (size_t)r);
    if (n == (size_t)r) check(memcmp(out, p, n) == 0);
    hr_ws_frame_header h2;
    check(hr_ws_parse_header(out, n, o, &h2) == (int)n);
    check(h2.fin == h->fin && h2.rsv1 == h->rsv1 && h2.opcode == op && h2.masked == h->masked &&
          h2.payload_len == h->payload_len && memcmp(h2.mask, h->mask, 4) == 0);
}

static void check_mask(uint8_t *payload, size_t n, const uint8_t mask[4], size_t split, uint64_t off)
{
    uint8_t *one = malloc(n + 1), *two = malloc(n + 1), *ref = malloc(n + 1);
    check(one && two && ref);
    memcpy(one, payload, n);
    memcpy(two, payload, n);
    memcpy(ref, payload, n);
    for (size_t i = 0; i < n; i++) ref[i] ^= mask[(off + i) & 3];
    hr_ws_mask(one, n, mask, off);
    check(memcmp(one, ref, n) == 0);
    hr_ws_mask(two, split, mask, off);
    hr_ws_mask(two + split, n - split, mask, off + split);
    check(memcmp(two, ref, n) == 0);
    hr_ws_mask(two, n, mask, off); /* involution */
    check(memcmp(two, payload, n) == 0);
    free(one);
    free(two);
    free(ref);
}

static void check_utf8(const uint8_t *p, size_t n, size_t split)
{
    hr_utf8 s = HR_UTF8_INIT;
    int whole = hr_utf8_feed(&s, p, n);
    check(whole == HR_UTF8_COMPLETE || whole == HR_UTF8_PARTIAL || whole == HR_UTF8_INVALID);
    check(hr_utf8_valid(p, n) == (whole == HR_UTF8_COMPLETE));

    /* byte by byte: where does it fail first? */
    size_t fail_at = SIZE_MAX;
    int bw = HR_UTF8_COMPLETE;
    hr_utf8_init(&s);
    for (size_t i = 0; i < n; i++) {
        bw = hr_utf8_feed(&s, p + i, 1);
        if (bw == HR_UTF8_INVALID) {
            fail_at = i;
            break;
        }
    }
    check(bw == whole);

    /* two pieces: same verdict; the first piece fails alone exactly when it
     * holds the first impossible byte */
    hr_utf8_init(&s);
    int r1 = hr_utf8_feed(&s, p, split);
    check((r1 == HR_UTF8_INVALID) == (fail_at < split));
    int r = r1 == HR_UTF8_INVALID ? r1 : hr_utf8_feed(&s, p + split, n - split);
    check(r == whole);
    /* the valid prefix before the failure is itself not INVALID */
    if (fail_at != SIZE_MAX) {
        hr_utf8_init(&s);
        check(hr_utf8_feed(&s, p, fail_at) != HR_UTF8_INVALID);
        check(hr_utf8_feed(&s, p + fail_at, 1) == HR_UTF8_INVALID);
    }
}

static void check_close(const uint8_t *p, size_t n)
{
    uint16_t code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 0;
    int r = hr_ws_parse_close(p, n, &code, &reason, &rlen);
    if (n == 0) {
        check(r == 0 && code == HR_WS_CLOSE_NO_STATUS && rlen == 0);
        return;
    }
    if (n == 1) {
        check(r == HR_WS_E_CLOSE_PAYLOAD);
        return;
    }
    uint16_t wire = (uint16_t)(p[0] << 8 | p[1]);
    if (!hr_ws_close_code_valid(wire)) {
        check(r == HR_WS_E_CLOSE_PAYLOAD);
        return;
    }
    if (!hr_utf8_valid(p + 2, n - 2)) {
        check(r == HR_ERR_UTF8);
        return;
    }
    check(r == 0 && code == wire && reason == p + 2 && rlen == n - 2);

    /* build it back: a valid reason (<= 123 bytes) survives up to its first NUL */
    char text[128];
    memcpy(text, reason, rlen);
    text[rlen] = '\0';
    uint8_t out[125];
    size_t m = hr_ws_build_close(out, code, text);
    check(m == 2 + strlen(text) && memcmp(out + 2, text, m - 2) == 0);
    uint16_t c2;
    const uint8_t *r2;
    size_t l2;
    check(hr_ws_parse_close(out, m, &c2, &r2, &l2) == 0 && c2 == code && l2 == m - 2);
}

/* hr_ws_build_close on arbitrary text: keeps the longest prefix of whole,
 * valid characters that fits in 123 bytes, and the result always parses. */
static void check_build(const uint8_t *p, size_t n, uint16_t code)
{
    char text[200];
    if (n > sizeof text - 1) n = sizeof text - 1;
    memcpy(text, p, n);
    text[n] = '\0';
    size_t t = strlen(text), lim = t < 123 ? t : 123;
    uint8_t out[125];
    size_t m = hr_ws_build_close(out, code, text);
    check(m >= 2 && m - 2 <= lim);
    size_t kept = m - 2;
    check(out[0] == code >> 8 && out[1] == (code & 0xFF));
    check(memcmp(out + 2, text, kept) == 0 && hr_utf8_valid(out + 2, kept));
    for (size_t j = kept + 1; j <= lim; j++) check(!hr_utf8_valid((const uint8_t *)text, j));
    if (hr_ws_close_code_valid(code)) check(hr_ws_parse_close(out, m, NULL, NULL, NULL) == 0);
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static void check_key(const uint8_t *p, size_t n)
{
    size_t len = n < 24 ? n : 24;
    const char *k = (const char *)p;
    if (!hr_ws_key_valid(k, len)) return;
    check(len == 24 && k[22] == '=' && k[23] == '=');
    char out[29];
    hr_ws_accept_key(k, len, out);
    check(out[28] == '\0' && out[27] == '=');
    for (size_t i = 0; i < 27; i++) check(is_b64(out[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    static const uint64_t maxes[4] = {0, 125, 1000, 65536};
    hr_ws_parse_opts o = {
        .require_mask = sel & 1,
        .forbid_mask = (sel & 2) && !(sel & 1),
        .allow_rsv1 = sel & 4,
        .max_frame = maxes[(sel >> 3) & 3],
    };
    bool cont_is_text = sel & 0x20;
    size_t len = size - 1;
    uint8_t *buf = malloc(len + 1);
    check(buf != NULL);
    memcpy(buf, data + 1, len);

    check_key(buf, len);

    size_t pos = 0;
    unsigned frames = 0;
    uint8_t msg_op = 0; /* opcode of the message continued by CONT frames */
    while (pos < len && frames++ < 64) {
        hr_ws_frame_header h;
        int r = hr_ws_parse_header(buf + pos, len - pos, &o, &h);
        check_header(buf + pos, len - pos, &o, r, &h);
        if (r < 0) break;
        pos += (size_t)r;
        size_t rest = len - pos;
        size_t avail = h.payload_len < rest ? (size_t)h.payload_len : rest;
        uint8_t *pl = buf + pos;
        size_t split = avail ? (size_t)(h.mask[1] ^ (uint8_t)avail ^ sel) % (avail + 1) : 0;
        if (h.masked) {
            check_mask(pl, avail, h.mask, split, (uint64_t)h.mask[2] * 977u);
            hr_ws_mask(pl, avail, h.mask, 0);
        }
        if (h.opcode == HR_WS_OP_TEXT || h.opcode == HR_WS_OP_BINARY) msg_op = h.opcode;
        bool text = h.opcode == HR_WS_OP_TEXT || (h.opcode == HR_WS_OP_CONT && (msg_op == HR_WS_OP_TEXT || cont_is_text));
        if (text && !h.rsv1) check_utf8(pl, avail, split);
        if (text) check_build(pl, avail, (uint16_t)(1000 + h.mask[3] % 16));
        if (h.opcode == HR_WS_OP_CLOSE && avail == h.payload_len) check_close(pl, avail);
        pos += avail;
        if (avail < h.payload_len) break;
    }
    free(buf);
    return 0;
}
