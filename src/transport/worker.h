/* worker.h - the worker context the transports run in: one per worker
 * thread, owned and filled by the server (server/server.c), used by every
 * transport through c->w. It holds what the transports need from their
 * worker — the loop, the connection lists, the shared read buffer and
 * scratch buffers, the shared zlib streams, the statistics counters, the
 * static directory, this worker's part of the hub, its backend proxy client
 * (hr_proxy: one HTTP client on the worker's loop) — and, through hr_shared,
 * what all workers of the process share (the hub, the abuse limits, the HTTP
 * emulation registry, the TLS context, the API key). The layers' options
 * come as the transports' own (transport/opts.h) and the protocol layer's
 * (protocol/opts.h), never as the server's config.
 *
 * The thread, listener, accept back-off and drain fields are the server's
 * (server.c drives them); they live here so that a worker is one struct and
 * a connection reaches its worker in one hop. */
#ifndef HERALD_TRANSPORT_WORKER_H
#define HERALD_TRANSPORT_WORKER_H

#include "backend/proxy.h"
#include "core/buf.h"
#include "core/cidr.h"
#include "core/loop.h"
#include "hub/hub.h"
#include "protocol/opts.h"
#include "transport/conn.h"
#include "transport/metrics.h"
#include "transport/opts.h"

#include <pthread.h>
#include <stdatomic.h>
#include <zlib.h>

#define HR_READ_BUF_SIZE (64 * 1024)
/* Size classes of the per-worker pool of drained output rings (conn.c). */
#define HR_RING_CLASSES 6

typedef struct hr_worker hr_worker;

/* Why a connection or handshake was refused (metrics label "reason", log field "reason"). */
typedef enum hr_refuse_reason {
    HR_REFUSE_LIMIT,       /* "limit": a configured limit (connections, per-IP, rate, ban) */
    HR_REFUSE_TOKEN,       /* "token": missing, bad or expired token; connect hook said no */
    HR_REFUSE_ORIGIN,      /* "origin": Origin not allowed */
    HR_REFUSE_OVERLOAD,    /* "overload": out of descriptors or memory, draining, backend down */
    HR_REFUSE_BAD_REQUEST, /* "bad_request": malformed handshake or request */
    HR_REFUSE__N
} hr_refuse_reason;

/* How a WebSocket ended, by its close code (metrics label "code_class"). */
typedef enum hr_close_class {
    HR_CLOSE_NORMAL,      /* "1000" */
    HR_CLOSE_GOING_AWAY,  /* "1001" */
    HR_CLOSE_ERROR,       /* "1xxx_error": another 1xxx code (protocol error, too big, ...) */
    HR_CLOSE_SERVER,      /* "3xxx": Herald's disconnect codes (3008 slow consumer, ...) */
    HR_CLOSE_APP,         /* "4xxx": application codes */
    HR_CLOSE_NONE,        /* "none": no close handshake (1006: the connection dropped) */
    HR_CLOSE__N
} hr_close_class;

typedef struct hr_worker_stats {
    atomic_uint_fast64_t connections;      /* open now */
    atomic_uint_fast64_t accepted;         /* total */
    atomic_uint_fast64_t websockets;       /* open now */
    atomic_uint_fast64_t http_requests;    /* total */
    atomic_uint_fast64_t ws_messages_in;   /* total */
    atomic_uint_fast64_t ws_messages_out;  /* total */
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
    atomic_uint_fast64_t log_suppressed;   /* total: conn_refused lines over server.log_refused_rate */
    atomic_uint_fast64_t open_by_kind[HR_CK__N][2];     /* now, by hr_conn_kind and TLS (hr_conn_set_kind) */
    atomic_uint_fast64_t accepted_by_kind[HR_CK__N][2]; /* connections that became that kind */
    atomic_uint_fast64_t queued_bytes;                  /* output queued now: bytes + per-entry costs (conn.c) */
    atomic_uint_fast64_t ws_closed[HR_CLOSE__N];        /* WebSockets ended, by hr_close_class */
    atomic_uint_fast64_t refused[HR_REFUSE__N];
} hr_worker_stats;

/* Each counter has one writer, its worker (other threads only read it), so
 * an update is a relaxed load + store: no locked read-modify-write on the
 * per-delivery path (ws_messages_out, bytes_out). */
