/* jwt.c - JWT verifier and signer on OpenSSL 3 EVP (see jwt.h, docs/auth.md).
 *
 * Verification order, each step failing closed with a static reason:
 *   1. size limit, character set, exactly two '.' separators;
 *   2. header: strict base64url, a JSON object without duplicate keys, "alg"
 *      a known name other than "none", "kid" a string, "crit" absent or [],
 *      no unencoded payload ("b64"), no nested JWT ("cty": "JWT");
 *   3. key selection: by kid (must exist, pinned alg must equal "alg") or,
 *      without kid, every key pinned to "alg" in configuration order;
 *   4. signature: HMAC compared with CRYPTO_memcmp; RS256 PKCS#1 v1.5;
 *      ES256 raw R||S (exactly 64 bytes) turned into DER for OpenSSL;
 *      EdDSA (Ed25519) one-shot;
 *   5. only then the payload: a JSON object without duplicate keys, typed
 *      time claims (exp, nbf, iat) against now +- leeway, aud, iss, and the
 *      Herald claims (sub, info, channels, channel).
 * Nothing here keeps state between calls; the key set is read-only. */
#include "auth/jwt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/json.h"

#define HMAC_MIN_SECRET_MAX 64u
#define HMAC_MAX_SECRET 65536u
#define MAX_PEM (1u << 20)

typedef struct {
    hr_jwt_alg alg;
    char *kid;          /* NULL: none */
    uint8_t *secret;    /* HS* */
    size_t secret_len;
    EVP_PKEY *pkey;     /* RS256 / ES256 / EdDSA */
} jwt_key;

struct hr_jwt_keys {
    jwt_key *v;
    size_t n;
};

static const char *const alg_names[] = {
    [HR_JWT_HS256] = "HS256", [HR_JWT_HS384] = "HS384", [HR_JWT_HS512] = "HS512",
    [HR_JWT_RS256] = "RS256", [HR_JWT_ES256] = "ES256", [HR_JWT_EDDSA] = "EdDSA",
};

const char *hr_jwt_alg_name(hr_jwt_alg alg)
{
    if (alg <= HR_JWT_ALG_INVALID || alg > HR_JWT_EDDSA) return NULL;
    return alg_names[alg];
}

hr_jwt_alg hr_jwt_alg_from_name(const char *name)
{
    if (!name) return HR_JWT_ALG_INVALID;
    for (int a = HR_JWT_HS256; a <= HR_JWT_EDDSA; a++)
        if (strcmp(name, alg_names[a]) == 0) return (hr_jwt_alg)a;
    return HR_JWT_ALG_INVALID;
}

const char *hr_jwt_strerror(int err)
{
    switch (err) {
    case HR_JWT_ERR_MALFORMED: return "malformed token";
    case HR_JWT_ERR_TOO_BIG: return "token too long";
    case HR_JWT_ERR_ARG: return "invalid argument";
    case HR_JWT_ERR_NO_KEY: return "no matching key";
    case HR_JWT_ERR_ALG: return "algorithm not allowed";
    case HR_JWT_ERR_SIGNATURE: return "bad signature";
    case HR_JWT_ERR_EXPIRED: return "token expired";
    case HR_JWT_ERR_NOT_YET_VALID: return "token not yet valid";
    case HR_JWT_ERR_CLAIMS: return "claims rejected";
    default: return hr_strerror(err);
    }
}

static bool is_hmac(hr_jwt_alg alg)
{
    return alg == HR_JWT_HS256 || alg == HR_JWT_HS384 || alg == HR_JWT_HS512;
}

static const EVP_MD *hmac_md(hr_jwt_alg alg)
{
    switch (alg) {
    case HR_JWT_HS256: return EVP_sha256();
    case HR_JWT_HS384: return EVP_sha384();
    case HR_JWT_HS512: return EVP_sha512();
    default: return NULL;
    }
}

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return code;
}

/* ---------------------------------------------------------------- base64url */

static const int8_t b64_val[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
}; /* value + 1; 0 = not in the alphabet */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

