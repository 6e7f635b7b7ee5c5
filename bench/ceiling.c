/* ceiling.c - the fan-out ceiling: the least work a WebSocket broadcast server
 * can do on one core, to measure Herald against (issue 4, docs/benchmarks.md).
 *
 * One thread, one epoll loop, the URL scheme of the ws-node peer so that
 * `herald bench --server ceiling` (= ws-node's scheme) drives it unchanged:
 *   GET /sub/<channel> + WebSocket upgrade   subscribe (RFC 6455, no extensions)
 *   POST /pub/<channel> (keep-alive, pipelined)  publish the body, 202
 *   GET /pub/<channel> + WebSocket upgrade   publish every text/binary frame's
 *                                            payload (the chat workload: one
 *                                            publisher connection per room)
 * A WebSocket publication costs what the chat workload's must: read a frame,
 * unmask it, find its room (looked up by name once, at the upgrade: the
 * frame names no room), frame it into the arena; the members get it in
 * the turn's writev.
 *
 * What makes it the ceiling (DESIGN.md, "the coalesced loop"): a publication
 * is framed ONCE into a per-turn arena; at the end of the loop turn every
 * subscriber of a channel that got publications is sent everything it is
 * owed in ONE writev whose iovecs all point into that arena — no per-
 * subscriber copy, no queue entry, no allocation. Only a short write copies
 * the unsent tail into that subscriber's backlog (written on EPOLLOUT).
 * Nothing else: no history, offsets, presence, auth, pings, timeouts,
 * deflate, UTF-8 validation or cross-thread hand-off — which is why it is a
 * ceiling and not a server. A write() per delivery is ~15x slower here and
 * would not be a ceiling.
 *
 * usage: herald-ceiling [--port P] [--max-backlog BYTES]   (binds 127.0.0.1) */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define MAX_HEAD 8192
#define MAX_BODY (1024 * 1024)
#define MAX_CHANNELS 65536
#define IOV_BATCH 1024

typedef struct chan chan;

typedef enum { C_HTTP, C_SUB, C_PUB } cstate;

typedef struct conn {
    int fd;
    cstate state;
    chan *ch;                 /* subscribers and WebSocket publishers: their channel */
    uint32_t slot;            /* index in ch->subs */
    char *in;                 /* unparsed request or frame bytes (HTTP, C_PUB) */
    size_t in_len;
    char *out;                /* backlog: bytes not yet accepted by the kernel */
    size_t out_len, out_off, out_cap;
    bool want_out;
} conn;

struct chan {
    char name[64];
    conn **subs;
    uint32_t nsubs, cap;
    uint32_t first, nframes;  /* this turn's frames of this channel: iov[first .. first+nframes) */
    bool dirty;
    chan *next_dirty;
};

static int ep;
static size_t max_backlog = 64u << 20;
static chan *chans;
static uint32_t nchans;
static chan *dirty;
/* the turn's arena: frames framed once, pointed at by every subscriber's writev */
static char *arena;
static size_t arena_len, arena_cap;
static struct { size_t off, len; chan *ch; } *frames;
static uint32_t nframes, frames_cap;
static struct iovec iov[IOV_BATCH];
static conn **pubs_out;       /* HTTP connections with a response to write this turn */
static uint32_t npubs_out, pubs_out_cap;
static conn **dead;           /* closed this turn, freed at its end */
static uint32_t ndead, dead_cap;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "ceiling: out of memory\n");
        exit(1);
    }
    return q;
}

