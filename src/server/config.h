/* config.h - Herald's configuration: one struct, one table of options.
 *
 * Every option has a config-file key (section.key), a HERALD_* environment
 * variable and a command-line flag, all generated from the option table in
 * config.c, so the three can never disagree. Precedence: defaults < file <
 * environment < flags. The file format is a small subset of TOML (see
 * docs/config.md); errors are reported with the file, line and key. */
#ifndef HERALD_SERVER_CONFIG_H
#define HERALD_SERVER_CONFIG_H

#include "auth/auth.h"
#include "core/common.h"
#include "ops/pusher_app.h"

/* The name of an hr_perm value (auth/policy.h), as the options spell it. */
const char *hr_perm_name(int64_t perm);

typedef struct hr_namespace {
    char *name;
    hr_chan_policy p;
    uint32_t set;               /* bit i: hr_ns_keys[i] was set for this namespace */
    char *webhook_url;          /* namespace.NAME.webhook_url: NULL = webhook.url */
    hr_strlist webhook_events;  /* namespace.NAME.webhook_events (used when webhook_events_set) */
    bool webhook_events_set;
} hr_namespace;

struct hr_auth;

typedef struct hr_config {
    /* [server] */
    char *listen;               /* "HOST:PORT" or "[::1]:PORT" */
    int64_t workers;            /* 0 = number of cores */
    char *static_dir;           /* "" = no static files */
    bool static_follow_symlinks; /* serve links leading out of static_dir */
    int64_t drain_timeout_ms;
    int64_t max_connections;    /* per process (lowered to fit RLIMIT_NOFILE at start-up) */
    int64_t accept_backoff_ms;  /* listener pause after accept ran out of descriptors */
    int64_t output_ring_pool_bytes; /* drained output rings kept per worker for reuse */
    int64_t object_pool_spare_bytes; /* empty object-pool blocks kept per worker (core/pool.h) */
    char *log_level;
    char *log_format;
    int64_t log_refused_rate;
    char *api_key;
    char *engine;
    char *redis;
    bool proxy_protocol;        /* every connection starts with a PROXY protocol header */
    hr_strlist trusted_proxies; /* addresses / CIDRs whose X-Forwarded-For is believed */
    int64_t ready_max_loop_lag_ms; /* /ready 503 above this recent loop lag; 0 = off */
    /* [metrics] */
    char *metrics_listen;       /* "" = server.listen only */
    char *metrics_token;        /* "" = none */
    hr_strlist metrics_allowed_ips;
    int64_t metrics_publish_sample; /* 1 in N publications timed to their write; 0 = none */
    /* [engine] the memory engine's durable log */
    char *data_dir;             /* "" = memory only */
    char *engine_fsync;         /* always | interval | never */
    int64_t engine_fsync_interval_ms;
    int64_t engine_segment_bytes;
    int64_t engine_max_disk_bytes; /* 0 = unbounded */
    int64_t engine_max_queued_bytes; /* 0 = unbounded */
    /* [redis] (engine = redis) */
    char *redis_prefix;
    char *redis_node_id;
    char *redis_user;
    char *redis_password;
    int64_t redis_presence_ttl_ms;
    int64_t redis_node_ttl_ms;
    int64_t redis_connect_timeout_ms;
    int64_t redis_ping_interval_ms;
    int64_t redis_backoff_min_ms;
    int64_t redis_backoff_max_ms;
    int64_t redis_max_pending;
    int64_t redis_publish_batch;
    int64_t redis_deliver_batch;
    int64_t redis_occupancy_sweep_max;
    int64_t redis_max_reply;
    /* [tls] */
    char *tls_cert;
    char *tls_key;
    char *tls_listen;           /* "" = server.listen speaks TLS when a cert is set */
    char *tls_min_version;      /* "1.2" or "1.3" */
    char *tls_ciphers;
    char *tls_ciphersuites;
    /* [http] */
    int64_t http_max_head_size;
    int64_t http_max_headers;
    int64_t http_max_target_size;
    int64_t http_max_body_size;
    int64_t http_header_timeout_ms;
    int64_t http_body_timeout_ms;
    int64_t http_keepalive_timeout_ms;
    int64_t http_max_pipelined;
    int64_t http_max_pipelined_bytes; /* unconsumed pipelined input before reading pauses */
    int64_t http_max_queued_files;    /* static files queued per connection before reading pauses */
    bool http_echo_endpoint;
    /* [http2] */
    bool http2_enabled;
    int64_t http2_max_concurrent_streams;
    int64_t http2_initial_window_size;
    int64_t http2_max_header_list_size;
    int64_t http2_max_resets_per_second;
    int64_t http2_max_queued_acks;
    /* [websocket] */
    int64_t ws_max_frame_size;
    int64_t ws_max_message_size;
    int64_t ws_echo_max_message_size;
    int64_t ws_message_timeout_ms;
    int64_t ws_max_partial_bytes;
    int64_t ws_ping_interval_ms;
    int64_t ws_idle_timeout_ms;
    int64_t ws_close_timeout_ms;
    int64_t ws_max_queued_bytes;
    hr_strlist ws_allowed_origins;
    hr_strlist ws_subprotocols;
    bool ws_deflate;
    bool ws_deflate_server_context_takeover;
    bool ws_deflate_client_context_takeover;
    int64_t ws_deflate_server_max_window_bits;
    int64_t ws_deflate_client_max_window_bits;
    int64_t ws_deflate_mem_level;
    int64_t ws_deflate_level;
    int64_t ws_deflate_min_size;
    /* [sse] */
    int64_t sse_retry_ms;
    int64_t sse_heartbeat_interval_ms;
    int64_t sse_max_queued_bytes;
    hr_strlist sse_allowed_origins;
    int64_t poll_timeout_ms;          /* long poll hold */
    int64_t poll_session_ttl_ms;      /* HTTP emulation session kept this long without a request */
    int64_t poll_max_queued_bytes;    /* session output not yet delivered */
    int64_t poll_max_sessions;        /* sessions per server */
    int64_t poll_max_sessions_per_ip; /* sessions per client address (ops/limits.c), 0 = unlimited */
    int64_t poll_max_queued_bytes_per_worker; /* output held by the sessions one worker owns */
    /* [api] */
    int64_t api_max_broadcast_channels; /* channels named by one broadcast */
    int64_t api_max_batch_commands;     /* commands in one batch */
    /* [admin] */
    bool admin_enabled;                 /* serve /admin/ and publish $admin:stats */
    char *admin_password;               /* "" = generated at start-up */
    int64_t admin_session_ttl_ms;
    int64_t admin_max_sessions;
    int64_t admin_stats_interval_ms;
    /* [channels] - options of the default namespace */
    int64_t ch_history_size;
    int64_t ch_history_ttl_ms;
    int64_t ch_max_history_bytes;
    bool ch_presence;
    bool ch_join_leave;
    bool ch_proxy_subscribe;
    bool ch_proxy_publish;
    bool ch_allow_publish;
    bool ch_allow_anonymous;
    int64_t ch_max_channel_length;
    int64_t ch_max_subscriptions;
    int64_t ch_max_publication_size;
    int64_t ch_max_commands_per_frame;
    int64_t ch_max_subscribers;
    int64_t ch_idempotency_window_ms;
    int64_t ch_history_max_limit;     /* publications per history reply */
    int64_t ch_max_reply_size;        /* bytes of one command's reply */
    int64_t ch_reply_budget;          /* bytes queued + being prepared per connection */
    int64_t ch_join_leave_max_subscribers; /* 0 = no cap */
    int64_t ch_max_held_publications; /* held per subscribe being answered (ops.h hr_op_hold) */
    bool ch_allow_unknown_namespaces;
    /* [limits]: abuse limits (src/ops/limits.c), 0 = off */
    int64_t lim_connections_per_ip;
    int64_t lim_handshakes_per_ip;        /* per second, sustained */
    int64_t lim_handshake_burst_per_ip;
    int64_t lim_auth_failures_per_ip;     /* within lim_auth_failure_window_ms */
    int64_t lim_auth_failure_window_ms;
    int64_t lim_auth_failure_ban_ms;
    int64_t lim_ipv6_prefix;
    int64_t lim_publishes_per_connection; /* per second, sustained */
    int64_t lim_publish_burst;
    int64_t lim_publishes_per_user;       /* per second, over all the user's connections */
    int64_t lim_channels_per_connection;  /* new channels per second, sustained */
    int64_t lim_channel_burst;
    int64_t lim_token_verifications_per_connection; /* per second, sustained */
    int64_t lim_token_verification_burst;
    int64_t ch_subscribe;             /* hr_perm */
    int64_t ch_publish;
    int64_t ch_history_for;
    int64_t ch_presence_for;
    /* [namespace.NAME] sections: options overriding [channels] by prefix */
    hr_namespace *namespaces;
    size_t nnamespaces;
    /* [webhook] (backend/webhook.h) */
    char *webhook_url;
    char *webhook_secret;
    hr_strlist webhook_events;
    int64_t webhook_batch_max_events;
    int64_t webhook_batch_max_delay_ms;
    int64_t webhook_timeout_ms;
    int64_t webhook_max_queued_events;
    int64_t webhook_max_queued_bytes;
    int64_t webhook_retry_min_delay_ms;
    int64_t webhook_retry_max_delay_ms;
    int64_t webhook_flush_timeout_ms;
    /* [auth] */
    char *auth_token_hmac_secret;
    int64_t auth_leeway_ms;
    char *auth_audience;
    char *auth_issuer;
    bool auth_require_exp;
    int64_t auth_max_token_bytes;
    int64_t auth_refresh_grace_ms;
    /* [proxy]: backend proxy hooks (src/backend/proxy.c); a URL "" = that hook off */
    char *proxy_connect_url;
    int64_t proxy_connect_timeout_ms;
    bool proxy_connect_with_token;    /* call connect even when the client presents a valid token */
    char *proxy_refresh_url;
    int64_t proxy_refresh_timeout_ms;
    char *proxy_subscribe_url;
    int64_t proxy_subscribe_timeout_ms;
    char *proxy_publish_url;
    int64_t proxy_publish_timeout_ms;
    char *proxy_rpc_url;
    int64_t proxy_rpc_timeout_ms;
    hr_strlist proxy_rpc_routes;      /* "PREFIX=URL" */
    hr_strlist proxy_forward_headers; /* request header names copied into connect */
    hr_strlist proxy_headers;         /* "Name: value" sent on every hook call */
    int64_t proxy_max_inflight;       /* per worker */
    int64_t proxy_dial_timeout_ms;
    int64_t proxy_max_response_bytes;
    int64_t proxy_max_idle_conns;
    char *proxy_ca_file;
    /* [auth.key.NAME] sections */
    hr_auth_key_cfg *auth_keys;
    size_t nauth_keys;
    /* [pusher.app.NAME] sections (ops/pusher_app.h) */
    hr_pusher_apps pusher;
    /* Not an option: the server's token verifier (src/auth/auth.h), set by
     * whoever runs the server and owned by it; NULL = no token accepted. */
    struct hr_auth *auth;
} hr_config;

