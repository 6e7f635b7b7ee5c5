/* native_msgpack.c - owns the MessagePack encoding of the native protocol
 * (native.h, docs/protocol.md "MessagePack encoding"): parsing binary
 * command frames and transcoding the JSON replies and pushes.
 *
 * Why jansson: a command means the same whatever the encoding, so each
 * MessagePack map is converted into the jansson tree the JSON parser would
 * have built and handed to the JSON parser's per-command logic
 * (native_internal.h); publish data comes out as the same compact JSON text,
 * which is how the server stores and fans out publications, so JSON and
 * MessagePack clients share channels. The other way, replies and pushes are
 * encoded once as JSON (once per publication per worker) and the JSON text
 * is loaded with jansson and packed.
 *
 * Why msgpack-c only for packing: msgpack_packer writes the smallest
 * encoding of each value straight into our hr_buf. Its unpacker is not used
 * on client input: msgpack_unpack_next allocates count * sizeof(msgpack_object)
 * for a container as soon as it reads the container's declared size, before
 * any element is there (the 5-byte frame dd ff ff ff ff asks for 96 GiB),
 * its nesting limit (MSGPACK_EMBED_STACK_SIZE, 32) is compiled into the
 * library and reported as an out-of-memory error, and its msgpack_object
 * tree would be one more copy on the way to jansson. The reader below
 * decodes straight into jansson, allocating only for values actually
 * present, with our own depth and value-count limits. */
#include "protocol/native.h"
#include "protocol/native_internal.h"

#include <jansson.h>
#include <msgpack.h>
#include <string.h>

/* ---- parser -------------------------------------------------------------------- */

typedef struct mp_reader {
    const uint8_t *p, *end;
    size_t values; /* values this frame may still hold */
} mp_reader;

static size_t left(const mp_reader *r) { return (size_t)(r->end - r->p); }

/* A big-endian unsigned integer of n (1, 2, 4 or 8) bytes. */
static bool read_be(mp_reader *r, size_t n, uint64_t *v)
{
    if (left(r) < n) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x = x << 8 | r->p[i];
    r->p += n;
    *v = x;
    return true;
}

static bool is_str(uint8_t b) { return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb); }
static bool is_map(uint8_t b) { return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf; }

/* The body of a str whose type byte b was just read: its bytes in the frame. */
static bool read_str(mp_reader *r, uint8_t b, const char **s, size_t *n)
{
    uint64_t len;
    if (b >= 0xa0 && b <= 0xbf) len = b & 0x1f;
    else if (!read_be(r, (size_t)1 << (b - 0xd9), &len)) return false; /* d9, da, db: 1, 2, 4 bytes */
    if (len > left(r)) return false;
    *s = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    return true;
}

static json_t *read_value(mp_reader *r, unsigned depth);

