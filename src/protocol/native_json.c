/* native_json.c - owns the JSON encoding of the native protocol (native.h):
 * parsing newline-delimited command frames into hr_cmd structs with jansson
 * (string slices point into the jansson trees and the "data" texts - the
 * client's own bytes when its line is in canonical form (core/json.h), else
 * re-serialized - all kept alive in batch->priv until hr_native_batch_free),
 * the reply and push encoders (strings escaped by core/json.h), and the
 * texts and temporariness of the protocol error codes. The per-command logic and the
 * batch bookkeeping are shared with the MessagePack parser (native_msgpack.c)
 * through native_internal.h. */
#include "protocol/native.h"
#include "protocol/native_internal.h"

#include <jansson.h>
#include <string.h>

/* ---- error codes --------------------------------------------------------------- */

const char *hr_proto_error_text(int code)
{
    switch (code) {
    case HR_PE_INTERNAL: return "internal server error";
    case HR_PE_UNAUTHORIZED: return "unauthorized";
    case HR_PE_UNKNOWN_CHANNEL: return "unknown channel";
    case HR_PE_PERMISSION_DENIED: return "permission denied";
    case HR_PE_METHOD_NOT_FOUND: return "method not found";
    case HR_PE_ALREADY_SUBSCRIBED: return "already subscribed";
    case HR_PE_LIMIT_EXCEEDED: return "limit exceeded";
    case HR_PE_BAD_REQUEST: return "bad request";
    case HR_PE_NOT_AVAILABLE: return "not available";
    case HR_PE_TOKEN_EXPIRED: return "token expired";
    case HR_PE_EXPIRED: return "expired";
    case HR_PE_TOO_MANY_REQUESTS: return "too many requests";
    case HR_PE_UNRECOVERABLE: return "unrecoverable position";
    case HR_PE_NOT_SUBSCRIBED: return "not subscribed";
    case HR_PE_NOT_CONNECTED: return "not connected";
    case HR_PE_MESSAGE_TOO_LARGE: return "message too large";
    case HR_PE_BACKEND_UNAVAILABLE: return "backend unavailable";
    case HR_PE_STORAGE_UNAVAILABLE: return "storage unavailable";
    default: return "unknown error";
    }
}

bool hr_proto_error_temporary(int code)
{
    return code == HR_PE_INTERNAL || code == HR_PE_TOO_MANY_REQUESTS || code == HR_PE_BACKEND_UNAVAILABLE ||
           code == HR_PE_STORAGE_UNAVAILABLE;
}

/* ---- parser -------------------------------------------------------------------- */

/* What a batch keeps alive: per command its jansson root and, for publish,
 * the json_dumps text of "data" (both freed by hr_native_batch_free). */
typedef struct native_entry {
    json_t *root;
    char *dump;
} native_entry;

typedef struct native_priv {
    size_t n;
    size_t cap;               /* entries allocated (and hr_cmd slots in batch->cmds) */
    native_entry e[];
} native_priv;

/* The next line of frame[*pos..len) without its '\n' and a trailing '\r';
 * false at the end of the frame. */
static bool next_line(const uint8_t *frame, size_t len, size_t *pos, const uint8_t **line, size_t *n)
{
    if (*pos >= len) return false;
    const uint8_t *start = frame + *pos;
    const uint8_t *nl = memchr(start, '\n', len - *pos);
    size_t l = nl ? (size_t)(nl - start) : len - *pos;
    *pos += nl ? l + 1 : l;
    if (l && start[l - 1] == '\r') l--;
    *line = start;
    *n = l;
    return true;
}

static bool blank(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return false;
    return true;
}

static void fail(hr_cmd *c, int code, const char *detail)
{
    if (c->error) return; /* the first problem found is the one reported */
    c->error = code;
    c->error_detail = detail;
}

