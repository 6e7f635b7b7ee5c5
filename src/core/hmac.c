/* hmac.c - see hmac.h. */
#include "core/hmac.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

void hr_hmac_sha256_hex(const char *key, const void *msg, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), msg, len, mac, &n);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}
