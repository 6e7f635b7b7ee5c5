/* native.h - Herald's native client protocol, JSON encoding: parsing client
 * command frames into hr_cmd structs and encoding replies and pushes. The
 * MessagePack encoding of the same protocol (binary frames of MessagePack
 * maps with the same keys) is at the end: a parser into the same hr_cmd
 * structs and a transcoder for what the JSON encoders produce.
 *
 * Wire format (docs/protocol.md): a frame holds one or more commands, one
 * JSON object per line (newline-delimited). A command is
 *     {"id": 7, "subscribe": {"channel": "news", "recover": true, "epoch": "...", "offset": 12}}
 * i.e. an id plus exactly one method key whose value is the params object.
 * Replies carry the same id: {"id": 7, "result": {...}} or
 * {"id": 7, "error": {"code": 103, "message": "permission denied", "temporary": false, "detail": "..."}}.
 * Pushes carry no id: {"pub": {...}}, {"join": {...}}, {"leave": {...}},
 * {"unsubscribe": {...}}, {"disconnect": {...}}.
 *
 * The codec does no I/O and knows nothing of channels or connections. */
#ifndef HERALD_PROTOCOL_NATIVE_H
#define HERALD_PROTOCOL_NATIVE_H

#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"

/* Error codes carried in {"error": {"code": N}} (docs/protocol.md). */
enum hr_proto_error {
    HR_PE_INTERNAL = 100,          /* temporary */
    HR_PE_UNAUTHORIZED = 101,
    HR_PE_UNKNOWN_CHANNEL = 102,
    HR_PE_PERMISSION_DENIED = 103,
    HR_PE_METHOD_NOT_FOUND = 104,
    HR_PE_ALREADY_SUBSCRIBED = 105,
    HR_PE_LIMIT_EXCEEDED = 106,
    HR_PE_BAD_REQUEST = 107,
    HR_PE_NOT_AVAILABLE = 108,     /* e.g. presence disabled in the namespace */
    HR_PE_TOKEN_EXPIRED = 109,
    HR_PE_EXPIRED = 110,
    HR_PE_TOO_MANY_REQUESTS = 111, /* temporary */
    HR_PE_UNRECOVERABLE = 112,
    HR_PE_NOT_SUBSCRIBED = 113,
    HR_PE_NOT_CONNECTED = 114,     /* command before connect */
    HR_PE_MESSAGE_TOO_LARGE = 115,
    HR_PE_BACKEND_UNAVAILABLE = 116, /* temporary: the backend (proxy hook) is slow, down or answered garbage */
    HR_PE_STORAGE_UNAVAILABLE = 117, /* temporary: the durable log cannot take a write (disk full, I/O error) */
};
const char *hr_proto_error_text(int code);
bool hr_proto_error_temporary(int code);

typedef enum hr_cmd_type {
    HR_CMD_NONE = 0,
    HR_CMD_CONNECT,
    HR_CMD_SUBSCRIBE,
    HR_CMD_UNSUBSCRIBE,
    HR_CMD_PUBLISH,
    HR_CMD_HISTORY,
    HR_CMD_PRESENCE,
    HR_CMD_PRESENCE_STATS,
    HR_CMD_PING,
    HR_CMD_REFRESH,
    HR_CMD_RPC,
} hr_cmd_type;

/* A string slice; NOT NUL-terminated; valid until hr_native_batch_free(). */
typedef struct hr_str {
    const char *p;
    size_t n;
} hr_str;

#define HR_CMD_MAX_CONNECT_SUBS 64
#define HR_CMD_MAX_METHOD 128     /* bytes of an rpc method name (printable ASCII, no space) */

typedef struct hr_cmd {
    uint64_t id;              /* > 0; 0 when absent or not positive (then error 107, replied with id 0) */
    hr_cmd_type type;
    int error;                /* 0, or an HR_PE_* code when this command was malformed */
    const char *error_detail; /* static text explaining `error` */
    hr_str channel;           /* subscribe, unsubscribe, publish, history, presence, presence_stats */
    /* connect (token: connection token), subscribe (token: subscription
     * token), refresh (token: the new connection token) */
    hr_str name, version, token;
    hr_str subs[HR_CMD_MAX_CONNECT_SUBS]; /* channels to subscribe on connect */
    size_t nsubs;             /* 0 when error is set */
    /* subscribe */
    bool recover;
    hr_str epoch;             /* recover from (epoch, offset) */
    uint64_t offset;
    /* publish (required), connect, subscribe and rpc (optional: p NULL when absent) */
    hr_str data;              /* compact JSON text of "data" (any JSON value) */
    hr_str method;            /* rpc */
    hr_str idempotency_key;   /* optional */
    /* history */
    int64_t limit;            /* -1 = server default */
    bool reverse;             /* newest first */
    bool has_since;
    uint64_t since_offset;    /* history after this offset (exclusive) */
    hr_str since_epoch;
    bool has_before;
    uint64_t before_offset;   /* history before this offset (exclusive) */
    hr_str before_epoch;
    bool has_since_time;
    uint64_t since_time;      /* history with time >= this (unix ms) */
} hr_cmd;

