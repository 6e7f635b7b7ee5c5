/* wsframe.c - owns the WebSocket single-frame codec (RFC 6455 §5): header
 * parsing and validation, payload masking, header writing, close-frame
 * payloads (§5.5.1, §7.4) and the opening-handshake key helpers (§1.3, §4).
 * No I/O and no state across frames. */
#include "codec/wsframe.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "codec/utf8.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_GUID_LEN (sizeof(WS_GUID) - 1)
#define CONTROL_MAX 125
#define CLOSE_REASON_MAX (CONTROL_MAX - 2)

/* ---- header parsing ------------------------------------------------------ */

static bool opcode_known(uint8_t op)
{
    return op <= HR_WS_OP_BINARY || (op >= HR_WS_OP_CLOSE && op <= HR_WS_OP_PONG);
}

/* Errors are reported as soon as the bytes seen decide them, so a byte-by-byte
 * caller gets INCOMPLETE and then exactly the error a whole-buffer caller gets.
 * Check order (first failing check wins):
 *   byte 0: RSV2/RSV3, reserved opcode, RSV1 rules, control frame without FIN;
 *   byte 1: control length > 125, mask bit vs. options;
 *   extended length: 64-bit top bit, max_frame (as soon as the bytes already
 *   seen prove the length is too big);
 *   then the masking key must be complete.
 * Non-minimal length encodings (e.g. 126 + 0x0005) are accepted: the "minimal
 * number of bytes" rule of §5.2 binds the sender and is harmless to relax.
 * *h is written only on success. */
int hr_ws_parse_header(const uint8_t *buf, size_t len, const hr_ws_parse_opts *o,
                       hr_ws_frame_header *h)
{
    static const hr_ws_parse_opts defaults = {0};
    if (!o) o = &defaults;
    if (len < 1) return HR_WS_INCOMPLETE;

    uint8_t b0 = buf[0];
    bool fin = b0 & 0x80, rsv1 = b0 & 0x40;
    uint8_t op = b0 & 0x0F;
    bool control = op & 0x08;
    if (b0 & 0x30) return HR_WS_E_RSV; /* RSV2, RSV3: no extension of ours uses them */
    if (!opcode_known(op)) return HR_WS_E_OPCODE;
    if (rsv1) {
        if (!o->allow_rsv1) return HR_WS_E_RSV;
        if (control) return HR_WS_E_CONTROL_RSV1;
        if (op == HR_WS_OP_CONT) return HR_WS_E_RSV; /* RFC 7692 §6.1: first frame only */
    }
    if (control && !fin) return HR_WS_E_CONTROL_FRAGMENTED;
    if (len < 2) return HR_WS_INCOMPLETE;

    uint8_t b1 = buf[1];
    bool masked = b1 & 0x80;
    uint8_t len7 = b1 & 0x7F;
    if (control && len7 > CONTROL_MAX) return HR_WS_E_CONTROL_TOO_LONG;
    if (masked && o->forbid_mask) return HR_WS_E_MASKED;
    if (!masked && o->require_mask) return HR_WS_E_UNMASKED;

    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t have = HR_MIN(len - 2, ext);
    uint64_t plen = ext ? 0 : len7;
    for (size_t i = 0; i < have; i++) plen = plen << 8 | buf[2 + i];
    if (ext == 8 && have > 0 && (buf[2] & 0x80)) return HR_WS_E_LENGTH;
    if (o->max_frame) {
        /* With bytes still missing, plen shifted into place is a lower bound. */
        uint64_t lower = have == ext ? plen : have ? plen << (8 * (ext - have)) : 0;
        if (lower > o->max_frame) return HR_WS_E_TOO_BIG;
    }
    size_t hlen = 2 + ext + (masked ? 4 : 0);
    if (len < hlen) return HR_WS_INCOMPLETE;

    h->fin = fin;
    h->rsv1 = rsv1;
    h->rsv2 = false;
    h->rsv3 = false;
    h->opcode = op;
    h->masked = masked;
    if (masked) memcpy(h->mask, buf + 2 + ext, 4);
    else memset(h->mask, 0, 4);
    h->payload_len = plen;
    h->header_len = hlen;
    return (int)hlen;
}

/* ---- masking ------------------------------------------------------------- */

void hr_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    /* The key rotated so that m[0] applies to data[0]; two periods make a
     * word. The byte pattern is copied, so the XOR is endian-neutral. */
    uint8_t m[8];
    for (size_t i = 0; i < 8; i++) m[i] = mask[(offset + i) & 3];
    size_t i = 0;
    if (len >= 8) {
        uint64_t mw;
        memcpy(&mw, m, sizeof mw);
        for (; len - i >= 32; i += 32) {
            uint64_t w[4];
            memcpy(w, data + i, sizeof w);
            w[0] ^= mw;
            w[1] ^= mw;
            w[2] ^= mw;
            w[3] ^= mw;
            memcpy(data + i, w, sizeof w);
        }
        for (; len - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, data + i, sizeof w);
            w ^= mw;
            memcpy(data + i, &w, sizeof w);
        }
    }
    for (; i < len; i++) data[i] ^= m[i & 7];
}

