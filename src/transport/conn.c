/* conn.c - connection I/O: the read path into the worker's shared buffer,
 * leftovers, the output queue flushed once per loop turn, backpressure, and
 * deferred freeing (see conn.h). Every read, write, sendfile and shutdown
 * goes through the connection's layer (c->layer->ops): one flush loop for
 * every layer; a layer without sendfile (TLS) gets files read in chunks and
 * written like bytes (only hr_conn_close_discarding_input empties the
 * socket itself: those bytes are dropped unread, whatever the layer). The
 * plain socket layer (hr_conn_plain) is at the end of this file. */
#include "transport/conn.h"
#include "core/cidr.h"
#include "core/log.h"
#include "engine/pub.h"
#include "ops/limits.h"
#include "transport/worker.h"

#include <errno.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READS_PER_TURN 16          /* then yield to other connections */
#define IOV_MAX_BATCH 64
#define FILE_CHUNK 16384           /* a file through a layer without sendfile: read this much at a time */
#define OUTQ_MIN_CAP 8
/* Drained rings are kept per worker, by size class (OUTQ_MIN_CAP << k
 * entries, k < HR_RING_CLASSES), for the next connection that queues
 * something, up to server.output_ring_pool_bytes per worker. A fan-out fills and drains
 * every subscriber's queue each turn: a malloc + free of the ring per
 * delivery was ~20% of the server's own instructions at low rates
 * (callgrind), and at saturation, where each queue grows to 64-128 entries
 * per turn, freeing them all at the end of the turn made glibc give the
 * heap's top back (madvise) and fault it in again the next turn: ~40% of the
 * worker's time, most of it TLB shootdowns (perf, docs/benchmarks.md). */
enum { OE_BYTES = 0, OE_FILE = 1, OE_SHARED = 2 };

struct hr_oentry {
    uint8_t kind;
    union {
        int fd;             /* OE_FILE */
        uint32_t frames;    /* OE_BYTES, OE_SHARED: the frames it holds (a run: several), each costing
                               HR_CONN_ENTRY_COST as if queued alone */
    };
    union {
        hr_sbuf *ref;       /* OE_SHARED: bytes shared with other connections */
        uint8_t *bytes;     /* OE_BYTES: this connection's own copy */
    } u;
    uint64_t off;           /* bytes already written (OE_BYTES, OE_SHARED) / file offset (OE_FILE) */
    uint64_t len;           /* total bytes of this entry (OE_FILE: left to send) */
};
_Static_assert(sizeof(hr_oentry) == 32, "conn.h HR_CONN_ENTRY_COST's comment counts a 32-byte ring slot");

static void in_free(hr_conn *c);

uint64_t hr_conn_now(const hr_conn *c) { return hr_loop_now(&c->w->loop); }

static void schedule_flush(hr_conn *c)
{
    if (c->flags & (HR_CONN_IN_FLUSH_LIST | HR_CONN_CLOSED)) return;
    c->flags |= HR_CONN_IN_FLUSH_LIST;
    c->flush_next = c->w->flush_list;
    c->w->flush_list = c;
}

static void schedule_read(hr_conn *c)
{
    if (c->flags & (HR_CONN_IN_READY_LIST | HR_CONN_CLOSED)) return;
    c->flags |= HR_CONN_IN_READY_LIST;
    c->ready_next = c->w->ready_list;
    c->w->ready_list = c;
    c->w->loop.busy = true;
}

static hr_oentry *oq_at(const hr_outq *q, uint32_t i) { return &q->e[(q->head + i) & (q->cap - 1)]; }

/* The pool's size class of a ring of `cap` entries, or -1. */
static int ring_class(uint32_t cap)
{
    for (int k = 0; k < HR_RING_CLASSES; k++)
        if (cap == (uint32_t)OUTQ_MIN_CAP << k) return k;
    return -1;
}

static void ring_free(hr_worker *w, hr_oentry *e, uint32_t cap)
{
    int k = ring_class(cap);
    size_t bytes = (size_t)cap * sizeof(hr_oentry);
    if (k >= 0 && w->ring_pool_bytes + bytes <= (size_t)w->opts->output_ring_pool_bytes) {
        *(void **)e = w->ring_pool[k];
        w->ring_pool[k] = e;
        w->ring_pool_bytes += bytes;
    } else {
        hr_free(e);
    }
}

