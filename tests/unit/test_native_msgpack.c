/* test_native_msgpack.c - unit tests for the MessagePack encoding of the
 * native protocol (protocol/native_msgpack.c).
 *
 * Parsing: every command is built as MessagePack (by hand with
 * msgpack_packer, from a JSON table with msgpack-c's packer, and with an
 * independent raw encoder that always picks the widest formats) and must
 * give exactly the hr_cmd fields, error details and publish data text that
 * hr_native_parse gives for the same command as JSON. Then every kind of
 * malformed frame and the limits. Transcoding: the output of every JSON
 * encoder goes through hr_native_json_to_msgpack and is read back with
 * msgpack-c's unpacker, and must equal jansson's reading of the JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/native.h"

static const hr_native_limits LIM = {100, 16};

/* ---- building frames ------------------------------------------------------------ */

typedef struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp;

static void mp_init(mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_free(mp *m) { msgpack_sbuffer_destroy(&m->sb); }

static void S(mp *m, const char *s)
{
    msgpack_pack_str(&m->pk, strlen(s));
    msgpack_pack_str_body(&m->pk, s, strlen(s));
}

static void M(mp *m, size_t n) { msgpack_pack_map(&m->pk, n); }
static void A(mp *m, size_t n) { msgpack_pack_array(&m->pk, n); }
static void U(mp *m, uint64_t v) { msgpack_pack_uint64(&m->pk, v); }
static void I(mp *m, int64_t v) { msgpack_pack_int64(&m->pk, v); }
static void raw(mp *m, const void *p, size_t n) { msgpack_sbuffer_write(&m->sb, p, n); }

/* msgpack-c's packer: the smallest format of every value. */
static void pack_small(msgpack_packer *pk, const json_t *v)
{
    const char *key;
    size_t klen, i;
    json_t *e;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(v));
        json_object_keylen_foreach((json_t *)v, key, klen, e)
        {
            msgpack_pack_str(pk, klen);
            msgpack_pack_str_body(pk, key, klen);
            pack_small(pk, e);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, e) pack_small(pk, e);
        break;
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(v)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    case JSON_NULL: msgpack_pack_nil(pk); break;
    }
}

static void be(mp *m, uint8_t type, uint64_t v, size_t n)
{
    uint8_t b[9] = {type};
    for (size_t i = 0; i < n; i++) b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    raw(m, b, n + 1);
}

/* Raw bytes, independent of msgpack-c: the widest format of every value
 * (map32, array32, str32, int64/uint64, float64). */
static void pack_wide(mp *m, const json_t *v)
{
    const char *key;
    size_t klen, i;
    json_t *e;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        be(m, 0xdf, json_object_size(v), 4);
        json_object_keylen_foreach((json_t *)v, key, klen, e)
        {
            be(m, 0xdb, klen, 4);
            raw(m, key, klen);
            pack_wide(m, e);
        }
        break;
    case JSON_ARRAY:
        be(m, 0xdd, json_array_size(v), 4);
        json_array_foreach(v, i, e) pack_wide(m, e);
        break;
    case JSON_STRING:
        be(m, 0xdb, json_string_length(v), 4);
        raw(m, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        if (json_integer_value(v) < 0) be(m, 0xd3, (uint64_t)json_integer_value(v), 8);
        else be(m, 0xcf, (uint64_t)json_integer_value(v), 8);
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        be(m, 0xcb, bits, 8);
        break;
    }
    case JSON_TRUE: raw(m, "\xc3", 1); break;
    case JSON_FALSE: raw(m, "\xc2", 1); break;
    case JSON_NULL: raw(m, "\xc0", 1); break;
    }
}

/* ---- comparing batches ---------------------------------------------------------- */

static void str_eq(hr_str a, hr_str b, const char *what, size_t i)
{
    if ((a.p == NULL) != (b.p == NULL) || a.n != b.n || (a.n && memcmp(a.p, b.p, a.n) != 0))
        fail_msg("command %zu: %s differs: '%.*s' (%zu) vs '%.*s' (%zu)", i, what, (int)a.n, a.p ? a.p : "", a.n,
                 (int)b.n, b.p ? b.p : "", b.n);
}

static void cmd_eq(const hr_cmd *a, const hr_cmd *b, size_t i)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->error, b->error);
    if ((a->error_detail == NULL) != (b->error_detail == NULL) ||
        (a->error_detail && strcmp(a->error_detail, b->error_detail) != 0))
        fail_msg("command %zu: detail '%s' vs '%s'", i, a->error_detail ? a->error_detail : "(null)",
                 b->error_detail ? b->error_detail : "(null)");
    str_eq(a->channel, b->channel, "channel", i);
    str_eq(a->name, b->name, "name", i);
    str_eq(a->version, b->version, "version", i);
    str_eq(a->token, b->token, "token", i);
    assert_int_equal(a->nsubs, b->nsubs);
    for (size_t k = 0; k < a->nsubs; k++) str_eq(a->subs[k], b->subs[k], "subs", i);
    assert_int_equal(a->recover, b->recover);
    str_eq(a->epoch, b->epoch, "epoch", i);
    assert_int_equal(a->offset, b->offset);
    str_eq(a->data, b->data, "data", i);
    str_eq(a->idempotency_key, b->idempotency_key, "idempotency_key", i);
    assert_int_equal(a->limit, b->limit);
    assert_int_equal(a->reverse, b->reverse);
    assert_int_equal(a->has_since, b->has_since);
    assert_int_equal(a->since_offset, b->since_offset);
    str_eq(a->since_epoch, b->since_epoch, "since_epoch", i);
}

