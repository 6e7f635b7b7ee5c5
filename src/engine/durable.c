/* durable.c - the memory engine's durable log (--data-dir): publications
 * appended to segment files by one log thread, replayed at start-up.
 *
 * Files: DIR/<16 hex digits>.log, one per segment, in id order. Every start
 * opens a new segment; a segment is closed (synced, never written again)
 * once the next record would take it past engine.segment_bytes. Records are
 * framed by engine/logrec.c (magic, length, CRC-32).
 *
 * Publish (memory.c, under the channel's shard lock): the offset is
 * assigned and the publication queued here, so the queue holds each
 * channel's publications in offset order. A sleeping log thread is woken
 * (hr_durable_wake) after the shard lock is released: the futex call would
 * otherwise lengthen the lock the log thread takes next for that channel. The log thread takes the whole
 * queue, encodes it into one buffer and writes it with one pwrite(2) per
 * segment (group commit); with fsync = always it then calls fdatasync.
 * Only then, under the shard lock again, each publication is stored in its
 * channel's history and delivered to the hub (subscribers never see what a
 * crash could take back), and its callback is posted to the publishing
 * worker. fsync = interval syncs the active segment every fsync_interval.
 * The queue is bounded by engine.max_queued_bytes (hr_durable_admit: a
 * publish past it is refused before it takes an offset).
 * A retry (same idempotency key) of a publication still queued is parked
 * on its item and answered with its result when it is answered.
 *
 * A failed write (ENOSPC, EIO, EFBIG) is cut back with ftruncate, so the
 * file never keeps part of a batch; the batch's publications fail with
 * HR_ERR_STORAGE and their offsets are taken back (newest first); where a
 * later publication already took the next offset, the channel gets a new
 * epoch instead (never a silent gap). Until a probe record (NOP) can be
 * written again, publishes fail at once without taking an offset.
 *
 * Recovery: every segment is read in order; a record that does not decode
 * is either a torn tail (nothing valid follows it in the last segment: the
 * file is truncated there) or damage (logged; every channel with a record
 * after it gets a new epoch, written as an EPOCH record, then a NOP marks
 * the damage as handled for later starts).
 *
 * Retention: each segment lists the channels it has records of and their
 * last offset in it. A closed segment none of whose channels still holds
 * one of those offsets in history is deleted, unless it holds a channel's
 * newest record (a publication, or an EPOCH or REMOVE record) while an
 * older segment still holds one of that channel's records: a restart then
 * always finds each channel's newest epoch and offset, never an older
 * one. Past engine.max_disk_bytes the oldest segment goes anyway and its
 * publications leave history as a memory eviction does. */
#include "engine/logrec.h"
#include "engine/memory_internal.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Besides the HR_LOGREC_* kinds: an event is delivered, not written; a
 * retry is a parked publish answered with its original's result. */
enum { ITEM_EVENT = 0, ITEM_RETRY = 0xff };

typedef struct litem {
    hr_engine_task task; /* first: the posted callback */
    struct litem *next;
    uint8_t kind;
    int worker;
    int err;
    mchan *c;
    hr_pub *pub;
    hr_chan_opts o;
    hr_publish_cb pcb;
    hr_done_cb dcb;
    void *ud;
    struct litem *retries; /* parked retries of this publish (its idempotency key), under the shard lock */
    uint64_t offset;
    char epoch[HR_EPOCH_LEN + 1];
    uint64_t cost;         /* bytes charged to the queue (publications) */
    uint32_t idem_len;
    char idem[];
} litem;

typedef struct chanref {
    mchan *c;
    uint64_t last;       /* the channel's newest offset in the segment */
    uint64_t expires_ms; /* wall time its history_ttl ends (0 = no TTL) */
} chanref;

typedef struct segment {
    uint64_t id;
    uint64_t bytes;
    chanref *refs;
    size_t n, cap;
} segment;

struct hr_durable {
    mengine *m;
    hr_durable_opts o;
    char *dir;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    litem *head, *tail;
    bool stop;
    bool idle;            /* the thread waits on cv */
    _Atomic bool wake;    /* an item was queued while it waited: hr_durable_wake signals cv */
    litem **answers;      /* per worker: answered items to post as one task (log thread) */
    size_t nanswers;
    _Atomic bool failing;
    _Atomic uint64_t disk_bytes;
    _Atomic uint64_t syncs;  /* fdatasync calls on segments (herald_disk_syncs_total) */
    _Atomic uint64_t queued; /* bytes of the publications queued (engine.max_queued_bytes) */
    _Atomic uint64_t queue_full; /* publishes refused for it (herald_disk_queue_full_total) */
    int fd;               /* the active segment (the last of segs) */
    segment *segs;        /* oldest first */
    size_t nsegs, capsegs;
    uint8_t *buf;
    size_t buflen, bufcap;
    bool dirty;           /* written since the last fdatasync */
    /* The sync thread (fsync = interval, and closed segments): fdatasync of
     * descriptors dup'ed by the log thread, so a slow disk flush never holds
     * up writes. */
    pthread_t sync_th;
    bool sync_started, sync_stop, sync_dir_wanted;
    pthread_cond_t sync_cv;
    int *sync_fds;
    size_t nsync, capsync;
    uint64_t last_sync_ms, last_retain_ms;
};

