/* main.c - the `herald` command line: sub-commands (serve, check-config,
 * config-reference, token, genconfig, bench, snapshot), option parsing into the
 * config (defaults < file < HERALD_* environment < flags), and exit codes
 * (0 clean, 1 runtime failure, 2 bad usage or config). */
#include "auth/auth.h"
#include "auth/jwt.h"
#include "bench/bench.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "engine/engine.h"
#include "server/config.h"
#include "server/server.h"
#include "transport/tls.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

static void usage(FILE *f)
{
    fprintf(f,
            "herald " HERALD_VERSION " - real-time messaging server\n"
            "\n"
            "Usage:\n"
            "  herald [serve] [--config FILE] [options]   run the server (default)\n"
            "  herald check-config FILE                   validate a config file\n"
            "  herald config-reference                    list every option with its default\n"
            "  herald genconfig                           print a commented starting config with fresh secrets\n"
            "  herald token --user ID [token options]     print a signed connection or subscription token\n"
            "  herald bench [options]                     load generator (herald bench --help)\n"
            "  herald snapshot --data-dir DIR OUT         copy a durable log, even while a server writes it\n"
            "  herald --version | --help\n"
            "\n"
            "Common options (each is also a config key and a HERALD_* variable):\n"
            "  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080; :0 picks a port)\n"
            "  --workers N            worker threads (default: one per core)\n"
            "  --static DIR           serve files from DIR (demo pages)\n"
            "  --api-key KEY          server API key\n"
            "  --engine memory|redis  engine: memory (one node) or redis (many nodes, docs/scaling.md)\n"
            "  --redis HOST:PORT[,..] Redis servers for --engine redis (several = shards)\n"
            "  --drain-timeout 10s    graceful shutdown limit\n"
            "  --log-level LEVEL      debug, info, warn, error, off\n"
            "  --token-hmac-secret S  HS256 secret for client tokens (32+ bytes; more keys: [auth.key.NAME])\n"
            "  --tls-cert FILE        TLS certificate chain (PEM); with --tls-key: https / wss\n"
            "  --tls-key FILE         TLS private key (PEM)\n"
            "  --tls-listen HOST:PORT TLS on this address, --listen stays plain HTTP\n"
            "  --SECTION.KEY VALUE    any config option, e.g. --websocket.max-message-size 1MiB\n"
            "\n"
            "Token options (herald token; the key comes from --config / --token-hmac-secret / HERALD_*):\n"
            "  --user ID              the token's sub (user id); required\n"
            "  --ttl 1h               lifetime (exp = now + ttl); 0 = no exp (default 1h)\n"
            "  --channel C            channel subscribed on connect (repeatable)\n"
            "  --subscription-channel C  make a subscription token for channel C instead\n"
            "  --info JSON            info object shown in presence, e.g. '{\"name\":\"Alice\"}'\n"
            "  --key NAME             sign with [auth.key.NAME] (default: token_hmac_secret, else the first key)\n"
            "  --private-key FILE     PEM private key for an RS256/ES256/EdDSA key without private_key_file\n"
            "\n"
            "SIGHUP reloads the token keys from the config file, environment and flags.\n"
            "Documentation: docs/config.md, docs/auth.md\n");
}

typedef struct cli {
    const char *command;
    const char *config_file;
    const char *check_file;
} cli;

/* Apply flags to cfg; on the first pass (cfg == NULL) only find the command
 * and --config. Returns 0 or 2 (usage error, message printed). */
