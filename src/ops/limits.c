/* limits.c - abuse limits shared by all workers (see limits.h): per-address
 * connection counts, handshake token buckets and token-failure bans, and the
 * per-user publish buckets, in striped open-addressing tables. */
#include "ops/limits.h"
#include "auth/jwt.h"
#include "core/common.h"
#include "core/log.h"
#include "engine/engine.h"

#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define STRIPES 64

typedef struct ipent {
    uint32_t key;            /* 0 = empty slot */
    uint32_t conns;
    hr_bucket hs;            /* handshakes */
    uint32_t fails;          /* rejected tokens in the window that began at fail_start */
    uint32_t sessions;       /* HTTP emulation sessions (transport/emulation.c) */
    uint64_t fail_start_ms;
    uint64_t ban_until_ms;
    hr_ipaddr addr;          /* the address (the last one admitted under this key), for the ban log */
    bool has_addr;
} ipent;

typedef struct userent {
    uint32_t key;
    hr_bucket b;
} userent;

/* One striped table of either entry type (elem bytes each, key first). */
typedef struct stripe {
    pthread_mutex_t mu;
    void *e;
    uint32_t cap, n;
} stripe;

struct hr_limits {
    hr_limits_opts opt;           /* a copy of the options given to hr_limits_new */
    uint64_t seed;
    bool track_ips;
    stripe ips[STRIPES];
    stripe users[STRIPES];
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint32_t hash_bytes(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = mix64(seed ^ n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, p + i, HR_MIN(8, n - i));
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ull;
    }
    uint32_t k = (uint32_t)(h ^ (h >> 32));
    return k ? k : 1;
}

hr_limits *hr_limits_new(const hr_limits_opts *opts)
{
    hr_limits *l = hr_calloc(1, sizeof(*l));
    l->opt = *opts;
    const hr_limits_opts *cfg = opts;
    if (getrandom(&l->seed, sizeof(l->seed), 0) != (ssize_t)sizeof(l->seed)) l->seed = (uint64_t)(uintptr_t)l;
    l->track_ips = cfg->connections_per_ip > 0 || cfg->handshakes_per_ip > 0 ||
                   cfg->auth_failures_per_ip > 0 || cfg->poll_max_sessions_per_ip > 0;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&l->ips[i].mu, NULL);
        pthread_mutex_init(&l->users[i].mu, NULL);
    }
    return l;
}

void hr_limits_free(hr_limits *l)
{
    if (!l) return;
    for (int i = 0; i < STRIPES; i++) {
        hr_free(l->ips[i].e);
        hr_free(l->users[i].e);
        pthread_mutex_destroy(&l->ips[i].mu);
        pthread_mutex_destroy(&l->users[i].mu);
    }
    hr_free(l);
}

bool hr_limits_track_ips(const hr_limits *l) { return l && l->track_ips; }

uint32_t hr_limits_ip_key(const hr_limits *l, const struct sockaddr *sa, socklen_t len)
{
    uint8_t a[16];
    size_t n = 0;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        n = 4;
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(v6)) {
            memcpy(a, v6->s6_addr + 12, 4); /* ::ffff:a.b.c.d is a.b.c.d */
            n = 4;
        } else {
            memcpy(a, v6->s6_addr, 16);
            int bits = (int)l->opt.ipv6_prefix;
            for (int i = 0; i < 16; i++) {
                int keep = bits - 8 * i;
                if (keep <= 0) a[i] = 0;
                else if (keep < 8) a[i] &= (uint8_t)(0xff << (8 - keep));
            }
            n = 16;
        }
    }
    return hash_bytes(l->seed ^ n, a, n);
}

/* ---- the tables: linear probing, backward-shift deletion ------------------------------ */

static void *slot_at(stripe *s, size_t elem, uint32_t i) { return (char *)s->e + (size_t)i * elem; }
static uint32_t key_at(stripe *s, size_t elem, uint32_t i) { return *(uint32_t *)slot_at(s, elem, i); }

