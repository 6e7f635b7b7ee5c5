/* h2.c - HTTP/2 (see h2.h): an nghttp2 server session per TCP connection,
 * driven by Herald's loop with nghttp2's memory API, and every stream as a
 * socketless hr_conn (conn.h) whose I/O layer is the stream.
 *
 * Why streams are connections: every endpoint (the router, SSE, HTTP
 * streaming, long polling, the API, static files, /metrics, admin,
 * WebSocket) is written against hr_conn and HTTP/1.1 bytes. A stream's
 * layer turns the request's HEADERS (and DATA) into HTTP/1.1 request bytes
 * fed to the stream conn's HTTP transport (hr_http_attach), and parses the
 * HTTP/1.1 response that transport writes: the status line and headers
 * become one HEADERS frame (minus the connection-specific fields RFC 9113
 * §8.2.2 forbids), the body (Content-Length, chunked - de-chunked - or
 * ended by the close) becomes DATA, and the stream conn's close becomes
 * END_STREAM (a finished response) or RST_STREAM CANCEL (anything else, e.g.
 * a slow consumer cut off). No endpoint logic or rule is copied here.
 * Extended CONNECT (RFC 8441, :protocol websocket) becomes an HTTP/1.1
 * Upgrade request, and its 101 answer a :status 200; then bytes both ways
 * are DATA on the stream, so permessage-deflate and the native protocol run
 * as on HTTP/1.1.
 *
 * Output: a stream conn's writev copies the response body into the stream's
 * pending bytes (the first copy: the queue frees what writev took), at most
 * STREAM_BUF of them: it takes a prefix of what it is offered up to that
 * room, then says HR_ERR_AGAIN. The pending bytes still count in the stream
 * conn's queue cost (hr_conn_layer_hold), so a stream whose flow-control
 * window is closed is cut (reset) by its transport's queue bound at the same
 * bytes as over HTTP/1.1, alone, never the connection. The TCP conn makes
 * frames at the end of the loop turn (its vt's on_flush, after every stream
 * conn has written) and only while its own queue holds less than OUT_HIGH
 * bytes; when it drains, more are made. DATA goes without nghttp2's copy
 * (NGHTTP2_DATA_FLAG_NO_COPY): send_data appends the frame header and the
 * pending bytes to the turn's frames (the second copy), which the TCP
 * conn's queue takes over as they are (hr_conn_send_owned).
 *
 * Input: nghttp2's automatic WINDOW_UPDATE is off. Request DATA is given
 * back to the client's window as the stream conn reads it (credit), so a
 * stream whose reading is paused holds at most one window of input; the
 * connection's window is max_concurrent_streams windows, so it stops no
 * other stream. A connection refused at accept (limits.*_per_ip) refuses
 * each of its streams the HTTP/1.1 way (its conns inherit the refusal).
 *
 * Abuse: SETTINGS_MAX_CONCURRENT_STREAMS, the header list bound (431) and a
 * CONTINUATION frame count per header block (GOAWAY ENHANCE_YOUR_CALM),
 * RST_STREAM frames counted per second (rapid reset: GOAWAY
 * ENHANCE_YOUR_CALM), nghttp2's bound on queued SETTINGS/PING ACKs
 * (http2.max_queued_acks; flood: GOAWAY ENHANCE_YOUR_CALM), the 4096-byte
 * HPACK table. */
#include "transport/h2.h"
#include "core/log.h"
#include "transport/http.h"
#include "transport/worker.h"

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define STREAM_BUF (16 * 1024)   /* most pending response bytes per stream (within its queue's cost) */
#define OUT_HIGH (64 * 1024)     /* frames are made while the TCP queue holds less than this */
#define MAX_RESP_HEADERS 64
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ==" /* any 16 bytes: the Accept it yields is dropped */

/* Response parsing states of a stream. */
enum { R_HEAD = 0, R_LEN, R_CHUNKED, R_CLOSE, R_RAW, R_DONE };

enum {
    S_HEAD_REQ = 1u << 0,   /* a HEAD request: the response has no body */
    S_WS = 1u << 1,         /* extended CONNECT: a WebSocket */
    S_CHUNKED_REQ = 1u << 2, /* request body sent on as chunked (no content-length) */
    S_DEFERRED = 1u << 3,   /* nghttp2 waits for data (resume_data) */
    S_BLOCKED = 1u << 4,    /* the conn's writev said AGAIN */
    S_EOF = 1u << 5,        /* the response is complete: END_STREAM after the pending bytes */
    S_SUBMITTED = 1u << 6,  /* response HEADERS submitted */
    S_GONE = 1u << 7,       /* nghttp2 closed the stream */
    S_TOO_BIG = 1u << 8,    /* header list over http2.max_header_list_size */
    S_WAKE = 1u << 9,       /* on the connection's wake list */
    S_HELD = 1u << 10,      /* request bytes its conn holds unread: the window opens as it reads them */
};

typedef struct hr_h2 hr_h2;