long hr_b64url_decode(const char *in, size_t n, uint8_t *out)
{
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val[(unsigned char)in[i]];
        if (!v) return -1;
        acc = (acc << 6) | (uint32_t)(v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return -1; /* non-canonical: leftover bits must be zero */
    return (long)o;
}

size_t hr_b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_chars[v >> 18];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = b64_chars[(v >> 6) & 63];
        out[o++] = b64_chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_chars[v >> 18];
        out[o++] = b64_chars[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_chars[v >> 18];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = b64_chars[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* --------------------------------------------------------------------- keys */

hr_jwt_keys *hr_jwt_keys_new(void)
{
    return hr_calloc(1, sizeof(hr_jwt_keys));
}

void hr_jwt_keys_free(hr_jwt_keys *keys)
{
    if (!keys) return;
    for (size_t i = 0; i < keys->n; i++) {
        jwt_key *k = &keys->v[i];
        hr_free(k->kid);
        if (k->secret) {
            OPENSSL_cleanse(k->secret, k->secret_len);
            hr_free(k->secret);
        }
        EVP_PKEY_free(k->pkey);
    }
    hr_free(keys->v);
    hr_free(keys);
}

size_t hr_jwt_keys_count(const hr_jwt_keys *keys)
{
    return keys ? keys->n : 0;
}

static const jwt_key *find_kid(const hr_jwt_keys *keys, const char *kid, size_t kid_len)
{
    for (size_t i = 0; i < keys->n; i++) {
        const jwt_key *k = &keys->v[i];
        if (k->kid && strlen(k->kid) == kid_len && memcmp(k->kid, kid, kid_len) == 0) return k;
    }
    return NULL;
}

static int check_new_key(hr_jwt_keys *keys, const char *kid, char *err, size_t errlen)
{
    if (!keys) return fail(HR_JWT_ERR_ARG, err, errlen, "no key set");
    if (keys->n >= HR_JWT_MAX_KEYS)
        return fail(HR_JWT_ERR_ARG, err, errlen, "too many keys (at most %u)", HR_JWT_MAX_KEYS);
    if (kid) {
        size_t n = strlen(kid);
        if (n == 0 || n > HR_JWT_MAX_KID)
            return fail(HR_JWT_ERR_ARG, err, errlen, "kid must be 1..%u bytes", HR_JWT_MAX_KID);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)kid[i] < 0x20 || (unsigned char)kid[i] > 0x7e)
                return fail(HR_JWT_ERR_ARG, err, errlen, "kid must be printable ASCII");
        if (find_kid(keys, kid, n))
            return fail(HR_JWT_ERR_ARG, err, errlen, "duplicate kid \"%s\"", kid);
    }
    return 0;
}

static jwt_key *push_key(hr_jwt_keys *keys, const char *kid, hr_jwt_alg alg)
{
    keys->v = hr_realloc(keys->v, (keys->n + 1) * sizeof(jwt_key));
    jwt_key *k = &keys->v[keys->n++];
    memset(k, 0, sizeof(*k));
    k->alg = alg;
    k->kid = kid ? hr_strdup(kid) : NULL;
    return k;
}

int hr_jwt_keys_add_hmac(hr_jwt_keys *keys, const char *kid, hr_jwt_alg alg,
                         const uint8_t *secret, size_t n, char *err, size_t errlen)
{
    int rc = check_new_key(keys, kid, err, errlen);
    if (rc) return rc;
    if (!is_hmac(alg))
        return fail(HR_JWT_ERR_ARG, err, errlen, "%s is not an HMAC algorithm (use a PEM key)",
                    hr_jwt_alg_name(alg) ? hr_jwt_alg_name(alg) : "invalid algorithm");
    size_t min = (size_t)EVP_MD_get_size(hmac_md(alg));
    if (!secret || n < min)
        return fail(HR_JWT_ERR_ARG, err, errlen, "%s secret must be at least %zu bytes (got %zu)",
                    hr_jwt_alg_name(alg), min, secret ? n : 0);
    if (n > HMAC_MAX_SECRET)
        return fail(HR_JWT_ERR_ARG, err, errlen, "secret longer than %u bytes", HMAC_MAX_SECRET);
    if (memmem(secret, n, "-----BEGIN", 10))
        return fail(HR_JWT_ERR_ARG, err, errlen,
                    "secret looks like a PEM key: configure it as an RS256/ES256/EdDSA key instead");
    jwt_key *k = push_key(keys, kid, alg);
    k->secret = hr_malloc(n);
    memcpy(k->secret, secret, n);
    k->secret_len = n;
    return 0;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf; (void)size; (void)rwflag; (void)u;
    return -1; /* never prompt on a terminal */
}

static BIO *pem_bio(const char *pem, size_t n)
{
    return BIO_new_mem_buf(pem, (int)n);
}

/* Public key from "PUBLIC KEY", "CERTIFICATE" or a private key PEM. */
static EVP_PKEY *load_public(const char *pem, size_t n)
{
    EVP_PKEY *pk = NULL;
    BIO *b = pem_bio(pem, n);
    if (b) pk = PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if (pk) return pk;
    b = pem_bio(pem, n);
    if (b) {
        X509 *x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
        if (x) pk = X509_get_pubkey(x);
        X509_free(x);
    }
    BIO_free(b);
    if (pk) return pk;
    b = pem_bio(pem, n);
    if (b) pk = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    return pk;
}

static EVP_PKEY *load_private(const char *pem, size_t n)
{
    EVP_PKEY *pk = NULL;
    BIO *b = pem_bio(pem, n);
    if (b) pk = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    return pk;
}

/* Is pk a key alg may use? */
static int check_key_type(EVP_PKEY *pk, hr_jwt_alg alg, char *err, size_t errlen)
{
    switch (alg) {
    case HR_JWT_RS256:
        if (!EVP_PKEY_is_a(pk, "RSA"))
            return fail(HR_JWT_ERR_ARG, err, errlen, "RS256 needs an RSA key, got %s", EVP_PKEY_get0_type_name(pk));
        if (EVP_PKEY_get_bits(pk) < 2048)
            return fail(HR_JWT_ERR_ARG, err, errlen, "RS256 key has %d bits, at least 2048 required",
                        EVP_PKEY_get_bits(pk));
        return 0;
    case HR_JWT_ES256: {
        if (!EVP_PKEY_is_a(pk, "EC"))
            return fail(HR_JWT_ERR_ARG, err, errlen, "ES256 needs an EC P-256 key, got %s", EVP_PKEY_get0_type_name(pk));
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1 ||
            (strcmp(group, SN_X9_62_prime256v1) != 0 && strcmp(group, "P-256") != 0))
            return fail(HR_JWT_ERR_ARG, err, errlen, "ES256 needs curve P-256, got %s", group[0] ? group : "unknown");
        return 0;
    }
    case HR_JWT_EDDSA:
        if (!EVP_PKEY_is_a(pk, "ED25519"))
            return fail(HR_JWT_ERR_ARG, err, errlen, "EdDSA needs an Ed25519 key, got %s", EVP_PKEY_get0_type_name(pk));
        return 0;
    default:
        return fail(HR_JWT_ERR_ARG, err, errlen, "%s is not a public-key algorithm",
                    hr_jwt_alg_name(alg) ? hr_jwt_alg_name(alg) : "invalid algorithm");
    }
}

