/* fuzz_proxy_answer.c - libFuzzer target for the backend-answer parser
 * (backend/proxy_codec.h). The first byte picks the hook; the rest is the
 * answer. A parsed answer must be internally consistent (a result's info and
 * data are JSON text, channels non-empty and within the bound, a refusal's
 * code in range); a rejected one must hold nothing. abort() otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/proxy_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    hr_proxy_hook hook = (hr_proxy_hook)(data[0] % 5);
    hr_proxy_limits lim;
    hr_proxy_limits_default(&lim);
    lim.max_channels = 4;
    lim.max_string = 64;
    hr_proxy_answer a;
    char err[128];
    int rc = hr_proxy_parse(hook, (const char *)data + 1, size - 1, &lim, &a, err, sizeof(err));
    if (rc != 0) {
        check(rc <= HR_PROXY_E_JSON && rc >= HR_PROXY_E_REQUEST);
        check(!a.user && !a.info && !a.data && !a.channels && !a.message);
        return 0;
    }
    switch (a.kind) {
    case HR_PROXY_RESULT:
        check(hook != HR_HOOK_CONNECT || a.user != NULL);
        check(a.nchannels <= lim.max_channels);
        for (size_t i = 0; i < a.nchannels; i++) check(a.channels[i][0] && strlen(a.channels[i]) <= lim.max_string);
        check(a.expire_at >= 0);
        break;
    case HR_PROXY_ERROR:
        check(a.code >= 400 && a.code <= 1999);
        break;
    case HR_PROXY_DISCONNECT:
        check(a.code >= 4000 && a.code <= 4999);
        check(!a.message || strlen(a.message) <= HR_PROXY_REASON_MAX);
        break;
    }
    hr_proxy_answer_free(&a);
    return 0;
}
