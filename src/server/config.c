/* config.c - the option table, defaults, and loaders for the config file
 * (a TOML subset), HERALD_* environment variables and flags.
 *
 * Why not a library: Debian ships no C TOML parser, jansson/JSON cannot report
 * the line of a semantic error, and the subset we need (sections, strings,
 * integers, booleans, string arrays) is ~300 lines that report every error
 * with file, line and key. */
#include "server/config.h"
#include "hub/channel_name.h"
#include "core/log.h"
#include "core/buf.h"
#include "core/cidr.h"
#include "backend/webhook.h"
#include "engine/engine.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#define OFF(f) offsetof(hr_config, f)
#define KiB 1024LL
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)
#define DAY_MS (86400LL * 1000)
#define PERMS_SUBSCRIBE ((1 << HR_PERM_ANYONE) | (1 << HR_PERM_AUTHENTICATED) | (1 << HR_PERM_TOKEN))
#define PERMS_OTHER ((1 << HR_PERM_ANYONE) | (1 << HR_PERM_AUTHENTICATED) | (1 << HR_PERM_SUBSCRIBERS) | (1 << HR_PERM_NONE))

const hr_option hr_options[] = {
    {"server.listen", HR_OPT_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, "HERALD_LISTEN", "--listen",
     "Address to listen on: HOST:PORT, [IPv6]:PORT or :PORT (all interfaces)."},
    {"server.workers", HR_OPT_INT, OFF(workers), "0", 0, 1024, "HERALD_WORKERS", "--workers",
     "Worker threads, each with its own event loop and SO_REUSEPORT listener. 0 = one per CPU core."},
    {"server.static_dir", HR_OPT_STRING, OFF(static_dir), "", 0, 0, "HERALD_STATIC_DIR", "--static",
     "Directory served for GET requests that match no endpoint (demo pages). Empty = none."},
    {"server.static_follow_symlinks", HR_OPT_BOOL, OFF(static_follow_symlinks), "false", 0, 0, NULL, NULL,
     "Serve files through symbolic links that lead out of static_dir. false = a path that resolves outside "
     "the directory (a link to /etc, an absolute link) answers 404; links that stay inside are served "
     "(no link at all on kernels without openat2, before Linux 5.6)."},
    {"server.drain_timeout", HR_OPT_DURATION, OFF(drain_timeout_ms), "10s", 0, DAY_MS, NULL, "--drain-timeout",
     "On SIGTERM/SIGINT: how long to wait for clients to close and responses to finish before exiting."},
    {"server.max_connections", HR_OPT_INT, OFF(max_connections), "1000000", 1, 100000000, NULL, NULL,
     "Maximum simultaneous client connections per process; further connections are closed at accept. Lowered "
     "at start-up (and logged) to the open-file limit (RLIMIT_NOFILE) less the descriptors kept for listeners, "
     "queued files and the engine."},
    {"server.accept_backoff", HR_OPT_DURATION, OFF(accept_backoff_ms), "100ms", 1, 60000, NULL, NULL,
     "When accepting fails for lack of file descriptors (EMFILE, ENFILE), the worker stops accepting for this "
     "long (waiting clients stay in the listen backlog) instead of retrying at once; the warning is logged at most "
     "once per 10 s with the number of failures."},
    {"server.output_ring_pool_bytes", HR_OPT_SIZE, OFF(output_ring_pool_bytes), "8MiB", 0, 1 * GiB, NULL, NULL,
     "Drained output queues (rings of 8 to 256 entries of 32 bytes) each worker keeps for reuse by the next "
     "connection that queues something, at most this many bytes per worker. A saturated fan-out grows every "
     "subscriber's queue each loop turn: rings past this bound are freed and allocated again each turn, and the "
     "allocator gives that memory back to the kernel and takes it again (kernel time per delivery). 0 keeps none."},
    {"server.object_pool_spare_bytes", HR_OPT_SIZE, OFF(object_pool_spare_bytes), "1MiB", 0, 1 * GiB, NULL, NULL,
     "Each worker carves its connections' small fixed-size structs (the connection, its WebSocket state, a raw "
     "client, a subscription) from 64 KiB blocks of its own, without malloc's per-allocation overhead. A block "
     "whose objects are all freed (after many clients left) is kept for the next connections while the worker's "
     "empty blocks stay within this many bytes; any further empty block goes back to the kernel at once. 0 keeps "
     "none."},
    {"server.log_level", HR_OPT_STRING, OFF(log_level), "info", 0, 0, "HERALD_LOG_LEVEL", "--log-level",
     "debug, info, warn, error or off."},
    {"server.log_format", HR_OPT_STRING, OFF(log_format), "text", 0, 0, "HERALD_LOG_FORMAT", "--log-format",
     "text (one line per event: time, level, event name, key=value fields) or json (one JSON object per line); "
     "docs/operations.md lists the events and their fields."},
    {"server.log_refused_rate", HR_OPT_INT, OFF(log_refused_rate), "10", 0, 1000000, NULL, NULL,
     "Access-log lines (event conn_refused, level info) for refused connections and handshakes, per second per "
     "worker (a token bucket with a burst of one second's worth); lines over the rate are counted and the count "
     "is written with the next line and in a log_suppressed line once a second. 0 = no such lines."},
    {"server.api_key", HR_OPT_STRING, OFF(api_key), "", 0, 0, "HERALD_API_KEY", "--api-key",
     "Key for the server HTTP API (/api). Empty = a random key is generated and printed at start-up."},
    {"server.engine", HR_OPT_STRING, OFF(engine), "memory", 0, 0, "HERALD_ENGINE", "--engine",
     "Engine: memory (single node, state in this process) or redis (many nodes sharing history, presence and "
     "publications through Redis: docs/scaling.md)."},
    {"server.redis", HR_OPT_STRING, OFF(redis), "", 0, 0, "HERALD_REDIS", "--redis",
     "Redis addresses HOST:PORT[,HOST:PORT...] for the redis engine. Several addresses shard channels across "
     "independent Redis servers (jump consistent hash of the channel name); every node must list the same "
     "addresses in the same order."},
    {"server.proxy_protocol", HR_OPT_BOOL, OFF(proxy_protocol), "false", 0, 0, "HERALD_PROXY_PROTOCOL",
     "--proxy-protocol",
     "Every connection, on server.listen and tls.listen, must begin with a PROXY protocol header (v1 or v2, "
     "as HAProxy, nginx, AWS NLB and others send); the address it names is the client's for the limits "
     "(limits.*) and the logs. A connection whose header is missing or malformed is closed, and so is one "
     "whose header has not arrived within http.header_timeout. Enable only when nothing but the proxy can "
     "reach these ports: Herald believes every header."},
    {"server.trusted_proxies", HR_OPT_LIST, OFF(trusted_proxies), "", 0, 0, "HERALD_TRUSTED_PROXIES",
     "--trusted-proxies",
     "Addresses and CIDR ranges of proxies (e.g. [\"10.0.0.0/8\", \"::1\"]) whose X-Forwarded-For (or, without "
     "one, Forwarded: for=) header names the client: for a request from such a peer, the client address for "
     "the limits is the rightmost address in the header that is not a trusted proxy, per request. Headers "
     "from other peers are ignored. Empty = trust no one."},
    {"server.ready_max_loop_lag", HR_OPT_DURATION, OFF(ready_max_loop_lag_ms), "1s", 0, DAY_MS, NULL, NULL,
     "GET /ready answers 503 {\"error\":\"loop lag\"} while some worker's event loop ran its timers later than "
     "this within the last second (a blocked or overloaded loop; herald_loop_lag_seconds). 0 = never."},

    {"metrics.listen", HR_OPT_STRING, OFF(metrics_listen), "", 0, 0, NULL, "--metrics-listen",
     "Separate address (HOST:PORT, [IPv6]:PORT or :PORT) that serves only /metrics, /health and /ready (404 for "
     "anything else), plain HTTP, on every worker (SO_REUSEPORT). Empty = only server.listen serves them."},
    {"metrics.token", HR_OPT_STRING, OFF(metrics_token), "", 0, 0, NULL, NULL,
     "Bearer token GET /metrics requires (Authorization: Bearer TOKEN; 401 without it or with another). "
     "Empty = no token, the address check alone."},
    {"metrics.publish_sample", HR_OPT_INT, OFF(metrics_publish_sample), "64", 0, 1000000000, NULL, NULL,
     "Time 1 in this many publications (per publishing thread) from entering the hub to the end of the loop turn "
     "that wrote them to their first subscribers (herald_publish_to_write_seconds). 0 = none."},
    {"metrics.allowed_ips", HR_OPT_LIST, OFF(metrics_allowed_ips), "127.0.0.0/8,::1", 0, 0, NULL, NULL,
     "Addresses and CIDR ranges that may GET /metrics (403 for other peers). The peer is the socket's, never "
     "a forwarded header or a PROXY header's address; a Unix socket peer is always allowed."},

    {"engine.data_dir", HR_OPT_STRING, OFF(data_dir), "", 0, 0, "HERALD_DATA_DIR", "--data-dir",
     "Directory of the durable log (created if missing): publications, offsets, epochs and idempotency keys "
     "survive a restart or a crash (docs/durability.md). Empty = memory only. Memory engine only."},
    {"engine.fsync", HR_OPT_STRING, OFF(engine_fsync), "interval", 0, 0, NULL, NULL,
     "When a publish is acknowledged with engine.data_dir: always (after fdatasync of the batch holding it), "
     "interval (after write(2); fdatasync every engine.fsync_interval: a power loss can lose that much) or never "
     "(after write(2); the kernel writes back when it likes)."},
    {"engine.fsync_interval", HR_OPT_DURATION, OFF(engine_fsync_interval_ms), "100ms", 1, 60000, NULL, NULL,
     "With engine.fsync = interval: how often the durable log is synced to disk. Also how often a log whose "
     "disk refused a write probes it again."},
    {"engine.segment_bytes", HR_OPT_SIZE, OFF(engine_segment_bytes), "64MiB", 4 * KiB, 4 * GiB, NULL, NULL,
     "Size at which the durable log closes a segment file and starts the next (a closed segment never "
     "changes; retention deletes whole segments)."},
    {"engine.max_disk_bytes", HR_OPT_SIZE, OFF(engine_max_disk_bytes), "0", 0, 1024 * 1024 * GiB, NULL, NULL,
     "Most bytes the durable log keeps on disk; past it the oldest segment is deleted and its publications "
     "leave history (recovery from before them answers recovered = false). At least twice "
     "engine.segment_bytes. 0 = bounded by the disk only."},
    {"engine.max_queued_bytes", HR_OPT_SIZE, OFF(engine_max_queued_bytes), "64MiB", 0, 1024 * GiB, NULL, NULL,
     "Most bytes of publications waiting for the durable log's thread to write them (publishers faster than "
     "the disk); a publish that would pass it is refused with the storage error (API 507, native 117, "
     "temporary: retry) and counted in herald_disk_queue_full_total. 0 = unbounded."},
    {"redis.prefix", HR_OPT_STRING, OFF(redis_prefix), "herald", 0, 0, NULL, "--redis-prefix",
     "Prefix of every Redis key and pub/sub channel Herald uses (separate clusters sharing one Redis)."},
    {"redis.user", HR_OPT_STRING, OFF(redis_user), "default", 0, 0, NULL, NULL,
     "Redis ACL user for redis.password (HELLO 3 AUTH)."},
    {"redis.password", HR_OPT_STRING, OFF(redis_password), "", 0, 0, NULL, NULL,
     "Password for every Redis server (HELLO 3 AUTH redis.user PASSWORD). Empty = no authentication."},
    {"redis.node_id", HR_OPT_STRING, OFF(redis_node_id), "", 0, 0, "HERALD_NODE_ID", "--node-id",
     "This node's id in /api/info's node list. Empty = random at each start."},
    {"redis.presence_ttl", HR_OPT_DURATION, OFF(redis_presence_ttl_ms), "60s", 1000, DAY_MS, NULL, NULL,
     "Presence entries in Redis expire unless their node refreshes them (every third of this): how long the "
     "clients of a killed node stay listed."},
    {"redis.node_ttl", HR_OPT_DURATION, OFF(redis_node_ttl_ms), "15s", 1000, DAY_MS, NULL, NULL,
     "A node's announcement (/api/info) expires unless refreshed (every third of the smaller of this and "
     "redis.presence_ttl)."},
    {"redis.connect_timeout", HR_OPT_DURATION, OFF(redis_connect_timeout_ms), "3s", 100, DAY_MS, NULL, NULL,
     "Connecting to Redis (TCP + HELLO) gives up after this, then retries with backoff."},
    {"redis.ping_interval", HR_OPT_DURATION, OFF(redis_ping_interval_ms), "2s", 100, DAY_MS, NULL, NULL,
     "Keepalive PING on each Redis connection; one not answered by the next interval drops the connection."},
    {"redis.backoff_min", HR_OPT_DURATION, OFF(redis_backoff_min_ms), "100ms", 1, DAY_MS, NULL, NULL,
     "First reconnection delay after a Redis connection is lost; doubles per failed attempt (with jitter)."},
    {"redis.backoff_max", HR_OPT_DURATION, OFF(redis_backoff_max_ms), "5s", 1, DAY_MS, NULL, NULL,
     "Longest reconnection delay."},
    {"redis.max_pending", HR_OPT_INT, OFF(redis_max_pending), "100000", 1, 100000000, NULL, NULL,
     "Most commands awaiting Redis replies per connection; more fail at once (API 503, client error 100)."},
    {"redis.occupancy_sweep_max", HR_OPT_INT, OFF(redis_occupancy_sweep_max), "1000", 1, 1000000, NULL, NULL,
     "At most this many of a dead node's channels are freed (and reported vacated) per Redis server and "
     "refresh; the rest wait for the next refresh. Bounds how long one sweep script runs in Redis."},
    {"redis.publish_batch", HR_OPT_INT, OFF(redis_publish_batch), "64", 1, 10000, NULL, NULL,
     "Most publications one publish script call carries: the publishes of an engine loop turn to one shard go "
     "to Redis in script calls of up to this many (1 = a script call per publication; more blocks Redis longer "
     "per call). A worker hands its publishes of a loop turn to the engine at the turn's end, or as soon as it "
     "holds this many."},
    {"redis.deliver_batch", HR_OPT_INT, OFF(redis_deliver_batch), "512", 1, 100000, NULL, NULL,
     "Most publications the engine thread hands the workers at once: what it reads from a Redis server's pub/sub "
     "in one loop turn goes to each worker in one hand-over (one queue operation and wake-up per worker) of up "
     "to this many, which the worker fans out by runs of one channel (1 = one hand-over per publication)."},
    {"redis.max_reply", HR_OPT_SIZE, OFF(redis_max_reply), "64MiB", 1024, 1 * GiB, NULL, NULL,
     "Largest Redis reply accepted (a history read of a big channel); larger drops the connection."},

    {"tls.cert", HR_OPT_STRING, OFF(tls_cert), "", 0, 0, NULL, "--tls-cert",
     "TLS certificate chain file (PEM: the server certificate first, then intermediates). With tls.key set, "
     "the server.listen address speaks TLS (https, wss), unless tls.listen names separate TLS addresses. "
     "Re-read on SIGHUP."},
    {"tls.key", HR_OPT_STRING, OFF(tls_key), "", 0, 0, NULL, "--tls-key",
     "TLS private key file (PEM) matching tls.cert. Re-read on SIGHUP."},
    {"tls.listen", HR_OPT_STRING, OFF(tls_listen), "", 0, 0, NULL, "--tls-listen",
     "Separate address for TLS (HOST:PORT, [IPv6]:PORT or :PORT); server.listen then stays plain HTTP. "
     "Empty = server.listen itself speaks TLS when tls.cert and tls.key are set."},
    {"tls.min_version", HR_OPT_STRING, OFF(tls_min_version), "1.2", 0, 0, NULL, NULL,
     "Oldest TLS version accepted: \"1.2\" or \"1.3\". Older clients fail the handshake (protocol_version alert)."},
    {"tls.ciphers", HR_OPT_STRING, OFF(tls_ciphers), "", 0, 0, NULL, NULL,
     "OpenSSL cipher list for TLS 1.2 (e.g. \"ECDHE+AESGCM:ECDHE+CHACHA20\"). Empty = OpenSSL's default."},
    {"tls.ciphersuites", HR_OPT_STRING, OFF(tls_ciphersuites), "", 0, 0, NULL, NULL,
     "TLS 1.3 cipher suites, colon-separated (e.g. \"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\"). "
     "Empty = OpenSSL's default."},

    {"http.max_head_size", HR_OPT_SIZE, OFF(http_max_head_size), "16KiB", 256, 1 * MiB, NULL, NULL,
     "Largest request line + headers. Larger: 431."},
    {"http.max_headers", HR_OPT_INT, OFF(http_max_headers), "64", 1, 256, NULL, NULL,
     "Most header fields in one request. More: 431."},
    {"http.max_target_size", HR_OPT_SIZE, OFF(http_max_target_size), "8KiB", 16, 1 * MiB, NULL, NULL,
     "Longest request-target (path + query). Longer: 414."},
    {"http.max_body_size", HR_OPT_SIZE, OFF(http_max_body_size), "1MiB", 0, 1 * GiB, NULL, NULL,
     "Largest request body (Content-Length or chunked). Larger: 413."},
    {"http.header_timeout", HR_OPT_DURATION, OFF(http_header_timeout_ms), "10s", 100, DAY_MS, NULL, NULL,
     "Time allowed from the first byte of a request to the end of its headers (slowloris guard). Then: 408 and close. "
     "A new connection (after its TLS handshake) must begin its first request within this too, or it is closed "
     "without an answer."},
    {"http.body_timeout", HR_OPT_DURATION, OFF(http_body_timeout_ms), "30s", 100, DAY_MS, NULL, NULL,
     "Time allowed to receive a whole request body. Then: 408 and close."},
    {"http.keepalive_timeout", HR_OPT_DURATION, OFF(http_keepalive_timeout_ms), "60s", 100, DAY_MS, NULL, NULL,
     "How long an idle keep-alive connection is kept open between requests. While answers are still queued for "
     "it, it stays open as long as the client reads some of them in each such period."},
    {"http.max_pipelined", HR_OPT_INT, OFF(http_max_pipelined), "64", 1, 100000, NULL, NULL,
     "Most requests answered from one read before the connection yields to others (pipelining fairness); also "
     "the most server API requests of one connection awaiting an engine's answer at once (Redis, the durable "
     "log): further pipelined requests wait until one is answered."},
    {"http.max_pipelined_bytes", HR_OPT_SIZE, OFF(http_max_pipelined_bytes), "64KiB", 1024, 64 * MiB, NULL, NULL,
     "Most pipelined request bytes a connection may hold unanswered: above it, reading from the connection pauses "
     "until its requests are answered (a partial request never pauses it)."},
    {"http.max_queued_files", HR_OPT_INT, OFF(http_max_queued_files), "16", 1, 4096, NULL, NULL,
     "Static files queued for sending per connection (each holds a file descriptor): a client that pipelines more "
     "without reading the answers is paused (not read from) until they are sent."},
    {"http.echo_endpoint", HR_OPT_BOOL, OFF(http_echo_endpoint), "true", 0, 0, NULL, NULL,
     "Serve POST /http/echo (answers the request body back as application/octet-stream with "
     "X-Content-Type-Options: nosniff, whatever Content-Type was sent; for conformance tests)."},

    {"http2.enabled", HR_OPT_BOOL, OFF(http2_enabled), "true", 0, 0, NULL, NULL,
     "Speak HTTP/2 (every endpoint, and WebSocket by RFC 8441's extended CONNECT): TLS listeners offer h2 before "
     "http/1.1 by ALPN, and cleartext listeners take h2c with prior knowledge (a connection whose first bytes are "
     "the HTTP/2 client preface). false: HTTP/1.1 only."},
    {"http2.max_concurrent_streams", HR_OPT_INT, OFF(http2_max_concurrent_streams), "100", 1, 100000, NULL, NULL,
     "SETTINGS_MAX_CONCURRENT_STREAMS: most streams (requests, SSE streams, WebSockets) open at once on one HTTP/2 "
     "connection. A client that opens more before it has our SETTINGS gets RST_STREAM REFUSED_STREAM, after: GOAWAY "
     "PROTOCOL_ERROR."},
    {"http2.initial_window_size", HR_OPT_SIZE, OFF(http2_initial_window_size), "65535", 1024, 2147483647, NULL, NULL,
     "SETTINGS_INITIAL_WINDOW_SIZE: bytes a client may send on a stream (request bodies, WebSocket frames) before "
     "the server's WINDOW_UPDATE."},
    {"http2.max_header_list_size", HR_OPT_SIZE, OFF(http2_max_header_list_size), "16KiB", 256, 1 * MiB, NULL, NULL,
     "SETTINGS_MAX_HEADER_LIST_SIZE: largest request header list after HPACK decoding (names + values + 32 bytes "
     "each). Larger: 431. A header block in more than max_header_list_size / 1024 + 2 CONTINUATION frames: GOAWAY "
     "ENHANCE_YOUR_CALM (CONTINUATION flood; nghttp2 stops at 8 itself where it has that fix). The HPACK table "
     "stays at 4096 bytes."},
    {"http2.max_resets_per_second", HR_OPT_INT, OFF(http2_max_resets_per_second), "200", 1, 1000000, NULL, NULL,
     "Most RST_STREAM frames a client may send on one HTTP/2 connection in one second (rapid reset, "
     "CVE-2023-44487). More: GOAWAY ENHANCE_YOUR_CALM and close."},
    {"http2.max_queued_acks", HR_OPT_INT, OFF(http2_max_queued_acks), "1000", 1, 1000000, NULL, NULL,
     "Most SETTINGS and PING acknowledgements one HTTP/2 connection may owe its client at once (nghttp2's "
     "max_outbound_ack; its default). They wait while the client does not read, and all those asked for by one "
     "read of input wait until the end of that loop turn: a client that floods PINGs or SETTINGS without reading "
     "(or sends more than this in one burst) gets GOAWAY ENHANCE_YOUR_CALM and is closed."},

    {"websocket.max_frame_size", HR_OPT_SIZE, OFF(ws_max_frame_size), "16MiB", 125, 1 * GiB, NULL, NULL,
     "Largest single frame payload accepted from a client (never more than the endpoint's message limit). "
     "Larger: close 1009."},
    {"websocket.max_message_size", HR_OPT_SIZE, OFF(ws_max_message_size), "1MiB", 125, 1 * GiB, NULL, NULL,
     "Largest message on /ws and /ws/raw (all fragments, after decompression). Larger: close 1009."},
    {"websocket.echo_max_message_size", HR_OPT_SIZE, OFF(ws_echo_max_message_size), "16MiB", 125, 1 * GiB, NULL,
     NULL, "Largest message on /ws/echo (the conformance echo; all fragments, after decompression). Larger: close 1009."},
    {"websocket.message_timeout", HR_OPT_DURATION, OFF(ws_message_timeout_ms), "10s", 0, DAY_MS, NULL, NULL,
     "Time allowed from the first frame of a message to its last, however slowly its bytes arrive. "
     "Then: close 1008 (\"message not completed in time\"). 0 = no limit."},
    {"websocket.max_partial_bytes", HR_OPT_SIZE, OFF(ws_max_partial_bytes), "64MiB", 64 * KiB, 64 * GiB, NULL, NULL,
     "Memory all unfinished messages (fragmented or still arriving, after decompression) of one worker's "
     "connections may hold together; the connection whose message would pass it is closed with 1013 "
     "(try again later), the others keep theirs."},
    {"websocket.ping_interval", HR_OPT_DURATION, OFF(ws_ping_interval_ms), "25s", 0, DAY_MS, NULL, NULL,
     "Send a ping to a connection that has been quiet this long. 0 = never."},
    {"websocket.idle_timeout", HR_OPT_DURATION, OFF(ws_idle_timeout_ms), "60s", 0, DAY_MS, NULL, NULL,
     "Close (1001) a connection from which nothing (not even a pong) arrived for this long. 0 = never."},
    {"websocket.close_timeout", HR_OPT_DURATION, OFF(ws_close_timeout_ms), "5s", 10, DAY_MS, NULL, NULL,
     "After sending a close frame, how long to wait for the client's close before dropping the TCP connection."},
    {"websocket.max_queued_bytes", HR_OPT_SIZE, OFF(ws_max_queued_bytes), "64MiB", 1024, 4 * GiB, NULL, NULL,
     "Largest output queue per connection (bytes plus 64 per queued frame); a client that lets more pile up has "
     "its queue dropped and is closed with 3008 (reconnect and recover). "
     "Reading from a client pauses while its queue is over a quarter of this (HTTP clients too: pipelined "
     "requests wait)."},
    {"websocket.allowed_origins", HR_OPT_LIST, OFF(ws_allowed_origins), "", 0, 0, NULL, NULL,
     "Origins whose pages may open WebSockets (/ws, /ws/raw, /ws/echo) from another origin (exact match "
     "such as \"https://app.example.com\", \"*\" = any). Empty = same origin only, as sse.allowed_origins. "
     "Requests without an Origin header (non-browser clients) and same-origin requests are always allowed; "
     "others get 403."},
    {"websocket.subprotocols", HR_OPT_LIST, OFF(ws_subprotocols), "", 0, 0, NULL, NULL,
     "Subprotocols /ws/echo accepts, in the server's order of preference. Empty = none is selected."},
    {"websocket.deflate", HR_OPT_BOOL, OFF(ws_deflate), "true", 0, 0, NULL, NULL,
     "Accept permessage-deflate (RFC 7692) when a client offers it."},
    {"websocket.deflate_server_context_takeover", HR_OPT_BOOL, OFF(ws_deflate_server_context_takeover), "false", 0, 0, NULL, NULL,
     "Keep the server's compression context between messages (better ratio, costs a deflate stream per "
     "connection). false = every message compressed alone by one shared per-worker stream."},
    {"websocket.deflate_client_context_takeover", HR_OPT_BOOL, OFF(ws_deflate_client_context_takeover), "false", 0, 0, NULL, NULL,
     "Let clients keep their compression context between messages (costs an inflate stream of up to "
     "2^client_max_window_bits + 7 KiB per connection that sends compressed data). false = the server "
     "answers client_no_context_takeover and decompresses with one shared per-worker stream."},
    {"websocket.deflate_server_max_window_bits", HR_OPT_INT, OFF(ws_deflate_server_max_window_bits), "15", 9, 15, NULL, NULL,
     "Largest LZ77 window (2^N bytes) the server compresses with."},
    {"websocket.deflate_client_max_window_bits", HR_OPT_INT, OFF(ws_deflate_client_max_window_bits), "15", 9, 15, NULL, NULL,
     "Largest window the server asks clients to use (when they offer client_max_window_bits)."},
    {"websocket.deflate_mem_level", HR_OPT_INT, OFF(ws_deflate_mem_level), "8", 1, 9, NULL, NULL,
     "zlib memLevel for compression streams (memory vs speed)."},
    {"websocket.deflate_level", HR_OPT_INT, OFF(ws_deflate_level), "6", 0, 9, NULL, NULL,
     "zlib compression level 0-9."},
    {"websocket.deflate_min_size", HR_OPT_SIZE, OFF(ws_deflate_min_size), "64", 0, 1 * GiB, NULL, NULL,
     "Messages shorter than this are sent uncompressed even on a deflate connection."},

    {"sse.retry", HR_OPT_DURATION, OFF(sse_retry_ms), "2s", 0, DAY_MS, NULL, NULL,
     "Reconnection delay advised to Server-Sent Events clients (the retry: field sent when a stream starts). "
     "0 = none sent (browsers then choose, about 3 s)."},
    {"sse.heartbeat_interval", HR_OPT_DURATION, OFF(sse_heartbeat_interval_ms), "15s", 0, DAY_MS, NULL, NULL,
     "Send a comment line (\": ping\") on an SSE stream that has been quiet this long, so proxies and clients "
     "keep it open and dead connections are found. 0 = never."},
    {"sse.max_queued_bytes", HR_OPT_SIZE, OFF(sse_max_queued_bytes), "64MiB", 1024, 4 * GiB, NULL, NULL,
     "Largest output queue of an SSE stream; a client that lets more pile up has its stream ended (it "
     "reconnects with Last-Event-ID and recovers what it missed)."},
    {"sse.allowed_origins", HR_OPT_LIST, OFF(sse_allowed_origins), "", 0, 0, NULL, NULL,
     "Origins whose pages may open /sse from another origin (CORS; exact match such as "
     "\"https://app.example.com\", \"*\" = any). Empty = same origin only. Requests without an Origin "
     "header (non-browser clients) and same-origin requests are always allowed; others get 403."},

    {"poll.timeout", HR_OPT_DURATION, OFF(poll_timeout_ms), "25s", 0, 10 * 60 * 1000, NULL, NULL,
     "How long GET /poll holds a request that has nothing to return before answering an empty batch "
     "(keep it below the idle timeout of proxies in front). 0 = answer at once."},
    {"poll.session_ttl", HR_OPT_DURATION, OFF(poll_session_ttl_ms), "30s", 1000, DAY_MS, NULL, NULL,
     "How long a long-polling or HTTP-streaming session lives with no request waiting on it, no stream "
     "open and no command posted; then it is ended (it leaves its channels) and its id answers 404."},
    {"poll.max_queued_bytes", HR_OPT_SIZE, OFF(poll_max_queued_bytes), "1MiB", 1024, 4 * GiB, NULL, NULL,
     "Largest output a long-polling or streaming session may hold that has not been delivered; past it "
     "the session is ended as a slow consumer (disconnect 3008: reconnect and recover)."},
    {"poll.max_queued_bytes_per_worker", HR_OPT_SIZE, OFF(poll_max_queued_bytes_per_worker), "64MiB", 64 * KiB,
     64 * GiB, NULL, NULL,
     "Output held by all the sessions one worker owns. Past it, a session receiving output first drops the "
     "lines it already handed out, and one holding more undelivered output than its share (this budget / "
     "the worker's sessions) is ended as a slow consumer (3008)."},
    {"poll.max_sessions", HR_OPT_INT, OFF(poll_max_sessions), "100000", 1, 100000000, NULL, NULL,
     "Long-polling and streaming sessions the server keeps at once; opening one more answers 503."},
    {"poll.max_sessions_per_ip", HR_OPT_INT, OFF(poll_max_sessions_per_ip), "100", 0, 100000000, NULL, NULL,
     "Sessions one client address (IPv6: one /limits.ipv6_prefix network) may hold at once, until they "
     "end (poll.session_ttl after their last request). More: 503 with Retry-After. 0 = unlimited."},

    {"api.max_broadcast_channels", HR_OPT_INT, OFF(api_max_broadcast_channels), "10000", 1, 10000000, NULL, NULL,
     "Most channels one server API broadcast may name. More: 400 naming this option."},
    {"api.max_batch_commands", HR_OPT_INT, OFF(api_max_batch_commands), "1000", 1, 1000000, NULL, NULL,
     "Most commands in one server API batch. More: 400 naming this option (the batch runs none of them)."},

    {"admin.enabled", HR_OPT_BOOL, OFF(admin_enabled), "false", 0, 0, "HERALD_ADMIN", "--admin",
     "Serve the admin web UI at /admin/ (docs/operations.md \"Admin UI\") and publish each node's statistics "
     "to the reserved channel $admin:stats. false = /admin/ answers 404 and nothing of it runs."},
    {"admin.password", HR_OPT_STRING, OFF(admin_password), "", 0, 0, NULL, NULL,
     "Password of the admin UI's login (at most 255 characters). Empty = a random one is generated and printed "
     "at start-up when admin.enabled."},
    {"admin.session_ttl", HR_OPT_DURATION, OFF(admin_session_ttl_ms), "12h", 1000, 30 * DAY_MS, NULL, NULL,
     "How long an admin login lasts (its cookie and its connection credential); then the page asks for the "
     "password again."},
    {"admin.max_sessions", HR_OPT_INT, OFF(admin_max_sessions), "32", 1, 10000, NULL, NULL,
     "Admin logins held at once, all workers together; a login past it ends the oldest session."},
    {"admin.stats_interval", HR_OPT_DURATION, OFF(admin_stats_interval_ms), "1s", 100, 3600000, NULL, NULL,
     "How often each node publishes its statistics snapshot to $admin:stats (the admin UI's live charts; a node "
     "whose snapshots stop for 3 intervals is shown stale)."},

    {"channels.history_size", HR_OPT_INT, OFF(ch_history_size), "100", 0, 1000000, NULL, NULL,
     "Publications kept per channel for history and recovery. 0 = none (recovery is then impossible)."},
    {"channels.history_ttl", HR_OPT_DURATION, OFF(ch_history_ttl_ms), "5m", 0, 365 * DAY_MS, NULL, NULL,
     "How long a publication stays in history. 0 = until pushed out by history_size."},
    {"channels.max_history_bytes", HR_OPT_SIZE, OFF(ch_max_history_bytes), "256MiB", 0, 1024 * GiB, NULL, NULL,
     "Memory engine: bytes of history the whole node keeps, over all channels. Past it the oldest "
     "publications of the least recently published channels are evicted first; a client recovering from "
     "before what is left gets recovered = false. 0 = no node-wide limit. (Redis keeps history in Redis.)"},
    {"channels.presence", HR_OPT_BOOL, OFF(ch_presence), "true", 0, 0, NULL, NULL,
     "Track who is subscribed (presence, presence_stats)."},
    {"channels.join_leave", HR_OPT_BOOL, OFF(ch_join_leave), "false", 0, 0, NULL, NULL,
     "Send join/leave pushes to subscribers when a client subscribes or leaves."},
    {"channels.allow_publish", HR_OPT_BOOL, OFF(ch_allow_publish), "true", 0, 0, NULL, NULL,
     "Older spelling: false = publish \"none\". true leaves the publish rule deciding (clients publish only "
     "where publish allows it; the server API always may)."},
    {"channels.allow_anonymous", HR_OPT_BOOL, OFF(ch_allow_anonymous), "true", 0, 0, NULL, NULL,
     "Clients without a user may subscribe."},
    {"channels.proxy_subscribe", HR_OPT_BOOL, OFF(ch_proxy_subscribe), "false", 0, 0, NULL, NULL,
     "A client's subscribe, once every other rule passed, is asked of the backend's subscribe hook "
     "(proxy.subscribe_url, docs/backend.md) before anything of the channel is delivered. Set it per "
     "namespace. /ws/raw cannot wait for it: a URL channel that needs it is refused with 501."},
    {"channels.proxy_publish", HR_OPT_BOOL, OFF(ch_proxy_publish), "false", 0, 0, NULL, NULL,
     "A client's publish, once every other rule passed, is asked of the backend's publish hook "
     "(proxy.publish_url, docs/backend.md), which may replace the data; the publication is made only after "
     "it said yes, in the order the connection sent them. The server API never calls it."},
    {"channels.max_channel_length", HR_OPT_INT, OFF(ch_max_channel_length), "255", 1, 65535, NULL, NULL,
     "Longest channel name in bytes."},
    {"channels.max_subscriptions", HR_OPT_INT, OFF(ch_max_subscriptions), "128", 1, 1000000, NULL, NULL,
     "Most channels (and patterns) one connection may subscribe to. More: error 106."},
    {"channels.max_publication_size", HR_OPT_SIZE, OFF(ch_max_publication_size), "64KiB", 1, 64 * MiB, NULL, NULL,
     "Largest publication data (JSON text). Larger: error 115 (client) or 413 (API)."},
    {"channels.max_commands_per_frame", HR_OPT_INT, OFF(ch_max_commands_per_frame), "100", 1, 100000, NULL, NULL,
     "Most commands in one frame. More: the connection is closed (3501)."},
    {"channels.max_subscribers", HR_OPT_INT, OFF(ch_max_subscribers), "0", 0, 100000000, NULL, NULL,
     "Most subscribers of one channel, over all workers. 0 = unlimited. More: error 106."},
    {"channels.history_max_limit", HR_OPT_INT, OFF(ch_history_max_limit), "1000", 1, 1000000, NULL, NULL,
     "Most publications in one history reply (client or server API). A request for more, or without limit, "
     "gets this many and \"more\": true; the next page is asked for with since."},
    {"channels.max_reply_size", HR_OPT_SIZE, OFF(ch_max_reply_size), "1MiB", 4 * KiB, 1 * GiB, NULL, NULL,
     "Largest reply to one command (client or server API). A history page stops before it (with at least one "
     "publication) and says \"more\": true; a recovery that would pass it answers recovered: false; a "
     "presence list that would pass it gets error 106 (use presence_stats)."},
    {"channels.reply_budget", HR_OPT_SIZE, OFF(ch_reply_budget), "4MiB", 64 * KiB, 4 * GiB, NULL, NULL,
     "Output one client connection may have queued plus replies being prepared (never more than half of "
     "websocket.max_queued_bytes, or of poll.max_queued_bytes for HTTP sessions). A history, presence or "
     "recovering subscribe whose reply may not fit gets error 111 (temporary): read the earlier replies, retry. "
     "Publishes waiting behind one that waits for the backend's publish hook count their bytes in it too. "
     "The history pages of one /api/batch share it too (past it: 429)."},
    {"channels.join_leave_max_subscribers", HR_OPT_INT, OFF(ch_join_leave_max_subscribers), "100", 0, 100000000,
     NULL, NULL,
     "join/leave pushes are not sent for a channel with more subscribers than this (over all workers), where "
     "each join would cost a push to every subscriber. 0 = no cap."},
    {"channels.max_held_publications", HR_OPT_INT, OFF(ch_max_held_publications), "100000", 1, 10000000, NULL,
     NULL,
     "Most publications held for one subscription while its subscribe is answered (native, with recovery "
     "or an engine that answers later) or for one SSE stream while it starts. More: the native client is "
     "disconnected with 3008, the SSE stream ends after its start; both recover from history."},
    {"channels.idempotency_window", HR_OPT_DURATION, OFF(ch_idempotency_window_ms), "5m", 0, DAY_MS, NULL, NULL,
     "How long a publish idempotency_key is remembered per channel: a retry with the same key is acknowledged "
     "with the original offset and not delivered again. 0 = keys are ignored."},
    {"channels.allow_unknown_namespaces", HR_OPT_BOOL, OFF(ch_allow_unknown_namespaces), "true", 0, 0, NULL, NULL,
     "Channels in a namespace without a [namespace.NAME] section use the [channels] options. false: error 102."},

    {"limits.connections_per_ip", HR_OPT_INT, OFF(lim_connections_per_ip), "0", 0, 100000000, NULL, NULL,
     "Most simultaneous connections from one client address (IPv6: one /ipv6_prefix network), over all "
     "workers. More: answered 503 at accept and closed. 0 = unlimited."},
    {"limits.handshakes_per_ip", HR_OPT_INT, OFF(lim_handshakes_per_ip), "0", 0, 100000000, NULL, NULL,
     "New connections per second one client address may open, sustained (a token bucket of "
     "handshake_burst_per_ip). More: answered 429 with Retry-After and closed. 0 = unlimited."},
    {"limits.handshake_burst_per_ip", HR_OPT_INT, OFF(lim_handshake_burst_per_ip), "0", 0, 100000000, NULL, NULL,
     "Connections one address may open at once before handshakes_per_ip applies. 0 = 2 x handshakes_per_ip."},
    {"limits.auth_failures_per_ip", HR_OPT_INT, OFF(lim_auth_failures_per_ip), "20", 0, 100000000, NULL, NULL,
     "Rejected tokens (bad signature, malformed, wrong audience, unknown key, ...) one address may present "
     "within auth_failure_window; past it, its new connections are refused (429) for auth_failure_ban. "
     "Expired tokens do not count (that is the refresh flow). 0 = off."},
    {"limits.auth_failure_window", HR_OPT_DURATION, OFF(lim_auth_failure_window_ms), "1m", 1000, DAY_MS, NULL, NULL,
     "Window over which auth_failures_per_ip counts."},
    {"limits.auth_failure_ban", HR_OPT_DURATION, OFF(lim_auth_failure_ban_ms), "1m", 1000, DAY_MS, NULL, NULL,
     "How long an address that presented too many bad tokens is refused."},
    {"limits.ipv6_prefix", HR_OPT_INT, OFF(lim_ipv6_prefix), "64", 1, 128, NULL, NULL,
     "IPv6 clients are counted per network of this prefix length (one host usually owns a whole /64)."},
    {"limits.publishes_per_connection", HR_OPT_INT, OFF(lim_publishes_per_connection), "0", 0, 100000000, NULL, NULL,
     "Client publications per second one connection may send, sustained (token bucket of publish_burst). "
     "More: error 111 (too many requests, temporary). 0 = unlimited."},
    {"limits.publish_burst", HR_OPT_INT, OFF(lim_publish_burst), "0", 0, 100000000, NULL, NULL,
     "Publications a connection (or user) may send at once before the per-second limits apply. "
     "0 = 2 x the per-second limit."},
    {"limits.publishes_per_user", HR_OPT_INT, OFF(lim_publishes_per_user), "0", 0, 100000000, NULL, NULL,
     "Client publications per second one authenticated user may send over all their connections. "
     "More: error 111. Anonymous connections only have the per-connection limit. 0 = unlimited."},
    {"limits.channels_per_connection", HR_OPT_INT, OFF(lim_channels_per_connection), "20", 0, 100000000, NULL, NULL,
     "New channels per second one client connection may bring into existence by publishing, subscribing or "
     "reading history (memory engine; a token bucket of channel_burst). More: error 111 (temporary) with "
     "the wait. The server API is exempt; /ws/raw and /sse name their channels in the URL (at most "
     "channels.max_subscriptions). 0 = unlimited."},
    {"limits.channel_burst", HR_OPT_INT, OFF(lim_channel_burst), "200", 0, 100000000, NULL, NULL,
     "New channels a connection may create at once before channels_per_connection applies. "
     "0 = 2 x channels_per_connection."},
    {"limits.token_verifications_per_connection", HR_OPT_INT, OFF(lim_token_verifications_per_connection), "20", 0,
     100000000, NULL, NULL,
     "Tokens (connect, refresh, subscription) one connection may have verified per second, sustained (token "
     "bucket of token_verification_burst). More: error 111 (temporary), the token is not looked at. 0 = unlimited."},
    {"limits.token_verification_burst", HR_OPT_INT, OFF(lim_token_verification_burst), "200", 0, 100000000, NULL,
     NULL, "Tokens a connection may have verified at once before token_verifications_per_connection applies. "
     "0 = 2 x the per-second limit."},
    {"channels.subscribe", HR_OPT_PERM, OFF(ch_subscribe), "anyone", PERMS_SUBSCRIBE, 0, NULL, NULL,
     "Who may subscribe from a client: anyone, authenticated (a connection token with a user) or token (a "
     "subscription token for the channel and user). Channels named in a connection token are always allowed. "
     "Refused: error 103."},
    {"channels.publish", HR_OPT_PERM, OFF(ch_publish), "none", PERMS_OTHER, 0, NULL, NULL,
     "Who may publish from a client: anyone, authenticated, subscribers (of that channel) or none. Client "
     "publish is opt-in: set it here for every namespace or per [namespace.NAME]. allow_publish = false is "
     "the same as none. Refused: error 103 (/ws/raw: close 3503)."},
    {"channels.history_for", HR_OPT_PERM, OFF(ch_history_for), "anyone", PERMS_OTHER, 0, NULL, NULL,
     "Who may read history from a client: anyone (who may subscribe to the channel without a subscription "
     "token), authenticated (likewise, with a user), subscribers, or none. Subscribers always may unless none."},
    {"channels.presence_for", HR_OPT_PERM, OFF(ch_presence_for), "anyone", PERMS_OTHER, 0, NULL, NULL,
     "Who may call presence and presence_stats from a client; the same values as history_for."},

    {"webhook.url", HR_OPT_STRING, OFF(webhook_url), "", 0, 0, NULL, NULL,
     "Where webhooks are POSTed (http:// or https://; docs/backend.md, Webhooks). Empty = no webhooks (a "
     "namespace's webhook_url still sends that namespace's events)."},
    {"webhook.secret", HR_OPT_STRING, OFF(webhook_secret), "", 0, 0, NULL, NULL,
     "HMAC-SHA256 key of the X-Herald-Signature header (t=UNIXSECONDS,v1=HEX of HMAC(secret, \"t.\" + body)). "
     "Empty = requests are not signed."},
    {"webhook.events", HR_OPT_LIST, OFF(webhook_events),
     "channel_occupied,channel_vacated,member_added,member_removed,client_connected,client_disconnected", 0, 0,
     NULL, NULL,
     "Events sent: channel_occupied, channel_vacated, member_added, member_removed, client_connected, "
     "client_disconnected, publication (opt-in). A namespace's webhook_events replaces the list for its channels."},
    {"webhook.batch_max_events", HR_OPT_INT, OFF(webhook_batch_max_events), "100", 1, 10000, NULL, NULL,
     "Most events in one POST."},
    {"webhook.batch_max_delay", HR_OPT_DURATION, OFF(webhook_batch_max_delay_ms), "100ms", 0, 60000, NULL, NULL,
     "Longest an event waits for others to share its POST (a full batch leaves at once)."},
    {"webhook.timeout", HR_OPT_DURATION, OFF(webhook_timeout_ms), "5s", 100, 600000, NULL, NULL,
     "A POST not answered within this is a failed attempt (retried)."},
    {"webhook.max_queued_events", HR_OPT_INT, OFF(webhook_max_queued_events), "10000", 1, 10000000, NULL, NULL,
     "Events waiting to be sent, all URLs of this node together; more: the oldest is dropped, counted in "
     "/api/info (webhook.dropped) and logged (at most once per 10 s)."},
    {"webhook.max_queued_bytes", HR_OPT_SIZE, OFF(webhook_max_queued_bytes), "64MiB", 1024, 4 * GiB, NULL, NULL,
     "Bytes of event JSON waiting to be sent, all URLs of this node together (a publication event carries its "
     "data); more: the oldest events are dropped until the new one fits, as for webhook.max_queued_events."},
    {"webhook.retry_min_delay", HR_OPT_DURATION, OFF(webhook_retry_min_delay_ms), "200ms", 1, DAY_MS, NULL, NULL,
     "First retry delay after a failed POST (5xx, 429, timeout, connection error); doubles per failure, with "
     "full jitter. The same batch is retried and later batches to that URL wait (per-channel order)."},
    {"webhook.retry_max_delay", HR_OPT_DURATION, OFF(webhook_retry_max_delay_ms), "30s", 1, DAY_MS, NULL, NULL,
     "Longest retry delay."},
    {"webhook.flush_timeout", HR_OPT_DURATION, OFF(webhook_flush_timeout_ms), "2s", 0, 600000, NULL, NULL,
     "On shutdown, once the clients are gone: how long queued events are still sent (without waiting for "
     "batch_max_delay) before the rest is dropped and its number logged."},

    {"auth.token_hmac_secret", HR_OPT_STRING, OFF(auth_token_hmac_secret), "", 0, 0, "HERALD_TOKEN_HMAC_SECRET",
     "--token-hmac-secret",
     "HS256 secret (at least 32 bytes) for connection and subscription tokens without kid. Empty = none; "
     "more keys go in [auth.key.NAME] sections. No key at all = tokens are refused (error 101)."},
    {"auth.leeway", HR_OPT_DURATION, OFF(auth_leeway_ms), "30s", 0, 3600 * 1000, NULL, NULL,
     "Clock skew tolerated when checking a token's exp, nbf and iat."},
    {"auth.audience", HR_OPT_STRING, OFF(auth_audience), "", 0, 0, NULL, NULL,
     "If set, tokens must carry this aud (a string, or an array containing it)."},
    {"auth.issuer", HR_OPT_STRING, OFF(auth_issuer), "", 0, 0, NULL, NULL, "If set, tokens must carry this iss."},
    {"auth.require_exp", HR_OPT_BOOL, OFF(auth_require_exp), "true", 0, 0, NULL, NULL,
     "Refuse tokens without exp (a token without it is valid forever)."},
    {"auth.max_token_bytes", HR_OPT_SIZE, OFF(auth_max_token_bytes), "8KiB", 64, 1 * MiB, NULL, NULL,
     "Longest token accepted; longer: refused before any parsing."},
    {"auth.refresh_grace", HR_OPT_DURATION, OFF(auth_refresh_grace_ms), "10s", 0, DAY_MS, NULL, NULL,
     "When a connection's token expires, the server pushes refresh and waits this long for a refresh command "
     "before disconnecting (3005). 0 = disconnect at expiry."},

    {"proxy.connect_url", HR_OPT_STRING, OFF(proxy_connect_url), "", 0, 0, NULL, NULL,
     "Backend URL (http:// or https://) of the connect hook (docs/backend.md): a native connect without a token, "
     "and an /sse handshake without one, is answered by the backend (user, expiry, channels). Empty = off."},
    {"proxy.connect_timeout", HR_OPT_DURATION, OFF(proxy_connect_timeout_ms), "1s", 10, 60000, NULL, NULL,
     "How long the connect hook may take; longer: error 116 (temporary), /sse 504."},
    {"proxy.connect_with_token", HR_OPT_BOOL, OFF(proxy_connect_with_token), "false", 0, 0, NULL, NULL,
     "Call the connect hook even when the client presents a valid token. false = a valid token skips the hook."},
    {"proxy.refresh_url", HR_OPT_STRING, OFF(proxy_refresh_url), "", 0, 0, NULL, NULL,
     "Backend URL of the refresh hook: called shortly before a proxied connection's expire_at for a new expiry. "
     "Empty = off (a proxied connection with expire_at is disconnected at expiry, 3005)."},
    {"proxy.refresh_timeout", HR_OPT_DURATION, OFF(proxy_refresh_timeout_ms), "1s", 10, 60000, NULL, NULL,
     "How long the refresh hook may take (a failure is retried while time before expiry is left)."},
    {"proxy.subscribe_url", HR_OPT_STRING, OFF(proxy_subscribe_url), "", 0, 0, NULL, NULL,
     "Backend URL of the subscribe hook, for namespaces with proxy_subscribe = true. Empty: their "
     "subscribes get error 116 (the hook is never skipped)."},
    {"proxy.subscribe_timeout", HR_OPT_DURATION, OFF(proxy_subscribe_timeout_ms), "1s", 10, 60000, NULL, NULL,
     "How long the subscribe hook may take; longer: error 116 (temporary)."},
    {"proxy.publish_url", HR_OPT_STRING, OFF(proxy_publish_url), "", 0, 0, NULL, NULL,
     "Backend URL of the publish hook, for namespaces with proxy_publish = true. Empty: their "
     "publishes get error 116 (the hook is never skipped)."},
    {"proxy.publish_timeout", HR_OPT_DURATION, OFF(proxy_publish_timeout_ms), "1s", 10, 60000, NULL, NULL,
     "How long the publish hook may take; longer: error 116 (temporary)."},
    {"proxy.rpc_url", HR_OPT_STRING, OFF(proxy_rpc_url), "", 0, 0, NULL, NULL,
     "Default backend URL of the rpc command (methods no proxy.rpc_routes prefix matches). Empty with no "
     "matching route: error 104 (method not found)."},
    {"proxy.rpc_timeout", HR_OPT_DURATION, OFF(proxy_rpc_timeout_ms), "1s", 10, 60000, NULL, NULL,
     "How long an rpc call may take; longer: error 116 (temporary)."},
    {"proxy.rpc_routes", HR_OPT_LIST, OFF(proxy_rpc_routes), "", 0, 0, NULL, NULL,
     "RPC routes as \"PREFIX=URL\": a method starting with PREFIX goes to URL (the longest prefix wins), "
     "others to proxy.rpc_url."},
    {"proxy.forward_headers", HR_OPT_LIST, OFF(proxy_forward_headers), "Cookie,Authorization,Origin", 0, 0, NULL,
     NULL, "Request headers (of the WebSocket upgrade, the /sse request or an HTTP session's first request) copied "
     "into the connect hook's headers; no other header reaches the backend."},
    {"proxy.headers", HR_OPT_LIST, OFF(proxy_headers), "", 0, 0, NULL, NULL,
     "Static \"Name: value\" headers sent on every hook call (Herald authenticating itself to the backend, "
     "e.g. \"X-Herald-Key: secret\")."},
    {"proxy.max_inflight", HR_OPT_INT, OFF(proxy_max_inflight), "64", 1, 100000, NULL, NULL,
     "Hook calls in flight at once per worker; past it a call fails at once with error 116 (temporary), "
     "/sse 503."},
    {"proxy.dial_timeout", HR_OPT_DURATION, OFF(proxy_dial_timeout_ms), "2s", 10, 60000, NULL, NULL,
     "TCP (and TLS) connect timeout to the backend (a hook's own timeout still bounds the whole call)."},
    {"proxy.max_response_bytes", HR_OPT_SIZE, OFF(proxy_max_response_bytes), "64KiB", 256, 16 * MiB, NULL, NULL,
     "Largest backend answer; larger: a malformed answer (error 116)."},
    {"proxy.max_idle_conns", HR_OPT_INT, OFF(proxy_max_idle_conns), "16", 0, 10000, NULL, NULL,
     "Keep-alive connections to the backend each worker keeps open for reuse."},
    {"proxy.ca_file", HR_OPT_STRING, OFF(proxy_ca_file), "", 0, 0, NULL, NULL,
     "PEM CA bundle that https:// backend certificates are verified against. Empty = the system store."},
};
const size_t hr_options_count = HR_ARRAY_LEN(hr_options);

