/* raw.h - raw WebSocket mode (/ws/raw?channel=C; docs/protocol.md, "Raw
 * WebSocket mode"): the simplest way to consume channels, for clients that
 * speak no protocol at all (like nchan's WebSocket subscriber or a plain
 * `ws` broadcast server).
 *
 * The channels come from the URL; each publication's data (its JSON text) is
 * pushed as one message with nothing around it, encoded once per worker
 * (hr_enc_cache slot HR_ENC_RAW and its framings). A text message from the
 * client is published as data when it is JSON, the connection has exactly
 * one channel (not a pattern) and that channel's namespace allows client
 * publish. No commands, no replies, no join/leave pushes, no recovery.
 *
 * Transport-agnostic like session.h: it writes through an hr_sink_vt. The
 * query helpers below are pure functions (the URL codec of this mode). */
#ifndef HERALD_PROTOCOL_RAW_H
#define HERALD_PROTOCOL_RAW_H

#include "hub/hub.h"
#include "protocol/session.h"
#include "server/config.h"

#include <sys/types.h>

typedef struct hr_raw hr_raw;

/* Close codes used only by raw mode (the others are session.h's). */
enum {
    HR_RAW_CLOSE_NORMAL = 1000,     /* the server API removed the last channel */
    HR_RAW_CLOSE_TOO_BIG = 1009,    /* a client message longer than channels.max_publication_size */
    HR_RAW_CLOSE_INTERNAL = 1011,
};

/* A raw client on worker wh, subscribed to every `channel` parameter of the
 * request's query string (query may be NULL), in presence where the
 * namespace has presence, announced with a join where it has join/leave,
 * and registered with the hub for server commands. Refused (NULL, nothing
 * subscribed) with an HTTP status in *status and a message in msg:
 *   400  no channel, a malformed escape, an invalid name or pattern, more
 *        than channels.max_subscriptions channels, an unknown namespace;
 *   403  a user-limited channel (#) or a namespace refusing anonymous clients;
 *   503  a channel already has its namespace's max_subscribers.
 * A channel given twice counts once. t is the sink's transport handle. */
hr_raw *hr_raw_new(hr_whub *wh, const hr_config *cfg, const hr_sink_vt *sink, void *t, const char *query,
                   size_t qlen, int *status, char *msg, size_t msgcap);
const char *hr_raw_client_id(const hr_raw *r);
/* One complete message from the client. */
void hr_raw_on_message(hr_raw *r, bool binary, const uint8_t *data, size_t len);
/* The transport is gone: leave channels (presence, leave events), free. */
void hr_raw_free(hr_raw *r);

/* ---- query strings ---------------------------------------------------------------- */

/* Percent-decode s[0..n) into out (cap bytes; out may be s). "%XX" (hex,
 * either case) becomes one byte; '+' stays '+' (RFC 3986 query, not form
 * encoding: channel names may contain '+' and never a space). Returns the
 * decoded length, or -1 on a malformed escape ('%' not followed by two hex
 * digits) or when out is too small. */
ssize_t hr_url_decode(const char *s, size_t n, char *out, size_t cap);

/* The next parameter named `name` (compared after decoding) in the query
 * string q[0..n) ("a=1&b=2&a=3"), starting at *pos (0 at first). Its value
 * (empty when there is no '=') is decoded into out[0..cap) and its length
 * stored in *len. Returns 1 when found (*pos moves past it), 0 when there is
 * no more, HR_ERR_PROTO on a malformed escape in its value, HR_ERR_TOO_BIG
 * when the decoded value does not fit in cap. Empty pieces ("a=1&&b") and
 * other parameters (even malformed ones) are skipped. */
int hr_query_next(const char *q, size_t n, size_t *pos, const char *name, char *out, size_t cap, size_t *len);

#endif
