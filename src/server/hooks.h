/* hooks.h - the operations' asynchronous rules (ops.h, hr_ops_hooks) over
 * the backend proxy (backend/proxy.h): the subscribe and publish hooks of a
 * namespace with proxy_subscribe / proxy_publish go to the asking worker's
 * hr_proxy, and its answer or failure comes back as an hr_op_hook_ans. */
#ifndef HERALD_SERVER_HOOKS_H
#define HERALD_SERVER_HOOKS_H

#include "ops/ops.h"
#include "transport/worker.h"

/* The hooks for ops options: calls go to sh's workers' proxies (the
 * asking actor's worker, by its hub part's id). sh must outlive them. */
hr_ops_hooks hr_server_hooks(hr_shared *sh);
/* On a worker's thread as it stops, before its proxy p is freed: answer
 * this worker's calls in flight with BACKEND_UNAVAILABLE; later calls on
 * this thread are refused at once. */
void hr_server_hooks_stop(hr_proxy *p);

#endif
