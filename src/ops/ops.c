/* ops.c - the operations of every front end (see ops.h).
 *
 * Each operation checks its rules in one fixed order - channel name,
 * namespace, user-limited channel, token, permission, counts, sizes, rates
 * (rates last, so a refused command spends no token of a bucket) - and
 * stops at the first refusal with its result code and a detail; only then
 * does it (or the front end, after its own reservation) call the engine.
 * A subscription's side effects (presence, join/leave pushes, held
 * publications) follow the rules' section. Front ends map codes to wire
 * forms with the two tables at the bottom (native error codes, HTTP
 * statuses) or their own (raw close codes).
 *
 * The backend hooks (ops.h's top) come after every synchronous rule, so a
 * client refused here never reaches the backend. A pending publish owns a
 * copy of what it publishes (pend_pub) until its hook answers; a pending
 * subscribe owns nothing here (its front end holds the request). */
#include "ops/ops.h"
#include "ops/admin.h"
#include "ops/pusher_app.h"
#include "backend/webhook.h"
#include "auth/auth.h"
#include "hub/channel_name.h"
#include "engine/pub.h"
#include "core/json.h"

#include <stdio.h>
#include <string.h>

static const char *const rc_names[HR_OP_NCODES] = {
    "ok", "bad_channel", "pattern", "unknown_namespace", "user_limited", "denied", "token_invalid",
    "token_expired", "already_subscribed", "not_subscribed", "too_many_subscriptions", "channel_full",
    "rate_limited", "too_big", "bad_idempotency_key", "not_available", "bad_request", "backend_unavailable", "backend_timeout",
    "backend_bad_answer", "backend_error", "backend_disconnect", "hook_unsupported",
};

const char *hr_op_rc_name(int rc)
{
    if (rc == HR_OP_PENDING) return "pending";
    return rc <= 0 && -rc < HR_OP_NCODES ? rc_names[-rc] : "unknown";
}

static hr_op_result ok(void) { return (hr_op_result){.rc = HR_OP_OK}; }

int hr_ops_policy(const hr_ops_opts *o, const char *ch, size_t len, hr_chan_policy *out)
{
    if (!o->pusher || !hr_pusher_reserved(ch, len)) return o->policy(o->policy_ctx, ch, len, out);
    hr_chan_policy base; /* [channels]: the default namespace's */
    o->policy(o->policy_ctx, "", 0, &base);
    const hr_pusher_app *app = NULL;
    return hr_pusher_policy(o->pusher, &base, ch, len, out, &app) ? HR_ERR_NOTFOUND : 0;
}
static hr_op_result refuse(int rc, const char *detail) { return (hr_op_result){.rc = rc, .detail = detail}; }

static bool is_client(const hr_actor *a) { return a->kind == HR_ACTOR_CLIENT; }
static const char *user_of(const hr_actor *a) { return a->user ? a->user : ""; }
static uint64_t now_of(const hr_actor *a) { return hr_loop_now(a->wh->loop); }
static hr_limits *limits_of(const hr_actor *a) { return a->wh ? a->wh->hub->limits : NULL; }

/* A rate refusal's detail: "<what> rate limit: retry in N ms". */
static hr_op_result rate_limited(const char *what, uint32_t retry_ms)
{
    static _Thread_local char why[96];
    snprintf(why, sizeof(why), "%s rate limit: retry in %u ms", what, retry_ms ? retry_ms : 1);
    return refuse(HR_OP_RATE_LIMITED, why);
}

/* The reserved namespace "$admin" (ops/admin.h): only an admin connection
 * (its credential verified as HR_ADMIN_USER) reaches it - to subscribe;
 * nobody publishes there (hr_op_may_publish), the nodes' statistics go to
 * the engine directly. Its policy is fixed: no history, no presence. */
static hr_op_result check_reserved(const hr_actor *a, hr_chan_policy *pol)
{
    bool admin = a->opts->admin && strcmp(user_of(a), HR_ADMIN_USER) == 0;
    /* filled on a refusal too: front ends word a DENIED from the policy */
    *pol = (hr_chan_policy){.subscribe = admin ? HR_PERM_AUTHENTICATED : HR_PERM_TOKEN, .allow_anonymous = false,
                            .publish = HR_PERM_NONE, .history_for = HR_PERM_NONE, .presence_for = HR_PERM_NONE};
    return admin ? ok() : refuse(HR_OP_DENIED, "the $admin namespace is reserved for the admin UI");
}

