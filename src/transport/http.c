/* http.c - the HTTP/1.1 transport (see http.h).
 *
 * Request framing: heads are parsed zero-copy from the bytes at hand. A
 * request without a body, or with a Content-Length body already read in
 * full (and no Expect: 100-continue), is dispatched straight from the read
 * buffer. Any other request with a body has its head copied into `req` and
 * the body appended (Content-Length copied, chunked decoded in place first);
 * when the body is complete the head is re-parsed from `req` and
 * dispatched. Responses are
 * queued in request order, so pipelined requests get pipelined answers that
 * leave in one writev at the end of the loop turn. A request whose answer
 * comes later (an engine call) holds the requests behind it
 * (hr_http_defer), except a server API call: behind one, further pipelined
 * POST /api/ requests are dispatched at once (hr_http_defer_pipelined) and
 * api.c writes their answers in request order as the engine answers. */
#include "transport/http.h"
#include "core/json.h"
#include "core/log.h"
#include "transport/worker.h"
#include "transport/admin.h"
#include "transport/api.h"
#include "transport/emulation.h"
#include "transport/h2.h"
#include "transport/proxy.h"
#include "transport/pusher_api.h"
#include "transport/sse.h"
#include "transport/websocket.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HR_HTTP_MAX_HEADER_ARRAY 256

enum { H_IDLE = 0, H_HEAD, H_BODY };

typedef struct hr_http {
    hr_http_parser parser;
    uint8_t state;
    bool chunked;
    uint32_t peer_key;        /* HR_CONN_VIA_PROXY: the trusted proxy's own address key (transport/proxy.c);
                                 in what was padding: hr_http stays 128 bytes */
    uint64_t body_left;       /* Content-Length bytes still to read */
    hr_http_chunked ch;
    hr_buf req;               /* head copy + body, for requests with a body */
    size_t head_len;
    uint32_t served;
    uint64_t started_us;      /* monotonic, when HTTP took the connection (accept): herald_handshake_duration_seconds
                                 (136 bytes: the same 144-byte malloc chunk as 128) */
    size_t queued_at_timer;   /* output queued when the keep-alive timer last fired with answers unwritten */
    bool http10;              /* current request is HTTP/1.0: keep-alive must be confirmed */
    bool eof;                 /* the peer half-closed while a response was deferred */
    bool more;                /* hr_http_defer_pipelined: pipelined POST /api/ requests go on meanwhile */
    bool held;                /* reading paused for a request that waits for the deferred answer */
    void *deferred;           /* owner of a response that comes later (hr_http_defer), or NULL */
    void (*cancel)(void *owner);
} hr_http;

static const hr_conn_vt http_vt;

/* The Connection header line for a response. */
static const char *connection_header(hr_conn *c, bool close)
{
    if (close) return "Connection: close\r\n";
    hr_http *h = c->vt == &http_vt ? c->proto : NULL;
    return h && h->http10 ? "Connection: keep-alive\r\n" : "";
}

const char *hr_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

/* RFC 9110 IMF-fixdate, cached per thread per second. */
static const char *http_date(void)
{
    static _Thread_local time_t cached_sec;
    static _Thread_local char cached[40];
    time_t now = time(NULL);
    if (now != cached_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_sec = now;
    }
    return cached;
}

/* A response head being written into a fixed array: what does not fit is
 * cut (as snprintf would), len counts all that was offered. */
typedef struct head_out {
    char *p;
    size_t cap, len;
} head_out;

static void head_put(head_out *h, const char *s, size_t n)
{
    if (h->len < h->cap) memcpy(h->p + h->len, s, HR_MIN(n, h->cap - h->len));
    h->len += n;
}

static void head_str(head_out *h, const char *s) { head_put(h, s, strlen(s)); }

static void head_u64(head_out *h, uint64_t v)
{
    char d[20];
    head_put(h, d, hr_u64_dec(d, v));
}

