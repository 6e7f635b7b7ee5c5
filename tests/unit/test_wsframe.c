/* test_wsframe.c - unit tests for the WebSocket frame codec (codec/wsframe.c)
 * against RFC 6455: the worked examples of §5.7 byte for byte, every MUST of
 * §5 that a single-frame codec can check (masking, lengths and their
 * boundaries, RSV bits, opcodes, control frames, close payloads), the close
 * code registry of §7.4 and the handshake key of §1.3/§4. Header cases are
 * table-driven and every one is also fed byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/utf8.h"
#include "codec/wsframe.h"

static const hr_ws_parse_opts ANY = {0};
static const hr_ws_parse_opts SRV = {.require_mask = true};
static const hr_ws_parse_opts CLI = {.forbid_mask = true};
static const hr_ws_parse_opts SRV_DEFLATE = {.require_mask = true, .allow_rsv1 = true};
static const hr_ws_parse_opts ANY_DEFLATE = {.allow_rsv1 = true};
static const hr_ws_parse_opts MAX10 = {.max_frame = 10};
static const hr_ws_parse_opts MAX125 = {.max_frame = 125};
static const hr_ws_parse_opts MAX1000 = {.max_frame = 1000};
static const hr_ws_parse_opts MAX65535 = {.max_frame = 65535};
static const hr_ws_parse_opts MAX65536 = {.max_frame = 65536};

/* ---- header table ---------------------------------------------------------- */

typedef struct hdr_case {
    const char *desc;
    uint8_t b[16];
    size_t n;
    const hr_ws_parse_opts *o;
    int result;        /* header length, or HR_WS_E_* */
    size_t decided_at; /* bytes needed for the answer (INCOMPLETE before) */
    /* expected fields on success */
    bool fin, rsv1;
    uint8_t opcode;
    bool masked;
    uint64_t plen;
} hdr_case;

#define B(...) .b = {__VA_ARGS__}, .n = sizeof((uint8_t[]){__VA_ARGS__})
#define OK(hl, f, op, m, len) .result = (hl), .decided_at = (hl), .fin = (f), .opcode = (op), \
                              .masked = (m), .plen = (len)
#define ERR(e, at) .result = (e), .decided_at = (at)
#define MK 0x37, 0xfa, 0x21, 0x3d

