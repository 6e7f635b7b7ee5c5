/* server.c - listeners, worker threads, accept, signals and graceful drain.
 *
 * Start-up binds one SO_REUSEPORT socket per worker to the same address (the
 * kernel spreads new connections across them), after a probe bind without
 * SO_REUSEPORT so that a port already used by another process is reported
 * instead of silently shared. The main thread only waits for signals; on
 * SIGINT/SIGTERM it asks every worker to drain through the worker's eventfd. */
#include "server/server.h"
#include "core/random.h"
#include "ops/admin.h"
#include "ops/pusher_app.h"
#include "transport/admin.h"
#include "ops/limits.h"
#include "server/opts.h"
#include "auth/auth.h"
#include "codec/pmdeflate.h"
#include "core/log.h"
#include "transport/emulation.h"
#include "transport/http.h"
#include "transport/proxy.h"
#include "server/hooks.h"
#include "transport/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int make_listener(const struct sockaddr *sa, socklen_t salen, bool reuseport, char *err, size_t errlen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return HR_ERR_IO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, sa, salen) < 0) {
        snprintf(err, errlen, "bind: %s", strerror(errno));
        close(fd);
        return HR_ERR_IO;
    }
    if (listen(fd, 4096) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        close(fd);
        return HR_ERR_IO;
    }
    return fd;
}

/* The server a worker belongs to (its shared part is embedded in it). */
static hr_server *server_of(hr_worker *w) { return (hr_server *)(void *)((char *)w->sh - offsetof(hr_server, sh)); }

/* Refuse a connection at accept when there is no room for it at all (on a
 * TLS listener a clear-text answer could not be read, and behind a PROXY
 * protocol sender it would reach the proxy, not the client: just close). */
static void refuse_at_accept(int fd, bool tls)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                               "Content-Length: 61\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
                               "{\"error\":\"too many connections\",\"status\":503,\"temporary\":true}";
    if (!tls) {
        ssize_t n = write(fd, busy, sizeof(busy) - 1);
        HR_UNUSED(n);
    }
    close(fd);
}

/* Listeners are level-triggered: one whose accept fails for lack of
 * descriptors would wake the loop again at once, forever. It leaves epoll
 * for server.accept_backoff instead (waiting clients stay in the backlog),
 * and the warning is logged at most once per ACCEPT_WARN_MS. */
#define ACCEPT_WARN_MS 10000

static void listeners_watch(hr_worker *w, bool on)
{
    hr_io *ios[3] = {&w->listen_io, &w->tls_listen_io, &w->metrics_listen_io};
    for (int i = 0; i < 3; i++) {
        if (ios[i]->fd < 0) continue;
        if (on) hr_loop_add(&w->loop, ios[i], EPOLLIN);
        else hr_loop_del(&w->loop, ios[i]);
    }
}

static void on_accept_timer(hr_timer *t, void *data)
{
    HR_UNUSED(data);
    hr_worker *w = HR_CONTAINER_OF(t, hr_worker, accept_timer);
    w->accept_paused = false;
    if (!w->draining) listeners_watch(w, true);
}

static void accept_out_of_fds(hr_worker *w, int err)
{
    uint64_t now = hr_loop_now(&w->loop);
    w->accept_failures++;
    /* counted, not a conn_refused line: the client waits in the backlog, and this
     * function's own warning (at most once per ACCEPT_WARN_MS) says how often */
    hr_worker_count_refused(w, HR_REFUSE_OVERLOAD);
    if (!w->accept_warned_ms || now - w->accept_warned_ms >= ACCEPT_WARN_MS) {
        hr_logf(HR_LOG_WARN, "accept_out_of_fds", "worker %d: accept: %s (%llu times in the last %llu ms); not accepting for %lld ms", w->id,
                strerror(err), (unsigned long long)w->accept_failures,
                (unsigned long long)(w->accept_warned_ms ? now - w->accept_warned_ms : 0),
                (long long)server_of(w)->cfg->accept_backoff_ms);
        w->accept_warned_ms = now ? now : 1;
        w->accept_failures = 0;
    }
    if (w->accept_paused) return;
    w->accept_paused = true;
    listeners_watch(w, false);
    hr_timer_start(&w->loop.wheel, &w->accept_timer, (uint64_t)server_of(w)->cfg->accept_backoff_ms);
}