/* The msgpack frame must parse to exactly what the JSON frame parses to. */
static void same_as_json(const char *json, const void *frame, size_t len, const hr_native_limits *lim)
{
    hr_native_batch bj, bm;
    assert_int_equal(hr_native_parse((const uint8_t *)json, strlen(json), lim, &bj), 0);
    int rc = hr_native_parse_msgpack(frame, len, lim, &bm);
    if (rc) fail_msg("msgpack frame for %s: rc %d", json, rc);
    assert_int_equal(bj.n, bm.n);
    for (size_t i = 0; i < bj.n; i++) cmd_eq(&bj.cmds[i], &bm.cmds[i], i);
    hr_native_batch_free(&bj);
    hr_native_batch_free(&bm);
}

static int parse_rc(const void *frame, size_t len)
{
    hr_native_batch b;
    int rc = hr_native_parse_msgpack(frame, len, &LIM, &b);
    if (rc) assert_int_equal(b.n, 0);
    hr_native_batch_free(&b);
    return rc;
}

#define PROTO(lit) assert_int_equal(parse_rc(lit, sizeof(lit) - 1), HR_ERR_PROTO)
#define OK(lit) assert_int_equal(parse_rc(lit, sizeof(lit) - 1), 0)

/* ---- every command type, packed by hand ----------------------------------------- */

static void test_connect(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    M(&m, 2), S(&m, "id"), U(&m, 1), S(&m, "connect");
    M(&m, 4), S(&m, "name"), S(&m, "web"), S(&m, "version"), S(&m, "1.0"), S(&m, "token"), S(&m, "t.k.n");
    S(&m, "subs"), A(&m, 2), S(&m, "news"), S(&m, "chat:lobby");
    /* subs as a map of channel -> options */
    M(&m, 2), S(&m, "connect"), M(&m, 1), S(&m, "subs"), M(&m, 2), S(&m, "a"), M(&m, 0), S(&m, "b"), M(&m, 1);
    S(&m, "recover"), msgpack_pack_true(&m.pk), S(&m, "id"), U(&m, 2);
    same_as_json("{\"id\":1,\"connect\":{\"name\":\"web\",\"version\":\"1.0\",\"token\":\"t.k.n\","
                 "\"subs\":[\"news\",\"chat:lobby\"]}}\n"
                 "{\"connect\":{\"subs\":{\"a\":{},\"b\":{\"recover\":true}}},\"id\":2}",
                 m.sb.data, m.sb.size, &LIM);
    hr_native_batch b;
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &LIM, &b), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.cmds[0].type, HR_CMD_CONNECT);
    assert_int_equal(b.cmds[0].error, 0);
    assert_int_equal(b.cmds[0].nsubs, 2);
    assert_memory_equal(b.cmds[0].subs[1].p, "chat:lobby", 10);
    assert_int_equal(b.cmds[1].id, 2);
    assert_int_equal(b.cmds[1].nsubs, 2);
    hr_native_batch_free(&b);
    mp_free(&m);
}

static void test_subscribe(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    M(&m, 2), S(&m, "id"), U(&m, 3), S(&m, "subscribe"), M(&m, 4), S(&m, "channel"), S(&m, "news");
    S(&m, "recover"), msgpack_pack_true(&m.pk), S(&m, "epoch"), S(&m, "9c0d3e1a2b4f5a6c"), S(&m, "offset");
    U(&m, UINT64_C(1) << 40);
    same_as_json("{\"id\":3,\"subscribe\":{\"channel\":\"news\",\"recover\":true,\"epoch\":\"9c0d3e1a2b4f5a6c\","
                 "\"offset\":1099511627776}}",
                 m.sb.data, m.sb.size, &LIM);
    mp_free(&m);
}

static void test_unsubscribe_presence_ping(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    M(&m, 2), S(&m, "id"), U(&m, 5), S(&m, "unsubscribe"), M(&m, 1), S(&m, "channel"), S(&m, "news");
    M(&m, 2), S(&m, "id"), U(&m, 9), S(&m, "presence"), M(&m, 1), S(&m, "channel"), S(&m, "chat:lobby");
    M(&m, 2), S(&m, "id"), U(&m, 10), S(&m, "presence_stats"), M(&m, 1), S(&m, "channel"), S(&m, "chat:lobby");
    M(&m, 2), S(&m, "id"), U(&m, 11), S(&m, "ping"), M(&m, 0);
    M(&m, 1), S(&m, "ping"), msgpack_pack_nil(&m.pk);
    same_as_json("{\"id\":5,\"unsubscribe\":{\"channel\":\"news\"}}\n"
                 "{\"id\":9,\"presence\":{\"channel\":\"chat:lobby\"}}\n"
                 "{\"id\":10,\"presence_stats\":{\"channel\":\"chat:lobby\"}}\n"
                 "{\"id\":11,\"ping\":{}}\n"
                 "{\"ping\":null}",
                 m.sb.data, m.sb.size, &LIM);
    mp_free(&m);
}

/* Publish: data of every type, checked against the JSON parser and literally. */
static void test_publish(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    M(&m, 2), S(&m, "id"), U(&m, 6), S(&m, "publish"), M(&m, 3), S(&m, "channel"), S(&m, "chat:lobby");
    S(&m, "data"), M(&m, 3), S(&m, "text"), S(&m, "h\xc3\xa9llo");
    S(&m, "list"), A(&m, 9), I(&m, -1), I(&m, -200), I(&m, INT64_MIN), U(&m, INT64_MAX);
    msgpack_pack_double(&m.pk, 3.25), msgpack_pack_float(&m.pk, 0.1f), msgpack_pack_nil(&m.pk);
    msgpack_pack_false(&m.pk), A(&m, 0);
    S(&m, "s"), msgpack_pack_str(&m.pk, 3), msgpack_pack_str_body(&m.pk, "x\0y", 3);
    S(&m, "idempotency_key"), S(&m, "c1-msg-17");
    const char *json = "{\"id\":6,\"publish\":{\"channel\":\"chat:lobby\",\"data\":{\"text\":\"h\xc3\xa9llo\","
                       "\"list\":[-1,-200,-9223372036854775808,9223372036854775807,3.25,0.10000000149011612,null,"
                       "false,[]],\"s\":\"x\\u0000y\"},\"idempotency_key\":\"c1-msg-17\"}}";
    same_as_json(json, m.sb.data, m.sb.size, &LIM);
    hr_native_batch b;
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &LIM, &b), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.cmds[0].type, HR_CMD_PUBLISH);
    assert_int_equal(b.cmds[0].error, 0);
    const char *want = "{\"text\":\"h\xc3\xa9llo\",\"list\":[-1,-200,-9223372036854775808,9223372036854775807,3.25,"
                       "0.10000000149011612,null,false,[]],\"s\":\"x\\u0000y\"}";
    assert_int_equal(b.cmds[0].data.n, strlen(want));
    assert_memory_equal(b.cmds[0].data.p, want, strlen(want));
    assert_memory_equal(b.cmds[0].idempotency_key.p, "c1-msg-17", 9);
    hr_native_batch_free(&b);
    mp_free(&m);
}

