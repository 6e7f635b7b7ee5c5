/* hub.c - interest registry, per-worker subscriptions, inbox and fan-out
 * (see hub.h). */
#include "hub/hub.h"
#include "core/hex.h"
#include "core/hash.h"
#include "core/random.h"
#include "core/buf.h"
#include "hub/channel_name.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SHARDS 64

struct hr_local_chan {
    hr_local_chan *next;
    uint64_t hash;
    hr_sub *subs;
    size_t nsubs;
    size_t len;
    char name[];               /* NUL-terminated; in the same allocation */
};

typedef struct interest {
    struct interest *next;
    uint64_t hash;
    uint64_t mask;        /* workers with local subscribers */
    uint64_t subscribers; /* over all workers */
    size_t len;
    char name[];
} interest;

typedef struct ishard {
    pthread_mutex_t mu;
    interest **buckets;
    size_t nbuckets, count;
} ishard;

static uint64_t hash_name(const char *s, size_t n) { return hr_fnv1a(s, n); }

/* ---- interest registry --------------------------------------------------- */

static ishard *ishard_of(hr_hub *hub, uint64_t h) { return &((ishard *)hub->shards)[h % SHARDS]; }

static interest **ifind(ishard *sh, uint64_t h, const char *name, size_t len)
{
    if (!sh->nbuckets) return NULL;
    interest **pp = &sh->buckets[(h >> 6) & (sh->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->name, name, len) == 0) return pp;
    return NULL;
}

static void igrow(ishard *sh)
{
    size_t nb = sh->nbuckets ? sh->nbuckets * 2 : 64;
    interest **b = hr_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < sh->nbuckets; i++) {
        interest *x = sh->buckets[i];
        while (x) {
            interest *nx = x->next;
            size_t idx = (x->hash >> 6) & (nb - 1);
            x->next = b[idx];
            b[idx] = x;
            x = nx;
        }
    }
    hr_free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = nb;
}

static void occupancy_report(hr_hub *hub, const char *name, size_t len, bool occupied, uint64_t time_ms)
{
    atomic_fetch_add_explicit(occupied ? &hub->occupied : &hub->vacated, 1, memory_order_relaxed);
    if (!hub->occupancy_fn) return;
    hr_occupancy ev = {name, len, occupied, time_ms};
    hub->occupancy_fn(hub->occupancy_ud, &ev);
}

/* The engine's occupancy hook (clustered engines: the cluster's transitions). */
static void engine_occupancy(void *hubp, const char *name, size_t len, bool occupied, uint64_t time_ms)
{
    occupancy_report(hubp, name, len, occupied, time_ms);
}

/* The node's first subscriber of a channel arrived (on) or its last one
 * left (!on); called under the channel's registry lock, so two workers
 * racing on one channel make their transitions one after the other and
 * they are reported in that order. A clustered engine hears of it (it
 * starts or stops receiving the channel, queued under this lock so on/off
 * reach it in order) and decides the cluster-wide transition itself;
 * otherwise the node's transition is the channel's. */
static void node_transition(hr_hub *hub, const char *name, size_t len, bool on)
{
    if (hub->engine->cluster) hub->engine->cluster->interest(hub->engine, name, len, on);
    else occupancy_report(hub, name, len, on, hr_wall_ms());
}

void hr_hub_set_occupancy_cb(hr_hub *hub, hr_occupancy_fn fn, void *ud)
{
    hub->occupancy_fn = fn;
    hub->occupancy_ud = ud;
}

/* One more (delta +1) or one fewer (-1) subscriber of a channel on `worker`,
 * whose local subscriber count becomes `local`. With max > 0, a new
 * subscriber is refused (false, nothing changed) once the channel has `max`
 * subscribers over all workers. */
