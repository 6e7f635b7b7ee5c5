/* test_auth.c - the server's token verifier (auth.c): key sets built from
 * the config, verification through the current snapshot, reload that keeps
 * the old keys on error, and the permission rules as tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/auth.h"
#include "server/config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define SECRET_A "secret-a-0123456789abcdefghijklmnopqrstuv"
#define SECRET_B "secret-b-0123456789abcdefghijklmnopqrstuv"

static char *sign(const char *secret, const char *kid, const char *payload)
{
    char *tok = NULL, err[256];
    assert_int_equal(hr_jwt_sign_hmac(HR_JWT_HS256, (const uint8_t *)secret, strlen(secret), kid, payload,
                                      strlen(payload), &tok, NULL, err, sizeof(err)),
                     0);
    return tok;
}

/* The verifier of a config, as the server builds it (server/config.c). */
static hr_auth *auth_of(const hr_config *c, char *err, size_t errlen)
{
    hr_auth_opts o;
    hr_config_auth_opts(c, &o);
    return hr_auth_new(&o, err, errlen);
}

static int reload_of(hr_auth *a, const hr_config *c, char *err, size_t errlen)
{
    hr_auth_opts o;
    hr_config_auth_opts(c, &o);
    return hr_auth_reload_from(a, &o, err, errlen);
}

static void test_disabled(void **state)
{
    (void)state;
    hr_config c;
    char err[256];
    hr_config_defaults(&c);
    hr_auth *a = auth_of(&c, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(hr_auth_key_count(a), 0);
    hr_jwt_claims cl;
    const char *why = NULL;
    char *tok = sign(SECRET_A, NULL, "{\"sub\":\"u\"}");
    assert_int_equal(hr_auth_verify(a, tok, strlen(tok), &cl, &why), HR_AUTH_ERR_DISABLED);
    assert_string_equal(why, "token authentication is not configured on this server");
    assert_int_equal(hr_auth_verify(NULL, tok, strlen(tok), &cl, &why), HR_AUTH_ERR_DISABLED);
    hr_free(tok);
    hr_auth_free(a);
    hr_config_free(&c);
}

static void test_verify_and_reload(void **state)
{
    (void)state;
    hr_config c;
    char err[256], payload[128];
    hr_config_defaults(&c);
    assert_int_equal(hr_config_set(&c, "auth.key.a.alg", "HS256", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&c, "auth.key.a.secret", SECRET_A, err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&c, "auth.audience", "app", err, sizeof(err)), 0);
    hr_auth *a = auth_of(&c, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(hr_auth_key_count(a), 1);
    long long now = (long long)time(NULL);
    snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"aud\":\"app\",\"exp\":%lld}", now + 60);
    char *ta = sign(SECRET_A, "a", payload), *tb = sign(SECRET_B, "b", payload);
    snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"aud\":\"app\",\"exp\":%lld}", now - 600);
    char *expired = sign(SECRET_A, "a", payload);
    snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"exp\":%lld}", now + 60);
    char *noaud = sign(SECRET_A, "a", payload);
    hr_jwt_claims cl;
    const char *why = NULL;
    assert_int_equal(hr_auth_verify(a, ta, strlen(ta), &cl, &why), 0);
    assert_string_equal(cl.sub, "alice");
    hr_jwt_claims_free(&cl);
    assert_int_equal(hr_auth_verify(a, tb, strlen(tb), &cl, &why), HR_JWT_ERR_NO_KEY);
    assert_int_equal(hr_auth_verify(a, expired, strlen(expired), &cl, &why), HR_JWT_ERR_EXPIRED);
    assert_int_equal(hr_auth_verify(a, noaud, strlen(noaud), &cl, &why), HR_JWT_ERR_CLAIMS);

    /* reload: b replaces a */
    hr_config d;
    hr_config_defaults(&d);
    assert_int_equal(hr_config_set(&d, "auth.key.b.alg", "HS256", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&d, "auth.key.b.secret", SECRET_B, err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&d, "auth.audience", "app", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&d, "auth.refresh_grace", "3s", err, sizeof(err)), 0);
    assert_int_equal(reload_of(a, &d, err, sizeof(err)), 0);
    assert_int_equal(hr_auth_verify(a, ta, strlen(ta), &cl, &why), HR_JWT_ERR_NO_KEY);
    assert_int_equal(hr_auth_verify(a, tb, strlen(tb), &cl, &why), 0);
    hr_jwt_claims_free(&cl);
    assert_int_equal(hr_auth_refresh_grace_ms(a), 3000);
    /* a broken key: refused, b stays */
    assert_int_equal(hr_config_set(&d, "auth.key.c.alg", "RS256", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&d, "auth.key.c.public_key_file", "/nonexistent/key.pem", err, sizeof(err)), 0);
    assert_int_not_equal(reload_of(a, &d, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "auth.key.c.public_key_file: cannot open /nonexistent/key.pem"));
    assert_int_equal(hr_auth_verify(a, tb, strlen(tb), &cl, &why), 0);
    hr_jwt_claims_free(&cl);
    /* a too short secret is named */
    hr_config e;
    hr_config_defaults(&e);
    assert_int_equal(hr_config_set(&e, "auth.key.s.alg", "HS256", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&e, "auth.key.s.secret", "short", err, sizeof(err)), 0);
    assert_null(auth_of(&e, err, sizeof(err)));
    assert_non_null(strstr(err, "auth.key.s.secret:"));
    hr_config_free(&e);
    hr_free(ta);
    hr_free(tb);
    hr_free(expired);
    hr_free(noaud);
    hr_config_free(&d);
    hr_auth_free(a);
    hr_config_free(&c);
}

