/* test_config.c - config file (TOML subset) parsing with line/key errors,
 * size and duration syntax, env and flag lookup, validation, and that
 * docs/config.md documents every option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"
#include "server/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_sizes(void **state)
{
    (void)state;
    static const struct { const char *in; int64_t out; int rc; } cases[] = {
        {"0", 0, 0}, {"1024", 1024, 0}, {"16KiB", 16384, 0}, {"16kib", 16384, 0}, {"1MiB", 1048576, 0},
        {"1 MiB", 1048576, 0}, {"2GiB", 2147483648LL, 0}, {"1MB", 1000000, 0}, {"1k", 1024, 0},
        {"1.5KiB", 1536, 0}, {"", 0, HR_ERR_INVALID}, {"abc", 0, HR_ERR_INVALID}, {"-1", 0, HR_ERR_INVALID},
        {"1XB", 0, HR_ERR_INVALID}, {"0.3", 0, HR_ERR_INVALID}, {"99999999999GiB", 0, HR_ERR_INVALID},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        int64_t v = -7;
        int rc = hr_parse_size(cases[i].in, &v);
        assert_int_equal(rc, cases[i].rc);
        if (!rc) assert_int_equal(v, cases[i].out);
    }
}

static void test_durations(void **state)
{
    (void)state;
    static const struct { const char *in; int64_t out; int rc; } cases[] = {
        {"10s", 10000, 0}, {"10", 10000, 0}, {"0.5", 500, 0}, {"500ms", 500, 0}, {"5m", 300000, 0},
        {"1h", 3600000, 0}, {"2min", 120000, 0}, {"0", 0, 0}, {"", 0, HR_ERR_INVALID},
        {"10 parsecs", 0, HR_ERR_INVALID}, {"-5s", 0, HR_ERR_INVALID}, {"s", 0, HR_ERR_INVALID},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        int64_t v = -7;
        int rc = hr_parse_duration(cases[i].in, &v);
        assert_int_equal(rc, cases[i].rc);
        if (!rc) assert_int_equal(v, cases[i].out);
    }
}

static void test_defaults_valid(void **state)
{
    (void)state;
    hr_config c;
    char err[256];
    hr_config_defaults(&c);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_int_equal(c.ws_max_message_size, 1024 * 1024);
    assert_int_equal(c.ws_echo_max_message_size, 16 * 1024 * 1024);
    assert_int_equal(c.ws_message_timeout_ms, 10000);
    assert_int_equal(c.ws_max_partial_bytes, 64 * 1024 * 1024);
    assert_int_equal(c.http_header_timeout_ms, 10000);
    assert_true(c.ws_deflate);
    assert_int_equal(hr_config_validate(&c, err, sizeof(err)), 0);
    hr_config_free(&c);
}

static void test_file_ok(void **state)
{
    (void)state;
    static const char doc[] =
        "# comment\n"
        "websocket.idle_timeout = \"1m\"   # dotted key before any section\n"
        "[server]\n"
        "listen = \"127.0.0.1:9000\"  # trailing comment\n"
        "workers = 3\n"
        "\n"
        "[http]\n"
        "max_body_size = \"2MiB\"\n"
        "header_timeout = \"5s\"\n"
        "max_headers = 1_0\n"
        "[websocket]\n"
        "deflate = false\n"
        "allowed_origins = [\"https://a.example\",\n"
        "                   \"https://b.example\", ]\n"
        "subprotocols = []\n"
        "ping_interval = 5\n";
    hr_config c;
    char err[256] = "";
    hr_config_defaults(&c);
    int rc = hr_config_load_string(&c, "t.toml", doc, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.listen, "127.0.0.1:9000");
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.http_max_body_size, 2 * 1024 * 1024);
    assert_int_equal(c.http_header_timeout_ms, 5000);
    assert_int_equal(c.http_max_headers, 10);
    assert_false(c.ws_deflate);
    assert_int_equal(c.ws_allowed_origins.n, 2);
    assert_string_equal(c.ws_allowed_origins.v[1], "https://b.example");
    assert_int_equal(c.ws_subprotocols.n, 0);
    assert_int_equal(c.ws_ping_interval_ms, 5000);
    assert_int_equal(c.ws_idle_timeout_ms, 60000);
    hr_config_free(&c);
}

static void test_file_errors(void **state)
{
    (void)state;
    static const struct { const char *doc; const char *expect; } cases[] = {
        {"[server]\nlisten = \"x:1\"\nwrkers = 2\n", "t.toml:3: server.wrkers: unknown option"},
        {"[server]\nworkers = \"two\"\n", "t.toml:2: server.workers: expected an integer without quotes"},
        {"[server]\nworkers = two\n", "t.toml:2: server.workers: expected an integer"},
        {"[http]\nmax_body_size = \"lots\"\n", "t.toml:2: http.max_body_size: expected a size"},
        {"[http]\nheader_timeout = \"10 parsecs\"\n", "t.toml:2: http.header_timeout: expected a duration"},
        {"[websocket]\ndeflate = maybe\n", "t.toml:2: websocket.deflate: expected true or false"},
        {"[nope]\n", "t.toml:1: [nope]: unknown section"},
        {"[server\n", "t.toml:1: bad section header"},
        {"\n\n[server]\nlisten = \"a:1\" extra\n", "t.toml:4: unexpected text"},
        {"[server]\nlisten = \"unterminated\n", "t.toml:2: unterminated string"},
        {"[server]\nworkers = 2\nworkers = 3\n", "t.toml:3: server.workers: set twice"},
        {"[server]\nlisten 1\n", "t.toml:2: server.listen: expected '='"},
        {"[websocket]\nallowed_origins = \"x\"\n", "t.toml:2: websocket.allowed_origins: expected a list"},
        {"[server]\nworkers = 5000\n", "t.toml:2: server.workers: 5000 is out of range"},
        {"[server]\nlisten = 8080\n", "t.toml:2: server.listen: expected a quoted string"},
        {"[namespace.a.b]\n", "t.toml:1: [namespace.a.b]: unknown section (namespace names"},
        {"[namespace.]\n", "t.toml:1: [namespace.]: unknown section"},
        {"[namespace.chat]\nhistory_sise = 5\n", "t.toml:2: namespace.chat.history_sise: unknown namespace option"},
        {"[namespace.chat]\nhistory_size = 5\nhistory_size = 6\n", "t.toml:3: namespace.chat.history_size: set twice"},
        {"[namespace.chat]\nhistory_size = -1\n", "t.toml:2: namespace.chat.history_size: -1 is out of range"},
        {"[namespace.chat]\npresence = maybe\n", "t.toml:2: namespace.chat.presence: expected true or false"},
        {"[namespace.chat]\nhistory_ttl = \"soon\"\n", "t.toml:2: namespace.chat.history_ttl: expected a duration"},
        /* issue 13: a typo gets a suggestion, like namespace keys; value checks name the line */
        {"[server]\nmax_conections = 5\n",
         "t.toml:2: server.max_conections: unknown option (did you mean \"server.max_connections\"?)"},
        {"[websocket]\nmax_queued_byte = 5\n",
         "t.toml:2: websocket.max_queued_byte: unknown option (did you mean \"websocket.max_queued_bytes\"?)"},
        {"[channel]\nhistory_size = 5\n", "t.toml:1: [channel]: unknown section (did you mean [channels]?)"},
        {"[server]\nlisten = \"127.0.0.1:99999\"\n",
         "t.toml:2: server.listen: \"127.0.0.1:99999\" is not HOST:PORT, [IPv6]:PORT or :PORT (a port from 0 to 65535)"},
        {"[tls]\nlisten = \"::1:443\"\n", "t.toml:2: tls.listen: \"::1:443\" is not HOST:PORT"},
        {"[auth]\ntoken_hmac_secret = \"short\"\n",
         "t.toml:2: auth.token_hmac_secret: at least 32 bytes, got 5 (herald genconfig makes one)"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_config c;
        char err[512] = "";
        hr_config_defaults(&c);
        int rc = hr_config_load_string(&c, "t.toml", cases[i].doc, err, sizeof(err));
        if (rc == 0 || strncmp(err, cases[i].expect, strlen(cases[i].expect)) != 0)
            fail_msg("case %zu: got rc=%d err=\"%s\", want \"%s\"", i, rc, err, cases[i].expect);
        hr_config_free(&c);
    }
}

