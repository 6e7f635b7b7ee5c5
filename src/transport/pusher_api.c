/* pusher_api.c - the Pusher HTTP API (see pusher_api.h, docs/pusher.md).
 *
 * A request: the app from the path (404 when none), Pusher's signed query
 * (hr_pusher_api_check: 401), the app enabled (403), then one handler per
 * endpoint. Handlers check everything first and publish only when the whole
 * request is good (an event for 3 channels that breaks a rule publishes to
 * none; an engine failure after the first channels were accepted, answered
 * 503 or 507, leaves those published), through
 * hr_op_publish as the server actor; the publication's data is
 * {"event":NAME,"data":DATA[,"socket_id":ID]}, which the Pusher sessions
 * encode once per worker and which skips the connection named by socket_id.
 *
 * Answers that need the engine (a publish's acceptance, a presence list for
 * user_count or /users) are awaited like the server API's: the request
 * keeps a count of engine calls in flight, the connection is deferred
 * (hr_http_defer) and the answer written when the last one is in. Channel
 * counts are per request: `subscription_count` and the channel list come
 * from this node's hub registry, `user_count` and /users from the engine's
 * presence (cluster-wide with Redis).
 *
 * Errors are Pusher's: a status and a plain-text explanation. */
#include "transport/pusher_api.h"
#include "codec/urlquery.h"
#include "core/json.h"
#include "ops/ops.h"
#include "ops/pusher_app.h"
#include "transport/http.h"
#include "transport/worker.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The close code of terminate_connections (4000-4099: pusher-js does not
 * reconnect). */
#define TERMINATED_CODE 4009

/* Pusher's bounds on an event (its libraries enforce them too). */
#define EVENT_NAME_MAX 200
#define SOCKET_ID_MAX 64

enum { INFO_USERS = 1, INFO_SUBS = 2 };

/* What the answer is made of. */
enum { ANS_EMPTY, ANS_CHANNELS, ANS_BATCH, ANS_CHANNEL, ANS_USERS };

/* One channel a request reports on. */
typedef struct chan {
    char *name;                    /* the Pusher name */
    char *herald;                  /* its Herald channel */
    size_t hlen;
    uint64_t subs;                 /* this node's subscribers */
    int64_t users;                 /* distinct presence users; -1: not reported */
    unsigned info;                 /* INFO_* to report */
} chan;

typedef struct preq {
    hr_conn *c;                    /* NULL once the connection is gone */
    bool close, deferred, sealed;
    size_t pending;                /* engine answers awaited (+1 while the handler runs) */
    int answer;                    /* ANS_* */
    int status;                    /* 200, or the failure's */
    const char *error;             /* static text, or detail, when status != 200 */
    char detail[160];              /* an operation's refusal (its detail may be a thread's buffer) */
    chan *v;
    size_t n, cap;
    hr_buf users;                  /* ANS_USERS: the ids, JSON */
} preq;

/* ---- the request ---------------------------------------------------------------------- */

static int fail(preq *rq, int status, const char *why)
{
    if (rq->status == 200) { /* the first failure is the answer */
        rq->status = status;
        rq->error = why;
    }
    return status;
}

/* An operation's refusal: its HTTP status and its detail, copied. */
static int fail_op(preq *rq, hr_op_result r)
{
    if (rq->status == 200) snprintf(rq->detail, sizeof(rq->detail), "%s", r.detail ? r.detail : hr_op_rc_name(r.rc));
    return fail(rq, hr_op_http_status(r.rc), rq->detail);
}

static chan *chan_add(preq *rq, const char *name, size_t len, const hr_buf *herald, unsigned info)
{
    if (rq->n == rq->cap) {
        rq->cap = rq->cap ? 2 * rq->cap : 4;
        rq->v = hr_realloc(rq->v, rq->cap * sizeof(*rq->v));
    }
    chan *ch = &rq->v[rq->n++];
    *ch = (chan){hr_strndup(name, len), hr_strndup((const char *)herald->data, herald->len), herald->len, 0, -1,
                 info};
    return ch;
}

static void preq_free(preq *rq)
{
    for (size_t i = 0; i < rq->n; i++) {
        hr_free(rq->v[i].name);
        hr_free(rq->v[i].herald);
    }
    hr_free(rq->v);
    hr_buf_free(&rq->users);
    hr_free(rq);
}

