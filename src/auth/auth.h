/* auth.h - token authentication of clients, on top of the JWT verifier
 * (jwt.h): the server's current key set and verification options, built
 * from its options (hr_auth_opts, which the server fills from the [auth]
 * options and [auth.key.NAME] sections of the config), swapped
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
#include "auth/policy.h"
#include "core/buf.h"

typedef struct hr_auth hr_auth;

/* hr_auth_verify: no key is configured, so no token can be accepted. */
#define HR_AUTH_ERR_DISABLED (-110)

/* One [auth.key.NAME] section: a token verification key (docs/auth.md). */
typedef struct hr_auth_key_cfg {
    char *name;
    char *alg;                  /* HS256 | HS384 | HS512 | RS256 | ES256 | EdDSA */
    char *kid;                  /* NULL = the section name */
    char *secret;               /* HMAC secret (text) */
    char *secret_file;          /* HMAC secret from a file (trailing newline dropped) */
    char *public_key_file;      /* PEM public key or certificate (asymmetric) */
    char *private_key_file;     /* PEM private key: `herald token` signs with it (and its public half verifies) */
    uint32_t set;               /* bit i: hr_auth_key_keys[i] (server/config.c) was set */
} hr_auth_key_cfg;

/* What the verifier is built from (the [auth] options and [auth.key.NAME]
 * sections; texts are copied, the caller keeps ownership). */
typedef struct hr_auth_opts {
    const char *token_hmac_secret;  /* HS256 key for tokens without kid (NULL or "" = none) */
    const hr_auth_key_cfg *keys;    /* named keys */
    size_t nkeys;
    const char *audience;           /* aud a token must carry (NULL or "" = not checked) */
    const char *issuer;             /* iss a token must carry (NULL or "" = not checked) */
    int64_t leeway_ms;              /* clock skew allowed on exp / nbf */
    bool require_exp;
    int64_t max_token_bytes;
    int64_t refresh_grace_ms;
} hr_auth_opts;

/* Reloads the options for SIGHUP (the server re-reads its configuration as
 * at start) and applies them with hr_auth_reload_from: 0 or a negative code
 * with a message. */
typedef int (*hr_auth_loader)(hr_auth *a, void *ud, char *err, size_t errlen);

/* Build from o (reads the key files). NULL with a message naming the
 * option ("auth.key.rsa.public_key_file: ...") when a key is unusable.
 * Options without any key give an hr_auth that refuses every token. */
hr_auth *hr_auth_new(const hr_auth_opts *o, char *err, size_t errlen);
void hr_auth_free(hr_auth *a);
/* How hr_auth_reload re-reads the configuration. */
void hr_auth_set_loader(hr_auth *a, hr_auth_loader fn, void *ud);
/* SIGHUP: reload the options through the loader, build a new key set and
 * swap it in. On any error the old keys stay and the error is
 * logged. Returns 0 or the negative error. */
int hr_auth_reload(hr_auth *a);
/* Swap in the keys and options of o (what the loader does after
 * loading). 0, or a negative code with a message and nothing changed. */
int hr_auth_reload_from(hr_auth *a, const hr_auth_opts *o, char *err, size_t errlen);
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

/* The key set of o, built as hr_auth_new does (used by `herald token`
 * to check what it signs). */
int hr_auth_build_keys(const hr_auth_opts *o, hr_jwt_keys **out, char *err, size_t errlen);
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
