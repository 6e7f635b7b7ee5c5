/* jwt.h - JSON Web Token verifier (RFC 7519, JWS compact serialization RFC
 * 7515, algorithms RFC 7518 / RFC 8037) on OpenSSL 3 EVP, plus a signer for
 * tests and `herald token`.
 *
 * Security model (docs/auth.md has the long version):
 * - Every key is PINNED to one algorithm by configuration. The token header's
 *   "alg" only has to agree with it; it never chooses how a key is used. So an
 *   HS256 token "signed" with an RSA public key PEM as HMAC secret is rejected
 *   (the key is RS256, the token says HS256), and "alg":"none" never verifies.
 * - Key selection: a token with "kid" uses exactly the key with that kid
 *   (unknown kid -> rejected). A token without "kid" is tried against every
 *   configured key whose pinned algorithm equals the header's "alg", in the
 *   order they were added (key rotation without kids); none -> rejected.
 * - Parsing is strict: three base64url parts (no padding, no whitespace, no
 *   '+' or '/', canonical trailing bits), JSON objects without duplicate
 *   keys, a size limit checked before anything else. The signature is
 *   checked before the payload is parsed.
 * - Claims: exp / nbf / iat with leeway, optional aud / iss, typed Herald
 *   claims (sub, info, channels, channel).
 *
 * Keys are immutable once added; hr_jwt_verify only reads them, so one key
 * set can be shared by every worker thread (build a new set and swap it to
 * reload). No I/O: keys and tokens come from memory. */
#ifndef HERALD_AUTH_JWT_H
#define HERALD_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

typedef enum {
    HR_JWT_ALG_INVALID = 0, /* "none", unknown names, and "no algorithm" */
    HR_JWT_HS256,
    HR_JWT_HS384,
    HR_JWT_HS512,
    HR_JWT_RS256,
    HR_JWT_ES256,
    HR_JWT_EDDSA, /* Ed25519 only ("EdDSA", RFC 8037) */
} hr_jwt_alg;

/* JWS name ("HS256", ..., "EdDSA") or NULL for HR_JWT_ALG_INVALID. */
const char *hr_jwt_alg_name(hr_jwt_alg alg);
/* Exact, case-sensitive JWS name -> alg; HR_JWT_ALG_INVALID for anything
 * else, "none" included. */
hr_jwt_alg hr_jwt_alg_from_name(const char *name);

/* Error codes of this module. Malformed tokens and limits reuse hr_err's
 * values; the rest are JWT-specific (below -100, outside hr_err). */
enum hr_jwt_err {
    HR_JWT_ERR_MALFORMED = HR_ERR_PROTO,   /* structure, base64url, JSON, header fields */
    HR_JWT_ERR_TOO_BIG = HR_ERR_TOO_BIG,   /* longer than opts->max_len */
    HR_JWT_ERR_ARG = HR_ERR_INVALID,       /* bad argument / key / configuration */
    HR_JWT_ERR_NO_KEY = HR_ERR_NOTFOUND,   /* unknown kid, no key for this alg */
    HR_JWT_ERR_ALG = -101,                 /* alg none / unknown / not the key's pinned alg */
    HR_JWT_ERR_SIGNATURE = -102,           /* signature does not verify (or has the wrong size) */
    HR_JWT_ERR_EXPIRED = -103,             /* exp passed (beyond leeway): ask for a fresh token */
    HR_JWT_ERR_NOT_YET_VALID = -104,       /* nbf / iat in the future (beyond leeway) */
    HR_JWT_ERR_CLAIMS = -105,              /* aud / iss mismatch, missing exp, bad claim type */
};

/* Short name of a code of this module (falls back to hr_strerror). */
const char *hr_jwt_strerror(int err);

#define HR_JWT_DEFAULT_MAX_LEN 8192u
#define HR_JWT_MAX_KEYS 64u
#define HR_JWT_MAX_KID 128u        /* bytes of a kid */
#define HR_JWT_MAX_SUB 255u        /* bytes of sub */
#define HR_JWT_MAX_CHANNEL 255u    /* bytes of one channel name */
#define HR_JWT_MAX_CHANNELS 256u   /* entries of "channels" */
/* Largest accepted value of exp / nbf / iat (year 9999, as seconds). */
#define HR_JWT_MAX_TIME INT64_C(253402300799)

typedef struct hr_jwt_keys hr_jwt_keys;

