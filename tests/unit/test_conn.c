/* test_conn.c - connection I/O over a real socketpair: writes are coalesced
 * until the end of the loop turn, partial writes keep the rest queued and
 * resume on EPOLLOUT, leftovers are kept and re-presented, backpressure
 * pauses reading, files go out with sendfile, close frees everything, a
 * channel's run of frames is one entry costing its frames; and,
 * through a fake I/O layer, that every read, write, file, half-close, close
 * and start stage goes through the connection's layer ops; socketless
 * connections (fed, paused, not counted as sockets) and the on_flush hook
 * running after the other connections' flushes; an owned buffer queued as
 * it is, bytes a layer holds counted in the queue's cost, and a vt's
 * read_to_eof reading the FIN of the same edge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/server.h"
#include "server/opts.h"
#include "transport/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static hr_config cfg;
static hr_transport_opts topt; /* the transports' options from cfg */
static hr_shared srv;
static hr_worker w;

static hr_buf seen;          /* every on_data call's bytes, concatenated */
static size_t consume_keep;  /* on_data leaves this many bytes unconsumed */
static int eofs, frees;

/* The fake I/O layer's script and record (tests at the end). */
static struct {
    const char *input;     /* what reads return, then HR_ERR_AGAIN */
    hr_buf out;            /* everything writev took */
    int writevs, reads, shutdowns, closes, starts;
    size_t write_limit;    /* writev takes at most this much (0 = all) */
    bool blocked;          /* writev answers HR_ERR_AGAIN */
    size_t committed;      /* bytes a blocked write "took" */
    int start_waits;       /* start answers 1 this many times, then hands over */
} fk;

static ssize_t rec_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    (void)c;
    hr_buf_append(&seen, data, len);
    hr_buf_append(&seen, "|", 1);
    return (ssize_t)(len > consume_keep ? len - consume_keep : 0);
}
static void rec_on_eof(hr_conn *c) { eofs++; hr_conn_close(c); }
static void rec_on_timer(hr_conn *c) { (void)c; }
static void rec_on_free(hr_conn *c) { (void)c; frees++; }
static const hr_conn_vt rec_vt = {.on_data = rec_on_data, .on_eof = rec_on_eof, .on_timer = rec_on_timer,
                                  .on_free = rec_on_free, .name = "rec"};

/* A transport that answers `yield_take` bytes at a time, then yields (HTTP
 * pipelining: http.max_pipelined requests per turn). */
static size_t yield_take, yield_consumed;
static ssize_t yield_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    (void)data;
    size_t take = len < yield_take ? len : yield_take;
    if (take < len) hr_conn_yield(c);
    yield_consumed += take;
    return (ssize_t)take;
}
static const hr_conn_vt yield_vt = {.on_data = yield_on_data, .on_eof = rec_on_eof, .on_timer = rec_on_timer,
                                    .on_free = rec_on_free, .name = "yield"};

static int setup(void **state)
{
    (void)state;
    hr_config_defaults(&cfg);
    memset(&srv, 0, sizeof(srv));
    memset(&w, 0, sizeof(w));
    hr_opts_transport(&cfg, &topt);
    w.sh = &srv;
    w.opts = &topt;
    w.rbuf = hr_malloc(HR_READ_BUF_SIZE);
    w.static_fd = -1;
    assert_int_equal(hr_loop_init(&w.loop, &w), 0);
    seen.len = 0;
    consume_keep = 0;
    eofs = frees = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    while (w.conns) hr_conn_close(w.conns);
    hr_conn_end_turn(&w);
    hr_conn_release_pool(&w);
    hr_loop_close(&w.loop);
    hr_free(w.rbuf);
    hr_buf_free(&seen);
    hr_buf_free(&fk.out);
    hr_config_free(&cfg);
    return 0;
}

/* A connection on one end of a socketpair; *peer gets the other end. */
static hr_conn *make_conn(int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    hr_conn *c = hr_calloc(1, sizeof(*c));
    c->io.fd = sv[0];
    c->io.cb = hr_conn_on_io;
    c->layer = &hr_conn_plain;
    c->w = &w;
    c->vt = &rec_vt;
    hr_timer_init(&c->timer, hr_conn_on_timer);
    c->next = w.conns;
    if (w.conns) w.conns->prev = c;
    w.conns = c;
    w.nconns++;
    atomic_fetch_add(&srv.total_connections, 1);
    *peer = sv[1];
    return c;
}

