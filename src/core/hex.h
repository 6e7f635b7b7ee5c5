/* hex.h - bytes to lowercase hex and back: client ids (hub, memory engine's
 * presence entries), random hex ids (core/random.c). Lowercase only, as
 * Herald writes them; chunk sizes and %-escapes, which take either case,
 * are the codecs' own. */
#ifndef HERALD_CORE_HEX_H
#define HERALD_CORE_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* b[0..n) as 2n lowercase hex digits into out, then a NUL (out[2n]). */
static inline void hr_hex_encode(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static inline int hr_hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

/* 2n lowercase hex digits at hex into out[0..n); false at the first that
 * is not one (out may be partly written then). */
static inline bool hr_hex_decode(const char *hex, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hr_hex_digit(hex[2 * i]), lo = hi < 0 ? -1 : hr_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

#endif
