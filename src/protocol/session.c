/* session.c - native-protocol client sessions (see session.h).
 *
 * Every command of a frame is executed in order; the replies are collected
 * and sent as one payload (newline-delimited), so a frame of N commands
 * costs one write. Publications reach the session through the hub's
 * on_pub callback; the push payload is encoded once per worker
 * (hr_enc_cache) and handed to the transport as a shared buffer.
 *
 * Subscribe and recovery: the subscription is registered with the hub
 * before the engine is asked for the channel's position, so nothing
 * published in between is missed; publications that were already part of
 * the reply are skipped by offset when they later arrive from the inbox.
 *
 * Asynchronous engines (engine.h): a frame's replies are built as pieces;
 * a command waiting for the engine owns a reserved piece that its callback
 * fills. A frame is sent once every piece is filled, frames in arrival
 * order. While a subscribe is unanswered its subscription holds the
 * publications that reach it (sub->hold); when the frame with the reply
 * has been sent they follow, minus those at or below the position the
 * reply reported (already in it, or published before it).
 *
 * Reply budget (channels.reply_budget, docs/security.md): the replies a
 * session has queued plus those of its unsent frames stay under a budget.
 * A command whose reply can be large (history, presence, a recovering
 * subscribe) reserves room before the engine is asked - at most
 * channels.max_reply_size, at most what is left - and its answer is sized
 * from the publications' lengths before any of it is built: a history page
 * stops at the reservation (`more`), a reply that cannot fit is refused
 * with 111 (temporary). Once built, the reservation becomes the reply's
 * real size, released when its frame is handed to the transport (whose
 * queue then counts it). One frame can therefore never build more than the
 * budget, however many commands it holds. */
#include "protocol/session.h"
#include "backend/webhook.h"
#include "ops/ops.h"
#include "core/random.h"
#include "ops/limits.h"
#include "auth/auth.h"
#include "core/log.h"
#include "hub/channel_name.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The expiry of a connection token: allocated only for connections whose
 * token has exp, so others pay one NULL pointer. */
typedef struct exp_timer {
    hr_timer t;
    hr_session *s;
    int64_t exp;               /* wall clock, seconds */
    bool warned;               /* the refresh push was sent; next firing disconnects */
} exp_timer;

struct hr_session {
    hr_client client;          /* must stay first: the hub hands it back */
    const hr_proto_opts *opts;
    const hr_sink_vt *sink;
    void *t;
    bool connected;
    bool closing;
    bool loop_gone;            /* shutdown: the workers' loops are freed, publish nothing */
    hr_native_encoding enc;
    struct sframe *frames;     /* frames whose replies are not sent yet, oldest first */
    struct sframe *frames_tail;
    struct sreq *reqs;         /* engine calls awaiting an answer */
    hr_bucket pub_bucket;      /* limits.publishes_per_connection */
    hr_bucket chan_bucket;     /* limits.channels_per_connection */
    hr_bucket tok_bucket;      /* limits.token_verifications_per_connection */
    size_t budget;             /* channels.reply_budget for this transport */
    size_t reserved;           /* reply bytes held by unsent frames */
    uint32_t ip_key;           /* the client's address in the limits (0 = unknown) */
    char name[64];
    char *info;                /* connection token's info (compact JSON) or NULL */
    char *http_token;          /* token given by the HTTP transport, for connect */
    exp_timer *exp;            /* NULL when the token has no exp (or no token) */
    hr_webhook_conn *whc;      /* client_disconnected's state (NULL: not wanted, or not connected) */
};

/* One piece of a frame's replies: text, or a place an engine answer fills. */
typedef struct piece {
    hr_buf b;
    bool reserved;             /* filled by an engine callback (done or not) */
} piece;

/* One command's reply: result pieces, or an error. */
typedef struct creply {
    uint64_t id;
    int err;
    char *detail;
    piece **parts;
    size_t nparts;
} creply;

/* Most publications held for one subscription while its subscribe is
 * answered; past it the client is disconnected as a slow consumer (3008)
 * and recovers after reconnecting. */
#define HOLD_MAX 100000

/* A subscription held while its subscribe is answered (see the top). */
typedef struct shold {
    hr_sub *sub;               /* NULL once unsubscribed */
    hr_pub **pubs;
    size_t n, cap;
    uint64_t offset;           /* position in the reply: deliver only what is after */
} shold;

typedef struct sframe {
    struct sframe *next;
    creply *cmds;
    size_t n;
    size_t pending;            /* engine answers awaited */
    bool sealed;               /* every command executed */
    shold **holds;
    size_t nholds;
    int disc_code;             /* disconnect once this frame's replies are out */
    const char *disc_reason;
    size_t reserved;           /* its share of the session's reserved bytes */
} sframe;

/* An engine call in flight for a session (freed by its callback; the
 * session forgets it - s = NULL - if it goes first). */
typedef struct sreq {
    struct sreq *next, *prev;
    hr_session *s;
    sframe *f;
    creply *r;
    piece *pc;
    /* subscribe */
    shold *hold;
    bool want_recover;
    bool nested;               /* a subscription of connect: errors go in the piece */
    char *channel;
    size_t len;
    bool stats;                /* presence_stats */
    size_t resv;               /* reply bytes reserved for the answer */
    bool resv_whole;           /* resv is as large as it can ever be (retrying would not help) */
    size_t page;               /* history: most publications in the reply */
} sreq;

static hr_engine *engine_of(hr_session *s) { return s->client.wh->hub->engine; }

static hr_webhook *webhook_of(hr_session *s) { return s->opts->ops.webhook; }

static hr_webhook_who who_of(hr_session *s)
{
    return (hr_webhook_who){s->client.id, s->client.user, s->sink->transport};
}