typedef enum hr_opt_type {
    HR_OPT_STRING,
    HR_OPT_INT,
    HR_OPT_BOOL,
    HR_OPT_SIZE,      /* bytes: 1024, "16KiB", "1MiB", "2GiB", "1MB" */
    HR_OPT_DURATION,  /* milliseconds: 500 (ms), "500ms", "10s", "5m", "1h" */
    HR_OPT_LIST,      /* ["a", "b"] in files; "a,b" in env and flags */
    HR_OPT_PERM,      /* an hr_perm name ("anyone", ...); min = bit mask of the accepted values */
} hr_opt_type;

typedef struct hr_option {
    const char *key;      /* "section.name" */
    hr_opt_type type;
    size_t offset;        /* into hr_config */
    const char *def;      /* default, as text */
    int64_t min, max;     /* for INT / SIZE / DURATION */
    const char *env;      /* extra short env name (e.g. "HERALD_LISTEN"), or NULL */
    const char *flag;     /* extra short flag (e.g. "--listen"), or NULL */
    const char *help;
} hr_option;

extern const hr_option hr_options[];
extern const size_t hr_options_count;
/* The keys of a [pusher.app.NAME] section ("pusher.app.NAME.KEY"; offsets
 * into hr_pusher_app). */
extern const hr_option hr_pusher_app_options[];
extern const size_t hr_pusher_app_options_count;

