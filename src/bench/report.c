/* report.c - `herald bench` results: /proc sampling of the server under
 * test, the JSON report (the contract in docs/benchmarks.md) and the human
 * summary. */
#include "bench/internal.h"

#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- /proc ------------------------------------------------------------------------ */

/* Parent pid and utime + stime ticks from /proc/PID/stat; false if gone. */
static bool read_stat(int64_t pid, int64_t *ppid, uint64_t *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p) return false;
    /* after ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
    char state;
    long long pp;
    unsigned long long ut, st;
    if (sscanf(p + 2, "%c %lld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &pp, &ut, &st) != 4)
        return false;
    if (ppid) *ppid = pp;
    if (ticks) *ticks = ut + st;
    return true;
}

static int64_t read_rss(int64_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%" PRId64 "/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int64_t kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* pid and its descendants (nginx: the master and its workers). */
static size_t proc_tree(int64_t root, int64_t *out, size_t max)
{
    size_t n = 0;
    if (!read_stat(root, NULL, NULL)) return 0;
    out[n++] = root;
    DIR *d = opendir("/proc");
    if (!d) return n;
    int64_t pids[4096], ppids[4096];
    size_t np = 0;
    struct dirent *e;
    while ((e = readdir(d)) && np < HR_ARRAY_LEN(pids)) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        int64_t pid = strtoll(e->d_name, NULL, 10), pp;
        if (pid == root || !read_stat(pid, &pp, NULL)) continue;
        pids[np] = pid;
        ppids[np++] = pp;
    }
    closedir(d);
    for (size_t k = 0; k < n && n < max; k++) /* breadth first over the parent links */
        for (size_t i = 0; i < np && n < max; i++)
            if (ppids[i] == out[k]) out[n++] = pids[i];
    return n;
}

int64_t bench_proc_rss(int64_t pid, uint32_t *nprocs)
{
    int64_t pids[256];
    size_t n = proc_tree(pid, pids, HR_ARRAY_LEN(pids));
    if (nprocs) *nprocs = (uint32_t)n;
    if (!n) return -1;
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t r = read_rss(pids[i]);
        if (r > 0) sum += r;
    }
    return sum;
}

/* One process's CPU (user + system, its ended threads included) in seconds: from its
 * CPU-time clock, nanosecond precise, so that a short ramp of a few milliseconds does not
 * read as 0; from /proc/PID/stat's clock ticks (10 ms) where that clock cannot be read. */
static double proc_cpu_one(int64_t pid)
{
    clockid_t id;
    struct timespec ts;
    if (clock_getcpuclockid((pid_t)pid, &id) == 0 && clock_gettime(id, &ts) == 0)
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    uint64_t t;
    return read_stat(pid, NULL, &t) ? (double)t / (double)sysconf(_SC_CLK_TCK) : 0;
}

double bench_proc_cpu(int64_t pid)
{
    int64_t pids[256];
    size_t n = proc_tree(pid, pids, HR_ARRAY_LEN(pids));
    if (!n) return -1;
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += proc_cpu_one(pids[i]);
    return sum;
}

double bench_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static json_t *jnum(double v) { return json_real(v); }
static json_t *jint(uint64_t v) { return json_integer((json_int_t)v); }
static json_t *jms(uint64_t ns) { return json_real((double)ns / 1e6); }
static json_t *jopt_int(int64_t v) { return v >= 0 ? json_integer((json_int_t)v) : json_null(); }