static hr_oentry *ring_alloc(hr_worker *w, uint32_t cap)
{
    int k = ring_class(cap);
    if (k >= 0 && w->ring_pool[k]) {
        hr_oentry *e = w->ring_pool[k];
        w->ring_pool[k] = *(void **)e;
        w->ring_pool_bytes -= (size_t)cap * sizeof(hr_oentry);
        return e;
    }
    return hr_malloc((size_t)cap * sizeof(hr_oentry));
}

void hr_conn_bad_token(hr_conn *c, int jwt_rc)
{
    if (c->flags & HR_CONN_REFUSED) return;
    hr_limits_bad_token(c->w->sh->limits, c->ip_key, hr_loop_now(&c->w->loop), jwt_rc);
}

void hr_conn_release_pool(hr_worker *w)
{
    for (int k = 0; k < HR_RING_CLASSES; k++) {
        while (w->ring_pool[k]) {
            void *next = *(void **)w->ring_pool[k];
            hr_free(w->ring_pool[k]);
            w->ring_pool[k] = next;
        }
    }
    w->ring_pool_bytes = 0;
}

/* A new entry at the tail (the caller fills it, then calls enqueued()). */
static hr_oentry *oq_push(hr_conn *c)
{
    hr_outq *q = &c->out;
    if (q->n == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : OUTQ_MIN_CAP;
        hr_oentry *e = ring_alloc(c->w, cap);
        for (uint32_t i = 0; i < q->n; i++) e[i] = *oq_at(q, i);
        if (q->e) ring_free(c->w, q->e, q->cap);
        q->e = e;
        q->head = 0;
        q->cap = cap;
    }
    return oq_at(q, q->n++);
}

/* A queued file also holds a descriptor: it costs a share of the budget
 * above which reading pauses, so http.max_queued_files files pause a
 * pipelining client whatever their size. */
static size_t entry_cost(const hr_conn *c, const hr_oentry *e)
{
    if (e->kind != OE_FILE) return (size_t)e->frames * HR_CONN_ENTRY_COST;
    const hr_transport_opts *opt = c->w->opts;
    return (size_t)(opt->ws_max_queued_bytes / 4 / opt->http_max_queued_files) + 1;
}

/* The queue's cost changes, and with it the worker's herald_queued_bytes. */
static void qbytes_add(hr_conn *c, size_t n)
{
    c->out.bytes += n;
    hr_stat_add(&c->w->stats.queued_bytes, n);
}

static void qbytes_sub(hr_conn *c, size_t n)
{
    c->out.bytes -= n;
    hr_stat_sub(&c->w->stats.queued_bytes, n);
}

static void enqueued(hr_conn *c, const hr_oentry *e)
{
    qbytes_add(c, e->len + entry_cost(c, e));
    schedule_flush(c);
    /* Backpressure: stop reading from a peer that does not read our replies. */
    size_t high = (size_t)c->w->opts->ws_max_queued_bytes / 4;
    if (c->out.bytes > high) hr_conn_pause_reading(c);
}

void hr_conn_send_owned(hr_conn *c, uint8_t *bytes, size_t len)
{
    if ((c->flags & (HR_CONN_CLOSED | HR_CONN_CLOSE_AFTER_FLUSH | HR_CONN_SHUT_WR_AFTER_FLUSH)) || !len) {
        hr_free(bytes);
        return;
    }
    hr_oentry *e = oq_push(c);
    e->kind = OE_BYTES;
    e->frames = 1;
    e->u.bytes = bytes;
    e->off = 0;
    e->len = len;
    enqueued(c, e);
}

void hr_conn_send2(hr_conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
    if (c->flags & (HR_CONN_CLOSED | HR_CONN_CLOSE_AFTER_FLUSH | HR_CONN_SHUT_WR_AFTER_FLUSH)) return;
    if (alen + blen == 0) return;
    uint8_t *bytes = hr_malloc(alen + blen);
    if (alen) memcpy(bytes, a, alen);
    if (blen) memcpy(bytes + alen, b, blen);
    hr_conn_send_owned(c, bytes, alen + blen);
}

void hr_conn_send(hr_conn *c, const void *data, size_t len) { hr_conn_send2(c, data, len, NULL, 0); }

void hr_conn_send_file(hr_conn *c, int fd, uint64_t off, uint64_t len)
{
    if ((c->flags & (HR_CONN_CLOSED | HR_CONN_CLOSE_AFTER_FLUSH)) || len == 0) {
        close(fd);
        return;
    }
    hr_oentry *e = oq_push(c);
    e->kind = OE_FILE;
    e->fd = fd;
    e->u.ref = NULL;
    e->off = off;
    e->len = len;
    enqueued(c, e);
}

