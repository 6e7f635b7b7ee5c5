/* pusher_app.c - the Pusher apps' table, channel mapping, policy and
 * signatures (see pusher_app.h and docs/pusher.md).
 *
 * The table is small (a few apps): lookups are linear, once per
 * connection or per command, never per delivery. Signatures are compared
 * with CRYPTO_memcmp after an HMAC of the expected text, so a wrong
 * signature costs the same whatever its first wrong digit. */
#include "ops/pusher_app.h"
#include "codec/urlquery.h"
#include "core/hex.h"
#include "core/hmac.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PREFIX HR_PUSHER_NS_PREFIX
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

int hr_pusher_scoped_user(const hr_pusher_app *app, const char *user_id, size_t len, hr_buf *out)
{
    hr_buf probe = HR_BUF_INIT;
    int rc = hr_pusher_user_channel(app, user_id, len, &probe); /* the same ids a user channel takes */
    hr_buf_free(&probe);
    if (!rc) hr_buf_printf(out, NS_PREFIX "%s:%.*s", app->app_id, (int)len, user_id);
    return rc;
}

bool hr_pusher_user_matches(const hr_pusher_app *app, const char *user, const char *target)
{
    size_t idl = strlen(app->app_id);
    if (!user[0] || strncmp(target, NS_PREFIX, NS_PREFIX_LEN) != 0) return false;
    target += NS_PREFIX_LEN;
    return strncmp(target, app->app_id, idl) == 0 && target[idl] == ':' && strcmp(target + idl + 1, user) == 0;
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
    hr_hmac_sha256_hex(app->secret, msg->data, msg->len, want);
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

/* ---- the HTTP API's signed requests ------------------------------------------------------ */

/* The replay set: the last api_replay_cache accepted signatures (their first
 * 16 bytes, random enough not to collide) in a ring, oldest first, chained
 * by hash. Entries older than the timestamp window go first (their requests
 * are refused as expired anyway); when the ring is full, the oldest is
 * forgotten and its auth_timestamp becomes the floor: a request signed at
 * or before the floor could replay a forgotten one, and is refused. Only
 * fresh requests (timestamps newer than the oldest remembered) pass, so a
 * signature is never accepted twice. One mutex per app, held for a lookup. */
#define SEEN_NONE UINT32_MAX

typedef struct seen_ent {
    uint8_t sig[16];
    int64_t ts;
    uint32_t next;                       /* next entry of the bucket's chain */
} seen_ent;

struct hr_pusher_seen {
    pthread_mutex_t mu;
    seen_ent *v;
    size_t cap, n, head;                 /* the ring: v[head] is the oldest */
    uint32_t *buckets;
    size_t nbuckets;                     /* a power of two */
    int64_t floor_ts;
};

static hr_pusher_seen *seen_new(size_t cap)
{
    hr_pusher_seen *s = hr_calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->cap = cap;
    s->v = hr_calloc(cap, sizeof(*s->v));
    s->nbuckets = 16;
    while (s->nbuckets < 2 * cap) s->nbuckets *= 2;
    s->buckets = hr_malloc(s->nbuckets * sizeof(*s->buckets));
    for (size_t i = 0; i < s->nbuckets; i++) s->buckets[i] = SEEN_NONE;
    s->floor_ts = INT64_MIN;
    return s;
}

void hr_pusher_api_start(hr_pusher_apps *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (t->v[i].api_replay_cache > 0) t->v[i].seen = seen_new((size_t)t->v[i].api_replay_cache);
}

void hr_pusher_api_stop(hr_pusher_apps *t)
{
    for (size_t i = 0; t && i < t->n; i++) {
        hr_pusher_seen *s = t->v[i].seen;
        if (!s) continue;
        pthread_mutex_destroy(&s->mu);
        hr_free(s->v);
        hr_free(s->buckets);
        hr_free(s);
        t->v[i].seen = NULL;
    }
}

static uint32_t *seen_bucket(hr_pusher_seen *s, const uint8_t sig[16])
{
    uint32_t h;
    memcpy(&h, sig, sizeof(h));
    return &s->buckets[h & (s->nbuckets - 1)];
}

/* Forget the oldest entry. */
static void seen_pop(hr_pusher_seen *s)
{
    uint32_t i = (uint32_t)s->head, *p = seen_bucket(s, s->v[i].sig);
    while (*p != i) p = &s->v[*p].next;
    *p = s->v[i].next;
    s->head = (s->head + 1) % s->cap;
    s->n--;
}

/* Remember sig (signed at ts): false when it is, or may be, a replay. */
static bool seen_add(hr_pusher_seen *s, const uint8_t sig[16], int64_t ts, int64_t now)
{
    pthread_mutex_lock(&s->mu);
    while (s->n && s->v[s->head].ts < now - HR_PUSHER_API_WINDOW_S) seen_pop(s);
    bool fresh = ts > s->floor_ts;
    for (uint32_t i = *seen_bucket(s, sig); fresh && i != SEEN_NONE; i = s->v[i].next)
        fresh = memcmp(s->v[i].sig, sig, 16) != 0;
    if (fresh) {
        if (s->n == s->cap) {
            if (s->v[s->head].ts > s->floor_ts) s->floor_ts = s->v[s->head].ts;
            seen_pop(s);
        }
        uint32_t i = (uint32_t)((s->head + s->n++) % s->cap);
        memcpy(s->v[i].sig, sig, 16);
        s->v[i].ts = ts;
        uint32_t *b = seen_bucket(s, sig);
        s->v[i].next = *b;
        *b = i;
    }
    pthread_mutex_unlock(&s->mu);
    return fresh;
}

/* One "k=v" of a query, %-decoded. */
typedef struct qparam {
    hr_buf k, v;
} qparam;

/* Decode s[0..n) into out (replacing it); false on a malformed escape. */
static bool decode_into(hr_buf *out, const char *s, size_t n)
{
    out->len = 0;
    ssize_t len = hr_url_decode(s, n, (char *)hr_buf_reserve(out, n + 1), n);
    if (len < 0) return false;
    out->len = (size_t)len;
    return true;
}

/* Split q into its parameters, %-decoded: their number, -1 when more than
 * max, -2 on a malformed escape (out[0..max) are initialised either way). */
static int query_split(const char *q, size_t qlen, qparam *out, int max)
{
    for (int i = 0; i < max; i++) out[i] = (qparam){HR_BUF_INIT, HR_BUF_INIT};
    int n = 0;
    size_t pos = 0;
    hr_query_param qp;
    while (hr_query_param_next(q, qlen, &pos, &qp)) {
        if (n == max) return -1;
        qparam *o = &out[n++];
        if (!decode_into(&o->k, qp.name, qp.nlen) || !decode_into(&o->v, qp.value, qp.vlen)) return -2;
        hr_buf_append(&o->k, "", 1); /* NUL-terminated names */
        o->k.len--;
    }
    return n;
}

static int cmp_param(const void *a, const void *b)
{
    const qparam *x = a, *y = b;
    size_t n = HR_MIN(x->k.len, y->k.len);
    int c = n ? memcmp(x->k.data, y->k.data, n) : 0;
    return c ? c : (x->k.len > y->k.len) - (x->k.len < y->k.len);
}

static const qparam *param(const qparam *p, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (p[i].k.len == strlen(key) && !memcmp(p[i].k.data, key, p[i].k.len)) return &p[i];
    return NULL;
}

static bool param_is(const qparam *p, const char *v)
{
    return p && p->v.len == strlen(v) && (!p->v.len || !memcmp(p->v.data, v, p->v.len));
}

/* "METHOD\nPATH\nk=v&k=v" over the sorted parameters but auth_signature. */
static void string_to_sign(const hr_pusher_api_req *r, qparam *p, int n, hr_buf *out)
{
    qsort(p, (size_t)n, sizeof(*p), cmp_param);
    hr_buf_append(out, r->method, r->mlen);
    hr_buf_append(out, "\n", 1);
    hr_buf_append(out, r->path, r->plen);
    hr_buf_append(out, "\n", 1);
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (p[i].k.len == 14 && !memcmp(p[i].k.data, "auth_signature", 14)) continue;
        if (!first) hr_buf_append(out, "&", 1);
        first = false;
        hr_buf_append(out, p[i].k.data, p[i].k.len);
        hr_buf_append(out, "=", 1);
        hr_buf_append(out, p[i].v.data, p[i].v.len);
    }
}

