/* test_hub.c - the hub across two workers: interest registry routes a
 * publication only to workers with subscribers, each subscriber gets it once
 * and in order, encodings are shared through the per-worker cache, offsets
 * already delivered are skipped, a channel's run goes to an up-to-date
 * subscriber in one call when its front end takes runs, patterns match (and never open channels
 * limited to other users), unsubscribe withdraws interest; channel occupancy
 * is reported exactly once per node-wide transition, also when two workers
 * race on one channel; a client id is kept as 16 bytes and shown as 32 hex
 * digits (or a Pusher socket id "N.M"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef struct fake {
    hr_client c;
    uint64_t got[64];
    char chans[64][32];
    size_t n;
    int encodes;
    int unsubscribed, disconnected, last_code;
    char last_reason[64];
} fake;

static int total_encodes;

static void fake_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    (void)sub;
    fake *f = (fake *)c;
    if (!cache->slot[0]) {
        cache->slot[0] = hr_sbuf_new(pub->data, pub->data_len);
        f->encodes++;
        total_encodes++;
    }
    if (f->n < 64) {
        f->got[f->n] = pub->offset;
        snprintf(f->chans[f->n], sizeof(f->chans[0]), "%s", pub->channel);
    }
    f->n++;
}

static void fake_on_command(hr_client *c, hr_sub *sub, const hr_pub *cmd)
{
    fake *f = (fake *)c;
    f->last_code = cmd->code;
    snprintf(f->last_reason, sizeof(f->last_reason), "%s", hr_pub_reason(cmd));
    if (cmd->kind == HR_PUB_DISCONNECT) {
        assert_null(sub);
        f->disconnected++;
        hr_hub_unsubscribe_all(c); /* what a session does when it goes */
        hr_hub_client_remove(c);
    } else {
        assert_non_null(sub);
        f->unsubscribed++;
        hr_hub_unsubscribe(c, sub);
    }
}

static const hr_client_vt fake_vt = {.on_pub = fake_on_pub, .on_command = fake_on_command};

/* A front end that takes runs (hub.h hr_run): records each run's size and
 * offsets as it would queue them; refuse_runs: declines (on_pub one by one). */
static int runs_seen, refuse_runs;
static bool fake_on_run(hr_client *c, hr_sub *sub, hr_run *run)
{
    (void)sub;
    if (refuse_runs) return false;
    fake *f = (fake *)c;
    runs_seen++;
    for (uint32_t i = 0; i < run->n; i++) {
        if (f->n < 64) f->got[f->n] = run->pubs[i]->offset;
        f->n++;
    }
    return true;
}
static const hr_client_vt run_vt = {.on_pub = fake_on_pub, .on_command = fake_on_command, .on_run = fake_on_run};

static hr_hub *hub;
static hr_loop loops[2];
static hr_whub *wh[2];
static const hr_chan_opts opts = {100, 0, false, false, 0};

static int setup(void **state)
{
    (void)state;
    hub = hr_hub_new(2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hr_loop_init(&loops[i], NULL), 0);
        wh[i] = hr_hub_worker(hub, i, &loops[i]);
    }
    total_encodes = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_hub_free(hub);
    for (int i = 0; i < 2; i++) hr_loop_close(&loops[i]);
    return 0;
}

static void init_fake(fake *f, int worker, const char *user)
{
    memset(f, 0, sizeof(*f));
    f->c.vt = &fake_vt;
    f->c.wh = wh[worker];
    f->c.user = (char *)user;
}

static void publish(const char *ch, const char *data)
{
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, strlen(ch), data, strlen(data), NULL, 0);
    hub->engine->vt->publish(hub->engine, &opts, p, NULL, 0, NULL, NULL);
    hr_pub_unref(p);
}

static void process(void)
{
    hr_hub_process_inbox(wh[0]);
    hr_hub_process_inbox(wh[1]);
}