static void test_namespaces(void **state)
{
    (void)state;
    hr_config c;
    char err[512] = "";
    hr_config_defaults(&c);
    const char *doc = "[channels]\nhistory_size = 50\npresence = true\n"
                      "[namespace.chat]\nhistory_size = 5\njoin_leave = true\nmax_subscribers = 3\n"
                      "[namespace.ticker]\npresence = false\nallow_publish = false\nhistory_ttl = \"10s\"\n";
    assert_int_equal(hr_config_load_string(&c, "t.toml", doc, err, sizeof(err)), 0);
    /* flags use the same keys, '-' or '_' */
    assert_int_equal(hr_config_set(&c, "namespace.ticker.allow-anonymous", "false", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&c, "namespace.x.nope", "1", err, sizeof(err)), HR_ERR_NOTFOUND);
    assert_int_equal(hr_config_set(&c, "namespace.a.b:c.history_size", "1", err, sizeof(err)), HR_ERR_INVALID);
    hr_chan_policy p;
    assert_int_equal(hr_config_policy(&c, "chat:room1", 10, &p), 0);
    assert_int_equal(p.history_size, 5);          /* the namespace's */
    assert_true(p.join_leave);
    assert_true(p.presence);                      /* inherited from [channels] */
    assert_int_equal(p.max_subscribers, 3);
    assert_int_equal(p.history_ttl_ms, 5 * 60 * 1000);
    assert_int_equal(hr_config_policy(&c, "ticker:btc.usd", 14, &p), 0);
    assert_false(p.presence);
    assert_false(p.allow_publish);
    assert_false(p.allow_anonymous);
    assert_int_equal(p.history_ttl_ms, 10000);
    assert_int_equal(p.history_size, 50);
    /* no namespace, and an unknown one: [channels] */
    assert_int_equal(hr_config_policy(&c, "news", 4, &p), 0);
    assert_int_equal(p.history_size, 50);
    assert_false(p.join_leave);
    assert_int_equal(hr_config_policy(&c, "other:x", 7, &p), 0);
    assert_int_equal(p.history_size, 50);
    /* a personal channel's '#' is not a namespace; "chat:#alice" is in chat */
    assert_int_equal(hr_config_policy(&c, "chat:#alice", 11, &p), 0);
    assert_int_equal(p.history_size, 5);
    /* unknown namespaces refused */
    assert_int_equal(hr_config_set(&c, "channels.allow_unknown_namespaces", "false", err, sizeof(err)), 0);
    assert_int_equal(hr_config_policy(&c, "other:x", 7, &p), HR_ERR_NOTFOUND);
    assert_int_equal(hr_config_policy(&c, "chat:x", 6, &p), 0);
    assert_int_equal(hr_config_policy(&c, "news", 4, &p), 0); /* no namespace at all is the default one */
    hr_config_free(&c);
}

