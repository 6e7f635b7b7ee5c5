/* test_raw.c - raw WebSocket mode (protocol/raw.c) with the real hub and
 * memory engine and a fake transport sink: refusals and their HTTP statuses (nothing stays
 * subscribed after one), pushes (the data alone, one shared payload per
 * worker, no join/leave, overlapping subscriptions deliver once), client
 * publish and its close codes, slow consumers, server commands, presence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "protocol/raw.h"
#include "server/config.h"
#include "server/opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fake transport ------------------------------------------------------------- */

typedef struct fake_t {
    int shared;             /* send_shared calls */
    int sends;              /* send calls (raw mode has none) */
    hr_sbuf *payloads[64];  /* referenced */
    int slots[64];
    size_t queued;
    int disconnects, code;
    bool dropped;
    char reason[128];
} fake_t;

static void f_send(void *t, const uint8_t *data, size_t len, bool binary)
{
    (void)data;
    (void)len;
    (void)binary;
    ((fake_t *)t)->sends++;
}

static void f_send_shared(void *t, hr_sbuf *payload, hr_enc_cache *cache, int slot, bool binary)
{
    fake_t *f = t;
    assert_false(binary);
    assert_ptr_equal(cache->slot[slot], payload);
    if (f->shared < 64) {
        f->payloads[f->shared] = hr_sbuf_ref(payload);
        f->slots[f->shared] = slot;
    }
    f->shared++;
}

static size_t f_queued(void *t) { return ((fake_t *)t)->queued; }

static void f_disconnect(void *t, int code, const char *reason, bool drop_queued)
{
    fake_t *f = t;
    f->disconnects++;
    f->code = code;
    f->dropped = drop_queued;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

static const hr_sink_vt fake_sink = {f_send, f_send_shared, f_queued, f_disconnect, "fake", NULL, NULL};

static void fake_reset(fake_t *f)
{
    for (int i = 0; i < f->shared && i < 64; i++) hr_sbuf_unref(f->payloads[i]);
    memset(f, 0, sizeof(*f));
}

static char *text_of(const fake_t *f, int i)
{
    static char buf[4][512];
    char *b = buf[i & 3];
    snprintf(b, sizeof(buf[0]), "%.*s", (int)f->payloads[i]->len, (const char *)f->payloads[i]->data);
    return b;
}

static hr_hub *hub;
static hr_loop loops[2];
static hr_whub *wh[2];
static hr_config cfg;
static hr_proto_opts proto;

/* The protocol options from the config as the test has set it so far. */
static const hr_proto_opts *proto_now(void)
{
    hr_opts_proto(&cfg, &proto);
    return &proto;
}

static void set(const char *key, const char *value)
{
    char err[256];
    if (hr_config_set(&cfg, key, value, err, sizeof(err))) fail_msg("%s", err);
}

static int setup(void **state)
{
    (void)state;
    hub = hr_hub_new(2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hr_loop_init(&loops[i], NULL), 0);
        wh[i] = hr_hub_worker(hub, i, &loops[i]);
    }
    hr_config_defaults(&cfg);
    set("channels.max_subscriptions", "4");
    set("channels.max_publication_size", "16");
    set("namespace.members.allow_anonymous", "false");
    set("namespace.full.max_subscribers", "1");
    set("channels.publish", "anyone"); /* client publish is opt-in (default none) */
    set("namespace.ticker.allow_publish", "false");
    set("namespace.signed.publish", "authenticated");
    set("namespace.shut.publish", "none");
    set("namespace.room.join_leave", "true");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_hub_free(hub);
    for (int i = 0; i < 2; i++) hr_loop_close(&loops[i]);
    hr_config_free(&cfg);
    return 0;
}

static void process(void)
{
    hr_hub_process_inbox(wh[0]);
    hr_hub_process_inbox(wh[1]);
}

static void publish(const char *ch, const char *data)
{
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, strlen(ch), data, strlen(data), NULL, 0);
    hr_chan_opts o = {10, 0, false, false, 0};
    hub->engine->vt->publish(hub->engine, &o, p, NULL, 0, NULL, NULL);
    hr_pub_unref(p);
}

