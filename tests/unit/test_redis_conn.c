/* test_redis_conn.c - one Redis connection on an event loop
 * (engine/redis_conn.h) against a scripted fake server on a loopback port:
 * the HELLO 3 handshake, pipelined replies to their callbacks in order,
 * RESP3 pushes to the hook between replies, the bounded queue, a malformed
 * reply (pending callbacks fail with HR_ERR_CLOSED, then a reconnection),
 * sends refused while down, and a refused HELLO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/redis_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the fake server: steps of (wait for this text, then answer that) ---------------- */

typedef struct step {
    const char *expect;   /* substring the request bytes must contain so far (NULL: none) */
    const char *reply;    /* bytes to write */
    bool close_after;     /* close the connection after writing (the next step waits for a new one) */
} step;

typedef struct server {
    int lfd;
    int port;
    const step *steps;
    size_t nsteps;
    pthread_t th;
    int accepted;
} server;

static void *server_main(void *arg)
{
    server *sv = arg;
    int fd = -1;
    char buf[65536];
    size_t have = 0;
    for (size_t i = 0; i < sv->nsteps; i++) {
        const step *st = &sv->steps[i];
        if (fd < 0) {
            fd = accept(sv->lfd, NULL, NULL);
            if (fd < 0) return NULL;
            sv->accepted++;
            have = 0;
        }
        while (st->expect) {
            buf[have] = '\0';
            char *at = strstr(buf, st->expect);
            if (at) { /* consume through the match */
                size_t used = (size_t)(at - buf) + strlen(st->expect);
                memmove(buf, buf + used, have - used);
                have -= used;
                break;
            }
            ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
            if (n <= 0) {
                close(fd);
                return NULL;
            }
            have += (size_t)n;
        }
        if (st->reply && write(fd, st->reply, strlen(st->reply)) < 0) break;
        if (st->close_after) {
            close(fd);
            fd = -1;
        }
    }
    /* keep the last connection open until the test closes the listener */
    if (fd >= 0) {
        while (read(fd, buf, sizeof(buf)) > 0) {
        }
        close(fd);
    }
    return NULL;
}

static void server_start(server *sv, const step *steps, size_t n)
{
    memset(sv, 0, sizeof(*sv));
    sv->steps = steps;
    sv->nsteps = n;
    sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(sv->lfd, (struct sockaddr *)&a, &l);
    sv->port = ntohs(a.sin_port);
    listen(sv->lfd, 8);
    pthread_create(&sv->th, NULL, server_main, sv);
}

static void server_stop(server *sv)
{
    shutdown(sv->lfd, SHUT_RDWR);
    close(sv->lfd);
    pthread_join(sv->th, NULL);
}

/* ---- the client side ------------------------------------------------------------------ */

static hr_loop loop;
static int ups, downs, pushes;
static char log_[512];   /* reply texts and errors in callback order */
static hr_timer stopper;

static void on_stop(hr_timer *t, void *d)
{
    (void)t;
    (void)d;
    hr_loop_stop(&loop);
}

/* Run the loop until *counter reaches n or ms pass. */
static bool run_until(int *counter, int n, uint64_t ms)
{
    uint64_t end = hr_now_ms() + ms;
    while (*counter < n && hr_now_ms() < end) {
        loop.stop = false;
        hr_timer_start(&loop.wheel, &stopper, 50);
        hr_loop_run(&loop);
    }
    hr_timer_stop(&loop.wheel, &stopper);
    return *counter >= n;
}

static void h_push(void *ud, const hr_resp *r)
{
    (void)ud;
    pushes++;
    if (r->n >= 3) {
        strcat(log_, "push:");
        strncat(log_, r->elem[2].str, r->elem[2].len);
        strcat(log_, " ");
    }
}

static void h_up(void *ud)
{
    (void)ud;
    ups++;
}

static void h_down(void *ud, const char *why)
{
    (void)ud;
    (void)why;
    downs++;
}

static int replies;

static void on_reply(void *ud, int err, const hr_resp *r)
{
    (void)ud;
    replies++;
    if (err) {
        strcat(log_, err == HR_ERR_CLOSED ? "closed " : "err ");
        return;
    }
    strncat(log_, r->str, r->len);
    strcat(log_, " ");
}

static hr_redis_conn *connect_to(server *sv, size_t max_pending)
{
    hr_redis_conn_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", sv->port);
    char err[128];
    assert_int_equal(hr_redis_resolve(addr, strlen(addr), &cfg, err, sizeof(err)), 0);
    cfg.connect_timeout_ms = 2000;
    cfg.ping_interval_ms = 60000;
    cfg.backoff_min_ms = 300; /* long enough to see the connection down between attempts */
    cfg.backoff_max_ms = 600;
    cfg.max_pending = max_pending;
    cfg.max_reply = 1 << 20;
    hr_redis_conn_hooks hooks = {h_push, h_up, h_down, NULL, NULL};
    return hr_redis_conn_new(&loop, &cfg, &hooks);
}