int hr_jwt_keys_add_pem(hr_jwt_keys *keys, const char *kid, hr_jwt_alg alg,
                        const char *pem, size_t n, char *err, size_t errlen)
{
    int rc = check_new_key(keys, kid, err, errlen);
    if (rc) return rc;
    if (is_hmac(alg))
        return fail(HR_JWT_ERR_ARG, err, errlen, "%s takes a secret, not a PEM key", hr_jwt_alg_name(alg));
    if (alg != HR_JWT_RS256 && alg != HR_JWT_ES256 && alg != HR_JWT_EDDSA)
        return fail(HR_JWT_ERR_ARG, err, errlen, "invalid algorithm");
    if (!pem || n == 0 || n > MAX_PEM)
        return fail(HR_JWT_ERR_ARG, err, errlen, "empty or oversized PEM");
    EVP_PKEY *pk = load_public(pem, n);
    if (!pk)
        return fail(HR_JWT_ERR_ARG, err, errlen,
                    "cannot read a key from the PEM (expected PUBLIC KEY, CERTIFICATE or an unencrypted PRIVATE KEY)");
    rc = check_key_type(pk, alg, err, errlen);
    if (rc) {
        EVP_PKEY_free(pk);
        return rc;
    }
    ERR_clear_error();
    push_key(keys, kid, alg)->pkey = pk;
    return 0;
}

