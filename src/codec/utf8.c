/* utf8.c - owns the streaming UTF-8 validator (RFC 3629). A small range-based
 * state machine: a lead byte fixes how many continuation bytes follow and the
 * allowed range of the first of them (which is what excludes overlongs,
 * surrogates and code points above U+10FFFF); every later continuation byte
 * must be 80..BF. ASCII runs are skipped eight bytes at a time. */
#include "codec/utf8.h"

#include <string.h>

#define ASCII_MASK 0x8080808080808080ULL

_Static_assert((int)HR_UTF8_INVALID == (int)HR_ERR_UTF8, "INVALID doubles as HR_ERR_UTF8");

void hr_utf8_init(hr_utf8 *s)
{
    s->need = 0;
    s->lo = 0x80;
    s->hi = 0xBF;
}

/* After a failure the state is made sticky (an empty range that no byte can
 * fall into), so a caller that keeps feeding keeps getting INVALID. */
static int fail(hr_utf8 *s)
{
    s->need = 1;
    s->lo = 0xFF;
    s->hi = 0x00;
    return HR_UTF8_INVALID;
}

int hr_utf8_feed(hr_utf8 *s, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    unsigned need = s->need, lo = s->lo, hi = s->hi;

    if (HR_UNLIKELY(lo > hi)) return HR_UTF8_INVALID;
    while (p < end) {
        uint8_t b;
        if (need) {
            b = *p++;
            if (b < lo || b > hi) return fail(s);
            need--;
            lo = 0x80;
            hi = 0xBF;
            continue;
        }
        b = *p++;
        if (b < 0x80) {
            /* In an ASCII run: skip the rest of it a word at a time. */
            while ((size_t)(end - p) >= 8) {
                uint64_t w;
                memcpy(&w, p, sizeof w);
                if (w & ASCII_MASK) break;
                p += 8;
            }
            continue;
        }
        if (b < 0xC2) {
            return fail(s); /* 80..BF: lone continuation; C0, C1: always overlong */
        } else if (b < 0xE0) {
            need = 1;       /* U+0080..U+07FF */
        } else if (b < 0xF0) {
            need = 2;       /* U+0800..U+FFFF */
            if (b == 0xE0) lo = 0xA0;      /* E0 80..9F would be overlong */
            else if (b == 0xED) hi = 0x9F; /* ED A0..BF are surrogates */
        } else if (b < 0xF5) {
            need = 3;       /* U+10000..U+10FFFF */
            if (b == 0xF0) lo = 0x90;      /* F0 80..8F would be overlong */
            else if (b == 0xF4) hi = 0x8F; /* F4 90.. is above U+10FFFF */
        } else {
            return fail(s); /* F5..FF: above U+10FFFF or never UTF-8 */
        }
    }
    s->need = (uint8_t)need;
    s->lo = (uint8_t)lo;
    s->hi = (uint8_t)hi;
    return need ? HR_UTF8_PARTIAL : HR_UTF8_COMPLETE;
}

bool hr_utf8_valid(const uint8_t *p, size_t n)
{
    hr_utf8 s;
    hr_utf8_init(&s);
    return hr_utf8_feed(&s, p, n) == HR_UTF8_COMPLETE;
}
