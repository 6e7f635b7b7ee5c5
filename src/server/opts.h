/* opts.h - each lower layer's options filled from the server's config: the
 * layers below the server take their own small structs (docs/architecture.md,
 * "Options per layer") and never see hr_config. Filled once at start-up; the
 * server keeps them for the process's life (SIGHUP reloads only keys and the
 * certificate, which do not live here). */
#ifndef HERALD_SERVER_OPTS_H
#define HERALD_SERVER_OPTS_H

#include "backend/proxy.h"
#include "ops/limits.h"
#include "ops/ops.h"
#include "protocol/opts.h"
#include "transport/opts.h"
#include "server/config.h"

/* [limits] and poll.max_sessions_per_ip. */
void hr_opts_limits(const hr_config *cfg, hr_limits_opts *out);
/* [channels], the token rate and the channel policy lookup (over cfg's
 * namespace table: cfg must outlive out). */
void hr_opts_ops(const hr_config *cfg, hr_ops_opts *out);
/* The protocol layer's: the operations' and the session's own. */
void hr_opts_proto(const hr_config *cfg, hr_proto_opts *out);
/* [proxy] (lists and strings point into cfg). */
void hr_opts_proxy(const hr_config *cfg, hr_proxy_opts *out);
/* The transports' (every field of HR_TRANSPORT_OPTS; strings point into cfg). */
void hr_opts_transport(const hr_config *cfg, hr_transport_opts *out);

#endif