/* ------------------------------------------------------------ verification */

static bool verify_sig(const jwt_key *k, const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len)
{
    if (is_hmac(k->alg)) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        if (!HMAC(hmac_md(k->alg), k->secret, (int)k->secret_len, data, len, mac, &mac_len)) {
            ERR_clear_error();
            return false;
        }
        bool ok = sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
        OPENSSL_cleanse(mac, sizeof(mac));
        return ok;
    }
    uint8_t *der = NULL;
    const uint8_t *s = sig;
    size_t s_len = sig_len;
    const EVP_MD *md = NULL;
    if (k->alg == HR_JWT_RS256) {
        if (sig_len != (size_t)EVP_PKEY_get_size(k->pkey)) return false;
        md = EVP_sha256();
    } else if (k->alg == HR_JWT_ES256) {
        if (sig_len != 64) return false; /* raw R||S, RFC 7518 3.4; DER is not JWS */
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *sv = BN_bin2bn(sig + 32, 32, NULL);
        int dl = -1;
        if (es && r && sv && ECDSA_SIG_set0(es, r, sv) == 1) {
            r = sv = NULL; /* owned by es */
            dl = i2d_ECDSA_SIG(es, &der);
        }
        BN_free(r);
        BN_free(sv);
        ECDSA_SIG_free(es);
        if (dl <= 0) {
            ERR_clear_error();
            return false;
        }
        s = der;
        s_len = (size_t)dl;
        md = EVP_sha256();
    } else if (k->alg == HR_JWT_EDDSA) {
        if (sig_len != 64) return false;
        md = NULL;
    } else {
        return false;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) == 1 &&
              EVP_DigestVerify(ctx, s, s_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

/* Strictly decode part [p, p+n) (non-empty) into a new buffer; NULL if bad. */
static uint8_t *decode_part(const char *p, size_t n, size_t *out_len)
{
    if (n == 0) return NULL;
    uint8_t *buf = hr_malloc(hr_b64url_decoded_max(n));
    long dl = hr_b64url_decode(p, n, buf);
    if (dl < 0) {
        hr_free(buf);
        return NULL;
    }
    *out_len = (size_t)dl;
    return buf;
}

/* Parse decoded bytes as a JSON object without duplicate keys, or NULL. */
static json_t *parse_object(const uint8_t *buf, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* A NumericDate claim: integer or finite real, 0..HR_JWT_MAX_TIME. Reals are
 * rounded toward the stricter side (exp down, nbf/iat up). */
static bool numeric_date(json_t *v, bool round_up, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t t = json_integer_value(v);
        if (t < 0 || t > HR_JWT_MAX_TIME) return false;
        *out = (int64_t)t;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d)) return false;
        d = round_up ? ceil(d) : floor(d);
        if (d < 0 || d > (double)HR_JWT_MAX_TIME) return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

static bool str_eq(json_t *s, const char *want)
{
    size_t n = strlen(want);
    return json_is_string(s) && json_string_length(s) == n && memcmp(json_string_value(s), want, n) == 0;
}

static bool short_string(json_t *s, size_t max)
{
    return json_is_string(s) && json_string_length(s) >= 1 && json_string_length(s) <= max;
}

#define REJECT(code, reason) do { rc = (code); *why = (reason); goto out; } while (0)

static int check_claims(json_t *p, const hr_jwt_opts *o, hr_jwt_claims *c, const char **why)
{
    int rc = 0;
    json_t *v;
    int64_t t;
    if ((v = json_object_get(p, "exp"))) {
        if (!numeric_date(v, false, &t)) REJECT(HR_JWT_ERR_CLAIMS, "exp is not a valid NumericDate");
        c->has_exp = true;
        c->exp = t;
    } else if (o->require_exp) {
        REJECT(HR_JWT_ERR_CLAIMS, "exp is required");
    }
    if ((v = json_object_get(p, "nbf"))) {
        if (!numeric_date(v, true, &t)) REJECT(HR_JWT_ERR_CLAIMS, "nbf is not a valid NumericDate");
        c->has_nbf = true;
        c->nbf = t;
    }
    if ((v = json_object_get(p, "iat"))) {
        if (!numeric_date(v, true, &t)) REJECT(HR_JWT_ERR_CLAIMS, "iat is not a valid NumericDate");
        c->has_iat = true;
        c->iat = t;
    }
    int64_t lw = (int64_t)o->leeway;
    /* exp, nbf, iat <= HR_JWT_MAX_TIME and leeway < 2^32: no overflow. */
    if (c->has_exp && c->exp + lw <= o->now) REJECT(HR_JWT_ERR_EXPIRED, "expired");
    if (c->has_nbf && c->nbf - lw > o->now) REJECT(HR_JWT_ERR_NOT_YET_VALID, "not yet valid (nbf)");
    if (c->has_iat && c->iat - lw > o->now) REJECT(HR_JWT_ERR_NOT_YET_VALID, "issued in the future (iat)");
    if (c->has_iat && c->has_exp && c->iat > c->exp) REJECT(HR_JWT_ERR_CLAIMS, "iat is after exp");

    json_t *aud = json_object_get(p, "aud");
    if (aud) {
        if (json_is_array(aud)) {
            if (json_array_size(aud) == 0) REJECT(HR_JWT_ERR_CLAIMS, "aud is an empty array");
            size_t i;
            json_t *e;
            json_array_foreach(aud, i, e)
                if (!json_is_string(e)) REJECT(HR_JWT_ERR_CLAIMS, "aud must be a string or an array of strings");
        } else if (!json_is_string(aud)) {
            REJECT(HR_JWT_ERR_CLAIMS, "aud must be a string or an array of strings");
        }
    }
    if (o->aud) {
        bool found = false;
        if (!aud) REJECT(HR_JWT_ERR_CLAIMS, "aud missing");
        if (json_is_string(aud)) {
            found = str_eq(aud, o->aud);
        } else {
            size_t i;
            json_t *e;
            json_array_foreach(aud, i, e) if (str_eq(e, o->aud)) found = true;
        }
        if (!found) REJECT(HR_JWT_ERR_CLAIMS, "audience mismatch");
    }
    json_t *iss = json_object_get(p, "iss");
    if (iss && !json_is_string(iss)) REJECT(HR_JWT_ERR_CLAIMS, "iss must be a string");
    if (o->iss) {
        if (!iss) REJECT(HR_JWT_ERR_CLAIMS, "iss missing");
        if (!str_eq(iss, o->iss)) REJECT(HR_JWT_ERR_CLAIMS, "issuer mismatch");
    }

    if ((v = json_object_get(p, "sub"))) {
        if (!json_is_string(v)) REJECT(HR_JWT_ERR_CLAIMS, "sub must be a string");
        if (json_string_length(v) == 0) REJECT(HR_JWT_ERR_CLAIMS, "sub is empty");
        if (json_string_length(v) > HR_JWT_MAX_SUB) REJECT(HR_JWT_ERR_CLAIMS, "sub too long");
        c->sub = hr_strdup(json_string_value(v));
    }
    if ((v = json_object_get(p, "info"))) {
        if (!json_is_object(v)) REJECT(HR_JWT_ERR_CLAIMS, "info must be an object");
        c->info = hr_json_dumps(v, &c->info_len);
    }
    if ((v = json_object_get(p, "channels"))) {
        if (!json_is_array(v)) REJECT(HR_JWT_ERR_CLAIMS, "channels must be an array of strings");
        size_t n = json_array_size(v);
        if (n > HR_JWT_MAX_CHANNELS) REJECT(HR_JWT_ERR_CLAIMS, "too many channels");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            if (!short_string(e, HR_JWT_MAX_CHANNEL))
                REJECT(HR_JWT_ERR_CLAIMS, "channels must be an array of non-empty strings of at most 255 bytes");
        c->channels = hr_calloc(n ? n : 1, sizeof(char *));
        json_array_foreach(v, i, e) c->channels[i] = hr_strdup(json_string_value(e));
        c->n_channels = n;
    }
    if ((v = json_object_get(p, "channel"))) {
        if (!short_string(v, HR_JWT_MAX_CHANNEL))
            REJECT(HR_JWT_ERR_CLAIMS, "channel must be a non-empty string of at most 255 bytes");
        c->channel = hr_strdup(json_string_value(v));
    }
out:
    return rc;
}

int hr_jwt_verify(const hr_jwt_keys *keys, const char *token, size_t len,
                  const hr_jwt_opts *opts, hr_jwt_claims *out, const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    *why = "ok";
    if (out) memset(out, 0, sizeof(*out));
    if (!keys || !token || !opts || !out) {
        *why = "invalid argument";
        return HR_JWT_ERR_ARG;
    }
    int rc = 0;
    json_t *hdr = NULL, *pay = NULL;
    uint8_t *sig = NULL, *hbuf = NULL, *pbuf = NULL;
    size_t hbuf_len = 0, pbuf_len = 0;
    size_t max = opts->max_len ? opts->max_len : HR_JWT_DEFAULT_MAX_LEN;
    if (len > max) REJECT(HR_JWT_ERR_TOO_BIG, "token too long");
    if (len == 0) REJECT(HR_JWT_ERR_MALFORMED, "empty token");

    /* 1. structure */
    size_t dot[2], ndots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)token[i];
        if (ch == '.') {
            if (ndots == 2) REJECT(HR_JWT_ERR_MALFORMED, "token must have exactly three parts");
            dot[ndots++] = i;
        } else if (!b64_val[ch]) {
            REJECT(HR_JWT_ERR_MALFORMED, "invalid character in token (base64url without padding expected)");
        }
    }
    if (ndots != 2) REJECT(HR_JWT_ERR_MALFORMED, "token must have exactly three parts");
    const char *h = token, *p = token + dot[0] + 1, *s = token + dot[1] + 1;
    size_t h_len = dot[0], p_len = dot[1] - dot[0] - 1, s_len = len - dot[1] - 1;

    /* 2. header (and the payload's base64url; its JSON waits for step 5) */
    if (!(hbuf = decode_part(h, h_len, &hbuf_len))) REJECT(HR_JWT_ERR_MALFORMED, "header is not valid base64url");
    if (!(pbuf = decode_part(p, p_len, &pbuf_len))) REJECT(HR_JWT_ERR_MALFORMED, "payload is not valid base64url");
    if (!(hdr = parse_object(hbuf, hbuf_len)))
        REJECT(HR_JWT_ERR_MALFORMED, "header is not a JSON object (or has duplicate keys)");
    json_t *alg_j = json_object_get(hdr, "alg");
    if (!alg_j) REJECT(HR_JWT_ERR_MALFORMED, "header has no alg");
    if (!json_is_string(alg_j)) REJECT(HR_JWT_ERR_MALFORMED, "alg must be a string");
    if (strcasecmp(json_string_value(alg_j), "none") == 0) REJECT(HR_JWT_ERR_ALG, "alg none is not allowed");
    hr_jwt_alg alg = hr_jwt_alg_from_name(json_string_value(alg_j));
    if (json_string_length(alg_j) != strlen(json_string_value(alg_j))) alg = HR_JWT_ALG_INVALID;
    if (alg == HR_JWT_ALG_INVALID) REJECT(HR_JWT_ERR_ALG, "unknown algorithm");
    json_t *kid_j = json_object_get(hdr, "kid");
    if (kid_j && !json_is_string(kid_j)) REJECT(HR_JWT_ERR_MALFORMED, "kid must be a string");
    json_t *crit = json_object_get(hdr, "crit");
    if (crit && !(json_is_array(crit) && json_array_size(crit) == 0))
        REJECT(HR_JWT_ERR_MALFORMED, "unsupported critical header (crit)");
    json_t *b64 = json_object_get(hdr, "b64");
    if (b64 && !json_is_true(b64)) REJECT(HR_JWT_ERR_MALFORMED, "unencoded payload (b64) not supported");
    json_t *typ = json_object_get(hdr, "typ");
    if (typ && !json_is_string(typ)) REJECT(HR_JWT_ERR_MALFORMED, "typ must be a string");
    json_t *cty = json_object_get(hdr, "cty");
    if (cty && !json_is_string(cty)) REJECT(HR_JWT_ERR_MALFORMED, "cty must be a string");
    if (cty && strcasecmp(json_string_value(cty), "JWT") == 0) REJECT(HR_JWT_ERR_MALFORMED, "nested JWT not supported");

    /* 3. key selection */
    const jwt_key *only = NULL;
    if (kid_j) {
        only = find_kid(keys, json_string_value(kid_j), json_string_length(kid_j));
        if (!only) REJECT(HR_JWT_ERR_NO_KEY, "unknown kid");
        if (only->alg != alg) REJECT(HR_JWT_ERR_ALG, "algorithm not allowed for this key");
    } else {
        bool any = false;
        for (size_t i = 0; i < keys->n && !any; i++) any = keys->v[i].alg == alg;
        if (!any) {
            if (keys->n == 0) REJECT(HR_JWT_ERR_NO_KEY, "no keys configured");
            REJECT(HR_JWT_ERR_ALG, keys->n == 1 ? "algorithm not allowed for this key"
                                                : "algorithm not allowed for any configured key");
        }
    }

    /* 4. signature */
    if (s_len == 0) REJECT(HR_JWT_ERR_SIGNATURE, "missing signature");
    sig = hr_malloc(hr_b64url_decoded_max(s_len));
    long sl = hr_b64url_decode(s, s_len, sig);
    if (sl < 0) REJECT(HR_JWT_ERR_MALFORMED, "signature is not valid base64url");
    const uint8_t *signing_input = (const uint8_t *)token;
    size_t si_len = h_len + 1 + p_len;
    const jwt_key *used = NULL;
    if (only) {
        if (verify_sig(only, signing_input, si_len, sig, (size_t)sl)) used = only;
    } else {
        for (size_t i = 0; i < keys->n && !used; i++)
            if (keys->v[i].alg == alg && verify_sig(&keys->v[i], signing_input, si_len, sig, (size_t)sl))
                used = &keys->v[i];
    }
    if (!used) REJECT(HR_JWT_ERR_SIGNATURE, "signature mismatch");

    /* 5. payload and claims (authenticated from here on) */
    if (!(pay = parse_object(pbuf, pbuf_len)))
        REJECT(HR_JWT_ERR_MALFORMED, "payload is not a JSON object (or has duplicate keys)");
    out->alg = alg;
    out->kid = used->kid ? hr_strdup(used->kid) : NULL;
    rc = check_claims(pay, opts, out, why);