static void test_fan_out_across_workers(void **state)
{
    (void)state;
    fake a, b, b2, idle;
    init_fake(&a, 0, "");
    init_fake(&b, 1, "");
    init_fake(&b2, 1, "");
    init_fake(&idle, 0, "");
    hr_hub_subscribe(&a.c, "news", 4, false, 0);
    hr_hub_subscribe(&b.c, "news", 4, false, 0);
    hr_hub_subscribe(&b2.c, "news", 4, false, 0);
    hr_hub_subscribe(&idle.c, "other", 5, false, 0);
    for (int i = 0; i < 20; i++) publish("news", "{}");
    process();
    fake *all[] = {&a, &b, &b2};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(all[k]->n, 20);
        for (uint64_t i = 0; i < 20; i++) assert_int_equal(all[k]->got[i], i + 1);
    }
    assert_int_equal(idle.n, 0);
    /* one encoding per publication per worker: 20 x 2 workers, not x 3 subscribers */
    assert_int_equal(total_encodes, 40);
    assert_int_equal(hr_hub_local_subscribers(wh[1], "news", 4), 2);
    hr_hub_unsubscribe_all(&a.c);
    hr_hub_unsubscribe_all(&b.c);
    hr_hub_unsubscribe_all(&b2.c);
    hr_hub_unsubscribe_all(&idle.c);
}

static void test_interest_limits_inboxes(void **state)
{
    (void)state;
    fake a;
    init_fake(&a, 0, "");
    hr_sub *s = hr_hub_subscribe(&a.c, "x", 1, false, 0);
    publish("x", "1");
    assert_int_equal(wh[0]->inbox_n, 1);
    assert_int_equal(wh[1]->inbox_n, 0); /* no subscriber there: not woken */
    process();
    hr_hub_unsubscribe(&a.c, s);
    publish("x", "2");
    assert_int_equal(wh[0]->inbox_n, 0); /* interest withdrawn */
    process();
    assert_int_equal(a.n, 1);
}

static void test_skip_already_delivered(void **state)
{
    (void)state;
    fake a;
    init_fake(&a, 0, "");
    hr_sub *s = hr_hub_subscribe(&a.c, "r", 1, false, 0);
    publish("r", "1");
    publish("r", "2");
    publish("r", "3");
    s->offset = 2; /* e.g. 1 and 2 were in the subscribe reply */
    process();
    assert_int_equal(a.n, 1);
    assert_int_equal(a.got[0], 3);
    hr_hub_unsubscribe_all(&a.c);
}

/* Publications of one channel fanned out together go to an up-to-date
 * subscriber whose front end takes runs in one on_run call, in order, and
 * count as that many deliveries; a subscriber that already has part of the
 * run, one whose front end declines, and a lone publication go one by one. */
static void test_runs(void **state)
{
    (void)state;
    fake up, part, declines;
    init_fake(&up, 0, "");
    init_fake(&part, 0, "");
    init_fake(&declines, 0, "");
    up.c.vt = part.c.vt = &run_vt;
    hr_hub_subscribe(&up.c, "r", 1, false, 0);
    hr_sub *ps = hr_hub_subscribe(&part.c, "r", 1, false, 0);
    hr_hub_subscribe(&declines.c, "r", 1, false, 0);
    for (int i = 0; i < 5; i++) publish("r", "{}");
    ps->offset = 2; /* e.g. 1 and 2 were in its subscribe reply */
    runs_seen = refuse_runs = 0;
    uint64_t delivered = wh[0]->delivered;
    process();
    assert_int_equal(runs_seen, 1);
    assert_int_equal(up.n, 5);
    for (uint64_t i = 0; i < 5; i++) assert_int_equal(up.got[i], i + 1);
    assert_int_equal(part.n, 3);
    for (uint64_t i = 0; i < 3; i++) assert_int_equal(part.got[i], i + 3);
    assert_int_equal(declines.n, 5);
    assert_int_equal(wh[0]->delivered - delivered, 13);
    publish("r", "{}"); /* alone in its turn */
    process();
    assert_int_equal(runs_seen, 1);
    assert_int_equal(up.n, 6);
    assert_int_equal(up.got[5], 6);
    refuse_runs = 1;
    publish("r", "{}");
    publish("r", "{}");
    process();
    assert_int_equal(up.n, 8);
    assert_int_equal(up.got[7], 8);
    hr_hub_unsubscribe_all(&up.c);
    hr_hub_unsubscribe_all(&part.c);
    hr_hub_unsubscribe_all(&declines.c);
}