static uint32_t probe(stripe *s, size_t elem, uint32_t key)
{
    uint32_t mask = s->cap - 1;
    for (uint32_t i = (key >> 6) & mask;; i = (i + 1) & mask) {
        uint32_t k = key_at(s, elem, i);
        if (!k || k == key) return i;
    }
}

static void remove_at(stripe *s, size_t elem, uint32_t i)
{
    uint32_t mask = s->cap - 1, j = i;
    memset(slot_at(s, elem, i), 0, elem);
    s->n--;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t k = key_at(s, elem, j);
        if (!k) return;
        uint32_t home = (k >> 6) & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        memcpy(slot_at(s, elem, i), slot_at(s, elem, j), elem);
        memset(slot_at(s, elem, j), 0, elem);
        i = j;
    }
}

typedef bool (*idle_fn)(const hr_limits *l, const void *e, uint64_t now_ms);

/* The entry for key, created (zeroed, key set) if absent. Before the table
 * grows, entries that hold no state worth keeping are dropped. */
static void *get(hr_limits *l, stripe *s, size_t elem, uint32_t key, uint64_t now_ms, idle_fn idle)
{
    if (s->cap) {
        uint32_t i = probe(s, elem, key);
        if (key_at(s, elem, i)) return slot_at(s, elem, i);
    }
    if ((s->n + 1) * 2 > s->cap) {
        for (uint32_t i = 0; s->cap && i < s->cap;) {
            void *e = slot_at(s, elem, i);
            if (*(uint32_t *)e && idle(l, e, now_ms)) remove_at(s, elem, i); /* re-check slot i */
            else i++;
        }
    }
    if ((s->n + 1) * 2 > s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 16;
        void *old = s->e;
        uint32_t ocap = s->cap;
        s->e = hr_calloc(ncap, elem);
        s->cap = ncap;
        for (uint32_t i = 0; i < ocap; i++) {
            void *e = (char *)old + (size_t)i * elem;
            uint32_t k = *(uint32_t *)e;
            if (k) memcpy(slot_at(s, elem, probe(s, elem, k)), e, elem);
        }
        hr_free(old);
    }
    uint32_t i = probe(s, elem, key);
    void *e = slot_at(s, elem, i);
    memset(e, 0, elem);
    *(uint32_t *)e = key;
    s->n++;
    return e;
}

static void *find(stripe *s, size_t elem, uint32_t key)
{
    if (!s->cap) return NULL;
    uint32_t i = probe(s, elem, key);
    return key_at(s, elem, i) ? slot_at(s, elem, i) : NULL;
}

/* ---- token buckets ------------------------------------------------------------------ */

static int64_t burst_of(int64_t rate, int64_t burst) { return burst > 0 ? burst : 2 * rate; }

static void refill(hr_bucket *b, int64_t rate, uint64_t now_ms)
{
    uint32_t el = (uint32_t)now_ms - b->last_ms;
    b->last_ms = (uint32_t)now_ms;
    if (b->used <= 0) return;
    double left = (double)b->used - (double)el * (double)rate / 1000.0;
    b->used = left > 0 ? (float)left : 0;
}

static bool bucket_full(const hr_bucket *b, int64_t rate, uint64_t now_ms)
{
    uint32_t el = (uint32_t)now_ms - b->last_ms;
    return b->used <= 0 || (double)el * (double)rate / 1000.0 >= (double)b->used;
}

bool hr_bucket_take(hr_bucket *b, int64_t rate, int64_t burst, uint64_t now_ms, uint32_t *retry_ms)
{
    if (rate <= 0) return true;
    refill(b, rate, now_ms);
    double cap = (double)burst_of(rate, burst);
    if ((double)b->used + 1 <= cap) {
        b->used += 1;
        return true;
    }
    if (retry_ms) *retry_ms = (uint32_t)ceil(((double)b->used + 1 - cap) * 1000.0 / (double)rate);
    return false;
}

/* ---- per address ---------------------------------------------------------------------- */

