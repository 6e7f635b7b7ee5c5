/* logbench.c - throwaway measurement behind the durable engine's storage
 * choice (docs/architecture.md "Durable log"): records of 64 B and 4 KiB
 * written for 3 s with a group commit every 100 ms, (a) into an
 * append-only segment of CRC-framed records (write(2) per 256 KiB batch,
 * fdatasync per interval), (b) into LMDB (one put per record, one
 * transaction committed per interval).
 * Build: cc -O2 bench/logbench.c -o /tmp/logbench -lz -llmdb
 * Run:   /tmp/logbench DIR */
#include <lmdb.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void seglog(const char *dir, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/seg.log", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static uint8_t buf[1 << 18];
    uint8_t rec[8192];
    memset(rec, 'x', sizeof rec);
    size_t used = 0, n = 0;
    double t0 = now(), last = t0, maxsync = 0;
    while (now() - t0 < 3) {
        uint32_t len = (uint32_t)size, crc = (uint32_t)crc32(0, rec, len);
        if (used + len + 8 > sizeof buf) {
            if (write(fd, buf, used) != (ssize_t)used) abort();
            used = 0;
        }
        memcpy(buf + used, &len, 4);
        memcpy(buf + used + 4, &crc, 4);
        memcpy(buf + used + 8, rec, len);
        used += len + 8;
        n++;
        if ((n & 63) == 0 && now() - last >= 0.1) {
            if (write(fd, buf, used) != (ssize_t)used) abort();
            used = 0;
            double s = now();
            fdatasync(fd);
            if (now() - s > maxsync) maxsync = now() - s;
            last = now();
        }
    }
    double el = now() - t0;
    printf("segment log  %5zu B: %9.0f records/s %7.1f MB/s, slowest fdatasync %.1f ms\n", size, n / el,
           n * (size + 8) / el / 1e6, maxsync * 1e3);
    close(fd);
    unlink(path);
}

static void lmdb(const char *dir, size_t size)
{
    MDB_env *env;
    mdb_env_create(&env);
    mdb_env_set_mapsize(env, (size_t)8 << 30);
    if (mdb_env_open(env, dir, MDB_NOSUBDIR * 0, 0644)) abort();
    MDB_txn *txn;
    MDB_dbi dbi;
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    uint8_t rec[8192];
    memset(rec, 'x', sizeof rec);
    size_t n = 0;
    double t0 = now(), last = t0, maxsync = 0;
    while (now() - t0 < 3) {
        uint64_t key = __builtin_bswap64(++n);
        MDB_val k = {8, &key}, v = {size, rec};
        if (mdb_put(txn, dbi, &k, &v, MDB_APPEND)) abort();
        if ((n & 63) == 0 && now() - last >= 0.1) {
            double s = now();
            mdb_txn_commit(txn);
            if (now() - s > maxsync) maxsync = now() - s;
            mdb_txn_begin(env, NULL, 0, &txn);
            last = now();
        }
    }
    mdb_txn_commit(txn);
    double el = now() - t0;
    printf("lmdb         %5zu B: %9.0f records/s %7.1f MB/s, slowest commit %.1f ms\n", size, n / el,
           n * (size + 8) / el / 1e6, maxsync * 1e3);
    mdb_env_close(env);
    char p[512];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    seglog(dir, 64);
    seglog(dir, 4096);
    lmdb(dir, 64);
    lmdb(dir, 4096);
    return 0;
}
