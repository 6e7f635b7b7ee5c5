/* fuzz_session.c - libFuzzer target for what a connected client's messages
 * do: the native session (protocol/session.c, JSON and MessagePack), the
 * Pusher session (protocol/pusher.c) and raw mode's client publish
 * (protocol/raw.c), run through the operations against the real hub and
 * memory engine on two worker hubs (a fresh hub per input, no threads: the
 * memory engine answers inline unless the input defers it, the inboxes are
 * processed after each message; ids come from a counter, the timer wheels
 * move only when the input says). The config opens the interesting paths: client publish in
 * chat:, presence and join/leave in room:, history, an HS256 token key and a
 * Pusher app with client events and user authentication, and small limits
 * (subscriptions, publication size, reply budget, output queue, the abuse
 * limits' publish, new-channel and token-verification rates on the loop clock).
 *
 * Input (text lines; see tests/fuzz/corpus/session/):
 *   line 1: the sessions' kinds, 1 to 3 letters: j native JSON, m native
 *           MessagePack, p Pusher, r raw (anything else: j); an 'a' among
 *           them makes the engine answer later (queued until E or the end);
 *   then one record per line: S OP PAYLOAD, S the session ('0'..'2', any
 *   byte: modulo the count), OP one letter, PAYLOAD the rest of the line
 *   (byte 0x1f stands for a newline, so a native frame can hold several
 *   commands):
 *     m  PAYLOAD as a text message (b: binary);
 *     t  native connect with a valid token: claims PAYLOAD when it starts
 *        with '{', else sub = PAYLOAD and a far exp;
 *     k  native subscribe to channel PAYLOAD with a valid subscription
 *        token (sub: the last t's);
 *     a  Pusher subscribe with a valid auth: PAYLOAD "channel" or
 *        "channel|channel_data" (presence);
 *     s  Pusher signin with a valid auth: PAYLOAD the user_data;
 *     q  the transport's queue drained (else every byte sent stays queued);
 *     o  close the session and open it again (raw: PAYLOAD is the query;
 *        Pusher: "key?query"); c  close it (the next record reopens it);
 *     P  server publish: PAYLOAD "channel|data";
 *     D  server disconnect: of user PAYLOAD, or this session's client id;
 *     U  server unsubscribe of this session's client from channel PAYLOAD;
 *     E  the queued engine calls run (line 1 with 'a': see "an engine that
 *        answers later" below);
 *     T  the loops' clocks advanced by PAYLOAD seconds (decimal, at most
 *        a day; the timers that come due run: Pusher's ping and 4201).
 *   A session is opened at its first record (raw: "channel=chat:x",
 *   Pusher: key "fzkey", "protocol=7").
 *
 * Invariants (abort() on violation): a session's sink sees nothing after
 * its disconnect; at most one disconnect; each shared payload is its cache
 * slot; each text sent (replies and pushes) is JSON (a Pusher message: an
 * object with an event) and each binary payload whole MessagePack maps;
 * after every session is freed (and the deferred engine calls have run) the
 * hub has no client, no subscription and no channel, the engine no presence
 * entry, and every channel seen during the input no subscriber and no
 * presence entry; and (LSan) nothing leaks. */
#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "core/hmac.h"
#include "core/json.h"
#include "core/log.h"
#include "core/random.h"
#include "ops/limits.h"
#include "ops/ops.h"
#include "protocol/pusher.h"
#include "protocol/raw.h"
#include "protocol/session.h"
#include "server/config.h"
#include "server/opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

#define TOKEN_SECRET "fuzz-token-secret-0123456789abcdef"
#define APP_SECRET "fzsecret"
#define MAX_SESS 3
#define MAX_CHANS 64

enum { K_JSON, K_MSGPACK, K_PUSHER, K_RAW };

/* ---- the fake transport ------------------------------------------------------------- */

typedef struct fake {
    int kind;
    size_t queued;          /* bytes sent and not drained (record q) */
    int disconnects;
    char socket_id[32];     /* Pusher: from connection_established */
} fake;

/* Every JSON text a JSON session sends parses: native replies are
 * newline-delimited values, a Pusher message is one object with an event. */
static void check_json(const fake *f, const uint8_t *data, size_t len)
{
    if (f->kind == K_PUSHER) {
        json_t *v = json_loadb((const char *)data, len, 0, NULL);
        check(json_is_string(json_object_get(v, "event")));
        json_decref(v);
        return;
    }
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        json_t *v = json_loadb((const char *)data + i, end - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        check(v != NULL);
        json_decref(v);
        i = end + 1;
    }
}

