/* test_proxy_codec.c - the proxy hooks' wire format (backend/proxy_codec.h):
 * each hook's request body, and a table of backend answers per hook with the
 * result or the error code each must give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/proxy_codec.h"

#include <stdio.h>
#include <string.h>

static void test_build(void **state)
{
    static const hr_proxy_header hdr[] = {{"Cookie", "sid=a\"b"}, {"Origin", "https://x"}};
    static const struct {
        hr_proxy_hook hook;
        hr_proxy_ctx ctx;
        const char *want; /* NULL: HR_PROXY_E_REQUEST */
    } cases[] = {
        {HR_HOOK_CONNECT, {.client = "c1", .transport = "websocket", .protocol = "json", .remote_addr = "10.0.0.1",
                           .headers = hdr, .nheaders = 2, .data = "{\"a\":1}", .data_len = 7},
         "{\"client\":\"c1\",\"transport\":\"websocket\",\"protocol\":\"json\",\"remote_addr\":\"10.0.0.1\","
         "\"headers\":{\"Cookie\":\"sid=a\\\"b\",\"Origin\":\"https://x\"},\"data\":{\"a\":1}}"},
        {HR_HOOK_REFRESH, {.client = "c1", .transport = "sse", .protocol = "json", .user = "u"},
         "{\"client\":\"c1\",\"transport\":\"sse\",\"protocol\":\"json\",\"user\":\"u\"}"},
        {HR_HOOK_SUBSCRIBE, {.client = "c1", .transport = "websocket", .protocol = "msgpack", .user = "", .channel = "chat:1"},
         "{\"client\":\"c1\",\"transport\":\"websocket\",\"protocol\":\"msgpack\",\"user\":\"\",\"channel\":\"chat:1\"}"},
        {HR_HOOK_PUBLISH, {.client = "c1", .transport = "websocket", .protocol = "json", .user = "u", .channel = "c",
                           .data = "\"hi\"", .data_len = 4},
         "{\"client\":\"c1\",\"transport\":\"websocket\",\"protocol\":\"json\",\"user\":\"u\",\"channel\":\"c\",\"data\":\"hi\"}"},
        {HR_HOOK_RPC, {.client = "c1", .transport = "long_poll", .protocol = "json", .user = "u", .method = "m.get"},
         "{\"client\":\"c1\",\"transport\":\"long_poll\",\"protocol\":\"json\",\"user\":\"u\",\"method\":\"m.get\"}"},
        {HR_HOOK_PUBLISH, {.client = "c1", .transport = "websocket", .protocol = "json", .user = "u"}, NULL},
        {HR_HOOK_RPC, {.client = "c1", .transport = "websocket", .protocol = "json", .user = "u"}, NULL},
        {HR_HOOK_REFRESH, {.client = "c1", .transport = "websocket", .protocol = "json"}, NULL},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_buf out = HR_BUF_INIT;
        int rc = hr_proxy_build(cases[i].hook, &cases[i].ctx, &out);
        if (!cases[i].want) {
            assert_int_equal(rc, HR_PROXY_E_REQUEST);
        } else {
            assert_int_equal(rc, 0);
            hr_buf_append(&out, "", 1);
            assert_string_equal((char *)out.data, cases[i].want);
        }
        hr_buf_free(&out);
    }
}