static size_t drain_peer(int fd, hr_buf *into)
{
    size_t total = 0;
    uint8_t tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n <= 0) break;
        hr_buf_append(into, tmp, (size_t)n);
        total += (size_t)n;
    }
    return total;
}

static void test_writes_wait_for_end_of_turn(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_conn(&peer);
    hr_conn_send(c, "abc", 3);
    hr_conn_send2(c, "de", 2, "f", 1);
    assert_int_equal(c->out.bytes, 6 + 2 * HR_CONN_ENTRY_COST); /* bytes + per-entry overhead */
    char tmp[16];
    assert_int_equal(read(peer, tmp, sizeof(tmp)), -1); /* nothing written yet */
    assert_int_equal(errno, EAGAIN);
    hr_conn_end_turn(&w);
    hr_buf got = HR_BUF_INIT;
    assert_int_equal(drain_peer(peer, &got), 6);
    assert_memory_equal(got.data, "abcdef", 6);
    assert_int_equal(c->out.bytes, 0);
    assert_int_equal(c->out.n, 0);
    assert_null(c->out.e); /* an empty queue holds no memory */
    hr_buf_free(&got);
    close(peer);
}

/* A channel's run of frames queued as one entry costs what the frames would
 * one by one, and is refused (nothing queued) when it would take the queue
 * past the caller's limit; its bytes leave as they are. */
static void test_run_entry_costs_its_frames(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_conn(&peer);
    hr_sbuf *run = hr_sbuf_new("aabbcc", 6);
    size_t cost = 6 + 3 * HR_CONN_ENTRY_COST;
    assert_false(hr_conn_send_run(c, run, 3, cost - 1));
    assert_int_equal(c->out.n, 0);
    assert_int_equal(c->out.bytes, 0);
    assert_true(hr_conn_send_run(c, run, 3, cost));
    assert_int_equal(c->out.n, 1); /* one entry */
    assert_int_equal(run->refs, 2); /* one reference */
    assert_int_equal(c->out.bytes, cost);
    hr_conn_end_turn(&w);
    hr_buf got = HR_BUF_INIT;
    assert_int_equal(drain_peer(peer, &got), 6);
    assert_memory_equal(got.data, "aabbcc", 6);
    assert_int_equal(c->out.bytes, 0);
    assert_int_equal(run->refs, 1);
    /* dropped before it is written: its whole cost goes with it */
    assert_true(hr_conn_send_run(c, run, 3, cost));
    hr_conn_send(c, "d", 1);
    hr_conn_drop_queued(c);
    assert_int_equal(c->out.bytes, 0);
    assert_int_equal(run->refs, 1);
    hr_sbuf_unref(run);
    hr_buf_free(&got);
    close(peer);
}

/* A queue that grew to 128 entries and drained leaves its ring (and the
 * smaller ones it outgrew) in the worker's pool, and the next queue that
 * grows takes them back: a saturated fan-out allocates no ring per turn. */
static void test_drained_rings_of_every_size_are_reused(void **state)
{
    (void)state;
    int p1, p2;
    hr_conn *a = make_conn(&p1), *b = make_conn(&p2);
    for (int i = 0; i < 100; i++) hr_conn_send(a, "x", 1);
    assert_int_equal(a->out.cap, 128);
    void *ring = a->out.e;
    hr_conn_end_turn(&w);
    assert_null(a->out.e);
    assert_ptr_equal(w.ring_pool[4], ring); /* class 4: 8 << 4 = 128 entries */
    size_t pooled = w.ring_pool_bytes;
    assert_true(pooled > 0);
    for (int i = 0; i < 100; i++) hr_conn_send(b, "y", 1);
    assert_ptr_equal(b->out.e, ring);
    assert_null(w.ring_pool[4]);
    assert_true(w.ring_pool_bytes < pooled);
    hr_conn_end_turn(&w);
    assert_int_equal(w.ring_pool_bytes, pooled);
    hr_buf got = HR_BUF_INIT;
    assert_int_equal(drain_peer(p1, &got), 100);
    assert_int_equal(drain_peer(p2, &got), 100);
    hr_buf_free(&got);
    close(p1);
    close(p2);
}