/* Every binary payload (MessagePack replies and pushes) is whole maps. */
static void check_msgpack(const uint8_t *data, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    check(len > 0);
    while (off < len) {
        check(msgpack_unpack_next(&u, (const char *)data, len, &off) == MSGPACK_UNPACK_SUCCESS);
        check(u.data.type == MSGPACK_OBJECT_MAP);
    }
    msgpack_unpacked_destroy(&u);
}

/* pusher:connection_established's socket_id, for the signatures. */
static void note_socket_id(fake *f, const uint8_t *data, size_t len)
{
    json_t *v = json_loadb((const char *)data, len, 0, NULL);
    const char *ev = json_string_value(json_object_get(v, "event"));
    if (ev && !strcmp(ev, "pusher:connection_established")) {
        json_t *d = json_loads(json_string_value(json_object_get(v, "data")), 0, NULL);
        const char *id = json_string_value(json_object_get(d, "socket_id"));
        check(id && strlen(id) < sizeof(f->socket_id));
        snprintf(f->socket_id, sizeof(f->socket_id), "%s", id);
        json_decref(d);
    }
    json_decref(v);
}

/* FUZZ_SESSION_TRACE=1: what each session is sent, on stderr (reading a finding). */
static bool trace;

static void f_send(void *t, const uint8_t *data, size_t len, bool binary)
{
    fake *f = t;
    if (trace) fprintf(stderr, "send %p %s: %.*s\n", t, binary ? "(binary)" : "", binary ? 0 : (int)len, (const char *)data);
    check(f->disconnects == 0);
    check(binary == (f->kind == K_MSGPACK));
    if (binary) check_msgpack(data, len);
    else check_json(f, data, len);
    if (f->kind == K_PUSHER) note_socket_id(f, data, len);
    f->queued += len;
}

static void f_send_shared(void *t, hr_sbuf *payload, hr_enc_cache *cache, int slot, bool binary)
{
    fake *f = t;
    if (trace) fprintf(stderr, "push %p: %.*s\n", t, binary ? 0 : (int)payload->len, (const char *)payload->data);
    check(f->disconnects == 0);
    check(slot >= 0 && slot < HR_ENC_SLOTS && cache->slot[slot] == payload);
    check(binary == (f->kind == K_MSGPACK));
    if (binary) check_msgpack(payload->data, payload->len);
    else check_json(f, payload->data, payload->len);
    f->queued += payload->len;
}

static size_t f_queued(void *t) { return ((fake *)t)->queued; }

static void f_disconnect(void *t, int code, const char *reason, bool drop_queued)
{
    fake *f = t;
    if (trace) fprintf(stderr, "disconnect %p: %d %s%s\n", t, code, reason, drop_queued ? " (dropped)" : "");
    check(reason != NULL);
    f->disconnects++;
    check(f->disconnects == 1);
}

static bool f_send_run(void *t, hr_run *run, int payload_slot, bool binary, size_t limit)
{
    (void)t;
    (void)run;
    (void)payload_slot;
    (void)binary;
    (void)limit;
    return false; /* one by one through send_shared */
}

static const hr_sink_vt fake_sink = {f_send, f_send_shared, f_queued, f_disconnect, "websocket", NULL, f_send_run};

/* ---- the server (once) ---------------------------------------------------------------- */

static hr_config cfg;
static hr_proto_opts proto;

static void set(const char *key, const char *value)
{
    char err[256];
    if (hr_config_set(&cfg, key, value, err, sizeof(err))) {
        fprintf(stderr, "fuzz_session: %s\n", err);
        abort();
    }
}

/* Client ids, Pusher socket ids and epochs from a counter: the same input
 * runs the same way. */
static uint64_t rnd_state;
static ssize_t counter_source(void *buf, size_t len, unsigned flags)
{
    (void)flags;
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++) {
        rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (uint8_t)(rnd_state >> 56);
    }
    return (ssize_t)len;
}

