/* channel_name.h - channel names: validation, namespaces, personal channels
 * and wildcard patterns. Pure functions, no I/O, no allocation.
 *
 * Grammar (docs/protocol.md):
 *   - 1..max_len bytes of  A-Z a-z 0-9 and  _ - = @ . : # , / ! ~ + $ %
 *     (no spaces, no control characters, no quotes; "*" and ">" are only
 *     valid in patterns);
 *   - namespace: the part before the first ':' ("chat:room1" -> "chat");
 *     a name without ':' is in the default namespace ("");
 *   - user-limited channels: a '#' after which comes a comma-separated user
 *     list ("dm:#alice,bob" is reachable only by alice and bob; "#alice" is
 *     alice's personal channel in the default namespace);
 *   - hierarchy: segments separated by '.' ("prices.eu.btc.usd").
 *
 * Patterns (subscribe only): segments separated by '.'; a segment "*"
 * matches exactly one segment; a last segment ">" matches one or more
 * segments. "prices.*.usd" matches "prices.btc.usd" but not
 * "prices.eu.btc.usd"; "prices.>" matches both and not "prices". A pattern
 * must keep the namespace literal ("chat:*" is a pattern over
 * namespace chat; "*:x" is invalid). */
#ifndef HERALD_HUB_CHANNEL_NAME_H
#define HERALD_HUB_CHANNEL_NAME_H

#include "core/common.h"

enum hr_chan_result {
    HR_CHAN_OK = 0,
    HR_CHAN_E_EMPTY = -300,
    HR_CHAN_E_TOO_LONG = -301,
    HR_CHAN_E_CHARSET = -302,      /* a byte outside the allowed set */
    HR_CHAN_E_PATTERN = -303,      /* '*' or '>' misplaced (in a name, or not a whole segment, or '>' not last) */
    HR_CHAN_E_SEGMENT = -304,      /* empty segment: "a..b", ".a", "a." */
    HR_CHAN_E_USERS = -305,        /* malformed user list after '#' */
};

const char *hr_chan_error_text(int err);

/* Validate a concrete channel name (no wildcards). */
int hr_chan_validate(const char *name, size_t len, size_t max_len);
/* Validate a subscription pattern; *is_pattern tells whether it contains
 * wildcards (a plain valid name is a valid "pattern" with is_pattern false). */
int hr_chan_validate_pattern(const char *pattern, size_t len, size_t max_len, bool *is_pattern);
/* Does the concrete name match the pattern? (both assumed valid) */
bool hr_chan_match(const char *pattern, size_t plen, const char *name, size_t nlen);

/* Namespace of a name: writes the namespace slice ("" for none). */
void hr_chan_namespace(const char *name, size_t len, const char **ns, size_t *ns_len);

/* If the channel is user-limited ('#' present), is `user` one of its users?
 * Returns 1 when limited and allowed, 0 when limited and not allowed, -1
 * when the channel is not user-limited. An empty user is never allowed. */
int hr_chan_user_allowed(const char *name, size_t len, const char *user, size_t ulen);

#endif