static void test_history(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    M(&m, 2), S(&m, "id"), U(&m, 8), S(&m, "history"), M(&m, 4), S(&m, "channel"), S(&m, "news");
    S(&m, "since"), M(&m, 2), S(&m, "offset"), U(&m, 40), S(&m, "epoch"), S(&m, "9c0d");
    S(&m, "limit"), U(&m, 100), S(&m, "reverse"), msgpack_pack_true(&m.pk);
    M(&m, 2), S(&m, "id"), U(&m, 7), S(&m, "history"), M(&m, 1), S(&m, "channel"), S(&m, "news");
    same_as_json("{\"id\":8,\"history\":{\"channel\":\"news\",\"since\":{\"offset\":40,\"epoch\":\"9c0d\"},"
                 "\"limit\":100,\"reverse\":true}}\n"
                 "{\"id\":7,\"history\":{\"channel\":\"news\"}}",
                 m.sb.data, m.sb.size, &LIM);
    mp_free(&m);
}

/* Every integer format gives the same id; negative ones the same error. */
static void test_integer_formats(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t n;
        const char *json;
    } cases[] = {
        {"\x07", 1, "7"},
        {"\xcc\x07", 2, "7"},
        {"\xcd\x00\x07", 3, "7"},
        {"\xce\x00\x00\x00\x07", 5, "7"},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x07", 9, "7"},
        {"\xd0\x07", 2, "7"},
        {"\xd1\x00\x07", 3, "7"},
        {"\xd2\x00\x00\x00\x07", 5, "7"},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x07", 9, "7"},
        {"\xcd\xff\xff", 3, "65535"},
        {"\xce\xff\xff\xff\xff", 5, "4294967295"},
        {"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9, "9223372036854775807"},
        {"\xff", 1, "-1"},
        {"\xe0", 1, "-32"},
        {"\xd0\x80", 2, "-128"},
        {"\xd1\x80\x00", 3, "-32768"},
        {"\xd2\x80\x00\x00\x00", 5, "-2147483648"},
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, "-9223372036854775808"},
        {"\xd3\xff\xff\xff\xff\xff\xff\xff\xfe", 9, "-2"},
        {"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9, "1.0"},   /* a real id is a bad request */
        {"\xca\x3f\x80\x00\x00", 5, "1.0"},
        {"\xc3", 1, "true"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        mp m;
        mp_init(&m);
        M(&m, 2), S(&m, "id"), raw(&m, cases[i].bytes, cases[i].n), S(&m, "ping"), M(&m, 0);
        char json[128];
        snprintf(json, sizeof(json), "{\"id\":%s,\"ping\":{}}", cases[i].json);
        same_as_json(json, m.sb.data, m.sb.size, &LIM);
        mp_free(&m);
    }
}

/* Other formats: str8/16/32, array16/32, map16/32. */
static void test_wide_formats(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    raw(&m, "\xde\x00\x02", 3), raw(&m, "\xd9\x02id", 4), raw(&m, "\x01", 1);
    raw(&m, "\xda\x00\x07publish", 10), raw(&m, "\xdf\x00\x00\x00\x02", 5);
    raw(&m, "\xdb\x00\x00\x00\x07" "channel", 12), raw(&m, "\xa1x", 2);
    raw(&m, "\xa4" "data", 5), raw(&m, "\xdc\x00\x02", 3), raw(&m, "\xdd\x00\x00\x00\x01\xc0", 6);
    raw(&m, "\xd9\x00", 2);
    same_as_json("{\"id\":1,\"publish\":{\"channel\":\"x\",\"data\":[[null],\"\"]}}", m.sb.data, m.sb.size, &LIM);
    mp_free(&m);
}

/* A repeated key: the last value wins, in the first one's place (jansson). */
static void test_repeated_key(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    M(&m, 3), S(&m, "id"), U(&m, 1), S(&m, "publish"), M(&m, 2), S(&m, "channel"), S(&m, "c");
    S(&m, "data"), M(&m, 3), S(&m, "a"), U(&m, 1), S(&m, "b"), U(&m, 2), S(&m, "a"), U(&m, 3);
    S(&m, "id"), U(&m, 2);
    same_as_json("{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":{\"a\":1,\"b\":2,\"a\":3}},\"id\":2}", m.sb.data,
                 m.sb.size, &LIM);
    mp_free(&m);
}

/* ---- a table of JSON commands, good and bad, through both encoders --------------- */

static const char *const table[] = {
    "{\"id\":1,\"connect\":{\"name\":\"web\",\"version\":\"1.2\",\"token\":\"tok\"}}",
    "{\"id\":2,\"connect\":{\"subs\":[\"a\",\"b:c\"]}}",
    "{\"id\":3,\"connect\":{\"subs\":{\"x\":{},\"y\":{\"recover\":true}}}}",
    "{\"id\":4,\"connect\":{\"subs\":[\"\"]}}",
    "{\"id\":5,\"connect\":{\"subs\":[1]}}",
    "{\"id\":6,\"connect\":{\"subs\":\"a\"}}",
    "{\"id\":7,\"connect\":{\"name\":5}}",
    "{\"id\":8,\"connect\":null}",
    "{\"id\":9,\"connect\":{\"subs\":[\"abcdefghijklmnopq\"]}}",
    "{\"id\":10,\"subscribe\":{\"channel\":\"news\",\"recover\":true,\"epoch\":\"ab\",\"offset\":12}}",
    "{\"id\":11,\"subscribe\":{\"channel\":\"\"}}",
    "{\"id\":12,\"subscribe\":{\"channel\":\"news\",\"offset\":-1}}",
    "{\"id\":13,\"subscribe\":{\"channel\":\"news\",\"offset\":1.5}}",
    "{\"id\":14,\"subscribe\":{\"channel\":\"news\",\"recover\":\"yes\"}}",
    "{\"id\":15,\"subscribe\":{\"channel\":\"abcdefghijklmnopq\"}}",
    "{\"id\":16,\"subscribe\":{\"channel\":\"news\",\"epoch\":null,\"offset\":null}}",
    "{\"id\":17,\"unsubscribe\":{\"channel\":\"news\"}}",
    "{\"id\":18,\"unsubscribe\":{\"channel\":7}}",
    "{\"id\":19,\"publish\":{\"channel\":\"news\",\"data\":{\"text\":\"hi\",\"n\":[1,-2,3.25,true,false,null,"
    "{\"x\":\"\\u00e9\\u0000\"}]}}}",
    "{\"id\":20,\"publish\":{\"channel\":\"news\",\"data\":null,\"idempotency_key\":\"k1\"}}",
    "{\"id\":21,\"publish\":{\"channel\":\"news\"}}",
    "{\"id\":22,\"publish\":{\"channel\":\"news\",\"data\":\"s\",\"idempotency_key\":7}}",
    "{\"id\":23,\"publish\":{\"channel\":\"news\",\"data\":[9223372036854775807,-9223372036854775808,1e300,-0.0,"
    "0.1,5e-324,{}]}}",
    "{\"id\":24,\"history\":{\"channel\":\"news\",\"limit\":10,\"reverse\":true,\"since\":{\"offset\":5,"
    "\"epoch\":\"e\"}}}",
    "{\"id\":25,\"history\":{\"channel\":\"news\",\"since\":{\"epoch\":\"e\"}}}",
    "{\"id\":26,\"history\":{\"channel\":\"news\",\"limit\":-3}}",
    "{\"id\":27,\"history\":{\"channel\":\"news\",\"since\":[]}}",
    "{\"id\":28,\"history\":{\"channel\":\"news\",\"since\":{\"offset\":1,\"epoch\":1}}}",
    "{\"id\":29,\"presence\":{\"channel\":\"room\"}}",
    "{\"id\":30,\"presence_stats\":{\"channel\":\"room\",\"extra\":[1,2]}}",
    "{\"id\":31,\"ping\":{}}",
    "{\"ping\":null}",
    "{\"id\":32}",
    "{}",
    "{\"id\":33,\"frobnicate\":{}}",
    "{\"id\":34,\"ping\":{},\"presence\":{\"channel\":\"a\"}}",
    "{\"id\":-1,\"ping\":{}}",
    "{\"id\":\"x\",\"ping\":{}}",
    "{\"id\":null,\"ping\":{}}",
    "{\"id\":9223372036854775807,\"ping\":{}}",
    "{\"id\":35,\"ping\":[]}",
    "{\"id\":36,\"publish\":\"x\"}",
};

static void test_table_each(void **state)
{
    (void)state;
    for (size_t i = 0; i < HR_ARRAY_LEN(table); i++) {
        json_error_t jerr;
        json_t *root = json_loads(table[i], JSON_ALLOW_NUL, &jerr);
        if (!root) fail_msg("table[%zu]: %s", i, jerr.text);
        mp small, wide;
        mp_init(&small);
        mp_init(&wide);
        pack_small(&small.pk, root);
        pack_wide(&wide, root);
        same_as_json(table[i], small.sb.data, small.sb.size, &LIM);
        same_as_json(table[i], wide.sb.data, wide.sb.size, &LIM);
        /* and through the library's own transcoder */
        hr_buf out = HR_BUF_INIT;
        assert_int_equal(hr_native_json_to_msgpack(table[i], strlen(table[i]), &out), 0);
        same_as_json(table[i], out.data, out.len, &LIM);
        assert_int_equal(out.len, small.sb.size);
        assert_memory_equal(out.data, small.sb.data, out.len);
        hr_buf_free(&out);
        mp_free(&small);
        mp_free(&wide);
        json_decref(root);
    }
}

/* The whole table in one frame: many maps back to back. */
static void test_table_one_frame(void **state)
{
    (void)state;
    hr_buf json = HR_BUF_INIT;
    mp m;
    mp_init(&m);
    for (size_t i = 0; i < HR_ARRAY_LEN(table); i++) {
        hr_buf_append_str(&json, table[i]);
        hr_buf_append(&json, "\n", 1);
        json_t *root = json_loads(table[i], JSON_ALLOW_NUL, NULL);
        assert_non_null(root);
        if (i % 2) pack_small(&m.pk, root);
        else pack_wide(&m, root);
        json_decref(root);
    }
    hr_buf_append(&json, "", 1);
    hr_native_limits lim = {0, 16};
    same_as_json((const char *)json.data, m.sb.data, m.sb.size, &lim);
    hr_native_batch b;
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &lim, &b), 0);
    assert_int_equal(b.n, HR_ARRAY_LEN(table));
    hr_native_batch_free(&b);
    /* and transcoded in one go */
    hr_buf out = HR_BUF_INIT;
    assert_int_equal(hr_native_json_to_msgpack((const char *)json.data, json.len - 1, &out), 0);
    same_as_json((const char *)json.data, out.data, out.len, &lim);
    hr_buf_free(&out);
    hr_buf_free(&json);
    mp_free(&m);
}

