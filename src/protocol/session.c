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
 * subscribe) reserves room once the operation's rules have passed (a
 * refused command reserves nothing) and before the engine is asked - at most
 * channels.max_reply_size, at most what is left - and its answer is sized
 * from the publications' lengths before any of it is built: a history page
 * stops at the reservation (`more`), a reply that cannot fit is refused
 * with 111 (temporary). Once built, the reservation becomes the reply's
 * real size, released when its frame is handed to the transport (whose
 * queue then counts it). One frame can therefore never build more than the
 * budget, however many commands it holds.
 *
 * Backend hooks (docs/backend.md), only when the worker has a proxy (the
 * state hangs off s->be, NULL otherwise): a connect without a token (or any,
 * with proxy.connect_with_token) asks the connect hook; until it answers the
 * session executes nothing more of that client - the rest of the frame
 * waits (its bytes are kept and parsed again) and later frames are queued
 * in order, bounded by the reply budget - then carries on where it stopped.
 * A connection whose expire_at came from the backend asks the refresh hook
 * a little before it (three times proxy.refresh_timeout), retries every
 * proxy.refresh_timeout on a failure, and is disconnected with 3005 at
 * expiry. rpc is a command whose reply piece the backend's answer fills,
 * like an engine answer. A call in flight is cancelled when the session
 * goes.
 *
 * Subscribe and publish hooks (ops.h): a subscribe whose namespace has proxy_subscribe
 * waits for the hook in its reserved piece (the frame's later replies wait
 * behind it, as for the engine); on a yes it goes on as any subscribe, with
 * the backend's info in its presence entry and join push and its data in
 * the reply. A publish whose namespace has proxy_publish waits for the hook
 * the same way; while it waits (until its engine answer), the session's
 * later publishes wait in pub_wait, so one connection's publications keep
 * their order whatever the backend's answer times; the bytes they hold count
 * against the reply budget (past it: 111, temporary). */
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

struct sframe;

/* A frame that arrived while a connect waited for the backend. */
typedef struct qframe {
    struct qframe *next;
    size_t len;
    uint8_t data[];
} qframe;

/* The backend hooks' state (allocated only when the worker has a proxy). */
typedef struct sbackend {
    hr_proxy *p;
    const char *transport;
    hr_proxy_origin *origin;   /* the client's request context; freed once connected */
    hr_proxy_req *req;         /* the connect or refresh call in flight */
    struct sframe *paused;     /* the frame whose connect waits for the backend (not sealed) */
    uint8_t *held;             /* that frame's bytes, parsed again when the answer comes */
    size_t held_len;
    size_t next;               /* index of the command after that connect */
    hr_jwt_claims claims;      /* the connect's verified token (proxy.connect_with_token) */
    qframe *queue, *queue_tail; /* frames that arrived meanwhile, in order */
    size_t queued;             /* their bytes (at most the reply budget) */
    char *reason;              /* the backend's disconnect reason (outlives the frame that uses it) */
    bool proxied;              /* expire_at came from the backend: refreshed through the hook */
} sbackend;

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
    struct sreq *pub_busy;     /* the publish waiting for its hook (then its engine answer) */
    struct sreq *pub_wait;     /* publishes sent after it, in order (sreq.wnext) */
    struct sreq *pub_wait_tail;
    hr_bucket pub_bucket;      /* limits.publishes_per_connection */
    hr_bucket chan_bucket;     /* limits.channels_per_connection */
    hr_bucket tok_bucket;      /* limits.token_verifications_per_connection */
    size_t budget;             /* channels.reply_budget for this transport */
    size_t reserved;           /* reply bytes held by unsent frames */
    uint32_t ip_key;           /* the client's address in the limits (0 = unknown) */
    char name[64];
    char *info;                /* connection token's info (compact JSON) or NULL */
    char *http_token;          /* token given by the HTTP transport, for connect */
    char *remote;              /* the client's address for client_connected; freed once announced */
    exp_timer *exp;            /* NULL when the token has no exp (or no token) */
    sbackend *be;              /* backend hooks; NULL when the worker has no proxy */
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
    bool as_is;                /* a backend's own error: detail is its message, temporary its flag */
    bool temporary;
    char *detail;
    piece **parts;
    size_t nparts;
} creply;

/* A subscription held while its subscribe is answered (see the top): past
 * channels.max_held_publications the client is disconnected as a slow
 * consumer (3008) and recovers after reconnecting. */
typedef struct shold {
    hr_sub *sub;               /* NULL once unsubscribed */
    hr_op_hold held;
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
    char *disc_own;            /* disc_reason when it is the backend's (owned) */
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
    /* subscribe waiting for its hook */
    hr_chan_policy pol;
    bool pattern;
    uint64_t since;            /* recovery position */
    char *epoch;
    char *hook_data;           /* the backend's data for the reply */
    /* publish waiting behind pub_busy */
    struct sreq *wnext;
    char *data, *idem;         /* idem NULL: no key */
    size_t dlen, idem_len;
    hr_proxy_req *preq;        /* rpc: the backend call (cancelled if the session goes first) */
} sreq;

static hr_engine *engine_of(hr_session *s) { return s->client.wh->hub->engine; }

static hr_webhook *webhook_of(hr_session *s) { return s->opts->ops.webhook; }

/* id: s's formatted id, kept by the caller while the result is used */
static hr_webhook_who who_of(hr_session *s, const hr_client_idstr *id)
{
    return (hr_webhook_who){id->s, s->client.user, s->sink->transport};
}

/* The session ends the connection: the code and reason its
 * client_disconnected webhook reports. */
static void sink_disconnect(hr_session *s, int code, const char *reason, bool drop_queued)
{
    hr_webhook_closing(s->whc, code, reason);
    s->sink->disconnect(s->t, code, reason, drop_queued);
}

static void note_refused(hr_session *s, bool overload, int code, const char *detail)
{
    if (s->sink->refused) s->sink->refused(s->t, overload, code, detail);
}

void hr_session_set_peer(hr_session *s, uint32_t ip_key) { s->ip_key = ip_key; }

