/* httpc.c - the asynchronous HTTP(S) client (backend/httpc.h) over
 * libcurl's multi-socket API. libcurl tells us which sockets to watch
 * (sock_cb: level-triggered epoll watchers, kept in a per-client pool so a
 * watcher freed in the middle of an epoll batch is never touched again) and
 * when its next timeout is due (timer_cb: the client's own timerfd on the
 * loop's epoll, armed to the millisecond libcurl asked for — not the loop's
 * 50 ms wheel; a zero timeout is also run at once by drive()). Finished
 * transfers move to a done list and their callbacks fire from deliver(), at
 * the end of a loop callback, never from inside post: a transfer that
 * finished inside post arms the timerfd to fire on the next loop turn. */
#include "backend/httpc.h"

#include "core/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/timerfd.h>
#include <unistd.h>

typedef struct sockw {          /* one socket libcurl asked us to watch */
    hr_io io;                   /* io.fd == -1 while unused */
    hr_httpc *h;
    struct sockw *next;         /* pool list */
} sockw;

enum { CALL_RUNNING, CALL_DONE };

struct hr_httpc_call {
    hr_httpc *h;
    CURL *easy;
    struct curl_slist *headers;
    hr_httpc_cb cb;
    void *ud;
    char *body;                 /* answer bytes, NUL-terminated */
    size_t len;
    bool too_big;
    int state;
    int err;                    /* set when done */
    long status;
    hr_httpc_call *prev, *next; /* running or done list */
};