/* [pusher.app.NAME] sections (ops/pusher_app.h, docs/pusher.md): each key
 * as the table above writes it, NAME standing for the section's name; no
 * environment variables, flags as --pusher.app.NAME.KEY. */
#define PAOFF(f) offsetof(hr_pusher_app, f)
const hr_option hr_pusher_app_options[] = {
    {"pusher.app.NAME.app_id", HR_OPT_STRING, PAOFF(app_id), "", 0, 0, NULL, NULL,
     "Required: the app's id (the HTTP API's /apps/{app_id}), made of A-Z a-z 0-9 _ - (64 bytes at most); it "
     "names the app's Herald namespace $pusher-{app_id}."},
    {"pusher.app.NAME.key", HR_OPT_STRING, PAOFF(key), "", 0, 0, NULL, NULL,
     "Required: the app key clients connect with (/app/{key}), made of A-Z a-z 0-9 _ - (64 bytes at most)."},
    {"pusher.app.NAME.secret", HR_OPT_STRING, PAOFF(secret), "", 0, 0, NULL, NULL,
     "Required: the app secret that signs private/presence subscriptions, signins and HTTP API requests."},
    {"pusher.app.NAME.enabled", HR_OPT_BOOL, PAOFF(enabled), "true", 0, 0, NULL, NULL,
     "false: clients of this app are refused with pusher:error 4003 and the connection closed."},
    {"pusher.app.NAME.client_events", HR_OPT_BOOL, PAOFF(client_events), "false", 0, 0, NULL, NULL,
     "Let clients send client-* events on private- and presence- channels (never on private-encrypted-)."},
    {"pusher.app.NAME.user_authentication", HR_OPT_BOOL, PAOFF(user_authentication), "false", 0, 0, NULL, NULL,
     "Accept pusher:signin (user authentication and server-to-user events). false: signin is refused "
     "(pusher:error 4009)."},
    {"pusher.app.NAME.activity_timeout", HR_OPT_DURATION, PAOFF(activity_timeout_ms), "120s", 1000, 3600000, NULL,
     NULL,
     "Told to clients in pusher:connection_established (in seconds); after this long without a message the "
     "server sends pusher:ping and closes with 4201 when no pusher:pong follows within 30 s (or activity_timeout, "
     "when shorter)."},
    {"pusher.app.NAME.max_connections", HR_OPT_INT, PAOFF(max_connections), "0", 0, 100000000, NULL, NULL,
     "Open client connections of this app on this node; past it a new one gets pusher:error 4100 and is "
     "closed. 0 = unbounded."},
    {"pusher.app.NAME.max_client_events_per_second", HR_OPT_INT, PAOFF(max_client_events_per_second), "10", 1,
     1000000, NULL, NULL,
     "Client events per connection per second; past it an event is dropped with pusher:error 4301 (the "
     "connection stays open)."},
    {"pusher.app.NAME.max_presence_members", HR_OPT_INT, PAOFF(max_presence_members), "100", 1, 100000, NULL, NULL,
     "Distinct user_ids in one presence- channel; a subscribe past it gets pusher:subscription_error (status "
     "403)."},
    {"pusher.app.NAME.max_channel_name_length", HR_OPT_INT, PAOFF(max_channel_name_length), "200", 1, 1000, NULL,
     NULL,
     "Bytes of a Pusher channel name; a longer one gets pusher:subscription_error (status 400). The Herald name "
     "it maps to must also fit channels.max_channel_length."},
    {"pusher.app.NAME.webhook_url", HR_OPT_STRING, PAOFF(webhook_url), "", 0, 0, NULL, NULL,
     "Where Pusher-format webhooks of this app go (empty = none): channel_occupied, channel_vacated, "
     "member_added, member_removed, client_event, signed with the app's secret (docs/pusher.md, Webhooks)."},
    {"pusher.app.NAME.webhook_events", HR_OPT_STRING, PAOFF(webhook_events), "", 0, 0, NULL, NULL,
     "Comma-separated webhook events to send; empty = all of channel_occupied, channel_vacated, member_added, "
     "member_removed, client_event."},
    {"pusher.app.NAME.max_event_channels", HR_OPT_INT, PAOFF(max_event_channels), "100", 1, 10000, NULL, NULL,
     "HTTP API: channels one POST /apps/{app_id}/events may name; more is refused with 400 (Pusher's limit is "
     "100)."},
    {"pusher.app.NAME.max_batch_events", HR_OPT_INT, PAOFF(max_batch_events), "10", 1, 10000, NULL, NULL,
     "HTTP API: events of one POST /apps/{app_id}/batch_events; more is refused with 400 (Pusher's limit is 10)."},
    {"pusher.app.NAME.api_replay_cache", HR_OPT_INT, PAOFF(api_replay_cache), "0", 0, 10000000, NULL, NULL,
     "HTTP API: signatures remembered (32 bytes each) so a replayed request is refused with 401; a request "
     "signed no later than the oldest signature forgotten within the 600 s window is refused too. Two "
     "identical requests in the same second are then one (the second refused): they cannot be told from a "
     "replay. 0 = no replay check, Pusher's own behaviour (the 600 s timestamp window only)."},
};
const size_t hr_pusher_app_options_count = HR_ARRAY_LEN(hr_pusher_app_options);

