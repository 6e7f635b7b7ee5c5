/* api.c - the server HTTP API (see api.h and docs/api.md).
 *
 * Every method is a function from a JSON params object to a JSON result
 * (or an HTTP status and message), so /api/batch runs the same functions
 * for each of its commands. Publishing from the API goes through the same
 * engine call as a client publish: same offsets, same history, same fan-out. */
#include "transport/api.h"
#include "backend/webhook.h"
#include "ops/ops.h"
#include "protocol/session.h"
#include "hub/channel_name.h"
#include "protocol/native.h"
#include "transport/worker.h"
#include "transport/http.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Engines may answer later (engine.h): a reply is a list of pieces, some
 * reserved for an engine answer; the request is answered when none is
 * awaited. Meanwhile the connection's next pipelined API requests run at
 * once (hr_http_defer_pipelined: a Redis engine gets them all in one
 * write), up to http.max_pipelined awaiting answers: the requests awaiting
 * answers form a list in request order whose oldest owns the deferral, and
 * one done before those ahead of it waits in the list, written right
 * after them - answers leave in request order. Any other request waits
 * until the list is empty (hr_http_defer). */
typedef struct apiece {
    hr_buf b;
    bool reserved;
} apiece;

typedef struct areply {
    int status;
    const char *error;  /* message when status != 200 (static text, or owned) */
    char *owned;        /* a formatted error, freed with the reply */
    apiece **parts;
    size_t nparts;
} areply;

typedef struct api_req {
    hr_conn *c;         /* NULL once the connection is gone */
    struct api_req *next; /* the connection's next request awaiting its answer (written after this one) */
    struct api_req *tail; /* owner of the deferral: the last request awaiting an answer */
    size_t waiting;       /* owner: requests awaiting answers, itself included */
    bool closing;         /* owner: one of them ends the connection */
    const char *extra;  /* extra header lines of an error answered before any method ran (static text) */
    bool close;
    bool batch;
    bool sealed;        /* every method ran */
    bool deferred;      /* this request owns the connection's deferral (the oldest awaiting an answer) */
    bool behind;        /* an older request of the connection awaits its answer: this one is written after it */
    bool done;          /* behind, and its answer is ready */
    size_t pending;     /* engine answers awaited */
    size_t history_bytes; /* history pages built for this request (channels.reply_budget) */
    areply *replies;    /* &one for a single method */
    size_t n;
    areply one;
} api_req;

typedef struct api_ctx {
    hr_worker *w;
    const hr_transport_opts *opt;
    hr_engine *engine;
    api_req *rq;
    areply *r;
} api_ctx;

/* An engine call in flight for a request. */
typedef struct aop {
    api_req *rq;
    areply *r;
    apiece *pc;
    bool stats;
    size_t page;         /* history: most publications in the reply */
    const hr_ops_opts *opts; /* history: the page and budget options */
    const char *self_id; /* info: this node's id (skipped in the engine's list) */
    char *pattern;       /* channels: the filter (owned) */
    hr_hub *hub;         /* channels: where this node's subscribers are counted */
    size_t plen;
} aop;

static int fail_r(areply *r, int status, const char *msg)
{
    r->status = status;
    r->error = msg;
    return status;
}

static int fail(api_ctx *x, int status, const char *msg) { return fail_r(x->r, status, msg); }

/* An operation's refusal (ops.h) as an HTTP status with the detail (copied:
 * the reply is written after later operations of a batch). */
static int fail_op(api_ctx *x, hr_op_result res)
{
    hr_free(x->r->owned);
    x->r->owned = hr_strdup(res.detail ? res.detail : hr_op_rc_name(res.rc));
    return fail(x, hr_op_http_status(res.rc), x->r->owned);
}

static apiece *add_piece(areply *r, bool reserved)
{
    apiece *pc = hr_calloc(1, sizeof(*pc));
    pc->reserved = reserved;
    r->parts = hr_realloc(r->parts, (r->nparts + 1) * sizeof(*r->parts));
    r->parts[r->nparts++] = pc;
    return pc;
}

/* Where a method's synchronous text goes. */
static hr_buf *out_of(areply *r)
{
    if (!r->nparts || r->parts[r->nparts - 1]->reserved) add_piece(r, false);
    return &r->parts[r->nparts - 1]->b;
}
#define OUT(x) out_of((x)->r)

static aop *aop_new(api_ctx *x)
{
    aop *a = hr_calloc(1, sizeof(*a));
    a->rq = x->rq;
    a->r = x->r;
    a->pc = add_piece(x->r, true);
    x->rq->pending++;
    return a;
}

static void areq_finish(api_req *rq);

/* a's answer is in its piece (or its reply failed). */
static void aop_done(aop *a)
{
    api_req *rq = a->rq;
    hr_free(a);
    rq->pending--;
    areq_finish(rq);
}

/* The server API as the operations' actor: a trusted backend (no
 * permissions, no client rates; names, namespaces, sizes and keys apply). */
static hr_actor actor_of(api_ctx *x)
{
    return (hr_actor){.kind = HR_ACTOR_SERVER, .opts = &x->w->proto->ops, .wh = x->w->hub, .engine = x->engine};
}

