/*
 * cmc_bench - the benchmark driver behind `make bench` (bench/run.sh).
 *
 * It drives the libraries directly where a measurement must not include process start-up or
 * the PIN unlock (a long-running agent), and stays out of the way where the whole process is
 * what a user waits for (run.sh times `cmc-agent` itself for those). Every subcommand prints
 * one JSON object on stdout; run.sh collects them into results.json.
 *
 *   cmc_bench export HUBDIR                 every plan a scope-"all" urgent-care device holds
 *                                           (published, consent not withdrawn), as JSON lines
 *                                           in the form of examples/plan.json (for the peer)
 *   cmc_bench initial AGENTDIR              PIN unlock, then one engine_sync from nothing
 *   cmc_bench rounds AGENTDIR HUBDIR R C    R rounds: C published plans changed on the hub,
 *                                           then one timed engine_sync in the same process;
 *                                           then R idle polls (nothing new)
 *   cmc_bench change HUBDIR C ROUND         only the hub side of one round (whole-process
 *                                           rounds are timed by run.sh around cmc-agent sync)
 *   cmc_bench lookup AGENTDIR HUBDIR N      PIN unlock, store open, first lookup straight
 *                                           after opening, then N warm lookups by NHS number
 *   cmc_bench load HUBDIR URL D T SECONDS   D enrolled devices on T threads, each device on
 *                                           its own kept-alive connection, sending signed
 *                                           idle polls (GET /v1/pull?cursor=<head>) for a
 *                                           fixed time; the hub's rate
 *                                           (HTTPS: trusts the CA file $CMC_BENCH_CA)
 *   cmc_bench pages HUBDIR OUT BUDGET [Z] a new scope-"all" device's snapshot pulled from
 *                                           the hub store in pages of BUDGET bytes (Z=1:
 *                                           Brotli bodies); each page's raw body to OUT
 *   cmc_bench nhs HUBDIR                    an NHS number a scope-"all" device holds and a
 *                                           valid one it does not (whole-process lookups)
 *
 * The agent's PIN comes from CMC_PIN, as for cmc-agent. Timings use the monotonic clock.
 * Only loopback URLs are used (sync/http.h refuses plain http elsewhere).
 *
 * Exit status: 0 when the measurement ran, 1 when something failed (one line on stderr).
 */
#include "agent/cli.h"
#include "bench/bench_hub.h"
#include "bench/bench_util.h"
#include "agent/engine.h"
#include "agent/store.h"
#include "crypto/cry.h"
#include "hub/hub.h"
#include "platform/alloc.h"
#include "platform/err.h"
#include "platform/plat.h"
#include "sync/http.h"
#include "sync/bundle.h"
#include "sync/plan.h"
#include "sync/zbody.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#define BENCH_GP "bench-gp"
#define BENCH_MAX_DEVICES 250 /* the hub serves at most 256 connections */
#define BENCH_MAX_THREADS 64
#define BENCH_MAX_SECONDS 60

/* ---- small helpers ------------------------------------------------------------------------ */

static void print_dist(const char *name, double *v, size_t n, int last)
{
    struct bench_dist d = dist_of(v, n);
    printf("\"%s\": {\"n\": %zu, \"p50\": %.4f, \"p99\": %.4f, \"p999\": %.4f, \"min\": %.4f, "
           "\"max\": %.4f, \"mean\": %.4f}%s\n",
           name, n, d.p50, d.p99, d.p999, d.min, d.max, d.mean, last ? "" : ",");
}

/* A small deterministic generator (splitmix64), so every run picks the same plans. */
static uint64_t next_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The process's peak resident set size so far, in KiB (getrusage: Linux reports ru_maxrss
 * in KiB). */
static long peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

/* ---- the agent side ----------------------------------------------------------------------- */

struct agent {
    struct cli_opts opts;
    struct cli_session session;
    struct engine_config cfg;
    double unlock_ms; /* key-slot load + Argon2id + store open */
};

