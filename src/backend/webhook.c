/* webhook.c - the webhook sender (backend/webhook.h).
 *
 * Shape: callers (any worker thread) turn an event into its JSON text at
 * once and append it, under `mu`, to the queue of the URL it goes to; the
 * sender thread runs its own hr_loop with one hr_httpc and one state
 * machine per queue: IDLE (waiting for a full batch or batch_max_delay on
 * its timer), SENDING (one POST in flight), BACKOFF (the same batch waits
 * for its retry on the timer). A batch leaves the queue's pending list when
 * it is first sent and is freed only when the backend answered 2xx or
 * refused it (4xx other than 429), so a backend restart loses nothing and,
 * since the next batch waits, reorders nothing.
 *
 * The bounds (max_queued events, max_queued_bytes of their JSON) count
 * pending events and those in batches. A full node drops the oldest pending
 * events of any queue (smallest sequence) until the new one fits; when every
 * queued event is in a batch being sent, the new one is dropped.
 *
 * Members: a small chained hash table (channel NUL user -> connections),
 * under its own mutex `mmu`, taken before `mu` when an event is emitted so
 * the order of member events per channel is the order of the transitions. */
#include "backend/webhook.h"

#include "backend/httpc.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/hmac.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/random.h"
#include "hub/channel_name.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const event_names[HR_WH_NEVENTS] = {
    "channel_occupied", "channel_vacated", "member_added", "member_removed",
    "client_connected", "client_disconnected", "publication",
};

#define DROP_LOG_INTERVAL_MS 10000u

typedef struct wev {
    struct wev *next;
    uint64_t seq;              /* node-wide arrival order (drop-oldest) */
    uint64_t at_ms;            /* monotonic arrival time (batch_max_delay) */
    size_t len;
    char json[];
} wev;

enum { Q_IDLE, Q_SENDING, Q_BACKOFF };

typedef struct wqueue {
    hr_webhook *wh;
    char *url;
    hr_webhook_format format;
    char *secret;              /* PUSHER: the app's (HERALD: wh->secret) */
    char *key;                 /* PUSHER: X-Pusher-Key */
    wev *head, *tail;          /* pending, oldest first (under mu) */
    size_t n;
    wev **batch;               /* the batch being sent (sender thread only) */
    size_t nbatch;
    int state;
    unsigned attempt;          /* failed attempts of this batch */
    hr_timer timer;
} wqueue;

typedef struct wmember {
    struct wmember *next;
    uint64_t h;
    uint32_t count;
    size_t klen;
    char key[];                /* channel NUL user */
} wmember;

struct hr_webhook {
    hr_webhook_opts o;
    char *secret;
    wqueue *queues;            /* queues[i].url distinct */
    size_t nqueues;
    int global_q;              /* queue of the global url, -1: none */
    int *route_q;              /* per route: its queue, -1: none */
    pthread_mutex_t mu;
    uint64_t total;            /* pending + in batches */
    uint64_t bytes;            /* their JSON bytes */
    uint64_t seq;
    bool wake_sent;
    bool flushing;
    hr_webhook_stats st;
    uint64_t drop_logged_ms;
    uint64_t drops_unlogged;
    atomic_uint_fast64_t ids;
    char node[17];             /* random id prefix of this process */
    atomic_bool quit;
    hr_loop loop;
    pthread_t thread;
    hr_httpc *http;
    pthread_mutex_t mmu;
    wmember **members;
    size_t nmembers, mcap;
};

/* ---- names and routes ------------------------------------------------------------ */

const char *hr_webhook_event_name(int ev) { return ev >= 0 && ev < HR_WH_NEVENTS ? event_names[ev] : "?"; }

const char *hr_webhook_events_mask(char *const *names, size_t n, uint32_t *mask)
{
    *mask = 0;
    for (size_t i = 0; i < n; i++) {
        int found = -1;
        for (int e = 0; e < HR_WH_NEVENTS && found < 0; e++)
            if (strcmp(names[i], event_names[e]) == 0) found = e;
        if (found < 0) return names[i];
        *mask |= 1u << found;
    }
    return NULL;
}

/* The queue and event mask of a channel (NULL: client events, the global
 * ones), and its route (NULL: the global url's). */
