/*
 * cmd_serve.c - `cmc-hub init`, `key`, `seed` and `serve`: making a hub and running it.
 */
#include "hub/cli.h"
#include "hub/config.h"
#include "hub/server.h"

#include "platform/err.h"
#include "platform/plat.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_init(struct hub_cli *c)
{
    int rc;
    if ((rc = hub_cli_want_args(c, 0, "init")) != CMC_OK)
        return rc;
    if ((rc = hub_init(c->dir)) != CMC_OK)
        return rc;
    if (c->json) {
        hub_cli_print_json(json_pack("{s:s, s:b}", "dir", c->dir, "ok", 1));
    } else {
        printf("hub created in %s\n", c->dir);
    }
    return CMC_OK;
}

static int cmd_key(struct hub_cli *c, hub *h)
{
    uint8_t pk[CRY_SIGN_PK_BYTES];
    char hex[2 * CRY_SIGN_PK_BYTES + 1];
    int rc;
    if ((rc = hub_cli_want_args(c, 0, "key")) != CMC_OK)
        return rc;
    hub_public_key(h, pk);
    cry_hex(hex, pk, sizeof pk);
    if (c->json)
        hub_cli_print_json(json_pack("{s:s}", "hub_pk", hex));
    else
        printf("%s\n", hex);
    return CMC_OK;
}

struct seed_progress {
    uint64_t start_ns;
    int tty;
};

static void seed_progress_cb(long done, long total, void *ctx)
{
    struct seed_progress *sp = ctx;
    double secs = (double)(plat_mono_now_ns() - sp->start_ns) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0;
    if (!sp->tty)
        return;
    fprintf(stderr, "\r  %ld/%ld plans  %.0f/s  %.0fs left   ", done, total, rate,
            rate > 0 ? (double)(total - done) / rate : 0.0);
    if (done == total)
        fputc('\n', stderr);
}

static int cmd_seed(struct hub_cli *c, hub *h)
{
    int rc = CMC_OK;
    const char *plans = hub_cli_take_opt(c, "--plans", &rc);
    const char *seed = rc == CMC_OK ? hub_cli_take_opt(c, "--seed", &rc) : NULL;
    struct seed_progress sp;
    char *end = NULL;
    long n;
    unsigned long long s = 1;

    if (rc != CMC_OK)
        return rc;
    if ((rc = hub_cli_want_args(c, 0, "seed --plans N [--seed S]")) != CMC_OK)
        return rc;
    if (plans == NULL)
        return cmc_fail(CMC_ERR_USAGE, "seed: --plans N is required");
    n = strtol(plans, &end, 10);
    if (end == plans || *end != '\0' || n < 0)
        return cmc_fail(CMC_ERR_USAGE, "--plans: a number of plans");
    if (seed != NULL) {
        s = strtoull(seed, &end, 10);
        if (end == seed || *end != '\0')
            return cmc_fail(CMC_ERR_USAGE, "--seed: a number");
    }
    sp.start_ns = plat_mono_now_ns();
    sp.tty = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    if ((rc = hub_seed(h, n, s, seed_progress_cb, &sp)) != CMC_OK)
        return rc;
    double secs = (double)(plat_mono_now_ns() - sp.start_ns) / 1e9;
    if (c->json)
        hub_cli_print_json(json_pack("{s:I, s:I, s:f}", "plans", (json_int_t)n, "seed", (json_int_t)s,
                             "seconds", secs));
    else
        printf("seeded %ld plans (seed %llu) in %.1f s\n", n, s, secs);
    return CMC_OK;
}

/* Command line first, then the settings file. */
static const char *setting(const char *cli, const char *file)
{
    return cli != NULL ? cli : file[0] != '\0' ? file : NULL;
}

static int serve_opts(struct hub_cli *c, struct hub_server_opts *o, char *host, size_t hcap,
                      char *mhost, size_t mcap)
{
    const struct hub_config *cfg = c->config;
    int rc = CMC_OK;
    const char *listen = hub_cli_take_opt(c, "--listen", &rc);
    const char *cert = rc == CMC_OK ? hub_cli_take_opt(c, "--tls-cert", &rc) : NULL;
    const char *key = rc == CMC_OK ? hub_cli_take_opt(c, "--tls-key", &rc) : NULL;
    const char *metrics = rc == CMC_OK ? hub_cli_take_opt(c, "--metrics-listen", &rc) : NULL;

    if (rc != CMC_OK)
        return rc;
    if ((rc = hub_cli_want_args(c, 0, "serve")) != CMC_OK)
        return rc;
    memset(o, 0, sizeof *o);
    if ((listen = setting(listen, cfg->listen)) == NULL)
        return cmc_fail(CMC_ERR_USAGE, "serve: --listen HOST:PORT (or listen in %s) is required",
                        cfg->path[0] != '\0' ? cfg->path : "the settings file");
    if ((rc = hub_parse_listen(listen, host, hcap, &o->port)) != CMC_OK)
        return rc;
    o->host = host;
    o->tls_cert_path = setting(cert, cfg->tls_cert);
    o->tls_key_path = setting(key, cfg->tls_key);
    if ((metrics = setting(metrics, cfg->metrics_listen)) != NULL) {
        if ((rc = hub_parse_listen(metrics, mhost, mcap, &o->metrics_port)) != CMC_OK)
            return rc;
        o->metrics_host = mhost;
    }
    o->timeout_s = cfg->idle_timeout;
    o->threads = cfg->threads;
    o->max_connections = cfg->max_connections;
    o->per_ip = cfg->per_ip_connections;
    o->deadline_s = cfg->request_deadline;
    o->enroll_per_minute = cfg->enroll_per_minute;
    return CMC_OK;
}

