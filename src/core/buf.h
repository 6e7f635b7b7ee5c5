/* buf.h - a growable byte buffer. The owner frees it with hr_buf_free; an empty
 * buffer (data == NULL) holds no heap memory, which is how idle connections
 * stay small. */
#ifndef HERALD_CORE_BUF_H
#define HERALD_CORE_BUF_H

#include "core/common.h"

typedef struct hr_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} hr_buf;

#define HR_BUF_INIT {NULL, 0, 0}

/* Make room for at least `extra` more bytes; returns a pointer to the free tail
 * (NULL when extra is 0 and the buffer is empty). */
uint8_t *hr_buf_reserve(hr_buf *b, size_t extra);
void hr_buf_append(hr_buf *b, const void *p, size_t n);
void hr_buf_append_str(hr_buf *b, const char *s);
void hr_buf_printf(hr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (memmove of the rest). */
void hr_buf_consume(hr_buf *b, size_t n);
/* Release the memory and return to the empty state. */
void hr_buf_free(hr_buf *b);
/* Take ownership of the bytes; b becomes empty. */
uint8_t *hr_buf_steal(hr_buf *b, size_t *len);

#endif
