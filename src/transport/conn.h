/* conn.h - a client connection as the transports see it: socket watcher,
 * deadline timer, leftover input, and the output queue.
 *
 * Memory: an idle connection owns no buffers. Reads land in the worker's
 * shared read buffer; only bytes that do not yet form a complete unit (a
 * partial request head, a partial frame header) are copied into `in`, which
 * is freed again as soon as it is empty. The output queue is a list of
 * entries that exist only while bytes wait to be written; everything queued
 * during one loop turn leaves in one writev() at the end of the turn.
 *
 * I/O layer: every byte in or out goes through the connection's layer
 * (hr_conn.layer, a small ops table like Redis' ConnectionType): the plain
 * socket (hr_conn_plain), TLS (transport/tls.c), or a stage that must finish
 * before the stream starts (the PROXY header, transport/proxy.c, which then
 * hands over to TLS or the plain socket). conn.c knows no layer by name.
 *
 * Ownership: the worker owns connections. hr_conn_close() unlinks a
 * connection at once and frees it at the end of the loop turn, so pointers
 * held by the current turn stay valid (flags & HR_CONN_CLOSED tells). */
#ifndef HERALD_TRANSPORT_CONN_H
#define HERALD_TRANSPORT_CONN_H

#include "core/buf.h"
#include "core/loop.h"
#include "core/timerwheel.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct hr_worker;
typedef struct hr_conn hr_conn;

/* The I/O layer a connection reads and writes through. Results: > 0 bytes,
 * 0 end of stream (read), HR_ERR_AGAIN (nothing more now: the socket's next
 * event comes), HR_ERR_IO (failed: conn.c closes). Optional ops are NULL. */
typedef struct hr_conn_layer_ops {
    /* Read up to cap bytes; *drained = the socket has nothing more now (its
     * next edge will come), false = read again. */
    ssize_t (*read)(hr_conn *c, uint8_t *dst, size_t cap, bool *drained);
    /* Write (a prefix of) the buffers. A write that returned HR_ERR_AGAIN is
     * retried with at least the same bytes at the front. */
    ssize_t (*writev)(hr_conn *c, const struct iovec *iov, int cnt);
    /* Optional: send len bytes of file fd from off (0: the file shrank).
     * NULL: conn.c reads the file in chunks and writes them with writev. */
    ssize_t (*sendfile)(hr_conn *c, int fd, uint64_t off, size_t len);
    /* Optional: a stage before the stream (PROXY header, TLS handshake), run
     * on every socket event while set: 0 done (the layer has replaced itself,
     * c->layer may have a start of its own), 1 waiting for the socket,
     * HR_ERR_CLOSED failed and c closed. */
    int (*start)(hr_conn *c);
    /* Optional: the socket events (EPOLLIN / EPOLLOUT) that must also retry
     * the other direction (TLS: a read that needs to write, and back). */
    uint32_t (*events)(const hr_conn *c, uint32_t events);
    /* Optional: bytes at the front of the queue that a blocked write handed
     * to the layer and that must be offered again (never dropped). */
    size_t (*committed)(const hr_conn *c);
    void (*shutdown)(hr_conn *c);          /* half-close (FIN) after the layer's own goodbye */
    void (*close)(hr_conn *c);             /* optional: release the layer (the socket closes after) */
    /* Optional: the connection a socketless one rides on (an HTTP/2 stream's
     * TCP connection), for hr_conn_socket. */
    hr_conn *(*parent)(const hr_conn *c);
    const char *name;
} hr_conn_layer_ops;

/* A layer's per-connection state starts with this (a layer with no state,
 * like the plain socket, is one shared static object). */
typedef struct hr_conn_layer {
    const hr_conn_layer_ops *ops;
} hr_conn_layer;

/* The plain socket: read(), writev(), sendfile(), shutdown(). */
extern hr_conn_layer hr_conn_plain;

/* Transport callbacks. */
/* What a connection is now, for herald_transport_connections{transport}:
 * set by hr_conn_set_transport from the vt (an HTTP connection that
 * upgrades moves from http to websocket), kept in hr_conn.flags. */