/* The session ends the connection: the code and reason its
 * client_disconnected webhook reports. */
static void sink_disconnect(hr_session *s, int code, const char *reason, bool drop_queued)
{
    hr_webhook_closing(s->whc, code, reason);
    s->sink->disconnect(s->t, code, reason, drop_queued);
}

void hr_session_set_peer(hr_session *s, uint32_t ip_key) { s->ip_key = ip_key; }

/* The session as the operations' actor (ops.h): its user, subscriptions and buckets. */
static hr_actor actor_of(hr_session *s)
{
    return (hr_actor){.kind = HR_ACTOR_CLIENT, .opts = &s->opts->ops, .wh = s->client.wh, .engine = engine_of(s),
                      .user = s->client.user, .client = &s->client, .pub_bucket = &s->pub_bucket,
                      .chan_bucket = &s->chan_bucket, .tok_bucket = &s->tok_bucket, .ip_key = s->ip_key};
}

/* An operation's refusal as a native error code (detail in *detail). */
static int native_err(hr_op_result r, const char **detail)
{
    *detail = r.detail;
    return hr_op_native_code(r.rc);
}

/* ---- reply budget (see the top) ----------------------------------------------------- */

/* Smallest reservation worth making (a quarter of the budget if that is
 * smaller): below it the command is refused. */
#define RESV_MIN 4096

static const char budget_detail[] = "reply budget exhausted (channels.reply_budget): read the replies, then retry";

/* Reserve room in f for an engine answer of up to channels.max_reply_size:
 * false when the budget has less than RESV_MIN left. resv_whole: the
 * reservation is as large as this command can ever get (retrying later
 * would not help). */
static bool reserve(hr_session *s, sframe *f, sreq *q)
{
    size_t want = (size_t)s->opts->ops.max_reply_size;
    size_t used = s->sink->queued(s->t) + s->reserved;
    size_t left = used < s->budget ? s->budget - used : 0;
    if (!left || left < (RESV_MIN < s->budget / 4 ? RESV_MIN : s->budget / 4)) return false;
    q->resv = want < left ? want : left;
    q->resv_whole = q->resv == want || left == s->budget;
    s->reserved += q->resv;
    f->reserved += q->resv;
    return true;
}

/* The answer to q was built: it holds `used` bytes instead of the reservation. */
static void settle(sreq *q, size_t used)
{
    q->s->reserved = q->s->reserved - q->resv + used;
    q->f->reserved = q->f->reserved - q->resv + used;
    q->resv = used;
}

/* ---- frames and pieces -------------------------------------------------------- */

static piece *add_piece(creply *r, bool reserved)
{
    piece *pc = hr_calloc(1, sizeof(*pc));
    pc->reserved = reserved;
    r->parts = hr_realloc(r->parts, (r->nparts + 1) * sizeof(*r->parts));
    r->parts[r->nparts++] = pc;
    return pc;
}

/* Where the command's synchronous text goes: the last piece, unless that is reserved. */
static hr_buf *text(creply *r)
{
    if (!r->nparts || r->parts[r->nparts - 1]->reserved) add_piece(r, false);
    return &r->parts[r->nparts - 1]->b;
}

static void set_error(creply *r, int code, const char *detail)
{
    r->err = code;
    hr_free(r->detail);
    r->detail = detail ? hr_strdup(detail) : NULL;
}

static sreq *req_new(hr_session *s, sframe *f, creply *r)
{
    sreq *q = hr_calloc(1, sizeof(*q));
    q->s = s;
    q->f = f;
    q->r = r;
    q->pc = add_piece(r, true);
    f->pending++;
    q->next = s->reqs;
    if (s->reqs) s->reqs->prev = q;
    s->reqs = q;
    return q;
}

static void hold_free(shold *h)
{
    for (size_t i = 0; i < h->n; i++) hr_pub_unref(h->pubs[i]);
    hr_free(h->pubs);
    hr_free(h);
}

static void frame_free(sframe *f)
{
    for (size_t i = 0; i < f->n; i++) {
        creply *r = &f->cmds[i];
        for (size_t k = 0; k < r->nparts; k++) {
            hr_buf_free(&r->parts[k]->b);
            hr_free(r->parts[k]);
        }
        hr_free(r->parts);
        hr_free(r->detail);
    }
    hr_free(f->cmds);
    for (size_t i = 0; i < f->nholds; i++) {
        if (f->holds[i]->sub) f->holds[i]->sub->hold = NULL;
        hold_free(f->holds[i]);
    }
    hr_free(f->holds);
    hr_free(f);
}

static void send_payload(hr_session *s, const uint8_t *json, size_t len);
static void disconnect_now(hr_session *s, int code, const char *reason);
static void session_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache);

/* The held publications of a subscription whose reply is out. */
static void release_hold(hr_session *s, shold *h)
{
    hr_sub *sub = h->sub;
    if (!sub) return;
    sub->hold = NULL;
    h->sub = NULL;
    for (size_t i = 0; i < h->n && !s->closing; i++) {
        const hr_pub *p = h->pubs[i];
        if (p->kind == HR_PUB_MESSAGE && p->offset <= h->offset) continue;
        hr_enc_cache cache = {{0}};
        session_on_pub(&s->client, sub, p, &cache);
        for (int k = 0; k < HR_ENC_SLOTS; k++) hr_sbuf_unref(cache.slot[k]);
    }
    if (sub->offset < h->offset) sub->offset = h->offset;
}

