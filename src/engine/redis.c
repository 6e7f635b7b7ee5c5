/* redis.c - the Redis engine: many Herald nodes sharing channel state
 * (offsets, epochs, history, presence) and publications through Redis.
 * docs/scaling.md describes it for users; this is the inside view.
 *
 * Threads. The engine runs one thread with its own event loop, which owns
 * every Redis connection: one per shard (RESP3, so the same connection
 * carries commands and pub/sub). Workers never touch a socket: an engine
 * call from a worker becomes an op (allocated, arguments copied) pushed on
 * a mutex-guarded queue; the engine thread wakes, sends the op's command
 * (pipelined with every other op of that loop turn), and when the reply
 * arrives hands the op back to the calling worker through the hub's task
 * queue (engine->post), where the caller's callback runs. A worker loop
 * never blocks on Redis.
 *
 * Order. Publish is a Lua script (publish.lua below) run atomically by
 * Redis: for each publication it carries, in order, it assigns the next
 * offset, appends to the history list, remembers the idempotency key and
 * PUBLISHes the encoded publication (then trims each list it grew, once).
 * A worker queues its publishes of one loop turn together at the turn's
 * end (op_queue); the publishes of one engine loop turn to a shard share
 * script calls (up to redis.publish_batch each: one command to parse, one
 * script to enter, one reply), and their answers go back to each worker in
 * one task; any other op first sends the publishes queued before it, so
 * Redis runs everything in the order the workers queued it.
 * A node receives publications only through its SUBSCRIBE (its own too),
 * so every node sees a channel's publications in offset order; the engine
 * thread reads them without a reply tree (hr_resp_parse_message) and hands
 * what it read to the hub in batches (handover: one inbox operation per
 * worker), in the order Redis sent them, before anything else it hands
 * the workers. Node-wide
 * interest: the hub reports a channel's first and last subscriber on this
 * node (cluster->interest), queued in the same op queue as everything else, so
 * a SUBSCRIBE is written to the shard connection before any later history
 * read of that channel: a publication is then either in the history reply
 * or pushed after it (callers skip by offset what they got twice).
 *
 * Keys (P = prefix, C = channel; the {C} hash tag keeps one channel's keys
 * in one Redis Cluster slot):
 *   P:m:{C}        hash: o = last offset, e = epoch
 *   P:h:{C}        list: history, oldest first ("M<off> <epoch> <ms>\n<data>")
 *   P:i:{C}:KEY    string: offset of an idempotency key (PX = window)
 *   P:pz:{C}       zset: presence client -> expiry (ms)
 *   P:ph:{C}       hash: presence client -> "user\ninfo"
 *   P:c:C          pub/sub channel: publications and join/leave events
 *   P:nodes        hash: node id -> announcement JSON; P:nodez zset id -> expiry
 *   P:s:{SID}      string: the node holding HTTP emulation session SID
 *   P:n:NODE       pub/sub channel: command frames routed to NODE ("SID\nFRAME")
 *   P:ctl          pub/sub channel (first shard): server API unsubscribe / disconnect for every node
 *   P:o:{C}        set: the node runs ("NODE.RUN") with a subscriber of C (occupancy)
 *   P:na:MEMBER    string (every shard, PX node_ttl): that node run is alive
 *   P:on:MEMBER    set (every shard): the channels of that shard the run is in (for the sweep)
 *   P:onodes       set (every shard): the runs with a P:on set
 *
 * Occupancy. A channel's cluster-wide occupancy is the set P:o:{C} of the
 * node runs with a subscriber (member "NODE.RUN": a restarted node is a
 * new member). When the hub reports this node's first or last subscriber
 * (interest on/off), the engine runs occupancy.lua, which adds or removes
 * the member atomically and answers whether that made the set go from
 * empty to one member (occupied) or to empty (vacated), with Redis' time:
 * Redis orders two nodes' transitions, so exactly one node reports each
 * cluster transition, through the `occupancy` hook. Each run keeps
 * P:na:MEMBER (PX node_ttl, refreshed with the announcement) on every
 * shard; a member whose key is gone died: the script drops it from the set
 * it touches, and the sweep (every refresh, every shard) drops it from the
 * rest of its channels and reports the vacated ones it empties. While a
 * shard is down its transitions are not reported; when it is up again the
 * node leaves the channels it left meanwhile and joins those it holds,
 * which reports what Redis did not see.

 * Failure. While a shard's connection is down its ops fail at once
 * (HR_ERR_CLOSED: the API answers 503, clients error 100). When it comes
 * back, the engine resubscribes its channels and sends every local
 * subscriber of those channels a disconnect HR_ENGINE_RESYNC_CODE (3010,
 * reconnect and recover): what was published meanwhile is in Redis history.
 *
 * Sharding: channel -> shard by jump consistent hash of FNV-1a(channel).
 *
 * Patterns: a subscription pattern becomes a PSUBSCRIBE glob on every
 * shard. A publication then reaches the node once per matching
 * subscription (a "message" and one "pmessage" per glob); the engine keeps
 * what Redis confirmed (subscribe/psubscribe pushes, ordered with the
 * messages on the same connection) and delivers one copy. */
#include "engine/engine.h"
#include "core/hash.h"
#include "engine/redis_conn.h"
#include "core/log.h"
#include "core/random.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- scripts --------------------------------------------------------------------- */

/* A batch of publications in runs (consecutive publications to one
 * channel, in the order the workers queued them). KEYS, for each run: meta,
 * history, then the idempotency key of each of its publications that has
 * one. ARGV, for each run: pubsub channel, history size, history ttl ms,
 * epoch if new, idem window ms, count (6); then for each of its
 * publications: data, now ms, has idem (0/1) (3 each) — what a channel's
 * publications share is sent once per run, not once per publication.
 * Returns one entry per publication, in order: {offset, epoch, duplicate
 * (0/1)}, or the error that publication met (pcall: the others still go).
 * Numbers stay the decimal strings they came as: a Lua number passed to
 * redis.call is formatted with printf("%.17g"), a visible part of the
 * script's cost.
 * Each redis.call costs about a microsecond beyond the command itself, so
 * what can be done once per channel of the batch is (ch[k1]: the epoch,
 * the first and last offset taken, the history entries held back): the
 * epoch is read once; a channel's first publication takes its offset with
 * HINCRBY and goes to history with RPUSH at once (so a key of the wrong
 * type fails that publication, as it would alone), the next ones count on
 * from it and wait; after the batch one HINCRBY adds what they took, one
 * RPUSH (per 1,000) appends them, the list is trimmed (only when RPUSH says
 * it is longer than its size) and its TTL set. Nothing runs in between, so
 * no reader sees the difference; PUBLISH stays one per publication, in
 * order. */
static const char publish_lua[] =
    "local ch = {}\n"
    "local function publish(k1, k2, k3, a, r, data, now)\n"
    "  local c = ch[k1]\n"
    "  if not c then\n"
    "    local e = redis.call('hget', k1, 'e')\n"
    "    if not e then e = ARGV[r + 3]; redis.call('hset', k1, 'e', e) end\n"
    "    c = {e = e, h = k2}\n"
    "    ch[k1] = c; ch[#ch + 1] = k1\n"
    "  end\n"
    "  local e = c.e\n"
    "  if k3 then\n"
    "    local prev = redis.call('get', k3)\n"
    "    if prev then return {tonumber(prev), e, 1} end\n"
    "  end\n"
    "  local o\n"
    "  if c.o then o = c.o + 1 else o = redis.call('hincrby', k1, 'o', 1); c.first = o end\n"
    "  c.o = o\n"
    "  local os = string.format('%d', o)\n"
    "  local m = 'M' .. os .. ' ' .. e .. ' ' .. now .. '\\n' .. data\n"
    "  if ARGV[r + 1] ~= '0' then\n"
    "    if c.len then c[#c + 1] = m else c.len = redis.call('rpush', k2, m) end\n"
    "    c.size = ARGV[r + 1]; c.ttl = ARGV[r + 2]\n"
    "  end\n"
    "  if k3 then redis.call('set', k3, os, 'PX', ARGV[r + 4]) end\n"
    "  redis.call('publish', ARGV[r], m)\n"
    "  return {o, e, 0}\n"
    "end\n"
    "local out, k, a = {}, 1, 1\n"
    "while a <= #ARGV do\n"
    "  local k1, k2, r = KEYS[k], KEYS[k + 1], a\n"
    "  k = k + 2; a = a + 6\n"
    "  for j = 1, tonumber(ARGV[r + 5]) do\n"
    "    local k3\n"
    "    if ARGV[a + 2] == '1' then k3 = KEYS[k]; k = k + 1 end\n"
    "    local ok, x = pcall(publish, k1, k2, k3, a, r, ARGV[a], ARGV[a + 1])\n"
    "    if not ok then x = redis.error_reply(type(x) == 'table' and x.err or tostring(x)) end\n"
    "    out[#out + 1] = x\n"
    "    a = a + 3\n"
    "  end\n"
    "end\n"
    "for i = 1, #ch do\n"
    "  local c = ch[ch[i]]\n"
    "  if c.o and c.o > c.first then redis.call('hincrby', ch[i], 'o', string.format('%d', c.o - c.first)) end\n"
    "  for j = 1, #c, 1000 do c.len = redis.call('rpush', c.h, unpack(c, j, math.min(j + 999, #c))) end\n"
    "  if c.len then\n"
    "    if c.len > tonumber(c.size) then redis.call('ltrim', c.h, '-' .. c.size, '-1') end\n"
    "    if c.ttl ~= '0' then redis.call('pexpire', c.h, c.ttl) end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: meta, history. ARGV: epoch if new, want entries (0/1), history
 * size, lowest offset, offset bound (exclusive), lowest time ms (each "" =
 * none), limit (-1 = all), reverse (0/1). Returns {offset, epoch, entries}:
 * the entries of the newest `size` whose offset is in [lowest, bound) and
 * time >= lowest time, at most `limit` of them from the low end (or the
 * high end when reversed), oldest first. Offsets and times ascend along the
 * list, so each bound is a binary search by LINDEX (O(log n) probes) and
 * one LRANGE returns the window: a page costs its own size, not the
 * channel's history (the engine then selects from the window with the
 * memory engine's rules, hr_history_select). */
static const char history_lua[] =
    "local e = redis.call('hget', KEYS[1], 'e')\n"
    "if not e then e = ARGV[1]; redis.call('hset', KEYS[1], 'e', e) end\n"
    "local o = tonumber(redis.call('hget', KEYS[1], 'o') or '0')\n"
    "if ARGV[2] ~= '1' then return {o, e, {}} end\n"
    "local n = redis.call('llen', KEYS[2])\n"
    "local lo, hi = 0, n\n"
    "local size = tonumber(ARGV[3])\n"
    "if n > size then lo = n - size end\n"
    "local function at(i, t)\n"
    "  local a, b = string.match(redis.call('lindex', KEYS[2], i) or '', '^M(%d+) %S+ (%d+)')\n"
    "  return tonumber(t and b or a) or 0\n"
    "end\n"
    "local function bound(l, h, v, t)\n"
    "  while l < h do\n"
    "    local m = math.floor((l + h) / 2)\n"
    "    if at(m, t) < v then l = m + 1 else h = m end\n"
    "  end\n"
    "  return l\n"
    "end\n"
    "if ARGV[4] ~= '' then lo = bound(lo, hi, tonumber(ARGV[4]), false) end\n"
    "if ARGV[5] ~= '' then hi = bound(lo, hi, tonumber(ARGV[5]), false) end\n"
    "if ARGV[6] ~= '' then lo = bound(lo, hi, tonumber(ARGV[6]), true) end\n"
    "local limit = tonumber(ARGV[7])\n"
    "if limit >= 0 and hi - lo > limit then\n"
    "  if ARGV[8] == '1' then lo = hi - limit else hi = lo + limit end\n"
    "end\n"
    "if hi <= lo then return {o, e, {}} end\n"
    "return {o, e, redis.call('lrange', KEYS[2], lo, hi - 1)}\n";

/* KEYS: zset, hash. ARGV: client, value, expires at, ttl ms. */
static const char presence_add_lua[] =
    "redis.call('zadd', KEYS[1], ARGV[3], ARGV[1])\n"
    "redis.call('hset', KEYS[2], ARGV[1], ARGV[2])\n"
    "redis.call('pexpire', KEYS[1], ARGV[4])\n"
    "redis.call('pexpire', KEYS[2], ARGV[4])\n"
    "return 1\n";

/* KEYS: zset, hash. ARGV: now ms. Drops expired entries, returns the hash. */
static const char presence_get_lua[] =
    "local dead = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1])\n"
    "for i = 1, #dead do redis.call('hdel', KEYS[2], dead[i]) end\n"
    "if #dead > 0 then redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1]) end\n"
    "return redis.call('hgetall', KEYS[2])\n";

/* KEYS: nodes hash, nodes zset. ARGV: id, json, expires at, now. Returns every live node's JSON. */
static const char node_lua[] =
    "if ARGV[1] ~= '' then\n"
    "  redis.call('hset', KEYS[1], ARGV[1], ARGV[2])\n"
    "  redis.call('zadd', KEYS[2], ARGV[3], ARGV[1])\n"
    "end\n"
    "local dead = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[4])\n"
    "for i = 1, #dead do redis.call('hdel', KEYS[1], dead[i]) end\n"
    "if #dead > 0 then redis.call('zremrangebyscore', KEYS[2], '-inf', ARGV[4]) end\n"
    "return redis.call('hvals', KEYS[1])\n";

