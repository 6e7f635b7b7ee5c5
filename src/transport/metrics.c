/* metrics.c - GET /metrics and its writers (see metrics.h). A scrape reads
 * every worker's counters and histograms (relaxed loads of single-writer
 * values), the engine's, the backend clients' and /proc/self, and writes one
 * block per family: HELP, TYPE, samples. */
#include "transport/metrics.h"
#include "transport/http.h"
#include "transport/worker.h"
#include "backend/webhook.h"
#include "engine/engine.h"
#include "engine/redis_conn.h"
#include "ops/ops.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RELAXED(p) atomic_load_explicit((p), memory_order_relaxed)

static void put(atomic_uint_fast64_t *s, uint64_t v) { atomic_store_explicit(s, v, memory_order_relaxed); }

/* ---- loop health ---- */

void hr_metrics_on_lag(hr_loop *loop, void *data, uint64_t late_ms)
{
    hr_loop_health *lh = &((hr_worker *)data)->health;
    hr_hist_observe(&lh->lag, late_ms * 1000);
    uint64_t now = hr_loop_now(loop);
    if (late_ms >= RELAXED(&lh->recent_ms) || now - RELAXED(&lh->recent_at) > 1000) {
        put(&lh->recent_ms, late_ms);
        put(&lh->recent_at, now);
    }
}

void hr_metrics_turn_end(hr_worker *w)
{
    uint64_t t0 = w->hub->sample_us;
    if (!t0) return;
    w->hub->sample_us = 0;
    uint64_t now = hr_now_us();
    hr_hist_observe(&w->health.publish_to_write, now > t0 ? now - t0 : 0);
}

_Static_assert(HR_CK__N <= 8, "hr_loop_health.handshake holds every hr_conn_kind");

void hr_metrics_handshake(hr_worker *w, int kind, uint64_t us)
{
    if (kind > 0 && kind < HR_CK__N) hr_hist_observe(&w->health.handshake[kind], us);
}

uint64_t hr_metrics_recent_lag_ms(hr_worker *w)
{
    uint64_t now = hr_now_ms(), max = 0;
    for (int i = 0; i < w->sh->nworkers; i++) {
        hr_loop_health *lh = &w->sh->workers[i].health;
        uint64_t at = RELAXED(&lh->recent_at), v = RELAXED(&lh->recent_ms);
        if (now - at <= 1000 && v > max) max = v;
    }
    return max;
}

/* ---- writers ---- */

void hr_metrics_family(hr_buf *b, const char *name, const char *type, const char *help)
{
    hr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void hr_metrics_sample(hr_buf *b, const char *name, const char *labels, uint64_t v)
{
    if (labels && labels[0]) hr_buf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
    else hr_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void hr_metrics_sample1(hr_buf *b, const char *name, const char *key, const char *value, uint64_t v)
{
    hr_buf lab = HR_BUF_INIT;
    hr_metrics_label(&lab, key, value);
    hr_buf_append(&lab, "", 1);
    hr_metrics_sample(b, name, (const char *)lab.data, v);
    hr_buf_free(&lab);
}

void hr_metrics_one(hr_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    hr_metrics_family(b, name, type, help);
    hr_metrics_sample(b, name, NULL, v);
}

void hr_metrics_label(hr_buf *b, const char *key, const char *value)
{
    hr_buf_printf(b, "%s=\"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\\') hr_buf_append_str(b, "\\\\");
        else if (*p == '"') hr_buf_append_str(b, "\\\"");
        else if (*p == '\n') hr_buf_append_str(b, "\\n");
        else hr_buf_append(b, p, 1);
    }
    hr_buf_append(b, "\"", 1);
}

void hr_metrics_hist(hr_buf *b, const char *name, const char *labels, const hr_hist *h, size_t n, size_t stride)
{
    uint64_t bucket[HR_HIST_BUCKETS] = {0}, sum = 0, count = 0;
    for (size_t k = 0; k < n; k++) {
        const hr_hist *x = (const hr_hist *)((const char *)h + k * stride);
        for (int i = 0; i < HR_HIST_BUCKETS; i++) bucket[i] += RELAXED(&x->bucket[i]);
        sum += RELAXED(&x->sum_us);
        count += RELAXED(&x->count);
    }
    const char *sep = labels && labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i < HR_HIST_BUCKETS; i++) {
        cum += bucket[i];
        hr_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels ? labels : "", sep, hr_hist_le[i],
                      (unsigned long long)cum);
    }
    /* the count is read last: a bucket observed meanwhile must not exceed +Inf */
    if (count < cum) count = cum;
    hr_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels ? labels : "", sep, (unsigned long long)count);
    const char *open = labels && labels[0] ? "{" : "", *close = labels && labels[0] ? "}" : "";
    hr_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, open, labels ? labels : "", close, (double)sum / 1e6);
    hr_buf_printf(b, "%s_count%s%s%s %llu\n", name, open, labels ? labels : "", close, (unsigned long long)count);
}

