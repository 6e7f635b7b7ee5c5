/* hist.h - a log-linear latency histogram for `herald bench` (HdrHistogram
 * style, fixed memory, O(1) record, no allocation).
 *
 * Values are unsigned integers (the bench records nanoseconds). Values below
 * HR_HIST_SUB (128) have a bucket each (exact). Above, every power of two
 * [2^m, 2^(m+1)) is cut into HR_HIST_SUB / 2 = 64 equal buckets, so a bucket
 * is at most 1/64 of its lower bound wide; percentiles are reported as the
 * bucket's midpoint, which is within 1/128 (0.78 %) of any value in it.
 * Tracked range: 0 .. 2^40 - 1 (1,099 s in ns); larger values are counted
 * in the last bucket (min and max are kept exactly, whatever their size).
 *
 * Memory: HR_HIST_BUCKETS (2,240) counters = 17.5 KiB per histogram. */
#ifndef HERALD_BENCH_HIST_H
#define HERALD_BENCH_HIST_H

#include "core/common.h"

#define HR_HIST_SUB_BITS 7u
#define HR_HIST_SUB (1u << HR_HIST_SUB_BITS)        /* 128 */
#define HR_HIST_HALF (HR_HIST_SUB / 2u)             /* 64 buckets per power of two */
#define HR_HIST_MAX_BITS 40u                        /* values < 2^40 are tracked */
#define HR_HIST_BUCKETS (HR_HIST_SUB + (HR_HIST_MAX_BITS - HR_HIST_SUB_BITS) * HR_HIST_HALF)
#define HR_HIST_MAX_TRACKED ((UINT64_C(1) << HR_HIST_MAX_BITS) - 1u)

typedef struct hr_hist {
    uint64_t count;      /* values recorded */
    uint64_t min, max;   /* exact (min is UINT64_MAX while empty) */
    double sum;          /* for the mean */
    uint64_t buckets[HR_HIST_BUCKETS];
} hr_hist;

void hr_hist_init(hr_hist *h);
static inline void hr_hist_reset(hr_hist *h) { hr_hist_init(h); }

/* Bucket of a value (values above HR_HIST_MAX_TRACKED go to the last one). */
size_t hr_hist_index(uint64_t v);
/* Smallest and largest value that fall into bucket i. */
uint64_t hr_hist_bucket_low(size_t i);
uint64_t hr_hist_bucket_high(size_t i);

void hr_hist_record_n(hr_hist *h, uint64_t v, uint64_t n);
static inline void hr_hist_record(hr_hist *h, uint64_t v) { hr_hist_record_n(h, v, 1); }
/* Add src's counts to dst. */
void hr_hist_merge(hr_hist *dst, const hr_hist *src);

/* The value at percentile p (0..100): the value v such that at least p % of
 * the recorded values are <= v, as the midpoint of its bucket, clamped to
 * [min, max]. p <= 0 gives min, p >= 100 gives max; an empty histogram gives 0. */
uint64_t hr_hist_percentile(const hr_hist *h, double p);
double hr_hist_mean(const hr_hist *h);

#endif
