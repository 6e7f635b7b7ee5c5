/* webhook.h - signed, batched, retried webhooks: Herald telling the
 * application's backend what happened (docs/backend.md, Webhooks), at least
 * once, in order per channel.
 *
 * One sender per process, with its own thread, loop and hr_httpc. Events
 * come from every worker through hr_webhook_emit, which builds the event's
 * JSON on the caller's thread and appends it to a mutex-guarded queue (one
 * per distinct URL), waking the sender's loop through its eventfd at most
 * once per batch: nothing on the caller's side waits for the backend.
 *
 * Per URL: up to batch_max_events events or batch_max_delay_ms per POST
 * ({"events":[...]}), signed (X-Herald-Signature: t=UNIXSECONDS,v1=HEX of
 * HMAC-SHA256(secret, "t." + body), re-signed per attempt). 2xx: delivered;
 * 5xx, 429, timeout, connection error: the same batch again after an
 * exponential backoff with full jitter (retry_min_ms .. retry_max_ms),
 * head-of-line (the next batch to that URL waits: per-channel order); any
 * other status: dropped and logged (rejected). All queues together hold at
 * most max_queued events and max_queued_bytes of event JSON; one more drops
 * the oldest waiting events until it fits (counted, logged at most once per
 * 10 s).
 *
 * A route may use Pusher's format instead (hr_webhook_format: a Pusher
 * app's webhook_url for its namespace): events written as Pusher writes
 * them, batches {"time_ms":..,"events":[...]} signed with X-Pusher-Key and
 * X-Pusher-Signature (hex HMAC-SHA256(app secret, body)), queued apart from
 * Herald-format events.
 *
 * member_added / member_removed are per user: hr_webhook_member counts a
 * user's connections in a channel's presence across the node's workers
 * (the first adds, the last removes). */
#ifndef HERALD_BACKEND_WEBHOOK_H
#define HERALD_BACKEND_WEBHOOK_H

#include "core/buf.h"
#include "core/common.h"

typedef enum hr_webhook_event {
    HR_WH_CHANNEL_OCCUPIED = 0,
    HR_WH_CHANNEL_VACATED,
    HR_WH_MEMBER_ADDED,
    HR_WH_MEMBER_REMOVED,
    HR_WH_CLIENT_CONNECTED,
    HR_WH_CLIENT_DISCONNECTED,
    HR_WH_PUBLICATION,
    HR_WH_NEVENTS
} hr_webhook_event;

#define HR_WEBHOOK_EVENT_NAMES                                                                                   \
    "channel_occupied, channel_vacated, member_added, member_removed, client_connected, client_disconnected, " \
    "publication"

enum hr_webhook_err {
    HR_WEBHOOK_E_INVALID = -700,   /* no URL anywhere, or a bad option (hr_webhook_start) */
    HR_WEBHOOK_E_START = -701,     /* the loop, thread or HTTP client could not be made */
};

/* Pusher's webhook events as Herald's (a client_event is a client's
 * publication): the mask of a comma-separated list ("" = all of them), or
 * -1 for an unknown name. */
int64_t hr_webhook_pusher_mask(const char *list);

/* The event mask of names[0..n): NULL, or the first unknown name. */
const char *hr_webhook_events_mask(char *const *names, size_t n, uint32_t *mask);
const char *hr_webhook_event_name(int ev);

/* How a route's events and batches are written. */
typedef enum hr_webhook_format {
    HR_WH_FORMAT_HERALD = 0,   /* {"events":[...]} signed with X-Herald-Signature (docs/backend.md) */
    HR_WH_FORMAT_PUSHER,       /* Pusher's: {"time_ms":..,"events":[{"name":..,"channel":..}]}, X-Pusher-Key and
                                  X-Pusher-Signature = hex HMAC-SHA256(secret, body) (docs/pusher.md) */
} hr_webhook_format;

/* The channel name a Pusher-format event carries, appended to out, for a
 * Herald channel (false: the event is not sent, e.g. a user channel). */
typedef bool (*hr_webhook_name_fn)(const void *ctx, const char *ch, size_t len, hr_buf *out);

/* A namespace's override ([namespace.NAME] webhook_url / webhook_events,
 * or a Pusher app's webhook_url / webhook_events for its namespace). */
typedef struct hr_webhook_route {
    const char *ns;            /* namespace name (channels "ns:..." and "ns.") */
    const char *url;           /* "" or NULL: the global url */
    uint32_t events;           /* events mask for its channels */
    hr_webhook_format format;
    const char *secret;        /* PUSHER: the app's secret (HERALD: the global webhook.secret) */
    const char *key;           /* PUSHER: X-Pusher-Key */
    hr_webhook_name_fn name;   /* PUSHER: the channel's name on the wire */
    const void *name_ctx;
} hr_webhook_route;

