/* memory.c - the in-memory engine (single node): per-channel offset, epoch,
 * history ring and presence, in a hash map split into 64 shards, each with
 * its own mutex, so workers publishing to different channels rarely meet.
 *
 * Order: publish assigns the offset, stores the publication and hands it to
 * the hub while holding the channel's shard lock, so every worker's inbox
 * receives a channel's publications in offset order.
 *
 * Epoch: chosen at random when the channel is first seen by this process;
 * a restart loses history and changes the epoch, which is how clients learn
 * that recovery across the restart is impossible.
 *
 * Node-wide budget (channels.max_history_bytes): every publication held in
 * a history ring is counted (its whole allocation). Channels with history
 * are kept in a list by last publish, least recent first; when a publish
 * takes the total over the budget, the oldest publications of the least
 * recently published channel are evicted until it fits. Eviction only ever
 * removes a ring's oldest entries, so history stays a contiguous run of
 * offsets ending at the newest: a recovery from before the run is answered
 * "not complete" (recovered = false) exactly as after a TTL trim. Lock
 * order: a shard's lock, then the list's; eviction takes them one at a
 * time (channels are never freed before the engine, so a channel pointer
 * read from the list stays valid).
 *
 * Durable (--data-dir, engine/durable.c): publish still assigns the offset
 * under the lock, but hands the publication to the log thread, which
 * writes it, then stores it in history and delivers it under the same lock
 * and acknowledges it; history shows only what is written (mchan.shown). */
#include "engine/memory_internal.h"
#include "core/hex.h"
#include "core/hash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* What a publication held in history costs (its allocation, hr_pub_new). */
static uint64_t pub_cost(const hr_pub *p)
{
    return sizeof(hr_pub) + p->channel_len + 1 + p->data_len + 1 + (p->info ? p->info_len + 1 : 0);
}

static void lru_unlink(mengine *m, mchan *c)
{
    if (!c->in_lru) return;
    if (c->lru_prev) c->lru_prev->lru_next = c->lru_next;
    else m->lru_head = c->lru_next;
    if (c->lru_next) c->lru_next->lru_prev = c->lru_prev;
    else m->lru_tail = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
    c->in_lru = false;
}

/* c was just published to: it becomes the most recently published. */
static void lru_touch(mengine *m, mchan *c)
{
    pthread_mutex_lock(&m->lru_mu);
    lru_unlink(m, c);
    c->lru_prev = m->lru_tail;
    if (m->lru_tail) m->lru_tail->lru_next = c;
    else m->lru_head = c;
    m->lru_tail = c;
    c->in_lru = true;
    pthread_mutex_unlock(&m->lru_mu);
}

uint64_t mem_hash(const char *s, size_t n) { return hr_fnv1a(s, n); }

shard *mem_shard_of(mengine *m, uint64_t h) { return &m->shards[h % SHARDS]; }

static mchan *find(shard *sh, uint64_t h, const char *name, size_t len)
{
    if (!sh->nbuckets) return NULL;
    for (mchan *c = sh->buckets[(h >> 6) & (sh->nbuckets - 1)]; c; c = c->next)
        if (c->hash == h && c->len == len && memcmp(c->name, name, len) == 0) return c;
    return NULL;
}

static void grow(shard *sh)
{
    size_t nb = sh->nbuckets ? sh->nbuckets * 2 : 64;
    mchan **b = hr_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < sh->nbuckets; i++) {
        mchan *c = sh->buckets[i];
        while (c) {
            mchan *nx = c->next;
            size_t idx = (c->hash >> 6) & (nb - 1);
            c->next = b[idx];
            b[idx] = c;
            c = nx;
        }
    }
    hr_free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = nb;
}

mchan *mem_get_or_create(mengine *m, shard *sh, uint64_t h, const char *name, size_t len)
{
    mchan *c = find(sh, h, name, len);
    if (c) return c;
    atomic_fetch_add_explicit(&m->nchannels, 1, memory_order_relaxed);
    if (sh->count + 1 > sh->nbuckets) grow(sh);
    c = hr_calloc(1, sizeof(*c) + len + 1);
    c->hash = h;
    memcpy(c->name, name, len);
    c->len = len;
    hr_epoch_new(c->epoch);
    size_t idx = (h >> 6) & (sh->nbuckets - 1);
    c->next = sh->buckets[idx];
    sh->buckets[idx] = c;
    sh->count++;
    return c;
}