static json_t *params_json(const hr_bench_opts *o, double timeout)
{
    json_t *p = json_object();
    json_object_set_new(p, "server", json_string(hr_bench_server_name(o->server)));
    json_object_set_new(p, "host", json_string(o->host));
    json_object_set_new(p, "port", json_integer(o->port));
    json_object_set_new(p, "api_key_set", json_boolean(o->api_key[0] != '\0'));
    json_object_set_new(p, "transport", json_string(hr_bench_transport_name(o->transport)));
    json_object_set_new(p, "subscribers", jint(o->subscribers));
    json_object_set_new(p, "channels", jint(o->channels));
    json_object_set_new(p, "channel_prefix", json_string(o->prefix));
    json_object_set_new(p, "connect_rate", jnum(o->connect_rate));
    json_object_set_new(p, "source_ips", jint(o->source_ips));
    json_object_set_new(p, "publish_rate", jnum(o->publish_rate));
    json_object_set_new(p, "publishers", jint(o->publishers));
    json_object_set_new(p, "payload_bytes", jint(o->payload_bytes));
    json_object_set_new(p, "publish_via", json_string(o->publish_via == HR_BENCH_VIA_WS ? "ws" : "api"));
    json_object_set_new(p, "duration", jnum(o->duration));
    json_object_set_new(p, "warmup", jnum(o->warmup));
    json_object_set_new(p, "churn", jnum(o->churn));
    json_object_set_new(p, "server_pid", o->server_pid ? json_integer((json_int_t)o->server_pid) : json_null());
    json_object_set_new(p, "threads", jint(o->threads));
    json_t *jo = json_array();
    if (o->json_path[0]) json_array_append_new(jo, json_string(o->json_path));
    if (o->json_stdout) json_array_append_new(jo, json_string("-"));
    json_object_set_new(p, "json", jo);
    json_object_set_new(p, "quiet", json_boolean(o->quiet));
    json_object_set_new(p, "scenario", json_string(o->scenario));
    json_object_set_new(p, "timeout", jnum(timeout));
    json_object_set_new(p, "pipeline", jint(o->pipeline));
    json_object_set_new(p, "connect_concurrency", jint(o->connect_concurrency));
    json_object_set_new(p, "drain", jnum(o->drain));
    json_object_set_new(p, "tls", json_boolean(o->tls));
    return p;
}

static json_t *pct_json(const hr_hist *h, bool p999)
{
    json_t *j = json_object();
    if (!h->count) {
        const char *keys[] = {"p50", "p95", "p99", "p99_9", "max", "min", "mean"};
        for (size_t i = 0; i < HR_ARRAY_LEN(keys); i++)
            if (p999 || strcmp(keys[i], "p99_9") != 0) json_object_set_new(j, keys[i], json_null());
        json_object_set_new(j, "count", jint(0));
        return j;
    }
    json_object_set_new(j, "p50", jms(hr_hist_percentile(h, 50)));
    json_object_set_new(j, "p95", jms(hr_hist_percentile(h, 95)));
    json_object_set_new(j, "p99", jms(hr_hist_percentile(h, 99)));
    if (p999) json_object_set_new(j, "p99_9", jms(hr_hist_percentile(h, 99.9)));
    json_object_set_new(j, "max", jms(h->max));
    json_object_set_new(j, "min", jms(h->min));
    json_object_set_new(j, "mean", json_real(hr_hist_mean(h) / 1e6));
    json_object_set_new(j, "count", jint(h->count));
    return j;
}

static void fmt_bytes(char *out, size_t n, double v)
{
    if (v < 10 * 1024 && v > -10 * 1024) snprintf(out, n, "%.0f B", v);
    else if (v < 10 * 1024 * 1024) snprintf(out, n, "%.1f KiB", v / 1024);
    else snprintf(out, n, "%.1f MiB", v / 1048576);
}

static void fmt_rate(char *out, size_t n, double v)
{
    if (v >= 1e6) snprintf(out, n, "%.2fM", v / 1e6);
    else if (v >= 1e4) snprintf(out, n, "%.1fk", v / 1e3);
    else snprintf(out, n, "%.0f", v);
}

