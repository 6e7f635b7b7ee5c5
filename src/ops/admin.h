/* admin.h - the admin UI's logins (docs/operations.md "Admin UI",
 * docs/security.md): who is an administrator, and the rules of the reserved
 * channel namespace "$admin" (ops.c applies them to every front end).
 *
 * A login checks the configured password (constant time; failures count in
 * the abuse limits' auth-failure ban of the client's address, as rejected
 * tokens do) and opens a session: a 256-bit cookie value, a CSRF token that
 * every action must echo in a header, and a connection credential
 * ("hadm.<hex>") that the native protocol and SSE accept as a connection
 * token for the reserved user HR_ADMIN_USER, the only user that may
 * subscribe to "$admin:" channels. Sessions live in one small table shared
 * by the workers (a mutex: logins and actions are not a hot path), at most
 * admin.max_sessions (a login past it ends the oldest), each for
 * admin.session_ttl; logging out ends the session and its credential. */
#ifndef HERALD_OPS_ADMIN_H
#define HERALD_OPS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hr_limits;

/* The user id of an admin connection; a JWT may not claim it. */
#define HR_ADMIN_USER "$admin"
/* The reserved namespace (channels "$admin:..."). */
#define HR_ADMIN_NS "$admin"
/* The channel every node publishes its statistics to. */
#define HR_ADMIN_STATS_CHANNEL "$admin:stats"
/* Prefix of a connection credential. */
#define HR_ADMIN_TOKEN_PREFIX "hadm."

#define HR_ADMIN_SECRET_HEX 64     /* 256-bit values as hex */

typedef enum hr_admin_err {
    HR_ADMIN_OK = 0,
    HR_ADMIN_E_PASSWORD = -1,      /* wrong password (counted against the address) */
    HR_ADMIN_E_BANNED = -2,        /* the address is banned (limits.auth_failures_per_ip) */
    HR_ADMIN_E_SESSION = -3,       /* no such session, or it expired */
    HR_ADMIN_E_CSRF = -4,          /* the CSRF token is missing or wrong */
} hr_admin_err;

typedef struct hr_admin hr_admin;

/* What a login hands out (NUL-terminated hex). */
typedef struct hr_admin_session_ids {
    char sid[HR_ADMIN_SECRET_HEX + 1];   /* the cookie value */
    char csrf[HR_ADMIN_SECRET_HEX + 1];  /* X-Herald-CSRF */
} hr_admin_session_ids;

hr_admin *hr_admin_new(const char *password, int64_t session_ttl_ms, int64_t max_sessions);
void hr_admin_free(hr_admin *a);

/* Log in from the address key (limits may be NULL): OK with *out filled, or
 * E_BANNED (*retry_ms set) or E_PASSWORD. */
int hr_admin_login(hr_admin *a, struct hr_limits *limits, uint32_t key, uint64_t now_ms, const char *pw,
                   size_t pwlen, hr_admin_session_ids *out, uint32_t *retry_ms);
/* Whether sid names a live session and csrf is its token (csrf NULL: only
 * the session is checked). */
int hr_admin_check(hr_admin *a, const char *sid, size_t sidlen, const char *csrf, size_t csrflen,
                   uint64_t now_ms);
/* End sid's session (nothing when there is none). */
void hr_admin_logout(hr_admin *a, const char *sid, size_t sidlen);
/* The connection credential of sid's session into out (its prefix and
 * HR_ADMIN_SECRET_HEX digits, NUL-terminated), or E_SESSION. */
#define HR_ADMIN_TOKEN_LEN (sizeof(HR_ADMIN_TOKEN_PREFIX) - 1 + HR_ADMIN_SECRET_HEX)
int hr_admin_token(hr_admin *a, const char *sid, size_t sidlen, uint64_t now_ms, char out[HR_ADMIN_TOKEN_LEN + 1]);
/* Whether tok is a connection credential (its prefix), and whether it is a
 * live session's (OK or E_SESSION). */
bool hr_admin_is_token(const char *tok, size_t len);
int hr_admin_verify_token(hr_admin *a, const char *tok, size_t len, uint64_t now_ms);

/* Whether an admin session may run the server API's method `name` (publish,
 * history, presence, channels, info, disconnect, unsubscribe). */
bool hr_admin_may_call(const char *name, size_t len);

/* Whether ch is in the reserved namespace. */
bool hr_admin_reserved(const char *ch, size_t len);

#endif
