/* sse.h - Server-Sent Events (GET /sse?channel=a&channel=b; docs/transports.md).
 *
 * A browser's native EventSource (or curl, or any SSE client) subscribes to
 * the channels of its URL, checked and subscribed exactly as raw WebSocket
 * mode does (protocol/urlsubs.h), and receives every publication as an
 * event whose data is the publication's data and whose id carries the
 * stream's position in every channel of the URL. A reconnecting
 * EventSource sends the last id back (Last-Event-ID) and gets what it
 * missed, from history, before the live events, or a recovery_failed event
 * per channel when that is impossible.
 *
 * The response is a stream delimited by the connection's end (no
 * Content-Length, no chunked encoding, "Connection: close"): the connection
 * leaves the HTTP request/response cycle the way a WebSocket upgrade does,
 * and from then on nothing it receives is read as requests.
 *
 * Fan-out: the shared part of an event ("data: ...\n\n", or the whole
 * join/leave event) is encoded once per publication per worker
 * (hr_enc_cache slot HR_ENC_SSE); each stream adds only its own id line. */
#ifndef HERALD_TRANSPORT_SSE_H
#define HERALD_TRANSPORT_SSE_H

#include "auth/jwt.h"
#include "codec/http1.h"
#include "engine/pub.h"
#include "ops/ops.h"
#include "protocol/urlsubs.h"
#include "transport/opts.h"
#include "transport/conn.h"

/* Answer a request for /sse: OPTIONS (CORS preflight), GET (the stream, or
 * an HTTP error with a JSON body before it starts: 400 bad channels or
 * body, 401 token, 403 origin or channel policy, 405 method, 503 channel
 * full). close: the request asked for the connection to close (errors). */
void hr_sse_handle(hr_conn *c, const hr_http_request *req, bool close);

/* ---- the event id: a position in every channel of the stream -----------------------
 *
 * Text form: one entry per concrete channel of the URL (patterns have no
 * position), in URL order, separated by '.'; an entry is EPOCH:OFFSET with
 * EPOCH 1-16 characters of [0-9A-Za-z_-] and OFFSET a decimal integer:
 *     9c0d3e1a2b4f5a6c:41.3f1c0d5e9a7b4c21:7
 * Every character is allowed unescaped in a URL query (?last_event_id=). */

typedef struct hr_sse_pos {
    uint64_t offset;
    char epoch[HR_EPOCH_LEN + 1];
} hr_sse_pos;

/* Longest text of one entry, separator included. */
#define HR_SSE_ID_ENTRY_MAX (HR_EPOCH_LEN + 1 + 20 + 1)

/* Parse an id of n bytes. Fills out[0..max) with the first entries and
 * returns how many entries the id has (possibly more than max; 0 for an
 * empty id), or HR_ERR_PROTO when it is not of the form above. */
int hr_sse_id_parse(const char *s, size_t n, hr_sse_pos *out, size_t max);
/* Write the id of pos[0..n) into out (n * HR_SSE_ID_ENTRY_MAX bytes at
 * least; nothing is written for n = 0) and return its length. */
size_t hr_sse_id_format(const hr_sse_pos *pos, size_t n, char *out);

/* CORS for the HTTP transports (sse.allowed_origins): -1 refused, 0 no CORS
 * headers needed, 1 allowed cross-origin with the headers written into
 * cors[0..cap) (Access-Control-Expose-Headers: expose, unless NULL). */
int hr_cors_check(const hr_transport_opts *opt, const hr_http_request *req, const char *expose, char *cors, size_t cap);

/* The connection token of an HTTP transport request: the Authorization
 * header's Bearer credentials, else ?token= (decoded into buf, cap bytes).
 * 1 with *tok / *len set, 0 when there is none, <0 when malformed. */
int hr_http_token(const hr_http_request *req, char *buf, size_t cap, const char **tok, size_t *len);

/* The tokens of a request that subscribes from its URL (/sse, /ws/raw;
 * docs/auth.md): the connection token (hr_http_token) and every
 * ?sub_token=, verified (rejected ones count against the client's address).
 * Returns 0 with *a filled (who: the user, the granted channels and the
 * token's channels; free with hr_http_auth_free), or the HTTP status already
 * answered (400 malformed, 401 not verifying or expired, 403 a subscription
 * token for another user). cors: extra headers of an error answer. */
typedef struct hr_http_auth {
    bool has_token;            /* the request carried a connection token (it verified) */
    hr_jwt_claims conn;
    char **granted;
    size_t ngranted;
    hr_urlsubs_auth who;
} hr_http_auth;
int hr_http_auth_read(hr_conn *c, const hr_http_request *req, const char *cors, bool close, hr_http_auth *a);

/* An HTTP request's client as the operations' actor (ops.h), before it
 * has a subscriber: its address counts rejected tokens unless the
 * connection is already refused (then nothing is counted). */
hr_actor hr_http_actor(hr_conn *c);
void hr_http_auth_free(hr_http_auth *a);

#endif
