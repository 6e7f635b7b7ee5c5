/* test_ops.c - the operations of every front end (ops/ops.c) with the real
 * hub and memory engine: each rule gives its result code (a table per
 * operation), the server API actor skips permissions and client rates but
 * not names, sizes and keys, the server API's channel commands word a bad
 * name as publish does, a subscription's side effects (presence entry,
 * held publications) are the operations', and each result maps to one
 * native code and one HTTP status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops/ops.h"
#include "ops/pusher_app.h"
#include "server/opts.h"

#include <stdio.h>
#include <string.h>

static hr_hub *hub;
static hr_loop loop;
static hr_whub *wh;
static hr_config cfg;

/* The abuse limits with the config's [limits] options. */
static hr_limits *limits_new(void)
{
    hr_limits_opts o;
    hr_opts_limits(&cfg, &o);
    return hr_limits_new(&o);
}
static hr_limits *lim;

static void on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache) {}
static void on_command(hr_client *c, hr_sub *sub, const hr_pub *cmd) {}
static const hr_client_vt vt = {.on_pub = on_pub, .on_command = on_command};

static void set(const char *key, const char *value)
{
    char err[256];
    if (hr_config_set(&cfg, key, value, err, sizeof(err))) fail_msg("%s", err);
}

static int setup(void **state)
{
    (void)state;
    hub = hr_hub_new(1);
    assert_int_equal(hr_loop_init(&loop, NULL), 0);
    wh = hr_hub_worker(hub, 0, &loop);
    hr_config_defaults(&cfg);
    set("channels.max_subscriptions", "2");
    set("channels.max_publication_size", "16");
    set("channels.allow_unknown_namespaces", "false");
    set("limits.publishes_per_connection", "1");
    set("limits.publish_burst", "2");
    set("namespace.open.allow_publish", "true");
    set("namespace.open.publish", "anyone"); /* client publish is opt-in */
    set("namespace.open.presence", "true");
    set("namespace.members.allow_anonymous", "false");
    set("namespace.members.allow_publish", "true");
    set("namespace.full.max_subscribers", "1");
    set("namespace.ticker.allow_publish", "false");
    set("namespace.ticker.presence", "false");
    set("namespace.subs.allow_publish", "true");
    set("namespace.subs.publish", "subscribers");
    set("namespace.subs.history_for", "subscribers");
    set("namespace.subs.presence", "true");
    set("namespace.subs.presence_for", "none");
    lim = limits_new();
    hub->limits = lim;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_hub_free(hub);
    hr_limits_free(lim);
    hr_loop_close(&loop);
    hr_config_free(&cfg);
    return 0;
}

typedef struct who {
    hr_client c;
    hr_bucket pub, chan, tok;
} who;

/* The operations' options from the config as the test has set it so far. */
static hr_ops_opts ops;
static const hr_ops_opts *ops_now(void)
{
    hr_opts_ops(&cfg, &ops);
    return &ops;
}

static hr_actor client(who *w, const char *user)
{
    memset(w, 0, sizeof(*w));
    w->c.vt = &vt;
    w->c.wh = wh;
    w->c.user = (char *)user;
    return (hr_actor){.kind = HR_ACTOR_CLIENT, .opts = ops_now(), .wh = wh, .engine = hub->engine, .user = user,
                      .client = &w->c, .pub_bucket = &w->pub, .chan_bucket = &w->chan, .tok_bucket = &w->tok};
}

static hr_actor server(void) { return (hr_actor){.kind = HR_ACTOR_SERVER, .opts = ops_now(), .engine = hub->engine}; }

static int sub_rc(const hr_actor *a, const char *ch)
{
    hr_chan_policy pol;
    hr_sub *sub = NULL;
    return hr_op_subscribe(a, ch, strlen(ch), NULL, &pol, NULL, &sub, NULL, NULL).rc;
}

static int published;
static void on_published(void *ud, int err, uint64_t offset, const char *epoch) { published += !err; }

static int pub_rc(const hr_actor *a, const char *ch, const char *data, const char *key)
{
    return hr_op_publish(a, ch, strlen(ch), data, strlen(data), key, key ? strlen(key) : 0, on_published, NULL, NULL).rc;
}