/* Name (patterns only where allowed), namespace, user-limited channel. */
static hr_op_result check_channel(const hr_actor *a, const char *ch, size_t len, bool allow_pattern,
                                  const char *pattern_detail, hr_chan_policy *pol, bool *is_pattern)
{
    size_t max = (size_t)a->opts->max_channel_length;
    bool pat = false;
    int rc = allow_pattern ? hr_chan_validate_pattern(ch, len, max, &pat) : hr_chan_validate(ch, len, max);
    if (rc) {
        /* a well-formed pattern where a channel is needed: say so, not "misplaced wildcard" */
        if (!allow_pattern && !hr_chan_validate_pattern(ch, len, max, &pat) && pat)
            return refuse(HR_OP_PATTERN, pattern_detail);
        return refuse(HR_OP_BAD_CHANNEL, hr_chan_error_text(rc));
    }
    if (is_pattern) *is_pattern = pat;
    if (hr_admin_reserved(ch, len)) return check_reserved(a, pol);
    if (hr_ops_policy(a->opts, ch, len, pol))
        return refuse(HR_OP_UNKNOWN_NAMESPACE, "the channel's namespace is not configured on this server");
    if (is_client(a) && hr_chan_user_allowed(ch, len, user_of(a), strlen(user_of(a))) == 0)
        return refuse(HR_OP_USER_LIMITED, "channel is limited to other users");
    return ok();
}

/* limits.channels_per_connection: may this command bring ch into existence? */
static hr_op_result check_new_channel(const hr_actor *a, const char *ch, size_t len)
{
    hr_limits *l = limits_of(a);
    uint32_t retry_ms = 0;
    if (!is_client(a) || !l || !a->chan_bucket ||
        hr_limits_new_channel(l, a->chan_bucket, a->engine, ch, len, now_of(a), &retry_ms))
        return ok();
    return rate_limited("channel creation", retry_ms);
}

static bool subscribed(const hr_actor *a, const char *ch, size_t len)
{
    return a->client && hr_hub_find_sub(a->client, ch, len) != NULL;
}

/* ---- connect ------------------------------------------------------------------------ */

hr_op_result hr_op_verify_token(const hr_actor *a, const char *tok, size_t len, hr_jwt_claims *cl)
{
    memset(cl, 0, sizeof(*cl));
    uint32_t retry_ms = 0;
    if (a->tok_bucket && !hr_bucket_take(a->tok_bucket, a->opts->token_verifications_per_connection,
                                         a->opts->token_verification_burst, now_of(a), &retry_ms))
        return rate_limited("token verification", retry_ms);
    const char *why = NULL;
    int rc;
    if (a->opts->admin && hr_admin_is_token(tok, len)) { /* the admin UI's credential (ops/admin.h) */
        uint64_t now = a->wh ? now_of(a) : hr_now_ms();
        rc = hr_admin_verify_token(a->opts->admin, tok, len, now) ? HR_JWT_ERR_SIGNATURE : 0;
        why = rc ? "admin credential unknown or expired: log in again" : NULL;
        if (!rc) cl->sub = hr_strdup(HR_ADMIN_USER);
    } else {
        rc = tok ? hr_auth_verify(a->opts->auth, tok, len, cl, &why) : HR_JWT_ERR_MALFORMED;
        if (!rc && cl->sub && strcmp(cl->sub, HR_ADMIN_USER) == 0) { /* reserved: only a login gives it */
            hr_jwt_claims_free(cl);
            rc = HR_JWT_ERR_CLAIMS;
            why = "the user id $admin is reserved for the admin UI";
        } else if (!rc && cl->sub && !strncmp(cl->sub, HR_PUSHER_NS_PREFIX, sizeof(HR_PUSHER_NS_PREFIX) - 1)) {
            hr_jwt_claims_free(cl); /* reserved: a Pusher app's scoped users (ops/pusher_app.h) */
            rc = HR_JWT_ERR_CLAIMS;
            why = "user ids starting with $pusher- are reserved for Pusher apps";
        }
    }
    if (limits_of(a)) hr_limits_bad_token(limits_of(a), a->ip_key, now_of(a), rc);
    if (!rc) return ok();
    return refuse(rc == HR_JWT_ERR_EXPIRED ? HR_OP_TOKEN_EXPIRED : HR_OP_TOKEN_INVALID, why);
}

/* ---- subscribe ---------------------------------------------------------------------- */

/* A subscription token for ch and the actor's user. */
static hr_op_result check_sub_token(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req)
{
    hr_jwt_claims cl;
    hr_op_result r = hr_op_verify_token(a, req->token, req->token_len, &cl);
    if (r.rc == HR_OP_TOKEN_EXPIRED) return refuse(r.rc, "subscription token expired: get a new one");
    if (r.rc) return r;
    if (!cl.channel || strlen(cl.channel) != len || memcmp(cl.channel, ch, len) != 0)
        r = refuse(HR_OP_TOKEN_INVALID, "the subscription token is for another channel");
    else if (strcmp(cl.sub ? cl.sub : "", user_of(a)) != 0)
        r = refuse(HR_OP_TOKEN_INVALID, "the subscription token is for another user");
    hr_jwt_claims_free(&cl);
    return r;
}

/* A Pusher subscription's signature (ops.h hr_op_pusher_cred) for ch, a
 * channel of a Pusher namespace: signed over its Pusher name. */