static int route_of(const hr_webhook *wh, const char *ch, size_t len, uint32_t *events, const hr_webhook_route **rt)
{
    *events = wh->o.events;
    *rt = NULL;
    if (!ch) return wh->global_q;
    const char *ns;
    size_t nl;
    hr_chan_namespace(ch, len, &ns, &nl);
    for (size_t i = 0; nl && i < wh->o.nroutes; i++) {
        const hr_webhook_route *r = &wh->o.routes[i];
        if (strlen(r->ns) != nl || memcmp(r->ns, ns, nl) != 0) continue;
        *events = r->events;
        *rt = r;
        return wh->route_q[i];
    }
    return wh->global_q;
}

bool hr_webhook_wants(const hr_webhook *wh, hr_webhook_event ev, const char *channel, size_t len)
{
    if (!wh) return false;
    uint32_t events;
    const hr_webhook_route *rt;
    int q = route_of(wh, channel, len, &events, &rt);
    return q >= 0 && (events & (1u << ev));
}

/* ---- queueing (any thread) -------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void add_str(hr_buf *b, const char *name, const char *v, size_t n)
{
    if (!v) return;
    hr_buf_printf(b, ",\"%s\":", name);
    hr_json_append_string(b, v, n);
}

static void add_raw(hr_buf *b, const char *name, const char *v, size_t n)
{
    if (!v || !n) return;
    hr_buf_printf(b, ",\"%s\":", name);
    hr_buf_append(b, v, n);
}

static void event_json(hr_webhook *wh, const hr_webhook_ev *ev, hr_buf *b)
{
    uint64_t id = atomic_fetch_add(&wh->ids, 1);
    hr_buf_printf(b, "{\"event\":\"%s\",\"id\":\"%s-%llu\",\"time_ms\":%lld", event_names[ev->type], wh->node,
                  (unsigned long long)id, ev->time_ms ? (long long)ev->time_ms : (long long)wall_ms());
    add_str(b, "channel", ev->channel, ev->channel_len);
    add_str(b, "user", ev->user, ev->user ? strlen(ev->user) : 0);
    add_str(b, "client", ev->client, ev->client ? strlen(ev->client) : 0);
    add_str(b, "transport", ev->transport, ev->transport ? strlen(ev->transport) : 0);
    add_str(b, "remote", ev->remote, ev->remote ? strlen(ev->remote) : 0);
    if (ev->type == HR_WH_CLIENT_DISCONNECTED) {
        hr_buf_printf(b, ",\"code\":%d", ev->code);
        add_str(b, "reason", ev->reason ? ev->reason : "", ev->reason ? strlen(ev->reason) : 0);
        hr_buf_printf(b, ",\"duration_ms\":%lld", (long long)ev->duration_ms);
    }
    add_raw(b, "info", ev->info, ev->info ? strlen(ev->info) : 0);
    add_raw(b, "data", ev->data, ev->data_len);
    if (ev->type == HR_WH_PUBLICATION) {
        hr_buf_printf(b, ",\"offset\":%llu", (unsigned long long)ev->offset);
        add_str(b, "epoch", ev->epoch ? ev->epoch : "", ev->epoch ? strlen(ev->epoch) : 0);
    }
    hr_buf_append(b, "}", 1);
}

/* ---- Pusher's format ----------------------------------------------------------------- */

/* Pusher's names of the events a Pusher route sends (NULL: none). */
static const char *const pusher_names[HR_WH_NEVENTS] = {
    [HR_WH_CHANNEL_OCCUPIED] = "channel_occupied", [HR_WH_CHANNEL_VACATED] = "channel_vacated",
    [HR_WH_MEMBER_ADDED] = "member_added",         [HR_WH_MEMBER_REMOVED] = "member_removed",
    [HR_WH_PUBLICATION] = "client_event",
};

int64_t hr_webhook_pusher_mask(const char *list)
{
    uint32_t mask = 0;
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int found = -1;
        for (int e = 0; e < HR_WH_NEVENTS && found < 0; e++)
            if (pusher_names[e] && strlen(pusher_names[e]) == n && !memcmp(p, pusher_names[e], n)) found = e;
        if (found < 0) return -1;
        mask |= 1u << found;
        p = comma ? comma + 1 : p + n;
    }
    if (!list[0])
        for (int e = 0; e < HR_WH_NEVENTS; e++) mask |= pusher_names[e] ? 1u << e : 0;
    return mask;
}