void hr_http_respond(hr_conn *c, int status, const char *content_type, const char *extra_headers,
                     const void *body, size_t len, bool head_only, bool close)
{
    char head[1024];
    head_out h = {head, sizeof(head) - 1, 0}; /* written by hand: snprintf was most of a small answer's cost */
    head_str(&h, "HTTP/1.1 ");
    head_u64(&h, (uint64_t)status);
    head_put(&h, " ", 1);
    head_str(&h, hr_http_reason(status));
    head_str(&h, "\r\nServer: herald/" HERALD_VERSION "\r\nDate: ");
    head_str(&h, http_date());
    head_str(&h, "\r\nContent-Length: ");
    head_u64(&h, len);
    head_put(&h, "\r\n", 2);
    if (content_type) {
        head_str(&h, "Content-Type: ");
        head_str(&h, content_type);
        head_put(&h, "\r\n", 2);
    }
    head_str(&h, connection_header(c, close));
    if (extra_headers) head_str(&h, extra_headers);
    size_t n = h.len >= sizeof(head) - 2 ? sizeof(head) - 3 : h.len;
    head[n++] = '\r';
    head[n++] = '\n';
    hr_conn_send2(c, head, n, head_only ? NULL : body, head_only ? 0 : len);
    if (close) hr_conn_close_after_flush(c);
}

void hr_http_respond_stream(hr_conn *c, int status, const char *content_type, const char *extra_headers,
                            const void *first, size_t len)
{
    hr_buf b = HR_BUF_INIT;
    hr_buf_printf(&b,
                  "HTTP/1.1 %d %s\r\nServer: herald/" HERALD_VERSION "\r\nDate: %s\r\nContent-Type: %s\r\n"
                  "Connection: close\r\n%s\r\n",
                  status, hr_http_reason(status), http_date(), content_type, extra_headers ? extra_headers : "");
    if (len) hr_buf_append(&b, first, len);
    hr_conn_send(c, b.data, b.len);
    hr_buf_free(&b);
}

void hr_http_respond_error(hr_conn *c, int status, const char *extra_headers, const char *message, bool close)
{
    hr_buf b = HR_BUF_INIT;
    hr_buf_append_str(&b, "{\"error\":");
    hr_json_append_string(&b, message, strlen(message));
    hr_buf_printf(&b, ",\"status\":%d}", status);
    hr_http_respond(c, status, "application/json", extra_headers, b.data, b.len, false, close);
    hr_buf_free(&b);
}

/* ---- static files ---------------------------------------------------------- */

const char *hr_http_content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
        {".map", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".gif", "image/gif"}, {".webp", "image/webp"},
        {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"}, {".md", "text/markdown; charset=utf-8"},
        {".wasm", "application/wasm"}, {".woff2", "font/woff2"}, {".woff", "font/woff"},
        {".xml", "application/xml"}, {".pdf", "application/pdf"}, {".mp4", "video/mp4"}, {".webm", "video/webm"},
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < HR_ARRAY_LEN(types); i++)
            if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decode the path into out (relative, no leading '/'); refuse NULs,
 * ".." segments and hidden (dot) files. Returns 0 or -1. */
static int static_path(const char *path, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = path[i];
        if (ch == '%') {
            if (i + 2 >= len) return -1;
            int hi = hexval(path[i + 1]), lo = hexval(path[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || ch == '\\') return -1;
        if (n + 12 >= cap) return -1; /* room for "index.html" */
        out[n++] = ch;
    }
    out[n] = '\0';
    /* check segments */
    const char *p = out;
    while (*p) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/') e++;
        if (e > p && p[0] == '.') return -1; /* ".", "..", ".git", ... */
        p = e;
    }
    /* strip leading slashes */
    size_t skip = 0;
    while (out[skip] == '/') skip++;
    memmove(out, out + skip, n - skip + 1);
    n -= skip;
    if (n == 0 || out[n - 1] == '/') memcpy(out + n, "index.html", 11);
    return 0;
}

#define STATIC_OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK)

/* rel under dirfd, following no symbolic link at all (kernels without
 * openat2): each directory on the way is opened with O_NOFOLLOW. rel is
 * modified while walking and restored. */