/* {"user_count":N,"subscription_count":N} as far as asked. */
static void append_attrs(hr_buf *b, const chan *ch, bool first)
{
    if (ch->users >= 0) {
        hr_buf_printf(b, "%s\"user_count\":%lld", first ? "" : ",", (long long)ch->users);
        first = false;
    }
    if (ch->info & INFO_SUBS)
        hr_buf_printf(b, "%s\"subscription_count\":%llu", first ? "" : ",", (unsigned long long)ch->subs);
}

static void build_answer(const preq *rq, hr_buf *b)
{
    switch (rq->answer) {
    case ANS_CHANNELS:
        hr_buf_append_str(b, "{\"channels\":{");
        for (size_t i = 0; i < rq->n; i++) {
            if (i) hr_buf_append(b, ",", 1);
            hr_json_append_string(b, rq->v[i].name, strlen(rq->v[i].name));
            hr_buf_append(b, ":{", 2);
            append_attrs(b, &rq->v[i], true);
            hr_buf_append(b, "}", 1);
        }
        hr_buf_append_str(b, "}}");
        break;
    case ANS_BATCH:
        hr_buf_append_str(b, "{\"batch\":[");
        for (size_t i = 0; i < rq->n; i++) {
            hr_buf_append_str(b, i ? ",{" : "{");
            append_attrs(b, &rq->v[i], true);
            hr_buf_append(b, "}", 1);
        }
        hr_buf_append_str(b, "]}");
        break;
    case ANS_CHANNEL:
        hr_buf_printf(b, "{\"occupied\":%s", rq->v[0].subs || rq->v[0].users > 0 ? "true" : "false");
        append_attrs(b, &rq->v[0], false);
        hr_buf_append(b, "}", 1);
        break;
    case ANS_USERS:
        hr_buf_append_str(b, "{\"users\":[");
        hr_buf_append(b, rq->users.data, rq->users.len);
        hr_buf_append_str(b, "]}");
        break;
    default: hr_buf_append_str(b, "{}"); break;
    }
}

static void respond_text(hr_conn *c, int status, const char *text, bool close)
{
    hr_buf b = HR_BUF_INIT;
    hr_buf_printf(&b, "%s\n", text);
    hr_http_respond(c, status, "text/plain; charset=utf-8", "Cache-Control: no-store\r\n", b.data, b.len, false,
                    close);
    hr_buf_free(&b);
}

/* Answer once the handler ran and no engine answer is awaited. */
static void preq_finish(preq *rq)
{
    if (!rq->sealed || rq->pending) return;
    hr_conn *c = rq->c;
    if (c && rq->status != 200) {
        respond_text(c, rq->status, rq->error, rq->close);
    } else if (c) {
        hr_buf b = HR_BUF_INIT;
        build_answer(rq, &b);
        hr_http_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", b.data, b.len, false, rq->close);
        hr_buf_free(&b);
    }
    if (c && rq->deferred) hr_http_resume(c);
    preq_free(rq);
}

static void preq_cancel(void *owner) { ((preq *)owner)->c = NULL; }

/* One engine answer in. */
static void preq_done(preq *rq)
{
    rq->pending--;
    preq_finish(rq);
}

/* ---- context -------------------------------------------------------------------------- */

typedef struct ctx {
    hr_conn *c;
    const hr_http_request *req;
    const hr_pusher_app *app;
    preq *rq;
} ctx;

static hr_actor actor_of(const ctx *x)
{
    hr_worker *w = x->c->w;
    return (hr_actor){.kind = HR_ACTOR_SERVER, .opts = &w->proto->ops, .wh = w->hub, .engine = w->sh->hub->engine};
}

/* ?info=a,b as INFO_* bits (0: none). -1: an unknown attribute. */
static int info_of(const char *s, size_t len)
{
    int bits = 0;
    for (size_t i = 0; i < len;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - s) : len, n = end - i;
        if (n == 10 && !memcmp(s + i, "user_count", 10)) bits |= INFO_USERS;
        else if (n == 18 && !memcmp(s + i, "subscription_count", 18)) bits |= INFO_SUBS;
        else if (n) return -1;
        i = end + 1;
    }
    return bits;
}

