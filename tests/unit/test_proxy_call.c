/* test_proxy_call.c - one backend hook call (backend/proxy.h) on a real
 * event loop, without a backend: the rpc routes (longest prefix, else
 * proxy.rpc_url), which hooks are on, the origin copy, a refused connection
 * answered as "down" (116, temporary, 503) from the loop, a call past
 * proxy.max_inflight answered "full" from the loop and never from inside
 * hr_proxy_call, a request the hook cannot build, cancel (no callback), and
 * the counters. The answers of a real backend are tested end to end in
 * tests/integration/test_backend_connect.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/proxy.h"

#include <string.h>

static hr_loop loop;

typedef struct got {
    int calls;
    hr_proxy_result r;
} got;

static void on_answer(const hr_proxy_result *r, void *ud)
{
    got *g = ud;
    g->calls++;
    g->r = *r;
    hr_loop_stop(&loop);
}

static void on_deadline(hr_timer *t, void *data)
{
    (void)t;
    (void)data;
    hr_loop_stop(&loop);
}

static void run_until_answer(uint64_t max_ms)
{
    hr_timer deadline;
    hr_timer_init(&deadline, on_deadline);
    hr_timer_start(&loop.wheel, &deadline, max_ms);
    loop.stop = false;
    hr_loop_run(&loop);
    hr_timer_stop(&loop.wheel, &deadline);
}

static const char *const routes[] = {"chat.=http://127.0.0.1:1/chat", "chat.admin.=http://127.0.0.1:1/admin"};

static hr_proxy *make(uint32_t max_inflight)
{
    hr_proxy_opts o;
    hr_proxy_opts_default(&o);
    o.hook[HR_HOOK_CONNECT].url = "http://127.0.0.1:1/connect"; /* nothing listens on port 1 */
    o.hook[HR_HOOK_CONNECT].timeout_ms = 2000;
    o.hook[HR_HOOK_RPC].url = "http://127.0.0.1:1/rpc";
    o.rpc_routes = routes;
    o.nrpc_routes = 2;
    o.httpc.max_inflight = max_inflight;
    hr_proxy *p = hr_proxy_new(&loop, &o);
    assert_non_null(p);
    return p;
}

static const hr_proxy_ctx ctx = {.client = "c1", .transport = "websocket", .protocol = "json", .user = ""};

static int setup(void **state)
{
    (void)state;
    return hr_loop_init(&loop, NULL);
}

static int teardown(void **state)
{
    (void)state;
    hr_loop_close(&loop);
    return 0;
}

static void test_routes_and_enabled(void **state)
{
    (void)state;
    hr_proxy *p = make(4);
    assert_string_equal(hr_proxy_rpc_url(p, "chat.send"), "http://127.0.0.1:1/chat");
    assert_string_equal(hr_proxy_rpc_url(p, "chat.admin.kick"), "http://127.0.0.1:1/admin");
    assert_string_equal(hr_proxy_rpc_url(p, "other"), "http://127.0.0.1:1/rpc");
    assert_true(hr_proxy_enabled(p, HR_HOOK_CONNECT));
    assert_true(hr_proxy_enabled(p, HR_HOOK_RPC));
    assert_false(hr_proxy_enabled(p, HR_HOOK_REFRESH));
    assert_false(hr_proxy_enabled(NULL, HR_HOOK_CONNECT));
    hr_proxy_free(p);

    hr_proxy_opts o;
    hr_proxy_opts_default(&o);
    assert_false(hr_proxy_opts_enabled(&o));
    o.rpc_routes = routes;
    o.nrpc_routes = 1;
    assert_true(hr_proxy_opts_enabled(&o));
}

static void test_origin_copy(void **state)
{
    (void)state;
    char name[] = "Cookie", value[] = "sid=1", addr[] = "10.0.0.1";
    hr_proxy_header h = {name, value};
    hr_proxy_origin *o = hr_proxy_origin_new(addr, &h, 1);
    memset(name, 0, sizeof(name));
    memset(value, 0, sizeof(value));
    memset(addr, 0, sizeof(addr));
    assert_string_equal(o->remote_addr, "10.0.0.1");
    assert_int_equal(o->nheaders, 1);
    assert_string_equal(o->headers[0].name, "Cookie");
    assert_string_equal(o->headers[0].value, "sid=1");
    hr_free(o);
}

static void test_down_full_cancel(void **state)
{
    (void)state;
    hr_proxy *p = make(1);
    got a = {0}, b = {0}, c = {0};
    hr_proxy_req *ra, *rb, *rc;
    assert_int_equal(hr_proxy_call(p, HR_HOOK_CONNECT, &ctx, NULL, on_answer, &a, &ra), 0);
    assert_int_equal(hr_proxy_call(p, HR_HOOK_CONNECT, &ctx, NULL, on_answer, &b, &rb), 0);
    assert_int_equal(hr_proxy_call(p, HR_HOOK_CONNECT, &ctx, NULL, on_answer, &c, &rc), 0);
    assert_int_equal(a.calls + b.calls + c.calls, 0); /* never from inside the call */
    hr_proxy_cancel(p, rc);                           /* a deferred failure, cancelled */
    for (int i = 0; i < 4 && (!a.calls || !b.calls); i++) run_until_answer(3000);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.r.fail, HR_PROXY_F_DOWN);
    assert_int_equal(a.r.code, HR_PROXY_CODE_UNAVAILABLE);
    assert_true(a.r.temporary);
    assert_int_equal(a.r.http_status, 503);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.r.fail, HR_PROXY_F_FULL);
    assert_int_equal(b.r.http_status, 503);
    assert_int_equal(c.calls, 0);
    const hr_proxy_stats *st = hr_proxy_get_stats(p);
    assert_int_equal(atomic_load(&st->calls), 3);
    assert_int_equal(atomic_load(&st->inflight), 0);
    assert_int_equal(atomic_load(&st->failures[HR_PROXY_F_DOWN]), 1);
    assert_int_equal(atomic_load(&st->failures[HR_PROXY_F_FULL]), 1);

    /* cancel a call in flight; free with one in flight: no callback either way */
    assert_int_equal(hr_proxy_call(p, HR_HOOK_RPC, &ctx, NULL, on_answer, &a, &ra), HR_PROXY_E_REQUEST); /* no method */
    hr_proxy_ctx rpc = ctx;
    rpc.method = "m";
    assert_int_equal(hr_proxy_call(p, HR_HOOK_RPC, &rpc, NULL, on_answer, &a, &ra), 0);
    hr_proxy_cancel(p, ra);
    assert_int_equal(hr_proxy_call(p, HR_HOOK_REFRESH, &ctx, NULL, on_answer, &a, &ra), HR_PROXY_E_NO_URL);
    assert_int_equal(hr_proxy_call(p, HR_HOOK_CONNECT, &ctx, NULL, on_answer, &a, &ra), 0);
    hr_proxy_free(p);
    assert_int_equal(a.calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes_and_enabled, setup, teardown),
        cmocka_unit_test(test_origin_copy),
        cmocka_unit_test_setup_teardown(test_down_full_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