static int open_nofollow(int dirfd, char *rel)
{
    int cur = dirfd;
    char *p = rel;
    for (char *e; (e = strchr(p, '/')) != NULL; p = e + 1) {
        if (e == p) continue; /* "a//b" */
        *e = '\0';
        int next = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        *e = '/';
        if (cur != dirfd) close(cur);
        if (next < 0) return -1;
        cur = next;
    }
    int fd = openat(cur, p, STATIC_OPEN_FLAGS | O_NOFOLLOW);
    if (cur != dirfd) close(cur);
    return fd;
}

/* rel under dirfd without leaving it (server.static_follow_symlinks off):
 * openat2 with RESOLVE_BENEATH serves symbolic links that stay inside the
 * directory and refuses those that lead out (and absolute ones); where
 * openat2 is missing (Linux < 5.6, or a seccomp filter refusing it) no
 * symbolic link is followed. */
static int open_beneath(int dirfd, char *rel)
{
    static atomic_bool no_openat2;
    if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
        struct open_how how = {.flags = STATIC_OPEN_FLAGS, .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return (int)fd;
        atomic_store_explicit(&no_openat2, true, memory_order_relaxed);
        hr_logf(HR_LOG_WARN, "openat2_missing", "openat2 is not available: static files are served without following any symbolic link");
    }
    return open_nofollow(dirfd, rel);
}

/* A directory without its final slash: redirect to it. The Location keeps
 * one leading slash ("//host/x" would send the browser to another host). */
static void redirect_dir(hr_conn *c, const hr_http_request *req, bool head_only, bool close_conn)
{
    const char *p = req->path;
    size_t n = req->path_len;
    while (n > 1 && p[1] == '/') {
        p++;
        n--;
    }
    char loc[4200];
    snprintf(loc, sizeof(loc), "Location: %.*s/\r\n", (int)n, p);
    hr_http_respond(c, 301, NULL, loc, NULL, 0, head_only, close_conn);
}

static bool serve_static(hr_conn *c, const hr_http_request *req, bool close_conn)
{
    int dirfd = c->w->static_fd;
    if (dirfd < 0) return false;
    char rel[4096];
    if (static_path(req->path, req->path_len, rel, sizeof(rel))) return false;
    int fd = c->w->opts->static_follow_symlinks ? openat(dirfd, rel, STATIC_OPEN_FLAGS) : open_beneath(dirfd, rel);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) { /* out of descriptors: not "not found" */
        static const char busy[] = "{\"error\":\"server out of file descriptors\",\"status\":503,\"temporary\":true}";
        hr_http_respond(c, 503, "application/json", "Retry-After: 1\r\n", busy, sizeof(busy) - 1, false, close_conn);
        return true;
    }
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return false;
    }
    bool head_only = req->method_len == 4;
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        redirect_dir(c, req, head_only, close_conn);
        return true;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return false;
    }
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nServer: herald/" HERALD_VERSION "\r\nDate: %s\r\n"
                     "Content-Type: %s\r\nContent-Length: %lld\r\nCache-Control: no-cache\r\n%s\r\n",
                     http_date(), hr_http_content_type(rel), (long long)st.st_size, connection_header(c, close_conn));
    hr_conn_send(c, head, (size_t)n);
    if (head_only) close(fd);
    else hr_conn_send_file(c, fd, 0, (uint64_t)st.st_size);
    if (close_conn) hr_conn_close_after_flush(c);
    return true;
}

/* ---- routing ----------------------------------------------------------------- */

/* Is Origin (scheme://host[:port]) the server's own, as the Host header names it? */
static bool same_origin(const hr_http_header *o, const hr_http_request *req)
{
    const hr_http_header *host = hr_http_find_header(req, "host");
    const char *sep = memmem(o->value, o->value_len, "://", 3);
    if (!host || !sep) return false;
    size_t slen = (size_t)(sep - o->value), alen = o->value_len - slen - 3, hlen = host->value_len;
    const char *auth = sep + 3, *h = host->value;
    if (alen == hlen && strncasecmp(auth, h, alen) == 0) return true;
    /* the scheme's default port written on one side only */
    const char *dp = slen == 4 && strncasecmp(o->value, "http", 4) == 0    ? ":80"
                     : slen == 5 && strncasecmp(o->value, "https", 5) == 0 ? ":443"
                                                                           : NULL;
    if (!dp) return false;
    size_t dl = strlen(dp);
    if (hlen == alen + dl) return strncasecmp(h, auth, alen) == 0 && memcmp(h + alen, dp, dl) == 0;
    if (alen == hlen + dl) return strncasecmp(auth, h, hlen) == 0 && memcmp(auth + hlen, dp, dl) == 0;
    return false;
}