static bool interest_update(hr_hub *hub, const char *name, size_t len, uint64_t h, int worker, int delta, size_t local,
                            uint64_t max)
{
    ishard *sh = ishard_of(hub, h);
    bool ok = true;
    pthread_mutex_lock(&sh->mu);
    interest **pp = ifind(sh, h, name, len);
    if (delta > 0) {
        if (pp && max && (*pp)->subscribers >= max) {
            ok = false;
        } else {
            if (!pp) {
                if (sh->count + 1 > sh->nbuckets) igrow(sh);
                interest *x = hr_malloc(sizeof(*x) + len);
                x->hash = h;
                x->mask = 0;
                x->subscribers = 0;
                x->len = len;
                memcpy(x->name, name, len);
                size_t idx = (h >> 6) & (sh->nbuckets - 1);
                x->next = sh->buckets[idx];
                sh->buckets[idx] = x;
                sh->count++;
                pp = &sh->buckets[idx];
                node_transition(hub, name, len, true);
            }
            (*pp)->subscribers++;
            (*pp)->mask |= 1ull << worker;
        }
    } else if (pp) {
        (*pp)->subscribers--;
        if (!local) (*pp)->mask &= ~(1ull << worker);
        if (!(*pp)->mask) {
            interest *x = *pp;
            *pp = x->next;
            hr_free(x);
            sh->count--;
            node_transition(hub, name, len, false);
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return ok;
}

/* Node-wide count of the subscriptions to a pattern (all workers), kept in
 * the same registry under "\x01PATTERN" (no channel name starts with a
 * control byte): the engine hears of its first and last subscriber. */
static void pattern_interest(hr_hub *hub, const char *pattern, size_t len, int delta)
{
    if (!hub->engine->cluster) return;
    char stack[256];
    char *key = len + 1 <= sizeof(stack) ? stack : hr_malloc(len + 1);
    key[0] = '\x01';
    memcpy(key + 1, pattern, len);
    uint64_t h = hash_name(key, len + 1);
    ishard *sh = ishard_of(hub, h);
    pthread_mutex_lock(&sh->mu);
    interest **pp = ifind(sh, h, key, len + 1);
    if (delta > 0) {
        if (!pp) {
            if (sh->count + 1 > sh->nbuckets) igrow(sh);
            interest *x = hr_malloc(sizeof(*x) + len + 1);
            x->hash = h;
            x->mask = 0;
            x->subscribers = 0;
            x->len = len + 1;
            memcpy(x->name, key, len + 1);
            size_t idx = (h >> 6) & (sh->nbuckets - 1);
            x->next = sh->buckets[idx];
            sh->buckets[idx] = x;
            sh->count++;
            pp = &sh->buckets[idx];
            hub->engine->cluster->pattern_interest(hub->engine, pattern, len, true);
        }
        (*pp)->subscribers++;
    } else if (pp && --(*pp)->subscribers == 0) {
        interest *x = *pp;
        *pp = x->next;
        hr_free(x);
        sh->count--;
        hub->engine->cluster->pattern_interest(hub->engine, pattern, len, false);
    }
    pthread_mutex_unlock(&sh->mu);
    if (key != stack) hr_free(key);
}

uint64_t hr_hub_subscribers(hr_hub *hub, const char *channel, size_t len)
{
    uint64_t h = hash_name(channel, len);
    ishard *sh = ishard_of(hub, h);
    pthread_mutex_lock(&sh->mu);
    interest **pp = ifind(sh, h, channel, len);
    uint64_t n = pp ? (*pp)->subscribers : 0;
    pthread_mutex_unlock(&sh->mu);
    return n;
}

/* Keep out[0..*k) sorted by subscribers (most first), at most n. */
static void top_insert(hr_hub_chan_count *out, size_t n, size_t *k, const interest *it)
{
    size_t i = *k;
    if (i == n && (!n || out[n - 1].subscribers >= it->subscribers)) return;
    if (i == n) i--;
    else (*k)++;
    while (i > 0 && out[i - 1].subscribers < it->subscribers) {
        out[i] = out[i - 1];
        i--;
    }
    size_t len = HR_MIN(it->len, sizeof(out[i].name) - 1);
    memcpy(out[i].name, it->name, len);
    out[i].name[len] = '\0';
    out[i].subscribers = it->subscribers;
}

size_t hr_hub_top_channels(hr_hub *hub, hr_hub_chan_count *out, size_t n, uint64_t *nchannels, uint64_t *nsubs)
{
    size_t k = 0;
    uint64_t chans = 0, subs = 0;
    for (size_t s = 0; s < SHARDS; s++) {
        ishard *sh = &((ishard *)hub->shards)[s];
        pthread_mutex_lock(&sh->mu);
        for (size_t b = 0; b < sh->nbuckets; b++)
            for (const interest *it = sh->buckets[b]; it; it = it->next) {
                if (!it->subscribers) continue;
                chans++;
                subs += it->subscribers;
                top_insert(out, n, &k, it);
            }
        pthread_mutex_unlock(&sh->mu);
    }
    if (nchannels) *nchannels = chans;
    if (nsubs) *nsubs = subs;
    return k;
}

void hr_hub_each_channel(hr_hub *hub, const char *prefix, size_t plen, hr_hub_chan_fn fn, void *ud)
{
    for (size_t s = 0; s < SHARDS; s++) {
        ishard *sh = &((ishard *)hub->shards)[s];
        pthread_mutex_lock(&sh->mu);
        for (size_t b = 0; b < sh->nbuckets; b++)
            for (const interest *it = sh->buckets[b]; it; it = it->next)
                if (it->subscribers && it->len >= plen && !memcmp(it->name, prefix, plen))
                    fn(ud, it->name, it->len, it->subscribers);
        pthread_mutex_unlock(&sh->mu);
    }
}

static void inbox_push(hr_whub *wh, hr_pub *pub)
{
    pthread_mutex_t *mu = wh->inbox_mu;
    pthread_mutex_lock(mu);
    bool was_empty = wh->inbox_n == 0;
    if (wh->inbox_n == wh->inbox_cap) {
        wh->inbox_cap = wh->inbox_cap ? wh->inbox_cap * 2 : 64;
        wh->inbox = hr_realloc(wh->inbox, wh->inbox_cap * sizeof(*wh->inbox));
    }
    wh->inbox[wh->inbox_n++] = hr_pub_ref(pub);
    pthread_mutex_unlock(mu);
    if (was_empty) hr_loop_wake(wh->loop);
}

/* Stamp pub's hub entry time for herald_publish_to_write_seconds (one in
 * metrics.publish_sample). */
static void sample(hr_hub *hub, hr_pub *pub)
{
    static _Thread_local uint32_t seen; /* per thread: no shared counter on the publish path */
    if (hub->sample_every && ++seen >= hub->sample_every) {
        seen = 0;
        pub->hub_us = hr_now_us();
    }
}

/* The workers with a local subscriber of pub's channel. */
static uint64_t deliver_mask(hr_hub *hub, const hr_pub *pub)
{
    uint64_t h = hash_name(pub->channel, pub->channel_len);
    ishard *sh = ishard_of(hub, h);
    pthread_mutex_lock(&sh->mu);
    interest **pp = ifind(sh, h, pub->channel, pub->channel_len);
    uint64_t mask = pp ? (*pp)->mask : 0;
    pthread_mutex_unlock(&sh->mu);
    return mask;
}

/* The engine's deliver callback: called in channel order, any thread. */
void hr_hub_deliver(void *hubp, hr_pub *pub)
{
    hr_hub *hub = hubp;
    sample(hub, pub);
    uint64_t mask = deliver_mask(hub, pub) | atomic_load_explicit(&hub->pattern_mask, memory_order_acquire);
    for (int i = 0; mask && i < hub->nworkers; i++)
        if (mask & (1ull << i)) inbox_push(&hub->workers[i], pub);
}

static bool same_channel(const hr_pub *a, const hr_pub *b)
{
    return a->channel_len == b->channel_len && memcmp(a->channel, b->channel, a->channel_len) == 0;
}

/* pubs[i] with bit w in masks[i] onto worker w's inbox, in order, under one
 * lock and with at most one wake-up. */
static void inbox_push_many(hr_whub *wh, hr_pub *const *pubs, const uint64_t *masks, size_t n, uint64_t bit)
{
    pthread_mutex_t *mu = wh->inbox_mu;
    pthread_mutex_lock(mu);
    bool was_empty = wh->inbox_n == 0;
    if (wh->inbox_n + n > wh->inbox_cap) {
        size_t cap = wh->inbox_cap ? wh->inbox_cap : 64;
        while (cap < wh->inbox_n + n) cap *= 2;
        wh->inbox_cap = cap;
        wh->inbox = hr_realloc(wh->inbox, cap * sizeof(*wh->inbox));
    }
    for (size_t i = 0; i < n; i++)
        if (masks[i] & bit) wh->inbox[wh->inbox_n++] = hr_pub_ref(pubs[i]);
    bool woke = was_empty && wh->inbox_n;
    pthread_mutex_unlock(mu);
    if (woke) hr_loop_wake(wh->loop);
}

/* The engine's deliver_batch callback: the interest registry is read once
 * per run of one channel, each worker's inbox taken once for the batch, so
 * the worker finds the batch's runs together and fans each out in one
 * visit (fan_out_run). */
void hr_hub_deliver_batch(void *hubp, hr_pub *const *pubs, size_t n)
{
    hr_hub *hub = hubp;
    uint64_t stack[64];
    uint64_t *masks = n <= 64 ? stack : hr_malloc(n * sizeof(*masks));
    uint64_t any = atomic_load_explicit(&hub->pattern_mask, memory_order_acquire), all = 0;
    for (size_t i = 0; i < n; i++) {
        sample(hub, pubs[i]);
        masks[i] = i && same_channel(pubs[i], pubs[i - 1]) ? masks[i - 1] : deliver_mask(hub, pubs[i]) | any;
        all |= masks[i];
    }
    for (int w = 0; all && w < hub->nworkers; w++)
        if (all & (1ull << w)) inbox_push_many(&hub->workers[w], pubs, masks, n, 1ull << w);
    if (masks != stack) hr_free(masks);
}

/* ---- lifecycle --------------------------------------------------------------- */

static void engine_task(hr_whub *wh, void *arg)
{
    hr_engine_task *t = arg;
    t->run(t, wh != NULL);
}

/* The engine's way back to a worker: its callback as a hub task. */
static void engine_post(void *hubp, int worker, hr_engine_task *t)
{
    hr_hub *hub = hubp;
    if (worker < 0 || worker >= hub->nworkers) {
        t->run(t, true);
        return;
    }
    hr_hub_post(hub, worker, engine_task, t);
}

/* A server command for this node's clients: every worker runs it. */
static void engine_command(void *hubp, hr_pub *cmd)
{
    hr_hub *hub = hubp;
    for (int i = 0; i < hub->nworkers; i++) inbox_push(&hub->workers[i], cmd);
}

void hr_hub_set_engine(hr_hub *hub, hr_engine *e)
{
    if (hub->engine) hub->engine->vt->free(hub->engine);
    hub->engine = e;
    e->post = engine_post;
    e->deliver_batch = hr_hub_deliver_batch;
    e->command = engine_command;
    e->occupancy = engine_occupancy;
}

hr_hub *hr_hub_new(int nworkers)
{
    hr_hub *hub = hr_calloc(1, sizeof(*hub));
    hub->nworkers = nworkers;
    hub->workers = hr_calloc((size_t)nworkers, sizeof(hr_whub));
    ishard *shards = hr_calloc(SHARDS, sizeof(ishard));
    for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&shards[i].mu, NULL);
    hub->shards = shards;
    hub->engine = hr_engine_memory_new(hr_hub_deliver, hub);
    hub->engine->post = engine_post;
    hub->engine->command = engine_command;
    hub->engine->occupancy = engine_occupancy;
    for (int i = 0; i < nworkers; i++) {
        hr_whub *wh = &hub->workers[i];
        wh->hub = hub;
        wh->id = i;
        pthread_mutex_t *mu = hr_malloc(sizeof(*mu));
        pthread_mutex_init(mu, NULL);
        wh->inbox_mu = mu;
    }
    return hub;
}

hr_whub *hr_hub_worker(hr_hub *hub, int i, hr_loop *loop)
{
    hub->workers[i].loop = loop;
    return &hub->workers[i];
}

void hr_hub_free(hr_hub *hub)
{
    if (!hub) return;
    /* the engine first: a network engine's thread stops delivering and posting
     * here; what it posted already is released just below */
    hub->engine->vt->free(hub->engine);
    hub->engine = NULL;
    for (int i = 0; i < hub->nworkers; i++) {
        hr_whub *wh = &hub->workers[i];
        for (size_t k = 0; k < wh->tasks_n; k++) wh->tasks[k].fn(NULL, wh->tasks[k].arg);
        hr_free(wh->tasks);
        wh->tasks = NULL;
        wh->tasks_n = wh->tasks_cap = 0;
    }
    for (int i = 0; i < hub->nworkers; i++) {
        hr_whub *wh = &hub->workers[i];
        for (size_t k = 0; k < wh->inbox_n; k++) hr_pub_unref(wh->inbox[k]);
        hr_free(wh->inbox);
        pthread_mutex_destroy(wh->inbox_mu);
        hr_free(wh->inbox_mu);
        for (size_t b = 0; b < wh->nbuckets; b++) {
            hr_local_chan *lc = wh->buckets[b];
            while (lc) {
                hr_local_chan *nx = lc->next;
                hr_free(lc);
                lc = nx;
            }
        }
        hr_free(wh->buckets);
    }
    ishard *shards = hub->shards;
    for (int i = 0; i < SHARDS; i++) {
        for (size_t b = 0; b < shards[i].nbuckets; b++) {
            interest *x = shards[i].buckets[b];
            while (x) {
                interest *nx = x->next;
                hr_free(x);
                x = nx;
            }
        }
        hr_free(shards[i].buckets);
        pthread_mutex_destroy(&shards[i].mu);
    }
    hr_free(shards);
    for (int i = 0; i < hub->nworkers; i++) hr_pools_destroy(&hub->workers[i].pools);
    hr_free(hub->workers);
    hr_free(hub);
}

/* ---- local channels -------------------------------------------------------------- */

static hr_local_chan *lfind(hr_whub *wh, uint64_t h, const char *name, size_t len)
{
    if (!wh->nbuckets) return NULL;
    for (hr_local_chan *lc = wh->buckets[(h >> 6) & (wh->nbuckets - 1)]; lc; lc = lc->next)
        if (lc->hash == h && lc->len == len && memcmp(lc->name, name, len) == 0) return lc;
    return NULL;
}

static void lgrow(hr_whub *wh)
{
    size_t nb = wh->nbuckets ? wh->nbuckets * 2 : 64;
    hr_local_chan **b = hr_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < wh->nbuckets; i++) {
        hr_local_chan *lc = wh->buckets[i];
        while (lc) {
            hr_local_chan *nx = lc->next;
            size_t idx = (lc->hash >> 6) & (nb - 1);
            lc->next = b[idx];
            b[idx] = lc;
            lc = nx;
        }
    }
    hr_free(wh->buckets);
    wh->buckets = b;
    wh->nbuckets = nb;
}

