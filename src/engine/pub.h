/* pub.h - a publication: one immutable, reference-counted object per
 * published message (and per join/leave event), shared by the engine's
 * history, every worker's inbox and every fan-out. Counted atomically since
 * it crosses threads. It belongs to the engine layer, the lowest that holds
 * publications: the engine stores them and hands them up to the hub through
 * the callback the hub registers (engine.h), without a hub header. */
#ifndef HERALD_ENGINE_PUB_H
#define HERALD_ENGINE_PUB_H

#include "core/common.h"

#include <stdatomic.h>

typedef enum hr_pub_kind {
    HR_PUB_MESSAGE = 0,
    HR_PUB_JOIN,
    HR_PUB_LEAVE,
    /* Server commands addressed to clients (never stored; hub.h): channel
     * is the channel to unsubscribe from (or "" for a disconnect), data the
     * user id to match ("" = any), info "CLIENT_ID\nREASON" (CLIENT_ID ""
     * = any), code the unsubscribe / disconnect code. */
    HR_PUB_UNSUBSCRIBE,
    HR_PUB_DISCONNECT,
} hr_pub_kind;

#define HR_EPOCH_LEN 16

typedef struct hr_pub {
    atomic_uint refs;
    uint8_t kind;
    uint16_t code;                /* HR_PUB_UNSUBSCRIBE / HR_PUB_DISCONNECT */
    uint64_t offset;              /* 1, 2, 3... per channel (0 for join/leave) */
    uint64_t time_ms;             /* wall-clock publish time (history TTL) */
    uint64_t hub_us;              /* monotonic µs it entered this node's hub, when sampled for
                                     herald_publish_to_write_seconds (hub.c); else 0 */
    char epoch[HR_EPOCH_LEN + 1];
    uint32_t channel_len, data_len, info_len;
    const char *channel;          /* NUL-terminated, in blob */
    const char *data;             /* JSON text, NUL-terminated, in blob */
    const char *info;             /* JSON object text or NULL */
    char blob[];
} hr_pub;

/* New publication with refs = 1; texts are copied. info may be NULL. */
hr_pub *hr_pub_new(hr_pub_kind kind, const char *channel, size_t clen, const char *data, size_t dlen,
                   const char *info, size_t ilen);
static inline hr_pub *hr_pub_ref(hr_pub *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}
void hr_pub_unref(hr_pub *p);

/* A shared, immutable byte buffer for one worker (an encoded frame queued to
 * many connections). Not thread-safe: one worker's connections only. */
typedef struct hr_sbuf {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
} hr_sbuf;

hr_sbuf *hr_sbuf_new(const void *data, size_t len);
/* Header + payload in one buffer (a WebSocket frame). */
hr_sbuf *hr_sbuf_new2(const void *a, size_t alen, const void *b, size_t blen);
/* len bytes not yet written (the caller fills data), refs = 1. */
hr_sbuf *hr_sbuf_alloc(size_t len);
static inline hr_sbuf *hr_sbuf_ref(hr_sbuf *b)
{
    b->refs++;
    return b;
}
void hr_sbuf_unref(hr_sbuf *b);

/* Random 16-hex-digit epoch. */
void hr_epoch_new(char out[HR_EPOCH_LEN + 1]);

/* The refusal of a publication over channels.max_publication_size, naming
 * the limit: "publication is 70000 bytes, the limit is 65536
 * (channels.max_publication_size)". Returns out. */
const char *hr_pub_too_big_text(char *out, size_t cap, size_t len, int64_t limit);
/* Wall clock in milliseconds. */
uint64_t hr_wall_ms(void);

#endif
