/* raw.c - raw WebSocket mode (see raw.h).
 *
 * Subscribing happens while the transport still answers the handshake, so a
 * refusal is an HTTP error and not a WebSocket close: every channel is
 * validated first (names, namespace policy, anonymous access), then
 * subscribed; a channel at its max_subscribers undoes the ones before it.
 * Presence and join events come only once every channel was accepted.
 *
 * Fan-out: the payload is the publication's data as stored (compact JSON
 * text), made once per publication per worker in slot HR_ENC_RAW; the
 * transport frames (and compresses) it once more per worker in the two
 * slots after it. Several subscriptions of one connection may match the
 * same publication (an exact channel and a pattern, two patterns): a raw
 * client cannot tell copies apart, so only the first matching subscription
 * delivers it (the exact one, else the first matching pattern in the
 * client's list).
 *
 * The query parsing, channel checks and subscribe-all-or-none live in
 * urlsubs.c, shared with Server-Sent Events (/sse), over the operations
 * (ops.h: the rules, presence and join/leave pushes); the
 * tokens are read and verified by the transport, as for /sse. A connection
 * token with exp costs one timer node (allocated only then): at exp the
 * connection is closed with 3005, as an SSE stream is ended (no refresh
 * without commands).
 *
 * Memory: an idle subscriber holds only the hr_raw below (client, options,
 * sink); what few connections use (a publisher's rate bucket and waiting
 * messages, the token's expiry timer and info, the webhook state) is in a
 * raw_more allocated on first need.
 *
 * Publishing to a channel whose namespace has proxy_publish asks the
 * backend's publish hook (ops.h) and publishes on its yes. Messages stay in
 * order: while one waits (until its engine answer), the later ones wait in
 * a queue whose bytes are bounded by channels.reply_budget (past it: close
 * 3009). Raw mode has no replies: a refusal closes the connection (3503
 * with the backend's message, its own disconnect code, or 3011 when the
 * backend is unavailable). */
#include "protocol/raw.h"
#include "backend/webhook.h"
#include "ops/ops.h"
#include "core/json.h"
#include "core/log.h"
#include "protocol/native.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The state few connections need (see the top). */
typedef struct raw_more {
    struct hr_raw *r;
    hr_bucket pub_bucket;      /* limits.publishes_per_connection */
    hr_timer exp;              /* the connection token's exp (armed only with one) */
    char *info;                /* the connection token's info (compact JSON) or NULL: presence, join/leave */
    struct raw_pub *busy;      /* the publish waiting for its hook (then its engine answer) */
    struct raw_pub *wait, *wait_tail; /* messages sent after it, in order */
    size_t waiting;            /* their bytes */
    hr_webhook_conn *whc;      /* client_disconnected's state (NULL: not wanted) */
} raw_more;

struct hr_raw {
    hr_client client;          /* must stay first: the hub hands it back */
    const hr_proto_opts *opts;
    const hr_sink_vt *sink;
    void *t;
    raw_more *more;            /* NULL until needed */
};                             /* 104 bytes (from the worker's pools); closing is client.closing */

/* Raw mode's name in client webhooks. */
#define RAW_TRANSPORT "websocket-raw"

/* A message to a channel with proxy_publish (see the top). */
typedef struct raw_pub {
    struct raw_pub *next;
    hr_raw *r;                 /* NULL once the connection is gone */
    size_t len;
    char text[];
} raw_pub;

static raw_more *more_of(hr_raw *r)
{
    if (!r->more) {
        r->more = hr_calloc(1, sizeof(*r->more));
        r->more->r = r;
        hr_timer_init(&r->more->exp, NULL);
    }
    return r->more;
}

static hr_webhook_conn *whc_of(const hr_raw *r) { return r->more ? r->more->whc : NULL; }

static const char *info_of(const hr_raw *r) { return r->more ? r->more->info : NULL; }

static void raw_close(hr_raw *r, int code, const char *reason, bool drop_queued)
{
    if (r->client.closing) return;
    r->client.closing = true;
    hr_webhook_closing(whc_of(r), code, reason);
    r->sink->disconnect(r->t, code, reason, drop_queued);
}

/* ---- pushes ------------------------------------------------------------------------ */

/* The publication's raw payload, once per worker: its data ("null" for none). */
static void raw_payload(const hr_pub *pub, hr_enc_cache *cache)
{
    if (!cache->slot[HR_ENC_RAW])
        cache->slot[HR_ENC_RAW] = pub->data_len ? hr_sbuf_new(pub->data, pub->data_len) : hr_sbuf_new("null", 4);
}