static hr_op_result check_pusher_cred(const hr_actor *a, const char *ch, size_t len, const hr_op_pusher_cred *c)
{
    const hr_pusher_app *app = NULL;
    hr_buf name = HR_BUF_INIT;
    int rc = hr_pusher_from_herald(a->opts->pusher, ch, len, &app, &name);
    int f = rc ? 0 : hr_pusher_chan_flags((const char *)name.data, name.len);
    if (!rc && hr_pusher_chan_signed(f)) /* a public channel needs none: its policy lets anyone in */
        rc = hr_pusher_check_channel_auth(app, c->socket_id, (const char *)name.data, name.len,
                                          (f & HR_PUSHER_CH_PRESENCE) ? c->channel_data : NULL, c->data_len, c->auth,
                                          c->auth_len);
    hr_buf_free(&name);
    return rc ? refuse(HR_OP_TOKEN_INVALID, "invalid signature for this channel") : ok();
}

static hr_op_result may_subscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req,
                                  size_t nsubs, hr_chan_policy *pol, bool *is_pattern)
{
    bool pat = false;
    hr_op_result r = check_channel(a, ch, len, true, NULL, pol, &pat);
    if (r.rc) return r;
    if (is_pattern) *is_pattern = pat;
    bool granted = req && req->granted;
    if (!granted && req && req->pusher && a->opts->pusher && hr_pusher_reserved(ch, len)) {
        if ((r = check_pusher_cred(a, ch, len, req->pusher)).rc) return r;
        granted = true;
    }
    if (!granted && req && req->token && req->token_len) {
        if ((r = check_sub_token(a, ch, len, req)).rc) return r;
        granted = true;
    }
    const char *detail = NULL;
    if (is_client(a) && !hr_perm_may_subscribe(pol, user_of(a)[0] != '\0', granted, &detail))
        return refuse(HR_OP_DENIED, detail);
    if (subscribed(a, ch, len)) return refuse(HR_OP_ALREADY_SUBSCRIBED, NULL);
    if (nsubs >= (size_t)a->opts->max_subscriptions)
        return refuse(HR_OP_TOO_MANY_SUBSCRIPTIONS, "too many subscriptions on this connection");
    return pat ? ok() : check_new_channel(a, ch, len);
}

static const char unsupported_sub[] = "namespace needs proxy_subscribe, not supported here: use /ws, /stream or /poll";

hr_op_result hr_op_may_subscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req,
                                 size_t nsubs, hr_chan_policy *pol, bool *is_pattern)
{
    hr_op_result r = may_subscribe(a, ch, len, req, nsubs, pol, is_pattern);
    if (!r.rc && is_client(a) && pol->proxy_subscribe && !(req && req->asks_hook))
        return refuse(HR_OP_HOOK_UNSUPPORTED, unsupported_sub);
    return r;
}


hr_sub *hr_op_subscribe_add(const hr_actor *a, const char *ch, size_t len, bool pattern,
                            const hr_chan_policy *pol, hr_op_result *res)
{
    hr_sub *sub = hr_hub_subscribe(a->client, ch, len, pattern, (uint64_t)pol->max_subscribers);
    *res = sub ? ok() : refuse(HR_OP_CHANNEL_FULL, "the channel has reached its max_subscribers");
    return sub;
}

/* ---- the backend hooks ---------------------------------------------------------------- */

/* short enough for a WebSocket close reason (123 bytes) */
static const char unsupported_pub[] = "namespace needs proxy_publish, not supported here: use /ws, /stream or /poll";

/* Ask a hook: PENDING (cb follows) or a refusal now. */
static hr_op_result ask_hook(const hr_actor *a, hr_op_hook hook, const char *ch, size_t len, const char *data,
                             size_t dlen, hr_op_hook_cb cb, void *ud)
{
    const hr_ops_hooks *h = &a->opts->hooks;
    if (!h->call) return refuse(HR_OP_BACKEND_UNAVAILABLE, "no backend hook is configured for this namespace");
    hr_op_hook_req req = {hook, a, ch, len, data, dlen};
    const char *detail = NULL;
    int rc = h->call(h->ctx, &req, cb, ud, &detail);
    return rc ? refuse(rc, detail) : refuse(HR_OP_PENDING, NULL);
}

hr_op_result hr_op_subscribe_hook(const hr_actor *a, const char *ch, size_t len, hr_op_hook_cb cb, void *ud)
{
    return ask_hook(a, HR_OP_HOOK_SUBSCRIBE, ch, len, NULL, 0, cb, ud);
}

hr_op_result hr_op_subscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req,
                             hr_chan_policy *pol, bool *is_pattern, hr_sub **out, hr_op_hook_cb cb, void *ud)
{
    bool pat = false;
    hr_op_result r = may_subscribe(a, ch, len, req, a->client->nsubs, pol, &pat);
    if (is_pattern) *is_pattern = pat;
    if (r.rc) return r;
    if (is_client(a) && pol->proxy_subscribe)
        return cb ? ask_hook(a, HR_OP_HOOK_SUBSCRIBE, ch, len, req ? req->data : NULL, req ? req->data_len : 0, cb, ud)
                  : refuse(HR_OP_HOOK_UNSUPPORTED, unsupported_sub);
    *out = hr_op_subscribe_add(a, ch, len, pat, pol, &r);
    return r;
}