hr_pub *mem_ring_at(const mchan *c, uint32_t i) { return c->ring[(c->head + i) % c->cap]; }

/* Under c's shard lock. */
void mem_ring_drop_oldest(mengine *m, mchan *c)
{
    hr_pub *p = c->ring[c->head];
    atomic_fetch_sub_explicit(&m->hist_bytes, pub_cost(p), memory_order_relaxed);
    hr_pub_unref(p);
    c->ring[c->head] = NULL;
    c->head = (c->head + 1) % c->cap;
    c->count--;
    if (!c->count && c->in_lru) { /* in_lru only changes under c's shard lock too */
        pthread_mutex_lock(&m->lru_mu);
        lru_unlink(m, c);
        pthread_mutex_unlock(&m->lru_mu);
    }
}

/* Under c's shard lock: store pub as the newest of c's history. */
void mem_ring_push(mengine *m, mchan *c, hr_pub *pub)
{
    if (c->count == c->cap) mem_ring_drop_oldest(m, c);
    c->ring[(c->head + c->count) % c->cap] = hr_pub_ref(pub);
    c->count++;
    atomic_fetch_add_explicit(&m->hist_bytes, pub_cost(pub), memory_order_relaxed);
    lru_touch(m, c);
}

/* Called with no lock held: while history is over the budget, evict the
 * oldest publication of the least recently published channel. */
void mem_enforce_budget(mengine *m)
{
    while (m->budget && atomic_load_explicit(&m->hist_bytes, memory_order_relaxed) > m->budget) {
        pthread_mutex_lock(&m->lru_mu);
        mchan *c = m->lru_head;
        pthread_mutex_unlock(&m->lru_mu);
        if (!c) return;
        shard *sh = &m->shards[c->hash % SHARDS];
        pthread_mutex_lock(&sh->mu);
        if (c->count) {
            mem_ring_drop_oldest(m, c);
            atomic_fetch_add_explicit(&m->evictions, 1, memory_order_relaxed);
        } else { /* emptied meanwhile: normally unlinked already */
            pthread_mutex_lock(&m->lru_mu);
            lru_unlink(m, c);
            pthread_mutex_unlock(&m->lru_mu);
        }
        pthread_mutex_unlock(&sh->mu);
    }
}

/* Trim by TTL, and resize the ring if the configured size changed. */
void mem_ring_maintain(mengine *m, mchan *c, const hr_chan_opts *o)
{
    if (o->history_ttl_ms && c->count) {
        uint64_t cutoff = hr_wall_ms() - o->history_ttl_ms;
        while (c->count && c->ring[c->head]->time_ms < cutoff) mem_ring_drop_oldest(m, c);
    }
    if (c->cap != o->history_size) {
        while (c->count > o->history_size) mem_ring_drop_oldest(m, c);
        hr_pub **r = o->history_size ? hr_calloc(o->history_size, sizeof(*r)) : NULL;
        for (uint32_t i = 0; i < c->count; i++) r[i] = mem_ring_at(c, i);
        hr_free(c->ring);
        c->ring = r;
        c->cap = o->history_size;
        c->head = 0;
    }
}

/* ---- idempotency keys ------------------------------------------------------ */

static void idem_unlink(mchan *c, midem *x)
{
    midem **pp = &c->idem[(x->hash >> 6) & (c->nidem_buckets - 1)];
    while (*pp != x) pp = &(*pp)->hnext;
    *pp = x->hnext;
}

/* Forget the oldest key (the FIFO head). */
static void idem_pop(mchan *c)
{
    midem *x = c->idem_head;
    idem_unlink(c, x);
    c->idem_head = x->fnext;
    if (!c->idem_head) c->idem_tail = NULL;
    c->nidem--;
    hr_free(x);
}

static void idem_expire(mchan *c, uint64_t now)
{
    while (c->idem_head && (c->idem_head->expires_ms <= now || c->nidem > HR_IDEM_MAX_KEYS)) idem_pop(c);
}

static midem *idem_find(const mchan *c, uint64_t h, const char *key, size_t len)
{
    if (!c->nidem_buckets) return NULL;
    for (midem *x = c->idem[(h >> 6) & (c->nidem_buckets - 1)]; x; x = x->hnext)
        if (x->hash == h && x->len == len && memcmp(x->key, key, len) == 0) return x;
    return NULL;
}

