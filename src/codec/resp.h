/* resp.h - the Redis protocol (RESP2 and RESP3) with no I/O: a reply parser
 * (bytes in, a tree of values out) and a command serializer (arguments in,
 * bytes out). Used by engine/redis_conn.c.
 *
 * Parsing is two passes over the bytes at hand: the first checks that one
 * whole reply is there (or says HR_ERR_AGAIN) and counts its values; the
 * second fills one array of nodes. Strings are not copied: they point into
 * the caller's buffer, so the reply is valid while that buffer is unchanged.
 * RESP3 attributes (|) are parsed and dropped. */
#ifndef HERALD_CODEC_RESP_H
#define HERALD_CODEC_RESP_H

#include "core/buf.h"
#include "core/common.h"

typedef enum hr_resp_type {
    HR_RESP_SIMPLE = 1, /* +OK */
    HR_RESP_ERROR,      /* -ERR ... and RESP3 blob errors (!) */
    HR_RESP_INT,        /* :42 */
    HR_RESP_BULK,       /* $3 abc, and RESP3 verbatim strings (=, without the "txt:" prefix) */
    HR_RESP_NIL,        /* $-1, *-1, _ */
    HR_RESP_ARRAY,      /* * and RESP3 sets (~) */
    HR_RESP_MAP,        /* % : n is the number of keys, elem holds 2n values */
    HR_RESP_PUSH,       /* > : out-of-band data (RESP3 pub/sub messages) */
    HR_RESP_DOUBLE,     /* , : text in str */
    HR_RESP_BOOL,       /* # : integer 0 or 1 */
    HR_RESP_BIGNUM,     /* ( : text in str */
} hr_resp_type;

typedef struct hr_resp {
    uint8_t type;
    int64_t integer;          /* INT, BOOL */
    const char *str;          /* SIMPLE, ERROR, BULK, DOUBLE, BIGNUM (not NUL-terminated) */
    size_t len;
    struct hr_resp *elem;     /* ARRAY, PUSH: n values; MAP: 2n (key, value, ...) */
    size_t n;
} hr_resp;

typedef struct hr_resp_limits {
    size_t max_depth;         /* nesting of aggregates (a top-level array is depth 1) */
    size_t max_bulk;          /* longest string */
    size_t max_elems;         /* most values in one reply, over all levels */
} hr_resp_limits;

#define HR_RESP_LIMITS_DEFAULT {16, 512u * 1024 * 1024, 10u * 1000 * 1000}

/* One reply from buf. Returns 0 with *out (free with hr_resp_free) and
 * *consumed set, HR_ERR_AGAIN when the reply is not complete yet,
 * HR_ERR_PROTO for bytes that are not RESP, HR_ERR_TOO_BIG past a limit. */
int hr_resp_parse(const uint8_t *buf, size_t len, const hr_resp_limits *lim, hr_resp **out, size_t *consumed);
void hr_resp_free(hr_resp *r);

/* A pub/sub publication as Redis pushes it (RESP3): "message" (channel,
 * data) or "pmessage" (pattern, channel, data). Strings point into the
 * caller's buffer, like hr_resp's. */
typedef struct hr_resp_message {
    const char *pattern;      /* NULL for "message" */
    size_t pattern_len;
    const char *channel;
    size_t channel_len;
    const char *data;
    size_t data_len;
} hr_resp_message;

/* The fast path for a reader of many publications: when buf starts with a
 * whole push of exactly that shape (>3 $7 message $ $, or >4 $8 pmessage
 * $ $ $, within lim), fill *m and *consumed and return true, building no
 * tree; hr_resp_parse gives the same push. false for anything else,
 * incomplete input included: parse it with hr_resp_parse. */
bool hr_resp_parse_message(const uint8_t *buf, size_t len, const hr_resp_limits *lim, hr_resp_message *m,
                           size_t *consumed);

/* Append a command's head (an array of argc bulk strings) to b; then each
 * argument with hr_resp_cmd_arg. */
void hr_resp_cmd_head(hr_buf *b, size_t argc);
void hr_resp_cmd_arg(hr_buf *b, const void *s, size_t len);
/* An argument written in pieces: this head, then its len bytes, then "\r\n". */
void hr_resp_cmd_arg_head(hr_buf *b, size_t len);
/* Append a command (an array of bulk strings) to b. */
void hr_resp_cmd(hr_buf *b, size_t argc, const char *const *argv, const size_t *lens);
/* Same, with NUL-terminated arguments and a NULL after the last one. */
void hr_resp_cmdv(hr_buf *b, ...);

/* Helpers for readers of replies. */
bool hr_resp_is_str(const hr_resp *r);  /* SIMPLE or BULK */
bool hr_resp_eq(const hr_resp *r, const char *s);  /* a string value equal to s */
/* Integer value of INT, or of a SIMPLE/BULK holding a decimal integer. */
int hr_resp_int(const hr_resp *r, int64_t *v);

#endif
