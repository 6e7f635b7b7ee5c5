/* test_pmdeflate.c - unit tests for permessage-deflate (codec/pmdeflate):
 * negotiation table, RFC 7692 §7.2.3 examples byte for byte, roundtrips,
 * the max_out (zip bomb) guard and corrupt input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/pmdeflate.h"

/* ------------------------------------------------------------------------ */
/* Negotiation                                                               */
/* ------------------------------------------------------------------------ */

enum cfg_kind {
    CFG_DEFAULT,     /* server_no_context_takeover always, windows 15/15 */
    CFG_TAKEOVER,    /* server context takeover allowed */
    CFG_SMALL,       /* server window 10, client window 10 */
    CFG_DISABLED,
};

static hr_pmd_config make_cfg(enum cfg_kind k)
{
    hr_pmd_config c = {
        .enabled = true,
        .server_context_takeover = false,
        .server_max_window_bits = 15,
        .client_max_window_bits = 15,
        .mem_level = 8,
        .level = 6,
        .min_size = 0,
    };
    switch (k) {
    case CFG_DEFAULT: break;
    case CFG_TAKEOVER: c.server_context_takeover = true; break;
    case CFG_SMALL: c.server_max_window_bits = 10; c.client_max_window_bits = 10; break;
    case CFG_DISABLED: c.enabled = false; break;
    }
    return c;
}

typedef struct neg_case {
    const char *hdr;
    enum cfg_kind cfg;
    int rc;
    bool snct, cnct;
    int smwb, cmwb;
    const char *resp;
} neg_case;

#define PMD "permessage-deflate"
#define SNCT "; server_no_context_takeover"
#define CNCT "; client_no_context_takeover"

