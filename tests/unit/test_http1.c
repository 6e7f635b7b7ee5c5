/* test_http1.c - unit tests for the HTTP/1.1 request parser and the chunked
 * body decoder (codec/http1.c). Mostly table-driven: every request case is
 * parsed whole and again fed one byte at a time; every chunked case is decoded
 * whole, split at every position and byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/http1.h"

#define HDR_CAP 64

static const hr_http_limits lim_default = {8192, 32, 1024};
static const hr_http_limits lim_small = {64, 3, 16};

/* ---- request table ------------------------------------------------------ */

typedef struct exp_header {
    const char *name;
    const char *value;
} exp_header;

typedef struct req_case {
    const char *desc;
    const char *raw;
    size_t raw_len;          /* 0: strlen(raw) */
    int result;              /* 0: success, else HR_HTTP_INCOMPLETE / HR_HTTP_E_* */
    int status;              /* expected HTTP status for errors (0: not checked) */
    const hr_http_limits *lim; /* NULL: lim_default */
    /* Expectations on success: */
    const char *method;
    const char *target;      /* NULL: not checked */
    const char *path;
    const char *query;       /* NULL: request has no query */
    int minor;
    bool has_cl;
    int64_t cl;
    bool chunked;
    bool keep_alive;
    bool expect_continue;
    size_t num_headers;
    exp_header headers[4];   /* checked in order up to the first NULL name */
} req_case;

#define OK11 .result = 0, .minor = 1, .keep_alive = true
#define ERR(code, st) .result = (code), .status = (st)

