/* admin.c - the admin UI's session table (see admin.h).
 *
 * A fixed array of max_sessions slots under one mutex; a lookup scans it,
 * comparing every byte of every live slot's secret (constant time per
 * table, never an early exit on a prefix). Expired slots are reused first,
 * then the oldest login. The clock is the caller's (the loop clock, ms). */
#include "ops/admin.h"
#include "ops/limits.h"
#include "core/common.h"
#include "core/log.h"
#include "core/random.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct slot {
    bool live;
    uint64_t created_ms, expires_ms;
    char sid[HR_ADMIN_SECRET_HEX + 1];
    char csrf[HR_ADMIN_SECRET_HEX + 1];
    char token[HR_ADMIN_SECRET_HEX + 1];
} slot;

struct hr_admin {
    pthread_mutex_t mu;
    char password[256];
    uint64_t ttl_ms;
    size_t n;
    slot *slots;
};

hr_admin *hr_admin_new(const char *password, int64_t session_ttl_ms, int64_t max_sessions)
{
    hr_admin *a = hr_calloc(1, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    snprintf(a->password, sizeof(a->password), "%s", password);
    a->ttl_ms = (uint64_t)session_ttl_ms;
    a->n = max_sessions > 0 ? (size_t)max_sessions : 1;
    a->slots = hr_calloc(a->n, sizeof(slot));
    return a;
}

void hr_admin_free(hr_admin *a)
{
    if (!a) return;
    memset(a->slots, 0, a->n * sizeof(slot));
    hr_free(a->slots);
    pthread_mutex_destroy(&a->mu);
    hr_free(a);
}

/* x[0..xlen) == y (NUL-terminated), in time that depends only on the lengths. */
static bool same_secret(const char *x, size_t xlen, const char *y)
{
    size_t ylen = strlen(y);
    unsigned diff = xlen != ylen;
    for (size_t i = 0; i < ylen; i++) diff |= (unsigned)(i < xlen ? x[i] ^ y[i] : 1);
    return diff == 0;
}

bool hr_admin_reserved(const char *ch, size_t len)
{
    size_t n = sizeof(HR_ADMIN_NS) - 1;
    return len > n && memcmp(ch, HR_ADMIN_NS, n) == 0 && ch[n] == ':';
}

bool hr_admin_may_call(const char *name, size_t len)
{
    static const char *const names[] = {"publish", "history", "presence", "channels", "info", "disconnect",
                                        "unsubscribe"};
    for (size_t i = 0; i < HR_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) return true;
    return false;
}

int hr_admin_login(hr_admin *a, hr_limits *limits, uint32_t key, uint64_t now_ms, const char *pw, size_t pwlen,
                   hr_admin_session_ids *out, uint32_t *retry_ms)
{
    uint32_t left = hr_limits_ban_left(limits, key, now_ms);
    if (left) {
        if (retry_ms) *retry_ms = left;
        return HR_ADMIN_E_BANNED;
    }
    if (!same_secret(pw, pwlen, a->password)) {
        char who[HR_IPADDR_STRLEN];
        if (limits && hr_limits_auth_failure(limits, key, now_ms, who, sizeof(who)))
            hr_logf(HR_LOG_WARN, "admin_login_banned", "client address %s failed the admin login too often: refused "
                    "for a while (limits.auth_failures_per_ip)", who);
        return HR_ADMIN_E_PASSWORD;
    }
    pthread_mutex_lock(&a->mu);
    slot *s = &a->slots[0];
    for (size_t i = 0; i < a->n; i++) { /* a free or expired slot, else the oldest */
        slot *t = &a->slots[i];
        if (!t->live || t->expires_ms <= now_ms) {
            s = t;
            break;
        }
        if (t->created_ms < s->created_ms) s = t;
    }
    s->live = true;
    s->created_ms = now_ms;
    s->expires_ms = now_ms + a->ttl_ms;
    hr_random_hex(s->sid, HR_ADMIN_SECRET_HEX / 2);
    hr_random_hex(s->csrf, HR_ADMIN_SECRET_HEX / 2);
    hr_random_hex(s->token, HR_ADMIN_SECRET_HEX / 2);
    memcpy(out->sid, s->sid, sizeof(out->sid));
    memcpy(out->csrf, s->csrf, sizeof(out->csrf));
    pthread_mutex_unlock(&a->mu);
    return HR_ADMIN_OK;
}

/* The live slot whose field at `off` equals v (under a->mu), or NULL. */
static slot *find(hr_admin *a, size_t off, const char *v, size_t len, uint64_t now_ms)
{
    slot *hit = NULL;
    for (size_t i = 0; i < a->n; i++) {
        slot *t = &a->slots[i];
        bool eq = same_secret(v, len, (const char *)t + off);
        if (t->live && t->expires_ms > now_ms && eq) hit = t;
    }
    return hit;
}

int hr_admin_check(hr_admin *a, const char *sid, size_t sidlen, const char *csrf, size_t csrflen, uint64_t now_ms)
{
    pthread_mutex_lock(&a->mu);
    slot *s = find(a, offsetof(slot, sid), sid, sidlen, now_ms);
    int rc = !s ? HR_ADMIN_E_SESSION : csrf && !same_secret(csrf, csrflen, s->csrf) ? HR_ADMIN_E_CSRF : HR_ADMIN_OK;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void hr_admin_logout(hr_admin *a, const char *sid, size_t sidlen)
{
    pthread_mutex_lock(&a->mu);
    slot *s = find(a, offsetof(slot, sid), sid, sidlen, UINT64_MAX - 1);
    for (size_t i = 0; !s && i < a->n; i++) /* an expired one too */
        if (a->slots[i].live && same_secret(sid, sidlen, a->slots[i].sid)) s = &a->slots[i];
    if (s) memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&a->mu);
}

int hr_admin_token(hr_admin *a, const char *sid, size_t sidlen, uint64_t now_ms, char out[HR_ADMIN_TOKEN_LEN + 1])
{
    pthread_mutex_lock(&a->mu);
    slot *s = find(a, offsetof(slot, sid), sid, sidlen, now_ms);
    if (s) snprintf(out, HR_ADMIN_TOKEN_LEN + 1, HR_ADMIN_TOKEN_PREFIX "%s", s->token);
    pthread_mutex_unlock(&a->mu);
    return s ? HR_ADMIN_OK : HR_ADMIN_E_SESSION;
}

bool hr_admin_is_token(const char *tok, size_t len)
{
    size_t n = sizeof(HR_ADMIN_TOKEN_PREFIX) - 1;
    return tok && len >= n && memcmp(tok, HR_ADMIN_TOKEN_PREFIX, n) == 0;
}

int hr_admin_verify_token(hr_admin *a, const char *tok, size_t len, uint64_t now_ms)
{
    size_t n = sizeof(HR_ADMIN_TOKEN_PREFIX) - 1;
    if (!a || !hr_admin_is_token(tok, len)) return HR_ADMIN_E_SESSION;
    pthread_mutex_lock(&a->mu);
    slot *s = find(a, offsetof(slot, token), tok + n, len - n, now_ms);
    pthread_mutex_unlock(&a->mu);
    return s ? HR_ADMIN_OK : HR_ADMIN_E_SESSION;
}
