/* proxy.h - whose connection is this: the client address that the abuse
 * limits (ops/limits.c) count, when Herald runs behind load balancers
 * and proxies (docs/security.md, "Client addresses behind proxies").
 *
 * Owns three steps of a connection's start and life:
 *   - admission by address once the address is known (hr_client_start):
 *     at accept for a direct connection, after the PROXY header with
 *     server.proxy_protocol;
 *   - the PROXY header stage (server.proxy_protocol): the header is peeked
 *     and consumed from the socket itself, byte-exact, before any TLS
 *     record or HTTP request is read, on the worker's loop, within
 *     http.header_timeout; a missing or malformed header closes the
 *     connection (logged at debug);
 *   - per-request admission for connections from server.trusted_proxies,
 *     by the address X-Forwarded-For (or Forwarded: for=) names.
 *
 * Memory: nothing per connection beyond a flag bit in hr_conn.flags and a
 * 4-byte field in what was padding of the HTTP state; while the header is
 * awaited the connection's layer is a shared static one; the header is
 * peeked into the worker's read buffer. */
#ifndef HERALD_TRANSPORT_PROXY_H
#define HERALD_TRANSPORT_PROXY_H

#include "codec/http1.h"
#include "transport/conn.h"

#include <sys/socket.h>

/* A new connection whose client address is sa (NULL when the limits do not
 * need it): admit it (or mark it refused, or from a trusted proxy), attach
 * the HTTP transport and, when tls, start the TLS handshake under the
 * header timeout. Returns 0, or HR_ERR_CLOSED when c was closed. */
int hr_client_start(hr_conn *c, const struct sockaddr *sa, socklen_t sl, bool tls);

/* server.proxy_protocol: c waits for its PROXY header (header timeout
 * armed): its I/O layer is the header stage, whose start (run by conn.c on
 * socket events) reads the header and then starts the connection with
 * hr_client_start; tls: the TLS layer (and handshake) follows the header. */
void hr_proxy_await(hr_conn *c, bool tls);

/* A request on a HR_CONN_VIA_PROXY connection, before it is dispatched:
 * the client is the address its forwarding headers name (peer_key, the
 * proxy's own, when they name none), admitted if it is not the one this
 * connection is counted for already. Returns true when the request was
 * refused (503 / 429 queued, the connection closes after it). */
bool hr_proxy_request(hr_conn *c, const hr_http_request *req, uint32_t peer_key);

/* req's client address as text into out ("" when unknown): the socket
 * peer's, or for a connection from a trusted proxy the address its
 * forwarding headers name. */
void hr_client_addr(hr_conn *c, const hr_http_request *req, char *out, size_t cap);

/* The backend's view of req's client (backend/proxy.h), for the connect
 * hook and client_connected: its address (hr_client_addr) and, with a
 * connect hook, the request headers named in proxy.forward_headers (at most
 * HR_ORIGIN_MAX_HEADERS, each value at most HR_ORIGIN_MAX_VALUE bytes:
 * longer ones are left out). NULL when the worker has neither a connect
 * hook nor webhooks. Free with hr_free. */
#define HR_ORIGIN_MAX_HEADERS 16
#define HR_ORIGIN_MAX_VALUE 4096
struct hr_proxy_origin *hr_client_origin(hr_conn *c, const hr_http_request *req);

#endif