/* A client event's members from the publication the Pusher session made
 * ({"event","data","socket_id"[,"user_id"]}); data as Pusher sends it, a
 * string (JSON text when it is not one). */
static void client_event_json(const hr_webhook_ev *ev, hr_buf *b)
{
    json_t *v = json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY, NULL);
    json_t *name = json_object_get(v, "event"), *data = json_object_get(v, "data");
    const char *keys[] = {"socket_id", "user_id"};
    if (json_is_string(name)) {
        hr_buf_append_str(b, ",\"event\":");
        hr_json_append_string(b, json_string_value(name), json_string_length(name));
    }
    hr_buf_append_str(b, ",\"data\":");
    if (json_is_string(data)) {
        hr_json_append_string(b, json_string_value(data), json_string_length(data));
    } else {
        hr_buf t = HR_BUF_INIT;
        hr_json_dump(data ? data : json_null(), &t);
        hr_json_append_string(b, (const char *)t.data, t.len);
        hr_buf_free(&t);
    }
    for (size_t i = 0; i < HR_ARRAY_LEN(keys); i++) {
        json_t *s = json_object_get(v, keys[i]);
        if (json_is_string(s)) add_str(b, keys[i], json_string_value(s), json_string_length(s));
    }
    json_decref(v);
}

/* The event as Pusher writes it, or false when the route sends none: a
 * channel its name function skips, a publication that is no client's. */
static bool pusher_event_json(const hr_webhook_route *r, const hr_webhook_ev *ev, hr_buf *b)
{
    const char *name = pusher_names[ev->type];
    hr_buf ch = HR_BUF_INIT;
    bool ok = name && ev->channel && (ev->type != HR_WH_PUBLICATION || ev->client) &&
              r->name(r->name_ctx, ev->channel, ev->channel_len, &ch);
    if (ok) {
        hr_buf_printf(b, "{\"name\":\"%s\",\"channel\":", name);
        hr_json_append_string(b, (const char *)ch.data, ch.len);
        if (ev->type == HR_WH_MEMBER_ADDED || ev->type == HR_WH_MEMBER_REMOVED)
            add_str(b, "user_id", ev->user, ev->user ? strlen(ev->user) : 0);
        if (ev->type == HR_WH_PUBLICATION) client_event_json(ev, b);
        hr_buf_append(b, "}", 1);
    }
    hr_buf_free(&ch);
    return ok;
}

static void log_drops(hr_webhook *wh, uint64_t now)
{
    wh->drops_unlogged++;
    if (wh->drop_logged_ms && now - wh->drop_logged_ms < DROP_LOG_INTERVAL_MS) return;
    hr_logf(HR_LOG_WARN, "webhook_queue_full", "webhook: queue full (webhook.max_queued_events = %llu, webhook.max_queued_bytes = %llu): dropped %llu "
            "oldest event(s) since the last warning, %llu in all", (unsigned long long)wh->o.max_queued,
            (unsigned long long)wh->o.max_queued_bytes, (unsigned long long)wh->drops_unlogged,
            (unsigned long long)wh->st.dropped);
    wh->drop_logged_ms = now;
    wh->drops_unlogged = 0;
}

static bool full(const hr_webhook *wh, size_t len)
{
    return wh->total >= wh->o.max_queued || wh->bytes + len > wh->o.max_queued_bytes;
}

/* Make room for one event of len bytes (under mu): drop the oldest pending
 * ones until it fits. false: what is left is in batches being sent (or the
 * event alone is over max_queued_bytes); the new one is dropped. */
static bool make_room(hr_webhook *wh, uint64_t now, size_t len)
{
    while (full(wh, len)) {
        wqueue *oldest = NULL;
        for (size_t i = 0; i < wh->nqueues; i++) {
            wqueue *q = &wh->queues[i];
            if (q->head && (!oldest || q->head->seq < oldest->head->seq)) oldest = q;
        }
        wh->st.dropped++;
        log_drops(wh, now);
        if (!oldest) return false;
        wev *e = oldest->head;
        oldest->head = e->next;
        if (!oldest->head) oldest->tail = NULL;
        oldest->n--;
        wh->total--;
        wh->bytes -= e->len;
        hr_free(e);
    }
    return true;
}