hr_sub *hr_op_subscribe_finish(const hr_actor *a, const char *ch, size_t len, bool pattern,
                               const hr_chan_policy *pol, hr_op_result *res)
{
    if (subscribed(a, ch, len)) {
        *res = refuse(HR_OP_ALREADY_SUBSCRIBED, NULL);
        return NULL;
    }
    if (a->client->nsubs >= (size_t)a->opts->max_subscriptions) {
        *res = refuse(HR_OP_TOO_MANY_SUBSCRIPTIONS, "too many subscriptions on this connection");
        return NULL;
    }
    return hr_op_subscribe_add(a, ch, len, pattern, pol, res);
}

hr_sub *hr_op_unsubscribe_find(const hr_actor *a, const char *ch, size_t len, hr_op_result *res)
{
    hr_sub *sub = a->client ? hr_hub_find_sub(a->client, ch, len) : NULL;
    *res = sub ? ok() : refuse(HR_OP_NOT_SUBSCRIBED, NULL);
    return sub;
}

/* A server command's target and reason (ops.h, hr_op_target). */
static hr_op_result check_target(const hr_actor *a, const hr_op_target *t)
{
    if (is_client(a)) return refuse(HR_OP_DENIED, "only the server API unsubscribes or disconnects other clients");
    if (!t->user[0] && !t->client[0]) return refuse(HR_OP_BAD_REQUEST, "user or client is required");
    if (strlen(t->user) > HR_OP_MAX_USER) return refuse(HR_OP_BAD_REQUEST, "user must be at most 255 bytes");
    if (strlen(t->client) > HR_OP_MAX_CLIENT) return refuse(HR_OP_BAD_REQUEST, "client must be at most 64 bytes");
    if (strlen(t->reason) > HR_OP_MAX_REASON)
        return refuse(HR_OP_BAD_REQUEST, "reason must be a string of at most 120 bytes");
    return ok();
}

hr_op_result hr_op_may_unsubscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_target *t)
{
    if (is_client(a)) return check_target(a, t);
    hr_op_result r = check_channel(a, ch, len, true, NULL, &(hr_chan_policy){0}, NULL);
    return r.rc ? r : check_target(a, t);
}

hr_op_result hr_op_may_disconnect(const hr_actor *a, const hr_op_target *t, int code)
{
    hr_op_result r = check_target(a, t);
    if (!r.rc && (code < 3000 || code > 4999))
        r = refuse(HR_OP_BAD_REQUEST, "code must be an integer from 3000 to 4999");
    return r;
}

hr_op_result hr_op_may_list_channels(const hr_actor *a, const char *pat, size_t len)
{
    bool pat_ok = false;
    int rc = hr_chan_validate_pattern(pat, len, (size_t)a->opts->max_channel_length, &pat_ok);
    return rc ? refuse(HR_OP_BAD_CHANNEL, hr_chan_error_text(rc)) : ok();
}

/* ---- a subscription's side effects --------------------------------------------------- */

/* {"client":ID,"user":USER[,"info":INFO]}: the actor in presence and join/leave pushes. */
static void client_info(const hr_actor *a, hr_buf *b)
{
    hr_buf_printf(b, "{\"client\":\"%s\",\"user\":", hr_client_id(a->client).s);
    hr_json_append_string(b, a->client->user, strlen(a->client->user));
    if (a->info) {
        hr_buf_append_str(b, ",\"info\":");
        hr_buf_append_str(b, a->info);
    }
    hr_buf_append(b, "}", 1);
}

/* A join (after subscribing) or leave (after unsubscribing) push to the
 * channel's subscribers, unless it has more than
 * channels.join_leave_max_subscribers (each push costs one delivery per
 * subscriber: N joiners would cost N^2/2). */
static void join_leave(const hr_actor *a, const char *ch, size_t len, bool join)
{
    uint64_t cap = (uint64_t)a->opts->join_leave_max_subscribers;
    if (cap && hr_hub_subscribers(a->wh->hub, ch, len) + (join ? 0 : 1) > cap) return;
    hr_buf info = HR_BUF_INIT;
    client_info(a, &info);
    hr_pub *p = hr_pub_new(join ? HR_PUB_JOIN : HR_PUB_LEAVE, ch, len, "", 0, (const char *)info.data, info.len);
    hr_buf_free(&info);
    a->engine->vt->publish_event(a->engine, p);
    hr_pub_unref(p);
}

/* member_added / member_removed webhooks: a member is its user, or on a
 * Pusher channel the user_id of its channel_data (a->info). */