/* params.channel as a string (the operation checks the name). */
static int get_channel(api_ctx *x, json_t *params, const char *key, const char **ch, size_t *len)
{
    json_t *v = json_object_get(params, key);
    if (!json_is_string(v)) return fail(x, 400, "channel must be a string");
    *ch = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* The engine call of an accepted operation answers a; a refused one
 * answers the command with its status, and a goes. */
static int op_done(api_ctx *x, aop *a, hr_op_result res)
{
    if (res.rc) {
        fail_op(x, res);
        aop_done(a);
    }
    return x->r->status == 200 ? 0 : x->r->status;
}

static void append_pub(hr_buf *b, const hr_pub *p)
{
    hr_buf_printf(b, "{\"offset\":%llu,\"data\":", (unsigned long long)p->offset);
    hr_buf_append(b, p->data, p->data_len);
    hr_buf_append(b, "}", 1);
}

/* ---- methods ------------------------------------------------------------------ */

static void on_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    aop *a = ud;
    if (err == HR_ERR_STORAGE) fail_r(a->r, 507, "insufficient storage");
    else if (err) fail_r(a->r, 503, "engine unavailable: the publication was not accepted, retry");
    else {
        hr_buf *b = &a->pc->b; /* {"offset":N,"epoch":"E"} */
        hr_buf_append_str(b, "{\"offset\":");
        hr_buf_append_u64(b, offset);
        hr_buf_append_str(b, ",\"epoch\":\"");
        hr_buf_append_str(b, epoch);
        hr_buf_append(b, "\"}", 2);
    }
    aop_done(a);
}

static int publish_one(api_ctx *x, const char *ch, size_t clen, const char *data, size_t dlen, const char *key,
                       size_t klen)
{
    hr_actor ac = actor_of(x);
    aop *a = aop_new(x);
    return op_done(x, a, hr_op_publish(&ac, ch, clen, data, dlen, key, klen, on_published, NULL, a));
}

static char *dump_data(api_ctx *x, json_t *params, size_t *len)
{
    json_t *data = json_object_get(params, "data");
    if (!data) {
        fail(x, 400, "data is required");
        return NULL;
    }
    return hr_json_dumps(data, len);
}

/* params.idempotency_key: absent (NULL, 0) or a string (its length is the
 * publish operation's rule). */