static void enqueue(hr_webhook *wh, int qi, const hr_buf *json)
{
    wqueue *q = &wh->queues[qi];
    uint64_t now = hr_now_ms();
    wev *e = hr_malloc(sizeof(*e) + json->len);
    memcpy(e->json, json->data, json->len);
    e->len = json->len;
    e->next = NULL;
    e->at_ms = now;
    bool wake = false;
    pthread_mutex_lock(&wh->mu);
    if (!make_room(wh, now, json->len)) {
        pthread_mutex_unlock(&wh->mu);
        hr_free(e);
        return;
    }
    e->seq = wh->seq++;
    if (q->tail) q->tail->next = e;
    else q->head = e;
    q->tail = e;
    q->n++;
    wh->total++;
    wh->bytes += e->len;
    /* the sender arms its delay timer on the first event, sends on a full batch */
    if ((q->n == 1 || q->n == wh->o.batch_max_events) && !wh->wake_sent) wake = wh->wake_sent = true;
    pthread_mutex_unlock(&wh->mu);
    if (wake) hr_loop_wake(&wh->loop);
}

void hr_webhook_emit(hr_webhook *wh, const hr_webhook_ev *ev)
{
    if (!wh) return;
    uint32_t events;
    const hr_webhook_route *rt;
    int qi = route_of(wh, ev->channel, ev->channel_len, &events, &rt);
    if (qi < 0 || !(events & (1u << ev->type))) return;
    hr_buf b = HR_BUF_INIT;
    if (rt && rt->format == HR_WH_FORMAT_PUSHER) {
        if (pusher_event_json(rt, ev, &b)) enqueue(wh, qi, &b);
    } else {
        event_json(wh, ev, &b);
        enqueue(wh, qi, &b);
    }
    hr_buf_free(&b);
}

void hr_webhook_occupancy(hr_webhook *wh, const char *channel, size_t len, bool occupied, uint64_t time_ms)
{
    hr_webhook_ev ev = {.type = occupied ? HR_WH_CHANNEL_OCCUPIED : HR_WH_CHANNEL_VACATED,
                        .channel = channel, .channel_len = len, .time_ms = time_ms};
    hr_webhook_emit(wh, &ev);
}

/* ---- client events ----------------------------------------------------------------- */

struct hr_webhook_conn {
    uint64_t since_ms;         /* monotonic: when it connected */
    int code;                  /* 0: the server did not end it (yet) */
    char *reason;
};

hr_webhook_conn *hr_webhook_connected(hr_webhook *wh, const hr_webhook_who *who, const char *remote)
{
    if (!wh) return NULL;
    hr_webhook_ev ev = {.type = HR_WH_CLIENT_CONNECTED, .client = who->client, .user = who->user,
                        .transport = who->transport, .remote = remote};
    hr_webhook_emit(wh, &ev);
    if (!hr_webhook_wants(wh, HR_WH_CLIENT_DISCONNECTED, NULL, 0)) return NULL;
    hr_webhook_conn *c = hr_calloc(1, sizeof(*c));
    c->since_ms = hr_now_ms();
    return c;
}

void hr_webhook_closing(hr_webhook_conn *c, int code, const char *reason)
{
    if (!c || c->code) return;
    c->code = code;
    c->reason = hr_strdup(reason ? reason : "");
}

void hr_webhook_disconnected(hr_webhook *wh, hr_webhook_conn *c, const hr_webhook_who *who, int code,
                             const char *reason)
{
    if (!c) return;
    hr_webhook_ev ev = {.type = HR_WH_CLIENT_DISCONNECTED, .client = who->client, .user = who->user,
                        .transport = who->transport, .code = c->code ? c->code : code,
                        .reason = c->code ? c->reason : reason, .duration_ms = (int64_t)(hr_now_ms() - c->since_ms)};
    hr_webhook_emit(wh, &ev);
    hr_free(c->reason);
    hr_free(c);
}

/* ---- members ------------------------------------------------------------------------- */

static wmember **member_slot(hr_webhook *wh, const char *key, size_t klen, uint64_t h)
{
    wmember **p = &wh->members[h & (wh->mcap - 1)];
    while (*p && !((*p)->h == h && (*p)->klen == klen && memcmp((*p)->key, key, klen) == 0)) p = &(*p)->next;
    return p;
}