/* Query parameter `name`, %-decoded, into out (replacing it): true when
 * present. The query's escapes were checked with its signature. */
static bool query_get(const ctx *x, const char *name, hr_buf *out)
{
    size_t pos = 0, len = 0, cap = x->req->query_len + 1;
    out->len = 0;
    if (hr_query_next(x->req->query, x->req->query_len, &pos, name, (char *)hr_buf_reserve(out, cap), cap, &len) != 1)
        return false;
    out->len = len;
    return true;
}

static int query_info(const ctx *x)
{
    hr_buf v = HR_BUF_INIT;
    int bits = query_get(x, "info", &v) ? info_of((const char *)v.data, v.len) : 0;
    hr_buf_free(&v);
    return bits;
}

/* ---- presence ------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The distinct user ids of a presence list, sorted: each one to fn. */
static size_t each_user(const hr_presence *p, void (*fn)(void *ud, const char *id), void *ud)
{
    char **ids = hr_calloc(p->n ? p->n : 1, sizeof(*ids));
    for (size_t i = 0; i < p->n; i++) {
        hr_buf b = HR_BUF_INIT;
        hr_pusher_member_id(p->entries[i].info, p->entries[i].user, &b);
        hr_buf_append(&b, "", 1);
        ids[i] = hr_strdup((const char *)b.data);
        hr_buf_free(&b);
    }
    qsort(ids, p->n, sizeof(*ids), cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (ids[i][0] && (!i || strcmp(ids[i], ids[i - 1]))) {
            k++;
            if (fn) fn(ud, ids[i]);
        }
    }
    for (size_t i = 0; i < p->n; i++) hr_free(ids[i]);
    hr_free(ids);
    return k;
}

typedef struct users_op {
    preq *rq;
    size_t i;                      /* the channel */
} users_op;

static void on_user_count(void *ud, int err, const hr_presence *p)
{
    users_op *u = ud;
    if (err) fail(u->rq, 503, "Presence is unavailable now (the engine did not answer); retry");
    else u->rq->v[u->i].users = (int64_t)each_user(p, NULL, NULL);
    preq *rq = u->rq;
    hr_free(u);
    preq_done(rq);
}

/* Ask the engine for channel i's user count. */
static void ask_users(ctx *x, size_t i)
{
    users_op *u = hr_calloc(1, sizeof(*u));
    *u = (users_op){x->rq, i};
    x->rq->pending++;
    hr_actor a = actor_of(x);
    chan *ch = &x->rq->v[i];
    hr_op_result r = hr_op_presence(&a, ch->herald, ch->hlen, on_user_count, u);
    if (r.rc) {
        fail_op(x->rq, r);
        hr_free(u);
        x->rq->pending--;
    }
}

/* The counts of the request's channels: subscribers now, users from the engine. */
static void gather(ctx *x)
{
    for (size_t i = 0; i < x->rq->n; i++) {
        chan *ch = &x->rq->v[i];
        ch->subs = hr_hub_subscribers(x->c->w->sh->hub, ch->herald, ch->hlen);
        bool presence = hr_pusher_chan_flags(ch->name, strlen(ch->name)) & HR_PUSHER_CH_PRESENCE;
        if ((ch->info & INFO_USERS) && presence) ask_users(x, i);
    }
}

/* ---- events --------------------------------------------------------------------------- */

/* A channel name of the request as its Herald channel (400 when it is no
 * Pusher channel name). */
static int map_channel(ctx *x, json_t *v, hr_buf *out)
{
    if (!json_is_string(v)) return fail(x->rq, 400, "Invalid channel: expected a string");
    int rc = hr_pusher_to_herald(x->app, json_string_value(v), json_string_length(v), out);
    if (rc == HR_PUSHER_E_NAME_LONG) return fail(x->rq, 400, "Invalid channel: longer than max_channel_name_length");
    if (rc) return fail(x->rq, 400, "Invalid channel: names are made of A-Z a-z 0-9 _ - = @ , . ;");
    return 0;
}

/* An event object's name, data and socket_id as the publication's data
 * ({"event","data","socket_id"}), into body. */