/* An optional member: NULL when absent or JSON null. */
static json_t *opt(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static hr_str str_of(const json_t *v)
{
    hr_str s = {json_string_value(v), json_string_length(v)};
    return s;
}

static bool chan_ok(size_t n, const hr_native_limits *lim)
{
    return n > 0 && (!lim->max_channel_len || n <= lim->max_channel_len);
}

/* The required "channel" member. Details are string literals built per
 * method by the CHANNEL macro. */
static bool take_channel(hr_cmd *c, const json_t *params, const hr_native_limits *lim, const char *bad,
                         const char *too_long)
{
    json_t *v = json_object_get(params, "channel");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        fail(c, HR_PE_BAD_REQUEST, bad);
        return false;
    }
    if (!chan_ok(json_string_length(v), lim)) {
        fail(c, HR_PE_BAD_REQUEST, too_long);
        return false;
    }
    c->channel = str_of(v);
    return true;
}

#define CHANNEL(m) m ": channel must be a non-empty string", m ": channel is too long"

/* Optional string member; out untouched when absent. */
static bool take_str(hr_cmd *c, const json_t *obj, const char *key, hr_str *out, const char *bad)
{
    json_t *v = opt(obj, key);
    if (!v) return true;
    if (!json_is_string(v)) {
        fail(c, HR_PE_BAD_REQUEST, bad);
        return false;
    }
    *out = str_of(v);
    return true;
}