static void raw_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    hr_raw *r = (hr_raw *)c;
    if (r->client.closing || pub->kind != HR_PUB_MESSAGE) return; /* no join/leave pushes in raw mode */
    if (!hr_urlsubs_delivers(c, sub, pub)) return;
    if (r->sink->queued(r->t) > (size_t)r->opts->max_queued_bytes) {
        hr_whub_count(&c->wh->slow_disconnects, 1);
        hr_logev(HR_LOG_INFO, "client_slow", HR_LOG_S("client", hr_client_id(c).s), HR_LOG_I("code", HR_DISC_SLOW),
                 HR_LOG_S("msg", "slow consumer, disconnecting"));
        raw_close(r, HR_DISC_SLOW, "slow consumer: reconnect", true);
        return;
    }
    raw_payload(pub, cache);
    r->sink->send_shared(r->t, cache->slot[HR_ENC_RAW], cache, HR_ENC_RAW, false);
}

/* A channel's run as one queue entry when raw_on_pub would queue every one
 * of its publications (hub.h hr_run): not for a closing client or a queue
 * already over the limit (raw_on_pub disconnects it), nor when the run would
 * take it over (raw_on_pub checks before each frame). */
static bool raw_on_run(hr_client *c, hr_sub *sub, hr_run *run)
{
    hr_raw *r = (hr_raw *)c;
    if (r->client.closing || !r->sink->send_run) return false;
    if (!hr_urlsubs_delivers(c, sub, run->pubs[0])) return true; /* one channel: none of them is for sub */
    size_t max = (size_t)r->opts->max_queued_bytes;
    if (r->sink->queued(r->t) > max) return false;
    for (uint32_t i = 0; i < run->n; i++) raw_payload(run->pubs[i], &run->caches[i]);
    return r->sink->send_run(r->t, run, HR_ENC_RAW, false, max);
}

static void leave_channel(hr_raw *r, hr_sub *sub);

/* A server command from the API: unsubscribe (closing with 1000 when no
 * channel is left) or disconnect (close with its code and reason). */
static void raw_on_command(hr_client *c, hr_sub *sub, const hr_pub *cmd)
{
    hr_raw *r = (hr_raw *)c;
    if (r->client.closing) return;
    const char *reason = hr_pub_reason(cmd);
    if (cmd->kind == HR_PUB_UNSUBSCRIBE) {
        leave_channel(r, sub);
        if (!c->nsubs) raw_close(r, HR_RAW_CLOSE_NORMAL, reason, false);
        return;
    }
    hr_logev(HR_LOG_INFO, "client_disconnected_by_api", HR_LOG_S("client", hr_client_id(c).s), HR_LOG_I("code", cmd->code),
             HR_LOG_S("msg", "disconnected by the server API"));
    raw_close(r, cmd->code, reason, false);
}

static const hr_client_vt raw_client_vt = {.on_pub = raw_on_pub, .on_command = raw_on_command, .on_run = raw_on_run};

static void leave_channel(hr_raw *r, hr_sub *sub) { hr_urlsubs_leave(&r->client, &r->opts->ops, info_of(r), sub); }

/* ---- lifecycle ------------------------------------------------------------------------ */

static const hr_urlsubs_who raw_who = {"raw clients", "/ws/raw?channel=NAME", false};

static hr_wheel *wheel_of(hr_raw *r) { return &r->client.wh->loop->wheel; }

static void on_exp(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    hr_raw *r = HR_CONTAINER_OF(t, raw_more, exp)->r;
    hr_logev(HR_LOG_INFO, "client_token_expired", HR_LOG_S("client", hr_client_id(&r->client).s), HR_LOG_I("code", HR_DISC_TOKEN_EXPIRED),
             HR_LOG_S("msg", "token expired, disconnecting"));
    raw_close(r, HR_DISC_TOKEN_EXPIRED, "token expired", false);
}

static void arm_exp(hr_raw *r, int64_t exp)
{
    raw_more *m = more_of(r);
    hr_timer_init(&m->exp, on_exp);
    int64_t in = exp - (int64_t)time(NULL);
    hr_timer_start(wheel_of(r), &m->exp, in > 0 ? (uint64_t)in * 1000 : 0);
}

/* id: r's formatted id, kept by the caller while the result is used */
static hr_webhook_who who_of(hr_raw *r, const hr_client_idstr *id)
{
    return (hr_webhook_who){id->s, r->client.user, RAW_TRANSPORT};
}

/* client_connected, once the channels are accepted. */
static void announce_connected(hr_raw *r, const char *remote)
{
    hr_webhook *wh = r->opts->ops.webhook;
    if (!wh) return;
    hr_client_idstr id = hr_client_id(&r->client);
    hr_webhook_who who = who_of(r, &id);
    more_of(r)->whc = hr_webhook_connected(wh, &who, remote && remote[0] ? remote : NULL);
}