static void server_init(void)
{
    trace = getenv("FUZZ_SESSION_TRACE") != NULL;
    hr_log_set_level(HR_LOG_OFF);
    hr_random_set_source(counter_source);
    hr_config_defaults(&cfg);
    set("channels.max_subscriptions", "4");
    set("channels.max_publication_size", "128");
    set("channels.history_size", "4");
    set("channels.max_commands_per_frame", "8");
    set("channels.max_reply_size", "4096");
    set("channels.max_held_publications", "4");
    set("websocket.max_queued_bytes", "16384");
    set("channels.publish", "authenticated");
    set("namespace.chat.publish", "anyone");
    set("namespace.room.presence", "true");
    set("namespace.room.join_leave", "true");
    set("namespace.room.publish", "subscribers");
    set("namespace.members.allow_anonymous", "false");
    set("namespace.full.max_subscribers", "1");
    set("namespace.ticker.allow_publish", "false");
    set("namespace.priv.subscribe", "token");
    set("namespace.priv.presence", "true");
    set("limits.publishes_per_connection", "5");
    set("limits.publish_burst", "4");
    set("limits.publishes_per_user", "8");
    set("limits.channels_per_connection", "5");
    set("limits.channel_burst", "6");
    set("limits.token_verifications_per_connection", "2");
    set("limits.token_verification_burst", "4");
    set("auth.token_hmac_secret", TOKEN_SECRET);
    set("pusher.app.fz.app_id", "fz");
    set("pusher.app.fz.key", "fzkey");
    set("pusher.app.fz.secret", APP_SECRET);
    set("pusher.app.fz.client_events", "true");
    set("pusher.app.fz.user_authentication", "true");
    set("pusher.app.fz.max_presence_members", "2");
    set("pusher.app.fz.max_channel_name_length", "32");
    char err[256];
    if (hr_config_validate(&cfg, err, sizeof(err))) {
        fprintf(stderr, "fuzz_session: %s\n", err);
        abort();
    }
    hr_auth_opts ao;
    hr_config_auth_opts(&cfg, &ao);
    cfg.auth = hr_auth_new(&ao, err, sizeof(err));
    check(cfg.auth != NULL);
    hr_opts_proto(&cfg, &proto);
}

/* ---- one input ------------------------------------------------------------------------ */

typedef struct sess {
    int kind;
    bool open;
    fake f;
    hr_session *s;
    hr_pusher *p;
    hr_raw *r;
    char user[64];          /* the sub of the last signed connect ('t') */
} sess;

static hr_hub *hub;
static hr_loop loops[2];
static hr_whub *wh[2];
static sess ss[MAX_SESS];
static int nsess;
static char chans[MAX_CHANS][256];
static int nchans;

static void process(void)
{
    for (int round = 0; round < 4; round++) {
        hr_hub_process_inbox(wh[0]);
        hr_hub_process_inbox(wh[1]);
    }
}

static void note_chan(void *ud, const char *name, size_t len, uint64_t subscribers)
{
    (void)ud;
    (void)subscribers;
    if (nchans == MAX_CHANS || len >= sizeof(chans[0])) return;
    for (int i = 0; i < nchans; i++)
        if (strlen(chans[i]) == len && !memcmp(chans[i], name, len)) return;
    memcpy(chans[nchans], name, len);
    chans[nchans++][len] = 0;
}

static hr_client *client_of(sess *x)
{
    if (x->s) return (hr_client *)x->s; /* the client is the session's first member (session.c) */
    if (x->p) return (hr_client *)x->p; /* and the Pusher session's (pusher.c) */
    return NULL;
}

static void sess_open(int i, const char *arg, size_t alen)
{
    sess *x = &ss[i];
    hr_whub *w = wh[i & 1];
    memset(&x->f, 0, sizeof(x->f));
    x->user[0] = 0;
    x->f.kind = x->kind;
    x->open = true;
    switch (x->kind) {
    case K_JSON:
    case K_MSGPACK:
        x->s = hr_session_new(w, &proto, &fake_sink, &x->f, x->kind == K_MSGPACK ? HR_NATIVE_MSGPACK : HR_NATIVE_JSON);
        break;
    case K_PUSHER: {
        const char *key = "fzkey", *q = "protocol=7";
        size_t klen = 5, qlen = 10;
        if (arg) {
            const char *qm = memchr(arg, '?', alen);
            key = arg;
            klen = qm ? (size_t)(qm - arg) : alen;
            q = qm ? qm + 1 : NULL;
            qlen = qm ? alen - klen - 1 : 0;
        }
        x->p = hr_pusher_new(w, &proto, &fake_sink, &x->f, key, klen, q, qlen);
        hr_pusher_open(x->p);
        break;
    }
    default: {
        int status = 0;
        char msg[256];
        if (!arg) {
            arg = "channel=chat:x";
            alen = strlen(arg);
        }
        x->r = hr_raw_new(w, &proto, &fake_sink, &x->f, arg, alen, NULL, &status, msg, sizeof(msg)); /* NULL: refused */
        break;
    }
    }
}

