/* hist.h - a latency histogram with one writer (the thread that owns it)
 * and any number of readers: fixed buckets in seconds (one layout for all
 * of Herald's histograms, the Prometheus text's `le` values), non-cumulative
 * counts, the sum in microseconds and the count, each a relaxed atomic. A
 * reader sums several (one per worker) at scrape time (transport/metrics.c). */
#ifndef HERALD_CORE_HIST_H
#define HERALD_CORE_HIST_H

#include "core/common.h"

#include <stdatomic.h>

/* 1 ms to 10 s; +Inf is the count. */
#define HR_HIST_BUCKETS 13
extern const double hr_hist_le[HR_HIST_BUCKETS];

typedef struct hr_hist {
    atomic_uint_fast64_t bucket[HR_HIST_BUCKETS];
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t count;
} hr_hist;

/* Record one observation of us microseconds (the writer's thread only). */
void hr_hist_observe(hr_hist *h, uint64_t us);

#endif