static void test_empty_frame(void **state)
{
    (void)state;
    hr_native_batch b;
    assert_int_equal(hr_native_parse_msgpack(NULL, 0, &LIM, &b), 0);
    assert_int_equal(b.n, 0);
    hr_native_batch_free(&b);
}

/* ---- malformed frames and limits -------------------------------------------------- */

static void test_truncated(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    M(&m, 2), S(&m, "id"), U(&m, 70000), S(&m, "publish"), M(&m, 2), S(&m, "channel"), S(&m, "news");
    S(&m, "data"), A(&m, 3), msgpack_pack_double(&m.pk, 1.5), msgpack_pack_float(&m.pk, 2.5f), S(&m, "tail");
    size_t one = m.sb.size;
    M(&m, 1), S(&m, "ping"), M(&m, 0);
    /* every strict prefix is malformed, except the one that ends after the first map */
    for (size_t n = 1; n < m.sb.size; n++) {
        hr_native_batch b;
        int rc = hr_native_parse_msgpack((const uint8_t *)m.sb.data, n, &LIM, &b);
        if (n == one) {
            assert_int_equal(rc, 0);
            assert_int_equal(b.n, 1);
        } else if (rc != HR_ERR_PROTO) {
            fail_msg("prefix of %zu bytes: rc %d", n, rc);
        }
        hr_native_batch_free(&b);
    }
    assert_int_equal(parse_rc(m.sb.data, m.sb.size), 0);
    mp_free(&m);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    PROTO("\x81\xa4ping\x80\x01");
    PROTO("\x81\xa4ping\x80\xc1");
    PROTO("\x81\xa4ping\x80\xc0");
    PROTO("\x81\xa4ping\x80\x81");
    PROTO("\x81\xa4ping\x80\x0a"); /* a newline is not a separator */
}

