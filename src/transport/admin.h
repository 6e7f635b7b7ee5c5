/* admin.h - the admin web UI's HTTP side (docs/operations.md "Admin UI"):
 * its embedded files under /admin/, its login, and its actions, which run
 * the server API's methods (hr_api_call) for a caller authenticated by the
 * session cookie and CSRF token instead of the API key; and the statistics
 * snapshot each node publishes to $admin:stats through the engine. The
 * sessions and every rule about the reserved namespace are the ops layer's
 * (ops/admin.h, ops.c). */
#ifndef HERALD_TRANSPORT_ADMIN_H
#define HERALD_TRANSPORT_ADMIN_H

#include "codec/http1.h"
#include "transport/conn.h"

struct hr_worker;

/* A request whose path is /admin or starts with /admin/: 404 JSON when the
 * admin UI is off (the operations' options hold no hr_admin). */
void hr_admin_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close);
/* Whether path is the admin UI's. */
bool hr_admin_path(const char *path, size_t len);

/* The statistics publisher: a timer on w's loop that publishes this node's
 * snapshot every interval_ms (started before w's thread runs; stopped and
 * freed with hr_admin_stats_free once the thread has ended). */
typedef struct hr_admin_stats hr_admin_stats;
hr_admin_stats *hr_admin_stats_start(struct hr_worker *w, int64_t interval_ms);
void hr_admin_stats_free(hr_admin_stats *s);

#endif