static bool body_md5_ok(const hr_pusher_api_req *r, const qparam *md5)
{
    if (!r->blen) return true; /* nothing to sign (a GET); a given body_md5 is signed like any parameter */
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(r->body, r->blen, d, &n, EVP_md5(), NULL);
    char hex[33];
    hr_hex_encode(d, 16, hex);
    return md5 && hr_pusher_ct_equal((const char *)md5->v.data, md5->v.len, hex, 32);
}

/* auth_timestamp: an integer within the window of now. */
static int check_timestamp(const hr_pusher_api_req *r, const qparam *ts, int64_t *out, const char **why)
{
    char tmp[24];
    if (!ts || !ts->v.len || ts->v.len >= sizeof(tmp)) {
        *why = "Missing or invalid auth_timestamp";
        return HR_PUSHER_E_AUTH;
    }
    memcpy(tmp, ts->v.data, ts->v.len);
    tmp[ts->v.len] = '\0';
    char *end = NULL;
    long long t = strtoll(tmp, &end, 10);
    if (*end || tmp[0] == '-' || tmp[0] == '+') {
        *why = "Missing or invalid auth_timestamp";
        return HR_PUSHER_E_AUTH;
    }
    if (t < r->now_s - HR_PUSHER_API_WINDOW_S || t > r->now_s + HR_PUSHER_API_WINDOW_S) {
        *why = "Timestamp expired: auth_timestamp is not within 600 s of the server's time";
        return HR_PUSHER_E_EXPIRED;
    }
    *out = t;
    return 0;
}

