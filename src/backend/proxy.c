/* proxy.c - one backend hook call (see proxy.h): body from proxy_codec, POST
 * through the worker's hr_httpc, answer parsed strictly, one callback with
 * the answer or a failure kind mapped to the client's error (116, temporary,
 * HTTP 502/503/504). A call that fails before it is sent (the client is full,
 * the URL is refused) still answers from the loop, a wheel tick later, so a
 * caller has one path and is never re-entered from inside hr_proxy_call.
 * Failures are logged at warn with the hook, URL and reason, at most one line
 * per second per worker (the lines in between are counted and reported). */
#include "backend/proxy.h"

#include "core/buf.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

#define WARN_INTERVAL_MS 1000

struct hr_proxy_req {
    hr_proxy_req *next, *prev;
    hr_proxy *p;
    hr_proxy_hook hook;
    hr_httpc_call *hc;          /* NULL: failed before it was sent (deferred answer) */
    hr_timer t;                 /* the deferred answer */
    hr_proxy_fail deferred;
    hr_proxy_cb cb;
    void *ud;
    char url[];                 /* for the log */
};

struct hr_proxy {
    hr_loop *loop;
    hr_httpc *http;
    hr_proxy_opts opts;
    hr_proxy_limits lim;
    hr_proxy_req *reqs;         /* calls in flight */
    uint64_t warned_ms;         /* loop time of the last warning */
    uint64_t suppressed;        /* warnings not logged since */
    hr_proxy_stats stats;
};

static const struct {
    const char *name, *message;
    int status;
} FAILS[HR_PROXY_F_COUNT] = {
    [HR_PROXY_OK] = {"ok", NULL, 200},
    [HR_PROXY_F_TIMEOUT] = {"timeout", "backend unavailable: no answer in time", 504},
    [HR_PROXY_F_DOWN] = {"down", "backend unavailable: cannot reach it", 503},
    [HR_PROXY_F_STATUS] = {"status", "backend unavailable: it answered with an error status", 502},
    [HR_PROXY_F_MALFORMED] = {"malformed", "backend unavailable: malformed answer", 502},
    [HR_PROXY_F_FULL] = {"full", "backend unavailable: too many calls in flight", 503},
};

static void stat_add(atomic_uint_fast64_t *s, int64_t n)
{
    atomic_fetch_add_explicit(s, (uint_fast64_t)n, memory_order_relaxed);
}

void hr_proxy_opts_default(hr_proxy_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < HR_ARRAY_LEN(o->hook); i++) o->hook[i].timeout_ms = 1000;
    hr_httpc_opts_default(&o->httpc);
}

bool hr_proxy_opts_enabled(const hr_proxy_opts *o)
{
    for (size_t i = 0; i < HR_ARRAY_LEN(o->hook); i++)
        if (o->hook[i].url && o->hook[i].url[0]) return true;
    return o->nrpc_routes > 0;
}

hr_proxy_origin *hr_proxy_origin_new(const char *remote_addr, const hr_proxy_header *h, size_t n)
{
    size_t size = sizeof(hr_proxy_origin) + n * sizeof(hr_proxy_header) + strlen(remote_addr) + 1;
    for (size_t i = 0; i < n; i++) size += strlen(h[i].name) + strlen(h[i].value) + 2;
    hr_proxy_origin *o = hr_malloc(size);
    hr_proxy_header *hs = (hr_proxy_header *)(o + 1);
    char *p = (char *)(hs + n);
    o->headers = hs;
    o->nheaders = n;
    o->remote_addr = p;
    p = stpcpy(p, remote_addr) + 1;
    for (size_t i = 0; i < n; i++) {
        hs[i].name = p;
        p = stpcpy(p, h[i].name) + 1;
        hs[i].value = p;
        p = stpcpy(p, h[i].value) + 1;
    }
    return o;
}

const char *hr_proxy_fail_name(hr_proxy_fail f)
{
    return (unsigned)f < HR_PROXY_F_COUNT ? FAILS[f].name : "?";
}

