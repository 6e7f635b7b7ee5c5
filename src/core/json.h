/* json.h - JSON string escaping for hand-written JSON output. */
#ifndef HERALD_CORE_JSON_H
#define HERALD_CORE_JSON_H

#include "core/buf.h"

/* Append a JSON string literal (with quotes) for s[0..n) to out, escaping as
 * RFC 8259 requires. Invalid UTF-8 bytes are replaced by U+FFFD. */
void hr_json_append_string(hr_buf *out, const char *s, size_t n);

#endif