int hr_http_origin_check(const hr_http_request *req, char *const *allowed, size_t n)
{
    const hr_http_header *o = hr_http_find_header(req, "origin");
    if (!o || same_origin(o, req)) return 0;
    if (o->value_len > 256) return -1;
    for (size_t i = 0; i < n; i++) {
        const char *a = allowed[i];
        if (strcmp(a, "*") == 0 || (strlen(a) == o->value_len && strncasecmp(a, o->value, o->value_len) == 0))
            return 1;
    }
    return -1;
}

static bool path_is(const hr_http_request *req, const char *p)
{
    size_t n = strlen(p);
    return req->path_len == n && memcmp(req->path, p, n) == 0;
}

static bool method_is(const hr_http_request *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

static void dispatch(hr_conn *c, hr_http_request *req, const uint8_t *body, size_t body_len)
{
    hr_worker *w = c->w;
    bool close = !req->keep_alive || w->draining;
    bool get = method_is(req, "GET"), head = method_is(req, "HEAD");
    ((hr_http *)c->proto)->http10 = req->version_minor == 0;
    hr_stat_add(&w->stats.http_requests, 1);
    /* from a trusted proxy: admitted now, for the client its X-Forwarded-For names */
    if ((c->flags & HR_CONN_VIA_PROXY) && hr_proxy_request(c, req, ((hr_http *)c->proto)->peer_key)) return;

    if (path_is(req, "/health")) {
        if (!get && !head) {
            hr_http_respond_error(c, 405, "Allow: GET, HEAD\r\n", "method not allowed", close);
            return;
        }
        static const char ok[] = "{\"status\":\"ok\"}";
        hr_http_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", ok, sizeof(ok) - 1, head, close);
        return;
    }
    if (path_is(req, "/ready")) {
        hr_api_ready(c, get, head, close);
        return;
    }
    if (path_is(req, "/metrics")) {
        hr_metrics_serve(c, req, get, head, close);
        return;
    }
    if (c->flags & HR_CONN_METRICS_ONLY) { /* metrics.listen serves nothing else */
        hr_http_respond_error(c, 404, NULL, "not found (this address serves /metrics, /health and /ready)", close);
        return;
    }
    if (path_is(req, "/ws/echo")) {
        hr_ws_upgrade(c, req, &hr_ws_echo_handler);
        return;
    }
    if (path_is(req, "/ws")) {
        hr_ws_upgrade(c, req, &hr_ws_native_handler);
        return;
    }
    if (path_is(req, "/ws/raw")) {
        hr_ws_upgrade(c, req, &hr_ws_raw_handler);
        return;
    }
    if (w->proto->ops.pusher && req->path_len > sizeof(HR_PUSHER_PATH) - 1 &&
        !memcmp(req->path, HR_PUSHER_PATH, sizeof(HR_PUSHER_PATH) - 1)) { /* only with [pusher.app.NAME] */
        hr_ws_upgrade(c, req, &hr_ws_pusher_handler);
        return;
    }
    if (w->proto->ops.pusher && hr_pusher_api_path(req->path, req->path_len)) { /* only with [pusher.app.NAME] */
        hr_pusher_api_handle(c, req, body, body_len, close);
        return;
    }
    if (path_is(req, "/sse")) {
        hr_sse_handle(c, req, close);
        return;
    }
    if (hr_emu_path(req->path, req->path_len)) { /* long polling, HTTP streaming */
        hr_emu_handle(c, req, body, body_len, close);
        return;
    }
    if (hr_admin_path(req->path, req->path_len)) {
        hr_admin_handle(c, req, body, body_len, close);
        return;
    }
    if (req->path_len > 5 && memcmp(req->path, "/api/", 5) == 0) {
        hr_api_handle(c, req, body, body_len, close);
        return;
    }
    if (path_is(req, "/http/echo") && w->opts->http_echo_endpoint) {
        if (!method_is(req, "POST") && !method_is(req, "PUT")) {
            hr_http_respond_error(c, 405, "Allow: POST, PUT\r\n", "method not allowed", close);
            return;
        }
        /* never the client's Content-Type: a page posting text/html here would
         * make the server serve that HTML from its own origin */
        hr_http_respond(c, 200, "application/octet-stream", "X-Content-Type-Options: nosniff\r\n", body, body_len,
                        false, close);
        return;
    }
    if (get || head) {
        if (serve_static(c, req, close)) return;
        hr_http_respond_error(c, 404, NULL, "not found", close);
        return;
    }
    if (c->w->static_fd >= 0) {
        hr_http_respond_error(c, 405, "Allow: GET, HEAD\r\n", "method not allowed", close);
        return;
    }
    hr_http_respond_error(c, 404, NULL, "not found", close);
}

/* ---- request framing ------------------------------------------------------------- */

static hr_http_limits limits_of(const hr_transport_opts *opt)
{
    hr_http_limits l = {(size_t)opt->http_max_head_size, (size_t)opt->http_max_headers,
                        (size_t)opt->http_max_target_size};
    return l;
}

static void arm_idle(hr_conn *c)
{
    hr_http *h = c->proto;
    h->state = H_IDLE;
    hr_conn_set_timer(c, (uint64_t)c->w->opts->http_keepalive_timeout_ms);
}

static void fail(hr_conn *c, int status, const char *message)
{
    hr_http *h = c->proto;
    h->state = H_IDLE;
    hr_conn_stop_timer(c);
    hr_http_refuse(c, NULL, -1, status, NULL, message, true);
}

/* Body complete: re-parse the saved head and dispatch. */
static void body_done(hr_conn *c)
{
    hr_http *h = c->proto;
    hr_http_header hdrs[HR_HTTP_MAX_HEADER_ARRAY];
    hr_http_request req;
    hr_http_parser p;
    hr_http_parser_init(&p);
    hr_http_limits lim = limits_of(c->w->opts);
    int rc = hr_http_parse_request(&p, (const char *)h->req.data, h->head_len, &lim, &req, hdrs, HR_ARRAY_LEN(hdrs));
    h->state = H_IDLE;
    if (rc != (int)h->head_len) { /* cannot happen: it parsed before */
        fail(c, 500, "internal error");
        hr_buf_free(&h->req);
        return;
    }
    dispatch(c, &req, h->req.data + h->head_len, h->req.len - h->head_len);
    hr_buf_free(&h->req);
}

/* Feed body bytes; returns bytes consumed or -1 after failing the request. */
static ssize_t body_feed(hr_conn *c, uint8_t *data, size_t len)
{
    hr_http *h = c->proto;
    if (!h->chunked) {
        size_t take = (size_t)HR_MIN((uint64_t)len, h->body_left);
        hr_buf_append(&h->req, data, take);
        h->body_left -= take;
        if (h->body_left == 0) body_done(c);
        return (ssize_t)take;
    }
    size_t in = len, out = 0;
    int rc = hr_http_chunked_decode(&h->ch, (char *)data, &in, &out);
    if (rc < 0) {
        fail(c, hr_http_error_status(rc), hr_http_error_text(rc));
        return -1;
    }
    hr_buf_append(&h->req, data, out);
    if (rc == 1) body_done(c);
    return (ssize_t)in;
}

void hr_http_refuse(hr_conn *c, const hr_http_request *req, int reason, int status, const char *extra_headers,
                    const char *message, bool close)
{
    hr_worker_refused(c->w, reason < 0 ? hr_refuse_reason_of(status) : (hr_refuse_reason)reason, c, req, NULL, status,
                      message);
    hr_http_respond_error(c, status, extra_headers, message, close);
}

void hr_http_respond_refused(hr_conn *c, const hr_http_request *req)
{
    char extra[48];
    snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", c->retry_after ? c->retry_after : 1);
    uint32_t why = c->flags & HR_CONN_REFUSED;
    hr_http_refuse(c, req, HR_REFUSE_LIMIT, why == HR_CONN_REFUSED_TOO_MANY ? 503 : 429, extra,
                          why == HR_CONN_REFUSED_TOO_MANY   ? "too many connections from your address"
                          : why == HR_CONN_REFUSED_TOO_FAST ? "too many new connections from your address"
                                                            : "too many rejected tokens from your address",
                          true);
}

/* A connection refused at accept by the abuse limits (transport/proxy.c):
 * answer its first bytes with the error and close. */
static ssize_t refuse(hr_conn *c, size_t len)
{
    hr_http_respond_refused(c, NULL);
    return (ssize_t)len;
}

/* While an answer is deferred, may the request starting at `data` be
 * dispatched? 1 yes (the deferral lets pipelined API calls through and this
 * is one), 0 no, -1 not known yet (too few bytes). Not through a trusted
 * proxy: its per-client admission may answer a request at once, ahead of
 * the answers awaited. */
static int may_dispatch(const hr_conn *c, const hr_http *h, const uint8_t *data, size_t len)
{
    static const char api[] = "POST /api/";
    if (!h->deferred) return 1;
    if (!h->more || (c->flags & HR_CONN_VIA_PROXY)) return 0;
    size_t n = HR_MIN(len, sizeof(api) - 1);
    if (memcmp(data, api, n) != 0) return 0;
    return n == sizeof(api) - 1 ? 1 : -1;
}

/* The request at data waits for the deferred answer: reading pauses unless
 * what is there may still become an API call. */
static ssize_t hold(hr_conn *c, const uint8_t *data, size_t len, size_t pos)
{
    hr_http *h = c->proto;
    if (may_dispatch(c, h, data + pos, len - pos) == 0) {
        h->held = true;
        hr_conn_pause_reading(c);
    }
    return (ssize_t)pos;
}

/* Is the request's whole body (none, or Content-Length bytes) among the
 * `avail` bytes after its head? Then it is dispatched from the read bytes,
 * with no copy and no second parse of the head (body_done); not when the
 * client waits for 100 Continue before sending it. */
static bool body_here(const hr_http_request *req, size_t avail)
{
    if (!req->chunked && req->content_length <= 0) return true;
    return !req->chunked && !req->expect_continue && (uint64_t)req->content_length <= avail;
}

static ssize_t http_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    hr_http *h = c->proto;
    const hr_transport_opts *opt = c->w->opts;
    /* HTTP/2 (h2 by ALPN, or h2c by prior knowledge): the connection's first bytes are the client
     * preface (a connection refused at accept is refused on each of its streams, in HTTP/2) */
    if (!h->served && h->state == H_IDLE && opt->http2_enabled && c->io.fd >= 0) {
        int pre = hr_h2_preface(data, len);
        if (pre == 0) return 0;
        if (pre == 1) return hr_h2_attach(c, h->peer_key) ? -1 : c->vt->on_data(c, data, len);
    }
    if (c->flags & HR_CONN_REFUSED) return refuse(c, len);
    if (h->state != H_BODY && may_dispatch(c, h, data, len) != 1) return hold(c, data, len, 0); /* for after the deferred answer */
    hr_http_limits lim = limits_of(opt);
    size_t pos = 0;
    int answered = 0;
    while (pos < len) {
        if (c->flags & (HR_CONN_CLOSED | HR_CONN_CLOSE_AFTER_FLUSH)) return (ssize_t)len; /* discard */
        if (h->state != H_BODY && may_dispatch(c, h, data + pos, len - pos) != 1) return hold(c, data, len, pos);
        if (h->state == H_BODY) {
            ssize_t n = body_feed(c, data + pos, len - pos);
            if (n < 0) return (ssize_t)len;
            pos += (size_t)n;
            if (h->state == H_BODY) break;
            continue;
        }
        if (answered >= opt->http_max_pipelined) {
            hr_conn_yield(c); /* come back to the rest after other connections */
            break;
        }
        /* Output backpressure (the client does not read its answers): the
         * next requests wait until the queue drains (conn.c resumes). */
        if (c->flags & HR_CONN_READ_PAUSED) break;
        if (h->state == H_IDLE) {
            h->state = H_HEAD;
            hr_conn_set_timer(c, (uint64_t)opt->http_header_timeout_ms);
        }
        hr_http_header hdrs[HR_HTTP_MAX_HEADER_ARRAY];
        hr_http_request req;
        int rc = hr_http_parse_request(&h->parser, (const char *)data + pos, len - pos, &lim, &req, hdrs,
                                       HR_ARRAY_LEN(hdrs));
        if (rc == HR_HTTP_INCOMPLETE) break;
        if (rc < 0) {
            fail(c, hr_http_error_status(rc), hr_http_error_text(rc));
            return (ssize_t)len;
        }
        size_t head_len = (size_t)rc;
        hr_http_parser_init(&h->parser);
        h->served++;
        answered++;
        if (req.content_length > opt->http_max_body_size) {
            fail(c, 413, "request body too large");
            return (ssize_t)len;
        }
        if (!body_here(&req, len - pos - head_len)) {
            h->chunked = req.chunked;
            h->body_left = req.chunked ? 0 : (uint64_t)req.content_length;
            hr_http_chunked_init(&h->ch, (uint64_t)opt->http_max_body_size);
            hr_buf_free(&h->req);
            hr_buf_append(&h->req, data + pos, head_len);
            h->head_len = head_len;
            h->state = H_BODY;
            if (req.expect_continue && req.version_minor == 1) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                hr_conn_send(c, cont, sizeof(cont) - 1);
            }
            hr_conn_set_timer(c, (uint64_t)opt->http_body_timeout_ms);
            pos += head_len;
            continue;
        }
        h->state = H_IDLE;
        pos += head_len;
        size_t body_len = req.content_length > 0 ? (size_t)req.content_length : 0; /* all here (body_here) */
        pos += body_len;
        dispatch(c, &req, body_len ? data + pos - body_len : NULL, body_len);
        if (c->flags & HR_CONN_CLOSED) return -1;
        if (c->vt != &http_vt) {
            /* upgraded: the rest belongs to the new transport */
            if (pos == len) return (ssize_t)pos;
            ssize_t r = c->vt->on_data(c, data + pos, len - pos);
            return r < 0 ? r : (ssize_t)(pos + (size_t)r);
        }
    }
    if (c->flags & (HR_CONN_CLOSED | HR_CONN_CLOSE_AFTER_FLUSH)) return (ssize_t)len;
    if (h->deferred) return (ssize_t)pos;
    if (h->state == H_IDLE) {
        if (pos == len || (c->flags & HR_CONN_READ_PAUSED)) arm_idle(c); /* paused: waiting for the client */
        else {
            h->state = H_HEAD; /* partial next head: header timeout runs */
            hr_conn_set_timer(c, (uint64_t)opt->http_header_timeout_ms);
        }
    }
    return (ssize_t)pos;
}

