/* hub.h - channels and subscriptions: which connection on which worker wants
 * which channel, and the fan-out of publications to them.
 *
 * Global part (shared by workers): the engine, and an interest registry
 * (channel -> bit mask of workers with local subscribers) that tells the
 * engine's deliver callback which worker inboxes a publication must reach.
 * Per-worker part (hr_whub): the inbox (a mutex-guarded queue swapped out in
 * one step, plus the worker's eventfd), and the map channel -> local
 * subscriptions. A publication reaching a worker is encoded at most once per
 * wire format (hr_enc_cache) and the same bytes are queued to every local
 * subscriber of that format.
 *
 * Occupancy: a channel is occupied while it has a subscriber anywhere and
 * vacated when the last one goes. The registry decides a node's transitions
 * under its shard lock (mask 0 -> non-zero, non-zero -> 0), on subscribe and
 * unsubscribe only, never per delivery; with a clustered engine the engine
 * decides the cluster's transitions from the node's (engine `occupancy`
 * hook). Either way each transition reaches hr_hub_set_occupancy_cb's
 * callback exactly once. Pattern subscriptions occupy nothing.
 *
 * The hub knows nothing of transports or protocols: a subscriber is an
 * hr_client with an on_pub callback. */
#ifndef HERALD_HUB_HUB_H
#define HERALD_HUB_HUB_H

#include "core/loop.h"
#include "core/pool.h"
#include "engine/engine.h"
#include "engine/pub.h"

#define HR_MAX_WORKERS 64
#define HR_ENC_SLOTS 18

/* Slots of hr_enc_cache: one per wire format (protocol encoding x framing).
 * A WebSocket payload slot is always followed by its two WebSocket framings
 * (plain, then compressed): hr_ws_send_shared(..., payload_slot) fills
 * payload_slot+1 and payload_slot+2. */
enum hr_enc_slot {
    HR_ENC_NATIVE_JSON = 0,        /* native protocol JSON push payload */
    HR_ENC_NATIVE_JSON_WS,         /* ... as a WebSocket text frame */
    HR_ENC_NATIVE_JSON_WS_DEFLATE, /* ... as a compressed WebSocket text frame */
    HR_ENC_RAW,                    /* raw mode (/ws/raw): the publication's data, nothing around it */
    HR_ENC_RAW_WS,                 /* ... as a WebSocket text frame */
    HR_ENC_RAW_WS_DEFLATE,         /* ... as a compressed WebSocket text frame */
    HR_ENC_NATIVE_MSGPACK,         /* native protocol MessagePack push payload */
    HR_ENC_NATIVE_MSGPACK_WS,      /* ... as a WebSocket binary frame */
    HR_ENC_NATIVE_MSGPACK_WS_DEFLATE,
    HR_ENC_SSE,                    /* Server-Sent Events (/sse): the event's shared lines, "data: ...\n\n"
                                      (each stream adds its own id line); no WebSocket framings follow.
                                      A run's slot (hr_run): every event with the id line of a stream of
                                      that one channel, "id: E:N\n" + these lines (sse.c) */
    HR_ENC_SSE_ENVELOPE,           /* ... with ?envelope=1: data {"channel":C,"offset":N,"data":D} */
    HR_ENC_PUSHER,                 /* Pusher protocol (/app/KEY): {"event":E,"channel":C,"data":D} */
    HR_ENC_PUSHER_WS,              /* ... as a WebSocket text frame */
    HR_ENC_PUSHER_WS_DEFLATE,      /* ... as a compressed WebSocket text frame */
    HR_ENC_PUSHER_HERALD,          /* ... with "herald":{"offset","epoch"}, for subscriptions that asked (docs/pusher.md) */
    HR_ENC_PUSHER_HERALD_WS,
    HR_ENC_PUSHER_HERALD_WS_DEFLATE,
    HR_ENC_PUSHER_EXCLUDE,         /* not an encoding: the socket_id the publication is not for (Pusher's
                                      exclusion), read once per worker with HR_ENC_PUSHER; not counted */
};
_Static_assert(HR_ENC_PUSHER_EXCLUDE + 1 == HR_ENC_SLOTS, "HR_ENC_SLOTS must count enum hr_enc_slot");

typedef struct hr_hub hr_hub;
typedef struct hr_whub hr_whub;
typedef struct hr_client hr_client;
typedef struct hr_sub hr_sub;
typedef struct hr_local_chan hr_local_chan;