static int parse_args(int argc, char **argv, cli *a, hr_config *cfg)
{
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            if (cfg) continue; /* positional words were taken on the first pass */
            if (!a->command) {
                a->command = arg;
                continue;
            }
            if (strcmp(a->command, "check-config") == 0 && !a->check_file) {
                a->check_file = arg;
                continue;
            }
            fprintf(stderr, "herald: unexpected argument \"%s\" (see herald --help)\n", arg);
            return 2;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
            printf("herald " HERALD_VERSION "\n");
            exit(0);
        }
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        char flag[256];
        const char *value = NULL;
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        if (nl >= sizeof(flag)) nl = sizeof(flag) - 1;
        memcpy(flag, name, nl);
        flag[nl] = '\0';
        if (eq) value = eq + 1;
        bool is_config = strcmp(flag, "config") == 0 || strcmp(flag, "c") == 0;
        const hr_option *o = is_config ? NULL : hr_config_find_flag(flag);
        bool is_ns = !is_config && !o && (strncmp(flag, "namespace.", 10) == 0 || /* --namespace.NAME.OPTION */
                                          strncmp(flag, "auth.key.", 9) == 0 ||   /* --auth.key.NAME.OPTION */
                                          strncmp(flag, "pusher.app.", 11) == 0); /* --pusher.app.NAME.OPTION */
        if (!is_config && !o && !is_ns) {
            char key[256], hint[300] = "";
            for (size_t k = 0; k <= nl; k++) key[k] = flag[k] == '-' ? '_' : flag[k];
            const hr_option *near = hr_config_closest(key);
            if (near) { /* the flag spelling of its key: '_' as '-' */
                char f[256];
                size_t k = 0;
                for (; near->key[k] && k + 1 < sizeof(f); k++) f[k] = near->key[k] == '_' ? '-' : near->key[k];
                f[k] = '\0';
                snprintf(hint, sizeof(hint), "did you mean --%s? ", f);
            }
            fprintf(stderr, "herald: unknown option \"%s\" (%ssee herald --help and herald config-reference)\n", arg,
                    hint);
            return 2;
        }
        if (!value) {
            if (o && o->type == HR_OPT_BOOL && (i + 1 >= argc || argv[i + 1][0] == '-')) {
                value = "true"; /* --websocket.deflate alone means true */
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                fprintf(stderr, "herald: option %s needs a value\n", arg);
                return 2;
            }
        }
        if (is_config) {
            a->config_file = value;
            continue;
        }
        if (cfg && hr_config_set(cfg, is_ns ? flag : o->key, value, err, sizeof(err))) {
            fprintf(stderr, "herald: %s: %s\n", arg, err);
            return 2;
        }
    }
    return 0;
}

/* ---- configuration loading (serve, and SIGHUP reloads) ----------------------------- */

typedef struct loader_args {
    int argc;
    char **argv;
    const char *file;
} loader_args;

/* defaults (done by the caller) < file < environment < flags */
static int load_config(hr_config *cfg, void *ud, char *err, size_t errlen)
{
    loader_args *l = ud;
    if (l->file && l->file[0] && hr_config_load_file(cfg, l->file, err, errlen)) return HR_ERR_INVALID;
    if (hr_config_load_env(cfg, environ, err, errlen)) return HR_ERR_INVALID;
    cli a = {0};
    if (parse_args(l->argc, l->argv, &a, cfg)) {
        snprintf(err, errlen, "bad command-line option");
        return HR_ERR_INVALID;
    }
    return hr_config_validate(cfg, err, errlen);
}

/* SIGHUP (hr_auth_loader): the configuration re-read as at start, its
 * token options applied to a. */
static int reload_auth(hr_auth *a, void *ud, char *err, size_t errlen)
{
    hr_config cfg;
    hr_config_defaults(&cfg);
    int rc = load_config(&cfg, ud, err, errlen);
    if (!rc) {
        hr_auth_opts ao;
        hr_config_auth_opts(&cfg, &ao);
        rc = hr_auth_reload_from(a, &ao, err, errlen);
    }
    hr_config_free(&cfg);
    return rc;
}

/* ---- herald genconfig ---------------------------------------------------------------- */

static int random_b64url(size_t nbytes, char *out, size_t cap)
{
    uint8_t r[64];
    if (nbytes > sizeof(r) || (nbytes * 4 + 2) / 3 + 1 > cap || RAND_bytes(r, (int)nbytes) != 1) return -1;
    hr_b64url_encode(r, nbytes, out);
    return 0;
}

