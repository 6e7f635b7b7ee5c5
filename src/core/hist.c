/* hist.c - the single-writer histogram (see hist.h). */
#include "core/hist.h"

const double hr_hist_le[HR_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10};

static void bump(atomic_uint_fast64_t *s, uint64_t n)
{
    atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n, memory_order_relaxed);
}

void hr_hist_observe(hr_hist *h, uint64_t us)
{
    for (int i = 0; i < HR_HIST_BUCKETS; i++)
        if ((double)us <= hr_hist_le[i] * 1e6) {
            bump(&h->bucket[i], 1);
            break;
        }
    bump(&h->sum_us, us);
    bump(&h->count, 1);
}