/* server.output_ring_pool_bytes bounds what the pool keeps: 0 keeps none. */
static void test_ring_pool_bounded_by_config(void **state)
{
    (void)state;
    topt.output_ring_pool_bytes = 0;
    int p1;
    hr_conn *a = make_conn(&p1);
    for (int i = 0; i < 100; i++) hr_conn_send(a, "x", 1);
    hr_conn_end_turn(&w);
    assert_null(a->out.e);
    assert_int_equal(w.ring_pool_bytes, 0);
    for (int k = 0; k < HR_RING_CLASSES; k++) assert_null(w.ring_pool[k]);
    hr_buf got = HR_BUF_INIT;
    assert_int_equal(drain_peer(p1, &got), 100);
    hr_buf_free(&got);
    close(p1);
}

static void test_partial_write_resumes_on_epollout(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_conn(&peer);
    int small = 4096;
    setsockopt(c->io.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    enum { N = 1 << 20 };
    uint8_t *big = hr_malloc(N);
    for (size_t i = 0; i < N; i++) big[i] = (uint8_t)(i * 7 + 3);
    for (size_t off = 0; off < N; off += 65536) hr_conn_send(c, big + off, 65536);
    hr_conn_end_turn(&w);
    assert_true(c->flags & HR_CONN_WRITE_BLOCKED);
    assert_true(c->out.bytes > 0 && c->out.bytes < N);
    hr_buf got = HR_BUF_INIT;
    for (int rounds = 0; rounds < 100000 && got.len < N; rounds++) {
        drain_peer(peer, &got);
        hr_conn_on_io(&w.loop, &c->io, EPOLLOUT);
    }
    drain_peer(peer, &got);
    assert_int_equal(got.len, N);
    assert_memory_equal(got.data, big, N);
    assert_int_equal(c->out.bytes, 0);
    assert_false(c->flags & HR_CONN_WRITE_BLOCKED);
    hr_free(big);
    hr_buf_free(&got);
    close(peer);
}

static void test_leftover_kept_and_freed(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_conn(&peer);
    consume_keep = 3;
    assert_int_equal(write(peer, "hello", 5), 5);
    hr_conn_on_io(&w.loop, &c->io, EPOLLIN);
    assert_int_equal(c->in.len, 3);
    assert_memory_equal(c->in.data, "llo", 3);
    consume_keep = 0;
    assert_int_equal(write(peer, "!", 1), 1);
    hr_conn_on_io(&w.loop, &c->io, EPOLLIN);
    hr_buf_append(&seen, "", 1);
    assert_string_equal((char *)seen.data, "hello|llo!|");
    assert_int_equal(c->in.len, 0);
    assert_null(c->in.data); /* idle again: no buffer held */
    close(peer);
}

static void test_backpressure_pauses_reading(void **state)
{
    (void)state;
    topt.ws_max_queued_bytes = 4096; /* pause above 1024 queued bytes */
    int peer;
    hr_conn *c = make_conn(&peer);
    uint8_t blob[2000] = {0};
    hr_conn_send(c, blob, sizeof(blob));
    assert_true(c->flags & HR_CONN_READ_PAUSED);
    assert_int_equal(write(peer, "xyz", 3), 3);
    hr_conn_on_io(&w.loop, &c->io, EPOLLIN);
    assert_int_equal(seen.len, 0); /* paused: not read */
    hr_conn_end_turn(&w);          /* flush drains the queue -> resume */
    assert_false(c->flags & HR_CONN_READ_PAUSED);
    hr_conn_run_ready(&w);         /* edge-triggered: reads what waited */
    hr_buf_append(&seen, "", 1);
    assert_string_equal((char *)seen.data, "xyz|");
    hr_buf tmp = HR_BUF_INIT;
    drain_peer(peer, &tmp);
    hr_buf_free(&tmp);
    close(peer);
}

static void test_pipelined_backlog_stops_reading(void **state)
{
    (void)state;
    topt.http_max_pipelined_bytes = 4096;
    int peer;
    hr_conn *c = make_conn(&peer);
    c->vt = &yield_vt;
    yield_take = 100;
    yield_consumed = 0;
    uint8_t chunk[4096] = {0};
    size_t written = 0;
    for (;;) { /* fill the socket */
        ssize_t n = write(peer, chunk, sizeof(chunk));
        if (n <= 0) break;
        written += (size_t)n;
    }
    assert_true(written > 64 * 1024);
    hr_conn_on_io(&w.loop, &c->io, EPOLLIN);
    size_t most = c->in.len;
    for (int turn = 0; turn < 100000 && w.ready_list; turn++) {
        hr_conn_run_ready(&w);
        if (c->in.len > most) most = c->in.len;
    }
    /* held: at most the cap plus one read behind it, never the whole socket */
    assert_true(most < 4096 + HR_READ_BUF_SIZE);
    assert_int_equal(yield_consumed, written); /* and everything was read in the end */
    assert_int_equal(c->in.len, 0);
    assert_null(c->in.data);
    close(peer);
}

static void test_replace_last_coalesces_pongs(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_conn(&peer);
    hr_conn_send(c, "\x8a\x01" "a", 3);
    assert_true(hr_conn_replace_last(c, 0x8a, "\x8a\x02", 2, "bc", 2)); /* only the latest pong */
    assert_int_equal(c->out.n, 1);
    assert_int_equal(c->out.bytes, 4 + HR_CONN_ENTRY_COST);
    hr_conn_send(c, "\x81\x01" "m", 3);
    assert_false(hr_conn_replace_last(c, 0x8a, "\x8a\x00", 2, NULL, 0)); /* the tail is not a pong */
    hr_conn_end_turn(&w);
    hr_buf got = HR_BUF_INIT;
    drain_peer(peer, &got);
    assert_int_equal(got.len, 7);
    assert_memory_equal(got.data, "\x8a\x02" "bc\x81\x01" "m", 7);
    assert_false(hr_conn_replace_last(c, 0x81, "x", 1, NULL, 0)); /* written: nothing to replace */
    hr_buf_free(&got);
    close(peer);
}

static void test_queued_files_pause_reading(void **state)
{
    (void)state;
    topt.http_max_queued_files = 3;
    int peer;
    hr_conn *c = make_conn(&peer);
    for (int i = 0; i < 3; i++) {
        assert_false(c->flags & HR_CONN_READ_PAUSED);
        int fd = open("/dev/null", O_RDONLY);
        assert_true(fd >= 0);
        hr_conn_send_file(c, fd, 0, 10); /* each holds a descriptor: a third of the budget */
    }
    assert_true(c->flags & HR_CONN_READ_PAUSED);
    hr_conn_close(c); /* closes the files */
    hr_conn_end_turn(&w);
    close(peer);
}

static void test_send_file(void **state)
{
    (void)state;
    char path[] = "/tmp/herald-test-conn-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    const char text[] = "static file body";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    int peer;
    hr_conn *c = make_conn(&peer);
    hr_conn_send(c, "HEAD|", 5);
    hr_conn_send_file(c, fd, 7, sizeof(text) - 1 - 7);
    hr_conn_send(c, "|TAIL", 5);
    hr_conn_end_turn(&w);
    hr_buf got = HR_BUF_INIT;
    drain_peer(peer, &got);
    hr_buf_append(&got, "", 1);
    assert_string_equal((char *)got.data, "HEAD|file body|TAIL");
    hr_buf_free(&got);
    close(peer);
}

static void test_eof_and_close(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_conn(&peer);
    hr_conn_send(c, "pending", 7);
    close(peer);
    hr_conn_on_io(&w.loop, &c->io, EPOLLIN | EPOLLRDHUP);
    assert_int_equal(eofs, 1);
    assert_true(c->flags & HR_CONN_CLOSED);
    assert_int_equal(frees, 1);
    assert_int_equal(w.nconns, 0);
    assert_int_equal(atomic_load(&srv.total_connections), 0);
    hr_conn_send(c, "ignored", 7); /* still valid memory until end of turn; ignored */
    hr_conn_end_turn(&w);          /* frees it (ASan checks) */
}

static void test_close_after_flush(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_conn(&peer);
    hr_conn_send(c, "bye", 3);
    hr_conn_close_after_flush(c);
    hr_conn_send(c, "late", 4); /* nothing may follow a closing response */
    hr_conn_end_turn(&w);
    hr_buf got = HR_BUF_INIT;
    drain_peer(peer, &got);
    assert_int_equal(got.len, 3);
    assert_memory_equal(got.data, "bye", 3);
    char tmp[4];
    assert_int_equal(read(peer, tmp, sizeof(tmp)), 0); /* EOF: closed */
    assert_int_equal(w.nconns, 0);
    hr_buf_free(&got);
    close(peer);
}

/* ---- a fake I/O layer: conn.c must do all its I/O through these ops ---------- */


static ssize_t fk_read(hr_conn *c, uint8_t *dst, size_t cap, bool *drained)
{
    (void)c;
    fk.reads++;
    size_t n = fk.input ? strlen(fk.input) : 0;
    if (!n) {
        *drained = true;
        return HR_ERR_AGAIN;
    }
    if (n > cap) n = cap;
    memcpy(dst, fk.input, n);
    fk.input += n;
    *drained = false; /* read again: the next read says AGAIN */
    return (ssize_t)n;
}

static ssize_t fk_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    (void)c;
    fk.writevs++;
    if (fk.blocked) return HR_ERR_AGAIN;
    size_t took = 0;
    for (int i = 0; i < cnt; i++) {
        size_t n = iov[i].iov_len;
        if (fk.write_limit && took + n > fk.write_limit) n = fk.write_limit - took;
        hr_buf_append(&fk.out, iov[i].iov_base, n);
        took += n;
        if (fk.write_limit && took == fk.write_limit) break;
    }
    return (ssize_t)took;
}

