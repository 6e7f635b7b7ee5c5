/* fuzz_json_canonical.c - libFuzzer target for hr_json_is_canonical
 * (core/json.c), the check that lets raw mode publish a client's message
 * without parsing it. The input, copied into an exact-size buffer, is
 * checked; when the check says canonical, jansson must parse it (as raw mode
 * does: JSON_DECODE_ANY | JSON_ALLOW_NUL) and hr_json_dumps must give back
 * the input byte for byte, so that a subscriber gets the same bytes on both
 * paths. abort() on any disagreement. (A refusal needs no check: the caller
 * then parses and dumps as before.) */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        json_decref(v);
    }
    free(in);
    return 0;
}
