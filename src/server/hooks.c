/* hooks.c - the subscribe and publish hooks of the operations on the
 * backend proxy (see hooks.h).
 *
 * One small allocation per call (the operation's callback and its data)
 * lives until the proxy answers. The proxy's failure kinds become the
 * operations' result codes (timeout 504, down or full 503, a bad status or
 * malformed answer 502 on HTTP; 116 temporary on the native protocol); the
 * backend's error and disconnect keep their code and message. A worker
 * without a proxy (no proxy URL set) or a hook without a URL refuses at
 * once with BACKEND_UNAVAILABLE and says which option is missing: a
 * namespace that needs a hook never skips it.
 *
 * A worker's calls are listed per thread (each worker calls only from its
 * own loop): when the worker stops, hr_server_hooks_stop answers those
 * still in flight with BACKEND_UNAVAILABLE before its proxy is freed (the
 * proxy would drop them silently), so whoever waits - an HTTP emulation
 * session outlives its worker - frees what it holds. */
#include "server/hooks.h"

#include "backend/proxy.h"

#include <string.h>

typedef struct hook_call {
    struct hook_call *next, *prev;
    hr_proxy_req *req;
    hr_op_hook_cb cb;
    void *ud;
} hook_call;

static _Thread_local hook_call *calls;  /* this worker's calls in flight */
static _Thread_local bool stopping;     /* this worker stops: no new calls */

static void unlink_call(hook_call *hc)
{
    if (hc->prev) hc->prev->next = hc->next;
    else calls = hc->next;
    if (hc->next) hc->next->prev = hc->prev;
}

static int fail_rc(hr_proxy_fail f)
{
    switch (f) {
    case HR_PROXY_F_TIMEOUT: return HR_OP_BACKEND_TIMEOUT;
    case HR_PROXY_F_STATUS:
    case HR_PROXY_F_MALFORMED: return HR_OP_BACKEND_BAD_ANSWER;
    default: return HR_OP_BACKEND_UNAVAILABLE;
    }
}

static size_t len_of(const char *s) { return s ? strlen(s) : 0; }

static void on_answer(const hr_proxy_result *r, void *ud)
{
    hook_call *hc = ud;
    hr_op_hook_ans ans = {.res = {.rc = HR_OP_OK}};
    const hr_proxy_answer *a = r->answer;
    if (r->fail) {
        ans.res = (hr_op_result){.rc = fail_rc(r->fail), .detail = r->message};
    } else if (a->kind == HR_PROXY_ERROR) {
        ans.res = (hr_op_result){.rc = HR_OP_BACKEND_ERROR, .detail = a->message ? a->message : "", .code = (int)a->code, .temporary = a->temporary};
    } else if (a->kind == HR_PROXY_DISCONNECT) {
        ans.res = (hr_op_result){.rc = HR_OP_BACKEND_DISCONNECT, .detail = a->message, .code = (int)a->code};
    } else {
        ans.info = a->info;
        ans.info_len = len_of(a->info);
        ans.data = a->data;
        ans.data_len = len_of(a->data);
    }
    unlink_call(hc);
    hc->cb(hc->ud, &ans);
    hr_free(hc);
}

static int hook_call_start(void *ctx, const hr_op_hook_req *req, hr_op_hook_cb cb, void *ud, const char **detail)
{
    hr_shared *sh = ctx;
    const hr_actor *a = req->a;
    bool sub = req->hook == HR_OP_HOOK_SUBSCRIBE;
    hr_proxy_hook hook = sub ? HR_HOOK_SUBSCRIBE : HR_HOOK_PUBLISH;
    hr_proxy *p = a->wh ? sh->workers[a->wh->id].proxy : NULL;
    if (stopping) {
        *detail = "the server is shutting down";
        return HR_OP_BACKEND_UNAVAILABLE;
    }
    if (!p || !hr_proxy_enabled(p, hook)) {
        *detail = sub ? "the namespace has proxy_subscribe but proxy.subscribe_url is not set"
                      : "the namespace has proxy_publish but proxy.publish_url is not set";
        return HR_OP_BACKEND_UNAVAILABLE;
    }
    char *channel = hr_strndup(req->channel, req->channel_len);
    hr_client_idstr id = {""};
    if (a->client) id = hr_client_id(a->client);
    hr_proxy_ctx pc = {.client = id.s,
                       .transport = a->transport ? a->transport : "websocket",
                       .protocol = a->protocol ? a->protocol : "json",
                       .user = a->user ? a->user : "",
                       .channel = channel,
                       .data = req->data,
                       .data_len = req->data_len};
    hook_call *hc = hr_malloc(sizeof(*hc));
    *hc = (hook_call){.next = calls, .cb = cb, .ud = ud};
    int rc = hr_proxy_call(p, hook, &pc, NULL, on_answer, hc, &hc->req);
    hr_free(channel);
    if (!rc) {
        if (calls) calls->prev = hc;
        calls = hc;
        return 0;
    }
    hr_free(hc);
    *detail = "the backend hook could not be called";
    return HR_OP_BACKEND_UNAVAILABLE;
}

hr_ops_hooks hr_server_hooks(hr_shared *sh) { return (hr_ops_hooks){hook_call_start, sh}; }

void hr_server_hooks_stop(hr_proxy *p)
{
    stopping = true;
    hr_op_hook_ans ans = {.res = {.rc = HR_OP_BACKEND_UNAVAILABLE, .detail = "the server is shutting down"}};
    while (calls) {
        hook_call *hc = calls;
        unlink_call(hc);
        if (p) hr_proxy_cancel(p, hc->req);
        hc->cb(hc->ud, &ans);
        hr_free(hc);
    }
}
