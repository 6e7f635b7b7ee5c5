/* sse.c - Server-Sent Events (see sse.h and docs/transports.md).
 *
 * A stream is an hr_client of the hub (like a raw WebSocket client) and an
 * hr_conn transport at once: the wire format is part of the transport, so
 * there is no sink in between.
 *
 * Starting a stream (in the request's loop turn with the memory engine;
 * with an engine that answers later, the request waits - hr_http_defer -
 * and the publications reaching the subscriptions meanwhile are held -
 * ops.h's hr_op_hold - then delivered after the start minus those the
 * positions already cover):
 *   1. the request's checks (method, Origin, token, channels: urlsubs.c),
 *      each refusal an HTTP error with a JSON body;
 *   2. every channel subscribed with the hub (all or none), *then* its
 *      position asked from the engine, with the publications after the
 *      Last-Event-ID position when the client sent one; the subscription's
 *      offset is set to the position, so inbox copies of what the position
 *      already covers are skipped (the native subscribe does the same);
 *   3. the response head, ":ok", "retry:", the `connected` event carrying
 *      the starting id, then per channel the recovered publications (each
 *      with its id) or a `recovery_failed` event; presence and join events.
 * Everything queued in one turn leaves in one writev, before any live event.
 *
 * The id: the browser remembers only the last id it saw, so every id holds
 * the position of every concrete channel of the stream (the position of
 * the other channels being what this stream last delivered in them). The
 * starting id carries, for a channel being recovered, the position the
 * client asked for, and the id moves on with each recovered event; so a
 * stream cut in the middle of its recovery resumes from where it was cut,
 * and a failed recovery is reported again until the recovery_failed event
 * got through. Events without a position (join, leave, publications reached
 * through a pattern, heartbeats) carry no id line: the browser keeps the
 * last one.
 *
 * A channel's run (hub.h hr_run) goes to a stream of that one channel as
 * one queue entry (sse_on_run): such a stream's id is the channel's
 * position alone, so the run's events, id lines included, are the same
 * bytes for all of them.
 *
 * Ending a stream: disconnect events (API, shutdown) are queued and the
 * connection closes once they are written; a slow consumer's queue is
 * dropped first. Neither frees the client during a fan-out: the close comes
 * at the end of the loop turn (or, if the peer does not read, when
 * websocket.close_timeout passes). */
#include "transport/sse.h"
#include "backend/webhook.h"
#include "codec/urlquery.h"
#include "core/random.h"
#include "core/json.h"
#include "core/log.h"
#include "protocol/session.h"
#include "protocol/urlsubs.h"
#include "auth/auth.h"
#include "transport/worker.h"
#include "transport/http.h"
#include "transport/proxy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct hr_sse {
    hr_client client;          /* must stay first: the hub hands it back */
    hr_conn *c;
    const hr_transport_opts *opt;
    /* the URL's concrete channels, in URL order: subscription (NULL once
     * the server API unsubscribed it) and this stream's position */
    hr_sub **subs;
    hr_sse_pos *pos;
    size_t nchans;
    uint64_t last_tx;          /* loop time of the last bytes queued (heartbeat) */
    bool closing;
    bool envelope;             /* ?envelope=1: publications as {"channel","offset","data"} */
    int64_t exp_at;            /* connection token's exp (wall clock, s); 0 = none */
    struct sse_start *start;   /* non-NULL until the stream has started */
    char *info;                /* the connection token's info (compact JSON) or NULL: presence, join/leave */
    hr_webhook_conn *whc;      /* client_disconnected's state (NULL: not wanted, or not started) */
} hr_sse;

/* SSE's name in client webhooks. */
#define SSE_TRANSPORT "sse"

static const hr_conn_vt sse_vt;

/* ---- the id codec ------------------------------------------------------------------ */

static bool epoch_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
           ch == '-';
}

int hr_sse_id_parse(const char *s, size_t n, hr_sse_pos *out, size_t max)
{
    if (n == 0) return 0;
    size_t count = 0, i = 0;
    for (;;) {
        size_t e0 = i;
        while (i < n && epoch_char(s[i])) i++;
        size_t elen = i - e0;
        if (elen == 0 || elen > HR_EPOCH_LEN || i == n || s[i] != ':') return HR_ERR_PROTO;
        i++;
        size_t d0 = i;
        uint64_t v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            uint64_t d = (uint64_t)(s[i] - '0');
            if (v > (UINT64_MAX - d) / 10) return HR_ERR_PROTO;
            v = v * 10 + d;
            i++;
        }
        if (i == d0 || i - d0 > 20) return HR_ERR_PROTO;
        if (count < max) {
            memcpy(out[count].epoch, s + e0, elen);
            out[count].epoch[elen] = '\0';
            out[count].offset = v;
        }
        count++;
        if (count > (size_t)INT32_MAX) return HR_ERR_PROTO;
        if (i == n) return (int)count;
        if (s[i] != '.' || ++i == n) return HR_ERR_PROTO;
    }
}

size_t hr_sse_id_format(const hr_sse_pos *pos, size_t n, char *out)
{
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = '.';
        size_t el = strnlen(pos[i].epoch, HR_EPOCH_LEN);
        memcpy(p, pos[i].epoch, el);
        p += el;
        *p++ = ':';
        char digits[20];
        int nd = 0;
        uint64_t v = pos[i].offset;
        do {
            digits[nd++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (nd) *p++ = digits[--nd];
    }
    return (size_t)(p - out);
}

/* ---- writing events --------------------------------------------------------------------- */

/* "data: " lines for d[0..n): one per line of the text (publications are
 * compact JSON and have none, but info or reasons must not break the
 * framing whatever they hold). */
static void append_data(hr_buf *b, const char *d, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && d[j] != '\n' && d[j] != '\r') j++;
        hr_buf_append(b, "data: ", 6);
        hr_buf_append(b, d + i, j - i);
        hr_buf_append(b, "\n", 1);
        if (j >= n) return;
        if (d[j] == '\r' && j + 1 < n && d[j + 1] == '\n') j++;
        i = j + 1;
    }
}

/* "id: <position vector>\n" (nothing for a stream without concrete channels). */
static void append_id(hr_buf *b, const hr_sse *s)
{
    if (!s->nchans) return;
    hr_buf_append(b, "id: ", 4);
    uint8_t *dst = hr_buf_reserve(b, s->nchans * HR_SSE_ID_ENTRY_MAX + 1);
    b->len += hr_sse_id_format(s->pos, s->nchans, (char *)dst);
    hr_buf_append(b, "\n", 1);
}