static void members_grow(hr_webhook *wh)
{
    size_t ncap = wh->mcap ? wh->mcap * 2 : 64;
    wmember **nt = hr_calloc(ncap, sizeof(*nt));
    for (size_t i = 0; i < wh->mcap; i++) {
        for (wmember *m = wh->members[i], *next; m; m = next) {
            next = m->next;
            m->next = nt[m->h & (ncap - 1)];
            nt[m->h & (ncap - 1)] = m;
        }
    }
    hr_free(wh->members);
    wh->members = nt;
    wh->mcap = ncap;
}

/* The user's connections in the channel after this change (under mmu). */
static uint32_t member_count(hr_webhook *wh, const char *key, size_t klen, bool add)
{
    if (wh->nmembers >= wh->mcap) members_grow(wh);
    uint64_t h = hr_fnv1a(key, klen);
    wmember **p = member_slot(wh, key, klen, h);
    if (!*p) {
        if (!add) return UINT32_MAX; /* never counted (joined before webhooks wanted it): nothing to say */
        wmember *m = hr_calloc(1, sizeof(*m) + klen);
        m->h = h;
        m->klen = klen;
        memcpy(m->key, key, klen);
        *p = m;
        wh->nmembers++;
    }
    wmember *m = *p;
    if (add) return ++m->count;
    uint32_t left = --m->count;
    if (!left) {
        *p = m->next;
        hr_free(m);
        wh->nmembers--;
    }
    return left;
}

void hr_webhook_member(hr_webhook *wh, const char *channel, size_t len, const char *user, const char *client,
                       const char *info, bool add)
{
    if (!wh || !user || !user[0]) return;
    if (!hr_webhook_wants(wh, HR_WH_MEMBER_ADDED, channel, len) &&
        !hr_webhook_wants(wh, HR_WH_MEMBER_REMOVED, channel, len))
        return;
    size_t ul = strlen(user);
    char *key = hr_malloc(len + 1 + ul);
    memcpy(key, channel, len);
    key[len] = '\0';
    memcpy(key + len + 1, user, ul);
    pthread_mutex_lock(&wh->mmu);
    uint32_t n = member_count(wh, key, len + 1 + ul, add);
    if (n == (add ? 1u : 0u)) {
        hr_webhook_ev ev = {.type = add ? HR_WH_MEMBER_ADDED : HR_WH_MEMBER_REMOVED, .channel = channel,
                            .channel_len = len, .user = user, .client = client, .info = add ? info : NULL};
        hr_webhook_emit(wh, &ev);
    }
    pthread_mutex_unlock(&wh->mmu);
    hr_free(key);
}

/* ---- sending (the sender thread) ------------------------------------------------------ */

static void pump(wqueue *q);

static void sign(const hr_webhook *wh, const hr_buf *body, char *hdr, size_t cap)
{
    long long t = (long long)(wall_ms() / 1000);
    char ts[24];
    int tl = snprintf(ts, sizeof(ts), "%lld.", t);
    char hex[65];
    uint8_t *msg = hr_malloc((size_t)tl + body->len);
    memcpy(msg, ts, (size_t)tl);
    memcpy(msg + tl, body->data, body->len);
    hr_hmac_sha256_hex(wh->secret, msg, (size_t)tl + body->len, hex);
    hr_free(msg);
    snprintf(hdr, cap, "X-Herald-Signature: t=%lld,v1=%s", t, hex);
}

static void set_error(hr_webhook *wh, const char *what)
{
    pthread_mutex_lock(&wh->mu);
    wh->st.failed_attempts++;
    snprintf(wh->st.last_error, sizeof(wh->st.last_error), "%s", what);
    pthread_mutex_unlock(&wh->mu);
}

static uint64_t backoff_ms(const hr_webhook *wh, unsigned attempt)
{
    uint64_t cap = wh->o.retry_min_ms;
    for (unsigned i = 1; i < attempt && cap < wh->o.retry_max_ms; i++) cap *= 2;
    if (cap > wh->o.retry_max_ms) cap = wh->o.retry_max_ms;
    uint64_t r;
    hr_random_bytes(&r, sizeof(r));
    uint64_t d = cap ? r % (cap + 1) : 0; /* full jitter */
    return d < wh->o.retry_min_ms ? wh->o.retry_min_ms : d;
}

