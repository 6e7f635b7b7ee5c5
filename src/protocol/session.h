/* session.h - a native-protocol client session: executes the commands of
 * src/protocol/native.h against the hub and engine, and turns publications
 * into pushes. Transport-agnostic: it writes through an hr_sink that the
 * transport (WebSocket, or an HTTP streaming or long-polling session)
 * provides. */
#ifndef HERALD_PROTOCOL_SESSION_H
#define HERALD_PROTOCOL_SESSION_H

#include "backend/proxy.h"
#include "hub/hub.h"
#include "protocol/native.h"
#include "protocol/opts.h"

typedef struct hr_session hr_session;

typedef struct hr_sink_vt {
    /* Send one complete payload (a reply or push batch); binary for
     * MessagePack, text for JSON. */
    void (*send)(void *t, const uint8_t *data, size_t len, bool binary);
    /* Send a payload shared by many sessions; payload_slot is the cache slot
     * of the payload (framing caches use the slots after it). */
    void (*send_shared)(void *t, struct hr_sbuf *payload, hr_enc_cache *cache, int payload_slot, bool binary);
    /* Bytes queued and not yet written (slow-consumer detection). */
    size_t (*queued)(void *t);
    /* Disconnect with a protocol code and reason (reconnect advice in the
     * code range); drop_queued discards output not yet written (a slow
     * consumer), else it is sent first. */
    void (*disconnect)(void *t, int code, const char *reason, bool drop_queued);
    /* The transport's name in client webhooks ("websocket", "http", ...). */
    const char *transport;
    /* Optional: a connect was refused (the transport's access log and
     * refusal counters): overload when the backend could not be asked,
     * else the token or the connect hook said no; code: the native error or
     * disconnect code; detail: why (may be NULL). */
    void (*refused)(void *t, bool overload, int code, const char *detail);
    /* Optional: send a channel's run of shared payloads (hub.h hr_run;
     * payload_slot filled in every publication's cache) as one queue entry,
     * if the queue's cost stays within limit bytes; false: nothing sent (send
     * them one by one with send_shared). */
    bool (*send_run)(void *t, hr_run *run, int payload_slot, bool binary, size_t limit);
} hr_sink_vt;

/* Disconnect codes (docs/protocol.md): 3000-3499 reconnect, 3500-3999 do not. */
enum hr_disconnect_code {
    HR_UNSUB_SERVER = 2000,         /* unsubscribe push: removed by the server API */
    HR_DISC_SERVER = 3000,          /* disconnected by the server API (default code): reconnect */
    HR_DISC_SHUTDOWN = 3001,        /* server shutting down: reconnect */
    HR_DISC_TOKEN_EXPIRED = 3005,   /* the connection token expired (not refreshed in time): get a new one, reconnect */
    HR_DISC_SLOW = 3008,            /* output queue overflow: reconnect and recover */
    HR_DISC_TOO_MANY_REQUESTS = 3009, /* raw mode: publishing faster than limits.publishes_per_*; native: more
                                         commands held than the reply budget while connect waits for the
                                         backend: reconnect later */
    HR_DISC_RESYNC = 3010,          /* the engine may have missed publications (Redis reconnected): reconnect and recover */
    HR_DISC_BACKEND_UNAVAILABLE = 3011, /* raw mode: the publish hook's backend is slow, down or answered garbage: reconnect later */
    HR_DISC_INVALID_TOKEN = 3500,   /* connect with a token that does not verify: do not reconnect with it */
    HR_DISC_BAD_REQUEST = 3501,     /* malformed frame: do not reconnect */
    HR_DISC_ENCODING = 3502,        /* a reply or push has no MessagePack form (e.g. nesting too deep): do not reconnect */
    HR_DISC_FORBIDDEN = 3503,
    HR_DISC_CONN_CLOSED = 1006,     /* webhooks only: the connection ended with no code known (RFC 6455's 1006) */
};

typedef enum hr_native_encoding {
    HR_NATIVE_JSON = 0,     /* text frames, newline-delimited JSON (subprotocol herald.json or none) */
    HR_NATIVE_MSGPACK = 1,  /* binary frames, concatenated MessagePack maps (herald.msgpack) */
} hr_native_encoding;

/* The client's address key in the abuse limits (ops/limits.c), so that
 * rejected tokens count against it. */
void hr_session_set_peer(hr_session *s, uint32_t ip_key);

hr_session *hr_session_new(hr_whub *wh, const hr_proto_opts *opts, const hr_sink_vt *sink, void *t,
                           hr_native_encoding enc);
hr_native_encoding hr_session_encoding(const hr_session *s);
/* The transport's output bound: the session's reply budget is
 * channels.reply_budget, at most half of it (hr_session_new assumes
 * websocket.max_queued_bytes). */
void hr_session_set_reply_budget(hr_session *s, size_t max_queued);
/* A connection token that came with the transport's request (HTTP
 * emulation: ?token= or Authorization: Bearer), used by a connect command
 * that carries none. Copied. */
void hr_session_set_token(hr_session *s, const char *token, size_t len);
/* The client's address (after trusted-proxy resolution) for the
 * client_connected webhook, copied only when the worker sends webhooks and
 * kept until it is announced. */
void hr_session_set_remote(hr_session *s, const char *addr);
/* The backend proxy hooks (connect, refresh, rpc; docs/backend.md) for this
 * session: the worker's proxy (NULL: none), the transport's name
 * ("websocket", "http_stream", "long_poll") and the client's origin for the
 * connect hook (taken; freed at once when the connect hook is off). */
void hr_session_set_backend(hr_session *s, hr_proxy *p, const char *transport, hr_proxy_origin *origin);
/* One frame from the client. While a connect waits for the backend, later
 * frames are held in order (at most the reply budget's bytes; past it the
 * client is disconnected with 3009) and executed after its answer. */
void hr_session_on_frame(hr_session *s, const uint8_t *data, size_t len);
/* How the connection ended, when the session did not end it itself (a
 * WebSocket close code from the client, a lost connection, an expired HTTP
 * session): reported by client_disconnected. Call before hr_session_free. */
void hr_session_closed(hr_session *s, int code, const char *reason);
/* The transport is gone: leave channels, drop presence, free. */
void hr_session_free(hr_session *s);
/* The worker's loop (and its timer wheel) is already gone (shutdown of
 * server-side sessions): forget the session's timers without touching the
 * wheel, and publish no `leave` from hr_session_free (it would wake the
 * freed loops), before hr_session_free. */
void hr_session_loop_gone(hr_session *s);

#endif
