/* redis_conn.c - one Redis connection on an event loop (see redis_conn.h).
 *
 * States: DOWN (waiting for the backoff timer) -> CONNECTING (non-blocking
 * connect, EPOLLOUT) -> HELLO (HELLO 3 sent, its reply awaited) -> UP.
 * Any socket error, EOF, malformed reply or missed keepalive goes back to
 * DOWN: pending callbacks get HR_ERR_CLOSED, on_down is called, and the
 * next attempt waits backoff_min * 2^attempts (capped at backoff_max),
 * drawn uniformly from its upper half (jitter, so nodes do not reconnect in
 * lockstep). One timer serves the backoff, the connect deadline and the
 * keepalive. */
#include "engine/redis_conn.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

enum { RC_DOWN = 0, RC_CONNECTING, RC_HELLO, RC_UP };

typedef struct pending {
    hr_redis_reply_cb cb;
    void *ud;
    uint64_t sent_us;         /* queued at (latency) */
} pending;

struct hr_redis_conn {
    hr_io io;
    hr_loop *loop;
    hr_redis_conn_cfg cfg;
    hr_redis_conn_hooks hooks;
    int state;
    hr_timer timer;
    unsigned attempts;        /* failed attempts since the last success */
    bool ping_out;            /* a keepalive PING awaits its reply */
    bool want_out;            /* EPOLLOUT armed */
    hr_buf in, out;
    pending *q;               /* ring of awaited replies */
    size_t qhead, qn, qcap;
    bool logged_down;         /* the current outage was logged */
    bool was_up;              /* a handshake completed before: the next one is a reconnect */
    hr_redis_conn_stats stats;
};

static void stat_add(atomic_uint_fast64_t *s, uint64_t n)
{
    atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n, memory_order_relaxed);
}

#define HR_REDIS_CMD_LOWER(n) #n,
static const char *const cmd_upper[] = {HR_REDIS_CMD_NAMES(HR_REDIS_CMD_LOWER)};
#undef HR_REDIS_CMD_LOWER
const char *const hr_redis_cmd_names[HR_REDIS_CMD__N] = {"evalsha", "eval", "publish", "set", "del", "hdel",
                                                         "zrem", "ping", "other"};
_Static_assert(sizeof(cmd_upper) / sizeof(cmd_upper[0]) == HR_REDIS_CMD_OTHER, "one name per counted command");

/* The command's name: the first bulk string of "*N\r\n$L\r\nNAME\r\n...". */
static int cmd_kind(const uint8_t *cmd, size_t len)
{
    const uint8_t *p = memchr(cmd, '\n', len), *end = cmd + len;
    if (!p || ++p >= end || *p != '$') return HR_REDIS_CMD_OTHER;
    const uint8_t *q = memchr(p, '\n', (size_t)(end - p));
    if (!q) return HR_REDIS_CMD_OTHER;
    q++;
    for (int i = 0; i < HR_REDIS_CMD_OTHER; i++) {
        size_t n = strlen(cmd_upper[i]);
        if ((size_t)(end - q) > n + 1 && strncasecmp((const char *)q, cmd_upper[i], n) == 0 && q[n] == '\r')
            return i;
    }
    return HR_REDIS_CMD_OTHER;
}

const hr_redis_conn_stats *hr_redis_conn_get_stats(const hr_redis_conn *c) { return &c->stats; }

void hr_redis_conn_count_messages(hr_redis_conn *c, size_t n)
{
    stat_add(&c->stats.messages, n);
    stat_add(&c->stats.message_batches, 1);
}
const char *hr_redis_conn_addr(const hr_redis_conn *c) { return c->cfg.addr; }

int hr_redis_resolve(const char *spec, size_t len, hr_redis_conn_cfg *cfg, char *err, size_t errlen)
{
    char host[256], port[16];
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (spec[i - 1] == ':') {
            colon = spec + i - 1;
            break;
        }
    size_t hl = colon ? (size_t)(colon - spec) : 0, pl = colon ? len - hl - 1 : 0;
    if (!colon || hl == 0 || pl == 0 || pl >= sizeof(port) || hl >= sizeof(host)) {
        snprintf(err, errlen, "redis address \"%.*s\" is not HOST:PORT", (int)len, spec);
        return HR_ERR_INVALID;
    }
    const char *h = spec;
    if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc || !res) {
        snprintf(err, errlen, "redis address \"%.*s\": %s", (int)len, spec, gai_strerror(rc));
        return HR_ERR_INVALID;
    }
    memcpy(&cfg->ss, res->ai_addr, res->ai_addrlen);
    cfg->sl = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(cfg->addr, sizeof(cfg->addr), "%.*s", (int)len, spec);
    return 0;
}