static int event_body(ctx *x, json_t *ev, hr_buf *body)
{
    json_t *name = json_object_get(ev, "name"), *data = json_object_get(ev, "data");
    json_t *sid = json_object_get(ev, "socket_id");
    if (!json_is_string(name) || !json_string_length(name) || json_string_length(name) > EVENT_NAME_MAX)
        return fail(x->rq, 400, "Invalid event name: expected a string of 1 to 200 bytes");
    if (!data) return fail(x->rq, 400, "Missing event data");
    if (sid && !json_is_null(sid)) {
        const char *s = json_string_value(sid);
        size_t n = s ? strlen(s) : 0, dot = s ? strspn(s, "0123456789") : 0;
        if (!s || n > SOCKET_ID_MAX || !dot || s[dot] != '.' || !s[dot + 1] ||
            strspn(s + dot + 1, "0123456789") != n - dot - 1)
            return fail(x->rq, 400, "Invalid socket_id: expected \"N.M\"");
    }
    hr_buf_append_str(body, "{\"event\":");
    hr_json_append_string(body, json_string_value(name), json_string_length(name));
    hr_buf_append_str(body, ",\"data\":");
    hr_json_dump(data, body);
    if (json_is_string(sid)) {
        hr_buf_append_str(body, ",\"socket_id\":");
        hr_json_append_string(body, json_string_value(sid), json_string_length(sid));
    }
    hr_buf_append(body, "}", 1);
    return 0;
}

static void on_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    HR_UNUSED(offset);
    HR_UNUSED(epoch);
    preq *rq = ud;
    if (err == HR_ERR_STORAGE) fail(rq, 507, "Insufficient storage: the event was not accepted");
    else if (err) fail(rq, 503, "Engine unavailable: the event was not accepted; retry");
    preq_done(rq);
}

/* One event (its body built) to channels first..n of the request, all
 * checked before any is published. */
static int publish_event(ctx *x, size_t first, const hr_buf *body)
{
    hr_actor a = actor_of(x);
    for (size_t i = first; i < x->rq->n; i++) {
        hr_chan_policy pol;
        chan *ch = &x->rq->v[i];
        hr_op_result r = hr_op_may_publish(&a, ch->herald, ch->hlen, body->len, NULL, 0, &pol);
        if (r.rc) return fail_op(x->rq, r);
    }
    return 0;
}

static void publish_now(ctx *x, size_t i, const hr_buf *body)
{
    hr_actor a = actor_of(x);
    chan *ch = &x->rq->v[i];
    x->rq->pending++;
    hr_op_result r = hr_op_publish(&a, ch->herald, ch->hlen, (const char *)body->data, body->len, NULL, 0,
                                   on_published, NULL, x->rq);
    if (r.rc) {
        fail_op(x->rq, r);
        x->rq->pending--;
    }
}

/* The channels of an event ("channels": [..] or "channel": ".."), added to
 * the request (a name twice: once). */
static int event_channels(ctx *x, json_t *ev, bool many, unsigned info)
{
    json_t *list = json_object_get(ev, "channels"), *one = json_object_get(ev, "channel");
    if (!many || !list) {
        if (!one) return fail(x->rq, 400, "Missing channel");
        list = NULL;
    } else if (!json_is_array(list) || !json_array_size(list)) {
        return fail(x->rq, 400, "Invalid channels: expected a non-empty array");
    } else if (json_array_size(list) > (size_t)x->app->max_event_channels) {
        return fail(x->rq, 400, "Too many channels in one event (max_event_channels)");
    }
    size_t n = list ? json_array_size(list) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = list ? json_array_get(list, i) : one;
        hr_buf h = HR_BUF_INIT;
        int rc = map_channel(x, v, &h);
        bool dup = false;
        for (size_t k = 0; !rc && many && k < x->rq->n; k++)
            dup = dup || (x->rq->v[k].hlen == h.len && !memcmp(x->rq->v[k].herald, h.data, h.len));
        if (!rc && !dup) chan_add(x->rq, json_string_value(v), json_string_length(v), &h, info);
        hr_buf_free(&h);
        if (rc) return rc;
    }
    return 0;
}

/* An event's "info": absent (0), or attributes. */
static int event_info(ctx *x, json_t *ev, unsigned *info)
{
    json_t *v = json_object_get(ev, "info");
    int bits = v ? (json_is_string(v) ? info_of(json_string_value(v), json_string_length(v)) : -1) : 0;
    if (bits < 0) return fail(x->rq, 400, "Invalid info: a comma-separated list of user_count, subscription_count");
    *info = (unsigned)bits;
    return 0;
}