/* Send every complete frame at the head of the queue, in order. */
static void pump(hr_session *s)
{
    while (s->frames && s->frames->sealed && s->frames->pending == 0) {
        sframe *f = s->frames;
        s->frames = f->next;
        if (!s->frames) s->frames_tail = NULL;
        s->reserved -= f->reserved; /* from now on the transport's queue counts it */
        if (!s->closing) {
            hr_buf out = HR_BUF_INIT, res = HR_BUF_INIT;
            hr_buf_reserve(&out, f->reserved + 64 * f->n); /* one allocation for the whole payload */
            for (size_t i = 0; i < f->n; i++) {
                creply *r = &f->cmds[i];
                if (out.len) hr_buf_append(&out, "\n", 1);
                if (r->err) {
                    hr_native_error(&out, r->id, r->err, r->detail);
                    continue;
                }
                const hr_buf *one = r->nparts == 1 ? &r->parts[0]->b : &res; /* a single piece: no copy */
                res.len = 0;
                for (size_t k = 0; k < r->nparts && one == &res; k++)
                    hr_buf_append(&res, r->parts[k]->b.data, r->parts[k]->b.len);
                hr_native_result(&out, r->id, one->len ? (const char *)one->data : NULL, one->len);
            }
            if (out.len) send_payload(s, out.data, out.len);
            hr_buf_free(&out);
            hr_buf_free(&res);
            for (size_t i = 0; i < f->nholds && !s->closing; i++) release_hold(s, f->holds[i]);
        }
        int code = s->closing ? 0 : f->disc_code;
        const char *reason = f->disc_reason;
        frame_free(f);
        if (code) { /* last: the transport may let go of s */
            disconnect_now(s, code, reason);
            return;
        }
    }
}

/* An engine answer arrived for q: true when its session is still there
 * (false: q was freed). */
static bool req_alive(sreq *q)
{
    if (q->s) return true;
    hr_free(q->channel);
    hr_free(q);
    return false;
}

/* q's answer is in its piece: forget q, send what is complete. */
static void req_done(sreq *q)
{
    hr_session *s = q->s;
    settle(q, q->pc->b.len);
    if (q->prev) q->prev->next = q->next;
    else s->reqs = q->next;
    if (q->next) q->next->prev = q->prev;
    q->f->pending--;
    hr_free(q->channel);
    hr_free(q);
    pump(s);
}

static void append_pub_json(hr_buf *b, const hr_pub *p)
{
    hr_buf_printf(b, "{\"offset\":%llu,\"data\":", (unsigned long long)p->offset);
    hr_buf_append(b, p->data, p->data_len);
    if (p->info) {
        hr_buf_append_str(b, ",\"info\":");
        hr_buf_append(b, p->info, p->info_len);
    }
    hr_buf_append(b, "}", 1);
}

/* ---- pushes ------------------------------------------------------------------ */

static void session_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    hr_session *s = (hr_session *)c;
    if (s->closing) return;
    if (sub && sub->hold) { /* its subscribe is not answered yet */
        shold *h = sub->hold;
        if (h->n >= HOLD_MAX) { /* the engine is far behind the publications: recover later */
            s->closing = true;
            hr_info("client %s: too many publications while subscribing, disconnecting (code %d)", c->id, HR_DISC_SLOW);
            sink_disconnect(s, HR_DISC_SLOW, "slow consumer: reconnect and recover", true);
            return;
        }
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 16;
            h->pubs = hr_realloc(h->pubs, h->cap * sizeof(*h->pubs));
        }
        h->pubs[h->n++] = hr_pub_ref((hr_pub *)pub);
        return;
    }
    if (s->sink->queued(s->t) > (size_t)s->opts->max_queued_bytes) {
        s->closing = true;
        hr_info("client %s: slow consumer, disconnecting (code %d)", c->id, HR_DISC_SLOW);
        sink_disconnect(s, HR_DISC_SLOW, "slow consumer: reconnect and recover", true);
        return;
    }
    if (!cache->slot[HR_ENC_NATIVE_JSON]) {
        hr_buf b = HR_BUF_INIT;
        if (pub->kind == HR_PUB_MESSAGE)
            hr_native_pub(&b, pub->channel, pub->channel_len, pub->offset, pub->data, pub->data_len, pub->info,
                          pub->info_len);
        else
            hr_native_join_leave(&b, pub->kind == HR_PUB_JOIN, pub->channel, pub->channel_len, pub->info,
                                 pub->info_len);
        cache->slot[HR_ENC_NATIVE_JSON] = hr_sbuf_new(b.data, b.len);
        hr_buf_free(&b);
    }
    if (s->enc == HR_NATIVE_MSGPACK) {
        if (!cache->slot[HR_ENC_NATIVE_MSGPACK]) {
            hr_sbuf *json = cache->slot[HR_ENC_NATIVE_JSON];
            hr_buf b = HR_BUF_INIT;
            if (hr_native_json_to_msgpack((const char *)json->data, json->len, &b)) {
                hr_buf_free(&b);
                hr_warn("client %s: cannot encode a push as MessagePack, disconnecting", c->id);
                s->closing = true;
                sink_disconnect(s, HR_DISC_ENCODING, "publication not representable in MessagePack", false);
                return;
            }
            cache->slot[HR_ENC_NATIVE_MSGPACK] = hr_sbuf_new(b.data, b.len);
            hr_buf_free(&b);
        }
        s->sink->send_shared(s->t, cache->slot[HR_ENC_NATIVE_MSGPACK], cache, HR_ENC_NATIVE_MSGPACK, true);
        return;
    }
    s->sink->send_shared(s->t, cache->slot[HR_ENC_NATIVE_JSON], cache, HR_ENC_NATIVE_JSON, false);
}