static void batch_done(wqueue *q, bool accepted)
{
    hr_webhook *wh = q->wh;
    size_t bytes = 0;
    for (size_t i = 0; i < q->nbatch; i++) bytes += q->batch[i]->len;
    pthread_mutex_lock(&wh->mu);
    wh->total -= q->nbatch;
    wh->bytes -= bytes;
    if (accepted) wh->st.sent += q->nbatch;
    else wh->st.rejected += q->nbatch;
    pthread_mutex_unlock(&wh->mu);
    for (size_t i = 0; i < q->nbatch; i++) hr_free(q->batch[i]);
    q->nbatch = 0;
    q->attempt = 0;
    q->state = Q_IDLE;
}

static void retry_later(wqueue *q, const char *why)
{
    hr_webhook *wh = q->wh;
    set_error(wh, why);
    q->attempt++;
    uint64_t d = backoff_ms(wh, q->attempt);
    hr_logf(HR_LOG_DEBUG, "webhook_retry", "webhook: POST %s failed (%s), retrying %zu event(s) in %llu ms", q->url, why, q->nbatch,
             (unsigned long long)d);
    q->state = Q_BACKOFF;
    hr_timer_start(&wh->loop.wheel, &q->timer, d);
}

static void on_answer(const hr_httpc_resp *resp, void *ud)
{
    wqueue *q = ud;
    hr_webhook *wh = q->wh;
    if (atomic_load(&wh->quit)) return; /* freed with the client at stop: the batch is counted lost */
    char why[64];
    if (resp->err) {
        snprintf(why, sizeof(why), "%s", resp->err == HR_HTTPC_E_TIMEOUT ? "timeout"
                                         : resp->err == HR_HTTPC_E_CONNECT ? "connection refused"
                                         : "transfer failed");
        retry_later(q, why);
        return;
    }
    if (resp->status >= 200 && resp->status < 300) {
        batch_done(q, true);
    } else if (resp->status >= 500 || resp->status == 429) {
        snprintf(why, sizeof(why), "HTTP %ld", resp->status);
        retry_later(q, why);
        return;
    } else {
        hr_logf(HR_LOG_WARN, "webhook_refused", "webhook: %s answered %ld: %zu event(s) dropped (the backend refused them; not retried)", q->url,
                resp->status, q->nbatch);
        snprintf(why, sizeof(why), "HTTP %ld (dropped)", resp->status);
        pthread_mutex_lock(&wh->mu);
        snprintf(wh->st.last_error, sizeof(wh->st.last_error), "%s", why);
        pthread_mutex_unlock(&wh->mu);
        batch_done(q, false);
    }
    pump(q);
}

/* Pusher's headers: the app key, and the hex HMAC-SHA256 of the body. */
static void pusher_headers(const wqueue *q, const hr_buf *body, char *key, size_t kcap, char *sig, size_t scap)
{
    char hex[65];
    hr_hmac_sha256_hex(q->secret, body->data, body->len, hex);
    snprintf(key, kcap, "X-Pusher-Key: %s", q->key);
    snprintf(sig, scap, "X-Pusher-Signature: %s", hex);
}

static void send_batch(wqueue *q)
{
    hr_webhook *wh = q->wh;
    hr_buf body = HR_BUF_INIT;
    if (q->format == HR_WH_FORMAT_PUSHER) hr_buf_printf(&body, "{\"time_ms\":%lld,\"events\":[", (long long)wall_ms());
    else hr_buf_append_str(&body, "{\"events\":[");
    for (size_t i = 0; i < q->nbatch; i++) {
        if (i) hr_buf_append(&body, ",", 1);
        hr_buf_append(&body, q->batch[i]->json, q->batch[i]->len);
    }
    hr_buf_append_str(&body, "]}");
    char sig[160], key[160];
    const char *headers[3] = {"User-Agent: herald-webhook", sig, key};
    size_t nh = 1;
    if (q->format == HR_WH_FORMAT_PUSHER) {
        pusher_headers(q, &body, key, sizeof(key), sig, sizeof(sig));
        nh = 3;
    } else if (wh->secret[0]) {
        sign(wh, &body, sig, sizeof(sig));
        nh = 2;
    }
    hr_httpc_req req = {q->url, headers, nh, (const char *)body.data, body.len, (uint32_t)wh->o.timeout_ms};
    q->state = Q_SENDING;
    int rc = hr_httpc_post(wh->http, &req, on_answer, q, NULL);
    hr_buf_free(&body);
    if (rc) retry_later(q, "request not started");
}