/* KEYS: the session's key. ARGV: message, control channel prefix. Returns
 * the nodes that received it (0: nobody holds the session any more). */
static const char route_lua[] =
    "local n = redis.call('get', KEYS[1])\n"
    "if not n then return 0 end\n"
    "local r = redis.call('publish', ARGV[2] .. n, ARGV[1])\n"
    "if r == 0 then redis.call('del', KEYS[1]) end\n"
    "return r\n";

/* ARGV: key pattern (P:m:*). Returns key, offset, key, offset... of the
 * channels with a publication. A SCAN of the whole key space: an
 * administrative call (/api/channels), not for hot paths. */
static const char channels_lua[] =
    "local out = {}\n"
    "local cursor = '0'\n"
    "repeat\n"
    "  local r = redis.call('scan', cursor, 'match', ARGV[1], 'count', 1000)\n"
    "  cursor = r[1]\n"
    "  for _, k in ipairs(r[2]) do\n"
    "    local o = redis.call('hget', k, 'o')\n"
    "    if o then out[#out + 1] = k; out[#out + 1] = o end\n"
    "  end\n"
    "until cursor == '0'\n"
    "return out\n";

/* KEYS: the channel's occupancy set P:o:{C}. ARGV: this run's member id,
 * on (1/0), prefix P, channel. First drops the members whose P:na key is
 * gone (a node that died), then adds or removes this member, keeping
 * P:on:MEMBER (its channels on this shard) and P:onodes (the members with
 * such a set) for the sweep. Returns {transition, Redis time in ms, stale}:
 * transition 1 when this change made the set go from empty to this member
 * alone or from it to empty; stale 1 when dropping dead members emptied the
 * set first (their vacated, reported before this change's occupied). The
 * P:na / P:on keys are named in the script, not declared: Herald shards by
 * itself, not through Redis Cluster. */
static const char occupancy_lua[] =
    "local k, me, p, c = KEYS[1], ARGV[1], ARGV[3], ARGV[4]\n"
    "local had = redis.call('scard', k)\n"
    "for _, m in ipairs(redis.call('smembers', k)) do\n"
    "  if m ~= me and redis.call('exists', p .. ':na:' .. m) == 0 then\n"
    "    redis.call('srem', k, m); redis.call('srem', p .. ':on:' .. m, c)\n"
    "  end\n"
    "end\n"
    "local stale = 0\n"
    "if had > 0 and redis.call('scard', k) == 0 then stale = 1 end\n"
    "local changed, left\n"
    "if ARGV[2] == '1' then\n"
    "  changed = redis.call('sadd', k, me); left = 1\n"
    "  redis.call('sadd', p .. ':on:' .. me, c); redis.call('sadd', p .. ':onodes', me)\n"
    "else\n"
    "  changed = redis.call('srem', k, me); left = 0\n"
    "  redis.call('srem', p .. ':on:' .. me, c)\n"
    "end\n"
    "local tr = 0\n"
    "if changed == 1 and redis.call('scard', k) == left then tr = 1 end\n"
    "local t = redis.call('time')\n"
    "return {tr, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), stale}\n";

/* ARGV: prefix P, most channels per run. The sweep every node runs on every
 * shard with its refresh: for each member of P:onodes whose P:na key is gone
 * (a node that died), remove it from its channels' occupancy sets (at most
 * the budget per run; the rest next time). Returns {Redis time in ms,
 * {channels it left empty}}: their vacated, which the node running the
 * sweep reports (the script is atomic: exactly one node finds each). */
static const char sweep_lua[] =
    "local p, budget, out = ARGV[1], tonumber(ARGV[2]), {}\n"
    "for _, n in ipairs(redis.call('smembers', p .. ':onodes')) do\n"
    "  if budget <= 0 then break end\n"
    "  if redis.call('exists', p .. ':na:' .. n) == 0 then\n"
    "    local on = p .. ':on:' .. n\n"
    "    local chans = redis.call('spop', on, budget)\n"
    "    for _, c in ipairs(chans) do\n"
    "      local k = p .. ':o:{' .. c .. '}'\n"
    "      if redis.call('srem', k, n) == 1 and redis.call('scard', k) == 0 then out[#out + 1] = c end\n"
    "    end\n"
    "    budget = budget - #chans\n"
    "    if redis.call('scard', on) == 0 then redis.call('srem', p .. ':onodes', n) end\n"
    "  end\n"
    "end\n"
    "local t = redis.call('time')\n"
    "return {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), out}\n";

enum { S_PUBLISH, S_HISTORY, S_PRES_ADD, S_PRES_GET, S_NODE, S_ROUTE, S_CHANNELS, S_OCCUPANCY, S_SWEEP, S_COUNT };
static const char *const scripts[S_COUNT] = {publish_lua, history_lua, presence_add_lua, presence_get_lua, node_lua,
                                             route_lua, channels_lua, occupancy_lua, sweep_lua};

/* How long a session's node stays recorded without being forgotten (a node
 * killed before its sessions ended leaves them; a send to one clears it). */
#define SESSION_KEY_TTL_MS (24ull * 3600 * 1000)

/* ---- ops ------------------------------------------------------------------------ */

enum op_kind {
    OP_PUBLISH,
    OP_EVENT,
    OP_HISTORY,
    OP_HISTORY_REMOVE,
    OP_PRES_ADD,
    OP_PRES_REMOVE,
    OP_PRESENCE,
    OP_INTEREST_ON,
    OP_INTEREST_OFF,
    OP_NODES,
    OP_SESS_ADD,
    OP_SESS_DEL,
    OP_SESS_SEND,
    OP_PATTERN_ON,
    OP_PATTERN_OFF,
    OP_BROADCAST,
    OP_CHANNELS,               /* the caller's op: completes when every shard's part is in */
    OP_CHANNELS_SHARD,
};

typedef struct rengine rengine;

typedef struct rop {
    hr_engine_task task;        /* first: posted to the caller's worker */
    struct rop *next;
    rengine *e;
    int kind;
    int worker;
    int shard;
    bool retried;               /* NOSCRIPT: sent once more with EVAL */
    hr_chan_opts o;
    hr_pub *pub;                /* OP_PUBLISH, OP_EVENT */
    char *channel;
    size_t len;
    char *client, *user, *info;
    char *idem;                 /* also: OP_SESS_SEND's frame */
    size_t idem_len;
    hr_history_query q;
    char since_epoch[64], before_epoch[64];
    union {
        hr_publish_cb publish;
        hr_history_cb history;
        hr_presence_cb presence;
        hr_done_cb done;
        void (*nodes)(void *ud, int err, const char *json, size_t len);
        void (*channels)(void *ud, int err, const char *const *names, const uint64_t *offsets, size_t n);
    } cb;
    /* OP_CHANNELS: the list being gathered; OP_CHANNELS_SHARD: its parent */
    struct rop *parent;
    size_t children;
    char **names;
    uint64_t *offsets;
    size_t nnames, capnames;
    void *ud;
    /* result */
    int err;
    uint64_t offset;
    char epoch[HR_EPOCH_LEN + 1];
    hr_history hist;
    hr_presence pres;
    hr_buf json;
} rop;

/* A presence entry this node owns and refreshes. */
typedef struct rpres {
    struct rpres *next;
    uint64_t hash;
    char *channel;
    size_t len;
    char *client, *value;       /* value: "user\ninfo" */
} rpres;

/* A channel this node is subscribed to (per shard set). */
typedef struct rsub {
    struct rsub *next;
    uint64_t hash;
    size_t len;
    char name[];
} rsub;

/* A set of strings (rsub nodes). */
typedef struct strset {
    rsub **b;
    size_t nb, n;
} strset;

/* A Redis glob subscribed for pattern subscriptions: "P:c:" + the pattern
 * with '>' turned into '*' (broader than the pattern where '>' or '*' meet
 * a '.', which the hub's exact match filters). */
typedef struct rglob {
    char *glob;
    size_t len;
    unsigned refs;              /* patterns mapping to it */
} rglob;

typedef struct rshard {
    rengine *e;
    int idx;
    hr_redis_conn *conn;
    rop *bhead, *btail;         /* publishes of this loop turn not sent yet (engine thread) */
    size_t bn;
    hr_pub **dq;                /* publications received, not handed to the hub yet (engine thread) */
    size_t dn, dcap;
    rsub **subs;
    size_t nsubs_buckets, nsubs;
    bool was_up;                /* up before: a later up is a reconnect (resync subscribers) */
    bool up;                    /* connected now (counted in rengine.shards_down while not) */
    /* what Redis confirmed (subscribe / psubscribe pushes, in stream order):
     * a "pmessage" is delivered only when no "message" copy and no earlier
     * matching glob's copy carries the same publication */
    strset confirmed;
    char **cglobs;
    size_t ncglobs;
    strset sessions;            /* HTTP emulation sessions of this node recorded on this shard (set again when up) */
    strset occ_left;            /* channels left while down: this node leaves their occupancy set when up */
} rshard;

struct rengine {
    hr_engine base;
    hr_loop loop;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;         /* guards the op queue, `stopping` and `shards_up` */
    pthread_cond_t up_cv;       /* a shard connected for the first time (start-up wait) */
    int shards_up;
    atomic_int shards_down;     /* shards without a connection now (engine thread writes, any reads) */
    rop *qhead, *qtail;
    bool stopping;
    bool dead;                  /* being freed: ops end without callbacks (their callers are gone) */
    rshard *shards;
    int nshards;
    char *prefix;
    size_t prefix_len;
    char node_id[40];
    char occ_id[64];            /* this run's occupancy member: "NODE.RUN" */
    char *node_address;
    uint64_t presence_ttl_ms, node_ttl_ms;
    hr_timer refresh;           /* presence refresh + node announcement */
    rpres **pres;
    size_t npres_buckets, npres;
    rglob *globs;               /* pattern subscriptions of this node (engine thread) */
    size_t nglobs;
    char sha[S_COUNT][41];
    /* engine thread: the buffer every publish script call is built in (no
     * allocation per publication) and random bytes drawn a batch at a time for new
     * channels' epochs (one getrandom per 32 publications, not each) */
    hr_buf pcmd;
    size_t batch_max;           /* redis.publish_batch */
    size_t deliver_max;         /* redis.deliver_batch */
    size_t sweep_max;           /* redis.occupancy_sweep_max: channels a sweep frees at most per shard and
                                   run (a dead node's are spread over refreshes, not one long script) */
    bool hold_publishes;        /* workers hold a turn's publishes back (the server calls turn_end) */
    uint8_t rnd[256];
    size_t rnd_left;
    void (*stats)(void *ud, uint64_t *connections, uint64_t *subscriptions);
    void *stats_ud;
};

static uint64_t fnv(const char *s, size_t n) { return hr_fnv1a(s, n); }

/* Jump consistent hash (Lamping & Veach). */
static int jump_hash(uint64_t key, int buckets)
{
    int64_t b = -1, j = 0;
    while (j < buckets) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
    }
    return (int)b;
}

static int shard_of(rengine *e, const char *ch, size_t len)
{
    return e->nshards == 1 ? 0 : jump_hash(fnv(ch, len), e->nshards);
}

static void key(hr_buf *b, rengine *e, const char *kind, const char *ch, size_t len)
{
    b->len = 0;
    hr_buf_append(b, e->prefix, e->prefix_len);
    hr_buf_append(b, ":", 1);
    hr_buf_append_str(b, kind);
    hr_buf_append(b, ":{", 2);
    hr_buf_append(b, ch, len);
    hr_buf_append(b, "}", 1);
}

/* occupancy (below the node-wide subscriptions) */
static void occ_failed(rop *op);
static void occ_answer(rop *op, const hr_resp *r);
static void occ_refresh(rengine *e, rshard *sh);
static void handover_all(rengine *e);

static void free_op(rop *op)
{
    if (op->pub) hr_pub_unref(op->pub);
    for (size_t i = 0; i < op->hist.n; i++) hr_pub_unref(op->hist.pubs[i]);
    hr_free(op->hist.pubs);
    for (size_t i = 0; i < op->pres.n; i++) {
        hr_free((char *)op->pres.entries[i].client);
        hr_free((char *)op->pres.entries[i].user);
        hr_free((char *)op->pres.entries[i].info);
    }
    hr_free(op->pres.entries);
    hr_buf_free(&op->json);
    for (size_t i = 0; i < op->nnames; i++) hr_free(op->names[i]);
    hr_free(op->names);
    hr_free(op->offsets);
    hr_free(op->channel);
    hr_free(op->client);
    hr_free(op->user);
    hr_free(op->info);
    hr_free(op->idem);
    hr_free(op);
}

