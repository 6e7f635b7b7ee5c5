/* proxy.c - client addresses behind proxies: admission by address, the
 * PROXY protocol header stage and X-Forwarded-For from trusted proxies (see
 * proxy.h).
 *
 * Why peek and not read: a TLS listener's connection continues with the
 * ClientHello, which OpenSSL reads from the socket itself (tls.c uses a
 * socket BIO). Reading the header through the normal path would also take
 * the bytes after it. So the header is looked at with MSG_PEEK and then
 * exactly its length is consumed; whatever follows stays in the socket for
 * TLS or HTTP. A header split over several TCP segments is simply peeked
 * again when more arrives (each arrival is a new edge), and the peek is
 * bounded (256 bytes, or a version 2 header's announced length once the
 * kernel holds all of it). */
#include "transport/proxy.h"
#include "codec/forwarded.h"
#include "codec/proxyproto.h"
#include "core/cidr.h"
#include "core/log.h"
#include "ops/limits.h"
#include "transport/worker.h"
#include "transport/http.h"
#include "transport/tls.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>

#define PEEK_FIRST 256 /* a whole v1 line (107), a v2 header with TCP6 addresses and 200 bytes of TLVs */

/* ---- admission ---------------------------------------------------------------- */

static uint32_t refused_flag(hr_admit a)
{
    return a == HR_ADMIT_TOO_MANY ? HR_CONN_REFUSED_TOO_MANY
           : a == HR_ADMIT_TOO_FAST ? HR_CONN_REFUSED_TOO_FAST
                                    : HR_CONN_REFUSED_BANNED;
}

static const char *refused_text(hr_admit a)
{
    return a == HR_ADMIT_TOO_MANY   ? "limits.connections_per_ip"
           : a == HR_ADMIT_TOO_FAST ? "limits.handshakes_per_ip"
                                    : "limits.auth_failures_per_ip";
}

int hr_client_start(hr_conn *c, const struct sockaddr *sa, socklen_t sl, bool tls)
{
    hr_shared *s = c->w->sh;
    hr_limits *lim = s->limits;
    uint32_t peer_key = 0;
    if (sa && hr_limits_track_ips(lim)) {
        uint32_t key = hr_limits_ip_key(lim, sa, sl);
        hr_ipaddr a;
        bool known = hr_ipaddr_from_sockaddr(sa, sl, &a) == 0;
        if (s->trusted.n && known && hr_cidr_set_match(&s->trusted, &a)) {
            /* a trusted proxy: counted per request, for the client each request names */
            c->flags |= HR_CONN_VIA_PROXY;
            peer_key = key;
        } else {
            /* Over a per-address limit: the connection lives only to read its request and answer
             * 503/429 (http.c), for at most a couple of seconds, and is not counted for its address. */
            uint32_t retry = 1;
            hr_admit r = hr_limits_admit(lim, key, known ? &a : NULL, hr_loop_now(&c->w->loop), &retry);
            if (r == HR_ADMIT_OK) {
                c->ip_key = key;
            } else {
                c->flags |= refused_flag(r);
                c->retry_after = retry;
            }
        }
    }
    hr_http_attach(c);
    if (peer_key) hr_http_set_peer_key(c, peer_key);
    c->layer = &hr_conn_plain;
    if (tls) {
        if (hr_tls_conn_new(c, s->tls)) {
            hr_conn_close(c);
            return HR_ERR_CLOSED;
        }
        /* the handshake must finish within the header timeout */
        hr_conn_set_timer(c, (uint64_t)c->w->opts->http_header_timeout_ms);
    }
    return 0;
}

/* ---- the PROXY header stage ------------------------------------------------------ */

static void await_on_timer(hr_conn *c)
{
    hr_logf(HR_LOG_DEBUG, "proxy_header_timeout", "proxy fd=%d: no PROXY header within http.header_timeout, closing", c->io.fd);
    hr_conn_close(c);
}

static ssize_t await_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    /* never called: conn.c reads nothing before the layer's start is done */
    HR_UNUSED(data);
    HR_UNUSED(len);
    hr_conn_close(c);
    return -1;
}

static const hr_conn_vt await_vt = {
    .on_data = await_on_data,
    .on_eof = hr_conn_close,
    .on_timer = await_on_timer,
    .on_shutdown = hr_conn_close,
    .name = "proxy-header",
};

/* The header stage as an I/O layer below TLS: its start reads the header
 * and replaces the layer by TLS or the plain socket (hr_client_start). No
 * stream passes through it: read / write never come before start is done,
 * and are the plain socket's should a transport write on a timeout. Two
 * layers that differ by name only: which one a connection has says whether
 * TLS follows the header (no per-connection state). */