static void test_subscribe_rules(void **state)
{
    (void)state;
    who anon, alice, bob;
    hr_actor a = client(&anon, ""), u = client(&alice, "alice"), b = client(&bob, "bob");
    static const struct {
        int actor; /* 0 anonymous, 1 alice */
        const char *ch;
        int rc;
    } cases[] = {
        {0, "bad name", HR_OP_BAD_CHANNEL},
        {0, "nowhere:x", HR_OP_UNKNOWN_NAMESPACE},
        {0, "open:x#alice", HR_OP_USER_LIMITED},
        {1, "open:x#bob", HR_OP_USER_LIMITED},
        {0, "members:x", HR_OP_DENIED},
        {1, "members:x", HR_OP_OK},
        {1, "members:x", HR_OP_ALREADY_SUBSCRIBED},
        {1, "open:x#alice", HR_OP_OK},
        {1, "open:y", HR_OP_TOO_MANY_SUBSCRIPTIONS},
        {0, "open:*", HR_OP_OK}, /* a pattern */
        {0, "full:x", HR_OP_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = sub_rc(cases[i].actor ? &u : &a, cases[i].ch);
        if (rc != cases[i].rc)
            fail_msg("subscribe %s: %s, want %s", cases[i].ch, hr_op_rc_name(rc), hr_op_rc_name(cases[i].rc));
    }
    assert_int_equal(sub_rc(&b, "full:x"), HR_OP_CHANNEL_FULL); /* max_subscribers 1 */
    assert_int_equal(bob.c.nsubs, 0);
    /* a subscription token that does not verify (no keys configured) */
    hr_op_sub_req req = {.token = "x.y.z", .token_len = 5};
    hr_chan_policy pol;
    assert_int_equal(hr_op_may_subscribe(&b, "members:x", 9, &req, 0, &pol, NULL).rc, HR_OP_TOKEN_INVALID);
    req = (hr_op_sub_req){.granted = true}; /* the connection token lists it */
    hr_actor b_anon = b;
    b_anon.user = "";
    assert_int_equal(hr_op_may_subscribe(&b_anon, "members:x", 9, &req, 0, &pol, NULL).rc, HR_OP_OK);
    hr_op_result res;
    assert_null(hr_op_unsubscribe_find(&b, "open:x", 6, &res));
    assert_int_equal(res.rc, HR_OP_NOT_SUBSCRIBED);
    hr_hub_unsubscribe_all(&anon.c);
    hr_hub_unsubscribe_all(&alice.c);
}

/* The Pusher namespaces (ops/pusher_app.h): the app's policy, the
 * signature of private-/presence- subscriptions as a credential (also for a
 * native client: without one it is DENIED), client events only on
 * private-/presence- channels of an app with client_events, from Pusher
 * connections only, at max_client_events_per_second. */
static void test_pusher(void **state)
{
    (void)state;
    set("pusher.app.p.app_id", "1234");
    set("pusher.app.p.key", "278d425bdf160c739803");
    set("pusher.app.p.secret", "7ad3773142a6692b25b8");
    set("pusher.app.p.client_events", "true");
    set("pusher.app.p.max_client_events_per_second", "2");
    set("limits.publish_burst", "100");
    who anon, other;
    hr_actor a = client(&anon, ""), o = client(&other, "");
    assert_int_equal(sub_rc(&a, "$pusher-1234:chat"), HR_OP_OK); /* public: anyone */
    assert_int_equal(sub_rc(&a, "$pusher-99:chat"), HR_OP_UNKNOWN_NAMESPACE);
    assert_int_equal(sub_rc(&o, "$pusher-1234:private-foobar"), HR_OP_DENIED);
    hr_chan_policy pol;
    const char *ch = "$pusher-1234:private-foobar";
    const char *good = "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
    hr_op_pusher_cred cred = {.socket_id = "1234.1234", .auth = good, .auth_len = strlen(good)};
    hr_op_sub_req req = {.pusher = &cred};
    assert_int_equal(hr_op_may_subscribe(&o, ch, strlen(ch), &req, 0, &pol, NULL).rc, HR_OP_OK);
    cred.socket_id = "1234.1235"; /* signed for another connection */
    assert_int_equal(hr_op_may_subscribe(&o, ch, strlen(ch), &req, 0, &pol, NULL).rc, HR_OP_TOKEN_INVALID);
    cred.socket_id = "1234.1234";
    hr_sub *sub = NULL;
    assert_int_equal(hr_op_subscribe(&o, ch, strlen(ch), &req, &pol, NULL, &sub, NULL, NULL).rc, HR_OP_OK);
    assert_false(pol.presence);
    /* client events: a Pusher connection (its rate), 2 per second */
    hr_pusher_rate rate = {0};
    assert_int_equal(pub_rc(&o, ch, "{}", NULL), HR_OP_DENIED); /* not a Pusher connection */
    o.pusher_rate = &rate;
    assert_int_equal(pub_rc(&o, ch, "{}", NULL), HR_OP_OK);
    assert_int_equal(pub_rc(&o, ch, "{}", NULL), HR_OP_OK);
    assert_int_equal(pub_rc(&o, ch, "{}", NULL), HR_OP_RATE_LIMITED);
    a.pusher_rate = &rate;
    assert_int_equal(pub_rc(&a, "$pusher-1234:chat", "{}", NULL), HR_OP_DENIED); /* public: no client events */
    /* presence: signed over channel_data too; presence and join/leave on */
    ch = "$pusher-1234:presence-foobar";
    const char *cd = "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}";
    const char *pres = "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
    cred = (hr_op_pusher_cred){.socket_id = "1234.1234", .auth = pres, .auth_len = strlen(pres), .channel_data = cd,
                               .data_len = strlen(cd)};
    who p;
    hr_actor pa = client(&p, "");
    assert_int_equal(hr_op_may_subscribe(&pa, ch, strlen(ch), &req, 0, &pol, NULL).rc, HR_OP_OK);
    assert_true(pol.presence && pol.join_leave);
    cred.data_len--; /* channel_data changed */
    assert_int_equal(hr_op_may_subscribe(&pa, ch, strlen(ch), &req, 0, &pol, NULL).rc, HR_OP_TOKEN_INVALID);
    /* the server API publishes anywhere in the namespace */
    hr_actor srv = server();
    assert_int_equal(pub_rc(&srv, "$pusher-1234:chat", "{}", NULL), HR_OP_OK);
    hr_hub_unsubscribe_all(&anon.c);
    hr_hub_unsubscribe_all(&other.c);
}

static void test_publish_rules(void **state)
{
    (void)state;
    who anon, alice, sub;
    hr_actor a = client(&anon, ""), u = client(&alice, "alice"), s = client(&sub, "");
    char key[200];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    static const struct {
        const char *ch, *data, *key;
        int rc;
    } cases[] = {
        {"bad name", "1", NULL, HR_OP_BAD_CHANNEL},
        {"open:*", "1", NULL, HR_OP_PATTERN},
        {"open:a*", "1", NULL, HR_OP_BAD_CHANNEL}, /* not a pattern either */
        {"nowhere:x", "1", NULL, HR_OP_UNKNOWN_NAMESPACE},
        {"open:x#alice", "1", NULL, HR_OP_USER_LIMITED},
        {"ticker:x", "1", NULL, HR_OP_DENIED},      /* allow_publish = false */
        {"subs:x", "1", NULL, HR_OP_DENIED},        /* publish = subscribers */
        {"open:x", "\"01234567890123456\"", NULL, HR_OP_TOO_BIG},
        {"open:x", "1", "", HR_OP_BAD_IDEMPOTENCY_KEY},
        {"open:x", "1", NULL, HR_OP_OK},
        {"open:x", "2", "k1", HR_OP_OK},
        {"open:x", "3", NULL, HR_OP_RATE_LIMITED}, /* burst 2 */
    };
    published = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = pub_rc(&a, cases[i].ch, cases[i].data, cases[i].key);
        if (rc != cases[i].rc)
            fail_msg("publish %s: %s, want %s", cases[i].ch, hr_op_rc_name(rc), hr_op_rc_name(cases[i].rc));
    }
    assert_int_equal(published, 2);
    assert_int_equal(pub_rc(&u, "open:x", "1", key), HR_OP_BAD_IDEMPOTENCY_KEY); /* 199 bytes */
    assert_int_equal(pub_rc(&u, "open:x#alice", "1", NULL), HR_OP_OK);
    assert_int_equal(sub_rc(&s, "subs:x"), HR_OP_OK);
    assert_int_equal(pub_rc(&s, "subs:x", "1", NULL), HR_OP_OK);
    hr_op_result r = hr_op_publish(&a, "open:x", 6, "\"01234567890123456\"", 19, NULL, 0, on_published, NULL, NULL);
    assert_string_equal(r.detail, "publication is 19 bytes, the limit is 16 (channels.max_publication_size)");
    hr_hub_unsubscribe_all(&sub.c);
}