static bool take_bool(hr_cmd *c, const json_t *obj, const char *key, bool *out, const char *bad)
{
    json_t *v = opt(obj, key);
    if (!v) return true;
    if (!json_is_boolean(v)) {
        fail(c, HR_PE_BAD_REQUEST, bad);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* Non-negative integer member; *present says whether it was there. */
static bool take_uint(hr_cmd *c, const json_t *obj, const char *key, uint64_t *out, bool *present, const char *bad)
{
    json_t *v = opt(obj, key);
    *present = v != NULL;
    if (!v) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        fail(c, HR_PE_BAD_REQUEST, bad);
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool add_sub(hr_cmd *c, const char *p, size_t n, const hr_native_limits *lim)
{
    if (!n) {
        fail(c, HR_PE_BAD_REQUEST, "connect: subs must hold non-empty channel names");
        return false;
    }
    if (!chan_ok(n, lim)) {
        fail(c, HR_PE_BAD_REQUEST, "connect: subs channel is too long");
        return false;
    }
    if (memchr(p, '\0', n)) { /* never a channel; and a result key cannot hold it */
        fail(c, HR_PE_BAD_REQUEST, "connect: subs channel names must not contain NUL");
        return false;
    }
    c->subs[c->nsubs].p = p;
    c->subs[c->nsubs].n = n;
    c->nsubs++;
    return true;
}

/* An optional "data" member as compact JSON text (kept alive by *dump).
 * *dump may already hold that text: the command's own bytes, when its line
 * was in canonical form (hr_native_batch_add_text); else it is dumped. */
static void take_data(hr_cmd *c, const json_t *p, char **dump)
{
    json_t *data = json_object_get(p, "data"); /* JSON null is valid data */
    if (!data) return;
    size_t n;
    char *text = *dump;
    if (text) n = strlen(text); /* canonical text holds no NUL byte */
    else text = *dump = hr_json_dumps(data, &n); /* NUL bytes inside strings come out as \u0000 */
    c->data.p = text;
    c->data.n = n;
}

static void parse_connect(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    take_data(c, p, dump);
    if (!take_str(c, p, "name", &c->name, "connect: name must be a string") ||
        !take_str(c, p, "version", &c->version, "connect: version must be a string") ||
        !take_str(c, p, "token", &c->token, "connect: token must be a string"))
        return;
    json_t *subs = opt(p, "subs");
    if (!subs) return;
    if (json_is_array(subs)) {
        if (json_array_size(subs) > HR_CMD_MAX_CONNECT_SUBS) {
            fail(c, HR_PE_LIMIT_EXCEEDED, "connect: too many subs");
            return;
        }
        for (size_t i = 0; i < json_array_size(subs); i++) {
            json_t *v = json_array_get(subs, i);
            if (!json_is_string(v)) {
                fail(c, HR_PE_BAD_REQUEST, "connect: subs must hold non-empty channel names");
                break;
            }
            if (!add_sub(c, json_string_value(v), json_string_length(v), lim)) break;
        }
    } else if (json_is_object(subs)) {
        if (json_object_size(subs) > HR_CMD_MAX_CONNECT_SUBS) {
            fail(c, HR_PE_LIMIT_EXCEEDED, "connect: too many subs");
            return;
        }
        const char *key;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach(subs, key, klen, v)
        {
            HR_UNUSED(v); /* per-channel options: reserved */
            if (!add_sub(c, key, klen, lim)) break;
        }
    } else {
        fail(c, HR_PE_BAD_REQUEST, "connect: subs must be an array or an object of channel names");
    }
    if (c->error) c->nsubs = 0;
}

static void parse_subscribe(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    bool has_offset;
    if (!take_channel(c, p, lim, CHANNEL("subscribe"))) return;
    if (!take_bool(c, p, "recover", &c->recover, "subscribe: recover must be a boolean")) return;
    if (!take_str(c, p, "epoch", &c->epoch, "subscribe: epoch must be a string")) return;
    if (!take_str(c, p, "token", &c->token, "subscribe: token must be a string")) return;
    if (!take_uint(c, p, "offset", &c->offset, &has_offset, "subscribe: offset must be a non-negative integer"))
        return;
    take_data(c, p, dump); /* for the subscribe hook */
}

static void parse_channel_only(hr_cmd *c, const json_t *p, const hr_native_limits *lim)
{
    switch (c->type) {
    case HR_CMD_UNSUBSCRIBE: take_channel(c, p, lim, CHANNEL("unsubscribe")); break;
    case HR_CMD_PRESENCE: take_channel(c, p, lim, CHANNEL("presence")); break;
    default: take_channel(c, p, lim, CHANNEL("presence_stats")); break;
    }
}

static void parse_unsubscribe(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    HR_UNUSED(dump);
    parse_channel_only(c, p, lim);
}

static void parse_publish(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    if (!take_channel(c, p, lim, CHANNEL("publish"))) return;
    json_t *data = json_object_get(p, "data"); /* JSON null is valid data */
    if (!data) {
        fail(c, HR_PE_BAD_REQUEST, "publish: data is required");
        return;
    }
    if (!take_str(c, p, "idempotency_key", &c->idempotency_key, "publish: idempotency_key must be a string"))
        return;
    if (c->idempotency_key.p && !c->idempotency_key.n) { /* as the server API: 1 to 128 bytes */
        fail(c, HR_PE_BAD_REQUEST, "publish: idempotency_key must be a string of 1 to 128 bytes");
        return;
    }
    take_data(c, p, dump);
}

static void parse_rpc(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    HR_UNUSED(lim);
    if (!take_str(c, p, "method", &c->method, "rpc: method must be a string")) return;
    bool ok = c->method.n > 0 && c->method.n <= HR_CMD_MAX_METHOD;
    for (size_t i = 0; ok && i < c->method.n; i++) ok = c->method.p[i] > 0x20 && c->method.p[i] < 0x7f;
    if (!ok) {
        fail(c, HR_PE_BAD_REQUEST, "rpc: method must be 1 to 128 printable ASCII characters without spaces");
        return;
    }
    take_data(c, p, dump);
}

/* The messages of a history position {"offset": N, "epoch": "..."} named m. */
#define CURSOR(m)                                                                                           \
    (const char *const[]){"history: " m " must be an object", "history: " m ".offset must be a non-negative integer", \
                          "history: " m ".offset is required", "history: " m ".epoch must be a string"}

/* Optional history position member key: {"offset": N (required), "epoch": "..." (optional)}. */
static bool take_cursor(hr_cmd *c, const json_t *p, const char *key, const char *const *msg, bool *has,
                        uint64_t *offset, hr_str *epoch)
{
    json_t *v = opt(p, key);
    if (!v) return true;
    if (!json_is_object(v)) {
        fail(c, HR_PE_BAD_REQUEST, msg[0]);
        return false;
    }
    bool has_offset;
    if (!take_uint(c, v, "offset", offset, &has_offset, msg[1])) return false;
    if (!has_offset) {
        fail(c, HR_PE_BAD_REQUEST, msg[2]);
        return false;
    }
    if (!take_str(c, v, "epoch", epoch, msg[3])) return false;
    *has = true;
    return true;
}

static void parse_history(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    HR_UNUSED(dump);
    if (!take_channel(c, p, lim, CHANNEL("history"))) return;
    json_t *limit = opt(p, "limit");
    if (limit) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 0) {
            fail(c, HR_PE_BAD_REQUEST, "history: limit must be a non-negative integer");
            return;
        }
        c->limit = json_integer_value(limit);
    }
    if (!take_bool(c, p, "reverse", &c->reverse, "history: reverse must be a boolean")) return;
    if (!take_cursor(c, p, "since", CURSOR("since"), &c->has_since, &c->since_offset, &c->since_epoch)) return;
    if (!take_cursor(c, p, "before", CURSOR("before"), &c->has_before, &c->before_offset, &c->before_epoch)) return;
    take_uint(c, p, "since_time", &c->since_time, &c->has_since_time,
              "history: since_time must be a non-negative integer (unix milliseconds)");
}

static void parse_presence(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    HR_UNUSED(dump);
    parse_channel_only(c, p, lim);
}

static void parse_ping(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    HR_UNUSED(c);
    HR_UNUSED(p);
    HR_UNUSED(lim);
    HR_UNUSED(dump);
}

static void parse_refresh(hr_cmd *c, const json_t *p, const hr_native_limits *lim, char **dump)
{
    HR_UNUSED(lim);
    HR_UNUSED(dump);
    if (!take_str(c, p, "token", &c->token, "refresh: token must be a string")) return;
    if (!c->token.n) fail(c, HR_PE_BAD_REQUEST, "refresh: token is required");
}

typedef struct method {
    const char *name;
    hr_cmd_type type;
    void (*parse)(hr_cmd *c, const json_t *params, const hr_native_limits *lim, char **dump);
    const char *not_object; /* detail when the params are not an object */
} method;

static const method methods[] = {
    {"connect", HR_CMD_CONNECT, parse_connect, "connect: params must be an object"},
    {"subscribe", HR_CMD_SUBSCRIBE, parse_subscribe, "subscribe: params must be an object"},
    {"unsubscribe", HR_CMD_UNSUBSCRIBE, parse_unsubscribe, "unsubscribe: params must be an object"},
    {"publish", HR_CMD_PUBLISH, parse_publish, "publish: params must be an object"},
    {"history", HR_CMD_HISTORY, parse_history, "history: params must be an object"},
    {"presence", HR_CMD_PRESENCE, parse_presence, "presence: params must be an object"},
    {"presence_stats", HR_CMD_PRESENCE_STATS, parse_presence, "presence_stats: params must be an object"},
    {"ping", HR_CMD_PING, parse_ping, "ping: params must be an object"},
    {"refresh", HR_CMD_REFRESH, parse_refresh, "refresh: params must be an object"},
    {"rpc", HR_CMD_RPC, parse_rpc, "rpc: params must be an object"},
};

static const method *find_method(const char *key, size_t klen)
{
    for (size_t i = 0; i < HR_ARRAY_LEN(methods); i++)
        if (strlen(methods[i].name) == klen && memcmp(methods[i].name, key, klen) == 0) return &methods[i];
    return NULL;
}

/* One command object. Precedence of errors: a bad id, then an unknown key,
 * no method, several methods, the method's own params checks, and last a
 * missing id. */
void hr_native_parse_root(const json_t *root, const hr_native_limits *lim, hr_cmd *c, char **dump)
{
    c->limit = -1;
    json_t *id = opt(root, "id");
    if (id) {
        if (!json_is_integer(id) || json_integer_value(id) <= 0)
            fail(c, HR_PE_BAD_REQUEST, "id must be a positive integer");
        else
            c->id = (uint64_t)json_integer_value(id);
    }

    const method *m = NULL;
    json_t *params = NULL;
    size_t nmethods = 0;
    bool unknown = false;
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)root, key, klen, v)
    {
        if (klen == 2 && memcmp(key, "id", 2) == 0) continue;
        const method *k = find_method(key, klen);
        if (!k) {
            unknown = true;
        } else if (nmethods++ == 0) {
            m = k;
            params = v;
        }
    }
    if (unknown) fail(c, HR_PE_METHOD_NOT_FOUND, "unknown method");
    else if (nmethods == 0) fail(c, HR_PE_METHOD_NOT_FOUND, "no method");
    else if (nmethods > 1) fail(c, HR_PE_BAD_REQUEST, "more than one method in a command");
    if (c->error) return;

    c->type = m->type;
    if (!json_is_object(params) && !(m->type == HR_CMD_PING && json_is_null(params))) {
        fail(c, HR_PE_BAD_REQUEST, m->not_object);
        return;
    }
    if (json_is_object(params)) m->parse(c, params, lim, dump);
    /* every command has a reply matched by its id (docs/protocol.md); the
     * refusal is answered with id 0 */
    if (!id && !c->error) fail(c, HR_PE_BAD_REQUEST, "id is missing (a positive integer)");
    if (c->error) c->nsubs = 0; /* a refused command subscribes to nothing (native.h) */
}