static bool ip_idle(const hr_limits *l, const void *p, uint64_t now_ms)
{
    const ipent *e = p;
    return e->conns == 0 && e->sessions == 0 && now_ms >= e->ban_until_ms &&
           (e->fails == 0 || now_ms - e->fail_start_ms >= (uint64_t)l->opt.auth_failure_window_ms) &&
           bucket_full(&e->hs, l->opt.handshakes_per_ip, now_ms);
}

static stripe *ip_stripe(hr_limits *l, uint32_t key) { return &l->ips[key % STRIPES]; }

hr_admit hr_limits_admit(hr_limits *l, uint32_t key, const hr_ipaddr *addr, uint64_t now_ms,
                         uint32_t *retry_after_s)
{
    const hr_limits_opts *cfg = &l->opt;
    stripe *s = ip_stripe(l, key);
    hr_admit rc = HR_ADMIT_OK;
    uint32_t retry_ms = 1000;
    pthread_mutex_lock(&s->mu);
    ipent *e = get(l, s, sizeof(ipent), key, now_ms, ip_idle);
    if (addr) {
        e->addr = *addr;
        e->has_addr = true;
    }
    if (now_ms < e->ban_until_ms) {
        rc = HR_ADMIT_BANNED;
        retry_ms = (uint32_t)HR_MIN(e->ban_until_ms - now_ms, UINT32_MAX);
    } else if (cfg->connections_per_ip > 0 && e->conns >= (uint64_t)cfg->connections_per_ip) {
        rc = HR_ADMIT_TOO_MANY;
    } else if (!hr_bucket_take(&e->hs, cfg->handshakes_per_ip, cfg->handshake_burst_per_ip, now_ms,
                               &retry_ms)) {
        rc = HR_ADMIT_TOO_FAST;
    } else {
        e->conns++;
    }
    if (rc != HR_ADMIT_OK && ip_idle(l, e, now_ms)) remove_at(s, sizeof(ipent), probe(s, sizeof(ipent), key));
    pthread_mutex_unlock(&s->mu);
    if (retry_after_s) *retry_after_s = (retry_ms + 999) / 1000;
    return rc;
}

/* One less in the counter at offset `field` of key's entry (conns or sessions);
 * the entry goes when it holds nothing any more. */
static void uncount(hr_limits *l, uint32_t key, size_t field, uint64_t now_ms)
{
    if (!key) return;
    stripe *s = ip_stripe(l, key);
    pthread_mutex_lock(&s->mu);
    ipent *e = find(s, sizeof(ipent), key);
    uint32_t *n = e ? (uint32_t *)((char *)e + field) : NULL;
    if (n && *n) {
        (*n)--;
        if (ip_idle(l, e, now_ms)) remove_at(s, sizeof(ipent), probe(s, sizeof(ipent), key));
    }
    pthread_mutex_unlock(&s->mu);
}

void hr_limits_release(hr_limits *l, uint32_t key, uint64_t now_ms) { uncount(l, key, offsetof(ipent, conns), now_ms); }

