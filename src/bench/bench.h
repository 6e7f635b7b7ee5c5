/* bench.h - `herald bench`: a load generator for Herald and its peers
 * (nchan, a Node `ws` server), built on Herald's own event loop.
 *
 * It opens --subscribers WebSocket (or SSE) connections spread round-robin
 * over --channels channels at --connect-rate, publishes at --publish-rate
 * through the HTTP API (or WebSocket), and measures connections/s,
 * handshake latency, delivered messages/s, publish-to-receive latency
 * percentiles (timestamps carried in the payload, see parse.h), loss,
 * duplicates and reorders, and the server's RSS and CPU (--server-pid).
 * The command line and the JSON output are a contract (docs/benchmarks.md):
 * scripts comparing servers depend on them.
 *
 * Files: opts.c (command line), run.c (threads, connections, accounting),
 * report.c (JSON, summary, /proc sampling), hist.c (latency histogram),
 * seq.c (loss / duplicate / reorder tracking), parse.c (payload, HTTP
 * responses, SSE). */
#ifndef HERALD_BENCH_BENCH_H
#define HERALD_BENCH_BENCH_H

#include "core/common.h"

#include <stdio.h>

/* CEILING: bench/ceiling.c (herald-ceiling), ws-node's URL scheme */
enum hr_bench_server { HR_BENCH_HERALD = 0, HR_BENCH_NCHAN, HR_BENCH_WS_NODE, HR_BENCH_CEILING };
/* PUSHER: /app/bench?protocol=7 (docs/pusher.md; the server needs a Pusher app
 * with key and app_id "bench"), channel PREFIX-i published as $pusher-bench:PREFIX-i */
enum hr_bench_transport { HR_BENCH_WS = 0, HR_BENCH_SSE, HR_BENCH_PUSHER };
#define HR_BENCH_PUSHER_APP "bench"
static inline const char *hr_bench_transport_name(int t)
{
    return t == HR_BENCH_SSE ? "sse" : t == HR_BENCH_PUSHER ? "pusher" : "ws";
}
enum hr_bench_via { HR_BENCH_VIA_API = 0, HR_BENCH_VIA_WS };

typedef struct hr_bench_opts {
    int server;               /* enum hr_bench_server */
    char host[256];
    int port;
    char api_key[512];
    int transport;            /* enum hr_bench_transport */
    uint64_t subscribers;
    uint64_t channels;
    char prefix[128];         /* channel names: PREFIX-i (Herald), PREFIX_i (peers: \w+ only) */
    double connect_rate;      /* connections per second, 0 = as fast as possible */
    uint32_t source_ips;      /* 127.0.0.1 .. 127.0.0.N */
    double publish_rate;      /* publications per second in all, 0 = none */
    uint32_t publishers;      /* HTTP publisher connections (API mode) */
    uint64_t payload_bytes;
    int publish_via;          /* enum hr_bench_via */
    double duration, warmup;  /* seconds */
    double churn;             /* subscribers closed and reopened per second */
    int64_t server_pid;       /* 0 = none */
    uint32_t threads;
    char json_path[1024];     /* --json FILE ("" = none) */
    bool json_stdout;         /* --json - (both may be given) */
    bool quiet;
    bool tls;                 /* every connection over TLS (full handshakes, certificate not verified) */
    char scenario[64];
    double timeout;           /* 0 = automatic */
    /* beyond the contract */
    uint32_t pipeline;        /* publish requests in flight per API connection */
    uint32_t connect_concurrency; /* handshakes in flight at once (all threads) */
    double drain;             /* after the window: longest wait for late deliveries */
} hr_bench_opts;

void hr_bench_opts_defaults(hr_bench_opts *o);
/* Parse argv[first..argc). Returns 0, 2 (usage error: message in err), or
 * 3 (--help was given: the caller prints the usage and exits 0). */
int hr_bench_parse_args(hr_bench_opts *o, int argc, char **argv, int first, char *err, size_t errlen);
void hr_bench_usage(FILE *f);
/* The effective timeout in seconds (--timeout, or the automatic one). */
double hr_bench_timeout(const hr_bench_opts *o);
const char *hr_bench_server_name(int server);

/* `herald bench ...`: argv[0] is "bench". Returns the exit status (0 run
 * completed, 1 run failed, 2 bad usage). */
int hr_bench_main(int argc, char **argv);

#endif