/* A whole event: optional name, optional id, data, blank line. */
static void append_event(hr_buf *b, const hr_sse *s, const char *name, bool with_id, const char *data, size_t n)
{
    if (name) hr_buf_printf(b, "event: %s\n", name);
    if (with_id) append_id(b, s);
    append_data(b, data, n);
    hr_buf_append(b, "\n", 1);
}

static void queue(hr_sse *s, const hr_buf *b)
{
    hr_conn_send(s->c, b->data, b->len);
    s->last_tx = hr_conn_now(s->c);
}

/* The data lines of a publication: its data, or with the envelope
 * {"channel":C,"offset":N,"data":D} (a stream of several channels). */
static void append_pub_data(hr_buf *b, const hr_pub *pub, bool envelope)
{
    const char *d = pub->data_len ? pub->data : "null";
    size_t n = pub->data_len ? pub->data_len : 4;
    if (!envelope) {
        append_data(b, d, n);
        return;
    }
    hr_buf env = HR_BUF_INIT;
    hr_buf_append_str(&env, "{\"channel\":");
    hr_json_append_string(&env, pub->channel, pub->channel_len);
    hr_buf_printf(&env, ",\"offset\":%llu,\"data\":", (unsigned long long)pub->offset);
    hr_buf_append(&env, d, n);
    hr_buf_append(&env, "}", 1);
    append_data(b, (const char *)env.data, env.len);
    hr_buf_free(&env);
}

/* The shared part of a live event, made once per publication per worker
 * (and per form: plain or envelope). */
static hr_sbuf *encode_shared(const hr_pub *pub, bool envelope)
{
    hr_buf b = HR_BUF_INIT;
    if (pub->kind == HR_PUB_MESSAGE) {
        append_pub_data(&b, pub, envelope);
        hr_buf_append(&b, "\n", 1);
    } else { /* join / leave */
        hr_buf d = HR_BUF_INIT;
        hr_buf_append_str(&d, "{\"channel\":");
        hr_json_append_string(&d, pub->channel, pub->channel_len);
        hr_buf_append_str(&d, ",\"info\":");
        if (pub->info) hr_buf_append(&d, pub->info, pub->info_len);
        else hr_buf_append_str(&d, "null");
        hr_buf_append(&d, "}", 1);
        hr_buf_printf(&b, "event: %s\n", pub->kind == HR_PUB_JOIN ? "join" : "leave");
        append_data(&b, (const char *)d.data, d.len);
        hr_buf_append(&b, "\n", 1);
        hr_buf_free(&d);
    }
    hr_sbuf *sb = hr_sbuf_new(b.data, b.len);
    hr_buf_free(&b);
    return sb;
}

/* ---- ending a stream ------------------------------------------------------------------- */

/* End the stream once what is queued is written (drop: discard what has not
 * started to leave first), within websocket.close_timeout. Safe during a
 * fan-out: nothing is freed before the end of the loop turn. */
static void sse_end(hr_sse *s, bool drop)
{
    if (s->closing) return;
    s->closing = true;
    if (drop) hr_conn_drop_queued(s->c);
    hr_conn_close_after_flush(s->c);
    hr_conn_set_timer(s->c, (uint64_t)s->opt->ws_close_timeout_ms);
}

/* event: disconnect, then the end. */
static void sse_disconnect(hr_sse *s, int code, const char *reason)
{
    if (s->closing) return;
    hr_webhook_closing(s->whc, code, reason);
    hr_buf d = HR_BUF_INIT, b = HR_BUF_INIT;
    hr_buf_printf(&d, "{\"code\":%d,\"reason\":", code);
    hr_json_append_string(&d, reason, strlen(reason));
    hr_buf_printf(&d, ",\"reconnect\":%s}", code < 3500 ? "true" : "false");
    append_event(&b, s, "disconnect", false, (const char *)d.data, d.len);
    queue(s, &b);
    hr_buf_free(&d);
    hr_buf_free(&b);
    sse_end(s, false);
}

/* ---- the hub's callbacks ------------------------------------------------------------------ */

/* The most events of a run one entry carries (hub.c's runs are at most 64). */
#define RUN_IDS_MAX 64

static hr_sse_pos *pos_of(hr_sse *s, const hr_sub *sub)
{
    for (size_t i = 0; i < s->nchans; i++)
        if (s->subs[i] == sub) return &s->pos[i];
    return NULL;
}

static void hold_pub(hr_sse *s, hr_sub *sub, const hr_pub *pub);

/* The stream's position in pub's channel is now pub's. */
static void pos_move(hr_sse_pos *pos, const hr_pub *pub)
{
    pos->offset = pub->offset;
    if (strcmp(pos->epoch, pub->epoch) != 0) memcpy(pos->epoch, pub->epoch, sizeof(pos->epoch));
}

static void sse_on_pub(hr_client *cl, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    hr_sse *s = (hr_sse *)cl;
    if (s->closing) return;
    if (s->start) { /* the engine has not answered yet: after the start */
        hold_pub(s, sub, pub);
        return;
    }
    if (pub->kind == HR_PUB_MESSAGE && !hr_urlsubs_delivers(cl, sub, pub)) return;
    hr_conn *c = s->c;
    size_t max = (size_t)s->opt->sse_max_queued_bytes;
    /* a queue over the limit is first offered to the kernel, so a burst
     * within one loop turn is not mistaken for a slow reader */
    if (c->out.bytes > max && hr_conn_write_now(c) > max) {
        hr_whub_count(&c->w->hub->slow_disconnects, 1);
        hr_logf(HR_LOG_INFO, "client_slow", "sse client %s: slow consumer, ending the stream (it resumes with Last-Event-ID)", hr_client_id(cl).s);
        hr_webhook_closing(s->whc, HR_DISC_SLOW, "slow consumer: reconnect and recover");
        sse_end(s, true);
        return;
    }
    int slot = s->envelope && pub->kind == HR_PUB_MESSAGE ? HR_ENC_SSE_ENVELOPE : HR_ENC_SSE;
    if (!cache->slot[slot]) cache->slot[slot] = encode_shared(pub, s->envelope);
    hr_sse_pos *pos = pub->kind == HR_PUB_MESSAGE && !sub->is_pattern ? pos_of(s, sub) : NULL;
    if (pos) { /* this stream's own id line, then the shared lines */
        pos_move(pos, pub);
        char stack[512];
        size_t need = 5 + s->nchans * HR_SSE_ID_ENTRY_MAX;
        char *line = need <= sizeof(stack) ? stack : hr_malloc(need);
        memcpy(line, "id: ", 4);
        size_t n = 4 + hr_sse_id_format(s->pos, s->nchans, line + 4);
        line[n++] = '\n';
        hr_conn_send(c, line, n);
        if (line != stack) hr_free(line);
    }
    hr_conn_send_shared(c, cache->slot[slot]);
    s->last_tx = hr_conn_now(c);
}