static const hdr_case hdr_cases[] = {
    /* §5.7 examples */
    {"5.7 unmasked Hello", B(0x81, 0x05), &CLI, OK(2, true, HR_WS_OP_TEXT, false, 5)},
    {"5.7 masked Hello", B(0x81, 0x85, MK), &SRV, OK(6, true, HR_WS_OP_TEXT, true, 5)},
    {"5.7 fragment Hel", B(0x01, 0x03), &CLI, OK(2, false, HR_WS_OP_TEXT, false, 3)},
    {"5.7 fragment lo", B(0x80, 0x02), &CLI, OK(2, true, HR_WS_OP_CONT, false, 2)},
    {"5.7 unmasked ping", B(0x89, 0x05), &CLI, OK(2, true, HR_WS_OP_PING, false, 5)},
    {"5.7 masked pong", B(0x8a, 0x85, MK), &SRV, OK(6, true, HR_WS_OP_PONG, true, 5)},
    {"5.7 256 bytes binary", B(0x82, 0x7E, 0x01, 0x00), &CLI, OK(4, true, HR_WS_OP_BINARY, false, 256)},
    {"5.7 64KiB binary", B(0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0), &CLI,
     OK(10, true, HR_WS_OP_BINARY, false, 65536)},
    /* §5.2 length boundaries */
    {"len 0", B(0x82, 0x00), &ANY, OK(2, true, HR_WS_OP_BINARY, false, 0)},
    {"len 125", B(0x82, 0x7D), &ANY, OK(2, true, HR_WS_OP_BINARY, false, 125)},
    {"len 126", B(0x82, 0x7E, 0x00, 0x7E), &ANY, OK(4, true, HR_WS_OP_BINARY, false, 126)},
    {"len 65535", B(0x82, 0x7E, 0xFF, 0xFF), &ANY, OK(4, true, HR_WS_OP_BINARY, false, 65535)},
    {"len 65536", B(0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0), &ANY, OK(10, true, HR_WS_OP_BINARY, false, 65536)},
    {"len 2^32", B(0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0), &ANY,
     OK(10, true, HR_WS_OP_BINARY, false, 0x100000000ULL)},
    {"len 2^63-1", B(0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), &ANY,
     OK(10, true, HR_WS_OP_BINARY, false, 0x7FFFFFFFFFFFFFFFULL)},
    {"masked len 125", B(0x82, 0xFD, MK), &SRV, OK(6, true, HR_WS_OP_BINARY, true, 125)},
    {"masked len 126", B(0x82, 0xFE, 0x00, 0x7E, MK), &SRV, OK(8, true, HR_WS_OP_BINARY, true, 126)},
    {"masked len 65535", B(0x82, 0xFE, 0xFF, 0xFF, MK), &SRV, OK(8, true, HR_WS_OP_BINARY, true, 65535)},
    {"masked len 65536", B(0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, MK), &SRV,
     OK(14, true, HR_WS_OP_BINARY, true, 65536)},
    {"non-minimal 16-bit accepted", B(0x82, 0x7E, 0x00, 0x05), &ANY, OK(4, true, HR_WS_OP_BINARY, false, 5)},
    {"non-minimal 64-bit accepted", B(0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5), &ANY,
     OK(10, true, HR_WS_OP_BINARY, false, 5)},
    {"64-bit MSB set", B(0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0), &ANY, ERR(HR_WS_E_LENGTH, 3)},
    {"64-bit all ones", B(0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), &ANY,
     ERR(HR_WS_E_LENGTH, 3)},
    {"64-bit MSB beats max_frame", B(0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0), &MAX10, ERR(HR_WS_E_LENGTH, 3)},
    /* max_frame: exactly at the limit passes, one over fails as soon as known */
    {"max 10: 10", B(0x82, 0x0A), &MAX10, OK(2, true, HR_WS_OP_BINARY, false, 10)},
    {"max 10: 11", B(0x82, 0x0B), &MAX10, ERR(HR_WS_E_TOO_BIG, 2)},
    {"max 125: 125", B(0x82, 0x7D), &MAX125, OK(2, true, HR_WS_OP_BINARY, false, 125)},
    {"max 125: 126", B(0x82, 0x7E, 0x00, 0x7E), &MAX125, ERR(HR_WS_E_TOO_BIG, 4)},
    {"max 1000: 1024 known at 3rd byte", B(0x82, 0x7E, 0x04, 0x00), &MAX1000, ERR(HR_WS_E_TOO_BIG, 3)},
    {"max 1000: 1000", B(0x82, 0x7E, 0x03, 0xE8), &MAX1000, OK(4, true, HR_WS_OP_BINARY, false, 1000)},
    {"max 1000: 1001", B(0x82, 0x7E, 0x03, 0xE9), &MAX1000, ERR(HR_WS_E_TOO_BIG, 4)},
    {"max 65535: 65535", B(0x82, 0x7E, 0xFF, 0xFF), &MAX65535, OK(4, true, HR_WS_OP_BINARY, false, 65535)},
    {"max 65535: 65536", B(0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0), &MAX65535, ERR(HR_WS_E_TOO_BIG, 8)},
    {"max 65536: 65536", B(0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0), &MAX65536,
     OK(10, true, HR_WS_OP_BINARY, false, 65536)},
    {"max 65536: 65537", B(0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 1), &MAX65536, ERR(HR_WS_E_TOO_BIG, 10)},
    {"max 65536: 2^32 known at 6th byte", B(0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0), &MAX65536,
     ERR(HR_WS_E_TOO_BIG, 6)},
    {"max 10: masked 11 before the key", B(0x82, 0x8B, MK), &MAX10, ERR(HR_WS_E_TOO_BIG, 2)},
    /* §5.1 masking */
    {"server: unmasked client frame", B(0x81, 0x05), &SRV, ERR(HR_WS_E_UNMASKED, 2)},
    {"server: unmasked close", B(0x88, 0x00), &SRV, ERR(HR_WS_E_UNMASKED, 2)},
    {"client: masked server frame", B(0x81, 0x85, MK), &CLI, ERR(HR_WS_E_MASKED, 2)},
    {"client: masked ping", B(0x89, 0x80, MK), &CLI, ERR(HR_WS_E_MASKED, 2)},
    {"neutral: masked ok", B(0x81, 0x85, MK), &ANY, OK(6, true, HR_WS_OP_TEXT, true, 5)},
    {"neutral: unmasked ok", B(0x81, 0x05), &ANY, OK(2, true, HR_WS_OP_TEXT, false, 5)},
    {"masked zero length", B(0x81, 0x80, MK), &SRV, OK(6, true, HR_WS_OP_TEXT, true, 0)},
    /* §5.2 RSV bits (and RFC 7692 for RSV1) */
    {"RSV1 without extension", B(0xC1, 0x85, MK), &SRV, ERR(HR_WS_E_RSV, 1)},
    {"RSV2", B(0xA1, 0x85, MK), &SRV, ERR(HR_WS_E_RSV, 1)},
    {"RSV3", B(0x91, 0x85, MK), &SRV, ERR(HR_WS_E_RSV, 1)},
    {"RSV2 even with deflate", B(0xA1, 0x85, MK), &SRV_DEFLATE, ERR(HR_WS_E_RSV, 1)},
    {"RSV3 even with deflate", B(0x92, 0x85, MK), &SRV_DEFLATE, ERR(HR_WS_E_RSV, 1)},
    {"RSV1 text with deflate", B(0xC1, 0x85, MK), &SRV_DEFLATE, OK(6, true, HR_WS_OP_TEXT, true, 5), .rsv1 = true},
    {"RSV1 binary with deflate", B(0xC2, 0x85, MK), &SRV_DEFLATE,
     OK(6, true, HR_WS_OP_BINARY, true, 5), .rsv1 = true},
    {"RSV1 first fragment with deflate", B(0x41, 0x85, MK), &SRV_DEFLATE,
     OK(6, false, HR_WS_OP_TEXT, true, 5), .rsv1 = true},
    {"RSV1 on continuation", B(0xC0, 0x85, MK), &SRV_DEFLATE, ERR(HR_WS_E_RSV, 1)},
    {"RSV1 on close", B(0xC8, 0x80, MK), &SRV_DEFLATE, ERR(HR_WS_E_CONTROL_RSV1, 1)},
    {"RSV1 on ping", B(0xC9, 0x80, MK), &SRV_DEFLATE, ERR(HR_WS_E_CONTROL_RSV1, 1)},
    {"RSV1 on pong", B(0xCA, 0x80, MK), &ANY_DEFLATE, ERR(HR_WS_E_CONTROL_RSV1, 1)},
    {"RSV1 on ping without deflate", B(0xC9, 0x80, MK), &SRV, ERR(HR_WS_E_RSV, 1)},
    /* §5.2 opcodes: reserved ones fail on the first byte */
    {"opcode 3", B(0x83, 0x80, MK), &SRV, ERR(HR_WS_E_OPCODE, 1)},
    {"opcode 0xB", B(0x8B, 0x80, MK), &SRV, ERR(HR_WS_E_OPCODE, 1)},
    {"RSV2 reported before opcode", B(0xA3, 0x80), &ANY, ERR(HR_WS_E_RSV, 1)},
    {"opcode reported before FIN rule", B(0x0B, 0x80), &ANY, ERR(HR_WS_E_OPCODE, 1)},
    {"opcode reported before RSV1 rule", B(0xCF, 0x80), &ANY_DEFLATE, ERR(HR_WS_E_OPCODE, 1)},
    /* §5.4 / §5.5 control frames */
    {"close fragmented", B(0x08, 0x80, MK), &SRV, ERR(HR_WS_E_CONTROL_FRAGMENTED, 1)},
    {"ping fragmented", B(0x09, 0x80, MK), &SRV, ERR(HR_WS_E_CONTROL_FRAGMENTED, 1)},
    {"pong fragmented", B(0x0A, 0x80, MK), &SRV, ERR(HR_WS_E_CONTROL_FRAGMENTED, 1)},
    {"ping 125", B(0x89, 0xFD, MK), &SRV, OK(6, true, HR_WS_OP_PING, true, 125)},
    {"ping 126", B(0x89, 0xFE, 0x00, 0x7E, MK), &SRV, ERR(HR_WS_E_CONTROL_TOO_LONG, 2)},
    {"ping 64-bit length", B(0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, MK), &SRV,
     ERR(HR_WS_E_CONTROL_TOO_LONG, 2)},
    {"close 126", B(0x88, 0x7E, 0x00, 0x7E), &CLI, ERR(HR_WS_E_CONTROL_TOO_LONG, 2)},
    {"pong 16-bit small", B(0x8A, 0x7E, 0x00, 0x05), &CLI, ERR(HR_WS_E_CONTROL_TOO_LONG, 2)},
    {"too long before mask rule", B(0x89, 0x7E), &SRV, ERR(HR_WS_E_CONTROL_TOO_LONG, 2)},
    {"close empty", B(0x88, 0x80, MK), &SRV, OK(6, true, HR_WS_OP_CLOSE, true, 0)},
    {"close 2", B(0x88, 0x02), &CLI, OK(2, true, HR_WS_OP_CLOSE, false, 2)},
    {"data frames may be fragmented", B(0x02, 0x85, MK), &SRV, OK(6, false, HR_WS_OP_BINARY, true, 5)},
    {"non-final continuation", B(0x00, 0x85, MK), &SRV, OK(6, false, HR_WS_OP_CONT, true, 5)},
};