static void http_on_eof(hr_conn *c)
{
    hr_http *h = c->proto;
    if (h->deferred) { /* answer first, then close */
        h->eof = true;
        return;
    }
    /* A client may half-close after sending its last request: finish the answers. */
    if (h->state == H_IDLE && c->out.n) hr_conn_close_after_flush(c);
    else hr_conn_close(c);
}

static void http_on_timer(hr_conn *c)
{
    hr_http *h = c->proto;
    if (h->deferred) { /* waiting for the engine, not for the client */
        hr_conn_set_timer(c, (uint64_t)c->w->opts->http_keepalive_timeout_ms);
        return;
    }
    if (h->state == H_IDLE) {
        /* Answers still queued and the client read some since the last
         * time: it is slow, not gone (pipelined requests wait for it). */
        if (c->out.n && c->out.bytes != h->queued_at_timer) {
            h->queued_at_timer = c->out.bytes;
            hr_conn_set_timer(c, (uint64_t)c->w->opts->http_keepalive_timeout_ms);
            return;
        }
        hr_conn_close(c); /* keep-alive timeout, or no answer read for that long: silent close */
        return;
    }
    fail(c, 408, h->state == H_HEAD ? "request headers not received in time" : "request body not received in time");
}

static void http_on_shutdown(hr_conn *c)
{
    hr_http *h = c->proto;
    if (h->state == H_IDLE && !c->out.n) hr_conn_close(c);
    /* otherwise the response in progress carries Connection: close */
}

