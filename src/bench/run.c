/* run.c - `herald bench`: the controller, the worker threads and their
 * connections (see bench.h for what is measured and internal.h for how
 * the work is split and how loss is counted).
 *
 * Connections are non-blocking sockets watched level-triggered by the
 * thread's hr_loop. Input goes into the thread's shared read buffer; a
 * connection keeps only the bytes of an incomplete unit (frame, SSE event,
 * HTTP response), so 100k idle subscribers cost ~200 bytes each here.
 * Every read takes one CLOCK_MONOTONIC reading: the receive time of all
 * messages in it. */
#include "bench/internal.h"
#include "bench/parse.h"
#include "bench/seq.h"
#include "codec/wsframe.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define MAX_HEAD (16 * 1024)
#define MAX_FRAME (64u * 1024 * 1024)
#define MAX_OUT_PENDING (4u * 1024 * 1024) /* ws publishing: stop building while this much is unsent */
#define TICK_NS 1000000ull       /* pacing resolution while publishing, churning or ramping */
#define SLOW_TICK_NS 20000000ull  /* otherwise */

static volatile sig_atomic_t g_interrupted;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(bthread *t)
{
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return t->rng * 2685821657736338717ull;
}

static int phase_get(const bench *b) { return atomic_load_explicit(&b->phase, memory_order_acquire); }

/* ---- errors: aggregated by message ---------------------------------------------- */

static void note(bthread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(bthread *t, const char *fmt, ...)
{
    char msg[BENCH_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (uint32_t i = 0; i < t->nerrs; i++)
        if (strcmp(t->errs[i].msg, msg) == 0) {
            t->errs[i].count++;
            return;
        }
    if (t->nerrs < BENCH_MAX_ERRS) {
        memcpy(t->errs[t->nerrs].msg, msg, sizeof(msg));
        t->errs[t->nerrs++].count = 1;
        if (!t->b->o.quiet && t->nerrs <= 8) fprintf(stderr, "herald bench: error: %s\n", msg);
    } else {
        t->errs_other++;
    }
}

/* ---- connections: I/O ------------------------------------------------------------- */

static void conn_events(bconn *c)
{
    uint32_t ev = EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0);
    hr_loop_mod(&c->th->loop, &c->io, ev);
}

static void conn_close_fd(bconn *c)
{
    hr_timer_stop(&c->th->loop.wheel, &c->hs_timer);
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->io.fd >= 0) close(c->io.fd); /* also leaves the epoll set */
    c->io.fd = -1;
    c->state = CS_CLOSED;
    c->want_out = false;
    c->in_frag = false;
    hr_buf_free(&c->in);
    hr_buf_free(&c->out);
    hr_buf_free(&c->frag);
    hr_free(c->chunk);
    c->chunk = NULL;
}

static void conn_error(bconn *c, bool by_server, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An SSL_read / SSL_write result as recv / send would return it: the byte
 * count, 0 at the peer's close, or -1 with errno (EAGAIN: wait for the socket;
 * EPROTO: a TLS error). A write that needs the socket readable (or a read that
 * needs it writable) is retried on the next event of either kind. */
static ssize_t tls_io(bconn *c, int n)
{
    if (n > 0) return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL:
        if (!errno) errno = ECONNRESET;
        return -1;
    default: ERR_clear_error(); errno = EPROTO; return -1;
    }
}