static void check_fields(const hdr_case *c, const hr_ws_frame_header *h)
{
    assert_int_equal(h->header_len, (size_t)c->result);
    assert_int_equal(h->fin, c->fin);
    assert_int_equal(h->rsv1, c->rsv1);
    assert_false(h->rsv2);
    assert_false(h->rsv3);
    assert_int_equal(h->opcode, c->opcode);
    assert_int_equal(h->masked, c->masked);
    assert_true(h->payload_len == c->plen);
    if (c->masked) assert_memory_equal(h->mask, c->b + c->result - 4, 4);
}

static void test_header_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(hdr_cases); i++) {
        const hdr_case *c = &hdr_cases[i];
        hr_ws_frame_header h;
        memset(&h, 0xA5, sizeof h);
        int r = hr_ws_parse_header(c->b, c->n, c->o, &h);
        if (r != c->result) fprintf(stderr, "case \"%s\": got %d\n", c->desc, r);
        assert_int_equal(r, c->result);
        if (r > 0) {
            check_fields(c, &h);
            assert_int_equal(c->n, (size_t)r);
        }
        /* trailing payload bytes do not change the answer */
        uint8_t more[64];
        memcpy(more, c->b, c->n);
        memset(more + c->n, 0xEE, sizeof more - c->n);
        assert_int_equal(hr_ws_parse_header(more, sizeof more, c->o, &h), c->result);
    }
}

/* Fed byte by byte: INCOMPLETE until exactly decided_at bytes, then the
 * final answer for every longer prefix. */
static void test_header_bytewise(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(hdr_cases); i++) {
        const hdr_case *c = &hdr_cases[i];
        for (size_t k = 0; k <= c->n; k++) {
            hr_ws_frame_header h;
            int r = hr_ws_parse_header(c->b, k, c->o, &h);
            int want = k < c->decided_at ? HR_WS_INCOMPLETE : c->result;
            if (r != want) fprintf(stderr, "case \"%s\" prefix %zu: got %d\n", c->desc, k, r);
            assert_int_equal(r, want);
            if (r > 0) check_fields(c, &h);
        }
    }
}

/* All 16 opcodes with FIN set, short length, masked, server side. */
static void test_all_opcodes(void **state)
{
    (void)state;
    for (unsigned op = 0; op < 16; op++) {
        uint8_t b[6] = {(uint8_t)(0x80 | op), 0x80, 1, 2, 3, 4};
        hr_ws_frame_header h;
        bool known = op <= 2 || (op >= 8 && op <= 10);
        assert_int_equal(hr_ws_parse_header(b, sizeof b, &SRV, &h), known ? 6 : HR_WS_E_OPCODE);
        assert_int_equal(hr_ws_parse_header(b, 1, &SRV, &h), known ? HR_WS_INCOMPLETE : HR_WS_E_OPCODE);
        if (known) assert_int_equal(h.opcode, op);
        /* and without FIN: data frames fine, control frames fragmented */
        b[0] = (uint8_t)op;
        int want = !known ? HR_WS_E_OPCODE : op >= 8 ? HR_WS_E_CONTROL_FRAGMENTED : 6;
        assert_int_equal(hr_ws_parse_header(b, sizeof b, &SRV, &h), want);
    }
}

