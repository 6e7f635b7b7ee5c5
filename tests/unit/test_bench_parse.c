/* test_bench_parse.c - the bench's parsers and its command line: payload
 * build / fast parse / fallback, HTTP response heads, SSE streams (split
 * anywhere, every line ending, multi-line data), percent-encoding, and
 * `herald bench` flags (forms, defaults, scenarios, usage errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bench/bench.h"
#include "bench/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- payload ---------------------------------------------------------------------- */

static void test_payload_roundtrip(void **state)
{
    (void)state;
    static const uint64_t ts[] = {0, 1, 999, 1234567890123456789ull};
    static const uint64_t cs[] = {0, 7, 99999};
    static const uint64_t ss[] = {0, 1, 18446744073709551ull};
    static const size_t targets[] = {0, 10, 40, 64, 1024, 65536};
    char *buf = malloc(70000);
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 3; c++)
                for (size_t d = 0; d < 6; d++) {
                    size_t min = hr_bench_payload_min_len(ts[a], cs[b], ss[c]);
                    size_t n = hr_bench_payload_build(buf, 70000, ts[a], cs[b], ss[c], targets[d]);
                    assert_int_equal(n, targets[d] > min ? targets[d] : min);
                    assert_int_equal(buf[0], '{');
                    assert_int_equal(buf[n - 1], '}');
                    assert_int_equal(buf[n - 2], '"');
                    uint64_t t, ch, s;
                    assert_true(hr_bench_payload_parse((uint8_t *)buf, n, &t, &ch, &s));
                    assert_int_equal(t, ts[a]);
                    assert_int_equal(ch, cs[b]);
                    assert_int_equal(s, ss[c]);
                }
    const char *want = "{\"t\":12,\"c\":3,\"s\":4,\"p\":\"xxxx\"}";
    size_t n = hr_bench_payload_build(buf, 100, 12, 3, 4, strlen(want));
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(hr_bench_payload_build(buf, 10, 12, 3, 4, 0), 0); /* does not fit */
    free(buf);
}

static bool parse_str(const char *s, uint64_t *t, uint64_t *c, uint64_t *q)
{
    return hr_bench_payload_parse((const uint8_t *)s, strlen(s), t, c, q);
}

static void test_payload_fallback(void **state)
{
    (void)state;
    uint64_t t, c, s;
    /* other member order and whitespace (a server that re-serializes differently) */
    assert_true(parse_str("{ \"p\": \"xx\", \"s\" : 5, \"c\":2 , \"t\": 77 }", &t, &c, &s));
    assert_int_equal(t, 77);
    assert_int_equal(c, 2);
    assert_int_equal(s, 5);
    /* a key that looks right but is not followed by a number is skipped */
    assert_true(parse_str("{\"t\":\"x\",\"c\":1,\"s\":2,\"t\":9}", &t, &c, &s));
    assert_int_equal(t, 9);
    /* missing, negative, too long */
    assert_false(parse_str("{\"t\":1,\"c\":2}", &t, &c, &s));
    assert_false(parse_str("{\"t\":-1,\"c\":2,\"s\":3}", &t, &c, &s));
    assert_false(parse_str("{\"t\":12345678901234567890,\"c\":2,\"s\":3}", &t, &c, &s));
    assert_false(parse_str("", &t, &c, &s));
    assert_false(parse_str("hello", &t, &c, &s));
    /* truncated fast path */
    assert_false(parse_str("{\"t\":1,\"c\":", &t, &c, &s));
}

/* ---- HTTP responses ------------------------------------------------------------------ */