static void webhook_member(const hr_actor *a, const char *ch, size_t len, const char *info, bool add)
{
    if (!a->opts->webhook) return;
    hr_buf id = HR_BUF_INIT;
    const char *user = a->client->user;
    if (a->opts->pusher && hr_pusher_reserved(ch, len)) {
        hr_pusher_member_id(a->info, user, &id);
        hr_buf_append(&id, "", 1);
        user = (const char *)id.data;
    }
    hr_webhook_member(a->opts->webhook, ch, len, user, hr_client_id(a->client).s, info, add);
    hr_buf_free(&id);
}

void hr_op_subscribe_commit(const hr_actor *a, hr_sub *sub, const hr_chan_policy *pol)
{
    if (sub->is_pattern) return; /* no presence, no join */
    size_t len = 0;
    const char *ch = hr_hub_sub_channel(sub, &len);
    if (pol->presence) {
        a->engine->vt->presence_add(a->engine, ch, len, hr_client_id(a->client).s, a->client->user, a->info, NULL, NULL);
        webhook_member(a, ch, len, a->info, true);
        sub->presence = true;
    }
    if (pol->join_leave) join_leave(a, ch, len, true);
}

void hr_op_leave(const hr_actor *a, hr_sub *sub, bool announce)
{
    if (sub->is_pattern) {
        hr_hub_unsubscribe(a->client, sub);
        return;
    }
    /* the local channel may be freed by unsubscribe: copy the name first
     * (whole: channels.max_channel_length may be up to 65535) */
    size_t len = 0;
    const char *n = hr_hub_sub_channel(sub, &len);
    char *name = hr_strndup(n, len);
    bool pres = sub->presence;
    /* member_removed before the unsubscribe's channel_vacated */
    if (pres) webhook_member(a, name, len, NULL, false);
    hr_hub_unsubscribe(a->client, sub);
    hr_chan_policy pol;
    bool known = hr_ops_policy(a->opts, name, len, &pol) == 0;
    if (pres) a->engine->vt->presence_remove(a->engine, name, len, hr_client_id(a->client).s, NULL, NULL);
    if (announce && known && pol.join_leave) join_leave(a, name, len, false);
    hr_free(name);
}

/* ---- held publications --------------------------------------------------------------- */

bool hr_op_hold_add(hr_op_hold *h, const hr_ops_opts *o, hr_sub *sub, const hr_pub *pub)
{
    if (h->n >= (size_t)o->max_held_publications) return false;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = hr_realloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n++] = (hr_op_held){sub, hr_pub_ref((hr_pub *)pub)};
    return true;
}

void hr_op_hold_release(hr_op_hold *h, hr_client *c, hr_op_hold_pos_fn pos, void *ud)
{
    for (size_t i = 0; i < h->n; i++) {
        const hr_op_held *e = &h->v[i];
        uint64_t at = 0;
        if (e->pub->kind == HR_PUB_MESSAGE && pos(ud, e->sub, &at) && e->pub->offset <= at) continue;
        hr_enc_cache cache = {{0}};
        c->vt->on_pub(c, e->sub, e->pub, &cache);
        for (int k = 0; k < HR_ENC_SLOTS; k++) hr_sbuf_unref(cache.slot[k]);
    }
    hr_op_hold_free(h);
}

void hr_op_hold_free(hr_op_hold *h)
{
    for (size_t i = 0; i < h->n; i++) hr_pub_unref(h->v[i].pub);
    hr_free(h->v);
    *h = (hr_op_hold){0};
}

/* ---- publish ------------------------------------------------------------------------ */

static hr_op_result too_big(const hr_actor *a, size_t dlen)
{
    static _Thread_local char big[128];
    return refuse(HR_OP_TOO_BIG, hr_pub_too_big_text(big, sizeof(big), dlen, a->opts->max_publication_size));
}

/* The publish rate (limits.publishes_per_*), spent by publish and rpc. */
/* A client's publish to a Pusher channel is a client event: the app's
 * max_client_events_per_second per connection (a->pusher_rate; a client
 * without one - not a Pusher connection - is held to the same rate with no
 * memory of its own, so it may not publish there at all). */
static hr_op_result pusher_client_event(const hr_actor *a, const char *ch, size_t len)
{
    if (!is_client(a) || !a->opts->pusher || !hr_pusher_reserved(ch, len)) return ok();
    const hr_pusher_app *app = NULL;
    hr_buf name = HR_BUF_INIT;
    int rc = hr_pusher_from_herald(a->opts->pusher, ch, len, &app, &name);
    hr_buf_free(&name);
    if (rc || !a->pusher_rate) return refuse(HR_OP_DENIED, "client events come from Pusher connections only");
    if (!hr_pusher_rate_take(app, a->pusher_rate, now_of(a)))
        return refuse(HR_OP_RATE_LIMITED, "client event rate limit (max_client_events_per_second)");
    return ok();
}

