/* cli_sync.c - the hub: enroll, and sync once or with --watch. */
#include "agent/cli.h"

#include "agent/engine.h"
#include "platform/err.h"
#include "platform/plat.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void engine_config_for(const struct cli_opts *o, struct engine_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->dir = o->dir;
    cfg->slots_path = o->slots_path;
    cfg->replica_path = o->replica_path;
    engine_config_paging(cfg);
}

int cli_cmd_enroll(struct cli_opts *o)
{
    if (o->hub == NULL || o->code == NULL || o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent enroll --hub URL --code CODE [--ca FILE] [--name DEVICE]");
    plat_lock *lock = NULL;
    struct cli_session s;
    int rc = plat_lock_acquire(o->lock_path, 0, &lock);
    if (rc != CMC_OK)
        return rc;
    if ((rc = cli_unlock(o, &s)) == CMC_OK) {
        struct engine_config cfg;
        engine_config_for(o, &cfg);
        rc = engine_enroll(s.store, &cfg, o->hub, o->code, o->ca, o->name ? o->name : "cmc-agent device");
        if (rc == CMC_OK && o->json)
            rc = cli_print_json(json_pack("{s:b, s:s}", "ok", 1, "hub", o->hub));
        else if (rc == CMC_OK)
            printf("Enrolled with %s; the hub's signing key and certificate are pinned. Run 'cmc-agent sync'.\n",
                   o->hub);
        cli_session_close(&s);
    }
    plat_lock_release(lock);
    return rc;
}

struct progress_ctx {
    int tty;
    uint64_t start_ns;
};

static void show_progress(void *ctx, const struct engine_report *r, int more)
{
    struct progress_ctx *p = ctx;
    if (!p->tty)
        return;
    double secs = (double)(plat_mono_now_ns() - p->start_ns) / 1e9;
    uint64_t done = r->puts + r->deltas + r->purges;
    fprintf(stderr, "\rsyncing: %llu plans received in %llu pages, %.0f plans/s%s", (unsigned long long)done,
            (unsigned long long)r->pages, secs > 0 ? (double)done / secs : 0.0, more ? "..." : "   \n");
    fflush(stderr);
}

static int sync_round(struct cli_opts *o, struct cli_session *s, int quiet)
{
    struct engine_config cfg;
    engine_config_for(o, &cfg);
    struct engine_report rep;
    struct progress_ctx pc = { .tty = !o->json && !quiet && isatty(STDERR_FILENO), .start_ns = plat_mono_now_ns() };
    int rc = engine_sync(&s->store, &cfg, show_progress, &pc, &rep);
    if (rep.wiped)
        return rc;
    if (rc != CMC_OK)
        return rc;
    if (o->json) {
        return cli_print_json(json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", 1,
                                    "rollback", rep.rollback,
                                    "cursor", (json_int_t)rep.cursor, "pages", (json_int_t)rep.pages, "puts",
                                    (json_int_t)rep.puts, "deltas", (json_int_t)rep.deltas, "purges",
                                    (json_int_t)rep.purges, "pushed", (json_int_t)rep.pushed, "conflicts",
                                    (json_int_t)rep.conflicts, "rebased", (json_int_t)rep.rebased,
                                    "discarded_edits", (json_int_t)rep.discarded_edits, "bytes_received",
                                    (json_int_t)rep.bytes_received, "requests", (json_int_t)rep.requests,
                                    "connections", (json_int_t)rep.connections));
    }
    if (!quiet || rep.puts + rep.deltas + rep.purges + rep.pushed + rep.conflicts > 0)
        printf("Synced: %llu plan%s updated, %llu removed, %llu edit%s pushed, %llu conflict%s; cursor %lld.\n",
               (unsigned long long)(rep.puts + rep.deltas), rep.puts + rep.deltas == 1 ? "" : "s",
               (unsigned long long)rep.purges, (unsigned long long)rep.pushed, rep.pushed == 1 ? "" : "s",
               (unsigned long long)rep.conflicts, rep.conflicts == 1 ? "" : "s", (long long)rep.cursor);
    if (rep.discarded_edits > 0)
        printf("Note: %llu pending edit%s discarded because %s plan was withdrawn from this device "
               "(consent withdrawn or left scope).\n",
               (unsigned long long)rep.discarded_edits, rep.discarded_edits == 1 ? " was" : "s were",
               rep.discarded_edits == 1 ? "its" : "their");
    if (rep.rollback)
        printf("Warning: this replica had been restored from an older copy. The hub noticed and sent what "
               "repairs it (withdrawn plans removed again, newer versions).\n");
    if (rep.conflicts > 0)
        printf("Some edits conflict with newer versions from the hub: see 'cmc-agent conflicts'.\n");
    fflush(stdout);
    return CMC_OK;
}

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Sleeps in small steps so a signal ends the wait promptly. */
static void sleep_interruptible(uint32_t ms)
{
    while (ms > 0 && !stop_requested) {
        uint32_t step = ms > 200 ? 200 : ms;
        plat_sleep_ms(step);
        ms -= step;
    }
}

static int watch_loop(struct cli_opts *o, struct cli_session *s)
{
    const char *iv = getenv("CMC_SYNC_INTERVAL");
    uint32_t interval = iv != NULL ? (uint32_t)strtoul(iv, NULL, 10) : 300;
    if (interval == 0)
        interval = 1;
    uint32_t backoff = interval;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int offline = 0;
    while (!stop_requested) {
        int rc = sync_round(o, s, 1);
        if (rc == CMC_ERR_WIPED || rc == CMC_ERR_UNAUTHORIZED || rc == CMC_ERR_TAMPERED || rc == CMC_ERR_STATE)
            return rc; /* nothing a retry can mend */
        uint32_t jitter;
        cry_random(&jitter, sizeof jitter);
        uint32_t wait;
        if (rc == CMC_OK) {
            if (offline)
                fprintf(stderr, "cmc-agent: the hub answers again; in sync\n");
            offline = 0;
            backoff = interval;
            wait = interval * 1000u;
            wait = wait - wait / 10 + jitter % (wait / 5 + 1); /* +-10 %: devices spread out */
        } else {
            if (!offline)
                fprintf(stderr, "cmc-agent: cannot sync (%s); retrying with backoff\n", cmc_errmsg());
            offline = 1;
            wait = (backoff / 2 + jitter % (backoff / 2 + 1)) * 1000u;
            backoff = backoff * 2 > 1800 ? 1800 : backoff * 2;
        }
        sleep_interruptible(wait);
    }
    return CMC_OK;
}

int cli_cmd_sync(struct cli_opts *o)
{
    if (o->n_positional != 0)
        return cmc_fail(CMC_ERR_USAGE, "usage: cmc-agent sync [--watch]");
    plat_lock *lock = NULL;
    struct cli_session s;
    int rc = plat_lock_acquire(o->lock_path, 0, &lock);
    if (rc != CMC_OK)
        return rc;
    if ((rc = cli_unlock(o, &s)) == CMC_OK) {
        rc = o->watch ? watch_loop(o, &s) : sync_round(o, &s, 0);
        cli_session_close(&s);
    }
    plat_lock_release(lock);
    return rc;
}