typedef enum hr_conn_kind {
    HR_CK_NONE,        /* not yet known (before the first byte, awaiting a PROXY header) */
    HR_CK_HTTP,
    HR_CK_WEBSOCKET,
    HR_CK_RAW,         /* a WebSocket in raw mode (/ws/raw) */
    HR_CK_SSE,
    HR_CK_HTTP_STREAM,
    HR_CK_LONG_POLL,
    HR_CK_HTTP2,       /* an HTTP/2 TCP connection (its streams count as their endpoints' kinds) */
    HR_CK__N
} hr_conn_kind;
extern const char *const hr_conn_kind_names[HR_CK__N];

typedef struct hr_conn_vt {
    /* Bytes arrived: returns how many were consumed (the rest is kept and
     * presented again with more), or a negative value if the connection was
     * closed by the handler. */
    ssize_t (*on_data)(hr_conn *c, uint8_t *data, size_t len);
    void (*on_eof)(hr_conn *c);           /* peer closed its sending side */
    void (*on_timer)(hr_conn *c);         /* the connection's deadline passed */
    void (*on_drained)(hr_conn *c);       /* output queue became empty (optional) */
    void (*on_shutdown)(hr_conn *c);      /* server is draining */
    void (*on_free)(hr_conn *c);          /* release transport state */
    /* Optional: the end-of-turn flush is about to write this connection's
     * queue (after every connection without this hook has flushed): a
     * transport that frames lazily (HTTP/2) queues its frames now. */
    void (*on_flush)(hr_conn *c);
    const char *name;
    hr_conn_kind kind;
    /* When the peer's FIN arrives in the same edge as data (EPOLLRDHUP),
     * read on to the end of stream now instead of waiting for the next edge
     * (none follows): set by a transport that must see that end at once
     * (HTTP/2, whose streams end with it). Others leave it false: a
     * drained read ends their read as it always does. */
    bool read_to_eof;
} hr_conn_vt;

typedef struct hr_oentry hr_oentry;

/* What a queued entry costs besides its bytes: its slot in the ring (32
 * bytes) and its allocation's header, so that many tiny entries (pongs)
 * count. An entry holding a channel's run of frames (hr_conn_send_run)
 * costs this per entry the frames one by one would have taken. */
#define HR_CONN_ENTRY_COST 64

/* Leftover input: the unconsumed bytes are data[off, off + len). Consuming
 * moves `off` (pipelined requests answered a batch at a time cost no
 * memmove each); the bytes move to the front only when more must be read
 * behind them. Freed when empty. */
typedef struct hr_conn_in {
    uint8_t *data;
    uint32_t off, len, cap;
} hr_conn_in;

/* The output queue: a ring of entries (contiguous, so building the writev
 * iovecs walks one array), taken on first use and given back when drained
 * (to the worker's pool of drained rings, by size, see conn.c), so an idle
 * connection holds none. */
typedef struct hr_outq {
    hr_oentry *e;        /* cap entries, or NULL */
    uint32_t head, n, cap;
    size_t bytes;        /* the queue's cost: bytes not yet written plus an
                            overhead per entry (HR_CONN_ENTRY_COST; for a file,
                            which holds a descriptor, a share of the budget:
                            see hr_conn_send_file) */
} hr_outq;

enum hr_conn_flags {
    HR_CONN_CLOSED = 1u << 0,
    HR_CONN_IN_FLUSH_LIST = 1u << 1,
    HR_CONN_IN_READY_LIST = 1u << 2,
    HR_CONN_READ_PAUSED = 1u << 3,     /* backpressure: output queue too full */
    HR_CONN_CLOSE_AFTER_FLUSH = 1u << 4,
    HR_CONN_SHUT_WR_AFTER_FLUSH = 1u << 5,
    HR_CONN_EOF = 1u << 6,             /* read side closed */
    HR_CONN_WRITE_BLOCKED = 1u << 7,   /* last write hit EAGAIN: wait for EPOLLOUT */
    HR_CONN_READ_PENDING = 1u << 8,    /* may have unread input (ET): read again later */
    /* refused at accept by the abuse limits: its first request is answered with the error and the
     * connection closed (reading the request first, so the client gets the answer, not an RST) */
    HR_CONN_REFUSED_TOO_MANY = 1u << 9,   /* 503: limits.connections_per_ip */
    HR_CONN_REFUSED_TOO_FAST = 1u << 10,  /* 429: limits.handshakes_per_ip */
    HR_CONN_REFUSED_BANNED = 1u << 11,    /* 429: limits.auth_failures_per_ip */
    /* client addresses (transport/proxy.c) */
    HR_CONN_VIA_PROXY = 1u << 13,         /* peer in server.trusted_proxies: admitted per request by the
                                             address X-Forwarded-For names (ip_key = that address's, or 0) */
    HR_CONN_METRICS_ONLY = 1u << 14,      /* accepted on metrics.listen: /metrics, /health, /ready only */
    HR_CONN_TLS = 1u << 15,               /* accepted on a TLS listener (metrics label tls="true") */
};
#define HR_CONN_KIND_SHIFT 16               /* flags bits 16..18: the hr_conn_kind */
#define HR_CONN_KIND_MASK (7u << HR_CONN_KIND_SHIFT)
#define HR_CONN_REFUSED (HR_CONN_REFUSED_TOO_MANY | HR_CONN_REFUSED_TOO_FAST | HR_CONN_REFUSED_BANNED)