static void lremove(hr_whub *wh, hr_local_chan *lc)
{
    hr_local_chan **pp = &wh->buckets[(lc->hash >> 6) & (wh->nbuckets - 1)];
    while (*pp != lc) pp = &(*pp)->next;
    *pp = lc->next;
    wh->nchans--;
    hr_free(lc);
}

size_t hr_hub_local_subscribers(hr_whub *wh, const char *channel, size_t len)
{
    hr_local_chan *lc = lfind(wh, hash_name(channel, len), channel, len);
    return lc ? lc->nsubs : 0;
}

hr_sub *hr_hub_subscribe(hr_client *c, const char *channel, size_t len, bool pattern, uint64_t max_subscribers)
{
    hr_whub *wh = c->wh;
    uint64_t h = 0;
    hr_local_chan *lc = NULL;
    if (!pattern) {
        h = hash_name(channel, len);
        lc = lfind(wh, h, channel, len);
        if (!interest_update(wh->hub, channel, len, h, wh->id, +1, (lc ? lc->nsubs : 0) + 1, max_subscribers))
            return NULL;
    }
    hr_sub *s = hr_pool_alloc(&wh->pools, sizeof(*s));
    s->client = c;
    s->client_next = c->subs;
    c->subs = s;
    c->nsubs++;
    hr_whub_count(&wh->subscriptions, 1);
    if (pattern) {
        s->is_pattern = true;
        s->pattern = hr_strndup(channel, len);
        s->pattern_len = (uint32_t)len;
        s->chan_next = wh->patterns;
        if (wh->patterns) wh->patterns->chan_prev = s;
        wh->patterns = s;
        if (wh->npatterns++ == 0)
            atomic_fetch_or_explicit(&wh->hub->pattern_mask, 1ull << wh->id, memory_order_acq_rel);
        pattern_interest(wh->hub, channel, len, +1);
        return s;
    }
    if (!lc) {
        if (wh->nchans + 1 > wh->nbuckets) lgrow(wh);
        lc = hr_calloc(1, sizeof(*lc) + len + 1);
        lc->hash = h;
        memcpy(lc->name, channel, len);
        lc->len = len;
        size_t idx = (h >> 6) & (wh->nbuckets - 1);
        lc->next = wh->buckets[idx];
        wh->buckets[idx] = lc;
        wh->nchans++;
    }
    s->lc = lc;
    s->chan_next = lc->subs;
    if (lc->subs) lc->subs->chan_prev = s;
    lc->subs = s;
    lc->nsubs++;
    return s;
}