void mem_idem_remove(mchan *c, const char *key, size_t len)
{
    midem *x = idem_find(c, mem_hash(key, len), key, len);
    if (!x) return;
    idem_unlink(c, x);
    midem **pp = &c->idem_head, *prev = NULL;
    while (*pp != x) {
        prev = *pp;
        pp = &(*pp)->fnext;
    }
    *pp = x->fnext;
    if (c->idem_tail == x) c->idem_tail = prev;
    c->nidem--;
    hr_free(x);
}

midem *mem_idem_add(mchan *c, uint64_t h, const char *key, size_t len, uint64_t offset, uint64_t expires)
{
    if (c->nidem + 1 > c->nidem_buckets) {
        size_t nb = c->nidem_buckets ? c->nidem_buckets * 2 : 16;
        midem **b = hr_calloc(nb, sizeof(*b));
        for (midem *x = c->idem_head; x; x = x->fnext) {
            size_t i = (x->hash >> 6) & (nb - 1);
            x->hnext = b[i];
            b[i] = x;
        }
        hr_free(c->idem);
        c->idem = b;
        c->nidem_buckets = nb;
    }
    midem *x = hr_malloc(sizeof(*x) + len);
    x->hash = h;
    x->offset = offset;
    x->expires_ms = expires;
    x->pending = NULL;
    x->len = len;
    memcpy(x->key, key, len);
    size_t i = (h >> 6) & (c->nidem_buckets - 1);
    x->hnext = c->idem[i];
    c->idem[i] = x;
    x->fnext = NULL;
    if (c->idem_tail) c->idem_tail->fnext = x;
    else c->idem_head = x;
    c->idem_tail = x;
    c->nidem++;
    if (c->nidem > HR_IDEM_MAX_KEYS) idem_pop(c);
    return x;
}

void mem_idem_settle(mchan *c, const char *key, size_t len, const void *pending)
{
    midem *x = idem_find(c, mem_hash(key, len), key, len);
    if (x && x->pending == pending) x->pending = NULL;
}

static void m_publish(hr_engine *e, const hr_chan_opts *o, hr_pub *pub, const char *idem_key, size_t idem_len,
                      hr_publish_cb cb, void *ud)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(pub->channel, pub->channel_len);
    shard *sh = mem_shard_of(m, h);
    if (m->log && (hr_durable_failing(m->log) || !hr_durable_admit(m->log, pub, idem_len))) {
        /* the disk refuses writes, or too much waits for it: no offset is taken */
        if (cb) cb(ud, HR_ERR_STORAGE, 0, NULL);
        return;
    }
    pthread_mutex_lock(&sh->mu);
    mchan *c = mem_get_or_create(m, sh, h, pub->channel, pub->channel_len);
    mem_ring_maintain(m, c, o);
    midem *key = NULL;
    if (idem_len && o->idempotency_window_ms) {
        uint64_t now = hr_wall_ms();
        idem_expire(c, now);
        uint64_t kh = mem_hash(idem_key, idem_len);
        midem *seen = idem_find(c, kh, idem_key, idem_len);
        if (seen && seen->pending) { /* a retry of a publish being written: its answer is the original's */
            hr_durable_park(m->log, seen->pending, cb, ud);
            pthread_mutex_unlock(&sh->mu);
            return;
        }
        if (seen) { /* a retry: acknowledge with the original, deliver nothing */
            uint64_t offset = seen->offset;
            char epoch[HR_EPOCH_LEN + 1];
            memcpy(epoch, c->epoch, sizeof(epoch));
            pthread_mutex_unlock(&sh->mu);
            if (cb) cb(ud, 0, offset, epoch);
            return;
        }
        key = mem_idem_add(c, kh, idem_key, idem_len, c->offset + 1, now + o->idempotency_window_ms);
    }
    pub->offset = ++c->offset;
    memcpy(pub->epoch, c->epoch, sizeof(pub->epoch));
    if (m->log) { /* stored, delivered and acknowledged once written (durable.c) */
        void *item = hr_durable_publish(m->log, c, pub, o, idem_key, idem_len, cb, ud);
        if (key) key->pending = item;
        pthread_mutex_unlock(&sh->mu);
        hr_durable_wake(m->log);
        return;
    }
    if (c->cap) mem_ring_push(m, c, pub);
    uint64_t offset = pub->offset;
    char epoch[HR_EPOCH_LEN + 1];
    memcpy(epoch, c->epoch, sizeof(epoch));
    e->deliver(e->hub, pub); /* in order: still under the lock */
    pthread_mutex_unlock(&sh->mu);
    mem_enforce_budget(m);
    if (cb) cb(ud, 0, offset, epoch);
}