static const req_case req_cases[] = {
    /* --- valid requests --- */
    {"simple GET", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, OK11, .method = "GET",
     .target = "/", .path = "/", .num_headers = 1, .headers = {{"Host", "example.com"}}},
    {"query split", "GET /search?q=herald&x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11,
     .method = "GET", .target = "/search?q=herald&x=1", .path = "/search",
     .query = "q=herald&x=1", .num_headers = 1},
    {"empty query", "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11, .method = "GET",
     .path = "/a", .query = "", .num_headers = 1},
    {"second ? stays in query", "GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11,
     .method = "GET", .path = "/a", .query = "b?c", .num_headers = 1},
    {"absolute-form", "GET http://example.com/p/q?x=y HTTP/1.1\r\nHost: example.com\r\n\r\n", 0,
     OK11, .method = "GET", .target = "http://example.com/p/q?x=y", .path = "/p/q",
     .query = "x=y", .num_headers = 1},
    {"absolute-form no path", "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", 0,
     OK11, .method = "GET", .target = "http://example.com", .path = "/", .num_headers = 1},
    {"absolute-form query no path", "GET https://h:8443?a=b HTTP/1.1\r\nHost: h\r\n\r\n", 0,
     OK11, .method = "GET", .path = "/", .query = "a=b", .num_headers = 1},
    {"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11, .method = "OPTIONS",
     .target = "*", .path = "*", .num_headers = 1},
    {"authority-form CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     0, OK11, .method = "CONNECT", .target = "example.com:443", .path = "example.com:443",
     .num_headers = 1},
    {"authority-form IPv6", "CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, OK11,
     .method = "CONNECT", .path = "[::1]:8080", .num_headers = 1},
    {"extension method", "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11, .method = "PURGE",
     .path = "/x", .num_headers = 1},
    {"lowercase method is a token", "get /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11,
     .method = "get", .path = "/x", .num_headers = 1},
    {"HTTP/1.0 defaults to close", "GET /old HTTP/1.0\r\n\r\n", 0, .result = 0, .minor = 0,
     .keep_alive = false, .method = "GET", .path = "/old", .num_headers = 0},
    {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, .result = 0,
     .minor = 0, .keep_alive = true, .method = "GET", .path = "/", .num_headers = 1},
    {"HTTP/1.0 Keep-Alive mixed case", "GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", 0,
     .result = 0, .minor = 0, .keep_alive = true, .method = "GET", .path = "/",
     .num_headers = 1},
    {"HTTP/1.0 keep-alive overridden by close",
     "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, .result = 0, .minor = 0,
     .keep_alive = false, .method = "GET", .path = "/", .num_headers = 1},
    {"HTTP/1.0 Expect ignored", "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
     0, .result = 0, .minor = 0, .method = "PUT", .path = "/x", .has_cl = true, .cl = 3,
     .expect_continue = false, .num_headers = 2},
    {"HTTP/1.1 Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0,
     .result = 0, .minor = 1, .keep_alive = false, .method = "GET", .path = "/",
     .num_headers = 2},
    {"HTTP/1.1 Connection: Upgrade keeps alive",
     "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
     0, OK11, .method = "GET", .path = "/ws", .num_headers = 3,
     .headers = {{"Host", "a"}, {"Connection", "keep-alive, Upgrade"}, {"Upgrade", "websocket"}}},
    {"close in second Connection field",
     "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nConnection: CLOSE\r\n\r\n", 0,
     .result = 0, .minor = 1, .keep_alive = false, .method = "GET", .path = "/",
     .num_headers = 3},
    {"Connection: closed is not close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
     0, OK11, .method = "GET", .path = "/", .num_headers = 2},
    {"leading CRLF tolerated", "\r\n\r\nGET /lead HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11,
     .method = "GET", .path = "/lead", .num_headers = 1},
    {"value trimming",
     "GET / HTTP/1.1\r\nHost:   a b \t \r\nX-Empty:\r\nX-Ws: \t \r\nX-Tab:\ta\tb\t\r\n\r\n", 0, OK11,
     .method = "GET", .path = "/", .num_headers = 4,
     .headers = {{"Host", "a b"}, {"X-Empty", ""}, {"X-Ws", ""}, {"X-Tab", "a\tb"}}},
    {"obs-text allowed", "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \x80\xff\r\n\r\n", 0,
     OK11, .method = "GET", .path = "/", .num_headers = 2,
     .headers = {{"Host", "a"}, {"X-Name", "caf\xc3\xa9 \x80\xff"}}},
    {"all tchar in name", "GET / HTTP/1.1\r\nHost: a\r\nX-!#$%&'*+.^_`|~09az: v\r\n\r\n", 0,
     OK11, .method = "GET", .path = "/", .num_headers = 2,
     .headers = {{"Host", "a"}, {"X-!#$%&'*+.^_`|~09az", "v"}}},
    {"empty Host allowed", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, OK11, .method = "GET",
     .path = "/", .num_headers = 1, .headers = {{"Host", ""}}},
    {"Content-Length", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 0, OK11,
     .method = "POST", .path = "/p", .has_cl = true, .cl = 5, .num_headers = 2},
    {"Content-Length zero", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0, OK11,
     .method = "POST", .path = "/p", .has_cl = true, .cl = 0, .num_headers = 2},
    {"Content-Length leading zeros", "POST /p HTTP/1.1\r\nHost: a\r\ncontent-length: 007\r\n\r\n",
     0, OK11, .method = "POST", .path = "/p", .has_cl = true, .cl = 7, .num_headers = 2},
    {"Content-Length INT64_MAX",
     "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", 0, OK11,
     .method = "POST", .path = "/p", .has_cl = true, .cl = INT64_MAX, .num_headers = 2},
    {"duplicate identical Content-Length",
     "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, OK11,
     .method = "POST", .path = "/p", .has_cl = true, .cl = 5, .num_headers = 3},
    {"Content-Length list of identical values",
     "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5 ,5\r\n\r\n", 0, OK11, .method = "POST",
     .path = "/p", .has_cl = true, .cl = 5, .num_headers = 2},
    {"chunked", "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0, OK11,
     .method = "POST", .path = "/c", .chunked = true, .num_headers = 2},
    {"chunked mixed case, empty list elements",
     "POST /c HTTP/1.1\r\nHost: a\r\ntransfer-encoding: , Chunked ,\r\n\r\n", 0, OK11,
     .method = "POST", .path = "/c", .chunked = true, .num_headers = 2},
    {"Expect: 100-continue", "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
     "Content-Length: 10\r\n\r\n", 0, OK11, .method = "PUT", .path = "/u", .has_cl = true,
     .cl = 10, .expect_continue = true, .num_headers = 3},
    {"other Expect ignored", "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-x\r\n\r\n", 0,
     OK11, .method = "PUT", .path = "/u", .expect_continue = false, .num_headers = 2},
    {"headers at the limit", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", 0, OK11,
     .lim = &lim_small, .method = "GET", .path = "/", .num_headers = 3},
    {"target at the limit", "GET /234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK11,
     .lim = &lim_small, .method = "GET", .path = "/234567890123456", .num_headers = 1},
    {"head exactly max_head_bytes",
     "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789012345678901234567\r\n\r\n", 0, OK11,
     .lim = &lim_small, .method = "GET", .path = "/", .num_headers = 2},

    /* --- incomplete --- */
    {"empty buffer", "", 0, .result = HR_HTTP_INCOMPLETE},
    {"only leading CRLF", "\r\n\r\n\r\n", 0, .result = HR_HTTP_INCOMPLETE},
    {"no final CRLF", "GET / HTTP/1.1\r\nHost: a\r\n", 0, .result = HR_HTTP_INCOMPLETE},
    {"ends in CR", "GET / HTTP/1.1\r\nHost: a\r\n\r", 0, .result = HR_HTTP_INCOMPLETE},

    /* --- line endings --- */
    {"bare LF request line", "GET / HTTP/1.1\nHost: a\n\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"bare LF in field", "GET / HTTP/1.1\r\nHost: a\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"bare LF as end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"bare LF leading", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"bare CR in value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"bare CR leading", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"CR CR LF", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},

    /* --- request line --- */
    {"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"control in method", "GE\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"tab instead of space", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"method only", "GET\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"missing version", "GET /\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"lowercase http", "GET / http/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"garbage version HTTX", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"version HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"version HTTP/11", "GET / HTTP/11\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"version HTTP/1.x", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"version HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_VERSION, 505)},
    {"version HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_VERSION, 505)},
    {"version HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_VERSION, 505)},
    {"control in target", "GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"DEL in target", "GET /a\x7fz HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"fragment in target", "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"scheme without //", "GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"absolute-form empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"CONNECT with origin-form", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"CONNECT without port", "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"CONNECT bad port", "CONNECT example.com:44x HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},

    /* --- field lines --- */
    {"field without colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"non-token field name", "GET / HTTP/1.1\r\nHo@st: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"control in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0z\r\n\r\n", 35,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"two Host fields HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},

    /* --- message length --- */
    {"Content-Length non-digit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length plus sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length trailing junk", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n",
     0, ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 6\r\n\r\n",
     0, ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length empty list element",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length INT64_MAX + 1",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length huge",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"duplicate differing Content-Length",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"Content-Length list of differing values",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: 0\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"CL with TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
     "Content-Length: 3\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_LENGTH, 400)},
    {"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_ENCODING, 501)},
    {"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_ENCODING, 501)},
    {"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     0, ERR(HR_HTTP_E_BAD_ENCODING, 501)},
    {"TE chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     0, ERR(HR_HTTP_E_BAD_ENCODING, 501)},
    {"TE chunked twice in two fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n", 0, ERR(HR_HTTP_E_BAD_ENCODING, 501)},
    {"TE chunked with parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
     0, ERR(HR_HTTP_E_BAD_ENCODING, 501)},
    {"TE chunkedx", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_ENCODING, 501)},
    {"TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
     ERR(HR_HTTP_E_BAD_REQUEST, 400)},

    /* --- limits (lim_small: 64 head bytes, 3 fields, 16 target bytes) --- */
    {"too many headers", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0,
     ERR(HR_HTTP_E_TOO_MANY_HEADERS, 431), .lim = &lim_small},
    {"target too long", "GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", 0,
     ERR(HR_HTTP_E_URI_TOO_LONG, 414), .lim = &lim_small},
    {"target too long, head incomplete", "GET /2345678901234567", 0,
     ERR(HR_HTTP_E_URI_TOO_LONG, 414), .lim = &lim_small},
    {"head one byte over max_head_bytes",
     "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 01234567890123456789012345678\r\n\r\n", 0,
     ERR(HR_HTTP_E_HEADERS_TOO_LARGE, 431), .lim = &lim_small},
    {"no end of head within max_head_bytes",
     "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 01234567890123456789012345678901", 0,
     ERR(HR_HTTP_E_HEADERS_TOO_LARGE, 431), .lim = &lim_small},
    {"leading CRLF count toward max_head_bytes",
     "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
     "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 0, ERR(HR_HTTP_E_HEADERS_TOO_LARGE, 431),
     .lim = &lim_small},
};

static size_t case_len(const req_case *c)
{
    return c->raw_len ? c->raw_len : strlen(c->raw);
}

static void assert_span(const char *p, size_t n, const char *want)
{
    assert_non_null(p);
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)n, p, want);
}

/* Check a successful result against the case and check that every pointer
 * lies inside buf (the one documented exception: absolute-form without path). */
static void check_request(const req_case *c, const char *buf, size_t len,
                          const hr_http_request *req)
{
    assert_true(req->head_len <= len);
    assert_span(req->method, req->method_len, c->method);
    if (c->target) assert_span(req->target, req->target_len, c->target);
    assert_span(req->path, req->path_len, c->path);
    if (c->query) assert_span(req->query, req->query_len, c->query);
    else assert_null(req->query);
    assert_int_equal(req->version_minor, c->minor);
    assert_int_equal(req->content_length, c->has_cl ? c->cl : -1);
    assert_int_equal(req->chunked, c->chunked);
    assert_int_equal(req->keep_alive, c->keep_alive);
    assert_int_equal(req->expect_continue, c->expect_continue);
    assert_int_equal(req->num_headers, c->num_headers);
    for (size_t i = 0; i < HR_ARRAY_LEN(c->headers) && c->headers[i].name; i++) {
        assert_span(req->headers[i].name, req->headers[i].name_len, c->headers[i].name);
        assert_span(req->headers[i].value, req->headers[i].value_len, c->headers[i].value);
    }

    const char *end = buf + req->head_len;
    assert_true(req->method >= buf && req->method + req->method_len <= end);
    assert_true(req->target >= buf && req->target + req->target_len <= end);
    if (!(req->path >= buf && req->path + req->path_len <= end))
        assert_true(req->path_len == 1 && req->path[0] == '/');
    if (req->query) assert_true(req->query >= buf && req->query + req->query_len <= end);
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header *h = &req->headers[i];
        assert_true(h->name >= buf && h->name + h->name_len <= end);
        assert_true(h->value >= buf && h->value + h->value_len <= end);
    }
}

static void check_result(const req_case *c, int r, const char *buf, size_t len,
                         const hr_http_request *req)
{
    if (c->result == 0) {
        if (r <= 0) fail_msg("%s: got %d (%s), want success", c->desc, r, hr_http_error_text(r));
        assert_int_equal((size_t)r, len);
        assert_int_equal(req->head_len, len);
        check_request(c, buf, len, req);
    } else {
        if (r != c->result) fail_msg("%s: got %d, want %d", c->desc, r, c->result);
        if (c->status) assert_int_equal(hr_http_error_status(r), c->status);
    }
}

static void test_table_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(req_cases); i++) {
        const req_case *c = &req_cases[i];
        size_t len = case_len(c);
        char *buf = malloc(len ? len : 1); /* exact size: ASan catches over-reads */
        memcpy(buf, c->raw, len);
        hr_http_parser p;
        hr_http_request req;
        hr_http_header headers[HDR_CAP];
        hr_http_parser_init(&p);
        int r = hr_http_parse_request(&p, buf, len, c->lim ? c->lim : &lim_default, &req,
                                      headers, HDR_CAP);
        check_result(c, r, buf, len, &req);
        free(buf);
    }
}

/* Feed every case one byte at a time, through a fresh exact-size copy of the
 * prefix each call (the parser must keep only offsets). The final answer must
 * equal the whole-buffer answer; errors may come earlier but must be the same
 * error; successes only once the last byte arrived. */
static void test_table_bytewise(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(req_cases); i++) {
        const req_case *c = &req_cases[i];
        size_t len = case_len(c);
        const hr_http_limits *lim = c->lim ? c->lim : &lim_default;
        hr_http_parser p;
        hr_http_request req;
        hr_http_header headers[HDR_CAP];
        hr_http_parser_init(&p);
        int r = HR_HTTP_INCOMPLETE;
        for (size_t k = 0; k <= len; k++) {
            char *buf = malloc(k ? k : 1);
            memcpy(buf, c->raw, k);
            r = hr_http_parse_request(&p, buf, k, lim, &req, headers, HDR_CAP);
            if (r == HR_HTTP_INCOMPLETE) {
                if (k < len) assert_int_equal(p.scanned, k); /* resumes, never rescans */
                free(buf);
                continue;
            }
            if (c->result == 0 && k != len)
                fail_msg("%s: early result %d at %zu/%zu", c->desc, r, k, len);
            check_result(c, r, buf, k, &req);
            free(buf);
            break;
        }
        if (r == HR_HTTP_INCOMPLETE) assert_int_equal(c->result, HR_HTTP_INCOMPLETE);
    }
}

/* ---- other parser tests -------------------------------------------------- */

static int parse_str(const char *s, size_t len, const hr_http_limits *lim, hr_http_request *req,
                     hr_http_header *headers, size_t cap)
{
    hr_http_parser p;
    hr_http_parser_init(&p);
    return hr_http_parse_request(&p, s, len, lim, req, headers, cap);
}

static void test_pipelined(void **state)
{
    (void)state;
    static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /b?q HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                              "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    size_t len = sizeof(two) - 1, off = 0;
    hr_http_parser p;
    hr_http_request req;
    hr_http_header h[8];
    hr_http_parser_init(&p);

    int r = hr_http_parse_request(&p, two, len, &lim_default, &req, h, 8);
    assert_int_equal(r, 28);
    assert_span(req.path, req.path_len, "/a");
    assert_int_equal(req.content_length, -1);
    off += (size_t)r;

    /* The parser resets itself after a success. */
    r = hr_http_parse_request(&p, two + off, len - off, &lim_default, &req, h, 8);
    assert_true(r > 0);
    assert_span(req.path, req.path_len, "/b");
    assert_span(req.query, req.query_len, "q");
    assert_int_equal(req.content_length, 5);
    off += (size_t)r;
    assert_memory_equal(two + off, "hello", 5);
    off += 5;

    r = hr_http_parse_request(&p, two + off, len - off, &lim_default, &req, h, 8);
    assert_int_equal((size_t)r, len - off);
    assert_span(req.path, req.path_len, "/c");
    assert_false(req.keep_alive);
}

/* Pipelined requests arriving byte by byte through one growing buffer. */
static void test_pipelined_bytewise(void **state)
{
    (void)state;
    static const char two[] = "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
                              "\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t len = sizeof(two) - 1, start = 0, got = 0;
    const char *paths[2] = {"/first", "/second"};
    hr_http_parser p;
    hr_http_request req;
    hr_http_header h[8];
    hr_http_parser_init(&p);
    for (size_t k = 1; k <= len; k++) {
        int r = hr_http_parse_request(&p, two + start, k - start, &lim_default, &req, h, 8);
        if (r == HR_HTTP_INCOMPLETE) continue;
        assert_true(r > 0);
        assert_true(got < 2);
        assert_span(req.path, req.path_len, paths[got++]);
        start += (size_t)r;
    }
    assert_int_equal(got, 2);
    assert_int_equal(start, len);
}

static void test_find_header(void **state)
{
    (void)state;
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nx-one: 2\r\n\r\n";
    hr_http_request req;
    hr_http_header h[8];
    assert_true(parse_str(s, sizeof(s) - 1, &lim_default, &req, h, 8) > 0);
    const hr_http_header *f = hr_http_find_header(&req, "X-ONE");
    assert_non_null(f);
    assert_span(f->value, f->value_len, "1");
    assert_non_null(hr_http_find_header(&req, "host"));
    assert_null(hr_http_find_header(&req, "X-On"));
    assert_null(hr_http_find_header(&req, "X-One-Two"));
}

/* Big heads with the default limits: exactly at each limit passes, one more
 * fails with the right error; a tiny header array caps max_headers. */
static void test_limits_large(void **state)
{
    (void)state;
    hr_http_limits lim = {8192, 100, 4096};
    hr_http_request req;
    hr_http_header *h = malloc(200 * sizeof(*h));
    char *buf = malloc(20000);
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t pre_len = strlen(pre);

    /* Head size: fill X's value so the head is exactly max_head_bytes, then +1. */
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t vlen = lim.max_head_bytes - pre_len - 4 + extra;
        memcpy(buf, pre, pre_len);
        memset(buf + pre_len, 'v', vlen);
        memcpy(buf + pre_len + vlen, "\r\n\r\n", 4);
        size_t len = pre_len + vlen + 4;
        int r = parse_str(buf, len, &lim, &req, h, 200);
        if (extra == 0) assert_int_equal(r, (int)lim.max_head_bytes);
        else assert_int_equal(r, HR_HTTP_E_HEADERS_TOO_LARGE);
        /* Incomplete head: 431 once len reaches the limit, not before. */
        assert_int_equal(parse_str(buf, lim.max_head_bytes - 1, &lim, &req, h, 200),
                         HR_HTTP_INCOMPLETE);
        assert_int_equal(parse_str(buf, lim.max_head_bytes + extra, &lim, &req, h, 200),
                         extra ? HR_HTTP_E_HEADERS_TOO_LARGE : (int)lim.max_head_bytes);
    }

    /* Header count: 100 fields pass, 101 fail; with cap 10 the array wins. */
    for (size_t nf = 100; nf <= 101; nf++) {
        size_t len = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
        for (size_t i = 1; i < nf; i++) len += (size_t)sprintf(buf + len, "F%zu: %zu\r\n", i, i);
        len += (size_t)sprintf(buf + len, "\r\n");
        int r = parse_str(buf, len, &lim, &req, h, 200);
        if (nf == 100) {
            assert_int_equal(r, (int)len);
            assert_int_equal(req.num_headers, 100);
            assert_span(req.headers[99].name, req.headers[99].name_len, "F99");
        } else {
            assert_int_equal(r, HR_HTTP_E_TOO_MANY_HEADERS);
        }
        assert_int_equal(parse_str(buf, len, &lim, &req, h, 10), HR_HTTP_E_TOO_MANY_HEADERS);
    }

    /* Target length: 4096 passes, 4097 fails, even before the line ends. */
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t tlen = lim.max_target_bytes + extra;
        memcpy(buf, "GET /", 5);
        memset(buf + 5, 't', tlen - 1);
        size_t len = 4 + tlen;
        size_t partial = len;
        len += (size_t)sprintf(buf + len, " HTTP/1.1\r\nHost: a\r\n\r\n");
        int r = parse_str(buf, len, &lim, &req, h, 200);
        if (extra == 0) {
            assert_int_equal(r, (int)len);
            assert_int_equal(req.target_len, lim.max_target_bytes);
            assert_int_equal(parse_str(buf, partial, &lim, &req, h, 200), HR_HTTP_INCOMPLETE);
        } else {
            assert_int_equal(r, HR_HTTP_E_URI_TOO_LONG);
            assert_int_equal(parse_str(buf, partial, &lim, &req, h, 200), HR_HTTP_E_URI_TOO_LONG);
        }
    }
    free(buf);
    free(h);
}