static int agent_open(const char *dir, struct agent *a)
{
    memset(a, 0, sizeof *a);
    a->opts.dir = dir;
    if (plat_path_join(a->opts.slots_path, sizeof a->opts.slots_path, dir, "keyslots") != CMC_OK ||
        plat_path_join(a->opts.replica_path, sizeof a->opts.replica_path, dir, "replica.db") != CMC_OK ||
        plat_path_join(a->opts.lock_path, sizeof a->opts.lock_path, dir, "lock") != CMC_OK)
        return cmc_fail(CMC_ERR_USAGE, "agent directory name too long");
    a->cfg.dir = dir;
    a->cfg.slots_path = a->opts.slots_path;
    a->cfg.replica_path = a->opts.replica_path;
    engine_config_paging(&a->cfg); /* the paging `cmc-agent sync` uses */
    uint64_t t0 = plat_mono_now_ns();
    int rc = cli_unlock(&a->opts, &a->session);
    a->unlock_ms = ms_since(t0);
    return rc;
}

static void agent_close(struct agent *a)
{
    cli_session_close(&a->session);
}

static void print_report(const char *name, const struct engine_report *r, int last)
{
    printf("\"%s\": {\"pages\": %" PRIu64 ", \"puts\": %" PRIu64 ", \"deltas\": %" PRIu64
           ", \"purges\": %" PRIu64 ", \"bytes_received\": %" PRIu64 ", \"bytes_sent\": %" PRIu64
           ", \"requests\": %" PRIu64 ", \"connections\": %" PRIu64 ", \"cursor\": %" PRId64 "}%s\n",
           name, r->pages, r->puts, r->deltas, r->purges, r->bytes_received, r->bytes_sent, r->requests,
           r->connections, r->cursor, last ? "" : ",");
}