static void test_top_level_not_map(void **state)
{
    (void)state;
    PROTO("\x91\x80");
    PROTO("\xa4ping");
    PROTO("\x01");
    PROTO("\xc0");
    PROTO("\xc3");
    PROTO("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00");
    PROTO("\xc4\x01x");
    PROTO("\xc1");
    PROTO("{\"id\":1,\"ping\":{}}"); /* JSON is not MessagePack: '{' is positive fixint 123 */
}

static void test_bin_ext_and_bad_types(void **state)
{
    (void)state;
    /* {"ping": X} for every type that is not accepted */
    PROTO("\x81\xa4ping\xc4\x01x");                 /* bin8 */
    PROTO("\x81\xa4ping\xc5\x00\x01x");             /* bin16 */
    PROTO("\x81\xa4ping\xc6\x00\x00\x00\x01x");     /* bin32 */
    PROTO("\x81\xa4ping\xd4\x01x");                 /* fixext1 */
    PROTO("\x81\xa4ping\xd5\x01xy");                /* fixext2 */
    PROTO("\x81\xa4ping\xd6\x01wxyz");              /* fixext4 */
    PROTO("\x81\xa4ping\xd7\x01" "12345678");       /* fixext8 */
    PROTO("\x81\xa4ping\xd8\x01" "1234567890123456"); /* fixext16 */
    PROTO("\x81\xa4ping\xc7\x01\x01x");             /* ext8 */
    PROTO("\x81\xa4ping\xc8\x00\x01\x01x");         /* ext16 */
    PROTO("\x81\xa4ping\xc9\x00\x00\x00\x01\x01x"); /* ext32 */
    PROTO("\x81\xd6\xff\x00\x00\x00\x00\x80");      /* timestamp ext as a key */
    PROTO("\x81\xa4ping\xc1");                      /* never used */
    /* non-string keys */
    PROTO("\x81\x01\x80");
    PROTO("\x81\xc0\x80");
    PROTO("\x81\x80\x80");
    PROTO("\x81\xc4\x04ping\x80");
    /* deep inside publish data too */
    PROTO("\x81\xa7publish\x82\xa7" "channel\xa1x\xa4" "data\x91\x91\xc4\x00");
    PROTO("\x81\xa7publish\x82\xa7" "channel\xa1x\xa4" "data\x81\x01\x02");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    PROTO("\x81\xa4ping\xa1\xff");                     /* value */
    PROTO("\x81\xa4ping\xa2\xc3\x28");                 /* bad continuation */
    PROTO("\x81\xa4ping\xa2\xc0\x80");                 /* overlong NUL */
    PROTO("\x81\xa4ping\xa3\xed\xa0\x80");             /* UTF-16 surrogate */
    PROTO("\x81\xa4ping\xa4\xf4\x90\x80\x80");         /* above U+10FFFF */
    PROTO("\x81\xa4ping\xa1\xe2");                     /* cut short */
    PROTO("\x81\xa4pin\xff\x80");                      /* key */
    PROTO("\x81\xa5pi\x00ng\x80");                     /* NUL in a key, as in JSON */
    /* valid UTF-8 of every length is fine */
    OK("\x82\xa4ping\x80\xa1x\xaa" "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}

static void test_integer_range(void **state)
{
    (void)state;
    PROTO("\x82\xa2id\xcf\x80\x00\x00\x00\x00\x00\x00\x00\xa4ping\x80");
    PROTO("\x82\xa2id\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xa4ping\x80");
    OK("\x82\xa2id\xcf\x7f\xff\xff\xff\xff\xff\xff\xff\xa4ping\x80");
}

static void test_non_finite_reals(void **state)
{
    (void)state;
    PROTO("\x81\xa4ping\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"); /* NaN */
    PROTO("\x81\xa4ping\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"); /* +inf */
    PROTO("\x81\xa4ping\xcb\xff\xf0\x00\x00\x00\x00\x00\x00"); /* -inf */
    PROTO("\x81\xa4ping\xca\x7f\xc0\x00\x00");                 /* float32 NaN */
    PROTO("\x81\xa4ping\xca\x7f\x80\x00\x00");                 /* float32 inf */
}

/* {"id": 1, "publish": {"channel": "x", "data": [[[...]]]}} with `arrays` nested arrays. */
static void deep_frame(mp *m, size_t arrays)
{
    mp_init(m);
    M(m, 2), S(m, "id"), U(m, 1), S(m, "publish"), M(m, 2), S(m, "channel"), S(m, "x"), S(m, "data");
    for (size_t i = 0; i < arrays; i++) A(m, i + 1 < arrays ? 1 : 0);
}

static void test_depth(void **state)
{
    (void)state;
    mp m;
    /* two maps around the data: 62 arrays make 64 containers */
    deep_frame(&m, HR_NATIVE_MSGPACK_MAX_DEPTH - 2);
    hr_native_batch b;
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &LIM, &b), 0);
    assert_int_equal(b.cmds[0].error, 0);
    assert_int_equal(b.cmds[0].data.n, 2 * (HR_NATIVE_MSGPACK_MAX_DEPTH - 2));
    hr_native_batch_free(&b);
    mp_free(&m);
    deep_frame(&m, HR_NATIVE_MSGPACK_MAX_DEPTH - 1);
    assert_int_equal(parse_rc(m.sb.data, m.sb.size), HR_ERR_PROTO);
    mp_free(&m);
    /* far too deep: the depth check stops it, not the stack */
    deep_frame(&m, 100000);
    assert_int_equal(parse_rc(m.sb.data, m.sb.size), HR_ERR_PROTO);
    mp_free(&m);
    /* maps nest the same way */
    mp_init(&m);
    for (int i = 0; i < HR_NATIVE_MSGPACK_MAX_DEPTH; i++) M(&m, 1), S(&m, "k");
    M(&m, 0);
    assert_int_equal(parse_rc(m.sb.data, m.sb.size), HR_ERR_PROTO);
    mp_free(&m);
}