static void sess_close(sess *x)
{
    if (!x->open) return;
    hr_session_free(x->s);
    hr_pusher_free(x->p);
    hr_raw_free(x->r);
    x->s = NULL;
    x->p = NULL;
    x->r = NULL;
    x->open = false;
}

static void deliver(sess *x, bool binary, const uint8_t *m, size_t len)
{
    if (x->s) hr_session_on_frame(x->s, m, len);
    else if (x->p) hr_pusher_on_message(x->p, binary, m, len);
    else if (x->r) hr_raw_on_message(x->r, binary, m, len);
}

/* ---- signed messages ------------------------------------------------------------------ */

/* An HS256 token of the configured key over claims[0..len) (not checked). */
static char *token_of(const char *claims, size_t len, size_t *tlen)
{
    char *tok = NULL, err[128];
    check(!hr_jwt_sign_hmac(HR_JWT_HS256, (const uint8_t *)TOKEN_SECRET, strlen(TOKEN_SECRET), NULL, claims, len,
                            &tok, tlen, err, sizeof(err)));
    return tok;
}

/* {"id":ID,"VERB":{"KEY":"TOKEN"[,"channel":CH]}} in the session's encoding. */
static void token_command(sess *x, const char *verb, const char *tok, size_t tlen, const uint8_t *ch, size_t clen)
{
    hr_buf f = HR_BUF_INIT, mp = HR_BUF_INIT;
    hr_buf_printf(&f, "{\"id\":7,\"%s\":{\"token\":", verb);
    hr_json_append_string(&f, tok, tlen);
    if (ch) {
        hr_buf_append_str(&f, ",\"channel\":");
        hr_json_append_string(&f, (const char *)ch, clen);
    }
    hr_buf_append_str(&f, "}}");
    if (x->kind == K_MSGPACK) {
        check(hr_native_json_to_msgpack((const char *)f.data, f.len, &mp) == 0);
        hr_session_on_frame(x->s, mp.data, mp.len);
    } else {
        hr_session_on_frame(x->s, f.data, f.len);
    }
    hr_buf_free(&f);
    hr_buf_free(&mp);
}

/* A native connect with a valid token: claims PAYLOAD when it is an object,
 * else {"sub":PAYLOAD,"exp":far}; the sub is kept for subscription tokens. */
static void signed_connect(sess *x, const uint8_t *m, size_t len)
{
    if (!x->s) return;
    hr_buf claims = HR_BUF_INIT;
    if (len && m[0] == '{') {
        hr_buf_append(&claims, m, len);
    } else {
        hr_buf_append_str(&claims, "{\"sub\":");
        hr_json_append_string(&claims, (const char *)m, len);
        hr_buf_append_str(&claims, ",\"exp\":4102444800}");
        snprintf(x->user, sizeof(x->user), "%.*s", (int)len, (const char *)m);
    }
    size_t tlen = 0;
    char *tok = token_of((const char *)claims.data, claims.len, &tlen);
    token_command(x, "connect", tok, tlen, NULL, 0);
    hr_free(tok);
    hr_buf_free(&claims);
}

/* A native subscribe to channel PAYLOAD with a valid subscription token for
 * the user of the session's last signed connect. */
static void signed_sub_token(sess *x, const uint8_t *m, size_t len)
{
    if (!x->s) return;
    hr_buf claims = HR_BUF_INIT;
    hr_buf_append_str(&claims, "{\"channel\":");
    hr_json_append_string(&claims, (const char *)m, len);
    if (x->user[0]) {
        hr_buf_append_str(&claims, ",\"sub\":");
        hr_json_append_string(&claims, x->user, strlen(x->user));
    }
    hr_buf_append_str(&claims, ",\"exp\":4102444800}");
    size_t tlen = 0;
    char *tok = token_of((const char *)claims.data, claims.len, &tlen);
    token_command(x, "subscribe", tok, tlen, m, len);
    hr_free(tok);
    hr_buf_free(&claims);
}

