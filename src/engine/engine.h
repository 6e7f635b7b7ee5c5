/* engine.h - the engine interface: where channel state lives (offsets,
 * epochs, history, presence) and how publications reach every node. Two
 * tables: storage (hr_engine_vt, every engine) and cluster messaging
 * (hr_cluster_vt: node-wide interest, server commands, nodes, routing of
 * HTTP emulation sessions), which only an engine shared by several nodes
 * provides.
 *
 * Asynchronous by contract: every operation reports through a callback,
 * which the memory engine calls before returning and the Redis engine
 * calls later on the calling worker's loop (through the hub's task queue:
 * `post`, with the worker named by hr_engine_worker). Callers must not
 * assume either. The engine hands every publication - from this node or,
 * for a clustered engine, from any node - to the hub through `deliver`, in
 * the channel's publish order. */
#ifndef HERALD_ENGINE_ENGINE_H
#define HERALD_ENGINE_ENGINE_H

#include "engine/pub.h"

/* Channel options resolved from the namespace. */
typedef struct hr_chan_opts {
    uint32_t history_size;     /* 0 = no history (offsets still advance) */
    uint64_t history_ttl_ms;   /* 0 = keep until pushed out by size */
    bool presence;
    bool join_leave;
    uint64_t idempotency_window_ms; /* how long a publish idempotency key is remembered */
} hr_chan_opts;

/* Most idempotency keys remembered per channel; past it the oldest is
 * forgotten early. Longest key accepted. */
#define HR_IDEM_MAX_KEYS 10000
#define HR_IDEM_MAX_KEY_LEN 128

typedef struct hr_history_query {
    bool has_since;            /* only publications after (since_epoch, since_offset) */
    uint64_t since_offset;
    const char *since_epoch;   /* NUL-terminated; NULL or "" = any epoch */
    int64_t limit;             /* max publications returned; 0 = just the position; <0 = all kept */
    bool reverse;              /* newest first */
    bool has_before;           /* only publications before (before_epoch, before_offset) */
    uint64_t before_offset;    /* exclusive upper bound */
    const char *before_epoch;  /* NUL-terminated; NULL or "" = any epoch */
    bool has_since_time;       /* only publications with time_ms >= since_time_ms */
    uint64_t since_time_ms;    /* unix milliseconds */
} hr_history_query;

typedef struct hr_history {
    uint64_t offset;           /* the channel's current (last assigned) offset */
    char epoch[HR_EPOCH_LEN + 1];
    hr_pub **pubs;             /* valid during the callback only */
    size_t n;
    /* true when the publications returned with has_since are exactly every
     * publication after since_offset, in the same epoch (nothing was trimmed
     * and the limit did not cut the list) */
    bool complete;
} hr_history;

/* Bytes a publication takes in a history or recovery reply (an upper
 * estimate of its JSON: offset, data, info). */
size_t hr_pub_reply_size(const hr_pub *p);
/* How many of h's publications, from the first, fit in max_bytes of reply
 * (force_one: at least one, whatever its size); *bytes (if not NULL) gets
 * their estimated size. Replies are sized before they are built. */
size_t hr_history_fit(const hr_history *h, size_t max_bytes, bool force_one, size_t *bytes);

/* The part of a channel's kept publications a query asks for: indexes
 * [lo, hi) of the log (oldest first, offsets ascending, at(ctx, i) the
 * i-th), then at most q->limit of them from lo (forward) or from hi - 1
 * down (reverse). Both engines page with it, so they agree. */
typedef struct hr_history_sel {
    size_t lo, hi;             /* the range matched (before the limit) */
    size_t first, n;           /* what to return: from index first (forward) or hi - 1 (reverse), n of them */
    bool complete;             /* as hr_history.complete */
} hr_history_sel;
typedef const hr_pub *(*hr_history_at)(const void *ctx, size_t i);
hr_history_sel hr_history_select(const hr_history_query *q, const char *epoch, uint64_t last, size_t count,
                                 hr_history_at at, const void *ctx);

typedef struct hr_presence_entry {
    const char *client;        /* client id */
    const char *user;          /* "" for anonymous */
    const char *info;          /* JSON object text or NULL */
} hr_presence_entry;