/* The session as the operations' actor (ops.h): its user, subscriptions and buckets. */
static hr_actor actor_of(hr_session *s)
{
    return (hr_actor){.kind = HR_ACTOR_CLIENT, .opts = &s->opts->ops, .wh = s->client.wh, .engine = engine_of(s),
                      .user = s->client.user, .client = &s->client, .pub_bucket = &s->pub_bucket,
                      .chan_bucket = &s->chan_bucket, .tok_bucket = &s->tok_bucket, .ip_key = s->ip_key,
                      .info = s->info, .transport = s->be ? s->be->transport : NULL,
                      .protocol = s->enc == HR_NATIVE_MSGPACK ? "msgpack" : "json"};
}

/* An operation's refusal as a native error code (detail in *detail; a
 * backend's error keeps its code and message). */
static int native_err(hr_op_result r, const char **detail)
{
    *detail = r.detail;
    return hr_op_result_native(r);
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
    r->as_is = false;
    hr_free(r->detail);
    r->detail = detail ? hr_strdup(detail) : NULL;
}

/* An operation's refusal as the command's error (a backend's error keeps
 * its code, message and temporary flag). */
static void set_op_error(creply *r, hr_op_result res)
{
    const char *detail;
    int code = native_err(res, &detail);
    set_error(r, code, detail);
    r->as_is = res.rc == HR_OP_BACKEND_ERROR;
    r->temporary = res.temporary;
}

/* The same written in place (a subscription of connect). */
static void append_op_error(hr_buf *b, hr_op_result res)
{
    const char *detail;
    int code = native_err(res, &detail);
    if (res.rc == HR_OP_BACKEND_ERROR) hr_native_error_as(b, 0, code, detail, res.temporary, NULL);
    else hr_native_error(b, 0, code, detail);
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
    hr_op_hold_free(&h->held);
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
    hr_free(f->disc_own);
    hr_free(f);
}

static void send_payload(hr_session *s, const uint8_t *json, size_t len);
static void disconnect_now(hr_session *s, int code, const char *reason);
static void disconnect_after(sframe *f, int code, const char *reason);
static void session_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache);

/* The reply's position, for every publication a subscribe's hold has. */
static bool hold_pos(void *ud, const hr_sub *sub, uint64_t *offset)
{
    HR_UNUSED(sub);
    *offset = ((const shold *)ud)->offset;
    return true;
}

/* The held publications of a subscription whose reply is out. */
static void release_hold(hr_session *s, shold *h)
{
    hr_sub *sub = h->sub;
    if (!sub) return;
    sub->hold = NULL;
    h->sub = NULL;
    hr_op_hold_release(&h->held, &s->client, hold_pos, h);
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
                    if (r->as_is) hr_native_error_as(&out, r->id, r->err, r->detail, r->temporary, NULL);
                    else hr_native_error(&out, r->id, r->err, r->detail);
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
        char *own = f->disc_own; /* the reason, when it is the backend's: freed after use */
        f->disc_own = NULL;
        frame_free(f);
        if (code) { /* last: the transport may let go of s */
            disconnect_now(s, code, reason);
            hr_free(own);
            return;
        }
        hr_free(own);
    }
}

static void req_free(sreq *q)
{
    hr_free(q->channel);
    hr_free(q->epoch);
    hr_free(q->hook_data);
    hr_free(q->data);
    hr_free(q->idem);
    hr_free(q);
}

/* An engine answer arrived for q: true when its session is still there
 * (false: q was freed). */
