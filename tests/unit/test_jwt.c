/* test_jwt.c - the JWT verifier (auth/jwt.h). Keys are generated here with
 * OpenSSL (RSA 2048, EC P-256, Ed25519) and test tokens are signed here with
 * OpenSSL directly (HMAC, EVP_DigestSign, DER -> raw R||S for ES256) and a
 * base64url encoder of this file, independent of the module's signer. Tables
 * of tokens: valid per algorithm, time claims with leeway, one bit flipped in
 * each part, wrong algorithm for the key, the HS256-with-RSA-public-key
 * forgery, alg none, malformed base64url / JSON, aud / iss, kid selection,
 * size limit, DER ES256 signatures, typed Herald claims, key loading errors,
 * and the signer round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define NOW INT64_C(1700000000)

/* ------------------------------------------------------------ fixtures */

static EVP_PKEY *rsa_key, *ec_key, *ec2_key, *ed_key;
static char *rsa_pub, *ec_pub, *ec2_pub, *ed_pub;        /* PUBLIC KEY PEM */
static char *rsa_priv, *ec_priv, *ed_priv;               /* PRIVATE KEY PEM */
static const uint8_t sec256[] = "0123456789abcdef0123456789abcdef";                                 /* 32 */
static const uint8_t sec384[] = "0123456789abcdef0123456789abcdef0123456789abcdef";                 /* 48 */
static const uint8_t sec512[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; /* 64 */
static hr_jwt_keys *keys; /* one key per algorithm, each with a kid */

static char *pem_of(EVP_PKEY *k, bool priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    if (priv) assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    else assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static void add_pem(hr_jwt_keys *ks, const char *kid, hr_jwt_alg alg, const char *pem)
{
    char err[256] = "";
    int rc = hr_jwt_keys_add_pem(ks, kid, alg, pem, strlen(pem), err, sizeof(err));
    if (rc) fail_msg("add_pem %s: %s", kid ? kid : "(none)", err);
}

static void add_hmac(hr_jwt_keys *ks, const char *kid, hr_jwt_alg alg, const uint8_t *s, size_t n)
{
    char err[256] = "";
    int rc = hr_jwt_keys_add_hmac(ks, kid, alg, s, n, err, sizeof(err));
    if (rc) fail_msg("add_hmac %s: %s", kid ? kid : "(none)", err);
}

static int setup(void **state)
{
    (void)state;
    rsa_key = EVP_RSA_gen(2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec2_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!rsa_key || !ec_key || !ec2_key || !ed_key) return -1;
    rsa_pub = pem_of(rsa_key, false);
    ec_pub = pem_of(ec_key, false);
    ec2_pub = pem_of(ec2_key, false);
    ed_pub = pem_of(ed_key, false);
    rsa_priv = pem_of(rsa_key, true);
    ec_priv = pem_of(ec_key, true);
    ed_priv = pem_of(ed_key, true);
    keys = hr_jwt_keys_new();
    add_hmac(keys, "hs", HR_JWT_HS256, sec256, 32);
    add_hmac(keys, "hs384", HR_JWT_HS384, sec384, 48);
    add_hmac(keys, "hs512", HR_JWT_HS512, sec512, 64);
    add_pem(keys, "rs", HR_JWT_RS256, rsa_pub);
    add_pem(keys, "es", HR_JWT_ES256, ec_pub);
    add_pem(keys, "ed", HR_JWT_EDDSA, ed_pub);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_jwt_keys_free(keys);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ec2_key);
    EVP_PKEY_free(ed_key);
    free(rsa_pub); free(ec_pub); free(ec2_pub); free(ed_pub);
    free(rsa_priv); free(ec_priv); free(ed_priv);
    return 0;
}

/* ------------------------------------------------ independent token maker */

static size_t b64u(const uint8_t *in, size_t n, char *out)
{
    /* EVP_EncodeBlock (standard base64 with padding), then url-safe, unpadded. */
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    size_t o = 0;
    for (int i = 0; i < len; i++) {
        char c = out[i];
        if (c == '=') break;
        out[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    out[o] = '\0';
    return o;
}

enum sig_kind { S_EMPTY, S_HS256, S_HS384, S_HS512, S_RS256, S_ES256, S_ES256_2, S_ES256_DER, S_EDDSA, S_JUNK };

/* Sign data with kind; returns the signature length (sig has 1024 bytes). */
static size_t sign_with(enum sig_kind kind, const char *data, size_t n, uint8_t *sig)
{
    unsigned int ml = 0;
    switch (kind) {
    case S_EMPTY: return 0;
    case S_JUNK: memset(sig, 0x5a, 32); return 32;
    case S_HS256: HMAC(EVP_sha256(), sec256, 32, (const uint8_t *)data, n, sig, &ml); return ml;
    case S_HS384: HMAC(EVP_sha384(), sec384, 48, (const uint8_t *)data, n, sig, &ml); return ml;
    case S_HS512: HMAC(EVP_sha512(), sec512, 64, (const uint8_t *)data, n, sig, &ml); return ml;
    default: break;
    }
    EVP_PKEY *k = kind == S_RS256 ? rsa_key : kind == S_EDDSA ? ed_key : kind == S_ES256_2 ? ec2_key : ec_key;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t sl = 1024;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, kind == S_EDDSA ? NULL : EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &sl, (const uint8_t *)data, n), 1);
    EVP_MD_CTX_free(ctx);
    if (kind == S_ES256 || kind == S_ES256_2) {
        const uint8_t *q = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
        assert_non_null(es);
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(es, &r, &s);
        uint8_t raw[64];
        assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
        assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
        ECDSA_SIG_free(es);
        memcpy(sig, raw, 64);
        sl = 64;
    }
    return sl;
}

/* b64(h).b64(p).b64(sig) where sig signs the first two parts; flip_part 0/1/2
 * flips bit 0 of byte flip_at of the header / payload / signature after
 * signing (-1: none). Static buffer. */
static const char *tok_flip(const char *h, const char *p, enum sig_kind kind, int flip_part, size_t flip_at)
{
    static char t[65536];
    char hb[4096], pb[40000];
    memcpy(hb, h, strlen(h) + 1);
    memcpy(pb, p, strlen(p) + 1);
    size_t o = b64u((const uint8_t *)hb, strlen(hb), t);
    t[o++] = '.';
    o += b64u((const uint8_t *)pb, strlen(pb), t + o);
    uint8_t sig[1024];
    size_t sl = sign_with(kind, t, o, sig);
    if (flip_part == 0 || flip_part == 1) {
        char *x = flip_part == 0 ? hb : pb;
        x[flip_at] ^= 1;
        o = b64u((const uint8_t *)hb, strlen(hb), t);
        t[o++] = '.';
        o += b64u((const uint8_t *)pb, strlen(pb), t + o);
    } else if (flip_part == 2) {
        sig[flip_at] ^= 1;
    }
    t[o++] = '.';
    b64u(sig, sl, t + o);
    return t;
}

static const char *tok(const char *h, const char *p, enum sig_kind kind)
{
    return tok_flip(h, p, kind, -1, 0);
}

static hr_jwt_opts opts_default(void)
{
    hr_jwt_opts o = {.now = NOW, .leeway = 0, .require_exp = false};
    return o;
}

/* Verify s; check the code (and the reason when want_why is set). */
static void expect_ks(const hr_jwt_keys *ks, const char *s, const hr_jwt_opts *o, int want, const char *want_why,
                      const char *label)
{
    hr_jwt_claims c;
    const char *why = NULL;
    int rc = hr_jwt_verify(ks, s, strlen(s), o, &c, &why);
    if (rc != want) fail_msg("%s: rc %d (%s), expected %d (%s)", label, rc, why, want, want_why ? want_why : "");
    assert_non_null(why);
    if (want_why && strcmp(why, want_why) != 0) fail_msg("%s: why \"%s\", expected \"%s\"", label, why, want_why);
    hr_jwt_claims_free(&c);
}

static void expect(const char *s, const hr_jwt_opts *o, int want, const char *want_why, const char *label)
{
    expect_ks(keys, s, o, want, want_why, label);
}

/* --------------------------------------------------------------- tests */

static void test_b64url(void **state)
{
    (void)state;
    static const struct { const char *in; long len; const char *out; } cases[] = {
        {"", 0, ""}, {"Zg", 1, "f"}, {"Zm8", 2, "fo"}, {"Zm9v", 3, "foo"}, {"Zm9vYg", 4, "foob"},
        {"-_-_", 3, "\xfb\xff\xbf"},
        {"Zh", -1, NULL},   /* non-zero trailing bits */
        {"Zm9=", -1, NULL}, {"Zg==", -1, NULL}, {"Z", -1, NULL}, {"Zm9vY", -1, NULL},
        {"+/+/", -1, NULL}, {"Zm 9", -1, NULL}, {"Zm\n9", -1, NULL}, {"Zm.9", -1, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[64];
        long n = hr_b64url_decode(cases[i].in, strlen(cases[i].in), out);
        if (n != cases[i].len) fail_msg("decode \"%s\": %ld, expected %ld", cases[i].in, n, cases[i].len);
        if (n > 0) assert_memory_equal(out, cases[i].out, (size_t)n);
    }
    for (size_t n = 0; n < 200; n++) {
        uint8_t in[200], back[200];
        char enc[300], ref[300];
        for (size_t i = 0; i < n; i++) in[i] = (uint8_t)(i * 37 + n);
        size_t el = hr_b64url_encode(in, n, enc);
        assert_int_equal(el, b64u(in, n, ref));
        assert_string_equal(enc, ref);
        assert_int_equal(hr_b64url_decode(enc, el, back), (long)n);
        if (n) assert_memory_equal(in, back, n);
    }
}

static void test_valid_per_alg(void **state)
{
    (void)state;
    static const struct { const char *h; enum sig_kind k; hr_jwt_alg alg; const char *kid; } cases[] = {
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs\"}", S_HS256, HR_JWT_HS256, "hs"},
        {"{\"alg\":\"HS384\",\"kid\":\"hs384\"}", S_HS384, HR_JWT_HS384, "hs384"},
        {"{\"alg\":\"HS512\",\"kid\":\"hs512\"}", S_HS512, HR_JWT_HS512, "hs512"},
        {"{\"alg\":\"RS256\",\"kid\":\"rs\"}", S_RS256, HR_JWT_RS256, "rs"},
        {"{\"alg\":\"ES256\",\"kid\":\"es\"}", S_ES256, HR_JWT_ES256, "es"},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", S_EDDSA, HR_JWT_EDDSA, "ed"},
        /* without kid: the keys pinned to the header's alg are tried */
        {"{\"alg\":\"HS256\"}", S_HS256, HR_JWT_HS256, "hs"},
        {"{\"alg\":\"RS256\"}", S_RS256, HR_JWT_RS256, "rs"},
        {"{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"crit\":[]}", S_ES256, HR_JWT_ES256, "es"},
        {"{\"alg\":\"EdDSA\"}", S_EDDSA, HR_JWT_EDDSA, "ed"},
    };
    hr_jwt_opts o = opts_default();
    o.require_exp = true;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = tok(cases[i].h, "{\"sub\":\"alice\",\"exp\":1700000060,\"iat\":1699999990}", cases[i].k);
        hr_jwt_claims c;
        const char *why = NULL;
        int rc = hr_jwt_verify(keys, t, strlen(t), &o, &c, &why);
        if (rc != 0) fail_msg("case %zu (%s): rc %d: %s", i, cases[i].h, rc, why);
        assert_string_equal(why, "ok");
        assert_int_equal(c.alg, cases[i].alg);
        assert_string_equal(c.kid, cases[i].kid);
        assert_string_equal(c.sub, "alice");
        assert_true(c.has_exp && c.exp == NOW + 60);
        assert_true(c.has_iat && c.iat == NOW - 10);
        assert_false(c.has_nbf);
        assert_null(c.info);
        assert_null(c.channel);
        assert_int_equal(c.n_channels, 0);
        hr_jwt_claims_free(&c);
    }
}

