/* fuzz_logrec.c - libFuzzer target for the durable log's segment reader
 * (engine/logrec.c hr_logrec_scan, what recovery runs over the files in
 * engine.data_dir). Every record reported must lie inside the input, in
 * increasing positions, with its texts inside it, and must encode back to
 * exactly the bytes it was read from; damage runs must lie between
 * records; the torn tail must start after the last record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/logrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) abort();
}

typedef struct state {
    const uint8_t *p;
    size_t n, next; /* where the next record or damage may start */
} state;

static bool inside(const state *s, const char *q, size_t len)
{
    const uint8_t *u = (const uint8_t *)q;
    return len == 0 || (u >= s->p && u + len <= s->p + s->n);
}

static void on_rec(void *ud, const hr_logrec *r, size_t pos)
{
    state *s = ud;
    check(pos >= s->next && pos < s->n);
    size_t len = hr_logrec_size(r);
    check(pos + len <= s->n);
    check(inside(s, r->channel, r->channel_len) && inside(s, r->data, r->data_len) &&
          inside(s, r->idem, r->idem_len));
    check(!r->has_info ? r->info == NULL : inside(s, r->info, r->info_len));
    uint8_t *again = malloc(len);
    check(hr_logrec_encode(r, again) == len);
    check(memcmp(again, s->p + pos, len) == 0);
    free(again);
    s->next = pos + len;
}

static void on_damage(void *ud, size_t pos, size_t len)
{
    state *s = ud;
    check(pos == s->next && len > 0 && pos + len < s->n);
    s->next = pos + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    state s = {data, size, 0};
    size_t tail = hr_logrec_scan(data, size, on_rec, on_damage, &s);
    check(tail <= size && tail >= s.next);
    check(tail == size || tail == s.next);
    return 0;
}