static ssize_t stage_read(hr_conn *c, uint8_t *dst, size_t cap, bool *drained)
{
    return hr_conn_plain.ops->read(c, dst, cap, drained);
}

static ssize_t stage_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    return hr_conn_plain.ops->writev(c, iov, cnt);
}

static void stage_shutdown(hr_conn *c) { hr_conn_plain.ops->shutdown(c); }

static int read_header(hr_conn *c);

static const hr_conn_layer_ops stage_ops = {
    .read = stage_read, .writev = stage_writev, .start = read_header, .shutdown = stage_shutdown,
    .name = "proxy-header",
};
static const hr_conn_layer_ops stage_tls_ops = {
    .read = stage_read, .writev = stage_writev, .start = read_header, .shutdown = stage_shutdown,
    .name = "proxy-header+tls",
};
static hr_conn_layer stage_layer = {.ops = &stage_ops};
static hr_conn_layer stage_tls_layer = {.ops = &stage_tls_ops};

void hr_proxy_await(hr_conn *c, bool tls)
{
    c->layer = tls ? &stage_tls_layer : &stage_layer;
    hr_conn_set_transport(c, &await_vt, NULL);
    hr_conn_set_timer(c, (uint64_t)c->w->opts->http_header_timeout_ms);
}

static int drop(hr_conn *c, const char *why)
{
    hr_logf(HR_LOG_DEBUG, "proxy_header_bad", "proxy fd=%d: %s, closing", c->io.fd, why);
    hr_conn_close(c);
    return HR_ERR_CLOSED;
}

/* The stage's start (conn.c, on a socket event): 0 when the header was
 * consumed and the connection started (read on: the bytes after it may
 * already be there), 1 while it waits for more bytes, HR_ERR_CLOSED when it
 * was missing or malformed and c was closed. */
static int read_header(hr_conn *c)
{
    int fd = c->io.fd;
    uint8_t *buf = c->w->rbuf;
    size_t want = PEEK_FIRST;
    hr_pp_header h;
    int rc;
    for (;;) {
        ssize_t n = recv(fd, buf, want, MSG_PEEK);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 1;
            return drop(c, strerror(errno));
        }
        if (n == 0) return drop(c, "connection closed before the PROXY header");
        rc = hr_pp_parse(buf, (size_t)n, &h);
        if (rc != HR_PP_INCOMPLETE) break;
        size_t total = hr_pp_v2_length(buf, (size_t)n);
        if ((size_t)n < want || total == 0) return 1; /* the rest has not arrived yet */
        /* a version 2 header longer than the first peek (TLVs) */
        if (total > HR_READ_BUF_SIZE) return drop(c, "PROXY v2 header longer than 64 KiB");
        int avail = 0;
        if (ioctl(fd, FIONREAD, &avail) == 0 && (size_t)avail < total) return 1;
        want = total;
    }
    if (rc < 0) return drop(c, hr_pp_error_text(rc));
    /* consume exactly the header: what follows is the TLS or HTTP stream */
    ssize_t got;
    do got = recv(fd, buf, (size_t)rc, 0);
    while (got < 0 && errno == EINTR);
    if (got != rc) return drop(c, "cannot consume the PROXY header");

    struct sockaddr_storage ss;
    socklen_t sl = 0;
    const struct sockaddr *sa = NULL;
    if (!h.local) {
        sl = hr_ipaddr_to_sockaddr(&h.src, h.src_port, &ss);
        sa = (const struct sockaddr *)&ss;
    } else if (hr_limits_track_ips(c->w->sh->limits)) {
        sl = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) sa = (const struct sockaddr *)&ss;
    }
    if (hr_log_get_level() <= HR_LOG_DEBUG) {
        char a[HR_IPADDR_STRLEN];
        if (h.local) hr_logf(HR_LOG_DEBUG, "proxy_header", "proxy fd=%d: PROXY v%d without a client address: the peer's is used", fd, h.version);
        else hr_logf(HR_LOG_DEBUG, "proxy_header", "proxy fd=%d: PROXY v%d: client %s port %u", fd, h.version, hr_ipaddr_format(&h.src, a, sizeof(a)),
                      h.src_port);
    }
    bool tls = c->layer == &stage_tls_layer;
    hr_conn_stop_timer(c);
    return hr_client_start(c, sa, sl, tls) ? HR_ERR_CLOSED : 0;
}

/* ---- trusted proxies: per request -------------------------------------------------- */

