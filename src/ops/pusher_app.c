/* pusher_app.c - the Pusher apps' table, channel mapping, policy and
 * signatures (see pusher_app.h and docs/pusher.md).
 *
 * The table is small (a few apps): lookups are linear, once per
 * connection or per command, never per delivery. Signatures are compared
 * with CRYPTO_memcmp after an HMAC of the expected text, so a wrong
 * signature costs the same whatever its first wrong digit. */
#include "ops/pusher_app.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define NS_PREFIX "$pusher-"
#define NS_PREFIX_LEN (sizeof(NS_PREFIX) - 1)

static bool same(const char *a, const char *b, size_t blen) { return a && strlen(a) == blen && !memcmp(a, b, blen); }

const hr_pusher_app *hr_pusher_app_by_key(const hr_pusher_apps *t, const char *key, size_t len)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (same(t->v[i].key, key, len)) return &t->v[i];
    return NULL;
}

const hr_pusher_app *hr_pusher_app_by_id(const hr_pusher_apps *t, const char *id, size_t len)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (same(t->v[i].app_id, id, len)) return &t->v[i];
    return NULL;
}

/* ---- channel names ------------------------------------------------------------------- */

static bool has_prefix(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(s, p, n) == 0;
}

int hr_pusher_chan_flags(const char *name, size_t len)
{
    int f = 0;
    if (has_prefix(name, len, "private-encrypted-")) {
        f = HR_PUSHER_CH_PRIVATE | HR_PUSHER_CH_ENCRYPTED;
        name += 18, len -= 18;
    } else if (has_prefix(name, len, "private-")) {
        f = HR_PUSHER_CH_PRIVATE;
        name += 8, len -= 8;
    } else if (has_prefix(name, len, "presence-")) {
        f = HR_PUSHER_CH_PRESENCE;
        name += 9, len -= 9;
    }
    if (has_prefix(name, len, "cache-")) f |= HR_PUSHER_CH_CACHE;
    return f;
}

static bool pusher_char(unsigned char c) { return (c < 128 && isalnum(c)) || (c && strchr("_-=@,.;", c)); }

int hr_pusher_name_check(const hr_pusher_app *app, const char *name, size_t len)
{
    if (!len) return HR_PUSHER_E_NAME;
    if (len > (size_t)app->max_channel_name_length) return HR_PUSHER_E_NAME_LONG;
    for (size_t i = 0; i < len; i++)
        if (!pusher_char((unsigned char)name[i])) return HR_PUSHER_E_NAME;
    return 0;
}

int hr_pusher_to_herald(const hr_pusher_app *app, const char *name, size_t len, hr_buf *out)
{
    size_t ul = sizeof(HR_PUSHER_USER_PREFIX) - 1;
    if (has_prefix(name, len, HR_PUSHER_USER_PREFIX)) return hr_pusher_user_channel(app, name + ul, len - ul, out);
    int rc = hr_pusher_name_check(app, name, len);
    if (rc) return rc;
    hr_buf_printf(out, NS_PREFIX "%s:", app->app_id);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == ';') hr_buf_append(out, "%3B", 3);
        else if (c == '.' && (i == 0 || i + 1 == len || name[i - 1] == '.')) hr_buf_append(out, "%2E", 3);
        else hr_buf_append(out, &c, 1);
    }
    return 0;
}

bool hr_pusher_reserved(const char *ch, size_t len)
{
    return len > NS_PREFIX_LEN && memcmp(ch, NS_PREFIX, NS_PREFIX_LEN) == 0;
}

/* The app of a Pusher namespace channel and where its Pusher name starts. */
static int split(const hr_pusher_apps *t, const char *ch, size_t len, const hr_pusher_app **app, size_t *name_at)
{
    if (!hr_pusher_reserved(ch, len)) return HR_PUSHER_E_NOT_PUSHER;
    const char *colon = memchr(ch, ':', len);
    if (!colon) return HR_PUSHER_E_NOT_PUSHER;
    const char *id = ch + NS_PREFIX_LEN;
    *app = hr_pusher_app_by_id(t, id, (size_t)(colon - id));
    *name_at = (size_t)(colon - ch) + 1;
    return *app ? 0 : HR_PUSHER_E_UNKNOWN_APP;
}

int hr_pusher_from_herald(const hr_pusher_apps *t, const char *ch, size_t len, const hr_pusher_app **app,
                          hr_buf *out)
{
    size_t at = 0;
    int rc = split(t, ch, len, app, &at);
    if (rc) return rc;
    if (at < len && ch[at] == '#') { /* a user channel */
        hr_buf_append_str(out, HR_PUSHER_USER_PREFIX);
        at++;
    }
    for (size_t i = at; i < len; i++) {
        if (ch[i] == '%' && i + 2 < len && ch[i + 1] == '3' && ch[i + 2] == 'B') {
            hr_buf_append(out, ";", 1);
            i += 2;
        } else if (ch[i] == '%' && i + 2 < len && ch[i + 1] == '2' && ch[i + 2] == 'E') {
            hr_buf_append(out, ".", 1);
            i += 2;
        } else {
            hr_buf_append(out, &ch[i], 1);
        }
    }
    return 0;
}