/* Send one payload of JSON lines (replies or a push) in the session's encoding. */
static void send_payload(hr_session *s, const uint8_t *json, size_t len)
{
    if (s->enc != HR_NATIVE_MSGPACK) {
        s->sink->send(s->t, json, len, false);
        return;
    }
    hr_buf b = HR_BUF_INIT;
    if (hr_native_json_to_msgpack((const char *)json, len, &b) == 0) {
        s->sink->send(s->t, b.data, b.len, true);
    } else { /* never silently: the client would wait for replies forever */
        hr_warn("client %s: cannot encode a reply as MessagePack, disconnecting", s->client.id);
        s->closing = true;
        sink_disconnect(s, HR_DISC_ENCODING, "reply not representable in MessagePack", false);
    }
    hr_buf_free(&b);
}

static void leave_channel(hr_session *s, hr_sub *sub);

/* A server command from the API (hub.h): unsubscribe or disconnect. */
static void session_on_command(hr_client *c, hr_sub *sub, const hr_pub *cmd)
{
    hr_session *s = (hr_session *)c;
    if (s->closing) return;
    hr_buf b = HR_BUF_INIT;
    const char *reason = hr_pub_reason(cmd);
    if (cmd->kind == HR_PUB_UNSUBSCRIBE) {
        size_t len;
        const char *name = hr_hub_sub_channel(sub, &len);
        hr_native_unsubscribe(&b, name, len, cmd->code, reason); /* before leaving: name goes with sub */
        leave_channel(s, sub);
        send_payload(s, b.data, b.len);
    } else {
        hr_native_disconnect(&b, cmd->code, reason, cmd->code < 3500);
        send_payload(s, b.data, b.len);
        s->closing = true;
        hr_info("client %s: disconnected by the server API (code %d)", c->id, cmd->code);
        sink_disconnect(s, cmd->code, reason, false);
    }
    hr_buf_free(&b);
}

static const hr_client_vt session_client_vt = {.on_pub = session_on_pub, .on_command = session_on_command};

/* ---- helpers ----------------------------------------------------------------- */

/* NUL-terminated copy of a slice into a caller buffer; false if too long. */
static bool cstr(hr_str in, char *out, size_t cap)
{
    if (in.n >= cap) return false;
    if (in.n) memcpy(out, in.p, in.n);
    out[in.n] = '\0';
    return true;
}

static void presence_info(hr_session *s, hr_buf *b)
{
    hr_buf_printf(b, "{\"client\":\"%s\",\"user\":", s->client.id);
    hr_json_append_string(b, s->client.user, strlen(s->client.user));
    if (s->info) {
        hr_buf_append_str(b, ",\"info\":");
        hr_buf_append_str(b, s->info);
    }
    hr_buf_append(b, "}", 1);
}

/* A join (after subscribing) or leave (after unsubscribing) push to the
 * channel's subscribers, unless it has more than
 * channels.join_leave_max_subscribers (each push costs one delivery per
 * subscriber: N joiners would cost N^2/2). */
static void join_leave(hr_session *s, const char *ch, size_t len, bool join)
{
    uint64_t cap = (uint64_t)s->opts->ops.join_leave_max_subscribers;
    if (cap && hr_hub_subscribers(s->client.wh->hub, ch, len) + (join ? 0 : 1) > cap) return;
    hr_buf info = HR_BUF_INIT;
    presence_info(s, &info);
    hr_pub *p = hr_pub_new(join ? HR_PUB_JOIN : HR_PUB_LEAVE, ch, len, "", 0, (const char *)info.data, info.len);
    hr_buf_free(&info);
    engine_of(s)->vt->publish_event(engine_of(s), p);
    hr_pub_unref(p);
}

/* ---- subscribe ------------------------------------------------------------------ */

/* A subscribe answered with an error after all: not subscribed. */
static void sub_refused(sreq *q, int code, const char *why)
{
    if (q->nested) hr_native_error(&q->pc->b, 0, code, why);
    else set_error(q->r, code, why);
    if (q->hold->sub) leave_channel(q->s, q->hold->sub);
    req_done(q);
}

static void on_sub_history(void *ud, int err, const hr_history *h)
{
    sreq *q = ud;
    if (!req_alive(q)) return;
    hr_session *s = q->s;
    hr_buf *b = &q->pc->b;
    shold *hold = q->hold;
    if (err) {
        hr_warn("client %s: subscribe: the engine failed (%s)", s->client.id, hr_strerror(err));
        sub_refused(q, HR_PE_INTERNAL, "the engine is unavailable: retry later");
        return;
    }
    /* everything up to h->offset is either in this reply or was published
     * before the client asked: later copies are skipped */
    hold->offset = h->offset;
    hr_buf_append_str(b, "{\"channel\":");
    hr_json_append_string(b, q->channel, q->len);
    hr_buf_printf(b, ",\"epoch\":\"%s\",\"offset\":%llu,\"recoverable\":%s", h->epoch,
                  (unsigned long long)h->offset, s->opts->ops.history_size > 0 ? "true" : "false");
    bool recovered = h->complete;
    if (q->want_recover && recovered && hr_history_fit(h, q->resv, false, NULL) < h->n) {
        if (!q->resv_whole) { /* it may fit once earlier replies are read */
            sub_refused(q, HR_PE_TOO_MANY_REQUESTS, budget_detail);
            return;
        }
        recovered = false; /* more than channels.max_reply_size: read it with history pages */
    }
    if (q->want_recover) {
        hr_buf_printf(b, ",\"recovered\":%s,\"publications\":[", recovered ? "true" : "false");
        if (recovered)
            for (size_t i = 0; i < h->n; i++) {
                if (i) hr_buf_append(b, ",", 1);
                append_pub_json(b, h->pubs[i]);
            }
        hr_buf_append(b, "]", 1);
    }
    hr_buf_append(b, "}", 1);
    req_done(q);
}

/* Subscribe: the result object goes into r (a reserved piece the engine's
 * answer fills, or text for a pattern). Returns 0 or an HR_PE_* code
 * (nothing written). nested: a subscription of connect. */