static int cmd_initial(int argc, char **argv)
{
    if (argc != 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench initial AGENTDIR");
    struct agent a;
    struct engine_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = agent_open(argv[0], &a);
    if (rc != CMC_OK)
        goto out;
    long peak_before = peak_rss_kib();
    uint64_t t0 = plat_mono_now_ns();
    rc = engine_sync(&a.session.store, &a.cfg, NULL, NULL, &rep);
    double sync_ms = ms_since(t0);
    long peak_after = peak_rss_kib();
    if (rc != CMC_OK)
        goto out;
    uint64_t plans = rep.puts + rep.deltas;
    printf("{\"unlock_ms\": %.3f, \"sync_ms\": %.3f, \"plans\": %" PRIu64 ", \"plans_per_s\": %.1f,\n",
           a.unlock_ms, sync_ms, plans, sync_ms > 0 ? (double)plans / (sync_ms / 1000.0) : 0.0);
    /* the peak before the sync is the unlock's (Argon2id's 64 MiB); a larger peak after it
     * is the sync's own */
    printf("\"peak_rss_after_unlock_kib\": %ld, \"peak_rss_after_sync_kib\": %ld,\n", peak_before,
           peak_after);
    print_report("report", &rep, 1);
    printf("}\n");
out:
    agent_close(&a);
    return rc;
}

/* ---- the hub side of a round -------------------------------------------------------------- */

/* Changes `count` distinct published plans (picked from `round`) by one field each, as a
 * clinician would: a new version edited, submitted and approved. */
static int hub_changes(hub *h, long count, long round, double *ms_out)
{
    struct bench_list p = { .width = PLAN_ID_LEN + 1 };
    uint64_t t0 = plat_mono_now_ns();
    int rc = bench_ensure_user(h, BENCH_GP, "gp");
    if (rc == CMC_OK)
        rc = hub_plan_list(h, 0, bench_collect_current, &p);
    if (rc != CMC_OK)
        goto out;
    if ((size_t)count > p.n) {
        rc = cmc_fail(CMC_ERR_STATE, "only %zu published plans to change", p.n);
        goto out;
    }
    uint64_t state = 0x5eed0000ull + (uint64_t)round;
    /* a partial Fisher-Yates shuffle picks `count` distinct plans */
    for (long i = 0; rc == CMC_OK && i < count; i++) {
        size_t j = (size_t)i + (size_t)(next_rand(&state) % (p.n - (size_t)i));
        char tmp[PLAN_ID_LEN + 1];
        memcpy(tmp, bench_list_at(&p, (size_t)i), sizeof tmp);
        memcpy(bench_list_at(&p, (size_t)i), bench_list_at(&p, j), sizeof tmp);
        memcpy(bench_list_at(&p, j), tmp, sizeof tmp);
        char doc[160];
        int n = snprintf(doc, sizeof doc, "{\"set\": {\"prognosis\": \"weeks (reviewed, round %ld)\"}}", round);
        rc = bench_plan_change(h, BENCH_GP, bench_list_at(&p, (size_t)i), doc, (size_t)n);
    }
out:
    bench_list_free(&p);
    *ms_out = ms_since(t0);
    return rc;
}

static int cmd_change(int argc, char **argv)
{
    long count = 0, round = 0;
    hub *h = NULL;
    double ms = 0;
    if (argc != 3)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench change HUBDIR COUNT ROUND");
    const struct bench_num nums[] = { { argv[1], 1, 100000, &count }, { argv[2], 0, 1000000, &round } };
    int rc = parse_longs(nums, 2);
    if (rc == CMC_OK)
        rc = hub_open(argv[0], &h);
    if (rc == CMC_OK)
        rc = hub_changes(h, count, round, &ms);
    if (rc == CMC_OK)
        printf("{\"changed\": %ld, \"hub_ms\": %.3f}\n", count, ms);
    hub_close(h);
    return rc;
}

static int cmd_rounds(int argc, char **argv)
{
    long rounds = 0, count = 0;
    hub *h = NULL;
    struct agent a;
    double *delta = NULL, *idle = NULL, *hub_ms = NULL;
    struct engine_report last_delta, last_idle;
    memset(&a, 0, sizeof a);
    memset(&last_delta, 0, sizeof last_delta);
    memset(&last_idle, 0, sizeof last_idle);
    if (argc != 4)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench rounds AGENTDIR HUBDIR ROUNDS CHANGES");
    const struct bench_num nums[] = { { argv[2], 1, 10000, &rounds }, { argv[3], 1, 100000, &count } };
    int rc = parse_longs(nums, 2);
    if (rc != CMC_OK)
        return rc;
    delta = cmc_calloc((size_t)rounds, sizeof *delta);
    idle = cmc_calloc((size_t)rounds, sizeof *idle);
    hub_ms = cmc_calloc((size_t)rounds, sizeof *hub_ms);
    if (delta == NULL || idle == NULL || hub_ms == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "samples");
        goto out;
    }
    if ((rc = agent_open(argv[0], &a)) != CMC_OK || (rc = hub_open(argv[1], &h)) != CMC_OK)
        goto out;
    uint64_t changed_total = 0;
    for (long r = 0; rc == CMC_OK && r < rounds; r++) {
        /* round numbers above those of the whole-process rounds keep every edit a change */
        if ((rc = hub_changes(h, count, 1000 + r, &hub_ms[r])) != CMC_OK)
            break;
        struct engine_report rep;
        uint64_t t0 = plat_mono_now_ns();
        rc = engine_sync(&a.session.store, &a.cfg, NULL, NULL, &rep);
        delta[r] = ms_since(t0);
        changed_total += rep.puts + rep.deltas;
        last_delta = rep;
    }
    for (long r = 0; rc == CMC_OK && r < rounds; r++) {
        struct engine_report rep;
        uint64_t t0 = plat_mono_now_ns();
        rc = engine_sync(&a.session.store, &a.cfg, NULL, NULL, &rep);
        idle[r] = ms_since(t0);
        last_idle = rep;
    }
    if (rc != CMC_OK)
        goto out;
    printf("{\"rounds\": %ld, \"changes_per_round\": %ld, \"plans_received\": %" PRIu64 ",\n", rounds, count,
           changed_total);
    print_dist("delta_ms", delta, (size_t)rounds, 0);
    print_dist("idle_ms", idle, (size_t)rounds, 0);
    print_dist("hub_change_ms", hub_ms, (size_t)rounds, 0);
    print_report("last_delta", &last_delta, 0);
    print_report("last_idle", &last_idle, 1);
    printf("}\n");
out:
    hub_close(h);
    agent_close(&a);
    cmc_free(delta);
    cmc_free(idle);
    cmc_free(hub_ms);
    return rc;
}