static json_t *read_array(mp_reader *r, uint64_t n, unsigned depth)
{
    if (depth >= HR_NATIVE_MSGPACK_MAX_DEPTH || n > left(r)) return NULL; /* each element takes a byte at least */
    json_t *a = json_array();
    if (!a) return NULL;
    for (uint64_t i = 0; i < n; i++) {
        json_t *v = read_value(r, depth + 1);
        if (!v || json_array_append_new(a, v)) { /* append_new consumes v even when it fails */
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *read_map(mp_reader *r, uint64_t n, unsigned depth)
{
    if (depth >= HR_NATIVE_MSGPACK_MAX_DEPTH || n > left(r) / 2) return NULL;
    json_t *o = json_object();
    if (!o) return NULL;
    for (uint64_t i = 0; i < n; i++) {
        const char *key;
        size_t klen;
        /* keys are str (counted as values); NUL in a key is refused like
         * jansson refuses "\u0000" in a JSON key */
        if (!r->values || !left(r) || !is_str(*r->p)) goto bad;
        r->values--;
        uint8_t b = *r->p++;
        if (!read_str(r, b, &key, &klen) || memchr(key, '\0', klen)) goto bad;
        json_t *v = read_value(r, depth + 1);
        /* setn_new checks the key is UTF-8 and consumes v even when it fails;
         * a repeated key replaces the value, as in jansson's JSON parser */
        if (!v || json_object_setn_new(o, key, klen, v)) goto bad;
    }
    return o;
bad:
    json_decref(o);
    return NULL;
}

/* One value and everything in it; NULL when malformed or past the limits.
 * depth: containers around it. */
static json_t *read_value(mp_reader *r, unsigned depth)
{
    if (!r->values || !left(r)) return NULL;
    r->values--;
    uint8_t b = *r->p++;
    uint64_t u;
    const char *s;
    size_t n;
    if (b <= 0x7f) return json_integer(b);
    if (b >= 0xe0) return json_integer((int8_t)b);
    if (b <= 0x8f) return read_map(r, b & 0x0f, depth);
    if (b <= 0x9f) return read_array(r, b & 0x0f, depth);
    if (b <= 0xbf) return read_str(r, b, &s, &n) ? json_stringn(s, n) : NULL; /* NULL unless UTF-8 */
    switch (b) {
    case 0xc0: return json_null();
    case 0xc2: return json_false();
    case 0xc3: return json_true();
    case 0xca: { /* float32, widened; json_real refuses NaN and infinities */
        if (!read_be(r, 4, &u)) return NULL;
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, sizeof(f));
        return json_real((double)f);
    }
    case 0xcb: {
        if (!read_be(r, 8, &u)) return NULL;
        double d;
        memcpy(&d, &u, sizeof(d));
        return json_real(d);
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8/16/32/64 */
        if (!read_be(r, (size_t)1 << (b - 0xcc), &u) || u > INT64_MAX) return NULL;
        return json_integer((json_int_t)u);
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: { /* int 8/16/32/64 */
        size_t w = (size_t)1 << (b - 0xd0);
        if (!read_be(r, w, &u)) return NULL;
        if (w < 8 && (u >> (8 * w - 1))) u |= ~(uint64_t)0 << (8 * w); /* sign-extend */
        int64_t i;
        memcpy(&i, &u, sizeof(i));
        return json_integer((json_int_t)i);
    }
    case 0xd9: case 0xda: case 0xdb:
        return read_str(r, b, &s, &n) ? json_stringn(s, n) : NULL;
    case 0xdc: case 0xdd:
        return read_be(r, b == 0xdc ? 2 : 4, &u) ? read_array(r, u, depth) : NULL;
    case 0xde: case 0xdf:
        return read_be(r, b == 0xde ? 2 : 4, &u) ? read_map(r, u, depth) : NULL;
    default:
        return NULL; /* c1 (never used), bin c4-c6, ext c7-c9 and d4-d8 */
    }
}

int hr_native_parse_msgpack(const uint8_t *frame, size_t len, const hr_native_limits *lim, hr_native_batch *batch)
{
    memset(batch, 0, sizeof(*batch));
    if (!len) return 0;
    mp_reader r = {frame, frame + len, HR_NATIVE_MSGPACK_MAX_VALUES};
    size_t count = 0;
    while (left(&r)) {
        /* max_commands 0: no limit */
        if (lim->max_commands && count == lim->max_commands) {
            hr_native_batch_free(batch);
            return HR_ERR_TOO_BIG;
        }
        json_t *root = is_map(*r.p) ? read_value(&r, 0) : NULL;
        if (!root) {
            hr_native_batch_free(batch);
            return HR_ERR_PROTO;
        }
        hr_native_batch_add(batch, root, lim);
        count++;
    }
    return 0;
}

/* ---- transcoder ---------------------------------------------------------------- */

static int write_buf(void *data, const char *buf, size_t len)
{
    hr_buf_append(data, buf, len);
    return 0;
}

/* Nesting is bounded by jansson's parser (2048 levels). */
static void pack_json(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *m;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_keylen_foreach((json_t *)v, key, klen, m)
        {
            msgpack_pack_str(pk, klen);
            msgpack_pack_str_body(pk, key, klen);
            pack_json(pk, m);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, e) pack_json(pk, e);
        break;
    }
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, (int64_t)json_integer_value(v)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    case JSON_NULL: msgpack_pack_nil(pk); break;
    }
}

int hr_native_json_to_msgpack(const char *json, size_t len, hr_buf *out)
{
    size_t start = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, write_buf);
    hr_buf_reserve(out, len); /* usually about the size of the JSON text */
    size_t pos = 0;
    while (pos < len) {
        const char *line = json + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += nl ? n + 1 : n;
        size_t i = 0;
        while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
        if (i == n) continue; /* blank line */
        json_error_t jerr;
        /* JSON_ALLOW_NUL: the native parser accepts "\u0000" in data */
        json_t *root = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
        if (!json_is_object(root)) {
            json_decref(root);
            out->len = start;
            return HR_ERR_PROTO;
        }
        pack_json(&pk, root);
        json_decref(root);
    }
    return 0;
}
