/* fanout_check.c - end-to-end fan-out checker for Herald (a test tool).
 *
 * What it proves: publish M messages to K channels with N WebSocket
 * subscribers spread over the server's workers; every subscriber receives
 * every publication of its channel exactly once, in offset order, with the
 * data that was published. Nothing lost, duplicated, reordered or altered.
 *
 * How:
 *   1. Opens N connections to ws://HOST:PORT/ws (at most --connect-concurrency
 *      handshakes at a time). Its own RFC 6455 client: GET with a random
 *      Sec-WebSocket-Key, 101 checked (Sec-WebSocket-Accept, no extension,
 *      since none is offered), client frames masked.
 *   2. Sends {"id":1,"connect":{...}} and {"id":2,"subscribe":{"channel":C}}
 *      in one text frame (docs/protocol.md); subscriber i takes channel i % K.
 *      Waits until all N have both results; the subscribe result's offset is
 *      the channel's starting point (all subscribers of a channel must agree).
 *   3. Publishes M messages through POST /api/batch (docs/api.md) over one
 *      keep-alive connection, --batch publishes per request, up to
 *      --pipeline requests in flight, round-robin over the K channels;
 *      message i (0-based) goes to channel i % K with data "i:xxx..." (a JSON
 *      string padded to --payload-bytes). Every reply offset is checked. The
 *      publisher stays at most --window messages ahead of the slowest
 *      subscriber (0 = no limit: a firehose), so the server's per-connection
 *      output queues stay bounded by the window, not by M.
 *   4. Reads pushes {"pub":{"channel":C,"offset":N,"data":D}} (several per
 *      frame or frames split across reads are fine; pings get pongs; close
 *      frames are answered and reported). For each subscriber it tracks the
 *      next expected offset; the first out-of-order arrival switches that
 *      subscriber to a bitmap of received offsets, so lost, duplicate and
 *      reordered (late) publications are counted exactly.
 *   5. Optionally (--stall-subscribers K) the first K subscribers stop reading
 *      for a while and the publisher does not wait for them: a way to check
 *      that a server cutting off slow consumers is reported, not missed. So
 *      that the kernel cannot absorb the backlog (TCP receive buffers
 *      autotune up to net.ipv4.tcp_rmem's 32 MiB on some hosts), a stalled
 *      subscriber's SO_RCVBUF is set small before it connects, and the stall
 *      lasts at least --stall-seconds AND until every message is published:
 *      the backlog is then the whole stream, however slowly a loaded machine
 *      publishes it.
 *
 * Output: one JSON summary line on stdout; progress and diagnostics on
 * stderr. Exit status: 0 = every subscriber got exactly its channel's
 * publications in order; 1 = anything else (including a timeout, a
 * connection closed by the server, e.g. 3008 slow consumer, or a failed
 * publish); 2 = bad usage.
 *
 * What it owns: everything runs on one thread in one level-triggered epoll
 * loop. Input is read into one shared buffer; a connection keeps only the
 * bytes of an incomplete frame. The hot path (a pub line in the server's
 * encoding) is matched byte for byte; any other line goes through jansson,
 * so a different but valid encoding is still checked, only slower.
 *
 * Independence: no protocol code is shared with the server (frame codec,
 * handshake and HTTP parsing are written here from RFC 6455 / RFC 9112),
 * so a bug in Herald's codecs cannot hide itself. From herald_lib it uses
 * only hr_buf and the abort-on-OOM allocator; OpenSSL gives SHA-1 and base64
 * for the handshake, jansson the slow-path JSON and the summary.
 */
#include "core/buf.h"
#include "core/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF_SIZE (256 * 1024)     /* shared read buffer */
#define MAX_HEAD (16 * 1024)           /* largest HTTP response head accepted */
#define MAX_FRAME (64u * 1024 * 1024)  /* largest server frame accepted */
#define MAX_BODY_DEFAULT (1024 * 1024) /* Herald's default http.max_body_size */
#define MAX_ERRORS_KEPT 10
#define MAX_ERRORS_PRINTED 20
#define EVENTS 512
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- options ----------------------------------------------------------------- */

typedef struct opts {
    const char *host;
    const char *port;
    const char *path;
    const char *api_key;
    const char *channel;
    uint64_t subscribers;
    uint64_t messages;
    uint64_t channels;
    uint64_t batch;
    uint64_t payload_bytes;
    uint64_t window;         /* messages ahead of the slowest subscriber; 0 = unlimited */
    bool window_set;
    uint64_t pipeline;       /* /api/batch requests in flight at once */
    uint64_t stall;          /* subscribers 0..stall-1 stop reading while publishing starts */
    uint64_t stall_rcvbuf;   /* their SO_RCVBUF (bytes; the kernel doubles it) */
    double stall_s;
    uint64_t max_body;
    double timeout_s;
    double linger_s;
    double settle_s;
    double progress_s;
    uint64_t connect_concurrency;
} opts;

/* ---- state ------------------------------------------------------------------- */

enum ep_kind { EP_SUB = 1, EP_PUB = 2 };

typedef enum sub_state {
    SS_IDLE = 0,     /* not started */
    SS_CONNECTING,   /* TCP connect in progress */
    SS_UPGRADING,    /* handshake sent, waiting for the 101 */
    SS_SUBSCRIBING,  /* connect + subscribe sent, waiting for both results */
    SS_READY,        /* subscribed: receiving publications */
    SS_CLOSED,       /* gone: closed by the server, failed, or closed by us at the end */
} sub_state;

static const char *state_name[] = {"idle", "connecting", "upgrading", "subscribing", "ready", "closed"};

typedef struct sub {
    int kind;                /* EP_SUB; first member: the epoll tag */
    int fd;
    uint32_t idx;
    uint32_t chan;           /* index into ctx.chans */
    sub_state state;
    bool complete;           /* received all of its channel's publications */
    bool closed_by_server;   /* close frame or EOF while the test ran */
    bool want_out;           /* EPOLLOUT is registered */
    bool in_frag;            /* a fragmented message is open */
    uint8_t frag_op;
    bool got_connect, got_subscribe;
    bool stalled;            /* --stall-subscribers: not reading for now */
    char key[32];            /* Sec-WebSocket-Key */
    hr_buf in;               /* unconsumed input (partial head or frame) */
    hr_buf out;              /* output the kernel did not take yet */
    hr_buf frag;             /* payload of the open fragmented message */
    uint64_t base;           /* channel offset when subscribed */
    uint64_t next;           /* lowest offset not received yet */
    uint64_t max_seen;       /* highest offset received (bitmap mode) */
    uint64_t got;            /* distinct in-range publications received */
    uint64_t dups, late, corrupt;
    uint64_t *seen;          /* received offsets, allocated at the first out-of-order arrival */
    int close_code;          /* server close code (1005 = none given, -1 = EOF without close) */
} sub;

typedef struct chan {
    char name[256];
    size_t len;
    char *pfx;               /* fast path: {"pub":{"channel":"NAME","offset": */
    size_t pfx_len;
    uint64_t count;          /* publications the test sends to it */
    uint64_t base;           /* offset reported by subscribe */
    bool base_set;
    uint32_t nsubs;
} chan;

#define MAX_PIPELINE 16

typedef struct batch {
    uint64_t first, n;       /* messages first .. first+n-1 */
} batch;

typedef struct publisher {
    int kind;                /* EP_PUB */
    int fd;
    bool want_out;
    hr_buf out;              /* requests not yet written */
    size_t out_off;
    hr_buf in;               /* response bytes not yet handled */
    batch inflight[MAX_PIPELINE]; /* requests sent (or queued), oldest first */
    unsigned head, ninflight;
    uint64_t next_msg;       /* next message index to publish */
    uint64_t acked;          /* messages whose publish reply was checked */
    uint64_t requests;
    bool failed;
} publisher;

typedef struct ctx {
    opts o;
    int ep;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    sub *subs;
    chan *chans;
    publisher pub;
    uint8_t *rbuf;
    uint64_t rng;
    /* counts */
    uint64_t started, ready, failed_setup, ncomplete, nclosed_server, slow_consumer;
    uint64_t ndead;          /* subscribed, then closed (for any reason) before complete */
    uint64_t deliveries;     /* pub lines received, duplicates included */
    uint64_t bytes_in;
    uint64_t nerrors;
    char *errors[MAX_ERRORS_KEPT];
    bool aborted;            /* stop now: a publish failed or setup failed */
    bool timed_out;
    bool stall_over;         /* --stall-subscribers: they read again */
    bool slow_valid;         /* slowest_cached(): slow_idx holds the minimum slow_val */
    uint64_t slow_idx, slow_val;
    /* times (monotonic seconds) */
    double t_start, t_ready, t_pub0, t_done, deadline, next_progress, stall_until;
    double now;              /* loop time of this turn */
    double last_rx;          /* when a subscriber last received something */
    bool settled_early;      /* --settle: stopped because nothing more arrived */
} ctx;