static void m_publish_event(hr_engine *e, hr_pub *pub)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(pub->channel, pub->channel_len);
    shard *sh = mem_shard_of(m, h);
    pthread_mutex_lock(&sh->mu); /* same lock: events keep their place among publications */
    if (m->log) hr_durable_event(m->log, pub);
    else e->deliver(e->hub, pub);
    pthread_mutex_unlock(&sh->mu);
    if (m->log) hr_durable_wake(m->log);
}

/* The newest offset a reader may see: with the durable log, publications
 * not yet written are neither in history nor delivered. */
static uint64_t visible(const mengine *m, const mchan *c) { return m->log ? c->shown : c->offset; }

static const hr_pub *ring_at(const void *c, size_t i) { return mem_ring_at((const mchan *)c, (uint32_t)i); }

static void m_history(hr_engine *e, const hr_chan_opts *o, const char *channel, size_t len, const hr_history_query *q,
                      hr_history_cb cb, void *ud)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(channel, len);
    shard *sh = mem_shard_of(m, h);
    pthread_mutex_lock(&sh->mu);
    /* Creating the channel here fixes its epoch at the first look, so a
     * subscriber that saw epoch X can later tell whether it changed. */
    mchan *c = mem_get_or_create(m, sh, h, channel, len);
    mem_ring_maintain(m, c, o);
    hr_history res = {0};
    uint64_t last = visible(m, c);
    res.offset = last;
    memcpy(res.epoch, c->epoch, sizeof(res.epoch));
    hr_history_sel sel = hr_history_select(q, c->epoch, last, c->count, ring_at, c);
    size_t n = sel.n;
    hr_pub **list = n ? hr_malloc(n * sizeof(*list)) : NULL;
    for (size_t i = 0; i < n; i++) /* forward: oldest first from sel.first; reverse: newest first down from it */
        list[i] = hr_pub_ref(mem_ring_at(c, (uint32_t)(q->reverse ? sel.first - i : sel.first + i)));
    pthread_mutex_unlock(&sh->mu);
    res.pubs = list;
    res.n = n;
    res.complete = sel.complete;
    cb(ud, 0, &res);
    for (size_t i = 0; i < n; i++) hr_pub_unref(list[i]);
    hr_free(list);
}

static void m_history_remove(hr_engine *e, const char *channel, size_t len, hr_done_cb cb, void *ud)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(channel, len);
    shard *sh = mem_shard_of(m, h);
    pthread_mutex_lock(&sh->mu);
    mchan *c = find(sh, h, channel, len);
    if (c && m->log) {
        hr_durable_remove(m->log, c, cb, ud);
        pthread_mutex_unlock(&sh->mu);
        hr_durable_wake(m->log);
        return;
    }
    if (c)
        while (c->count) mem_ring_drop_oldest(m, c);
    pthread_mutex_unlock(&sh->mu);
    if (cb) cb(ud, 0);
}

/* An entry's user: the anonymous "" is one shared constant, not a 32-byte
 * copy per anonymous subscriber. */
static char no_user[1];

static char *pres_user_dup(const char *user) { return user && user[0] ? hr_strdup(user) : no_user; }

static void pres_user_free(char *user)
{
    if (user != no_user) hr_free(user);
}

#define PRES_ID_HEX 32

/* Packed ids are those whose last 8 bytes are not all zero (all but one
 * in 2^64 of Herald's random ids); the others are copies. */
static bool pres_packed(const mpres *p)
{
    uint64_t tail;
    memcpy(&tail, p->client.bin + 8, sizeof(tail));
    return tail != 0;
}

/* A client id as the index compares it: its 16 bytes when it packs (32
 * lowercase hex digits, not all-zero last 8 bytes: formatting the bytes back
 * gives the same text), else its text. Two ids are equal exactly when their
 * keys are, so a probe decodes the id once and never formats an entry. */
typedef struct pres_key {
    const char *str; /* not packed */
    uint8_t bin[16]; /* packed */
    bool packed;
} pres_key;