/* A network engine's batch (hr_hub_deliver_batch): each worker's inbox
 * gets the batch's publications it has subscribers for, in order, in one
 * step; a channel's publications that the batch interleaves with another
 * channel's meet in the inbox and go to a run-taking subscriber as one run. */
static void test_deliver_batch(void **state)
{
    (void)state;
    fake x, y;
    init_fake(&x, 0, "");
    init_fake(&y, 1, "");
    x.c.vt = &run_vt;
    hr_hub_subscribe(&x.c, "x", 1, false, 0);
    hr_hub_subscribe(&y.c, "y", 1, false, 0);
    const char *chans[] = {"x", "x", "y", "x", "z"};
    uint64_t offs[] = {1, 2, 1, 3, 1};
    hr_pub *pubs[5];
    for (int i = 0; i < 5; i++) {
        pubs[i] = hr_pub_new(HR_PUB_MESSAGE, chans[i], 1, "{}", 2, NULL, 0);
        pubs[i]->offset = offs[i];
    }
    hr_hub_deliver_batch(hub, pubs, 5);
    assert_int_equal(wh[0]->inbox_n, 3); /* x's three; z has no subscriber */
    assert_int_equal(wh[1]->inbox_n, 1);
    for (int i = 0; i < 5; i++) hr_pub_unref(pubs[i]);
    runs_seen = refuse_runs = 0;
    process();
    assert_int_equal(runs_seen, 1);
    assert_int_equal(x.n, 3);
    for (uint64_t i = 0; i < 3; i++) assert_int_equal(x.got[i], i + 1);
    assert_int_equal(y.n, 1);
    assert_int_equal(y.got[0], 1);
    hr_hub_unsubscribe_all(&x.c);
    hr_hub_unsubscribe_all(&y.c);
}

static void test_max_subscribers_over_workers(void **state)
{
    (void)state;
    fake a, b, c, d;
    init_fake(&a, 0, "");
    init_fake(&b, 1, "");
    init_fake(&c, 1, "");
    init_fake(&d, 0, "");
    hr_sub *sa = hr_hub_subscribe(&a.c, "lim", 3, false, 2);
    hr_sub *sb = hr_hub_subscribe(&b.c, "lim", 3, false, 2);
    assert_non_null(sa);
    assert_non_null(sb);
    assert_int_equal(hr_hub_subscribers(hub, "lim", 3), 2);
    /* full on both workers */
    assert_null(hr_hub_subscribe(&c.c, "lim", 3, false, 2));
    assert_null(hr_hub_subscribe(&d.c, "lim", 3, false, 2));
    assert_int_equal(c.c.nsubs, 0);
    assert_int_equal(hr_hub_local_subscribers(wh[1], "lim", 3), 1);
    /* a refused subscriber does not receive anything */
    publish("lim", "1");
    process();
    assert_int_equal(a.n + b.n + c.n + d.n, 2);
    /* one leaves: the next one gets in, on the other worker */
    hr_hub_unsubscribe(&a.c, sa);
    assert_int_equal(hr_hub_subscribers(hub, "lim", 3), 1);
    assert_non_null(hr_hub_subscribe(&c.c, "lim", 3, false, 2));
    assert_int_equal(hr_hub_subscribers(hub, "lim", 3), 2);
    /* patterns are not counted against the limit */
    assert_non_null(hr_hub_subscribe(&d.c, "l>", 2, true, 2));
    hr_hub_unsubscribe_all(&b.c);
    hr_hub_unsubscribe_all(&c.c);
    hr_hub_unsubscribe_all(&d.c);
    assert_int_equal(hr_hub_subscribers(hub, "lim", 3), 0);
}

/* The admin UI's busiest channels: most subscribers first, at most n, over
 * both workers; the totals count every channel. */