static void accept_on(hr_loop *loop, hr_io *io, hr_worker *w, bool tls, uint32_t flags)
{
    /* With server.proxy_protocol the client's address comes with the PROXY
     * header (transport/proxy.c); otherwise it is the peer's, needed only
     * when the limits count addresses. */
    bool pp = server_of(w)->cfg->proxy_protocol;
    bool want_addr = !pp && hr_limits_track_ips(server_of(w)->sh.limits);
    for (int i = 0; i < 256 && w->accepting && !w->accept_paused; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(io->fd, want_addr ? (struct sockaddr *)&ss : NULL, want_addr ? &sl : NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_out_of_fds(w, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK) hr_logf(HR_LOG_WARN, "accept_failed", "accept: %s", strerror(errno));
            return;
        }
        uint64_t total = atomic_fetch_add(&server_of(w)->sh.total_connections, 1) + 1;
        if (total > (uint64_t)server_of(w)->cfg->max_connections) {
            atomic_fetch_sub(&server_of(w)->sh.total_connections, 1);
            refuse_at_accept(fd, tls || pp);
            hr_worker_refused(w, HR_REFUSE_LIMIT, NULL, NULL, "accept", 503, "server.max_connections");
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        hr_conn *c = hr_worker_obj_alloc(w, sizeof(*c));
        c->io.fd = fd;
        c->io.cb = hr_conn_on_io;
        c->layer = &hr_conn_plain;
        c->w = w;
        hr_timer_init(&c->timer, hr_conn_on_timer);
        c->last_rx = hr_loop_now(loop);
        c->next = w->conns;
        if (w->conns) w->conns->prev = c;
        w->conns = c;
        w->nconns++;
        hr_stat_add(&w->stats.connections, 1);
        hr_stat_add(&w->stats.accepted, 1);
        c->flags |= flags | (tls ? HR_CONN_TLS : 0);
        /* admission by address, HTTP, TLS: now, or once the PROXY header names the client */
        if (pp) hr_proxy_await(c, tls);
        else if (hr_client_start(c, want_addr ? (struct sockaddr *)&ss : NULL, sl, tls)) continue; /* closed */
        if (hr_loop_add(loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0) {
            hr_logf(HR_LOG_WARN, "epoll_ctl_failed", "epoll_ctl: %s", strerror(errno));
            hr_conn_close(c);
        }
    }
}

static void on_accept(hr_loop *loop, hr_io *io, uint32_t events)
{
    HR_UNUSED(events);
    hr_worker *w = HR_CONTAINER_OF(io, hr_worker, listen_io);
    accept_on(loop, io, w, server_of(w)->listen_tls, 0);
}

static void on_accept_tls(hr_loop *loop, hr_io *io, uint32_t events)
{
    HR_UNUSED(events);
    accept_on(loop, io, HR_CONTAINER_OF(io, hr_worker, tls_listen_io), true, 0);
}

/* metrics.listen: plain HTTP, /metrics, /health and /ready only. */
static void on_accept_metrics(hr_loop *loop, hr_io *io, uint32_t events)
{
    HR_UNUSED(events);
    accept_on(loop, io, HR_CONTAINER_OF(io, hr_worker, metrics_listen_io), false, HR_CONN_METRICS_ONLY);
}

static void worker_check_done(hr_worker *w)
{
    if (w->draining && w->nconns == 0) hr_loop_stop(&w->loop);
}

static void force_close_all(hr_worker *w)
{
    while (w->conns) hr_conn_close(w->conns);
    hr_conn_end_turn(w);
    hr_loop_stop(&w->loop);
}

static void on_drain_deadline(hr_timer *t, void *data)
{
    HR_UNUSED(data);
    hr_worker *w = HR_CONTAINER_OF(t, hr_worker, drain_timer);
    if (w->nconns) hr_logev(HR_LOG_INFO, "drain_timeout", HR_LOG_U("closing", w->nconns));
    force_close_all(w);
}

static void on_wake(hr_loop *loop, void *data)
{
    HR_UNUSED(loop);
    hr_worker *w = data;
    hr_hub_process_inbox(w->hub);
    int req = atomic_load(&server_of(w)->drain_requested);
    if (req >= 2) {
        force_close_all(w);
        return;
    }
    if (req == 1 && !w->draining) {
        w->draining = true;
        w->accepting = false;
        if (w->listen_io.fd >= 0) {
            close(w->listen_io.fd);
            w->listen_io.fd = -1;
        }
        if (w->tls_listen_io.fd >= 0) {
            close(w->tls_listen_io.fd);
            w->tls_listen_io.fd = -1;
        }
        if (w->metrics_listen_io.fd >= 0) {
            close(w->metrics_listen_io.fd);
            w->metrics_listen_io.fd = -1;
        }
        hr_timer_init(&w->drain_timer, on_drain_deadline);
        hr_timer_start(&w->loop.wheel, &w->drain_timer, (uint64_t)server_of(w)->cfg->drain_timeout_ms);
        /* on_shutdown may close the connection: walk a snapshot-safe way */
        hr_conn *c = w->conns;
        while (c) {
            hr_conn *nx = c->next;
            if (c->vt->on_shutdown) c->vt->on_shutdown(c);
            c = nx;
        }
    }
}

static void on_turn_end(hr_loop *loop, void *data)
{
    HR_UNUSED(loop);
    hr_worker *w = data;
    if (w->ready_list) hr_conn_run_ready(w);
    hr_conn_end_turn(w);
    hr_engine *eng = w->sh->hub->engine;
    if (eng->vt->turn_end) eng->vt->turn_end(eng); /* the publishes this turn made, together */
    hr_metrics_turn_end(w);
    if (w->ready_list) w->loop.busy = true;
    worker_check_done(w);
}

static void *worker_main(void *arg)
{
    hr_worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "herald-w%d", w->id);
    pthread_setname_np(pthread_self(), name);
    hr_log_set_worker(w->id);
    hr_engine_worker = w->id; /* a network engine brings callbacks back to this thread */
    hr_loop_run(&w->loop);
    /* leave nothing behind: close what remains (force path or loop error) */
    while (w->conns) hr_conn_close(w->conns);
    hr_conn_end_turn(w);
    /* after the connections (their sessions cancel their calls); HTTP
     * emulation sessions outlive the loop and forget theirs (hr_session_loop_gone) */
    hr_server_hooks_stop(w->proxy); /* the subscribe/publish hooks' waiting callers are told, not dropped */
    hr_proxy_free(w->proxy);
    w->proxy = NULL;
    atomic_fetch_sub(&server_of(w)->running_workers, 1);
    return NULL;
}

/* For the Redis engine's node announcement (on the engine's thread; the
 * engine counts the subscriptions itself). */
static void node_stats(void *ud, uint64_t *connections, uint64_t *subscriptions)
{
    hr_server *s = ud;
    uint64_t conns = 0;
    for (int i = 0; i < s->sh.nworkers; i++) conns += atomic_load(&s->sh.workers[i].stats.connections);
    *connections = conns;
    *subscriptions = 0;
}

/* engine.data_dir: make the memory engine durable (recovery runs here,
 * before any worker accepts). */
static int open_log(hr_engine *mem, const hr_config *cfg, char *err, size_t errlen)
{
    hr_durable_opts o = {
        .dir = cfg->data_dir,
        .fsync = (hr_fsync_mode)hr_fsync_mode_parse(cfg->engine_fsync),
        .fsync_interval_ms = (uint64_t)cfg->engine_fsync_interval_ms,
        .segment_bytes = (uint64_t)cfg->engine_segment_bytes,
        .max_disk_bytes = (uint64_t)cfg->engine_max_disk_bytes,
        .max_queued_bytes = (uint64_t)cfg->engine_max_queued_bytes,
    };
    return hr_engine_memory_open_log(mem, &o, err, errlen);
}

/* server.engine: the hub starts with the memory engine; redis replaces it. */
static int use_engine(hr_server *s, hr_config *cfg, char *err, size_t errlen)
{
    hr_engine *e = NULL;
    if (strcmp(cfg->engine, "redis") == 0) {
        hr_redis_opts o = {
            .addrs = cfg->redis,
            .prefix = cfg->redis_prefix,
            .node_id = cfg->redis_node_id,
            .node_address = s->sh.bound,
            .user = cfg->redis_user,
            .password = cfg->redis_password,
            .presence_ttl_ms = (uint64_t)cfg->redis_presence_ttl_ms,
            .node_ttl_ms = (uint64_t)cfg->redis_node_ttl_ms,
            .connect_timeout_ms = (uint64_t)cfg->redis_connect_timeout_ms,
            .ping_interval_ms = (uint64_t)cfg->redis_ping_interval_ms,
            .backoff_min_ms = (uint64_t)cfg->redis_backoff_min_ms,
            .backoff_max_ms = (uint64_t)cfg->redis_backoff_max_ms,
            .max_pending = (size_t)cfg->redis_max_pending,
            .publish_batch = (size_t)cfg->redis_publish_batch,
            .deliver_batch = (size_t)cfg->redis_deliver_batch,
            .occupancy_sweep_max = (size_t)cfg->redis_occupancy_sweep_max,
            .hold_publishes = true, /* on_turn_end calls turn_end */
            .max_reply = (size_t)cfg->redis_max_reply,
            .stats = node_stats,
            .stats_ud = s,
        };
        e = hr_engine_redis_new(&o, hr_hub_deliver, s->sh.hub, err, errlen);
        if (!e) return HR_ERR_INVALID;
    } else if (strcmp(cfg->engine, "memory-delayed") == 0) {
        hr_engine *mem = hr_engine_memory_new(hr_hub_deliver, s->sh.hub);
        hr_engine_memory_set_budget(mem, (uint64_t)cfg->ch_max_history_bytes);
        e = hr_engine_delayed_new(mem);
    } else {
        hr_engine_memory_set_budget(s->sh.hub->engine, (uint64_t)cfg->ch_max_history_bytes);
        if (cfg->data_dir[0] && open_log(s->sh.hub->engine, cfg, err, errlen) < 0) return HR_ERR_INVALID;
    }
    if (e) hr_hub_set_engine(s->sh.hub, e);
    s->sh.emu = hr_emu_registry_new(s->sh.hub);
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* server.max_connections must leave descriptors for what is not a client
 * connection: listeners, epoll and wake-up fds, the engine, logs and queued
 * static files (a sixteenth of the limit, at least 32 + 4 per worker). */
static void fit_fd_limit(hr_config *cfg, int workers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY) return;
    uint64_t lim = (uint64_t)rl.rlim_cur;
    uint64_t reserve = HR_MAX((uint64_t)32 + 4 * (uint64_t)workers, lim / 16);
    int64_t room = lim > reserve ? (int64_t)(lim - reserve) : 1;
    if (cfg->max_connections <= room) return;
    hr_logf(HR_LOG_INFO, "max_connections_lowered", "server.max_connections lowered from %lld to %lld: the open-file limit (RLIMIT_NOFILE) is %llu",
            (long long)cfg->max_connections, (long long)room, (unsigned long long)lim);
    cfg->max_connections = room;
}

/* One listening address: parsed, probed (a port held by another process is
 * an error, not silently shared), with :0 resolved to the bound port. */
typedef struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t sl;
    int port;
    char bound[128];
} listen_addr;

