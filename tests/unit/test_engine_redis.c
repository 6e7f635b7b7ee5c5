/* test_engine_redis.c - the Redis engine (engine/redis.c) and its
 * connection (engine/redis_conn.c) against a real redis-server started on a
 * free loopback port (skipped when redis-server is not installed): offsets
 * and one epoch, delivery in order through SUBSCRIBE after interest,
 * history queries and recovery completeness, idempotency keys, presence,
 * node announcements, a dead Redis (errors, not hangs), and channel
 * occupancy over two nodes (one event per cluster transition, a dead
 * node's channels vacated by the sweep). Callbacks run
 * on the engine's thread here (no worker: hr_engine_worker is -1), so the
 * test waits on a condition variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/engine.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t redis_pid;
static int redis_port;
static char addr[64];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;

static uint64_t delivered[256];
static char delivered_kind[256];
static size_t ndelivered;
static int disconnects;

static void deliver(void *hub, hr_pub *pub)
{
    (void)hub;
    pthread_mutex_lock(&mu);
    if (pub->kind == HR_PUB_DISCONNECT) disconnects++;
    else if (ndelivered < 256) {
        delivered_kind[ndelivered] = (char)pub->kind;
        delivered[ndelivered++] = pub->offset;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void signal_done(void)
{
    pthread_mutex_lock(&mu);
    done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Wait until *counter reaches n (bounded). */
static bool wait_for(int *counter, int n, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&mu);
    while (*counter < n)
        if (pthread_cond_timedwait(&cv, &mu, &ts)) break;
    bool ok = *counter >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static bool wait_delivered(size_t n, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        pthread_mutex_lock(&mu);
        bool ok = ndelivered >= n;
        pthread_mutex_unlock(&mu);
        if (ok) return true;
        usleep(10000);
    }
    return false;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static bool redis_up(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)redis_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (ok) {
        char buf[16];
        ok = write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof(buf)) > 0;
    }
    close(fd);
    return ok;
}

