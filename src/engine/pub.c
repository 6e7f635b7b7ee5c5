/* pub.c - publications and shared encoded buffers (see pub.h). */
#include "engine/pub.h"
#include "core/random.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

hr_pub *hr_pub_new(hr_pub_kind kind, const char *channel, size_t clen, const char *data, size_t dlen,
                   const char *info, size_t ilen)
{
    size_t size = sizeof(hr_pub) + clen + 1 + dlen + 1 + (info ? ilen + 1 : 0);
    hr_pub *p = hr_malloc(size);
    memset(p, 0, sizeof(*p));
    atomic_init(&p->refs, 1);
    p->kind = (uint8_t)kind;
    p->time_ms = hr_wall_ms();
    char *b = p->blob;
    memcpy(b, channel, clen);
    b[clen] = '\0';
    p->channel = b;
    p->channel_len = (uint32_t)clen;
    b += clen + 1;
    if (dlen) memcpy(b, data, dlen);
    b[dlen] = '\0';
    p->data = b;
    p->data_len = (uint32_t)dlen;
    b += dlen + 1;
    if (info) {
        memcpy(b, info, ilen);
        b[ilen] = '\0';
        p->info = b;
        p->info_len = (uint32_t)ilen;
    }
    return p;
}

void hr_pub_unref(hr_pub *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) hr_free(p);
}

hr_sbuf *hr_sbuf_alloc(size_t len)
{
    hr_sbuf *s = hr_malloc(sizeof(*s) + len);
    s->refs = 1;
    s->len = (uint32_t)len;
    return s;
}

hr_sbuf *hr_sbuf_new2(const void *a, size_t alen, const void *b, size_t blen)
{
    hr_sbuf *s = hr_sbuf_alloc(alen + blen);
    if (alen) memcpy(s->data, a, alen);
    if (blen) memcpy(s->data + alen, b, blen);
    return s;
}

hr_sbuf *hr_sbuf_new(const void *data, size_t len) { return hr_sbuf_new2(data, len, NULL, 0); }

void hr_sbuf_unref(hr_sbuf *b)
{
    if (b && --b->refs == 0) hr_free(b);
}

const char *hr_pub_too_big_text(char *out, size_t cap, size_t len, int64_t limit)
{
    snprintf(out, cap, "publication is %zu bytes, the limit is %lld (channels.max_publication_size)", len,
             (long long)limit);
    return out;
}

void hr_epoch_new(char out[HR_EPOCH_LEN + 1])
{
    hr_random_hex(out, HR_EPOCH_LEN / 2);
}

uint64_t hr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