/* Server API commands: unsubscribe (event: unsubscribe; the stream stays,
 * even with no channel left: an EventSource would only reconnect to the
 * same URL) or disconnect (event: disconnect, then the end). */
static void sse_on_command(hr_client *cl, hr_sub *sub, const hr_pub *cmd)
{
    hr_sse *s = (hr_sse *)cl;
    if (s->closing || s->start) return; /* not started: not in the worker's client list yet anyway */
    const char *reason = hr_pub_reason(cmd);
    if (cmd->kind == HR_PUB_DISCONNECT) {
        hr_logf(HR_LOG_INFO, "client_disconnected_by_api", "sse client %s: disconnected by the server API (code %d)", hr_client_id(cl).s, cmd->code);
        sse_disconnect(s, cmd->code, reason);
        return;
    }
    size_t len;
    const char *name = hr_hub_sub_channel(sub, &len);
    hr_buf d = HR_BUF_INIT, b = HR_BUF_INIT;
    hr_buf_append_str(&d, "{\"channel\":");
    hr_json_append_string(&d, name, len);
    hr_buf_printf(&d, ",\"code\":%d,\"reason\":", cmd->code);
    hr_json_append_string(&d, reason, strlen(reason));
    hr_buf_append(&d, "}", 1);
    append_event(&b, s, "unsubscribe", false, (const char *)d.data, d.len);
    queue(s, &b);
    hr_buf_free(&d);
    hr_buf_free(&b);
    for (size_t i = 0; i < s->nchans; i++)
        if (s->subs[i] == sub) s->subs[i] = NULL; /* its position stays in the id: the URL still names it */
    hr_urlsubs_leave(cl, &s->c->w->proto->ops, s->info, sub);
}

/* A run's events for a stream of its one channel, laid end to end in one
 * buffer made once per worker and form (run->slot[slot]): each event the
 * id line such a stream writes ("id: E:N\n": its id is that channel's
 * position alone, the same for every such stream) and the shared lines,
 * the bytes sse_on_pub would queue. */
static hr_sbuf *run_events(hr_run *run, int slot, bool envelope)
{
    if (run->slot[slot]) return run->slot[slot];
    char ids[RUN_IDS_MAX][HR_SSE_ID_ENTRY_MAX + 5];
    size_t idlen[RUN_IDS_MAX], total = 0;
    for (uint32_t i = 0; i < run->n; i++) {
        const hr_pub *pub = run->pubs[i];
        hr_enc_cache *cache = &run->caches[i];
        if (!cache->slot[slot]) cache->slot[slot] = encode_shared(pub, envelope);
        hr_sse_pos one = {.offset = pub->offset};
        memcpy(one.epoch, pub->epoch, sizeof(one.epoch));
        memcpy(ids[i], "id: ", 4);
        idlen[i] = 4 + hr_sse_id_format(&one, 1, ids[i] + 4);
        ids[i][idlen[i]++] = '\n';
        total += idlen[i] + cache->slot[slot]->len;
    }
    hr_sbuf *b = hr_sbuf_alloc(total);
    size_t at = 0;
    for (uint32_t i = 0; i < run->n; i++) {
        const hr_sbuf *lines = run->caches[i].slot[slot];
        memcpy(b->data + at, ids[i], idlen[i]);
        memcpy(b->data + at + idlen[i], lines->data, lines->len);
        at += idlen[i] + lines->len;
    }
    run->slot[slot] = b; /* the hub releases it after the run */
    return b;
}

/* A channel's run as one queue entry when sse_on_pub would queue every one
 * of its events (hub.h hr_run), for a started stream whose only concrete
 * channel it is (a stream of several channels writes ids of its own, which
 * no other stream shares: it takes the events one by one). Not for a queue
 * over sse.max_queued_bytes already or that the run would take over it
 * (sse_on_pub checks before each event). The entry costs what the events
 * would one by one: their bytes and two entries each (id line, lines). */
static bool sse_on_run(hr_client *cl, hr_sub *sub, hr_run *run)
{
    hr_sse *s = (hr_sse *)cl;
    if (s->closing || s->start || s->nchans != 1 || s->subs[0] != sub || run->n > RUN_IDS_MAX) return false;
    if (!hr_urlsubs_delivers(cl, sub, run->pubs[0])) return true; /* one channel: none of them is for sub */
    hr_conn *c = s->c;
    size_t max = (size_t)s->opt->sse_max_queued_bytes;
    if (c->out.bytes > max) return false;
    int slot = s->envelope ? HR_ENC_SSE_ENVELOPE : HR_ENC_SSE;
    if (!hr_conn_send_run(c, run_events(run, slot, s->envelope), 2 * run->n, max)) return false;
    pos_move(&s->pos[0], run->pubs[run->n - 1]);
    s->last_tx = hr_conn_now(c);
    return true;
}

static const hr_client_vt sse_client_vt = {.on_pub = sse_on_pub, .on_command = sse_on_command, .on_run = sse_on_run};

/* ---- the transport ------------------------------------------------------------------------- */

/* The connection's one timer: the next heartbeat or the token's expiry,
 * whichever comes first. */
static void arm_heartbeat(hr_sse *s)
{
    uint64_t iv = (uint64_t)s->opt->sse_heartbeat_interval_ms;
    uint64_t delay = UINT64_MAX;
    if (iv) {
        uint64_t now = hr_conn_now(s->c), next = s->last_tx + iv;
        delay = next > now ? next - now : 1;
    }
    if (s->exp_at) {
        int64_t left = s->exp_at - (int64_t)time(NULL);
        uint64_t ms = left > 0 ? (uint64_t)left * 1000 : 1;
        if (ms < delay) delay = ms;
    }
    if (delay == UINT64_MAX) hr_conn_stop_timer(s->c);
    else hr_conn_set_timer(s->c, delay);
}

/* Nothing the client sends after its request means anything: discarded. */
static ssize_t sse_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    HR_UNUSED(c);
    HR_UNUSED(data);
    return (ssize_t)len;
}

static void sse_on_eof(hr_conn *c) { hr_conn_close(c); }

static void sse_on_timer(hr_conn *c)
{
    hr_sse *s = c->proto;
    if (s->closing) { /* the end did not get written in time */
        hr_conn_close(c);
        return;
    }
    if (s->exp_at && (int64_t)time(NULL) >= s->exp_at) { /* no refresh on a stream: reconnect with a new token */
        sse_disconnect(s, HR_DISC_TOKEN_EXPIRED, "token expired");
        return;
    }
    uint64_t iv = (uint64_t)s->opt->sse_heartbeat_interval_ms;
    if (iv && hr_conn_now(c) - s->last_tx >= iv) {
        static const char ping[] = ": ping\n\n";
        hr_conn_send(c, ping, sizeof(ping) - 1);
        s->last_tx = hr_conn_now(c);
    }
    arm_heartbeat(s);
}