static bool req_alive(sreq *q)
{
    if (q->s) return true;
    req_free(q);
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
    req_free(q);
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

/* The publication's native JSON push, once per worker. */
static void native_json(const hr_pub *pub, hr_enc_cache *cache)
{
    if (cache->slot[HR_ENC_NATIVE_JSON]) return;
    hr_buf b = HR_BUF_INIT;
    if (pub->kind == HR_PUB_MESSAGE)
        hr_native_pub(&b, pub->channel, pub->channel_len, pub->offset, pub->data, pub->data_len, pub->info,
                      pub->info_len);
    else
        hr_native_join_leave(&b, pub->kind == HR_PUB_JOIN, pub->channel, pub->channel_len, pub->info, pub->info_len);
    cache->slot[HR_ENC_NATIVE_JSON] = hr_sbuf_new(b.data, b.len);
    hr_buf_free(&b);
}

/* The publication's MessagePack push, once per worker, from its JSON push
 * (made first): false when it has no MessagePack form. */
static bool native_msgpack(hr_enc_cache *cache)
{
    if (cache->slot[HR_ENC_NATIVE_MSGPACK]) return true;
    hr_sbuf *json = cache->slot[HR_ENC_NATIVE_JSON];
    hr_buf b = HR_BUF_INIT;
    bool ok = hr_native_json_to_msgpack((const char *)json->data, json->len, &b) == 0;
    if (ok) cache->slot[HR_ENC_NATIVE_MSGPACK] = hr_sbuf_new(b.data, b.len);
    hr_buf_free(&b);
    return ok;
}

/* A channel's run as one queue entry when session_on_pub would queue every
 * one of its pushes (hub.h hr_run; a push is the same bytes for every
 * subscriber, in JSON and in MessagePack): not while the subscribe is held,
 * for a closing session or one whose queue is over the limit already or
 * would be with the run (session_on_pub checks before each push), nor when
 * a push has no MessagePack form (session_on_pub disconnects at it). */
static bool session_on_run(hr_client *c, hr_sub *sub, hr_run *run)
{
    hr_session *s = (hr_session *)c;
    if (s->closing || sub->hold || !s->sink->send_run) return false;
    size_t max = (size_t)s->opts->max_queued_bytes;
    if (s->sink->queued(s->t) > max) return false;
    bool mp = s->enc == HR_NATIVE_MSGPACK;
    for (uint32_t i = 0; i < run->n; i++) {
        native_json(run->pubs[i], &run->caches[i]);
        if (mp && !native_msgpack(&run->caches[i])) return false;
    }
    return s->sink->send_run(s->t, run, mp ? HR_ENC_NATIVE_MSGPACK : HR_ENC_NATIVE_JSON, mp, max);
}

static void session_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    hr_session *s = (hr_session *)c;
    if (s->closing) return;
    if (sub && sub->hold) { /* its subscribe is not answered yet */
        if (!hr_op_hold_add(&((shold *)sub->hold)->held, &s->opts->ops, sub, pub)) { /* engine far behind */
            s->closing = true;
            hr_whub_count(&c->wh->slow_disconnects, 1);
            hr_logev(HR_LOG_INFO, "client_slow", HR_LOG_S("client", hr_client_id(c).s), HR_LOG_I("code", HR_DISC_SLOW),
                     HR_LOG_S("msg", "too many publications while subscribing, disconnecting"));
            sink_disconnect(s, HR_DISC_SLOW, "slow consumer: reconnect and recover", true);
        }
        return;
    }
    if (s->sink->queued(s->t) > (size_t)s->opts->max_queued_bytes) {
        s->closing = true;
        hr_whub_count(&c->wh->slow_disconnects, 1);
        hr_logev(HR_LOG_INFO, "client_slow", HR_LOG_S("client", hr_client_id(c).s), HR_LOG_I("code", HR_DISC_SLOW),
                 HR_LOG_S("msg", "slow consumer, disconnecting"));
        sink_disconnect(s, HR_DISC_SLOW, "slow consumer: reconnect and recover", true);
        return;
    }
    native_json(pub, cache);
    if (s->enc == HR_NATIVE_MSGPACK) {
        if (!native_msgpack(cache)) {
            hr_logf(HR_LOG_WARN, "client_encoding_failed", "client %s: cannot encode a push as MessagePack, disconnecting", hr_client_id(c).s);
            s->closing = true;
            sink_disconnect(s, HR_DISC_ENCODING, "publication not representable in MessagePack", false);
            return;
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
        hr_logf(HR_LOG_WARN, "client_encoding_failed", "client %s: cannot encode a reply as MessagePack, disconnecting", hr_client_id(&s->client).s);
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
        hr_logev(HR_LOG_INFO, "client_disconnected_by_api", HR_LOG_S("client", hr_client_id(c).s), HR_LOG_I("code", cmd->code),
                 HR_LOG_S("msg", "disconnected by the server API"));
        sink_disconnect(s, cmd->code, reason, false);
    }
    hr_buf_free(&b);
}

static const hr_client_vt session_client_vt = {.on_pub = session_on_pub, .on_command = session_on_command,
                                               .on_run = session_on_run};

/* ---- helpers ----------------------------------------------------------------- */

/* NUL-terminated copy of a slice into a caller buffer; false if too long. */
static bool cstr(hr_str in, char *out, size_t cap)
{
    if (in.n >= cap) return false;
    if (in.n) memcpy(out, in.p, in.n);
    out[in.n] = '\0';
    return true;
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
        hr_logf(HR_LOG_WARN, "engine_failed", "client %s: subscribe: the engine failed (%s)", hr_client_id(&s->client).s, hr_strerror(err));
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
    if (q->hook_data) {
        hr_buf_append_str(b, ",\"data\":");
        hr_buf_append_str(b, q->hook_data);
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

/* The subscription sub exists (no hook, or the hook said yes with info
 * and data): reply with its position (the engine's answer fills q's piece),
 * presence, join. */
static void sub_go_on(sreq *q, hr_sub *sub, const char *info)
{
    hr_session *s = q->s;
    hr_buf *b = &q->pc->b;
    if (q->pattern) {
        hr_buf_append_str(b, "{\"channel\":");
        hr_json_append_string(b, q->channel, q->len);
        hr_buf_append_str(b, ",\"pattern\":true}");
        req_done(q);
        return;
    }
    hr_chan_opts o = HR_OPS_CHAN_OPTS(&s->opts->ops, q->pol);
    if (q->want_recover && !reserve(s, q->f, q)) {
        hr_hub_unsubscribe(&s->client, sub); /* nothing was announced yet */
        if (q->nested) hr_native_error(b, 0, HR_PE_TOO_MANY_REQUESTS, budget_detail);
        else set_error(q->r, HR_PE_TOO_MANY_REQUESTS, budget_detail);
        req_done(q);
        return;
    }
    shold *hold = hr_calloc(1, sizeof(*hold));
    hold->sub = sub;
    sub->hold = hold;
    sframe *f = q->f;
    f->holds = hr_realloc(f->holds, (f->nholds + 1) * sizeof(*f->holds));
    f->holds[f->nholds++] = hold;
    q->hold = hold;
    hr_history_query hq = {.has_since = q->want_recover, .since_offset = q->since,
                           .since_epoch = q->epoch ? q->epoch : "",
                           .limit = q->want_recover ? (int64_t)o.history_size : 0};
    hr_chan_policy pol = q->pol; /* q may be answered (and freed) at once */
    size_t len = q->len;
    char *ch = hr_strndup(q->channel, len);
    engine_of(s)->vt->history(engine_of(s), &o, ch, len, &hq, on_sub_history, q);
    hr_free(ch);
    hr_actor a = actor_of(s);
    if (info) a.info = info; /* the subscribe hook's channel info */
    hr_op_subscribe_commit(&a, sub, &pol);
}

/* A hook's disconnect (ops.h): the command is refused with the backend's
 * reason and the connection closed with its code once the frame is out. */
static hr_op_result backend_disconnect(sreq *q, hr_op_result res, const char *what)
{
    if (res.rc != HR_OP_BACKEND_DISCONNECT) return res;
    hr_logf(HR_LOG_INFO, "client_disconnected_by_backend", "client %s: %s: the backend disconnects it (code %d)", hr_client_id(&q->s->client).s, what, res.code);
    hr_free(q->f->disc_own);
    q->f->disc_own = hr_strdup(res.detail ? res.detail : "disconnected by the backend");
    disconnect_after(q->f, res.code, q->f->disc_own);
    return (hr_op_result){.rc = HR_OP_DENIED, .detail = q->f->disc_own};
}

/* The subscribe hook answered q (ops.h): go on, or the backend's refusal. */
static void on_sub_hook(void *ud, const hr_op_hook_ans *ans)
{
    sreq *q = ud;
    if (!req_alive(q)) return;
    hr_session *s = q->s;
    hr_op_result res = ans->res;
    res = backend_disconnect(q, res, "subscribe");
    hr_sub *sub = NULL;
    if (!res.rc) {
        hr_actor a = actor_of(s);
        sub = hr_op_subscribe_finish(&a, q->channel, q->len, q->pattern, &q->pol, &res);
    }
    if (!sub) {
        if (q->nested) append_op_error(&q->pc->b, res);
        else set_op_error(q->r, res);
        req_done(q);
        return;
    }
    if (ans->data) q->hook_data = hr_strndup(ans->data, ans->data_len);
    char *info = ans->info ? hr_strndup(ans->info, ans->info_len) : NULL;
    sub_go_on(q, sub, info);
    hr_free(info);
}

/* Subscribe: the result object goes into r (a reserved piece the engine's
 * or the hook's answer fills). Returns 0 or an HR_PE_* code (nothing
 * written). nested: a subscription of connect. */
static int do_subscribe(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd, hr_str ch, bool recover,
                        bool granted, bool nested, const char **detail)
{
    hr_sub *sub = NULL;
    hr_actor a = actor_of(s);
    hr_op_sub_req req = {.granted = granted, .token = cmd ? cmd->token.p : NULL, .token_len = cmd ? cmd->token.n : 0,
                         .data = cmd ? cmd->data.p : NULL, .data_len = cmd ? cmd->data.n : 0};
    sreq *x = req_new(s, f, r);
    x->nested = nested;
    x->channel = hr_strndup(ch.p, ch.n);
    x->len = ch.n;
    x->want_recover = recover && cmd && cmd->recover;
    if (x->want_recover) {
        x->since = cmd->offset;
        char epoch[64] = "";
        if (!cstr(cmd->epoch, epoch, sizeof(epoch))) epoch[0] = '\0';
        x->epoch = hr_strdup(epoch);
    }
    hr_op_result res = hr_op_subscribe(&a, ch.p, ch.n, &req, &x->pol, &x->pattern, &sub, on_sub_hook, x);
    if (res.rc == HR_OP_PENDING) return 0;
    if (res.rc) {
        req_done(x); /* an empty piece: the error is the command's */
        return native_err(res, detail);
    }
    sub_go_on(x, sub, NULL);
    return 0;
}

static void leave_channel(hr_session *s, hr_sub *sub)
{
    if (sub->hold) { /* its subscribe is still being answered: the held publications go nowhere */
        ((shold *)sub->hold)->sub = NULL;
        sub->hold = NULL;
    }
    hr_actor a = actor_of(s);
    hr_op_leave(&a, sub, !s->loop_gone);
}

/* ---- commands -------------------------------------------------------------------- */

static void engine_failed(sreq *q, int err, const char *what)
{
    hr_logf(HR_LOG_WARN, "engine_failed", "client %s: %s: the engine failed (%s)", hr_client_id(&q->s->client).s, what, hr_strerror(err));
    if (err == HR_ERR_STORAGE) set_error(q->r, HR_PE_STORAGE_UNAVAILABLE, "storage unavailable");
    else set_error(q->r, HR_PE_INTERNAL, "the engine is unavailable: retry later");
}

/* ---- publish: in order behind a publish waiting for its hook (see the top) ---- */

static void start_publish(hr_session *s, sreq *x, const char *ch, size_t len, const char *data, size_t dlen,
                          const char *idem, size_t idem_len);
static void refused(sreq *x, hr_op_result res);

/* q's publish is answered: the publishes that waited behind it go (until
 * one waits for its hook again). Before q's req_done: that may be last. */
static void publish_next(sreq *q)
{
    hr_session *s = q->s;
    if (s->pub_busy != q) return;
    s->pub_busy = NULL;
    while (s->pub_wait && !s->pub_busy && !s->closing) {
        sreq *x = s->pub_wait;
        s->pub_wait = x->wnext;
        if (!s->pub_wait) s->pub_wait_tail = NULL;
        start_publish(s, x, x->channel, x->len, x->data, x->dlen, x->idem, x->idem_len);
    }
}

static void on_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    sreq *q = ud;
    if (!req_alive(q)) return;
    if (err) engine_failed(q, err, "publish");
    else hr_buf_printf(&q->pc->b, "{\"offset\":%llu,\"epoch\":\"%s\"}", (unsigned long long)offset, epoch);
    publish_next(q);
    req_done(q);
}

/* The publish hook refused q's publish (ops.h). */
static void on_publish_refused(void *ud, hr_op_result res)
{
    sreq *q = ud;
    if (!req_alive(q)) return;
    res = backend_disconnect(q, res, "publish");
    set_op_error(q->r, res);
    publish_next(q);
    req_done(q);
}

static void start_publish(hr_session *s, sreq *x, const char *ch, size_t len, const char *data, size_t dlen,
                          const char *idem, size_t idem_len)
{
    hr_actor a = actor_of(s);
    hr_op_result res = hr_op_publish(&a, ch, len, data, dlen, idem, idem_len, on_published, on_publish_refused, x);
    if (res.rc == HR_OP_PENDING) s->pub_busy = x;
    else if (res.rc) refused(x, res);
}

/* A publish command: now, or after the publish waiting for its hook. */
static void do_publish(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd)
{
    sreq *x = req_new(s, f, r);
    const char *idem = cmd->idempotency_key.p;
    if (!s->pub_busy) {
        start_publish(s, x, cmd->channel.p, cmd->channel.n, cmd->data.p, cmd->data.n, idem, cmd->idempotency_key.n);
        return;
    }
    /* what waits counts against the reply budget (it is the client's bytes held) */
    size_t bytes = cmd->channel.n + cmd->data.n + cmd->idempotency_key.n + sizeof(*x);
    if (s->sink->queued(s->t) + s->reserved + bytes > s->budget) {
        set_error(r, HR_PE_TOO_MANY_REQUESTS, "too many publishes waiting for the backend's answer "
                                              "(channels.reply_budget): retry after their replies");
        req_done(x);
        return;
    }
    x->resv = bytes;
    s->reserved += bytes;
    f->reserved += bytes;
    x->channel = hr_strndup(cmd->channel.p, cmd->channel.n);
    x->len = cmd->channel.n;
    x->data = hr_strndup(cmd->data.p, cmd->data.n);
    x->dlen = cmd->data.n;
    x->idem = idem ? hr_strndup(idem, cmd->idempotency_key.n) : NULL;
    x->idem_len = cmd->idempotency_key.n;
    if (s->pub_wait_tail) s->pub_wait_tail->wnext = x;
    else s->pub_wait = x;
    s->pub_wait_tail = x;
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
    /* next: the cursor of the following page (since forward, before reverse) */
    if (more)
        hr_buf_printf(b, "],\"more\":true,\"next\":{\"offset\":%llu,\"epoch\":\"%s\"}}",
                      (unsigned long long)h->pubs[n - 1]->offset, h->epoch);
    else
        hr_buf_append(b, "]}", 2);
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

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whole seconds of the same clock (time() reads a coarse clock that may lag
 * CLOCK_REALTIME by a tick: a ttl computed with it right after a second
 * boundary came out one second long). */
static int64_t wall_now(void) { return wall_now_ms() / 1000; }

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
    hr_logf(HR_LOG_INFO, "client_disconnected", "client %s: %s, disconnecting (code %d)", hr_client_id(&s->client).s, reason, code);
    sink_disconnect(s, code, reason, false);
}

static hr_wheel *wheel_of(hr_session *s) { return &s->client.wh->loop->wheel; }

static void proxied_expiry(hr_session *s, exp_timer *x);

static void on_exp_timer(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    exp_timer *x = HR_CONTAINER_OF(t, exp_timer, t);
    hr_session *s = x->s;
    if (s->closing) return;
    if (s->be && s->be->proxied) {
        proxied_expiry(s, x);
        return;
    }
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

/* How long before a proxied connection's expiry the refresh hook is asked
 * (0 without a refresh hook: the timer fires at expiry). */
static int64_t refresh_lead_ms(hr_session *s)
{
    if (!s->be || !s->be->proxied || !hr_proxy_enabled(s->be->p, HR_HOOK_REFRESH)) return 0;
    return 3 * (int64_t)hr_proxy_options(s->be->p)->hook[HR_HOOK_REFRESH].timeout_ms;
}

/* Track (or stop tracking) the connection's expiry (its token's exp, or the
 * backend's expire_at). */
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
    int64_t in = exp * 1000 - wall_now_ms() - refresh_lead_ms(s);
    hr_timer_start(wheel_of(s), &s->exp->t, in > 0 ? (uint64_t)in : 0);
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

/* client_connected (the transport's name and, when it gave it, the address). */
static void announce_connected(hr_session *s)
{
    if (!webhook_of(s)) return;
    hr_client_idstr id = hr_client_id(&s->client);
    hr_webhook_who who = who_of(s, &id);
    s->whc = hr_webhook_connected(webhook_of(s), &who, s->remote);
    hr_free(s->remote);
    s->remote = NULL;
}

/* The connect's token: true with *cl filled and its user, info and expiry
 * applied; false when refused (*err set, maybe a disconnect after f). */
static bool connect_token(hr_session *s, sframe *f, hr_str tok, hr_jwt_claims *cl, int *err, const char **detail)
{
    int rc = verify_conn_token(s, tok.p, tok.n, cl, detail);
    if (rc == HR_PE_TOO_MANY_REQUESTS) { /* not looked at: the client may retry */
        *err = rc;
        return false;
    }
    if (rc) {
        *err = rc;
        if (rc == HR_PE_TOKEN_EXPIRED) disconnect_after(f, HR_DISC_TOKEN_EXPIRED, "token expired");
        else disconnect_after(f, HR_DISC_INVALID_TOKEN, "invalid token");
        hr_logev(HR_LOG_INFO, "connect_refused", HR_LOG_S("client", hr_client_id(&s->client).s),
                 HR_LOG_S("msg", *detail ? *detail : "bad token"));
        note_refused(s, false, rc == HR_PE_TOKEN_EXPIRED ? HR_DISC_TOKEN_EXPIRED : HR_DISC_INVALID_TOKEN,
                     *detail ? *detail : "bad token");
        return false;
    }
    if (cl->channel) {
        hr_jwt_claims_free(cl);
        *err = HR_PE_UNAUTHORIZED;
        *detail = "a subscription token (it has \"channel\") is not a connection token";
        note_refused(s, false, HR_DISC_INVALID_TOKEN, *detail);
        disconnect_after(f, HR_DISC_INVALID_TOKEN, "invalid token");
        return false;
    }
    if (cl->sub) {
        hr_client_set_user(&s->client, cl->sub);
    }
    if (cl->info) {
        hr_free(s->info);
        s->info = hr_strndup(cl->info, cl->info_len);
    }
    arm_expiry(s, cl->has_exp, cl->exp);
    return true;
}

/* The connect reply; the session is connected. Subscribes the token's
 * channels (granted by it), then the backend's (a), then the client's subs:
 * every rule applies to the last two. */
static void connect_reply(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd, const hr_jwt_claims *cl,
                          bool with_user, const hr_proxy_answer *a)
{
    s->connected = true;
    announce_connected(s);
    cstr(cmd->name, s->name, sizeof(s->name));
    hr_buf_printf(text(r), "{\"client\":\"%s\",\"version\":\"" HERALD_VERSION "\",\"ping\":%lld", hr_client_id(&s->client).s,
                  (long long)(s->opts->ping_interval_ms / 1000));
    if (with_user) {
        hr_buf_append_str(text(r), ",\"user\":");
        hr_json_append_string(text(r), s->client.user, strlen(s->client.user));
        append_expiry(s, text(r));
    }
    if (a && a->data) {
        hr_buf_append_str(text(r), ",\"data\":");
        hr_buf_append_str(text(r), a->data);
    }
    size_t ntok = cl->n_channels, nbe = a ? a->nchannels : 0;
    if (cmd->nsubs || ntok || nbe) {
        hr_buf_append_str(text(r), ",\"subs\":{");
        for (size_t i = 0; i < ntok + nbe + cmd->nsubs; i++) {
            bool granted = i < ntok;
            hr_str ch = granted ? (hr_str){cl->channels[i], strlen(cl->channels[i])}
                        : i < ntok + nbe ? (hr_str){a->channels[i - ntok], strlen(a->channels[i - ntok])}
                                         : cmd->subs[i - ntok - nbe];
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
}

/* ---- backend hooks ----------------------------------------------------------------- */

/* id: s's formatted id, kept by the caller while the context is used */
static hr_proxy_ctx hook_ctx(hr_session *s, hr_client_idstr *id)
{
    *id = hr_client_id(&s->client);
    return (hr_proxy_ctx){.client = id->s, .transport = s->be->transport,
                          .protocol = s->enc == HR_NATIVE_MSGPACK ? "msgpack" : "json", .user = s->client.user};
}

/* Keep the backend's disconnect reason for as long as the session. */
static const char *keep_reason(hr_session *s, const char *reason)
{
    hr_free(s->be->reason);
    s->be->reason = hr_strdup(reason ? reason : "");
    return s->be->reason;
}

/* A backend's refusal (its error as-is, or a failure: 116) as r's reply;
 * a disconnect answer ends the session after f. */
static void backend_refused(hr_session *s, sframe *f, creply *r, const hr_proxy_result *res)
{
    note_refused(s, res->fail, res->fail ? HR_PE_BACKEND_UNAVAILABLE : (int)res->answer->code,
                 res->fail ? res->message : res->answer->message);
    if (res->fail) {
        set_error(r, HR_PE_BACKEND_UNAVAILABLE, res->message);
        return;
    }
    const hr_proxy_answer *a = res->answer;
    if (a->kind == HR_PROXY_ERROR) {
        set_error(r, (int)a->code, a->message ? a->message : "");
        r->as_is = true;
        r->temporary = a->temporary;
        return;
    }
    set_error(r, HR_PE_UNAUTHORIZED, "disconnected by the backend");
    disconnect_after(f, (int)a->code, keep_reason(s, a->message));
}

static void on_connect_answer(const hr_proxy_result *res, void *ud);

/* Ask the connect hook; true: the session waits for it (cl moved into
 * s->be), false: the call could not be made. */
static bool start_connect_hook(hr_session *s, const hr_cmd *cmd, hr_jwt_claims *cl)
{
    sbackend *be = s->be;
    hr_client_idstr id;
    hr_proxy_ctx ctx = hook_ctx(s, &id);
    ctx.user = NULL;
    if (be->origin) {
        ctx.remote_addr = be->origin->remote_addr;
        ctx.headers = be->origin->headers;
        ctx.nheaders = be->origin->nheaders;
    }
    ctx.data = cmd->data.p;
    ctx.data_len = cmd->data.n;
    if (hr_proxy_call(be->p, HR_HOOK_CONNECT, &ctx, NULL, on_connect_answer, s, &be->req)) return false;
    be->claims = *cl;
    memset(cl, 0, sizeof(*cl));
    return true;
}

/* Connect: true when it waits for the backend (execution pauses). */
static bool do_connect(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd, int *err, const char **detail)
{
    hr_str tok = cmd->token;
    if (!tok.n && s->http_token) tok = (hr_str){s->http_token, strlen(s->http_token)};
    hr_jwt_claims cl;
    memset(&cl, 0, sizeof(cl));
    if (tok.n && !connect_token(s, f, tok, &cl, err, detail)) return false;
    bool hook = s->be && hr_proxy_enabled(s->be->p, HR_HOOK_CONNECT) &&
                (!tok.n || hr_proxy_options(s->be->p)->connect_with_token);
    if (hook && start_connect_hook(s, cmd, &cl)) return true;
    if (hook) {
        *err = HR_PE_BACKEND_UNAVAILABLE;
        *detail = "the connect hook could not be called";
    } else {
        connect_reply(s, f, r, cmd, &cl, tok.n > 0, NULL);
    }
    hr_jwt_claims_free(&cl);
    return false;
}

/* The connect hook answered for the paused command r (cmd parsed again). */
static void connect_answered(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd, const hr_proxy_result *res)
{
    sbackend *be = s->be;
    if (res->fail || res->answer->kind != HR_PROXY_RESULT) {
        if (res->fail) hr_logf(HR_LOG_INFO, "connect_failed", "client %s: connect: %s", hr_client_id(&s->client).s, res->message);
        backend_refused(s, f, r, res);
        /* not connected: forget what a token of this attempt set (a retry starts over) */
        hr_client_set_user(&s->client, "");
        hr_free(s->info);
        s->info = NULL;
        arm_expiry(s, false, 0);
        return;
    }
    const hr_proxy_answer *a = res->answer;
    hr_client_set_user(&s->client, a->user);
    if (a->info) {
        hr_free(s->info);
        s->info = hr_strdup(a->info);
    }
    if (a->expire_at) {
        be->proxied = true;
        arm_expiry(s, true, a->expire_at);
    }
    connect_reply(s, f, r, cmd, &be->claims, true, a);
    hr_free(be->origin);
    be->origin = NULL;
}

static void on_refresh_answer(const hr_proxy_result *res, void *ud)
{
    hr_session *s = ud;
    sbackend *be = s->be;
    be->req = NULL;
    if (s->closing || !s->exp) return;
    const hr_proxy_answer *a = res->answer;
    if (!res->fail && a->kind == HR_PROXY_DISCONNECT) {
        disconnect_now(s, (int)a->code, keep_reason(s, a->message));
        return;
    }
    if (!res->fail && a->kind == HR_PROXY_RESULT) {
        if (a->expired) {
            disconnect_now(s, HR_DISC_TOKEN_EXPIRED, "session expired (the backend did not extend it)");
            return;
        }
        if (a->info) {
            hr_free(s->info);
            s->info = hr_strdup(a->info);
        }
        arm_expiry(s, a->expire_at > 0, a->expire_at);
        return;
    }
    /* a failure or an error answer: again after proxy.refresh_timeout, until expiry */
    int64_t left = s->exp->exp * 1000 - wall_now_ms();
    int64_t again = hr_proxy_options(be->p)->hook[HR_HOOK_REFRESH].timeout_ms;
    hr_timer_start(wheel_of(s), &s->exp->t, (uint64_t)HR_MAX(0, HR_MIN(left, again)));
}

/* A proxied connection's expiry timer: ask the refresh hook while before
 * expiry, end the connection at it. */
static void proxied_expiry(hr_session *s, exp_timer *x)
{
    sbackend *be = s->be;
    int64_t left = x->exp * 1000 - wall_now_ms();
    if (left <= 0) {
        disconnect_now(s, HR_DISC_TOKEN_EXPIRED, "session expired");
        return;
    }
    hr_client_idstr id;
    hr_proxy_ctx ctx = hook_ctx(s, &id);
    if (be->req || !hr_proxy_enabled(be->p, HR_HOOK_REFRESH) ||
        hr_proxy_call(be->p, HR_HOOK_REFRESH, &ctx, NULL, on_refresh_answer, s, &be->req))
        hr_timer_start(wheel_of(s), &x->t, (uint64_t)left);
}

static void on_rpc_answer(const hr_proxy_result *res, void *ud)
{
    sreq *q = ud;
    q->preq = NULL;
    hr_session *s = q->s;
    if (res->fail || res->answer->kind != HR_PROXY_RESULT) {
        backend_refused(s, q->f, q->r, res);
    } else if (res->answer->data && strlen(res->answer->data) + 16 > q->resv) {
        set_error(q->r, HR_PE_LIMIT_EXCEEDED, "the rpc answer is larger than channels.max_reply_size");
    } else {
        hr_buf_append_str(&q->pc->b, "{\"data\":");
        hr_buf_append_str(&q->pc->b, res->answer->data ? res->answer->data : "null");
        hr_buf_append(&q->pc->b, "}", 1);
    }
    req_done(q);
}

/* rpc: the backend answers into the command's reply piece. */
static void do_rpc(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd)
{
    char method[HR_CMD_MAX_METHOD + 1];
    const char *url = s->be && cstr(cmd->method, method, sizeof(method)) ? hr_proxy_rpc_url(s->be->p, method) : NULL;
    if (!url) {
        set_error(r, HR_PE_METHOD_NOT_FOUND, "no backend for this rpc method (proxy.rpc_url, proxy.rpc_routes)");
        return;
    }
    hr_actor a = actor_of(s);
    hr_op_result res = hr_op_may_rpc(&a, cmd->data.n);
    if (res.rc) {
        const char *detail = NULL;
        set_error(r, native_err(res, &detail), detail);
        return;
    }
    sreq *x = req_new(s, f, r);
    if (!reserve(s, f, x)) {
        set_error(r, HR_PE_TOO_MANY_REQUESTS, budget_detail);
        req_done(x);
        return;
    }
    hr_client_idstr id;
    hr_proxy_ctx ctx = hook_ctx(s, &id);
    ctx.method = method;
    ctx.data = cmd->data.p;
    ctx.data_len = cmd->data.n;
    if (hr_proxy_call(s->be->p, HR_HOOK_RPC, &ctx, url, on_rpc_answer, x, &x->preq)) {
        set_error(r, HR_PE_BACKEND_UNAVAILABLE, "the rpc call could not be made");
        req_done(x);
    }
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
        hr_buf_append_str(res, hr_client_id(&s->client).s);
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

/* Reserve room for x's answer (after the operation's rules): false, or
 * true with x answered 111 when the budget has too little left. */
static bool over_budget(hr_session *s, sframe *f, sreq *x)
{
    if (reserve(s, f, x)) return false;
    set_error(x->r, HR_PE_TOO_MANY_REQUESTS, budget_detail);
    req_done(x);
    return true;
}

/* Execute one command; true when it waits for the backend (a connect):
 * nothing more of this client runs until it answers. */
static bool exec(hr_session *s, sframe *f, creply *r, const hr_cmd *cmd)
{
    const char *detail = NULL;
    int err = 0;
    r->id = cmd->id;
    if (cmd->error) {
        set_error(r, cmd->error, cmd->error_detail);
        return false;
    }
    if (!s->connected && cmd->type != HR_CMD_CONNECT) {
        set_error(r, HR_PE_NOT_CONNECTED, "send connect first");
        return false;
    }
    hr_actor a = actor_of(s);
    switch (cmd->type) {
    case HR_CMD_CONNECT:
        if (s->connected) {
            err = HR_PE_BAD_REQUEST;
            detail = "already connected";
            break;
        }
        if (do_connect(s, f, r, cmd, &err, &detail)) return true;
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
    case HR_CMD_PUBLISH:
        do_publish(s, f, r, cmd);
        break;
    case HR_CMD_HISTORY: {
        char epoch[64] = "", before[64] = "";
        cstr(cmd->since_epoch, epoch, sizeof(epoch));
        cstr(cmd->before_epoch, before, sizeof(before));
        /* one more than the page: tells whether there is more */
        size_t page = (size_t)s->opts->ops.history_max_limit;
        if (cmd->limit >= 0 && (uint64_t)cmd->limit < page) page = (size_t)cmd->limit;
        hr_history_query q = {.has_since = cmd->has_since, .since_offset = cmd->since_offset, .since_epoch = epoch,
                              .limit = page ? (int64_t)page + 1 : 0, .reverse = cmd->reverse,
                              .has_before = cmd->has_before, .before_offset = cmd->before_offset,
                              .before_epoch = before, .has_since_time = cmd->has_since_time,
                              .since_time_ms = cmd->since_time};
        sreq *x = req_new(s, f, r);
        x->page = page;
        hr_chan_policy pol; /* every rule, then the budget, then the engine */
        hr_op_result res = hr_op_may_history(&a, cmd->channel.p, cmd->channel.n, &q, &pol);
        if (res.rc) refused(x, res);
        else if (!over_budget(s, f, x))
            hr_op_history_read(&a, cmd->channel.p, cmd->channel.n, &pol, &q, on_history, x);
        break;
    }
    case HR_CMD_PRESENCE:
    case HR_CMD_PRESENCE_STATS: {
        sreq *x = req_new(s, f, r);
        x->stats = cmd->type == HR_CMD_PRESENCE_STATS;
        hr_op_result res = hr_op_may_presence(&a, cmd->channel.p, cmd->channel.n);
        if (res.rc) refused(x, res);
        else if (x->stats || !over_budget(s, f, x))
            hr_op_presence_read(&a, cmd->channel.p, cmd->channel.n, on_presence, x);
        break;
    }
    case HR_CMD_PING:
        hr_buf_append(text(r), "{}", 2);
        break;
    case HR_CMD_RPC:
        do_rpc(s, f, r, cmd);
        break;
    default:
        err = HR_PE_METHOD_NOT_FOUND;
        break;
    }
    if (err) set_error(r, err, detail);
    return false;
}

/* ---- lifecycle ------------------------------------------------------------------- */

hr_native_encoding hr_session_encoding(const hr_session *s) { return s->enc; }

hr_session *hr_session_new(hr_whub *wh, const hr_proto_opts *opts, const hr_sink_vt *sink, void *t,
                           hr_native_encoding enc)
{
    hr_session *s = hr_calloc(1, sizeof(*s));
    s->client.vt = &session_client_vt;
    s->client.wh = wh;
    hr_client_set_user(&s->client, "");
    hr_client_id_random(&s->client);
    s->opts = opts;
    s->sink = sink;
    s->t = t;
    s->enc = enc;
    hr_session_set_reply_budget(s, (size_t)opts->max_queued_bytes);
    hr_hub_client_add(&s->client);
    return s;
}

static int parse_frame(hr_session *s, const uint8_t *data, size_t len, hr_native_batch *batch)
{
    hr_native_limits lim = {(size_t)s->opts->ops.max_commands_per_frame, (size_t)s->opts->ops.max_channel_length};
    return s->enc == HR_NATIVE_MSGPACK ? hr_native_parse_msgpack(data, len, &lim, batch)
                                       : hr_native_parse(data, len, &lim, batch);
}

/* Execute f's commands from `from` on: false when a connect waits for the
 * backend (f stays unsealed, s->be->paused). */
static bool run_cmds(hr_session *s, sframe *f, const hr_native_batch *b, size_t from)
{
    for (size_t i = from; i < b->n && !f->disc_code; i++) {
        f->n = i + 1;
        if (exec(s, f, &f->cmds[i], &b->cmds[i])) {
            s->be->paused = f;
            s->be->next = i + 1;
            return false;
        }
    }
    f->sealed = true;
    return true;
}

/* One frame, executed now. */
static void process_frame(hr_session *s, const uint8_t *data, size_t len)
{
    hr_native_batch batch = {0};
    int rc = parse_frame(s, data, len, &batch);
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
    if (!run_cmds(s, f, &batch, 0)) { /* the rest is executed from a copy when the backend answers */
        s->be->held = hr_malloc(len ? len : 1);
        memcpy(s->be->held, data, len);
        s->be->held_len = len;
    }
    hr_native_batch_free(&batch);
    pump(s);
}

/* A frame that arrived while a connect waits for the backend: queued in
 * order, at most the reply budget's bytes. */
static void queue_frame(hr_session *s, const uint8_t *data, size_t len)
{
    sbackend *be = s->be;
    if (be->queued + len > s->budget) {
        s->closing = true;
        hr_logev(HR_LOG_INFO, "client_too_many_commands", HR_LOG_S("client", hr_client_id(&s->client).s), HR_LOG_I("code", HR_DISC_TOO_MANY_REQUESTS),
                 HR_LOG_S("msg", "too many commands while connect waits for the backend, disconnecting"));
        s->sink->disconnect(s->t, HR_DISC_TOO_MANY_REQUESTS, "too many commands before connect was answered", false);
        return;
    }
    qframe *q = hr_malloc(sizeof(*q) + len);
    q->next = NULL;
    q->len = len;
    memcpy(q->data, data, len);
    if (be->queue_tail) be->queue_tail->next = q;
    else be->queue = q;
    be->queue_tail = q;
    be->queued += len;
}

static void on_connect_answer(const hr_proxy_result *res, void *ud)
{
    hr_session *s = ud;
    sbackend *be = s->be;
    be->req = NULL;
    sframe *f = be->paused;
    size_t i = be->next - 1;
    be->paused = NULL;
    hr_native_batch b = {0};
    if (s->closing || parse_frame(s, be->held, be->held_len, &b) || i >= b.n) { /* parsed before: cannot fail */
        hr_native_batch_free(&b);
        return;
    }
    connect_answered(s, f, &f->cmds[i], &b.cmds[i], res);
    hr_jwt_claims_free(&be->claims);
    memset(&be->claims, 0, sizeof(be->claims));
    bool done = run_cmds(s, f, &b, i + 1);
    hr_native_batch_free(&b);
    if (done) {
        hr_free(be->held);
        be->held = NULL;
    }
    pump(s);
    while (be->queue && !be->paused && !s->closing) {
        qframe *q = be->queue;
        be->queue = q->next;
        if (!be->queue) be->queue_tail = NULL;
        be->queued -= q->len;
        process_frame(s, q->data, q->len);
        hr_free(q);
    }
}

void hr_session_on_frame(hr_session *s, const uint8_t *data, size_t len)
{
    if (s->closing) return;
    if (s->be && s->be->paused) queue_frame(s, data, len);
    else process_frame(s, data, len);
}

void hr_session_set_backend(hr_session *s, hr_proxy *p, const char *transport, hr_proxy_origin *origin)
{
    if (!hr_proxy_enabled(p, HR_HOOK_CONNECT)) { /* made for client_connected only (hr_session_set_remote) */
        hr_free(origin);
        origin = NULL;
    }
    if (!p) return;
    if (!s->be) s->be = hr_calloc(1, sizeof(*s->be));
    s->be->p = p;
    s->be->transport = transport;
    hr_free(s->be->origin);
    s->be->origin = origin;
}

/* The session goes: cancel its backend calls (unless the loop is gone with
 * its proxy) and free what waited for them. */
static void backend_free(hr_session *s)
{
    sbackend *be = s->be;
    if (!be) return;
    if (be->req && !s->loop_gone) hr_proxy_cancel(be->p, be->req);
    while (be->queue) {
        qframe *q = be->queue;
        be->queue = q->next;
        hr_free(q);
    }
    hr_jwt_claims_free(&be->claims);
    hr_free(be->held);
    hr_free(be->origin);
    hr_free(be->reason);
    hr_free(be);
    s->be = NULL;
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

void hr_session_set_remote(hr_session *s, const char *addr)
{
    hr_free(s->remote);
    s->remote = webhook_of(s) && addr && addr[0] ? hr_strdup(addr) : NULL;
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
    for (sreq *q = s->pub_wait, *next; q; q = next) { /* never started: no answer will come */
        next = q->wnext;
        if (q->prev) q->prev->next = q->next;
        else s->reqs = q->next;
        if (q->next) q->next->prev = q->prev;
        req_free(q);
    }
    for (sreq *q = s->reqs, *next; q; q = next) {
        next = q->next;
        q->s = NULL; /* an engine's answer finds no session */
        if (!q->preq) continue;
        if (!s->loop_gone) hr_proxy_cancel(s->be->p, q->preq); /* a backend's is cancelled */
        hr_free(q);
    }
    s->reqs = NULL;
    backend_free(s);
    while (s->client.subs) leave_channel(s, s->client.subs);
    if (s->whc) {
        hr_client_idstr id = hr_client_id(&s->client);
    hr_webhook_who who = who_of(s, &id);
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
    hr_free(s->remote);
    hr_client_free_user(&s->client);
    hr_free(s);
}