typedef struct hr_presence {
    hr_presence_entry *entries; /* valid during the callback only */
    size_t n;
    size_t users;              /* distinct users */
} hr_presence;

/* What an engine holds on this node (/api/info). */
typedef struct hr_engine_stats {
    uint64_t history_bytes;      /* bytes of the publications held in history */
    uint64_t history_evictions;  /* publications evicted by channels.max_history_bytes */
    uint64_t channels;           /* channels known to this node's engine */
    uint64_t presence_entries;   /* presence entries held (every channel's clients together) */
    uint64_t disk_bytes;         /* bytes of the durable log's segments (0 without --data-dir) */
    uint64_t disk_syncs;         /* fdatasync calls on them so far */
    uint64_t disk_queued_bytes;  /* publications waiting for the log thread */
    uint64_t disk_queue_full;    /* publishes refused by engine.max_queued_bytes so far */
} hr_engine_stats;

typedef void (*hr_publish_cb)(void *ud, int err, uint64_t offset, const char *epoch);
typedef void (*hr_history_cb)(void *ud, int err, const hr_history *h);
typedef void (*hr_presence_cb)(void *ud, int err, const hr_presence *p);
typedef void (*hr_done_cb)(void *ud, int err);
/* The hub's entry point for publications, called in per-channel order, from
 * any thread (memory engine: the publisher's thread, under the channel lock). */
typedef void (*hr_deliver_fn)(void *hub, hr_pub *pub);
/* The same for publications that arrived together (one read from a
 * network engine's connection): pubs[0..n) in order, handed to each
 * worker that wants some of them at once (one queue operation and at most
 * one wake-up per worker, not one per publication). */
typedef void (*hr_deliver_batch_fn)(void *hub, hr_pub *const *pubs, size_t n);

typedef struct hr_engine hr_engine;
struct hr_redis_conn_stats;

typedef struct hr_engine_vt {
    /* Assign the next offset and the epoch to pub (which the engine then
     * references), store it in history, deliver it.
     * With an idempotency key (idem_len > 0) that was already used on this
     * channel within o->idempotency_window_ms, nothing is published and cb
     * reports the original publication's offset and epoch. */
    void (*publish)(hr_engine *e, const hr_chan_opts *o, hr_pub *pub, const char *idem_key, size_t idem_len,
                    hr_publish_cb cb, void *ud);
    /* Deliver a join/leave event (not stored, no offset). */
    void (*publish_event)(hr_engine *e, hr_pub *pub);
    void (*history)(hr_engine *e, const hr_chan_opts *o, const char *channel, size_t len, const hr_history_query *q,
                    hr_history_cb cb, void *ud);
    void (*history_remove)(hr_engine *e, const char *channel, size_t len, hr_done_cb cb, void *ud);
    void (*presence_add)(hr_engine *e, const char *channel, size_t len, const char *client, const char *user,
                         const char *info, hr_done_cb cb, void *ud);
    void (*presence_remove)(hr_engine *e, const char *channel, size_t len, const char *client, hr_done_cb cb, void *ud);
    void (*presence)(hr_engine *e, const char *channel, size_t len, hr_presence_cb cb, void *ud);
    /* Channels with history or presence, optionally filtered (NULL = all):
     * calls each(ud, name, len, offset) under no lock the caller can see. */
    void (*channels)(hr_engine *e, void (*each)(void *ud, const char *name, size_t len, uint64_t offset), void *ud);
    void (*free)(hr_engine *e);
    /* Optional, for an engine that answers later: what `channels` gives,
     * through cb (names NUL-terminated; arrays valid during the call). */
    void (*channels_async)(hr_engine *e,
                           void (*cb)(void *ud, int err, const char *const *names, const uint64_t *offsets, size_t n),
                           void *ud);
    /* Optional, for an engine that keeps channel state in this process
     * (memory): whether it holds `channel` now (the client channel-creation
     * rate counts only new ones), and what it holds (/api/info). */
    bool (*exists)(hr_engine *e, const char *channel, size_t len);
    void (*stats)(hr_engine *e, hr_engine_stats *out);
    /* Optional: shards without a connection now (GET /ready, /metrics);
     * absent: the engine has none to lose. Any thread. */
    int (*shards_down)(hr_engine *e);
    /* Optional: shard i's address and connection counters (/metrics); false
     * past the last shard. Any thread. */
    bool (*shard_stats)(hr_engine *e, int i, const char **addr, const struct hr_redis_conn_stats **st);
    /* Optional: the calling worker's loop turn ends (called on the
     * worker's thread by the server after each turn): an engine that holds
     * back a worker's publishes of one turn, to hand them on together,
     * hands them on now. */
    void (*turn_end)(hr_engine *e);
} hr_engine_vt;