hr_proxy *hr_proxy_new(hr_loop *loop, const hr_proxy_opts *opts)
{
    hr_httpc *h = hr_httpc_new(loop, &opts->httpc);
    if (!h) return NULL;
    hr_proxy *p = hr_calloc(1, sizeof(*p));
    p->loop = loop;
    p->http = h;
    p->opts = *opts;
    hr_proxy_limits_default(&p->lim);
    p->lim.max_answer_bytes = opts->httpc.max_response_bytes;
    return p;
}

const hr_proxy_opts *hr_proxy_options(const hr_proxy *p) { return &p->opts; }
const hr_proxy_stats *hr_proxy_get_stats(const hr_proxy *p) { return &p->stats; }

bool hr_proxy_enabled(const hr_proxy *p, hr_proxy_hook hook)
{
    if (!p || (unsigned)hook >= HR_ARRAY_LEN(p->opts.hook)) return false;
    if (hook == HR_HOOK_RPC && p->opts.nrpc_routes) return true;
    return p->opts.hook[hook].url && p->opts.hook[hook].url[0];
}

const char *hr_proxy_rpc_url(const hr_proxy *p, const char *method)
{
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < p->opts.nrpc_routes; i++) {
        const char *r = p->opts.rpc_routes[i], *eq = strchr(r, '=');
        size_t n = eq ? (size_t)(eq - r) : 0;
        if (n && n >= best_len && strncmp(method, r, n) == 0) {
            best = eq + 1;
            best_len = n;
        }
    }
    if (best) return best;
    const char *u = p->opts.hook[HR_HOOK_RPC].url;
    return u && u[0] ? u : NULL;
}

/* ---- calls -------------------------------------------------------------------- */

static void unlink_req(hr_proxy_req *r)
{
    if (r->prev) r->prev->next = r->next;
    else r->p->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
}

static void warn_failure(hr_proxy_req *r, hr_proxy_fail f, const char *why)
{
    hr_proxy *p = r->p;
    uint64_t now = hr_loop_now(p->loop);
    if (p->warned_ms && now - p->warned_ms < WARN_INTERVAL_MS) {
        p->suppressed++;
        return;
    }
    hr_logf(HR_LOG_WARN, "proxy_hook_failed", "proxy %s %s: %s (%s)%s%llu%s", hr_proxy_hook_name(r->hook), r->url, hr_proxy_fail_name(f), why,
            p->suppressed ? "; " : "", (unsigned long long)p->suppressed,
            p->suppressed ? " more failures not logged in the last second" : "");
    p->warned_ms = now ? now : 1;
    p->suppressed = 0;
}

/* Answer r's owner and free r (unlinked first: the owner may cancel others). */
static void finish(hr_proxy_req *r, hr_proxy_fail f, const hr_proxy_answer *a)
{
    hr_proxy *p = r->p;
    hr_proxy_result res = {.fail = f, .answer = a};
    if (f) {
        res.code = HR_PROXY_CODE_UNAVAILABLE;
        res.temporary = true;
        res.http_status = FAILS[f].status;
        res.message = FAILS[f].message;
        stat_add(&p->stats.failures[f], 1);
    }
    hr_proxy_cb cb = r->cb;
    void *ud = r->ud;
    unlink_req(r);
    hr_free(r);
    cb(&res, ud);
}

static hr_proxy_fail fail_of_httpc(int err)
{
    switch (err) {
    case HR_HTTPC_E_TIMEOUT: return HR_PROXY_F_TIMEOUT;
    case HR_HTTPC_E_TOO_BIG: return HR_PROXY_F_MALFORMED;
    case HR_HTTPC_E_FULL: return HR_PROXY_F_FULL;
    default: return HR_PROXY_F_DOWN;
    }
}

static const char *httpc_reason(int err)
{
    switch (err) {
    case HR_HTTPC_E_TIMEOUT: return "timed out";
    case HR_HTTPC_E_CONNECT: return "connection refused or unreachable";
    case HR_HTTPC_E_TOO_BIG: return "answer larger than proxy.max_response_bytes";
    case HR_HTTPC_E_FULL: return "proxy.max_inflight calls in flight";
    case HR_HTTPC_E_TLS: return "TLS handshake or certificate check failed";
    case HR_HTTPC_E_CANCELLED: return "cancelled";
    case HR_HTTPC_E_RESOLVE: return "host name did not resolve";
    case HR_HTTPC_E_TRANSFER: return "transfer failed (closed or broken answer)";
    case HR_HTTPC_E_INVALID: return "bad URL";
    default: return "unknown error";
    }
}