out:
    if (rc) {
        if (out) hr_jwt_claims_free(out);
    } else {
        *why = "ok";
    }
    hr_free(sig);
    hr_free(hbuf);
    hr_free(pbuf);
    json_decref(hdr);
    json_decref(pay);
    return rc;
}

void hr_jwt_claims_free(hr_jwt_claims *c)
{
    if (!c) return;
    hr_free(c->kid);
    hr_free(c->sub);
    free(c->info); /* from hr_json_dumps (malloc) */
    for (size_t i = 0; i < c->n_channels; i++) hr_free(c->channels[i]);
    hr_free(c->channels);
    hr_free(c->channel);
    memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------ signing */

/* "b64(header).b64(payload)" for alg/kid, in a buffer with room for a
 * signature of up to sig_max bytes after it. */
static char *signing_input(hr_jwt_alg alg, const char *kid, const char *payload, size_t payload_len,
                           size_t sig_max, size_t *len)
{
    json_t *h = json_object();
    json_object_set_new(h, "alg", json_string(hr_jwt_alg_name(alg)));
    json_object_set_new(h, "typ", json_string("JWT"));
    if (kid) json_object_set_new(h, "kid", json_string(kid));
    char *ht = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!ht) return NULL;
    size_t hl = strlen(ht);
    size_t cap = (hl * 4 + 2) / 3 + 1 + (payload_len * 4 + 2) / 3 + 1 + (sig_max * 4 + 2) / 3 + 2;
    char *t = hr_malloc(cap);
    size_t o = hr_b64url_encode((const uint8_t *)ht, hl, t);
    free(ht);
    t[o++] = '.';
    o += hr_b64url_encode((const uint8_t *)payload, payload_len, t + o);
    *len = o;
    return t;
}

