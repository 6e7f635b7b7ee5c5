/* server.h - the server process: listeners, worker threads, signals and
 * graceful drain. Each worker owns an epoll loop, a SO_REUSEPORT listening
 * socket, its connections and timers; nothing on the per-connection path is
 * shared between workers, so nothing there takes a lock. */
#ifndef HERALD_SERVER_SERVER_H
#define HERALD_SERVER_SERVER_H

#include "core/buf.h"
#include "core/cidr.h"
#include "core/loop.h"
#include "server/config.h"
#include "hub/hub.h"
#include "protocol/opts.h"
#include "transport/conn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <zlib.h>

#define HR_READ_BUF_SIZE (64 * 1024)

typedef struct hr_server hr_server;

typedef struct hr_worker_stats {
    atomic_uint_fast64_t connections;      /* open now */
    atomic_uint_fast64_t accepted;         /* total */
    atomic_uint_fast64_t websockets;       /* open now */
    atomic_uint_fast64_t http_requests;    /* total */
    atomic_uint_fast64_t ws_messages_in;   /* total */
    atomic_uint_fast64_t ws_messages_out;  /* total */
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
} hr_worker_stats;

/* Each counter has one writer, its worker (other threads only read it), so
 * an update is a relaxed load + store: no locked read-modify-write on the
 * per-delivery path (ws_messages_out, bytes_out). */
static inline void hr_stat_add(atomic_uint_fast64_t *s, uint64_t n)
{
    atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void hr_stat_sub(atomic_uint_fast64_t *s, uint64_t n) { hr_stat_add(s, (uint64_t)0 - n); }

typedef struct hr_worker {
    hr_server *srv;
    const hr_config *cfg;
    const hr_proto_opts *proto;    /* the protocol layer's options (the server's) */
    int id;
    pthread_t thread;
    hr_loop loop;
    hr_io listen_io;
    hr_io tls_listen_io;           /* tls.listen's socket (fd -1 when none) */
    hr_conn *conns;                /* all open connections */
    size_t nconns;
    hr_conn *flush_list;
    hr_conn *ready_list;
    hr_conn *free_list;            /* closed this turn, freed at turn end */
    void *ring_pool;               /* drained minimum-size output rings, kept for reuse (conn.c) */
    uint32_t ring_pool_n;
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
    hr_worker_stats stats;
} hr_worker;

struct hr_server {
    hr_config *cfg;
    hr_proto_opts proto;           /* protocol and operations options, from cfg (server/opts.c) */
    hr_worker *workers;
    int nworkers;
    int port;                      /* the bound port (useful with :0) */
    char bound[128];               /* printable address */
    bool listen_tls;               /* server.listen speaks TLS (no separate tls.listen) */
    int tls_port;                  /* tls.listen's bound port, 0 if none */
    char tls_bound[128];
    struct hr_tls_server *tls;     /* TLS context (transport/tls.h), NULL without tls.cert */
    atomic_int running_workers;
    atomic_int drain_requested;    /* 1 = drain, 2 = force */
    atomic_uint_fast64_t total_connections;
    hr_hub *hub;
    struct hr_limits *limits;      /* abuse limits shared by the workers (limits.c) */
    struct hr_emu_registry *emu;   /* HTTP emulation sessions (transport/emulation.h) */
    hr_cidr_set trusted;           /* server.trusted_proxies, parsed (transport/proxy.c) */
    char api_key[256];             /* effective API key (configured or generated) */
    uint64_t started_ms;
};

/* Bind listeners and start workers. Returns 0, or a negative error with a
 * message in err (exit code 1: port in use; 2: bad listen address). */
int hr_server_start(hr_server *s, hr_config *cfg, char *err, size_t errlen);
/* Block until SIGINT/SIGTERM, drain, join the workers. Returns the exit code. */
int hr_server_run_until_signal(hr_server *s);
/* Ask every worker to drain (thread-safe). force: drop connections now. */
void hr_server_request_drain(hr_server *s, bool force);
void hr_server_join(hr_server *s);
void hr_server_free(hr_server *s);

/* Worker helpers for transports. */
z_stream *hr_worker_deflater(hr_worker *w, int window_bits);
z_stream *hr_worker_inflater(hr_worker *w);

#endif