/* ---- the families ---- */

/* process_* from /proc/self at scrape time (Linux; absent elsewhere). */
static void metrics_process(hr_buf *b)
{
    FILE *f = fopen("/proc/self/stat", "r");
    unsigned long ut = 0, st = 0, rss = 0;
    unsigned long long start = 0;
    if (f) {
        char line[1024];
        size_t n = fread(line, 1, sizeof(line) - 1, f);
        fclose(f);
        line[n] = 0;
        const char *p = strrchr(line, ')');
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %llu "
                                 "%*u %lu", &ut, &st, &start, &rss) == 4) {
            double hz = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
            hr_metrics_family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
            hr_buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)(ut + st) / hz);
            hr_metrics_family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
            hr_buf_printf(b, "process_resident_memory_bytes %.0f\n", (double)rss * page);
        }
    }
    uint64_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));) fds += e->d_name[0] != '.';
        closedir(d);
        hr_metrics_one(b, "process_open_fds", "gauge", "Number of open file descriptors.", fds ? fds - 1 : 0);
    }
}

static const char *const refuse_names[HR_REFUSE__N] = {"limit", "token", "origin", "overload", "bad_request"};

/* One per-worker counter of hr_worker_stats summed (off = its offset). */
static uint64_t sum_stat(const hr_shared *sh, size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < sh->nworkers; i++)
        v += RELAXED((atomic_uint_fast64_t *)((char *)&sh->workers[i].stats + off));
    return v;
}
#define SUM(sh, field) sum_stat((sh), offsetof(hr_worker_stats, field))

/* A family with one counter field per sample, at offset off of its struct. */
typedef struct field_family {
    const char *name, *type, *help;
    size_t off;
} field_family;

