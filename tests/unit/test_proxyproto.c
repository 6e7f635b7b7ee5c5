/* test_proxyproto.c - the PROXY protocol header parser (src/codec/proxyproto.c)
 * from tables: version 1 TCP4 / TCP6 / UNKNOWN lines, version 2 PROXY and
 * LOCAL headers over IPv4 / IPv6 / UNIX / UNSPEC, with TLVs, and every kind
 * of bad input (truncated, too long, bad signature, version, command,
 * family, lengths, spacing, addresses, ports). Each good header is also fed
 * byte by byte: every proper prefix must say "incomplete", never an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec/proxyproto.h"

#include <stdio.h>
#include <string.h>

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Every proper prefix of a good header is incomplete. */
static void prefixes_incomplete(const uint8_t *buf, size_t hlen)
{
    hr_pp_header h;
    for (size_t i = 0; i < hlen; i++) {
        int rc = hr_pp_parse(buf, i, &h);
        if (rc != HR_PP_INCOMPLETE) fail_msg("prefix of %zu of %zu bytes: %d", i, hlen, rc);
    }
}

static void addr_is(const hr_ipaddr *a, const char *text)
{
    char out[HR_IPADDR_STRLEN];
    assert_string_equal(hr_ipaddr_format(a, out, sizeof(out)), text);
}

/* ---- version 1 ------------------------------------------------------------------ */

typedef struct v1case {
    const char *line;
    int rc;               /* > 0: header length expected (the line's), else an error */
    bool local;
    const char *src, *dst;
    uint16_t sport, dport;
} v1case;

