/* emulation.h - the native protocol over plain HTTP: long polling (/poll)
 * and HTTP streaming (/stream), with commands sent as POSTs
 * (docs/transports.md, "Long polling" and "HTTP streaming").
 *
 * A session is an hr_session (protocol/session.h, the same commands as
 * /ws) that lives on the worker that created it, not on a connection: its
 * output is kept as numbered JSON lines in a buffer that any worker may read
 * under the session's mutex, and it stays alive between requests for
 * poll.session_ttl. The server's registry (hr_emu_registry: id -> session,
 * and what each worker owns; made by server.c, reached by the transports
 * through their worker's server) lets any worker find it; command frames
 * reach the owning worker as hub tasks (hr_hub_post), and a worker that
 * holds a waiting request is woken by a task too. No thread ever touches
 * another worker's connection. */
#ifndef HERALD_TRANSPORT_EMULATION_H
#define HERALD_TRANSPORT_EMULATION_H

#include "codec/http1.h"
#include "transport/conn.h"

/* /poll, /poll/open, /poll/send, /stream, /stream/send (path picks which).
 * body: the request body (POST /poll/send). close: the request asked for the
 * connection to close. */
void hr_emu_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t body_len, bool close);

/* Does the path belong to this module? */
bool hr_emu_path(const char *path, size_t len);
/* The sessions of one server. */
typedef struct hr_emu_registry hr_emu_registry;
struct hr_hub;
/* A registry for the hub's workers, made once the hub has its engine and
 * before the workers start. With cluster messaging, the engine's
 * session-frame hook (engine.h on_session_frame) is registered on it: other
 * nodes bring command frames for this node's sessions. */
hr_emu_registry *hr_emu_registry_new(struct hr_hub *hub);
/* The workers stopped, before the hub is freed (sessions still call the
 * engine): end every session. */
void hr_emu_registry_stop(hr_emu_registry *reg);
/* After the hub is freed (the tasks it still held released their sessions
 * into the registry). NULL is ignored. */
void hr_emu_registry_free(hr_emu_registry *reg);

#endif