static void http_on_free(hr_conn *c)
{
    hr_http *h = c->proto;
    if (!h) return;
    if (h->deferred) h->cancel(h->deferred);
    hr_buf_free(&h->req);
    hr_free(h);
}

static const hr_conn_vt http_vt = {
    .on_data = http_on_data,
    .on_eof = http_on_eof,
    .on_timer = http_on_timer,
    .on_shutdown = http_on_shutdown,
    .on_free = http_on_free,
    .name = "http",
    .kind = HR_CK_HTTP,
};

void hr_http_attach(hr_conn *c)
{
    hr_http *h = hr_calloc(1, sizeof(*h));
    hr_http_parser_init(&h->parser);
    h->started_us = hr_now_us();
    hr_conn_set_transport(c, &http_vt, h);
    /* The first request must begin within http.header_timeout (a connection
     * that never sends a byte is closed then, silently); keepalive_timeout
     * is for the wait between requests. */
    h->state = H_IDLE;
    hr_conn_set_timer(c, (uint64_t)c->w->opts->http_header_timeout_ms);
    if (c->flags & HR_CONN_REFUSED) /* refused at accept: a short wait for the request to answer */
        hr_conn_set_timer(c, (uint64_t)HR_MIN(c->w->opts->http_header_timeout_ms, 2000));
}