/* The caller's callback, on the caller's thread. */
static void op_finish(rop *op)
{
    switch (op->kind) {
    case OP_PUBLISH:
        if (op->cb.publish) op->cb.publish(op->ud, op->err, op->offset, op->epoch);
        break;
    case OP_HISTORY:
        if (op->cb.history) {
            if (op->err) op->cb.history(op->ud, op->err, NULL);
            else op->cb.history(op->ud, 0, &op->hist);
        }
        break;
    case OP_PRESENCE:
        if (op->cb.presence) {
            if (op->err) op->cb.presence(op->ud, op->err, NULL);
            else op->cb.presence(op->ud, 0, &op->pres);
        }
        break;
    case OP_HISTORY_REMOVE:
    case OP_PRES_ADD:
    case OP_PRES_REMOVE:
    case OP_SESS_SEND:
        if (op->cb.done) op->cb.done(op->ud, op->err);
        break;
    case OP_NODES:
        if (op->cb.nodes) op->cb.nodes(op->ud, op->err, (const char *)op->json.data, op->json.len);
        break;
    case OP_CHANNELS:
        if (op->cb.channels) op->cb.channels(op->ud, op->err, (const char *const *)op->names, op->offsets, op->nnames);
        break;
    default:
        break;
    }
}

static void op_task(hr_engine_task *t, bool live)
{
    rop *op = (rop *)t;
    if (live) op_finish(op);
    free_op(op);
}

static bool has_callback(const rop *op)
{
    switch (op->kind) {
    case OP_PUBLISH: return op->cb.publish != NULL;
    case OP_HISTORY: return op->cb.history != NULL;
    case OP_PRESENCE: return op->cb.presence != NULL;
    case OP_NODES: return op->cb.nodes != NULL;
    case OP_CHANNELS: return op->cb.channels != NULL;
    case OP_HISTORY_REMOVE:
    case OP_PRES_ADD:
    case OP_PRES_REMOVE:
    case OP_SESS_SEND: return op->cb.done != NULL;
    default: return false;
    }
}

/* On the engine thread: the op is done (op->err set): back to its caller. */
static void op_complete(rop *op)
{
    rengine *e = op->e;
    handover_all(e);
    if (op->kind == OP_CHANNELS_SHARD) { /* one shard's part: the parent ends with the last */
        rop *pa = op->parent;
        if (op->err) pa->err = op->err;
        free_op(op);
        if (--pa->children == 0) op_complete(pa);
        return;
    }
    if ((op->kind == OP_INTEREST_ON || op->kind == OP_INTEREST_OFF) && op->err) occ_failed(op);
    if (!has_callback(op) || e->dead) {
        free_op(op);
        return;
    }
    if (op->worker >= 0 && e->base.post) {
        op->task.run = op_task;
        e->base.post(e->base.hub, op->worker, &op->task);
        return;
    }
    op_finish(op);
    free_op(op);
}

/* ---- received publications to the hub ---------------------------------------------- */

/* The publications received on sh so far go to the hub together: one
 * deliver_batch call (each worker's inbox taken once, one wake-up), in
 * the order Redis sent them. */
static void handover(rshard *sh)
{
    rengine *e = sh->e;
    if (!sh->dn || e->dead) return; /* being freed: r_free releases them */
    if (e->base.deliver_batch) e->base.deliver_batch(e->base.hub, sh->dq, sh->dn);
    else
        for (size_t i = 0; i < sh->dn; i++) e->base.deliver(e->base.hub, sh->dq[i]);
    hr_redis_conn_count_messages(sh->conn, sh->dn);
    for (size_t i = 0; i < sh->dn; i++) hr_pub_unref(sh->dq[i]);
    sh->dn = 0;
}

/* Every shard's received publications to the hub: at the end of each
 * engine loop turn, and before anything else the engine thread hands the
 * workers (an answer, a server command, a resync disconnect, an occupancy
 * report, a routed frame), so the workers see both in the order Redis
 * sent them. */
static void handover_all(rengine *e)
{
    for (int i = 0; i < e->nshards; i++) handover(&e->shards[i]);
}

/* ---- publications on the wire ---------------------------------------------------- */

/* "M<offset> <epoch> <time>\n<data>" (message), "J\n<info>" / "L\n<info>"
 * (join / leave). Returns a new publication or NULL. */
static hr_pub *decode_pub(const char *ch, size_t clen, const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    if (!nl || n < 1) return NULL;
    const char *body = nl + 1;
    size_t blen = n - (size_t)(body - s);
    if (s[0] == 'J' || s[0] == 'L')
        return hr_pub_new(s[0] == 'J' ? HR_PUB_JOIN : HR_PUB_LEAVE, ch, clen, "", 0, blen ? body : NULL, blen);
    if (s[0] != 'M') return NULL;
    uint64_t off = 0, tm = 0;
    const char *p = s + 1;
    while (p < nl && *p >= '0' && *p <= '9') off = off * 10 + (uint64_t)(*p++ - '0');
    if (p >= nl || *p != ' ') return NULL;
    const char *ep = ++p;
    while (p < nl && *p != ' ') p++;
    size_t elen = (size_t)(p - ep);
    if (p >= nl || elen == 0 || elen > HR_EPOCH_LEN) return NULL;
    p++;
    while (p < nl && *p >= '0' && *p <= '9') tm = tm * 10 + (uint64_t)(*p++ - '0');
    if (p != nl) return NULL;
    hr_pub *pub = hr_pub_new(HR_PUB_MESSAGE, ch, clen, body, blen, NULL, 0);
    pub->offset = off;
    pub->time_ms = tm;
    memcpy(pub->epoch, ep, elen);
    pub->epoch[elen] = '\0';
    return pub;
}

/* A server command on the wire: "K CODE CLEN ULEN\n" CHANNEL USER INFO
 * (K = 'U' unsubscribe, 'D' disconnect; lengths in bytes, info the rest). */
static void encode_command(hr_buf *b, const hr_pub *c)
{
    hr_buf_printf(b, "%c %u %u %u\n", c->kind == HR_PUB_UNSUBSCRIBE ? 'U' : 'D', (unsigned)c->code,
                  (unsigned)c->channel_len, (unsigned)c->data_len);
    hr_buf_append(b, c->channel, c->channel_len);
    hr_buf_append(b, c->data, c->data_len);
    if (c->info) hr_buf_append(b, c->info, c->info_len);
}

static hr_pub *decode_command(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    char head[64];
    if (!nl || (size_t)(nl - s) >= sizeof(head)) return NULL;
    memcpy(head, s, (size_t)(nl - s));
    head[nl - s] = '\0';
    char k;
    unsigned code, cl, ul;
    if (sscanf(head, "%c %u %u %u", &k, &code, &cl, &ul) != 4 || (k != 'U' && k != 'D')) return NULL;
    const char *p = nl + 1;
    size_t rest = n - (size_t)(p - s);
    if ((size_t)cl + ul > rest) return NULL;
    const char *info = p + cl + ul;
    size_t il = rest - cl - ul;
    if (!memchr(info, '\n', il)) return NULL; /* "CLIENT\nREASON" */
    hr_pub *c = hr_pub_new(k == 'U' ? HR_PUB_UNSUBSCRIBE : HR_PUB_DISCONNECT, p, cl, p + cl, ul, info, il);
    c->code = (uint16_t)code;
    return c;
}

/* ---- commands ---------------------------------------------------------------------- */

/* The decimal digits of v into d (24 bytes), NUL-terminated; returns their count. */
static size_t u64_dec(char d[24], uint64_t v)
{
    size_t n = hr_u64_dec(d, v);
    d[n] = '\0';
    return n;
}

static void evalsha(hr_buf *cmd, rengine *e, int script, bool eval, size_t nkeys, const char **args, const size_t *lens,
                    size_t nargs)
{
    const char *argv[16];
    size_t l[16];
    size_t n = 0;
    char nk[24];
    u64_dec(nk, nkeys);
    argv[n] = eval ? "EVAL" : "EVALSHA";
    l[n] = strlen(argv[n]);
    n++;
    argv[n] = eval ? scripts[script] : e->sha[script];
    l[n] = strlen(argv[n]);
    n++;
    argv[n] = nk;
    l[n] = strlen(nk);
    n++;
    for (size_t i = 0; i < nargs && n < 16; i++, n++) {
        argv[n] = args[i];
        l[n] = lens[i];
    }
    hr_resp_cmd(cmd, n, argv, l);
}

static void op_send(rop *op);
static rop *op_new(rengine *e, int kind, const char *ch, size_t len);

static bool is_noscript(const hr_resp *r)
{
    return r->type == HR_RESP_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static const hr_pub *list_at(const void *l, size_t i) { return ((hr_pub *const *)l)[i]; }

/* history_lua's window arguments for op's query: history size, lowest
 * offset, offset bound, lowest time (the TTL's cutoff or since_time,
 * whichever is later), limit; "" = no such bound. */
static void history_window(const rop *op, char w[5][24])
{
    const hr_history_query *q = &op->q;
    uint64_t cutoff = op->o.history_ttl_ms ? hr_wall_ms() - op->o.history_ttl_ms : 0;
    uint64_t t = q->has_since_time && q->since_time_ms > cutoff ? q->since_time_ms : cutoff;
    snprintf(w[0], 24, "%u", op->o.history_size);
    snprintf(w[1], 24, "%s", "");
    if (q->has_since) snprintf(w[1], 24, "%llu", (unsigned long long)q->since_offset + 1);
    snprintf(w[2], 24, "%s", "");
    if (q->has_before) snprintf(w[2], 24, "%llu", (unsigned long long)q->before_offset);
    snprintf(w[3], 24, "%s", "");
    if (t) snprintf(w[3], 24, "%llu", (unsigned long long)t);
    snprintf(w[4], 24, "%lld", (long long)(q->limit < 0 ? -1 : q->limit));
}

static void parse_history(rop *op, const hr_resp *r)
{
    int64_t off = 0;
    if (r->type != HR_RESP_ARRAY || r->n != 3 || hr_resp_int(&r->elem[0], &off) || !hr_resp_is_str(&r->elem[1]) ||
        r->elem[1].len > HR_EPOCH_LEN || r->elem[2].type != HR_RESP_ARRAY) {
        op->err = HR_ERR_PROTO;
        return;
    }
    hr_history *h = &op->hist;
    h->offset = (uint64_t)off;
    memcpy(h->epoch, r->elem[1].str, r->elem[1].len);
    h->epoch[r->elem[1].len] = '\0';
    const hr_resp *l = &r->elem[2];
    /* decode what is still within the TTL */
    uint64_t cutoff = op->o.history_ttl_ms ? hr_wall_ms() - op->o.history_ttl_ms : 0;
    hr_pub **all = l->n ? hr_malloc(l->n * sizeof(*all)) : NULL;
    size_t count = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!hr_resp_is_str(&l->elem[i])) continue;
        hr_pub *p = decode_pub(op->channel, op->len, l->elem[i].str, l->elem[i].len);
        if (!p) continue;
        if (p->time_ms < cutoff || (count && p->offset <= all[count - 1]->offset)) {
            hr_pub_unref(p);
            continue;
        }
        all[count++] = p;
    }
    /* keep at most history_size (the configured size may have shrunk) */
    size_t drop = count > op->o.history_size ? count - op->o.history_size : 0;
    const hr_history_query *q = &op->q;
    hr_history_sel sel = hr_history_select(q, h->epoch, h->offset, count - drop, list_at, all ? all + drop : NULL);
    size_t n = sel.n;
    h->pubs = n ? hr_malloc(n * sizeof(*h->pubs)) : NULL;
    for (size_t i = 0; i < n; i++) h->pubs[i] = hr_pub_ref(all[drop + (q->reverse ? sel.first - i : sel.first + i)]);
    h->n = n;
    h->complete = sel.complete;
    for (size_t i = 0; i < count; i++) hr_pub_unref(all[i]);
    hr_free(all);
}

static void parse_presence(rop *op, const hr_resp *r)
{
    if (r->type != HR_RESP_ARRAY && r->type != HR_RESP_MAP) {
        op->err = HR_ERR_PROTO;
        return;
    }
    size_t pairs = r->type == HR_RESP_MAP ? r->n : r->n / 2;
    hr_presence *p = &op->pres;
    p->entries = pairs ? hr_calloc(pairs, sizeof(*p->entries)) : NULL;
    for (size_t i = 0; i < pairs; i++) {
        const hr_resp *k = &r->elem[2 * i], *v = &r->elem[2 * i + 1];
        if (!hr_resp_is_str(k) || !hr_resp_is_str(v)) continue;
        const char *nl = memchr(v->str, '\n', v->len);
        size_t ul = nl ? (size_t)(nl - v->str) : v->len;
        hr_presence_entry *en = &p->entries[p->n++];
        en->client = hr_strndup(k->str, k->len);
        en->user = hr_strndup(v->str, ul);
        en->info = nl && v->len > ul + 1 ? hr_strndup(nl + 1, v->len - ul - 1) : NULL;
    }
    /* distinct users */
    for (size_t i = 0; i < p->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = strcmp(p->entries[i].user, p->entries[j].user) == 0;
        if (!seen) p->users++;
    }
}