hr_jwt_keys *hr_jwt_keys_new(void);
void hr_jwt_keys_free(hr_jwt_keys *keys);
size_t hr_jwt_keys_count(const hr_jwt_keys *keys);

/* Add an HMAC key (alg HS256/HS384/HS512). kid: NULL for none, else 1..128
 * printable ASCII bytes, unique in the set. The secret must be at least as
 * long as the hash output (32/48/64 bytes, RFC 7518 3.2) and must not be a
 * PEM document (an RSA public key used as an HMAC secret is the classic
 * forgery). The secret is copied. 0 or a negative code with a message in err
 * (err may be NULL). */
int hr_jwt_keys_add_hmac(hr_jwt_keys *keys, const char *kid, hr_jwt_alg alg,
                         const uint8_t *secret, size_t n, char *err, size_t errlen);

/* Add an asymmetric verification key (alg RS256: RSA >= 2048 bits; ES256:
 * EC P-256; EdDSA: Ed25519) from PEM text (n bytes, need not be
 * NUL-terminated): "PUBLIC KEY", "CERTIFICATE" (its public key) or a private
 * key (only its public half is used). The key type must match alg. */
int hr_jwt_keys_add_pem(hr_jwt_keys *keys, const char *kid, hr_jwt_alg alg,
                        const char *pem, size_t n, char *err, size_t errlen);

typedef struct {
    int64_t now;          /* current time, seconds since the epoch */
    uint32_t leeway;      /* seconds of clock skew tolerated for exp/nbf/iat */
    const char *aud;      /* if set, "aud" must be it or an array containing it */
    const char *iss;      /* if set, "iss" must equal it */
    bool require_exp;     /* reject tokens without "exp" */
    size_t max_len;       /* token size limit in bytes; 0 = HR_JWT_DEFAULT_MAX_LEN */
} hr_jwt_opts;

typedef struct {
    hr_jwt_alg alg;       /* algorithm that verified */
    char *kid;            /* kid of the key that verified, NULL if it has none */
    char *sub;            /* user id (1..255 bytes) or NULL when absent (anonymous) */
    bool has_exp, has_nbf, has_iat;
    int64_t exp, nbf, iat;
    char *info;           /* "info" object as compact JSON, or NULL */
    size_t info_len;
    char **channels;      /* "channels" (connect token), n_channels entries */
    size_t n_channels;
    char *channel;        /* "channel" (subscription token) or NULL */
} hr_jwt_claims;

/* Verify token[0..len) against keys with opts; on success (0) fill out
 * (release with hr_jwt_claims_free). On failure return a negative
 * hr_jwt_err, leave out empty (freeing it stays safe) and set *why (if why
 * is non-NULL) to a static string saying what failed, e.g. "expired",
 * "signature mismatch", "algorithm not allowed for this key". */
int hr_jwt_verify(const hr_jwt_keys *keys, const char *token, size_t len,
                  const hr_jwt_opts *opts, hr_jwt_claims *out, const char **why);

void hr_jwt_claims_free(hr_jwt_claims *c);

/* Signers: header {"alg":ALG,"typ":"JWT"[,"kid":KID]}, the payload bytes as
 * given (the caller's JSON object text, not checked), the signature. *out is
 * a malloc'd NUL-terminated compact token (free with hr_free), *out_len its
 * length (out_len may be NULL). 0 or a negative code with err. */
int hr_jwt_sign_hmac(hr_jwt_alg alg, const uint8_t *secret, size_t n, const char *kid,
                     const char *payload, size_t payload_len, char **out, size_t *out_len,
                     char *err, size_t errlen);
/* RS256 / ES256 / EdDSA with a private key PEM (n bytes). */
int hr_jwt_sign_pem(hr_jwt_alg alg, const char *private_pem, size_t n, const char *kid,
                    const char *payload, size_t payload_len, char **out, size_t *out_len,
                    char *err, size_t errlen);

/* Strict base64url (RFC 4648 section 5, no padding): decoded length or -1
 * (bad character, padding, impossible length, non-zero trailing bits).
 * out needs room for hr_b64url_decoded_max(n) bytes. Exposed for tests. */
static inline size_t hr_b64url_decoded_max(size_t n) { return n / 4 * 3 + 2; }
long hr_b64url_decode(const char *in, size_t n, uint8_t *out);
/* Encode n bytes; out needs (n * 4 + 2) / 3 + 1 bytes; NUL-terminated;
 * returns the length. */
size_t hr_b64url_encode(const uint8_t *in, size_t n, char *out);

#endif