static int finish_token(char *t, size_t si_len, const uint8_t *sig, size_t sig_len, char **out, size_t *out_len)
{
    t[si_len] = '.';
    size_t n = si_len + 1 + hr_b64url_encode(sig, sig_len, t + si_len + 1);
    *out = t;
    if (out_len) *out_len = n;
    return 0;
}

int hr_jwt_sign_hmac(hr_jwt_alg alg, const uint8_t *secret, size_t n, const char *kid,
                     const char *payload, size_t payload_len, char **out, size_t *out_len,
                     char *err, size_t errlen)
{
    if (!out || !payload) return fail(HR_JWT_ERR_ARG, err, errlen, "invalid argument");
    *out = NULL;
    if (!is_hmac(alg)) return fail(HR_JWT_ERR_ARG, err, errlen, "not an HMAC algorithm");
    if (!secret || n == 0 || n > HMAC_MAX_SECRET) return fail(HR_JWT_ERR_ARG, err, errlen, "bad secret length");
    size_t si_len;
    char *t = signing_input(alg, kid, payload, payload_len, EVP_MAX_MD_SIZE, &si_len);
    if (!t) return fail(HR_JWT_ERR_ARG, err, errlen, "kid is not valid UTF-8");
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(hmac_md(alg), secret, (int)n, (const uint8_t *)t, si_len, mac, &mac_len)) {
        hr_free(t);
        return fail(HR_JWT_ERR_ARG, err, errlen, "HMAC failed");
    }
    return finish_token(t, si_len, mac, mac_len, out, out_len);
}