/* ---- lookups ------------------------------------------------------------------------------ */

static int cmd_lookup(int argc, char **argv)
{
    long n = 0;
    hub *h = NULL;
    struct agent a;
    struct bench_list list = { .width = PLAN_NHS_LEN + 1 };
    double *warm = NULL, *first = NULL, *open_ms = NULL;
    struct cry_secret *key = NULL;
    memset(&a, 0, sizeof a);
    if (argc != 3)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench lookup AGENTDIR HUBDIR N");
    int rc = parse_long(argv[2], 100, 10000000, &n);
    if (rc != CMC_OK)
        return rc;
    /* the NHS numbers a scope-"all" device holds, from the hub (not timed) */
    if ((rc = hub_open(argv[1], &h)) != CMC_OK || (rc = hub_plan_list(h, 0, bench_collect_nhs, &list)) != CMC_OK)
        goto out;
    hub_close(h);
    h = NULL;
    if (list.n == 0) {
        rc = cmc_fail(CMC_ERR_STATE, "no published plans on the hub");
        goto out;
    }
    enum { COLD = 10 };
    warm = cmc_calloc((size_t)n, sizeof *warm);
    first = cmc_calloc(COLD, sizeof *first);
    open_ms = cmc_calloc(COLD, sizeof *open_ms);
    if (warm == NULL || first == NULL || open_ms == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "samples");
        goto out;
    }
    if ((rc = agent_open(argv[0], &a)) != CMC_OK)
        goto out;
    /* a copy of the replica key, to reopen the store without another Argon2id */
    if ((rc = cry_secret_new(a.session.key->len, &key)) != CMC_OK)
        goto out;
    memcpy(key->buf, a.session.key->buf, key->len);
    uint64_t state = 0x100c0000ull;
    /* straight after opening: a fresh handle, nothing of the replica in SQLite's cache */
    for (int i = 0; rc == CMC_OK && i < COLD; i++) {
        store_close(a.session.store);
        a.session.store = NULL;
        uint64_t t0 = plat_mono_now_ns();
        if ((rc = store_open(a.opts.replica_path, key, &a.session.who, &a.session.store)) != CMC_OK)
            break;
        open_ms[i] = ms_since(t0);
        struct plan p;
        const char *nhs = bench_list_at(&list, next_rand(&state) % list.n);
        t0 = plat_mono_now_ns();
        rc = store_plan_get(a.session.store, nhs, &p);
        first[i] = ms_since(t0) * 1000.0;
        if (rc == CMC_OK)
            plan_free(&p);
    }
    size_t missing = 0;
    /* bounded in time as well as in count: a slow lookup path must not stall the run */
    uint64_t stop = plat_mono_now_ns() + 15ull * 1000000000ull;
    long done = 0;
    for (long i = 0; rc == CMC_OK && i < n && plat_mono_now_ns() < stop; i++, done++) {
        struct plan p;
        const char *nhs = bench_list_at(&list, next_rand(&state) % list.n);
        uint64_t t0 = plat_mono_now_ns();
        int got = store_plan_get(a.session.store, nhs, &p);
        warm[i] = ms_since(t0) * 1000.0;
        if (got == CMC_OK)
            plan_free(&p);
        else if (got == CMC_ERR_NOT_FOUND)
            missing++;
        else
            rc = got;
    }
    if (rc != CMC_OK)
        goto out;
    printf("{\"unlock_ms\": %.3f, \"plans_on_hub\": %zu, \"missing\": %zu,\n", a.unlock_ms, list.n, missing);
    print_dist("open_ms", open_ms, COLD, 0);
    print_dist("first_lookup_us", first, COLD, 0);
    print_dist("warm_lookup_us", warm, (size_t)done, 1);
    printf("}\n");