static hr_op_result spend_publish(const hr_actor *a, const char *what)
{
    hr_limits *l = limits_of(a);
    uint32_t retry_ms = 0;
    if (is_client(a) && l && a->pub_bucket && !hr_limits_publish(l, a->pub_bucket, user_of(a), now_of(a), &retry_ms))
        return rate_limited(what, retry_ms);
    return ok();
}

hr_op_result hr_op_may_publish(const hr_actor *a, const char *ch, size_t len, size_t dlen, const char *idem_key,
                               size_t idem_len, hr_chan_policy *pol)
{
    if (hr_admin_reserved(ch, len)) return refuse(HR_OP_DENIED, "nobody publishes to the $admin namespace");
    hr_op_result r = check_channel(a, ch, len, false, "cannot publish to a pattern", pol, NULL);
    if (r.rc) return r;
    const char *detail = NULL;
    if (is_client(a) && !hr_perm_may_publish(pol, user_of(a)[0] != '\0', subscribed(a, ch, len), &detail))
        return refuse(HR_OP_DENIED, detail);
    if (dlen > (size_t)a->opts->max_publication_size) return too_big(a, dlen);
    if (idem_key && (idem_len == 0 || idem_len > HR_IDEM_MAX_KEY_LEN))
        return refuse(HR_OP_BAD_IDEMPOTENCY_KEY, "idempotency_key must be a string of 1 to 128 bytes");
    if ((r = pusher_client_event(a, ch, len)).rc) return r;
    r = spend_publish(a, "publish");
    return r.rc ? r : check_new_channel(a, ch, len);
}

hr_op_result hr_op_may_rpc(const hr_actor *a, size_t dlen)
{
    if (dlen > (size_t)a->opts->max_publication_size) return too_big(a, dlen);
    return spend_publish(a, "rpc");
}

/* Who published, for the publication webhook (user / client NULL: the
 * server API, or not known). Borrowed from the actor, or owned copies
 * (publisher_dup) where it must outlive the call. */
typedef struct publisher {
    hr_webhook *wh;
    hr_whub *hub;                  /* the publishing worker's (counts herald_publications_total), or NULL */
    hr_actor_kind kind;
    const char *user, *client;
} publisher;

/* The publisher of a's publication; its client id is formatted into *id. */
static publisher publisher_of(const hr_actor *a, hr_client_idstr *id)
{
    bool client = is_client(a) && a->client;
    if (client) *id = hr_client_id(a->client);
    return (publisher){a->opts->webhook, a->wh, a->kind, is_client(a) && user_of(a)[0] ? user_of(a) : NULL,
                       client ? id->s : NULL};
}

static publisher publisher_dup(const publisher *by)
{
    return (publisher){by->wh, by->hub, by->kind, by->user ? hr_strdup(by->user) : NULL,
                       by->client ? hr_strdup(by->client) : NULL};
}

static void publisher_free(publisher *by)
{
    hr_free((char *)by->user);
    hr_free((char *)by->client);
}

/* A publish whose channel wants the publication webhook: the engine's
 * answer (offset, epoch) completes the event, then the caller's callback. */
typedef struct pub_hook {
    hr_publish_cb cb;
    void *ud;
    publisher by;              /* owned copies */
    hr_pub *p;
} pub_hook;

static void on_hooked_publish(void *ud, int err, uint64_t offset, const char *epoch)
{
    pub_hook *h = ud;
    if (!err) {
        hr_webhook_ev ev = {.type = HR_WH_PUBLICATION, .channel = h->p->channel, .channel_len = h->p->channel_len,
                            .user = h->by.user, .client = h->by.client, .data = h->p->data_len ? h->p->data : "null",
                            .data_len = h->p->data_len ? h->p->data_len : 4, .offset = offset, .epoch = epoch};
        hr_webhook_emit(h->by.wh, &ev);
    }
    if (h->cb) h->cb(h->ud, err, offset, epoch);
    hr_pub_unref(h->p);
    publisher_free(&h->by);
    hr_free(h);
}

/* The engine's publish, through the publication webhook when wanted. */
static void engine_publish(hr_engine *e, const publisher *by, const hr_chan_opts *o, hr_pub *p, const char *idem_key,
                           size_t idem_len, hr_publish_cb cb, void *ud)
{
    if (hr_webhook_wants(by->wh, HR_WH_PUBLICATION, p->channel, p->channel_len)) {
        pub_hook *h = hr_calloc(1, sizeof(*h));
        *h = (pub_hook){cb, ud, publisher_dup(by), hr_pub_ref(p)};
        cb = on_hooked_publish;
        ud = h;
    }
    if (by->hub) hr_whub_count(&by->hub->published[by->kind], 1);
    e->vt->publish(e, o, p, idem_key, idem_len, cb, ud);
}

