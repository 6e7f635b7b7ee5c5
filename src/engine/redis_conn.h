/* redis_conn.h - one Redis connection on a Herald event loop: non-blocking
 * connect, RESP3 handshake (HELLO 3), pipelined commands whose reply
 * callbacks run in order, RESP3 push messages (pub/sub) to a hook,
 * reconnection with exponential backoff and jitter, PING keepalive, and a
 * bounded queue of commands awaiting replies.
 *
 * Threading: everything runs on the loop's thread (engine/redis.c gives the
 * connections a loop of their own); no function here is thread-safe.
 *
 * While the connection is not up, hr_redis_conn_send fails at once
 * (HR_ERR_CLOSED): nothing is queued for later, so a caller never waits on
 * a dead Redis. When a connection is lost, every command still awaiting a
 * reply gets its callback with HR_ERR_CLOSED. */
#ifndef HERALD_ENGINE_REDIS_CONN_H
#define HERALD_ENGINE_REDIS_CONN_H

#include "codec/resp.h"
#include "core/buf.h"
#include "core/loop.h"

#include "core/hist.h"

#include <sys/socket.h>

typedef struct hr_redis_conn hr_redis_conn;

/* A reply: err 0 with r (an HR_RESP_ERROR reply is still err 0: look at
 * r->type), or err < 0 (HR_ERR_CLOSED: the connection was lost) with r NULL.
 * r is valid during the call only. */
typedef void (*hr_redis_reply_cb)(void *ud, int err, const hr_resp *r);

typedef struct hr_redis_conn_hooks {
    void (*on_push)(void *ud, const hr_resp *r);    /* RESP3 push (subscribe confirmation, other pushes) */
    void (*on_up)(void *ud);                         /* handshake done: commands may be sent */
    void (*on_down)(void *ud, const char *why);      /* connection lost (after failing the pending replies) */
    void *ud;
    /* Optional: a pub/sub publication ("message" / "pmessage" push), read
     * without a reply tree (hr_resp_parse_message); without it such pushes
     * go to on_push too. */
    void (*on_message)(void *ud, const hr_resp_message *m);
} hr_redis_conn_hooks;

/* The commands counted apart (by their name; the engine's Lua scripts go by EVALSHA). */
#define HR_REDIS_CMD_NAMES(X) X(EVALSHA) X(EVAL) X(PUBLISH) X(SET) X(DEL) X(HDEL) X(ZREM) X(PING)
#define HR_REDIS_CMD_ENUM(n) HR_REDIS_CMD_##n,
enum { HR_REDIS_CMD_NAMES(HR_REDIS_CMD_ENUM) HR_REDIS_CMD_OTHER, HR_REDIS_CMD__N };
#undef HR_REDIS_CMD_ENUM
extern const char *const hr_redis_cmd_names[HR_REDIS_CMD__N]; /* lower case; "other" last */

/* A connection's counters: written by its loop's thread, read by any (/metrics). */
typedef struct hr_redis_conn_stats {
    atomic_uint_fast64_t commands[HR_REDIS_CMD__N]; /* commands queued that expect a reply, by name */
    atomic_uint_fast64_t errors;      /* error replies, and replies lost with the connection */
    atomic_uint_fast64_t reconnects;  /* handshakes completed after the first */
    atomic_uint_fast64_t up;          /* 1 while connected (HELLO done) */
    /* counted by the connection's user (hr_redis_conn_count_messages): */
    atomic_uint_fast64_t messages;    /* publications received through pub/sub */
    atomic_uint_fast64_t message_batches; /* hand-overs to the hub that carried them */
    hr_hist latency;                  /* command queued to its reply */
} hr_redis_conn_stats;

typedef struct hr_redis_conn_cfg {
    char addr[300];                   /* "HOST:PORT", for messages */
    struct sockaddr_storage ss;       /* resolved address */
    socklen_t sl;
    uint64_t connect_timeout_ms;      /* connect + handshake */
    uint64_t ping_interval_ms;        /* keepalive; a PING unanswered by the next interval drops the connection */
    uint64_t backoff_min_ms, backoff_max_ms;
    size_t max_pending;               /* commands awaiting replies; more: HR_ERR_TOO_BIG */
    size_t max_reply;                 /* largest reply (bytes) */
    char user[128];                   /* with password: HELLO 3 AUTH user password */
    char password[256];               /* "" = no AUTH */
} hr_redis_conn_cfg;

/* Resolve "HOST:PORT" (or "[IPv6]:PORT") into cfg (blocking: call at start-up). */
int hr_redis_resolve(const char *spec, size_t len, hr_redis_conn_cfg *cfg, char *err, size_t errlen);

/* A connection that starts connecting at once and keeps reconnecting until freed. */
hr_redis_conn *hr_redis_conn_new(hr_loop *loop, const hr_redis_conn_cfg *cfg, const hr_redis_conn_hooks *hooks);
/* Fail pending callbacks (HR_ERR_CLOSED), close, free. */
void hr_redis_conn_free(hr_redis_conn *c);
bool hr_redis_conn_up(const hr_redis_conn *c);
const hr_redis_conn_stats *hr_redis_conn_get_stats(const hr_redis_conn *c);
/* "HOST:PORT" as configured. */
const char *hr_redis_conn_addr(const hr_redis_conn *c);

/* Queue one serialized command (hr_resp_cmd bytes, copied) whose reply goes
 * to cb (cb NULL: reply dropped). Returns 0; or HR_ERR_CLOSED when the
 * connection is not up, HR_ERR_TOO_BIG when max_pending replies are awaited
 * - then cb is not called. Bytes leave on hr_redis_conn_flush. */
int hr_redis_conn_send(hr_redis_conn *c, const uint8_t *cmd, size_t len, hr_redis_reply_cb cb, void *ud);
/* Queue a command that has no reply of its own in RESP3 (SUBSCRIBE,
 * UNSUBSCRIBE, PSUBSCRIBE...: their confirmations come as pushes). */
int hr_redis_conn_send_noreply(hr_redis_conn *c, const uint8_t *cmd, size_t len);
/* Write what is queued (as much as the socket takes; the rest on EPOLLOUT). */
void hr_redis_conn_flush(hr_redis_conn *c);
/* The connection's user handed n publications it received on c to the hub
 * at once (the messages / message_batches counters). */
void hr_redis_conn_count_messages(hr_redis_conn *c, size_t n);
/* Commands awaiting replies. */
size_t hr_redis_conn_pending(const hr_redis_conn *c);

#endif