static void test_response_heads(void **state)
{
    (void)state;
    hr_bench_resp r;
    const char *ws = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
    assert_int_equal(hr_bench_parse_response(ws, strlen(ws), &r), 1);
    assert_int_equal(r.status, 101);
    assert_int_equal(r.head_len, strlen(ws) - 4);
    assert_int_equal(r.content_length, -1);
    const char *v;
    size_t vn;
    assert_true(hr_bench_header(ws, r.head_len, "sec-websocket-accept", &v, &vn));
    assert_int_equal(vn, 28);
    assert_memory_equal(v, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28);
    assert_false(hr_bench_header(ws, r.head_len, "content-type", &v, &vn));
    for (size_t cut = 0; cut < strlen(ws) - 4; cut++) /* every prefix of the head is incomplete */
        assert_true(hr_bench_parse_response(ws, cut, &r) <= 0);

    const char *api = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length:  27 \r\n"
                      "Connection: keep-alive, close\r\n\r\n{\"offset\":1,\"epoch\":\"abc\"}";
    assert_int_equal(hr_bench_parse_response(api, strlen(api), &r), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 27);
    assert_true(r.conn_close);
    assert_false(r.chunked);

    const char *lf = "HTTP/1.0 202 Accepted\nTransfer-Encoding: gzip, Chunked\n\n5\r\nhello";
    assert_int_equal(hr_bench_parse_response(lf, strlen(lf), &r), 1);
    assert_int_equal(r.status, 202);
    assert_true(r.chunked);
    assert_int_equal(r.head_len, (size_t)(strstr(lf, "5\r\n") - lf));

    static const char *const bad[] = {
        "SSH-2.0-OpenSSH\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hr_bench_parse_response(bad[i], strlen(bad[i]), &r), HR_ERR_PROTO);
    assert_int_equal(hr_bench_parse_response("HTTP/1.1 200 OK\r\n", 17, &r), 0);
}

static void test_has_token(void **state)
{
    (void)state;
    assert_true(hr_bench_has_token("close", 5, "close"));
    assert_true(hr_bench_has_token("keep-alive, Close", 17, "close"));
    assert_true(hr_bench_has_token(" Upgrade ,x", 11, "upgrade"));
    assert_false(hr_bench_has_token("closed", 6, "close"));
    assert_false(hr_bench_has_token("", 0, "close"));
}

/* ---- SSE ----------------------------------------------------------------------------- */

typedef struct events {
    char got[16][64];
    int n;
} events;

static void on_event(void *ctx, const uint8_t *data, size_t len)
{
    events *e = ctx;
    assert_true(e->n < 16 && len < 64);
    memcpy(e->got[e->n], data, len);
    e->got[e->n][len] = '\0';
    e->n++;
}

/* Feed `s` split at every position pair, the way a socket may deliver it. */
static void sse_check(const char *s, const char *const *want, int nwant)
{
    size_t len = strlen(s);
    for (size_t cut = 0; cut <= len; cut++) {
        events e = {.n = 0};
        hr_buf scratch = HR_BUF_INIT, pending = HR_BUF_INIT;
        hr_buf_append(&pending, s, cut);
        size_t used = hr_bench_sse_parse(pending.data, pending.len, on_event, &e, &scratch);
        hr_buf_consume(&pending, used);
        hr_buf_append(&pending, s + cut, len - cut);
        used = hr_bench_sse_parse(pending.data, pending.len, on_event, &e, &scratch);
        hr_buf_consume(&pending, used);
        assert_int_equal(e.n, nwant);
        for (int i = 0; i < nwant; i++) assert_string_equal(e.got[i], want[i]);
        hr_buf_free(&scratch);
        hr_buf_free(&pending);
    }
}

static void test_sse(void **state)
{
    (void)state;
    const char *one[] = {"{\"t\":1}"};
    sse_check(": hi\n\ndata: {\"t\":1}\n\n", one, 1);
    sse_check("id: 5:3\r\nevent: message\r\ndata: {\"t\":1}\r\n\r\n", one, 1);
    sse_check("data:{\"t\":1}\r\rdata: partial", one, 1); /* CR line ends; the last event is incomplete */
    const char *two[] = {"a\nb", ""};
    sse_check("data: a\ndata: b\n\ndata\n\nretry: 10\n\n", two, 2);
    /* named events are not messages (Herald's "event: connected" first) */
    const char *named[] = {"{\"t\":1}", "m2", "m3"};
    sse_check(":ok\nretry: 2000\n\nevent: connected\nid: e:0\ndata: {\"client\":\"ab\"}\n\n"
              "id: e:1\ndata: {\"t\":1}\n\nevent: message\ndata: m2\n\nevent:\ndata: m3\n\n"
              "data: x\nevent: join\n\n",
              named, 3);
    const char *three[] = {"x", "y", "  z"};
    sse_check("data: x\n\ndata: y\n\ndata:   z\n\n", three, 3);

    /* what is consumed: only whole events; a final CR waits for a possible LF */
    events e = {.n = 0};
    hr_buf scratch = HR_BUF_INIT;
    const char *s = "data: x\n\ndata: y\r\n\r";
    size_t used = hr_bench_sse_parse((const uint8_t *)s, strlen(s), on_event, &e, &scratch);
    assert_int_equal(used, 9);
    assert_int_equal(e.n, 1);
    hr_buf_free(&scratch);
}

static void test_urlencode(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(hr_bench_urlencode("bench-0", out, sizeof(out)), 7);
    assert_string_equal(out, "bench-0");
    hr_bench_urlencode("chat:lobby#a,b %", out, sizeof(out));
    assert_string_equal(out, "chat%3Alobby%23a%2Cb%20%25");
    assert_int_equal(hr_bench_urlencode("abc", out, 3), 0); /* no room for the NUL */
    assert_int_equal(hr_bench_urlencode(":", out, 3), 0);
}

/* ---- command line ------------------------------------------------------------------------ */

static int parse(hr_bench_opts *o, char *err, const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"bench";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    return hr_bench_parse_args(o, argc, argv, 1, err, 300);
}

static void test_opts(void **state)
{
    (void)state;
    hr_bench_opts o;
    char err[300];
    unsetenv("HERALD_API_KEY");
    assert_int_equal(parse(&o, err, "--api-key", "k", NULL), 0);
    assert_int_equal(o.server, HR_BENCH_HERALD);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8080);
    assert_int_equal(o.subscribers, 100);
    assert_int_equal(o.channels, 1);
    assert_int_equal(o.threads, 1);
    assert_string_equal(o.scenario, "custom");
    assert_true(hr_bench_timeout(&o) > o.duration + o.warmup);

    assert_int_equal(parse(&o, err, "--server=nchan", "--port", "9000", "--subscribers=5000", "--channels", "10",
                           "--channel-prefix=room", "--connect-rate", "500", "--source-ips=4", "--publish-rate",
                           "250.5", "--publishers", "3", "--payload-bytes=1024", "--publish-via", "ws",
                           "--duration=30s", "--warmup", "500ms", "--churn", "10", "--threads=2", "--json", "-",
                           "--quiet", "--timeout=90", "--transport", "sse", NULL),
                     0);
    assert_int_equal(o.server, HR_BENCH_NCHAN);
    assert_int_equal(o.port, 9000);
    assert_int_equal(o.subscribers, 5000);
    assert_int_equal(o.channels, 10);
    assert_string_equal(o.prefix, "room");
    assert_true(o.connect_rate == 500);
    assert_int_equal(o.source_ips, 4);
    assert_true(o.publish_rate == 250.5);
    assert_int_equal(o.publishers, 3);
    assert_int_equal(o.payload_bytes, 1024);
    assert_int_equal(o.publish_via, HR_BENCH_VIA_WS);
    assert_true(o.duration == 30);
    assert_true(o.warmup == 0.5);
    assert_true(o.churn == 10);
    assert_int_equal(o.threads, 2);
    assert_true(o.json_stdout);
    assert_string_equal(o.json_path, "");
    assert_true(o.quiet);
    assert_true(hr_bench_timeout(&o) == 90);
    assert_int_equal(o.transport, HR_BENCH_SSE);

    /* the API key may come from the environment */
    setenv("HERALD_API_KEY", "from-env", 1);
    assert_int_equal(parse(&o, err, NULL), 0);
    assert_string_equal(o.api_key, "from-env");
    assert_int_equal(parse(&o, err, "--api-key=flag", NULL), 0);
    assert_string_equal(o.api_key, "flag");
    unsetenv("HERALD_API_KEY");

    assert_int_equal(parse(&o, err, "--json", "out.json", "--json=-", "--publish-rate", "0", NULL), 0);
    assert_true(o.json_stdout);
    assert_string_equal(o.json_path, "out.json");
    assert_int_equal(parse(&o, err, "--help", NULL), 3);
    assert_int_equal(parse(&o, err, "--api-key", "k", "--help", NULL), 3);
}