/* ---- small helpers ---------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note(ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record one error: counted, the first few kept for the summary and printed. */
static void note(ctx *x, const char *fmt, ...)
{
    if (x->nerrors > MAX_ERRORS_PRINTED) { /* only counted from here on */
        x->nerrors++;
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (x->nerrors < MAX_ERRORS_KEPT) x->errors[x->nerrors] = hr_strdup(line);
    if (x->nerrors < MAX_ERRORS_PRINTED) fprintf(stderr, "fanout_check: error: %s\n", line);
    else if (x->nerrors == MAX_ERRORS_PRINTED) fprintf(stderr, "fanout_check: (further errors only counted)\n");
    x->nerrors++;
}

static uint64_t rng_next(ctx *x)
{
    /* xorshift64*: mask keys only need to vary, not to be secret, for a test client */
    x->rng ^= x->rng >> 12;
    x->rng ^= x->rng << 25;
    x->rng ^= x->rng >> 27;
    return x->rng * 2685821657736338717ull;
}

static int digits10(uint64_t v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* Length of the JSON text of message i's data: "i:" plus padding, quoted. */
static size_t data_json_len(const ctx *x, uint64_t i)
{
    size_t natural = 2 + (size_t)digits10(i) + 1;
    return x->o.payload_bytes > natural ? (size_t)x->o.payload_bytes : natural;
}

static void append_data(const ctx *x, hr_buf *b, uint64_t i)
{
    size_t len = data_json_len(x, i);
    size_t pad = len - (2 + (size_t)digits10(i) + 1);
    hr_buf_printf(b, "\"%" PRIu64 ":", i);
    uint8_t *p = hr_buf_reserve(b, pad + 1);
    memset(p, 'x', pad);
    p[pad] = '"';
    b->len += pad + 1;
}

/* Check the content of a data string (between the quotes) against message i. */
static bool data_ok(const ctx *x, const uint8_t *s, size_t n, uint64_t i)
{
    if (n + 2 != data_json_len(x, i)) return false;
    uint64_t v = 0;
    size_t k = 0;
    while (k < n && s[k] >= '0' && s[k] <= '9' && k < 20) v = v * 10 + (uint64_t)(s[k++] - '0');
    if (k == 0 || k >= n || s[k] != ':' || v != i) return false;
    for (k++; k < n; k++)
        if (s[k] != 'x') return false;
    return true;
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void ep_set(ctx *x, int fd, void *tag, uint32_t events, bool add)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    if (epoll_ctl(x->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0) {
        fprintf(stderr, "fanout_check: epoll_ctl: %s\n", strerror(errno));
        exit(1);
    }
}

static void base64(const uint8_t *in, size_t n, char *out) { EVP_EncodeBlock((unsigned char *)out, in, (int)n); }

/* Find a header's value in an HTTP head (case-insensitive name). */
static bool header_value(const char *head, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && (size_t)(colon - line) == nlen && strncasecmp(line, name, nlen) == 0) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *val = v;
            *vlen = (size_t)(ve - v);
            return true;
        }
        p = eol < end ? eol : NULL;
    }
    return false;
}

static bool token_in_list(const char *v, size_t n, const char *tok)
{
    size_t t = strlen(tok);
    for (size_t i = 0; i + t <= n; i++)
        if (strncasecmp(v + i, tok, t) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + t == n || v[i + t] == ',' || v[i + t] == ' '))
            return true;
    return false;
}

/* ---- subscriber I/O ------------------------------------------------------------------ */

static uint32_t sub_events(const sub *s)
{
    return (s->stalled ? 0 : EPOLLIN | EPOLLRDHUP) | (s->want_out ? EPOLLOUT : 0);
}

static void sub_update_events(ctx *x, sub *s)
{
    bool want = s->out.len > 0 || s->state == SS_CONNECTING;
    if (want == s->want_out) return;
    s->want_out = want;
    ep_set(x, s->fd, s, sub_events(s), false);
}

/* --stall-subscribers: stop (or resume) reading from a subscriber. */
static void sub_set_stalled(ctx *x, sub *s, bool on)
{
    if (s->state == SS_CLOSED || s->stalled == on) return;
    s->stalled = on;
    ep_set(x, s->fd, s, sub_events(s), false);
}

static void sub_close(ctx *x, sub *s)
{
    if (s->state == SS_CLOSED) return;
    if (s->state < SS_READY && s->state > SS_IDLE) x->failed_setup++;
    if (s->state == SS_READY && !s->complete) x->ndead++;
    s->state = SS_CLOSED;
    if (s->fd >= 0) close(s->fd); /* also leaves the epoll set */
    s->fd = -1;
    hr_buf_free(&s->in);
    hr_buf_free(&s->out);
    hr_buf_free(&s->frag);
}

/* Queue bytes: written at once when possible, the rest on EPOLLOUT. */
static void sub_write(ctx *x, sub *s, const void *data, size_t n)
{
    if (s->state == SS_CLOSED) return;
    const uint8_t *p = data;
    if (s->out.len == 0 && s->state != SS_CONNECTING) {
        ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            note(x, "subscriber %u: send failed: %s", s->idx, strerror(errno));
            sub_close(x, s);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (n) hr_buf_append(&s->out, p, n);
    sub_update_events(x, s);
}

static void sub_flush(ctx *x, sub *s)
{
    while (s->out.len) {
        ssize_t w = send(s->fd, s->out.data, s->out.len, MSG_NOSIGNAL);
        if (w > 0) {
            hr_buf_consume(&s->out, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        note(x, "subscriber %u: send failed: %s", s->idx, strerror(errno));
        sub_close(x, s);
        return;
    }
    if (!s->out.len) hr_buf_free(&s->out);
    sub_update_events(x, s);
}

/* Send one masked frame (RFC 6455 §5.2-5.3). */
static void sub_send_frame(ctx *x, sub *s, uint8_t opcode, const void *data, size_t n)
{
    uint8_t hdr[14];
    size_t hl;
    hdr[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        hdr[1] = (uint8_t)(0x80 | n);
        hl = 2;
    } else if (n <= 0xffff) {
        hdr[1] = 0x80 | 126;
        hdr[2] = (uint8_t)(n >> 8);
        hdr[3] = (uint8_t)n;
        hl = 4;
    } else {
        hdr[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) hdr[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    uint32_t m = (uint32_t)rng_next(x);
    memcpy(hdr + hl, &m, 4);
    const uint8_t *mask = hdr + hl;
    hl += 4;
    hr_buf f = HR_BUF_INIT;
    hr_buf_append(&f, hdr, hl);
    uint8_t *dst = hr_buf_reserve(&f, n);
    const uint8_t *src = data;
    for (size_t i = 0; i < n; i++) dst[i] = src[i] ^ mask[i & 3];
    f.len += n;
    sub_write(x, s, f.data, f.len);
    hr_buf_free(&f);
}

static void sub_start(ctx *x, sub *s)
{
    s->fd = socket(x->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        note(x, "subscriber %u: socket: %s", s->idx, strerror(errno));
        s->state = SS_CLOSED;
        x->failed_setup++;
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (s->idx < x->o.stall) { /* before connect(): fixes the window, no autotuning */
        int rcv = (int)x->o.stall_rcvbuf;
        if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) < 0)
            note(x, "subscriber %u: SO_RCVBUF: %s", s->idx, strerror(errno));
    }
    s->state = SS_CONNECTING;
    s->want_out = true;
    ep_set(x, s->fd, s, EPOLLIN | EPOLLOUT | EPOLLRDHUP, true);
    if (connect(s->fd, (struct sockaddr *)&x->addr, x->addrlen) < 0 && errno != EINPROGRESS) {
        note(x, "subscriber %u: connect: %s", s->idx, strerror(errno));
        sub_close(x, s);
    }
}

/* TCP connected: send the opening handshake (RFC 6455 §4.1). */
static void sub_connected(ctx *x, sub *s)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        note(x, "subscriber %u: connect: %s", s->idx, strerror(err));
        sub_close(x, s);
        return;
    }
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rng_next(x);
        memcpy(raw + i, &r, 8);
    }
    base64(raw, sizeof(raw), s->key);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "User-Agent: herald-fanout-check\r\n\r\n",
                     x->o.path, x->o.host, x->o.port, s->key);
    s->state = SS_UPGRADING;
    sub_write(x, s, req, (size_t)n);
}

