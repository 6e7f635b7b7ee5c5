/* test_pusher_api_auth.c - the HTTP API's signed requests (src/ops/pusher_app.c,
 * hr_pusher_api_check): Pusher's documented example request (its key, secret,
 * body and signature, never computed by this code), each parameter's
 * refusal, the 600 s window, the replay set (a signature accepted once; a
 * full set forgets the oldest and refuses what is signed no later than it),
 * and the query decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops/pusher_app.h"
#include "core/hmac.h"

#include <stdio.h>
#include <string.h>

/* Pusher's HTTP API reference, "Worked authentication example". */
#define KEY "278d425bdf160c739803"
#define SECRET "7ad3773142a6692b25b8"
#define BODY "{\"name\":\"foo\",\"channels\":[\"project-3\"],\"data\":\"{\\\"some\\\":\\\"data\\\"}\"}"
#define TS 1353088179
#define QUERY                                                                                                  \
    "auth_key=" KEY "&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f" \
    "&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"

static hr_pusher_app app_v[1];
static hr_pusher_apps apps = {app_v, 1};

static int setup(void **state)
{
    (void)state;
    app_v[0] = (hr_pusher_app){.name = "one", .app_id = "3", .key = KEY, .secret = SECRET, .enabled = true,
                               .api_replay_cache = 0};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_pusher_api_stop(&apps);
    return 0;
}

static int check(const char *method, const char *query, const char *body, int64_t now, const char **why)
{
    hr_pusher_api_req r = {method, strlen(method), "/apps/3/events", 14, query, strlen(query), body,
                           body ? strlen(body) : 0, now};
    *why = NULL;
    return hr_pusher_api_check(&app_v[0], &r, why);
}

static void test_documented_example(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(check("POST", QUERY, BODY, TS, &why), 0);
    assert_int_equal(check("POST", QUERY, BODY, TS + 600, &why), 0);
    /* parameter order does not matter: the signature is over the sorted ones */
    const char *shuffled = "auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
                           "&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_version=1.0&auth_timestamp=1353088179"
                           "&auth_key=" KEY;
    assert_int_equal(check("POST", shuffled, BODY, TS, &why), 0);
}

