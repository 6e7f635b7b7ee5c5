/* pusher.c - the Pusher protocol session (see pusher.h, docs/pusher.md).
 *
 * Every rule is the operations': the session builds an hr_actor per command
 * and maps the result to Pusher's wire form (a subscription_error with the
 * result's HTTP status, a pusher:error). What a Pusher channel is (its
 * Herald channel, its policy, the signatures, the client-event rate,
 * max_connections, max_presence_members) is ops/pusher_app.c's.
 *
 * The socket_id is the Herald client id, "N.M" of two random 31-bit
 * numbers, so the server API's disconnect by client reaches it and the
 * publication's "socket_id" exclusion compares client ids.
 *
 * Fan-out: a publication is encoded once per worker into HR_ENC_PUSHER
 * ({"event","channel","data"}, framed once more in the two slots after it);
 * an excluded socket_id, when the data names one, is read in the same pass
 * into HR_ENC_PUSHER_EXCLUDE, so a delivery compares at most one short
 * string. Join and leave pushes (presence- channels only) are per
 * subscriber: each presence subscription keeps its channel's members (in
 * sub->hold: client id, user_id, user_info) to announce a user once, with
 * its first connection, and remove it with its last, as Pusher does.
 *
 * Asynchronous answers (the presence list before subscription_succeeded,
 * the last publication of a cache- channel) hold a `pending` that names the
 * channel; the session forgets them when it ends (their ->p set to NULL),
 * and an answer whose subscription has gone meanwhile is dropped. */
#include "protocol/pusher.h"
#include "ops/ops.h"
#include "ops/pusher_app.h"
#include "core/json.h"
#include "core/log.h"
#include "core/random.h"
#include "protocol/native.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending pending;

struct hr_pusher {
    hr_client client;          /* must stay first: the hub hands it back; id = socket_id */
    const hr_proto_opts *opts;
    const hr_sink_vt *sink;
    void *t;
    const hr_pusher_app *app;  /* NULL: unknown key */
    int refusal;               /* a close code to refuse with at open, 0 = accepted */
    bool counted;              /* in app->connections */
    bool closing;
    bool pinged;               /* a pusher:ping is out, unanswered */
    uint64_t last_rx;          /* loop clock of the last message */
    hr_timer activity;
    hr_bucket pub_bucket, chan_bucket;
    hr_pusher_rate rate;       /* client events */
    pending *pend;
    hr_sub **pos;              /* subscriptions whose events carry "herald" positions */
    size_t npos;
};

/* A presence subscription's members (sub->hold). */
typedef struct member {
    char client[37];
    char *user_id;
    char *user_info;           /* JSON text, NULL = none */
} member;

typedef struct pres {
    member *v;
    size_t n, cap;
    bool ready;                /* subscription_succeeded sent: joins and leaves are announced */
    char *info;                /* this connection's {"user_id":..,"user_info":..} */
    char *user_id;
} pres;

enum { PEND_PRESENCE, PEND_CACHE, PEND_RECOVER };

struct pending {
    pending *next;
    hr_pusher *p;              /* NULL once the session is gone */
    int kind;
    const hr_sub *sub;         /* PEND_RECOVER: compared, never followed */
    hr_op_hold hold;           /* PEND_RECOVER: publications that came during the read */
    bool herald;               /* the subscribe asked for positions (PEND_PRESENCE carries it on) */
    bool has_since;            /* ... and recovery from since / epoch */
    uint64_t since;
    char epoch[HR_EPOCH_LEN + 1];
    size_t len;
    char ch[];                 /* the Herald channel */
};

static hr_wheel *wheel_of(hr_pusher *p) { return &p->client.wh->loop->wheel; }
static uint64_t now_of(hr_pusher *p) { return hr_loop_now(p->client.wh->loop); }

static hr_actor actor(hr_pusher *p, const char *info)
{
    return (hr_actor){.kind = HR_ACTOR_CLIENT, .opts = &p->opts->ops, .wh = p->client.wh,
                      .engine = p->client.wh->hub->engine, .user = p->client.user, .client = &p->client,
                      .pub_bucket = &p->pub_bucket, .chan_bucket = &p->chan_bucket, .info = info,
                      .transport = "websocket", .protocol = "pusher", .pusher_rate = &p->rate};
}

/* ---- output --------------------------------------------------------------------------- */

static void send_buf(hr_pusher *p, const hr_buf *b)
{
    if (!p->closing) p->sink->send(p->t, b->data, b->len, false);
}

/* {"event":E[,"channel":C],"data":DATA} with DATA as JSON text (NULL: none). */
static void send_event(hr_pusher *p, const char *event, const char *ch, size_t clen, const char *data)
{
    hr_buf b = HR_BUF_INIT;
    hr_buf_append_str(&b, "{\"event\":");
    hr_json_append_string(&b, event, strlen(event));
    if (ch) {
        hr_buf_append_str(&b, ",\"channel\":");
        hr_json_append_string(&b, ch, clen);
    }
    if (data) {
        hr_buf_append_str(&b, ",\"data\":");
        hr_buf_append_str(&b, data);
    }
    hr_buf_append(&b, "}", 1);
    send_buf(p, &b);
    hr_buf_free(&b);
}

/* The same with DATA sent as a JSON string holding `text` (Pusher's data). */
static void send_event_str(hr_pusher *p, const char *event, const char *ch, size_t clen, const char *text, size_t tlen)
{
    hr_buf d = HR_BUF_INIT;
    hr_json_append_string(&d, text, tlen);
    hr_buf_append(&d, "", 1);
    send_event(p, event, ch, clen, (const char *)d.data);
    hr_buf_free(&d);
}