static void set_events(conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Close now, free at the end of the turn (events and lists of this turn may
 * still name it; they skip fd < 0). */
static void conn_close(conn *c)
{
    if (c->fd < 0) return;
    if (c->state == C_SUB && c->ch) {
        chan *ch = c->ch;
        conn *last = ch->subs[--ch->nsubs];
        ch->subs[c->slot] = last;
        last->slot = c->slot;
    }
    close(c->fd);
    c->fd = -1;
    if (ndead == dead_cap) {
        dead_cap = dead_cap ? dead_cap * 2 : 64;
        dead = xrealloc(dead, dead_cap * sizeof(*dead));
    }
    dead[ndead++] = c;
}

static void backlog_add(conn *c, const char *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            c->out_cap = (c->out_len + n) * 2;
            c->out = xrealloc(c->out, c->out_cap);
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* Write the backlog; false when the connection was closed. */
static bool backlog_flush(conn *c)
{
    if (c->fd < 0) return false;
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {
            conn_close(c);
            return false;
        }
        c->out_off += (size_t)n;
    }
    bool pending = c->out_off < c->out_len;
    if (!pending) {
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_off = c->out_cap = 0;
    }
    if (pending != c->want_out) {
        c->want_out = pending;
        set_events(c, EPOLLIN | (pending ? EPOLLOUT : 0));
    }
    return true;
}

/* Send iov[0..cnt) (total bytes) to c: straight to the kernel when nothing
 * is waiting, else behind the backlog. */
static void send_iov(conn *c, int cnt, size_t total)
{
    if (c->out_len > c->out_off) {
        for (int i = 0; i < cnt; i++) backlog_add(c, iov[i].iov_base, iov[i].iov_len);
    } else {
        ssize_t n;
        do n = writev(c->fd, iov, cnt);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN) {
            conn_close(c);
            return;
        }
        size_t done = n < 0 ? 0 : (size_t)n;
        if (done == total) return;
        for (int i = 0; i < cnt; i++) {
            if (done >= iov[i].iov_len) {
                done -= iov[i].iov_len;
                continue;
            }
            backlog_add(c, (char *)iov[i].iov_base + done, iov[i].iov_len - done);
            done = 0;
        }
    }
    if (c->out_len - c->out_off > max_backlog) {
        fprintf(stderr, "ceiling: slow subscriber dropped (%zu bytes behind)\n", c->out_len - c->out_off);
        conn_close(c);
        return;
    }
    if (!c->want_out) {
        c->want_out = true;
        set_events(c, EPOLLIN | EPOLLOUT);
    }
}

/* The channel called name (created on first use), through an open-addressed
 * index of FNV-1a hashes (2 * MAX_CHANNELS slots, 0 = empty, else index + 1). */
static uint32_t chan_index[2 * MAX_CHANNELS];

static chan *chan_get(const char *name, size_t n)
{
    if (n == 0 || n >= sizeof(chans[0].name)) return NULL;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)name[i]) * 16777619u;
    for (uint32_t s = h % (2 * MAX_CHANNELS);; s = (s + 1) % (2 * MAX_CHANNELS)) {
        uint32_t k = chan_index[s];
        if (k == 0) {
            if (nchans == MAX_CHANNELS) return NULL;
            chan *ch = &chans[nchans++];
            memset(ch, 0, sizeof(*ch));
            memcpy(ch->name, name, n);
            chan_index[s] = nchans;
            return ch;
        }
        chan *ch = &chans[k - 1];
        if (strlen(ch->name) == n && memcmp(ch->name, name, n) == 0) return ch;
    }
}

/* Frame a publication once into the turn's arena (unmasking the body with
 * mask when it came in a client's frame). */
