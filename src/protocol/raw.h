/* raw.h - raw WebSocket mode (/ws/raw?channel=C; docs/protocol.md, "Raw
 * WebSocket mode"): the simplest way to consume channels, for clients that
 * speak no protocol at all (like nchan's WebSocket subscriber or a plain
 * `ws` broadcast server).
 *
 * The channels come from the URL (and the connection token, when the
 * request brought one: docs/auth.md); each publication's data (its JSON text) is
 * pushed as one message with nothing around it, encoded once per worker
 * (hr_enc_cache slot HR_ENC_RAW and its framings). A text message from the
 * client is published as data when it is JSON, the connection has exactly
 * one channel (not a pattern) and the publish operation lets this client
 * publish there (hr_op_publish: the namespace's publish rule, the rates and
 * the publish hook, as for the native protocol). No commands, no replies,
 * no join/leave pushes, no recovery.
 *
 * Transport-agnostic like session.h: it writes through an hr_sink_vt. The
 * query helpers (hr_url_decode, hr_query_next) are codec/urlquery.h's. */
#ifndef HERALD_PROTOCOL_RAW_H
#define HERALD_PROTOCOL_RAW_H

#include "hub/hub.h"
#include "protocol/session.h"
#include "protocol/urlsubs.h"
#include "protocol/opts.h"

typedef struct hr_raw hr_raw;

/* Close codes used only by raw mode (the others are session.h's). */
enum {
    HR_RAW_CLOSE_NORMAL = 1000,     /* the server API removed the last channel */
    HR_RAW_CLOSE_TOO_BIG = 1009,    /* a client message longer than channels.max_publication_size */
    HR_RAW_CLOSE_INTERNAL = 1011,
};

/* Who a raw client is, from the tokens its request carried (verified by
 * the transport, as for /sse): NULL = anonymous. */
typedef struct hr_raw_token {
    const hr_urlsubs_auth *who;    /* user, channels granted by subscription tokens, the token's channels */
    const char *info;              /* the connection token's info (compact JSON) or NULL */
    size_t info_len;
    int64_t exp;                   /* its exp (wall clock, s); 0 = none. At exp: close 3005 */
    const char *remote;            /* the client's address for client_connected, or NULL */
} hr_raw_token;

/* A raw client on worker wh, subscribed to every `channel` parameter of the
 * request's query string (query may be NULL) and the token's channels, in
 * presence where the namespace has presence, announced with a join where it
 * has join/leave, and registered with the hub for server commands. Refused
 * (NULL, nothing subscribed) with an HTTP status in *status and a message in
 * msg:
 *   400  no channel, a malformed escape, an invalid name or pattern, more
 *        than channels.max_subscriptions channels, an unknown namespace;
 *   403  a channel the client may not subscribe to (docs/auth.md: a
 *        user-limited channel of other users, the namespace's subscribe rule);
 *   503  a channel already has its namespace's max_subscribers.
 * A channel given twice counts once. t is the sink's transport handle. */
hr_raw *hr_raw_new(hr_whub *wh, const hr_proto_opts *opts, const hr_sink_vt *sink, void *t, const char *query,
                   size_t qlen, const hr_raw_token *tok, int *status, char *msg, size_t msgcap);
hr_client_idstr hr_raw_client_id(const hr_raw *r);
/* One complete message from the client. */
void hr_raw_on_message(hr_raw *r, bool binary, const uint8_t *data, size_t len);
/* The transport is gone: leave channels (presence, leave events), free. */
/* How the connection ended when raw mode did not end it (client_disconnected
 * webhook); before hr_raw_free. */
void hr_raw_closed(hr_raw *r, int code, const char *reason);
void hr_raw_free(hr_raw *r);

#endif
