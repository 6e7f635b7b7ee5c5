/* test_engine_memory.c - the memory engine: offsets and epoch, delivery in
 * order, history queries (limit, reverse, since, completeness for recovery),
 * TTL and size trimming, history removal, presence, the node-wide history
 * budget; the page arithmetic of history replies (hr_history_fit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/engine.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t delivered[64];
static size_t ndelivered;

static void deliver(void *hub, hr_pub *pub)
{
    (void)hub;
    if (ndelivered < 64) delivered[ndelivered] = pub->offset;
    ndelivered++;
}

static hr_engine *eng;

/* The TTL and idempotency window tests need a few steps to fit in tens of
 * milliseconds of the wall clock (the engine's); a loaded machine can pause
 * the test longer, which proves nothing, so such a step is tried again on a
 * fresh channel, up to PAUSE_TRIES times. */
#define PAUSE_TRIES 10

static int setup(void **state)
{
    (void)state;
    ndelivered = 0;
    eng = hr_engine_memory_new(deliver, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    eng->vt->free(eng);
    return 0;
}

typedef struct pubres {
    uint64_t offset;
    char epoch[32];
} pubres;

static void on_pub(void *ud, int err, uint64_t offset, const char *epoch)
{
    pubres *r = ud;
    assert_int_equal(err, 0);
    r->offset = offset;
    strcpy(r->epoch, epoch);
}

static pubres publish(const hr_chan_opts *o, const char *ch, const char *data)
{
    pubres r = {0};
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, strlen(ch), data, strlen(data), NULL, 0);
    eng->vt->publish(eng, o, p, NULL, 0, on_pub, &r);
    hr_pub_unref(p);
    return r;
}

static pubres publish_keyed(const hr_chan_opts *o, const char *ch, const char *data, const char *key)
{
    pubres r = {0};
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, strlen(ch), data, strlen(data), NULL, 0);
    eng->vt->publish(eng, o, p, key, strlen(key), on_pub, &r);
    hr_pub_unref(p);
    return r;
}

typedef struct histres {
    uint64_t offset;
    char epoch[32];
    uint64_t offsets[256];
    char first_data[64];
    size_t n;
    bool complete;
} histres;

static void on_hist(void *ud, int err, const hr_history *h)
{
    histres *r = ud;
    assert_int_equal(err, 0);
    r->offset = h->offset;
    strcpy(r->epoch, h->epoch);
    r->n = h->n;
    r->complete = h->complete;
    for (size_t i = 0; i < h->n && i < 256; i++) r->offsets[i] = h->pubs[i]->offset;
    if (h->n) snprintf(r->first_data, sizeof(r->first_data), "%s", h->pubs[0]->data);
}

static histres history(const hr_chan_opts *o, const char *ch, hr_history_query q)
{
    histres r = {0};
    eng->vt->history(eng, o, ch, strlen(ch), &q, on_hist, &r);
    return r;
}

static const hr_chan_opts opts10 = {10, 0, true, false, 0};

/* The memory engine is single-node: storage only, no cluster messaging
 * (callers test e->cluster, engine.h). */
static void test_storage_only(void **state)
{
    (void)state;
    assert_non_null(eng->vt->publish);
    assert_non_null(eng->vt->history);
    assert_null(eng->cluster);
    assert_null(eng->node_id);
}

static void test_offsets_epoch_and_order(void **state)
{
    (void)state;
    pubres a = publish(&opts10, "news", "1");
    pubres b = publish(&opts10, "news", "2");
    pubres c = publish(&opts10, "other", "x");
    assert_int_equal(a.offset, 1);
    assert_int_equal(b.offset, 2);
    assert_int_equal(c.offset, 1); /* per channel */
    assert_string_equal(a.epoch, b.epoch);
    assert_int_equal(strlen(a.epoch), HR_EPOCH_LEN);
    assert_int_equal(ndelivered, 3);
    assert_int_equal(delivered[0], 1);
    assert_int_equal(delivered[1], 2);
}