void hr_http_set_peer_key(hr_conn *c, uint32_t key)
{
    if (c->vt == &http_vt) ((hr_http *)c->proto)->peer_key = key;
}

void hr_http_defer(hr_conn *c, void *owner, void (*cancel)(void *owner))
{
    hr_http *h = c->proto;
    h->deferred = owner;
    h->cancel = cancel;
    h->more = false;
    h->held = true;
    hr_conn_pause_reading(c);
}

void hr_http_defer_pipelined(hr_conn *c, void *owner, void (*cancel)(void *owner))
{
    hr_http *h = c->proto;
    h->deferred = owner;
    h->cancel = cancel;
    h->more = true;
    if (h->held) { /* what waited may be an API call: the ready list delivers it */
        h->held = false;
        hr_conn_resume_reading(c);
    }
}

void *hr_http_deferred_by(hr_conn *c, void (*cancel)(void *owner))
{
    hr_http *h = c->vt == &http_vt ? c->proto : NULL;
    return h && h->deferred && h->cancel == cancel ? h->deferred : NULL;
}

bool hr_http_resume(hr_conn *c)
{
    hr_http *h = c->proto;
    h->deferred = NULL;
    h->cancel = NULL;
    h->more = h->held = false;
    if (c->flags & HR_CONN_CLOSED) return false;
    if (h->eof) {
        if (!(c->flags & HR_CONN_CLOSE_AFTER_FLUSH)) hr_conn_close_after_flush(c);
        return true;
    }
    hr_conn_resume_reading(c);
    if (c->in.len) { /* the pipelined requests that waited */
        (void)hr_conn_deliver_leftover(c);
    } else if (!(c->flags & HR_CONN_CLOSE_AFTER_FLUSH) && h->state == H_IDLE) {
        arm_idle(c); /* not mid-body: a pipelined request's body may be arriving (its timer runs) */
    }
    return !(c->flags & HR_CONN_CLOSED);
}

void hr_http_defer_end(hr_conn *c)
{
    hr_http *h = c->proto;
    h->deferred = NULL;
    h->cancel = NULL;
    h->more = h->held = false;
    hr_conn_resume_reading(c);
}

/* Used by the WebSocket upgrade to drop HTTP state. */
void hr_http_detach(hr_conn *c, hr_conn_kind to)
{
    hr_http *h = c->proto;
    if (to != HR_CK_NONE && h) hr_metrics_handshake(c->w, to, hr_now_us() - h->started_us);
    http_on_free(c);
    c->proto = NULL;
}
