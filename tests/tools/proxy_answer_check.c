/* proxy_answer_check.c - checks a backend's hook answer with Herald's own
 * parser (a test tool).
 *
 *   proxy_answer_check HOOK BODY     HOOK: connect, refresh, subscribe, publish, rpc
 *
 * Parses BODY exactly as Herald does when a hook's backend answers
 * (hr_proxy_parse with the default bounds, src/backend/proxy_codec.c) and
 * prints what Herald would act on: "result", "error CODE" or "disconnect
 * CODE"; exit 0. A malformed answer prints the parser's reason and exits 1;
 * bad usage exits 2. tests/integration/test_backend_example.mjs runs every
 * answer of the example backend through it, so the example cannot drift from
 * the contract in docs/backend.md. */
#include <stdio.h>
#include <string.h>

#include "backend/proxy_codec.h"

static int hook_by_name(const char *name, hr_proxy_hook *hook)
{
    static const hr_proxy_hook all[] = {HR_HOOK_CONNECT, HR_HOOK_REFRESH, HR_HOOK_SUBSCRIBE, HR_HOOK_PUBLISH,
                                        HR_HOOK_RPC};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(hr_proxy_hook_name(all[i]), name) == 0) {
            *hook = all[i];
            return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    hr_proxy_hook hook;
    if (argc != 3 || hook_by_name(argv[1], &hook) != 0) {
        fprintf(stderr, "usage: proxy_answer_check connect|refresh|subscribe|publish|rpc BODY\n");
        return 2;
    }
    hr_proxy_limits lim;
    hr_proxy_limits_default(&lim);
    hr_proxy_answer a;
    char err[256] = "";
    if (hr_proxy_parse(hook, argv[2], strlen(argv[2]), &lim, &a, err, sizeof(err)) != 0) {
        printf("malformed: %s\n", err);
        return 1;
    }
    if (a.kind == HR_PROXY_RESULT) printf("result\n");
    else printf("%s %u\n", a.kind == HR_PROXY_ERROR ? "error" : "disconnect", (unsigned)a.code);
    hr_proxy_answer_free(&a);
    return 0;
}