/* pusher:error {"code":CODE (0: null),"message":MSG}. */
static void send_error(hr_pusher *p, int code, const char *msg)
{
    hr_buf d = HR_BUF_INIT;
    if (code) hr_buf_printf(&d, "{\"code\":%d,\"message\":", code);
    else hr_buf_append_str(&d, "{\"code\":null,\"message\":");
    hr_json_append_string(&d, msg, strlen(msg));
    hr_buf_append(&d, "}", 2);
    send_event(p, "pusher:error", NULL, 0, (const char *)d.data);
    hr_buf_free(&d);
}

/* pusher:error, then the close with the same code. */
static void refuse(hr_pusher *p, int code, const char *msg)
{
    if (p->closing) return;
    send_error(p, code, msg);
    p->closing = true;
    p->sink->disconnect(p->t, code, msg, false);
}

static void close_with(hr_pusher *p, int code, const char *reason, bool drop)
{
    if (p->closing) return;
    p->closing = true;
    p->sink->disconnect(p->t, code, reason, drop);
}

/* pusher:subscription_error {"type":..,"error":..,"status":..} for a refused subscribe. */
static void send_sub_error(hr_pusher *p, const char *name, size_t nlen, const char *type, const char *error, int status)
{
    hr_buf d = HR_BUF_INIT;
    hr_buf_append_str(&d, "{\"type\":");
    hr_json_append_string(&d, type, strlen(type));
    hr_buf_append_str(&d, ",\"error\":");
    hr_json_append_string(&d, error, strlen(error));
    hr_buf_printf(&d, ",\"status\":%d}", status);
    hr_buf_append(&d, "", 1);
    send_event(p, "pusher:subscription_error", name, nlen, (const char *)d.data);
    hr_buf_free(&d);
}

static void send_op_error(hr_pusher *p, const char *name, size_t nlen, hr_op_result r)
{
    const char *type = "SubscriptionError";
    switch (r.rc) {
    case HR_OP_TOKEN_INVALID:
    case HR_OP_TOKEN_EXPIRED:
    case HR_OP_DENIED:
    case HR_OP_USER_LIMITED: type = "AuthError"; break;
    case HR_OP_CHANNEL_FULL:
    case HR_OP_TOO_MANY_SUBSCRIPTIONS:
    case HR_OP_RATE_LIMITED: type = "LimitReached"; break;
    case HR_OP_BAD_CHANNEL:
    case HR_OP_UNKNOWN_NAMESPACE: type = "InvalidChannel"; break;
    default: break;
    }
    send_sub_error(p, name, nlen, type, r.detail ? r.detail : hr_op_rc_name(r.rc), hr_op_http_status(r.rc));
}

/* ---- fan-out -------------------------------------------------------------------------- */

/* data as Pusher sends it: a string as it is, anything else as its JSON text. */
static void append_data(hr_buf *b, json_t *d)
{
    if (json_is_string(d)) {
        hr_json_append_string(b, json_string_value(d), json_string_length(d));
        return;
    }
    hr_buf t = HR_BUF_INIT;
    hr_json_dump(d, &t);
    hr_json_append_string(b, (const char *)t.data, t.len);
    hr_buf_free(&t);
}

/* The publication as a Pusher event (docs/pusher.md, "Events published
 * through Herald") into cache slot `slot`: HR_ENC_PUSHER, or
 * HR_ENC_PUSHER_HERALD with the publication's position added; false when
 * its channel is no Pusher channel. The excluded socket_id, if any, is read
 * in the same pass. */
static bool encode_pub(hr_pusher *p, const hr_pub *pub, hr_enc_cache *cache, int slot)
{
    if (cache->slot[slot]) return true;
    const hr_pusher_app *app = NULL;
    hr_buf name = HR_BUF_INIT, b = HR_BUF_INIT;
    if (hr_pusher_from_herald(p->opts->ops.pusher, pub->channel, pub->channel_len, &app, &name)) {
        hr_buf_free(&name);
        return false;
    }
    json_t *v = json_loadb(pub->data, pub->data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *ev = json_object_get(v, "event"), *data = json_object_get(v, "data");
    bool shaped = json_is_object(v) && json_is_string(ev) && data;
    hr_buf_append_str(&b, "{\"event\":");
    if (shaped) hr_json_append_string(&b, json_string_value(ev), json_string_length(ev));
    else hr_buf_append_str(&b, "\"message\"");
    hr_buf_append_str(&b, ",\"channel\":");
    hr_json_append_string(&b, (const char *)name.data, name.len);
    hr_buf_append_str(&b, ",\"data\":");
    if (shaped) append_data(&b, data);
    else hr_json_append_string(&b, pub->data, pub->data_len);
    json_t *uid = shaped ? json_object_get(v, "user_id") : NULL;
    if (json_is_string(uid)) {
        hr_buf_append_str(&b, ",\"user_id\":");
        hr_json_append_string(&b, json_string_value(uid), json_string_length(uid));
    }
    if (slot == HR_ENC_PUSHER_HERALD)
        hr_buf_printf(&b, ",\"herald\":{\"offset\":%llu,\"epoch\":\"%s\"}", (unsigned long long)pub->offset,
                      pub->epoch);
    hr_buf_append(&b, "}", 1);
    cache->slot[slot] = hr_sbuf_new(b.data, b.len);
    json_t *skip = shaped ? json_object_get(v, "socket_id") : NULL;
    if (json_is_string(skip) && !cache->slot[HR_ENC_PUSHER_EXCLUDE])
        cache->slot[HR_ENC_PUSHER_EXCLUDE] = hr_sbuf_new(json_string_value(skip), json_string_length(skip));
    json_decref(v);
    hr_buf_free(&name);
    hr_buf_free(&b);
    return true;
}

static bool excluded(const hr_pusher *p, const hr_enc_cache *cache)
{
    const hr_sbuf *x = cache->slot[HR_ENC_PUSHER_EXCLUDE];
    if (!x) return false; /* most publications exclude nobody: no id to format per subscriber */
    hr_client_idstr id = hr_client_id(&p->client);
    return x->len == strlen(id.s) && memcmp(x->data, id.s, x->len) == 0;
}

/* Does sub's subscriber want positions (docs/pusher.md, "Recovery")? */
static bool wants_positions(const hr_pusher *p, const hr_sub *sub)
{
    for (size_t i = 0; i < p->npos; i++)
        if (p->pos[i] == sub) return true;
    return false;
}

static void deliver_pub(hr_pusher *p, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    int slot = p->npos && wants_positions(p, sub) ? HR_ENC_PUSHER_HERALD : HR_ENC_PUSHER;
    if (!encode_pub(p, pub, cache, slot) || excluded(p, cache)) return;
    p->sink->send_shared(p->t, cache->slot[slot], cache, slot, false);
}

/* Deliver one publication outside a fan-out (a cached or recovered one). */
static void deliver_one(hr_pusher *p, hr_sub *sub, const hr_pub *pub)
{
    hr_enc_cache cache = {{0}};
    deliver_pub(p, sub, pub, &cache);
    for (int k = 0; k < HR_ENC_SLOTS; k++) hr_sbuf_unref(cache.slot[k]);
}

static pending *recovering(hr_pusher *p, const hr_sub *sub);

static void pres_on_event(hr_pusher *p, hr_sub *sub, const hr_pub *pub);

static void pusher_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    hr_pusher *p = (hr_pusher *)c;
    if (p->closing) return;
    if (pub->kind != HR_PUB_MESSAGE) {
        if (sub->hold) pres_on_event(p, sub, pub);
        return;
    }
    if (p->sink->queued(p->t) > (size_t)p->opts->max_queued_bytes) {
        hr_whub_count(&c->wh->slow_disconnects, 1);
        hr_logev(HR_LOG_INFO, "client_slow", HR_LOG_S("client", hr_client_id(c).s), HR_LOG_I("code", HR_PUSHER_RECONNECT),
                 HR_LOG_S("msg", "slow consumer, disconnecting"));
        close_with(p, HR_PUSHER_RECONNECT, "slow consumer: reconnect", true);
        return;
    }
    pending *x = p->pend ? recovering(p, sub) : NULL;
    if (x) { /* after the replay (ops.h hr_op_hold) */
        if (!hr_op_hold_add(&x->hold, &p->opts->ops, sub, pub))
            close_with(p, HR_PUSHER_RECONNECT, "too many publications during recovery: reconnect", true);
        return;
    }
    deliver_pub(p, sub, pub, cache);
}

