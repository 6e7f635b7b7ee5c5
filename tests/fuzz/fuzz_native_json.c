/* fuzz_native_json.c - libFuzzer target for protocol/native_json.c and the
 * string escaper core/json.c. The input, copied into an exact-size buffer, is
 * parsed as a native-protocol frame twice: with small limits (4 commands,
 * channels of 8 bytes) and with none. The return code must be one of the
 * documented ones, a failed parse must leave an empty batch, and every
 * command must be consistent: an error comes with a detail and no subs, a
 * good command has a type, channels respect the limit, slices are readable
 * (every byte is touched, so ASan flags a dangling one), data (publish,
 * and optional on connect, subscribe, rpc) is valid JSON and an rpc method
 * is 1 to HR_CMD_MAX_METHOD printable bytes. Both parses must agree on everything but the limits. Then the
 * input goes through hr_json_append_string (and the encoders that use it):
 * jansson must parse each output, and well-formed UTF-8 must decode back to
 * the input byte for byte. abort() on any disagreement. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/native.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static volatile uint8_t sink;

/* The slice is readable in full; absent slices are {NULL, 0}. */
static void touch(hr_str s)
{
    check(s.p != NULL || s.n == 0);
    uint8_t x = 0;
    for (size_t i = 0; i < s.n; i++) x ^= (uint8_t)s.p[i];
    sink ^= x;
}

