/* tls.c - TLS on OpenSSL for Herald's listeners: the SSL_CTX (creation from
 * the tls.* options, reload on SIGHUP, thread-safe swap), and one TLS
 * connection as an I/O layer (hr_conn_layer, see conn.h): the handshake as
 * the layer's start, read, writev (small buffers coalesced into one record),
 * shutdown and close; no sendfile, so conn.c writes files in chunks.
 *
 * Why SSL_set_fd and not memory BIOs: with a socket BIO, OpenSSL reads
 * ciphertext straight from the socket into its own record buffer and
 * decrypts into the worker's shared read buffer, and encrypts into its own
 * write buffer and writes that to the socket. Memory BIOs would add two more
 * buffers per connection (ciphertext in and out), one more copy each way,
 * and gain nothing here: the loop is epoll-based, the socket is non-blocking,
 * and OpenSSL reports EAGAIN as SSL_ERROR_WANT_READ / WANT_WRITE. With
 * SSL_MODE_RELEASE_BUFFERS the record buffers are freed whenever they are
 * empty, so an idle TLS connection holds only the SSL object itself.
 *
 * Edge-triggered epoll: a read ends only on WANT_READ (OpenSSL may hold a
 * decrypted record we have not taken yet), and a read that needs to write
 * (or a write that needs to read) is retried on the other direction's event
 * (the layer's events op). */
#include "transport/tls.h"
#include "core/log.h"
#include "transport/opts.h"
#include "transport/worker.h"
#include "transport/conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct hr_tls_server {
    pthread_mutex_t mu;          /* guards ctx (swapped by reload, read at accept) */
    SSL_CTX *ctx;
    const hr_transport_opts *opt;
};

enum {
    T_PEEKED = 1u << 0,          /* first bytes checked: they look like TLS */
    T_UP = 1u << 1,              /* handshake finished */
    T_READ_WANTS_WRITE = 1u << 2,
    T_WRITE_WANTS_READ = 1u << 3,
    T_DRAINED = 1u << 4,         /* last read ended on WANT_READ / WANT_WRITE */
    T_FAILED = 1u << 5,          /* fatal error: no close_notify */
    T_SHUT = 1u << 6,            /* close_notify sent */
};

struct hr_tls_conn {
    hr_conn_layer base;          /* first: c->layer points here */
    SSL *ssl;
    uint32_t committed;          /* bytes of a blocked SSL_write to offer again */
    uint32_t flags;
};

/* ---- context ------------------------------------------------------------------- */

int hr_tls_parse_min_version(const char *s)
{
    if (!s) return HR_ERR_INVALID;
    if (strcmp(s, "1.2") == 0) return TLS1_2_VERSION;
    if (strcmp(s, "1.3") == 0) return TLS1_3_VERSION;
    return HR_ERR_INVALID;
}