hr_sub *hr_hub_find_sub(hr_client *c, const char *channel, size_t len)
{
    for (hr_sub *s = c->subs; s; s = s->client_next) {
        if (!s->is_pattern && s->lc->len == len && memcmp(s->lc->name, channel, len) == 0) return s;
        if (s->is_pattern && s->pattern_len == len && memcmp(s->pattern, channel, len) == 0) return s;
    }
    return NULL;
}

const char *hr_hub_sub_channel(const hr_sub *s, size_t *len)
{
    if (s->is_pattern) {
        *len = s->pattern_len;
        return s->pattern;
    }
    *len = s->lc->len;
    return s->lc->name;
}

void hr_hub_unsubscribe(hr_client *c, hr_sub *s)
{
    hr_whub *wh = c->wh;
    hr_sub **pp = &c->subs;
    while (*pp && *pp != s) pp = &(*pp)->client_next;
    if (*pp) {
        *pp = s->client_next;
        c->nsubs--;
    }
    hr_whub_count(&wh->subscriptions, (uint64_t)0 - 1);
    if (s->chan_prev) s->chan_prev->chan_next = s->chan_next;
    if (s->chan_next) s->chan_next->chan_prev = s->chan_prev;
    if (s->is_pattern) {
        if (wh->patterns == s) wh->patterns = s->chan_next;
        if (--wh->npatterns == 0)
            atomic_fetch_and_explicit(&wh->hub->pattern_mask, ~(1ull << wh->id), memory_order_acq_rel);
        pattern_interest(wh->hub, s->pattern, s->pattern_len, -1);
        hr_free(s->pattern);
    } else {
        hr_local_chan *lc = s->lc;
        if (lc->subs == s) lc->subs = s->chan_next;
        --lc->nsubs;
        interest_update(wh->hub, lc->name, lc->len, lc->hash, wh->id, -1, lc->nsubs, 0);
        if (lc->nsubs == 0) lremove(wh, lc);
    }
    if (wh->fanning) { /* a fan-out may still hold s: it sees `gone` and skips it */
        s->gone = true;
        s->client_next = wh->dead_subs;
        wh->dead_subs = s;
        return;
    }
    hr_pool_free(&wh->pools, s);
}