static void leave(hr_pusher *p, hr_sub *sub, bool announce);

/* The server API: unsubscribe (Pusher has no message for it: the channel
 * just stops) or disconnect (closed with the command's code). */
static void pusher_on_command(hr_client *c, hr_sub *sub, const hr_pub *cmd)
{
    hr_pusher *p = (hr_pusher *)c;
    if (p->closing) return;
    if (cmd->kind == HR_PUB_UNSUBSCRIBE) {
        leave(p, sub, true);
        return;
    }
    close_with(p, cmd->code, hr_pub_reason(cmd), false);
}

/* A server command's user target reaches a signed-in session only in its
 * app's scoped form (terminate_connections; ops/pusher_app.h). */
static bool pusher_matches_user(const hr_client *c, const char *user)
{
    const hr_pusher *p = (const hr_pusher *)c;
    return p->app && hr_pusher_user_matches(p->app, c->user, user);
}

static const hr_client_vt pusher_client_vt = {
    .on_pub = pusher_on_pub, .on_command = pusher_on_command, .matches_user = pusher_matches_user};

/* ---- presence members ---------------------------------------------------------------- */

static void pres_free(pres *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) {
        hr_free(m->v[i].user_id);
        hr_free(m->v[i].user_info);
    }
    hr_free(m->v);
    hr_free(m->info);
    hr_free(m->user_id);
    hr_free(m);
}

static member *pres_find_client(pres *m, const char *client)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->v[i].client, client)) return &m->v[i];
    return NULL;
}

static size_t pres_user_count(const pres *m, const char *user_id)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) n += !strcmp(m->v[i].user_id, user_id);
    return n;
}

/* v's compact JSON text (hr_free it), or NULL for none. */
static char *dump(const json_t *v)
{
    if (!v) return NULL;
    hr_buf b = HR_BUF_INIT;
    hr_json_dump(v, &b);
    hr_buf_append(&b, "", 1);
    char *s = hr_strdup((const char *)b.data);
    hr_buf_free(&b);
    return s;
}

/* A member's user_id and user_info from a presence entry's info
 * ({"user_id":..,"user_info":..}, the Pusher connection's) or, for another
 * kind of client, its user. */
static void member_of(const char *info, const char *user, char **user_id, char **user_info)
{
    json_t *v = info ? json_loads(info, JSON_DECODE_ANY, NULL) : NULL;
    json_t *id = json_object_get(v, "user_id"), *ui = json_object_get(v, "user_info");
    *user_id = hr_strdup(json_is_string(id) ? json_string_value(id) : user ? user : "");
    *user_info = dump(ui);
    json_decref(v);
}

/* Add a member (false when the client is already in). */
static bool pres_add(pres *m, const char *client, const char *info, const char *user)
{
    if (pres_find_client(m, client)) return false;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->v = hr_realloc(m->v, m->cap * sizeof(*m->v));
    }
    member *x = &m->v[m->n++];
    snprintf(x->client, sizeof(x->client), "%s", client);
    member_of(info, user, &x->user_id, &x->user_info);
    return true;
}

