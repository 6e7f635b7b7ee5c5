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
 * client's list). */
#include "protocol/raw.h"
#include "core/json.h"
#include "core/log.h"
#include "hub/channel_name.h"
#include "protocol/native.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct hr_raw {
    hr_client client;          /* must stay first: the hub hands it back */
    const hr_config *cfg;
    const hr_sink_vt *sink;
    void *t;
    bool closing;
};

static hr_engine *engine_of(hr_raw *r) { return r->client.wh->hub->engine; }

static void raw_close(hr_raw *r, int code, const char *reason, bool drop_queued)
{
    if (r->closing) return;
    r->closing = true;
    r->sink->disconnect(r->t, code, reason, drop_queued);
}

/* ---- query strings ---------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

ssize_t hr_url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (n - i < 3) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o == cap) return -1;
        out[o++] = ch;
    }
    return (ssize_t)o;
}

/* Are the escapes of s[0..n) well-formed? */
static bool escapes_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '%' && (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)) return false;
    return true;
}

int hr_query_next(const char *q, size_t n, size_t *pos, const char *name, char *out, size_t cap, size_t *len)
{
    size_t nlen = strlen(name);
    while (q && *pos < n) {
        size_t start = *pos;
        const char *amp = memchr(q + start, '&', n - start);
        size_t end = amp ? (size_t)(amp - q) : n;
        *pos = amp ? end + 1 : n;
        if (end == start) continue;
        const char *eq = memchr(q + start, '=', end - start);
        size_t kend = eq ? (size_t)(eq - q) : end;
        /* a name that does not decode into nlen bytes (too long, or a
         * malformed escape) is some other parameter: not ours to judge */
        char key[64];
        if (nlen >= sizeof(key)) return 0;
        ssize_t klen = hr_url_decode(q + start, kend - start, key, nlen);
        if (klen != (ssize_t)nlen || memcmp(key, name, nlen) != 0) continue;
        size_t vstart = eq ? kend + 1 : end;
        if (!escapes_ok(q + vstart, end - vstart)) return HR_ERR_PROTO;
        ssize_t vlen = hr_url_decode(q + vstart, end - vstart, out, cap);
        if (vlen < 0) return HR_ERR_TOO_BIG;
        *len = (size_t)vlen;
        return 1;
    }
    return 0;
}

/* ---- pushes ------------------------------------------------------------------------ */

static bool is_exact_sub(const hr_sub *s, const hr_pub *pub)
{
    size_t len;
    const char *name = hr_hub_sub_channel(s, &len);
    return s->lc && len == pub->channel_len && memcmp(name, pub->channel, len) == 0;
}

/* Is the pattern subscription `sub` the one of r that delivers pub (see the
 * top of the file)? */
static bool first_match(hr_raw *r, const hr_sub *sub, const hr_pub *pub)
{
    const hr_sub *first = NULL;
    for (const hr_sub *s = r->client.subs; s; s = s->client_next) {
        if (s->lc) {
            if (is_exact_sub(s, pub)) return false;
        } else if (!first && hr_chan_match(s->pattern, s->pattern_len, pub->channel, pub->channel_len)) {
            first = s;
        }
    }
    return first == sub;
}