void hr_hub_unsubscribe_all(hr_client *c)
{
    while (c->subs) hr_hub_unsubscribe(c, c->subs);
}

/* ---- fan-out ------------------------------------------------------------------ */

/* ---- clients and server commands ---------------------------------------------- */

static char anonymous[1];

hr_client_idstr hr_client_id(const hr_client *c)
{
    hr_client_idstr r;
    if (c->id_kind == HR_CLIENT_ID_PUSHER) {
        uint32_t a, b;
        memcpy(&a, c->id_bin, 4);
        memcpy(&b, c->id_bin + 4, 4);
        snprintf(r.s, sizeof(r.s), "%u.%u", a, b);
        return r;
    }
    hr_hex_encode(c->id_bin, HR_CLIENT_ID_BYTES, r.s);
    return r;
}

void hr_client_id_random(hr_client *c)
{
    hr_random_bytes(c->id_bin, HR_CLIENT_ID_BYTES);
    c->id_kind = HR_CLIENT_ID_HEX;
}

int hr_client_id_parse(hr_client *c, const char *hex)
{
    uint8_t b[HR_CLIENT_ID_BYTES];
    if (!hr_hex_decode(hex, HR_CLIENT_ID_BYTES, b) || hex[2 * HR_CLIENT_ID_BYTES]) return HR_ERR_INVALID;
    memcpy(c->id_bin, b, sizeof(b));
    c->id_kind = HR_CLIENT_ID_HEX;
    return 0;
}