hr_raw *hr_raw_new(hr_whub *wh, const hr_proto_opts *opts, const hr_sink_vt *sink, void *t, const char *query,
                   size_t qlen, const hr_raw_token *tok, int *status, char *msg, size_t msgcap)
{
    if (!query) qlen = 0;
    char *buf = hr_malloc(qlen + 1); /* decoded values are never longer than the query */
    hr_chan_ref *refs = NULL;
    size_t n = 0;
    const hr_urlsubs_auth *who = tok ? tok->who : NULL;
    int st = hr_urlsubs_parse_auth(&opts->ops, &raw_who, who, query, qlen, buf, &refs, &n, msg, msgcap);
    if (st) {
        hr_free(buf);
        *status = st;
        return NULL;
    }
    hr_raw *r = hr_pool_alloc(&wh->pools, sizeof(*r));
    r->client.vt = &raw_client_vt;
    r->client.wh = wh;
    hr_client_set_user(&r->client, who ? who->user : NULL);
    hr_client_id_random(&r->client);
    r->opts = opts;
    r->sink = sink;
    r->t = t;
    st = hr_urlsubs_subscribe(&r->client, refs, n, msg, msgcap);
    if (st) {
        *status = st;
        hr_client_free_user(&r->client);
        hr_pool_free(&wh->pools, r);
        hr_free(refs);
        hr_free(buf);
        return NULL;
    }
    /* every channel accepted: presence and join events (concrete channels only) */
    announce_connected(r, tok ? tok->remote : NULL);
    if (tok && tok->info) more_of(r)->info = hr_strndup(tok->info, tok->info_len);
    hr_urlsubs_announce_info(&r->client, &opts->ops, refs, n, info_of(r));
    hr_free(refs);
    hr_free(buf);
    hr_hub_client_add(&r->client);
    if (tok && tok->exp) arm_exp(r, tok->exp);
    return r;
}

void hr_raw_closed(hr_raw *r, int code, const char *reason)
{
    if (r) hr_webhook_closing(whc_of(r), code, reason);
}

hr_client_idstr hr_raw_client_id(const hr_raw *r) { return hr_client_id(&r->client); }

static void on_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    HR_UNUSED(ud);
    HR_UNUSED(offset);
    HR_UNUSED(epoch);
    /* no reply in raw mode: the publisher sees its message come back (it is subscribed) */
    if (err) hr_logf(HR_LOG_WARN, "publish_failed", "raw mode: a client publication failed: %s", hr_strerror(err));
}

/* raw mode's wire form of a refused publish: the close code (the text is
 * the operation's detail, or says which limit for a rate). */
static int raw_close_code(hr_op_result res)
{
    switch (res.rc) {
    case HR_OP_RATE_LIMITED: return HR_DISC_TOO_MANY_REQUESTS;
    case HR_OP_TOO_BIG: return HR_RAW_CLOSE_TOO_BIG;
    case HR_OP_BACKEND_DISCONNECT: return res.code;
    case HR_OP_BACKEND_UNAVAILABLE:
    case HR_OP_BACKEND_TIMEOUT:
    case HR_OP_BACKEND_BAD_ANSWER: return HR_DISC_BACKEND_UNAVAILABLE;
    default: return HR_DISC_FORBIDDEN;
    }
}

static const char *raw_close_reason(hr_op_result res)
{
    /* raw mode has no replies to refuse one message with: the publisher is told by the close */
    if (res.rc == HR_OP_RATE_LIMITED) return "publishing too fast (limits.publishes_per_connection)";
    return res.detail ? res.detail : hr_op_rc_name(res.rc);
}

/* ---- publishing through the backend's hook (see the top) ---- */

static void start_hooked(hr_raw *r, raw_pub *rp);

/* rp's publish is answered: the next waiting message goes. */
static void hooked_done(raw_pub *rp)
{
    hr_raw *r = rp->r;
    hr_free(rp);
    if (!r) return;
    raw_more *m = r->more; /* made by publish_hooked */
    m->busy = NULL;
    while (m->wait && !m->busy && !r->client.closing) {
        raw_pub *x = m->wait;
        m->wait = x->next;
        if (!m->wait) m->wait_tail = NULL;
        m->waiting -= x->len;
        start_hooked(r, x);
    }
}

static void on_hooked_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    on_published(NULL, err, offset, epoch);
    hooked_done(ud);
}

static void on_hooked_refused(void *ud, hr_op_result res)
{
    raw_pub *rp = ud;
    if (rp->r) raw_close(rp->r, raw_close_code(res), raw_close_reason(res), false);
    hooked_done(rp);
}