static void free_entry(hr_oentry *e)
{
    if (e->kind == OE_BYTES) hr_free(e->u.bytes);
    else if (e->kind == OE_FILE) close(e->fd);
    else hr_sbuf_unref(e->u.ref);
}

static uint8_t *entry_bytes(hr_oentry *e) { return e->kind == OE_SHARED ? e->u.ref->data : e->u.bytes; }

static void push_shared(hr_conn *c, hr_sbuf *b, uint32_t frames)
{
    hr_oentry *e = oq_push(c);
    e->kind = OE_SHARED;
    e->frames = frames;
    e->u.ref = hr_sbuf_ref(b);
    e->off = 0;
    e->len = b->len;
    enqueued(c, e);
}

void hr_conn_send_shared(hr_conn *c, hr_sbuf *b)
{
    if (c->flags & (HR_CONN_CLOSED | HR_CONN_CLOSE_AFTER_FLUSH | HR_CONN_SHUT_WR_AFTER_FLUSH)) return;
    push_shared(c, b, 1);
}

bool hr_conn_send_run(hr_conn *c, hr_sbuf *b, uint32_t frames, size_t limit)
{
    if (c->flags & (HR_CONN_CLOSED | HR_CONN_CLOSE_AFTER_FLUSH | HR_CONN_SHUT_WR_AFTER_FLUSH)) return true;
    if (c->out.bytes + b->len + (size_t)frames * HR_CONN_ENTRY_COST > limit) return false;
    push_shared(c, b, frames);
    return true;
}

/* Release the ring once it is empty: idle connections hold no queue. */
static void oq_release_if_empty(hr_conn *c)
{
    hr_outq *q = &c->out;
    if (q->n || !q->e) return;
    ring_free(c->w, q->e, q->cap);
    q->e = NULL;
    q->head = q->cap = 0;
}

/* Index of the first entry nothing of which has been handed to the kernel
 * (or to OpenSSL): the entries before it must finish as they are. */
static uint32_t first_untouched(const hr_conn *c)
{
    const hr_outq *q = &c->out;
    if (!q->n) return 0;
    const hr_oentry *first = oq_at(q, 0);
    uint32_t keep = first->kind == OE_FILE || first->off > 0; /* a started entry must finish */
    if (c->layer->ops->committed) {
        /* bytes the layer already took (encrypted) in a blocked write must be offered again */
        size_t committed = c->layer->ops->committed(c), seen = 0;
        for (uint32_t i = 0; i < q->n && seen < committed; i++) {
            const hr_oentry *e = oq_at(q, i);
            seen += (size_t)(e->len - (e->kind == OE_FILE ? 0 : e->off));
            if (i + 1 > keep) keep = i + 1;
        }
    }
    return keep;
}

bool hr_conn_replace_last(hr_conn *c, uint8_t first, const void *a, size_t alen, const void *b, size_t blen)
{
    hr_outq *q = &c->out;
    if (!q->n || (c->flags & HR_CONN_CLOSED)) return false;
    hr_oentry *e = oq_at(q, q->n - 1);
    if (e->kind != OE_BYTES || e->off || !e->len || e->u.bytes[0] != first || q->n - 1 < first_untouched(c))
        return false;
    uint8_t *bytes = hr_malloc(alen + blen);
    if (alen) memcpy(bytes, a, alen);
    if (blen) memcpy(bytes + alen, b, blen);
    hr_free(e->u.bytes);
    qbytes_sub(c, (size_t)e->len);
    qbytes_add(c, alen + blen);
    e->u.bytes = bytes;
    e->len = alen + blen;
    return true;
}

void hr_conn_drop_queued(hr_conn *c)
{
    hr_outq *q = &c->out;
    if (!q->n) return;
    uint32_t keep = first_untouched(c);
    for (uint32_t i = keep; i < q->n; i++) {
        hr_oentry *e = oq_at(q, i);
        qbytes_sub(c, (size_t)(e->len - (e->kind == OE_FILE ? 0 : e->off)) + entry_cost(c, e));
        free_entry(e);
    }
    q->n = keep;
    oq_release_if_empty(c);
}

static void outq_clear(hr_conn *c)
{
    hr_outq *q = &c->out;
    for (uint32_t i = 0; i < q->n; i++) free_entry(oq_at(q, i));
    q->n = 0;
    qbytes_sub(c, q->bytes);
    oq_release_if_empty(c);
}