static void raw_on_pub(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache)
{
    hr_raw *r = (hr_raw *)c;
    if (r->closing || pub->kind != HR_PUB_MESSAGE) return; /* no join/leave pushes in raw mode */
    if (!sub->lc && c->nsubs > 1 && !first_match(r, sub, pub)) return;
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

/* ---- channels ------------------------------------------------------------------------ */

static void join_leave(hr_raw *r, const char *ch, size_t len, bool join)
{
    hr_buf info = HR_BUF_INIT;
    hr_buf_printf(&info, "{\"client\":\"%s\",\"user\":\"\"}", r->client.id);
    hr_pub *p = hr_pub_new(join ? HR_PUB_JOIN : HR_PUB_LEAVE, ch, len, "", 0, (const char *)info.data, info.len);
    hr_buf_free(&info);
    engine_of(r)->vt->publish_event(engine_of(r), p);
    hr_pub_unref(p);
}

static void leave_channel(hr_raw *r, hr_sub *sub)
{
    if (sub->lc == NULL) {
        hr_hub_unsubscribe(&r->client, sub);
        return;
    }
    /* the local channel may be freed by unsubscribe: copy the name first */
    size_t len = 0;
    const char *n = hr_hub_sub_channel(sub, &len);
    char *name = hr_strndup(n, len);
    bool pres = sub->presence;
    hr_hub_unsubscribe(&r->client, sub);
    hr_chan_policy pol;
    bool known = hr_config_policy(r->cfg, name, len, &pol) == 0;
    if (pres) engine_of(r)->vt->presence_remove(engine_of(r), name, len, r->client.id, NULL, NULL);
    if (known && pol.join_leave) join_leave(r, name, len, false);
    hr_free(name);
}

typedef struct chan_ref {
    const char *p;
    size_t n;
    bool pattern;
    hr_chan_policy pol;
} chan_ref;

/* A refusal: HTTP status and message (the channel quoted, shortened). */
static int refuse(int status, char *msg, size_t cap, const char *what, const char *ch, size_t len)
{
    if (ch) snprintf(msg, cap, "%s: \"%.*s%s\"", what, (int)HR_MIN(len, 64), ch, len > 64 ? "..." : "");
    else snprintf(msg, cap, "%s", what);
    return status;
}

/* Parse and check the channel parameters into refs (decoded into buf).
 * Returns 0 or an HTTP status with msg set. */
static int check_channels(const hr_config *cfg, const char *q, size_t qlen, char *buf, chan_ref **refs, size_t *nrefs,
                          char *msg, size_t cap)
{
    size_t pos = 0, used = 0, n = 0, max = (size_t)cfg->ch_max_subscriptions;
    chan_ref *v = NULL;
    size_t vcap = 0;
    for (;;) {
        size_t len = 0;
        char *out = buf + used;
        int rc = hr_query_next(q, qlen, &pos, "channel", out, qlen - used, &len);
        if (rc == 0) break;
        if (rc < 0) {
            hr_free(v);
            return refuse(400, msg, cap, "malformed percent-escape in the channel parameter", NULL, 0);
        }
        bool pattern = false;
        int vr = hr_chan_validate_pattern(out, len, (size_t)cfg->ch_max_channel_length, &pattern);
        if (vr) {
            hr_free(v);
            char what[128];
            snprintf(what, sizeof(what), "invalid channel (%s)", hr_chan_error_text(vr));
            return refuse(400, msg, cap, what, out, len);
        }
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++) dup = v[i].n == len && memcmp(v[i].p, out, len) == 0;
        if (dup) continue;
        hr_chan_policy pol;
        if (hr_config_policy(cfg, out, len, &pol)) {
            hr_free(v);
            return refuse(400, msg, cap, "the channel's namespace is not configured on this server", out, len);
        }
        if (hr_chan_user_allowed(out, len, "", 0) == 0) {
            hr_free(v);
            return refuse(403, msg, cap, "user-limited channels are not available to anonymous raw clients", out, len);
        }
        if (!pol.allow_anonymous) {
            hr_free(v);
            return refuse(403, msg, cap, "anonymous clients may not subscribe to this channel", out, len);
        }
        if (n == max) {
            hr_free(v);
            char what[96];
            snprintf(what, sizeof(what), "too many channels (channels.max_subscriptions is %zu)", max);
            return refuse(400, msg, cap, what, NULL, 0);
        }
        if (n == vcap) {
            vcap = vcap ? vcap * 2 : 4;
            v = hr_realloc(v, vcap * sizeof(*v));
        }
        v[n++] = (chan_ref){out, len, pattern, pol};
        used += len;
    }
    if (!n) {
        hr_free(v);
        return refuse(400, msg, cap, "missing channel parameter (/ws/raw?channel=NAME)", NULL, 0);
    }
    *refs = v;
    *nrefs = n;
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

hr_raw *hr_raw_new(hr_whub *wh, const hr_config *cfg, const hr_sink_vt *sink, void *t, const char *query,
                   size_t qlen, int *status, char *msg, size_t msgcap)
{
    if (!query) qlen = 0;
    char *buf = hr_malloc(qlen + 1); /* decoded values are never longer than the query */
    chan_ref *refs = NULL;
    size_t n = 0;
    int st = check_channels(cfg, query, qlen, buf, &refs, &n, msg, msgcap);
    if (st) {
        hr_free(buf);
        *status = st;
        return NULL;
    }
    hr_raw *r = hr_calloc(1, sizeof(*r));
    r->client.vt = &raw_client_vt;
    r->client.wh = wh;
    r->client.user = hr_strdup("");
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) memset(rnd, 0, sizeof(rnd));
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        r->client.id[2 * i] = hex[rnd[i] >> 4];
        r->client.id[2 * i + 1] = hex[rnd[i] & 15];
    }
    r->client.id[32] = '\0';
    r->cfg = cfg;
    r->sink = sink;
    r->t = t;
    for (size_t i = 0; i < n; i++) {
        if (hr_hub_subscribe(&r->client, refs[i].p, refs[i].n, refs[i].pattern, (uint64_t)refs[i].pol.max_subscribers))
            continue;
        *status = refuse(503, msg, msgcap, "the channel has reached its max_subscribers", refs[i].p, refs[i].n);
        hr_hub_unsubscribe_all(&r->client);
        hr_free(r->client.user);
        hr_free(r);
        hr_free(refs);
        hr_free(buf);
        return NULL;
    }
    /* every channel accepted: presence and join events (concrete channels only) */
    for (size_t i = 0; i < n; i++) {
        if (refs[i].pattern) continue;
        hr_chan_opts o = HR_CHAN_OPTS(cfg, refs[i].pol);
        if (o.presence) {
            engine_of(r)->vt->presence_add(engine_of(r), refs[i].p, refs[i].n, r->client.id, "", NULL, NULL, NULL);
            hr_sub *sub = hr_hub_find_sub(&r->client, refs[i].p, refs[i].n);
            if (sub) sub->presence = true;
        }
        if (o.join_leave) join_leave(r, refs[i].p, refs[i].n, true);
    }
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
    if (hr_config_policy(r->cfg, ch, clen, &pol) || !pol.allow_publish) {
        raw_close(r, HR_DISC_FORBIDDEN, "clients may not publish to this channel", false);
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
    engine_of(r)->vt->publish(engine_of(r), &o, p, NULL, 0, on_published, NULL);
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
