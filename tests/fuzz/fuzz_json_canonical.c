/* fuzz_json_canonical.c - libFuzzer target for hr_json_is_canonical
 * (core/json.c), the check that lets raw mode publish a client's message
 * without parsing it. The input, copied into an exact-size buffer, is
 * checked; when the check says canonical, jansson must parse it (as raw mode
 * does: JSON_DECODE_ANY | JSON_ALLOW_NUL) and hr_json_dumps must give back
 * the input byte for byte, so that a subscriber gets the same bytes on both
 * paths. hr_json_canonical_inner must agree with it on objects, and the span
 * it gives for "data" one level down must be that member's dump (what the
 * native protocol relays instead of dumping). For objects,
 * hr_json_canonical_members must agree too: jansson must parse the input as
 * the server API does (JSON_REJECT_DUPLICATES, objects only), and each of
 * "channel", "data" and "idempotency_key" must be found exactly when the
 * object has it, its span being its value's dump (what POST /api/publish
 * takes as sent). hr_json_compact_members (whitespace between tokens
 * allowed) is checked on every input: when it accepts, jansson must parse
 * the input as the API does, the whole input compacted (hr_json_compact)
 * must be the parsed value's dump, and each member found must compact to its
 * dump. abort() on any disagreement.
 * (A refusal needs no check: the caller then parses and dumps as before.) */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The span s[0..n) must be v's dump. */
static void check_dump(const json_t *v, const char *s, size_t n)
{
    size_t dn = 0;
    char *out = hr_json_dumps(v, &dn);
    if (dn != n || memcmp(out, s, n) != 0) abort();
    free(out);
}

/* v is in[0..size) parsed: the "data" members one level down, counted. */
static void check_inner(const char *in, size_t size, const json_t *v)
{
    const char *vb;
    size_t vn;
    bool ok = hr_json_canonical_inner(in, size, "data", &vb, &vn);
    if (ok != json_is_object(v)) abort();
    if (!ok) return;
    const json_t *found = NULL;
    size_t count = 0;
    const char *key;
    const json_t *m;
    json_object_foreach((json_t *)v, key, m)
    {
        const json_t *d = json_is_object(m) ? json_object_get(m, "data") : NULL;
        if (d) {
            found = d;
            count++;
        }
    }
    if (count != 1) {
        if (vb) abort();
        return;
    }
    if (!vb) abort();
    check_dump(found, vb, vn);
}

/* in[0..size) (canonical, parsed as v): its own members, as the API reads them. */
static void check_members(const char *in, size_t size, const json_t *v)
{
    hr_json_member m[] = {{.key = "channel"}, {.key = "data"}, {.key = "idempotency_key"}};
    bool ok = hr_json_canonical_members(in, size, m, 3);
    if (ok != json_is_object(v)) abort();
    if (!ok) return;
    json_error_t e;
    json_t *api = json_loadb(in, size, JSON_REJECT_DUPLICATES, &e);
    if (!api) abort();
    json_decref(api);
    for (size_t i = 0; i < 3; i++) {
        const json_t *want = json_object_get(v, m[i].key);
        if (!want != !m[i].value || (want && m[i].found != 1)) abort();
        if (want) check_dump(want, m[i].value, m[i].len);
    }
}

/* in[0..size) with whitespace between tokens: as the API reads a spaced body. */
static void check_compact(const char *in, size_t size)
{
    hr_json_member m[] = {{.key = "channel"}, {.key = "data"}, {.key = "idempotency_key"}};
    if (!hr_json_compact_members(in, size, m, 3)) {
        for (size_t i = 0; i < 3; i++)
            if (m[i].value) abort();
        return;
    }
    json_error_t e;
    json_t *v = json_loadb(in, size, JSON_REJECT_DUPLICATES, &e);
    if (!v || !json_is_object(v)) abort();
    char *buf = malloc(size);
    if (!buf) abort();
    check_dump(v, buf, hr_json_compact(in, size, buf));
    for (size_t i = 0; i < 3; i++) {
        const json_t *want = json_object_get(v, m[i].key);
        if (!want != !m[i].value || (want && m[i].found != 1)) abort();
        if (want && !m[i].spaced) check_dump(want, m[i].value, m[i].len); /* taken as it stands */
        if (want) check_dump(want, buf, hr_json_compact(m[i].value, m[i].len, buf));
    }
    free(buf);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    if (!in) return 0;
    memcpy(in, data, size);
    if (hr_json_is_canonical(in, size)) {
        json_error_t e;
        json_t *v = json_loadb(in, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (!v) abort();
        size_t n = 0;
        char *out = hr_json_dumps(v, &n);
        if (n != size || memcmp(out, in, size) != 0) abort();
        free(out);
        check_inner(in, size, v);
        check_members(in, size, v);
        json_decref(v);
    } else {
        const char *vb;
        size_t vn;
        if (hr_json_canonical_inner(in, size, "data", &vb, &vn) || vb) abort();
        hr_json_member m = {.key = "data"};
        if (hr_json_canonical_members(in, size, &m, 1) || m.value) abort();
    }
    check_compact(in, size);
    free(in);
    return 0;
}