/* Fill cfg with defaults. */
void hr_config_defaults(hr_config *cfg);
void hr_config_free(hr_config *cfg);

/* Each loader returns 0, or a negative error after writing a message such as
 * "herald.toml:12: websocket.max_message_size: expected a size like 16MiB"
 * into err. */
int hr_config_load_file(hr_config *cfg, const char *path, char *err, size_t errlen);
/* Parse a config document held in memory (name is used in messages). */
int hr_config_load_string(hr_config *cfg, const char *name, const char *text, char *err, size_t errlen);
/* Apply HERALD_* variables from envp (NULL-terminated). */
int hr_config_load_env(hr_config *cfg, char *const *envp, char *err, size_t errlen);
/* Set one option by key ("websocket.max_message_size") from text. */
int hr_config_set(hr_config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* Find an option by long flag name without dashes ("listen" or
 * "websocket.max-message-size" or "websocket.max_message_size"). */
const hr_option *hr_config_find_flag(const char *flag);
/* Cross-option checks (idle timeout > ping interval, ...). */
int hr_config_validate(const hr_config *cfg, char *err, size_t errlen);

/* Parse helpers, exposed for tests. */
int hr_parse_size(const char *s, int64_t *out);
/* The option an unknown key was probably meant to be (at most two edits
 * away, or the same name in another section), or NULL. */
const hr_option *hr_config_closest(const char *key);
/* Parse "HOST:PORT", "[V6]:PORT" or ":PORT" (port 0-65535). Returns 0 or HR_ERR_INVALID. */
int hr_parse_listen(const char *spec, char *host, size_t hostlen, int *port);
int hr_parse_duration(const char *s, int64_t *out_ms);

/* The options that apply to `channel` (its namespace's, falling back to
 * [channels] for each option the namespace does not set). Returns 0, or
 * HR_ERR_NOTFOUND when the channel's namespace is not configured and
 * channels.allow_unknown_namespaces is false. */
int hr_config_policy(const hr_config *cfg, const char *channel, size_t len, hr_chan_policy *out);
/* The token verifier's options (auth.h) of cfg; out points into cfg. */
void hr_config_auth_opts(const hr_config *cfg, hr_auth_opts *out);
/* The option keys a [namespace.NAME] section accepts, NULL-terminated. */
extern const char *const hr_ns_keys[];
/* The option keys an [auth.key.NAME] section accepts, NULL-terminated. */
extern const char *const hr_auth_key_keys[];

/* Print the table as a reference (used by `herald --help-config`). */
void hr_config_print_reference(void *file);

#endif
