/* urlsubs.h - subscriptions named in a URL (?channel=a&channel=b), shared by
 * the endpoints whose clients subscribe through the request line and speak
 * no protocol to do it: raw WebSocket mode (/ws/raw, protocol/raw.c) and
 * Server-Sent Events (/sse, transport/sse.c).
 *
 *   - the `channel` parameters checked the way a native subscribe checks
 *     them (names and patterns, namespace configured, user-limited channels,
 *     anonymous access, channels.max_subscriptions), with an HTTP status and
 *     a message naming the channel when one is refused;
 *   - subscribing a client to all of them or none (max_subscribers), then
 *     presence and join events; leaving a channel (presence, leave event) -
 *     both the operations' side effects (hr_op_subscribe_commit, hr_op_leave);
 *   - which of a client's subscriptions delivers a publication that several
 *     match (an exact channel and a pattern, two patterns): these clients
 *     cannot tell copies apart, so exactly one does.
 *
 * Raw and SSE clients may carry a connection token (user, channels) and
 * subscription tokens (hr_urlsubs_auth); without one they are anonymous. */
#ifndef HERALD_PROTOCOL_URLSUBS_H
#define HERALD_PROTOCOL_URLSUBS_H

#include "codec/urlquery.h" /* hr_url_decode, hr_query_next: the query codec its users read */
#include "hub/hub.h"
#include "ops/ops.h"

#include <sys/types.h>

/* ---- channels of a URL ---------------------------------------------------------------- */

typedef struct hr_chan_ref {
    const char *p;             /* decoded name, in the caller's buffer */
    size_t n;
    bool pattern;
    hr_chan_policy pol;        /* its namespace's options */
} hr_chan_ref;

/* Who is asking, for the messages of refusals. */
typedef struct hr_urlsubs_who {
    const char *clients;       /* "raw clients": "... not available to anonymous raw clients" */
    const char *usage;         /* "/ws/raw?channel=NAME": shown when no channel is given */
    bool hooks;                /* the front end asks the subscribe hooks (hr_op_subscribe_hook) of channels
                                  with proxy_subscribe; otherwise they are refused (501) */
} hr_urlsubs_who;

/* Parse and check every `channel` parameter of q[0..qlen) (q may be NULL)
 * into *refs (allocated, hr_free it), names decoded into buf (qlen + 1
 * bytes at least). A channel given twice counts once. Returns 0, or an HTTP
 * status with a message in msg (nothing allocated):
 *   400  no channel, a malformed escape, an invalid name or pattern, more
 *        than channels.max_subscriptions channels, an unknown namespace;
 *   403  a user-limited channel (#), a namespace refusing anonymous clients. */
int hr_urlsubs_parse(const hr_ops_opts *opts, const hr_urlsubs_who *who, const char *q, size_t qlen, char *buf,
                     hr_chan_ref **refs, size_t *nrefs, char *msg, size_t cap);

/* Who the client is, when it brought tokens. */
typedef struct hr_urlsubs_auth {
    const char *user;              /* "" = anonymous */
    const char *const *granted;    /* channels of valid subscription tokens (for this user) */
    size_t ngranted;
    const char *const *channels;   /* the connection token's channels: added, and allowed */
    size_t nchannels;
} hr_urlsubs_auth;

/* hr_urlsubs_parse for a client with tokens (auth NULL = anonymous):
 * user-limited channels open to auth->user, the namespace's subscribe rule
 * applied (docs/auth.md), a granted channel passes it, and the token's
 * channels come after the URL's. 403 names the rule that refused. */
int hr_urlsubs_parse_auth(const hr_ops_opts *opts, const hr_urlsubs_who *who, const hr_urlsubs_auth *auth,
                          const char *q, size_t qlen, char *buf, hr_chan_ref **refs, size_t *nrefs, char *msg,
                          size_t cap);

/* Subscribe c to every ref, in order. Returns 0, or 503 with a message when
 * a channel already has its namespace's max_subscribers: then every
 * subscription made here is undone. */
int hr_urlsubs_subscribe(hr_client *c, const hr_chan_ref *refs, size_t n, char *msg, size_t cap);

/* Once every channel is accepted: hr_op_subscribe_commit for each concrete
 * channel - presence (where its namespace has presence; sub->presence is
 * set) and a join push (where it has join_leave, up to
 * channels.join_leave_max_subscribers). */
void hr_urlsubs_announce(hr_client *c, const hr_ops_opts *opts, const hr_chan_ref *refs, size_t n);
/* The same with the connection token's info (compact JSON, may be NULL) in
 * presence and the join push. */
void hr_urlsubs_announce_info(hr_client *c, const hr_ops_opts *opts, const hr_chan_ref *refs, size_t n, const char *info);

/* Leave one subscription (hr_op_leave: unsubscribe, leave presence, leave
 * push with the connection token's info, which may be NULL). */
void hr_urlsubs_leave(hr_client *c, const hr_ops_opts *opts, const char *info, hr_sub *sub);

/* Of c's subscriptions matching pub's channel, does `sub` deliver it? The
 * exact subscription does; else the first matching pattern in c's list. */
bool hr_urlsubs_delivers(const hr_client *c, const hr_sub *sub, const hr_pub *pub);

#endif
