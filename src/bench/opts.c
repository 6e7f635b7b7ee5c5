/* opts.c - the `herald bench` command line (see bench.h). Every flag takes
 * `--flag value` or `--flag=value`; --scenario NAME first applies that
 * scenario's settings, which explicit flags then override. */
#include "bench/bench.h"
#include "hub/channel_name.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void hr_bench_opts_defaults(hr_bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->server = HR_BENCH_HERALD;
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 8080;
    o->transport = HR_BENCH_WS;
    o->subscribers = 100;
    o->channels = 1;
    snprintf(o->prefix, sizeof(o->prefix), "bench");
    o->connect_rate = 0;
    o->source_ips = 1;
    o->publish_rate = 100;
    o->publishers = 1;
    o->payload_bytes = 64;
    o->publish_via = HR_BENCH_VIA_API;
    o->duration = 10;
    o->warmup = 2;
    o->churn = 0;
    o->threads = 1;
    snprintf(o->scenario, sizeof(o->scenario), "custom");
    o->pipeline = 64;
    o->connect_concurrency = 1000;
    o->drain = 5;
}

const char *hr_bench_server_name(int server)
{
    switch (server) {
    case HR_BENCH_NCHAN: return "nchan";
    case HR_BENCH_WS_NODE: return "ws-node";
    case HR_BENCH_CEILING: return "ceiling";
    default: return "herald";
    }
}

void hr_bench_usage(FILE *f)
{
    fprintf(f,
            "Usage: herald bench [options]      load generator (docs/benchmarks.md)\n"
            "\n"
            "Target:\n"
            "  --server herald|nchan|ws-node|ceiling  URL scheme of the server under test (default herald;\n"
            "                                 ceiling = bench/ceiling.c, ws-node's scheme)\n"
            "  --host 127.0.0.1 --port 8080   its address\n"
            "  --api-key KEY                  Herald API key (default: $HERALD_API_KEY)\n"
            "  --server-pid PID               sample this process's RSS and CPU (and its children's)\n"
            "Subscribers:\n"
            "  --transport ws|sse|pusher      subscriber transport (default ws; pusher: /app/bench, the Pusher\n"
            "                                 protocol, with an app whose key and app_id are \"bench\")\n"
            "  --subscribers N                connections (default 100), round-robin over\n"
            "  --channels K                   channels PREFIX-0..K-1 (peers: PREFIX_0..; default 1)\n"
            "  --channel-prefix P             (default bench)\n"
            "  --connect-rate R               new connections per second while ramping (0 = at once)\n"
            "  --source-ips N                 bind to 127.0.0.1..127.0.0.N (64k ports each; default 1)\n"
            "  --churn R                      close and reopen R random subscribers per second\n"
            "Publishing:\n"
            "  --publish-rate R               publications per second in all (0 = idle; default 100)\n"
            "  --publish-via api|ws           HTTP API (default) or WebSocket frames\n"
            "  --publishers P                 HTTP keep-alive publisher connections (default 1)\n"
            "  --payload-bytes B              size of each publication (default 64)\n"
            "  --pipeline D                   API requests in flight per connection (default 64)\n"
            "Run:\n"
            "  --warmup S --duration S        seconds not counted, then counted (default 2, 10)\n"
            "  --threads N                    event-loop threads (default 1)\n"
            "  --connect-concurrency C        handshakes in flight at once (default 1000)\n"
            "  --drain S                      longest wait for late deliveries after the window (default 5)\n"
            "  --timeout S                    hard stop (default warmup + duration + ramp + 60)\n"
            "  --scenario NAME                label; idle, fanout, many-channels, chat, storm and\n"
            "                                 sse-fanout also preset the flags above (flags win)\n"
            "Output:\n"
            "  --json FILE|-                  write the JSON report (- = stdout; give both for both)\n"
            "  --quiet                        no progress lines and no summary\n"
            "  --tls                          connect over TLS (wss://, https://; a full handshake per\n"
            "                                 connection, the certificate is not verified)\n"
            "\n"
            "Exit status: 0 run completed (loss is reported, not an error), 1 run failed\n"
            "(nothing connected, nothing could be published, timeout), 2 bad usage.\n");
}