void hr_native_batch_free(hr_native_batch *batch)
{
    native_priv *pv = batch->priv;
    if (pv) {
        json_malloc_t jmalloc;
        json_free_t jfree; /* the dumps come from jansson's allocator */
        json_get_alloc_funcs(&jmalloc, &jfree);
        for (size_t i = 0; i < pv->n; i++) {
            json_decref(pv->e[i].root);
            if (pv->e[i].dump) jfree(pv->e[i].dump);
        }
        hr_free(pv);
    }
    hr_free(batch->cmds);
    batch->cmds = NULL;
    batch->n = 0;
    batch->priv = NULL;
}

void hr_native_batch_reserve(hr_native_batch *batch, size_t count)
{
    native_priv *pv = batch->priv;
    size_t old = pv ? pv->cap : 0;
    if (count <= old) return;
    pv = hr_realloc(pv, sizeof(*pv) + count * sizeof(pv->e[0]));
    if (!old) pv->n = 0;
    pv->cap = count;
    memset(&pv->e[old], 0, (count - old) * sizeof(pv->e[0]));
    batch->priv = pv;
    batch->cmds = hr_realloc(batch->cmds, count * sizeof(hr_cmd));
    memset(&batch->cmds[old], 0, (count - old) * sizeof(hr_cmd));
}

