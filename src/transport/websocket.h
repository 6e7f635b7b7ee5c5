/* websocket.h - the WebSocket transport (RFC 6455 + RFC 7692): opening
 * handshake, frame reading with streaming UTF-8 validation, fragmentation,
 * control frames, permessage-deflate, heartbeats, idle timeout and the
 * closing handshake. What a message means is up to an hr_ws_handler:
 * /ws/echo (conformance echo), /ws (native protocol sessions), /ws/raw (raw
 * mode) and /app/{key} (Pusher protocol sessions). */
#ifndef HERALD_TRANSPORT_WEBSOCKET_H
#define HERALD_TRANSPORT_WEBSOCKET_H

#include "codec/http1.h"
#include "transport/conn.h"

typedef struct hr_ws_handler {
    /* Subprotocols this endpoint speaks, NULL-terminated, in the server's
     * order of preference; NULL = websocket.subprotocols from the config. */
    const char *const *subprotocols;
    void (*on_open)(hr_conn *c);
    /* A complete message (text is valid UTF-8). data is valid only during the call. */
    void (*on_message)(hr_conn *c, int opcode, const uint8_t *data, size_t len);
    void (*on_close)(hr_conn *c, uint16_t code);
    /* Optional: called once the handshake is known to be valid, just before
     * the 101. It may refuse the upgrade by answering with an HTTP error
     * itself (hr_http_respond_error) and returning false. Otherwise it may
     * append response header lines ("Name: value\r\n", 256 bytes at most)
     * to `headers`, and set *app: the per-connection state on_open then
     * finds with hr_ws_app. */
    bool (*on_handshake)(hr_conn *c, const hr_http_request *req, hr_buf *headers, void **app);
    /* Messages up to websocket.echo_max_message_size (the conformance echo)
     * instead of websocket.max_message_size. */
    bool echo_limits;
} hr_ws_handler;

extern const hr_ws_handler hr_ws_echo_handler;
extern const hr_ws_handler hr_ws_native_handler; /* /ws: native protocol (JSON) */
extern const hr_ws_handler hr_ws_raw_handler;    /* /ws/raw?channel=C: raw mode (protocol/raw.h) */
extern const hr_ws_handler hr_ws_pusher_handler; /* /app/{key}: the Pusher protocol (protocol/pusher.h) */
#define HR_PUSHER_PATH "/app/"

/* The negotiated subprotocol (a string of the handler's or the config's
 * list), or NULL. */
const char *hr_ws_subprotocol(hr_conn *c);
/* The handler's per-connection state. */
void *hr_ws_app(hr_conn *c);
void hr_ws_set_app(hr_conn *c, void *app);

/* Send a frame (opcode TEXT or BINARY) whose payload is shared by many
 * connections; framed and compressed once per worker through the encoding
 * cache (hub.h): slots payload_slot+1 and +2 hold the plain and compressed
 * frames. */
struct hr_sbuf;
struct hr_enc_cache;
void hr_ws_send_shared(hr_conn *c, int opcode, struct hr_sbuf *payload, struct hr_enc_cache *cache,
                       int payload_slot);
/* Send a channel's run of shared payloads (hub.h hr_run; payload_slot filled
 * in every publication's cache) as one queue entry: the frames
 * hr_ws_send_shared would queue one by one, laid end to end once per worker
 * (run->slot[payload_slot + 1 or + 2]). false, nothing sent: the frames are
 * this connection's own (a compression context), the connection is not an
 * open WebSocket, or the queue's cost would pass `limit` (send them one by
 * one). */
struct hr_run;
bool hr_ws_send_run(hr_conn *c, int opcode, struct hr_run *run, int payload_slot, size_t limit);

/* Validate the handshake in req and answer 101 (switching c to WebSocket),
 * or an HTTP error (400 / 403 / 405 / 426). Returns true when upgraded. */
bool hr_ws_upgrade(hr_conn *c, const hr_http_request *req, const hr_ws_handler *h);

/* Send a whole message (opcode TEXT or BINARY), compressed when negotiated. */
void hr_ws_send(hr_conn *c, int opcode, const void *data, size_t len);
/* Start the closing handshake with a code and a short reason. */
void hr_ws_close(hr_conn *c, uint16_t code, const char *reason);

#endif