typedef struct h2_stream {
    hr_conn_layer base;      /* first: the stream conn's c->layer points here */
    hr_h2 *h2;
    hr_conn *c;              /* the stream conn, NULL before the request / after its close */
    struct h2_stream *next, *prev, *wake_next;
    int32_t id;
    uint16_t flags;
    uint8_t rstate;
    uint32_t hdr_bytes;      /* decoded header list size so far */
    uint64_t stall_at;       /* closed with bytes its window does not let out: reset at this loop ms (0: no) */
    uint32_t held;           /* request DATA bytes fed to the conn and not yet given back to the window */
    uint32_t counted;        /* pending bytes counted in herald_queued_bytes (and the conn's queue cost) */
    uint64_t body_left;      /* R_LEN */
    hr_http_chunked ch;      /* R_CHUNKED */
    hr_buf head;             /* response head until its blank line */
    hr_buf pend;             /* body bytes nghttp2 has not taken yet */
    size_t pend_off;
} h2_stream;

struct hr_h2 {
    nghttp2_session *s;
    hr_conn *c;
    void (*attach)(hr_conn *stream); /* the transport a stream conn starts with (hr_http_attach) */
    h2_stream *streams;
    h2_stream *wake;         /* streams whose conns may write again */
    uint32_t peer_key;
    uint32_t nstreams;
    uint32_t held_streams;   /* streams with S_HELD */
    uint32_t resets;         /* RST_STREAM frames in the current second */
    uint32_t continuations;  /* CONTINUATION frames in the current header block */
    uint64_t reset_window;   /* loop ms the second began */
    hr_buf *out;             /* the turn's frames, while h2_send makes them (send_data appends) */
    bool in_send;
    /* the header block being decoded (one at a time on a connection) */
    hr_buf method, path, hdrs, cookie;
    bool has_cl, has_host, connect;
};

static const hr_conn_vt h2_vt;

/* How long a connection without streams stays: http.keepalive_timeout, or
 * at most 2 s for one refused at accept (its streams were answered). */
static uint64_t idle_ms(const hr_conn *c)
{
    uint64_t ka = (uint64_t)c->w->opts->http_keepalive_timeout_ms;
    return (c->flags & HR_CONN_REFUSED) ? HR_MIN(ka, 2000) : ka;
}

int hr_h2_preface(const uint8_t *data, size_t len)
{
    size_t n = HR_MIN(len, (size_t)HR_H2_PREFACE_LEN);
    if (memcmp(data, HR_H2_PREFACE, n) != 0) return -1;
    return n == HR_H2_PREFACE_LEN ? 1 : 0;
}

/* ---- the stream conn's layer ---------------------------------------------------- */

static h2_stream *stream_of(const hr_conn *c) { return (h2_stream *)c->layer; }

static void want_send(hr_h2 *h)
{
    if (!(h->c->flags & HR_CONN_CLOSED)) hr_conn_want_flush(h->c);
}

/* The pending body has more bytes (or the end): let nghttp2 ask again. */
static void data_ready(h2_stream *st)
{
    if (st->flags & S_DEFERRED) {
        st->flags &= ~S_DEFERRED;
        nghttp2_session_resume_data(st->h2->s, st->id);
    }
    want_send(st->h2);
}

static void pend_add(h2_stream *st, const uint8_t *p, size_t n)
{
    if (n) hr_buf_append(&st->pend, p, n);
}

/* The pending bytes count in the stream conn's queue cost (conn.h
 * hr_conn_layer_hold: its transport's bound sees them) or, once the conn is
 * gone, in the worker's herald_queued_bytes alone, until nghttp2 takes them
 * or the stream is freed. */
static void pend_count(h2_stream *st)
{
    size_t now = st->pend.len - st->pend_off;
    if (now == st->counted) return;
    if (st->c) hr_conn_layer_hold(st->c, (ptrdiff_t)now - (ptrdiff_t)st->counted);
    else if (now > st->counted) hr_stat_add(&st->h2->c->w->stats.queued_bytes, now - st->counted);
    else hr_stat_sub(&st->h2->c->w->stats.queued_bytes, st->counted - now);
    st->counted = (uint32_t)now;
}

static bool is_hop_header(const char *name, size_t len)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                      "upgrade", "te"};
    for (size_t i = 0; i < HR_ARRAY_LEN(hop); i++)
        if (strlen(hop[i]) == len && strncasecmp(name, hop[i], len) == 0) return true;
    return false;
}

static nghttp2_data_provider provider(h2_stream *st);
static void credit(hr_h2 *h, h2_stream *st);

/* The header fields of a response head p..end (after its status line) as
 * nghttp2 name/value pairs from nv[*n] on, names lower-cased in place,
 * without the connection-specific ones (and Sec-WebSocket-Accept for a 101);
 * notes Content-Length (into st->body_left) and chunked framing. */