/* The join/leave push's {"client":..,"user":..,"info":..}. */
static void pres_on_event(hr_pusher *p, hr_sub *sub, const hr_pub *pub)
{
    pres *m = sub->hold;
    json_t *v = pub->info ? json_loadb(pub->info, pub->info_len, 0, NULL) : NULL;
    const char *client = json_string_value(json_object_get(v, "client"));
    const char *user = json_string_value(json_object_get(v, "user"));
    json_t *info = json_object_get(v, "info");
    size_t clen = 0;
    const char *pname = NULL;
    hr_buf name = HR_BUF_INIT;
    const hr_pusher_app *app = NULL;
    if (!client || !strcmp(client, hr_client_id(&p->client).s) ||
        hr_pusher_from_herald(p->opts->ops.pusher, pub->channel, pub->channel_len, &app, &name))
        goto done;
    pname = (const char *)name.data;
    clen = name.len;
    if (pub->kind == HR_PUB_JOIN) {
        char *itext = dump(info);
        bool added = pres_add(m, client, itext, user);
        hr_free(itext);
        member *x = pres_find_client(m, client);
        if (added && m->ready && pres_user_count(m, x->user_id) == 1) {
            hr_buf d = HR_BUF_INIT;
            hr_buf_append_str(&d, "{\"user_id\":");
            hr_json_append_string(&d, x->user_id, strlen(x->user_id));
            hr_buf_printf(&d, ",\"user_info\":%s}", x->user_info ? x->user_info : "null");
            send_event_str(p, "pusher_internal:member_added", pname, clen, (const char *)d.data, d.len);
            hr_buf_free(&d);
        }
    } else {
        member *x = pres_find_client(m, client);
        if (!x) goto done;
        char *uid = x->user_id;
        hr_free(x->user_info);
        *x = m->v[--m->n];
        if (m->ready && pres_user_count(m, uid) == 0) {
            hr_buf d = HR_BUF_INIT;
            hr_buf_append_str(&d, "{\"user_id\":");
            hr_json_append_string(&d, uid, strlen(uid));
            hr_buf_append(&d, "}", 1);
            send_event_str(p, "pusher_internal:member_removed", pname, clen, (const char *)d.data, d.len);
            hr_buf_free(&d);
        }
        hr_free(uid);
    }
done:
    hr_buf_free(&name);
    json_decref(v);
}

/* {"presence":{"ids":[..],"hash":{ID:INFO},"count":N}}: one entry per user id. */
static void pres_hash(const pres *m, hr_buf *d)
{
    hr_buf ids = HR_BUF_INIT, hash = HR_BUF_INIT;
    size_t count = 0;
    for (size_t i = 0; i < m->n; i++) {
        bool first = true;
        for (size_t j = 0; j < i && first; j++) first = strcmp(m->v[j].user_id, m->v[i].user_id) != 0;
        if (!first) continue;
        if (count++) {
            hr_buf_append(&ids, ",", 1);
            hr_buf_append(&hash, ",", 1);
        }
        hr_json_append_string(&ids, m->v[i].user_id, strlen(m->v[i].user_id));
        hr_json_append_string(&hash, m->v[i].user_id, strlen(m->v[i].user_id));
        hr_buf_printf(&hash, ":%s", m->v[i].user_info ? m->v[i].user_info : "null");
    }
    hr_buf_append_str(d, "{\"presence\":{\"ids\":[");
    hr_buf_append(d, ids.data, ids.len);
    hr_buf_append_str(d, "],\"hash\":{");
    hr_buf_append(d, hash.data, hash.len);
    hr_buf_printf(d, "},\"count\":%zu}}", count);
    hr_buf_free(&ids);
    hr_buf_free(&hash);
}

/* ---- subscribe ------------------------------------------------------------------------ */

static pending *pending_new(hr_pusher *p, int kind, const char *ch, size_t len)
{
    pending *x = hr_malloc(sizeof(*x) + len + 1);
    *x = (pending){.next = p->pend, .p = p, .kind = kind, .len = len};
    memcpy(x->ch, ch, len);
    x->ch[len] = '\0';
    p->pend = x;
    return x;
}

static void pending_free(pending *x)
{
    hr_op_hold_free(&x->hold);
    hr_free(x);
}

static pending *recovering(hr_pusher *p, const hr_sub *sub)
{
    for (pending *x = p->pend; x; x = x->next)
        if (x->kind == PEND_RECOVER && x->sub == sub) return x;
    return NULL;
}

/* An answer came: x leaves its session's list; the subscription it is for
 * (NULL when the session or the subscription has gone). x is freed. */
static hr_sub *pending_done(pending *x, hr_pusher **pp)
{
    hr_pusher *p = x->p;
    *pp = p;
    hr_sub *sub = NULL;
    if (p) {
        for (pending **pp2 = &p->pend; *pp2; pp2 = &(*pp2)->next)
            if (*pp2 == x) {
                *pp2 = x->next;
                break;
            }
        sub = p->closing ? NULL : hr_hub_find_sub(&p->client, x->ch, x->len);
    }
    return sub;
}

/* The Pusher name of a subscription's channel, into out. */
static void pusher_name(hr_pusher *p, const char *ch, size_t len, hr_buf *out)
{
    const hr_pusher_app *app = NULL;
    int rc = hr_pusher_from_herald(p->opts->ops.pusher, ch, len, &app, out);
    (void)rc; /* every subscription of a Pusher connection is in its app's namespace */
}

static void on_cache_history(void *ud, int err, const hr_history *h)
{
    hr_pusher *p;
    pending *x = ud;
    hr_sub *sub = pending_done(x, &p);
    if (sub && !err) {
        if (h->n && h->pubs[0]->offset > sub->offset) { /* nothing newer went out meanwhile */
            sub->offset = h->pubs[0]->offset;
            deliver_one(p, sub, h->pubs[0]);
        } else if (!h->n && !sub->offset) {
            hr_buf name = HR_BUF_INIT;
            pusher_name(p, x->ch, x->len, &name);
            send_event(p, "pusher:cache_miss", (const char *)name.data, name.len, NULL);
            hr_buf_free(&name);
        }
    }
    pending_free(x);
}

