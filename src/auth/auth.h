/* auth.h - token authentication of clients, on top of the JWT verifier
 * (jwt.h): the server's current key set and verification options, built
 * from the config ([auth] options and [auth.key.NAME] sections), swapped
 * whole on SIGHUP; verification of connection and subscription tokens; and
 * the per-namespace permission rules (subscribe, publish, history_for,
 * presence_for) that every transport applies the same way. docs/auth.md.
 *
 * Threads: hr_auth_verify may be called from any worker at any time. A
 * reload builds a new snapshot (keys + options) and publishes it with one
 * atomic store; old snapshots are kept until hr_auth_free (reloads are rare
 * and a snapshot is small), so a worker in the middle of a verification
 * never sees its keys freed. */
#ifndef HERALD_AUTH_AUTH_H
#define HERALD_AUTH_AUTH_H

#include "auth/jwt.h"
#include "core/buf.h"
#include "server/config.h"

typedef struct hr_auth hr_auth;

/* hr_auth_verify: no key is configured, so no token can be accepted. */
#define HR_AUTH_ERR_DISABLED (-110)

/* Re-reads the configuration for a reload (defaults < file < environment <
 * flags, as at start): fills *out (already defaulted) or returns a negative
 * code with a message. */
typedef int (*hr_auth_loader)(hr_config *out, void *ud, char *err, size_t errlen);

/* Build from cfg (reads the key files). NULL with a message naming the
 * option ("auth.key.rsa.public_key_file: ...") when a key is unusable. A
 * config without any key gives an hr_auth that refuses every token. */
hr_auth *hr_auth_new(const hr_config *cfg, char *err, size_t errlen);
void hr_auth_free(hr_auth *a);
/* How hr_auth_reload re-reads the configuration. */
void hr_auth_set_loader(hr_auth *a, hr_auth_loader fn, void *ud);
/* SIGHUP: re-read the configuration through the loader, build a new key
 * set and swap it in. On any error the old keys stay and the error is
 * logged. Returns 0 or the negative error. */
int hr_auth_reload(hr_auth *a);
/* Swap in the keys and options of cfg (what hr_auth_reload does after
 * loading). 0, or a negative code with a message and nothing changed. */
int hr_auth_reload_from(hr_auth *a, const hr_config *cfg, char *err, size_t errlen);
/* Keys in the current set (0: tokens are refused). */
size_t hr_auth_key_count(const hr_auth *a);

/* Verify a token (connection or subscription: the caller looks at the
 * claims it needs). a may be NULL (no token authentication). 0 with *out
 * filled (hr_jwt_claims_free it), or a negative code with *why set to a
 * static text: HR_AUTH_ERR_DISABLED when no key is configured, else a
 * hr_jwt_err (HR_JWT_ERR_EXPIRED: the client should fetch a new token). */
int hr_auth_verify(const hr_auth *a, const char *token, size_t len, hr_jwt_claims *out, const char **why);
/* auth.refresh_grace of the current snapshot, in ms. */
int64_t hr_auth_refresh_grace_ms(const hr_auth *a);

/* The key set of cfg, built as hr_auth_new does (used by `herald token`
 * to check what it signs). */
int hr_auth_build_keys(const hr_config *cfg, hr_jwt_keys **out, char *err, size_t errlen);
/* Read a whole (small) file into out; 0 or a negative code with a message. */
int hr_auth_read_file(const char *path, hr_buf *out, char *err, size_t errlen);

/* ---- permissions (pure functions) ------------------------------------------------ */

/* The subscribe rule of a namespace, allow_anonymous folded in. */
int64_t hr_perm_subscribe_of(const hr_chan_policy *pol);
/* The publish rule of a namespace, allow_publish folded in. */
int64_t hr_perm_publish_of(const hr_chan_policy *pol);

/* May a client subscribe? authenticated: its connection has a user;
 * sub_token: it presented a valid subscription token for this channel and
 * user. true, or false with *detail saying why. */
bool hr_perm_may_subscribe(const hr_chan_policy *pol, bool authenticated, bool sub_token, const char **detail);
/* May a client publish? subscribed: it is subscribed to the channel. */
bool hr_perm_may_publish(const hr_chan_policy *pol, bool authenticated, bool subscribed, const char **detail);
/* May a client read history (presence: false) or presence (true)? */
bool hr_perm_may_read(const hr_chan_policy *pol, bool presence, bool authenticated, bool subscribed,
                      const char **detail);

#endif