static void conn_flush(bconn *c)
{
    while (c->out.len) {
        ssize_t w = c->ssl ? tls_io(c, SSL_write(c->ssl, c->out.data, (int)HR_MIN(c->out.len, INT_MAX)))
                           : send(c->io.fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (w > 0) {
            hr_buf_consume(&c->out, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        conn_error(c, true, "send: %s", strerror(errno));
        return;
    }
    bool want = c->out.len > 0;
    if (!c->out.len) hr_buf_free(&c->out);
    if (want != c->want_out) {
        c->want_out = want;
        conn_events(c);
    }
}

static void conn_send(bconn *c, const void *p, size_t n)
{
    if (c->state == CS_CLOSED) return;
    hr_buf_append(&c->out, p, n);
    if (!c->want_out && c->state != CS_CONNECTING) conn_flush(c);
}

/* A masked client frame (RFC 6455 §5.3). */
static void ws_send(bconn *c, uint8_t op, const void *data, size_t n)
{
    uint8_t hdr[14], mask[4];
    uint32_t m = (uint32_t)rng_next(c->th);
    memcpy(mask, &m, 4);
    size_t hl = hr_ws_write_header(hdr, true, false, op, n, mask);
    hr_buf_append(&c->out, hdr, hl);
    uint8_t *p = hr_buf_reserve(&c->out, n);
    if (n) memcpy(p, data, n);
    hr_ws_mask(p, n, mask, 0);
    c->out.len += n;
    if (!c->want_out && c->state != CS_CONNECTING) conn_flush(c);
}

/* ---- accounting --------------------------------------------------------------------- */

enum session_end { END_RUN, END_CHURN, END_SERVER };

/* The connection's session is over: add what it was owed to `expected`. */
static void session_end(bconn *c, int how)
{
    if (c->kind != K_SUB || c->state != CS_READY) return;
    bthread *t = c->th;
    bchan *ch = &t->b->chans[c->chan];
    uint64_t ms = atomic_load_explicit(&ch->ms_seq, memory_order_acquire);
    uint64_t me = atomic_load_explicit(&ch->me_seq, memory_order_acquire);
    uint64_t lo = HR_MAX(c->seq.first, ms), hi;
    if (ms != UINT64_MAX) {
        if (how == END_CHURN) hi = c->seq.top;
        else if (me != UINT64_MAX) hi = me;
        else hi = atomic_load_explicit(&ch->next_seq, memory_order_acquire);
        if (how == END_SERVER && me != UINT64_MAX && hi > me) hi = me;
        if (hi > lo) t->expected += hi - lo;
    }
    hr_bench_seq_free(&c->seq);
    if (t->open_subs) t->open_subs--;
}

static void account(bconn *c, uint64_t tsent, uint64_t s)
{
    bthread *t = c->th;
    uint64_t ms = atomic_load_explicit(&t->b->chans[c->chan].ms_seq, memory_order_acquire);
    bool measured = s >= ms; /* else: warmup */
    int r = hr_bench_seq_add(&c->seq, s);
    if (r == HR_SEQ_EARLY || !measured) return;
    if (r == HR_SEQ_DUP) {
        t->dups++;
        return;
    }
    if (r == HR_SEQ_LATE) t->reordered++;
    t->delivered++;
    if (t->now < t->b->t_me) t->delivered_in_time++;
    uint64_t lat = t->now > tsent ? t->now - tsent : 0;
    hr_hist_record(&t->lat, lat);
    hr_hist_record(&t->ival, lat);
}

static void sub_ready(bconn *c);

static void on_message(bconn *c, const uint8_t *p, size_t n)
{
    bthread *t = c->th;
    uint64_t ts, ch, s;
    if (c->kind != K_SUB) return; /* replies on a publisher's WebSocket */
    char pd[4096];
    if (t->b->o.transport == HR_BENCH_PUSHER) { /* the payload is the event's data string */
        int k = hr_bench_pusher_msg(p, n, pd, sizeof(pd), &n);
        if (k == 2) sub_ready(c);
        if (k != 1) return;
        p = (const uint8_t *)pd;
    }
    if (HR_UNLIKELY(!hr_bench_payload_parse(p, n, &ts, &ch, &s))) {
        t->unparsed++;
        note(t, "a message without the bench's t/c/s fields: %.*s", (int)HR_MIN(n, 60), (const char *)p);
        return;
    }
    t->received++;
    if (HR_UNLIKELY(ch != c->chan)) {
        t->misrouted++;
        note(t, "a message of channel %" PRIu64 " reached a subscriber of channel %u", ch, c->chan);
        return;
    }
    account(c, ts, s);
}

static void sse_cb(void *ctx, const uint8_t *data, size_t len) { on_message(ctx, data, len); }

/* ---- connections: lifecycle --------------------------------------------------------------- */

static void sub_start(bconn *c, uint64_t now);
static void pub_own_start(bpub *p, uint64_t now);

static void handshake_finished(bconn *c, bool ok)
{
    bthread *t = c->th;
    hr_timer_stop(&t->loop.wheel, &c->hs_timer);
    if (c->kind != K_SUB) {
        bpub *p = HR_CONTAINER_OF(c, bpub, own);
        if (!p->settled) {
            p->settled = true;
            atomic_fetch_add_explicit(&t->a_pubs_settled, 1, memory_order_relaxed);
        }
        return;
    }
    if (t->handshakes) t->handshakes--;
    if (!c->ramp_counted) {
        c->ramp_counted = true;
        if (ok) t->ramp_ok++;
        else t->ramp_failed++;
        atomic_store_explicit(&t->a_ramp_done, t->ramp_ok + t->ramp_failed, memory_order_relaxed);
        atomic_store_explicit(&t->a_ramp_ok, t->ramp_ok, memory_order_relaxed);
    } else if (c->reopening) {
        if (ok) {
            t->churn_reopened++;
            int ph = phase_get(t->b);
            if (ph == PH_MEASURE && t->now >= t->b->t_ms && t->now < t->b->t_me) t->churn_reopened_window++;
        } else {
            t->churn_failed++;
        }
    }
}

static void conn_error(bconn *c, bool by_server, const char *fmt, ...)
{
    if (c->state == CS_CLOSED) return;
    bthread *t = c->th;
    char msg[BENCH_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *who = c->kind == K_SUB ? "subscriber" : "publisher";
    int st = c->state;
    note(t, "%s: %s", who, msg);
    if (st == CS_READY) {
        if (c->kind == K_SUB) {
            session_end(c, END_SERVER);
            if (by_server) t->closed_by_server++;
        }
    }
    conn_close_fd(c);
    if (st != CS_READY) handshake_finished(c, false);
    if (c->kind == K_PUB_HTTP || c->kind == K_PUB_WS) {
        bpub *p = HR_CONTAINER_OF(c, bpub, own);
        p->errors += p->inflight;
        p->inflight = 0;
        p->retry_at = t->now + 1000000000ull;
    }
}

static void hs_timeout(hr_timer *tm, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    bconn *c = HR_CONTAINER_OF(tm, bconn, hs_timer);
    if (c->state != CS_CONNECTING && c->state != CS_HANDSHAKE) return;
    c->th->now = bench_now_ns();
    conn_error(c, false, "%s timed out after %u s", c->state == CS_CONNECTING ? "connect" : "handshake",
               BENCH_HANDSHAKE_TIMEOUT_MS / 1000);
}

static int open_socket(bench *b, bconn *c, uint64_t now)
{
    bthread *t = c->th;
    int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (b->bind_source) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + c->src);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    c->io.fd = fd;
    c->t_start = now;
    c->state = CS_CONNECTING;
    c->want_out = true;
    if (connect(fd, (struct sockaddr *)&b->addr, b->addrlen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        c->io.fd = -1;
        c->state = CS_CLOSED;
        return -e;
    }
    if (hr_loop_add(&t->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) != 0) {
        int e = errno;
        close(fd);
        c->io.fd = -1;
        c->state = CS_CLOSED;
        return -e;
    }
    hr_timer_init(&c->hs_timer, hs_timeout);
    hr_timer_start(&t->loop.wheel, &c->hs_timer, BENCH_HANDSHAKE_TIMEOUT_MS);
    return 0;
}

static void new_ws_key(bconn *c)
{
    uint8_t raw[16];
    uint64_t r1 = rng_next(c->th), r2 = rng_next(c->th);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    EVP_EncodeBlock((unsigned char *)c->key, raw, 16);
}

static void conn_request(bconn *c);

/* --tls: one step of the TLS handshake (the connection is in CS_HANDSHAKE
 * with c->ssl not yet finished); when it is done, the opening request. */
static void tls_step(bconn *c)
{
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        c->want_out = false;
        conn_events(c);
        conn_request(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        bool want = e == SSL_ERROR_WANT_WRITE;
        if (want != c->want_out) {
            c->want_out = want;
            conn_events(c);
        }
        return;
    }
    char why[160];
    unsigned long ec = ERR_get_error();
    if (ec) ERR_error_string_n(ec, why, sizeof(why));
    else snprintf(why, sizeof(why), "%s", e == SSL_ERROR_SYSCALL ? "connection closed" : "failed");
    ERR_clear_error();
    conn_error(c, true, "TLS handshake: %s", why);
}

/* TCP is up: the TLS handshake (--tls), else the request that opens the stream. */
static void conn_connected(bconn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        conn_error(c, false, "connect: %s", strerror(err));
        return;
    }
    c->state = CS_HANDSHAKE;
    c->want_out = false;
    conn_events(c);
    if (c->th->b->tls) {
        c->ssl = SSL_new(c->th->b->tls);
        if (!c->ssl || !SSL_set_fd(c->ssl, c->io.fd)) {
            ERR_clear_error();
            conn_error(c, false, "TLS: cannot create a session");
            return;
        }
        SSL_set_tlsext_host_name(c->ssl, c->th->b->o.host);
        tls_step(c);
        return;
    }
    conn_request(c);
}

/* The transport is up: send the request that opens the stream. */
static void conn_request(bconn *c)
{
    bench *b = c->th->b;
    if (c->kind == K_PUB_HTTP) { /* nothing to negotiate */
        c->state = CS_READY;
        handshake_finished(c, true);
        return;
    }
    char target[600];
    const bchan *ch = &b->chans[c->chan];
    bool peer = b->o.server != HR_BENCH_HERALD;
    if (c->kind == K_PUB_WS) {
        snprintf(target, sizeof(target), "/pub/%s", ch->name);
    } else if (peer) {
        snprintf(target, sizeof(target), "/sub/%s", ch->name);
    } else {
        char enc[480];
        hr_bench_urlencode(ch->name, enc, sizeof(enc));
        if (b->o.transport == HR_BENCH_PUSHER) snprintf(target, sizeof(target), "/app/" HR_BENCH_PUSHER_APP "?protocol=7");
        else snprintf(target, sizeof(target), "%s?channel=%s", b->o.transport == HR_BENCH_SSE ? "/sse" : "/ws/raw", enc);
    }
    char req[1200];
    int n;
    if (c->kind == K_SUB && b->o.transport == HR_BENCH_SSE) {
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "User-Agent: herald-bench\r\n\r\n",
                     target, b->hosthdr);
    } else {
        new_ws_key(c);
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: herald-bench\r\n\r\n",
                     target, b->hosthdr, c->key);
    }
    conn_send(c, req, (size_t)n);
}

/* The response head to the opening request. False when the connection was closed. */
static bool conn_head(bconn *c, const char *head, const hr_bench_resp *r)
{
    bthread *t = c->th;
    bench *b = t->b;
    const char *v;
    size_t vn;
    bool sse = c->kind == K_SUB && b->o.transport == HR_BENCH_SSE;
    const char *eol = memchr(head, '\r', r->head_len);
    int sl = (int)(eol ? eol - head : (long)HR_MIN(r->head_len, 60));
    if (sse) {
        if (r->status != 200 || !hr_bench_header(head, r->head_len, "content-type", &v, &vn) ||
            !memmem(v, vn, "text/event-stream", 17)) {
            conn_error(c, false, "SSE request refused: %.*s%s", sl, head,
                       r->status == 200 ? " (not text/event-stream)" : "");
            return false;
        }
        if (r->chunked) {
            c->chunked = true;
            c->chunk = hr_malloc(sizeof(*c->chunk));
            hr_http_chunked_init(c->chunk, 0);
        }
    } else {
        char want[29];
        hr_ws_accept_key(c->key, strlen(c->key), want);
        if (r->status != 101) {
            conn_error(c, false, "WebSocket handshake refused: %.*s", sl, head);
            return false;
        }
        if (!hr_bench_header(head, r->head_len, "sec-websocket-accept", &v, &vn) || vn != 28 ||
            memcmp(v, want, 28) != 0) {
            conn_error(c, false, "WebSocket handshake: missing or wrong Sec-WebSocket-Accept");
            return false;
        }
    }
    c->state = CS_READY;
    if (c->kind == K_SUB && b->o.transport == HR_BENCH_PUSHER) { /* ready at subscription_succeeded */
        const bchan *ch = &b->chans[c->chan];
        char msg[600];
        int n = snprintf(msg, sizeof(msg), "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}", ch->name);
        ws_send(c, HR_WS_OP_TEXT, msg, (size_t)n);
        return true;
    }
    sub_ready(c);
    return true;
}

/* A subscriber receives from now on (publishers settle at once). */
static void sub_ready(bconn *c)
{
    bthread *t = c->th;
    if (c->kind == K_SUB) {
        uint64_t hs = t->now > c->t_start ? t->now - c->t_start : 0;
        hr_hist_record(&t->hs, hs);
        bchan *ch = &t->b->chans[c->chan];
        hr_bench_seq_init(&c->seq, atomic_load_explicit(&ch->next_seq, memory_order_acquire));
        t->open_subs++;
    }
    handshake_finished(c, true);
}

/* ---- input ------------------------------------------------------------------------ */

static void ws_close_frame(bconn *c, const uint8_t *p, size_t n)
{
    uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    int rl = n > 2 ? (int)HR_MIN(n - 2, 80) : 0;
    uint8_t reply[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (n >= 2) ws_send(c, HR_WS_OP_CLOSE, reply, 2);
    else ws_send(c, HR_WS_OP_CLOSE, NULL, 0);
    conn_error(c, true, "closed by the server: %u \"%.*s\"", code, rl, rl ? (const char *)p + 2 : "");
}

/* Complete frames in p[0..len); returns the bytes consumed. */
static size_t ws_frames(bconn *c, uint8_t *p, size_t len)
{
    static const hr_ws_parse_opts po = {.forbid_mask = true, .max_frame = MAX_FRAME};
    size_t off = 0;
    while (off < len && c->state == CS_READY) {
        hr_ws_frame_header h;
        int rc = hr_ws_parse_header(p + off, len - off, &po, &h);
        if (rc == HR_WS_INCOMPLETE) break;
        if (rc < 0) {
            conn_error(c, false, "bad frame from the server: %s", hr_ws_error_text(rc));
            break;
        }
        if (len - off - h.header_len < h.payload_len) break;
        uint8_t *pl = p + off + h.header_len;
        size_t pn = (size_t)h.payload_len;
        off += h.header_len + pn;
        switch (h.opcode) {
        case HR_WS_OP_TEXT:
        case HR_WS_OP_BINARY:
            if (c->in_frag) {
                conn_error(c, false, "bad frame from the server: new message inside a fragmented one");
                break;
            }
            if (h.fin) {
                on_message(c, pl, pn);
            } else {
                c->in_frag = true;
                c->frag_op = h.opcode;
                hr_buf_append(&c->frag, pl, pn);
            }
            break;
        case HR_WS_OP_CONT:
            if (!c->in_frag) {
                conn_error(c, false, "bad frame from the server: continuation without a message");
                break;
            }
            hr_buf_append(&c->frag, pl, pn);
            if (h.fin) {
                c->in_frag = false;
                on_message(c, c->frag.data, c->frag.len);
                hr_buf_free(&c->frag);
            }
            break;
        case HR_WS_OP_PING: ws_send(c, HR_WS_OP_PONG, pl, pn); break;
        case HR_WS_OP_PONG: break;
        case HR_WS_OP_CLOSE: ws_close_frame(c, pl, pn); break;
        default: break;
        }
    }
    return off;
}

static void pub_response(bpub *p, const hr_bench_resp *r, const char *head, const char *body, size_t blen);
static void pub_pump(bpub *p, uint64_t now);

/* API responses in buf[0..len); returns the bytes consumed. */
static size_t http_responses(bconn *c, uint8_t *buf, size_t len)
{
    bpub *p = HR_CONTAINER_OF(c, bpub, own);
    size_t off = 0;
    while (off < len && c->state == CS_READY) {
        hr_bench_resp r;
        const char *h = (const char *)buf + off;
        int rc = hr_bench_parse_response(h, len - off, &r);
        if (rc == 0) {
            if (len - off > MAX_HEAD) conn_error(c, false, "API response head larger than %d bytes", MAX_HEAD);
            break;
        }
        if (rc < 0) {
            conn_error(c, false, "not an HTTP response: %.*s", (int)HR_MIN(len - off, 60), h);
            break;
        }
        size_t blen;
        if (r.chunked) {
            /* decode a copy, so the bytes stay parseable if incomplete */
            hr_http_chunked ck;
            hr_http_chunked_init(&ck, 0);
            size_t in = len - off - r.head_len, outl = 0;
            char *tmp = hr_malloc(in ? in : 1);
            memcpy(tmp, h + r.head_len, in);
            int d = hr_http_chunked_decode(&ck, tmp, &in, &outl);
            hr_free(tmp);
            if (d < 0) {
                conn_error(c, false, "bad chunked API response");
                break;
            }
            if (d == 0) break;
            blen = in;
            pub_response(p, &r, h, NULL, 0);
        } else {
            blen = r.content_length > 0 ? (size_t)r.content_length : 0;
            if (len - off - r.head_len < blen) break;
            pub_response(p, &r, h, h + r.head_len, blen);
        }
        off += r.head_len + blen;
        if (r.conn_close) {
            conn_error(c, true, "the server closed the API connection (Connection: close)");
            break;
        }
    }
    return off;
}

/* Everything that forms complete units; *len may shrink (in-place chunked
 * decoding of an SSE body). Returns the bytes consumed. */
static size_t conn_consume(bconn *c, uint8_t *buf, size_t *len)
{
    size_t used = 0;
    if (c->state == CS_HANDSHAKE) {
        hr_bench_resp r;
        int rc = hr_bench_parse_response((const char *)buf, *len, &r);
        if (rc == 0) {
            if (*len > MAX_HEAD) conn_error(c, false, "response head larger than %d bytes", MAX_HEAD);
            return 0;
        }
        if (rc < 0) {
            conn_error(c, false, "not an HTTP response: %.*s", (int)HR_MIN(*len, 60), (const char *)buf);
            return 0;
        }
        if (!conn_head(c, (const char *)buf, &r)) return 0;
        used = r.head_len;
        if (c->chunked) { /* the rest of this read is chunked body */
            size_t in = *len - used, outl = 0;
            int d = hr_http_chunked_decode(c->chunk, (char *)buf + used, &in, &outl);
            *len = used + outl;
            if (d != 0) {
                conn_error(c, true, d < 0 ? "bad chunked SSE stream" : "the server ended the SSE stream");
                return used;
            }
        }
    }
    if (c->state != CS_READY) return used;
    if (c->kind == K_PUB_HTTP) return used + http_responses(c, buf + used, *len - used);
    if (c->kind == K_SUB && c->th->b->o.transport == HR_BENCH_SSE)
        return used + hr_bench_sse_parse(buf + used, *len - used, sse_cb, c, &c->th->scratch);
    return used + ws_frames(c, buf + used, *len - used);
}

static void conn_readable(bconn *c)
{
    bthread *t = c->th;
    for (int round = 0; round < 8 && c->state != CS_CLOSED && c->state != CS_IDLE; round++) {
        bool own = c->in.len > READ_BUF / 2;
        uint8_t *buf, *dst;
        size_t cap, have = c->in.len;
        if (own) {
            dst = hr_buf_reserve(&c->in, READ_BUF);
            cap = c->in.cap - c->in.len;
            buf = c->in.data;
        } else {
            if (have) memcpy(t->rbuf, c->in.data, have);
            buf = t->rbuf;
            dst = t->rbuf + have;
            cap = READ_BUF - have;
        }
        ssize_t n = c->ssl ? tls_io(c, SSL_read(c->ssl, dst, (int)HR_MIN(cap, INT_MAX))) : recv(c->io.fd, dst, cap, 0);
        if (n > 0) {
            t->now = bench_now_ns();
            size_t newb = (size_t)n;
            if (c->chunked && c->state == CS_READY) {
                size_t in = newb, outl = 0;
                int d = hr_http_chunked_decode(c->chunk, (char *)dst, &in, &outl);
                if (d != 0) {
                    conn_error(c, true, d < 0 ? "bad chunked SSE stream" : "the server ended the SSE stream");
                    return;
                }
                newb = outl;
            }
            size_t len = have + newb;
            size_t used = conn_consume(c, buf, &len);
            if (c->state == CS_CLOSED) return;
            if (own) {
                c->in.len = len;
                hr_buf_consume(&c->in, used);
                if (c->in.len <= READ_BUF / 2) {
                    hr_buf tail = HR_BUF_INIT;
                    hr_buf_append(&tail, c->in.data, c->in.len);
                    hr_buf_free(&c->in);
                    c->in = tail;
                }
            } else {
                c->in.len = 0;
                if (used < len) hr_buf_append(&c->in, buf + used, len - used);
            }
            if (!c->in.len) hr_buf_free(&c->in);
            if ((size_t)n < cap && !(c->ssl && SSL_pending(c->ssl))) return;
            continue;
        }
        if (n == 0) {
            t->now = bench_now_ns();
            conn_error(c, true, c->state == CS_READY ? "connection closed by the server"
                                                      : "connection closed by the server during the handshake");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        t->now = bench_now_ns();
        conn_error(c, true, "recv: %s", strerror(errno));
        return;
    }
}

static void conn_io(hr_loop *l, hr_io *io, uint32_t ev)
{
    HR_UNUSED(l);
    bconn *c = HR_CONTAINER_OF(io, bconn, io);
    if (c->state == CS_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        c->th->now = bench_now_ns();
        conn_connected(c);
        return;
    }
    if (c->ssl && !SSL_is_init_finished(c->ssl)) {
        c->th->now = bench_now_ns();
        tls_step(c);
        if (c->state == CS_CLOSED || !SSL_is_init_finished(c->ssl)) return;
    }
    if ((ev & EPOLLOUT) && c->out.len) conn_flush(c);
    if (c->state != CS_CLOSED && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) conn_readable(c);
    if (c->kind == K_PUB_HTTP && c->state == CS_READY) {
        bpub *p = HR_CONTAINER_OF(c, bpub, own);
        pub_pump(p, bench_now_ns());
    }
}

/* ---- subscribers ------------------------------------------------------------------------ */

static void sub_start(bconn *c, uint64_t now)
{
    bthread *t = c->th;
    c->chunked = false;
    int rc = open_socket(t->b, c, now);
    t->handshakes++;
    if (rc < 0) {
        c->state = CS_CONNECTING; /* so that conn_error counts it as a failed attempt */
        c->io.fd = -1;
        conn_error(c, false, "connect: %s", strerror(-rc));
    }
}

/* Close a subscriber on purpose (churn, end of the run). */
static void sub_hangup(bconn *c, int how)
{
    if (c->state == CS_READY) {
        session_end(c, how);
        if (c->th->b->o.transport != HR_BENCH_SSE) {
            uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
            ws_send(c, HR_WS_OP_CLOSE, code, 2);
        }
    } else if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) {
        if (c->th->handshakes) c->th->handshakes--;
    }
    conn_close_fd(c);
}

/* ---- publishers --------------------------------------------------------------------------- */

static void pub_own_start(bpub *p, uint64_t now)
{
    bconn *c = &p->own;
    int rc = open_socket(p->th->b, c, now);
    if (rc < 0) {
        c->state = CS_CONNECTING;
        c->io.fd = -1;
        conn_error(c, false, "connect: %s", strerror(-rc));
    }
}

static void pub_response(bpub *p, const hr_bench_resp *r, const char *head, const char *body, size_t blen)
{
    HR_UNUSED(head);
    if (p->inflight) p->inflight--;
    if (r->status >= 200 && r->status < 300) {
        p->ok++;
        return;
    }
    p->errors++;
    note(p->th, "publish: HTTP %d %.*s", r->status, (int)HR_MIN(blen, 120), body ? body : "");
}

/* Publish what the schedule says is due (and the window allows). */
static void pub_pump(bpub *p, uint64_t now)
{
    bthread *t = p->th;
    bench *b = t->b;
    if (p->stopped) return;
    int ph = phase_get(b);
    if (ph < PH_WARMUP) return;
    if (now >= b->t_me || ph >= PH_DRAIN) {
        for (uint32_t k = 0; k < p->nchans; k++) {
            bchan *ch = &b->chans[p->chans[k]];
            uint64_t nx = atomic_load_explicit(&ch->next_seq, memory_order_relaxed);
            if (atomic_load_explicit(&ch->ms_seq, memory_order_relaxed) == UINT64_MAX)
                atomic_store_explicit(&ch->ms_seq, nx, memory_order_release);
            atomic_store_explicit(&ch->me_seq, nx, memory_order_release);
        }
        p->stopped = true;
        return;
    }
    if (!p->window_started && now >= b->t_ms) {
        for (uint32_t k = 0; k < p->nchans; k++) {
            bchan *ch = &b->chans[p->chans[k]];
            atomic_store_explicit(&ch->ms_seq, atomic_load_explicit(&ch->next_seq, memory_order_relaxed),
                                  memory_order_release);
        }
        p->window_started = true;
    }
    if (p->rate <= 0 || !p->nchans) return;
    bconn *c = p->conn;
    if (c->state != CS_READY) {
        if (c == &p->own && (c->state == CS_CLOSED || c->state == CS_IDLE) && now >= p->retry_at) {
            p->retry_at = now + 1000000000ull;
            pub_own_start(p, now);
        }
        return;
    }
    /* message k of this publisher is due at t_ws + (k + phase) / rate: the
     * publishers' schedules are interleaved, not all on the same instants */
    double x = (double)(now - b->t_ws) / 1e9 * p->rate - p->phase;
    if (x < 0) return;
    uint64_t due = (uint64_t)x + 1;
    bool api = c->kind == K_PUB_HTTP;
    bool peer = b->o.server != HR_BENCH_HERALD;
    bool queued = false;
    if (p->sent >= due) return;
    uint64_t ts = bench_now_ns();
    while (p->sent < due) {
        if (api && p->inflight >= b->o.pipeline) break;
        if (!api && c->out.len > MAX_OUT_PENDING) break;
        uint32_t ci = p->chans[p->rr];
        p->rr = p->rr + 1 == p->nchans ? 0 : p->rr + 1;
        bchan *ch = &b->chans[ci];
        uint64_t seq = atomic_load_explicit(&ch->next_seq, memory_order_relaxed);
        size_t pl = hr_bench_payload_build(t->pbuf, t->pbuf_cap, ts, ci, seq, (size_t)b->o.payload_bytes);
        atomic_store_explicit(&ch->next_seq, seq + 1, memory_order_release);
        if (api && !peer) {
            /* a Pusher channel's Herald name (docs/pusher.md) */
            const char *ns = b->o.transport == HR_BENCH_PUSHER ? "$pusher-" HR_BENCH_PUSHER_APP ":" : "";
            size_t blen = 12 + strlen(ns) + ch->name_len + 9 + pl + 1;
            hr_buf_printf(&c->out,
                          "POST /api/publish HTTP/1.1\r\nHost: %s\r\nAuthorization: apikey %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n{\"channel\":\"%s",
                          b->hosthdr, b->o.api_key, blen, ns);
            hr_buf_append(&c->out, ch->name, ch->name_len);
            hr_buf_append(&c->out, "\",\"data\":", 9);
            hr_buf_append(&c->out, t->pbuf, pl);
            hr_buf_append(&c->out, "}", 1);
            p->inflight++;
        } else if (api) {
            hr_buf_printf(&c->out,
                          "POST /pub/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          ch->name, b->hosthdr, pl);
            hr_buf_append(&c->out, t->pbuf, pl);
            p->inflight++;
        } else {
            uint8_t hdr[14], mask[4];
            uint32_t m = (uint32_t)rng_next(t);
            memcpy(mask, &m, 4);
            size_t hl = hr_ws_write_header(hdr, true, false, HR_WS_OP_TEXT, pl, mask);
            hr_buf_append(&c->out, hdr, hl);
            uint8_t *dst = hr_buf_reserve(&c->out, pl);
            memcpy(dst, t->pbuf, pl);
            hr_ws_mask(dst, pl, mask, 0);
            c->out.len += pl;
        }
        p->sent++;
        queued = true;
    }
    if (queued && !c->want_out) conn_flush(c);
}

/* ---- the worker thread ------------------------------------------------------------------ */

static bconn *own_sub(bthread *t, uint64_t k) { return &t->b->subs[t->id + k * t->b->o.threads]; }

static void ramp_step(bthread *t, uint64_t now)
{
    bench *b = t->b;
    if (!t->pubs_started) {
        t->pubs_started = true;
        for (uint32_t i = 0; i < t->npubs; i++)
            if (t->pubs[i]->conn == &t->pubs[i]->own) pub_own_start(t->pubs[i], now);
    }
    uint64_t due = t->nsubs;
    if (t->ramp_rate > 0) {
        double el = (double)(now - b->t_start) / 1e9;
        double d = el * t->ramp_rate + 1;
        if (d < (double)due) due = (uint64_t)d;
    }
    while (t->ramp_started < due && t->handshakes < t->conc) {
        bconn *c = own_sub(t, t->ramp_started++);
        sub_start(c, now);
    }
}

static void churn_step(bthread *t, uint64_t now)
{
    bench *b = t->b;
    double el = (double)(now - b->t_ws) / 1e9;
    uint64_t due = (uint64_t)(el * t->churn_rate);
    while (t->churn_closed < due && t->nsubs) {
        bconn *c = NULL;
        for (int tries = 0; tries < 32; tries++) {
            bconn *x = own_sub(t, rng_next(t) % t->nsubs);
            if (x->state == CS_READY && !x->publishing) {
                c = x;
                break;
            }
        }
        if (!c) break;
        t->now = now;
        sub_hangup(c, END_CHURN);
        t->churn_closed++;
        c->reopening = true;
        sub_start(c, now);
    }
}

/* Drained: every open subscriber has everything its channel's publisher sent. */
static bool drained(bthread *t)
{
    bench *b = t->b;
    for (uint32_t i = 0; i < t->npubs; i++)
        if (!t->pubs[i]->stopped || t->pubs[i]->inflight) return false;
    for (uint64_t k = 0; k < t->nsubs; k++) {
        bconn *c = own_sub(t, k);
        if (c->state != CS_READY) continue;
        const bchan *ch = &b->chans[c->chan];
        if (!ch->has_pub) continue;
        uint64_t me = atomic_load_explicit(&ch->me_seq, memory_order_acquire);
        if (me == UINT64_MAX || c->seq.next < me) return false;
    }
    return true;
}

static void thread_finish(bthread *t)
{
    t->now = bench_now_ns();
    for (uint64_t k = 0; k < t->nsubs; k++) {
        bconn *c = own_sub(t, k);
        if (c->state == CS_READY) {
            session_end(c, END_RUN);
            c->state = CS_CLOSED; /* session counted */
        }
        conn_close_fd(c);
        hr_bench_seq_free(&c->seq);
    }
    for (uint32_t i = 0; i < t->npubs; i++) conn_close_fd(&t->pubs[i]->own);
}

static void set_tick(bthread *t, bool fast)
{
    long ns = fast ? (long)TICK_NS : (long)SLOW_TICK_NS;
    struct itimerspec its = {.it_interval = {0, ns}, .it_value = {0, ns}};
    timerfd_settime(t->tick.fd, 0, &its, NULL);
    t->fast_tick = fast;
}

static void on_tick(hr_loop *l, hr_io *io, uint32_t ev)
{
    HR_UNUSED(ev);
    bthread *t = HR_CONTAINER_OF(io, bthread, tick);
    bench *b = t->b;
    uint64_t exp;
    while (read(io->fd, &exp, sizeof(exp)) > 0) {
    }
    uint64_t now = bench_now_ns();
    t->now = now;
    int ph = phase_get(b);
    if (ph == PH_STOP) {
        thread_finish(t);
        hr_loop_stop(l);
        return;
    }
    if (ph == PH_RAMP) ramp_step(t, now);
    if (ph >= PH_WARMUP) {
        for (uint32_t i = 0; i < t->npubs; i++) pub_pump(t->pubs[i], now);
        if (t->churn_rate > 0 && ph <= PH_MEASURE && now < b->t_me) churn_step(t, now);
    }
    /* pacing needs 1 ms ticks; an idle run (no publishing, no churn) wakes up less */
    bool fast = ph == PH_RAMP || (t->busy && ph <= PH_DRAIN);
    if (fast != t->fast_tick) set_tick(t, fast);
    if (ph == PH_DRAIN && now >= t->next_drain_check) {
        t->next_drain_check = now + 20000000ull;
        atomic_store_explicit(&t->a_drained, drained(t) ? 1 : 0, memory_order_relaxed);
    }
    /* counters for the controller */
    uint64_t sent = 0;
    for (uint32_t i = 0; i < t->npubs; i++) sent += t->pubs[i]->sent;
    atomic_store_explicit(&t->a_pub_sent, sent, memory_order_relaxed);
    atomic_store_explicit(&t->a_received, t->received, memory_order_relaxed);
    atomic_store_explicit(&t->a_delivered, t->delivered, memory_order_relaxed);
    atomic_store_explicit(&t->a_open, t->open_subs, memory_order_relaxed);
    if (now >= t->next_second) {
        t->next_second = now + 1000000000ull;
        atomic_store_explicit(&t->a_p99, hr_hist_percentile(&t->ival, 99), memory_order_relaxed);
        hr_hist_reset(&t->ival);
    }
}

static void *thread_main(void *arg)
{
    bthread *t = arg;
    hr_loop_run(&t->loop);
    return NULL;
}

static int thread_init(bench *b, bthread *t, uint32_t id)
{
    t->b = b;
    t->id = id;
    if (hr_loop_init(&t->loop, t) != 0) return -1;
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) return -1;
    t->tick.fd = tfd;
    t->tick.cb = on_tick;
    set_tick(t, true);
    if (hr_loop_add(&t->loop, &t->tick, EPOLLIN) != 0) return -1;
    t->rbuf = hr_malloc(READ_BUF);
    t->pbuf_cap = (size_t)b->o.payload_bytes + 128;
    t->pbuf = hr_malloc(t->pbuf_cap);
    if (getrandom(&t->rng, sizeof(t->rng), 0) != (ssize_t)sizeof(t->rng)) t->rng = (uint64_t)time(NULL);
    t->rng = (t->rng ^ ((uint64_t)id * 0x9E3779B97F4A7C15ull)) | 1;
    hr_hist_init(&t->lat);
    hr_hist_init(&t->hs);
    hr_hist_init(&t->ival);
    uint32_t T = b->o.threads;
    t->nsubs = b->o.subscribers / T + (id < b->o.subscribers % T ? 1 : 0);
    t->ramp_rate = b->o.connect_rate > 0 ? b->o.connect_rate * (double)t->nsubs / (double)b->o.subscribers : 0;
    t->churn_rate = b->o.churn > 0 ? b->o.churn * (double)t->nsubs / (double)b->o.subscribers : 0;
    t->busy = t->churn_rate > 0;
    for (uint32_t i = 0; i < t->npubs; i++)
        if (t->pubs[i]->rate > 0) t->busy = true;
    t->conc = b->o.connect_concurrency / T;
    if (t->conc < 1) t->conc = 1;
    return 0;
}

static void thread_free(bthread *t)
{
    if (t->tick.fd >= 0) close(t->tick.fd);
    hr_loop_close(&t->loop);
    hr_free(t->rbuf);
    hr_free(t->pbuf);
    hr_free(t->pubs);
    hr_buf_free(&t->scratch);
}

/* ---- setup -------------------------------------------------------------------------------- */

static void raise_nofile(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need) return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? (rlim_t)need : rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || want < need)
        fprintf(stderr,
                "herald bench: warning: RLIMIT_NOFILE is %llu but %" PRIu64
                " descriptors are needed (raise the hard limit: ulimit -Hn)\n",
                (unsigned long long)rl.rlim_cur, need);
}