static bool recovered_pos(void *ud, const hr_sub *sub, uint64_t *offset)
{
    HR_UNUSED(sub);
    *offset = *(const uint64_t *)ud;
    return true;
}

/* The read of a subscription that asked for positions: with a since, the
 * publications after it when the history has every one of them (else
 * none: never a partial replay), then herald:subscribed with the position
 * and whether it recovered; then what came meanwhile. */
static void on_recovered(void *ud, int err, const hr_history *h)
{
    hr_pusher *p;
    pending *x = ud;
    hr_sub *sub = pending_done(x, &p);
    if (sub) {
        bool ok = !err && h && (!x->has_since || h->complete);
        uint64_t last = x->has_since ? x->since : h && !err ? h->offset : 0;
        for (size_t i = 0; ok && x->has_since && i < h->n; i++) {
            if (h->pubs[i]->offset <= x->since) continue;
            deliver_one(p, sub, h->pubs[i]);
            last = h->pubs[i]->offset;
        }
        if (x->has_since && !ok && h && !err) last = h->offset; /* where the channel is: resync from here */
        hr_buf d = HR_BUF_INIT, name = HR_BUF_INIT;
        hr_buf_printf(&d, "{\"offset\":%llu,\"epoch\":\"%s\"", (unsigned long long)last, h && !err ? h->epoch : "");
        if (x->has_since) hr_buf_printf(&d, ",\"recovered\":%s", ok ? "true" : "false");
        hr_buf_append(&d, "}", 2);
        pusher_name(p, x->ch, x->len, &name);
        send_event(p, "herald:subscribed", (const char *)name.data, name.len, (const char *)d.data);
        hr_buf_free(&d);
        hr_buf_free(&name);
        if (last > sub->offset) sub->offset = last;
        hr_op_hold_release(&x->hold, &p->client, recovered_pos, &last);
    }
    pending_free(x);
}

static void start_recovery(hr_pusher *p, hr_sub *sub, const pending *req)
{
    size_t len = 0;
    const char *ch = hr_hub_sub_channel(sub, &len);
    hr_actor a = actor(p, NULL);
    hr_chan_policy pol;
    hr_ops_policy(&p->opts->ops, ch, len, &pol);
    pending *x = pending_new(p, PEND_RECOVER, ch, len);
    x->sub = sub;
    x->has_since = req->has_since;
    x->since = req->since;
    memcpy(x->epoch, req->epoch, sizeof(x->epoch));
    hr_history_query q = {.has_since = x->has_since, .since_offset = x->since, .since_epoch = x->epoch,
                          .limit = x->has_since ? p->opts->ops.history_max_limit : 0};
    hr_op_history_read(&a, ch, len, &pol, &q, on_recovered, x);
}

/* Answered: subscription_succeeded (data: "{}" or the presence hash), then,
 * for a cache- channel, its last event or pusher:cache_miss, and for a
 * subscription that asked for positions (req->herald), the recovery. */
static void subscribed(hr_pusher *p, hr_sub *sub, const char *name, size_t nlen, const pending *req)
{
    pres *m = sub->hold;
    hr_buf d = HR_BUF_INIT;
    if (m) pres_hash(m, &d);
    else hr_buf_append_str(&d, "{}");
    send_event_str(p, "pusher_internal:subscription_succeeded", name, nlen, (const char *)d.data, d.len);
    hr_buf_free(&d);
    if (m) m->ready = true;
    if (req->herald) {
        p->pos = hr_realloc(p->pos, (p->npos + 1) * sizeof(*p->pos));
        p->pos[p->npos++] = sub;
        start_recovery(p, sub, req);
    }
    if (!(hr_pusher_chan_flags(name, nlen) & HR_PUSHER_CH_CACHE)) return;
    size_t len = 0;
    const char *ch = hr_hub_sub_channel(sub, &len);
    hr_actor a = actor(p, NULL);
    hr_chan_policy pol;
    hr_ops_policy(&p->opts->ops, ch, len, &pol);
    hr_history_query q = {.limit = 1, .reverse = true};
    pending *x = pending_new(p, PEND_CACHE, ch, len);
    hr_op_history_read(&a, ch, len, &pol, &q, on_cache_history, x);
}

/* The presence list is in: max_presence_members, then the connection's own
 * entry and join push (hr_op_subscribe_commit), then subscription_succeeded. */
static void on_presence_list(void *ud, int err, const hr_presence *list)
{
    hr_pusher *p;
    pending *x = ud;
    hr_sub *sub = pending_done(x, &p);
    pres *m = sub ? sub->hold : NULL;
    if (!m || m->ready) { /* gone, or already served (subscribed again while a list was on its way) */
        pending_free(x);
        return;
    }
    for (size_t i = 0; !err && i < list->n; i++)
        if (strcmp(list->entries[i].client, hr_client_id(&p->client).s))
            pres_add(m, list->entries[i].client, list->entries[i].info, list->entries[i].user);
    /* distinct user ids other than this connection's */
    size_t users = 0;
    for (size_t i = 0; i < m->n; i++) {
        bool first = strcmp(m->v[i].user_id, m->user_id) != 0;
        for (size_t j = 0; j < i && first; j++) first = strcmp(m->v[j].user_id, m->v[i].user_id) != 0;
        users += first;
    }
    hr_buf name = HR_BUF_INIT;
    pusher_name(p, x->ch, x->len, &name);
    hr_actor a = actor(p, m->info);
    if (err || (!pres_user_count(m, m->user_id) && !hr_pusher_presence_room(p->app, users))) {
        sub->hold = NULL;
        pres_free(m);
        hr_op_leave(&a, sub, false);
        send_sub_error(p, (const char *)name.data, name.len, "LimitReached",
                       err ? "presence is not available now" : "presence channel is full (max_presence_members)",
                       err ? 503 : 403);
    } else {
        hr_chan_policy pol;
        hr_ops_policy(&p->opts->ops, x->ch, x->len, &pol);
        hr_op_subscribe_commit(&a, sub, &pol);
        pres_add(m, hr_client_id(&p->client).s, m->info, p->client.user);
        subscribed(p, sub, (const char *)name.data, name.len, x);
    }
    hr_buf_free(&name);
    pending_free(x);
}