static int get_idem_key(api_ctx *x, json_t *params, const char **key, size_t *len)
{
    json_t *v = json_object_get(params, "idempotency_key");
    *key = NULL;
    *len = 0;
    if (!v) return 0;
    if (!json_is_string(v)) return fail(x, 400, "idempotency_key must be a string of 1 to 128 bytes");
    *key = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int m_publish(api_ctx *x, json_t *params)
{
    const char *ch, *key;
    size_t clen, dlen, klen;
    if (get_channel(x, params, "channel", &ch, &clen)) return x->r->status;
    if (get_idem_key(x, params, &key, &klen)) return x->r->status;
    char *data = dump_data(x, params, &dlen);
    if (!data) return x->r->status;
    publish_one(x, ch, clen, data, dlen, key, klen);
    free(data);
    return x->r->status == 200 ? 0 : x->r->status;
}

/* A member that is a string with no escape: its bytes are its value. */
static bool plain_string(const hr_json_member *m, const char **s, size_t *n)
{
    if (!m->value || m->len < 2 || m->value[0] != '"' || memchr(m->value, '\\', m->len)) return false;
    *s = m->value + 1;
    *n = m->len - 2;
    return true;
}

/* The members of a publish body in canonical form but for whitespace
 * between tokens (core/json.h), read as sent: what json_loadb and m_publish
 * would take from it (the data's dump is its span byte for byte, or that
 * span without its whitespace, in p->owned; strings without escapes are
 * their bytes). False: the body goes the long way (parse, then m_publish),
 * which also words every refusal. */
typedef struct pub_args {
    const char *ch, *data, *key;
    size_t clen, dlen, klen;
    char *owned; /* the compacted data, freed by the caller */
} pub_args;

static bool publish_as_sent(const uint8_t *body, size_t len, pub_args *p)
{
    hr_json_member m[] = {{.key = "channel"}, {.key = "data"}, {.key = "idempotency_key"}};
    *p = (pub_args){0};
    const char *b = (const char *)body; /* compact (most clients), else spaced (Python's json.dumps) */
    if (!(hr_json_canonical_members(b, len, m, HR_ARRAY_LEN(m)) || hr_json_compact_members(b, len, m, HR_ARRAY_LEN(m))) ||
        !m[1].value ||
        !plain_string(&m[0], &p->ch, &p->clen) || (m[2].value && !plain_string(&m[2], &p->key, &p->klen)))
        return false;
    p->data = m[1].value;
    p->dlen = m[1].len;
    if (m[1].spaced) {
        p->owned = hr_malloc(m[1].len);
        p->dlen = hr_json_compact(m[1].value, m[1].len, p->owned);
        p->data = p->owned;
    }
    return true;
}

static int m_broadcast(api_ctx *x, json_t *params)
{
    json_t *chans = json_object_get(params, "channels");
    if (!json_is_array(chans) || json_array_size(chans) == 0) return fail(x, 400, "channels must be a non-empty array");
    if (json_array_size(chans) > (size_t)x->opt->api_max_broadcast_channels)
        return fail(x, 400, "too many channels in one broadcast (api.max_broadcast_channels)");
    size_t dlen, klen;
    const char *key;
    if (get_idem_key(x, params, &key, &klen)) return x->r->status;
    char *data = dump_data(x, params, &dlen);
    if (!data) return x->r->status;
    /* check all first (the publish operation's rules): a broadcast is all or nothing */
    hr_actor ac = actor_of(x);
    size_t i;
    json_t *v;
    json_array_foreach(chans, i, v) {
        hr_chan_policy pol;
        if (!json_is_string(v)) {
            free(data);
            return fail(x, 400, "every channel must be a valid channel name");
        }
        hr_op_result res =
            hr_op_may_publish(&ac, json_string_value(v), json_string_length(v), dlen, key, klen, &pol);
        if (res.rc) {
            free(data);
            return fail_op(x, res);
        }
    }
    hr_buf_append_str(OUT(x), "{\"responses\":[");
    json_array_foreach(chans, i, v) {
        if (i) hr_buf_append(OUT(x), ",", 1);
        publish_one(x, json_string_value(v), json_string_length(v), data, dlen, key, klen);
    }
    hr_buf_append_str(OUT(x), "]}");
    free(data);
    return x->r->status == 200 ? 0 : x->r->status;
}

static void on_history(void *ud, int err, const hr_history *h)
{
    aop *a = ud;
    if (err) {
        fail_r(a->r, 503, "engine unavailable");
        aop_done(a);
        return;
    }
    /* a page: at most a->page publications and channels.max_reply_size
     * bytes, and what the request's reply budget has left (a batch of
     * history commands), sized before it is built */
    size_t cap = (size_t)a->opts->max_reply_size, budget = (size_t)a->opts->reply_budget;
    size_t left = budget > a->rq->history_bytes ? budget - a->rq->history_bytes : 0;
    bool whole = left >= cap || a->rq->history_bytes == 0;
    hr_history page = *h;
    bool more = page.n > a->page;
    if (more) page.n = a->page;
    size_t n = hr_history_fit(&page, cap < left ? cap : left, whole, NULL);
    if (page.n && !n) {
        fail_r(a->r, 429, "reply budget of this request exhausted (channels.reply_budget): ask for the rest in "
                          "another request");
        aop_done(a);
        return;
    }
    more = more || n < page.n;
    hr_buf *b = &a->pc->b;
    hr_buf_printf(b, "{\"epoch\":\"%s\",\"offset\":%llu,\"publications\":[", h->epoch, (unsigned long long)h->offset);
    for (size_t i = 0; i < n; i++) {
        if (i) hr_buf_append(b, ",", 1);
        append_pub(b, h->pubs[i]);
    }
    /* next: the cursor of the following page (since forward, before reverse) */
    if (more)
        hr_buf_printf(b, "],\"more\":true,\"next\":{\"offset\":%llu,\"epoch\":\"%s\"}}",
                      (unsigned long long)h->pubs[n - 1]->offset, h->epoch);
    else
        hr_buf_append(b, "]}", 2);
    a->rq->history_bytes += b->len;
    aop_done(a);
}

/* An optional history position {"offset": N, "epoch": "..."} named key:
 * -1 when present but malformed. */
static int take_cursor(json_t *params, const char *key, bool *has, uint64_t *offset, const char **epoch)
{
    json_t *v = json_object_get(params, key);
    if (!v) return 0;
    json_t *off = json_object_get(v, "offset"), *ep = json_object_get(v, "epoch");
    if (!json_is_object(v) || !json_is_integer(off) || json_integer_value(off) < 0 || (ep && !json_is_string(ep)))
        return -1;
    *has = true;
    *offset = (uint64_t)json_integer_value(off);
    *epoch = ep ? json_string_value(ep) : NULL;
    return 0;
}

static int m_history(api_ctx *x, json_t *params)
{
    const char *ch;
    size_t clen;
    if (get_channel(x, params, "channel", &ch, &clen)) return x->r->status;
    hr_history_query q = {.limit = -1};
    json_t *v;
    if ((v = json_object_get(params, "limit"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) return fail(x, 400, "limit must be a non-negative integer");
        q.limit = json_integer_value(v);
    }
    if ((v = json_object_get(params, "reverse"))) {
        if (!json_is_boolean(v)) return fail(x, 400, "reverse must be true or false");
        q.reverse = json_is_true(v);
    }
    if (take_cursor(params, "since", &q.has_since, &q.since_offset, &q.since_epoch))
        return fail(x, 400, "since must be {\"offset\": N, \"epoch\": \"...\"} with N >= 0");
    if (take_cursor(params, "before", &q.has_before, &q.before_offset, &q.before_epoch))
        return fail(x, 400, "before must be {\"offset\": N, \"epoch\": \"...\"} with N >= 0");
    if ((v = json_object_get(params, "since_time"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return fail(x, 400, "since_time must be a non-negative integer (unix milliseconds)");
        q.has_since_time = true;
        q.since_time_ms = (uint64_t)json_integer_value(v);
    }
    size_t page = (size_t)x->w->proto->ops.history_max_limit;
    if (q.limit >= 0 && (uint64_t)q.limit < page) page = (size_t)q.limit;
    q.limit = page ? (int64_t)page + 1 : 0; /* one more: tells whether there is more */
    aop *a = aop_new(x);
    a->page = page;
    a->opts = &x->w->proto->ops;
    hr_actor ac = actor_of(x);
    return op_done(x, a, hr_op_history(&ac, ch, clen, &q, on_history, a));
}

static void on_done(void *ud, int err)
{
    aop *a = ud;
    if (err) fail_r(a->r, 503, "engine unavailable");
    else hr_buf_append(&a->pc->b, "{}", 2);
    aop_done(a);
}

static int m_history_remove(api_ctx *x, json_t *params)
{
    const char *ch;
    size_t clen;
    if (get_channel(x, params, "channel", &ch, &clen)) return x->r->status;
    hr_actor ac = actor_of(x);
    aop *a = aop_new(x);
    return op_done(x, a, hr_op_history_remove(&ac, ch, clen, on_done, a));
}

static void on_presence(void *ud, int err, const hr_presence *p)
{
    aop *a = ud;
    hr_buf *b = &a->pc->b;
    if (err) {
        fail_r(a->r, 503, "engine unavailable");
        aop_done(a);
        return;
    }
    if (a->stats) {
        hr_buf_printf(b, "{\"num_clients\":%zu,\"num_users\":%zu}", p->n, p->users);
        aop_done(a);
        return;
    }
    hr_buf_append_str(b, "{\"clients\":{");
    for (size_t i = 0; i < p->n; i++) {
        if (i) hr_buf_append(b, ",", 1);
        hr_json_append_string(b, p->entries[i].client, strlen(p->entries[i].client));
        hr_buf_append_str(b, ":{\"client\":");
        hr_json_append_string(b, p->entries[i].client, strlen(p->entries[i].client));
        hr_buf_append_str(b, ",\"user\":");
        hr_json_append_string(b, p->entries[i].user, strlen(p->entries[i].user));
        if (p->entries[i].info) hr_buf_printf(b, ",\"info\":%s", p->entries[i].info);
        hr_buf_append(b, "}", 1);
    }
    hr_buf_append_str(b, "}}");
    aop_done(a);
}

static int presence_common(api_ctx *x, json_t *params, bool stats)
{
    const char *ch;
    size_t clen;
    if (get_channel(x, params, "channel", &ch, &clen)) return x->r->status;
    hr_actor ac = actor_of(x);
    aop *a = aop_new(x);
    a->stats = stats;
    return op_done(x, a, hr_op_presence(&ac, ch, clen, on_presence, a));
}

static int m_presence(api_ctx *x, json_t *params) { return presence_common(x, params, false); }
static int m_presence_stats(api_ctx *x, json_t *params) { return presence_common(x, params, true); }

typedef struct chan_ud {
    api_ctx *x;
    const char *pattern;
    size_t plen;
    size_t n;
} chan_ud;

static void each_channel(void *ud, const char *name, size_t len, uint64_t offset)
{
    chan_ud *u = ud;
    if (u->pattern && !hr_chan_match(u->pattern, u->plen, name, len)) return;
    if (u->n++) hr_buf_append(OUT(u->x), ",", 1);
    hr_json_append_string(OUT(u->x), name, len);
    hr_buf_printf(OUT(u->x), ":{\"offset\":%llu,\"subscribers\":%llu}", (unsigned long long)offset,
                  (unsigned long long)hr_hub_subscribers(u->x->w->sh->hub, name, len));
}

/* An engine that lists its channels later (Redis). */
static void on_channels(void *ud, int err, const char *const *names, const uint64_t *offsets, size_t n)
{
    aop *a = ud;
    if (err) {
        fail_r(a->r, 503, "engine unavailable");
    } else {
        hr_buf *b = &a->pc->b;
        hr_buf_append_str(b, "{\"channels\":{");
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(names[i]);
            if (a->pattern && !hr_chan_match(a->pattern, a->plen, names[i], len)) continue;
            if (k++) hr_buf_append(b, ",", 1);
            hr_json_append_string(b, names[i], len);
            hr_buf_printf(b, ":{\"offset\":%llu,\"subscribers\":%llu}", (unsigned long long)offsets[i],
                          (unsigned long long)hr_hub_subscribers(a->hub, names[i], len));
        }
        hr_buf_append_str(b, "}}");
    }
    hr_free(a->pattern);
    aop_done(a);
}

static int m_channels(api_ctx *x, json_t *params)
{
    chan_ud u = {x, NULL, 0, 0};
    json_t *p = json_object_get(params, "pattern");
    if (p) {
        if (!json_is_string(p)) return fail(x, 400, "pattern must be a string");
        hr_actor ac = actor_of(x);
        hr_op_result res = hr_op_may_list_channels(&ac, json_string_value(p), json_string_length(p));
        if (res.rc) return fail_op(x, res);
        u.pattern = json_string_value(p);
        u.plen = json_string_length(p);
    }
    if (x->engine->vt->channels_async) {
        aop *a = aop_new(x);
        a->pattern = u.pattern ? hr_strndup(u.pattern, u.plen) : NULL;
        a->plen = u.plen;
        a->hub = x->w->sh->hub;
        x->engine->vt->channels_async(x->engine, on_channels, a);
        return 0;
    }
    hr_buf_append_str(OUT(x), "{\"channels\":{");
    x->engine->vt->channels(x->engine, each_channel, &u);
    hr_buf_append_str(OUT(x), "}}");
    return 0;
}

/* The engine's node list (a JSON array of announcements): every node but this one. */
static void on_nodes(void *ud, int err, const char *json, size_t len)
{
    aop *a = ud;
    if (err) { /* this node is still listed; the others are unknown while the engine is down */
        aop_done(a);
        return;
    }
    json_t *arr = json_loadb(json, len, 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *id = json_string_value(json_object_get(v, "id"));
        if (!json_is_object(v) || (id && a->self_id && strcmp(id, a->self_id) == 0)) continue;
        size_t n;
        char *txt = hr_json_dumps(v, &n);
        hr_buf_append(&a->pc->b, ",", 1);
        hr_buf_append(&a->pc->b, txt, n);
        free(txt);
    }
    json_decref(arr);
    aop_done(a);
}

/* The backend proxy hooks' counters over the workers ("proxy", when enabled). */
static void info_proxy(api_ctx *x)
{
    hr_proxy_totals t;
    if (!hr_metrics_proxy_totals(x->w, &t)) return;
    hr_buf_printf(OUT(x), ",\"proxy\":{\"calls\":%llu,\"inflight\":%llu,\"failures\":{", (unsigned long long)t.calls,
                  (unsigned long long)t.inflight);
    for (int f = 1; f < HR_PROXY_F_COUNT; f++)
        hr_buf_printf(OUT(x), "%s\"%s\":%llu", f > 1 ? "," : "", hr_proxy_fail_name((hr_proxy_fail)f),
                      (unsigned long long)t.failures[f]);
    hr_buf_append_str(OUT(x), "}}");
}

/* The webhook sender's counters (docs/api.md), when webhooks are on. */
static void info_webhook(hr_buf *b, hr_webhook *wh)
{
    if (!wh) return;
    hr_webhook_stats st;
    hr_webhook_get_stats(wh, &st);
    hr_buf_printf(b, ",\"webhook\":{\"queued\":%llu,\"queued_bytes\":%llu,\"sent\":%llu,\"failed_attempts\":%llu,"
                  "\"dropped\":%llu,\"rejected\":%llu,\"last_error\":", (unsigned long long)st.queued,
                  (unsigned long long)st.queued_bytes, (unsigned long long)st.sent,
                  (unsigned long long)st.failed_attempts, (unsigned long long)st.dropped,
                  (unsigned long long)st.rejected);
    hr_json_append_string(b, st.last_error, strlen(st.last_error));
    hr_buf_append(b, "}", 1);
}

static int m_info(api_ctx *x, json_t *params)
{
    HR_UNUSED(params);
    hr_shared *sh = x->w->sh;
    uint64_t conns = 0, ws = 0, reqs = 0, in = 0, out = 0;
    for (int i = 0; i < sh->nworkers; i++) {
        hr_worker_stats *st = &sh->workers[i].stats;
        conns += atomic_load(&st->connections);
        ws += atomic_load(&st->websockets);
        reqs += atomic_load(&st->http_requests);
        in += atomic_load(&st->ws_messages_in);
        out += atomic_load(&st->ws_messages_out);
    }
    hr_buf_printf(OUT(x),
                  "{\"nodes\":[{\"name\":\"%s\",\"version\":\"" HERALD_VERSION "\",\"uptime_ms\":%llu,"
                  "\"workers\":%d,\"connections\":%llu,\"websockets\":%llu,\"http_requests\":%llu,"
                  "\"messages_in\":%llu,\"messages_out\":%llu,\"engine\":\"%s\"",
                  sh->bound, (unsigned long long)(hr_now_ms() - sh->started_ms), sh->nworkers,
                  (unsigned long long)conns, (unsigned long long)ws, (unsigned long long)reqs,
                  (unsigned long long)in, (unsigned long long)out, x->opt->engine);
    if (x->engine->node_id) hr_buf_printf(OUT(x), ",\"id\":\"%s\"", x->engine->node_id);
    if (x->engine->vt->stats) {
        hr_engine_stats es = {0};
        x->engine->vt->stats(x->engine, &es);
        hr_buf_printf(OUT(x), ",\"channels\":%llu,\"history_bytes\":%llu,\"history_evictions\":%llu,\"disk_bytes\":%llu",
                      (unsigned long long)es.channels, (unsigned long long)es.history_bytes,
                      (unsigned long long)es.history_evictions, (unsigned long long)es.disk_bytes);
    }
    info_proxy(x);
    /* channel occupancy transitions this node reported (cluster-wide ones with Redis) */
    hr_buf_printf(OUT(x), ",\"occupancy\":{\"occupied\":%llu,\"vacated\":%llu}",
                  (unsigned long long)atomic_load(&sh->hub->occupied),
                  (unsigned long long)atomic_load(&sh->hub->vacated));
    info_webhook(OUT(x), x->w->proto->ops.webhook);
    hr_buf_append(OUT(x), "}", 1);
    if (x->engine->cluster) { /* the other nodes, as they announce themselves */
        aop *a = aop_new(x);
        a->self_id = x->engine->node_id;
        x->engine->cluster->nodes(x->engine, on_nodes, a);
    }
    hr_buf_append_str(OUT(x), "]}");
    return 0;
}

/* params.user, params.client and params.reason as strings (absent: "",
 * "", dflt); their bounds are the operation's rules (hr_op_target). */
static int get_target(api_ctx *x, json_t *params, const char *dflt, hr_op_target *t)
{
    json_t *u = json_object_get(params, "user"), *c = json_object_get(params, "client");
    json_t *r = json_object_get(params, "reason");
    if ((u && !json_is_string(u)) || (c && !json_is_string(c))) return fail(x, 400, "user and client must be strings");
    if (r && !json_is_string(r)) return fail(x, 400, "reason must be a string of at most 120 bytes");
    *t = (hr_op_target){u ? json_string_value(u) : "", c ? json_string_value(c) : "", r ? json_string_value(r) : dflt};
    return 0;
}

static int m_unsubscribe(api_ctx *x, json_t *params)
{
    const char *ch;
    size_t clen;
    hr_op_target t;
    if (get_channel(x, params, "channel", &ch, &clen) || get_target(x, params, "unsubscribed by the server", &t))
        return x->r->status;
    hr_actor ac = actor_of(x);
    hr_op_result res = hr_op_may_unsubscribe(&ac, ch, clen, &t);
    if (res.rc) return fail_op(x, res);
    hr_hub_unsubscribe_clients(x->w->sh->hub, ch, clen, t.user, t.client, HR_UNSUB_SERVER, t.reason);
    hr_buf_append(OUT(x), "{}", 2);
    return 0;
}

static int m_disconnect(api_ctx *x, json_t *params)
{
    hr_op_target t;
    if (get_target(x, params, "disconnected by the server", &t)) return x->r->status;
    json_t *c = json_object_get(params, "code");
    if (c && !json_is_integer(c)) return fail(x, 400, "code must be an integer from 3000 to 4999");
    json_int_t code = c ? json_integer_value(c) : HR_DISC_SERVER;
    hr_actor ac = actor_of(x);
    hr_op_result res = hr_op_may_disconnect(&ac, &t, code < 0 || code > 65535 ? 0 : (int)code);
    if (res.rc) return fail_op(x, res);
    hr_hub_disconnect_clients(x->w->sh->hub, t.user, t.client, (int)code, t.reason);
    hr_buf_append(OUT(x), "{}", 2);
    return 0;
}

typedef int (*api_method)(api_ctx *x, json_t *params);
static const struct {
    const char *name;
    api_method fn;
} methods[] = {
    {"publish", m_publish},   {"broadcast", m_broadcast},         {"history", m_history},
    {"history_remove", m_history_remove}, {"presence", m_presence}, {"presence_stats", m_presence_stats},
    {"channels", m_channels}, {"info", m_info}, {"unsubscribe", m_unsubscribe}, {"disconnect", m_disconnect},
};

static api_method find_method(const char *name, size_t len)
{
    for (size_t i = 0; i < HR_ARRAY_LEN(methods); i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0) return methods[i].fn;
    return NULL;
}

/* ---- requests -------------------------------------------------------------------- */

static void areq_free(api_req *rq)
{
    for (size_t i = 0; i < rq->n; i++) {
        areply *r = &rq->replies[i];
        for (size_t k = 0; k < r->nparts; k++) {
            hr_buf_free(&r->parts[k]->b);
            hr_free(r->parts[k]);
        }
        hr_free(r->parts);
        hr_free(r->owned);
    }
    if (rq->replies != &rq->one) hr_free(rq->replies);
    hr_free(rq);
}

static void append_parts(hr_buf *b, const areply *r)
{
    for (size_t k = 0; k < r->nparts; k++) hr_buf_append(b, r->parts[k]->b.data, r->parts[k]->b.len);
}

static void respond_json(hr_conn *c, const hr_buf *b, bool close)
{
    hr_http_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", b->data, b->len, false, close);
}

/* The request's answer, queued on its connection. */
static void areq_write(api_req *rq)
{
    hr_conn *c = rq->c;
    if (!rq->batch) {
        areply *r = &rq->replies[0];
        if (r->status != 200) {
            hr_http_respond_error(c, r->status, rq->extra, r->error, rq->close);
        } else if (r->nparts == 1) { /* one piece: sent as it is */
            respond_json(c, &r->parts[0]->b, rq->close);
        } else {
            hr_buf out = HR_BUF_INIT;
            append_parts(&out, r);
            respond_json(c, &out, rq->close);
            hr_buf_free(&out);
        }
        return;
    }
    hr_buf out = HR_BUF_INIT;
    hr_buf_append_str(&out, "{\"replies\":[");
    for (size_t i = 0; i < rq->n; i++) {
        areply *r = &rq->replies[i];
        if (i) hr_buf_append(&out, ",", 1);
        if (r->status != 200) {
            hr_buf_append_str(&out, "{\"error\":");
            hr_json_append_string(&out, r->error, strlen(r->error));
            hr_buf_printf(&out, ",\"status\":%d}", r->status);
        } else {
            hr_buf_append_str(&out, "{\"result\":");
            append_parts(&out, r);
            hr_buf_append(&out, "}", 1);
        }
    }
    hr_buf_append_str(&out, "]}");
    respond_json(c, &out, rq->close);
    hr_buf_free(&out);
}

static void areq_cancel(void *owner);

/* rq (awaiting its answer, first of `waiting` up to tail) now owns c's
 * deferral: further pipelined API requests may run unless one awaiting
 * ends the connection or http.max_pipelined of them await answers. */
static void areq_hold(hr_conn *c, api_req *rq, api_req *tail, size_t waiting, bool closing)
{
    rq->deferred = true;
    rq->behind = false;
    rq->tail = tail;
    rq->waiting = waiting;
    rq->closing = closing;
    if (closing || waiting >= (size_t)c->w->opts->http_max_pipelined) hr_http_defer(c, rq, areq_cancel);
    else hr_http_defer_pipelined(c, rq, areq_cancel);
}

/* Answer once every method ran and no engine answer is awaited; the answers
 * of the requests behind it that are ready follow. */
static void areq_finish(api_req *rq)
{
    if (!rq->sealed || rq->pending) return;
    hr_conn *c = rq->c;
    if (c && rq->behind) { /* written after the older ones */
        rq->done = true;
        return;
    }
    if (c) areq_write(rq);
    bool owner = c && rq->deferred;
    api_req *next = rq->next, *tail = rq->tail;
    size_t waiting = rq->waiting - 1;
    bool closing = rq->closing;
    areq_free(rq);
    if (!owner) return;
    while (next && next->done && !(c->flags & HR_CONN_CLOSED)) {
        api_req *nx = next->next;
        areq_write(next);
        areq_free(next);
        next = nx;
        waiting--;
    }
    if (next && !(c->flags & HR_CONN_CLOSED)) {
        areq_hold(c, next, tail, waiting, closing);
        return;
    }
    if (next) areq_cancel(next);
    hr_http_resume(c);
}

/* The connection is gone before the answers: the requests just end (those
 * ready now, the others when their engine answers come). */
static void areq_cancel(void *owner)
{
    for (api_req *rq = owner, *nx; rq; rq = nx) {
        nx = rq->next;
        rq->c = NULL;
        rq->next = NULL;
        if (rq->done) areq_free(rq);
    }
}

/* A request of c: behind the requests awaiting answers, if any. */
static api_req *areq_new(hr_conn *c, bool close)
{
    api_req *rq = hr_calloc(1, sizeof(*rq));
    rq->c = c;
    rq->close = close;
    api_req *head = hr_http_deferred_by(c, areq_cancel);
    if (!head) return rq;
    head->tail->next = rq;
    head->tail = rq;
    head->waiting++;
    head->closing |= close;
    rq->behind = true;
    /* no more requests after one that ends the connection, nor above the bound */
    if (close || head->waiting >= (size_t)c->w->opts->http_max_pipelined) hr_http_defer(c, head, areq_cancel);
    return rq;
}

/* An error decided before any method ran: answered now, or after the
 * connection's requests awaiting answers. */
static void answer_early(hr_conn *c, int status, const char *extra, const char *message, bool close)
{
    if (!hr_http_deferred_by(c, areq_cancel)) {
        hr_http_respond_error(c, status, extra, message, close);
        return;
    }
    api_req *rq = areq_new(c, close);
    rq->extra = extra;
    rq->n = 1;
    rq->replies = &rq->one;
    rq->replies[0].owned = hr_strdup(message);
    fail_r(&rq->replies[0], status, rq->replies[0].owned);
    rq->sealed = true;
    areq_finish(rq);
}

/* ---- HTTP glue ------------------------------------------------------------------- */
static bool authorized(const hr_shared *sh, const hr_http_request *req)
{
    const hr_http_header *h = hr_http_find_header(req, "authorization");
    const char *key = NULL;
    size_t klen = 0;
    if (h && h->value_len > 7 && strncasecmp(h->value, "apikey ", 7) == 0) {
        key = h->value + 7;
        klen = h->value_len - 7;
    } else if ((h = hr_http_find_header(req, "x-api-key"))) {
        key = h->value;
        klen = h->value_len;
    }
    size_t want = strlen(sh->api_key);
    return key && want && hr_ct_equal(key, klen, sh->api_key, want);
}

void hr_api_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close)
{
    hr_worker *w = c->w;
    const char *name = req->path + 5; /* after "/api/" */
    size_t nlen = req->path_len - 5;
    bool batch = nlen == 5 && memcmp(name, "batch", 5) == 0;
    api_method fn = batch ? NULL : find_method(name, nlen);
    if (!fn && !batch) {
        answer_early(c, 404, NULL, "unknown API method", close);
        return;
    }
    if (req->method_len != 4 || memcmp(req->method, "POST", 4) != 0) {
        answer_early(c, 405, "Allow: POST\r\n", "API methods take POST", close);
        return;
    }
    if (!authorized(w->sh, req)) {
        static const char msg[] = "missing or wrong API key (Authorization: apikey <key>)";
        hr_worker_refused(w, HR_REFUSE_TOKEN, c, req, NULL, 401, msg);
        answer_early(c, 401, "WWW-Authenticate: apikey\r\n", msg, close);
        return;
    }
    hr_api_call(c, name, nlen, body, len, close);
}

/* A request of one method (not a batch): its reply, held while the method runs. */
static api_req *areq_single(hr_conn *c, bool close, api_ctx *x)
{
    api_req *rq = areq_new(c, close);
    rq->pending = 1;
    rq->n = 1;
    rq->replies = &rq->one;
    rq->replies[0].status = 200;
    *x = (api_ctx){c->w, c->w->opts, c->w->sh->hub->engine, rq, &rq->replies[0]};
    return rq;
}

/* Every method of rq ran: answered now, or when the engine answers. */
static void areq_seal(hr_conn *c, api_req *rq)
{
    rq->sealed = true;
    rq->pending--;
    if (rq->pending) {
        if (!rq->behind) areq_hold(c, rq, rq, 1, rq->close); /* an engine answers later */
        return;
    }
    areq_finish(rq);
}

static void run_batch(api_ctx *x, json_t *cmds)
{
    api_req *rq = x->rq;
    rq->batch = true;
    rq->n = json_array_size(cmds);
    rq->replies = rq->n ? hr_calloc(rq->n, sizeof(areply)) : NULL;
    size_t i;
    json_t *cmd;
    json_array_foreach(cmds, i, cmd) {
        areply *r = &rq->replies[i];
        r->status = 200;
        json_t *m = json_object_get(cmd, "method"), *p = json_object_get(cmd, "params");
        api_method mf = json_is_string(m) ? find_method(json_string_value(m), json_string_length(m)) : NULL;
        if (!mf || !json_is_object(p)) {
            fail_r(r, mf ? 400 : 404, mf ? "params must be an object" : "unknown method");
            continue;
        }
        x->r = r;
        mf(x, p);
    }
}

void hr_api_call(hr_conn *c, const char *name, size_t nlen, const uint8_t *body, size_t len, bool close)
{
    hr_worker *w = c->w;
    bool batch = nlen == 5 && memcmp(name, "batch", 5) == 0;
    api_method fn = batch ? NULL : find_method(name, nlen);
    if (!fn && !batch) {
        answer_early(c, 404, NULL, "unknown API method", close);
        return;
    }
    api_ctx x;
    pub_args pa;
    if (fn == m_publish && publish_as_sent(body, len, &pa)) {
        api_req *rq = areq_single(c, close, &x);
        publish_one(&x, pa.ch, pa.clen, pa.data, pa.dlen, pa.key, pa.klen);
        hr_free(pa.owned);
        areq_seal(c, rq);
        return;
    }
    json_error_t jerr;
    json_t *params = len ? json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (!params || !json_is_object(params)) {
        char msg[300];
        if (params) snprintf(msg, sizeof(msg), "request body must be a JSON object");
        else snprintf(msg, sizeof(msg), "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        json_decref(params);
        answer_early(c, 400, NULL, msg, close);
        return;
    }
    json_t *cmds = batch ? json_object_get(params, "commands") : NULL;
    api_req *rq;
    if (batch && (!json_is_array(cmds) || json_array_size(cmds) > (size_t)w->opts->api_max_batch_commands)) {
        rq = areq_single(c, close, &x); /* the batch itself is refused */
        fail_r(x.r, 400,
               json_is_array(cmds) ? "too many commands in one batch (api.max_batch_commands)" : "commands must be an array");
    } else if (batch) {
        rq = areq_new(c, close);
        rq->pending = 1; /* held while the methods run */
        x = (api_ctx){w, w->opts, w->sh->hub->engine, rq, NULL};
        run_batch(&x, cmds);
    } else {
        rq = areq_single(c, close, &x);
        fn(&x, params);
    }
    json_decref(params);
    areq_seal(c, rq);
}

/* GET /ready: 200 while this node should get traffic; 503 with the reason
 * while draining (SIGTERM), while an engine shard has no connection, or
 * while some worker's loop lag within the last second is above
 * server.ready_max_loop_lag. */
void hr_api_ready(hr_conn *c, bool get, bool head, bool close)
{
    if (!get && !head) {
        hr_http_respond_error(c, 405, "Allow: GET, HEAD\r\n", "method not allowed", close);
        return;
    }
    hr_engine *e = c->w->sh->hub->engine;
    int64_t max_lag = c->w->opts->ready_max_loop_lag_ms;
    const char *why = c->w->draining ? "draining"
                      : e && e->vt->shards_down && e->vt->shards_down(e) > 0 ? "engine shard disconnected"
                      : max_lag > 0 && hr_metrics_recent_lag_ms(c->w) > (uint64_t)max_lag ? "loop lag"
                                                                                           : NULL;
    if (why) {
        hr_http_respond_error(c, 503, "Cache-Control: no-store\r\n", why, close);
        return;
    }
    static const char ok[] = "{\"status\":\"ready\"}";
    hr_http_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", ok, sizeof(ok) - 1, head, close);
}
