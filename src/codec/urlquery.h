/* urlquery.h - the URL query-string codec (RFC 3986 percent-decoding,
 * parameters by name or one by one), no I/O. Used by every endpoint that
 * reads a query: URL subscriptions (/ws/raw, /sse: protocol/urlsubs.c), SSE
 * and long-polling parameters, and the Pusher HTTP API's signed query and
 * its `info` / `filter_by_prefix` (ops/pusher_app.c, transport/pusher_api.c).
 * A malformed escape ('%' not followed by two hex digits) is an error to the
 * caller, never passed through. */
#ifndef HERALD_CODEC_URLQUERY_H
#define HERALD_CODEC_URLQUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Percent-decode s[0..n) into out (cap bytes; out may be s). "%XX" (hex,
 * either case) becomes one byte; '+' stays '+' (RFC 3986 query, not form
 * encoding: channel names may contain '+' and never a space). Returns the
 * decoded length, or -1 on a malformed escape ('%' not followed by two hex
 * digits) or when out is too small. */
ssize_t hr_url_decode(const char *s, size_t n, char *out, size_t cap);

/* One "name=value" piece of a query, as written (not decoded): value is
 * empty (vlen 0) and has_value false when the piece has no '='. */
typedef struct hr_query_param {
    const char *name, *value;
    size_t nlen, vlen;
    bool has_value;
} hr_query_param;

/* The next non-empty piece of q[0..n) ("a=1&&b" has two) from *pos (0 at
 * first); *pos moves past it. 1: found, 0: no more. */
int hr_query_param_next(const char *q, size_t n, size_t *pos, hr_query_param *p);

/* The next parameter named `name` (compared after decoding) in the query
 * string q[0..n) ("a=1&b=2&a=3"), starting at *pos (0 at first). Its value
 * (empty when there is no '=') is decoded into out[0..cap) and its length
 * stored in *len. Returns 1 when found (*pos moves past it), 0 when there is
 * no more, HR_ERR_PROTO on a malformed escape in its value, HR_ERR_TOO_BIG
 * when the decoded value does not fit in cap. Empty pieces ("a=1&&b") and
 * other parameters (even malformed ones) are skipped. */
int hr_query_next(const char *q, size_t n, size_t *pos, const char *name, char *out, size_t cap, size_t *len);

#endif
