/* test_limits.c - abuse limits (src/ops/limits.c): per-address connection
 * caps, handshake buckets, bans after rejected tokens, address keys (IPv4,
 * IPv4-mapped, IPv6 prefixes), publish buckets per connection and per user,
 * HTTP emulation sessions per address, and that the tables forget addresses
 * that hold no state. Time is passed in,
 * so every case is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/config.h"
#include "server/opts.h"
#include "ops/limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hr_config cfg;

/* The abuse limits with the config's [limits] options. */
static hr_limits *limits_new(void)
{
    hr_limits_opts o;
    hr_opts_limits(&cfg, &o);
    return hr_limits_new(&o);
}

static int setup(void **state)
{
    (void)state;
    hr_config_defaults(&cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_config_free(&cfg);
    return 0;
}

static void set(const char *key, const char *value)
{
    char err[256];
    assert_int_equal(hr_config_set(&cfg, key, value, err, sizeof(err)), 0);
}

static uint32_t key4(hr_limits *l, const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1234)};
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    return hr_limits_ip_key(l, (struct sockaddr *)&sa, sizeof(sa));
}

static uint32_t key6(hr_limits *l, const char *ip)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    assert_int_equal(inet_pton(AF_INET6, ip, &sa.sin6_addr), 1);
    return hr_limits_ip_key(l, (struct sockaddr *)&sa, sizeof(sa));
}

static void test_defaults_track_token_failures_and_sessions(void **state)
{
    (void)state;
    hr_limits *l = limits_new();
    assert_true(hr_limits_track_ips(l)); /* auth_failures_per_ip defaults to 20 */
    hr_limits_free(l);
    set("limits.auth_failures_per_ip", "0");
    l = limits_new();
    assert_true(hr_limits_track_ips(l)); /* poll.max_sessions_per_ip defaults to 100 */
    hr_limits_free(l);
    set("poll.max_sessions_per_ip", "0");
    l = limits_new();
    assert_false(hr_limits_track_ips(l));
    hr_limits_free(l);
}

static void test_keys(void **state)
{
    (void)state;
    hr_limits *l = limits_new();
    assert_int_equal(key4(l, "10.0.0.1"), key4(l, "10.0.0.1"));
    assert_int_not_equal(key4(l, "10.0.0.1"), key4(l, "10.0.0.2"));
    assert_int_equal(key6(l, "::ffff:10.0.0.1"), key4(l, "10.0.0.1"));
    /* the same /64: one key; another /64: another */
    assert_int_equal(key6(l, "2001:db8:1:2::1"), key6(l, "2001:db8:1:2:ffff:ffff:ffff:ffff"));
    assert_int_not_equal(key6(l, "2001:db8:1:2::1"), key6(l, "2001:db8:1:3::1"));
    assert_int_not_equal(key4(l, "10.0.0.1"), 0);
    hr_limits_free(l);
    set("limits.ipv6_prefix", "128");
    l = limits_new();
    assert_int_not_equal(key6(l, "2001:db8:1:2::1"), key6(l, "2001:db8:1:2::2"));
    hr_limits_free(l);
}

static void test_connections_per_ip(void **state)
{
    (void)state;
    set("limits.connections_per_ip", "3");
    hr_limits *l = limits_new();
    uint32_t a = key4(l, "127.0.0.1"), b = key4(l, "127.0.0.2");
    uint32_t retry = 0;
    for (int i = 0; i < 3; i++) assert_int_equal(hr_limits_admit(l, a, NULL, 1000, &retry), HR_ADMIT_OK);
    assert_int_equal(hr_limits_admit(l, a, NULL, 1000, &retry), HR_ADMIT_TOO_MANY);
    assert_true(retry >= 1);
    assert_int_equal(hr_limits_admit(l, b, NULL, 1000, &retry), HR_ADMIT_OK); /* another address is unaffected */
    hr_limits_release(l, a, 1001);
    assert_int_equal(hr_limits_admit(l, a, NULL, 1002, &retry), HR_ADMIT_OK);
    assert_int_equal(hr_limits_admit(l, a, NULL, 1002, &retry), HR_ADMIT_TOO_MANY);
    for (int i = 0; i < 3; i++) hr_limits_release(l, a, 1003);
    hr_limits_release(l, b, 1003);
    hr_limits_release(l, a, 1003); /* one too many: ignored */
    assert_int_equal(hr_limits_tracked(l), 0);
    hr_limits_free(l);
}

