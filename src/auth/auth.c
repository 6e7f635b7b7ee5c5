/* auth.c - the server's token verifier and the permission rules (see
 * auth.h and docs/auth.md). */
#include "auth/auth.h"
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Everything a verification reads, immutable once published. */
typedef struct snap {
    hr_jwt_keys *keys;
    char *aud, *iss;             /* NULL = not checked */
    uint32_t leeway_s;
    bool require_exp;
    size_t max_len;
    int64_t refresh_grace_ms;
    struct snap *older;          /* snapshots replaced by this one, freed at hr_auth_free */
} snap;

struct hr_auth {
    _Atomic(snap *) cur;
    hr_auth_loader loader;
    void *loader_ud;
};

#define errf hr_errf

int hr_auth_read_file(const char *path, hr_buf *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return HR_ERR_IO;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        hr_buf_append(out, chunk, n);
        if (out->len > 1024 * 1024) {
            fclose(f);
            errf(err, errlen, "%s: larger than 1 MiB, not a key", path);
            return HR_ERR_TOO_BIG;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        errf(err, errlen, "cannot read %s", path);
        return HR_ERR_IO;
    }
    return 0;
}

int hr_auth_build_keys(const hr_auth_opts *o, hr_jwt_keys **out, char *err, size_t errlen)
{
    hr_jwt_keys *keys = hr_jwt_keys_new();
    char msg[256];
    int rc = 0;
    if (o->token_hmac_secret && o->token_hmac_secret[0]) {
        const char *s = o->token_hmac_secret;
        rc = hr_jwt_keys_add_hmac(keys, NULL, HR_JWT_HS256, (const uint8_t *)s, strlen(s), msg, sizeof(msg));
        if (rc) errf(err, errlen, "auth.token_hmac_secret: %s", msg);
    }
    for (size_t i = 0; !rc && i < o->nkeys; i++) {
        const hr_auth_key_cfg *k = &o->keys[i];
        hr_jwt_alg alg = hr_jwt_alg_from_name(k->alg ? k->alg : "");
        const char *kid = k->kid ? k->kid : k->name;
        if (alg == HR_JWT_ALG_INVALID) {
            errf(err, errlen, "auth.key.%s.alg: expected HS256, HS384, HS512, RS256, ES256 or EdDSA", k->name);
            rc = HR_ERR_INVALID;
            break;
        }
        hr_buf b = HR_BUF_INIT;
        const char *what = "secret";
        if (alg == HR_JWT_HS256 || alg == HR_JWT_HS384 || alg == HR_JWT_HS512) {
            if (k->secret) {
                hr_buf_append(&b, k->secret, strlen(k->secret));
            } else if (k->secret_file) {
                what = "secret_file";
                rc = hr_auth_read_file(k->secret_file, &b, msg, sizeof(msg));
                while (!rc && b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r')) b.len--;
            } else {
                snprintf(msg, sizeof(msg), "an HMAC key needs secret or secret_file");
                rc = HR_ERR_INVALID;
            }
            if (!rc) rc = hr_jwt_keys_add_hmac(keys, kid, alg, b.data, b.len, msg, sizeof(msg));
        } else {
            const char *file = k->public_key_file ? k->public_key_file : k->private_key_file;
            what = k->public_key_file ? "public_key_file" : "private_key_file";
            if (!file) {
                snprintf(msg, sizeof(msg), "needs public_key_file (or private_key_file)");
                rc = HR_ERR_INVALID;
            } else {
                rc = hr_auth_read_file(file, &b, msg, sizeof(msg));
            }
            if (!rc) rc = hr_jwt_keys_add_pem(keys, kid, alg, (const char *)b.data, b.len, msg, sizeof(msg));
        }
        hr_buf_free(&b);
        if (rc) errf(err, errlen, "auth.key.%s.%s: %s", k->name, what, msg);
    }
    if (rc) {
        hr_jwt_keys_free(keys);
        return rc < 0 ? rc : HR_ERR_INVALID;
    }
    *out = keys;
    return 0;
}

static snap *snap_build(const hr_auth_opts *o, char *err, size_t errlen)
{
    hr_jwt_keys *keys = NULL;
    if (hr_auth_build_keys(o, &keys, err, errlen)) return NULL;
    snap *s = hr_calloc(1, sizeof(*s));
    s->keys = keys;
    s->aud = o->audience && o->audience[0] ? hr_strdup(o->audience) : NULL;
    s->iss = o->issuer && o->issuer[0] ? hr_strdup(o->issuer) : NULL;
    s->leeway_s = (uint32_t)(o->leeway_ms / 1000);
    s->require_exp = o->require_exp;
    s->max_len = (size_t)o->max_token_bytes;
    s->refresh_grace_ms = o->refresh_grace_ms;
    return s;
}

static void snap_free(snap *s)
{
    while (s) {
        snap *o = s->older;
        hr_jwt_keys_free(s->keys);
        hr_free(s->aud);
        hr_free(s->iss);
        hr_free(s);
        s = o;
    }
}

hr_auth *hr_auth_new(const hr_auth_opts *o, char *err, size_t errlen)
{
    snap *s = snap_build(o, err, errlen);
    if (!s) return NULL;
    hr_auth *a = hr_calloc(1, sizeof(*a));
    atomic_init(&a->cur, s);
    return a;
}

void hr_auth_free(hr_auth *a)
{
    if (!a) return;
    snap_free(atomic_load(&a->cur));
    hr_free(a);
}

void hr_auth_set_loader(hr_auth *a, hr_auth_loader fn, void *ud)
{
    a->loader = fn;
    a->loader_ud = ud;
}

int hr_auth_reload_from(hr_auth *a, const hr_auth_opts *o, char *err, size_t errlen)
{
    snap *s = snap_build(o, err, errlen);
    if (!s) return HR_ERR_INVALID;
    /* only the signal thread reloads: load then store is not a race */
    s->older = atomic_load(&a->cur);
    atomic_store_explicit(&a->cur, s, memory_order_release);
    return 0;
}

int hr_auth_reload(hr_auth *a)
{
    if (!a) return 0;
    if (!a->loader) {
        hr_logf(HR_LOG_WARN, "keys_reload_skipped", "SIGHUP: no configuration source to reload token keys from");
        return HR_ERR_INVALID;
    }
    char err[1024] = "";
    int rc = a->loader(a, a->loader_ud, err, sizeof(err));
    if (rc) {
        hr_logf(HR_LOG_ERROR, "keys_reload_failed", "SIGHUP: token keys not reloaded, the old ones stay in use: %s", err);
    } else {
        snap *s = atomic_load(&a->cur);
        hr_logf(HR_LOG_INFO, "keys_reloaded", "SIGHUP: token keys reloaded (%zu key%s)", hr_jwt_keys_count(s->keys),
                hr_jwt_keys_count(s->keys) == 1 ? "" : "s");
    }
    return rc;
}

size_t hr_auth_key_count(const hr_auth *a)
{
    if (!a) return 0;
    return hr_jwt_keys_count(atomic_load_explicit(&((hr_auth *)a)->cur, memory_order_acquire)->keys);
}

int64_t hr_auth_refresh_grace_ms(const hr_auth *a)
{
    if (!a) return 0;
    return atomic_load_explicit(&((hr_auth *)a)->cur, memory_order_acquire)->refresh_grace_ms;
}

int hr_auth_verify(const hr_auth *a, const char *token, size_t len, hr_jwt_claims *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    snap *s = a ? atomic_load_explicit(&((hr_auth *)a)->cur, memory_order_acquire) : NULL;
    if (!s || hr_jwt_keys_count(s->keys) == 0) {
        if (why) *why = "token authentication is not configured on this server";
        return HR_AUTH_ERR_DISABLED;
    }
    hr_jwt_opts o = {.now = (int64_t)time(NULL), .leeway = s->leeway_s, .aud = s->aud, .iss = s->iss,
                     .require_exp = s->require_exp, .max_len = s->max_len};
    return hr_jwt_verify(s->keys, token, len, &o, out, why);
}

/* ---- permissions ------------------------------------------------------------------- */

int64_t hr_perm_subscribe_of(const hr_chan_policy *pol)
{
    if (!pol->allow_anonymous && pol->subscribe == HR_PERM_ANYONE) return HR_PERM_AUTHENTICATED;
    return pol->subscribe;
}

int64_t hr_perm_publish_of(const hr_chan_policy *pol)
{
    return pol->allow_publish ? pol->publish : HR_PERM_NONE;
}

bool hr_perm_may_subscribe(const hr_chan_policy *pol, bool authenticated, bool sub_token, const char **detail)
{
    if (sub_token) return true;
    switch (hr_perm_subscribe_of(pol)) {
    case HR_PERM_ANYONE: return true;
    case HR_PERM_AUTHENTICATED:
        if (authenticated) return true;
        *detail = "anonymous clients may not subscribe here (a connection token with a user is needed)";
        return false;
    default:
        *detail = "a subscription token for this channel is needed";
        return false;
    }
}

bool hr_perm_may_publish(const hr_chan_policy *pol, bool authenticated, bool subscribed, const char **detail)
{
    switch (hr_perm_publish_of(pol)) {
    case HR_PERM_ANYONE: return true;
    case HR_PERM_AUTHENTICATED:
        if (authenticated) return true;
        *detail = "anonymous clients may not publish here";
        return false;
    case HR_PERM_SUBSCRIBERS:
        if (subscribed) return true;
        *detail = "only subscribers of the channel may publish";
        return false;
    default:
        *detail = "clients may not publish here";
        return false;
    }
}

bool hr_perm_may_read(const hr_chan_policy *pol, bool presence, bool authenticated, bool subscribed,
                      const char **detail)
{
    int64_t p = presence ? pol->presence_for : pol->history_for;
    if (p == HR_PERM_NONE) {
        *detail = presence ? "presence is not available to clients here" : "history is not available to clients here";
        return false;
    }
    if (subscribed) return true;
    if (p == HR_PERM_SUBSCRIBERS) {
        *detail = presence ? "subscribe to the channel to see its presence" : "subscribe to the channel to read its history";
        return false;
    }
    if (p == HR_PERM_AUTHENTICATED && !authenticated) {
        *detail = "anonymous clients may not do this here";
        return false;
    }
    /* "anyone" / "authenticated": whoever may subscribe without a token */
    if (!hr_perm_may_subscribe(pol, authenticated, false, detail)) {
        *detail = "subscribe to the channel first (it needs a token)";
        return false;
    }
    return true;
}