/* Free the (finished) first entry. */
static void oq_pop(hr_conn *c)
{
    hr_outq *q = &c->out;
    hr_oentry *e = oq_at(q, 0);
    qbytes_sub(c, entry_cost(c, e));
    free_entry(e);
    q->head = (q->head + 1) & (q->cap - 1);
    q->n--;
    oq_release_if_empty(c);
}

/* A file entry sent `n` more bytes. */
static void file_advance(hr_conn *c, hr_oentry *e, size_t n)
{
    e->off += (uint64_t)n;
    e->len -= (uint64_t)n;
    qbytes_sub(c, n);
    if (e->len == 0) oq_pop(c);
}

/* Remove `n` written bytes from the front of the queue. */
static void outq_advance(hr_conn *c, size_t n)
{
    hr_outq *q = &c->out;
    qbytes_sub(c, n);
    while (n && q->n) {
        hr_oentry *e = oq_at(q, 0);
        uint64_t left = e->len - (e->kind != OE_FILE ? e->off : 0);
        if (n < left) {
            e->off += n;
            return;
        }
        n -= (size_t)left;
        oq_pop(c);
    }
}

static void after_flush(hr_conn *c)
{
    if (c->flags & HR_CONN_CLOSE_AFTER_FLUSH) {
        hr_conn_close(c);
        return;
    }
    if (c->flags & HR_CONN_SHUT_WR_AFTER_FLUSH) {
        c->layer->ops->shutdown(c);
        c->flags &= ~HR_CONN_SHUT_WR_AFTER_FLUSH;
    }
    if (c->flags & HR_CONN_READ_PAUSED) hr_conn_resume_reading(c);
    if (c->vt->on_drained) c->vt->on_drained(c);
}

/* The worker thread's chunk buffer for files through a layer without
 * sendfile (a static per thread: no allocation, nothing to free at exit). */
static _Thread_local uint8_t file_chunk[FILE_CHUNK];

/* Write the file entry at the front: sendfile when the layer has it, else a
 * chunk read into file_chunk and written with writev. 0: the file shrank or
 * could not be read (the connection cannot go on). */
static ssize_t write_file(hr_conn *c, const hr_oentry *e)
{
    const hr_conn_layer_ops *ops = c->layer->ops;
    if (ops->sendfile) return ops->sendfile(c, e->fd, e->off, (size_t)HR_MIN(e->len, (uint64_t)1 << 30));
    ssize_t r;
    do r = pread(e->fd, file_chunk, (size_t)HR_MIN(e->len, (uint64_t)FILE_CHUNK), (off_t)e->off);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return 0; /* file shrank under us, or a read error */
    struct iovec iov = {.iov_base = file_chunk, .iov_len = (size_t)r};
    return ops->writev(c, &iov, 1);
}

/* Write the byte entries at the front (up to the next file) in one call. */
static ssize_t write_bytes(hr_conn *c)
{
    hr_outq *q = &c->out;
    struct iovec iov[IOV_MAX_BATCH];
    int cnt = 0;
    for (uint32_t i = 0; i < q->n && cnt < IOV_MAX_BATCH; i++) {
        hr_oentry *x = oq_at(q, i);
        if (x->kind == OE_FILE) break;
        iov[cnt].iov_base = entry_bytes(x) + x->off;
        iov[cnt].iov_len = (size_t)(x->len - x->off);
        cnt++;
    }
    return c->layer->ops->writev(c, iov, cnt);
}

/* Write queued output until it is all written (0), the layer refuses more
 * (1, HR_CONN_WRITE_BLOCKED set) or writing failed (HR_ERR_CLOSED; the
 * caller decides when to close). */
static int write_queue(hr_conn *c)
{
    hr_outq *q = &c->out;
    while (q->n) {
        hr_oentry *e = oq_at(q, 0);
        bool file = e->kind == OE_FILE;
        ssize_t n = file ? write_file(c, e) : write_bytes(c);
        if (n > 0) {
            hr_stat_add(&c->w->stats.bytes_out, (uint64_t)n);
            if (file) file_advance(c, e, (size_t)n); /* files advance by offset and length */
            else outq_advance(c, (size_t)n);
            continue;
        }
        if (n == HR_ERR_AGAIN) {
            c->flags |= HR_CONN_WRITE_BLOCKED;
            return 1;
        }
        return HR_ERR_CLOSED; /* failed (the layer logged why), or a file shrank */
    }
    c->flags &= ~HR_CONN_WRITE_BLOCKED;
    return 0;
}

