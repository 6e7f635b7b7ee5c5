/* websocket.c - the WebSocket transport (see websocket.h).
 *
 * Reading: frame headers are parsed from whatever bytes are at hand; data
 * payloads are unmasked in place and streamed into the message buffer (text
 * is UTF-8-validated chunk by chunk, so an invalid byte fails the connection
 * at once, even inside a fragmented message). A single-frame message that
 * arrived whole is delivered straight from the read buffer with no copy.
 * Control frames (<= 125 bytes) are handled only once complete; until then
 * their bytes stay in the connection's leftover.
 *
 * Compression (RFC 7692): a compressed message that arrives whole in one
 * frame (the usual case) is inflated at once; with client_no_context_takeover
 * one inflate stream per worker serves every connection for that. A
 * fragmented compressed message is inflated piece by piece as it arrives (so
 * size limits and UTF-8 fail early) with a stream of the connection's own,
 * released when the message ends unless context takeover is configured.
 * Outgoing messages are deflated by a per-worker stream when
 * server_no_context_takeover is in force (the default).
 *
 * Unfinished messages: a message that did not arrive whole in one read (a
 * fragmented message, or one frame split over reads) holds memory: its
 * buffer and, when compressed, an inflate stream. /ws and /ws/raw accept
 * websocket.max_message_size (/ws/echo its own, larger, echo_max_message_size);
 * a message must be complete within websocket.message_timeout of its first
 * frame (however slowly its bytes drip in); and the unfinished messages of
 * all connections of a worker share websocket.max_partial_bytes: the
 * connection whose message would pass it is closed with 1013.
 *
 * Closing: the server answers a client's close and closes TCP after the
 * answer is written. When the server starts the close (shutdown, idle
 * timeout, protocol error) it sends its close frame, half-closes after it
 * and waits up to websocket.close_timeout for the client. */
#include "transport/websocket.h"
#include "codec/pmdeflate.h"
#include "codec/utf8.h"
#include "codec/wsframe.h"
#include "core/log.h"
#include "transport/worker.h"
#include "transport/http.h"
#include "transport/proxy.h" /* hr_client_origin: the connect hook's view of the client */
#include "transport/sse.h" /* hr_http_auth_read: the tokens of /ws/raw */
#include "protocol/raw.h"
#include "protocol/pusher.h"
#include "protocol/session.h"

#include <stdio.h>
#include <strings.h>
#include <string.h>

enum { WS_OPEN = 0, WS_CLOSE_SENT, WS_CLOSE_DONE, WS_FAILED };

/* What only some connections need, some of the time: the message being
 * assembled (allocated when a message does not arrive whole in one read,
 * freed when it ends) and the connection's own zlib streams (context
 * takeover, or one fragmented compressed message). NULL otherwise. */
typedef struct ws_more {
    hr_buf msg;              /* message being assembled (compressed or not) */
    z_stream *inflater;      /* own stream: only with client context takeover or while a fragmented compressed message lasts */
    z_stream *deflater;      /* own stream: only with server context takeover */
    uint32_t msg_start;      /* low 32 bits of the loop clock when the message began */
    uint32_t msg_charge;     /* bytes of this message charged to the worker's partial budget */
    bool msg_timed;          /* the timer knows about the message in progress */
} ws_more;

/* Per connection: of the current frame's header only what its payload
 * needs is kept, the unfinished message's state is in ws_more, and the
 * fields are ordered so there is little padding (72 bytes, from the
 * worker's pools; docs/benchmarks.md, "Memory per idle WebSocket"). */
typedef struct hr_ws {
    const hr_ws_handler *h;
    uint64_t frame_len;      /* the current frame's payload length */
    uint64_t got;            /* payload bytes of the current frame consumed */
    ws_more *more;           /* NULL while no message spans reads and no own zlib stream */
    uint64_t last_ping;
    void *app;               /* the handler's per-connection state */
    hr_utf8 utf8;            /* the text message in progress */
    uint8_t msg_opcode;      /* TEXT/BINARY while a message is in progress */
    uint8_t state;
    bool in_frame;
    bool sync_lost;          /* failed on a malformed frame header: frame boundaries unknown */
    bool msg_compressed;
    uint16_t close_code;     /* reported to the handler when the connection ends */
    hr_pmd_params pmd;
    uint8_t frame_mask[4];   /* the current frame's masking key */
    bool deflate;
    bool frame_fin;          /* the current frame ends its message */
    bool frame_cont;         /* the current frame continues a message */
    uint8_t subprotocol;     /* negotiated: 1 + its index in subprotocol_list, or 0 for none */
} hr_ws;

static const hr_conn_vt ws_vt;
static void ws_arm_heartbeat(hr_conn *c);
static void release_inflater(hr_ws *ws);

/* Memory an own inflate stream holds while a message is inflated (32 KiB
 * window + zlib's state), charged with the message's buffer. */
#define INFLATER_COST (40u << 10)

/* The largest message this endpoint accepts. */
static uint64_t max_message(const hr_conn *c)
{
    const hr_ws *ws = c->proto;
    const hr_transport_opts *opt = c->w->opts;
    return (uint64_t)(ws->h->echo_limits ? opt->ws_echo_max_message_size : opt->ws_max_message_size);
}

/* Bring the worker's count of unfinished-message bytes up to date with this
 * connection's buffer (and own inflate stream while it inflates a message
 * without context takeover). Returns true when the message grew and the
 * worker is now over websocket.max_partial_bytes. */
static bool charge_partial(hr_conn *c)
{
    hr_ws *ws = c->proto;
    ws_more *m = ws->more;
    if (!m) return false;
    hr_worker *w = c->w;
    size_t now = m->msg.cap + (m->inflater && ws->pmd.client_no_context_takeover ? INFLATER_COST : 0);
    size_t before = m->msg_charge;
    w->ws_partial_bytes = w->ws_partial_bytes - before + now;
    m->msg_charge = (uint32_t)now;
    return now > before && w->ws_partial_bytes > (size_t)w->opts->ws_max_partial_bytes;
}

static ws_more *more_of(hr_ws *ws)
{
    if (!ws->more) ws->more = hr_calloc(1, sizeof(*ws->more));
    return ws->more;
}

/* Free the rare state once it holds nothing: no message in progress, no
 * buffer, no charge, no own zlib stream. Call after charge_partial. */
static void more_trim(hr_ws *ws)
{
    ws_more *m = ws->more;
    if (!m || ws->msg_opcode || m->msg.cap || m->msg_charge || m->inflater || m->deflater) return;
    hr_free(m);
    ws->more = NULL;
}