struct hr_conn {
    hr_io io;
    hr_timer timer;
    struct hr_worker *w;
    const hr_conn_vt *vt;
    hr_conn *next, *prev;          /* worker's connection list */
    hr_conn *flush_next;           /* worker's end-of-turn flush list */
    hr_conn *ready_next;           /* worker's read-again list */
    hr_conn_in in;                 /* leftover input; empty when idle */
    hr_outq out;
    uint64_t last_rx;              /* loop time of the last byte received */
    uint32_t flags;
    union {
        uint32_t ip_key;           /* peer address key in the server's limits (0 = not counted) */
        uint32_t retry_after;      /* HR_CONN_REFUSED_*: seconds for Retry-After */
    };
    void *proto;                   /* transport state (http / websocket) */
    hr_conn_layer *layer;          /* I/O layer (&hr_conn_plain, TLS state, PROXY stage); never NULL */
};

/* Queue bytes (copied). The write happens at the end of the loop turn. */
void hr_conn_send(hr_conn *c, const void *data, size_t len);
/* Queue len bytes the queue takes over (not copied): bytes from
 * hr_malloc (or hr_buf_steal), freed with hr_free once written or dropped;
 * a connection that is closing frees them at once. */
void hr_conn_send_owned(hr_conn *c, uint8_t *bytes, size_t len);
/* Queue two pieces as one entry (e.g. frame header + payload), copied. */
void hr_conn_send2(hr_conn *c, const void *a, size_t alen, const void *b, size_t blen);
/* Queue a shared buffer (one encoded frame sent to many connections); the
 * queue takes a reference. */
struct hr_sbuf;
void hr_conn_send_shared(hr_conn *c, struct hr_sbuf *b);
/* Queue a shared buffer of a channel's run (hub.h hr_run) as one entry that
 * costs what its frames would one by one (`frames`: the entries they would
 * take; an SSE event takes two, its id line and its lines), if the queue's
 * cost stays within `limit` with it; false: over, nothing queued (the caller
 * sends them one by one, checking its limit before each). A connection that
 * is closing takes nothing, as with hr_conn_send_shared (true). */
bool hr_conn_send_run(hr_conn *c, struct hr_sbuf *b, uint32_t frames, size_t limit);
/* Drop everything queued that has not started to be written (a slow
 * consumer about to be disconnected: it will recover what it missed). */
void hr_conn_drop_queued(hr_conn *c);
/* Queue `len` bytes of an open file from `off`; the queue owns fd (closes it).
 * Each queued file costs its length plus a share of the queue's budget
 * (http.max_queued_files per connection before reading pauses). */
void hr_conn_send_file(hr_conn *c, int fd, uint64_t off, uint64_t len);
/* If the last queued entry is this connection's own bytes starting with
 * `first`, and nothing of it is written yet, replace its bytes with a + b
 * (a pong that answers only the latest ping) and return true; otherwise
 * queue nothing and return false. */
bool hr_conn_replace_last(hr_conn *c, uint8_t first, const void *a, size_t alen, const void *b, size_t blen);
/* Present the leftover input to the transport now (pipelined requests that
 * waited for a deferred answer). Returns 0 or HR_ERR_CLOSED. */
int hr_conn_deliver_leftover(hr_conn *c);
/* Write what is queued now (normally done at end of turn). Returns 0, or
 * HR_ERR_CLOSED if the connection was closed by a write error. */