static int resolve_listen(const char *key, const char *spec, listen_addr *la, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (hr_parse_listen(spec, host, sizeof(host), &port)) {
        snprintf(err, errlen, "%s: \"%s\" is not HOST:PORT, [IPv6]:PORT or :PORT", key, spec);
        return HR_ERR_INVALID;
    }
    memset(la, 0, sizeof(*la));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&la->ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&la->ss;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        a4->sin_port = htons((uint16_t)port);
        la->sl = sizeof(*a4);
    } else if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        la->sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        la->sl = sizeof(*a6);
    } else if (strcmp(host, "localhost") == 0) {
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a4->sin_port = htons((uint16_t)port);
        la->sl = sizeof(*a4);
    } else {
        snprintf(err, errlen, "%s: \"%s\" is not a numeric IP address", key, host);
        return HR_ERR_INVALID;
    }
    char msg[256];
    /* Probe: fail loudly if another process holds the port. */
    int probe = make_listener((struct sockaddr *)&la->ss, la->sl, false, msg, sizeof(msg));
    if (probe < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec, msg);
        return HR_ERR_IO;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(probe, (struct sockaddr *)&bound, &bl);
    close(probe);
    la->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
    if (la->ss.ss_family == AF_INET) a4->sin_port = htons((uint16_t)la->port);
    else a6->sin6_port = htons((uint16_t)la->port);
    snprintf(la->bound, sizeof(la->bound), la->ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             host[0] ? host : "0.0.0.0", la->port);
    return 0;
}

