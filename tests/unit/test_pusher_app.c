/* test_pusher_app.c - the Pusher apps (src/ops/pusher_app.c): lookups by key
 * and app_id, channel types, the Pusher name <-> Herald channel mapping
 * (escapes, round trips, refusals), the reserved namespace's policy, the
 * signatures of private / presence subscriptions and of signin (vectors
 * from Pusher's documentation and Node's crypto, never from this code) and
 * the client-event rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops/pusher_app.h"

#include <stdio.h>

#include <string.h>

static hr_pusher_app apps_v[2];
static hr_pusher_apps apps = {apps_v, 2};

static int setup(void **state)
{
    (void)state;
    memset(apps_v, 0, sizeof(apps_v));
    apps_v[0] = (hr_pusher_app){.name = "one", .app_id = "1234", .key = "278d425bdf160c739803",
                                .secret = "7ad3773142a6692b25b8", .enabled = true, .client_events = true,
                                .max_client_events_per_second = 10, .max_channel_name_length = 200};
    apps_v[1] = (hr_pusher_app){.name = "two", .app_id = "app-2", .key = "k2", .secret = "s2", .enabled = true,
                                .max_client_events_per_second = 10, .max_channel_name_length = 20};
    return 0;
}

static void test_lookup(void **state)
{
    (void)state;
    assert_ptr_equal(hr_pusher_app_by_key(&apps, "k2", 2), &apps_v[1]);
    assert_ptr_equal(hr_pusher_app_by_key(&apps, "278d425bdf160c739803", 20), &apps_v[0]);
    assert_null(hr_pusher_app_by_key(&apps, "k", 1));
    assert_null(hr_pusher_app_by_key(&apps, "k23", 3));
    assert_ptr_equal(hr_pusher_app_by_id(&apps, "app-2", 5), &apps_v[1]);
    assert_null(hr_pusher_app_by_id(&apps, "1234", 3));
    assert_null(hr_pusher_app_by_id(NULL, "1234", 4));
}

static void test_flags(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int flags;
    } cases[] = {
        {"chat", 0},
        {"private-x", HR_PUSHER_CH_PRIVATE},
        {"presence-x", HR_PUSHER_CH_PRESENCE},
        {"private-encrypted-x", HR_PUSHER_CH_PRIVATE | HR_PUSHER_CH_ENCRYPTED},
        {"cache-x", HR_PUSHER_CH_CACHE},
        {"private-cache-x", HR_PUSHER_CH_PRIVATE | HR_PUSHER_CH_CACHE},
        {"presence-cache-x", HR_PUSHER_CH_PRESENCE | HR_PUSHER_CH_CACHE},
        {"private-encrypted-cache-x", HR_PUSHER_CH_PRIVATE | HR_PUSHER_CH_ENCRYPTED | HR_PUSHER_CH_CACHE},
        {"privatex", 0},
        {"my-private-x", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(hr_pusher_chan_flags(cases[i].name, strlen(cases[i].name)), cases[i].flags);
}

static void test_mapping(void **state)
{
    (void)state;
    static const struct {
        const char *pusher, *herald;
    } cases[] = {
        {"chat", "$pusher-1234:chat"},
        {"private-a_b-c=d@e,f", "$pusher-1234:private-a_b-c=d@e,f"},
        {"prices.eu.btc", "$pusher-1234:prices.eu.btc"},
        {"a;b", "$pusher-1234:a%3Bb"},
        {".a", "$pusher-1234:%2Ea"},
        {"a.", "$pusher-1234:a%2E"},
        {"a..b", "$pusher-1234:a.%2Eb"},
        {"..", "$pusher-1234:%2E%2E"},
        {"...", "$pusher-1234:%2E%2E%2E"},
        {";", "$pusher-1234:%3B"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hr_buf b = HR_BUF_INIT;
        assert_int_equal(hr_pusher_to_herald(&apps_v[0], cases[i].pusher, strlen(cases[i].pusher), &b), 0);
        hr_buf_append(&b, "", 1);
        assert_string_equal((char *)b.data, cases[i].herald);
        assert_true(hr_pusher_reserved((char *)b.data, b.len - 1));
        hr_buf back = HR_BUF_INIT;
        const hr_pusher_app *app = NULL;
        assert_int_equal(hr_pusher_from_herald(&apps, (char *)b.data, b.len - 1, &app, &back), 0);
        assert_ptr_equal(app, &apps_v[0]);
        hr_buf_append(&back, "", 1);
        assert_string_equal((char *)back.data, cases[i].pusher);
        hr_buf_free(&b);
        hr_buf_free(&back);
    }
    /* refusals leave out unchanged */
    static const char *const bad[] = {"", "a b", "a:b", "a#b", "a*", "a%b", "caf\xc3\xa9", "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hr_buf b = HR_BUF_INIT;
        assert_int_equal(hr_pusher_to_herald(&apps_v[0], bad[i], strlen(bad[i]), &b), HR_PUSHER_E_NAME);
        assert_int_equal(b.len, 0);
    }
    hr_buf b = HR_BUF_INIT;
    assert_int_equal(hr_pusher_to_herald(&apps_v[1], "abcdefghijklmnopqrstu", 21, &b), HR_PUSHER_E_NAME_LONG);
    assert_int_equal(hr_pusher_to_herald(&apps_v[1], "abcdefghijklmnopqrst", 20, &b), 0);
    hr_buf_free(&b);
    /* outside the namespaces, or of no app */
    const hr_pusher_app *app = NULL;
    hr_buf o = HR_BUF_INIT;
    assert_int_equal(hr_pusher_from_herald(&apps, "chat:x", 6, &app, &o), HR_PUSHER_E_NOT_PUSHER);
    assert_int_equal(hr_pusher_from_herald(&apps, "$pusher-9:x", 11, &app, &o), HR_PUSHER_E_UNKNOWN_APP);
    assert_false(hr_pusher_reserved("$pusher-", 8));
    assert_false(hr_pusher_reserved("$pushe-1:x", 10));
    /* server-to-user channels */
    assert_int_equal(hr_pusher_user_channel(&apps_v[1], "u-42", 4, &o), 0);
    hr_buf_append(&o, "", 1);
    assert_string_equal((char *)o.data, "$pusher-app-2:#u-42");
    o.len = 0;
    assert_int_equal(hr_pusher_user_channel(&apps_v[1], "a,b", 3, &o), HR_PUSHER_E_NAME);
    o.len = 0; /* pusher-js's name for it, both ways */
    assert_int_equal(hr_pusher_to_herald(&apps_v[1], "#server-to-user-u-42", 20, &o), 0);
    hr_buf_append(&o, "", 1);
    assert_string_equal((char *)o.data, "$pusher-app-2:#u-42");
    hr_buf back = HR_BUF_INIT;
    assert_int_equal(hr_pusher_from_herald(&apps, (char *)o.data, o.len - 1, &app, &back), 0);
    hr_buf_append(&back, "", 1);
    assert_string_equal((char *)back.data, "#server-to-user-u-42");
    hr_buf_free(&back);
    o.len = 0;
    assert_int_equal(hr_pusher_to_herald(&apps_v[1], "#server-to-user-", 16, &o), HR_PUSHER_E_NAME);
    assert_int_equal(hr_pusher_to_herald(&apps_v[1], "#other", 6, &o), HR_PUSHER_E_NAME);
    assert_int_equal(hr_pusher_user_channel(&apps_v[1], "", 0, &o), HR_PUSHER_E_NAME);
    hr_buf_free(&o);
}