/* Handle the 101 response head; returns false if the connection was closed. */
static bool sub_upgraded(ctx *x, sub *s, const char *head, size_t len)
{
    if (len < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(head, '\r', len);
        note(x, "subscriber %u: handshake refused: %.*s", s->idx, (int)(eol ? eol - head : (long)HR_MIN(len, 80)),
             head);
        sub_close(x, s);
        return false;
    }
    char expect[64], cat[128];
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int cn = snprintf(cat, sizeof(cat), "%s%s", s->key, WS_GUID);
    EVP_Digest(cat, (size_t)cn, md, &mdlen, EVP_sha1(), NULL);
    base64(md, mdlen, expect);
    const char *v;
    size_t vn;
    if (!header_value(head, len, "sec-websocket-accept", &v, &vn) || vn != strlen(expect) ||
        memcmp(v, expect, vn) != 0) {
        note(x, "subscriber %u: missing or wrong Sec-WebSocket-Accept", s->idx);
        sub_close(x, s);
        return false;
    }
    if (!header_value(head, len, "upgrade", &v, &vn) || !token_in_list(v, vn, "websocket") ||
        !header_value(head, len, "connection", &v, &vn) || !token_in_list(v, vn, "upgrade")) {
        note(x, "subscriber %u: 101 without Upgrade: websocket / Connection: Upgrade", s->idx);
        sub_close(x, s);
        return false;
    }
    if (header_value(head, len, "sec-websocket-extensions", &v, &vn)) {
        note(x, "subscriber %u: server selected an extension nobody offered: %.*s", s->idx, (int)vn, v);
        sub_close(x, s);
        return false;
    }
    /* connect + subscribe in one frame, newline-delimited (docs/protocol.md) */
    chan *c = &x->chans[s->chan];
    char cmd[512];
    int n = snprintf(cmd, sizeof(cmd),
                     "{\"id\":1,\"connect\":{\"name\":\"fanout_check\",\"version\":\"1\"}}\n"
                     "{\"id\":2,\"subscribe\":{\"channel\":\"%s\"}}",
                     c->name);
    s->state = SS_SUBSCRIBING;
    sub_send_frame(x, s, 0x1, cmd, (size_t)n);
    return s->state != SS_CLOSED;
}

/* ---- accounting -------------------------------------------------------------------- */

static void sub_mark_complete(ctx *x, sub *s)
{
    s->complete = true;
    x->ncomplete++;
}

static inline bool bit_test(const uint64_t *b, uint64_t i) { return (b[i >> 6] >> (i & 63)) & 1; }
static inline void bit_set(uint64_t *b, uint64_t i) { b[i >> 6] |= 1ull << (i & 63); }

/* One publication arrived for subscriber s: offset `off`, data check result. */
static void account(ctx *x, sub *s, uint64_t off, bool good_data)
{
    chan *c = &x->chans[s->chan];
    uint64_t total = c->count;
    x->deliveries++;
    if (s->state != SS_READY) {
        s->corrupt++;
        note(x, "subscriber %u (%s): publication offset %" PRIu64 " before its subscribe result", s->idx, c->name, off);
        return;
    }
    if (off <= s->base || off - s->base > total) {
        s->corrupt++;
        note(x, "subscriber %u (%s): offset %" PRIu64 " outside the published range %" PRIu64 "..%" PRIu64, s->idx,
             c->name, off, s->base + 1, s->base + total);
        return;
    }
    if (!good_data) {
        s->corrupt++;
        note(x, "subscriber %u (%s): offset %" PRIu64 " carries the wrong data (expected message %" PRIu64 ")",
             s->idx, c->name, off, (off - s->base - 1) * x->o.channels + s->chan);
    }
    if (HR_LIKELY(!s->seen)) {
        if (HR_LIKELY(off == s->next)) {
            s->next++;
            if (++s->got == total) sub_mark_complete(x, s);
            return;
        }
        if (off < s->next) {
            s->dups++;
            note(x, "subscriber %u (%s): duplicate offset %" PRIu64 " (next expected %" PRIu64 ")", s->idx, c->name,
                 off, s->next);
            return;
        }
        /* A gap: from now on remember every offset received. */
        note(x, "subscriber %u (%s): offset %" PRIu64 " arrived while %" PRIu64 " was expected", s->idx, c->name, off,
             s->next);
        s->seen = hr_calloc((size_t)((total + 63) / 64), sizeof(uint64_t));
        for (uint64_t r = 0; r < s->next - s->base - 1; r++) bit_set(s->seen, r);
        s->max_seen = s->next - 1;
    }
    uint64_t r = off - s->base - 1;
    if (bit_test(s->seen, r)) {
        s->dups++;
        note(x, "subscriber %u (%s): duplicate offset %" PRIu64, s->idx, c->name, off);
        return;
    }
    bit_set(s->seen, r);
    if (off < s->max_seen) {
        s->late++;
        note(x, "subscriber %u (%s): offset %" PRIu64 " arrived after offset %" PRIu64 " (reordered)", s->idx, c->name,
             off, s->max_seen);
    } else {
        s->max_seen = off;
    }
    while (s->next - s->base <= total && bit_test(s->seen, s->next - s->base - 1)) s->next++;
    if (++s->got == total) sub_mark_complete(x, s);
}

/* ---- native protocol lines ----------------------------------------------------------- */

static bool parse_u64(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    int n = 0;
    while (p < end && *p >= '0' && *p <= '9' && n < 19) {
        v = v * 10 + (uint64_t)(*p++ - '0');
        n++;
    }
    if (!n) return false;
    *pp = p;
    *out = v;
    return true;
}

/* The expected message index for an offset of subscriber s's channel. */
static uint64_t msg_index(const ctx *x, const sub *s, uint64_t off)
{
    return (off - s->base - 1) * x->o.channels + s->chan;
}

static void subscribed(ctx *x, sub *s, json_t *res)
{
    chan *c = &x->chans[s->chan];
    json_t *off = json_object_get(res, "offset");
    if (!json_is_integer(off) || json_integer_value(off) < 0) {
        note(x, "subscriber %u: subscribe result without an offset", s->idx);
        sub_close(x, s);
        return;
    }
    s->base = (uint64_t)json_integer_value(off);
    s->next = s->base + 1;
    if (!c->base_set) {
        c->base = s->base;
        c->base_set = true;
    } else if (c->base != s->base) {
        note(x, "subscriber %u: channel %s at offset %" PRIu64 ", others saw %" PRIu64
                " (someone else publishes there?)",
             s->idx, c->name, s->base, c->base);
        sub_close(x, s);
        return;
    }
    s->got_subscribe = true;
}

/* A line that is not a pub in the server's usual encoding: parse it fully. */
static void on_line_slow(ctx *x, sub *s, const uint8_t *p, size_t n)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)p, n, 0, &jerr);
    if (!json_is_object(o)) {
        note(x, "subscriber %u: not a JSON object: %.*s", s->idx, (int)HR_MIN(n, 120), p);
        json_decref(o);
        return;
    }
    json_t *id = json_object_get(o, "id"), *v;
    if (json_is_integer(id)) {
        json_int_t i = json_integer_value(id);
        json_t *res = json_object_get(o, "result");
        if (!json_is_object(res) || (i != 1 && i != 2) || s->state != SS_SUBSCRIBING) {
            note(x, "subscriber %u: unexpected reply: %.*s", s->idx, (int)HR_MIN(n, 200), p);
            sub_close(x, s);
        } else if (i == 1) {
            s->got_connect = true;
        } else {
            subscribed(x, s, res);
        }
        if (s->state == SS_SUBSCRIBING && s->got_connect && s->got_subscribe) {
            s->state = SS_READY;
            x->ready++;
        }
    } else if (json_is_object(v = json_object_get(o, "pub"))) {
        json_t *ch = json_object_get(v, "channel"), *off = json_object_get(v, "offset"),
               *data = json_object_get(v, "data");
        const chan *c = &x->chans[s->chan];
        if (!json_is_string(ch) || json_string_length(ch) != c->len || memcmp(json_string_value(ch), c->name, c->len) ||
            !json_is_integer(off) || json_integer_value(off) < 0) {
            s->corrupt++;
            x->deliveries++;
            note(x, "subscriber %u (%s): bad pub: %.*s", s->idx, c->name, (int)HR_MIN(n, 200), p);
        } else {
            uint64_t o64 = (uint64_t)json_integer_value(off);
            bool ok = json_is_string(data) && o64 > s->base &&
                      data_ok(x, (const uint8_t *)json_string_value(data), json_string_length(data),
                              msg_index(x, s, o64));
            account(x, s, o64, ok);
        }
    } else {
        /* unsubscribe / disconnect / join / leave pushes are not expected here */
        note(x, "subscriber %u: unexpected push: %.*s", s->idx, (int)HR_MIN(n, 200), p);
    }
    json_decref(o);
}

