/* http1.h - zero-copy HTTP/1.1 request parser and chunked body decoder.
 *
 * Codecs do no I/O. The request parser is given the bytes read so far; it
 * either finds a complete request head and fills `hr_http_request` with
 * pointers INTO the caller's buffer (nothing is copied), or says it needs more
 * bytes, or returns an error that maps to an HTTP status.
 *
 * To stay linear on a client that sends one byte at a time (slowloris), the
 * caller keeps `hr_http_parser` across calls; the parser remembers how far it
 * has already scanned for the end of the head. */
#ifndef HERALD_CODEC_HTTP1_H
#define HERALD_CODEC_HTTP1_H

#include "core/common.h"

/* Parser results (negative = error). */
enum hr_http_result {
    HR_HTTP_INCOMPLETE = -2,          /* need more bytes (same value as HR_ERR_AGAIN) */
    HR_HTTP_E_BAD_REQUEST = -100,     /* 400 malformed request line / header */
    HR_HTTP_E_HEADERS_TOO_LARGE = -101, /* 431 head larger than max_head_bytes */
    HR_HTTP_E_TOO_MANY_HEADERS = -102,  /* 431 more than max_headers fields */
    HR_HTTP_E_URI_TOO_LONG = -103,    /* 414 request-target longer than max_target_bytes */
    HR_HTTP_E_VERSION = -104,         /* 505 not HTTP/1.0 or HTTP/1.1 */
    HR_HTTP_E_BAD_LENGTH = -105,      /* 400 bad/duplicate Content-Length, or CL with TE */
    HR_HTTP_E_BAD_ENCODING = -106,    /* 501 Transfer-Encoding other than chunked */
    HR_HTTP_E_BAD_CHUNK = -107,       /* 400 malformed chunked body */
    HR_HTTP_E_BODY_TOO_LARGE = -108,  /* 413 chunked body beyond limit */
};

/* HTTP status code to send for a parser error (400, 413, 414, 431, 501, 505). */
int hr_http_error_status(int err);
/* Short human text for a parser error ("header section too large", ...). */
const char *hr_http_error_text(int err);

typedef struct hr_http_header {
    const char *name;
    size_t name_len;
    const char *value;   /* leading/trailing spaces and tabs stripped */
    size_t value_len;
} hr_http_header;

typedef struct hr_http_limits {
    size_t max_head_bytes;   /* request line + headers + final CRLF */
    size_t max_headers;      /* number of header fields; <= header array capacity */
    size_t max_target_bytes; /* request-target length */
} hr_http_limits;

typedef struct hr_http_request {
    const char *method;
    size_t method_len;
    const char *target;      /* raw request-target as sent */
    size_t target_len;
    const char *path;        /* target up to '?' (or whole target) */
    size_t path_len;
    const char *query;       /* after '?', NULL if none */
    size_t query_len;
    int version_minor;       /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    hr_http_header *headers; /* the caller's array */
    size_t num_headers;
    /* Derived from the headers, for the caller's convenience: */
    int64_t content_length;  /* -1 when absent */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool keep_alive;         /* HTTP/1.1 default on unless "Connection: close";
                                HTTP/1.0 off unless "Connection: keep-alive" */
    bool expect_continue;    /* "Expect: 100-continue" */
    size_t head_len;         /* bytes of the head, including the final CRLFCRLF */
} hr_http_request;

typedef struct hr_http_parser {
    size_t scanned;          /* bytes already searched for the end of head */
    /* Internal resume state, zeroed by hr_http_parser_init(): */
    size_t line_start;       /* offset of the request line (after empty lines) */
    size_t target_start;     /* offset of the request-target */
    int phase;               /* which part of the head the scan has reached */
} hr_http_parser;

void hr_http_parser_init(hr_http_parser *p);

/* Parse a request head from buf[0..len). headers/cap is the caller's array.
 * Returns head length (> 0) on success, HR_HTTP_INCOMPLETE, or an error.
 * Tolerates (skips) leading empty lines (CRLF) before the request line, as
 * RFC 9112 §2.2 allows; those bytes are counted in the returned length.
 * Rejects: bare CR, obs-fold, whitespace between name and colon, invalid
 * token characters in method or field names, control characters in values
 * (except HTAB), both Content-Length and Transfer-Encoding, differing
 * duplicate Content-Length, non-digits in Content-Length.
 *
 * Between INCOMPLETE calls the caller may only append to buf (the bytes
 * already seen must stay put); each byte is scanned once. After a successful
 * parse the parser is reset, ready for the next (pipelined) request, which
 * the caller passes starting at buf + head_len (+ body). head_len never
 * exceeds lim->max_head_bytes (leading empty lines count toward it). For an
 * absolute-form target without a path, `path` points at a static "/" rather
 * than into buf; for authority-form (CONNECT) it is the whole target. `req`
 * is only meaningful when the call succeeds. */
int hr_http_parse_request(hr_http_parser *p, const char *buf, size_t len,
                          const hr_http_limits *lim, hr_http_request *req,
                          hr_http_header *headers, size_t cap);

/* Case-insensitive header lookup; returns NULL if absent. */
const hr_http_header *hr_http_find_header(const hr_http_request *req, const char *name);

/* Does a comma-separated header value contain `token` (case-insensitive)?
 * e.g. hr_http_has_token("keep-alive, Upgrade", 19, "upgrade") == true */
bool hr_http_has_token(const char *value, size_t len, const char *token);

/* Incremental, in-place chunked-body decoder. */
typedef struct hr_http_chunked {
    int state;
    uint64_t chunk_left;     /* data bytes left in the current chunk */
    uint64_t total;          /* decoded bytes so far */
    uint64_t max_body;       /* limit on decoded bytes (0 = unlimited) */
    size_t line_len;         /* length of the current size/trailer line */
} hr_http_chunked;

void hr_http_chunked_init(hr_http_chunked *c, uint64_t max_body);

/* Decode buf[0..*len) in place: on return, buf[0..*out_len) holds the decoded
 * data bytes of this call, and *len is set to the number of input bytes
 * consumed (the caller keeps the unconsumed rest). Returns 1 when the body is
 * complete (last chunk and trailers read), 0 when more input is needed, or
 * HR_HTTP_E_BAD_CHUNK / HR_HTTP_E_BODY_TOO_LARGE. Chunk extensions are
 * skipped; trailer fields are skipped; size lines longer than 1024 bytes
 * and trailers longer than 8 KiB are errors. */
int hr_http_chunked_decode(hr_http_chunked *c, char *buf, size_t *len, size_t *out_len);

#endif
