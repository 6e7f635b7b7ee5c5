/* test_admin.c - the admin UI's session table (src/ops/admin.c): login with
 * the right and a wrong password (failures spend the address's auth-failure
 * budget, then the ban refuses even the right one), the CSRF token, the
 * connection credential, logout, admin.session_ttl, admin.max_sessions (the
 * oldest login goes), the reserved namespace test and the methods an admin
 * may run. Time is passed in,
 * so every case is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops/admin.h"
#include "ops/limits.h"
#include "server/config.h"
#include "server/opts.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define PW "s3cret"
#define T0 1000000ULL

static int login(hr_admin *a, hr_limits *l, uint32_t key, uint64_t now, const char *pw, hr_admin_session_ids *ids)
{
    uint32_t retry = 0;
    return hr_admin_login(a, l, key, now, pw, strlen(pw), ids, &retry);
}

static int check(hr_admin *a, const hr_admin_session_ids *ids, const char *csrf, uint64_t now)
{
    return hr_admin_check(a, ids->sid, strlen(ids->sid), csrf, csrf ? strlen(csrf) : 0, now);
}

static void test_login_csrf_token_logout(void **state)
{
    (void)state;
    hr_admin *a = hr_admin_new(PW, 60000, 4);
    hr_admin_session_ids ids, other;
    assert_int_equal(login(a, NULL, 0, T0, "s3cre", &ids), HR_ADMIN_E_PASSWORD);  /* a prefix */
    assert_int_equal(login(a, NULL, 0, T0, "s3cret!", &ids), HR_ADMIN_E_PASSWORD); /* longer */
    assert_int_equal(login(a, NULL, 0, T0, "", &ids), HR_ADMIN_E_PASSWORD);
    assert_int_equal(login(a, NULL, 0, T0, PW, &ids), HR_ADMIN_OK);
    assert_int_equal(strlen(ids.sid), 64);
    assert_int_equal(strlen(ids.csrf), 64);
    assert_string_not_equal(ids.sid, ids.csrf);
    assert_int_equal(check(a, &ids, ids.csrf, T0 + 1), HR_ADMIN_OK);
    assert_int_equal(check(a, &ids, NULL, T0 + 1), HR_ADMIN_OK);
    assert_int_equal(check(a, &ids, "", T0 + 1), HR_ADMIN_E_CSRF);
    assert_int_equal(check(a, &ids, ids.sid, T0 + 1), HR_ADMIN_E_CSRF);
    assert_int_equal(hr_admin_check(a, "nope", 4, ids.csrf, 64, T0 + 1), HR_ADMIN_E_SESSION);
    assert_int_equal(hr_admin_check(a, ids.sid, 63, ids.csrf, 64, T0 + 1), HR_ADMIN_E_SESSION); /* truncated */
    /* the credential: prefixed, verified while the session lives, distinct per session */
    char tok[HR_ADMIN_TOKEN_LEN + 1], tok2[HR_ADMIN_TOKEN_LEN + 1];
    assert_int_equal(hr_admin_token(a, ids.sid, strlen(ids.sid), T0 + 2, tok), HR_ADMIN_OK);
    assert_int_equal(strlen(tok), HR_ADMIN_TOKEN_LEN);
    assert_true(hr_admin_is_token(tok, strlen(tok)));
    assert_false(hr_admin_is_token("eyJhbGciOi", 10));
    assert_int_equal(hr_admin_verify_token(a, tok, strlen(tok), T0 + 3), HR_ADMIN_OK);
    assert_int_equal(login(a, NULL, 0, T0 + 4, PW, &other), HR_ADMIN_OK);
    assert_int_equal(hr_admin_token(a, other.sid, strlen(other.sid), T0 + 4, tok2), HR_ADMIN_OK);
    assert_string_not_equal(tok, tok2);
    tok[HR_ADMIN_TOKEN_LEN - 1] ^= 1;
    assert_int_equal(hr_admin_verify_token(a, tok, strlen(tok), T0 + 5), HR_ADMIN_E_SESSION);
    tok[HR_ADMIN_TOKEN_LEN - 1] ^= 1;
    assert_int_equal(hr_admin_verify_token(NULL, tok, strlen(tok), T0 + 5), HR_ADMIN_E_SESSION);
    /* logout ends the session and its credential, not the other one */
    hr_admin_logout(a, ids.sid, strlen(ids.sid));
    assert_int_equal(check(a, &ids, ids.csrf, T0 + 6), HR_ADMIN_E_SESSION);
    assert_int_equal(hr_admin_verify_token(a, tok, strlen(tok), T0 + 6), HR_ADMIN_E_SESSION);
    assert_int_equal(check(a, &other, other.csrf, T0 + 6), HR_ADMIN_OK);
    hr_admin_free(a);
}

