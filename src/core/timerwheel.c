/* timerwheel.c - hashed timing wheel (see timerwheel.h).
 *
 * A timer lives in slot (expires / TICK) % SLOTS. Processing a tick walks its
 * slot and fires the entries whose time has come; entries due on a later
 * revolution stay. With 1024 slots of 50 ms one revolution is ~51 s, so
 * typical deadlines (5-60 s) are visited at most twice before firing. */
#include "core/timerwheel.h"

#include <time.h>

uint64_t hr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t hr_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void hr_wheel_init(hr_wheel *w, uint64_t now_ms, void *data)
{
    for (size_t i = 0; i < HR_WHEEL_SLOTS; i++) w->slots[i].next = w->slots[i].prev = &w->slots[i];
    w->now = now_ms;
    w->tick = now_ms / HR_WHEEL_TICK_MS;
    w->count = 0;
    w->late_ms = 0;
    w->data = data;
}

void hr_timer_init(hr_timer *t, hr_timer_cb cb)
{
    t->next = t->prev = NULL;
    t->expires = 0;
    t->cb = cb;
}

bool hr_timer_active(const hr_timer *t) { return t->next != NULL; }

void hr_timer_stop(hr_wheel *w, hr_timer *t)
{
    if (!t->next) return;
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = t->prev = NULL;
    w->count--;
}

void hr_timer_start_at(hr_wheel *w, hr_timer *t, uint64_t when_ms)
{
    hr_timer_stop(w, t);
    /* Never place a timer in a tick already processed: it would wait a lap. */
    uint64_t tick = when_ms / HR_WHEEL_TICK_MS;
    if (tick < w->tick) tick = w->tick;
    t->expires = when_ms;
    hr_timer *head = &w->slots[tick & (HR_WHEEL_SLOTS - 1)];
    t->next = head;
    t->prev = head->prev;
    head->prev->next = t;
    head->prev = t;
    w->count++;
}

void hr_timer_start(hr_wheel *w, hr_timer *t, uint64_t delay_ms)
{
    hr_timer_start_at(w, t, w->now + delay_ms);
}

size_t hr_wheel_advance(hr_wheel *w, uint64_t now_ms)
{
    size_t fired = 0;
    w->late_ms = 0;
    if (now_ms < w->now) now_ms = w->now;
    w->now = now_ms;
    uint64_t last = now_ms / HR_WHEEL_TICK_MS;
    /* After a long stall, one lap covers every slot. */
    if (last - w->tick >= HR_WHEEL_SLOTS) w->tick = last - HR_WHEEL_SLOTS + 1;
    while (w->tick <= last && w->count) {
        hr_timer *head = &w->slots[w->tick & (HR_WHEEL_SLOTS - 1)];
        /* Detach the due entries first so callbacks may re-arm into this slot. */
        hr_timer due = {0};
        due.next = due.prev = &due;
        hr_timer *t = head->next;
        while (t != head) {
            hr_timer *nx = t->next;
            if (t->expires <= now_ms) {
                t->prev->next = t->next;
                t->next->prev = t->prev;
                t->next = &due;
                t->prev = due.prev;
                due.prev->next = t;
                due.prev = t;
            }
            t = nx;
        }
        while (due.next != &due) {
            t = due.next;
            due.next = t->next;
            t->next->prev = &due;
            t->next = t->prev = NULL;
            w->count--;
            fired++;
            uint64_t tick_end = (t->expires / HR_WHEEL_TICK_MS + 1) * HR_WHEEL_TICK_MS;
            if (now_ms > tick_end && now_ms - tick_end > w->late_ms) w->late_ms = now_ms - tick_end;
            t->cb(t, w->data);
        }
        if (w->tick == last) break;
        w->tick++;
    }
    if (!w->count) w->tick = last;
    return fired;
}

int hr_wheel_timeout(const hr_wheel *w)
{
    if (!w->count) return -1;
    uint64_t next_tick_at = (w->now / HR_WHEEL_TICK_MS + 1) * HR_WHEEL_TICK_MS;
    return (int)(next_tick_at - w->now);
}