void hr_native_batch_add(hr_native_batch *batch, json_t *root, const hr_native_limits *lim)
{
    hr_native_batch_add_text(batch, root, lim, NULL, 0);
}

void hr_native_batch_add_text(hr_native_batch *batch, json_t *root, const hr_native_limits *lim, const char *data,
                              size_t data_len)
{
    native_priv *pv = batch->priv;
    if (!pv || pv->n == pv->cap) {
        hr_native_batch_reserve(batch, pv ? pv->cap * 2 : 4);
        pv = batch->priv;
    }
    native_entry *e = &pv->e[pv->n++];
    e->root = root;
    if (data) { /* freed with the dumps, so from jansson's allocator too */
        json_malloc_t jmalloc;
        json_free_t jfree;
        json_get_alloc_funcs(&jmalloc, &jfree);
        e->dump = jmalloc(data_len + 1);
        if (e->dump) { /* else take_data dumps it */
            memcpy(e->dump, data, data_len);
            e->dump[data_len] = '\0';
        }
    }
    hr_native_parse_root(root, lim, &batch->cmds[batch->n++], &e->dump);
}

int hr_native_parse(const uint8_t *frame, size_t len, const hr_native_limits *lim, hr_native_batch *batch)
{
    memset(batch, 0, sizeof(*batch));
    const uint8_t *line;
    size_t n, pos = 0, count = 0;
    while (next_line(frame, len, &pos, &line, &n))
        if (!blank(line, n)) count++;
    /* max_commands 0: no limit */
    if (lim->max_commands && count > lim->max_commands) return HR_ERR_TOO_BIG;
    if (!count) return 0;
    /* Bound the jansson trees a frame can build (a 16 MiB frame of "{}," would
     * be ~8M objects): every value but the first of a line follows one of
     * these bytes, so their count bounds the values (strings holding them
     * only make it stricter). Same limit as the MessagePack parser. */
    size_t values = count;
    for (size_t i = 0; i < len; i++) values += frame[i] == ',' || frame[i] == '[' || frame[i] == '{';
    if (values > HR_NATIVE_MAX_VALUES) return HR_ERR_TOO_BIG;

    hr_native_batch_reserve(batch, count);
    pos = 0;
    while (next_line(frame, len, &pos, &line, &n)) {
        if (blank(line, n)) continue;
        json_error_t jerr;
        /* JSON_ALLOW_NUL: "\u0000" is valid JSON; slices carry lengths. */
        json_t *root = json_loadb((const char *)line, n, JSON_ALLOW_NUL, &jerr);
        if (!root || !json_is_object(root)) {
            json_decref(root);
            hr_native_batch_free(batch);
            return HR_ERR_PROTO;
        }
        /* A line already in compact form (most clients send JSON.stringify's)
         * gives its "data" as sent: parsing and dumping it would give back
         * the same bytes (core/json.h), so only the dump is saved. */
        const char *data;
        size_t dlen;
        if (!hr_json_canonical_inner((const char *)line, n, "data", &data, &dlen)) data = NULL;
        hr_native_batch_add_text(batch, root, lim, data, dlen);
    }
    return 0;
}