static void test_server_actor(void **state)
{
    (void)state;
    hr_actor srv = server();
    /* no permissions, no client rates */
    for (int i = 0; i < 5; i++) assert_int_equal(pub_rc(&srv, "ticker:x", "1", NULL), HR_OP_OK);
    assert_int_equal(pub_rc(&srv, "subs:x", "1", NULL), HR_OP_OK);
    assert_int_equal(pub_rc(&srv, "open:x#alice", "1", NULL), HR_OP_OK);
    /* names, patterns, namespaces, sizes, keys */
    assert_int_equal(pub_rc(&srv, "open:*", "1", NULL), HR_OP_PATTERN);
    assert_int_equal(pub_rc(&srv, "nowhere:x", "1", NULL), HR_OP_UNKNOWN_NAMESPACE);
    assert_int_equal(pub_rc(&srv, "open:x", "\"01234567890123456\"", NULL), HR_OP_TOO_BIG);
    assert_int_equal(pub_rc(&srv, "open:x", "1", ""), HR_OP_BAD_IDEMPOTENCY_KEY);
}

static int answered;
static void on_history(void *ud, int err, const hr_history *h) { answered += !err; }
static void on_presence(void *ud, int err, const hr_presence *p) { answered += !err; }

static void test_history_and_presence(void **state)
{
    (void)state;
    who anon;
    hr_actor a = client(&anon, ""), srv = server();
    hr_history_query q = {.limit = 10};
    answered = 0;
    assert_int_equal(hr_op_history(&a, "open:*", 6, &q, on_history, NULL).rc, HR_OP_PATTERN);
    assert_int_equal(hr_op_history(&a, "subs:x", 6, &q, on_history, NULL).rc, HR_OP_DENIED);
    assert_int_equal(hr_op_history(&srv, "subs:x", 6, &q, on_history, NULL).rc, HR_OP_OK);
    assert_int_equal(hr_op_history(&a, "open:x", 6, &q, on_history, NULL).rc, HR_OP_OK);
    assert_int_equal(hr_op_presence(&a, "ticker:x", 8, on_presence, NULL).rc, HR_OP_NOT_AVAILABLE);
    assert_int_equal(hr_op_presence(&a, "subs:x", 6, on_presence, NULL).rc, HR_OP_DENIED);
    assert_int_equal(hr_op_presence(&a, "open:x", 6, on_presence, NULL).rc, HR_OP_OK);
    assert_int_equal(hr_op_history_remove(&a, "open:x", 6, NULL, NULL).rc, HR_OP_DENIED);
    assert_int_equal(answered, 3);
}

