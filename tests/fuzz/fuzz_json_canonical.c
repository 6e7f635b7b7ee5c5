/* fuzz_json_canonical.c - libFuzzer target for hr_json_is_canonical
 * (core/json.c), the check that lets raw mode publish a client's message
 * without parsing it. The input, copied into an exact-size buffer, is
 * checked; when the check says canonical, jansson must parse it (as raw mode
 * does: JSON_DECODE_ANY | JSON_ALLOW_NUL) and hr_json_dumps must give back
 * the input byte for byte, so that a subscriber gets the same bytes on both
 * paths. hr_json_canonical_inner must agree with it on objects, and the span
 * it gives for "data" one level down must be that member's dump (what the
 * native protocol relays instead of dumping). abort() on any disagreement.
 * (A refusal needs no check: the caller then parses and dumps as before.) */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    size_t n = 0;
    char *out = hr_json_dumps(found, &n);
    if (n != vn || memcmp(out, vb, vn) != 0) abort();
    free(out);
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
        json_decref(v);
    } else {
        const char *vb;
        size_t vn;
        if (hr_json_canonical_inner(in, size, "data", &vb, &vn) || vb) abort();
    }
    free(in);
    return 0;
}