static void metrics_workers(hr_shared *sh, hr_buf *b)
{
    static const field_family simple[] = {
        {"herald_connections", "gauge", "Open client connections.", offsetof(hr_worker_stats, connections)},
        {"herald_connections_accepted_total", "counter", "Connections accepted.", offsetof(hr_worker_stats, accepted)},
        {"herald_websockets", "gauge", "Open WebSocket connections.", offsetof(hr_worker_stats, websockets)},
        {"herald_http_requests_total", "counter", "HTTP requests parsed.", offsetof(hr_worker_stats, http_requests)},
        {"herald_websocket_messages_received_total", "counter", "WebSocket messages received.",
         offsetof(hr_worker_stats, ws_messages_in)},
        {"herald_websocket_messages_sent_total", "counter", "WebSocket messages sent.",
         offsetof(hr_worker_stats, ws_messages_out)},
        {"herald_bytes_received_total", "counter", "Bytes read from client sockets.",
         offsetof(hr_worker_stats, bytes_in)},
        {"herald_bytes_sent_total", "counter", "Bytes written to client sockets.",
         offsetof(hr_worker_stats, bytes_out)},
        {"herald_queued_bytes", "gauge", "Output queued to client sockets now, bytes (with a small cost per entry).",
         offsetof(hr_worker_stats, queued_bytes)},
        {"herald_log_suppressed_total", "counter", "conn_refused log lines held back by server.log_refused_rate.",
         offsetof(hr_worker_stats, log_suppressed)},
    };
    for (size_t k = 0; k < sizeof(simple) / sizeof(simple[0]); k++)
        hr_metrics_one(b, simple[k].name, simple[k].type, simple[k].help, sum_stat(sh, simple[k].off));
    hr_metrics_family(b, "herald_connections_refused_total", "counter",
                      "Connections and handshakes refused, by reason (limit, token, origin, overload, bad_request).");
    for (int r = 0; r < HR_REFUSE__N; r++)
        hr_metrics_sample1(b, "herald_connections_refused_total", "reason", refuse_names[r], SUM(sh, refused[r]));
    static const char *const close_names[HR_CLOSE__N] = {"1000", "1001", "1xxx_error", "3xxx", "4xxx", "none"};
    hr_metrics_family(b, "herald_websocket_closes_total", "counter",
                      "WebSocket connections ended, by close code class (none: no close handshake).");
    for (int k = 0; k < HR_CLOSE__N; k++)
        hr_metrics_sample1(b, "herald_websocket_closes_total", "code_class", close_names[k], SUM(sh, ws_closed[k]));
    hr_metrics_family(b, "herald_handshake_duration_seconds", "histogram",
                      "From accept to the upgrade or stream answer queued, by transport.");
    static const int hs_kinds[] = {HR_CK_WEBSOCKET, HR_CK_RAW, HR_CK_SSE, HR_CK_HTTP_STREAM};
    for (size_t k = 0; k < sizeof(hs_kinds) / sizeof(hs_kinds[0]); k++) {
        char lab[48];
        snprintf(lab, sizeof(lab), "transport=\"%s\"", hr_conn_kind_names[hs_kinds[k]]);
        hr_metrics_hist(b, "herald_handshake_duration_seconds", lab, &sh->workers[0].health.handshake[hs_kinds[k]],
                        (size_t)sh->nworkers, sizeof(hr_worker));
    }
    hr_metrics_one(b, "herald_workers", "gauge", "Worker threads (event loops).", (uint64_t)sh->nworkers);
    hr_metrics_family(b, "herald_loop_iterations_total", "counter", "Event loop turns, per worker.");
    char lab[32];
    for (int i = 0; i < sh->nworkers; i++) {
        snprintf(lab, sizeof(lab), "worker=\"%d\"", i);
        hr_metrics_sample(b, "herald_loop_iterations_total", lab, RELAXED(&sh->workers[i].loop.iterations));
    }
    hr_metrics_family(b, "herald_loop_lag_seconds", "histogram",
                      "How late due timers ran after their tick, per worker: a blocked or overloaded event loop.");
    for (int i = 0; i < sh->nworkers; i++) {
        snprintf(lab, sizeof(lab), "worker=\"%d\"", i);
        hr_metrics_hist(b, "herald_loop_lag_seconds", lab, &sh->workers[i].health.lag, 1, 0);
    }
}

/* herald_connections_by_transport{transport,tls} and its accepted _total. */
static void metrics_kinds(hr_shared *sh, hr_buf *b)
{
    static const char *const fam[2] = {"herald_connections_by_transport", "herald_connections_by_transport_total"};
    hr_metrics_family(b, fam[0], "gauge", "Open client connections by what they are now (transport) and TLS.");
    for (int pass = 0; pass < 2; pass++) {
        if (pass) hr_metrics_family(b, fam[1], "counter",
                                    "Connections (and long polls) that became this transport, by TLS.");
        for (int k = 1; k < HR_CK__N; k++)
            for (int tls = 0; tls < 2; tls++) {
                char lab[64];
                snprintf(lab, sizeof(lab), "transport=\"%s\",tls=\"%s\"", hr_conn_kind_names[k],
                         tls ? "true" : "false");
                hr_metrics_sample(b, fam[pass], lab, pass ? SUM(sh, accepted_by_kind[k][tls])
                                                         : SUM(sh, open_by_kind[k][tls]));
            }
    }
}