static void on_reply(void *ud, int err, const hr_resp *r)
{
    rop *op = ud;
    if (err) {
        op->err = err;
        op_complete(op);
        return;
    }
    if (is_noscript(r) && !op->retried) {
        op->retried = true;
        op_send(op);
        return;
    }
    if (r->type == HR_RESP_ERROR) {
        hr_logf(HR_LOG_WARN, "redis_command_failed", "redis: command failed: %.*s", (int)HR_MIN(r->len, 200), r->str);
        op->err = HR_ERR_IO;
        op_complete(op);
        return;
    }
    switch (op->kind) {
    case OP_HISTORY:
        parse_history(op, r);
        break;
    case OP_PRESENCE:
        parse_presence(op, r);
        break;
    case OP_INTEREST_ON:
    case OP_INTEREST_OFF:
        occ_answer(op, r);
        break;
    case OP_CHANNELS_SHARD: {
        rop *pa = op->parent;
        size_t pre = op->e->prefix_len + 4; /* "P:m:{" ... "}" */
        if (r->type == HR_RESP_ARRAY)
            for (size_t i = 0; i + 1 < r->n; i += 2) {
                const hr_resp *k = &r->elem[i];
                int64_t off = 0;
                if (!hr_resp_is_str(k) || k->len < pre + 2 || k->str[k->len - 1] != '}' ||
                    hr_resp_int(&r->elem[i + 1], &off) || off <= 0)
                    continue;
                if (pa->nnames == pa->capnames) {
                    pa->capnames = pa->capnames ? pa->capnames * 2 : 64;
                    pa->names = hr_realloc(pa->names, pa->capnames * sizeof(*pa->names));
                    pa->offsets = hr_realloc(pa->offsets, pa->capnames * sizeof(*pa->offsets));
                }
                pa->names[pa->nnames] = hr_strndup(k->str + pre, k->len - pre - 1);
                pa->offsets[pa->nnames++] = (uint64_t)off;
            }
        break;
    }
    case OP_SESS_SEND: {
        int64_t n = 0;
        if (hr_resp_int(r, &n)) op->err = HR_ERR_PROTO;
        else if (n <= 0) op->err = HR_ERR_NOTFOUND;
        break;
    }
    case OP_NODES:
        hr_buf_append(&op->json, "[", 1);
        if (r->type == HR_RESP_ARRAY)
            for (size_t i = 0, k = 0; i < r->n; i++) {
                if (!hr_resp_is_str(&r->elem[i])) continue;
                if (k++) hr_buf_append(&op->json, ",", 1);
                hr_buf_append(&op->json, r->elem[i].str, r->elem[i].len);
            }
        hr_buf_append(&op->json, "]", 1);
        break;
    default:
        break;
    }
    op_complete(op);
}

/* ---- the node's own presence entries (refreshed) ------------------------------------- */

static uint64_t pres_hash(const char *ch, size_t len, const char *client)
{
    return fnv(ch, len) ^ (fnv(client, strlen(client)) * 31);
}

static rpres **pres_find(rengine *e, const char *ch, size_t len, const char *client, uint64_t h)
{
    if (!e->npres_buckets) return NULL;
    rpres **pp = &e->pres[h & (e->npres_buckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->channel, ch, len) == 0 &&
            strcmp((*pp)->client, client) == 0)
            return pp;
    return NULL;
}

static void pres_track(rengine *e, const rop *op, const char *value)
{
    uint64_t h = pres_hash(op->channel, op->len, op->client);
    rpres **pp = pres_find(e, op->channel, op->len, op->client, h);
    if (pp) {
        hr_free((*pp)->value);
        (*pp)->value = hr_strdup(value);
        return;
    }
    if (e->npres + 1 > e->npres_buckets) {
        size_t nb = e->npres_buckets ? e->npres_buckets * 2 : 64;
        rpres **b = hr_calloc(nb, sizeof(*b));
        for (size_t i = 0; i < e->npres_buckets; i++) {
            rpres *x = e->pres[i];
            while (x) {
                rpres *nx = x->next;
                x->next = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
                x = nx;
            }
        }
        hr_free(e->pres);
        e->pres = b;
        e->npres_buckets = nb;
    }
    rpres *x = hr_calloc(1, sizeof(*x));
    x->hash = h;
    x->channel = hr_strndup(op->channel, op->len);
    x->len = op->len;
    x->client = hr_strdup(op->client);
    x->value = hr_strdup(value);
    x->next = e->pres[h & (e->npres_buckets - 1)];
    e->pres[h & (e->npres_buckets - 1)] = x;
    e->npres++;
}

static void pres_untrack(rengine *e, const char *ch, size_t len, const char *client)
{
    rpres **pp = pres_find(e, ch, len, client, pres_hash(ch, len, client));
    if (!pp) return;
    rpres *x = *pp;
    *pp = x->next;
    e->npres--;
    hr_free(x->channel);
    hr_free(x->client);
    hr_free(x->value);
    hr_free(x);
}

static void send_pres_add(rengine *e, rshard *sh, const char *ch, size_t len, const char *client, const char *value,
                          hr_redis_reply_cb cb, void *ud, bool eval, int *rc)
{
    hr_buf k1 = HR_BUF_INIT, k2 = HR_BUF_INIT, cmd = HR_BUF_INIT;
    key(&k1, e, "pz", ch, len);
    key(&k2, e, "ph", ch, len);
    char exp[24], ttl[24];
    snprintf(exp, sizeof(exp), "%llu", (unsigned long long)(hr_wall_ms() + e->presence_ttl_ms));
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)e->presence_ttl_ms);
    const char *a[] = {(const char *)k1.data, (const char *)k2.data, client, value, exp, ttl};
    size_t l[] = {k1.len, k2.len, strlen(client), strlen(value), strlen(exp), strlen(ttl)};
    evalsha(&cmd, e, S_PRES_ADD, eval, 2, a, l, 6);
    *rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, cb, ud);
    hr_buf_free(&k1);
    hr_buf_free(&k2);
    hr_buf_free(&cmd);
}

static void on_refresh_reply(void *ud, int err, const hr_resp *r)
{
    HR_UNUSED(ud);
    if (!err && r->type == HR_RESP_ERROR) hr_logf(HR_LOG_WARN, "redis_presence_refresh_failed", "redis: presence refresh: %.*s", (int)HR_MIN(r->len, 200), r->str);
}

static void announce(rengine *e);

static void on_refresh_timer(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    rengine *e = HR_CONTAINER_OF(t, rengine, refresh);
    for (size_t b = 0; b < e->npres_buckets; b++)
        for (rpres *x = e->pres[b]; x; x = x->next) {
            rshard *sh = &e->shards[shard_of(e, x->channel, x->len)];
            if (!hr_redis_conn_up(sh->conn)) continue;
            int rc;
            /* EVAL: refreshes are few per interval and must not depend on the script cache */
            send_pres_add(e, sh, x->channel, x->len, x->client, x->value, on_refresh_reply, NULL, true, &rc);
        }
    announce(e);
    for (int i = 0; i < e->nshards; i++)
        if (hr_redis_conn_up(e->shards[i].conn)) occ_refresh(e, &e->shards[i]);
    for (int i = 0; i < e->nshards; i++) hr_redis_conn_flush(e->shards[i].conn);
    uint64_t every = HR_MIN(e->presence_ttl_ms, e->node_ttl_ms) / 3;
    hr_timer_start(&e->loop.wheel, &e->refresh, every ? every : 1000);
}

/* ---- node announcement ---------------------------------------------------------------- */

static void send_node(rengine *e, rop *op, bool eval)
{
    rshard *sh = &e->shards[0];
    hr_buf k1 = HR_BUF_INIT, k2 = HR_BUF_INIT, js = HR_BUF_INIT, cmd = HR_BUF_INIT;
    hr_buf_append(&k1, e->prefix, e->prefix_len);
    hr_buf_append_str(&k1, ":nodes");
    hr_buf_append(&k2, e->prefix, e->prefix_len);
    hr_buf_append_str(&k2, ":nodez");
    char exp[24], now[24];
    uint64_t wall = hr_wall_ms();
    snprintf(exp, sizeof(exp), "%llu", (unsigned long long)(wall + e->node_ttl_ms));
    snprintf(now, sizeof(now), "%llu", (unsigned long long)wall);
    const char *id = "";
    if (!op) { /* an announcement */
        uint64_t conns = 0, subs = 0;
        if (e->stats) e->stats(e->stats_ud, &conns, &subs);
        subs = 0; /* the channels this node receives from Redis (engine-thread state) */
        for (int i = 0; i < e->nshards; i++) subs += e->shards[i].nsubs;
        hr_buf_printf(&js, "{\"id\":\"%s\",\"address\":\"%s\",\"connections\":%llu,\"subscriptions\":%llu,"
                           "\"updated_ms\":%llu}",
                      e->node_id, e->node_address, (unsigned long long)conns, (unsigned long long)subs,
                      (unsigned long long)wall);
        id = e->node_id;
    }
    const char *a[] = {(const char *)k1.data, (const char *)k2.data, id, js.len ? (const char *)js.data : "", exp, now};
    size_t l[] = {k1.len, k2.len, strlen(id), js.len, strlen(exp), strlen(now)};
    evalsha(&cmd, e, S_NODE, eval, 2, a, l, 6);
    int rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, op ? on_reply : on_refresh_reply, op);
    if (rc && op) {
        op->err = rc;
        op_complete(op);
    }
    hr_buf_free(&k1);
    hr_buf_free(&k2);
    hr_buf_free(&js);
    hr_buf_free(&cmd);
}

static void announce(rengine *e)
{
    if (hr_redis_conn_up(e->shards[0].conn)) send_node(e, NULL, true);
}

/* ---- node-wide subscriptions ------------------------------------------------------------ */

static rsub **sub_find(rshard *sh, const char *ch, size_t len, uint64_t h)
{
    if (!sh->nsubs_buckets) return NULL;
    rsub **pp = &sh->subs[h & (sh->nsubs_buckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->name, ch, len) == 0) return pp;
    return NULL;
}

static rsub **set_find(strset *st, const char *s, size_t len)
{
    if (!st->nb) return NULL;
    uint64_t h = fnv(s, len);
    rsub **pp = &st->b[h & (st->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->name, s, len) == 0) return pp;
    return NULL;
}

static void set_add(strset *st, const char *s, size_t len)
{
    if (set_find(st, s, len)) return;
    if (st->n + 1 > st->nb) {
        size_t nb = st->nb ? st->nb * 2 : 64;
        rsub **b = hr_calloc(nb, sizeof(*b));
        for (size_t i = 0; i < st->nb; i++) {
            rsub *x = st->b[i];
            while (x) {
                rsub *nx = x->next;
                x->next = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
                x = nx;
            }
        }
        hr_free(st->b);
        st->b = b;
        st->nb = nb;
    }
    rsub *x = hr_malloc(sizeof(*x) + len);
    x->hash = fnv(s, len);
    x->len = len;
    memcpy(x->name, s, len);
    x->next = st->b[x->hash & (st->nb - 1)];
    st->b[x->hash & (st->nb - 1)] = x;
    st->n++;
}

static void set_del(strset *st, const char *s, size_t len)
{
    rsub **pp = set_find(st, s, len);
    if (!pp) return;
    rsub *x = *pp;
    *pp = x->next;
    st->n--;
    hr_free(x);
}

static void set_clear(strset *st)
{
    for (size_t i = 0; i < st->nb; i++) {
        rsub *x = st->b[i];
        while (x) {
            rsub *nx = x->next;
            hr_free(x);
            x = nx;
        }
    }
    hr_free(st->b);
    memset(st, 0, sizeof(*st));
}

/* Redis glob match for the globs Herald makes: '*' is any run of bytes,
 * everything else literal (channel names hold no other glob character). */