/* ---- header writing ------------------------------------------------------ */

size_t hr_ws_write_header(uint8_t *out, bool fin, bool rsv1, uint8_t opcode,
                          uint64_t payload_len, const uint8_t *mask)
{
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    uint8_t mbit = mask ? 0x80 : 0;
    if (payload_len <= CONTROL_MAX) {
        out[n++] = (uint8_t)(mbit | payload_len);
    } else if (payload_len <= 0xFFFF) {
        out[n++] = mbit | 126;
        out[n++] = (uint8_t)(payload_len >> 8);
        out[n++] = (uint8_t)payload_len;
    } else {
        out[n++] = mbit | 127;
        for (int shift = 56; shift >= 0; shift -= 8) out[n++] = (uint8_t)(payload_len >> shift);
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* ---- close frames -------------------------------------------------------- */

bool hr_ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Outputs may be NULL. They are written only on success; an empty payload
 * gives code 1005 (no status) and no reason. */
int hr_ws_parse_close(const uint8_t *payload, size_t len, uint16_t *code,
                      const uint8_t **reason, size_t *reason_len)
{
    uint16_t c = HR_WS_CLOSE_NO_STATUS;
    const uint8_t *r = NULL;
    size_t rlen = 0;
    if (len > 0) {
        if (len < 2 || len > CONTROL_MAX) return HR_WS_E_CLOSE_PAYLOAD;
        c = (uint16_t)(payload[0] << 8 | payload[1]);
        if (!hr_ws_close_code_valid(c)) return HR_WS_E_CLOSE_PAYLOAD;
        r = payload + 2;
        rlen = len - 2;
        if (!hr_utf8_valid(r, rlen)) return HR_ERR_UTF8;
    }
    if (code) *code = c;
    if (reason) *reason = r;
    if (reason_len) *reason_len = rlen;
    return 0;
}

/* The reason is cut to its longest prefix of whole, valid UTF-8 characters
 * that fits in 123 bytes, so the result always passes hr_ws_parse_close (for a
 * valid code) even if the caller's text is bad. */
size_t hr_ws_build_close(uint8_t *out, uint16_t code, const char *reason)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t keep = 0;
    if (reason) {
        hr_utf8 s;
        hr_utf8_init(&s);
        for (size_t i = 0; i < CLOSE_REASON_MAX && reason[i]; i++) {
            int r = hr_utf8_feed(&s, (const uint8_t *)reason + i, 1);
            if (r == HR_UTF8_INVALID) break;
            if (r == HR_UTF8_COMPLETE) keep = i + 1;
        }
        memcpy(out + 2, reason, keep);
    }
    return 2 + keep;
}

uint16_t hr_ws_error_close_code(int err)
{
    return err == HR_WS_E_TOO_BIG ? HR_WS_CLOSE_TOO_BIG : HR_WS_CLOSE_PROTOCOL;
}

const char *hr_ws_error_text(int err)
{
    switch (err) {
    case HR_WS_INCOMPLETE: return "incomplete frame header";
    case HR_WS_E_RSV: return "reserved bit set without a negotiated extension";
    case HR_WS_E_OPCODE: return "reserved opcode";
    case HR_WS_E_CONTROL_FRAGMENTED: return "fragmented control frame";
    case HR_WS_E_CONTROL_TOO_LONG: return "control frame payload over 125 bytes";
    case HR_WS_E_UNMASKED: return "unmasked client frame";
    case HR_WS_E_MASKED: return "masked server frame";
    case HR_WS_E_LENGTH: return "payload length with the most significant bit set";
    case HR_WS_E_TOO_BIG: return "frame too big";
    case HR_WS_E_CONTROL_RSV1: return "RSV1 set on a control frame";
    case HR_WS_E_CLOSE_PAYLOAD: return "invalid close frame payload";
    default: return hr_strerror(err);
    }
}

/* ---- handshake keys ------------------------------------------------------ */

void hr_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    uint8_t stack[64 + WS_GUID_LEN];
    size_t n = key_len + WS_GUID_LEN;
    uint8_t *buf = n <= sizeof stack ? stack : hr_malloc(n);
    if (key_len) memcpy(buf, key, key_len);
    memcpy(buf + key_len, WS_GUID, WS_GUID_LEN);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(buf, n, digest);
    if (buf != stack) hr_free(buf);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH); /* 28 chars + NUL */
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* 16 bytes encode as 21 full characters, one character carrying the last 2
 * bits (its low 4 bits must be zero: A, Q, g or w) and "==". */
bool hr_ws_key_valid(const char *key, size_t len)
{
    if (!key || len != 24) return false;
    for (size_t i = 0; i < 21; i++)
        if (!is_b64(key[i])) return false;
    char last = key[21];
    if (last != 'A' && last != 'Q' && last != 'g' && last != 'w') return false;
    return key[22] == '=' && key[23] == '=';
}