/* Declared sizes far beyond the frame are refused without allocating for them. */
static void test_huge_declared_sizes(void **state)
{
    (void)state;
    PROTO("\xdf\xff\xff\xff\xff");
    PROTO("\xdd\xff\xff\xff\xff");
    PROTO("\x81\xa4ping\xdd\xff\xff\xff\xff");
    PROTO("\x81\xa4ping\xdb\xff\xff\xff\xff");
    PROTO("\x81\xa4ping\xdf\x7f\xff\xff\xff\x01");
    PROTO("\x81\xa4ping\x91\x91\x91\xdd\x00\x10\x00\x00");
}

/* A frame of {"publish":{"channel":"x","data":[nil, ...]}} holds 7 values plus the elements. */
static int values_frame(size_t elements)
{
    mp m;
    mp_init(&m);
    M(&m, 1), S(&m, "publish"), M(&m, 2), S(&m, "channel"), S(&m, "x"), S(&m, "data"), A(&m, elements);
    uint8_t *nils = malloc(elements);
    memset(nils, 0xc0, elements);
    raw(&m, nils, elements);
    free(nils);
    int rc = parse_rc(m.sb.data, m.sb.size);
    mp_free(&m);
    return rc;
}

static void test_value_limit(void **state)
{
    (void)state;
    assert_int_equal(values_frame(HR_NATIVE_MSGPACK_MAX_VALUES - 7), 0);
    assert_int_equal(values_frame(HR_NATIVE_MSGPACK_MAX_VALUES - 6), HR_ERR_PROTO);
    /* keys count too: a map of MAX/2 pairs is just over */
    mp m;
    mp_init(&m);
    M(&m, 1), S(&m, "ping"), M(&m, HR_NATIVE_MSGPACK_MAX_VALUES / 2);
    for (size_t i = 0; i < HR_NATIVE_MSGPACK_MAX_VALUES / 2; i++) {
        char k[16];
        snprintf(k, sizeof(k), "%zx", i);
        S(&m, k), msgpack_pack_nil(&m.pk);
    }
    assert_int_equal(parse_rc(m.sb.data, m.sb.size), HR_ERR_PROTO);
    mp_free(&m);
}

static void test_max_commands(void **state)
{
    (void)state;
    mp m;
    mp_init(&m);
    for (int i = 0; i < 3; i++) M(&m, 2), S(&m, "id"), U(&m, (uint64_t)i + 1), S(&m, "ping"), M(&m, 0);
    hr_native_batch b;
    hr_native_limits two = {2, 16}, three = {3, 16}, none = {0, 16};
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &two, &b), HR_ERR_TOO_BIG);
    assert_int_equal(b.n, 0);
    hr_native_batch_free(&b);
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &three, &b), 0);
    assert_int_equal(b.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(b.cmds[i].id, i + 1);
        assert_int_equal(b.cmds[i].type, HR_CMD_PING);
    }
    hr_native_batch_free(&b);
    /* no limit, and enough commands to grow the batch several times */
    for (int i = 3; i < 1000; i++) M(&m, 2), S(&m, "id"), U(&m, (uint64_t)i + 1), S(&m, "ping"), M(&m, 0);
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &none, &b), 0);
    assert_int_equal(b.n, 1000);
    assert_int_equal(b.cmds[999].id, 1000);
    hr_native_batch_free(&b);
    /* malformed after some commands were parsed: nothing leaks (ASan) */
    raw(&m, "\x81\xa4ping", 5);
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &none, &b), HR_ERR_PROTO);
    assert_int_equal(b.n, 0);
    hr_native_batch_free(&b);
    mp_free(&m);
}

/* ---- transcoding ---------------------------------------------------------------- */

/* msgpack-c's reading of a value, as jansson. */
static json_t *obj_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        assert_true(o->via.u64 <= INT64_MAX);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: return json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) json_array_append_new(a, obj_to_json(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            assert_int_equal(k->type, MSGPACK_OBJECT_STR);
            json_object_setn_new(m, k->via.str.size ? k->via.str.ptr : "", k->via.str.size,
                                 obj_to_json(&o->via.map.ptr[i].val));
        }
        return m;
    }
    default: fail_msg("unexpected msgpack type %d (reals must be float64)", (int)o->type); return NULL;
    }
}

