/* parse.h - the small codecs of `herald bench`, no I/O: the benchmark
 * payload (build and fast parse), HTTP/1.1 response heads, Server-Sent
 * Events streams, and percent-encoding for query strings.
 *
 * Payload: a compact JSON object with the send time, the channel index and
 * the channel's sequence number first, padded to a fixed size:
 *
 *     {"t":12345678901234,"c":0,"s":17,"p":"xxxxxxxx"}
 *
 * Servers deliver it byte for byte (Herald re-serializes publication data
 * compactly, member order and numbers as written; nchan and ws deliver the
 * POST body), so the receiver reads t, c and s from fixed places without a
 * JSON parser; anything else falls back to a key search. */
#ifndef HERALD_BENCH_PARSE_H
#define HERALD_BENCH_PARSE_H

#include "core/buf.h"
#include "core/common.h"

/* ---- payload ------------------------------------------------------------- */

/* Length of the payload without padding ("p":"" included). */
size_t hr_bench_payload_min_len(uint64_t t, uint64_t c, uint64_t s);
/* Write the payload padded to `target` bytes (or its minimal length when
 * larger) into out; returns its length, or 0 when out (cap bytes) is too
 * small. No NUL is written. */
size_t hr_bench_payload_build(char *out, size_t cap, uint64_t t, uint64_t c, uint64_t s, size_t target);
/* Read t, c and s from a payload. Fast path for the exact layout above;
 * otherwise each key is searched for ("t": anywhere at the top level is
 * good enough for a benchmark). False when one is missing or not a
 * non-negative integer. */
bool hr_bench_payload_parse(const uint8_t *p, size_t n, uint64_t *t, uint64_t *c, uint64_t *s);

/* A Pusher protocol message (--transport pusher): 1 when it is an event
 * whose "data" string holds a payload, written unescaped into out (cap
 * bytes) with *n its length; 2 for pusher_internal:subscription_succeeded;
 * 0 for anything else (other pusher: events, a payload too big for out). */
int hr_bench_pusher_msg(const uint8_t *p, size_t len, char *out, size_t cap, size_t *n);

/* ---- HTTP/1.1 responses --------------------------------------------------- */

typedef struct hr_bench_resp {
    int status;              /* 100..599 */
    size_t head_len;         /* bytes up to and including the blank line */
    int64_t content_length;  /* -1 when absent */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool conn_close;         /* Connection: close */
} hr_bench_resp;

/* Parse a response head at buf[0..len). Returns 1 (complete, r filled),
 * 0 (need more bytes), or HR_ERR_PROTO (not an HTTP/1.x status line, or a
 * bad Content-Length). Header lines may end in CRLF or LF. */
int hr_bench_parse_response(const char *buf, size_t len, hr_bench_resp *r);
/* Find a header's value in a head (case-insensitive name, value trimmed).
 * The first line (status line) is skipped. */
bool hr_bench_header(const char *head, size_t len, const char *name, const char **val, size_t *vlen);
/* Is `tok` one of the comma-separated tokens of a header value (case-insensitive)? */
bool hr_bench_has_token(const char *v, size_t n, const char *tok);

/* ---- Server-Sent Events --------------------------------------------------- */

/* Called once per event of type "message" (no event field, an empty one, or
 * "event: message": what EventSource.onmessage sees) that carried at least
 * one data line: the data lines
 * joined with '\n' (per the EventSource rules; a single data line is passed
 * in place, several are joined in `scratch`). */
typedef void (*hr_bench_sse_cb)(void *ctx, const uint8_t *data, size_t len);

/* Parse the complete events in buf[0..len) (each ends with an empty line;
 * lines end with LF, CRLF or CR, except that a final CR is left unconsumed
 * since an LF may follow); returns the bytes consumed: the caller keeps the
 * rest (an incomplete event) and passes it again with more bytes. Comment
 * lines (":...") and the id and retry fields are ignored; named events
 * ("event: connected") are skipped whole. `scratch` is
 * used only for multi-line data. */
size_t hr_bench_sse_parse(const uint8_t *buf, size_t len, hr_bench_sse_cb cb, void *ctx, hr_buf *scratch);

/* ---- URLs ----------------------------------------------------------------- */

/* Percent-encode s for a query value (everything but A-Z a-z 0-9 - _ . ~).
 * Returns the length written (NUL-terminated), or 0 when out is too small. */
size_t hr_bench_urlencode(const char *s, char *out, size_t cap);

#endif
