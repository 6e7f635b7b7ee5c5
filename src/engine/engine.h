/* engine.h - the engine interface: where channel state lives (offsets,
 * epochs, history, presence) and how publications reach every node.
 *
 * Asynchronous by contract: every operation reports through a callback,
 * which the memory engine calls before returning and a network engine
 * (Redis) will call later on the calling worker's loop. Callers must not
 * assume either. The engine hands every publication - from this node or,
 * for a clustered engine, from any node - to the hub through `deliver`, in
 * the channel's publish order. */
#ifndef HERALD_ENGINE_ENGINE_H
#define HERALD_ENGINE_ENGINE_H

#include "hub/pub.h"

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

typedef void (*hr_publish_cb)(void *ud, int err, uint64_t offset, const char *epoch);
typedef void (*hr_history_cb)(void *ud, int err, const hr_history *h);
typedef void (*hr_presence_cb)(void *ud, int err, const hr_presence *p);
typedef void (*hr_done_cb)(void *ud, int err);
/* The hub's entry point for publications, called in per-channel order, from
 * any thread (memory engine: the publisher's thread, under the channel lock). */
typedef void (*hr_deliver_fn)(void *hub, hr_pub *pub);

typedef struct hr_engine hr_engine;

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
} hr_engine_vt;

struct hr_engine {
    const hr_engine_vt *vt;
    hr_deliver_fn deliver;
    void *hub;
};

hr_engine *hr_engine_memory_new(hr_deliver_fn deliver, void *hub);

#endif
