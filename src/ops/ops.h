/* ops.h - the operations every front end performs (DESIGN.md "One set of
 * operations, many front ends"): verify a token (connect), subscribe,
 * unsubscribe, publish, history, presence, and the server API's commands
 * (unsubscribe, disconnect, the channels filter). Each applies every rule -
 * channel name, pattern refusal, namespace policy, user-limited channels,
 * permissions, subscription tokens, limits (subscriptions per connection,
 * max_subscribers, publication size, idempotency keys, publish and channel
 * creation rates, token verification rate, a server command's target) -
 * and returns one result code
 * (hr_op_rc) with a detail text. A front end only turns its wire input into
 * a call and maps the code to its wire form (hr_op_native_code and the
 * tables in each front end); it re-checks and skips nothing.
 *
 * Order: every rule of an operation runs before anything the front end
 * spends on it. An operation whose answer a front end must make room for
 * (a session's reply budget) comes in two steps, hr_op_may_* (the rules)
 * then the engine call, with the front end's reservation in between.
 *
 * A subscription's side effects are here too, the same for every front
 * end: hr_op_subscribe_commit (presence entry, join push),
 * hr_op_leave (unsubscribe, presence removal, leave push) and hr_op_hold
 * (publications that arrive before the subscribe is answered, delivered
 * after it minus what the answer covered; channels.max_held_publications). A new front end (the Pusher
 * protocol, HTTP/2) subscribes with presence and join/leave by calling
 * hr_op_subscribe (or hr_op_may_subscribe + hr_op_subscribe_add), then
 * hr_op_subscribe_commit, and leaves with hr_op_leave: ops alone.
 *
 * Who asks is an hr_actor built on the caller's stack from what the front
 * end already holds (no per-connection memory is added): a client (its
 * user, subscriptions, buckets and token info) or the server API (HR_ACTOR_SERVER,
 * trusted: channel validity, patterns, namespaces, sizes and idempotency
 * keys apply; permissions and client rates do not).
 *
 * Asynchronous steps: publish, history and presence end in an engine call
 * whose callback the caller gives; the operation returns HR_OP_OK once the
 * call is made and the callback reports the engine's answer later (at once
 * for the memory engine, later for Redis or memory-delayed).
 *
 * Asynchronous rules (the backend's subscribe and publish hooks, when the
 * channel's namespace has proxy_subscribe / proxy_publish): after every
 * synchronous rule passed, a client's subscribe or publish asks the hook
 * through hr_ops_opts.hooks (a function pointer the server fills with the
 * proxy module's; ops knows no backend code) and returns HR_OP_PENDING. A
 * subscribe's answer comes to the front end's hr_op_hook_cb, which then
 * registers the subscription with hr_op_subscribe_finish; a publish's
 * refusal comes to its hr_op_refused_cb, and its yes goes on to the engine
 * call, whose callback reports as usual. A front end that cannot wait
 * passes no callback and gets HOOK_UNSUPPORTED: a hook is never skipped.
 * The server API (HR_ACTOR_SERVER) never calls a hook. */
#ifndef HERALD_OPS_OPS_H
#define HERALD_OPS_OPS_H

#include "auth/jwt.h"
#include "hub/hub.h"
#include "auth/policy.h"
#include "ops/limits.h"

struct hr_auth;
struct hr_webhook;
struct hr_pusher_apps;

/* The options that apply to a channel (its namespace's, over [channels]):
 * 0, or nonzero when the channel's namespace is not configured and unknown
 * namespaces are refused. The server's namespace table behind a function
 * (ctx is hr_ops_opts.policy_ctx); called per command, never per delivery. */
typedef int (*hr_policy_fn)(const void *ctx, const char *channel, size_t len, hr_chan_policy *out);

struct hr_actor;
struct hr_op_hook_ans;
typedef void (*hr_op_hook_cb)(void *ud, const struct hr_op_hook_ans *ans);

/* A backend hook the operations can ask (ops.h's top). */
typedef enum hr_op_hook { HR_OP_HOOK_SUBSCRIBE, HR_OP_HOOK_PUBLISH } hr_op_hook;