/* One hub counter (hr_whub, off = its offset) summed over the workers. */
static uint64_t sum_hub(const hr_shared *sh, size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < sh->nworkers; i++)
        v += atomic_load_explicit((_Atomic uint64_t *)((char *)sh->workers[i].hub + off), memory_order_relaxed);
    return v;
}
#define HUB(sh, field) sum_hub((sh), offsetof(hr_whub, field))

static void metrics_hub(hr_shared *sh, hr_buf *b)
{
    hr_metrics_family(b, "herald_publications_total", "counter",
                      "Publications accepted for the engine on this node, by source (api, client).");
    hr_metrics_sample(b, "herald_publications_total", "source=\"api\"", HUB(sh, published[HR_ACTOR_SERVER]));
    hr_metrics_sample(b, "herald_publications_total", "source=\"client\"", HUB(sh, published[HR_ACTOR_CLIENT]));
    hr_metrics_one(b, "herald_deliveries_total", "counter",
                   "Publications (and join/leave events) queued to subscribers.", HUB(sh, delivered));
    hr_metrics_one(b, "herald_run_deliveries_total", "counter",
                   "Of those, publications queued as part of a channel's run in one queue entry per subscriber.",
                   HUB(sh, run_delivered));
    hr_metrics_one(b, "herald_encodes_total", "counter",
                   "Encodings made for those deliveries (once per publication, worker and form).", HUB(sh, encoded));
    hr_metrics_one(b, "herald_subscriptions", "gauge", "Subscriptions of the clients on this node now.",
                   HUB(sh, subscriptions));
    hr_metrics_family(b, "herald_publish_to_write_seconds", "histogram",
                      "From a sampled publication entering the hub to the end of the loop turn that wrote it to "
                      "its first subscribers' sockets (metrics.publish_sample).");
    hr_metrics_hist(b, "herald_publish_to_write_seconds", NULL, &sh->workers[0].health.publish_to_write,
                    (size_t)sh->nworkers, sizeof(hr_worker));
    hr_metrics_one(b, "herald_slow_consumer_disconnects_total", "counter",
                   "Clients disconnected as slow consumers (3008) or whose stream ended for it.",
                   HUB(sh, slow_disconnects));
}

/* herald_redis_*: one series per shard, labelled with its address (and
 * the command's name for herald_redis_commands_total). */
static void metrics_redis(hr_engine *e, hr_buf *b)
{
    static const field_family fams[] = {
        {"herald_redis_shard_up", "gauge", "1 while the Redis shard is connected.", offsetof(hr_redis_conn_stats, up)},
        {"herald_redis_errors_total", "counter", "Error replies, and replies lost with the connection.",
         offsetof(hr_redis_conn_stats, errors)},
        {"herald_redis_reconnects_total", "counter", "Connections to the shard made again after a loss.",
         offsetof(hr_redis_conn_stats, reconnects)},
        {"herald_redis_messages_total", "counter", "Publications received through the shard's pub/sub.",
         offsetof(hr_redis_conn_stats, messages)},
        {"herald_redis_message_batches_total", "counter",
         "Hand-overs of received publications to the workers (redis.deliver_batch at most each).",
         offsetof(hr_redis_conn_stats, message_batches)},
    };
    const size_t nf = sizeof(fams) / sizeof(fams[0]);
    const char *addr;
    const hr_redis_conn_stats *st;
    hr_buf lab = HR_BUF_INIT;
    for (size_t k = 0; k < nf + 2; k++) {
        if (k < nf) hr_metrics_family(b, fams[k].name, fams[k].type, fams[k].help);
        else if (k == nf) hr_metrics_family(b, "herald_redis_commands_total", "counter",
                                            "Commands sent to the Redis shard that expect a reply, by name.");
        else hr_metrics_family(b, "herald_redis_command_duration_seconds", "histogram",
                               "From a command queued to its reply, per shard.");
        for (int i = 0; e->vt->shard_stats(e, i, &addr, &st); i++) {
            lab.len = 0;
            hr_metrics_label(&lab, "shard", addr);
            hr_buf_append(&lab, "", 1);
            const char *l = (const char *)lab.data;
            if (k < nf) {
                const atomic_uint_fast64_t *v = (const atomic_uint_fast64_t *)((const char *)st + fams[k].off);
                hr_metrics_sample(b, fams[k].name, l, RELAXED(v));
            } else if (k > nf) {
                hr_metrics_hist(b, "herald_redis_command_duration_seconds", l, &st->latency, 1, 0);
            } else {
                for (int c = 0; c < HR_REDIS_CMD__N; c++) {
                    char cl[600];
                    snprintf(cl, sizeof(cl), "%s,command=\"%s\"", l, hr_redis_cmd_names[c]);
                    hr_metrics_sample(b, "herald_redis_commands_total", cl, RELAXED(&st->commands[c]));
                }
            }
        }
    }
    hr_buf_free(&lab);
}