static void start_redis(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl("/usr/bin/redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !redis_up(); i++) usleep(20000);
}

static void stop_redis(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

static hr_engine *eng;

static hr_engine *new_node(const char *addrs, const char *id, uint64_t node_ttl_ms)
{
    hr_redis_opts o = {.addrs = addrs, .prefix = "t", .node_id = id, .node_address = "127.0.0.1:1",
                       .presence_ttl_ms = 60000, .node_ttl_ms = node_ttl_ms, .connect_timeout_ms = 1000,
                       .ping_interval_ms = 1000, .backoff_min_ms = 20, .backoff_max_ms = 200,
                       .max_pending = 1000, .max_reply = 1 << 20};
    char err[256] = "";
    hr_engine *e = hr_engine_redis_new(&o, deliver, NULL, err, sizeof(err));
    if (!e) fail_msg("engine: %s", err);
    return e;
}

static hr_engine *new_engine(const char *addrs) { return new_node(addrs, "n1", 30000); }

/* ---- synchronous wrappers ---------------------------------------------------------- */

typedef struct pubres {
    int err;
    uint64_t offset;
    char epoch[32];
} pubres;

static void on_pub(void *ud, int err, uint64_t offset, const char *epoch)
{
    pubres *r = ud;
    r->err = err;
    r->offset = offset;
    if (!err) snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    signal_done();
}

static hr_chan_opts opts = {.history_size = 5, .history_ttl_ms = 60000, .presence = true,
                            .idempotency_window_ms = 60000};

static pubres publish(const char *ch, const char *data, const char *key)
{
    pubres r = {0};
    hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, strlen(ch), data, strlen(data), NULL, 0);
    int want = done + 1;
    eng->vt->publish(eng, &opts, p, key, key ? strlen(key) : 0, on_pub, &r);
    hr_pub_unref(p);
    assert_true(wait_for(&done, want, 5000));
    return r;
}

typedef struct histres {
    int err;
    uint64_t offset;
    char epoch[32];
    uint64_t offs[16];
    char data[16][32];
    size_t n;
    bool complete;
} histres;

static void on_hist(void *ud, int err, const hr_history *h)
{
    histres *r = ud;
    r->err = err;
    if (!err) {
        r->offset = h->offset;
        snprintf(r->epoch, sizeof(r->epoch), "%s", h->epoch);
        r->n = h->n;
        r->complete = h->complete;
        for (size_t i = 0; i < h->n && i < 16; i++) {
            r->offs[i] = h->pubs[i]->offset;
            snprintf(r->data[i], sizeof(r->data[i]), "%s", h->pubs[i]->data);
        }
    }
    signal_done();
}

static histres history(const char *ch, hr_history_query q)
{
    histres r = {0};
    int want = done + 1;
    eng->vt->history(eng, &opts, ch, strlen(ch), &q, on_hist, &r);
    assert_true(wait_for(&done, want, 5000));
    return r;
}

typedef struct presres {
    int err;
    size_t n, users;
    char clients[8][40];
} presres;

static void on_pres(void *ud, int err, const hr_presence *p)
{
    presres *r = ud;
    r->err = err;
    if (!err) {
        r->n = p->n;
        r->users = p->users;
        for (size_t i = 0; i < p->n && i < 8; i++) snprintf(r->clients[i], 40, "%s", p->entries[i].client);
    }
    signal_done();
}

static void on_done(void *ud, int err)
{
    *(int *)ud = err;
    signal_done();
}

/* ---- tests ------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (access("/usr/bin/redis-server", X_OK) != 0) return 0;
    redis_port = free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", redis_port);
    start_redis();
    eng = new_engine(addr);
    /* the connection is up when a command goes through */
    for (int i = 0; i < 200; i++) {
        pubres r = publish("warmup", "0", NULL);
        if (!r.err) break;
        usleep(20000);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (eng) eng->vt->free(eng);
    eng = NULL;
    stop_redis();
    return 0;
}

#define NEED_REDIS()                                                                                       \
    do {                                                                                                   \
        if (!eng) skip();                                                                                  \
    } while (0)

/* The Redis engine has both tables, every cluster messaging entry set
 * (engine.h: callers test e->cluster only). */
static void test_storage_and_cluster(void **state)
{
    (void)state;
    NEED_REDIS();
    assert_non_null(eng->vt->publish);
    assert_non_null(eng->cluster);
    const hr_cluster_vt *c = eng->cluster;
    assert_true(c->interest && c->pattern_interest && c->broadcast && c->nodes && c->session_register &&
                c->session_send);
    assert_string_equal(eng->node_id, "n1");
}

static void test_offsets_epoch_and_delivery(void **state)
{
    (void)state;
    NEED_REDIS();
    ndelivered = 0;
    eng->cluster->interest(eng, "a", 1, true);
    /* the SUBSCRIBE goes before the history read on the same connection:
     * once the read is answered, the node receives the channel */
    histres h0 = history("a", (hr_history_query){.limit = 0});
    assert_int_equal(h0.err, 0);
    assert_int_equal(h0.offset, 0);
    pubres r1 = publish("a", "{\"x\":1}", NULL);
    pubres r2 = publish("a", "2", NULL);
    pubres r3 = publish("a", "3", NULL);
    assert_int_equal(r1.err, 0);
    assert_int_equal(r1.offset, 1);
    assert_int_equal(r2.offset, 2);
    assert_int_equal(r3.offset, 3);
    assert_string_equal(r1.epoch, h0.epoch);
    assert_string_equal(r3.epoch, h0.epoch);
    assert_true(wait_delivered(3, 3000));
    assert_int_equal(delivered[0], 1);
    assert_int_equal(delivered[1], 2);
    assert_int_equal(delivered[2], 3);
    /* join/leave events pass through too */
    hr_pub *ev = hr_pub_new(HR_PUB_JOIN, "a", 1, "", 0, "{\"client\":\"x\"}", 14);
    eng->vt->publish_event(eng, ev);
    hr_pub_unref(ev);
    assert_true(wait_delivered(4, 3000));
    assert_int_equal(delivered_kind[3], HR_PUB_JOIN);
    /* no interest: nothing delivered */
    eng->cluster->interest(eng, "a", 1, false);
    history("a", (hr_history_query){.limit = 0}); /* after the UNSUBSCRIBE */
    publish("a", "4", NULL);
    usleep(200000);
    assert_int_equal(ndelivered, 4);
}

static void test_history(void **state)
{
    (void)state;
    NEED_REDIS();
    for (int i = 1; i <= 7; i++) {
        char d[8];
        snprintf(d, sizeof(d), "%d", i);
        publish("h", d, NULL);
    }
    histres all = history("h", (hr_history_query){.limit = -1});
    assert_int_equal(all.offset, 7);
    assert_int_equal(all.n, 5); /* history_size */
    assert_int_equal(all.offs[0], 3);
    assert_string_equal(all.data[4], "7");
    histres rev = history("h", (hr_history_query){.limit = 2, .reverse = true});
    assert_int_equal(rev.n, 2);
    assert_int_equal(rev.offs[0], 7);
    assert_int_equal(rev.offs[1], 6);
    histres since = history("h", (hr_history_query){.has_since = true, .since_offset = 4, .since_epoch = all.epoch,
                                                    .limit = -1});
    assert_true(since.complete);
    assert_int_equal(since.n, 3);
    assert_int_equal(since.offs[0], 5);
    histres trimmed = history("h", (hr_history_query){.has_since = true, .since_offset = 1, .since_epoch = all.epoch,
                                                      .limit = -1});
    assert_false(trimmed.complete); /* 2 is gone */
    histres other = history("h", (hr_history_query){.has_since = true, .since_offset = 6, .since_epoch = "zzz",
                                                    .limit = -1});
    assert_false(other.complete);
    int err = -1, want = done + 1;
    eng->vt->history_remove(eng, "h", 1, on_done, &err);
    assert_true(wait_for(&done, want, 5000));
    assert_int_equal(err, 0);
    histres empty = history("h", (hr_history_query){.limit = -1});
    assert_int_equal(empty.n, 0);
    assert_int_equal(empty.offset, 7); /* offsets go on, the epoch stays */
    assert_string_equal(empty.epoch, all.epoch);
}

static void test_idempotency(void **state)
{
    (void)state;
    NEED_REDIS();
    pubres a = publish("i", "1", "key-1");
    pubres b = publish("i", "1", "key-1");
    pubres c = publish("i", "2", "key-2");
    assert_int_equal(a.offset, 1);
    assert_int_equal(b.offset, 1); /* the retry: the original */
    assert_int_equal(c.offset, 2);
    histres h = history("i", (hr_history_query){.limit = -1});
    assert_int_equal(h.n, 2);
}

static void test_presence_and_nodes(void **state)
{
    (void)state;
    NEED_REDIS();
    int err = -1, want = done + 1;
    eng->vt->presence_add(eng, "p", 1, "c1", "alice", "{\"k\":1}", on_done, &err);
    assert_true(wait_for(&done, want, 5000));
    assert_int_equal(err, 0);
    eng->vt->presence_add(eng, "p", 1, "c2", "alice", NULL, NULL, NULL);
    eng->vt->presence_add(eng, "p", 1, "c3", "bob", NULL, NULL, NULL);
    presres r = {0};
    want = done + 1;
    eng->vt->presence(eng, "p", 1, on_pres, &r);
    assert_true(wait_for(&done, want, 5000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.users, 2);
    eng->vt->presence_remove(eng, "p", 1, "c2", NULL, NULL);
    memset(&r, 0, sizeof(r));
    want = done + 1;
    eng->vt->presence(eng, "p", 1, on_pres, &r);
    assert_true(wait_for(&done, want, 5000));
    assert_int_equal(r.n, 2);
}

typedef struct nodesres {
    int err;
    char json[512];
} nodesres;

static void on_nodes(void *ud, int err, const char *json, size_t len)
{
    nodesres *r = ud;
    r->err = err;
    if (!err) snprintf(r->json, sizeof(r->json), "%.*s", (int)len, json);
    signal_done();
}

static void test_node_announcement(void **state)
{
    (void)state;
    NEED_REDIS();
    nodesres r = {0};
    for (int i = 0; i < 100; i++) {
        int want = done + 1;
        eng->cluster->nodes(eng, on_nodes, &r);
        assert_true(wait_for(&done, want, 5000));
        if (strstr(r.json, "\"id\":\"n1\"")) break;
        usleep(50000);
    }
    assert_int_equal(r.err, 0);
    assert_non_null(strstr(r.json, "\"id\":\"n1\""));
    assert_non_null(strstr(r.json, "\"address\":\"127.0.0.1:1\""));
}

/* Redis killed: operations fail fast; when it is back they work again and
 * the subscribers of the node's channels are told to recover. */
static void test_outage(void **state)
{
    (void)state;
    NEED_REDIS();
    eng->cluster->interest(eng, "o", 1, true);
    history("o", (hr_history_query){.limit = 0});
    disconnects = 0;
    stop_redis();
    pubres r = {0};
    for (int i = 0; i < 100; i++) { /* the loss is noticed at the first failed read */
        r = publish("o", "1", NULL);
        if (r.err) break;
        usleep(20000);
    }
    assert_true(r.err < 0);
    start_redis();
    for (int i = 0; i < 200; i++) {
        r = publish("o", "2", NULL);
        if (!r.err) break;
        usleep(20000);
    }
    assert_int_equal(r.err, 0);
    assert_true(wait_for(&disconnects, 1, 5000)); /* resync of channel "o" */
}

static void test_bad_address(void **state)
{
    (void)state;
    hr_redis_opts o = {.addrs = "nohostport"};
    char err[256] = "";
    assert_null(hr_engine_redis_new(&o, deliver, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "HOST:PORT"));
    o.addrs = "";
    assert_null(hr_engine_redis_new(&o, deliver, NULL, err, sizeof(err)));
}

/* ---- occupancy ------------------------------------------------------------------------ */

typedef struct occ_event {
    int node;                   /* which engine reported it (its hub pointer's tag) */
    bool occupied;
    uint64_t time_ms;
    char channel[32];
} occ_event;

static occ_event occ[64];
static int nocc;

static void on_occupancy(void *hub, const char *ch, size_t len, bool occupied, uint64_t time_ms)
{
    pthread_mutex_lock(&mu);
    if (nocc < 64) {
        occ[nocc].node = *(int *)hub;
        occ[nocc].time_ms = time_ms;
        occ[nocc].occupied = occupied;
        snprintf(occ[nocc].channel, sizeof(occ[nocc].channel), "%.*s", (int)len, ch);
    }
    nocc++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int tags[4] = {0, 1, 2, 3};

static hr_engine *occ_node(const char *id, int tag, uint64_t node_ttl_ms)
{
    hr_engine *e = new_node(addr, id, node_ttl_ms);
    e->hub = &tags[tag];
    e->occupancy = on_occupancy;
    return e;
}

/* Everything e queued before on channel ch's shard has been answered. */
static void barrier(hr_engine *e, const char *ch)
{
    histres r = {0};
    int want = done + 1;
    e->vt->history(e, &opts, ch, strlen(ch), &(hr_history_query){.limit = 0}, on_hist, &r);
    assert_true(wait_for(&done, want, 5000));
}

static void expect_occ(int i, int node, bool occupied, const char *ch)
{
    assert_int_equal(occ[i].node, node);
    assert_int_equal(occ[i].occupied, occupied);
    assert_string_equal(occ[i].channel, ch);
    assert_true(occ[i].time_ms > 1700000000000ull); /* Redis' clock, in ms */
}

/* Two nodes subscribe and leave one channel: one occupied (from the first
 * node), one vacated (from the last); a node that died is no member for the
 * next transition (its vacated is reported first). */
static void test_occupancy_two_nodes(void **state)
{
    (void)state;
    NEED_REDIS();
    nocc = 0;
    eng->hub = &tags[1];
    eng->occupancy = on_occupancy;
    hr_engine *n2 = occ_node("n2", 2, 30000);
    eng->cluster->interest(eng, "room", 4, true);
    assert_true(wait_for(&nocc, 1, 5000));
    expect_occ(0, 1, true, "room");
    n2->cluster->interest(n2, "room", 4, true);
    barrier(n2, "room");
    eng->cluster->interest(eng, "room", 4, false);
    barrier(eng, "room");
    assert_int_equal(nocc, 1);
    n2->cluster->interest(n2, "room", 4, false);
    assert_true(wait_for(&nocc, 2, 5000));
    expect_occ(1, 2, false, "room");
    /* again: a new transition, a new event */
    n2->cluster->interest(n2, "room", 4, true);
    assert_true(wait_for(&nocc, 3, 5000));
    expect_occ(2, 2, true, "room");
    n2->cluster->interest(n2, "room", 4, false);
    assert_true(wait_for(&nocc, 4, 5000));
    /* a node dies holding "lone": the next node to join reports its vacated, then occupied */
    hr_engine *d = occ_node("dying", 3, 300);
    d->cluster->interest(d, "lone", 4, true);
    assert_true(wait_for(&nocc, 5, 5000));
    expect_occ(4, 3, true, "lone");
    d->vt->free(d);
    usleep(600000); /* its alive key expires */
    n2->cluster->interest(n2, "lone", 4, true);
    assert_true(wait_for(&nocc, 7, 5000));
    expect_occ(5, 2, false, "lone");
    expect_occ(6, 2, true, "lone");
    n2->vt->free(n2);
}

/* A node dies holding a channel nobody else touches: a live node's sweep
 * reports its vacated, once. */
static void test_occupancy_sweep(void **state)
{
    (void)state;
    NEED_REDIS();
    nocc = 0;
    hr_engine *live = occ_node("live", 1, 600); /* sweeps every 200 ms */
    hr_engine *d = occ_node("dying", 2, 300);
    d->cluster->interest(d, "left", 4, true);
    assert_true(wait_for(&nocc, 1, 5000));
    d->vt->free(d);
    assert_true(wait_for(&nocc, 2, 5000));
    expect_occ(1, 1, false, "left");
    usleep(500000); /* more sweeps: nothing more */
    assert_int_equal(nocc, 2);
    live->vt->free(live);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_storage_and_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_epoch_and_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_and_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_announcement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_occupancy_two_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_occupancy_sweep, setup, teardown),
        cmocka_unit_test(test_bad_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