/* Encodings of one publication, made on first need, for one worker. */
typedef struct hr_enc_cache {
    struct hr_sbuf *slot[HR_ENC_SLOTS];
} hr_enc_cache;

/* A run: n (>= 2) publications (HR_PUB_MESSAGE, one channel, offsets
 * increasing) fanned out together, each with its encoding cache, and the
 * run's own encodings: slot[i] is the concatenation of every publication's
 * slot-i bytes in order (one buffer, queued to a subscriber as one entry),
 * made on first need by the front end and released by the hub. */
typedef struct hr_run {
    const hr_pub *const *pubs;
    hr_enc_cache *caches;
    uint32_t n;
    struct hr_sbuf *slot[HR_ENC_SLOTS];
} hr_run;

typedef struct hr_client_vt {
    /* A publication / join / leave for subscription `sub`. */
    void (*on_pub)(hr_client *c, hr_sub *sub, const hr_pub *pub, hr_enc_cache *cache);
    /* Optional: a whole run for `sub`, which has none of its publications
     * yet. true: handled exactly as on_pub one by one would have (the same
     * bytes queued, the same limits applied); false: nothing done, the hub
     * calls on_pub for each publication. */
    bool (*on_run)(hr_client *c, hr_sub *sub, hr_run *run);
    /* A server command (HR_PUB_UNSUBSCRIBE with the client's matching
     * subscription, or HR_PUB_DISCONNECT with sub NULL) addressed to this
     * client. It may unsubscribe and start closing; the hub does not touch
     * c or sub afterwards. */
    void (*on_command)(hr_client *c, hr_sub *sub, const hr_pub *cmd);
    /* Optional: whether a server command's user target names this client
     * (NULL: its user, exactly). A front end whose users live in a scope of
     * their own (a Pusher app's signed-in users) matches only its scoped form. */
    bool (*matches_user)(const hr_client *c, const char *user);
} hr_client_vt;

/* A client id as shown (replies, API answers, logs, hooks): 32 hex digits
 * (16 random bytes) and the NUL; a Pusher socket id ("N.M") is shorter. */
#define HR_CLIENT_ID_SIZE 33
#define HR_CLIENT_ID_BYTES 16

/* How a client's id bytes are shown. */
enum { HR_CLIENT_ID_HEX = 0, HR_CLIENT_ID_PUSHER = 1 };

/* Embedded first in each front end's per-connection state: 72 bytes (the
 * raw client: 104 bytes, from the worker's pools). */
struct hr_client {
    const hr_client_vt *vt;
    hr_whub *wh;
    hr_sub *subs;                 /* this client's subscriptions */
    char *user;                   /* "" = anonymous (shared, see hr_client_set_user) */
    hr_client *wnext, *wprev;     /* in the worker's client list (server commands) */
    uint32_t nsubs;               /* at most channels.max_subscriptions */
    uint8_t id_bin[HR_CLIENT_ID_BYTES]; /* the id, binary: read it with hr_client_id */
    uint8_t id_kind;              /* HR_CLIENT_ID_HEX, or _PUSHER: two 32-bit numbers (host order) first */
    bool closing;                 /* the front end's own flag (it is closing the client), in what would be padding */
};

/* A client id formatted, by value: hr_client_id(c).s lives to the end of
 * the full expression that calls it; keep the struct to hold it longer. */
typedef struct hr_client_idstr {
    char s[HR_CLIENT_ID_SIZE];
} hr_client_idstr;
hr_client_idstr hr_client_id(const hr_client *c);

/* Give a client a new random id (16 bytes, shown as 32 hex digits). */
void hr_client_id_random(hr_client *c);
/* Set a client's id from its 32-hex-digit form (one made by
 * hr_client_id_random and shown before); HR_ERR_INVALID if it is not one. */
int hr_client_id_parse(hr_client *c, const char *hex);
/* Set a Pusher socket id, shown "a.b". */
void hr_client_id_pusher(hr_client *c, uint32_t a, uint32_t b);

/* Set (replacing) or free a client's user. The anonymous user "" is one
 * shared constant, not a copy per client (a 32-byte allocation less for
 * each anonymous connection). */
void hr_client_set_user(hr_client *c, const char *user);
void hr_client_free_user(hr_client *c);

/* One per subscription of every subscriber: 64 bytes (from the worker's
 * pools), the small fields sharing the last word. */