/* fdatasync of a segment, counted. */
static int seg_sync(hr_durable *d, int fd)
{
    atomic_fetch_add_explicit(&d->syncs, 1, memory_order_relaxed);
    return fdatasync(fd);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void seg_path(const hr_durable *d, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016llx.log", d->dir, (unsigned long long)id);
}

static segment *active(hr_durable *d) { return &d->segs[d->nsegs - 1]; }

/* c's ref in s (its newest record is in s from now on), added if new. A
 * new ref's expiry is 1 (long past): it holds no publication yet. */
static chanref *ref_of(segment *s, mchan *c, uint64_t off)
{
    if (c->log_seg == s->id + 1) {
        chanref *r = &s->refs[c->log_idx];
        if (off > r->last) r->last = off;
        return r;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->refs = hr_realloc(s->refs, s->cap * sizeof(*s->refs));
    }
    c->log_seg = s->id + 1;
    c->log_idx = (uint32_t)s->n;
    c->log_nsegs++;
    s->refs[s->n] = (chanref){c, off, 1};
    return &s->refs[s->n++];
}

/* Segment s holds c's publication at offset off, published at time_ms
 * (the log thread, or recovery). */
static void note(segment *s, mchan *c, uint64_t off, uint64_t time_ms, uint64_t ttl_ms)
{
    uint64_t expires = ttl_ms ? time_ms + ttl_ms : 0;
    chanref *r = ref_of(s, c, off);
    r->expires_ms = r->expires_ms && expires ? (expires > r->expires_ms ? expires : r->expires_ms) : 0;
}

/* Segment s holds c's EPOCH or REMOVE record: no publication, but c's
 * newest position (see seg_retained). */
static void note_pos(segment *s, mchan *c, uint64_t off) { ref_of(s, c, off); }

static void sync_dir(const hr_durable *d)
{
    int fd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

static void *sync_main(void *arg)
{
    hr_durable *d = arg;
    pthread_setname_np(pthread_self(), "herald-sync");
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->nsync && !d->sync_dir_wanted && !d->sync_stop) pthread_cond_wait(&d->sync_cv, &d->mu);
        if (!d->nsync && !d->sync_dir_wanted) break;
        int *fds = d->sync_fds;
        size_t n = d->nsync;
        bool dir = d->sync_dir_wanted;
        d->sync_fds = NULL;
        d->nsync = d->capsync = 0;
        d->sync_dir_wanted = false;
        pthread_mutex_unlock(&d->mu);
        for (size_t i = 0; i < n; i++) {
            if (seg_sync(d, fds[i]) < 0) hr_logf(HR_LOG_ERROR, "durable_fsync_failed", "durable log: fdatasync failed: %s", strerror(errno));
            close(fds[i]);
        }
        if (dir) sync_dir(d);
        hr_free(fds);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Have the sync thread flush fd (and the directory); at once when it is
 * not running (recovery, shutdown). */
static void sync_later(hr_durable *d, int fd, bool dir)
{
    if (!d->sync_started) {
        if (fd >= 0) seg_sync(d, fd);
        if (dir) sync_dir(d);
        return;
    }
    int dupfd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    pthread_mutex_lock(&d->mu);
    if (dupfd >= 0) {
        if (d->nsync == d->capsync) {
            d->capsync = d->capsync ? d->capsync * 2 : 4;
            d->sync_fds = hr_realloc(d->sync_fds, d->capsync * sizeof(int));
        }
        d->sync_fds[d->nsync++] = dupfd;
    }
    d->sync_dir_wanted |= dir;
    pthread_cond_signal(&d->sync_cv);
    pthread_mutex_unlock(&d->mu);
}

/* Open a new active segment (after the last). */
static int seg_open(hr_durable *d)
{
    uint64_t id = d->nsegs ? active(d)->id + 1 : 0;
    char path[4096];
    seg_path(d, id, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    if (d->fd >= 0) {
        if (d->o.fsync != HR_FSYNC_NEVER) sync_later(d, d->fd, false); /* a closed segment goes to disk */
        close(d->fd);
    }
    d->fd = fd;
    if (d->nsegs == d->capsegs) {
        d->capsegs = d->capsegs ? d->capsegs * 2 : 16;
        d->segs = hr_realloc(d->segs, d->capsegs * sizeof(*d->segs));
    }
    d->segs[d->nsegs++] = (segment){.id = id};
    if (d->o.fsync != HR_FSYNC_NEVER) sync_later(d, -1, true);
    return 0;
}

/* Append d->buf to the active segment; a failure is cut back. */
static int seg_write(hr_durable *d)
{
    segment *s = active(d);
    size_t done = 0;
    while (done < d->buflen) {
        ssize_t n = pwrite(d->fd, d->buf + done, d->buflen - done, (off_t)(s->bytes + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            if (ftruncate(d->fd, (off_t)s->bytes) < 0) hr_logf(HR_LOG_ERROR, "durable_undo_failed", "durable log: cannot cut back a failed write: %s", strerror(errno));
            return -e;
        }
        done += (size_t)n;
    }
    if (d->o.fsync == HR_FSYNC_ALWAYS && seg_sync(d, d->fd) < 0) {
        int e = errno;
        if (ftruncate(d->fd, (off_t)s->bytes) < 0) hr_logf(HR_LOG_ERROR, "durable_undo_failed", "durable log: cannot cut back a failed write: %s", strerror(errno));
        return -e;
    }
    s->bytes += d->buflen;
    atomic_fetch_add_explicit(&d->disk_bytes, d->buflen, memory_order_relaxed);
    d->dirty = d->o.fsync == HR_FSYNC_INTERVAL;
    d->buflen = 0;
    return 0;
}

static void buf_add(hr_durable *d, const hr_logrec *r)
{
    size_t n = hr_logrec_size(r);
    if (d->buflen + n > d->bufcap) {
        d->bufcap = HR_MAX(d->bufcap * 2, d->buflen + n);
        d->buf = hr_realloc(d->buf, d->bufcap);
    }
    d->buflen += hr_logrec_encode(r, d->buf + d->buflen);
}

/* The record an item writes (kind PUB / REMOVE / EPOCH). */
static hr_logrec item_rec(const litem *it)
{
    hr_logrec r = {.kind = it->kind, .offset = it->offset};
    memcpy(r.epoch, it->epoch, sizeof(r.epoch));
    r.channel = it->c->name;
    r.channel_len = (uint32_t)it->c->len;
    if (it->kind != HR_LOGREC_PUB) return r;
    const hr_pub *p = it->pub;
    r.time_ms = p->time_ms;
    r.history_size = it->o.history_size;
    r.history_ttl_ms = it->o.history_ttl_ms;
    r.idem_window_ms = it->o.idempotency_window_ms;
    r.data = p->data;
    r.data_len = p->data_len;
    r.has_info = p->info != NULL;
    r.info = p->info;
    r.info_len = p->info ? p->info_len : 0;
    r.idem = it->idem;
    r.idem_len = it->idem_len;
    return r;
}

/* ---- queue (workers) --------------------------------------------------------- */

static litem *item_new(int kind, mchan *c, size_t idem_len)
{
    litem *it = hr_calloc(1, sizeof(*it) + idem_len);
    it->kind = (uint8_t)kind;
    it->c = c;
    it->worker = hr_engine_worker;
    it->idem_len = (uint32_t)idem_len;
    return it;
}

/* What a queued publication holds: its item and the publication. */
static uint64_t pub_cost(const hr_pub *p, size_t idem_len)
{
    return sizeof(litem) + idem_len + p->channel_len + p->data_len + (p->info ? p->info_len : 0);
}

bool hr_durable_admit(hr_durable *d, const hr_pub *pub, size_t idem_len)
{
    uint64_t max = d->o.max_queued_bytes;
    uint64_t q = atomic_load_explicit(&d->queued, memory_order_relaxed);
    if (!max || !q || q + pub_cost(pub, idem_len) <= max) return true;
    atomic_fetch_add_explicit(&d->queue_full, 1, memory_order_relaxed);
    return false;
}

void hr_durable_queue_stats(hr_durable *d, uint64_t *queued, uint64_t *refused)
{
    *queued = atomic_load_explicit(&d->queued, memory_order_relaxed);
    *refused = atomic_load_explicit(&d->queue_full, memory_order_relaxed);
}

static void enqueue(hr_durable *d, litem *it)
{
    if (it->cost) atomic_fetch_add_explicit(&d->queued, it->cost, memory_order_relaxed);
    pthread_mutex_lock(&d->mu);
    bool was_empty = !d->head;
    if (d->tail) d->tail->next = it;
    else d->head = it;
    d->tail = it;
    if (was_empty && d->idle) atomic_store_explicit(&d->wake, true, memory_order_relaxed); /* else the thread takes it with the rest */
    pthread_mutex_unlock(&d->mu);
}

void hr_durable_wake(hr_durable *d)
{
    if (atomic_load_explicit(&d->wake, memory_order_relaxed) &&
        atomic_exchange_explicit(&d->wake, false, memory_order_relaxed))
        pthread_cond_signal(&d->cv);
}

void *hr_durable_publish(hr_durable *d, mchan *c, hr_pub *pub, const hr_chan_opts *o, const char *idem,
                         size_t idem_len, hr_publish_cb cb, void *ud)
{
    litem *it = item_new(HR_LOGREC_PUB, c, idem_len);
    it->pub = hr_pub_ref(pub);
    it->o = *o;
    it->pcb = cb;
    it->ud = ud;
    it->offset = pub->offset;
    it->cost = pub_cost(pub, idem_len);
    memcpy(it->epoch, pub->epoch, sizeof(it->epoch));
    if (idem_len) memcpy(it->idem, idem, idem_len);
    enqueue(d, it);
    return it;
}

void hr_durable_park(hr_durable *d, void *pending, hr_publish_cb cb, void *ud)
{
    HR_UNUSED(d);
    litem *orig = pending, *it = item_new(ITEM_RETRY, orig->c, 0);
    it->pcb = cb;
    it->ud = ud;
    it->next = orig->retries;
    orig->retries = it;
}

void hr_durable_event(hr_durable *d, hr_pub *pub)
{
    litem *it = item_new(ITEM_EVENT, NULL, 0);
    it->pub = hr_pub_ref(pub);
    enqueue(d, it);
}

void hr_durable_remove(hr_durable *d, mchan *c, hr_done_cb cb, void *ud)
{
    litem *it = item_new(HR_LOGREC_REMOVE, c, 0);
    it->dcb = cb;
    it->ud = ud;
    it->offset = c->offset;
    memcpy(it->epoch, c->epoch, sizeof(it->epoch));
    enqueue(d, it);
}

bool hr_durable_failing(hr_durable *d) { return atomic_load_explicit(&d->failing, memory_order_relaxed); }

uint64_t hr_durable_disk_bytes(hr_durable *d) { return atomic_load_explicit(&d->disk_bytes, memory_order_relaxed); }
uint64_t hr_durable_syncs(hr_durable *d) { return atomic_load_explicit(&d->syncs, memory_order_relaxed); }

/* ---- completion (log thread) --------------------------------------------------- */

static void item_free(litem *it)
{
    if (it->pub) hr_pub_unref(it->pub);
    hr_free(it);
}

static void item_run(hr_engine_task *t, bool live)
{
    litem *it = (litem *)t;
    if (live && it->pcb) it->pcb(it->ud, it->err, it->offset, it->err ? NULL : it->epoch);
    if (live && it->dcb) it->dcb(it->ud, it->err);
    item_free(it);
}

/* A worker's answered items of one batch, posted as one task (one wake-up). */
typedef struct answers {
    hr_engine_task task;
    litem *head;
} answers;

static void answers_run(hr_engine_task *t, bool live)
{
    answers *a = (answers *)t;
    for (litem *it = a->head, *nx; it; it = nx) {
        nx = it->next;
        item_run(&it->task, live);
    }
    hr_free(a);
}

/* Queue the item's callback for its worker (flush posts them), or run it
 * here (no worker, or no callback). */
static void answer(hr_durable *d, litem *it)
{
    it->task.run = item_run;
    it->next = NULL;
    if (!(it->pcb || it->dcb) || it->worker < 0 || !d->m->base.post) {
        item_run(&it->task, true);
        return;
    }
    size_t w = (size_t)it->worker;
    if (w >= d->nanswers) {
        size_t n = HR_MAX(w + 1, d->nanswers * 2);
        d->answers = hr_realloc(d->answers, n * sizeof(*d->answers));
        memset(d->answers + d->nanswers, 0, (n - d->nanswers) * sizeof(*d->answers));
        d->nanswers = n;
    }
    /* kept newest first; flush reverses to the answering order */
    it->next = d->answers[w];
    d->answers[w] = it;
}

/* Post every worker's answers of this batch, in order. */
static void flush_answers(hr_durable *d)
{
    for (size_t w = 0; w < d->nanswers; w++) {
        litem *rev = NULL;
        for (litem *it = d->answers[w], *nx; it; it = nx) {
            nx = it->next;
            it->next = rev;
            rev = it;
        }
        d->answers[w] = NULL;
        if (!rev) continue;
        answers *a = hr_malloc(sizeof(*a));
        a->task.run = answers_run;
        a->head = rev;
        d->m->base.post(d->m->base.hub, (int)w, &a->task);
    }
}

static shard *shard_for(mengine *m, const mchan *c) { return mem_shard_of(m, c->hash); }

/* Under the shard lock: it's retries, detached (no more can park: its key
 * is settled or forgotten). */
static litem *take_retries(litem *it)
{
    litem *r = it->retries;
    it->retries = NULL;
    if (it->idem_len) mem_idem_settle(it->c, it->idem, it->idem_len, it);
    return r;
}

/* Answer each retry as its original is answered (before it: answer()
 * may free the original). */
static void answer_retries(hr_durable *d, const litem *orig, litem *r)
{
    for (litem *nx; r; r = nx) {
        nx = r->next;
        r->err = orig->err;
        r->offset = orig->offset;
        memcpy(r->epoch, orig->epoch, sizeof(r->epoch));
        answer(d, r);
    }
}

/* Written: into history and out to the hub, under the channel's lock. */
static void complete(hr_durable *d, litem *it)
{
    mengine *m = d->m;
    if (it->kind == ITEM_EVENT) {
        uint64_t h = mem_hash(it->pub->channel, it->pub->channel_len);
        shard *sh = mem_shard_of(m, h);
        pthread_mutex_lock(&sh->mu);
        m->base.deliver(m->base.hub, it->pub);
        pthread_mutex_unlock(&sh->mu);
    } else if (it->kind == HR_LOGREC_PUB || it->kind == HR_LOGREC_REMOVE) {
        mchan *c = it->c;
        shard *sh = shard_for(m, c);
        pthread_mutex_lock(&sh->mu);
        litem *retries = take_retries(it);
        if (it->kind == HR_LOGREC_REMOVE) {
            while (c->count) mem_ring_drop_oldest(m, c);
        } else if (memcmp(c->epoch, it->epoch, HR_EPOCH_LEN) == 0) { /* else renewed after a failure */
            mem_ring_maintain(m, c, &it->o);
            if (c->cap) mem_ring_push(m, c, it->pub);
            c->shown = it->offset;
            m->base.deliver(m->base.hub, it->pub);
        }
        if (it->kind == HR_LOGREC_PUB) note(active(d), c, it->offset, it->pub->time_ms, it->o.history_ttl_ms);
        else note_pos(active(d), c, it->offset);
        pthread_mutex_unlock(&sh->mu);
        if (it->kind == HR_LOGREC_PUB) mem_enforce_budget(m);
        answer_retries(d, it, retries);
    } else { /* EPOCH (take_back): the channel's position from now on */
        note_pos(active(d), it->c, it->offset);
    }
    answer(d, it);
}

/* The channel of a failed publication: take its offset back, or (a later
 * publication took the next one) give it a new epoch. */
static void take_back(hr_durable *d, litem *it)
{
    mchan *c = it->c;
    shard *sh = shard_for(d->m, c);
    pthread_mutex_lock(&sh->mu);
    if (memcmp(c->epoch, it->epoch, HR_EPOCH_LEN) == 0) {
        if (c->offset == it->offset) {
            c->offset--;
        } else {
            hr_epoch_new(c->epoch);
            while (c->count) mem_ring_drop_oldest(d->m, c);
            c->shown = c->offset;
            litem *e = item_new(HR_LOGREC_EPOCH, c, 0);
            e->worker = -1;
            e->offset = c->offset;
            memcpy(e->epoch, c->epoch, sizeof(e->epoch));
            enqueue(d, e);
        }
    }
    if (it->idem_len) mem_idem_remove(c, it->idem, it->idem_len);
    it->retries = take_retries(it); /* stable now: the key is gone; answered with the failure */
    pthread_mutex_unlock(&sh->mu);
}

/* Items [from, to) could not be written: newest first, they give back
 * their offsets; events are still delivered in their place. */
static void fail_items(hr_durable *d, litem *from, litem *to)
{
    size_t n = 0;
    for (litem *it = from; it != to; it = it->next) n++;
    litem **v = hr_malloc((n ? n : 1) * sizeof(*v));
    n = 0;
    for (litem *it = from; it != to; it = it->next) v[n++] = it;
    for (size_t i = n; i-- > 0;)
        if (v[i]->kind == HR_LOGREC_PUB) take_back(d, v[i]);
    for (size_t i = 0; i < n; i++) {
        if (v[i]->kind == ITEM_EVENT) {
            complete(d, v[i]);
            continue;
        }
        v[i]->err = HR_ERR_STORAGE;
        litem *retries = v[i]->retries;
        v[i]->retries = NULL;
        answer_retries(d, v[i], retries); /* first: answer() may free v[i] */
        answer(d, v[i]);
    }
    hr_free(v);
}

/* ---- retention --------------------------------------------------------------- */

/* Whether s must stay: it holds a channel's newest record while an older
 * segment holds another record of it (deleting s would make a restart
 * take that older record's epoch and offset: a position the channel has
 * left, maybe an epoch it has left), or a channel still holds one of s's
 * publications in history. Publications past their history_ttl do not
 * count: the ring drops them only when the channel is next used, and an
 * idle channel must not keep its segments. */
static bool seg_retained(hr_durable *d, const segment *s)
{
    uint64_t now = hr_wall_ms();
    for (size_t i = 0; i < s->n; i++) {
        mchan *pc = s->refs[i].c;
        if (pc->log_seg == s->id + 1 && pc->log_nsegs > 1) return true;
        if (s->refs[i].expires_ms && s->refs[i].expires_ms < now) continue;
        mchan *c = s->refs[i].c;
        shard *sh = shard_for(d->m, c);
        pthread_mutex_lock(&sh->mu);
        bool held = c->count && mem_ring_at(c, 0)->offset <= s->refs[i].last;
        pthread_mutex_unlock(&sh->mu);
        if (held) return true;
    }
    return false;
}

/* Forget the channels' references to s (their log_seg may name it). */
static void seg_delete(hr_durable *d, size_t i)
{
    segment *s = &d->segs[i];
    char path[4096];
    seg_path(d, s->id, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT) hr_logf(HR_LOG_WARN, "durable_delete_failed", "durable log: cannot delete %s: %s", path, strerror(errno));
    atomic_fetch_sub_explicit(&d->disk_bytes, s->bytes, memory_order_relaxed);
    for (size_t j = 0; j < s->n; j++) {
        mchan *c = s->refs[j].c;
        c->log_nsegs--;
        if (c->log_seg == s->id + 1) c->log_seg = 0;
    }
    hr_free(s->refs);
    memmove(&d->segs[i], &d->segs[i + 1], (d->nsegs - i - 1) * sizeof(*s));
    d->nsegs--;
}

/* Past max_disk_bytes: the oldest segment's publications leave history. */
static void seg_evict(hr_durable *d, const segment *s)
{
    for (size_t i = 0; i < s->n; i++) {
        mchan *c = s->refs[i].c;
        shard *sh = shard_for(d->m, c);
        pthread_mutex_lock(&sh->mu);
        while (c->count && mem_ring_at(c, 0)->offset <= s->refs[i].last) {
            mem_ring_drop_oldest(d->m, c);
            atomic_fetch_add_explicit(&d->m->evictions, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&sh->mu);
    }
}

static void retain(hr_durable *d, bool force)
{
    uint64_t now = mono_ms();
    if (force || now - d->last_retain_ms >= 1000) {
        d->last_retain_ms = now;
        for (size_t i = 0; i + 1 < d->nsegs;) {
            if (seg_retained(d, &d->segs[i])) i++;
            else seg_delete(d, i);
        }
    }
    uint64_t max = d->o.max_disk_bytes;
    while (max && atomic_load_explicit(&d->disk_bytes, memory_order_relaxed) > max) {
        if (d->nsegs == 1 && (active(d)->bytes == 0 || seg_open(d) < 0)) return;
        seg_evict(d, &d->segs[0]);
        seg_delete(d, 0);
    }
}

/* ---- the log thread ---------------------------------------------------------- */

/* Write the items [it, ...) up to the segment's end or the list's; *next
 * gets the first not written. 0, or the write's error. */
static int write_chunk(hr_durable *d, litem *it, litem **next)
{
    d->buflen = 0;
    for (; it; it = it->next) {
        if (it->kind == ITEM_EVENT) continue;
        hr_logrec r = item_rec(it);
        size_t n = hr_logrec_size(&r);
        segment *s = active(d);
        if (s->bytes + d->buflen + n > d->o.segment_bytes && s->bytes + d->buflen > 0) {
            if (d->buflen) break;
            int rc = seg_open(d);
            if (rc < 0) {
                *next = it;
                return rc;
            }
        }
        buf_add(d, &r);
    }
    *next = it;
    return d->buflen ? seg_write(d) : 0;
}

/* Write a NOP record: whether the disk takes writes again. */
static int probe(hr_durable *d)
{
    hr_logrec r = {.kind = HR_LOGREC_NOP};
    d->buflen = 0;
    buf_add(d, &r);
    return seg_write(d);
}

static void process(hr_durable *d, litem *batch)
{
    if (hr_durable_failing(d)) {
        if (probe(d) < 0) {
            fail_items(d, batch, NULL);
            return;
        }
        hr_logf(HR_LOG_INFO, "durable_writes_resumed", "durable log: writes succeed again");
        atomic_store(&d->failing, false);
    }
    litem *it = batch;
    while (it) {
        litem *next;
        int rc = write_chunk(d, it, &next);
        if (rc < 0) {
            hr_logf(HR_LOG_ERROR, "durable_write_failed", "durable log: write failed: %s; publishes fail until the disk takes writes again", strerror(-rc));
            atomic_store(&d->failing, true);
            fail_items(d, it, NULL);
            return;
        }
        while (it != next) {
            litem *nx = it->next;
            complete(d, it);
            it = nx;
        }
        if (it) retain(d, true); /* a segment was just closed */
    }
    retain(d, false);
}

static void *log_main(void *arg)
{
    hr_durable *d = arg;
    pthread_setname_np(pthread_self(), "herald-log");
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->head && !d->stop) {
            bool wait_timed = d->dirty || hr_durable_failing(d) || d->o.max_disk_bytes || d->nsegs > 1;
            d->idle = true;
            if (!wait_timed) {
                pthread_cond_wait(&d->cv, &d->mu);
                d->idle = false;
                continue;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + d->o.fsync_interval_ms * 1000000ull;
            ts.tv_sec += (time_t)(ns / 1000000000ull);
            ts.tv_nsec = (long)(ns % 1000000000ull);
            int w = pthread_cond_timedwait(&d->cv, &d->mu, &ts);
            d->idle = false;
            if (w == ETIMEDOUT) break;
        }
        litem *batch = d->head;
        d->head = d->tail = NULL;
        bool stop = d->stop && !batch;
        pthread_mutex_unlock(&d->mu);
        if (batch) {
            uint64_t cost = 0;
            for (litem *it = batch; it; it = it->next) cost += it->cost;
            process(d, batch);
            atomic_fetch_sub_explicit(&d->queued, cost, memory_order_relaxed);
            flush_answers(d);
        } else if (!stop) {
            if (hr_durable_failing(d) && probe(d) == 0) {
                hr_logf(HR_LOG_INFO, "durable_writes_resumed", "durable log: writes succeed again");
                atomic_store(&d->failing, false);
            }
            retain(d, false);
        }
        if (d->dirty && (stop || mono_ms() - d->last_sync_ms >= d->o.fsync_interval_ms)) {
            sync_later(d, d->fd, false);
            d->dirty = false;
            d->last_sync_ms = mono_ms();
        }
        if (stop) break;
        pthread_mutex_lock(&d->mu);
    }
    return NULL;
}

/* ---- recovery ---------------------------------------------------------------- */

typedef struct recovery {
    hr_durable *d;
    bool damaged;     /* a record after unhandled damage gets its channel a new epoch */
    uint64_t records, renewed;
    segment *seg;     /* being replayed */
    const char *path;
} recovery;

static void apply_pub(mengine *m, mchan *c, const hr_logrec *r)
{
    c->offset = c->shown = r->offset;
    hr_chan_opts o = {r->history_size, r->history_ttl_ms, false, false, r->idem_window_ms};
    mem_ring_maintain(m, c, &o);
    if (c->cap) {
        hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, r->channel, r->channel_len, r->data, r->data_len, r->info,
                               r->info_len);
        p->offset = r->offset;
        p->time_ms = r->time_ms;
        memcpy(p->epoch, c->epoch, sizeof(p->epoch));
        mem_ring_push(m, c, p);
        hr_pub_unref(p);
    }
    uint64_t expires = r->time_ms + r->idem_window_ms;
    if (r->idem_len && r->idem_window_ms && expires > hr_wall_ms())
        mem_idem_add(c, mem_hash(r->idem, r->idem_len), r->idem, r->idem_len, r->offset, expires);
}

static void apply(recovery *rv, segment *s, const hr_logrec *r)
{
    mengine *m = rv->d->m;
    rv->records++;
    if (r->kind == HR_LOGREC_NOP) { /* a later start handled every damage before it */
        rv->damaged = false;
        return;
    }
    uint64_t h = mem_hash(r->channel, r->channel_len);
    mchan *c = mem_get_or_create(m, mem_shard_of(m, h), h, r->channel, r->channel_len);
    if (!c->log_seen || memcmp(c->epoch, r->epoch, HR_EPOCH_LEN) != 0) {
        c->log_seen = true;
        memcpy(c->epoch, r->epoch, HR_EPOCH_LEN);
        while (c->count) mem_ring_drop_oldest(m, c);
    }
    if (r->kind == HR_LOGREC_EPOCH) {
        c->offset = c->shown = r->offset;
        c->log_renew = false;
        note_pos(s, c, r->offset);
        return;
    }
    c->log_renew |= rv->damaged;
    if (r->kind == HR_LOGREC_REMOVE) {
        while (c->count) mem_ring_drop_oldest(m, c);
        note_pos(s, c, r->offset);
        return;
    }
    apply_pub(m, c, r);
    note(s, c, r->offset, r->time_ms, r->history_ttl_ms);
}

static void on_record(void *ud, const hr_logrec *r, size_t pos)
{
    recovery *rv = ud;
    HR_UNUSED(pos);
    apply(rv, rv->seg, r);
}

static void on_damage(void *ud, size_t pos, size_t len)
{
    recovery *rv = ud;
    hr_logf(HR_LOG_ERROR, "durable_damaged_record", "durable log: %s: damaged record at byte %zu (%zu bytes skipped); the channels written after it get "
             "a new epoch",
             rv->path, pos, len);
    rv->damaged = true;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -errno;
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *b = hr_malloc(n ? n : 1);
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    *out = b;
    *len = got;
    return 0;
}

/* Replay one segment; last: it is the newest (a bad tail is a torn write). */
static int replay(recovery *rv, segment *s, bool last, char *err, size_t errlen)
{
    char path[4096];
    seg_path(rv->d, s->id, path, sizeof(path));
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = read_file(path, &b, &n);
    if (rc < 0) {
        hr_errf(err, errlen, "durable log: cannot read %s: %s", path, strerror(-rc));
        return HR_ERR_IO;
    }
    rv->seg = s;
    rv->path = path;
    size_t tail = hr_logrec_scan(b, n, on_record, on_damage, rv);
    if (tail < n && last) {
        hr_logf(HR_LOG_WARN, "durable_torn_record", "durable log: %s: torn record at byte %zu (%zu bytes) dropped", path, tail, n - tail);
        if (truncate(path, (off_t)tail) < 0) hr_logf(HR_LOG_WARN, "durable_truncate_failed", "durable log: cannot truncate %s: %s", path, strerror(errno));
        n = tail;
    } else if (tail < n) {
        on_damage(rv, tail, n - tail);
    }
    hr_free(b);
    s->bytes = n;
    atomic_fetch_add_explicit(&rv->d->disk_bytes, n, memory_order_relaxed);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids of DIR's segment files, sorted. */
static int list_segments(const char *dir, uint64_t **ids, size_t *n)
{
    DIR *dp = opendir(dir);
    if (!dp) return -errno;
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        char *end;
        if (strlen(de->d_name) != 20 || strcmp(de->d_name + 16, ".log") != 0) continue;
        unsigned long long id = strtoull(de->d_name, &end, 16);
        if (end != de->d_name + 16) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *ids = hr_realloc(*ids, cap * sizeof(**ids));
        }
        (*ids)[(*n)++] = id;
    }
    closedir(dp);
    if (*n) qsort(*ids, *n, sizeof(**ids), cmp_u64);
    return 0;
}

/* Channels met after damage: a new epoch, written (into the new segment). */
static void renew_damaged(recovery *rv)
{
    hr_durable *d = rv->d;
    mengine *m = d->m;
    for (int i = 0; i < 64; i++) {
        shard *sh = &m->shards[i];
        for (size_t b = 0; b < sh->nbuckets; b++)
            for (mchan *c = sh->buckets[b]; c; c = c->next) {
                if (!c->log_renew) continue;
                c->log_renew = false;
                hr_epoch_new(c->epoch);
                while (c->count) mem_ring_drop_oldest(m, c);
                hr_logrec r = {.kind = HR_LOGREC_EPOCH, .offset = c->offset, .channel = c->name,
                               .channel_len = (uint32_t)c->len};
                memcpy(r.epoch, c->epoch, sizeof(r.epoch));
                buf_add(d, &r);
                note_pos(active(d), c, c->offset);
                rv->renewed++;
            }
    }
}

static int recover(hr_durable *d, char *err, size_t errlen)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = list_segments(d->dir, &ids, &n);
    if (rc < 0) {
        hr_errf(err, errlen, "engine.data_dir: cannot read %s: %s", d->dir, strerror(-rc));
        return HR_ERR_IO;
    }
    recovery rv = {.d = d};
    uint64_t t0 = mono_ms();
    for (size_t i = 0; i < n; i++) {
        if (d->nsegs == d->capsegs) {
            d->capsegs = d->capsegs ? d->capsegs * 2 : 16;
            d->segs = hr_realloc(d->segs, d->capsegs * sizeof(*d->segs));
        }
        d->segs[d->nsegs++] = (segment){.id = ids[i]};
        rc = replay(&rv, active(d), i + 1 == n, err, errlen);
        if (rc < 0) break;
    }
    hr_free(ids);
    if (rc < 0) return rc;
    rc = seg_open(d);
    if (rc < 0) {
        hr_errf(err, errlen, "engine.data_dir: cannot create a segment in %s: %s", d->dir, strerror(-rc));
        return HR_ERR_IO;
    }
    d->buflen = 0;
    renew_damaged(&rv);
    if (rv.damaged || rv.renewed) {
        hr_logrec nop = {.kind = HR_LOGREC_NOP};
        buf_add(d, &nop);
    }
    if (d->buflen && (rc = seg_write(d)) < 0) {
        hr_errf(err, errlen, "engine.data_dir: cannot write to %s: %s", d->dir, strerror(-rc));
        return HR_ERR_IO;
    }
    mem_enforce_budget(d->m);
    hr_logf(HR_LOG_INFO, "durable_replayed", "durable log: %llu records in %zu segments (%llu bytes) replayed in %llu ms%s",
            (unsigned long long)rv.records, n, (unsigned long long)hr_durable_disk_bytes(d),
            (unsigned long long)(mono_ms() - t0), rv.renewed ? "; damaged channels got a new epoch" : "");
    return 0;
}

/* ---- open / close -------------------------------------------------------------- */

/* Let the sync thread finish what it was given, and end it. */
static void stop_sync(hr_durable *d)
{
    if (!d->sync_started) return;
    pthread_mutex_lock(&d->mu);
    d->sync_stop = true;
    pthread_cond_signal(&d->sync_cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->sync_th, NULL);
    d->sync_started = false;
}

static void durable_free(hr_durable *d)
{
    stop_sync(d);
    if (d->fd >= 0) close(d->fd);
    for (size_t i = 0; i < d->nsegs; i++) hr_free(d->segs[i].refs);
    hr_free(d->segs);
    hr_free(d->answers);
    hr_free(d->buf);
    hr_free(d->dir);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->sync_cv);
    hr_free(d->sync_fds);
    hr_free(d);
}

