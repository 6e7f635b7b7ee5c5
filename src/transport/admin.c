/* admin.c - the admin web UI's HTTP side (see admin.h).
 *
 * GET /admin/ and /admin/<file> serve web/admin/ as embedded at build time
 * (transport/embedded.h), with a strict Content-Security-Policy (no inline
 * script), X-Frame-Options: DENY and nosniff. POST /admin/api/login checks
 * the password (ops/admin.c: constant time, failures spend the address's
 * auth-failure budget) and sets the session cookie; every other POST
 * /admin/api/<name> needs that cookie, the session's CSRF token in
 * X-Herald-CSRF and, when the browser sends one, an Origin equal to the
 * Host: then logout, token (the native protocol / SSE credential), or one
 * of the server API's methods an admin may run (hr_admin_may_call, an ops
 * rule), run by hr_api_call exactly as /api/<name>.
 *
 * The statistics snapshot (one small JSON object) is published to
 * $admin:stats through the engine's publish, not hr_op_publish - nobody may
 * publish there (ops.c) - so with Redis every node's snapshot reaches the
 * admin pages connected to any node. */
#include "transport/admin.h"
#include "transport/api.h"
#include "transport/embedded.h"
#include "transport/http.h"
#include "transport/worker.h"
#include "ops/admin.h"
#include "engine/pub.h"
#include "core/json.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define COOKIE_NAME "herald_admin"
#define SECURITY_HEADERS                                                                                      \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'\r\n"                     \
    "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
#define NO_STORE "Cache-Control: no-store\r\n" SECURITY_HEADERS

bool hr_admin_path(const char *path, size_t len)
{
    return (len == 6 && memcmp(path, "/admin", 6) == 0) || (len >= 7 && memcmp(path, "/admin/", 7) == 0);
}

