/* pusher.h - the Pusher Channels protocol, version 7, on a WebSocket
 * (/app/{key}; docs/pusher.md): the codec of its JSON messages and the
 * session that maps them to the operations (ops/ops.h, ops/pusher_app.h).
 * No I/O of its own: it writes through an hr_sink_vt like the native
 * session, and the transport hands it each complete text message.
 *
 * Life: hr_pusher_new while the transport answers the upgrade (it reads the
 * key and the query; nothing is sent yet), hr_pusher_open once the 101 is
 * out (connection_established, or pusher:error and the close), then
 * hr_pusher_on_message per message and hr_pusher_free when the transport
 * closes. */
#ifndef HERALD_PROTOCOL_PUSHER_H
#define HERALD_PROTOCOL_PUSHER_H

#include "hub/hub.h"
#include "protocol/opts.h"
#include "protocol/session.h"

typedef struct hr_pusher hr_pusher;

/* Pusher's close codes (docs/pusher.md): 4000-4099 do not reconnect,
 * 4100-4199 reconnect after a back-off, 4200-4299 reconnect at once. */
enum hr_pusher_code {
    HR_PUSHER_UNKNOWN_APP = 4001,
    HR_PUSHER_APP_DISABLED = 4003,
    HR_PUSHER_BAD_PROTOCOL = 4007,
    HR_PUSHER_NO_PROTOCOL = 4008,
    HR_PUSHER_UNAUTHORIZED = 4009,
    HR_PUSHER_OVER_CAPACITY = 4100,
    HR_PUSHER_RECONNECT = 4200,
    HR_PUSHER_PONG_TIMEOUT = 4201,
    HR_PUSHER_RATE_LIMITED = 4301,
};

/* How long the server waits for pusher:pong after its pusher:ping. */
#define HR_PUSHER_PONG_WAIT_MS 30000

/* A session for the app whose key is key[0..klen) (the path's last part),
 * with the request's query (may be NULL). t is the sink's handle. */
hr_pusher *hr_pusher_new(hr_whub *wh, const hr_proto_opts *opts, const hr_sink_vt *sink, void *t, const char *key,
                         size_t klen, const char *query, size_t qlen);
/* The WebSocket is open: connection_established, or a refusal (pusher:error
 * with 4001 / 4003 / 4007 / 4008 / 4100, then the close with that code). */
void hr_pusher_open(hr_pusher *p);
/* One complete message from the client. */
void hr_pusher_on_message(hr_pusher *p, bool binary, const uint8_t *data, size_t len);
/* The transport is gone: leave every channel (presence, member_removed), free. */
void hr_pusher_free(hr_pusher *p);

#endif
