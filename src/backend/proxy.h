/* proxy.h - the backend proxy hooks as one asynchronous call: build the
 * hook's request body (proxy_codec), POST it with the hook's URL, timeout and
 * the static headers (httpc), parse the answer, and call back exactly once
 * with either the parsed answer or one failure kind already mapped to what a
 * client sees (native error 116 "backend unavailable", temporary, and an HTTP
 * status for the HTTP front ends). One hr_proxy per worker, on its loop;
 * its options (hr_proxy_opts) are the server's [proxy] section. */
#ifndef HERALD_BACKEND_PROXY_H
#define HERALD_BACKEND_PROXY_H

#include "backend/httpc.h"
#include "backend/proxy_codec.h"

#include <stdatomic.h>

/* The native error code of every backend failure (docs/protocol.md). */
#define HR_PROXY_CODE_UNAVAILABLE 116

enum hr_proxy_call_err {
    HR_PROXY_E_NO_URL = -660,   /* the hook (or the rpc method) has no URL configured */
};

/* The layer's options (filled in server/opts.c from [proxy]). Strings and
 * lists point into the server's config. */
typedef struct hr_proxy_opts {
    struct {
        const char *url;           /* "" or NULL: the hook is off */
        uint32_t timeout_ms;
    } hook[HR_HOOK_RPC + 1];       /* indexed by hr_proxy_hook */
    bool connect_with_token;       /* call connect even with a valid token */
    const char *const *rpc_routes; /* "PREFIX=URL" */
    size_t nrpc_routes;
    const char *const *forward_headers; /* request header names copied into connect */
    size_t nforward_headers;
    const char *const *headers;    /* "Name: value" lines sent on every call */
    size_t nheaders;
    hr_httpc_opts httpc;           /* max_inflight, dial timeout, answer bound, idle conns, CA file */
} hr_proxy_opts;

/* What went wrong with a call (0: the answer is valid). */
typedef enum hr_proxy_fail {
    HR_PROXY_OK = 0,
    HR_PROXY_F_TIMEOUT,      /* no answer within the hook's timeout: HTTP 504 */
    HR_PROXY_F_DOWN,         /* refused / unreachable / TLS / closed without an answer: HTTP 503 */
    HR_PROXY_F_STATUS,       /* an HTTP status other than 200: HTTP 502 */
    HR_PROXY_F_MALFORMED,    /* not a valid answer (or too big): HTTP 502 */
    HR_PROXY_F_FULL,         /* proxy.max_inflight calls already in flight: HTTP 503 */
    HR_PROXY_F_COUNT,
} hr_proxy_fail;

typedef struct hr_proxy_result {
    hr_proxy_fail fail;
    const hr_proxy_answer *answer; /* fail == HR_PROXY_OK: valid during the callback only */
    /* fail != HR_PROXY_OK: what the client gets */
    int code;                  /* HR_PROXY_CODE_UNAVAILABLE */
    bool temporary;            /* true */
    int http_status;           /* 502, 503 or 504 */
    const char *message;       /* "backend unavailable: timeout", ... (static) */
} hr_proxy_result;

typedef struct hr_proxy hr_proxy;
typedef struct hr_proxy_req hr_proxy_req; /* one call in flight */
typedef void (*hr_proxy_cb)(const hr_proxy_result *r, void *ud);

/* Counters of one worker's proxy (read from any thread). */
typedef struct hr_proxy_stats {
    atomic_uint_fast64_t calls;                 /* calls started (including those that failed at once) */
    atomic_uint_fast64_t failures[HR_PROXY_F_COUNT]; /* by kind; [0] unused */
    atomic_uint_fast64_t inflight;              /* now */
} hr_proxy_stats;

/* A client's request context for the connect hook (its address after
 * trusted-proxy resolution, the proxy.forward_headers of its request), in
 * one allocation: free with hr_free. */
typedef struct hr_proxy_origin {
    const char *remote_addr;
    const hr_proxy_header *headers;
    size_t nheaders;
} hr_proxy_origin;

hr_proxy_origin *hr_proxy_origin_new(const char *remote_addr, const hr_proxy_header *h, size_t n);

void hr_proxy_opts_default(hr_proxy_opts *o);
/* Whether any hook has a URL (then the server makes an hr_proxy per worker). */
bool hr_proxy_opts_enabled(const hr_proxy_opts *o);
/* NULL when the HTTP client cannot start (logged). On the loop's thread. */
hr_proxy *hr_proxy_new(hr_loop *loop, const hr_proxy_opts *opts);
const hr_proxy_opts *hr_proxy_options(const hr_proxy *p);
/* Whether the hook has a URL (rpc: proxy.rpc_url or any route). */
bool hr_proxy_enabled(const hr_proxy *p, hr_proxy_hook hook);
/* The URL an rpc method goes to: the longest proxy.rpc_routes prefix, else
 * proxy.rpc_url; NULL when neither. */
const char *hr_proxy_rpc_url(const hr_proxy *p, const char *method);
/* Call the hook: url_or_NULL overrides the hook's URL (rpc: pass
 * hr_proxy_rpc_url's). Returns 0 and cb fires exactly once, later, from the
 * loop (never from inside this call) - a full client or a refused request
 * included, as a failure - unless hr_proxy_cancel is called first. *out (may
 * be NULL) is the handle for cancel, valid until cb fires. Negative (cb never
 * fires): HR_PROXY_E_NO_URL, HR_PROXY_E_REQUEST (ctx lacks what the hook needs). */
int hr_proxy_call(hr_proxy *p, hr_proxy_hook hook, const hr_proxy_ctx *ctx, const char *url_or_NULL,
                  hr_proxy_cb cb, void *ud, hr_proxy_req **out);
/* Abandon a call whose callback has not fired (its owner goes away): the
 * callback never fires. */
void hr_proxy_cancel(hr_proxy *p, hr_proxy_req *req);
const hr_proxy_stats *hr_proxy_get_stats(const hr_proxy *p);
/* The name of a failure kind ("timeout", "down", "status", "malformed", "full"). */
const char *hr_proxy_fail_name(hr_proxy_fail f);
/* Free: calls in flight are cancelled (their callbacks never fire: free the
 * proxy after its users). Not from inside a callback. */
void hr_proxy_free(hr_proxy *p);

#endif