hr_op_result hr_op_publish_pub(const hr_actor *a, hr_pub *p, const char *idem_key, size_t idem_len,
                               hr_publish_cb cb, void *ud)
{
    hr_chan_policy pol;
    hr_op_result r = hr_op_may_publish(a, p->channel, p->channel_len, p->data_len, idem_key, idem_len, &pol);
    if (r.rc) return r;
    if (is_client(a) && pol.proxy_publish) return refuse(HR_OP_HOOK_UNSUPPORTED, unsupported_pub);
    hr_chan_opts o = HR_OPS_CHAN_OPTS(a->opts, pol);
    hr_client_idstr id;
    publisher by = publisher_of(a, &id);
    engine_publish(a->engine, &by, &o, p, idem_key, idem_len, cb, ud);
    return ok();
}

/* A publish waiting for its hook: what the engine gets on a yes. */
typedef struct pend_pub {
    hr_engine *engine;
    hr_chan_opts o;
    int64_t max_size;              /* channels.max_publication_size, for the backend's data */
    char *channel, *data, *idem;   /* copies (idem NULL: no key) */
    size_t len, dlen, idem_len;
    publisher by;                  /* owned copies, for the publication webhook */
    hr_publish_cb cb;
    hr_op_refused_cb refused;
    void *ud;
} pend_pub;

static char *dup_or_null(const char *s, size_t n) { return s ? hr_strndup(s, n) : NULL; }

static void pend_free(pend_pub *pp)
{
    hr_free(pp->channel);
    hr_free(pp->data);
    hr_free(pp->idem);
    publisher_free(&pp->by);
    hr_free(pp);
}

static void publish_now(hr_engine *e, const publisher *by, const hr_chan_opts *o, const char *ch, size_t len,
                        const char *data, size_t dlen, const char *idem, size_t idem_len, hr_publish_cb cb, void *ud)
{
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, len, data, dlen, NULL, 0);
    engine_publish(e, by, o, p, idem, idem_len, cb, ud);
    hr_pub_unref(p);
}

/* The publish hook answered: publish (its data, or the backend's), or refuse. */
static void on_publish_hook(void *ud, const hr_op_hook_ans *ans)
{
    pend_pub *pp = ud;
    hr_op_result r = ans->res;
    const char *data = ans->data ? ans->data : pp->data;
    size_t dlen = ans->data ? ans->data_len : pp->dlen;
    static _Thread_local char big[160];
    if (!r.rc && dlen > (size_t)pp->max_size) {
        char why[128];
        hr_pub_too_big_text(why, sizeof(why), dlen, pp->max_size);
        snprintf(big, sizeof(big), "the backend's data: %s", why);
        r = refuse(HR_OP_TOO_BIG, big);
    }
    if (r.rc) pp->refused(pp->ud, r);
    else publish_now(pp->engine, &pp->by, &pp->o, pp->channel, pp->len, data, dlen, pp->idem, pp->idem_len, pp->cb, pp->ud);
    pend_free(pp);
}

hr_op_result hr_op_publish(const hr_actor *a, const char *ch, size_t len, const char *data, size_t dlen,
                           const char *idem_key, size_t idem_len, hr_publish_cb cb, hr_op_refused_cb refused,
                           void *ud)
{
    hr_chan_policy pol;
    hr_op_result r = hr_op_may_publish(a, ch, len, dlen, idem_key, idem_len, &pol);
    if (r.rc) return r;
    hr_chan_opts o = HR_OPS_CHAN_OPTS(a->opts, pol);
    hr_client_idstr id;
    publisher by = publisher_of(a, &id);
    if (!is_client(a) || !pol.proxy_publish) {
        publish_now(a->engine, &by, &o, ch, len, data, dlen, idem_key, idem_len, cb, ud);
        return ok();
    }
    if (!refused) return refuse(HR_OP_HOOK_UNSUPPORTED, unsupported_pub);
    pend_pub *pp = hr_calloc(1, sizeof(*pp));
    *pp = (pend_pub){a->engine, o, a->opts->max_publication_size, hr_strndup(ch, len), hr_strndup(data, dlen),
                     dup_or_null(idem_key, idem_len), len, dlen, idem_len, publisher_dup(&by), cb, refused, ud};
    r = ask_hook(a, HR_OP_HOOK_PUBLISH, ch, len, data, dlen, on_publish_hook, pp);
    if (r.rc != HR_OP_PENDING) pend_free(pp);
    return r;
}

/* ---- history and presence ----------------------------------------------------------- */

hr_op_result hr_op_may_history(const hr_actor *a, const char *ch, size_t len, const hr_history_query *q,
                               hr_chan_policy *pol)
{
    if (q->has_since && q->has_before && q->before_offset <= q->since_offset)
        return refuse(HR_OP_BAD_REQUEST, "before.offset must be greater than since.offset");
    hr_op_result r = check_channel(a, ch, len, false, "a pattern is not a channel here", pol, NULL);
    if (r.rc) return r;
    const char *detail = NULL;
    if (is_client(a) && !hr_perm_may_read(pol, false, user_of(a)[0] != '\0', subscribed(a, ch, len), &detail))
        return refuse(HR_OP_DENIED, detail);
    return check_new_channel(a, ch, len);
}