out:
    cry_secret_free(key);
    hub_close(h);
    agent_close(&a);
    bench_list_free(&list);
    cmc_free(warm);
    cmc_free(first);
    cmc_free(open_ms);
    return rc;
}

static int nhs_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Two NHS numbers for the whole-process lookups: one a scope-"all" device holds, and one
 * valid (Modulus 11) number it does not. */
static int cmd_nhs(int argc, char **argv)
{
    hub *h = NULL;
    struct bench_list list = { .width = PLAN_NHS_LEN + 1 };
    if (argc != 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench nhs HUBDIR");
    int rc = hub_open(argv[0], &h);
    if (rc == CMC_OK)
        rc = hub_plan_list(h, 0, bench_collect_nhs, &list);
    if (rc == CMC_OK && list.n == 0)
        rc = cmc_fail(CMC_ERR_STATE, "no published plans on the hub");
    if (rc == CMC_OK) {
        qsort(list.v, list.n, list.width, nhs_cmp);
        uint64_t state = 0x4e4853ull;
        const char *hit = bench_list_at(&list, next_rand(&state) % list.n);
        char miss[PLAN_NHS_LEN + 1];
        for (int tries = 0;; tries++) {
            snprintf(miss, sizeof miss, "%010" PRIu64, (uint64_t)(9000000000ull + next_rand(&state) % 999999999ull));
            if (plan_nhs_valid(miss) && bsearch(miss, list.v, list.n, list.width, nhs_cmp) == NULL)
                break;
            if (tries > 100000) {
                rc = cmc_fail(CMC_ERR_STATE, "no NHS number outside the hub's plans");
                break;
            }
        }
        if (rc == CMC_OK)
            printf("%s\n%s\n", hit, miss);
    }
    hub_close(h);
    bench_list_free(&list);
    return rc;
}

/* ---- export for the peer ------------------------------------------------------------------ */

struct export_ctx {
    hub *h;
    long written;
};

static int export_one(const struct hub_plan_info *info, void *ctx)
{
    struct export_ctx *e = ctx;
    if (info->published_version <= 0 || info->consent_withdrawn)
        return 0;
    struct plan p;
    char *text = NULL;
    size_t len = 0;
    int rc = hub_plan_get(e->h, info->plan_id, info->published_version, &p);
    if (rc != CMC_OK)
        return rc;
    rc = plan_to_json(&p, 0, &text, &len);
    plan_free(&p);
    if (rc != CMC_OK)
        return rc;
    if (fwrite(text, 1, len, stdout) != len || fputc('\n', stdout) == EOF)
        rc = cmc_fail(CMC_ERR_IO, "export: cannot write to stdout");
    cmc_free(text);
    e->written++;
    return rc;
}

static int cmd_export(int argc, char **argv)
{
    if (argc != 1)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench export HUBDIR");
    struct export_ctx e = { NULL, 0 };
    int rc = hub_open(argv[0], &e.h);
    if (rc == CMC_OK)
        rc = hub_plan_list(e.h, 0, export_one, &e);
    if (rc == CMC_OK && fflush(stdout) != 0)
        rc = cmc_fail(CMC_ERR_IO, "export: cannot write to stdout");
    if (rc == CMC_OK)
        fprintf(stderr, "exported %ld plans\n", e.written);
    hub_close(e.h);
    return rc;
}

/* ---- many devices polling ----------------------------------------------------------------- */

struct device {
    char id[PLAN_ID_LEN + 1];
    struct cry_secret *sk;
    http_client *client;
};

struct worker {
    pthread_t thread;
    struct device *devices;
    size_t n_devices;
    const char *path;
    uint64_t deadline_ns;
    uint64_t ok, failed, bytes_received, bytes_sent;
    double *lat_us; /* one sample per request, up to cap */
    size_t n_lat, cap_lat;
    int first_error;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    /* Bounded: stops at the deadline, and after cap_lat requests at most. */
    for (size_t i = 0; plat_mono_now_ns() < w->deadline_ns && w->n_lat < w->cap_lat; i++) {
        struct device *d = &w->devices[i % w->n_devices];
        struct http_response resp;
        http_response_init(&resp);
        uint64_t t0 = plat_mono_now_ns();
        int rc = http_request(d->client, "GET", w->path, NULL, NULL, 0, 0, &resp);
        w->lat_us[w->n_lat++] = ms_since(t0) * 1000.0;
        if (rc == CMC_OK && resp.status == 200) {
            w->ok++;
        } else {
            if (w->failed == 0)
                w->first_error = rc;
            w->failed++;
        }
        http_response_free(&resp);
    }
    for (size_t i = 0; i < w->n_devices; i++) {
        struct http_stats st;
        http_client_stats(w->devices[i].client, &st);
        w->bytes_received += st.bytes_received;
        w->bytes_sent += st.bytes_sent;
    }
    return NULL;
}

static int enroll_device(hub *h, const char *url, long i, struct device *d)
{
    char name[HUB_NAME_MAX + 1];
    snprintf(name, sizeof name, "bench-poller-%ld", i);
    int rc = bench_enroll(h, name, "all", d->id, &d->sk);
    struct http_options opt;
    memset(&opt, 0, sizeof opt);
    opt.base_url = url;
    opt.max_attempts = 1; /* a failure is counted, never hidden by a retry */
    opt.user_agent = "cmc-bench";
    opt.ca_file = getenv("CMC_BENCH_CA"); /* the benchmark's own CA when the hub serves HTTPS */
    return bench_device_client(rc, &opt, d->id, d->sk, &d->client);
}

static int cmd_load(int argc, char **argv)
{
    long n_dev = 0, n_thr = 0, secs = 0;
    hub *h = NULL;
    struct device *devs = NULL;
    struct worker *w = NULL;
    double *all = NULL;
    long started = 0;
    if (argc != 5)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench load HUBDIR URL DEVICES THREADS SECONDS");
    const struct bench_num nums[] = {
        { argv[2], 1, BENCH_MAX_DEVICES, &n_dev },
        { argv[3], 1, BENCH_MAX_THREADS, &n_thr },
        { argv[4], 1, BENCH_MAX_SECONDS, &secs },
    };
    int rc = parse_longs(nums, 3);
    if (rc == CMC_OK && n_thr > n_dev)
        rc = cmc_fail(CMC_ERR_USAGE, "more threads than devices");
    if (rc != CMC_OK)
        return rc;
    devs = cmc_calloc((size_t)n_dev, sizeof *devs);
    w = cmc_calloc((size_t)n_thr, sizeof *w);
    if (devs == NULL || w == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "devices");
        goto out;
    }
    uint64_t head = 0;
    if ((rc = hub_open(argv[0], &h)) != CMC_OK || (rc = hub_head_seq(h, &head)) != CMC_OK)
        goto out;
    for (long i = 0; rc == CMC_OK && i < n_dev; i++)
        rc = enroll_device(h, argv[1], i, &devs[i]);
    hub_close(h);
    h = NULL;
    if (rc != CMC_OK)
        goto out;
    char path[64];
    snprintf(path, sizeof path, "/v1/pull?cursor=%" PRIu64, head);
    /* one poll per device first, so every connection is open before the clock starts */
    for (long i = 0; rc == CMC_OK && i < n_dev; i++) {
        struct http_response resp;
        http_response_init(&resp);
        rc = http_request(devs[i].client, "GET", path, NULL, NULL, 0, 0, &resp);
        http_response_free(&resp);
    }
    if (rc != CMC_OK)
        goto out;
    size_t cap = (size_t)secs * 200000u / (size_t)n_thr + 1;
    uint64_t deadline = plat_mono_now_ns() + (uint64_t)secs * 1000000000ull;
    size_t per = (size_t)n_dev / (size_t)n_thr;
    for (long t = 0; t < n_thr; t++) {
        w[t].devices = devs + (size_t)t * per;
        w[t].n_devices = t == n_thr - 1 ? (size_t)n_dev - (size_t)t * per : per;
        w[t].path = path;
        w[t].deadline_ns = deadline;
        w[t].cap_lat = cap;
        if ((w[t].lat_us = cmc_calloc(cap, sizeof *w[t].lat_us)) == NULL) {
            rc = cmc_fail(CMC_ERR_NOMEM, "samples");
            break;
        }
    }
    /* the warm-up polls are not counted: take each client's counters afresh */
    uint64_t t0 = plat_mono_now_ns();
    for (long t = 0; rc == CMC_OK && t < n_thr; t++) {
        if (pthread_create(&w[t].thread, NULL, worker_run, &w[t]) != 0) {
            rc = cmc_fail(CMC_ERR_IO, "cannot start a load thread");
            break;
        }
        started++;
    }
    for (long t = 0; t < started; t++)
        pthread_join(w[t].thread, NULL);
    double elapsed_s = ms_since(t0) / 1000.0;
    if (rc != CMC_OK)
        goto out;
    uint64_t ok = 0, failed = 0, rx = 0, tx = 0;
    size_t n_all = 0;
    int first_error = CMC_OK;
    for (long t = 0; t < n_thr; t++) {
        ok += w[t].ok;
        failed += w[t].failed;
        rx += w[t].bytes_received;
        tx += w[t].bytes_sent;
        n_all += w[t].n_lat;
        if (first_error == CMC_OK)
            first_error = w[t].first_error;
    }
    if ((all = cmc_calloc(n_all + 1, sizeof *all)) == NULL) {
        rc = cmc_fail(CMC_ERR_NOMEM, "samples");
        goto out;
    }
    size_t k = 0;
    for (long t = 0; t < n_thr; t++)
        for (size_t i = 0; i < w[t].n_lat; i++)
            all[k++] = w[t].lat_us[i];
    printf("{\"devices\": %ld, \"threads\": %ld, \"seconds\": %.3f, \"ok\": %" PRIu64 ", \"failed\": %" PRIu64
           ", \"first_error\": \"%s\", \"polls_per_s\": %.1f, \"bytes_received_total\": %" PRIu64
           ", \"bytes_sent_total\": %" PRIu64 ",\n",
           n_dev, n_thr, elapsed_s, ok, failed, first_error == CMC_OK ? "" : cmc_errname(first_error),
           elapsed_s > 0 ? (double)ok / elapsed_s : 0.0, rx, tx);
    print_dist("latency_us", all, n_all, 1);
    printf("}\n");
out:
    hub_close(h);
    for (long i = 0; devs != NULL && i < n_dev; i++) {
        http_client_free(devs[i].client);
        cry_secret_free(devs[i].sk);
    }
    for (long t = 0; w != NULL && t < n_thr; t++)
        cmc_free(w[t].lat_us);
    cmc_free(devs);
    cmc_free(w);
    cmc_free(all);
    return rc;
}