static bool name_is(const hr_http_header *h, const char *name, size_t n)
{
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

bool hr_proxy_request(hr_conn *c, const hr_http_request *req, uint32_t peer_key)
{
    hr_shared *s = c->w->sh;
    hr_limits *lim = s->limits;
    if (!hr_limits_track_ips(lim)) return false;
    hr_fwd f;
    hr_fwd_init(&f, &s->trusted);
    bool xff = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header *hd = &req->headers[i];
        if (name_is(hd, "x-forwarded-for", 15)) {
            hr_fwd_feed_xff(&f, hd->value, hd->value_len);
            xff = true;
        }
    }
    if (!xff) {
        for (size_t i = 0; i < req->num_headers; i++) {
            const hr_http_header *hd = &req->headers[i];
            if (name_is(hd, "forwarded", 9)) hr_fwd_feed_forwarded(&f, hd->value, hd->value_len);
        }
    }
    hr_ipaddr a;
    uint32_t key = peer_key; /* no header, or its client is "unknown": the proxy's own request */
    bool named = hr_fwd_result(&f, &a) == HR_FWD_ADDR;
    if (named) {
        struct sockaddr_storage ss;
        socklen_t sl = hr_ipaddr_to_sockaddr(&a, 0, &ss);
        key = hr_limits_ip_key(lim, (const struct sockaddr *)&ss, sl);
    }
    if (key == c->ip_key) return false; /* the client this connection is counted for already */
    uint64_t now = hr_loop_now(&c->w->loop);
    if (c->ip_key) {
        hr_limits_release(lim, c->ip_key, now);
        c->ip_key = 0;
    }
    uint32_t retry = 1;
    hr_admit r = hr_limits_admit(lim, key, named ? &a : NULL, now, &retry);
    if (r == HR_ADMIT_OK) {
        c->ip_key = key;
        return false;
    }
    if (hr_log_get_level() <= HR_LOG_DEBUG) {
        char t[HR_IPADDR_STRLEN];
        hr_logf(HR_LOG_DEBUG, "proxy_client_refused", "proxy fd=%d: request for %s refused (%s)", c->io.fd,
                 named ? hr_ipaddr_format(&a, t, sizeof(t)) : "the proxy itself", refused_text(r));
    }
    c->flags |= refused_flag(r);
    c->retry_after = retry;
    hr_http_respond_refused(c, req);
    return true;
}

/* ---- the client as the backend sees it ------------------------------------------ */

void hr_client_addr(hr_conn *c, const hr_http_request *req, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    hr_ipaddr a;
    out[0] = '\0';
    if (getpeername(hr_conn_socket(c), (struct sockaddr *)&ss, &sl) == 0 &&
        hr_ipaddr_from_sockaddr((const struct sockaddr *)&ss, sl, &a) == 0)
        hr_ipaddr_format(&a, out, cap);
    if (!(c->flags & HR_CONN_VIA_PROXY)) return;
    hr_fwd f;
    hr_fwd_init(&f, &c->w->sh->trusted);
    bool xff = false;
    for (size_t i = 0; i < req->num_headers; i++)
        if (name_is(&req->headers[i], "x-forwarded-for", 15)) {
            hr_fwd_feed_xff(&f, req->headers[i].value, req->headers[i].value_len);
            xff = true;
        }
    for (size_t i = 0; i < req->num_headers && !xff; i++)
        if (name_is(&req->headers[i], "forwarded", 9))
            hr_fwd_feed_forwarded(&f, req->headers[i].value, req->headers[i].value_len);
    if (hr_fwd_result(&f, &a) == HR_FWD_ADDR) hr_ipaddr_format(&a, out, cap);
}

hr_proxy_origin *hr_client_origin(hr_conn *c, const hr_http_request *req)
{
    hr_proxy *p = c->w->proxy;
    bool hook = hr_proxy_enabled(p, HR_HOOK_CONNECT);
    if (!hook && !c->w->proto->ops.webhook) return NULL;
    char addr[64];
    hr_client_addr(c, req, addr, sizeof(addr));
    hr_proxy_header hs[HR_ORIGIN_MAX_HEADERS];
    char *copies[HR_ORIGIN_MAX_HEADERS];
    size_t n = 0;
    const hr_proxy_opts *o = hook ? hr_proxy_options(p) : NULL;
    for (size_t i = 0; o && i < req->num_headers && n < HR_ORIGIN_MAX_HEADERS; i++) {
        const hr_http_header *h = &req->headers[i];
        for (size_t k = 0; k < o->nforward_headers; k++) {
            const char *want = o->forward_headers[k];
            if (strlen(want) != h->name_len || strncasecmp(want, h->name, h->name_len) != 0) continue;
            if (h->value_len > HR_ORIGIN_MAX_VALUE) break;
            copies[n] = hr_strndup(h->value, h->value_len);
            hs[n] = (hr_proxy_header){want, copies[n]};
            n++;
            break;
        }
    }
    hr_proxy_origin *out = hr_proxy_origin_new(addr, hs, n);
    for (size_t i = 0; i < n; i++) hr_free(copies[i]);
    return out;
}