/* A slowloris-style byte-at-a-time head: each call only scans the new byte. */
static void test_scan_resumes(void **state)
{
    (void)state;
    size_t len = 6000;
    char *buf = malloc(len);
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    memcpy(buf, pre, strlen(pre));
    memset(buf + strlen(pre), 'z', len - strlen(pre) - 4);
    memcpy(buf + len - 4, "\r\n\r\n", 4);
    hr_http_parser p;
    hr_http_request req;
    hr_http_header h[4];
    hr_http_parser_init(&p);
    for (size_t k = 1; k < len; k++) {
        assert_int_equal(hr_http_parse_request(&p, buf, k, &lim_default, &req, h, 4),
                         HR_HTTP_INCOMPLETE);
        assert_int_equal(p.scanned, k);
    }
    assert_int_equal(hr_http_parse_request(&p, buf, len, &lim_default, &req, h, 4), (int)len);
    assert_int_equal(p.scanned, 0); /* reset for the next request */
    free(buf);
}

static void test_error_mapping(void **state)
{
    (void)state;
    static const struct {
        int err;
        int status;
    } map[] = {
        {HR_HTTP_E_BAD_REQUEST, 400},     {HR_HTTP_E_HEADERS_TOO_LARGE, 431},
        {HR_HTTP_E_TOO_MANY_HEADERS, 431}, {HR_HTTP_E_URI_TOO_LONG, 414},
        {HR_HTTP_E_VERSION, 505},         {HR_HTTP_E_BAD_LENGTH, 400},
        {HR_HTTP_E_BAD_ENCODING, 501},    {HR_HTTP_E_BAD_CHUNK, 400},
        {HR_HTTP_E_BODY_TOO_LARGE, 413},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(map); i++) {
        assert_int_equal(hr_http_error_status(map[i].err), map[i].status);
        const char *t = hr_http_error_text(map[i].err);
        assert_non_null(t);
        assert_true(strlen(t) > 0);
        for (size_t j = 0; j < i; j++) /* every error has its own text */
            assert_string_not_equal(t, hr_http_error_text(map[j].err));
    }
    assert_int_equal(hr_http_error_status(-12345), 400);
    assert_non_null(hr_http_error_text(-12345));
    assert_string_equal(hr_http_error_text(HR_HTTP_E_HEADERS_TOO_LARGE),
                        "header section too large");
}