/* --tls: the client context. Every connection makes a full handshake (no
 * session is kept for resumption) and the certificate is not verified:
 * the servers under test use self-signed ones. */
static SSL_CTX *tls_context(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

static int resolve(bench *b, char *err, size_t en)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", b->o.port);
    struct addrinfo hints = {.ai_family = b->o.source_ips > 1 ? AF_INET : AF_UNSPEC, .ai_socktype = SOCK_STREAM},
                    *res = NULL;
    int rc = getaddrinfo(b->o.host, port, &hints, &res);
    if (rc || !res) {
        snprintf(err, en, "--host %s: %s", b->o.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (b->addr.ss_family == AF_INET) {
        uint32_t a = ntohl(((struct sockaddr_in *)&b->addr)->sin_addr.s_addr);
        b->bind_source = (a >> 24) == 127;
    }
    if (b->o.tls && !(b->tls = tls_context())) {
        snprintf(err, en, "--tls: cannot create a TLS client context");
        return -1;
    }
    if (b->addr.ss_family == AF_INET6)
        snprintf(b->hosthdr, sizeof(b->hosthdr), "[%s]:%d", b->o.host, b->o.port);
    else
        snprintf(b->hosthdr, sizeof(b->hosthdr), "%s:%d", b->o.host, b->o.port);
    return 0;
}

static void setup(bench *b)
{
    hr_bench_opts *o = &b->o;
    bool peer = o->server != HR_BENCH_HERALD;
    b->chans = hr_calloc((size_t)o->channels, sizeof(bchan));
    for (uint64_t c = 0; c < o->channels; c++) {
        char name[200];
        int n = snprintf(name, sizeof(name), "%s%c%" PRIu64, o->prefix, peer ? '_' : '-', c);
        b->chans[c].name = hr_strndup(name, (size_t)n);
        b->chans[c].name_len = (size_t)n;
        atomic_init(&b->chans[c].next_seq, 0);
        atomic_init(&b->chans[c].ms_seq, UINT64_MAX);
        atomic_init(&b->chans[c].me_seq, UINT64_MAX);
    }
    b->th = hr_calloc(o->threads, sizeof(bthread));
    b->subs = hr_calloc((size_t)o->subscribers, sizeof(bconn));
    for (uint64_t i = 0; i < o->subscribers; i++) {
        bconn *c = &b->subs[i];
        c->io.fd = -1;
        c->io.cb = conn_io;
        c->kind = K_SUB;
        c->idx = (uint32_t)i;
        c->chan = (uint32_t)(i % o->channels);
        c->src = (uint32_t)(i % o->source_ips);
        c->th = &b->th[i % o->threads];
    }
    /* publishers */
    bool ws = o->publish_via == HR_BENCH_VIA_WS;
    uint32_t np = ws ? (uint32_t)o->channels : (uint32_t)HR_MIN((uint64_t)o->publishers, o->channels);
    if (o->publish_rate <= 0 && !ws) np = 0;
    b->npubs = np;
    b->pubs = np ? hr_calloc(np, sizeof(bpub)) : NULL;
    uint32_t *counts = hr_calloc(o->threads, sizeof(uint32_t));
    for (uint32_t j = 0; j < np; j++) {
        bpub *p = &b->pubs[j];
        p->idx = j;
        /* (Herald, ws: subscriber j, channel j's first, is on thread j % T too) */
        uint32_t thr = j % o->threads;
        p->th = &b->th[thr];
        counts[thr]++;
        p->own.io.fd = -1;
        p->own.io.cb = conn_io;
        p->own.th = p->th;
        p->own.idx = j;
        p->own.src = j % o->source_ips;
        if (ws) {
            p->nchans = 1;
            p->chans = hr_malloc(sizeof(uint32_t));
            p->chans[0] = j;
            if (peer) {
                p->own.kind = K_PUB_WS;
                p->own.chan = j;
                p->conn = &p->own;
                b->own_pub_conns++;
            } else {
                p->conn = &b->subs[j];
                b->subs[j].publishing = true;
                p->settled = true;
            }
        } else {
            p->own.kind = K_PUB_HTTP;
            p->conn = &p->own;
            b->own_pub_conns++;
            p->nchans = (uint32_t)((o->channels - j + np - 1) / np);
            p->chans = hr_malloc(p->nchans * sizeof(uint32_t));
            uint32_t k = 0;
            for (uint64_t c = j; c < o->channels; c += np) p->chans[k++] = (uint32_t)c;
            p->nchans = k;
        }
        p->rate = o->publish_rate * (double)p->nchans / (double)o->channels;
        p->phase = (double)j / (double)np;
        for (uint32_t k = 0; k < p->nchans; k++) b->chans[p->chans[k]].has_pub = true;
    }
    for (uint32_t i = 0; i < o->threads; i++) {
        b->th[i].pubs = counts[i] ? hr_calloc(counts[i], sizeof(bpub *)) : NULL;
        b->th[i].npubs = 0;
    }
    for (uint32_t j = 0; j < np; j++) {
        bthread *t = b->pubs[j].th;
        t->pubs[t->npubs++] = &b->pubs[j];
    }
    hr_free(counts);
}

static void teardown(bench *b)
{
    for (uint64_t c = 0; c < b->o.channels; c++) hr_free(b->chans[c].name);
    for (uint32_t j = 0; j < b->npubs; j++) hr_free(b->pubs[j].chans);
    for (uint32_t i = 0; i < b->o.threads; i++) thread_free(&b->th[i]);
    hr_free(b->chans);
    hr_free(b->subs);
    hr_free(b->pubs);
    hr_free(b->th);
    SSL_CTX_free(b->tls);
}

/* ---- the controller ----------------------------------------------------------------------- */

static void on_sigint(int sig)
{
    HR_UNUSED(sig);
    g_interrupted = 1;
}

static uint64_t sum_atomic(bench *b, size_t off)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < b->o.threads; i++)
        s += atomic_load_explicit((_Atomic uint64_t *)(void *)((char *)&b->th[i] + off), memory_order_relaxed);
    return s;
}