/* One newline-delimited JSON line. Fast path: {"pub":{"channel":"C","offset":N,"data":"I:xx.."}} */
static void on_line(ctx *x, sub *s, const uint8_t *p, size_t n)
{
    const chan *c = &x->chans[s->chan];
    const uint8_t *end = p + n;
    if (HR_LIKELY(s->state == SS_READY && n > c->pfx_len && memcmp(p, c->pfx, c->pfx_len) == 0)) {
        const uint8_t *q = p + c->pfx_len;
        uint64_t off;
        static const char mid[] = ",\"data\":\"";
        if (parse_u64(&q, end, &off) && (size_t)(end - q) > sizeof(mid) - 1 + 3 &&
            memcmp(q, mid, sizeof(mid) - 1) == 0 && end[-1] == '}' && end[-2] == '}' && end[-3] == '"') {
            const uint8_t *ds = q + sizeof(mid) - 1, *de = end - 3;
            if (!memchr(ds, '"', (size_t)(de - ds)) && !memchr(ds, '\\', (size_t)(de - ds))) {
                bool ok = off > s->base && data_ok(x, ds, (size_t)(de - ds), msg_index(x, s, off));
                account(x, s, off, ok);
                return;
            }
        }
    }
    on_line_slow(x, s, p, n);
}

static void on_text(ctx *x, sub *s, const uint8_t *p, size_t n)
{
    while (n && s->state != SS_CLOSED) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t ln = nl ? (size_t)(nl - p) : n;
        if (ln) on_line(x, s, p, ln);
        if (!nl) break;
        p = nl + 1;
        n -= ln + 1;
    }
}

/* ---- WebSocket frames (server to client: never masked) ------------------------------------ */