typedef struct hr_webhook_opts {
    const char *url;           /* webhook.url ("" = none; routes may still have theirs) */
    const char *secret;        /* webhook.secret ("" = unsigned) */
    uint32_t events;           /* webhook.events as a mask (1u << hr_webhook_event) */
    const hr_webhook_route *routes;
    size_t nroutes;
    uint32_t batch_max_events;
    uint64_t batch_max_delay_ms;
    uint64_t timeout_ms;
    uint64_t max_queued;
    uint64_t max_queued_bytes; /* event JSON held, waiting and in batches */
    uint64_t retry_min_ms;
    uint64_t retry_max_ms;
    uint64_t flush_ms;         /* hr_webhook_stop: longest wait for the queues to empty */
} hr_webhook_opts;

typedef struct hr_webhook hr_webhook;

/* What hr_webhook_emit sends: the members that apply (NULL / 0 = absent). */
typedef struct hr_webhook_ev {
    hr_webhook_event type;
    const char *channel;
    size_t channel_len;
    const char *user;
    const char *client;
    const char *transport;     /* client_*: websocket, sse, http-stream, long-poll, raw */
    const char *remote;        /* client_connected: the client's address */
    const char *reason;        /* client_disconnected */
    int code;                  /* client_disconnected: the close code */
    int64_t duration_ms;       /* client_disconnected: how long it was connected */
    const char *info;          /* JSON text (member_*: the connection's info) */
    const char *data;          /* publication: JSON text */
    size_t data_len;
    uint64_t offset;           /* publication */
    const char *epoch;         /* publication */
    uint64_t time_ms;          /* wall clock of the event; 0 = now */
} hr_webhook_ev;

/* Start the sender (its thread). 0 and *out, or HR_WEBHOOK_E_*. The copies
 * it needs are taken; o's strings may go afterwards. */
int hr_webhook_start(const hr_webhook_opts *o, hr_webhook **out);
/* Whether the event goes anywhere for this channel (channel NULL: a client
 * event, the global url and events). Cheap; call before building anything. */
bool hr_webhook_wants(const hr_webhook *wh, hr_webhook_event ev, const char *channel, size_t len);
/* Queue an event (any thread; never blocks on the backend). Ignored when
 * not wanted. */
void hr_webhook_emit(hr_webhook *wh, const hr_webhook_ev *ev);
/* A connection of `user` entered (add) or left a channel's presence: the
 * user's first connection in the channel on this node emits member_added,
 * its last member_removed. Anonymous users ("") are not members. */
void hr_webhook_member(hr_webhook *wh, const char *channel, size_t len, const char *user, const char *client,
                       const char *info, bool add);
/* channel_occupied / channel_vacated: one call per transition, from the
 * hub's occupancy callback (time_ms: when it was decided, 0 = now). */
void hr_webhook_occupancy(hr_webhook *wh, const char *channel, size_t len, bool occupied, uint64_t time_ms);

/* ---- client_connected / client_disconnected, for every front end ---- */

/* What a connection keeps for its client_disconnected (allocated only when
 * that event is wanted; NULL otherwise). */
typedef struct hr_webhook_conn hr_webhook_conn;

/* Who a connection is (client events). */
typedef struct hr_webhook_who {
    const char *client;
    const char *user;
    const char *transport;
} hr_webhook_who;

/* The connection completed its connect: client_connected (remote: the
 * client's address, may be NULL). Returns the state for
 * hr_webhook_disconnected, or NULL when client_disconnected is not wanted. */
hr_webhook_conn *hr_webhook_connected(hr_webhook *wh, const hr_webhook_who *who, const char *remote);
/* Why the connection ends, when the server ends it (the first call counts;
 * c may be NULL). */
void hr_webhook_closing(hr_webhook_conn *c, int code, const char *reason);
/* The connection is gone: client_disconnected with the code and reason of
 * hr_webhook_closing, else these; frees c (NULL is fine). */
void hr_webhook_disconnected(hr_webhook *wh, hr_webhook_conn *c, const hr_webhook_who *who, int code,
                             const char *reason);

typedef struct hr_webhook_stats {
    uint64_t queued;           /* events waiting or in a batch being sent */
    uint64_t queued_bytes;     /* their JSON bytes */
    uint64_t sent;             /* events the backend accepted (2xx) */
    uint64_t failed_attempts;  /* POSTs that failed and were retried */
    uint64_t dropped;          /* events dropped from a full queue */
    uint64_t rejected;         /* events the backend refused (4xx other than 429) */
    char last_error[128];      /* "" or the last failure ("HTTP 500", "timeout", ...) */
} hr_webhook_stats;

void hr_webhook_get_stats(hr_webhook *wh, hr_webhook_stats *out);
/* Flush for up to flush_ms (batches no longer wait for batch_max_delay),
 * stop the thread, log what was lost, free. NULL is fine. Call once no
 * worker emits any more. */
void hr_webhook_stop(hr_webhook *wh);

#endif