static void test_history_queries(void **state)
{
    (void)state;
    for (int i = 1; i <= 15; i++) {
        char d[8];
        snprintf(d, sizeof(d), "%d", i);
        publish(&opts10, "h", d);
    }
    histres all = history(&opts10, "h", (hr_history_query){.limit = -1});
    assert_int_equal(all.offset, 15);
    assert_int_equal(all.n, 10); /* size-trimmed to the last 10 */
    assert_int_equal(all.offsets[0], 6);
    assert_int_equal(all.offsets[9], 15);
    assert_string_equal(all.first_data, "6");

    histres rev = history(&opts10, "h", (hr_history_query){.limit = 3, .reverse = true});
    assert_int_equal(rev.n, 3);
    assert_int_equal(rev.offsets[0], 15);
    assert_int_equal(rev.offsets[2], 13);

    histres pos = history(&opts10, "h", (hr_history_query){.limit = 0});
    assert_int_equal(pos.n, 0);
    assert_int_equal(pos.offset, 15);

    /* recovery: since 12 in the right epoch: exactly 13, 14, 15, complete */
    histres rec = history(&opts10, "h", (hr_history_query){.has_since = true, .since_offset = 12,
                                                            .since_epoch = all.epoch, .limit = -1});
    assert_true(rec.complete);
    assert_int_equal(rec.n, 3);
    assert_int_equal(rec.offsets[0], 13);

    /* since the newest: nothing missed, complete */
    histres none = history(&opts10, "h", (hr_history_query){.has_since = true, .since_offset = 15,
                                                             .since_epoch = all.epoch, .limit = -1});
    assert_true(none.complete);
    assert_int_equal(none.n, 0);

    /* since 5: publications 1..5 are kept, 6 is the oldest -> since 5 is still complete */
    histres edge = history(&opts10, "h", (hr_history_query){.has_since = true, .since_offset = 5,
                                                             .since_epoch = all.epoch, .limit = -1});
    assert_true(edge.complete);
    assert_int_equal(edge.n, 10);
    /* since 4: publication 5 was trimmed -> incomplete */
    histres trimmed = history(&opts10, "h", (hr_history_query){.has_since = true, .since_offset = 4,
                                                                .since_epoch = all.epoch, .limit = -1});
    assert_false(trimmed.complete);
    /* wrong epoch -> incomplete */
    histres wrong = history(&opts10, "h", (hr_history_query){.has_since = true, .since_offset = 12,
                                                              .since_epoch = "0000000000000000", .limit = -1});
    assert_false(wrong.complete);
    /* offset from the future -> incomplete */
    histres future = history(&opts10, "h", (hr_history_query){.has_since = true, .since_offset = 99,
                                                               .since_epoch = all.epoch, .limit = -1});
    assert_false(future.complete);
    /* limit cutting the gap -> incomplete (never a partial replay as complete) */
    histres cut = history(&opts10, "h", (hr_history_query){.has_since = true, .since_offset = 10,
                                                            .since_epoch = all.epoch, .limit = 2});
    assert_false(cut.complete);
    assert_int_equal(cut.n, 2);
    assert_int_equal(cut.offsets[0], 11);
}

/* before, since_time and ranges (hr_history_select): 15 published, 6..15 kept */
static void test_history_ranges(void **state)
{
    (void)state;
    for (int i = 1; i <= 15; i++) publish(&opts10, "r", "x");
    histres all = history(&opts10, "r", (hr_history_query){.limit = 0});
    histres below = history(&opts10, "r", (hr_history_query){.has_before = true, .before_offset = 9, .limit = -1});
    assert_int_equal(below.n, 3); /* 6, 7, 8 */
    assert_int_equal(below.offsets[0], 6);
    histres back = history(&opts10, "r", (hr_history_query){.has_before = true, .before_offset = 12,
                                                             .before_epoch = all.epoch, .limit = 2, .reverse = true});
    assert_int_equal(back.n, 2);
    assert_int_equal(back.offsets[0], 11);
    assert_int_equal(back.offsets[1], 10);
    histres rng = history(&opts10, "r", (hr_history_query){.has_since = true, .since_offset = 8, .has_before = true,
                                                            .before_offset = 12, .limit = -1});
    assert_int_equal(rng.n, 3);
    assert_int_equal(rng.offsets[0], 9);
    assert_int_equal(rng.offsets[2], 11);
    histres wrong = history(&opts10, "r", (hr_history_query){.has_before = true, .before_offset = 12,
                                                              .before_epoch = "0000000000000000", .limit = -1});
    assert_int_equal(wrong.n, 0);
    assert_int_equal(wrong.offset, 15);
    histres old = history(&opts10, "r", (hr_history_query){.has_since_time = true, .since_time_ms = 1, .limit = -1});
    assert_int_equal(old.n, 10);
    histres later = history(&opts10, "r", (hr_history_query){.has_since_time = true,
                                                              .since_time_ms = hr_wall_ms() + 60000, .limit = -1});
    assert_int_equal(later.n, 0);
}