static int setup(void **state)
{
    (void)state;
    hr_loop_init(&loop, NULL);
    hr_timer_init(&stopper, on_stop);
    ups = downs = pushes = replies = 0;
    log_[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_loop_close(&loop);
    return 0;
}

static const char hello_reply[] = "%1\r\n+server\r\n+redis\r\n";

static void send_cmd(hr_redis_conn *c, const char *word, int expect_rc)
{
    hr_buf b = HR_BUF_INIT;
    hr_resp_cmdv(&b, "ECHO", word, NULL);
    assert_int_equal(hr_redis_conn_send(c, b.data, b.len, on_reply, NULL), expect_rc);
    hr_buf_free(&b);
}

static void test_pipelined_replies_and_pushes(void **state)
{
    (void)state;
    static const step steps[] = {
        {"HELLO", hello_reply, false},
        /* three commands, answered in one write with a push in the middle */
        {"three", "+one\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nP\r\n+two\r\n$5\r\nthree\r\n", false},
    };
    server sv;
    server_start(&sv, steps, 2);
    hr_redis_conn *c = connect_to(&sv, 100);
    assert_false(hr_redis_conn_up(c));
    send_cmd(c, "x", HR_ERR_CLOSED); /* not up yet: refused at once */
    assert_true(run_until(&ups, 1, 3000));
    assert_true(hr_redis_conn_up(c));
    send_cmd(c, "one", 0);
    send_cmd(c, "two", 0);
    send_cmd(c, "three", 0);
    assert_int_equal(hr_redis_conn_pending(c), 3);
    hr_redis_conn_flush(c);
    assert_true(run_until(&replies, 3, 3000));
    assert_string_equal(log_, "one push:P two three ");
    assert_int_equal(pushes, 1);
    assert_int_equal(hr_redis_conn_pending(c), 0);
    hr_redis_conn_free(c);
    server_stop(&sv);
}

static void test_bounded_queue(void **state)
{
    (void)state;
    static const step steps[] = {{"HELLO", hello_reply, false}};
    server sv;
    server_start(&sv, steps, 1);
    hr_redis_conn *c = connect_to(&sv, 2);
    assert_true(run_until(&ups, 1, 3000));
    send_cmd(c, "a", 0);
    send_cmd(c, "b", 0);
    send_cmd(c, "c", HR_ERR_TOO_BIG);
    /* freeing fails what is pending */
    hr_redis_conn_free(c);
    assert_string_equal(log_, "closed closed ");
    server_stop(&sv);
}

static void test_malformed_reply_then_reconnect(void **state)
{
    (void)state;
    static const step steps[] = {
        {"HELLO", hello_reply, false},
        {"bad", "?what\r\n", true},        /* not RESP: the client drops the connection */
        {"HELLO", hello_reply, false},      /* ... and comes back */
        {"again", "$5\r\nagain\r\n", false},
    };
    server sv;
    server_start(&sv, steps, 4);
    hr_redis_conn *c = connect_to(&sv, 100);
    assert_true(run_until(&ups, 1, 3000));
    send_cmd(c, "bad", 0);
    send_cmd(c, "other", 0);
    hr_redis_conn_flush(c);
    assert_true(run_until(&downs, 1, 3000));
    assert_string_equal(log_, "closed closed "); /* both awaited replies failed */
    send_cmd(c, "x", HR_ERR_CLOSED);           /* down: refused at once */
    assert_true(run_until(&ups, 2, 3000));     /* reconnected after the backoff */
    send_cmd(c, "again", 0);
    hr_redis_conn_flush(c);
    assert_true(run_until(&replies, 3, 3000));
    assert_string_equal(log_, "closed closed again ");
    hr_redis_conn_free(c);
    server_stop(&sv);
}

static void test_hello_refused(void **state)
{
    (void)state;
    static const step steps[] = {
        {"HELLO", "-NOPROTO unsupported protocol version\r\n", true},
        {"HELLO", "-NOPROTO unsupported protocol version\r\n", true},
    };
    server sv;
    server_start(&sv, steps, 2);
    hr_redis_conn *c = connect_to(&sv, 100);
    assert_true(run_until(&downs, 2, 3000)); /* refused, retried, refused */
    assert_int_equal(ups, 0);
    assert_false(hr_redis_conn_up(c));
    hr_redis_conn_free(c);
    server_stop(&sv);
}

static void test_resolve(void **state)
{
    (void)state;
    hr_redis_conn_cfg cfg;
    char err[128];
    assert_int_equal(hr_redis_resolve("[::1]:6379", 10, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.ss.ss_family, AF_INET6);
    assert_int_equal(hr_redis_resolve("localhost", 9, &cfg, err, sizeof(err)), HR_ERR_INVALID);
    assert_int_equal(hr_redis_resolve(":6379", 5, &cfg, err, sizeof(err)), HR_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipelined_replies_and_pushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_reply_then_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_refused, setup, teardown),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