static hr_chan_policy pol(int64_t sub, int64_t pub, int64_t hist, bool allow_publish, bool allow_anon)
{
    hr_chan_policy p = {0};
    p.subscribe = sub;
    p.publish = pub;
    p.history_for = hist;
    p.presence_for = hist;
    p.allow_publish = allow_publish;
    p.allow_anonymous = allow_anon;
    return p;
}

static void test_permissions(void **state)
{
    (void)state;
    enum { A = HR_PERM_ANYONE, U = HR_PERM_AUTHENTICATED, T = HR_PERM_TOKEN, S = HR_PERM_SUBSCRIBERS, N = HR_PERM_NONE };
    const char *d = NULL;
    /* subscribe: rule, allow_anonymous, authenticated, sub token -> allowed */
    static const struct { int64_t rule; bool anon_ok, authd, tok, want; } subs[] = {
        {A, true, false, false, true},  {A, false, false, false, false}, {A, false, true, false, true},
        {U, true, false, false, false}, {U, true, true, false, true},    {U, true, false, true, true},
        {T, true, true, false, false},  {T, true, false, true, true},    {T, true, true, true, true},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(subs); i++) {
        hr_chan_policy p = pol(subs[i].rule, A, A, true, subs[i].anon_ok);
        if (hr_perm_may_subscribe(&p, subs[i].authd, subs[i].tok, &d) != subs[i].want) fail_msg("subscribe case %zu", i);
    }
    /* publish: rule, allow_publish, authenticated, subscribed -> allowed */
    static const struct { int64_t rule; bool allow, authd, subd, want; } pubs[] = {
        {A, true, false, false, true},  {A, false, true, true, false},  {U, true, false, true, false},
        {U, true, true, false, true},   {S, true, true, false, false},  {S, true, false, true, true},
        {N, true, true, true, false},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(pubs); i++) {
        hr_chan_policy p = pol(A, pubs[i].rule, A, pubs[i].allow, true);
        if (hr_perm_may_publish(&p, pubs[i].authd, pubs[i].subd, &d) != pubs[i].want) fail_msg("publish case %zu", i);
    }
    /* history/presence: read rule, subscribe rule, authenticated, subscribed -> allowed */
    static const struct { int64_t rule, sub; bool authd, subd, want; } reads[] = {
        {A, A, false, false, true}, {A, T, true, false, false}, {A, T, true, true, true},
        {A, U, false, false, false}, {U, A, false, false, false}, {U, A, true, false, true},
        {S, A, true, false, false}, {S, A, false, true, true},  {N, A, true, true, false},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(reads); i++) {
        hr_chan_policy p = pol(reads[i].sub, A, reads[i].rule, true, true);
        if (hr_perm_may_read(&p, false, reads[i].authd, reads[i].subd, &d) != reads[i].want)
            fail_msg("history case %zu", i);
        if (hr_perm_may_read(&p, true, reads[i].authd, reads[i].subd, &d) != reads[i].want)
            fail_msg("presence case %zu", i);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_verify_and_reload),
        cmocka_unit_test(test_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
