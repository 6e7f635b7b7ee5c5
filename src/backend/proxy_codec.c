/* proxy_codec.c - build the proxy hooks' request bodies with the JSON
 * escaper of core/json.h, and parse the backend's answers with jansson
 * (duplicate keys rejected) against a per-hook table of the result members
 * each hook accepts: an unknown or mistyped member is an error, so a
 * backend's mistake is reported instead of silently ignored. */
#include "backend/proxy_codec.h"

#include "core/json.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

enum { M_USER = 1, M_EXPIRE_AT = 2, M_EXPIRED = 4, M_INFO = 8, M_DATA = 16, M_CHANNELS = 32 };

static const struct {
    const char *name;
    unsigned members;     /* result members the hook accepts */
    unsigned required;
} HOOKS[] = {
    [HR_HOOK_CONNECT] = {"connect", M_USER | M_EXPIRE_AT | M_INFO | M_DATA | M_CHANNELS, M_USER},
    [HR_HOOK_REFRESH] = {"refresh", M_EXPIRE_AT | M_EXPIRED | M_INFO, 0},
    [HR_HOOK_SUBSCRIBE] = {"subscribe", M_INFO | M_DATA, 0},
    [HR_HOOK_PUBLISH] = {"publish", M_DATA, 0},
    [HR_HOOK_RPC] = {"rpc", M_DATA, 0},
};

void hr_proxy_limits_default(hr_proxy_limits *l)
{
    l->max_answer_bytes = HR_PROXY_DEFAULT_MAX_ANSWER_BYTES;
    l->max_string = HR_PROXY_DEFAULT_MAX_STRING;
    l->max_channels = HR_PROXY_DEFAULT_MAX_CHANNELS;
    l->max_depth = HR_PROXY_DEFAULT_MAX_DEPTH;
}

const char *hr_proxy_hook_name(hr_proxy_hook hook)
{
    return (unsigned)hook < HR_ARRAY_LEN(HOOKS) ? HOOKS[hook].name : "?";
}

/* ---- requests ----------------------------------------------------------------- */

static void member(hr_buf *out, const char *key, const char *value)
{
    if (!value) return;
    hr_buf_printf(out, ",\"%s\":", key);
    hr_json_append_string(out, value, strlen(value));
}

int hr_proxy_build(hr_proxy_hook hook, const hr_proxy_ctx *c, hr_buf *out)
{
    if ((unsigned)hook >= HR_ARRAY_LEN(HOOKS) || !c->client || !c->transport || !c->protocol)
        return HR_PROXY_E_REQUEST;
    if ((hook != HR_HOOK_CONNECT && !c->user) ||
        ((hook == HR_HOOK_SUBSCRIBE || hook == HR_HOOK_PUBLISH) && !c->channel) ||
        (hook == HR_HOOK_RPC && !c->method))
        return HR_PROXY_E_REQUEST;
    hr_buf_append_str(out, "{\"client\":");
    hr_json_append_string(out, c->client, strlen(c->client));
    member(out, "transport", c->transport);
    member(out, "protocol", c->protocol);
    if (hook == HR_HOOK_CONNECT) {
        member(out, "remote_addr", c->remote_addr);
        hr_buf_append_str(out, ",\"headers\":{");
        for (size_t i = 0; i < c->nheaders; i++) {
            if (i) hr_buf_append_str(out, ",");
            hr_json_append_string(out, c->headers[i].name, strlen(c->headers[i].name));
            hr_buf_append_str(out, ":");
            hr_json_append_string(out, c->headers[i].value, strlen(c->headers[i].value));
        }
        hr_buf_append_str(out, "}");
    } else {
        member(out, "user", c->user);
    }
    member(out, "channel", c->channel);
    member(out, "method", c->method);
    if (c->data && hook != HR_HOOK_REFRESH) {
        hr_buf_append_str(out, ",\"data\":");
        hr_buf_append(out, c->data, c->data_len);
    }
    hr_buf_append_str(out, "}");
    return 0;
}