/* What a hook is asked: valid only during hr_ops_hooks.call. */
typedef struct hr_op_hook_req {
    hr_op_hook hook;
    const struct hr_actor *a;      /* who asks (a client: its id, user, transport) */
    const char *channel;
    size_t channel_len;
    const char *data;              /* publish: the data; subscribe: the client's data, or NULL (JSON text) */
    size_t data_len;
} hr_op_hook_req;

/* The asynchronous rules, filled by the server (NULL call: no backend
 * configured, a namespace that needs one refuses with BACKEND_UNAVAILABLE). */
typedef struct hr_ops_hooks {
    /* Ask the hook: 0 and cb(ud, answer) fires later from the loop (never
     * from inside call, exactly once, also when the worker stops), or a
     * negative hr_op_rc refusal now (*detail set: too many in flight). */
    int (*call)(void *ctx, const hr_op_hook_req *req, hr_op_hook_cb cb, void *ud, const char **detail);
    void *ctx;
} hr_ops_hooks;

/* The operations' options ([channels] and the per-connection token rate of
 * docs/config.md), filled by the server at start-up. */
typedef struct hr_ops_opts {
    struct hr_auth *auth;                /* the token verifier (auth.h) */
    hr_policy_fn policy;                 /* channel policy lookup (never NULL) */
    const void *policy_ctx;
    int64_t max_channel_length;          /* channels.max_channel_length */
    int64_t max_publication_size;        /* channels.max_publication_size */
    int64_t max_subscriptions;           /* channels.max_subscriptions */
    int64_t history_size;                /* channels.history_size */
    int64_t history_max_limit;           /* channels.history_max_limit */
    int64_t idempotency_window_ms;       /* channels.idempotency_window */
    int64_t join_leave_max_subscribers;  /* channels.join_leave_max_subscribers */
    int64_t max_held_publications;       /* channels.max_held_publications */
    int64_t max_commands_per_frame;      /* channels.max_commands_per_frame */
    int64_t max_reply_size;              /* channels.max_reply_size */
    int64_t reply_budget;                /* channels.reply_budget */
    int64_t token_verifications_per_connection; /* limits.token_verifications_per_connection */
    int64_t token_verification_burst;    /* limits.token_verification_burst */
    hr_ops_hooks hooks;                  /* the backend's subscribe / publish hooks */
    struct hr_webhook *webhook;          /* the webhook sender (backend/webhook.h), NULL when off */
    struct hr_admin *admin;              /* the admin UI's sessions (ops/admin.h), NULL when admin.enabled is off */
    const struct hr_pusher_apps *pusher; /* the Pusher apps (ops/pusher_app.h), NULL when none is configured */
} hr_ops_opts;

/* The policy of a channel (hr_policy_fn's answer; a Pusher namespace's
 * from its app, ops/pusher_app.h). */
int hr_ops_policy(const hr_ops_opts *o, const char *channel, size_t len, hr_chan_policy *out);

/* Engine options (hr_chan_opts) of a policy. */
#define HR_OPS_CHAN_OPTS(o, pol)                                                                                 \
    ((hr_chan_opts){(uint32_t)(pol).history_size, (uint64_t)(pol).history_ttl_ms, (pol).presence, (pol).join_leave, \
                    (uint64_t)(o)->idempotency_window_ms})