static int do_subscribe(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd, hr_str ch, bool recover,
                        bool granted, bool nested, const char **detail)
{
    bool pattern = false;
    hr_chan_policy pol;
    hr_sub *sub = NULL;
    hr_actor a = actor_of(s);
    hr_op_sub_req req = {.granted = granted, .token = cmd ? cmd->token.p : NULL, .token_len = cmd ? cmd->token.n : 0};
    hr_op_result res = hr_op_subscribe(&a, ch.p, ch.n, &req, &pol, &pattern, &sub);
    if (res.rc) return native_err(res, detail);
    if (pattern) {
        hr_buf *b = text(r);
        hr_buf_append_str(b, "{\"channel\":");
        hr_json_append_string(b, ch.p, ch.n);
        hr_buf_append_str(b, ",\"pattern\":true}");
        return 0;
    }
    hr_chan_opts o = HR_OPS_CHAN_OPTS(&s->opts->ops, pol);
    char epoch[64] = "";
    bool want = recover && cmd && cmd->recover;
    if (want && !cstr(cmd->epoch, epoch, sizeof(epoch))) epoch[0] = '\0';
    hr_history_query q = {.has_since = want, .since_offset = want ? cmd->offset : 0, .since_epoch = epoch,
                          .limit = want ? (int64_t)o.history_size : 0};
    sreq probe = {0};
    if (want && !reserve(s, f, &probe)) {
        hr_hub_unsubscribe(&s->client, sub); /* nothing was announced yet */
        *detail = budget_detail;
        return HR_PE_TOO_MANY_REQUESTS;
    }
    shold *hold = hr_calloc(1, sizeof(*hold));
    hold->sub = sub;
    sub->hold = hold;
    f->holds = hr_realloc(f->holds, (f->nholds + 1) * sizeof(*f->holds));
    f->holds[f->nholds++] = hold;
    sreq *x = req_new(s, f, r);
    x->resv = probe.resv;
    x->resv_whole = probe.resv_whole;
    x->hold = hold;
    x->want_recover = want;
    x->nested = nested;
    x->channel = hr_strndup(ch.p, ch.n);
    x->len = ch.n;
    engine_of(s)->vt->history(engine_of(s), &o, ch.p, ch.n, &q, on_sub_history, x);
    if (o.presence) {
        engine_of(s)->vt->presence_add(engine_of(s), ch.p, ch.n, s->client.id, s->client.user, s->info, NULL, NULL);
        hr_webhook_member(webhook_of(s), ch.p, ch.n, s->client.user, s->client.id, s->info, true);
        sub->presence = true;
    }
    if (o.join_leave) join_leave(s, ch.p, ch.n, true);
    return 0;
}

static void leave_channel(hr_session *s, hr_sub *sub)
{
    if (sub->hold) { /* its subscribe is still being answered: the held publications go nowhere */
        ((shold *)sub->hold)->sub = NULL;
        sub->hold = NULL;
    }
    if (sub->lc == NULL) {
        hr_hub_unsubscribe(&s->client, sub);
        return;
    }
    /* the local channel may be freed by unsubscribe: copy the name first
     * (whole: channels.max_channel_length may be up to 65535) */
    size_t len = 0;
    const char *n = hr_hub_sub_channel(sub, &len);
    char *name = hr_strndup(n, len);
    bool pres = sub->presence;
    /* member_removed before the unsubscribe's channel_vacated */
    if (pres) hr_webhook_member(webhook_of(s), name, len, s->client.user, s->client.id, NULL, false);
    hr_hub_unsubscribe(&s->client, sub);
    hr_chan_policy pol;
    hr_ops_policy(&s->opts->ops, name, len, &pol);
    if (pres) engine_of(s)->vt->presence_remove(engine_of(s), name, len, s->client.id, NULL, NULL);
    if (pol.join_leave && !s->loop_gone) join_leave(s, name, len, false);
    hr_free(name);
}

/* ---- commands -------------------------------------------------------------------- */

static void engine_failed(sreq *q, int err, const char *what)
{
    hr_warn("client %s: %s: the engine failed (%s)", q->s->client.id, what, hr_strerror(err));
    set_error(q->r, HR_PE_INTERNAL, "the engine is unavailable: retry later");
}

static void on_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    sreq *q = ud;
    if (!req_alive(q)) return;
    if (err) engine_failed(q, err, "publish");
    else hr_buf_printf(&q->pc->b, "{\"offset\":%llu,\"epoch\":\"%s\"}", (unsigned long long)offset, epoch);
    req_done(q);
}

static void on_history(void *ud, int err, const hr_history *h)
{
    sreq *q = ud;
    if (!req_alive(q)) return;
    if (err) {
        engine_failed(q, err, "history");
        req_done(q);
        return;
    }
    /* the page: at most q->page publications, sized to the reservation */
    hr_history page = *h;
    bool more = page.n > q->page;
    if (more) page.n = q->page;
    size_t n = hr_history_fit(&page, q->resv, q->resv_whole, NULL);
    if (page.n && !n) { /* not even one fits what the budget left */
        set_error(q->r, HR_PE_TOO_MANY_REQUESTS, budget_detail);
        req_done(q);
        return;
    }
    more = more || n < page.n;
    hr_buf *b = &q->pc->b;
    hr_buf_printf(b, "{\"epoch\":\"%s\",\"offset\":%llu,\"publications\":[", h->epoch, (unsigned long long)h->offset);
    for (size_t i = 0; i < n; i++) {
        if (i) hr_buf_append(b, ",", 1);
        append_pub_json(b, h->pubs[i]);
    }
    hr_buf_append(b, more ? "],\"more\":true}" : "]}", more ? 14 : 2);
    req_done(q);
}