/* The checks on parsed parameters (see hr_pusher_api_check). */
static int check_params(const hr_pusher_app *app, const hr_pusher_api_req *r, qparam *p, int n, const char **why)
{
    const qparam *key = param(p, n, "auth_key"), *sig = param(p, n, "auth_signature");
    if (!key || !param_is(key, app->key)) {
        *why = "Unknown auth_key";
        return HR_PUSHER_E_AUTH;
    }
    if (!param_is(param(p, n, "auth_version"), "1.0")) {
        *why = "Missing or unsupported auth_version (1.0 is spoken)";
        return HR_PUSHER_E_AUTH;
    }
    int64_t ts = 0;
    int rc = check_timestamp(r, param(p, n, "auth_timestamp"), &ts, why);
    if (rc) return rc;
    if (!body_md5_ok(r, param(p, n, "body_md5"))) {
        *why = "Invalid body_md5: expected the hex MD5 of the request body";
        return HR_PUSHER_E_AUTH;
    }
    if (!sig) {
        *why = "Missing auth_signature";
        return HR_PUSHER_E_AUTH;
    }
    hr_buf sig_copy = HR_BUF_INIT, msg = HR_BUF_INIT;
    hr_buf_append(&sig_copy, sig->v.data, sig->v.len); /* the sort moves the parameters */
    string_to_sign(r, p, n, &msg);
    char want[65];
    hr_hmac_sha256_hex(app->secret, msg.data, msg.len, want);
    bool good = hr_pusher_ct_equal((const char *)sig_copy.data, sig_copy.len, want, 64);
    hr_buf_free(&sig_copy);
    hr_buf_free(&msg);
    if (!good) {
        *why = "Invalid signature: expected the hex HMAC-SHA256 of \"METHOD\\nPATH\\nSORTED_QUERY\" with the app's "
               "secret";
        return HR_PUSHER_E_AUTH;
    }
    uint8_t bin[16];
    hr_hex_decode(want, 16, bin); /* our own lowercase hex: cannot fail */
    if (app->seen && !seen_add(app->seen, bin, ts, r->now_s)) {
        *why = "Replayed request: this signature was used before (sign each request anew)";
        return HR_PUSHER_E_REPLAY;
    }
    return 0;
}

#define API_MAX_PARAMS 32

int hr_pusher_api_check(const hr_pusher_app *app, const hr_pusher_api_req *r, const char **why)
{
    qparam p[API_MAX_PARAMS];
    int n = query_split(r->query, r->qlen, p, API_MAX_PARAMS), rc;
    if (n == -1) {
        *why = "Too many query parameters";
        rc = HR_PUSHER_E_AUTH;
    } else if (n == -2) {
        *why = "Malformed query string: a '%' not followed by two hex digits";
        rc = HR_PUSHER_E_QUERY;
    } else {
        rc = check_params(app, r, p, n, why);
    }
    for (int i = 0; i < API_MAX_PARAMS; i++) {
        hr_buf_free(&p[i].k);
        hr_buf_free(&p[i].v);
    }
    return rc;
}

void hr_pusher_member_id(const char *info, const char *user, hr_buf *out)
{
    json_t *v = info ? json_loads(info, JSON_DECODE_ANY, NULL) : NULL;
    json_t *id = json_object_get(v, "user_id");
    const char *s = json_is_string(id) ? json_string_value(id) : user ? user : "";
    hr_buf_append_str(out, s);
    json_decref(v);
}