/* Cluster messaging: what an engine shared by several nodes (Redis) adds to
 * storage, as a separate table (hr_engine.cluster; NULL for a single-node
 * engine such as memory). An engine that has it provides every entry.
 * What comes back from other nodes reaches this node through the hooks in
 * hr_engine (`command`, `on_session_frame`). */
typedef struct hr_cluster_vt {
    /* The hub's interest registry gained (on) or lost (!on) the channel's
     * first / last subscriber on this node. Called in order per channel,
     * from any worker, under the registry's lock: it must only queue work.
     * The engine reports the cluster-wide transitions these make through
     * the `occupancy` hook. */
    void (*interest)(hr_engine *e, const char *channel, size_t len, bool on);
    /* The same for a subscription pattern ("chat:*", "prices.>"). */
    void (*pattern_interest)(hr_engine *e, const char *pattern, size_t len, bool on);
    /* A server command (HR_PUB_UNSUBSCRIBE / HR_PUB_DISCONNECT, hub.h) for
     * the clients of every node; each node, this one included, gets it
     * back through `command`. */
    void (*broadcast)(hr_engine *e, hr_pub *cmd);
    /* The nodes sharing this engine, as a JSON array text (one object per
     * node), or NULL with err when unavailable. */
    void (*nodes)(hr_engine *e, void (*cb)(void *ud, int err, const char *json, size_t len), void *ud);
    /* Cross-node routing of HTTP emulation sessions: record (add) or forget
     * which node holds session sid; send a command frame to the node
     * holding sid (cb: 0, or HR_ERR_NOTFOUND when no live node holds it).
     * The holding node gets it through on_session_frame. */
    void (*session_register)(hr_engine *e, const char *sid, bool add);
    void (*session_send)(hr_engine *e, const char *sid, const uint8_t *frame, size_t len, hr_done_cb cb, void *ud);
} hr_cluster_vt;

/* A callback carried to a worker by the hub (see post). run is called on
 * the worker's thread with live = true, or with live = false (only to
 * release) when the hub is torn down before the worker ran it. */
typedef struct hr_engine_task {
    void (*run)(struct hr_engine_task *t, bool live);
} hr_engine_task;

struct hr_engine {
    const hr_engine_vt *vt;         /* storage */
    const hr_cluster_vt *cluster;   /* cluster messaging, or NULL (single node) */
    hr_deliver_fn deliver;
    void *hub;
    /* Set by the hub (optional): deliver for a batch; without it an engine
     * calls deliver for each publication. */
    hr_deliver_batch_fn deliver_batch;
    /* Set by the hub: run t on worker `worker`'s thread (hr_hub_post). */
    void (*post)(void *hub, int worker, hr_engine_task *t);
    /* Cluster messaging only. Set by the hub: a broadcast server command
     * reached this node. */
    void (*command)(void *hub, hr_pub *cmd);
    /* Cluster messaging only. Set by the hub: the cluster-wide occupancy of
     * a channel changed (occupied: first subscriber on any node; !occupied:
     * the last one gone), decided by the engine from this node's interest
     * on/off, at most once per cluster transition; time_ms is when it was
     * decided. Called on the engine's thread. */
    void (*occupancy)(void *hub, const char *channel, size_t len, bool occupied, uint64_t time_ms);
    const char *node_id;            /* this node's id (NULL without cluster messaging) */
    /* Cluster messaging only. Set by the owner of the HTTP emulation
     * session registry (hr_emu_registry, transport/emulation.h): a frame
     * another node routed here for session sid (called on the engine's
     * thread with session_ud). */
    void (*on_session_frame)(void *ud, const char *sid, const uint8_t *frame, size_t len);
    void *session_ud;
};