int hr_conn_flush(hr_conn *c)
{
    if (c->flags & HR_CONN_CLOSED) return HR_ERR_CLOSED;
    int rc = write_queue(c);
    if (rc == 1) return 0;
    if (rc < 0) {
        hr_conn_close(c);
        return HR_ERR_CLOSED;
    }
    after_flush(c);
    return (c->flags & HR_CONN_CLOSED) ? HR_ERR_CLOSED : 0;
}

size_t hr_conn_write_now(hr_conn *c)
{
    if (!(c->flags & (HR_CONN_CLOSED | HR_CONN_WRITE_BLOCKED)) && c->out.n) (void)write_queue(c);
    return c->out.bytes;
}

void hr_conn_close_after_flush(hr_conn *c)
{
    c->flags |= HR_CONN_CLOSE_AFTER_FLUSH;
    schedule_flush(c);
}

void hr_conn_shutdown_after_flush(hr_conn *c)
{
    c->flags |= HR_CONN_SHUT_WR_AFTER_FLUSH;
    schedule_flush(c);
}

void hr_conn_yield(hr_conn *c) { schedule_read(c); }

void hr_conn_pause_reading(hr_conn *c) { c->flags |= HR_CONN_READ_PAUSED; }

void hr_conn_resume_reading(hr_conn *c)
{
    if (!(c->flags & HR_CONN_READ_PAUSED)) return;
    c->flags &= ~HR_CONN_READ_PAUSED;
    /* Edge-triggered: input that arrived while paused raises no new event. */
    schedule_read(c);
}

const char *const hr_conn_kind_names[HR_CK__N] = {"none", "http", "websocket", "raw", "sse", "http_stream",
                                                   "long_poll", "http2"};

void hr_conn_set_kind(hr_conn *c, hr_conn_kind kind)
{
    unsigned old = (c->flags & HR_CONN_KIND_MASK) >> HR_CONN_KIND_SHIFT;
    if (old == (unsigned)kind || (kind && (c->flags & HR_CONN_CLOSED))) return; /* a closed one counts nowhere */
    int tls = (c->flags & HR_CONN_TLS) != 0;
    hr_worker_stats *st = &c->w->stats;
    if (old) hr_stat_sub(&st->open_by_kind[old][tls], 1);
    if (kind) {
        hr_stat_add(&st->open_by_kind[kind][tls], 1);
        hr_stat_add(&st->accepted_by_kind[kind][tls], 1);
    }
    c->flags = (c->flags & ~HR_CONN_KIND_MASK) | ((unsigned)kind << HR_CONN_KIND_SHIFT);
}

void hr_conn_set_transport(hr_conn *c, const hr_conn_vt *vt, void *proto)
{
    hr_conn_set_kind(c, vt->kind);
    c->vt = vt;
    c->proto = proto;
}

void hr_conn_set_timer(hr_conn *c, uint64_t delay_ms) { hr_timer_start(&c->w->loop.wheel, &c->timer, delay_ms); }

void hr_conn_stop_timer(hr_conn *c) { hr_timer_stop(&c->w->loop.wheel, &c->timer); }

void hr_conn_close_discarding_input(hr_conn *c)
{
    /* close() with unread bytes in the receive buffer sends RST, which can
     * destroy our last frames (a close frame) before the peer reads them:
     * read what has arrived first (bounded), then close. */
    if (!(c->flags & HR_CONN_CLOSED)) {
        for (int i = 0; i < 16; i++) {
            ssize_t n = read(c->io.fd, c->w->rbuf, HR_READ_BUF_SIZE);
            if (n <= 0) break;
        }
    }
    hr_conn_close(c);
}

/* A connection closed while on the worker's ready list leaves it: it is
 * freed at the end of the turn, and the list is walked in the next one. (One
 * on the list run_ready is walking keeps its place until then: CLOSED tells.) */
static void ready_unlink(hr_conn *c)
{
    for (hr_conn **p = &c->w->ready_list; *p; p = &(*p)->ready_next) {
        if (*p == c) {
            *p = c->ready_next;
            c->flags &= ~HR_CONN_IN_READY_LIST;
            return;
        }
    }
}

