/* test_loop.c - core/loop.c: where a wake-up's on_wake runs. From another
 * thread (or before the loop runs) through the eventfd, on the next turn;
 * from the loop's own thread after the turn's events and before
 * on_turn_end, in the same turn, without an eventfd round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/loop.h"

typedef struct rec {
    char log[64];      /* one letter per callback: r = readable, w = on_wake, e = turn end */
    int turns, stop_after, wake_in_wake;
    hr_io io;
    int pipe[2];
} rec;

static void add(rec *r, char c)
{
    size_t n = strlen(r->log);
    if (n + 1 < sizeof(r->log)) r->log[n] = c;
}

static void on_readable(hr_loop *l, hr_io *io, uint32_t ev)
{
    (void)ev;
    rec *r = l->data;
    char b[8];
    while (read(io->fd, b, sizeof(b)) > 0) {
    }
    add(r, 'r');
    hr_loop_wake(l); /* from the loop's own thread */
}

static void on_wake(hr_loop *l, void *data)
{
    rec *r = data;
    add(r, 'w');
    if (r->wake_in_wake) {
        r->wake_in_wake--;
        hr_loop_wake(l); /* runs on the next turn, not in a loop now */
    }
}

static void on_turn_end(hr_loop *l, void *data)
{
    rec *r = data;
    add(r, 'e');
    if (++r->turns == r->stop_after) hr_loop_stop(l);
}

static void setup(hr_loop *l, rec *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(hr_loop_init(l, r), 0);
    l->on_wake = on_wake;
    l->on_turn_end = on_turn_end;
    assert_int_equal(pipe2(r->pipe, O_NONBLOCK), 0);
    r->io.fd = r->pipe[0];
    r->io.cb = on_readable;
    assert_int_equal(hr_loop_add(l, &r->io, EPOLLIN), 0);
}

static void teardown(hr_loop *l, rec *r)
{
    hr_loop_del(l, &r->io);
    close(r->pipe[0]);
    close(r->pipe[1]);
    hr_loop_close(l);
}

static void test_own_thread_wake_runs_in_the_same_turn(void **state)
{
    (void)state;
    hr_loop l;
    rec r;
    setup(&l, &r);
    assert_int_equal(write(r.pipe[1], "x", 1), 1);
    r.wake_in_wake = 1;
    r.stop_after = 2;
    hr_loop_run(&l);
    /* turn 1: the read, its wake-up before the turn's end; the wake-up made
     * inside on_wake waits for turn 2, which does not block (there is no
     * timer: a blocking wait would hang here) */
    assert_string_equal(r.log, "rwewe");
    teardown(&l, &r);
}

static void test_wake_before_run_goes_through_the_eventfd(void **state)
{
    (void)state;
    hr_loop l;
    rec r;
    setup(&l, &r);
    hr_loop_wake(&l); /* not inside hr_loop_run: the eventfd */
    r.stop_after = 1;
    hr_loop_run(&l);
    assert_string_equal(r.log, "we");
    teardown(&l, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_thread_wake_runs_in_the_same_turn),
        cmocka_unit_test(test_wake_before_run_goes_through_the_eventfd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
