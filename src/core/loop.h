/* loop.h - one epoll event loop per worker thread: file-descriptor watchers
 * (edge-triggered for connections), an eventfd for wake-ups from other
 * threads, the timer wheel, and end-of-turn hooks (used to flush coalesced
 * writes once per loop turn). Owns nothing but the epoll and eventfd fds.
 * It counts its turns and reports how late its timers fire (on_lag), the raw
 * numbers of a loop's health that its owner exports. */
#ifndef HERALD_CORE_LOOP_H
#define HERALD_CORE_LOOP_H

#include "core/common.h"
#include "core/timerwheel.h"

#include <stdatomic.h>
#include <sys/epoll.h>

typedef struct hr_loop hr_loop;
typedef struct hr_io hr_io;
typedef void (*hr_io_cb)(hr_loop *loop, hr_io *io, uint32_t events);
typedef void (*hr_loop_cb)(hr_loop *loop, void *data);
/* late_ms: how late the most overdue timer of this turn fired (hr_wheel.late_ms). */
typedef void (*hr_loop_lag_cb)(hr_loop *loop, void *data, uint64_t late_ms);

struct hr_io {
    int fd;
    hr_io_cb cb;
};

struct hr_loop {
    int epfd;
    int wakefd;              /* eventfd: other threads poke the loop */
    hr_io wake_io;
    hr_loop_cb on_wake;      /* called on the loop thread after a wake-up */
    hr_loop_cb on_turn_end;  /* called after each batch of events */
    hr_loop_lag_cb on_lag;   /* called in a turn that fired timers (only then: an idle loop costs nothing),
                                with their lateness: a blocked loop's one telling number */
    atomic_uint_fast64_t iterations; /* turns run; written by the loop thread only, read by any */
    void *data;
    hr_wheel wheel;
    bool stop;
    bool busy;               /* set by a callback that has more to do: next wait uses timeout 0 */
    bool woken_self;         /* hr_loop_wake from the loop's own thread: on_wake runs at the turn's end */
};

int hr_loop_init(hr_loop *l, void *data);
void hr_loop_close(hr_loop *l);
/* Watch io->fd for events (EPOLLIN | EPOLLOUT | EPOLLET ...). */
int hr_loop_add(hr_loop *l, hr_io *io, uint32_t events);
int hr_loop_mod(hr_loop *l, hr_io *io, uint32_t events);
void hr_loop_del(hr_loop *l, hr_io *io);
/* Thread-safe: wake the loop, which then calls on_wake (from another thread:
 * through the eventfd, on its next turn; from the loop's own thread, inside
 * hr_loop_run: after this turn's events, before on_turn_end). */
void hr_loop_wake(hr_loop *l);
/* Run until hr_loop_stop() is called from the loop thread. */
void hr_loop_run(hr_loop *l);
static inline void hr_loop_stop(hr_loop *l) { l->stop = true; }
static inline uint64_t hr_loop_now(const hr_loop *l) { return l->wheel.now; }

#endif