static void sse_on_shutdown(hr_conn *c)
{
    sse_disconnect(c->proto, HR_DISC_SHUTDOWN, "server shutting down, reconnect");
}

/* id: s's formatted id, kept by the caller while the result is used */
static hr_webhook_who who_of(hr_sse *s, const hr_client_idstr *id)
{
    return (hr_webhook_who){id->s, s->client.user, SSE_TRANSPORT};
}

static void sse_free(hr_sse *s)
{
    hr_hub_client_remove(&s->client);
    while (s->client.subs) hr_urlsubs_leave(&s->client, &s->c->w->proto->ops, s->info, s->client.subs);
    if (s->whc) {
        hr_client_idstr id = hr_client_id(&s->client);
    hr_webhook_who who = who_of(s, &id);
        hr_webhook_disconnected(s->c->w->proto->ops.webhook, s->whc, &who, HR_DISC_CONN_CLOSED, "connection closed");
    }
    hr_free(s->info);
    hr_free(s->subs);
    hr_free(s->pos);
    hr_client_free_user(&s->client);
    hr_free(s);
}

/* client_connected, once the stream started (remote: the client's address, or NULL). */
static void announce_connected(hr_sse *s, const char *remote)
{
    hr_webhook *wh = s->c->w->proto->ops.webhook;
    if (!wh) return;
    hr_client_idstr id = hr_client_id(&s->client);
    hr_webhook_who who = who_of(s, &id);
    s->whc = hr_webhook_connected(wh, &who, remote);
}

static void sse_on_free(hr_conn *c)
{
    if (c->proto) sse_free(c->proto);
}

static const hr_conn_vt sse_vt = {
    .on_data = sse_on_data,
    .on_eof = sse_on_eof,
    .on_timer = sse_on_timer,
    .on_shutdown = sse_on_shutdown,
    .on_free = sse_on_free,
    .name = "sse",
    .kind = HR_CK_SSE,
};

/* ---- the request ------------------------------------------------------------------------- */

static bool method_is(const hr_http_request *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

/* Origin policy (sse.allowed_origins, hr_http_origin_check), shared by /sse,
 * /poll and /stream: -1 refused; 0 allowed with no CORS headers (no Origin,
 * same origin); 1 allowed cross-origin, the CORS response headers written
 * into cors (with Access-Control-Expose-Headers when expose is not NULL). */
int hr_cors_check(const hr_transport_opts *opt, const hr_http_request *req, const char *expose, char *cors, size_t cap)
{
    cors[0] = '\0';
    int r = hr_http_origin_check(req, opt->sse_allowed_origins.v, opt->sse_allowed_origins.n);
    if (r <= 0) return r;
    const hr_http_header *o = hr_http_find_header(req, "origin");
    snprintf(cors, cap, "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n%s%s%sVary: Origin\r\n",
             (int)o->value_len, o->value, expose ? "Access-Control-Expose-Headers: " : "", expose ? expose : "",
             expose ? "\r\n" : "");
    return 1;
}

/* What the engine said about one channel when the stream started. */
typedef struct rec_ctx {
    struct sse_start *st;
    hr_sub *sub;
    bool got;                  /* the engine answered */
    bool complete;             /* every publication after the asked position is in pubs */
    hr_sse_pos now;            /* the channel's position */
    hr_pub **pubs;             /* referenced */
    size_t n;
} rec_ctx;

static void start_step(struct sse_start *st);

/* {"error":MESSAGE,"code":CODE} with an HTTP status (a backend's refusal or failure). */
static void respond_backend_to(hr_conn *c, int status, const char *cors, bool close, const char *message, int code)
{
    hr_worker_refused(c->w, hr_refuse_reason_of(status), c, NULL, NULL, status, message);
    hr_buf b = HR_BUF_INIT;
    hr_buf_append_str(&b, "{\"error\":");
    hr_json_append_string(&b, message ? message : "", message ? strlen(message) : 0);
    hr_buf_printf(&b, ",\"code\":%d}", code);
    hr_http_respond(c, status, "application/json", cors, (const char *)b.data, b.len, false, close);
    hr_buf_free(&b);
}

/* A subscribe hook's refusal, kept for the start (the first one wins). */
static void hook_refused(struct sse_start *st, hr_op_result res);

static void on_history(void *ud, int err, const hr_history *h)
{
    rec_ctx *x = ud;
    if (err) {
        start_step(x->st);
        return;
    }
    x->got = true;
    /* everything up to h->offset is in pubs or older than the position:
     * later inbox copies are skipped */
    if (x->sub->offset < h->offset) x->sub->offset = h->offset;
    x->now.offset = h->offset;
    memcpy(x->now.epoch, h->epoch, sizeof(x->now.epoch));
    x->complete = h->complete;
    if (h->complete && h->n) {
        x->pubs = hr_malloc(h->n * sizeof(*x->pubs));
        for (size_t i = 0; i < h->n; i++) x->pubs[i] = hr_pub_ref(h->pubs[i]);
        x->n = h->n;
    }
    start_step(x->st);
}

void hr_http_auth_free(hr_http_auth *a)
{
    hr_jwt_claims_free(&a->conn);
    for (size_t i = 0; i < a->ngranted; i++) hr_free(a->granted[i]);
    hr_free(a->granted);
}

/* A stream waiting for the engine's positions. */
typedef struct sse_start {
    hr_sse *s;
    hr_conn *c;
    bool gone;                 /* the connection closed before the start */
    bool deferred;             /* the request waits (hr_http_defer) */
    bool close;
    size_t pending;            /* engine answers awaited (+1 while asking) */
    rec_ctx *rec;
    size_t k;
    hr_sse_pos *asked;
    int nid;
    bool has_id;
    hr_chan_ref *refs;
    size_t n;
    char *buf;                 /* the decoded query refs point into */
    char *cors;
    hr_http_auth au;               /* its tokens: refs may point into their channel lists */
    hr_op_hold held;           /* publications reaching the subscriptions meanwhile (ops.h) */
    bool overflow;             /* more than channels.max_held_publications arrived: end after the start */
    /* the subscribe hooks (channels with proxy_subscribe): the first refusal */
    int hook_status;           /* 0: none */
    int hook_code;
    char *hook_msg;
    char *remote;              /* the client's address for client_connected, or NULL */
} sse_start;

/* The connection closed while the engine answered (http.c's release). */
static void start_cancel(void *owner)
{
    sse_start *st = owner;
    st->gone = true;
}

/* Held while the engine answers; past channels.max_held_publications the stream is ended
 * right after its start (the client resumes with Last-Event-ID). */
static void hold_pub(hr_sse *s, hr_sub *sub, const hr_pub *pub)
{
    if (!hr_op_hold_add(&s->start->held, &s->c->w->proto->ops, sub, pub)) s->start->overflow = true;
}

/* The start's position of a concrete subscription (a pattern has none). */
static bool start_pos(void *ud, const hr_sub *sub, uint64_t *offset)
{
    const sse_start *st = ud;
    for (size_t j = 0; j < st->k; j++)
        if (st->s->subs[j] == sub) {
            *offset = st->rec[j].now.offset;
            return true;
        }
    return false;
}

static void recs_free(rec_ctx *rec, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < rec[i].n; k++) hr_pub_unref(rec[i].pubs[k]);
        hr_free(rec[i].pubs);
    }
    hr_free(rec);
}

