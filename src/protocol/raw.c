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
 * The query parsing, channel checks, subscribe-all-or-none, presence and
 * join/leave live in urlsubs.c, shared with Server-Sent Events (/sse). */
#include "protocol/raw.h"
#include "auth/auth.h"
#include "server/limits.h"
#include "core/json.h"
#include "core/log.h"
#include "protocol/native.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct hr_raw {
    hr_client client;          /* must stay first: the hub hands it back */
    const hr_config *cfg;
    const hr_sink_vt *sink;
    void *t;
    bool closing;
    hr_bucket pub_bucket;      /* limits.publishes_per_connection */
};

static void raw_close(hr_raw *r, int code, const char *reason, bool drop_queued)
{
    if (r->closing) return;
    r->closing = true;
    r->sink->disconnect(r->t, code, reason, drop_queued);
}

/* ---- pushes ------------------------------------------------------------------------ */

static void raw_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    hr_raw *r = (hr_raw *)c;
    if (r->closing || pub->kind != HR_PUB_MESSAGE) return; /* no join/leave pushes in raw mode */
    if (!hr_urlsubs_delivers(c, sub, pub)) return;
    if (r->sink->queued(r->t) > (size_t)r->cfg->ws_max_queued_bytes) {
        hr_info("raw client %s: slow consumer, disconnecting (code %d)", c->id, HR_DISC_SLOW);
        raw_close(r, HR_DISC_SLOW, "slow consumer: reconnect", true);
        return;
    }
    if (!cache->slot[HR_ENC_RAW])
        cache->slot[HR_ENC_RAW] = pub->data_len ? hr_sbuf_new(pub->data, pub->data_len) : hr_sbuf_new("null", 4);
    r->sink->send_shared(r->t, cache->slot[HR_ENC_RAW], cache, HR_ENC_RAW, false);
}

static void leave_channel(hr_raw *r, hr_sub *sub);

/* A server command from the API: unsubscribe (closing with 1000 when no
 * channel is left) or disconnect (close with its code and reason). */
static void raw_on_command(hr_client *c, hr_sub *sub, const hr_pub *cmd)
{
    hr_raw *r = (hr_raw *)c;
    if (r->closing) return;
    const char *reason = hr_pub_reason(cmd);
    if (cmd->kind == HR_PUB_UNSUBSCRIBE) {
        leave_channel(r, sub);
        if (!c->nsubs) raw_close(r, HR_RAW_CLOSE_NORMAL, reason, false);
        return;
    }
    hr_info("raw client %s: disconnected by the server API (code %d)", c->id, cmd->code);
    raw_close(r, cmd->code, reason, false);
}

static const hr_client_vt raw_client_vt = {.on_pub = raw_on_pub, .on_command = raw_on_command};

static void leave_channel(hr_raw *r, hr_sub *sub) { hr_urlsubs_leave(&r->client, r->cfg, sub); }

/* ---- lifecycle ------------------------------------------------------------------------ */

static const hr_urlsubs_who raw_who = {"raw clients", "/ws/raw?channel=NAME"};

hr_raw *hr_raw_new(hr_whub *wh, const hr_config *cfg, const hr_sink_vt *sink, void *t, const char *query,
                   size_t qlen, int *status, char *msg, size_t msgcap)
{
    if (!query) qlen = 0;
    char *buf = hr_malloc(qlen + 1); /* decoded values are never longer than the query */
    hr_chan_ref *refs = NULL;
    size_t n = 0;
    int st = hr_urlsubs_parse(cfg, &raw_who, query, qlen, buf, &refs, &n, msg, msgcap);
    if (st) {
        hr_free(buf);
        *status = st;
        return NULL;
    }
    hr_raw *r = hr_calloc(1, sizeof(*r));
    r->client.vt = &raw_client_vt;
    r->client.wh = wh;
    r->client.user = hr_strdup("");
    hr_urlsubs_client_id(r->client.id);
    r->cfg = cfg;
    r->sink = sink;
    r->t = t;
    st = hr_urlsubs_subscribe(&r->client, refs, n, msg, msgcap);
    if (st) {
        *status = st;
        hr_free(r->client.user);
        hr_free(r);
        hr_free(refs);
        hr_free(buf);
        return NULL;
    }
    /* every channel accepted: presence and join events (concrete channels only) */
    hr_urlsubs_announce(&r->client, cfg, refs, n);
    hr_free(refs);
    hr_free(buf);
    hr_hub_client_add(&r->client);
    return r;
}