static void start_hooked(hr_raw *r, raw_pub *rp)
{
    size_t clen = 0;
    const char *ch = hr_hub_sub_channel(r->client.subs, &clen);
    hr_actor a = {.kind = HR_ACTOR_CLIENT, .opts = &r->opts->ops, .wh = r->client.wh, .engine = r->client.wh->hub->engine,
                  .user = r->client.user, .client = &r->client, .pub_bucket = &more_of(r)->pub_bucket};
    hr_op_result res = hr_op_publish(&a, ch, clen, rp->text, rp->len, NULL, 0, on_hooked_published, on_hooked_refused,
                                     rp);
    if (res.rc == HR_OP_PENDING) {
        r->more->busy = rp;
        return;
    }
    hr_free(rp); /* refused now: no callback has it */
    if (res.rc) raw_close(r, raw_close_code(res), raw_close_reason(res), false);
}

static void publish_hooked(hr_raw *r, const char *text, size_t len)
{
    raw_pub *rp = hr_malloc(sizeof(*rp) + len);
    *rp = (raw_pub){.r = r, .len = len};
    memcpy(rp->text, text, len);
    raw_more *m = more_of(r);
    if (!m->busy) {
        start_hooked(r, rp);
        return;
    }
    if (m->waiting + len > (size_t)r->opts->ops.reply_budget) {
        hr_free(rp);
        raw_close(r, HR_DISC_TOO_MANY_REQUESTS, "too many messages waiting for the backend (channels.reply_budget)",
                  false);
        return;
    }
    m->waiting += len;
    if (m->wait_tail) m->wait_tail->next = rp;
    else m->wait = rp;
    m->wait_tail = rp;
}

void hr_raw_on_message(hr_raw *r, bool binary, const uint8_t *data, size_t len)
{
    if (r->client.closing) return;
    if (binary) {
        raw_close(r, HR_DISC_BAD_REQUEST, "binary messages are not supported in raw mode (send JSON text)", false);
        return;
    }
    hr_sub *sub = r->client.subs;
    if (r->client.nsubs != 1 || !sub) {
        raw_close(r, HR_DISC_FORBIDDEN, "publishing needs exactly one channel in the URL", false);
        return;
    }
    /* bound the jansson tree (as the native protocol does): every value but
     * the first follows one of these bytes (so a message shorter than the
     * bound cannot pass it: no count) */
    size_t values = 1;
    if (len >= HR_NATIVE_MAX_VALUES)
        for (size_t i = 0; i < len; i++) values += data[i] == ',' || data[i] == '[' || data[i] == '{';
    if (values > HR_NATIVE_MAX_VALUES) {
        raw_close(r, HR_DISC_BAD_REQUEST, "too many JSON values in one message", false);
        return;
    }
    /* what is published is the message's compact form (hr_json_dump); a
     * message already in it is published as it came, unparsed */
    char *dumped = NULL;
    const char *text = (const char *)data;
    size_t dlen = len, clen = 0;
    if (!hr_json_is_canonical(text, len)) {
        json_error_t jerr;
        json_t *v = json_loadb((const char *)data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!v) {
            raw_close(r, HR_DISC_BAD_REQUEST, "message is not JSON", false);
            return;
        }
        text = dumped = hr_json_dumps(v, &dlen);
        json_decref(v);
    }
    const char *ch = hr_hub_sub_channel(sub, &clen);
    hr_actor a = {.kind = HR_ACTOR_CLIENT, .opts = &r->opts->ops, .wh = r->client.wh, .engine = r->client.wh->hub->engine,
                  .user = r->client.user, .client = &r->client, .pub_bucket = &more_of(r)->pub_bucket};
    hr_chan_policy pol; /* which path: the rule itself is applied by the operation */
    if (!hr_ops_policy(&r->opts->ops, ch, clen, &pol) && pol.proxy_publish) {
        publish_hooked(r, text, dlen);
        free(dumped);
        return;
    }
    hr_op_result res = hr_op_publish(&a, ch, clen, text, dlen, NULL, 0, on_published, NULL, NULL);
    free(dumped);
    if (res.rc) raw_close(r, raw_close_code(res), raw_close_reason(res), false);
}

void hr_raw_free(hr_raw *r)
{
    if (!r) return;
    raw_more *m = r->more;
    if (m) hr_timer_stop(wheel_of(r), &m->exp);
    hr_hub_client_remove(&r->client);
    while (r->client.subs) leave_channel(r, r->client.subs);
    if (m && m->whc) {
        hr_client_idstr id = hr_client_id(&r->client);
    hr_webhook_who who = who_of(r, &id);
        hr_webhook_disconnected(r->opts->ops.webhook, m->whc, &who, HR_DISC_CONN_CLOSED, "connection closed");
    }
    if (m) {
        hr_free(m->info);
        if (m->busy) m->busy->r = NULL; /* its answer frees it */
        for (raw_pub *x = m->wait, *next; x; x = next) {
            next = x->next;
            hr_free(x);
        }
        hr_free(m);
    }
    hr_client_free_user(&r->client);
    hr_pool_free(&r->client.wh->pools, r);
}
