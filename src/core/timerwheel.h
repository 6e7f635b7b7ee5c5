/* timerwheel.h - a hashed timing wheel for per-connection deadlines
 * (handshake, header, idle, ping, close). O(1) start/stop, one intrusive
 * 32-byte node per connection, no allocation. Resolution is one tick
 * (HR_WHEEL_TICK_MS); a timer never fires early, and at most one tick late.
 *
 * Deadlines that move often (idle timeouts reset on every read) are best
 * handled lazily: leave the timer where it is, record the activity time, and
 * when it fires check whether the deadline really passed and re-arm if not. */
#ifndef HERALD_CORE_TIMERWHEEL_H
#define HERALD_CORE_TIMERWHEEL_H

#include "core/common.h"

#define HR_WHEEL_SLOTS 1024u        /* power of two */
#define HR_WHEEL_TICK_MS 50u

typedef struct hr_timer hr_timer;
typedef void (*hr_timer_cb)(hr_timer *t, void *wheel_data);

struct hr_timer {
    hr_timer *next, *prev;  /* slot list; prev == NULL and next == NULL when idle */
    uint64_t expires;       /* absolute, milliseconds on the wheel's clock */
    hr_timer_cb cb;
};

typedef struct hr_wheel {
    hr_timer slots[HR_WHEEL_SLOTS]; /* list heads (sentinels) */
    uint64_t now;                   /* last time advanced to (ms) */
    uint64_t tick;                  /* index of the next tick to process */
    size_t count;                   /* active timers */
    uint64_t late_ms;               /* the last advance's latest firing: how long after its tick the most
                                       overdue timer fired (0 when none fired; see hr_wheel_advance) */
    void *data;                     /* passed to callbacks */
} hr_wheel;

void hr_wheel_init(hr_wheel *w, uint64_t now_ms, void *data);
void hr_timer_init(hr_timer *t, hr_timer_cb cb);
bool hr_timer_active(const hr_timer *t);
/* (Re)start t to fire at now + delay_ms. */
void hr_timer_start(hr_wheel *w, hr_timer *t, uint64_t delay_ms);
/* Start at an absolute time on the wheel's clock. */
void hr_timer_start_at(hr_wheel *w, hr_timer *t, uint64_t when_ms);
void hr_timer_stop(hr_wheel *w, hr_timer *t);
/* Advance to now_ms, firing every due timer (a callback may start/stop any
 * timer, including itself). Returns the number fired, and sets late_ms to
 * the largest lateness among them: now_ms less the end of the tick the
 * timer was due in (the wheel's own resolution is not lateness, so a loop
 * that wakes on time reads 0; a loop held up for 2 s reads ~2000). */
size_t hr_wheel_advance(hr_wheel *w, uint64_t now_ms);
/* Milliseconds until the next tick boundary worth waking up for: -1 when no
 * timers are active, else a small bound (<= one tick). */
int hr_wheel_timeout(const hr_wheel *w);

/* Monotonic clock in milliseconds, and in microseconds. */
uint64_t hr_now_ms(void);
uint64_t hr_now_us(void);

#endif