/* "KEY:HMAC(secret, msg)". */
static void pusher_auth(hr_buf *out, const hr_buf *msg)
{
    char hex[65];
    hr_hmac_sha256_hex(APP_SECRET, msg->data, msg->len, hex);
    hr_buf_append_str(out, "fzkey:");
    hr_buf_append_str(out, hex);
}

/* pusher:subscribe to "channel[|channel_data]" with a valid auth. */
static void signed_subscribe(sess *x, const uint8_t *m, size_t len)
{
    if (!x->p) return;
    const uint8_t *bar = memchr(m, '|', len);
    size_t clen = bar ? (size_t)(bar - m) : len;
    hr_buf sig = HR_BUF_INIT, auth = HR_BUF_INIT, msg = HR_BUF_INIT;
    hr_buf_append_str(&sig, x->f.socket_id);
    hr_buf_append(&sig, ":", 1);
    hr_buf_append(&sig, m, clen);
    if (bar) {
        hr_buf_append(&sig, ":", 1);
        hr_buf_append(&sig, bar + 1, len - clen - 1);
    }
    pusher_auth(&auth, &sig);
    hr_buf_append_str(&msg, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":");
    hr_json_append_string(&msg, (const char *)m, clen);
    hr_buf_append_str(&msg, ",\"auth\":");
    hr_json_append_string(&msg, (const char *)auth.data, auth.len);
    if (bar) {
        hr_buf_append_str(&msg, ",\"channel_data\":");
        hr_json_append_string(&msg, (const char *)bar + 1, len - clen - 1);
    }
    hr_buf_append_str(&msg, "}}");
    hr_pusher_on_message(x->p, false, msg.data, msg.len);
    hr_buf_free(&sig);
    hr_buf_free(&auth);
    hr_buf_free(&msg);
}

/* pusher:signin with user_data PAYLOAD and a valid auth. */
static void signed_signin(sess *x, const uint8_t *m, size_t len)
{
    if (!x->p) return;
    hr_buf sig = HR_BUF_INIT, auth = HR_BUF_INIT, msg = HR_BUF_INIT;
    hr_buf_append_str(&sig, x->f.socket_id);
    hr_buf_append_str(&sig, "::user::");
    hr_buf_append(&sig, m, len);
    pusher_auth(&auth, &sig);
    hr_buf_append_str(&msg, "{\"event\":\"pusher:signin\",\"data\":{\"user_data\":");
    hr_json_append_string(&msg, (const char *)m, len);
    hr_buf_append_str(&msg, ",\"auth\":");
    hr_json_append_string(&msg, (const char *)auth.data, auth.len);
    hr_buf_append_str(&msg, "}}");
    hr_pusher_on_message(x->p, false, msg.data, msg.len);
    hr_buf_free(&sig);
    hr_buf_free(&auth);
    hr_buf_free(&msg);
}

/* ---- server commands ------------------------------------------------------------------ */

static void on_server_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    (void)ud;
    (void)err;
    (void)offset;
    (void)epoch;
}

static void server_publish(const uint8_t *m, size_t len)
{
    const uint8_t *bar = memchr(m, '|', len);
    if (!bar) return;
    size_t clen = (size_t)(bar - m);
    json_t *v = json_loadb((const char *)bar + 1, len - clen - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!v) return; /* the server API takes JSON only, and publishes it compact */
    char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    check(d != NULL);
    hr_actor a = {.kind = HR_ACTOR_SERVER, .opts = &proto.ops, .engine = hub->engine};
    (void)hr_op_publish(&a, (const char *)m, clen, d, strlen(d), NULL, 0,
                        on_server_published, NULL, NULL);
    free(d);
}

static void client_id(sess *x, char *out, size_t cap)
{
    hr_client *c = client_of(x);
    if (c) snprintf(out, cap, "%s", hr_client_id(c).s);
    else if (x->r) snprintf(out, cap, "%s", hr_raw_client_id(x->r).s);
    else out[0] = 0;
}

static void server_disconnect(sess *x, const uint8_t *m, size_t len)
{
    char user[128] = "", id[64] = "";
    if (len && len < sizeof(user) && !memchr(m, 0, len)) memcpy(user, m, len);
    else if (!len) client_id(x, id, sizeof(id));
    if (user[0] || id[0]) hr_hub_disconnect_clients(hub, user, id, 3000, "fuzz");
}

