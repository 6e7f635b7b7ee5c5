/* engine.c - what every engine shares: the calling worker's id, and the
 * page arithmetic of history replies and which kept publications a history
 * query selects (engine.h). */
#include "engine/engine.h"

#include <string.h>

_Thread_local int hr_engine_worker = -1;

size_t hr_pub_reply_size(const hr_pub *p)
{
    /* {"offset":N,"data":D,"info":I}, with room for the id and separators */
    return 48 + p->data_len + (p->info ? p->info_len + 8 : 0);
}

size_t hr_history_fit(const hr_history *h, size_t max_bytes, bool force_one, size_t *bytes)
{
    size_t used = 0, k = 0;
    for (; k < h->n; k++) {
        size_t sz = hr_pub_reply_size(h->pubs[k]);
        if (used + sz > max_bytes && (k || !force_one)) break;
        used += sz;
    }
    if (bytes) *bytes = used;
    return k;
}

/* The first index in [lo, hi) whose publication has offset >= off (by
 * offset) or time_ms >= off (by_time); hi when none. Offsets ascend in a
 * log; times do too unless the wall clock stepped back. */
static size_t lower_bound(hr_history_at at, const void *ctx, size_t lo, size_t hi, uint64_t off, bool by_time)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const hr_pub *p = at(ctx, mid);
        if ((by_time ? p->time_ms : p->offset) < off) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool same_epoch(const char *asked, const char *epoch) { return !asked || !asked[0] || !strcmp(asked, epoch); }

hr_history_sel hr_history_select(const hr_history_query *q, const char *epoch, uint64_t last, size_t count,
                                 hr_history_at at, const void *ctx)
{
    hr_history_sel s = {.lo = 0, .hi = count, .complete = true};
    if (q->has_since) {
        if (!same_epoch(q->since_epoch, epoch) || q->since_offset > last) {
            s.complete = false;
            s.lo = count; /* nothing usable */
        } else {
            uint64_t oldest = count ? at(ctx, 0)->offset : last + 1;
            if (q->since_offset + 1 < oldest) s.complete = false; /* some were trimmed */
            s.lo = lower_bound(at, ctx, 0, count, q->since_offset + 1, false);
        }
    }
    if (q->has_before) {
        if (!same_epoch(q->before_epoch, epoch)) s.lo = count;
        else s.hi = lower_bound(at, ctx, 0, count, q->before_offset, false);
    }
    if (q->has_since_time) {
        size_t t = lower_bound(at, ctx, 0, count, q->since_time_ms, true);
        if (t > s.lo) s.lo = t;
    }
    if (s.hi < s.lo) s.hi = s.lo;
    if (s.hi < count && q->has_since) s.complete = false; /* cut by before */
    s.n = s.hi - s.lo;
    if (q->limit >= 0 && (uint64_t)q->limit < s.n) {
        s.n = (size_t)q->limit;
        if (q->has_since) s.complete = false;
    }
    s.first = q->reverse ? s.hi - 1 : s.lo;
    return s;
}