static void head_fields(h2_stream *st, char *p, char *end, bool ws, nghttp2_nv *nv, size_t *n, bool *has_len,
                        bool *chunked)
{
    char *line = memchr(p, '\n', (size_t)(end - p));
    while (line && line + 1 < end) {
        char *name = line + 1;
        char *eol = memchr(name, '\n', (size_t)(end - name));
        if (!eol) break;
        char *colon = memchr(name, ':', (size_t)(eol - name));
        line = eol;
        if (!colon) continue;
        size_t nlen = (size_t)(colon - name);
        char *v = colon + 1, *vend = eol;
        while (v < vend && (*v == ' ' || *v == '\t')) v++;
        while (vend > v && (vend[-1] == '\r' || vend[-1] == ' ')) vend--;
        if (nlen == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) *chunked = true;
        if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0) {
            *has_len = true;
            st->body_left = strtoull(v, NULL, 10);
        }
        if (is_hop_header(name, nlen) || (ws && nlen == 20 && strncasecmp(name, "sec-websocket-accept", 20) == 0))
            continue;
        if (*n == MAX_RESP_HEADERS) continue;
        for (size_t i = 0; i < nlen; i++) name[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
        nv[(*n)++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)v, nlen, (size_t)(vend - v), NGHTTP2_NV_FLAG_NONE};
    }
}

/* A complete response head in st->head: submit it as HEADERS and choose how
 * the body is framed. Returns false for an interim (1xx other than 101)
 * response, which is dropped. */
static bool submit_head(h2_stream *st)
{
    char *p = (char *)st->head.data;
    int status = (st->head.len > 12) ? atoi(p + 9) : 500;
    if (status >= 100 && status < 200 && status != 101) return false;
    bool ws = status == 101, has_len = false, chunked = false;
    char code[4];
    snprintf(code, sizeof(code), "%03d", ws ? 200 : status);
    nghttp2_nv nv[MAX_RESP_HEADERS];
    size_t n = 0;
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    head_fields(st, p, p + st->head.len, ws, nv, &n, &has_len, &chunked);
    bool no_body = (st->flags & S_HEAD_REQ) || status == 204 || status == 304 || (has_len && !chunked && !st->body_left);
    if (ws) st->rstate = R_RAW;
    else if (no_body) st->rstate = R_DONE;
    else if (chunked) {
        st->rstate = R_CHUNKED;
        hr_http_chunked_init(&st->ch, 0);
    } else st->rstate = has_len ? R_LEN : R_CLOSE;
    nghttp2_data_provider prd = provider(st);
    nghttp2_submit_response(st->h2->s, st->id, nv, n, no_body ? NULL : &prd);
    st->flags |= S_SUBMITTED;
    return true;
}

/* Response body bytes in the state's framing; returns bytes used. */
static size_t body_bytes(h2_stream *st, const uint8_t *p, size_t len)
{
    switch (st->rstate) {
    case R_LEN: {
        size_t n = (size_t)HR_MIN((uint64_t)len, st->body_left);
        pend_add(st, p, n);
        st->body_left -= n;
        if (!st->body_left) st->rstate = R_DONE;
        return n;
    }
    case R_CHUNKED: {
        size_t at = st->pend.len, in = len, out = 0;
        pend_add(st, p, len);
        int rc = hr_http_chunked_decode(&st->ch, (char *)st->pend.data + at, &in, &out);
        st->pend.len = at + out;
        if (rc != 0) st->rstate = R_DONE; /* complete, or a framing error of our own: end here */
        return in;
    }
    case R_CLOSE:
    case R_RAW: pend_add(st, p, len); return len;
    default: return len; /* after the response: nothing more belongs to the stream */
    }
}

/* The response's bytes, in order. */
static void response_bytes(h2_stream *st, const uint8_t *p, size_t len)
{
    while (len) {
        if (st->rstate != R_HEAD) {
            size_t n = body_bytes(st, p, len);
            p += n;
            len -= n;
            if (st->rstate == R_DONE) break;
            continue;
        }
        /* the head: up to its blank line */
        size_t old = st->head.len, take = len;
        hr_buf_append(&st->head, p, len);
        uint8_t *e = memmem(st->head.data + (old > 3 ? old - 3 : 0), st->head.len - (old > 3 ? old - 3 : 0),
                            "\r\n\r\n", 4);
        if (!e) break;
        size_t head_len = (size_t)(e + 4 - st->head.data);
        take = head_len - old;
        st->head.len = head_len;
        bool final = submit_head(st);
        hr_buf_free(&st->head);
        p += take;
        len -= take;
        if (!final) continue;
    }
    if (st->rstate == R_DONE && !(st->flags & S_EOF)) {
        st->flags |= S_EOF;
        if (st->c) hr_conn_close_after_flush(st->c); /* the stream conn's work is done */
    }
}

static ssize_t stream_read(hr_conn *c, uint8_t *dst, size_t cap, bool *drained)
{
    HR_UNUSED(c);
    HR_UNUSED(dst);
    HR_UNUSED(cap);
    *drained = true;
    return HR_ERR_AGAIN; /* input comes through hr_conn_feed */
}