/* limits.channels_per_connection and limits.token_verifications_per_connection */
static void test_creation_and_token_rates(void **state)
{
    (void)state;
    set("limits.channels_per_connection", "1");
    set("limits.channel_burst", "2");
    set("limits.token_verifications_per_connection", "1");
    set("limits.token_verification_burst", "1");
    hr_limits_free(lim); /* the limits copy their options when made */
    lim = limits_new();
    hub->limits = lim;
    who anon;
    hr_actor a = client(&anon, "");
    hr_history_query q = {.limit = 10};
    assert_int_equal(hr_op_history(&a, "open:n1", 7, &q, on_history, NULL).rc, HR_OP_OK);
    assert_int_equal(pub_rc(&a, "open:n2", "1", NULL), HR_OP_OK);
    hr_op_result r = hr_op_history(&a, "open:n3", 7, &q, on_history, NULL);
    assert_int_equal(r.rc, HR_OP_RATE_LIMITED);
    assert_non_null(strstr(r.detail, "channel creation rate limit"));
    assert_int_equal(hr_op_history(&a, "open:n2", 7, &q, on_history, NULL).rc, HR_OP_OK); /* exists: free */
    assert_int_equal(sub_rc(&a, "open:*"), HR_OP_OK);                                    /* a pattern: free */
    hr_jwt_claims cl;
    assert_int_equal(hr_op_verify_token(&a, "x.y.z", 5, &cl).rc, HR_OP_TOKEN_INVALID);
    r = hr_op_verify_token(&a, "x.y.z", 5, &cl);
    assert_int_equal(r.rc, HR_OP_RATE_LIMITED); /* not looked at */
    assert_non_null(strstr(r.detail, "token verification rate limit"));
    hr_hub_unsubscribe_all(&anon.c);
}