static void test_policy(void **state)
{
    (void)state;
    hr_chan_policy base = {.history_size = 0, .allow_anonymous = false, .subscribe = HR_PERM_AUTHENTICATED,
                           .max_subscribers = 7};
    hr_chan_policy p;
    const hr_pusher_app *app = NULL;
    const char *ch = "$pusher-1234:chat";
    assert_int_equal(hr_pusher_policy(&apps, &base, ch, strlen(ch), &p, &app), 0);
    assert_ptr_equal(app, &apps_v[0]);
    assert_int_equal(p.subscribe, HR_PERM_ANYONE);
    assert_true(p.allow_anonymous);
    assert_false(p.presence);
    assert_false(p.allow_publish);
    assert_int_equal(p.max_subscribers, 7);
    ch = "$pusher-1234:presence-cache-room";
    assert_int_equal(hr_pusher_policy(&apps, &base, ch, strlen(ch), &p, &app), 0);
    assert_int_equal(p.subscribe, HR_PERM_TOKEN);
    assert_true(p.presence && p.join_leave);
    assert_int_equal(p.history_size, 1);
    assert_true(p.allow_publish); /* app one has client_events */
    assert_int_equal(p.publish, HR_PERM_SUBSCRIBERS);
    ch = "$pusher-1234:private-encrypted-x";
    assert_int_equal(hr_pusher_policy(&apps, &base, ch, strlen(ch), &p, &app), 0);
    assert_int_equal(p.subscribe, HR_PERM_TOKEN);
    assert_false(p.allow_publish); /* never client events on encrypted channels */
    ch = "$pusher-app-2:private-x";
    assert_int_equal(hr_pusher_policy(&apps, &base, ch, strlen(ch), &p, &app), 0);
    assert_false(p.allow_publish); /* app two has no client_events */
    ch = "$pusher-nope:x";
    assert_int_equal(hr_pusher_policy(&apps, &base, ch, strlen(ch), &p, &app), HR_PUSHER_E_UNKNOWN_APP);
}