static const neg_case neg_cases[] = {
    /* plain offers */
    {PMD, CFG_DEFAULT, 1, true, false, 15, 15, PMD SNCT},
    {PMD, CFG_TAKEOVER, 1, false, false, 15, 15, PMD},
    {PMD, CFG_SMALL, 1, true, false, 10, 15, PMD SNCT "; server_max_window_bits=10"},
    /* what Chrome / Firefox send */
    {PMD "; client_max_window_bits", CFG_DEFAULT, 1, true, false, 15, 15, PMD SNCT},
    {PMD "; client_max_window_bits", CFG_TAKEOVER, 1, false, false, 15, 15, PMD},
    {PMD "; client_max_window_bits", CFG_SMALL, 1, true, false, 10, 10,
     PMD SNCT "; server_max_window_bits=10; client_max_window_bits=10"},
    /* first acceptable offer wins */
    {PMD "; client_max_window_bits, " PMD, CFG_SMALL, 1, true, false, 10, 10,
     PMD SNCT "; server_max_window_bits=10; client_max_window_bits=10"},
    {PMD ", " PMD "; client_max_window_bits", CFG_SMALL, 1, true, false, 10, 15,
     PMD SNCT "; server_max_window_bits=10"},
    /* server_max_window_bits */
    {PMD "; server_max_window_bits=10", CFG_DEFAULT, 1, true, false, 10, 15,
     PMD SNCT "; server_max_window_bits=10"},
    {PMD "; server_max_window_bits=15", CFG_TAKEOVER, 1, false, false, 15, 15,
     PMD "; server_max_window_bits=15"},
    {PMD "; server_max_window_bits=12", CFG_SMALL, 1, true, false, 10, 15,
     PMD SNCT "; server_max_window_bits=10"},
    {PMD "; server_max_window_bits=9", CFG_SMALL, 1, true, false, 9, 15,
     PMD SNCT "; server_max_window_bits=9"},
    {PMD "; server_max_window_bits=8", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=8, " PMD, CFG_DEFAULT, 1, true, false, 15, 15, PMD SNCT},
    {PMD "; server_max_window_bits=\"10\"", CFG_DEFAULT, 1, true, false, 10, 15,
     PMD SNCT "; server_max_window_bits=10"},
    {PMD "; server_max_window_bits=\"1\\0\"", CFG_DEFAULT, 1, true, false, 10, 15,
     PMD SNCT "; server_max_window_bits=10"},
    /* client_max_window_bits with a value */
    {PMD "; client_max_window_bits=9", CFG_DEFAULT, 1, true, false, 15, 9,
     PMD SNCT "; client_max_window_bits=9"},
    {PMD "; client_max_window_bits=15", CFG_DEFAULT, 1, true, false, 15, 15,
     PMD SNCT "; client_max_window_bits=15"},
    {PMD "; client_max_window_bits=12", CFG_SMALL, 1, true, false, 10, 10,
     PMD SNCT "; server_max_window_bits=10; client_max_window_bits=10"},
    {PMD "; client_max_window_bits=8", CFG_DEFAULT, 1, true, false, 15, 8,
     PMD SNCT "; client_max_window_bits=8"},
    {PMD "; client_max_window_bits=\"11\"", CFG_DEFAULT, 1, true, false, 15, 11,
     PMD SNCT "; client_max_window_bits=11"},
    /* context takeover flags */
    {PMD "; client_no_context_takeover", CFG_TAKEOVER, 1, false, true, 15, 15, PMD CNCT},
    {PMD "; server_no_context_takeover", CFG_TAKEOVER, 1, true, false, 15, 15, PMD SNCT},
    {PMD "; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=12; client_max_window_bits=11",
     CFG_DEFAULT, 1, true, true, 12, 11,
     PMD SNCT CNCT "; server_max_window_bits=12; client_max_window_bits=11"},
    /* bad values: offer declined */
    {PMD "; server_max_window_bits=16", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=7", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=abc", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=\"abc\"", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=010", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=08", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=100000000000000000010", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; client_max_window_bits=16", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; client_max_window_bits=7", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; client_max_window_bits=abc", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; client_no_context_takeover=1", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_no_context_takeover=\"x\"", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    /* duplicates: declined */
    {PMD "; client_no_context_takeover; client_no_context_takeover", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_no_context_takeover; server_no_context_takeover", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=10; server_max_window_bits=11", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; client_max_window_bits; client_max_window_bits=10", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    /* unknown parameters: declined, next offer tried */
    {PMD "; foo", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; foo=bar", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; foo, " PMD "; client_no_context_takeover", CFG_DEFAULT, 1, true, true, 15, 15, PMD SNCT CNCT},
    /* names are compared exactly */
    {"Permessage-Deflate", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {PMD "; Server_No_Context_Takeover", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    /* other extensions */
    {"x-webkit-deflate-frame", CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},
    {"x-webkit-deflate-frame, " PMD, CFG_DEFAULT, 1, true, false, 15, 15, PMD SNCT},
    {"foo; bar=baz; q=\"x\\-y\", " PMD "; client_max_window_bits", CFG_TAKEOVER, 1, false, false, 15, 15, PMD},
    {"foo; " PMD, CFG_DEFAULT, 0, 0, 0, 0, 0, NULL},   /* a parameter named so */
    /* whitespace and empty list elements */
    {" \t" PMD " ;\tclient_max_window_bits = 10 , foo \t", CFG_DEFAULT, 1, true, false, 15, 10,
     PMD SNCT "; client_max_window_bits=10"},
    {PMD ";server_max_window_bits=11;client_no_context_takeover", CFG_DEFAULT, 1, true, true, 11, 15,
     PMD SNCT CNCT "; server_max_window_bits=11"},
    {"a, , " PMD, CFG_DEFAULT, 1, true, false, 15, 15, PMD SNCT},
    {", " PMD ",", CFG_DEFAULT, 1, true, false, 15, 15, PMD SNCT},
    {",,," PMD ",,", CFG_DEFAULT, 1, true, false, 15, 15, PMD SNCT},
    /* syntax errors */
    {"", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {" ", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {" , ,", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD ";;", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD ";", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; =1", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a=", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a==1", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a=\"\"", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a=\"x", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a=\"x\\", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a=\"x y\"", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a=\"x\\\"y\"", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},   /* x"y: not a token */
    {PMD "; a=\"1\"2", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; server_max_window_bits=10 11", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD " foo", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {"; " PMD, CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {"perm@ssage-deflate", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {"\"" PMD "\"", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "(x)", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD ", " PMD "; x=\"", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},  /* after a good offer */
    {PMD ", ;", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "\r\n", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    {PMD "; a=\xc3\xa9", CFG_DEFAULT, HR_ERR_PROTO, 0, 0, 0, 0, NULL},
    /* disabled: nothing is looked at */
    {PMD, CFG_DISABLED, 0, 0, 0, 0, 0, NULL},
    {PMD ";;", CFG_DISABLED, 0, 0, 0, 0, 0, NULL},
};

static void test_negotiate_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(neg_cases); i++) {
        const neg_case *tc = &neg_cases[i];
        hr_pmd_config cfg = make_cfg(tc->cfg);
        hr_pmd_params p;
        memset(&p, 0xAA, sizeof p);
        char resp[256];
        memset(resp, 'Z', sizeof resp);
        int rc = hr_pmd_negotiate(tc->hdr, strlen(tc->hdr), &cfg, &p, resp, sizeof resp);
        if (rc != tc->rc) print_error("case %zu: \"%s\"\n", i, tc->hdr);
        assert_int_equal(rc, tc->rc);
        if (rc != 1) continue;
        if (strcmp(resp, tc->resp) != 0)
            print_error("case %zu: \"%s\" -> \"%s\"\n", i, tc->hdr, resp);
        assert_string_equal(resp, tc->resp);
        assert_int_equal(p.server_no_context_takeover, tc->snct);
        assert_int_equal(p.client_no_context_takeover, tc->cnct);
        assert_int_equal(p.server_max_window_bits, tc->smwb);
        assert_int_equal(p.client_max_window_bits, tc->cmwb);

        /* our response is itself an acceptable offer with the same outcome */
        hr_pmd_params p2;
        char resp2[256];
        assert_int_equal(hr_pmd_negotiate(resp, strlen(resp), &cfg, &p2, resp2, sizeof resp2), 1);
        assert_int_equal(p2.server_max_window_bits, p.server_max_window_bits);
        assert_int_equal(p2.client_no_context_takeover, p.client_no_context_takeover);
    }
}

static void test_negotiate_resp_cap(void **state)
{
    (void)state;
    hr_pmd_config cfg = make_cfg(CFG_DEFAULT);
    hr_pmd_params p;
    const char *want = PMD SNCT;
    size_t need = strlen(want) + 1;
    char resp[64];

    assert_int_equal(hr_pmd_negotiate(PMD, strlen(PMD), &cfg, &p, resp, need), 1);
    assert_string_equal(resp, want);
    memset(resp, 'Z', sizeof resp);
    assert_int_equal(hr_pmd_negotiate(PMD, strlen(PMD), &cfg, &p, resp, need - 1), HR_ERR_INVALID);
    assert_int_equal(resp[need - 1], 'Z');   /* nothing written past the cap */
    assert_int_equal(hr_pmd_negotiate(PMD, strlen(PMD), &cfg, &p, NULL, 0), HR_ERR_INVALID);
    /* declining needs no buffer at all */
    assert_int_equal(hr_pmd_negotiate("foo", 3, &cfg, &p, NULL, 0), 0);
}

static void test_negotiate_len_bounded(void **state)
{
    (void)state;
    hr_pmd_config cfg = make_cfg(CFG_DEFAULT);
    hr_pmd_params p;
    char resp[128];
    /* only len bytes are read: the header is not NUL-terminated */
    const char *s = PMD "; server_max_window_bits=10XYZ";
    assert_int_equal(hr_pmd_negotiate(s, strlen(PMD), &cfg, &p, resp, sizeof resp), 1);
    assert_string_equal(resp, PMD SNCT);
    assert_int_equal(hr_pmd_negotiate(s, strlen(s) - 3, &cfg, &p, resp, sizeof resp), 1);
    assert_int_equal(p.server_max_window_bits, 10);
    assert_int_equal(hr_pmd_negotiate(s, strlen(s), &cfg, &p, resp, sizeof resp), 0);
    /* an embedded NUL is a syntax error */
    const char nul[] = PMD "\0x";
    assert_int_equal(hr_pmd_negotiate(nul, sizeof nul - 1, &cfg, &p, resp, sizeof resp), HR_ERR_PROTO);
}

static void test_negotiate_bad_config(void **state)
{
    (void)state;
    hr_pmd_params p;
    char resp[128];
    hr_pmd_config cfg = make_cfg(CFG_DEFAULT);
    cfg.server_max_window_bits = 8;
    assert_int_equal(hr_pmd_negotiate(PMD, strlen(PMD), &cfg, &p, resp, sizeof resp), HR_ERR_INVALID);
    cfg = make_cfg(CFG_DEFAULT);
    cfg.client_max_window_bits = 16;
    assert_int_equal(hr_pmd_negotiate(PMD, strlen(PMD), &cfg, &p, resp, sizeof resp), HR_ERR_INVALID);
    cfg = make_cfg(CFG_DEFAULT);
    assert_int_equal(hr_pmd_negotiate(NULL, 1, &cfg, &p, resp, sizeof resp), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_negotiate(NULL, 0, &cfg, &p, resp, sizeof resp), HR_ERR_PROTO);
    assert_int_equal(hr_pmd_negotiate(PMD, strlen(PMD), NULL, &p, resp, sizeof resp), HR_ERR_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static const uint8_t hello[] = {'H', 'e', 'l', 'l', 'o'};

static void new_deflater(z_stream *zs, int wbits, int mem)
{
    assert_int_equal(hr_pmd_deflater_init(zs, Z_DEFAULT_COMPRESSION, wbits, mem), 0);
}

static void new_inflater(z_stream *zs, int wbits)
{
    assert_int_equal(hr_pmd_inflater_init(zs, wbits), 0);
}

static void expect_bytes(const hr_buf *b, const uint8_t *want, size_t n)
{
    assert_int_equal(b->len, n);
    if (n) assert_memory_equal(b->data, want, n);
}

/* Decompress a single-frame message and compare. */
static void expect_msg(z_stream *inf, const uint8_t *payload, size_t n, bool reset,
                       const uint8_t *want, size_t wn)
{
    hr_buf out = HR_BUF_INIT;
    assert_int_equal(hr_pmd_decompress(inf, payload, n, true, reset, &out, SIZE_MAX), 0);
    expect_bytes(&out, want, wn);
    hr_buf_free(&out);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static uint8_t *make_data(size_t n, bool text)
{
    static const char *words[] = {"herald ", "message ", "channel ", "subscribe ", "the ",
                                  "{\"type\":\"publish\",", "\"data\":", "12345, ", "\n"};
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    size_t i = 0;
    while (i < n) {
        if (text) {
            const char *w = words[rng() % HR_ARRAY_LEN(words)];
            size_t wl = strlen(w);
            for (size_t k = 0; k < wl && i < n; k++) p[i++] = (uint8_t)w[k];
        } else {
            p[i++] = (uint8_t)rng();
        }
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* RFC 7692 §7.2.3 examples                                                  */
/* ------------------------------------------------------------------------ */

static const uint8_t ex_hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
static const uint8_t ex_hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};

static void test_rfc_7_2_3_1_single(void **state)
{
    (void)state;
    z_stream d, i;
    new_deflater(&d, 15, 8);
    new_inflater(&i, 15);
    hr_buf out = HR_BUF_INIT;
    assert_int_equal(hr_pmd_compress(&d, hello, sizeof hello, true, &out), 0);
    expect_bytes(&out, ex_hello, sizeof ex_hello);
    expect_msg(&i, ex_hello, sizeof ex_hello, true, hello, sizeof hello);
    /* reset: the same bytes again */
    out.len = 0;
    assert_int_equal(hr_pmd_compress(&d, hello, sizeof hello, true, &out), 0);
    expect_bytes(&out, ex_hello, sizeof ex_hello);
    expect_msg(&i, ex_hello, sizeof ex_hello, true, hello, sizeof hello);
    hr_buf_free(&out);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

static void test_rfc_7_2_3_2_takeover(void **state)
{
    (void)state;
    z_stream d, i;
    new_deflater(&d, 15, 8);
    new_inflater(&i, 15);
    hr_buf out = HR_BUF_INIT;
    assert_int_equal(hr_pmd_compress(&d, hello, sizeof hello, false, &out), 0);
    expect_bytes(&out, ex_hello, sizeof ex_hello);
    out.len = 0;
    assert_int_equal(hr_pmd_compress(&d, hello, sizeof hello, false, &out), 0);
    expect_bytes(&out, ex_hello2, sizeof ex_hello2);
    expect_msg(&i, ex_hello, sizeof ex_hello, false, hello, sizeof hello);
    expect_msg(&i, ex_hello2, sizeof ex_hello2, false, hello, sizeof hello);
    /* the second message alone, on a fresh context, refers to nothing */
    z_stream fresh;
    new_inflater(&fresh, 15);
    hr_buf o2 = HR_BUF_INIT;
    assert_int_equal(hr_pmd_decompress(&fresh, ex_hello2, sizeof ex_hello2, true, true, &o2, SIZE_MAX),
                     HR_ERR_PROTO);
    hr_buf_free(&o2);
    hr_buf_free(&out);
    hr_pmd_inflater_end(&fresh);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

static void test_rfc_7_2_3_3_stored(void **state)
{
    (void)state;
    static const uint8_t ex[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    z_stream i;
    new_inflater(&i, 15);
    expect_msg(&i, ex, sizeof ex, false, hello, sizeof hello);
    expect_msg(&i, ex, sizeof ex, false, hello, sizeof hello);
    /* lenient: a payload ending on a block boundary (no trailing empty-block
     * header), here followed by an empty final frame */
    hr_buf out = HR_BUF_INIT;
    assert_int_equal(hr_pmd_decompress(&i, ex, sizeof ex - 1, false, false, &out, 5), 0);
    assert_int_equal(hr_pmd_decompress(&i, NULL, 0, true, false, &out, 5), 0);
    expect_bytes(&out, hello, sizeof hello);
    hr_buf_free(&out);
    expect_msg(&i, ex_hello2, sizeof ex_hello2, false, hello, sizeof hello);
    hr_pmd_inflater_end(&i);
}

static void test_rfc_7_2_3_4_fragmented(void **state)
{
    (void)state;
    static const uint8_t f1[] = {0xf2, 0x48, 0xcd};
    static const uint8_t f2[] = {0xc9, 0xc9, 0x07, 0x00};
    z_stream i;
    new_inflater(&i, 15);
    hr_buf out = HR_BUF_INIT;
    assert_int_equal(hr_pmd_decompress(&i, f1, sizeof f1, false, false, &out, SIZE_MAX), 0);
    assert_int_equal(hr_pmd_decompress(&i, f2, sizeof f2, true, false, &out, SIZE_MAX), 0);
    expect_bytes(&out, hello, sizeof hello);
    /* an empty final frame (continuation with FIN, no payload) */
    out.len = 0;
    assert_int_equal(hr_pmd_decompress(&i, ex_hello, sizeof ex_hello, false, true, &out, SIZE_MAX), 0);
    assert_int_equal(hr_pmd_decompress(&i, NULL, 0, true, true, &out, SIZE_MAX), 0);
    expect_bytes(&out, hello, sizeof hello);
    hr_buf_free(&out);
    hr_pmd_inflater_end(&i);
}

static void test_rfc_7_2_3_5_bfinal(void **state)
{
    (void)state;
    static const uint8_t ex[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    z_stream i;
    new_inflater(&i, 15);
    expect_msg(&i, ex, sizeof ex, false, hello, sizeof hello);
    expect_msg(&i, ex_hello, sizeof ex_hello, false, hello, sizeof hello);
    /* lenient: the BFINAL block without the trailing 0x00 header byte */
    expect_msg(&i, ex, sizeof ex - 1, false, hello, sizeof hello);
    expect_msg(&i, ex_hello, sizeof ex_hello, false, hello, sizeof hello);
    hr_pmd_inflater_end(&i);
}

static void test_rfc_7_2_3_6_two_blocks(void **state)
{
    (void)state;
    static const uint8_t ex[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff,
                                 0xca, 0xc9, 0xc9, 0x07, 0x00};
    z_stream i;
    new_inflater(&i, 15);
    expect_msg(&i, ex, sizeof ex, false, hello, sizeof hello);
    expect_msg(&i, ex, sizeof ex, true, hello, sizeof hello);
    hr_pmd_inflater_end(&i);
}

/* ------------------------------------------------------------------------ */
/* Empty messages                                                            */
/* ------------------------------------------------------------------------ */

static void test_empty_messages(void **state)
{
    (void)state;
    static const uint8_t zero = 0x00;
    z_stream d, i;
    new_deflater(&d, 15, 8);
    new_inflater(&i, 15);
    hr_buf out = HR_BUF_INIT;

    /* fresh stream */
    assert_int_equal(hr_pmd_compress(&d, NULL, 0, false, &out), 0);
    expect_bytes(&out, &zero, 1);
    expect_msg(&i, out.data, out.len, false, NULL, 0);
    /* after a message, with context takeover (deflate() alone would stall) */
    for (int k = 0; k < 3; k++) {
        out.len = 0;
        assert_int_equal(hr_pmd_compress(&d, hello, sizeof hello, false, &out), 0);
        expect_msg(&i, out.data, out.len, false, hello, sizeof hello);
        out.len = 0;
        assert_int_equal(hr_pmd_compress(&d, hello, 0, false, &out), 0);
        expect_bytes(&out, &zero, 1);
        expect_msg(&i, out.data, out.len, false, NULL, 0);
    }
    /* the context survived the empty messages: "Hello" is a back-reference */
    out.len = 0;
    assert_int_equal(hr_pmd_compress(&d, hello, sizeof hello, false, &out), 0);
    assert_true(out.len < sizeof ex_hello);
    expect_msg(&i, out.data, out.len, false, hello, sizeof hello);

    /* lenient: a message with an empty payload, fresh and mid-context */
    expect_msg(&i, NULL, 0, false, NULL, 0);
    expect_msg(&i, ex_hello2, sizeof ex_hello2, false, hello, sizeof hello);
    z_stream i2;
    new_inflater(&i2, 15);
    expect_msg(&i2, NULL, 0, false, NULL, 0);
    expect_msg(&i2, ex_hello, sizeof ex_hello, false, hello, sizeof hello);

    hr_buf_free(&out);
    hr_pmd_inflater_end(&i2);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

/* ------------------------------------------------------------------------ */
/* Roundtrips                                                                */
/* ------------------------------------------------------------------------ */

static void roundtrip(int dwbits, int mem, int iwbits, bool text, bool reset)
{
    static const size_t sizes[] = {0, 1, 125, 64 * 1024, 1024 * 1024, 7, 0, 125};
    z_stream d, i;
    new_deflater(&d, dwbits, mem);
    new_inflater(&i, iwbits);
    hr_buf c = HR_BUF_INIT, u = HR_BUF_INIT;
    /* several messages through the same pair of streams */
    for (size_t k = 0; k < HR_ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k];
        uint8_t *src = make_data(n, text);
        c.len = 0;
        u.len = 0;
        assert_int_equal(hr_pmd_compress(&d, src, n, reset, &c), 0);
        assert_true(c.len > 0);
        if (text && n >= 64 * 1024) assert_true(c.len < n / 2);
        assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, reset, &u, SIZE_MAX), 0);
        assert_int_equal(u.len, n);
        if (n) assert_memory_equal(u.data, src, n);
        free(src);
    }
    hr_buf_free(&c);
    hr_buf_free(&u);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

static void test_roundtrip(void **state)
{
    (void)state;
    static const struct { int dw, mem, iw; } win[] = {{15, 8, 15}, {10, 4, 10}, {9, 1, 9},
                                                       {9, 9, 8}, {12, 8, 15}};
    for (size_t w = 0; w < HR_ARRAY_LEN(win); w++)
        for (int text = 0; text < 2; text++)
            for (int reset = 0; reset < 2; reset++)
                roundtrip(win[w].dw, win[w].mem, win[w].iw, text, reset);
}

static void test_levels(void **state)
{
    (void)state;
    uint8_t *src = make_data(20000, true);
    for (int level = -1; level <= 9; level++) {
        z_stream d, i;
        assert_int_equal(hr_pmd_deflater_init(&d, level, 15, 8), 0);
        new_inflater(&i, 15);
        for (int k = 0; k < 3; k++) {
            hr_buf c = HR_BUF_INIT, u = HR_BUF_INIT;
            assert_int_equal(hr_pmd_compress(&d, src, 20000, false, &c), 0);
            assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, false, &u, 20000), 0);
            expect_bytes(&u, src, 20000);
            hr_buf_free(&c);
            hr_buf_free(&u);
        }
        hr_pmd_deflater_end(&d);
        hr_pmd_inflater_end(&i);
    }
    free(src);
}

/* Compressed output is appended after what out already holds. */
static void test_append(void **state)
{
    (void)state;
    z_stream d, i;
    new_deflater(&d, 15, 8);
    new_inflater(&i, 15);
    hr_buf c = HR_BUF_INIT, u = HR_BUF_INIT;
    hr_buf_append(&c, "hdr", 3);
    hr_buf_append(&u, "pre", 3);
    assert_int_equal(hr_pmd_compress(&d, hello, sizeof hello, true, &c), 0);
    assert_memory_equal(c.data, "hdr", 3);
    assert_int_equal(c.len, 3 + sizeof ex_hello);
    assert_memory_equal(c.data + 3, ex_hello, sizeof ex_hello);
    assert_int_equal(hr_pmd_decompress(&i, c.data + 3, c.len - 3, true, true, &u, SIZE_MAX), 0);
    expect_bytes(&u, (const uint8_t *)"preHello", 8);
    hr_buf_free(&c);
    hr_buf_free(&u);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

/* A sender finishing every message with Z_FINISH (BFINAL) and resetting. */
static void test_bfinal_sender(void **state)
{
    (void)state;
    z_stream i;
    new_inflater(&i, 15);
    for (int k = 0; k < 4; k++) {
        size_t n = 1000u * (size_t)(k + 1);
        uint8_t *src = make_data(n, k & 1);
        uint8_t comp[8192];
        z_stream z;
        memset(&z, 0, sizeof z);
        assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = src;
        z.avail_in = (uInt)n;
        z.next_out = comp;
        z.avail_out = sizeof comp;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        size_t clen = sizeof comp - z.avail_out;
        deflateEnd(&z);
        if (k >= 2) comp[clen++] = 0x00;   /* with and without the RFC's 0x00 */
        expect_msg(&i, comp, clen, false, src, n);
        free(src);
    }
    hr_pmd_inflater_end(&i);
}

/* ------------------------------------------------------------------------ */
/* Chunking                                                                  */
/* ------------------------------------------------------------------------ */

static void test_one_byte_frames(void **state)
{
    (void)state;
    size_t n = 64 * 1024;
    uint8_t *src = make_data(n, true);
    z_stream d, i1, i2;
    new_deflater(&d, 15, 8);
    new_inflater(&i1, 15);
    new_inflater(&i2, 15);
    for (int msg = 0; msg < 2; msg++) {   /* second message uses the context */
        hr_buf c = HR_BUF_INIT, whole = HR_BUF_INIT, parts = HR_BUF_INIT;
        assert_int_equal(hr_pmd_compress(&d, src, n, false, &c), 0);
        assert_int_equal(hr_pmd_decompress(&i1, c.data, c.len, true, false, &whole, SIZE_MAX), 0);
        for (size_t k = 0; k < c.len; k++)
            assert_int_equal(hr_pmd_decompress(&i2, c.data + k, 1, k + 1 == c.len, false, &parts, n), 0);
        expect_bytes(&whole, src, n);
        expect_bytes(&parts, whole.data, whole.len);
        hr_buf_free(&c);
        hr_buf_free(&whole);
        hr_buf_free(&parts);
    }
    free(src);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i1);
    hr_pmd_inflater_end(&i2);
}

/* ------------------------------------------------------------------------ */
/* Limits and corrupt input                                                  */
/* ------------------------------------------------------------------------ */

static void test_max_out_bomb(void **state)
{
    (void)state;
    size_t n = 10u * 1024 * 1024, max = 1024 * 1024;
    uint8_t *zeros = calloc(n, 1);
    assert_non_null(zeros);
    z_stream d, i;
    new_deflater(&d, 15, 8);
    new_inflater(&i, 15);
    hr_buf c = HR_BUF_INIT, u = HR_BUF_INIT;
    assert_int_equal(hr_pmd_compress(&d, zeros, n, true, &c), 0);
    assert_true(c.len < 64 * 1024);
    assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, true, &u, max), HR_ERR_TOO_BIG);
    assert_true(u.len <= max);
    assert_true(u.cap <= max);   /* never allocated past the limit */
    /* the stream is usable again afterwards */
    expect_msg(&i, ex_hello, sizeof ex_hello, true, hello, sizeof hello);
    hr_buf_free(&c);
    hr_buf_free(&u);
    free(zeros);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

static void test_max_out_exact(void **state)
{
    (void)state;
    size_t n = 100000;
    uint8_t *src = make_data(n, true);
    z_stream d, i;
    new_deflater(&d, 15, 8);
    new_inflater(&i, 15);
    hr_buf c = HR_BUF_INIT, u = HR_BUF_INIT;
    assert_int_equal(hr_pmd_compress(&d, src, n, true, &c), 0);
    /* exactly at the limit is fine */
    assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, true, &u, n), 0);
    expect_bytes(&u, src, n);
    assert_true(u.cap <= n);
    /* one byte less is too big */
    u.len = 0;
    assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, true, &u, n - 1), HR_ERR_TOO_BIG);
    assert_true(u.len <= n - 1);
    /* the limit counts what out already holds (earlier frames) */
    hr_buf_free(&u);
    hr_buf_append(&u, src, 10);
    assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, true, &u, n), HR_ERR_TOO_BIG);
    assert_true(u.len <= n);
    hr_buf_free(&u);
    hr_buf_append(&u, src, 10);
    assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, true, &u, n + 10), 0);
    assert_int_equal(u.len, n + 10);
    assert_memory_equal(u.data + 10, src, n);
    /* an empty message with max_out 0 */
    u.len = 0;
    static const uint8_t zero = 0;
    assert_int_equal(hr_pmd_decompress(&i, &zero, 1, true, true, &u, 0), 0);
    assert_int_equal(u.len, 0);
    hr_buf_free(&c);
    hr_buf_free(&u);
    free(src);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

typedef struct corrupt_case {
    const char *name;
    uint8_t data[16];
    size_t len;
} corrupt_case;

static const corrupt_case corrupt_cases[] = {
    {"reserved block type 11", {0x07}, 1},
    {"stored LEN/NLEN mismatch", {0x00, 0x05, 0x00, 0xfb, 0xff, 'H', 'e', 'l', 'l', 'o', 0x00}, 11},
    {"all ones", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8},
    {"distance too far back", {0xf2, 0x00, 0x11, 0x00, 0x00}, 5},
    {"truncated mid-block", {0xf2, 0x48, 0xcd}, 3},
    {"bad dynamic header", {0x05, 0xff, 0xff, 0xff, 0xff}, 5},
};

static void test_corrupt(void **state)
{
    (void)state;
    for (size_t k = 0; k < HR_ARRAY_LEN(corrupt_cases); k++) {
        const corrupt_case *tc = &corrupt_cases[k];
        z_stream i;
        new_inflater(&i, 15);
        hr_buf u = HR_BUF_INIT;
        int rc = hr_pmd_decompress(&i, tc->data, tc->len, true, false, &u, 1 << 20);
        if (rc != HR_ERR_PROTO) print_error("%s: rc %d\n", tc->name, rc);
        assert_int_equal(rc, HR_ERR_PROTO);
        hr_buf_free(&u);
        /* usable again after the error */
        expect_msg(&i, ex_hello, sizeof ex_hello, false, hello, sizeof hello);
        hr_pmd_inflater_end(&i);
    }
}

/* A window larger than the inflater's is corrupt data, not a crash. */
static void test_window_too_big(void **state)
{
    (void)state;
    size_t n = 200000;
    uint8_t *src = make_data(n, true);
    z_stream d, i;
    new_deflater(&d, 15, 8);
    new_inflater(&i, 9);
    hr_buf c = HR_BUF_INIT, u = HR_BUF_INIT;
    /* random data chunk repeated at a distance of 16 KiB: needs the big window */
    uint8_t *rnd = make_data(16384, false);
    memcpy(src, rnd, 16384);
    memcpy(src + 16384, rnd, 16384);
    assert_int_equal(hr_pmd_compress(&d, src, n, true, &c), 0);
    assert_int_equal(hr_pmd_decompress(&i, c.data, c.len, true, true, &u, SIZE_MAX), HR_ERR_PROTO);
    hr_buf_free(&c);
    hr_buf_free(&u);
    free(rnd);
    free(src);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

static void test_init_args(void **state)
{
    (void)state;
    z_stream zs;
    assert_int_equal(hr_pmd_deflater_init(&zs, 6, 8, 8), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_deflater_init(&zs, 6, 16, 8), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_deflater_init(&zs, 10, 15, 8), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_deflater_init(&zs, 6, 15, 0), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_inflater_init(&zs, 7), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_inflater_init(&zs, 16), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_inflater_init(&zs, 8), 0);
    hr_pmd_inflater_end(&zs);
    hr_pmd_inflater_end(&zs);   /* double end is harmless */

    /* using a stream that is not initialised is an error, not a crash */
    memset(&zs, 0, sizeof zs);
    hr_buf b = HR_BUF_INIT;
    assert_int_equal(hr_pmd_compress(&zs, hello, sizeof hello, false, &b), HR_ERR_INVALID);
    assert_int_equal(hr_pmd_compress(&zs, NULL, 0, false, &b), HR_ERR_INVALID);
    assert_int_equal(b.len, 0);
    assert_int_equal(hr_pmd_decompress(&zs, ex_hello, sizeof ex_hello, true, false, &b, 100),
                     HR_ERR_INVALID);
    hr_pmd_deflater_end(&zs);
    hr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiate_table),
        cmocka_unit_test(test_negotiate_resp_cap),
        cmocka_unit_test(test_negotiate_len_bounded),
        cmocka_unit_test(test_negotiate_bad_config),
        cmocka_unit_test(test_rfc_7_2_3_1_single),
        cmocka_unit_test(test_rfc_7_2_3_2_takeover),
        cmocka_unit_test(test_rfc_7_2_3_3_stored),
        cmocka_unit_test(test_rfc_7_2_3_4_fragmented),
        cmocka_unit_test(test_rfc_7_2_3_5_bfinal),
        cmocka_unit_test(test_rfc_7_2_3_6_two_blocks),
        cmocka_unit_test(test_empty_messages),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_bfinal_sender),
        cmocka_unit_test(test_one_byte_frames),
        cmocka_unit_test(test_max_out_bomb),
        cmocka_unit_test(test_max_out_exact),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_window_too_big),
        cmocka_unit_test(test_init_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