/* Take up to batch_max_events pending events into the batch and send them
 * when the batch is full, its oldest event has waited batch_max_delay, or
 * the sender is flushing; else wait on the timer. */
static void pump(wqueue *q)
{
    hr_webhook *wh = q->wh;
    if (q->state != Q_IDLE) return;
    uint64_t now = hr_now_ms();
    pthread_mutex_lock(&wh->mu);
    if (!q->head) {
        pthread_mutex_unlock(&wh->mu);
        return;
    }
    uint64_t due = q->head->at_ms + wh->o.batch_max_delay_ms;
    if (q->n < wh->o.batch_max_events && !wh->flushing && now < due) {
        pthread_mutex_unlock(&wh->mu);
        if (!hr_timer_active(&q->timer)) hr_timer_start(&wh->loop.wheel, &q->timer, due - now);
        return;
    }
    while (q->head && q->nbatch < wh->o.batch_max_events) {
        wev *e = q->head;
        q->head = e->next;
        q->n--;
        q->batch[q->nbatch++] = e;
    }
    if (!q->head) q->tail = NULL;
    pthread_mutex_unlock(&wh->mu);
    hr_timer_stop(&wh->loop.wheel, &q->timer);
    send_batch(q);
}

static void on_timer(hr_timer *t, void *data)
{
    HR_UNUSED(data);
    wqueue *q = HR_CONTAINER_OF(t, wqueue, timer);
    if (q->state == Q_BACKOFF) send_batch(q);
    else pump(q);
}

static void on_wake(hr_loop *l, void *data)
{
    hr_webhook *wh = data;
    if (atomic_load(&wh->quit)) {
        hr_loop_stop(l); /* sender_main frees the client */
        return;
    }
    pthread_mutex_lock(&wh->mu);
    wh->wake_sent = false;
    pthread_mutex_unlock(&wh->mu);
    for (size_t i = 0; i < wh->nqueues; i++) pump(&wh->queues[i]);
}

static void *sender_main(void *arg)
{
    hr_webhook *wh = arg;
    hr_loop_run(&wh->loop);
    /* After the loop, not from on_wake: the rest of that epoll batch may
     * still name the client's socket and timer watchers. In-flight
     * callbacks see quit. */
    hr_httpc_free(wh->http);
    wh->http = NULL;
    return NULL;
}

/* ---- life ----------------------------------------------------------------------------- */