static void test_env_and_flags(void **state)
{
    (void)state;
    hr_config c;
    char err[256];
    hr_config_defaults(&c);
    char *env[] = {"HERALD_LISTEN=127.0.0.1:1234", "HERALD_WEBSOCKET_MAX_MESSAGE_SIZE=1MiB",
                   "HERALD_WEBSOCKET_ALLOWED_ORIGINS=https://x.example, https://y.example", "HERALD_BIN=/ignored",
                   "PATH=/bin", NULL};
    assert_int_equal(hr_config_load_env(&c, env, err, sizeof(err)), 0);
    assert_string_equal(c.listen, "127.0.0.1:1234");
    assert_int_equal(c.ws_max_message_size, 1048576);
    assert_int_equal(c.ws_allowed_origins.n, 2);
    assert_string_equal(c.ws_allowed_origins.v[1], "https://y.example");
    char *bad[] = {"HERALD_WORKERS=lots", NULL};
    assert_int_not_equal(hr_config_load_env(&c, bad, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "HERALD_WORKERS"));

    assert_ptr_equal(hr_config_find_flag("listen"), hr_config_find_flag("server.listen"));
    assert_non_null(hr_config_find_flag("websocket.max-message-size"));
    assert_non_null(hr_config_find_flag("websocket.max_message_size"));
    assert_null(hr_config_find_flag("websocket.nonsense"));
    assert_int_equal(hr_config_set(&c, "http.max_headers", "12", err, sizeof(err)), 0);
    assert_int_equal(c.http_max_headers, 12);
    assert_int_not_equal(hr_config_set(&c, "http.max_headers", "0", err, sizeof(err)), 0);
    hr_config_free(&c);
}