void hr_conn_close(hr_conn *c)
{
    if (c->flags & HR_CONN_CLOSED) return;
    hr_worker *w = c->w;
    if (c->flags & HR_CONN_IN_READY_LIST) ready_unlink(c);
    hr_conn_set_kind(c, HR_CK_NONE);
    c->flags |= HR_CONN_CLOSED;
    hr_timer_stop(&w->loop.wheel, &c->timer);
    if (c->layer->ops->close) c->layer->ops->close(c); /* e.g. TLS close_notify, while the socket is open */
    bool sock = c->io.fd >= 0; /* not a socketless one (hr_conn_open_virtual) */
    if (sock) close(c->io.fd); /* also removes it from epoll */
    c->io.fd = -1;
    outq_clear(c);
    in_free(c);
    if (c->vt->on_free) c->vt->on_free(c);
    c->proto = NULL;
    /* unlink from the worker's list */
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->nconns--;
    hr_stat_sub(&w->stats.connections, 1);
    if (sock) atomic_fetch_sub_explicit(&w->sh->total_connections, 1, memory_order_relaxed);
    if (c->ip_key && !(c->flags & HR_CONN_REFUSED)) hr_limits_release(w->sh->limits, c->ip_key, hr_loop_now(&w->loop));
    c->next = w->free_list;
    w->free_list = c;
}

/* ---- leftover input (hr_conn_in) ---------------------------------------------- */

static void in_free(hr_conn *c)
{
    hr_free(c->in.data);
    c->in = (hr_conn_in){0};
}

/* Room for `extra` more bytes behind the unconsumed ones: they move to the
 * front first (once per read, not once per consumed request). */
static uint8_t *in_reserve(hr_conn *c, size_t extra)
{
    hr_conn_in *in = &c->in;
    if (in->off) {
        memmove(in->data, in->data + in->off, in->len);
        in->off = 0;
    }
    if (in->cap - in->len < extra) {
        size_t cap = in->cap ? in->cap : 256;
        while (cap < (size_t)in->len + extra) cap *= 2;
        in->data = hr_realloc(in->data, cap);
        in->cap = (uint32_t)cap;
    }
    return in->data + in->len;
}

static void in_consume(hr_conn *c, size_t n)
{
    hr_conn_in *in = &c->in;
    in->off += (uint32_t)n;
    in->len -= (uint32_t)n;
    if (in->len == 0) {
        in_free(c);
    } else if (in->cap > 64 * 1024 && in->len < in->cap / 4) {
        /* shrink a buffer that once held something large */
        memmove(in->data, in->data + in->off, in->len);
        in->off = 0;
        in->data = hr_realloc(in->data, in->len);
        in->cap = in->len;
    }
}

/* Feed bytes to the transport; keep what it did not consume. */
static int deliver(hr_conn *c, uint8_t *data, size_t len, bool from_leftover)
{
    ssize_t used = c->vt->on_data(c, data, len);
    if (used < 0 || (c->flags & HR_CONN_CLOSED)) return HR_ERR_CLOSED;
    size_t u = (size_t)used;
    if (from_leftover) {
        in_consume(c, u);
    } else if (u < len) {
        memcpy(in_reserve(c, len - u), data + u, len - u);
        c->in.len += (uint32_t)(len - u);
    }
    return 0;
}

int hr_conn_deliver_leftover(hr_conn *c)
{
    if (!c->in.len || (c->flags & HR_CONN_CLOSED)) return 0;
    /* the transport sees these bytes alone: input it leaves goes back in front */
    hr_conn_in in = c->in;
    c->in = (hr_conn_in){0};
    ssize_t used = c->vt->on_data(c, in.data + in.off, in.len);
    if (used < 0 || (c->flags & HR_CONN_CLOSED)) {
        hr_free(in.data);
        return HR_ERR_CLOSED;
    }
    in.off += (uint32_t)used;
    in.len -= (uint32_t)used;
    if (c->in.len) { /* arrived meanwhile: after the older bytes */
        hr_conn_in later = c->in;
        c->in = in;
        memcpy(in_reserve(c, later.len), later.data + later.off, later.len);
        c->in.len += later.len;
        hr_free(later.data);
    } else if (in.len) {
        c->in = in;
    } else {
        hr_free(in.data);
    }
    return 0;
}

/* Input the transport could consume but has not yet (it yielded after
 * http.max_pipelined requests) stops reading above http.max_pipelined_bytes:
 * the ready list brings the connection back to it, and reading goes on
 * once it is consumed. */
static bool input_backlog(const hr_conn *c)
{
    return (c->flags & HR_CONN_IN_READY_LIST) && c->in.len >= (uint64_t)c->w->opts->http_max_pipelined_bytes;
}

