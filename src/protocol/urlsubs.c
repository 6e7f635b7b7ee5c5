/* urlsubs.c - subscriptions named in a URL (see urlsubs.h).
 *
 * Shared by /ws/raw and /sse. Every channel is checked by the subscribe
 * operation (ops.h); this file only maps a refusal to an HTTP status and a
 * message in raw mode's words, with the kind of client and the usage line
 * as parameters; presence and join/leave pushes are the operations' too
 * (hr_op_subscribe_commit, hr_op_leave). */
#include "protocol/urlsubs.h"
#include "backend/webhook.h"
#include "ops/ops.h"
#include "hub/channel_name.h"
#include "auth/auth.h"

#include <stdio.h>
#include <string.h>

/* ---- channels of a URL ---------------------------------------------------------------- */

static hr_engine *engine_of(const hr_client *c) { return c->wh->hub->engine; }

/* A refusal: HTTP status and message (the channel quoted, shortened). */
static int refuse(int status, char *msg, size_t cap, const char *what, const char *ch, size_t len)
{
    if (ch) snprintf(msg, cap, "%s: \"%.*s%s\"", what, (int)HR_MIN(len, 64), ch, len > 64 ? "..." : "");
    else snprintf(msg, cap, "%s", what);
    return status;
}

/* A refused subscription's wire form: the HTTP status of the result, and
 * the message in raw mode's words (the channel quoted). */
static int refuse_op(hr_op_result res, const hr_chan_policy *pol, int64_t max_subs, const hr_urlsubs_who *who,
                     const char *user, const char *ch, size_t len, char *msg, size_t cap)
{
    char what[128];
    int status = hr_op_http_status(res.rc);
    switch (res.rc) {
    case HR_OP_BAD_CHANNEL:
        snprintf(what, sizeof(what), "invalid channel (%s)", res.detail);
        return refuse(status, msg, cap, what, ch, len);
    case HR_OP_USER_LIMITED:
        if (user[0]) break;
        snprintf(what, sizeof(what), "user-limited channels are not available to anonymous %s", who->clients);
        return refuse(status, msg, cap, what, ch, len);
    case HR_OP_DENIED:
        if (user[0] || hr_perm_subscribe_of(pol) != HR_PERM_AUTHENTICATED) break;
        return refuse(status, msg, cap, "anonymous clients may not subscribe to this channel", ch, len);
    case HR_OP_TOO_MANY_SUBSCRIPTIONS:
        snprintf(what, sizeof(what), "too many channels (channels.max_subscriptions is %lld)",
                 (long long)max_subs);
        return refuse(status, msg, cap, what, NULL, 0);
    default:
        break;
    }
    return refuse(status, msg, cap, res.detail ? res.detail : hr_op_rc_name(res.rc), ch, len);
}

/* Check one channel (from the URL, or granted by a token) with the
 * subscribe operation's rules and add it. 0 or an HTTP status with msg. */
static int add_ref(const hr_ops_opts *opts, const hr_urlsubs_who *who, const hr_urlsubs_auth *auth, const char *out,
                   size_t len, bool from_token, hr_chan_ref **v, size_t *n, size_t *vcap, char *msg, size_t cap)
{
    const char *user = auth && auth->user ? auth->user : "";
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].n == len && memcmp((*v)[i].p, out, len) == 0) return 0; /* given twice: counts once */
    hr_op_sub_req req = {.granted = from_token, .asks_hook = who->hooks};
    for (size_t i = 0; auth && !req.granted && i < auth->ngranted; i++)
        req.granted = strlen(auth->granted[i]) == len && memcmp(auth->granted[i], out, len) == 0;
    /* the subscriptions are not registered yet: no client, no already-subscribed */
    hr_actor a = {.kind = HR_ACTOR_CLIENT, .opts = opts, .user = user};
    hr_chan_policy pol;
    bool pattern = false;
    hr_op_result res = hr_op_may_subscribe(&a, out, len, &req, *n, &pol, &pattern);
    if (res.rc) return refuse_op(res, &pol, opts->max_subscriptions, who, user, out, len, msg, cap);
    if (*n == *vcap) {
        *vcap = *vcap ? *vcap * 2 : 4;
        *v = hr_realloc(*v, *vcap * sizeof(**v));
    }
    (*v)[(*n)++] = (hr_chan_ref){out, len, pattern, pol};
    return 0;
}