void hr_op_history_read(const hr_actor *a, const char *ch, size_t len, const hr_chan_policy *pol,
                        const hr_history_query *q, hr_history_cb cb, void *ud)
{
    hr_chan_opts o = HR_OPS_CHAN_OPTS(a->opts, *pol);
    a->engine->vt->history(a->engine, &o, ch, len, q, cb, ud);
}

hr_op_result hr_op_history(const hr_actor *a, const char *ch, size_t len, const hr_history_query *q,
                           hr_history_cb cb, void *ud)
{
    hr_chan_policy pol;
    hr_op_result r = hr_op_may_history(a, ch, len, q, &pol);
    if (!r.rc) hr_op_history_read(a, ch, len, &pol, q, cb, ud);
    return r;
}

hr_op_result hr_op_history_remove(const hr_actor *a, const char *ch, size_t len, hr_done_cb cb, void *ud)
{
    hr_chan_policy pol;
    hr_op_result r = check_channel(a, ch, len, false, "a pattern is not a channel here", &pol, NULL);
    if (r.rc) return r;
    if (is_client(a)) return refuse(HR_OP_DENIED, "only the server API removes history");
    a->engine->vt->history_remove(a->engine, ch, len, cb, ud);
    return ok();
}

hr_op_result hr_op_may_presence(const hr_actor *a, const char *ch, size_t len)
{
    hr_chan_policy pol;
    hr_op_result r = check_channel(a, ch, len, false, "a pattern is not a channel here", &pol, NULL);
    if (r.rc) return r;
    if (!pol.presence) return refuse(HR_OP_NOT_AVAILABLE, "presence is disabled for this channel");
    const char *detail = NULL;
    if (is_client(a) && !hr_perm_may_read(&pol, true, user_of(a)[0] != '\0', subscribed(a, ch, len), &detail))
        return refuse(HR_OP_DENIED, detail);
    return ok();
}

void hr_op_presence_read(const hr_actor *a, const char *ch, size_t len, hr_presence_cb cb, void *ud)
{
    a->engine->vt->presence(a->engine, ch, len, cb, ud);
}

hr_op_result hr_op_presence(const hr_actor *a, const char *ch, size_t len, hr_presence_cb cb, void *ud)
{
    hr_op_result r = hr_op_may_presence(a, ch, len);
    if (!r.rc) hr_op_presence_read(a, ch, len, cb, ud);
    return r;
}

/* ---- wire forms --------------------------------------------------------------------- */

/* Indexed by -rc. Native codes: docs/protocol.md; HTTP: docs/architecture.md. */
static const struct {
    short native;
    short http;
} wire[HR_OP_NCODES] = {
    [0] = {0, 200},
    [-HR_OP_BAD_CHANNEL] = {107, 400},
    [-HR_OP_PATTERN] = {107, 400},
    [-HR_OP_UNKNOWN_NAMESPACE] = {102, 400},
    [-HR_OP_USER_LIMITED] = {103, 403},
    [-HR_OP_DENIED] = {103, 403},
    [-HR_OP_TOKEN_INVALID] = {103, 401},
    [-HR_OP_TOKEN_EXPIRED] = {109, 401},
    [-HR_OP_ALREADY_SUBSCRIBED] = {105, 409},
    [-HR_OP_NOT_SUBSCRIBED] = {113, 404},
    [-HR_OP_TOO_MANY_SUBSCRIPTIONS] = {106, 400},
    [-HR_OP_CHANNEL_FULL] = {106, 503},
    [-HR_OP_RATE_LIMITED] = {111, 429},
    [-HR_OP_TOO_BIG] = {115, 413},
    [-HR_OP_BAD_IDEMPOTENCY_KEY] = {107, 400},
    [-HR_OP_NOT_AVAILABLE] = {108, 404},
    [-HR_OP_BAD_REQUEST] = {107, 400},
    [-HR_OP_BACKEND_UNAVAILABLE] = {116, 503},
    [-HR_OP_BACKEND_TIMEOUT] = {116, 504},
    [-HR_OP_BACKEND_BAD_ANSWER] = {116, 502},
    [-HR_OP_BACKEND_ERROR] = {0, 403},       /* the backend's code (hr_op_result_native) */
    [-HR_OP_BACKEND_DISCONNECT] = {0, 403},  /* a close, not an error reply: front ends close */
    [-HR_OP_HOOK_UNSUPPORTED] = {108, 501},
};

int hr_op_native_code(int rc) { return rc <= 0 && -rc < HR_OP_NCODES ? wire[-rc].native : 100; }
int hr_op_result_native(hr_op_result r) { return r.rc == HR_OP_BACKEND_ERROR ? r.code : hr_op_native_code(r.rc); }
int hr_op_http_status(int rc) { return rc <= 0 && -rc < HR_OP_NCODES ? wire[-rc].http : 500; }