/* Every first byte x every mask bit / 7-bit length class under several option
 * sets, against a spelled-out model of the rules. */
static int model(uint8_t b0, uint8_t b1, const hr_ws_parse_opts *o)
{
    uint8_t op = b0 & 0x0F, len7 = b1 & 0x7F;
    bool control = op >= 8;
    if (b0 & 0x30) return HR_WS_E_RSV;
    if ((op >= 3 && op <= 7) || op >= 0xB) return HR_WS_E_OPCODE;
    if (b0 & 0x40) {
        if (!o->allow_rsv1) return HR_WS_E_RSV;
        if (control) return HR_WS_E_CONTROL_RSV1;
        if (op == 0) return HR_WS_E_RSV;
    }
    if (control && !(b0 & 0x80)) return HR_WS_E_CONTROL_FRAGMENTED;
    if (control && len7 > 125) return HR_WS_E_CONTROL_TOO_LONG;
    if ((b1 & 0x80) && o->forbid_mask) return HR_WS_E_MASKED;
    if (!(b1 & 0x80) && o->require_mask) return HR_WS_E_UNMASKED;
    if (o->max_frame && len7 < 126 && len7 > o->max_frame) return HR_WS_E_TOO_BIG;
    return (int)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0));
}

static void test_first_two_bytes_exhaustive(void **state)
{
    (void)state;
    const hr_ws_parse_opts *opts[] = {&ANY, &SRV, &CLI, &SRV_DEFLATE, &ANY_DEFLATE, &MAX10};
    for (size_t k = 0; k < HR_ARRAY_LEN(opts); k++) {
        for (unsigned b0 = 0; b0 < 256; b0++) {
            for (unsigned b1 = 0; b1 < 256; b1++) {
                uint8_t b[14] = {(uint8_t)b0, (uint8_t)b1}; /* extended length zero */
                hr_ws_frame_header h;
                int want = model((uint8_t)b0, (uint8_t)b1, opts[k]);
                assert_int_equal(hr_ws_parse_header(b, sizeof b, opts[k], &h), want);
                /* an error is already reported with two bytes */
                int two = hr_ws_parse_header(b, 2, opts[k], &h);
                if (want < 0) assert_int_equal(two, want);
                else if (want > 2) assert_int_equal(two, HR_WS_INCOMPLETE);
                else assert_int_equal(two, 2);
            }
        }
    }
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct wr_case {
    const char *desc;
    bool fin, rsv1;
    uint8_t opcode;
    uint64_t len;
    bool masked;
    uint8_t b[16];
    size_t n;
} wr_case;

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

static const wr_case wr_cases[] = {
    {"5.7 unmasked Hello", true, false, HR_WS_OP_TEXT, 5, false, B(0x81, 0x05)},
    {"5.7 masked Hello", true, false, HR_WS_OP_TEXT, 5, true, B(0x81, 0x85, MK)},
    {"5.7 fragment Hel", false, false, HR_WS_OP_TEXT, 3, false, B(0x01, 0x03)},
    {"5.7 fragment lo", true, false, HR_WS_OP_CONT, 2, false, B(0x80, 0x02)},
    {"5.7 ping", true, false, HR_WS_OP_PING, 5, false, B(0x89, 0x05)},
    {"5.7 masked pong", true, false, HR_WS_OP_PONG, 5, true, B(0x8a, 0x85, MK)},
    {"5.7 256 binary", true, false, HR_WS_OP_BINARY, 256, false, B(0x82, 0x7E, 0x01, 0x00)},
    {"5.7 64KiB binary", true, false, HR_WS_OP_BINARY, 65536, false, B(0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0)},
    {"len 0", true, false, HR_WS_OP_BINARY, 0, false, B(0x82, 0x00)},
    {"len 125", true, false, HR_WS_OP_BINARY, 125, false, B(0x82, 0x7D)},
    {"len 126", true, false, HR_WS_OP_BINARY, 126, false, B(0x82, 0x7E, 0x00, 0x7E)},
    {"len 65535", true, false, HR_WS_OP_BINARY, 65535, false, B(0x82, 0x7E, 0xFF, 0xFF)},
    {"len 2^63-1", true, false, HR_WS_OP_BINARY, 0x7FFFFFFFFFFFFFFFULL, false,
     B(0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)},
    {"masked 65536", true, false, HR_WS_OP_BINARY, 65536, true, B(0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, MK)},
    {"rsv1 compressed text", true, true, HR_WS_OP_TEXT, 7, false, B(0xC1, 0x07)},
    {"close", true, false, HR_WS_OP_CLOSE, 2, false, B(0x88, 0x02)},
};

static void test_write_header(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(wr_cases); i++) {
        const wr_case *c = &wr_cases[i];
        uint8_t out[16];
        memset(out, 0xEE, sizeof out);
        size_t n = hr_ws_write_header(out, c->fin, c->rsv1, c->opcode, c->len, c->masked ? rfc_mask : NULL);
        assert_int_equal(n, c->n);
        assert_memory_equal(out, c->b, n);
        assert_true(out[14] == 0xEE && out[15] == 0xEE); /* never more than 14 bytes */
    }
}

/* §5.2: "the minimal number of bytes MUST be used to encode the length";
 * §5.1: the server (mask == NULL) never sets the mask bit. Round trip through
 * the parser at every length-class boundary and around it. */