/* ---- sending ------------------------------------------------------------- */

static void send_frame(hr_conn *c, bool rsv1, uint8_t opcode, const void *data, size_t len)
{
    uint8_t hdr[14];
    size_t hl = hr_ws_write_header(hdr, true, rsv1, opcode, len, NULL);
    hr_conn_send2(c, hdr, hl, data, len);
}

static void send_close_frame(hr_conn *c, uint16_t code, const char *reason)
{
    uint8_t payload[125];
    size_t n = code == HR_WS_CLOSE_NO_STATUS ? 0 : hr_ws_build_close(payload, code, reason);
    send_frame(c, false, HR_WS_OP_CLOSE, payload, n);
}

void hr_ws_send(hr_conn *c, int opcode, const void *data, size_t len)
{
    hr_ws *ws = c->proto;
    if (c->vt != &ws_vt || ws->state != WS_OPEN) return;
    hr_worker *w = c->w;
    hr_stat_add(&w->stats.ws_messages_out, 1);
    if (ws->deflate && len >= (size_t)w->opts->ws_deflate_min_size) {
        z_stream *zs = ws->pmd.server_no_context_takeover ? hr_worker_deflater(w, ws->pmd.server_max_window_bits)
                                                          : ws->more ? ws->more->deflater : NULL;
        if (!zs && !ws->pmd.server_no_context_takeover) {
            ws_more *m = more_of(ws);
            m->deflater = hr_calloc(1, sizeof(z_stream));
            if (hr_pmd_deflater_init(m->deflater, (int)w->opts->ws_deflate_level, ws->pmd.server_max_window_bits,
                                     (int)w->opts->ws_deflate_mem_level)) {
                hr_free(m->deflater);
                m->deflater = NULL;
                more_trim(ws); /* may free m: zs stays NULL, the frame goes uncompressed */
            } else {
                zs = m->deflater;
            }
        }
        if (zs) {
            w->zout.len = 0;
            if (hr_pmd_compress(zs, data, len, ws->pmd.server_no_context_takeover, &w->zout) == 0) {
                send_frame(c, true, (uint8_t)opcode, w->zout.data, w->zout.len);
                goto sent;
            }
        }
    }
    send_frame(c, false, (uint8_t)opcode, data, len);
sent:
    if (c->out.bytes > (size_t)w->opts->ws_max_queued_bytes) {
        /* what was not written is dropped: the close frame says why, and the
         * client recovers what it missed */
        hr_logf(HR_LOG_INFO, "client_slow", "websocket fd=%d: output queue over %lld bytes, disconnecting slow client (code %d)", c->io.fd,
                (long long)w->opts->ws_max_queued_bytes, HR_DISC_SLOW);
        hr_conn_drop_queued(c);
        hr_whub_count(&w->hub->slow_disconnects, 1);
        hr_ws_close(c, HR_DISC_SLOW, "slow consumer: reconnect and recover");
    }
}

static void arm_close_timer(hr_conn *c) { hr_conn_set_timer(c, (uint64_t)c->w->opts->ws_close_timeout_ms); }

void hr_ws_close(hr_conn *c, uint16_t code, const char *reason)
{
    hr_ws *ws = c->proto;
    if (c->vt != &ws_vt || ws->state != WS_OPEN) return;
    send_close_frame(c, code, reason);
    ws->state = WS_CLOSE_SENT;
    ws->close_code = code;
    arm_close_timer(c);
}

/* Fail the WebSocket connection (RFC 6455 §7.1.7): close frame, then FIN;
 * whatever the client still sends is discarded until it closes. */
static void ws_fail(hr_conn *c, uint16_t code, const char *reason)
{
    hr_ws *ws = c->proto;
    hr_logf(HR_LOG_DEBUG, "ws_failed", "websocket fd=%d: failing with %u: %s", c->io.fd, code, reason);
    if (ws->state == WS_OPEN) send_close_frame(c, code, reason);
    ws->state = WS_FAILED;
    ws->close_code = code;
    ws->msg_opcode = 0;
    if (ws->more) hr_buf_free(&ws->more->msg);
    if (ws->pmd.client_no_context_takeover) release_inflater(ws);
    charge_partial(c);
    more_trim(ws);
    hr_conn_shutdown_after_flush(c);
    arm_close_timer(c);
}

/* ---- receiving ------------------------------------------------------------- */

static void deliver(hr_conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
    hr_ws *ws = c->proto;
    hr_stat_add(&c->w->stats.ws_messages_in, 1);
    ws->h->on_message(c, opcode, data, len);
}

/* The connection's own inflate stream: kept for the connection's life with
 * client context takeover; otherwise created for one fragmented compressed
 * message and released when it ends. */
static z_stream *conn_inflater(hr_conn *c)
{
    ws_more *m = more_of(c->proto);
    if (!m->inflater) {
        m->inflater = hr_calloc(1, sizeof(z_stream));
        if (hr_pmd_inflater_init(m->inflater, ((hr_ws *)c->proto)->pmd.client_max_window_bits)) {
            hr_free(m->inflater);
            m->inflater = NULL;
        }
    }
    return m->inflater;
}

/* The caller trims ws->more afterwards (after charge_partial). */
static void release_inflater(hr_ws *ws)
{
    if (!ws->more || !ws->more->inflater) return;
    hr_pmd_inflater_end(ws->more->inflater);
    hr_free(ws->more->inflater);
    ws->more->inflater = NULL;
}

/* Inflate `len` compressed bytes of the current message into `out`,
 * validating text as it is produced. Returns 0, or -1 after failing the
 * connection. */