static pres_key key_of_text(const char *client)
{
    pres_key k = {.str = client};
    if (strlen(client) == PRES_ID_HEX && hr_hex_decode(client, PRES_ID_HEX / 2, k.bin)) {
        uint64_t tail;
        memcpy(&tail, k.bin + 8, sizeof(tail));
        k.packed = tail != 0;
    }
    return k;
}

static pres_key key_of_entry(const mpres *p)
{
    pres_key k = {.packed = pres_packed(p)};
    if (k.packed) memcpy(k.bin, p->client.bin, sizeof(k.bin));
    else k.str = p->client.str;
    return k;
}

static uint32_t key_hash(const pres_key *k)
{
    return (uint32_t)(k->packed ? mem_hash((const char *)k->bin, sizeof(k->bin)) : mem_hash(k->str, strlen(k->str)));
}

static bool pres_is(const mpres *p, const pres_key *k)
{
    if (k->packed != pres_packed(p)) return false;
    return k->packed ? memcmp(p->client.bin, k->bin, sizeof(k->bin)) == 0 : strcmp(p->client.str, k->str) == 0;
}

/* Keep the id in the entry: its bytes when it packs, else a copy. */
static void pres_client_set(mpres *p, const pres_key *k)
{
    memset(&p->client, 0, sizeof(p->client));
    if (k->packed) memcpy(p->client.bin, k->bin, sizeof(k->bin));
    else p->client.str = hr_strdup(k->str);
}

/* The entry's client id as text (in buf when packed). */
static const char *pres_client(const mpres *p, char buf[PRES_ID_HEX + 1])
{
    if (!pres_packed(p)) return p->client.str;
    hr_hex_encode(p->client.bin, PRES_ID_HEX / 2, buf);
    return buf;
}

static uint32_t str_hash(const char *s) { return (uint32_t)mem_hash(s, strlen(s)); }

static void pres_free(mpres *p)
{
    if (!pres_packed(p)) hr_free(p->client.str);
    pres_user_free(p->user);
    hr_free(p->info);
}

/* Presence is indexed by client id once a channel has more than
 * PRES_INDEX_MIN entries (open addressing, linear probing, load <= 3/4: 4
 * bytes per slot, 5.3 to 10.7 bytes per entry), so join and leave stay O(1)
 * with 10k+ subscribers in one channel; below that a scan is cheaper than
 * the index's memory. */
#define PRES_INDEX_MIN 16

/* The slot holding client, or the empty slot where it would go. */
static uint32_t pidx_probe(const mchan *c, const pres_key *k)
{
    uint32_t mask = c->pidx_cap - 1;
    for (uint32_t i = key_hash(k) & mask;; i = (i + 1) & mask) {
        uint32_t v = c->pidx[i];
        if (!v || pres_is(&c->pres[v - 1], k)) return i;
    }
}

static void pidx_rebuild(mchan *c)
{
    uint32_t cap = 64;
    while ((uint64_t)cap * 3 < (uint64_t)c->npres * 4 + 4) cap <<= 1;
    hr_free(c->pidx);
    c->pidx = hr_calloc(cap, sizeof(uint32_t));
    c->pidx_cap = cap;
    for (size_t i = 0; i < c->npres; i++) {
        pres_key k = key_of_entry(&c->pres[i]);
        c->pidx[pidx_probe(c, &k)] = (uint32_t)i + 1;
    }
}

/* Empty slot i, shifting later entries of its probe run back (no tombstones). */
static void pidx_delete(mchan *c, uint32_t i)
{
    uint32_t mask = c->pidx_cap - 1, j = i;
    c->pidx[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t v = c->pidx[j];
        if (!v) return;
        pres_key k = key_of_entry(&c->pres[v - 1]);
        uint32_t home = key_hash(&k) & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        c->pidx[i] = v;
        c->pidx[j] = 0;
        i = j;
    }
}

/* Index of the entry of k's client, or -1. */
static long pres_find(const mchan *c, const pres_key *k)
{
    if (c->pidx) {
        uint32_t v = c->pidx[pidx_probe(c, k)];
        return v ? (long)v - 1 : -1;
    }
    for (size_t i = 0; i < c->npres; i++)
        if (pres_is(&c->pres[i], k)) return (long)i;
    return -1;
}