static int cmd_serve(struct hub_cli *c, hub *h)
{
    struct hub_server_opts opts;
    hub_server *srv = NULL;
    char host[128], mhost[128];
    sigset_t set;
    int sig = 0, rc;

    if ((rc = serve_opts(c, &opts, host, sizeof host, mhost, sizeof mhost)) != CMC_OK)
        return rc;
    plat_harden_process();
    /* Block the stop signals in every thread; this one waits for them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((rc = hub_server_start(h, &opts, &srv)) != CMC_OK)
        return rc;
    if (c->json)
        hub_cli_print_json(json_pack("{s:s, s:i, s:b, s:i}", "host", host, "port",
                                     (int)hub_server_port(srv), "tls", opts.tls_cert_path != NULL,
                                     "metrics_port", (int)hub_server_metrics_port(srv)));
    else
        printf("cmc-hub serving %s on %s:%u\n", opts.tls_cert_path != NULL ? "https" : "http (no TLS)",
               host, (unsigned)hub_server_port(srv));
    fflush(stdout);
    sigwait(&set, &sig);
    hub_server_stop(srv);
    if (!c->json)
        printf("cmc-hub stopped\n");
    return CMC_OK;
}

static int run_init(struct hub_cli *c, hub *h)
{
    (void)h;
    return cmd_init(c);
}

/* ---- command rows ------------------------------------------------------------------------ */

#define HUB_ENV_HELP                                                                       \
    "Environment: CMC_HUB_DIR (state directory), CMC_HUB_CONFIG (settings file, default\n" \
    "/etc/cmc/hub.conf), CMC_LOG (error, warn, info, debug).\n"

const struct hub_cli_cmd hub_cmd_init = {
    "init", NULL,
    "usage: cmc-hub [--dir DIR] init\n"
    "\n"
    "Creates the hub's state directory (0700), its store key file, the encrypted store and the\n"
    "hub's Ed25519 signing key. Refuses a directory that already holds a hub.\n" HUB_ENV_HELP,
    0, run_init};

const struct hub_cli_cmd hub_cmd_key = {
    "key", NULL,
    "usage: cmc-hub key\n"
    "\n"
    "Prints the hub's public signing key (hex). Devices pin it at enrollment.\n" HUB_ENV_HELP,
    1, cmd_key};

const struct hub_cli_cmd hub_cmd_seed = {
    "seed", NULL,
    "usage: cmc-hub seed --plans N [--seed S]\n"
    "\n"
    "Adds N synthetic London plans for testing and demonstrations (the same seed makes the\n"
    "same plans). Never run this on a hub holding real patients.\n" HUB_ENV_HELP,
    1, cmd_seed};

const struct hub_cli_cmd hub_cmd_serve = {
    "serve", NULL,
    "usage: cmc-hub serve [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
    "                     [--metrics-listen HOST:PORT]\n"
    "\n"
    "Serves the sync API until SIGINT or SIGTERM. With a certificate and key (PEM): HTTPS,\n"
    "TLS 1.2 and 1.3 with AEAD suites only. GET /healthz answers \"ok\" while the store\n"
    "answers; GET /metrics gives Prometheus metrics, on --metrics-listen (plain HTTP, keep it\n"
    "on a private address) when given, else on the API listener.\n"
    "\n"
    "Every option has a setting in the settings file (cmc-hub(8), docs/OPERATIONS.md): listen,\n"
    "tls_cert, tls_key, metrics_listen, log, and the connection limits max_connections (1024),\n"
    "per_ip_connections (32), idle_timeout (15 s), request_deadline (20 s: the whole request,\n"
    "however slowly it trickles), enroll_per_minute (10 per address; then 429 Retry-After),\n"
    "threads (8). The command line wins over the file.\n" HUB_ENV_HELP,
    1, cmd_serve};
