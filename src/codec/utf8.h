/* utf8.h - streaming UTF-8 validator (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). Streaming means a text message split across
 * WebSocket fragments at any byte is validated piece by piece and fails as
 * soon as the first impossible byte arrives ("fail fast"). */
#ifndef HERALD_CODEC_UTF8_H
#define HERALD_CODEC_UTF8_H

#include "core/common.h"

typedef struct hr_utf8 {
    uint8_t need;   /* continuation bytes still expected */
    uint8_t lo, hi; /* allowed range of the next continuation byte */
} hr_utf8;

#define HR_UTF8_INIT {0, 0x80, 0xBF}

enum hr_utf8_result {
    HR_UTF8_COMPLETE = 0,  /* valid, ends on a character boundary */
    HR_UTF8_PARTIAL = 1,   /* valid so far, ends inside a character */
    HR_UTF8_INVALID = -8,  /* same value as HR_ERR_UTF8 */
};

void hr_utf8_init(hr_utf8 *s);
/* Feed bytes; returns COMPLETE, PARTIAL or INVALID. After INVALID the state
 * is undefined. */
int hr_utf8_feed(hr_utf8 *s, const uint8_t *p, size_t n);
/* One-shot check of a complete string. */
bool hr_utf8_valid(const uint8_t *p, size_t n);

#endif
