/* buf.c - growable byte buffer (see buf.h). */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

uint8_t *hr_buf_reserve(hr_buf *b, size_t extra)
{
    if (b->cap - b->len < extra) {
        size_t want = b->len + extra;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < want) cap = cap < (SIZE_MAX / 2) ? cap * 2 : want;
        b->data = hr_realloc(b->data, cap);
        b->cap = cap;
    }
    return b->data ? b->data + b->len : NULL; /* nothing reserved in an empty buffer: NULL + 0 is undefined */
}

void hr_buf_append(hr_buf *b, const void *p, size_t n)
{
    if (!n) return;
    memcpy(hr_buf_reserve(b, n), p, n);
    b->len += n;
}

void hr_buf_append_str(hr_buf *b, const char *s) { hr_buf_append(b, s, strlen(s)); }

void hr_buf_printf(hr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    char *dst = (char *)hr_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void hr_buf_consume(hr_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void hr_buf_free(hr_buf *b)
{
    hr_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *hr_buf_steal(hr_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