/* The Last-Event-ID the client sent: the header (a reconnecting
 * EventSource), else ?last_event_id= (clients that cannot set headers; the
 * header wins because a URL keeps its first value across reconnects).
 * Returns the text (in the header, or decoded into buf) or NULL. */
static const char *last_event_id(const hr_http_request *req, char *buf, size_t cap, size_t *len)
{
    const hr_http_header *h = hr_http_find_header(req, "last-event-id");
    if (h && h->value_len) {
        *len = h->value_len;
        return h->value;
    }
    size_t pos = 0;
    if (req->query && hr_query_next(req->query, req->query_len, &pos, "last_event_id", buf, cap, len) == 1 && *len)
        return buf;
    return NULL;
}

static const hr_urlsubs_who sse_who = {"SSE clients", "/sse?channel=NAME", true};

int hr_http_token(const hr_http_request *req, char *buf, size_t cap, const char **tok, size_t *len)
{
    const hr_http_header *h = hr_http_find_header(req, "authorization");
    if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
        *tok = h->value + 7;
        *len = h->value_len - 7;
        while (*len && **tok == ' ') (*tok)++, (*len)--;
        return *len ? 1 : -1;
    }
    size_t pos = 0;
    if (!req->query) return 0;
    int rc = hr_query_next(req->query, req->query_len, &pos, "token", buf, cap, len);
    if (rc <= 0) return rc;
    *tok = buf;
    return *len ? 1 : -1;
}

/* Extra headers of a 401: CORS plus the Bearer challenge (RFC 6750). */
static void respond_401(hr_conn *c, const char *cors, const char *msg, bool close)
{
    char hdrs[768];
    snprintf(hdrs, sizeof(hdrs), "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n%s", cors);
    hr_http_respond_error(c, 401, hdrs, msg, close);
}

hr_actor hr_http_actor(hr_conn *c)
{
    return (hr_actor){.kind = HR_ACTOR_CLIENT, .opts = &c->w->proto->ops, .wh = (c->flags & HR_CONN_REFUSED) ? NULL : c->w->hub,
                      .engine = c->w->sh->hub->engine, .ip_key = c->ip_key};
}

/* Verify a token of the request (NULL: malformed); on failure count it
 * against the client's address, answer 401 saying why (an expired one: get
 * a new one) and return 401; else 0 with *cl filled. */
static int verify_or_401(hr_conn *c, const char *cors, bool close, const char *tok, size_t len, hr_jwt_claims *cl,
                         bool subscription)
{
    hr_actor a = hr_http_actor(c);
    hr_op_result res = hr_op_verify_token(&a, tok, len, cl);
    if (!res.rc) return 0;
    const char *why = res.detail;
    char msg[256];
    if (res.rc == HR_OP_TOKEN_EXPIRED)
        snprintf(msg, sizeof(msg), "%s", subscription ? "subscription token expired: get a new one"
                                                       : "token expired: get a new token and reconnect");
    else
        snprintf(msg, sizeof(msg), "invalid %s: %s", subscription ? "subscription token" : "token",
                 why ? why : subscription ? "malformed" : "rejected");
    respond_401(c, cors, msg, close);
    return 401;
}

int hr_http_auth_read(hr_conn *c, const hr_http_request *req, const char *cors, bool close, hr_http_auth *a)
{
    memset(a, 0, sizeof(*a));
    size_t qlen = req->query ? req->query_len : 0, len = 0;
    char *buf = hr_malloc(qlen + 1);
    const char *tok = NULL;
    int st = 0, tr = hr_http_token(req, buf, qlen + 1, &tok, &len);
    if (tr < 0) {
        hr_http_respond_error(c, 400, cors, "malformed token parameter or Authorization header", close);
        st = 400;
    } else if (tr > 0) {
        st = verify_or_401(c, cors, close, tok, len, &a->conn, false);
        if (!st && a->conn.channel) {
            respond_401(c, cors, "invalid token: a subscription token is not a connection token", close);
            st = 401;
        }
    }
    const char *user = a->conn.sub ? a->conn.sub : "";
    size_t pos = 0;
    while (!st && req->query) {
        int rc = hr_query_next(req->query, qlen, &pos, "sub_token", buf, qlen + 1, &len);
        if (rc == 0) break;
        hr_jwt_claims cl;
        memset(&cl, 0, sizeof(cl));
        st = verify_or_401(c, cors, close, rc < 0 ? NULL : buf, len, &cl, true);
        const char *wrong = st                                         ? NULL
                            : !cl.channel                              ? "a connection token is not a subscription token"
                            : strcmp(cl.sub ? cl.sub : "", user) != 0 ? "the subscription token is for another user"
                                                                       : NULL;
        if (wrong) {
            char msg[128];
            snprintf(msg, sizeof(msg), "sub_token: %s", wrong);
            hr_http_respond_error(c, 403, cors, msg, close);
            st = 403;
        } else if (!st && a->ngranted < (size_t)c->w->proto->ops.max_subscriptions) {
            a->granted = hr_realloc(a->granted, (a->ngranted + 1) * sizeof(char *));
            a->granted[a->ngranted++] = hr_strdup(cl.channel);
        }
        hr_jwt_claims_free(&cl);
    }
    hr_free(buf);
    if (st) {
        hr_worker_refused(c->w, hr_refuse_reason_of(st), c, req, NULL, st, "token refused");
        hr_http_auth_free(a);
        return st;
    }
    a->has_token = tr > 0;
    a->who.user = user;
    a->who.granted = (const char *const *)a->granted;
    a->who.ngranted = a->ngranted;
    /* the token's channels, then the subscription tokens' ones: subscribed as well */
    if (a->conn.n_channels || a->ngranted) {
        a->granted = hr_realloc(a->granted, (a->ngranted + a->conn.n_channels) * sizeof(char *));
        a->who.granted = (const char *const *)a->granted;
        for (size_t i = 0; i < a->conn.n_channels; i++) a->granted[a->ngranted + i] = hr_strdup(a->conn.channels[i]);
        a->ngranted += a->conn.n_channels;
        a->who.ngranted = a->ngranted;
        a->who.channels = a->who.granted;
        a->who.nchannels = a->ngranted;
    }
    return 0;
}