static void test_answers(void **state)
{
    static const struct {
        hr_proxy_hook hook;
        const char *body;
        int rc;
        hr_proxy_kind kind;
        uint32_t code;
    } cases[] = {
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"42\",\"expire_at\":1700000000,\"info\":{\"n\":\"A\"},\"channels\":[\"a\",\"b\"],\"data\":[1]}}", 0, HR_PROXY_RESULT, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"\"}}", 0, HR_PROXY_RESULT, 0},
        {HR_HOOK_CONNECT, "{\"result\":{}}", HR_PROXY_E_SHAPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":42}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"u\",\"expire_at\":-1}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"u\",\"expire_at\":1.5}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"u\",\"channels\":[\"\"]}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"u\",\"channels\":\"a\"}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"u\",\"bogus\":1}}", HR_PROXY_E_SHAPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"error\":{\"code\":1000,\"message\":\"no session\",\"temporary\":true}}", 0, HR_PROXY_ERROR, 1000},
        {HR_HOOK_CONNECT, "{\"error\":{\"code\":99}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"error\":{\"message\":\"x\"}}", HR_PROXY_E_SHAPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"disconnect\":{\"code\":4403,\"reason\":\"banned\"}}", 0, HR_PROXY_DISCONNECT, 4403},
        {HR_HOOK_CONNECT, "{\"disconnect\":{\"code\":1000}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"u\"},\"error\":{\"code\":400}}", HR_PROXY_E_SHAPE, 0, 0},
        {HR_HOOK_CONNECT, "{\"result\":{\"user\":\"u\",\"user\":\"v\"}}", HR_PROXY_E_JSON, 0, 0},
        {HR_HOOK_CONNECT, "<html>", HR_PROXY_E_JSON, 0, 0},
        {HR_HOOK_CONNECT, "[]", HR_PROXY_E_JSON, 0, 0},
        {HR_HOOK_CONNECT, "{}", HR_PROXY_E_SHAPE, 0, 0},
        {HR_HOOK_REFRESH, "{\"result\":{\"expire_at\":5,\"expired\":false,\"info\":null}}", 0, HR_PROXY_RESULT, 0},
        {HR_HOOK_REFRESH, "{\"result\":{\"user\":\"u\"}}", HR_PROXY_E_SHAPE, 0, 0},
        {HR_HOOK_REFRESH, "{\"result\":{\"expired\":1}}", HR_PROXY_E_TYPE, 0, 0},
        {HR_HOOK_SUBSCRIBE, "{\"result\":{}}", 0, HR_PROXY_RESULT, 0},
        {HR_HOOK_SUBSCRIBE, "{\"result\":{\"info\":{\"role\":\"mod\"}}}", 0, HR_PROXY_RESULT, 0},
        {HR_HOOK_SUBSCRIBE, "{\"error\":{\"code\":403,\"message\":\"denied\"}}", 0, HR_PROXY_ERROR, 403},
        {HR_HOOK_PUBLISH, "{\"result\":{\"data\":{\"text\":\"***\"}}}", 0, HR_PROXY_RESULT, 0},
        {HR_HOOK_PUBLISH, "{\"result\":{\"channels\":[]}}", HR_PROXY_E_SHAPE, 0, 0},
        {HR_HOOK_RPC, "{\"result\":{\"data\":42}}", 0, HR_PROXY_RESULT, 0},
        {HR_HOOK_RPC, "{\"result\":[]}", HR_PROXY_E_TYPE, 0, 0},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_proxy_answer a;
        char err[128] = "";
        int rc = hr_proxy_parse(cases[i].hook, cases[i].body, strlen(cases[i].body), NULL, &a, err, sizeof(err));
        if (rc != cases[i].rc) fprintf(stderr, "case %zu: %s -> %d (%s)\n", i, cases[i].body, rc, err);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(a.kind, cases[i].kind);
            assert_int_equal(a.code, cases[i].code);
        } else {
            assert_true(err[0] != '\0');
        }
        hr_proxy_answer_free(&a);
    }
}

static void test_connect_result_fields(void **state)
{
    const char *b = "{\"result\":{\"user\":\"42\",\"expire_at\":1700000000,\"info\":{\"n\":0.1},\"channels\":[\"a\",\"b\"],\"data\":[1]}}";
    hr_proxy_answer a;
    assert_int_equal(hr_proxy_parse(HR_HOOK_CONNECT, b, strlen(b), NULL, &a, NULL, 0), 0);
    assert_string_equal(a.user, "42");
    assert_int_equal(a.expire_at, 1700000000);
    assert_string_equal(a.info, "{\"n\":0.1}");
    assert_string_equal(a.data, "[1]");
    assert_int_equal(a.nchannels, 2);
    assert_string_equal(a.channels[1], "b");
    hr_proxy_answer_free(&a);
    const char *e = "{\"error\":{\"code\":1000,\"message\":\"no session\",\"temporary\":true}}";
    assert_int_equal(hr_proxy_parse(HR_HOOK_CONNECT, e, strlen(e), NULL, &a, NULL, 0), 0);
    assert_string_equal(a.message, "no session");
    assert_true(a.temporary);
    hr_proxy_answer_free(&a);
}

static void test_bounds(void **state)
{
    hr_proxy_limits lim;
    hr_proxy_limits_default(&lim);
    lim.max_answer_bytes = 64;
    lim.max_string = 8;
    lim.max_channels = 2;
    lim.max_depth = 3;
    static const struct { const char *body; int rc; } cases[] = {
        {"{\"result\":{\"user\":\"12345678\"}}", 0},
        {"{\"result\":{\"user\":\"123456789\"}}", HR_PROXY_E_TOO_BIG},
        {"{\"result\":{\"user\":\"u\",\"channels\":[\"a\",\"b\",\"c\"]}}", HR_PROXY_E_TOO_BIG},
        {"{\"result\":{\"user\":\"u\",\"info\":[[[1]]]}}", 0},
        {"{\"result\":{\"user\":\"u\",\"info\":[[[[1]]]]}}", HR_PROXY_E_TOO_BIG},
        {"{\"result\":{\"user\":\"u\",\"data\":\"0123456789012345678901234567890123456789\"}}", HR_PROXY_E_TOO_BIG},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_proxy_answer a;
        assert_int_equal(hr_proxy_parse(HR_HOOK_CONNECT, cases[i].body, strlen(cases[i].body), &lim, &a, NULL, 0),
                         cases[i].rc);
        hr_proxy_answer_free(&a);
    }
    char reason[200];
    snprintf(reason, sizeof(reason), "{\"disconnect\":{\"code\":4000,\"reason\":\"%0124d\"}}", 0);
    hr_proxy_answer a;
    assert_int_equal(hr_proxy_parse(HR_HOOK_CONNECT, reason, strlen(reason), NULL, &a, NULL, 0), HR_PROXY_E_TOO_BIG);
    hr_proxy_answer_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_connect_result_fields),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
