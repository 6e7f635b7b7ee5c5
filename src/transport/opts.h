/* opts.h - the transports' options: [http], [websocket], [sse], [poll], [tls]
 * and the few others a transport reads (docs/config.md has each one's
 * meaning). One list, HR_TRANSPORT_OPTS, names each field with the config's
 * own field name and type, so the server fills the struct from hr_config by
 * expanding the same list (server/opts.c) and the two cannot drift. Filled
 * once at start-up; a worker holds a pointer to the server's copy. */
#ifndef HERALD_TRANSPORT_OPTS_H
#define HERALD_TRANSPORT_OPTS_H

#include "core/common.h"

#define HR_TRANSPORT_OPTS(X)                    \
    X(const char *, engine)                     \
    X(bool, static_follow_symlinks)             \
    X(bool, http_echo_endpoint)                 \
    X(int64_t, log_refused_rate)                \
    X(int64_t, http_header_timeout_ms)          \
    X(int64_t, http_body_timeout_ms)            \
    X(int64_t, http_keepalive_timeout_ms)       \
    X(int64_t, http_max_body_size)              \
    X(int64_t, http_max_head_size)              \
    X(int64_t, http_max_headers)                \
    X(int64_t, http_max_target_size)            \
    X(int64_t, http_max_pipelined)              \
    X(int64_t, http_max_pipelined_bytes)        \
    X(int64_t, http_max_queued_files)           \
    X(bool, http2_enabled)                      \
    X(int64_t, http2_max_concurrent_streams)    \
    X(int64_t, http2_initial_window_size)       \
    X(int64_t, http2_max_header_list_size)      \
    X(int64_t, http2_max_resets_per_second)     \
    X(int64_t, http2_max_queued_acks)           \
    X(int64_t, output_ring_pool_bytes)          \
    X(hr_strlist, ws_allowed_origins)           \
    X(hr_strlist, ws_subprotocols)              \
    X(int64_t, ws_close_timeout_ms)             \
    X(int64_t, ws_idle_timeout_ms)              \
    X(int64_t, ws_ping_interval_ms)             \
    X(int64_t, ws_message_timeout_ms)           \
    X(int64_t, ws_max_frame_size)               \
    X(int64_t, ws_max_message_size)             \
    X(int64_t, ws_echo_max_message_size)        \
    X(int64_t, ws_max_partial_bytes)            \
    X(int64_t, ws_max_queued_bytes)             \
    X(bool, ws_deflate)                         \
    X(int64_t, ws_deflate_level)                \
    X(int64_t, ws_deflate_mem_level)            \
    X(int64_t, ws_deflate_min_size)             \
    X(bool, ws_deflate_server_context_takeover) \
    X(bool, ws_deflate_client_context_takeover) \
    X(int64_t, ws_deflate_server_max_window_bits) \
    X(int64_t, ws_deflate_client_max_window_bits) \
    X(hr_strlist, sse_allowed_origins)          \
    X(int64_t, sse_heartbeat_interval_ms)       \
    X(int64_t, sse_max_queued_bytes)            \
    X(int64_t, sse_retry_ms)                    \
    X(int64_t, poll_timeout_ms)                 \
    X(int64_t, poll_session_ttl_ms)             \
    X(int64_t, poll_max_sessions)               \
    X(int64_t, poll_max_queued_bytes)           \
    X(int64_t, poll_max_queued_bytes_per_worker) \
    X(int64_t, api_max_broadcast_channels)      \
    X(int64_t, api_max_batch_commands)          \
    X(const char *, tls_cert)                   \
    X(const char *, tls_key)                    \
    X(const char *, tls_ciphers)                \
    X(const char *, tls_ciphersuites)           \
    X(const char *, tls_min_version)            \
    X(const char *, metrics_token)              \
    X(int64_t, ready_max_loop_lag_ms)

#define HR_TRANSPORT_OPT_FIELD(type, name) type name;
typedef struct hr_transport_opts {
    HR_TRANSPORT_OPTS(HR_TRANSPORT_OPT_FIELD)
} hr_transport_opts;
#undef HR_TRANSPORT_OPT_FIELD

#endif