#define errf hr_errf

static void *field(hr_config *cfg, const hr_option *o) { return (char *)cfg + o->offset; }

static const hr_option *find_key(const char *key, size_t len)
{
    for (size_t i = 0; i < hr_options_count; i++)
        if (strlen(hr_options[i].key) == len && memcmp(hr_options[i].key, key, len) == 0) return &hr_options[i];
    return NULL;
}

/* Edit distance of a and b (insert, delete, replace), capped at 9. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 9;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] < 9 ? row[lb] : 9;
}

const hr_option *hr_config_closest(const char *key)
{
    const char *dot = strchr(key, '.');
    const hr_option *best = NULL;
    size_t bd = 3; /* at most 2 edits */
    for (size_t i = 0; i < hr_options_count; i++) {
        const char *k = hr_options[i].key;
        size_t d = edit_distance(key, k);
        const char *kd = strchr(k, '.');
        if (d >= bd && dot && kd && strcmp(kd, dot) == 0) d = 2; /* same name, other section */
        if (d < bd) {
            bd = d;
            best = &hr_options[i];
        }
    }
    return best;
}

/* " (did you mean \"K\"?)" for an unknown key, else "". */
static void did_you_mean(const char *key, char *out, size_t cap)
{
    const hr_option *best = hr_config_closest(key);
    if (best) snprintf(out, cap, " (did you mean \"%s\"?)", best->key);
    else if (cap) out[0] = '\0';
}

