/* wsframe.h - WebSocket frame codec (RFC 6455 §5). No I/O: header parsing,
 * masking, header writing and close-payload helpers. Message assembly,
 * fragmentation rules across frames and UTF-8 are the connection's job
 * (transport/websocket.c); this file knows single frames. */
#ifndef HERALD_CODEC_WSFRAME_H
#define HERALD_CODEC_WSFRAME_H

#include "core/common.h"

enum hr_ws_opcode {
    HR_WS_OP_CONT = 0x0,
    HR_WS_OP_TEXT = 0x1,
    HR_WS_OP_BINARY = 0x2,
    HR_WS_OP_CLOSE = 0x8,
    HR_WS_OP_PING = 0x9,
    HR_WS_OP_PONG = 0xA,
};

enum hr_ws_close_code {
    HR_WS_CLOSE_NORMAL = 1000,
    HR_WS_CLOSE_GOING_AWAY = 1001,
    HR_WS_CLOSE_PROTOCOL = 1002,
    HR_WS_CLOSE_UNSUPPORTED = 1003,
    HR_WS_CLOSE_NO_STATUS = 1005,   /* never sent on the wire */
    HR_WS_CLOSE_ABNORMAL = 1006,    /* never sent on the wire */
    HR_WS_CLOSE_INVALID_DATA = 1007,
    HR_WS_CLOSE_POLICY = 1008,
    HR_WS_CLOSE_TOO_BIG = 1009,
    HR_WS_CLOSE_EXTENSION = 1010,
    HR_WS_CLOSE_INTERNAL = 1011,
    HR_WS_CLOSE_RESTART = 1012,
    HR_WS_CLOSE_TRY_AGAIN = 1013,
};

/* Frame-header parse errors (each maps to close code 1002 except TOO_BIG -> 1009). */
enum hr_ws_frame_result {
    HR_WS_INCOMPLETE = -2,        /* need more bytes */
    HR_WS_E_RSV = -200,           /* RSV bit set that no extension allows */
    HR_WS_E_OPCODE = -201,        /* reserved opcode 3-7 or 0xB-0xF */
    HR_WS_E_CONTROL_FRAGMENTED = -202, /* control frame with FIN=0 */
    HR_WS_E_CONTROL_TOO_LONG = -203,   /* control frame payload > 125 */
    HR_WS_E_UNMASKED = -204,      /* client frame without mask when required */
    HR_WS_E_MASKED = -205,        /* masked frame when forbidden (client side) */
    HR_WS_E_LENGTH = -206,        /* 64-bit length with the top bit set */
    HR_WS_E_TOO_BIG = -207,       /* payload longer than max_frame */
    HR_WS_E_CONTROL_RSV1 = -208,  /* RSV1 on a control frame (even with deflate) */
};

typedef struct hr_ws_frame_header {
    bool fin;
    bool rsv1, rsv2, rsv3;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len;   /* 2..14 bytes */
} hr_ws_frame_header;

typedef struct hr_ws_parse_opts {
    bool require_mask;   /* server side: client frames MUST be masked */
    bool forbid_mask;    /* client side: server frames MUST NOT be masked */
    bool allow_rsv1;     /* permessage-deflate negotiated (data frames only) */
    uint64_t max_frame;  /* 0 = unlimited */
} hr_ws_parse_opts;

/* Parse a frame header from buf[0..len). Returns header length (2..14) on
 * success, HR_WS_INCOMPLETE, or an HR_WS_E_* error. */
int hr_ws_parse_header(const uint8_t *buf, size_t len, const hr_ws_parse_opts *o,
                       hr_ws_frame_header *h);

/* XOR `len` bytes in place with the mask, where `offset` is the position of
 * data[0] within the frame's payload (so a payload can be unmasked in pieces).
 * Word-at-a-time. */
void hr_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Write a frame header into out (at least 14 bytes). mask == NULL writes an
 * unmasked (server) frame. Returns the header length. */
size_t hr_ws_write_header(uint8_t *out, bool fin, bool rsv1, uint8_t opcode,
                          uint64_t payload_len, const uint8_t *mask);

/* May this close code appear on the wire? (1000-1003, 1007-1011, 1012-1014,
 * 3000-4999; not 1004-1006, 1015, <1000, 1016-2999, >=5000) */
bool hr_ws_close_code_valid(uint16_t code);

/* Parse a close frame payload: empty (code 1005), or 2-byte code + UTF-8
 * reason. Returns 0, or HR_WS_E_CLOSE_PAYLOAD (len 1, invalid code) or
 * HR_ERR_UTF8 (reason not UTF-8). */
#define HR_WS_E_CLOSE_PAYLOAD (-209)
int hr_ws_parse_close(const uint8_t *payload, size_t len, uint16_t *code,
                      const uint8_t **reason, size_t *reason_len);

/* Build a close payload (2-byte code + reason truncated to 123 bytes at a
 * UTF-8 boundary) into out (>= 125 bytes). Returns its length. */
size_t hr_ws_build_close(uint8_t *out, uint16_t code, const char *reason);

/* Close code to send for a parse error (1002 or 1009). */
uint16_t hr_ws_error_close_code(int err);
const char *hr_ws_error_text(int err);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
 * out must hold 29 bytes (28 chars + NUL). Uses OpenSSL's SHA-1. */
void hr_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Is this a valid Sec-WebSocket-Key (base64 of exactly 16 bytes)? */
bool hr_ws_key_valid(const char *key, size_t len);

#endif