static int inflate_piece(hr_conn *c, z_stream *zs, const uint8_t *data, size_t len, bool last, hr_buf *out)
{
    hr_ws *ws = c->proto;
    size_t before = out->len;
    bool reset = ws->pmd.client_no_context_takeover;
    int rc = hr_pmd_decompress(zs, data, len, last, reset, out, (size_t)max_message(c));
    if (rc == HR_ERR_TOO_BIG) {
        ws_fail(c, HR_WS_CLOSE_TOO_BIG, "message too big");
        return -1;
    }
    if (rc < 0) {
        ws_fail(c, HR_WS_CLOSE_INVALID_DATA, "invalid compressed data");
        return -1;
    }
    if (ws->msg_opcode == HR_WS_OP_TEXT &&
        (hr_utf8_feed(&ws->utf8, out->data + before, out->len - before) == HR_UTF8_INVALID ||
         (last && ws->utf8.need))) {
        ws_fail(c, HR_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
        return -1;
    }
    return 0;
}

/* A compressed single-frame message, all present: inflate into the worker's
 * scratch buffer (with the worker's shared stream when contexts are not
 * kept) and deliver. */
static void deliver_compressed_whole(hr_conn *c, const uint8_t *data, size_t len)
{
    hr_ws *ws = c->proto;
    hr_worker *w = c->w;
    z_stream *zs = ws->pmd.client_no_context_takeover ? hr_worker_inflater(w) : conn_inflater(c);
    if (!zs) {
        ws_fail(c, HR_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    w->scratch.len = 0;
    if (inflate_piece(c, zs, data, len, true, &w->scratch)) return;
    uint8_t opcode = ws->msg_opcode;
    ws->msg_opcode = 0;
    deliver(c, opcode, w->scratch.data ? w->scratch.data : (const uint8_t *)"", w->scratch.len);
    if (w->scratch.cap > 4u << 20) hr_buf_free(&w->scratch); /* don't hold a huge buffer forever */
}

/* A message that spanned reads is complete: it is in ws->more->msg. */
static void finish_message(hr_conn *c)
{
    hr_ws *ws = c->proto;
    uint8_t opcode = ws->msg_opcode;
    ws->msg_opcode = 0;
    if (ws->msg_compressed && ws->pmd.client_no_context_takeover) release_inflater(ws);
    charge_partial(c);
    if (opcode == HR_WS_OP_TEXT && ws->utf8.need) {
        ws_fail(c, HR_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
        return;
    }
    hr_buf *msg = &more_of(ws)->msg;
    deliver(c, opcode, msg->data ? msg->data : (const uint8_t *)"", msg->len);
    if (c->proto == ws && ws->more) {
        hr_buf_free(&ws->more->msg);
        charge_partial(c);
        more_trim(ws);
    }
}

static void handle_control(hr_conn *c, uint8_t opcode, const uint8_t *payload, size_t len)
{
    hr_ws *ws = c->proto;
    if (opcode == HR_WS_OP_PING) {
        if (ws->state != WS_OPEN) return;
        /* Only the latest ping needs a pong (RFC 6455 §5.5.3): a pong still
         * waiting unwritten at the tail of the queue takes the new payload,
         * so a client that pings and never reads queues one pong, not one
         * per ping. */
        uint8_t hdr[14];
        size_t hl = hr_ws_write_header(hdr, true, false, HR_WS_OP_PONG, len, NULL);
        if (!hr_conn_replace_last(c, hdr[0], hdr, hl, payload, len)) hr_conn_send2(c, hdr, hl, payload, len);
        return;
    }
    if (opcode == HR_WS_OP_PONG) return; /* liveness is tracked by last_rx */
    /* CLOSE */
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    int rc = hr_ws_parse_close(payload, len, &code, &reason, &rlen);
    if (rc == HR_ERR_UTF8) {
        ws_fail(c, HR_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
        return;
    }
    if (rc < 0) {
        ws_fail(c, HR_WS_CLOSE_PROTOCOL, "invalid close frame");
        return;
    }
    if (ws->state == WS_OPEN) {
        /* echo the code and reason (RFC 6455 §5.5.1): the payload was just
         * checked and is at most 125 bytes, so it goes back as it came */
        send_frame(c, false, HR_WS_OP_CLOSE, payload, len);
        ws->close_code = code;
    }
    ws->state = WS_CLOSE_DONE;
    hr_conn_close_after_flush(c);
}

/* After the server failed the connection it only looks for the client's
 * close frame (then closes TCP, RFC 6455 §7.1.1), skipping everything else. */
static ssize_t ws_discard(hr_conn *c, uint8_t *data, size_t len)
{
    hr_ws *ws = c->proto;
    hr_ws_parse_opts lax = {.allow_rsv1 = true};
    size_t pos = 0;
    while (pos < len) {
        if (ws->in_frame) {
            uint64_t skip = HR_MIN((uint64_t)(len - pos), ws->frame_len - ws->got);
            ws->got += skip;
            pos += (size_t)skip;
            if (ws->got == ws->frame_len) ws->in_frame = false;
            continue;
        }
        if (ws->sync_lost) return (ssize_t)len; /* boundaries unknown: drop; EOF or close_timeout ends it */
        hr_ws_frame_header fh;
        int rc = hr_ws_parse_header(data + pos, len - pos, &lax, &fh);
        if (rc == HR_WS_INCOMPLETE) break;
        if (rc < 0) {
            ws->sync_lost = true; /* never read a close frame out of payload bytes */
            return (ssize_t)len;
        }
        if (fh.opcode == HR_WS_OP_CLOSE) {
            hr_conn_close_discarding_input(c); /* both close frames exchanged: close TCP */
            return -1;
        }
        pos += (size_t)rc;
        ws->frame_len = fh.payload_len;
        ws->in_frame = fh.payload_len > 0;
        ws->got = 0;
    }
    return (ssize_t)pos;
}

/* After an unfinished message grew: true (having failed the connection)
 * when the worker's unfinished messages now pass websocket.max_partial_bytes. */
static bool over_partial_budget(hr_conn *c)
{
    if (!charge_partial(c)) return false;
    hr_logf(HR_LOG_INFO, "ws_partial_bytes_over", "websocket fd=%d: unfinished messages of this worker over websocket.max_partial_bytes (%lld), closing",
            c->io.fd, (long long)c->w->opts->ws_max_partial_bytes);
    ws_fail(c, HR_WS_CLOSE_TRY_AGAIN, "server busy: too many unfinished messages, retry later");
    return true;
}

static ssize_t ws_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    hr_ws *ws = c->proto;
    const hr_transport_opts *opt = c->w->opts;
    /* Limits are on what the application sees. A compressed frame may be
     * slightly larger on the wire than its content (incompressible data grows
     * by ~0.03% plus a few bytes), so the wire check on compressed frames
     * allows for that; the exact message limit is enforced on the inflated
     * size by hr_pmd_decompress. */
    uint64_t max_msg = max_message(c);
    uint64_t max_frame = HR_MIN((uint64_t)opt->ws_max_frame_size, max_msg);
    uint64_t max_wire = ws->deflate ? max_frame + (max_frame >> 10) + 1024 : max_frame;
    hr_ws_parse_opts opts = {.require_mask = true, .allow_rsv1 = ws->deflate, .max_frame = max_wire};
    size_t pos = 0;
    for (;;) {
        if (c->flags & HR_CONN_CLOSED) return -1;
        if (ws->state == WS_CLOSE_DONE) return (ssize_t)len; /* nothing may follow a close */
        if (ws->state == WS_FAILED) {
            ssize_t r = ws_discard(c, data + pos, len - pos);
            return r < 0 ? r : (ssize_t)pos + r;
        }
        if (!ws->in_frame) {
            if (pos == len) break;
            hr_ws_frame_header hdr;
            int rc = hr_ws_parse_header(data + pos, len - pos, &opts, &hdr);
            if (rc == HR_WS_INCOMPLETE) break;
            if (rc < 0) {
                ws_fail(c, hr_ws_error_close_code(rc), hr_ws_error_text(rc));
                /* A frame over the size limit is otherwise well-formed: discard mode skips exactly
                 * its payload (keeping a partial header for the next read) and still finds the
                 * client's close frame after it. Any other bad header loses the frame boundaries: then nothing
                 * more is parsed (random payload bytes could look like a close frame, and closing
                 * with the rest of a large message unread would send an RST that destroys our
                 * close frame before the client reads it). */
                if (rc == HR_WS_E_TOO_BIG) { /* discard mode parses the header without the limit */
                    ssize_t r = ws_discard(c, data + pos, len - pos);
                    return r < 0 ? r : (ssize_t)pos + r;
                }
                ws->sync_lost = true;
                return (ssize_t)len;
            }
            const hr_ws_frame_header *fh = &hdr;
            if (fh->opcode & 0x8) {
                /* control frame: handle once complete (<= 131 bytes) */
                if (len - pos < (size_t)rc + fh->payload_len) break;
                uint8_t *p = data + pos + rc;
                hr_ws_mask(p, (size_t)fh->payload_len, fh->mask, 0);
                pos += (size_t)rc + (size_t)fh->payload_len;
                handle_control(c, fh->opcode, p, (size_t)fh->payload_len);
                continue;
            }
            /* From here the header is well-formed: on a failure the frame
             * counts as started, so discard mode skips its payload. */
            pos += (size_t)rc;
            ws->frame_len = fh->payload_len;
            memcpy(ws->frame_mask, fh->mask, sizeof(ws->frame_mask));
            ws->frame_fin = fh->fin;
            ws->frame_cont = fh->opcode == HR_WS_OP_CONT;
            ws->in_frame = fh->payload_len > 0;
            ws->got = 0;
            bool compressed = fh->opcode == HR_WS_OP_CONT ? ws->msg_compressed : fh->rsv1;
            if (fh->opcode == HR_WS_OP_CONT && !ws->msg_opcode) {
                ws_fail(c, HR_WS_CLOSE_PROTOCOL, "continuation frame without a message to continue");
                continue;
            }
            if (fh->opcode != HR_WS_OP_CONT && ws->msg_opcode) {
                ws_fail(c, HR_WS_CLOSE_PROTOCOL, "new message started before the previous one finished");
                continue;
            }
            if (!compressed && (fh->payload_len > max_frame || (ws->more ? ws->more->msg.len : 0) + fh->payload_len > max_msg)) {
                ws_fail(c, HR_WS_CLOSE_TOO_BIG, "message too big");
                continue;
            }
            if (fh->opcode != HR_WS_OP_CONT) {
                ws->msg_opcode = fh->opcode;
                ws->msg_compressed = fh->rsv1;
                hr_utf8_init(&ws->utf8);
                if (!fh->fin || (uint64_t)(len - pos) < fh->payload_len) {
                    /* it will not arrive whole in this read: it needs a start time and a buffer */
                    ws_more *m = more_of(ws);
                    m->msg_start = (uint32_t)hr_conn_now(c);
                    m->msg_timed = false;
                }
            }
            ws->in_frame = true;
        }
        /* data frame payload */
        size_t take = (size_t)HR_MIN((uint64_t)(len - pos), ws->frame_len - ws->got);
        uint8_t *p = data + pos;
        hr_ws_mask(p, take, ws->frame_mask, ws->got);
        bool whole = ws->got == 0 && take == ws->frame_len && ws->frame_fin && !ws->frame_cont;
        pos += take;
        ws->got += take;
        bool frame_done = ws->got == ws->frame_len;
        if (frame_done) ws->in_frame = false;
        /* On failure below, the loop goes on in discard mode (ws_discard),
         * which knows where the current frame ends. */
        if (ws->msg_compressed) {
            if (whole) {
                deliver_compressed_whole(c, p, take);
                continue;
            }
            /* fragmented or split across reads: inflate as it arrives, so
             * limits and UTF-8 fail as early as the data allows */
            z_stream *zs = conn_inflater(c);
            if (!zs) {
                ws_fail(c, HR_WS_CLOSE_INTERNAL, "out of memory");
                continue;
            }
            if (inflate_piece(c, zs, p, take, frame_done && ws->frame_fin, &ws->more->msg)) continue;
            if (!(frame_done && ws->frame_fin) && over_partial_budget(c)) continue;
        } else {
            if (ws->msg_opcode == HR_WS_OP_TEXT && hr_utf8_feed(&ws->utf8, p, take) == HR_UTF8_INVALID) {
                ws_fail(c, HR_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
                continue;
            }
            if (whole) {
                /* the common case: one frame, all here: delivered in place, no copy */
                uint8_t opcode = ws->msg_opcode;
                ws->msg_opcode = 0;
                if (opcode == HR_WS_OP_TEXT && ws->utf8.need)
                    ws_fail(c, HR_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
                else deliver(c, opcode, p, take);
                continue;
            }
            hr_buf_append(&more_of(ws)->msg, p, take);
            if (!(frame_done && ws->frame_fin) && over_partial_budget(c)) continue;
        }
        if (!frame_done) break; /* need more bytes */
        if (ws->frame_fin) finish_message(c);
    }
    if (ws->msg_opcode && ws->more && !ws->more->msg_timed && ws->state == WS_OPEN && opt->ws_message_timeout_ms) {
        ws->more->msg_timed = true; /* a message is unfinished: its deadline joins the timer */
        ws_arm_heartbeat(c);
    }
    return (ssize_t)pos;
}

static void ws_on_eof(hr_conn *c)
{
    hr_ws *ws = c->proto;
    if (ws->state == WS_OPEN) ws->close_code = HR_WS_CLOSE_ABNORMAL;
    hr_conn_close(c);
}

static void ws_arm_heartbeat(hr_conn *c)
{
    hr_ws *ws = c->proto;
    const hr_transport_opts *opt = c->w->opts;
    uint64_t now = hr_conn_now(c);
    uint64_t next = UINT64_MAX;
    if (opt->ws_ping_interval_ms) {
        uint64_t base = HR_MAX(c->last_rx, ws->last_ping);
        next = base + (uint64_t)opt->ws_ping_interval_ms;
    }
    if (opt->ws_idle_timeout_ms) next = HR_MIN(next, c->last_rx + (uint64_t)opt->ws_idle_timeout_ms);
    if (ws->msg_opcode && ws->more && opt->ws_message_timeout_ms) {
        uint32_t spent = (uint32_t)now - ws->more->msg_start;
        uint64_t left = (uint64_t)opt->ws_message_timeout_ms > spent ? (uint64_t)opt->ws_message_timeout_ms - spent : 0;
        next = HR_MIN(next, now + left);
    }
    if (next == UINT64_MAX) {
        hr_conn_stop_timer(c);
        return;
    }
    hr_conn_set_timer(c, next > now ? next - now : 1);
}

static void ws_on_timer(hr_conn *c)
{
    hr_ws *ws = c->proto;
    if (ws->state != WS_OPEN) {
        hr_conn_close(c); /* close handshake not finished in time */
        return;
    }
    const hr_transport_opts *opt = c->w->opts;
    uint64_t now = hr_conn_now(c);
    uint64_t quiet = now - c->last_rx;
    if (ws->msg_opcode && ws->more && opt->ws_message_timeout_ms &&
        (uint32_t)now - ws->more->msg_start >= (uint64_t)opt->ws_message_timeout_ms) {
        hr_logf(HR_LOG_INFO, "ws_message_timeout", "websocket fd=%d: message not completed within websocket.message_timeout, closing", c->io.fd);
        ws_fail(c, HR_WS_CLOSE_POLICY, "message not completed in time");
        return;
    }
    if (opt->ws_idle_timeout_ms && quiet >= (uint64_t)opt->ws_idle_timeout_ms) {
        hr_ws_close(c, HR_WS_CLOSE_GOING_AWAY, "idle timeout");
        return;
    }
    if (opt->ws_ping_interval_ms && quiet >= (uint64_t)opt->ws_ping_interval_ms &&
        now - ws->last_ping >= (uint64_t)opt->ws_ping_interval_ms) {
        send_frame(c, false, HR_WS_OP_PING, NULL, 0);
        ws->last_ping = now;
    }
    ws_arm_heartbeat(c);
}

static void ws_on_shutdown(hr_conn *c) { hr_ws_close(c, HR_WS_CLOSE_GOING_AWAY, "server shutting down, reconnect"); }

static hr_close_class close_class(uint16_t code)
{
    if (code == HR_WS_CLOSE_NORMAL) return HR_CLOSE_NORMAL;
    if (code == HR_WS_CLOSE_GOING_AWAY) return HR_CLOSE_GOING_AWAY;
    if (code == 0 || code == HR_WS_CLOSE_ABNORMAL) return HR_CLOSE_NONE;
    if (code >= 4000) return HR_CLOSE_APP;
    return code >= 3000 ? HR_CLOSE_SERVER : HR_CLOSE_ERROR;
}

static void ws_on_free(hr_conn *c)
{
    hr_ws *ws = c->proto;
    if (!ws) return;
    hr_stat_add(&c->w->stats.ws_closed[close_class(ws->close_code)], 1);
    if (ws->h->on_close) ws->h->on_close(c, ws->close_code ? ws->close_code : HR_WS_CLOSE_ABNORMAL);
    hr_stat_sub(&c->w->stats.websockets, 1);
    release_inflater(ws);
    if (ws->more) {
        hr_buf_free(&ws->more->msg);
        charge_partial(c);
        if (ws->more->deflater) {
            hr_pmd_deflater_end(ws->more->deflater);
            hr_free(ws->more->deflater);
        }
        hr_free(ws->more);
    }
    hr_worker_obj_free(c->w, ws);
}

static const hr_conn_vt ws_vt = {
    .on_data = ws_on_data,
    .on_eof = ws_on_eof,
    .on_timer = ws_on_timer,
    .on_shutdown = ws_on_shutdown,
    .on_free = ws_on_free,
    .name = "websocket",
    .kind = HR_CK_WEBSOCKET,
};

/* ---- opening handshake ------------------------------------------------------ */

static bool header_equals(const hr_http_header *h, const char *v)
{
    size_t n = strlen(v);
    return h && h->value_len == n && memcmp(h->value, v, n) == 0;
}

/* The subprotocols an endpoint offers: the handler's own list when it has
 * one (the native protocol's encodings), else websocket.subprotocols (at
 * most HR_CONFIG_MAX_LIST). */
static const char *const *subprotocol_list(const hr_transport_opts *opt, const hr_ws_handler *handler, size_t *n)
{
    const char *const *list = handler->subprotocols;
    *n = 0;
    if (!list) {
        *n = opt->ws_subprotocols.n;
        return (const char *const *)opt->ws_subprotocols.v;
    }
    while (list[*n]) ++*n;
    return list;
}

/* First of the endpoint's subprotocols that the client offered: 1 + its
 * index in subprotocol_list, or 0 for none. */
static uint8_t pick_subprotocol(const hr_transport_opts *opt, const hr_ws_handler *handler, const hr_http_request *req)
{
    size_t n;
    const char *const *list = subprotocol_list(opt, handler, &n);
    for (size_t s = 0; s < n && s < UINT8_MAX; s++) {
        for (size_t i = 0; i < req->num_headers; i++) {
            const hr_http_header *h = &req->headers[i];
            if (h->name_len == 22 && strncasecmp(h->name, "sec-websocket-protocol", 22) == 0 &&
                hr_http_has_token(h->value, h->value_len, list[s]))
                return (uint8_t)(s + 1);
        }
    }
    return 0;
}

/* The name of a negotiated subprotocol (pick_subprotocol's answer), or NULL. */
static const char *subprotocol_name(const hr_transport_opts *opt, const hr_ws_handler *handler, uint8_t k)
{
    size_t n;
    const char *const *list = subprotocol_list(opt, handler, &n);
    return k && k <= n ? list[k - 1] : NULL;
}

bool hr_ws_upgrade(hr_conn *c, const hr_http_request *req, const hr_ws_handler *handler)
{
    const hr_transport_opts *opt = c->w->opts;
    bool close = !req->keep_alive;
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 405, "Allow: GET\r\n", "method not allowed", close);
        return false;
    }
    const hr_http_header *up = hr_http_find_header(req, "upgrade");
    if (!up || !hr_http_has_token(up->value, up->value_len, "websocket")) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 426, "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                              "this endpoint needs a WebSocket upgrade", close);
        return false;
    }
    if (req->version_minor < 1) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 400, NULL, "WebSocket needs HTTP/1.1", true);
        return false;
    }
    const hr_http_header *conn = hr_http_find_header(req, "connection");
    if (!conn || !hr_http_has_token(conn->value, conn->value_len, "upgrade")) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 400, NULL, "Connection header must contain Upgrade", true);
        return false;
    }
    const hr_http_header *ver = hr_http_find_header(req, "sec-websocket-version");
    if (!header_equals(ver, "13")) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 426, "Sec-WebSocket-Version: 13\r\n", "unsupported Sec-WebSocket-Version (need 13)",
                              close);
        return false;
    }
    const hr_http_header *key = hr_http_find_header(req, "sec-websocket-key");
    if (!key || !hr_ws_key_valid(key->value, key->value_len)) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 400, NULL, "missing or invalid Sec-WebSocket-Key", true);
        return false;
    }
    if (req->content_length > 0 || req->chunked) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 400, NULL, "a WebSocket handshake has no body", true);
        return false;
    }
    if (hr_http_origin_check(req, opt->ws_allowed_origins.v, opt->ws_allowed_origins.n) < 0) {
        hr_http_refuse(c, req, HR_REFUSE_ORIGIN, 403, NULL, "origin not allowed (websocket.allowed_origins)", true);
        return false;
    }
    uint8_t proto_k = pick_subprotocol(opt, handler, req);
    const char *proto = subprotocol_name(opt, handler, proto_k);

    /* permessage-deflate: all Sec-WebSocket-Extensions lines, joined */
    hr_pmd_params pmd = {0};
    bool deflate = false;
    char ext_resp[256];
    hr_pmd_config pcfg = {
        .enabled = opt->ws_deflate,
        .server_context_takeover = opt->ws_deflate_server_context_takeover,
        .server_max_window_bits = (int)opt->ws_deflate_server_max_window_bits,
        .client_max_window_bits = (int)opt->ws_deflate_client_max_window_bits,
        .mem_level = (int)opt->ws_deflate_mem_level,
        .level = (int)opt->ws_deflate_level,
        .min_size = (size_t)opt->ws_deflate_min_size,
    };
    hr_buf ext = HR_BUF_INIT;
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header *h = &req->headers[i];
        if (h->name_len == 24 && strncasecmp(h->name, "sec-websocket-extensions", 24) == 0) {
            if (ext.len) hr_buf_append(&ext, ", ", 2);
            hr_buf_append(&ext, h->value, h->value_len);
        }
    }
    if (ext.len && opt->ws_deflate) {
        int rc = hr_pmd_negotiate((const char *)ext.data, ext.len, &pcfg, &pmd, ext_resp, sizeof(ext_resp));
        if (rc == HR_ERR_PROTO) {
            hr_buf_free(&ext);
            hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 400, NULL, "invalid Sec-WebSocket-Extensions header", true);
            return false;
        }
        deflate = rc == 1;
        if (deflate && !opt->ws_deflate_client_context_takeover && !pmd.client_no_context_takeover) {
            /* RFC 7692 §7.1.1.1: the server may require it even if not offered */
            pmd.client_no_context_takeover = true;
            size_t n = strlen(ext_resp);
            snprintf(ext_resp + n, sizeof(ext_resp) - n, "; client_no_context_takeover");
        }
    }
    hr_buf_free(&ext);

    /* the endpoint's own checks, last: nothing fails after them */
    hr_buf extra = HR_BUF_INIT;
    void *app = NULL;
    if (handler->on_handshake && !handler->on_handshake(c, req, &extra, &app)) {
        hr_buf_free(&extra);
        return false;
    }
    if (extra.len > 256) extra.len = 256;

    char accept[29];
    hr_ws_accept_key(key->value, key->value_len, accept);
    char resp[1024];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nServer: herald/" HERALD_VERSION "\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s%.*s\r\n",
                     accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "", proto ? "\r\n" : "",
                     deflate ? "Sec-WebSocket-Extensions: " : "", deflate ? ext_resp : "", deflate ? "\r\n" : "",
                     (int)extra.len, extra.len ? (const char *)extra.data : "");
    hr_buf_free(&extra);
    hr_conn_send(c, resp, (size_t)n);

    hr_http_detach(c, handler == &hr_ws_raw_handler ? HR_CK_RAW : HR_CK_WEBSOCKET);
    hr_ws *ws = hr_worker_obj_alloc(c->w, sizeof(*ws));
    ws->h = handler;
    ws->subprotocol = proto_k;
    ws->deflate = deflate;
    ws->pmd = pmd;
    ws->last_ping = hr_conn_now(c);
    ws->app = app;
    hr_utf8_init(&ws->utf8);
    hr_conn_set_transport(c, &ws_vt, ws);
    if (handler == &hr_ws_raw_handler) hr_conn_set_kind(c, HR_CK_RAW);
    hr_stat_add(&c->w->stats.websockets, 1);
    c->last_rx = hr_conn_now(c);
    ws_arm_heartbeat(c);
    if (handler->on_open) handler->on_open(c);
    if (c->w->draining) hr_ws_close(c, HR_WS_CLOSE_GOING_AWAY, "server shutting down, reconnect");
    return true;
}