static bool same_str(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

/* The queue for url (a Pusher route's: for its url, secret and key), made
 * if new (start-up only). */
static int queue_for(hr_webhook *wh, const char *url, const hr_webhook_route *r)
{
    if (!url || !url[0]) return wh->global_q;
    hr_webhook_format f = r ? r->format : HR_WH_FORMAT_HERALD;
    for (size_t i = 0; i < wh->nqueues; i++) {
        const wqueue *q = &wh->queues[i];
        if (!strcmp(q->url, url) && q->format == f && same_str(q->secret, r ? r->secret : NULL) &&
            same_str(q->key, r ? r->key : NULL))
            return (int)i;
    }
    wqueue *q = &wh->queues[wh->nqueues];
    q->wh = wh;
    q->url = hr_strdup(url);
    q->format = f;
    q->secret = f == HR_WH_FORMAT_PUSHER ? hr_strdup(r->secret) : NULL;
    q->key = f == HR_WH_FORMAT_PUSHER ? hr_strdup(r->key) : NULL;
    q->batch = hr_calloc(wh->o.batch_max_events, sizeof(*q->batch));
    hr_timer_init(&q->timer, on_timer);
    return (int)wh->nqueues++;
}

static void free_queues(hr_webhook *wh)
{
    for (size_t i = 0; i < wh->nqueues; i++) {
        wqueue *q = &wh->queues[i];
        for (wev *e = q->head, *next; e; e = next) {
            next = e->next;
            hr_free(e);
        }
        for (size_t j = 0; j < q->nbatch; j++) hr_free(q->batch[j]);
        hr_free(q->batch);
        hr_free(q->url);
        hr_free(q->secret);
        hr_free(q->key);
    }
    hr_free(wh->queues);
}

static void webhook_free(hr_webhook *wh)
{
    free_queues(wh);
    for (size_t i = 0; i < wh->mcap; i++)
        for (wmember *m = wh->members[i], *next; m; m = next) {
            next = m->next;
            hr_free(m);
        }
    hr_free(wh->members);
    hr_free(wh->route_q);
    for (size_t i = 0; i < wh->o.nroutes; i++) hr_free((char *)wh->o.routes[i].ns);
    hr_free((void *)wh->o.routes);
    hr_free(wh->secret);
    pthread_mutex_destroy(&wh->mu);
    pthread_mutex_destroy(&wh->mmu);
    hr_free(wh);
}

static int start_thread(hr_webhook *wh)
{
    if (hr_loop_init(&wh->loop, wh)) return HR_WEBHOOK_E_START;
    wh->loop.on_wake = on_wake;
    hr_httpc_opts ho;
    hr_httpc_opts_default(&ho);
    ho.max_inflight = (uint32_t)wh->nqueues;
    wh->http = hr_httpc_new(&wh->loop, &ho);
    if (!wh->http || pthread_create(&wh->thread, NULL, sender_main, wh)) {
        if (wh->http) hr_httpc_free(wh->http);
        hr_loop_close(&wh->loop);
        return HR_WEBHOOK_E_START;
    }
    return 0;
}

int hr_webhook_start(const hr_webhook_opts *o, hr_webhook **out)
{
    *out = NULL;
    if (!o->batch_max_events || !o->max_queued || !o->max_queued_bytes) return HR_WEBHOOK_E_INVALID;
    hr_webhook *wh = hr_calloc(1, sizeof(*wh));
    wh->o = *o;
    wh->o.url = wh->o.secret = NULL;
    wh->secret = hr_strdup(o->secret ? o->secret : "");
    wh->queues = hr_calloc(o->nroutes + 1, sizeof(*wh->queues));
    wh->global_q = -1;
    wh->global_q = queue_for(wh, o->url, NULL);
    wh->route_q = hr_calloc(o->nroutes + 1, sizeof(int));
    hr_webhook_route *routes = hr_calloc(o->nroutes + 1, sizeof(*routes));
    for (size_t i = 0; i < o->nroutes; i++) {
        const hr_webhook_route *r = &o->routes[i];
        wh->route_q[i] = queue_for(wh, r->url, r);
        routes[i] = (hr_webhook_route){hr_strdup(r->ns), NULL, r->events, r->format, NULL, NULL, r->name, r->name_ctx};
    }
    wh->o.routes = routes;
    pthread_mutex_init(&wh->mu, NULL);
    pthread_mutex_init(&wh->mmu, NULL);
    hr_random_hex(wh->node, 8);
    if (!wh->nqueues) {
        webhook_free(wh);
        return HR_WEBHOOK_E_INVALID;
    }
    int rc = start_thread(wh);
    if (rc) {
        webhook_free(wh);
        return rc;
    }
    *out = wh;
    return 0;
}

void hr_webhook_get_stats(hr_webhook *wh, hr_webhook_stats *out)
{
    pthread_mutex_lock(&wh->mu);
    *out = wh->st;
    out->queued = wh->total;
    out->queued_bytes = wh->bytes;
    pthread_mutex_unlock(&wh->mu);
}

void hr_webhook_stop(hr_webhook *wh)
{
    if (!wh) return;
    pthread_mutex_lock(&wh->mu);
    wh->flushing = true;
    pthread_mutex_unlock(&wh->mu);
    hr_loop_wake(&wh->loop);
    uint64_t deadline = hr_now_ms() + wh->o.flush_ms;
    uint64_t left;
    for (;;) {
        pthread_mutex_lock(&wh->mu);
        left = wh->total;
        pthread_mutex_unlock(&wh->mu);
        if (!left || hr_now_ms() >= deadline) break;
        usleep(10000);
    }
    atomic_store(&wh->quit, true);
    hr_loop_wake(&wh->loop);
    pthread_join(wh->thread, NULL);
    hr_loop_close(&wh->loop);
    if (left)
        hr_logf(HR_LOG_WARN, "webhook_undelivered", "webhook: %llu event(s) not delivered at shutdown (the backend did not take them within %llu ms)",
                (unsigned long long)left, (unsigned long long)wh->o.flush_ms);
    webhook_free(wh);
}
