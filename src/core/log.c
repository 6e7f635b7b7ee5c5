/* log.c - structured, leveled logging (see log.h). Each line is built in a
 * stack buffer by a small bounded appender (struct lb) that refuses what does
 * not fit, so a long value is cut at an escape boundary and the line stays
 * well-formed; the line goes out with one write(2), so lines from workers
 * never interleave. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = HR_LOG_INFO;
static int log_format = HR_LOG_TEXT;
static _Thread_local int log_worker = -1;

void hr_log_set_level(int level) { log_level = level; }
int hr_log_get_level(void) { return log_level; }
void hr_log_set_format(int format) { log_format = format; }
void hr_log_set_worker(int id) { log_worker = id; }

int hr_log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

int hr_log_format_parse(const char *s)
{
    if (strcmp(s, "text") == 0) return HR_LOG_TEXT;
    if (strcmp(s, "json") == 0) return HR_LOG_JSON;
    return -1;
}

/* A bounded appender: cap is what may be used, the rest stays reserved. */
typedef struct lb {
    char *p;
    size_t len, cap;
} lb;

static bool put(lb *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

static bool puts_(lb *b, const char *s) { return put(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* The inside of a JSON string; stops before the first unit that does not fit. */
static void json_esc(lb *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        char tmp[8];
        const char *out = tmp;
        size_t olen, step = 1;
        unsigned c = u[i];
        if (c == '"' || c == '\\') tmp[0] = '\\', tmp[1] = (char)c, olen = 2;
        else if (c == '\n') out = "\\n", olen = 2;
        else if (c == '\r') out = "\\r", olen = 2;
        else if (c == '\t') out = "\\t", olen = 2;
        else if (c < 0x20 || c == 0x7f) olen = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        else if (c < 0x80) tmp[0] = (char)c, olen = 1;
        else if ((step = utf8_seq(u + i, n - i)) > 0) out = s + i, olen = step;
        else out = "\\ufffd", olen = 6, step = 1;
        if (!put(b, out, olen)) return;
        i += step;
    }
}

static bool text_needs_quotes(const unsigned char *u, size_t n)
{
    if (n == 0) return true;
    for (size_t i = 0; i < n; i++)
        if (u[i] <= 0x20 || u[i] >= 0x7f || u[i] == '"' || u[i] == '=' || u[i] == '\\') return true;
    return false;
}

/* A text value: bare when it is plain printable ASCII without ' ', '"', '='
 * or '\', else quoted with \" \\ \n \r \t and \xHH for every other control
 * or non-ASCII byte. A cut quoted value still gets its closing quote. */
static void text_esc(lb *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (!text_needs_quotes(u, n)) {
        size_t room = b->cap > b->len ? b->cap - b->len : 0;
        put(b, s, n < room ? n : room);
        return;
    }
    if (b->len + 2 > b->cap) return;
    put(b, "\"", 1);
    b->cap--; /* room for the closing quote */
    for (size_t i = 0; i < n; i++) {
        char tmp[8];
        size_t olen;
        unsigned c = u[i];
        if (c == '"' || c == '\\') tmp[0] = '\\', tmp[1] = (char)c, olen = 2;
        else if (c == '\n') memcpy(tmp, "\\n", 2), olen = 2;
        else if (c == '\r') memcpy(tmp, "\\r", 2), olen = 2;
        else if (c == '\t') memcpy(tmp, "\\t", 2), olen = 2;
        else if (c < 0x20 || c >= 0x7f) olen = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        else tmp[0] = (char)c, olen = 1;
        if (!put(b, tmp, olen)) break;
    }
    b->cap++;
    put(b, "\"", 1);
}

static size_t escape_to(void (*esc)(lb *, const char *, size_t), char *out, size_t cap, const char *s, size_t n)
{
    if (cap == 0) return 0;
    lb b = {out, 0, cap - 1};
    esc(&b, s, n);
    out[b.len] = '\0';
    return b.len;
}

size_t hr_log_json_escape(char *out, size_t cap, const char *s, size_t n) { return escape_to(json_esc, out, cap, s, n); }
size_t hr_log_text_escape(char *out, size_t cap, const char *s, size_t n) { return escape_to(text_esc, out, cap, s, n); }

/* One field's value; false when a number did not fit. */
static bool put_value(lb *b, const hr_log_field *f, bool json)
{
    char num[32];
    switch (f->type) {
    case HR_LOGT_INT: snprintf(num, sizeof(num), "%lld", f->v.i); return puts_(b, num);
    case HR_LOGT_UINT: snprintf(num, sizeof(num), "%llu", f->v.u); return puts_(b, num);
    default: break;
    }
    if (!f->v.s) return puts_(b, json ? "null" : "-");
    size_t n = f->type == HR_LOGT_MEM ? f->n : strlen(f->v.s);
    if (!json) {
        text_esc(b, f->v.s, n);
        return true;
    }
    if (b->len + 2 > b->cap) return false;
    put(b, "\"", 1);
    b->cap--;
    json_esc(b, f->v.s, n);
    b->cap++;
    return put(b, "\"", 1);
}

static void put_head(lb *b, int level, const char *event, bool json)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    struct tm tm;
    char t[96], w[24] = "";
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (json) {
        if (log_worker >= 0) snprintf(w, sizeof(w), ",\"worker\":%d", log_worker);
        puts_(b, "{\"time\":\"");
        puts_(b, t);
        puts_(b, "\",\"level\":\"");
        puts_(b, tags[level]);
        puts_(b, "\"");
        puts_(b, w);
        puts_(b, ",\"event\":\"");
        json_esc(b, event, strlen(event));
        puts_(b, "\"");
    } else {
        if (log_worker >= 0) snprintf(w, sizeof(w), " worker=%d", log_worker);
        puts_(b, t);
        puts_(b, " ");
        puts_(b, tags[level]);
        puts_(b, " ");
        text_esc(b, event, strlen(event));
        puts_(b, w);
    }
}

void hr_log_fields(int level, const char *event, const hr_log_field *f, size_t n)
{
    if (level < log_level || level >= HR_LOG_OFF || level < 0) return;
    bool json = log_format == HR_LOG_JSON;
    char line[HR_LOG_LINE_MAX];
    lb b = {line, 0, sizeof(line) - 2}; /* room for "}\n" */
    put_head(&b, level, event, json);
    for (size_t i = 0; i < n; i++) {
        size_t mark = b.len;
        bool ok = put(&b, json ? ",\"" : " ", json ? 2 : 1) && puts_(&b, f[i].key) &&
                  put(&b, json ? "\":" : "=", json ? 2 : 1) && put_value(&b, &f[i], json);
        if (!ok) {
            b.len = mark; /* a field that does not fit is left out, with the rest */
            break;
        }
    }
    b.cap += 2;
    if (json) put(&b, "}", 1);
    put(&b, "\n", 1);
    for (size_t off = 0; off < b.len;) {
        ssize_t w = write(STDERR_FILENO, line + off, b.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
}

void hr_log_msg(int level, const char *event, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hr_log_field f = HR_LOG_S("msg", msg);
    hr_log_fields(level, event, &f, 1);
}