/* The webhook sender, when some URL is configured (webhook.url or a
 * namespace's webhook_url); the operations reach it through their options. */
static int start_webhook(hr_server *s, const hr_config *cfg, char *err, size_t errlen)
{
    hr_webhook_opts wo;
    hr_webhook_route *routes;
    hr_opts_webhook(cfg, &wo, &routes);
    bool any = wo.url[0];
    for (size_t i = 0; i < wo.nroutes; i++) any = any || (routes[i].url && routes[i].url[0]);
    int rc = any ? hr_webhook_start(&wo, &s->webhook) : 0;
    hr_free(routes);
    if (rc) {
        snprintf(err, errlen, "webhook: the sender could not start (%d)", rc);
        return HR_ERR_INVALID;
    }
    s->proto.ops.webhook = s->webhook;
    return 0;
}

/* The hub's occupancy transitions (hr_hub_set_occupancy_cb) become
 * channel_occupied / channel_vacated webhooks: queued, never waited for. */
static void on_occupancy(void *ud, const hr_occupancy *ev)
{
    hr_webhook_occupancy(ud, ev->channel, ev->len, ev->occupied, ev->time_ms);
}

/* The admin UI (admin.enabled): its sessions, reached by the operations
 * through their options, and worker 0's statistics publisher. */