/* Result codes: 0 or negative (hr_op_rc_name gives a stable name). */
typedef enum hr_op_rc {
    HR_OP_OK = 0,
    HR_OP_BAD_CHANNEL = -1,        /* not a valid channel name (or pattern) */
    HR_OP_PATTERN = -2,            /* a pattern where a channel is needed (publish, history, presence) */
    HR_OP_UNKNOWN_NAMESPACE = -3,  /* the channel's namespace is not configured */
    HR_OP_USER_LIMITED = -4,       /* NAME#user of another user (or of anyone, for an anonymous client) */
    HR_OP_DENIED = -5,             /* the namespace's permission refuses this client */
    HR_OP_TOKEN_INVALID = -6,      /* a token that does not verify, or is for another channel/user */
    HR_OP_TOKEN_EXPIRED = -7,
    HR_OP_ALREADY_SUBSCRIBED = -8,
    HR_OP_NOT_SUBSCRIBED = -9,
    HR_OP_TOO_MANY_SUBSCRIPTIONS = -10, /* channels.max_subscriptions */
    HR_OP_CHANNEL_FULL = -11,      /* the namespace's max_subscribers */
    HR_OP_RATE_LIMITED = -12,      /* publish / channel creation / token verification rate: temporary */
    HR_OP_TOO_BIG = -13,           /* channels.max_publication_size */
    HR_OP_BAD_IDEMPOTENCY_KEY = -14, /* not 1 to HR_IDEM_MAX_KEY_LEN bytes */
    HR_OP_NOT_AVAILABLE = -15,     /* presence disabled in the namespace */
    HR_OP_BAD_REQUEST = -16,       /* a server command's target, reason or code out of its bounds */
    HR_OP_BACKEND_UNAVAILABLE = -17, /* a hook's backend is down, refused or has too many calls in flight: temporary */
    HR_OP_BACKEND_TIMEOUT = -18,   /* a hook's backend did not answer in time: temporary */
    HR_OP_BACKEND_BAD_ANSWER = -19, /* a hook's backend answered 5xx or something malformed: temporary */
    HR_OP_BACKEND_ERROR = -20,     /* the backend's own error (hr_op_result.code 400..1999, its message) */
    HR_OP_BACKEND_DISCONNECT = -21, /* the backend's disconnect (hr_op_result.code 4000..4999, its reason) */
    HR_OP_HOOK_UNSUPPORTED = -22,  /* the namespace needs a hook this front end cannot wait for */
    HR_OP_PENDING = 1,             /* not a refusal: the answer comes through the callback (top) */
} hr_op_rc;
#define HR_OP_NCODES 23

const char *hr_op_rc_name(int rc);

typedef enum hr_actor_kind {
    HR_ACTOR_CLIENT = 0,           /* a client connection: every rule */
    HR_ACTOR_SERVER = 1,           /* the server API (a trusted backend): no permissions, no client rates */
} hr_actor_kind;

/* Who performs an operation. Built by the front end for each call. */
typedef struct hr_actor {
    hr_actor_kind kind;
    const hr_ops_opts *opts;
    hr_whub *wh;                   /* the worker's hub part: engine, limits, loop clock (NULL: no limits) */
    hr_engine *engine;             /* where channel state lives (publish, history, presence) */
    const char *user;              /* "" or NULL when anonymous */
    hr_client *client;             /* its subscriptions (NULL: none yet, or a server) */
    hr_bucket *pub_bucket;         /* limits.publishes_per_connection (NULL: not counted) */
    hr_bucket *chan_bucket;        /* limits.channels_per_connection (NULL: not counted) */
    hr_bucket *tok_bucket;         /* limits.token_verifications_per_connection (NULL: not counted) */
    uint32_t ip_key;               /* the client's address in the limits (rejected tokens), 0 = unknown */
    const char *info;              /* its connection token's info (compact JSON) or NULL: presence, join/leave */
    const char *transport;         /* for the hooks: websocket, sse, http_stream, long_poll (NULL: websocket) */
    const char *protocol;          /* for the hooks: json, msgpack (NULL: json) */
    struct hr_pusher_rate *pusher_rate; /* a Pusher connection's client-event rate (NULL: not one) */
} hr_actor;

/* An operation's answer: rc and, when refused, a detail text (static, or
 * thread-local and valid until the next operation on this thread; a hook's
 * answer's until its callback returns) and, for BACKEND_ERROR and
 * BACKEND_DISCONNECT, the backend's code (and an error's temporary flag). */
typedef struct hr_op_result {
    int rc;
    const char *detail;
    int code;
    bool temporary;                /* BACKEND_ERROR: the backend says a retry may succeed */
} hr_op_result;

/* A hook's answer (hr_op_hook_cb): res OK with the backend's info and data
 * (JSON text, NULL when absent), or a BACKEND_* refusal. Valid only during
 * the callback. */
typedef struct hr_op_hook_ans {
    hr_op_result res;
    const char *info;              /* subscribe: the channel info for this client's presence and join/leave */
    size_t info_len;
    const char *data;              /* subscribe: data for the reply; publish: the data that replaces the client's */
    size_t data_len;
} hr_op_hook_ans;

