/* random.c - random bytes and hex ids (see random.h).
 *
 * One loop over getrandom(2) (it may return fewer bytes than asked, or be
 * interrupted by a signal before the pool is ready); any other failure is
 * fatal, with one log line saying why. */
#include "core/hex.h"
#include "core/random.h"
#include "core/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static hr_random_source source = getrandom;

void hr_random_set_source(hr_random_source src) { source = src ? src : getrandom; }

void hr_random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = source(p + got, n - got, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            hr_logf(HR_LOG_ERROR, "getrandom_failed", "getrandom failed (%s): refusing to make guessable ids, aborting",
                     k < 0 ? strerror(errno) : "no bytes");
            abort();
        }
        got += (size_t)k;
    }
}

void hr_random_hex(char *out, size_t nbytes)
{
    uint8_t r[64];
    size_t o = 0;
    out[0] = '\0';
    while (nbytes) {
        size_t k = nbytes < sizeof(r) ? nbytes : sizeof(r);
        hr_random_bytes(r, k);
        hr_hex_encode(r, k, out + o); /* its NUL is overwritten by the next chunk's */
        o += 2 * k;
        nbytes -= k;
    }
}