static void test_epoch_fixed_at_first_look(void **state)
{
    (void)state;
    histres first = history(&opts10, "fresh", (hr_history_query){.limit = 0});
    assert_int_equal(first.offset, 0);
    pubres p = publish(&opts10, "fresh", "1");
    assert_string_equal(first.epoch, p.epoch);
    /* a subscriber that saw offset 0 recovers exactly publication 1 */
    histres rec = history(&opts10, "fresh", (hr_history_query){.has_since = true, .since_offset = 0,
                                                                .since_epoch = first.epoch, .limit = -1});
    assert_true(rec.complete);
    assert_int_equal(rec.n, 1);
}

static void test_no_history_means_no_recovery(void **state)
{
    (void)state;
    hr_chan_opts none = {0, 0, false, false, 0};
    pubres a = publish(&none, "n", "1");
    publish(&none, "n", "2");
    histres rec = history(&none, "n", (hr_history_query){.has_since = true, .since_offset = a.offset,
                                                          .since_epoch = a.epoch, .limit = -1});
    assert_false(rec.complete);
    assert_int_equal(rec.n, 0);
    assert_int_equal(rec.offset, 2);
}

static void test_ttl_and_remove(void **state)
{
    (void)state;
    hr_chan_opts ttl = {10, 20, false, false, 0};
    char ch[8];
    size_t n = 0;
    uint64_t took = 0;
    for (int i = 0; i < PAUSE_TRIES && (i == 0 || took >= ttl.history_ttl_ms); i++) {
        snprintf(ch, sizeof(ch), "t%d", i);
        uint64_t t0 = hr_wall_ms();
        publish(&ttl, ch, "1");
        publish(&ttl, ch, "2");
        n = history(&ttl, ch, (hr_history_query){.limit = -1}).n;
        took = hr_wall_ms() - t0;
    }
    assert_true(took < ttl.history_ttl_ms);
    assert_int_equal(n, 2); /* both younger than the TTL */
    struct timespec ts = {0, 40 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(history(&ttl, ch, (hr_history_query){.limit = -1}).n, 0);
    publish(&opts10, "r", "1");
    eng->vt->history_remove(eng, "r", 1, NULL, NULL);
    histres after = history(&opts10, "r", (hr_history_query){.limit = -1});
    assert_int_equal(after.n, 0);
    assert_int_equal(after.offset, 1); /* position survives removal */
}

typedef struct presres {
    size_t n, users;
    char first_user[32];
} presres;

static void on_pres(void *ud, int err, const hr_presence *p)
{
    presres *r = ud;
    assert_int_equal(err, 0);
    r->n = p->n;
    r->users = p->users;
    if (p->n) snprintf(r->first_user, sizeof(r->first_user), "%s", p->entries[0].user);
}

static void test_presence(void **state)
{
    (void)state;
    presres r = {0};
    eng->vt->presence(eng, "p", 1, on_pres, &r);
    assert_int_equal(r.n, 0);
    eng->vt->presence_add(eng, "p", 1, "c1", "alice", NULL, NULL, NULL);
    eng->vt->presence_add(eng, "p", 1, "c2", "alice", "{\"x\":1}", NULL, NULL);
    eng->vt->presence_add(eng, "p", 1, "c3", "bob", NULL, NULL, NULL);
    eng->vt->presence_add(eng, "p", 1, "c3", "bob", NULL, NULL, NULL); /* same client: replaced */
    eng->vt->presence(eng, "p", 1, on_pres, &r);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.users, 2);
    eng->vt->presence_remove(eng, "p", 1, "c1", NULL, NULL);
    eng->vt->presence_remove(eng, "p", 1, "nope", NULL, NULL);
    eng->vt->presence(eng, "p", 1, on_pres, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.users, 2);
}

/* Many entries in one channel (the indexed path): joins, re-joins and
 * leaves in a scrambled order against a model of who is present. */
