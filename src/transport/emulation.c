/* emulation.c - long polling and HTTP streaming sessions (see emulation.h
 * and docs/transports.md).
 *
 * Threads. A session (esess) is created by the worker that received the
 * opening request; that worker (its owner) alone runs its hr_session:
 * commands, pushes from the hub, expiry. Its output is a buffer of numbered
 * JSON lines guarded by the session's mutex, which any worker may read.
 * Requests can land on any worker (SO_REUSEPORT):
 *   - POST .../send: the receiving worker checks the frame (the pure codec),
 *     copies it into a task and posts it to the owner (hr_hub_post, the
 *     inbox's queue and eventfd); the owner executes it; replies become
 *     lines. The HTTP answer (202) is given at once by the receiving worker.
 *   - GET /poll and GET /stream: the receiving worker reads the lines after
 *     the cursor under the mutex. A poll with nothing to return (and every
 *     stream) becomes a *reader* parked on the receiving worker: it sets
 *     its worker's bit in the session's wait_mask, under the same lock as
 *     the check, so no line can slip in between. The owner, after
 *     appending lines, takes the mask and posts a "ready" task to each
 *     worker in it; that worker serves its readers of the session (answers
 *     the poll, writes the stream's chunk) on its own thread.
 * So a connection is only ever touched by the worker that accepted it.
 *
 * Lifetime: the registry, every task and every reader hold a reference to
 * the session. The owner's sweep timer (1 s) ends sessions that have no
 * reader and no request for poll.session_ttl: out of the registry (404),
 * hr_session freed (channels left, presence dropped).
 *
 * Retention: a line is dropped once a request's cursor covers it (the
 * client has it). Lines handed to a reader but not yet covered ("sent") are
 * kept while the buffer is under poll.max_queued_bytes, so a poll that lost
 * its answer can ask again with the same cursor, and a broken stream can
 * resume from the count of lines it received; lines never sent that exceed it end the
 * session as a slow consumer (they are dropped, a disconnect line with code
 * 3008 takes their place: reconnect and recover). The lines of all the
 * sessions a worker owns are also counted together (an atomic per worker:
 * acks run on any worker) against poll.max_queued_bytes_per_worker; past
 * it a session that receives output drops its sent lines first, and is
 * ended as a slow consumer when it holds more undelivered bytes than its
 * share of that budget.
 *
 * Addresses: a session counts for the client address of the request that
 * opened it (ops/limits.c, poll.max_sessions_per_ip) from its opening
 * until it leaves the registry. */
#include "transport/emulation.h"
#include "codec/urlquery.h"
#include "core/random.h"
#include "core/hash.h"
#include "transport/sse.h"
#include "core/json.h"
#include "core/log.h"
#include "protocol/native.h"
#include "protocol/session.h"
#include "protocol/urlsubs.h"
#include "auth/auth.h"
#include "ops/limits.h"
#include "transport/worker.h"
#include "transport/http.h"
#include "transport/proxy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SWEEP_MS 1000
/* a stream's connection queue above which no more lines are taken from the
 * session (they wait there, counted against poll.max_queued_bytes) */
#define STREAM_HIGH_WATER (256 * 1024)

typedef struct eline {
    uint64_t seq;
    size_t len;
    char data[];
} eline;

typedef struct esess esess;
struct esess {
    atomic_uint refs;
    pthread_mutex_t mu;
    char id[33];
    int owner;
    uint32_t ip_key;               /* the address it counts for in lim (ops/limits.c; 0 = none) */
    hr_emu_registry *reg;
    hr_hub *hub;
    hr_limits *lim;
    esess *rnext;                  /* registry chain (registry lock) */
    /* guarded by mu */
    eline **ring;
    size_t head, n, cap;
    uint64_t last_seq;             /* newest line */
    uint64_t sent;                 /* newest line handed to a reader */
    size_t bytes;                  /* retained */
    size_t unsent;                 /* bytes of lines after `sent` */
    uint64_t wait_mask;            /* workers with a reader waiting */
    int readers;                   /* parked polls and open streams */
    uint64_t last_active;          /* monotonic ms of the last request or reader end */
    bool ended;                    /* no more output will come */
    /* owner thread only */
    hr_session *sess;
    const hr_transport_opts *opt;
    esess *onext, *oprev;          /* owner's list */
};

typedef struct reader reader;
struct reader {
    hr_conn *c;
    esess *s;
    int worker;
    uint64_t cursor;
    bool stream;
    bool close;
    bool finished;                 /* stream: terminating chunk queued */
    char cors[512];
    reader *next, *prev;
};

typedef struct eworker {
    atomic_size_t queued;          /* bytes of the lines of the sessions it owns (any thread) */
    size_t nowned;                 /* sessions it owns (its thread) */
    esess *owned;
    reader *readers;
    hr_timer sweep;
    bool sweeping;
    hr_whub *wh;
    hr_worker *worker;             /* the worker itself (set with wh) */
} eworker;

/* The sessions of a server: the id table any worker looks sessions up in,
 * and what each worker owns and serves. */
struct hr_emu_registry {
    hr_hub *hub;
    pthread_mutex_t mu;            /* the id table */
    esess **b;
    size_t nb, n;
    int nworkers;
    eworker *w;                    /* [nworkers] */
};

/* The part of the registry of the worker that owns s. */
static eworker *owner_of(const esess *s) { return &s->reg->w[s->owner]; }

/* ---- time, ids ----------------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void random_id(char out[33]) { hr_random_hex(out, 16); /* aborts without entropy: never guessable */ }

/* ---- sessions: references and the line buffer ------------------------------------------- */