static bool method_is(const hr_http_request *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

/* ---- files ---------------------------------------------------------------------- */

static void serve_file(hr_conn *c, const hr_http_request *req, bool close)
{
    bool head = method_is(req, "HEAD");
    if (!head && !method_is(req, "GET")) {
        hr_http_respond_error(c, 405, "Allow: GET, HEAD\r\n", "method not allowed", close);
        return;
    }
    if (req->path_len == 6) { /* /admin: its relative links need the slash */
        hr_http_respond(c, 301, NULL, "Location: /admin/\r\n", NULL, 0, head, close);
        return;
    }
    const char *name = req->path + 7;
    size_t nlen = req->path_len - 7;
    if (!nlen) {
        name = "index.html";
        nlen = 10;
    }
    for (const hr_embedded_file *f = hr_embedded_files; f->name; f++) {
        if (strlen(f->name) != nlen || memcmp(f->name, name, nlen) != 0) continue;
        hr_http_respond(c, 200, hr_http_content_type(f->name), "Cache-Control: no-cache\r\n" SECURITY_HEADERS, f->data,
                        f->len, head, close);
        return;
    }
    hr_http_respond_error(c, 404, NULL, "not found", close);
}

/* ---- requests ------------------------------------------------------------------- */

/* The value of cookie `name` in the Cookie header, or NULL. */
static const char *find_cookie(const hr_http_request *req, const char *name, size_t *len)
{
    const hr_http_header *h = hr_http_find_header(req, "cookie");
    size_t n = strlen(name);
    for (const char *p = h ? h->value : NULL, *end = p ? p + h->value_len : NULL; p && p < end;) {
        while (p < end && (*p == ' ' || *p == ';')) p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        if ((size_t)(stop - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') {
            *len = (size_t)(stop - p - (ptrdiff_t)n - 1);
            return p + n + 1;
        }
        p = stop;
    }
    return NULL;
}

static uint64_t now_of(hr_conn *c) { return hr_loop_now(&c->w->loop); }

/* The caller's session: cookie, CSRF header, same origin; false after
 * answering 403. */
static bool session_ok(hr_conn *c, const hr_http_request *req, bool close, const char **sid, size_t *sidlen)
{
    hr_admin *adm = c->w->proto->ops.admin;
    const hr_http_header *csrf = hr_http_find_header(req, "x-herald-csrf");
    *sid = find_cookie(req, COOKIE_NAME, sidlen);
    const char *why = NULL;
    bool foreign = hr_http_origin_check(req, NULL, 0) != 0;
    if (foreign) why = "cross-origin request refused";
    else if (!*sid) why = "not logged in";
    else {
        int rc = hr_admin_check(adm, *sid, *sidlen, csrf ? csrf->value : "", csrf ? csrf->value_len : 0, now_of(c));
        if (rc == HR_ADMIN_E_SESSION) why = "not logged in, or the session expired";
        else if (rc) why = "missing or wrong X-Herald-CSRF header";
    }
    if (why) hr_http_refuse(c, req, foreign ? HR_REFUSE_ORIGIN : HR_REFUSE_TOKEN, 403, NO_STORE, why, close);
    return why == NULL;
}

static void login(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close)
{
    if (hr_http_origin_check(req, NULL, 0) != 0) {
        hr_http_refuse(c, req, HR_REFUSE_ORIGIN, 403, NO_STORE, "cross-origin request refused", close);
        return;
    }
    json_t *j = json_loadb((const char *)body, len, 0, NULL);
    json_t *pw = json_object_get(j, "password");
    if (!json_is_string(pw)) {
        json_decref(j);
        hr_http_respond_error(c, 400, NO_STORE, "body must be {\"password\": \"...\"}", close);
        return;
    }
    hr_admin_session_ids ids;
    uint32_t retry_ms = 0;
    int rc = hr_admin_login(c->w->proto->ops.admin, c->w->sh->limits, c->ip_key, now_of(c), json_string_value(pw),
                            json_string_length(pw), &ids, &retry_ms);
    json_decref(j);
    char hdr[512];
    if (rc == HR_ADMIN_E_BANNED) {
        snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n" NO_STORE, (retry_ms + 999) / 1000);
        hr_http_refuse(c, req, HR_REFUSE_LIMIT, 429, hdr, "too many failed logins from this address: try again later",
                       close);
        return;
    }
    if (rc) {
        hr_http_refuse(c, req, HR_REFUSE_TOKEN, 401, NO_STORE, "wrong password", close);
        return;
    }
    bool tls = (c->flags & HR_CONN_TLS) != 0;
    snprintf(hdr, sizeof(hdr), "Set-Cookie: " COOKIE_NAME "=%s; Path=/admin; HttpOnly; SameSite=Strict%s\r\n" NO_STORE,
             ids.sid, tls ? "; Secure" : "");
    char out[128];
    int n = snprintf(out, sizeof(out), "{\"csrf\":\"%s\"}", ids.csrf);
    hr_http_respond(c, 200, "application/json", hdr, out, (size_t)n, false, close);
}

static void api(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close)
{
    const char *name = req->path + 11; /* after "/admin/api/" */
    size_t nlen = req->path_len - 11;
    bool is_login = nlen == 5 && memcmp(name, "login", 5) == 0, is_logout = nlen == 6 && !memcmp(name, "logout", 6),
         is_token = nlen == 5 && memcmp(name, "token", 5) == 0;
    if (!is_login && !is_logout && !is_token && !hr_admin_may_call(name, nlen)) {
        hr_http_respond_error(c, 404, NO_STORE, "unknown admin method", close);
        return;
    }
    if (!method_is(req, "POST")) {
        hr_http_respond_error(c, 405, "Allow: POST\r\n" NO_STORE, "admin actions take POST", close);
        return;
    }
    if (is_login) {
        login(c, req, body, len, close);
        return;
    }
    const char *sid;
    size_t sidlen;
    if (!session_ok(c, req, close, &sid, &sidlen)) return;
    hr_admin *adm = c->w->proto->ops.admin;
    if (is_logout) {
        hr_admin_logout(adm, sid, sidlen);
        hr_http_respond(c, 200, "application/json",
                        "Set-Cookie: " COOKIE_NAME "=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0\r\n" NO_STORE,
                        "{}", 2, false, close);
        return;
    }
    if (is_token) {
        char tok[HR_ADMIN_TOKEN_LEN + 1], out[HR_ADMIN_TOKEN_LEN + 64];
        if (hr_admin_token(adm, sid, sidlen, now_of(c), tok)) {
            hr_http_refuse(c, req, HR_REFUSE_TOKEN, 403, NO_STORE, "not logged in, or the session expired", close);
            return;
        }
        int n = snprintf(out, sizeof(out), "{\"token\":\"%s\",\"channel\":\"" HR_ADMIN_STATS_CHANNEL "\"}", tok);
        hr_http_respond(c, 200, "application/json", NO_STORE, out, (size_t)n, false, close);
        return;
    }
    hr_api_call(c, name, nlen, body, len, close);
}

void hr_admin_handle(hr_conn *c, const hr_http_request *req, const uint8_t *body, size_t len, bool close)
{
    if (!c->w->proto->ops.admin) {
        hr_http_respond_error(c, 404, NULL, "not found (the admin UI is off: admin.enabled)", close);
        return;
    }
    if (req->path_len >= 11 && memcmp(req->path, "/admin/api/", 11) == 0) api(c, req, body, len, close);
    else serve_file(c, req, close);
}

/* ---- statistics ----------------------------------------------------------------- */

struct hr_admin_stats {
    hr_timer timer;
    hr_worker *w;
    uint64_t interval_ms;
};

#define TOP_CHANNELS 10

/* This node's snapshot (docs/operations.md "Admin UI" lists the fields). */
static void snapshot(hr_worker *w, uint64_t interval_ms, hr_buf *b)
{
    hr_shared *sh = w->sh;
    hr_engine *e = sh->hub->engine;
    uint64_t conns = 0, ws = 0, out = 0, bytes = 0, in = 0, reqs = 0, deliveries = 0;
    for (int i = 0; i < sh->nworkers; i++) {
        hr_worker_stats *st = &sh->workers[i].stats;
        conns += atomic_load_explicit(&st->connections, memory_order_relaxed);
        ws += atomic_load_explicit(&st->websockets, memory_order_relaxed);
        out += atomic_load_explicit(&st->ws_messages_out, memory_order_relaxed);
        bytes += atomic_load_explicit(&st->bytes_out, memory_order_relaxed);
        in += atomic_load_explicit(&st->ws_messages_in, memory_order_relaxed);
        reqs += atomic_load_explicit(&st->http_requests, memory_order_relaxed);
        deliveries += atomic_load_explicit(&sh->workers[i].hub->delivered, memory_order_relaxed);
    }
    hr_hub_chan_count top[TOP_CHANNELS];
    uint64_t nchans = 0, nsubs = 0;
    size_t ntop = hr_hub_top_channels(sh->hub, top, TOP_CHANNELS, &nchans, &nsubs);
    hr_buf_append_str(b, "{\"node\":");
    const char *id = e->node_id ? e->node_id : sh->bound;
    hr_json_append_string(b, id, strlen(id));
    hr_buf_append_str(b, ",\"address\":");
    hr_json_append_string(b, sh->bound, strlen(sh->bound));
    hr_buf_printf(b,
                  ",\"version\":\"" HERALD_VERSION "\",\"time_ms\":%llu,\"uptime_ms\":%llu,\"interval_ms\":%llu,"
                  "\"connections\":%llu,\"websockets\":%llu,\"subscriptions\":%llu,\"channels\":%llu,"
                  "\"deliveries\":%llu,\"messages_out\":%llu,\"bytes_out\":%llu,\"messages_in\":%llu,\"http_requests\":%llu,"
                  "\"engine\":{\"name\":\"%s\",\"shards_down\":%d},\"top\":[",
                  (unsigned long long)hr_wall_ms(), (unsigned long long)(hr_now_ms() - sh->started_ms),
                  (unsigned long long)interval_ms, (unsigned long long)conns, (unsigned long long)ws,
                  (unsigned long long)nsubs, (unsigned long long)nchans, (unsigned long long)deliveries, (unsigned long long)out,
                  (unsigned long long)bytes, (unsigned long long)in, (unsigned long long)reqs, w->opts->engine,
                  e->vt->shards_down ? e->vt->shards_down(e) : 0);
    for (size_t i = 0; i < ntop; i++) {
        hr_buf_append_str(b, i ? ",{\"channel\":" : "{\"channel\":");
        hr_json_append_string(b, top[i].name, strlen(top[i].name));
        hr_buf_printf(b, ",\"subscribers\":%llu}", (unsigned long long)top[i].subscribers);
    }
    hr_buf_append_str(b, "]}");
}

static void on_stats_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    HR_UNUSED(ud), HR_UNUSED(err), HR_UNUSED(offset), HR_UNUSED(epoch);
}

static void on_stats_timer(hr_timer *t, void *data)
{
    HR_UNUSED(data);
    hr_admin_stats *s = HR_CONTAINER_OF(t, hr_admin_stats, timer);
    hr_worker *w = s->w;
    hr_engine *e = w->sh->hub->engine;
    if (!w->draining && e) {
        hr_buf b = HR_BUF_INIT;
        snapshot(w, s->interval_ms, &b);
        static const char ch[] = HR_ADMIN_STATS_CHANNEL;
        hr_pub *p = hr_pub_new(HR_PUB_MESSAGE, ch, sizeof(ch) - 1, (const char *)b.data, b.len, NULL, 0);
        hr_chan_opts o = {0}; /* no history, no presence: a snapshot is stale at the next one */
        e->vt->publish(e, &o, p, NULL, 0, on_stats_published, NULL);
        hr_pub_unref(p);
        hr_buf_free(&b);
    }
    hr_timer_start(&w->loop.wheel, &s->timer, s->interval_ms);
}

hr_admin_stats *hr_admin_stats_start(hr_worker *w, int64_t interval_ms)
{
    hr_admin_stats *s = hr_calloc(1, sizeof(*s));
    s->w = w;
    s->interval_ms = (uint64_t)interval_ms;
    hr_timer_init(&s->timer, on_stats_timer);
    hr_timer_start(&w->loop.wheel, &s->timer, s->interval_ms);
    return s;
}

void hr_admin_stats_free(hr_admin_stats *s)
{
    if (!s) return;
    if (hr_timer_active(&s->timer)) hr_timer_stop(&s->w->loop.wheel, &s->timer);
    hr_free(s);
}