/* ---- answers ------------------------------------------------------------------ */

typedef struct parser {
    const hr_proxy_limits *lim;
    char *err;
    size_t errlen;
} parser;

static int fail(parser *p, int code, const char *what, const char *key)
{
    hr_errf(p->err, p->errlen, "%s: %s", key, what);
    return code;
}

static size_t depth(const json_t *v)
{
    size_t d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) d = HR_MAX(d, depth(x));
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) d = HR_MAX(d, depth(x));
    } else {
        return 0;
    }
    return d + 1;
}

static int get_string(parser *p, const json_t *v, const char *key, char **out)
{
    if (!json_is_string(v)) return fail(p, HR_PROXY_E_TYPE, "not a string", key);
    if (json_string_length(v) > p->lim->max_string) return fail(p, HR_PROXY_E_TOO_BIG, "too long", key);
    *out = hr_strndup(json_string_value(v), json_string_length(v));
    return 0;
}

static int get_json(parser *p, const json_t *v, const char *key, char **out)
{
    if (depth(v) > p->lim->max_depth) return fail(p, HR_PROXY_E_TOO_BIG, "nested too deep", key);
    size_t n;
    *out = hr_json_dumps(v, &n);
    return 0;
}

static int get_time(parser *p, const json_t *v, const char *key, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(p, HR_PROXY_E_TYPE, "not a non-negative integer", key);
    *out = json_integer_value(v);
    return 0;
}

static int get_channels(parser *p, const json_t *v, hr_proxy_answer *a)
{
    if (!json_is_array(v)) return fail(p, HR_PROXY_E_TYPE, "not an array", "channels");
    if (json_array_size(v) > p->lim->max_channels) return fail(p, HR_PROXY_E_TOO_BIG, "too many", "channels");
    a->channels = hr_calloc(json_array_size(v) + 1, sizeof(char *));
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        int rc = get_string(p, x, "channels[]", &a->channels[a->nchannels]);
        if (rc) return rc;
        if (!a->channels[a->nchannels++][0]) return fail(p, HR_PROXY_E_TYPE, "empty", "channels[]");
    }
    return 0;
}

static int result_member(parser *p, unsigned m, const json_t *v, const char *key, hr_proxy_answer *a)
{
    switch (m) {
    case M_USER: return get_string(p, v, key, &a->user);
    case M_EXPIRE_AT: return get_time(p, v, key, &a->expire_at);
    case M_EXPIRED:
        if (!json_is_boolean(v)) return fail(p, HR_PROXY_E_TYPE, "not a boolean", key);
        a->expired = json_is_true(v);
        return 0;
    case M_INFO: return get_json(p, v, key, &a->info);
    case M_DATA: return get_json(p, v, key, &a->data);
    default: return get_channels(p, v, a);
    }
}

static unsigned member_bit(const char *key)
{
    static const char *const names[] = {"user", "expire_at", "expired", "info", "data", "channels"};
    for (unsigned i = 0; i < HR_ARRAY_LEN(names); i++)
        if (strcmp(key, names[i]) == 0) return 1u << i;
    return 0;
}

static int parse_result(parser *p, hr_proxy_hook hook, const json_t *r, hr_proxy_answer *a)
{
    if (!json_is_object(r)) return fail(p, HR_PROXY_E_TYPE, "not an object", "result");
    unsigned seen = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)r, k, v) {
        unsigned m = member_bit(k);
        if (!(m & HOOKS[hook].members)) return fail(p, HR_PROXY_E_SHAPE, "unknown member for this hook", k);
        int rc = result_member(p, m, v, k, a);
        if (rc) return rc;
        seen |= m;
    }
    if ((seen & HOOKS[hook].required) != HOOKS[hook].required)
        return fail(p, HR_PROXY_E_SHAPE, "missing", "result.user");
    a->kind = HR_PROXY_RESULT;
    return 0;
}