static void pres_delete(mchan *c, size_t i)
{
    size_t last = c->npres - 1;
    if (c->pidx) {
        pres_key k = key_of_entry(&c->pres[i]);
        pidx_delete(c, pidx_probe(c, &k));
        if (i != last) {
            k = key_of_entry(&c->pres[last]);
            c->pidx[pidx_probe(c, &k)] = (uint32_t)i + 1;
        }
    }
    pres_free(&c->pres[i]);
    c->pres[i] = c->pres[last];
    c->npres--;
    if (!c->npres) {
        hr_free(c->pidx);
        c->pidx = NULL;
        c->pidx_cap = 0;
    }
}

/* Distinct users among the entries (a scan when few, a hash set when many). */
static size_t count_users(const mchan *c)
{
    size_t users = 0;
    if (c->npres <= PRES_INDEX_MIN) {
        for (size_t i = 0; i < c->npres; i++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++) seen = strcmp(c->pres[j].user, c->pres[i].user) == 0;
            if (!seen) users++;
        }
        return users;
    }
    uint32_t cap = 64;
    while (cap < c->npres * 2) cap <<= 1;
    uint32_t *set = hr_calloc(cap, sizeof(uint32_t));
    for (size_t i = 0; i < c->npres; i++) {
        for (uint32_t k = str_hash(c->pres[i].user) & (cap - 1);; k = (k + 1) & (cap - 1)) {
            if (!set[k]) {
                set[k] = (uint32_t)i + 1;
                users++;
                break;
            }
            if (strcmp(c->pres[set[k] - 1].user, c->pres[i].user) == 0) break;
        }
    }
    hr_free(set);
    return users;
}

static void m_presence_add(hr_engine *e, const char *channel, size_t len, const char *client, const char *user,
                           const char *info, hr_done_cb cb, void *ud)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(channel, len);
    shard *sh = mem_shard_of(m, h);
    pres_key k = key_of_text(client); /* outside the lock */
    pthread_mutex_lock(&sh->mu);
    mchan *c = mem_get_or_create(m, sh, h, channel, len);
    long at = pres_find(c, &k);
    mpres *slot;
    if (at >= 0) {
        slot = &c->pres[at];
        pres_user_free(slot->user);
        hr_free(slot->info);
    } else {
        if (c->npres == c->cappres) {
            c->cappres = c->cappres ? c->cappres * 2 : 1; /* most channels have few members */
            c->pres = hr_realloc(c->pres, c->cappres * sizeof(*c->pres));
        }
        slot = &c->pres[c->npres++];
        pres_client_set(slot, &k);
        atomic_fetch_add_explicit(&m->presence, 1, memory_order_relaxed); /* subscribe path, not delivery */
    }
    slot->user = pres_user_dup(user);
    slot->info = info ? hr_strdup(info) : NULL;
    if (at < 0 && c->npres > PRES_INDEX_MIN) {
        if (!c->pidx || (uint64_t)c->npres * 4 > (uint64_t)c->pidx_cap * 3) pidx_rebuild(c);
        else c->pidx[pidx_probe(c, &k)] = (uint32_t)c->npres;
    }
    pthread_mutex_unlock(&sh->mu);
    if (cb) cb(ud, 0);
}

static void m_presence_remove(hr_engine *e, const char *channel, size_t len, const char *client, hr_done_cb cb,
                              void *ud)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(channel, len);
    shard *sh = mem_shard_of(m, h);
    pres_key k = key_of_text(client); /* outside the lock */
    pthread_mutex_lock(&sh->mu);
    mchan *c = find(sh, h, channel, len);
    long at = c ? pres_find(c, &k) : -1;
    if (at >= 0) {
        pres_delete(c, (size_t)at);
        atomic_fetch_sub_explicit(&m->presence, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&sh->mu);
    if (cb) cb(ud, 0);
}

static void m_presence(hr_engine *e, const char *channel, size_t len, hr_presence_cb cb, void *ud)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(channel, len);
    shard *sh = mem_shard_of(m, h);
    pthread_mutex_lock(&sh->mu);
    mchan *c = find(sh, h, channel, len);
    hr_presence res = {0};
    if (c && c->npres) {
        res.entries = hr_malloc(c->npres * sizeof(*res.entries));
        for (size_t i = 0; i < c->npres; i++) {
            char buf[PRES_ID_HEX + 1];
            res.entries[i].client = hr_strdup(pres_client(&c->pres[i], buf));
            res.entries[i].user = hr_strdup(c->pres[i].user);
            res.entries[i].info = c->pres[i].info ? hr_strdup(c->pres[i].info) : NULL;
        }
        res.n = c->npres;
        res.users = count_users(c);
    }
    pthread_mutex_unlock(&sh->mu);
    cb(ud, 0, &res);
    for (size_t i = 0; i < res.n; i++) {
        hr_free((char *)res.entries[i].client);
        hr_free((char *)res.entries[i].user);
        hr_free((char *)res.entries[i].info);
    }
    hr_free(res.entries);
}