struct hr_httpc {
    hr_loop *loop;
    CURLM *multi;
    hr_httpc_opts opts;
    char *ca_file;
    hr_io timer;                /* timerfd: libcurl's timeout, or "deliver now" */
    uint64_t due_ms;            /* libcurl's timeout on hr_now_ms()'s clock; 0: none */
    bool kick;                  /* libcurl asked for a zero timeout */
    size_t inflight;            /* running + done-not-delivered */
    hr_httpc_call *running, *done;
    sockw *socks;               /* pool: every watcher ever made */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ok;

static void curl_init_once(void)
{
    curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

bool hr_httpc_async_dns(void)
{
    pthread_once(&curl_once, curl_init_once);
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    return curl_ok && (v->features & CURL_VERSION_ASYNCHDNS);
}

void hr_httpc_opts_default(hr_httpc_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_inflight = HR_HTTPC_DEFAULT_MAX_INFLIGHT;
    o->connect_timeout_ms = HR_HTTPC_DEFAULT_CONNECT_TIMEOUT_MS;
    o->max_response_bytes = HR_HTTPC_DEFAULT_MAX_RESPONSE_BYTES;
    o->max_idle_conns = HR_HTTPC_DEFAULT_MAX_IDLE_CONNS;
}

/* ---- lists ------------------------------------------------------------------ */

static void list_add(hr_httpc_call **head, hr_httpc_call *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head) (*head)->prev = c;
    *head = c;
}

static void list_del(hr_httpc_call **head, hr_httpc_call *c)
{
    if (c->prev) c->prev->next = c->next;
    else *head = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void call_free(hr_httpc_call *c)
{
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    hr_free(c->body);
    hr_free(c);
}

/* ---- completion ------------------------------------------------------------- */

static int map_error(const hr_httpc_call *c, CURLcode rc)
{
    switch (rc) {
    case CURLE_OK: return 0;
    case CURLE_OPERATION_TIMEDOUT: return HR_HTTPC_E_TIMEOUT;
    case CURLE_COULDNT_CONNECT: return HR_HTTPC_E_CONNECT;
    case CURLE_COULDNT_RESOLVE_HOST: return HR_HTTPC_E_RESOLVE;
    case CURLE_FILESIZE_EXCEEDED: return HR_HTTPC_E_TOO_BIG;
    case CURLE_WRITE_ERROR: return c->too_big ? HR_HTTPC_E_TOO_BIG : HR_HTTPC_E_TRANSFER;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER: return HR_HTTPC_E_TLS;
    default: return HR_HTTPC_E_TRANSFER;
    }
}

/* Move every finished transfer from libcurl to the done list. */
static void collect(hr_httpc *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        hr_httpc_call *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        c->err = map_error(c, m->data.result);
        if (c->err) hr_logf(HR_LOG_DEBUG, "httpc_failed", "httpc: %s", curl_easy_strerror(m->data.result));
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
        curl_multi_remove_handle(h->multi, c->easy);
        list_del(&h->running, c);
        c->state = CALL_DONE;
        list_add(&h->done, c);
    }
}

static void fire(hr_httpc_call *c, int err)
{
    hr_httpc_resp r = {.err = err, .status = err ? 0 : c->status,
                       .body = c->body ? c->body : "", .body_len = err ? 0 : c->len};
    c->cb(&r, c->ud);
}

/* Fire the callbacks of the finished transfers (a callback may post or cancel). */
static void deliver(hr_httpc *h)
{
    hr_httpc_call *c;
    while ((c = h->done)) {
        list_del(&h->done, c);
        h->inflight--;
        fire(c, c->err);
        call_free(c);
    }
}

/* Run libcurl for one socket event (or its timeout), then any zero timeout it
 * asked for meanwhile (bounded; the wheel timer is the fallback). */
static void drive(hr_httpc *h, curl_socket_t fd, int mask)
{
    int running;
    h->kick = false;
    curl_multi_socket_action(h->multi, fd, mask, &running);
    for (int i = 0; i < 8 && h->kick; i++) {
        h->kick = false;
        curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect(h);
}

/* ---- libcurl's callbacks ---------------------------------------------------- */

static void on_io(hr_loop *loop, hr_io *io, uint32_t events)
{
    sockw *s = HR_CONTAINER_OF(io, sockw, io);
    if (io->fd < 0) return; /* removed earlier in this epoll batch */
    hr_httpc *h = s->h;
    int mask = 0;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) mask |= CURL_CSELECT_IN;
    if (events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
    if (events & EPOLLERR) mask |= CURL_CSELECT_ERR;
    drive(h, io->fd, mask);
    deliver(h);
}

/* Arm the timerfd to fire in `ms` milliseconds (0: on the next loop turn). */
static void timer_arm(hr_httpc *h, uint64_t ms)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(ms / 1000u);
    its.it_value.tv_nsec = ms ? (long)(ms % 1000u) * 1000000L : 1; /* all zero would disarm */
    timerfd_settime(h->timer.fd, 0, &its, NULL);
}

static void timer_disarm(hr_httpc *h)
{
    struct itimerspec its = {0};
    timerfd_settime(h->timer.fd, 0, &its, NULL);
}

/* Re-arm for libcurl's pending timeout after the timerfd fired (it may have
 * fired early, for a delivery, with libcurl's timeout still ahead). */
static void timer_rearm(hr_httpc *h)
{
    if (!h->due_ms) return;
    uint64_t now = hr_now_ms();
    timer_arm(h, h->due_ms > now ? h->due_ms - now : 1);
}

static void on_timer(hr_loop *loop, hr_io *io, uint32_t events)
{
    hr_httpc *h = HR_CONTAINER_OF(io, hr_httpc, timer);
    uint64_t expirations;
    ssize_t n = read(io->fd, &expirations, sizeof(expirations)); /* clear it (level-triggered) */
    HR_UNUSED(n);
    drive(h, CURL_SOCKET_TIMEOUT, 0);
    deliver(h);
    timer_rearm(h);
}

static sockw *sock_get(hr_httpc *h)
{
    for (sockw *s = h->socks; s; s = s->next)
        if (s->io.fd < 0) return s;
    sockw *s = hr_calloc(1, sizeof(*s));
    s->h = h;
    s->io.fd = -1;
    s->io.cb = on_io;
    s->next = h->socks;
    h->socks = s;
    return s;
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    hr_httpc *h = userp;
    sockw *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            hr_loop_del(h->loop, &s->io);
            s->io.fd = -1;
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    uint32_t ev = EPOLLRDHUP;
    if (what & CURL_POLL_IN) ev |= EPOLLIN;
    if (what & CURL_POLL_OUT) ev |= EPOLLOUT;
    if (!s) {
        s = sock_get(h);
        s->io.fd = fd;
        curl_multi_assign(h->multi, fd, s);
        if (hr_loop_add(h->loop, &s->io, ev) != 0) return -1;
    } else if (hr_loop_mod(h->loop, &s->io, ev) != 0) {
        return -1;
    }
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    hr_httpc *h = userp;
    if (timeout_ms < 0) {
        h->due_ms = 0;
        timer_disarm(h);
        return 0;
    }
    if (timeout_ms == 0) h->kick = true;
    h->due_ms = hr_now_ms() + (uint64_t)timeout_ms;
    timer_arm(h, (uint64_t)timeout_ms);
    return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    hr_httpc_call *c = ud;
    size_t add = size * n;
    if (c->len + add > c->h->opts.max_response_bytes) {
        c->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    c->body = hr_realloc(c->body, c->len + add + 1);
    memcpy(c->body + c->len, p, add);
    c->len += add;
    c->body[c->len] = '\0';
    return add;
}

/* ---- the API ---------------------------------------------------------------- */

hr_httpc *hr_httpc_new(hr_loop *loop, const hr_httpc_opts *opts)
{
    if (!hr_httpc_async_dns()) {
        hr_logf(HR_LOG_ERROR, "httpc_unusable", "httpc: libcurl %s without the asynchronous resolver: refusing (it would block the loop)",
                 curl_version_info(CURLVERSION_NOW)->version);
        return NULL;
    }
    hr_httpc *h = hr_calloc(1, sizeof(*h));
    h->loop = loop;
    if (opts) h->opts = *opts;
    else hr_httpc_opts_default(&h->opts);
    if (!h->opts.max_inflight) h->opts.max_inflight = HR_HTTPC_DEFAULT_MAX_INFLIGHT;
    if (h->opts.ca_file) h->ca_file = hr_strdup(h->opts.ca_file);
    h->opts.ca_file = h->ca_file;
    h->timer.cb = on_timer;
    h->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    h->multi = h->timer.fd >= 0 ? curl_multi_init() : NULL;
    if (!h->multi || hr_loop_add(loop, &h->timer, EPOLLIN) != 0) {
        if (h->multi) curl_multi_cleanup(h->multi);
        if (h->timer.fd >= 0) close(h->timer.fd);
        hr_logf(HR_LOG_ERROR, "httpc_unusable", "httpc: cannot set up libcurl's multi handle and its timerfd");
        hr_free(h->ca_file);
        hr_free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->opts.max_idle_conns);
    return h;
}

static bool has_header(const hr_httpc_req *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++)
        if (strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':') return true;
    return false;
}

static struct curl_slist *build_headers(const hr_httpc_req *req)
{
    struct curl_slist *l = NULL;
    for (size_t i = 0; i < req->nheaders; i++) l = curl_slist_append(l, req->headers[i]);
    if (!has_header(req, "Content-Type")) l = curl_slist_append(l, "Content-Type: application/json");
    return curl_slist_append(l, "Expect:"); /* no 100-continue round trip */
}

static void set_tls(const hr_httpc *h, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->opts.tls_insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->opts.tls_insecure ? 0L : 2L);
    if (h->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
}

static CURL *make_easy(hr_httpc *h, hr_httpc_call *c, const hr_httpc_req *req)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    uint32_t timeout = req->timeout_ms ? req->timeout_ms : HR_HTTPC_DEFAULT_TIMEOUT_MS;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");          /* never an environment proxy */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->opts.max_response_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    set_tls(h, e);
    return e;
}

