/* fuzz_jwt.c - libFuzzer target for the JWT verifier (auth/jwt.h) against a
 * small key set (HS256 with kid "h", ES256 with kid "e") at a fixed "now".
 * The first input byte picks a mode:
 *   0: the rest is a token, verified as is (structure, base64url, header,
 *      key selection, signature paths);
 *   1: the rest is a payload, signed HS256 with the module's signer (with or
 *      without kid), then verified: reaches the claim checks behind the
 *      signature;
 *   2: the same signed ES256 (raw R||S through the DER conversion).
 * Bits of the first byte also switch aud / iss / require_exp / leeway. The
 * verifier must never crash or leak; on success the claims must respect the
 * documented bounds; on failure the claims are empty and a reason is set.
 * abort() on any violation. The EC key below is a throwaway for fuzzing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ec_priv[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOBu3/ETT+RtXj5OA\n"
    "NI9oBSxzUqUF/kIMz1PHMRnVD/KhRANCAAT2uKAY/Sal57tGBaISrfbRIIxjARKq\n"
    "GlrNMtRPYNh3lPyUk5wJ0oxkNte1qEVLswQfWL5i3LVH0OS3Uig5FQ9w\n"
    "-----END PRIVATE KEY-----\n";
static const uint8_t secret[] = "fuzz-secret-fuzz-secret-fuzz-sec"; /* 32 bytes */

static hr_jwt_keys *keys;

static void check(bool ok)
{
    if (!ok) abort();
}

static void init(void)
{
    if (keys) return;
    keys = hr_jwt_keys_new();
    check(hr_jwt_keys_add_hmac(keys, "h", HR_JWT_HS256, secret, 32, NULL, 0) == 0);
    check(hr_jwt_keys_add_pem(keys, "e", HR_JWT_ES256, ec_priv, sizeof(ec_priv) - 1, NULL, 0) == 0);
}

static void verify(const char *t, size_t n, uint8_t flags)
{
    hr_jwt_opts o = {
        .now = 1700000000,
        .leeway = (flags & 0x10) ? 60 : 0,
        .aud = (flags & 0x20) ? "herald" : NULL,
        .iss = (flags & 0x40) ? "issuer" : NULL,
        .require_exp = (flags & 0x80) != 0,
        .max_len = (flags & 0x08) ? 512 : 0,
    };
    hr_jwt_claims c;
    const char *why = NULL;
    int rc = hr_jwt_verify(keys, t, n, &o, &c, &why);
    check(why != NULL && why[0] != '\0');
    if (rc == 0) {
        check(c.alg == HR_JWT_HS256 || c.alg == HR_JWT_ES256);
        check(c.kid && (strcmp(c.kid, "h") == 0 || strcmp(c.kid, "e") == 0));
        check(!c.sub || (strlen(c.sub) >= 1 && strlen(c.sub) <= HR_JWT_MAX_SUB));
        check(!c.has_exp || (c.exp + (int64_t)o.leeway > o.now && c.exp <= HR_JWT_MAX_TIME));
        check(!c.has_nbf || c.nbf - (int64_t)o.leeway <= o.now);
        check(!o.require_exp || c.has_exp);
        check(!c.info || (c.info[0] == '{' && strlen(c.info) == c.info_len));
        check(c.n_channels <= HR_JWT_MAX_CHANNELS);
        for (size_t i = 0; i < c.n_channels; i++)
            check(strlen(c.channels[i]) >= 1 && strlen(c.channels[i]) <= HR_JWT_MAX_CHANNEL);
        check(!c.channel || (strlen(c.channel) >= 1 && strlen(c.channel) <= HR_JWT_MAX_CHANNEL));
    } else {
        check(rc < 0 && !c.kid && !c.sub && !c.info && !c.channels && !c.channel);
    }
    hr_jwt_claims_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size < 1 || size > 16384) return 0;
    uint8_t flags = data[0];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    char *t = NULL;
    size_t tl = 0;
    switch (flags % 3) {
    case 0: {
        char *copy = malloc(n ? n : 1); /* exact size: no NUL after the token */
        if (n) memcpy(copy, rest, n);
        verify(copy, n, flags);
        free(copy);
        return 0;
    }
    case 1:
        check(hr_jwt_sign_hmac(HR_JWT_HS256, secret, 32, (flags & 4) ? "h" : NULL, rest, n, &t, &tl, NULL, 0) == 0);
        break;
    default:
        check(hr_jwt_sign_pem(HR_JWT_ES256, ec_priv, sizeof(ec_priv) - 1, (flags & 4) ? "e" : NULL, rest, n, &t, &tl,
                              NULL, 0) == 0);
        break;
    }
    check(tl == strlen(t));
    verify(t, tl, flags);
    hr_free(t);
    return 0;
}
