/* logrec.c - the durable log's record codec (see logrec.h): fixed little-
 * endian fields, CRC-32 (zlib) over everything after the header. */
#include "engine/logrec.h"

#include <string.h>
#include <zlib.h>

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static uint8_t *put_bytes(uint8_t *p, const void *s, size_t n)
{
    if (n) memcpy(p, s, n);
    return p + n;
}

size_t hr_logrec_size(const hr_logrec *r)
{
    return HR_LOGREC_FIXED + (size_t)r->channel_len + r->data_len + (r->has_info ? r->info_len : 0) + r->idem_len;
}

size_t hr_logrec_encode(const hr_logrec *r, uint8_t *out)
{
    size_t len = hr_logrec_size(r);
    uint8_t *p = put32(out, HR_LOGREC_MAGIC);
    p = put32(p, (uint32_t)len);
    p += 4; /* crc, below */
    *p++ = r->kind;
    *p++ = r->has_info ? 1 : 0;
    p = put_bytes(p, r->epoch, HR_EPOCH_LEN);
    p = put64(p, r->offset);
    p = put64(p, r->time_ms);
    p = put32(p, r->history_size);
    p = put64(p, r->history_ttl_ms);
    p = put64(p, r->idem_window_ms);
    uint32_t ilen = r->has_info ? r->info_len : 0;
    p = put32(p, r->channel_len);
    p = put32(p, r->data_len);
    p = put32(p, ilen);
    p = put32(p, r->idem_len);
    p = put_bytes(p, r->channel, r->channel_len);
    p = put_bytes(p, r->data, r->data_len);
    p = put_bytes(p, r->info, ilen);
    put_bytes(p, r->idem, r->idem_len);
    put32(out + 8, (uint32_t)crc32(0, out + HR_LOGREC_HEAD, (uInt)(len - HR_LOGREC_HEAD)));
    return len;
}

/* The body's fixed fields, once the CRC held. */
static int decode_body(const uint8_t *p, uint32_t len, hr_logrec *r)
{
    const uint8_t *q = p + HR_LOGREC_HEAD;
    memset(r, 0, sizeof(*r));
    r->kind = q[0];
    if (r->kind < HR_LOGREC_PUB || r->kind > HR_LOGREC_NOP || q[1] > 1) return HR_ERR_PROTO;
    r->has_info = q[1];
    memcpy(r->epoch, q + 2, HR_EPOCH_LEN);
    q += 2 + HR_EPOCH_LEN;
    r->offset = get64(q);
    r->time_ms = get64(q + 8);
    r->history_size = get32(q + 16);
    r->history_ttl_ms = get64(q + 20);
    r->idem_window_ms = get64(q + 28);
    r->channel_len = get32(q + 36);
    r->data_len = get32(q + 40);
    r->info_len = get32(q + 44);
    r->idem_len = get32(q + 48);
    uint64_t var = (uint64_t)r->channel_len + r->data_len + r->info_len + r->idem_len;
    if (HR_LOGREC_FIXED + var != len || (!r->has_info && r->info_len)) return HR_ERR_PROTO;
    const char *s = (const char *)p + HR_LOGREC_FIXED;
    r->channel = s;
    r->data = s + r->channel_len;
    r->info = r->has_info ? r->data + r->data_len : NULL;
    r->idem = r->data + r->data_len + r->info_len;
    return 0;
}

int hr_logrec_decode(const uint8_t *p, size_t n, hr_logrec *r, size_t *used)
{
    if (n < 4) return memcmp(p, "HRL1", n) == 0 ? HR_ERR_AGAIN : HR_ERR_PROTO;
    if (get32(p) != HR_LOGREC_MAGIC) return HR_ERR_PROTO;
    if (n < 8) return HR_ERR_AGAIN;
    uint32_t len = get32(p + 4);
    if (len < HR_LOGREC_FIXED || len > HR_LOGREC_MAX_LEN) return HR_ERR_PROTO;
    if (n < len) return HR_ERR_AGAIN;
    if (get32(p + 8) != (uint32_t)crc32(0, p + HR_LOGREC_HEAD, len - HR_LOGREC_HEAD)) return HR_ERR_PROTO;
    int rc = decode_body(p, len, r);
    if (rc) return rc;
    *used = len;
    return 0;
}

/* The first position at or after from where a whole record decodes, or n. */
static size_t resync(const uint8_t *p, size_t from, size_t n)
{
    hr_logrec r;
    size_t used;
    for (size_t i = from; i + 4 <= n; i++)
        if (p[i] == 'H' && hr_logrec_decode(p + i, n - i, &r, &used) == 0) return i;
    return n;
}

size_t hr_logrec_scan(const uint8_t *p, size_t n, void (*on_rec)(void *ud, const hr_logrec *r, size_t pos),
                      void (*on_damage)(void *ud, size_t pos, size_t len), void *ud)
{
    size_t pos = 0;
    while (pos < n) {
        hr_logrec r;
        size_t used;
        if (hr_logrec_decode(p + pos, n - pos, &r, &used) == 0) {
            on_rec(ud, &r, pos);
            pos += used;
            continue;
        }
        size_t next = resync(p, pos + 1, n);
        if (next == n) return pos;
        on_damage(ud, pos, next - pos);
        pos = next;
    }
    return n;
}