int hr_durable_open(mengine *m, const hr_durable_opts *o, char *err, size_t errlen)
{
    if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
        hr_errf(err, errlen, "engine.data_dir: cannot create %s: %s", o->dir, strerror(errno));
        return HR_ERR_IO;
    }
    signal(SIGXFSZ, SIG_IGN); /* a file size limit fails the write (EFBIG) instead of killing the process */
    hr_durable *d = hr_calloc(1, sizeof(*d));
    d->m = m;
    d->o = *o;
    d->dir = hr_strdup(o->dir);
    d->o.dir = d->dir;
    d->fd = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_cond_init(&d->sync_cv, NULL);
    int rc = recover(d, err, errlen);
    if (rc == 0 && pthread_create(&d->sync_th, NULL, sync_main, d) == 0) d->sync_started = true;
    if (rc == 0 && pthread_create(&d->th, NULL, log_main, d) != 0) {
        hr_errf(err, errlen, "durable log: cannot start its thread");
        rc = HR_ERR_IO;
    }
    if (rc < 0) {
        durable_free(d);
        return rc;
    }
    d->started = true;
    d->last_sync_ms = d->last_retain_ms = mono_ms();
    m->log = d;
    return 0;
}

void hr_durable_close(hr_durable *d)
{
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->started) pthread_join(d->th, NULL);
    stop_sync(d);
    if (d->fd >= 0 && d->o.fsync != HR_FSYNC_NEVER) seg_sync(d, d->fd);
    d->m->log = NULL;
    durable_free(d);
}