static void sub_on_close_frame(ctx *x, sub *s, const uint8_t *p, size_t n)
{
    int code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
    const char *reason = n > 2 ? (const char *)p + 2 : "";
    int rlen = n > 2 ? (int)(n - 2) : 0;
    s->close_code = code;
    s->closed_by_server = true;
    x->nclosed_server++;
    if (code == 3008) x->slow_consumer++;
    const chan *c = &x->chans[s->chan];
    note(x, "subscriber %u (%s): server closed the connection with %d \"%.*s\"%s after %" PRIu64 "/%" PRIu64
            " publications",
         s->idx, c->name, code, rlen, reason,
         code == 3008 ? " (slow consumer: its output queue passed websocket.max_queued_bytes)" : "", s->got,
         c->count);
    /* answer with the same code (RFC 6455 §5.5.1), then close TCP */
    uint8_t reply[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (n >= 2) sub_send_frame(x, s, 0x8, reply, 2);
    else sub_send_frame(x, s, 0x8, NULL, 0);
    sub_close(x, s);
}

static void sub_protocol_error(ctx *x, sub *s, const char *what)
{
    note(x, "subscriber %u: protocol error from server: %s", s->idx, what);
    uint8_t reply[2] = {1002 >> 8, 1002 & 0xff};
    sub_send_frame(x, s, 0x8, reply, 2);
    sub_close(x, s);
}

static void sub_on_message(ctx *x, sub *s, uint8_t op, const uint8_t *p, size_t n)
{
    if (op == 0x1) on_text(x, s, p, n);
    else sub_protocol_error(x, s, "binary message on the JSON protocol");
}

/* Consume complete frames from p[0..len); returns the bytes consumed. */
static size_t sub_frames(ctx *x, sub *s, uint8_t *p, size_t len)
{
    size_t off = 0;
    while (len - off >= 2 && s->state != SS_CLOSED) {
        uint8_t b0 = p[off], b1 = p[off + 1];
        uint64_t plen = b1 & 0x7f;
        size_t hl = 2;
        if (b1 & 0x80) {
            sub_protocol_error(x, s, "masked frame");
            break;
        }
        if (plen == 126) {
            if (len - off < 4) break;
            plen = (uint64_t)p[off + 2] << 8 | p[off + 3];
            hl = 4;
        } else if (plen == 127) {
            if (len - off < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = plen << 8 | p[off + 2 + i];
            hl = 10;
        }
        if (plen > MAX_FRAME) {
            sub_protocol_error(x, s, "frame larger than 64 MiB");
            break;
        }
        if (len - off - hl < plen) break;
        uint8_t *pl = p + off + hl;
        off += hl + (size_t)plen;
        uint8_t op = b0 & 0x0f;
        bool fin = b0 & 0x80;
        if (b0 & 0x70) {
            sub_protocol_error(x, s, "RSV bit set (no extension was negotiated)");
            break;
        }
        switch (op) {
        case 0x1:
        case 0x2:
            if (s->in_frag) {
                sub_protocol_error(x, s, "new message inside a fragmented one");
                break;
            }
            if (fin) {
                sub_on_message(x, s, op, pl, (size_t)plen);
            } else {
                s->in_frag = true;
                s->frag_op = op;
                hr_buf_append(&s->frag, pl, (size_t)plen);
            }
            break;
        case 0x0:
            if (!s->in_frag) {
                sub_protocol_error(x, s, "continuation without a message");
                break;
            }
            hr_buf_append(&s->frag, pl, (size_t)plen);
            if (fin) {
                s->in_frag = false;
                hr_buf msg = s->frag;
                s->frag = (hr_buf)HR_BUF_INIT;
                sub_on_message(x, s, s->frag_op, msg.data, msg.len);
                hr_buf_free(&msg);
            }
            break;
        case 0x8:
        case 0x9:
        case 0xA:
            if (!fin || plen > 125) {
                sub_protocol_error(x, s, "fragmented or long control frame");
                break;
            }
            if (op == 0x8) sub_on_close_frame(x, s, pl, (size_t)plen);
            else if (op == 0x9) sub_send_frame(x, s, 0xA, pl, (size_t)plen);
            break;
        default:
            sub_protocol_error(x, s, "reserved opcode");
            break;
        }
    }
    return off;
}

/* Everything received so far that forms complete units: the 101 head, then frames. */
static size_t sub_consume(ctx *x, sub *s, uint8_t *p, size_t len)
{
    size_t used = 0;
    if (s->state == SS_UPGRADING) {
        uint8_t *e = memmem(p, len, "\r\n\r\n", 4);
        if (!e) {
            if (len > MAX_HEAD) {
                note(x, "subscriber %u: handshake response head larger than %d bytes", s->idx, MAX_HEAD);
                sub_close(x, s);
            }
            return 0;
        }
        used = (size_t)(e - p) + 4;
        if (!sub_upgraded(x, s, (const char *)p, used)) return used;
    }
    return used + sub_frames(x, s, p + used, len - used);
}

static void sub_eof(ctx *x, sub *s)
{
    const chan *c = &x->chans[s->chan];
    s->close_code = -1;
    s->closed_by_server = true;
    x->nclosed_server++;
    note(x, "subscriber %u (%s): connection closed by the server without a close frame (state %s, %" PRIu64
            "/%" PRIu64 " publications)",
         s->idx, c->name, state_name[s->state], s->got, c->count);
    sub_close(x, s);
}

/* Read what the socket has. A short leftover (an incomplete frame) is put
 * in front of the shared buffer and read after; only a large one (a frame
 * bigger than half the shared buffer) is read into the subscriber's own
 * buffer. So a subscriber keeps at most one partial frame of its own. */
static void sub_readable(ctx *x, sub *s)
{
    for (int round = 0; round < 4 && s->state != SS_CLOSED; round++) {
        bool own = s->in.len > READ_BUF_SIZE / 2;
        uint8_t *buf, *dst;
        size_t cap, have;
        if (own) {
            dst = hr_buf_reserve(&s->in, READ_BUF_SIZE);
            cap = s->in.cap - s->in.len;
            buf = s->in.data;
            have = s->in.len;
        } else {
            have = s->in.len;
            if (have) memcpy(x->rbuf, s->in.data, have);
            buf = x->rbuf;
            dst = x->rbuf + have;
            cap = READ_BUF_SIZE - have;
        }
        ssize_t n = recv(s->fd, dst, cap, 0);
        if (n > 0) {
            x->bytes_in += (uint64_t)n;
            x->last_rx = x->now;
            size_t len = have + (size_t)n;
            size_t used = sub_consume(x, s, buf, len);
            if (s->state == SS_CLOSED) return;
            if (own) {
                s->in.len = len;
                hr_buf_consume(&s->in, used);
                if (s->in.len <= READ_BUF_SIZE / 2) {
                    /* back to a small tail: drop the big buffer */
                    hr_buf tail = HR_BUF_INIT;
                    hr_buf_append(&tail, s->in.data, s->in.len);
                    hr_buf_free(&s->in);
                    s->in = tail;
                }
            } else {
                s->in.len = 0; /* the old tail was copied into buf */
                if (used < len) hr_buf_append(&s->in, buf + used, len - used);
            }
            if (!s->in.len) hr_buf_free(&s->in);
            if ((size_t)n < cap) return; /* drained */
            continue;
        }
        if (n == 0) {
            sub_eof(x, s);
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        note(x, "subscriber %u: recv: %s", s->idx, strerror(errno));
        s->closed_by_server = true;
        x->nclosed_server++;
        sub_close(x, s);
        return;
    }
}

static void sub_event(ctx *x, sub *s, uint32_t ev)
{
    if (s->state == SS_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        sub_connected(x, s);
        if (s->state == SS_CLOSED) return;
        sub_update_events(x, s);
        return;
    }
    if ((ev & EPOLLOUT) && s->out.len) sub_flush(x, s);
    if (s->state != SS_CLOSED && !s->stalled && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        sub_readable(x, s);
}

/* ---- publisher (HTTP API) ----------------------------------------------------------------- */

static int pub_connect(ctx *x)
{
    int fd = socket(x->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&x->addr, x->addrlen) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    set_nonblock(fd);
    x->pub.fd = fd;
    x->pub.want_out = false;
    ep_set(x, fd, &x->pub, EPOLLIN | EPOLLRDHUP, true);
    return 0;
}

static void pub_fail(ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pub_fail(ctx *x, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    note(x, "publisher: %s", msg);
    x->pub.failed = true;
    x->aborted = true;
}

static void pub_set_out(ctx *x, bool want)
{
    if (want == x->pub.want_out) return;
    x->pub.want_out = want;
    ep_set(x, x->pub.fd, &x->pub, EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), false);
}

static void pub_flush(ctx *x)
{
    publisher *p = &x->pub;
    while (p->out_off < p->out.len) {
        ssize_t w = send(p->fd, p->out.data + p->out_off, p->out.len - p->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            p->out_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pub_set_out(x, true);
            return;
        }
        pub_fail(x, "send: %s", strerror(errno));
        return;
    }
    hr_buf_free(&p->out);
    p->out_off = 0;
    pub_set_out(x, false);
}

/* Global index of the message after the highest one subscriber s received
 * (UINT64_MAX: it does not count for the window). The server writes a
 * connection's pushes in order on one TCP stream, so everything before that
 * has left its queue: this measures the queue, and a lost publication does
 * not hold the publisher back (the loss is reported at the end). */
static uint64_t sub_progress(const ctx *x, const sub *s)
{
    if (s->state != SS_READY || s->complete || s->stalled) return UINT64_MAX;
    uint64_t high = s->seen ? s->max_seen : s->next - 1;
    return (high - s->base) * x->o.channels + s->chan;
}

/* The message the slowest counted subscriber still waits for: a full scan. */
static uint64_t slowest_progress(const ctx *x, uint64_t *who)
{
    uint64_t min = UINT64_MAX;
    for (uint64_t i = 0; i < x->o.subscribers; i++) {
        uint64_t g = sub_progress(x, &x->subs[i]);
        if (g < min) {
            min = g;
            if (who) *who = i;
        }
    }
    return min;
}

/* The same, cached: progress only grows, so the minimum stays put until the
 * subscriber that holds it moves on or leaves (a stall ending resets it). */
static uint64_t slowest_cached(ctx *x)
{
    if (x->slow_valid && sub_progress(x, &x->subs[x->slow_idx]) == x->slow_val) return x->slow_val;
    x->slow_val = slowest_progress(x, &x->slow_idx);
    x->slow_valid = x->slow_val != UINT64_MAX;
    return x->slow_val;
}

/* Queue the next batches while the pipeline and the window allow, and write. */
static void pub_maybe_send(ctx *x)
{
    publisher *p = &x->pub;
    if (p->failed || p->next_msg >= x->o.messages || p->ninflight >= x->o.pipeline) return;
    uint64_t slow = x->o.window ? slowest_cached(x) : UINT64_MAX;
    bool queued = false;
    while (p->next_msg < x->o.messages && p->ninflight < x->o.pipeline) {
        uint64_t n = HR_MIN(x->o.batch, x->o.messages - p->next_msg);
        if (x->o.window && slow != UINT64_MAX && p->next_msg + n > slow + x->o.window) break;
        if (p->fd < 0 && pub_connect(x) < 0) {
            pub_fail(x, "connect: %s", strerror(errno));
            return;
        }
        hr_buf body = HR_BUF_INIT;
        hr_buf_append_str(&body, "{\"commands\":[");
        for (uint64_t k = 0; k < n; k++) {
            uint64_t i = p->next_msg + k;
            const chan *c = &x->chans[i % x->o.channels];
            if (k) hr_buf_append(&body, ",", 1);
            hr_buf_printf(&body, "{\"method\":\"publish\",\"params\":{\"channel\":\"%s\",\"data\":", c->name);
            append_data(x, &body, i);
            hr_buf_append_str(&body, "}}");
        }
        hr_buf_append_str(&body, "]}");
        hr_buf_printf(&p->out,
                      "POST /api/batch HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: apikey %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      x->o.host, x->o.port, x->o.api_key, body.len);
        hr_buf_append(&p->out, body.data, body.len);
        hr_buf_free(&body);
        p->inflight[(p->head + p->ninflight) % MAX_PIPELINE] = (batch){p->next_msg, n};
        p->ninflight++;
        p->next_msg += n;
        p->requests++;
        queued = true;
    }
    if (!queued) return;
    if (x->t_pub0 == 0) x->t_pub0 = now_s();
    if (!p->want_out) pub_flush(x);
}

/* Check a /api/batch reply body: every publish got the expected offset. */
static void pub_check_replies(ctx *x, const batch *b, const char *body, size_t len)
{
    publisher *p = &x->pub;
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    json_t *replies = json_object_get(o, "replies");
    if (!json_is_array(replies) || json_array_size(replies) != b->n) {
        pub_fail(x, "batch reply for %" PRIu64 " publishes is not {\"replies\":[%" PRIu64 " items]}: %.*s", b->n, b->n,
                 (int)HR_MIN(len, 200), body);
        json_decref(o);
        return;
    }
    for (uint64_t k = 0; k < b->n; k++) {
        uint64_t i = b->first + k;
        const chan *c = &x->chans[i % x->o.channels];
        uint64_t want = c->base + i / x->o.channels + 1;
        json_t *r = json_array_get(replies, (size_t)k);
        json_t *off = json_object_get(json_object_get(r, "result"), "offset");
        if (!json_is_integer(off) || (uint64_t)json_integer_value(off) != want) {
            char *txt = json_dumps(r, JSON_COMPACT);
            pub_fail(x, "publish of message %" PRIu64 " to %s: expected offset %" PRIu64 ", got %s", i, c->name, want,
                     txt ? txt : "?");
            free(txt);
            break;
        }
    }
    json_decref(o);
    if (!p->failed) p->acked += b->n;
}

/* Handle every complete response in p->in; false if the publisher failed. */
static bool pub_responses(ctx *x)
{
    publisher *p = &x->pub;
    size_t off = 0;
    while (off < p->in.len && !p->failed) {
        const char *head = (const char *)p->in.data + off;
        size_t avail = p->in.len - off;
        if (!p->ninflight) {
            pub_fail(x, "response bytes without a request: %.*s", (int)HR_MIN(avail, 100), head);
            break;
        }
        const char *e = memmem(head, avail, "\r\n\r\n", 4);
        if (!e) {
            if (avail > MAX_HEAD) pub_fail(x, "API response head larger than %d bytes", MAX_HEAD);
            break;
        }
        size_t hlen = (size_t)(e - head) + 4;
        const char *v;
        size_t vn;
        if (header_value(head, hlen, "transfer-encoding", &v, &vn)) {
            pub_fail(x, "chunked API responses are not supported by this tool");
            break;
        }
        if (!header_value(head, hlen, "content-length", &v, &vn)) {
            pub_fail(x, "API response without Content-Length");
            break;
        }
        size_t blen = (size_t)strtoull(v, NULL, 10);
        if (avail < hlen + blen) break;
        bool close_after = header_value(head, hlen, "connection", &v, &vn) && token_in_list(v, vn, "close");
        if (hlen < 12 || memcmp(head, "HTTP/1.1 200", 12) != 0) {
            const char *eol = memchr(head, '\r', hlen);
            pub_fail(x, "POST /api/batch: %.*s: %.*s", (int)(eol - head), head, (int)HR_MIN(blen, 300), head + hlen);
            break;
        }
        batch b = p->inflight[p->head];
        p->head = (p->head + 1) % MAX_PIPELINE;
        p->ninflight--;
        pub_check_replies(x, &b, head + hlen, blen);
        off += hlen + blen;
        if (close_after) {
            if (p->ninflight)
                pub_fail(x, "the server closed the API connection with %u requests unanswered", p->ninflight);
            close(p->fd);
            p->fd = -1;
            p->want_out = false;
            hr_buf_free(&p->out);
            p->out_off = 0;
            off = p->in.len;
        }
    }
    hr_buf_consume(&p->in, off);
    if (!p->in.len) hr_buf_free(&p->in);
    return !p->failed;
}

static void pub_readable(ctx *x)
{
    publisher *p = &x->pub;
    for (;;) {
        uint8_t *dst = hr_buf_reserve(&p->in, 64 * 1024);
        ssize_t n = recv(p->fd, dst, p->in.cap - p->in.len, 0);
        if (n > 0) {
            p->in.len += (size_t)n;
            if (!pub_responses(x) || p->fd < 0) return;
            continue;
        }
        if (n == 0) {
            if (p->ninflight || p->in.len) {
                pub_fail(x, "the server closed the API connection with %u requests unanswered", p->ninflight);
                return;
            }
            close(p->fd); /* idle keep-alive closed: reconnect for the next batch */
            p->fd = -1;
            p->want_out = false;
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        pub_fail(x, "recv: %s", strerror(errno));
        return;
    }
}

static void pub_event(ctx *x, uint32_t ev)
{
    if ((ev & EPOLLOUT) && x->pub.out.len) pub_flush(x);
    if (!x->pub.failed && x->pub.fd >= 0 && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) pub_readable(x);
}

/* ---- setup, reporting ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fanout_check --port PORT --api-key KEY [options]\n"
            "  --host HOST             server address (default 127.0.0.1)\n"
            "  --port PORT             server port (required)\n"
            "  --path PATH             WebSocket path (default /ws)\n"
            "  --api-key KEY           server API key (required)\n"
            "  --subscribers N         WebSocket subscribers (default 1000)\n"
            "  --messages M            publications in all (default 100000)\n"
            "  --channel NAME          channel name (default fanout); with --channels K > 1\n"
            "                          the channels are NAME-0 .. NAME-(K-1)\n"
            "  --channels K            channels, published round-robin; subscriber i takes\n"
            "                          channel i %% K (default 1)\n"
            "  --batch B               publishes per POST /api/batch (default 100, at most 1000)\n"
            "  --payload-bytes P       size of each publication's data JSON (default 16)\n"
            "  --window W              publish at most W messages ahead of the slowest\n"
            "                          subscriber (default 2 x batch; 0 = no limit)\n"
            "  --pipeline P            /api/batch requests in flight at once (default 2, at most 16)\n"
            "  --max-body BYTES        largest request body (default 1 MiB, Herald's default);\n"
            "                          the batch shrinks to fit\n"
            "  --timeout SECONDS       give up after this long (default 120)\n"
            "  --linger SECONDS        after the last expected publication, wait this long\n"
            "                          for stray duplicates (default 0.2)\n"
            "  --settle SECONDS        once everything is published, stop when nothing arrived\n"
            "                          for this long (a lost publication fails fast; default 5)\n"
            "  --progress SECONDS      progress line on stderr every SECONDS (default 2; 0 = off)\n"
            "  --connect-concurrency C handshakes in flight at once (default 256)\n"
            "  --stall-subscribers K   subscribers 0..K-1 stop reading when publishing starts,\n"
            "                          and the publisher does not wait for them (to check how\n"
            "                          slow consumers are handled and reported; default 0)\n"
            "  --stall-seconds S       they stop reading for at least S seconds and until every\n"
            "                          message is published (default 2)\n"
            "  --stall-rcvbuf BYTES    their SO_RCVBUF, set before connecting so the kernel\n"
            "                          cannot absorb the backlog (default 32768)\n"
            "Prints one JSON summary line on stdout; exit 0 only if every subscriber received\n"
            "exactly its channel's publications, in order.\n");
}

static bool num_arg(const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < lo || n > hi) {
        fprintf(stderr, "fanout_check: --%s must be an integer in %" PRIu64 "..%" PRIu64 ", got '%s'\n", name, lo, hi,
                v);
        return false;
    }
    *out = n;
    return true;
}

static bool sec_arg(const char *name, const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= 0) || d > 1e6) {
        fprintf(stderr, "fanout_check: --%s must be a number of seconds, got '%s'\n", name, v);
        return false;
    }
    *out = d;
    return true;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    *o = (opts){.host = "127.0.0.1", .path = "/ws", .channel = "fanout", .subscribers = 1000, .messages = 100000,
                .channels = 1, .batch = 100, .payload_bytes = 16, .max_body = MAX_BODY_DEFAULT, .timeout_s = 120,
                .linger_s = 0.2, .progress_s = 2, .connect_concurrency = 256, .pipeline = 2, .stall_s = 2, .stall_rcvbuf = 32768,
                .settle_s = 5};
    static const struct option lo[] = {
        {"host", required_argument, 0, 'h'},          {"port", required_argument, 0, 'p'},
        {"path", required_argument, 0, 'P'},          {"api-key", required_argument, 0, 'k'},
        {"subscribers", required_argument, 0, 'n'},   {"messages", required_argument, 0, 'm'},
        {"channel", required_argument, 0, 'c'},       {"channels", required_argument, 0, 'K'},
        {"batch", required_argument, 0, 'b'},         {"payload-bytes", required_argument, 0, 's'},
        {"window", required_argument, 0, 'w'},        {"max-body", required_argument, 0, 'B'},
        {"timeout", required_argument, 0, 't'},       {"linger", required_argument, 0, 'l'},
        {"progress", required_argument, 0, 'r'},      {"connect-concurrency", required_argument, 0, 'C'},
        {"pipeline", required_argument, 0, 'L'},      {"stall-subscribers", required_argument, 0, 'S'},
        {"stall-seconds", required_argument, 0, 'T'}, {"settle", required_argument, 0, 'E'},
        {"stall-rcvbuf", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    int ch;
    bool ok = true;
    while (ok && (ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': o->host = optarg; break;
        case 'p': o->port = optarg; break;
        case 'P': o->path = optarg; break;
        case 'k': o->api_key = optarg; break;
        case 'c': o->channel = optarg; break;
        case 'n': ok = num_arg("subscribers", optarg, 1, 10000000, &o->subscribers); break;
        case 'm': ok = num_arg("messages", optarg, 1, 1000000000, &o->messages); break;
        case 'K': ok = num_arg("channels", optarg, 1, 100000, &o->channels); break;
        case 'b': ok = num_arg("batch", optarg, 1, 1000, &o->batch); break;
        case 's': ok = num_arg("payload-bytes", optarg, 0, 16 * 1024 * 1024, &o->payload_bytes); break;
        case 'w':
            ok = num_arg("window", optarg, 0, UINT64_MAX / 4, &o->window);
            o->window_set = true;
            break;
        case 'S': ok = num_arg("stall-subscribers", optarg, 0, 10000000, &o->stall); break;
        case 'T': ok = sec_arg("stall-seconds", optarg, &o->stall_s); break;
        case 'R': ok = num_arg("stall-rcvbuf", optarg, 1024, 1 << 30, &o->stall_rcvbuf); break;
        case 'E': ok = sec_arg("settle", optarg, &o->settle_s); break;
        case 'L': ok = num_arg("pipeline", optarg, 1, MAX_PIPELINE, &o->pipeline); break;
        case 'B': ok = num_arg("max-body", optarg, 1024, 1ull << 32, &o->max_body); break;
        case 't': ok = sec_arg("timeout", optarg, &o->timeout_s); break;
        case 'l': ok = sec_arg("linger", optarg, &o->linger_s); break;
        case 'r': ok = sec_arg("progress", optarg, &o->progress_s); break;
        case 'C': ok = num_arg("connect-concurrency", optarg, 1, 100000, &o->connect_concurrency); break;
        case 'H': usage(stdout); exit(0);
        default: ok = false; break;
        }
    }
    if (!ok || optind != argc) {
        if (ok) fprintf(stderr, "fanout_check: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!o->port || !o->api_key) {
        fprintf(stderr, "fanout_check: --port and --api-key are required\n");
        usage(stderr);
        return 2;
    }
    if (o->stall >= o->subscribers) {
        fprintf(stderr, "fanout_check: --stall-subscribers must be less than --subscribers\n");
        return 2;
    }
    if (o->channels > o->subscribers) {
        fprintf(stderr, "fanout_check: --channels (%" PRIu64 ") must not exceed --subscribers (%" PRIu64 ")\n",
                o->channels, o->subscribers);
        return 2;
    }
    size_t base_len = strlen(o->channel);
    if (base_len == 0 || base_len > 200 || strpbrk(o->channel, "\"\\\n\r ") || strlen(o->api_key) > 512 ||
        strlen(o->host) > 255 || strlen(o->path) > 512 || o->path[0] != '/') {
        fprintf(stderr, "fanout_check: bad --channel, --api-key, --host or --path\n");
        return 2;
    }
    return 0;
}

static void raise_nofile(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need) return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? (rlim_t)need : rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || want < need)
        fprintf(stderr, "fanout_check: warning: RLIMIT_NOFILE is %llu, %" PRIu64 " descriptors are needed\n",
                (unsigned long long)rl.rlim_cur, need);
}

static bool resolve(ctx *x)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(x->o.host, x->o.port, &hints, &res);
    if (rc || !res) {
        fprintf(stderr, "fanout_check: %s:%s: %s\n", x->o.host, x->o.port, gai_strerror(rc));
        return false;
    }
    memcpy(&x->addr, res->ai_addr, res->ai_addrlen);
    x->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static void progress(ctx *x, double t)
{
    uint64_t expected = 0, got = 0;
    for (uint64_t c = 0; c < x->o.channels; c++) expected += x->chans[c].count * x->chans[c].nsubs;
    for (uint64_t i = 0; i < x->o.subscribers; i++) got += x->subs[i].got;
    double el = x->t_pub0 ? t - x->t_pub0 : 0;
    uint64_t slow = slowest_progress(x, NULL);
    char slowest[32] = "-";
    if (slow != UINT64_MAX) snprintf(slowest, sizeof(slowest), "%" PRIu64, slow);
    fprintf(stderr,
            "fanout_check: %6.1fs  subscribed %" PRIu64 "/%" PRIu64 "  published %" PRIu64 "/%" PRIu64
            "  received %.2fM/%.2fM (%.2fM/s)  complete %" PRIu64 "  slowest at message %s\n",
            t - x->t_start, x->ready, x->o.subscribers, x->pub.acked, x->o.messages, (double)got / 1e6,
            (double)expected / 1e6, el > 0 ? (double)got / el / 1e6 : 0.0, x->ncomplete, slowest);
}

/* Explain what is missing (timeout or early stop). */
static void report_missing(ctx *x)
{
    uint64_t incomplete = 0, shown = 0;
    for (uint64_t i = 0; i < x->o.subscribers; i++) {
        const sub *s = &x->subs[i];
        const chan *c = &x->chans[s->chan];
        if (s->complete) continue;
        incomplete++;
        if (shown++ < 5)
            fprintf(stderr,
                    "fanout_check:   subscriber %u (%s): state %s, %" PRIu64 "/%" PRIu64
                    " publications, next expected offset %" PRIu64 "%s\n",
                    s->idx, c->name, state_name[s->state], s->got, c->count, s->next,
                    s->closed_by_server ? " (closed by the server)" : "");
    }
    if (incomplete)
        fprintf(stderr, "fanout_check: %" PRIu64 " of %" PRIu64 " subscribers did not receive everything%s\n",
                incomplete, x->o.subscribers, shown > 5 ? " (first 5 shown)" : "");
}

static int summarize(ctx *x)
{
    uint64_t expected = 0, got = 0, lost = 0, dups = 0, late = 0, corrupt = 0;
    for (uint64_t c = 0; c < x->o.channels; c++) expected += x->chans[c].count * x->chans[c].nsubs;
    for (uint64_t i = 0; i < x->o.subscribers; i++) {
        const sub *s = &x->subs[i];
        got += s->got;
        lost += x->chans[s->chan].count - s->got;
        dups += s->dups;
        late += s->late;
        corrupt += s->corrupt;
    }
    double end = x->t_done ? x->t_done : now_s();
    double elapsed = x->t_pub0 ? end - x->t_pub0 : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    bool ok = !x->timed_out && !x->aborted && x->nerrors == 0 && got == expected && lost == 0 && dups == 0 &&
              late == 0 && corrupt == 0 && x->nclosed_server == 0 && x->ncomplete == x->o.subscribers;
    if (x->timed_out) {
        char msg[160];
        snprintf(msg, sizeof(msg), "timed out after %.1f s", x->o.timeout_s);
        note(x, "%s", msg);
    }
    if (!ok && x->nerrors == 0) note(x, "incomplete: %" PRIu64 " of %" PRIu64 " deliveries", got, expected);
    json_t *errs = json_array();
    for (uint64_t i = 0; i < x->nerrors && i < MAX_ERRORS_KEPT; i++) json_array_append_new(errs, json_string(x->errors[i]));
    json_t *j = json_object();
    json_object_set_new(j, "ok", json_boolean(ok));
    json_object_set_new(j, "subscribers", json_integer((json_int_t)x->o.subscribers));
    json_object_set_new(j, "subscribed", json_integer((json_int_t)x->ready));
    json_object_set_new(j, "channels", json_integer((json_int_t)x->o.channels));
    json_object_set_new(j, "messages", json_integer((json_int_t)x->o.messages));
    json_object_set_new(j, "published", json_integer((json_int_t)x->pub.acked));
    json_object_set_new(j, "publish_requests", json_integer((json_int_t)x->pub.requests));
    json_object_set_new(j, "batch", json_integer((json_int_t)x->o.batch));
    json_object_set_new(j, "window", json_integer((json_int_t)x->o.window));
    json_object_set_new(j, "pipeline", json_integer((json_int_t)x->o.pipeline));
    json_object_set_new(j, "payload_bytes", json_integer((json_int_t)x->o.payload_bytes));
    json_object_set_new(j, "expected_deliveries", json_integer((json_int_t)expected));
    json_object_set_new(j, "deliveries", json_integer((json_int_t)got));
    json_object_set_new(j, "received_lines", json_integer((json_int_t)x->deliveries));
    json_object_set_new(j, "complete_subscribers", json_integer((json_int_t)x->ncomplete));
    json_object_set_new(j, "lost", json_integer((json_int_t)lost));
    json_object_set_new(j, "duplicates", json_integer((json_int_t)dups));
    json_object_set_new(j, "reordered", json_integer((json_int_t)late));
    json_object_set_new(j, "corrupt", json_integer((json_int_t)corrupt));
    json_object_set_new(j, "closed_by_server", json_integer((json_int_t)x->nclosed_server));
    json_object_set_new(j, "slow_consumer_closes", json_integer((json_int_t)x->slow_consumer));
    json_object_set_new(j, "timed_out", json_boolean(x->timed_out));
    json_object_set_new(j, "stopped_waiting", json_boolean(x->settled_early));
    json_object_set_new(j, "connect_seconds", json_real(x->t_ready ? x->t_ready - x->t_start : 0));
    json_object_set_new(j, "elapsed_seconds", json_real(elapsed));
    json_object_set_new(j, "deliveries_per_second", json_real(elapsed > 0 ? (double)got / elapsed : 0));
    json_object_set_new(j, "bytes_received", json_integer((json_int_t)x->bytes_in));
    json_object_set_new(j, "client_cpu_seconds", json_real(cpu));
    json_object_set_new(j, "errors", json_integer((json_int_t)x->nerrors));
    json_object_set_new(j, "first_errors", errs);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", txt);
    fflush(stdout);
    free(txt);
    json_decref(j);
    fprintf(stderr,
            "fanout_check: %s: %" PRIu64 " subscribers x %" PRIu64 " messages on %" PRIu64 " channel(s): %" PRIu64
            "/%" PRIu64 " deliveries in %.2f s (%.0f/s), lost %" PRIu64 ", duplicated %" PRIu64 ", reordered %" PRIu64
            ", corrupt %" PRIu64 ", closed by server %" PRIu64 "; client CPU %.1f s\n",
            ok ? "OK" : "FAILED", x->o.subscribers, x->o.messages, x->o.channels, got, expected, elapsed,
            elapsed > 0 ? (double)got / elapsed : 0, lost, dups, late, corrupt, x->nclosed_server, cpu);
    return ok ? 0 : 1;
}

/* ---- main loop --------------------------------------------------------------------------------- */

static bool finished(ctx *x)
{
    if (x->pub.next_msg < x->o.messages || x->pub.ninflight) return false;
    return x->ncomplete + x->ndead >= x->o.subscribers;
}

static void run(ctx *x)
{
    struct epoll_event evs[EVENTS];
    uint64_t next_start = 0;
    double linger_until = 0;
    for (;;) {
        double t = x->now = now_s();
        if (t >= x->deadline) {
            x->timed_out = true;
            break;
        }
        if (x->aborted) break;
        /* open connections, a bounded number of handshakes at a time */
        while (next_start < x->o.subscribers && next_start - x->ready - x->failed_setup < x->o.connect_concurrency) {
            sub_start(x, &x->subs[next_start++]);
            x->started++;
        }
        if (x->failed_setup) {
            note(x, "%" PRIu64 " subscribers failed to connect or subscribe; not publishing", x->failed_setup);
            x->aborted = true;
            break;
        }
        if (x->ready == x->o.subscribers) {
            if (!x->t_ready) {
                x->t_ready = t;
                fprintf(stderr, "fanout_check: %" PRIu64 " subscribers subscribed in %.2f s; publishing %" PRIu64
                                " messages\n",
                        x->o.subscribers, t - x->t_start, x->o.messages);
            }
            if (x->o.stall && !x->stall_until) {
                x->stall_until = t + x->o.stall_s;
                for (uint64_t i = 0; i < x->o.stall; i++) sub_set_stalled(x, &x->subs[i], true);
                fprintf(stderr, "fanout_check: subscribers 0..%" PRIu64 " stop reading for %.1f s\n", x->o.stall - 1,
                        x->o.stall_s);
            } else if (x->o.stall && !x->stall_over && t >= x->stall_until &&
                       x->pub.next_msg >= x->o.messages && !x->pub.ninflight) {
                x->stall_over = true;
                x->slow_valid = false;
                x->last_rx = t; /* --settle counts from here */
                for (uint64_t i = 0; i < x->o.stall; i++) sub_set_stalled(x, &x->subs[i], false);
                fprintf(stderr, "fanout_check: stalled subscribers read again\n");
            }
            pub_maybe_send(x);
            if (x->aborted) break;
            if (finished(x)) {
                if (!x->t_done) x->t_done = t;
                if (!linger_until) linger_until = t + x->o.linger_s;
                if (t >= linger_until) break;
            } else if (x->pub.next_msg >= x->o.messages && !x->pub.ninflight && (!x->o.stall || x->stall_over) &&
                       t - HR_MAX(x->last_rx, x->t_ready) >= x->o.settle_s) {
                /* everything published and acknowledged, and nothing arrives any more */
                x->settled_early = true;
                x->t_done = t;
                note(x, "nothing arrived for %.1f s after the last publication was acknowledged; stopping",
                     x->o.settle_s);
                break;
            }
        }
        if (x->o.progress_s > 0 && t >= x->next_progress) {
            if (x->next_progress) progress(x, t);
            x->next_progress = t + x->o.progress_s;
        }
        double wake = x->deadline;
        if (linger_until && linger_until < wake) wake = linger_until;
        if (x->o.progress_s > 0 && x->next_progress < wake) wake = x->next_progress;
        if (!x->stall_over && x->stall_until > t && x->stall_until < wake) wake = x->stall_until;
        int ms = (int)((wake - t) * 1000) + 1;
        if (ms > 250) ms = 250;
        int n = epoll_wait(x->ep, evs, EVENTS, ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            note(x, "epoll_wait: %s", strerror(errno));
            x->aborted = true;
            break;
        }
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == EP_SUB) sub_event(x, evs[i].data.ptr, evs[i].events);
            else pub_event(x, evs[i].events);
        }
    }
}

int main(int argc, char **argv)
{
    ctx x;
    memset(&x, 0, sizeof(x));
    int rc = parse_opts(argc, argv, &x.o);
    if (rc) return rc;
    opts *o = &x.o;
    if (!o->window_set) o->window = 2 * o->batch;
    /* shrink the batch until the largest request body fits http.max_body_size */
    size_t per = 64 + strlen(o->channel) + 8 + data_json_len(&x, o->messages);
    if (o->batch * per + 32 > o->max_body) {
        uint64_t b = (o->max_body - 32) / per;
        if (b == 0) {
            fprintf(stderr, "fanout_check: one publish does not fit in --max-body %" PRIu64 "\n", o->max_body);
            return 2;
        }
        fprintf(stderr, "fanout_check: batch %" PRIu64 " -> %" PRIu64 " so that requests fit %" PRIu64 " bytes\n",
                o->batch, b, o->max_body);
        o->batch = b;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(o->subscribers + 64);
    if (!resolve(&x)) return 1;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) seed = (uint64_t)time(NULL);
    x.rng = seed | 1;
    x.ep = epoll_create1(EPOLL_CLOEXEC);
    if (x.ep < 0) {
        perror("fanout_check: epoll_create1");
        return 1;
    }
    x.rbuf = hr_malloc(READ_BUF_SIZE);
    x.chans = hr_calloc((size_t)o->channels, sizeof(chan));
    for (uint64_t c = 0; c < o->channels; c++) {
        chan *ch = &x.chans[c];
        if (o->channels == 1) snprintf(ch->name, sizeof(ch->name), "%s", o->channel);
        else snprintf(ch->name, sizeof(ch->name), "%s-%" PRIu64, o->channel, c);
        ch->len = strlen(ch->name);
        ch->count = o->messages / o->channels + (c < o->messages % o->channels ? 1 : 0);
        hr_buf b = HR_BUF_INIT;
        hr_buf_printf(&b, "{\"pub\":{\"channel\":\"%s\",\"offset\":", ch->name);
        ch->pfx_len = b.len;
        ch->pfx = (char *)hr_buf_steal(&b, &ch->pfx_len);
    }
    x.subs = hr_calloc((size_t)o->subscribers, sizeof(sub));
    for (uint64_t i = 0; i < o->subscribers; i++) {
        sub *s = &x.subs[i];
        s->kind = EP_SUB;
        s->fd = -1;
        s->idx = (uint32_t)i;
        s->chan = (uint32_t)(i % o->channels);
        x.chans[s->chan].nsubs++;
    }
    x.pub.kind = EP_PUB;
    x.pub.fd = -1;
    x.t_start = now_s();
    x.deadline = x.t_start + o->timeout_s;
    fprintf(stderr,
            "fanout_check: %s:%s%s: %" PRIu64 " subscribers, %" PRIu64 " messages, %" PRIu64
            " channel(s), batch %" PRIu64 ", pipeline %" PRIu64 ", window %" PRIu64 ", data %zu bytes\n",
            o->host, o->port, o->path, o->subscribers, o->messages, o->channels, o->batch, o->pipeline, o->window,
            data_json_len(&x, 0));

    run(&x);

    if (x.timed_out || x.aborted || x.ncomplete < o->subscribers) {
        progress(&x, now_s());
        report_missing(&x);
    }
    rc = summarize(&x);

    /* close politely (1000) and release everything */
    for (uint64_t i = 0; i < o->subscribers; i++) {
        sub *s = &x.subs[i];
        if (s->state == SS_READY || s->state == SS_SUBSCRIBING) {
            uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
            sub_send_frame(&x, s, 0x8, code, 2);
        }
        sub_close(&x, s);
        hr_free(s->seen);
    }
    if (x.pub.fd >= 0) close(x.pub.fd);
    hr_buf_free(&x.pub.out);
    hr_buf_free(&x.pub.in);
    for (uint64_t c = 0; c < o->channels; c++) hr_free(x.chans[c].pfx);
    for (uint64_t i = 0; i < x.nerrors && i < MAX_ERRORS_KEPT; i++) hr_free(x.errors[i]);
    hr_free(x.chans);
    hr_free(x.subs);
    hr_free(x.rbuf);
    close(x.ep);
    return rc;
}