void hr_client_id_pusher(hr_client *c, uint32_t a, uint32_t b)
{
    memset(c->id_bin, 0, sizeof(c->id_bin));
    memcpy(c->id_bin, &a, 4);
    memcpy(c->id_bin + 4, &b, 4);
    c->id_kind = HR_CLIENT_ID_PUSHER;
}

void hr_client_free_user(hr_client *c)
{
    if (c->user != anonymous) hr_free(c->user);
    c->user = NULL;
}

void hr_client_set_user(hr_client *c, const char *user)
{
    hr_client_free_user(c);
    c->user = user && user[0] ? hr_strdup(user) : anonymous;
}

void hr_hub_client_add(hr_client *c)
{
    hr_whub *wh = c->wh;
    c->wprev = NULL;
    c->wnext = wh->clients;
    if (wh->clients) wh->clients->wprev = c;
    wh->clients = c;
    wh->nclients++;
}

void hr_hub_client_remove(hr_client *c)
{
    hr_whub *wh = c->wh;
    if (c->wprev) c->wprev->wnext = c->wnext;
    else if (wh->clients == c) wh->clients = c->wnext;
    else return; /* not registered */
    if (c->wnext) c->wnext->wprev = c->wprev;
    c->wnext = c->wprev = NULL;
    wh->nclients--;
}

static void send_command(hr_hub *hub, hr_pub_kind kind, const char *channel, size_t len, const char *user,
                         const char *client_id, int code, const char *reason)
{
    hr_buf info = HR_BUF_INIT;
    hr_buf_printf(&info, "%s\n%s", client_id ? client_id : "", reason ? reason : "");
    hr_pub *p = hr_pub_new(kind, channel, len, user ? user : "", user ? strlen(user) : 0, (const char *)info.data,
                           info.len);
    hr_buf_free(&info);
    p->code = (uint16_t)code;
    /* a clustered engine carries it to every node (this one through `command`) */
    if (hub->engine->cluster) hub->engine->cluster->broadcast(hub->engine, p);
    else engine_command(hub, p);
    hr_pub_unref(p);
}

void hr_hub_unsubscribe_clients(hr_hub *hub, const char *channel, size_t len, const char *user, const char *client_id,
                                int code, const char *reason)
{
    send_command(hub, HR_PUB_UNSUBSCRIBE, channel, len, user, client_id, code, reason);
}

void hr_hub_disconnect_clients(hr_hub *hub, const char *user, const char *client_id, int code, const char *reason)
{
    send_command(hub, HR_PUB_DISCONNECT, "", 0, user, client_id, code, reason);
}

const char *hr_pub_reason(const hr_pub *cmd)
{
    const char *nl = cmd->info ? strchr(cmd->info, '\n') : NULL;
    return nl ? nl + 1 : "";
}

/* A decimal number as hr_client_id writes one (no sign, no leading zero,
 * at most UINT32_MAX) into *out. */
static bool canonical_u32(const char *s, size_t n, uint32_t *out)
{
    uint64_t v = 0;
    if (!n || n > 10 || (s[0] == '0' && n > 1)) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = (uint32_t)v;
    return v <= UINT32_MAX;
}

/* A client id as hr_client_id shows it, back to its bytes and kind (the
 * exact form only: another spelling names no client). */
static bool id_of_text(const char *s, size_t n, hr_client *out)
{
    const char *dot = memchr(s, '.', n);
    uint32_t a, b;
    if (dot) {
        if (!canonical_u32(s, (size_t)(dot - s), &a) || !canonical_u32(dot + 1, n - (size_t)(dot - s) - 1, &b))
            return false;
        hr_client_id_pusher(out, a, b);
        return true;
    }
    out->id_kind = HR_CLIENT_ID_HEX;
    return n == 2 * HR_CLIENT_ID_BYTES && hr_hex_decode(s, HR_CLIENT_ID_BYTES, out->id_bin);
}