static void on_presence(void *ud, int err, const hr_presence *p)
{
    sreq *q = ud;
    if (!req_alive(q)) return;
    if (err) {
        engine_failed(q, err, "presence");
        req_done(q);
        return;
    }
    hr_buf *b = &q->pc->b;
    if (!q->stats) { /* sized before it is built */
        size_t est = 16;
        for (size_t i = 0; i < p->n; i++)
            est += 48 + 2 * strlen(p->entries[i].client) + 6 * strlen(p->entries[i].user) +
                   (p->entries[i].info ? strlen(p->entries[i].info) : 0);
        if (est > q->resv) {
            if (q->resv_whole) set_error(q->r, HR_PE_LIMIT_EXCEEDED, "the presence list is larger than "
                                                                    "channels.max_reply_size: use presence_stats");
            else set_error(q->r, HR_PE_TOO_MANY_REQUESTS, budget_detail);
            req_done(q);
            return;
        }
    }
    if (q->stats) {
        hr_buf_printf(b, "{\"num_clients\":%zu,\"num_users\":%zu}", p->n, p->users);
        req_done(q);
        return;
    }
    hr_buf_append_str(b, "{\"clients\":{");
    for (size_t i = 0; i < p->n; i++) {
        if (i) hr_buf_append(b, ",", 1);
        hr_json_append_string(b, p->entries[i].client, strlen(p->entries[i].client));
        hr_buf_printf(b, ":{\"client\":\"%s\",\"user\":", p->entries[i].client);
        hr_json_append_string(b, p->entries[i].user, strlen(p->entries[i].user));
        if (p->entries[i].info) hr_buf_printf(b, ",\"info\":%s", p->entries[i].info);
        hr_buf_append(b, "}", 1);
    }
    hr_buf_append_str(b, "}}");
    req_done(q);
}

/* ---- tokens ------------------------------------------------------------------------ */

static int64_t wall_now(void) { return (int64_t)time(NULL); }

/* Disconnect after this frame's replies (connect refused). */
static void disconnect_after(sframe *f, int code, const char *reason)
{
    f->disc_code = code;
    f->disc_reason = reason;
}

/* Push {"disconnect":...} and close (token expiry, from a timer). */
static void disconnect_now(hr_session *s, int code, const char *reason)
{
    if (s->closing) return;
    hr_buf b = HR_BUF_INIT;
    hr_native_disconnect(&b, code, reason, code < 3500);
    send_payload(s, b.data, b.len);
    hr_buf_free(&b);
    if (s->closing) return;
    s->closing = true;
    hr_info("client %s: %s, disconnecting (code %d)", s->client.id, reason, code);
    sink_disconnect(s, code, reason, false);
}

static hr_wheel *wheel_of(hr_session *s) { return &s->client.wh->loop->wheel; }

static void on_exp_timer(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    exp_timer *x = HR_CONTAINER_OF(t, exp_timer, t);
    hr_session *s = x->s;
    if (s->closing) return;
    int64_t grace = hr_auth_refresh_grace_ms(s->opts->ops.auth);
    if (!x->warned && grace > 0) {
        /* ask the client for a fresh token; it has `grace` to send refresh */
        x->warned = true;
        hr_buf b = HR_BUF_INIT;
        hr_buf_printf(&b, "{\"refresh\":{\"reason\":\"token expired\",\"in\":%lld}}", (long long)(grace / 1000));
        send_payload(s, b.data, b.len);
        hr_buf_free(&b);
        if (!s->closing) hr_timer_start(wheel_of(s), &x->t, (uint64_t)grace);
        return;
    }
    disconnect_now(s, HR_DISC_TOKEN_EXPIRED, "token expired");
}

/* Track (or stop tracking) the connection token's expiry. */
static void arm_expiry(hr_session *s, bool has_exp, int64_t exp)
{
    if (!has_exp) {
        if (s->exp) {
            hr_timer_stop(wheel_of(s), &s->exp->t);
            hr_free(s->exp);
            s->exp = NULL;
        }
        return;
    }
    if (!s->exp) {
        s->exp = hr_calloc(1, sizeof(*s->exp));
        s->exp->s = s;
        hr_timer_init(&s->exp->t, on_exp_timer);
    }
    s->exp->exp = exp;
    s->exp->warned = false;
    int64_t in = exp - wall_now();
    hr_timer_start(wheel_of(s), &s->exp->t, in > 0 ? (uint64_t)in * 1000 : 0);
}

static void append_expiry(hr_session *s, hr_buf *res)
{
    if (!s->exp) {
        hr_buf_append_str(res, ",\"expires\":false");
        return;
    }
    int64_t ttl = s->exp->exp - wall_now();
    hr_buf_printf(res, ",\"expires\":true,\"ttl\":%lld", (long long)(ttl > 0 ? ttl : 0));
}

/* Verify a connection token: 0 with cl filled, or an HR_PE_* code with
 * *detail (cl empty). */
static int verify_conn_token(hr_session *s, const char *tok, size_t len, hr_jwt_claims *cl, const char **detail)
{
    hr_actor a = actor_of(s);
    hr_op_result res = hr_op_verify_token(&a, tok, len, cl);
    if (!res.rc) return 0;
    /* connect's wire form: a token that does not verify is 101, not 103 */
    return res.rc == HR_OP_TOKEN_INVALID ? (*detail = res.detail, HR_PE_UNAUTHORIZED) : native_err(res, detail);
}

/* client_connected (the transport's name and, when it knows it, the address). */
static void announce_connected(hr_session *s)
{
    if (!webhook_of(s)) return;
    char remote[64] = "";
    if (s->sink->peer) s->sink->peer(s->t, remote, sizeof(remote));
    hr_webhook_who who = who_of(s);
    s->whc = hr_webhook_connected(webhook_of(s), &who, remote[0] ? remote : NULL);
}

