/* proxyproto.h - the PROXY protocol header (HAProxy's spec, versions 1 and
 * 2: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt) that a
 * load balancer sends before anything else on a connection, naming the
 * client it relays.
 *
 * Codecs do no I/O: hr_pp_parse is given the first bytes of a connection
 * (all of them each time, the caller keeps them) and finds a complete header,
 * says it needs more bytes, or says why they are not a PROXY header. Nothing
 * is copied or allocated; the addresses are decoded into the result.
 *
 * Bounds: a version 1 line is at most 107 bytes including its CRLF; a
 * version 2 header is 16 bytes plus its length field (at most 65,535), and
 * the length must cover the address block of the family it announces. TLVs
 * after the addresses are skipped, not interpreted. */
#ifndef HERALD_CODEC_PROXYPROTO_H
#define HERALD_CODEC_PROXYPROTO_H

#include "core/cidr.h"
#include "core/common.h"

#define HR_PP_V1_MAX 107               /* longest version 1 line, CRLF included */
#define HR_PP_V2_MAX (16 + 65535)      /* longest version 2 header */

enum hr_pp_result {
    HR_PP_INCOMPLETE = -2,             /* a valid beginning: need more bytes (same value as HR_ERR_AGAIN) */
    HR_PP_E_SIGNATURE = -130,          /* neither "PROXY " (v1) nor the 12-byte v2 signature */
    HR_PP_E_TOO_LONG = -131,           /* v1: no CRLF within 107 bytes */
    HR_PP_E_SYNTAX = -132,             /* v1: bad protocol, address, port, spacing or line end */
    HR_PP_E_VERSION = -133,            /* v2: version nibble other than 2 */
    HR_PP_E_COMMAND = -134,            /* v2: command other than LOCAL (0) or PROXY (1) */
    HR_PP_E_FAMILY = -135,             /* v2: address family > 3 or transport protocol > 2 */
    HR_PP_E_LENGTH = -136,             /* v2: length shorter than the announced address block */
};

typedef struct hr_pp_header {
    uint8_t version;                   /* 1 or 2 */
    /* true: the header names no usable client (v2 LOCAL, v1 UNKNOWN, v2
     * UNSPEC, UNIX or datagram families): use the connection's own peer
     * address, as the spec requires for LOCAL and allows for the others. */
    bool local;
    hr_ipaddr src, dst;                /* the relayed client and the address it connected to (!local) */
    uint16_t src_port, dst_port;       /* host order (!local) */
    uint16_t tlv_len;                  /* v2: bytes of TLVs skipped after the addresses */
} hr_pp_header;

/* Parse a header from buf[0..len). Returns the header's length (> 0; the
 * connection's own data starts at buf + that), HR_PP_INCOMPLETE, or an
 * HR_PP_E_* error. `out` is only meaningful on success. Errors are reported
 * as early as the bytes allow (a first byte that can start neither version
 * is HR_PP_E_SIGNATURE at once). */
int hr_pp_parse(const uint8_t *buf, size_t len, hr_pp_header *out);

/* The total length of a version 2 header whose first 16 bytes are in buf,
 * so a caller can size its read; 0 when buf does not hold that much of a v2
 * header. */
size_t hr_pp_v2_length(const uint8_t *buf, size_t len);

/* Short text for an error ("bad PROXY v1 line", ...). */
const char *hr_pp_error_text(int err);

#endif