int hr_urlsubs_parse(const hr_ops_opts *opts, const hr_urlsubs_who *who, const char *q, size_t qlen, char *buf,
                     hr_chan_ref **refs, size_t *nrefs, char *msg, size_t cap)
{
    return hr_urlsubs_parse_auth(opts, who, NULL, q, qlen, buf, refs, nrefs, msg, cap);
}

int hr_urlsubs_parse_auth(const hr_ops_opts *opts, const hr_urlsubs_who *who, const hr_urlsubs_auth *auth,
                          const char *q, size_t qlen, char *buf, hr_chan_ref **refs, size_t *nrefs, char *msg,
                          size_t cap)
{
    size_t pos = 0, used = 0, n = 0;
    hr_chan_ref *v = NULL;
    size_t vcap = 0;
    if (!q) qlen = 0;
    for (;;) {
        size_t len = 0;
        char *out = buf + used;
        int rc = hr_query_next(q, qlen, &pos, "channel", out, qlen - used, &len);
        if (rc == 0) break;
        if (rc < 0) {
            hr_free(v);
            return refuse(400, msg, cap, "malformed percent-escape in the channel parameter", NULL, 0);
        }
        int st = add_ref(opts, who, auth, out, len, false, &v, &n, &vcap, msg, cap);
        if (st) {
            hr_free(v);
            return st;
        }
        used += len;
    }
    for (size_t i = 0; auth && i < auth->nchannels; i++) { /* the connection token's channels */
        int st = add_ref(opts, who, auth, auth->channels[i], strlen(auth->channels[i]), true, &v, &n, &vcap, msg, cap);
        if (st) {
            hr_free(v);
            return st;
        }
    }
    if (!n) {
        hr_free(v);
        char what[128];
        snprintf(what, sizeof(what), "missing channel parameter (%s)", who->usage);
        return refuse(400, msg, cap, what, NULL, 0);
    }
    *refs = v;
    *nrefs = n;
    return 0;
}

int hr_urlsubs_subscribe(hr_client *c, const hr_chan_ref *refs, size_t n, char *msg, size_t cap)
{
    hr_actor a = {.kind = HR_ACTOR_CLIENT, .client = c};
    for (size_t i = 0; i < n; i++) {
        hr_op_result res;
        if (hr_op_subscribe_add(&a, refs[i].p, refs[i].n, refs[i].pattern, &refs[i].pol, &res)) continue;
        hr_hub_unsubscribe_all(c);
        return refuse(hr_op_http_status(res.rc), msg, cap, res.detail, refs[i].p, refs[i].n);
    }
    return 0;
}

/* A URL client as the operations' actor, for its subscriptions' side effects. */
static hr_actor actor_of(hr_client *c, const hr_ops_opts *opts, const char *info)
{
    return (hr_actor){.kind = HR_ACTOR_CLIENT, .opts = opts, .wh = c->wh, .engine = engine_of(c), .user = c->user,
                      .client = c, .info = info};
}

void hr_urlsubs_announce(hr_client *c, const hr_ops_opts *opts, const hr_chan_ref *refs, size_t n)
{
    hr_urlsubs_announce_info(c, opts, refs, n, NULL);
}

void hr_urlsubs_announce_info(hr_client *c, const hr_ops_opts *opts, const hr_chan_ref *refs, size_t n, const char *info)
{
    hr_actor a = actor_of(c, opts, info);
    for (size_t i = 0; i < n; i++) {
        hr_sub *sub = refs[i].pattern ? NULL : hr_hub_find_sub(c, refs[i].p, refs[i].n);
        if (sub) hr_op_subscribe_commit(&a, sub, &refs[i].pol);
    }
}

void hr_urlsubs_leave(hr_client *c, const hr_ops_opts *opts, const char *info, hr_sub *sub)
{
    hr_actor a = actor_of(c, opts, info);
    hr_op_leave(&a, sub, true);
}

static bool is_exact_sub(const hr_sub *s, const hr_pub *pub)
{
    size_t len;
    const char *name = hr_hub_sub_channel(s, &len);
    return !s->is_pattern && len == pub->channel_len && memcmp(name, pub->channel, len) == 0;
}

bool hr_urlsubs_delivers(const hr_client *c, const hr_sub *sub, const hr_pub *pub)
{
    if (!sub->is_pattern || c->nsubs <= 1) return true;
    const hr_sub *first = NULL;
    for (const hr_sub *s = c->subs; s; s = s->client_next) {
        if (!s->is_pattern) {
            if (is_exact_sub(s, pub)) return false;
        } else if (!first && hr_chan_match(s->pattern, s->pattern_len, pub->channel, pub->channel_len)) {
            first = s;
        }
    }
    return first == sub;
}
