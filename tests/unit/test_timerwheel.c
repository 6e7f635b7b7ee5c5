/* test_timerwheel.c - the timing wheel: never early, at most a tick late,
 * O(1) stop, re-arming from callbacks, long delays spanning several laps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/timerwheel.h"

typedef struct probe {
    hr_timer t;
    uint64_t fired_at;
    int count;
    uint64_t rearm; /* re-arm delay, 0 = none */
} probe;

static uint64_t clock_now;

static void on_fire(hr_timer *t, void *data)
{
    hr_wheel *w = data;
    probe *p = HR_CONTAINER_OF(t, probe, t);
    p->fired_at = clock_now;
    p->count++;
    if (p->rearm) hr_timer_start(w, t, p->rearm);
}

static void advance_to(hr_wheel *w, uint64_t until, uint64_t step)
{
    while (clock_now < until) {
        clock_now += step;
        hr_wheel_advance(w, clock_now);
    }
}

static hr_wheel wheel;

static void test_fires_on_time(void **state)
{
    (void)state;
    static const uint64_t delays[] = {0, 1, 49, 50, 51, 999, 1000, 5000, 51199, 51200, 60000, 123457, 600000};
    for (size_t i = 0; i < HR_ARRAY_LEN(delays); i++) {
        clock_now = 1000000 + i * 7;
        hr_wheel_init(&wheel, clock_now, &wheel);
        probe p = {0};
        hr_timer_init(&p.t, on_fire);
        uint64_t start = clock_now;
        hr_timer_start(&wheel, &p.t, delays[i]);
        assert_true(hr_timer_active(&p.t));
        advance_to(&wheel, start + delays[i] + 2 * HR_WHEEL_TICK_MS, 10);
        assert_int_equal(p.count, 1);
        assert_true(p.fired_at >= start + delays[i]);              /* never early */
        assert_true(p.fired_at <= start + delays[i] + HR_WHEEL_TICK_MS + 10); /* at most a tick late */
        assert_false(hr_timer_active(&p.t));
        assert_int_equal(wheel.count, 0);
    }
}

static void test_stop_prevents_firing(void **state)
{
    (void)state;
    clock_now = 0;
    hr_wheel_init(&wheel, 0, &wheel);
    probe a = {0}, b = {0};
    hr_timer_init(&a.t, on_fire);
    hr_timer_init(&b.t, on_fire);
    hr_timer_start(&wheel, &a.t, 100);
    hr_timer_start(&wheel, &b.t, 100);
    hr_timer_stop(&wheel, &a.t);
    hr_timer_stop(&wheel, &a.t); /* idempotent */
    advance_to(&wheel, 1000, 25);
    assert_int_equal(a.count, 0);
    assert_int_equal(b.count, 1);
}

static void test_restart_moves_deadline(void **state)
{
    (void)state;
    clock_now = 0;
    hr_wheel_init(&wheel, 0, &wheel);
    probe a = {0};
    hr_timer_init(&a.t, on_fire);
    hr_timer_start(&wheel, &a.t, 100);
    hr_timer_start(&wheel, &a.t, 5000); /* restart replaces */
    assert_int_equal(wheel.count, 1);
    advance_to(&wheel, 4900, 50);
    assert_int_equal(a.count, 0);
    advance_to(&wheel, 5100, 50);
    assert_int_equal(a.count, 1);
}

static void test_rearm_from_callback(void **state)
{
    (void)state;
    clock_now = 0;
    hr_wheel_init(&wheel, 0, &wheel);
    probe a = {0};
    a.rearm = 1000;
    hr_timer_init(&a.t, on_fire);
    hr_timer_start(&wheel, &a.t, 1000);
    advance_to(&wheel, 10050, 50);
    assert_int_equal(a.count, 10);
}

static void test_many_timers_and_big_jump(void **state)
{
    (void)state;
    enum { N = 5000 };
    static probe ps[N];
    clock_now = 42;
    hr_wheel_init(&wheel, clock_now, &wheel);
    for (int i = 0; i < N; i++) {
        hr_timer_init(&ps[i].t, on_fire);
        ps[i].count = 0;
        ps[i].rearm = 0;
        hr_timer_start(&wheel, &ps[i].t, (uint64_t)(i * 37) % 200000);
    }
    /* a stalled loop jumps far ahead at once: everything due fires once */
    clock_now += 300000;
    hr_wheel_advance(&wheel, clock_now);
    for (int i = 0; i < N; i++) assert_int_equal(ps[i].count, 1);
    assert_int_equal(wheel.count, 0);
    assert_int_equal(hr_wheel_timeout(&wheel), -1);
}

static void test_timeout_hint(void **state)
{
    (void)state;
    clock_now = 1000;
    hr_wheel_init(&wheel, clock_now, &wheel);
    assert_int_equal(hr_wheel_timeout(&wheel), -1);
    probe a = {0};
    hr_timer_init(&a.t, on_fire);
    hr_timer_start(&wheel, &a.t, 10000);
    int t = hr_wheel_timeout(&wheel);
    assert_true(t > 0 && t <= (int)HR_WHEEL_TICK_MS);
}

/* late_ms: 0 when a timer fires within its tick, the delay past its tick's
 * end after a stall, 0 again when an advance fires nothing. */
static void test_late_ms(void **state)
{
    (void)state;
    clock_now = 1000000;
    hr_wheel_init(&wheel, clock_now, &wheel);
    probe p = {0};
    hr_timer_init(&p.t, on_fire);
    hr_timer_start(&wheel, &p.t, 120); /* due at 1000120, in the tick ending 1000150 */
    advance_to(&wheel, 1000150, 50);
    assert_int_equal(p.count, 1);
    assert_int_equal(wheel.late_ms, 0);
    hr_timer_start(&wheel, &p.t, 100); /* due 1000250, tick end 1000300; the loop wakes at 1002300 */
    clock_now = 1002300;
    assert_int_equal(hr_wheel_advance(&wheel, clock_now), 1);
    assert_int_equal(wheel.late_ms, 2000);
    clock_now += 50;
    assert_int_equal(hr_wheel_advance(&wheel, clock_now), 0);
    assert_int_equal(wheel.late_ms, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_on_time),
        cmocka_unit_test(test_stop_prevents_firing),
        cmocka_unit_test(test_restart_moves_deadline),
        cmocka_unit_test(test_rearm_from_callback),
        cmocka_unit_test(test_many_timers_and_big_jump),
        cmocka_unit_test(test_timeout_hint),
        cmocka_unit_test(test_late_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