static size_t fk_committed(const hr_conn *c) { (void)c; return fk.committed; }
static void fk_shutdown(hr_conn *c) { (void)c; fk.shutdowns++; }
static void fk_close(hr_conn *c) { fk.closes++; c->layer = &hr_conn_plain; }

static const hr_conn_layer_ops fk_ops = {.read = fk_read, .writev = fk_writev, .committed = fk_committed,
                                         .shutdown = fk_shutdown, .close = fk_close, .name = "fake"};
static hr_conn_layer fk_layer = {.ops = &fk_ops};

static int fk_start(hr_conn *c)
{
    fk.starts++;
    if (fk.start_waits-- > 0) return 1;
    c->layer = &fk_layer; /* the stage is done: the stream layer takes over */
    return 0;
}

static const hr_conn_layer_ops fk_stage_ops = {.read = fk_read, .writev = fk_writev, .start = fk_start,
                                               .shutdown = fk_shutdown, .name = "fake-stage"};
static hr_conn_layer fk_stage = {.ops = &fk_stage_ops};

static hr_conn *make_fake_conn(int *peer, hr_conn_layer *layer)
{
    hr_buf_free(&fk.out);
    memset(&fk, 0, sizeof(fk));
    hr_conn *c = make_conn(peer);
    c->layer = layer;
    return c;
}