static const char preflight_headers[] = "Access-Control-Allow-Methods: GET, OPTIONS\r\n"
                                        "Access-Control-Allow-Headers: Last-Event-ID, Cache-Control, Accept, "
                                        "X-Requested-With, Authorization\r\n"
                                        "Access-Control-Max-Age: 600\r\n";

static void sse_open(hr_conn *c, const hr_http_request *req, bool close, const char *cors, hr_http_auth *aup,
                     const char *id_or_null, bool deferred, const char *remote);
static void sse_ask_backend(hr_conn *c, const hr_http_request *req, bool close, const char *cors, hr_http_auth *au);

void hr_sse_handle(hr_conn *c, const hr_http_request *req, bool close)
{
    hr_worker *w = c->w;
    const hr_transport_opts *opt = w->opts;
    char cors[512], hdrs[1024];
    int origin = hr_cors_check(opt, req, "X-Herald-Client", cors, sizeof(cors));

    if (method_is(req, "OPTIONS")) { /* CORS preflight (polyfills that set headers) */
        if (origin < 0) {
            hr_http_refuse(c, req, HR_REFUSE_ORIGIN, 403, NULL, "origin not allowed (sse.allowed_origins)", close);
            return;
        }
        snprintf(hdrs, sizeof(hdrs), "Allow: GET, OPTIONS\r\n%s%s", cors, origin > 0 ? preflight_headers : "");
        hr_http_respond(c, 200, NULL, hdrs, NULL, 0, false, close);
        return;
    }
    if (!method_is(req, "GET")) {
        snprintf(hdrs, sizeof(hdrs), "Allow: GET, OPTIONS\r\n%s", cors);
        static const char body[] = "{\"error\":\"method not allowed\",\"status\":405}";
        hr_http_respond(c, 405, "application/json", hdrs, body, sizeof(body) - 1, method_is(req, "HEAD"), close);
        return;
    }
    if (origin < 0) {
        hr_http_refuse(c, req, HR_REFUSE_ORIGIN, 403, NULL, "origin not allowed (sse.allowed_origins)", close);
        return;
    }
    if (req->content_length > 0 || req->chunked) {
        hr_http_refuse(c, req, HR_REFUSE_BAD_REQUEST, 400, cors, "an event-stream request has no body", true);
        return;
    }
    hr_http_auth au;
    if (hr_http_auth_read(c, req, cors, close, &au)) return;
    if (!au.has_token && hr_proxy_enabled(w->proxy, HR_HOOK_CONNECT)) {
        sse_ask_backend(c, req, close, cors, &au);
        return;
    }
    char remote[64] = "";
    if (w->proto->ops.webhook) hr_client_addr(c, req, remote, sizeof(remote));
    sse_open(c, req, close, cors, &au, NULL, false, remote);
}

/* ---- the subscribe hooks of the stream's channels (docs/backend.md) ---- */

static void hook_refused(sse_start *st, hr_op_result res)
{
    if (st->hook_status) return;
    st->hook_status = hr_op_http_status(res.rc);
    bool backends = res.rc == HR_OP_BACKEND_ERROR || res.rc == HR_OP_BACKEND_DISCONNECT;
    st->hook_code = backends ? res.code : hr_op_native_code(res.rc);
    st->hook_msg = hr_strdup(res.detail ? res.detail : hr_op_rc_name(res.rc));
}

static void on_sub_hook(void *ud, const hr_op_hook_ans *ans)
{
    sse_start *st = ud;
    if (ans->res.rc) hook_refused(st, ans->res);
    start_step(st);
}

/* Ask the hook of every channel whose namespace has proxy_subscribe: the
 * start waits for all (publications are held meanwhile, as while the
 * engine answers); one refusal ends the request with its status. */
static void ask_sub_hooks(sse_start *st, const hr_chan_ref *refs, size_t n)
{
    hr_sse *s = st->s;
    hr_worker *w = st->c->w;
    hr_actor a = {.kind = HR_ACTOR_CLIENT, .opts = &w->proto->ops, .wh = w->hub, .engine = w->hub->hub->engine,
                  .user = s->client.user, .client = &s->client, .transport = "sse", .protocol = "json"};
    for (size_t i = 0; i < n && !st->hook_status; i++) {
        if (!refs[i].pol.proxy_subscribe) continue;
        hr_op_result res = hr_op_subscribe_hook(&a, refs[i].p, refs[i].n, on_sub_hook, st);
        if (res.rc == HR_OP_PENDING) st->pending++;
        else hook_refused(st, res);
    }
}

/* The stream's start once its client is known (au: its tokens, or what the
 * connect hook answered; taken). id: the client id the backend was told
 * (NULL: a new one). deferred: the request already waits (the connect
 * hook): answer and resume, as after an engine that answers later.
 * remote: the client's address for client_connected ("" unknown). */