static void test_validate(void **state)
{
    (void)state;
    hr_config c;
    char err[256];
    hr_config_defaults(&c);
    c.ws_idle_timeout_ms = 1000;
    c.ws_ping_interval_ms = 5000;
    assert_int_not_equal(hr_config_validate(&c, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "idle_timeout"));
    hr_config_free(&c);
    hr_config_defaults(&c);
    /* environment and flags: the same value checks and suggestions */
    assert_int_not_equal(hr_config_set(&c, "server.listen", ":65536", err, sizeof(err)), 0);
    assert_non_null(strstr(err, "server.listen: \":65536\" is not HOST:PORT"));
    assert_int_not_equal(hr_config_set(&c, "server.wrkers", "2", err, sizeof(err)), 0);
    assert_string_equal(err, "unknown option \"server.wrkers\" (did you mean \"server.workers\"?)");
    assert_int_not_equal(hr_config_set(&c, "zzz.qqq", "2", err, sizeof(err)), 0);
    assert_string_equal(err, "unknown option \"zzz.qqq\"");
    hr_config_set(&c, "server.engine", "redis", err, sizeof(err));
    assert_int_not_equal(hr_config_validate(&c, err, sizeof(err)), 0);
    hr_config_free(&c);
}

/* [webhook] and the namespaces' webhook_url / webhook_events: names of
 * events and URLs checked by validate, set twice refused, defaults kept. */
static void test_webhook(void **state)
{
    (void)state;
    static const struct { const char *doc; const char *expect; } cases[] = {
        {"[webhook]\nurl = \"ftp://x\"\n", "webhook: expected an http:// or https:// URL, got \"ftp://x\""},
        {"[webhook]\nevents = [\"client_connected\", \"joined\"]\n", "webhook: unknown event \"joined\" (one of"},
        {"[namespace.arch]\nwebhook_events = \"publication,nope\"\n",
         "namespace.arch.webhook: unknown event \"nope\""},
        {"[namespace.arch]\nwebhook_url = \"x\"\n", "namespace.arch.webhook: expected an http:// or https:// URL"},
        {"[webhook]\nretry_min_delay = \"2s\"\nretry_max_delay = \"1s\"\n",
         "webhook.retry_max_delay (1000 ms) must not be shorter than webhook.retry_min_delay (2000 ms)"},
    };
    char err[512];
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_config c;
        hr_config_defaults(&c);
        err[0] = '\0';
        int rc = hr_config_load_string(&c, "t.toml", cases[i].doc, err, sizeof(err));
        if (rc == 0) rc = hr_config_validate(&c, err, sizeof(err));
        if (rc == 0 || strncmp(err, cases[i].expect, strlen(cases[i].expect)) != 0)
            fail_msg("case %zu: got rc=%d err=\"%s\", want \"%s\"", i, rc, err, cases[i].expect);
        hr_config_free(&c);
    }
    hr_config c;
    hr_config_defaults(&c);
    assert_int_equal(c.webhook_batch_max_events, 100);
    assert_int_equal(c.webhook_batch_max_delay_ms, 100);
    assert_int_equal(c.webhook_max_queued_events, 10000);
    assert_int_equal(c.webhook_events.n, 6);
    int rc = hr_config_load_string(&c, "t.toml",
                                   "[namespace.arch]\nwebhook_url = \"http://a/b\"\nwebhook_events = \"publication\"\n",
                                   err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(hr_config_validate(&c, err, sizeof(err)), 0);
    assert_string_equal(c.namespaces[0].webhook_url, "http://a/b");
    assert_true(c.namespaces[0].webhook_events_set);
    assert_string_equal(c.namespaces[0].webhook_events.v[0], "publication");
    rc = hr_config_load_string(&c, "t.toml", "[namespace.x]\nwebhook_url = \"http://a\"\nwebhook_url = \"http://b\"\n",
                               err, sizeof(err));
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "set twice"));
    hr_config_free(&c);
}