static ssize_t stream_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    h2_stream *st = stream_of(c);
    if (!st->h2 || (st->flags & S_GONE)) return HR_ERR_IO;
    size_t pending = st->pend.len - st->pend_off;
    if (pending >= STREAM_BUF) {
        st->flags |= S_BLOCKED;
        return HR_ERR_AGAIN;
    }
    /* a prefix up to the buffer's room: the rest waits in the conn's queue */
    size_t room = STREAM_BUF - pending, total = 0;
    for (int i = 0; i < cnt && total < room; i++) {
        size_t n = HR_MIN(iov[i].iov_len, room - total);
        response_bytes(st, iov[i].iov_base, n);
        total += n;
    }
    pend_count(st);
    if (st->flags & S_SUBMITTED) data_ready(st);
    return (ssize_t)total;
}

static void stream_shutdown(hr_conn *c)
{
    h2_stream *st = stream_of(c);
    if (!st->h2 || (st->flags & S_GONE)) return;
    st->flags |= S_EOF;
    if (st->flags & S_SUBMITTED) data_ready(st);
}

static void stream_unlink(h2_stream *st)
{
    hr_h2 *h = st->h2;
    if (st->prev) st->prev->next = st->next;
    else h->streams = st->next;
    if (st->next) st->next->prev = st->prev;
}

/* Pending bytes still counted are given back (on the worker: a stream that
 * counts with no conn has its st->h2). */
static void stream_free(h2_stream *st)
{
    if (st->counted) hr_stat_sub(&st->h2->c->w->stats.queued_bytes, st->counted);
    hr_buf_free(&st->head);
    hr_buf_free(&st->pend);
    hr_free(st);
}

static ssize_t dead_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    HR_UNUSED(c);
    HR_UNUSED(iov);
    HR_UNUSED(cnt);
    return HR_ERR_IO;
}

static void dead_shutdown(hr_conn *c) { HR_UNUSED(c); }

/* A closed stream conn's layer until it is freed (its stream may go first). */
static const hr_conn_layer_ops dead_ops = {
    .read = stream_read, .writev = dead_writev, .shutdown = dead_shutdown, .name = "h2-stream-closed"};
static hr_conn_layer dead_layer = {.ops = &dead_ops};

/* The stream conn closes: a complete response (or one that ends with the
 * close) ends the stream, anything else resets it. */