static void sse_open(hr_conn *c, const hr_http_request *req, bool close, const char *cors, hr_http_auth *aup,
                     const char *id_or_null, bool deferred, const char *remote)
{
    hr_worker *w = c->w;
    const hr_transport_opts *opt = w->opts;
    char msg[256];
    hr_http_auth au = *aup;
    size_t qlen = req->query ? req->query_len : 0;
    char *buf = hr_malloc(qlen + 1); /* decoded values are never longer than the query */
    size_t pos = 0;
    hr_chan_ref *refs = NULL;
    size_t n = 0;
    int st = hr_urlsubs_parse_auth(&w->proto->ops, &sse_who, &au.who, req->query, qlen, buf, &refs, &n, msg, sizeof(msg));
    if (st) {
        hr_free(buf);
        hr_http_auth_free(&au);
        hr_http_refuse(c, req, -1, st, cors, msg, close);
        if (deferred) hr_http_resume(c);
        return;
    }

    hr_sse *s = hr_calloc(1, sizeof(*s));
    s->client.vt = &sse_client_vt;
    s->client.wh = w->hub;
    hr_client_set_user(&s->client, au.who.user);
    s->exp_at = au.conn.has_exp ? HR_MAX(au.conn.exp, 1) : 0;
    if (!id_or_null || hr_client_id_parse(&s->client, id_or_null)) hr_client_id_random(&s->client);
    s->c = c;
    s->opt = opt;
    char ev[8]; /* not buf: the channel names in refs live there */
    size_t elen = 0;
    pos = 0;
    if (req->query && hr_query_next(req->query, qlen, &pos, "envelope", ev, sizeof(ev), &elen) == 1)
        s->envelope = (elen == 1 && ev[0] == '1') || (elen == 4 && memcmp(ev, "true", 4) == 0);
    st = hr_urlsubs_subscribe(&s->client, refs, n, msg, sizeof(msg));
    if (st) {
        hr_client_free_user(&s->client);
        hr_free(s);
        hr_free(refs);
        hr_free(buf);
        hr_http_auth_free(&au);
        hr_http_refuse(c, req, -1, st, cors, msg, close);
        if (deferred) hr_http_resume(c);
        return;
    }

    /* positions, and what the client missed since its Last-Event-ID */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += !refs[i].pattern;
    s->subs = k ? hr_calloc(k, sizeof(*s->subs)) : NULL;
    s->pos = k ? hr_calloc(k, sizeof(*s->pos)) : NULL;
    s->nchans = k;
    rec_ctx *rec = hr_calloc(k ? k : 1, sizeof(*rec));
    hr_sse_pos *asked = hr_calloc(k ? k : 1, sizeof(*asked));
    size_t idlen = 0;
    char *idbuf = hr_malloc(qlen + 1);
    const char *id = last_event_id(req, idbuf, qlen, &idlen);
    int nid = id ? hr_sse_id_parse(id, idlen, asked, k) : 0;
    if (id && nid < 0) hr_logf(HR_LOG_INFO, "sse_bad_last_event_id", "sse client %s: malformed Last-Event-ID, nothing recoverable", hr_client_id(&s->client).s);
    hr_free(idbuf);
    hr_engine *e = w->hub->hub->engine;
    sse_start *ss = hr_calloc(1, sizeof(*ss));
    ss->s = s;
    ss->c = c;
    ss->close = close;
    ss->rec = rec;
    ss->k = k;
    ss->asked = asked;
    ss->nid = nid;
    ss->has_id = id != NULL;
    ss->refs = refs;
    ss->n = n;
    ss->buf = buf;
    ss->cors = hr_strdup(cors);
    ss->remote = w->proto->ops.webhook && remote[0] ? hr_strdup(remote) : NULL;
    s->info = au.conn.info ? hr_strndup(au.conn.info, au.conn.info_len) : NULL;
    ss->au = au; /* refs may point into the tokens' channel lists: kept until the start */
    s->start = ss;
    ss->deferred = deferred;
    ss->pending = 1 + k;
    for (size_t i = 0, j = 0; i < n; i++) {
        if (refs[i].pattern) continue;
        hr_sub *sub = hr_hub_find_sub(&s->client, refs[i].p, refs[i].n);
        s->subs[j] = sub;
        rec[j].sub = sub;
        rec[j].st = ss;
        hr_chan_opts o = HR_OPS_CHAN_OPTS(&w->proto->ops, refs[i].pol);
        bool since = nid > 0 && j < (size_t)nid;
        hr_history_query q = {.has_since = since, .since_offset = since ? asked[j].offset : 0,
                              .since_epoch = since ? asked[j].epoch : "", .limit = since ? (int64_t)o.history_size : 0};
        e->vt->history(e, &o, refs[i].p, refs[i].n, &q, on_history, &rec[j]);
        j++;
    }
    ask_sub_hooks(ss, refs, n);
    if (ss->pending > 1 || deferred) { /* an engine or a hook that answers later: the request waits */
        ss->deferred = true;
        hr_http_defer(c, ss, start_cancel);
    }
    start_step(ss);
}

/* ---- the connect hook (docs/backend.md): the handshake waits for the backend ---- */

typedef struct sse_hook {
    hr_conn *c;
    hr_proxy_req *req;
    bool close;
    char cors[512];
    char id[HR_CLIENT_ID_SIZE]; /* the client id the backend is told */
    hr_http_auth au;           /* no token; the sub_tokens */
    char *query;               /* the request's, copied (the request is gone when the answer comes) */
    size_t query_len;
    char *last_id;             /* its Last-Event-ID header, or NULL */
    char remote[64];           /* the client's address (client_connected) */
} sse_hook;

static void hook_free(sse_hook *h)
{
    hr_http_auth_free(&h->au);
    hr_free(h->query);
    hr_free(h->last_id);
    hr_free(h);
}

/* The connection closed while the backend was asked (http.c's release). */
static void hook_cancel(void *owner)
{
    sse_hook *h = owner;
    hr_proxy_cancel(h->c->w->proxy, h->req);
    hook_free(h);
}

static void respond_backend(sse_hook *h, int status, const char *message, int code)
{
    respond_backend_to(h->c, status, h->cors, h->close, message, code);
}

/* The query with the backend's channels added as channel parameters (so
 * every rule of a URL channel applies to them, for the backend's user). */
static void add_channels(sse_hook *h, const hr_proxy_answer *a)
{
    hr_buf q = HR_BUF_INIT;
    hr_buf_append(&q, h->query, h->query_len);
    for (size_t i = 0; i < a->nchannels; i++) {
        hr_buf_append_str(&q, q.len ? "&channel=" : "channel=");
        for (const char *p = a->channels[i]; *p; p++) {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("-._~:", *p))
                hr_buf_append(&q, p, 1);
            else
                hr_buf_printf(&q, "%%%02X", (unsigned char)*p);
        }
    }
    hr_free(h->query);
    h->query_len = q.len;
    h->query = hr_strndup(q.len ? (const char *)q.data : "", q.len);
    hr_buf_free(&q);
}

static void on_hook_answer(const hr_proxy_result *res, void *ud)
{
    sse_hook *h = ud;
    h->req = NULL;
    const hr_proxy_answer *a = res->answer;
    if (res->fail || a->kind != HR_PROXY_RESULT) {
        if (res->fail) respond_backend(h, res->http_status, res->message, res->code);
        else respond_backend(h, 403, a->message, (int)a->code);
        hr_conn *c = h->c;
        hook_free(h);
        hr_http_resume(c);
        return;
    }
    hr_http_auth *au = &h->au;
    au->conn.sub = hr_strdup(a->user);
    au->who.user = au->conn.sub;
    if (a->info) {
        au->conn.info = hr_strdup(a->info);
        au->conn.info_len = strlen(a->info);
    }
    au->conn.has_exp = a->expire_at > 0;
    au->conn.exp = a->expire_at;
    add_channels(h, a);
    hr_http_header lid = {.name = "last-event-id", .name_len = 13, .value = h->last_id,
                          .value_len = h->last_id ? strlen(h->last_id) : 0};
    hr_http_request r = {.query = h->query_len ? h->query : NULL, .query_len = h->query_len,
                         .headers = &lid, .num_headers = h->last_id ? 1 : 0};
    sse_open(h->c, &r, h->close, h->cors, au, h->id, true, h->remote);
    memset(au, 0, sizeof(*au)); /* taken */
    hook_free(h);
}

