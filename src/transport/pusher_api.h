/* pusher_api.h - the Pusher Channels HTTP API (/apps/{app_id}/...; docs/pusher.md,
 * "HTTP API") that the pusher server libraries call: trigger events (one or
 * many channels, batches), query channels and presence users, terminate a
 * user's connections. Routed by transport/http.c only when a Pusher app is
 * configured. The request's signature, the app and the channel mapping are
 * ops/pusher_app.c's; every publish is hr_op_publish as the server actor,
 * so the same rules apply as to /api/publish. */
#ifndef HERALD_TRANSPORT_PUSHER_API_H
#define HERALD_TRANSPORT_PUSHER_API_H

#include "codec/http1.h"
#include "transport/conn.h"

#define HR_PUSHER_API_PATH "/apps/"

/* Does the request's path start with HR_PUSHER_API_PATH? */
bool hr_pusher_api_path(const char *path, size_t len);
/* Answer a request whose path starts with /apps/ (the caller checked that
 * Pusher apps exist). */
void hr_pusher_api_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close);

#endif