int hr_jwt_sign_pem(hr_jwt_alg alg, const char *private_pem, size_t n, const char *kid,
                    const char *payload, size_t payload_len, char **out, size_t *out_len,
                    char *err, size_t errlen)
{
    if (!out || !payload || !private_pem || n == 0 || n > MAX_PEM)
        return fail(HR_JWT_ERR_ARG, err, errlen, "invalid argument");
    *out = NULL;
    if (alg != HR_JWT_RS256 && alg != HR_JWT_ES256 && alg != HR_JWT_EDDSA)
        return fail(HR_JWT_ERR_ARG, err, errlen, "not a public-key algorithm");
    EVP_PKEY *pk = load_private(private_pem, n);
    if (!pk) return fail(HR_JWT_ERR_ARG, err, errlen, "cannot read an unencrypted private key from the PEM");
    int rc = check_key_type(pk, alg, err, errlen);
    if (rc) {
        EVP_PKEY_free(pk);
        return rc;
    }
    size_t sig_max = (size_t)EVP_PKEY_get_size(pk);
    size_t si_len;
    char *t = signing_input(alg, kid, payload, payload_len, sig_max > 64 ? sig_max : 64, &si_len);
    if (!t) {
        EVP_PKEY_free(pk);
        return fail(HR_JWT_ERR_ARG, err, errlen, "kid is not valid UTF-8");
    }
    uint8_t *sig = hr_malloc(sig_max);
    size_t sig_len = sig_max;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestSignInit(ctx, NULL, alg == HR_JWT_EDDSA ? NULL : EVP_sha256(), NULL, pk) == 1 &&
              EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)t, si_len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    uint8_t raw[64];
    if (ok && alg == HR_JWT_ES256) { /* DER -> raw R||S */
        const uint8_t *q = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);
        const BIGNUM *r = NULL, *sv = NULL;
        if (es) ECDSA_SIG_get0(es, &r, &sv);
        ok = es && BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(sv, raw + 32, 32) == 32;
        ECDSA_SIG_free(es);
        if (ok) {
            memcpy(sig, raw, 64);
            sig_len = 64;
        }
    }
    if (!ok) {
        hr_free(sig);
        hr_free(t);
        return fail(HR_JWT_ERR_ARG, err, errlen, "signing failed");
    }
    finish_token(t, si_len, sig, sig_len, out, out_len);
    hr_free(sig);
    ERR_clear_error();
    return 0;
}