static void start_admin(hr_server *s, const hr_config *cfg)
{
    if (cfg->admin_password[0]) snprintf(s->admin_password, sizeof(s->admin_password), "%s", cfg->admin_password);
    else hr_random_hex(s->admin_password, 12);
    s->admin = hr_admin_new(s->admin_password, cfg->admin_session_ttl_ms, cfg->admin_max_sessions);
    s->proto.ops.admin = s->admin;
    s->admin_stats = hr_admin_stats_start(&s->sh.workers[0], cfg->admin_stats_interval_ms);
}

int hr_server_start(hr_server *s, hr_config *cfg, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    hr_opts_transport(cfg, &s->transport);
    hr_opts_proto(cfg, &s->proto);
    hr_opts_proxy(cfg, &s->proxy);
    s->proto.ops.hooks = hr_server_hooks(&s->sh);
    /* TLS first: a bad certificate or key is a configuration error (exit 2). */
    if (cfg->tls_cert[0] && hr_tls_server_new(&s->sh.tls, &s->transport, err, errlen)) return HR_ERR_INVALID;
    s->listen_tls = s->sh.tls && !cfg->tls_listen[0];
    listen_addr la, tla;
    int rc = resolve_listen("server.listen", cfg->listen, &la, err, errlen);
    if (rc) return rc;
    s->port = la.port;
    snprintf(s->sh.bound, sizeof(s->sh.bound), "%s", la.bound);
    if (s->sh.tls && cfg->tls_listen[0]) {
        if ((rc = resolve_listen("tls.listen", cfg->tls_listen, &tla, err, errlen))) return rc;
        s->tls_port = tla.port;
        snprintf(s->tls_bound, sizeof(s->tls_bound), "%s", tla.bound);
    }
    listen_addr mla = {0};
    if (cfg->metrics_listen[0] && (rc = resolve_listen("metrics.listen", cfg->metrics_listen, &mla, err, errlen)))
        return rc;
    raise_fd_limit();
    char msg[256];

    int n = (int)cfg->workers;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    if (n > HR_MAX_WORKERS) n = HR_MAX_WORKERS;
    s->sh.nworkers = n;
    fit_fd_limit(cfg, n);
    if ((rc = start_webhook(s, cfg, err, errlen))) return rc;
    hr_pusher_api_start(&cfg->pusher); /* the HTTP API's replay sets */
    s->sh.hub = hr_hub_new(n);
    s->sh.hub->sample_every = (uint32_t)cfg->metrics_publish_sample;
    if (s->webhook) hr_hub_set_occupancy_cb(s->sh.hub, on_occupancy, s->webhook);
    hr_limits_opts lo;
    hr_opts_limits(cfg, &lo);
    s->sh.limits = hr_limits_new(&lo);
    size_t bad = 0;
    if (hr_cidr_set_parse(&s->sh.trusted, cfg->trusted_proxies.v, cfg->trusted_proxies.n, &bad)) {
        snprintf(err, errlen, "server.trusted_proxies: \"%s\" is not an IP address or CIDR range",
                 cfg->trusted_proxies.v[bad]);
        return HR_ERR_INVALID;
    }
    if (hr_cidr_set_parse(&s->sh.metrics_allowed, cfg->metrics_allowed_ips.v, cfg->metrics_allowed_ips.n, &bad)) {
        snprintf(err, errlen, "metrics.allowed_ips: \"%s\" is not an IP address or CIDR range",
                 cfg->metrics_allowed_ips.v[bad]);
        return HR_ERR_INVALID;
    }
    s->sh.hub->limits = s->sh.limits;
    s->sh.started_ms = hr_now_ms();
    if (cfg->api_key && cfg->api_key[0]) {
        snprintf(s->sh.api_key, sizeof(s->sh.api_key), "%s", cfg->api_key);
    } else {
        hr_random_hex(s->sh.api_key, 16);
    }
    s->sh.workers = hr_calloc((size_t)n, sizeof(hr_worker));
    for (int i = 0; i < n; i++) {
        s->sh.workers[i].listen_io.fd = -1;
        s->sh.workers[i].tls_listen_io.fd = -1;
        s->sh.workers[i].metrics_listen_io.fd = -1;
        s->sh.workers[i].loop.epfd = s->sh.workers[i].loop.wakefd = -1;
        s->sh.workers[i].static_fd = -1;
    }
    int static_fd = -1;
    if (cfg->static_dir && cfg->static_dir[0]) {
        static_fd = open(cfg->static_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (static_fd < 0) {
            snprintf(err, errlen, "server.static_dir: cannot open \"%s\": %s", cfg->static_dir, strerror(errno));
            return HR_ERR_INVALID;
        }
    }
    for (int i = 0; i < n; i++) {
        hr_worker *w = &s->sh.workers[i];
        w->sh = &s->sh;
        w->opts = &s->transport;
        w->proto = &s->proto;
        w->id = i;
        w->static_fd = static_fd;
        w->rbuf = hr_malloc(HR_READ_BUF_SIZE);
        w->accepting = true;
        hr_timer_init(&w->accept_timer, on_accept_timer);
        if (hr_loop_init(&w->loop, w)) {
            snprintf(err, errlen, "event loop: %s", strerror(errno));
            return HR_ERR_IO;
        }
        w->loop.on_wake = on_wake;
        w->hub = hr_hub_worker(s->sh.hub, i, &w->loop);
        hr_pools_set_spare(&w->hub->pools, (size_t)s->cfg->object_pool_spare_bytes);
        /* made before the thread starts, used only by it from then on */
        if (hr_proxy_opts_enabled(&s->proxy) && !(w->proxy = hr_proxy_new(&w->loop, &s->proxy))) {
            snprintf(err, errlen, "proxy: the HTTP client for the backend hooks cannot start (see the log)");
            return HR_ERR_IO;
        }
        w->loop.on_turn_end = on_turn_end;
        w->loop.on_lag = hr_metrics_on_lag;
        int fd = make_listener((struct sockaddr *)&la.ss, la.sl, true, msg, sizeof(msg));
        if (fd < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", s->sh.bound, msg);
            return HR_ERR_IO;
        }
        w->listen_io.fd = fd;
        w->listen_io.cb = on_accept;
        hr_loop_add(&w->loop, &w->listen_io, EPOLLIN);
        if (s->tls_port) {
            fd = make_listener((struct sockaddr *)&tla.ss, tla.sl, true, msg, sizeof(msg));
            if (fd < 0) {
                snprintf(err, errlen, "cannot listen on %s: %s", s->tls_bound, msg);
                return HR_ERR_IO;
            }
            w->tls_listen_io.fd = fd;
            w->tls_listen_io.cb = on_accept_tls;
            hr_loop_add(&w->loop, &w->tls_listen_io, EPOLLIN);
        }
        if (mla.port) {
            fd = make_listener((struct sockaddr *)&mla.ss, mla.sl, true, msg, sizeof(msg));
            if (fd < 0) {
                snprintf(err, errlen, "cannot listen on %s: %s", mla.bound, msg);
                return HR_ERR_IO;
            }
            w->metrics_listen_io.fd = fd;
            w->metrics_listen_io.cb = on_accept_metrics;
            hr_loop_add(&w->loop, &w->metrics_listen_io, EPOLLIN);
        }
    }
    /* Workers never see process signals; the main thread waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* after the mask: an engine thread must not take the process signals either */
    if ((rc = use_engine(s, cfg, err, errlen))) return rc;
    if (cfg->admin_enabled) start_admin(s, cfg);
    atomic_store(&s->running_workers, n);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&s->sh.workers[i].thread, NULL, worker_main, &s->sh.workers[i])) {
            snprintf(err, errlen, "pthread_create failed");
            return HR_ERR_IO;
        }
    }
    return 0;
}

