/* test_resp.c - the RESP codec (codec/resp.h): tables of RESP2 and RESP3
 * replies, incomplete input at every cut, malformed input, limits, and the
 * command serializer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec/resp.h"

#include <string.h>

static hr_resp *parse_all(const char *in, int *rc, size_t *used)
{
    hr_resp *r = NULL;
    *rc = hr_resp_parse((const uint8_t *)in, strlen(in), NULL, &r, used);
    return r;
}

static void test_scalars(void **state)
{
    (void)state;
    int rc;
    size_t used;
    hr_resp *r = parse_all("+OK\r\n", &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(used, 5);
    assert_int_equal(r->type, HR_RESP_SIMPLE);
    assert_true(hr_resp_eq(r, "OK"));
    hr_resp_free(r);

    r = parse_all("-NOSCRIPT No matching script\r\n", &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(r->type, HR_RESP_ERROR);
    assert_int_equal(r->len, strlen("NOSCRIPT No matching script"));
    hr_resp_free(r);

    r = parse_all(":-9223372036854775808\r\n", &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(r->type, HR_RESP_INT);
    assert_true(r->integer == INT64_MIN);
    hr_resp_free(r);

    r = parse_all("$5\r\nab\r\nc\r\n", &rc, &used); /* binary-safe: CRLF inside */
    assert_int_equal(rc, 0);
    assert_int_equal(r->type, HR_RESP_BULK);
    assert_int_equal(r->len, 5);
    assert_memory_equal(r->str, "ab\r\nc", 5);
    hr_resp_free(r);

    static const char *nils[] = {"$-1\r\n", "*-1\r\n", "_\r\n"};
    for (size_t i = 0; i < 3; i++) {
        r = parse_all(nils[i], &rc, &used);
        assert_int_equal(rc, 0);
        assert_int_equal(r->type, HR_RESP_NIL);
        hr_resp_free(r);
    }
    r = parse_all("#t\r\n", &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(r->type, HR_RESP_BOOL);
    assert_int_equal(r->integer, 1);
    hr_resp_free(r);
    r = parse_all(",3.14\r\n", &rc, &used);
    assert_int_equal(r->type, HR_RESP_DOUBLE);
    hr_resp_free(r);
    r = parse_all("(3492890328409238509324850943850943825024385\r\n", &rc, &used);
    assert_int_equal(r->type, HR_RESP_BIGNUM);
    hr_resp_free(r);
    r = parse_all("=15\r\ntxt:Some string\r\n", &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(r->type, HR_RESP_BULK);
    assert_int_equal(r->len, 11);
    assert_memory_equal(r->str, "Some string", 11);
    hr_resp_free(r);
    r = parse_all("!21\r\nSYNTAX invalid syntax\r\n", &rc, &used);
    assert_int_equal(r->type, HR_RESP_ERROR);
    hr_resp_free(r);
}

static void test_aggregates(void **state)
{
    (void)state;
    int rc;
    size_t used;
    const char *in = "*3\r\n:1\r\n*2\r\n$3\r\nfoo\r\n_\r\n+x\r\n";
    hr_resp *r = parse_all(in, &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(used, strlen(in));
    assert_int_equal(r->type, HR_RESP_ARRAY);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->elem[0].integer, 1);
    assert_int_equal(r->elem[1].n, 2);
    assert_true(hr_resp_eq(&r->elem[1].elem[0], "foo"));
    assert_int_equal(r->elem[1].elem[1].type, HR_RESP_NIL);
    assert_true(hr_resp_eq(&r->elem[2], "x"));
    hr_resp_free(r);

    in = "%2\r\n+server\r\n$5\r\nredis\r\n+proto\r\n:3\r\n";
    r = parse_all(in, &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(r->type, HR_RESP_MAP);
    assert_int_equal(r->n, 2);
    assert_true(hr_resp_eq(&r->elem[2], "proto"));
    assert_int_equal(r->elem[3].integer, 3);
    hr_resp_free(r);

    in = ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\ndata\r\n";
    r = parse_all(in, &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(r->type, HR_RESP_PUSH);
    assert_true(hr_resp_eq(&r->elem[0], "message"));
    hr_resp_free(r);

    in = "~2\r\n:1\r\n:2\r\n";
    r = parse_all(in, &rc, &used);
    assert_int_equal(r->type, HR_RESP_ARRAY);
    assert_int_equal(r->n, 2);
    hr_resp_free(r);

    /* an attribute is dropped, the value after it returned */
    in = "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:7\r\n";
    r = parse_all(in, &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(used, strlen(in));
    assert_int_equal(r->type, HR_RESP_ARRAY);
    assert_int_equal(r->elem[0].integer, 7);
    hr_resp_free(r);

    in = "*0\r\n";
    r = parse_all(in, &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(r->n, 0);
    hr_resp_free(r);
}

/* Two pipelined replies: the first is taken, the rest left. */
static void test_pipelined(void **state)
{
    (void)state;
    int rc;
    size_t used;
    hr_resp *r = parse_all(":1\r\n:2\r\n", &rc, &used);
    assert_int_equal(rc, 0);
    assert_int_equal(used, 4);
    hr_resp_free(r);
}

/* Every proper prefix of a valid reply is incomplete, never an error. */
static void test_incomplete(void **state)
{
    (void)state;
    static const char *cases[] = {
        "+OK\r\n",
        "$5\r\nab\r\nc\r\n",
        "*3\r\n:1\r\n*2\r\n$3\r\nfoo\r\n_\r\n+x\r\n",
        "%1\r\n+a\r\n>2\r\n$1\r\nb\r\n#f\r\n",
        "|1\r\n+k\r\n+v\r\n:5\r\n",
        "=8\r\ntxt:abcd\r\n",
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        size_t n = strlen(cases[i]);
        for (size_t cut = 0; cut < n; cut++) {
            hr_resp *r = NULL;
            size_t used = 0;
            int rc = hr_resp_parse((const uint8_t *)cases[i], cut, NULL, &r, &used);
            if (rc != HR_ERR_AGAIN) fail_msg("case %zu cut %zu: rc %d", i, cut, rc);
        }
    }
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *cases[] = {
        "?x\r\n",         /* unknown type */
        ":12a\r\n",       /* bad integer */
        ":\r\n",
        ":99999999999999999999\r\n", /* overflow */
        "$-2\r\n",
        "$3\r\nabcd\r\n", /* length mismatch */
        "+OK\rX",         /* CR not followed by LF */
        "#x\r\n",
        "_x\r\n",
        "*-2\r\n",
        "=2\r\nab\r\n",   /* verbatim without format */
        ",\r\n",
        "%-1\r\n",
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_resp *r = NULL;
        size_t used = 0;
        int rc = hr_resp_parse((const uint8_t *)cases[i], strlen(cases[i]), NULL, &r, &used);
        if (rc != HR_ERR_PROTO) fail_msg("case %zu (%s): rc %d", i, cases[i], rc);
    }
}

static void test_limits(void **state)
{
    (void)state;
    hr_resp_limits lim = {2, 4, 3};
    hr_resp *r = NULL;
    size_t used;
    const char *deep = "*1\r\n*1\r\n*1\r\n:1\r\n";
    assert_int_equal(hr_resp_parse((const uint8_t *)deep, strlen(deep), &lim, &r, &used), HR_ERR_TOO_BIG);
    const char *big = "$5\r\nabcde\r\n";
    assert_int_equal(hr_resp_parse((const uint8_t *)big, strlen(big), &lim, &r, &used), HR_ERR_TOO_BIG);
    const char *many = "*4\r\n:1\r\n:1\r\n:1\r\n:1\r\n";
    assert_int_equal(hr_resp_parse((const uint8_t *)many, strlen(many), &lim, &r, &used), HR_ERR_TOO_BIG);
    /* a huge declared count is refused before any allocation */
    const char *huge = "*1000000000000\r\n";
    assert_int_equal(hr_resp_parse((const uint8_t *)huge, strlen(huge), NULL, &r, &used), HR_ERR_TOO_BIG);
    const char *ok = "*2\r\n$4\r\nabcd\r\n:1\r\n";
    assert_int_equal(hr_resp_parse((const uint8_t *)ok, strlen(ok), &lim, &r, &used), 0);
    hr_resp_free(r);
}

static void test_serialize(void **state)
{
    (void)state;
    hr_buf b = HR_BUF_INIT;
    hr_resp_cmdv(&b, "SET", "k", "", NULL);
    const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    b.len = 0;
    const char *argv[] = {"PUBLISH", "a\r\nb"};
    size_t lens[] = {7, 4};
    hr_resp_cmd(&b, 2, argv, lens);
    want = "*2\r\n$7\r\nPUBLISH\r\n$4\r\na\r\nb\r\n";
    assert_memory_equal(b.data, want, strlen(want));
    /* what the serializer writes, the parser reads back */
    hr_resp *r = NULL;
    size_t used;
    assert_int_equal(hr_resp_parse(b.data, b.len, NULL, &r, &used), 0);
    assert_int_equal(r->n, 2);
    assert_memory_equal(r->elem[1].str, "a\r\nb", 4);
    hr_resp_free(r);
    /* in pieces, with lengths of several digits */
    b.len = 0;
    hr_resp_cmd_head(&b, 12);
    hr_resp_cmd_arg_head(&b, 1234);
    hr_resp_cmd_arg(&b, "", 0);
    want = "*12\r\n$1234\r\n$0\r\n\r\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    hr_buf_free(&b);
}

static void test_helpers(void **state)
{
    (void)state;
    hr_resp r = {.type = HR_RESP_BULK, .str = "-42", .len = 3};
    int64_t v = 0;
    assert_int_equal(hr_resp_int(&r, &v), 0);
    assert_true(v == -42);
    r.str = "4x";
    r.len = 2;
    assert_int_equal(hr_resp_int(&r, &v), HR_ERR_INVALID);
    hr_resp nil = {.type = HR_RESP_NIL};
    assert_false(hr_resp_eq(&nil, ""));
}

/* The pub/sub fast path: the two shapes whole, and false (left to
 * hr_resp_parse) for anything else, a cut or a limit included. */
static void test_message(void **state)
{
    (void)state;
    hr_resp_message m;
    size_t used = 0;
    const char *msg = ">3\r\n$7\r\nmessage\r\n$6\r\nP:c:ab\r\n$5\r\nhello\r\n+OK\r\n";
    size_t whole = strlen(msg) - 5;
    assert_true(hr_resp_parse_message((const uint8_t *)msg, strlen(msg), NULL, &m, &used));
    assert_int_equal(used, whole);
    assert_null(m.pattern);
    assert_int_equal(m.channel_len, 6);
    assert_memory_equal(m.channel, "P:c:ab", 6);
    assert_int_equal(m.data_len, 5);
    assert_memory_equal(m.data, "hello", 5);
    for (size_t cut = 0; cut < whole; cut++) /* incomplete: not taken */
        assert_false(hr_resp_parse_message((const uint8_t *)msg, cut, NULL, &m, &used));

    const char *pm = ">4\r\n$8\r\npmessage\r\n$3\r\nP:*\r\n$4\r\nP:cx\r\n$0\r\n\r\n";
    assert_true(hr_resp_parse_message((const uint8_t *)pm, strlen(pm), NULL, &m, &used));
    assert_int_equal(used, strlen(pm));
    assert_int_equal(m.pattern_len, 3);
    assert_memory_equal(m.pattern, "P:*", 3);
    assert_int_equal(m.channel_len, 4);
    assert_int_equal(m.data_len, 0);

    static const char *const others[] = {
        ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", /* a confirmation */
        "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n",  /* RESP2 array */
        ">3\r\n$7\r\nmessage\r\n+a\r\n$1\r\nb\r\n",      /* a simple string */
        ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$-1\r\n",     /* nil */
        ">3\r\n$7\r\nmessage\r\n$1\r\nab\r\n$1\r\nb\r\n", /* length wrong */
        ">3\r\n$7\r\nmessage\r\n$+1\r\na\r\n$1\r\nb\r\n", /* a sign */
        ">3\r\n$7\r\nmessage\r\n$12345678901\r\n",          /* 11 digits */
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        assert_false(hr_resp_parse_message((const uint8_t *)others[i], strlen(others[i]), NULL, &m, &used));
    hr_resp_limits lim = {16, 4, 100};
    assert_false(hr_resp_parse_message((const uint8_t *)msg, strlen(msg), &lim, &m, &used)); /* "hello" > 4 */
    lim.max_bulk = 8;
    assert_true(hr_resp_parse_message((const uint8_t *)msg, strlen(msg), &lim, &m, &used));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),   cmocka_unit_test(test_aggregates), cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_incomplete), cmocka_unit_test(test_malformed), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_serialize), cmocka_unit_test(test_helpers), cmocka_unit_test(test_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
