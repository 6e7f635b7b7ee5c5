/* memory_internal.h - the memory engine's channel state, shared with its
 * durable log (engine/durable.c), which rebuilds channels at start-up and
 * stores and delivers publications from its own thread. Nothing outside
 * src/engine includes it. */
#ifndef HERALD_ENGINE_MEMORY_INTERNAL_H
#define HERALD_ENGINE_MEMORY_INTERNAL_H

#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>

#define SHARDS 64

/* A presence entry, 32 bytes in the channel's array. A client id of 32
 * lowercase hex digits (Herald's own ids) is kept as its 16 bytes here; any
 * other id (a Pusher socket id) is a copy of its own, its pointer in the
 * first 8 bytes and the last 8 zero (memory.c, pres_client). */
typedef struct mpres {
    union {
        uint8_t bin[16];    /* packed */
        char *str;          /* not packed: bin[8..15] are 0 */
    } client;
    char *user, *info;
} mpres;

/* A remembered publish idempotency key: in the channel's hash index and in
 * its FIFO (oldest first, which is also expiry order). */
typedef struct midem {
    struct midem *hnext, *fnext;
    uint64_t hash;
    uint64_t offset;
    uint64_t expires_ms;
    void *pending;          /* the durable log's item while the original is being written, else NULL */
    size_t len;
    char key[];
} midem;

typedef struct mchan {
    struct mchan *next;
    uint64_t hash;
    size_t len;
    uint64_t offset;
    char epoch[HR_EPOCH_LEN + 1];
    hr_pub **ring;          /* history, oldest at head */
    uint32_t cap, head, count;
    mpres *pres;
    size_t npres, cappres;
    uint32_t *pidx;         /* presence index by client id (index + 1, 0 = empty), once big */
    uint32_t pidx_cap;
    midem **idem;           /* idempotency keys: hash index */
    size_t nidem_buckets, nidem;
    midem *idem_head, *idem_tail;
    struct mchan *lru_prev, *lru_next; /* in the engine's list of channels with history */
    bool in_lru;
    /* durable log only */
    uint64_t shown;         /* offset of the newest publication written and delivered */
    uint64_t log_seg;       /* id + 1 of the segment holding its newest record, 0 = none (log thread) */
    uint32_t log_idx;       /* its index in that segment's channel list */
    uint32_t log_nsegs;     /* live segments holding a record of it (log thread) */
    bool log_seen;          /* recovery met a record of it */
    bool log_renew;         /* recovery: a record after damage: gets a new epoch */
    char name[];            /* NUL-terminated, in the same allocation */
} mchan;

typedef struct shard {
    pthread_mutex_t mu;
    mchan **buckets;
    size_t nbuckets, count;
} shard;

typedef struct mengine {
    hr_engine base;
    shard shards[SHARDS];
    uint64_t budget;                /* channels.max_history_bytes; 0 = none */
    pthread_mutex_t lru_mu;         /* guards the list below (after a shard's lock) */
    mchan *lru_head, *lru_tail;     /* channels with history, least recently published first */
    _Atomic uint64_t hist_bytes;    /* bytes of the publications held in history */
    _Atomic uint64_t evictions;     /* publications evicted by the budget */
    _Atomic uint64_t nchannels;
    _Atomic uint64_t presence;      /* presence entries held, all channels */
    struct hr_durable *log;         /* the durable log, or NULL (memory only) */
} mengine;

uint64_t mem_hash(const char *s, size_t n);
shard *mem_shard_of(mengine *m, uint64_t h);
mchan *mem_get_or_create(mengine *m, shard *sh, uint64_t h, const char *name, size_t len);
hr_pub *mem_ring_at(const mchan *c, uint32_t i);
void mem_ring_drop_oldest(mengine *m, mchan *c);
void mem_ring_push(mengine *m, mchan *c, hr_pub *pub);
void mem_ring_maintain(mengine *m, mchan *c, const hr_chan_opts *o);
void mem_enforce_budget(mengine *m);
midem *mem_idem_add(mchan *c, uint64_t h, const char *key, size_t len, uint64_t offset, uint64_t expires);
/* The original publish of key (its log item `pending`) is written: retries
 * are answered at once from now on. */
void mem_idem_settle(mchan *c, const char *key, size_t len, const void *pending);
/* Forget key (a publish that failed to reach the disk). */
void mem_idem_remove(mchan *c, const char *key, size_t len);

/* ---- the durable log (engine/durable.c) ---- */
typedef struct hr_durable hr_durable;
/* Recover m's channels from o->dir and start the log thread. */
int hr_durable_open(mengine *m, const hr_durable_opts *o, char *err, size_t errlen);
/* Write what is queued, stop the thread, close the files. */
void hr_durable_close(hr_durable *d);
/* Whether the last write failed (publishes are refused until a probe succeeds). */
bool hr_durable_failing(hr_durable *d);
uint64_t hr_durable_disk_bytes(hr_durable *d);
/* fdatasync calls on the log's segments so far. */
uint64_t hr_durable_syncs(hr_durable *d);
/* Whether pub may be queued under engine.max_queued_bytes (always when
 * nothing waits); a refusal is counted. Checked before the offset is
 * taken and charged when queued: concurrent workers may pass the bound by
 * one publication each. */
bool hr_durable_admit(hr_durable *d, const hr_pub *pub, size_t idem_len);
/* Bytes queued for the log thread now; publishes refused for it so far. */
void hr_durable_queue_stats(hr_durable *d, uint64_t *queued, uint64_t *refused);
/* Under c's shard lock, in publish order: queue pub (offset and epoch
 * assigned) to be written, then stored in c's history and delivered, then
 * acknowledged through cb on the publishing worker. Returns the queued
 * item, for hr_durable_park. */
void *hr_durable_publish(hr_durable *d, mchan *c, hr_pub *pub, const hr_chan_opts *o, const char *idem,
                         size_t idem_len, hr_publish_cb cb, void *ud);
/* Under the channel's shard lock: a retry of the publish whose item
 * (hr_durable_publish's result) is not written yet gets the original's
 * answer, success or failure, when the original gets it. */
void hr_durable_park(hr_durable *d, void *pending, hr_publish_cb cb, void *ud);
/* Under the channel's shard lock: deliver a join/leave event in its place
 * among the queued publications. */
void hr_durable_event(hr_durable *d, hr_pub *pub);
/* Under c's shard lock: record the removal of c's history, then clear it. */
void hr_durable_remove(hr_durable *d, mchan *c, hr_done_cb cb, void *ud);
/* After the shard lock taken for hr_durable_publish, _event or _remove is
 * released: wake the log thread if it sleeps on an empty queue. */
void hr_durable_wake(hr_durable *d);

#endif