int hr_httpc_post(hr_httpc *h, const hr_httpc_req *req, hr_httpc_cb cb, void *ud,
                  hr_httpc_call **call)
{
    if (!req || !req->url || !cb || (strncmp(req->url, "http://", 7) && strncmp(req->url, "https://", 8)))
        return HR_HTTPC_E_INVALID;
    if (h->inflight >= h->opts.max_inflight) return HR_HTTPC_E_FULL;
    hr_httpc_call *c = hr_calloc(1, sizeof(*c));
    c->h = h;
    c->cb = cb;
    c->ud = ud;
    c->headers = build_headers(req);
    c->easy = make_easy(h, c, req);
    if (!c->easy || curl_multi_add_handle(h->multi, c->easy) != CURLM_OK) {
        curl_slist_free_all(c->headers);
        if (c->easy) curl_easy_cleanup(c->easy);
        hr_free(c);
        return HR_HTTPC_E_INVALID;
    }
    c->state = CALL_RUNNING;
    list_add(&h->running, c);
    h->inflight++;
    if (call) *call = c;
    drive(h, CURL_SOCKET_TIMEOUT, 0); /* start it now, not a wheel tick later */
    if (h->done) timer_arm(h, 0); /* deliver from the loop, on its next turn */
    return 0;
}

void hr_httpc_cancel(hr_httpc *h, hr_httpc_call *c)
{
    if (c->state == CALL_RUNNING) {
        curl_multi_remove_handle(h->multi, c->easy);
        list_del(&h->running, c);
    } else {
        list_del(&h->done, c);
    }
    h->inflight--;
    call_free(c);
}

size_t hr_httpc_inflight(const hr_httpc *h)
{
    return h->inflight;
}

void hr_httpc_free(hr_httpc *h)
{
    if (!h) return;
    for (sockw *s = h->socks; s; s = s->next) /* before libcurl closes them */
        if (s->io.fd >= 0) hr_loop_del(h->loop, &s->io);
    hr_httpc_call *c;
    while ((c = h->done) || (c = h->running)) {
        bool running = c->state == CALL_RUNNING;
        if (running) curl_multi_remove_handle(h->multi, c->easy);
        list_del(running ? &h->running : &h->done, c);
        fire(c, HR_HTTPC_E_CANCELLED);
        call_free(c);
    }
    curl_multi_cleanup(h->multi); /* closes the cached connections (sock_cb REMOVE) */
    hr_loop_del(h->loop, &h->timer);
    close(h->timer.fd);
    while (h->socks) {
        sockw *s = h->socks;
        h->socks = s->next;
        hr_free(s);
    }
    hr_free(h->ca_file);
    hr_free(h);
}