/* A publish refused by its hook (after HR_OP_PENDING): ud is the publish's. */
typedef void (*hr_op_refused_cb)(void *ud, hr_op_result res);

/* ---- connect (identify + authorize) -------------------------------------------------- */

/* Verify a connection or subscription token (token verification rate; a
 * rejected token counts against the client's address): OK with *cl filled,
 * or TOKEN_INVALID / TOKEN_EXPIRED / RATE_LIMITED (cl empty). tok NULL: a
 * malformed token. */
hr_op_result hr_op_verify_token(const hr_actor *a, const char *tok, size_t len, hr_jwt_claims *cl);

/* ---- subscribe / unsubscribe ---------------------------------------------------------- */

/* What a subscribe carries besides the channel. */
typedef struct hr_op_sub_req {
    bool granted;                  /* the connection token lists the channel */
    const char *token;             /* a subscription token (NULL: none) */
    size_t token_len;
    bool asks_hook;                /* the front end asks the subscribe hook itself (hr_op_subscribe_hook) */
    const char *data;              /* the client's data for the subscribe hook (JSON text; NULL: none) */
    size_t data_len;
    const struct hr_op_pusher_cred *pusher; /* a Pusher subscription's signature (NULL: none) */
} hr_op_sub_req;

/* A Pusher private-/presence- subscription's credential (docs/pusher.md):
 * for a channel of a Pusher namespace, hr_op_may_subscribe verifies auth
 * over socket_id, the Pusher channel name and channel_data (presence; NULL
 * otherwise) with the app's secret: it then counts as granted, a bad one is
 * TOKEN_INVALID. */
typedef struct hr_op_pusher_cred {
    const char *socket_id;
    const char *auth;
    size_t auth_len;
    const char *channel_data;
    size_t data_len;
} hr_op_pusher_cred;

/* Every rule of subscribing `ch` without registering it: name (patterns
 * allowed), namespace (*pol), user-limited channels, subscription token,
 * permission, already subscribed, channels.max_subscriptions (nsubs: the
 * subscriptions the actor holds or is about to hold), channel creation rate;
 * a namespace with proxy_subscribe is HOOK_UNSUPPORTED here unless
 * req->asks_hook (the front end then calls hr_op_subscribe_hook and waits
 * for its answer before the subscription is delivered anything). */
hr_op_result hr_op_may_subscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req,
                                 size_t nsubs, hr_chan_policy *pol, bool *is_pattern);
/* Register an accepted subscription with the hub (the namespace's
 * max_subscribers): the subscription, or NULL with *res = CHANNEL_FULL. */
hr_sub *hr_op_subscribe_add(const hr_actor *a, const char *ch, size_t len, bool pattern,
                            const hr_chan_policy *pol, hr_op_result *res);
/* Both: hr_op_may_subscribe, then hr_op_subscribe_add. When the channel's
 * namespace has proxy_subscribe (a client), the hook is asked instead and
 * PENDING returned: cb(ud, answer) follows, where the front end calls
 * hr_op_subscribe_finish on a yes. cb NULL: HOOK_UNSUPPORTED there. */
hr_op_result hr_op_subscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req,
                             hr_chan_policy *pol, bool *is_pattern, hr_sub **out, hr_op_hook_cb cb, void *ud);
/* Ask the subscribe hook about ch (its namespace has proxy_subscribe and
 * hr_op_may_subscribe passed with asks_hook): PENDING and cb(ud, answer)
 * later, or a refusal now. */
hr_op_result hr_op_subscribe_hook(const hr_actor *a, const char *ch, size_t len, hr_op_hook_cb cb, void *ud);
/* After the subscribe hook said yes: the rules that may have changed while
 * it was asked (already subscribed, channels.max_subscriptions), then
 * hr_op_subscribe_add. */
hr_sub *hr_op_subscribe_finish(const hr_actor *a, const char *ch, size_t len, bool pattern,
                               const hr_chan_policy *pol, hr_op_result *res);
/* The actor's subscription to ch, or NULL with NOT_SUBSCRIBED; the front
 * end then answers the client and leaves it with hr_op_leave. */
hr_sub *hr_op_unsubscribe_find(const hr_actor *a, const char *ch, size_t len, hr_op_result *res);

