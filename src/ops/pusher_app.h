/* pusher_app.h - the Pusher Channels apps (docs/pusher.md): the app table
 * ([pusher.app.NAME] sections), the mapping of a Pusher channel name to the
 * Herald channel that carries it, the channel policy of the reserved
 * Pusher namespaces, and the HMAC-SHA256 signature checks of private /
 * presence subscriptions and of pusher:signin. The rules live here (the ops
 * layer, called by ops.c) so every front end - the Pusher WebSocket protocol,
 * a native client or the server API reaching a Pusher channel, the Pusher
 * HTTP API /apps/{app_id}/... (transport/pusher_api.c) - applies the same
 * ones; the front ends only map the results to their wire forms. The HTTP
 * API's signed query and its replay set are checked here too.
 *
 * Mapping: Pusher channel NAME of the app with app_id ID is the Herald
 * channel "$pusher-ID:" + escaped(NAME). NAME is made of A-Z a-z 0-9 and
 * _ - = @ , . ; (Pusher's charset), 1..max_channel_name_length bytes.
 * escaped() writes ';' as "%3B" and a '.' that would start an empty
 * segment in Herald's grammar (the first byte, the last byte, or a '.'
 * right after a '.') as "%2E"; every other byte is itself. Pusher names
 * never contain '%', so the reverse (hr_pusher_from_herald) is exact. */
#ifndef HERALD_OPS_PUSHER_APP_H
#define HERALD_OPS_PUSHER_APP_H

#include "auth/policy.h"
#include "core/buf.h"
#include "core/common.h"

#include <stdatomic.h>

/* One app ([pusher.app.NAME]). The server fills it from the config and keeps
 * it for the process's life; only `connections` changes afterwards. */
typedef struct hr_pusher_app {
    char *name;                          /* the section's NAME */
    char *app_id;                        /* required: the HTTP API's /apps/{app_id}, the namespace */
    char *key;                           /* required: the client endpoint's /app/{key} */
    char *secret;                        /* required: signs private/presence auth, signin, the HTTP API */
    bool enabled;                        /* false: clients are refused with 4003 */
    bool client_events;                  /* client-* events on private-/presence- channels */
    bool user_authentication;            /* pusher:signin accepted */
    int64_t activity_timeout_ms;         /* told to clients; the server pings an idle one after it */
    int64_t max_connections;             /* 0 = unbounded; past it: 4100 */
    int64_t max_client_events_per_second;
    int64_t max_presence_members;        /* distinct user_ids per presence channel */
    int64_t max_channel_name_length;
    char *webhook_url;                   /* "" = none */
    char *webhook_events;                /* "" = all of HR_PUSHER_WEBHOOK_EVENTS */
    int64_t max_event_channels;          /* HTTP API: channels of one event (Pusher: 100) */
    int64_t max_batch_events;            /* HTTP API: events of one batch_events (Pusher: 10) */
    int64_t api_replay_cache;            /* HTTP API: signatures remembered against replays (0 = off) */
    uint32_t set;                        /* config bookkeeping: bit i = hr_pusher_app_keys[i] was set */
    _Atomic int64_t connections;         /* open client connections of this app, every worker */
    struct hr_pusher_seen *seen;         /* the HTTP API's recent signatures (hr_pusher_api_start) */
} hr_pusher_app;

#define HR_PUSHER_WEBHOOK_EVENTS "channel_occupied,channel_vacated,member_added,member_removed,client_event"

/* The app table (none: n == 0, no route, no cost). */
typedef struct hr_pusher_apps {
    hr_pusher_app *v;
    size_t n;
} hr_pusher_apps;

/* Result codes of this module. */
enum hr_pusher_err {
    HR_PUSHER_E_NAME = -1900,            /* not a Pusher channel name (charset, empty) */
    HR_PUSHER_E_NAME_LONG = -1901,       /* longer than the app's max_channel_name_length */
    HR_PUSHER_E_SIGNATURE = -1902,       /* an auth signature that does not verify (or is malformed) */
    HR_PUSHER_E_NOT_PUSHER = -1903,      /* a Herald channel outside the Pusher namespaces */
    HR_PUSHER_E_UNKNOWN_APP = -1904,     /* a Pusher namespace of no configured app */
};

/* The apps' lookups (NULL when none matches or t is NULL). */
const hr_pusher_app *hr_pusher_app_by_key(const hr_pusher_apps *t, const char *key, size_t len);
const hr_pusher_app *hr_pusher_app_by_id(const hr_pusher_apps *t, const char *id, size_t len);