static bool glob_match(const char *g, size_t gl, const char *s, size_t sl)
{
    size_t gi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < sl) {
        if (gi < gl && g[gi] == '*') {
            star = gi++;
            mark = si;
        } else if (gi < gl && g[gi] == s[si]) {
            gi++;
            si++;
        } else if (star != (size_t)-1) {
            gi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (gi < gl && g[gi] == '*') gi++;
    return gi == gl;
}

static void send_sub(rengine *e, rshard *sh, const char *verb, const char *ch, size_t len)
{
    hr_buf name = HR_BUF_INIT, cmd = HR_BUF_INIT;
    hr_buf_append(&name, e->prefix, e->prefix_len);
    hr_buf_append(&name, ":c:", 3);
    hr_buf_append(&name, ch, len);
    const char *a[] = {verb, (const char *)name.data};
    size_t l[] = {strlen(verb), name.len};
    hr_resp_cmd(&cmd, 2, a, l);
    hr_redis_conn_send_noreply(sh->conn, cmd.data, cmd.len); /* down: resubscribed when it is up again */
    hr_buf_free(&name);
    hr_buf_free(&cmd);
}

/* Whether the node's interest in the channel changed (false: Redis knows already). */
static bool interest_change(rengine *e, rop *op)
{
    rshard *sh = &e->shards[op->shard];
    uint64_t h = fnv(op->channel, op->len);
    rsub **pp = sub_find(sh, op->channel, op->len, h);
    if (op->kind == OP_INTEREST_ON) {
        set_del(&sh->occ_left, op->channel, op->len);
        if (pp) return false;
        if (sh->nsubs + 1 > sh->nsubs_buckets) {
            size_t nb = sh->nsubs_buckets ? sh->nsubs_buckets * 2 : 64;
            rsub **b = hr_calloc(nb, sizeof(*b));
            for (size_t i = 0; i < sh->nsubs_buckets; i++) {
                rsub *x = sh->subs[i];
                while (x) {
                    rsub *nx = x->next;
                    x->next = b[x->hash & (nb - 1)];
                    b[x->hash & (nb - 1)] = x;
                    x = nx;
                }
            }
            hr_free(sh->subs);
            sh->subs = b;
            sh->nsubs_buckets = nb;
        }
        rsub *x = hr_malloc(sizeof(*x) + op->len);
        x->hash = h;
        x->len = op->len;
        memcpy(x->name, op->channel, op->len);
        x->next = sh->subs[h & (sh->nsubs_buckets - 1)];
        sh->subs[h & (sh->nsubs_buckets - 1)] = x;
        sh->nsubs++;
        send_sub(e, sh, "SUBSCRIBE", op->channel, op->len);
        return true;
    }
    if (!pp) return false;
    rsub *x = *pp;
    *pp = x->next;
    sh->nsubs--;
    hr_free(x);
    send_sub(e, sh, "UNSUBSCRIBE", op->channel, op->len);
    return true;
}

/* ---- occupancy (occupancy.lua, sweep.lua) ------------------------------------------------ */

static void occ_report(rengine *e, const char *ch, size_t len, bool occupied, uint64_t ms)
{
    handover_all(e);
    if (e->base.occupancy && !e->dead) e->base.occupancy(e->base.hub, ch, len, occupied, ms);
}

/* Join (OP_INTEREST_ON) or leave the channel's occupancy set; the answer
 * comes to on_reply (occ_answer), a failure to op_complete (occ_failed). */
static void occ_send(rengine *e, rop *op)
{
    hr_buf k = HR_BUF_INIT, cmd = HR_BUF_INIT;
    key(&k, e, "o", op->channel, op->len);
    const char *on = op->kind == OP_INTEREST_ON ? "1" : "0";
    const char *a[] = {(const char *)k.data, e->occ_id, on, e->prefix, op->channel};
    size_t l[] = {k.len, strlen(e->occ_id), 1, e->prefix_len, op->len};
    evalsha(&cmd, e, S_OCCUPANCY, op->retried, 1, a, l, 5);
    int rc = hr_redis_conn_send(e->shards[op->shard].conn, cmd.data, cmd.len, on_reply, op);
    hr_buf_free(&k);
    hr_buf_free(&cmd);
    if (rc) {
        op->err = rc;
        op_complete(op);
    }
}

/* Redis did not take the change (down, or the reply was lost): a channel
 * left meanwhile is left again when the shard is up (a channel joined is
 * joined again then anyway, with every channel the node holds). */
static void occ_failed(rop *op)
{
    rshard *sh = &op->e->shards[op->shard];
    if (op->kind == OP_INTEREST_OFF && !sub_find(sh, op->channel, op->len, fnv(op->channel, op->len)))
        set_add(&sh->occ_left, op->channel, op->len);
}

static void occ_answer(rop *op, const hr_resp *r)
{
    int64_t tr = 0, ms = 0, stale = 0;
    if (r->type != HR_RESP_ARRAY || r->n != 3 || hr_resp_int(&r->elem[0], &tr) || hr_resp_int(&r->elem[1], &ms) ||
        hr_resp_int(&r->elem[2], &stale)) {
        op->err = HR_ERR_PROTO;
        return;
    }
    bool on = op->kind == OP_INTEREST_ON;
    if (stale) occ_report(op->e, op->channel, op->len, false, (uint64_t)ms); /* dead members' vacated, first */
    if (tr) occ_report(op->e, op->channel, op->len, on, (uint64_t)ms);
}

static void on_sweep_reply(void *ud, int err, const hr_resp *r)
{
    rshard *sh = ud;
    int64_t ms = 0;
    if (err) return;
    if (r->type != HR_RESP_ARRAY || r->n != 2 || hr_resp_int(&r->elem[0], &ms) || r->elem[1].type != HR_RESP_ARRAY) {
        if (r->type == HR_RESP_ERROR) hr_logf(HR_LOG_WARN, "redis_occupancy_sweep_failed", "redis: occupancy sweep: %.*s", (int)HR_MIN(r->len, 200), r->str);
        return;
    }
    const hr_resp *l = &r->elem[1];
    for (size_t i = 0; i < l->n; i++)
        if (hr_resp_is_str(&l->elem[i])) occ_report(sh->e, l->elem[i].str, l->elem[i].len, false, (uint64_t)ms);
}

/* This run is alive (P:na:MEMBER), then the sweep of dead runs' channels. */
static void occ_refresh(rengine *e, rshard *sh)
{
    hr_buf k = HR_BUF_INIT, cmd = HR_BUF_INIT;
    hr_buf_append(&k, e->prefix, e->prefix_len);
    hr_buf_printf(&k, ":na:%s", e->occ_id);
    char ttl[24], budget[24];
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)e->node_ttl_ms);
    snprintf(budget, sizeof(budget), "%zu", e->sweep_max);
    const char *a[] = {"SET", (const char *)k.data, "1", "PX", ttl};
    size_t l[] = {3, k.len, 1, 2, strlen(ttl)};
    hr_resp_cmd(&cmd, 5, a, l);
    hr_redis_conn_send(sh->conn, cmd.data, cmd.len, NULL, NULL);
    cmd.len = 0;
    const char *b[] = {e->prefix, budget};
    size_t bl[] = {e->prefix_len, strlen(budget)};
    evalsha(&cmd, e, S_SWEEP, true, 0, b, bl, 2); /* EVAL: a refresh must not depend on the script cache */
    hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_sweep_reply, sh);
    hr_buf_free(&k);
    hr_buf_free(&cmd);
}

/* The shard is up (again): tell Redis what changed while it could not hear. */
static void occ_resync(rengine *e, rshard *sh)
{
    occ_refresh(e, sh);
    for (size_t b = 0; b < sh->occ_left.nb; b++)
        for (rsub *x = sh->occ_left.b[b]; x; x = x->next) occ_send(e, op_new(e, OP_INTEREST_OFF, x->name, x->len));
    set_clear(&sh->occ_left);
    for (size_t b = 0; b < sh->nsubs_buckets; b++)
        for (rsub *x = sh->subs[b]; x; x = x->next) occ_send(e, op_new(e, OP_INTEREST_ON, x->name, x->len));
}

static void send_psub(rshard *sh, const char *verb, const char *glob, size_t len)
{
    hr_buf cmd = HR_BUF_INIT;
    const char *a[] = {verb, glob};
    size_t l[] = {strlen(verb), len};
    hr_resp_cmd(&cmd, 2, a, l);
    hr_redis_conn_send_noreply(sh->conn, cmd.data, cmd.len); /* down: psubscribed again when up */
    hr_buf_free(&cmd);
}

static void pattern_change(rengine *e, rop *op)
{
    hr_buf g = HR_BUF_INIT;
    hr_buf_append(&g, e->prefix, e->prefix_len);
    hr_buf_append(&g, ":c:", 3);
    for (size_t i = 0; i < op->len; i++) hr_buf_append(&g, op->channel[i] == '>' ? "*" : &op->channel[i], 1);
    size_t k = 0;
    while (k < e->nglobs && !(e->globs[k].len == g.len && memcmp(e->globs[k].glob, g.data, g.len) == 0)) k++;
    if (op->kind == OP_PATTERN_ON) {
        if (k == e->nglobs) {
            e->globs = hr_realloc(e->globs, (e->nglobs + 1) * sizeof(*e->globs));
            e->globs[e->nglobs++] = (rglob){hr_strndup((const char *)g.data, g.len), g.len, 0};
            for (int i = 0; i < e->nshards; i++) send_psub(&e->shards[i], "PSUBSCRIBE", (const char *)g.data, g.len);
        }
        e->globs[k].refs++;
    } else if (k < e->nglobs && --e->globs[k].refs == 0) {
        for (int i = 0; i < e->nshards; i++) send_psub(&e->shards[i], "PUNSUBSCRIBE", e->globs[k].glob, e->globs[k].len);
        hr_free(e->globs[k].glob);
        e->globs[k] = e->globs[--e->nglobs];
    }
    hr_buf_free(&g);
}

/* ---- sending ops --------------------------------------------------------------------- */