/* ---- /ws/echo ---------------------------------------------------------------- */

static void echo_on_message(hr_conn *c, int opcode, const uint8_t *data, size_t len)
{
    hr_ws_send(c, opcode, data, len);
}

const hr_ws_handler hr_ws_echo_handler = {
    .on_message = echo_on_message,
    .echo_limits = true,
};

const char *hr_ws_subprotocol(hr_conn *c)
{
    if (c->vt != &ws_vt) return NULL;
    const hr_ws *ws = c->proto;
    return subprotocol_name(c->w->opts, ws->h, ws->subprotocol);
}

void *hr_ws_app(hr_conn *c) { return c->vt == &ws_vt ? ((hr_ws *)c->proto)->app : NULL; }
void hr_ws_set_app(hr_conn *c, void *app)
{
    if (c->vt == &ws_vt) ((hr_ws *)c->proto)->app = app;
}

/* The frame of a payload shared by many connections, framed (and
 * compressed) once per worker through the encoding cache; *owned: not
 * cacheable (an unusual window), the caller releases it. NULL: this
 * connection's frame is its own (it keeps a compression context, or
 * compressing failed): send the payload with hr_ws_send. */
static hr_sbuf *shared_frame(hr_conn *c, int opcode, hr_sbuf *payload, hr_enc_cache *cache, int payload_slot,
                             bool *owned)
{
    hr_ws *ws = c->proto;
    hr_worker *w = c->w;
    *owned = false;
    bool compress = ws->deflate && payload->len >= (size_t)w->opts->ws_deflate_min_size;
    if (compress && !ws->pmd.server_no_context_takeover) return NULL;
    int slot = payload_slot + (compress ? 2 : 1);
    if (compress && ws->pmd.server_max_window_bits != 15) slot = -1; /* unusual window: not cacheable */
    if (slot >= 0 && cache->slot[slot]) return cache->slot[slot];
    uint8_t hdr[14];
    size_t hl;
    hr_sbuf *frame;
    if (compress) {
        z_stream *zs = hr_worker_deflater(w, ws->pmd.server_max_window_bits);
        w->zout.len = 0;
        if (!zs || hr_pmd_compress(zs, payload->data, payload->len, true, &w->zout)) return NULL;
        hl = hr_ws_write_header(hdr, true, true, opcode, w->zout.len, NULL);
        frame = hr_sbuf_new2(hdr, hl, w->zout.data, w->zout.len);
    } else {
        hl = hr_ws_write_header(hdr, true, false, opcode, payload->len, NULL);
        frame = hr_sbuf_new2(hdr, hl, payload->data, payload->len);
    }
    if (slot >= 0) cache->slot[slot] = frame; /* the cache owns the creation reference */
    else *owned = true;
    return frame;
}

