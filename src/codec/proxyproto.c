/* proxyproto.c - PROXY protocol v1/v2 header parser (see proxyproto.h). */
#include "codec/proxyproto.h"

#include <string.h>

static const uint8_t v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1sig[6] = "PROXY ";

const char *hr_pp_error_text(int err)
{
    switch (err) {
    case HR_PP_INCOMPLETE: return "incomplete PROXY header";
    case HR_PP_E_SIGNATURE: return "no PROXY protocol header";
    case HR_PP_E_TOO_LONG: return "PROXY v1 line longer than 107 bytes";
    case HR_PP_E_SYNTAX: return "malformed PROXY v1 line";
    case HR_PP_E_VERSION: return "PROXY v2 header with an unknown version";
    case HR_PP_E_COMMAND: return "PROXY v2 header with an unknown command";
    case HR_PP_E_FAMILY: return "PROXY v2 header with an unknown address family or protocol";
    case HR_PP_E_LENGTH: return "PROXY v2 length too short for its addresses";
    default: return "bad PROXY header";
    }
}

/* ---- version 1: "PROXY TCP4 src dst sport dport\r\n" ----------------------------- */

/* A port: 1 to 5 decimal digits, no leading zero (except "0"), <= 65535. */
static bool parse_port(const uint8_t *p, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0')) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    if (v > 65535) return false;
    *out = (uint16_t)v;
    return true;
}

/* line[0..n) is everything after "PROXY " up to (not including) CRLF. */
static int parse_v1_line(const uint8_t *line, size_t n, hr_pp_header *out)
{
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
        out->local = true; /* the rest of the line is ignored, as the spec says */
        return 0;
    }
    if (n < 5 || memcmp(line, "TCP", 3) != 0 || (line[3] != '4' && line[3] != '6') || line[4] != ' ')
        return HR_PP_E_SYNTAX;
    bool v4 = line[3] == '4';
    /* four fields separated by single spaces */
    const uint8_t *f[4];
    size_t fl[4];
    size_t pos = 5;
    for (int i = 0; i < 4; i++) {
        size_t start = pos;
        while (pos < n && line[pos] != ' ') pos++;
        if (pos == start) return HR_PP_E_SYNTAX; /* empty field or a double space */
        f[i] = line + start;
        fl[i] = pos - start;
        if (i < 3) {
            if (pos >= n) return HR_PP_E_SYNTAX;
            pos++; /* the space */
        }
    }
    if (pos != n) return HR_PP_E_SYNTAX; /* something after the destination port */
    for (int i = 0; i < 2; i++) {
        hr_ipaddr *a = i == 0 ? &out->src : &out->dst;
        /* TCP4 takes dotted quads only; TCP6 takes RFC 4291 text (which may end in a dotted quad) */
        if (v4 != !memchr(f[i], ':', fl[i])) return HR_PP_E_SYNTAX;
        if (hr_ipaddr_parse((const char *)f[i], fl[i], a)) return HR_PP_E_SYNTAX;
    }
    if (!parse_port(f[2], fl[2], &out->src_port) || !parse_port(f[3], fl[3], &out->dst_port)) return HR_PP_E_SYNTAX;
    out->local = false;
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, hr_pp_header *out)
{
    size_t lim = HR_MIN(len, (size_t)HR_PP_V1_MAX);
    for (size_t i = sizeof(v1sig); i < lim; i++) {
        uint8_t ch = buf[i];
        if (ch == '\r') {
            if (i + 2 > HR_PP_V1_MAX) return HR_PP_E_TOO_LONG; /* its LF would be byte 108 */
            if (i + 1 >= len) return HR_PP_INCOMPLETE;
            if (buf[i + 1] != '\n') return HR_PP_E_SYNTAX;
            int rc = parse_v1_line(buf + sizeof(v1sig), i - sizeof(v1sig), out);
            if (rc) return rc;
            out->version = 1;
            out->tlv_len = 0;
            return (int)(i + 2);
        }
        if (ch < 0x20 || ch > 0x7e) return HR_PP_E_SYNTAX; /* printable US-ASCII only */
    }
    return len >= HR_PP_V1_MAX ? HR_PP_E_TOO_LONG : HR_PP_INCOMPLETE;
}

/* ---- version 2: 16 bytes, then addresses and TLVs -------------------------------- */

size_t hr_pp_v2_length(const uint8_t *buf, size_t len)
{
    if (len < 16 || memcmp(buf, v2sig, sizeof(v2sig)) != 0) return 0;
    return 16 + (((size_t)buf[14] << 8) | buf[15]);
}

static int parse_v2(const uint8_t *buf, size_t len, hr_pp_header *out)
{
    if (len < 13) return HR_PP_INCOMPLETE;
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
    if (ver != 2) return HR_PP_E_VERSION;
    if (cmd > 1) return HR_PP_E_COMMAND;
    if (len < 16) {
        if (len >= 14 && cmd == 1 && ((buf[13] >> 4) > 3 || (buf[13] & 0x0f) > 2)) return HR_PP_E_FAMILY;
        return HR_PP_INCOMPLETE;
    }
    uint8_t fam = buf[13] >> 4, proto = buf[13] & 0x0f;
    size_t body = ((size_t)buf[14] << 8) | buf[15];
    size_t addr_len = 0;
    bool local = true;
    if (cmd == 1) { /* PROXY; for LOCAL the whole block, family included, is ignored */
        if (fam > 3 || proto > 2) return HR_PP_E_FAMILY;
        if (proto != 0) {
            addr_len = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
            if (body < addr_len) return HR_PP_E_LENGTH;
        }
        /* TCP over IPv4 / IPv6 name a client; UNSPEC, UNIX and datagram
         * families fall back to the connection's own address (the spec's
         * UNSPEC mode, which a receiver may use for what it does not support). */
        local = !(proto == 1 && (fam == 1 || fam == 2));
    }
    if (len < 16 + body) return HR_PP_INCOMPLETE;
    const uint8_t *a = buf + 16;
    if (!local) {
        size_t al = fam == 1 ? 4 : 16;
        hr_ipaddr_set(&out->src, a, al);
        hr_ipaddr_set(&out->dst, a + al, al);
        out->src_port = (uint16_t)((a[2 * al] << 8) | a[2 * al + 1]);
        out->dst_port = (uint16_t)((a[2 * al + 2] << 8) | a[2 * al + 3]);
    }
    out->local = local;
    out->version = 2;
    out->tlv_len = (uint16_t)(body - addr_len);
    return (int)(16 + body);
}

int hr_pp_parse(const uint8_t *buf, size_t len, hr_pp_header *out)
{
    if (len == 0) return HR_PP_INCOMPLETE;
    if (buf[0] == v1sig[0]) {
        size_t n = HR_MIN(len, sizeof(v1sig));
        if (memcmp(buf, v1sig, n) != 0) return HR_PP_E_SIGNATURE;
        if (len < sizeof(v1sig)) return HR_PP_INCOMPLETE;
        return parse_v1(buf, len, out);
    }
    if (buf[0] == v2sig[0]) {
        size_t n = HR_MIN(len, sizeof(v2sig));
        if (memcmp(buf, v2sig, n) != 0) return HR_PP_E_SIGNATURE;
        return parse_v2(buf, len, out);
    }
    return HR_PP_E_SIGNATURE;
}