void hr_server_request_drain(hr_server *s, bool force)
{
    atomic_store(&s->drain_requested, force ? 2 : 1);
    for (int i = 0; i < s->sh.nworkers; i++) hr_loop_wake(&s->sh.workers[i].loop);
}

void hr_server_join(hr_server *s)
{
    for (int i = 0; i < s->sh.nworkers; i++) pthread_join(s->sh.workers[i].thread, NULL);
}

int hr_server_run_until_signal(hr_server *s)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    int signals = 0;
    for (;;) {
        struct timespec ts = {0, 100 * 1000000};
        int sig = sigtimedwait(&set, NULL, signals ? &ts : NULL);
        if (sig == SIGHUP) {
            hr_auth_reload(s->cfg->auth); /* token keys (logs what it did) */
            hr_tls_reload(&s->sh);            /* certificate (logs what it did) */
            continue;
        }
        if (sig == SIGINT || sig == SIGTERM) {
            signals++;
            if (signals == 1) {
                hr_logf(HR_LOG_INFO, "draining", "%s: draining (up to %lld ms); send again to stop at once",
                        sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)s->cfg->drain_timeout_ms);
                hr_server_request_drain(s, false);
            } else {
                hr_logf(HR_LOG_INFO, "drain_forced", "second signal: closing all connections now");
                hr_server_request_drain(s, true);
            }
        }
        if (signals && atomic_load(&s->running_workers) == 0) break;
    }
    hr_server_join(s);
    hr_logf(HR_LOG_INFO, "stopped", "stopped");
    return 0;
}