/* POST /events {"name","data","channels"|"channel","socket_id","info"}. */
static void h_events(ctx *x, json_t *body)
{
    unsigned info = 0;
    hr_buf ev = HR_BUF_INIT;
    if (event_info(x, body, &info) || event_channels(x, body, true, info) || event_body(x, body, &ev) ||
        publish_event(x, 0, &ev)) {
        hr_buf_free(&ev);
        return;
    }
    for (size_t i = 0; i < x->rq->n; i++) publish_now(x, i, &ev);
    hr_buf_free(&ev);
    if (info) {
        x->rq->answer = ANS_CHANNELS;
        gather(x);
    }
}

/* POST /batch_events {"batch":[{"name","data","channel","socket_id","info"}]}:
 * every event checked, then each published. */
static void h_batch(ctx *x, json_t *body)
{
    json_t *batch = json_object_get(body, "batch");
    if (!json_is_array(batch)) {
        fail(x->rq, 400, "Missing batch: expected an array of events");
        return;
    }
    size_t n = json_array_size(batch);
    if (n > (size_t)x->app->max_batch_events) {
        fail(x->rq, 400, "Batch too large (max_batch_events)");
        return;
    }
    hr_buf *bodies = hr_calloc(n ? n : 1, sizeof(*bodies));
    bool any_info = false;
    for (size_t i = 0; i < n && x->rq->status == 200; i++) {
        json_t *ev = json_array_get(batch, i);
        unsigned info = 0;
        if (!json_is_object(ev)) fail(x->rq, 400, "Invalid batch: every event must be an object");
        else if (!event_info(x, ev, &info) && !event_channels(x, ev, false, info) &&
                 !event_body(x, ev, &bodies[i]))
            publish_event(x, i, &bodies[i]);
        any_info = any_info || info;
    }
    for (size_t i = 0; i < n && x->rq->status == 200; i++) publish_now(x, i, &bodies[i]);
    for (size_t i = 0; i < n; i++) hr_buf_free(&bodies[i]);
    hr_free(bodies);
    if (any_info && x->rq->status == 200) {
        x->rq->answer = ANS_BATCH;
        gather(x);
    }
}

/* ---- channels ------------------------------------------------------------------------- */

typedef struct list_ud {
    ctx *x;
    size_t skip;                   /* bytes of "$pusher-ID:" */
    const hr_buf *prefix;          /* filter_by_prefix (Pusher name) */
    unsigned info;
} list_ud;

/* A channel of the registry (under its shard lock: copy only). */
static void each_chan(void *ud, const char *name, size_t len, uint64_t subs)
{
    list_ud *u = ud;
    const hr_pusher_app *app = NULL;
    hr_buf pname = HR_BUF_INIT;
    int rc = hr_pusher_from_herald(u->x->c->w->proto->ops.pusher, name, len, &app, &pname);
    bool match = !rc && app == u->x->app && pname.len >= u->prefix->len && pname.len && pname.data[0] != '#' &&
                 (!u->prefix->len || !memcmp(pname.data, u->prefix->data, u->prefix->len));
    if (match) {
        hr_buf h = HR_BUF_INIT;
        hr_buf_append(&h, name, len);
        chan_add(u->x->rq, (const char *)pname.data, pname.len, &h, u->info)->subs = subs;
        hr_buf_free(&h);
    }
    hr_buf_free(&pname);
}

/* GET /channels?filter_by_prefix=P&info=user_count,subscription_count:
 * the app's occupied channels on this node. */