static void do_connect(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd, int *err, const char **detail)
{
    hr_str tok = cmd->token;
    if (!tok.n && s->http_token) tok = (hr_str){s->http_token, strlen(s->http_token)};
    hr_jwt_claims cl;
    memset(&cl, 0, sizeof(cl));
    if (tok.n) {
        int rc = verify_conn_token(s, tok.p, tok.n, &cl, detail);
        if (rc == HR_PE_TOO_MANY_REQUESTS) { /* not looked at: the client may retry */
            *err = rc;
            return;
        }
        if (rc) {
            *err = rc;
            if (rc == HR_PE_TOKEN_EXPIRED) disconnect_after(f, HR_DISC_TOKEN_EXPIRED, "token expired");
            else disconnect_after(f, HR_DISC_INVALID_TOKEN, "invalid token");
            hr_info("client %s: connect refused: %s", s->client.id, *detail ? *detail : "bad token");
            return;
        }
        if (cl.channel) {
            hr_jwt_claims_free(&cl);
            *err = HR_PE_UNAUTHORIZED;
            *detail = "a subscription token (it has \"channel\") is not a connection token";
            disconnect_after(f, HR_DISC_INVALID_TOKEN, "invalid token");
            return;
        }
        if (cl.sub) {
            hr_free(s->client.user);
            s->client.user = hr_strdup(cl.sub);
        }
        if (cl.info) s->info = hr_strndup(cl.info, cl.info_len);
        arm_expiry(s, cl.has_exp, cl.exp);
    }
    s->connected = true;
    announce_connected(s);
    cstr(cmd->name, s->name, sizeof(s->name));
    hr_buf_printf(text(r), "{\"client\":\"%s\",\"version\":\"" HERALD_VERSION "\",\"ping\":%lld", s->client.id,
                  (long long)(s->opts->ping_interval_ms / 1000));
    if (tok.n) {
        hr_buf_append_str(text(r), ",\"user\":");
        hr_json_append_string(text(r), s->client.user, strlen(s->client.user));
        append_expiry(s, text(r));
    }
    if (cmd->nsubs || cl.n_channels) {
        hr_buf_append_str(text(r), ",\"subs\":{");
        /* the token's channels first (granted by the token), then the client's */
        for (size_t i = 0; i < cl.n_channels + cmd->nsubs; i++) {
            bool granted = i < cl.n_channels;
            hr_str ch = granted ? (hr_str){cl.channels[i], strlen(cl.channels[i])} : cmd->subs[i - cl.n_channels];
            if (i) hr_buf_append(text(r), ",", 1);
            hr_json_append_string(text(r), ch.p, ch.n);
            hr_buf_append(text(r), ":", 1);
            const char *d = NULL;
            int rc = do_subscribe(s, f, r, NULL, ch, false, granted, true, &d);
            if (rc) hr_native_error(text(r), 0, rc, d);
        }
        hr_buf_append(text(r), "}", 1);
    }
    hr_buf_append(text(r), "}", 1);
    hr_jwt_claims_free(&cl);
}

static void do_refresh(hr_session *s, const hr_cmd *cmd, hr_buf *res, int *err, const char **detail)
{
    /* synchronous: res is the command's text */
    hr_jwt_claims cl;
    int rc = verify_conn_token(s, cmd->token.p, cmd->token.n, &cl, detail);
    if (rc) {
        *err = rc;
        return;
    }
    if (cl.channel) {
        *err = HR_PE_UNAUTHORIZED;
        *detail = "a subscription token (it has \"channel\") is not a connection token";
    } else if (strcmp(cl.sub ? cl.sub : "", s->client.user) != 0) {
        *err = HR_PE_UNAUTHORIZED;
        *detail = "the new token is for another user";
    } else {
        arm_expiry(s, cl.has_exp, cl.exp);
        hr_buf_append_str(res, "{\"client\":\"");
        hr_buf_append_str(res, s->client.id);
        hr_buf_append_str(res, "\"");
        append_expiry(s, res);
        hr_buf_append(res, "}", 1);
    }
    hr_jwt_claims_free(&cl);
}

/* An operation refused the command waiting in x: its reply is the error. */
static void refused(sreq *x, hr_op_result res)
{
    const char *detail;
    int code = native_err(res, &detail);
    set_error(x->r, code, detail);
    req_done(x);
}