static int cmd_genconfig(void)
{
    char api[64], secret[64];
    if (random_b64url(24, api, sizeof(api)) || random_b64url(32, secret, sizeof(secret))) {
        fprintf(stderr, "herald: genconfig: no randomness available\n");
        return 1;
    }
    printf("# Herald configuration (made by `herald genconfig`). Every option: docs/config.md\n"
           "# or `herald config-reference`. Check it with `herald check-config FILE`.\n"
           "\n"
           "[server]\n"
           "listen = \"127.0.0.1:8080\"\n"
           "# Key of the server HTTP API: requests to /api need \"Authorization: apikey <key>\".\n"
           "api_key = \"%s\"\n"
           "# Behind a load balancer or proxy, the client address the [limits] count\n"
           "# (docs/security.md, \"Client addresses behind proxies\"): believe X-Forwarded-For\n"
           "# from these proxies only, or require a PROXY protocol header on every connection.\n"
           "# trusted_proxies = [\"127.0.0.1\"]\n"
           "# proxy_protocol = true\n"
           "\n"
           "[auth]\n"
           "# HS256 secret of client tokens (JWT). Keep it secret; share it with your backend only.\n"
           "# Make a token to try: herald token --config THIS_FILE --user alice --ttl 1h\n"
           "token_hmac_secret = \"%s\"\n"
           "# Tolerated clock skew, optional aud / iss checks, and tokens without exp refused:\n"
           "leeway = \"30s\"\n"
           "# audience = \"my-app\"\n"
           "# issuer = \"https://auth.example.com\"\n"
           "require_exp = true\n"
           "# Time a connection gets to send refresh after its token expired:\n"
           "refresh_grace = \"10s\"\n"
           "\n"
           "# More keys (rotation, asymmetric algorithms): one section each; the name is the kid.\n"
           "# [auth.key.backend2025]\n"
           "# alg = \"RS256\"\n"
           "# public_key_file = \"/etc/herald/backend2025.pub.pem\"\n"
           "\n"
           "[channels]\n"
           "# Options of channels outside any [namespace.NAME] section.\n"
           "history_size = 100\n"
           "history_ttl = \"5m\"\n"
           "presence = true\n"
           "# Who may subscribe / publish from a client: anyone, authenticated, token (subscribe),\n"
           "# subscribers / none (publish, history_for, presence_for). Client publish is opt-in:\n"
           "# without a publish line it is none (only the server API publishes).\n"
           "subscribe = \"anyone\"\n"
           "publish = \"authenticated\"\n"
           "\n"
           "# Channels \"private:...\" need a subscription token (herald token --subscription-channel C).\n"
           "[namespace.private]\n"
           "subscribe = \"token\"\n"
           "publish = \"subscribers\"\n"
           "history_for = \"subscribers\"\n"
           "presence_for = \"subscribers\"\n"
           "\n"
           "# Channels \"chat:...\": any signed-in user. User-limited channels such as \"chat:#alice,bob\"\n"
           "# are open to the users listed after '#' only, in every namespace.\n"
           "[namespace.chat]\n"
           "subscribe = \"authenticated\"\n"
           "publish = \"subscribers\"\n"
           "join_leave = true\n"
           "\n"
           "[websocket]\n"
           "# Web pages of other origins allowed to open WebSockets (default: the server's own\n"
           "# origin only; [sse] allowed_origins is the same for /sse, /stream and /poll).\n"
           "# allowed_origins = [\"https://app.example.com\"]\n"
           "\n"
           "[limits]\n"
           "# Abuse limits per client address (behind a proxy, set up the PROXY protocol or\n"
           "# trusted proxies first, or every client shares the proxy's budget). 0 = off.\n"
           "connections_per_ip = 1000\n"
           "handshakes_per_ip = 50\n"
           "# Rejected tokens (not expired ones) before an address is refused for a while:\n"
           "auth_failures_per_ip = 20\n"
           "auth_failure_window = \"1m\"\n"
           "auth_failure_ban = \"1m\"\n"
           "# Client publications per second, per connection and per token user:\n"
           "publishes_per_connection = 20\n"
           "publishes_per_user = 50\n",
           api, secret);
    return 0;
}

/* ---- the start-up warning --------------------------------------------------------------- */

/* Could an anonymous client publish under this policy? (publish "subscribers"
 * counts when anonymous clients may subscribe.) */
static bool anonymous_publish(const hr_chan_policy *p)
{
    int64_t pub = hr_perm_publish_of(p);
    return pub == HR_PERM_ANYONE || (pub == HR_PERM_SUBSCRIBERS && hr_perm_subscribe_of(p) == HR_PERM_ANYONE);
}

static bool lists_any(const hr_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], "*") == 0) return true;
    return false;
}

/* One warning line naming what makes the configuration permissive: anonymous
 * client publish (the default namespace, or any [namespace.NAME]) and any
 * web origin allowed. Nothing when there is none of these. */
