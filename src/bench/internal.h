/* internal.h - `herald bench` state shared by run.c and report.c.
 *
 * Threads: the main thread is the controller (phases, /proc sampling,
 * progress lines, the report); --threads N worker threads each run one
 * hr_loop with their share of the subscribers (subscriber i on thread
 * i % N) and publishers, and a 1 ms timerfd that paces connects,
 * publications and churn. Workers own their connections and counters; the
 * controller sees them only through the atomics in bthread, and reads the
 * rest after joining the threads.
 *
 * Sequence numbers: each channel has exactly one publisher (API publisher
 * j owns channels c with c % P == j; in WebSocket mode channel c's
 * publisher is its first subscriber, or a dedicated connection for nchan),
 * so a channel's sequence is assigned on one thread and published in order
 * on one connection. The window a subscriber is held to is counted in
 * sequence numbers:
 *
 *   ms_seq   first sequence published in the measured window (set by the
 *            publisher before it builds that message; UINT64_MAX before);
 *   me_seq   the channel's next sequence when its publisher stopped at the
 *            end of the window (UINT64_MAX before);
 *   first    the channel's next sequence when this connection's handshake
 *            completed (a publication numbered later was published after
 *            the server accepted the subscription, so it must arrive).
 *
 * A connection (a "session": churn makes several per subscriber) is owed
 * every sequence in [max(first, ms_seq), end), where end is me_seq for a
 * connection alive at the end, the next sequence at the time of a close
 * the server made (or a failure), and highest-received + 1 for a
 * connection the bench closed itself (churn): messages in flight when we
 * hang up are not the server's loss. */
#ifndef HERALD_BENCH_INTERNAL_H
#define HERALD_BENCH_INTERNAL_H

#include "bench/bench.h"
#include "bench/hist.h"
#include "bench/seq.h"
#include "codec/http1.h"
#include "core/buf.h"
#include "core/loop.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define BENCH_MAX_ERRS 16        /* distinct error messages kept per thread */
#define BENCH_ERR_LEN 200
#define BENCH_HANDSHAKE_TIMEOUT_MS 15000u /* connect start -> 101 / 200 head, else a failed attempt */

enum bench_phase { PH_RAMP = 0, PH_SETTLE, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_STOP };
enum bconn_kind { K_SUB = 1, K_PUB_HTTP, K_PUB_WS };
enum bconn_state { CS_IDLE = 0, CS_CONNECTING, CS_HANDSHAKE, CS_READY, CS_CLOSED };

typedef struct bthread bthread;
typedef struct bench bench;

typedef struct bchan {
    _Atomic uint64_t next_seq;
    _Atomic uint64_t ms_seq;
    _Atomic uint64_t me_seq;
    char *name;
    size_t name_len;
    bool has_pub;            /* some publisher owns it (else nothing is owed) */
} bchan;

typedef struct bconn {
    hr_io io;
    bthread *th;
    uint8_t kind, state;
    bool want_out;
    bool publishing;         /* a subscriber that also publishes for its channel (Herald, ws mode) */
    bool in_frag;
    uint8_t frag_op;
    bool chunked;            /* SSE body in chunked transfer coding */
    bool reopening;          /* churn: this handshake is a reconnect */
    bool ramp_counted;       /* the initial attempt finished (ok or failed) */
    uint32_t idx;            /* subscriber or publisher index */
    uint32_t chan;
    uint32_t src;            /* source address index */
    uint64_t t_start;        /* ns: connect() started */
    hr_timer hs_timer;       /* handshake deadline (BENCH_HANDSHAKE_TIMEOUT_MS) */
    char key[25];            /* Sec-WebSocket-Key */
    hr_buf in, out, frag;
    hr_http_chunked *chunk;  /* SSE with Transfer-Encoding: chunked */
    SSL *ssl;                /* --tls: the session (NULL without TLS) */
    /* session accounting (subscribers) */
    hr_bench_seq seq;        /* what this connection received (seq.h) */
} bconn;

