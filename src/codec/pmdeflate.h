/* pmdeflate.h - permessage-deflate (RFC 7692) on zlib: extension negotiation
 * and per-message compression / decompression. No I/O.
 *
 * Memory: a zlib deflate stream costs ~(1 << (windowBits+2)) + (1 << (memLevel+9))
 * bytes, an inflate stream ~(1 << windowBits) + 7 KiB. To keep idle
 * connections small the server prefers "no context takeover" on its side, so
 * one deflate stream per worker serves every connection (and a compressed
 * frame can be shared among subscribers), and streams that must persist are
 * created lazily on a connection's first compressed message. */
#ifndef HERALD_CODEC_PMDEFLATE_H
#define HERALD_CODEC_PMDEFLATE_H

#include "core/buf.h"
#include "core/common.h"

#include <zlib.h>

/* Server policy (from configuration). */
typedef struct hr_pmd_config {
    bool enabled;
    /* Allow keeping the server's compression context between messages when
     * the client does not ask us to drop it. false = always answer
     * server_no_context_takeover (recommended; shared per-worker deflater). */
    bool server_context_takeover;
    int server_max_window_bits;   /* 9..15: largest LZ77 window we compress with */
    int client_max_window_bits;   /* 9..15: largest window we accept from clients,
                                     only enforceable if the client offered the
                                     client_max_window_bits parameter */
    int mem_level;                /* zlib memLevel for deflate streams, 1..9 */
    int level;                    /* zlib compression level 0..9 */
    size_t min_size;              /* messages shorter than this go uncompressed */
} hr_pmd_config;

/* Negotiated parameters for one connection. */
typedef struct hr_pmd_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits;  /* 9..15 (we never use 8: zlib can't) */
    uint8_t client_max_window_bits;  /* 8..15 */
} hr_pmd_params;

/* Negotiate from the client's Sec-WebSocket-Extensions value(s). `offer` may
 * contain several comma-separated offers (any extensions); the first
 * acceptable permessage-deflate offer wins (RFC 7692 §5). On success returns
 * 1, fills *out and writes the response header value (NUL-terminated, e.g.
 * "permessage-deflate; server_no_context_takeover") into resp. Returns 0 when
 * nothing acceptable was offered (connection goes on without compression),
 * or HR_ERR_PROTO when the header is syntactically invalid (the handshake
 * should then fail with 400). Offers with unknown parameters, duplicate
 * parameters or out-of-range values are declined (skipped), not errors. */
int hr_pmd_negotiate(const char *offer, size_t len, const hr_pmd_config *cfg,
                     hr_pmd_params *out, char *resp, size_t resp_cap);

/* Streams. Init returns 0 or HR_ERR_NOMEM. */
int hr_pmd_deflater_init(z_stream *zs, int level, int window_bits, int mem_level);
int hr_pmd_inflater_init(z_stream *zs, int window_bits);
void hr_pmd_deflater_end(z_stream *zs);
void hr_pmd_inflater_end(z_stream *zs);

/* Compress one whole message, appending the compressed payload (with the
 * trailing 00 00 ff ff removed, RFC 7692 §7.2.1) to out. If reset is true
 * the stream is reset afterwards (no context takeover). Returns 0 or
 * HR_ERR_NOMEM / HR_ERR_INVALID. */
int hr_pmd_compress(z_stream *zs, const uint8_t *in, size_t len, bool reset, hr_buf *out);

/* Decompress one frame's payload of a compressed message, appending to out.
 * Call with last = true for the final frame of the message: the 00 00 ff ff
 * tail is appended internally. Output beyond max_out total bytes in `out`
 * stops decompression with HR_ERR_TOO_BIG (zip-bomb guard; close 1009).
 * Corrupt data returns HR_ERR_PROTO (close 1007). If reset is true (client
 * no context takeover) the stream is reset after the last frame. */
int hr_pmd_decompress(z_stream *zs, const uint8_t *in, size_t len, bool last,
                      bool reset, hr_buf *out, size_t max_out);

#endif