/* The last OpenSSL error as text (and the queue cleared). */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    HR_UNUSED(ssl);
    const hr_transport_opts *opt = arg;
    /* h2 first when http2.enabled (the connection then starts with the
     * client preface, which http.c recognises), then http/1.1. A client
     * offering only other protocols gets no ALPN answer and decides itself. */
    static const unsigned char both[] = "\x02h2\x08http/1.1";
    const unsigned char *ours = opt->http2_enabled ? both : both + 3;
    unsigned int ours_len = opt->http2_enabled ? sizeof(both) - 1 : sizeof(both) - 4;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static bool readable(const char *key, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open \"%s\": %s", key, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

SSL_CTX *hr_tls_ctx_new(const hr_transport_opts *opt, char *err, size_t errlen)
{
    char why[256];
    if (!opt->tls_cert[0] || !opt->tls_key[0]) {
        snprintf(err, errlen, "tls.cert and tls.key must both be set to enable TLS");
        return NULL;
    }
    int minv = hr_tls_parse_min_version(opt->tls_min_version);
    if (minv < 0) {
        snprintf(err, errlen, "tls.min_version: expected \"1.2\" or \"1.3\", got \"%s\"", opt->tls_min_version);
        return NULL;
    }
    if (!readable("tls.cert", opt->tls_cert, err, errlen) || !readable("tls.key", opt->tls_key, err, errlen))
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS: cannot create a context: %s", ossl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Resumption through stateless tickets only: no per-session server memory. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, (void *)opt);
    if (opt->tls_ciphers[0] && SSL_CTX_set_cipher_list(ctx, opt->tls_ciphers) != 1) {
        snprintf(err, errlen, "tls.ciphers: \"%s\" selects no usable cipher (%s)", opt->tls_ciphers,
                 ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (opt->tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, opt->tls_ciphersuites) != 1) {
        snprintf(err, errlen, "tls.ciphersuites: \"%s\" is not a list of TLS 1.3 suites (%s)",
                 opt->tls_ciphersuites, ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, opt->tls_cert) != 1) {
        snprintf(err, errlen, "tls.cert: \"%s\" is not a usable PEM certificate (%s)", opt->tls_cert,
                 ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, opt->tls_key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        bool mismatch = ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                                          ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
        if (mismatch) {
            ERR_clear_error();
            snprintf(err, errlen, "tls.key: the private key in \"%s\" does not match the certificate in \"%s\"",
                     opt->tls_key, opt->tls_cert);
        } else {
            snprintf(err, errlen, "tls.key: \"%s\" is not a usable PEM private key (%s)", opt->tls_key,
                     ossl_reason(why, sizeof(why)));
        }
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "tls.key: the private key in \"%s\" does not match the certificate in \"%s\"",
                 opt->tls_key, opt->tls_cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int hr_tls_server_new(hr_tls_server **out, const hr_transport_opts *opt, char *err, size_t errlen)
{
    SSL_CTX *ctx = hr_tls_ctx_new(opt, err, errlen);
    if (!ctx) return HR_ERR_INVALID;
    hr_tls_server *t = hr_calloc(1, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->ctx = ctx;
    t->opt = opt;
    *out = t;
    return 0;
}

void hr_tls_server_free(hr_tls_server *t)
{
    if (!t) return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->mu);
    hr_free(t);
}

int hr_tls_server_reload(hr_tls_server *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = hr_tls_ctx_new(t->opt, err, errlen);
    if (!ctx) return HR_ERR_INVALID;
    pthread_mutex_lock(&t->mu);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->mu);
    SSL_CTX_free(old); /* connections made with it hold their own references */
    return 0;
}

void hr_tls_server_fingerprint(hr_tls_server *t, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    pthread_mutex_lock(&t->mu);
    X509 *x = SSL_CTX_get0_certificate(t->ctx);
    if (!x || X509_digest(x, EVP_sha256(), md, &n) != 1) n = 0;
    pthread_mutex_unlock(&t->mu);
    size_t o = 0;
    if (outlen) out[0] = '\0';
    for (unsigned int i = 0; i < n && o + 3 < outlen; i++) o += (size_t)snprintf(out + o, outlen - o, "%s%02X", i ? ":" : "", md[i]);
}

void hr_tls_reload(hr_shared *s)
{
    if (!s->tls) return;
    char err[512], fp[128];
    if (hr_tls_server_reload(s->tls, err, sizeof(err))) {
        hr_logf(HR_LOG_ERROR, "tls_reload_failed", "SIGHUP: TLS certificate NOT reloaded, new connections keep the previous one: %s", err);
        return;
    }
    hr_tls_server_fingerprint(s->tls, fp, sizeof(fp));
    hr_logf(HR_LOG_INFO, "tls_reloaded", "SIGHUP: TLS certificate reloaded from %s (sha256 %s); open connections keep theirs", s->tls->opt->tls_cert,
            fp);
}

/* ---- connections ---------------------------------------------------------------- */

static const hr_conn_layer_ops tls_ops, tls_handshake_ops;

static hr_tls_conn *tls_of(const hr_conn *c) { return (hr_tls_conn *)c->layer; }

int hr_tls_conn_new(hr_conn *c, hr_tls_server *t)
{
    pthread_mutex_lock(&t->mu);
    SSL_CTX *ctx = t->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&t->mu);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!ssl || SSL_set_fd(ssl, c->io.fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return HR_ERR_NOMEM;
    }
    SSL_set_accept_state(ssl);
    hr_tls_conn *tc = hr_calloc(1, sizeof(*tc));
    tc->base.ops = &tls_handshake_ops;
    tc->ssl = ssl;
    c->layer = &tc->base;
    return 0;
}

/* close: close_notify if the session is up (best effort, never blocks),
 * then free; the connection is left on the plain layer (its socket closes
 * next). */
static void tls_close(hr_conn *c)
{
    hr_tls_conn *t = tls_of(c);
    if ((t->flags & (T_UP | T_FAILED | T_SHUT)) == T_UP && c->io.fd >= 0) {
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl); /* close_notify; never waits for the peer's */
    }
    ERR_clear_error();
    SSL_free(t->ssl);
    hr_free(t);
    c->layer = &hr_conn_plain;
}

/* Plain HTTP sent to a TLS port: a TLS connection starts with a handshake
 * record (content type 22); a request line starts with an upper-case letter.
 * Answer the latter in clear text, once, and close. */
static const char plain_http_reply[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 70\r\nConnection: close\r\n\r\n"
    "{\"error\":\"this port speaks TLS: use https:// or wss://\",\"status\":400}\n";

/* start: drive the handshake. 0 when finished (the layer's start is gone),
 * 1 while it waits for the socket, HR_ERR_CLOSED when it failed and c was
 * closed. */
static int tls_handshake(hr_conn *c)
{
    hr_tls_conn *t = tls_of(c);
    if (!(t->flags & T_PEEKED)) {
        uint8_t b[1];
        ssize_t n = recv(c->io.fd, b, sizeof(b), MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 1;
        if (n <= 0) {
            t->flags |= T_FAILED;
            hr_conn_close(c);
            return HR_ERR_CLOSED;
        }
        if (b[0] != 0x16) {
            t->flags |= T_FAILED;
            if (b[0] >= 'A' && b[0] <= 'Z') {
                ssize_t w = send(c->io.fd, plain_http_reply, sizeof(plain_http_reply) - 1, MSG_NOSIGNAL);
                HR_UNUSED(w);
            }
            hr_logf(HR_LOG_DEBUG, "tls_not_tls", "tls fd=%d: not a TLS client (first byte 0x%02x), closing", c->io.fd, b[0]);
            hr_conn_close_discarding_input(c);
            return HR_ERR_CLOSED;
        }
        t->flags |= T_PEEKED;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->flags |= T_UP;
        t->base.ops = &tls_ops;
        /* The handshake ran under the header timeout; the first request
         * must begin within another one (http.c, as on plain TCP). */
        hr_conn_set_timer(c, (uint64_t)c->w->opts->http_header_timeout_ms);
        return 0;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 1;
    char why[256];
    if (e == SSL_ERROR_SSL) ossl_reason(why, sizeof(why));
    else snprintf(why, sizeof(why), "%s", e == SSL_ERROR_SYSCALL ? (errno ? strerror(errno) : "peer closed") : "error");
    hr_logf(HR_LOG_DEBUG, "tls_handshake_failed", "tls fd=%d: handshake failed: %s", c->io.fd, why);
    ERR_clear_error();
    t->flags |= T_FAILED;
    hr_conn_close(c);
    return HR_ERR_CLOSED;
}

/* read: decrypted bytes; drained when OpenSSL needs the socket (so the next
 * event will come), not when it stopped with a full buffer or has an end /
 * error still to report (read again). */
static ssize_t tls_read(hr_conn *c, uint8_t *dst, size_t cap, bool *drained)
{
    hr_tls_conn *t = tls_of(c);
    size_t got = 0;
    t->flags &= ~(T_READ_WANTS_WRITE | T_DRAINED);
    while (got < cap) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, dst + got, cap - got, &n)) {
            got += n;
            continue;
        }
        int e = SSL_get_error(t->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (e == SSL_ERROR_WANT_WRITE) t->flags |= T_READ_WANTS_WRITE;
            t->flags |= T_DRAINED;
            break;
        }
        if (got) break; /* report the end / error on the next call */
        if (e == SSL_ERROR_ZERO_RETURN) return 0; /* close_notify, or FIN (IGNORE_UNEXPECTED_EOF) */
        char why[256];
        if (e == SSL_ERROR_SSL) ossl_reason(why, sizeof(why));
        else snprintf(why, sizeof(why), "%s", errno ? strerror(errno) : "error");
        hr_logf(HR_LOG_DEBUG, "tls_read_failed", "tls fd=%d: read failed: %s", c->io.fd, why);
        ERR_clear_error();
        t->flags |= T_FAILED;
        return HR_ERR_IO;
    }
    *drained = t->flags & T_DRAINED;
    return got ? (ssize_t)got : HR_ERR_AGAIN;
}

/* events: a stalled read or write is retried on the other direction's event. */
static uint32_t tls_events(const hr_conn *c, uint32_t events)
{
    uint32_t f = tls_of(c)->flags;
    if ((events & EPOLLOUT) && (f & T_READ_WANTS_WRITE)) events |= EPOLLIN;
    if ((events & EPOLLIN) && (f & T_WRITE_WANTS_READ)) events |= EPOLLOUT;
    return events;
}

/* Largest plaintext of one TLS record: small buffers are coalesced up to
 * this size. */
#define HR_TLS_CHUNK 16384

/* The worker thread's coalescing buffer (a static per thread: no allocation,
 * nothing to free at exit). */
static _Thread_local uint8_t tls_wbuf[HR_TLS_CHUNK];

/* Encrypt and send up to len bytes: > 0 bytes taken (partial writes are
 * normal), HR_ERR_AGAIN the socket is full (retry later with at least the
 * same bytes at the front), HR_ERR_IO failure. */
static ssize_t tls_write(hr_conn *c, const uint8_t *p, size_t len)
{
    hr_tls_conn *t = tls_of(c);
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, len, &n)) {
        t->committed = 0;
        t->flags &= ~T_WRITE_WANTS_READ;
        return (ssize_t)n;
    }
    int e = SSL_get_error(t->ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        /* OpenSSL may have encrypted (part of) these bytes already: they
         * must be offered again, at least as many. */
        if (len > t->committed) t->committed = (uint32_t)HR_MIN(len, (size_t)UINT32_MAX);
        if (e == SSL_ERROR_WANT_READ) t->flags |= T_WRITE_WANTS_READ;
        return HR_ERR_AGAIN;
    }
    char why[256];
    if (e == SSL_ERROR_SSL) ossl_reason(why, sizeof(why));
    else snprintf(why, sizeof(why), "%s", errno ? strerror(errno) : "error");
    hr_logf(HR_LOG_DEBUG, "tls_write_failed", "tls fd=%d: write failed: %s", c->io.fd, why);
    ERR_clear_error();
    t->flags |= T_FAILED;
    return HR_ERR_IO;
}