static esess *sref(esess *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

static void sunref(esess *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    atomic_fetch_sub_explicit(&owner_of(s)->queued, s->bytes, memory_order_relaxed);
    for (size_t i = 0; i < s->n; i++) hr_free(s->ring[(s->head + i) % s->cap]);
    hr_free(s->ring);
    pthread_mutex_destroy(&s->mu);
    hr_free(s);
}

static eline *ring_at(const esess *s, size_t i) { return s->ring[(s->head + i) % s->cap]; }

/* Free the oldest (front) or the newest line, uncounted from the session and its owner. Under s->mu. */
static void drop_line(esess *s, bool front)
{
    eline *l = ring_at(s, front ? 0 : s->n - 1);
    if (front) s->head = (s->head + 1) % s->cap;
    s->n--;
    s->bytes -= l->len;
    atomic_fetch_sub_explicit(&owner_of(s)->queued, l->len, memory_order_relaxed);
    hr_free(l);
}

static void ring_push(esess *s, eline *l)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        eline **r = hr_malloc(nc * sizeof(*r));
        for (size_t i = 0; i < s->n; i++) r[i] = ring_at(s, i);
        hr_free(s->ring);
        s->ring = r;
        s->cap = nc;
        s->head = 0;
    }
    s->ring[(s->head + s->n++) % s->cap] = l;
}

/* Index of the first retained line with seq > cursor (s->n if none). */
static size_t first_after(const esess *s, uint64_t cursor)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(s, mid)->seq <= cursor) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Is the cursor usable: 0 ok, 1 ahead of the session, 2 its next lines were dropped. */
static int cursor_state(const esess *s, uint64_t cursor)
{
    if (cursor > s->last_seq) return 1;
    if (cursor == s->last_seq) return 0;
    if (!s->n || ring_at(s, 0)->seq > cursor + 1) return 2;
    return 0;
}

/* Lines after *cursor, appended to out (JSON array members when comma, else
 * one per line); *cursor moves to the last. Under s->mu. */
static size_t collect(esess *s, uint64_t *cursor, hr_buf *out, bool comma)
{
    size_t count = 0;
    for (size_t i = first_after(s, *cursor); i < s->n; i++) {
        eline *l = ring_at(s, i);
        if (comma && count) hr_buf_append(out, ",", 1);
        hr_buf_append(out, l->data, l->len);
        if (!comma) hr_buf_append(out, "\n", 1);
        if (l->seq > s->sent) {
            s->unsent -= l->len;
            s->sent = l->seq;
        }
        *cursor = l->seq;
        count++;
    }
    return count;
}

/* The client has every line up to cursor (it asked for what follows): those
 * lines are not needed any more. Under s->mu. */
static void ack(esess *s, uint64_t cursor)
{
    while (s->n && ring_at(s, 0)->seq <= cursor && ring_at(s, 0)->seq <= s->sent) drop_line(s, true);
}

static void task_ready(hr_whub *wh, void *arg);

/* Post "ready" to every worker with a waiting reader (the mask taken under the lock). */
static void wake(esess *s, uint64_t mask)
{
    for (int i = 0; mask && i < HR_MAX_WORKERS; i++)
        if (mask & (1ull << i)) {
            mask &= ~(1ull << i);
            hr_hub_post(s->hub, i, task_ready, sref(s));
        }
}

static void task_end(hr_whub *wh, void *arg);

/* Append one line (owner thread, mu held). */
static void push_line(esess *s, const void *d, size_t len)
{
    eline *l = hr_malloc(sizeof(*l) + len);
    l->seq = ++s->last_seq;
    l->len = len;
    memcpy(l->data, d, len);
    ring_push(s, l);
    s->bytes += len;
    s->unsent += len;
    atomic_fetch_add_explicit(&owner_of(s)->queued, len, memory_order_relaxed);
}

/* The sessions of s's owner hold more than poll.max_queued_bytes_per_worker. */
static bool worker_over(const esess *s)
{
    return atomic_load_explicit(&owner_of(s)->queued, memory_order_relaxed) >
           (size_t)s->opt->poll_max_queued_bytes_per_worker;
}

/* Should s end as a slow consumer (owner thread, mu held): 0 no, else the bound it passed. */
static const char *slow_bound(const esess *s)
{
    if (s->unsent > (size_t)s->opt->poll_max_queued_bytes) return "poll.max_queued_bytes";
    size_t n = owner_of(s)->nowned;
    size_t share = (size_t)s->opt->poll_max_queued_bytes_per_worker / (n ? n : 1);
    if (s->unsent > share && worker_over(s)) return "poll.max_queued_bytes_per_worker";
    return NULL;
}

/* The session's output: one payload of newline-separated JSON lines. */
static void append_payload(esess *s, const uint8_t *d, size_t len)
{
    size_t max = (size_t)s->opt->poll_max_queued_bytes;
    pthread_mutex_lock(&s->mu);
    if (s->ended) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && d[j] != '\n') j++;
        if (j > i) push_line(s, d + i, j - i);
        i = j + 1;
    }
    /* drop the oldest lines already handed out while over a bound */
    while ((s->bytes > max || worker_over(s)) && s->n && ring_at(s, 0)->seq <= s->sent) drop_line(s, true);
    const char *bound = slow_bound(s);
    bool slow = bound != NULL;
    if (slow) { /* never handed out: nobody has seen these numbers */
        while (s->n && ring_at(s, s->n - 1)->seq > s->sent) drop_line(s, false);
        s->unsent = 0;
        s->last_seq = s->sent;
        hr_buf b = HR_BUF_INIT;
        hr_native_disconnect(&b, HR_DISC_SLOW, "slow consumer: reconnect and recover", true);
        push_line(s, b.data, b.len);
        hr_buf_free(&b);
        s->ended = true;
    }
    uint64_t mask = s->wait_mask;
    s->wait_mask = 0;
    pthread_mutex_unlock(&s->mu);
    if (slow) {
        hr_logf(HR_LOG_INFO, "client_slow", "session %.8s...: slow consumer (%s), ending it (code %d)", s->id, bound, HR_DISC_SLOW);
        hr_hub_post(s->hub, s->owner, task_end, sref(s));
    }
    wake(s, mask);
}