/* A user id Herald's user-limited channels can name (no ',' '#' '.' ':'). */
static bool user_char(unsigned char c) { return (c < 128 && isalnum(c)) || (c && strchr("_-=@!~+$/", c)); }

int hr_pusher_user_channel(const hr_pusher_app *app, const char *user_id, size_t len, hr_buf *out)
{
    if (!len || len > 200) return HR_PUSHER_E_NAME;
    for (size_t i = 0; i < len; i++)
        if (!user_char((unsigned char)user_id[i])) return HR_PUSHER_E_NAME;
    hr_buf_printf(out, NS_PREFIX "%s:#%.*s", app->app_id, (int)len, user_id);
    return 0;
}

int hr_pusher_policy(const hr_pusher_apps *t, const hr_chan_policy *base, const char *ch, size_t len,
                     hr_chan_policy *out, const hr_pusher_app **app)
{
    size_t at = 0;
    int rc = split(t, ch, len, app, &at);
    if (rc) return rc;
    const char *name = ch + at;
    size_t nl = len - at;
    int f = hr_pusher_chan_flags(name, nl);
    *out = *base;
    out->allow_anonymous = true;
    out->subscribe = hr_pusher_chan_signed(f) ? HR_PERM_TOKEN : HR_PERM_ANYONE;
    out->presence = (f & HR_PUSHER_CH_PRESENCE) != 0;
    out->join_leave = out->presence; /* member_added / member_removed */
    if ((f & HR_PUSHER_CH_CACHE) && out->history_size < 1) out->history_size = 1;
    bool events = (*app)->client_events && hr_pusher_chan_signed(f) && !(f & HR_PUSHER_CH_ENCRYPTED);
    out->allow_publish = events;
    out->publish = events ? HR_PERM_SUBSCRIBERS : HR_PERM_NONE;
    out->history_for = HR_PERM_SUBSCRIBERS;
    out->presence_for = HR_PERM_SUBSCRIBERS;
    out->proxy_subscribe = out->proxy_publish = false;
    return 0;
}

/* ---- signatures ------------------------------------------------------------------------ */

void hr_pusher_hmac_hex(const char *secret, const void *msg, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, len, mac, &n);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

bool hr_pusher_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

/* auth = "KEY:HEX(HMAC(secret, msg))" */
static int check_auth(const hr_pusher_app *app, const hr_buf *msg, const char *auth, size_t alen)
{
    size_t kl = strlen(app->key);
    if (alen != kl + 1 + 64 || memcmp(auth, app->key, kl) != 0 || auth[kl] != ':') return HR_PUSHER_E_SIGNATURE;
    char want[65];
    hr_pusher_hmac_hex(app->secret, msg->data, msg->len, want);
    /* hex digits: Pusher's libraries write lower case */
    return hr_pusher_ct_equal(auth + kl + 1, 64, want, 64) ? 0 : HR_PUSHER_E_SIGNATURE;
}

int hr_pusher_check_channel_auth(const hr_pusher_app *app, const char *socket_id, const char *channel, size_t clen,
                                 const char *channel_data, size_t dlen, const char *auth, size_t alen)
{
    if (!auth) return HR_PUSHER_E_SIGNATURE;
    hr_buf msg = HR_BUF_INIT;
    hr_buf_printf(&msg, "%s:%.*s", socket_id, (int)clen, channel);
    if (channel_data) {
        hr_buf_append(&msg, ":", 1);
        hr_buf_append(&msg, channel_data, dlen);
    }
    int rc = check_auth(app, &msg, auth, alen);
    hr_buf_free(&msg);
    return rc;
}

int hr_pusher_check_user_auth(const hr_pusher_app *app, const char *socket_id, const char *user_data, size_t dlen,
                              const char *auth, size_t alen)
{
    if (!auth || !user_data) return HR_PUSHER_E_SIGNATURE;
    hr_buf msg = HR_BUF_INIT;
    hr_buf_printf(&msg, "%s::user::", socket_id);
    hr_buf_append(&msg, user_data, dlen);
    int rc = check_auth(app, &msg, auth, alen);
    hr_buf_free(&msg);
    return rc;
}

bool hr_pusher_rate_take(const hr_pusher_app *app, hr_pusher_rate *r, uint64_t now_ms)
{
    if (now_ms - r->window_ms >= 1000 || now_ms < r->window_ms) {
        r->window_ms = now_ms;
        r->n = 0;
    }
    if (r->n >= (uint64_t)app->max_client_events_per_second) return false;
    r->n++;
    return true;
}

bool hr_pusher_conn_take(const hr_pusher_app *app)
{
    _Atomic int64_t *n = (_Atomic int64_t *)&app->connections; /* the one field that changes */
    int64_t now = atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
    if (app->max_connections && now >= app->max_connections) {
        atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

void hr_pusher_conn_give(const hr_pusher_app *app)
{
    atomic_fetch_sub_explicit((_Atomic int64_t *)&app->connections, 1, memory_order_relaxed);
}
