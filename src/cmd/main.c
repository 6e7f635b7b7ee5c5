/* main.c - the `herald` command line: sub-commands (serve, check-config,
 * config-reference, bench), option parsing into the config (defaults < file <
 * HERALD_* environment < flags), and exit codes (0 clean, 1 runtime failure,
 * 2 bad usage or config). */
#include "bench/bench.h"
#include "core/log.h"
#include "server/config.h"
#include "server/server.h"
#include "transport/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "  herald bench [options]                     load generator (herald bench --help)\n"
            "  herald --version | --help\n"
            "\n"
            "Common options (each is also a config key and a HERALD_* variable):\n"
            "  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080; :0 picks a port)\n"
            "  --workers N            worker threads (default: one per core)\n"
            "  --static DIR           serve files from DIR (demo pages)\n"
            "  --api-key KEY          server API key\n"
            "  --engine memory        engine (only memory in this version)\n"
            "  --drain-timeout 10s    graceful shutdown limit\n"
            "  --log-level LEVEL      debug, info, warn, error, off\n"
            "  --tls-cert FILE        TLS certificate chain (PEM); with --tls-key: https / wss\n"
            "  --tls-key FILE         TLS private key (PEM)\n"
            "  --tls-listen HOST:PORT TLS on this address, --listen stays plain HTTP\n"
            "  --SECTION.KEY VALUE    any config option, e.g. --websocket.max-message-size 1MiB\n"
            "\n"
            "Documentation: docs/config.md\n");
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
        bool is_ns = !is_config && !o && strncmp(flag, "namespace.", 10) == 0; /* --namespace.NAME.OPTION */
        if (!is_config && !o && !is_ns) {
            fprintf(stderr, "herald: unknown option \"%s\" (see herald --help and herald config-reference)\n", arg);
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

int main(int argc, char **argv)
{
    /* bench has its own flags (src/bench/opts.c) */
    if (argc > 1 && strcmp(argv[1], "bench") == 0) return hr_bench_main(argc - 1, argv + 1);
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

    hr_server srv;
    rc = hr_server_start(&srv, &cfg, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "herald: %s\n", err);
        hr_server_free(&srv);
        hr_config_free(&cfg);
        return rc == HR_ERR_INVALID ? 2 : 1;
    }
    char tls_extra[256] = "";
    if (srv.tls_port) snprintf(tls_extra, sizeof(tls_extra), " and https://%s", srv.tls_bound);
    hr_info("herald " HERALD_VERSION " listening on %s://%s%s (%d workers%s%s)", srv.listen_tls ? "https" : "http",
            srv.bound, tls_extra, srv.nworkers, cfg.static_dir[0] ? ", static files from " : "", cfg.static_dir);
    if (srv.tls) {
        char fp[128];
        hr_tls_server_fingerprint(srv.tls, fp, sizeof(fp));
        hr_info("TLS certificate %s (sha256 %s), minimum TLS %s", cfg.tls_cert, fp, cfg.tls_min_version);
    }
    if (!cfg.api_key[0])
        hr_info("server API key (generated; set server.api_key or HERALD_API_KEY to choose one): %s", srv.api_key);
    rc = hr_server_run_until_signal(&srv);
    hr_server_free(&srv);
    hr_config_free(&cfg);
    return rc;
}