/* Nothing reached the socket itself: conn.c wrote only through the layer. */
static void assert_socket_untouched(int peer)
{
    char b[1];
    assert_int_equal(recv(peer, b, 1, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
}

static void test_layer_carries_reads_writes_files_shutdown_close(void **state)
{
    (void)state;
    char path[] = "/tmp/herald-test-conn-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "file body", 9), 9);
    int peer;
    hr_conn *c = make_fake_conn(&peer, &fk_layer);
    fk.input = "request";
    hr_conn_on_io(&w.loop, &c->io, EPOLLIN);
    assert_int_equal(seen.len, 8);
    assert_memory_equal(seen.data, "request|", 8); /* one on_data call */
    assert_int_equal(fk.reads, 2); /* the bytes, then AGAIN */
    hr_conn_send(c, "A|", 2);
    hr_conn_send(c, "B|", 2);
    hr_conn_send_file(c, fd, 0, 9); /* no sendfile op: read and written in chunks */
    hr_conn_send(c, "|C", 2);
    hr_conn_shutdown_after_flush(c);
    hr_conn_end_turn(&w);
    hr_buf_append(&fk.out, "", 1);
    assert_string_equal((char *)fk.out.data, "A|B|file body|C");
    assert_int_equal(fk.writevs, 3); /* A|B| in one call, the file chunk, |C */
    assert_int_equal(fk.shutdowns, 1);
    assert_socket_untouched(peer);
    hr_conn_close(c);
    assert_int_equal(fk.closes, 1);
    hr_conn_end_turn(&w);
    close(peer);
}

static void test_layer_blocked_write_keeps_committed_bytes(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_fake_conn(&peer, &fk_layer);
    hr_conn_send(c, "one|", 4);
    hr_conn_send(c, "two|", 4);
    hr_conn_send(c, "three", 5);
    fk.blocked = true;
    fk.committed = 8; /* the layer took "one|two|" before it blocked */
    hr_conn_end_turn(&w);
    assert_true(c->flags & HR_CONN_WRITE_BLOCKED);
    hr_conn_drop_queued(c); /* a slow consumer: "three" goes, the committed bytes stay */
    fk.blocked = false;
    fk.committed = 0;
    hr_conn_on_io(&w.loop, &c->io, EPOLLOUT);
    assert_false(c->flags & HR_CONN_WRITE_BLOCKED);
    hr_buf_append(&fk.out, "", 1);
    assert_string_equal((char *)fk.out.data, "one|two|");
    assert_int_equal(c->out.n, 0);
    assert_socket_untouched(peer);
    close(peer);
}

static void test_layer_partial_writes_resume(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_fake_conn(&peer, &fk_layer);
    fk.write_limit = 3;
    hr_conn_send(c, "abcdefgh", 8);
    hr_conn_end_turn(&w); /* the layer takes 3 bytes a call until all is out */
    hr_buf_append(&fk.out, "", 1);
    assert_string_equal((char *)fk.out.data, "abcdefgh");
    assert_int_equal(fk.writevs, 3);
    assert_int_equal(c->out.n, 0);
    close(peer);
}

static void test_layer_start_stage_runs_first(void **state)
{
    (void)state;
    int peer;
    hr_conn *c = make_fake_conn(&peer, &fk_stage);
    fk.start_waits = 1;
    fk.input = "early";
    hr_conn_on_io(&w.loop, &c->io, EPOLLOUT);
    assert_int_equal(fk.starts, 1);
    assert_int_equal(fk.reads, 0); /* nothing is read while the stage waits */
    assert_int_equal(seen.len, 0);
    /* the stage finishes on an EPOLLOUT-only event: what followed it is read at once */
    hr_conn_on_io(&w.loop, &c->io, EPOLLOUT);
    assert_int_equal(fk.starts, 2);
    assert_true(c->layer == &fk_layer);
    assert_int_equal(seen.len, 6);
    assert_memory_equal(seen.data, "early|", 6);
    hr_conn_on_io(&w.loop, &c->io, EPOLLIN);
    assert_int_equal(fk.starts, 2); /* a finished stage is not run again */
    close(peer);
}

/* ---- socketless connections (HTTP/2 streams) and the on_flush hook ---------- */

static void test_virtual_conn_fed_paused_and_closed(void **state)
{
    (void)state;
    hr_buf_free(&fk.out);
    memset(&fk, 0, sizeof(fk));
    size_t before = w.nconns;
    hr_conn *c = hr_conn_open_virtual(&w, &fk_layer, HR_CONN_TLS);
    c->vt = &rec_vt;
    assert_int_equal(c->io.fd, -1);
    assert_int_equal(w.nconns, before + 1);
    assert_int_equal(hr_conn_socket(c), -1);
    consume_keep = 2; /* the transport leaves a partial unit */
    assert_int_equal(hr_conn_feed(c, (uint8_t *)"abcd", 4), 0);
    consume_keep = 0;
    assert_int_equal(hr_conn_feed(c, (uint8_t *)"ef", 2), 0); /* presented after the leftover */
    assert_int_equal(seen.len, 10);
    assert_memory_equal(seen.data, "abcd|cdef|", 10);
    hr_conn_pause_reading(c);
    assert_int_equal(hr_conn_feed(c, (uint8_t *)"gh", 2), 0); /* kept while paused */
    assert_int_equal(seen.len, 10);
    hr_conn_resume_reading(c);
    hr_conn_run_ready(&w);
    assert_memory_equal(seen.data + 10, "gh|", 3);
    hr_conn_send(c, "out", 3);
    hr_conn_end_turn(&w);
    assert_int_equal(fk.out.len, 3); /* written through its layer */
    hr_conn_close(c);
    assert_int_equal(fk.closes, 1);
    assert_int_equal(atomic_load(&srv.total_connections), 0); /* sockets only */
    hr_conn_end_turn(&w);
    assert_int_equal(w.nconns, before);
}

static int flush_order; /* 1: the plain conn flushed, 2: then on_flush ran */
static void order_on_flush(hr_conn *c)
{
    (void)c;
    assert_int_equal(flush_order, 1);
    flush_order = 2;
}
static ssize_t order_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    if (!flush_order) flush_order = 1;
    return fk_writev(c, iov, cnt);
}
static const hr_conn_layer_ops order_ops = {.read = fk_read, .writev = order_writev, .shutdown = fk_shutdown,
                                            .name = "order"};
static hr_conn_layer order_layer = {.ops = &order_ops};
static const hr_conn_vt late_vt = {.on_data = rec_on_data, .on_eof = rec_on_eof, .on_timer = rec_on_timer,
                                   .on_free = rec_on_free, .on_flush = order_on_flush, .name = "late"};

static void test_on_flush_runs_after_the_others(void **state)
{
    (void)state;
    hr_buf_free(&fk.out);
    memset(&fk, 0, sizeof(fk));
    flush_order = 0;
    hr_conn *late = hr_conn_open_virtual(&w, &fk_layer, 0);
    late->vt = &late_vt;
    hr_conn *other = hr_conn_open_virtual(&w, &order_layer, 0);
    other->vt = &rec_vt;
    hr_conn_want_flush(late); /* listed first, nothing queued */
    hr_conn_send(other, "x", 1);
    hr_conn_end_turn(&w);
    assert_int_equal(flush_order, 2);
    hr_conn_close(late);
    hr_conn_close(other);
    hr_conn_end_turn(&w);
}

/* hr_conn_send_owned queues the caller's buffer as it is; what a layer holds
 * (hr_conn_layer_hold) counts in the queue's cost and herald_queued_bytes. */
static void test_owned_send_and_layer_hold(void **state)
{
    (void)state;
    hr_buf_free(&fk.out);
    memset(&fk, 0, sizeof(fk));
    hr_conn *c = hr_conn_open_virtual(&w, &fk_layer, 0);
    c->vt = &rec_vt;
    uint8_t *bytes = hr_malloc(5);
    memcpy(bytes, "owned", 5);
    hr_conn_send_owned(c, bytes, 5);
    assert_int_equal(c->out.bytes, 5 + HR_CONN_ENTRY_COST);
    assert_int_equal(atomic_load(&w.stats.queued_bytes), 5 + HR_CONN_ENTRY_COST);
    hr_conn_end_turn(&w);
    assert_int_equal(fk.out.len, 5);
    assert_memory_equal(fk.out.data, "owned", 5);
    assert_int_equal(c->out.bytes, 0);
    hr_conn_layer_hold(c, 100); /* the layer keeps 100 bytes it took */
    assert_int_equal(c->out.bytes, 100);
    assert_int_equal(hr_conn_write_now(c), 100);
    assert_int_equal(atomic_load(&w.stats.queued_bytes), 100);
    hr_conn_layer_hold(c, -40);
    assert_int_equal(c->out.bytes, 60);
    hr_conn_layer_hold(c, -60);
    assert_int_equal(atomic_load(&w.stats.queued_bytes), 0);
    hr_conn_close_after_flush(c);
    hr_conn_send_owned(c, hr_malloc(3), 3); /* closing: freed, not queued (ASan: no leak) */
    assert_int_equal(c->out.n, 0);
    hr_conn_close(c);
    hr_conn_end_turn(&w);
}

/* A transport with read_to_eof reads a FIN that came with the data in the
 * same edge (EPOLLRDHUP); others stop at the drained read. */
static const hr_conn_vt eof_vt = {.on_data = rec_on_data, .on_eof = rec_on_eof, .on_timer = rec_on_timer,
                                  .on_free = rec_on_free, .name = "eof", .read_to_eof = true};

static void test_read_to_eof_reads_the_fin_of_the_edge(void **state)
{
    (void)state;
    for (int flag = 0; flag < 2; flag++) {
        int peer;
        hr_conn *c = make_conn(&peer);
        c->vt = flag ? &eof_vt : &rec_vt;
        assert_int_equal(write(peer, "abc", 3), 3);
        shutdown(peer, SHUT_WR);
        eofs = 0;
        hr_conn_on_io(&w.loop, &c->io, EPOLLIN | EPOLLRDHUP);
        assert_int_equal(eofs, flag); /* rec_on_eof closes */
        if (!flag) hr_conn_close(c);
        hr_conn_end_turn(&w);
        close(peer);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_wait_for_end_of_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drained_rings_of_every_size_are_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_entry_costs_its_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_pool_bounded_by_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_write_resumes_on_epollout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftover_kept_and_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_pauses_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_backlog_stops_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_last_coalesces_pongs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_files_pause_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_after_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layer_carries_reads_writes_files_shutdown_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layer_blocked_write_keeps_committed_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layer_partial_writes_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layer_start_stage_runs_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtual_conn_fed_paused_and_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_flush_runs_after_the_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owned_send_and_layer_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_to_eof_reads_the_fin_of_the_edge, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