static void stream_close(hr_conn *c)
{
    h2_stream *st = stream_of(c);
    if (st->counted) hr_conn_layer_hold(c, -(ptrdiff_t)st->counted); /* conn.h: given back before the close */
    st->counted = 0;
    st->c = NULL;
    c->layer = &dead_layer;
    if (st->h2 && !(st->flags & S_GONE)) credit(st->h2, st); /* what it held is dropped */
    if (!st->h2 || (st->flags & S_GONE)) {
        if (!st->h2) stream_free(st); /* the TCP conn is gone: no one else holds it */
        return;
    }
    pend_count(st); /* what is still pending now counts on the worker */
    bool graceful = (c->flags & (HR_CONN_CLOSE_AFTER_FLUSH | HR_CONN_SHUT_WR_AFTER_FLUSH)) && !c->out.n;
    if ((st->flags & S_SUBMITTED) && (st->rstate == R_DONE || (graceful && st->rstate >= R_CLOSE))) {
        st->flags |= S_EOF;
        data_ready(st);
        if (st->pend.len > st->pend_off) { /* the rest waits for the client's window, for a while */
            uint64_t wait = (uint64_t)c->w->opts->ws_close_timeout_ms;
            st->stall_at = hr_loop_now(&c->w->loop) + wait;
            hr_conn_set_timer(st->h2->c, wait);
        }
    } else {
        nghttp2_submit_rst_stream(st->h2->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        want_send(st->h2);
    }
}

static hr_conn *stream_parent(const hr_conn *c)
{
    h2_stream *st = stream_of(c);
    return st->h2 ? st->h2->c : NULL;
}

static const hr_conn_layer_ops stream_ops = {
    .read = stream_read,
    .writev = stream_writev,
    .shutdown = stream_shutdown,
    .close = stream_close,
    .parent = stream_parent,
    .name = "h2-stream",
};

/* nghttp2 asks for a stream's DATA: up to `length` pending bytes, which
 * send_data then copies (NO_COPY: nghttp2 does not copy them into buf). */
static ssize_t data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *data_flags,
                         nghttp2_data_source *src, void *user)
{
    HR_UNUSED(s);
    HR_UNUSED(id);
    HR_UNUSED(buf);
    hr_h2 *h = user;
    h2_stream *st = src->ptr;
    size_t avail = st->pend.len - st->pend_off, n = HR_MIN(avail, length);
    if (n) *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if ((st->flags & S_BLOCKED) && !(st->flags & S_WAKE) && avail - n < STREAM_BUF) {
        st->flags |= S_WAKE;
        st->wake_next = h->wake;
        h->wake = st;
    }
    if (avail - n == 0) {
        if (st->flags & S_EOF) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0) {
            st->flags |= S_DEFERRED;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

/* The DATA frame data_read sized: its header and `length` pending bytes
 * straight into the turn's frames (one copy, where nghttp2's frame buffer
 * and the gathering of its output would be two). Called within
 * nghttp2_session_mem_send, right after data_read. */
static int send_data(nghttp2_session *s, nghttp2_frame *f, const uint8_t *framehd, size_t length,
                     nghttp2_data_source *src, void *user)
{
    HR_UNUSED(s);
    hr_h2 *h = user;
    h2_stream *st = src->ptr;
    size_t pad = f->data.padlen; /* 0: no select_padding callback is set; written as the API asks anyway */
    hr_buf_append(h->out, framehd, 9);
    if (pad) hr_buf_append(h->out, (uint8_t[]){(uint8_t)(pad - 1)}, 1);
    hr_buf_append(h->out, st->pend.data + st->pend_off, length);
    if (pad > 1) {
        memset(hr_buf_reserve(h->out, pad - 1), 0, pad - 1);
        h->out->len += pad - 1;
    }
    st->pend_off += length;
    if (st->pend_off == st->pend.len) {
        hr_buf_free(&st->pend);
        st->pend_off = 0;
    }
    pend_count(st);
    /* the turn's frames reached OUT_HIGH: mem_send returns, h2_send stops (as after a copied frame) */
    return h->c->out.bytes + h->out->len >= OUT_HIGH ? NGHTTP2_ERR_PAUSE : 0;
}

static nghttp2_data_provider provider(h2_stream *st)
{
    nghttp2_data_provider p;
    p.source.ptr = st;
    p.read_callback = data_read;
    return p;
}

/* ---- requests -------------------------------------------------------------------- */

static void block_reset(hr_h2 *h)
{
    hr_buf_free(&h->method);
    hr_buf_free(&h->path);
    hr_buf_free(&h->hdrs);
    hr_buf_free(&h->cookie);
    h->has_cl = h->has_host = h->connect = false;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    hr_h2 *h = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    h2_stream *st = hr_calloc(1, sizeof(*st));
    st->base.ops = &stream_ops;
    st->h2 = h;
    st->id = f->hd.stream_id;
    st->next = h->streams;
    if (h->streams) h->streams->prev = st;
    h->streams = st;
    h->nstreams++;
    block_reset(h);
    /* The first stream ends the idle timeout; with others open the timer
     * carries their stall resets (stream_close), which must stay armed. */
    if (h->nstreams == 1) hr_conn_stop_timer(h->c);
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* A pseudo-header of a request: the request line's parts, Host, or the
 * Upgrade fields of an RFC 8441 WebSocket. */
static void on_pseudo(hr_h2 *h, h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    if (name_is(name, nlen, ":method")) {
        if (name_is(value, vlen, "HEAD")) st->flags |= S_HEAD_REQ;
        if (name_is(value, vlen, "CONNECT")) {
            hr_buf_append_str(&h->method, "GET");
            h->connect = true; /* a WebSocket with :protocol websocket, refused without it */
        } else {
            hr_buf_append(&h->method, value, vlen);
        }
    } else if (name_is(name, nlen, ":path")) {
        hr_buf_append(&h->path, value, vlen);
    } else if (name_is(name, nlen, ":authority")) {
        hr_buf_append_str(&h->hdrs, "Host: ");
        hr_buf_append(&h->hdrs, value, vlen);
        hr_buf_append_str(&h->hdrs, "\r\n");
        h->has_host = true;
    } else if (name_is(name, nlen, ":protocol")) {
        if (name_is(value, vlen, "websocket")) {
            st->flags |= S_WS;
            hr_buf_append_str(&h->hdrs, "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                        "Sec-WebSocket-Key: " WS_KEY "\r\n");
        }
    }
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    HR_UNUSED(flags);
    hr_h2 *h = user;
    h2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    /* request heads only (not trailers); nghttp2 has already refused values with CR, LF or NUL,
     * bad methods and paths, and connection-specific fields (RFC 9113 §8.2) */
    if (!st || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    st->hdr_bytes += (uint32_t)HR_MIN(nlen + vlen + 32, (size_t)UINT32_MAX / 4);
    if (st->hdr_bytes > (uint64_t)h->c->w->opts->http2_max_header_list_size) st->flags |= S_TOO_BIG;
    if (st->flags & S_TOO_BIG) return 0;
    if (nlen && name[0] == ':') {
        on_pseudo(h, st, name, nlen, value, vlen);
        return 0;
    }
    if (name_is(name, nlen, "expect")) return 0; /* no 100-continue: flow control does its work */
    if (name_is(name, nlen, "host") && h->has_host) return 0;
    if (name_is(name, nlen, "cookie")) { /* HTTP/2 may split it (RFC 9113 §8.2.3): one line again */
        if (h->cookie.len) hr_buf_append_str(&h->cookie, "; ");
        hr_buf_append(&h->cookie, value, vlen);
        return 0;
    }
    if (name_is(name, nlen, "content-length")) h->has_cl = true;
    hr_buf_append(&h->hdrs, name, nlen);
    hr_buf_append_str(&h->hdrs, ": ");
    hr_buf_append(&h->hdrs, value, vlen);
    hr_buf_append_str(&h->hdrs, "\r\n");
    return 0;
}

/* An answer of the layer's own (no stream conn): status and a JSON error. */
static void stream_error(h2_stream *st, int status, const char *message)
{
    char code[4], body[256];
    snprintf(code, sizeof(code), "%03d", status);
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}", message, status);
    char len[16];
    int llen = snprintf(len, sizeof(len), "%d", blen);
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/json", 12, 16, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-length", (uint8_t *)len, 14, (size_t)llen, NGHTTP2_NV_FLAG_NONE},
    };
    pend_add(st, (const uint8_t *)body, (size_t)blen);
    pend_count(st);
    st->flags |= S_EOF | S_SUBMITTED;
    st->rstate = R_DONE;
    nghttp2_data_provider prd = provider(st);
    nghttp2_submit_response(st->h2->s, st->id, nv, HR_ARRAY_LEN(nv), &prd);
}

/* The request's header block is complete: open the stream conn and hand it
 * the HTTP/1.1 request. */
static void start_request(hr_h2 *h, h2_stream *st, bool end_stream)
{
    if (st->flags & S_TOO_BIG) {
        block_reset(h);
        stream_error(st, 431, "request header list larger than http2.max_header_list_size");
        return;
    }
    if (h->connect != ((st->flags & S_WS) != 0)) { /* CONNECT only as RFC 8441's, for WebSocket */
        block_reset(h);
        stream_error(st, h->connect ? 501 : 400, h->connect ? "CONNECT is only for :protocol websocket"
                                                             : ":protocol without CONNECT");
        return;
    }
    hr_buf req = HR_BUF_INIT;
    hr_buf_append(&req, h->method.data, h->method.len);
    hr_buf_append(&req, " ", 1);
    hr_buf_append(&req, h->path.data, h->path.len);
    hr_buf_append_str(&req, " HTTP/1.1\r\n");
    hr_buf_append(&req, h->hdrs.data, h->hdrs.len);
    if (h->cookie.len) {
        hr_buf_append_str(&req, "Cookie: ");
        hr_buf_append(&req, h->cookie.data, h->cookie.len);
        hr_buf_append_str(&req, "\r\n");
    }
    if (!end_stream && !h->has_cl && !(st->flags & S_WS)) {
        hr_buf_append_str(&req, "Transfer-Encoding: chunked\r\n");
        st->flags |= S_CHUNKED_REQ;
    }
    hr_buf_append_str(&req, "\r\n");
    block_reset(h);
    hr_conn *p = h->c;
    hr_conn *c = hr_conn_open_virtual(p->w, &st->base,
                                      p->flags & (HR_CONN_TLS | HR_CONN_VIA_PROXY | HR_CONN_METRICS_ONLY | HR_CONN_REFUSED));
    if (p->flags & HR_CONN_REFUSED) c->retry_after = p->retry_after; /* answered 503/429 as over HTTP/1.1 */
    st->c = c;
    h->attach(c);
    if (h->peer_key) hr_http_set_peer_key(c, h->peer_key);
    (void)hr_conn_feed(c, req.data, req.len);
    hr_buf_free(&req);
}

static void rapid_reset_check(hr_h2 *h)
{
    uint64_t now = hr_loop_now(&h->c->w->loop);
    if (now - h->reset_window >= 1000) {
        h->reset_window = now;
        h->resets = 0;
    }
    if (++h->resets > (uint64_t)h->c->w->opts->http2_max_resets_per_second) {
        hr_logf(HR_LOG_INFO, "h2_rapid_reset", "http2 fd=%d: more than http2.max_resets_per_second RST_STREAM frames, GOAWAY",
                h->c->io.fd);
        nghttp2_session_terminate_session(h->s, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    hr_h2 *h = user;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        rapid_reset_check(h);
        return 0;
    }
    h2_stream *st = f->hd.stream_id ? nghttp2_session_get_stream_user_data(s, f->hd.stream_id) : NULL;
    if (!st) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        start_request(h, st, end);
        return 0;
    }
    if (end && st->c) { /* the request's end: DATA, or trailers */
        if (st->flags & S_CHUNKED_REQ) (void)hr_conn_feed(st->c, (uint8_t *)"0\r\n\r\n", 5);
        else if (st->flags & S_WS) hr_conn_feed_eof(st->c);
    }
    return 0;
}

/* Request DATA to the stream conn (chunk-framed when the request had no
 * content-length). The payload lies in our own input buffer (nghttp2 does
 * not copy DATA): the transport may edit it in place. */
static void feed_body(h2_stream *st, const uint8_t *data, size_t len)
{
    if (st->flags & S_CHUNKED_REQ) {
        char size[24];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);
        if (hr_conn_feed(st->c, (uint8_t *)size, (size_t)n)) return;
        if (hr_conn_feed(st->c, (uint8_t *)data, len)) return;
        (void)hr_conn_feed(st->c, (uint8_t *)"\r\n", 2);
        return;
    }
    (void)hr_conn_feed(st->c, (uint8_t *)data, len);
}

/* Give back to the client's window the request bytes the stream conn has
 * read (nghttp2's automatic WINDOW_UPDATE is off): what its transport leaves
 * unread (reading paused: a WebSocket whose answers are not read) keeps the
 * window closed, so a client cannot make the server buffer without bound. */
static void credit(hr_h2 *h, h2_stream *st)
{
    uint32_t keep = st->c ? (uint32_t)HR_MIN((uint64_t)st->c->in.len, (uint64_t)st->held) : 0;
    if (st->held > keep) nghttp2_session_consume(h->s, st->id, st->held - keep);
    st->held = keep;
    bool held = keep > 0;
    if (held != ((st->flags & S_HELD) != 0)) {
        st->flags ^= S_HELD;
        if (held) h->held_streams++;
        else h->held_streams--;
    }
}

/* At each flush: the streams whose conns held request bytes may have read them. */
static void credit_held(hr_h2 *h)
{
    if (!h->held_streams) return;
    for (h2_stream *st = h->streams; st; st = st->next)
        if (st->flags & S_HELD) credit(h, st);
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    HR_UNUSED(flags);
    hr_h2 *h = user;
    h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) {
        nghttp2_session_consume_connection(s, len);
        return 0;
    }
    st->held += (uint32_t)len;
    if (st->c && len) feed_body(st, data, len);
    credit(h, st);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    HR_UNUSED(code);
    hr_h2 *h = user;
    h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    if (st->held) nghttp2_session_consume_connection(s, st->held); /* the stream's share of the connection window */
    if (st->flags & S_HELD) h->held_streams--;
    st->flags |= S_GONE;
    stream_unlink(st);
    if (h->wake == st) h->wake = st->wake_next;
    else
        for (h2_stream *w = h->wake; w; w = w->wake_next)
            if (w->wake_next == st) {
                w->wake_next = st->wake_next;
                break;
            }
    h->nstreams--;
    if (st->c) hr_conn_close(st->c); /* reset by the client, or its response sent */
    stream_free(st);
    if (!h->nstreams) hr_conn_set_timer(h->c, idle_ms(h->c));
    return 0;
}