static hr_raw *open_raw(int worker, fake_t *f, const char *query)
{
    int status = 0;
    char msg[256];
    hr_raw *r = hr_raw_new(wh[worker], proto_now(), &fake_sink, f, query, strlen(query), NULL, &status, msg, sizeof(msg));
    if (!r) fail_msg("refused %s: %d %s", query, status, msg);
    return r;
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        int status;
        const char *msg; /* substring */
    } cases[] = {
        {"", 400, "missing channel"},
        {"foo=bar", 400, "missing channel"},
        {"channel=", 400, "invalid channel"},
        {"channel=a%20b", 400, "invalid channel"},
        {"channel=a%2", 400, "percent-escape"},
        {"channel=ok&channel=a..b", 400, "invalid channel"},
        {"channel=a&channel=b&channel=c&channel=d&channel=e", 400, "too many channels"},
        {"channel=%23alice", 403, "user-limited"},
        {"channel=dm:%23alice,bob", 403, "user-limited"},
        {"channel=members:x", 403, "anonymous"},
        {"channel=ok&channel=full:x&channel=full:x", 503, "max_subscribers"}, /* the second is taken below */
    };
    fake_t holder = {0};
    hr_raw *h = open_raw(1, &holder, "channel=full:x");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = 0;
        char msg[256] = "";
        fake_t f = {0};
        hr_raw *r = hr_raw_new(wh[0], proto_now(), &fake_sink, &f, cases[i].q, strlen(cases[i].q), NULL, &status, msg, sizeof(msg));
        if (r) fail_msg("%s: accepted", cases[i].q);
        if (status != cases[i].status || !strstr(msg, cases[i].msg))
            fail_msg("%s: got %d %s, want %d %s", cases[i].q, status, msg, cases[i].status, cases[i].msg);
    }
    /* nothing of the refused requests stayed subscribed */
    assert_int_equal(hr_hub_subscribers(hub, "ok", 2), 0);
    assert_int_equal(hr_hub_subscribers(hub, "full:x", 6), 1);
    assert_int_equal(wh[0]->nclients, 0);
    /* a channel twice counts once (4 distinct of max 4) */
    fake_t f = {0};
    hr_raw *r = open_raw(0, &f, "channel=a&channel=b&channel=a&channel=c&channel=d&channel=d");
    assert_int_equal(hr_hub_subscribers(hub, "a", 1), 1);
    assert_int_equal(wh[0]->nclients, 1);
    hr_raw_free(r);
    hr_raw_free(h);
    assert_int_equal(hr_hub_subscribers(hub, "full:x", 6), 0);
    assert_int_equal(hr_hub_subscribers(hub, "a", 1), 0);
}

static void test_pushes_shared_data_only(void **state)
{
    (void)state;
    fake_t a = {0}, b = {0}, c = {0};
    hr_raw *ra = open_raw(0, &a, "channel=news"), *rb = open_raw(0, &b, "channel=news");
    hr_raw *rc = open_raw(1, &c, "channel=news");
    assert_string_not_equal(hr_raw_client_id(ra).s, hr_raw_client_id(rb).s);
    assert_int_equal(strlen(hr_raw_client_id(ra).s), 32);
    publish("news", "{\"t\":1}");
    publish("news", "[1,2]");
    process();
    assert_int_equal(a.shared, 2);
    assert_int_equal(b.shared, 2);
    assert_int_equal(c.shared, 2);
    assert_string_equal(text_of(&a, 0), "{\"t\":1}");
    assert_string_equal(text_of(&a, 1), "[1,2]");
    assert_string_equal(text_of(&c, 1), "[1,2]");
    assert_int_equal(a.slots[0], HR_ENC_RAW);
    /* one payload per publication per worker */
    assert_ptr_equal(a.payloads[0], b.payloads[0]);
    assert_ptr_not_equal(a.payloads[0], c.payloads[0]);
    assert_int_equal(a.sends + b.sends + c.sends, 0);
    /* join / leave events are not pushed */
    hr_pub *j = hr_pub_new(HR_PUB_JOIN, "news", 4, "", 0, "{\"client\":\"x\",\"user\":\"\"}", 25);
    hub->engine->vt->publish_event(hub->engine, j);
    hr_pub_unref(j);
    process();
    assert_int_equal(a.shared, 2);
    hr_raw_free(ra);
    hr_raw_free(rb);
    hr_raw_free(rc);
    fake_reset(&a);
    fake_reset(&b);
    fake_reset(&c);
}