/* ---- encoders ------------------------------------------------------------------ */

/* A caller-supplied JSON text, or `dflt` when there is none. */
static void append_json(hr_buf *out, const char *json, size_t len, const char *dflt)
{
    if (json && len) hr_buf_append(out, json, len);
    else hr_buf_append_str(out, dflt);
}

static void append_cstr(hr_buf *out, const char *s)
{
    if (!s) s = "";
    hr_json_append_string(out, s, strlen(s));
}

void hr_native_error(hr_buf *out, uint64_t id, int code, const char *detail)
{
    hr_native_error_as(out, id, code, hr_proto_error_text(code), hr_proto_error_temporary(code), detail);
}

void hr_native_error_as(hr_buf *out, uint64_t id, int code, const char *message, bool temporary, const char *detail)
{
    hr_buf_printf(out, "{\"id\":%llu,\"error\":{\"code\":%d,\"message\":", (unsigned long long)id, code);
    append_cstr(out, message);
    hr_buf_append_str(out, temporary ? ",\"temporary\":true" : ",\"temporary\":false");
    if (detail && *detail) {
        hr_buf_append_str(out, ",\"detail\":");
        append_cstr(out, detail);
    }
    hr_buf_append(out, "}}", 2);
}

void hr_native_result(hr_buf *out, uint64_t id, const char *result_json, size_t len)
{
    hr_buf_printf(out, "{\"id\":%llu,\"result\":", (unsigned long long)id);
    append_json(out, result_json, len, "{}");
    hr_buf_append(out, "}", 1);
}

void hr_native_pub(hr_buf *out, const char *channel, size_t clen, uint64_t offset, const char *data, size_t dlen,
                   const char *info, size_t ilen)
{
    hr_buf_append_str(out, "{\"pub\":{\"channel\":");
    hr_json_append_string(out, channel, clen);
    hr_buf_printf(out, ",\"offset\":%llu,\"data\":", (unsigned long long)offset);
    append_json(out, data, dlen, "null");
    if (info && ilen) {
        hr_buf_append_str(out, ",\"info\":");
        hr_buf_append(out, info, ilen);
    }
    hr_buf_append(out, "}}", 2);
}

void hr_native_join_leave(hr_buf *out, bool join, const char *channel, size_t clen, const char *info, size_t ilen)
{
    hr_buf_append_str(out, join ? "{\"join\":{\"channel\":" : "{\"leave\":{\"channel\":");
    hr_json_append_string(out, channel, clen);
    hr_buf_append_str(out, ",\"info\":");
    append_json(out, info, ilen, "{}");
    hr_buf_append(out, "}}", 2);
}

void hr_native_unsubscribe(hr_buf *out, const char *channel, size_t clen, int code, const char *reason)
{
    hr_buf_append_str(out, "{\"unsubscribe\":{\"channel\":");
    hr_json_append_string(out, channel, clen);
    hr_buf_printf(out, ",\"code\":%d,\"reason\":", code);
    append_cstr(out, reason);
    hr_buf_append(out, "}}", 2);
}

void hr_native_disconnect(hr_buf *out, int code, const char *reason, bool reconnect)
{
    hr_buf_printf(out, "{\"disconnect\":{\"code\":%d,\"reason\":", code);
    append_cstr(out, reason);
    hr_buf_append_str(out, reconnect ? ",\"reconnect\":true}}" : ",\"reconnect\":false}}");
}