static void server_unsubscribe(sess *x, const uint8_t *m, size_t len)
{
    char id[64];
    client_id(x, id, sizeof(id));
    if (id[0] && len) hr_hub_unsubscribe_clients(hub, (const char *)m, len, "", id, HR_UNSUB_SERVER, "fuzz");
}

/* The worker loops' timer wheels moved on by the seconds in m[0..len). */
static void advance(const uint8_t *m, size_t len)
{
    uint64_t sec = 0;
    for (size_t i = 0; i < len && m[i] >= '0' && m[i] <= '9' && sec < 86400; i++) sec = sec * 10 + (m[i] - '0');
    if (sec > 86400) sec = 86400;
    for (int w = 0; w < 2; w++) hr_wheel_advance(&loops[w].wheel, loops[w].wheel.now + sec * 1000);
}

/* ---- an engine that answers later ---------------------------------------------------- */

/* With 'a' after the kinds on line 1, the memory engine's publish, history
 * and presence reads are queued and run when the input says (E) or at the
 * end, after the sessions are gone: the asynchronous paths (a subscribe's
 * held publications, frames waiting for a reply, answers that find their
 * session or subscription gone) the inline memory engine never takes. The
 * call, not the answer, is deferred: the engine answers from its state when
 * the call runs, as a remote engine would. */
typedef struct deferred {
    struct deferred *next;
    int kind;                       /* 0 publish, 1 history, 2 presence */
    hr_chan_opts o;
    hr_pub *pub;
    char *idem, *ch, *since_epoch, *before_epoch;
    size_t idem_len, len;
    hr_history_query q;
    void *cb, *ud;
} deferred;

static const hr_engine_vt *mem_vt;
static hr_engine_vt later_vt;
static deferred *queue_head, **queue_tail = &queue_head;

static deferred *defer(int kind, const char *ch, size_t len, void *cb, void *ud)
{
    deferred *d = hr_calloc(1, sizeof(*d));
    d->kind = kind;
    d->ch = ch ? hr_strndup(ch, len) : NULL;
    d->len = len;
    d->cb = cb;
    d->ud = ud;
    *queue_tail = d;
    queue_tail = &d->next;
    return d;
}

static void later_publish(hr_engine *e, const hr_chan_opts *o, hr_pub *pub, const char *idem_key, size_t idem_len,
                          hr_publish_cb cb, void *ud)
{
    (void)e;
    deferred *d = defer(0, NULL, 0, (void *)cb, ud);
    d->o = *o;
    d->pub = hr_pub_ref(pub);
    d->idem = idem_len ? hr_strndup(idem_key, idem_len) : NULL;
    d->idem_len = idem_len;
}

static void later_history(hr_engine *e, const hr_chan_opts *o, const char *channel, size_t len,
                          const hr_history_query *q, hr_history_cb cb, void *ud)
{
    (void)e;
    deferred *d = defer(1, channel, len, (void *)cb, ud);
    d->o = *o;
    d->q = *q;
    d->since_epoch = q->since_epoch ? hr_strdup(q->since_epoch) : NULL;
    d->before_epoch = q->before_epoch ? hr_strdup(q->before_epoch) : NULL;
    d->q.since_epoch = d->since_epoch;
    d->q.before_epoch = d->before_epoch;
}

static void later_presence(hr_engine *e, const char *channel, size_t len, hr_presence_cb cb, void *ud)
{
    (void)e;
    defer(2, channel, len, (void *)cb, ud);
}

/* Run the queued calls in order (and those they queue). */
static void flush_engine(void)
{
    while (queue_head) {
        deferred *d = queue_head;
        queue_head = d->next;
        if (!queue_head) queue_tail = &queue_head;
        hr_engine *e = hub->engine;
        if (d->kind == 0) mem_vt->publish(e, &d->o, d->pub, d->idem, d->idem_len, (hr_publish_cb)d->cb, d->ud);
        else if (d->kind == 1) mem_vt->history(e, &d->o, d->ch, d->len, &d->q, (hr_history_cb)d->cb, d->ud);
        else mem_vt->presence(e, d->ch, d->len, (hr_presence_cb)d->cb, d->ud);
        if (d->pub) hr_pub_unref(d->pub);
        hr_free(d->idem);
        hr_free(d->ch);
        hr_free(d->since_epoch);
        hr_free(d->before_epoch);
        hr_free(d);
    }
}

static void engine_later(bool on)
{
    mem_vt = hub->engine->vt;
    later_vt = *mem_vt;
    later_vt.publish = later_publish;
    later_vt.history = later_history;
    later_vt.presence = later_presence;
    if (on) hub->engine->vt = &later_vt;
}

