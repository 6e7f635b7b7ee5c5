/* fuzz_proxyproto.c - libFuzzer target for codec/proxyproto.c. Parses the
 * input whole and checks the result's invariants (length within the input
 * and the version's bound, a v2 length that agrees with hr_pp_v2_length,
 * local or a usable address), then checks that every prefix of an accepted
 * header is "incomplete" and that a prefix of the input never gives a
 * different complete answer (the parser must not depend on bytes past the
 * header). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hr_pp_header h;
    int rc = hr_pp_parse(data, size, &h);
    if (rc == HR_PP_INCOMPLETE) return 0;
    if (rc < 0) {
        check(rc >= HR_PP_E_LENGTH && rc <= HR_PP_E_SIGNATURE);
        check(hr_pp_error_text(rc)[0] != '\0');
        return 0;
    }
    size_t n = (size_t)rc;
    check(n <= size);
    check(h.version == 1 || h.version == 2);
    if (h.version == 1) {
        check(n <= HR_PP_V1_MAX && n >= 8 && data[n - 2] == '\r' && data[n - 1] == '\n');
        check(memcmp(data, "PROXY ", 6) == 0 && h.tlv_len == 0);
    } else {
        check(n >= 16 && n <= HR_PP_V2_MAX && hr_pp_v2_length(data, size) == n);
        check(h.tlv_len <= n - 16);
    }
    if (!h.local) {
        char t[HR_IPADDR_STRLEN];
        check(hr_ipaddr_format(&h.src, t, sizeof(t))[0] != '?');
        check(hr_ipaddr_format(&h.dst, t, sizeof(t))[0] != '?');
    }
    /* the same header alone, and every prefix of it */
    hr_pp_header h2;
    check(hr_pp_parse(data, n, &h2) == rc);
    check(h2.local == h.local && h2.version == h.version);
    if (!h.local) check(memcmp(&h2.src, &h.src, sizeof(h.src)) == 0 && h2.src_port == h.src_port);
    for (size_t i = 0; i < n; i += 1 + n / 64) check(hr_pp_parse(data, i, &h2) == HR_PP_INCOMPLETE);
    return 0;
}