static void test_refusals(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(check("GET", QUERY, BODY, TS, &why), HR_PUSHER_E_AUTH); /* another method */
    assert_non_null(strstr(why, "Invalid signature"));
    assert_int_equal(check("POST", QUERY, BODY " ", TS, &why), HR_PUSHER_E_AUTH); /* another body */
    assert_non_null(strstr(why, "body_md5"));
    assert_int_equal(check("POST", QUERY, BODY, TS + 601, &why), HR_PUSHER_E_EXPIRED);
    assert_int_equal(check("POST", QUERY, BODY, TS - 601, &why), HR_PUSHER_E_EXPIRED);
    char q[512];
    snprintf(q, sizeof(q), "%s", QUERY);
    q[9] = 'X'; /* auth_key */
    assert_int_equal(check("POST", q, BODY, TS, &why), HR_PUSHER_E_AUTH);
    assert_non_null(strstr(why, "auth_key"));
    assert_int_equal(check("POST", "auth_key=" KEY "&auth_timestamp=1353088179&auth_version=2.0", NULL, TS, &why),
                     HR_PUSHER_E_AUTH);
    assert_non_null(strstr(why, "auth_version"));
    assert_int_equal(check("POST", "auth_key=" KEY "&auth_timestamp=-5&auth_version=1.0", NULL, TS, &why),
                     HR_PUSHER_E_AUTH);
    assert_int_equal(check("POST", "auth_key=" KEY "&auth_timestamp=1353088179&auth_version=1.0", NULL, TS, &why),
                     HR_PUSHER_E_AUTH);
    assert_non_null(strstr(why, "auth_signature"));
    /* empty names and values */
    assert_int_equal(check("POST", "auth_key=&auth_version=&auth_timestamp=&=x&&auth_signature", NULL, TS, &why),
                     HR_PUSHER_E_AUTH);
    assert_int_equal(check("POST", "=&auth_key=" KEY "&auth_version=1.0&auth_timestamp=1353088179&auth_signature=",
                           NULL, TS, &why),
                     HR_PUSHER_E_AUTH);
    assert_non_null(strstr(why, "Invalid signature"));
    /* an extra parameter is signed too */
    snprintf(q, sizeof(q), "%s&info=user_count", QUERY);
    assert_int_equal(check("POST", q, BODY, TS, &why), HR_PUSHER_E_AUTH);
    /* a signature in upper case is another string */
    snprintf(q, sizeof(q), "%s", QUERY);
    for (char *p = strstr(q, "auth_signature=") + 15; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    assert_int_equal(check("POST", q, BODY, TS, &why), HR_PUSHER_E_AUTH);
    /* more parameters than the parser takes */
    char many[2048] = "auth_key=" KEY;
    for (int i = 0; i < 40; i++) snprintf(many + strlen(many), sizeof(many) - strlen(many), "&p%d=1", i);
    assert_int_equal(check("POST", many, NULL, TS, &why), HR_PUSHER_E_AUTH);
}

static void test_replay(void **state)
{
    (void)state;
    const char *why;
    app_v[0].api_replay_cache = 2;
    hr_pusher_api_start(&apps);
    assert_int_equal(check("POST", QUERY, BODY, TS, &why), 0);
    assert_int_equal(check("POST", QUERY, BODY, TS, &why), HR_PUSHER_E_REPLAY);
    assert_non_null(strstr(why, "Replayed"));
    assert_int_equal(check("POST", QUERY, BODY, TS + 300, &why), HR_PUSHER_E_REPLAY); /* later, same signature */
    hr_pusher_api_stop(&apps);
    assert_null(app_v[0].seen);
    /* off (0): Pusher's own behaviour, the window only */
    app_v[0].api_replay_cache = 0;
    hr_pusher_api_start(&apps);
    assert_int_equal(check("POST", QUERY, BODY, TS, &why), 0);
    assert_int_equal(check("POST", QUERY, BODY, TS, &why), 0);
}

/* Requests signed at ts for distinct paths (signatures made with the
 * secret, the way a client library makes them). */
static int signed_at(int64_t ts, int n, int64_t now)
{
    char msg[1024], sig[65], q[512], path[32];
    snprintf(path, sizeof(path), "/apps/3/e%d", n);
    snprintf(q, sizeof(q), "auth_key=" KEY "&auth_timestamp=%lld&auth_version=1.0", (long long)ts);
    snprintf(msg, sizeof(msg), "GET\n%s\n%s", path, q);
    hr_hmac_sha256_hex(SECRET, msg, strlen(msg), sig);
    snprintf(q + strlen(q), sizeof(q) - strlen(q), "&auth_signature=%s", sig);
    hr_pusher_api_req r = {"GET", 3, path, strlen(path), q, strlen(q), NULL, 0, now};
    const char *why;
    return hr_pusher_api_check(&app_v[0], &r, &why);
}

static void test_replay_full(void **state)
{
    (void)state;
    app_v[0].api_replay_cache = 3;
    hr_pusher_api_start(&apps);
    int64_t now = 1700000000;
    assert_int_equal(signed_at(now - 10, 1, now), 0);
    assert_int_equal(signed_at(now - 5, 2, now), 0);
    assert_int_equal(signed_at(now - 4, 3, now), 0);
    assert_int_equal(signed_at(now, 4, now), 0); /* forgets #1 (signed at now-10) */
    assert_int_equal(signed_at(now - 10, 1, now), HR_PUSHER_E_REPLAY); /* could be a replay of a forgotten one */
    assert_int_equal(signed_at(now - 12, 5, now), HR_PUSHER_E_REPLAY); /* older than the floor */
    assert_int_equal(signed_at(now - 9, 6, now), 0);                   /* newer than the floor: fresh */
    assert_int_equal(signed_at(now - 5, 2, now), HR_PUSHER_E_REPLAY); /* forgotten only now: a replay */
    /* past the window the old ones expire and make room without raising the floor */
    int64_t later = now + 700;
    assert_int_equal(signed_at(later, 7, later), 0);
    assert_int_equal(signed_at(later - 1, 8, later), 0);
    assert_int_equal(signed_at(later - 2, 9, later), 0);
    hr_pusher_api_stop(&apps);
}

/* A request whose query carries `extra` (as sent, escaped) signed over
 * `signed_extra` (as the signature sees it: decoded), at TS. */
static int signed_with(const char *extra, const char *signed_extra, const char **why)
{
    char msg[1024], sig[65], q[512];
    snprintf(msg, sizeof(msg), "GET\n/apps/3/events\nauth_key=" KEY "&auth_timestamp=%d&auth_version=1.0&%s", TS,
             signed_extra);
    hr_hmac_sha256_hex(SECRET, msg, strlen(msg), sig);
    snprintf(q, sizeof(q), "auth_key=" KEY "&auth_timestamp=%d&auth_version=1.0&%s&auth_signature=%s", TS, extra,
             sig);
    return check("GET", q, NULL, TS, why);
}

static void test_query_decoding(void **state)
{
    (void)state;
    const char *why;
    /* the signature is over the %-decoded parameters, names included */
    assert_int_equal(signed_with("info=user_count%2Csubscription_count", "info=user_count,subscription_count", &why),
                     0);
    assert_int_equal(signed_with("%69nfo=a%2Bb+c", "info=a+b+c", &why), 0); /* '+' stays '+' */
    assert_int_equal(signed_with("info=user_count%2Csubscription_count", "info=user_count%2Csubscription_count", &why),
                     HR_PUSHER_E_AUTH);
    /* a malformed escape anywhere: the query cannot be read (400), not a bad signature */
    static const char *bad[] = {"info=%zz", "info=%4", "info=%", "%zz=1", "x=1&info=a%2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(signed_with(bad[i], bad[i], &why), HR_PUSHER_E_QUERY);
        assert_non_null(strstr(why, "Malformed query"));
    }
}

static void test_member_id(void **state)
{
    (void)state;
    hr_buf b = HR_BUF_INIT;
    hr_pusher_member_id("{\"user_id\":\"u1\",\"user_info\":{}}", "", &b);
    assert_int_equal(b.len, 2);
    b.len = 0;
    hr_pusher_member_id(NULL, "alice", &b);
    assert_memory_equal(b.data, "alice", 5);
    hr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_documented_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_full, setup, teardown),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_member_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
