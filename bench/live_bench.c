/*
 * live_bench - the change feed's benchmark driver (bench/live.sh, docs/BENCHMARKS.md "Live").
 *
 *   live_bench prepare HUBDIR EXAMPLE K REGION
 *       adds the users bench-gp (gp) and bench-nurse (clinician) if missing, then imports K
 *       plans made from EXAMPLE (examples/plan.json) in REGION and submits them, unapproved;
 *       prints "PLAN_ID NHS" lines for probe
 *   live_bench fleet HUBDIR URL N SCOPE HOLD SECONDS READYFILE
 *       N simulated watching devices, enrolled in-process with SCOPE ("spread:A,B,..." deals
 *       the scopes region:A, region:B, ... round the devices), starting at the change
 *       log's head: each on its own thread and kept-alive connection holds signed waits
 *       (GET /v1/wait, HOLD seconds); answered "changed" it pulls like a device (bundles
 *       verified, purges acknowledged) and waits again. READYFILE is written once every
 *       device has sent its first wait. Runs SECONDS or until SIGTERM, then prints JSON:
 *       wake-ups, pulls, errors, and the bytes of the waits that ran out idle
 *   live_bench probe AGENTDIR HUBDIR HUBBIN PLANS MODE FIRST COUNT
 *       for COUNT plans of the PLANS file from line FIRST: runs `HUBBIN --dir HUBDIR plan
 *       approve` (MODE approve) or `... plan withdraw-consent` (MODE withdraw) as bench-gp,
 *       and from the moment it returns polls the watching device's replica (opened once, PIN
 *       from CMC_PIN) every 5 ms until the plan is readable (approve) or gone (withdraw);
 *       prints the distribution in ms as JSON
 *
 * Every loop is bounded in count and time. Only loopback URLs (sync/http.h). Exit status 0
 * when the measurement ran, 1 when something failed (one line on stderr).
 */
#include "agent/cli.h"
#include "bench/bench_hub.h"
#include "bench/bench_util.h"
#include "agent/store.h"
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/bundle.h"
#include "sync/http.h"
#include "sync/plan.h"
#include "sync/wire.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

#define LIVE_MAX_DEVICES 5000
#define LIVE_MAX_PLANS 1000
#define LIVE_PROBE_TIMEOUT_MS 60000
#define LIVE_GP "bench-gp"
#define LIVE_NURSE "bench-nurse"

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_real_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- prepare ------------------------------------------------------------------------------ */

/* A valid NHS number (modulus 11) from a 9-digit stem; 0 when the stem has none. */
static int nhs_from(uint64_t stem, char out[PLAN_NHS_LEN + 1])
{
    char d[24];
    snprintf(d, sizeof d, "%09" PRIu64, stem % 1000000000u);
    int check = plan_nhs_check_digit(d);
    if (check < 0 || d[0] == '0')
        return 0;
    memcpy(out, d, 9);
    out[9] = (char)('0' + check);
    out[10] = '\0';
    return 1;
}

static int cmd_prepare(int argc, char **argv)
{
    long k = 0;
    hub *h = NULL;
    uint8_t *ex = NULL;
    size_t ex_len = 0;
    json_t *doc = NULL;
    if (argc != 4)
        return cmc_fail(CMC_ERR_USAGE, "usage: live_bench prepare HUBDIR EXAMPLE K REGION");
    int rc = parse_long(argv[2], 1, LIVE_MAX_PLANS, &k);
    if (rc == CMC_OK)
        rc = plat_read_file(argv[1], 1024 * 1024, &ex, &ex_len);
    if (rc == CMC_OK && (doc = json_loadb((const char *)ex, ex_len, 0, NULL)) == NULL)
        rc = cmc_fail(CMC_ERR_INVALID, "%s: not JSON", argv[1]);
    if (rc == CMC_OK)
        rc = hub_open(argv[0], &h);
    if (rc == CMC_OK)
        rc = bench_ensure_user(h, LIVE_GP, "gp");
    if (rc == CMC_OK)
        rc = bench_ensure_user(h, LIVE_NURSE, "clinician");
    uint64_t stem = 700000000u + (uint64_t)(plat_wall_now() % 100000) * 1000u;
    for (long i = 0; rc == CMC_OK && i < k; i++) {
        char nhs[PLAN_NHS_LEN + 1], id[PLAN_ID_LEN + 1], uuid[PLAN_ID_LEN + 1];
        uint8_t r[16];
        while (!nhs_from(stem++, nhs)) {
        }
        cry_random(r, sizeof r);
        r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
        r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
        snprintf(uuid, sizeof uuid,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
                 r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
        json_object_set_new(doc, "nhs_number", json_string(nhs));
        json_object_set_new(doc, "plan_id", json_string(uuid));
        json_object_set_new(doc, "region", json_string(argv[3]));
        char *text = json_dumps(doc, JSON_COMPACT);
        if (text == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "plan");
            break;
        }
        rc = hub_plan_import(h, LIVE_NURSE, text, strlen(text), id);
        free(text);
        if (rc == CMC_OK)
            rc = hub_plan_submit(h, LIVE_NURSE, id);
        if (rc == CMC_OK)
            printf("%s %s\n", id, nhs);
    }
    if (rc == CMC_OK && fflush(stdout) != 0)
        rc = cmc_fail(CMC_ERR_IO, "cannot write to stdout");
    json_decref(doc);
    cmc_free(ex);
    hub_close(h);
    return rc;
}