static void test_sessions_per_ip(void **state)
{
    (void)state;
    set("poll.max_sessions_per_ip", "2");
    set("limits.connections_per_ip", "1");
    hr_limits *l = limits_new();
    uint32_t a = key4(l, "127.0.0.1"), b = key4(l, "127.0.0.2");
    uint32_t retry = 0;
    assert_int_equal(hr_limits_admit(l, a, NULL, 1000, &retry), HR_ADMIT_OK);
    /* sessions are counted apart from connections: one connection opens two */
    assert_true(hr_limits_session_begin(l, a, 1000));
    assert_true(hr_limits_session_begin(l, a, 1000));
    assert_false(hr_limits_session_begin(l, a, 1000));
    assert_true(hr_limits_session_begin(l, b, 1000)); /* another address is unaffected */
    /* the connection closes, its sessions live on and keep the address tracked */
    hr_limits_release(l, a, 1001);
    assert_int_equal(hr_limits_tracked(l), 2);
    assert_false(hr_limits_session_begin(l, a, 1001));
    hr_limits_session_end(l, a, 1002); /* one ends: room for one more */
    assert_true(hr_limits_session_begin(l, a, 1002));
    assert_false(hr_limits_session_begin(l, a, 1002));
    hr_limits_session_end(l, a, 1003);
    hr_limits_session_end(l, a, 1003);
    hr_limits_session_end(l, a, 1003); /* one too many: ignored */
    hr_limits_session_end(l, b, 1003);
    assert_true(hr_limits_session_begin(l, 0, 1003)); /* key 0: not counted */
    hr_limits_session_end(l, 0, 1003);
    assert_int_equal(hr_limits_tracked(l), 0);
    hr_limits_free(l);
    set("poll.max_sessions_per_ip", "0"); /* off: never refused, nothing kept */
    l = limits_new();
    for (int i = 0; i < 1000; i++) assert_true(hr_limits_session_begin(l, a, 2000));
    for (int i = 0; i < 1000; i++) hr_limits_session_end(l, a, 2000);
    assert_int_equal(hr_limits_tracked(l), 0);
    hr_limits_free(l);
}

static void test_handshake_rate(void **state)
{
    (void)state;
    set("limits.handshakes_per_ip", "10");
    set("limits.handshake_burst_per_ip", "5");
    hr_limits *l = limits_new();
    uint32_t a = key4(l, "192.0.2.7");
    uint32_t retry = 0;
    uint64_t t = 50000;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(hr_limits_admit(l, a, NULL, t, &retry), HR_ADMIT_OK);
        hr_limits_release(l, a, t);
    }
    assert_int_equal(hr_limits_admit(l, a, NULL, t, &retry), HR_ADMIT_TOO_FAST);
    assert_int_equal(retry, 1);
    /* closing the connections does not reset the bucket */
    assert_int_equal(hr_limits_tracked(l), 1);
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 99, &retry), HR_ADMIT_TOO_FAST);
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 100, &retry), HR_ADMIT_OK); /* one token per 100 ms */
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 100, &retry), HR_ADMIT_TOO_FAST);
    hr_limits_release(l, a, t + 100);
    /* once its bucket has refilled, the address is forgotten when its last connection goes */
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 2000, &retry), HR_ADMIT_OK);
    hr_limits_release(l, a, t + 2050);
    assert_int_equal(hr_limits_tracked(l), 1); /* half a token still owed */
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 2100, &retry), HR_ADMIT_OK);
    hr_limits_release(l, a, t + 2200);
    assert_int_equal(hr_limits_tracked(l), 0);
    hr_limits_free(l);
}

static void test_ban_after_bad_tokens(void **state)
{
    (void)state;
    set("limits.auth_failures_per_ip", "3");
    set("limits.auth_failure_window", "10s");
    set("limits.auth_failure_ban", "30s");
    hr_limits *l = limits_new();
    uint32_t a = key4(l, "198.51.100.1"), b = key4(l, "198.51.100.2");
    uint32_t retry = 0;
    uint64_t t = 1000000;
    assert_false(hr_limits_auth_failure(l, a, t, NULL, 0));
    assert_false(hr_limits_auth_failure(l, a, t + 1, NULL, 0));
    /* the window restarts: two old failures do not count with a new one 10 s later */
    assert_false(hr_limits_auth_failure(l, a, t + 10001, NULL, 0));
    assert_false(hr_limits_auth_failure(l, a, t + 10002, NULL, 0));
    hr_ipaddr addr;
    assert_int_equal(hr_ipaddr_parse("198.51.100.1", 12, &addr), 0);
    assert_int_equal(hr_limits_admit(l, a, &addr, t + 10003, &retry), HR_ADMIT_OK);
    hr_limits_release(l, a, t + 10003);
    char who[HR_IPADDR_STRLEN] = "";
    assert_true(hr_limits_auth_failure(l, a, t + 10004, who, sizeof(who))); /* third in the window: banned */
    assert_string_equal(who, "198.51.100.1"); /* the ban's log line names the address */
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 10005, &retry), HR_ADMIT_BANNED);
    assert_int_equal(retry, 30);
    assert_int_equal(hr_limits_admit(l, b, NULL, t + 10005, &retry), HR_ADMIT_OK);
    hr_limits_release(l, b, t + 10005);
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 40003, &retry), HR_ADMIT_BANNED);
    assert_int_equal(retry, 1);
    assert_int_equal(hr_limits_admit(l, a, NULL, t + 40004, &retry), HR_ADMIT_OK);
    hr_limits_release(l, a, t + 40004);
    assert_int_equal(hr_limits_tracked(l), 0);
    hr_limits_free(l);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* 50,000 addresses: every one counted, then every one forgotten. Keys are
 * 32-bit with a random seed, so two of them collide in about one run of four
 * (the birthday bound): compare with the number of distinct keys. */