/* ---- scenarios ------------------------------------------------------------- */

static bool apply_scenario(hr_bench_opts *o, const char *name)
{
    if (strcmp(name, "idle") == 0) {
        o->subscribers = 10000;
        o->channels = 100;
        o->publish_rate = 0;
        o->warmup = 0;
    } else if (strcmp(name, "fanout") == 0) {
        o->subscribers = 1000;
        o->channels = 1;
        o->publish_rate = 1000;
    } else if (strcmp(name, "many-channels") == 0) {
        o->subscribers = 10000;
        o->channels = 1000;
        o->publish_rate = 1000;
    } else if (strcmp(name, "chat") == 0) {
        o->subscribers = 10000;
        o->channels = 1000;
        o->publish_rate = 1000;
        o->publish_via = HR_BENCH_VIA_WS;
    } else if (strcmp(name, "storm") == 0) {
        o->subscribers = 5000;
        o->channels = 10;
        o->publish_rate = 100;
        o->churn = 500;
        o->source_ips = 4;
    } else if (strcmp(name, "sse-fanout") == 0) {
        o->subscribers = 1000;
        o->channels = 1;
        o->publish_rate = 1000;
        o->transport = HR_BENCH_SSE;
    } else {
        return false;
    }
    return true;
}

/* ---- values ------------------------------------------------------------------- */

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return 2;
}

static bool parse_uint(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (!v[0] || v[0] == '-' || v[0] == '+' || v[0] == ' ') return false;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n < lo || n > hi) return false;
    *out = n;
    return true;
}

/* A non-negative number; with `seconds`, an optional unit s or ms. */
static bool parse_num(const char *v, bool seconds, double hi, double *out)
{
    char *end;
    if (!v[0] || v[0] == '-' || v[0] == '+' || v[0] == ' ') return false;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || !isfinite(d)) return false;
    if (seconds && strcmp(end, "ms") == 0) d /= 1000.0;
    else if (seconds && strcmp(end, "s") == 0) {
    } else if (*end) return false;
    if (d < 0 || d > hi) return false;
    *out = d;
    return true;
}

static bool copy_str(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap) return false;
    memcpy(dst, v, n + 1);
    return true;
}

/* ---- flags ---------------------------------------------------------------------- */

enum flag_id {
    F_SERVER, F_HOST, F_PORT, F_API_KEY, F_TRANSPORT, F_SUBSCRIBERS, F_CHANNELS, F_PREFIX, F_CONNECT_RATE,
    F_SOURCE_IPS, F_PUBLISH_RATE, F_PUBLISHERS, F_PAYLOAD, F_VIA, F_DURATION, F_WARMUP, F_CHURN, F_SERVER_PID,
    F_THREADS, F_JSON, F_QUIET, F_TLS, F_SCENARIO, F_TIMEOUT, F_PIPELINE, F_CONNECT_CONC, F_DRAIN, F_HELP,
};

static const struct flag {
    const char *name;
    int id;
    bool takes_value;
} flags[] = {
    {"server", F_SERVER, true},           {"host", F_HOST, true},
    {"port", F_PORT, true},               {"api-key", F_API_KEY, true},
    {"transport", F_TRANSPORT, true},     {"subscribers", F_SUBSCRIBERS, true},
    {"channels", F_CHANNELS, true},       {"channel-prefix", F_PREFIX, true},
    {"connect-rate", F_CONNECT_RATE, true}, {"source-ips", F_SOURCE_IPS, true},
    {"publish-rate", F_PUBLISH_RATE, true}, {"publishers", F_PUBLISHERS, true},
    {"payload-bytes", F_PAYLOAD, true},   {"publish-via", F_VIA, true},
    {"duration", F_DURATION, true},       {"warmup", F_WARMUP, true},
    {"churn", F_CHURN, true},             {"server-pid", F_SERVER_PID, true},
    {"threads", F_THREADS, true},         {"json", F_JSON, true},
    {"quiet", F_QUIET, false}, {"tls", F_TLS, false},            {"scenario", F_SCENARIO, true},
    {"timeout", F_TIMEOUT, true},         {"pipeline", F_PIPELINE, true},
    {"connect-concurrency", F_CONNECT_CONC, true}, {"drain", F_DRAIN, true},
    {"help", F_HELP, false},
};

