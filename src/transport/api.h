/* api.h - the server HTTP API: POST /api/<method> with a JSON body,
 * authenticated by "Authorization: apikey <key>" (or "X-API-Key: <key>").
 * Methods and their JSON shapes are in docs/api.md. */
#ifndef HERALD_TRANSPORT_API_H
#define HERALD_TRANSPORT_API_H

#include "codec/http1.h"
#include "transport/conn.h"

/* Handle a request whose path starts with /api/. */
void hr_api_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close);
/* Run the method `name` (or "batch") for a caller already authenticated -
 * by the API key (hr_api_handle) or as an admin (transport/admin.c): the
 * JSON body, the answer, its errors, all as /api/<name>. */
void hr_api_call(hr_conn *c, const char *name, size_t nlen, const uint8_t *body, size_t len, bool close);
/* GET /ready: 200 {"status":"ready"}, or 503 with the reason (draining,
 * an engine shard disconnected, loop lag). */
void hr_api_ready(hr_conn *c, bool get, bool head, bool close);

#endif
