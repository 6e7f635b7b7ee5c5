/* hmac.h - HMAC-SHA256 as lowercase hex (OpenSSL's HMAC), the form every
 * signature Herald writes or checks in hex takes: Pusher's auth and API
 * signatures (ops/pusher_app.c) and the webhook signatures of both formats
 * (backend/webhook.c). */
#ifndef HERALD_CORE_HMAC_H
#define HERALD_CORE_HMAC_H

#include <stddef.h>

/* hex(HMAC-SHA256(key, msg)) into out: 64 hex digits and a NUL. */
void hr_hmac_sha256_hex(const char *key, const void *msg, size_t len, char out[65]);

#endif
