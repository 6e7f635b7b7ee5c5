/* metrics.h - GET /metrics (the Prometheus text format 0.0.4, exposition
 * documented in docs/operations.md) and the pieces it is written with:
 * per-worker histograms, counters and gauges with labels, label-value
 * escaping, and who may scrape (metrics.allowed_ips, metrics.token).
 *
 * Every number is a per-worker one (one writer: its worker, relaxed stores)
 * summed over the workers at scrape time, so nothing on the delivery path
 * takes a shared lock or an atomic read-modify-write. The loop's health
 * comes from core (hr_loop.iterations, hr_loop.on_lag) and is kept here:
 * herald_loop_lag_seconds per worker, and the recent lag /ready reads. */
#ifndef HERALD_TRANSPORT_METRICS_H
#define HERALD_TRANSPORT_METRICS_H

#include "backend/proxy.h"
#include "codec/http1.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/hist.h"

#include <stdatomic.h>

/* A worker's recent loop lag, for /ready: the largest lateness seen within
 * the last second (replaced by any newer value once older than that). */
typedef struct hr_loop_health {
    hr_hist lag;                      /* herald_loop_lag_seconds */
    hr_hist publish_to_write;         /* herald_publish_to_write_seconds (sampled) */
    hr_hist handshake[8];             /* herald_handshake_duration_seconds by hr_conn_kind (HR_CK__N) */
    atomic_uint_fast64_t recent_ms;   /* largest recent lateness */
    atomic_uint_fast64_t recent_at;   /* monotonic ms it was seen at */
} hr_loop_health;

struct hr_conn;
struct hr_worker;
struct hr_loop;

/* The worker loop's on_lag callback (hr_loop.on_lag; data is the hr_worker). */
void hr_metrics_on_lag(struct hr_loop *loop, void *data, uint64_t late_ms);
/* At the end of a loop turn, once its writes are done: observe the
 * publish-to-write time of the oldest sampled publication the turn fanned
 * out (hr_whub.sample_us), if any. */
void hr_metrics_turn_end(struct hr_worker *w);
/* A handshake of transport kind (hr_conn_kind) took us microseconds. */
void hr_metrics_handshake(struct hr_worker *w, int kind, uint64_t us);
/* The largest recent loop lag of any worker, in ms (0 when none is recent). */
uint64_t hr_metrics_recent_lag_ms(struct hr_worker *w);

/* Write the exposition of every metric into b. */
void hr_metrics_write(struct hr_worker *w, hr_buf *b);

/* Writers of one family: HELP and TYPE once, then its samples. Label sets
 * are given pre-formatted (`worker="0"`), values through hr_metrics_label
 * when they are not constants. */
void hr_metrics_family(hr_buf *b, const char *name, const char *type, const char *help);
void hr_metrics_sample(hr_buf *b, const char *name, const char *labels, uint64_t v);
/* A sample with one label, its value escaped (hr_metrics_label). */
void hr_metrics_sample1(hr_buf *b, const char *name, const char *key, const char *value, uint64_t v);
/* A one-sample family (no labels). */
void hr_metrics_one(hr_buf *b, const char *name, const char *type, const char *help, uint64_t v);
/* Append `key="value"` with value escaped per the exposition format (\\, \", \n). */
void hr_metrics_label(hr_buf *b, const char *key, const char *value);
/* A histogram's _bucket/_sum/_count samples for one label set, summed over
 * n histograms (one per worker, at stride bytes apart). */
void hr_metrics_hist(hr_buf *b, const char *name, const char *labels, const hr_hist *h, size_t n, size_t stride);

/* The backend proxy hooks' counters summed over the workers (/metrics,
 * /api/info); false when no worker has a proxy client. */
typedef struct hr_proxy_totals {
    uint64_t calls, inflight, failures[HR_PROXY_F_COUNT];
} hr_proxy_totals;
bool hr_metrics_proxy_totals(struct hr_worker *w, hr_proxy_totals *out);

/* GET /metrics: method, access (metrics.allowed_ips on the socket's peer,
 * then metrics.token), then the exposition. */
void hr_metrics_serve(struct hr_conn *c, const hr_http_request *req, bool get, bool head, bool close);

#endif