/* The server API's channel filter and unsubscribe: a bad name in publish's words. */
static void test_server_channel_commands(void **state)
{
    (void)state;
    hr_actor srv = server();
    const hr_op_target t = {"alice", "", "bye"};
    static const char *const bad[] = {"bad name", "", ":x", "open:x>y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i]);
        hr_op_result p = hr_op_publish(&srv, bad[i], n, "1", 1, NULL, 0, on_published, NULL, NULL);
        hr_op_result l = hr_op_may_list_channels(&srv, bad[i], n), u = hr_op_may_unsubscribe(&srv, bad[i], n, &t);
        assert_int_equal(p.rc, HR_OP_BAD_CHANNEL);
        assert_int_equal(l.rc, p.rc);
        assert_int_equal(u.rc, p.rc);
        assert_string_equal(l.detail, p.detail);
        assert_string_equal(u.detail, p.detail);
    }
    assert_int_equal(hr_op_may_list_channels(&srv, "nowhere:*", 9).rc, HR_OP_OK); /* a filter names no channel */
    assert_int_equal(hr_op_may_unsubscribe(&srv, "nowhere:*", 9, &t).rc, HR_OP_UNKNOWN_NAMESPACE);
    assert_int_equal(hr_op_may_unsubscribe(&srv, "open:*", 6, &t).rc, HR_OP_OK);
    assert_int_equal(hr_op_may_unsubscribe(&srv, "open:x#alice", 12, &t).rc, HR_OP_OK);
    /* the target: someone, each within its bound; the code of a disconnect */
    char long_user[300];
    memset(long_user, 'u', sizeof(long_user) - 1);
    long_user[sizeof(long_user) - 1] = '\0';
    static const struct {
        hr_op_target t;
        int code, rc;
    } targets[] = {
        {{"alice", "", ""}, 3000, HR_OP_OK},
        {{"", "c1", "why"}, 4999, HR_OP_OK},
        {{"", "", ""}, 3000, HR_OP_BAD_REQUEST},
        {{"alice", "0123456789012345678901234567890123456789012345678901234567890123456789", ""}, 3000,
         HR_OP_BAD_REQUEST},
        {{"alice", "", "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "012345678901234567890123456789012345678901234567890123456789"}, 3000, HR_OP_BAD_REQUEST},
        {{"alice", "", ""}, 2999, HR_OP_BAD_REQUEST},
        {{"alice", "", ""}, 5000, HR_OP_BAD_REQUEST},
    };
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        assert_int_equal(hr_op_may_disconnect(&srv, &targets[i].t, targets[i].code).rc, targets[i].rc);
        if (targets[i].code == 3000)
            assert_int_equal(hr_op_may_unsubscribe(&srv, "open:x", 6, &targets[i].t).rc, targets[i].rc);
    }
    assert_int_equal(hr_op_may_disconnect(&srv, &(hr_op_target){long_user, "", ""}, 3000).rc, HR_OP_BAD_REQUEST);
    who w;
    hr_actor a = client(&w, "alice");
    assert_int_equal(hr_op_may_unsubscribe(&a, "open:x", 6, &t).rc, HR_OP_DENIED);
    assert_int_equal(hr_op_may_disconnect(&a, &t, 3000).rc, HR_OP_DENIED);
}

/* hr_op_may_history / hr_op_may_presence: the rules alone, no engine call. */
static void test_rules_before_the_engine(void **state)
{
    (void)state;
    who anon;
    hr_actor a = client(&anon, "");
    hr_chan_policy pol;
    answered = 0;
    hr_history_query all = {.limit = -1};
    assert_int_equal(hr_op_may_history(&a, "subs:x", 6, &all, &pol).rc, HR_OP_DENIED);
    assert_int_equal(hr_op_may_history(&a, "open:x", 6, &all, &pol).rc, HR_OP_OK);
    /* a range that ends where it starts is the caller's mistake, named */
    hr_history_query empty = {.limit = -1, .has_since = true, .since_offset = 5, .has_before = true, .before_offset = 5};
    hr_op_result bad = hr_op_may_history(&a, "open:x", 6, &empty, &pol);
    assert_int_equal(bad.rc, HR_OP_BAD_REQUEST);
    assert_non_null(strstr(bad.detail, "before.offset"));
    empty.before_offset = 6;
    assert_int_equal(hr_op_may_history(&a, "open:x", 6, &empty, &pol).rc, HR_OP_OK);
    assert_int_equal(hr_op_may_presence(&a, "ticker:x", 8).rc, HR_OP_NOT_AVAILABLE);
    assert_int_equal(hr_op_may_presence(&a, "subs:x", 6).rc, HR_OP_DENIED);
    assert_int_equal(hr_op_may_presence(&a, "open:x", 6).rc, HR_OP_OK);
    assert_int_equal(answered, 0);
    hr_history_query q = {.limit = 10};
    hr_op_history_read(&a, "open:x", 6, &pol, &q, on_history, NULL);
    hr_op_presence_read(&a, "open:x", 6, on_presence, NULL);
    assert_int_equal(answered, 2);
}

static size_t npresent;
static void count_presence(void *ud, int err, const hr_presence *p) { npresent = err ? 99 : p->n; }

/* hr_op_subscribe_commit / hr_op_leave: the presence entry comes and goes. */
static void test_subscribe_side_effects(void **state)
{
    (void)state;
    who w;
    hr_actor a = client(&w, "bob");
    hr_client_id_random(&w.c);
    hr_chan_policy pol;
    hr_sub *sub = NULL;
    assert_int_equal(hr_op_subscribe(&a, "open:p", 6, NULL, &pol, NULL, &sub, NULL, NULL).rc, HR_OP_OK);
    hr_op_subscribe_commit(&a, sub, &pol);
    assert_true(sub->presence);
    hr_op_presence_read(&a, "open:p", 6, count_presence, NULL);
    assert_int_equal(npresent, 1);
    hr_op_leave(&a, sub, true);
    assert_int_equal(w.c.nsubs, 0);
    hr_op_presence_read(&a, "open:p", 6, count_presence, NULL);
    assert_int_equal(npresent, 0);
}

/* What a recording client got from hr_op_hold_release. */
static uint64_t got[8];
static size_t ngot;
static void record(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    (void)c, (void)sub, (void)cache;
    if (ngot < 8) got[ngot++] = pub->kind == HR_PUB_MESSAGE ? pub->offset : 1000u + pub->kind;
}
static const hr_client_vt record_vt = {.on_pub = record, .on_command = on_command};
static bool at_three(void *ud, const hr_sub *sub, uint64_t *offset)
{
    (void)ud, (void)sub;
    *offset = 3;
    return true;
}

static void test_hold(void **state)
{
    (void)state;
    hr_client c = {.vt = &record_vt, .wh = wh};
    hr_sub *sub = (hr_sub *)&c; /* only passed back */
    hr_op_hold h = {0};
    set("channels.max_held_publications", "7");
    const hr_ops_opts *o = ops_now();
    for (uint64_t off = 2; off <= 5; off++) {
        hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, "a", 1, "1", 1, NULL, 0);
        p->offset = off;
        assert_true(hr_op_hold_add(&h, o, sub, p));
        hr_pub_unref(p);
        if (off == 3) { /* a join between them: never covered by a position */
            hr_pub *j = hr_pub_new(HR_PUB_JOIN, "a", 1, "", 0, NULL, 0);
            assert_true(hr_op_hold_add(&h, o, sub, j));
            hr_pub_unref(j);
        }
    }
    ngot = 0;
    hr_op_hold_release(&h, &c, at_three, NULL);
    assert_int_equal(ngot, 3); /* 2 and 3 were in the answer */
    assert_int_equal(got[0], 1000u + HR_PUB_JOIN);
    assert_int_equal(got[1], 4);
    assert_int_equal(got[2], 5);
    assert_int_equal(h.n, 0);
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, "a", 1, "1", 1, NULL, 0);
    for (size_t i = 0; i < 7; i++) assert_true(hr_op_hold_add(&h, o, sub, p));
    assert_false(hr_op_hold_add(&h, o, sub, p)); /* full: the front end ends the client */
    hr_op_hold_free(&h);
    hr_pub_unref(p);
}

