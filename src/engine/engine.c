/* engine.c - what every engine shares: the calling worker's id, and the
 * page arithmetic of history replies (engine.h). */
#include "engine/engine.h"

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
