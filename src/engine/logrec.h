/* logrec.h - the durable log's record codec (no I/O): one record per
 * publication (and per history removal or epoch change), framed so a reader
 * can tell a whole record from a torn or damaged one.
 *
 * Layout, little-endian: magic u32 "HRL1", len u32 (whole record, header
 * included), crc u32 (CRC-32 of bytes [12, len)), then the body: kind u8,
 * has_info u8, epoch[16], offset u64, time_ms u64, history_size u32,
 * history_ttl_ms u64, idem_window_ms u64, channel_len u32, data_len u32,
 * info_len u32, idem_len u32, then channel, data, info and idempotency key
 * bytes. The history options travel with every record so recovery rebuilds
 * a channel's ring to the size its namespace had, without the config. */
#ifndef HERALD_ENGINE_LOGREC_H
#define HERALD_ENGINE_LOGREC_H

#include "engine/pub.h"

#define HR_LOGREC_MAGIC 0x314c5248u /* "HRL1" */
#define HR_LOGREC_HEAD 12
#define HR_LOGREC_FIXED (HR_LOGREC_HEAD + 2 + HR_EPOCH_LEN + 8 + 8 + 4 + 8 + 8 + 16)
#define HR_LOGREC_MAX_LEN (1u << 30) /* no record is longer: a longer len is damage */

enum hr_logrec_kind {
    HR_LOGREC_PUB = 1,    /* a publication */
    HR_LOGREC_REMOVE = 2, /* the channel's history was removed */
    HR_LOGREC_EPOCH = 3,  /* the channel starts epoch `epoch` at `offset` */
    HR_LOGREC_NOP = 4,    /* written to probe a failed disk; carries nothing */
};

typedef struct hr_logrec {
    uint8_t kind;
    bool has_info;
    char epoch[HR_EPOCH_LEN + 1];
    uint64_t offset, time_ms;
    uint32_t history_size;
    uint64_t history_ttl_ms, idem_window_ms;
    const char *channel, *data, *info, *idem; /* not NUL-terminated; point into the decoded bytes */
    uint32_t channel_len, data_len, info_len, idem_len;
} hr_logrec;

/* Bytes r takes encoded. */
size_t hr_logrec_size(const hr_logrec *r);
/* Encode r into out (hr_logrec_size(r) bytes); returns that size. */
size_t hr_logrec_encode(const hr_logrec *r, uint8_t *out);
/* Decode the record at p[0..n): 0 and *used = its length; HR_ERR_AGAIN when
 * p holds only the start of a well-formed header (a torn tail); HR_ERR_PROTO
 * when the bytes are not a record (bad magic, length, CRC or lengths). */
int hr_logrec_decode(const uint8_t *p, size_t n, hr_logrec *r, size_t *used);

/* Read a segment's bytes p[0..n): on_rec for every whole record (pos: where
 * it starts), on_damage for every run of bytes that is not a record but is
 * followed by one (the scan resumes at the next byte where a whole record
 * decodes). Returns where an unreadable run reaching the end starts (n when
 * the bytes end with a whole record): a torn write in the newest segment. */
size_t hr_logrec_scan(const uint8_t *p, size_t n, void (*on_rec)(void *ud, const hr_logrec *r, size_t pos),
                      void (*on_damage)(void *ud, size_t pos, size_t len), void *ud);

#endif