static void test_wire_forms(void **state)
{
    (void)state;
    static const struct {
        int rc, native, http;
    } cases[] = {
        {HR_OP_BAD_CHANNEL, 107, 400},      {HR_OP_PATTERN, 107, 400},         {HR_OP_UNKNOWN_NAMESPACE, 102, 400},
        {HR_OP_USER_LIMITED, 103, 403},     {HR_OP_DENIED, 103, 403},          {HR_OP_TOKEN_INVALID, 103, 401},
        {HR_OP_TOKEN_EXPIRED, 109, 401},    {HR_OP_ALREADY_SUBSCRIBED, 105, 409}, {HR_OP_NOT_SUBSCRIBED, 113, 404},
        {HR_OP_TOO_MANY_SUBSCRIPTIONS, 106, 400}, {HR_OP_CHANNEL_FULL, 106, 503}, {HR_OP_RATE_LIMITED, 111, 429},
        {HR_OP_TOO_BIG, 115, 413},          {HR_OP_BAD_IDEMPOTENCY_KEY, 107, 400}, {HR_OP_NOT_AVAILABLE, 108, 404},
        {HR_OP_BAD_REQUEST, 107, 400},
        {HR_OP_BACKEND_UNAVAILABLE, 116, 503}, {HR_OP_BACKEND_TIMEOUT, 116, 504}, {HR_OP_BACKEND_BAD_ANSWER, 116, 502},
        {HR_OP_BACKEND_ERROR, 0, 403},      {HR_OP_BACKEND_DISCONNECT, 0, 403}, {HR_OP_HOOK_UNSUPPORTED, 108, 501},
    };
    assert_int_equal(sizeof(cases) / sizeof(cases[0]), HR_OP_NCODES - 1); /* every code has a wire form */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(hr_op_native_code(cases[i].rc), cases[i].native);
        assert_int_equal(hr_op_http_status(cases[i].rc), cases[i].http);
        assert_string_not_equal(hr_op_rc_name(cases[i].rc), "unknown");
    }
    /* the backend's own error keeps its code */
    assert_int_equal(hr_op_result_native((hr_op_result){.rc = HR_OP_BACKEND_ERROR, .detail = "no", .code = 1001}), 1001);
    assert_int_equal(hr_op_result_native((hr_op_result){.rc = HR_OP_DENIED}), 103);
}