static int set_flag(hr_bench_opts *o, int id, const char *arg, const char *v, bool *api_key_set, char *err,
                    size_t en)
{
    uint64_t u;
    double d;
    switch (id) {
    case F_SERVER:
        if (strcmp(v, "herald") == 0) o->server = HR_BENCH_HERALD;
        else if (strcmp(v, "nchan") == 0) o->server = HR_BENCH_NCHAN;
        else if (strcmp(v, "ws-node") == 0) o->server = HR_BENCH_WS_NODE;
        else if (strcmp(v, "ceiling") == 0) o->server = HR_BENCH_CEILING;
        else return fail(err, en, "%s: expected herald, nchan, ws-node or ceiling, got \"%s\"", arg, v);
        return 0;
    case F_HOST:
        if (!v[0] || !copy_str(o->host, sizeof(o->host), v)) return fail(err, en, "%s: bad host \"%s\"", arg, v);
        return 0;
    case F_PORT:
        if (!parse_uint(v, 1, 65535, &u)) return fail(err, en, "%s: expected a port 1..65535, got \"%s\"", arg, v);
        o->port = (int)u;
        return 0;
    case F_API_KEY:
        if (!copy_str(o->api_key, sizeof(o->api_key), v) || strpbrk(v, "\r\n"))
            return fail(err, en, "%s: bad API key", arg);
        *api_key_set = true;
        return 0;
    case F_TRANSPORT:
        if (strcmp(v, "ws") == 0) o->transport = HR_BENCH_WS;
        else if (strcmp(v, "sse") == 0) o->transport = HR_BENCH_SSE;
        else if (strcmp(v, "pusher") == 0) o->transport = HR_BENCH_PUSHER;
        else return fail(err, en, "%s: expected ws, sse or pusher, got \"%s\"", arg, v);
        return 0;
    case F_SUBSCRIBERS:
        if (!parse_uint(v, 1, 10000000, &u))
            return fail(err, en, "%s: expected an integer 1..10000000, got \"%s\"", arg, v);
        o->subscribers = u;
        return 0;
    case F_CHANNELS:
        if (!parse_uint(v, 1, 1000000, &u)) return fail(err, en, "%s: expected an integer 1..1000000, got \"%s\"", arg, v);
        o->channels = u;
        return 0;
    case F_PREFIX:
        if (!v[0] || !copy_str(o->prefix, sizeof(o->prefix), v))
            return fail(err, en, "%s: expected 1..%zu characters", arg, sizeof(o->prefix) - 1);
        return 0;
    case F_CONNECT_RATE:
        if (!parse_num(v, false, 1e9, &d)) return fail(err, en, "%s: expected a rate >= 0, got \"%s\"", arg, v);
        o->connect_rate = d;
        return 0;
    case F_SOURCE_IPS:
        if (!parse_uint(v, 1, 254, &u)) return fail(err, en, "%s: expected an integer 1..254, got \"%s\"", arg, v);
        o->source_ips = (uint32_t)u;
        return 0;
    case F_PUBLISH_RATE:
        if (!parse_num(v, false, 1e8, &d)) return fail(err, en, "%s: expected a rate >= 0, got \"%s\"", arg, v);
        o->publish_rate = d;
        return 0;
    case F_PUBLISHERS:
        if (!parse_uint(v, 1, 10000, &u)) return fail(err, en, "%s: expected an integer 1..10000, got \"%s\"", arg, v);
        o->publishers = (uint32_t)u;
        return 0;
    case F_PAYLOAD:
        if (!parse_uint(v, 0, 16u << 20, &u))
            return fail(err, en, "%s: expected a size 0..16777216, got \"%s\"", arg, v);
        o->payload_bytes = u;
        return 0;
    case F_VIA:
        if (strcmp(v, "api") == 0) o->publish_via = HR_BENCH_VIA_API;
        else if (strcmp(v, "ws") == 0) o->publish_via = HR_BENCH_VIA_WS;
        else return fail(err, en, "%s: expected api or ws, got \"%s\"", arg, v);
        return 0;
    case F_DURATION:
        if (!parse_num(v, true, 1e6, &d) || d <= 0)
            return fail(err, en, "%s: expected seconds > 0, got \"%s\"", arg, v);
        o->duration = d;
        return 0;
    case F_WARMUP:
        if (!parse_num(v, true, 1e6, &d)) return fail(err, en, "%s: expected seconds >= 0, got \"%s\"", arg, v);
        o->warmup = d;
        return 0;
    case F_CHURN:
        if (!parse_num(v, false, 1e7, &d)) return fail(err, en, "%s: expected a rate >= 0, got \"%s\"", arg, v);
        o->churn = d;
        return 0;
    case F_SERVER_PID:
        if (!parse_uint(v, 1, 1u << 30, &u)) return fail(err, en, "%s: expected a process id, got \"%s\"", arg, v);
        o->server_pid = (int64_t)u;
        return 0;
    case F_THREADS:
        if (!parse_uint(v, 1, 64, &u)) return fail(err, en, "%s: expected an integer 1..64, got \"%s\"", arg, v);
        o->threads = (uint32_t)u;
        return 0;
    case F_JSON:
        if (strcmp(v, "-") == 0) o->json_stdout = true;
        else if (!v[0] || !copy_str(o->json_path, sizeof(o->json_path), v))
            return fail(err, en, "%s: expected a file name or -", arg);
        return 0;
    case F_QUIET:
    case F_TLS: {
        bool *flag = id == F_QUIET ? &o->quiet : &o->tls;
        if (!v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0) *flag = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) *flag = false;
        else return fail(err, en, "%s: expected true or false, got \"%s\"", arg, v);
        return 0;
    }
    case F_SCENARIO:
        /* applied in the first pass */
        return 0;
    case F_TIMEOUT:
        if (!parse_num(v, true, 1e7, &d) || d <= 0)
            return fail(err, en, "%s: expected seconds > 0, got \"%s\"", arg, v);
        o->timeout = d;
        return 0;
    case F_PIPELINE:
        if (!parse_uint(v, 1, 1024, &u)) return fail(err, en, "%s: expected an integer 1..1024, got \"%s\"", arg, v);
        o->pipeline = (uint32_t)u;
        return 0;
    case F_CONNECT_CONC:
        if (!parse_uint(v, 1, 1000000, &u))
            return fail(err, en, "%s: expected an integer 1..1000000, got \"%s\"", arg, v);
        o->connect_concurrency = (uint32_t)u;
        return 0;
    case F_DRAIN:
        if (!parse_num(v, true, 3600, &d)) return fail(err, en, "%s: expected seconds >= 0, got \"%s\"", arg, v);
        o->drain = d;
        return 0;
    default:
        return fail(err, en, "%s: not handled", arg);
    }
}