static int on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *user)
{
    hr_h2 *h = user;
    if (hd->type == NGHTTP2_HEADERS) h->continuations = 0;
    else if (hd->type == NGHTTP2_CONTINUATION &&
             ++h->continuations > (uint64_t)h->c->w->opts->http2_max_header_list_size / 1024 + 2) {
        hr_logf(HR_LOG_INFO, "h2_continuation_flood", "http2 fd=%d: too many CONTINUATION frames, GOAWAY", h->c->io.fd);
        nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

/* ---- the TCP connection ------------------------------------------------------------- */

static pthread_once_t cb_once = PTHREAD_ONCE_INIT;
static nghttp2_session_callbacks *callbacks;

static void callbacks_init(void)
{
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, send_data);
}

/* Let the streams whose pending bytes went out write again. */
static void wake_streams(hr_h2 *h)
{
    while (h->wake) {
        h2_stream *st = h->wake;
        h->wake = st->wake_next;
        st->flags &= (uint16_t)~(S_WAKE | S_BLOCKED);
        if (st->c) hr_conn_on_io(&h->c->w->loop, &st->c->io, EPOLLOUT);
    }
}

/* Make frames into the TCP conn's queue while it holds less than OUT_HIGH. */
static void h2_send(hr_h2 *h)
{
    hr_conn *c = h->c;
    if (h->in_send || (c->flags & HR_CONN_CLOSED)) return;
    h->in_send = true;
    hr_buf out = HR_BUF_INIT;
    h->out = &out;
    for (;;) {
        wake_streams(h);
        credit_held(h);
        if (c->out.bytes + out.len >= OUT_HIGH) break;
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(h->s, &p);
        if (n < 0) {
            hr_logf(HR_LOG_DEBUG, "h2_failed", "http2 fd=%d: %s", c->io.fd, nghttp2_strerror((int)n));
            hr_buf_free(&out);
            h->out = NULL;
            h->in_send = false;
            hr_conn_close(c);
            return;
        }
        if (n == 0) {
            if (!h->wake) break;
            continue;
        }
        hr_buf_append(&out, p, (size_t)n);
    }
    h->in_send = false;
    h->out = NULL;
    if (out.len) { /* the queue takes the buffer as it is (no copy) */
        size_t len;
        uint8_t *bytes = hr_buf_steal(&out, &len);
        hr_conn_send_owned(c, bytes, len);
    }
    if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s)) hr_conn_close_after_flush(c);
}