static bool same(hr_str a, hr_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* A data slice: one valid JSON text with no NUL byte. */
static void check_data(hr_str d)
{
    check(d.n > 0 && memchr(d.p, 0, d.n) == NULL);
    json_error_t err;
    json_t *v = json_loadb(d.p, d.n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    check(v != NULL);
    json_decref(v);
}

static void check_chan(hr_str s, const hr_native_limits *lim)
{
    check(s.n > 0);
    check(!lim->max_channel_len || s.n <= lim->max_channel_len);
}

static void check_cmd(const hr_cmd *c, const hr_native_limits *lim)
{
    touch(c->channel);
    touch(c->name);
    touch(c->version);
    touch(c->token);
    touch(c->epoch);
    touch(c->data);
    touch(c->idempotency_key);
    touch(c->since_epoch);
    touch(c->before_epoch);
    touch(c->method);
    check(c->nsubs <= HR_CMD_MAX_CONNECT_SUBS);
    for (size_t i = 0; i < c->nsubs; i++) touch(c->subs[i]);
    check(c->limit >= -1);
    if (c->error) {
        check(c->error >= HR_PE_INTERNAL && c->error <= HR_PE_BACKEND_UNAVAILABLE);
        check(c->error_detail != NULL && c->error_detail[0] != 0);
        check(c->nsubs == 0);
        return;
    }
    check(c->error_detail == NULL);
    check(c->type > HR_CMD_NONE && c->type <= HR_CMD_RPC);
    switch (c->type) {
    case HR_CMD_CONNECT:
        for (size_t i = 0; i < c->nsubs; i++) check_chan(c->subs[i], lim);
        if (c->data.n) check_data(c->data);
        break;
    case HR_CMD_PUBLISH:
        check_chan(c->channel, lim);
        check_data(c->data);
        break;
    case HR_CMD_SUBSCRIBE:
        check_chan(c->channel, lim);
        if (c->data.n) check_data(c->data);
        break;
    case HR_CMD_RPC:
        check(c->channel.n == 0);
        check(c->method.n > 0 && c->method.n <= HR_CMD_MAX_METHOD);
        for (size_t i = 0; i < c->method.n; i++) check(c->method.p[i] > 0x20 && c->method.p[i] < 0x7f);
        if (c->data.n) check_data(c->data);
        break;
    case HR_CMD_UNSUBSCRIBE:
    case HR_CMD_HISTORY:
    case HR_CMD_PRESENCE:
    case HR_CMD_PRESENCE_STATS: check_chan(c->channel, lim); break;
    default: check(c->channel.n == 0); break;
    }
    if (c->type != HR_CMD_HISTORY) check(c->limit == -1 && !c->has_since && !c->has_before && !c->has_since_time);
    if (c->type != HR_CMD_CONNECT) check(c->nsubs == 0);
    if (c->type != HR_CMD_RPC) check(c->method.n == 0);
}

static int parse_checked(const uint8_t *frame, size_t size, const hr_native_limits *lim, hr_native_batch *b)
{
    int rc = hr_native_parse(frame, size, lim, b);
    check(rc == 0 || rc == HR_ERR_PROTO || rc == HR_ERR_TOO_BIG);
    if (rc) {
        check(b->n == 0 && b->cmds == NULL && b->priv == NULL);
        return rc;
    }
    check(b->n == 0 || b->cmds != NULL);
    if (lim->max_commands) check(b->n <= lim->max_commands);
    for (size_t i = 0; i < b->n; i++) check_cmd(&b->cmds[i], lim);
    return rc;
}

/* Same command under two limits: equal, except that the small limit may
 * add a "channel is too long" error (107) where there was none. */
static void compare(const hr_cmd *s, const hr_cmd *l)
{
    check(s->id == l->id && s->type == l->type);
    if (l->error) check(s->error == l->error);
    else check(s->error == 0 || s->error == HR_PE_BAD_REQUEST);
    if (s->error) return;
    check(same(s->channel, l->channel) && same(s->name, l->name) && same(s->version, l->version) &&
          same(s->token, l->token) && same(s->epoch, l->epoch) && same(s->data, l->data) &&
          same(s->idempotency_key, l->idempotency_key) && same(s->since_epoch, l->since_epoch) &&
          same(s->before_epoch, l->before_epoch) && same(s->method, l->method));
    check(s->nsubs == l->nsubs);
    for (size_t i = 0; i < s->nsubs; i++) check(same(s->subs[i], l->subs[i]));
    check(s->recover == l->recover && s->offset == l->offset && s->limit == l->limit && s->reverse == l->reverse &&
          s->has_since == l->has_since && s->since_offset == l->since_offset && s->has_before == l->has_before &&
          s->before_offset == l->before_offset && s->has_since_time == l->has_since_time &&
          s->since_time == l->since_time);
}

static void check_parse(const uint8_t *frame, size_t size)
{
    static const hr_native_limits small = {4, 8}, none = {0, 0};
    hr_native_batch bs, bl;
    int rs = parse_checked(frame, size, &small, &bs);
    int rl = parse_checked(frame, size, &none, &bl);
    check(rl != HR_ERR_TOO_BIG);
    if (rs == HR_ERR_TOO_BIG) check(bl.n > small.max_commands || rl == HR_ERR_PROTO);
    else check(rs == rl);
    if (rs == 0) {
        check(bs.n == bl.n);
        for (size_t i = 0; i < bs.n; i++) compare(&bs.cmds[i], &bl.cmds[i]);
    }
    hr_native_batch_free(&bs);
    hr_native_batch_free(&bl);
    check(bs.n == 0 && bs.cmds == NULL && bs.priv == NULL);
}

/* ---- escaper ------------------------------------------------------------- */

/* out[0..n) is one JSON text; returns the parsed value (caller decrefs). */
static json_t *load(const uint8_t *p, size_t n)
{
    json_error_t err;
    json_t *v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    check(v != NULL);
    return v;
}

static void check_escape(const char *s, size_t n)
{
    hr_buf out = HR_BUF_INIT;
    hr_buf_append(&out, "[1,", 3); /* appends after what is there */
    hr_json_append_string(&out, s, n);
    hr_buf_append(&out, "]", 1);
    check(memcmp(out.data, "[1,\"", 4) == 0);
    /* no raw control bytes, no invalid UTF-8 (jansson checks the latter) */
    for (size_t i = 0; i < out.len; i++) check(out.data[i] >= 0x20);
    json_t *arr = load(out.data, out.len);
    check(json_is_array(arr) && json_array_size(arr) == 2);
    json_t *v = json_array_get(arr, 1);
    check(json_is_string(v));
    /* json_stringn accepts exactly the well-formed UTF-8 strings */
    json_t *ref = json_stringn(s, n);
    if (ref) {
        check(json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0);
        check(json_equal(v, ref));
    } else {
        check(memmem(json_string_value(v), json_string_length(v), "\xef\xbf\xbd", 3) != NULL);
    }
    json_decref(ref);
    json_decref(arr);
    hr_buf_free(&out);
}

/* The encoders with the input as channel / reason / detail. */
static void check_encoders(const char *s, size_t n, const char *cstr)
{
    hr_buf out = HR_BUF_INIT;
    json_t *v;
    hr_native_pub(&out, s, n, 1, "{\"a\":1}", 7, n & 1 ? "{}" : NULL, n & 1 ? 2 : 0);
    v = load(out.data, out.len);
    check(json_is_object(json_object_get(v, "pub")));
    json_decref(v);
    hr_buf_free(&out);

    hr_native_join_leave(&out, n & 1, s, n, NULL, 0);
    v = load(out.data, out.len);
    check(json_object_size(v) == 1);
    json_decref(v);
    hr_buf_free(&out);

    hr_native_unsubscribe(&out, s, n, 2000, cstr);
    v = load(out.data, out.len);
    check(json_is_string(json_object_get(json_object_get(v, "unsubscribe"), "reason")));
    json_decref(v);
    hr_buf_free(&out);

    hr_native_disconnect(&out, 3000, cstr, n & 1);
    v = load(out.data, out.len);
    check(json_is_boolean(json_object_get(json_object_get(v, "disconnect"), "reconnect")));
    json_decref(v);
    hr_buf_free(&out);

    hr_native_error(&out, n, HR_PE_INTERNAL + (int)(n % 17), cstr);
    v = load(out.data, out.len);
    json_t *e = json_object_get(v, "error");
    check(json_is_string(json_object_get(e, "message")));
    check((json_object_get(e, "detail") != NULL) == (cstr[0] != 0));
    json_decref(v);
    hr_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *frame = malloc(size ? size : 1);
    if (!frame) abort();
    if (size) memcpy(frame, data, size);
    check_parse(frame, size);
    check_escape((const char *)frame, size);

    /* NUL-terminated copy for the C-string encoders (stops at the first NUL) */
    char *cstr = malloc(size + 1);
    if (!cstr) abort();
    if (size) memcpy(cstr, data, size);
    cstr[size] = 0;
    check_encoders((const char *)frame, size, cstr);
    free(cstr);
    free(frame);
    return 0;
}