/* channel_data {"user_id": string or number, "user_info": any}: the
 * presence state with this connection's normalized info, or NULL. */
static pres *pres_new(const char *cd, size_t len)
{
    json_t *v = cd ? json_loadb(cd, len, 0, NULL) : NULL;
    json_t *id = json_object_get(v, "user_id"), *ui = json_object_get(v, "user_info");
    char num[32];
    const char *uid = json_is_string(id) ? json_string_value(id) : NULL;
    if (json_is_integer(id)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(id));
        uid = num;
    }
    if (!uid || !uid[0]) {
        json_decref(v);
        return NULL;
    }
    pres *m = hr_calloc(1, sizeof(*m));
    m->user_id = hr_strdup(uid);
    hr_buf b = HR_BUF_INIT;
    hr_buf_append_str(&b, "{\"user_id\":");
    hr_json_append_string(&b, uid, strlen(uid));
    if (ui) {
        hr_buf_append_str(&b, ",\"user_info\":");
        hr_json_dump(ui, &b);
    }
    hr_buf_append(&b, "}", 2);
    m->info = hr_strdup((const char *)b.data);
    hr_buf_free(&b);
    json_decref(v);
    return m;
}

static const char *str_of(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    *len = json_is_string(v) ? json_string_length(v) : 0;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The recovery extension's fields of pusher:subscribe (docs/pusher.md):
 * "herald": true, or "herald_since": {"offset": N, "epoch": E} (implies
 * it). false when they are malformed. */
static bool herald_request(json_t *data, pending *req)
{
    json_t *since = json_object_get(data, "herald_since");
    req->herald = json_is_true(json_object_get(data, "herald")) || since;
    if (!since) return true;
    json_t *off = json_object_get(since, "offset"), *ep = json_object_get(since, "epoch");
    if (!json_is_integer(off) || json_integer_value(off) < 0 || !json_is_string(ep) ||
        json_string_length(ep) > HR_EPOCH_LEN)
        return false;
    req->has_since = true;
    req->since = (uint64_t)json_integer_value(off);
    snprintf(req->epoch, sizeof(req->epoch), "%s", json_string_value(ep));
    return true;
}

/* pusher:subscribe {"channel":..,"auth":..,"channel_data":..}. */
static void on_subscribe(hr_pusher *p, json_t *data)
{
    size_t nlen = 0, alen = 0, dlen = 0;
    const char *name = str_of(data, "channel", &nlen), *auth = str_of(data, "auth", &alen);
    const char *cd = str_of(data, "channel_data", &dlen);
    if (!name) {
        send_error(p, 0, "pusher:subscribe needs data.channel");
        return;
    }
    hr_buf ch = HR_BUF_INIT;
    int rc = hr_pusher_to_herald(p->app, name, nlen, &ch);
    if (rc) {
        send_sub_error(p, name, nlen, "InvalidChannel",
                       rc == HR_PUSHER_E_NAME_LONG ? "channel name too long (max_channel_name_length)"
                                                   : "invalid channel name (A-Z a-z 0-9 _ - = @ , . ;)",
                       400);
        return;
    }
    bool presence = hr_pusher_chan_flags(name, nlen) & HR_PUSHER_CH_PRESENCE;
    pres *m = presence ? pres_new(cd, dlen) : NULL;
    if (presence && !m) {
        hr_buf_free(&ch);
        send_sub_error(p, name, nlen, "InvalidChannelData", "presence channel_data needs a user_id", 400);
        return;
    }
    pending hreq = {0};
    if (!herald_request(data, &hreq)) {
        pres_free(m);
        hr_buf_free(&ch);
        send_sub_error(p, name, nlen, "InvalidRequest",
                       "herald_since must be {\"offset\": integer, \"epoch\": string of 16 characters at most}", 400);
        return;
    }
    hr_client_idstr id = hr_client_id(&p->client);
    hr_op_pusher_cred cred = {id.s, auth, alen, cd, dlen};
    hr_op_sub_req req = {.pusher = &cred};
    hr_actor a = actor(p, m ? m->info : NULL);
    hr_chan_policy pol;
    bool pat = false;
    const char *hch = (const char *)ch.data;
    hr_op_result r = hr_op_may_subscribe(&a, hch, ch.len, &req, p->client.nsubs, &pol, &pat);
    hr_sub *sub = r.rc ? NULL : hr_op_subscribe_add(&a, hch, ch.len, false, &pol, &r);
    if (!sub) {
        pres_free(m);
        send_op_error(p, name, nlen, r);
    } else if (m) { /* the members first (presence_for: subscribers, as it now is) */
        sub->hold = m;
        pending *x = pending_new(p, PEND_PRESENCE, hch, ch.len);
        x->herald = hreq.herald;
        x->has_since = hreq.has_since;
        x->since = hreq.since;
        memcpy(x->epoch, hreq.epoch, sizeof(x->epoch));
        hr_op_presence_read(&a, hch, ch.len, on_presence_list, x);
    } else {
        hr_op_subscribe_commit(&a, sub, &pol);
        subscribed(p, sub, name, nlen, &hreq);
    }
    hr_buf_free(&ch);
}

static void leave(hr_pusher *p, hr_sub *sub, bool announce)
{
    for (size_t i = 0; i < p->npos; i++)
        if (p->pos[i] == sub) p->pos[i--] = p->pos[--p->npos];
    pending *x = p->pend ? recovering(p, sub) : NULL;
    if (x) { /* its answer finds no subscription: drop what it holds now */
        hr_op_hold_free(&x->hold);
        x->sub = NULL;
    }
    pres *m = sub->hold;
    sub->hold = NULL;
    hr_actor a = actor(p, m ? m->info : NULL);
    hr_op_leave(&a, sub, announce);
    pres_free(m);
}

/* pusher:unsubscribe {"channel":..}: no answer (Pusher sends none). */
static void on_unsubscribe(hr_pusher *p, json_t *data)
{
    size_t nlen = 0;
    const char *name = str_of(data, "channel", &nlen);
    hr_buf ch = HR_BUF_INIT;
    if (name && !hr_pusher_to_herald(p->app, name, nlen, &ch)) {
        hr_actor a = actor(p, NULL);
        hr_op_result r;
        hr_sub *sub = hr_op_unsubscribe_find(&a, (const char *)ch.data, ch.len, &r);
        if (sub) leave(p, sub, true);
    }
    hr_buf_free(&ch);
}

static void on_client_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    HR_UNUSED(ud);
    HR_UNUSED(offset);
    HR_UNUSED(epoch);
    if (err) hr_logf(HR_LOG_WARN, "publish_failed", "pusher: a client event failed: %s", hr_strerror(err));
}

