/* test_httpc.c - the outgoing HTTP(S) client (backend/httpc.h) on a real
 * event loop against a real backend process on loopback
 * (tests/tools/http_backend.py): an answer, keep-alive reuse (the server
 * counts its connections), a timeout, a refused connection, a 500, an
 * oversized answer, a full queue, a cancelled call, freeing with calls in
 * flight, and HTTPS with a certificate made by the test: refused without
 * its CA, accepted with it; and promptness: httpc keeps libcurl's timeout
 * and its own "deliver now" off the loop's 50 ms timer wheel, and a call to
 * a loopback backend fires well within one wheel tick. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/httpc.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the backend process ------------------------------------------------------------- */

typedef struct backend {
    pid_t pid;
    int port;
} backend;

static const char *source_dir(void)
{
    const char *d = getenv("HERALD_SOURCE_DIR");
    return d ? d : HERALD_SOURCE_DIR_FALLBACK;
}

static backend backend_start(const char *cert, const char *key)
{
    char script[1024];
    snprintf(script, sizeof(script), "%s/tests/tools/http_backend.py", source_dir());
    int p[2];
    assert_int_equal(pipe(p), 0);
    backend b = {.pid = fork()};
    assert_true(b.pid >= 0);
    if (b.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave the backend running */
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        if (cert) execlp("python3", "python3", script, "--tls", cert, key, (char *)NULL);
        else execlp("python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[32] = {0};
    size_t have = 0;
    ssize_t n;
    while (have < sizeof(line) - 1 && (n = read(p[0], line + have, sizeof(line) - 1 - have)) > 0)
        have += (size_t)n; /* to EOF: the backend closes its stdout once the port is out */
    close(p[0]);
    assert_true(have > 0);
    b.port = atoi(line);
    assert_true(b.port > 0);
    return b;
}

static void backend_stop(backend *b)
{
    kill(b->pid, SIGTERM);
    waitpid(b->pid, NULL, 0);
}

/* ---- driving the loop ------------------------------------------------------------------ */

typedef struct result {
    int calls;
    int err;
    long status;
    char body[256];
} result;

static hr_loop loop;
static int want;   /* stop the loop once this many callbacks fired */
static int fired;

static void on_done(const hr_httpc_resp *r, void *ud)
{
    result *res = ud;
    res->calls++;
    res->err = r->err;
    res->status = r->status;
    snprintf(res->body, sizeof(res->body), "%.*s", (int)HR_MIN(r->body_len, 255u), r->body);
    if (++fired >= want) hr_loop_stop(&loop);
}

static void on_deadline(hr_timer *t, void *data)
{
    hr_loop_stop(&loop);
}

/* Run until `n` more callbacks fired or max_ms passed; returns elapsed ms.
 * The wheel's clock is the loop's last turn, which can be seconds old (a
 * backend's start on a loaded machine): it is brought to now first, or the
 * deadline would be counted from then and end the run before the answer. */
static uint64_t run_for(int n, uint64_t max_ms)
{
    hr_timer deadline;
    hr_timer_init(&deadline, on_deadline);
    hr_wheel_advance(&loop.wheel, hr_now_ms());
    hr_timer_start(&loop.wheel, &deadline, max_ms);
    fired = 0;
    want = n;
    loop.stop = false;
    uint64_t t0 = hr_now_ms();
    hr_loop_run(&loop);
    hr_timer_stop(&loop.wheel, &deadline);
    return hr_now_ms() - t0;
}

static char url[256];
static const char *at(const backend *b, const char *path)
{
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", b->port, path);
    return url;
}

static int post(hr_httpc *h, const char *u, uint32_t timeout_ms, result *res, hr_httpc_call **call)
{
    hr_httpc_req req = {.url = u, .body = "hello", .body_len = 5, .timeout_ms = timeout_ms};
    return hr_httpc_post(h, &req, on_done, res, call);
}

static backend srv;

static int group_setup(void **state)
{
    srv = backend_start(NULL, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    backend_stop(&srv);
    return 0;
}

/* A loop per test: a test that fails part-way leaves its client and calls
 * behind, and on a shared loop their callbacks would fire in the next test,
 * into the failed test's gone stack frame (one failure read as several). */
static int loop_setup(void **state)
{
    assert_int_equal(hr_loop_init(&loop, NULL), 0);
    return 0;
}

static int loop_teardown(void **state)
{
    hr_loop_close(&loop);
    return 0;
}

static hr_httpc *client(uint32_t max_inflight, uint32_t max_response)
{
    hr_httpc_opts o;
    hr_httpc_opts_default(&o);
    if (max_inflight) o.max_inflight = max_inflight;
    if (max_response) o.max_response_bytes = max_response;
    hr_httpc *h = hr_httpc_new(&loop, &o);
    assert_non_null(h);
    return h;
}

/* ---- the tests --------------------------------------------------------------------------- */

static void test_async_dns(void **state)
{
    assert_true(hr_httpc_async_dns());
}

static void test_ok(void **state)
{
    hr_httpc *h = client(0, 0);
    result r = {0};
    assert_int_equal(post(h, at(&srv, "/ok"), 2000, &r, NULL), 0);
    assert_int_equal(r.calls, 0); /* never from inside post */
    run_for(1, 3000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"result\":{\"len\":5}}");
    assert_int_equal(hr_httpc_inflight(h), 0);
    hr_httpc_free(h);
}

static void test_keepalive_reuse(void **state)
{
    backend b = backend_start(NULL, NULL); /* a fresh connection count */
    hr_httpc *h = client(0, 0);
    for (int i = 0; i < 5; i++) {
        result r = {0};
        assert_int_equal(post(h, at(&b, "/ok"), 2000, &r, NULL), 0);
        run_for(1, 3000);
        assert_int_equal(r.status, 200);
    }
    result r = {0};
    assert_int_equal(post(h, at(&b, "/conns"), 2000, &r, NULL), 0);
    run_for(1, 3000);
    assert_string_equal(r.body, "1"); /* six requests, one connection */
    hr_httpc_free(h);
    backend_stop(&b);
}

static void test_timeout(void **state)
{
    hr_httpc *h = client(0, 0);
    result r = {0};
    assert_int_equal(post(h, at(&srv, "/slow?ms=3000"), 300, &r, NULL), 0);
    uint64_t ms = run_for(1, 5000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, HR_HTTPC_E_TIMEOUT);
    /* ended by the 300 ms timeout, not by the answer at 3 s (room for a loaded machine) */
    assert_true(ms >= 250 && ms < 2700);
    hr_httpc_free(h);
}

static void test_refused(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* nothing listens on that port now */
    backend dead = {.port = ntohs(a.sin_port)};
    hr_httpc *h = client(0, 0);
    result r = {0};
    assert_int_equal(post(h, at(&dead, "/ok"), 2000, &r, NULL), 0);
    run_for(1, 3000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, HR_HTTPC_E_CONNECT);
    hr_httpc_free(h);
}

/* A closed loopback port: nothing listens there. */
static backend dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return (backend){.port = ntohs(a.sin_port)};
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Post to u N times, one call at a time, each from a random point of a wheel
 * tick; returns the median milliseconds from post to callback. Asserts that
 * httpc never puts a timer on the wheel (its timeouts are on its own timerfd). */
#define PROMPT_N 20
static uint64_t median_call_ms(hr_httpc *h, const char *u, int want_err)
{
    uint64_t ms[PROMPT_N];
    for (int i = 0; i < PROMPT_N; i++) {
        usleep((useconds_t)(rand() % (int)HR_WHEEL_TICK_MS) * 1000u);
        hr_wheel_advance(&loop.wheel, hr_now_ms());
        size_t timers = loop.wheel.count;
        result r = {0};
        uint64_t t0 = hr_now_ms();
        assert_int_equal(post(h, u, 2000, &r, NULL), 0);
        assert_int_equal(loop.wheel.count, timers);
        run_for(1, 3000);
        ms[i] = hr_now_ms() - t0;
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.err, want_err);
    }
    qsort(ms, PROMPT_N, sizeof(ms[0]), cmp_u64);
    return ms[PROMPT_N / 2];
}

/* Before the timerfd, httpc's timeout was a wheel timer, and a call that
 * libcurl finished inside post (the answer already read: ~4% of publish
 * hook calls in bench/backend-hooks.mjs) fired only at the next wheel tick,
 * up to 50 ms later: the publish hook's p99. That race is not reproducible
 * here, so the test pins the mechanism (no wheel timer, checked on every
 * call) and bounds the medians loosely: ~1 ms alone, but an ASan build on a
 * machine running two other test suites went past 10 ms once, so the bound
 * is PROMPT_MAX_MS, below one wheel tick. */
#define PROMPT_MAX_MS 40
static void test_prompt(void **state)
{
    backend dead = dead_port();
    hr_httpc *h = client(0, 0);
    char u[256];
    snprintf(u, sizeof(u), "%s", at(&dead, "/ok"));
    assert_true(median_call_ms(h, u, HR_HTTPC_E_CONNECT) < PROMPT_MAX_MS);
    snprintf(u, sizeof(u), "%s", at(&srv, "/ok"));
    assert_true(median_call_ms(h, u, 0) < PROMPT_MAX_MS);
    hr_httpc_free(h);
}

static void test_500_and_garbage(void **state)
{
    hr_httpc *h = client(0, 0);
    result r = {0}, g = {0};
    assert_int_equal(post(h, at(&srv, "/500"), 2000, &r, NULL), 0);
    run_for(1, 3000);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"error\":\"boom\"}");
    assert_int_equal(post(h, at(&srv, "/garbage"), 2000, &g, NULL), 0);
    run_for(1, 3000);
    assert_int_equal(g.status, 200); /* the body is the codec's to judge */
    assert_string_equal(g.body, "<html>not json");
    hr_httpc_free(h);
}

static void test_too_big(void **state)
{
    hr_httpc *h = client(0, 1024);
    result r = {0}, ok = {0};
    assert_int_equal(post(h, at(&srv, "/big?n=1025"), 2000, &r, NULL), 0);
    run_for(1, 3000);
    assert_int_equal(r.err, HR_HTTPC_E_TOO_BIG);
    assert_int_equal(post(h, at(&srv, "/big?n=1024"), 2000, &ok, NULL), 0);
    run_for(1, 3000);
    assert_int_equal(ok.err, 0);
    assert_int_equal(ok.status, 200);
    hr_httpc_free(h);
}

static void test_queue_full(void **state)
{
    hr_httpc *h = client(2, 0);
    result a = {0}, b = {0}, c = {0};
    assert_int_equal(post(h, at(&srv, "/slow?ms=300"), 3000, &a, NULL), 0);
    assert_int_equal(post(h, at(&srv, "/slow?ms=300"), 3000, &b, NULL), 0);
    assert_int_equal(post(h, at(&srv, "/ok"), 3000, &c, NULL), HR_HTTPC_E_FULL);
    run_for(2, 5000);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_int_equal(c.calls, 0);
    assert_int_equal(post(h, at(&srv, "/ok"), 3000, &c, NULL), 0); /* room again */
    run_for(1, 3000);
    assert_int_equal(c.status, 200);
    hr_httpc_free(h);
}

static void test_cancel(void **state)
{
    hr_httpc *h = client(0, 0);
    result r = {0}, ok = {0};
    hr_httpc_call *call = NULL;
    assert_int_equal(post(h, at(&srv, "/slow?ms=200"), 3000, &r, &call), 0);
    assert_non_null(call);
    hr_httpc_cancel(h, call);
    assert_int_equal(hr_httpc_inflight(h), 0);
    run_for(1, 600);
    assert_int_equal(r.calls, 0);
    assert_int_equal(post(h, at(&srv, "/ok"), 3000, &ok, NULL), 0);
    run_for(1, 3000);
    assert_int_equal(ok.status, 200);
    hr_httpc_free(h);
}

static void test_free_in_flight(void **state)
{
    hr_httpc *h = client(0, 0);
    result r[3] = {{0}};
    for (int i = 0; i < 3; i++) assert_int_equal(post(h, at(&srv, "/slow?ms=500"), 3000, &r[i], NULL), 0);
    run_for(99, 100); /* connections open, requests sent */
    hr_httpc_free(h);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, HR_HTTPC_E_CANCELLED);
    }
}

static void test_https(void **state)
{
    char dir[] = "/tmp/herald-httpc-XXXXXX", cmd[1024], cert[256], key[256];
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null",
             key, cert);
    assert_int_equal(system(cmd), 0);
    backend b = backend_start(cert, key);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/ok", b.port);

    hr_httpc *h = client(0, 0); /* the system store: the test's certificate is unknown */
    result r = {0};
    assert_int_equal(post(h, url, 3000, &r, NULL), 0);
    run_for(1, 4000);
    assert_int_equal(r.err, HR_HTTPC_E_TLS);
    hr_httpc_free(h);

    hr_httpc_opts o;
    hr_httpc_opts_default(&o);
    o.ca_file = cert;
    h = hr_httpc_new(&loop, &o);
    result ok = {0};
    assert_int_equal(post(h, url, 3000, &ok, NULL), 0);
    run_for(1, 4000);
    assert_int_equal(ok.err, 0);
    assert_int_equal(ok.status, 200);
    hr_httpc_free(h);

    backend_stop(&b);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("HERALD_DEBUG")) hr_log_set_level(HR_LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_async_dns, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_ok, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_refused, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_prompt, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_500_and_garbage, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_too_big, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_https, loop_setup, loop_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