/* A fresh epoch from the engine's pool of random bytes. */
static void pool_epoch(rengine *e, char out[HR_EPOCH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    if (e->rnd_left < HR_EPOCH_LEN / 2) {
        hr_random_bytes(e->rnd, sizeof(e->rnd));
        e->rnd_left = sizeof(e->rnd);
    }
    const uint8_t *r = e->rnd + sizeof(e->rnd) - e->rnd_left;
    for (size_t i = 0; i < HR_EPOCH_LEN / 2; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[HR_EPOCH_LEN] = '\0';
    e->rnd_left -= HR_EPOCH_LEN / 2;
}

/* ---- publish batches ------------------------------------------------------------ */

/* One publish script call: publications of one shard from one loop turn, in
 * the order the workers queued them (per-channel order kept). */
typedef struct rbatch {
    rengine *e;
    int shard;
    bool retried;               /* NOSCRIPT: sent once more with EVAL */
    size_t n;
    rop *ops[];
} rbatch;

/* Argument "P:KIND:{C}" + suffix as one bulk string. */
static void arg_key(hr_buf *b, rengine *e, char kind, const rop *op, bool idem)
{
    size_t extra = idem && op->idem_len ? 1 + op->idem_len : 0;
    hr_resp_cmd_arg_head(b, e->prefix_len + 4 + op->len + 1 + extra);
    hr_buf_append(b, e->prefix, e->prefix_len);
    char mid[4] = {':', kind, ':', '{'};
    hr_buf_append(b, mid, 4);
    hr_buf_append(b, op->channel, op->len);
    hr_buf_append(b, "}", 1);
    if (extra) {
        hr_buf_append(b, ":", 1);
        hr_buf_append(b, op->idem, op->idem_len);
    }
    hr_buf_append(b, "\r\n", 2);
}

static bool has_idem(const rop *op) { return op->idem_len && op->o.idempotency_window_ms; }

/* Whether op continues the run that prev is in (same channel, same options). */
static bool same_run(const rop *prev, const rop *op)
{
    return prev->len == op->len && memcmp(prev->channel, op->channel, op->len) == 0 &&
           prev->o.history_size == op->o.history_size && prev->o.history_ttl_ms == op->o.history_ttl_ms &&
           prev->o.idempotency_window_ms == op->o.idempotency_window_ms;
}

/* The length of the run starting at ops[i]. */
static size_t run_len(rop *const *ops, size_t i, size_t n)
{
    size_t j = i + 1;
    while (j < n && same_run(ops[i], ops[j])) j++;
    return j - i;
}

/* A run's 6 script arguments (what its publications share). */
static void arg_run(hr_buf *b, rengine *e, const rop *op, size_t count)
{
    char d[24], epoch[HR_EPOCH_LEN + 1];
    hr_resp_cmd_arg_head(b, e->prefix_len + 3 + op->len);
    hr_buf_append(b, e->prefix, e->prefix_len);
    hr_buf_append(b, ":c:", 3);
    hr_buf_append(b, op->channel, op->len);
    hr_buf_append(b, "\r\n", 2);
    hr_resp_cmd_arg(b, d, u64_dec(d, op->o.history_size));
    hr_resp_cmd_arg(b, d, u64_dec(d, op->o.history_ttl_ms));
    pool_epoch(e, epoch);
    hr_resp_cmd_arg(b, epoch, HR_EPOCH_LEN);
    hr_resp_cmd_arg(b, d, u64_dec(d, op->o.idempotency_window_ms ? op->o.idempotency_window_ms : 1));
    hr_resp_cmd_arg(b, d, u64_dec(d, count));
}

/* A publication's 3 script arguments. */
static void arg_publication(hr_buf *b, const rop *op)
{
    char d[24];
    hr_resp_cmd_arg(b, op->pub->data, op->pub->data_len);
    hr_resp_cmd_arg(b, d, u64_dec(d, op->pub->time_ms));
    hr_resp_cmd_arg(b, has_idem(op) ? "1" : "0", 1);
}

static void on_batch_reply(void *ud, int err, const hr_resp *r);

/* A worker's share of a batch's answers, run on its thread: each op's
 * callback, in batch order. */
static void chain_task(hr_engine_task *t, bool live)
{
    for (rop *op = (rop *)t, *nx; op; op = nx) {
        nx = op->next;
        if (live) op_finish(op);
        free_op(op);
    }
}

/* Every op of the batch ends with err (or its own result), then the batch.
 * The answers go back in one task per worker (chained by next, in batch
 * order), not one per publication: one lock and at most one wake-up. */
static void batch_end(rbatch *b, int err)
{
    rengine *e = b->e;
    handover_all(e);
    enum { CHAINS = 16 };
    struct chain {
        int worker;
        rop *head, *tail;
    } ch[CHAINS];
    size_t nch = 0;
    for (size_t i = 0; i < b->n; i++) {
        rop *op = b->ops[i];
        if (err) op->err = err;
        if (op->worker < 0 || !e->base.post || !op->cb.publish || e->dead) {
            op_complete(op);
            continue;
        }
        size_t k = 0;
        while (k < nch && ch[k].worker != op->worker) k++;
        if (k == CHAINS) { /* more workers than chains: this one alone */
            op_complete(op);
            continue;
        }
        op->next = NULL;
        if (k == nch) ch[nch++] = (struct chain){op->worker, op, op};
        else ch[k].tail = ch[k].tail->next = op;
    }
    for (size_t k = 0; k < nch; k++) {
        ch[k].head->task.run = chain_task;
        e->base.post(e->base.hub, ch[k].worker, &ch[k].head->task);
    }
    hr_free(b);
}

static void batch_send(rbatch *b)
{
    rengine *e = b->e;
    hr_buf *c = &e->pcmd;
    c->len = 0;
    char nk[24];
    size_t runs = 0, idems = 0;
    for (size_t i = 0; i < b->n; i += run_len(b->ops, i, b->n)) runs++;
    for (size_t i = 0; i < b->n; i++) idems += has_idem(b->ops[i]);
    hr_resp_cmd_head(c, 3 + 2 * runs + idems + 6 * runs + 3 * b->n);
    if (b->retried) hr_resp_cmd_arg(c, "EVAL", 4), hr_resp_cmd_arg(c, scripts[S_PUBLISH], strlen(scripts[S_PUBLISH]));
    else hr_resp_cmd_arg(c, "EVALSHA", 7), hr_resp_cmd_arg(c, e->sha[S_PUBLISH], 40);
    hr_resp_cmd_arg(c, nk, u64_dec(nk, 2 * runs + idems));
    for (size_t i = 0, n; i < b->n; i += n) {
        n = run_len(b->ops, i, b->n);
        arg_key(c, e, 'm', b->ops[i], false);
        arg_key(c, e, 'h', b->ops[i], false);
        for (size_t j = i; j < i + n; j++)
            if (has_idem(b->ops[j])) arg_key(c, e, 'i', b->ops[j], true);
    }
    for (size_t i = 0, n; i < b->n; i += n) {
        n = run_len(b->ops, i, b->n);
        arg_run(c, e, b->ops[i], n);
        for (size_t j = i; j < i + n; j++) arg_publication(c, b->ops[j]);
    }
    int rc = hr_redis_conn_send(e->shards[b->shard].conn, c->data, c->len, on_batch_reply, b);
    if (rc) batch_end(b, rc);
}

/* A publication's answer {offset, epoch, duplicate}. */
static void parse_publish(rop *op, const hr_resp *r)
{
    int64_t off = 0;
    if (r->type == HR_RESP_ERROR) {
        hr_logf(HR_LOG_WARN, "redis_command_failed", "redis: command failed: %.*s", (int)HR_MIN(r->len, 200), r->str);
        op->err = HR_ERR_IO;
        return;
    }
    if (r->type != HR_RESP_ARRAY || r->n < 2 || hr_resp_int(&r->elem[0], &off) || !hr_resp_is_str(&r->elem[1]) ||
        r->elem[1].len > HR_EPOCH_LEN) {
        op->err = HR_ERR_PROTO;
        return;
    }
    op->offset = (uint64_t)off;
    memcpy(op->epoch, r->elem[1].str, r->elem[1].len);
    op->epoch[r->elem[1].len] = '\0';
}

static void on_batch_reply(void *ud, int err, const hr_resp *r)
{
    rbatch *b = ud;
    if (err) {
        batch_end(b, err);
        return;
    }
    if (is_noscript(r) && !b->retried) {
        b->retried = true;
        batch_send(b);
        return;
    }
    if (r->type == HR_RESP_ERROR) {
        hr_logf(HR_LOG_WARN, "redis_command_failed", "redis: command failed: %.*s", (int)HR_MIN(r->len, 200), r->str);
        batch_end(b, HR_ERR_IO);
        return;
    }
    if (r->type != HR_RESP_ARRAY || r->n != b->n) {
        batch_end(b, HR_ERR_PROTO);
        return;
    }
    for (size_t i = 0; i < b->n; i++) parse_publish(b->ops[i], &r->elem[i]);
    batch_end(b, 0);
}

/* Send the shard's pending publishes (in script calls of batch_max). */
static void batch_flush(rengine *e, rshard *sh)
{
    while (sh->bn) {
        size_t n = HR_MIN(sh->bn, e->batch_max);
        rbatch *b = hr_malloc(sizeof(*b) + n * sizeof(rop *));
        b->e = e;
        b->shard = sh->idx;
        b->retried = false;
        b->n = n;
        for (size_t i = 0; i < n; i++) {
            b->ops[i] = sh->bhead;
            sh->bhead = sh->bhead->next;
        }
        sh->bn -= n;
        if (!sh->bn) sh->btail = NULL;
        batch_send(b);
    }
}

static void batch_flush_all(rengine *e)
{
    for (int i = 0; i < e->nshards; i++) batch_flush(e, &e->shards[i]);
}

/* A publish joins its shard's batch (sent when full, before any other
 * command, and at the end of the loop turn's queue). */
static void batch_add(rengine *e, rop *op)
{
    rshard *sh = &e->shards[op->shard];
    op->next = NULL;
    if (sh->btail) sh->btail->next = op;
    else sh->bhead = op;
    sh->btail = op;
    if (++sh->bn >= e->batch_max) batch_flush(e, sh);
}

static void op_send(rop *op)
{
    rengine *e = op->e;
    rshard *sh = &e->shards[op->shard];
    hr_buf k1 = HR_BUF_INIT, k2 = HR_BUF_INIT, k3 = HR_BUF_INIT, cmd = HR_BUF_INIT;
    int rc = 0;
    bool eval = op->retried;
    switch (op->kind) {
    case OP_INTEREST_ON:
    case OP_INTEREST_OFF:
        if (op->retried || interest_change(e, op)) occ_send(e, op);
        else free_op(op);
        return;
    case OP_PATTERN_ON:
    case OP_PATTERN_OFF:
        pattern_change(e, op);
        free_op(op);
        return;
    case OP_CHANNELS: {
        op->children = (size_t)e->nshards;
        for (int i = 0; i < e->nshards; i++) {
            rop *ch = op_new(e, OP_CHANNELS_SHARD, "", 0);
            ch->shard = i;
            ch->parent = op;
            op_send(ch);
        }
        return;
    }
    case OP_CHANNELS_SHARD: {
        hr_buf_append(&k1, e->prefix, e->prefix_len);
        hr_buf_append_str(&k1, ":m:*");
        const char *a[] = {(const char *)k1.data};
        size_t l[] = {k1.len};
        evalsha(&cmd, e, S_CHANNELS, eval, 0, a, l, 1);
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        break;
    }
    case OP_BROADCAST: {
        hr_buf msg = HR_BUF_INIT;
        encode_command(&msg, op->pub);
        hr_buf_append(&k1, e->prefix, e->prefix_len);
        hr_buf_append_str(&k1, ":ctl");
        const char *a[] = {"PUBLISH", (const char *)k1.data, (const char *)msg.data};
        size_t l[] = {7, k1.len, msg.len};
        hr_resp_cmd(&cmd, 3, a, l);
        hr_buf_free(&msg);
        if (hr_redis_conn_send(e->shards[0].conn, cmd.data, cmd.len, NULL, NULL)) {
            /* Redis is down: at least this node's clients get it */
            hr_logf(HR_LOG_WARN, "redis_server_command_local", "redis: a server command could not reach the other nodes (Redis down): applied on this node only");
            handover_all(e);
            if (e->base.command) e->base.command(e->base.hub, op->pub);
        }
        hr_buf_free(&k1);
        hr_buf_free(&cmd);
        free_op(op);
        return;
    }
    case OP_PUBLISH: /* publishes go through batch_add; a lone one is a batch of one */
        batch_add(e, op);
        batch_flush(e, sh);
        return;
    case OP_EVENT: {
        hr_pub *p = op->pub;
        hr_buf name = HR_BUF_INIT, msg = HR_BUF_INIT;
        hr_buf_append(&name, e->prefix, e->prefix_len);
        hr_buf_append(&name, ":c:", 3);
        hr_buf_append(&name, op->channel, op->len);
        hr_buf_append(&msg, p->kind == HR_PUB_JOIN ? "J\n" : "L\n", 2);
        if (p->info) hr_buf_append(&msg, p->info, p->info_len);
        const char *a[] = {"PUBLISH", (const char *)name.data, msg.len ? (const char *)msg.data : ""};
        size_t l[] = {7, name.len, msg.len};
        hr_resp_cmd(&cmd, 3, a, l);
        hr_buf_free(&name);
        hr_buf_free(&msg);
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        break;
    }
    case OP_HISTORY: {
        key(&k1, e, "m", op->channel, op->len);
        key(&k2, e, "h", op->channel, op->len);
        char epoch[HR_EPOCH_LEN + 1];
        hr_epoch_new(epoch);
        bool want = op->q.limit != 0 && op->o.history_size > 0;
        char w[5][24];
        history_window(op, w);
        const char *a[] = {(const char *)k1.data, (const char *)k2.data, epoch, want ? "1" : "0", w[0], w[1], w[2],
                           w[3], w[4], op->q.reverse ? "1" : "0"};
        size_t l[10] = {k1.len, k2.len, strlen(epoch), 1};
        for (size_t i = 4; i < 10; i++) l[i] = strlen(a[i]);
        evalsha(&cmd, e, S_HISTORY, eval, 2, a, l, 10);
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        break;
    }
    case OP_HISTORY_REMOVE: {
        key(&k1, e, "h", op->channel, op->len);
        const char *a[] = {"DEL", (const char *)k1.data};
        size_t l[] = {3, k1.len};
        hr_resp_cmd(&cmd, 2, a, l);
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        break;
    }
    case OP_PRES_ADD: {
        hr_buf v = HR_BUF_INIT;
        hr_buf_append_str(&v, op->user ? op->user : "");
        hr_buf_append(&v, "\n", 1);
        if (op->info) hr_buf_append_str(&v, op->info);
        hr_buf_append(&v, "", 1); /* NUL */
        if (!op->retried) pres_track(e, op, (const char *)v.data);
        send_pres_add(e, sh, op->channel, op->len, op->client, (const char *)v.data, on_reply, op, eval, &rc);
        hr_buf_free(&v);
        break;
    }
    case OP_PRES_REMOVE: {
        pres_untrack(e, op->channel, op->len, op->client);
        key(&k1, e, "pz", op->channel, op->len);
        key(&k2, e, "ph", op->channel, op->len);
        /* two commands: the first's reply is dropped, the second completes the op */
        const char *a[] = {"ZREM", (const char *)k1.data, op->client};
        size_t l[] = {4, k1.len, strlen(op->client)};
        hr_resp_cmd(&cmd, 3, a, l);
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, NULL, NULL);
        if (!rc) {
            cmd.len = 0;
            const char *b[] = {"HDEL", (const char *)k2.data, op->client};
            size_t bl[] = {4, k2.len, strlen(op->client)};
            hr_resp_cmd(&cmd, 3, b, bl);
            rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        }
        break;
    }
    case OP_PRESENCE: {
        key(&k1, e, "pz", op->channel, op->len);
        key(&k2, e, "ph", op->channel, op->len);
        char now[24];
        snprintf(now, sizeof(now), "%llu", (unsigned long long)hr_wall_ms());
        const char *a[] = {(const char *)k1.data, (const char *)k2.data, now};
        size_t l[] = {k1.len, k2.len, strlen(now)};
        evalsha(&cmd, e, S_PRES_GET, eval, 2, a, l, 3);
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        break;
    }
    case OP_NODES:
        send_node(e, op, eval);
        op = NULL; /* send_node completes it on failure */
        break;
    case OP_SESS_ADD:
    case OP_SESS_DEL: {
        key(&k1, e, "s", op->channel, op->len);
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%llu", SESSION_KEY_TTL_MS);
        if (op->kind == OP_SESS_ADD) set_add(&sh->sessions, op->channel, op->len);
        else set_del(&sh->sessions, op->channel, op->len);
        if (op->kind == OP_SESS_ADD) {
            const char *a[] = {"SET", (const char *)k1.data, e->node_id, "PX", ttl};
            size_t l[] = {3, k1.len, strlen(e->node_id), 2, strlen(ttl)};
            hr_resp_cmd(&cmd, 5, a, l);
        } else {
            const char *a[] = {"DEL", (const char *)k1.data};
            size_t l[] = {3, k1.len};
            hr_resp_cmd(&cmd, 2, a, l);
        }
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        break;
    }
    case OP_SESS_SEND: {
        key(&k1, e, "s", op->channel, op->len);
        hr_buf msg = HR_BUF_INIT, ctl = HR_BUF_INIT;
        hr_buf_append(&msg, op->channel, op->len);
        hr_buf_append(&msg, "\n", 1);
        hr_buf_append(&msg, op->idem, op->idem_len);
        hr_buf_append(&ctl, e->prefix, e->prefix_len);
        hr_buf_append(&ctl, ":n:", 3);
        const char *a[] = {(const char *)k1.data, (const char *)msg.data, (const char *)ctl.data};
        size_t l[] = {k1.len, msg.len, ctl.len};
        evalsha(&cmd, e, S_ROUTE, eval, 1, a, l, 3);
        hr_buf_free(&msg);
        hr_buf_free(&ctl);
        rc = hr_redis_conn_send(sh->conn, cmd.data, cmd.len, on_reply, op);
        break;
    }
    }
    hr_buf_free(&k1);
    hr_buf_free(&k2);
    hr_buf_free(&k3);
    hr_buf_free(&cmd);
    if (rc && op) {
        op->err = rc;
        op_complete(op);
    }
}

/* ---- the engine thread ------------------------------------------------------------------ */

static void on_wake(hr_loop *loop, void *data)
{
    HR_UNUSED(loop);
    rengine *e = data;
    pthread_mutex_lock(&e->mu);
    rop *list = e->qhead;
    e->qhead = e->qtail = NULL;
    bool stop = e->stopping;
    pthread_mutex_unlock(&e->mu);
    while (list) {
        rop *nx = list->next;
        if (stop) {
            free_op(list); /* shutting down: the callers are going away */
        } else if (list->kind == OP_PUBLISH) {
            batch_add(e, list);
        } else {
            batch_flush_all(e); /* earlier publishes first: a later read sees them */
            op_send(list);
        }
        list = nx;
    }
    batch_flush_all(e);
    for (int i = 0; i < e->nshards; i++) hr_redis_conn_flush(e->shards[i].conn);
    if (stop) hr_loop_stop(&e->loop);
}

static void on_turn_end(hr_loop *loop, void *data)
{
    HR_UNUSED(loop);
    rengine *e = data;
    handover_all(e);
    for (int i = 0; i < e->nshards; i++) hr_redis_conn_flush(e->shards[i].conn);
}

static void *engine_main(void *arg)
{
    rengine *e = arg;
    pthread_setname_np(pthread_self(), "herald-redis");
    hr_loop_run(&e->loop);
    return NULL;
}

/* Whether the pub/sub channel s (n bytes) is "P" + suffix (sl bytes). */
static bool is_prefixed(const rengine *e, const char *s, size_t n, const char *suffix, size_t sl)
{
    return n >= e->prefix_len + sl && memcmp(s, e->prefix, e->prefix_len) == 0 &&
           memcmp(s + e->prefix_len, suffix, sl) == 0;
}

/* The channel name in a pub/sub channel "P:c:NAME", or NULL. */
static const char *chan_of(rengine *e, const char *s, size_t n, size_t *len)
{
    if (!is_prefixed(e, s, n, ":c:", 3)) return NULL;
    *len = n - e->prefix_len - 3;
    return s + e->prefix_len + 3;
}

/* A publication received on sh joins the shard's hand-over batch (handed
 * on when full, at the end of the engine's loop turn, or before anything
 * else goes to the workers). */
static void deliver_wire(rshard *sh, const char *ch, size_t clen, const char *data, size_t len)
{
    hr_pub *p = decode_pub(ch, clen, data, len);
    if (!p) {
        hr_logf(HR_LOG_WARN, "redis_undecodable", "redis: undecodable publication on %.*s", (int)HR_MIN(clen, 200), ch);
        return;
    }
    if (sh->dn == sh->dcap) {
        sh->dcap = sh->dcap ? sh->dcap * 2 : 64;
        sh->dq = hr_realloc(sh->dq, sh->dcap * sizeof(*sh->dq));
    }
    sh->dq[sh->dn++] = p;
    if (sh->dn >= sh->e->deliver_max) handover(sh);
}

/* A frame routed to this node's control channel: "SID\nFRAME". */
static void session_frame(rengine *e, const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    if (!nl || !e->base.on_session_frame || (size_t)(nl - s) >= 64) return;
    char sid[64];
    memcpy(sid, s, (size_t)(nl - s));
    sid[nl - s] = '\0';
    handover_all(e);
    e->base.on_session_frame(e->base.session_ud, sid, (const uint8_t *)nl + 1, n - (size_t)(nl - s) - 1);
}

/* A server command for every node (P:ctl). */
static void ctl_command(rengine *e, const char *s, size_t n)
{
    hr_pub *c = decode_command(s, n);
    handover_all(e);
    if (c && e->base.command) e->base.command(e->base.hub, c);
    else if (!c) hr_logf(HR_LOG_WARN, "redis_undecodable", "redis: undecodable server command");
    hr_pub_unref(c);
}

/* A pub/sub message ("message", or "pmessage" with m->pattern), read
 * straight from the connection's buffer (redis_conn's on_message hook). */
static void on_message(void *ud, const hr_resp_message *m)
{
    rshard *sh = ud;
    rengine *e = sh->e;
    size_t clen = 0;
    const char *ch = chan_of(e, m->channel, m->channel_len, &clen);
    if (!m->pattern) {
        if (ch) deliver_wire(sh, ch, clen, m->data, m->data_len);
        else if (is_prefixed(e, m->channel, m->channel_len, ":n:", 3)) session_frame(e, m->data, m->data_len);
        else if (m->channel_len == e->prefix_len + 4 && is_prefixed(e, m->channel, m->channel_len, ":ctl", 4))
            ctl_command(e, m->data, m->data_len);
        return;
    }
    if (!ch || set_find(&sh->confirmed, m->channel, m->channel_len)) return; /* the "message" copy carries it */
    for (size_t i = 0; i < sh->ncglobs; i++) {
        const char *g = sh->cglobs[i];
        if (!glob_match(g, strlen(g), m->channel, m->channel_len)) continue;
        /* only the first matching glob's copy is delivered */
        if (strlen(g) == m->pattern_len && memcmp(g, m->pattern, m->pattern_len) == 0)
            deliver_wire(sh, ch, clen, m->data, m->data_len);
        return;
    }
}

/* A RESP3 push: the (un)subscribe confirmations that tell which copies of a
 * publication Redis will send, and a pub/sub message of an unusual shape
 * (the usual ones come through on_message). */
static void on_push(void *ud, const hr_resp *r)
{
    rshard *sh = ud;
    if (r->n < 3 || !hr_resp_is_str(&r->elem[0])) return;
    const hr_resp *kind = &r->elem[0];
    bool pattern = hr_resp_eq(kind, "pmessage");
    if (hr_resp_eq(kind, "message") || pattern) {
        const hr_resp *x = &r->elem[1];
        if ((pattern && r->n != 4) || !hr_resp_is_str(&x[0]) || !hr_resp_is_str(&x[1]) ||
            (pattern && !hr_resp_is_str(&x[2])))
            return;
        hr_resp_message m = {NULL, 0, x[0].str, x[0].len, x[1].str, x[1].len};
        if (pattern) m = (hr_resp_message){x[0].str, x[0].len, x[1].str, x[1].len, x[2].str, x[2].len};
        on_message(sh, &m);
        return;
    }
    if (!hr_resp_is_str(&r->elem[1])) return;
    const hr_resp *name = &r->elem[1];
    if (hr_resp_eq(kind, "subscribe")) set_add(&sh->confirmed, name->str, name->len);
    else if (hr_resp_eq(kind, "unsubscribe")) set_del(&sh->confirmed, name->str, name->len);
    else if (hr_resp_eq(kind, "psubscribe")) {
        for (size_t i = 0; i < sh->ncglobs; i++)
            if (strlen(sh->cglobs[i]) == name->len && memcmp(sh->cglobs[i], name->str, name->len) == 0) return;
        sh->cglobs = hr_realloc(sh->cglobs, (sh->ncglobs + 1) * sizeof(*sh->cglobs));
        sh->cglobs[sh->ncglobs++] = hr_strndup(name->str, name->len);
    } else if (hr_resp_eq(kind, "punsubscribe")) {
        for (size_t i = 0; i < sh->ncglobs; i++)
            if (strlen(sh->cglobs[i]) == name->len && memcmp(sh->cglobs[i], name->str, name->len) == 0) {
                hr_free(sh->cglobs[i]);
                memmove(&sh->cglobs[i], &sh->cglobs[i + 1], (sh->ncglobs - i - 1) * sizeof(*sh->cglobs));
                sh->ncglobs--;
                return;
            }
    }
}

static void forget_confirmed(rshard *sh)
{
    set_clear(&sh->confirmed);
    for (size_t i = 0; i < sh->ncglobs; i++) hr_free(sh->cglobs[i]);
    hr_free(sh->cglobs);
    sh->cglobs = NULL;
    sh->ncglobs = 0;
}

static void on_up(void *ud)
{
    rshard *sh = ud;
    rengine *e = sh->e;
    bool resync = sh->was_up;
    handover_all(e); /* what came before the outage goes before the resync disconnects */
    if (!sh->up) atomic_fetch_sub(&e->shards_down, 1);
    sh->up = true;
    if (!sh->was_up) {
        pthread_mutex_lock(&e->mu);
        e->shards_up++;
        pthread_cond_broadcast(&e->up_cv);
        pthread_mutex_unlock(&e->mu);
    }
    sh->was_up = true;
    char ctl[64];
    int cl = snprintf(ctl, sizeof(ctl), "%s", e->node_id);
    hr_buf name = HR_BUF_INIT, cmd = HR_BUF_INIT;
    hr_buf_append(&name, e->prefix, e->prefix_len);
    hr_buf_append(&name, ":n:", 3);
    hr_buf_append(&name, ctl, (size_t)cl);
    const char *a[] = {"SUBSCRIBE", (const char *)name.data};
    size_t l[] = {9, name.len};
    hr_resp_cmd(&cmd, 2, a, l);
    hr_redis_conn_send_noreply(sh->conn, cmd.data, cmd.len);
    if (sh->idx == 0) { /* server commands for every node */
        name.len = cmd.len = 0;
        hr_buf_append(&name, e->prefix, e->prefix_len);
        hr_buf_append_str(&name, ":ctl");
        const char *b2[] = {"SUBSCRIBE", (const char *)name.data};
        size_t l2[] = {9, name.len};
        hr_resp_cmd(&cmd, 2, b2, l2);
        hr_redis_conn_send_noreply(sh->conn, cmd.data, cmd.len);
    }
    hr_buf_free(&name);
    hr_buf_free(&cmd);
    for (size_t b = 0; b < sh->nsubs_buckets; b++)
        for (rsub *x = sh->subs[b]; x; x = x->next) {
            send_sub(e, sh, "SUBSCRIBE", x->name, x->len);
            if (resync) {
                /* publications may have been missed while down: subscribers recover from history */
                static const char why[] = "\nredis connection restored: reconnect and recover";
                hr_pub *disc = hr_pub_new(HR_PUB_DISCONNECT, x->name, x->len, "", 0, why, sizeof(why) - 1);
                disc->code = HR_ENGINE_RESYNC_CODE;
                e->base.deliver(e->base.hub, disc);
                hr_pub_unref(disc);
            }
        }
    for (size_t i = 0; i < e->nglobs; i++) send_psub(sh, "PSUBSCRIBE", e->globs[i].glob, e->globs[i].len);
    if (resync) { /* a Redis that lost its data no longer knows this node's sessions */
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%llu", SESSION_KEY_TTL_MS);
        hr_buf k = HR_BUF_INIT, c2 = HR_BUF_INIT;
        for (size_t b = 0; b < sh->sessions.nb; b++)
            for (rsub *x = sh->sessions.b[b]; x; x = x->next) {
                key(&k, e, "s", x->name, x->len);
                c2.len = 0;
                const char *sa[] = {"SET", (const char *)k.data, e->node_id, "PX", ttl};
                size_t sl[] = {3, k.len, strlen(e->node_id), 2, strlen(ttl)};
                hr_resp_cmd(&c2, 5, sa, sl);
                hr_redis_conn_send(sh->conn, c2.data, c2.len, NULL, NULL);
            }
        hr_buf_free(&k);
        hr_buf_free(&c2);
    }
    /* presence entries were not refreshed during the outage: put them back now */
    for (size_t b = 0; b < e->npres_buckets; b++)
        for (rpres *x = e->pres[b]; x; x = x->next) {
            if (&e->shards[shard_of(e, x->channel, x->len)] != sh) continue;
            int rc;
            send_pres_add(e, sh, x->channel, x->len, x->client, x->value, on_refresh_reply, NULL, true, &rc);
        }
    occ_resync(e, sh);
    if (sh->idx == 0) announce(e);
}

static void on_down(void *ud, const char *why)
{
    HR_UNUSED(why);
    rshard *sh = ud;
    if (sh->up) atomic_fetch_add(&sh->e->shards_down, 1);
    sh->up = false;
    forget_confirmed(ud); /* a new connection starts with no subscription */
}

/* ---- vtable (worker side) ------------------------------------------------------------- */

static rop *op_new(rengine *e, int kind, const char *ch, size_t len)
{
    rop *op = hr_calloc(1, sizeof(*op));
    op->e = e;
    op->kind = kind;
    op->worker = hr_engine_worker;
    op->channel = hr_strndup(ch, len);
    op->len = len;
    op->shard = shard_of(e, ch, len);
    return op;
}

/* A worker's publishes of its current loop turn, held back (in order) and
 * queued together at the turn's end (r_turn_end) or before any other op of
 * the same worker (which keeps that worker's order): one lock and at most
 * one engine wake-up per worker turn instead of per publication, and the
 * engine thread finds bigger batches; a worker holding redis.publish_batch
 * of them (a full script call) hands them on at once, so a long turn does
 * not leave Redis idle meanwhile. Only publishes wait: interest
 * changes are ordered across workers by the hub's registry lock and go at
 * once. */
static _Thread_local struct {
    rengine *e;
    rop *head, *tail;
    size_t n;
} held;

/* Append the list first..last (linked by next) to the op queue. */
static void queue_list(rengine *e, rop *first, rop *last)
{
    pthread_mutex_lock(&e->mu);
    bool empty = e->qhead == NULL;
    if (e->qtail) e->qtail->next = first;
    else e->qhead = first;
    e->qtail = last;
    pthread_mutex_unlock(&e->mu);
    if (empty) hr_loop_wake(&e->loop);
}

static void held_flush(void)
{
    if (!held.head) return;
    queue_list(held.e, held.head, held.tail);
    held.head = held.tail = NULL;
    held.n = 0;
}

static void op_queue(rengine *e, rop *op)
{
    op->next = NULL;
    if (held.head && held.e != e) held_flush();
    if (op->kind == OP_PUBLISH && op->worker >= 0 && e->hold_publishes) {
        if (held.tail) held.tail->next = op;
        else held.head = op;
        held.tail = op;
        held.e = e;
        if (++held.n >= e->batch_max) held_flush(); /* a full script call's worth: no need to wait */
        return;
    }
    rop *first = op;
    if (held.head) { /* this worker's earlier publishes go first */
        held.tail->next = op;
        first = held.head;
        held.head = held.tail = NULL;
        held.n = 0;
    }
    queue_list(e, first, op);
}

static void r_turn_end(hr_engine *be)
{
    if (held.head && held.e == (rengine *)be) held_flush();
}

static void r_publish(hr_engine *be, const hr_chan_opts *o, hr_pub *pub, const char *idem_key, size_t idem_len,
                      hr_publish_cb cb, void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_PUBLISH, pub->channel, pub->channel_len);
    op->o = *o;
    op->pub = hr_pub_ref(pub);
    if (idem_len) {
        op->idem = hr_strndup(idem_key, idem_len);
        op->idem_len = idem_len;
    }
    op->cb.publish = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_publish_event(hr_engine *be, hr_pub *pub)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_EVENT, pub->channel, pub->channel_len);
    op->pub = hr_pub_ref(pub);
    op_queue(e, op);
}