/* The same for an unknown [section]: the closest section of the options. */
static void did_you_mean_section(const char *section, char *out, size_t cap)
{
    char best[64] = "", cand[64];
    size_t bd = 3;
    for (size_t i = 0; i < hr_options_count; i++) {
        const char *k = hr_options[i].key, *dot = strchr(k, '.');
        if (!dot || (size_t)(dot - k) >= sizeof(cand)) continue;
        snprintf(cand, sizeof(cand), "%.*s", (int)(dot - k), k);
        size_t d = edit_distance(section, cand);
        if (d < bd) {
            bd = d;
            snprintf(best, sizeof(best), "%s", cand);
        }
    }
    if (best[0]) snprintf(out, cap, " (did you mean [%s]?)", best);
    else if (cap) out[0] = '\0';
}

/* Checks of a string option's value made as it is set, so that an error in
 * a file names its line: the HMAC secret's length and listen addresses. */
static int check_string(const hr_option *o, const char *value, char *err, size_t errlen)
{
    if (!value[0]) return 0;
    if (strcmp(o->key, "auth.token_hmac_secret") == 0 && strlen(value) < 32) {
        errf(err, errlen, "%s: at least 32 bytes, got %zu (herald genconfig makes one)", o->key, strlen(value));
        return HR_ERR_INVALID;
    }
    char host[256];
    int port;
    if ((strcmp(o->key, "server.listen") == 0 || strcmp(o->key, "tls.listen") == 0 ||
         strcmp(o->key, "metrics.listen") == 0) &&
        hr_parse_listen(value, host, sizeof(host), &port)) {
        errf(err, errlen, "%s: \"%s\" is not HOST:PORT, [IPv6]:PORT or :PORT (a port from 0 to 65535)", o->key,
             value);
        return HR_ERR_INVALID;
    }
    return 0;
}