/* The side effects of an accepted subscription, the same for every front
 * end (a->client, a->wh, a->engine and a->info set). Call once the
 * subscription may be announced - at once, or when the front end's
 * handshake has passed: a concrete channel whose namespace (*pol) has
 * presence gets the client's presence entry (sub->presence set); one with
 * join_leave gets a join push, unless it has more than
 * channels.join_leave_max_subscribers subscribers. A pattern gets neither. */
void hr_op_subscribe_commit(const hr_actor *a, hr_sub *sub, const hr_chan_policy *pol);
/* Leave one subscription (an unsubscribe, a server unsubscribe, the
 * connection's end): the hub forgets it, its presence entry goes, and a
 * leave push follows where the namespace has join_leave (announce false:
 * none - the workers' loops are gone at shutdown). Publications the front
 * end holds for sub (hr_op_hold) are its to forget first. */
void hr_op_leave(const hr_actor *a, hr_sub *sub, bool announce);

/* Whom a server command (the server API's unsubscribe and disconnect) is
 * for, and what it tells them. */
typedef struct hr_op_target {
    const char *user;              /* "" = any user (at most HR_OP_MAX_USER bytes, as a token's sub) */
    const char *client;            /* "" = any client (at most HR_OP_MAX_CLIENT bytes) */
    const char *reason;            /* at most HR_OP_MAX_REASON bytes */
} hr_op_target;
#define HR_OP_MAX_USER 255
#define HR_OP_MAX_CLIENT 64
#define HR_OP_MAX_REASON 120       /* a WebSocket close frame holds 123 bytes of reason */

/* The rules of unsubscribing t's clients from ch by a server command (the
 * server API's unsubscribe; a client gets DENIED): ch named as a subscribe
 * names it (a channel or a pattern, its namespace configured), a user or a
 * client at least, each and the reason within its bound (BAD_REQUEST). The
 * command then goes to every worker (hr_hub_unsubscribe_clients). */
hr_op_result hr_op_may_unsubscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_target *t);
/* The rules of disconnecting t's clients with close code `code` (the
 * server API's disconnect; a client gets DENIED): t as for unsubscribe, the
 * code from 3000 to 4999 (BAD_REQUEST). */
hr_op_result hr_op_may_disconnect(const hr_actor *a, const hr_op_target *t, int code);
/* The rules of a channel filter (the server API's channels listing): pat is
 * a valid channel name or pattern (BAD_CHANNEL with the name's fault
 * otherwise, as every operation words it). A filter names no channel, so
 * no namespace applies. */
hr_op_result hr_op_may_list_channels(const hr_actor *a, const char *pat, size_t len);

/* ---- held publications --------------------------------------------------------------- */

/* Publications that reach a subscription before the front end has answered
 * its subscribe (a native reply, an SSE stream's start: the answer reports
 * the channel's position, and may already hold the recovered publications).
 * They wait in arrival order and follow the answer, minus those it covered.
 * The front end marks what is held (sub->hold, its start state) and owns
 * the hold; every front end that answers after the engine uses this. At
 * most channels.max_held_publications wait in one hold: past it the front
 * end ends the client, which recovers from history. */

typedef struct hr_op_held {
    hr_sub *sub;
    hr_pub *pub;                   /* a reference */
} hr_op_held;

typedef struct hr_op_hold {
    hr_op_held *v;
    size_t n, cap;
} hr_op_hold;

/* Hold pub for sub: false (nothing held) once o->max_held_publications are held. */
bool hr_op_hold_add(hr_op_hold *h, const hr_ops_opts *o, hr_sub *sub, const hr_pub *pub);
/* Where the answer left sub: true with *offset (a publication at or below
 * it was in the answer, or published before it), false when it has none. */
typedef bool (*hr_op_hold_pos_fn)(void *ud, const hr_sub *sub, uint64_t *offset);
/* The answer is out: deliver what is held through c's on_pub, in arrival
 * order (each with its own encoding cache), skipping what the answer
 * covered; h is emptied. The front end has cleared its mark first, so
 * on_pub delivers rather than holds. */