static const char *phase_name(int ph)
{
    static const char *names[] = {"ramp", "settle", "warmup", "measure", "drain", "stop"};
    return names[ph];
}

static void fmt_ms(char *out, size_t n, uint64_t ns)
{
    double ms = (double)ns / 1e6;
    if (ms < 10) snprintf(out, n, "%.2fms", ms);
    else if (ms < 1000) snprintf(out, n, "%.1fms", ms);
    else snprintf(out, n, "%.2fs", ms / 1000);
}

static void progress(bench *b, uint64_t now, uint64_t *last_rx, uint64_t *last_t)
{
    uint64_t rx = sum_atomic(b, offsetof(bthread, a_received));
    uint64_t open = sum_atomic(b, offsetof(bthread, a_open));
    uint64_t pub = sum_atomic(b, offsetof(bthread, a_pub_sent));
    uint64_t p99 = 0;
    for (uint32_t i = 0; i < b->o.threads; i++) {
        uint64_t v = atomic_load_explicit(&b->th[i].a_p99, memory_order_relaxed);
        if (v > p99) p99 = v;
    }
    double dt = *last_t ? (double)(now - *last_t) / 1e9 : 0;
    double rate = dt > 0 ? (double)(rx - *last_rx) / dt : 0;
    char p[32];
    fmt_ms(p, sizeof(p), p99);
    int ph = phase_get(b);
    fprintf(stderr, "herald bench: %6.1fs %-7s conns %" PRIu64 "/%" PRIu64 "  published %" PRIu64
                    "  msgs/s %.0f  p99 %s\n",
            (double)(now - b->t_start) / 1e9, phase_name(ph), open, b->o.subscribers, pub, rate,
            ph >= PH_WARMUP && p99 ? p : "-");
    *last_rx = rx;
    *last_t = now;
}