/* ---- the backend hooks: a fake hook that keeps the call for the test to answer ---- */

static int hook_calls;
static hr_op_hook last_hook;
static char last_data[64];
static hr_op_hook_cb hook_cb;
static void *hook_ud;
static int hook_refuse; /* the call refuses at once with this (0: pending) */

static int fake_hook(void *ctx, const hr_op_hook_req *req, hr_op_hook_cb cb, void *ud, const char **detail)
{
    (void)ctx;
    if (hook_refuse) {
        *detail = "too many in flight";
        return hook_refuse;
    }
    hook_calls++;
    last_hook = req->hook;
    snprintf(last_data, sizeof(last_data), "%.*s", (int)req->data_len, req->data ? req->data : "");
    hook_cb = cb;
    hook_ud = ud;
    return 0;
}

static hr_actor with_hooks(hr_actor a)
{
    ops.hooks = (hr_ops_hooks){fake_hook, NULL};
    return a;
}

static int sub_answers;
static hr_op_hook_ans sub_answer;
static void on_sub_hook(void *ud, const hr_op_hook_ans *ans)
{
    (void)ud;
    sub_answers++;
    sub_answer = *ans;
}

static int refusals;
static hr_op_result last_refusal;
static void on_refused(void *ud, hr_op_result res)
{
    (void)ud;
    refusals++;
    last_refusal = res;
}

static hr_op_hook_ans answer(int rc, const char *data)
{
    return (hr_op_hook_ans){.res = {.rc = rc, .detail = rc ? "backend says no" : NULL, .code = rc == HR_OP_BACKEND_ERROR ? 1001 : 0},
                            .data = data, .data_len = data ? strlen(data) : 0};
}