static void h_channels(ctx *x)
{
    int info = query_info(x);
    hr_buf prefix = HR_BUF_INIT, ns = HR_BUF_INIT;
    query_get(x, "filter_by_prefix", &prefix);
    if (info < 0) {
        fail(x->rq, 400, "Invalid info: a comma-separated list of user_count, subscription_count");
    } else if ((info & INFO_USERS) && (prefix.len < 9 || memcmp(prefix.data, "presence-", 9))) {
        fail(x->rq, 400, "user_count may only be requested for presence channels: filter_by_prefix=presence-");
    } else {
        hr_buf_printf(&ns, HR_PUSHER_NS_PREFIX "%s:", x->app->app_id);
        list_ud u = {x, ns.len, &prefix, (unsigned)info};
        hr_hub_each_channel(x->c->w->sh->hub, (const char *)ns.data, ns.len, each_chan, &u);
        x->rq->answer = ANS_CHANNELS;
        for (size_t i = 0; i < x->rq->n; i++)
            if (info & INFO_USERS) ask_users(x, i);
    }
    hr_buf_free(&prefix);
    hr_buf_free(&ns);
}

/* The channel named by the path ("channels/NAME..."), added to the request. */
static int path_channel(ctx *x, const char *name, size_t len, unsigned info)
{
    hr_buf h = HR_BUF_INIT;
    int rc = hr_pusher_to_herald(x->app, name, len, &h);
    if (rc) fail(x->rq, 400, "Invalid channel name");
    else chan_add(x->rq, name, len, &h, info);
    hr_buf_free(&h);
    return rc;
}

/* GET /channels/NAME?info=...: occupied, and the counts asked for. */
static void h_channel(ctx *x, const char *name, size_t len)
{
    int info = query_info(x);
    bool presence = hr_pusher_chan_flags(name, len) & HR_PUSHER_CH_PRESENCE;
    if (info < 0) fail(x->rq, 400, "Invalid info: a comma-separated list of user_count, subscription_count");
    else if ((info & INFO_USERS) && !presence) fail(x->rq, 400, "user_count is only available for presence channels");
    else if (!path_channel(x, name, len, (unsigned)info)) {
        x->rq->answer = ANS_CHANNEL;
        gather(x);
    }
}

static void add_user(void *ud, const char *id)
{
    hr_buf *b = ud;
    hr_buf_append_str(b, b->len ? ",{\"id\":" : "{\"id\":");
    hr_json_append_string(b, id, strlen(id));
    hr_buf_append(b, "}", 1);
}

static void on_users(void *ud, int err, const hr_presence *p)
{
    preq *rq = ud;
    if (err) fail(rq, 503, "Presence is unavailable now (the engine did not answer); retry");
    else each_user(p, add_user, &rq->users);
    preq_done(rq);
}

/* GET /channels/NAME/users: a presence channel's distinct user ids. */
static void h_users(ctx *x, const char *name, size_t len)
{
    if (!(hr_pusher_chan_flags(name, len) & HR_PUSHER_CH_PRESENCE)) {
        fail(x->rq, 400, "Users are only available for presence channels");
        return;
    }
    if (path_channel(x, name, len, 0)) return;
    x->rq->answer = ANS_USERS;
    x->rq->pending++;
    hr_actor a = actor_of(x);
    hr_op_result r = hr_op_presence(&a, x->rq->v[0].herald, x->rq->v[0].hlen, on_users, x->rq);
    if (r.rc) {
        fail_op(x->rq, r);
        x->rq->pending--;
    }
}

/* POST /users/ID/terminate_connections: every connection signed in as ID
 * (pusher:signin) is closed with 4009, on every worker (and node). */
static void h_terminate(ctx *x, const char *id, size_t len)
{
    hr_buf user = HR_BUF_INIT; /* the app's scoped form: its own users only (ops/pusher_app.h) */
    if (!len || len > HR_OP_MAX_USER || hr_pusher_scoped_user(x->app, id, len, &user) || user.len > HR_OP_MAX_USER) {
        fail(x->rq, 400, "Invalid user id");
        hr_buf_free(&user);
        return;
    }
    hr_op_target t = {(const char *)user.data, "", "terminated by the app (terminate_connections)"};
    hr_actor a = actor_of(x);
    hr_op_result r = hr_op_may_disconnect(&a, &t, TERMINATED_CODE);
    if (r.rc) fail_op(x->rq, r);
    else hr_hub_disconnect_clients(x->c->w->sh->hub, t.user, t.client, TERMINATED_CODE, t.reason);
    hr_buf_free(&user);
}

/* ---- routing -------------------------------------------------------------------------- */

bool hr_pusher_api_path(const char *path, size_t len)
{
    size_t n = sizeof(HR_PUSHER_API_PATH) - 1;
    return len > n && !memcmp(path, HR_PUSHER_API_PATH, n);
}