void hr_op_hold_release(hr_op_hold *h, hr_client *c, hr_op_hold_pos_fn pos, void *ud);
/* Drop what is held. */
void hr_op_hold_free(hr_op_hold *h);

/* ---- publish / history / presence ----------------------------------------------------- */

/* Publish data (compact JSON) to ch: every rule, then the engine; cb
 * reports the engine's answer (only when OK or PENDING is returned). When
 * the channel's namespace has proxy_publish (a client), the publish hook is
 * asked first and PENDING returned: on its yes the engine publishes (its
 * data, or the backend's), on a refusal refused(ud, result) fires instead
 * of cb. refused NULL: HOOK_UNSUPPORTED there. The idempotency key dedupes
 * in the engine, after the hook (docs/backend.md). */
hr_op_result hr_op_publish(const hr_actor *a, const char *ch, size_t len, const char *data, size_t dlen,
                           const char *idem_key, size_t idem_len, hr_publish_cb cb, hr_op_refused_cb refused,
                           void *ud);
/* Publish one hr_pub (its channel and data) for the server API's batches:
 * the rules of hr_op_publish (no hook: a client gets HOOK_UNSUPPORTED where
 * one is needed). */
hr_op_result hr_op_publish_pub(const hr_actor *a, hr_pub *p, const char *idem_key, size_t idem_len,
                               hr_publish_cb cb, void *ud);
/* The rules of publishing `dlen` bytes to ch without publishing (a server
 * API broadcast checks every channel first: all or nothing). */
hr_op_result hr_op_may_publish(const hr_actor *a, const char *ch, size_t len, size_t dlen, const char *idem_key,
                               size_t idem_len, hr_chan_policy *pol);

/* ---- rpc ------------------------------------------------------------------------------ */

/* The rules of sending an rpc call with `dlen` bytes of data to the backend:
 * channels.max_publication_size bounds the data (TOO_BIG) and each call
 * spends the publish rate (limits.publishes_per_connection / _per_user:
 * RATE_LIMITED). The front end then calls the backend (backend/proxy.h). */
hr_op_result hr_op_may_rpc(const hr_actor *a, size_t dlen);

/* Read ch's history: every rule, then the engine (q as the engine takes it).
 * The query's own rule: with both since and before, before.offset must be
 * greater than since.offset (BAD_REQUEST naming "before.offset"); the front ends
 * check the JSON types. */
hr_op_result hr_op_history(const hr_actor *a, const char *ch, size_t len, const hr_history_query *q,
                           hr_history_cb cb, void *ud);
/* The same in two steps, for a front end that reserves room for the answer
 * (a session's channels.reply_budget): every rule first (*pol filled), then,
 * once the front end's own step passed, the engine call. A refused read
 * reserves nothing, and a client both refused and out of budget learns the
 * refusal. */
hr_op_result hr_op_may_history(const hr_actor *a, const char *ch, size_t len, const hr_history_query *q,
                               hr_chan_policy *pol);
void hr_op_history_read(const hr_actor *a, const char *ch, size_t len, const hr_chan_policy *pol,
                        const hr_history_query *q, hr_history_cb cb, void *ud);
/* Remove ch's history (the server API only: a client gets DENIED). */
hr_op_result hr_op_history_remove(const hr_actor *a, const char *ch, size_t len, hr_done_cb cb, void *ud);
/* Read ch's presence (the list; the front end counts it for stats). */
hr_op_result hr_op_presence(const hr_actor *a, const char *ch, size_t len, hr_presence_cb cb, void *ud);
/* The same in two steps (as hr_op_may_history / hr_op_history_read). */
hr_op_result hr_op_may_presence(const hr_actor *a, const char *ch, size_t len);
void hr_op_presence_read(const hr_actor *a, const char *ch, size_t len, hr_presence_cb cb, void *ud);

/* ---- wire forms ----------------------------------------------------------------------- */

/* Native protocol error code (docs/protocol.md) of a result code (whether
 * it is temporary follows from the code); hr_op_result_native also gives
 * a BACKEND_ERROR its backend's code. */
int hr_op_native_code(int rc);
int hr_op_result_native(hr_op_result r);
/* HTTP status of a result (SSE, HTTP streaming handshakes, the server API). */
int hr_op_http_status(int rc);

#endif