/* A client-* event: published as {"event","data","socket_id"[,"user_id"]}
 * so the sender is excluded and presence members see who sent it. */
static void on_client_event(hr_pusher *p, const char *event, json_t *msg)
{
    size_t nlen = 0;
    const char *name = str_of(msg, "channel", &nlen);
    json_t *data = json_object_get(msg, "data");
    hr_buf ch = HR_BUF_INIT, body = HR_BUF_INIT;
    if (!name || hr_pusher_to_herald(p->app, name, nlen, &ch)) {
        send_error(p, 0, "a client event needs the channel it is for");
        hr_buf_free(&ch);
        return;
    }
    hr_sub *sub = hr_hub_find_sub(&p->client, (const char *)ch.data, ch.len);
    pres *m = sub ? sub->hold : NULL;
    hr_buf_append_str(&body, "{\"event\":");
    hr_json_append_string(&body, event, strlen(event));
    hr_buf_append_str(&body, ",\"data\":");
    if (data) hr_json_dump(data, &body);
    else hr_buf_append_str(&body, "null");
    hr_buf_append_str(&body, ",\"socket_id\":");
    hr_client_idstr id = hr_client_id(&p->client);
    hr_json_append_string(&body, id.s, strlen(id.s));
    if (m) {
        hr_buf_append_str(&body, ",\"user_id\":");
        hr_json_append_string(&body, m->user_id, strlen(m->user_id));
    }
    hr_buf_append(&body, "}", 1);
    hr_actor a = actor(p, NULL);
    hr_op_result r = hr_op_publish(&a, (const char *)ch.data, ch.len, (const char *)body.data, body.len, NULL, 0,
                                   on_client_published, NULL, NULL);
    if (r.rc == HR_OP_RATE_LIMITED) send_error(p, HR_PUSHER_RATE_LIMITED, r.detail ? r.detail : "rate limited");
    else if (r.rc) send_error(p, 0, r.detail ? r.detail : hr_op_rc_name(r.rc));
    hr_buf_free(&ch);
    hr_buf_free(&body);
}

/* pusher:signin {"user_data":"{\"id\":..}","auth":"KEY:HMAC"}: the user id
 * becomes the connection's user (its "#server-to-user-ID" channel, the
 * server API's disconnect by user); a refusal closes with 4009. */
static void on_signin(hr_pusher *p, json_t *data)
{
    size_t ulen = 0, alen = 0;
    const char *ud = str_of(data, "user_data", &ulen), *auth = str_of(data, "auth", &alen);
    if (!p->app->user_authentication) {
        refuse(p, HR_PUSHER_UNAUTHORIZED, "user authentication is off for this app (user_authentication)");
        return;
    }
    if (p->client.user[0]) {
        send_error(p, 0, "this connection is already signed in");
        return;
    }
    if (hr_pusher_check_user_auth(p->app, hr_client_id(&p->client).s, ud, ulen, auth, alen)) {
        refuse(p, HR_PUSHER_UNAUTHORIZED, "invalid signin signature");
        return;
    }
    json_t *v = json_loadb(ud, ulen, 0, NULL);
    const char *id = json_string_value(json_object_get(v, "id"));
    hr_buf probe = HR_BUF_INIT;
    if (!id || hr_pusher_user_channel(p->app, id, strlen(id), &probe)) {
        refuse(p, HR_PUSHER_UNAUTHORIZED, "user_data needs an id made of A-Z a-z 0-9 _ - = @ ! ~ + $ /");
    } else {
        hr_client_set_user(&p->client, id);
        hr_buf d = HR_BUF_INIT;
        hr_buf_append_str(&d, "{\"user_data\":");
        hr_json_append_string(&d, ud, ulen);
        hr_buf_append(&d, "}", 2);
        send_event(p, "pusher:signin_success", NULL, 0, (const char *)d.data);
        hr_buf_free(&d);
    }
    hr_buf_free(&probe);
    json_decref(v);
}

/* ---- messages ------------------------------------------------------------------------- */

