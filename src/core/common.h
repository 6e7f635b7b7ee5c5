/* common.h - error codes, small macros and the abort-on-OOM allocator shared by
 * every layer. Errors are negative integers (libuv / nghttp2 style); 0 is
 * success, positive values are counts where a function documents so. */
#ifndef HERALD_CORE_COMMON_H
#define HERALD_CORE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum hr_err {
    HR_OK = 0,
    HR_ERR_NOMEM = -1,     /* allocation failed (only where we do not abort) */
    HR_ERR_AGAIN = -2,     /* need more input / would block */
    HR_ERR_PROTO = -3,     /* peer violated the protocol */
    HR_ERR_TOO_BIG = -4,   /* a configured limit was exceeded */
    HR_ERR_INVALID = -5,   /* bad argument or bad configuration */
    HR_ERR_IO = -6,        /* system call failed; errno has the detail */
    HR_ERR_CLOSED = -7,    /* peer closed */
    HR_ERR_UTF8 = -8,      /* invalid UTF-8 where text is required */
    HR_ERR_NOTFOUND = -9,
    HR_ERR_STORAGE = -10,  /* the durable log cannot take a write (disk full, I/O error): temporary */
};

const char *hr_strerror(int err);

/* Format a message into err[0..errlen) (nothing when err is NULL or errlen
 * 0): the "char *err, size_t errlen" out-parameter used across modules. */
void hr_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A short list of strings (a list option: allowed origins, subprotocols). */
#define HR_CONFIG_MAX_LIST 64
typedef struct hr_strlist {
    size_t n;
    char *v[HR_CONFIG_MAX_LIST];
} hr_strlist;

#define HR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define HR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define HR_MAX(a, b) ((a) > (b) ? (a) : (b))
#define HR_UNUSED(x) ((void)(x))
#define HR_CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#if defined(__GNUC__)
#define HR_LIKELY(x) __builtin_expect(!!(x), 1)
#define HR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define HR_LIKELY(x) (x)
#define HR_UNLIKELY(x) (x)
#endif

/* Allocation wrappers: abort with a message on out-of-memory (Redis style).
 * A server that cannot allocate a few bytes cannot do anything useful. */
void *hr_malloc(size_t n);
void *hr_calloc(size_t count, size_t n);
void *hr_realloc(void *p, size_t n);
char *hr_strndup(const char *s, size_t n);
char *hr_strdup(const char *s);
void hr_free(void *p);

/* a[0..alen) equals b[0..blen), in time independent of where they differ (secrets). */
bool hr_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