#define MANY 3000
typedef struct presset {
    bool in[MANY];
    size_t n, users, bad;
} presset;

static void on_pres_set(void *ud, int err, const hr_presence *p)
{
    presset *r = ud;
    assert_int_equal(err, 0);
    memset(r->in, 0, sizeof(r->in));
    r->n = p->n;
    r->users = p->users;
    r->bad = 0;
    for (size_t i = 0; i < p->n; i++) {
        int k = -1, u = -1;
        if (sscanf(p->entries[i].client, "c%d", &k) != 1 || k < 0 || k >= MANY || r->in[k]) r->bad++;
        else r->in[k] = true;
        if (sscanf(p->entries[i].user, "u%d", &u) != 1 || u != k % 700) r->bad++;
    }
}

static void test_presence_many(void **state)
{
    (void)state;
    static bool model[MANY];
    static presset r;
    char client[16], user[16];
    memset(model, 0, sizeof(model));
    uint32_t x = 12345;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < MANY * 2; i++) {
            x = x * 1103515245u + 12345u;
            int k = (int)((x >> 8) % MANY);
            snprintf(client, sizeof(client), "c%d", k);
            snprintf(user, sizeof(user), "u%d", k % 700);
            if ((x >> 4) % 3 == 0) {
                eng->vt->presence_remove(eng, "big", 3, client, NULL, NULL);
                model[k] = false;
            } else {
                eng->vt->presence_add(eng, "big", 3, client, user, NULL, NULL, NULL);
                model[k] = true;
            }
        }
        eng->vt->presence(eng, "big", 3, on_pres_set, &r);
        size_t want = 0;
        bool users[700] = {false};
        size_t nusers = 0;
        for (int k = 0; k < MANY; k++) {
            assert_int_equal(r.in[k], model[k]);
            if (model[k]) {
                want++;
                if (!users[k % 700]) nusers++;
                users[k % 700] = true;
            }
        }
        assert_int_equal(r.bad, 0);
        assert_int_equal(r.n, want);
        assert_int_equal(r.users, nusers);
    }
    for (int k = 0; k < MANY; k++) {
        snprintf(client, sizeof(client), "c%d", k);
        eng->vt->presence_remove(eng, "big", 3, client, NULL, NULL);
    }
    eng->vt->presence(eng, "big", 3, on_pres_set, &r);
    assert_int_equal(r.n, 0);
}

/* Client ids of every shape come back exactly as given and are found
 * again by their text: Herald's own (32 lowercase hex digits, kept packed;
 * those ending in 16 zeros are copies), upper-case hex, 31 and 33 digits,
 * Pusher socket ids; with few entries
 * (scan) and many (index). */
#define NIDS 40
static char ids[NIDS][40];

static void on_pres_ids(void *ud, int err, const hr_presence *p)
{
    size_t *found = ud;
    assert_int_equal(err, 0);
    *found = 0;
    for (size_t i = 0; i < p->n; i++)
        for (int k = 0; k < NIDS; k++)
            if (strcmp(p->entries[i].client, ids[k]) == 0) *found |= (size_t)1 << k;
}

static void test_presence_client_ids(void **state)
{
    (void)state;
    for (int k = 0; k < NIDS; k++) {
        switch (k % 5) {
        case 0: snprintf(ids[k], sizeof(ids[k]), "%08x%08x0123456789abcdef", k * 2654435761u, ~(unsigned)k); break;
        case 1: snprintf(ids[k], sizeof(ids[k]), "%08X%08XABCDEF0123456789", k * 2654435761u, ~(unsigned)k); break;
        case 2: snprintf(ids[k], sizeof(ids[k]), "%031x", (unsigned)k); break;
        case 3: snprintf(ids[k], sizeof(ids[k]), k % 2 ? "%033x" : "%016x0000000000000000", (unsigned)k + 1); break;
        default: snprintf(ids[k], sizeof(ids[k]), "%u.%u", (unsigned)k * 7919u, (unsigned)k); break;
        }
    }
    for (int few = 1; few >= 0; few--) {
        int n = few ? 10 : NIDS;
        const char *ch = few ? "ids-few" : "ids-many";
        size_t found = 0, all = ((size_t)1 << n) - 1;
        for (int k = 0; k < n; k++) eng->vt->presence_add(eng, ch, strlen(ch), ids[k], "u", NULL, NULL, NULL);
        eng->vt->presence(eng, ch, strlen(ch), on_pres_ids, &found);
        assert_int_equal(found, all);
        for (int k = 0; k < n; k += 2) eng->vt->presence_remove(eng, ch, strlen(ch), ids[k], NULL, NULL);
        eng->vt->presence(eng, ch, strlen(ch), on_pres_ids, &found);
        assert_int_equal(found, all & ~(size_t)0x5555555555555555ull);
    }
}