const char *hr_raw_client_id(const hr_raw *r) { return r->client.id; }

static void on_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    HR_UNUSED(ud);
    HR_UNUSED(offset);
    HR_UNUSED(epoch);
    /* no reply in raw mode: the publisher sees its message come back (it is subscribed) */
    if (err) hr_warn("raw mode: a client publication failed: %s", hr_strerror(err));
}

void hr_raw_on_message(hr_raw *r, bool binary, const uint8_t *data, size_t len)
{
    if (r->closing) return;
    if (binary) {
        raw_close(r, HR_DISC_BAD_REQUEST, "binary messages are not supported in raw mode (send JSON text)", false);
        return;
    }
    hr_sub *sub = r->client.subs;
    if (r->client.nsubs != 1 || !sub || !sub->lc) {
        raw_close(r, HR_DISC_FORBIDDEN,
                  sub && !sub->lc && r->client.nsubs == 1 ? "cannot publish to a pattern"
                                                          : "publishing needs exactly one channel in the URL",
                  false);
        return;
    }
    size_t clen;
    const char *ch = hr_hub_sub_channel(sub, &clen);
    hr_chan_policy pol;
    const char *why = NULL;
    /* the permission rule of every front end: a raw client is anonymous and subscribed to the channel */
    if (hr_config_policy(r->cfg, ch, clen, &pol) || !hr_perm_may_publish(&pol, false, true, &why)) {
        raw_close(r, HR_DISC_FORBIDDEN, "clients may not publish to this channel", false);
        return;
    }
    hr_limits *lim = r->client.wh->hub->limits;
    if (lim && !hr_limits_publish(lim, &r->pub_bucket, r->client.user, hr_loop_now(r->client.wh->loop), NULL)) {
        /* raw mode has no replies to refuse one message with: the publisher is told by the close */
        raw_close(r, HR_DISC_TOO_MANY_REQUESTS, "publishing too fast (limits.publishes_per_connection)", false);
        return;
    }
    /* bound the jansson tree (as the native protocol does): every value but
     * the first follows one of these bytes */
    size_t values = 1;
    for (size_t i = 0; i < len; i++) values += data[i] == ',' || data[i] == '[' || data[i] == '{';
    if (values > HR_NATIVE_MAX_VALUES) {
        raw_close(r, HR_DISC_BAD_REQUEST, "too many JSON values in one message", false);
        return;
    }
    json_error_t jerr;
    json_t *v = json_loadb((const char *)data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        raw_close(r, HR_DISC_BAD_REQUEST, "message is not JSON", false);
        return;
    }
    size_t dlen = 0;
    char *text = hr_json_dumps(v, &dlen);
    json_decref(v);
    if (dlen > (size_t)r->cfg->ch_max_publication_size) {
        free(text);
        raw_close(r, HR_RAW_CLOSE_TOO_BIG, "publication larger than channels.max_publication_size", false);
        return;
    }
    hr_chan_opts o = HR_CHAN_OPTS(r->cfg, pol);
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, clen, text, dlen, NULL, 0);
    free(text);
    hr_engine *e = r->client.wh->hub->engine;
    e->vt->publish(e, &o, p, NULL, 0, on_published, NULL);
    hr_pub_unref(p);
}

void hr_raw_free(hr_raw *r)
{
    if (!r) return;
    hr_hub_client_remove(&r->client);
    while (r->client.subs) leave_channel(r, r->client.subs);
    hr_free(r->client.user);
    hr_free(r);
}