static void test_herald_claims(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    const char *t = tok("{\"alg\":\"HS256\",\"kid\":\"hs\"}",
                        "{\"sub\":\"bob\",\"info\":{\"name\":\"Bob\",\"n\":0.1,\"tags\":[1,2]},"
                        "\"channels\":[\"news\",\"chat:#bob\"],\"channel\":\"private:x\",\"jti\":\"abc\"}",
                        S_HS256);
    hr_jwt_claims c;
    const char *why;
    assert_int_equal(hr_jwt_verify(keys, t, strlen(t), &o, &c, &why), 0);
    assert_string_equal(c.sub, "bob");
    assert_string_equal(c.info, "{\"name\":\"Bob\",\"n\":0.1,\"tags\":[1,2]}");
    assert_int_equal(c.info_len, strlen(c.info));
    assert_int_equal(c.n_channels, 2);
    assert_string_equal(c.channels[0], "news");
    assert_string_equal(c.channels[1], "chat:#bob");
    assert_string_equal(c.channel, "private:x");
    assert_false(c.has_exp);
    hr_jwt_claims_free(&c);
    assert_null(c.sub);
    hr_jwt_claims_free(&c); /* twice is harmless */

    /* no sub: anonymous */
    t = tok("{\"alg\":\"HS256\"}", "{}", S_HS256);
    assert_int_equal(hr_jwt_verify(keys, t, strlen(t), &o, &c, &why), 0);
    assert_null(c.sub);
    hr_jwt_claims_free(&c);

    char longsub[300], payload[400];
    static const struct { const char *p; int rc; const char *why; } cases[] = {
        {"{\"sub\":123}", HR_JWT_ERR_CLAIMS, "sub must be a string"},
        {"{\"sub\":null}", HR_JWT_ERR_CLAIMS, "sub must be a string"},
        {"{\"sub\":[\"a\"]}", HR_JWT_ERR_CLAIMS, "sub must be a string"},
        {"{\"sub\":\"\"}", HR_JWT_ERR_CLAIMS, "sub is empty"},
        {"{\"info\":\"x\"}", HR_JWT_ERR_CLAIMS, "info must be an object"},
        {"{\"info\":[1]}", HR_JWT_ERR_CLAIMS, "info must be an object"},
        {"{\"channels\":\"news\"}", HR_JWT_ERR_CLAIMS, "channels must be an array of strings"},
        {"{\"channels\":[\"a\",1]}", HR_JWT_ERR_CLAIMS, NULL},
        {"{\"channels\":[\"\"]}", HR_JWT_ERR_CLAIMS, NULL},
        {"{\"channels\":[]}", 0, NULL},
        {"{\"channel\":7}", HR_JWT_ERR_CLAIMS, NULL},
        {"{\"channel\":\"\"}", HR_JWT_ERR_CLAIMS, NULL},
        {"{\"sub\":\"\\u00e9l\\u00e8ve\"}", 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(tok("{\"alg\":\"HS256\"}", cases[i].p, S_HS256), &o, cases[i].rc, cases[i].why, cases[i].p);

    memset(longsub, 'u', 256);
    longsub[256] = '\0';
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", longsub);
    expect(tok("{\"alg\":\"HS256\"}", payload, S_HS256), &o, HR_JWT_ERR_CLAIMS, "sub too long", "sub 256");
    longsub[255] = '\0';
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", longsub);
    expect(tok("{\"alg\":\"HS256\"}", payload, S_HS256), &o, 0, "ok", "sub 255");
}

static void test_time_claims(void **state)
{
    (void)state;
    static const struct { const char *p; unsigned leeway; bool req; int rc; const char *why; } cases[] = {
        {"{\"exp\":1700000060}", 0, true, 0, "ok"},
        {"{\"exp\":1699999999}", 0, true, HR_JWT_ERR_EXPIRED, "expired"},
        {"{\"exp\":1700000000}", 0, true, HR_JWT_ERR_EXPIRED, "expired"}, /* exp is exclusive */
        {"{\"exp\":1699999990}", 30, true, 0, "ok"},                      /* within leeway */
        {"{\"exp\":1699999970}", 30, true, HR_JWT_ERR_EXPIRED, "expired"},
        {"{\"exp\":1700000060.5}", 0, true, 0, "ok"},
        {"{\"exp\":1699999999.9}", 0, true, HR_JWT_ERR_EXPIRED, "expired"},
        {"{\"exp\":\"1700000060\"}", 0, true, HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate"},
        {"{\"exp\":true}", 0, true, HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate"},
        {"{\"exp\":null}", 0, false, HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate"},
        {"{\"exp\":-1}", 0, true, HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate"},
        {"{\"exp\":1e300}", 0, true, HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate"},
        {"{\"exp\":9223372036854775807}", 0, true, HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate"},
        {"{\"exp\":253402300799}", 0, true, 0, "ok"},
        {"{\"exp\":253402300800}", 0, true, HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate"},
        {"{\"sub\":\"a\"}", 0, true, HR_JWT_ERR_CLAIMS, "exp is required"},
        {"{\"sub\":\"a\"}", 0, false, 0, "ok"},
        {"{\"nbf\":1700000100}", 0, false, HR_JWT_ERR_NOT_YET_VALID, "not yet valid (nbf)"},
        {"{\"nbf\":1700000020}", 30, false, 0, "ok"},
        {"{\"nbf\":1700000000}", 0, false, 0, "ok"},
        {"{\"nbf\":1700000000.2}", 0, false, HR_JWT_ERR_NOT_YET_VALID, "not yet valid (nbf)"},
        {"{\"nbf\":{}}", 0, false, HR_JWT_ERR_CLAIMS, "nbf is not a valid NumericDate"},
        {"{\"iat\":1700000100}", 0, false, HR_JWT_ERR_NOT_YET_VALID, "issued in the future (iat)"},
        {"{\"iat\":1700000010}", 10, false, 0, "ok"},
        {"{\"iat\":[1]}", 0, false, HR_JWT_ERR_CLAIMS, "iat is not a valid NumericDate"},
        {"{\"iat\":1700000000,\"exp\":1699999999}", 10, false, HR_JWT_ERR_CLAIMS, "iat is after exp"},
        {"{\"iat\":1,\"nbf\":2,\"exp\":1700000001}", 0, true, 0, "ok"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hr_jwt_opts o = opts_default();
        o.leeway = cases[i].leeway;
        o.require_exp = cases[i].req;
        expect(tok("{\"alg\":\"ES256\",\"kid\":\"es\"}", cases[i].p, S_ES256), &o, cases[i].rc, cases[i].why,
               cases[i].p);
    }
}

static void test_bit_flips(void **state)
{
    (void)state;
    static const struct { const char *h; enum sig_kind k; size_t siglen; } cases[] = {
        {"{\"alg\":\"HS256\",\"kid\":\"hs\",\"typ\":\"JWT\"}", S_HS256, 32},
        {"{\"alg\":\"HS384\",\"kid\":\"hs384\",\"typ\":\"JWT\"}", S_HS384, 48},
        {"{\"alg\":\"HS512\",\"kid\":\"hs512\",\"typ\":\"JWT\"}", S_HS512, 64},
        {"{\"alg\":\"RS256\",\"kid\":\"rs\",\"typ\":\"JWT\"}", S_RS256, 256},
        {"{\"alg\":\"ES256\",\"kid\":\"es\",\"typ\":\"JWT\"}", S_ES256, 64},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"JWT\"}", S_EDDSA, 64},
    };
    const char *p = "{\"sub\":\"alice\",\"exp\":1700000060}";
    hr_jwt_opts o = opts_default();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *h = cases[i].h;
        size_t typ_at = (size_t)(strstr(h, "JWT") - h); /* 'J' -> 'K' */
        expect(tok_flip(h, p, cases[i].k, -1, 0), &o, 0, "ok", h);
        expect(tok_flip(h, p, cases[i].k, 0, typ_at), &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", h);
        expect(tok_flip(h, p, cases[i].k, 1, 8), &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", h);
        expect(tok_flip(h, p, cases[i].k, 2, 0), &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", h);
        expect(tok_flip(h, p, cases[i].k, 2, cases[i].siglen - 1), &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", h);
    }
}

static void test_wrong_alg(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    static const struct { const char *h; enum sig_kind k; } cases[] = {
        {"{\"alg\":\"HS384\",\"kid\":\"hs\"}", S_HS384},   /* HS256 key */
        {"{\"alg\":\"HS256\",\"kid\":\"hs512\"}", S_HS256},
        {"{\"alg\":\"RS256\",\"kid\":\"es\"}", S_RS256},
        {"{\"alg\":\"ES256\",\"kid\":\"ed\"}", S_ES256},
        {"{\"alg\":\"EdDSA\",\"kid\":\"rs\"}", S_EDDSA},
        {"{\"alg\":\"HS256\",\"kid\":\"rs\"}", S_HS256},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(tok(cases[i].h, "{}", cases[i].k), &o, HR_JWT_ERR_ALG, "algorithm not allowed for this key", cases[i].h);

    /* a single RS256 key, token without kid in another alg */
    hr_jwt_keys *one = hr_jwt_keys_new();
    add_pem(one, NULL, HR_JWT_RS256, rsa_pub);
    expect_ks(one, tok("{\"alg\":\"ES256\"}", "{}", S_ES256), &o, HR_JWT_ERR_ALG, "algorithm not allowed for this key", "one");
    expect_ks(one, tok("{\"alg\":\"RS256\"}", "{}", S_RS256), &o, 0, "ok", "one ok");
    hr_jwt_keys_free(one);
    /* two keys, neither ES256 */
    hr_jwt_keys *two = hr_jwt_keys_new();
    add_pem(two, NULL, HR_JWT_RS256, rsa_pub);
    add_pem(two, NULL, HR_JWT_EDDSA, ed_pub);
    expect_ks(two, tok("{\"alg\":\"ES256\"}", "{}", S_ES256), &o, HR_JWT_ERR_ALG,
              "algorithm not allowed for any configured key", "two");
    hr_jwt_keys_free(two);
    hr_jwt_keys *none = hr_jwt_keys_new();
    expect_ks(none, tok("{\"alg\":\"HS256\"}", "{}", S_HS256), &o, HR_JWT_ERR_NO_KEY, "no keys configured", "none");
    hr_jwt_keys_free(none);
}

/* The classic forgery: the attacker knows the RSA public key and "signs" an
 * HS256 token with the PEM text as HMAC secret. */
static void test_hs256_rsa_forgery(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    static char t[8192];
    char hb[128], pb[128];
    const char *hdrs[] = {"{\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"kid\":\"rs\"}"};
    for (int variant = 0; variant < 2; variant++) {
        size_t o2 = b64u((const uint8_t *)hdrs[variant], strlen(hdrs[variant]), hb);
        memcpy(t, hb, o2);
        t[o2++] = '.';
        size_t pl = b64u((const uint8_t *)"{\"sub\":\"admin\"}", 15, pb);
        memcpy(t + o2, pb, pl);
        o2 += pl;
        uint8_t mac[64];
        unsigned ml;
        HMAC(EVP_sha256(), rsa_pub, (int)strlen(rsa_pub), (const uint8_t *)t, o2, mac, &ml);
        t[o2++] = '.';
        b64u(mac, ml, t + o2);
        hr_jwt_keys *one = hr_jwt_keys_new();
        add_pem(one, variant ? "rs" : NULL, HR_JWT_RS256, rsa_pub);
        expect_ks(one, t, &o, HR_JWT_ERR_ALG, "algorithm not allowed for this key", hdrs[variant]);
        expect_ks(keys, t, &o, variant ? HR_JWT_ERR_ALG : HR_JWT_ERR_SIGNATURE, NULL, hdrs[variant]);
        hr_jwt_keys_free(one);
    }
    /* and the configuration mistake that would enable it is refused */
    hr_jwt_keys *ks = hr_jwt_keys_new();
    char err[256] = "";
    assert_int_equal(hr_jwt_keys_add_hmac(ks, NULL, HR_JWT_HS256, (const uint8_t *)rsa_pub, strlen(rsa_pub), err,
                                          sizeof(err)), HR_JWT_ERR_ARG);
    assert_non_null(strstr(err, "PEM"));
    assert_int_equal(hr_jwt_keys_count(ks), 0);
    hr_jwt_keys_free(ks);
}

static void test_alg_none(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    static const struct { const char *h; enum sig_kind k; int rc; const char *why; } cases[] = {
        {"{\"alg\":\"none\"}", S_EMPTY, HR_JWT_ERR_ALG, "alg none is not allowed"},
        {"{\"alg\":\"none\"}", S_JUNK, HR_JWT_ERR_ALG, "alg none is not allowed"},
        {"{\"alg\":\"none\",\"kid\":\"hs\"}", S_HS256, HR_JWT_ERR_ALG, "alg none is not allowed"},
        {"{\"alg\":\"None\"}", S_EMPTY, HR_JWT_ERR_ALG, "alg none is not allowed"},
        {"{\"alg\":\"NONE\"}", S_HS256, HR_JWT_ERR_ALG, "alg none is not allowed"},
        {"{\"alg\":\"HS256\"}", S_EMPTY, HR_JWT_ERR_SIGNATURE, "missing signature"},
        {"{\"alg\":\"hs256\"}", S_HS256, HR_JWT_ERR_ALG, "unknown algorithm"},
        {"{\"alg\":\"RS512\"}", S_RS256, HR_JWT_ERR_ALG, "unknown algorithm"},
        {"{\"alg\":\"PS256\"}", S_RS256, HR_JWT_ERR_ALG, "unknown algorithm"},
        {"{\"alg\":\"ES384\"}", S_ES256, HR_JWT_ERR_ALG, "unknown algorithm"},
        {"{\"alg\":\"Ed25519\"}", S_EDDSA, HR_JWT_ERR_ALG, "unknown algorithm"},
        {"{\"alg\":\"\"}", S_HS256, HR_JWT_ERR_ALG, "unknown algorithm"},
        {"{\"typ\":\"JWT\"}", S_HS256, HR_JWT_ERR_MALFORMED, "header has no alg"},
        {"{\"alg\":256}", S_HS256, HR_JWT_ERR_MALFORMED, "alg must be a string"},
        {"{\"alg\":null}", S_HS256, HR_JWT_ERR_MALFORMED, "alg must be a string"},
        {"{\"alg\":[\"HS256\"]}", S_HS256, HR_JWT_ERR_MALFORMED, "alg must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(tok(cases[i].h, "{\"sub\":\"a\"}", cases[i].k), &o, cases[i].rc, cases[i].why, cases[i].h);
}

static void test_malformed_base64(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    char good[1024];
    snprintf(good, sizeof(good), "%s", tok("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\"}", S_HS256));
    expect(good, &o, 0, "ok", "good");
    const char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    size_t h = (size_t)(d1 - good), p = (size_t)(d2 - d1 - 1);
    char t[1200];
    static const char *const bad_inserts[] = {"=", "==", "+", "/", " ", "\n", "\t", "\r", "%", "\x80", "!"};
    /* insert each bad character at the end of each part and in the middle */
    for (size_t b = 0; b < sizeof(bad_inserts) / sizeof(bad_inserts[0]); b++) {
        size_t at[] = {h, h + 1 + p, strlen(good), 3, h + 4};
        for (size_t k = 0; k < 5; k++) {
            size_t n = strlen(good), il = strlen(bad_inserts[b]);
            memcpy(t, good, at[k]);
            memcpy(t + at[k], bad_inserts[b], il);
            memcpy(t + at[k] + il, good + at[k], n - at[k] + 1);
            expect(t, &o, HR_JWT_ERR_MALFORMED, NULL, bad_inserts[b]);
        }
    }
    /* replacing '-'/'_' by '+'/'/' (standard base64) */
    snprintf(t, sizeof(t), "%s", good);
    for (char *c = t; *c; c++) if (*c == '-') *c = '+'; else if (*c == '_') *c = '/';
    if (strcmp(t, good) != 0) expect(t, &o, HR_JWT_ERR_MALFORMED, NULL, "std b64");

    static const struct { const char *t; const char *why; } cases[] = {
        {"", "empty token"},
        {"abc", "token must have exactly three parts"},
        {"abc.def", "token must have exactly three parts"},
        {"a.b.c.d", "token must have exactly three parts"},
        {"..", "header is not valid base64url"},
        {"eyJhbGciOiJIUzI1NiJ9..c2ln", "payload is not valid base64url"},
        {".e30.c2ln", "header is not valid base64url"},
        {"eyJhbGciOiJIUzI1NiJ9.e30.", "missing signature"},
        {"eyJhbGciOiJIUzI1NiJ9.e30.c2lnX", "signature is not valid base64url"},  /* 5 chars: impossible */
        {"eyJhbGciOiJIUzI1NiJ9.e30.c2lh", "signature mismatch"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hr_jwt_claims c;
        const char *why;
        int rc = hr_jwt_verify(keys, cases[i].t, strlen(cases[i].t), &o, &c, &why);
        assert_true(rc < 0);
        if (strcmp(why, cases[i].why) != 0) fail_msg("\"%s\": why \"%s\", expected \"%s\"", cases[i].t, why, cases[i].why);
    }
    /* non-canonical base64url: the unused low bits of the last character set */
    {
        char hb[64];
        size_t n = b64u((const uint8_t *)"{\"alg\":\"HS256\",\"a\":12}", 22, hb); /* 4 spare bits */
        hb[n - 1]++;
        snprintf(t, sizeof(t), "%s%s", hb, d1);
        expect(t, &o, HR_JWT_ERR_MALFORMED, "header is not valid base64url", "non-canonical");
    }
    /* 2 and 4 parts made from a good token */
    snprintf(t, sizeof(t), "%.*s", (int)(d2 - good), good);
    expect(t, &o, HR_JWT_ERR_MALFORMED, "token must have exactly three parts", "2 parts");
    snprintf(t, sizeof(t), "%s.%s", good, d2 + 1);
    expect(t, &o, HR_JWT_ERR_MALFORMED, "token must have exactly three parts", "4 parts");
    snprintf(t, sizeof(t), "%s.", good);
    expect(t, &o, HR_JWT_ERR_MALFORMED, "token must have exactly three parts", "trailing dot");
    /* an embedded NUL inside the length */
    snprintf(t, sizeof(t), "%s", good);
    t[5] = '\0';
    hr_jwt_claims c;
    assert_int_equal(hr_jwt_verify(keys, t, strlen(good), &o, &c, NULL), HR_JWT_ERR_MALFORMED);
}

static void test_malformed_json(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    static const struct { const char *h, *p; int rc; const char *why; } cases[] = {
        {"not json", "{}", HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)"},
        {"[\"HS256\"]", "{}", HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)"},
        {"\"HS256\"", "{}", HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"", "{}", HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"} x", "{}", HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\",\"kid\":5}", "{}", HR_JWT_ERR_MALFORMED, "kid must be a string"},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{}", HR_JWT_ERR_MALFORMED, "unsupported critical header (crit)"},
        {"{\"alg\":\"HS256\",\"crit\":\"x\"}", "{}", HR_JWT_ERR_MALFORMED, "unsupported critical header (crit)"},
        {"{\"alg\":\"HS256\",\"crit\":[]}", "{}", 0, "ok"},
        {"{\"alg\":\"HS256\",\"b64\":false}", "{}", HR_JWT_ERR_MALFORMED, "unencoded payload (b64) not supported"},
        {"{\"alg\":\"HS256\",\"cty\":\"JWT\"}", "{}", HR_JWT_ERR_MALFORMED, "nested JWT not supported"},
        {"{\"alg\":\"HS256\",\"typ\":1}", "{}", HR_JWT_ERR_MALFORMED, "typ must be a string"},
        {"{\"alg\":\"HS256\"}", "", HR_JWT_ERR_MALFORMED, "payload is not valid base64url"},
        {"{\"alg\":\"HS256\"}", "[]", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", "123", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", "null", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"sub\":\"b\"}", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", "{\"exp\":1,\"exp\":2000000000}", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"a\\u0000b\"}", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"\xff\"}", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"a\"", HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)"},
        {"{\"alg\":\"HS256\"}", " {\"sub\":\"a\"} ", 0, "ok"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char label[256];
        snprintf(label, sizeof(label), "%s . %s", cases[i].h, cases[i].p);
        expect(tok(cases[i].h, cases[i].p, S_HS256), &o, cases[i].rc, cases[i].why, label);
    }
}

static void test_audience_issuer(void **state)
{
    (void)state;
    static const struct { const char *p; const char *aud, *iss; int rc; const char *why; } cases[] = {
        {"{\"aud\":\"herald\"}", "herald", NULL, 0, "ok"},
        {"{\"aud\":\"other\"}", "herald", NULL, HR_JWT_ERR_CLAIMS, "audience mismatch"},
        {"{\"aud\":\"heraldx\"}", "herald", NULL, HR_JWT_ERR_CLAIMS, "audience mismatch"},
        {"{\"aud\":\"Herald\"}", "herald", NULL, HR_JWT_ERR_CLAIMS, "audience mismatch"},
        {"{\"aud\":[\"api\",\"herald\"]}", "herald", NULL, 0, "ok"},
        {"{\"aud\":[\"api\",\"web\"]}", "herald", NULL, HR_JWT_ERR_CLAIMS, "audience mismatch"},
        {"{\"aud\":[\"api\",5]}", "herald", NULL, HR_JWT_ERR_CLAIMS, "aud must be a string or an array of strings"},
        {"{\"aud\":[]}", "herald", NULL, HR_JWT_ERR_CLAIMS, "aud is an empty array"},
        {"{\"aud\":5}", NULL, NULL, HR_JWT_ERR_CLAIMS, "aud must be a string or an array of strings"},
        {"{}", "herald", NULL, HR_JWT_ERR_CLAIMS, "aud missing"},
        {"{\"aud\":\"anything\"}", NULL, NULL, 0, "ok"},
        {"{\"iss\":\"https://auth.example\"}", NULL, "https://auth.example", 0, "ok"},
        {"{\"iss\":\"https://evil.example\"}", NULL, "https://auth.example", HR_JWT_ERR_CLAIMS, "issuer mismatch"},
        {"{\"iss\":[\"https://auth.example\"]}", NULL, "https://auth.example", HR_JWT_ERR_CLAIMS, "iss must be a string"},
        {"{}", NULL, "https://auth.example", HR_JWT_ERR_CLAIMS, "iss missing"},
        {"{\"iss\":7}", NULL, NULL, HR_JWT_ERR_CLAIMS, "iss must be a string"},
        {"{\"aud\":[\"herald\"],\"iss\":\"me\"}", "herald", "me", 0, "ok"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hr_jwt_opts o = opts_default();
        o.aud = cases[i].aud;
        o.iss = cases[i].iss;
        expect(tok("{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", cases[i].p, S_EDDSA), &o, cases[i].rc, cases[i].why, cases[i].p);
    }
}

static void test_kid_selection(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    expect(tok("{\"alg\":\"HS256\",\"kid\":\"nope\"}", "{}", S_HS256), &o, HR_JWT_ERR_NO_KEY, "unknown kid", "unknown");
    expect(tok("{\"alg\":\"HS256\",\"kid\":\"\"}", "{}", S_HS256), &o, HR_JWT_ERR_NO_KEY, "unknown kid", "empty kid");
    expect(tok("{\"alg\":\"HS256\",\"kid\":\"HS\"}", "{}", S_HS256), &o, HR_JWT_ERR_NO_KEY, "unknown kid", "case");

    hr_jwt_keys *ks = hr_jwt_keys_new();
    add_pem(ks, "2024", HR_JWT_ES256, ec_pub);
    add_pem(ks, "2025", HR_JWT_ES256, ec2_pub);
    add_hmac(ks, "old", HR_JWT_HS256, sec256, 32);
    add_hmac(ks, NULL, HR_JWT_HS256, sec512, 64); /* a second HS256 secret without kid */
    assert_int_equal(hr_jwt_keys_count(ks), 4);
    static const struct { const char *h; enum sig_kind k; int rc; const char *kid; } cases[] = {
        {"{\"alg\":\"ES256\",\"kid\":\"2025\"}", S_ES256_2, 0, "2025"},
        {"{\"alg\":\"ES256\",\"kid\":\"2024\"}", S_ES256, 0, "2024"},
        {"{\"alg\":\"ES256\",\"kid\":\"2024\"}", S_ES256_2, HR_JWT_ERR_SIGNATURE, NULL},
        {"{\"alg\":\"ES256\",\"kid\":\"2025\"}", S_ES256, HR_JWT_ERR_SIGNATURE, NULL},
        {"{\"alg\":\"ES256\"}", S_ES256_2, 0, "2025"},  /* no kid: every ES256 key tried */
        {"{\"alg\":\"ES256\"}", S_ES256, 0, "2024"},
        {"{\"alg\":\"HS256\"}", S_HS256, 0, "old"},
        {"{\"alg\":\"HS256\",\"kid\":\"old\"}", S_HS256, 0, "old"},
        {"{\"alg\":\"HS256\",\"kid\":\"2024\"}", S_HS256, HR_JWT_ERR_ALG, NULL},
        {"{\"alg\":\"EdDSA\"}", S_EDDSA, HR_JWT_ERR_ALG, NULL},
        {"{\"alg\":\"ES256\"}", S_JUNK, HR_JWT_ERR_SIGNATURE, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = tok(cases[i].h, "{\"sub\":\"k\"}", cases[i].k);
        hr_jwt_claims c;
        const char *why;
        int rc = hr_jwt_verify(ks, t, strlen(t), &o, &c, &why);
        if (rc != cases[i].rc) fail_msg("case %zu %s: rc %d (%s)", i, cases[i].h, rc, why);
        if (cases[i].kid) assert_string_equal(c.kid, cases[i].kid);
        hr_jwt_claims_free(&c);
    }
    /* the kid-less HS256 key (sec512 as HS256 secret) is found after "old" */
    uint8_t mac[64];
    unsigned ml;
    char t[512], hb[64], pb[64];
    size_t n = b64u((const uint8_t *)"{\"alg\":\"HS256\"}", 15, hb);
    size_t pl = b64u((const uint8_t *)"{}", 2, pb);
    snprintf(t, sizeof(t), "%.*s.%.*s", (int)n, hb, (int)pl, pb);
    HMAC(EVP_sha256(), sec512, 64, (const uint8_t *)t, strlen(t), mac, &ml);
    size_t tl = strlen(t);
    t[tl++] = '.';
    b64u(mac, ml, t + tl);
    hr_jwt_claims c;
    assert_int_equal(hr_jwt_verify(ks, t, strlen(t), &o, &c, NULL), 0);
    assert_null(c.kid);
    hr_jwt_claims_free(&c);
    hr_jwt_keys_free(ks);
}

static void test_size_limit(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    static char payload[10000];
    /* grow the payload until the token is just over 8 KiB */
    size_t pad = 6000;
    const char *t;
    for (;; pad++) {
        snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"x\":\"%0*d\"}", (int)pad, 0);
        t = tok("{\"alg\":\"HS256\"}", payload, S_HS256);
        if (strlen(t) >= HR_JWT_DEFAULT_MAX_LEN) break;
    }
    size_t len = strlen(t);
    expect(t, &o, len > HR_JWT_DEFAULT_MAX_LEN ? HR_JWT_ERR_TOO_BIG : 0, NULL, "default limit");
    o.max_len = len;
    expect(t, &o, 0, "ok", "limit == length");
    o.max_len = len - 1;
    expect(t, &o, HR_JWT_ERR_TOO_BIG, "token too long", "limit - 1");
    o.max_len = 0;
    snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"x\":\"%0*d\"}", 7000, 0);
    expect(tok("{\"alg\":\"HS256\"}", payload, S_HS256), &o, HR_JWT_ERR_TOO_BIG, "token too long", "9k");
    o.max_len = 64;
    expect(tok("{\"alg\":\"HS256\"}", "{}", S_HS256), &o, HR_JWT_ERR_TOO_BIG, "token too long", "64");
    o.max_len = 65536; /* configurable upward */
    expect(tok("{\"alg\":\"HS256\"}", payload, S_HS256), &o, 0, "ok", "64k");
}

static void test_es256_der_rejected(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    const char *h = "{\"alg\":\"ES256\",\"kid\":\"es\"}";
    char t[1024];
    char hb[128], pb[128];
    size_t n = b64u((const uint8_t *)h, strlen(h), hb);
    size_t pl = b64u((const uint8_t *)"{}", 2, pb);
    snprintf(t, sizeof(t), "%.*s.%.*s", (int)n, hb, (int)pl, pb);
    size_t si = strlen(t);
    /* DER straight from OpenSSL */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[128];
    size_t dl = sizeof(der);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec_key), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &dl, (const uint8_t *)t, si), 1);
    EVP_MD_CTX_free(ctx);
    t[si] = '.';
    b64u(der, dl, t + si + 1);
    expect(t, &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", "DER");
    /* raw R||S from the same DER works; wrong lengths do not */
    const uint8_t *q = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)dl);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    uint8_t raw[66] = {0};
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    ECDSA_SIG_free(es);
    b64u(raw, 64, t + si + 1);
    expect(t, &o, 0, "ok", "raw");
    b64u(raw, 63, t + si + 1);
    expect(t, &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", "63");
    b64u(raw, 65, t + si + 1);
    expect(t, &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", "65");
    memset(raw, 0, 64); /* r = s = 0 */
    b64u(raw, 64, t + si + 1);
    expect(t, &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", "zero");
    memset(raw, 0xff, 64); /* r, s >= n */
    b64u(raw, 64, t + si + 1);
    expect(t, &o, HR_JWT_ERR_SIGNATURE, "signature mismatch", "ff");
}

static void test_key_loading(void **state)
{
    (void)state;
    hr_jwt_keys *ks = hr_jwt_keys_new();
    char err[256];
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *rsa1024 = EVP_RSA_gen(1024);
    char *p384_pem = pem_of(p384, false), *rsa1024_pem = pem_of(rsa1024, false);
    static const char garbage[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    struct { const char *pem; hr_jwt_alg alg; const char *kid; const char *msg; } pems[] = {
        {garbage, HR_JWT_RS256, NULL, "cannot read"},
        {"hello", HR_JWT_ES256, NULL, "cannot read"},
        {ec_pub, HR_JWT_RS256, NULL, "RS256 needs an RSA key"},
        {rsa_pub, HR_JWT_ES256, NULL, "ES256 needs an EC P-256 key"},
        {ec_pub, HR_JWT_EDDSA, NULL, "EdDSA needs an Ed25519 key"},
        {ed_pub, HR_JWT_ES256, NULL, "ES256 needs"},
        {p384_pem, HR_JWT_ES256, NULL, "curve P-256"},
        {rsa1024_pem, HR_JWT_RS256, NULL, "at least 2048"},
        {rsa_pub, HR_JWT_HS256, NULL, "takes a secret"},
        {rsa_pub, HR_JWT_ALG_INVALID, NULL, "invalid algorithm"},
        {rsa_pub, HR_JWT_RS256, "", "kid must be"},
        {rsa_pub, HR_JWT_RS256, "bad\nkid", "printable"},
    };
    for (size_t i = 0; i < sizeof(pems) / sizeof(pems[0]); i++) {
        err[0] = '\0';
        int rc = hr_jwt_keys_add_pem(ks, pems[i].kid, pems[i].alg, pems[i].pem, strlen(pems[i].pem), err, sizeof(err));
        assert_int_equal(rc, HR_JWT_ERR_ARG);
        if (!strstr(err, pems[i].msg)) fail_msg("pem case %zu: \"%s\" lacks \"%s\"", i, err, pems[i].msg);
    }
    assert_int_equal(hr_jwt_keys_count(ks), 0);
    /* private key PEM: its public half is used */
    assert_int_equal(hr_jwt_keys_add_pem(ks, "k1", HR_JWT_ES256, ec_priv, strlen(ec_priv), err, sizeof(err)), 0);
    assert_int_equal(hr_jwt_keys_add_pem(ks, "k1", HR_JWT_RS256, rsa_pub, strlen(rsa_pub), err, sizeof(err)), HR_JWT_ERR_ARG);
    assert_non_null(strstr(err, "duplicate kid"));
    struct { size_t n; hr_jwt_alg alg; const char *msg; } secs[] = {
        {31, HR_JWT_HS256, "at least 32 bytes"},
        {47, HR_JWT_HS384, "at least 48 bytes"},
        {63, HR_JWT_HS512, "at least 64 bytes"},
        {64, HR_JWT_RS256, "not an HMAC algorithm"},
        {64, HR_JWT_ALG_INVALID, "not an HMAC algorithm"},
    };
    for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
        err[0] = '\0';
        assert_int_equal(hr_jwt_keys_add_hmac(ks, NULL, secs[i].alg, sec512, secs[i].n, err, sizeof(err)), HR_JWT_ERR_ARG);
        if (!strstr(err, secs[i].msg)) fail_msg("secret case %zu: \"%s\" lacks \"%s\"", i, err, secs[i].msg);
    }
    assert_int_equal(hr_jwt_keys_add_hmac(ks, NULL, HR_JWT_HS256, NULL, 0, NULL, 0), HR_JWT_ERR_ARG);
    assert_int_equal(hr_jwt_keys_count(ks), 1);
    hr_jwt_opts o = opts_default();
    expect_ks(ks, tok("{\"alg\":\"ES256\",\"kid\":\"k1\"}", "{}", S_ES256), &o, 0, "ok", "private pem key");
    /* bad arguments to verify */
    hr_jwt_claims c;
    const char *why;
    assert_int_equal(hr_jwt_verify(NULL, "a.b.c", 5, &o, &c, &why), HR_JWT_ERR_ARG);
    assert_int_equal(hr_jwt_verify(ks, NULL, 0, &o, &c, &why), HR_JWT_ERR_ARG);
    assert_int_equal(hr_jwt_verify(ks, "a.b.c", 5, NULL, &c, &why), HR_JWT_ERR_ARG);
    /* names */
    assert_string_equal(hr_jwt_alg_name(HR_JWT_EDDSA), "EdDSA");
    assert_null(hr_jwt_alg_name(HR_JWT_ALG_INVALID));
    assert_int_equal(hr_jwt_alg_from_name("HS384"), HR_JWT_HS384);
    assert_int_equal(hr_jwt_alg_from_name("none"), HR_JWT_ALG_INVALID);
    assert_string_equal(hr_jwt_strerror(HR_JWT_ERR_EXPIRED), "token expired");
    hr_jwt_keys_free(ks);
    hr_jwt_keys_free(NULL);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa1024);
    free(p384_pem);
    free(rsa1024_pem);
}

static void test_signer(void **state)
{
    (void)state;
    hr_jwt_opts o = opts_default();
    o.require_exp = true;
    const char *payload = "{\"sub\":\"alice\",\"exp\":1700003600,\"channels\":[\"news\"]}";
    char *t = NULL, err[256];
    size_t n = 0;
    /* HS256 output is deterministic: compare with the independent maker */
    assert_int_equal(hr_jwt_sign_hmac(HR_JWT_HS256, sec256, 32, NULL, payload, strlen(payload), &t, &n, err, sizeof(err)), 0);
    assert_string_equal(t, tok("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, S_HS256));
    assert_int_equal(n, strlen(t));
    expect(t, &o, 0, "ok", "signed hs256");
    hr_free(t);
    static const struct { hr_jwt_alg alg; const char *kid; } hs[] = {
        {HR_JWT_HS256, "hs"}, {HR_JWT_HS384, "hs384"}, {HR_JWT_HS512, "hs512"}};
    const uint8_t *secs[] = {sec256, sec384, sec512};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hr_jwt_sign_hmac(hs[i].alg, secs[i], 32 + 16 * i, hs[i].kid, payload, strlen(payload), &t,
                                          NULL, err, sizeof(err)), 0);
        expect(t, &o, 0, "ok", hs[i].kid);
        hr_free(t);
    }
    struct { hr_jwt_alg alg; const char *pem, *kid; } pk[] = {
        {HR_JWT_RS256, rsa_priv, "rs"}, {HR_JWT_ES256, ec_priv, "es"}, {HR_JWT_EDDSA, ed_priv, "ed"},
        {HR_JWT_ES256, ec_priv, NULL}};
    for (size_t i = 0; i < sizeof(pk) / sizeof(pk[0]); i++) {
        for (int rep = 0; rep < 8; rep++) { /* ES256 R/S with leading zero bytes sometimes */
            int rc = hr_jwt_sign_pem(pk[i].alg, pk[i].pem, strlen(pk[i].pem), pk[i].kid, payload, strlen(payload),
                                     &t, &n, err, sizeof(err));
            if (rc) fail_msg("sign %s: %s", hr_jwt_alg_name(pk[i].alg), err);
            hr_jwt_claims c;
            const char *why;
            rc = hr_jwt_verify(keys, t, n, &o, &c, &why);
            if (rc) fail_msg("verify signed %s: %s", hr_jwt_alg_name(pk[i].alg), why);
            assert_int_equal(c.alg, pk[i].alg);
            assert_string_equal(c.channels[0], "news");
            hr_jwt_claims_free(&c);
            hr_free(t);
        }
    }
    /* signer errors */
    assert_int_equal(hr_jwt_sign_pem(HR_JWT_RS256, ec_priv, strlen(ec_priv), NULL, "{}", 2, &t, NULL, err, sizeof(err)),
                     HR_JWT_ERR_ARG);
    assert_null(t);
    assert_int_equal(hr_jwt_sign_pem(HR_JWT_ES256, ec_pub, strlen(ec_pub), NULL, "{}", 2, &t, NULL, err, sizeof(err)),
                     HR_JWT_ERR_ARG);
    assert_int_equal(hr_jwt_sign_pem(HR_JWT_HS256, ec_priv, strlen(ec_priv), NULL, "{}", 2, &t, NULL, err, sizeof(err)),
                     HR_JWT_ERR_ARG);
    assert_int_equal(hr_jwt_sign_hmac(HR_JWT_ES256, sec256, 32, NULL, "{}", 2, &t, NULL, err, sizeof(err)),
                     HR_JWT_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_valid_per_alg),
        cmocka_unit_test(test_herald_claims),
        cmocka_unit_test(test_time_claims),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_wrong_alg),
        cmocka_unit_test(test_hs256_rsa_forgery),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_malformed_base64),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_audience_issuer),
        cmocka_unit_test(test_kid_selection),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_es256_der_rejected),
        cmocka_unit_test(test_key_loading),
        cmocka_unit_test(test_signer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