int hr_parse_listen(const char *spec, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = spec;
    size_t hl;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end || end[1] != ':') return HR_ERR_INVALID;
        h = spec + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon) return HR_ERR_INVALID;
        hl = (size_t)(colon - spec);
        if (memchr(spec, ':', hl)) return HR_ERR_INVALID; /* bare IPv6 needs brackets */
    }
    if (hl + 1 > hostlen) return HR_ERR_INVALID;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 0 || p > 65535) return HR_ERR_INVALID;
    *port = (int)p;
    return 0;
}

int hr_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return HR_ERR_INVALID;
    double v = strtod(s, &end);
    if (errno || end == s) return HR_ERR_INVALID;
    while (isspace((unsigned char)*end)) end++;
    static const struct { const char *suffix; double mult; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1024.0}, {"kb", 1000.0}, {"kib", 1024.0}, {"m", 1048576.0}, {"mb", 1e6},
        {"mib", 1048576.0}, {"g", 1073741824.0}, {"gb", 1e9}, {"gib", 1073741824.0},
    };
    char unit[8];
    size_t n = strlen(end);
    if (n >= sizeof(unit)) return HR_ERR_INVALID;
    for (size_t i = 0; i <= n; i++) unit[i] = (char)tolower((unsigned char)end[i]);
    for (size_t i = 0; i < HR_ARRAY_LEN(units); i++) {
        if (strcmp(unit, units[i].suffix) == 0) {
            double r = v * units[i].mult;
            if (r > 9.2e18 || r != r) return HR_ERR_INVALID;
            if (r != (double)(int64_t)r) return HR_ERR_INVALID; /* fractional bytes */
            *out = (int64_t)r;
            return 0;
        }
    }
    return HR_ERR_INVALID;
}

int hr_parse_duration(const char *s, int64_t *out_ms)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return HR_ERR_INVALID;
    double v = strtod(s, &end);
    if (errno || end == s) return HR_ERR_INVALID;
    while (isspace((unsigned char)*end)) end++;
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0) mult = 1000;   /* a bare number is seconds */
    else if (strcmp(end, "ms") == 0) mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0) mult = 60000;
    else if (strcmp(end, "h") == 0) mult = 3600000;
    else return HR_ERR_INVALID;
    double r = v * mult;
    if (r > 9.2e18 || r != r) return HR_ERR_INVALID;
    *out_ms = (int64_t)(r + 0.5);
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) *out = true;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) *out = false;
    else return HR_ERR_INVALID;
    return 0;
}

static const char *const perm_names[] = {"anyone", "authenticated", "token", "subscribers", "none"};

const char *hr_perm_name(int64_t perm)
{
    return perm >= 0 && perm < (int64_t)HR_ARRAY_LEN(perm_names) ? perm_names[perm] : "?";
}

/* "one of anyone, authenticated, token" for an option's mask. */
static void perm_choices(const hr_option *o, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "one of");
    const char *sep = " ";
    for (size_t i = 0; i < HR_ARRAY_LEN(perm_names) && n < cap; i++) {
        if (!(o->min & (1 << i))) continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", sep, perm_names[i]);
        sep = ", ";
    }
}

static void list_clear(hr_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) hr_free(l->v[i]);
    l->n = 0;
}

static const char *type_hint(hr_opt_type t)
{
    switch (t) {
    case HR_OPT_STRING: return "a string";
    case HR_OPT_INT: return "an integer";
    case HR_OPT_BOOL: return "true or false";
    case HR_OPT_SIZE: return "a size like 16KiB, 1MiB or a number of bytes";
    case HR_OPT_DURATION: return "a duration like 500ms, 10s, 5m or a number of seconds";
    case HR_OPT_LIST: return "a list of strings";
    case HR_OPT_PERM: return "a permission";
    }
    return "a value";
}

/* Set an option from text (env / flag form: lists are comma-separated). */
/* Parse `value` as option o's type into *f (a field of o's type). */
static int set_value(const hr_option *o, void *f, const char *value, char *err, size_t errlen)
{
    int64_t v = 0;
    switch (o->type) {
    case HR_OPT_STRING: {
        int rc = check_string(o, value, err, errlen);
        if (rc) return rc;
        hr_free(*(char **)f);
        *(char **)f = hr_strdup(value);
        return 0;
    }
    case HR_OPT_BOOL:
        if (parse_bool(value, (bool *)f) == 0) return 0;
        break;
    case HR_OPT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(value, &end, 10);
        if (!errno && end != value && *end == '\0') {
            v = x;
            goto range;
        }
        break;
    }
    case HR_OPT_SIZE:
        if (hr_parse_size(value, &v) == 0) goto range;
        break;
    case HR_OPT_DURATION:
        if (hr_parse_duration(value, &v) == 0) goto range;
        break;
    case HR_OPT_PERM:
        for (size_t i = 0; i < HR_ARRAY_LEN(perm_names); i++) {
            if (strcmp(value, perm_names[i]) == 0 && (o->min & (1 << i))) {
                *(int64_t *)f = (int64_t)i;
                return 0;
            }
        }
        {
            char choices[128];
            perm_choices(o, choices, sizeof(choices));
            errf(err, errlen, "%s: expected %s, got \"%s\"", o->key, choices, value);
        }
        return HR_ERR_INVALID;
    case HR_OPT_LIST: {
        hr_strlist *l = f;
        list_clear(l);
        const char *p = value;
        while (*p) {
            while (*p == ' ' || *p == ',') p++;
            const char *e = p;
            while (*e && *e != ',') e++;
            const char *t = e;
            while (t > p && t[-1] == ' ') t--;
            if (t > p) {
                if (l->n == HR_CONFIG_MAX_LIST) {
                    errf(err, errlen, "%s: at most %d entries", o->key, HR_CONFIG_MAX_LIST);
                    return HR_ERR_INVALID;
                }
                l->v[l->n++] = hr_strndup(p, (size_t)(t - p));
            }
            p = e;
        }
        return 0;
    }
    }
    errf(err, errlen, "%s: expected %s, got \"%s\"", o->key, type_hint(o->type), value);
    return HR_ERR_INVALID;
range:
    if (v < o->min || v > o->max) {
        errf(err, errlen, "%s: %s is out of range (%lld..%lld%s)", o->key, value, (long long)o->min,
             (long long)o->max,
             o->type == HR_OPT_DURATION ? " ms" : o->type == HR_OPT_SIZE ? " bytes" : "");
        return HR_ERR_INVALID;
    }
    *(int64_t *)f = v;
    return 0;
}

static int set_text(hr_config *cfg, const hr_option *o, const char *value, char *err, size_t errlen)
{
    return set_value(o, field(cfg, o), value, err, errlen);
}

/* ---- namespaces ------------------------------------------------------------ */

#define POFF(f) offsetof(hr_chan_policy, f)
const char *const hr_ns_keys[] = {"history_size",    "history_ttl", "presence",    "join_leave",
                                  "allow_publish",   "allow_anonymous", "max_subscribers", "subscribe",
                                  "publish",         "history_for", "presence_for", "proxy_subscribe",
                                  "proxy_publish",   NULL};
static const size_t ns_field_off[] = {POFF(history_size),  POFF(history_ttl_ms),  POFF(presence),
                                      POFF(join_leave),    POFF(allow_publish),   POFF(allow_anonymous),
                                      POFF(max_subscribers), POFF(subscribe),     POFF(publish),
                                      POFF(history_for),   POFF(presence_for),    POFF(proxy_subscribe),
                                      POFF(proxy_publish)};
static const size_t ns_field_size[] = {sizeof(int64_t), sizeof(int64_t), sizeof(bool),    sizeof(bool),
                                       sizeof(bool),    sizeof(bool),    sizeof(int64_t), sizeof(int64_t),
                                       sizeof(int64_t), sizeof(int64_t), sizeof(int64_t), sizeof(bool),
                                       sizeof(bool)};