static void set_phase(bench *b, int ph) { atomic_store_explicit(&b->phase, ph, memory_order_release); }

static void fail_run(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_run(bench *b, const char *fmt, ...)
{
    if (b->failure[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->failure, sizeof(b->failure), fmt, ap);
    va_end(ap);
}

static void controller(bench *b)
{
    hr_bench_opts *o = &b->o;
    uint64_t deadline = b->t_start + (uint64_t)(hr_bench_timeout(o) * 1e9);
    uint64_t settle_until = 0, next_progress = b->t_start + 1000000000ull, last_rx = 0, last_t = 0;
    uint64_t drain_idle_since = 0, drain_last_rx = 0;
    for (;;) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        uint64_t now = bench_now_ns();
        int ph = phase_get(b);
        if (g_interrupted) {
            b->interrupted = true;
            fail_run(b, "interrupted during the %s phase", phase_name(ph));
            break;
        }
        if (now >= deadline) {
            b->timed_out = true;
            fail_run(b, "timed out after %.1f s (--timeout) during the %s phase", hr_bench_timeout(o),
                     phase_name(ph));
            break;
        }
        if (!o->quiet && now >= next_progress) {
            progress(b, now, &last_rx, &last_t);
            next_progress += 1000000000ull;
            if (next_progress < now) next_progress = now + 1000000000ull;
        }
        if (ph == PH_RAMP) {
            uint64_t done = sum_atomic(b, offsetof(bthread, a_ramp_done));
            uint32_t ps = 0;
            for (uint32_t i = 0; i < o->threads; i++)
                ps += atomic_load_explicit(&b->th[i].a_pubs_settled, memory_order_relaxed);
            if (done >= o->subscribers && ps >= b->own_pub_conns) {
                b->t_ramp_end = now;
                if (sum_atomic(b, offsetof(bthread, a_ramp_ok)) == 0) {
                    fail_run(b, "no subscriber could connect (%" PRIu64 " attempts failed; see errors)",
                             o->subscribers);
                    break;
                }
                settle_until = now + (o->server_pid ? 250000000ull : 0);
                set_phase(b, PH_SETTLE);
            }
        } else if (ph == PH_SETTLE) {
            if (now >= settle_until) {
                if (o->server_pid) {
                    b->rss_connected = bench_proc_rss(o->server_pid, NULL);
                    b->srv_cpu_connected = bench_proc_cpu(o->server_pid);
                }
                b->t_ws = now;
                b->t_ms = now + (uint64_t)(o->warmup * 1e9);
                b->t_me = b->t_ms + (uint64_t)(o->duration * 1e9);
                set_phase(b, PH_WARMUP);
            }
        } else if (ph == PH_WARMUP) {
            if (now >= b->t_ms) {
                if (o->server_pid) b->srv_cpu0 = bench_proc_cpu(o->server_pid);
                b->self_cpu0 = bench_self_cpu();
                set_phase(b, PH_MEASURE);
            }
        } else if (ph == PH_MEASURE) {
            if (now >= b->t_me) {
                if (o->server_pid) b->srv_cpu1 = bench_proc_cpu(o->server_pid);
                b->self_cpu1 = bench_self_cpu();
                b->t_drain = now;
                drain_idle_since = now;
                drain_last_rx = sum_atomic(b, offsetof(bthread, a_received));
                set_phase(b, PH_DRAIN);
            }
        } else if (ph == PH_DRAIN) {
            bool all = true;
            for (uint32_t i = 0; i < o->threads; i++)
                if (!atomic_load_explicit(&b->th[i].a_drained, memory_order_relaxed)) all = false;
            uint64_t rx = sum_atomic(b, offsetof(bthread, a_received));
            if (rx != drain_last_rx) {
                drain_last_rx = rx;
                drain_idle_since = now;
            }
            if (all || now - drain_idle_since >= 1000000000ull || now - b->t_drain >= (uint64_t)(o->drain * 1e9))
                break;
        }
    }
    /* the end: sample, then stop the threads */
    if (o->server_pid) {
        b->rss_end = bench_proc_rss(o->server_pid, &b->srv_procs);
        if (b->srv_cpu0 >= 0 && b->srv_cpu1 < 0) b->srv_cpu1 = bench_proc_cpu(o->server_pid);
    }
    if (b->self_cpu0 >= 0 && b->self_cpu1 < 0) b->self_cpu1 = bench_self_cpu();
    b->t_end = bench_now_ns();
    set_phase(b, PH_STOP);
}

int hr_bench_main(int argc, char **argv)
{
    char err[600];
    bench *b = hr_calloc(1, sizeof(bench));
    int rc = hr_bench_parse_args(&b->o, argc, argv, 1, err, sizeof(err));
    if (rc == 3) {
        hr_bench_usage(stdout);
        hr_free(b);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "herald bench: %s\n", err);
        hr_free(b);
        return 2;
    }
    if (resolve(b, err, sizeof(err))) {
        fprintf(stderr, "herald bench: %s\n", err);
        hr_free(b);
        return 2;
    }
    hr_bench_opts *o = &b->o;
    b->rss_before = b->rss_connected = b->rss_end = -1;
    b->srv_cpu0 = b->srv_cpu1 = b->self_cpu0 = b->self_cpu1 = -1;
    b->srv_cpu_start = b->srv_cpu_connected = -1;
    if (o->server_pid) {
        b->rss_before = bench_proc_rss(o->server_pid, &b->srv_procs);
        b->srv_cpu_start = bench_proc_cpu(o->server_pid);
        if (b->rss_before < 0) {
            fprintf(stderr, "herald bench: --server-pid %" PRId64 ": no such process\n", o->server_pid);
            hr_free(b);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    raise_nofile(o->subscribers + o->channels + o->publishers + 64);
    setup(b);
    atomic_init(&b->phase, PH_RAMP);
    for (uint32_t i = 0; i < o->threads; i++) {
        if (thread_init(b, &b->th[i], i) != 0) {
            fprintf(stderr, "herald bench: cannot create an event loop: %s\n", strerror(errno));
            return 1;
        }
    }
    if (!o->quiet) {
        fprintf(stderr,
                "herald bench: %s %s://%s: %" PRIu64 " subscribers on %" PRIu64 " channel(s), %g msg/s x %" PRIu64
                " B via %s, warmup %g s, duration %g s, %u thread(s)\n",
                hr_bench_server_name(o->server), hr_bench_transport_name(o->transport), b->hosthdr,
                o->subscribers, o->channels, o->publish_rate, o->payload_bytes,
                o->publish_via == HR_BENCH_VIA_WS ? "ws" : "api", o->warmup, o->duration, o->threads);
    }
    b->t_start = bench_now_ns();
    uint32_t started = 0;
    for (uint32_t i = 0; i < o->threads; i++) {
        if (pthread_create(&b->th[i].tid, NULL, thread_main, &b->th[i]) != 0) {
            fail_run(b, "cannot start thread %u", i);
            break;
        }
        started++;
    }
    if (started == o->threads) controller(b);
    else set_phase(b, PH_STOP);
    for (uint32_t i = 0; i < started; i++) pthread_join(b->th[i].tid, NULL);
    b->self_cpu_total = bench_self_cpu();

    hr_hist lat, hs;
    hr_hist_init(&lat);
    hr_hist_init(&hs);
    for (uint32_t i = 0; i < o->threads; i++) {
        hr_hist_merge(&lat, &b->th[i].lat);
        hr_hist_merge(&hs, &b->th[i].hs);
    }
    rc = bench_report(b, &lat, &hs);
    teardown(b);
    hr_free(b);
    return rc;
}