/* error {code 400..1999, message, temporary} or disconnect {code 4000..4999, reason <= 123 bytes} */
static int parse_refusal(parser *p, const json_t *e, bool disconnect, hr_proxy_answer *a)
{
    const char *what = disconnect ? "disconnect" : "error", *text = disconnect ? "reason" : "message";
    json_int_t lo = disconnect ? 4000 : 400, hi = disconnect ? 4999 : 1999;
    if (!json_is_object(e)) return fail(p, HR_PROXY_E_TYPE, "not an object", what);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)e, k, v) {
        int rc = 0;
        if (strcmp(k, "code") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
                return fail(p, HR_PROXY_E_TYPE, disconnect ? "not an integer in 4000..4999" : "not an integer in 400..1999", "code");
            a->code = (uint32_t)json_integer_value(v);
        } else if (strcmp(k, text) == 0) {
            rc = get_string(p, v, k, &a->message);
            if (!rc && disconnect && strlen(a->message) > HR_PROXY_REASON_MAX)
                rc = fail(p, HR_PROXY_E_TOO_BIG, "longer than 123 bytes", k);
        } else if (!disconnect && strcmp(k, "temporary") == 0) {
            if (!json_is_boolean(v)) return fail(p, HR_PROXY_E_TYPE, "not a boolean", k);
            a->temporary = json_is_true(v);
        } else {
            return fail(p, HR_PROXY_E_SHAPE, "unknown member", k);
        }
        if (rc) return rc;
    }
    if (!a->code) return fail(p, HR_PROXY_E_SHAPE, "missing", "code");
    a->kind = disconnect ? HR_PROXY_DISCONNECT : HR_PROXY_ERROR;
    return 0;
}

static int parse_top(parser *p, hr_proxy_hook hook, const json_t *root, hr_proxy_answer *a)
{
    if (!json_is_object(root)) return fail(p, HR_PROXY_E_JSON, "not an object", "answer");
    if (json_object_size(root) != 1)
        return fail(p, HR_PROXY_E_SHAPE, "needs exactly one of result, error, disconnect", "answer");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)root, k, v) {
        if (strcmp(k, "result") == 0) return parse_result(p, hook, v, a);
        if (strcmp(k, "error") == 0) return parse_refusal(p, v, false, a);
        if (strcmp(k, "disconnect") == 0) return parse_refusal(p, v, true, a);
    }
    return fail(p, HR_PROXY_E_SHAPE, "needs exactly one of result, error, disconnect", "answer");
}

int hr_proxy_parse(hr_proxy_hook hook, const char *body, size_t len, const hr_proxy_limits *lim,
                   hr_proxy_answer *a, char *err, size_t errlen)
{
    hr_proxy_limits def;
    if (!lim) {
        hr_proxy_limits_default(&def);
        lim = &def;
    }
    parser p = {.lim = lim, .err = err, .errlen = errlen};
    memset(a, 0, sizeof(*a));
    if ((unsigned)hook >= HR_ARRAY_LEN(HOOKS)) return fail(&p, HR_PROXY_E_REQUEST, "unknown", "hook");
    if (len > lim->max_answer_bytes) return fail(&p, HR_PROXY_E_TOO_BIG, "too large", "answer");
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        hr_errf(err, errlen, "answer: not JSON: %s", je.text);
        return HR_PROXY_E_JSON;
    }
    int rc = parse_top(&p, hook, root, a);
    json_decref(root);
    if (rc) hr_proxy_answer_free(a);
    return rc;
}

void hr_proxy_answer_free(hr_proxy_answer *a)
{
    hr_free(a->user);
    hr_free(a->info);
    hr_free(a->data);
    for (size_t i = 0; i < a->nchannels; i++) hr_free(a->channels[i]);
    hr_free(a->channels);
    hr_free(a->message);
    memset(a, 0, sizeof(*a));
}