/* ---- hr_http_has_token --------------------------------------------------- */

static void test_has_token(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *token;
        bool want;
    } cases[] = {
        {"keep-alive, Upgrade", "upgrade", true},
        {"keep-alive, Upgrade", "keep-alive", true},
        {"Upgrade", "upgrade", true},
        {"UPGRADE", "Upgrade", true},
        {"upgrades", "upgrade", false},
        {"x-upgrade", "upgrade", false},
        {"upgrad", "upgrade", false},
        {"", "close", false},
        {" , ,close ,", "close", true},
        {"close\t", "close", true},
        {"\tclose", "close", true},
        {"a,b,c", "b", true},
        {"a,b,c", "c", true},
        {"a, b c", "b", false},
        {"a;q=1", "a", false},
        {",,,", "", false},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        bool got = hr_http_has_token(cases[i].value, strlen(cases[i].value), cases[i].token);
        if (got != cases[i].want)
            fail_msg("has_token(\"%s\", \"%s\") = %d", cases[i].value, cases[i].token, got);
    }
    /* Length bounds the value: "close" is not in the first 4 bytes. */
    assert_false(hr_http_has_token("closed", 4, "close"));
    assert_true(hr_http_has_token("close, junk", 5, "close"));
}

/* ---- chunked decoder ------------------------------------------------------ */