static void test_write_roundtrip(void **state)
{
    (void)state;
    static const uint64_t lens[] = {0, 1, 124, 125, 126, 127, 255, 256, 65534, 65535, 65536, 65537,
                                    0xFFFFFFFFULL, 0x100000000ULL, 0x7FFFFFFFFFFFFFFEULL,
                                    0x7FFFFFFFFFFFFFFFULL};
    static const uint8_t ops[] = {HR_WS_OP_CONT, HR_WS_OP_TEXT, HR_WS_OP_BINARY};
    for (size_t i = 0; i < HR_ARRAY_LEN(lens); i++) {
        for (size_t k = 0; k < sizeof ops; k++) {
            for (int m = 0; m < 2; m++) {
                for (int fin = 0; fin < 2; fin++) {
                    uint8_t out[14];
                    size_t n = hr_ws_write_header(out, fin, false, ops[k], lens[i], m ? rfc_mask : NULL);
                    size_t want = (lens[i] <= 125 ? 2 : lens[i] <= 65535 ? 4 : 10) + (m ? 4 : 0);
                    assert_int_equal(n, want);
                    assert_int_equal(!!(out[1] & 0x80), m);
                    hr_ws_frame_header h;
                    assert_int_equal(hr_ws_parse_header(out, n, m ? &SRV : &CLI, &h), (int)n);
                    assert_true(h.payload_len == lens[i]);
                    assert_int_equal(h.opcode, ops[k]);
                    assert_int_equal(h.fin, fin);
                    assert_int_equal(h.masked, m);
                    if (m) assert_memory_equal(h.mask, rfc_mask, 4);
                    /* the server's own frames are refused by a server */
                    if (!m) assert_int_equal(hr_ws_parse_header(out, n, &SRV, &h), HR_WS_E_UNMASKED);
                }
            }
        }
    }
    /* control frames at their limit */
    static const uint8_t ctl[] = {HR_WS_OP_CLOSE, HR_WS_OP_PING, HR_WS_OP_PONG};
    for (size_t k = 0; k < sizeof ctl; k++) {
        uint8_t out[14];
        hr_ws_frame_header h;
        size_t n = hr_ws_write_header(out, true, false, ctl[k], 125, rfc_mask);
        assert_int_equal(hr_ws_parse_header(out, n, &SRV, &h), 6);
        n = hr_ws_write_header(out, true, false, ctl[k], 126, rfc_mask);
        assert_int_equal(hr_ws_parse_header(out, n, &SRV, &h), HR_WS_E_CONTROL_TOO_LONG);
        n = hr_ws_write_header(out, false, false, ctl[k], 0, rfc_mask);
        assert_int_equal(hr_ws_parse_header(out, n, &SRV, &h), HR_WS_E_CONTROL_FRAGMENTED);
    }
}

/* ---- §5.7 whole frames ---------------------------------------------------- */

static void parse_frame(const uint8_t *f, size_t n, const hr_ws_parse_opts *o, uint8_t op, bool fin,
                        const char *payload)
{
    uint8_t buf[32];
    memcpy(buf, f, n);
    hr_ws_frame_header h;
    int r = hr_ws_parse_header(buf, n, o, &h);
    assert_true(r > 0);
    assert_int_equal(h.opcode, op);
    assert_int_equal(h.fin, fin);
    assert_int_equal(h.payload_len, strlen(payload));
    assert_int_equal((size_t)r + h.payload_len, n);
    if (h.masked) hr_ws_mask(buf + r, (size_t)h.payload_len, h.mask, 0);
    assert_memory_equal(buf + r, payload, strlen(payload));
    /* and the writer reproduces the frame byte for byte */
    uint8_t out[32];
    size_t hl = hr_ws_write_header(out, fin, false, op, h.payload_len, h.masked ? h.mask : NULL);
    memcpy(out + hl, payload, strlen(payload));
    if (h.masked) hr_ws_mask(out + hl, strlen(payload), h.mask, 0);
    assert_int_equal(hl + strlen(payload), n);
    assert_memory_equal(out, f, n);
}