void hr_server_free(hr_server *s)
{
    hr_admin_stats_free(s->admin_stats); /* its timer is on worker 0's wheel */
    s->admin_stats = NULL;
    for (int i = 0; i < s->sh.nworkers; i++) {
        hr_worker *w = &s->sh.workers[i];
        if (w->listen_io.fd >= 0) close(w->listen_io.fd);
        if (w->tls_listen_io.fd >= 0) close(w->tls_listen_io.fd);
        if (w->metrics_listen_io.fd >= 0) close(w->metrics_listen_io.fd);
        hr_loop_close(&w->loop);
        hr_conn_release_pool(w);
        hr_free(w->rbuf);
        hr_buf_free(&w->scratch);
        hr_buf_free(&w->zout);
        for (int b = 0; b < 16; b++)
            if (w->deflaters[b]) {
                hr_pmd_deflater_end(w->deflaters[b]);
                hr_free(w->deflaters[b]);
            }
        if (w->inflater) {
            hr_pmd_inflater_end(w->inflater);
            hr_free(w->inflater);
        }
    }
    if (s->sh.nworkers && s->sh.workers[0].static_fd >= 0) close(s->sh.workers[0].static_fd);
    s->sh.nworkers = 0;
    hr_free(s->sh.workers);
    s->sh.workers = NULL;
    hr_emu_registry_stop(s->sh.emu); /* its sessions still call the engine */
    hr_hub_free(s->sh.hub);
    s->sh.hub = NULL;
    hr_emu_registry_free(s->sh.emu);
    s->sh.emu = NULL;
    hr_webhook_stop(s->webhook); /* after the last session ended: its client_disconnected is sent */
    hr_pusher_api_stop(&s->cfg->pusher);
    s->webhook = NULL;
    s->proto.ops.webhook = NULL;
    hr_limits_free(s->sh.limits);
    s->sh.limits = NULL;
    s->proto.ops.admin = NULL;
    hr_admin_free(s->admin);
    s->admin = NULL;
    hr_cidr_set_free(&s->sh.trusted);
    hr_cidr_set_free(&s->sh.metrics_allowed);
    hr_tls_server_free(s->sh.tls);
    s->sh.tls = NULL;
}