/* ---- the sink (owner thread) ---------------------------------------------------------- */

static void sink_send(void *t, const uint8_t *data, size_t len, bool binary)
{
    HR_UNUSED(binary);
    append_payload(t, data, len);
}

static void sink_send_shared(void *t, struct hr_sbuf *payload, hr_enc_cache *cache, int slot, bool binary)
{
    HR_UNUSED(cache);
    HR_UNUSED(slot);
    HR_UNUSED(binary);
    append_payload(t, payload->data, payload->len);
}

/* Output not yet handed to a reader: what the session's reply budget
 * counts (the bound itself is applied by append_payload). */
static size_t sink_queued(void *t)
{
    esess *s = t;
    pthread_mutex_lock(&s->mu);
    size_t n = s->unsent;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void sink_disconnect(void *t, int code, const char *reason, bool drop)
{
    HR_UNUSED(drop);
    esess *s = t;
    /* the server API's disconnect already came as a line; the session's
     * own refusals (malformed frame, encoding) did not */
    if (code == HR_DISC_BAD_REQUEST || code == HR_DISC_ENCODING || code == HR_DISC_FORBIDDEN) {
        hr_buf b = HR_BUF_INIT;
        hr_native_disconnect(&b, code, reason, code < 3500);
        append_payload(s, b.data, b.len);
        hr_buf_free(&b);
    }
    pthread_mutex_lock(&s->mu);
    s->ended = true;
    uint64_t mask = s->wait_mask;
    s->wait_mask = 0;
    pthread_mutex_unlock(&s->mu);
    /* the session is in one of its own callbacks: free it later */
    hr_hub_post(s->hub, s->owner, task_end, sref(s));
    wake(s, mask);
}

/* A connect refused in a session: logged by its owner (the session has no
 * connection of its own, so no remote address). */
static void sink_refused(void *t, bool overload, int code, const char *detail)
{
    esess *s = t;
    hr_worker *w = owner_of(s)->worker;
    if (w) hr_worker_refused(w, overload ? HR_REFUSE_OVERLOAD : HR_REFUSE_TOKEN, NULL, NULL, "http_session", code, detail);
}

static const hr_sink_vt emu_sink = {.send = sink_send, .send_shared = sink_send_shared, .queued = sink_queued,
                                    .disconnect = sink_disconnect, .transport = "http", .refused = sink_refused};

/* ---- the registry ----------------------------------------------------------------------- */

static size_t reg_slot(const char *id, size_t nb)
{
    return (size_t)(hr_fnv1a(id, strlen(id)) % nb);
}

/* Returns false when poll.max_sessions is reached. */
static bool reg_add(hr_emu_registry *reg, esess *s, size_t max)
{
    pthread_mutex_lock(&reg->mu);
    if (reg->n >= max) {
        pthread_mutex_unlock(&reg->mu);
        return false;
    }
    if (reg->n + 1 > reg->nb * 2) {
        size_t nb = reg->nb ? reg->nb * 4 : 256;
        esess **b = hr_calloc(nb, sizeof(*b));
        for (size_t i = 0; i < reg->nb; i++)
            for (esess *e = reg->b[i], *nx; e; e = nx) {
                nx = e->rnext;
                size_t k = reg_slot(e->id, nb);
                e->rnext = b[k];
                b[k] = e;
            }
        hr_free(reg->b);
        reg->b = b;
        reg->nb = nb;
    }
    size_t k = reg_slot(s->id, reg->nb);
    s->rnext = reg->b[k];
    reg->b[k] = sref(s);
    reg->n++;
    pthread_mutex_unlock(&reg->mu);
    return true;
}

/* A reference to the session with this id, or NULL. */
static esess *reg_find(hr_emu_registry *reg, const char *id)
{
    esess *found = NULL;
    pthread_mutex_lock(&reg->mu);
    if (reg->nb)
        for (esess *e = reg->b[reg_slot(id, reg->nb)]; e; e = e->rnext)
            if (strcmp(e->id, id) == 0) {
                found = sref(e);
                break;
            }
    pthread_mutex_unlock(&reg->mu);
    return found;
}

static void reg_remove(esess *s)
{
    hr_emu_registry *reg = s->reg;
    bool had = false;
    pthread_mutex_lock(&reg->mu);
    if (reg->nb)
        for (esess **pp = &reg->b[reg_slot(s->id, reg->nb)]; *pp; pp = &(*pp)->rnext)
            if (*pp == s) {
                *pp = s->rnext;
                reg->n--;
                had = true;
                break;
            }
    pthread_mutex_unlock(&reg->mu);
    if (had && s->hub->engine && s->hub->engine->cluster)
        s->hub->engine->cluster->session_register(s->hub->engine, s->id, false);
    if (had) hr_limits_session_end(s->lim, s->ip_key, mono_ms());
    if (had) sunref(s);
}

/* ---- owner side: creation, commands, expiry ------------------------------------------------ */

static void owner_unlink(esess *s)
{
    eworker *ew = owner_of(s);
    if (s->oprev) s->oprev->onext = s->onext;
    else if (ew->owned == s) ew->owned = s->onext;
    if (s->onext) s->onext->oprev = s->oprev;
    s->onext = s->oprev = NULL;
    ew->nowned--;
}

/* End a session for good (owner thread): out of the registry and the owner's list. */
static void session_drop(esess *s)
{
    reg_remove(s);
    owner_unlink(s);
    hr_session *sess = s->sess;
    s->sess = NULL;
    pthread_mutex_lock(&s->mu);
    s->ended = true;
    uint64_t mask = s->wait_mask;
    s->wait_mask = 0;
    pthread_mutex_unlock(&s->mu);
    hr_session_closed(sess, HR_DISC_CONN_CLOSED, "session expired (poll.session_ttl)");
    hr_session_free(sess);
    wake(s, mask);
    sunref(s); /* the owner's list reference */
}

static void on_sweep(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    eworker *ew = HR_CONTAINER_OF(t, eworker, sweep);
    uint64_t now = mono_ms();
    for (esess *s = ew->owned, *nx; s; s = nx) {
        nx = s->onext;
        pthread_mutex_lock(&s->mu);
        bool expired = s->readers == 0 && now - s->last_active >= (uint64_t)s->opt->poll_session_ttl_ms;
        pthread_mutex_unlock(&s->mu);
        if (expired) {
            hr_logf(HR_LOG_DEBUG, "session_expired", "session %.8s...: expired", s->id);
            session_drop(s);
        }
    }
    if (ew->owned) hr_timer_start(&ew->wh->loop->wheel, &ew->sweep, SWEEP_MS);
    else ew->sweeping = false;
}

static void task_end(hr_whub *wh, void *arg)
{
    esess *s = arg;
    if (wh && s->sess) {
        hr_session_free(s->sess);
        s->sess = NULL;
    }
    sunref(s);
}

typedef struct frame_task {
    esess *s;
    size_t len;
    uint8_t data[];
} frame_task;

static void task_frame(hr_whub *wh, void *arg)
{
    frame_task *f = arg;
    if (wh && f->s->sess) hr_session_on_frame(f->s->sess, f->data, f->len);
    sunref(f->s);
    hr_free(f);
}

/* A frame another node routed here (the Redis engine's thread): to the owner. */
static void remote_frame(void *ud, const char *sid, const uint8_t *frame, size_t len)
{
    esess *s = reg_find(ud, sid);
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    bool ended = s->ended;
    s->last_active = mono_ms();
    pthread_mutex_unlock(&s->mu);
    if (ended) {
        sunref(s);
        return;
    }
    frame_task *f = hr_malloc(sizeof(*f) + len);
    f->s = s; /* the lookup's reference */
    f->len = len;
    memcpy(f->data, frame, len);
    hr_hub_post(s->hub, s->owner, task_frame, f);
}

hr_emu_registry *hr_emu_registry_new(hr_hub *hub)
{
    hr_emu_registry *reg = hr_calloc(1, sizeof(*reg));
    reg->hub = hub;
    pthread_mutex_init(&reg->mu, NULL);
    reg->nworkers = hub->nworkers;
    reg->w = hr_calloc((size_t)hub->nworkers, sizeof(*reg->w));
    hr_engine *e = hub->engine;
    if (e->cluster) { /* other nodes route frames for this node's sessions here */
        e->on_session_frame = remote_frame;
        e->session_ud = reg;
    }
    return reg;
}

typedef enum { OPEN_OK, OPEN_FULL, OPEN_ADDRESS } open_result;

/* A new session owned by w, counted for ip_key; NULL with *why when refused. */
static esess *session_open(hr_worker *w, uint32_t ip_key, open_result *why)
{
    hr_limits *lim = w->sh->limits;
    if (!hr_limits_session_begin(lim, ip_key, mono_ms())) {
        *why = OPEN_ADDRESS;
        return NULL;
    }
    esess *s = hr_calloc(1, sizeof(*s));
    s->lim = lim;
    s->ip_key = ip_key;
    atomic_init(&s->refs, 1); /* the owner's list */
    pthread_mutex_init(&s->mu, NULL);
    random_id(s->id);
    s->owner = w->id;
    s->reg = w->sh->emu;
    s->hub = w->hub->hub;
    s->opt = w->opts;
    s->last_active = mono_ms();
    if (!reg_add(s->reg, s, (size_t)w->opts->poll_max_sessions)) {
        hr_limits_session_end(lim, ip_key, mono_ms());
        sunref(s);
        *why = OPEN_FULL;
        return NULL;
    }
    hr_engine *e = s->hub->engine;
    if (e->cluster) e->cluster->session_register(e, s->id, true); /* other nodes route its commands here */
    s->sess = hr_session_new(w->hub, w->proto, &emu_sink, s, HR_NATIVE_JSON);
    hr_session_set_reply_budget(s->sess, (size_t)w->opts->poll_max_queued_bytes);
    eworker *ew = &s->reg->w[w->id];
    ew->wh = w->hub;
    ew->worker = w;
    s->onext = ew->owned;
    if (ew->owned) ew->owned->oprev = s;
    ew->owned = s;
    ew->nowned++;
    if (!ew->sweeping) {
        ew->sweeping = true;
        hr_timer_init(&ew->sweep, on_sweep);
        hr_timer_start(&w->loop.wheel, &ew->sweep, SWEEP_MS);
    }
    return s;
}

void hr_emu_registry_stop(hr_emu_registry *reg)
{
    if (!reg) return;
    for (int i = 0; i < reg->nworkers; i++) {
        eworker *ew = &reg->w[i];
        while (ew->owned) {
            esess *s = ew->owned;
            reg_remove(s);
            owner_unlink(s);
            hr_session_loop_gone(s->sess);
            hr_session_closed(s->sess, HR_DISC_SHUTDOWN, "server shutting down, reconnect");
            hr_session_free(s->sess);
            s->sess = NULL;
            sunref(s);
        }
        ew->sweeping = false;
        ew->readers = NULL;
    }
    pthread_mutex_lock(&reg->mu);
    hr_free(reg->b);
    reg->b = NULL;
    reg->nb = reg->n = 0;
    pthread_mutex_unlock(&reg->mu);
}

void hr_emu_registry_free(hr_emu_registry *reg)
{
    if (!reg) return;
    hr_emu_registry_stop(reg); /* nothing left after a stop */
    pthread_mutex_destroy(&reg->mu);
    hr_free(reg->w);
    hr_free(reg);
}

/* ---- HTTP helpers ---------------------------------------------------------------------- */

static bool method_is(const hr_http_request *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

static bool path_eq(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

bool hr_emu_path(const char *p, size_t n)
{
    return path_eq(p, n, "/poll") || path_eq(p, n, "/poll/open") || path_eq(p, n, "/poll/send") ||
           path_eq(p, n, "/stream") || path_eq(p, n, "/stream/send");
}


#define NOCACHE "Cache-Control: no-cache, no-store\r\nX-Accel-Buffering: no\r\n"

static void respond_json(hr_conn *c, int status, const char *cors, const hr_buf *b, bool close)
{
    char hdrs[768];
    snprintf(hdrs, sizeof(hdrs), NOCACHE "%s", cors);
    hr_http_respond(c, status, "application/json", hdrs, b->data, b->len, false, close);
}

static void respond_err(hr_conn *c, int status, const char *cors, const char *msg, bool close)
{
    char hdrs[768];
    snprintf(hdrs, sizeof(hdrs), NOCACHE "%s", cors);
    hr_http_refuse(c, NULL, -1, status, hdrs, msg, close);
}

/* poll.max_sessions_per_ip reached: 503, to retry once a session of the
 * address has ended (an idle one ends poll.session_ttl after its last request). */
static void respond_busy(hr_conn *c, const char *cors, bool close)
{
    char hdrs[768];
    long long ttl_s = (long long)((c->w->opts->poll_session_ttl_ms + 999) / 1000);
    snprintf(hdrs, sizeof(hdrs), NOCACHE "Retry-After: %lld\r\n%s", ttl_s, cors);
    hr_http_refuse(c, NULL, HR_REFUSE_LIMIT, 503, hdrs, "too many sessions from your address (poll.max_sessions_per_ip)",
                   close);
}

/* ?session= and ?cursor=: 0 ok (session NULL when absent), else an HTTP status with msg. */
static int parse_params(const hr_http_request *req, char sid[33], bool *has_sid, uint64_t *cursor, const char **msg)
{
    *has_sid = false;
    *cursor = 0;
    if (!req->query) return 0;
    char buf[64];
    size_t pos = 0, len = 0;
    int rc = hr_query_next(req->query, req->query_len, &pos, "session", buf, sizeof(buf), &len);
    if (rc < 0 || (rc == 1 && len != 32)) {
        *msg = "unknown session";
        return 404;
    }
    if (rc == 1) {
        memcpy(sid, buf, 32);
        sid[32] = '\0';
        *has_sid = true;
    }
    pos = 0;
    rc = hr_query_next(req->query, req->query_len, &pos, "cursor", buf, sizeof(buf), &len);
    if (rc < 0 || (rc == 1 && (len == 0 || len > 19))) {
        *msg = "cursor must be a non-negative integer";
        return 400;
    }
    if (rc == 1) {
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            if (buf[i] < '0' || buf[i] > '9') {
                *msg = "cursor must be a non-negative integer";
                return 400;
            }
            v = v * 10 + (uint64_t)(buf[i] - '0');
        }
        *cursor = v;
    }
    return 0;
}

/* ---- readers (the worker holding the connection) ------------------------------------------ */

static const hr_conn_vt poll_vt, stream_vt;

static void reader_unlink(reader *r)
{
    eworker *ew = &r->s->reg->w[r->worker];
    if (r->prev) r->prev->next = r->next;
    else if (ew->readers == r) ew->readers = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void reader_release(reader *r)
{
    reader_unlink(r);
    pthread_mutex_lock(&r->s->mu);
    r->s->readers--;
    r->s->last_active = mono_ms();
    pthread_mutex_unlock(&r->s->mu);
    sunref(r->s);
    hr_free(r);
}

static void batch_open(hr_buf *b) { hr_buf_append_str(b, "{\"messages\":["); }

static void batch_close(hr_buf *b, uint64_t cursor)
{
    hr_buf_printf(b, "],\"cursor\":%llu}", (unsigned long long)cursor);
}

/* Answer a parked poll and give the connection back to HTTP. */
static void poll_answer(reader *r, hr_buf *b)
{
    hr_conn *c = r->c;
    bool close = r->close || c->w->draining;
    hr_conn_stop_timer(c);
    hr_conn_set_transport(c, &poll_vt, NULL); /* on_free must not see r any more */
    char cors[512];
    memcpy(cors, r->cors, sizeof(cors));
    reader_release(r);
    hr_http_attach(c);
    respond_json(c, 200, cors, b, close);
    if (!close && c->in.len) hr_conn_yield(c); /* a request sent while this one waited */
}

/* Serve a reader: poll -> answer if there is something (or force); stream
 * -> write what is new. Re-arms the wake-up otherwise. */
static void reader_serve(reader *r, bool force)
{
    esess *s = r->s;
    hr_buf b = HR_BUF_INIT;
    uint64_t bit = 1ull << r->worker;
    if (!r->stream) {
        batch_open(&b);
        pthread_mutex_lock(&s->mu);
        size_t n = collect(s, &r->cursor, &b, true);
        bool answer = n || force || s->ended;
        if (!answer) s->wait_mask |= bit;
        pthread_mutex_unlock(&s->mu);
        if (answer) {
            batch_close(&b, r->cursor);
            poll_answer(r, &b);
        }
        hr_buf_free(&b);
        return;
    }
    if (r->finished) return;
    hr_conn *c = r->c;
    bool ended = false;
    hr_buf_append(&b, "0000000000\r\n", 12); /* chunk size, filled in below */
    pthread_mutex_lock(&s->mu);
    if (c->out.bytes < STREAM_HIGH_WATER) collect(s, &r->cursor, &b, false);
    ended = s->ended && first_after(s, r->cursor) == s->n;
    if (!ended && c->out.bytes < STREAM_HIGH_WATER) s->wait_mask |= bit;
    pthread_mutex_unlock(&s->mu);
    if (b.len > 12) {
        size_t n = b.len - 12;
        char hex[16];
        int hl = snprintf(hex, sizeof(hex), "%zx\r\n", n);
        size_t off = 12 - (size_t)hl;
        memcpy(b.data + off, hex, (size_t)hl);
        hr_buf_append(&b, "\r\n", 2);
        hr_conn_send(c, b.data + off, b.len - off);
    }
    hr_buf_free(&b);
    if (ended) {
        static const char last[] = "0\r\n\r\n";
        hr_conn_send(c, last, sizeof(last) - 1);
        r->finished = true;
        hr_conn_close_after_flush(c);
        hr_conn_set_timer(c, (uint64_t)c->w->opts->ws_close_timeout_ms);
    }
}

static void task_ready(hr_whub *wh, void *arg)
{
    esess *s = arg;
    if (wh) {
        eworker *ew = &s->reg->w[wh->id];
        /* serving may unlink r (an answered poll): walk with the next saved */
        for (reader *r = ew->readers, *nx; r; r = nx) {
            nx = r->next;
            if (r->s == s) reader_serve(r, false);
        }
    }
    sunref(s);
}

static reader *reader_new(hr_conn *c, esess *s, uint64_t cursor, bool stream, bool close, const char *cors)
{
    reader *r = hr_calloc(1, sizeof(*r));
    r->c = c;
    r->s = s; /* takes the caller's reference */
    r->worker = c->w->id;
    r->cursor = cursor;
    r->stream = stream;
    r->close = close;
    snprintf(r->cors, sizeof(r->cors), "%s", cors);
    eworker *ew = &s->reg->w[r->worker];
    r->next = ew->readers;
    if (ew->readers) ew->readers->prev = r;
    ew->readers = r;
    return r;
}

static ssize_t poll_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    HR_UNUSED(data);
    /* a pipelined request waits for the answer; a flood does not */
    if (len > (size_t)c->w->opts->http_max_head_size + (size_t)c->w->opts->http_max_body_size) {
        hr_conn_close(c);
        return -1;
    }
    return 0;
}

static void poll_on_eof(hr_conn *c) { hr_conn_close(c); }

static void poll_on_timer(hr_conn *c)
{
    reader *r = c->proto;
    if (r) reader_serve(r, true);
}

static void poll_on_shutdown(hr_conn *c)
{
    reader *r = c->proto;
    if (r) reader_serve(r, true);
}

static void reader_on_free(hr_conn *c)
{
    reader *r = c->proto;
    c->proto = NULL;
    if (r) reader_release(r);
}

static const hr_conn_vt poll_vt = {
    .on_data = poll_on_data,
    .on_eof = poll_on_eof,
    .on_timer = poll_on_timer,
    .on_shutdown = poll_on_shutdown,
    .on_free = reader_on_free,
    .name = "poll",
    .kind = HR_CK_LONG_POLL,
};

static ssize_t stream_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    HR_UNUSED(c);
    HR_UNUSED(data);
    return (ssize_t)len; /* nothing the client sends on a stream means anything */
}

static void stream_on_timer(hr_conn *c)
{
    reader *r = c->proto;
    if (!r || r->finished) {
        hr_conn_close(c);
        return;
    }
    /* heartbeat: an empty line (NDJSON readers skip it) keeps proxies open */
    static const char hb[] = "1\r\n\n\r\n";
    hr_conn_send(c, hb, sizeof(hb) - 1);
    uint64_t iv = (uint64_t)c->w->opts->sse_heartbeat_interval_ms;
    if (iv) hr_conn_set_timer(c, iv);
}

static void stream_on_drained(hr_conn *c)
{
    reader *r = c->proto;
    if (r && !r->finished) reader_serve(r, false);
}

static void stream_on_shutdown(hr_conn *c)
{
    reader *r = c->proto;
    if (!r || r->finished) return;
    hr_buf b = HR_BUF_INIT;
    hr_native_disconnect(&b, HR_DISC_SHUTDOWN, "server shutting down, reconnect", true);
    hr_buf_append(&b, "\n", 1);
    char hex[16];
    int hl = snprintf(hex, sizeof(hex), "%zx\r\n", b.len);
    hr_conn_send2(c, hex, (size_t)hl, b.data, b.len);
    hr_conn_send(c, "\r\n0\r\n\r\n", 7);
    hr_buf_free(&b);
    r->finished = true;
    hr_conn_close_after_flush(c);
    hr_conn_set_timer(c, (uint64_t)c->w->opts->ws_close_timeout_ms);
}

static const hr_conn_vt stream_vt = {
    .on_data = stream_on_data,
    .on_eof = poll_on_eof,
    .on_timer = stream_on_timer,
    .on_drained = stream_on_drained,
    .on_shutdown = stream_on_shutdown,
    .on_free = reader_on_free,
    .name = "stream",
    .kind = HR_CK_HTTP_STREAM,
};

/* ---- the endpoints -------------------------------------------------------------------- */

/* The connection token of a request opening a session (?token= or
 * Authorization: Bearer), checked now so a bad one gets its 401 at once;
 * the session's connect command uses it when it carries none. Returns 0
 * (*tok: a copy or NULL) or the status already answered. */
static int open_token(hr_conn *c, const hr_http_request *req, const char *cors, bool close, char **tok)
{
    *tok = NULL;
    size_t qlen = req->query ? req->query_len : 0, len = 0;
    char *buf = hr_malloc(qlen + 1);
    const char *t = NULL, *why = NULL;
    int st = 0, tr = hr_http_token(req, buf, qlen + 1, &t, &len);
    if (tr < 0) {
        respond_err(c, 400, cors, "malformed token parameter or Authorization header", close);
        st = 400;
    } else if (tr > 0) {
        hr_jwt_claims cl;
        hr_actor a = hr_http_actor(c);
        hr_op_result res = hr_op_verify_token(&a, t, len, &cl);
        bool sub = !res.rc && cl.channel;
        why = res.detail;
        hr_jwt_claims_free(&cl);
        if (res.rc || sub) {
            char msg[256], hdrs[768];
            if (res.rc == HR_OP_TOKEN_EXPIRED) snprintf(msg, sizeof(msg), "token expired: get a new token");
            else snprintf(msg, sizeof(msg), "invalid token: %s", sub ? "a subscription token is not a connection token" : why);
            snprintf(hdrs, sizeof(hdrs), NOCACHE "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n%s", cors);
            hr_http_refuse(c, NULL, HR_REFUSE_TOKEN, 401, hdrs, msg, close);
            st = 401;
        } else {
            *tok = hr_strndup(t, len);
        }
    }
    hr_free(buf);
    return st;
}

/* Open a session for req's client (transport: "long_poll" or
 * "http_stream", as the backend hooks name it). */
static esess *session_open_auth(hr_conn *c, const hr_http_request *req, const char *transport, const char *cors,
                                bool close)
{
    char *tok = NULL;
    if (open_token(c, req, cors, close, &tok)) return NULL;
    open_result why = OPEN_OK;
    esess *s = session_open(c->w, c->ip_key, &why);
    if (s && s->sess) hr_session_set_peer(s->sess, c->ip_key);
    if (!s) {
        hr_free(tok);
        if (why == OPEN_ADDRESS) respond_busy(c, cors, close);
        else respond_err(c, 503, cors, "too many sessions (poll.max_sessions)", close);
        return NULL;
    }
    if (tok) hr_session_set_token(s->sess, tok, strlen(tok));
    hr_free(tok);
    hr_proxy_origin *origin = hr_client_origin(c, req);
    if (origin) hr_session_set_remote(s->sess, origin->remote_addr);
    hr_session_set_backend(s->sess, c->w->proxy, transport, origin);
    return s;
}

static void handle_open(hr_conn *c, const hr_http_request *req, const char *cors, bool close)
{
    esess *s = session_open_auth(c, req, "long_poll", cors, close);
    if (!s) return;
    hr_buf b = HR_BUF_INIT;
    hr_buf_printf(&b, "{\"session\":\"%s\",\"cursor\":0}", s->id);
    respond_json(c, 200, cors, &b, close);
    hr_buf_free(&b);
}

static void handle_poll(hr_conn *c, const hr_http_request *req, const char *cors, bool close)
{
    char sid[33];
    bool has;
    uint64_t cursor;
    const char *msg = NULL;
    int st = parse_params(req, sid, &has, &cursor, &msg);
    if (st) {
        respond_err(c, st, cors, msg, close);
        return;
    }
    if (!has) {
        handle_open(c, req, cors, close);
        return;
    }
    esess *s = reg_find(c->w->sh->emu, sid);
    if (!s) {
        respond_err(c, 404, cors, "unknown session", close);
        return;
    }
    hr_buf b = HR_BUF_INIT;
    batch_open(&b);
    pthread_mutex_lock(&s->mu);
    s->last_active = mono_ms();
    int cs = cursor_state(s, cursor);
    if (!cs) ack(s, cursor);
    size_t n = cs ? 0 : collect(s, &cursor, &b, true);
    bool park = !cs && !n && !s->ended && c->w->opts->poll_timeout_ms > 0 && !c->w->draining;
    if (park) {
        s->wait_mask |= 1ull << c->w->id;
        s->readers++;
    }
    pthread_mutex_unlock(&s->mu);
    if (cs) {
        respond_err(c, cs == 1 ? 400 : 410, cors,
                    cs == 1 ? "cursor is ahead of the session"
                            : "the lines after this cursor are gone (poll.max_queued_bytes): open a new session and "
                              "recover",
                    close);
        sunref(s);
    } else if (!park) {
        batch_close(&b, cursor);
        respond_json(c, 200, cors, &b, close);
        sunref(s);
    } else {
        reader *r = reader_new(c, s, cursor, false, close, cors);
        hr_http_detach(c, HR_CK_NONE); /* parked: its answer comes with the next line */
        hr_conn_set_transport(c, &poll_vt, r);
        hr_conn_set_timer(c, (uint64_t)c->w->opts->poll_timeout_ms);
    }
    hr_buf_free(&b);
}

static void handle_stream(hr_conn *c, const hr_http_request *req, const char *cors, bool close)
{
    char sid[33];
    bool has;
    uint64_t cursor;
    const char *msg = NULL;
    int st = parse_params(req, sid, &has, &cursor, &msg);
    if (st) {
        respond_err(c, st, cors, msg, close);
        return;
    }
    esess *s;
    if (has) {
        s = reg_find(c->w->sh->emu, sid);
        if (!s) {
            respond_err(c, 404, cors, "unknown session", close);
            return;
        }
    } else {
        s = session_open_auth(c, req, "http_stream", cors, close);
        if (!s) return;
        sref(s);
    }
    pthread_mutex_lock(&s->mu);
    int cs = cursor_state(s, cursor);
    if (!cs) {
        ack(s, cursor);
        s->readers++;
        s->last_active = mono_ms();
    }
    pthread_mutex_unlock(&s->mu);
    if (cs) {
        respond_err(c, cs == 1 ? 400 : 410, cors,
                    cs == 1 ? "cursor is ahead of the session"
                            : "the lines after this cursor are gone (poll.max_queued_bytes): open a new session and "
                              "recover",
                    close);
        sunref(s);
        return;
    }
    char hdrs[1024];
    snprintf(hdrs, sizeof(hdrs), "Transfer-Encoding: chunked\r\n" NOCACHE "X-Herald-Session: %s\r\n%s", s->id, cors);
    char first[128];
    int fl = snprintf(first, sizeof(first), "{\"session\":\"%s\",\"cursor\":%llu}\n", s->id,
                      (unsigned long long)cursor);
    char chunk[160];
    int cl = snprintf(chunk, sizeof(chunk), "%x\r\n%s\r\n", fl, first);
    hr_http_respond_stream(c, 200, "application/x-ndjson", hdrs, chunk, (size_t)cl);
    hr_http_detach(c, HR_CK_HTTP_STREAM);
    reader *r = reader_new(c, s, cursor, true, true, cors);
    hr_conn_set_transport(c, &stream_vt, r);
    uint64_t iv = (uint64_t)c->w->opts->sse_heartbeat_interval_ms;
    if (iv) hr_conn_set_timer(c, iv);
    else hr_conn_stop_timer(c);
    reader_serve(r, false); /* replay what is after the cursor, arm the wake-up */
    if (c->w->draining) stream_on_shutdown(c);
}

/* A send for a session of another node, waiting for the engine. */
typedef struct forward {
    hr_conn *c;                /* NULL once the connection is gone */
    bool close;
    char cors[512];
} forward;

static void forward_cancel(void *owner) { ((forward *)owner)->c = NULL; }

static void forward_done(void *ud, int err)
{
    forward *fw = ud;
    hr_conn *c = fw->c;
    if (c) {
        if (err == HR_ERR_NOTFOUND) {
            respond_err(c, 404, fw->cors, "unknown session", fw->close);
        } else if (err) {
            respond_err(c, 503, fw->cors, "the engine cannot reach the session's node: retry", fw->close);
        } else {
            static const char ok[] = "{}";
            hr_buf b = {.data = (uint8_t *)ok, .len = 2};
            respond_json(c, 202, fw->cors, &b, fw->close);
        }
        hr_http_resume(c);
    }
    hr_free(fw);
}

static void handle_send(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, const char *cors,
                        bool close)
{
    char sid[33];
    bool has;
    uint64_t cursor;
    const char *msg = NULL;
    int st = parse_params(req, sid, &has, &cursor, &msg);
    if (st) {
        respond_err(c, st, cors, msg, close);
        return;
    }
    if (!has) {
        respond_err(c, 400, cors, "session is required (?session=ID)", close);
        return;
    }
    esess *s = reg_find(c->w->sh->emu, sid);
    hr_engine *e = c->w->hub->hub->engine;
    if (!s && !e->cluster) {
        respond_err(c, 404, cors, "unknown session", close);
        return;
    }
    hr_native_batch batch = {0};
    hr_native_limits lim = {(size_t)c->w->proto->ops.max_commands_per_frame, (size_t)c->w->proto->ops.max_channel_length};
    int rc = len ? hr_native_parse(body, len, &lim, &batch) : HR_ERR_PROTO;
    size_t ncmds = batch.n;
    hr_native_batch_free(&batch);
    if (rc || ncmds == 0) {
        respond_err(c, 400, cors,
                    rc == HR_ERR_TOO_BIG ? "too many commands or values in one frame (channels.max_commands_per_frame)"
                                         : "the body must be a native-protocol frame: newline-delimited JSON commands",
                    close);
        if (s) sunref(s);
        return;
    }
    if (!s) { /* held by another node, maybe: the engine routes it there (202), or no node has it (404) */
        forward *fw = hr_calloc(1, sizeof(*fw));
        fw->c = c;
        fw->close = close;
        snprintf(fw->cors, sizeof(fw->cors), "%s", cors);
        hr_http_defer(c, fw, forward_cancel);
        e->cluster->session_send(e, sid, body, len, forward_done, fw);
        return;
    }
    pthread_mutex_lock(&s->mu);
    bool ended = s->ended;
    s->last_active = mono_ms();
    pthread_mutex_unlock(&s->mu);
    if (ended) {
        respond_err(c, 404, cors, "session ended", close);
        sunref(s);
        return;
    }
    frame_task *f = hr_malloc(sizeof(*f) + len);
    f->s = s; /* the lookup's reference */
    f->len = len;
    memcpy(f->data, body, len);
    hr_hub_post(s->hub, s->owner, task_frame, f);
    static const char ok[] = "{}";
    hr_buf b = {.data = (uint8_t *)ok, .len = 2};
    respond_json(c, 202, cors, &b, close);
}

void hr_emu_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t body_len, bool close)
{
    const hr_transport_opts *opt = c->w->opts;
    char cors[512];
    int origin = hr_cors_check(opt, req, NULL, cors, sizeof(cors)); /* same policy as /sse */
    bool is_send = path_eq(req->path, req->path_len, "/poll/send") || path_eq(req->path, req->path_len, "/stream/send");
    bool is_open = path_eq(req->path, req->path_len, "/poll/open");
    const char *allow = is_send || is_open ? "POST, OPTIONS" : "GET, OPTIONS";
    char hdrs[1024];
    if (method_is(req, "OPTIONS")) {
        if (origin < 0) {
            respond_err(c, 403, "", "origin not allowed (sse.allowed_origins)", close);
            return;
        }
        snprintf(hdrs, sizeof(hdrs), "Allow: %s\r\n%s%s%s%s", allow, cors,
                 origin > 0 ? "Access-Control-Allow-Methods: " : "", origin > 0 ? allow : "",
                 origin > 0 ? "\r\nAccess-Control-Allow-Headers: Content-Type, Authorization\r\nAccess-Control-Max-Age: 600\r\n" : "");
        hr_http_respond(c, 200, NULL, hdrs, NULL, 0, false, close);
        return;
    }
    if (origin < 0) {
        respond_err(c, 403, "", "origin not allowed (sse.allowed_origins)", close);
        return;
    }
    bool post = method_is(req, "POST"), get = method_is(req, "GET");
    if ((is_send || is_open) ? !post : !get) {
        snprintf(hdrs, sizeof(hdrs), "Allow: %s\r\n%s", allow, cors);
        hr_http_respond_error(c, 405, hdrs, "method not allowed", close);
        return;
    }
    if (is_send) {
        handle_send(c, req, body, body_len, cors, close);
        return;
    }
    if (is_open) {
        handle_open(c, req, cors, close);
        return;
    }
    if (body_len) {
        respond_err(c, 400, cors, "this request has no body", close);
        return;
    }
    if (path_eq(req->path, req->path_len, "/poll")) handle_poll(c, req, cors, close);
    else handle_stream(c, req, cors, close);
}