/* Whether a server command addresses c: its user (cmd->data) and/or its
 * client id (id, parsed once per command, NULL when the command names none). */
static bool command_matches(const hr_pub *cmd, const hr_client *id, const hr_client *c)
{
    if (cmd->data_len && !(c->vt->matches_user ? c->vt->matches_user(c, cmd->data) : strcmp(cmd->data, c->user) == 0))
        return false;
    if (id && (c->id_kind != id->id_kind || memcmp(c->id_bin, id->id_bin, HR_CLIENT_ID_BYTES) != 0)) return false;
    return cmd->data_len || id;
}

static void run_command(hr_whub *wh, const hr_pub *cmd)
{
    size_t idlen = (size_t)(strchr(cmd->info, '\n') - cmd->info);
    hr_client id = {0};
    if (idlen && !id_of_text(cmd->info, idlen, &id)) return; /* names no client there can be */
    hr_client *c = wh->clients;
    while (c) {
        hr_client *nx = c->wnext; /* the command may end c */
        if (c->vt->on_command && command_matches(cmd, idlen ? &id : NULL, c)) {
            if (cmd->kind == HR_PUB_DISCONNECT) {
                c->vt->on_command(c, NULL, cmd);
            } else {
                hr_sub *sub = hr_hub_find_sub(c, cmd->channel, cmd->channel_len);
                if (sub) c->vt->on_command(c, sub, cmd);
            }
        }
        c = nx;
    }
}

/* An engine's disconnect for one channel (HR_ENGINE_RESYNC_CODE): every
 * local subscriber of it, whoever they are. */
static void disconnect_channel(hr_whub *wh, const hr_pub *cmd)
{
    hr_local_chan *lc = lfind(wh, hash_name(cmd->channel, cmd->channel_len), cmd->channel, cmd->channel_len);
    if (!lc) return;
    /* the commands unsubscribe (and may free lc): take the clients first */
    size_t n = 0;
    hr_client **list = hr_malloc(lc->nsubs * sizeof(*list));
    for (hr_sub *s = lc->subs; s; s = s->chan_next) list[n++] = s->client;
    for (size_t i = 0; i < n; i++)
        if (list[i]->vt->on_command) list[i]->vt->on_command(list[i], NULL, cmd);
    hr_free(list);
}

/* Publications of one channel that arrived together, given to every
 * subscriber in one visit (subscriber-major): each subscriber's state is
 * touched once per run instead of once per publication, which is what keeps
 * a fan-out to 10k subscribers out of the cache misses when several
 * publications meet in a loop turn. A subscriber whose front end takes runs
 * (hr_client_vt.on_run) and that has none of the run yet gets it in one call:
 * one queue entry for the run instead of one per publication. Order per
 * channel is kept; a client's publications of different channels may
 * interleave differently, which the protocol allows (order is per channel). */
#define RUN_MAX 64

/* Whether pubs[0..k) can go to a subscriber as one hr_run: two or more
 * messages with increasing offsets (no join/leave, which some front ends
 * skip or frame differently). */
static bool runnable(hr_pub *const *pubs, size_t k)
{
    if (k < 2) return false;
    for (size_t i = 0; i < k; i++)
        if (pubs[i]->kind != HR_PUB_MESSAGE || (i && pubs[i]->offset <= pubs[i - 1]->offset)) return false;
    return true;
}

/* The whole run to s in one call when its front end takes runs and s has
 * none of it yet (a subscriber part-way through the run, recovering, takes
 * it one by one); true when it did. */
static bool deliver_run(hr_sub *s, hr_run *run)
{
    const hr_client_vt *vt = s->client->vt;
    if (!run || !vt->on_run || s->gone || run->pubs[0]->offset <= s->offset) return false;
    if (!vt->on_run(s->client, s, run)) return false;
    s->offset = run->pubs[run->n - 1]->offset;
    return true;
}