static void test_top_channels(void **state)
{
    (void)state;
    fake f[6];
    for (int i = 0; i < 6; i++) init_fake(&f[i], i % 2, "");
    for (int i = 0; i < 6; i++) assert_non_null(hr_hub_subscribe(&f[i].c, "busy", 4, false, 0));
    for (int i = 0; i < 3; i++) assert_non_null(hr_hub_subscribe(&f[i].c, "mid", 3, false, 0));
    assert_non_null(hr_hub_subscribe(&f[0].c, "quiet", 5, false, 0));
    assert_non_null(hr_hub_subscribe(&f[1].c, "q>", 2, true, 0)); /* a pattern: not a channel */
    hr_hub_chan_count top[2];
    uint64_t nch = 0, nsubs = 0;
    assert_int_equal(hr_hub_top_channels(hub, top, 2, &nch, &nsubs), 2);
    assert_string_equal(top[0].name, "busy");
    assert_int_equal(top[0].subscribers, 6);
    assert_string_equal(top[1].name, "mid");
    assert_int_equal(top[1].subscribers, 3);
    assert_int_equal(nch, 3);
    assert_int_equal(nsubs, 10);
    hr_hub_chan_count all[10];
    assert_int_equal(hr_hub_top_channels(hub, all, 10, NULL, NULL), 3);
    assert_string_equal(all[2].name, "quiet");
    for (int i = 0; i < 6; i++) hr_hub_unsubscribe_all(&f[i].c);
    assert_int_equal(hr_hub_top_channels(hub, all, 10, &nch, &nsubs), 0);
    assert_int_equal(nch, 0);
}

static void test_client_ids(void **state)
{
    (void)state;
    hr_client a = {0}, b = {0};
    hr_client_id_random(&a);
    hr_client_id_random(&b);
    hr_client_idstr sa = hr_client_id(&a);
    assert_int_equal(strlen(sa.s), 32);
    assert_int_equal(strspn(sa.s, "0123456789abcdef"), 32);
    assert_string_not_equal(sa.s, hr_client_id(&b).s);
    /* the shown form parses back to the same bytes */
    assert_int_equal(hr_client_id_parse(&b, sa.s), 0);
    assert_memory_equal(a.id_bin, b.id_bin, HR_CLIENT_ID_BYTES);
    assert_string_equal(hr_client_id(&b).s, sa.s);
    assert_int_equal(hr_client_id_parse(&b, "000102030405060708090a0b0c0d0e0f"), 0);
    assert_int_equal(b.id_bin[15], 15);
    assert_string_equal(hr_client_id(&b).s, "000102030405060708090a0b0c0d0e0f");
    /* anything else is refused and leaves the id as it was */
    const char *bad[] = {"", "0001", "000102030405060708090a0b0c0d0e0f0", "000102030405060708090A0B0C0D0E0F",
                         "000102030405060708090a0b0c0d0e0g"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hr_client_id_parse(&b, bad[i]), HR_ERR_INVALID);
    assert_string_equal(hr_client_id(&b).s, "000102030405060708090a0b0c0d0e0f");
    hr_client_id_pusher(&b, 2147483647u, 12);
    assert_string_equal(hr_client_id(&b).s, "2147483647.12");
    /* the struct every front end embeds stays small (docs/benchmarks.md) */
    assert_int_equal(sizeof(hr_client), 72);
}

