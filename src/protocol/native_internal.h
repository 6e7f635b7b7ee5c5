/* native_internal.h - what the native protocol's two wire encodings share,
 * not part of the public API (native.h). Both parsers turn each command of a
 * frame into a jansson tree (native_json.c straight from the JSON text,
 * native_msgpack.c by converting each MessagePack map) and hand it to the
 * same per-command logic, so a command means the same whatever encoding the
 * client chose, and hr_native_batch_free frees the batches of both. */
#ifndef HERALD_PROTOCOL_NATIVE_INTERNAL_H
#define HERALD_PROTOCOL_NATIVE_INTERNAL_H

#include "protocol/native.h"

#include <jansson.h>

/* Fill c (zeroed by the caller) from one command object. For publish,
 * *dump receives the compact json_dumps text of "data" (c->data points into
 * it), to be freed with jansson's free function; it is left alone otherwise. */
void hr_native_parse_root(const json_t *root, const hr_native_limits *lim, hr_cmd *c, char **dump);

/* Make room in batch for `count` commands in all (a no-op when it already
 * has that many); new slots are zeroed. */
void hr_native_batch_reserve(hr_native_batch *batch, size_t count);

/* Append one command: the batch takes over the reference to root (an
 * object) and parses it into the next hr_cmd. Grows the batch (doubling)
 * when there is no room left. */
void hr_native_batch_add(hr_native_batch *batch, json_t *root, const hr_native_limits *lim);
/* The same, `data` (when not NULL) being the text of the command's
 * params.data in compact form, used instead of dumping it. */
void hr_native_batch_add_text(hr_native_batch *batch, json_t *root, const hr_native_limits *lim, const char *data,
                              size_t data_len);

#endif