static void fan_out_run(hr_whub *wh, hr_pub **pubs, size_t k)
{
    hr_enc_cache cache[RUN_MAX];
    memset(cache, 0, k * sizeof(cache[0]));
    hr_run whole = {(const hr_pub *const *)pubs, cache, (uint32_t)k, {0}};
    hr_run *run = runnable(pubs, k) ? &whole : NULL;
    const hr_pub *p0 = pubs[0];
    uint64_t delivered = 0, in_runs = 0;
    wh->fanning++;
    hr_local_chan *lc = lfind(wh, hash_name(p0->channel, p0->channel_len), p0->channel, p0->channel_len);
    for (hr_sub *s = lc ? lc->subs : NULL, *nx; s; s = nx) {
        nx = s->chan_next;
        if (deliver_run(s, run)) {
            delivered += k;
            in_runs += k;
            continue;
        }
        for (size_t i = 0; i < k && !s->gone; i++) {
            hr_pub *pub = pubs[i];
            if (pub->kind == HR_PUB_MESSAGE) {
                if (pub->offset <= s->offset) continue;
                s->offset = pub->offset;
            }
            s->client->vt->on_pub(s->client, s, pub, &cache[i]);
            delivered++;
        }
    }
    if (wh->patterns) {
        for (hr_sub *s = wh->patterns, *nx; s; s = nx) {
            nx = s->chan_next;
            /* a pattern never opens a channel limited to other users */
            if (!hr_chan_match(s->pattern, s->pattern_len, p0->channel, p0->channel_len) ||
                hr_chan_user_allowed(p0->channel, p0->channel_len, s->client->user, strlen(s->client->user)) == 0)
                continue;
            for (size_t i = 0; i < k && !s->gone; i++) {
                if (pubs[i]->kind != HR_PUB_MESSAGE) continue;
                s->client->vt->on_pub(s->client, s, pubs[i], &cache[i]);
                delivered++;
            }
        }
    }
    if (--wh->fanning == 0) {
        while (wh->dead_subs) {
            hr_sub *d = wh->dead_subs;
            wh->dead_subs = d->client_next;
            hr_pool_free(&wh->pools, d);
        }
    }
    uint64_t encoded = 0;
    for (size_t i = 0; i < k; i++)
        for (int j = 0; j < HR_ENC_SLOTS; j++) {
            encoded += cache[i].slot[j] != NULL && j != HR_ENC_PUSHER_EXCLUDE;
            hr_sbuf_unref(cache[i].slot[j]);
        }
    for (int j = 0; j < HR_ENC_SLOTS; j++) hr_sbuf_unref(whole.slot[j]); /* runs are copies, not counted */
    hr_whub_count(&wh->delivered, delivered); /* once per run, never per delivery */
    if (in_runs) hr_whub_count(&wh->run_delivered, in_runs);
    for (size_t i = 0; delivered && i < k; i++)
        if (pubs[i]->hub_us && (!wh->sample_us || pubs[i]->hub_us < wh->sample_us)) wh->sample_us = pubs[i]->hub_us;
    hr_whub_count(&wh->encoded, encoded);
}

static bool is_command(const hr_pub *p) { return p->kind == HR_PUB_UNSUBSCRIBE || p->kind == HR_PUB_DISCONNECT; }

/* Fan out items[0..n) in order: commands one by one, runs of publications of
 * one channel together. */
static void fan_out_all(hr_whub *wh, hr_pub **items, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (is_command(items[i])) {
            if (items[i]->kind == HR_PUB_DISCONNECT && items[i]->channel_len) disconnect_channel(wh, items[i]);
            else run_command(wh, items[i]);
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && j - i < RUN_MAX && !is_command(items[j]) && same_channel(items[i], items[j])) j++;
        fan_out_run(wh, items + i, j - i);
        i = j;
    }
}

void hr_hub_post(hr_hub *hub, int worker, hr_task_fn fn, void *arg)
{
    hr_whub *wh = &hub->workers[worker];
    pthread_mutex_t *mu = wh->inbox_mu;
    pthread_mutex_lock(mu);
    bool was_empty = wh->inbox_n == 0 && wh->tasks_n == 0;
    if (wh->tasks_n == wh->tasks_cap) {
        wh->tasks_cap = wh->tasks_cap ? wh->tasks_cap * 2 : 16;
        wh->tasks = hr_realloc(wh->tasks, wh->tasks_cap * sizeof(*wh->tasks));
    }
    wh->tasks[wh->tasks_n++] = (hr_task){fn, arg};
    pthread_mutex_unlock(mu);
    if (was_empty) hr_loop_wake(wh->loop);
}

void hr_hub_process_inbox(hr_whub *wh)
{
    pthread_mutex_t *mu = wh->inbox_mu;
    for (;;) {
        pthread_mutex_lock(mu);
        hr_pub **items = wh->inbox;
        size_t n = wh->inbox_n;
        wh->inbox = NULL;
        wh->inbox_n = wh->inbox_cap = 0;
        hr_task *tasks = wh->tasks;
        size_t nt = wh->tasks_n;
        wh->tasks = NULL;
        wh->tasks_n = wh->tasks_cap = 0;
        pthread_mutex_unlock(mu);
        if (!n && !nt) {
            hr_free(items);
            hr_free(tasks);
            return;
        }
        fan_out_all(wh, items, n);
        for (size_t i = 0; i < n; i++) hr_pub_unref(items[i]);
        hr_free(items);
        for (size_t i = 0; i < nt; i++) tasks[i].fn(wh, tasks[i].arg);
        hr_free(tasks);
    }
}
