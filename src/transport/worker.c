/* worker.c - the worker context's shared zlib streams (see worker.h): one
 * no-context-takeover compressor per window size and one decompressor per
 * worker, made on first use and freed by the server with the worker; and the
 * refusal access log (hr_worker_refused): every refusal is counted, and its
 * line goes through a per-worker token bucket on the loop clock so a flood of
 * refused connections cannot flood the log — what the bucket holds back is
 * counted and reported by the next line and by a log_suppressed line at most
 * once a second. */
#include "transport/worker.h"
#include "codec/http1.h"
#include "codec/pmdeflate.h"
#include "codec/urlquery.h"
#include "core/common.h"
#include "core/log.h"
#include "protocol/urlsubs.h"
#include "transport/proxy.h"

#include <string.h>

z_stream *hr_worker_deflater(hr_worker *w, int window_bits)
{
    if (window_bits < 9 || window_bits > 15) window_bits = 15;
    if (!w->deflaters[window_bits]) {
        z_stream *zs = hr_calloc(1, sizeof(*zs));
        if (hr_pmd_deflater_init(zs, (int)w->opts->ws_deflate_level, window_bits, (int)w->opts->ws_deflate_mem_level)) {
            hr_free(zs);
            return NULL;
        }
        w->deflaters[window_bits] = zs;
    }
    return w->deflaters[window_bits];
}

z_stream *hr_worker_inflater(hr_worker *w)
{
    if (!w->inflater) {
        z_stream *zs = hr_calloc(1, sizeof(*zs));
        if (hr_pmd_inflater_init(zs, 15)) {
            hr_free(zs);
            return NULL;
        }
        w->inflater = zs;
    }
    return w->inflater;
}

hr_refuse_reason hr_refuse_reason_of(int status)
{
    return status == 401 || status == 403 ? HR_REFUSE_TOKEN
           : status == 429               ? HR_REFUSE_LIMIT
           : status >= 500 && status < 600 ? HR_REFUSE_OVERLOAD
                                         : HR_REFUSE_BAD_REQUEST;
}

const char *hr_refuse_reason_name(hr_refuse_reason r)
{
    static const char *names[HR_REFUSE__N] = {"limit", "token", "origin", "overload", "bad_request"};
    return (unsigned)r < HR_REFUSE__N ? names[r] : "unknown";
}

/* The bucket: true when a line may be written now (*suppressed: the lines
 * held back since the last one); false when it is held back (counted, and
 * reported in a log_suppressed line when the last was a second ago). */
static bool refused_log_admit(hr_worker *w, uint64_t *suppressed)
{
    uint64_t rate = w->opts->log_refused_rate > 0 ? (uint64_t)w->opts->log_refused_rate : 0;
    if (!rate || !hr_log_on(HR_LOG_INFO)) return false;
    uint64_t now = hr_loop_now(&w->loop), full = rate * 1000;
    if (!w->refused_log_ms) w->refused_log_tokens = full; /* the first refusal: a full bucket */
    else w->refused_log_tokens = HR_MIN(full, w->refused_log_tokens + (now - w->refused_log_ms) * rate);
    w->refused_log_ms = now ? now : 1;
    if (w->refused_log_tokens >= 1000) {
        w->refused_log_tokens -= 1000;
        *suppressed = w->refused_log_pending;
        w->refused_log_pending = 0;
        return true;
    }
    w->refused_log_pending++;
    hr_stat_add(&w->stats.log_suppressed, 1);
    if (now - w->refused_log_noted_ms >= 1000) {
        hr_infoev("log_suppressed", HR_LOG_S("of", "conn_refused"), HR_LOG_U("count", w->refused_log_pending),
                  HR_LOG_I("rate", rate));
        w->refused_log_pending = 0;
        w->refused_log_noted_ms = now;
    }
    return false;
}

static const hr_http_request no_request;

/* The front end a request is for, by its path ("http" for any other). */
static const char *transport_of(const hr_http_request *req)
{
    static const struct { const char *path, *name; } t[] = {
        {"/ws", "ws"}, {"/ws/raw", "ws_raw"}, {"/ws/echo", "ws_echo"}, {"/sse", "sse"}, {"/stream", "stream"},
        {"/stream/send", "stream"}, {"/poll", "poll"}, {"/poll/open", "poll"}, {"/poll/send", "poll"},
    };
    if (req && req->path_len > 5 && memcmp(req->path, "/api/", 5) == 0) return "api";
    if (req && req->path_len >= 6 && memcmp(req->path, "/admin", 6) == 0) return "admin";
    for (size_t i = 0; req && i < HR_ARRAY_LEN(t); i++)
        if (req->path_len == strlen(t[i].path) && memcmp(req->path, t[i].path, req->path_len) == 0) return t[i].name;
    return "http";
}

void hr_worker_refused(hr_worker *w, hr_refuse_reason r, hr_conn *c, const hr_http_request *req,
                       const char *transport, int status, const char *detail)
{
    hr_worker_count_refused(w, r);
    uint64_t suppressed = 0;
    if (!refused_log_admit(w, &suppressed)) return;
    char remote[64] = "", chan[256];
    if (c) hr_client_addr(c, req ? req : &no_request, remote, sizeof(remote));
    const hr_http_header *ua = req ? hr_http_find_header(req, "user-agent") : NULL;
    size_t pos = 0, clen = 0;
    bool has_chan = req && req->query &&
                    hr_query_next(req->query, req->query_len, &pos, "channel", chan, sizeof(chan), &clen) > 0;
    hr_infoev("conn_refused", HR_LOG_S("remote", remote[0] ? remote : NULL), HR_LOG_S("transport", transport ? transport : transport_of(req)),
              HR_LOG_M("path", req ? req->path : NULL, req ? req->path_len : 0),
              HR_LOG_M("channel", has_chan ? chan : NULL, clen), HR_LOG_I(status >= 1000 ? "code" : "status", status),
              HR_LOG_S("reason", hr_refuse_reason_name(r)), HR_LOG_M("user_agent", ua ? ua->value : NULL, ua ? ua->value_len : 0),
              HR_LOG_S("detail", detail), HR_LOG_U("suppressed", suppressed));
}