static void test_server_commands(void **state)
{
    (void)state;
    fake a0, a1, b1, anon;
    init_fake(&a0, 0, "alice");
    init_fake(&a1, 1, "alice");
    init_fake(&b1, 1, "bob");
    init_fake(&anon, 0, "");
    hr_client_id_random(&a0.c);
    hr_client_id_random(&a1.c);
    hr_client_id_random(&b1.c);
    hr_client_id_random(&anon.c);
    fake *all[] = {&a0, &a1, &b1, &anon};
    for (int i = 0; i < 4; i++) {
        hr_hub_client_add(&all[i]->c);
        hr_hub_subscribe(&all[i]->c, "room", 4, false, 0);
        hr_hub_subscribe(&all[i]->c, "r.>", 3, true, 0);
    }
    /* unsubscribe alice (both workers) from "room": not from the pattern, not bob */
    hr_hub_unsubscribe_clients(hub, "room", 4, "alice", NULL, 2000, "bye");
    process();
    assert_int_equal(a0.unsubscribed + a1.unsubscribed, 2);
    assert_int_equal(b1.unsubscribed + anon.unsubscribed, 0);
    assert_int_equal(a0.last_code, 2000);
    assert_string_equal(a1.last_reason, "bye");
    assert_int_equal(a0.c.nsubs, 1);
    assert_int_equal(hr_hub_subscribers(hub, "room", 4), 2);
    /* a pattern subscription is addressed by its pattern */
    hr_hub_unsubscribe_clients(hub, "r.>", 3, "bob", NULL, 2000, "");
    process();
    assert_int_equal(b1.unsubscribed, 1);
    assert_int_equal(b1.c.nsubs, 1);
    /* nobody subscribed to that channel: nothing happens */
    hr_hub_unsubscribe_clients(hub, "elsewhere", 9, "bob", NULL, 2000, "");
    process();
    assert_int_equal(b1.unsubscribed, 1);
    /* disconnect by client id (anonymous clients have no user) */
    hr_hub_disconnect_clients(hub, NULL, hr_client_id(&anon.c).s, 3000, "go away");
    process();
    assert_int_equal(anon.disconnected, 1);
    assert_int_equal(a0.disconnected + a1.disconnected + b1.disconnected, 0);
    assert_string_equal(anon.last_reason, "go away");
    /* user and client id together must both match */
    hr_hub_disconnect_clients(hub, "bob", hr_client_id(&a1.c).s, 3000, "");
    process();
    assert_int_equal(b1.disconnected + a1.disconnected, 0);
    /* an id is matched as shown: another spelling of the same bytes (upper-case hex, a Pusher
     * socket id with a leading zero or a sign) or the other kind names nobody */
    char upper[HR_CLIENT_ID_SIZE];
    snprintf(upper, sizeof(upper), "%s", hr_client_id(&b1.c).s);
    for (char *p = upper; *p; p++) *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    hr_client_id_pusher(&a1.c, 7, 42);
    const char *others[] = {upper, "07.42", "7.042", "+7.42", "7.42.", "7.", ".42", "7.4294967338", "", "x"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        hr_hub_disconnect_clients(hub, NULL, others[i], 3000, "");
    process();
    assert_int_equal(b1.disconnected + a1.disconnected, 0);
    hr_hub_disconnect_clients(hub, NULL, "7.42", 3000, "pusher id");
    process();
    assert_int_equal(a1.disconnected, 1);
    assert_string_equal(a1.last_reason, "pusher id");
    assert_int_equal(b1.disconnected, 0);
    /* disconnect a user everywhere */
    hr_hub_disconnect_clients(hub, "alice", NULL, 3000, "");
    process();
    assert_int_equal(a0.disconnected, 1);
    assert_int_equal(wh[0]->nclients, 0);
    assert_int_equal(wh[1]->nclients, 1);
    hr_hub_unsubscribe_all(&b1.c);
    hr_hub_client_remove(&b1.c);
}

static void test_patterns(void **state)
{
    (void)state;
    fake anon, alice, star;
    init_fake(&anon, 1, "");
    init_fake(&alice, 0, "alice");
    init_fake(&star, 1, "");
    hr_hub_subscribe(&anon.c, "dm:>", 4, true, 0);
    hr_hub_subscribe(&alice.c, "dm:>", 4, true, 0);
    hr_hub_subscribe(&star.c, "prices.*.usd", 12, true, 0);
    publish("dm:#alice,bob", "1");
    publish("dm:public.room", "2");
    publish("prices.btc.usd", "3");
    publish("prices.eu.btc.usd", "4");
    publish("prices.btc.eur", "5");
    process();
    assert_int_equal(anon.n, 1); /* never the user-limited channel */
    assert_string_equal(anon.chans[0], "dm:public.room");
    assert_int_equal(alice.n, 2);
    assert_int_equal(star.n, 1);
    assert_string_equal(star.chans[0], "prices.btc.usd");
    assert_non_null(hr_hub_find_sub(&star.c, "prices.*.usd", 12));
    hr_hub_unsubscribe_all(&anon.c);
    hr_hub_unsubscribe_all(&alice.c);
    hr_hub_unsubscribe_all(&star.c);
    publish("prices.btc.usd", "6");
    assert_int_equal(wh[1]->inbox_n, 0); /* no pattern subscribers left */
}

/* ---- occupancy ---------------------------------------------------------------- */

typedef struct occ_log {
    int occupied, vacated;
    bool last_occupied;       /* the previous event of the channel */
    int out_of_turn;          /* an event that repeats the previous one */
    char last[32];
} occ_log;

/* Called under the registry's lock: for one channel, never two at once. */
static void on_occupancy(void *ud, const hr_occupancy *ev)
{
    occ_log *l = ud;
    if (ev->occupied == l->last_occupied) l->out_of_turn++;
    l->last_occupied = ev->occupied;
    if (ev->occupied) l->occupied++;
    else l->vacated++;
    snprintf(l->last, sizeof(l->last), "%.*s", (int)ev->len, ev->channel);
}

static void test_occupancy_transitions(void **state)
{
    (void)state;
    occ_log log = {0};
    hr_hub_set_occupancy_cb(hub, on_occupancy, &log);
    fake a, b, c, p;
    init_fake(&a, 0, "");
    init_fake(&b, 1, "");
    init_fake(&c, 1, "");
    init_fake(&p, 0, "");
    hr_sub *sa = hr_hub_subscribe(&a.c, "room", 4, false, 0);
    assert_int_equal(log.occupied, 1);
    assert_string_equal(log.last, "room");
    hr_hub_subscribe(&b.c, "room", 4, false, 0);
    hr_sub *sc = hr_hub_subscribe(&c.c, "room", 4, false, 2); /* refused: the channel is full */
    assert_null(sc);
    hr_hub_subscribe(&p.c, "room.>", 6, true, 0); /* a pattern occupies nothing */
    hr_hub_subscribe(&p.c, "ro*", 3, true, 0);
    assert_int_equal(log.occupied, 1);
    hr_hub_unsubscribe(&a.c, sa); /* b (worker 1) is still there */
    assert_int_equal(log.vacated, 0);
    hr_hub_unsubscribe_all(&p.c);
    assert_int_equal(log.vacated, 0);
    hr_hub_unsubscribe_all(&b.c);
    assert_int_equal(log.vacated, 1);
    assert_int_equal(log.out_of_turn, 0);
    /* and again: a new transition is a new event */
    hr_hub_subscribe(&c.c, "room", 4, false, 0);
    hr_hub_unsubscribe_all(&c.c);
    assert_int_equal(log.occupied, 2);
    assert_int_equal(log.vacated, 2);
    assert_int_equal(atomic_load(&hub->occupied), 2);
    assert_int_equal(atomic_load(&hub->vacated), 2);
}

#define RACE_ROUNDS 20000

static void *race_worker(void *arg)
{
    fake *f = arg;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        hr_sub *s = hr_hub_subscribe(&f->c, "race", 4, false, 0);
        hr_hub_unsubscribe(&f->c, s);
    }
    return NULL;
}

/* Two workers subscribe and unsubscribe one channel at once, on two
 * threads: the events alternate (never two occupied in a row), each
 * occupied has its vacated, and the channel ends vacated. */
static void test_occupancy_race(void **state)
{
    (void)state;
    occ_log log = {0};
    hr_hub_set_occupancy_cb(hub, on_occupancy, &log);
    fake f[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        init_fake(&f[i], i, "");
        assert_int_equal(pthread_create(&t[i], NULL, race_worker, &f[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    assert_int_equal(log.out_of_turn, 0);
    assert_true(log.occupied >= 1);
    assert_int_equal(log.occupied, log.vacated);
    assert_false(log.last_occupied);
    assert_int_equal(hr_hub_subscribers(hub, "race", 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fan_out_across_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interest_limits_inboxes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_already_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patterns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_subscribers_over_workers, setup, teardown),
        cmocka_unit_test(test_client_ids),
        cmocka_unit_test_setup_teardown(test_server_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_occupancy_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_occupancy_race, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