static bool is(const char *s, size_t len, const char *lit) { return len == strlen(lit) && !memcmp(s, lit, len); }

static bool method_is(const hr_http_request *req, const char *m) { return is(req->method, req->method_len, m); }

/* The body as a JSON object (400 otherwise). */
static json_t *body_json(ctx *x, const uint8_t *body, size_t len)
{
    json_t *v = len ? json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(v)) {
        json_decref(v);
        fail(x->rq, 400, "Invalid JSON body: expected an object");
        return NULL;
    }
    return v;
}

/* rest: the path after "/apps/{app_id}/". */
static void route(ctx *x, const char *rest, size_t n, const uint8_t *body, size_t len)
{
    const char *slash = memchr(rest, '/', n);
    bool post = method_is(x->req, "POST"), get = method_is(x->req, "GET");
    if (is(rest, n, "events") || is(rest, n, "batch_events")) {
        json_t *v = !post ? NULL : body_json(x, body, len);
        if (!post) fail(x->rq, 405, "Method not allowed: POST");
        else if (v && rest[0] == 'e') h_events(x, v);
        else if (v) h_batch(x, v);
        json_decref(v);
    } else if (is(rest, n, "channels")) {
        if (get) h_channels(x);
        else fail(x->rq, 405, "Method not allowed: GET");
    } else if (n > 9 && !memcmp(rest, "channels/", 9)) {
        const char *name = rest + 9, *end = memchr(name, '/', n - 9);
        size_t nl = end ? (size_t)(end - name) : n - 9;
        if (!get) fail(x->rq, 405, "Method not allowed: GET");
        else if (!end) h_channel(x, name, nl);
        else if (is(end, (size_t)(rest + n - end), "/users")) h_users(x, name, nl);
        else fail(x->rq, 404, "Not found");
    } else if (slash && n > 6 && !memcmp(rest, "users/", 6) && n > 28 &&
               is(rest + n - 22, 22, "/terminate_connections")) {
        if (post) h_terminate(x, rest + 6, n - 6 - 22);
        else fail(x->rq, 405, "Method not allowed: POST");
    } else {
        fail(x->rq, 404, "Not found");
    }
}

/* The app of "/apps/{app_id}/..." and where the rest starts (NULL: none). */
static const hr_pusher_app *app_of(hr_conn *c, const hr_http_request *req, size_t *rest)
{
    size_t at = sizeof(HR_PUSHER_API_PATH) - 1;
    const char *id = req->path + at, *slash = memchr(id, '/', req->path_len - at);
    if (!slash) return NULL;
    *rest = (size_t)(slash - req->path) + 1;
    return hr_pusher_app_by_id(c->w->proto->ops.pusher, id, (size_t)(slash - id));
}

void hr_pusher_api_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close)
{
    size_t rest = 0;
    const hr_pusher_app *app = app_of(c, req, &rest);
    if (!app) {
        respond_text(c, 404, "Unknown app: no Pusher app has this app_id", close);
        return;
    }
    hr_pusher_api_req ar = {req->method, req->method_len, req->path, req->path_len, req->query, req->query_len,
                            body, len, (int64_t)time(NULL)};
    const char *why = NULL;
    int rc = hr_pusher_api_check(app, &ar, &why);
    if (rc == HR_PUSHER_E_QUERY) {
        respond_text(c, 400, why, close);
        return;
    }
    if (rc) { /* counted and logged as a refused credential */
        hr_worker_refused(c->w, HR_REFUSE_TOKEN, c, req, NULL, 401, why);
        respond_text(c, 401, why, close);
        return;
    }
    if (!app->enabled) {
        respond_text(c, 403, "App disabled", close);
        return;
    }
    preq *rq = hr_calloc(1, sizeof(*rq));
    *rq = (preq){.c = c, .close = close, .pending = 1, .status = 200, .users = HR_BUF_INIT};
    ctx x = {c, req, app, rq};
    route(&x, req->path + rest, req->path_len - rest, body, len);
    rq->sealed = true;
    rq->pending--;
    if (rq->pending) {
        hr_http_defer(c, rq, preq_cancel);
        rq->deferred = true;
        return;
    }
    preq_finish(rq);
}