/* The worker whose thread this is (set by the server when a worker thread
 * starts), or -1 (main thread, engine thread, tests): a network engine runs
 * callbacks for -1 on its own thread. */
extern _Thread_local int hr_engine_worker;

/* Code of the disconnect sent to the subscribers of a channel whose
 * publications may have been missed (the Redis engine lost its connection
 * and got it back): reconnect and recover from history. */
#define HR_ENGINE_RESYNC_CODE 3010

hr_engine *hr_engine_memory_new(hr_deliver_fn deliver, void *hub);
/* The memory engine's node-wide history budget in bytes
 * (channels.max_history_bytes; 0 = none). Set before the workers start. */
void hr_engine_memory_set_budget(hr_engine *e, uint64_t max_history_bytes);

/* The memory engine's durable log (engine/durable.c, --data-dir). */
typedef enum hr_fsync_mode {
    HR_FSYNC_ALWAYS,   /* a publish is acknowledged after fdatasync of the batch holding it */
    HR_FSYNC_INTERVAL, /* after write(2); fdatasync every fsync_interval_ms */
    HR_FSYNC_NEVER,    /* after write(2); the kernel writes back when it likes */
} hr_fsync_mode;

typedef struct hr_durable_opts {
    const char *dir;            /* engine.data_dir */
    hr_fsync_mode fsync;
    uint64_t fsync_interval_ms;
    uint64_t segment_bytes;     /* a segment is closed once it would grow past this */
    uint64_t max_disk_bytes;    /* 0 = no bound but the disk's */
    uint64_t max_queued_bytes;  /* publications waiting to be written; 0 = no bound */
} hr_durable_opts;

/* Make the memory engine e durable: rebuild its channels (offset, epoch,
 * history, idempotency keys) from the segments in o->dir, then start the
 * log thread. Call once, after hr_engine_memory_set_budget and before any
 * publish. 0, or a negative code with err filled. */
int hr_engine_memory_open_log(hr_engine *e, const hr_durable_opts *o, char *err, size_t errlen);
/* Copy the durable log in dir to the new directory out while a server may
 * be writing it: every segment listed, each up to the length it had then
 * (herald snapshot). 0, or a negative code with err filled. */
int hr_durable_snapshot(const char *dir, const char *out, char *err, size_t errlen);
/* Parse "always" | "interval" | "never"; -1 when none of them. */
int hr_fsync_mode_parse(const char *s);

/* An engine that forwards to `inner` but runs every callback on a later
 * loop turn of the calling worker (engine/delayed.c): the memory engine
 * behaving like a network engine, to test callers' asynchronous paths
 * (server.engine = memory-delayed). Owns inner. */
hr_engine *hr_engine_delayed_new(hr_engine *inner);

/* The Redis engine (engine/redis.c). */
typedef struct hr_redis_opts {
    const char *addrs;              /* "HOST:PORT[,HOST:PORT...]": one shard each */
    const char *prefix;             /* key prefix */
    const char *node_id;            /* this node's id (random when empty) */
    const char *node_address;       /* announced address (the listen address) */
    const char *user, *password;    /* Redis AUTH (password "" or NULL = none) */
    uint64_t presence_ttl_ms;       /* presence entries expire unless refreshed */
    uint64_t node_ttl_ms;           /* node announcements expire unless refreshed */
    uint64_t connect_timeout_ms;
    uint64_t ping_interval_ms;
    uint64_t backoff_min_ms, backoff_max_ms;
    size_t max_pending;             /* per connection */
    size_t publish_batch;           /* most publications per publish script call (0 = 1) */
    size_t deliver_batch;           /* most pub/sub publications handed to the hub at once (0 = 1) */
    size_t occupancy_sweep_max;     /* a dead node's channels freed per shard and refresh (0 = 1000) */
    bool hold_publishes;            /* a worker's publishes wait for its turn's end (the caller calls vt->turn_end) */
    size_t max_reply;
    /* node statistics for the announcement (called on the engine thread) */
    void (*stats)(void *ud, uint64_t *connections, uint64_t *subscriptions);
    void *stats_ud;
} hr_redis_opts;

hr_engine *hr_engine_redis_new(const hr_redis_opts *o, hr_deliver_fn deliver, void *hub, char *err, size_t errlen);

#endif
