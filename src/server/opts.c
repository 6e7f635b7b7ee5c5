/* opts.c - the lower layers' option structs from hr_config (see opts.h): one
 * field copy per option, so a layer's options read like its part of
 * docs/config.md. */
#include "server/opts.h"

#include <stdio.h>
#include <string.h>

void hr_opts_limits(const hr_config *cfg, hr_limits_opts *out)
{
    memset(out, 0, sizeof(*out));
    out->connections_per_ip = cfg->lim_connections_per_ip;
    out->handshakes_per_ip = cfg->lim_handshakes_per_ip;
    out->handshake_burst_per_ip = cfg->lim_handshake_burst_per_ip;
    out->auth_failures_per_ip = cfg->lim_auth_failures_per_ip;
    out->auth_failure_window_ms = cfg->lim_auth_failure_window_ms;
    out->auth_failure_ban_ms = cfg->lim_auth_failure_ban_ms;
    out->publishes_per_connection = cfg->lim_publishes_per_connection;
    out->publish_burst = cfg->lim_publish_burst;
    out->publishes_per_user = cfg->lim_publishes_per_user;
    out->channels_per_connection = cfg->lim_channels_per_connection;
    out->channel_burst = cfg->lim_channel_burst;
    out->ipv6_prefix = cfg->lim_ipv6_prefix;
    out->poll_max_sessions_per_ip = cfg->poll_max_sessions_per_ip;
}

/* hr_policy_fn over the config's namespace table. */
static int config_policy(const void *ctx, const char *channel, size_t len, hr_chan_policy *out)
{
    return hr_config_policy(ctx, channel, len, out);
}

void hr_opts_ops(const hr_config *cfg, hr_ops_opts *out)
{
    memset(out, 0, sizeof(*out));
    out->auth = cfg->auth;
    out->policy = config_policy;
    out->policy_ctx = cfg;
    out->max_channel_length = cfg->ch_max_channel_length;
    out->max_publication_size = cfg->ch_max_publication_size;
    out->max_subscriptions = cfg->ch_max_subscriptions;
    out->history_size = cfg->ch_history_size;
    out->history_max_limit = cfg->ch_history_max_limit;
    out->idempotency_window_ms = cfg->ch_idempotency_window_ms;
    out->join_leave_max_subscribers = cfg->ch_join_leave_max_subscribers;
    out->max_held_publications = cfg->ch_max_held_publications;
    out->max_commands_per_frame = cfg->ch_max_commands_per_frame;
    out->max_reply_size = cfg->ch_max_reply_size;
    out->reply_budget = cfg->ch_reply_budget;
    out->token_verifications_per_connection = cfg->lim_token_verifications_per_connection;
    out->token_verification_burst = cfg->lim_token_verification_burst;
    out->pusher = cfg->pusher.n ? &cfg->pusher : NULL; /* none: no Pusher namespace, no route */
}

void hr_opts_proto(const hr_config *cfg, hr_proto_opts *out)
{
    memset(out, 0, sizeof(*out));
    hr_opts_ops(cfg, &out->ops);
    out->max_queued_bytes = cfg->ws_max_queued_bytes;
    out->ping_interval_ms = cfg->ws_ping_interval_ms;
}

/* A Pusher webhook's channel: the Pusher name (none for a user channel,
 * "#server-to-user-ID", which Pusher never reports). */
static bool pusher_name(const void *ctx, const char *ch, size_t len, hr_buf *out)
{
    const hr_pusher_app *app = NULL;
    return !hr_pusher_from_herald(ctx, ch, len, &app, out) && out->len && out->data[0] != '#';
}