/* What a channel name's prefix makes it (Pusher's channel types). */
enum hr_pusher_chan_flags {
    HR_PUSHER_CH_PRIVATE = 1,            /* private-*: a signature over socket_id:channel */
    HR_PUSHER_CH_PRESENCE = 2,           /* presence-*: a signature over socket_id:channel:channel_data */
    HR_PUSHER_CH_ENCRYPTED = 4,          /* private-encrypted-*: payloads are ciphertext, no client events */
    HR_PUSHER_CH_CACHE = 8,              /* cache-*, private-cache-*, presence-cache-*, private-encrypted-cache-* */
};
int hr_pusher_chan_flags(const char *name, size_t len);
/* Does this channel need a signature to subscribe to? */
static inline bool hr_pusher_chan_signed(int flags) { return flags & (HR_PUSHER_CH_PRIVATE | HR_PUSHER_CH_PRESENCE); }

/* The channel pusher-js subscribes to after pusher:signin for user ID's
 * server-to-user events; it maps to the app's user channel
 * (hr_pusher_user_channel) and back. */
#define HR_PUSHER_USER_PREFIX "#server-to-user-"

/* Check a Pusher channel name against the charset and the app's length. */
int hr_pusher_name_check(const hr_pusher_app *app, const char *name, size_t len);
/* Append the Herald channel of app's Pusher channel `name` to out (the
 * name checked first: 0, or HR_PUSHER_E_NAME / _NAME_LONG, out unchanged).
 * "#server-to-user-ID" is the user channel of ID. */
int hr_pusher_to_herald(const hr_pusher_app *app, const char *name, size_t len, hr_buf *out);
/* The Herald channel `ch` of a Pusher namespace: its app (through t) and the
 * Pusher name appended to out. HR_PUSHER_E_NOT_PUSHER, HR_PUSHER_E_UNKNOWN_APP. */
int hr_pusher_from_herald(const hr_pusher_apps *t, const char *ch, size_t len, const hr_pusher_app **app,
                          hr_buf *out);
/* Is ch in a Pusher namespace ("$pusher-...:")? */
bool hr_pusher_reserved(const char *ch, size_t len);
/* The Herald channel of user user_id's server-to-user events (the HTTP API
 * publishes there, a signed-in connection is subscribed): "$pusher-ID:#" +
 * user_id, only for user ids made of channel-name characters; 0 or
 * HR_PUSHER_E_NAME. */
int hr_pusher_user_channel(const hr_pusher_app *app, const char *user_id, size_t len, hr_buf *out);
/* A signed-in user of app as server commands name it ("$pusher-ID:" + the
 * user id, HR_PUSHER_E_NAME for an id the user channel refuses): the
 * terminate_connections target, so it reaches that app's sessions only —
 * never another app's user, nor a native client, with the same id (no
 * token may claim a "$pusher-" user: hr_op_verify_token). */
int hr_pusher_scoped_user(const hr_pusher_app *app, const char *user_id, size_t len, hr_buf *out);
/* Whether target is app's scoped form of user (a signed-in session's). */
bool hr_pusher_user_matches(const hr_pusher_app *app, const char *user, const char *target);
/* The prefix of every Pusher app's reserved namespace and scoped users. */
#define HR_PUSHER_NS_PREFIX "$pusher-"

/* The channel policy of ch, a channel of a Pusher namespace (the rules of
 * docs/pusher.md): `base` is what [channels] gives; subscribing needs a
 * credential (HR_PERM_TOKEN) on private-/presence- channels, presence and
 * join/leave are on for presence- channels, cache- channels keep at least
 * one publication, clients publish (client events) only on private- and
 * presence- channels that are not encrypted, and only when the app has
 * client_events. *app is the channel's app. HR_PUSHER_E_UNKNOWN_APP,
 * HR_PUSHER_E_NAME. */
int hr_pusher_policy(const hr_pusher_apps *t, const hr_chan_policy *base, const char *ch, size_t len,
                     hr_chan_policy *out, const hr_pusher_app **app);

/* ---- signatures ---------------------------------------------------------------------- */