/* Transcode json (newline-delimited objects) and compare, map by map, with
 * jansson's reading of each line; types must match (json_equal tells
 * integers from reals). Returns the number of maps. */
static size_t transcode_check(const char *json, size_t len)
{
    hr_buf out = HR_BUF_INIT;
    hr_buf_append(&out, "prefix", 6); /* the transcoder appends */
    assert_int_equal(hr_native_json_to_msgpack(json, len, &out), 0);
    assert_memory_equal(out.data, "prefix", 6);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 6, maps = 0, pos = 0;
    while (pos < len) {
        const char *nl = memchr(json + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (json + pos)) : len - pos;
        json_t *want = json_loadb(json + pos, n, JSON_ALLOW_NUL, NULL);
        pos += n + (nl != NULL);
        if (!want) continue; /* blank */
        assert_int_equal(msgpack_unpack_next(&u, (const char *)out.data, out.len, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
        json_t *got = obj_to_json(&u.data);
        if (!json_equal(want, got)) {
            char *a = json_dumps(want, JSON_ENCODE_ANY), *b = json_dumps(got, JSON_ENCODE_ANY);
            fail_msg("transcoded %s as %s", a, b);
        }
        json_decref(want);
        json_decref(got);
        maps++;
    }
    assert_int_equal(off, out.len); /* nothing else */
    msgpack_unpacked_destroy(&u);
    hr_buf_free(&out);
    return maps;
}

static size_t transcode_buf(hr_buf *b)
{
    size_t n = transcode_check((const char *)b->data, b->len);
    b->len = 0;
    return n;
}

static void test_transcode_encoders(void **state)
{
    (void)state;
    hr_buf b = HR_BUF_INIT;
    hr_native_error(&b, 7, HR_PE_PERMISSION_DENIED, "subscribe: \"news\" is \xc3\xa9 private");
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_error(&b, 0, HR_PE_INTERNAL, NULL);
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_error(&b, UINT64_C(9223372036854775807), HR_PE_TOO_MANY_REQUESTS, "");
    assert_int_equal(transcode_buf(&b), 1);
    const char *res = "{\"client\":\"abc\",\"ping\":25,\"subs\":{\"news\":{\"offset\":3,\"recoverable\":true}},"
                      "\"r\":[1.5,-0.25,1e300,null]}";
    hr_native_result(&b, 9, res, strlen(res));
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_result(&b, 10, NULL, 0);
    assert_int_equal(transcode_buf(&b), 1);
    const char *data = "{\"a\":[1,\"x\\u0000y\",{\"deep\":[[[]]]}],\"b\":-9223372036854775808,\"c\":0.1}";
    const char *info = "{\"user\":\"u\",\"client\":\"c\"}";
    hr_native_pub(&b, "chat:lobby", 10, UINT64_C(9223372036854775807), data, strlen(data), info, strlen(info));
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_pub(&b, "n", 1, 1, "\"just a string\"", 15, NULL, 0);
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_pub(&b, "n", 1, 0, NULL, 0, NULL, 0);
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_pub(&b, "n", 1, 2, "3.5", 3, NULL, 0);
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_join_leave(&b, true, "room", 4, info, strlen(info));
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_join_leave(&b, false, "room", 4, NULL, 0);
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_unsubscribe(&b, "news", 4, 3000, "server \"unsubscribe\"");
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_disconnect(&b, 3501, "bad request", false);
    assert_int_equal(transcode_buf(&b), 1);
    hr_native_disconnect(&b, 3001, NULL, true);
    assert_int_equal(transcode_buf(&b), 1);
    /* a reply batch as the session builds it: lines joined by \n */
    hr_native_error(&b, 1, HR_PE_BAD_REQUEST, "x");
    hr_buf_append(&b, "\n", 1);
    hr_native_result(&b, 2, res, strlen(res));
    hr_buf_append(&b, "\r\n\n \t\n", 6); /* CRLF and blank lines are tolerated */
    hr_native_result(&b, 3, NULL, 0);
    hr_buf_append(&b, "\n", 1);
    assert_int_equal(transcode_buf(&b), 3);
    hr_buf_free(&b);
}

/* Exact bytes: the smallest formats, integers as integers, reals as float64. */
static void test_transcode_bytes(void **state)
{
    (void)state;
    hr_buf b = HR_BUF_INIT, out = HR_BUF_INIT;
    hr_native_result(&b, 7, NULL, 0);
    assert_int_equal(hr_native_json_to_msgpack((const char *)b.data, b.len, &out), 0);
    static const uint8_t want[] = {0x82, 0xa2, 'i', 'd', 0x07, 0xa6, 'r', 'e', 's', 'u', 'l', 't', 0x80};
    assert_int_equal(out.len, sizeof(want));
    assert_memory_equal(out.data, want, sizeof(want));
    out.len = 0;
    b.len = 0;
    hr_native_pub(&b, "c", 1, UINT64_C(9223372036854775807), "[1.0,-1,300]", 12, NULL, 0);
    assert_int_equal(hr_native_json_to_msgpack((const char *)b.data, b.len, &out), 0);
    static const uint8_t pub[] = {0x81, 0xa3, 'p', 'u', 'b', 0x83, 0xa7, 'c', 'h', 'a', 'n', 'n', 'e', 'l', 0xa1, 'c',
                                  0xa6, 'o', 'f', 'f', 's', 'e', 't', 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xa4, 'd', 'a', 't', 'a', 0x93, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xff,
                                  0xcd, 0x01, 0x2c};
    assert_int_equal(out.len, sizeof(pub));
    assert_memory_equal(out.data, pub, sizeof(pub));
    hr_buf_free(&out);
    hr_buf_free(&b);
}

static void test_transcode_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "not json", "[1,2]", "\"s\"", "1", "{", "{\"a\":1}\n{", "{\"a\":1} {\"b\":2}", "{\"a\":1}\nnull",
        "{\"a\":18446744073709551615}", /* above INT64_MAX: jansson refuses it */
        "{\"a\\u0000\":1}",
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(bad); i++) {
        hr_buf out = HR_BUF_INIT;
        hr_buf_append(&out, "keep", 4);
        if (hr_native_json_to_msgpack(bad[i], strlen(bad[i]), &out) != HR_ERR_PROTO) fail_msg("accepted %s", bad[i]);
        assert_int_equal(out.len, 4); /* left as it was */
        assert_memory_equal(out.data, "keep", 4);
        hr_buf_free(&out);
    }
    /* nothing but blank lines: nothing out */
    hr_buf out = HR_BUF_INIT;
    assert_int_equal(hr_native_json_to_msgpack("\n\r\n  \n", 6, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(hr_native_json_to_msgpack(NULL, 0, &out), 0);
    assert_int_equal(out.len, 0);
    hr_buf_free(&out);
    /* an offset above INT64_MAX cannot be transcoded (nor parsed back as JSON) */
    hr_buf b = HR_BUF_INIT;
    hr_native_pub(&b, "c", 1, UINT64_C(9223372036854775808), "1", 1, NULL, 0);
    assert_int_equal(hr_native_json_to_msgpack((const char *)b.data, b.len, &out), HR_ERR_PROTO);
    hr_buf_free(&b);
    hr_buf_free(&out);
}

/* Round trip: a JSON publisher's data reaches a MessagePack subscriber and
 * back, unchanged. */
static void test_pub_round_trip(void **state)
{
    (void)state;
    const char *cmd = "{\"id\":4,\"publish\":{\"channel\":\"news\",\"data\":{\"t\":[1,2.5,\"\\u0000\",{\"x\":null}]}}}";
    hr_native_batch bj, bm;
    assert_int_equal(hr_native_parse((const uint8_t *)cmd, strlen(cmd), &LIM, &bj), 0);
    hr_buf push = HR_BUF_INIT, mpk = HR_BUF_INIT;
    hr_native_pub(&push, "news", 4, 12, bj.cmds[0].data.p, bj.cmds[0].data.n, NULL, 0);
    assert_int_equal(hr_native_json_to_msgpack((const char *)push.data, push.len, &mpk), 0);
    /* the msgpack subscriber publishes what it got */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, (const char *)mpk.data, mpk.len, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *pubo = &u.data.via.map.ptr[0].val;
    const msgpack_object *datao = NULL;
    for (uint32_t i = 0; i < pubo->via.map.size; i++)
        if (pubo->via.map.ptr[i].key.via.str.size == 4 && !memcmp(pubo->via.map.ptr[i].key.via.str.ptr, "data", 4))
            datao = &pubo->via.map.ptr[i].val;
    assert_non_null(datao);
    mp m;
    mp_init(&m);
    M(&m, 2), S(&m, "id"), U(&m, 4), S(&m, "publish"), M(&m, 2), S(&m, "channel"), S(&m, "news"), S(&m, "data");
    msgpack_pack_object(&m.pk, *datao);
    assert_int_equal(hr_native_parse_msgpack((const uint8_t *)m.sb.data, m.sb.size, &LIM, &bm), 0);
    cmd_eq(&bj.cmds[0], &bm.cmds[0], 0);
    msgpack_unpacked_destroy(&u);
    mp_free(&m);
    hr_buf_free(&push);
    hr_buf_free(&mpk);
    hr_native_batch_free(&bj);
    hr_native_batch_free(&bm);
}

/* The example in docs/protocol.md, "MessagePack encoding". */
static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static void test_doc_example(void **state)
{
    (void)state;
    const char *cmd_hex = "82 a2 69 64 01 a7 70 75 62 6c 69 73 68 82 a7 63 68 61 6e 6e 65 6c a4 6e 65 77 73 "
                          "a4 64 61 74 61 81 a4 74 65 78 74 a2 68 69";
    const char *reply_hex = "82 a2 69 64 01 a6 72 65 73 75 6c 74 82 a6 6f 66 66 73 65 74 2d a5 65 70 6f 63 68 "
                            "b0 39 63 30 64 33 65 31 61 32 62 34 66 35 61 36 63";
    uint8_t frame[128], reply[128];
    size_t n = unhex(cmd_hex, frame);
    same_as_json("{\"id\":1,\"publish\":{\"channel\":\"news\",\"data\":{\"text\":\"hi\"}}}", frame, n, &LIM);
    hr_buf b = HR_BUF_INIT, out = HR_BUF_INIT;
    const char *res = "{\"offset\":45,\"epoch\":\"9c0d3e1a2b4f5a6c\"}";
    hr_native_result(&b, 1, res, strlen(res));
    assert_int_equal(hr_native_json_to_msgpack((const char *)b.data, b.len, &out), 0);
    n = unhex(reply_hex, reply);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, reply, n);
    hr_buf_free(&b);
    hr_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_unsubscribe_presence_ping),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_integer_formats),
        cmocka_unit_test(test_wide_formats),
        cmocka_unit_test(test_repeated_key),
        cmocka_unit_test(test_table_each),
        cmocka_unit_test(test_table_one_frame),
        cmocka_unit_test(test_empty_frame),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_top_level_not_map),
        cmocka_unit_test(test_bin_ext_and_bad_types),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_integer_range),
        cmocka_unit_test(test_non_finite_reals),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_huge_declared_sizes),
        cmocka_unit_test(test_value_limit),
        cmocka_unit_test(test_max_commands),
        cmocka_unit_test(test_transcode_encoders),
        cmocka_unit_test(test_transcode_bytes),
        cmocka_unit_test(test_transcode_malformed),
        cmocka_unit_test(test_pub_round_trip),
        cmocka_unit_test(test_doc_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