/* No token: ask the connect hook, the request waits (answered from on_hook_answer). */
static void sse_ask_backend(hr_conn *c, const hr_http_request *req, bool close, const char *cors, hr_http_auth *au)
{
    sse_hook *h = hr_calloc(1, sizeof(*h));
    h->c = c;
    h->close = close;
    snprintf(h->cors, sizeof(h->cors), "%s", cors);
    hr_random_hex(h->id, HR_CLIENT_ID_BYTES); /* the id the session will have (hr_client_id_parse) */
    h->au = *au;
    h->query = hr_strndup(req->query ? req->query : "", req->query ? req->query_len : 0);
    h->query_len = req->query ? req->query_len : 0;
    const hr_http_header *lid = hr_http_find_header(req, "last-event-id");
    if (lid && lid->value_len) h->last_id = hr_strndup(lid->value, lid->value_len);
    hr_proxy_origin *o = hr_client_origin(c, req);
    snprintf(h->remote, sizeof(h->remote), "%s", o->remote_addr);
    hr_proxy_ctx ctx = {.client = h->id, .transport = "sse", .protocol = "json", .remote_addr = o->remote_addr,
                        .headers = o->headers, .nheaders = o->nheaders};
    int rc = hr_proxy_call(c->w->proxy, HR_HOOK_CONNECT, &ctx, NULL, on_hook_answer, h, &h->req);
    hr_free(o);
    if (rc) {
        respond_backend(h, 503, "backend unavailable: the connect hook could not be called", 116);
        hook_free(h);
        return;
    }
    hr_http_defer(c, h, hook_cancel);
}

static void start_free(sse_start *st)
{
    hr_op_hold_free(&st->held);
    recs_free(st->rec, st->k);
    hr_free(st->asked);
    hr_free(st->refs);
    hr_free(st->buf);
    hr_free(st->cors);
    hr_free(st->hook_msg);
    hr_free(st->remote);
    hr_http_auth_free(&st->au);
    hr_free(st);
}

/* A stream that never started: its subscriptions go (no presence was announced yet). */
static void start_abandon(sse_start *st)
{
    hr_sse *s = st->s;
    s->start = NULL;
    hr_hub_unsubscribe_all(&s->client);
    hr_free(s->subs);
    hr_free(s->pos);
    hr_free(s->info);
    hr_client_free_user(&s->client);
    hr_free(s);
    start_free(st);
}

/* One more engine answer (or the end of asking): start when all are in. */
static void start_step(sse_start *st)
{
    if (--st->pending) return;
    hr_sse *s = st->s;
    hr_conn *c = st->c;
    if (st->gone) {
        start_abandon(st);
        return;
    }
    if (st->hook_status) {
        respond_backend_to(c, st->hook_status, st->cors, st->close, st->hook_msg, st->hook_code);
        if (st->deferred) hr_http_resume(c);
        start_abandon(st);
        return;
    }
    const hr_transport_opts *opt = s->opt;
    hr_worker *w = c->w;
    size_t k = st->k;
    rec_ctx *rec = st->rec;
    bool engine_ok = true;
    for (size_t j = 0; j < k; j++) engine_ok = engine_ok && rec[j].got;
    if (!engine_ok) {
        hr_http_refuse(c, NULL, HR_REFUSE_OVERLOAD, 503, st->cors, "the engine cannot serve the channels' positions",
                       st->close);
        if (st->deferred) hr_http_resume(c);
        start_abandon(st);
        return;
    }
    if (st->deferred) hr_http_defer_end(c);
    int nid = st->nid;
    hr_sse_pos *asked = st->asked;

    /* the stream starts */
    char hdrs[1024];
    snprintf(hdrs, sizeof(hdrs), "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nX-Herald-Client: %s\r\n%s",
             hr_client_id(&s->client).s, st->cors);
    hr_buf b = HR_BUF_INIT;
    hr_buf_append_str(&b, ":ok\n");
    if (opt->sse_retry_ms) hr_buf_printf(&b, "retry: %lld\n", (long long)opt->sse_retry_ms);
    hr_buf_append(&b, "\n", 1);
    hr_http_respond_stream(c, 200, "text/event-stream", hdrs, b.data, b.len);
    b.len = 0;
    hr_http_detach(c, HR_CK_SSE);
    hr_conn_set_transport(c, &sse_vt, s);

    /* the starting id: where the client asked to resume, else where the channel is */
    for (size_t j = 0; j < k; j++) s->pos[j] = nid > 0 && j < (size_t)nid ? asked[j] : rec[j].now;
    char data[64];
    int dn = snprintf(data, sizeof(data), "{\"client\":\"%s\"}", hr_client_id(&s->client).s);
    append_event(&b, s, "connected", true, data, (size_t)dn);
    for (size_t j = 0; j < k; j++) {
        if (!st->has_id) break; /* live only */
        if (nid > 0 && j < (size_t)nid && rec[j].complete) {
            for (size_t m = 0; m < rec[j].n; m++) {
                const hr_pub *p = rec[j].pubs[m];
                s->pos[j].offset = p->offset;
                append_id(&b, s);
                append_pub_data(&b, p, s->envelope);
                hr_buf_append(&b, "\n", 1);
            }
            s->pos[j] = rec[j].now;
            continue;
        }
        s->pos[j] = rec[j].now;
        size_t len;
        const char *name = hr_hub_sub_channel(s->subs[j], &len);
        hr_buf d = HR_BUF_INIT;
        hr_buf_append_str(&d, "{\"channel\":");
        hr_json_append_string(&d, name, len);
        hr_buf_printf(&d, ",\"epoch\":\"%s\",\"offset\":%llu}", s->pos[j].epoch, (unsigned long long)s->pos[j].offset);
        append_event(&b, s, "recovery_failed", true, (const char *)d.data, d.len);
        hr_buf_free(&d);
    }
    queue(s, &b);
    hr_buf_free(&b);

    /* what reached the subscriptions while the engine answered, past the positions */
    s->start = NULL;
    if (st->overflow) { /* too much to hold: the client resumes from the starting id */
        hr_logf(HR_LOG_INFO, "client_slow", "sse client %s: too many publications while starting, ending the stream", hr_client_id(&s->client).s);
        sse_end(s, false);
    }
    hr_op_hold_release(&st->held, &s->client, start_pos, st);

    announce_connected(s, st->remote);
    hr_urlsubs_announce_info(&s->client, &s->c->w->proto->ops, st->refs, st->n, s->info);
    start_free(st);
    hr_hub_client_add(&s->client);
    arm_heartbeat(s);
    if (w->draining) sse_disconnect(s, HR_DISC_SHUTDOWN, "server shutting down, reconnect");
}