int bench_report(bench *b, hr_hist *lat, hr_hist *hs)
{
    const hr_bench_opts *o = &b->o;
    uint64_t opened = 0, failed = 0, received = 0, delivered = 0, in_time = 0, expected = 0, dups = 0, reord = 0,
             unparsed = 0, misrouted = 0, by_server = 0, churn_closed = 0, churn_reopened = 0, churn_failed = 0,
             churn_win = 0, errs_other = 0;
    for (uint32_t i = 0; i < o->threads; i++) {
        const bthread *t = &b->th[i];
        opened += t->ramp_ok;
        failed += t->ramp_failed;
        received += t->received;
        delivered += t->delivered;
        in_time += t->delivered_in_time;
        expected += t->expected;
        dups += t->dups;
        reord += t->reordered;
        unparsed += t->unparsed;
        misrouted += t->misrouted;
        by_server += t->closed_by_server;
        churn_closed += t->churn_closed;
        churn_reopened += t->churn_reopened;
        churn_failed += t->churn_failed;
        churn_win += t->churn_reopened_window;
        errs_other += t->errs_other;
    }
    uint64_t published = 0, pub_ok = 0, pub_err = 0;
    for (uint64_t c = 0; c < o->channels; c++) {
        const bchan *ch = &b->chans[c];
        uint64_t ms = atomic_load(&ch->ms_seq), me = atomic_load(&ch->me_seq), nx = atomic_load(&ch->next_seq);
        if (ms == UINT64_MAX) continue;
        uint64_t end = me != UINT64_MAX ? me : nx;
        if (end > ms) published += end - ms;
    }
    for (uint32_t j = 0; j < b->npubs; j++) {
        pub_ok += b->pubs[j].ok;
        pub_err += b->pubs[j].errors;
    }
    uint64_t lost = expected > delivered ? expected - delivered : 0;
    double measured = b->t_me && b->t_end >= b->t_ms ? (double)(HR_MIN(b->t_end, b->t_me) - b->t_ms) / 1e9 : 0;
    if (measured < 0) measured = 0;
    double ramp_s = b->t_ramp_end ? (double)(b->t_ramp_end - b->t_start) / 1e9 : (double)(b->t_end - b->t_start) / 1e9;
    bool api = o->publish_via == HR_BENCH_VIA_API;
    if (!b->failure[0] && api && o->publish_rate > 0 && published > 0 && pub_ok == 0 && b->t_me)
        snprintf(b->failure, sizeof(b->failure), "no publication was accepted (%" PRIu64 " API errors; see errors)",
                 pub_err);
    bool ok = b->failure[0] == '\0';
    double srv_cpu = -1, self_cpu = -1;
    if (measured > 0 && b->srv_cpu0 >= 0 && b->srv_cpu1 >= 0) srv_cpu = (b->srv_cpu1 - b->srv_cpu0) / measured * 100;
    if (measured > 0 && b->self_cpu0 >= 0 && b->self_cpu1 >= 0) self_cpu = (b->self_cpu1 - b->self_cpu0) / measured * 100;
    /* the server's CPU for the ramp (and the 250 ms settle after it): per connection opened */
    double ramp_cpu = b->srv_cpu_start >= 0 && b->srv_cpu_connected >= 0 ? b->srv_cpu_connected - b->srv_cpu_start : -1;
    bool have_bpc = b->rss_before >= 0 && b->rss_connected >= 0 && opened;
    double bpc = have_bpc ? (double)(b->rss_connected - b->rss_before) / (double)opened : 0;

    /* errors: the run's failure first, then the threads' (merged by message) */
    json_t *errors = json_array();
    if (b->failure[0]) json_array_append_new(errors, json_string(b->failure));
    bench_err merged[64];
    size_t nm = 0;
    for (uint32_t i = 0; i < o->threads; i++)
        for (uint32_t k = 0; k < b->th[i].nerrs; k++) {
            const bench_err *e = &b->th[i].errs[k];
            size_t m = 0;
            while (m < nm && strcmp(merged[m].msg, e->msg) != 0) m++;
            if (m < nm) merged[m].count += e->count;
            else if (nm < HR_ARRAY_LEN(merged)) merged[nm++] = *e;
        }
    for (size_t m = 0; m < nm && m < 10; m++) {
        char line[BENCH_ERR_LEN + 32];
        if (merged[m].count > 1) snprintf(line, sizeof(line), "%.199s (x%" PRIu64 ")", merged[m].msg, merged[m].count);
        else snprintf(line, sizeof(line), "%.199s", merged[m].msg);
        json_array_append_new(errors, json_string(line));
    }
    if (nm > 10 || errs_other) {
        char line[80];
        snprintf(line, sizeof(line), "... and more kinds of errors");
        json_array_append_new(errors, json_string(line));
    }

    json_t *j = json_object();
    json_object_set_new(j, "scenario", json_string(o->scenario));
    json_object_set_new(j, "server", json_string(hr_bench_server_name(o->server)));
    json_object_set_new(j, "transport", json_string(hr_bench_transport_name(o->transport)));
    json_object_set_new(j, "params", params_json(o, hr_bench_timeout(o)));

    json_t *conns = json_object();
    json_object_set_new(conns, "target", jint(o->subscribers));
    json_object_set_new(conns, "opened", jint(opened));
    json_object_set_new(conns, "failed", jint(failed));
    json_object_set_new(conns, "per_second", jnum(ramp_s > 0 ? (double)opened / ramp_s : 0));
    json_object_set_new(conns, "ramp_seconds", jnum(ramp_s));
    json_object_set_new(conns, "handshake_ms", pct_json(hs, true));
    json_object_set_new(conns, "closed_by_server", jint(by_server));
    json_t *churn = json_object();
    json_object_set_new(churn, "rate", jnum(o->churn));
    json_object_set_new(churn, "closed", jint(churn_closed));
    json_object_set_new(churn, "reopened", jint(churn_reopened));
    json_object_set_new(churn, "failed", jint(churn_failed));
    json_object_set_new(churn, "per_second", jnum(measured > 0 ? (double)churn_win / measured : 0));
    json_object_set_new(conns, "churn", churn);
    json_object_set_new(j, "connections", conns);

    json_t *msgs = json_object();
    json_object_set_new(msgs, "published", jint(published));
    json_object_set_new(msgs, "expected", jint(expected));
    json_object_set_new(msgs, "delivered", jint(delivered));
    json_object_set_new(msgs, "lost", jint(lost));
    json_object_set_new(msgs, "duplicates", jint(dups));
    json_object_set_new(msgs, "reordered", jint(reord));
    json_object_set_new(msgs, "per_second", jnum(measured > 0 ? (double)in_time / measured : 0));
    json_object_set_new(msgs, "publish_target", jint((uint64_t)(o->publish_rate * o->duration + 0.5)));
    json_object_set_new(msgs, "publish_per_second", jnum(measured > 0 ? (double)published / measured : 0));
    json_object_set_new(msgs, "publish_errors", jint(pub_err));
    json_object_set_new(msgs, "publishers", jint(b->npubs)); /* effective: one per channel at most */
    json_object_set_new(msgs, "received_total", jint(received));
    json_object_set_new(msgs, "unparsed", jint(unparsed));
    json_object_set_new(msgs, "misrouted", jint(misrouted));
    json_object_set_new(msgs, "payload_bytes", jint(o->payload_bytes));
    json_object_set_new(j, "messages", msgs);

    json_object_set_new(j, "latency_ms", pct_json(lat, true));

    json_t *sp = json_object();
    json_object_set_new(sp, "pid", o->server_pid ? json_integer((json_int_t)o->server_pid) : json_null());
    json_object_set_new(sp, "processes", o->server_pid ? jint(b->srv_procs) : json_null());
    json_object_set_new(sp, "rss_before", jopt_int(b->rss_before));
    json_object_set_new(sp, "rss_connected", jopt_int(b->rss_connected));
    json_object_set_new(sp, "rss_end", jopt_int(b->rss_end));
    json_object_set_new(sp, "bytes_per_connection", have_bpc ? jnum(bpc) : json_null());
    json_object_set_new(sp, "cpu_percent", srv_cpu >= 0 ? jnum(srv_cpu) : json_null());
    json_object_set_new(sp, "ramp_cpu_seconds", ramp_cpu >= 0 ? jnum(ramp_cpu) : json_null());
    json_object_set_new(sp, "ramp_cpu_us_per_connection",
                        ramp_cpu >= 0 && opened ? jnum(ramp_cpu / (double)opened * 1e6) : json_null());
    json_object_set_new(j, "server_process", sp);

    json_t *bp = json_object();
    json_object_set_new(bp, "cpu_percent", self_cpu >= 0 ? jnum(self_cpu) : json_null());
    json_object_set_new(bp, "cpu_seconds", jnum(b->self_cpu_total));
    json_object_set_new(bp, "threads", jint(o->threads));
    json_object_set_new(j, "bench_process", bp);

    json_t *dur = json_object();
    json_object_set_new(dur, "ramp", jnum(ramp_s));
    json_object_set_new(dur, "measured", jnum(measured));
    json_object_set_new(dur, "drain", jnum(b->t_drain && b->t_end > b->t_drain ? (double)(b->t_end - b->t_drain) / 1e9 : 0));
    json_object_set_new(dur, "total", jnum((double)(b->t_end - b->t_start) / 1e9));
    json_object_set_new(j, "seconds", dur);
    json_object_set_new(j, "errors", errors);
    json_object_set_new(j, "ok", json_boolean(ok));

    int rc = ok ? 0 : 1;
    bool json_stdout = o->json_stdout;
    if (json_stdout) {
        char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (txt) printf("%s\n", txt);
        free(txt);
        fflush(stdout);
    }
    if (o->json_path[0]) {
        if (json_dump_file(j, o->json_path, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) != 0) {
            fprintf(stderr, "herald bench: cannot write %s\n", o->json_path);
            rc = 1;
        }
    }

    if (!o->quiet) {
        FILE *f = json_stdout ? stderr : stdout;
        char a[32], c2[32], d[32], e[32], r1[32], r2[32];
        fprintf(f, "herald bench: %s, %s, %s\n", o->scenario, hr_bench_server_name(o->server),
                hr_bench_transport_name(o->transport));
        fprintf(f, "  connections  %" PRIu64 "/%" PRIu64 " opened in %.2f s (%.0f/s), %" PRIu64 " failed, %" PRIu64
                   " closed by the server",
                opened, o->subscribers, ramp_s, ramp_s > 0 ? (double)opened / ramp_s : 0, failed, by_server);
        if (hs->count)
            fprintf(f, "; handshake p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms",
                    (double)hr_hist_percentile(hs, 50) / 1e6, (double)hr_hist_percentile(hs, 99) / 1e6,
                    (double)hr_hist_percentile(hs, 99.9) / 1e6, (double)hs->max / 1e6);
        if (ramp_cpu >= 0 && opened)
            fprintf(f, "; server CPU %.2f s for the ramp (%.1f us per connection)", ramp_cpu,
                    ramp_cpu / (double)opened * 1e6);
        fprintf(f, "\n");
        if (o->churn > 0)
            fprintf(f, "  churn        %" PRIu64 " closed, %" PRIu64 " reopened (%.0f/s in the window), %" PRIu64
                       " failed\n",
                    churn_closed, churn_reopened, measured > 0 ? (double)churn_win / measured : 0, churn_failed);
        fmt_rate(r1, sizeof(r1), measured > 0 ? (double)in_time / measured : 0);
        fmt_rate(r2, sizeof(r2), measured > 0 ? (double)published / measured : 0);
        fprintf(f, "  messages     published %" PRIu64 " (%s/s, %" PRIu64 " errors), delivered %" PRIu64 "/%" PRIu64
                   " (%s/s), lost %" PRIu64 ", duplicates %" PRIu64 ", reordered %" PRIu64 "\n",
                published, r2, pub_err, delivered, expected, r1, lost, dups, reord);
        if (lat->count)
            fprintf(f, "  latency      p50 %.3f ms  p95 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
                    (double)hr_hist_percentile(lat, 50) / 1e6, (double)hr_hist_percentile(lat, 95) / 1e6,
                    (double)hr_hist_percentile(lat, 99) / 1e6, (double)hr_hist_percentile(lat, 99.9) / 1e6,
                    (double)lat->max / 1e6);
        if (o->server_pid) {
            fmt_bytes(a, sizeof(a), (double)b->rss_before);
            fmt_bytes(c2, sizeof(c2), (double)b->rss_connected);
            fmt_bytes(d, sizeof(d), (double)b->rss_end);
            if (have_bpc) fmt_bytes(e, sizeof(e), bpc);
            else snprintf(e, sizeof(e), "?");
            fprintf(f, "  server       pid %" PRId64 " (%u process%s): RSS %s -> %s connected -> %s at the end; %s per "
                       "connection; CPU %.0f%%\n",
                    o->server_pid, b->srv_procs, b->srv_procs == 1 ? "" : "es", a, c2, d, e, srv_cpu);
        }
        fprintf(f, "  bench        CPU %.0f%% over the window (%u thread%s%s)\n", self_cpu, o->threads,
                o->threads == 1 ? "" : "s",
                self_cpu > 90.0 * o->threads ? ": the generator is saturated, numbers are a lower bound" : "");
        for (size_t i = 0; i < json_array_size(errors) && i < 6; i++)
            fprintf(f, "  error        %s\n", json_string_value(json_array_get(errors, i)));
        fprintf(f, "  result       %s\n", ok ? "completed" : "FAILED");
    }
    json_decref(j);
    return rc;
}