/* Queue a frame whose payload is shared by many connections. */
void hr_ws_send_shared(hr_conn *c, int opcode, hr_sbuf *payload, hr_enc_cache *cache, int payload_slot)
{
    hr_ws *ws = c->proto;
    if (c->vt != &ws_vt || ws->state != WS_OPEN) return;
    hr_stat_add(&c->w->stats.ws_messages_out, 1);
    bool owned;
    hr_sbuf *frame = shared_frame(c, opcode, payload, cache, payload_slot, &owned);
    if (!frame) {
        hr_ws_send(c, opcode, payload->data, payload->len);
        return;
    }
    hr_conn_send_shared(c, frame);
    if (owned) hr_sbuf_unref(frame);
}

/* A run's frames for c laid end to end in one buffer, made once per worker
 * and form (run->slot[payload_slot + 1] plain, + 2 for connections that
 * compress without context takeover: each frame as hr_ws_send_shared would
 * queue it, so the bytes are the same). NULL: c's frames are not all
 * shareable (a compression context, an unusual window, a failure). */
static hr_sbuf *run_frames(hr_conn *c, int opcode, hr_run *run, int payload_slot)
{
    hr_ws *ws = c->proto;
    if (ws->deflate && (!ws->pmd.server_no_context_takeover || ws->pmd.server_max_window_bits != 15)) return NULL;
    int rslot = payload_slot + (ws->deflate ? 2 : 1);
    if (run->slot[rslot]) return run->slot[rslot];
    size_t total = 0;
    bool owned;
    for (uint32_t i = 0; i < run->n; i++) {
        hr_sbuf *f = shared_frame(c, opcode, run->caches[i].slot[payload_slot], &run->caches[i], payload_slot, &owned);
        if (!f) return NULL;
        total += f->len;
    }
    hr_sbuf *b = hr_sbuf_alloc(total);
    size_t at = 0;
    for (uint32_t i = 0; i < run->n; i++) {
        hr_sbuf *f = shared_frame(c, opcode, run->caches[i].slot[payload_slot], &run->caches[i], payload_slot, &owned);
        memcpy(b->data + at, f->data, f->len);
        at += f->len;
    }
    run->slot[rslot] = b; /* the hub releases it after the run */
    return b;
}