typedef struct chunk_case {
    const char *desc;
    const char *in;
    int result;         /* 1 done, 0 needs more, or an error */
    const char *out;    /* decoded bytes expected (before the error, for errors) */
    size_t consumed;    /* expected consumed bytes when done; 0: all of in */
    uint64_t max_body;  /* 0: unlimited */
} chunk_case;

static const chunk_case chunk_cases[] = {
    {"single chunk", "5\r\nhello\r\n0\r\n\r\n", 1, "hello", 0, 0},
    {"two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 1, "hello world", 0, 0},
    {"hex digits", "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", 1,
     "0123456789abcdefghijk", 0, 0},
    {"leading zeros", "005\r\nhello\r\n0000\r\n\r\n", 1, "hello", 0, 0},
    {"empty body", "0\r\n\r\n", 1, "", 0, 0},
    {"extensions", "5;name=value\r\nhello\r\n0;last\r\n\r\n", 1, "hello", 0, 0},
    {"extension with BWS", "5 ; a = b\r\nhello\r\n0\t;x\r\n\r\n", 1, "hello", 0, 0},
    {"quoted extension", "5;a=\"x;y\\\"z\"\r\nhello\r\n0\r\n\r\n", 1, "hello", 0, 0},
    {"extension obs-text", "5;a=\xff\r\nhello\r\n0\r\n\r\n", 1, "hello", 0, 0},
    {"trailers", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n", 1, "hello", 0, 0},
    {"data with CRLF inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", 1, "\r\n\r\n", 0, 0},
    {"bytes after the end stay", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 1, "abc", 13, 0},
    {"max 2^62 accepted", "4000000000000000\r\nabc", 0, "abc", 0, 0},
    {"incomplete data", "5\r\nhel", 0, "hel", 0, 0},
    {"incomplete size", "5", 0, "", 0, 0},
    {"incomplete trailer", "0\r\nX: 1\r\n", 0, "", 0, 0},
    {"at body limit", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 1, "hello world", 0, 11},
    /* errors */
    {"bad hex", "g\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"bad hex after digit", "5x\r\nhello\r\n0\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"empty size", "\r\nhello\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"extension without size", ";a\r\nhello\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"signed size", "+5\r\nhello\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"0x prefix", "0x5\r\nhello\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"space before size", " 5\r\nhello\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"space after size without ext", "5 \r\nhello\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"missing CRLF after data", "5\r\nhelloXX0\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "hello", 0, 0},
    {"LF only after data", "5\r\nhello\n0\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "hello", 0, 0},
    {"junk then LF after data", "5\r\nhelloX\n0\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "hello", 0, 0},
    {"CR only after data", "5\r\nhello\r0\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "hello", 0, 0},
    {"bare LF after size", "5\nhello\r\n0\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"CR without LF after size", "5\rhello", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"size overflow 2^62+1", "4000000000000001\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"size overflow 64 bit", "FFFFFFFFFFFFFFFFFF\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"control in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"trailer without colon", "0\r\nXa\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"trailer empty name", "0\r\n: a\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"trailer space before colon", "0\r\nX : a\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"trailer control", "0\r\nX: a\x7f\r\n\r\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"final CR without LF", "0\r\n\r\r", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"final bare LF", "0\r\n\n", HR_HTTP_E_BAD_CHUNK, "", 0, 0},
    {"over body limit", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", HR_HTTP_E_BODY_TOO_LARGE,
     "hello", 0, 10},
    {"over body limit in one chunk", "b\r\nhello world\r\n0\r\n\r\n", HR_HTTP_E_BODY_TOO_LARGE,
     "", 0, 10},
    {"body limit hits while size still being read", "fff", HR_HTTP_E_BODY_TOO_LARGE, "", 0, 100},
};

/* Feed in[0..n) in pieces ending at bounds[0..nb) as a real caller does: new
 * bytes are appended to a buffer that keeps what was not consumed. Returns
 * the last result; decoded bytes go to out, consumed count to *consumed. */
static int feed_chunked(const char *in, size_t n, const size_t *bounds, size_t nb, uint64_t max,
                        char *out, size_t *out_len, size_t *consumed)
{
    hr_http_chunked c;
    hr_http_chunked_init(&c, max);
    char *pend = malloc(n ? n : 1);
    size_t plen = 0, fed = 0;
    int rc = 0;
    *out_len = 0;
    *consumed = 0;
    for (size_t b = 0; b < nb; b++) {
        memcpy(pend + plen, in + fed, bounds[b] - fed);
        plen += bounds[b] - fed;
        fed = bounds[b];
        size_t l = plen, o = 0;
        rc = hr_http_chunked_decode(&c, pend, &l, &o);
        assert_true(l <= plen);
        assert_true(o <= l);
        memcpy(out + *out_len, pend, o);
        *out_len += o;
        *consumed += l;
        memmove(pend, pend + l, plen - l);
        plen -= l;
        if (rc != 0) break;
        assert_int_equal(plen, 0); /* until done, everything is consumed */
    }
    free(pend);
    return rc;
}

static void check_chunk_case(const chunk_case *c, const size_t *bounds, size_t nb)
{
    size_t n = strlen(c->in), out_len, consumed;
    char *out = malloc(n + 1);
    int rc = feed_chunked(c->in, n, bounds, nb, c->max_body, out, &out_len, &consumed);
    if (rc != c->result) fail_msg("%s: got %d, want %d", c->desc, rc, c->result);
    assert_span(out, out_len, c->out);
    if (rc == 1) assert_int_equal(consumed, c->consumed ? c->consumed : n);
    free(out);
}

static void test_chunked_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(chunk_cases); i++) {
        size_t n = strlen(chunk_cases[i].in);
        check_chunk_case(&chunk_cases[i], &n, 1);
    }
}

static void test_chunked_splits(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(chunk_cases); i++) {
        size_t n = strlen(chunk_cases[i].in);
        for (size_t s = 0; s <= n; s++) {
            size_t bounds[2] = {s, n};
            check_chunk_case(&chunk_cases[i], bounds, 2);
        }
        for (size_t s = 0; s + 2 <= n; s++) { /* three pieces */
            size_t bounds[3] = {s, s + 2, n};
            check_chunk_case(&chunk_cases[i], bounds, 3);
        }
    }
}

static void test_chunked_bytewise(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(chunk_cases); i++) {
        size_t n = strlen(chunk_cases[i].in);
        size_t *bounds = malloc((n + 1) * sizeof(*bounds));
        for (size_t k = 0; k < n; k++) bounds[k] = k + 1;
        check_chunk_case(&chunk_cases[i], bounds, n ? n : 1);
        free(bounds);
    }
}

/* Size lines are bounded at 1024 bytes and trailers at 8 KiB. */
static void test_chunked_line_limits(void **state)
{
    (void)state;
    char *buf = malloc(20000);
    hr_http_chunked c;
    size_t l, o;

    for (size_t extra = 0; extra <= 1; extra++) {
        size_t n = 0;
        buf[n++] = '5';
        buf[n++] = ';';
        while (n < 1024 + extra) buf[n++] = 'e';
        memcpy(buf + n, "\r\nhello\r\n0\r\n\r\n", 14);
        n += 14;
        hr_http_chunked_init(&c, 0);
        l = n;
        int rc = hr_http_chunked_decode(&c, buf, &l, &o);
        assert_int_equal(rc, extra ? HR_HTTP_E_BAD_CHUNK : 1);
    }
    /* Leading zeros count toward the size line too. */
    memset(buf, '0', 1100);
    hr_http_chunked_init(&c, 0);
    l = 1100;
    assert_int_equal(hr_http_chunked_decode(&c, buf, &l, &o), HR_HTTP_E_BAD_CHUNK);

    /* Trailer section (fields + final CRLF) of exactly 8192 bytes, then 8193. */
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)sprintf(buf, "0\r\nX: ");
        size_t pad = 8192 + extra - 7;
        memset(buf + n, 'p', pad);
        n += pad;
        memcpy(buf + n, "\r\n\r\n", 4);
        n += 4;
        hr_http_chunked_init(&c, 0);
        l = n;
        int rc = hr_http_chunked_decode(&c, buf, &l, &o);
        assert_int_equal(rc, extra ? HR_HTTP_E_BAD_CHUNK : 1);
    }
    free(buf);
}

