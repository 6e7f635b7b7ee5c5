/* fuzz_sse_id.c - libFuzzer target for the Server-Sent Events id codec
 * (transport/sse.h: hr_sse_id_parse, hr_sse_id_format). The input, copied
 * into an exact-size buffer (no NUL after it), is parsed with room for 0, 1
 * and 8 entries: the count must not depend on the room, and must agree with
 * an independent reference (split on '.', each piece EPOCH:DIGITS with the
 * documented limits). A parsed id is formatted again (within the documented
 * bound) and re-parsed to the same positions; the text is the input, except
 * for leading zeros of offsets. abort() on any disagreement. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static bool ref_epoch_char(char c)
{
    return c && strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-", c);
}

/* Reference: entries or -1. */
static long ref_count(const char *s, size_t n)
{
    if (n == 0) return 0;
    long count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') continue;
        const char *p = s + start;
        size_t len = i - start;
        const char *colon = memchr(p, ':', len);
        if (!colon) return -1;
        size_t el = (size_t)(colon - p), dl = len - el - 1;
        if (el < 1 || el > HR_EPOCH_LEN || dl < 1 || dl > 20) return -1;
        for (size_t k = 0; k < el; k++)
            if (!ref_epoch_char(p[k])) return -1;
        unsigned __int128 v = 0;
        for (size_t k = 0; k < dl; k++) {
            char c = colon[1 + k];
            if (c < '0' || c > '9') return -1;
            v = v * 10 + (unsigned)(c - '0');
        }
        if (v > UINT64_MAX) return -1;
        count++;
        start = i + 1;
    }
    return count;
}

/* A valid id with the leading zeros of its offsets dropped. */
static size_t canonical(const char *s, size_t n, char *out)
{
    size_t o = 0;
    bool in_offset = false, leading = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ':' || c == '.') {
            in_offset = c == ':';
            leading = in_offset;
        } else if (in_offset && leading && c == '0' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
            continue;
        } else {
            leading = false;
        }
        out[o++] = c;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *s = malloc(size ? size : 1);
    if (size) memcpy(s, data, size);
    hr_sse_pos one[1], eight[8];
    int c0 = hr_sse_id_parse(s, size, NULL, 0);
    int c1 = hr_sse_id_parse(s, size, one, 1);
    int c8 = hr_sse_id_parse(s, size, eight, 8);
    check(c0 == c1 && c1 == c8);
    long ref = ref_count(s, size);
    check(ref < 0 ? c0 == HR_ERR_PROTO : c0 == ref);
    if (c8 > 0) {
        size_t n = c8 < 8 ? (size_t)c8 : 8;
        if (c1 > 0) check(strcmp(one[0].epoch, eight[0].epoch) == 0 && one[0].offset == eight[0].offset);
        char *text = malloc(n * HR_SSE_ID_ENTRY_MAX);
        size_t len = hr_sse_id_format(eight, n, text);
        check(len <= n * HR_SSE_ID_ENTRY_MAX);
        hr_sse_pos back[8];
        check(hr_sse_id_parse(text, len, back, 8) == (int)n);
        for (size_t i = 0; i < n; i++)
            check(strcmp(back[i].epoch, eight[i].epoch) == 0 && back[i].offset == eight[i].offset);
        if (c8 <= 8) { /* the same text, up to leading zeros of offsets */
            char *want = malloc(size);
            size_t wl = canonical(s, size, want);
            check(wl == len && memcmp(want, text, len) == 0);
            free(want);
        }
        free(text);
    }
    free(s);
    return 0;
}
