/* ops.h - the operations every front end performs (DESIGN.md "One set of
 * operations, many front ends"): verify a token (connect), subscribe,
 * unsubscribe, publish, history, presence. Each applies every rule - channel
 * name, pattern refusal, namespace policy, user-limited channels,
 * permissions, subscription tokens, limits (subscriptions per connection,
 * max_subscribers, publication size, idempotency keys, publish and channel
 * creation rates, token verification rate) - and returns one result code
 * (hr_op_rc) with a detail text. A front end only turns its wire input into
 * a call and maps the code to its wire form (hr_op_native_code and the
 * tables in each front end); it re-checks and skips nothing.
 *
 * Who asks is an hr_actor built on the caller's stack from what the front
 * end already holds (no per-connection memory is added): a client (its
 * user, subscriptions and buckets) or the server API (HR_ACTOR_SERVER,
 * trusted: channel validity, patterns, namespaces, sizes and idempotency
 * keys apply; permissions and client rates do not).
 *
 * Asynchronous steps: publish, history and presence end in an engine call
 * whose callback the caller gives; the operation returns HR_OP_OK once the
 * call is made and the callback reports the engine's answer later (at once
 * for the memory engine, later for Redis or memory-delayed). A later
 * asynchronous rule (a backend proxy hook) fits in the same place: it runs
 * before the engine call and completes through the same callback. */
#ifndef HERALD_OPS_OPS_H
#define HERALD_OPS_OPS_H

#include "auth/jwt.h"
#include "hub/hub.h"
#include "auth/policy.h"
#include "ops/limits.h"

struct hr_auth;

/* The options that apply to a channel (its namespace's, over [channels]):
 * 0, or nonzero when the channel's namespace is not configured and unknown
 * namespaces are refused. The server's namespace table behind a function
 * (ctx is hr_ops_opts.policy_ctx); called per command, never per delivery. */
typedef int (*hr_policy_fn)(const void *ctx, const char *channel, size_t len, hr_chan_policy *out);

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
    int64_t max_commands_per_frame;      /* channels.max_commands_per_frame */
    int64_t max_reply_size;              /* channels.max_reply_size */
    int64_t reply_budget;                /* channels.reply_budget */
    int64_t token_verifications_per_connection; /* limits.token_verifications_per_connection */
    int64_t token_verification_burst;    /* limits.token_verification_burst */
} hr_ops_opts;

/* The policy of a channel (hr_policy_fn's answer). */
static inline int hr_ops_policy(const hr_ops_opts *o, const char *channel, size_t len, hr_chan_policy *out)
{
    return o->policy(o->policy_ctx, channel, len, out);
}

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
} hr_op_rc;
#define HR_OP_NCODES 16

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
} hr_actor;

/* An operation's answer: rc and, when refused, a detail text (static, or
 * thread-local and valid until the next operation on this thread). */
typedef struct hr_op_result {
    int rc;
    const char *detail;
} hr_op_result;

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
} hr_op_sub_req;

/* Every rule of subscribing `ch` without registering it: name (patterns
 * allowed), namespace (*pol), user-limited channels, subscription token,
 * permission, already subscribed, channels.max_subscriptions (nsubs: the
 * subscriptions the actor holds or is about to hold), channel creation rate. */
hr_op_result hr_op_may_subscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req,
                                 size_t nsubs, hr_chan_policy *pol, bool *is_pattern);
/* Register an accepted subscription with the hub (the namespace's
 * max_subscribers): the subscription, or NULL with *res = CHANNEL_FULL. */
hr_sub *hr_op_subscribe_add(const hr_actor *a, const char *ch, size_t len, bool pattern,
                            const hr_chan_policy *pol, hr_op_result *res);
/* Both: hr_op_may_subscribe, then hr_op_subscribe_add. */
hr_op_result hr_op_subscribe(const hr_actor *a, const char *ch, size_t len, const hr_op_sub_req *req,
                             hr_chan_policy *pol, bool *is_pattern, hr_sub **out);
/* The actor's subscription to ch, or NULL with NOT_SUBSCRIBED. The front
 * end then leaves it its own way (it owns presence and held pushes). */
hr_sub *hr_op_unsubscribe_find(const hr_actor *a, const char *ch, size_t len, hr_op_result *res);

/* ---- publish / history / presence ----------------------------------------------------- */

/* Publish data (compact JSON) to ch: every rule, then the engine; cb
 * reports the engine's answer (only when OK is returned). */
hr_op_result hr_op_publish(const hr_actor *a, const char *ch, size_t len, const char *data, size_t dlen,
                           const char *idem_key, size_t idem_len, hr_publish_cb cb, void *ud);
/* Publish one hr_pub (its channel and data) for the server API's batches:
 * the rules of hr_op_publish. */
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

/* Read ch's history: every rule, then the engine (q as the engine takes it). */
hr_op_result hr_op_history(const hr_actor *a, const char *ch, size_t len, const hr_history_query *q,
                           hr_history_cb cb, void *ud);
/* Remove ch's history (the server API only: a client gets DENIED). */
hr_op_result hr_op_history_remove(const hr_actor *a, const char *ch, size_t len, hr_done_cb cb, void *ud);
/* Read ch's presence (the list; the front end counts it for stats). */
hr_op_result hr_op_presence(const hr_actor *a, const char *ch, size_t len, hr_presence_cb cb, void *ud);

/* ---- wire forms ----------------------------------------------------------------------- */

/* Native protocol error code (docs/protocol.md) of a result (whether it
 * is temporary follows from the code). */
int hr_op_native_code(int rc);
/* HTTP status of a result (SSE, HTTP streaming handshakes, the server API). */
int hr_op_http_status(int rc);

#endif