/* ---- fleet -------------------------------------------------------------------------------- */

struct sim {
    pthread_t thread;
    char id[PLAN_ID_LEN + 1];
    struct cry_secret *sk;
    http_client *client;
    uint64_t cursor;
    const uint8_t *hub_pk;
    unsigned hold;
    /* results */
    uint64_t wakes, pulls, acks, idle_cycles, idle_bytes, wait_errors, pull_errors;
    int started;
    char first_error[96]; /* what the first failed wait said */
};

static atomic_int sims_sent;

static int sim_abort(void *ctx, uint64_t received, uint64_t expected)
{
    (void)ctx;
    (void)received;
    (void)expected;
    return stop_requested != 0;
}

static uint64_t sim_bytes(http_client *c)
{
    struct http_stats st;
    http_client_stats(c, &st);
    return st.bytes_sent + st.bytes_received;
}

/* Acknowledges the purges of a verified page, as a device does once they are durable. */
static void sim_ack(struct sim *d, const uint8_t *buf, size_t len, const struct bundle_header *hdr)
{
    struct bundle_op *ops = NULL;
    size_t n = 0, np = 0;
    if (bundle_decode(buf, len, hdr, &ops, &n) != CMC_OK)
        return;
    const char **ids = cmc_calloc(n + 1, sizeof *ids);
    for (size_t i = 0; ids != NULL && i < n; i++)
        if (ops[i].kind == BUNDLE_OP_PURGE)
            ids[np++] = ops[i].plan_id;
    if (np > 0) {
        struct wire_ack ack = { .purges = ids, .n_purges = np };
        uint8_t *body = NULL;
        size_t blen = 0;
        struct http_response resp;
        http_response_init(&resp);
        if (wire_ack_encode(&ack, &body, &blen) == CMC_OK &&
            http_request(d->client, "POST", "/v1/ack", NULL, body, blen, 0, &resp) == CMC_OK)
            d->acks++;
        http_response_free(&resp);
        cmc_free(body);
    }
    cmc_free(ids);
    bundle_ops_free(ops, n);
}

/* Pulls until the hub has no more, as a device does after a wake-up. */
static void sim_pull(struct sim *d)
{
    for (int page = 0; page < 64 && !stop_requested; page++) {
        struct wire_pull_query q = { .cursor = d->cursor, .applied = d->cursor, .schema = PLAN_EDITION_CURRENT };
        struct http_response resp;
        struct bundle_header hdr;
        char path[128];
        http_response_init(&resp);
        if (wire_pull_path(&q, path, sizeof path) != CMC_OK ||
            http_request(d->client, "GET", path, NULL, NULL, 0, 0, &resp) != CMC_OK ||
            bundle_verify(resp.body, resp.body_len, d->hub_pk, &hdr) != CMC_OK ||
            hdr.from_cursor != d->cursor) {
            d->pull_errors++;
            http_response_free(&resp);
            return;
        }
        d->pulls++;
        sim_ack(d, resp.body, resp.body_len, &hdr);
        d->cursor = hdr.to_cursor;
        http_response_free(&resp);
        if (!(hdr.flags & BUNDLE_FLAG_MORE))
            return;
    }
}

