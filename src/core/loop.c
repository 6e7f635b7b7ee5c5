/* loop.c - the per-worker epoll loop (see loop.h). A wake-up from the loop's
 * own thread (a publication delivered to the publishing worker's inbox) does
 * not go through the eventfd: it is remembered and on_wake runs after this
 * turn's events, before on_turn_end — no write, read or extra epoll turn. */
#include "core/loop.h"
#include "core/log.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define HR_LOOP_MAX_EVENTS 256

static _Thread_local hr_loop *running; /* the loop hr_loop_run runs on this thread */

static void on_wakefd(hr_loop *l, hr_io *io, uint32_t events)
{
    HR_UNUSED(events);
    uint64_t v;
    while (read(io->fd, &v, sizeof(v)) > 0) {
    }
    if (l->on_wake) l->on_wake(l, l->data);
}

int hr_loop_init(hr_loop *l, void *data)
{
    memset(l, 0, sizeof(*l));
    l->data = data;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) return HR_ERR_IO;
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wakefd < 0) {
        close(l->epfd);
        return HR_ERR_IO;
    }
    l->wake_io.fd = l->wakefd;
    l->wake_io.cb = on_wakefd;
    hr_wheel_init(&l->wheel, hr_now_ms(), l);
    return hr_loop_add(l, &l->wake_io, EPOLLIN | EPOLLET);
}

void hr_loop_close(hr_loop *l)
{
    if (l->wakefd >= 0) close(l->wakefd);
    if (l->epfd >= 0) close(l->epfd);
    l->wakefd = l->epfd = -1;
}

int hr_loop_add(hr_loop *l, hr_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) == 0 ? 0 : HR_ERR_IO;
}

int hr_loop_mod(hr_loop *l, hr_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) == 0 ? 0 : HR_ERR_IO;
}

void hr_loop_del(hr_loop *l, hr_io *io)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

void hr_loop_wake(hr_loop *l)
{
    if (running == l) {
        l->woken_self = true;
        return;
    }
    uint64_t one = 1;
    ssize_t n = write(l->wakefd, &one, sizeof(one));
    HR_UNUSED(n);
}

void hr_loop_run(hr_loop *l)
{
    struct epoll_event events[HR_LOOP_MAX_EVENTS];
    hr_loop *outer = running;
    running = l;
    while (!l->stop) {
        int timeout = l->busy ? 0 : hr_wheel_timeout(&l->wheel);
        l->busy = false;
        int n = epoll_wait(l->epfd, events, HR_LOOP_MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            hr_logf(HR_LOG_ERROR, "epoll_wait_failed", "epoll_wait: %s", strerror(errno));
            break;
        }
        atomic_store_explicit(&l->iterations, atomic_load_explicit(&l->iterations, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        if (hr_wheel_advance(&l->wheel, hr_now_ms()) && l->on_lag) l->on_lag(l, l->data, l->wheel.late_ms);
        for (int i = 0; i < n; i++) {
            hr_io *io = events[i].data.ptr;
            io->cb(l, io, events[i].events);
        }
        if (l->woken_self) { /* once a turn: a wake-up from on_wake itself waits for the next */
            l->woken_self = false;
            if (l->on_wake) l->on_wake(l, l->data);
        }
        if (l->on_turn_end) l->on_turn_end(l, l->data);
        if (l->woken_self) l->busy = true; /* woken since: no waiting in the next epoll_wait */
    }
    running = outer;
}