static void warn_permissive(const hr_config *cfg)
{
    hr_buf b = HR_BUF_INIT;
    hr_chan_policy p;
    char ch[128];
    if (!hr_config_policy(cfg, "x", 1, &p) && anonymous_publish(&p))
        hr_buf_printf(&b, "; anonymous clients may publish to channels outside a namespace (channels.publish)");
    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        int n = snprintf(ch, sizeof(ch), "%s:x", cfg->namespaces[i].name);
        if (n > 0 && (size_t)n < sizeof(ch) && !hr_config_policy(cfg, ch, (size_t)n, &p) && anonymous_publish(&p))
            hr_buf_printf(&b, "; anonymous clients may publish in namespace %s", cfg->namespaces[i].name);
    }
    if (lists_any(&cfg->ws_allowed_origins))
        hr_buf_printf(&b, "; WebSockets accept every web origin (websocket.allowed_origins = \"*\")");
    if (lists_any(&cfg->sse_allowed_origins))
        hr_buf_printf(&b, "; /sse, /stream and /poll accept every web origin (sse.allowed_origins = \"*\")");
    if (b.len)
        hr_logf(HR_LOG_WARN, "permissive_config", "permissive configuration, fine for development, not for production%.*s", (int)b.len, (char *)b.data);
    hr_buf_free(&b);
}

/* ---- herald token ----------------------------------------------------------------------- */

static int token_usage(const char *msg)
{
    fprintf(stderr, "herald: token: %s (see herald --help)\n", msg);
    return 2;
}

static int cmd_token(int argc, char **argv)
{
    const char *user = NULL, *ttl = "1h", *info = NULL, *keyname = NULL, *privkey = NULL, *subch = NULL;
    const char *chans[HR_JWT_MAX_CHANNELS];
    size_t nch = 0;
    char err[1024];
    /* token flags here; everything else is a config flag, applied by load_config */
    char **rest = hr_calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    loader_args l = {0, rest, getenv("HERALD_CONFIG")};
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--user") ? &user : !strcmp(a, "--ttl") ? &ttl : !strcmp(a, "--info") ? &info
                            : !strcmp(a, "--key") ? &keyname : !strcmp(a, "--private-key") ? &privkey
                            : !strcmp(a, "--subscription-channel") ? &subch : NULL;
        bool is_ch = !strcmp(a, "--channel"), is_cfg = !strcmp(a, "--config") || !strcmp(a, "-c");
        if (slot || is_ch || is_cfg) {
            if (i + 1 >= argc) {
                hr_free(rest);
                return token_usage("an option needs a value");
            }
            const char *v = argv[++i];
            if (slot) *slot = v;
            else if (is_cfg) l.file = v;
            else if (nch < HR_JWT_MAX_CHANNELS) chans[nch++] = v;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            hr_free(rest);
            usage(stdout);
            return 0;
        }
        rest[nrest++] = argv[i];
    }
    l.argc = nrest;
    hr_config cfg;
    hr_config_defaults(&cfg);
    int rc = 0;
    if (!user) rc = token_usage("--user is required");
    else if (load_config(&cfg, &l, err, sizeof(err))) {
        fprintf(stderr, "herald: token: %s\n", err);
        rc = 2;
    }
    int64_t ttl_ms = 0;
    if (!rc && hr_parse_duration(ttl, &ttl_ms)) rc = token_usage("--ttl: expected a duration like 1h, 30m or 0");
    if (!rc && subch && nch) rc = token_usage("--channel and --subscription-channel do not go together");
    json_t *infoj = NULL;
    if (!rc && info) {
        infoj = json_loads(info, 0, NULL);
        if (!json_is_object(infoj)) rc = token_usage("--info: expected a JSON object");
    }
    /* the signing key */
    const hr_auth_key_cfg *key = NULL;
    if (!rc && keyname) {
        for (size_t i = 0; i < cfg.nauth_keys && !key; i++)
            if (!strcmp(cfg.auth_keys[i].name, keyname)) key = &cfg.auth_keys[i];
        if (!key) rc = token_usage("--key: no such [auth.key.NAME] in the configuration");
    } else if (!rc && !cfg.auth_token_hmac_secret[0]) {
        if (cfg.nauth_keys) key = &cfg.auth_keys[0];
        else rc = token_usage("no signing key: give --token-hmac-secret, or --config with auth.token_hmac_secret "
                              "or an [auth.key.NAME] section");
    }
    char *tok = NULL;
    if (!rc) {
        int64_t now = (int64_t)time(NULL);
        hr_buf p = HR_BUF_INIT;
        hr_buf_append_str(&p, "{\"sub\":");
        hr_json_append_string(&p, user, strlen(user));
        hr_buf_printf(&p, ",\"iat\":%lld", (long long)now);
        if (ttl_ms > 0) hr_buf_printf(&p, ",\"exp\":%lld", (long long)(now + (ttl_ms + 999) / 1000));
        if (cfg.auth_audience[0]) {
            hr_buf_append_str(&p, ",\"aud\":");
            hr_json_append_string(&p, cfg.auth_audience, strlen(cfg.auth_audience));
        }
        if (cfg.auth_issuer[0]) {
            hr_buf_append_str(&p, ",\"iss\":");
            hr_json_append_string(&p, cfg.auth_issuer, strlen(cfg.auth_issuer));
        }
        if (infoj) {
            char *t = json_dumps(infoj, JSON_COMPACT);
            hr_buf_printf(&p, ",\"info\":%s", t);
            free(t);
        }
        if (subch) {
            hr_buf_append_str(&p, ",\"channel\":");
            hr_json_append_string(&p, subch, strlen(subch));
        }
        if (nch) {
            hr_buf_append_str(&p, ",\"channels\":[");
            for (size_t i = 0; i < nch; i++) {
                if (i) hr_buf_append(&p, ",", 1);
                hr_json_append_string(&p, chans[i], strlen(chans[i]));
            }
            hr_buf_append(&p, "]", 1);
        }
        hr_buf_append(&p, "}", 1);
        if (!key) {
            const char *sec = cfg.auth_token_hmac_secret;
            rc = hr_jwt_sign_hmac(HR_JWT_HS256, (const uint8_t *)sec, strlen(sec), NULL, (const char *)p.data, p.len,
                                  &tok, NULL, err, sizeof(err));
        } else {
            hr_jwt_alg alg = hr_jwt_alg_from_name(key->alg);
            const char *kid = key->kid ? key->kid : key->name;
            hr_buf m = HR_BUF_INIT;
            bool hmac = alg == HR_JWT_HS256 || alg == HR_JWT_HS384 || alg == HR_JWT_HS512;
            if (hmac && key->secret) {
                hr_buf_append_str(&m, key->secret);
            } else if (hmac) {
                rc = hr_auth_read_file(key->secret_file, &m, err, sizeof(err));
                while (!rc && m.len && (m.data[m.len - 1] == '\n' || m.data[m.len - 1] == '\r')) m.len--;
            } else if (privkey || key->private_key_file) {
                rc = hr_auth_read_file(privkey ? privkey : key->private_key_file, &m, err, sizeof(err));
            } else {
                snprintf(err, sizeof(err), "auth.key.%s has no private_key_file: pass --private-key FILE", key->name);
                rc = HR_ERR_INVALID;
            }
            if (!rc && hmac)
                rc = hr_jwt_sign_hmac(alg, m.data, m.len, kid, (const char *)p.data, p.len, &tok, NULL, err,
                                      sizeof(err));
            else if (!rc)
                rc = hr_jwt_sign_pem(alg, (const char *)m.data, m.len, kid, (const char *)p.data, p.len, &tok, NULL,
                                     err, sizeof(err));
            hr_buf_free(&m);
        }
        hr_buf_free(&p);
        if (rc) {
            fprintf(stderr, "herald: token: %s\n", err);
            rc = 2;
        }
    }
    if (!rc) printf("%s\n", tok);
    hr_free(tok);
    json_decref(infoj);
    hr_config_free(&cfg);
    hr_free(rest);
    return rc;
}