static void metrics_engine(hr_shared *sh, hr_buf *b)
{
    hr_engine *e = sh->hub->engine;
    if (e && e->vt->stats) {
        hr_engine_stats es = {0};
        e->vt->stats(e, &es);
        hr_metrics_one(b, "herald_channels", "gauge", "Channels the engine holds.", es.channels);
        hr_metrics_one(b, "herald_presence_entries", "gauge", "Presence entries the engine holds.",
                       es.presence_entries);
        hr_metrics_one(b, "herald_history_bytes", "gauge", "Bytes of channel history held.", es.history_bytes);
        hr_metrics_one(b, "herald_history_evictions_total", "counter", "History entries evicted for space.",
                       es.history_evictions);
        hr_metrics_one(b, "herald_disk_bytes", "gauge", "Bytes of the durable log's segments (--data-dir).",
                       es.disk_bytes);
        hr_metrics_one(b, "herald_disk_syncs_total", "counter", "fdatasync calls on the durable log's segments.",
                       es.disk_syncs);
        hr_metrics_one(b, "herald_disk_queued_bytes", "gauge",
                       "Bytes of publications waiting for the durable log's thread to write them.",
                       es.disk_queued_bytes);
        hr_metrics_one(b, "herald_disk_queue_full_total", "counter",
                       "Publishes refused because engine.max_queued_bytes was reached.", es.disk_queue_full);
    }
    if (e && e->vt->shards_down)
        hr_metrics_one(b, "herald_engine_shards_down", "gauge", "Redis shards without a connection now.",
                       (uint64_t)e->vt->shards_down(e));
    if (e && e->vt->shard_stats) metrics_redis(e, b);
    hr_metrics_one(b, "herald_channels_occupied_total", "counter", "Channel occupied transitions.",
                   atomic_load(&sh->hub->occupied));
    hr_metrics_one(b, "herald_channels_vacated_total", "counter", "Channel vacated transitions.",
                   atomic_load(&sh->hub->vacated));
}

bool hr_metrics_proxy_totals(hr_worker *w, hr_proxy_totals *t)
{
    memset(t, 0, sizeof(*t));
    bool any = false;
    for (int i = 0; i < w->sh->nworkers; i++) {
        if (!w->sh->workers[i].proxy) continue;
        any = true;
        const hr_proxy_stats *st = hr_proxy_get_stats(w->sh->workers[i].proxy);
        t->calls += RELAXED(&st->calls);
        t->inflight += RELAXED(&st->inflight);
        for (int f = 1; f < HR_PROXY_F_COUNT; f++) t->failures[f] += RELAXED(&st->failures[f]);
    }
    return any;
}