static void default_policy(const hr_config *cfg, hr_chan_policy *p)
{
    p->history_size = cfg->ch_history_size;
    p->history_ttl_ms = cfg->ch_history_ttl_ms;
    p->presence = cfg->ch_presence;
    p->join_leave = cfg->ch_join_leave;
    p->allow_publish = cfg->ch_allow_publish;
    p->allow_anonymous = cfg->ch_allow_anonymous;
    p->max_subscribers = cfg->ch_max_subscribers;
    p->subscribe = cfg->ch_subscribe;
    p->publish = cfg->ch_publish;
    p->history_for = cfg->ch_history_for;
    p->presence_for = cfg->ch_presence_for;
    p->proxy_subscribe = cfg->ch_proxy_subscribe;
    p->proxy_publish = cfg->ch_proxy_publish;
}

static const hr_namespace *find_ns(const hr_config *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        if (strlen(cfg->namespaces[i].name) == len && memcmp(cfg->namespaces[i].name, name, len) == 0)
            return &cfg->namespaces[i];
    return NULL;
}

int hr_config_policy(const hr_config *cfg, const char *channel, size_t len, hr_chan_policy *out)
{
    default_policy(cfg, out);
    const char *ns;
    size_t nl;
    hr_chan_namespace(channel, len, &ns, &nl);
    if (!nl) return 0;
    const hr_namespace *n = find_ns(cfg, ns, nl);
    if (!n) return cfg->ch_allow_unknown_namespaces ? 0 : HR_ERR_NOTFOUND;
    for (size_t i = 0; hr_ns_keys[i]; i++) {
        if (!(n->set & (1u << i))) continue;
        size_t off = ns_field_off[i];
        memcpy((char *)out + off, (const char *)&n->p + off, ns_field_size[i]);
    }
    return 0;
}

void hr_config_auth_opts(const hr_config *cfg, hr_auth_opts *out)
{
    *out = (hr_auth_opts){
        .token_hmac_secret = cfg->auth_token_hmac_secret,
        .keys = cfg->auth_keys,
        .nkeys = cfg->nauth_keys,
        .audience = cfg->auth_audience,
        .issuer = cfg->auth_issuer,
        .leeway_ms = cfg->auth_leeway_ms,
        .require_exp = cfg->auth_require_exp,
        .max_token_bytes = cfg->auth_max_token_bytes,
        .refresh_grace_ms = cfg->auth_refresh_grace_ms,
    };
}

/* A namespace name: the characters of a channel name except ':', '.', '#'
 * and the wildcards (docs/protocol.md). */
static bool ns_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr("_-=@,/!~+$%", c)) return false;
    }
    return true;
}

static hr_namespace *ns_get(hr_config *cfg, const char *name, size_t len)
{
    hr_namespace *n = (hr_namespace *)find_ns(cfg, name, len);
    if (n) return n;
    cfg->namespaces = hr_realloc(cfg->namespaces, (cfg->nnamespaces + 1) * sizeof(*cfg->namespaces));
    n = &cfg->namespaces[cfg->nnamespaces++];
    memset(n, 0, sizeof(*n));
    n->name = hr_strndup(name, len);
    return n;
}

/* "PREFIX.NAME.OPTION": *name .. *dot is NAME (checked by name_ok), opt
 * the OPTION with '-' written as '_'. */
static bool split_section_key(const char *key, const char *prefix, bool (*name_ok)(const char *, size_t),
                              const char **name, const char **dot, char *opt, size_t optcap)
{
    *name = key + strlen(prefix);
    *dot = strrchr(*name, '.');
    if (!*dot || !name_ok(*name, (size_t)(*dot - *name))) return false;
    size_t n = 0;
    for (const char *p = *dot + 1; *p && n + 1 < optcap; p++) opt[n++] = *p == '-' ? '_' : *p;
    opt[n] = '\0';
    return true;
}

/* namespace.NAME.webhook_url / webhook_events: the [webhook] option's type
 * and checks, kept beside the namespace's channel policy (not in it: a list
 * is too big to copy per command; only the webhook sender reads them). */
static int ns_set_webhook(hr_config *cfg, const char *name, const char *dot, const char *opt, const char *value,
                          bool *was_set, char *err, size_t errlen)
{
    bool url = strcmp(opt, "webhook_url") == 0;
    const hr_option *o = find_key(url ? "webhook.url" : "webhook.events", url ? 11 : 14);
    hr_namespace *ns = ns_get(cfg, name, (size_t)(dot - name));
    if (was_set) *was_set = url ? ns->webhook_url != NULL : ns->webhook_events_set;
    char msg[512];
    int rc = set_value(o, url ? (void *)&ns->webhook_url : (void *)&ns->webhook_events, value, msg, sizeof(msg));
    if (rc) {
        errf(err, errlen, "namespace.%s.%s", ns->name, msg + strlen("webhook."));
        return rc;
    }
    if (!url) ns->webhook_events_set = true;
    return 0;
}

/* "namespace.NAME.KEY" (KEY with '_' or '-') = value. *was_set tells whether
 * the key had been set before (for "set twice" in files). */
static int ns_set(hr_config *cfg, const char *key, const char *value, bool *was_set, char *err, size_t errlen)
{
    const char *name, *dot;
    char opt[64];
    if (!split_section_key(key, "namespace.", ns_name_ok, &name, &dot, opt, sizeof(opt))) {
        errf(err, errlen, "%s: expected namespace.NAME.OPTION, NAME made of A-Z a-z 0-9 _-=@,/!~+$%%", key);
        return HR_ERR_INVALID;
    }
    if (strcmp(opt, "webhook_url") == 0 || strcmp(opt, "webhook_events") == 0)
        return ns_set_webhook(cfg, name, dot, opt, value, was_set, err, errlen);
    for (size_t i = 0; hr_ns_keys[i]; i++) {
        if (strcmp(opt, hr_ns_keys[i]) != 0) continue;
        char ckey[80];
        snprintf(ckey, sizeof(ckey), "channels.%s", opt);
        const hr_option *o = find_key(ckey, strlen(ckey));
        hr_namespace *ns = ns_get(cfg, name, (size_t)(dot - name));
        if (was_set) *was_set = ns->set & (1u << i);
        char msg[512];
        int rc = set_value(o, (char *)&ns->p + ns_field_off[i], value, msg, sizeof(msg));
        if (rc) {
            errf(err, errlen, "namespace.%s.%s", ns->name, msg + strlen("channels."));
            return rc;
        }
        ns->set |= 1u << i;
        return 0;
    }
    errf(err, errlen, "%s: unknown namespace option \"%s\" (one of history_size, history_ttl, presence, join_leave, "
         "allow_publish, allow_anonymous, max_subscribers, subscribe, publish, history_for, presence_for, "
         "proxy_subscribe, proxy_publish, webhook_url, webhook_events)", key, opt);
    return HR_ERR_NOTFOUND;
}

/* ---- [pusher.app.NAME] -------------------------------------------------------- */

/* An [auth.key.NAME]'s NAME (also its default kid), a Pusher app's NAME,
 * app_id or key: A-Z a-z 0-9 _ - (64 bytes at most). */
static bool key_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return false;
    return true;
}

static hr_pusher_app *app_get(hr_config *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->pusher.n; i++)
        if (strlen(cfg->pusher.v[i].name) == len && !memcmp(cfg->pusher.v[i].name, name, len))
            return &cfg->pusher.v[i];
    if (cfg->pusher.n >= 64) return NULL;
    cfg->pusher.v = hr_realloc(cfg->pusher.v, (cfg->pusher.n + 1) * sizeof(*cfg->pusher.v));
    hr_pusher_app *a = &cfg->pusher.v[cfg->pusher.n++];
    memset(a, 0, sizeof(*a));
    a->name = hr_strndup(name, len);
    for (size_t i = 0; i < hr_pusher_app_options_count; i++) {
        int rc = set_value(&hr_pusher_app_options[i], (char *)a + hr_pusher_app_options[i].offset,
                           hr_pusher_app_options[i].def, NULL, 0);
        (void)rc;
    }
    return a;
}

/* "pusher.app.NAME.KEY" (KEY with '_' or '-') = value. */
static int app_set(hr_config *cfg, const char *key, const char *value, bool *was_set, char *err, size_t errlen)
{
    const char *name, *dot;
    char opt[64];
    if (!split_section_key(key, "pusher.app.", key_name_ok, &name, &dot, opt, sizeof(opt))) {
        errf(err, errlen, "%s: expected pusher.app.NAME.OPTION, NAME made of A-Z a-z 0-9 _ -", key);
        return HR_ERR_INVALID;
    }
    for (size_t i = 0; i < hr_pusher_app_options_count; i++) {
        hr_option o = hr_pusher_app_options[i];
        if (strcmp(o.key + strlen("pusher.app.NAME."), opt) != 0) continue;
        hr_pusher_app *a = app_get(cfg, name, (size_t)(dot - name));
        if (!a) {
            errf(err, errlen, "%s: at most 64 [pusher.app.NAME] sections", key);
            return HR_ERR_INVALID;
        }
        char real[160];
        snprintf(real, sizeof(real), "pusher.app.%s.%s", a->name, opt);
        o.key = real;
        if (was_set) *was_set = a->set & (1u << i);
        int rc = set_value(&o, (char *)a + o.offset, value, err, errlen);
        if (!rc) a->set |= 1u << i;
        return rc;
    }
    errf(err, errlen, "%s: unknown Pusher app option \"%s\" (one of app_id, key, secret, enabled, client_events, "
         "user_authentication, activity_timeout, max_connections, max_client_events_per_second, "
         "max_presence_members, max_channel_name_length, webhook_url, webhook_events, max_event_channels, "
         "max_batch_events, api_replay_cache)", key, opt);
    return HR_ERR_NOTFOUND;
}

static void apps_free(hr_config *cfg)
{
    for (size_t i = 0; i < cfg->pusher.n; i++) {
        hr_pusher_app *a = &cfg->pusher.v[i];
        hr_free(a->name);
        for (size_t j = 0; j < hr_pusher_app_options_count; j++)
            if (hr_pusher_app_options[j].type == HR_OPT_STRING)
                hr_free(*(char **)((char *)a + hr_pusher_app_options[j].offset));
    }
    hr_free(cfg->pusher.v);
    cfg->pusher.v = NULL;
    cfg->pusher.n = 0;
}

/* Each app has app_id, key and secret; app ids and keys are unique; the
 * webhook's URL and events are well formed. */
static int app_check(const hr_config *cfg, const hr_pusher_app *a, size_t i, char *err, size_t errlen)
{
    const char *need = !a->app_id[0] ? "app_id" : !a->key[0] ? "key" : !a->secret[0] ? "secret" : NULL;
    if (need) {
        errf(err, errlen, "pusher.app.%s.%s: required (app_id, key and secret)", a->name, need);
        return HR_ERR_INVALID;
    }
    if (!key_name_ok(a->app_id, strlen(a->app_id)) || !key_name_ok(a->key, strlen(a->key))) {
        errf(err, errlen, "pusher.app.%s.%s: expected 1 to 64 of A-Z a-z 0-9 _ -", a->name,
             key_name_ok(a->app_id, strlen(a->app_id)) ? "key" : "app_id");
        return HR_ERR_INVALID;
    }
    for (size_t j = 0; j < i; j++) {
        const hr_pusher_app *o = &cfg->pusher.v[j];
        bool id = !strcmp(o->app_id, a->app_id);
        if (id || !strcmp(o->key, a->key)) {
            errf(err, errlen, "pusher.app.%s.%s: \"%s\" is also pusher.app.%s's", a->name, id ? "app_id" : "key",
                 id ? a->app_id : a->key, o->name);
            return HR_ERR_INVALID;
        }
    }
    if (a->webhook_url[0] && strncmp(a->webhook_url, "http://", 7) && strncmp(a->webhook_url, "https://", 8)) {
        errf(err, errlen, "pusher.app.%s.webhook_url: expected an http:// or https:// URL", a->name);
        return HR_ERR_INVALID;
    }
    for (const char *p = a->webhook_events; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char ev[40]; /* one name, checked by the parser the webhook sender uses */
        snprintf(ev, sizeof(ev), "%.*s", (int)HR_MIN(n, sizeof(ev) - 1), p);
        if (!n || n >= sizeof(ev) || hr_webhook_pusher_mask(ev) < 0) {
            errf(err, errlen, "pusher.app.%s.webhook_events: unknown event \"%.*s\" (one of %s)", a->name, (int)n, p,
                 HR_PUSHER_WEBHOOK_EVENTS);
            return HR_ERR_INVALID;
        }
        p = e ? e + 1 : p + n;
    }
    return 0;
}

static int apps_validate(const hr_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->pusher.n; i++) {
        int rc = app_check(cfg, &cfg->pusher.v[i], i, err, errlen);
        if (rc) return rc;
    }
    return 0;
}

/* ---- [auth.key.NAME] ---------------------------------------------------------- */

#define KOFF(f) offsetof(hr_auth_key_cfg, f)
const char *const hr_auth_key_keys[] = {"alg", "kid", "secret", "secret_file", "public_key_file", "private_key_file",
                                        NULL};
static const size_t key_field_off[] = {KOFF(alg), KOFF(kid), KOFF(secret), KOFF(secret_file), KOFF(public_key_file),
                                       KOFF(private_key_file)};