static void *sim_run(void *arg)
{
    struct sim *d = arg;
    int first = 1;
    while (!stop_requested) {
        struct wire_wait_query q = { .cursor = d->cursor, .lease = -1, .hold = d->hold };
        struct http_response resp;
        char path[128];
        if (wire_wait_path(&q, path, sizeof path) != CMC_OK)
            break;
        if (first)
            atomic_fetch_add(&sims_sent, 1);
        first = 0;
        uint64_t before = sim_bytes(d->client);
        http_response_init(&resp);
        int rc = http_request(d->client, "GET", path, NULL, NULL, 0, HTTP_NO_RETRY, &resp);
        long status = resp.status;
        http_response_free(&resp);
        if (stop_requested)
            break;
        if (rc == CMC_OK && status == 204) {
            d->idle_cycles++;
            d->idle_bytes += sim_bytes(d->client) - before;
        } else if (rc == CMC_OK) {
            d->wakes++;
            sim_pull(d);
        } else {
            if (d->wait_errors == 0)
                snprintf(d->first_error, sizeof d->first_error, "%s %ld", cmc_errname(rc), status);
            d->wait_errors++;
            sleep_real_ms(500 + (long)(plat_mono_now_ns() % 1000));
        }
    }
    return NULL;
}

/* The scope of device i: SPEC itself, or the (i mod k)-th region of "spread:A,B,...". */
static void sim_scope(const char *spec, long i, char out[HUB_SCOPE_MAX + 1])
{
    if (strncmp(spec, "spread:", 7) != 0) {
        snprintf(out, HUB_SCOPE_MAX + 1, "%s", spec);
        return;
    }
    const char *p = spec + 7;
    long k = 1;
    for (const char *q = p; *q != '\0'; q++)
        k += *q == ',';
    for (long j = i % k; j > 0; j--)
        p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    snprintf(out, HUB_SCOPE_MAX + 1, "region:%.*s", (int)len, p);
}

static int sim_enroll(hub *h, const char *url, const char *spec, long i, unsigned hold, struct sim *d)
{
    char name[HUB_NAME_MAX + 1], scope[HUB_SCOPE_MAX + 1];
    sim_scope(spec, i, scope);
    snprintf(name, sizeof name, "bench-watcher-%ld-%llu", i, (unsigned long long)(plat_mono_now_ns() % 1000000));
    int rc = bench_enroll(h, name, scope, d->id, &d->sk);
    struct http_options opt;
    memset(&opt, 0, sizeof opt);
    opt.base_url = url;
    opt.max_attempts = 1;
    opt.low_speed_limit = 1;
    opt.low_speed_time = (long)hold + 15;
    opt.user_agent = "cmc-bench";
    rc = bench_device_client(rc, &opt, d->id, d->sk, &d->client);
    if (rc == CMC_OK)
        http_client_set_progress(d->client, sim_abort, NULL);
    d->hold = hold;
    return rc;
}