static void test_many_addresses_are_forgotten(void **state)
{
    (void)state;
    enum { N = 50000 };
    set("limits.connections_per_ip", "1000");
    hr_limits *l = limits_new();
    static uint32_t keys[N], sorted[N];
    char ip[32];
    uint32_t retry;
    for (int i = 0; i < N; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        keys[i] = key4(l, ip);
        assert_int_equal(hr_limits_admit(l, keys[i], NULL, 5000, &retry), HR_ADMIT_OK);
    }
    memcpy(sorted, keys, sizeof(keys));
    qsort(sorted, N, sizeof(sorted[0]), cmp_u32);
    size_t distinct = 0;
    for (int i = 0; i < N; i++) distinct += i == 0 || sorted[i] != sorted[i - 1];
    assert_true(distinct > N - 10);
    assert_int_equal(hr_limits_tracked(l), distinct);
    for (int i = 0; i < N; i++) hr_limits_release(l, keys[i], 5000);
    assert_int_equal(hr_limits_tracked(l), 0);
    hr_limits_free(l);
}

static void test_publish_buckets(void **state)
{
    (void)state;
    set("limits.publishes_per_connection", "4");
    set("limits.publish_burst", "4");
    set("limits.publishes_per_user", "6");
    hr_limits *l = limits_new();
    hr_bucket c1 = {0}, c2 = {0}, anon = {0};
    uint32_t retry = 0;
    uint64_t t = 7000;
    for (int i = 0; i < 4; i++) assert_true(hr_limits_publish(l, &c1, "alice", t, &retry));
    assert_false(hr_limits_publish(l, &c1, "alice", t, &retry)); /* the connection's bucket */
    assert_int_equal(retry, 250);
    /* alice's second connection: her user bucket (burst 4 as well) is empty too */
    assert_false(hr_limits_publish(l, &c2, "alice", t, &retry));
    assert_true(hr_limits_publish(l, &c2, "bob", t, &retry));
    for (int i = 0; i < 4; i++) assert_true(hr_limits_publish(l, &anon, "", t, &retry));
    assert_false(hr_limits_publish(l, &anon, "", t, &retry));
    /* c2's refused publish gave its connection token back */
    assert_true(hr_limits_publish(l, &c2, "carol", t, &retry));
    assert_true(hr_limits_publish(l, &c2, "carol", t, &retry));
    assert_true(hr_limits_publish(l, &c2, "carol", t, &retry));
    assert_false(hr_limits_publish(l, &c2, "carol", t, &retry));
    /* 250 ms later the connection has a token; alice's user bucket (6/s) one too */
    assert_true(hr_limits_publish(l, &c1, "alice", t + 250, &retry));
    hr_limits_free(l);
}

static void test_bucket_off_and_wraparound(void **state)
{
    (void)state;
    hr_bucket b = {0};
    for (int i = 0; i < 1000; i++) assert_true(hr_bucket_take(&b, 0, 0, 1, NULL)); /* rate 0 = off */
    hr_bucket w = {0};
    uint64_t t = 0xfffffff0ull; /* the low 32 bits of the clock wrap */
    assert_true(hr_bucket_take(&w, 1, 1, t, NULL));
    assert_false(hr_bucket_take(&w, 1, 1, t + 500, NULL));
    assert_true(hr_bucket_take(&w, 1, 1, t + 1000, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_track_token_failures_and_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections_per_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_per_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ban_after_bad_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_addresses_are_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_off_and_wraparound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
