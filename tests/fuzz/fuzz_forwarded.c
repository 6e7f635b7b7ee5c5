/* fuzz_forwarded.c - libFuzzer target for codec/forwarded.c: the input is
 * split at its first NUL into an X-Forwarded-For value and a Forwarded value;
 * both are walked (whole, and the XFF one also as two header lines split
 * at every comma, which must give the same answer as the whole line) with a
 * fixed set of trusted ranges. Checks that an answer is a parseable address
 * and never crashes or reads outside the value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/forwarded.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static hr_cidr_set trusted;

static int answer(const hr_fwd *f, hr_ipaddr *a)
{
    int rc = hr_fwd_result(f, a);
    check(rc == HR_FWD_NONE || rc == HR_FWD_ADDR || rc == HR_FWD_UNKNOWN);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!trusted.n) {
        static char *list[] = {"10.0.0.0/8", "127.0.0.1", "2001:db8::/32"};
        check(hr_cidr_set_parse(&trusted, list, 3, NULL) == 0);
    }
    /* copies of exactly the value bytes, so ASan sees any overread */
    const uint8_t *nul = memchr(data, 0, size);
    size_t xl = nul ? (size_t)(nul - data) : size;
    char *xff = malloc(xl ? xl : 1), *fwd = NULL;
    memcpy(xff, data, xl);
    size_t fl = nul ? size - xl - 1 : 0;
    if (nul) {
        fwd = malloc(fl ? fl : 1);
        memcpy(fwd, nul + 1, fl);
    }
    hr_fwd f;
    hr_ipaddr a, b;
    hr_fwd_init(&f, &trusted);
    hr_fwd_feed_xff(&f, xff, xl);
    int whole = answer(&f, &a);
    if (whole == HR_FWD_ADDR) {
        char t[HR_IPADDR_STRLEN];
        check(hr_ipaddr_format(&a, t, sizeof(t))[0] != '?');
    }
    for (size_t i = 0; i < xl; i++) {
        if (xff[i] != ',') continue;
        hr_fwd g;
        hr_fwd_init(&g, &trusted);
        hr_fwd_feed_xff(&g, xff, i);
        hr_fwd_feed_xff(&g, xff + i + 1, xl - i - 1);
        check(answer(&g, &b) == whole);
        if (whole == HR_FWD_ADDR) check(memcmp(&a, &b, sizeof(a)) == 0);
        break;
    }
    if (fwd) {
        hr_fwd_init(&f, &trusted);
        hr_fwd_feed_forwarded(&f, fwd, fl);
        answer(&f, &a);
    }
    free(xff);
    free(fwd);
    return 0;
}