/* Vectors: Pusher's documentation (private-foobar) and Node's crypto.createHmac. */
static void test_signatures(void **state)
{
    (void)state;
    const hr_pusher_app *a = &apps_v[0];
    const char *priv = "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "private-foobar", 14, NULL, 0, priv, strlen(priv)), 0);
    const char *cd = "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}";
    const char *pres = "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "presence-foobar", 15, cd, strlen(cd), pres,
                                                  strlen(pres)),
                     0);
    const char *ud = "{\"id\":\"12345\"}";
    const char *user = "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba";
    assert_int_equal(hr_pusher_check_user_auth(a, "1234.1234", ud, strlen(ud), user, strlen(user)), 0);
    /* refusals: another socket, channel, data, key, a flipped digit, a short or absent one */
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1235", "private-foobar", 14, NULL, 0, priv, strlen(priv)),
                     HR_PUSHER_E_SIGNATURE);
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "private-foobaz", 14, NULL, 0, priv, strlen(priv)),
                     HR_PUSHER_E_SIGNATURE);
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "presence-foobar", 15, "{}", 2, pres, strlen(pres)),
                     HR_PUSHER_E_SIGNATURE);
    char bad[128];
    snprintf(bad, sizeof(bad), "%s", priv);
    bad[0] = '3';
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "private-foobar", 14, NULL, 0, bad, strlen(bad)),
                     HR_PUSHER_E_SIGNATURE);
    snprintf(bad, sizeof(bad), "%s", priv);
    bad[strlen(bad) - 1] = '5';
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "private-foobar", 14, NULL, 0, bad, strlen(bad)),
                     HR_PUSHER_E_SIGNATURE);
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "private-foobar", 14, NULL, 0, priv, strlen(priv) - 1),
                     HR_PUSHER_E_SIGNATURE);
    assert_int_equal(hr_pusher_check_channel_auth(a, "1234.1234", "private-foobar", 14, NULL, 0, NULL, 0),
                     HR_PUSHER_E_SIGNATURE);
    assert_int_equal(hr_pusher_check_user_auth(a, "1234.1234", "{}", 2, user, strlen(user)), HR_PUSHER_E_SIGNATURE);
    assert_true(hr_pusher_ct_equal("abc", 3, "abc", 3));
    assert_false(hr_pusher_ct_equal("abc", 3, "abd", 3));
    assert_false(hr_pusher_ct_equal("abc", 3, "ab", 2));
}

static void test_connections(void **state)
{
    (void)state;
    apps_v[1].max_connections = 2;
    assert_true(hr_pusher_conn_take(&apps_v[1]));
    assert_true(hr_pusher_conn_take(&apps_v[1]));
    assert_false(hr_pusher_conn_take(&apps_v[1]));
    hr_pusher_conn_give(&apps_v[1]);
    assert_true(hr_pusher_conn_take(&apps_v[1]));
    for (int i = 0; i < 100; i++) assert_true(hr_pusher_conn_take(&apps_v[0])); /* 0: unbounded */
    apps_v[1].max_presence_members = 2;
    assert_true(hr_pusher_presence_room(&apps_v[1], 1));
    assert_false(hr_pusher_presence_room(&apps_v[1], 2));
}

static void test_rate(void **state)
{
    (void)state;
    hr_pusher_rate r = {0};
    uint64_t t = 5000;
    for (int i = 0; i < 10; i++) assert_true(hr_pusher_rate_take(&apps_v[0], &r, t + (uint64_t)i));
    assert_false(hr_pusher_rate_take(&apps_v[0], &r, t + 999));
    assert_true(hr_pusher_rate_take(&apps_v[0], &r, t + 1000)); /* the next second */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_lookup, setup),     cmocka_unit_test_setup(test_flags, setup),
        cmocka_unit_test_setup(test_mapping, setup),    cmocka_unit_test_setup(test_policy, setup),
        cmocka_unit_test_setup(test_signatures, setup), cmocka_unit_test_setup(test_rate, setup),
        cmocka_unit_test_setup(test_connections, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
