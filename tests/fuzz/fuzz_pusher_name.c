/* fuzz_pusher_name.c - libFuzzer target for the Pusher channel name mapping
 * (ops/pusher_app.c). Every input is a candidate Pusher name: when it is
 * accepted, the Herald channel it maps to must be a valid Herald channel
 * name (hub/channel_name.c: no ';', no empty segment), in the app's reserved
 * namespace, not a pattern, and map back to exactly the input; when it is
 * refused, it must hold a byte outside Pusher's charset (or be empty, or
 * too long). abort() on any disagreement. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/channel_name.h"
#include "ops/pusher_app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

static bool ref_pusher_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("_-=@,.;", c));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hr_pusher_app app = {.name = "f", .app_id = "42", .key = "k", .secret = "s", .enabled = true,
                                .max_channel_name_length = 200};
    static hr_pusher_apps apps = {&app, 1};
    char *name = malloc(size ? size : 1);
    if (size) memcpy(name, data, size);
    hr_buf h = HR_BUF_INIT;
    int rc = hr_pusher_to_herald(&app, name, size, &h);
    bool user = size >= 16 && !memcmp(name, HR_PUSHER_USER_PREFIX, 16);
    if (rc) {
        bool bad = !size || size > 200 || user;
        for (size_t i = 0; i < size && !bad; i++) bad = !ref_pusher_char((uint8_t)name[i]);
        check(bad);
        check(h.len == 0);
    } else {
        check(h.len > 11 && !memcmp(h.data, "$pusher-42:", 11));
        bool pat = true;
        check(hr_chan_validate_pattern((const char *)h.data, h.len, 65535, &pat) == 0 && !pat);
        check(hr_pusher_reserved((const char *)h.data, h.len));
        hr_buf back = HR_BUF_INIT;
        const hr_pusher_app *a = NULL;
        check(hr_pusher_from_herald(&apps, (const char *)h.data, h.len, &a, &back) == 0 && a == &app);
        check(back.len == size && !memcmp(back.data, name, size));
        hr_buf_free(&back);
    }
    hr_buf_free(&h);
    free(name);
    return 0;
}