/* Signatures are hex(HMAC-SHA256(secret, msg)): hr_hmac_sha256_hex (core/hmac.h). */
/* Equal in time independent of where they differ (lengths may differ). */
bool hr_pusher_ct_equal(const char *a, size_t alen, const char *b, size_t blen);
/* A subscription's auth, "KEY:HEX": the app's key, and the HMAC of
 * "socket_id:channel" (channel_data NULL) or "socket_id:channel:channel_data"
 * (presence). 0 or HR_PUSHER_E_SIGNATURE. */
int hr_pusher_check_channel_auth(const hr_pusher_app *app, const char *socket_id, const char *channel, size_t clen,
                                 const char *channel_data, size_t dlen, const char *auth, size_t alen);
/* pusher:signin's auth: the HMAC of "socket_id::user::user_data". */
int hr_pusher_check_user_auth(const hr_pusher_app *app, const char *socket_id, const char *user_data, size_t dlen,
                              const char *auth, size_t alen);

/* The client-event rate (max_client_events_per_second, burst the same): a
 * per-connection bucket the front end keeps; true when one more event may go
 * now (its token spent). now_ms: the loop clock. */
typedef struct hr_pusher_rate {
    uint64_t window_ms;                  /* start of the current second */
    uint32_t n;                          /* events sent in it */
} hr_pusher_rate;
bool hr_pusher_rate_take(const hr_pusher_app *app, hr_pusher_rate *r, uint64_t now_ms);

/* max_connections: count one more connection of app (true), or refuse it
 * (false, nothing counted) when the app has that many open on this node;
 * hr_pusher_conn_give when a counted one ends. */
bool hr_pusher_conn_take(const hr_pusher_app *app);
void hr_pusher_conn_give(const hr_pusher_app *app);

/* max_presence_members: may user_id join a presence channel whose members
 * (distinct user ids, user_id itself not among them) number `members`? */
static inline bool hr_pusher_presence_room(const hr_pusher_app *app, size_t members)
{
    return members < (size_t)app->max_presence_members;
}

/* ---- the HTTP API's signed requests (/apps/{app_id}/...) ------------------------------ */

typedef struct hr_pusher_seen hr_pusher_seen;

/* Result codes of the HTTP API's checks. */
enum hr_pusher_api_err {
    HR_PUSHER_E_AUTH = -1910,            /* a missing or bad auth_* parameter, signature or body_md5 */
    HR_PUSHER_E_EXPIRED = -1911,         /* auth_timestamp more than HR_PUSHER_API_WINDOW_S from now */
    HR_PUSHER_E_REPLAY = -1912,          /* this signature was accepted before (api_replay_cache) */
    HR_PUSHER_E_QUERY = -1913,           /* a malformed %-escape in the query ('%' not followed by two hex digits) */
};

/* How far auth_timestamp may be from the server's clock (Pusher's 600 s). */
#define HR_PUSHER_API_WINDOW_S 600

/* One HTTP API request as it came: the method, the path (no query), the
 * raw query string (still %-encoded), the body, and the wall clock. */
typedef struct hr_pusher_api_req {
    const char *method;
    size_t mlen;
    const char *path;
    size_t plen;
    const char *query;
    size_t qlen;
    const void *body;
    size_t blen;
    int64_t now_s;
} hr_pusher_api_req;

/* Make (and free) every app's replay set (api_replay_cache signatures);
 * before the workers start, after they stopped. */
void hr_pusher_api_start(hr_pusher_apps *t);
void hr_pusher_api_stop(hr_pusher_apps *t);

/* Pusher's request signature, in this order: auth_key is the app's key,
 * auth_version 1.0, auth_timestamp within HR_PUSHER_API_WINDOW_S of now_s,
 * body_md5 the hex MD5 of a non-empty body, auth_signature the hex
 * HMAC-SHA256(secret, "METHOD\nPATH\nQUERY") where QUERY is every other
 * parameter, %-decoded, sorted by name, "k=v" joined by '&' (compared in
 * constant time); then the signature must be new (api_replay_cache). 0, or
 * HR_PUSHER_E_QUERY (a malformed %-escape: the query cannot be read) /
 * _AUTH / _EXPIRED / _REPLAY with *why a static explanation. */
int hr_pusher_api_check(const hr_pusher_app *app, const hr_pusher_api_req *r, const char **why);

/* The Pusher user id of a presence entry (info {"user_id":..} of a Pusher
 * connection, else the connection's user) appended to out. */
void hr_pusher_member_id(const char *info, const char *user, hr_buf *out);

#endif