static inline void hr_stat_add(atomic_uint_fast64_t *s, uint64_t n)
{
    atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void hr_stat_sub(atomic_uint_fast64_t *s, uint64_t n) { hr_stat_add(s, (uint64_t)0 - n); }

/* What the workers of one process share (part of the server, hr_server.sh). */
typedef struct hr_shared {
    hr_worker *workers;
    int nworkers;
    char bound[128];               /* printable listen address */
    uint64_t started_ms;
    atomic_uint_fast64_t total_connections;
    hr_hub *hub;
    struct hr_limits *limits;      /* abuse limits shared by the workers (ops/limits.c) */
    struct hr_emu_registry *emu;   /* HTTP emulation sessions (transport/emulation.h) */
    struct hr_tls_server *tls;     /* TLS context (transport/tls.h), NULL without tls.cert */
    hr_cidr_set trusted;           /* server.trusted_proxies, parsed (transport/proxy.c) */
    char api_key[256];             /* effective API key (configured or generated) */
    hr_cidr_set metrics_allowed;   /* metrics.allowed_ips, parsed */
} hr_shared;

struct hr_worker {
    hr_shared *sh;
    const hr_transport_opts *opts; /* the transports' options (the server's) */
    const hr_proto_opts *proto;    /* the protocol layer's options (the server's) */
    int id;
    pthread_t thread;
    hr_loop loop;
    hr_io listen_io;
    hr_io tls_listen_io;           /* tls.listen's socket (fd -1 when none) */
    hr_io metrics_listen_io;       /* metrics.listen's socket (fd -1 when none) */
    hr_conn *conns;                /* all open connections */
    size_t nconns;
    hr_conn *flush_list;
    hr_conn *ready_list;
    hr_conn *free_list;            /* closed this turn, freed at turn end */
    void *ring_pool[HR_RING_CLASSES]; /* drained output rings by size class, kept for reuse (conn.c) */
    size_t ring_pool_bytes;        /* what they hold in all */
    uint8_t *rbuf;                 /* shared read buffer, HR_READ_BUF_SIZE */
    hr_buf scratch;                /* shared scratch: decompressed incoming messages */
    hr_buf zout;                   /* shared scratch: compressed outgoing payloads */
    z_stream *deflaters[16];       /* shared no-context-takeover compressors by window bits */
    z_stream *inflater;            /* shared no-context-takeover decompressor */
    size_t ws_partial_bytes;       /* unfinished WebSocket messages' memory (websocket.max_partial_bytes) */
    int static_fd;                 /* O_PATH fd of the static dir, -1 if none */
    bool draining;
    bool accepting;
    bool accept_paused;            /* out of descriptors: listeners out of epoll until accept_timer */
    hr_timer drain_timer;
    hr_timer accept_timer;         /* server.accept_backoff */
    uint64_t accept_warned_ms;     /* loop time of the last "accept: out of descriptors" warning */
    uint64_t accept_failures;      /* such failures since that warning */
    hr_whub *hub;                  /* this worker's part of the hub */
    hr_proxy *proxy;               /* the backend proxy hooks on this loop (backend/proxy.h); NULL when no
                                      proxy URL is set */
    /* conn_refused lines (hr_worker_refused): a token bucket on the loop clock, in thousandths of a line */
    uint64_t refused_log_ms;       /* loop time of the last refill */
    uint64_t refused_log_tokens;
    uint64_t refused_log_pending;  /* lines suppressed since the last one written */
    uint64_t refused_log_noted_ms; /* loop time of the last log_suppressed line */
    hr_worker_stats stats;
    hr_loop_health health;         /* loop lag (transport/metrics.h) */
};

/* The worker's shared no-context-takeover zlib streams, made on first use
 * (NULL when zlib cannot allocate one). */
z_stream *hr_worker_deflater(hr_worker *w, int window_bits);
z_stream *hr_worker_inflater(hr_worker *w);

/* A zeroed per-connection object (a connection, its WebSocket state) from
 * the worker's pools (its hub part's, core/pool.h), and back; from malloc
 * when the worker has no hub part (unit tests). */
static inline void *hr_worker_obj_alloc(hr_worker *w, size_t size)
{
    return w->hub ? hr_pool_alloc(&w->hub->pools, size) : hr_calloc(1, size);
}
static inline void hr_worker_obj_free(hr_worker *w, void *p)
{
    if (w->hub) hr_pool_free(&w->hub->pools, p);
    else hr_free(p);
}

/* The reason an HTTP status (or close code) of a refusal means: 401 and 403
 * token, 429 limit, 5xx overload, anything else bad_request. */
hr_refuse_reason hr_refuse_reason_of(int status);

/* The name of a refusal reason ("limit", "token", ...). */
const char *hr_refuse_reason_name(hr_refuse_reason r);

/* Count a refusal in stats.refused[r] without a log line. */
static inline void hr_worker_count_refused(hr_worker *w, hr_refuse_reason r)
{
    hr_stat_add(&w->stats.refused[(unsigned)r < HR_REFUSE__N ? r : HR_REFUSE_BAD_REQUEST], 1);
}

/* A connection or handshake refused: count it in stats.refused[r] and write
 * the access-log line (event conn_refused, level info, at most
 * server.log_refused_rate a second on this worker). c: the connection
 * (NULL when refused before one was made); req: its request when one was
 * read (path and User-Agent are logged; the remote address is the client's
 * as proxy.c resolves it); transport: "http", "ws", "ws_raw", "sse",
 * "stream", "poll", "accept"; status: the HTTP status or the WebSocket
 * close code (0 = none); detail: short prose, or NULL. */
struct hr_http_request;
void hr_worker_refused(hr_worker *w, hr_refuse_reason r, hr_conn *c, const struct hr_http_request *req,
                       const char *transport, int status, const char *detail);

#endif