static void r_history(hr_engine *be, const hr_chan_opts *o, const char *channel, size_t len, const hr_history_query *q,
                      hr_history_cb cb, void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_HISTORY, channel, len);
    op->o = *o;
    op->q = *q;
    snprintf(op->since_epoch, sizeof(op->since_epoch), "%s", q->since_epoch ? q->since_epoch : "");
    op->q.since_epoch = op->since_epoch;
    snprintf(op->before_epoch, sizeof(op->before_epoch), "%s", q->before_epoch ? q->before_epoch : "");
    op->q.before_epoch = op->before_epoch;
    op->cb.history = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_history_remove(hr_engine *be, const char *channel, size_t len, hr_done_cb cb, void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_HISTORY_REMOVE, channel, len);
    op->cb.done = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_presence_add(hr_engine *be, const char *channel, size_t len, const char *client, const char *user,
                           const char *info, hr_done_cb cb, void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_PRES_ADD, channel, len);
    op->client = hr_strdup(client);
    op->user = hr_strdup(user ? user : "");
    op->info = info ? hr_strdup(info) : NULL;
    op->cb.done = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_presence_remove(hr_engine *be, const char *channel, size_t len, const char *client, hr_done_cb cb,
                              void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_PRES_REMOVE, channel, len);
    op->client = hr_strdup(client);
    op->cb.done = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_presence(hr_engine *be, const char *channel, size_t len, hr_presence_cb cb, void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_PRESENCE, channel, len);
    op->cb.presence = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_channels(hr_engine *be, void (*each)(void *ud, const char *name, size_t len, uint64_t offset), void *ud)
{
    /* synchronous: not available from Redis (channels_async is) */
    HR_UNUSED(be);
    HR_UNUSED(each);
    HR_UNUSED(ud);
}