bool hr_ws_send_run(hr_conn *c, int opcode, hr_run *run, int payload_slot, size_t limit)
{
    hr_ws *ws = c->proto;
    if (c->vt != &ws_vt || ws->state != WS_OPEN) return false;
    hr_sbuf *b = run_frames(c, opcode, run, payload_slot);
    if (!b || !hr_conn_send_run(c, b, run->n, limit)) return false;
    hr_stat_add(&c->w->stats.ws_messages_out, run->n);
    return true;
}

/* ---- /ws: the native protocol -------------------------------------------------- */

static void sink_send(void *t, const uint8_t *data, size_t len, bool binary)
{
    hr_ws_send(t, binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT, data, len);
}

static void sink_send_shared(void *t, hr_sbuf *payload, hr_enc_cache *cache, int slot, bool binary)
{
    hr_ws_send_shared(t, binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT, payload, cache, slot);
}

static bool sink_send_run(void *t, hr_run *run, int slot, bool binary, size_t limit)
{
    return hr_ws_send_run(t, binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT, run, slot, limit);
}

/* Called before each push: a queue over the limit is first offered to the
 * kernel, so a burst within one loop turn is not mistaken for a slow reader. */
static size_t sink_queued(void *t)
{
    hr_conn *c = t;
    if (c->out.bytes > (size_t)c->w->opts->ws_max_queued_bytes) return hr_conn_write_now(c);
    return c->out.bytes;
}