static size_t nchannels;
static void each(void *ud, const char *name, size_t len, uint64_t offset)
{
    (void)ud;
    (void)name;
    (void)len;
    (void)offset;
    nchannels++;
}

static void test_channels(void **state)
{
    (void)state;
    publish(&opts10, "a", "1");
    publish(&opts10, "b", "1");
    nchannels = 0;
    eng->vt->channels(eng, each, NULL);
    assert_int_equal(nchannels, 2);
}

static void test_idempotency_keys(void **state)
{
    (void)state;
    hr_chan_opts o = {.history_size = 10, .idempotency_window_ms = 60000};
    pubres a = publish_keyed(&o, "idem", "1", "k1");
    pubres b = publish_keyed(&o, "idem", "2", "k2");
    pubres a2 = publish_keyed(&o, "idem", "1", "k1"); /* retry */
    assert_int_equal(a.offset, 1);
    assert_int_equal(b.offset, 2);
    assert_int_equal(a2.offset, 1);                   /* acknowledged with the original */
    assert_string_equal(a2.epoch, a.epoch);
    assert_int_equal(ndelivered, 2);                  /* delivered once */
    /* the same key on another channel is another publication */
    assert_int_equal(publish_keyed(&o, "idem2", "1", "k1").offset, 1);
    assert_int_equal(ndelivered, 3);
    /* window 0: keys are not remembered */
    hr_chan_opts off = {.history_size = 10, .idempotency_window_ms = 0};
    assert_int_equal(publish_keyed(&off, "idem3", "x", "k").offset, 1);
    assert_int_equal(publish_keyed(&off, "idem3", "x", "k").offset, 2);
    /* past HR_IDEM_MAX_KEYS the oldest key is forgotten */
    char key[32];
    for (int i = 0; i < HR_IDEM_MAX_KEYS + 1; i++) {
        snprintf(key, sizeof(key), "m%d", i);
        publish_keyed(&o, "idem4", "x", key);
    }
    assert_int_equal(publish_keyed(&o, "idem4", "x", "m0").offset, HR_IDEM_MAX_KEYS + 2); /* forgotten: new */
    assert_int_equal(publish_keyed(&o, "idem4", "x", "m5").offset, 6);                    /* still known */
}