struct hr_sub {
    hr_sub *chan_next, *chan_prev;  /* in the local channel (or the pattern list) */
    hr_sub *client_next;            /* in the client's list */
    hr_client *client;
    union {
        hr_local_chan *lc;          /* a channel's subscription (is_pattern false) */
        char *pattern;              /* a pattern subscription's pattern (is_pattern true) */
    };
    uint64_t offset;                /* last offset delivered (skip older ones) */
    void *hold;                     /* the front end's while its subscribe is answered (ops.h hr_op_hold) */
    uint32_t pattern_len;           /* channel names are at most 65535 bytes */
    bool presence;                  /* in the channel's presence set */
    bool gone;                      /* unsubscribed during a fan-out; freed after it */
    bool is_pattern;                /* which member of the union is set */
};

struct hr_whub {
    hr_hub *hub;
    int id;
    hr_loop *loop;
    /* inbox */
    void *inbox_mu;                 /* pthread_mutex_t */
    hr_pub **inbox;
    size_t inbox_n, inbox_cap;
    /* local subscriptions */
    hr_local_chan **buckets;
    size_t nbuckets, nchans;
    hr_sub *patterns;               /* pattern subscriptions */
    size_t npatterns;
    hr_client *clients;             /* every client of the worker */
    size_t nclients;
    /* stats: one writer (this worker, relaxed stores, hr_whub_count), read by /metrics */
    _Atomic uint64_t delivered;     /* publications (and join/leave) queued to clients */
    _Atomic uint64_t run_delivered; /* ... of them, those queued within a run's one entry (hr_run) */
    _Atomic uint64_t encoded;       /* encodings made for them: once per publication and form, not per client */
    _Atomic uint64_t subscriptions; /* now, patterns included */
    _Atomic uint64_t slow_disconnects; /* clients ended as slow consumers (3008) */
    _Atomic uint64_t published[2];  /* publications accepted for the engine, by hr_actor_kind (client, server API) */
    uint64_t sample_us;             /* this turn's oldest stamped publication fanned out (0 = none), for
                                       the worker's publish-to-write sample once its writes are done */
    /* subscriptions removed while a fan-out walks the lists: freed after it */
    int fanning;
    hr_sub *dead_subs;
    /* tasks posted by other workers (hr_hub_post), guarded by inbox_mu */
    struct hr_task *tasks;
    size_t tasks_n, tasks_cap;
    /* this worker's object pools (core/pool.h): its subscriptions, and the
     * upper layers' per-connection structs (connections, WebSocket state,
     * raw clients); used on this worker's thread only */
    hr_pools pools;
};

/* Add n to one of a worker's counters (only its own thread writes them). */
static inline void hr_whub_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* One channel occupancy transition (see hr_hub_set_occupancy_cb). */
typedef struct hr_occupancy {
    const char *channel;            /* not NUL-terminated; valid during the call only */
    size_t len;
    bool occupied;                  /* true: first subscriber; false: the last one is gone */
    uint64_t time_ms;               /* wall clock when it was decided (Redis' clock with the Redis engine) */
} hr_occupancy;
typedef void (*hr_occupancy_fn)(void *ud, const hr_occupancy *ev);

struct hr_hub {
    hr_engine *engine;
    struct hr_limits *limits;       /* abuse limits (ops/limits.c), set by the server; may be NULL */
    int nworkers;
    hr_whub *workers;
    void *shards;                   /* interest registry */
    _Atomic uint64_t pattern_mask;  /* workers with pattern subscriptions */
    uint32_t sample_every;          /* stamp 1 in this many publications with hub_us (0 = none); set before
                                       the workers start (metrics.publish_sample) */
    hr_occupancy_fn occupancy_fn;   /* set at start-up (hr_hub_set_occupancy_cb) */
    void *occupancy_ud;
    _Atomic uint64_t occupied, vacated; /* transitions reported (/api/info) */
};

hr_hub *hr_hub_new(int nworkers);
/* Replace the engine (the memory engine hr_hub_new made) before the
 * workers start; the hub owns it. */
void hr_hub_set_engine(hr_hub *hub, hr_engine *e);
/* The engines' deliver callback (engine.h hr_deliver_fn) for this hub. */
void hr_hub_deliver(void *hub, hr_pub *pub);
/* The engines' deliver_batch callback (engine.h hr_deliver_batch_fn). */
void hr_hub_deliver_batch(void *hub, hr_pub *const *pubs, size_t n);
/* Who hears of channel occupancy transitions: fn(ud, ev) exactly once per
 * transition (node-wide with a single-node engine, cluster-wide with the
 * Redis engine), for concrete channels only (pattern subscriptions occupy
 * nothing). Set it before the workers start. fn is called from whichever
 * thread made the transition - the subscribing or unsubscribing worker,
 * under the registry's shard lock (memory engine), or the Redis engine's
 * thread when Redis answered - so it must be cheap and thread-safe: queue
 * the event and return; it must not call into the hub. Per channel, calls
 * come in transition order on one node. */