void hr_pusher_on_message(hr_pusher *p, bool binary, const uint8_t *data, size_t len)
{
    if (p->closing) return;
    p->last_rx = now_of(p);
    p->pinged = false;
    size_t values = 1; /* bound the jansson tree, as the native protocol does */
    for (size_t i = 0; i < len; i++) values += data[i] == ',' || data[i] == '[' || data[i] == '{';
    json_t *msg = binary || values > HR_NATIVE_MAX_VALUES ? NULL : json_loadb((const char *)data, len, 0, NULL);
    const char *event = json_string_value(json_object_get(msg, "event"));
    if (!event) {
        send_error(p, 0, "expected a JSON object with an \"event\" string");
        json_decref(msg);
        return;
    }
    json_t *d = json_object_get(msg, "data");
    json_t *parsed = json_is_string(d) ? json_loads(json_string_value(d), 0, NULL) : NULL; /* data may be a string */
    if (parsed) d = parsed;
    if (!strcmp(event, "pusher:ping")) send_event(p, "pusher:pong", NULL, 0, "{}");
    else if (!strcmp(event, "pusher:pong")) {
    } else if (!strcmp(event, "pusher:subscribe")) on_subscribe(p, d);
    else if (!strcmp(event, "pusher:unsubscribe")) on_unsubscribe(p, d);
    else if (!strcmp(event, "pusher:signin")) on_signin(p, d);
    else if (!strncmp(event, "client-", 7)) on_client_event(p, event, msg);
    else send_error(p, 0, "unknown event (a client sends pusher:* and client-* events)");
    json_decref(parsed);
    json_decref(msg);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static uint64_t pong_wait(const hr_pusher *p)
{
    return (uint64_t)HR_MIN((int64_t)HR_PUSHER_PONG_WAIT_MS, p->app->activity_timeout_ms);
}

/* activity_timeout after the last message: pusher:ping; no answer in the
 * pong wait: close 4201. */
static void on_activity(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    hr_pusher *p = HR_CONTAINER_OF(t, hr_pusher, activity);
    if (p->closing) return;
    uint64_t now = now_of(p), idle = now - p->last_rx, timeout = (uint64_t)p->app->activity_timeout_ms;
    if (p->pinged && idle >= timeout + pong_wait(p)) {
        refuse(p, HR_PUSHER_PONG_TIMEOUT, "pong reply not received");
        return;
    }
    if (!p->pinged && idle >= timeout) {
        send_event(p, "pusher:ping", NULL, 0, "{}");
        p->pinged = true;
        hr_timer_start(wheel_of(p), &p->activity, pong_wait(p));
        return;
    }
    hr_timer_start(wheel_of(p), &p->activity, p->pinged ? timeout + pong_wait(p) - idle : timeout - idle);
}

/* protocol=N: 0 = accepted, else the refusal's code. */
static int protocol_check(const char *query, size_t qlen)
{
    const char *val = NULL;
    size_t vlen = 0;
    for (size_t i = 0; query && i + 9 <= qlen; i++) {
        if ((i == 0 || query[i - 1] == '&') && !memcmp(query + i, "protocol=", 9)) {
            val = query + i + 9;
            while (i + 9 + vlen < qlen && val[vlen] != '&') vlen++;
            break;
        }
    }
    if (!val) return HR_PUSHER_NO_PROTOCOL;
    long v = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (val[i] < '0' || val[i] > '9' || v > 1000) return HR_PUSHER_BAD_PROTOCOL;
        v = v * 10 + (val[i] - '0');
    }
    return vlen && v >= 7 ? 0 : HR_PUSHER_BAD_PROTOCOL;
}

hr_pusher *hr_pusher_new(hr_whub *wh, const hr_proto_opts *opts, const hr_sink_vt *sink, void *t, const char *key,
                         size_t klen, const char *query, size_t qlen)
{
    hr_pusher *p = hr_calloc(1, sizeof(*p));
    p->client.vt = &pusher_client_vt;
    p->client.wh = wh;
    hr_client_set_user(&p->client, "");
    uint32_t r[2];
    hr_random_bytes(r, sizeof(r));
    hr_client_id_pusher(&p->client, r[0] & 0x7fffffff, r[1] & 0x7fffffff);
    p->opts = opts;
    p->sink = sink;
    p->t = t;
    hr_timer_init(&p->activity, on_activity);
    p->app = hr_pusher_app_by_key(opts->ops.pusher, key, klen);
    if (!p->app) p->refusal = HR_PUSHER_UNKNOWN_APP;
    else if (!p->app->enabled) p->refusal = HR_PUSHER_APP_DISABLED;
    else p->refusal = protocol_check(query, qlen);
    if (!p->refusal) {
        p->counted = hr_pusher_conn_take(p->app);
        if (!p->counted) p->refusal = HR_PUSHER_OVER_CAPACITY;
    }
    return p;
}

static const char *refusal_text(int code)
{
    switch (code) {
    case HR_PUSHER_UNKNOWN_APP: return "Application does not exist";
    case HR_PUSHER_APP_DISABLED: return "Application disabled";
    case HR_PUSHER_NO_PROTOCOL: return "No protocol version supplied";
    case HR_PUSHER_OVER_CAPACITY: return "Over capacity (max_connections)";
    default: return "Unsupported protocol version (7 is spoken)";
    }
}

void hr_pusher_open(hr_pusher *p)
{
    if (p->refusal) {
        refuse(p, p->refusal, refusal_text(p->refusal));
        return;
    }
    hr_hub_client_add(&p->client);
    char d[128];
    int n = snprintf(d, sizeof(d), "{\"socket_id\":\"%s\",\"activity_timeout\":%lld}", hr_client_id(&p->client).s,
                     (long long)(p->app->activity_timeout_ms / 1000));
    send_event_str(p, "pusher:connection_established", NULL, 0, d, (size_t)n);
    p->last_rx = now_of(p);
    hr_timer_start(wheel_of(p), &p->activity, (uint64_t)p->app->activity_timeout_ms);
}

void hr_pusher_free(hr_pusher *p)
{
    if (!p) return;
    hr_timer_stop(wheel_of(p), &p->activity);
    for (pending *x = p->pend; x; x = x->next) x->p = NULL; /* their answers free them */
    if (!p->refusal) hr_hub_client_remove(&p->client);
    p->closing = true;
    while (p->client.subs) leave(p, p->client.subs, true);
    if (p->counted) hr_pusher_conn_give(p->app);
    hr_free(p->pos);
    hr_client_free_user(&p->client);
    hr_free(p);
}