static bool is_loopback_v4(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0;
}

static int validate(hr_bench_opts *o, char *err, size_t en)
{
    bool peer = o->server != HR_BENCH_HERALD;
    /* channel names */
    if (peer) {
        for (const char *p = o->prefix; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                return fail(err, en,
                            "--channel-prefix: the %s peer takes channel names of letters, digits and _ only, "
                            "got \"%s\"",
                            hr_bench_server_name(o->server), o->prefix);
    } else {
        char name[160];
        int n = snprintf(name, sizeof(name), "%s-%" PRIu64, o->prefix, o->channels - 1);
        if (strpbrk(o->prefix, "*>\"\\") || hr_chan_validate(name, (size_t)n, 255) != HR_CHAN_OK)
            return fail(err, en, "--channel-prefix: \"%s\" does not make valid Herald channel names (%s)", o->prefix,
                        hr_chan_error_text(hr_chan_validate(name, (size_t)n, 255)));
    }
    if (o->source_ips > 1 && !is_loopback_v4(o->host))
        return fail(err, en, "--source-ips %u needs a 127.x.x.x --host (the extra source addresses are loopback)",
                    o->source_ips);
    if (o->transport == HR_BENCH_PUSHER && (o->server != HR_BENCH_HERALD || o->publish_via != HR_BENCH_VIA_API))
        return fail(err, en, "--transport pusher: Herald's /app/ endpoint, publishing through the API");
    if (o->server == HR_BENCH_CEILING && o->tls)
        return fail(err, en, "--tls: the ceiling (bench/ceiling.c) has no TLS");
    if (o->server == HR_BENCH_CEILING && o->transport != HR_BENCH_WS)
        return fail(err, en, "--server ceiling: the ceiling (bench/ceiling.c) has WebSocket subscribers only");
    if (o->publish_via == HR_BENCH_VIA_WS) {
        if (o->server == HR_BENCH_WS_NODE)
            return fail(err, en, "--publish-via ws: the ws-node peer only publishes through POST /pub/<channel>");
        if (o->server == HR_BENCH_HERALD && o->transport != HR_BENCH_WS)
            return fail(err, en,
                        "--publish-via ws with --server herald publishes on the subscribers' own /ws/raw "
                        "connections: it needs --transport ws");
        if (o->server == HR_BENCH_HERALD && o->channels > o->subscribers)
            return fail(err, en, "--publish-via ws: every channel needs a subscriber to publish (--channels %" PRIu64
                                 " > --subscribers %" PRIu64 ")",
                        o->channels, o->subscribers);
    }
    if (o->server == HR_BENCH_HERALD && o->publish_via == HR_BENCH_VIA_API && o->publish_rate > 0 && !o->api_key[0])
        return fail(err, en, "--api-key is required to publish through Herald's API (or set HERALD_API_KEY)");
    if (o->churn > 0 && o->churn > (double)o->subscribers * 100)
        return fail(err, en, "--churn %.0f/s is more than 100 times --subscribers per second", o->churn);
    return 0;
}

int hr_bench_parse_args(hr_bench_opts *o, int argc, char **argv, int first, char *err, size_t errlen)
{
    hr_bench_opts_defaults(o);
    bool api_key_set = false;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = first; i < argc; i++) {
            const char *arg = argv[i];
            if (strncmp(arg, "--", 2) != 0 || !arg[2])
                return fail(err, errlen, "unexpected argument \"%s\" (see herald bench --help)", arg);
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            const struct flag *f = NULL;
            for (size_t k = 0; k < HR_ARRAY_LEN(flags); k++)
                if (strlen(flags[k].name) == nl && memcmp(flags[k].name, name, nl) == 0) f = &flags[k];
            if (!f) return fail(err, errlen, "unknown option \"%.*s\" (see herald bench --help)", (int)(nl + 2), arg);
            const char *v = eq ? eq + 1 : NULL;
            if (f->takes_value && !v) {
                if (i + 1 >= argc) return fail(err, errlen, "option --%s needs a value", f->name);
                v = argv[++i];
            }
            if (f->id == F_HELP) return 3;
            if (pass == 0) {
                if (f->id == F_SCENARIO) {
                    if (!v[0] || !copy_str(o->scenario, sizeof(o->scenario), v) || strpbrk(v, "\"\\\n\r"))
                        return fail(err, errlen, "--scenario: expected a name of at most %zu characters",
                                    sizeof(o->scenario) - 1);
                    apply_scenario(o, v);
                }
                continue;
            }
            int rc = set_flag(o, f->id, arg, v, &api_key_set, err, errlen);
            if (rc) return rc;
        }
    }
    if (!api_key_set) {
        const char *k = getenv("HERALD_API_KEY");
        if (k && k[0] && strlen(k) < sizeof(o->api_key) && !strpbrk(k, "\r\n")) copy_str(o->api_key, sizeof(o->api_key), k);
    }
    return validate(o, err, errlen);
}

double hr_bench_timeout(const hr_bench_opts *o)
{
    if (o->timeout > 0) return o->timeout;
    double ramp = o->connect_rate > 0 ? (double)o->subscribers / o->connect_rate : (double)o->subscribers / 2000.0;
    return o->warmup + o->duration + ramp + o->drain + 60.0;
}