/* Errors are final; a finished decoder consumes nothing more. */
static void test_chunked_sticky(void **state)
{
    (void)state;
    hr_http_chunked c;
    char buf[32];
    size_t l, o;

    hr_http_chunked_init(&c, 0);
    memcpy(buf, "zz", 2);
    l = 2;
    assert_int_equal(hr_http_chunked_decode(&c, buf, &l, &o), HR_HTTP_E_BAD_CHUNK);
    memcpy(buf, "0\r\n\r\n", 5);
    l = 5;
    assert_int_equal(hr_http_chunked_decode(&c, buf, &l, &o), HR_HTTP_E_BAD_CHUNK);
    assert_int_equal(l, 0);
    assert_int_equal(o, 0);

    hr_http_chunked_init(&c, 0);
    memcpy(buf, "1\r\nx\r\n0\r\n\r\n", 11);
    l = 11;
    assert_int_equal(hr_http_chunked_decode(&c, buf, &l, &o), 1);
    assert_int_equal(l, 11);
    assert_int_equal(o, 1);
    assert_int_equal(c.total, 1);
    memcpy(buf, "1\r\n", 3);
    l = 3;
    assert_int_equal(hr_http_chunked_decode(&c, buf, &l, &o), 1);
    assert_int_equal(l, 0);
    assert_int_equal(o, 0);
}