static void m_channels(hr_engine *e, void (*each)(void *ud, const char *name, size_t len, uint64_t offset), void *ud)
{
    mengine *m = (mengine *)e;
    for (int s = 0; s < SHARDS; s++) {
        shard *sh = &m->shards[s];
        pthread_mutex_lock(&sh->mu);
        for (size_t b = 0; b < sh->nbuckets; b++)
            for (mchan *c = sh->buckets[b]; c; c = c->next)
                if (c->count || c->npres || c->offset) each(ud, c->name, c->len, c->offset);
        pthread_mutex_unlock(&sh->mu);
    }
}

static void m_free(hr_engine *e)
{
    mengine *m = (mengine *)e;
    if (m->log) hr_durable_close(m->log); /* writes and delivers what is queued first */
    for (int s = 0; s < SHARDS; s++) {
        shard *sh = &m->shards[s];
        for (size_t b = 0; b < sh->nbuckets; b++) {
            mchan *c = sh->buckets[b];
            while (c) {
                mchan *nx = c->next;
                while (c->count) mem_ring_drop_oldest(m, c);
                for (size_t i = 0; i < c->npres; i++) pres_free(&c->pres[i]);
                hr_free(c->pres);
                hr_free(c->pidx);
                while (c->idem_head) idem_pop(c);
                hr_free(c->idem);
                hr_free(c->ring);
                hr_free(c);
                c = nx;
            }
        }
        hr_free(sh->buckets);
        pthread_mutex_destroy(&sh->mu);
    }
    pthread_mutex_destroy(&m->lru_mu);
    hr_free(m);
}

static bool m_exists(hr_engine *e, const char *channel, size_t len)
{
    mengine *m = (mengine *)e;
    uint64_t h = mem_hash(channel, len);
    shard *sh = mem_shard_of(m, h);
    pthread_mutex_lock(&sh->mu);
    bool found = find(sh, h, channel, len) != NULL;
    pthread_mutex_unlock(&sh->mu);
    return found;
}

static void m_stats(hr_engine *e, hr_engine_stats *out)
{
    mengine *m = (mengine *)e;
    out->history_bytes = atomic_load_explicit(&m->hist_bytes, memory_order_relaxed);
    out->history_evictions = atomic_load_explicit(&m->evictions, memory_order_relaxed);
    out->channels = atomic_load_explicit(&m->nchannels, memory_order_relaxed);
    out->presence_entries = atomic_load_explicit(&m->presence, memory_order_relaxed);
    out->disk_bytes = m->log ? hr_durable_disk_bytes(m->log) : 0;
    out->disk_syncs = m->log ? hr_durable_syncs(m->log) : 0;
    if (m->log) hr_durable_queue_stats(m->log, &out->disk_queued_bytes, &out->disk_queue_full);
}

static const hr_engine_vt memory_vt = {
    .publish = m_publish,
    .publish_event = m_publish_event,
    .history = m_history,
    .history_remove = m_history_remove,
    .presence_add = m_presence_add,
    .presence_remove = m_presence_remove,
    .presence = m_presence,
    .channels = m_channels,
    .free = m_free,
    .exists = m_exists,
    .stats = m_stats,
};

hr_engine *hr_engine_memory_new(hr_deliver_fn deliver, void *hub)
{
    mengine *m = hr_calloc(1, sizeof(*m));
    m->base.vt = &memory_vt;
    m->base.deliver = deliver;
    m->base.hub = hub;
    for (int s = 0; s < SHARDS; s++) pthread_mutex_init(&m->shards[s].mu, NULL);
    pthread_mutex_init(&m->lru_mu, NULL);
    return &m->base;
}

void hr_engine_memory_set_budget(hr_engine *e, uint64_t max_history_bytes)
{
    ((mengine *)e)->budget = max_history_bytes;
}

int hr_engine_memory_open_log(hr_engine *e, const hr_durable_opts *o, char *err, size_t errlen)
{
    return hr_durable_open((mengine *)e, o, err, errlen);
}