static void test_opts_scenarios(void **state)
{
    (void)state;
    hr_bench_opts o;
    char err[300];
    assert_int_equal(parse(&o, err, "--subscribers", "50", "--scenario", "idle", NULL), 0);
    assert_string_equal(o.scenario, "idle");
    assert_int_equal(o.subscribers, 50); /* the flag wins, wherever it is */
    assert_true(o.publish_rate == 0);
    assert_int_equal(o.channels, 100);
    assert_int_equal(parse(&o, err, "--scenario=chat", NULL), 0);
    assert_int_equal(o.publish_via, HR_BENCH_VIA_WS);
    assert_int_equal(parse(&o, err, "--scenario", "storm", "--api-key", "k", NULL), 0);
    assert_true(o.churn > 0);
    assert_int_equal(parse(&o, err, "--scenario", "my-own-label", "--api-key", "k", NULL), 0);
    assert_string_equal(o.scenario, "my-own-label");
    assert_int_equal(o.subscribers, 100);
}

static void expect_usage_error(const char *what, int rc, const char *err)
{
    if (rc != 2) {
        fprintf(stderr, "%s: expected a usage error, got %d\n", what, rc);
        fail();
    }
    assert_true(err[0] != '\0');
}

static void test_opts_errors(void **state)
{
    (void)state;
    hr_bench_opts o;
    char err[300];
    unsetenv("HERALD_API_KEY");
    err[0] = '\0';
#define BAD(...) expect_usage_error(#__VA_ARGS__, parse(&o, err, __VA_ARGS__, NULL), err)
    BAD("--nope");
    BAD("--subscribers");           /* no value */
    BAD("--subscribers", "0");
    BAD("--subscribers", "ten");
    BAD("--subscribers", "-5");
    BAD("--port", "70000");
    BAD("--server", "apache");
    BAD("--transport", "poll");
    BAD("--publish-via", "redis");
    BAD("--duration", "0");
    BAD("--duration", "5x");
    BAD("--warmup", "-1");
    BAD("--publish-rate", "nan");
    BAD("--threads", "0");
    BAD("--quiet=maybe");
    BAD("positional");
    BAD("-s");
    BAD("--publish-rate", "10");     /* Herald's API needs a key */
    BAD("--server", "ws-node", "--publish-via", "ws");
    BAD("--server", "nchan", "--channel-prefix", "a-b");
    BAD("--channel-prefix", "a b", "--publish-rate", "0");
    BAD("--channel-prefix", "a*", "--publish-rate", "0");
    BAD("--source-ips", "2", "--host", "10.0.0.1", "--publish-rate", "0");
    BAD("--publish-via", "ws", "--transport", "sse");
    BAD("--publish-via", "ws", "--channels", "10", "--subscribers", "5");
#undef BAD
    /* not errors */
    assert_int_equal(parse(&o, err, "--publish-rate", "0", NULL), 0);
    assert_int_equal(parse(&o, err, "--server", "ws-node", "--channel-prefix", "a_B9", NULL), 0);
    assert_int_equal(parse(&o, err, "--channel-prefix", "chat:room.x", "--publish-rate", "0", NULL), 0);
    assert_int_equal(parse(&o, err, "--quiet=false", "--publish-rate", "0", NULL), 0);
    assert_false(o.quiet);
}