static void test_ttl_and_max_sessions(void **state)
{
    (void)state;
    hr_admin *a = hr_admin_new(PW, 1000, 2);
    hr_admin_session_ids s1, s2, s3;
    char tok[HR_ADMIN_TOKEN_LEN + 1];
    assert_int_equal(login(a, NULL, 0, T0, PW, &s1), HR_ADMIN_OK);
    assert_int_equal(hr_admin_token(a, s1.sid, 64, T0, tok), HR_ADMIN_OK);
    assert_int_equal(check(a, &s1, s1.csrf, T0 + 999), HR_ADMIN_OK);
    assert_int_equal(check(a, &s1, s1.csrf, T0 + 1000), HR_ADMIN_E_SESSION); /* admin.session_ttl */
    assert_int_equal(hr_admin_verify_token(a, tok, strlen(tok), T0 + 1000), HR_ADMIN_E_SESSION);
    assert_int_equal(hr_admin_token(a, s1.sid, 64, T0 + 1000, tok), HR_ADMIN_E_SESSION);
    /* admin.max_sessions = 2: the third login ends the oldest */
    assert_int_equal(login(a, NULL, 0, T0 + 2000, PW, &s1), HR_ADMIN_OK);
    assert_int_equal(login(a, NULL, 0, T0 + 2001, PW, &s2), HR_ADMIN_OK);
    assert_int_equal(login(a, NULL, 0, T0 + 2002, PW, &s3), HR_ADMIN_OK);
    assert_int_equal(check(a, &s1, s1.csrf, T0 + 2003), HR_ADMIN_E_SESSION);
    assert_int_equal(check(a, &s2, s2.csrf, T0 + 2003), HR_ADMIN_OK);
    assert_int_equal(check(a, &s3, s3.csrf, T0 + 2003), HR_ADMIN_OK);
    hr_admin_free(a);
}

static void test_failed_logins_ban_the_address(void **state)
{
    (void)state;
    hr_config cfg;
    char err[256];
    hr_config_defaults(&cfg);
    assert_int_equal(hr_config_set(&cfg, "limits.auth_failures_per_ip", "2", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&cfg, "limits.auth_failure_ban", "5s", err, sizeof(err)), 0);
    hr_limits_opts o;
    hr_opts_limits(&cfg, &o);
    hr_limits *l = hr_limits_new(&o);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "198.51.100.7", &sa.sin_addr);
    uint32_t key = hr_limits_ip_key(l, (struct sockaddr *)&sa, sizeof(sa)), other = key + 1;
    hr_admin *a = hr_admin_new(PW, 60000, 4);
    hr_admin_session_ids ids;
    uint32_t retry = 0;
    assert_int_equal(login(a, l, key, T0, "x", &ids), HR_ADMIN_E_PASSWORD);
    assert_int_equal(hr_limits_ban_left(l, key, T0), 0);
    assert_int_equal(login(a, l, key, T0 + 1, "y", &ids), HR_ADMIN_E_PASSWORD);
    assert_int_equal(hr_admin_login(a, l, key, T0 + 2, PW, strlen(PW), &ids, &retry), HR_ADMIN_E_BANNED);
    assert_int_equal(retry, 4999);
    assert_int_equal(login(a, l, other, T0 + 2, PW, &ids), HR_ADMIN_OK); /* another address */
    assert_int_equal(login(a, l, key, T0 + 5001, PW, &ids), HR_ADMIN_OK); /* the ban is over */
    hr_admin_free(a);
    hr_limits_free(l);
    hr_config_free(&cfg);
}

static void test_reserved_namespace(void **state)
{
    (void)state;
    assert_true(hr_admin_reserved("$admin:stats", 12));
    assert_true(hr_admin_reserved("$admin:*", 8));
    assert_false(hr_admin_reserved("$admin", 6));
    assert_false(hr_admin_reserved("$adminx:stats", 13));
    assert_false(hr_admin_reserved("admin:stats", 11));
    assert_false(hr_admin_reserved("x.$admin:stats", 14));
    assert_true(hr_admin_may_call("publish", 7));
    assert_true(hr_admin_may_call("disconnect", 10));
    assert_false(hr_admin_may_call("history_remove", 14));
    assert_false(hr_admin_may_call("batch", 5));
    assert_false(hr_admin_may_call("publis", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_csrf_token_logout),
        cmocka_unit_test(test_ttl_and_max_sessions),
        cmocka_unit_test(test_failed_logins_ban_the_address),
        cmocka_unit_test(test_reserved_namespace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