static void do_read(hr_conn *c, bool rdhup)
{
    hr_worker *w = c->w;
    for (int i = 0; i < READS_PER_TURN; i++) {
        if (c->flags & (HR_CONN_CLOSED | HR_CONN_READ_PAUSED | HR_CONN_EOF)) return;
        if (input_backlog(c)) return;
        uint8_t *dst;
        size_t cap;
        bool leftover = c->in.len > 0;
        if (leftover) {
            dst = in_reserve(c, 16 * 1024);
            cap = c->in.cap - c->in.len;
        } else {
            dst = w->rbuf;
            cap = HR_READ_BUF_SIZE;
        }
        bool drained = false;
        ssize_t n = c->layer->ops->read(c, dst, cap, &drained);
        if (n > 0) {
            c->last_rx = hr_loop_now(&w->loop);
            hr_stat_add(&w->stats.bytes_in, (uint64_t)n);
            int rc;
            if (leftover) {
                c->in.len += (uint32_t)n;
                rc = deliver(c, c->in.data, c->in.len, true);
            } else {
                rc = deliver(c, dst, (size_t)n, false);
            }
            if (rc) return;
            /* The socket's next edge will come; a transport that must see
             * the peer's FIN of this edge (rdhup) at once reads on to it
             * (conn.h: hr_conn_vt.read_to_eof). */
            if (drained && !(rdhup && c->vt->read_to_eof)) return;
            continue;
        }
        if (n == 0) {
            c->flags |= HR_CONN_EOF;
            if (c->vt->on_eof) c->vt->on_eof(c);
            else hr_conn_close(c);
            return;
        }
        if (n != HR_ERR_AGAIN) hr_conn_close(c); /* failed (the layer logged why) */
        return;
    }
    /* Budget used up: come back after the others had their turn. */
    schedule_read(c);
}

void hr_conn_on_io(hr_loop *loop, hr_io *io, uint32_t events)
{
    HR_UNUSED(loop);
    hr_conn *c = HR_CONTAINER_OF(io, hr_conn, io);
    if (c->flags & HR_CONN_CLOSED) return;
    /* Stages before the stream (PROXY header, then TLS handshake): each
     * finished one replaces itself, and what followed it may already be
     * waiting (edge-triggered: no new event), so read on. */
    while (c->layer->ops->start) {
        if (c->layer->ops->start(c)) return; /* waiting, or failed and closed */
        events |= EPOLLIN;
    }
    if (c->layer->ops->events) events = c->layer->ops->events(c, events);
    if (events & EPOLLOUT) {
        c->flags &= ~HR_CONN_WRITE_BLOCKED;
        if (c->out.n && hr_conn_flush(c)) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (c->flags & HR_CONN_READ_PAUSED) {
            c->flags |= HR_CONN_READ_PENDING;
        } else {
            do_read(c, (events & EPOLLRDHUP) != 0);
        }
    }
}

void hr_conn_on_timer(hr_timer *t, void *data)
{
    HR_UNUSED(data);
    hr_conn *c = HR_CONTAINER_OF(t, hr_conn, timer);
    if (c->flags & HR_CONN_CLOSED) return;
    c->vt->on_timer(c);
}

void hr_conn_run_ready(hr_worker *w)
{
    hr_conn *list = w->ready_list;
    w->ready_list = NULL;
    while (list) {
        hr_conn *c = list;
        list = c->ready_next;
        c->flags &= ~(HR_CONN_IN_READY_LIST | HR_CONN_READ_PENDING);
        if (c->flags & HR_CONN_CLOSED) continue;
        /* leftover bytes may already hold complete units (e.g. after a pause) */
        if (c->in.len && deliver(c, c->in.data + c->in.off, c->in.len, true)) continue;
        do_read(c, false);
    }
}

void hr_conn_end_turn(hr_worker *w)
{
    /* Handlers may queue more while we flush (e.g. close after a write), so
     * loop. Connections with an on_flush hook (HTTP/2) go last, once the
     * others (their streams) have written into them: all of a turn's frames
     * leave in one write. They stay marked as listed meanwhile. */
    for (;;) {
        hr_conn *late = NULL;
        while (w->flush_list) {
            hr_conn *c = w->flush_list;
            w->flush_list = c->flush_next;
            if (c->vt->on_flush && !(c->flags & HR_CONN_CLOSED)) {
                c->flush_next = late;
                late = c;
                continue;
            }
            c->flags &= ~HR_CONN_IN_FLUSH_LIST;
            if (c->flags & HR_CONN_CLOSED) continue;
            if (c->flags & HR_CONN_WRITE_BLOCKED) continue; /* EPOLLOUT will come */
            hr_conn_flush(c);
        }
        if (!late) break;
        while (late) {
            hr_conn *c = late;
            late = c->flush_next;
            c->flags &= ~HR_CONN_IN_FLUSH_LIST;
            if (c->flags & HR_CONN_CLOSED) continue;
            c->vt->on_flush(c);
            if (c->flags & (HR_CONN_CLOSED | HR_CONN_WRITE_BLOCKED)) continue;
            hr_conn_flush(c);
        }
    }
    while (w->free_list) {
        hr_conn *c = w->free_list;
        w->free_list = c->next;
        hr_worker_obj_free(w, c);
    }
}

