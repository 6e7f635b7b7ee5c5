/* test_logrec.c - unit tests for the durable log's record codec
 * (engine/logrec.c): every field round-trips, every prefix of a record is
 * "incomplete", every flipped byte is refused, and a segment scan reports a
 * torn tail, skips damage in the middle and resumes at the next record. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "engine/logrec.h"

static hr_logrec sample(uint64_t offset, const char *data)
{
    hr_logrec r = {.kind = HR_LOGREC_PUB, .has_info = true, .offset = offset, .time_ms = 1700000000123ull,
                   .history_size = 100, .history_ttl_ms = 300000, .idem_window_ms = 60000};
    memcpy(r.epoch, "0123456789abcdef", HR_EPOCH_LEN + 1);
    r.channel = "chat:room";
    r.channel_len = 9;
    r.data = data;
    r.data_len = (uint32_t)strlen(data);
    r.info = "{\"u\":1}";
    r.info_len = 7;
    r.idem = "key-1";
    r.idem_len = 5;
    return r;
}

static size_t enc(const hr_logrec *r, uint8_t *out) { return hr_logrec_encode(r, out); }

static void test_round_trip(void **state)
{
    (void)state;
    hr_logrec r = sample(42, "{\"text\":\"hello\"}"), d;
    uint8_t buf[512];
    size_t n = enc(&r, buf), used = 0;
    assert_int_equal(n, hr_logrec_size(&r));
    assert_int_equal(hr_logrec_decode(buf, n, &d, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(d.kind, HR_LOGREC_PUB);
    assert_true(d.has_info);
    assert_memory_equal(d.epoch, r.epoch, HR_EPOCH_LEN);
    assert_int_equal(d.offset, 42);
    assert_int_equal(d.time_ms, r.time_ms);
    assert_int_equal(d.history_size, 100);
    assert_int_equal(d.history_ttl_ms, 300000);
    assert_int_equal(d.idem_window_ms, 60000);
    assert_int_equal(d.channel_len, 9);
    assert_memory_equal(d.channel, "chat:room", 9);
    assert_int_equal(d.data_len, r.data_len);
    assert_memory_equal(d.data, r.data, r.data_len);
    assert_int_equal(d.info_len, 7);
    assert_memory_equal(d.info, r.info, 7);
    assert_int_equal(d.idem_len, 5);
    assert_memory_equal(d.idem, "key-1", 5);
}

static void test_no_info_no_key(void **state)
{
    (void)state;
    hr_logrec r = sample(1, "1"), d;
    r.has_info = false;
    r.info = NULL;
    r.info_len = 0;
    r.idem_len = 0;
    uint8_t buf[256];
    size_t n = enc(&r, buf), used;
    assert_int_equal(hr_logrec_decode(buf, n, &d, &used), 0);
    assert_false(d.has_info);
    assert_null(d.info);
    assert_int_equal(d.idem_len, 0);
}

static void test_every_prefix_is_incomplete(void **state)
{
    (void)state;
    hr_logrec r = sample(7, "[1,2,3]"), d;
    uint8_t buf[256];
    size_t n = enc(&r, buf), used;
    for (size_t i = 0; i < n; i++) assert_int_equal(hr_logrec_decode(buf, i, &d, &used), HR_ERR_AGAIN);
}

static void test_every_flipped_byte_is_refused(void **state)
{
    (void)state;
    hr_logrec r = sample(7, "[1,2,3]"), d;
    uint8_t buf[256];
    size_t n = enc(&r, buf), used;
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x20;
        int rc = hr_logrec_decode(buf, n, &d, &used);
        /* a flipped length byte can make the record look longer: incomplete */
        assert_true(rc == HR_ERR_PROTO || (rc == HR_ERR_AGAIN && i >= 4 && i < 8));
        buf[i] ^= 0x20;
    }
}

typedef struct seen {
    uint64_t offsets[16];
    size_t n, damage_pos, damage_len, ndamage;
} seen;

static void on_rec(void *ud, const hr_logrec *r, size_t pos)
{
    seen *s = ud;
    (void)pos;
    s->offsets[s->n++] = r->offset;
}

static void on_damage(void *ud, size_t pos, size_t len)
{
    seen *s = ud;
    s->damage_pos = pos;
    s->damage_len = len;
    s->ndamage++;
}

static void test_scan_damage_and_torn_tail(void **state)
{
    (void)state;
    uint8_t buf[2048];
    size_t at[4], n = 0;
    for (int i = 0; i < 4; i++) {
        hr_logrec r = sample((uint64_t)i + 1, "{\"n\":1}");
        at[i] = n;
        n += enc(&r, buf + n);
    }
    seen s = {0};
    assert_int_equal(hr_logrec_scan(buf, n, on_rec, on_damage, &s), n);
    assert_int_equal(s.n, 4);
    buf[at[1] + 40] ^= 1; /* damage record 2: 1, 3, 4 read, 2 reported */
    memset(&s, 0, sizeof(s));
    assert_int_equal(hr_logrec_scan(buf, n, on_rec, on_damage, &s), n);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.offsets[1], 3);
    assert_int_equal(s.ndamage, 1);
    assert_int_equal(s.damage_pos, at[1]);
    assert_int_equal(s.damage_len, at[2] - at[1]);
    buf[at[1] + 40] ^= 1;
    memset(&s, 0, sizeof(s));
    assert_int_equal(hr_logrec_scan(buf, n - 3, on_rec, on_damage, &s), at[3]); /* torn last record */
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ndamage, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_no_info_no_key),
        cmocka_unit_test(test_every_prefix_is_incomplete),
        cmocka_unit_test(test_every_flipped_byte_is_refused),
        cmocka_unit_test(test_scan_damage_and_torn_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
