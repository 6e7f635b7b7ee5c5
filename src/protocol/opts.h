/* opts.h - the protocol layer's options: the operations' (ops/ops.h) and what
 * a session or a raw-mode client adds (its queue bound and keepalive
 * interval). Filled by the server from its config at start-up; a session
 * keeps a pointer to them. */
#ifndef HERALD_PROTOCOL_OPTS_H
#define HERALD_PROTOCOL_OPTS_H

#include "ops/ops.h"

typedef struct hr_proto_opts {
    hr_ops_opts ops;
    int64_t max_queued_bytes;   /* websocket.max_queued_bytes: a client further behind is cut off */
    int64_t ping_interval_ms;   /* websocket.ping_interval: told to clients in the connect reply */
} hr_proto_opts;

#endif