static ssize_t h2_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    hr_h2 *h = c->proto;
    ssize_t n = nghttp2_session_mem_recv(h->s, data, len);
    if (c->flags & HR_CONN_CLOSED) return -1;
    if (n < 0) {
        hr_logf(HR_LOG_DEBUG, "h2_bad_input", "http2 fd=%d: %s", c->io.fd, nghttp2_strerror((int)n));
        /* floods (queued ACKs; -905: more CONTINUATION frames than nghttp2's 8, Debian 12's 1.52 and
         * 1.61+) are calm-downs; our callbacks have set their GOAWAY already */
        bool flood = n == NGHTTP2_ERR_FLOODED || n == -905;
        if (n != NGHTTP2_ERR_CALLBACK_FAILURE)
            nghttp2_session_terminate_session(h->s, flood ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
        h2_send(h);
        hr_conn_close_after_flush(c);
        return (ssize_t)len;
    }
    want_send(h);
    return (ssize_t)len;
}

static void h2_on_flush(hr_conn *c) { h2_send(c->proto); }

static void h2_on_drained(hr_conn *c)
{
    hr_h2 *h = c->proto;
    if (nghttp2_session_want_write(h->s) || h->wake) want_send(h);
}

static void h2_on_eof(hr_conn *c) { hr_conn_close(c); }