void hr_hub_set_occupancy_cb(hr_hub *hub, hr_occupancy_fn fn, void *ud);
/* Bind worker i's part to its loop (call before the worker starts). */
hr_whub *hr_hub_worker(hr_hub *hub, int i, hr_loop *loop);
void hr_hub_free(hr_hub *hub);

/* Subscribe a client to a channel (or a pattern). The caller has validated
 * the name and permissions. Returns the subscription (owned by the hub,
 * freed by unsubscribe), or NULL when the channel already has
 * max_subscribers subscribers over all workers (0 = no limit; patterns are
 * not counted). */
hr_sub *hr_hub_subscribe(hr_client *c, const char *channel, size_t len, bool pattern, uint64_t max_subscribers);
/* Subscribers of a channel over all workers (patterns not counted). */
uint64_t hr_hub_subscribers(hr_hub *hub, const char *channel, size_t len);
hr_sub *hr_hub_find_sub(hr_client *c, const char *channel, size_t len);
/* One channel of hr_hub_top_channels: its name (copied, truncated to fit)
 * and its subscribers over this node's workers. */
typedef struct hr_hub_chan_count {
    char name[256];
    uint64_t subscribers;
} hr_hub_chan_count;
/* The n channels of this node with the most subscribers, most first, into
 * out[0..n): how many there are (at most n), and *nchannels (may be NULL)
 * the channels and *nsubs the subscriptions counted. Walks the whole
 * registry shard by shard (the admin UI's statistics, once per interval). */
size_t hr_hub_top_channels(hr_hub *hub, hr_hub_chan_count *out, size_t n, uint64_t *nchannels, uint64_t *nsubs);
/* Each channel of this node with subscribers whose name starts with
 * prefix[0..plen): fn(ud, name, len, subscribers over this node's workers),
 * called under a registry shard lock (fn only copies; it must not call the
 * hub). Walks the whole registry (the Pusher HTTP API's channel list). */
typedef void (*hr_hub_chan_fn)(void *ud, const char *name, size_t len, uint64_t subscribers);
void hr_hub_each_channel(hr_hub *hub, const char *prefix, size_t plen, hr_hub_chan_fn fn, void *ud);
/* The channel (or pattern) a subscription is for. */
const char *hr_hub_sub_channel(const hr_sub *s, size_t *len);
void hr_hub_unsubscribe(hr_client *c, hr_sub *sub);
void hr_hub_unsubscribe_all(hr_client *c);

/* Clients register with their worker's hub for server commands. */
void hr_hub_client_add(hr_client *c);
void hr_hub_client_remove(hr_client *c);

/* Server commands, reaching every worker through the inboxes: unsubscribe
 * the matching clients from `channel` (exactly that channel or pattern), or
 * disconnect them. A client matches when user (if non-empty) equals its
 * user and client_id (if non-empty) equals its id; at least one must be
 * given. Asynchronous: done when each worker next processes its inbox. */
void hr_hub_unsubscribe_clients(hr_hub *hub, const char *channel, size_t len, const char *user, const char *client_id,
                                int code, const char *reason);
void hr_hub_disconnect_clients(hr_hub *hub, const char *user, const char *client_id, int code, const char *reason);
/* The reason text of a command publication. */
const char *hr_pub_reason(const hr_pub *cmd);

/* Tasks: run fn(wh, arg) on worker `worker`'s thread, in posting order
 * (per poster), when that worker next processes its inbox (through the
 * same queue lock and eventfd as publications). A task still queued when
 * the hub is freed is called with wh == NULL: it must only release arg.
 * Used to carry a command frame to the worker that owns a session, and a
 * "poll ready" wake-up to the worker that holds a waiting request. */
typedef void (*hr_task_fn)(hr_whub *wh, void *arg);
typedef struct hr_task {
    hr_task_fn fn;
    void *arg;
} hr_task;
void hr_hub_post(hr_hub *hub, int worker, hr_task_fn fn, void *arg);

/* Process the worker's inbox (from the loop's wake-up). */
void hr_hub_process_inbox(hr_whub *wh);

/* Local subscriber count of a channel on this worker, and hub-wide counts. */
size_t hr_hub_local_subscribers(hr_whub *wh, const char *channel, size_t len);

#endif