/* herald snapshot --data-dir DIR OUT (docs/durability.md "Backup"). */
static int cmd_snapshot(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[1], "--data-dir") != 0) {
        fprintf(stderr, "herald: usage: herald snapshot --data-dir DIR OUT (OUT must not exist)\n");
        return 2;
    }
    char err[1024];
    if (hr_durable_snapshot(argv[2], argv[3], err, sizeof(err)) < 0) {
        fprintf(stderr, "herald: snapshot: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* bench has its own flags (src/bench/opts.c) */
    if (argc > 1 && strcmp(argv[1], "bench") == 0) return hr_bench_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "token") == 0) return cmd_token(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "snapshot") == 0) return cmd_snapshot(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "genconfig") == 0) {
        if (argc > 2) {
            fprintf(stderr, "herald: genconfig takes no arguments (it prints to standard output)\n");
            return 2;
        }
        return cmd_genconfig();
    }
    cli a = {0};
    if (parse_args(argc, argv, &a, NULL)) return 2;
    const char *cmd = a.command ? a.command : "serve";
    char err[1024];
    hr_config cfg;
    hr_config_defaults(&cfg);

    if (strcmp(cmd, "config-reference") == 0) {
        hr_config_print_reference(stdout);
        hr_config_free(&cfg);
        return 0;
    }
    if (strcmp(cmd, "check-config") == 0) {
        if (!a.check_file) {
            fprintf(stderr, "herald: usage: herald check-config FILE\n");
            hr_config_free(&cfg);
            return 2;
        }
        int rc = hr_config_load_file(&cfg, a.check_file, err, sizeof(err));
        if (!rc) rc = hr_config_validate(&cfg, err, sizeof(err));
        hr_auth_opts ao;
        hr_config_auth_opts(&cfg, &ao);
        hr_auth *auth = rc ? NULL : hr_auth_new(&ao, err, sizeof(err)); /* the key files too */
        if (!rc && !auth) rc = HR_ERR_INVALID;
        hr_auth_free(auth);
        hr_config_free(&cfg);
        if (rc) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        printf("%s: ok\n", a.check_file);
        return 0;
    }
    if (strcmp(cmd, "serve") != 0) {
        fprintf(stderr, "herald: unknown command \"%s\" (see herald --help)\n", cmd);
        hr_config_free(&cfg);
        return 2;
    }

    const char *file = a.config_file ? a.config_file : getenv("HERALD_CONFIG");
    int rc = 0;
    if (file && file[0] && hr_config_load_file(&cfg, file, err, sizeof(err))) rc = 2;
    else if (hr_config_load_env(&cfg, environ, err, sizeof(err))) rc = 2;
    else if (parse_args(argc, argv, &a, &cfg)) rc = -2; /* message already printed */
    else if (hr_config_validate(&cfg, err, sizeof(err))) rc = 2;
    if (rc) {
        if (rc > 0) fprintf(stderr, "herald: %s\n", err);
        hr_config_free(&cfg);
        return 2;
    }
    hr_log_set_level(hr_log_level_parse(cfg.log_level));
    hr_log_set_format(hr_log_format_parse(cfg.log_format));
    hr_auth_opts ao;
    hr_config_auth_opts(&cfg, &ao);
    cfg.auth = hr_auth_new(&ao, err, sizeof(err));
    if (!cfg.auth) {
        fprintf(stderr, "herald: %s\n", err);
        hr_config_free(&cfg);
        return 2;
    }
    loader_args reload = {argc, argv, file};
    hr_auth_set_loader(cfg.auth, reload_auth, &reload);

    hr_server srv;
    rc = hr_server_start(&srv, &cfg, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "herald: %s\n", err);
        hr_server_free(&srv);
        hr_auth_free(cfg.auth);
        hr_config_free(&cfg);
        return rc == HR_ERR_INVALID ? 2 : 1;
    }
    warn_permissive(&cfg); /* before "listening on": whoever waits for that line has it */
    char tls_extra[256] = "";
    if (srv.tls_port) snprintf(tls_extra, sizeof(tls_extra), " and https://%s", srv.tls_bound);
    hr_logf(HR_LOG_INFO, "listening", "herald " HERALD_VERSION " listening on %s://%s%s (%d workers%s%s)", srv.listen_tls ? "https" : "http",
            srv.sh.bound, tls_extra, srv.sh.nworkers, cfg.static_dir[0] ? ", static files from " : "", cfg.static_dir);
    if (srv.sh.tls) {
        char fp[128];
        hr_tls_server_fingerprint(srv.sh.tls, fp, sizeof(fp));
        hr_logf(HR_LOG_INFO, "tls_certificate", "TLS certificate %s (sha256 %s), minimum TLS %s", cfg.tls_cert, fp, cfg.tls_min_version);
    }
    if (!cfg.api_key[0])
        hr_logf(HR_LOG_INFO, "api_key_generated", "server API key (generated; set server.api_key or HERALD_API_KEY to choose one): %s", srv.sh.api_key);
    if (srv.admin)
        hr_logf(HR_LOG_INFO, "admin_ui", "admin UI: %s://%s/admin/ (password %s%s)", srv.listen_tls ? "https" : "http", srv.sh.bound,
                cfg.admin_password[0] ? "as configured in admin.password" : srv.admin_password,
                cfg.admin_password[0] ? "" : ", generated; set admin.password or HERALD_ADMIN_PASSWORD to choose one");
    if (hr_auth_key_count(cfg.auth))
        hr_logf(HR_LOG_INFO, "token_keys", "token authentication: %zu key%s", hr_auth_key_count(cfg.auth),
                hr_auth_key_count(cfg.auth) == 1 ? "" : "s");
    rc = hr_server_run_until_signal(&srv);
    hr_server_free(&srv);
    hr_auth_free(cfg.auth);
    hr_config_free(&cfg);
    return rc;
}