static void sink_disconnect(void *t, int code, const char *reason, bool drop_queued)
{
    hr_conn *c = t;
    if (drop_queued) hr_conn_drop_queued(c); /* what it missed, it recovers from history */
    hr_ws_close(c, (uint16_t)code, reason);
}

static void sink_refused(void *t, bool overload, int code, const char *detail)
{
    hr_conn *c = t;
    hr_worker_refused(c->w, overload ? HR_REFUSE_OVERLOAD : HR_REFUSE_TOKEN, c, NULL, "ws", code, detail);
}

static const hr_sink_vt ws_sink = {sink_send,       sink_send_shared, sink_queued, sink_disconnect, "websocket",
                                   sink_refused,    sink_send_run};

/* The reason client_disconnected gives for a close the session did not
 * start (the client's close frame, the transport's own limits, a lost
 * connection): RFC 6455's meaning of the code. */
static const char *close_text(uint16_t code)
{
    switch (code) {
    case HR_WS_CLOSE_NORMAL: return "normal closure";
    case HR_WS_CLOSE_GOING_AWAY: return "going away";
    case HR_WS_CLOSE_PROTOCOL: return "protocol error";
    case HR_WS_CLOSE_UNSUPPORTED: return "unsupported data";
    case HR_WS_CLOSE_ABNORMAL: return "connection lost";
    case HR_WS_CLOSE_INVALID_DATA: return "invalid data";
    case HR_WS_CLOSE_POLICY: return "policy violation";
    case HR_WS_CLOSE_TOO_BIG: return "message too big";
    case HR_WS_CLOSE_TRY_AGAIN: return "try again later";
    default: return "connection closed";
    }
}

