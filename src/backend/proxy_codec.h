/* proxy_codec.h - the backend proxy hooks' wire format (docs/backend.md):
 * the JSON request body Herald POSTs for connect / refresh / subscribe /
 * publish / rpc, and the strict parser of the backend's answer (exactly one
 * of result / error / disconnect, every member known and typed, sizes
 * bounded). No I/O. */
#ifndef HERALD_BACKEND_PROXY_CODEC_H
#define HERALD_BACKEND_PROXY_CODEC_H

#include "core/buf.h"

enum hr_proxy_err {
    HR_PROXY_E_JSON = -650,     /* the answer is not a JSON object (or has duplicate keys) */
    HR_PROXY_E_SHAPE = -651,    /* not exactly one of result / error / disconnect, or an unknown member */
    HR_PROXY_E_TYPE = -652,     /* a member of the wrong type or out of range */
    HR_PROXY_E_TOO_BIG = -653,  /* the answer, a string, info/data or the channel list beyond its bound */
    HR_PROXY_E_REQUEST = -654,  /* a request context missing what its hook needs */
};

typedef enum hr_proxy_hook {
    HR_HOOK_CONNECT, HR_HOOK_REFRESH, HR_HOOK_SUBSCRIBE, HR_HOOK_PUBLISH, HR_HOOK_RPC,
} hr_proxy_hook;

typedef struct hr_proxy_header {
    const char *name, *value;
} hr_proxy_header;

/* What Herald tells the backend. Strings are NUL-terminated; data is JSON
 * text the protocol layer already parsed (embedded as-is), or NULL. */
typedef struct hr_proxy_ctx {
    const char *client;        /* connection id (all hooks) */
    const char *transport;     /* websocket, sse, http_stream, long_poll */
    const char *protocol;      /* json, msgpack */
    const char *remote_addr;   /* after trusted-proxy resolution (connect) */
    const hr_proxy_header *headers; /* the allow-listed request headers (connect) */
    size_t nheaders;
    const char *user;          /* refresh, subscribe, publish, rpc (may be "") */
    const char *channel;       /* subscribe, publish */
    const char *method;        /* rpc */
    const char *data;          /* JSON text or NULL */
    size_t data_len;
} hr_proxy_ctx;

/* Bounds on an answer (hr_proxy_limits_default). */
#define HR_PROXY_DEFAULT_MAX_ANSWER_BYTES 65536u
#define HR_PROXY_DEFAULT_MAX_STRING 1024u
#define HR_PROXY_DEFAULT_MAX_CHANNELS 128u
#define HR_PROXY_DEFAULT_MAX_DEPTH 32u
#define HR_PROXY_REASON_MAX 123u   /* a WebSocket close reason's bytes */

typedef struct hr_proxy_limits {
    size_t max_answer_bytes, max_string, max_channels, max_depth;
} hr_proxy_limits;

typedef enum hr_proxy_kind { HR_PROXY_RESULT, HR_PROXY_ERROR, HR_PROXY_DISCONNECT } hr_proxy_kind;

typedef struct hr_proxy_answer {
    hr_proxy_kind kind;
    /* result */
    char *user;            /* connect: required (may be "") */
    int64_t expire_at;     /* connect, refresh: unix seconds, 0 = none */
    bool expired;          /* refresh: the backend ended the session */
    char *info;            /* JSON text or NULL (connect, refresh, subscribe) */
    char *data;            /* JSON text or NULL (connect, subscribe, publish: the replaced data, rpc) */
    char **channels;       /* connect: server-side subscriptions */
    size_t nchannels;
    /* error (code 400..1999) / disconnect (code 4000..4999) */
    uint32_t code;
    char *message;         /* error message or disconnect reason */
    bool temporary;        /* error: a retry may succeed */
} hr_proxy_answer;

void hr_proxy_limits_default(hr_proxy_limits *l);
const char *hr_proxy_hook_name(hr_proxy_hook hook);
/* Append the request body for hook to out. 0 or HR_PROXY_E_REQUEST. */
int hr_proxy_build(hr_proxy_hook hook, const hr_proxy_ctx *ctx, hr_buf *out);
/* Parse an answer body; on 0 free *a with hr_proxy_answer_free. On error *a
 * holds nothing and err (if given) a one-line reason for the log. */
int hr_proxy_parse(hr_proxy_hook hook, const char *body, size_t len, const hr_proxy_limits *lim,
                   hr_proxy_answer *a, char *err, size_t errlen);
void hr_proxy_answer_free(hr_proxy_answer *a);

#endif