/* The commands of one frame. */
typedef struct hr_native_batch {
    hr_cmd *cmds;
    size_t n;
    void *priv;               /* parser-owned memory (json roots, dumped strings) */
} hr_native_batch;

typedef struct hr_native_limits {
    size_t max_commands;      /* per frame */
    size_t max_channel_len;   /* longer channel names are a bad request */
} hr_native_limits;

/* Parse one frame (newline-delimited JSON objects; empty lines ignored).
 * Returns 0 and fills batch (each command may still carry its own `error`),
 * or HR_ERR_PROTO if the frame is not valid JSON lines at all (the
 * connection should then be closed with a protocol error), or
 * HR_ERR_TOO_BIG if it holds more than max_commands. Always call
 * hr_native_batch_free afterwards. */
int hr_native_parse(const uint8_t *frame, size_t len, const hr_native_limits *lim, hr_native_batch *batch);
void hr_native_batch_free(hr_native_batch *batch);

/* ---- MessagePack encoding (native_msgpack.c; docs/protocol.md) ---- */

/* Limits of a MessagePack frame, beyond which it is malformed: containers
 * (maps and arrays, the command map included) nested deeper than
 * MAX_DEPTH, or more than MAX_VALUES values in all (map keys count). They
 * keep a hostile frame from exhausting the stack or memory: every value
 * becomes a jansson node, up to ~200 bytes for an empty map. */
#define HR_NATIVE_MSGPACK_MAX_DEPTH 64
#define HR_NATIVE_MSGPACK_MAX_VALUES (1u << 20)
/* The JSON parser's bound on values per frame (HR_ERR_TOO_BIG past it). */
#define HR_NATIVE_MAX_VALUES HR_NATIVE_MSGPACK_MAX_VALUES

/* Parse one binary frame: one or more MessagePack maps back to back, each a
 * command with the same keys as the JSON object (an empty frame holds no
 * commands). Same contract as hr_native_parse: 0 with the batch filled
 * (each command may carry its own `error`; publish data is compact JSON
 * text, exactly what the JSON parser gives), HR_ERR_PROTO when the frame is
 * not a sequence of whole maps (truncated, trailing bytes, a top-level value
 * that is not a map, a non-string map key, bin/ext values, invalid UTF-8 in
 * a string, an integer above INT64_MAX, NaN or infinity, past the limits
 * above), HR_ERR_TOO_BIG when it holds more than max_commands. Always call
 * hr_native_batch_free afterwards. */
int hr_native_parse_msgpack(const uint8_t *frame, size_t len, const hr_native_limits *lim, hr_native_batch *batch);

/* Transcode newline-delimited JSON objects (a reply batch or a push, as the
 * encoders below and the session produce them; blank lines ignored) into
 * MessagePack maps back to back, appended to out. Integers stay integers,
 * reals become float64, strings str. Returns 0, or HR_ERR_PROTO when a line
 * is not a JSON object (out is then left as it was). */
int hr_native_json_to_msgpack(const char *json, size_t len, hr_buf *out);


/* Encoders: each appends one complete JSON object (no trailing newline). */
/* {"id":N,"error":{"code":C,"message":<text of C>,"temporary":B[,"detail":D]}};
 * detail (may be NULL) says what exactly was wrong. */
void hr_native_error(hr_buf *out, uint64_t id, int code, const char *detail);
/* The same with the message and temporary flag given (a backend's own error). */
void hr_native_error_as(hr_buf *out, uint64_t id, int code, const char *message, bool temporary, const char *detail);
/* {"id":N,"result":<result_json>} where result_json is a JSON object text ("{}" when NULL). */
void hr_native_result(hr_buf *out, uint64_t id, const char *result_json, size_t len);
/* {"pub":{"channel":C,"offset":N,"data":D[,"info":I]}} - D and I are JSON texts. */
void hr_native_pub(hr_buf *out, const char *channel, size_t clen, uint64_t offset, const char *data, size_t dlen,
                   const char *info, size_t ilen);
/* {"join":{"channel":C,"info":I}} / {"leave":...}; I is a JSON object text. */
void hr_native_join_leave(hr_buf *out, bool join, const char *channel, size_t clen, const char *info, size_t ilen);
/* {"unsubscribe":{"channel":C,"code":N,"reason":R}} */
void hr_native_unsubscribe(hr_buf *out, const char *channel, size_t clen, int code, const char *reason);
/* {"disconnect":{"code":N,"reason":R,"reconnect":bool}} */
void hr_native_disconnect(hr_buf *out, int code, const char *reason, bool reconnect);

#endif