int hr_fsync_mode_parse(const char *s)
{
    if (strcmp(s, "always") == 0) return HR_FSYNC_ALWAYS;
    if (strcmp(s, "interval") == 0) return HR_FSYNC_INTERVAL;
    if (strcmp(s, "never") == 0) return HR_FSYNC_NEVER;
    return -1;
}

/* ---- snapshot ------------------------------------------------------------------ */

/* Copy the first len bytes of src to a new file dst, synced. A source
 * deleted meanwhile (retention) is skipped. */
static int copy_prefix(const char *src, const char *dst, uint64_t len)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno == ENOENT ? 0 : -errno;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return -e;
    }
    static uint8_t buf[1 << 16];
    int rc = 0;
    while (len && rc == 0) {
        ssize_t n = read(in, buf, len < sizeof(buf) ? (size_t)len : sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* shorter than listed: cut by a torn-tail recovery */
        if (write(out, buf, (size_t)n) != n) rc = -(errno ? errno : ENOSPC);
        len -= (uint64_t)n;
    }
    if (rc == 0 && fsync(out) < 0) rc = -errno;
    close(in);
    close(out);
    return rc;
}

int hr_durable_snapshot(const char *dir, const char *out, char *err, size_t errlen)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = list_segments(dir, &ids, &n);
    if (rc < 0) {
        hr_errf(err, errlen, "%s: %s", dir, strerror(-rc));
        return HR_ERR_IO;
    }
    /* Sizes after the listing: every listed segment but the last was closed
     * (complete) when the listing saw the next one; the last is copied up to
     * the length it had now, a prefix of whole records and maybe one torn
     * record, which recovery of the copy cuts. */
    uint64_t *lens = hr_calloc(n ? n : 1, sizeof(*lens));
    hr_durable tmp = {.dir = (char *)dir};
    char path[4096], dst[4096];
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        seg_path(&tmp, ids[i], path, sizeof(path));
        lens[i] = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    if (mkdir(out, 0755) < 0) {
        hr_errf(err, errlen, "%s: %s", out, strerror(errno));
        rc = HR_ERR_IO;
    }
    hr_durable copy = {.dir = (char *)out};
    for (size_t i = 0; i < n && rc == 0; i++) {
        seg_path(&tmp, ids[i], path, sizeof(path));
        seg_path(&copy, ids[i], dst, sizeof(dst));
        int e = copy_prefix(path, dst, lens[i]);
        if (e < 0) {
            hr_errf(err, errlen, "%s: %s", dst, strerror(-e));
            rc = HR_ERR_IO;
        }
    }
    if (rc == 0) sync_dir(&copy);
    hr_free(lens);
    hr_free(ids);
    return rc;
}