/* ---- the snapshot's pages, for compression studies ---------------------------------------- */

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Enrolls a new scope-"all" urgent-care device and pulls its whole snapshot from the hub
 * store directly (no HTTP), in pages of BUDGET bytes; writes each page's inflated body (the
 * msgpack array of ops) to OUTDIR/page-NNNN.mp and prints the sizes. */
static int cmd_pages(int argc, char **argv)
{
    long budget = 0;
    hub *h = NULL;
    struct device d;
    memset(&d, 0, sizeof d);
    long codecs = 0;
    if (argc != 3 && argc != 4)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc_bench pages HUBDIR OUTDIR BUDGET [CODECS]");
    int rc = parse_long(argv[2], HUB_BUDGET_MIN, HUB_BUDGET_MAX, &budget);
    if (rc == CMC_OK && argc == 4)
        rc = parse_long(argv[3], 0, 1, &codecs);
    if (rc == CMC_OK)
        rc = hub_open(argv[0], &h);
    char name[HUB_NAME_MAX + 1], code[HUB_CODE_LEN + 1];
    uint8_t pk[CRY_SIGN_PK_BYTES];
    struct hub_enrollment en;
    snprintf(name, sizeof name, "bench-pages-%ld", (long)plat_mono_now_ns() % 1000000);
    if (rc == CMC_OK)
        rc = hub_device_add(h, name, "all", "urgent_care", d.id, code);
    if (rc == CMC_OK)
        rc = cry_sign_keypair(pk, &d.sk);
    if (rc == CMC_OK)
        rc = hub_enroll(h, code, pk, name, &en);
    uint64_t cursor = 0, body_total = 0, raw_total = 0;
    int pages = 0, more = 1;
    while (rc == CMC_OK && more) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if ((rc = hub_pull_opts(h, d.id, cursor, cursor, (size_t)budget, PLAN_EDITION_CURRENT,
                                (uint64_t)codecs, &buf, &len)) != CMC_OK)
            break;
        uint32_t body_len = be32(buf + 44), raw_len = be32(buf + 48);
        more = (buf[7] & BUNDLE_FLAG_MORE) != 0;
        cursor = be64(buf + 32);
        uint8_t *raw = NULL;
        if (buf[7] & BUNDLE_FLAG_BROTLI) {
            rc = zbody_unpack(buf + BUNDLE_HEADER_BYTES, body_len, raw_len, &raw);
        } else {
            raw = cmc_malloc((size_t)raw_len + 1);
            uLongf rl = raw_len + 1;
            if (raw == NULL || uncompress(raw, &rl, buf + BUNDLE_HEADER_BYTES, body_len) != Z_OK ||
                rl != raw_len)
                rc = cmc_fail(CMC_ERR_CORRUPT, "page %d does not inflate", pages);
        }
        char path[1100];
        snprintf(path, sizeof path, "%s/page-%04d.mp", argv[1], pages);
        if (rc == CMC_OK)
            rc = plat_write_atomic(path, raw, raw_len);
        body_total += body_len;
        raw_total += raw_len;
        pages++;
        cmc_free(raw);
        cmc_free(buf);
    }
    if (rc == CMC_OK)
        printf("{\"pages\": %d, \"body_bytes\": %" PRIu64 ", \"raw_bytes\": %" PRIu64 ", \"cursor\": %" PRIu64 "}\n",
               pages, body_total, raw_total, cursor);
    cry_secret_free(d.sk);
    hub_close(h);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct bench_cmd cmds[] = {
        { "export", cmd_export }, { "initial", cmd_initial }, { "rounds", cmd_rounds },
        { "change", cmd_change }, { "lookup", cmd_lookup },   { "load", cmd_load },
        { "nhs", cmd_nhs },       { "pages", cmd_pages },
    };
    return bench_main("cmc_bench", "export|initial|rounds|change|lookup|load", cmds,
                      sizeof cmds / sizeof cmds[0], argc, argv);
}
