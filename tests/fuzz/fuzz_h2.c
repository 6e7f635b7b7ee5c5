/* fuzz_h2.c - libFuzzer target for transport/h2.c: the input (after the
 * client preface, which the target adds) is fed to an HTTP/2 connection in
 * pieces, with the end-of-turn flush between them, as the loop would. The
 * TCP connection's layer discards what is written; the stream conns run a
 * stub transport instead of HTTP/1.1 (no hub, engine or files), which
 * answers each request with one of five HTTP/1.1 responses chosen by the
 * request's length - Content-Length, chunked, 101 (then echoes the stream's
 * bytes: a WebSocket's path), close-delimited, or a close without an answer
 * - so the response parser, DATA, END_STREAM and RST_STREAM paths run too.
 * ASan/UBSan find the bugs; the target checks that every stream conn is
 * gone once the connection is closed, and that herald_queued_bytes is back
 * to 0 (every stream's pending bytes given back). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/opts.h"
#include "server/server.h"
#include "transport/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hr_config cfg;
static hr_transport_opts topt;
static hr_shared sh;
static hr_worker w;

static ssize_t sink_read(hr_conn *c, uint8_t *dst, size_t cap, bool *drained)
{
    (void)c, (void)dst, (void)cap;
    *drained = true;
    return HR_ERR_AGAIN;
}

static ssize_t sink_writev(hr_conn *c, const struct iovec *iov, int cnt)
{
    (void)c;
    ssize_t n = 0;
    for (int i = 0; i < cnt; i++) n += (ssize_t)iov[i].iov_len;
    return n;
}

static void sink_shutdown(hr_conn *c) { (void)c; }

static const hr_conn_layer_ops sink_ops = {
    .read = sink_read, .writev = sink_writev, .shutdown = sink_shutdown, .name = "fuzz-sink"};
static hr_conn_layer sink = {.ops = &sink_ops};

/* ---- the stub stream transport ---------------------------------------------- */

static const char *const answers[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-A: b\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: 1\n\n",
};

static ssize_t stub_on_data(hr_conn *c, uint8_t *data, size_t len)
{
    uintptr_t state = (uintptr_t)c->proto;
    if (state == 0) { /* the request: answer */
        unsigned pick = (unsigned)(len % 5);
        if (pick == 4) {
            hr_conn_close(c);
            return -1;
        }
        hr_conn_send(c, answers[pick], strlen(answers[pick]));
        if (pick == 3) hr_conn_close_after_flush(c);
        c->proto = (void *)(uintptr_t)(pick == 2 ? 2 : 1);
    } else if (state == 2) { /* the upgraded stream: echo */
        hr_conn_send(c, data, len);
    }
    return (ssize_t)len;
}

static void stub_on_timer(hr_conn *c) { hr_conn_close(c); }

static const hr_conn_vt stub_vt = {
    .on_data = stub_on_data, .on_eof = hr_conn_close, .on_timer = stub_on_timer, .on_shutdown = hr_conn_close,
    .name = "fuzz-stub", .kind = HR_CK_HTTP};

static void stub_attach(hr_conn *c) { hr_conn_set_transport(c, &stub_vt, NULL); }

/* ---- the target ------------------------------------------------------------------- */

static void init_once(void)
{
    static bool done;
    if (done) return;
    done = true;
    hr_config_defaults(&cfg);
    hr_opts_transport(&cfg, &topt);
    w.sh = &sh;
    w.opts = &topt;
    w.rbuf = hr_malloc(HR_READ_BUF_SIZE);
    w.static_fd = -1;
    if (hr_loop_init(&w.loop, &w) != 0) abort();
}

/* c is still open (a closed connection is freed at the end of the turn). */
static bool alive(const hr_conn *c)
{
    for (const hr_conn *p = w.conns; p; p = p->next)
        if (p == c) return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    hr_conn *c = hr_conn_open_virtual(&w, &sink, 0);
    if (hr_h2_attach_with(c, 0, stub_attach)) abort();
    /* pieces: the preface, then the input cut where a byte's low bits say (so frames split anywhere) */
    uint8_t *buf = malloc(HR_H2_PREFACE_LEN + size + 1);
    memcpy(buf, HR_H2_PREFACE, HR_H2_PREFACE_LEN);
    memcpy(buf + HR_H2_PREFACE_LEN, data, size);
    size_t total = HR_H2_PREFACE_LEN + size, pos = 0;
    while (pos < total && alive(c)) {
        size_t piece = pos < HR_H2_PREFACE_LEN ? HR_H2_PREFACE_LEN : 1 + (size_t)(buf[pos] & 0x3f) * 37;
        if (piece > total - pos) piece = total - pos;
        (void)hr_conn_feed(c, buf + pos, piece);
        hr_conn_end_turn(&w);
        pos += piece;
    }
    free(buf);
    if (alive(c)) hr_conn_close(c);
    hr_conn_end_turn(&w);
    if (w.conns || w.nconns) abort(); /* a stream conn outlived its connection */
    if (atomic_load(&w.stats.queued_bytes)) abort(); /* queued or pending bytes counted and never given back */
    return 0;
}