static void r_channels_async(hr_engine *be,
                             void (*cb)(void *ud, int err, const char *const *names, const uint64_t *offsets, size_t n),
                             void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_CHANNELS, "", 0);
    op->cb.channels = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_interest(hr_engine *be, const char *channel, size_t len, bool on)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, on ? OP_INTEREST_ON : OP_INTEREST_OFF, channel, len);
    op_queue(e, op);
}

static void r_broadcast(hr_engine *be, hr_pub *cmd)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_BROADCAST, "", 0);
    op->pub = hr_pub_ref(cmd);
    op_queue(e, op);
}

static void r_pattern_interest(hr_engine *be, const char *pattern, size_t len, bool on)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, on ? OP_PATTERN_ON : OP_PATTERN_OFF, pattern, len);
    op_queue(e, op);
}

static void r_nodes(hr_engine *be, void (*cb)(void *ud, int err, const char *json, size_t len), void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_NODES, "", 0);
    op->shard = 0;
    op->cb.nodes = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_session_register(hr_engine *be, const char *sid, bool add)
{
    rengine *e = (rengine *)be;
    op_queue(e, op_new(e, add ? OP_SESS_ADD : OP_SESS_DEL, sid, strlen(sid)));
}

static void r_session_send(hr_engine *be, const char *sid, const uint8_t *frame, size_t len, hr_done_cb cb, void *ud)
{
    rengine *e = (rengine *)be;
    rop *op = op_new(e, OP_SESS_SEND, sid, strlen(sid));
    op->idem = hr_strndup((const char *)frame, len);
    op->idem_len = len;
    op->cb.done = cb;
    op->ud = ud;
    op_queue(e, op);
}

static void r_free(hr_engine *be)
{
    rengine *e = (rengine *)be;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = true;
        pthread_mutex_unlock(&e->mu);
        hr_loop_wake(&e->loop);
        pthread_join(e->thread, NULL);
    }
    e->dead = true;
    /* ops queued after the thread stopped */
    rop *list = e->qhead;
    while (list) {
        rop *nx = list->next;
        free_op(list);
        list = nx;
    }
    for (int i = 0; i < e->nshards; i++) {
        rshard *sh = &e->shards[i];
        hr_redis_conn_free(sh->conn); /* (ops failed here hand nothing over: dead) */
        for (size_t k = 0; k < sh->dn; k++) hr_pub_unref(sh->dq[k]); /* received while stopping */
        hr_free(sh->dq);
        forget_confirmed(sh);
        set_clear(&sh->sessions);
        set_clear(&sh->occ_left);
        for (size_t b = 0; b < sh->nsubs_buckets; b++) {
            rsub *x = sh->subs[b];
            while (x) {
                rsub *nx = x->next;
                hr_free(x);
                x = nx;
            }
        }
        hr_free(sh->subs);
    }
    for (size_t b = 0; b < e->npres_buckets; b++) {
        rpres *x = e->pres[b];
        while (x) {
            rpres *nx = x->next;
            hr_free(x->channel);
            hr_free(x->client);
            hr_free(x->value);
            hr_free(x);
            x = nx;
        }
    }
    hr_free(e->pres);
    for (size_t i = 0; i < e->nglobs; i++) hr_free(e->globs[i].glob);
    hr_free(e->globs);
    hr_buf_free(&e->pcmd);
    hr_timer_stop(&e->loop.wheel, &e->refresh);
    hr_loop_close(&e->loop);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->up_cv);
    hr_free(e->shards);
    hr_free(e->prefix);
    hr_free(e->node_address);
    hr_free(e);
}

static bool r_shard_stats(hr_engine *be, int i, const char **addr, const hr_redis_conn_stats **st)
{
    rengine *e = (rengine *)be;
    if (i < 0 || i >= e->nshards) return false;
    *addr = hr_redis_conn_addr(e->shards[i].conn);
    *st = hr_redis_conn_get_stats(e->shards[i].conn);
    return true;
}

static int r_shards_down(hr_engine *be)
{
    return atomic_load(&((rengine *)be)->shards_down);
}

static const hr_engine_vt redis_vt = {
    .shards_down = r_shards_down,
    .shard_stats = r_shard_stats,
    .publish = r_publish,
    .publish_event = r_publish_event,
    .history = r_history,
    .history_remove = r_history_remove,
    .presence_add = r_presence_add,
    .presence_remove = r_presence_remove,
    .presence = r_presence,
    .channels = r_channels,
    .free = r_free,
    .channels_async = r_channels_async,
    .turn_end = r_turn_end,
};

static const hr_cluster_vt redis_cluster = {
    .interest = r_interest,
    .pattern_interest = r_pattern_interest,
    .broadcast = r_broadcast,
    .nodes = r_nodes,
    .session_register = r_session_register,
    .session_send = r_session_send,
};

hr_engine *hr_engine_redis_new(const hr_redis_opts *o, hr_deliver_fn deliver, void *hub, char *err, size_t errlen)
{
    if (!o->addrs || !o->addrs[0]) {
        snprintf(err, errlen, "server.redis: no Redis address (HOST:PORT[,HOST:PORT...])");
        return NULL;
    }
    /* resolve every address first (blocking, at start-up) */
    int n = 1;
    for (const char *p = o->addrs; *p; p++) n += *p == ',';
    hr_redis_conn_cfg *cfgs = hr_calloc((size_t)n, sizeof(*cfgs));
    int count = 0;
    const char *p = o->addrs;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ')) {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ') len--;
        if (len) {
            hr_redis_conn_cfg *c = &cfgs[count];
            if (hr_redis_resolve(p, len, c, err, errlen)) {
                hr_free(cfgs);
                return NULL;
            }
            c->connect_timeout_ms = o->connect_timeout_ms;
            c->ping_interval_ms = o->ping_interval_ms;
            c->backoff_min_ms = o->backoff_min_ms;
            c->backoff_max_ms = o->backoff_max_ms;
            c->max_pending = o->max_pending;
            c->max_reply = o->max_reply;
            snprintf(c->user, sizeof(c->user), "%s", o->user ? o->user : "");
            snprintf(c->password, sizeof(c->password), "%s", o->password ? o->password : "");
            count++;
        }
        p += len;
        while (*p == ',' || *p == ' ') p++;
    }
    if (!count) {
        hr_free(cfgs);
        snprintf(err, errlen, "server.redis: no Redis address (HOST:PORT[,HOST:PORT...])");
        return NULL;
    }
    rengine *e = hr_calloc(1, sizeof(*e));
    e->base.vt = &redis_vt;
    e->base.cluster = &redis_cluster;
    e->base.deliver = deliver;
    e->base.hub = hub;
    e->base.node_id = e->node_id;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->up_cv, NULL);
    e->prefix = hr_strdup(o->prefix && o->prefix[0] ? o->prefix : "herald");
    e->prefix_len = strlen(e->prefix);
    e->node_address = hr_strdup(o->node_address ? o->node_address : "");
    e->presence_ttl_ms = o->presence_ttl_ms ? o->presence_ttl_ms : 60000;
    e->node_ttl_ms = o->node_ttl_ms ? o->node_ttl_ms : 30000;
    e->stats = o->stats;
    e->stats_ud = o->stats_ud;
    e->batch_max = o->publish_batch ? o->publish_batch : 1;
    e->deliver_max = o->deliver_batch ? o->deliver_batch : 1;
    e->sweep_max = o->occupancy_sweep_max ? o->occupancy_sweep_max : 1000;
    e->hold_publishes = o->hold_publishes;
    if (o->node_id && o->node_id[0]) {
        snprintf(e->node_id, sizeof(e->node_id), "%s", o->node_id);
    } else {
        char a[HR_EPOCH_LEN + 1];
        hr_epoch_new(a);
        snprintf(e->node_id, sizeof(e->node_id), "%s", a);
    }
    char run[HR_EPOCH_LEN + 1];
    hr_epoch_new(run);
    snprintf(e->occ_id, sizeof(e->occ_id), "%s.%s", e->node_id, run);
    for (int i = 0; i < S_COUNT; i++) {
        uint8_t d[SHA_DIGEST_LENGTH];
        SHA1((const uint8_t *)scripts[i], strlen(scripts[i]), d);
        for (int k = 0; k < SHA_DIGEST_LENGTH; k++) snprintf(e->sha[i] + 2 * k, 3, "%02x", d[k]);
    }
    if (hr_loop_init(&e->loop, e)) {
        snprintf(err, errlen, "redis engine: cannot create its event loop");
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->up_cv);
        hr_free(e->prefix);
        hr_free(e->node_address);
        hr_free(e);
        hr_free(cfgs);
        return NULL;
    }
    e->loop.on_wake = on_wake;
    e->loop.on_turn_end = on_turn_end;
    e->nshards = count;
    atomic_init(&e->shards_down, count);
    e->shards = hr_calloc((size_t)count, sizeof(rshard));
    for (int i = 0; i < count; i++) {
        rshard *sh = &e->shards[i];
        sh->e = e;
        sh->idx = i;
        hr_redis_conn_hooks hooks = {on_push, on_up, on_down, sh, on_message};
        sh->conn = hr_redis_conn_new(&e->loop, &cfgs[i], &hooks);
    }
    hr_free(cfgs);
    hr_timer_init(&e->refresh, on_refresh_timer);
    uint64_t every = HR_MIN(e->presence_ttl_ms, e->node_ttl_ms) / 3;
    hr_timer_start(&e->loop.wheel, &e->refresh, every ? every : 1000);
    if (pthread_create(&e->thread, NULL, engine_main, e)) {
        snprintf(err, errlen, "redis engine: pthread_create failed");
        r_free(&e->base);
        return NULL;
    }
    e->started = true;
    /* start-up: wait (bounded by the connect timeout) for every shard, so a
     * node does not answer its first requests with 503 */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (o->connect_timeout_ms ? o->connect_timeout_ms : 3000) * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    pthread_mutex_lock(&e->mu);
    while (e->shards_up < e->nshards)
        if (pthread_cond_timedwait(&e->up_cv, &e->mu, &ts)) break;
    int up = e->shards_up;
    pthread_mutex_unlock(&e->mu);
    if (up < e->nshards)
        hr_logf(HR_LOG_WARN, "redis_shards_down", "redis: %d of %d Redis servers not reachable yet: their channels answer 503 until they are", e->nshards - up,
                e->nshards);
    return &e->base;
}