typedef struct bpub {
    bconn own;               /* its own connection (API, or nchan's /pub WebSocket) */
    bconn *conn;             /* &own, or the publishing subscriber's connection */
    bthread *th;
    uint32_t idx;
    uint32_t *chans;
    uint32_t nchans, rr;
    double rate;             /* publications per second */
    double phase;            /* schedule offset in periods (j / publishers) */
    uint64_t sent;           /* built since publishing started (the schedule) */
    uint32_t inflight;       /* API requests without a response */
    uint64_t ok, errors;     /* API responses: 2xx / other */
    bool window_started, stopped;
    uint64_t retry_at;       /* ns: reconnect the own connection after a failure */
    bool settled;            /* first connection attempt finished */
} bpub;

typedef struct bench_err {
    char msg[BENCH_ERR_LEN];
    uint64_t count;
} bench_err;

struct bthread {
    bench *b;
    uint32_t id;
    pthread_t tid;
    hr_loop loop;
    hr_io tick;
    uint8_t *rbuf;
    hr_buf scratch;          /* SSE multi-line data */
    char *pbuf;              /* payload being built */
    size_t pbuf_cap;
    uint64_t rng;
    uint64_t now;            /* ns, time of the current read */
    /* subscribers: global indices id, id + T, id + 2T, ... */
    uint64_t nsubs;
    uint64_t ramp_started, ramp_ok, ramp_failed;
    uint64_t handshakes;     /* in flight */
    double ramp_rate;
    uint32_t conc;           /* handshakes in flight allowed */
    bpub **pubs;
    uint32_t npubs;
    bool pubs_started;
    double churn_rate;
    uint64_t churn_closed, churn_reopened, churn_failed, churn_reopened_window;
    /* counts */
    uint64_t received, delivered, delivered_in_time, expected, dups, reordered, unparsed, misrouted;
    uint64_t closed_by_server, open_subs;
    hr_hist lat, hs, ival;
    bench_err errs[BENCH_MAX_ERRS];
    uint32_t nerrs;
    uint64_t errs_other;
    uint64_t next_second, next_drain_check;
    bool fast_tick;          /* 1 ms ticks (pacing) rather than 20 ms (idle) */
    bool busy;               /* it has publishers with a rate, or churn */
    /* read by the controller */
    _Atomic uint64_t a_received, a_delivered, a_ramp_done, a_ramp_ok, a_open, a_p99, a_pub_sent;
    _Atomic uint32_t a_pubs_settled;
    _Atomic int a_drained;
};

struct bench {
    hr_bench_opts o;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool bind_source;
    char hosthdr[300];
    SSL_CTX *tls;            /* --tls: the client context, shared by the threads */
    bchan *chans;
    bconn *subs;
    bpub *pubs;
    uint32_t npubs;
    uint32_t own_pub_conns;  /* publishers with their own connection */
    bthread *th;
    _Atomic int phase;
    /* ns, CLOCK_MONOTONIC; written by the controller before the phase that uses them */
    uint64_t t_start, t_ramp_end, t_ws, t_ms, t_me, t_drain, t_end;
    /* controller-side results */
    int64_t rss_before, rss_connected, rss_end;  /* -1 = not sampled */
    double srv_cpu0, srv_cpu1, self_cpu0, self_cpu1, self_cpu_total;
    double srv_cpu_start, srv_cpu_connected; /* server CPU s before the first connection and with all connected */
    uint32_t srv_procs;
    bool timed_out, interrupted;
    char failure[400];       /* why the run failed ("" = completed) */
};

/* run.c */
uint64_t bench_now_ns(void);
/* report.c */
int64_t bench_proc_rss(int64_t pid, uint32_t *nprocs);       /* bytes over pid and its descendants, -1 if gone */
double bench_proc_cpu(int64_t pid);                           /* seconds (user + system), -1 if gone */
double bench_self_cpu(void);
int bench_report(bench *b, hr_hist *lat, hr_hist *hs);       /* prints; returns the exit status */

#endif
