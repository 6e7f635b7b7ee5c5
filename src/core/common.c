/* common.c - error strings and the abort-on-OOM allocator. */
#include "core/common.h"

#include <stdarg.h>
#include <stdio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hr_strerror(int err)
{
    switch (err) {
    case HR_OK: return "ok";
    case HR_ERR_NOMEM: return "out of memory";
    case HR_ERR_AGAIN: return "incomplete";
    case HR_ERR_PROTO: return "protocol error";
    case HR_ERR_TOO_BIG: return "limit exceeded";
    case HR_ERR_INVALID: return "invalid argument";
    case HR_ERR_IO: return "i/o error";
    case HR_ERR_CLOSED: return "closed";
    case HR_ERR_UTF8: return "invalid utf-8";
    case HR_ERR_NOTFOUND: return "not found";
    case HR_ERR_STORAGE: return "storage unavailable";
    default: return "unknown error";
    }
}

static void oom(size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes\n", n);
    abort();
}

void *hr_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (HR_UNLIKELY(!p)) oom(n);
    return p;
}

void *hr_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (HR_UNLIKELY(!p)) oom(count * n);
    return p;
}

void *hr_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (HR_UNLIKELY(!q)) oom(n);
    return q;
}

char *hr_strndup(const char *s, size_t n)
{
    char *p = hr_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *hr_strdup(const char *s) { return hr_strndup(s, strlen(s)); }

void hr_free(void *p) { free(p); }

void hr_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool hr_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) return false;
    const uint8_t *x = a, *y = b;
    unsigned diff = 0;
    for (size_t i = 0; i < alen; i++) diff |= (unsigned)(x[i] ^ y[i]);
    return diff == 0;
}
