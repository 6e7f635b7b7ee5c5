/* test_tls.c - transport/tls.c's context: min version parsing, context
 * creation from files (good pair, missing / unreadable / non-PEM files,
 * mismatched key, bad cipher lists), reload keeping the old context on a
 * broken file, and the fingerprint changing on a good one. Keys and
 * certificates are generated here with OpenSSL into a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/config.h"
#include "server/opts.h"
#include "transport/tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

/* A self-signed P-256 certificate and its key, written as PEM. */
static void make_pair(const char *cert_path, const char *key_path, long serial)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    assert_non_null(pk);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static char *path(const char *name)
{
    static char bufs[8][128];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 128, "%s/%s", dir, name);
    return b;
}

static void set(hr_config *cfg, const char *key, const char *value)
{
    char err[256];
    assert_int_equal(hr_config_set(cfg, key, value, err, sizeof(err)), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/herald-test-tls-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    make_pair(path("a.crt"), path("a.key"), 1);
    make_pair(path("b.crt"), path("b.key"), 2);
    FILE *f = fopen(path("junk.pem"), "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"a.crt", "a.key", "b.crt", "b.key", "junk.pem", "live.crt", "live.key"};
    for (size_t i = 0; i < HR_ARRAY_LEN(names); i++) unlink(path(names[i]));
    rmdir(dir);
    return 0;
}

static void test_min_version(void **state)
{
    (void)state;
    assert_int_equal(hr_tls_parse_min_version("1.2"), TLS1_2_VERSION);
    assert_int_equal(hr_tls_parse_min_version("1.3"), TLS1_3_VERSION);
    const char *bad[] = {"", "1.1", "1.0", "1.4", "TLSv1.2", "1.2 ", "1", NULL};
    for (size_t i = 0; bad[i]; i++) assert_int_equal(hr_tls_parse_min_version(bad[i]), HR_ERR_INVALID);
    assert_int_equal(hr_tls_parse_min_version(NULL), HR_ERR_INVALID);
}

/* Context creation: which file / option the error names. */
static void test_ctx_errors(void **state)
{
    (void)state;
    static const struct {
        const char *cert, *key, *key2, *val2, *want;
    } cases[] = {
        {"a.crt", "a.key", NULL, NULL, NULL},
        {"b.crt", "b.key", "tls.min_version", "1.3", NULL},
        {"a.crt", "b.key", NULL, NULL, "does not match the certificate"},
        {"missing.crt", "a.key", NULL, NULL, "tls.cert: cannot open"},
        {"a.crt", "missing.key", NULL, NULL, "tls.key: cannot open"},
        {"junk.pem", "a.key", NULL, NULL, "tls.cert: "},
        {"a.crt", "junk.pem", NULL, NULL, "tls.key: "},
        {"a.key", "a.key", NULL, NULL, "tls.cert: "},
        {"a.crt", "a.crt", NULL, NULL, "tls.key: "},
        {"a.crt", "a.key", "tls.ciphers", "NO-SUCH-CIPHER", "tls.ciphers"},
        {"a.crt", "a.key", "tls.ciphersuites", "TLS_NOPE", "tls.ciphersuites"},
        {"a.crt", "a.key", "tls.ciphersuites", "TLS_AES_128_GCM_SHA256", NULL},
        {"a.crt", "a.key", "tls.min_version", "1.1", "tls.min_version"},
        {"", "a.key", NULL, NULL, "must both be set"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_config cfg;
        hr_config_defaults(&cfg);
        set(&cfg, "tls.cert", cases[i].cert[0] ? path(cases[i].cert) : "");
        set(&cfg, "tls.key", path(cases[i].key));
        if (cases[i].key2) set(&cfg, cases[i].key2, cases[i].val2);
        char err[512] = "";
        hr_transport_opts o;
        hr_opts_transport(&cfg, &o);
        SSL_CTX *ctx = hr_tls_ctx_new(&o, err, sizeof(err));
        if (!cases[i].want) {
            if (!ctx) fail_msg("case %zu: unexpected error: %s", i, err);
            SSL_CTX_free(ctx);
        } else {
            if (ctx) fail_msg("case %zu: expected an error with \"%s\"", i, cases[i].want);
            if (!strstr(err, cases[i].want)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
        }
        hr_config_free(&cfg);
    }
}

static void copy(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

static void test_reload(void **state)
{
    (void)state;
    copy(path("a.crt"), path("live.crt"));
    copy(path("a.key"), path("live.key"));
    hr_config cfg;
    hr_config_defaults(&cfg);
    set(&cfg, "tls.cert", path("live.crt"));
    set(&cfg, "tls.key", path("live.key"));
    char err[512];
    hr_tls_server *t = NULL;
    hr_transport_opts o; /* kept by t until it is freed */
    hr_opts_transport(&cfg, &o);
    assert_int_equal(hr_tls_server_new(&t, &o, err, sizeof(err)), 0);
    char fa[128], fb[128], fc[128];
    hr_tls_server_fingerprint(t, fa, sizeof(fa));
    assert_int_equal(strlen(fa), 32 * 3 - 1);

    /* a broken new file: error, the old context stays */
    copy(path("junk.pem"), path("live.crt"));
    assert_int_equal(hr_tls_server_reload(t, err, sizeof(err)), HR_ERR_INVALID);
    assert_non_null(strstr(err, "tls.cert"));
    hr_tls_server_fingerprint(t, fc, sizeof(fc));
    assert_string_equal(fa, fc);

    /* a certificate without its key: mismatch, old context stays */
    copy(path("b.crt"), path("live.crt"));
    assert_int_equal(hr_tls_server_reload(t, err, sizeof(err)), HR_ERR_INVALID);
    assert_non_null(strstr(err, "does not match"));

    /* the new pair: swapped in */
    copy(path("b.key"), path("live.key"));
    assert_int_equal(hr_tls_server_reload(t, err, sizeof(err)), 0);
    hr_tls_server_fingerprint(t, fb, sizeof(fb));
    assert_string_not_equal(fa, fb);
    hr_tls_server_free(t);
    hr_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_version),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