/* --transport pusher: the payload out of an event's data string; the
 * subscription's answer; other pusher: events and oversize data ignored. */
static void test_pusher_msg(void **state)
{
    (void)state;
    char out[64];
    size_t n = 0;
    const char *ev = "{\"event\":\"message\",\"channel\":\"bench-0\",\"data\":\"{\\\"t\\\":1,\\\"c\\\":0,"
                     "\\\"s\\\":2,\\\"p\\\":\\\"x\\\\\\\"}\"}";
    assert_int_equal(hr_bench_pusher_msg((const uint8_t *)ev, strlen(ev), out, sizeof(out), &n), 1);
    assert_int_equal(n, strlen("{\"t\":1,\"c\":0,\"s\":2,\"p\":\"x\\\"}"));
    assert_memory_equal(out, "{\"t\":1,\"c\":0,\"s\":2,\"p\":\"x\\\"}", n);
    uint64_t t, c, s;
    assert_true(hr_bench_payload_parse((const uint8_t *)out, n, &t, &c, &s));
    assert_int_equal(s, 2);
    const char *ok = "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"bench-0\",\"data\":\"{}\"}";
    assert_int_equal(hr_bench_pusher_msg((const uint8_t *)ok, strlen(ok), out, sizeof(out), &n), 2);
    const char *est = "{\"event\":\"pusher:connection_established\",\"data\":\"{}\"}";
    assert_int_equal(hr_bench_pusher_msg((const uint8_t *)est, strlen(est), out, sizeof(out), &n), 0);
    assert_int_equal(hr_bench_pusher_msg((const uint8_t *)ev, strlen(ev), out, 8, &n), 0); /* too big for out */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_roundtrip), cmocka_unit_test(test_payload_fallback),
        cmocka_unit_test(test_response_heads),    cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_sse),               cmocka_unit_test(test_urlencode),
        cmocka_unit_test(test_opts),              cmocka_unit_test(test_opts_scenarios),
        cmocka_unit_test(test_opts_errors),       cmocka_unit_test(test_pusher_msg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
