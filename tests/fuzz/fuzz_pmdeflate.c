/* fuzz_pmdeflate.c - libFuzzer target for codec/pmdeflate: negotiation of
 * arbitrary Sec-WebSocket-Extensions values, decompression of arbitrary
 * payloads under a 1 MiB limit, and compress -> decompress roundtrips.
 * The first input byte picks the mode and options. */
#include "codec/pmdeflate.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_OUT ((size_t)1 << 20)

static void check(bool ok)
{
    if (!ok) abort();
}

static void fuzz_negotiate(uint8_t opt, const uint8_t *data, size_t size)
{
    hr_pmd_config cfg = {
        .enabled = true,
        .server_context_takeover = opt & 1,
        .server_max_window_bits = 9 + (opt >> 1) % 7,
        .client_max_window_bits = 9 + (opt >> 4) % 7,
        .mem_level = 8,
        .level = 6,
    };
    /* exact-size heap copies so ASan sees any read or write past the end */
    char *hdr = malloc(size ? size : 1);
    check(hdr != NULL);
    if (size) memcpy(hdr, data, size);
    size_t cap = (opt & 0x80) ? 24 : 160;   /* 24 is too small for some answers */
    char *resp = malloc(cap);
    check(resp != NULL);
    hr_pmd_params p;
    int rc = hr_pmd_negotiate(hdr, size, &cfg, &p, resp, cap);
    check(rc == 0 || rc == 1 || rc == HR_ERR_PROTO || (rc == HR_ERR_INVALID && cap < 160));
    if (rc == 1) {
        size_t n = strnlen(resp, cap);
        check(n < cap);
        check(strncmp(resp, "permessage-deflate", 18) == 0);
        check(p.server_max_window_bits >= 9 && p.server_max_window_bits <= cfg.server_max_window_bits);
        check(p.client_max_window_bits >= 8 && p.client_max_window_bits <= 15);
        check(p.server_no_context_takeover || cfg.server_context_takeover);
        /* the answer is a valid header that we would accept the same way */
        hr_pmd_params p2;
        char resp2[160];
        check(hr_pmd_negotiate(resp, n, &cfg, &p2, resp2, sizeof resp2) == 1);
        check(p2.server_max_window_bits == p.server_max_window_bits);
        check(p2.client_max_window_bits == p.client_max_window_bits);
        check(p2.server_no_context_takeover == p.server_no_context_takeover);
        check(p2.client_no_context_takeover == p.client_no_context_takeover);
        check(strcmp(resp, resp2) == 0);
    }
    free(resp);
    free(hdr);
}

/* Arbitrary payload split into frames at bytes equal to the separator. */
static void fuzz_decompress(uint8_t opt, const uint8_t *data, size_t size)
{
    static const uint8_t hello_c[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    int wbits = 8 + (opt & 7);
    bool reset = opt & 8;
    bool split = opt & 16;
    z_stream zs;
    check(hr_pmd_inflater_init(&zs, wbits) == 0);
    hr_buf out = HR_BUF_INIT;
    int rc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && rc == 0; i++) {
        bool end = i == size;
        if (!end && !(split && data[i] == 0x7e)) continue;
        rc = hr_pmd_decompress(&zs, data + start, i - start, end, reset, &out, FUZZ_MAX_OUT);
        check(out.len <= FUZZ_MAX_OUT);
        check(out.cap <= FUZZ_MAX_OUT || out.cap <= 1024);
        start = i + (end ? 0 : 1);
    }
    check(rc == 0 || rc == HR_ERR_PROTO || rc == HR_ERR_TOO_BIG);
    /* after an error or a reset the stream starts clean */
    if (rc < 0 || reset) {
        out.len = 0;
        check(hr_pmd_decompress(&zs, hello_c, sizeof hello_c, true, true, &out, 5) == 0);
        check(out.len == 5 && memcmp(out.data, "Hello", 5) == 0);
    }
    hr_buf_free(&out);
    hr_pmd_inflater_end(&zs);
}

/* The input is a sequence of messages separated by 0xff; each goes through
 * one deflater and one inflater; fragments the compressed payload too. */
static void fuzz_roundtrip(uint8_t opt, const uint8_t *data, size_t size)
{
    int wbits = 9 + (opt & 7) % 7;
    int mem = 1 + (opt >> 3) % 9;
    bool reset = opt & 0x80;
    z_stream d, i;
    check(hr_pmd_deflater_init(&d, (opt >> 4) % 10, wbits, mem) == 0);
    check(hr_pmd_inflater_init(&i, wbits) == 0);
    hr_buf c = HR_BUF_INIT, u = HR_BUF_INIT;
    size_t start = 0;
    for (size_t k = 0; k <= size; k++) {
        if (k < size && data[k] != 0xff) continue;
        const uint8_t *msg = data + start;
        size_t n = k - start;
        c.len = 0;
        u.len = 0;
        check(hr_pmd_compress(&d, n ? msg : NULL, n, reset, &c) == 0);
        check(c.len > 0);
        /* split the compressed payload in two frames at a data-driven point */
        size_t cut = n ? msg[0] % (c.len + 1) : 0;
        check(hr_pmd_decompress(&i, c.data, cut, false, reset, &u, n) == 0);
        check(hr_pmd_decompress(&i, c.data + cut, c.len - cut, true, reset, &u, n) == 0);
        check(u.len == n);
        check(n == 0 || memcmp(u.data, msg, n) == 0);
        start = k + 1;
    }
    hr_buf_free(&c);
    hr_buf_free(&u);
    hr_pmd_deflater_end(&d);
    hr_pmd_inflater_end(&i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t mode = data[0] % 3;
    uint8_t opt = data[1];
    data += 2;
    size -= 2;
    switch (mode) {
    case 0: fuzz_negotiate(opt, data, size); break;
    case 1: fuzz_decompress(opt, data, size); break;
    default: fuzz_roundtrip(opt, data, size); break;
    }
    return 0;
}
