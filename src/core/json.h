/* json.h - JSON output: string escaping for hand-written JSON, a compact
 * serializer of jansson values that keeps numbers as users wrote them
 * (shortest round-trip doubles: 0.1 stays "0.1", where jansson's json_dumps
 * writes "0.10000000000000001"), and a scan that tells when a client's text
 * already is that serializer's output, so it is relayed as sent. */
#ifndef HERALD_CORE_JSON_H
#define HERALD_CORE_JSON_H

#include "core/buf.h"

#include <stdbool.h>

/* Append a JSON string literal (with quotes) for s[0..n) to out, escaping as
 * RFC 8259 requires. Invalid UTF-8 bytes are replaced by U+FFFD. */
void hr_json_append_string(hr_buf *out, const char *s, size_t n);

struct json_t;
/* Append the compact JSON text of v (any JSON value) to out. Object members
 * keep their order; strings are escaped with hr_json_append_string. */
void hr_json_dump(const struct json_t *v, hr_buf *out);
/* The same as a malloc'd NUL-terminated string (free with free()). */
char *hr_json_dumps(const struct json_t *v, size_t *len);

/* True when s[0..n) is one JSON value already in the form hr_json_dump
 * writes, so that parsing it (json_loadb, JSON_DECODE_ANY) and dumping it
 * gives back the same bytes: no whitespace outside strings; strings of
 * printable ASCII with only the escapes \" \\ \b \f \n \r \t; integers
 * that fit in 64 bits (no "-0"); no reals; no duplicate key in an object
 * (at most HR_JSON_CANON_MAX_KEYS keys each, HR_JSON_CANON_MAX_DEPTH deep).
 * False says only "not known to be": the caller parses and dumps as before.
 * Lets a front end that relays client JSON skip the parse and the dump. */
#define HR_JSON_CANON_MAX_KEYS 16
#define HR_JSON_CANON_MAX_DEPTH 16
bool hr_json_is_canonical(const char *s, size_t n);

/* hr_json_is_canonical for a JSON object s[0..n) that also finds the value of
 * `key` in the objects that are its members' values ({"a":{"key":V}}): when
 * exactly one such member exists, *vb, *vn is V's span in s (which, s being
 * canonical, is V's compact dump byte for byte); else *vb = NULL. Lets the
 * native protocol relay {"id":1,"publish":{...,"data":V}}'s V as sent. */
bool hr_json_canonical_inner(const char *s, size_t n, const char *key, const char **vb, size_t *vn);

/* A member sought by hr_json_canonical_members: key (in), the span of its
 * value in the text (value NULL when absent) and how many times it was seen
 * (out). */
typedef struct hr_json_member {
    const char *key;
    const char *value;
    size_t len;
    int found;
    bool spaced;        /* hr_json_compact_members: the span holds whitespace to remove */
} hr_json_member;

/* hr_json_is_canonical for a JSON object s[0..n) that also gives the spans
 * of its own members named m[i].key (an object of canonical form has no
 * duplicate key: each is found at most once). Lets the server API take
 * {"channel":"c","data":V}'s members as sent, with no parse and no dump.
 * When false, every m[i].value is NULL. */
bool hr_json_canonical_members(const char *s, size_t n, hr_json_member *m, size_t nm);

/* hr_json_canonical_members for a text that may also have JSON whitespace
 * (space, tab, CR, LF) between its tokens, as Python's json.dumps writes
 * ({"channel": "c", "data": {"a": 1}}): true when the text with that
 * whitespace removed is canonical. A span with m[i].spaced holds such
 * whitespace: hr_json_compact gives its dump. */
bool hr_json_compact_members(const char *s, size_t n, hr_json_member *m, size_t nm);
/* s[0..n) (a span found by hr_json_compact_members) without the whitespace
 * between its tokens, written at out (at most n bytes); returns its length. */
size_t hr_json_compact(const char *s, size_t n, char *out);

#endif
