/* hist.c - log-linear histogram (see hist.h).
 *
 * Bucket of v:
 *   v < 128:  v itself;
 *   else:     m = index of the top bit (7..39), shift = m - 6, so that
 *             v >> shift is in [64, 128): bucket 128 + (shift - 1) * 64 +
 *             (v >> shift) - 64. Bucket widths are 2^shift, lower bounds at
 *             least 64 * 2^shift. */
#include "bench/hist.h"

#include <math.h>
#include <string.h>

void hr_hist_init(hr_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t hr_hist_index(uint64_t v)
{
    if (v < HR_HIST_SUB) return (size_t)v;
    if (v > HR_HIST_MAX_TRACKED) return HR_HIST_BUCKETS - 1;
    unsigned m = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = m - (HR_HIST_SUB_BITS - 1u);
    return HR_HIST_SUB + (size_t)(shift - 1u) * HR_HIST_HALF + (size_t)((v >> shift) - HR_HIST_HALF);
}

uint64_t hr_hist_bucket_low(size_t i)
{
    if (i < HR_HIST_SUB) return i;
    size_t k = i - HR_HIST_SUB;
    unsigned shift = (unsigned)(k / HR_HIST_HALF) + 1u;
    uint64_t sub = (uint64_t)(k % HR_HIST_HALF) + HR_HIST_HALF;
    return sub << shift;
}

uint64_t hr_hist_bucket_high(size_t i)
{
    if (i < HR_HIST_SUB) return i;
    size_t k = i - HR_HIST_SUB;
    unsigned shift = (unsigned)(k / HR_HIST_HALF) + 1u;
    return hr_hist_bucket_low(i) + ((UINT64_C(1) << shift) - 1u);
}

void hr_hist_record_n(hr_hist *h, uint64_t v, uint64_t n)
{
    if (!n) return;
    h->buckets[hr_hist_index(v)] += n;
    h->count += n;
    h->sum += (double)v * (double)n;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void hr_hist_merge(hr_hist *dst, const hr_hist *src)
{
    if (!src->count) return;
    for (size_t i = 0; i < HR_HIST_BUCKETS; i++) dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t hr_hist_percentile(const hr_hist *h, double p)
{
    if (!h->count) return 0;
    if (!(p > 0)) return h->min;
    if (p >= 100) return h->max;
    double r = ceil(p / 100.0 * (double)h->count);
    uint64_t rank = r < 1 ? 1 : (uint64_t)r;
    if (rank > h->count) rank = h->count;
    uint64_t seen = 0;
    for (size_t i = 0; i < HR_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo = hr_hist_bucket_low(i), hi = hr_hist_bucket_high(i);
            uint64_t v = lo + (hi - lo) / 2;
            if (i == HR_HIST_BUCKETS - 1 && h->max > hi) v = h->max; /* the overflow bucket */
            if (v < h->min) v = h->min;
            if (v > h->max) v = h->max;
            return v;
        }
    }
    return h->max;
}

double hr_hist_mean(const hr_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