int hr_conn_flush(hr_conn *c);
/* Write what is queued now, without waiting for the end of the turn and
 * without ever closing or freeing c (a failed write is found again, and the
 * connection closed, by the end-of-turn flush). Returns the bytes still
 * queued. For fan-out loops that must tell a slow reader from a burst. */
size_t hr_conn_write_now(hr_conn *c);
/* Close after reading and dropping whatever input has already arrived (up
 * to 1 MiB), so the kernel ends the connection with FIN, not RST. */
void hr_conn_close_discarding_input(hr_conn *c);
/* Close once the queue is flushed (HTTP "Connection: close", WS close reply). */
void hr_conn_close_after_flush(hr_conn *c);
/* Half-close (FIN) once the queue is flushed; reading goes on. */
void hr_conn_shutdown_after_flush(hr_conn *c);
/* Close now: drop queued output, release everything (freed at end of turn). */
void hr_conn_close(hr_conn *c);
/* Come back to this connection's unconsumed input after other connections
 * had their turn (fairness for pipelined requests). */
void hr_conn_yield(hr_conn *c);
/* Pause / resume reading (backpressure). */
void hr_conn_pause_reading(hr_conn *c);
void hr_conn_resume_reading(hr_conn *c);
/* Switch to another transport (HTTP -> WebSocket after the upgrade). */
void hr_conn_set_transport(hr_conn *c, const hr_conn_vt *vt, void *proto);
/* Arm the connection's single deadline, delay_ms from now. */
/* Count the connection as kind from now on (hr_conn_set_transport does it from the vt). */
void hr_conn_set_kind(hr_conn *c, hr_conn_kind kind);
void hr_conn_set_timer(hr_conn *c, uint64_t delay_ms);
void hr_conn_stop_timer(hr_conn *c);
uint64_t hr_conn_now(const hr_conn *c);

/* Socketless connections (an HTTP/2 stream, transport/h2.c): no socket and
 * no epoll registration; every byte in comes through hr_conn_feed and every
 * byte out goes to the layer's writev, which returns HR_ERR_AGAIN while the
 * layer cannot take more (the layer calls hr_conn_on_io with EPOLLOUT when
 * it can). They are on the worker's connection list (drain, counts) but not
 * in server.max_connections' count, which counts sockets. */
hr_conn *hr_conn_open_virtual(struct hr_worker *w, hr_conn_layer *layer, uint32_t flags);
/* Input for a socketless connection: as if read from a socket (kept while
 * reading is paused, presented with what is left over). 0 or HR_ERR_CLOSED. */
int hr_conn_feed(hr_conn *c, uint8_t *data, size_t len);
/* The peer closed its sending side of a socketless connection. */
void hr_conn_feed_eof(hr_conn *c);
/* Put c on the end-of-turn flush list even with nothing queued (a
 * transport with on_flush has frames to make). */
void hr_conn_want_flush(hr_conn *c);
/* A layer that keeps bytes its writev took (an HTTP/2 stream's pending
 * DATA, bounded by the layer) counts them here, `delta` more (or, negative,
 * fewer): they stay in the queue's cost (out.bytes, so the transports'
 * max_queued_bytes bounds see them, and hr_conn_write_now returns them)
 * and in herald_queued_bytes until the layer lets them go. The layer gives
 * back what it counted before its close op returns (hr_conn_close then
 * clears the queue's cost). */
void hr_conn_layer_hold(hr_conn *c, ptrdiff_t delta);
/* The socket under c (a socketless connection's parent's), or -1. */
int hr_conn_socket(const hr_conn *c);

/* Worker side: called from the loop for socket events. */
void hr_conn_on_io(hr_loop *loop, hr_io *io, uint32_t events);
void hr_conn_on_timer(hr_timer *t, void *data);
/* Read again the connections whose reads were cut short (fairness / resume). */
void hr_conn_run_ready(struct hr_worker *w);
/* Flush every connection that queued output this turn, free closed ones. */
void hr_conn_end_turn(struct hr_worker *w);
/* A token presented on this connection was rejected (jwt_rc from
 * hr_auth_verify): counted against its address (limits.auth_failures_per_ip). */
void hr_conn_bad_token(hr_conn *c, int jwt_rc);
/* Free the worker's pool of drained output rings (at worker shutdown). */
void hr_conn_release_pool(struct hr_worker *w);

#endif
