/* httpc.h - an asynchronous outgoing HTTP(S) client on a worker's event loop:
 * libcurl's multi-socket interface, its sockets watched by the loop's epoll
 * and its single timeout on a timerfd of its own (millisecond-precise, not
 * the loop's 50 ms wheel). One hr_httpc per loop (per worker); a bounded
 * number of requests in flight; keep-alive
 * connections reused by the multi handle's connection cache; TLS verified
 * (optionally against a CA file); the answer body bounded. Nothing here
 * blocks: name resolution uses libcurl's threaded resolver (hr_httpc_new
 * refuses a libcurl built without CURL_VERSION_ASYNCHDNS). */
#ifndef HERALD_BACKEND_HTTPC_H
#define HERALD_BACKEND_HTTPC_H

#include "core/loop.h"

enum hr_httpc_err {
    HR_HTTPC_E_TIMEOUT = -600,   /* no complete answer within the request's timeout (temporary) */
    HR_HTTPC_E_CONNECT = -601,   /* connection refused / unreachable / connect timeout (temporary) */
    HR_HTTPC_E_TOO_BIG = -602,   /* answer body larger than max_response_bytes */
    HR_HTTPC_E_FULL = -603,      /* max_inflight requests already in flight (temporary; from post) */
    HR_HTTPC_E_TLS = -604,       /* TLS handshake or certificate verification failed */
    HR_HTTPC_E_CANCELLED = -605, /* the client was freed with the request in flight */
    HR_HTTPC_E_RESOLVE = -606,   /* the host name did not resolve (temporary) */
    HR_HTTPC_E_TRANSFER = -607,  /* any other transfer failure (reset, malformed HTTP) (temporary) */
    HR_HTTPC_E_INVALID = -608,   /* bad URL or request (from post) */
};

/* Defaults (hr_httpc_opts_default) */
#define HR_HTTPC_DEFAULT_MAX_INFLIGHT 64u
#define HR_HTTPC_DEFAULT_CONNECT_TIMEOUT_MS 2000u
#define HR_HTTPC_DEFAULT_MAX_RESPONSE_BYTES 65536u
#define HR_HTTPC_DEFAULT_MAX_IDLE_CONNS 16u
#define HR_HTTPC_DEFAULT_TIMEOUT_MS 5000u

typedef struct hr_httpc_opts {
    uint32_t max_inflight;        /* requests in flight at once; more: HR_HTTPC_E_FULL */
    uint32_t connect_timeout_ms;  /* TCP + TLS connect */
    uint32_t max_response_bytes;  /* answer body bound: HR_HTTPC_E_TOO_BIG beyond */
    uint32_t max_idle_conns;      /* keep-alive connections the cache keeps open */
    const char *ca_file;          /* PEM CA bundle to verify against; NULL: the system store */
    bool tls_insecure;            /* skip certificate verification (tests only; default false) */
} hr_httpc_opts;

typedef struct hr_httpc_req {
    const char *url;                 /* http:// or https:// only */
    const char *const *headers;      /* "Name: value" lines, nheaders of them */
    size_t nheaders;
    const char *body;                /* POSTed as-is (Content-Type: application/json unless a header says otherwise) */
    size_t body_len;
    uint32_t timeout_ms;             /* whole request; 0: HR_HTTPC_DEFAULT_TIMEOUT_MS */
} hr_httpc_req;

typedef struct hr_httpc_resp {
    int err;            /* 0, or an hr_httpc_err: then status/body are not meaningful */
    long status;        /* HTTP status (any: the caller decides what a 500 means) */
    const char *body;   /* valid during the callback only; NUL-terminated */
    size_t body_len;
} hr_httpc_resp;

typedef struct hr_httpc hr_httpc;
typedef struct hr_httpc_call hr_httpc_call;
typedef void (*hr_httpc_cb)(const hr_httpc_resp *resp, void *ud);

void hr_httpc_opts_default(hr_httpc_opts *o);
/* Whether the linked libcurl resolves names without blocking. */
bool hr_httpc_async_dns(void);
/* NULL when libcurl cannot be initialised or lacks the asynchronous resolver
 * (logged). Call on the loop's thread; every other call too. */
hr_httpc *hr_httpc_new(hr_loop *loop, const hr_httpc_opts *opts);
/* Start a POST. 0 and *call (may be NULL) set: cb fires exactly once, later,
 * from the loop (never from inside post), unless the call is cancelled.
 * Negative (HR_HTTPC_E_FULL, HR_HTTPC_E_INVALID): cb never fires. */
int hr_httpc_post(hr_httpc *h, const hr_httpc_req *req, hr_httpc_cb cb, void *ud,
                  hr_httpc_call **call);
/* Abandon a call whose callback has not fired: the callback never fires and
 * the connection is closed or returned to the cache by libcurl. Not from
 * inside that call's own callback (it is already finished then). */
void hr_httpc_cancel(hr_httpc *h, hr_httpc_call *call);
/* Requests in flight now. */
size_t hr_httpc_inflight(const hr_httpc *h);
/* Free the client: every request still in flight has its callback fired with
 * HR_HTTPC_E_CANCELLED (so owners can release their state), then its
 * connections are closed. Not from inside an httpc callback. */
void hr_httpc_free(hr_httpc *h);

#endif