static void test_hooks(void **state)
{
    (void)state;
    set("namespace.hooked.allow_publish", "true");
    set("namespace.hooked.publish", "anyone");
    set("namespace.hooked.proxy_subscribe", "true");
    set("namespace.hooked.proxy_publish", "true");
    set("namespace.authhooked.allow_anonymous", "false");
    set("namespace.authhooked.proxy_subscribe", "true");
    who anon, alice;
    hr_actor a = client(&anon, "");
    hr_actor u = with_hooks(client(&alice, "alice"));
    u.pub_bucket = NULL; /* rates are test_publish_rules' */
    hr_chan_policy pol;
    hr_sub *sub = NULL;
    hook_calls = 0;

    /* a namespace without the flags never asks the hook */
    assert_int_equal(hr_op_subscribe(&u, "open:x", 6, NULL, &pol, NULL, &sub, on_sub_hook, NULL).rc, HR_OP_OK);
    assert_int_equal(hook_calls, 0);
    /* every synchronous rule first: a denied client never reaches the backend */
    assert_int_equal(hr_op_subscribe(&a, "authhooked:x", 12, NULL, &pol, NULL, &sub, on_sub_hook, NULL).rc,
                     HR_OP_DENIED);
    assert_int_equal(hook_calls, 0);
    /* a front end that cannot wait is refused, never skips the hook */
    assert_int_equal(hr_op_subscribe(&u, "hooked:x", 8, NULL, &pol, NULL, &sub, NULL, NULL).rc,
                     HR_OP_HOOK_UNSUPPORTED);
    assert_int_equal(hr_op_may_subscribe(&u, "hooked:x", 8, NULL, 0, &pol, NULL).rc, HR_OP_HOOK_UNSUPPORTED);
    /* pending, then the front end finishes on a yes */
    sub = NULL;
    assert_int_equal(hr_op_subscribe(&u, "hooked:x", 8, NULL, &pol, NULL, &sub, on_sub_hook, NULL).rc,
                     HR_OP_PENDING);
    assert_int_equal(hook_calls, 1);
    assert_int_equal(last_hook, HR_OP_HOOK_SUBSCRIBE);
    assert_null(sub);
    hr_op_hook_ans yes = answer(0, NULL);
    hook_cb(hook_ud, &yes);
    assert_int_equal(sub_answers, 1);
    hr_op_result res;
    assert_non_null(hr_op_subscribe_finish(&u, "hooked:x", 8, false, &pol, &res));
    assert_null(hr_op_subscribe_finish(&u, "hooked:x", 8, false, &pol, &res)); /* subscribed meanwhile */
    assert_int_equal(res.rc, HR_OP_ALREADY_SUBSCRIBED);
    /* too many in flight: refused at once */
    hook_refuse = HR_OP_BACKEND_UNAVAILABLE;
    assert_int_equal(hr_op_publish(&u, "hooked:x", 8, "0", 1, NULL, 0, on_published, on_refused, NULL).rc,
                     HR_OP_BACKEND_UNAVAILABLE);
    hook_refuse = 0;

    /* publish: the engine is called only after the yes, with the backend's data */
    published = 0;
    int rc = hr_op_publish(&u, "hooked:x", 8, "1", 1, NULL, 0, on_published, on_refused, NULL).rc;
    assert_int_equal(rc, HR_OP_PENDING);
    assert_int_equal(last_hook, HR_OP_HOOK_PUBLISH);
    assert_string_equal(last_data, "1");
    assert_int_equal(published, 0);
    hr_op_hook_ans rewrite = answer(0, "{\"n\":2}");
    hook_cb(hook_ud, &rewrite);
    assert_int_equal(published, 1);
    /* the backend's error reaches refused, nothing is published */
    rc = hr_op_publish(&u, "hooked:x", 8, "3", 1, NULL, 0, on_published, on_refused, NULL).rc;
    assert_int_equal(rc, HR_OP_PENDING);
    hr_op_hook_ans no = answer(HR_OP_BACKEND_ERROR, NULL);
    hook_cb(hook_ud, &no);
    assert_int_equal(refusals, 1);
    assert_int_equal(last_refusal.rc, HR_OP_BACKEND_ERROR);
    assert_int_equal(last_refusal.code, 1001);
    assert_int_equal(published, 1);
    /* the backend's data is held to channels.max_publication_size (16) */
    hr_op_publish(&u, "hooked:x", 8, "4", 1, NULL, 0, on_published, on_refused, NULL);
    hr_op_hook_ans big = answer(0, "\"0123456789abcdefgh\"");
    hook_cb(hook_ud, &big);
    assert_int_equal(refusals, 2);
    assert_int_equal(last_refusal.rc, HR_OP_TOO_BIG);
    /* no refused callback: refused, not skipped; the server API never asks */
    assert_int_equal(pub_rc(&u, "hooked:x", "5", NULL), HR_OP_HOOK_UNSUPPORTED);
    hr_actor srv = with_hooks(server());
    hook_calls = 0;
    assert_int_equal(hr_op_publish(&srv, "hooked:x", 8, "6", 1, NULL, 0, on_published, NULL, NULL).rc, HR_OP_OK);
    assert_int_equal(hook_calls, 0);
    hr_hub_unsubscribe_all(&alice.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_subscribe_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pusher, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_actor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_and_presence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creation_and_token_rates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_channel_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules_before_the_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_side_effects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold, setup, teardown),
        cmocka_unit_test(test_wire_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