static void publish(chan *ch, const char *body, size_t len, const uint8_t *mask)
{
    size_t need = arena_len + len + 10;
    if (need > arena_cap) {
        arena_cap = need * 2;
        arena = xrealloc(arena, arena_cap);
    }
    char *h = arena + arena_len;
    size_t hl;
    h[0] = (char)0x81; /* FIN + text */
    if (len < 126) {
        h[1] = (char)len;
        hl = 2;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (char)(len >> 8);
        h[3] = (char)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    memcpy(h + hl, body, len);
    if (mask)
        for (size_t i = 0; i < len; i++) h[hl + i] ^= (char)mask[i & 3];
    if (nframes == frames_cap) {
        frames_cap = frames_cap ? frames_cap * 2 : 256;
        frames = xrealloc(frames, frames_cap * sizeof(*frames));
    }
    frames[nframes].off = arena_len;
    frames[nframes].len = hl + len;
    frames[nframes].ch = ch;
    nframes++;
    arena_len += hl + len;
    if (!ch->dirty) {
        ch->dirty = true;
        ch->nframes = 0;
        ch->next_dirty = dirty;
        dirty = ch;
    }
    ch->nframes++;
}

/* End of the loop turn: every subscriber of every channel that got
 * publications gets them all in one writev (IOV_BATCH frames at a time). */
static void flush_turn(void)
{
    if (!dirty) return;
    /* frames of one channel are contiguous in iov order: sort by channel */
    static struct iovec *all;
    static uint32_t all_cap;
    if (nframes > all_cap) {
        all_cap = nframes * 2;
        all = xrealloc(all, all_cap * sizeof(*all));
    }
    uint32_t pos = 0;
    for (chan *ch = dirty; ch; ch = ch->next_dirty) {
        ch->first = pos;
        pos += ch->nframes;
        ch->nframes = 0;
    }
    for (uint32_t i = 0; i < nframes; i++) {
        chan *ch = frames[i].ch;
        all[ch->first + ch->nframes].iov_base = arena + frames[i].off;
        all[ch->first + ch->nframes].iov_len = frames[i].len;
        ch->nframes++;
    }
    for (chan *ch = dirty; ch; ch = ch->next_dirty) {
        for (uint32_t b = 0; b < ch->nframes; b += IOV_BATCH) {
            int cnt = (int)(ch->nframes - b < IOV_BATCH ? ch->nframes - b : IOV_BATCH);
            size_t total = 0;
            for (int i = 0; i < cnt; i++) {
                iov[i] = all[ch->first + b + (uint32_t)i];
                total += iov[i].iov_len;
            }
            /* walk backwards: conn_close swaps the last subscriber into the hole */
            for (uint32_t s = ch->nsubs; s-- > 0;) {
                if (s >= ch->nsubs) continue;
                send_iov(ch->subs[s], cnt, total);
            }
        }
        ch->dirty = false;
    }
    dirty = NULL;
    nframes = 0;
    arena_len = 0;
}

static const char *find_header(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n), *end = head + n;
    while (p && p + 1 < end) {
        p++;
        if ((size_t)(end - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            const char *e = memchr(v, '\r', (size_t)(end - v));
            if (!e) return NULL;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

static void reply(conn *c, const char *s)
{
    if (c->out_len == c->out_off) {
        if (npubs_out == pubs_out_cap) {
            pubs_out_cap = pubs_out_cap ? pubs_out_cap * 2 : 64;
            pubs_out = xrealloc(pubs_out, pubs_out_cap * sizeof(*pubs_out));
        }
        pubs_out[npubs_out++] = c;
    }
    backlog_add(c, s, strlen(s));
}

/* Answer the WebSocket upgrade; a subscriber joins the channel, a publisher
 * (C_PUB) only remembers it. */
static bool upgrade(conn *c, const char *head, size_t hn, const char *name, size_t nn, cstate st)
{
    size_t kl;
    const char *key = find_header(head, hn, "Sec-WebSocket-Key", &kl);
    chan *ch = chan_get(name, nn);
    if (!key || kl > 64 || !ch) {
        reply(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return false;
    }
    char cat[128];
    memcpy(cat, key, kl);
    memcpy(cat + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    EVP_Digest(cat, kl + 36, md, &mdl, EVP_sha1(), NULL);
    char acc[64], resp[256];
    EVP_EncodeBlock((unsigned char *)acc, md, (int)mdl);
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    c->state = st;
    c->ch = ch;
    if (st == C_SUB) {
        if (ch->nsubs == ch->cap) {
            ch->cap = ch->cap ? ch->cap * 2 : 16;
            ch->subs = xrealloc(ch->subs, ch->cap * sizeof(conn *));
        }
        c->slot = ch->nsubs;
        ch->subs[ch->nsubs++] = c;
    }
    reply(c, resp);
    return true;
}

/* Keep buf[off..len) (a partial request or frame) for the next read. */
static bool keep_rest(conn *c, const char *buf, size_t off, size_t len)
{
    size_t left = len - off;
    char *keep = NULL;
    if (left) {
        keep = malloc(left);
        if (!keep) return false;
        memcpy(keep, buf + off, left);
    }
    free(c->in);
    c->in = keep;
    c->in_len = left;
    return true;
}

/* The bytes to parse: data itself, or the kept partial input with data
 * appended (then *buf is c->in). Returns their length. */
static size_t gather(conn *c, const char *data, size_t n, const char **buf)
{
    *buf = data;
    if (!c->in_len) return n;
    c->in = xrealloc(c->in, c->in_len + n);
    memcpy(c->in + c->in_len, data, n);
    c->in_len += n;
    *buf = c->in;
    return c->in_len;
}

/* A WebSocket publisher's bytes: publish the payload of every complete text,
 * binary or continuation frame into its channel, answer a close frame and go,
 * skip pings and pongs; keep a partial frame. false: close. */
static bool on_frames(conn *c, const char *data, size_t n)
{
    const char *buf;
    size_t len = gather(c, data, n, &buf);
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *f = (const uint8_t *)buf + off;
        size_t avail = len - off, hl = 2, pl = f[1] & 0x7f;
        if (!(f[1] & 0x80)) return false; /* a client's frames are masked */
        if (pl == 126) {
            if (avail < 4) break;
            pl = (size_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (pl == 127) {
            if (avail < 10) break;
            pl = 0;
            for (int i = 0; i < 8; i++) pl = pl << 8 | f[2 + i];
            hl = 10;
        }
        if (pl > MAX_BODY) return false;
        if (avail < hl + 4 + pl) break;
        int op = f[0] & 0x0f;
        if (op == 8) {
            static const char close_frame[2] = {(char)0x88, 0};
            (void)!write(c->fd, close_frame, 2);
            return false;
        }
        if (op <= 2) publish(c->ch, (const char *)f + hl + 4, pl, f + hl);
        off += hl + 4 + pl;
    }
    return keep_rest(c, buf, off, len);
}

/* Parse complete requests from data; keep a partial one. false: close. */
static bool on_http(conn *c, const char *data, size_t n)
{
    const char *buf;
    size_t len = gather(c, data, n, &buf);
    size_t off = 0;
    while (off < len && c->state == C_HTTP) {
        const char *p = buf + off;
        size_t avail = len - off;
        const char *eoh = memmem(p, avail, "\r\n\r\n", 4);
        if (!eoh) {
            if (avail > MAX_HEAD) return false;
            break;
        }
        size_t hn = (size_t)(eoh - p) + 4;
        size_t cl = 0, vl;
        const char *v = find_header(p, hn, "Content-Length", &vl);
        if (v) cl = strtoul(v, NULL, 10);
        if (cl > MAX_BODY) return false;
        if (avail < hn + cl) break;
        if (hn > 10 && memcmp(p, "POST /pub/", 10) == 0) {
            const char *nm = p + 10, *sp = memchr(nm, ' ', hn - 10);
            chan *ch = sp ? chan_get(nm, (size_t)(sp - nm)) : NULL;
            if (!ch) return false;
            publish(ch, p + hn, cl, NULL);
            reply(c, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else if (hn > 9 && (memcmp(p, "GET /sub/", 9) == 0 || memcmp(p, "GET /pub/", 9) == 0)) {
            const char *nm = p + 9, *e = nm;
            while (e < p + hn && (isalnum((unsigned char)*e) || *e == '_')) e++;
            off += hn + cl;
            if (!upgrade(c, p, hn, nm, (size_t)(e - nm), p[5] == 's' ? C_SUB : C_PUB)) return false;
            /* a subscriber sends nothing more we care about; the frames
             * a publisher sent behind its request are read now */
            char *old = c->in;
            c->in = NULL;
            c->in_len = 0;
            bool ok = off == len || c->state != C_PUB || on_frames(c, buf + off, len - off);
            free(old);
            return ok;
        } else {
            reply(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
        off += hn + cl;
    }
    return keep_rest(c, buf, off, len);
}

static void on_readable(conn *c, char *rbuf)
{
    for (;;) {
        ssize_t n = read(c->fd, rbuf, READ_BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        if (c->state == C_SUB) {
            /* a close frame (opcode 8, masked): answer and go; ignore the rest */
            if ((rbuf[0] & 0x0f) == 8) {
                static const char close_frame[2] = {(char)0x88, 0};
                (void)!write(c->fd, close_frame, 2);
                conn_close(c);
                return;
            }
        } else if (c->state == C_PUB ? !on_frames(c, rbuf, (size_t)n) : !on_http(c, rbuf, (size_t)n)) {
            conn_close(c);
            return;
        }
        if ((size_t)n < READ_BUF) return;
    }
}

int main(int argc, char **argv)
{
    int port = 8090;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--max-backlog") == 0 && i + 1 < argc) max_backlog = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--port P] [--max-backlog BYTES]\n"
                            "  a minimal coalescing WebSocket broadcast server on 127.0.0.1 (one thread):\n"
                            "  GET /sub/<channel> (WebSocket), POST /pub/<channel> (body = message),\n"
                            "  GET /pub/<channel> (WebSocket: every frame's payload is a message)\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    chans = calloc(MAX_CHANNELS, sizeof(chan));
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (!chans || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0) {
        perror("ceiling: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
    fprintf(stderr, "ceiling on 127.0.0.1:%d pid %d\n", port, (int)getpid());
    static char rbuf[READ_BUF];
    static struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, -1);
        if (n < 0 && errno == EINTR) continue;
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    conn *nc = calloc(1, sizeof(*nc));
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && !backlog_flush(c)) continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) && c->fd >= 0) on_readable(c, rbuf);
        }
        /* responses to publishers, then the coalesced fan-out */
        for (uint32_t i = 0; i < npubs_out; i++) backlog_flush(pubs_out[i]);
        npubs_out = 0;
        flush_turn();
        for (uint32_t i = 0; i < ndead; i++) {
            free(dead[i]->in);
            free(dead[i]->out);
            free(dead[i]);
        }
        ndead = 0;
    }
}
