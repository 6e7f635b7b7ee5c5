/* fuzz_native_msgpack.c - libFuzzer target for protocol/native_msgpack.c.
 *
 * The input is parsed as a MessagePack command frame. When it parses, it is
 * read again with msgpack-c's own unpacker (safe then: every declared size
 * is backed by bytes), written out as JSON lines, and those lines must parse
 * with hr_native_parse to exactly the same commands; transcoded back with
 * hr_native_json_to_msgpack they must parse the same once more; and a
 * max_commands of one less must give HR_ERR_TOO_BIG.
 *
 * The input is also parsed as JSON lines; when that succeeds, transcoding
 * must succeed and the MessagePack must parse to the same commands, unless
 * the frame is past the MessagePack depth or value limits. abort() on any
 * inconsistency. */
#include <jansson.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/native.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static bool str_eq(hr_str a, hr_str b)
{
    return (a.p == NULL) == (b.p == NULL) && a.n == b.n && (!a.n || memcmp(a.p, b.p, a.n) == 0);
}

static bool cmd_eq(const hr_cmd *a, const hr_cmd *b)
{
    if (a->id != b->id || a->type != b->type || a->error != b->error || a->nsubs != b->nsubs ||
        a->recover != b->recover || a->offset != b->offset || a->limit != b->limit || a->reverse != b->reverse ||
        a->has_since != b->has_since || a->since_offset != b->since_offset)
        return false;
    if ((a->error_detail == NULL) != (b->error_detail == NULL) ||
        (a->error_detail && strcmp(a->error_detail, b->error_detail) != 0))
        return false;
    for (size_t i = 0; i < a->nsubs; i++)
        if (!str_eq(a->subs[i], b->subs[i])) return false;
    return str_eq(a->channel, b->channel) && str_eq(a->name, b->name) && str_eq(a->version, b->version) &&
           str_eq(a->token, b->token) && str_eq(a->epoch, b->epoch) && str_eq(a->data, b->data) &&
           str_eq(a->idempotency_key, b->idempotency_key) && str_eq(a->since_epoch, b->since_epoch);
}

static void batch_eq(const hr_native_batch *a, const hr_native_batch *b)
{
    check(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) check(cmd_eq(&a->cmds[i], &b->cmds[i]));
}

/* msgpack-c's reading, as jansson; only types the parser accepted can occur. */
static json_t *obj_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        check(o->via.u64 <= INT64_MAX);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        json_t *r = json_real(o->via.f64);
        check(r != NULL);
        return r;
    }
    case MSGPACK_OBJECT_STR: {
        json_t *s = json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size); /* ptr may be NULL */
        check(s != NULL);
        return s;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) json_array_append_new(a, obj_to_json(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            check(k->type == MSGPACK_OBJECT_STR);
            const char *key = k->via.str.size ? k->via.str.ptr : "";
            check(json_object_setn_new(m, key, k->via.str.size, obj_to_json(&o->via.map.ptr[i].val)) == 0);
        }
        return m;
    }
    default: abort();
    }
}

/* Containers nested and values (keys included) of a tree. */
static void stats(const json_t *v, size_t depth, size_t *max_depth, size_t *values)
{
    const char *key;
    size_t klen, i;
    json_t *e;
    (*values)++;
    if (json_is_object(v)) {
        if (depth + 1 > *max_depth) *max_depth = depth + 1;
        json_object_keylen_foreach((json_t *)v, key, klen, e)
        {
            (*values)++;
            stats(e, depth + 1, max_depth, values);
        }
    } else if (json_is_array(v)) {
        if (depth + 1 > *max_depth) *max_depth = depth + 1;
        json_array_foreach(v, i, e) stats(e, depth + 1, max_depth, values);
    }
}

/* Whether the JSON lines are within the MessagePack limits. */
static bool within_limits(const uint8_t *data, size_t size)
{
    size_t pos = 0, max_depth = 0, values = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
        json_t *root = json_loadb((const char *)data + pos, n, JSON_ALLOW_NUL, NULL);
        pos += n + (nl != NULL);
        if (!root) continue; /* blank (hr_native_parse accepted the frame) */
        stats(root, 0, &max_depth, &values);
        json_decref(root);
    }
    return max_depth <= HR_NATIVE_MSGPACK_MAX_DEPTH && values <= HR_NATIVE_MSGPACK_MAX_VALUES;
}

static void msgpack_side(const uint8_t *data, size_t size, const hr_native_limits *lim)
{
    hr_native_batch b;
    int rc = hr_native_parse_msgpack(data, size, lim, &b);
    check(rc == 0 || rc == HR_ERR_PROTO);
    if (rc) {
        check(b.n == 0 && b.cmds == NULL);
        hr_native_batch_free(&b);
        return;
    }
    for (size_t i = 0; i < b.n; i++) {
        const hr_cmd *c = &b.cmds[i];
        if (c->type == HR_CMD_PUBLISH && !c->error) {
            json_t *d = json_loadb(c->data.p, c->data.n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            check(d != NULL);
            json_decref(d);
        }
    }
    if (b.n > 1) {
        hr_native_limits fewer = {b.n - 1, lim->max_channel_len};
        hr_native_batch t;
        check(hr_native_parse_msgpack(data, size, &fewer, &t) == HR_ERR_TOO_BIG);
        hr_native_batch_free(&t);
    }

    /* msgpack-c's reading, as JSON lines */
    hr_buf lines = HR_BUF_INIT;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0, maps = 0;
    bool deep = false;
    while (off < size) {
        msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)data, size, &off);
        if (r == MSGPACK_UNPACK_NOMEM_ERROR) { /* msgpack-c's own nesting limit, 32 */
            deep = true;
            break;
        }
        check(r == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP);
        json_t *root = obj_to_json(&u.data);
        char *text = json_dumps(root, JSON_COMPACT);
        check(text != NULL);
        hr_buf_append_str(&lines, text);
        hr_buf_append(&lines, "\n", 1);
        free(text);
        json_decref(root);
        maps++;
    }
    msgpack_unpacked_destroy(&u);
    if (!deep) {
        check(off == size && maps == b.n);
        hr_native_batch j;
        check(hr_native_parse(lines.data, lines.len, lim, &j) == 0);
        batch_eq(&b, &j);
        hr_native_batch_free(&j);
        hr_buf again = HR_BUF_INIT;
        check(hr_native_json_to_msgpack((const char *)lines.data, lines.len, &again) == 0);
        check(hr_native_parse_msgpack(again.data, again.len, lim, &j) == 0);
        batch_eq(&b, &j);
        hr_native_batch_free(&j);
        hr_buf_free(&again);
    }
    hr_buf_free(&lines);
    hr_native_batch_free(&b);
}

static void json_side(const uint8_t *data, size_t size, const hr_native_limits *lim)
{
    hr_native_batch j;
    if (hr_native_parse(data, size, lim, &j) != 0) {
        hr_native_batch_free(&j);
        return;
    }
    hr_buf out = HR_BUF_INIT;
    check(hr_native_json_to_msgpack((const char *)data, size, &out) == 0);
    hr_native_batch m;
    int rc = hr_native_parse_msgpack(out.data, out.len, lim, &m);
    if (rc == 0) batch_eq(&j, &m);
    else check(rc == HR_ERR_PROTO && !within_limits(data, size));
    hr_native_batch_free(&m);
    hr_native_batch_free(&j);
    hr_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hr_native_limits lim = {0, 32};
    msgpack_side(data, size, &lim);
    json_side(data, size, &lim);
    return 0;
}