/* The upgrade request's client for the backend's connect hook and
 * client_connected (the app until on_open makes the session). */
static bool native_on_handshake(hr_conn *c, const hr_http_request *req, hr_buf *headers, void **app)
{
    HR_UNUSED(headers);
    *app = hr_client_origin(c, req);
    return true;
}

static void native_on_open(hr_conn *c)
{
    const char *proto = hr_ws_subprotocol(c);
    hr_native_encoding enc = proto && strcmp(proto, "herald.msgpack") == 0 ? HR_NATIVE_MSGPACK : HR_NATIVE_JSON;
    hr_proxy_origin *origin = hr_ws_app(c);
    hr_session *s = hr_session_new(c->w->hub, c->w->proto, &ws_sink, c, enc);
    hr_session_set_peer(s, c->ip_key);
    if (origin) hr_session_set_remote(s, origin->remote_addr);
    hr_session_set_backend(s, c->w->proxy, "websocket", origin);
    hr_ws_set_app(c, s);
}

static void native_on_message(hr_conn *c, int opcode, const uint8_t *data, size_t len)
{
    hr_session *s = hr_ws_app(c);
    if (!s) return;
    bool msgpack = hr_session_encoding(s) == HR_NATIVE_MSGPACK;
    if (opcode != (msgpack ? HR_WS_OP_BINARY : HR_WS_OP_TEXT)) {
        sink_disconnect(c, HR_DISC_BAD_REQUEST, msgpack ? "text frames are not supported by the MessagePack protocol (herald.msgpack)"
                                : "binary frames are not supported by the JSON protocol", false);
        return;
    }
    hr_session_on_frame(s, data, len);
}

static void native_on_close(hr_conn *c, uint16_t code)
{
    hr_session *s = hr_ws_app(c);
    hr_ws_set_app(c, NULL);
    hr_session_closed(s, code, close_text(code));
    hr_session_free(s);
}

static const char *const native_subprotocols[] = {"herald.json", "herald.msgpack", NULL};

const hr_ws_handler hr_ws_native_handler = {
    .subprotocols = native_subprotocols,
    .on_handshake = native_on_handshake,
    .on_open = native_on_open,
    .on_message = native_on_message,
    .on_close = native_on_close,
};

/* ---- /ws/raw: raw mode (protocol/raw.h) ------------------------------------------- */

/* Read the tokens (as /sse does: 401 for a bad one) and subscribe before
 * the 101, so a refused channel is an HTTP error with a JSON body; the
 * client id goes back in X-Herald-Client. */
static bool raw_on_handshake(hr_conn *c, const hr_http_request *req, hr_buf *headers, void **app)
{
    int status = 400;
    char msg[256];
    hr_http_auth au;
    if (hr_http_auth_read(c, req, "", !req->keep_alive || c->w->draining, &au)) return false;
    char addr[64];
    hr_client_addr(c, req, addr, sizeof(addr));
    hr_raw_token tok = {&au.who, au.conn.info, au.conn.info_len, au.conn.has_exp ? HR_MAX(au.conn.exp, 1) : 0, addr};
    hr_raw *r = hr_raw_new(c->w->hub, c->w->proto, &ws_sink, c, req->query, req->query_len, &tok, &status, msg,
                           sizeof(msg));
    hr_http_auth_free(&au);
    if (!r) {
        hr_http_refuse(c, req, -1, status, NULL, msg, !req->keep_alive || c->w->draining);
        return false;
    }
    hr_buf_printf(headers, "X-Herald-Client: %s\r\n", hr_raw_client_id(r).s);
    *app = r;
    return true;
}

static void raw_on_message(hr_conn *c, int opcode, const uint8_t *data, size_t len)
{
    hr_raw *r = hr_ws_app(c);
    if (r) hr_raw_on_message(r, opcode == HR_WS_OP_BINARY, data, len);
}

static void raw_on_close(hr_conn *c, uint16_t code)
{
    hr_raw *r = hr_ws_app(c);
    hr_ws_set_app(c, NULL);
    hr_raw_closed(r, code, close_text(code));
    hr_raw_free(r);
}

const hr_ws_handler hr_ws_raw_handler = {
    .on_message = raw_on_message,
    .on_close = raw_on_close,
    .on_handshake = raw_on_handshake,
};

/* ---- /app/{key}: the Pusher protocol (protocol/pusher.h) --------------------------------- */

/* The session reads the key and ?protocol= now; it answers (or refuses,
 * Pusher's way: a pusher:error and a close) once the WebSocket is open. */
static bool pusher_on_handshake(hr_conn *c, const hr_http_request *req, hr_buf *headers, void **app)
{
    HR_UNUSED(headers);
    size_t at = sizeof(HR_PUSHER_PATH) - 1;
    *app = hr_pusher_new(c->w->hub, c->w->proto, &ws_sink, c, req->path + at, req->path_len - at, req->query,
                         req->query_len);
    return true;
}

static void pusher_on_open(hr_conn *c) { hr_pusher_open(hr_ws_app(c)); }

static void pusher_on_message(hr_conn *c, int opcode, const uint8_t *data, size_t len)
{
    hr_pusher *p = hr_ws_app(c);
    if (p) hr_pusher_on_message(p, opcode == HR_WS_OP_BINARY, data, len);
}

static void pusher_on_close(hr_conn *c, uint16_t code)
{
    HR_UNUSED(code);
    hr_pusher *p = hr_ws_app(c);
    hr_ws_set_app(c, NULL);
    hr_pusher_free(p);
}

const hr_ws_handler hr_ws_pusher_handler = {
    .on_handshake = pusher_on_handshake,
    .on_open = pusher_on_open,
    .on_message = pusher_on_message,
    .on_close = pusher_on_close,
};