/* Streams that ended with bytes the client's window kept in: reset once
 * websocket.close_timeout has passed (a zero-window stall costs no more). */
static void reset_stalled(hr_h2 *h)
{
    uint64_t now = hr_loop_now(&h->c->w->loop), next = 0;
    for (h2_stream *st = h->streams; st; st = st->next) {
        if (!st->stall_at || st->c) continue;
        if (st->pend.len == st->pend_off) st->stall_at = 0;
        else if (st->stall_at <= now) {
            st->stall_at = 0;
            nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        } else if (!next || st->stall_at < next) next = st->stall_at;
    }
    if (next) hr_conn_set_timer(h->c, next - now);
    want_send(h);
}

static void h2_on_timer(hr_conn *c)
{
    hr_h2 *h = c->proto;
    if (h->nstreams) { /* the streams have their own timers */
        reset_stalled(h);
        return;
    }
    nghttp2_session_terminate_session(h->s, NGHTTP2_NO_ERROR);
    h2_send(h);
    hr_conn_close_after_flush(c);
}

static void h2_on_shutdown(hr_conn *c)
{
    hr_h2 *h = c->proto;
    /* the streams are told by their own on_shutdown (each is a connection) */
    nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR,
                          NULL, 0);
    if (!h->nstreams) nghttp2_session_terminate_session(h->s, NGHTTP2_NO_ERROR);
    want_send(h);
}

static void h2_on_free(hr_conn *c)
{
    hr_h2 *h = c->proto;
    if (!h) return;
    while (h->streams) {
        h2_stream *st = h->streams;
        h->streams = st->next;
        if (st->c) {
            st->h2 = NULL;
            hr_conn_close(st->c); /* its layer close frees st */
        } else {
            stream_free(st);
        }
    }
    nghttp2_session_del(h->s);
    block_reset(h);
    hr_free(h);
}

static const hr_conn_vt h2_vt = {
    .on_data = h2_on_data,
    .on_eof = h2_on_eof,
    .on_timer = h2_on_timer,
    .on_drained = h2_on_drained,
    .on_shutdown = h2_on_shutdown,
    .on_free = h2_on_free,
    .on_flush = h2_on_flush,
    .name = "http2",
    .kind = HR_CK_HTTP2,
    .read_to_eof = true, /* a FIN with the last bytes ends the streams now (no edge follows) */
};

int hr_h2_attach(hr_conn *c, uint32_t peer_key) { return hr_h2_attach_with(c, peer_key, hr_http_attach); }

int hr_h2_attach_with(hr_conn *c, uint32_t peer_key, void (*attach)(hr_conn *stream))
{
    pthread_once(&cb_once, callbacks_init);
    const hr_transport_opts *o = c->w->opts;
    hr_h2 *h = hr_calloc(1, sizeof(*h));
    h->c = c;
    h->attach = attach;
    h->peer_key = peer_key;
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_max_outbound_ack(opt, (size_t)o->http2_max_queued_acks);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_no_auto_window_update(opt, 1); /* the window opens as the stream conns read (credit) */
    int rc = nghttp2_session_server_new2(&h->s, callbacks, h, opt);
    nghttp2_option_del(opt);
    if (rc) {
        hr_free(h);
        hr_conn_close(c);
        return HR_ERR_NOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)o->http2_max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)o->http2_initial_window_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)o->http2_max_header_list_size},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, HR_ARRAY_LEN(iv));
    /* the connection's window: room for every stream's, so one stream holding its bytes stops no other */
    int64_t conn_window = HR_MIN(o->http2_max_concurrent_streams * o->http2_initial_window_size, (int64_t)INT32_MAX);
    if (conn_window > 65535) nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, (int32_t)conn_window);
    if (c->proto) hr_http_detach(c, HR_CK_NONE);
    hr_conn_set_transport(c, &h2_vt, h);
    hr_conn_set_timer(c, idle_ms(c));
    want_send(h);
    return 0;
}