static void test_rfc_examples(void **state)
{
    (void)state;
    static const uint8_t unmasked_text[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t masked_text[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    static const uint8_t frag2[] = {0x80, 0x02, 0x6c, 0x6f};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    parse_frame(unmasked_text, sizeof unmasked_text, &CLI, HR_WS_OP_TEXT, true, "Hello");
    parse_frame(masked_text, sizeof masked_text, &SRV, HR_WS_OP_TEXT, true, "Hello");
    parse_frame(frag1, sizeof frag1, &CLI, HR_WS_OP_TEXT, false, "Hel");
    parse_frame(frag2, sizeof frag2, &CLI, HR_WS_OP_CONT, true, "lo");
    parse_frame(ping, sizeof ping, &CLI, HR_WS_OP_PING, true, "Hello");
    parse_frame(pong, sizeof pong, &SRV, HR_WS_OP_PONG, true, "Hello");

    /* the masked example unmasked in every two-piece split */
    for (size_t k = 0; k <= 5; k++) {
        uint8_t p[5];
        memcpy(p, masked_text + 6, 5);
        hr_ws_mask(p, k, rfc_mask, 0);
        hr_ws_mask(p + k, 5 - k, rfc_mask, k);
        assert_memory_equal(p, "Hello", 5);
    }

    /* 256 bytes and 64 KiB of binary data in a single unmasked frame */
    uint8_t *big = malloc(10 + 65536);
    assert_non_null(big);
    for (size_t i = 0; i < 65536; i++) big[10 + i] = (uint8_t)(i * 7);
    size_t hl = hr_ws_write_header(big, true, false, HR_WS_OP_BINARY, 256, NULL);
    assert_int_equal(hl, 4);
    assert_memory_equal(big, ((const uint8_t[]){0x82, 0x7E, 0x01, 0x00}), 4);
    hl = hr_ws_write_header(big, true, false, HR_WS_OP_BINARY, 65536, NULL);
    assert_int_equal(hl, 10);
    assert_memory_equal(big, ((const uint8_t[]){0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}), 10);
    hr_ws_frame_header h;
    assert_int_equal(hr_ws_parse_header(big, 10 + 65536, &CLI, &h), 10);
    assert_true(h.payload_len == 65536 && !h.masked && h.fin && h.opcode == HR_WS_OP_BINARY);
    free(big);
}

/* ---- masking ---------------------------------------------------------------- */

static void ref_mask(uint8_t *d, size_t n, const uint8_t m[4], uint64_t off)
{
    for (size_t i = 0; i < n; i++) d[i] ^= m[(off + i) % 4]; /* §5.3: j = i MOD 4 */
}

static void test_mask_offsets(void **state)
{
    (void)state;
    static const uint8_t masks[][4] = {{0x37, 0xfa, 0x21, 0x3d}, {0, 0, 0, 0}, {0xFF, 0xFF, 0xFF, 0xFF},
                                       {1, 2, 3, 4}};
    uint8_t base[64], a[64], b[64];
    for (size_t i = 0; i < sizeof base; i++) base[i] = (uint8_t)(i * 31 + 7);
    for (size_t mi = 0; mi < HR_ARRAY_LEN(masks); mi++) {
        for (uint64_t off = 0; off < 8; off++) {
            for (size_t len = 0; len <= 40; len++) {
                /* start at every alignment of the data pointer as well */
                for (size_t align = 0; align < 8; align++) {
                    memcpy(a, base, sizeof a);
                    memcpy(b, base, sizeof b);
                    hr_ws_mask(a + align, len, masks[mi], off);
                    ref_mask(b + align, len, masks[mi], off);
                    assert_memory_equal(a, b, sizeof a); /* incl. no write outside */
                }
            }
        }
        /* huge offsets: only offset mod 4 matters */
        memcpy(a, base, sizeof a);
        memcpy(b, base, sizeof b);
        hr_ws_mask(a, 37, masks[mi], 0xFFFFFFFFFFFFFFFFULL);
        ref_mask(b, 37, masks[mi], 3);
        assert_memory_equal(a, b, 37);
    }
}

/* Masking is an involution, and unmasking in arbitrary pieces (offset = bytes
 * already done) equals unmasking at once, for long buffers too. */
static void test_mask_pieces(void **state)
{
    (void)state;
    enum { N = 5000 };
    uint8_t *orig = malloc(N), *once = malloc(N), *pieces = malloc(N);
    assert_true(orig && once && pieces);
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) orig[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    const uint8_t mask[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    memcpy(once, orig, N);
    hr_ws_mask(once, N, mask, 0);
    for (int trial = 0; trial < 50; trial++) {
        memcpy(pieces, orig, N);
        size_t pos = 0;
        while (pos < N) {
            size_t take = (size_t)((x = x * 1103515245u + 12345u) >> 16) % 97;
            if (take > N - pos) take = N - pos;
            hr_ws_mask(pieces + pos, take, mask, pos);
            pos += take;
        }
        assert_memory_equal(pieces, once, N);
    }
    hr_ws_mask(once, N, mask, 0);
    assert_memory_equal(once, orig, N);
    free(orig);
    free(once);
    free(pieces);
}

/* ---- close frames (§5.5.1, §7.4) --------------------------------------------- */

static void test_close_codes(void **state)
{
    (void)state;
    static const struct {
        uint16_t code;
        bool valid;
    } t[] = {
        {0, false},    {1, false},    {999, false},  {1000, true},  {1001, true},  {1002, true},
        {1003, true},  {1004, false}, {1005, false}, {1006, false}, {1007, true},  {1008, true},
        {1009, true},  {1010, true},  {1011, true},  {1012, true},  {1013, true},  {1014, true},
        {1015, false}, {1016, false}, {1100, false}, {2000, false}, {2999, false}, {3000, true},
        {3001, true},  {3999, true},  {4000, true},  {4999, true},  {5000, false}, {65535, false},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(t); i++) {
        if (hr_ws_close_code_valid(t[i].code) != t[i].valid) fprintf(stderr, "code %u\n", t[i].code);
        assert_int_equal(hr_ws_close_code_valid(t[i].code), t[i].valid);
        /* and the same verdict from a close payload carrying it */
        uint8_t p[2] = {(uint8_t)(t[i].code >> 8), (uint8_t)t[i].code};
        uint16_t code = 0;
        int r = hr_ws_parse_close(p, 2, &code, NULL, NULL);
        assert_int_equal(r, t[i].valid ? 0 : HR_WS_E_CLOSE_PAYLOAD);
        if (t[i].valid) assert_int_equal(code, t[i].code);
    }
    /* exhaustively against the ranges */
    for (uint32_t c = 0; c <= 0xFFFF; c++) {
        bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        assert_int_equal(hr_ws_close_code_valid((uint16_t)c), want);
    }
}

typedef struct close_case {
    const char *desc;
    const char *p;
    size_t n;
    int result;
    uint16_t code;
    const char *reason; /* on success */
} close_case;

#define CL(d, s, r, c, why) {d, s, sizeof(s) - 1, r, c, why}

static const close_case close_cases[] = {
    CL("empty: no status", "", 0, HR_WS_CLOSE_NO_STATUS, ""),
    CL("one byte", "\x03", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("1000 no reason", "\x03\xE8", 0, 1000, ""),
    CL("1001 with reason", "\x03\xE9" "bye", 0, 1001, "bye"),
    CL("4999 with utf-8 reason", "\x13\x87" "\xC3\xA9t\xC3\xA9", 0, 4999, "\xC3\xA9t\xC3\xA9"),
    CL("3000 with NUL in reason", "\x0B\xB8" "a\x00" "b", 0, 3000, NULL),
    CL("code 0", "\x00\x00", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("code 999", "\x03\xE7", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("code 1004", "\x03\xEC", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("code 1005 on the wire", "\x03\xED", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("code 1006 on the wire", "\x03\xEE" "x", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("code 1015", "\x03\xF7", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("code 5000", "\x13\x88", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("code 65535", "\xFF\xFF", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("invalid code beats bad utf-8", "\x03\xE7\xFF", HR_WS_E_CLOSE_PAYLOAD, 0, NULL),
    CL("reason invalid utf-8", "\x03\xE8\xFF", HR_ERR_UTF8, 0, NULL),
    CL("reason surrogate", "\x03\xE8" "ok\xED\xA0\x80", HR_ERR_UTF8, 0, NULL),
    CL("reason overlong", "\x03\xE8\xC0\xAF", HR_ERR_UTF8, 0, NULL),
    CL("reason truncated", "\x03\xE8" "abc\xE2\x82", HR_ERR_UTF8, 0, NULL),
};

static void test_parse_close(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(close_cases); i++) {
        const close_case *c = &close_cases[i];
        uint16_t code = 7;
        const uint8_t *reason = (const uint8_t *)"x";
        size_t rlen = 99;
        int r = hr_ws_parse_close((const uint8_t *)c->p, c->n, &code, &reason, &rlen);
        if (r != c->result) fprintf(stderr, "close case \"%s\": got %d\n", c->desc, r);
        assert_int_equal(r, c->result);
        if (r != 0) continue;
        assert_int_equal(code, c->code);
        assert_int_equal(rlen, c->n ? c->n - 2 : 0);
        if (c->n > 2) assert_ptr_equal(reason, (const uint8_t *)c->p + 2);
        if (c->reason) assert_memory_equal(reason, c->reason, rlen);
    }
    /* §5.5.1: a body, if present, starts with a 2-byte code; one byte of an
     * otherwise valid code is still an error */
    assert_int_equal(hr_ws_parse_close((const uint8_t *)"\x03\xE8", 1, NULL, NULL, NULL),
                     HR_WS_E_CLOSE_PAYLOAD);
    /* §5.5: 125 bytes is the most a close payload can hold */
    uint8_t p[126];
    memset(p, 'r', sizeof p);
    p[0] = 0x03, p[1] = 0xE8;
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    assert_int_equal(hr_ws_parse_close(p, 125, &code, &reason, &rlen), 0);
    assert_int_equal(rlen, 123);
    assert_int_equal(hr_ws_parse_close(p, 126, &code, &reason, &rlen), HR_WS_E_CLOSE_PAYLOAD);
}

static void test_build_close(void **state)
{
    (void)state;
    char reason[256];
    uint8_t out[130];
    uint16_t code;
    const uint8_t *r;
    size_t rlen;

    /* no reason / empty reason */
    memset(out, 0xEE, sizeof out);
    assert_int_equal(hr_ws_build_close(out, 1000, NULL), 2);
    assert_memory_equal(out, "\x03\xE8", 2);
    assert_int_equal(hr_ws_build_close(out, 4001, ""), 2);
    assert_memory_equal(out, "\x0F\xA1", 2);
    assert_int_equal(hr_ws_build_close(out, 1001, "going away"), 12);
    assert_memory_equal(out, "\x03\xE9going away", 12);

    /* ASCII at and over the limit: 123 bytes kept */
    static const size_t lens[] = {122, 123, 124, 200};
    for (size_t i = 0; i < HR_ARRAY_LEN(lens); i++) {
        memset(reason, 'a', lens[i]);
        reason[lens[i]] = '\0';
        memset(out, 0xEE, sizeof out);
        size_t n = hr_ws_build_close(out, 1000, reason);
        assert_int_equal(n, 2 + HR_MIN(lens[i], (size_t)123));
        assert_int_equal(out[125], 0xEE); /* never more than 125 bytes */
    }

    /* a multi-byte character straddling byte 123 is dropped whole */
    static const struct {
        const char *ch;
        size_t before; /* ASCII bytes in front of it */
        size_t keep;   /* reason bytes kept */
    } t[] = {
        {"\xC3\xA9", 121, 123},         /* fits exactly */
        {"\xC3\xA9", 122, 122},         /* would end at 124 */
        {"\xE2\x82\xAC", 120, 123},     /* fits exactly */
        {"\xE2\x82\xAC", 121, 121},
        {"\xE2\x82\xAC", 122, 122},
        {"\xF0\x9F\x98\x80", 119, 123}, /* fits exactly */
        {"\xF0\x9F\x98\x80", 120, 120},
        {"\xF0\x9F\x98\x80", 121, 121},
        {"\xF0\x9F\x98\x80", 122, 122},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(t); i++) {
        memset(reason, 'b', t[i].before);
        strcpy(reason + t[i].before, t[i].ch);
        strcat(reason, "tail");
        size_t n = hr_ws_build_close(out, 1011, reason);
        assert_int_equal(n, 2 + t[i].keep);
        assert_memory_equal(out + 2, reason, t[i].keep);
        assert_int_equal(hr_ws_parse_close(out, n, &code, &r, &rlen), 0);
        assert_int_equal(code, 1011);
        assert_int_equal(rlen, t[i].keep);
    }
    /* all 3-byte characters: truncation always yields valid UTF-8 */
    for (size_t i = 0; i < 42; i++) strcpy(reason + 3 * i, "\xE2\x82\xAC");
    size_t n = hr_ws_build_close(out, 1000, reason);
    assert_int_equal(n, 2 + 123);
    assert_true(hr_utf8_valid(out + 2, n - 2));

    /* an invalid reason is cut at its first bad byte, so the payload is
     * always parseable */
    n = hr_ws_build_close(out, 1000, "ok\xFF" "more");
    assert_int_equal(n, 4);
    n = hr_ws_build_close(out, 1000, "ok\xE2\x82");
    assert_int_equal(n, 4);
    assert_int_equal(hr_ws_parse_close(out, n, &code, &r, &rlen), 0);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_errors(void **state)
{
    (void)state;
    static const int errs[] = {HR_WS_E_RSV, HR_WS_E_OPCODE, HR_WS_E_CONTROL_FRAGMENTED,
                               HR_WS_E_CONTROL_TOO_LONG, HR_WS_E_UNMASKED, HR_WS_E_MASKED,
                               HR_WS_E_LENGTH, HR_WS_E_TOO_BIG, HR_WS_E_CONTROL_RSV1,
                               HR_WS_E_CLOSE_PAYLOAD};
    for (size_t i = 0; i < HR_ARRAY_LEN(errs); i++) {
        uint16_t want = errs[i] == HR_WS_E_TOO_BIG ? 1009 : 1002;
        assert_int_equal(hr_ws_error_close_code(errs[i]), want);
        assert_true(hr_ws_close_code_valid(hr_ws_error_close_code(errs[i])));
        const char *s = hr_ws_error_text(errs[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0 && strlen(s) <= 123); /* fits in a close reason */
        assert_true(hr_utf8_valid((const uint8_t *)s, strlen(s)));
        for (size_t j = 0; j < i; j++) assert_string_not_equal(s, hr_ws_error_text(errs[j]));
    }
    assert_non_null(hr_ws_error_text(HR_WS_INCOMPLETE));
    assert_non_null(hr_ws_error_text(HR_ERR_UTF8));
    assert_non_null(hr_ws_error_text(-12345));
}

/* ---- handshake keys (§1.3, §4.2.2) -------------------------------------------- */

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    memset(out, 'x', sizeof out);
    hr_ws_accept_key(key, strlen(key), out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* only key_len bytes are used */
    const char *padded = "dGhlIHNhbXBsZSBub25jZQ==garbage";
    hr_ws_accept_key(padded, 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* other keys; expected values computed independently (Python hashlib) */
    hr_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", 24, out);
    assert_string_equal(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
    /* long keys take the heap path */
    char longkey[300];
    memset(longkey, 'k', sizeof longkey);
    hr_ws_accept_key(longkey, sizeof longkey, out);
    assert_string_equal(out, "0epks0nN8rNytIigCrEHZPQGWfI=");
    hr_ws_accept_key("", 0, out);
    assert_string_equal(out, "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=");
}

static void test_key_valid(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        bool valid;
    } t[] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", true},
        {"AAAAAAAAAAAAAAAAAAAAAA==", true},
        {"/////////////////////w==", true},
        {"++++++++++++++++++++/g==", true},
        {"x3JJHMbDL1EzLkh9GBhXDw==", true},
        {"0123456789abcdefghijkQ==", true},
        {"dGhlIHNhbXBsZSBub25jZR==", false}, /* R: low bits set, 17+ bytes */
        {"dGhlIHNhbXBsZSBub25jZB==", false},
        {"dGhlIHNhbXBsZSBub25jZ/==", false},
        {"dGhlIHNhbXBsZSBub25jZQ=", false},  /* 23 chars */
        {"dGhlIHNhbXBsZSBub25jZQ===", false}, /* 25 chars */
        {"dGhlIHNhbXBsZSBub25jZQ", false},
        {"dGhlIHNhbXBsZSBub25jZQAA", false}, /* no padding: 18 bytes */
        {"dGhlIHNhbXBsZSBub25jZQ=A", false},
        {"dGhlIHNhbXBsZSBub25j=Q==", false}, /* padding in the middle */
        {"dGhlIHNhbXBsZSBub25jZ-==", false}, /* base64url is not base64 */
        {"dGhlIHNhbXBsZSBub25j_Q==", false},
        {"dGhlIHNhbXBsZSBub25jZ Q=", false},
        {"dGhlIHNhbXBsZSBub25jZ\x00Q=", false},
        {"dGhlIHNhbXBsZSBub25jZ\xC3\xA9=", false},
        {"", false},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(t); i++) {
        size_t n = strlen(t[i].key);
        if (i == 18) n = 24; /* the embedded NUL one */
        if (hr_ws_key_valid(t[i].key, n) != t[i].valid) fprintf(stderr, "key %zu\n", i);
        assert_int_equal(hr_ws_key_valid(t[i].key, n), t[i].valid);
    }
    assert_false(hr_ws_key_valid(NULL, 24));
    /* exactly the four characters with zero low bits are allowed before "==" */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char key[25] = "AAAAAAAAAAAAAAAAAAAAAA==";
    for (size_t i = 0; i < 64; i++) {
        key[21] = b64[i];
        assert_int_equal(hr_ws_key_valid(key, 24), (i & 15) == 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_table),
        cmocka_unit_test(test_header_bytewise),
        cmocka_unit_test(test_all_opcodes),
        cmocka_unit_test(test_first_two_bytes_exhaustive),
        cmocka_unit_test(test_write_header),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_mask_offsets),
        cmocka_unit_test(test_mask_pieces),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_parse_close),
        cmocka_unit_test(test_build_close),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_key_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