/* ---- the run -------------------------------------------------------------------------- */

static void record(const uint8_t *line, size_t len)
{
    if (len < 2) return;
    sess *x = &ss[line[0] % nsess];
    int i = (int)(x - ss), op = line[1];
    uint8_t m[4096];
    size_t n = len - 2 < sizeof(m) ? len - 2 : sizeof(m);
    for (size_t k = 0; k < n; k++) m[k] = line[2 + k] == 0x1f ? '\n' : line[2 + k];
    if (op == 'o') {
        sess_close(x);
        sess_open(i, (const char *)m, n);
        return;
    }
    if (op == 'c') {
        sess_close(x);
        return;
    }
    if (!x->open) sess_open(i, NULL, 0);
    switch (op) {
    case 't': signed_connect(x, m, n); break;
    case 'k': signed_sub_token(x, m, n); break;
    case 'a': signed_subscribe(x, m, n); break;
    case 's': signed_signin(x, m, n); break;
    case 'q': x->f.queued = 0; break;
    case 'P': server_publish(m, n); break;
    case 'D': server_disconnect(x, m, n); break;
    case 'U': server_unsubscribe(x, m, n); break;
    case 'T': advance(m, n); break;
    case 'E': flush_engine(); break;
    default: deliver(x, op == 'b', m, n); break;
    }
}

static uint64_t npresence;
static bool answered;
static void on_presence(void *ud, int err, const hr_presence *p)
{
    (void)ud;
    answered = true;
    npresence = err ? 0 : p->n;
}

/* Nothing of the input's sessions is left in the hub or the engine. */
static void check_empty(void)
{
    uint64_t nch = 99, nsubs = 99;
    hr_hub_top_channels(hub, NULL, 0, &nch, &nsubs);
    check(nch == 0 && nsubs == 0);
    for (int w = 0; w < 2; w++) check(wh[w]->nclients == 0 && wh[w]->npatterns == 0);
    hr_engine_stats st = {0};
    hub->engine->vt->stats(hub->engine, &st);
    check(st.presence_entries == 0);
    for (int i = 0; i < nchans; i++) {
        size_t len = strlen(chans[i]);
        check(hr_hub_subscribers(hub, chans[i], len) == 0);
        answered = false;
        hub->engine->vt->presence(hub->engine, chans[i], len, on_presence, NULL);
        check(answered && npresence == 0);
    }
}

static int kind_of(uint8_t c)
{
    return c == 'm' ? K_MSGPACK : c == 'p' ? K_PUSHER : c == 'r' ? K_RAW : K_JSON;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        server_init();
        ready = true;
    }
    if (size > 64 * 1024) return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    if (hlen == 0) return 0;
    rnd_state = 1;
    hub = hr_hub_new(2);
    hr_limits_opts lo;
    hr_opts_limits(&cfg, &lo);
    hub->limits = hr_limits_new(&lo); /* per input: per-user counts must not carry over */
    for (int i = 0; i < 2; i++) {
        check(hr_loop_init(&loops[i], NULL) == 0);
        wh[i] = hr_hub_worker(hub, i, &loops[i]);
    }
    memset(ss, 0, sizeof(ss));
    nsess = 0;
    bool later = false;
    for (size_t i = 0; i < hlen; i++) {
        if (data[i] == 'a') later = true;
        else if (nsess < MAX_SESS) ss[nsess++].kind = kind_of(data[i]);
    }
    if (!nsess) nsess = 1;
    engine_later(later);
    nchans = 0;
    size_t pos = nl ? hlen + 1 : size;
    while (pos < size) {
        const uint8_t *e = memchr(data + pos, '\n', size - pos);
        size_t end = e ? (size_t)(e - data) : size;
        record(data + pos, end - pos);
        process();
        hr_hub_each_channel(hub, "", 0, note_chan, NULL);
        pos = end + 1;
    }
    for (int i = 0; i < nsess; i++) sess_close(&ss[i]);
    flush_engine(); /* answers for sessions that are gone */
    process();
    hub->engine->vt = mem_vt;
    check_empty();
    hr_limits *lim = hub->limits;
    hr_hub_free(hub);
    hr_limits_free(lim);
    for (int i = 0; i < 2; i++) hr_loop_close(&loops[i]);
    return 0;
}