void hr_opts_webhook(const hr_config *cfg, hr_webhook_opts *out, hr_webhook_route **routes)
{
    memset(out, 0, sizeof(*out));
    out->url = cfg->webhook_url;
    out->secret = cfg->webhook_secret;
    (void)hr_webhook_events_mask(cfg->webhook_events.v, cfg->webhook_events.n, &out->events); /* validated */
    out->batch_max_events = (uint32_t)cfg->webhook_batch_max_events;
    out->batch_max_delay_ms = (uint64_t)cfg->webhook_batch_max_delay_ms;
    out->timeout_ms = (uint64_t)cfg->webhook_timeout_ms;
    out->max_queued = (uint64_t)cfg->webhook_max_queued_events;
    out->max_queued_bytes = (uint64_t)cfg->webhook_max_queued_bytes;
    out->retry_min_ms = (uint64_t)cfg->webhook_retry_min_delay_ms;
    out->retry_max_ms = (uint64_t)cfg->webhook_retry_max_delay_ms;
    out->flush_ms = (uint64_t)cfg->webhook_flush_timeout_ms;
    /* the routes, then the Pusher namespaces' names ("$pusher-ID", 72 bytes at most) in the same block */
    size_t cap = cfg->nnamespaces + cfg->pusher.n + 1;
    hr_webhook_route *r = hr_calloc(1, cap * sizeof(*r) + cfg->pusher.n * 80);
    char *names = (char *)(r + cap);
    size_t n = 0;
    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        const hr_namespace *ns = &cfg->namespaces[i];
        if (!ns->webhook_url && !ns->webhook_events_set) continue;
        r[n].ns = ns->name;
        r[n].url = ns->webhook_url;
        if (ns->webhook_events_set) (void)hr_webhook_events_mask(ns->webhook_events.v, ns->webhook_events.n, &r[n].events);
        else r[n].events = out->events;
        n++;
    }
    for (size_t i = 0; i < cfg->pusher.n; i++) {
        const hr_pusher_app *a = &cfg->pusher.v[i];
        if (!a->webhook_url[0]) continue;
        char *ns = names + 80 * i;
        snprintf(ns, 80, "$pusher-%s", a->app_id);
        r[n] = (hr_webhook_route){ns, a->webhook_url, (uint32_t)hr_webhook_pusher_mask(a->webhook_events),
                                  HR_WH_FORMAT_PUSHER, a->secret, a->key, pusher_name, &cfg->pusher};
        n++;
    }
    out->routes = r;
    out->nroutes = n;
    *routes = r;
}

void hr_opts_transport(const hr_config *cfg, hr_transport_opts *out)
{
    memset(out, 0, sizeof(*out));
#define COPY(type, name) out->name = cfg->name;
    HR_TRANSPORT_OPTS(COPY)
#undef COPY
}

static const char *const *list(const hr_strlist *l) { return (const char *const *)l->v; }

void hr_opts_proxy(const hr_config *cfg, hr_proxy_opts *out)
{
    hr_proxy_opts_default(out);
    const struct { const char *url; int64_t timeout_ms; } hooks[] = {
        [HR_HOOK_CONNECT] = {cfg->proxy_connect_url, cfg->proxy_connect_timeout_ms},
        [HR_HOOK_REFRESH] = {cfg->proxy_refresh_url, cfg->proxy_refresh_timeout_ms},
        [HR_HOOK_SUBSCRIBE] = {cfg->proxy_subscribe_url, cfg->proxy_subscribe_timeout_ms},
        [HR_HOOK_PUBLISH] = {cfg->proxy_publish_url, cfg->proxy_publish_timeout_ms},
        [HR_HOOK_RPC] = {cfg->proxy_rpc_url, cfg->proxy_rpc_timeout_ms},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(hooks); i++) {
        out->hook[i].url = hooks[i].url;
        out->hook[i].timeout_ms = (uint32_t)hooks[i].timeout_ms;
    }
    out->connect_with_token = cfg->proxy_connect_with_token;
    out->rpc_routes = list(&cfg->proxy_rpc_routes);
    out->nrpc_routes = cfg->proxy_rpc_routes.n;
    out->forward_headers = list(&cfg->proxy_forward_headers);
    out->nforward_headers = cfg->proxy_forward_headers.n;
    out->headers = list(&cfg->proxy_headers);
    out->nheaders = cfg->proxy_headers.n;
    out->httpc.max_inflight = (uint32_t)cfg->proxy_max_inflight;
    out->httpc.connect_timeout_ms = (uint32_t)cfg->proxy_dial_timeout_ms;
    out->httpc.max_response_bytes = (uint32_t)cfg->proxy_max_response_bytes;
    out->httpc.max_idle_conns = (uint32_t)cfg->proxy_max_idle_conns;
    out->httpc.ca_file = cfg->proxy_ca_file[0] ? cfg->proxy_ca_file : NULL;
}