static int cmd_fleet(int argc, char **argv)
{
    long n = 0, hold = 0, secs = 0;
    hub *h = NULL;
    struct sim *sims = NULL;
    uint8_t hub_pk[CRY_SIGN_PK_BYTES];
    uint64_t head = 0;
    long started = 0;
    if (argc != 7)
        return cmc_fail(CMC_ERR_USAGE, "usage: live_bench fleet HUBDIR URL N SCOPE HOLD SECONDS READYFILE");
    const struct bench_num nums[] = {
        { argv[2], 1, LIVE_MAX_DEVICES, &n },
        { argv[4], 1, WIRE_WAIT_HOLD_MAX, &hold },
        { argv[5], 1, 3600, &secs },
    };
    int rc = parse_longs(nums, 3);
    if (rc != CMC_OK)
        return rc;
    if ((sims = cmc_calloc((size_t)n, sizeof *sims)) == NULL)
        return cmc_fail(CMC_ERR_NOMEM, "devices");
    uint64_t t_enroll = plat_mono_now_ns();
    if ((rc = hub_open(argv[0], &h)) == CMC_OK && (rc = hub_head_seq(h, &head)) == CMC_OK)
        hub_public_key(h, hub_pk);
    for (long i = 0; rc == CMC_OK && i < n; i++) {
        rc = sim_enroll(h, argv[1], argv[3], i, (unsigned)hold, &sims[i]);
        sims[i].cursor = head; /* current devices: what they hold is the hub's as of now */
        sims[i].hub_pk = hub_pk;
    }
    hub_close(h);
    h = NULL;
    if (rc != CMC_OK)
        goto out;
    fprintf(stderr, "fleet: %ld devices enrolled in %.1f s\n", n, ms_since(t_enroll) / 1000.0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (long i = 0; i < n; i++) {
        if (pthread_create(&sims[i].thread, &attr, sim_run, &sims[i]) != 0) {
            rc = cmc_fail(CMC_ERR_IO, "cannot start device thread %ld", i);
            stop_requested = 1;
            break;
        }
        started++;
        if (i % 50 == 49)
            sleep_real_ms(20); /* a fleet comes online over a moment, not in one instant */
    }
    pthread_attr_destroy(&attr);
    for (int i = 0; i < 600 && atomic_load(&sims_sent) < started && !stop_requested; i++)
        sleep_real_ms(100);
    sleep_real_ms(1000); /* the last waits reach the hub and are held */
    if (rc == CMC_OK && plat_write_atomic(argv[6], (const uint8_t *)"ready\n", 6) != CMC_OK)
        rc = cmc_fail(CMC_ERR_IO, "cannot write %s", argv[6]);
    uint64_t end = plat_mono_now_ns() + (uint64_t)secs * 1000000000ull;
    while (!stop_requested && plat_mono_now_ns() < end)
        sleep_real_ms(100);
    stop_requested = 1;
    for (long i = 0; i < started; i++)
        pthread_join(sims[i].thread, NULL);
    uint64_t wakes = 0, pulls = 0, acks = 0, idle = 0, idle_bytes = 0, werr = 0, perr = 0;
    for (long i = 0; i < started; i++) {
        wakes += sims[i].wakes;
        pulls += sims[i].pulls;
        acks += sims[i].acks;
        idle += sims[i].idle_cycles;
        idle_bytes += sims[i].idle_bytes;
        werr += sims[i].wait_errors;
        perr += sims[i].pull_errors;
    }
    double per_cycle = idle > 0 ? (double)idle_bytes / (double)idle : 0.0;
    const char *first_error = "";
    for (long i = 0; i < started && first_error[0] == '\0'; i++)
        first_error = sims[i].first_error;
    printf("{\"devices\": %ld, \"hold_s\": %ld, \"wakes\": %" PRIu64 ", \"pulls\": %" PRIu64
           ", \"acks\": %" PRIu64 ", \"wait_errors\": %" PRIu64 ", \"pull_errors\": %" PRIu64
           ", \"idle_waits\": %" PRIu64 ", \"idle_bytes_per_wait\": %.1f, \"idle_bytes_per_device_hour\": %.0f"
           ", \"first_wait_error\": \"%s\"}\n",
           n, hold, wakes, pulls, acks, werr, perr, idle, per_cycle, per_cycle * 3600.0 / (double)hold,
           first_error);
out:
    hub_close(h);
    for (long i = 0; sims != NULL && i < n; i++) {
        http_client_free(sims[i].client);
        cry_secret_free(sims[i].sk);
    }
    cmc_free(sims);
    return rc;
}

/* ---- probe -------------------------------------------------------------------------------- */

static int run_hub(const char *bin, const char *dir, const char *verb, const char *id)
{
    char *argv_w[] = { (char *)bin, "--dir", (char *)dir, "plan", (char *)verb, (char *)id, "--as", LIVE_GP,
                       "--reason", "bench", NULL };
    if (strcmp(verb, "approve") == 0)
        argv_w[8] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1 /* O_WRONLY */, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
    pid_t pid;
    int status = 0;
    int err = posix_spawn(&pid, bin, &fa, NULL, argv_w, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0)
        return cmc_fail(CMC_ERR_IO, "cannot run %s", bin);
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return cmc_fail(CMC_ERR_STATE, "cmc-hub plan %s %s failed", verb, id);
    return CMC_OK;
}

static int cmd_probe(int argc, char **argv)
{
    long first = 0, count = 0;
    struct cli_opts opts;
    struct cli_session session;
    char (*ids)[PLAN_ID_LEN + 1] = NULL, (*nhs)[PLAN_NHS_LEN + 1] = NULL;
    double *lat = NULL;
    size_t n_plans = 0, n_lat = 0, late = 0;
    memset(&opts, 0, sizeof opts);
    memset(&session, 0, sizeof session);
    if (argc != 7)
        return cmc_fail(CMC_ERR_USAGE, "usage: live_bench probe AGENTDIR HUBDIR HUBBIN PLANS MODE FIRST COUNT");
    int withdraw = strcmp(argv[4], "withdraw") == 0;
    if (!withdraw && strcmp(argv[4], "approve") != 0)
        return cmc_fail(CMC_ERR_USAGE, "MODE is approve or withdraw");
    const struct bench_num nums[] = { { argv[5], 0, LIVE_MAX_PLANS, &first }, { argv[6], 1, LIVE_MAX_PLANS, &count } };
    int rc = parse_longs(nums, 2);
    if (rc != CMC_OK)
        return rc;
    ids = cmc_calloc(LIVE_MAX_PLANS, sizeof *ids);
    nhs = cmc_calloc(LIVE_MAX_PLANS, sizeof *nhs);
    lat = cmc_calloc((size_t)count, sizeof *lat);
    FILE *f = fopen(argv[3], "r");
    if (ids == NULL || nhs == NULL || lat == NULL || f == NULL) {
        rc = f == NULL ? cmc_fail(CMC_ERR_IO, "cannot read %s", argv[3]) : cmc_fail(CMC_ERR_NOMEM, "plans");
        goto out;
    }
    while (n_plans < LIVE_MAX_PLANS && fscanf(f, "%36s %10s", ids[n_plans], nhs[n_plans]) == 2)
        n_plans++;
    fclose(f);
    if ((size_t)(first + count) > n_plans) {
        rc = cmc_fail(CMC_ERR_USAGE, "%s holds %zu plans", argv[3], n_plans);
        goto out;
    }
    opts.dir = argv[0];
    if (plat_path_join(opts.slots_path, sizeof opts.slots_path, argv[0], "keyslots") != CMC_OK ||
        plat_path_join(opts.replica_path, sizeof opts.replica_path, argv[0], "replica.db") != CMC_OK ||
        plat_path_join(opts.lock_path, sizeof opts.lock_path, argv[0], "lock") != CMC_OK) {
        rc = cmc_fail(CMC_ERR_USAGE, "agent directory name too long");
        goto out;
    }
    if ((rc = cli_unlock(&opts, &session)) != CMC_OK)
        goto out;
    for (long i = first; rc == CMC_OK && i < first + count; i++) {
        if ((rc = run_hub(argv[2], argv[1], withdraw ? "withdraw-consent" : "approve", ids[i])) != CMC_OK)
            break;
        uint64_t t0 = plat_mono_now_ns();
        int done = 0;
        while (!done && ms_since(t0) < LIVE_PROBE_TIMEOUT_MS) {
            struct plan p;
            int got = store_plan_get(session.store, nhs[i], &p);
            if (got == CMC_OK)
                plan_free(&p);
            else if (got != CMC_ERR_NOT_FOUND) {
                rc = got;
                break;
            }
            done = withdraw ? got == CMC_ERR_NOT_FOUND : got == CMC_OK;
            if (!done)
                sleep_real_ms(5);
        }
        if (!done && rc == CMC_OK)
            late++;
        lat[n_lat++] = ms_since(t0);
        /* the next event when the fleet's wake-ups have settled, at an uneven moment */
        sleep_real_ms(1500 + (long)(plat_mono_now_ns() % 1000));
    }
    if (rc != CMC_OK)
        goto out;
    struct bench_dist d = dist_of(lat, n_lat);
    printf("{\"mode\": \"%s\", \"n\": %zu, \"timed_out\": %zu, \"p50_ms\": %.1f, \"p99_ms\": %.1f, "
           "\"min_ms\": %.1f, \"max_ms\": %.1f, \"mean_ms\": %.1f}\n",
           argv[4], n_lat, late, d.p50, d.p99, d.min, d.max, d.mean);
out:
    cli_session_close(&session);
    cmc_free(ids);
    cmc_free(nhs);
    cmc_free(lat);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct bench_cmd cmds[] = {
        { "prepare", cmd_prepare },
        { "fleet", cmd_fleet },
        { "probe", cmd_probe },
    };
    return bench_main("live_bench", "prepare|fleet|probe", cmds, sizeof cmds / sizeof cmds[0], argc,
                      argv);
}
