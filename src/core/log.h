/* log.h - structured, leveled logging to stderr, safe from any thread.
 *
 * Every line is one event: a time (RFC 3339 UTC, milliseconds), a level, the
 * worker thread that wrote it (absent on the main thread), a short stable
 * snake_case event name and the event's fields. Two formats:
 *
 *   text: 2026-12-04T13:00:00.123Z info conn_refused worker=1 remote=1.2.3.4 reason=origin
 *   json: {"time":"2026-12-04T13:00:00.123Z","level":"info","worker":1,"event":"conn_refused",...}
 *
 * A call site names its fields with typed constructors, so a wrong type is a
 * compile error and a disabled level costs one comparison:
 *
 *   hr_logev(HR_LOG_INFO, "redis_connected", HR_LOG_S("addr", c->cfg.addr));
 *
 * Values are escaped, never trusted: JSON strings per RFC 8259 (control
 * characters as \u00XX, invalid UTF-8 replaced by U+FFFD), text values quoted
 * and escaped when they hold a space, a quote, '=', '\', a control character or
 * a byte >= 0x80. A line is at most HR_LOG_LINE_MAX bytes (longer values are
 * cut, the line stays well-formed) and is written with one write(2), so lines
 * from different threads never interleave. */
#ifndef HERALD_CORE_LOG_H
#define HERALD_CORE_LOG_H

#include <stddef.h>

enum hr_log_level { HR_LOG_DEBUG = 0, HR_LOG_INFO, HR_LOG_WARN, HR_LOG_ERROR, HR_LOG_OFF };
enum hr_log_format { HR_LOG_TEXT = 0, HR_LOG_JSON };

#define HR_LOG_LINE_MAX 2048

void hr_log_set_level(int level);
int hr_log_get_level(void);
/* Parse "debug" / "info" / "warn" / "error" / "off"; -1 if unknown. */
int hr_log_level_parse(const char *s);
#define hr_log_level_valid(s) hr_log_level_parse(s)
void hr_log_set_format(int format);
/* Parse "text" / "json"; -1 if unknown. */
int hr_log_format_parse(const char *s);
/* The calling thread's worker id in its lines (a worker thread sets it when
 * it starts); -1 (the default) leaves the field out. */
void hr_log_set_worker(int id);

enum hr_log_type { HR_LOGT_STR, HR_LOGT_MEM, HR_LOGT_INT, HR_LOGT_UINT };

typedef struct hr_log_field {
    const char *key; /* a literal snake_case name, never user input */
    int type;        /* enum hr_log_type */
    union {
        const char *s; /* STR (NULL is written as null / -) and MEM */
        long long i;
        unsigned long long u;
    } v;
    size_t n; /* MEM: length of v.s */
} hr_log_field;

#define HR_LOG_S(k, str) ((hr_log_field){.key = (k), .type = HR_LOGT_STR, .v.s = (str)})
#define HR_LOG_M(k, p, len) ((hr_log_field){.key = (k), .type = HR_LOGT_MEM, .v.s = (const char *)(p), .n = (len)})
#define HR_LOG_I(k, num) ((hr_log_field){.key = (k), .type = HR_LOGT_INT, .v.i = (long long)(num)})
#define HR_LOG_U(k, num) ((hr_log_field){.key = (k), .type = HR_LOGT_UINT, .v.u = (unsigned long long)(num)})

/* Write one event line with n fields (level already checked or not). */
void hr_log_fields(int level, const char *event, const hr_log_field *f, size_t n);

#define hr_log_on(level) ((level) >= hr_log_get_level())
/* hr_logev(level, "event", HR_LOG_S(...), ...): at least one field. */
#define hr_logev(level, event, ...)                                                                      \
    do {                                                                                                 \
        if (hr_log_on(level)) {                                                                          \
            const hr_log_field hr_lf_[] = {__VA_ARGS__};                                                 \
            hr_log_fields((level), (event), hr_lf_, sizeof(hr_lf_) / sizeof(hr_lf_[0]));                 \
        }                                                                                                \
    } while (0)
#define hr_debugev(...) hr_logev(HR_LOG_DEBUG, __VA_ARGS__)
#define hr_infoev(...) hr_logev(HR_LOG_INFO, __VA_ARGS__)
#define hr_warnev(...) hr_logev(HR_LOG_WARN, __VA_ARGS__)
#define hr_errorev(...) hr_logev(HR_LOG_ERROR, __VA_ARGS__)

/* An event whose one field is prose, msg (printf-style, escaped like any
 * value): for messages meant for a person, not for a query. */
void hr_log_msg(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define hr_logf(level, event, ...)                                                                       \
    do {                                                                                                 \
        if (hr_log_on(level)) hr_log_msg((level), (event), __VA_ARGS__);                                 \
    } while (0)

/* The escapers behind both formats (exposed for the unit tests): escape n
 * bytes of s into out (capacity cap, always NUL-terminated when cap > 0) and
 * return the bytes written, never cutting an escape sequence in two. json:
 * the inside of a JSON string. text: the value as written in a text line
 * (bare when it needs no quoting, else quoted). */
size_t hr_log_json_escape(char *out, size_t cap, const char *s, size_t n);
size_t hr_log_text_escape(char *out, size_t cap, const char *s, size_t n);

#endif