static void conn_io(hr_loop *loop, hr_io *io, uint32_t events);
static void conn_timer(hr_timer *t, void *wheel_data);

static void q_push(hr_redis_conn *c, hr_redis_reply_cb cb, void *ud)
{
    if (c->qn == c->qcap) {
        size_t nc = c->qcap ? c->qcap * 2 : 64;
        pending *nq = hr_malloc(nc * sizeof(*nq));
        for (size_t i = 0; i < c->qn; i++) nq[i] = c->q[(c->qhead + i) % c->qcap];
        hr_free(c->q);
        c->q = nq;
        c->qcap = nc;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qn) % c->qcap] = (pending){cb, ud, hr_now_us()};
    c->qn++;
}

static pending q_pop(hr_redis_conn *c)
{
    pending p = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qn--;
    return p;
}

static uint64_t backoff_ms(hr_redis_conn *c)
{
    uint64_t d = c->cfg.backoff_min_ms ? c->cfg.backoff_min_ms : 1;
    for (unsigned i = 0; i < c->attempts && d < c->cfg.backoff_max_ms; i++) d *= 2;
    if (d > c->cfg.backoff_max_ms) d = c->cfg.backoff_max_ms;
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) r = (uint32_t)hr_now_ms();
    uint64_t half = d / 2;
    return half + (half ? r % (half + 1) : 0);
}

/* Drop the socket, fail what awaits a reply, schedule the next attempt. */
static void conn_down(hr_redis_conn *c, const char *why)
{
    bool was_up = c->state == RC_UP;
    if (c->io.fd >= 0) {
        hr_loop_del(c->loop, &c->io);
        close(c->io.fd);
        c->io.fd = -1;
    }
    c->state = RC_DOWN;
    c->want_out = false;
    c->ping_out = false;
    hr_buf_free(&c->in);
    hr_buf_free(&c->out);
    if (!c->logged_down || was_up) {
        hr_logev(HR_LOG_WARN, "redis_disconnected", HR_LOG_S("addr", c->cfg.addr), HR_LOG_S("msg", why));
        c->logged_down = true;
    }
    atomic_store_explicit(&c->stats.up, 0, memory_order_relaxed);
    stat_add(&c->stats.errors, c->qn);
    while (c->qn) {
        pending p = q_pop(c);
        if (p.cb) p.cb(p.ud, HR_ERR_CLOSED, NULL);
    }
    if (c->hooks.on_down) c->hooks.on_down(c->hooks.ud, why);
    uint64_t wait = backoff_ms(c);
    if (c->attempts < 32) c->attempts++;
    hr_timer_start(&c->loop->wheel, &c->timer, wait);
}

static void on_hello(void *ud, int err, const hr_resp *r)
{
    hr_redis_conn *c = ud;
    if (err) return; /* conn_down already ran */
    if (r->type == HR_RESP_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "HELLO 3 refused: %.*s", (int)HR_MIN(r->len, 120), r->str);
        conn_down(c, why);
        return;
    }
    c->state = RC_UP;
    c->attempts = 0;
    if (c->was_up) stat_add(&c->stats.reconnects, 1);
    c->was_up = true;
    atomic_store_explicit(&c->stats.up, 1, memory_order_relaxed);
    if (c->logged_down) hr_logev(HR_LOG_INFO, "redis_connected", HR_LOG_S("addr", c->cfg.addr));
    c->logged_down = false;
    hr_timer_start(&c->loop->wheel, &c->timer, c->cfg.ping_interval_ms);
    if (c->hooks.on_up) c->hooks.on_up(c->hooks.ud);
    hr_redis_conn_flush(c);
}