/* A large body across many chunks and random-ish splits. */
static void test_chunked_large(void **state)
{
    (void)state;
    size_t cap = 200000, n = 0, want_len = 0;
    char *in = malloc(cap), *want = malloc(cap), *out = malloc(cap);
    unsigned seed = 12345;
    for (size_t k = 1; n < cap - 2000; k++) {
        size_t sz = (k * 37) % 1500;
        if (sz == 0) sz = 1;
        n += (size_t)sprintf(in + n, "%zx;k=%zu\r\n", sz, k);
        for (size_t j = 0; j < sz; j++) {
            seed = seed * 1103515245u + 12345u;
            in[n + j] = want[want_len + j] = (char)(seed >> 16);
        }
        n += sz;
        want_len += sz;
        memcpy(in + n, "\r\n", 2);
        n += 2;
    }
    n += (size_t)sprintf(in + n, "0\r\n\r\n");

    size_t bounds[64], nb = 0, pos = 0;
    while (pos < n && nb < 63) {
        seed = seed * 1103515245u + 12345u;
        pos += 1 + (seed >> 16) % 9000;
        bounds[nb++] = HR_MIN(pos, n);
    }
    if (bounds[nb - 1] != n) bounds[nb++] = n;
    size_t out_len, consumed;
    assert_int_equal(feed_chunked(in, n, bounds, nb, 0, out, &out_len, &consumed), 1);
    assert_int_equal(out_len, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(consumed, n);
    free(in);
    free(want);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_whole),
        cmocka_unit_test(test_table_bytewise),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_pipelined_bytewise),
        cmocka_unit_test(test_find_header),
        cmocka_unit_test(test_limits_large),
        cmocka_unit_test(test_scan_resumes),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_chunked_whole),
        cmocka_unit_test(test_chunked_splits),
        cmocka_unit_test(test_chunked_bytewise),
        cmocka_unit_test(test_chunked_line_limits),
        cmocka_unit_test(test_chunked_sticky),
        cmocka_unit_test(test_chunked_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
