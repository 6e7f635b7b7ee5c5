/* server.h - the server process: listeners, worker threads, signals and
 * graceful drain. Each worker owns an epoll loop, a SO_REUSEPORT listening
 * socket, its connections and timers; nothing on the per-connection path is
 * shared between workers, so nothing there takes a lock. */
#ifndef HERALD_SERVER_SERVER_H
#define HERALD_SERVER_SERVER_H

#include "server/config.h"
#include "transport/worker.h"

#include <stdatomic.h>

typedef struct hr_server {
    hr_config *cfg;
    hr_shared sh;                  /* what the workers share (transport/worker.h) */
    hr_transport_opts transport;   /* the transports' options, from cfg (server/opts.c) */
    hr_proto_opts proto;           /* protocol and operations options, from cfg (server/opts.c) */
    hr_proxy_opts proxy;           /* the backend proxy hooks' options, from cfg (server/opts.c) */
    int port;                      /* the bound port (useful with :0) */
    bool listen_tls;               /* server.listen speaks TLS (no separate tls.listen) */
    int tls_port;                  /* tls.listen's bound port, 0 if none */
    char tls_bound[128];
    atomic_int running_workers;
    atomic_int drain_requested;    /* 1 = drain, 2 = force */
    struct hr_webhook *webhook;    /* the webhook sender (backend/webhook.h), NULL when off */
    struct hr_admin *admin;        /* the admin UI's sessions (ops/admin.h), NULL when admin.enabled is off */
    struct hr_admin_stats *admin_stats; /* worker 0's $admin:stats publisher (transport/admin.h) */
    char admin_password[256];      /* effective admin password (configured or generated) */
} hr_server;

/* Bind listeners and start workers. Returns 0, or a negative error with a
 * message in err (exit code 1: port in use; 2: bad listen address). */
int hr_server_start(hr_server *s, hr_config *cfg, char *err, size_t errlen);
/* Block until SIGINT/SIGTERM, drain, join the workers. Returns the exit code. */
int hr_server_run_until_signal(hr_server *s);
/* Ask every worker to drain (thread-safe). force: drop connections now. */
void hr_server_request_drain(hr_server *s, bool force);
void hr_server_join(hr_server *s);
void hr_server_free(hr_server *s);

#endif