static void exec(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd)
{
    const char *detail = NULL;
    int err = 0;
    r->id = cmd->id;
    if (cmd->error) {
        set_error(r, cmd->error, cmd->error_detail);
        return;
    }
    if (!s->connected && cmd->type != HR_CMD_CONNECT) {
        set_error(r, HR_PE_NOT_CONNECTED, "send connect first");
        return;
    }
    hr_actor a = actor_of(s);
    switch (cmd->type) {
    case HR_CMD_CONNECT:
        if (s->connected) {
            err = HR_PE_BAD_REQUEST;
            detail = "already connected";
            break;
        }
        do_connect(s, f, r, cmd, &err, &detail);
        break;
    case HR_CMD_REFRESH:
        do_refresh(s, cmd, text(r), &err, &detail);
        break;
    case HR_CMD_SUBSCRIBE:
        err = do_subscribe(s, f, r, cmd, cmd->channel, true, false, false, &detail);
        break;
    case HR_CMD_UNSUBSCRIBE: {
        hr_op_result res;
        hr_sub *sub = hr_op_unsubscribe_find(&a, cmd->channel.p, cmd->channel.n, &res);
        if (!sub) {
            err = native_err(res, &detail);
            break;
        }
        leave_channel(s, sub);
        hr_buf_append(text(r), "{}", 2);
        break;
    }
    case HR_CMD_PUBLISH: {
        sreq *x = req_new(s, f, r);
        hr_op_result res = hr_op_publish(&a, cmd->channel.p, cmd->channel.n, cmd->data.p, cmd->data.n,
                                         cmd->idempotency_key.p, cmd->idempotency_key.n, on_published, x);
        if (res.rc) refused(x, res);
        break;
    }
    case HR_CMD_HISTORY: {
        char epoch[64] = "";
        cstr(cmd->since_epoch, epoch, sizeof(epoch));
        /* one more than the page: tells whether there is more */
        size_t page = (size_t)s->opts->ops.history_max_limit;
        if (cmd->limit >= 0 && (uint64_t)cmd->limit < page) page = (size_t)cmd->limit;
        hr_history_query q = {.has_since = cmd->has_since, .since_offset = cmd->since_offset, .since_epoch = epoch,
                              .limit = page ? (int64_t)page + 1 : 0, .reverse = cmd->reverse};
        sreq *x = req_new(s, f, r);
        x->page = page;
        if (!reserve(s, f, x)) {
            set_error(r, HR_PE_TOO_MANY_REQUESTS, budget_detail);
            req_done(x);
            break;
        }
        hr_op_result res = hr_op_history(&a, cmd->channel.p, cmd->channel.n, &q, on_history, x);
        if (res.rc) refused(x, res);
        break;
    }
    case HR_CMD_PRESENCE:
    case HR_CMD_PRESENCE_STATS: {
        sreq *x = req_new(s, f, r);
        x->stats = cmd->type == HR_CMD_PRESENCE_STATS;
        if (!x->stats && !reserve(s, f, x)) {
            set_error(r, HR_PE_TOO_MANY_REQUESTS, budget_detail);
            req_done(x);
            break;
        }
        hr_op_result res = hr_op_presence(&a, cmd->channel.p, cmd->channel.n, on_presence, x);
        if (res.rc) refused(x, res);
        break;
    }
    case HR_CMD_PING:
        hr_buf_append(text(r), "{}", 2);
        break;
    default:
        err = HR_PE_METHOD_NOT_FOUND;
        break;
    }
    if (err) set_error(r, err, detail);
}

/* ---- lifecycle ------------------------------------------------------------------- */

hr_native_encoding hr_session_encoding(const hr_session *s) { return s->enc; }

hr_session *hr_session_new(hr_whub *wh, const hr_proto_opts *opts, const hr_sink_vt *sink, void *t,
                           hr_native_encoding enc)
{
    hr_session *s = hr_calloc(1, sizeof(*s));
    s->client.vt = &session_client_vt;
    s->client.wh = wh;
    s->client.user = hr_strdup("");
    hr_random_hex(s->client.id, 16);
    s->opts = opts;
    s->sink = sink;
    s->t = t;
    s->enc = enc;
    hr_session_set_reply_budget(s, (size_t)opts->max_queued_bytes);
    hr_hub_client_add(&s->client);
    return s;
}

void hr_session_on_frame(hr_session *s, const uint8_t *data, size_t len)
{
    if (s->closing) return;
    hr_native_batch batch = {0};
    hr_native_limits lim = {(size_t)s->opts->ops.max_commands_per_frame, (size_t)s->opts->ops.max_channel_length};
    int rc = s->enc == HR_NATIVE_MSGPACK ? hr_native_parse_msgpack(data, len, &lim, &batch)
                                         : hr_native_parse(data, len, &lim, &batch);
    if (rc) {
        hr_native_batch_free(&batch);
        s->closing = true;
        sink_disconnect(s, HR_DISC_BAD_REQUEST,
                            rc == HR_ERR_TOO_BIG ? "too many commands or values in one frame" : "malformed command frame", false);
        return;
    }
    sframe *f = hr_calloc(1, sizeof(*f));
    f->cmds = batch.n ? hr_calloc(batch.n, sizeof(*f->cmds)) : NULL;
    if (s->frames_tail) s->frames_tail->next = f;
    else s->frames = f;
    s->frames_tail = f;
    for (size_t i = 0; i < batch.n && !f->disc_code; i++) {
        f->n++;
        exec(s, f, &f->cmds[i], &batch.cmds[i]);
    }
    hr_native_batch_free(&batch);
    f->sealed = true;
    pump(s);
}

void hr_session_set_reply_budget(hr_session *s, size_t max_queued)
{
    size_t b = (size_t)s->opts->ops.reply_budget;
    s->budget = b < max_queued / 2 ? b : max_queued / 2;
}

void hr_session_loop_gone(hr_session *s)
{
    if (!s) return;
    s->loop_gone = true; /* no leave pushes: delivering them would wake freed loops */
    if (s->exp) s->exp->t.next = s->exp->t.prev = NULL; /* idle: hr_timer_stop will not touch the wheel */
}

void hr_session_closed(hr_session *s, int code, const char *reason)
{
    if (s) hr_webhook_closing(s->whc, code, reason);
}

void hr_session_set_token(hr_session *s, const char *token, size_t len)
{
    hr_free(s->http_token);
    s->http_token = hr_strndup(token, len);
}

void hr_session_free(hr_session *s)
{
    if (!s) return;
    hr_hub_client_remove(&s->client);
    for (sreq *q = s->reqs; q; q = q->next) q->s = NULL; /* their answers find no session */
    s->reqs = NULL;
    while (s->client.subs) leave_channel(s, s->client.subs);
    if (s->whc) {
        hr_webhook_who who = who_of(s);
        hr_webhook_disconnected(webhook_of(s), s->whc, &who, HR_DISC_CONN_CLOSED, "connection closed");
    }
    while (s->frames) {
        sframe *f = s->frames;
        s->frames = f->next;
        frame_free(f);
    }
    arm_expiry(s, false, 0);
    hr_free(s->info);
    hr_free(s->http_token);
    hr_free(s->client.user);
    hr_free(s);
}