/* ---- socketless connections (HTTP/2 streams) ------------------------------------- */

hr_conn *hr_conn_open_virtual(hr_worker *w, hr_conn_layer *layer, uint32_t flags)
{
    hr_conn *c = hr_worker_obj_alloc(w, sizeof(*c));
    c->io.fd = -1;
    c->layer = layer;
    c->w = w;
    hr_timer_init(&c->timer, hr_conn_on_timer);
    c->last_rx = hr_loop_now(&w->loop);
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    hr_stat_add(&w->stats.connections, 1);
    c->flags = flags;
    return c;
}

int hr_conn_feed(hr_conn *c, uint8_t *data, size_t len)
{
    if (c->flags & HR_CONN_CLOSED) return HR_ERR_CLOSED;
    c->last_rx = hr_loop_now(&c->w->loop);
    if (!c->in.len && !(c->flags & (HR_CONN_READ_PAUSED | HR_CONN_IN_READY_LIST)))
        return deliver(c, data, len, false);
    memcpy(in_reserve(c, len), data, len);
    c->in.len += (uint32_t)len;
    if (c->flags & (HR_CONN_READ_PAUSED | HR_CONN_IN_READY_LIST)) return 0; /* resume / the ready list presents it */
    return deliver(c, c->in.data + c->in.off, c->in.len, true);
}

void hr_conn_feed_eof(hr_conn *c)
{
    if (c->flags & (HR_CONN_CLOSED | HR_CONN_EOF)) return;
    c->flags |= HR_CONN_EOF;
    if (c->vt->on_eof) c->vt->on_eof(c);
    else hr_conn_close(c);
}

void hr_conn_want_flush(hr_conn *c) { schedule_flush(c); }

void hr_conn_layer_hold(hr_conn *c, ptrdiff_t delta)
{
    if (delta >= 0) qbytes_add(c, (size_t)delta);
    else qbytes_sub(c, (size_t)-delta);
}

int hr_conn_socket(const hr_conn *c)
{
    while (c && c->io.fd < 0 && c->layer->ops->parent) c = c->layer->ops->parent(c);
    return c ? c->io.fd : -1;
}

/* ---- the plain socket layer ------------------------------------------------------ */

static ssize_t plain_result(hr_conn *c, ssize_t n, const char *what)
{
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return HR_ERR_AGAIN;
    hr_logf(HR_LOG_DEBUG, "conn_io_failed", "conn fd=%d: %s failed: %s", c->io.fd, what, strerror(errno));
    return HR_ERR_IO;
}

static ssize_t plain_read(hr_conn *c, uint8_t *dst, size_t cap, bool *drained)
{
    ssize_t n;
    do n = read(c->io.fd, dst, cap);
    while (n < 0 && errno == EINTR);
    *drained = n >= 0 && (size_t)n < cap; /* a short read emptied the socket */
    return plain_result(c, n, "read");
}

static ssize_t plain_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    ssize_t n;
    do n = writev(c->io.fd, iov, cnt);
    while (n < 0 && errno == EINTR);
    return plain_result(c, n, "write");
}

static ssize_t plain_sendfile(hr_conn *c, int fd, uint64_t off, size_t len)
{
    off_t o = (off_t)off;
    ssize_t n;
    do n = sendfile(c->io.fd, fd, &o, len);
    while (n < 0 && errno == EINTR);
    return plain_result(c, n, "sendfile");
}

static void plain_shutdown(hr_conn *c) { shutdown(c->io.fd, SHUT_WR); }

static const hr_conn_layer_ops plain_ops = {
    .read = plain_read,
    .writev = plain_writev,
    .sendfile = plain_sendfile,
    .shutdown = plain_shutdown,
    .name = "tcp",
};

hr_conn_layer hr_conn_plain = {.ops = &plain_ops};