/* "auth.key.NAME.OPTION" = value (a string). */
static int authkey_set(hr_config *cfg, const char *key, const char *value, bool *was_set, char *err, size_t errlen)
{
    const char *name, *dot;
    char opt[64];
    if (!split_section_key(key, "auth.key.", key_name_ok, &name, &dot, opt, sizeof(opt))) {
        errf(err, errlen, "%s: expected auth.key.NAME.OPTION, NAME made of A-Z a-z 0-9 _ -", key);
        return HR_ERR_INVALID;
    }
    size_t nl = (size_t)(dot - name);
    for (size_t i = 0; hr_auth_key_keys[i]; i++) {
        if (strcmp(opt, hr_auth_key_keys[i]) != 0) continue;
        hr_auth_key_cfg *k = NULL;
        for (size_t j = 0; j < cfg->nauth_keys && !k; j++)
            if (strlen(cfg->auth_keys[j].name) == nl && memcmp(cfg->auth_keys[j].name, name, nl) == 0)
                k = &cfg->auth_keys[j];
        if (!k) {
            if (cfg->nauth_keys >= 64) {
                errf(err, errlen, "%s: at most 64 [auth.key.NAME] sections", key);
                return HR_ERR_INVALID;
            }
            cfg->auth_keys = hr_realloc(cfg->auth_keys, (cfg->nauth_keys + 1) * sizeof(*cfg->auth_keys));
            k = &cfg->auth_keys[cfg->nauth_keys++];
            memset(k, 0, sizeof(*k));
            k->name = hr_strndup(name, nl);
        }
        if (was_set) *was_set = k->set & (1u << i);
        char **f = (char **)((char *)k + key_field_off[i]);
        hr_free(*f);
        *f = hr_strdup(value);
        k->set |= 1u << i;
        return 0;
    }
    errf(err, errlen, "%s: unknown key option \"%s\" (one of alg, kid, secret, secret_file, public_key_file, "
         "private_key_file)", key, opt);
    return HR_ERR_NOTFOUND;
}

static void authkeys_free(hr_config *cfg)
{
    for (size_t i = 0; i < cfg->nauth_keys; i++) {
        hr_auth_key_cfg *k = &cfg->auth_keys[i];
        hr_free(k->name);
        for (size_t j = 0; hr_auth_key_keys[j]; j++) hr_free(*(char **)((char *)k + key_field_off[j]));
    }
    hr_free(cfg->auth_keys);
    cfg->auth_keys = NULL;
    cfg->nauth_keys = 0;
}

static bool is_hmac_alg(const char *a)
{
    return a && (!strcmp(a, "HS256") || !strcmp(a, "HS384") || !strcmp(a, "HS512"));
}

/* Shape of the [auth.key.NAME] sections (the files are read by src/auth). */
static int authkeys_validate(const hr_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nauth_keys; i++) {
        const hr_auth_key_cfg *k = &cfg->auth_keys[i];
        const char *a = k->alg;
        if (!a || (!is_hmac_alg(a) && strcmp(a, "RS256") && strcmp(a, "ES256") && strcmp(a, "EdDSA"))) {
            errf(err, errlen, "auth.key.%s.alg: expected HS256, HS384, HS512, RS256, ES256 or EdDSA%s", k->name,
                 a ? "" : " (alg is required)");
            return HR_ERR_INVALID;
        }
        if (is_hmac_alg(a)) {
            if (!!k->secret == !!k->secret_file) {
                errf(err, errlen, "auth.key.%s: an %s key needs exactly one of secret and secret_file", k->name, a);
                return HR_ERR_INVALID;
            }
            if (k->public_key_file || k->private_key_file) {
                errf(err, errlen, "auth.key.%s: an %s key takes a secret, not key files", k->name, a);
                return HR_ERR_INVALID;
            }
        } else {
            if (k->secret || k->secret_file) {
                errf(err, errlen, "auth.key.%s: an %s key takes public_key_file (or private_key_file), not a secret",
                     k->name, a);
                return HR_ERR_INVALID;
            }
            if (!k->public_key_file && !k->private_key_file) {
                errf(err, errlen, "auth.key.%s: an %s key needs public_key_file (or private_key_file)", k->name, a);
                return HR_ERR_INVALID;
            }
        }
        const char *kid = k->kid ? k->kid : k->name;
        for (size_t j = 0; j < i; j++) {
            const hr_auth_key_cfg *o = &cfg->auth_keys[j];
            if (!strcmp(kid, o->kid ? o->kid : o->name)) {
                errf(err, errlen, "auth.key.%s: kid \"%s\" is also the kid of auth.key.%s", k->name, kid, o->name);
                return HR_ERR_INVALID;
            }
        }
    }
    return 0;
}

void hr_config_defaults(hr_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < hr_options_count; i++) {
        int rc = set_text(cfg, &hr_options[i], hr_options[i].def, NULL, 0);
        (void)rc;
    }
}

void hr_config_free(hr_config *cfg)
{
    authkeys_free(cfg);
    apps_free(cfg);
    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        hr_free(cfg->namespaces[i].name);
        hr_free(cfg->namespaces[i].webhook_url);
        list_clear(&cfg->namespaces[i].webhook_events);
    }
    hr_free(cfg->namespaces);
    cfg->namespaces = NULL;
    cfg->nnamespaces = 0;
    for (size_t i = 0; i < hr_options_count; i++) {
        void *f = field(cfg, &hr_options[i]);
        if (hr_options[i].type == HR_OPT_STRING) {
            hr_free(*(char **)f);
            *(char **)f = NULL;
        } else if (hr_options[i].type == HR_OPT_LIST) {
            list_clear(f);
        }
    }
}

int hr_config_set(hr_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    if (strncmp(key, "namespace.", 10) == 0) return ns_set(cfg, key, value, NULL, err, errlen);
    if (strncmp(key, "auth.key.", 9) == 0) return authkey_set(cfg, key, value, NULL, err, errlen);
    if (strncmp(key, "pusher.app.", 11) == 0) return app_set(cfg, key, value, NULL, err, errlen);
    const hr_option *o = find_key(key, strlen(key));
    if (!o) {
        char hint[128];
        did_you_mean(key, hint, sizeof(hint));
        errf(err, errlen, "unknown option \"%s\"%s", key, hint);
        return HR_ERR_NOTFOUND;
    }
    return set_text(cfg, o, value, err, errlen);
}

/* ---- TOML subset ---------------------------------------------------------- */

typedef struct tparser {
    const char *name;
    const char *p;
    int line;
    char *err;
    size_t errlen;
} tparser;

static void skip_ws(tparser *t)
{
    while (*t->p == ' ' || *t->p == '\t') t->p++;
}

/* Skip spaces, comments and (when multiline) newlines. */
static void skip_ws_nl(tparser *t)
{
    for (;;) {
        skip_ws(t);
        if (*t->p == '#') {
            while (*t->p && *t->p != '\n') t->p++;
        } else if (*t->p == '\n') {
            t->line++;
            t->p++;
        } else if (*t->p == '\r' && t->p[1] == '\n') {
            t->p++;
        } else {
            return;
        }
    }
}

static bool key_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'; }

/* A scalar value: "string", 'literal', or a bare word (number / bool). The
 * result is written to out (NUL-terminated). *quoted says which. */
static int parse_scalar(tparser *t, char *out, size_t cap, bool *quoted)
{
    size_t n = 0;
    *quoted = false;
    if (*t->p == '"' || *t->p == '\'') {
        char q = *t->p++;
        *quoted = true;
        while (*t->p && *t->p != q && *t->p != '\n') {
            char c = *t->p++;
            if (q == '"' && c == '\\') {
                char e = *t->p++;
                switch (e) {
                case 'n': c = '\n'; break;
                case 't': c = '\t'; break;
                case 'r': c = '\r'; break;
                case '"': c = '"'; break;
                case '\\': c = '\\'; break;
                default:
                    errf(t->err, t->errlen, "%s:%d: unsupported escape \\%c in string", t->name, t->line, e ? e : ' ');
                    return HR_ERR_INVALID;
                }
            }
            if (n + 1 >= cap) {
                errf(t->err, t->errlen, "%s:%d: string too long", t->name, t->line);
                return HR_ERR_INVALID;
            }
            out[n++] = c;
        }
        if (*t->p != q) {
            errf(t->err, t->errlen, "%s:%d: unterminated string", t->name, t->line);
            return HR_ERR_INVALID;
        }
        t->p++;
    } else {
        while (*t->p && (isalnum((unsigned char)*t->p) || *t->p == '_' || *t->p == '.' || *t->p == '-' || *t->p == '+')) {
            if (n + 1 >= cap) {
                errf(t->err, t->errlen, "%s:%d: value too long", t->name, t->line);
                return HR_ERR_INVALID;
            }
            char c = *t->p++;
            if (c != '_') out[n++] = c;  /* TOML allows 1_000_000 */
        }
        if (n == 0) {
            errf(t->err, t->errlen, "%s:%d: expected a value", t->name, t->line);
            return HR_ERR_INVALID;
        }
    }
    out[n] = '\0';
    return 0;
}

static int end_of_line(tparser *t)
{
    skip_ws(t);
    if (*t->p == '#')
        while (*t->p && *t->p != '\n') t->p++;
    if (*t->p == '\r') t->p++;
    if (*t->p == '\n') {
        t->p++;
        t->line++;
        return 0;
    }
    if (*t->p == '\0') return 0;
    errf(t->err, t->errlen, "%s:%d: unexpected text \"%.20s\" after value", t->name, t->line, t->p);
    return HR_ERR_INVALID;
}

/* A setter of one key of a named section (ns_set, authkey_set, app_set). */
typedef int (*section_set_fn)(hr_config *cfg, const char *key, const char *value, bool *was_set, char *err,
                              size_t errlen);

/* SECTION.NAME.KEY = value through its section's setter; quoted: the value
 * must be a quoted string ([auth.key.NAME]'s are all strings). */
static int assign_section(tparser *t, hr_config *cfg, const char *key, section_set_fn set, bool quoted_only)
{
    char val[4096], msg[512];
    bool quoted, was_set = false;
    int rc = parse_scalar(t, val, sizeof(val), &quoted);
    if (rc) return rc;
    if (quoted_only && !quoted) {
        errf(t->err, t->errlen, "%s:%d: %s: expected a quoted string", t->name, t->line, key);
        return HR_ERR_INVALID;
    }
    rc = set(cfg, key, val, &was_set, msg, sizeof(msg));
    if (rc) {
        errf(t->err, t->errlen, "%s:%d: %s", t->name, t->line, msg);
        return rc;
    }
    if (was_set) {
        errf(t->err, t->errlen, "%s:%d: %s: set twice", t->name, t->line, key);
        return HR_ERR_INVALID;
    }
    return end_of_line(t);
}

static int assign(tparser *t, hr_config *cfg, const char *key, bool *seen)
{
    if (strncmp(key, "pusher.app.", 11) == 0) return assign_section(t, cfg, key, app_set, false);
    if (strncmp(key, "namespace.", 10) == 0) return assign_section(t, cfg, key, ns_set, false);
    if (strncmp(key, "auth.key.", 9) == 0) return assign_section(t, cfg, key, authkey_set, true);
    const hr_option *o = find_key(key, strlen(key));
    if (!o) {
        char hint[128];
        did_you_mean(key, hint, sizeof(hint));
        errf(t->err, t->errlen, "%s:%d: %s: unknown option%s", t->name, t->line, key, hint);
        return HR_ERR_NOTFOUND;
    }
    size_t idx = (size_t)(o - hr_options);
    if (seen[idx]) {
        errf(t->err, t->errlen, "%s:%d: %s: set twice", t->name, t->line, key);
        return HR_ERR_INVALID;
    }
    seen[idx] = true;
    char val[4096];
    bool quoted;
    char msg[512];
    if (o->type == HR_OPT_LIST) {
        if (*t->p != '[') {
            errf(t->err, t->errlen, "%s:%d: %s: expected a list like [\"a\", \"b\"]", t->name, t->line, key);
            return HR_ERR_INVALID;
        }
        t->p++;
        hr_strlist *l = field(cfg, o);
        list_clear(l);
        for (;;) {
            skip_ws_nl(t);
            if (*t->p == ']') {
                t->p++;
                break;
            }
            int rc = parse_scalar(t, val, sizeof(val), &quoted);
            if (rc) return rc;
            if (!quoted) {
                errf(t->err, t->errlen, "%s:%d: %s: list entries must be quoted strings", t->name, t->line, key);
                return HR_ERR_INVALID;
            }
            if (l->n == HR_CONFIG_MAX_LIST) {
                errf(t->err, t->errlen, "%s:%d: %s: at most %d entries", t->name, t->line, key, HR_CONFIG_MAX_LIST);
                return HR_ERR_INVALID;
            }
            l->v[l->n++] = hr_strdup(val);
            skip_ws_nl(t);
            if (*t->p == ',') {
                t->p++;
            } else if (*t->p != ']') {
                errf(t->err, t->errlen, "%s:%d: %s: expected ',' or ']' in list", t->name, t->line, key);
                return HR_ERR_INVALID;
            }
        }
        return end_of_line(t);
    }
    int rc = parse_scalar(t, val, sizeof(val), &quoted);
    if (rc) return rc;
    if (o->type == HR_OPT_STRING && !quoted) {
        errf(t->err, t->errlen, "%s:%d: %s: expected a quoted string", t->name, t->line, key);
        return HR_ERR_INVALID;
    }
    if (o->type == HR_OPT_PERM && !quoted) {
        errf(t->err, t->errlen, "%s:%d: %s: expected a quoted string such as \"anyone\"", t->name, t->line, key);
        return HR_ERR_INVALID;
    }
    if ((o->type == HR_OPT_INT || o->type == HR_OPT_BOOL) && quoted) {
        errf(t->err, t->errlen, "%s:%d: %s: expected %s without quotes", t->name, t->line, key, type_hint(o->type));
        return HR_ERR_INVALID;
    }
    if (o->type == HR_OPT_BOOL && strcmp(val, "true") && strcmp(val, "false")) {
        errf(t->err, t->errlen, "%s:%d: %s: expected true or false", t->name, t->line, key);
        return HR_ERR_INVALID;
    }
    rc = set_text(cfg, o, val, msg, sizeof(msg));
    if (rc) {
        errf(t->err, t->errlen, "%s:%d: %s", t->name, t->line, msg);
        return rc;
    }
    return end_of_line(t);
}

