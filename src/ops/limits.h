/* limits.h - abuse limits shared by all workers: connections and handshake
 * rate per client address, a ban after too many rejected tokens, and token
 * buckets for client publishes per connection and per user, and the HTTP
 * emulation sessions per address (docs/security.md, [limits] and [poll] in
 * docs/config.md).
 *
 * Addresses are reduced to a 32-bit key (IPv4, IPv4-mapped IPv6 as IPv4,
 * other IPv6 masked to limits.ipv6_prefix bits) hashed with a per-process
 * random seed; two addresses whose keys collide share their counters (about
 * one pair in 4 billion, and not choosable from outside). The tables are
 * striped by key, each stripe with its own mutex, and only touched at
 * accept, close, a rejected token, a rate-limited publish and a session's
 * start and end — never per delivery. With every limit at 0 nothing is
 * counted. The per-connection buckets (publishes, new channels) live in the
 * caller's connection state. */
#ifndef HERALD_OPS_LIMITS_H
#define HERALD_OPS_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/cidr.h"

typedef struct hr_limits hr_limits;

/* The [limits] options (and poll.max_sessions_per_ip), filled by the server
 * from its config (docs/config.md has each one's meaning); 0 = off. */
typedef struct hr_limits_opts {
    int64_t connections_per_ip;
    int64_t handshakes_per_ip;
    int64_t handshake_burst_per_ip;
    int64_t auth_failures_per_ip;
    int64_t auth_failure_window_ms;
    int64_t auth_failure_ban_ms;
    int64_t publishes_per_connection;
    int64_t publish_burst;
    int64_t publishes_per_user;
    int64_t channels_per_connection;
    int64_t channel_burst;
    int64_t ipv6_prefix;
    int64_t poll_max_sessions_per_ip;
} hr_limits_opts;

/* The tables, with a copy of opts. */
hr_limits *hr_limits_new(const hr_limits_opts *opts);
void hr_limits_free(hr_limits *l);

/* Whether accept must compute a key and call admit/release at all. */
bool hr_limits_track_ips(const hr_limits *l);

/* The key of a peer address (never 0; 0 = "not tracked"). */
uint32_t hr_limits_ip_key(const hr_limits *l, const struct sockaddr *sa, socklen_t len);

typedef enum hr_admit {
    HR_ADMIT_OK = 0,
    HR_ADMIT_TOO_MANY = 1,   /* limits.connections_per_ip reached: 503 */
    HR_ADMIT_TOO_FAST = 2,   /* limits.handshakes_per_ip: 429 */
    HR_ADMIT_BANNED = 3,     /* too many rejected tokens lately: 429 */
} hr_admit;

/* A new connection from key (the address addr, NULL if unknown: kept for
 * the ban log line) at now_ms: counted when HR_ADMIT_OK (release it with
 * hr_limits_release when it closes); otherwise *retry_after_s says when
 * trying again makes sense (for Retry-After). */
hr_admit hr_limits_admit(hr_limits *l, uint32_t key, const hr_ipaddr *addr, uint64_t now_ms,
                         uint32_t *retry_after_s);
void hr_limits_release(hr_limits *l, uint32_t key, uint64_t now_ms);

/* A long-polling / streaming session opened for key (poll.max_sessions_per_ip):
 * true = counted (release it with hr_limits_session_end when the session
 * ends), false = the address has its maximum. */
bool hr_limits_session_begin(hr_limits *l, uint32_t key, uint64_t now_ms);
void hr_limits_session_end(hr_limits *l, uint32_t key, uint64_t now_ms);

/* A token from key was rejected. Returns true when this failure started a
 * ban (the caller may log it once), with the address's text in who[0..cap)
 * (who may be NULL; "an unknown address" when admit was not told it). */
bool hr_limits_auth_failure(hr_limits *l, uint32_t key, uint64_t now_ms, char *who, size_t cap);
/* How long key stays banned by hr_limits_auth_failure (ms; 0 = not banned):
 * for a front end that checks a password on a connection admitted earlier. */
uint32_t hr_limits_ban_left(hr_limits *l, uint32_t key, uint64_t now_ms);
/* The same for callers: l and key may be NULL / 0, jwt_rc is hr_auth_verify's
 * result; an expired token is the normal refresh flow and does not count.
 * Logs the start of a ban, naming the address. */
void hr_limits_bad_token(hr_limits *l, uint32_t key, uint64_t now_ms, int jwt_rc);

/* A token bucket (8 bytes, zero-initialised = full at first use). */
typedef struct hr_bucket {
    float used;              /* tokens taken and not yet refilled: 0 = full */
    uint32_t last_ms;        /* low 32 bits of the loop clock at the last refill */
} hr_bucket;

/* Take one token: true if allowed. rate per second (> 0), burst (0 = 2 x
 * rate). When refused, *retry_ms (if non-NULL) is the wait for the next token. */
bool hr_bucket_take(hr_bucket *b, int64_t rate, int64_t burst, uint64_t now_ms, uint32_t *retry_ms);

/* One client publish: the per-connection bucket (limits.publishes_per_connection,
 * the caller's) and, for an authenticated user, the user's shared bucket
 * (limits.publishes_per_user). true = allowed. */
bool hr_limits_publish(hr_limits *l, hr_bucket *conn_bucket, const char *user, uint64_t now_ms,
                       uint32_t *retry_ms);

/* A client command (publish, subscribe, history) about to touch `channel`
 * through engine e: when e keeps channels in this process and does not hold
 * this one yet, creating it takes a token of the connection's bucket
 * (limits.channels_per_connection / channel_burst). true = allowed; when
 * refused, *retry_ms (if non-NULL) is the wait for the next token. */
struct hr_engine;
bool hr_limits_new_channel(hr_limits *l, hr_bucket *conn_bucket, struct hr_engine *e, const char *channel,
                           size_t len, uint64_t now_ms, uint32_t *retry_ms);

/* Addresses tracked now (for tests). */
size_t hr_limits_tracked(const hr_limits *l);

#endif
