/* http.h - the HTTP/1.1 transport: request framing (keep-alive, pipelining,
 * Content-Length and chunked bodies), limits and timeouts, routing to the
 * endpoints (/health, /http/echo and static files here; /ready, /metrics,
 * the WebSocket endpoints, /sse, /poll and /stream, /admin/, /api/ and the
 * Pusher HTTP API in their own files), responses, and the Origin rule every
 * browser-reachable endpoint applies.
 * Every new connection starts here; a WebSocket upgrade hands it over to
 * transport/websocket.c, an event stream (/sse) to transport/sse.c, the
 * HTTP/2 client preface to transport/h2.c. */
#ifndef HERALD_TRANSPORT_HTTP_H
#define HERALD_TRANSPORT_HTTP_H

#include "codec/http1.h"
#include "transport/conn.h"

/* Start serving HTTP on a freshly accepted connection. */
void hr_http_attach(hr_conn *c);

/* Queue a complete response. `extra_headers` are full "Name: value\r\n"
 * lines (or NULL). head_only: HEAD request (no body bytes, same length).
 * close: send "Connection: close" and close after the write. */
void hr_http_respond(hr_conn *c, int status, const char *content_type, const char *extra_headers,
                     const void *body, size_t len, bool head_only, bool close);
/* A JSON error body {"error": message, "status": N} with the given status. */
/* The Content-Type of a file by its name's extension (static files, the
 * admin UI's embedded files); application/octet-stream when unknown. */
const char *hr_http_content_type(const char *path);
void hr_http_respond_error(hr_conn *c, int status, const char *extra_headers, const char *message, bool close);

/* The Origin rule shared by every endpoint a web page can reach: the
 * WebSockets (/ws, /ws/raw, /ws/echo; websocket.allowed_origins) and the HTTP
 * transports (/sse, /stream, /poll; sse.allowed_origins). -1 refused; 0
 * allowed, not cross-origin (no Origin header = not a browser, or the same
 * origin as the Host header); 1 allowed cross-origin (Origin is one of
 * allowed[0..n), exactly, or one of them is "*"). An Origin over 256 bytes
 * from another origin is refused. */
int hr_http_origin_check(const hr_http_request *req, char *const *allowed, size_t n);

/* Start a response whose body is a stream that ends when the connection
 * does (Server-Sent Events): the head carries no Content-Length and no
 * Transfer-Encoding, and "Connection: close", so the body is delimited by
 * the close (RFC 9112 section 6.3) and the connection is never reused.
 * `first` (may be empty) is queued with the head, in the same write. The
 * caller then switches the connection to its own transport. */
void hr_http_respond_stream(hr_conn *c, int status, const char *content_type, const char *extra_headers,
                            const void *first, size_t len);

/* The 503 / 429 answer (JSON body, Retry-After: c->retry_after) for a
 * connection or request refused by the abuse limits (HR_CONN_REFUSED_* in
 * c->flags); the connection closes after it. */
void hr_http_respond_refused(hr_conn *c, const hr_http_request *req);
/* A handshake or request refused: hr_worker_refused (reason; -1: the one
 * status means) and then hr_http_respond_error. req may be NULL. */
void hr_http_refuse(hr_conn *c, const hr_http_request *req, int reason, int status, const char *extra_headers,
                    const char *message, bool close);
/* A connection from a trusted proxy (HR_CONN_VIA_PROXY): the proxy's own
 * address key, used for requests whose headers name no client. */
void hr_http_set_peer_key(hr_conn *c, uint32_t key);
/* The answer to the current request comes later (an engine call in
 * flight): the connection reads no further request until hr_http_resume.
 * If the connection goes first, cancel(owner) is called from its release
 * (the owner must then not touch c). */
void hr_http_defer(hr_conn *c, void *owner, void (*cancel)(void *owner));
/* As hr_http_defer, but the connection's next pipelined POST /api/ requests
 * are dispatched meanwhile (their answers are the owner's to order: the
 * server API queues them after the deferred one); any other request waits.
 * Called again to hand the deferral to another owner (reading resumes if a
 * request was held). */
void hr_http_defer_pipelined(hr_conn *c, void *owner, void (*cancel)(void *owner));
/* The owner of c's deferral when its cancel function is `cancel`, else NULL. */
void *hr_http_deferred_by(hr_conn *c, void (*cancel)(void *owner));
/* The deferred answer has been queued (hr_http_respond...): go on with the
 * connection's pipelined requests. Returns false if c is closed. */
bool hr_http_resume(hr_conn *c);

/* The deferred request took the connection over (an event stream starts):
 * forget the deferral without reading further requests. */
void hr_http_defer_end(hr_conn *c);

const char *hr_http_reason(int status);
/* Drop HTTP state when the connection switches transport; with `to` (not
 * HR_CK_NONE) the time since HTTP took the connection is that transport's
 * handshake duration (its answer has just been queued). */
void hr_http_detach(hr_conn *c, hr_conn_kind to);

#endif