static void conn_start(hr_redis_conn *c)
{
    int fd = socket(c->cfg.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_down(c, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->io.fd = fd;
    int rc = connect(fd, (struct sockaddr *)&c->cfg.ss, c->cfg.sl);
    if (rc < 0 && errno != EINPROGRESS) {
        char why[128];
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        close(fd);
        c->io.fd = -1;
        conn_down(c, why);
        return;
    }
    c->state = RC_CONNECTING;
    c->want_out = true;
    hr_loop_add(c->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP);
    hr_timer_start(&c->loop->wheel, &c->timer, c->cfg.connect_timeout_ms);
}

hr_redis_conn *hr_redis_conn_new(hr_loop *loop, const hr_redis_conn_cfg *cfg, const hr_redis_conn_hooks *hooks)
{
    hr_redis_conn *c = hr_calloc(1, sizeof(*c));
    c->loop = loop;
    c->cfg = *cfg;
    if (hooks) c->hooks = *hooks;
    c->io.fd = -1;
    c->io.cb = conn_io;
    hr_timer_init(&c->timer, conn_timer);
    conn_start(c);
    return c;
}

void hr_redis_conn_free(hr_redis_conn *c)
{
    if (!c) return;
    c->hooks.on_down = NULL;
    c->hooks.on_up = NULL;
    if (c->io.fd >= 0) {
        hr_loop_del(c->loop, &c->io);
        close(c->io.fd);
        c->io.fd = -1;
    }
    while (c->qn) {
        pending p = q_pop(c);
        if (p.cb) p.cb(p.ud, HR_ERR_CLOSED, NULL);
    }
    hr_timer_stop(&c->loop->wheel, &c->timer);
    hr_buf_free(&c->in);
    hr_buf_free(&c->out);
    hr_free(c->q);
    hr_free(c);
}

bool hr_redis_conn_up(const hr_redis_conn *c) { return c->state == RC_UP; }
size_t hr_redis_conn_pending(const hr_redis_conn *c) { return c->qn; }

int hr_redis_conn_send(hr_redis_conn *c, const uint8_t *cmd, size_t len, hr_redis_reply_cb cb, void *ud)
{
    if (c->state != RC_UP) return HR_ERR_CLOSED;
    if (c->qn >= c->cfg.max_pending) return HR_ERR_TOO_BIG;
    hr_buf_append(&c->out, cmd, len);
    q_push(c, cb, ud);
    stat_add(&c->stats.commands[cmd_kind(cmd, len)], 1);
    return 0;
}

int hr_redis_conn_send_noreply(hr_redis_conn *c, const uint8_t *cmd, size_t len)
{
    if (c->state != RC_UP) return HR_ERR_CLOSED;
    hr_buf_append(&c->out, cmd, len);
    return 0;
}

void hr_redis_conn_flush(hr_redis_conn *c)
{
    if (c->io.fd < 0 || c->state == RC_CONNECTING) return;
    size_t done = 0;
    while (done < c->out.len) {
        ssize_t n = write(c->io.fd, c->out.data + done, c->out.len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        hr_buf_consume(&c->out, done);
        char why[128];
        snprintf(why, sizeof(why), "write: %s", n < 0 ? strerror(errno) : "closed");
        conn_down(c, why);
        return;
    }
    hr_buf_consume(&c->out, done);
    if (!c->out.len) hr_buf_free(&c->out);
    bool want = c->out.len > 0;
    if (want != c->want_out) {
        c->want_out = want;
        hr_loop_mod(c->loop, &c->io, EPOLLIN | EPOLLET | EPOLLRDHUP | (want ? EPOLLOUT : 0));
    }
}

static void on_pong(void *ud, int err, const hr_resp *r)
{
    HR_UNUSED(r);
    hr_redis_conn *c = ud;
    if (!err) c->ping_out = false;
}

static void conn_timer(hr_timer *t, void *wheel_data)
{
    HR_UNUSED(wheel_data);
    hr_redis_conn *c = HR_CONTAINER_OF(t, hr_redis_conn, timer);
    switch (c->state) {
    case RC_DOWN:
        conn_start(c);
        return;
    case RC_CONNECTING:
    case RC_HELLO:
        conn_down(c, "connect timed out");
        return;
    default:
        break;
    }
    if (c->ping_out) {
        conn_down(c, "keepalive PING not answered");
        return;
    }
    hr_buf b = HR_BUF_INIT;
    hr_resp_cmdv(&b, "PING", NULL);
    if (hr_redis_conn_send(c, b.data, b.len, on_pong, c) == 0) c->ping_out = true;
    hr_buf_free(&b);
    hr_redis_conn_flush(c);
    if (c->state == RC_UP) hr_timer_start(&c->loop->wheel, &c->timer, c->cfg.ping_interval_ms);
}

/* Hand every complete reply to its callback (or the push hook). Returns
 * false when the connection went down meanwhile. */
static bool conn_dispatch(hr_redis_conn *c)
{
    hr_resp_limits lim = HR_RESP_LIMITS_DEFAULT;
    lim.max_bulk = c->cfg.max_reply;
    size_t pos = 0;
    while (pos < c->in.len) {
        hr_resp *r = NULL;
        size_t used = 0;
        hr_resp_message m;
        if (c->hooks.on_message && hr_resp_parse_message(c->in.data + pos, c->in.len - pos, &lim, &m, &used)) {
            int state = c->state;
            c->hooks.on_message(c->hooks.ud, &m);
            pos += used;
            if (c->state == RC_DOWN || (state != c->state && c->state != RC_UP)) return false;
            continue;
        }
        int rc = hr_resp_parse(c->in.data + pos, c->in.len - pos, &lim, &r, &used);
        if (rc == HR_ERR_AGAIN) {
            if (c->in.len - pos > c->cfg.max_reply + 4096) {
                conn_down(c, "reply larger than the limit");
                return false;
            }
            break;
        }
        if (rc) {
            conn_down(c, rc == HR_ERR_TOO_BIG ? "reply larger than the limit" : "malformed reply");
            return false;
        }
        int state = c->state;
        if (r->type == HR_RESP_PUSH) {
            if (c->hooks.on_push) c->hooks.on_push(c->hooks.ud, r);
        } else if (c->qn) {
            pending p = q_pop(c);
            uint64_t now = hr_now_us();
            hr_hist_observe(&c->stats.latency, now > p.sent_us ? now - p.sent_us : 0);
            if (r->type == HR_RESP_ERROR) stat_add(&c->stats.errors, 1);
            if (p.cb) p.cb(p.ud, 0, r);
        } else {
            hr_resp_free(r);
            conn_down(c, "reply to no command");
            return false;
        }
        hr_resp_free(r);
        pos += used;
        if (c->state == RC_DOWN || (state != c->state && c->state != RC_UP)) return false;
    }
    hr_buf_consume(&c->in, pos);
    if (!c->in.len) hr_buf_free(&c->in);
    return true;
}

static void conn_io(hr_loop *loop, hr_io *io, uint32_t events)
{
    HR_UNUSED(loop);
    hr_redis_conn *c = HR_CONTAINER_OF(io, hr_redis_conn, io);
    if (c->state == RC_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
        if (soerr) {
            char why[128];
            snprintf(why, sizeof(why), "connect: %s", strerror(soerr));
            conn_down(c, why);
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLIN))) return;
        c->state = RC_HELLO;
        hr_buf b = HR_BUF_INIT;
        if (c->cfg.password[0])
            hr_resp_cmdv(&b, "HELLO", "3", "AUTH", c->cfg.user[0] ? c->cfg.user : "default", c->cfg.password, NULL);
        else
            hr_resp_cmdv(&b, "HELLO", "3", NULL);
        hr_buf_append(&c->out, b.data, b.len);
        hr_buf_free(&b);
        q_push(c, on_hello, c);
        hr_redis_conn_flush(c);
        if (c->state == RC_DOWN) return;
    }
    if (events & EPOLLOUT) {
        hr_redis_conn_flush(c);
        if (c->state == RC_DOWN) return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        for (;;) {
            uint8_t *p = hr_buf_reserve(&c->in, 16384);
            ssize_t n = read(c->io.fd, p, 16384);
            if (n > 0) {
                c->in.len += (size_t)n;
                if (!conn_dispatch(c)) return;
                if (c->io.fd < 0) return;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            conn_down(c, n == 0 ? "connection closed by Redis" : strerror(errno));
            return;
        }
        if (!c->in.len) hr_buf_free(&c->in);
    }
    hr_redis_conn_flush(c);
}