/* docs/config.md must document every option (key and default). */
static void test_permissions(void **state)
{
    (void)state;
    hr_config c;
    char err[512] = "";
    hr_config_defaults(&c);
    hr_chan_policy p;
    assert_int_equal(hr_config_policy(&c, "news", 4, &p), 0);
    assert_int_equal(p.subscribe, HR_PERM_ANYONE);
    assert_int_equal(p.publish, HR_PERM_NONE); /* client publish is opt-in */
    assert_int_equal(p.history_for, HR_PERM_ANYONE);
    const char *doc = "[channels]\npublish = \"authenticated\"\n"
                      "[namespace.private]\nsubscribe = \"token\"\npublish = \"subscribers\"\n"
                      "history_for = \"subscribers\"\npresence_for = \"none\"\n";
    assert_int_equal(hr_config_load_string(&c, "t.toml", doc, err, sizeof(err)), 0);
    assert_int_equal(hr_config_policy(&c, "private:a", 9, &p), 0);
    assert_int_equal(p.subscribe, HR_PERM_TOKEN);
    assert_int_equal(p.publish, HR_PERM_SUBSCRIBERS);
    assert_int_equal(p.history_for, HR_PERM_SUBSCRIBERS);
    assert_int_equal(p.presence_for, HR_PERM_NONE);
    assert_int_equal(hr_config_policy(&c, "x", 1, &p), 0);
    assert_int_equal(p.publish, HR_PERM_AUTHENTICATED); /* [channels] */
    assert_string_equal(hr_perm_name(HR_PERM_SUBSCRIBERS), "subscribers");
    /* each option takes its own values only, quoted, and says which */
    static const struct { const char *doc; const char *msg; } bad[] = {
        {"[channels]\nsubscribe = \"subscribers\"\n", "t.toml:2: channels.subscribe: expected one of anyone, authenticated, token"},
        {"[channels]\npublish = \"token\"\n", "expected one of anyone, authenticated, subscribers, none"},
        {"[channels]\npublish = anyone\n", "expected a quoted string"},
        {"[namespace.x]\nsubscribe = \"everyone\"\n", "namespace.x.subscribe: expected one of"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(bad); i++) {
        hr_config d;
        hr_config_defaults(&d);
        err[0] = '\0';
        assert_int_not_equal(hr_config_load_string(&d, "t.toml", bad[i].doc, err, sizeof(err)), 0);
        if (!strstr(err, bad[i].msg)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad[i].msg);
        hr_config_free(&d);
    }
    hr_config_free(&c);
}

/* A document, and what its refusal (load or validate) must say. */
typedef struct bad_doc {
    const char *doc, *msg;
} bad_doc;

static void expect_refused(const bad_doc *bad, size_t n)
{
    char err[512];
    for (size_t i = 0; i < n; i++) {
        hr_config d;
        hr_config_defaults(&d);
        err[0] = '\0';
        int rc = hr_config_load_string(&d, "t.toml", bad[i].doc, err, sizeof(err));
        if (!rc) rc = hr_config_validate(&d, err, sizeof(err));
        assert_int_not_equal(rc, 0);
        if (!strstr(err, bad[i].msg)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad[i].msg);
        hr_config_free(&d);
    }
}

static void test_auth_keys(void **state)
{
    (void)state;
    hr_config c;
    char err[512] = "";
    hr_config_defaults(&c);
    assert_string_equal(c.auth_token_hmac_secret, "");
    assert_int_equal(c.auth_leeway_ms, 30000);
    assert_true(c.auth_require_exp);
    assert_int_equal(c.auth_max_token_bytes, 8192);
    const char *doc = "[auth]\ntoken_hmac_secret = \"0123456789abcdef0123456789abcdef\"\nleeway = \"5s\"\n"
                      "audience = \"app\"\nissuer = \"me\"\nrequire_exp = false\nmax_token_bytes = \"4KiB\"\n"
                      "[auth.key.rsa-2025]\nalg = \"RS256\"\npublic_key_file = \"/k/rsa.pub\"\n"
                      "private_key_file = \"/k/rsa.pem\"\n"
                      "[auth.key.h1]\nalg = \"HS512\"\nkid = \"k1\"\nsecret_file = \"/k/h1\"\n";
    assert_int_equal(hr_config_load_string(&c, "t.toml", doc, err, sizeof(err)), 0);
    assert_int_equal(c.auth_leeway_ms, 5000);
    assert_string_equal(c.auth_audience, "app");
    assert_false(c.auth_require_exp);
    assert_int_equal(c.auth_max_token_bytes, 4096);
    assert_int_equal(c.nauth_keys, 2);
    assert_string_equal(c.auth_keys[0].name, "rsa-2025");
    assert_string_equal(c.auth_keys[0].alg, "RS256");
    assert_string_equal(c.auth_keys[0].public_key_file, "/k/rsa.pub");
    assert_null(c.auth_keys[0].kid);
    assert_string_equal(c.auth_keys[1].kid, "k1");
    assert_int_equal(hr_config_validate(&c, err, sizeof(err)), 0);
    /* flags: --auth.key.NAME.OPTION, '-' or '_' */
    assert_int_equal(hr_config_set(&c, "auth.key.h2.alg", "HS256", err, sizeof(err)), 0);
    assert_int_equal(hr_config_set(&c, "auth.key.h2.secret-file", "/k/h2", err, sizeof(err)), 0);
    assert_string_equal(c.auth_keys[2].secret_file, "/k/h2");
    assert_int_equal(hr_config_set(&c, "auth.key.h2.nope", "x", err, sizeof(err)), HR_ERR_NOTFOUND);
    assert_int_equal(hr_config_set(&c, "auth.key.a.b.alg", "HS256", err, sizeof(err)), HR_ERR_INVALID);
    assert_int_equal(hr_config_validate(&c, err, sizeof(err)), 0);
    /* the environment and --token-hmac-secret */
    char *envp[] = {"HERALD_TOKEN_HMAC_SECRET=from-the-environment-0123456789abcdef", NULL};
    assert_int_equal(hr_config_load_env(&c, envp, err, sizeof(err)), 0);
    assert_string_equal(c.auth_token_hmac_secret, "from-the-environment-0123456789abcdef");
    assert_non_null(hr_config_find_flag("token-hmac-secret"));
    hr_config_free(&c);

    static const bad_doc bad[] = {
        {"[auth.key.a]\nalg = \"HS256\"\nalg = \"HS384\"\n", "t.toml:3: auth.key.a.alg: set twice"},
        {"[auth.key.a]\nsecret = 5\n", "expected a quoted string"},
        {"[auth.key.a.b]\nalg = \"HS256\"\n", "unknown section (key names"},
        {"[auth.key.a]\nalgo = \"HS256\"\n", "unknown key option \"algo\""},
        {"[auth.key.a]\nsecret = \"s\"\n", "auth.key.a.alg: expected HS256, HS384, HS512, RS256, ES256 or EdDSA (alg is required)"},
        {"[auth.key.a]\nalg = \"none\"\nsecret = \"s\"\n", "auth.key.a.alg: expected"},
        {"[auth.key.a]\nalg = \"HS256\"\n", "exactly one of secret and secret_file"},
        {"[auth.key.a]\nalg = \"HS256\"\nsecret = \"s\"\nsecret_file = \"f\"\n", "exactly one of"},
        {"[auth.key.a]\nalg = \"HS256\"\nsecret = \"s\"\npublic_key_file = \"f\"\n", "takes a secret"},
        {"[auth.key.a]\nalg = \"RS256\"\n", "needs public_key_file"},
        {"[auth.key.a]\nalg = \"ES256\"\nsecret = \"s\"\n", "not a secret"},
        {"[auth.key.a]\nalg = \"EdDSA\"\npublic_key_file = \"f\"\n[auth.key.b]\nalg = \"EdDSA\"\n"
         "public_key_file = \"g\"\nkid = \"a\"\n", "kid \"a\" is also the kid of auth.key.a"},
        {"[auth]\ntoken_hmac_secret = \"short\"\n", "at least 32 bytes"},
    };
    expect_refused(bad, HR_ARRAY_LEN(bad));
}

/* [pusher.app.NAME] sections: defaults, every key, flags, refusals. */
static void test_pusher_apps(void **state)
{
    (void)state;
    hr_config c;
    char err[512] = "";
    hr_config_defaults(&c);
    assert_int_equal(c.pusher.n, 0);
    const char *doc = "[pusher.app.main]\napp_id = \"1234\"\nkey = \"k-main\"\nsecret = \"s\"\n"
                      "[pusher.app.other]\napp_id = \"app_2\"\nkey = \"k2\"\nsecret = \"t\"\nenabled = false\n"
                      "client_events = true\nuser_authentication = true\nactivity_timeout = \"30s\"\n"
                      "max_connections = 5\nmax_client_events_per_second = 3\nmax_presence_members = 7\n"
                      "max_channel_name_length = 50\nwebhook_url = \"http://b/h\"\n"
                      "webhook_events = \"member_added,client_event\"\n";
    assert_int_equal(hr_config_load_string(&c, "t.toml", doc, err, sizeof(err)), 0);
    assert_int_equal(hr_config_validate(&c, err, sizeof(err)), 0);
    assert_int_equal(c.pusher.n, 2);
    const hr_pusher_app *m = &c.pusher.v[0], *o = &c.pusher.v[1];
    assert_string_equal(m->name, "main");
    assert_string_equal(m->app_id, "1234");
    assert_true(m->enabled);
    assert_false(m->client_events);
    assert_false(m->user_authentication);
    assert_int_equal(m->activity_timeout_ms, 120000);
    assert_int_equal(m->max_connections, 0);
    assert_int_equal(m->max_client_events_per_second, 10);
    assert_int_equal(m->max_presence_members, 100);
    assert_int_equal(m->max_channel_name_length, 200);
    assert_string_equal(m->webhook_url, "");
    assert_string_equal(m->webhook_events, "");
    assert_false(o->enabled);
    assert_true(o->client_events && o->user_authentication);
    assert_int_equal(o->activity_timeout_ms, 30000);
    assert_int_equal(o->max_connections, 5);
    assert_int_equal(o->max_client_events_per_second, 3);
    assert_int_equal(o->max_presence_members, 7);
    assert_int_equal(o->max_channel_name_length, 50);
    assert_string_equal(o->webhook_events, "member_added,client_event");
    assert_ptr_equal(hr_pusher_app_by_key(&c.pusher, "k2", 2), o);
    /* flags: --pusher.app.NAME.OPTION, '-' or '_' */
    assert_int_equal(hr_config_set(&c, "pusher.app.other.max-connections", "9", err, sizeof(err)), 0);
    assert_int_equal(c.pusher.v[1].max_connections, 9);
    assert_int_equal(hr_config_set(&c, "pusher.app.other.nope", "1", err, sizeof(err)), HR_ERR_NOTFOUND);
    assert_int_equal(hr_config_set(&c, "pusher.app.a.b.key", "x", err, sizeof(err)), HR_ERR_INVALID);
    hr_config_free(&c);

    static const bad_doc bad[] = {
        {"[pusher.app.a]\nkey = \"k\"\nsecret = \"s\"\n", "pusher.app.a.app_id: required"},
        {"[pusher.app.a]\napp_id = \"1\"\nsecret = \"s\"\n", "pusher.app.a.key: required"},
        {"[pusher.app.a]\napp_id = \"1\"\nkey = \"k\"\n", "pusher.app.a.secret: required"},
        {"[pusher.app.a]\napp_id = \"1:2\"\nkey = \"k\"\nsecret = \"s\"\n", "pusher.app.a.app_id: expected"},
        {"[pusher.app.a]\napp_id = \"1\"\nkey = \"k k\"\nsecret = \"s\"\n", "pusher.app.a.key: expected"},
        {"[pusher.app.a]\napp_id = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[pusher.app.b]\napp_id = \"1\"\nkey = "
         "\"j\"\nsecret = \"s\"\n", "pusher.app.b.app_id: \"1\" is also pusher.app.a's"},
        {"[pusher.app.a]\napp_id = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[pusher.app.b]\napp_id = \"2\"\nkey = "
         "\"k\"\nsecret = \"s\"\n", "pusher.app.b.key: \"k\" is also pusher.app.a's"},
        {"[pusher.app.a]\nmax_client_events_per_second = 0\n", "pusher.app.a.max_client_events_per_second: 0 is out"},
        {"[pusher.app.a]\nactivity_timeout = \"soon\"\n", "pusher.app.a.activity_timeout: expected a duration"},
        {"[pusher.app.a]\nenabled = maybe\n", "pusher.app.a.enabled: expected true or false"},
        {"[pusher.app.a]\nkey = \"k\"\nkey = \"j\"\n", "t.toml:3: pusher.app.a.key: set twice"},
        {"[pusher.app.a]\nsecrets = \"s\"\n", "unknown Pusher app option \"secrets\""},
        {"[pusher.app.a.b]\n", "unknown section (app names"},
        {"[pusher.app.a]\napp_id = \"1\"\nkey = \"k\"\nsecret = \"s\"\nwebhook_url = \"ftp://x\"\n",
         "pusher.app.a.webhook_url: expected an http"},
        {"[pusher.app.a]\napp_id = \"1\"\nkey = \"k\"\nsecret = \"s\"\nwebhook_events = \"member_added,nope\"\n",
         "pusher.app.a.webhook_events: unknown event \"nope\""},
    };
    expect_refused(bad, HR_ARRAY_LEN(bad));
}

static void test_docs_cover_every_option(void **state)
{
    (void)state;
    const char *src = getenv("HERALD_SOURCE_DIR");
    if (!src) src = HERALD_SOURCE_DIR_FALLBACK;
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/config.md", src);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    hr_buf b = HR_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) hr_buf_append(&b, chunk, n);
    fclose(f);
    hr_buf_append(&b, "", 1);
    for (size_t i = 0; i < hr_options_count; i++) {
        char want[160];
        snprintf(want, sizeof(want), "`%s`", hr_options[i].key);
        if (!strstr((char *)b.data, want)) fail_msg("docs/config.md does not document %s", want);
    }
    for (size_t i = 0; i < hr_pusher_app_options_count; i++) {
        char want[160];
        snprintf(want, sizeof(want), "`%s` | %s", hr_pusher_app_options[i].key,
                 hr_pusher_app_options[i].type == HR_OPT_BOOL ? "bool" : "");
        if (!strstr((char *)b.data, want)) fail_msg("docs/config.md does not document %s", want);
    }
    hr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_defaults_valid),
        cmocka_unit_test(test_file_ok),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_env_and_flags),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_webhook),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_auth_keys),
        cmocka_unit_test(test_pusher_apps),
        cmocka_unit_test(test_docs_cover_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