/* herald_proxy_* (backend proxy hooks, summed over workers) and herald_webhook_*. */
static void metrics_backend(hr_worker *w, hr_buf *b)
{
    hr_proxy_totals t;
    if (hr_metrics_proxy_totals(w, &t)) {
        hr_metrics_one(b, "herald_proxy_calls_total", "counter", "Backend proxy hook calls started.", t.calls);
        hr_metrics_one(b, "herald_proxy_inflight", "gauge", "Backend proxy hook calls waiting for an answer.",
                       t.inflight);
        hr_metrics_family(b, "herald_proxy_failures_total", "counter", "Backend proxy hook calls failed, by kind.");
        for (int f = 1; f < HR_PROXY_F_COUNT; f++)
            hr_metrics_sample1(b, "herald_proxy_failures_total", "kind", hr_proxy_fail_name((hr_proxy_fail)f),
                               t.failures[f]);
    }
    hr_webhook *wh = w->proto->ops.webhook;
    if (!wh) return;
    hr_webhook_stats st;
    hr_webhook_get_stats(wh, &st);
    hr_metrics_one(b, "herald_webhook_queued", "gauge", "Webhook events waiting or being sent.", st.queued);
    hr_metrics_one(b, "herald_webhook_queued_bytes", "gauge", "JSON bytes of the queued webhook events.",
                   st.queued_bytes);
    hr_metrics_one(b, "herald_webhook_sent_total", "counter", "Webhook events the backend accepted.", st.sent);
    hr_metrics_one(b, "herald_webhook_failed_attempts_total", "counter", "Webhook POSTs that failed and were retried.",
                   st.failed_attempts);
    hr_metrics_one(b, "herald_webhook_dropped_total", "counter", "Webhook events dropped from a full queue.",
                   st.dropped);
    hr_metrics_one(b, "herald_webhook_rejected_total", "counter", "Webhook events the backend refused (4xx).",
                   st.rejected);
}

void hr_metrics_write(hr_worker *w, hr_buf *b)
{
    hr_shared *sh = w->sh;
    metrics_workers(sh, b);
    metrics_kinds(sh, b);
    metrics_hub(sh, b);
    metrics_engine(sh, b);
    metrics_backend(w, b);
    hr_metrics_family(b, "process_start_time_seconds", "gauge",
                      "Start time of the process since unix epoch in seconds.");
    hr_buf_printf(b, "process_start_time_seconds %.3f\n",
                  (double)time(NULL) - (double)(hr_now_ms() - sh->started_ms) / 1000.0);
    metrics_process(b);
    hr_metrics_family(b, "herald_build_info", "gauge", "Herald's version.");
    hr_buf_printf(b, "herald_build_info{version=\"" HERALD_VERSION "\"} 1\n");
}

/* ---- access ---- */

/* The socket's own peer (never a forwarded or PROXY header's address) is in metrics.allowed_ips. */
static bool peer_allowed(hr_conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(hr_conn_socket(c), (struct sockaddr *)&ss, &len) != 0) return false;
    if (ss.ss_family == AF_UNIX) return true;
    hr_ipaddr a;
    return hr_ipaddr_from_sockaddr((struct sockaddr *)&ss, len, &a) == 0 &&
           hr_cidr_set_match(&c->w->sh->metrics_allowed, &a);
}

static bool token_ok(const char *want, const hr_http_request *req)
{
    if (!want || !want[0]) return true;
    const hr_http_header *h = hr_http_find_header(req, "authorization");
    if (!h || h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0) return false;
    return hr_ct_equal(h->value + 7, h->value_len - 7, want, strlen(want));
}

void hr_metrics_serve(hr_conn *c, const hr_http_request *req, bool get, bool head, bool close)
{
    if (!get && !head) {
        hr_http_respond_error(c, 405, "Allow: GET, HEAD\r\n", "method not allowed", close);
        return;
    }
    if (!peer_allowed(c)) {
        hr_http_respond_error(c, 403, NULL, "this address may not read metrics (metrics.allowed_ips)", close);
        return;
    }
    if (!token_ok(c->w->opts->metrics_token, req)) {
        hr_http_respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"metrics\"\r\n",
                              "metrics need Authorization: Bearer with metrics.token", close);
        return;
    }
    hr_buf b = HR_BUF_INIT;
    hr_metrics_write(c->w, &b);
    hr_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n", b.data, b.len,
                    head, close);
    hr_buf_free(&b);
}