/* writev: a buffer of a record or more is handed over in place; shorter ones
 * are copied together into the coalescing buffer (one record for many small
 * frames, not one 50-byte record per publication). A blocked write is
 * retried by conn.c with the same buffers at the front (the queue only grows
 * at the tail meanwhile), so the retry offers at least as much. */
static ssize_t tls_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    if (iov[0].iov_len >= HR_TLS_CHUNK) return tls_write(c, iov[0].iov_base, iov[0].iov_len);
    size_t len = 0;
    for (int i = 0; i < cnt && len < HR_TLS_CHUNK; i++) {
        size_t take = HR_MIN(iov[i].iov_len, (size_t)HR_TLS_CHUNK - len);
        memcpy(tls_wbuf + len, iov[i].iov_base, take);
        len += take;
    }
    return tls_write(c, tls_wbuf, len);
}

/* committed: bytes OpenSSL already encrypted in a blocked write. */
static size_t tls_committed(const hr_conn *c) { return tls_of(c)->committed; }

/* shutdown: close_notify then FIN. */
static void tls_shutdown(hr_conn *c)
{
    hr_tls_conn *t = tls_of(c);
    if ((t->flags & (T_UP | T_FAILED | T_SHUT)) == T_UP) {
        t->flags |= T_SHUT;
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    shutdown(c->io.fd, SHUT_WR);
}

static const hr_conn_layer_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .events = tls_events,
    .committed = tls_committed,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .name = "tls",
};

/* The same layer while the handshake runs: with it as the start. */
static const hr_conn_layer_ops tls_handshake_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .start = tls_handshake,
    .events = tls_events,
    .committed = tls_committed,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .name = "tls-handshake",
};