static void test_overlapping_subscriptions_deliver_once(void **state)
{
    (void)state;
    fake_t f = {0}, g = {0};
    hr_raw *r = open_raw(0, &f, "channel=p.%3E&channel=p.x&channel=p.*");
    hr_raw *s = open_raw(0, &g, "channel=p.*&channel=q");
    publish("p.x", "1");    /* exact + two patterns */
    publish("p.y", "2");    /* two patterns */
    publish("p.y.z", "3");  /* one pattern */
    publish("q", "4");
    process();
    assert_int_equal(f.shared, 3);
    assert_string_equal(text_of(&f, 0), "1");
    assert_string_equal(text_of(&f, 1), "2");
    assert_string_equal(text_of(&f, 2), "3");
    assert_int_equal(g.shared, 3);
    assert_string_equal(text_of(&g, 0), "1");
    assert_string_equal(text_of(&g, 1), "2");
    assert_string_equal(text_of(&g, 2), "4");
    hr_raw_free(r);
    hr_raw_free(s);
    fake_reset(&f);
    fake_reset(&g);
}

static void test_client_publish(void **state)
{
    (void)state;
    fake_t a = {0}, b = {0};
    hr_raw *ra = open_raw(0, &a, "channel=chat"), *rb = open_raw(1, &b, "channel=chat");
    const char *msg = " { \"a\" : [1, 2.50] } ";
    hr_raw_on_message(ra, false, (const uint8_t *)msg, strlen(msg));
    process();
    assert_int_equal(a.disconnects, 0);
    assert_int_equal(a.shared, 1);
    assert_int_equal(b.shared, 1);
    assert_string_equal(text_of(&b, 0), "{\"a\":[1,2.5]}");
    /* exactly max_publication_size (16) after compacting, then one more */
    const char *sixteen = "  \"0123456789abcd\"  ";
    hr_raw_on_message(rb, false, (const uint8_t *)sixteen, strlen(sixteen));
    process();
    assert_int_equal(a.shared, 2);
    const char *seventeen = "\"0123456789abcde\"";
    hr_raw_on_message(rb, false, (const uint8_t *)seventeen, strlen(seventeen));
    assert_int_equal(b.disconnects, 1);
    assert_int_equal(b.code, 1009);
    hr_raw_on_message(rb, false, (const uint8_t *)"1", 1); /* closing: ignored */
    process();
    assert_int_equal(b.disconnects, 1);
    assert_int_equal(a.shared, 2);
    hr_raw_free(ra);
    hr_raw_free(rb);
    fake_reset(&a);
    fake_reset(&b);

    static const struct {
        const char *q, *msg;
        bool binary;
        int code;
        const char *reason;
    } cases[] = {
        {"channel=c", "{\"a\":1}", true, 3501, "binary"},
        {"channel=c", "nope", false, 3501, "not JSON"},
        {"channel=c", "1 2", false, 3501, "not JSON"},
        {"channel=c", "", false, 3501, "not JSON"},
        {"channel=c", "18446744073709551616", false, 3501, "not JSON"},
        {"channel=c&channel=d", "1", false, 3503, "exactly one channel"},
        {"channel=c.%3E", "1", false, 3503, "pattern"},
        {"channel=ticker:x", "1", false, 3503, "may not publish"},
        {"channel=signed:x", "1", false, 3503, "may not publish"}, /* raw clients are anonymous */
        {"channel=shut:x", "1", false, 3503, "may not publish"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_t f = {0};
        hr_raw *r = open_raw(0, &f, cases[i].q);
        hr_raw_on_message(r, cases[i].binary, (const uint8_t *)cases[i].msg, strlen(cases[i].msg));
        if (f.disconnects != 1 || f.code != cases[i].code || !strstr(f.reason, cases[i].reason) || f.dropped)
            fail_msg("%s %s: disconnects %d code %d reason %s", cases[i].q, cases[i].msg, f.disconnects, f.code,
                     f.reason);
        hr_raw_free(r);
    }
    /* nothing was published by the refused messages */
    fake_t w = {0};
    hr_raw *watch = open_raw(0, &w, "channel=c");
    process();
    assert_int_equal(w.shared, 0);
    hr_raw_free(watch);
}

static void test_slow_consumer(void **state)
{
    (void)state;
    fake_t slow = {0}, ok = {0};
    hr_raw *rs = open_raw(0, &slow, "channel=s"), *ro = open_raw(0, &ok, "channel=s");
    publish("s", "1");
    process();
    slow.queued = (size_t)cfg.ws_max_queued_bytes + 1;
    publish("s", "2");
    publish("s", "3");
    process();
    assert_int_equal(slow.shared, 1);
    assert_int_equal(slow.disconnects, 1);
    assert_int_equal(slow.code, 3008);
    assert_true(slow.dropped);
    assert_int_equal(ok.shared, 3);
    hr_raw_free(rs);
    hr_raw_free(ro);
    fake_reset(&slow);
    fake_reset(&ok);
}

static void test_server_commands(void **state)
{
    (void)state;
    fake_t f = {0}, g = {0};
    hr_raw *r = open_raw(1, &f, "channel=a&channel=b.%3E"), *s = open_raw(1, &g, "channel=a");
    char id[40];
    snprintf(id, sizeof(id), "%s", hr_raw_client_id(r).s);
    hr_hub_unsubscribe_clients(hub, "a", 1, "", id, 2000, "bye a");
    process();
    assert_int_equal(f.disconnects, 0);
    publish("a", "1");
    publish("b.c", "2");
    process();
    assert_int_equal(f.shared, 1);
    assert_string_equal(text_of(&f, 0), "2");
    assert_int_equal(g.shared, 1);
    hr_hub_unsubscribe_clients(hub, "b.>", 3, "", id, 2000, "bye all");
    process();
    assert_int_equal(f.disconnects, 1);
    assert_int_equal(f.code, 1000);
    assert_string_equal(f.reason, "bye all");
    hr_hub_disconnect_clients(hub, "", hr_raw_client_id(s).s, 3005, "maintenance");
    process();
    assert_int_equal(g.disconnects, 1);
    assert_int_equal(g.code, 3005);
    assert_string_equal(g.reason, "maintenance");
    hr_raw_free(r);
    hr_raw_free(s);
    fake_reset(&f);
    fake_reset(&g);
}

static size_t npresence;
static char presence_user[16];

static void on_presence(void *ud, int err, const hr_presence *p)
{
    (void)ud;
    assert_int_equal(err, 0);
    npresence = p->n;
    if (p->n) snprintf(presence_user, sizeof(presence_user), "%s", p->entries[0].user);
}

static void presence_of(const char *ch)
{
    npresence = 99;
    hub->engine->vt->presence(hub->engine, ch, strlen(ch), on_presence, NULL);
}

static void test_presence_and_join_leave(void **state)
{
    (void)state;
    fake_t f = {0}, obs = {0};
    hr_raw *watcher = open_raw(0, &obs, "channel=room:1");
    process();
    hr_raw *r = open_raw(1, &f, "channel=room:1&channel=pres&channel=pat.%3E");
    presence_of("pres");
    assert_int_equal(npresence, 1);
    assert_string_equal(presence_user, "");
    presence_of("room:1");
    assert_int_equal(npresence, 2);
    process();
    assert_int_equal(obs.shared, 0); /* join happened, but raw clients are not told */
    hr_raw_free(r);
    presence_of("pres");
    assert_int_equal(npresence, 0);
    presence_of("room:1");
    assert_int_equal(npresence, 1);
    process();
    hr_raw_free(watcher);
    presence_of("room:1");
    assert_int_equal(npresence, 0);
    fake_reset(&f);
    fake_reset(&obs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushes_shared_data_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlapping_subscriptions_deliver_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_and_join_leave, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