int hr_config_load_string(hr_config *cfg, const char *name, const char *text, char *err, size_t errlen)
{
    tparser t = {name, text, 1, err, errlen};
    char section[128] = "";
    bool *seen = hr_calloc(hr_options_count, sizeof(bool));
    int rc = 0;
    for (;;) {
        skip_ws_nl(&t);
        if (!*t.p) break;
        if (*t.p == '[') {
            t.p++;
            skip_ws(&t);
            size_t n = 0;
            while (key_char(*t.p) && n + 1 < sizeof(section)) section[n++] = *t.p++;
            section[n] = '\0';
            skip_ws(&t);
            if (n == 0 || *t.p != ']') {
                errf(err, errlen, "%s:%d: bad section header", name, t.line);
                rc = HR_ERR_INVALID;
                break;
            }
            t.p++;
            bool known = (strncmp(section, "namespace.", 10) == 0 && ns_name_ok(section + 10, n - 10)) ||
                         (strncmp(section, "auth.key.", 9) == 0 && key_name_ok(section + 9, n - 9)) ||
                         (strncmp(section, "pusher.app.", 11) == 0 && key_name_ok(section + 11, n - 11));
            for (size_t i = 0; i < hr_options_count; i++)
                if (!strncmp(hr_options[i].key, section, n) && hr_options[i].key[n] == '.') known = true;
            if (!known) {
                char hint[96];
                did_you_mean_section(section, hint, sizeof(hint));
                errf(err, errlen, "%s:%d: [%s]: unknown section%s", name, t.line, section,
                     strncmp(section, "namespace.", 10) == 0 ? " (namespace names are made of A-Z a-z 0-9 _-=@,/!~+$%)"
                     : strncmp(section, "auth.key.", 9) == 0 ? " (key names are made of A-Z a-z 0-9 _ -)"
                     : strncmp(section, "pusher.app.", 11) == 0 ? " (app names are made of A-Z a-z 0-9 _ -)"
                                                             : hint);
                rc = HR_ERR_NOTFOUND;
                break;
            }
            if ((rc = end_of_line(&t))) break;
            continue;
        }
        char key[256];
        size_t n = 0;
        if (section[0]) n = (size_t)snprintf(key, sizeof(key), "%s.", section);
        const char *k0 = t.p;
        while (key_char(*t.p) && n + 1 < sizeof(key)) key[n++] = *t.p++;
        key[n] = '\0';
        if (t.p == k0) {
            errf(err, errlen, "%s:%d: expected key = value", name, t.line);
            rc = HR_ERR_INVALID;
            break;
        }
        skip_ws(&t);
        if (*t.p != '=') {
            errf(err, errlen, "%s:%d: %s: expected '=' after the key", name, t.line, key);
            rc = HR_ERR_INVALID;
            break;
        }
        t.p++;
        skip_ws(&t);
        if ((rc = assign(&t, cfg, key, seen))) break;
    }
    hr_free(seen);
    return rc;
}

int hr_config_load_file(hr_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return HR_ERR_IO;
    }
    hr_buf b = HR_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        hr_buf_append(&b, chunk, n);
        if (b.len > 4 * MiB) break;
    }
    fclose(f);
    if (b.len > 4 * MiB) {
        hr_buf_free(&b);
        errf(err, errlen, "%s: larger than 4 MiB", path);
        return HR_ERR_TOO_BIG;
    }
    hr_buf_append(&b, "", 1);
    if (memchr(b.data, '\0', b.len - 1)) {
        hr_buf_free(&b);
        errf(err, errlen, "%s: contains NUL bytes; not a text file", path);
        return HR_ERR_INVALID;
    }
    int rc = hr_config_load_string(cfg, path, (const char *)b.data, err, errlen);
    hr_buf_free(&b);
    return rc;
}

/* "websocket.max_message_size" -> "HERALD_WEBSOCKET_MAX_MESSAGE_SIZE" */
static void env_name(const hr_option *o, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "HERALD_");
    for (const char *k = o->key; *k && n + 1 < cap; k++)
        out[n++] = (*k == '.' || *k == '-') ? '_' : (char)toupper((unsigned char)*k);
    out[n] = '\0';
}

int hr_config_load_env(hr_config *cfg, char *const *envp, char *err, size_t errlen)
{
    for (size_t i = 0; i < hr_options_count; i++) {
        const hr_option *o = &hr_options[i];
        char name[128];
        env_name(o, name, sizeof(name));
        for (int pass = 0; pass < 2; pass++) {
            const char *want = pass == 0 ? name : o->env;
            if (!want) continue;
            size_t wl = strlen(want);
            for (char *const *e = envp; e && *e; e++) {
                if (strncmp(*e, want, wl) == 0 && (*e)[wl] == '=') {
                    char msg[512];
                    int rc = set_text(cfg, o, *e + wl + 1, msg, sizeof(msg));
                    if (rc) {
                        errf(err, errlen, "environment %s: %s", want, msg);
                        return rc;
                    }
                }
            }
        }
    }
    return 0;
}

const hr_option *hr_config_find_flag(const char *flag)
{
    char norm[256];
    size_t n = 0;
    for (const char *p = flag; *p && n + 1 < sizeof(norm); p++) norm[n++] = *p == '-' ? '_' : *p;
    norm[n] = '\0';
    for (size_t i = 0; i < hr_options_count; i++) {
        const hr_option *o = &hr_options[i];
        if (o->flag && strcmp(o->flag + 2, flag) == 0) return o;
        if (strcmp(o->key, norm) == 0) return o;
    }
    return NULL;
}

static bool http_url(const char *u)
{
    return !u[0] || strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

/* [proxy]: URLs are http(s), routes are PREFIX=URL, static headers Name: value. */
/* Every entry of a list of addresses and CIDR ranges parses. */
static int check_cidr_list(const char *key, const hr_strlist *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        hr_cidr c;
        if (hr_cidr_parse(l->v[i], &c)) {
            errf(err, errlen, "%s: \"%s\" is not an IP address or CIDR range "
                 "(such as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32)", key, l->v[i]);
            return HR_ERR_INVALID;
        }
    }
    return 0;
}

static int proxy_validate(const hr_config *cfg, char *err, size_t errlen)
{
    const struct { const char *key, *url; } urls[] = {
        {"proxy.connect_url", cfg->proxy_connect_url}, {"proxy.refresh_url", cfg->proxy_refresh_url},
        {"proxy.subscribe_url", cfg->proxy_subscribe_url}, {"proxy.publish_url", cfg->proxy_publish_url},
        {"proxy.rpc_url", cfg->proxy_rpc_url}};
    for (size_t i = 0; i < HR_ARRAY_LEN(urls); i++)
        if (!http_url(urls[i].url)) {
            errf(err, errlen, "%s: expected an http:// or https:// URL, got \"%s\"", urls[i].key, urls[i].url);
            return HR_ERR_INVALID;
        }
    for (size_t i = 0; i < cfg->proxy_rpc_routes.n; i++) {
        const char *r = cfg->proxy_rpc_routes.v[i], *eq = strchr(r, '=');
        if (!eq || eq == r || !eq[1] || !http_url(eq + 1)) {
            errf(err, errlen, "proxy.rpc_routes: expected \"PREFIX=http(s)://URL\", got \"%s\"", r);
            return HR_ERR_INVALID;
        }
    }
    for (size_t i = 0; i < cfg->proxy_headers.n; i++) {
        const char *h = cfg->proxy_headers.v[i], *colon = strchr(h, ':');
        if (!colon || colon == h || strpbrk(h, "\r\n")) {
            errf(err, errlen, "proxy.headers: expected \"Name: value\", got \"%s\"", h);
            return HR_ERR_INVALID;
        }
    }
    return 0;
}

/* Every event name known; every URL http(s). */
static int webhook_check(const char *what, const char *url, const hr_strlist *events, char *err, size_t errlen)
{
    if (url && !http_url(url)) {
        errf(err, errlen, "%s: expected an http:// or https:// URL, got \"%s\"", what, url);
        return HR_ERR_INVALID;
    }
    uint32_t mask;
    const char *bad = hr_webhook_events_mask(events->v, events->n, &mask);
    if (bad) {
        errf(err, errlen, "%s: unknown event \"%s\" (one of %s)", what, bad, HR_WEBHOOK_EVENT_NAMES);
        return HR_ERR_INVALID;
    }
    return 0;
}

/* [webhook] and the namespaces' webhook_url / webhook_events. */
static int webhook_validate(const hr_config *cfg, char *err, size_t errlen)
{
    int rc = webhook_check("webhook", cfg->webhook_url, &cfg->webhook_events, err, errlen);
    for (size_t i = 0; !rc && i < cfg->nnamespaces; i++) {
        char what[96];
        snprintf(what, sizeof(what), "namespace.%s.webhook", cfg->namespaces[i].name);
        rc = webhook_check(what, cfg->namespaces[i].webhook_url, &cfg->namespaces[i].webhook_events, err, errlen);
    }
    if (!rc && cfg->webhook_retry_max_delay_ms < cfg->webhook_retry_min_delay_ms) {
        errf(err, errlen, "webhook.retry_max_delay (%lld ms) must not be shorter than webhook.retry_min_delay (%lld ms)",
             (long long)cfg->webhook_retry_max_delay_ms, (long long)cfg->webhook_retry_min_delay_ms);
        rc = HR_ERR_INVALID;
    }
    return rc;
}

int hr_config_validate(const hr_config *cfg, char *err, size_t errlen)
{
    if (cfg->ws_idle_timeout_ms && cfg->ws_ping_interval_ms && cfg->ws_idle_timeout_ms <= cfg->ws_ping_interval_ms) {
        errf(err, errlen, "websocket.idle_timeout (%lld ms) must be longer than websocket.ping_interval (%lld ms)",
             (long long)cfg->ws_idle_timeout_ms, (long long)cfg->ws_ping_interval_ms);
        return HR_ERR_INVALID;
    }
    if (hr_log_format_parse(cfg->log_format) < 0) {
        errf(err, errlen, "server.log_format: expected text or json, got \"%s\"", cfg->log_format);
        return HR_ERR_INVALID;
    }
    if (hr_log_level_valid(cfg->log_level) < 0) {
        errf(err, errlen, "server.log_level: expected debug, info, warn, error or off, got \"%s\"", cfg->log_level);
        return HR_ERR_INVALID;
    }
    if (strcmp(cfg->engine, "memory") != 0 && strcmp(cfg->engine, "redis") != 0 &&
        strcmp(cfg->engine, "memory-delayed") != 0) {
        errf(err, errlen, "server.engine: expected memory or redis, got \"%s\"", cfg->engine);
        return HR_ERR_INVALID;
    }
    if (hr_fsync_mode_parse(cfg->engine_fsync) < 0) {
        errf(err, errlen, "engine.fsync: expected always, interval or never, got \"%s\"", cfg->engine_fsync);
        return HR_ERR_INVALID;
    }
    if (cfg->data_dir[0] && strcmp(cfg->engine, "memory") != 0) {
        errf(err, errlen, "engine.data_dir: the durable log is the memory engine's (server.engine is %s)",
             cfg->engine);
        return HR_ERR_INVALID;
    }
    if (cfg->engine_max_disk_bytes && cfg->engine_max_disk_bytes < 2 * cfg->engine_segment_bytes) {
        errf(err, errlen, "engine.max_disk_bytes (%lld) must be at least twice engine.segment_bytes (%lld)",
             (long long)cfg->engine_max_disk_bytes, (long long)cfg->engine_segment_bytes);
        return HR_ERR_INVALID;
    }
    if (strcmp(cfg->engine, "redis") == 0 && !cfg->redis[0]) {
        errf(err, errlen, "server.engine is redis but server.redis (--redis HOST:PORT) is not set");
        return HR_ERR_INVALID;
    }
    if (cfg->redis_backoff_max_ms < cfg->redis_backoff_min_ms) {
        errf(err, errlen, "redis.backoff_max (%lld ms) must not be shorter than redis.backoff_min (%lld ms)",
             (long long)cfg->redis_backoff_max_ms, (long long)cfg->redis_backoff_min_ms);
        return HR_ERR_INVALID;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        errf(err, errlen, "%s: set, but %s is not: TLS needs both a certificate and its key",
             cfg->tls_cert[0] ? "tls.cert" : "tls.key", cfg->tls_cert[0] ? "tls.key" : "tls.cert");
        return HR_ERR_INVALID;
    }
    if (cfg->tls_listen[0] && !cfg->tls_cert[0]) {
        errf(err, errlen, "tls.listen: set, but tls.cert and tls.key are not");
        return HR_ERR_INVALID;
    }
    if (strcmp(cfg->tls_min_version, "1.2") != 0 && strcmp(cfg->tls_min_version, "1.3") != 0) {
        errf(err, errlen, "tls.min_version: expected \"1.2\" or \"1.3\", got \"%s\"", cfg->tls_min_version);
        return HR_ERR_INVALID;
    }
    if (strlen(cfg->admin_password) > 255) {
        errf(err, errlen, "admin.password: at most 255 characters");
        return HR_ERR_INVALID;
    }
    if (strlen(cfg->api_key) > 255) {
        errf(err, errlen, "server.api_key: at most 255 characters");
        return HR_ERR_INVALID;
    }
    if (!cfg->listen[0]) {
        errf(err, errlen, "server.listen: must not be empty");
        return HR_ERR_INVALID;
    }
    int rc = check_cidr_list("server.trusted_proxies", &cfg->trusted_proxies, err, errlen);
    if (!rc) rc = check_cidr_list("metrics.allowed_ips", &cfg->metrics_allowed_ips, err, errlen);
    if (!rc) rc = proxy_validate(cfg, err, errlen);
    if (!rc) rc = webhook_validate(cfg, err, errlen);
    if (!rc) rc = apps_validate(cfg, err, errlen);
    return rc ? rc : authkeys_validate(cfg, err, errlen);
}

void hr_config_print_reference(void *file)
{
    FILE *f = file;
    for (size_t i = 0; i < hr_options_count; i++) {
        const hr_option *o = &hr_options[i];
        char env[128];
        env_name(o, env, sizeof(env));
        fprintf(f, "%-45s default %s\n    env %s%s%s, flag --%s%s%s\n    %s\n", o->key,
                o->def[0] ? o->def : "(empty)", env, o->env ? " or " : "", o->env ? o->env : "", o->key,
                o->flag ? " or " : "", o->flag ? o->flag : "", o->help);
    }
}
