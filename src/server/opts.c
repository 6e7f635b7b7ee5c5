/* opts.c - the lower layers' option structs from hr_config (see opts.h): one
 * field copy per option, so a layer's options read like its part of
 * docs/config.md. */
#include "server/opts.h"

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