bool hr_limits_session_begin(hr_limits *l, uint32_t key, uint64_t now_ms)
{
    int64_t max = l->opt.poll_max_sessions_per_ip;
    if (!key || max <= 0) return true;
    stripe *s = ip_stripe(l, key);
    pthread_mutex_lock(&s->mu);
    ipent *e = get(l, s, sizeof(ipent), key, now_ms, ip_idle);
    bool ok = e->sessions < (uint64_t)max;
    if (ok) e->sessions++;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void hr_limits_session_end(hr_limits *l, uint32_t key, uint64_t now_ms)
{
    uncount(l, key, offsetof(ipent, sessions), now_ms);
}

bool hr_limits_auth_failure(hr_limits *l, uint32_t key, uint64_t now_ms, char *who, size_t cap)
{
    const hr_limits_opts *cfg = &l->opt;
    if (!key || cfg->auth_failures_per_ip <= 0) return false;
    stripe *s = ip_stripe(l, key);
    bool banned = false;
    pthread_mutex_lock(&s->mu);
    ipent *e = get(l, s, sizeof(ipent), key, now_ms, ip_idle);
    if (!e->fails || now_ms - e->fail_start_ms >= (uint64_t)cfg->auth_failure_window_ms) {
        e->fails = 0;
        e->fail_start_ms = now_ms;
    }
    if (++e->fails >= (uint64_t)cfg->auth_failures_per_ip && now_ms >= e->ban_until_ms) {
        e->ban_until_ms = now_ms + (uint64_t)cfg->auth_failure_ban_ms;
        e->fails = 0;
        banned = true;
        if (who && cap && e->has_addr) hr_ipaddr_format(&e->addr, who, cap);
        else if (who && cap) snprintf(who, cap, "an unknown address");
    }
    pthread_mutex_unlock(&s->mu);
    return banned;
}

uint32_t hr_limits_ban_left(hr_limits *l, uint32_t key, uint64_t now_ms)
{
    if (!l || !key) return 0;
    stripe *s = ip_stripe(l, key);
    pthread_mutex_lock(&s->mu);
    ipent *e = find(s, sizeof(ipent), key);
    uint32_t left = e && now_ms < e->ban_until_ms ? (uint32_t)HR_MIN(e->ban_until_ms - now_ms, UINT32_MAX) : 0;
    pthread_mutex_unlock(&s->mu);
    return left;
}

void hr_limits_bad_token(hr_limits *l, uint32_t key, uint64_t now_ms, int jwt_rc)
{
    if (!l || !key || !jwt_rc || jwt_rc == HR_JWT_ERR_EXPIRED) return;
    char who[HR_IPADDR_STRLEN];
    if (hr_limits_auth_failure(l, key, now_ms, who, sizeof(who)))
        hr_logf(HR_LOG_WARN, "address_banned", "client address %s presented %lld rejected tokens within %lld ms: refused for %lld ms "
                "(limits.auth_failures_per_ip)",
                who, (long long)l->opt.auth_failures_per_ip, (long long)l->opt.auth_failure_window_ms,
                (long long)l->opt.auth_failure_ban_ms);
}

/* ---- publishes -------------------------------------------------------------------------- */

static bool user_idle(const hr_limits *l, const void *p, uint64_t now_ms)
{
    return bucket_full(&((const userent *)p)->b, l->opt.publishes_per_user, now_ms);
}

bool hr_limits_publish(hr_limits *l, hr_bucket *conn_bucket, const char *user, uint64_t now_ms, uint32_t *retry_ms)
{
    const hr_limits_opts *cfg = &l->opt;
    if (conn_bucket && !hr_bucket_take(conn_bucket, cfg->publishes_per_connection, cfg->publish_burst,
                                       now_ms, retry_ms))
        return false;
    if (cfg->publishes_per_user <= 0 || !user || !user[0]) return true;
    uint32_t key = hash_bytes(l->seed, (const uint8_t *)user, strlen(user));
    stripe *s = &l->users[key % STRIPES];
    pthread_mutex_lock(&s->mu);
    userent *e = get(l, s, sizeof(userent), key, now_ms, user_idle);
    bool ok = hr_bucket_take(&e->b, cfg->publishes_per_user, cfg->publish_burst, now_ms, retry_ms);
    pthread_mutex_unlock(&s->mu);
    if (!ok && conn_bucket && conn_bucket->used >= 1) conn_bucket->used -= 1; /* not sent: give it back */
    return ok;
}

/* ---- new channels ------------------------------------------------------------------------ */

bool hr_limits_new_channel(hr_limits *l, hr_bucket *conn_bucket, hr_engine *e, const char *channel, size_t len,
                           uint64_t now_ms, uint32_t *retry_ms)
{
    const hr_limits_opts *cfg = &l->opt;
    if (cfg->channels_per_connection <= 0 || !e->vt->exists || e->vt->exists(e, channel, len)) return true;
    return hr_bucket_take(conn_bucket, cfg->channels_per_connection, cfg->channel_burst, now_ms, retry_ms);
}

size_t hr_limits_tracked(const hr_limits *l)
{
    size_t n = 0;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_lock((pthread_mutex_t *)&l->ips[i].mu);
        n += l->ips[i].n;
        pthread_mutex_unlock((pthread_mutex_t *)&l->ips[i].mu);
    }
    return n;
}