static void test_v1_table(void **state)
{
    (void)state;
    static const v1case cases[] = {
        {"PROXY TCP4 203.0.113.5 192.0.2.1 41234 443\r\n", 1, false, "203.0.113.5", "192.0.2.1", 41234, 443},
        {"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 1, false, "255.255.255.255",
         "255.255.255.255", 65535, 65535},
        {"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", 1, false, "0.0.0.0", "0.0.0.0", 0, 0},
        {"PROXY TCP6 2001:db8::5 2001:db8::1 1 2\r\n", 1, false, "2001:db8::5", "2001:db8::1", 1, 2},
        {"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
         1, false, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535},
        /* an IPv4-mapped TCP6 source is an IPv4 client */
        {"PROXY TCP6 ::ffff:198.51.100.7 ::1 5 6\r\n", 1, false, "198.51.100.7", "::1", 5, 6},
        {"PROXY UNKNOWN\r\n", 1, true, NULL, NULL, 0, 0},
        /* UNKNOWN: the rest of the line is ignored */
        {"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", 1, true, NULL, NULL, 0, 0},
        {"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", 1, true, NULL, NULL, 0, 0},
        /* bad lines */
        {"PROXY TCP4 203.0.113.5 192.0.2.1 41234 443\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},  /* LF without CR */
        {"PROXY TCP4 203.0.113.5 192.0.2.1 41234 443\rX", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0}, /* CR without LF */
        {"PROXY TCP4  203.0.113.5 192.0.2.1 41234 443\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0}, /* double space */
        {"PROXY TCP4 203.0.113.5 192.0.2.1 41234 443 \r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0}, /* trailing space */
        {"PROXY TCP4 203.0.113.5 192.0.2.1 41234\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},      /* three fields */
        {"PROXY TCP4 203.0.113.5 192.0.2.1 41234 443 7\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0}, /* five fields */
        {"PROXY TCP4 203.0.113.256 192.0.2.1 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},     /* octet > 255 */
        {"PROXY TCP4 203.0.113 192.0.2.1 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},         /* three octets */
        {"PROXY TCP4 2001:db8::5 192.0.2.1 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},       /* IPv6 in TCP4 */
        {"PROXY TCP6 203.0.113.5 2001:db8::1 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},     /* IPv4 in TCP6 */
        {"PROXY TCP6 2001:db8:::5 2001:db8::1 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},    /* bad IPv6 */
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},         /* port > 65535 */
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 1\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},            /* leading zero */
        {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 1\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},
        {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},             /* protocol */
        {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},             /* case matters */
        {"PROXY UNKNOWNX\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},
        {"PROXY \r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},
        {"PROXY TCP4 1.2.3.4\x01 5.6.7.8 1 2\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},         /* control character */
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xc3\xa9\r\n", HR_PP_E_SYNTAX, false, NULL, NULL, 0, 0},     /* not ASCII */
        /* not PROXY at all */
        {"GET / HTTP/1.1\r\n\r\n", HR_PP_E_SIGNATURE, false, NULL, NULL, 0, 0},
        {"POST /api/publish HTTP/1.1\r\n", HR_PP_E_SIGNATURE, false, NULL, NULL, 0, 0},  /* 'P' then 'O' */
        {"PROXY", HR_PP_INCOMPLETE, false, NULL, NULL, 0, 0},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", HR_PP_INCOMPLETE, false, NULL, NULL, 0, 0},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", HR_PP_INCOMPLETE, false, NULL, NULL, 0, 0},
        {"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", HR_PP_E_SIGNATURE, false, NULL, NULL, 0, 0},
        {"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", HR_PP_E_SIGNATURE, false, NULL, NULL, 0, 0},
        {"\x16\x03\x01\x02\x00\x01", HR_PP_E_SIGNATURE, false, NULL, NULL, 0, 0},  /* a TLS ClientHello without a header */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const v1case *t = &cases[i];
        size_t len = strlen(t->line);
        hr_pp_header h;
        memset(&h, 0xaa, sizeof(h));
        int rc = hr_pp_parse((const uint8_t *)t->line, len, &h);
        int want = t->rc > 0 ? (int)len : t->rc;
        if (rc != want) fail_msg("case %zu \"%s\": got %d, want %d", i, t->line, rc, want);
        if (t->rc <= 0) continue;
        prefixes_incomplete((const uint8_t *)t->line, len);
        assert_int_equal(h.version, 1);
        assert_int_equal(h.local, t->local);
        assert_int_equal(h.tlv_len, 0);
        if (t->local) continue;
        addr_is(&h.src, t->src);
        addr_is(&h.dst, t->dst);
        assert_int_equal(h.src_port, t->sport);
        assert_int_equal(h.dst_port, t->dport);
    }
}

static void test_v1_followed_by_data(void **state)
{
    (void)state;
    const char *s = "PROXY TCP4 203.0.113.5 192.0.2.1 41234 80\r\nGET / HTTP/1.1\r\n\r\n";
    hr_pp_header h;
    int rc = hr_pp_parse((const uint8_t *)s, strlen(s), &h);
    assert_int_equal(rc, (int)strlen("PROXY TCP4 203.0.113.5 192.0.2.1 41234 80\r\n"));
    assert_memory_equal(s + rc, "GET ", 4);
}

static void test_v1_length_bound(void **state)
{
    (void)state;
    /* exactly 107 bytes with its CRLF: accepted (UNKNOWN with filler) */
    char line[256];
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'x', 107 - 14 - 2);
    memcpy(line + 105, "\r\n", 2);
    hr_pp_header h;
    assert_int_equal(hr_pp_parse((const uint8_t *)line, 107, &h), 107);
    assert_true(h.local);
    /* 108: the CRLF comes too late */
    memset(line + 14, 'x', 108 - 14 - 2);
    memcpy(line + 106, "\r\n", 2);
    assert_int_equal(hr_pp_parse((const uint8_t *)line, 108, &h), HR_PP_E_TOO_LONG);
    /* and no CRLF in 107 bytes is an error at once, not "incomplete" */
    memset(line + 14, 'x', 200);
    assert_int_equal(hr_pp_parse((const uint8_t *)line, 107, &h), HR_PP_E_TOO_LONG);
    assert_int_equal(hr_pp_parse((const uint8_t *)line, 106, &h), HR_PP_INCOMPLETE);
    assert_int_equal(hr_pp_parse((const uint8_t *)line, 200, &h), HR_PP_E_TOO_LONG);
}

/* ---- version 2 ------------------------------------------------------------------ */

/* Build a v2 header: ver_cmd, fam, then body[0..blen) as the block. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t blen, int len_field)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    size_t lf = len_field >= 0 ? (size_t)len_field : blen;
    out[14] = (uint8_t)(lf >> 8);
    out[15] = (uint8_t)lf;
    memcpy(out + 16, body, blen);
    return 16 + blen;
}

static const uint8_t IPV4_BLOCK[12] = {203, 0, 113, 5, 192, 0, 2, 1, 0xa1, 0x12, 0x01, 0xbb};
static const uint8_t IPV6_BLOCK[36] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
                                       0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                                       0x00, 0x50, 0x1f, 0x90};

static void test_v2_proxy_ipv4(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = v2(buf, 0x21, 0x11, IPV4_BLOCK, sizeof(IPV4_BLOCK), -1);
    hr_pp_header h;
    assert_int_equal(hr_pp_parse(buf, n, &h), 28);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    addr_is(&h.src, "203.0.113.5");
    addr_is(&h.dst, "192.0.2.1");
    assert_true(h.src.v4);
    assert_int_equal(h.src_port, 0xa112);
    assert_int_equal(h.dst_port, 443);
    assert_int_equal(h.tlv_len, 0);
    prefixes_incomplete(buf, n);
    assert_int_equal(hr_pp_v2_length(buf, n), 28);
    assert_int_equal(hr_pp_v2_length(buf, 15), 0);
}

static void test_v2_proxy_ipv6(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = v2(buf, 0x21, 0x21, IPV6_BLOCK, sizeof(IPV6_BLOCK), -1);
    hr_pp_header h;
    assert_int_equal(hr_pp_parse(buf, n, &h), 52);
    assert_false(h.local);
    assert_false(h.src.v4);
    addr_is(&h.src, "2001:db8::5");
    addr_is(&h.dst, "2001:db8::1");
    assert_int_equal(h.src_port, 80);
    assert_int_equal(h.dst_port, 8080);
    prefixes_incomplete(buf, n);
}

static void test_v2_tlvs_skipped(void **state)
{
    (void)state;
    uint8_t body[12 + 64];
    memcpy(body, IPV4_BLOCK, 12);
    /* PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP of 40 bytes */
    size_t o = 12;
    body[o++] = 0x01, body[o++] = 0, body[o++] = 2, body[o++] = 'h', body[o++] = '2';
    body[o++] = 0x02, body[o++] = 0, body[o++] = 11;
    memcpy(body + o, "example.com", 11), o += 11;
    body[o++] = 0x04, body[o++] = 0, body[o++] = 40;
    memset(body + o, 0, 40), o += 40;
    uint8_t buf[512];
    size_t n = v2(buf, 0x21, 0x11, body, o, -1);
    memcpy(buf + n, "GET / HTTP/1.1\r\n", 16);
    hr_pp_header h;
    assert_int_equal(hr_pp_parse(buf, n + 16, &h), (int)n);
    assert_int_equal(h.tlv_len, o - 12);
    addr_is(&h.src, "203.0.113.5");
    prefixes_incomplete(buf, n);
    /* TLVs are not interpreted: garbage after the addresses is skipped as well */
    memset(body + 12, 0xff, 20);
    n = v2(buf, 0x21, 0x11, body, 32, -1);
    assert_int_equal(hr_pp_parse(buf, n, &h), (int)n);
}

static void test_v2_largest(void **state)
{
    (void)state;
    static uint8_t buf[HR_PP_V2_MAX + 16];
    static uint8_t body[65535];
    memcpy(body, IPV4_BLOCK, 12);
    size_t n = v2(buf, 0x21, 0x11, body, sizeof(body), -1);
    assert_int_equal(n, HR_PP_V2_MAX);
    hr_pp_header h;
    assert_int_equal(hr_pp_parse(buf, n, &h), HR_PP_V2_MAX);
    assert_int_equal(h.tlv_len, 65535 - 12);
    assert_int_equal(hr_pp_parse(buf, n - 1, &h), HR_PP_INCOMPLETE);
    assert_int_equal(hr_pp_v2_length(buf, 16), HR_PP_V2_MAX);
}

typedef struct v2case {
    uint8_t ver_cmd, fam;
    size_t blen;          /* bytes of block sent (taken from a 216-byte block of IPV6 data) */
    int len_field;        /* -1 = blen */
    int rc;               /* > 0: success (16 + len_field), else the error */
    bool local;
} v2case;

static void test_v2_table(void **state)
{
    (void)state;
    static const v2case cases[] = {
        /* LOCAL: addresses ignored, whatever the family; the length is still honoured */
        {0x20, 0x00, 0, -1, 1, true},
        {0x20, 0x11, 12, -1, 1, true},
        {0x20, 0x11, 0, -1, 1, true},     /* LOCAL with a TCP4 family and no addresses: fine */
        {0x20, 0xff, 5, -1, 1, true},     /* LOCAL ignores even an undefined family */
        /* PROXY with families we do not take an address from */
        {0x21, 0x00, 0, -1, 1, true},     /* UNSPEC */
        {0x21, 0x00, 20, -1, 1, true},    /* UNSPEC with some bytes */
        {0x21, 0x10, 0, -1, 1, true},     /* AF_INET, protocol UNSPEC */
        {0x21, 0x12, 12, -1, 1, true},    /* UDP over IPv4 */
        {0x21, 0x22, 36, -1, 1, true},    /* UDP over IPv6 */
        {0x21, 0x31, 216, -1, 1, true},   /* UNIX stream */
        {0x21, 0x32, 216, -1, 1, true},   /* UNIX datagram */
        {0x21, 0x11, 12, -1, 1, false},
        {0x21, 0x21, 36, -1, 1, false},
        /* bad lengths */
        {0x21, 0x11, 11, -1, HR_PP_E_LENGTH, false},
        {0x21, 0x21, 35, -1, HR_PP_E_LENGTH, false},
        {0x21, 0x21, 12, -1, HR_PP_E_LENGTH, false}, /* an IPv4 block announced as IPv6 */
        {0x21, 0x31, 215, -1, HR_PP_E_LENGTH, false},
        {0x21, 0x12, 0, -1, HR_PP_E_LENGTH, false},
        /* versions, commands, families */
        {0x11, 0x11, 12, -1, HR_PP_E_VERSION, false},
        {0x31, 0x11, 12, -1, HR_PP_E_VERSION, false},
        {0x01, 0x11, 12, -1, HR_PP_E_VERSION, false},
        {0x22, 0x11, 12, -1, HR_PP_E_COMMAND, false},
        {0x2f, 0x11, 12, -1, HR_PP_E_COMMAND, false},
        {0x21, 0x41, 12, -1, HR_PP_E_FAMILY, false},
        {0x21, 0x13, 12, -1, HR_PP_E_FAMILY, false},
        {0x21, 0xf1, 12, -1, HR_PP_E_FAMILY, false},
        /* the length field says more than was sent: incomplete (the rest may come) */
        {0x21, 0x11, 12, 40, HR_PP_INCOMPLETE, false},
    };
    uint8_t block[216];
    for (size_t i = 0; i < sizeof(block); i++) block[i] = i < 36 ? IPV6_BLOCK[i] : (uint8_t)i;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const v2case *t = &cases[i];
        uint8_t buf[512];
        size_t n = v2(buf, t->ver_cmd, t->fam, t->fam == 0x11 || t->fam == 0x12 ? IPV4_BLOCK : block, t->blen,
                      t->len_field);
        if ((t->fam == 0x11 || t->fam == 0x12) && t->blen > 12) fail_msg("case %zu: table error", i);
        hr_pp_header h;
        int rc = hr_pp_parse(buf, n, &h);
        int want = t->rc > 0 ? (int)n : t->rc;
        if (rc != want) fail_msg("v2 case %zu (%02x %02x, %zu bytes): got %d, want %d", i, t->ver_cmd, t->fam,
                                 t->blen, rc, want);
        if (t->rc > 0) {
            assert_int_equal(h.local, t->local);
            prefixes_incomplete(buf, n);
        }
    }
}

static void test_v2_errors_early(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x11, IPV4_BLOCK, 12, -1);
    hr_pp_header h;
    /* a wrong byte inside the signature is an error as soon as it is seen */
    for (size_t i = 1; i < 12; i++) {
        uint8_t b[64];
        memcpy(b, buf, n);
        b[i] ^= 0x40;
        for (size_t len = i + 1; len <= n; len++)
            if (hr_pp_parse(b, len, &h) != HR_PP_E_SIGNATURE) fail_msg("byte %zu flipped, %zu bytes", i, len);
    }
    /* the version byte is checked with 13 bytes, the family with 14 */
    buf[12] = 0x11;
    assert_int_equal(hr_pp_parse(buf, 13, &h), HR_PP_E_VERSION);
    buf[12] = 0x21;
    buf[13] = 0x51;
    assert_int_equal(hr_pp_parse(buf, 14, &h), HR_PP_E_FAMILY);
    /* and a v2 signature followed by a v1 line is not v1 */
    assert_int_equal(hr_pp_parse((const uint8_t *)"\r\nPROXY TCP4", 12, &h), HR_PP_E_SIGNATURE);
    assert_int_equal(hr_pp_parse((const uint8_t *)"", 0, &h), HR_PP_INCOMPLETE);
    assert_int_equal(hr_pp_parse((const uint8_t *)"\r", 1, &h), HR_PP_INCOMPLETE);
    assert_int_equal(hr_pp_parse((const uint8_t *)"\x00", 1, &h), HR_PP_E_SIGNATURE);
}

static void test_error_texts(void **state)
{
    (void)state;
    static const int errs[] = {HR_PP_E_SIGNATURE, HR_PP_E_TOO_LONG, HR_PP_E_SYNTAX, HR_PP_E_VERSION,
                               HR_PP_E_COMMAND, HR_PP_E_FAMILY, HR_PP_E_LENGTH};
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        const char *t = hr_pp_error_text(errs[i]);
        assert_non_null(strstr(t, "PROXY"));
        for (size_t j = 0; j < i; j++) assert_string_not_equal(t, hr_pp_error_text(errs[j]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_table),
        cmocka_unit_test(test_v1_followed_by_data),
        cmocka_unit_test(test_v1_length_bound),
        cmocka_unit_test(test_v2_proxy_ipv4),
        cmocka_unit_test(test_v2_proxy_ipv6),
        cmocka_unit_test(test_v2_tlvs_skipped),
        cmocka_unit_test(test_v2_largest),
        cmocka_unit_test(test_v2_table),
        cmocka_unit_test(test_v2_errors_early),
        cmocka_unit_test(test_error_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
