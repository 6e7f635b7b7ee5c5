/* seq.c - sequence tracking (see seq.h). */
#include "bench/seq.h"

#include <string.h>

#define SLIDE_BITS (64u * 64u)         /* slide the bitmap once next is this far past base */
#define MAX_WINDOW_BITS (1u << 20)      /* a gap older than this many sequences is given up */

void hr_bench_seq_init(hr_bench_seq *q, uint64_t first)
{
    hr_free(q->seen);
    memset(q, 0, sizeof(*q));
    q->first = q->next = q->top = q->base = first;
}

void hr_bench_seq_free(hr_bench_seq *q)
{
    hr_free(q->seen);
    q->seen = NULL;
    q->words = 0;
}

static bool bit_get(const hr_bench_seq *q, uint64_t rel)
{
    return rel / 64 < q->words && ((q->seen[rel / 64] >> (rel & 63)) & 1);
}

static void bit_set(hr_bench_seq *q, uint64_t rel)
{
    size_t need = (size_t)(rel / 64) + 1;
    if (need > q->words) {
        size_t nw = q->words ? q->words : 16;
        while (nw < need) nw *= 2;
        q->seen = hr_realloc(q->seen, nw * sizeof(uint64_t));
        memset(q->seen + q->words, 0, (nw - q->words) * sizeof(uint64_t));
        q->words = nw;
    }
    q->seen[rel / 64] |= 1ull << (rel & 63);
}

bool hr_bench_seq_has(const hr_bench_seq *q, uint64_t s)
{
    if (s < q->first) return false;
    if (s < q->next) return true;
    return q->seen && s >= q->base && bit_get(q, s - q->base);
}

int hr_bench_seq_add(hr_bench_seq *q, uint64_t s)
{
    if (s < q->first) return HR_SEQ_EARLY;
    if (s < q->next) return HR_SEQ_DUP;
    if (HR_LIKELY(!q->seen && s == q->next)) {
        q->next = q->top = s + 1;
        return HR_SEQ_NEW;
    }
    if (!q->seen) q->base = q->next; /* a gap opens */
    uint64_t rel = s - q->base;
    if (bit_get(q, rel)) return HR_SEQ_DUP;
    bit_set(q, rel);
    int r = HR_SEQ_NEW;
    if (s + 1 < q->top) r = HR_SEQ_LATE;
    else q->top = s + 1;
    if (q->top - q->base > MAX_WINDOW_BITS) {
        /* bound the memory: sequences more than the window behind the
         * newest are taken as lost (should one still come, it counts as a
         * duplicate) */
        uint64_t keep_from = q->top - MAX_WINDOW_BITS;
        size_t drop = (size_t)((keep_from - q->base) / 64);
        if (drop > q->words) drop = q->words;
        memmove(q->seen, q->seen + drop, (q->words - drop) * sizeof(uint64_t));
        memset(q->seen + q->words - drop, 0, drop * sizeof(uint64_t));
        q->base += (uint64_t)drop * 64;
        if (q->next < q->base) q->next = q->base;
    }
    while (bit_get(q, q->next - q->base)) q->next++;
    if (q->next == q->top) { /* the gap is filled: back to in-order mode */
        hr_bench_seq_free(q);
        q->base = q->next;
    } else if (q->next - q->base >= SLIDE_BITS) {
        size_t drop = (size_t)((q->next - q->base) / 64);
        memmove(q->seen, q->seen + drop, (q->words - drop) * sizeof(uint64_t));
        memset(q->seen + q->words - drop, 0, drop * sizeof(uint64_t));
        q->base += (uint64_t)drop * 64;
    }
    return r;
}
