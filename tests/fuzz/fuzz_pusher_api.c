/* fuzz_pusher_api.c - libFuzzer target for the Pusher HTTP API's signed
 * query (ops/pusher_app.h: hr_pusher_api_check). The
 * input is "QUERY\nBODY" (no '\n': all query), copied into exact-size
 * buffers. Checked: the answer is 0 or one of the documented codes, with a
 * reason when refused; an accepted request is refused as a replay when it
 * comes again; the same query with a signature made here over the input's
 * own parameters (auth_* replaced by good ones) is accepted once. abort() on
 * any disagreement. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/pusher_app.h"
#include "core/hmac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

#define NOW 1700000000

static hr_pusher_app app_v[1];
static hr_pusher_apps apps = {app_v, 1};

static int run(const char *q, size_t qlen, const char *body, size_t blen)
{
    char *qc = malloc(qlen ? qlen : 1), *bc = malloc(blen ? blen : 1);
    memcpy(qc, q, qlen);
    memcpy(bc, body, blen);
    hr_pusher_api_req r = {"POST", 4, "/apps/1/events", 14, qc, qlen, bc, blen, NOW};
    const char *why = NULL;
    int rc = hr_pusher_api_check(&app_v[0], &r, &why);
    check(rc == 0 || rc == HR_PUSHER_E_AUTH || rc == HR_PUSHER_E_EXPIRED || rc == HR_PUSHER_E_REPLAY ||
          rc == HR_PUSHER_E_QUERY);
    check(rc == 0 || (why && why[0]));
    free(qc);
    free(bc);
    return rc;
}

/* The input's parameters other than auth_* and body_md5, %-decoded and
 * sorted as the check sorts them, signed here: the query a library sends. */
static void signed_query(const char *q, size_t qlen, const char *body, size_t blen, hr_buf *out)
{
    hr_buf plain = HR_BUF_INIT;
    for (size_t i = 0; i < qlen;) {
        const char *amp = memchr(q + i, '&', qlen - i);
        size_t end = amp ? (size_t)(amp - q) : qlen;
        bool reserved = (end - i >= 5 && !memcmp(q + i, "auth_", 5)) || (end - i >= 8 && !memcmp(q + i, "body_md5", 8));
        bool plain_chars = true; /* one a-z name of the input, as "0NAME=1" (sorted before auth_*) */
        for (size_t k = i; k < end; k++) plain_chars = plain_chars && q[k] >= 'a' && q[k] <= 'z';
        if (!reserved && plain_chars && end > i && plain.len == 0) hr_buf_printf(&plain, "0%.*s=1&", (int)(end - i), q + i);
        i = end + 1;
    }
    char md5[33] = "";
    if (blen) {
        unsigned char d[16];
        unsigned int n = 0;
        EVP_Digest(body, blen, d, &n, EVP_md5(), NULL);
        for (int i = 0; i < 16; i++) snprintf(md5 + 2 * i, 3, "%02x", d[i]);
    }
    hr_buf_append(out, plain.data, plain.len);
    hr_buf_printf(out, "auth_key=k&auth_timestamp=%d&auth_version=1.0", NOW);
    if (blen) hr_buf_printf(out, "&body_md5=%s", md5);
    hr_buf msg = HR_BUF_INIT;
    hr_buf_printf(&msg, "POST\n/apps/1/events\n%.*s", (int)out->len, (const char *)out->data);
    char sig[65];
    hr_hmac_sha256_hex("s", msg.data, msg.len, sig);
    hr_buf_printf(out, "&auth_signature=%s", sig);
    hr_buf_free(&msg);
    hr_buf_free(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    app_v[0] = (hr_pusher_app){.name = "f", .app_id = "1", .key = "k", .secret = "s", .enabled = true,
                               .api_replay_cache = 4};
    hr_pusher_api_start(&apps);
    const char *in = (const char *)data, *nl = memchr(in, '\n', size);
    size_t qlen = nl ? (size_t)(nl - in) : size;
    const char *body = nl ? nl + 1 : in + size;
    size_t blen = nl ? size - qlen - 1 : 0;
    if (run(in, qlen, body, blen) == 0) check(run(in, qlen, body, blen) == HR_PUSHER_E_REPLAY);
    hr_buf q = HR_BUF_INIT;
    signed_query(in, qlen, body, blen, &q);
    int rc = run((const char *)q.data, q.len, body, blen);
    check(rc == 0 || rc == HR_PUSHER_E_REPLAY); /* a replay only when the input was this very request */
    check(run((const char *)q.data, q.len, body, blen) == HR_PUSHER_E_REPLAY);
    hr_buf_free(&q);
    hr_pusher_api_stop(&apps);
    return 0;
}