static void test_idempotency_window_expires(void **state)
{
    (void)state;
    hr_chan_opts o = {.history_size = 10, .idempotency_window_ms = 30};
    char ch[8];
    uint64_t first = 0, again = 0, took = 0;
    for (int i = 0; i < PAUSE_TRIES && (i == 0 || took >= o.idempotency_window_ms); i++) {
        snprintf(ch, sizeof(ch), "exp%d", i);
        uint64_t t0 = hr_wall_ms();
        first = publish_keyed(&o, ch, "1", "k").offset;
        again = publish_keyed(&o, ch, "1", "k").offset;
        took = hr_wall_ms() - t0;
    }
    assert_true(took < o.idempotency_window_ms);
    assert_int_equal(first, 1);
    assert_int_equal(again, 1); /* within the window: the first one's offset */
    struct timespec ts = {0, 60 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(publish_keyed(&o, ch, "1", "k").offset, 2); /* window passed: a new publication */
}

/* channels.max_history_bytes: the least recently published channel loses
 * its oldest publications first; a recovery from an evicted range is
 * incomplete, a recovery from what is left is complete; counters add up. */
static void test_history_budget(void **state)
{
    (void)state;
    char data[1001];
    memset(data, 'x', 1000);
    data[1000] = '\0';
    hr_engine_stats st = {0};
    eng->vt->stats(eng, &st);
    assert_int_equal(st.history_bytes, 0);
    for (int i = 0; i < 5; i++) publish(&opts10, "old", data);
    eng->vt->stats(eng, &st);
    uint64_t per = st.history_bytes / 5;
    assert_true(per > 1000 && per < 1200);
    hr_engine_memory_set_budget(eng, per * 8);
    for (int i = 0; i < 5; i++) publish(&opts10, "new", data); /* 10 pubs > 8: "old" loses 2 */
    eng->vt->stats(eng, &st);
    assert_int_equal(st.history_evictions, 2);
    assert_true(st.history_bytes <= per * 8);
    assert_int_equal(st.channels, 2);
    histres h = history(&opts10, "old", (hr_history_query){.limit = -1});
    assert_int_equal(h.n, 3);
    assert_int_equal(h.offsets[0], 3);
    histres lost = history(&opts10, "old", (hr_history_query){.has_since = true, .since_offset = 1, .limit = -1});
    assert_false(lost.complete); /* offset 2 is gone: never a partial replay presented as complete */
    histres kept = history(&opts10, "old", (hr_history_query){.has_since = true, .since_offset = 2, .limit = -1});
    assert_true(kept.complete);
    assert_int_equal(kept.n, 3);
    /* "old" published again: now "new" is the least recently published */
    publish(&opts10, "old", data);
    eng->vt->stats(eng, &st);
    assert_int_equal(st.history_evictions, 3);
    histres n = history(&opts10, "new", (hr_history_query){.has_since = true, .since_offset = 0, .limit = -1});
    assert_false(n.complete);
    assert_int_equal(n.n, 4);
    /* a channel evicted to nothing still answers honestly */
    hr_engine_memory_set_budget(eng, 1);
    publish(&opts10, "last", "1");
    histres e = history(&opts10, "old", (hr_history_query){.has_since = true, .since_offset = 5, .limit = -1});
    assert_int_equal(e.n, 0);
    assert_false(e.complete);
    histres cur = history(&opts10, "old", (hr_history_query){.has_since = true, .since_offset = 6, .limit = -1});
    assert_true(cur.complete);
    eng->vt->stats(eng, &st);
    assert_int_equal(st.history_bytes, 0);
    assert_true(eng->vt->exists(eng, "old", 3));
    assert_false(eng->vt->exists(eng, "never", 5));
}

/* hr_history_fit: publications from the first while their reply size fits;
 * force_one admits a first publication larger than the page. */
static void test_history_fit(void **state)
{
    (void)state;
    static char big[5000];
    memset(big, 'x', sizeof(big));
    hr_pub *p[4] = {hr_pub_new(HR_PUB_MESSAGE, "c", 1, big, 1000, NULL, 0),
                    hr_pub_new(HR_PUB_MESSAGE, "c", 1, big, 1000, "{\"a\":1}", 7),
                    hr_pub_new(HR_PUB_MESSAGE, "c", 1, big, 5000, NULL, 0),
                    hr_pub_new(HR_PUB_MESSAGE, "c", 1, big, 10, NULL, 0)};
    hr_history h = {.pubs = p, .n = 4};
    size_t one = hr_pub_reply_size(p[0]), bytes = 0;
    assert_true(one >= 1000 + strlen("{\"offset\":18446744073709551615,\"data\":}"));
    assert_true(hr_pub_reply_size(p[1]) >= one + 7 + strlen(",\"info\":"));
    assert_int_equal(hr_history_fit(&h, 0, false, &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(hr_history_fit(&h, one, false, &bytes), 1);
    assert_int_equal(bytes, one);
    assert_int_equal(hr_history_fit(&h, one + hr_pub_reply_size(p[1]), false, NULL), 2);
    assert_int_equal(hr_history_fit(&h, 1 << 20, false, NULL), 4); /* everything */
    h.pubs = p + 2;                                                 /* a first one larger than the page */
    h.n = 2;
    assert_int_equal(hr_history_fit(&h, 100, false, NULL), 0);
    assert_int_equal(hr_history_fit(&h, 100, true, &bytes), 1);
    assert_int_equal(bytes, hr_pub_reply_size(p[2]));
    h.n = 0;
    assert_int_equal(hr_history_fit(&h, 100, true, NULL), 0);
    for (int i = 0; i < 4; i++) hr_pub_unref(p[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_storage_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_epoch_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_fixed_at_first_look, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_history_means_no_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_client_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_window_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_ranges, setup, teardown),
        cmocka_unit_test(test_history_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
