/* seq.h - per-connection sequence tracking for `herald bench`: which of a
 * channel's publications (numbered 0, 1, 2, ...) a subscriber received,
 * so that losses, duplicates and reorders are counted exactly.
 *
 * In order (the usual case) an arrival is one comparison: everything below
 * `next` has arrived and nothing at or above it. After a gap, a bitmap
 * starting at `base` remembers what arrived beyond `next`; it slides as
 * `next` moves on and is dropped once the gap is filled, so a connection
 * that saw one reorder does not pay for the rest of the run. A gap that
 * stays open (a loss) holds the bitmap to about 2^20 sequences (at most
 * 256 KiB):
 * older missing sequences are then given up (a very late arrival of one
 * counts as a duplicate). */
#ifndef HERALD_BENCH_SEQ_H
#define HERALD_BENCH_SEQ_H

#include "core/common.h"

typedef struct hr_bench_seq {
    uint64_t first;      /* sequences below it are not owed (published before subscribing) */
    uint64_t next;       /* lowest sequence >= first not received */
    uint64_t top;        /* highest sequence received + 1 (first while none) */
    uint64_t base;       /* sequence of bit 0 of seen */
    uint64_t *seen;      /* NULL while in order */
    size_t words;
} hr_bench_seq;

enum hr_bench_seq_result {
    HR_SEQ_EARLY = 0,    /* below first: ignored */
    HR_SEQ_NEW,          /* first arrival, in order */
    HR_SEQ_LATE,         /* first arrival, after a higher sequence (reordered) */
    HR_SEQ_DUP,          /* arrived before */
};

/* Start tracking from `first` (frees an earlier bitmap). */
void hr_bench_seq_init(hr_bench_seq *q, uint64_t first);
int hr_bench_seq_add(hr_bench_seq *q, uint64_t s);
/* Has s been received? */
bool hr_bench_seq_has(const hr_bench_seq *q, uint64_t s);
void hr_bench_seq_free(hr_bench_seq *q);

#endif