static void on_http(const hr_httpc_resp *resp, void *ud)
{
    hr_proxy_req *r = ud;
    stat_add(&r->p->stats.inflight, -1);
    r->hc = NULL;
    if (resp->err) {
        hr_proxy_fail f = fail_of_httpc(resp->err);
        warn_failure(r, f, httpc_reason(resp->err));
        finish(r, f, NULL);
        return;
    }
    if (resp->status != 200) {
        char why[48];
        snprintf(why, sizeof(why), "HTTP status %ld", resp->status);
        warn_failure(r, HR_PROXY_F_STATUS, why);
        finish(r, HR_PROXY_F_STATUS, NULL);
        return;
    }
    hr_proxy_answer a;
    char err[160] = "";
    if (hr_proxy_parse(r->hook, resp->body, resp->body_len, &r->p->lim, &a, err, sizeof(err))) {
        warn_failure(r, HR_PROXY_F_MALFORMED, err[0] ? err : "not a valid answer");
        finish(r, HR_PROXY_F_MALFORMED, NULL);
        return;
    }
    finish(r, HR_PROXY_OK, &a);
    hr_proxy_answer_free(&a);
}

static void on_deferred(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    hr_proxy_req *r = HR_CONTAINER_OF(t, hr_proxy_req, t);
    finish(r, r->deferred, NULL);
}

int hr_proxy_call(hr_proxy *p, hr_proxy_hook hook, const hr_proxy_ctx *ctx, const char *url_or_NULL,
                  hr_proxy_cb cb, void *ud, hr_proxy_req **out)
{
    if (out) *out = NULL;
    const char *url = url_or_NULL;
    if (!url && (unsigned)hook < HR_ARRAY_LEN(p->opts.hook)) url = p->opts.hook[hook].url;
    if (!url || !url[0]) return HR_PROXY_E_NO_URL;
    hr_buf body = HR_BUF_INIT;
    int rc = hr_proxy_build(hook, ctx, &body);
    if (rc) {
        hr_buf_free(&body);
        return rc;
    }
    size_t ulen = strlen(url);
    hr_proxy_req *r = hr_calloc(1, sizeof(*r) + ulen + 1);
    memcpy(r->url, url, ulen + 1);
    r->p = p;
    r->hook = hook;
    r->cb = cb;
    r->ud = ud;
    r->next = p->reqs;
    if (p->reqs) p->reqs->prev = r;
    p->reqs = r;
    hr_timer_init(&r->t, on_deferred);
    stat_add(&p->stats.calls, 1);
    hr_httpc_req req = {.url = url, .headers = p->opts.headers, .nheaders = p->opts.nheaders,
                        .body = (const char *)body.data, .body_len = body.len,
                        .timeout_ms = p->opts.hook[hook].timeout_ms};
    rc = hr_httpc_post(p->http, &req, on_http, r, &r->hc);
    hr_buf_free(&body);
    if (rc) {
        r->deferred = fail_of_httpc(rc);
        warn_failure(r, r->deferred, httpc_reason(rc));
        hr_timer_start(&p->loop->wheel, &r->t, 0);
    } else {
        stat_add(&p->stats.inflight, 1);
    }
    if (out) *out = r;
    return 0;
}

void hr_proxy_cancel(hr_proxy *p, hr_proxy_req *r)
{
    if (!r) return;
    if (r->hc) {
        hr_httpc_cancel(p->http, r->hc);
        stat_add(&p->stats.inflight, -1);
    } else {
        hr_timer_stop(&p->loop->wheel, &r->t);
    }
    unlink_req(r);
    hr_free(r);
}

void hr_proxy_free(hr_proxy *p)
{
    if (!p) return;
    while (p->reqs) hr_proxy_cancel(p, p->reqs);
    hr_httpc_free(p->http);
    hr_free(p);
}
